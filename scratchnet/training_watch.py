"""What the training loop watches for, and what it says when it sees it.

* A NaN/inf loss: which came first on the batch, the input or the output of which layer, and the
  remedy (clean the data, scale it, or a smaller learning rate): ``diagnose_non_finite``;
  ``rows_of_x_with_non_finite`` names the bad samples as rows of the data ``fit`` was given.
* Layers whose every gradient is exactly 0 at the second training step (a layer of one's own
  whose backward never fills ``self.grads``, dead ReLUs): ``warn_unfilled_gradients``.
"""

from __future__ import annotations

import warnings

import numpy as np

from .caller import user_stacklevel
from .input_checks import LARGE_INPUT, non_finite_rows
from .layer_tree import caches_kept
from .layers.base import iter_layers


def remedy_for_overflow(x) -> str:
    """What to try when a finite batch ``x`` led to a NaN/inf: scale it if its values are large
    (then a smaller learning rate would only hide the cause), else a smaller learning rate."""
    largest = float(np.max(np.abs(x), initial=0.0))
    if largest > LARGE_INPUT:
        return (f"input values up to {largest:.3g}: scale your images or features to about [0, 1] "
                f"(x / 255) or standardise them")
    return "try a smaller learning rate"


def diagnose_non_finite(model, x) -> str:
    """Which went non-finite first on batch ``x``: the input, or the output of which layer; and
    the remedy (clean the data, scale it, or a smaller learning rate)."""
    bad = ~np.isfinite(x)
    if bad.any():
        samples = non_finite_rows(x)
        return (f"the input batch contains {int(bad.sum())} NaN/inf value(s) (in batch sample(s) "
                f"{samples[:5].tolist()}); clean the data, e.g. np.nan_to_num(x) or drop those rows")
    remedy = remedy_for_overflow(x)
    out = x
    with caches_kept(model.layers):  # inference mode: no running statistic, no cache is touched
        for layer in model.layers:
            out = layer.forward(out, training=False)
            if not np.all(np.isfinite(out)):
                return (f"the input is finite; the output of layer {layer.name!r} ({type(layer).__name__}) "
                        f"is the first to contain NaN/inf ({remedy})")
    return (f"the input and every layer's output are finite, so the loss itself overflowed (check "
            f"the targets, and {remedy})")


def rows_of_x_with_non_finite(x_batch, batch) -> str:
    """'' or " (rows [36, ...] of x hold NaN/inf)": the batch's bad samples as rows of the data
    fit was given (``batch`` holds their row numbers: the batch positions alone, after shuffling,
    tell the student nothing)."""
    rows = np.sort(batch[non_finite_rows(x_batch)])
    return f" (rows {rows[:5].tolist()} of x hold NaN/inf)" if len(rows) else ""


def layers_without_gradient(layers) -> list:
    """The trainable layers with params whose every gradient is exactly 0 (one pass over each;
    a layer with a MISSING gradient is left to the optimizer step's error)."""
    silent = []
    for layer in iter_layers(layers):
        grads = [layer.grads.get(name) for name in layer.params]
        if not layer.trainable or not grads or any(grad is None for grad in grads):
            continue
        if not any(np.any(grad) for grad in grads):
            silent.append(layer)
    return silent


def warn_unfilled_gradients(layers, owner: str) -> None:
    """At the SECOND step of training: warn, once, about trainable layers whose every gradient
    is exactly 0 (their parameters do not move).

    ``build`` creates the gradients as zeros, so a layer of your own whose backward never fills
    ``self.grads`` (or fills zeros) trains silently: the warning points at the layer contract.
    A scratchnet layer fills its gradients, so there the cause is that none reaches it (dead
    ReLUs, zero data). Why the second step and not the first: a layer initialised with zero
    weights (``kernel_initializer="zeros"``) passes no gradient back at the first step, but does
    once the first update has moved it. A warning, not an error: a layer can be dead on purpose.
    Frozen layers and layers without params are never looked at.
    """
    silent = layers_without_gradient(layers)
    own = [layer for layer in silent if not type(layer).__module__.startswith("scratchnet.")]
    ours = [layer for layer in silent if layer not in own]
    if own:
        _warn_silent(own, owner, "does the layer's backward fill self.grads[name] for every "
                     "params[name] (the layer contract)? scratchnet.gradcheck.check_layer(layer) tells. "
                     "(If no gradient can reach the layer, e.g. the ReLUs after it are all off, this "
                     "is expected.)")
    if ours:
        _warn_silent(ours, owner, "no gradient reaches them (are their ReLU units all off, a bias far "
                     "below 0? are the weights after them, or the data, all zeros? are the samples of "
                     "the batch weighted 0?)")


def _warn_silent(layers, owner: str, cause: str) -> None:
    names = ", ".join(f"{layer.name!r} ({type(layer).__name__})" for layer in layers)
    warnings.warn(f"{owner}: at the second training step, every gradient of layer(s) {names} is exactly "
                  f"0, so the step does not change them: {cause}", UserWarning, stacklevel=user_stacklevel())
