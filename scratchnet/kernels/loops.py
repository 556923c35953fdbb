"""The definitions, written as loops: one Python ``for`` per index, no cleverness.

This is the oracle the tests trust. Every line is the formula it implements; nothing is
vectorised, so nothing can be "clever and wrong". It is slow (seconds for a small batch): use it
on tiny inputs, to check the fast kernels, and to read what a convolution IS.

Notation (channels-last; the input is ALREADY padded, as for the other kernels):

    x   (N, Hp, Wp, C)        the padded input
    W   (kh, kw, C/g, F)      the kernel of a convolution with g groups (g = 1: plain conv)
    b   (F,) or None          the bias
    y   (N, OH, OW, F)        OH = floor((Hp - d*(kh-1) - 1) / s) + 1   (the same for OW)

Groups (PyTorch's rule): the C input channels and the F filters are split into g consecutive
groups of Cg = C/g channels and Fg = F/g filters; filter f belongs to group  G(f) = f // Fg  and
sees only that group's channels  G(f)*Cg, ..., G(f)*Cg + Cg - 1.  So, with c the channel index
INSIDE the group:

    y[n, oh, ow, f] = b[f] + sum_{i, j, c} x[n, s*oh + d*i, s*ow + d*j, G(f)*Cg + c] * W[i, j, c, f]

Backward (the chain rule, one product at a time): each product  x[...] * W[i, j, c, f]  in the
forward sends  dy[n, oh, ow, f] * W[i, j, c, f]  to that x cell and  dy[n, oh, ow, f] * x[...]
to that weight:

    db[f]          = sum_{n, oh, ow} dy[n, oh, ow, f]
    dW[i, j, c, f] = sum_{n, oh, ow} x[n, s*oh + d*i, s*ow + d*j, G(f)*Cg + c] * dy[n, oh, ow, f]
    dx[n, row, col, G(f)*Cg + c] += dy[n, oh, ow, f] * W[i, j, c, f]   for every (n, oh, ow, f, i, j, c)
                                                       with row = s*oh + d*i, col = s*ow + d*j

Pooling windows (no kernel, one channel at a time; stride s, pool size kh x kw):

    max-pool:  y[n, p, q, c] = max_{i, j} x[n, s*p + i, s*q + j, c]
    avg-pool:  y[n, p, q, c] = mean over the REAL (non-padded) cells of the window
"""

from __future__ import annotations

import numpy as np


