"""Batch normalisation (Ioffe and Szegedy, 2015).

Per channel c (the last axis), over the M values of that channel in the batch (M = N for
(N, D) input, M = N*H*W for (N, H, W, C) images):

    mu      = (1/M) sum_m x_m                        batch mean             (C,)
    var     = (1/M) sum_m (x_m - mu)^2               biased batch variance  (C,)
    sigma   = sqrt(var + eps)                                               (C,)
    xhat_m  = (x_m - mu) / sigma                     normalised input       (M, C)
    y_m     = gamma * xhat_m + beta                  learnable scale, shift (M, C)

Backward (training mode). y depends on x directly and through mu and var. With
g = dy * gamma = dL/dxhat, the chain rule through the three paths gives

    dL/dvar = sum_m g_m (x_m - mu) * (-1/2) sigma^-3
    dL/dmu  = -sum_m g_m / sigma            (the path through var adds sum_m -2(x_m - mu)/M = 0)
    dx_m    = g_m / sigma + dL/dvar * 2 (x_m - mu) / M + dL/dmu / M

and substituting x_m - mu = sigma xhat_m collects everything over the common factor:

    dx_m = gamma / (M sigma) * (M dy_m - sum_k dy_k - xhat_m * sum_k dy_k xhat_k)
    dgamma = sum_m dy_m xhat_m            dbeta = sum_m dy_m

(the three terms: the direct path, the mean's, the variance's). Every sum is over the M rows
of one channel.

How the code computes it (fewer passes over the (M, C) memory, and a smaller cache)
---------------------------------------------------------------------------------
The cache keeps the INPUT x (alive anyway: it is the previous layer's output) and the per-channel
mu and 1/sigma, not xhat: one (M, C) array less per layer, as PyTorch does. Backward rebuilds
x - mu = sigma xhat in the memory of its output dx and writes the formula above with it:

    sum_m dy_m xhat_m = (1/sigma) sum_m dy_m (x_m - mu)                         = dgamma
    dx_m = (gamma / sigma) * (dy_m - mean(dy) - (x_m - mu) * mean(dy (x - mu)) / sigma^2)

Forward builds x - mu in the memory of its output y, takes the variance from it (a sum of
products, no array of squares) and scales and shifts y in place. Every (M, C) operation runs
on the "wide" view of ``wide_rows`` (see there why).
"""

from __future__ import annotations

import math

import numpy as np

from ..option_checks import check_real
from .base import Layer
from .wide_rows import wide_rows


