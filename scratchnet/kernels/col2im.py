"""col2im: the input gradient of the im2col convolution (kernels/im2col.py; read that first).

Notation as there: x_padded (N, Hp, Wp, C), W (kh, kw, C, F), dy (N, OH, OW, F), M = N*OH*OW.
The forward copied input cell (s*oh + d*i, s*ow + d*j, c) into entry (i, j, c) of patch row
(n, oh, ow), so the gradient of the input is the gradient of every patch entry,

    dcols = dy2d @ W2d^T        (M, F) @ (F, K) -> (M, K)

sent back ("col2im") to the cell it was copied from; where windows overlap, the entries add up.
No loop over pixels: the loops below run over the kh*kw kernel offsets only. (np.add.at with an
index matrix measured 3-8x slower.)

``input_gradient`` writes into ``out`` (the caller's dx_padded, or one chunk of its images) and takes
its temporaries from a workspace (kernels/workspace.py; its buffers only grow, so a smaller last
chunk gets the front of the same memory).
"""

from __future__ import annotations

import numpy as np

from .workspace import Workspace


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


def input_gradient(dy, W, stride=(1, 1), dilation=(1, 1), workspace=None, groups=1, *, out,
                   pads=((0, 0), (0, 0))) -> np.ndarray:
    """dx_padded (N, Hp, Wp, C), written into ``out`` and returned, from dy (N, OH, OW, F): col2im
    as kh*kw SHIFTED adds of whole contiguous rows, one set per stride phase. With ``pads`` =
    ((top, bottom), (left, right)), ``out`` is the gradient of the UNPADDED input, (N, H, W, C):
    only those cells are copied out of the phases (``unpadded_phase``), and the layer gets a
    contiguous dx instead of a cropped view of dx_padded.

    Stride 1 first. Output pixel (oh, ow) and kernel offset (i, j) touch the input cell
    (oh + d*i, ow + d*j). Hold dx channels-first with the images' rows interleaved, (C, Hp, N, Wp):
    cell (a, n, b) is number (a*N + n)*Wp + b of a channel's row, so moving by (d*i, d*j) cells
    is moving by

        shift = d*i*N*Wp + d*j     numbers,   and col2im is   dx[c, shift:shift + L] += dcols[i, j, c, :]

    where dcols^T = W2d @ dy_grid^T (K, L) comes from ONE product, with dy put on the first OH
    rows of that grid, (OH, N, Wp), zeros in the columns no output pixel has: L = OH*N*Wp. A real
    entry never crosses into the next row (ow + d*j <= Wp - 1) nor past the last (oh + d*i <=
    Hp - 1); only the grid's zeros do, and they add nothing: the end of the add that would run
    past dx (Hp*N*Wp numbers a channel) holds zeros only and is cut off
    (``span`` in ``add_offsets_into_phases``).
    Why rows interleaved: with images first, (N, Hp, Wp), dy's grid needs all Hp rows of each
    image for the shift to be one flat add, and the product then computes the kh - 1 rows of zeros
    below each image too: 1.96x the output pixels for LeNet-5's 14 -> 10 layer (1.4x with OH rows,
    but then each add ran over 140-number rows, 2.2x slower). Measured against the (N, Hp, Wp) grid
    (one thread, float32, alternated, chunk-sized batches): 0.89-0.96x for 5x5 6 -> 16 at 14x14
    and 3x3 8 -> 16 at 13x13, 0.93x for the stride-2 32 -> 64 at 16x16, 1.0-1.1x for 16 -> 32 at 32x32.

    Stride s: input row s*oh + d*i is row  oh + (d*i // s)  of the input's rows with the same
    remainder (d*i % s): its "phase". Each of the s_h*s_w phases of the input is a grid of
    (ceil(Hp/s_h), N, ceil(Wp/s_w)) cells on which the offset is again a plain shift, so dy goes
    on that smaller grid, each offset adds into its phase's buffer at shift
    (d*i // s_h)*N*Wph + d*j // s_w (Wph = ceil(Wp/s_w)), and the phases are copied back into
    every s-th row and column of dx (channels-last). A real entry still stays inside its phase's
    grid: s*r + phase <= Hp - 1 makes r <= ceil(Hp/s) - 1. Phases no window reaches (stride >
    kernel span) stay zero.

    Why: every add runs over long contiguous rows, where adding dcols' (i, j) blocks into strided
    slices of dx adds C numbers at a time. Measured against those strided adds (one thread,
    float32): stride 1 1.3-2.8x faster for C = 1-64 (3x3 and 5x5, batch 64). Stride 2 (batch 64
    and 128, chunks of 7-14 images): the input gradient alone 0.52-0.79x the time for 16 -> 32
    channels at 32x32, but 1.09-1.26x for 32 -> 64 at 16x16 (its phase grid has 27% more cells
    than the output, and 32-number adds were long enough); the layer's whole backward 0.86-1.02x
    and 1.07-1.12x. Net for resnet8's two stride-2 layers a wash (-0.1 to -1 ms of a 60-300 ms
    step); kept because it makes ONE col2im for every stride instead of two.
    The temporaries come from ``workspace``. Groups:
    the product is batched, (g, Kg, Fg) @ (g, Fg, L), and dx's C rows are seen as (g, Cg).

    Three steps: ``patch_gradients_on_grid`` (dy on the grid, the one product),
    ``add_offsets_into_phases`` (the kh*kw shifted adds) and ``copy_phases_out`` (the phases
    back into ``out``, channels-last).
    """
    workspace = workspace if workspace is not None else Workspace()
    (top, bottom), (left, right) = pads
    n_samples, height, width, channels = out.shape
    height, width = height + top + bottom, width + left + right  # Hp, Wp: the padded input's
    sh, sw = stride
    phase_hw = (-(-height // sh), -(-width // sw))  # ceil(Hp / s), ceil(Wp / s): one phase's grid
    dcols_t = patch_gradients_on_grid(dy, W, groups, phase_hw[1], workspace)
    phases, started = add_offsets_into_phases(dcols_t, n_samples, phase_hw, stride, dilation, workspace)
    copy_phases_out(phases, started, phase_hw, pads, stride, out)
    return out


def patch_gradients_on_grid(dy, W, groups, grid_width, workspace) -> np.ndarray:
    """Step 1: dcols^T = W2d @ dy_grid^T, (K, F) @ (F, L) -> (K, L), returned as (g, kh, kw, Cg, L).

    dy (N, OH, OW, F) goes on the grid (OH, N, grid_width): image rows interleaved, OH rows only,
    zeros in the columns no output pixel has (see ``input_gradient``); L = OH*N*grid_width. Per
    group the product is (Kg, Fg) @ (Fg, L), all g in one batched product.
    """
    kh, kw, group_channels, filters = W.shape
    n_samples, oh, ow, _ = dy.shape
    cells = oh * n_samples * grid_width  # L
    dy_grid = workspace.empty("dy_grid", (oh, n_samples, grid_width, filters), dy.dtype)
    dy_grid[:, :, :ow, :] = dy.transpose(1, 0, 2, 3)
    dy_grid[:, :, ow:, :] = 0  # the columns no output pixel has
    # in the patch matrix's workspace array "cols": the backward is done with a chunk's patches
    # before its input gradient, and one buffer for both holds the larger, not the sum
    dcols_t = workspace.empty("cols", (groups, kh * kw * group_channels, cells), dy.dtype)
    dy_groups_t = group_view(dy_grid.reshape(cells, filters), groups).transpose(0, 2, 1)  # (g, Fg, L)
    np.matmul(grouped_kernel_matrix(W, groups), dy_groups_t, out=dcols_t)
    return dcols_t.reshape(groups, kh, kw, group_channels, cells)  # row block (i, j): Cg rows per group


def add_offsets_into_phases(dcols_t, n_samples, phase_hw, stride, dilation, workspace):
    """Step 2, col2im proper: each kernel offset's block dcols_t[:, i, j] (g, Cg, L) added into
    its stride phase's buffer at its shift. Returns (phases (sh, sw, C, cells of one phase), the
    set of the phases an offset wrote)."""
    groups, kh, kw, group_channels, cells = dcols_t.shape
    (sh, sw), (dh, dw) = stride, dilation
    phase_h, phase_w = phase_hw
    phase_cells = phase_h * n_samples * phase_w  # one phase's size
    phases = workspace.empty("dx_phases", (sh, sw, groups * group_channels, phase_cells), dcols_t.dtype)
    phase_groups = phases.reshape(sh, sw, groups, group_channels, phase_cells)  # channel G*Cg + c
    started = set()  # the phases an offset has written so far
    for i in range(kh):
        for j in range(kw):
            (row_shift, row_phase), (column_shift, column_phase) = divmod(dh * i, sh), divmod(dw * j, sw)
            shift = row_shift * n_samples * phase_w + column_shift
            span = min(cells, phase_cells - shift)  # the cut-off tail holds zeros only
            phase = phase_groups[row_phase, column_phase]  # (g, Cg, phase_cells)
            if (row_phase, column_phase) in started:
                phase[:, :, shift:shift + span] += dcols_t[:, i, j, :, :span]
            else:
                start_phase(phase, dcols_t[:, i, j, :, :span], shift)
                started.add((row_phase, column_phase))
    return phases, started


def copy_phases_out(phases, started, phase_hw, pads, stride, out) -> None:
    """Step 3: each phase's cells that lie inside the unpadded input copied (transposed back to
    channels-last) into its every s-th row and column of ``out`` (N, H, W, C); a phase no window
    reaches (stride > kernel span) gives zeros."""
    (top, _), (left, _) = pads
    sh, sw = stride
    phase_h, phase_w = phase_hw
    n_samples, channels = out.shape[0], out.shape[3]
    for row_phase in range(sh):
        for column_phase in range(sw):  # one transposed copy per phase
            (skip_rows, first_row), (skip_columns, first_column) = (
                unpadded_phase(row_phase, top, sh), unpadded_phase(column_phase, left, sw))
            dx_phase = out[:, first_row::sh, first_column::sw, :]  # (N, <= phase_h, <= phase_w, C)
            if (row_phase, column_phase) not in started:  # no window reaches it
                dx_phase[...] = 0
                continue
            grid = phases[row_phase, column_phase].reshape(channels, phase_h, n_samples, phase_w)
            rows, columns = dx_phase.shape[1:3]
            inside = grid[:, skip_rows:skip_rows + rows, :, skip_columns:skip_columns + columns]
            dx_phase[...] = inside.transpose(2, 1, 3, 0)


def unpadded_phase(phase, pad, stride):
    """A phase's rows (or columns) in the unpadded input: (how many of its first rows lie in the
    padding, the unpadded row of its first one that does not). Padded row phase + s*k is unpadded
    row phase + s*k - pad, inside from k = ceil((pad - phase) / s) on."""
    skip = max(0, -(-(pad - phase) // stride))
    return skip, phase + stride * skip - pad


def start_phase(phase, block, shift) -> None:
    """A phase's first offset: ``phase[..., shift:shift + span] = block`` and zeros elsewhere.

    The same numbers as zeroing the whole phase and then adding the block, with one pass fewer
    over the phase, and a copy where the add read two arrays. Measured against that (one thread,
    float32, alternated, 21 rounds, load ~6): the input gradient of resnet8's stride-2 layers
    0.97x (16 -> 32 at 32x32, 14 images) and 0.94x (32 -> 64 at 16x16, 28 images); stride 1
    (LeNet-5's 5x5 6 -> 16, the reference's 3x3 8 -> 16) 0.98-1.0x.
    """
    span = block.shape[-1]
    phase[..., :shift] = 0
    phase[..., shift:shift + span] = block
    phase[..., shift + span:] = 0
