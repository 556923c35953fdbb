"""Numerical gradient checking: is my backward right?

The analytic gradient from ``backward`` is compared with central differences

    df/dx_i  ~  (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)

whose error is O(eps^2). To check every output at once, the layer output y is reduced to a
scalar with a fixed random projection R (same shape as y):

    f(x) = sum(y(x) * R)      so      df/dy = R,   and   backward(R) must equal df/dx.

Everything runs in float64 on a deep copy, whatever the layer's own dtype: in float32 the
round-off of a central difference (~1e-7 / eps) would swamp the comparison.

Error measure, per array (input gradient or one parameter gradient):

    error = max_i |analytic_i - numeric_i| / max(max_i |analytic_i|, max_i |numeric_i|, 1e-12)

the largest difference relative to the size of the gradient. A correct float64 backward gives
about 1e-9 or less; the check passes below ``TOLERANCE = 1e-6``. Elementwise relative errors
are avoided on purpose: they blow up on gradient entries that are tiny but correct.

    >>> from scratchnet.layers import Dense
    >>> report = check_layer(Dense(3, activation="tanh"), (4,))
    >>> report.passed
    True
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .layers.base import iter_layers

EPS = 1e-6
TOLERANCE = 1e-6


def numerical_gradient(f, x: np.ndarray, eps: float = EPS, indices=None) -> np.ndarray:
    """Central-difference gradient of the scalar function ``f(x)`` at ``x``.

    ``x`` (a float64 array) is perturbed in place one element at a time and restored, so
    ``f`` may also read ``x`` through a reference (a layer's parameter, say).
    ``indices``: optional list of index tuples to check; other entries are left at 0.
    """
    x = np.asarray(x)
    if x.dtype != np.float64:
        raise TypeError(f"numerical_gradient needs a float64 array, got {x.dtype}")
    grad = np.zeros_like(x)
    for index in (indices if indices is not None else np.ndindex(x.shape)):
        original = x[index]
        x[index] = original + eps
        f_plus = f(x)
        x[index] = original - eps
        f_minus = f(x)
        x[index] = original
        grad[index] = (f_plus - f_minus) / (2 * eps)
    return grad


def gradient_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| / max(max |a|, max |n|, 1e-12): the module docstring explains why."""
    if analytic.size == 0:
        return 0.0
    scale = max(np.max(np.abs(analytic)), np.max(np.abs(numeric)), 1e-12)
    return float(np.max(np.abs(analytic - numeric)) / scale)


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]], rule: bool = False) -> str:
    """Left-aligned text columns, two spaces apart (with a dashed rule under the header)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [header, tuple("-" * width for width in widths)] if rule else [header]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in [*lines, *rows])


@dataclass
class CheckRow:
    name: str
    shape: tuple
    error: float
    passed: bool


class GradientCheckReport:
    """The result of a check: one row per array. ``str(report)`` is a readable table."""

    def __init__(self, title: str, tolerance: float):
        self.title = title
        self.tolerance = tolerance
        self.rows: list[CheckRow] = []

    def add(self, name, analytic, numeric, mask=None):
        if mask is not None:
            analytic, numeric = analytic[mask], numeric[mask]
        error = gradient_error(np.asarray(analytic), np.asarray(numeric))
        self.rows.append(CheckRow(name, tuple(np.shape(analytic) if mask is None else mask.shape),
                                  error, bool(error <= self.tolerance)))

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    @property
    def max_error(self) -> float:
        return max((row.error for row in self.rows), default=0.0)

    def errors(self) -> dict[str, float]:
        return {row.name: row.error for row in self.rows}

    def assert_passed(self) -> None:
        if not self.passed:
            raise AssertionError(f"gradient check failed\n{self}")

    def __str__(self):
        header = ("array", "shape", "rel. error", "result")
        rows = [(row.name, str(row.shape), f"{row.error:.2e}", "ok" if row.passed else "FAIL")
                for row in self.rows]
        return "\n".join([f"{self.title}  (float64, pass if rel. error <= {self.tolerance:.0e})",
                          format_table(header, rows), "PASSED" if self.passed else "FAILED"])

    __repr__ = __str__


def _sample_indices(shape, max_elements, rng):
    """All indices, or a random subset of ``max_elements`` of them (for large arrays)."""
    size = int(np.prod(shape))
    if max_elements is None or size <= max_elements:
        return None, None
    flat = rng.choice(size, size=max_elements, replace=False)
    indices = [np.unravel_index(i, shape) for i in flat]
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(np.array(indices).T)] = True
    return indices, mask


def check_layer(layer, x_or_input_shape, seed: int = 0, eps: float = EPS,
                tolerance: float = TOLERANCE, training: bool = False, batch_size: int = 3,
                max_elements: int | None = None) -> GradientCheckReport:
    """Check ``layer.backward`` against central differences, in float64.

    Parameters
    ----------
    layer : Layer
        Built or not; it is deep-copied, so the original is never touched.
    x_or_input_shape : array (N, ...) or tuple
        An input batch, or the shape of ONE sample (then a random normal batch of
        ``batch_size`` samples is drawn with ``seed``).
    max_elements : int, optional
        Check only this many random entries of each array (large layers).

    Layers that draw random numbers (dropout) get a generator reset to the same seed before
    every forward pass, so in training mode they use one fixed mask throughout the check.
    """
    rng = np.random.default_rng(seed)
    layer = copy.deepcopy(layer)
    if isinstance(x_or_input_shape, np.ndarray):
        x = np.array(x_or_input_shape, dtype=np.float64)
    else:
        x = rng.standard_normal((batch_size, *tuple(x_or_input_shape)))
    if layer.built:
        layer.astype(np.float64)
    else:
        layer.build(x.shape[1:], rng=rng, dtype=np.float64)
    noise_seed = int(rng.integers(2**31))

    def run_forward():
        layer.set_rng(np.random.default_rng(noise_seed))  # same dropout mask on every call
        return layer.forward(x, training=training)

    projection = rng.standard_normal(run_forward().shape)

    def scalar_output(_):
        return float(np.sum(run_forward() * projection))

    run_forward()
    analytic_dx = layer.backward(projection)
    analytic_grads = {key: np.array(value, copy=True) for key, value in layer.grads.items()}

    report = GradientCheckReport(f"check_layer: {layer.name} ({type(layer).__name__}), "
                                 f"input {x.shape}", tolerance)
    indices, mask = _sample_indices(x.shape, max_elements, rng)
    report.add("input", analytic_dx, numerical_gradient(scalar_output, x, eps, indices), mask)
    for key, param in layer.params.items():
        indices, mask = _sample_indices(param.shape, max_elements, rng)
        numeric = numerical_gradient(scalar_output, param, eps, indices)
        report.add(key, analytic_grads[key], numeric, mask)
    return report


def check_loss(loss, logits, y, eps: float = EPS, tolerance: float = TOLERANCE) -> GradientCheckReport:
    """Check ``loss.backward()`` (dL/dlogits) against central differences, in float64."""
    loss = copy.deepcopy(loss)
    logits = np.array(logits, dtype=np.float64)
    loss.forward(logits, y)
    analytic = loss.backward()
    numeric = numerical_gradient(lambda z: loss.forward(z, y), logits, eps)
    report = GradientCheckReport(f"check_loss: {loss.name}, logits {logits.shape}", tolerance)
    report.add("logits", analytic, numeric)
    return report


def check_model(model, x, y, seed: int = 0, eps: float = EPS, tolerance: float = TOLERANCE,
                training: bool = False, max_elements: int | None = 200) -> GradientCheckReport:
    """Check the whole model's backward (loss included) against central differences.

    The model must be compiled (its loss is used). It is deep-copied and cast to float64.
    By default at most ``max_elements`` random entries of each array are checked.
    """
    if model.loss is None:
        raise RuntimeError(f"{model.name}: compile the model (a loss is needed) before check_model")
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(model)
    x = np.array(x, dtype=np.float64)
    if not model.built:
        model.build(x.shape[1:] if model.input_shape is None else None)
    model.astype(np.float64)

    noise_seed = int(rng.integers(2**31))

    def loss_value(_):
        for layer in model.layers:
            layer.set_rng(np.random.default_rng(noise_seed))  # same dropout mask on every call
        return model.loss.forward(model.forward(x, training=training), y)

    loss_value(None)
    analytic_dx = model.backward(model.loss.backward())
    report = GradientCheckReport(f"check_model: {model.name}, input {x.shape}, "
                                 f"loss {model.loss.name}", tolerance)
    indices, mask = _sample_indices(x.shape, max_elements, rng)
    report.add("input", analytic_dx, numerical_gradient(loss_value, x, eps, indices), mask)
    for layer in iter_layers(model.layers):
        for key, param in layer.params.items():
            analytic = np.array(layer.grads[key], copy=True)
            indices, mask = _sample_indices(param.shape, max_elements, rng)
            report.add(f"{layer.name}/{key}", analytic,
                       numerical_gradient(loss_value, param, eps, indices), mask)
    return report
