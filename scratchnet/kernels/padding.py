"""Zero padding for the chunked kernels (im2col.py, winograd.py): a chunk of images at a time in
scratch memory, so a layer never makes a padded copy of its whole input; and the unpadded cells
of a padded array's gradient.

    pads = ((top, bottom), (left, right)): cells of zeros above, below, left and right of x
"""

from __future__ import annotations

import numpy as np

NO_PADS = ((0, 0), (0, 0))


def framed(x, full_hw, scratch, name, pads=NO_PADS):
    """``x`` (n, H, W, C) inside a frame of zeros, (n, *full_hw, C): x at rows top..top+H-1 and
    columns left..left+W-1 (pads = ((top, bottom), (left, right)), the layer's zero padding), zeros
    around it and on to whole tiles at the bottom and right. ``x`` itself when there is no frame.
    Done a chunk at a time, in scratch: the layer never makes a padded copy of its whole input."""
    n_images, height, width, channels = x.shape
    (top, _), (left, _) = pads
    if (top, left) == (0, 0) and full_hw == (height, width):
        return x
    frame = scratch.empty(name, (n_images, *full_hw, channels), x.dtype)
    return fill_frame(frame, x, top, left)


def fill_frame(frame, x, top, left) -> np.ndarray:
    """``frame`` (n, H', W', C) holding ``x`` (n, H, W, C) at rows top..top+H-1 and columns
    left..left+W-1 and zeros in every other cell: zero padding written into scratch memory
    (only the border is zeroed, x is copied once). Returns ``frame``."""
    height, width = x.shape[1:3]
    frame[:, :top] = 0
    frame[:, top + height:] = 0
    frame[:, top:top + height, :left] = 0
    frame[:, top:top + height, left + width:] = 0
    frame[:, top:top + height, left:left + width] = x
    return frame


def padded_shape(x_shape, pads) -> tuple:
    (top, bottom), (left, right) = pads
    return (x_shape[0], x_shape[1] + top + bottom, x_shape[2] + left + right, x_shape[3])


def pad_whole(x, pads) -> np.ndarray:
    """The whole batch zero-padded (a new array; ``x`` itself without padding): for the paths
    that are not chunked (groups, 1x1 kernels, which are not padded in the zoo)."""
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    padded = np.zeros(padded_shape(x.shape, pads), dtype=x.dtype)
    padded[:, top:top + x.shape[1], left:left + x.shape[2]] = x
    return padded


def unpadded(dx_padded, pads):
    """The unpadded input's cells of ``dx_padded`` (a view; None stays None): for the paths that
    pad the whole batch (groups, 1x1 kernels), which are not padded in the zoo."""
    if dx_padded is None:
        return None
    (top, bottom), (left, right) = pads
    _, height, width, _ = dx_padded.shape
    return dx_padded[:, top:height - bottom, left:width - right]
