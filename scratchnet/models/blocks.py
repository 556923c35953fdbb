"""The blocks of modern CNNs, each a function returning ONE Layer (a container) to put in a model.

    inception_block    GoogLeNet (Szegedy et al., 2015): four branches side by side, concatenated
    dense_block        DenseNet (Huang et al., 2017): every layer's output joins its input
    mobilenet_block    MobileNet v1 (Howard et al., 2017): depthwise 3x3, then pointwise 1x1
    inverted_residual  MobileNetV2 (Sandler et al., 2018): expand 1x1, depthwise 3x3, project 1x1
    shufflenet_unit    ShuffleNet (Zhang et al., 2018): grouped 1x1, shuffle, depthwise, grouped 1x1

    >>> model = Sequential([Conv2D(16, 3, padding=1), inception_block(8, 8, 16, 4, 8, 8), ...])

The blocks are built from shapes like any layer. Blocks whose structure depends on the input
channel count (a residual connection only when the shapes match) take it as ``in_channels``.
"""

from __future__ import annotations

from .. import layers as L
from ..layers.spatial import positive_int


def _conv(filters, kernel_size, stride=1, padding=0, groups=1, bias=True, backend="auto"):
    return L.Conv2D(filters, kernel_size, stride=stride, padding=padding, use_bias=bias, groups=groups,
                    kernel_initializer="he_normal", backend=backend)


def _depthwise(stride=1, backend="auto"):
    """DepthwiseConv2D 3x3, padding 1, no bias (a BatchNorm follows). "auto" (the models' fast
    default) and "im2col" map to the depthwise layer's own fast default, "offsets"."""
    backend = "offsets" if backend in ("auto", "im2col") else backend
    return L.DepthwiseConv2D(3, stride=stride, padding=1, use_bias=False, kernel_initializer="he_normal",
                             backend=backend)


# ------------------------------------------------------------------ Inception
def inception_block(f1: int, f3_reduce: int, f3: int, f5_reduce: int, f5: int, pool_proj: int,
                    backend: str = "auto", name: str | None = None):
    """GoogLeNet's Inception module: ``Parallel`` of four branches, concatenated along channels.

        branch 1:  1x1 conv f1, ReLU
        branch 2:  1x1 conv f3_reduce, ReLU, 3x3 conv f3 (padding 1), ReLU
        branch 3:  1x1 conv f5_reduce, ReLU, 5x5 conv f5 (padding 2), ReLU
        branch 4:  3x3 max-pool stride 1 (padding 1), 1x1 conv pool_proj, ReLU

    (N, H, W, C) -> (N, H, W, f1 + f3 + f5 + pool_proj). Parameters, with biases:
    (C+1)*f1 + (C+1)*f3r + (9*f3r+1)*f3 + (C+1)*f5r + (25*f5r+1)*f5 + (C+1)*pool_proj.
    The 1x1 "reduce" convolutions cut the channels before the costly 3x3 and 5x5 ones.
    GoogLeNet's 3a block is ``inception_block(64, 96, 128, 16, 32, 32)`` (256 channels out).
    """

    def relu():  # a fresh layer for every place
        return L.Activation("relu")

    return L.Parallel([
        [_conv(f1, 1, backend=backend), relu()],
        [_conv(f3_reduce, 1, backend=backend), relu(), _conv(f3, 3, padding=1, backend=backend), relu()],
        [_conv(f5_reduce, 1, backend=backend), relu(), _conv(f5, 5, padding=2, backend=backend), relu()],
        [L.MaxPool2D(3, stride=1, padding=1), _conv(pool_proj, 1, backend=backend), relu()],
    ], merge="concat", name=name or "inception")


# ------------------------------------------------------------------ DenseNet
def dense_layer(growth_rate: int, bottleneck: bool = False, backend: str = "auto"):
    """One DenseNet layer: x -> [x | H(x)], H = BN, ReLU, 3x3 conv with ``growth_rate`` filters.

    Built as ``Parallel([identity, H], merge="concat")``: the identity branch carries x, the
    other computes the k = growth_rate new feature maps; the concatenation keeps both.
    (N, H, W, C) -> (N, H, W, C + k). bottleneck=True (DenseNet-B) puts BN, ReLU, 1x1 conv
    with 4k filters before the 3x3 one.
    """
    new_features = [L.BatchNorm(), L.Activation("relu")]
    if bottleneck:
        new_features += [_conv(4 * growth_rate, 1, bias=False, backend=backend), L.BatchNorm(),
                         L.Activation("relu")]
    new_features.append(_conv(growth_rate, 3, padding=1, bias=False, backend=backend))
    identity = L.Activation("linear", name="identity")  # y = x, dx = dy
    return L.Parallel([identity, new_features], merge="concat", name="dense_layer")


