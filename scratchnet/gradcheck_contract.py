"""The layer contract, checked before any number is compared (used by ``gradcheck.check_layer``).

A backward can be numerically right and still break training: a bias gradient of shape (1, 3)
for a bias (3,) that the optimizer broadcasts, a backward that takes its own SGD step (``fit``
then updates twice), a dx with an extra axis. Each check here returns sentences that name the
layer and the array; an empty list means the contract holds.

    grads      exactly the keys of params, each with the shape and dtype of its parameter
    dx         an array of the input's shape (and dtype)
    no side    backward changes no parameter (nor the params dict), not the cached input, not dy
    repeat     backward twice on the same forward gives the same dx and grads
    inference  forward(x, training=False) twice gives the same output
"""

from __future__ import annotations

import os
import sysconfig
import traceback

import numpy as np

from .layers.base import Layer


def describe_exception(name: str, where: str, error: BaseException) -> str:
    """'conv2d: backward raised KeyError: 'W' (student.py line 12, in backward)'.

    ``name``: who raised it, a layer's name or a file's (the grader's "importing the file").
    The place named is the last frame in the STUDENT's code (not in numpy, the standard library
    or scratchnet, where the error may surface); a SyntaxError names its own file and line.
    """
    if isinstance(error, SyntaxError) and error.filename:
        place = f" ({error.filename.rsplit('/', 1)[-1]} line {error.lineno})"
        return f"{name}: {where} raised {type(error).__name__}: {error.msg}{place}"
    frames = traceback.extract_tb(error.__traceback__)
    students = [frame for frame in frames if not _is_library_file(frame.filename)]
    frame = (students or frames or [None])[-1]
    place = f" ({frame.filename.rsplit('/', 1)[-1]} line {frame.lineno}, in {frame.name})" if frame else ""
    return f"{name}: {where} raised {type(error).__name__}: {error}{place}"


def _is_library_file(filename: str) -> bool:
    """True for scratchnet's own files, numpy's, the standard library's and "<frozen ...>" ones
    (and NumPy < 1.25's "<__array_function__ internals>" frames)."""
    if filename.startswith(("<frozen", "<__array_function__")):
        return True
    path = os.path.realpath(filename)
    return any(path.startswith(root + os.sep) for root in _library_roots())


def _library_roots():
    roots = {os.path.dirname(os.path.realpath(__file__))}   # scratchnet/
    roots |= {os.path.realpath(sysconfig.get_paths()[key]) for key in ("stdlib", "purelib", "platlib")}
    return roots


def check_output_shape(layer, x, y) -> list[str]:
    """forward's samples must have the shape ``output_shape`` declares: a model builds the next
    layer from output_shape, so a mismatch fails there, blamed on the wrong layer."""
    try:
        declared = tuple(layer.output_shape(tuple(x.shape[1:])))
    except Exception as error:
        return [describe_exception(layer.name, "output_shape", error)]
    if tuple(y.shape[1:]) != declared:
        return [f"{layer.name}: forward returned samples of shape {tuple(y.shape[1:])}, but "
                f"output_shape({tuple(x.shape[1:])}) says {declared}: a model builds the next layer for "
                "output_shape; make the two agree"]
    return []


def not_a_layer(obj) -> list[str]:
    """check_layer was handed something that is not a Layer (a loss, a function): say what to use."""
    if isinstance(obj, Layer):
        return []
    kind = type(obj).__name__
    if callable(getattr(obj, "forward", None)) and callable(getattr(obj, "backward", None)) and \
            not hasattr(obj, "build"):
        return [f"{kind} is not a Layer (no build, no params): a loss? check it with "
                "scratchnet.gradcheck.check_loss(loss, logits, labels)"]
    return [f"{kind} is not a Layer: check_layer checks subclasses of scratchnet.layers.Layer"]


def params_made_in_init(layer) -> list[str]:
    """Before ``build``: the names of params an unbuilt layer created in ``__init__`` although it
    has no ``init_params`` (``Layer.build`` replaces ``self.params`` with what init_params
    returns, {} by default). Whether a build override keeps them is seen after it ran:
    ``params_lost_in_build``."""
    if layer.built or not layer.params or type(layer).init_params is not Layer.init_params:
        return []
    return list(layer.params)


def params_lost_in_build(layer, made_in_init: list[str]) -> list[str]:
    """After ``build``: a problem if params created in ``__init__`` are gone (Layer.build, or an
    override calling ``super().build``, replaced them: a raw KeyError in forward otherwise). A
    build of one's own that keeps them (fixed weights given to the constructor) is fine."""
    lost = [key for key in made_in_init if key not in layer.params]
    if not lost:
        return []
    keys = ", ".join(map(repr, lost))
    return [f"{layer.name}: params {keys} were created in __init__, but build() replaces "
            "self.params with what init_params(input_shape, rng) returns, and init_params is "
            "not overridden (it returns {}): create the parameters in init_params and return "
            "them as a dict (build then casts them to the layer's dtype)"]


