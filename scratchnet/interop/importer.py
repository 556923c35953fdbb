"""from_torch: a ``torch.nn`` module as a scratchnet ``Sequential`` with the same weights.

Accepted: an ``nn.Sequential`` (nested ones become ``Chain``) of the modules in
``SUPPORTED_MODULES``, a twin made by ``to_torch`` (names, shapes and frozen flags come back),
and a torchvision-style ResNet (``resnet.py``). Modules are matched by their EXACT class: a
subclass may compute something else in its ``forward``, so it is refused like any unknown
module, with a message naming it and listing what is supported.

Nothing computing something else comes back: a module whose ``forward`` differs from what its
class and attributes say cannot be seen here, so ``from_torch`` ends by running both on one
random batch (``verify.py``) and raises if they disagree.

Flatten order: PyTorch's ``nn.Flatten`` reads (c, h, w), scratchnet's Flatten (h, w, c). After
an ``nn.Flatten`` of an image, the columns of the next ``nn.Linear`` (and the features of a
BatchNorm1d or element-wise module in between) are permuted so the numbers line up. A nested
nn.Sequential shares this pending permutation with its parent (``features`` ending in Flatten,
``classifier`` starting with Linear); a module ending with the Flatten of an image is refused.
"""

from __future__ import annotations

from .. import layers as L
from .export import UnsupportedLayerError
from .flatten_order import check_end, nchw_to_nhwc_order, new_state, permute_features
from .layouts import _as_numpy, from_torch_arrays
from .verify import check_same_outputs

SUPPORTED_MODULES = ("Sequential", "Linear", "Conv2d (zeros padding, groups)", "BatchNorm1d", "BatchNorm2d",
                     "ReLU", "LeakyReLU(0.01)", "Sigmoid", "Tanh", "GELU", "ELU(1)", "SELU", "SiLU",
                     "Softplus(beta=1)", "Softmax(dim=1 or None)", "Identity", "Flatten", "MaxPool2d",
                     "AvgPool2d",
                     "AdaptiveAvgPool2d(1) + Flatten", "Dropout", "Dropout2d", "ChannelShuffle", "ZeroPad2d",
                     "Upsample(nearest, integer factors)",
                     "torchvision-style ResNet (classes ResNet, BasicBlock, Bottleneck)",
                     "the modules of a to_torch twin")

# torch.nn classes (by these names) that act on each feature alone, so they may stand between an
# nn.Flatten of an image and its nn.Linear; compared as class objects (cls is nn.ReLU), not by name.
ELEMENTWISE = ("ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "ELU", "SELU", "SiLU", "Softplus", "Identity",
               "Dropout")


def refuse(path: str, module, why: str = "") -> None:
    cls = type(module)
    raise UnsupportedLayerError(
        f"from_torch: module {path!r} is a {cls.__module__}.{cls.__name__}{why}, which scratchnet cannot "
        f"import; supported modules: {', '.join(SUPPORTED_MODULES)}")


