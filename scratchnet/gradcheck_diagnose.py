"""What kind of mistake makes this wrong gradient? Pattern diagnosis for ``gradcheck``.

Given the analytic gradient ``a`` (from backward) and the numeric one ``n`` (central
differences) of ONE array, and the mask of the elements that were compared, the functions here
say which elements disagree and which known mistake, if any, explains the pattern:

    all zeros           a == 0 everywhere, n is not        -> the gradient was never filled
    constant factor     a = r * n for one r                 -> r = 1/N or N: mean vs sum over the batch
    opposite sign       a = -n                              -> a sign flipped somewhere
    transpose           a.T = n (2-D)                       -> a transposed product (x.T @ dz vs dz.T @ x)
    kernel flip         a[::-1, ::-1] = n (4-D kernels)     -> convolution vs correlation: a missing flip
    dy missing          a * dy = n (dx of dy's shape)       -> a local derivative without the chain rule's dy
    border only         only the outer ring of (N, H, W, C) -> padding offsets (off by one)
    overlapping windows only cells in >1 window are wrong   -> `=` where `+=` is needed
    float32 round-off   error ~1e-3..1e-8                   -> compute in float64

The error of an array is ``gradient_error``: max |a - n| / scale, scale = max(max|a|, max|n|)
(``gradient_scale``); an element "disagrees" when |a - n| > tolerance * scale.
"""

from __future__ import annotations

import numpy as np


def gradient_scale(analytic, numeric) -> float:
    """max(max |a|, max |n|, 1e-12): the size of a gradient, which its errors are relative to."""
    return max(np.max(np.abs(analytic), initial=0), np.max(np.abs(numeric), initial=0), 1e-12)


def gradient_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| / max(max |a|, max |n|, 1e-12), 0 for no elements: gradcheck's docstring explains why."""
    return float(np.max(np.abs(analytic - numeric), initial=0) / gradient_scale(analytic, numeric))


def disagreeing(analytic, numeric, mask, tolerance):
    """Boolean array: the compared elements where |a - n| > tolerance * scale."""
    scale = gradient_scale(analytic[mask], numeric[mask])
    return mask & (np.abs(analytic - numeric) > tolerance * scale)


def _close(a, b, mask, tolerance):
    scale = gradient_scale(a[mask], b[mask])
    return bool(np.all(np.abs(a[mask] - b[mask]) <= max(tolerance, 1e-6) * scale * 10))


def constant_factor(analytic, numeric, mask):
    """r if a = r * n on every compared element with a sizeable n (else None)."""
    n, a = numeric[mask], analytic[mask]
    big = np.abs(n) > 1e-3 * max(np.max(np.abs(n), initial=0), 1e-12)
    if big.sum() < 1 or np.any(np.abs(a[~big]) > 1e-3 * np.max(np.abs(a), initial=1e-12)):
        return None
    ratios = a[big] / n[big]
    r = float(np.median(ratios))
    if r == 0 or np.max(np.abs(ratios - r)) > 1e-4 * abs(r) or abs(r - 1) < 1e-4:
        return None  # no single factor (or a factor of 1: not a scaling mistake)
    return r


def _name_factor(r, batch_size):
    if abs(r + 1) < 1e-3:
        return "opposite sign: analytic = -numeric (a sign flipped, e.g. x - y instead of y - x)"
    text = f"constant factor: analytic = {r:.6g} x numeric"
    for value, label in ((batch_size, "N"), (1 / batch_size if batch_size else 0, "1/N")):
        if batch_size and batch_size > 1 and abs(r - value) < 1e-3 * abs(value):
            fix = ("divided by N where the sum was needed" if label == "1/N"
                   else "summed where a mean (1/N) was needed")
            return f"{text} = {label} (batch size N = {batch_size}): mean vs sum over the batch ({fix})"
        if batch_size and batch_size > 1 and abs(r + value) < 1e-3 * abs(value):
            return f"{text} = -{label}: a sign flip and mean vs sum over the batch (N = {batch_size})"
    if r < 0:
        return f"{text}: a sign flip and a missing or extra factor {abs(r):.6g}"
    return f"{text}: a missing or extra factor (e.g. 2 from x**2, or a scale applied twice)"


def border_mask(shape, depth=1):
    """True on the outer ``depth`` rows/columns of the H, W axes of an (N, H, W, C) array."""
    mask = np.zeros(shape, dtype=bool)
    mask[:, :depth], mask[:, -depth:], mask[:, :, :depth], mask[:, :, -depth:] = True, True, True, True
    return mask


