"""The fast depthwise convolution: a loop over the kh*kw kernel offsets, each step one
broadcast multiply-accumulate over a strided view of the whole batch. No patch matrix.

Notation (channels-last; the input is ALREADY padded):

    x   (N, Hp, Wp, C)      W  (kh, kw, C, M)   (Keras' layout; M = depth_multiplier)
    y   (N, OH, OW, C*M)    output channel c*M + m is filter m of input channel c
    b   (C*M,) or None

Forward (every channel convolved with its own M filters, no sum over channels):

    y[n, oh, ow, c, m] = b[c, m] + sum_{i, j} x[n, s*oh + d*i, s*ow + d*j, c] * W[i, j, c, m]

For one kernel offset (i, j) the cells x[n, s*oh + d*i, s*ow + d*j, c] of every window form the
strided view  V_ij = x[:, d*i :: s, d*j :: s, :]  cut to (N, OH, OW, C)  (basic slicing: no copy), so

    y = b + sum_{i, j} V_ij[..., None] * W[i, j]          (N, OH, OW, C, 1) * (C, M) -> (N, OH, OW, C, M)

Backward, given dy (N, OH, OW, C, M):

    db[c, m]      = sum_{n, oh, ow} dy[n, oh, ow, c, m]
    dW[i, j, c, m] = sum_{n, oh, ow} V_ij[n, oh, ow, c] * dy[n, oh, ow, c, m]
    dV_ij         += sum_m dy[..., m] * W[i, j, :, m]     (added into the view of dx at offset (i, j))

Stride 1 with one filter per channel (the common case) runs the same sums in a "shifted flat"
form instead (``depthwise_forward_shifted``, ``depthwise_backward_shifted``): on the padded grid
an offset is a constant shift in flat memory, so each pass runs over whole contiguous rows
(measured on 64x32x32x32, 3x3: forward 7.5 -> 5.1 ms, backward 20.6 -> 10.9 ms).

Why not im2col: a depthwise convolution is a grouped convolution with one channel per group
(``Conv2D(groups=C)``), and im2col would then build C patch matrices of only kh*kw columns and
run C matrix products of (N*OH*OW, kh*kw) @ (kh*kw, M): narrow, badly shaped products for BLAS, and
a patch copy kh*kw times the size of the input. The work is only kh*kw multiply-adds per
output value (kh*kw*M per input value at stride 1), so the cost is memory traffic; this kernel
reads the input kh*kw times through views and never materialises the patches. Measured
(float32, batch 64, 32x32x32, 3x3, M = 1, both on this 2-core machine): see
benchmarks/README.md, "Depthwise, separable and grouped convolution".
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .scipy_conv import output_hw
from .views import offset_view

# Batch chunks whose output is about this many numbers (512 KB of float32): the kh*kw passes
# over a chunk's output then stay in the CPU cache instead of streaming the whole batch's output
# through memory 2*kh*kw times. Measured (64x32x32x32, 3x3): forward 20 -> 8 ms (strided views).
CHUNK_NUMBERS = 1 << 17


def batch_chunks(n_samples: int, numbers_per_sample: int):
    """Slices of the batch axis, each holding about CHUNK_NUMBERS output numbers (at least 1 sample)."""
    step = max(1, CHUNK_NUMBERS // max(1, numbers_per_sample))
    return [slice(start, min(start + step, n_samples)) for start in range(0, n_samples, step)]


def depthwise_forward(x_padded, W, b, stride=(1, 1), dilation=(1, 1)) -> np.ndarray:
    """y (N, OH, OW, C*M) = b + sum_{i, j} V_ij[..., None] * W[i, j], one batch chunk at a time."""
    n_samples, height, width, channels = x_padded.shape
    kh, kw, _, multiplier = W.shape
    out_hw = output_hw((height, width), (kh, kw), stride, dilation)
    if tuple(stride) == (1, 1) and multiplier == 1:
        y = depthwise_forward_shifted(x_padded, W[..., 0], out_hw, dilation)
        return y + b if b is not None else y
    y = np.empty((n_samples, *out_hw, channels, multiplier), dtype=x_padded.dtype)
    chunks = batch_chunks(n_samples, y[0].size)
    product = np.empty_like(y[chunks[0]])  # one reused buffer: the multiply writes here, then one add
    for chunk in chunks:
        x_chunk, y_chunk = x_padded[chunk], y[chunk]
        product_chunk = product[:len(y_chunk)]
        for i in range(kh):
            for j in range(kw):
                view = offset_view(x_chunk, i, j, out_hw, stride, dilation)[..., None]  # (n, OH, OW, C, 1)
                if i == 0 and j == 0:
                    np.multiply(view, W[0, 0], out=y_chunk)  # the first term starts the sum: no zero fill
                else:
                    np.multiply(view, W[i, j], out=product_chunk)
                    y_chunk += product_chunk
    if b is not None:
        y += b.reshape(channels, multiplier)
    return y.reshape(n_samples, *out_hw, channels * multiplier)


class ShiftedLayout(NamedTuple):
    """The flat-memory bookkeeping both shifted passes share (one padded input shape, kernel and
    dilation)."""

    row: int  # Wp*C: the numbers in one padded image row
    w_rows: np.ndarray  # (kh, kw, Wp*C): W[i, j] repeated Wp times, the weights along one row
    shifts: list  # shifts[i][j] = (d*i*Wp + d*j)*C: kernel offset (i, j) as a move in flat memory
    max_shift: int  # shifts[kh-1][kw-1], the largest
    chunks: list  # batch_chunks of the input (by input numbers per image)
    numbers: int  # the numbers in the first (largest) chunk of the input


def shifted_layout(x_padded_shape, W, dilation) -> ShiftedLayout:
    """``ShiftedLayout`` for x_padded (N, Hp, Wp, C) and W (kh, kw, C)."""
    n_samples, height, width, channels = x_padded_shape
    kh, kw, _ = W.shape
    dh, dw = dilation
    row = width * channels
    w_rows = np.broadcast_to(W[:, :, None, :], (kh, kw, width, channels)).reshape(kh, kw, row)
    shifts = [[(dh * i * width + dw * j) * channels for j in range(kw)] for i in range(kh)]
    chunks = batch_chunks(n_samples, height * width * channels)
    numbers = len(range(n_samples)[chunks[0]]) * height * width * channels
    return ShiftedLayout(row, w_rows, shifts, shifts[-1][-1], chunks, numbers)


def depthwise_forward_shifted(x_padded, W, out_hw, dilation) -> np.ndarray:
    """y (N, OH, OW, C) for stride 1 and one filter per channel, W (kh, kw, C): shifted flat adds.

    With stride 1, output cell (n, a, b) and offset (i, j) read x[n, a + d*i, b + d*j, c]. Compute
    y on the padded input's whole grid (N, Hp, Wp, C) and read it flat: moving by (d*i, d*j) cells
    is moving by  shift = (d*i*Wp + d*j)*C  numbers, so

        grid[p] += x_flat[p + shift] * w_row[p mod (Wp*C)]        w_row = W[i, j] repeated Wp times

    and every pass runs over long contiguous rows of Wp*C numbers, where the strided views run C
    numbers at a time. The real outputs are grid[:, :OH, :OW]; the other cells read past their
    row (or image) and are dropped. Measured 1.45x faster than the views (64x32x32x32, 3x3).
    """
    n_samples, height, width, channels = x_padded.shape
    kh, kw, _ = W.shape
    oh, ow = out_hw
    row, w_rows, shifts, max_shift, chunks, numbers = shifted_layout(x_padded.shape, W, dilation)
    y = np.empty((n_samples, oh, ow, channels), dtype=x_padded.dtype)
    # the chunk, then max_shift numbers more for the last shifted slices to read; those numbers only
    # reach grid cells that are dropped (past the last output row), so any finite values do
    source = np.zeros(numbers + max_shift, dtype=x_padded.dtype)
    grid, product = np.empty(numbers, dtype=x_padded.dtype), np.empty(numbers, dtype=x_padded.dtype)
    for chunk in chunks:
        x_chunk = x_padded[chunk]
        size = x_chunk.size
        source[:size] = x_chunk.reshape(-1)
        grid_rows, product_rows = grid[:size].reshape(-1, row), product[:size].reshape(-1, row)
        for i in range(kh):
            for j in range(kw):
                shift = shifts[i][j]
                shifted = source[shift:shift + size].reshape(-1, row)
                if i == 0 and j == 0:
                    np.multiply(shifted, w_rows[0, 0], out=grid_rows)
                else:
                    np.multiply(shifted, w_rows[i, j], out=product_rows)
                    grid_rows += product_rows
        y[chunk] = grid[:size].reshape(-1, height, width, channels)[:, :oh, :ow, :]
    return y


def depthwise_backward_shifted(x_padded, W, dy, dilation, need_input_gradient):
    """(dx_padded, dW) for stride 1 and one filter per channel, W (kh, kw, C): the forward's
    shifted flat form run backwards. Put dy on the padded grid (zeros where no output is), then

        dW[i, j, c] += sum_p dy_grid[p] * x_flat[p + shift]      (summed over rows and the width)
        dx_flat[p + shift] += dy_grid[p] * w_row

    A real dy cell sends to (a + d*i, b + d*j), inside its own image; the zeros send nothing, so
    the numbers read or written past the chunk's end (max_shift of them) never matter.
    """
    _, height, width, channels = x_padded.shape
    kh, kw, _ = W.shape
    oh, ow = dy.shape[1:3]
    row, w_rows, shifts, max_shift, chunks, numbers = shifted_layout(x_padded.shape, W, dilation)
    dtype = x_padded.dtype
    source, dx_extended = np.zeros(numbers + max_shift, dtype), np.zeros(numbers + max_shift, dtype)
    dy_grid, product = np.zeros(numbers, dtype), np.empty(numbers, dtype)
    dW_rows = np.zeros((kh, kw, row), dtype)  # dW summed over rows; the width is summed at the end
    dx_padded = np.empty_like(x_padded) if need_input_gradient else None
    for chunk in chunks:
        x_chunk = x_padded[chunk]
        size = x_chunk.size
        source[:size] = x_chunk.reshape(-1)
        # dy onto the grid's output cells; the other cells are never written and stay 0
        dy_grid[:size].reshape(-1, height, width, channels)[:, :oh, :ow, :] = dy[chunk]
        grid_rows, product_rows = dy_grid[:size].reshape(-1, row), product[:size].reshape(-1, row)
        if need_input_gradient:
            dx_extended.fill(0)
        for i in range(kh):
            for j in range(kw):
                shift = shifts[i][j]
                np.multiply(grid_rows, source[shift:shift + size].reshape(-1, row), out=product_rows)
                dW_rows[i, j] += product_rows.sum(axis=0)
                if need_input_gradient:
                    np.multiply(grid_rows, w_rows[i, j], out=product_rows)
                    dx_extended[shift:shift + size].reshape(-1, row)[...] += product_rows
        if need_input_gradient:
            dx_padded[chunk] = dx_extended[:size].reshape(x_chunk.shape)
    return dx_padded, dW_rows.reshape(kh, kw, width, channels).sum(axis=2)[..., None]


def depthwise_backward(x_padded, W, dy, stride=(1, 1), dilation=(1, 1), need_input_gradient=True,
                       use_bias=True):
    """(dx_padded, dW, db) for dy (N, OH, OW, C*M); dx_padded is None without need_input_gradient,
    db None without ``use_bias`` (the sum is not computed)."""
    n_samples, height, width, channels = x_padded.shape
    kh, kw, _, multiplier = W.shape
    out_hw = dy.shape[1:3]
    if tuple(stride) == (1, 1) and multiplier == 1:
        dx_padded, dW = depthwise_backward_shifted(x_padded, W[..., 0], dy, dilation, need_input_gradient)
        return dx_padded, dW, dy.sum(axis=(0, 1, 2)) if use_bias else None
    dy5 = dy.reshape(*dy.shape[:3], channels, multiplier)  # (N, OH, OW, C, M)
    db = dy.sum(axis=(0, 1, 2)) if use_bias else None
    dW = np.zeros_like(W)
    dx_padded = np.zeros_like(x_padded) if need_input_gradient else None
    chunks = batch_chunks(n_samples, dy[0].size)
    product = np.empty_like(dy5[chunks[0]])  # reused buffer, (n, OH, OW, C, M)
    for chunk in chunks:
        x_chunk, dy_chunk = x_padded[chunk], dy5[chunk]
        product_chunk = product[:len(dy_chunk)]
        for i in range(kh):
            for j in range(kw):
                view = offset_view(x_chunk, i, j, out_hw, stride, dilation)[..., None]  # (n, OH, OW, C, 1)
                # dW[i, j, c, m] += sum over the chunk's pixels of V_ij[p, c] * dy[p, c, m]
                np.multiply(view, dy_chunk, out=product_chunk)
                dW[i, j] += product_chunk.sum(axis=(0, 1, 2))
                if need_input_gradient:
                    # dV_ij += sum_m dy[..., m] * W[i, j, :, m]
                    dx_view = offset_view(dx_padded[chunk], i, j, out_hw, stride, dilation)
                    np.multiply(dy_chunk, W[i, j], out=product_chunk)
                    dx_view += product_chunk[..., 0] if multiplier == 1 else product_chunk.sum(axis=-1)
    return dx_padded, dW, db
