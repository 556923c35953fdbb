"""Checks on the arrays a student hands to a model, with hints for the common mistakes.

Each function raises (or warns) with a message that names the model, what was expected, what
was given and, where the cause is usually the same, what to do about it:

* channels-first images ``(N, C, H, W)`` where scratchnet wants ``(N, H, W, C)``;
* one image without its batch axis, ``(H, W, C)`` instead of ``(1, H, W, C)``;
* integer images (uint8 0-255) where the model computes in floats on scaled values;
* values far outside the range the model saw in training (forgot ``x / 255``?);
* strings, objects, complex numbers, empty arrays;
* one layer object used twice; a softmax last layer before the cross-entropy loss;
* one callback where a list is expected, a History given as a callback.

The checks of a function's or layer's OPTIONS (whole and real numbers, paths, dtypes, seeds)
are in ``option_checks.py``, with the rule for which exception they raise.
"""

from __future__ import annotations

import math
import threading
import warnings
from contextlib import contextmanager

import numpy as np

from .caller import user_stacklevel
from .option_checks import is_int, refuse_class, whole_float_hint

# Layers import this module (check_sample_shape): the two functions that need
# layers.base import it when they run, so importing input_checks first never meets a cycle.


def check_input_shape(input_shape, owner: str):
    """``Sequential(input_shape=...)``: a tuple of sizes of ONE sample; an int means ``(int,)``."""
    if input_shape is None:
        return None
    shape = check_sample_shape((input_shape,) if is_int(input_shape) else input_shape, owner)
    if not shape:
        raise ValueError(f"{owner}: every size in input_shape must be >= 1, got {shape}")
    return shape


def check_array_kind(x, owner: str) -> np.ndarray:
    """An array of real numbers (bool and ints allowed, then converted); else a TypeError."""
    try:
        x = np.asarray(x)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"{owner}: input is not a rectangular array ({error})") from None
    if x.dtype.kind not in "fiub":
        what = {"c": "complex numbers", "U": "strings", "S": "bytes", "O": "Python objects"}.get(
            x.dtype.kind, f"dtype {x.dtype}")
        raise TypeError(f"{owner}: expected an array of real numbers, got {what} (dtype {x.dtype})")
    return x


def looks_channels_first(shape) -> bool:
    """(N, C, H, W) with C in {1, 3} on axis 1 and a last axis that is not a channel count."""
    return len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3) and shape[2] > 3


def shape_hint(x_shape, input_shape) -> str:
    """A hint for a batch whose shape does not match ``input_shape`` ('' if no common cause)."""
    x_shape, input_shape = tuple(x_shape), tuple(input_shape)
    if x_shape == input_shape:
        return (f"; this looks like ONE sample without the batch axis: add it with x[None] "
                f"(shape {(1, *input_shape)})")
    if len(x_shape) == 4 and len(input_shape) == 3 and x_shape[1:] == (input_shape[2], *input_shape[:2]):
        return ("; this looks channels-first (N, C, H, W), but scratchnet is channels-last "
                "(N, H, W, C): pass x.transpose(0, 2, 3, 1)")
    if len(x_shape) == len(input_shape) + 2 and x_shape[1] == 1 and x_shape[2:] == input_shape:
        return "; there is an extra axis of size 1: pass x[:, 0] or x.squeeze(1)"
    if len(input_shape) == 3 and input_shape[2] == 1:
        if x_shape[1:] == input_shape[:2]:         # (N, H, W) grayscale images
            return "; the channel axis is missing: pass x[..., None] (shape (N, H, W, 1))"
        if x_shape == input_shape[:2]:             # one (H, W) image
            return (f"; this looks like ONE image without the batch and channel axes: pass "
                    f"x[None, ..., None] (shape {(1, *input_shape)})")
    return reshape_hint(x_shape, input_shape)


