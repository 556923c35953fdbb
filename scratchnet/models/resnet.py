"""The CIFAR ResNet of He et al. (2016, section 4.2): depth 6n + 2, BasicBlocks in three stages.

    stem      Conv2D w, 3x3, BatchNorm, ReLU                      32 x 32 x w
    stage 1   n BasicBlocks of w channels                         32 x 32 x w
    stage 2   n BasicBlocks of 2w channels, the first stride 2    16 x 16 x 2w
    stage 3   n BasicBlocks of 4w channels, the first stride 2     8 x  8 x 4w
    head      GlobalAvgPool, Dense n_classes

A BasicBlock is two 3x3 convolutions with a skip connection around them:

    y = relu( BN(conv3x3(relu(BN(conv3x3_s(x))))) + shortcut(x) )

shortcut(x) = x when the shape stays, else BN(conv1x1_s(x)) — the projection shortcut (the
paper's "option B"; its CIFAR networks used option A, zero-padded identity, which needs no
weights). The ReLU comes after the addition, so it is a separate layer after the ``Residual``.
"""

from __future__ import annotations

from .. import layers as L
from ..layers.spatial import positive_int
from ..model import Sequential
from ..option_checks import is_int
from .classic import conv_bn_relu, logits_layer


def basic_block(filters: int, stride: int = 1, in_channels: int | None = None, backend: str = "auto"):
    """One ResNet BasicBlock as ``[Residual(block, shortcut), ReLU]`` (a list of two layers).

    block    = Conv2D 3x3 stride s, BN, ReLU, Conv2D 3x3, BN          (N, H, W, C) -> (N, H/s, W/s, F)
    shortcut = identity if s == 1 and C == F, else Conv2D 1x1 stride s (no bias), BN

    ``in_channels`` (C) decides whether a projection is needed when the stride is 1; None means
    C == filters. Parameters: 9*C*F + 9*F*F + 2*(2F) (+ C*F + 2F with the projection).
    """
    block = [*conv_bn_relu(filters, stride=stride, backend=backend),
             L.Conv2D(filters, 3, padding=1, use_bias=False, kernel_initializer="he_normal", backend=backend),
             L.BatchNorm()]
    shortcut = None
    if stride != 1 or (in_channels is not None and in_channels != filters):
        shortcut = [L.Conv2D(filters, 1, stride=stride, use_bias=False, kernel_initializer="he_normal",
                             backend=backend),
                    L.BatchNorm()]
    return [L.Residual(block, shortcut, name="basic_block"), L.Activation("relu")]


def resnet(depth: int = 20, width: int = 16, input_shape=(32, 32, 3), n_classes: int = 10,
           seed: int | None = 0, dtype="float32", backend: str = "auto") -> Sequential:
    """ResNet-``depth`` for small images: n = (depth - 2) / 6 BasicBlocks per stage.

    ==========================  =====================  ==================================
    layer                       output (32x32x3)       parameters (w = width, C = 3)
    ==========================  =====================  ==================================
    Conv2D w 3x3, BN, ReLU      32 x 32 x w            9*C*w + 2w
    stage 1: n blocks           32 x 32 x w            n * (18w^2 + 4w)
    stage 2: n blocks           16 x 16 x 2w           first: 9*w*2w + 9*(2w)^2 + 8w
                                                       + w*2w + 4w (projection); others 72w^2 + 8w
    stage 3: n blocks           8 x 8 x 4w             first: 9*2w*4w + 9*(4w)^2 + 16w
                                                       + 2w*4w + 8w; others 288w^2 + 16w
    GlobalAvgPool               4w
    Dense n_classes             10 (logits)            4w * n_classes + n_classes
    ==========================  =====================  ==================================

    depth 8 (n = 1): 78,042 parameters; depth 14: 175,258; depth 20: 272,474 (w = 16, 10
    classes, 3 input channels). 28x28x1 MNIST digits work too (sizes 28 -> 14 -> 7; the stem
    has 9*1*w weights). Every 3x3 convolution pads 1 (stride 2 maps 32 -> 16 as in PyTorch).
    """
    depth_message = f"resnet: depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...), got {depth!r}"
    if not is_int(depth):
        raise TypeError(depth_message)
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(depth_message)
    depth = int(depth)  # a NumPy integer too (a depth read from an array or a sweep)
    width = positive_int(width, "width", "resnet")
    n = (depth - 2) // 6
    layers = conv_bn_relu(width, backend=backend)                     # the stem
    channels = width
    for stage, filters in enumerate((width, 2 * width, 4 * width)):
        for k in range(n):
            stride = 2 if stage > 0 and k == 0 else 1                  # halve the size at a stage start
            layers += basic_block(filters, stride, in_channels=channels, backend=backend)
            channels = filters
    layers += [L.GlobalAvgPool2D(), logits_layer(n_classes, "resnet")]
    return Sequential(layers, input_shape=input_shape, seed=seed, dtype=dtype,
                      name=f"resnet{depth}").build()


def resnet8(input_shape=(32, 32, 3), n_classes: int = 10, seed: int | None = 0, dtype="float32",
            backend: str = "auto", width: int = 16) -> Sequential:
    """``resnet(depth=8)``: one BasicBlock per stage, 78,042 parameters."""
    return resnet(8, width, input_shape, n_classes, seed, dtype, backend)


def resnet14(input_shape=(32, 32, 3), n_classes: int = 10, seed: int | None = 0, dtype="float32",
             backend: str = "auto", width: int = 16) -> Sequential:
    """``resnet(depth=14)``: two BasicBlocks per stage, 175,258 parameters."""
    return resnet(14, width, input_shape, n_classes, seed, dtype, backend)


def resnet20(input_shape=(32, 32, 3), n_classes: int = 10, seed: int | None = 0, dtype="float32",
             backend: str = "auto", width: int = 16) -> Sequential:
    """``resnet(depth=20)``: three BasicBlocks per stage (the paper's smallest), 272,474 parameters."""
    return resnet(20, width, input_shape, n_classes, seed, dtype, backend)