def column_sums(rows: np.ndarray) -> np.ndarray:
    """sum_m rows[m, c] of an (M, C) array: the per-channel sums of BatchNorm, shape (C,).

    Same numbers as ``rows.sum(axis=0)``, faster: NumPy sums axis 0 of a C-contiguous array one
    row at a time into a (C,) accumulator, and with C = 32..128 channels each of those M inner
    loops is too short to pay for itself. Folding k consecutive rows into one row of k*C values
    (a free reshape) makes the loops k times longer and k times fewer; the k partial sums of
    each channel are added at the end. Measured on 64x16x16x64 float32: 0.06 ms against 0.21 ms.
    A matrix-vector product with a vector of ones (BLAS) is as fast on a quiet machine, but it
    wakes OpenBLAS's sleeping threads for a tiny amount of work, and on busy cores that wait
    costs milliseconds: a whole BatchNorm forward took 1.1 ms (median) this way and 45 ms with
    ``np.ones(M) @ rows``, same code otherwise, on the shared 2-core machine under load. This
    stays on one thread.
    """
    count, channels = rows.shape
    fold = math.gcd(count, 32)  # k: a divisor of M, so the reshape is exact
    return rows.reshape(count // fold, fold * channels).sum(axis=0).reshape(fold, channels).sum(axis=0)


def column_dots(rows: np.ndarray, other_rows: np.ndarray) -> np.ndarray:
    """sum_m rows[m, c] * other_rows[m, c] of two (M, C) arrays, shape (C,), with no (M, C) product.

    ``np.einsum`` multiplies and adds in one pass without writing the products to memory; the
    rows are folded k at a time as in ``column_sums``, for the same reason (measured on
    65536 x 16 float32: 0.13 ms folded, 0.32 ms unfolded; ``(a * b).sum(axis=0)``-style, a
    product array and then column sums, costs a write and a read more).
    """
    count, channels = rows.shape
    fold = math.gcd(count, 32)
    shape = (count // fold, fold * channels)
    products = np.einsum("ij,ij->j", rows.reshape(shape), other_rows.reshape(shape))
    return products.reshape(fold, channels).sum(axis=0)


class BatchNorm(Layer):
    """Batch normalisation over every axis but the last (per feature / per channel).

    Shapes: x (N, D) or (N, H, W, C) (any (N, ..., C)) -> y, same shape.
    Params: gamma (C,) = ones, beta (C,) = zeros. Buffers (saved with the model, never trained):
    mean (C,) = zeros, var (C,) = ones, the running statistics.

    Training mode (``training=True`` and the layer trainable): normalise with the batch mean and
    the BIASED batch variance (divide by M), then update the running statistics in ``forward``
    with PyTorch's convention::

        running_mean = (1 - momentum) * running_mean + momentum * mu
        running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)

    (the running variance uses the UNBIASED batch variance, as PyTorch does). A batch with one
    value per channel (M = 1) has no variance: training mode refuses it.

    Inference mode (``training=False``): ``y = gamma * (x - running_mean) / sqrt(running_var +
    eps) + beta``, an affine map per channel, so ``dx = dy * gamma / sqrt(running_var + eps)``.

    Frozen rule (as Keras): if ``trainable`` is False, the layer ALWAYS runs in inference mode,
    even with ``training=True``: fine-tuning around a frozen BatchNorm uses its stored
    statistics and never changes them.

    Momentum: ``momentum`` is PyTorch's (the weight of the NEW batch, default 0.1). Keras'
    ``momentum`` is the weight of the OLD running value (default 0.99); give it as
    ``BatchNorm(keras_momentum=0.99)``, which means ``momentum = 1 - 0.99``. Not both.

    Backward (training mode; derivation in the module docstring), per channel over its M rows:
    ``dx = gamma / (M sigma) * (M dy - sum(dy) - xhat * sum(dy * xhat))``, ``dgamma = sum(dy *
    xhat)``, ``dbeta = sum(dy)``. ``backward`` only fills the gradients; the running statistics
    change in ``forward``.

    In ``fit``, a last mini-batch of ONE sample of (N, D) data is refused in training mode (as
    in PyTorch): choose a batch size that leaves at least two samples in the last batch.
    """

    def __init__(self, momentum: float | None = None, eps: float = 1e-5, name: str | None = None,
                 keras_momentum: float | None = None):
        super().__init__(name=name)
        if momentum is not None and keras_momentum is not None:
            raise ValueError(f"{self.name}: give momentum (PyTorch's, weight of the new batch) or "
                             f"keras_momentum (= 1 - momentum), not both; got momentum={momentum!r} "
                             f"and keras_momentum={keras_momentum!r}")
        if keras_momentum is not None:
            momentum = 1.0 - check_real(keras_momentum, "keras_momentum", self.name, least=0, most=1)
        momentum = 0.1 if momentum is None else momentum
        self.momentum = check_real(momentum, "momentum", self.name, least=0, most=1)
        self.eps = check_real(eps, "eps", self.name, above=0)

    def init_params(self, input_shape, rng):
        channels = input_shape[-1]
        self.buffers = {"mean": np.zeros(channels), "var": np.ones(channels)}  # cast by build
        return {"gamma": np.ones(channels), "beta": np.zeros(channels)}

    # ------------------------------------------------------------------ forward
    def forward(self, x, training=False):
        x = self.check_input(x)
        channels = x.shape[-1]
        rows = x.reshape(-1, channels)  # (M, C): one row per value of each channel
        if training and self.trainable:
            y, self.cache = self._forward_batch_stats(rows)
        else:
            y, self.cache = self._forward_running_stats(rows)
        self.cache["x_shape"] = x.shape
        return y.reshape(x.shape)

    def _forward_batch_stats(self, rows):
        count = rows.shape[0]  # M
        if count < 2:
            raise ValueError(
                f"{self.name}: training mode needs more than one value per channel to compute a "
                f"batch variance, got {count} (input of {count} sample(s) of shape {self.input_shape}); "
                "use a larger batch, or training=False")
        # Five passes over (M, C) memory and one new (M, C) array, the output; the form with an
        # array of squares and xhat then y made two new arrays and seven passes. Measured on
        # 64x32x32x16 float32: 0.48 ms against 1.6 ms (PyTorch's BatchNorm2d: 1.3 ms).
        mean = column_sums(rows) * (1.0 / count)                        # mu  (C,)
        wide_x, (wide_mean,) = wide_rows(rows, mean)
        wide_y = np.subtract(wide_x, wide_mean)                         # x - mu, in y's memory
        centered = wide_y.reshape(rows.shape)                           # (M, C) view of it
        var = column_dots(centered, centered) * (1.0 / count)           # biased variance  (C,)
        inv_std = 1.0 / np.sqrt(var + self.eps)                         # 1 / sigma  (C,)
        _, (wide_scale, wide_beta) = wide_rows(rows, self.params["gamma"] * inv_std, self.params["beta"])
        wide_y *= wide_scale                                            # gamma xhat
        wide_y += wide_beta                                             # gamma xhat + beta  (M, C)
        self._update_running_stats(mean, var, count)
        y = centered  # the same memory, which now holds gamma xhat + beta  (M, C)
        return y, {"mode": "batch", "rows": rows, "mean": mean, "inv_std": inv_std}

    def _update_running_stats(self, mean, var, count):
        # In place: the model, the optimizer and get_weights hold these very arrays.
        momentum = self.momentum
        running_mean, running_var = self.buffers["mean"], self.buffers["var"]
        running_mean *= 1.0 - momentum
        running_mean += momentum * mean
        running_var *= 1.0 - momentum
        running_var += (momentum * count / (count - 1)) * var  # unbiased: var * M / (M - 1)

    def _forward_running_stats(self, rows):
        inv_std = 1.0 / np.sqrt(self.buffers["var"] + self.eps)  # (C,)
        scale = self.params["gamma"] * inv_std                   # gamma / sigma  (C,)
        shift = self.params["beta"] - self.buffers["mean"] * scale
        wide_x, (wide_scale, wide_shift) = wide_rows(rows, scale, shift)
        wide_y = wide_x * wide_scale
        wide_y += wide_shift             # gamma (x - running_mean) / sigma + beta  (M, C)
        # a copy of the running mean: a later training forward updates the buffer in place
        cache = {"mode": "running", "rows": rows, "mean": self.buffers["mean"].copy(), "inv_std": inv_std}
        return wide_y.reshape(rows.shape), cache

    # ------------------------------------------------------------------ backward
    def backward(self, dy):
        dy = self.check_output_grad(dy, self.cache.get("x_shape", ()))
        d_rows = dy.reshape(-1, dy.shape[-1])  # (M, C)
        if self.cache["mode"] == "batch":
            dx = self._backward_batch_stats(d_rows)
        else:
            dx = self._backward_running_stats(d_rows)
        return dx.reshape(dy.shape)

    def _centered_input(self):
        """x - mu (the mean the forward used), a new (M, C) array, and its wide view."""
        rows, mean = self.cache["rows"], self.cache["mean"]
        wide_x, (wide_mean,) = wide_rows(rows, mean)
        wide_centered = np.subtract(wide_x, wide_mean)
        return wide_centered.reshape(rows.shape), wide_centered

    def _backward_batch_stats(self, d_rows):
        inv_std = self.cache["inv_std"]
        count = d_rows.shape[0]
        centered, wide_dx = self._centered_input()    # x - mu, in dx's memory  (M, C)
        sum_dy = column_sums(d_rows)                  # sum_m dy_m  = dbeta  (C,)
        sum_dy_centered = column_dots(d_rows, centered)   # sum_m dy_m (x_m - mu)  (C,)
        self.grads["beta"] = sum_dy
        self.grads["gamma"] = sum_dy_centered * inv_std   # sum_m dy_m xhat_m
        # dx = (gamma / sigma) * (dy - mean(dy) - (x - mu) * mean(dy (x - mu)) / sigma^2),
        # built in place from x - mu: four passes, each one NumPy operation on the wide view.
        # (Measured on 64x32x32x16 float32: 0.6 ms against 1.2 ms with the cached xhat and
        # (M, C) broadcasts; PyTorch's: 0.46 ms.)
        _, (wide_slope, wide_mean_dy, wide_scale) = wide_rows(
            d_rows, -sum_dy_centered * (inv_std * inv_std / count), -sum_dy * (1.0 / count),
            self.params["gamma"] * inv_std)
        wide_dx *= wide_slope                         # - (x - mu) mean(dy (x - mu)) / sigma^2
        wide_dx += wide_mean_dy                       # - mean(dy)
        wide_dx += d_rows.reshape(wide_dx.shape)      # + dy
        wide_dx *= wide_scale                         # * gamma / sigma
        dx = centered  # the same memory, which now holds dx  (M, C)
        return dx

    def _backward_running_stats(self, d_rows):
        inv_std = self.cache["inv_std"]
        centered, wide_dx = self._centered_input()    # x - running_mean  (M, C)
        self.grads["beta"] = column_sums(d_rows)
        self.grads["gamma"] = column_dots(d_rows, centered) * inv_std  # sum dy xhat
        wide_dy, (wide_scale,) = wide_rows(d_rows, self.params["gamma"] * inv_std)
        np.multiply(wide_dy, wide_scale, out=wide_dx)  # dx = dy gamma / sqrt(running_var + eps)
        dx = centered  # the same memory, which now holds dx  (M, C)
        return dx

    def get_config(self):
        return {"momentum": self.momentum, "eps": self.eps, **super().get_config()}
