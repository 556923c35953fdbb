"""Weight layouts and PyTorch ``state_dict`` key names, in NumPy only (no torch import).

scratchnet is channels-last; PyTorch is channels-first. The arrays differ by transposes only,
so every conversion here is exact (a permutation of the same numbers, bitwise):

    layer            scratchnet array                     PyTorch tensor
    Dense            W (D_in, D_out)          <->  weight (D_out, D_in) = W.T;  b <-> bias
    Conv2D           W (kh, kw, C/g, F)       <->  weight (F, C/g, kh, kw) = W.transpose(3, 2, 0, 1)
    DepthwiseConv2D  W (kh, kw, C, M)         <->  weight (C*M, 1, kh, kw): output channel c*M + m
    SeparableConv2D  depthwise_W, pointwise_W <->  depthwise.weight, pointwise.weight, pointwise.bias
    BatchNorm        gamma, beta, mean, var   <->  weight, bias, running_mean, running_var
                                                   (+ num_batches_tracked = 0, which scratchnet does not
                                                   count; with a momentum PyTorch never reads it)

Key names follow the module tree ``to_torch`` builds (the "twin"), so
``to_torch(model).state_dict()`` and ``torch_state_dict(model)`` have the same keys:

    top-level layer i          "i."              Chain child j        "<prefix>.j."
    Residual                   "<prefix>.block." and "<prefix>.shortcut."
    Parallel branch k          "<prefix>.branches.k."
"""

from __future__ import annotations

import numpy as np

from .. import layers as L

TRACKED = "num_batches_tracked"


# ------------------------------------------------------------------ one layer
# Layers with weights, by their scratchnet class (compared as class objects, never by name: a
# class of your own named Dense may hold other arrays). A subclass inherits its parent's arrays.
_LAYOUT_FAMILIES = ((L.SeparableConv2D, "SeparableConv2D"), (L.DepthwiseConv2D, "DepthwiseConv2D"),
                    (L.Conv2D, "Conv2D"), (L.Dense, "Dense"), (L.BatchNorm, "BatchNorm"))


def _kind(layer) -> str | None:
    """The layout family of a layer with weights: its scratchnet class or the one it subclasses
    (None for any other layer: no layout is known for its arrays)."""
    for family, kind in _LAYOUT_FAMILIES:
        if isinstance(layer, family):
            return kind
    return None


def to_torch_arrays(layer, arrays: dict) -> dict:
    """{torch suffix: array in torch layout} from a layer's {param or buffer name: array}.

    ``arrays`` is ``{**layer.params, **layer.buffers}`` (or the grads: same keys as params).
    """
    kind, out = _kind(layer), {}
    if kind == "Dense":
        out["weight"] = arrays["W"].T                                  # (D_out, D_in)
    elif kind == "Conv2D":
        out["weight"] = arrays["W"].transpose(3, 2, 0, 1)              # (F, C/g, kh, kw)
    elif kind == "DepthwiseConv2D":
        kh, kw, c, m = arrays["W"].shape                               # (kh, kw, 1, C*M) first
        out["weight"] = arrays["W"].reshape(kh, kw, 1, c * m).transpose(3, 2, 0, 1)
    elif kind == "SeparableConv2D":
        kh, kw, c, m = arrays["depthwise_W"].shape
        out["depthwise.weight"] = arrays["depthwise_W"].reshape(kh, kw, 1, c * m).transpose(3, 2, 0, 1)
        out["pointwise.weight"] = arrays["pointwise_W"].transpose(3, 2, 0, 1)
        if "b" in arrays:
            out["pointwise.bias"] = arrays["b"]
        return {key: np.ascontiguousarray(value) for key, value in out.items()}
    elif kind == "BatchNorm":
        out["weight"], out["bias"] = arrays["gamma"], arrays["beta"]
        for ours, theirs in (("mean", "running_mean"), ("var", "running_var")):
            if ours in arrays:
                out[theirs] = arrays[ours]
        return {key: np.ascontiguousarray(value) for key, value in out.items()}
    elif arrays:
        raise TypeError(f"{layer.name}: no PyTorch layout known for {type(layer).__name__} "
                        f"(arrays {', '.join(arrays)})")
    if "b" in arrays:
        out["bias"] = arrays["b"]
    return {key: np.ascontiguousarray(value) for key, value in out.items()}


