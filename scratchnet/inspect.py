"""Gradients beyond the weights: a layer's output, d(score)/d(input), d(score)/d(a layer's output).

Training only needs dL/dW. To *look inside* a network we want two more things, and both come
from the ordinary layer contract (``forward`` caches, ``backward`` returns dL/dx): no second
autodiff.

With ``a_0 = x`` and ``a_i = layer_i.forward(a_{i-1})`` for the layers ``0 .. m`` of
``model.layers``, and a scalar ``score`` read off ``a_m`` (the *score layer*, by default the
last one), the chain rule is a walk back from ``m``::

    g_m     = d score / d a_m                       (the "target", see below)
    g_{i-1} = layer_i.backward(g_i)                 for i = m, m-1, ..., k+1
    g_k     = d score / d a_k                       -> gradient_at(model, x, k, target)
    g_{-1}  = d score / d x   (walk down to i = 0)  -> input_gradient(model, x, target)

Scores read off several layers (style transfer) add up: ``input_gradient_of_sum`` makes one walk,
adding each layer's d score / d a_l to g_l as it passes.

The target, i.e. ``d score / d a_m`` (shape (N, *out) of the score layer's output ``out``):

* an int ``c``: ``score = sum_n out[n, ..., c]``, the class-``c`` logit of every sample
  (for an output with spatial axes, summed over them). Samples do not interact in inference
  mode, so row n of the result is d out[n, c] / d x[n].
* an integer array ``(N,)``: class ``c_n`` for sample ``n``.
* ``"loss"`` with ``labels=y``: the model's loss (mean over the batch, as in training; pass
  ``loss=`` to use another one, cross-entropy if the model is not compiled).
* a float array of the output's shape: that array *is* ``d score / d out`` (score = sum(out * dy)).
* a callable ``f(out) -> dy``: for scores that depend on the output's value (feature inversion).

Everything runs in inference mode (``training=False``) in the model's dtype; ``dtype="float64"``
runs on a float64 copy of the model instead (the model itself is not touched). The calls never
change parameters, buffers or optimizer state. ``backward`` writes every later layer's
``grads``: those buffers are saved before and restored after, so a call has no effect on a
training step either; and the layers' forward caches are put back as they were
(``layer_tree.caches_kept``), so a call between a training forward and its backward changes nothing.

Only top-level layers (``model.layers``) can be named. A layer inside a container (Residual,
Parallel) is reached through the container: name the container.
"""

from __future__ import annotations

import copy
import numbers

import numpy as np

from .input_checks import require_gradient
from .layer_tree import caches_kept
from .layers.base import Layer, iter_layers
from .losses import get_loss
from .one_thread import refuse_other_threads


# ---------------------------------------------------------------------- finding layers
def layer_index(model, layer) -> int:
    """Index in ``model.layers`` of ``layer`` given as an int (negative counts from the end),
    a name, or the layer object. A name inside a container raises (top-level layers only)."""
    n_layers = len(model.layers)
    if isinstance(layer, numbers.Integral) and not isinstance(layer, bool):
        if not -n_layers <= layer < n_layers:
            raise ValueError(f"{model.name}: layer index {layer} out of range "
                             f"(the model has {n_layers} layers)")
        return int(layer) % n_layers
    for index, candidate in enumerate(model.layers):
        if candidate is layer or (isinstance(layer, str) and candidate.name == layer):
            return index
    for top in model.layers:
        for inner in iter_layers(top.sublayers()):
            if inner is layer or (isinstance(layer, str) and inner.name == layer):
                raise ValueError(f"{model.name}: layer {inner.name!r} is inside the container "
                                 f"{top.name!r}; only top-level layers can be chosen, name {top.name!r}")
    if not isinstance(layer, (str, Layer)):
        raise TypeError(f"{model.name}: a layer is chosen by int index, name or Layer object, "
                        f"got {type(layer).__name__}")
    names = ", ".join(candidate.name for candidate in model.layers)
    raise ValueError(f"{model.name}: no layer {layer!r}; layers are: {names}")


def as_batch(model, images) -> np.ndarray:
    """(N, *input_shape) from one image (the model's input shape) or a batch, as given.

    An unbuilt model with an input_shape is built (as predict would); without one it is an error.
    """
    if model.input_shape is None:
        raise ValueError(f"{model.name}: the model is not built and has no input_shape; give "
                         f"Sequential(input_shape=...), call model.build(input_shape), or train it first")
    model.build()
    images = np.asarray(images)
    return images[np.newaxis] if images.ndim == len(model.input_shape) else images


