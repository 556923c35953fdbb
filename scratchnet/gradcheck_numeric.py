"""Central differences: the numeric side of a gradient check, on a plain scalar function.

Everything here takes a scalar function ``f`` and a float64 array ``x`` and knows nothing of
layers, models or losses: ``check_layer``, ``check_loss`` and ``check_model`` (gradcheck.py,
gradcheck_model.py) build the ``f`` and hand it over. Kept apart from them so the finite
difference math can be read, and tested, on its own.

    df/dx_i  ~  (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)          error O(eps^2)

``x`` must be float64: it is nudged by eps in place, and in float32 the round-off of a central
difference (~1e-7 / eps) would swamp the comparison.

Kinks (ReLU, max): the one-sided slopes (f(x+h) - f(x)) / h and (f(x) - f(x-h)) / h differ
when a kink lies within h of x. ``kink_aware_gradient`` re-checks such an element with a step
1000x smaller (``KINK_STEP_FACTOR``) and marks it inconclusive if the slopes still differ.

Large arrays are checked on a random sample of their entries (``sample_indices``); a difference
below ``central_difference_noise`` cannot be told from round-off.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6
KINK_STEP_FACTOR = 1e-3    # a kinked element is re-checked with eps * this


def numerical_gradient(f, x: np.ndarray, eps: float = EPS, indices=None) -> np.ndarray:
    """Central-difference gradient of the scalar function ``f(x)`` at ``x``.

    ``x`` (a float64 array) is perturbed in place one element at a time and restored, so
    ``f`` may also read ``x`` through a reference (a layer's parameter, say).
    ``indices``: optional list of index tuples to check; other entries are left at 0.
    """
    x = _float64_array(x, "numerical_gradient")
    grad = np.zeros_like(x)
    for index in (indices if indices is not None else np.ndindex(x.shape)):
        f_plus, f_minus = _nudged(f, x, index, eps)
        grad[index] = (f_plus - f_minus) / (2 * eps)
    return grad


def _float64_array(x, who):
    """``x`` as an array, refused unless float64: it is nudged by eps in place (float32 rounds it)."""
    x = np.asarray(x)
    if x.dtype != np.float64:
        raise TypeError(f"{who} needs a float64 array, got {x.dtype}")
    return x


def _nudged(f, x, index, eps):
    """(f(x + eps e_i), f(x - eps e_i)): x[index] nudged up, then down, then put back."""
    original = x[index]
    x[index] = original + eps
    f_plus = f(x)
    x[index] = original - eps
    f_minus = f(x)
    x[index] = original
    return f_plus, f_minus


def _one_sided(f, x, index, eps, f0):
    """(f(x + eps e_i) - f(x)) / eps and (f(x) - f(x - eps e_i)) / eps."""
    f_plus, f_minus = _nudged(f, x, index, eps)
    return (f_plus - f0) / eps, (f0 - f_minus) / eps


def _is_kink(d_plus, d_minus):
    # smooth f: d+ - d- = eps * f'' (~1e-6); a kink inside [x - eps, x + eps]: a jump of O(slope)
    return abs(d_plus - d_minus) > 1e-3 * max(abs(d_plus), abs(d_minus)) + 1e-5


def kink_aware_gradient(f, x, eps=EPS, indices=None, progress=None, name=""):
    """Central differences that notice kinks: returns (gradient, inconclusive mask).

    Where the two one-sided slopes differ (a ReLU/max kink within eps of x) the element is
    re-checked with eps * 1e-3; if they still differ it is marked inconclusive.
    """
    x = _float64_array(x, "kink_aware_gradient")
    grad, kinks = np.zeros_like(x), np.zeros(x.shape, dtype=bool)
    indices = list(np.ndindex(x.shape)) if indices is None else indices
    f0 = f(x)
    for done, index in enumerate(indices):
        d_plus, d_minus = _one_sided(f, x, index, eps, f0)
        if _is_kink(d_plus, d_minus):
            d_plus, d_minus = _one_sided(f, x, index, eps * KINK_STEP_FACTOR, f0)
            kinks[index] = _is_kink(d_plus, d_minus)
        grad[index] = (d_plus + d_minus) / 2
        if progress is not None and done % 20 == 0:
            progress.update(name, done, len(indices))
    return grad, kinks


def sample_indices(shape, max_elements, rng):
    """(indices, mask): all indices, or a random subset of ``max_elements`` of them."""
    size = int(np.prod(shape))
    if max_elements is None or size <= max_elements:
        return list(np.ndindex(tuple(shape))), np.ones(shape, dtype=bool)
    flat = np.sort(rng.choice(size, size=max_elements, replace=False))
    indices = [tuple(int(i) for i in np.unravel_index(i, shape)) for i in flat]
    mask = np.zeros(shape, dtype=bool)
    mask.flat[flat] = True
    return indices, mask


def central_difference_noise(terms_size: float, eps: float) -> float:
    """Round-off bound of (f(x+h) - f(x-h)) / 2h for f a sum of terms of total size ``terms_size``.

    Each f carries ~machine-eps * sum|terms| of round-off, so the difference quotient carries
    about eps_64 * sum|terms| / h; a margin of 4 covers the accumulation. Differences below this
    cannot be told from round-off (e.g. 2e-9 on a gradient of 1e-3 when sum|f terms| ~ 20).
    """
    return 4 * float(np.finfo(np.float64).eps) * float(terms_size) / eps