def same_but_for_ones(shape, other) -> bool:
    """(1, 3) and (3,), (4, 1, 2) and (4, 2): equal but for axes of size 1 (keepdims, a reshape)."""
    return tuple(s for s in shape if s != 1) == tuple(s for s in other if s != 1)


def grad_shape_hint(grad_shape, param_shape) -> str:
    """The usual cause of a gradient whose shape is not its parameter's ('' if none is known);
    also used by the optimizer's step (optimizers.check_gradient_shapes)."""
    if same_but_for_ones(grad_shape, param_shape):
        return (" (an extra axis of size 1: sum with axis=0 and no keepdims; the optimizer "
                "would broadcast the update into the wrong shape)")
    if tuple(grad_shape) == tuple(param_shape)[::-1]:
        return " (transposed: dW = x.T @ dz has the shape of W)"
    return ""


def check_dx(layer, dx, x) -> list[str]:
    """dx must be an array of x's shape."""
    name = layer.name
    if dx is None:
        return [f"{name}: backward returned None; it must return dx = dL/dx, an array of the "
                f"input's shape {x.shape}"]
    if not isinstance(dx, np.ndarray):
        return [f"{name}: backward returned a {type(dx).__name__}, expected dx as a numpy array "
                f"of shape {x.shape}"]
    if dx.shape == x.shape:
        return [] if dx.dtype == x.dtype else [
            f"{name}: backward returned dx of dtype {dx.dtype}, the input is {x.dtype}: compute "
            "in self.dtype (the check runs in float64)"]
    hint = ""
    if 0 in dx.shape and 0 not in x.shape:
        hint = (" (an empty axis: a slice like dxp[:, p:-p] is empty when p = 0, as -0 is 0; "
                "crop with [p:p+H])")
    elif same_but_for_ones(dx.shape, x.shape):
        hint = " (an extra or missing axis of size 1: check keepdims / reshape)"
    elif sorted(dx.shape) == sorted(x.shape):
        hint = " (the axes are in the wrong order: a transposed product?)"
    return [f"{name}: backward returned dx of shape {dx.shape}, expected the input's shape "
            f"{x.shape}{hint}"]


def check_grads(layer) -> list[str]:
    """grads has exactly params' keys, each with its parameter's shape and dtype."""
    name, problems = layer.name, []
    params, grads = layer.params, layer.grads
    if not isinstance(grads, dict):
        return [f"{name}: self.grads must be a dict like self.params, got {type(grads).__name__}"]
    for key in params:
        if key not in grads:
            problems.append(f"{name}: grads has no {key!r} (params has {', '.join(map(repr, params))}): "
                            f"backward must fill grads[{key!r}]")
    for key in grads:
        if key not in params:
            problems.append(f"{name}: grads has {key!r}, which is not a parameter "
                            f"(params has {', '.join(map(repr, params)) or 'none'})")
    for key in params:
        if key not in grads:
            continue
        grad, param = grads[key], params[key]
        if not isinstance(grad, np.ndarray):
            problems.append(f"{name}: grads[{key!r}] is a {type(grad).__name__}, expected an array of "
                            f"shape {param.shape}")
        elif grad.shape != param.shape:
            problems.append(f"{name}: grads[{key!r}] has shape {grad.shape} but params[{key!r}] has "
                            f"shape {param.shape}{grad_shape_hint(grad.shape, param.shape)}")
        elif grad.dtype != param.dtype:
            problems.append(f"{name}: grads[{key!r}] is {grad.dtype} but params[{key!r}] is "
                            f"{param.dtype}: compute in the parameter's dtype")
    return problems


def cached_arrays(cache, path=()):
    """Every array in ``cache`` as {path: array}, also inside nested dicts, lists and tuples (a
    kernel may keep a list of arrays, as Winograd's V chunks); path = the keys/indices to it."""
    if isinstance(cache, np.ndarray):
        return {path: cache}
    if isinstance(cache, dict):
        items = cache.items()
    elif isinstance(cache, (list, tuple)):
        items = enumerate(cache)
    else:
        return {}
    found = {}
    for key, value in items:
        found.update(cached_arrays(value, (*path, key)))
    return found


def cache_path_text(path) -> str:
    """('winograd', 'V_chunks', 0) -> "cache['winograd']['V_chunks'][0]"."""
    return "cache" + "".join(f"[{key!r}]" for key in path)


