"""Numerical gradient checking: is my backward right, and if not, what is wrong with it?

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

What ``check_layer`` does, in order:

1. the layer contract (gradcheck_contract.py): grads has params' keys, shapes and dtypes; dx
   has the input's shape; backward changes no parameter, cache or dy; backward twice agrees;
   inference-mode forward is deterministic. Each broken rule is one sentence naming the array.
2. central differences, kink-aware (gradcheck_numeric.py): the one-sided slopes (f(x+h) - f(x)) / h and
   (f(x) - f(x-h)) / h differ when a ReLU or max kink lies within h of x. Such an element is
   re-checked with a step 1000x smaller; if the slopes still differ (an exact tie) it is
   reported as inconclusive and left out of the error, instead of a false failure. An array
   whose every checked element is inconclusive fails: 0 elements compared is no check.
3. for every failing array: the worst element, how many disagree, a diagnosis of the pattern
   (gradcheck_diagnose.py) and a text map of the wrong elements.

Large arrays are checked on a random sample of ``max_elements`` entries (default 500, printed
in the table); ``max_elements=None`` checks every entry. A check that runs longer than a few
seconds prints a progress line to stderr. ``configs="battery"`` runs the layer type over
adversarial configurations (gradcheck_battery.py).

    >>> from scratchnet.layers import Dense
    >>> report = check_layer(Dense(3, activation="tanh"), (4,))
    >>> report.passed
    True
"""

from __future__ import annotations

import copy
import sys
import time

import numpy as np

from .gradcheck_contract import (
    INPUT_CHANGED,
    check_cache_type,
    check_dx,
    check_grads,
    check_output_shape,
    check_side_effects,
    compare_repeat,
    describe_exception,
    input_changed,
    not_a_layer,
    params_lost_in_build,
    params_made_in_init,
    restore,
    snapshot,
)
from .gradcheck_diagnose import gradient_error, window_coverage
from .gradcheck_numeric import (
    EPS,
    KINK_STEP_FACTOR,
    central_difference_noise,
    kink_aware_gradient,
    numerical_gradient,
    sample_indices,
)
from .gradcheck_report import CheckRow, GradientCheckReport, format_table
from .input_checks import check_sample_shape
from .layers.base import iter_layers
from .layers.containers import rename_duplicates
from .option_checks import is_int, whole_float_hint

__all__ = ["EPS", "TOLERANCE", "SAMPLE_SIZE", "numerical_gradient", "kink_aware_gradient",
           "gradient_error", "format_table", "CheckRow", "GradientCheckReport", "check_layer",
           "check_loss", "check_model", "compare_training"]

TOLERANCE = 1e-6
SAMPLE_SIZE = 500          # default max_elements: entries checked per array
PROGRESS_AFTER = 3.0       # seconds before a progress line appears


class Progress:
    """Prints 'gradcheck <label>: W 120/432' to stderr once a check runs longer than a few seconds."""

    def __init__(self, label: str, enabled: bool = True):
        self.label, self.enabled = label, enabled
        self.start = self.last = time.perf_counter()
        self.shown = False

    def update(self, name, done, total):
        now = time.perf_counter()
        if self.enabled and now - self.start > PROGRESS_AFTER and now - self.last > 0.5:
            print(f"\rgradcheck {self.label}: {name} {done}/{total} elements, {now - self.start:.0f} s   ",
                  end="", file=sys.stderr, flush=True)
            self.last, self.shown = now, True

    def close(self):
        if self.shown:
            print(file=sys.stderr, flush=True)