def reshape_hint(x_shape, input_shape) -> str:
    """Samples of the right size in another shape that a reshape mends: flattened (N, 784) for
    (28, 28, 1) or the reverse, or axes of size 1 added or dropped. (A reshape keeps the order of
    the values; another order of the axes would need a transpose, so it gets no hint.)"""
    if len(x_shape) < 2 or math.prod(x_shape[1:]) != math.prod(input_shape):
        return ""
    flat = len(x_shape) == 2 or len(input_shape) == 1

    def without_ones(shape):
        return [size for size in shape if size != 1]

    if not (flat or without_ones(x_shape[1:]) == without_ones(input_shape)):
        return ""
    shape = ", ".join(map(str, input_shape))
    return f"; each sample has the right number of values in another shape: pass x.reshape(-1, {shape})"


def input_shape_hint(input_shape) -> str:
    """A hint for an ``input_shape`` the layers could not build from ('' if no common cause)."""
    shape = tuple(input_shape)
    if len(shape) == 4:
        return (f"; input_shape is the shape of ONE sample, without the batch axis: did you mean "
                f"input_shape={shape[1:]}?")
    if len(shape) == 3 and shape[0] in (1, 3) and shape[2] not in (1, 3):
        return (f"; input_shape {shape} looks channels-first (C, H, W), but scratchnet is "
                f"channels-last (H, W, C): input_shape={(shape[1], shape[2], shape[0])}")
    return ""


@contextmanager
def input_shape_hints(input_shape):
    """Around building layers from ``input_shape``: a plain ValueError gets ``input_shape_hint``."""
    try:
        yield
    except ValueError as error:
        hint = input_shape_hint(input_shape)
        if not hint or type(error) is not ValueError:
            raise
        raise ValueError(f"{error}{hint}") from None


def build_from_batch(model, x_shape) -> None:
    """A model without input_shape builds from its first batch, taking x.shape[1:] as ONE sample."""
    try:
        model.build(x_shape[1:])
    except ValueError as error:
        model.input_shape = None  # unbuilt, as before the call
        if not model.layers:
            raise
        raise ValueError(f"{error} (the model has no input_shape, so it took x.shape[1:] = "
                         f"{tuple(x_shape[1:])} of the input {tuple(x_shape)} as one sample's "
                         f"shape; if x is ONE sample, add the batch axis: x[None])") from None


def check_callbacks(callbacks, owner: str) -> list:
    """fit's ``callbacks``: a list (any iterable) of callback objects, each with every hook."""
    if callbacks is None:
        return []
    if hasattr(callbacks, "on_epoch_end") or not hasattr(callbacks, "__iter__") or isinstance(callbacks, str):
        hint = "; put it in a list: callbacks=[...]" if hasattr(callbacks, "on_epoch_end") else ""
        raise TypeError(f"{owner}: callbacks must be a list of callback objects, got one "
                        f"{type(callbacks).__name__}{hint}")
    callbacks = list(callbacks)
    hooks = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")
    for callback in callbacks:
        refuse_class(callback, "every callback", owner)
        missing = [hook for hook in hooks if not callable(getattr(callback, hook, None))]
        if missing and type(callback).__name__ == "History":  # Keras' habit: fit's own record
            raise TypeError(f"{owner}: a History is not a callback: fit returns one; to add this "
                            f"run's epochs to an earlier History pass fit(..., history=that_history)")
        if missing:
            raise TypeError(f"{owner}: callback {callback!r} has no {', '.join(missing)}; subclass "
                            f"scratchnet.callbacks.Callback, whose hooks do nothing by default")
    return callbacks


def check_not_empty(x, owner: str, what: str = "data") -> None:
    if len(x) == 0:
        raise ValueError(f"{owner}: {what} has no samples (shape {x.shape}); nothing to compute on")


