"""to_torch: a scratchnet model as an equivalent ``torch.nn`` module with the same weights.

The twin is a ``ScratchnetSequential`` (an ``nn.Sequential``): module i is top-level layer i.
It takes channels-last input like the model (``channels_first=True``: (N, C, H, W) in and out)
and works channels-first inside. What has to be said explicitly:

* kernels: (kh, kw, C, F) -> (F, C, kh, kw), Dense W (D_in, D_out) -> weight (D_out, D_in);
* padding: a symmetric padding is ``nn.Conv2d(padding=(ph, pw))``; an asymmetric one ("same"
  with an odd total: the extra cell at the bottom/right) is an explicit ``F.pad`` first
  (``PaddedConv2d``, ``PaddedMaxPool2d`` pads with -inf, ``PaddedAvgPool2d`` counts real cells);
* Flatten reads (h, w, c) order: ``FlattenChannelsLast`` permutes to NHWC before flattening,
  so the Dense weights are the same numbers;
* BatchNorm: same momentum (PyTorch's convention in both), eps, running statistics; a frozen
  BatchNorm always uses its running statistics (``FrozenBatchNorm2d``), as in scratchnet;
* frozen layers: ``requires_grad = False`` on their parameters;
* dropout: same rate, but the random masks differ.

Every module carries ``scratchnet_name`` (the layer's name) and ``scratchnet_options`` (padding as
written, e.g. "same", backend, initializer), so ``from_torch`` gives them back.
"""

from __future__ import annotations

from .. import layers as L
from .layouts import torch_state_dict

SUPPORTED_LAYERS = ("Dense", "Conv2D (groups)", "DepthwiseConv2D", "SeparableConv2D", "Activation",
                    "Flatten", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "BatchNorm", "Dropout",
                    "SpatialDropout2D", "ChannelShuffle", "ZeroPadding2D", "UpSampling2D", "Chain",
                    "Residual", "Parallel (merge add or concat)")


class UnsupportedLayerError(TypeError):
    """A layer or module the bridge cannot translate; the message names it and lists what it can."""


def _refuse(layer, why: str = "") -> None:
    raise UnsupportedLayerError(
        f"to_torch: layer {layer.name!r} ({type(layer).__name__}) has no PyTorch equivalent here{why}; "
        f"supported layers: {', '.join(SUPPORTED_LAYERS)}")


def _not_translated(layer) -> str:
    """Why a layer of an unknown class is refused, when its class looks like a supported one.

    Layers are recognised by their exact class (``type(layer) is layers.Dense``), never by name:
    a subclass, or a class of your own named Dense, may compute something else in forward."""
    cls = type(layer)
    where = f"{cls.__module__}.{cls.__qualname__}"
    parents = [base for base in cls.__mro__[1:] if base in TRANSLATED]
    if parents:
        return (f" (class {where} is a subclass of scratchnet's {parents[0].__name__}: only these exact "
                f"classes are translated, since a subclass may change forward)")
    if any(cls.__name__ == known.__name__ for known in TRANSLATED):
        return (f" (class {where} is not scratchnet.layers.{cls.__name__}: only scratchnet's own classes "
                f"are translated, since another class of that name may compute something else)")
    return ""


# The classes convert_layer translates, compared by identity (``type(layer) is L.Dense``).
TRANSLATED = (L.Dense, L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D, L.Activation, L.Flatten, L.MaxPool2D,
              L.AvgPool2D, L.GlobalAvgPool2D, L.BatchNorm, L.Dropout, L.SpatialDropout2D, L.ChannelShuffle,
              L.ZeroPadding2D, L.UpSampling2D, L.Chain, L.Residual, L.Parallel)


def _symmetric(pads) -> bool:
    return all(before == after for before, after in pads)


