"""Classification metrics computed from labels and predictions (or logits).

    >>> confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], n_classes=3)
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])

Rows are the true class, columns the predicted class: ``cm[i, j]`` counts samples of class i
predicted as j, so the diagonal holds the correct predictions.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .layers.activations import log_softmax
from .losses import BinaryCrossEntropy, get_loss


def _labels(values, name: str, who: str) -> np.ndarray:
    """1-D non-negative int labels; ``who`` (the metric) and ``name`` (the argument) in the error."""
    values = np.asarray(values)
    if values.ndim != 1 or values.dtype.kind not in "iu" or (values.size and values.min() < 0):
        raise ValueError(f"{who}: {name} must be a 1-D array of non-negative integer class labels, "
                         f"got shape {values.shape} and dtype {values.dtype}{_labels_hint(values, name)}")
    return values.astype(np.int64)


def _labels_hint(values, name: str) -> str:
    """A hint for labels of another shape or kind ('' if no common cause): a column (N, 1) of
    labels, of logits or of probabilities, scores (N, n_classes), whole numbers stored as floats."""
    is_whole = values.dtype.kind in "biuf" and values.size and np.all(np.mod(values, 1) == 0)
    if values.ndim == 2 and values.shape[1] == 1 and is_whole:
        return f"; for labels of shape (N, 1) pass {name}.ravel()"
    if values.ndim == 2 and values.shape[1] == 1:  # logits or probabilities: say which takes which
        return ("; for one column of logits (N, 1) pass metrics.predictions(logits), 1 where the logit "
                "is > 0 (for a column of probabilities p: (p[:, 0] > 0.5).astype(int))")
    if values.ndim == 2:
        return "; for scores (N, n_classes) pass metrics.predictions(scores), the argmax of each row"
    if values.ndim == 1 and values.dtype.kind == "f" and is_whole and values.min() >= 0:
        return f"; the labels are whole numbers stored as floats: pass {name}.astype(int)"
    return ""


def _is_binary(loss) -> bool:
    """Whether ``loss`` (a Loss, any name ``losses.get_loss`` takes, or None) is a binary cross
    entropy, a subclass of one's own under another name too: decided by class, not by name."""
    return loss is not None and isinstance(get_loss(loss), BinaryCrossEntropy)


def predictions(logits, loss=None) -> np.ndarray:
    """Predicted class per row, logits (N, n_classes) -> labels (N,) ints: the largest score's index.

    One column (N, 1) (Dense(1) trained with binary_cross_entropy) holds the logit z of class 1:
    the label is 1 where z > 0 (sigmoid(z) > 0.5) else 0, as Keras' predict_classes gave for one
    sigmoid output (the argmax of one column would be 0 for every sample).
    ``loss="binary_cross_entropy"`` (or that Loss: ``Sequential.predict_classes`` passes its own): every
    column is a yes/no label of its own, z > 0 each: (N, K) 0/1 ints, (N,) for one column.
    """
    logits, binary = np.asarray(logits), _is_binary(loss)
    if logits.ndim != 2:
        raise ValueError(f"predictions: logits must have shape (N, n_classes), got {logits.shape}")
    if binary and logits.shape[1] > 1:
        return (logits > 0).astype(np.int64)
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).astype(np.int64)
    return np.argmax(logits, axis=1)


