"""Small ``torch.nn`` modules for what plain PyTorch modules do not say on their own.

This file imports torch at the top: only ``to_torch``/``from_torch`` import it, inside their
functions, so ``import scratchnet.interop`` never needs PyTorch. Every class is a subclass of
the PyTorch module it extends where there is one (a ``PaddedConv2d`` is an ``nn.Conv2d``), so
the twin reads like ordinary PyTorch code and its ``state_dict`` has the usual key names.

Tensors inside the twin are channels-first, (N, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ScratchnetSequential(nn.Sequential):
    """``nn.Sequential`` that takes and returns channels-last images, like the scratchnet model.

    x (N, H, W, C) -> permute to (N, C, H, W) -> the modules -> a 4-D output permuted back to
    (N, H, W, C). ``channels_last=False`` takes (N, C, H, W) and returns channels-first.
    Module i is the model's top-level layer i, so ``twin[i]`` and ``model.layers[i]`` match.
    """

    def __init__(self, *modules, channels_last: bool = True, input_shape=None):
        super().__init__(*modules)
        self.channels_last = channels_last
        self.scratchnet_input_shape = input_shape  # one sample, channels-last (from_torch reads it)

    def forward(self, x):
        self.check_input(x)
        if self.channels_last and x.dim() == 4:
            x = x.permute(0, 3, 1, 2)
        y = super().forward(x)
        if self.channels_last and y.dim() == 4:
            y = y.permute(0, 2, 3, 1)
        return y


    def check_input(self, x) -> None:
        """Name the fix when x is not a tensor of (N, *sample shape) in the layout the twin takes.

        sample shape: the model's input shape (H, W, C), or (C, H, W) for ``channels_first=True``.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"the to_torch twin takes a torch tensor, not a {type(x).__name__}: "
                            "twin(torch.from_numpy(x))")
        if self.scratchnet_input_shape is None:
            return
        expected = tuple(self.scratchnet_input_shape)
        layout = "channels-last (N, H, W, C)"
        if len(expected) == 3 and not self.channels_last:
            expected, layout = (expected[2], expected[0], expected[1]), "channels-first (N, C, H, W)"
        if tuple(x.shape[1:]) == expected:
            return
        hint = "a batch of samples of the model's input shape"
        if len(expected) == 3 and sorted(x.shape[1:]) == sorted(expected):
            hint = ("x.permute(0, 2, 3, 1) for a channels-first batch" if self.channels_last else
                    "x.permute(0, 3, 1, 2) for a channels-last batch")
            hint += f", or a twin made with to_torch(model, channels_first={self.channels_last})"
        raise ValueError(f"the to_torch twin takes {layout} batches of samples of shape {expected}, "
                         f"got a batch of shape {tuple(x.shape)}: give it {hint}")


class FlattenChannelsLast(nn.Flatten):
    """Flatten in scratchnet's order: (N, C, H, W) -> permute to (N, H, W, C) -> (N, H*W*C).

    With it the next ``nn.Linear`` holds exactly the scratchnet Dense weights (transposed).
    A plain ``nn.Flatten`` reads (c, h, w) in the other order: from_torch permutes the next
    Linear's columns for it.
    """

    def forward(self, x):
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.flatten(1)


class DenseAct(nn.Linear):
    """``nn.Linear`` followed by the activation of a scratchnet ``Dense(activation=...)``."""

    def __init__(self, in_features, out_features, bias=True, activation="linear", **factory):
        super().__init__(in_features, out_features, bias=bias, **factory)
        self.activation = activation
        self.act = activation_module(activation)

    def forward(self, x):
        return self.act(super().forward(x))


def _pad_arg(pads):
    """((top, bottom), (left, right)) -> F.pad's (left, right, top, bottom)."""
    (top, bottom), (left, right) = pads
    return (left, right, top, bottom)


class PaddedConv2d(nn.Conv2d):
    """``nn.Conv2d`` after an explicit zero padding that may be asymmetric ("same" with an odd total)."""

    def __init__(self, *args, pads=((0, 0), (0, 0)), **kwargs):
        super().__init__(*args, padding=0, **kwargs)
        self.pads = tuple(tuple(p) for p in pads)

    def forward(self, x):
        return super().forward(F.pad(x, _pad_arg(self.pads)))


class PaddedMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` after padding with -inf on each side as given (a padded cell never wins)."""

    def __init__(self, kernel_size, stride, pads):
        super().__init__(kernel_size, stride, padding=0)
        self.pads = tuple(tuple(p) for p in pads)

    def forward(self, x):
        return super().forward(F.pad(x, _pad_arg(self.pads), value=float("-inf")))


class PaddedAvgPool2d(nn.AvgPool2d):
    """Average over the REAL cells of each window (padding not counted), any padding on each side.

    y = sum_pool(x zero-padded) / sum_pool(ones zero-padded), both as avg_pool2d (the k*k cancels).
    """

    def __init__(self, kernel_size, stride, pads):
        super().__init__(kernel_size, stride, padding=0)
        self.pads = tuple(tuple(p) for p in pads)

    def forward(self, x):
        ones = torch.ones_like(x[:1, :1])
        counts = super().forward(F.pad(ones, _pad_arg(self.pads)))
        return super().forward(F.pad(x, _pad_arg(self.pads))) / counts


class GlobalAvgPool2d(nn.AdaptiveAvgPool2d):
    """(N, C, H, W) -> (N, C): ``nn.AdaptiveAvgPool2d(1)`` then flatten, as scratchnet's GlobalAvgPool2D."""

    def __init__(self):
        super().__init__(1)

    def forward(self, x):
        return super().forward(x).flatten(1)


class FrozenBatchNorm1d(nn.BatchNorm1d):
    """A BatchNorm of a frozen scratchnet layer: ALWAYS inference mode (running statistics), as Keras."""

    def train(self, mode: bool = True):
        return super().train(False)


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """See FrozenBatchNorm1d."""

    def train(self, mode: bool = True):
        return super().train(False)


class ChannelShuffleFlat(nn.ChannelShuffle):
    """``nn.ChannelShuffle`` for (N, C) vectors (PyTorch's needs more than two axes)."""

    def forward(self, x):
        return super().forward(x[:, :, None]).squeeze(2) if x.dim() == 2 else super().forward(x)


class ResidualBlock(nn.Module):
    """y = block(x) + shortcut(x) (shortcut = identity unless given), as scratchnet's Residual."""

    def __init__(self, block, shortcut=None):
        super().__init__()
        self.block = block
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x):
        return self.block(x) + self.shortcut(x)


class ParallelBlock(nn.Module):
    """y = merge(branch_1(x), ..., branch_k(x)), merge "add" or "concat" along ``dim``."""

    def __init__(self, branches, merge="concat", dim=1):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.merge, self.dim = merge, dim

    def forward(self, x):
        outputs = [branch(x) for branch in self.branches]
        if self.merge == "add":
            total = outputs[0]
            for out in outputs[1:]:
                total = total + out
            return total
        return torch.cat(outputs, dim=self.dim)


class DepthwiseConv2d(PaddedConv2d):
    """A depthwise convolution: ``nn.Conv2d(C, C*M, groups=C)`` (marked, so from_torch knows it)."""


class SeparableConv2d(nn.Module):
    """Depthwise (no bias) then a 1x1 pointwise convolution, as scratchnet's SeparableConv2D."""

    def __init__(self, depthwise, pointwise):
        super().__init__()
        self.depthwise, self.pointwise = depthwise, pointwise

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


def activation_module(name: str) -> nn.Module:
    """The PyTorch module for a scratchnet activation name (softmax over dim 1: the channels)."""
    modules = {
        "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "selu": nn.SELU,
        "silu": nn.SiLU, "swish": nn.SiLU, "linear": nn.Identity,
        "leaky_relu": lambda: nn.LeakyReLU(0.01),
        "gelu": lambda: nn.GELU(approximate="none"),
        "elu": lambda: nn.ELU(alpha=1.0),
        # threshold 40 (default 20): above it PyTorch returns x; log(1 + e^-40) = 4e-18 is below
        # float64's resolution at 40, so the two agree everywhere (with 20 they differ by 2e-9)
        "softplus": lambda: nn.Softplus(beta=1.0, threshold=40.0),
        "softmax": lambda: nn.Softmax(dim=1),
    }
    return modules[name]()
