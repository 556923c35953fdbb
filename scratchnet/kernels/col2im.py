"""col2im: the input gradient of the im2col convolution (kernels/im2col.py; read that first).

Notation as there: x_padded (N, Hp, Wp, C), W (kh, kw, C, F), dy (N, OH, OW, F), M = N*OH*OW.
The forward copied input cell (s*oh + d*i, s*ow + d*j, c) into entry (i, j, c) of patch row
(n, oh, ow), so the gradient of the input is the gradient of every patch entry,

    dcols = dy2d @ W2d^T        (M, F) @ (F, K) -> (M, K)

sent back ("col2im") to the cell it was copied from; where windows overlap, the entries add up.
No loop over pixels: the loops below run over the kh*kw kernel offsets only. (np.add.at with an
index matrix measured 3-8x slower.) Stride 1 and larger strides have different fast layouts.

The functions write into ``out`` (the caller's dx_padded, or one chunk of its images) and take
their temporaries from a workspace (kernels/workspace.py), sized for ``full_images`` images so
that a smaller last chunk reuses the same memory (``scratch``).
"""

from __future__ import annotations

import math

import numpy as np

from .workspace import Workspace


def scratch(workspace: Workspace, name: str, shape, dtype, images: int, full_images: int) -> np.ndarray:
    """A contiguous array of ``shape``, whose size is proportional to a chunk's ``images``, at the
    start of the workspace array ``name`` sized for a full chunk of ``full_images`` images.

    The smaller last chunk uses the beginning of the same memory (asking the workspace for the
    smaller shape would replace the array, and the next call would allocate it again).
    """
    size = math.prod(shape)
    buffer = workspace.empty(name, (size // images * full_images,), dtype)
    return buffer[:size].reshape(shape)


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


def offset_slices(i, j, out_hw, stride, dilation):
    """Rows and columns of the padded input that kernel offset (i, j) touches, as slices:
    ``d*i, d*i + s, ..., d*i + s*(OH-1)`` (and the same for the width)."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return (slice(dh * i, dh * i + sh * (oh - 1) + 1, sh),
            slice(dw * j, dw * j + sw * (ow - 1) + 1, sw))


def input_gradient(dy, W, stride=(1, 1), dilation=(1, 1), workspace=None, groups=1, *, out,
                   full_images=None) -> np.ndarray:
    """dx_padded (N, Hp, Wp, C), written into ``out`` and returned, from dy (N, OH, OW, F).

    Stride 1: ``input_gradient_stride1`` (shifted adds of whole rows); any other stride:
    ``input_gradient_strided`` (one small product and one strided add per kernel offset).
    ``full_images``: the number of images the workspace arrays are sized for (default N).
    Groups: the products are batched over the group axis, and group G's gradient goes back to its
    channels G*Cg .. G*Cg + Cg - 1.
    """
    workspace = workspace if workspace is not None else Workspace()
    full_images = full_images or dy.shape[0]
    if tuple(stride) == (1, 1):
        return input_gradient_stride1(dy, W, dilation, workspace, groups, out, full_images)
    return input_gradient_strided(dy, W, stride, dilation, workspace, groups, out, full_images)


def input_gradient_strided(dy, W, stride, dilation, workspace, groups, out, full_images) -> np.ndarray:
    """col2im for any stride: ONE product dcols = dy2d @ W2d^T, then kh*kw adds into strided
    slices of dx = ``out`` (N, Hp, Wp, C):

        dx[:, d*i :: s, d*j :: s, :]  +=  dcols[:, :, :, i, j, :]      (N, OH, OW, C)

    One offset's slice touches every cell at most once, so each ``+=`` is exact. With groups,
    dcols is (g, M, Kg) and dx's channels are seen as (g, Cg).

    Why one product and not kh*kw products dy2d @ W[i, j]^T, each added at once: those were
    measured 1.1-1.2x faster (one thread, float32, batch 64, chunks of 7 images, 16 -> 32
    channels at 32x32; a tie for 32 -> 64 at 16x16), but they are kh*kw times the BLAS calls, and
    with two OpenBLAS threads on a busy machine every call can wait a scheduler slice for the
    second thread (benchmarks/README.md, "Noise").
    """
    n_samples, height, width, _ = out.shape
    kh, kw, group_channels, filters = W.shape
    oh, ow = dy.shape[1:3]
    rows = n_samples * oh * ow  # M
    dcols = scratch(workspace, "dcols", (groups, rows, kh * kw * group_channels), dy.dtype,
                    n_samples, full_images)
    # (g, M, Fg) @ (g, Fg, Kg): for g = 1 the single product (M, F) @ (F, K)
    np.matmul(group_view(dy.reshape(rows, filters), groups),
              grouped_kernel_matrix(W, groups).transpose(0, 2, 1), out=dcols)
    dcols = dcols.reshape(groups, n_samples, oh, ow, kh, kw, group_channels)
    out.fill(0)
    dx_groups = out.reshape(n_samples, height, width, groups, group_channels)
    for i in range(kh):
        for j in range(kw):
            rows, cols = offset_slices(i, j, (oh, ow), stride, dilation)
            dx_groups[:, rows, cols] += dcols[:, :, :, :, i, j, :].transpose(1, 2, 3, 0, 4)
    return out


def input_gradient_stride1(dy, W, dilation, workspace, groups, out, full_images) -> np.ndarray:
    """col2im for stride 1 as kh*kw SHIFTED adds of whole contiguous arrays, into ``out``.

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
    n_samples, height, width, channels = out.shape
    kh, kw, group_channels, filters = W.shape
    oh, ow = dy.shape[1:3]
    dh, dw = dilation
    cells = n_samples * height * width  # L
    dy_grid = scratch(workspace, "dy_grid", (n_samples, height, width, filters), dy.dtype,
                      n_samples, full_images)
    dy_grid[:, :oh, :ow, :] = dy
    dy_grid[:, oh:, :, :] = 0  # the rows and columns no output pixel has
    dy_grid[:, :oh, ow:, :] = 0
    # dcols^T = W2d @ dy_grid^T: (K, F) @ (F, L) -> (K, L), row block (i, j) holds C rows
    # (per group: (Kg, Fg) @ (Fg, L), all g in one batched product)
    dcols_t = scratch(workspace, "dcols_t", (groups, kh * kw * group_channels, cells), dy.dtype,
                      n_samples, full_images)
    dy_groups_t = group_view(dy_grid.reshape(cells, filters), groups).transpose(0, 2, 1)  # (g, Fg, L)
    np.matmul(grouped_kernel_matrix(W, groups), dy_groups_t, out=dcols_t)
    dcols_t = dcols_t.reshape(groups, kh, kw, group_channels, cells)
    dx_channels_first = scratch(workspace, "dx_channels_first", (channels, cells), dy.dtype,
                                n_samples, full_images)
    dx_channels_first.fill(0)
    dx_groups = dx_channels_first.reshape(groups, group_channels, cells)  # channel G*Cg + c
    for i in range(kh):
        for j in range(kw):
            shift = dh * i * width + dw * j
            dx_groups[:, :, shift:] += dcols_t[:, i, j, :, :cells - shift]
    out.reshape(cells, channels)[...] = dx_channels_first.T  # one transposed copy, channels-last
    return out
