"""Per-sample loss weights for ``fit``: ``sample_weight`` times ``class_weight[label]``.

Each sample's loss counts ``w_n`` times in the batch loss ``mean_n w_n * L_n`` (training.py):

    w_n = sample_weight[n] * class_weight.get(class of sample n, 1.0)

The class of a sample is its label (N,) or (N, 1), or the largest entry of a one-hot or
probability row (N, classes); multi-label 0/1 rows and non-whole labels have no one class and
are refused with a pointer to ``sample_weight``. Kept apart from the training loop because the
rules (what a class is, which weights are allowed) are their own small topic; training.py
imports ``per_sample_weights`` and nothing here imports training.py.
"""

from __future__ import annotations

import numbers

import numpy as np

from .losses import check_takes_weights


def per_sample_weights(model, y, sample_weight, class_weight):
    """Per-sample loss weights (N,) from sample_weight and class_weight, or None."""
    if sample_weight is None and class_weight is None:
        return None
    check_takes_weights(model.loss)  # a loss of one's own without weights=: say so before training
    weights = np.ones(len(y))
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != (len(y),):
            raise ValueError(f"{model.name}: sample_weight must have shape ({len(y)},), "
                             f"got {sample_weight.shape}")
        weights = weights * sample_weight
    if class_weight is not None:
        if not isinstance(class_weight, dict):
            raise TypeError(f"{model.name}: class_weight must be a dict {{class: weight}}, got "
                            f"{type(class_weight).__name__}")
        not_classes = [key for key in class_weight if not isinstance(key, numbers.Real)]
        if not_classes:  # {"0": 2.0} would match no label and weigh nothing
            raise TypeError(f"{model.name}: class_weight keys must be class indices (ints), got "
                            f"{not_classes[0]!r}")
        labels = labels_for_class_weight(model, y)
        factor = np.array([class_weight.get(int(label), 1.0) for label in labels], dtype=np.float64)
        weights = weights * factor
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"{model.name}: sample and class weights must be finite and >= 0")
    return weights


def labels_for_class_weight(model, y) -> np.ndarray:
    """The class of each sample that class_weight looks up, (N,):

    * labels (N,), or one column (N, 1) (Dense(1) + binary_cross_entropy): the labels themselves;
    * one-hot or probability rows (N, classes) for cross_entropy: the largest entry of each row.

    Refused: rows of several 0/1 targets for binary_cross_entropy (multi-label: a sample may be
    in several classes or none) and targets that are not whole numbers (no class to look up)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2 and model.loss.name != "binary_cross_entropy":
        return y.argmax(axis=1)
    if y.ndim != 1:
        raise ValueError(f"{model.name}: fit's class_weight needs one class per sample, labels (N,) or "
                         f"(N, 1), but the targets have shape {y.shape} for loss {model.loss.name!r}; "
                         f"give the weight of each sample as sample_weight (N,) instead")
    if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        raise ValueError(f"{model.name}: fit's class_weight needs whole-number class labels, but the "
                         f"targets hold values such as {y[np.mod(y, 1) != 0][0]:g}; give the weight of "
                         f"each sample as sample_weight (N,) instead")
    return y