def from_torch_arrays(layer, arrays: dict) -> dict:
    """The inverse of :func:`to_torch_arrays`: {param or buffer name: array in scratchnet layout}."""
    kind, out = _kind(layer), {}
    if kind == "Dense":
        out["W"] = arrays["weight"].T
    elif kind == "Conv2D":
        out["W"] = arrays["weight"].transpose(2, 3, 1, 0)
    elif kind == "DepthwiseConv2D":
        kh, kw, c, m = layer.params["W"].shape
        out["W"] = arrays["weight"].transpose(2, 3, 1, 0).reshape(kh, kw, c, m)
    elif kind == "SeparableConv2D":
        kh, kw, c, m = layer.params["depthwise_W"].shape
        out["depthwise_W"] = arrays["depthwise.weight"].transpose(2, 3, 1, 0).reshape(kh, kw, c, m)
        out["pointwise_W"] = arrays["pointwise.weight"].transpose(2, 3, 1, 0)
        if "pointwise.bias" in arrays:
            out["b"] = arrays["pointwise.bias"]
        return out
    elif kind == "BatchNorm":
        out = {"gamma": arrays["weight"], "beta": arrays["bias"],
               "mean": arrays["running_mean"], "var": arrays["running_var"]}
        return out
    if "bias" in arrays:
        out["b"] = arrays["bias"]
    return out


# ------------------------------------------------------------------ the tree
def twin_prefixes(model) -> list[tuple[str, object]]:
    """(key prefix, layer) for every layer of the model, with the module paths of ``to_torch``'s twin."""
    entries = []

    def walk(layer, prefix):
        entries.append((prefix, layer))
        kind = type(layer).__name__
        if isinstance(layer, L.Chain):
            for j, child in enumerate(layer.children):
                walk(child, f"{prefix}.{j}")
        elif isinstance(layer, L.Residual):
            walk(layer.block, f"{prefix}.block")
            if layer.shortcut is not None:
                walk(layer.shortcut, f"{prefix}.shortcut")
        elif isinstance(layer, L.Parallel):
            for k, branch in enumerate(layer.branches):
                walk(branch, f"{prefix}.branches.{k}")
        elif layer.sublayers():
            raise TypeError(f"{layer.name}: no PyTorch twin for the container {kind}")

    for i, layer in enumerate(model.layers):
        walk(layer, str(i))
    return entries


def torch_state_dict(model) -> dict[str, np.ndarray]:
    """Every parameter and buffer under PyTorch ``state_dict`` names and layouts (NumPy arrays).

    The keys are those of ``to_torch(model).state_dict()``: ``"0.weight"``, ``"0.bias"``, ... .
    """
    if not model.built:
        raise ValueError(f"{model.name}: the model is not built, it has no weights yet")
    state = {}
    for prefix, layer in twin_prefixes(model):
        arrays = {**layer.params, **layer.buffers}
        if not arrays:
            continue
        for suffix, value in to_torch_arrays(layer, arrays).items():
            state[f"{prefix}.{suffix}"] = value.copy()
        if _kind(layer) == "BatchNorm":
            state[f"{prefix}.{TRACKED}"] = np.array(0, dtype=np.int64)
    return state


def _as_numpy(value) -> np.ndarray:
    """A torch tensor (CPU or not, with or without grad) or array-like, as a NumPy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def load_torch_state_dict(model, state_dict) -> None:
    """Copy a PyTorch-style ``state_dict`` (tensors or arrays) into ``model``.

    The keys and layouts are those of ``to_torch(model).state_dict()`` (``"0.weight"``, ...);
    ``num_batches_tracked`` entries are ignored. Every key and shape is checked before any
    weight changes: a mismatch raises ``ValueError`` naming the missing and unexpected keys.
    """
    if not model.built:
        model.build()
    given = {key: _as_numpy(value) for key, value in dict(state_dict).items()
             if not key.endswith("." + TRACKED)}
    owners = []  # (key prefix, layer, its own arrays, its torch suffixes "weight", "running_mean", ...)
    for prefix, layer in twin_prefixes(model):
        own = {**layer.params, **layer.buffers}
        if own:
            owners.append((prefix, layer, own, list(to_torch_arrays(layer, own))))
    expected = {f"{prefix}.{suffix}" for prefix, _, _, suffixes in owners for suffix in suffixes}
    missing, unexpected = sorted(expected - set(given)), sorted(set(given) - expected)
    if missing or unexpected:
        prefixed = unexpected and all(key.startswith("module.") for key in unexpected)
        hint = ("; every unexpected key starts with 'module.' (saved from nn.DataParallel or "
                "DistributedDataParallel): strip it, {key.removeprefix('module.'): value for key, value in "
                "state_dict.items()}" if prefixed else "")
        raise ValueError(f"{model.name}: the state_dict does not match the model's PyTorch twin "
                         f"(to_torch(model).state_dict() keys): missing {missing}, "
                         f"unexpected {unexpected}{hint}")
    weights = {}
    for prefix, layer, own, suffixes in owners:
        theirs = {suffix: given[f"{prefix}.{suffix}"] for suffix in suffixes}
        for name, value in from_torch_arrays(layer, theirs).items():
            if value.shape != own[name].shape:
                raise ValueError(f"{layer.name}: {name!r} has shape {own[name].shape} in the model, but the "
                                 f"state_dict under '{prefix}.' gives {value.shape} once converted to "
                                 f"scratchnet's layout")
            weights[f"{layer.name}/{name}"] = value
    model.set_weights(weights)
