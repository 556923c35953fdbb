"""A torch.nn twin of a built scratchnet model or layer, holding the same weights (tests and benchmarks).

    twin, pairs = torch_twin(torch, model)     # model: a Sequential or any Layer (containers too)
    y_nchw = twin(x_nchw)

scratchnet is channels-last (N, H, W, C), PyTorch channels-first (N, C, H, W): the twin takes
and returns NCHW tensors. Weight layouts:
    Conv2D W (kh, kw, C/g, F)       -> torch (F, C/g, kh, kw)          transpose(3, 2, 0, 1)
    DepthwiseConv2D W (kh, kw, C, M) -> torch (C*M, 1, kh, kw), groups=C  (output c*M + m both sides)
    Dense W (D, U)                  -> torch (U, D)                    transpose
Every module is created in ``dtype`` before the weights are copied in (a float32 module
would round them). Zero padding is worked out independently of the layer (padding_reference.py,
never ``layer.pads_for``: a twin asking the layer would copy a wrong "same" split): torch's own
padding="same" at stride 1, else an explicit ``ZeroPad2d`` (asymmetric "same" padding at stride
2 puts the odd cell bottom/right); max-pool pads with -inf as scratchnet does. ``Flatten``
permutes back to NHWC first, so the dense layer sees the features in scratchnet's order.
``Dropout`` becomes ``torch.nn.Dropout`` (different masks: compare in inference mode, or with
rate 0).

``pairs`` lists ``(leaf, key, torch_parameter, to_scratchnet)`` for every scratchnet parameter,
``to_scratchnet(tensor) -> ndarray`` converting a torch gradient back to scratchnet's layout;
``bn_pairs`` in the same way lists ``(leaf, torch BatchNorm module)``.
"""

from __future__ import annotations

import numpy as np
from padding_reference import pair, reference_pads