def _make_input(layer, x_or_input_shape, batch_size, rng):
    """check_layer's input batch in float64: the batch given (an array or nested lists), or
    ``batch_size`` random normal samples of ONE sample's shape given (a tuple of ints)."""
    given = x_or_input_shape
    is_sequence = hasattr(given, "__iter__") and not isinstance(given, (str, bytes, dict))
    if is_sequence and not isinstance(given, np.ndarray):
        given = tuple(given)  # a one-pass iterator (map, generator) is read once, here, not used up below
    if isinstance(given, np.ndarray) or (is_sequence and any(np.ndim(entry) for entry in given)):
        return np.array(given, dtype=np.float64)  # an entry that is itself a sequence: rows of data
    if not is_sequence or not all(is_int(size) for size in given):
        raise TypeError(f"check_layer: x_or_input_shape must be an input batch (an array (N, ...) or "
                        f"nested lists) or the shape of ONE sample (a tuple of ints such as (28, 28, 1)), "
                        f"got {given!r}{whole_float_hint(*given) if is_sequence else ''}")
    return rng.standard_normal((batch_size, *check_sample_shape(given, "check_layer")))


def check_layer(layer, x_or_input_shape, seed: int = 0, eps: float = EPS,
                tolerance: float = TOLERANCE, training: bool = False, batch_size: int = 3,
                max_elements: int | None = SAMPLE_SIZE, configs=None,
                progress: bool = True) -> GradientCheckReport:
    """Check ``layer``'s contract and ``backward`` against central differences, in float64.

    Parameters
    ----------
    layer : Layer
        Built or not; it is deep-copied, so the original is never touched.
    x_or_input_shape : array (N, ...) or tuple
        An input batch, or the shape of ONE sample (then a random normal batch of
        ``batch_size`` samples is drawn with ``seed``).
    max_elements : int or None
        Check this many random entries of each larger array (default 500; None: all).
    configs : None or "battery"
        "battery": rebuild the layer type over adversarial options and sizes (stride > 1,
        ragged sizes, overlapping windows, ties, non-square kernels, batch of one, both dtypes)
        and return a ``BatteryReport`` with one verdict per case.

    Layers that draw random numbers (dropout) get a generator reset to the same seed before
    every forward pass, so in training mode they use one fixed mask throughout the check.
    """
    if configs is not None:
        from .gradcheck_battery import check_battery

        return check_battery(layer, x_or_input_shape, configs=configs, seed=seed, training=training,
                             max_elements=max_elements, tolerance=tolerance)
    for problem in not_a_layer(layer):  # a Loss has no build: "object has no attribute 'built'"
        raise TypeError(f"check_layer: {problem}")
    rng = np.random.default_rng(seed)
    x = _make_input(layer, x_or_input_shape, batch_size, rng)
    report = GradientCheckReport(f"check_layer: {layer.name} ({type(layer).__name__}), input {x.shape}",
                                 tolerance, batch_size=x.shape[0])
    made_in_init = params_made_in_init(layer)
    layer = copy.deepcopy(layer)
    # two children of one name (a block not yet in a model) would share a report row: rename
    # the copy's duplicates conv2d, conv2d_1, ... as a model would
    rename_duplicates([layer], set())
    try:
        if layer.built:
            layer.astype(np.float64)
        else:
            layer.build(x.shape[1:], rng=rng, dtype=np.float64)
    except Exception as error:  # a student's build: report it, naming the layer
        report.contract.append(describe_exception(layer.name, "build", error))
        return report
    report.contract += params_lost_in_build(layer, made_in_init)
    if report.contract:
        return report
    noise_seed = int(rng.integers(2**31))

    def run_forward(given=x):
        layer.set_rng(np.random.default_rng(noise_seed))  # same dropout mask on every call
        return layer.forward(given, training=training)

    try:
        if input_changed(run_forward, x):  # with its generator set: a dropout drawing from self.rng
            report.contract.append(f"{layer.name}: {INPUT_CHANGED}")
            return report
        if not training:  # inference must not depend on the generator's state
            first, second = layer.forward(x, training=False), layer.forward(x, training=False)
            report.contract += compare_repeat(layer, first, second, "forward(x, training=False)")
        y = run_forward()
        if training and compare_repeat(layer, y, run_forward(), "forward"):
            report.contract.append(f"{layer.name}: forward(x, training=True) gave different results with the "
                                   "generator reset to one seed: draw random numbers from "
                                   "self.random_generator(), never from np.random")
    except Exception as error:
        report.contract.append(describe_exception(layer.name, "forward", error))
        return report
    if not isinstance(y, np.ndarray):
        report.contract.append(f"{layer.name}: forward returned {type(y).__name__}, expected an array")
        return report
    report.contract += check_output_shape(layer, x, y)
    if y.dtype in (np.float16, np.float32) and x.dtype == np.float64:  # the numbers below would be noise
        report.contract.append(f"{layer.name}: forward returned {y.dtype} for a float64 input: compute in "
                               "the input's dtype (np.zeros(shape, dtype=x.dtype), no cast to float32)")
        return report
    report.contract += [problem for leaf in iter_layers([layer]) for problem in check_cache_type(leaf)]
    projection = rng.standard_normal(y.shape)
    dx, analytic = _backward_with_contract(layer, x, projection, report)
    if analytic is None:
        return report
    _compare(layer, x, projection, run_forward, dx, analytic, report, rng, eps, max_elements, progress)
    return report


