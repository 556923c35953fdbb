"""Depthwise and depthwise-separable convolutions (channels-last), Keras' layouts.

A depthwise convolution filters every input channel on its own (no sum over channels): it is a
grouped convolution with one channel per group, ``Conv2D(groups=C, filters=C*M)``, whose kernel
(kh, kw, 1, C*M) is Keras' depthwise kernel (kh, kw, C, M) reshaped (output channel c*M + m =
filter m of channel c; ``kernels.loops.depthwise_as_grouped_kernel``). So the "loops", "scipy"
and "im2col" backends run the grouped kernels on the reshaped kernel, and the default backend
"offsets" (kernels/depthwise.py) runs a kernel made for this case: a loop over the kh*kw kernel
offsets with broadcast multiply-adds on strided views, no patch matrix. Why: im2col with groups of
one channel builds C patch matrices of only kh*kw columns and runs C tiny products; measured
(float32, batch 64, 32x32x32, 3x3) 4x (fastest calls) to 24x (medians) slower forward than
the offsets kernel (benchmarks/README.md).

A separable convolution is a depthwise convolution followed by a 1x1 ("pointwise")
convolution that mixes the C*M channels into ``filters`` outputs.
"""

from __future__ import annotations

import numpy as np

from ..initializers import check_initializer_name, initialize
from ..kernels import depthwise as offsets_kernels
from ..kernels import im2col as im2col_kernels
from ..kernels import loops, scipy_conv
from .conv import BACKENDS, ConvBase
from .spatial import positive_int

DEPTHWISE_BACKENDS = ("offsets", *BACKENDS)  # offsets, im2col, scipy, loops


# ------------------------------------------------------------------- the two halves
def depthwise_forward(backend, x_padded, W, b, stride, dilation):
    """(z, saved): z (N, OH, OW, C*M) = depthwise conv of x_padded (N, Hp, Wp, C) with W (kh, kw, C, M)."""
    if backend == "offsets":
        return offsets_kernels.depthwise_forward(x_padded, W, b, stride, dilation), {"x_padded": x_padded}
    W_grouped, groups = loops.depthwise_as_grouped_kernel(W), W.shape[2]
    kernels = {"im2col": im2col_kernels, "scipy": scipy_conv, "loops": loops}[backend]
    return kernels.conv2d_forward(x_padded, W_grouped, b, stride, dilation, groups), {"x_padded": x_padded}


def depthwise_backward(backend, saved, use_bias, W, dz, stride, dilation, need_dx, workspace):
    """(dx_padded or None, dW (kh, kw, C, M), db (C*M,)) for dz (N, OH, OW, C*M); the offsets and
    im2col kernels give db only ``use_bias``."""
    if backend == "offsets":
        return offsets_kernels.depthwise_backward(saved["x_padded"], W, dz, stride, dilation, need_dx,
                                                  use_bias)
    W_grouped, groups = loops.depthwise_as_grouped_kernel(W), W.shape[2]
    if backend == "im2col":
        dx_padded, dW, db = im2col_kernels.conv2d_backward(
            saved["x_padded"], W_grouped, dz, stride, dilation, use_bias, need_dx, workspace, groups)
    else:
        kernels = scipy_conv if backend == "scipy" else loops
        dx_padded, dW, db = kernels.conv2d_backward(saved["x_padded"], W_grouped, dz, stride, dilation,
                                                    groups)
    return dx_padded, dW.reshape(W.shape), db


def pointwise_forward(z, W, b):
    """y (N, OH, OW, F) = z2d @ W2d + b: a 1x1 convolution of z (N, OH, OW, K), W (1, 1, K, F)."""
    y = z.reshape(-1, W.shape[2]) @ W[0, 0]  # (M, K) @ (K, F)
    if b is not None:
        y += b
    return y.reshape(*z.shape[:3], W.shape[3])


def pointwise_backward(z, W, dy, use_bias=True):
    """(dz, dW, db): dz2d = dy2d @ W2d^T,  dW2d = z2d^T @ dy2d,  db = sum over rows of dy2d (None
    without ``use_bias``)."""
    dy2d, z2d = dy.reshape(-1, W.shape[3]), z.reshape(-1, W.shape[2])
    dz = (dy2d @ W[0, 0].T).reshape(z.shape)
    return dz, (z2d.T @ dy2d).reshape(W.shape), dy2d.sum(axis=0) if use_bias else None


