"""evaluate: a model's mean loss (and accuracy) over a whole dataset, in inference mode.

Separate from model.py (which calls it as ``Sequential.evaluate``) to keep that file short, and
from training.py because nothing here trains: the layers run with ``training=False`` (BatchNorm's
running statistics, no dropout), in batches, and every forward cache is dropped as soon as its
layer has run (no backward follows). A training forward's caches made before evaluate stay as
they were (``layer_tree.caches_kept``), so a backward can still follow that forward.

    loss     = sum over batches of loss(batch) * len(batch) / N     (the mean over all N samples)
    accuracy = sum over batches of accuracy(batch) * len(batch) / N
"""

from __future__ import annotations

import numpy as np

from . import input_checks as checks
from . import layer_tree, one_thread, option_checks
from .losses import check_takes_weights


def evaluate(model, x, y, batch_size=256, verbose=0, sample_weight=None) -> dict:
    """``{"loss": mean loss}`` (and ``"accuracy"`` for classification losses) over (x, y).

    x : (N, *input_shape); y : (N,) labels or (N, K) targets, as the compiled loss takes them;
    sample_weight : (N,) or None, each sample's weight in the loss. ``verbose=1`` prints the
    result on one line.
    """
    if model.loss is None:
        raise RuntimeError(f"{model.name}: call compile(optimizer, loss) before evaluate")
    one_thread.refuse_other_threads(model, "evaluate")
    batch_size = option_checks.check_count(batch_size, "batch_size", model.name, 1)
    x = model._prepare_input(x)
    checks.check_not_empty(x, model.name, "evaluate: x")
    y = model._check_targets(x, y)
    if sample_weight is not None:
        check_takes_weights(model.loss)
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    loss_sum, correct_sum = 0.0, 0.0
    with layer_tree.caches_kept(model.layers):  # a training forward's caches stay for its backward
        for start in range(0, len(x), batch_size):
            logits = model._run_layers(x[start:start + batch_size], keep_caches=False)
            targets = y[start:start + batch_size]
            weighted = {} if weights is None else {"weights": weights[start:start + batch_size]}
            loss_sum += model.loss.forward(logits, targets, **weighted) * len(logits)
            correct_sum += (model.loss.accuracy(logits, targets) or 0.0) * len(logits)
    results = {"loss": loss_sum / len(x)}
    if model.loss.has_accuracy:
        results["accuracy"] = correct_sum / len(x)
    if verbose:
        print(" - ".join(f"{key}: {value:.4f}" for key, value in results.items()))
    return results