def snapshot_params(layer):
    """The params dict and copies of its arrays: backward must change neither."""
    return {"params_dict": layer.params,
            "params": {key: np.array(value, copy=True) for key, value in layer.params.items()}}


def snapshot(layer):
    """What backward must leave alone: the params dict, its arrays' values, the cache's arrays."""
    return {**snapshot_params(layer),
            "cache": {path: np.array(value, copy=True) for path, value in cached_arrays(layer.cache).items()}}


def restore(leaves, snapshots):
    """Put back what backward changed: each layer's params dict, its arrays, its cached arrays."""
    for layer, saved in zip(leaves, snapshots):
        layer.params = saved["params_dict"]
        for key, value in saved["params"].items():
            layer.params[key] = value.copy()
        for path, value in saved["cache"].items():
            _put_back(layer, path, value)


def _put_back(layer, path, saved):
    """Restore one cached array at ``path`` (keys/indices into layer.cache, as ``snapshot`` took
    them), whatever the cache is: a dict, or a student's array or tuple (reported already)."""
    if not path:
        layer.cache = saved.copy()
        return
    try:
        parent = layer.cache
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, tuple):  # a tuple's slots cannot be reassigned: copy into the array
            np.copyto(parent[path[-1]], saved)
        else:
            parent[path[-1]] = saved.copy()
    except (KeyError, IndexError, TypeError, ValueError):
        pass  # backward replaced the cache's structure: check_side_effects has said so


def check_cache_type(layer) -> list[str]:
    """After forward, self.cache must be a dict (backward, pickling and this checker rely on it)."""
    if isinstance(layer.cache, dict):
        return []
    return [f"{layer.name}: self.cache is of type {type(layer.cache).__name__} after forward; "
            'self.cache must be a dict, e.g. self.cache = {"x": x}']


def check_side_effects(layer, before, dy, dy_copy) -> list[str]:
    """backward changed no parameter, not the params dict, not the cache, not dy."""
    name, problems = layer.name, []
    if layer.params is not before["params_dict"] or set(layer.params) != set(before["params"]):
        problems.append(f"{name}: backward replaced the params dict (self.params = ...); backward "
                        "must only fill self.grads: the optimizer updates the parameters")
    for key, old in before["params"].items():
        new = layer.params.get(key)
        if new is None or np.shape(new) != old.shape:
            continue
        if not np.array_equal(new, old):
            change = float(np.max(np.abs(np.asarray(new) - old)))
            problems.append(f"{name}: backward changed params[{key!r}] (max change {change:.3g}): did "
                            "it take its own update step (W -= lr * dW)? backward must not change "
                            "parameters; fit would update them twice")
    cache_now = cached_arrays(layer.cache)
    for path, old in before["cache"].items():
        new = cache_now.get(path)
        if isinstance(new, np.ndarray) and new.shape == old.shape and not np.array_equal(new, old):
            problems.append(f"{name}: backward modified the cached array {cache_path_text(path)} in "
                            "place (e.g. x *= mask): a second backward would read the changed value")
    if not np.array_equal(dy, dy_copy):
        problems.append(f"{name}: backward modified dy in place (e.g. dy *= mask or dy[...] = 0): "
                        "the layer below still needs the original; work on a copy")
    return problems


def compare_repeat(layer, first, second, what) -> list[str]:
    """Two arrays from two identical calls must agree (up to round-off). Anything that is not an
    array of numbers (None, a tuple (dx, dW) of two shapes) is left to the checks of its type."""
    if first is None or second is None:
        return []
    try:
        first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    except (TypeError, ValueError):  # ragged: "setting an array element with a sequence"
        return []
    if first.shape != second.shape:
        return []
    scale = max(float(np.max(np.abs(first), initial=0)), 1e-12)
    difference = float(np.max(np.abs(first - second), initial=0))
    if difference > 1e-12 * scale:
        if what.startswith("forward"):
            suspects = "change its parameters or its buffers, or draw new random numbers"
        else:
            suspects = ("accumulate into self.grads (+=) without resetting, change its cache, or draw new "
                        "random numbers")
        return [f"{layer.name}: calling {what} twice gave different results (max difference "
                f"{difference:.3g}): does it {suspects}?"]
    return []


def input_changed(forward, x) -> bool:
    """Does ``forward(a copy of x)`` change that copy (x /= k * k, logits -= max)? A NaN stays NaN."""
    given = np.array(x, copy=True)
    forward(given)
    return not np.array_equal(given, x, equal_nan=True)


INPUT_CHANGED = ("forward modified its input in place (e.g. x /= k * k, x -= x.max(...)): the caller's "
                 "array changed under it (the layer below, the next call); compute a new array instead "
                 "(x = x / (k * k))")
