"""The fast convolution core: im2col patches and large matrix products, no loop over pixels.

Same notation and math as ``scipy_conv`` (read that module first):

    x   (N, Hp, Wp, C)   the ALREADY padded input      W  (kh, kw, C, F)     b  (F,)
    y   (N, OH, OW, F)   y[n, oh, ow, f] = b[f] + sum_{i, j, c} x[n, s*oh + d*i, s*ow + d*j, c] W[i, j, c, f]

The idea ("im2col"): put every receptive field (patch) of the input in one row of a matrix

    cols[(n, oh, ow), (i, j, c)] = x[n, s*oh + d*i, s*ow + d*j, c]        (M, K)
    M = N * OH * OW  (one row per output pixel),   K = kh * kw * C  (one column per weight)

Then the whole convolution is ONE matrix product, which BLAS runs near the machine's peak:

    forward     y2d = cols @ W2d + b          W2d = W.reshape(K, F),  y2d = y.reshape(M, F)
    kernel grad dW2d = cols^T @ dy2d           (K, F)
    bias grad   db = sum over rows of dy2d     (F,)
    input grad  dcols = dy2d @ W2d^T           (M, K), each entry sent back to the input cell
                                               it was copied from ("col2im", an overlapping add)

The bias rides along in the same products ("the bias trick" of CS231n's linear classifier
notes): give every patch row one more entry, a 1, and the kernel matrix one more row, b:

    [cols, 1] @ [W2d; b] = cols @ W2d + b          [cols, 1]^T @ dy2d = [dW2d; db]

because the last row of the second product is  sum_m 1 * dy2d[m, :] = db. No separate pass over
y adds b or sums dy (measured 1.1-1.5x faster for the forward product plus bias add, batch 64).

The patches are read through a strided VIEW of x (no copy, no loop); the one copy happens when
the 6-D view is reshaped into the 2-D matrix. The kernel offsets (i, j) come before the channel
c in a row, so for one offset the C channel values are contiguous in both x and cols.

Every function is pure (arrays in, arrays out) and keeps the dtype of its inputs: a float32
model computes every temporary in float32.

Groups (``groups=g``, W (kh, kw, C/g, F), filter f in group f // (F/g)): the same products,
one per group, run as ONE batched ``np.matmul`` over a leading group axis:

    cols_g (g, M, Kg)    Kg = kh*kw*C/g: the patches of group G's channels only
    W_g    (g, Kg, Fg)   Fg = F/g: group G's filters       y_g = cols_g @ W_g   (g, M, Fg)

The input is first copied group-first, (g, N, Hp, Wp, C/g), so each group's patches are read
from contiguous memory, exactly as a separate convolution on that group's channels would
(measured, fastest of repeated calls: building the patches straight from the channels-last input
with a group axis was 1.2-1.7x slower for 8-32 channels per group, 3x for 1-channel groups).

Which variant runs was chosen by timing on the target machine (2-core Zen 5, NumPy 2.4 with
OpenBLAS, float32, batch 64, MNIST/CIFAR-sized layers); see ``few_channels``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .scipy_conv import output_hw  # floor((Hp - d*(k-1) - 1) / s) + 1, one definition for both
from .workspace import Workspace

# At most this many input channels counts as "few" (an image layer: grey or RGB).
FEW_CHANNELS = 3


def few_channels(channels: int) -> bool:
    """Use the transposed patch layout (K, M) for layers with 1-3 input channels.

    Measured (batch 64, 28x28, 3x3 -> 32 filters): with C = 1 a patch row holds only 9
    numbers, so building the (M, K) matrix copies many tiny rows and costs ~3x the product
    itself; the transposed (K, M) matrix is copied in long contiguous runs along the width,
    and BLAS multiplies by its transpose at no extra cost: the forward is 2-2.5x faster with
    C = 1 and ~1.15x with C = 3. The two tie at C = 4; from C = 5 on, the (M, K) layout wins
    (1.2x at C = 5, 1.5-2x at C = 6-8: its rows are copied in C-long pieces and feed BLAS
    better). The input gradient picks its layout by stride instead (see ``input_gradient``).
    """
    return channels <= FEW_CHANNELS


def patch_view(x_padded, kernel_hw, stride=(1, 1), dilation=(1, 1)) -> np.ndarray:
    """Read-only view ``patches[n, oh, ow, i, j, c] = x[n, s*oh + d*i, s*ow + d*j, c]``.

    Shape (N, OH, OW, kh, kw, C). No data is copied: moving one step along ``oh`` moves
    ``s`` rows in memory, one step along ``i`` moves ``d`` rows, and so on, so the view is
    described entirely by its strides (byte steps per axis).
    """
    n_samples, height, width, channels = x_padded.shape
    kh, kw = kernel_hw
    (sh, sw), (dh, dw) = stride, dilation
    oh, ow = output_hw((height, width), kernel_hw, stride, dilation)
    step_n, step_h, step_w, step_c = x_padded.strides
    return as_strided(x_padded, shape=(n_samples, oh, ow, kh, kw, channels),
                      strides=(step_n, sh * step_h, sw * step_w, dh * step_h, dw * step_w, step_c),
                      writeable=False)


def im2col(x_padded, kernel_hw, stride=(1, 1), dilation=(1, 1), with_ones=False) -> np.ndarray:
    """The patch matrix ``cols`` (N*OH*OW, kh*kw*C): one receptive field per row.

    ``with_ones=True`` appends a column of ones, (M, K + 1), for the bias trick.
    """
    patches = patch_view(x_padded, kernel_hw, stride, dilation)
    n_samples, oh, ow, kh, kw, channels = patches.shape
    rows, width = n_samples * oh * ow, kh * kw * channels
    if not with_ones:
        return patches.reshape(rows, width)  # the one copy
    cols = np.empty((n_samples, oh, ow, width + 1), dtype=x_padded.dtype)
    # split only the last axis of the first K columns: always a view, so the copy lands in cols
    cols[..., :width].reshape(patches.shape)[...] = patches  # the one copy
    cols[..., width] = 1
    return cols.reshape(rows, width + 1)


def im2col_transposed(x_padded, kernel_hw, stride=(1, 1), dilation=(1, 1), with_ones=False) -> np.ndarray:
    """``cols.T`` built directly, (kh*kw*C, N*OH*OW): one receptive field per column.

    ``with_ones=True`` appends a row of ones, (K + 1, M), for the bias trick.
    """
    patches = patch_view(x_padded, kernel_hw, stride, dilation)
    n_samples, oh, ow, kh, kw, channels = patches.shape
    # (kh, kw, C, N, OH, OW): the copy runs along ow, the input's width (long contiguous runs
    # when s == 1) instead of along the 9-number patch rows of a 1-channel image
    patches_t = patches.transpose(3, 4, 5, 0, 1, 2)
    height, columns = kh * kw * channels, n_samples * oh * ow
    if not with_ones:
        return patches_t.reshape(height, columns)
    cols_t = np.empty((height + 1, columns), dtype=x_padded.dtype)
    cols_t[:height].reshape(patches_t.shape)[...] = patches_t  # leading rows: always a view
    cols_t[height] = 1
    return cols_t


def grouped_kernel_matrix(W, groups: int) -> np.ndarray:
    """W (kh, kw, Cg, F) as (g, Kg, Fg): group G's kernel matrix is filters G*Fg .. G*Fg + Fg - 1."""
    kh, kw, group_channels, filters = W.shape
    group_filters = filters // groups
    W_grouped = W.reshape(kh, kw, group_channels, groups, group_filters).transpose(3, 0, 1, 2, 4)
    return W_grouped.reshape(groups, kh * kw * group_channels, group_filters)