def depthwise_init(initializer, kernel_hw, channels, multiplier, rng):
    """Initialise as the equivalent grouped kernel (kh, kw, 1, C*M): fan_in = kh*kw (as PyTorch)."""
    return initialize(initializer, (*kernel_hw, 1, channels * multiplier), rng).reshape(
        *kernel_hw, channels, multiplier)


class DepthwiseConv2D(ConvBase):
    """Each input channel convolved with its own ``depth_multiplier`` filters (no channel sum).

    Shapes: x (N, H, W, C),  W (kh, kw, C, M),  b (C*M,),  y (N, OH, OW, C*M),  M = depth_multiplier,
    OH as for Conv2D.  Output channel c*M + m is filter m of input channel c (Keras' order).

    Forward, with xp the zero-padded input:
        y[n, oh, ow, c*M + m] = b[c*M + m] + sum_{i, j} xp[n, s*oh + d*i, s*ow + d*j, c] * W[i, j, c, m]
    Backward, given dy (N, OH, OW, C*M), dy_cm = dy[..., c*M + m]:
        db[c*M + m]    = sum_{n, oh, ow} dy_cm[n, oh, ow]
        dW[i, j, c, m] = sum_{n, oh, ow} xp[n, s*oh + d*i, s*ow + d*j, c] * dy_cm[n, oh, ow]
        dxp[n, row, col, c] = sum_m sum over (oh, ow, i, j) with s*oh + d*i = row, s*ow + d*j = col
                          of dy_cm[n, oh, ow] * W[i, j, c, m];  dx = dxp cropped.

    backend: "offsets" (default, fast: kernels/depthwise.py) or "im2col", "scipy", "loops"
    (the grouped Conv2D kernels with groups = C on the reshaped kernel; see the module docstring).
    """

    backends = DEPTHWISE_BACKENDS
    backend_aliases = {"auto": "offsets"}  # the fastest depthwise kernel everywhere it was measured

    def __init__(self, kernel_size, depth_multiplier: int = 1, stride=1, padding="valid", dilation=1,
                 use_bias: bool = True, kernel_initializer: str = "glorot_uniform",
                 backend: str = "offsets", name: str | None = None):
        super().__init__(kernel_size, stride, padding, dilation, use_bias, backend, name)
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier", self.name)
        self.kernel_initializer = check_initializer_name(kernel_initializer, self.name)

    def channels_out(self, channels: int) -> int:
        return channels * self.depth_multiplier

    def init_params(self, input_shape, rng):
        channels = input_shape[2]
        params = {"W": depthwise_init(self.kernel_initializer, self.kernel_size, channels,
                                      self.depth_multiplier, rng)}
        if self.use_bias:
            params["b"] = np.zeros(channels * self.depth_multiplier)
        return params

    def forward_padded(self, x_padded):
        return depthwise_forward(self.backend, x_padded, self.params["W"], self.params.get("b"),
                                 self.stride, self.dilation)

    def backward_padded(self, dy, need_dx):
        cache = self.cache
        dx_padded, dW, db = depthwise_backward(cache["backend"], cache, self.use_bias,
                                               self.params["W"], dy, self.stride, self.dilation,
                                               need_dx, self.workspace)
        self.store_grads(dW, db)
        return dx_padded

    def get_config(self):
        return {"depth_multiplier": self.depth_multiplier, **super().get_config(),
                "kernel_initializer": self.kernel_initializer}


