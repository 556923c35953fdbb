"""Losses computed from logits (the raw output of the last layer).

Every loss has ``forward(logits, y) -> float`` (the mean over the batch) and
``backward() -> dlogits`` with the shape of ``logits``. Fusing the final activation into the
loss gives a simple gradient and avoids overflow and log(0):

softmax cross-entropy, labels k (or one-hot / probability rows t):
    L = mean_n [ logsumexp(z_n) - z_n[k_n] ]       dz = (softmax(z) - t) / N
    (that is for rows t summing to 1; for any rows L = -mean_n sum_k t_nk log softmax(z_n)_k
    and dz_n = (softmax(z_n) sum_k t_nk - t_n) / N, as in torch)
mean squared error:
    L = mean over all elements of (z - t)^2         dz = 2 (z - t) / z.size
binary cross-entropy with logits, targets t in [0, 1]:
    L = mean of max(z, 0) - z t + log(1 + exp(-|z|))     dz = (sigmoid(z) - t) / z.size

Per-sample weights w (N,) (``forward(logits, y, weights=w)``; fit's sample_weight and
class_weight) multiply each sample's term before the mean, and its gradient row likewise:
    L = mean_n w_n L_n        dz_n = w_n dz_n       (w = 1 gives the plain loss)
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
from scipy.special import expit

from .caller import user_stacklevel
from .layers.activations import log_softmax
from .layers.base import missing_attribute
from .option_checks import check_real, lower_case_hint


def target_shape_hint(logits_shape, y) -> str:
    """A hint for targets whose shape differs from the logits' ('' if no common cause)."""
    if y.shape == logits_shape[:1] and logits_shape[1:] == (1,):
        return "; for one output per sample pass y.reshape(-1, 1)"
    if y.ndim == 1 and len(logits_shape) == 2 and y.dtype.kind in "iu":
        return (f"; integer class labels need loss='cross_entropy' (or one-hot rows: "
                f"np.eye({logits_shape[1]})[y])")
    return ""


def class_count_hint(n_logits, labels) -> str:
    """A hint for integer labels out of [0, n_logits - 1] ('' for negative labels)."""
    if n_logits == 1:
        return ("; one output with 0/1 labels is a binary problem: use loss='binary_cross_entropy', "
                "or Dense(2) for two classes")
    if labels.min() == 1 and labels.max() == n_logits:
        return f"; the labels run from 1 to {n_logits}: count classes from 0, pass y - 1"
    if labels.min() >= 0:
        classes = int(labels.max()) + 1
        return (f"; for {classes} classes the last layer needs {classes} outputs (e.g. Dense({classes})), "
                f"one per class")
    return ""


def label_rows_hint(n_samples, n_logits, y_shape) -> str:
    """A hint for 2-D labels whose shape is not (N, n_logits) ('' if no common cause)."""
    if len(y_shape) != 2 or y_shape[0] != n_samples:
        return ""
    if y_shape[1] == 1:
        return "; for labels of shape (N, 1) pass y.ravel()"
    return (f"; the rows hold {y_shape[1]} classes but the model has {n_logits} outputs: the last layer "
            f"needs one output per class (e.g. Dense({y_shape[1]}))")


