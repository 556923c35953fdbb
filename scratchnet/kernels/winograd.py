"""Winograd's minimal filtering for 3x3, stride-1 convolutions: fewer multiplications per output.

Notation as in ``im2col`` (x already padded, channels-last):

    x (N, Hp, Wp, C)    W (3, 3, C, F)    b (F,)    y (N, OH, OW, F),  OH = Hp - 2,  OW = Wp - 2

The idea (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Cut y into
m x m output tiles. Tile t reads an alpha x alpha input tile d_t (alpha = m + 2; neighbouring
input tiles overlap by 2). For one input channel and one filter, the m x m block of outputs is

    Y_t = A^T [ (G g G^T) * (B^T d_t B) ] A          (* is the element-wise product)

with g the 3x3 kernel slice and the constant matrices below: the 9 m^2 multiplications of the
direct method become alpha^2 (F(2x2, 3x3): 36 -> 16; F(4x4, 3x3): 144 -> 36). Summed over the
input channels, the element-wise products at ONE position (a, b) of the alpha x alpha grid are a
matrix product over channels, for all tiles and filters at once:

    V[a, b] = (B^T d B)[a, b]   (P, C)      P = N * tiles_h * tiles_w  (every tile, every image)
    U[a, b] = (G W G^T)[a, b]   (C, F)
    M[a, b] = V[a, b] @ U[a, b] (P, F)      alpha^2 matrix products, ONE batched np.matmul
    Y       = A^T M A           (m, m, P, F) -> y

Each transform "B^T d B" is two small matrix products, one per tile axis, applied to every tile
and channel at once: ``B^T @ d`` over the first grid axis, then ``np.matmul(B^T, .)`` over the
second (and the same for G and A^T).

Transform matrices (Lavin & Gray; checked by ``tests/test_winograd.py`` against the direct sum):

    F(2x2, 3x3), alpha = 4:
        B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
        A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
    F(4x4, 3x3), alpha = 6:
        B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        G   = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6],
               [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]]
        A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]

Error (u = unit roundoff, 2^-24 in float32, 2^-53 in float64). The direct sum's error is about
u * sum |x W| (9C terms). Winograd computes the same sum through the transforms, whose rounding
errors are amplified by the transforms' magnitudes: a first-order bound is

    |y_winograd - y| <~ (9C + 2 alpha) u * (||A^T|| ||G|| ||B^T||)^2 * max|x| * max|W|

(infinity norms, largest absolute row sums): (3 * 1.5 * 2)^2 = 81 for F(2x2, 3x3) and
(19 * 0.5 * 10)^2 ~ 9000 for F(4x4, 3x3); F(2x2, 3x3)'s matrices hold only 0, +-1, +-1/2 (exact in
binary), so it is nearly as exact as the direct sum. Measured against the loop backend (float64,
C and F up to 64, inputs and weights ~N(0, 1), |y| up to ~40): F(2x2, 3x3) within 1e-13,
F(4x4, 3x3) within 1e-12 (the tests use 1e-10 and 1e-9). In float32, relative to max|y| (C = F =
64): ~4e-7 for F(2x2, 3x3), ~4e-6 for F(4x4, 3x3) (im2col: ~5e-7).

Backward (the transposes of the forward's linear maps, so exact to the same rounding):

    dY = dy cut into tiles (m, m, P, F);  dM = A dY A^T  (alpha, alpha, P, F)
    dU[a, b] = V[a, b]^T @ dM[a, b]   (C, F)  ->  dW = G^T dU G                     (3, 3, C, F)
    dV[a, b] = dM[a, b] @ U[a, b]^T   (P, C)  ->  dd = B dV B^T, each input tile's gradient,
                                                   added back onto the overlapping input cells
    db = sum of dy over (N, OH, OW)

So dW and dx are Winograd too (no im2col fallback); the forward's V and U are kept for them.

Output sizes that are not multiples of m ("ragged" tiles): the input is padded at the bottom and
right with zeros to whole tiles, the extra outputs are cropped off, and the extra input cells'
gradients are dropped (dy is zero there, so nothing else changes).
"""

from __future__ import annotations

import numpy as np

from .workspace import Workspace