def diagnose(name, analytic, numeric, mask, tolerance, batch_size=0, coverage=None, dtype_hint=None,
             wrong=None, error=None, output_grad=None):
    """A list of sentences that explain the mismatch (empty if no pattern fits).

    ``coverage``: for an input gradient of a windowed layer, how many windows contain each
    input cell, shape (H, W) (``window_coverage``); enables the overlapping-windows diagnosis.
    ``dtype_hint``: the dtype the layer's backward returned, if it was not float64.
    ``wrong``, ``error``: ``disagreeing(...)`` and ``gradient_error`` of the masked elements,
    if the caller has them already (``GradientCheckReport.add`` has); computed when None.
    ``output_grad``: for an input gradient, the dy that backward was given (the check's random
    projection): if analytic * dy matches, backward returned the local derivative without dy.
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    wrong = disagreeing(analytic, numeric, mask, tolerance) if wrong is None else wrong
    error = gradient_error(analytic[mask], numeric[mask]) if error is None else error
    notes = []
    if np.all(analytic[mask] == 0) and np.any(numeric[mask] != 0):
        return [f"all zeros: the analytic gradient of {name} is 0 everywhere; it was never filled "
                "(forgot to assign it, or assigned to a copy)"]
    if np.all(numeric[mask] == 0) and np.any(analytic[mask] != 0):
        return [f"the numeric gradient of {name} is 0 everywhere: the forward output does not depend "
                f"on {name} (is it used in forward? e.g. a bias never added)"]
    if output_grad is not None and np.shape(output_grad) == analytic.shape \
            and _close(analytic * output_grad, numeric, mask, tolerance):
        return ["the chain rule's dy is missing: dx * dy equals the numeric gradient, so backward "
                "returned the local derivative alone; return dx = dy * (the local derivative)"]
    r = constant_factor(analytic, numeric, mask)
    if r is not None and abs(r - 1) > 1e-6:
        notes.append(_name_factor(r, batch_size))
    if analytic.ndim == 2 and analytic.shape[0] == analytic.shape[1] and mask.all() \
            and _close(analytic.T, numeric, mask, tolerance):
        notes.append(f"transpose matches: {name}.T equals the numeric gradient "
                     "(a transposed product, e.g. dz.T @ x instead of x.T @ dz)")
    if analytic.ndim == 4 and mask.all() and name != "input":
        # each rearrangement is named only where it changes the array: a 1x1 kernel or a symmetric
        # one equals its own flip/transpose, and a near miss would then "match" it
        flip_visible = not _close(analytic[::-1, ::-1], analytic, mask, tolerance)
        channels_swapped = analytic.transpose(0, 1, 3, 2) if analytic.shape[2] == analytic.shape[3] else None
        channel_swap_visible = channels_swapped is not None and not _close(channels_swapped, analytic, mask,
                                                                           tolerance)
        transposed = analytic.transpose(1, 0, 2, 3) if analytic.shape[0] == analytic.shape[1] else None
        transpose_visible = transposed is not None and not _close(transposed, analytic, mask, tolerance)
        if flip_visible and _close(analytic[::-1, ::-1], numeric, mask, tolerance):
            notes.append(f"kernel flip: {name}[::-1, ::-1] equals the numeric gradient (the kernel was "
                         "flipped, or a flip is missing: convolution vs cross-correlation)")
        elif channel_swap_visible and _close(channels_swapped, numeric, mask, tolerance):
            notes.append(f"channel axes swapped: {name} with its last two axes transposed matches")
        elif transpose_visible and _close(transposed, numeric, mask, tolerance):
            notes.append(f"kernel transposed in space: {name}.transpose(1, 0, 2, 3) equals the numeric "
                         "gradient (rows and columns of the kernel swapped: index [i, j], not [j, i])")
    if analytic.ndim == 4 and name == "input" and wrong.any() and not wrong.all() and analytic.shape[1] > 2 \
            and analytic.shape[2] > 2:
        if not np.any(wrong & ~border_mask(analytic.shape)):
            notes.append("only border elements are wrong (first/last rows or columns): check the "
                         "padding offsets (off by one when padding or cropping)")
        elif coverage is not None:
            shared = np.broadcast_to((coverage > 1)[None, :, :, None], analytic.shape)
            if shared.any() and not np.any(wrong & ~shared) and np.any(mask & ~shared & ~wrong):
                notes.append("only elements under overlapping windows are wrong (cells inside more "
                             "than one window): the contributions must be added (+=), not assigned (=)")
    if dtype_hint is not None and np.dtype(dtype_hint) != np.float64:
        notes.append(f"backward returned {np.dtype(dtype_hint)} although the check runs in float64: "
                     "compute in self.dtype (no float32 constants or astype); float32 round-off "
                     f"gives errors like {error:.0e}")
    elif not notes and 1e-9 < error < 1e-3:
        notes.append(f"error {error:.0e} looks like float32 round-off (or a tiny term dropped): run the "
                     "check in float64 and compute in float64 throughout")
    return notes


def window_coverage(layer, input_hw):
    """How many windows of a conv/pool layer contain each input cell, shape (H, W); None if unknown.

    Works for any layer with ``kernel_size`` or ``pool_size`` and ``stride`` attributes (int or
    pair) and ``padding`` ("valid", "same", int, pair or ((top, bottom), (left, right))).
    """
    from .layers.spatial import resolve_padding

    def pair(value):
        return (int(value), int(value)) if np.isscalar(value) else tuple(int(v) for v in value)

    try:
        kernel = pair(getattr(layer, "kernel_size", None) or layer.pool_size)
        stride = pair(getattr(layer, "stride", None) or kernel)
        dilation = pair(getattr(layer, "dilation", 1))
        padding = getattr(layer, "padding", 0)
        if isinstance(padding, str):
            pads = resolve_padding(padding, input_hw, kernel, stride, dilation)
        elif np.isscalar(padding):
            pads = ((int(padding),) * 2,) * 2
        else:
            pads = tuple((p, p) if np.isscalar(p) else tuple(p) for p in padding)
    except (AttributeError, TypeError, ValueError):
        return None
    (top, bottom), (left, right) = pads
    height, width = input_hw[0] + top + bottom, input_hw[1] + left + right
    counts = np.zeros((height, width), dtype=int)
    for p in range((height - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1):
        for q in range((width - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1):
            counts[p * stride[0]:p * stride[0] + dilation[0] * (kernel[0] - 1) + 1:dilation[0],
                   q * stride[1]:q * stride[1] + dilation[1] * (kernel[1] - 1) + 1:dilation[1]] += 1
    return counts[top:top + input_hw[0], left:left + input_hw[1]]


def grid_axes(name, ndim):
    """The axes a 4-D array is collapsed over for its map: kernels keep (kh, kw), inputs (H, W)."""
    if ndim == 4:
        return (2, 3) if name != "input" else (0, 3)
    if ndim == 3:
        return (2,)
    return ()


def collapse_to_grid(array, axes, reduce):
    """``array`` reduced over ``axes`` (``reduce``: np.any, np.max), as 2-D rows x columns."""
    array = reduce(array, axis=axes) if axes else array
    return array[None, :] if array.ndim == 1 else array.reshape(array.shape[0], -1)


def mismatch_grid(name, wrong, mask, inconclusive):
    """2-D character codes: 'X' wrong, '?' inconclusive, '.' agrees, ' ' not compared."""
    axes = grid_axes(name, wrong.ndim)
    w, m, q = (collapse_to_grid(a, axes, np.any) for a in (wrong, mask, inconclusive))
    grid = np.full(w.shape, " ")
    grid[m] = "."
    grid[q] = "?"
    grid[w] = "X"
    return grid


def mismatch_map(name, wrong, mask, inconclusive, max_rows=16, max_cols=48) -> str:
    """A small text picture of where an array's gradient is wrong."""
    grid = mismatch_grid(name, wrong, mask, inconclusive)
    where = {4: " (rows x cols over H, W; any sample/channel)" if name == "input"
             else " (rows x cols over kernel h, w; any channel/filter)", 3: " (over H, W; any channel)"}
    lines = ["".join(row[:max_cols]) + (" ..." if grid.shape[1] > max_cols else "")
             for row in grid[:max_rows]]
    if grid.shape[0] > max_rows:
        lines.append("...")
    head = f"map of {name}{where.get(wrong.ndim, '')}: X wrong, . ok, ? inconclusive, blank not checked"
    return "\n".join([head, *("  |" + line + "|" for line in lines)])


