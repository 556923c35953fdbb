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
second (and the same for G and A^T). Measured against the alternatives (one thread, 8 images of
32x32x16): explicit adds using B^T's zeros (22 of 36 entries are nonzero) 1.3-1.5x slower (one
NumPy pass per term), one einsum 3.5x slower, np.tensordot 1.1x, skipping B^T's one-entry
first and last columns (a 6x4 product plus two scaled adds) 0.96x: within noise, not adopted.
These products are slow for their size (OpenBLAS with M = K = 6: ~50 GFLOP/s, 3x a copy of the
same data), but no other form measured faster: one 36 x 36 (Kronecker) product for both axes
1.4x, the grid axis last ((6L, 6) @ (6, 6)) 1.6x, the rows first on the padded image (no tile
overlaps: 0.7x the first product's work) then the columns 0.97-1.08x, and in the backward the
columns first, then the rows, overlaps added in between, 0.91-1.0x of B dV B^T + add_tiles
(~0.5% of a resnet8 step: not adopted). F(6x6, 3x3) would do no less work on resnet8's 32x32,
16x16 and 8x8 outputs (ragged tiles) and is numerically worse.

The batch in chunks. Every intermediate (d, V, M, Y and their gradients) is alpha^2 / m^2 =
2.25x the size of the input or output: 9.4 MB for 64 images of 32x32x16, against a 1 MiB L2
cache per core. So the images go through all the stages a chunk at a time (images_per_chunk:
each temporary within CHUNK_BYTES), and the temporaries, workspace arrays sized for one chunk,
stay in cache from one stage to the next. Measured (one thread, batch 64, padding 1, fwd / bwd
time against one chunk of all 64 images; the default chunk marked *; load average ~3):

    32x32x16 -> 16:  4 images 0.68 / 0.72,  8* 0.68 / 0.73,  16 0.70 / 0.78,  32 0.82 / 0.96
    16x16x32 -> 32:  13* 0.74 / 0.67,  16 0.72 / 0.68,  32 0.80 / 0.84
    8x8x64 -> 64:    8 0.88 / 0.86,  22* 0.83 / 0.80,  32 0.83 / 0.77

(one image per chunk: 0.94 / 0.94 at 32x32x16, ~40 NumPy calls per chunk). Again with V kept,
against 1 MiB (load ~1.2): 256 KiB 1.15 / 1.12, 512 KiB 1.04 / 1.04, 2 MiB 1.00 / 1.01.

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
(19 * 1 * 10)^2 ~ 36,000 for F(4x4, 3x3) (G's largest row sum is its last row, [0, 0, 1]);
F(2x2, 3x3)'s matrices hold only 0, +-1, +-1/2 (exact in binary), so it is nearly as exact as
the direct sum. Measured against torch's float64 convolution (4 images 18x18, inputs and
weights ~N(0, 1), seeds 0-2): at C = F = 16 (max|y| 46-56) F(2x2, 3x3) within 4.3e-14 and
F(4x4, 3x3) within 3.6e-13; at C = F = 64 (max|y| 101-113) 1.6-1.8e-13 and 1.1-1.4e-12 (the
tests use 1e-10 and 1e-9). In float32, relative to max|y| at C = F = 64: 3.0-4.0e-7 for
F(2x2, 3x3), 5.1-8.8e-6 for F(4x4, 3x3) (im2col: 4.7-5.9e-7).

Backward (the transposes of the forward's linear maps, so exact to the same rounding):

    dY = dy cut into tiles (m, m, P, F);  dM = A dY A^T  (alpha, alpha, P, F)
    dU[a, b] = V[a, b]^T @ dM[a, b]   (C, F)  ->  dW = G^T dU G                     (3, 3, C, F)
    dV[a, b] = dM[a, b] @ U[a, b]^T   (P, C)  ->  dd = B dV B^T, each input tile's gradient,
                                                   added back onto the overlapping input cells
    db = sum of dy over (N, OH, OW)

So dW and dx are Winograd too (no im2col fallback). The forward keeps V for the backward, one
new array per chunk (2.25x the layer's input), and U (C*F*alpha^2 numbers); not x. Measured
against recomputing V chunk by chunk from x (one thread, resnet8 training step, OPENBLAS_CORETYPE
=Haswell, load ~1.4): keeping V 0.90x the time; resident peak of a step (fresh process) 74.6 ->
92.7 MiB at batch 64, 122.5 -> 169.2 MiB at batch 128, still below torch's 126.3 and 201.4 MiB.

Output sizes that are not multiples of m ("ragged" tiles): the input is padded at the bottom and
right with zeros to whole tiles, the extra outputs are cropped off, and the extra input cells'
gradients are dropped (dy is zero there, so nothing else changes).
"""

from __future__ import annotations

import numpy as np

from .chunk_workers import map_chunks, sum_in_chunk_order
from .padding import NO_PADS, framed, padded_shape
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

# The largest temporary of one chunk of images (images_per_chunk; the module docstring has the
# measurements: chunks of 0.5-2 MB per temporary ran fastest, the L2 cache being 1 MiB).
CHUNK_BYTES = 1 << 20


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


def channel_runs(array):
    """``array`` (..., K) viewed as (..., 1): each run of K numbers along the last axis as ONE
    element (a NumPy void of K * itemsize bytes; the bits are untouched).

    Why: cutting tiles out of images (and putting them back) copies runs of K = C or F numbers
    (16 in resnet8's first stage), and NumPy's copy loop over 16 float32s at a time is slow;
    copying the same bytes as one 64-byte element per run measured 1.9x faster (8 images of
    32x32x16 cut into 6x6 tiles, one thread: 75 -> 40 us).
    """
    if array.strides[-1] != array.itemsize:  # the runs must be contiguous to be one element
        array = np.ascontiguousarray(array)
    return array.view(np.dtype((np.void, array.shape[-1] * array.itemsize)))


# ------------------------------------------------------------------ the batch in chunks
def images_per_chunk(padded_shape, filters, m, itemsize):
    """How many images one chunk holds: the batch split into as few equal chunks as keep each
    chunk's largest temporary (V, M or their gradients, alpha^2 * tiles * max(C, F) numbers per
    image) within CHUNK_BYTES (equal: no short last chunk that costs the per-chunk overhead for
    little work); at least 1 image."""
    n_samples, height, width, channels = padded_shape
    tiles_h, tiles_w = tile_counts((height - 2, width - 2), m)
    bytes_per_image = (m + 2) ** 2 * tiles_h * tiles_w * max(channels, filters) * itemsize
    n_chunks = -(-n_samples * bytes_per_image // CHUNK_BYTES)  # ceil
    return max(1, -(-n_samples // n_chunks))


def batch_chunks(n_samples, chunk_images):
    """[(start, stop), ...]: consecutive image ranges of ``chunk_images`` (the last may be shorter)."""
    return [(start, min(start + chunk_images, n_samples)) for start in range(0, n_samples, chunk_images)]


# ------------------------------------------------------------------ the stages, one chunk each
def input_tiles(x, pads, m, scratch):
    """d (alpha, alpha, p*C): input tile t's cell (i, j), all channels, as one contiguous grid.

    Tile (n, th, tw) starts at row m*th, column m*tw of x zero-padded by ``pads`` (and on to
    whole tiles).
    """
    n_images, channels = x.shape[0], x.shape[3]
    tiles_h, tiles_w = tile_counts([size - 2 for size in padded_shape(x.shape, pads)[1:3]], m)
    alpha = m + 2
    x_padded = channel_runs(framed(x, (tiles_h * m + 2, tiles_w * m + 2), scratch, "x_framed", pads))
    step_n, step_h, step_w, step_c = x_padded.strides
    view = np.lib.stride_tricks.as_strided(
        x_padded, shape=(alpha, alpha, n_images, tiles_h, tiles_w, 1),
        strides=(step_h, step_w, step_n, m * step_h, m * step_w, step_c), writeable=False)
    tiles = scratch.empty("tiles", (alpha, alpha, n_images * tiles_h * tiles_w * channels), x.dtype)
    tile_runs = channel_runs(tiles.reshape(alpha, alpha, n_images, tiles_h, tiles_w, channels))
    tile_runs[...] = view  # the one copy, a run of C numbers at a time
    return tiles


def transformed_input(x, pads, BT, m, scratch):
    """V = B^T d B (alpha^2, p, C), a new array, for the images of ``x`` (n, H, W, C) padded by
    ``pads``, p = their tiles."""
    alpha, channels = m + 2, x.shape[3]
    tiles = input_tiles(x, pads, m, scratch)
    V = both_axes(BT, tiles, scratch, "V", out=np.empty(tiles.shape, tiles.dtype))
    return V.reshape(alpha * alpha, -1, channels)


def transformed_kernel(W, G):
    """U = G W G^T (alpha^2, C, F); small (C*F numbers per grid position), a new array."""
    channels, filters = W.shape[2:]
    alpha = G.shape[0]
    U = np.empty((alpha, alpha, channels * filters), dtype=W.dtype)
    both_axes(G, W.reshape(3, 3, channels * filters), out=U)
    return U.reshape(alpha * alpha, channels, filters)


def bias_position(AT):
    """The grid position k * alpha + k of M where adding b adds b to every output of A^T M A:
    column k of A^T is all ones (k = 1 for both tile sizes), so (A^T e_k)(A^T e_k)^T is the
    m x m block of ones. Why: the bias added while the tiles are copied back into image order
    (rows of F numbers) cost 0.3 ms of a 4 ms forward (32x32x16, batch 64); added to M there,
    it touches 1/alpha^2 of M: 0.05 ms."""
    alpha = AT.shape[1]
    k = int(np.flatnonzero((AT == 1).all(axis=0))[0])
    return k * alpha + k


def write_output(M, AT, y, scratch):
    """y (n, OH, OW, F) = A^T M A: M (alpha^2, p, F) back from tiles into image order."""
    n_images, out_h, out_w, filters = y.shape
    m, alpha = AT.shape
    tiles_h, tiles_w = tile_counts((out_h, out_w), m)
    Y = both_axes(AT, M.reshape(alpha, alpha, -1), scratch, "Y")  # (m, m, p*F)
    Y = channel_runs(Y.reshape(m, m, n_images, tiles_h, tiles_w, filters)).transpose(2, 3, 0, 4, 1, 5)
    whole_tiles = (tiles_h * m, tiles_w * m) == (out_h, out_w)
    target = y
    if not whole_tiles:  # the ragged tiles' extra outputs go to scratch, cropped below
        target = scratch.empty("y_whole_tiles", (n_images, tiles_h * m, tiles_w * m, filters), y.dtype)
    target_tiles = channel_runs(target.reshape(n_images, tiles_h, m, tiles_w, m, filters))
    target_tiles[...] = Y  # the tiles back into image order, a run of F numbers at a time
    if not whole_tiles:
        y[...] = target[:, :out_h, :out_w]  # crop the ragged tiles' extra outputs


def conv2d_forward(x, W, b, m=4, workspace=None, chunk_images=None, pads=NO_PADS):
    """Return ``(y, saved)``: y (N, OH, OW, F) and what the backward needs: V (one new array per
    chunk, ``saved["V_chunks"]``) and U.

    ``x`` (N, H, W, C) is zero-padded by ``pads`` ((top, bottom), (left, right)) chunk by chunk
    (default: none, x is already padded): no padded copy of the whole batch is made, and x itself
    is not kept (the backward needs only V and U). The batch goes through in chunks of
    ``chunk_images`` images (default: images_per_chunk); temporaries come from ``workspace``
    (reused between calls: fresh large arrays cost a page fault per 4 KiB, see workspace.py);
    y and U are new arrays."""
    workspace = workspace if workspace is not None else Workspace()
    x_padded_shape = padded_shape(x.shape, pads)
    n_samples, height, width, channels = x_padded_shape
    filters, dtype = W.shape[3], x.dtype
    BT, G, AT = transforms(m, dtype)
    alpha = m + 2
    chunk_images = chunk_images or images_per_chunk(x_padded_shape, filters, m, dtype.itemsize)
    U = transformed_kernel(W, G)  # (alpha^2, C, F)
    y = np.empty((n_samples, height - 2, width - 2, filters), dtype=dtype)
    bias_at = bias_position(AT)

    def one_chunk(chunk, scratch):  # writes y[start:stop], returns V (kept); chunk_workers.py
        start, stop = chunk
        V = transformed_input(x[start:stop], pads, BT, m, scratch)  # (alpha^2, p, C)
        M = scratch.empty("M", (alpha * alpha, V.shape[1], filters), dtype)
        np.matmul(V, U, out=M)  # (alpha^2, p, F): one product over channels per grid position
        if b is not None:
            M[bias_at] += b  # (p, F): b reaches every output through A^T M A
        write_output(M, AT, y[start:stop], scratch)
        return V

    V_chunks = map_chunks(one_chunk, batch_chunks(n_samples, chunk_images), workspace)
    return y, {"V_chunks": V_chunks, "U": U, "m": m, "chunk_images": chunk_images, "pads": pads}


def output_gradient_tiles(dy, AT, scratch):
    """dM = A dY A^T (alpha^2, p, F): dy (n, OH, OW, F) cut into m x m tiles dY (zeros where
    ragged tiles pass the edge), each taken back through the output transform."""
    n_images, out_h, out_w, filters = dy.shape
    m, alpha = AT.shape
    tiles_h, tiles_w = tile_counts((out_h, out_w), m)
    dy = framed(dy, (tiles_h * m, tiles_w * m), scratch, "dy_framed")  # zeros on to whole tiles
    grid = channel_runs(dy).reshape(n_images, tiles_h, m, tiles_w, m, 1).transpose(2, 4, 0, 1, 3, 5)
    tiles = scratch.empty("dy_tiles", (m, m, n_images * tiles_h * tiles_w * filters), dy.dtype)
    tile_runs = channel_runs(tiles.reshape(m, m, n_images, tiles_h, tiles_w, filters))
    tile_runs[...] = grid  # the one copy, a run of F numbers at a time
    dM = both_axes(AT.T, tiles, scratch, "dM")  # (alpha, alpha, p*F)
    return dM.reshape(alpha * alpha, -1, filters)


def add_tiles(dd, dx, m):
    """Every input tile's gradient dd (alpha, alpha, p*C) summed onto the cells of ``dx``
    (n, tiles_h*m + 2, tiles_w*m + 2, C) it was read from; dd is overwritten on the way.

    Tile (th, tw) covers rows m*th .. m*th + m + 1: its last 2 rows are the first 2 rows of tile
    (th + 1, tw), and the same for columns. So the overlaps are first added in TILE space,

        dd[r, :, tile (th + 1, tw)] += dd[m + r, :, tile (th, tw)]      r = 0, 1   (rows)
        dd[:, s, tile (th, tw + 1)] += dd[:, m + s, tile (th, tw)]      s = 0, 1   (columns)

    after which each input cell's whole sum sits in ONE tile cell: cells (i < m, j < m) of every
    tile form the top-left tiles_h*m x tiles_w*m block of dx, and the last tile row / column
    (and corner) also holds the bottom 2 rows / right 2 columns. Four copies then fill dx.
    Why: the direct form, one strided ``dx[:, i::m, j::m] += dd[i, j]`` per tile cell, adds C
    numbers at a time (dx's channels are the only contiguous run) and took 1.9 ms of a 10 ms
    backward (16 channels, 32x32, batch 64); here the adds run over whole (tiles, C) rows.
    """
    n_images, full_h, full_w, channels = dx.shape
    alpha = m + 2
    tiles_h, tiles_w = (full_h - 2) // m, (full_w - 2) // m
    dd = dd.reshape(alpha, alpha, n_images, tiles_h, tiles_w, channels)
    for r in range(2):  # the overlapping rows onto the tile below
        dd[r, :, :, 1:] += dd[m + r, :, :, :-1]
    for s in range(2):  # the overlapping columns onto the tile to the right
        dd[:, s, :, :, 1:] += dd[:, m + s, :, :, :-1]
    inner_h, inner_w = tiles_h * m, tiles_w * m
    dd, dx = channel_runs(dd), channel_runs(dx)  # copies a run of C numbers at a time (1 below)
    blocks = dx[:, :inner_h, :inner_w].reshape(n_images, tiles_h, m, tiles_w, m, 1)
    blocks[...] = dd[:m, :m].transpose(2, 3, 0, 4, 1, 5)  # cell (i, j) of tile (th, tw)
    bottom_rows = dx[:, inner_h:, :inner_w].reshape(n_images, 2, tiles_w, m, 1)
    bottom_rows[...] = dd[m:, :m, :, -1].transpose(2, 0, 3, 1, 4)  # the last tile row's rows m, m+1
    right_columns = dx[:, :inner_h, inner_w:].reshape(n_images, tiles_h, m, 2, 1)
    right_columns[...] = dd[:m, m:, :, :, -1].transpose(2, 3, 0, 1, 4)
    dx[:, inner_h:, inner_w:] = dd[m:, m:, :, -1, -1].transpose(2, 0, 1, 3)  # the corner


def bias_gradient(dy, workspace):
    """db (F,) = the sum of dy (N, OH, OW, F) over its N*OH*OW rows, as ones @ dy: one BLAS
    matrix-vector product. Why: ``dy.sum(axis=0)`` adds rows of F numbers with short inner loops,
    1.0 ms against 0.05 ms here (64 x 32 x 32 x 16, float32, one thread)."""
    rows = dy.reshape(-1, dy.shape[3])
    ones = workspace.empty("ones", (rows.shape[0],), dy.dtype)
    ones.fill(1)
    return ones @ rows


def conv2d_backward(saved, W, dy, padded_shape, need_input_gradient=True, workspace=None, use_bias=True):
    """(dx, dW, db) from the forward's V chunks and U (see the module docstring), chunk by chunk
    as in the forward; temporaries from ``workspace``, dx, dW and db are new arrays (db is None
    without ``use_bias``: a layer without a bias never asks for the sum).

    dx (N, H, W, C) is the gradient of the x the forward was given, unpadded (``saved["pads"]``),
    a contiguous array, as im2col's: each chunk's tile gradients are summed onto a whole-tile
    padded grid in scratch (``add_tiles``), and only x's own cells are copied out of it. Why: the
    next layer's element-wise backward (a ReLU, a residual block's add) runs 1.6-2x slower on a
    cropped view of a padded dx (64x32x32x16 float32), and this copy out of cache-warm scratch
    pays for that; whole resnet8 steps measured 0.96-1.06x the cropped view's time (alternated,
    one thread, load ~1: a wash within the noise), with one layer contract for both fast kernels.
    """
    workspace = workspace if workspace is not None else Workspace()
    U, m = saved["U"], saved["m"]
    n_samples, height, width, channels = padded_shape
    filters, dtype = dy.shape[3], dy.dtype
    BT, G, AT = transforms(m, dtype)
    alpha = m + 2
    tiles_h, tiles_w = tile_counts((height - 2, width - 2), m)
    (top, bottom), (left, right) = saved["pads"]
    x_hw = (height - top - bottom, width - left - right)  # the unpadded input's size
    dx = None
    if need_input_gradient:
        dx = np.empty((n_samples, *x_hw, channels), dtype=dtype)
    chunks = batch_chunks(n_samples, saved["chunk_images"])
    dU_chunks = workspace.empty("dU_chunks", (len(chunks), alpha * alpha, channels, filters), dtype)

    def one_chunk(index, scratch):  # fills dU_chunks[index] and dx[start:stop]
        (start, stop), V = chunks[index], saved["V_chunks"][index]  # V (alpha^2, p, C) from the forward
        dM = output_gradient_tiles(dy[start:stop], AT, scratch)  # (alpha^2, p, F)
        np.matmul(V.transpose(0, 2, 1), dM, out=dU_chunks[index])  # V^T dM per position, (alpha^2, C, F)
        if need_input_gradient:
            dV = scratch.empty("dV", (alpha * alpha, dM.shape[1], channels), dtype)
            np.matmul(dM, U.transpose(0, 2, 1), out=dV)  # (alpha^2, p, C)
            dd = both_axes(BT.T, dV.reshape(alpha, alpha, -1), scratch, "dd")  # B dV B^T
            # whole tiles, padding included, in scratch; then only the cells of x itself
            tiles_shape = (stop - start, tiles_h * m + 2, tiles_w * m + 2, channels)
            dx_tiles = scratch.empty("dx_tiles", tiles_shape, dtype)
            add_tiles(dd, dx_tiles, m)
            dx[start:stop] = dx_tiles[:, top:top + x_hw[0], left:left + x_hw[1]]

    map_chunks(one_chunk, range(len(chunks)), workspace)
    dU = sum_in_chunk_order(dU_chunks)  # (alpha^2, C, F)
    dW = np.empty((3, 3, channels * filters), dtype=dtype)
    both_axes(G.T, dU.reshape(alpha, alpha, channels * filters), workspace, "dW", out=dW)  # G^T dU G
    db = bias_gradient(dy, workspace) if use_bias else None
    return dx, dW.reshape(3, 3, channels, filters), db
