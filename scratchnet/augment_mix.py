"""Label-mixing augmentation: Mixup and CutMix, which return soft labels (N, K).

Called as ``x, y = transform(x, y, rng)`` like every transform in ``scratchnet.augment``. One
mixing weight per batch (as the papers' reference code) and a random pairing ``perm`` of the
batch with itself:

    Mixup  (Zhang et al. 2018):  lam ~ Beta(alpha, alpha)
        x = lam x + (1 - lam) x[perm]            y = lam Y + (1 - lam) Y[perm]
    CutMix (Yun et al. 2019):    lam ~ Beta(alpha, alpha); a box of sides H sqrt(1 - lam),
        W sqrt(1 - lam) at a uniform random centre (clipped at the border) is pasted from x[perm];
        lam' = 1 - box area / (H W)              y = lam' Y + (1 - lam') Y[perm]

Y is y as one-hot rows: integer labels need ``num_classes``; soft labels (N, K) are used as
they are. ``CrossEntropy`` accepts the soft labels that come out.
"""

from __future__ import annotations

import numpy as np

from .augment import check_batch
from .layers.spatial import positive_int
from .option_checks import check_real


def soft_labels(y, num_classes, dtype, who: str) -> np.ndarray:
    """Integer labels (N,) -> one-hot (N, K) with K = num_classes; rows (N, K) pass through."""
    if y is None:
        raise TypeError(f"{who}: mixes labels as well as images, so it needs them: call it as "
                        f"transform(x, y, rng) with integer labels (N,) or soft labels (N, K), got y=None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # one column is no set of class weights
        raise ValueError(f"{who}: expected integer labels (N,) or soft labels (N, K), got shape {y.shape}; "
                         f"for labels of shape (N, 1) pass y.ravel()")
    if y.ndim == 2:
        if num_classes is not None and y.shape[1] != num_classes:
            raise ValueError(f"{who}: soft labels have {y.shape[1]} columns but num_classes={num_classes}")
        return y.astype(dtype)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{who}: expected integer labels (N,) or soft labels (N, K), got shape {y.shape} "
                         f"dtype {y.dtype}")
    if num_classes is None:
        raise ValueError(f"{who}: integer labels need num_classes=K to become soft labels "
                         f"(e.g. {who}(alpha, num_classes=10)), or pass one-hot rows (N, K)")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{who}: labels must be in [0, {num_classes - 1}], got {y.min()} .. {y.max()}")
    return np.eye(num_classes, dtype=dtype)[y]


def _num_classes(num_classes, who):
    """None (labels come as rows) or a positive int."""
    return None if num_classes is None else positive_int(num_classes, "num_classes", who)


def _alpha(alpha, who):
    """The Beta(alpha, alpha) parameter: a number > 0 (``check_real``)."""
    return check_real(alpha, "alpha", who, above=0)


class Mixup:
    """Blend each image and its label with another image of the batch (see the module docstring)."""

    def __init__(self, alpha: float = 0.2, num_classes: int | None = None):
        self.alpha, self.num_classes = _alpha(alpha, "Mixup"), _num_classes(num_classes, "Mixup")

    def __call__(self, x, y, rng):
        x = check_batch(x, y, rng, "Mixup")
        labels = soft_labels(y, self.num_classes, x.dtype, "Mixup")
        lam = rng.beta(self.alpha, self.alpha)
        perm = rng.permutation(len(x))
        x = (lam * x + (1 - lam) * x[perm]).astype(x.dtype)
        return x, (lam * labels + (1 - lam) * labels[perm]).astype(x.dtype)

    def __repr__(self):
        return f"Mixup(alpha={self.alpha}, num_classes={self.num_classes})"


class CutMix:
    """Paste a random box from another image of the batch; labels mixed by area (module docstring)."""

    def __init__(self, alpha: float = 1.0, num_classes: int | None = None):
        self.alpha, self.num_classes = _alpha(alpha, "CutMix"), _num_classes(num_classes, "CutMix")

    def __call__(self, x, y, rng):
        x = check_batch(x, y, rng, "CutMix")
        labels = soft_labels(y, self.num_classes, x.dtype, "CutMix")
        _, height, width, _ = x.shape
        lam = rng.beta(self.alpha, self.alpha)
        perm = rng.permutation(len(x))
        cut = np.sqrt(1.0 - lam)
        box_h, box_w = int(height * cut), int(width * cut)
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        top, bottom = np.clip([cy - box_h // 2, cy + box_h // 2], 0, height)
        left, right = np.clip([cx - box_w // 2, cx + box_w // 2], 0, width)
        out = x.copy()
        out[:, top:bottom, left:right] = x[perm, top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (height * width)    # the area actually kept
        return out, (lam * labels + (1 - lam) * labels[perm]).astype(x.dtype)

    def __repr__(self):
        return f"CutMix(alpha={self.alpha}, num_classes={self.num_classes})"
