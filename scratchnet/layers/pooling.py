"""Pooling layers: MaxPool2D, AvgPool2D, GlobalAvgPool2D (channels-last, (N, H, W, C)).

A pooling window of ``kh x kw`` cells slides over every channel separately with stride
``(sh, sw)``. Output cell ``(p, q)`` looks at the input cells

    (p*sh + i - top,  q*sw + j - left)      for the window offsets  0 <= i < kh,  0 <= j < kw

(``top``/``left`` is the padding before the image). The output size along each axis is the
convolution formula of ``spatial.py``: ``out = floor((in + pad_total - k) / s) + 1``.

How it is vectorised
--------------------
For one window offset ``(i, j)``, the cells that offset picks from EVERY window form a regular
grid of the (padded) input: ``x_padded[:, i::sh, j::sw, :]`` cut to ``(N, Ho, Wo, C)``. That is a
strided *view* (basic slicing: no copy; ``offset_view`` in kernels/views.py; the kernels/depthwise.py
depthwise convolution loops over the same views). So a pooling layer is a short Python loop over the
``kh*kw`` window offsets, each step a whole-array NumPy operation; there is no loop over pixels.
The backward pass writes into the same views of the input gradient. For one offset the view
touches every input cell at most once, so ``view += values`` is an ordinary (unbuffered-safe)
in-place add; overlapping windows (stride < pool size) simply mean that several offsets reach
the same cell, and their contributions add up over the loop, as the chain rule wants.

Backends
--------
``backend="offsets"`` (the default) is the vectorised loop over window offsets above;
``backend="loops"`` runs the plain definitions of ``scratchnet/kernels/loops.py`` (one Python
loop per index: slow, for reading and for checking the fast path on tiny inputs).

Padding
-------
``padding`` is "valid", "same", an int, an (h, w) pair or ((top, bottom), (left, right)).
Every window must contain at least one real input cell, so each explicit padding must be
smaller than the pool size along its axis ("same" always is). Max-pooling pads with -inf (a
padded cell is never the maximum); average pooling does not count padded cells (see AvgPool2D).
"""

from __future__ import annotations

import numpy as np

from ..kernels import loops
from ..kernels.views import offset_view  # the (N, Ho, Wo, C) view of one window offset
from .base import Layer
from .spatial import (
    as_pair,
    check_backend,
    check_image_shape,
    check_padding_option,
    conv_output_hw,
    crop_spatial,
    pad_spatial,
    resolve_padding,
)

POOL_BACKENDS = ("offsets", "loops")


class _Pool2D(Layer):
    """Shared by MaxPool2D and AvgPool2D: options, shape arithmetic, window offsets."""

    backend = "offsets"  # class default: layers saved before the option existed load with it

    def __init__(self, pool_size=2, stride=None, padding="valid", backend: str = "offsets",
                 name: str | None = None):
        super().__init__(name=name)
        self.backend = check_backend(backend, POOL_BACKENDS, self.name)
        self.pool_size = as_pair(pool_size, "pool_size", self.name)
        self.stride = self.pool_size if stride is None else as_pair(stride, "stride", self.name)
        self.padding = check_padding_option(padding, self.name)
        if self.padding not in ("valid", "same"):
            self._check_explicit_padding(self.padding)

    def _check_explicit_padding(self, pads) -> None:
        for axis, (before, after), k in zip(("height", "width"), pads, self.pool_size):
            if max(before, after) >= k:
                raise ValueError(
                    f"{self.name}: padding along {axis} must be smaller than the pool size {k} "
                    f"(otherwise a window can lie entirely in the padding), got ({before}, {after})")

    def geometry(self, input_shape):
        """``(pads, (Ho, Wo))`` for one sample of shape (H, W, C); raises on impossible shapes."""
        height, width, _ = check_image_shape(input_shape, self.name)
        pads = resolve_padding(self.padding, (height, width), self.pool_size, self.stride)
        out_hw = conv_output_hw(self.name, (height, width), self.pool_size, self.stride, (1, 1), pads)
        return pads, out_hw

    def output_shape(self, input_shape):
        _, (out_h, out_w) = self.geometry(input_shape)
        return (out_h, out_w, int(input_shape[2]))

    def window_offsets(self):
        """The window offsets (i, j) in row-major order: offset number k is (k // kw, k % kw)."""
        pool_h, pool_w = self.pool_size
        return [(i, j) for i in range(pool_h) for j in range(pool_w)]

    def get_config(self):
        return {"pool_size": self.pool_size, "stride": self.stride, "padding": self.padding,
                "backend": self.backend, **super().get_config()}


