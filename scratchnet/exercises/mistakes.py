"""Known wrong answers of the conv, max-pool and dense exercises, recognised exactly.

Each function computes, from the case's input x, the dy the grader used and the student's own
parameters, the array a student with that mistake returns (None where the mistake cannot show:
no tie in the input, a kernel that is its own flip). The grader prints the message only when the
student's array equals it (1e-6 relative), and only for a case that failed: a right answer never
meets it, and a differently wrong one does not equal it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class KnownMistake:
    """A wrong answer students often give: ``wrong(x, dy, params, config)`` computes it (None where
    the mistake would not show); when the student's array ``array`` ("dx", or a key of grads)
    equals it, the grader prints ``message``."""
    message: str
    wrong: Callable
    array: str = "dx"


def _conv_dx_with_kernel(x, dy, kernel, config):
    """dx of a convolution (stride s, padding p) computed with ``kernel`` (kh, kw, C, F):
    dxp[n, s*oh + i, s*ow + j, c] += dy[n, oh, ow, f] * kernel[i, j, c, f], then the crop."""
    from ..kernels.loops import conv2d_backward

    p, s = config.get("padding", 0), config.get("stride", 1)
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    dxp, _, _ = conv2d_backward(xp, kernel, dy, stride=(s, s))
    return dxp[:, p:p + x.shape[1], p:p + x.shape[2], :]


def conv_dx_with_flipped_kernel(x, dy, params, config):
    kernel = params["W"]
    flipped = kernel[::-1, ::-1]
    return None if np.array_equal(flipped, kernel) else _conv_dx_with_kernel(x, dy, flipped, config)


def _max_pool_tie_rule(x, dy, config, rule):
    """dx of max-pooling with each window's dy given by ``rule(winners)`` (winners: the tied maxima
    of the window in row-major order, a boolean (N, k*k, C)); None if no window has a tie."""
    k = config["pool_size"]
    s = config.get("stride") or k
    dx, ties = np.zeros_like(x), False
    for oh in range(dy.shape[1]):
        for ow in range(dy.shape[2]):
            window = x[:, s * oh:s * oh + k, s * ow:s * ow + k, :]
            flat = window.reshape(x.shape[0], k * k, x.shape[3])
            winners = flat == flat.max(axis=1, keepdims=True)
            ties = ties or bool(np.any(winners.sum(axis=1) > 1))
            share = rule(winners).reshape(window.shape)
            dx[:, s * oh:s * oh + k, s * ow:s * ow + k, :] += share * dy[:, oh:oh + 1, ow:ow + 1, :]
    return dx if ties else None


def _last_winner(winners):
    """1 at the LAST maximum of each window (row-major), 0 elsewhere."""
    last = winners.shape[1] - 1 - np.argmax(winners[:, ::-1, :], axis=1)
    return np.arange(winners.shape[1])[None, :, None] == last[:, None, :]


def max_pool_to_every_tie(x, dy, params, config):
    """dy sent to EVERY maximum of a window: dx[window] += dy * (window == max(window))."""
    return _max_pool_tie_rule(x, dy, config, lambda winners: winners)


def max_pool_to_last_tie(x, dy, params, config):
    return _max_pool_tie_rule(x, dy, config, _last_winner)


def max_pool_shared_between_ties(x, dy, params, config):
    return _max_pool_tie_rule(x, dy, config, lambda winners: winners / winners.sum(axis=1, keepdims=True))


def dense_dw_from_output(x, dy, params, config):
    """dW = y.T @ dy with y = x @ W + b the forward's OUTPUT (x.T @ dy is right); only when the
    shapes let it pass as dW (a square W)."""
    W = params["W"]
    if W.shape[0] != W.shape[1]:
        return None
    return (x @ W + params["b"]).T @ dy


CONV_MISTAKES = [
    KnownMistake("dx computed with the flipped kernel W[::-1, ::-1]: the forward is a cross-correlation "
                 "(no flip), so each product x[s*oh + i, s*ow + j] * W[i, j] sends dy * W[i, j] back to "
                 "that same x cell: use W[i, j] unflipped in dx", conv_dx_with_flipped_kernel),
]

MAX_POOL_TIE_MISTAKES = [
    KnownMistake("on a tie dy went to the LAST maximum of the window: give it to the FIRST in row-major "
                 "order (what np.argmax returns), as the starter says", max_pool_to_last_tie),
    KnownMistake("on a tie dy was shared between the tied maxima (dy / count): give all of it to ONE "
                 "cell, the first in row-major order, as the starter says", max_pool_shared_between_ties),
]

DENSE_MISTAKES = [
    KnownMistake("dW from the cached OUTPUT: your grads['W'] equals y.T @ dy; dW = x.T @ dy uses the "
                 "forward's INPUT x (y = x W + b: dy/dW involves x)", dense_dw_from_output, array="W"),
]