# (B^T, G, A^T) for F(m x m, 3x3), m = output tile size
TRANSFORMS = {
    2: ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: ([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
}


def transforms(m: int, dtype):
    """(B^T (alpha, alpha), G (alpha, 3), A^T (m, alpha)) in ``dtype``."""
    if m not in TRANSFORMS:
        raise ValueError(f"winograd: output tile size must be one of {sorted(TRANSFORMS)}, got {m!r}")
    return tuple(np.array(matrix, dtype=dtype) for matrix in TRANSFORMS[m])


def both_axes(left, grid, workspace=None, name="", out=None):
    """``left @ g @ left^T`` for every (tile, channel) column of ``grid`` (k, k, L) -> (r, r, L).

    First axis: one product ``left @ grid`` over k; second axis: ``np.matmul(left, .)``, i.e.
    left @ T[a] for every row a of the first result (a batch of r products, one numpy call).
    The intermediate (and the result, unless ``out`` is given) come from ``workspace``.
    """
    workspace = workspace if workspace is not None else Workspace()
    k, _, columns = grid.shape
    rows = left.shape[0]
    first = workspace.empty(name + "_first", (rows, k * columns), grid.dtype)
    np.matmul(left, grid.reshape(k, k * columns), out=first)  # (r, k*L)
    if out is None:
        out = workspace.empty(name, (rows, rows, columns), grid.dtype)
    return np.matmul(left, first.reshape(rows, k, columns), out=out)  # (r, r, L)


def tile_counts(out_hw, m):
    return tuple(-(-size // m) for size in out_hw)  # ceil(OH / m), ceil(OW / m)


def extend_with_zeros(x, full_hw):
    """``x`` (N, H, W, C) grown to (N, *full_hw, C) with zeros at the bottom and right (``x``
    itself when it already has that size): ragged tiles read zeros past the edge."""
    n_samples, height, width, channels = x.shape
    if full_hw == (height, width):
        return x
    extended = np.zeros((n_samples, *full_hw, channels), dtype=x.dtype)
    extended[:, :height, :width] = x
    return extended


def input_tiles(x_padded, m, workspace):
    """d (alpha, alpha, P*C): input tile t's cell (i, j), all channels, as one contiguous grid.

    Tile (n, th, tw) starts at row m*th, column m*tw of x (zero-extended to whole tiles).
    """
    n_samples, height, width, channels = x_padded.shape
    tiles_h, tiles_w = tile_counts((height - 2, width - 2), m)
    alpha = m + 2
    full_h, full_w = tiles_h * m + 2, tiles_w * m + 2
    x_padded = extend_with_zeros(x_padded, (full_h, full_w))  # ragged: zeros at the bottom and right
    step_n, step_h, step_w, step_c = x_padded.strides
    view = np.lib.stride_tricks.as_strided(
        x_padded, shape=(alpha, alpha, n_samples, tiles_h, tiles_w, channels),
        strides=(step_h, step_w, step_n, m * step_h, m * step_w, step_c), writeable=False)
    tiles = workspace.empty("tiles", (alpha, alpha, n_samples * tiles_h * tiles_w * channels), x_padded.dtype)
    tiles.reshape(view.shape)[...] = view  # the one copy
    return tiles


def conv2d_forward(x_padded, W, b, m=4, workspace=None):
    """Return ``(y, saved)``: y (N, OH, OW, F) and (V, U) for the backward.

    Temporaries come from ``workspace`` (reused between calls: fresh large arrays cost a page
    fault per 4 KiB, see workspace.py); y, V and U are new arrays."""
    workspace = workspace if workspace is not None else Workspace()
    n_samples, height, width, channels = x_padded.shape
    filters = W.shape[3]
    BT, G, AT = transforms(m, x_padded.dtype)
    alpha = m + 2
    out_h, out_w = height - 2, width - 2
    tiles_h, tiles_w = tile_counts((out_h, out_w), m)
    tiles = n_samples * tiles_h * tiles_w  # P
    V = np.empty((alpha, alpha, tiles * channels), dtype=x_padded.dtype)  # kept for the backward
    both_axes(BT, input_tiles(x_padded, m, workspace), workspace, "V", out=V)  # B^T d B
    V = V.reshape(alpha * alpha, tiles, channels)
    U = np.empty((alpha, alpha, channels * filters), dtype=x_padded.dtype)
    both_axes(G, W.reshape(3, 3, channels * filters), workspace, "U", out=U)  # G W G^T
    U = U.reshape(alpha * alpha, channels, filters)
    M = workspace.empty("M", (alpha * alpha, tiles, filters), x_padded.dtype)
    np.matmul(V, U, out=M)  # (alpha^2, P, F): one product over channels per grid position
    Y = both_axes(AT, M.reshape(alpha, alpha, tiles * filters), workspace, "Y")  # A^T M A, (m, m, P*F)
    Y = Y.reshape(m, m, n_samples, tiles_h, tiles_w, filters).transpose(2, 3, 0, 4, 1, 5)
    y = np.empty((n_samples, tiles_h, m, tiles_w, m, filters), dtype=x_padded.dtype)
    if b is None:
        y[...] = Y  # the tiles back into image order
    else:
        np.add(Y, b, out=y)  # ... adding the bias on the way
    y = y.reshape(n_samples, tiles_h * m, tiles_w * m, filters)
    if (tiles_h * m, tiles_w * m) != (out_h, out_w):
        y = y[:, :out_h, :out_w].copy()  # crop the ragged tiles' extra outputs
    return y, {"V": V, "U": U, "m": m}


def output_tiles(dy, m, workspace):
    """dY (m, m, P*F): dy cut into m x m tiles (zeros where ragged tiles pass the edge)."""
    n_samples, out_h, out_w, filters = dy.shape
    tiles_h, tiles_w = tile_counts((out_h, out_w), m)
    dy = extend_with_zeros(dy, (tiles_h * m, tiles_w * m))
    grid = dy.reshape(n_samples, tiles_h, m, tiles_w, m, filters).transpose(2, 4, 0, 1, 3, 5)
    tiles = workspace.empty("dy_tiles", (m, m, n_samples * tiles_h * tiles_w * filters), dy.dtype)
    tiles.reshape(grid.shape)[...] = grid  # the one copy
    return tiles


def conv2d_backward(saved, W, dy, padded_shape, need_input_gradient=True, workspace=None):
    """(dx_padded, dW, db) from the forward's V and U (see the module docstring); temporaries
    from ``workspace``, dx_padded, dW and db are new arrays."""
    workspace = workspace if workspace is not None else Workspace()
    V, U, m = saved["V"], saved["U"], saved["m"]
    n_samples, height, width, channels = padded_shape
    filters = dy.shape[3]
    BT, G, AT = transforms(m, dy.dtype)
    alpha = m + 2
    tiles = V.shape[1]  # P
    dM = both_axes(AT.T, output_tiles(dy, m, workspace), workspace, "dM")  # A dY A^T, (alpha, alpha, P*F)
    dM = dM.reshape(alpha * alpha, tiles, filters)
    dU = np.matmul(V.transpose(0, 2, 1), dM)  # V^T dM per position, (alpha^2, C, F)
    dW = np.empty((3, 3, channels * filters), dtype=dy.dtype)
    both_axes(G.T, dU.reshape(alpha, alpha, channels * filters), workspace, "dW", out=dW)  # G^T dU G
    dW = dW.reshape(3, 3, channels, filters)
    db = dy.reshape(-1, filters).sum(axis=0)
    if not need_input_gradient:
        return None, dW, db
    dV = workspace.empty("dV", (alpha * alpha, tiles, channels), dy.dtype)
    np.matmul(dM, U.transpose(0, 2, 1), out=dV)  # (alpha^2, P, C)
    dd = both_axes(BT.T, dV.reshape(alpha, alpha, tiles * channels), workspace, "dd")  # B dV B^T
    return add_tiles(dd, (n_samples, height, width, channels), m), dW, db


def add_tiles(dd, padded_shape, m):
    """dx_padded: every input tile's gradient added onto the cells it was read from.

    Tiles overlap by 2 cells, so cell (i, j) of every tile is added with one strided ``+=``
    (alpha^2 adds; one cell (i, j) of different tiles never lands on the same input cell).
    """
    n_samples, height, width, channels = padded_shape
    tiles_h, tiles_w = tile_counts((height - 2, width - 2), m)
    alpha = m + 2
    dd = dd.reshape(alpha, alpha, n_samples, tiles_h, tiles_w, channels)
    dx = np.zeros((n_samples, tiles_h * m + 2, tiles_w * m + 2, channels), dtype=dd.dtype)
    for i in range(alpha):
        for j in range(alpha):
            dx[:, i:i + m * tiles_h:m, j:j + m * tiles_w:m, :] += dd[i, j]
    return dx[:, :height, :width] if dx.shape[1:3] != (height, width) else dx
