"""Synthetic grey-scale patterns: a dataset for lessons that have no data to download.

Five classes, each drawn with random parameters so a network must learn the *kind* of
pattern, not one picture:

====  ====================  ====================================================
 0    horizontal stripes    random period (4 to 10 px) and phase
 1    vertical stripes      random period and phase
 2    checkerboard          random square size (2 to 5 px) and offset
 3    disc                  random centre and radius (1/8 to 1/3 of the image)
 4    bright spots          3 to 8 small Gaussian blobs at random places
====  ====================  ====================================================

Every image then gets a random contrast (0.5 to 1), a random background level and Gaussian
pixel noise (standard deviation 0.1), and is clipped to [0, 1]. A linear model cannot
separate these well; a small CNN learns them in a few epochs.
"""

from __future__ import annotations

import numpy as np

from ..option_checks import check_count, check_real
from .common import check_image_dtype

PATTERN_NAMES = ("horizontal stripes", "vertical stripes", "checkerboard", "disc", "bright spots")


def _stripes(coordinate, rng):
    """1 where (coordinate + phase) falls in the first half of a period, else 0."""
    period = rng.uniform(4, 10)
    phase = rng.uniform(0, period)
    return ((coordinate + phase) % period < period / 2).astype(float)


def _horizontal_stripes(rows, cols, rng, size):
    return _stripes(rows, rng)


def _vertical_stripes(rows, cols, rng, size):
    return _stripes(cols, rng)


def _checkerboard(rows, cols, rng, size):
    square = rng.integers(2, 6)
    row_offset, col_offset = rng.integers(0, 2 * square, size=2)
    return (((rows + row_offset) // square + (cols + col_offset) // square) % 2).astype(float)


def _disc(rows, cols, rng, size):
    radius = rng.uniform(size / 8, size / 3)
    centre_row, centre_col = rng.uniform(radius, size - radius, size=2)
    return ((rows - centre_row) ** 2 + (cols - centre_col) ** 2 <= radius ** 2).astype(float)


def _spots(rows, cols, rng, size):
    image = np.zeros((size, size))
    for _ in range(rng.integers(3, 9)):
        centre_row, centre_col = rng.uniform(0, size, size=2)
        width = rng.uniform(0.8, 1.8)
        image += np.exp(-((rows - centre_row) ** 2 + (cols - centre_col) ** 2) / (2 * width ** 2))
    return np.clip(image, 0, 1)


# Each function draws one noise-free pattern in [0, 1] on the (size, size) pixel grid.
_DRAW = (
    _horizontal_stripes,
    _vertical_stripes,
    _checkerboard,
    _disc,
    _spots,
)


def make_patterns(n: int, image_size: int = 32, n_classes: int = 5, seed: int = 0,
                  noise: float = 0.1, dtype="float32"):
    """Draw ``n`` random pattern images.

    Parameters
    ----------
    n : number of images; classes are balanced (``n // n_classes`` each, the first
        ``n % n_classes`` classes get one more) and shuffled
    image_size : height and width in pixels (at least 8)
    n_classes : use the first ``n_classes`` (2 to 5) of ``PATTERN_NAMES``
    seed : same seed, same images
    noise : standard deviation of the Gaussian pixel noise
    dtype : a floating type of the images (float32, float64)

    Returns
    -------
    x : float array (n, image_size, image_size, 1) in [0, 1]
    y : int64 array (n,) in 0 .. n_classes - 1
    """
    n = check_count(n, "n", "make_patterns", 0)
    image_size = check_count(image_size, "image_size", "make_patterns", 8)
    n_classes = check_count(n_classes, "n_classes", "make_patterns", 2, most=len(_DRAW))
    noise = check_real(noise, "noise", "make_patterns", least=0)
    check_image_dtype(dtype, "make_patterns")  # values in [0, 1]: uint8 would round them to 0 and 1
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
    rows, cols = np.mgrid[0:image_size, 0:image_size].astype(float)
    images = np.empty((n, image_size, image_size, 1), dtype=dtype)
    for i, label in enumerate(labels):
        pattern = _DRAW[label](rows, cols, rng, image_size)
        contrast = rng.uniform(0.5, 1.0)
        background = rng.uniform(0.0, 1.0 - contrast)
        image = background + contrast * pattern + rng.normal(0.0, noise, size=pattern.shape)
        images[i, :, :, 0] = np.clip(image, 0.0, 1.0)
    return images, labels
