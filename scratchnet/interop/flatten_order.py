"""Flatten order between PyTorch and scratchnet, and what an import leaves pending.

PyTorch's ``nn.Flatten`` of an (N, C, H, W) batch reads each sample in (c, h, w) order,
scratchnet's Flatten of (N, H, W, C) in (h, w, c) order. The importer keeps the permutation
between the two pending until the next ``nn.Linear`` (whose columns it re-orders), and the
``AdaptiveAvgPool2d(1)`` pending until its ``nn.Flatten``; ``check_end`` refuses a module that
ends with either still pending.
"""

from __future__ import annotations

import numpy as np

from .export import UnsupportedLayerError


def new_state() -> dict:
    """Nothing pending: no nn.Flatten waiting for its Linear, no AdaptiveAvgPool2d(1) for its Flatten."""
    return {"permutation": None, "squeezed": False}


def check_end(state) -> None:
    """Refuse a module list that ends with something pending: its output would differ from PyTorch's.

    An nn.Flatten of an image at the end: PyTorch's features are (c, h, w), scratchnet's
    (h, w, c); no Linear follows to take the permutation. An AdaptiveAvgPool2d(1) at the end:
    PyTorch gives (N, C, 1, 1), scratchnet's GlobalAvgPool2D (N, C).
    """
    if state["permutation"] is not None:
        raise UnsupportedLayerError(
            "from_torch: the module ends with an nn.Flatten of an image: PyTorch's flattened features are "
            "in (c, h, w) order, scratchnet's in (h, w, c), and no nn.Linear follows to take the reordering; "
            "end the module with an nn.Linear (or permute to (N, H, W, C) before flattening), or import it "
            "without the final nn.Flatten and add scratchnet's Flatten (h, w, c order)")
    if state["squeezed"]:
        raise UnsupportedLayerError(
            "from_torch: the module ends with an AdaptiveAvgPool2d(1): PyTorch gives (N, C, 1, 1), "
            "scratchnet's GlobalAvgPool2D (N, C); add nn.Flatten() after it (the usual head) to import it")


def nchw_to_nhwc_order(shape) -> np.ndarray:
    """perm with nhwc_flat[k] = nchw_flat[perm[k]] for one (H, W, C) sample."""
    height, width, channels = shape
    return np.arange(height * width * channels).reshape(channels, height, width).transpose(1, 2, 0).ravel()


def permute_features(arrays: dict, permutation) -> dict:
    """Re-order the input features of a Linear (columns) or of a BatchNorm1d (every array)."""
    if "running_mean" in arrays:
        return {key: value[permutation] for key, value in arrays.items()}
    return {**arrays, "weight": arrays["weight"][:, permutation]}
