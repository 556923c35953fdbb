"""The cells one kernel (or pooling window) offset reads, as strided views of the padded input.

Notation as in ``im2col``: x_padded (N, Hp, Wp, C), an output of (OH, OW) pixels, stride s,
dilation d. Output pixel (oh, ow) at kernel offset (i, j) reads input cell (s*oh + d*i, s*ow + d*j):
for one offset, those cells of every window form the strided view

    V_ij = x_padded[:, d*i :: s, d*j :: s, :]   cut to (N, OH, OW, C)

Basic slicing, so no data is copied. The depthwise kernel (kernels/depthwise.py) and the fast
pooling (layers/pooling.py) loop over the kh*kw offsets on these views; im2col.py uses the
slices for a 1x1 kernel's strided input.
"""

from __future__ import annotations

import numpy as np


def offset_slices(i, j, out_hw, stride, dilation):
    """Rows and columns of the padded input that kernel offset (i, j) touches, as slices:
    ``d*i, d*i + s, ..., d*i + s*(OH-1)`` (and the same for the width)."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return (slice(dh * i, dh * i + sh * (oh - 1) + 1, sh),
            slice(dw * j, dw * j + sw * (ow - 1) + 1, sw))


def offset_view(x_padded, i, j, out_hw, stride, dilation=(1, 1)) -> np.ndarray:
    """V_ij = x[:, d*i :: s, d*j :: s, :] cut to (N, OH, OW, C): the cell at kernel (or pooling
    window) offset (i, j) of every window. Basic slicing, so no data is copied and writing into
    the view writes into ``x_padded`` (the backward passes add into views of dx this way)."""
    rows, cols = offset_slices(i, j, out_hw, stride, dilation)
    return x_padded[:, rows, cols, :]
