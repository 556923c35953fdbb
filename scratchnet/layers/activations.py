"""Element-wise activations and softmax.

Each activation has a forward  y = f(x)  and a backward  dx = dy * f'(x)  (element-wise),
except softmax, whose backward is the full Jacobian-vector product over the last axis:

    y = softmax(x),   dx_i = sum_j dy_j * (d y_j / d x_i) = y_i * (dy_i - sum_j dy_j * y_j)

(dy_j is the incoming gradient dL/dy_j; the Jacobian entry is d y_j / d x_i = y_j * (delta_ij - y_i).)

For training a classifier, put no softmax at the end and use the fused
``loss="cross_entropy"``: it is faster and numerically safer. This layer is here so that the
softmax backward can be read and checked on its own.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf, expit

from ..option_checks import lower_case_hint
from .base import Layer
from .wide_rows import wide_rows

# Python floats, not NumPy scalars: NumPy 2 promotes float32 / np.float64 to float64, but a
# Python float takes the array's dtype, so a float32 model stays float32.
SQRT_2 = math.sqrt(2.0)
SQRT_2PI = math.sqrt(2.0 * math.pi)
# SELU's constants (Klambauer et al. 2017, the values PyTorch and Keras use): with them a layer
# of zero-mean, unit-variance inputs gives zero-mean, unit-variance outputs.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def relu(x):
    # y = max(x, 0), exact for every input: relu(-inf) = 0 and NaN stays NaN. np.maximum against
    # the scalar 0 runs a slow loop in NumPy 2.4 (0.32 ms on 4 MB of float32); against a row of
    # zeros on the wide view of wide_rows the same numbers take 0.10 ms. (x * (x > 0) took 0.21 ms
    # and gives NaN for -inf.)
    rows = x.reshape(-1, x.shape[-1])
    wide, (zeros,) = wide_rows(rows, np.zeros(x.shape[-1], dtype=x.dtype))
    return np.maximum(wide, zeros).reshape(x.shape)


def relu_backward(x, y, dy):
    # dx = dy where x > 0, else 0 (the derivative is taken as 0 at x == 0). y = max(x, 0) > 0
    # exactly where x > 0 (a NaN fails both tests), so the output is enough: the layer need not
    # keep its input. The 0/1 mask is made a float array first: float * float is a plain SIMD
    # loop, float * bool makes NumPy cast the bools in small buffers (whole backward on 4 MB of
    # float32: 0.20 ms against 0.25 ms for dy * (x > 0)).
    dx = (y > 0).astype(dy.dtype)
    dx *= dy
    return dx


def choose(condition, if_true, if_false, dtype):
    """``np.where(condition, if_true, if_false)`` in ``dtype``, for FINITE numbers, as arithmetic
    on the condition as a 0/1 mask:

        chosen = if_true * mask + if_false * (1 - mask)

    The same numbers as np.where: a product by 1 or 0 is exact, and v + 0 = v. (An inf or a NaN
    times 0 would give NaN, hence finite numbers only; a -0 comes back as +0.) Why: np.where's
    loop branches on every element, and on the random signs of a layer's inputs it took 5 ms on
    4 MB of float32 here (load 1), ~35x a multiply; these four dense passes take ~0.4 ms.
    Measured side by side (benchmarks/README.md, "leaky_relu, ELU, SELU without np.where"; one
    thread): the backward passes of leaky_relu, elu and selu 0.08-0.42x the np.where forms' time
    at load ~2.4 (0.06-0.20x at load ~7.5).
    """
    mask = condition.astype(dtype)
    chosen = 1 - mask
    chosen *= if_false
    mask *= if_true
    chosen += mask
    return chosen


def leaky_relu(x, slope=0.01):
    # x for x > 0, slope * x otherwise. With 0 < slope <= 1 that is the larger of the two (for
    # x > 0, slope * x <= x; for x < 0, slope * x >= x): the numbers of the definition below for
    # every input, inf, NaN and -0 included, without np.where's slow branching loop (``choose``):
    # measured 0.03-0.05x the np.where form's time (one thread, load ~2.4; 0.01-0.05x at ~7.5).
    if 0 < slope <= 1:
        return np.maximum(x, slope * x)
    return np.where(x > 0, x, slope * x)  # any other slope (0 * inf would be NaN in the max)


def leaky_relu_backward(x, y, dy, slope=0.01):
    # dx = dy for x > 0, slope * dy otherwise (x = 0 and NaN count as not positive)
    dx = choose(x > 0, 1.0, slope, dy.dtype)
    dx *= dy  # in place: choose's result is a new array already
    return dx


def sigmoid(x):
    return expit(x)  # 1 / (1 + exp(-x)) without overflow for large |x|


def sigmoid_backward(x, y, dy):
    return dy * y * (1 - y)  # s'(x) = s(x) (1 - s(x))


def tanh(x):
    return np.tanh(x)


def tanh_backward(x, y, dy):
    return dy * (1 - y * y)  # tanh'(x) = 1 - tanh(x)^2


def gelu(x):
    # exact GELU: x * Phi(x), Phi the standard normal CDF
    return x * 0.5 * (1 + erf(x / SQRT_2))


def gelu_backward(x, y, dy):
    # d/dx [x Phi(x)] = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi)
    cdf = 0.5 * (1 + erf(x / SQRT_2))
    pdf = np.exp(-0.5 * x * x) / SQRT_2PI
    return dy * (cdf + x * pdf)


def elu(x, alpha=1.0):
    # x for x > 0, alpha (e^x - 1) otherwise, as the sum of a positive and a negative part:
    #     elu(x) = max(x, 0) + alpha * expm1(min(x, 0))
    # for x > 0 the second term is alpha * expm1(0) = 0, for x <= 0 the first is 0, and adding 0
    # changes nothing: the numbers of np.where(x > 0, x, ...) without its slow loop (``choose``).
    # (Bit for bit for alpha > 1/2, as 1 and SELU's; with alpha <= 1/2, a negative x so tiny that
    # alpha * x rounds to -0 gives +0.) expm1 of min(x, 0) never overflows and is exact near 0.
    # Measured 0.21-0.30x the np.where form's time for elu and selu (one thread, load ~2.4).
    y = np.expm1(np.minimum(x, 0))  # e^x - 1 for x <= 0, 0 for x > 0
    y *= alpha
    y += relu(x)  # in place: fewer new arrays of the input's size; relu's fast max(x, 0)
    return y


def elu_backward(x, y, dy, alpha=1.0):
    # d/dx = 1 for x > 0, alpha e^x = y + alpha otherwise. min(y, 0) is y where x <= 0 (y <= 0
    # there) and 0 where x > 0, which keeps the branch not taken finite for x = inf (``choose``).
    derivative_at_negatives = np.minimum(y, 0)
    derivative_at_negatives += alpha
    dx = choose(x > 0, 1.0, derivative_at_negatives, y.dtype)
    dx *= dy  # in place: choose's result is a new array already
    return dx


def selu(x):
    # scale * elu(x, alpha) with the fixed SELU constants
    y = elu(x, SELU_ALPHA)
    y *= SELU_SCALE
    return y


def selu_backward(x, y, dy):
    # d/dx = scale for x > 0, scale alpha e^x = y + scale alpha otherwise (min(y, 0) as in elu's)
    derivative_at_negatives = np.minimum(y, 0)
    derivative_at_negatives += SELU_SCALE * SELU_ALPHA
    dx = choose(x > 0, SELU_SCALE, derivative_at_negatives, y.dtype)
    dx *= dy  # in place: choose's result is a new array already
    return dx


def silu(x):
    # silu(x) = swish(x) = x sigmoid(x)
    return x * expit(x)


def silu_backward(x, y, dy):
    # d/dx [x s(x)] = s + x s (1 - s) = s (1 + x (1 - s))
    s = expit(x)
    return dy * s * (1 + x * (1 - s))


def softplus(x):
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): e^-|x| <= 1 never overflows, and for large |x|
    # log1p keeps the tiny correction that log(1 + tiny) would round away
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def softplus_backward(x, y, dy):
    return dy * expit(x)  # d/dx log(1 + e^x) = e^x / (1 + e^x) = sigmoid(x)


def softmax(x):
    shifted = x - x.max(axis=-1, keepdims=True)  # log-sum-exp shift: exp never overflows
    exps = np.exp(shifted)
    return exps / exps.sum(axis=-1, keepdims=True)


def log_softmax(x):
    # log softmax(x) = x - logsumexp(x), on the same shift: the largest term of the sum is
    # exp(0) = 1, so the log never sees 0 (used by the cross-entropy loss)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_backward(x, y, dy):
    # Jacobian-vector product: dx = y * (dy - <dy, y>) along the last axis
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def linear(x):
    return x


def linear_backward(x, y, dy):
    return dy


# The activations whose derivative above reads only the output y (and dy), never x: a layer
# with one of them keeps y only (which the next layer keeps anyway), not its input as well.
OUTPUT_ONLY_DERIVATIVES = frozenset({"relu", "sigmoid", "tanh", "softmax", "linear"})

ACTIVATIONS = {
    "relu": (relu, relu_backward),
    "leaky_relu": (leaky_relu, leaky_relu_backward),
    "sigmoid": (sigmoid, sigmoid_backward),
    "tanh": (tanh, tanh_backward),
    "gelu": (gelu, gelu_backward),
    "elu": (elu, elu_backward),
    "selu": (selu, selu_backward),
    "silu": (silu, silu_backward),
    "swish": (silu, silu_backward),  # the same function under its other name
    "softplus": (softplus, softplus_backward),
    "softmax": (softmax, softmax_backward),
    "linear": (linear, linear_backward),
}


def check_activation_name(name, layer_name: str) -> str:
    if name is None:
        return "linear"
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"{layer_name}: unknown activation {name!r}; expected one of "
                         f"{', '.join(ACTIVATIONS)}{lower_case_hint(name, ACTIVATIONS)}")
    return name


class Activation(Layer):
    """Apply an activation function element-wise (softmax: over the last axis).

    Shapes: x (N, ...) -> y (N, ...), same shape. No parameters.
    Forward:  y = f(x).   Backward: dx = dy * f'(x)  (softmax: Jacobian-vector product).
    Cached for backward: y, and x only if f' needs it (not for relu, sigmoid, tanh, softmax,
    linear, whose f' is a function of y).
    """

    def __init__(self, activation: str = "relu", name: str | None = None):
        super().__init__(name=name)
        self.activation = check_activation_name(activation, self.name)

    def forward(self, x, training=False):
        x = self.check_input(x)
        function, _ = ACTIVATIONS[self.activation]
        y = function(x).astype(self.dtype, copy=False)
        self.cache = {"x": None if self.activation in OUTPUT_ONLY_DERIVATIVES else x, "y": y}
        return y

    def backward(self, dy):
        dy = self.check_output_grad(dy, self.cache["y"].shape if self.cache else ())
        _, derivative = ACTIVATIONS[self.activation]
        return derivative(self.cache["x"], self.cache["y"], dy).astype(self.dtype, copy=False)

    def get_config(self):
        return {"activation": self.activation, **super().get_config()}
