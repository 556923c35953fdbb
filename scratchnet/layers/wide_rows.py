"""Per-channel broadcasts with long inner loops: the "wide rows" view of an (M, C) array.

NumPy applies ``rows * vector`` (rows (M, C), vector (C,)) as M inner loops of C values each;
with C = 16..64 channels the per-loop overhead dominates. Viewing the same memory as (M/k, k*C)
and tiling the vector k times gives the same numbers with loops of k*C values. BatchNorm uses
this for its per-channel scale and shift, ReLU for ``max(x, 0)`` (see there).
"""

from __future__ import annotations

import math

import numpy as np

# Width (values) of a "wide" row in wide_rows: 8192 float32 = 32 KB, long enough that the
# per-row overhead vanishes and short enough that the tiled vectors stay in the L1/L2 cache.
WIDE_ROW_VALUES = 8192


def wide_rows(rows: np.ndarray, *vectors: np.ndarray):
    """View (M, C) ``rows`` as (M/k, k*C) wide rows, and tile each (C,) vector k times: (k*C,).

    Why: ``rows * vector`` with a (C,) vector broadcast over M rows runs M inner loops of only C
    = 16..64 values each, and that loop overhead dominates. Row m of the wide view holds k
    consecutive rows of ``rows`` one after another (a free reshape of C-contiguous memory), and
    the vector tiled k times lines up with it value for value, so ``wide * tiled`` gives the
    same numbers with inner loops of k*C values. Measured on 65536 x 16 float32 (4 MB): 0.10 ms
    against 0.30 ms for the plain broadcast (a multiply by a scalar: 0.07 ms).

    k is the largest power of two that divides M with k*C <= WIDE_ROW_VALUES (at least 1), so
    the reshape is exact for every M and C; k = 1 gives back (M, C) and the vectors unchanged.
    The view shares memory with ``rows``, so writing into it writes into ``rows`` (if ``rows`` is
    not C-contiguous, the reshape copies instead). Returns ``(wide, [tiled vector, ...])``.
    """
    count, channels = rows.shape
    widest = max(1, WIDE_ROW_VALUES // channels)
    fold = math.gcd(count, 1 << (widest.bit_length() - 1))  # a power of two dividing M
    wide = rows.reshape(count // fold, fold * channels)
    return wide, [np.tile(vector, fold) for vector in vectors]