def torch_twin(torch, model, dtype=None):
    """(nn.Module, pairs, bn_pairs) for a built scratchnet model or layer; float64 unless dtype."""
    nn = torch.nn
    pairs, bn_pairs = [], []
    dtype = dtype or torch.float64

    class Lambda(nn.Module):
        def __init__(self, function):
            super().__init__()
            self.function = function

        def forward(self, x):
            return self.function(x)

    class ResidualTwin(nn.Module):
        def __init__(self, block, shortcut):
            super().__init__()
            self.block, self.shortcut = block, shortcut

        def forward(self, x):
            return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

    class ParallelTwin(nn.Module):
        def __init__(self, branches, merge):
            super().__init__()
            self.branches, self.merge = nn.ModuleList(branches), merge

        def forward(self, x):
            outputs = [branch(x) for branch in self.branches]
            return torch.cat(outputs, dim=1) if self.merge == "concat" else sum(outputs)

    def tensor(array):
        return torch.tensor(np.asarray(array, dtype=np.float64), dtype=dtype)

    def window_pads(layer, window):
        """((top, bottom), (left, right)) for a conv or pool layer's options, not asked of the layer."""
        return reference_pads(layer.padding, layer.input_shape[:2], window, layer.stride,
                              getattr(layer, "dilation", 1))

    def conv(layer):
        from scratchnet.layers import Conv2D

        kh, kw, group_channels, filters = layer.params["W"].shape
        groups = getattr(layer, "groups", 1)
        channels = layer.input_shape[2]
        depthwise = not isinstance(layer, Conv2D)
        out = channels * filters if depthwise else filters  # depthwise: W (kh, kw, C, M)
        torch_same = layer.padding == "same" and pair(layer.stride) == (1, 1)  # torch's own rule
        module = nn.Conv2d(channels, out, (kh, kw), stride=layer.stride, dilation=layer.dilation,
                           padding="same" if torch_same else 0,
                           groups=channels if depthwise else groups, bias=layer.use_bias).to(dtype)
        if depthwise:
            weight = layer.params["W"].transpose(2, 3, 0, 1).reshape(out, 1, kh, kw)

            def back(grad, kh=kh, kw=kw, channels=channels, multiplier=filters):
                return grad.numpy().reshape(channels, multiplier, kh, kw).transpose(2, 3, 0, 1)
        else:
            weight = layer.params["W"].transpose(3, 2, 0, 1)

            def back(grad):
                return grad.numpy().transpose(2, 3, 1, 0)
        with torch.no_grad():
            module.weight.copy_(tensor(weight))
            if layer.use_bias:
                module.bias.copy_(tensor(layer.params["b"]))
        pairs.append((layer, "W", module.weight, back))
        if layer.use_bias:
            pairs.append((layer, "b", module.bias, lambda grad: grad.numpy()))
        if torch_same:
            return module
        (top, bottom), (left, right) = window_pads(layer, (kh, kw))
        return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), module)

    def batch_norm(layer):
        channels = layer.params["gamma"].shape[0]
        kind = nn.BatchNorm2d if len(layer.input_shape) == 3 else nn.BatchNorm1d
        module = kind(channels, eps=layer.eps, momentum=layer.momentum).to(dtype)
        with torch.no_grad():
            module.weight.copy_(tensor(layer.params["gamma"]))
            module.bias.copy_(tensor(layer.params["beta"]))
            module.running_mean.copy_(tensor(layer.buffers["mean"]))
            module.running_var.copy_(tensor(layer.buffers["var"]))
        pairs.append((layer, "gamma", module.weight, lambda grad: grad.numpy()))
        pairs.append((layer, "beta", module.bias, lambda grad: grad.numpy()))
        bn_pairs.append((layer, module))
        return module

    def dense(layer):
        fan_in, units = layer.params["W"].shape
        module = nn.Linear(fan_in, units, bias=layer.use_bias).to(dtype)
        with torch.no_grad():
            module.weight.copy_(tensor(layer.params["W"].T))
            if layer.use_bias:
                module.bias.copy_(tensor(layer.params["b"]))
        pairs.append((layer, "W", module.weight, lambda grad: grad.numpy().T))
        if layer.use_bias:
            pairs.append((layer, "b", module.bias, lambda grad: grad.numpy()))
        if layer.activation == "linear":
            return module
        return nn.Sequential(module, activation(layer.activation))

    def activation(name):
        functions = {"relu": nn.ReLU, "linear": nn.Identity, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
        if name not in functions:
            raise TypeError(f"torch_twin: no twin for the activation {name!r}")
        return functions[name]()

    def max_pool(layer):
        (top, bottom), (left, right) = window_pads(layer, layer.pool_size)
        return nn.Sequential(
            Lambda(lambda x: torch.nn.functional.pad(x, (left, right, top, bottom), value=-np.inf)),
            nn.MaxPool2d(layer.pool_size, layer.stride))

    def avg_pool(layer):
        (top, bottom), (left, right) = window_pads(layer, layer.pool_size)
        if top != bottom or left != right:
            raise TypeError("torch_twin: AvgPool2D with asymmetric padding has no torch twin")
        return nn.AvgPool2d(layer.pool_size, layer.stride, padding=(top, left), count_include_pad=False)

    def channel_shuffle(layer):
        groups = layer.groups

        def shuffle(x):
            n, c, h, w = x.shape
            return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)
        return Lambda(shuffle)

    def convert(layer):
        from scratchnet import layers as L
        from scratchnet.model import Sequential

        if isinstance(layer, (Sequential, L.Chain)):
            return nn.Sequential(*[convert(child) for child in layer.layers])
        if isinstance(layer, L.Residual):
            shortcut = None if layer.shortcut is None else convert(layer.shortcut)
            return ResidualTwin(convert(layer.block), shortcut)
        if isinstance(layer, L.Parallel):
            merge = "concat" if isinstance(layer.merge, L.Concatenate) else "add"
            return ParallelTwin([convert(branch) for branch in layer.branches], merge)
        if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D)):
            return conv(layer)
        if isinstance(layer, L.BatchNorm):
            return batch_norm(layer)
        if isinstance(layer, L.Dense):
            return dense(layer)
        if isinstance(layer, L.Activation):
            return activation(layer.activation)
        if isinstance(layer, L.MaxPool2D):
            return max_pool(layer)
        if isinstance(layer, L.AvgPool2D):
            return avg_pool(layer)
        if isinstance(layer, L.GlobalAvgPool2D):
            return Lambda(lambda x: x.mean(dim=(2, 3)))
        if isinstance(layer, L.Flatten):
            return Lambda(lambda x: (x.permute(0, 2, 3, 1) if x.dim() == 4 else x).flatten(1))
        if isinstance(layer, L.Dropout) and not isinstance(layer, L.SpatialDropout2D):
            return nn.Dropout(layer.rate)
        if isinstance(layer, L.ChannelShuffle):
            return channel_shuffle(layer)
        raise TypeError(f"torch_twin: no twin for {type(layer).__name__} ({layer.name})")

    module = convert(model).to(dtype)
    return module, pairs, bn_pairs