# A first layer of one of these kinds normalises its input itself (per channel, from batch or
# fitted statistics), so the scale of the pixels does not matter to it. Matched by class name, so
# that a LayerNorm or Normalization layer of your own counts too.
INPUT_NORMALISING_LAYERS = ("BatchNorm", "LayerNorm", "Rescaling", "Normalization")


# Inputs whose largest magnitude is above this are far from the scale the initialisations assume
# (values of order 1): 8-bit pixels (255) and raw sensor readings (1e6) are, standardised data is not.
LARGE_INPUT = 100.0


def normalises_its_input(layer) -> bool:
    """True if ``layer`` (a model's first layer, or None) is of a kind that rescales its input,
    or is a Chain whose first layer is (a Residual or Parallel is not: its other path sees the
    raw input)."""
    while any(kind.__name__ == "Chain" for kind in type(layer).__mro__) and layer.layers:
        layer = layer.layers[0]
    kinds = type(layer).__mro__ if layer is not None else ()   # its class and the classes above it
    return any(kind.__name__ in INPUT_NORMALISING_LAYERS for kind in kinds)


def warn_unscaled_images(x, owner: str, first_layer=None, whole_floats: bool = False) -> None:
    """Pixel values 0-255 reach a model that computes on values scaled to [0, 1]: the loss is
    ~15x too large. Two kinds are recognised:

    * integer images (uint8, values above 1): always looked at;
    * with ``whole_floats`` (fit, once on the whole array), float images (N, H, W, C) of whole
      numbers from 0 to above 100 (``astype("float32")`` without ``/ 255``); only the first 64
      images are looked at.

    Quiet when ``first_layer`` normalises its input (BatchNorm, ...): the scale does not matter.
    """
    if normalises_its_input(first_layer):
        return
    if x.dtype.kind in "iu":
        if x.size and x.max() > 1:
            warnings.warn(
                f"{owner}: got integer input (dtype {x.dtype}, values up to {x.max()}); the model computes "
                f"in floats and usually expects values scaled to [0, 1]: pass x.astype('float32') / 255",
                UserWarning, stacklevel=user_stacklevel())
        return
    first = x[:64]
    if not whole_floats or x.ndim != 4 or x.dtype.kind != "f" or not first.size:
        return
    low, high = float(first.min()), float(first.max())
    # above 100: 8-bit pixels nearly always reach it; whole numbers up to 16 (say) are another scale
    if low >= 0 and LARGE_INPUT < high <= 255 and np.all(np.mod(first, 1) == 0):
        warnings.warn(
            f"{owner}: got float images holding whole numbers from {low:g} to {high:g} (pixel values "
            f"0-255?); the model usually expects values scaled to [0, 1]: pass x / 255",
            UserWarning, stacklevel=user_stacklevel())


def non_finite_rows(x) -> np.ndarray:
    """The indices of the samples (rows along axis 0) of ``x`` holding any NaN or inf."""
    return np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))


_this_thread = threading.local()  # .non_finite_said: inside non_finite_already_said() in this thread


@contextmanager
def non_finite_already_said():
    """Around fit's evaluate of its validation data: ``warn_non_finite`` stays quiet in this thread
    (fit warned once, before the first epoch, in row numbers of x). A flag of this thread only,
    not a ``warnings`` filter: ``warnings.catch_warnings`` swaps the filters of the whole process,
    and two fits in two threads restoring them out of order left an "ignore" behind for good."""
    said_before = getattr(_this_thread, "non_finite_said", False)
    _this_thread.non_finite_said = True
    try:
        yield
    finally:
        _this_thread.non_finite_said = said_before