def dense_block(n_layers: int, growth_rate: int, bottleneck: bool = False, backend: str = "auto",
                name: str | None = None):
    """DenseNet's dense block: ``n_layers`` dense layers in a ``Chain``, each adding k channels.

    Layer l sees the concatenation of the block's input and the outputs of layers 1..l-1:
        x_l = [x_{l-1} | H_l(x_{l-1})]  =  [x_0 | H_1(x_0) | H_2(x_1) | ... ]
    (N, H, W, C) -> (N, H, W, C + n_layers * growth_rate). Parameters without bottleneck:
    sum over l = 0..n-1 of  2*(C + l*k) (BatchNorm)  +  9*(C + l*k)*k  (conv, no bias).
    """
    n_layers = positive_int(n_layers, "n_layers", "dense_block")
    return L.Chain([dense_layer(growth_rate, bottleneck, backend) for _ in range(n_layers)],
                   name=name or "dense_block")


# ------------------------------------------------------------------ MobileNet
def mobilenet_block(filters: int, stride: int = 1, backend: str = "auto", name: str | None = None):
    """MobileNet v1's depthwise-separable convolution, as a ``Chain``:

        DepthwiseConv2D 3x3 stride s (padding 1, no bias), BN, ReLU     (N, H, W, C) -> (N, H/s, W/s, C)
        Conv2D 1x1 filters (no bias), BN, ReLU                          -> (N, H/s, W/s, filters)

    Parameters: 9*C + 2C + C*filters + 2*filters. A full 3x3 convolution would need 9*C*filters
    weights: the split costs about 1/filters + 1/9 of it. (MobileNet uses ReLU6; ReLU here.)
    """
    return L.Chain([
        _depthwise(stride, backend), L.BatchNorm(), L.Activation("relu"),
        _conv(filters, 1, bias=False, backend=backend), L.BatchNorm(), L.Activation("relu"),
    ], name=name or "mobilenet_block")


def inverted_residual(in_channels: int, filters: int, stride: int = 1, expansion: int = 6,
                      backend: str = "auto", name: str | None = None):
    """MobileNetV2's inverted residual (linear bottleneck):

        1x1 conv C*t (no bias), BN, ReLU          expand:  (N, H, W, C) -> (N, H, W, C*t)  [t = expansion]
        depthwise 3x3 stride s, BN, ReLU                   -> (N, H/s, W/s, C*t)
        1x1 conv filters (no bias), BN            project: -> (N, H/s, W/s, filters), NO ReLU (linear)

    and ``y = x + block(x)`` (a ``Residual``) when s == 1 and C == filters; otherwise the plain
    ``Chain``. t = 1 drops the expansion convolution (MobileNetV2's first block). Parameters:
    C*Ct + 2Ct (expand, Ct = C*t) + 9*Ct + 2Ct (depthwise) + Ct*filters + 2*filters (project).
    """
    expanded = in_channels * expansion
    layers = []
    if expansion != 1:
        layers += [_conv(expanded, 1, bias=False, backend=backend), L.BatchNorm(), L.Activation("relu")]
    layers += [_depthwise(stride, backend), L.BatchNorm(), L.Activation("relu"),
               _conv(filters, 1, bias=False, backend=backend), L.BatchNorm()]
    if stride == 1 and in_channels == filters:
        return L.Residual(layers, name=name or "inverted_residual")
    return L.Chain(layers, name=name or "inverted_residual")


# ------------------------------------------------------------------ ShuffleNet
def shufflenet_unit(in_channels: int, filters: int, groups: int = 2, stride: int = 1,
                     bottleneck_ratio: float = 0.25, backend: str = "auto", name: str | None = None):
    """ShuffleNet v1's unit, as a ``Chain([unit, ReLU])``:

        branch = grouped 1x1 conv m (g groups, no bias), BN, ReLU, ChannelShuffle(g),
                 depthwise 3x3 stride s, BN, grouped 1x1 conv F' (g groups, no bias), BN
        m = bottleneck_ratio * filters, rounded to a multiple of g

    stride 1:  y = relu(x + branch(x))                         F' = filters = C  (a Residual)
    stride 2:  y = relu([avgpool3x3_s2(x) | branch(x)])       F' = filters - C  (a Parallel, concat)
    (N, H, W, C) -> (N, H/s, W/s, filters). The shuffle lets the second grouped convolution see
    every group's channels. Grouped 1x1 weights: C/g * m and m/g * F'.
    """
    mid = max(groups, int(round(filters * bottleneck_ratio / groups)) * groups)
    out = filters if stride == 1 else filters - in_channels
    if stride == 1 and in_channels != filters:
        raise ValueError(f"shufflenet_unit: stride 1 adds x to the branch, so filters must equal "
                         f"in_channels; got in_channels={in_channels}, filters={filters}")
    if out < 1:
        raise ValueError(f"shufflenet_unit: stride 2 concatenates x, so filters must exceed in_channels; "
                         f"got in_channels={in_channels}, filters={filters}")
    branch = [_conv(mid, 1, groups=groups, bias=False, backend=backend), L.BatchNorm(), L.Activation("relu"),
              L.ChannelShuffle(groups),
              _depthwise(stride, backend), L.BatchNorm(),
              _conv(out, 1, groups=groups, bias=False, backend=backend), L.BatchNorm()]
    if stride == 1:
        unit = L.Residual(branch, name=name or "shufflenet_unit")
    else:
        unit = L.Parallel([L.AvgPool2D(3, stride=2, padding=1), branch], merge="concat",
                          name=name or "shufflenet_unit")
    return L.Chain([unit, L.Activation("relu")], name="shufflenet")