def nchw(array):
    """NHWC -> NCHW for 4-D arrays; anything else unchanged."""
    return array.transpose(0, 3, 1, 2) if array.ndim == 4 else array


def nchw_tensor(torch, array):
    """A new contiguous torch tensor holding ``nchw(array)``."""
    return torch.from_numpy(np.ascontiguousarray(nchw(array)))


def nhwc(array):
    """NCHW -> NHWC for 4-D arrays; anything else unchanged."""
    return array.transpose(0, 2, 3, 1) if array.ndim == 4 else array


def copy_into(torch, model, module):
    """Copy a scratchnet model's weights into a HAND-WRITTEN torch module of the same architecture.

    The parametrised leaves of ``model`` (depth-first) and the Conv2d / BatchNorm / Linear modules
    of ``module`` (in definition order) are paired one to one; kinds and shapes must agree.
    Returns ``(pairs, bn_pairs)`` as ``torch_twin`` does. The module must already be in its dtype.
    """
    nn = torch.nn
    leaves = [leaf for leaf in iter_leaves(model) if leaf.params]
    kinds = (nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.Linear)
    modules = [m for m in module.modules() if isinstance(m, kinds)]
    if len(leaves) != len(modules):
        raise ValueError(f"copy_into: {len(leaves)} scratchnet layers with weights, "
                         f"{len(modules)} torch modules")
    pairs, bn_pairs = [], []
    with torch.no_grad():
        for leaf, target in zip(leaves, modules):
            kind = type(leaf).__name__
            if isinstance(target, nn.Conv2d):
                if kind == "DepthwiseConv2D":
                    kh, kw, channels, multiplier = leaf.params["W"].shape
                    weight = leaf.params["W"].transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw)

                    def back(grad, shape=(channels, multiplier, kh, kw)):
                        return grad.numpy().reshape(shape).transpose(2, 3, 0, 1)
                else:
                    weight = leaf.params["W"].transpose(3, 2, 0, 1)

                    def back(grad):
                        return grad.numpy().transpose(2, 3, 1, 0)
                target.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
                pairs.append((leaf, "W", target.weight, back))
                names = [("b", "bias")] if "b" in leaf.params else []
            elif isinstance(target, nn.Linear):
                target.weight.copy_(torch.from_numpy(leaf.params["W"].T.copy()))
                pairs.append((leaf, "W", target.weight, lambda grad: grad.numpy().T))
                names = [("b", "bias")]
            else:
                target.running_mean.copy_(torch.from_numpy(leaf.buffers["mean"]))
                target.running_var.copy_(torch.from_numpy(leaf.buffers["var"]))
                bn_pairs.append((leaf, target))
                names = [("gamma", "weight"), ("beta", "bias")]
            for key, attribute in names:
                getattr(target, attribute).copy_(torch.from_numpy(leaf.params[key]))
                pairs.append((leaf, key, getattr(target, attribute), lambda grad: grad.numpy()))
    return pairs, bn_pairs


def iter_leaves(model):
    from scratchnet.layers.base import iter_layers

    return list(iter_layers(getattr(model, "layers", [model])))