def group_view(array2d, groups: int) -> np.ndarray:
    """(M, F) -> the (g, M, Fg) view whose slice G holds columns G*Fg .. G*Fg + Fg - 1."""
    rows, filters = array2d.shape
    return array2d.reshape(rows, groups, filters // groups).transpose(1, 0, 2)


def grouped_conv2d_forward(x_padded, W, b, stride, dilation, groups):
    """``(y, cols)`` for g > 1 groups: cols (g, M, Kg(+1)), or (g, Kg(+1), M) when
    ``few_channels(Cg)``; y_g = cols_g @ [W_g; b_g] for every group in one batched matmul."""
    n_samples, height, width, channels = x_padded.shape
    kh, kw, group_channels, filters = W.shape
    oh, ow = output_hw((height, width), (kh, kw), stride, dilation)
    # group-first copy (g, N, Hp, Wp, Cg), seen as g*N images of Cg channels
    x_groups = x_padded.reshape(n_samples, height, width, groups, group_channels).transpose(3, 0, 1, 2, 4)
    x_groups = np.ascontiguousarray(x_groups).reshape(groups * n_samples, height, width, group_channels)
    transposed = few_channels(group_channels)
    build_cols = im2col_transposed if transposed else im2col
    cols = build_cols(x_groups, (kh, kw), stride, dilation, b is not None)  # (g*M, Kg(+1)) or its .T
    rows = n_samples * oh * ow  # M: the first M rows (columns) are group 0's patches, and so on
    if transposed:  # (Kg(+1), g*M) -> the (g, Kg(+1), M) view (BLAS reads it with a row step)
        cols = cols.reshape(-1, groups, rows).transpose(1, 0, 2)
    else:  # (g*M, Kg(+1)) -> (g, M, Kg(+1))
        cols = cols.reshape(groups, rows, -1)
    W_grouped = grouped_kernel_matrix(W, groups)  # (g, Kg, Fg)
    if b is not None:  # the bias trick per group: [W_g; b_g]
        W_grouped = np.concatenate([W_grouped, b.reshape(groups, 1, filters // groups)], axis=1)
    y = np.empty((rows, groups, filters // groups), dtype=x_padded.dtype)  # (M, g, Fg) = (M, F)
    y_groups = y.transpose(1, 0, 2)  # (g, M, Fg), a view: the product lands in y directly
    np.matmul(cols.transpose(0, 2, 1) if transposed else cols, W_grouped, out=y_groups)
    return y.reshape(n_samples, oh, ow, filters), cols


def conv2d_forward(x_padded, W, b, stride=(1, 1), dilation=(1, 1), groups=1):
    """Return ``(y, cols)``: y (N, OH, OW, F) and the patch matrix to keep for the backward.

    ``cols`` is (M, K), or (K, M) when ``few_channels(C)``; with a bias it has the extra column
    (row) of ones of the bias trick, and the product adds b. ``conv2d_backward`` knows both
    from W's channel count and cols' shape. With ``groups > 1`` cols has a leading group axis
    (``grouped_conv2d_forward``).
    """
    if groups > 1:
        return grouped_conv2d_forward(x_padded, W, b, stride, dilation, groups)
    kh, kw, channels, filters = W.shape
    n_samples = x_padded.shape[0]
    oh, ow = output_hw(x_padded.shape[1:3], (kh, kw), stride, dilation)
    W2d = W.reshape(kh * kw * channels, filters)
    with_ones = b is not None
    if with_ones:
        W2d = np.concatenate([W2d, b.reshape(1, filters)])  # [W2d; b], (K + 1, F)
    if few_channels(channels):
        cols = im2col_transposed(x_padded, (kh, kw), stride, dilation, with_ones)  # (K(+1), M)
        y2d = cols.T @ W2d  # BLAS reads the transpose directly, no copy
    else:
        cols = im2col(x_padded, (kh, kw), stride, dilation, with_ones)  # (M, K(+1))
        y2d = cols @ W2d
    return y2d.reshape(n_samples, oh, ow, filters), cols


def parameter_gradients(cols, dy2d, kernel_shape):
    """(dW, db) from one product: cols^T @ dy2d is (K, F), or (K + 1, F) whose last row is db
    when cols carries the bias trick's ones (then db, else None). Grouped cols (3-D): one
    product per group, cols_g^T @ dy2d_g, batched."""
    kh, kw, channels, filters = kernel_shape
    if cols.ndim == 3:
        groups = cols.shape[0]
        dy_groups = group_view(dy2d, groups)  # (g, M, Fg)
        products = np.matmul(cols if few_channels(channels) else cols.transpose(0, 2, 1), dy_groups)
        weights = kh * kw * channels  # Kg
        db = products[:, weights].reshape(filters) if products.shape[1] > weights else None
        dW = products[:, :weights].reshape(groups, kh, kw, channels, filters // groups)
        return dW.transpose(1, 2, 3, 0, 4).reshape(kernel_shape), db  # filter G*Fg + k
    products = cols @ dy2d if few_channels(channels) else cols.T @ dy2d  # (K(+1), F)
    weights = kh * kw * channels  # K
    db = products[weights] if products.shape[0] > weights else None
    return products[:weights].reshape(kernel_shape), db


def offset_slices(i, j, out_hw, stride, dilation):
    """Rows and columns of the padded input that kernel offset (i, j) touches, as slices:
    ``d*i, d*i + s, ..., d*i + s*(OH-1)`` (and the same for the width)."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return (slice(dh * i, dh * i + sh * (oh - 1) + 1, sh),
            slice(dw * j, dw * j + sw * (ow - 1) + 1, sw))


def input_gradient(dy, W, padded_shape, stride=(1, 1), dilation=(1, 1), workspace=None,
                   groups=1) -> np.ndarray:
    """dx_padded (N, Hp, Wp, C) from dy (N, OH, OW, F): ONE matrix product, then the col2im
    scatter, looping only over the kh*kw kernel offsets, never over pixels.

        dcols = dy2d @ W2d^T        (M, F) @ (F, K) -> (M, K): the gradient of every patch entry

    Entry (i, j, c) of a patch row came from input cell (s*oh + d*i, s*ow + d*j, c), so
    col2im adds column block (i, j) of dcols back onto those cells; overlapping windows add up.
    Stride 1 has its own, faster layout (``input_gradient_stride1``).

    Why ONE product (measured, float32, batch 64, 2 OpenBLAS threads): the alternative,
    kh*kw products dy2d @ W[i, j]^T of (M, F) @ (F, C) added straight into dx
    ("offset-GEMM"), writes less memory and is up to 1.5x faster on an idle machine, but each
    multi-threaded BLAS call has to wake the second BLAS thread; when the other core is busy
    (a shared machine, or a data loader) that wait is a whole scheduler time slice, ~8 ms per
    call: 9 products took 72 ms where one took 20 ms (16x16x32 -> 64, 3x3). The single
    product is never far from the best and never falls off that cliff. (np.add.at with an
    index matrix measured 3-8x slower than either.)

    The temporaries (dcols and friends) come from ``workspace`` when one is given (the layer's:
    the same memory every step, see workspace.py), else they are new arrays. dx_padded is
    always a new array. Groups: the product is batched over the group axis, dcols_g = dy2d_g @ W_g^T,
    and group G's columns go back to its channels G*Cg .. G*Cg + Cg - 1.
    """
    if tuple(stride) == (1, 1):
        return input_gradient_stride1(dy, W, padded_shape, dilation, workspace, groups)
    return input_gradient_strided(dy, W, padded_shape, stride, dilation, workspace, groups)


def input_gradient_strided(dy, W, padded_shape, stride=(1, 1), dilation=(1, 1), workspace=None,
                           groups=1) -> np.ndarray:
    """col2im for any stride: kh*kw adds into strided slices of dx (N, Hp, Wp, C),

        dx[:, d*i :: s, d*j :: s, :]  +=  dcols[:, :, :, i, j, :]      (N, OH, OW, C)

    One offset's slice touches every cell at most once, so each ``+=`` is exact. With groups,
    dcols is (g, M, Kg) and dx's channels are seen as (g, Cg).
    """
    workspace = workspace if workspace is not None else Workspace()
    n_samples, height, width, _ = padded_shape
    kh, kw, group_channels, filters = W.shape
    oh, ow = dy.shape[1:3]
    rows = n_samples * oh * ow  # M
    dcols = workspace.empty("dcols", (groups, rows, kh * kw * group_channels), dy.dtype)
    # (g, M, Fg) @ (g, Fg, Kg): for g = 1 the single product (M, F) @ (F, K)
    np.matmul(group_view(dy.reshape(rows, filters), groups),
              grouped_kernel_matrix(W, groups).transpose(0, 2, 1), out=dcols)
    dcols = dcols.reshape(groups, n_samples, oh, ow, kh, kw, group_channels)
    dx_padded = np.zeros(padded_shape, dtype=dy.dtype)
    dx_groups = dx_padded.reshape(n_samples, height, width, groups, group_channels)
    for i in range(kh):
        for j in range(kw):
            rows, cols = offset_slices(i, j, (oh, ow), stride, dilation)
            dx_groups[:, rows, cols] += dcols[:, :, :, :, i, j, :].transpose(1, 2, 3, 0, 4)
    return dx_padded


def input_gradient_stride1(dy, W, padded_shape, dilation=(1, 1), workspace=None, groups=1) -> np.ndarray:
    """col2im for stride 1 as kh*kw SHIFTED adds of whole contiguous arrays.

    With stride 1, output pixel (oh, ow) and kernel offset (i, j) touch the input cell
    (oh + d*i, ow + d*j). Put dy on the padded input's grid (N, Hp, Wp), with zeros in the
    d*(kh-1) rows and d*(kw-1) columns no output pixel has. In that grid's flat memory, cell
    (n, a, b) is number (n*Hp + a)*Wp + b, so moving by (d*i, d*j) cells is moving by

        shift = d*i*Wp + d*j      numbers,   and col2im is   dx[c, shift:] += dcols[i, j, c, :L - shift]

    with dx held channels-first, (C, L), L = N*Hp*Wp. A real entry never crosses into the next
    row or image (oh + d*i <= Hp - 1 and ow + d*j <= Wp - 1); only the grid's zeros do, and
    they add nothing. Every add runs over long contiguous rows, where the strided form adds
    C numbers at a time: measured 1.3-2.8x faster for C = 1-64 (3x3 and 5x5, batch 64), the
    extra zeros in the product included. One transposed copy returns dx channels-last.
    Groups: the product is batched, (g, Kg, Fg) @ (g, Fg, L), and dx's C rows are seen as (g, Cg).
    """
    workspace = workspace if workspace is not None else Workspace()
    n_samples, height, width, channels = padded_shape
    kh, kw, group_channels, filters = W.shape
    oh, ow = dy.shape[1:3]
    dh, dw = dilation
    cells = n_samples * height * width  # L
    dy_grid = workspace.empty("dy_grid", (n_samples, height, width, filters), dy.dtype)
    dy_grid[:, :oh, :ow, :] = dy
    dy_grid[:, oh:, :, :] = 0  # the rows and columns no output pixel has
    dy_grid[:, :oh, ow:, :] = 0
    # dcols^T = W2d @ dy_grid^T: (K, F) @ (F, L) -> (K, L), row block (i, j) holds C rows
    # (per group: (Kg, Fg) @ (Fg, L), all g in one batched product)
    dcols_t = workspace.empty("dcols_t", (groups, kh * kw * group_channels, cells), dy.dtype)
    dy_groups_t = group_view(dy_grid.reshape(cells, filters), groups).transpose(0, 2, 1)  # (g, Fg, L)
    np.matmul(grouped_kernel_matrix(W, groups), dy_groups_t, out=dcols_t)
    dcols_t = dcols_t.reshape(groups, kh, kw, group_channels, cells)
    dx_channels_first = workspace.zeros("dx_channels_first", (channels, cells), dy.dtype)
    dx_groups = dx_channels_first.reshape(groups, group_channels, cells)  # channel G*Cg + c
    for i in range(kh):
        for j in range(kw):
            shift = dh * i * width + dw * j
            dx_groups[:, :, shift:] += dcols_t[:, i, j, :, :cells - shift]
    return dx_channels_first.T.copy().reshape(padded_shape)  # a new (L, C) array, channels-last


def conv2d_backward(cols, W, dy, padded_shape, stride=(1, 1), dilation=(1, 1), need_input_gradient=True,
                    workspace=None, groups=1):
    """(dx_padded, dW, db) from the forward's ``cols``, the kernel and dy (N, OH, OW, F).

    db is None for a layer without bias. With ``need_input_gradient=False`` dx_padded is None
    (not computed: a model's first layer). ``workspace``: see ``input_gradient``.
    """
    filters = W.shape[3]
    dW, db = parameter_gradients(cols, dy.reshape(-1, filters), W.shape)  # dy2d (M, F)
    dx_padded = (input_gradient(dy, W, padded_shape, stride, dilation, workspace, groups)
                 if need_input_gradient else None)
    return dx_padded, dW, db
