"""Shape arithmetic and option checks shared by convolution and pooling layers (channels-last,
(N, H, W, C)).

Along one spatial axis, with input size ``in``, total padding ``p`` (before + after), kernel
size ``k``, stride ``s`` and dilation ``d``, the kernel covers ``d*(k-1) + 1`` input cells and

    out = floor((in + p - d*(k-1) - 1) / s) + 1

``padding="same"`` asks for ``out = ceil(in / s)``; the total padding that gives it is
``max((out - 1)*s + d*(k-1) + 1 - in, 0)``, split with the odd cell at the bottom/right
(as Keras and TensorFlow do).

``pad_spatial`` / ``crop_spatial`` add and remove that padding around the (H, W) axes.
"""

from __future__ import annotations

import numpy as np

from ..option_checks import check_count, is_int, whole_float_hint


def check_backend(backend, backends, layer_name: str) -> str:
    """``backend`` if it is one of ``backends`` (the layer's algorithms), else a ValueError."""
    if backend not in backends:
        raise ValueError(f"{layer_name}: unknown backend {backend!r}; expected one of "
                         f"{', '.join(map(repr, backends))}")
    return backend


def positive_int(value, what: str, layer_name: str) -> int:
    """An int >= 1 (``option_checks.check_count``: TypeError for a float, a string, None or a
    bool; ValueError for 0 or less)."""
    return check_count(value, what, layer_name, 1)


def as_pair(value, what: str, layer_name: str) -> tuple[int, int]:
    """An int or an (h, w) pair of ints, each >= 1, returned as a pair of Python ints.

    Not ints (a float, a string, None, a bool) -> TypeError; a pair of another length or a
    size below 1 -> ValueError; one message for both."""
    message = f"{layer_name}: {what} must be an int >= 1 or an (h, w) pair of them, got {value!r}"
    if is_int(value):
        pair = (value, value)
    elif isinstance(value, (tuple, list)) and all(is_int(v) for v in value):
        pair = tuple(value)
    else:
        sizes = value if isinstance(value, (tuple, list)) else (value,)
        raise TypeError(message + whole_float_hint(*sizes))
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(message)
    return int(pair[0]), int(pair[1])


def explicit_pads(padding):
    """An int p, an (ph, pw) pair or ((top, bottom), (left, right)) of sizes >= 0, returned in
    the last form; None if ``padding`` is none of these."""
    def is_size(v):
        return is_int(v) and v >= 0

    if is_size(padding):
        return ((int(padding), int(padding)), (int(padding), int(padding)))
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(is_size(v) for v in padding):
            return ((int(padding[0]), int(padding[0])), (int(padding[1]), int(padding[1])))
        if all(isinstance(p, (tuple, list)) and len(p) == 2 and all(is_size(v) for v in p)
               for p in padding):
            return tuple((int(p[0]), int(p[1])) for p in padding)
    return None


def check_padding_option(padding, layer_name: str):
    """Validate a padding option at construction time; return it in a canonical form.

    Accepted: "valid", "same", an int p, an (ph, pw) pair, or ((top, bottom), (left, right)).
    Numeric forms come back as ((top, bottom), (left, right)).
    """
    if isinstance(padding, str):
        if padding.lower() in ("valid", "same"):
            return padding.lower()
        raise ValueError(f"{layer_name}: padding must be 'valid', 'same', an int or "
                         f"((top, bottom), (left, right)), got {padding!r}")
    pads = explicit_pads(padding)
    if pads is None:
        raise ValueError(f"{layer_name}: padding must be 'valid', 'same', a non-negative int, an "
                         f"(h, w) pair or ((top, bottom), (left, right)), got {padding!r}")
    return pads


def resolve_padding(padding, input_hw, kernel_hw, stride_hw, dilation_hw=(1, 1)):
    """The ((top, bottom), (left, right)) padding that ``padding`` means for this input."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        pads = []
        for size, k, s, d in zip(input_hw, kernel_hw, stride_hw, dilation_hw):
            out = -(-size // s)  # ceil(size / s)
            total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
            pads.append((total // 2, total - total // 2))  # odd cell at the bottom / right
        return tuple(pads)
    return padding


def conv_output_hw(layer_name, input_hw, kernel_hw, stride_hw, dilation_hw, pads):
    """Output (H, W); raises if the (dilated) kernel does not fit in the padded input."""
    out = []
    for axis, size, k, s, d, (before, after) in zip(("height", "width"), input_hw, kernel_hw,
                                                     stride_hw, dilation_hw, pads):
        span = d * (k - 1) + 1  # input cells one window covers
        padded = size + before + after
        if span > padded:
            raise ValueError(
                f"{layer_name}: window of {span} cells along {axis} (kernel {k}, dilation {d}) "
                f"is larger than the padded input ({size} + {before} + {after} = {padded})")
        out.append((padded - span) // s + 1)
    return tuple(out)


def check_image_shape(input_shape, layer_name: str) -> tuple[int, int, int]:
    """One sample must be (H, W, C)."""
    if len(input_shape) != 3:
        raise ValueError(f"{layer_name}: expected samples of shape (H, W, C) (batch shape "
                         f"(N, H, W, C)), got {tuple(input_shape)}")
    return tuple(input_shape)


def pad_spatial(x: np.ndarray, pads, fill) -> np.ndarray:
    """``x`` (N, H, W, C) with ``pads`` = ((top, bottom), (left, right)) cells of ``fill`` around it.

    Without padding ``x`` itself is returned (no copy). Otherwise one ``np.full`` plus one
    interior assignment, which is cheaper than ``np.pad``'s general machinery.
    """
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    n, height, width, channels = x.shape
    padded = np.full((n, top + height + bottom, left + width + right, channels), fill, dtype=x.dtype)
    padded[:, top:top + height, left:left + width, :] = x
    return padded


def crop_spatial(padded: np.ndarray, pads, input_hw) -> np.ndarray:
    """Inverse of :func:`pad_spatial`: the ``(N, H, W, C)`` interior (a contiguous copy if cropped)."""
    (top, _), (left, _) = pads
    height, width = input_hw
    if padded.shape[1:3] == (height, width):
        return padded
    return np.ascontiguousarray(padded[:, top:top + height, left:left + width, :])