def warn_non_finite(x, owner: str, consequence: str = "their outputs will be NaN", what: str = "the input",
                    first_row: int = 0) -> None:
    """Warn (once per call) when ``x`` (N, ...) holds NaN or inf: how many samples, the first one's
    index (counted from ``first_row``: a validation split's rows are the last rows of fit's x) and
    what will happen (``consequence``). One pass over x (``np.isfinite(x).all()``); more only
    when it fails. Nothing inside ``non_finite_already_said()``."""
    if getattr(_this_thread, "non_finite_said", False) or np.isfinite(x).all():
        return
    bad_samples = non_finite_rows(x)
    warnings.warn(
        f"{owner}: {what} holds NaN or inf in {len(bad_samples)} sample(s) of {len(x)}, the first at "
        f"index {first_row + bad_samples[0]}; {consequence}. Clean the data (np.nan_to_num(x), or drop "
        f"those rows), or give Sequential(check_numerics=True) to make this an error",
        UserWarning, stacklevel=user_stacklevel())


def finite_range(x) -> tuple[float, float] | None:
    """(min, max) of the finite values of x, or None if there are none."""
    if x.size == 0:
        return None
    lo, hi = float(np.min(x)), float(np.max(x))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            return None
        lo, hi = float(finite.min()), float(finite.max())
    return lo, hi


def warn_out_of_range(x_range, trained_range, owner: str) -> None:
    """Warn once when inputs lie more than one training range beyond what training saw."""
    if x_range is None or trained_range is None:
        return
    lo, hi = trained_range
    margin = max(hi - lo, 1e-12)
    if x_range[0] < lo - margin or x_range[1] > hi + margin:
        warnings.warn(
            f"{owner}: inputs range from {x_range[0]:.4g} to {x_range[1]:.4g}, but the model was "
            f"trained on values from {lo:.4g} to {hi:.4g}; scale or standardise them the same way "
            f"as the training data (e.g. x / 255)", UserWarning, stacklevel=user_stacklevel())


def check_layer_list(layers, owner: str) -> list:
    """``Sequential(layers)``: a list (any iterable) of layers; one layer alone is refused."""
    if layers is None:
        return []
    if not hasattr(layers, "__iter__") or isinstance(layers, str):
        hint = (f"; put it in a list: Sequential([{type(layers).__name__}(...)])"
                if hasattr(layers, "forward") else "")
        raise TypeError(f"{owner}: layers must be a list of layers, got one {type(layers).__name__}{hint}")
    return list(layers)


def check_is_layer(layer, layer_class, owner: str) -> None:
    """``model.add(layer)``: a Layer object; a class, or a model inside a model, get a hint."""
    from .layers.base import require_initialised

    if isinstance(layer, layer_class):
        require_initialised(layer, owner)
        return
    refuse_class(layer, "add(): the layer", owner)
    hint = ("; to use a stack of layers as one layer, wrap them in scratchnet.layers.Chain([...])"
            if hasattr(layer, "layers") else "")
    raise TypeError(f"{owner}: add() expects a Layer, got {type(layer).__name__}{hint}")


def require_gradient(dx, layer, owner: str, dy=None) -> None:
    """``dx = layer.backward(dy)`` must be dL/dx: None (a forgotten ``return``) is a TypeError;
    given ``dy`` (N, ...), a dx not of the shape of the input the layer's forward saw,
    (N, *layer.input_shape), is a ValueError naming THIS layer (the next one down would blame
    its own dy). One shape compare: cheap enough for every backward."""
    if dx is None:
        raise TypeError(f"{owner}: {layer.name} ({type(layer).__name__}).backward returned None; it must "
                        f"return dL/dx, the gradient for its input (did it forget `return`?)")
    input_shape = getattr(layer, "input_shape", None)
    dy_shape = _shape_of(dy)
    if dy is None or input_shape is None or dy_shape == ():
        return
    expected = (dy_shape[0], *input_shape)
    if _shape_of(dx) != expected:
        raise ValueError(f"{owner}: {layer.name} ({type(layer).__name__}).backward returned dx of shape "
                         f"{np.shape(dx)}; it must return dL/dx, of the shape of the input its forward "
                         f"saw: {expected}")


def _shape_of(value) -> tuple:
    """``np.shape(value)``, read straight off an array (np.shape costs a microsecond a call)."""
    return value.shape if isinstance(value, np.ndarray) else np.shape(value)


