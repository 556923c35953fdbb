"""Grouped convolution (``Conv2D(groups=g)``) on the im2col core: kernels/im2col.py (read that first).

With ``groups=g`` (W (kh, kw, C/g, F), filter f in group f // (F/g)), im2col's products are
made once per group, run as ONE batched ``np.matmul`` over a leading group axis:

    cols_g (g, M, Kg)    Kg = kh*kw*C/g: the patches of group G's channels only
    W_g    (g, Kg, Fg)   Fg = F/g: group G's filters       y_g = cols_g @ W_g   (g, M, Fg)

The input is first copied group-first, (g, N, Hp, Wp, C/g), so each group's patches are read
from contiguous memory, exactly as a separate convolution on that group's channels would
(measured, fastest of repeated calls: building the patches straight from the channels-last input
with a group axis was 1.2-1.7x slower for 8-32 channels per group, 3x for 1-channel groups).
The grouped path is not chunked: it builds the whole patch matrix, in the forward and again in
the backward (see ``grouped_conv2d_forward``).
"""

from __future__ import annotations

import numpy as np

from .col2im import group_view, grouped_kernel_matrix, input_gradient
from .im2col import few_channels, patch_matrix
from .scipy_conv import output_hw


def grouped_patch_matrices(x_padded, kernel_hw, stride, dilation, groups, with_ones) -> np.ndarray:
    """cols (g, M, Kg(+1)), or the (g, Kg(+1), M) view when ``few_channels(Cg)``: group G's patches."""
    n_samples, height, width, channels = x_padded.shape
    oh, ow = output_hw((height, width), kernel_hw, stride, dilation)
    # group-first copy (g, N, Hp, Wp, Cg), seen as g*N images of Cg channels
    x_groups = x_padded.reshape(n_samples, height, width, groups, channels // groups).transpose(3, 0, 1, 2, 4)
    x_groups = np.ascontiguousarray(x_groups).reshape(groups * n_samples, height, width, channels // groups)
    cols = patch_matrix(x_groups, kernel_hw, stride, dilation, with_ones)  # (g*M, Kg(+1)) or its .T
    rows = n_samples * oh * ow  # M: the first M rows (columns) are group 0's patches, and so on
    if few_channels(channels // groups):  # (Kg(+1), g*M) -> the (g, Kg(+1), M) view
        return cols.reshape(-1, groups, rows).transpose(1, 0, 2)
    return cols.reshape(groups, rows, -1)


def grouped_conv2d_forward(x_padded, W, b, stride, dilation, groups) -> np.ndarray:
    """y for g > 1 groups: y_g = cols_g @ [W_g; b_g] for every group in one batched matmul.

    Not chunked: the grouped layers of the zoo use the depthwise kernel (kernels/depthwise.py),
    and the backward builds the whole patch matrix again (``grouped_conv2d_backward``).
    """
    n_samples = x_padded.shape[0]
    kh, kw, group_channels, filters = W.shape
    oh, ow = output_hw(x_padded.shape[1:3], (kh, kw), stride, dilation)
    cols = grouped_patch_matrices(x_padded, (kh, kw), stride, dilation, groups, b is not None)
    W_grouped = grouped_kernel_matrix(W, groups)  # (g, Kg, Fg)
    if b is not None:  # the bias trick per group: [W_g; b_g]
        W_grouped = np.concatenate([W_grouped, b.reshape(groups, 1, filters // groups)], axis=1)
    y = np.empty((n_samples * oh * ow, groups, filters // groups), dtype=x_padded.dtype)  # (M, F)
    y_groups = y.transpose(1, 0, 2)  # (g, M, Fg), a view: the product lands in y directly
    transposed = few_channels(group_channels)  # BLAS reads the (g, Kg(+1), M) view with a row step
    np.matmul(cols.transpose(0, 2, 1) if transposed else cols, W_grouped, out=y_groups)
    return y.reshape(n_samples, oh, ow, filters)


def grouped_conv2d_backward(x_padded, W, dy, stride, dilation, use_bias, need_input_gradient, workspace,
                            groups):
    """(dx_padded, dW, db) for g > 1 groups: [dW_g; db_g] = cols_g^T @ dy2d_g, batched over g."""
    kh, kw, group_channels, filters = W.shape
    cols = grouped_patch_matrices(x_padded, (kh, kw), stride, dilation, groups, use_bias)
    dy_groups = group_view(dy.reshape(-1, filters), groups)  # (g, M, Fg)
    products = np.matmul(cols if few_channels(group_channels) else cols.transpose(0, 2, 1), dy_groups)
    weights = kh * kw * group_channels  # Kg
    db = products[:, weights].reshape(filters) if use_bias else None
    dW = products[:, :weights].reshape(groups, kh, kw, group_channels, filters // groups)
    dW = dW.transpose(1, 2, 3, 0, 4).reshape(W.shape)  # filter G*Fg + k
    dx_padded = None
    if need_input_gradient:
        dx_padded = input_gradient(dy, W, stride, dilation, workspace, groups,
                                   out=np.empty(x_padded.shape, dtype=dy.dtype))
    return dx_padded, dW, db
