"""2-D convolution layers (channels-last): Conv2D here, DepthwiseConv2D and SeparableConv2D in
depthwise.py. All share ``ConvBase`` (options, padding, input checks, cropping dx).

Four backends compute the same numbers, and read as a progression (a fifth name, ``"auto"``,
picks one of the fast two):

* ``"loops"``  (kernels/loops.py): the DEFINITION, one Python loop per index. Very slow; the
  oracle every test compares against. Read it first.
* ``"scipy"``  (kernels/scipy_conv.py): the same sums, one 2-D ``scipy.signal`` correlation per
  (input channel, filter) slice; stride and dilation become zeros inserted into the arrays.
* ``"im2col"`` (kernels/im2col.py): every receptive field copied into a row of a patch matrix,
  so the whole convolution is a few large matrix products (batched over groups: kernels/grouped.py).
  The fast one.
* ``"winograd"`` (kernels/winograd.py, Conv2D only): 3x3 kernels, stride 1, dilation 1, groups 1:
  Winograd's F(4x4, 3x3), 36 instead of 144 multiplications per 4x4 output tile.
* ``"auto"`` (Conv2D only): winograd where it measured faster than im2col (``auto_backend``),
  im2col elsewhere.
"""

from __future__ import annotations

import numpy as np

from ..initializers import check_initializer_name, check_use_bias, initialize
from ..kernels import im2col as im2col_kernels
from ..kernels import loops, scipy_conv
from ..kernels import padding as padding_kernels
from ..kernels import winograd as winograd_kernels
from .base import Layer
from .spatial import (
    as_pair,
    check_backend,
    check_image_shape,
    check_padding_option,
    conv_output_hw,
    pad_spatial,
    positive_int,
    resolve_padding,
)

BACKENDS = ("im2col", "scipy", "loops")
# Winograd F(4x4, 3x3) beat im2col (forward and backward, float32, batch 32-64, 2-core Zen 5 with
# OpenBLAS, benchmarks/README.md "Winograd in chunks") from 16 input channels and 16 filters on;
# with 3 input channels im2col was 1.2-2.3x faster (the transforms cost more than the product
# saves).
AUTO_MIN_CHANNELS = 16