def check_targets(x, y, owner: str) -> np.ndarray:
    """Targets ``y`` for the inputs ``x``: one per sample (labels (N,) or rows (N, ...))."""
    if y is None:
        raise TypeError(f"{owner}: y is None; pass the targets, one per sample: labels (N,) or rows "
                        f"(N, classes), here N = {len(x)}")
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != len(x):
        raise ValueError(f"{owner}: got {len(x)} inputs but {y.shape} targets; y needs one target "
                         f"per sample: labels ({len(x)},) or rows ({len(x)}, classes)")
    return y


def refuse_reused_layer(present_layers, layer, owner: str) -> None:
    """One layer object may appear once in a model: twice would share its cache, name and gradients."""
    from .layers.base import iter_layers

    present = {id(existing) for existing in iter_layers(present_layers)}
    for candidate in iter_layers([layer]):
        if id(candidate) in present:
            raise ValueError(
                f"{owner}: layer {candidate.name!r} ({type(candidate).__name__}) is already in the model; "
                f"a layer object can be used only once. For a second layer of the same kind create a "
                f"new object, e.g. {type(candidate).__name__}(...); sharing weights between two places "
                f"in a model is not supported")


def warn_softmax_before_cross_entropy(layers, loss, owner: str) -> None:
    """The cross-entropy loss applies softmax to logits itself: a softmax last layer doubles it."""
    last = layers[-1] if layers else None
    if getattr(loss, "name", None) == "cross_entropy" and getattr(last, "activation", None) == "softmax":
        warnings.warn(
            f"{owner}: the last layer {last.name!r} applies softmax and the loss 'cross_entropy' "
            f"applies softmax again (it expects raw logits); remove activation='softmax' from the last "
            f"layer and use predict_proba() for probabilities", UserWarning, stacklevel=user_stacklevel())


def refuse_rebuilding(layer, input_shape, dtype, owner: str, remedy: str) -> None:
    """A built layer may join a model as it is only if it was built for this input shape and
    dtype; building it again would replace its (maybe trained) weights with new random ones."""
    if tuple(layer.input_shape) != tuple(input_shape):
        raise ValueError(
            f"{owner}: layer {layer.name!r} ({type(layer).__name__}) is built already, for input shape "
            f"{tuple(layer.input_shape)}, but here it gets {tuple(input_shape)}; building it again "
            f"would replace its weights with new random ones: {remedy}")
    if layer.dtype != np.dtype(dtype):
        raise ValueError(
            f"{owner}: layer {layer.name!r} ({type(layer).__name__}) is built already, in {layer.dtype}, "
            f"but the model computes in {np.dtype(dtype)}; give the model dtype={str(layer.dtype)!r}, "
            f"or call layer.astype({str(np.dtype(dtype))!r}) first (it changes the layer for every "
            f"model that holds it)")


def check_sample_shape(input_shape, owner: str) -> tuple[int, ...]:
    """The shape of ONE sample (no batch axis) as a tuple of Python ints, each >= 1: the check of
    ``Layer.build`` and of ``Sequential(input_shape=...)``. Not a sequence of ints (``is_int``:
    a float size, a string) -> TypeError; a size below 1 -> ValueError."""
    is_sequence = hasattr(input_shape, "__iter__") and not isinstance(input_shape, str)
    if not is_sequence or not all(is_int(size) for size in input_shape):
        hint = whole_float_hint(*input_shape) if is_sequence else ""
        raise TypeError(f"{owner}: input_shape must be a tuple of ints for one sample (no batch axis), "
                        f"e.g. (28, 28, 1), got {input_shape!r}{hint}")
    shape = tuple(int(size) for size in input_shape)
    if any(size < 1 for size in shape):
        raise ValueError(f"{owner}: every size in input_shape must be >= 1, got {shape}")
    return shape