def _param_name(root, leaf, key):
    """'W' for the checked layer's own parameter, 'block.dense/W' for one inside a container
    (and for every parameter of a model: ``root`` is then the model, never a leaf)."""
    return key if leaf is root else f"{leaf.name}/{key}"


def gradient_copies(root, leaves):
    """{report name: a copy of the gradient} for every array in the leaves' grads."""
    return {_param_name(root, leaf, key): np.array(value, copy=True) for leaf in leaves
            for key, value in dict(leaf.grads).items() if isinstance(value, np.ndarray)}


def arrays_to_compare(root, leaves, x, dx, analytic):
    """[("input", x, dx), (name, parameter, its gradient from ``analytic`` or None), ...]."""
    named = [(_param_name(root, leaf, key), param) for leaf in leaves for key, param in leaf.params.items()]
    return [("input", x, dx)] + [(name, param, analytic.get(name)) for name, param in named]


def _backward_with_contract(layer, x, projection, report):
    """Run backward twice on one forward, checking the contract; (dx, grads) or (None, None).

    ``grads`` maps each parameter's report name to a copy of its gradient; a container's
    children (``iter_layers``) are checked like the layer itself.
    """
    leaves = list(iter_layers([layer]))
    before = [snapshot(leaf) for leaf in leaves]
    dy = projection.copy()
    try:
        dx = layer.backward(dy)
        first = gradient_copies(layer, leaves)
        for leaf, saved in zip(leaves, before):
            own_dy = dy if leaf is layer else projection  # dy is the checked layer's input only
            report.contract += check_side_effects(leaf, saved, own_dy, projection)
            report.contract += check_grads(leaf)
        report.contract += check_dx(layer, dx, x)
        restore(leaves, before)  # undo what a bad backward changed, so the numbers measure gradients
        dx_again = layer.backward(projection.copy())
        second = {_param_name(layer, leaf, key): value
                  for leaf in leaves for key, value in leaf.grads.items()}
        restore(leaves, before)
    except Exception as error:
        report.contract.append(describe_exception(layer.name, "backward", error))
        return None, None
    repeat = compare_repeat(layer, dx, dx_again, "backward (dx)")
    for name, value in first.items():
        repeat += compare_repeat(layer, value, second.get(name), f"backward (grads of {name!r})")
    report.contract += repeat[:1]
    return dx, first


def _compare(layer, x, projection, run_forward, dx, analytic, report, rng, eps, max_elements, progress):
    """The numeric comparison of dx and every parameter gradient whose shape is right."""
    def scalar_output(_):
        return float(np.sum(run_forward() * projection))

    floor = central_difference_noise(np.abs(run_forward() * projection).sum(), eps)
    arrays = arrays_to_compare(layer, list(iter_layers([layer])), x, dx, analytic)
    coverage = window_coverage(layer, x.shape[1:3]) if x.ndim == 4 else None
    ticker = Progress(layer.name, progress)
    compare_gradients(report, scalar_output, arrays, rng, eps, max_elements, ticker, floor, coverage,
                      output_grad=projection)
    ticker.close()