class Loss:
    """The base class: a loss of your own subclasses it and writes ``forward`` and ``backward``
    (and sets ``name``; ``has_accuracy`` and ``accuracy`` for a classification loss)."""

    name = "loss"
    has_accuracy = False

    def __init__(self):
        self.cache: dict = {}

    def forward(self, logits: np.ndarray, y: np.ndarray, weights=None) -> float:
        """The loss of logits (N, ...) against targets y, a float (the mean over the batch);
        caches what ``backward`` needs.

        weights: per-sample weights (N,) or None. fit passes ``weights=`` only when it is given
        sample_weight or class_weight (evaluate: sample_weight); a loss whose forward has no
        ``weights`` argument trains without them, and with them fails with a TypeError naming its
        forward (``check_takes_weights`` says so in words). To support them, multiply sample n's
        term and its gradient row by w_n, as the losses below do: ``self._sample_weights(weights,
        logits)`` checks the shape and returns w shaped to broadcast over a sample's axes (None
        for None).
        """
        raise NotImplementedError(
            f"{type(self).__name__} must write forward(self, logits, y, weights=None) -> float: the "
            f"mean loss of logits (N, ...) against targets y over the batch, keeping in self.cache "
            f"what backward needs (a Loss subclass writes forward and backward)")

    def backward(self) -> np.ndarray:
        """dL/dlogits, with the shape of the logits of the last ``forward``."""
        raise NotImplementedError(
            f"{type(self).__name__} must write backward(self) -> dL/dlogits: an array of the shape of "
            f"the logits of the last forward, from what forward kept in self.cache")

    def __getattr__(self, attribute):
        """Only reached for a missing attribute: a subclass whose ``__init__`` skipped
        ``super().__init__()`` has no ``cache``, and is told so."""
        raise missing_attribute(self, attribute, Loss, ("cache",))

    def accuracy(self, logits: np.ndarray, y: np.ndarray) -> float | None:
        return None

    def _sample_weights(self, weights, logits) -> np.ndarray | None:
        """Per-sample weights (N,) shaped to broadcast over a sample's axes, or None."""
        if weights is None:
            return None
        w = np.asarray(weights, dtype=logits.dtype)
        if w.shape != logits.shape[:1]:
            raise ValueError(f"{self.name}: expected {logits.shape[0]} sample weights, got shape {w.shape}")
        return w.reshape(-1, *([1] * (logits.ndim - 1)))

    def _check_logits(self, logits) -> np.ndarray:
        logits = np.asarray(logits)
        if logits.ndim < 1 or logits.dtype.kind != "f":
            raise ValueError(f"{self.name}: expected floating logits (N, ...), got "
                             f"shape {logits.shape} dtype {logits.dtype}")
        return logits

    def __getstate__(self):
        return {**self.__dict__, "cache": {}}

    def __repr__(self):
        return f"{type(self).__name__}()"


