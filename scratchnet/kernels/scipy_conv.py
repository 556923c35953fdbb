"""The readable reference convolution: scipy.signal on one 2-D channel slice at a time.

Clarity over speed. Every function takes an input that is ALREADY padded (the layer pads it)
and returns plain arrays; nothing is cached here.

Notation (channels-last, one sample n, one input channel c, one filter f):

    x   (N, Hp, Wp, C)      the padded input
    W   (kh, kw, C, F)      the kernel
    b   (F,)                the bias
    y   (N, OH, OW, F)      the output,  OH = floor((Hp - d*(kh-1) - 1) / s) + 1  (same for OW)

Forward (a cross-correlation, which deep learning calls "convolution"):

    y[n, oh, ow, f] = b[f] + sum_{i, j, c} x[n, s*oh + d*i, s*ow + d*j, c] * W[i, j, c, f]

Two tricks turn stride s and dilation d into plain "valid" correlations:

* dilation: spread the kernel out by inserting d-1 zeros between its taps; a dilated kernel
  of size d*(k-1)+1 with zeros is an ordinary kernel, so  y = correlate(x, dilate(W, d)).
* stride: a strided output is the stride-1 output sampled every s cells,  y = y_1[::s, ::s].

Backward, given dy = dL/dy  (N, OH, OW, F):

    db[f]          = sum_{n, oh, ow} dy[n, oh, ow, f]
    dW[i, j, c, f] = sum_{n, oh, ow} x[n, s*oh + d*i, s*ow + d*j, c] * dy[n, oh, ow, f]
    dx[n, a, b, c] = sum_{f, oh, ow, i, j: s*oh + d*i = a, s*ow + d*j = b} dy[n, oh, ow, f] * W[i, j, c, f]

Insert s-1 zeros between the entries of dy (``dilate(dy, s)``, "dy on the input grid"); then

* dW is the correlation of x with the dilated dy, read at the kernel taps (every d-th cell of
  the kernel's span d*(k-1)+1; a stride that does not land on the last cell leaves more rows):
      dW[:, :, c, f] = sum_n correlate(x[n, :, :, c], dilate(dy[n, :, :, f], s),
                                       "valid")[:d*(kh-1)+1:d, :d*(kw-1)+1:d]
* dx is the FULL convolution of the dilated dy with the dilated kernel (each output cell
  sends dy * W back to every input cell its window touched):
      dx[n, :, :, c] = sum_f convolve(dilate(dy[n, :, :, f], s), dilate(W[:, :, c, f], d), "full")
  Rows/columns at the bottom/right that no window reached (when the stride does not land
  exactly on the last cell) get gradient 0.

Groups (``groups=g``, W (kh, kw, C/g, F)): filter f sees only the input channels of its group
G(f) = f // (F/g), i.e. channels G(f)*Cg + c for c < Cg = C/g. Each (f, c) pair above is one
2-D correlation, so a grouped convolution is the same loops with input channel G(f)*Cg + c
paired with kernel slice W[:, :, c, f] (``kernels/loops.py`` writes the formula out).
"""

from __future__ import annotations

import numpy as np
from scipy import signal


def dilate(grid: np.ndarray, factor: tuple[int, int]) -> np.ndarray:
    """Insert ``factor - 1`` zeros between neighbouring cells of the first two axes.

    ``grid`` (h, w, ...) -> ``(factor_h*(h-1) + 1, factor_w*(w-1) + 1, ...)``.
    ``dilate([[1, 2], [3, 4]], (2, 2)) = [[1, 0, 2], [0, 0, 0], [3, 0, 4]]``.
    """
    fh, fw = factor
    if fh == 1 and fw == 1:
        return grid
    h, w = grid.shape[:2]
    spread = np.zeros((fh * (h - 1) + 1, fw * (w - 1) + 1, *grid.shape[2:]), dtype=grid.dtype)
    spread[::fh, ::fw] = grid
    return spread


def output_hw(padded_hw, kernel_hw, stride, dilation) -> tuple[int, int]:
    """floor((Hp - d*(k-1) - 1) / s) + 1 for both spatial axes."""
    return tuple((size - d * (k - 1) - 1) // s + 1
                 for size, k, s, d in zip(padded_hw, kernel_hw, stride, dilation))


def group_channel(f: int, c: int, group_channels: int, group_filters: int) -> int:
    """The input channel that kernel slice W[:, :, c, f] reads: G(f)*Cg + c, G(f) = f // Fg."""
    return (f // group_filters) * group_channels + c


def conv2d_forward(x_padded, W, b, stride=(1, 1), dilation=(1, 1), groups=1) -> np.ndarray:
    """y (N, OH, OW, F) from x_padded (N, Hp, Wp, C), W (kh, kw, C/g, F), b (F,) or None."""
    n_samples, height, width, _ = x_padded.shape
    kh, kw, channels, filters = W.shape  # channels: Cg, the input channels of one group
    sh, sw = stride
    oh, ow = output_hw((height, width), (kh, kw), stride, dilation)
    W_dilated = dilate(W, dilation)  # (d*(kh-1)+1, d*(kw-1)+1, Cg, F), zeros between the taps
    y = np.zeros((n_samples, oh, ow, filters), dtype=x_padded.dtype)
    for n in range(n_samples):
        for f in range(filters):
            for c in range(channels):
                source = group_channel(f, c, channels, filters // groups)
                # stride-1 valid correlation, then keep every s-th row and column
                stride_1_output = signal.correlate2d(x_padded[n, :, :, source], W_dilated[:, :, c, f],
                                                   mode="valid")
                y[n, :, :, f] += stride_1_output[::sh, ::sw]
    if b is not None:
        y += b
    return y


def conv2d_backward(x_padded, W, dy, stride=(1, 1), dilation=(1, 1), groups=1):
    """(dx_padded, dW, db) for dy (N, OH, OW, F); see the module docstring for the math.

    dx_padded has the shape of x_padded (the layer crops the padding off), dW the shape of W,
    db the shape (F,).
    """
    n_samples = x_padded.shape[0]
    kh, kw, channels, filters = W.shape  # channels: Cg, the input channels of one group
    dh, dw = dilation
    W_dilated = dilate(W, dilation)
    span_h, span_w = W_dilated.shape[:2]  # input cells one window covers

    dx_padded = np.zeros_like(x_padded)
    dW = np.zeros_like(W)
    db = dy.sum(axis=(0, 1, 2))
    for n in range(n_samples):
        dy_on_input_grid = dilate(dy[n], stride)  # (s*(OH-1)+1, s*(OW-1)+1, F)
        reach_h, reach_w = dy_on_input_grid.shape[0] + span_h - 1, dy_on_input_grid.shape[1] + span_w - 1
        for f in range(filters):
            for c in range(channels):
                source = group_channel(f, c, channels, filters // groups)
                # kernel gradient: correlation of the input with the output gradient,
                # read at the kernel taps 0, d, 2d, ... (the zeros of a dilated kernel get none)
                x_times_dy = signal.correlate2d(x_padded[n, :, :, source], dy_on_input_grid[:, :, f],
                                                mode="valid")
                dW[:, :, c, f] += x_times_dy[0:span_h:dh, 0:span_w:dw]
                # input gradient: full convolution of the output gradient with the kernel;
                # it covers the rows/columns 0 .. reach-1, the ragged rest gets nothing
                dx_padded[n, :reach_h, :reach_w, source] += signal.convolve2d(
                    dy_on_input_grid[:, :, f], W_dilated[:, :, c, f], mode="full")
    return dx_padded, dW, db