class SeparableConv2D(ConvBase):
    """A depthwise convolution, then a 1x1 convolution mixing its C*M channels into ``filters``.

    Shapes: x (N, H, W, C);  depthwise_W (kh, kw, C, M);  pointwise_W (1, 1, C*M, filters);
    b (filters,);  z (N, OH, OW, C*M) the depthwise output;  y (N, OH, OW, filters).

    Forward:
        z[n, oh, ow, c*M + m] = sum_{i, j} xp[n, s*oh + d*i, s*ow + d*j, c] * depthwise_W[i, j, c, m]
        y[n, oh, ow, f]       = b[f] + sum_k z[n, oh, ow, k] * pointwise_W[0, 0, k, f]
    Backward (the chain rule through the two halves), given dy:
        db = sum_{n, oh, ow} dy;   d pointwise_W[0, 0, k, f] = sum_{n, oh, ow} z[..., k] * dy[..., f]
        dz[..., k] = sum_f dy[..., f] * pointwise_W[0, 0, k, f]
        d depthwise_W, dx: the DepthwiseConv2D backward of dz (no depthwise bias, as in Keras).

    Parameters (``depthwise_W``, ``pointwise_W``, ``b``) live on this one layer; the halves
    are the kernels of DepthwiseConv2D and of a 1x1 Conv2D. backend: "offsets" (default: the
    offsets depthwise kernel, then the 1x1 convolution as one plain matrix product), "im2col",
    "scipy", "loops" (both halves by that Conv2D kernel).
    """

    backends = DEPTHWISE_BACKENDS
    backend_aliases = {"auto": "offsets"}  # the fastest depthwise kernel everywhere it was measured

    def __init__(self, filters: int, kernel_size, depth_multiplier: int = 1, stride=1, padding="valid",
                 dilation=1, use_bias: bool = True, kernel_initializer: str = "glorot_uniform",
                 backend: str = "offsets", name: str | None = None):
        super().__init__(kernel_size, stride, padding, dilation, use_bias, backend, name)
        self.filters = positive_int(filters, "filters", self.name)
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier", self.name)
        self.kernel_initializer = check_initializer_name(kernel_initializer, self.name)

    def channels_out(self, channels: int) -> int:
        return self.filters

    def init_params(self, input_shape, rng):
        channels, multiplier = input_shape[2], self.depth_multiplier
        params = {"depthwise_W": depthwise_init(self.kernel_initializer, self.kernel_size, channels,
                                                multiplier, rng),
                  "pointwise_W": initialize(self.kernel_initializer, (1, 1, channels * multiplier,
                                                                      self.filters), rng)}
        if self.use_bias:
            params["b"] = np.zeros(self.filters)
        return params

    def _pointwise_kernels(self, backend):
        return {"loops": loops, "scipy": scipy_conv, "im2col": im2col_kernels}.get(backend)

    def forward_padded(self, x_padded):
        z, saved_depthwise = depthwise_forward(self.backend, x_padded, self.params["depthwise_W"], None,
                                               self.stride, self.dilation)
        kernels = self._pointwise_kernels(self.backend)
        if kernels is None:  # "offsets": a 1x1 convolution IS a matrix product, z2d @ W2d + b, no im2col
            y = pointwise_forward(z, self.params["pointwise_W"], self.params.get("b"))
            saved_pointwise = {"z": z}
        else:
            options = {"workspace": self.workspace} if kernels is im2col_kernels else {}  # the shared scratch
            y = kernels.conv2d_forward(z, self.params["pointwise_W"], self.params.get("b"), **options)
            saved_pointwise = {"x_padded": z}
        return y, {"depthwise": saved_depthwise, "pointwise": saved_pointwise}

    def backward_padded(self, dy, need_dx):
        cache, W_point = self.cache, self.params["pointwise_W"]
        kernels = self._pointwise_kernels(cache["backend"])
        if kernels is None:
            dz, dW_point, db = pointwise_backward(cache["pointwise"]["z"], W_point, dy, self.use_bias)
        elif kernels is im2col_kernels:
            dz, dW_point, db = im2col_kernels.conv2d_backward(
                cache["pointwise"]["x_padded"], W_point, dy, use_bias=self.use_bias, workspace=self.workspace)
        else:
            dz, dW_point, db = kernels.conv2d_backward(cache["pointwise"]["x_padded"], W_point, dy)
        dx_padded, dW_depth, _ = depthwise_backward(
            cache["backend"], cache["depthwise"], False, self.params["depthwise_W"], dz,  # no depthwise bias
            self.stride, self.dilation, need_dx, self.workspace)
        self.grads["depthwise_W"], self.grads["pointwise_W"] = dW_depth, dW_point
        if self.use_bias:
            self.grads["b"] = db
        return dx_padded

    def get_config(self):
        return {"filters": self.filters, "depth_multiplier": self.depth_multiplier,
                **super().get_config(), "kernel_initializer": self.kernel_initializer}