class MaxPool2D(_Pool2D):
    """Max over each ``kh x kw`` window, per channel.

    Shapes: x (N, H, W, C) -> y (N, Ho, Wo, C); stride defaults to the pool size.

    Forward:   y[n, p, q, c] = max_{i, j} x_pad[n, p*sh + i, q*sw + j, c]
    Backward:  the max passes its gradient to the one cell that was chosen (the "argmax"),
               every other cell of the window gets 0:

        dx[n, h, w, c] = sum over the windows (p, q) whose argmax is (h, w) of dy[n, p, q, c]

    With overlapping windows (stride < pool size) one cell can be the argmax of several
    windows: its gradients add up. Cells no window covers (ragged edges: windows that do not
    tile the input) and cells never chosen get 0. Padded cells hold -inf and are never chosen.

    Ties: if several cells of a window hold the maximum, the FIRST in row-major order of the
    window (smallest i, then smallest j) is the argmax and gets the whole gradient.

    Stored for backward (``cache["argmax"]``, shape (N, Ho, Wo, C)): the window offset number
    k = i*kw + j of each maximum, as the smallest unsigned integer type that holds kh*kw - 1
    (uint8 for any window up to 16 x 16): a quarter of the memory of a float32 index.
    """

    def forward(self, x, training=False):
        x = self.check_input(x)
        pads, out_hw = self.geometry(x.shape[1:])
        if self.backend == "loops":  # the definition; argmax: {(n, p, q, c): (h, w)}
            y, argmax = loops.max_pool_forward(x, self.pool_size, self.stride, pads)
            self.cache = {"loops_argmax": argmax, "x_shape": x.shape, "y_shape": y.shape}
            return y
        x_padded = pad_spatial(x, pads, fill=-np.inf)
        offsets = self.window_offsets()
        # Running max over the kh*kw strided views, with no gather and no copy of the windows.
        # Each step reads the candidate view ONCE (np.maximum into the other of two buffers);
        # "the candidate won" is then "the max grew", a comparison of two contiguous arrays.
        # Strided reads of an NHWC view go C numbers at a time, contiguous ones don't: this
        # measured 1.1-1.4x faster than comparing with the strided candidate directly. (A
        # reshape into windows + argmax + take_along_axis measured 2.5-3x slower.)
        y = offset_view(x_padded, *offsets[0], out_hw, self.stride).copy()
        y_next = np.empty_like(y)
        index_type = np.min_scalar_type(len(offsets) - 1)
        argmax = np.zeros(y.shape, dtype=index_type)
        better = np.empty(y.shape, dtype=bool)
        for k, offset in enumerate(offsets[1:], start=1):
            candidate = offset_view(x_padded, *offset, out_hw, self.stride)
            np.maximum(y, candidate, out=y_next)
            # strictly greater: on a tie the max does not grow and the earlier offset keeps the
            # argmax; a NaN candidate makes y NaN but never "greater" (as np.greater(NaN, y))
            np.greater(y_next, y, out=better)
            # "argmax = k where better": k grows along the loop, so this is max(argmax, k * better),
            # two dense integer passes; np.copyto(argmax, k, where=better) measured ~80x slower.
            # k is an index_type scalar: with a Python int, NumPy multiplies in int64 and casts
            # every element back (measured 1.2-1.7x slower for the whole forward).
            np.maximum(argmax, better * index_type.type(k), out=argmax)
            y, y_next = y_next, y
        self.cache = {"argmax": argmax, "x_shape": x.shape, "pads": pads, "out_hw": out_hw}
        return y

    def windows_overlap(self) -> bool:
        """True if some input cell lies in more than one window (stride < pool size)."""
        return any(s < k for s, k in zip(self.stride, self.pool_size))

    def backward(self, dy):
        if "loops_argmax" in self.cache:
            dy = self.check_output_grad(dy, self.cache["y_shape"])
            return loops.max_pool_backward(self.cache["x_shape"], self.cache["loops_argmax"], dy)
        dy = self.check_output_grad(dy, self.cache["argmax"].shape if self.cache else ())
        argmax, x_shape, pads = self.cache["argmax"], self.cache["x_shape"], self.cache["pads"]
        (top, bottom), (left, right) = pads
        n, height, width, channels = x_shape
        padded_shape = (n, top + height + bottom, left + width + right, channels)
        overlap = self.windows_overlap()
        # Windows that tile the padded input exactly (stride = pool size: no gap, no overlap; no
        # ragged edge) write every cell of dx once below: nothing to zero first. Otherwise the
        # cells no window covers must read 0.
        (out_h, out_w), (stride_h, stride_w) = self.cache["out_hw"], self.stride
        tiles = (self.stride == self.pool_size and out_h * stride_h == padded_shape[1]
                 and out_w * stride_w == padded_shape[2])
        allocate = np.empty if tiles else np.zeros
        dx_padded = allocate(padded_shape, dtype=self.dtype)
        routed = np.empty_like(dy) if overlap else None  # reused buffer for dy masked to one offset
        for k, offset in enumerate(self.window_offsets()):
            # dy * (argmax == k) is a dense multiply (fast SIMD); np.add(..., where=mask) was
            # measured ~10x slower.
            dx_view = offset_view(dx_padded, *offset, self.cache["out_hw"], self.stride)
            if overlap:
                # Several offsets reach the same cell: their contributions add up. One offset's
                # view touches a cell at most once, so the in-place += is exact.
                np.multiply(dy, argmax == k, out=routed)
                dx_view += routed
            else:
                # Windows do not overlap: every cell belongs to one offset's view only, so the
                # masked product is written straight into dx (no buffer, no extra add pass).
                np.multiply(dy, argmax == k, out=dx_view)
        return crop_spatial(dx_padded, pads, (height, width))


