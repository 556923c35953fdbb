"""Optimising pixels: the gradient-descent loop shared by feature inversion, class model and
style transfer (``interpret_synthesis.py``, ``style_transfer.py``).

The network's weights stay fixed; the *image* x is the variable. Each step asks the caller for
the value to record and d loss / d x (from ``inspect.backprop``, i.e. the layers' own backward),
takes one Adam step on the pixels and clips them to the allowed range.
"""

from __future__ import annotations

import numpy as np

from .optimizers import Adam


def as_float(x) -> np.ndarray:
    """An array in floats: integer or bool arrays (uint8 pixels) as float64, where differences
    and products cannot wrap around (in uint8, 3 - 5 = 254 and 16 * 16 = 0); floats as they are."""
    x = np.asarray(x)
    return x.astype(np.float64) if x.dtype.kind in "biu" else x


def total_variation(x: np.ndarray):
    """Squared total variation of images (N, H, W, C) and its gradient.

    TV = sum (x[h+1, w] - x[h, w])^2 + (x[h, w+1] - x[h, w])^2 ; dTV/dx has x's shape.
    Integer images (uint8) are computed in float64 (``as_float``).
    """
    x = as_float(x)
    down, right = np.diff(x, axis=1), np.diff(x, axis=2)
    grad = np.zeros_like(x)
    grad[:, 1:] += 2 * down   # each difference pulls its lower cell up ...
    grad[:, :-1] -= 2 * down  # ... and its upper cell down
    grad[:, :, 1:] += 2 * right
    grad[:, :, :-1] -= 2 * right
    return float((down ** 2).sum() + (right ** 2).sum()), grad


class PixelAdam:
    """Adam on an array of pixels, by ``optimizers.Adam.update``: m = b1 m + (1-b1) g;
    v = b2 v + (1-b2) g^2;  x -= lr * m_hat / (sqrt(v_hat) + eps) with the bias-corrected
    m_hat, v_hat. ``step`` returns the moved copy of x."""

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.adam, self.state = lr, Adam(lr, beta1, beta2, eps), {}

    def step(self, x, grad):
        x = np.array(x, dtype=np.float64)
        self.adam.update(x, grad, self.state, self.lr)
        return x


def descend_pixels(x, loss_and_gradient, steps: int, lr: float, bounds):
    """The pixel-descent loop behind feature inversion, class model and style transfer.

    ``steps`` times: ``value, grad = loss_and_gradient(x)``, then one ``PixelAdam`` step on the
    pixels, x <- clip(x - lr * m_hat / (sqrt(v_hat) + eps), low, high) with ``bounds = (low, high)``.
    x : (1, H, W, C). Returns ``(x after the last step, the values before each step (steps,))``.
    """
    low, high = bounds
    adam, values = PixelAdam(lr), []
    for _ in range(steps):
        value, grad = loss_and_gradient(x)
        values.append(value)
        x = np.clip(adam.step(x, grad), low, high)
    return x, np.array(values)