class Importer:
    """Walks a module tree, making scratchnet layers and remembering where their weights come from."""

    def __init__(self, torch):
        self.torch, self.nn = torch, torch.nn
        from . import torch_modules
        self.tm = torch_modules
        self.sources = []  # (scratchnet layer, {torch suffix: array}, permutation or None)
        self.path_names = False  # name layers by their PyTorch path (ResNet imports)

    # -------------------------------------------------------------- helpers
    def name(self, module, default):
        return getattr(module, "scratchnet_name", None) or default

    def weights(self, layer, module, permutation=None):
        arrays = {key: _as_numpy(value) for key, value in module.state_dict().items()}
        self.sources.append((layer, arrays, permutation))
        if any(not p.requires_grad for p in module.parameters()):
            layer.trainable = False

    def activation(self, path, module, shape):
        nn, cls = self.nn, type(module)
        simple = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.SELU: "selu", nn.SiLU: "silu",
                  nn.Identity: "linear", nn.GELU: "gelu", nn.ELU: "elu", nn.LeakyReLU: "leaky_relu",
                  nn.Softplus: "softplus", nn.Softmax: "softmax"}
        name = simple.get(cls)
        if name == "gelu" and module.approximate != "none":
            refuse(path, module, " with approximate='tanh' (scratchnet's gelu is the exact one)")
        if name == "elu" and module.alpha != 1.0:
            refuse(path, module, f" with alpha={module.alpha} (scratchnet's elu has alpha 1)")
        if name == "leaky_relu" and module.negative_slope != 0.01:
            refuse(path, module, f" with negative_slope={module.negative_slope} (scratchnet's is 0.01)")
        if name == "softplus" and module.beta != 1.0:
            refuse(path, module, f" with beta={module.beta} (scratchnet's softplus has beta 1)")
        # dim=None: PyTorch's implicit dim, 1 for 2-D and 4-D inputs (samples of 1 or 3 axes here)
        implicit = (None,) if len(shape) in (1, 3) else ()
        if name == "softmax" and module.dim not in (1, -1 if len(shape) == 1 else 1, *implicit):
            refuse(path, module, f" over dim={module.dim} (scratchnet's softmax is over the channels, dim 1)")
        return name and getattr(module, "scratchnet_activation", name)

    # -------------------------------------------------------------- walking
    def sequence(self, modules, shape, path, state=None):
        """Layers for the (path, module) pairs applied in order to samples of ``shape`` (channels-last).

        state : what a module leaves pending for the next ones: "permutation" (an nn.Flatten of an
            image waits for its Linear) and "squeezed" (an AdaptiveAvgPool2d(1) waits for its
            nn.Flatten). A nested nn.Sequential shares its parent's state: the Flatten at the end of
            ``features`` and the Linear at the start of ``classifier`` belong together.
        """
        state = new_state() if state is None else state
        layers = []
        for child_path, module in modules:
            made = self.module(child_path, module, shape, state)
            for layer in made:
                shape = layer.output_shape(shape)
            layers.extend(made)
        return layers, shape

    def module(self, path, module, shape, state):
        """The scratchnet layers for one module (usually one; [] for an absorbed nn.Flatten)."""
        nn, tm, cls = self.nn, self.tm, type(module)
        if cls is tm.ScratchnetSequential:
            raise UnsupportedLayerError(
                f"from_torch: module {path!r} is a to_torch twin inside another module, which from_torch "
                "cannot import (the twin takes channels-last images, the modules around it do not): import "
                "the twin alone, model = from_torch(twin), then add the other layers in scratchnet")
        nested = cls is nn.Sequential  # its children check what is pending themselves
        squeezed, pending = (False, None) if nested else (state["squeezed"], state["permutation"])
        if squeezed:
            state["squeezed"] = False
            if cls is nn.Flatten:
                return []  # AdaptiveAvgPool2d(1) + Flatten = GlobalAvgPool2D
        from .resnet import convert_block, convert_resnet, is_block, is_resnet
        if is_resnet(module) or is_block(module):
            check_nothing_pending(path, module, squeezed, pending is not None)
            if is_resnet(module):
                return convert_resnet(self, module, shape, path)
            return [convert_block(self, module, shape, path)]
        elementwise = tuple(getattr(nn, name) for name in ELEMENTWISE)
        waits_for_linear = pending is not None and cls not in (nn.Linear, nn.BatchNorm1d, tm.DenseAct) \
            and cls not in elementwise
        try:
            layer = self.leaf(path, module, shape, state)
        except ValueError:  # a shape error of a module standing where nn.Flatten / nn.Linear must come
            check_nothing_pending(path, module, squeezed, waits_for_linear)
            raise
        if layer is None:
            refuse(path, module)  # first: an unknown module is refused as unknown, wherever it stands
        check_nothing_pending(path, module, squeezed, waits_for_linear)
        layer.name = path if self.path_names and path else self.name(module, layer.name)
        restore_options(layer, getattr(module, "scratchnet_options", {}), shape)
        return [layer]

    def leaf(self, path, module, shape, state):
        nn, tm, cls = self.nn, self.tm, type(module)
        activation = self.activation(path, module, shape)
        if activation:
            return L.Activation(activation)
        if cls in (nn.Linear, tm.DenseAct):
            if shape != (module.in_features,):
                raise ValueError(f"from_torch: {path!r} (Linear) takes {module.in_features} features, but "
                                 "its "
                                 f"input samples have shape {shape}")
            layer = L.Dense(module.out_features, activation=getattr(module, "activation", "linear"),
                            use_bias=module.bias is not None)
            self.weights(layer, module, state["permutation"])
            state["permutation"] = None
            return layer
        if cls in (nn.Conv2d, tm.PaddedConv2d, tm.DepthwiseConv2d):
            return self.conv(path, module, shape)
        if cls is tm.SeparableConv2d:
            return self.separable(path, module, shape)
        if cls in (nn.BatchNorm1d, nn.BatchNorm2d, tm.FrozenBatchNorm1d, tm.FrozenBatchNorm2d):
            return self.batch_norm(path, module, state)
        if cls in (nn.Flatten, tm.FlattenChannelsLast):
            if (module.start_dim, module.end_dim) != (1, -1):
                refuse(path, module, f" with start_dim={module.start_dim}, end_dim={module.end_dim}")
            if cls is nn.Flatten and len(shape) == 3 and shape[:2] != (1, 1):
                state["permutation"] = nchw_to_nhwc_order(shape)
            return L.Flatten()
        if cls in (nn.MaxPool2d, nn.AvgPool2d, tm.PaddedMaxPool2d, tm.PaddedAvgPool2d):
            return self.pool(path, module)
        if cls is tm.GlobalAvgPool2d:
            return L.GlobalAvgPool2D()
        if cls is nn.AdaptiveAvgPool2d:
            if pair(module.output_size) != (1, 1):
                refuse(path, module, f" with output_size={module.output_size} (only 1)")
            state["squeezed"] = True
            return L.GlobalAvgPool2D()
        if cls is nn.Dropout:
            return L.Dropout(module.p)
        if cls is nn.Dropout2d:
            return L.SpatialDropout2D(module.p)
        if cls in (nn.ChannelShuffle, tm.ChannelShuffleFlat):
            return L.ChannelShuffle(module.groups)
        if cls is nn.ZeroPad2d or (cls is nn.ConstantPad2d and module.value == 0):
            left, right, top, bottom = module.padding
            return L.ZeroPadding2D(((top, bottom), (left, right)))
        if cls in (nn.Upsample, nn.UpsamplingNearest2d):
            return self.upsample(path, module)
        if cls is nn.Sequential:
            children, _ = self.sequence(
                [(f"{path}.{key}", child) for key, child in module.named_children()], shape, path, state)
            return L.Chain(children) if children else refuse(path, module, " that is empty")
        if cls is tm.ResidualBlock:
            block = self.sub(f"{path}.block", module.block, shape)
            identity = type(module.shortcut) is nn.Identity
            shortcut = None if identity else self.sub(f"{path}.shortcut", module.shortcut, shape)
            return L.Residual(block, shortcut)
        if cls is tm.ParallelBlock:
            branches = [self.sub(f"{path}.branches.{k}", branch, shape)
                        for k, branch in enumerate(module.branches)]
            if module.merge == "add":
                return L.Parallel(branches, "add")
            axis = {2: 1, 3: 2, 1: 3}[module.dim] if len(shape) == 3 else module.dim
            return L.Parallel(branches, L.Concatenate(axis=-1 if axis == len(shape) else axis))
        return None

    def sub(self, path, module, shape):
        """One module (a child of a block) as one layer (several become a Chain)."""
        made, _ = self.sequence([(path, module)], shape, path)
        return made[0] if len(made) == 1 else L.Chain(made)

    # -------------------------------------------------------------- layer kinds
    def conv(self, path, module, shape):
        tm = self.tm
        if len(shape) != 3 or shape[2] != module.in_channels:
            raise ValueError(f"from_torch: {path!r} (Conv2d) takes {module.in_channels} input channels, but "
                             "its "
                             f"input samples have shape {shape} (channels-last (H, W, C): PyTorch's "
                             f"(C, H, W) = (3, 224, 224) is input_shape=(224, 224, 3))")
        if module.padding_mode != "zeros":
            refuse(path, module, f" with padding_mode={module.padding_mode!r} (only 'zeros')")
        if type(module) in (tm.PaddedConv2d, tm.DepthwiseConv2d):
            padding = module.pads
        elif isinstance(module.padding, str):
            padding = module.padding
        else:
            (ph, pw) = module.padding
            padding = ((ph, ph), (pw, pw))
        options = dict(stride=module.stride, padding=padding, dilation=module.dilation,
                       use_bias=module.bias is not None)
        if type(module) is tm.DepthwiseConv2d:
            multiplier = module.out_channels // module.in_channels
            layer = L.DepthwiseConv2D(module.kernel_size, multiplier, **options)
        else:
            layer = L.Conv2D(module.out_channels, module.kernel_size, groups=module.groups, **options)
        self.weights(layer, module)
        return layer

    def separable(self, path, module, shape):
        dw, pw = module.depthwise, module.pointwise
        layer = L.SeparableConv2D(pw.out_channels, dw.kernel_size,
                                  depth_multiplier=dw.out_channels // dw.in_channels,
                                  stride=dw.stride, padding=dw.pads, dilation=dw.dilation,
                                  use_bias=pw.bias is not None)
        self.weights(layer, module)
        return layer

    def batch_norm(self, path, module, state):
        if module.momentum is None or not module.affine or not module.track_running_stats:
            refuse(path, module, " without a momentum, affine weights or running statistics")
        layer = L.BatchNorm(momentum=module.momentum, eps=module.eps)
        self.weights(layer, module, state["permutation"])
        if type(module) in (self.tm.FrozenBatchNorm1d, self.tm.FrozenBatchNorm2d):
            layer.trainable = False
        return layer

    def pool(self, path, module):
        tm, cls = self.tm, type(module)
        if cls in (tm.PaddedMaxPool2d, tm.PaddedAvgPool2d):
            padding = module.pads
        else:
            if module.ceil_mode:
                refuse(path, module, " with ceil_mode=True")
            ph, pw = pair(module.padding)
            padding = ((ph, ph), (pw, pw))
        stride = pair(module.stride or module.kernel_size)
        if cls is self.nn.MaxPool2d:
            if pair(module.dilation) != (1, 1) or module.return_indices:
                refuse(path, module, " with dilation or return_indices")
            return L.MaxPool2D(pair(module.kernel_size), stride, padding)
        if cls is self.nn.AvgPool2d and (module.divisor_override is not None or (
                module.count_include_pad and padding != ((0, 0), (0, 0)))):
            refuse(path, module, " counting padded cells (scratchnet's AvgPool2D: count_include_pad=False)")
        kind = L.MaxPool2D if cls is tm.PaddedMaxPool2d else L.AvgPool2D
        return kind(pair(module.kernel_size), stride, padding)

    def upsample(self, path, module):
        factor = module.scale_factor
        if module.mode != "nearest" or factor is None:
            refuse(path, module, f" with mode={module.mode!r}, scale_factor={factor} "
                                 "(nearest, integer factors)")
        factors = pair(factor) if not isinstance(factor, (tuple, list)) else tuple(factor)
        if any(float(f) != int(f) for f in factors):
            refuse(path, module, f" with the non-integer scale_factor {factor}")
        return L.UpSampling2D(tuple(int(f) for f in factors))

    # -------------------------------------------------------------- weights
    def copy_weights(self):
        for layer, arrays, permutation in self.sources:
            arrays = {key: value for key, value in arrays.items() if not key.endswith("num_batches_tracked")}
            if permutation is not None:
                arrays = permute_features(arrays, permutation)
            for name, value in from_torch_arrays(layer, arrays).items():
                store = layer.params if name in layer.params else layer.buffers
                store[name][...] = value