class AvgPool2D(_Pool2D):
    """Mean over each ``kh x kw`` window, per channel; padded cells are NOT counted.

    Shapes: x (N, H, W, C) -> y (N, Ho, Wo, C); stride defaults to the pool size.

    With count[p, q] = the number of REAL (non-padded) input cells in window (p, q):

        y[n, p, q, c]  = (1 / count[p, q]) * sum_{real cells (h, w) of window (p, q)} x[n, h, w, c]
        dx[n, h, w, c] = sum over the windows (p, q) containing (h, w) of dy[n, p, q, c] / count[p, q]

    Without padding count = kh*kw everywhere. With padding, a border window averages only the
    image cells it covers, so a constant image stays constant (Keras / TensorFlow "same"
    behaviour, PyTorch ``count_include_pad=False``). PyTorch's default ``count_include_pad=True``
    would divide by kh*kw instead, pulling border outputs towards 0.
    """

    def window_counts(self, input_hw, pads, out_hw) -> np.ndarray:
        """count[p, q] as an (Ho, Wo, 1) array in the layer dtype (broadcasts over N and C)."""
        ones = pad_spatial(np.ones((1, *input_hw, 1), dtype=self.dtype), pads, fill=0)
        counts = np.zeros((1, *out_hw, 1), dtype=self.dtype)
        for offset in self.window_offsets():
            counts += offset_view(ones, *offset, out_hw, self.stride)
        return counts[0]

    def forward(self, x, training=False):
        x = self.check_input(x)
        pads, out_hw = self.geometry(x.shape[1:])
        if self.backend == "loops":  # the definition
            y = loops.avg_pool_forward(x, self.pool_size, self.stride, pads)
            self.cache = {"loops": True, "x_shape": x.shape, "y_shape": y.shape, "pads": pads}
            return y
        x_padded = pad_spatial(x, pads, fill=0)
        offsets = self.window_offsets()
        window_sum = offset_view(x_padded, *offsets[0], out_hw, self.stride).copy()
        for offset in offsets[1:]:
            window_sum += offset_view(x_padded, *offset, out_hw, self.stride)
        counts = self.window_counts(x.shape[1:3], pads, out_hw)
        self.cache = {"counts": counts, "x_shape": x.shape, "y_shape": window_sum.shape,
                      "pads": pads, "out_hw": out_hw}
        return window_sum / counts

    def backward(self, dy):
        dy = self.check_output_grad(dy, self.cache["y_shape"] if self.cache else ())
        if self.cache.get("loops"):
            return loops.avg_pool_backward(self.cache["x_shape"], dy, self.pool_size, self.stride,
                                           self.cache["pads"])
        x_shape, pads, out_hw = self.cache["x_shape"], self.cache["pads"], self.cache["out_hw"]
        (top, bottom), (left, right) = pads
        n, height, width, channels = x_shape
        share = dy / self.cache["counts"]  # what each cell of a window receives
        dx_padded = np.zeros((n, top + height + bottom, left + width + right, channels), dtype=self.dtype)
        for offset in self.window_offsets():
            offset_view(dx_padded, *offset, out_hw, self.stride)[...] += share
        return crop_spatial(dx_padded, pads, (height, width))


class GlobalAvgPool2D(Layer):
    """Mean over all spatial positions, per channel.

    Shapes: x (N, H, W, C) -> y (N, C).

        y[n, c]        = (1 / (H*W)) * sum_{h, w} x[n, h, w, c]
        dx[n, h, w, c] = dy[n, c] / (H*W)
    """

    def output_shape(self, input_shape):
        _, _, channels = check_image_shape(input_shape, self.name)
        return (channels,)

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x_shape": x.shape}
        return x.mean(axis=(1, 2), dtype=self.dtype)

    def backward(self, dy):
        x_shape = self.cache.get("x_shape")
        dy = self.check_output_grad(dy, (x_shape[0], x_shape[3]) if x_shape else ())
        n, height, width, channels = x_shape
        dx = np.empty(x_shape, dtype=self.dtype)
        dx[...] = (dy / (height * width))[:, None, None, :]  # broadcast over H and W
        return dx