class ConvBase(Layer):
    """What every convolution layer shares: stride, padding, dilation, bias, backend choice,
    the output-shape formula, input checks, zero padding and cropping the padding off dx.

    A subclass sets ``backends`` and implements ``channels_out(C)``, ``forward_padded(x_padded)``
    (returns y and what backward needs) and ``backward_padded(dy, need_dx)`` (fills grads,
    returns dx_padded or None). ``backward_unpadded`` turns that into the gradient of x by
    cropping the padding off; a subclass whose kernels pad x themselves overrides it (Conv2D).
    """

    backends = BACKENDS
    backend_aliases: dict = {}  # another name a subclass accepts for one of its backends

    def __init__(self, kernel_size, stride=1, padding="valid", dilation=1, use_bias=True,
                 backend="im2col", name=None):
        super().__init__(name=name)
        self.kernel_size = as_pair(kernel_size, "kernel_size", self.name)
        self.stride = as_pair(stride, "stride", self.name)
        self.dilation = as_pair(dilation, "dilation", self.name)
        self.padding = check_padding_option(padding, self.name)
        self.use_bias = check_use_bias(use_bias, self.name)
        self.backend = backend

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        """Switch the algorithm; the weights stay as they are."""
        value = self.backend_aliases.get(value, value)
        self._backend = check_backend(value, self.backends, self.name)

    def pads_for(self, input_hw) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)) zero padding for an input of size input_hw."""
        return resolve_padding(self.padding, input_hw, self.kernel_size, self.stride, self.dilation)

    def channels_out(self, channels: int) -> int:
        raise NotImplementedError

    def output_shape(self, input_shape):
        height, width, channels = check_image_shape(input_shape, self.name)
        pads = self.pads_for((height, width))
        oh, ow = conv_output_hw(self.name, (height, width), self.kernel_size, self.stride,
                                self.dilation, pads)
        return (oh, ow, self.channels_out(channels))

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

    def forward(self, x, training=False):
        x = self.check_input(x)
        pads = self.pads_for(x.shape[1:3])
        x_padded = pad_spatial(x, pads, fill=0)  # zeros in x's dtype; x itself if no padding
        y, saved = self.forward_padded(x_padded)
        self.cache = {"backend": self.backend, "pads": pads, "padded_shape": x_padded.shape,
                      "y_shape": y.shape, **saved}
        return y

    def backward(self, dy):
        return self._backward(dy, need_dx=True)

    def backward_params(self, dy) -> None:
        """dW and db only: the fast backends skip the input gradient (as costly as dW)."""
        self._backward(dy, need_dx=False)

    def _backward(self, dy, need_dx: bool):
        dy = self.check_output_grad(dy, self.cache["y_shape"] if self.cache else ())
        # the backend that ran the forward (and filled the cache) also runs the backward
        return self.backward_unpadded(dy, need_dx)

    def backward_unpadded(self, dy, need_dx: bool):
        """Fill grads; return dx (N, H, W, C), the gradient of the input x itself (None if not
        need_dx and the backend skipped it): ``backward_padded``'s dx_padded (N, Hp, Wp, C) with
        the padding cropped off (a view, no copy)."""
        dx_padded = self.backward_padded(dy, need_dx)
        if dx_padded is None:
            return None
        (top, bottom), (left, right) = self.cache["pads"]
        _, height, width, _ = self.cache["padded_shape"]
        return dx_padded[:, top:height - bottom, left:width - right, :]

    def store_grads(self, dW, db) -> None:
        """grads["W"] = dW, and grads["b"] = db if the layer has a bias."""
        self.grads["W"] = dW
        if self.use_bias:
            self.grads["b"] = db

    def get_config(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding,
                "dilation": self.dilation, "use_bias": self.use_bias, "backend": self.backend,
                **super().get_config()}


class Conv2D(ConvBase):
    """y = conv(x, W) + b, the cross-correlation deep-learning frameworks call convolution.

    Shapes (channels-last; g = groups, Cg = C/g input channels per group)
    ---------------------------------------------------------------------
    x  (N, H, W, C)            W  (kh, kw, Cg, filters)       b  (filters,)
    y  (N, OH, OW, filters)    OH = floor((H + pad_top + pad_bottom - d*(kh-1) - 1) / s) + 1

    Forward, with xp the zero-padded input (g = 1: G(f) = 0 and Cg = C, a plain convolution):
        y[n, oh, ow, f] = b[f] + sum_{i, j, c < Cg} xp[n, s*oh + d*i, s*ow + d*j, G(f)*Cg + c] * W[i, j, c, f]
        G(f) = f // (filters/g): the channels and the filters are split into g consecutive groups,
        and filter f sees only the channels of its own group (PyTorch's ``groups``).

    Backward, given dy = dL/dy:
        db[f]          = sum_{n, oh, ow} dy[n, oh, ow, f]
        dW[i, j, c, f] = sum_{n, oh, ow} xp[n, s*oh + d*i, s*ow + d*j, G(f)*Cg + c] * dy[n, oh, ow, f]
        dxp[n, row, col, G(f)*Cg + c] = sum over (oh, ow, i, j) with s*oh + d*i = row, s*ow + d*j = col
                          of sum_{f in the group} dy[n, oh, ow, f] * W[i, j, c, f]
        dx = dxp with the padded border cropped off.

    Parameters
    ----------
    filters : int             number of output channels.
    kernel_size, stride, dilation : int or (h, w) pair (non-square kernels work).
    padding : "valid" (none), "same" (output ceil(in / stride); an odd total goes to the
        bottom/right, as in Keras), an int p, an (ph, pw) pair or ((top, bottom), (left, right)).
    groups : int dividing both C and filters (g = C with filters = C*M is a depthwise
        convolution; ``DepthwiseConv2D`` has a faster kernel for that case).
    backend : "im2col" (fast), "scipy" (readable), "loops" (the definition), "winograd" (3x3,
        stride 1, dilation 1, groups 1 only) or "auto" (winograd where it is faster, else
        im2col), see the module docstring. All give the same numbers (winograd F(4x4) to ~1.4e-12
        in float64 and ~9e-6 of max|y| in float32 at 64 channels, measured in
        kernels/winograd.py); switch on a built layer with ``layer.backend = ...``.

    The layer is built for a channel count C; it accepts any height and width in which the
    (dilated) kernel fits (a Sequential model still fixes the input shape).

    Do not change ``params`` between a forward and its backward (an optimizer step, set_weights):
    the winograd backend keeps the transformed kernel U from the forward, the others read W
    again, so the input gradients would differ by backend.
    """

    groups = 1  # class default: a Conv2D saved before groups existed loads as an ungrouped one
    backends = (*BACKENDS, "winograd", "auto")

    def __init__(self, filters: int, kernel_size, stride=1, padding="valid", dilation=1,
                 use_bias: bool = True, kernel_initializer: str = "glorot_uniform",
                 backend: str = "im2col", groups: int = 1, name: str | None = None):
        super().__init__(kernel_size, stride, padding, dilation, use_bias, backend, name)
        self.filters = positive_int(filters, "filters", self.name)
        self.groups = positive_int(groups, "groups", self.name)
        if self.filters % self.groups:
            raise ValueError(f"{self.name}: groups={self.groups} must divide filters, "
                             f"got filters={self.filters}")
        self.kernel_initializer = check_initializer_name(kernel_initializer, self.name)
        if self.backend == "winograd":
            self.check_winograd()

    def channels_out(self, channels: int) -> int:
        if channels % self.groups:
            raise ValueError(f"{self.name}: groups={self.groups} must divide the input channels, "
                             f"got C={channels}")
        return self.filters

    def init_params(self, input_shape, rng):
        group_channels = input_shape[2] // self.groups  # Cg
        shape = (*self.kernel_size, group_channels, self.filters)
        params = {"W": initialize(self.kernel_initializer, shape, rng)}
        if self.use_bias:
            params["b"] = np.zeros(self.filters)
        return params

    def winograd_applies(self) -> bool:
        """Winograd F(4x4, 3x3) computes 3x3 kernels with stride 1, dilation 1 and groups 1."""
        return (self.kernel_size == (3, 3) and self.stride == (1, 1) and self.dilation == (1, 1)
                and self.groups == 1)

    def check_winograd(self) -> None:
        if not self.winograd_applies():
            raise ValueError(f"{self.name}: backend 'winograd' needs kernel_size 3x3, stride 1, "
                             f"dilation 1 and groups 1, got kernel_size={self.kernel_size}, "
                             f"stride={self.stride}, dilation={self.dilation}, groups={self.groups}")

    def auto_backend(self, padded_shape) -> str:
        """"winograd" where it measured faster than im2col (see AUTO_MIN_CHANNELS), else "im2col"."""
        _, height, width, channels = padded_shape
        big_enough = min(channels, self.filters) >= AUTO_MIN_CHANNELS and min(height, width) >= 6
        return "winograd" if self.winograd_applies() and big_enough else "im2col"

    def resolved_backend(self, padded_shape) -> str:
        return self.auto_backend(padded_shape) if self.backend == "auto" else self.backend

    def forward(self, x, training=False):
        """ConvBase.forward's work, but Winograd and im2col zero-pad x themselves a chunk of
        images at a time (kernels/winograd.py, kernels/im2col.py): im2col then keeps x (alive
        anyway as the previous layer's output) for the backward instead of a padded copy of it
        (1.13x x at 32x32, padding 1); Winograd keeps its transformed input tiles V instead. Both
        then return the gradient of x itself, not of a padded x (``backward_unpadded``)."""
        x = self.check_input(x)
        pads = self.pads_for(x.shape[1:3])
        padded_shape = padding_kernels.padded_shape(x.shape, pads)
        backend = self.resolved_backend(padded_shape)
        W, b = self.params["W"], self.params.get("b")
        if backend in ("scipy", "loops"):  # the readable backends take the padded input, as ConvBase's
            y, saved = self.forward_padded(pad_spatial(x, pads, fill=0))
        elif backend == "im2col":  # keeps x only: the backward pads and rebuilds the patches chunk by chunk
            y = im2col_kernels.conv2d_forward(x, W, b, self.stride, self.dilation, self.groups,
                                              self.workspace, pads)
            saved = {"x": x}
        else:
            self.check_winograd()
            y, winograd_saved = winograd_kernels.conv2d_forward(x, W, b, pads=pads, workspace=self.workspace)
            saved = {"winograd": winograd_saved}  # V (per chunk) and U, not x
        self.cache = {"backend": backend, "pads": pads, "padded_shape": padded_shape, "y_shape": y.shape,
                      **saved}
        return y

    def forward_padded(self, x_padded):
        """scipy, loops (Winograd and im2col never get here: see ``forward``)."""
        W, b = self.params["W"], self.params.get("b")
        kernels = scipy_conv if self.backend == "scipy" else loops
        y = kernels.conv2d_forward(x_padded, W, b, self.stride, self.dilation, self.groups)
        return y, {"x_padded": x_padded}

    def backward_unpadded(self, dy, need_dx):
        """Fill grads["W"], grads["b"]; return dx (N, H, W, C), the gradient of x itself (None if
        not need_dx). im2col and Winograd padded x themselves (see ``forward``) and return x's own
        gradient, a contiguous array (the next layer's element-wise backward ran 1.6-2x slower on
        a cropped view of a padded dx, 64x32x32x16 float32); scipy and loops return dx_padded
        (``backward_padded``), which ConvBase crops."""
        W, cache = self.params["W"], self.cache
        if cache["backend"] == "winograd":
            dx, dW, db = winograd_kernels.conv2d_backward(
                cache["winograd"], W, dy, cache["padded_shape"], need_dx, self.workspace, self.use_bias)
        elif cache["backend"] == "im2col":
            dx, dW, db = im2col_kernels.conv2d_backward(
                cache["x"], W, dy, self.stride, self.dilation, self.use_bias, need_dx, self.workspace,
                self.groups, cache["pads"])
        else:
            return super().backward_unpadded(dy, need_dx)
        self.store_grads(dW, db)
        return dx

    def backward_padded(self, dy, need_dx):
        """scipy, loops (Winograd and im2col never get here: see ``backward_unpadded``): fill
        grads["W"], grads["b"]; return dx_padded (N, Hp, Wp, C), computed even if not need_dx."""
        kernels = scipy_conv if self.cache["backend"] == "scipy" else loops
        dx_padded, dW, db = kernels.conv2d_backward(self.cache["x_padded"], self.params["W"], dy,
                                                    self.stride, self.dilation, self.groups)
        self.store_grads(dW, db)
        return dx_padded

    def get_config(self):
        return {"filters": self.filters, **super().get_config(),
                "kernel_initializer": self.kernel_initializer, "groups": self.groups}