def mismatch_figure(row, path=None):
    """A matplotlib figure of one report row: |analytic - numeric| per cell, wrong cells marked.

    2-D arrays are drawn as they are; 4-D ones collapsed like the text map (max over the other
    axes). Returns the figure; saves it as PNG if ``path`` is given. Headless (viz._figure).
    """
    from .viz import _figure

    difference = np.where(row.mask, np.abs(row.analytic - row.numeric), 0.0)
    axes_over = grid_axes(row.name, difference.ndim)
    image = collapse_to_grid(difference, axes_over, np.max)
    figure = _figure(5, 4)
    ax = figure.add_subplot(1, 1, 1)
    shown = ax.imshow(image, cmap="magma", interpolation="nearest")
    figure.colorbar(shown, ax=ax, label="|analytic - numeric|")
    if row.worst_index is not None and len(axes_over) < difference.ndim:
        kept = [i for i in range(difference.ndim) if i not in axes_over]
        rc = [row.worst_index[i] for i in kept] + [0]
        ax.plot(rc[1] if len(kept) > 1 else rc[0], rc[0] if len(kept) > 1 else 0, "c+", markersize=14)
    ax.set_title(f"{row.name} {row.shape}: {row.n_wrong} wrong, rel. error {row.error:.1e}")
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    if path is not None:
        figure.savefig(path, dpi=80)
    return figure