def probabilities(logits, loss=None) -> np.ndarray:
    """Class probabilities from logits (N, n_classes): the softmax of each row (rows sum to 1).

    One column (N, 1) holds the logit z of class 1 (binary_cross_entropy): sigmoid(z), the
    probability of class 1, kept as (N, 1) like Keras' predict on a sigmoid output (a softmax over
    one column would be 1 for every sample). ``loss="binary_cross_entropy"``: sigmoid(z) of every
    column on its own (one yes/no per label), (N, K).
    """
    logits, binary = np.asarray(logits), _is_binary(loss)
    if logits.ndim != 2:
        raise ValueError(f"probabilities: logits must have shape (N, n_classes), got {logits.shape}")
    if logits.shape[1] == 1 or binary:
        return expit(logits)            # 1 / (1 + exp(-z)), without overflow
    return np.exp(log_softmax(logits))  # exp(z - logsumexp(z)): no overflow


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose predicted label equals the true label."""
    y_true, y_pred = _labels(y_true, "y_true", "accuracy"), _labels(y_pred, "y_pred", "accuracy")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"accuracy: y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    return float(np.mean(y_true == y_pred)) if len(y_true) else 0.0


def top_k_accuracy(y_true, logits, k: int = 5) -> float:
    """Fraction of samples whose true class is among the k largest logits (N, K).

    Ranked as ``argmax`` ranks them, so that k = 1 is exactly ``accuracy(y_true, argmax)``: a NaN
    score counts as the largest (as in ``predictions``, ``CrossEntropy.accuracy`` and torch.topk; a
    diverged model's NaN rows are wrong, not lucky), and equal scores rank by class index, first first.
    """
    y_true, logits = _labels(y_true, "y_true", "top_k_accuracy"), np.asarray(logits)
    if logits.ndim != 2 or len(logits) != len(y_true):
        raise ValueError(f"top_k_accuracy: logits must have shape ({len(y_true)}, n_classes), "
                         f"got {logits.shape}")
    if not 1 <= k <= logits.shape[1]:
        raise ValueError(f"top_k_accuracy: k must be between 1 and {logits.shape[1]}, got {k}")
    if len(y_true) and y_true.max() >= logits.shape[1]:
        raise ValueError(f"top_k_accuracy: y_true holds label {y_true.max()} but logits have "
                         f"{logits.shape[1]} classes (labels 0 to {logits.shape[1] - 1})")
    return float(np.mean(_ranks_of_true_class(logits, y_true) < k)) if len(y_true) else 0.0


def _ranks_of_true_class(scores, labels):
    """Rank (N,) of each row's true class, 0 for the first: how many classes rank ahead of it.

    Ranked as ``argmax`` ranks, without a sort: class j is ahead of the true class c when its score
    is NaN and c's is not (argmax takes NaN for the maximum), when its score is larger, or when the
    two are equal (or both NaN) and j < c (ties by index, first first). The true class is among the
    top k exactly when fewer than k classes are ahead of it.
    """
    rows = np.arange(len(labels))
    true_scores = scores[rows, labels][:, None]                       # (N, 1)
    before_true = np.arange(scores.shape[1])[None, :] < labels[:, None]  # (N, K): j < c
    if np.issubdtype(scores.dtype, np.floating):
        is_nan, true_is_nan = np.isnan(scores), np.isnan(true_scores)
    else:  # integers have no NaN
        is_nan = true_is_nan = np.zeros(scores.shape, dtype=bool)
    larger = (scores > true_scores) | (is_nan & ~true_is_nan)       # NaN > x and NaN == x are False
    tied = (scores == true_scores) | (is_nan & true_is_nan)
    ahead = larger | (tied & before_true)
    return ahead.sum(axis=1)


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """Counts (n_classes, n_classes): ``cm[i, j]`` = samples of true class i predicted as j.

    ``n_classes`` defaults to 1 + the largest label seen in either array.
    """
    y_true = _labels(y_true, "y_true", "confusion_matrix")
    y_pred = _labels(y_pred, "y_pred", "confusion_matrix")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_matrix: y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    largest = int(max(y_true.max(initial=-1), y_pred.max(initial=-1)))
    if n_classes is None:
        n_classes = largest + 1
    elif largest >= n_classes:
        raise ValueError(f"confusion_matrix: label {largest} is out of range for n_classes={n_classes}")
    # Each (true, predicted) pair is one cell of a flattened n x n table; bincount counts them
    # all in one pass instead of a Python loop over samples.
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def per_class_accuracy(cm) -> np.ndarray:
    """Recall of each class from a confusion matrix: diagonal / row sum (NaN for empty rows)."""
    cm = np.asarray(cm, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(cm) / cm.sum(axis=1)


def per_class_lines(cm, class_names=None) -> list[str]:
    """One line per class: name, accuracy (recall) and correct/total, e.g. ``"  cat   0.412  (41/100)"``.

    cm : confusion matrix (K, K) (rows: true class); class_names : K names (default 0..K-1).
    A class with no sample shows "-" instead of an accuracy.
    """
    cm = np.asarray(cm)
    names = [str(name) for name in (class_names if class_names is not None else range(len(cm)))]
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or len(names) != len(cm):
        raise ValueError(f"per_class_lines: expected a square confusion matrix and one name per row, "
                         f"got shape {cm.shape} and {len(names)} names")
    width = max(map(len, names))
    lines = []
    for name, correct, total, value in zip(names, np.diag(cm), cm.sum(axis=1), per_class_accuracy(cm)):
        shown = "    -" if total == 0 else f"{value:.3f}"
        lines.append(f"  {name:<{width}}  {shown}  ({int(correct)}/{int(total)})")
    return lines
