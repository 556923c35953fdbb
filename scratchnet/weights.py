"""A model's weights by name: ``{"layer_name/param_name": array}`` for every parameter and buffer.

``Sequential.get_weights`` / ``set_weights`` call these; save_weights writes the same names.
"""

from __future__ import annotations

import numpy as np

from .layers.base import iter_layers


def weight_arrays(model) -> dict[str, np.ndarray]:
    """The live arrays: ``{"layer/param": array}``, layers inside containers too (names are
    unique over the whole tree)."""
    weights = {}
    for layer in iter_layers(model.layers):  # layers inside containers too
        for store in (layer.params, layer.buffers):
            for key, value in store.items():
                weights[f"{layer.name}/{key}"] = value
    return weights


def get_weights(model) -> dict[str, np.ndarray]:
    """A COPY of every parameter and buffer as ``{"layer_name/param_name": array}``.

    Copies, so ``best = model.get_weights()`` keeps its values while training goes on.
    """
    return {key: value.copy() for key, value in weight_arrays(model).items()}


def set_weights(model, weights) -> None:
    """Copy arrays in, by name (a dict as get_weights returns) or in order (a list).

    Every name and shape is checked before anything changes; values must be real numbers (bool,
    integer or float) and are converted to the model's dtype (float64 weights load into a float32
    model).
    """
    if not model.built:
        model.build()
    own = weight_arrays(model)
    if isinstance(weights, (list, tuple)):
        if len(weights) != len(own):
            raise ValueError(f"{model.name}: set_weights got a list of {len(weights)} arrays, the "
                             f"model has {len(own)} ({', '.join(own)})")
        weights = dict(zip(own, weights))
    if not isinstance(weights, dict):
        raise TypeError(f"{model.name}: set_weights expects a dict (as get_weights returns) or a "
                        f"list of arrays in layer order, got {type(weights).__name__}")
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if missing or unexpected:
        raise ValueError(f"{model.name}: weights do not match the model: missing {missing}, "
                         f"unexpected {unexpected}{_only_names_differ(own, weights)}")
    converted = {}
    for key, value in weights.items():
        value = np.asarray(value)
        layer_name, param = key.rsplit("/", 1)
        if value.shape != own[key].shape:
            raise ValueError(f"{layer_name}: parameter {param!r} has shape {own[key].shape} "
                             f"in the model but {value.shape} in the weights")
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{layer_name}: parameter {param!r} must hold real numbers, got dtype "
                            f"{value.dtype} in the weights")
        converted[key] = value.astype(own[key].dtype)  # converted now: the copy below cannot fail
    for key, value in converted.items():
        own[key][...] = value  # in place: the arrays the layers and optimizer hold


def _only_names_differ(own: dict, weights: dict) -> str:
    """A hint when the weights would fit by position: the same count, the same parameter names
    ("W", "b") and shapes in order, only the layer names differ (e.g. "dense_3/W" for "dense/W",
    from a model whose layers were named automatically after others). Else "".
    """
    if len(weights) != len(own):
        return ""
    for (their_key, their_value), (our_key, our_value) in zip(weights.items(), own.items()):
        same_param = isinstance(their_key, str) and their_key.rsplit("/", 1)[-1] == our_key.rsplit("/", 1)[-1]
        if not same_param or np.shape(their_value) != our_value.shape:
            return ""
    pairs = [(theirs, ours) for theirs, ours in zip(weights, own) if theirs != ours]
    return (f"; only the layer names differ (the same arrays in the same order; the weights' "
            f"{pairs[0][0]!r} is the model's {pairs[0][1]!r}): build the model with the weights' layer "
            f"names (name=... on each layer), or give set_weights the arrays as a list, which it "
            f"matches by position: model.set_weights(list(weights.values()))")