def _model_in(model, dtype):
    """The model itself, or a deep copy of it cast to ``dtype`` (the original is not touched)."""
    if dtype is None or np.dtype(dtype) == model.dtype:
        return model
    return copy.deepcopy(model).astype(dtype)


# ---------------------------------------------------------------------- activations
def activations(model, x, layers=None, dtype=None) -> dict[str, np.ndarray]:
    """Outputs of the chosen layers for the batch ``x``, in inference mode.

    x : (N, *model.input_shape)
    layers : list of indices / names / Layer objects (default: every layer)
    Returns ``{layer name: output (N, *that layer's output shape)}`` in model order, each a
    copy. The forward pass stops at the deepest chosen layer.
    """
    model = _model_in(model, dtype)
    chosen = range(len(model.layers)) if layers is None else [layer_index(model, lyr) for lyr in layers]
    wanted = sorted(set(chosen))
    with caches_kept(model.layers):
        _, outputs = _forward(model, x, wanted[-1] if wanted else -1, wanted)
    return {model.layers[index].name: outputs[index] for index in wanted}


def _forward(model, x, last: int, keep) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Run ``model.layers[0 .. last]`` on x in inference mode (last = -1: only check x).

    Returns the output of layer ``last`` and ``{index: a copy of layer index's output}`` for the
    indices in ``keep`` (-1 stands for the input x itself).
    """
    refuse_other_threads(model, "running its layers")  # a fit in another thread needs their caches
    out = model._prepare_input(x)
    outputs = {-1: np.array(out, copy=True)} if -1 in keep else {}
    for index, layer in enumerate(model.layers[:last + 1]):
        out = layer.forward(out, training=False)
        if index in keep:
            outputs[index] = np.array(out, copy=True)
    return out, outputs


# ---------------------------------------------------------------------- the target
def _output_gradient(model, out, target, labels, loss) -> np.ndarray:
    """d score / d out for one of the target forms of the module docstring."""
    if callable(target):
        dy = np.asarray(target(out))
    elif isinstance(target, str):
        if target != "loss":
            raise ValueError(f"{model.name}: target must be a class index, an array, 'loss' or a "
                             f"callable, got the string {target!r}")
        if labels is None:
            raise ValueError(f"{model.name}: target='loss' needs labels=y (the true classes)")
        loss = copy.copy(get_loss(loss if loss is not None else (model.loss or "cross_entropy")))
        loss.forward(out, labels)
        dy = loss.backward()
    else:
        array = np.asarray(target)
        if array.dtype.kind in "iu":  # an int or one int per sample
            dy = _one_hot_gradient(model, out, array)
        elif array.dtype.kind == "f":
            dy = array
        else:
            raise TypeError(f"{model.name}: target must be an int, an int array (N,), 'loss', a float "
                            f"array of the output's shape or a callable, got {target!r}")
    if dy.shape != out.shape:
        raise ValueError(f"{model.name}: the gradient for the output must have the output's shape "
                         f"{out.shape}, got {dy.shape}")
    return dy.astype(out.dtype, copy=False)


def _one_hot_gradient(model, out, classes) -> np.ndarray:
    """dy = 1 at [n, ..., c_n] (every position of the other axes), 0 elsewhere."""
    n, n_classes = out.shape[0], out.shape[-1]
    classes = np.broadcast_to(classes, (n,)) if classes.ndim == 0 else classes
    if classes.shape != (n,):
        raise ValueError(f"{model.name}: expected one class index per sample ({n},), "
                         f"got shape {classes.shape}")
    if classes.size and (classes.min() < 0 or classes.max() >= n_classes):
        raise ValueError(f"{model.name}: class indices must be in [0, {n_classes - 1}], got values "
                         f"from {classes.min()} to {classes.max()}")
    dy = np.zeros_like(out)
    dy[np.arange(n), ..., classes] = 1
    return dy


# ---------------------------------------------------------------------- the walk back
def backprop(model, x, target, layer=None, score_layer=None, labels=None, loss=None, dtype=None):
    """Forward to the score layer, then backward down to ``layer`` (None: down to the input).

    Returns ``(activation, gradient, output)``: the output of ``layer`` (the input x for None),
    d score / d that activation (same shape), and the score layer's output. The lower-level
    call behind ``gradient_at``, ``input_gradient`` and the pictures of ``interpret.py`` and
    ``interpret_synthesis.py``.
    """
    model = _model_in(model, dtype)
    stop = len(model.layers) - 1 if score_layer is None else layer_index(model, score_layer)
    start = -1 if layer is None else layer_index(model, layer)  # -1: the input
    if start >= stop:
        raise ValueError(f"{model.name}: layer {model.layers[start].name!r} must come before the "
                         f"score layer {model.layers[stop].name!r}")
    with caches_kept(model.layers):
        out, outputs = _forward(model, x, stop, keep=(start,))
        grad = _walk_back(model, start, {stop: _output_gradient(model, out, target, labels, loss)})
    return outputs[start], grad, out


def _walk_back(model, start: int, added: dict[int, np.ndarray]) -> np.ndarray:
    """d score / d a_start (start = -1: the input), after a forward pass to the deepest key of
    ``added`` = {layer index i: d score / d a_i from the scores read off layer i}::

        g_stop  = added[stop]                                 (stop = the deepest key)
        g_{i-1} = layer_i.backward(g_i) + added.get(i - 1, 0)  for i = stop, ..., start + 1

    backward writes the grads of the layers it passes: they are saved before and restored after.
    """
    stop = max(added)
    later = model.layers[start + 1:stop + 1]
    touched = list(iter_layers(later))  # with the layers inside containers, whose grads backward fills
    saved = [{key: value.copy() for key, value in current.grads.items()} for current in touched]
    grad = added[stop]
    try:
        for index in range(stop, start, -1):
            layer = model.layers[index]
            grad_below = layer.backward(grad)  # g_{i-1} = layer_i.backward(g_i)
            require_gradient(grad_below, layer, model.name, grad)  # your own layer: None, a wrong shape
            grad = grad_below
            if index - 1 in added:
                grad = grad + added[index - 1]  # + d score / d a_{i-1} of the scores read there
    finally:
        for current, grads in zip(touched, saved):  # backward wrote them; put them back
            for key, value in grads.items():
                current.grads[key][...] = value
    return grad


def input_gradient(model, x, target, labels=None, loss=None, score_layer=None, dtype=None) -> np.ndarray:
    """d score / d x, shape of x (N, *input_shape). ``target``: see the module docstring.

    >>> grad = input_gradient(model, images, 3)                  # d logit_3 / d pixels
    >>> grad = input_gradient(model, images, "loss", labels=y)    # d mean loss / d pixels
    """
    return backprop(model, x, target, None, score_layer, labels, loss, dtype)[1]


def input_gradient_of_sum(model, x, targets: dict, labels=None, loss=None, dtype=None) -> np.ndarray:
    """d (score_1 + score_2 + ...) / d x, shape of x, for scores read off several layers.

    targets : {layer (index / name / Layer): target} (the target forms of the module docstring),
        e.g. ``{1: d_loss_1, 4: d_loss_4}``; their callables are called in model order.
    Equals ``sum(input_gradient(model, x, target, score_layer=layer) for layer, target in ...)``
    but makes one forward pass to the deepest layer and ONE walk back: d/dx is linear, so the
    walk adds d score_l / d a_l to the running gradient as it passes layer l (``_walk_back``).
    """
    model = _model_in(model, dtype)
    indices = [layer_index(model, layer) for layer in targets]
    if not indices:
        raise ValueError(f"{model.name}: input_gradient_of_sum needs at least one {{layer: target}}")
    with caches_kept(model.layers):
        _, outputs = _forward(model, x, max(indices), keep=indices)
        added = {}  # {layer index: d score / d a_i summed over the targets at layer i}
        for index, target in sorted(zip(indices, targets.values()), key=lambda pair: pair[0]):
            dy = _output_gradient(model, outputs[index], target, labels, loss)
            added[index] = dy if index not in added else added[index] + dy
        return _walk_back(model, -1, added)


def gradient_at(model, x, layer, target, labels=None, loss=None, score_layer=None, dtype=None,
                return_activation=False):
    """d score / d (output of ``layer``), shape (N, *that layer's output shape).

    With ``return_activation=True`` returns ``(activation, gradient)``, what Grad-CAM needs.
    """
    activation, grad, _ = backprop(model, x, target, layer, score_layer, labels, loss, dtype)
    return (activation, grad) if return_activation else grad