class CrossEntropy(Loss):
    """Softmax cross-entropy on logits (N, K); labels as ints (N,) or rows (N, K).

    L = -mean_n sum_k t_nk log softmax(z_n)_k, and its gradient, per row n,

        dz_n = (softmax(z_n) * sum_k t_nk - t_n) / N      = (softmax(z_n) - t_n) / N  when sum_k t_nk = 1

    (integer labels, one-hot and probability rows: the short form, computed as such; rows that
    do not sum to 1 warn, and get the long form, torch's gradient too).

    label_smoothing e (as torch.nn.CrossEntropyLoss): targets t -> (1 - e) t + e / K (row sums
    s -> (1 - e) s + e), so dz = (softmax(z) - (1 - e) t - e / K) / N for rows summing to 1. Ask
    for it with ``CrossEntropy(label_smoothing=0.1)``.
    """

    name = "cross_entropy"
    has_accuracy = True

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = check_real(label_smoothing, "label_smoothing", self.name, least=0, most=1)

    def targets(self, logits: np.ndarray, y) -> np.ndarray:
        """Return targets as a (N, K) probability matrix in the logits' dtype."""
        y = np.asarray(y)
        n, k = logits.shape
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{self.name}: expected integer class labels (N,) or one-hot rows "
                            f"(N, {k}), got dtype {y.dtype}")
        if y.ndim == 1:
            if y.shape[0] != n:
                raise ValueError(f"{self.name}: expected {n} labels, got {y.shape[0]}")
            if y.dtype.kind not in "iu" and not np.all(np.mod(y, 1) == 0):
                raise ValueError(f"{self.name}: integer class labels expected, got dtype {y.dtype}")
            labels = y.astype(np.int64)
            if labels.size and (labels.min() < 0 or labels.max() >= k):
                raise ValueError(f"{self.name}: labels must be in [0, {k - 1}] for {k} logits, got values "
                                 f"from {labels.min()} to {labels.max()}{class_count_hint(k, labels)}")
            one_hot = np.zeros((n, k), dtype=logits.dtype)
            one_hot[np.arange(n), labels] = 1
            return one_hot
        if y.shape != (n, k):
            raise ValueError(f"{self.name}: expected labels of shape ({n},) or ({n}, {k}), got {y.shape}"
                             f"{label_rows_hint(n, k, y.shape)}")
        if n and not self.__dict__.get("warned_label_rows"):  # the row sums only until it has warned
            row_sums = y.sum(axis=1)
            if not np.allclose(row_sums, 1, atol=1e-3):
                self.warned_label_rows = True  # once per loss object, not once per batch
                bad = int(np.argmax(np.abs(row_sums - 1)))
                warnings.warn(f"{self.name}: label rows should be probabilities summing to 1, but row {bad} "
                              f"sums to {row_sums[bad]:.4g}; the loss is then not a cross-entropy (pass "
                              f"integer labels (N,), or one-hot / soft-label rows)",
                              UserWarning, stacklevel=user_stacklevel())
        return y.astype(logits.dtype, copy=False)

    def forward(self, logits, y, weights=None):
        logits = self._check_logits(logits)
        if logits.ndim != 2:
            raise ValueError(f"{self.name}: expected logits of shape (N, classes), got {logits.shape}")
        t = self.targets(logits, y)
        w = self._sample_weights(weights, logits)
        row_sums = t.sum(axis=1, keepdims=True)  # (N, 1): 1 for labels, one-hot and probability rows
        row_sums = None if np.all(row_sums == 1) else row_sums  # None: backward's short form
        smoothing = getattr(self, "label_smoothing", 0.0)  # losses saved before the option existed
        if smoothing:
            t = (1 - smoothing) * t + smoothing / logits.shape[1]   # t = (1 - e) t + e / K
            if row_sums is not None:
                row_sums = (1 - smoothing) * row_sums + smoothing   # their sums: (1 - e) s + e
        log_probs = log_softmax(logits)  # z - logsumexp(z), shifted by max(z): no overflow, no log(0)
        self.cache = {"log_probs": log_probs, "t": t, "w": w, "row_sums": row_sums}
        per_class = _target_times(t, log_probs)  # t * log p
        if w is not None:
            return float(-(w * per_class).sum() / logits.shape[0]) + 0.0  # mean_n w_n L_n
        return float(-per_class.sum() / logits.shape[0]) + 0.0  # + 0.0: a perfect fit is 0.0, not -0.0

    def backward(self):
        log_probs, t = self.cache["log_probs"], self.cache["t"]
        probs = np.exp(log_probs)  # softmax(z)
        row_sums = self.cache.get("row_sums")
        if row_sums is not None:  # some row of t does not sum to exactly 1
            probs = probs * row_sums  # softmax(z) * sum_k t_k
        grad = (probs - t) / log_probs.shape[0]  # (softmax(z) - t) / N for rows summing to 1
        w = self.cache.get("w")
        return grad if w is None else grad * w

    def accuracy(self, logits, y):
        y = np.asarray(y)
        labels = y if y.ndim == 1 else y.argmax(axis=1)
        return float(np.mean(logits.argmax(axis=1) == labels))

    def __repr__(self):
        smoothing = getattr(self, "label_smoothing", 0.0)
        return f"CrossEntropy(label_smoothing={smoothing:g})" if smoothing else "CrossEntropy()"


def _target_times(t, values):
    """t * values (same shape), with a target of exactly 0 adding exactly 0 even where the value is
    infinite, where 0 * inf would be NaN. In the cross-entropy, a class the target gives no weight
    has log p = -inf for a -inf logit (or a float32 shift z - max(z) that overflowed); in the binary
    cross-entropy z * t has z = +inf. torch's losses give the finite (or inf) loss too. Every other
    target is multiplied as usual: a NaN target gives a NaN loss (so fit stops with the weights
    intact) and a negative soft target counts with its sign."""
    return np.multiply(t, values, out=np.zeros_like(values), where=t != 0)


class MeanSquaredError(Loss):
    """Mean of (z - t)^2 over every element; t has the shape of the logits."""

    name = "mse"

    def forward(self, logits, y, weights=None):
        logits = self._check_logits(logits)
        t = np.asarray(y, dtype=logits.dtype)
        if t.shape != logits.shape:
            raise ValueError(f"{self.name}: expected targets of shape {logits.shape}, got {t.shape}"
                             f"{target_shape_hint(logits.shape, np.asarray(y))}")
        diff = logits - t
        w = self._sample_weights(weights, logits)
        self.cache = {"diff": diff, "w": w}
        return float(np.mean(diff * diff if w is None else w * diff * diff))

    def backward(self):
        diff = self.cache["diff"]
        w = self.cache.get("w")
        scale = 2 / diff.size  # 2 / size first: 2 * diff overflows for |diff| > 1.7e38 (float32)
        return diff * scale if w is None else w * diff * scale