def output_size(padded_size: int, kernel: int, stride: int, dilation: int) -> int:
    """floor((Hp - d*(k-1) - 1) / s) + 1: the number of window positions along one axis."""
    return (padded_size - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_forward(x_padded, W, b, stride=(1, 1), dilation=(1, 1), groups=1) -> np.ndarray:
    """y (N, OH, OW, F) = b + sum of x * W over each window: see the module docstring."""
    n_samples, height, width, _ = x_padded.shape
    kh, kw, group_channels, filters = W.shape  # Cg = C / g input channels per filter
    (sh, sw), (dh, dw) = stride, dilation
    oh_count = output_size(height, kh, sh, dh)
    ow_count = output_size(width, kw, sw, dw)
    group_filters = filters // groups  # Fg
    y = np.zeros((n_samples, oh_count, ow_count, filters), dtype=x_padded.dtype)
    for n in range(n_samples):
        for oh in range(oh_count):
            for ow in range(ow_count):
                for f in range(filters):
                    group = f // group_filters  # G(f)
                    total = b[f] if b is not None else 0.0
                    for i in range(kh):
                        for j in range(kw):
                            for c in range(group_channels):
                                row, col = sh * oh + dh * i, sw * ow + dw * j
                                channel = group * group_channels + c
                                total += x_padded[n, row, col, channel] * W[i, j, c, f]
                    y[n, oh, ow, f] = total
    return y


def conv2d_backward(x_padded, W, dy, stride=(1, 1), dilation=(1, 1), groups=1):
    """(dx_padded, dW, db) for dy (N, OH, OW, F): the forward's loops, each product sent back."""
    n_samples, oh_count, ow_count, filters = dy.shape
    kh, kw, group_channels, _ = W.shape
    (sh, sw), (dh, dw) = stride, dilation
    group_filters = filters // groups
    dx_padded = np.zeros_like(x_padded)
    dW = np.zeros_like(W)
    db = np.zeros(filters, dtype=dy.dtype)
    for n in range(n_samples):
        for oh in range(oh_count):
            for ow in range(ow_count):
                for f in range(filters):
                    group = f // group_filters
                    db[f] += dy[n, oh, ow, f]
                    for i in range(kh):
                        for j in range(kw):
                            for c in range(group_channels):
                                row, col = sh * oh + dh * i, sw * ow + dw * j
                                channel = group * group_channels + c
                                dx_padded[n, row, col, channel] += dy[n, oh, ow, f] * W[i, j, c, f]
                                dW[i, j, c, f] += dy[n, oh, ow, f] * x_padded[n, row, col, channel]
    return dx_padded, dW, db


def depthwise_as_grouped_kernel(W_depthwise) -> np.ndarray:
    """Keras' depthwise kernel (kh, kw, C, M) as the grouped kernel (kh, kw, 1, C*M), g = C.

    Output channel c*M + m of a depthwise convolution is filter m of channel c, and filter
    f = c*M + m of a grouped convolution with g = C groups (Fg = M) belongs to group f // M = c:
    the same numbers, so a plain reshape converts one kernel into the other.
    """
    kh, kw, channels, multiplier = W_depthwise.shape
    return W_depthwise.reshape(kh, kw, 1, channels * multiplier)


# ------------------------------------------------------------------------------- pooling
def pool_windows(input_hw, pool_hw, stride_hw, pads):
    """Yield (p, q, [real input cells (h, w) of window (p, q)]) in row-major window order.

    The windows slide over the image padded by pads = ((top, bottom), (left, right)); a padded
    cell is not a real cell and is left out of the list.
    """
    (height, width), (kh, kw), (sh, sw) = input_hw, pool_hw, stride_hw
    (top, bottom), (left, right) = pads
    for p in range(output_size(height + top + bottom, kh, sh, 1)):
        for q in range(output_size(width + left + right, kw, sw, 1)):
            cells = []
            for i in range(kh):
                for j in range(kw):
                    h, w = sh * p + i - top, sw * q + j - left
                    if 0 <= h < height and 0 <= w < width:
                        cells.append((h, w))
            yield p, q, cells


def pool_output_hw(input_hw, pool_hw, stride_hw, pads) -> tuple[int, int]:
    (height, width), (kh, kw), (sh, sw), ((top, bottom), (left, right)) = input_hw, pool_hw, stride_hw, pads
    return output_size(height + top + bottom, kh, sh, 1), output_size(width + left + right, kw, sw, 1)


def max_pool_forward(x, pool_hw, stride_hw, pads):
    """(y, argmax): y[n, p, q, c] = max over the window's real cells; argmax[n, p, q, c] = that
    cell (h, w). Ties: the FIRST maximum in row-major window order wins."""
    n_samples, height, width, channels = x.shape
    y = np.zeros((n_samples, *pool_output_hw((height, width), pool_hw, stride_hw, pads), channels),
                 dtype=x.dtype)
    argmax = {}
    for n in range(n_samples):
        for c in range(channels):
            for p, q, cells in pool_windows((height, width), pool_hw, stride_hw, pads):
                best_value, best_cell = None, None
                for h, w in cells:
                    if best_value is None or x[n, h, w, c] > best_value:  # strictly greater: first wins
                        best_value, best_cell = x[n, h, w, c], (h, w)
                y[n, p, q, c] = best_value
                argmax[n, p, q, c] = best_cell
    return y, argmax


def max_pool_backward(x_shape, argmax, dy):
    """dx[n, h, w, c] = sum of dy[n, p, q, c] over the windows whose maximum was (h, w)."""
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for (n, p, q, c), (h, w) in argmax.items():
        dx[n, h, w, c] += dy[n, p, q, c]
    return dx


def avg_pool_forward(x, pool_hw, stride_hw, pads):
    """y[n, p, q, c] = (1 / count) * sum of x over the window's real cells (count of them)."""
    n_samples, height, width, channels = x.shape
    y = np.zeros((n_samples, *pool_output_hw((height, width), pool_hw, stride_hw, pads), channels),
                 dtype=x.dtype)
    for n in range(n_samples):
        for c in range(channels):
            for p, q, cells in pool_windows((height, width), pool_hw, stride_hw, pads):
                total = 0.0
                for h, w in cells:
                    total += x[n, h, w, c]
                y[n, p, q, c] = total / len(cells)
    return y


def avg_pool_backward(x_shape, dy, pool_hw, stride_hw, pads):
    """dx[n, h, w, c] = sum over the windows containing (h, w) of dy[n, p, q, c] / count."""
    n_samples, height, width, channels = x_shape
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for n in range(n_samples):
        for c in range(channels):
            for p, q, cells in pool_windows((height, width), pool_hw, stride_hw, pads):
                for h, w in cells:
                    dx[n, h, w, c] += dy[n, p, q, c] / len(cells)
    return dx