def _conv(layer, torch, tm, factory):
    from ..layers.spatial import resolve_padding
    height, width, channels = layer.input_shape
    groups = getattr(layer, "groups", 1)
    pads = resolve_padding(layer.padding, (height, width), layer.kernel_size, layer.stride, layer.dilation)
    options = dict(kernel_size=layer.kernel_size, stride=layer.stride, dilation=layer.dilation,
                   bias=layer.use_bias, **factory)
    if _symmetric(pads):
        return torch.nn.Conv2d(channels, layer.filters, padding=(pads[0][0], pads[1][0]), groups=groups,
                               **options)
    return tm.PaddedConv2d(channels, layer.filters, pads=pads, groups=groups, **options)


def _depthwise(layer, tm, factory, filters=None, bias=None):
    from ..layers.spatial import resolve_padding
    height, width, channels = layer.input_shape
    pads = resolve_padding(layer.padding, (height, width), layer.kernel_size, layer.stride, layer.dilation)
    return tm.DepthwiseConv2d(channels, channels * layer.depth_multiplier, pads=pads, groups=channels,
                              kernel_size=layer.kernel_size, stride=layer.stride, dilation=layer.dilation,
                              bias=layer.use_bias if bias is None else bias, **factory)


def _pool(layer, torch, tm):
    from ..layers.spatial import resolve_padding
    pads = resolve_padding(layer.padding, layer.input_shape[:2], layer.pool_size, layer.stride)
    maximum = type(layer) is L.MaxPool2D
    half = all(before <= k // 2 for (before, _), k in zip(pads, layer.pool_size))  # PyTorch's limit
    if _symmetric(pads) and half:
        padding = (pads[0][0], pads[1][0])
        if maximum:
            return torch.nn.MaxPool2d(layer.pool_size, layer.stride, padding=padding)
        return torch.nn.AvgPool2d(layer.pool_size, layer.stride, padding=padding, count_include_pad=False)
    cls = tm.PaddedMaxPool2d if maximum else tm.PaddedAvgPool2d
    return cls(layer.pool_size, layer.stride, pads)


def _concat_dim(layer, rank: int) -> int:
    """scratchnet's Concatenate axis (NumPy, batch axis counted, channels-last) as a twin dim."""
    axis = layer.axis if layer.axis > 0 else rank + 1 + layer.axis  # in (N, ...) numbering
    return {1: 2, 2: 3, 3: 1}[axis] if rank == 3 else axis


def convert_layer(layer, torch, tm, factory):
    """The twin module of one (built) scratchnet layer; its EXACT class says which (see _not_translated)."""
    kind, rank = type(layer), len(layer.input_shape) if layer.input_shape else 0
    nn = torch.nn
    if kind is L.Dense:
        (fan_in,) = layer.input_shape
        if layer.activation == "linear":
            return nn.Linear(fan_in, layer.units, bias=layer.use_bias, **factory)
        return tm.DenseAct(fan_in, layer.units, bias=layer.use_bias, activation=layer.activation, **factory)
    if kind is L.Conv2D:
        return _conv(layer, torch, tm, factory)
    if kind is L.DepthwiseConv2D:
        return _depthwise(layer, tm, factory)
    if kind is L.SeparableConv2D:
        depthwise = _depthwise(layer, tm, factory, bias=False)
        pointwise = nn.Conv2d(layer.input_shape[2] * layer.depth_multiplier, layer.filters, 1,
                              bias=layer.use_bias, **factory)
        return tm.SeparableConv2d(depthwise, pointwise)
    if kind is L.Activation:
        module = tm.activation_module(layer.activation)
        module.scratchnet_activation = layer.activation
        return module
    if kind is L.Flatten:
        return tm.FlattenChannelsLast() if rank == 3 else nn.Flatten()
    if kind in (L.MaxPool2D, L.AvgPool2D):
        return _pool(layer, torch, tm)
    if kind is L.GlobalAvgPool2D:
        return tm.GlobalAvgPool2d()
    if kind is L.BatchNorm:
        if rank not in (1, 3):
            _refuse(layer, f" for samples of shape {layer.input_shape} (only (D,) and (H, W, C))")
        frozen = not layer.trainable
        cls = {(1, False): nn.BatchNorm1d, (3, False): nn.BatchNorm2d,
               (1, True): tm.FrozenBatchNorm1d, (3, True): tm.FrozenBatchNorm2d}[rank, frozen]
        return cls(layer.input_shape[-1], eps=layer.eps, momentum=layer.momentum, **factory)
    if kind is L.Dropout:
        return nn.Dropout(layer.rate)
    if kind is L.SpatialDropout2D:
        return nn.Dropout2d(layer.rate)
    if kind is L.ChannelShuffle:
        return nn.ChannelShuffle(layer.groups) if rank == 3 else tm.ChannelShuffleFlat(layer.groups)
    if kind is L.ZeroPadding2D:
        (top, bottom), (left, right) = layer.padding
        return nn.ZeroPad2d((left, right, top, bottom))
    if kind is L.UpSampling2D:
        return nn.Upsample(scale_factor=tuple(float(s) for s in layer.size), mode="nearest")
    if kind is L.Chain:
        return nn.Sequential(*(convert(child, torch, tm, factory) for child in layer.children))
    if kind is L.Residual:
        shortcut = None if layer.shortcut is None else convert(layer.shortcut, torch, tm, factory)
        return tm.ResidualBlock(convert(layer.block, torch, tm, factory), shortcut)
    if kind is L.Parallel:
        branches = [convert(branch, torch, tm, factory) for branch in layer.branches]
        if type(layer.merge) is L.Add:
            return tm.ParallelBlock(branches, "add")
        if type(layer.merge) is L.Concatenate:
            return tm.ParallelBlock(branches, "concat", _concat_dim(layer.merge, rank))
        _refuse(layer, f" (its merge is a {type(layer.merge).__name__}, not scratchnet's Add or Concatenate)")
    _refuse(layer, _not_translated(layer))


def convert(layer, torch, tm, factory):
    if rank_of(layer) not in (1, 3):
        _refuse(layer, f" for samples of shape {layer.input_shape} (only (D,) vectors and (H, W, C) images)")
    module = convert_layer(layer, torch, tm, factory)
    module.scratchnet_name = layer.name
    module.scratchnet_options = {key: value for key, value in layer.get_config().items()
                                 if key in ("padding", "backend", "kernel_initializer")}
    if not layer.trainable:
        for parameter in module.parameters(recurse=False):
            parameter.requires_grad_(False)
    return module


def rank_of(layer) -> int:
    return len(layer.input_shape) if layer.input_shape is not None else 0


def to_torch(model, channels_first: bool = False):
    """A ``torch.nn.Module`` computing what ``model`` computes, with a copy of its weights.

    ``twin(x)`` equals ``model.predict(x)`` (float64: to ~1e-15) for a channels-last ``x`` as a
    tensor of the model's dtype; ``channels_first=True`` makes the twin take and return
    (N, C, H, W). ``twin.train()`` is scratchnet's ``training=True``. The model is not changed.
    The twin is made for the model's input shape: a "same" padding with a stride is resolved
    for it (other image sizes would need other pads, as in scratchnet's own layer).
    Layers without a PyTorch equivalent raise ``UnsupportedLayerError`` naming them.
    """
    import torch

    from . import torch_modules as tm

    if not model.built:
        model.build()
    dtype = {"float32": torch.float32, "float64": torch.float64}[str(model.dtype)]
    factory = {"dtype": dtype}
    modules = [convert(layer, torch, tm, factory) for layer in model.layers]
    twin = tm.ScratchnetSequential(*modules, channels_last=not channels_first,
                                   input_shape=tuple(model.input_shape))
    # torch_state_dict's arrays are already copies: wrap them, load_state_dict copies into the twin
    state = {key: torch.from_numpy(value) for key, value in torch_state_dict(model).items()}
    twin.load_state_dict(state, strict=True)  # also proves layouts.py names every tensor of the twin
    twin.scratchnet_name = model.name
    twin.scratchnet_dtype = str(model.dtype)  # from_torch reads it when the twin holds no tensors
    twin.eval()
    return twin