class BinaryCrossEntropy(Loss):
    """Sigmoid cross-entropy on logits; targets in [0, 1] with the shape of the logits.

    A (N,) target vector for (N, 1) logits is accepted (as the column (N, 1)); no other shape
    is reshaped: targets (2, 3) for logits (3, 2) hold as many values, but not in the same places.
    """

    name = "binary_cross_entropy"
    has_accuracy = True

    def _targets(self, logits, y):
        t = np.asarray(y, dtype=logits.dtype)
        if t.ndim == 1 and logits.shape == (len(t), 1):
            t = t[:, None]  # (N,) -> (N, 1)
        if t.shape != logits.shape:
            hint = ("; for one output per sample pass y.reshape(-1, 1)"
                    if logits.shape[1:] == (1,) and t.size == len(logits) else "")
            raise ValueError(f"{self.name}: expected targets of shape {logits.shape}, got {t.shape}{hint}")
        return t

    def forward(self, logits, y, weights=None):
        logits = self._check_logits(logits)
        t = self._targets(logits, y)
        if t.size and (t.min() < 0 or t.max() > 1):  # e.g. class labels 0..K-1 given to a binary loss
            raise ValueError(f"{self.name}: targets must be in [0, 1] (0/1 labels or probabilities), got "
                             f"values from {t.min():g} to {t.max():g}; for labels of more than two "
                             f"classes use loss='cross_entropy' with one output per class")
        w = self._sample_weights(weights, logits)
        # log(1 + exp(-|z|)) never overflows; max(z, 0) - z t completes the stable form
        elementwise = np.maximum(logits, 0) - _target_times(t, logits) + np.log1p(np.exp(-np.abs(logits)))
        self.cache = {"logits": logits, "t": t, "w": w}
        return float(np.mean(elementwise if w is None else w * elementwise))

    def backward(self):
        logits, t = self.cache["logits"], self.cache["t"]
        grad = ((expit(logits) - t) / logits.size).astype(logits.dtype, copy=False)
        w = self.cache.get("w")
        return grad if w is None else grad * w

    def accuracy(self, logits, y):
        t = self._targets(logits, y)
        return float(np.mean((logits > 0) == (t > 0.5)))


LOSSES = {"cross_entropy": CrossEntropy, "mse": MeanSquaredError,
          "binary_cross_entropy": BinaryCrossEntropy}


# Keras' names for the same losses: (the name here, how it differs from Keras' default)
KERAS_NAMES = {
    "sparse_categorical_crossentropy": ("cross_entropy",
                                        "it takes logits (no softmax layer) and integer labels"),
    "categorical_crossentropy": ("cross_entropy", "it takes logits (no softmax layer) and one-hot rows"),
    "binary_crossentropy": ("binary_cross_entropy", "it takes logits (no sigmoid layer) and 0/1 targets"),
    "mean_squared_error": ("mse", "the mean of (output - target)^2"),
}


def check_takes_weights(loss) -> None:
    """Raise a TypeError naming ``loss`` if its forward has no ``weights`` argument: sample_weight
    and class_weight reach a loss as ``forward(logits, y, weights=w)`` (see ``Loss.forward``)."""
    parameters = inspect.signature(loss.forward).parameters
    takes_any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if "weights" not in parameters and not takes_any_keyword:
        raise TypeError(f"{loss.name}: {type(loss).__name__}.forward{inspect.signature(loss.forward)} "
                        f"takes no weights, so sample_weight and class_weight cannot weight its "
                        f"samples; give it a weights=None argument (see scratchnet.losses.Loss.forward)")


def get_loss(loss) -> Loss:
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]()
    raise ValueError(f"unknown loss {loss!r}; expected a Loss or one of {', '.join(LOSSES)}"
                     f"{loss_name_hint(loss)}")


def loss_name_hint(name) -> str:
    """'' or a hint for a loss name in another spelling ('MSE') or Keras' name for it."""
    if not isinstance(name, str):
        return ""
    lowered = name.lower()
    if lowered in KERAS_NAMES:
        ours, note = KERAS_NAMES[lowered]
        return f" (Keras' {name!r} is {ours!r} here: {note})"
    return lower_case_hint(name, LOSSES)
