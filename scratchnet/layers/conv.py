"""2-D convolution layer (channels-last), with a readable and a fast backend."""

from __future__ import annotations

import numbers

import numpy as np

from ..initializers import check_initializer_name, initialize
from ..kernels import im2col as im2col_kernels
from ..kernels import scipy_conv
from .base import Layer
from .spatial import (
    as_pair,
    check_image_shape,
    check_padding_option,
    conv_output_hw,
    pad_spatial,
    resolve_padding,
)

BACKENDS = ("im2col", "scipy")


class Conv2D(Layer):
    """y = conv(x, W) + b, the cross-correlation deep-learning frameworks call convolution.

    Shapes (channels-last)
    ----------------------
    x  (N, H, W, C)            W  (kh, kw, C, filters)        b  (filters,)
    y  (N, OH, OW, filters)    OH = floor((H + pad_top + pad_bottom - d*(kh-1) - 1) / s) + 1

    Forward, with xp the zero-padded input:
        y[n, oh, ow, f] = b[f] + sum_{i, j, c} xp[n, s*oh + d*i, s*ow + d*j, c] * W[i, j, c, f]

    Backward, given dy = dL/dy:
        db[f]          = sum_{n, oh, ow} dy[n, oh, ow, f]
        dW[i, j, c, f] = sum_{n, oh, ow} xp[n, s*oh + d*i, s*ow + d*j, c] * dy[n, oh, ow, f]
        dxp[n, a, b, c] = sum over (oh, ow, i, j) with s*oh + d*i = a, s*ow + d*j = b
                          of sum_f dy[n, oh, ow, f] * W[i, j, c, f]
        dx = dxp with the padded border cropped off.

    Parameters
    ----------
    filters : int             number of output channels.
    kernel_size, stride, dilation : int or (h, w) pair (non-square kernels work).
    padding : "valid" (none), "same" (output ceil(in / stride); an odd total goes to the
        bottom/right, as in Keras), an int p, an (ph, pw) pair or ((top, bottom), (left, right)).
    backend : "im2col" (fast: patch matrix + matrix products, scratchnet/kernels/im2col.py) or
        "scipy" (readable reference: scipy.signal per channel slice, kernels/scipy_conv.py).
        Both give the same numbers; switch on a built layer with ``layer.backend = "scipy"``.

    The layer is built for a channel count C; it accepts any height and width in which the
    (dilated) kernel fits (a Sequential model still fixes the input shape).
    """

    def __init__(self, filters: int, kernel_size, stride=1, padding="valid", dilation=1,
                 use_bias: bool = True, kernel_initializer: str = "glorot_uniform",
                 backend: str = "im2col", name: str | None = None):
        super().__init__(name=name)
        if (isinstance(filters, bool) or not isinstance(filters, numbers.Integral)
                or filters < 1):
            raise ValueError(f"{self.name}: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = as_pair(kernel_size, "kernel_size", self.name)
        self.stride = as_pair(stride, "stride", self.name)
        self.dilation = as_pair(dilation, "dilation", self.name)
        self.padding = check_padding_option(padding, self.name)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = check_initializer_name(kernel_initializer, self.name)
        self.backend = backend

    # ------------------------------------------------------------------ options
    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        """Switch the algorithm; the weights stay as they are."""
        if value not in BACKENDS:
            raise ValueError(f"{self.name}: unknown backend {value!r}; expected one of "
                             f"{', '.join(map(repr, BACKENDS))}")
        self._backend = value

    def pads_for(self, input_hw) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)) zero padding for an input of size input_hw."""
        return resolve_padding(self.padding, input_hw, self.kernel_size, self.stride, self.dilation)

    # ----------------------------------------------------------------- building
    def output_shape(self, input_shape):
        height, width, _ = check_image_shape(input_shape, self.name)
        pads = self.pads_for((height, width))
        oh, ow = conv_output_hw(self.name, (height, width), self.kernel_size, self.stride,
                                self.dilation, pads)
        return (oh, ow, self.filters)

    def init_params(self, input_shape, rng):
        channels = input_shape[2]
        params = {"W": initialize(self.kernel_initializer, (*self.kernel_size, channels, self.filters), rng)}
        if self.use_bias:
            params["b"] = np.zeros(self.filters)
        return params

    def check_input(self, x) -> np.ndarray:
        """(N, H, W, C) with the built C and a size the kernel fits in; in the layer's dtype."""
        x = self.as_numeric_array(x)
        channels = self.input_shape[2]
        if x.ndim != 4:
            raise ValueError(f"{self.name}: expected a 4-D input (N, H, W, {channels}), "
                             f"got {x.ndim}-D with shape {x.shape}")
        if x.shape[3] != channels:
            raise ValueError(f"{self.name}: built for {channels} input channels, got {x.shape[3]} "
                             f"(input shape {x.shape}, channels last)")
        if 0 in x.shape:
            raise ValueError(f"{self.name}: empty input of shape {x.shape}")
        self.output_shape(x.shape[1:])  # raises if the kernel is larger than the padded input
        return x.astype(self.dtype, copy=False)

    # ------------------------------------------------------------------ passes
    def forward(self, x, training=False):
        x = self.check_input(x)
        pads = self.pads_for(x.shape[1:3])
        x_padded = pad_spatial(x, pads, fill=0)  # zeros in x's dtype; x itself if no padding
        W, b = self.params["W"], self.params.get("b")
        if self.backend == "im2col":
            y, cols = im2col_kernels.conv2d_forward(x_padded, W, b, self.stride, self.dilation)
            saved = {"cols": cols}  # the patch matrix, reused by the kernel gradient
        else:
            y = scipy_conv.conv2d_forward(x_padded, W, b, self.stride, self.dilation)
            saved = {"x_padded": x_padded}
        self.cache = {"backend": self.backend, "pads": pads, "padded_shape": x_padded.shape,
                      "y_shape": y.shape, **saved}
        return y

    def backward(self, dy):
        dx_padded = self._backward(dy, input_gradient=True)
        (top, bottom), (left, right) = self.cache["pads"]
        _, height, width, _ = self.cache["padded_shape"]
        return dx_padded[:, top:height - bottom, left:width - right, :]  # crop the padding off

    def backward_params(self, dy) -> None:
        """dW and db only: the im2col backend skips the input gradient (as costly as dW)."""
        self._backward(dy, input_gradient=False)

    def _backward(self, dy, input_gradient: bool):
        """Fill grads["W"], grads["b"]; return dx_padded (None if not input_gradient and im2col)."""
        dy = self.check_output_grad(dy, self.cache["y_shape"] if self.cache else ())
        W, cache = self.params["W"], self.cache
        # the backend that ran the forward (and filled the cache) also runs the backward
        if cache["backend"] == "im2col":
            dx_padded, dW, db = im2col_kernels.conv2d_backward(
                cache["cols"], W, dy, cache["padded_shape"], self.stride, self.dilation,
                need_input_gradient=input_gradient, workspace=self.workspace)
        else:
            dx_padded, dW, db = scipy_conv.conv2d_backward(
                cache["x_padded"], W, dy, self.stride, self.dilation)
        self.grads["W"] = dW
        if self.use_bias:
            self.grads["b"] = db
        return dx_padded

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, "dilation": self.dilation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "backend": self.backend,
                **super().get_config()}