def compare_gradients(report, f, arrays, rng, eps=EPS, max_elements=SAMPLE_SIZE, ticker=None,
                      noise_floor=0.0, input_coverage=None, output_grad=None):
    """A row in ``report`` for each (name, float64 array, analytic gradient) of ``arrays``: the
    gradient against kink-aware central differences of the scalar ``f`` (a gradient of the wrong
    shape or type is not compared). ``input_coverage``: ``window_coverage`` of the "input";
    ``output_grad``: the dy its backward was given (the projection), for the diagnosis."""
    for name, array, grad in arrays:
        if not isinstance(grad, np.ndarray) or grad.shape != array.shape:
            report.add_unchecked(name, array.shape)
            continue
        indices, mask = sample_indices(array.shape, max_elements, rng)
        if not mask.all():
            report.note_sample(name, len(indices), array.size)
        numeric, kinks = kink_aware_gradient(f, array, eps, indices, ticker, name)
        coverage = input_coverage if name == "input" else None
        hint = grad.dtype if grad.dtype != np.float64 else None
        report.add(name, grad, numeric, mask, kinks, coverage=coverage, dtype_hint=hint,
                   noise_floor=noise_floor, output_grad=output_grad if name == "input" else None)
        if kinks.any():
            report.notes.append(f"{name}: {int(kinks.sum())} element(s) sit on a kink (ReLU/max tie) even "
                                f"at step {eps * KINK_STEP_FACTOR:.0e}: inconclusive, not counted")


def check_loss(loss, logits, y, eps: float = EPS, tolerance: float = TOLERANCE) -> GradientCheckReport:
    """Check ``loss.backward()`` (dL/dlogits) against central differences, in float64."""
    loss = copy.deepcopy(loss)
    logits = np.array(logits, dtype=np.float64)
    name = getattr(loss, "name", type(loss).__name__)
    report = GradientCheckReport(f"check_loss: {name}, logits {logits.shape}", tolerance,
                                 batch_size=logits.shape[0])
    try:
        if input_changed(lambda given: loss.forward(given, y), logits):
            report.contract.append(f"{name}: {INPUT_CHANGED}")
            return report
        value = loss.forward(logits, y)
        analytic = loss.backward()
    except Exception as error:
        report.contract.append(describe_exception(name, "forward/backward", error))
        return report
    if not np.isscalar(value) and np.shape(value) != ():
        report.contract.append(f"{name}: forward returned shape {np.shape(value)}, expected a scalar loss")
        return report
    if not isinstance(analytic, np.ndarray) or analytic.shape != logits.shape:
        shape = getattr(analytic, "shape", type(analytic).__name__)
        report.contract.append(f"{name}: backward returned {shape}, expected dL/dlogits of shape "
                               f"{logits.shape}")
        report.add_unchecked("logits", logits.shape)
        return report
    numeric = numerical_gradient(lambda z: float(loss.forward(z, y)), logits, eps)
    report.add("logits", analytic, numeric)
    return report


def compare_training(model, layer_name, replacement, x, y, steps: int = 5, batch_size: int | None = None,
                     tolerance: float = 1e-9):
    """Train a copy of ``model`` with a student's layer swapped in beside the original.

    model        a compiled model; deep-copied and cast to float64 (the original is never touched)
    layer_name   the name of the top-level layer to replace, e.g. ``model.layers[1].name``
    replacement  the student's layer (unbuilt or built), with the original's parameter keys and
                 shapes; it gets the original layer's weights
    x, y         training samples (N, ...) and labels; step k trains on the next ``batch_size``
                 samples, cycling
    steps        how many training steps both copies take (default 5)
    batch_size   samples per step (default None: min(len(x), 8))
    tolerance    largest relative difference allowed, after every step, in the loss, the
                 training-mode output, every parameter and the inference-mode output (default 1e-9)

    Returns a ``TrainingComparison``: ``passed``, and where the runs part (step, array, difference).
    The work is in gradcheck_training.py, imported only when called.
    """
    from .gradcheck_training import compare_training as run

    return run(model, layer_name, replacement, x, y, steps=steps, batch_size=batch_size,
               tolerance=tolerance)


# check_model lives in gradcheck_model.py (it imports the helpers above, hence at the end)
from .gradcheck_model import check_model  # noqa: E402