def check_nothing_pending(path, module, squeezed: bool, waits_for_linear: bool) -> None:
    """Refuse a module that stands where an nn.Flatten (or an nn.Linear) must come."""
    if squeezed:
        refuse(path, module, " after an AdaptiveAvgPool2d(1) that is not followed by nn.Flatten")
    if waits_for_linear:
        refuse(path, module, " between an nn.Flatten of an image and the next nn.Linear")


def restore_options(layer, options: dict, shape) -> None:
    """Put back the options a to_torch twin remembers, where they mean the same as what was imported.

    padding: "same" is only taken back if it gives the very pads the module uses for this shape.
    """
    from ..layers.spatial import resolve_padding
    padding = options.get("padding")
    kernel = getattr(layer, "kernel_size", getattr(layer, "pool_size", None))
    if padding is not None and kernel is not None and len(shape) == 3:
        args = (shape[:2], kernel, layer.stride, getattr(layer, "dilation", (1, 1)))
        if resolve_padding(padding, *args) == resolve_padding(layer.padding, *args):
            layer.padding = padding
    for key in ("backend", "kernel_initializer"):
        if key in options and hasattr(layer, key):
            setattr(layer, key, options[key])


def pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def from_torch(module, input_shape=None, dtype=None, seed=0, name="from_torch"):
    """A built scratchnet ``Sequential`` equal to the PyTorch ``module`` (inference and training).

    input_shape : ONE sample, channels-last, e.g. ``(224, 224, 3)`` (PyTorch's (3, 224, 224) read
        as scratchnet reads images). Optional for a twin made by ``to_torch`` (it remembers).
    dtype : "float32"/"float64"; default: the module's parameter dtype.
    Frozen parameters (``requires_grad=False``) give frozen layers. Unsupported modules raise
    ``UnsupportedLayerError`` naming the module and listing the supported ones.
    Safety net: the built model and the module are run on one small seeded random batch
    (``verify.check_same_outputs``, float64 copies, inference mode); if they disagree,
    ``ImportMismatchError`` names the largest difference instead of returning the model.
    """
    import torch

    from ..model import Sequential

    if input_shape is None:
        input_shape = getattr(module, "scratchnet_input_shape", None)
        if input_shape is None:
            raise ValueError("from_torch: give input_shape, ONE sample channels-last, e.g. (32, 32, 3)")
    input_shape = tuple(int(size) for size in input_shape)
    if dtype is None:
        dtype = module_dtype(module)
    importer = Importer(torch)
    plain = type(module) in (torch.nn.Sequential, importer.tm.ScratchnetSequential)
    children = list(module.named_children()) if plain else [("", module)]
    state = new_state()
    layers, _ = importer.sequence(children, input_shape, "", state)
    check_end(state)
    model = Sequential(layers, input_shape=input_shape, seed=seed, dtype=dtype,
                       name=getattr(module, "scratchnet_name", name))
    model.build()
    importer.copy_weights()
    check_same_outputs(module, model)
    return model


def module_dtype(module) -> str:
    """"float64" if the module's floating tensors are all float64, else "float32".

    Its parameters; without any, its floating buffers; without those, the ``scratchnet_dtype``
    a to_torch twin remembers (a MaxPool2D + Flatten model has no tensors at all).
    """
    import torch
    dtypes = {p.dtype for p in module.parameters()}
    if not dtypes:
        dtypes = {b.dtype for b in module.buffers() if b.is_floating_point()}
    if not dtypes:
        return getattr(module, "scratchnet_dtype", "float32")
    return "float64" if dtypes == {torch.float64} else "float32"

