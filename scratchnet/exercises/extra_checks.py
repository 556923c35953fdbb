"""Checks of an exercise that the gradient check cannot make: the loss value, dropout's mask.

A gradient check compares a backward with its OWN forward, so a forward that is wrong in a way
its backward agrees with passes it: a loss without the max shift (NaN for logits of 1000, where
the check is off), a dropout mask that never changes. These checks look at the forward itself.
"""

from __future__ import annotations

import numpy as np

COMPARE_TOLERANCE = 1e-8   # relative, float64, scratchnet's layer vs the student's
MASK_BATCH = 200           # rows of ones the dropout mask is read from (y == 0 where dropped)


def loss_as_number(value):
    """The loss as a float: a Python or NumPy number, or a 0-d numeric array (np.asarray(...),
    .squeeze()); None for anything else (the gradient check's contract reports it)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]  # the NumPy scalar inside
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return None


def loss_value_messages(value, expected, batch_size) -> list[str]:
    """[] if the student's loss equals scratchnet's; the gradient check's contract reports a value
    that is not a number (an array, None)."""
    value = loss_as_number(value)
    if value is None:
        return []
    if np.isfinite(value) and abs(value - expected) <= COMPARE_TOLERANCE * max(abs(expected), 1):
        return []
    hint = ""
    if np.isfinite(value) and abs(value * batch_size - expected) < 1e-8 * abs(expected):
        hint = " (a factor 1/N: the mean over the batch is missing)"
    elif np.isfinite(value) and abs(value / batch_size - expected) < 1e-8 * abs(expected):
        hint = " (a factor N: divide by the batch size)"
    elif np.isinf(value):  # log(0) of an underflowed softmax, or log(inf) of exp without the shift
        hint = (" (an infinite log p: compute log p = z - max(z) - log(sum exp(z - max(z))) as written, "
                "the row maximum subtracted inside the exp; log(softmax(z)) is log(0) where a "
                "probability underflows to 0)")
    elif np.isnan(value):  # exp(1000) / exp(1000) = inf / inf, or a one-hot 0 * log(0) = 0 * -inf
        hint = (" (a NaN: exp overflowed (subtract the row maximum before exp), or t * log p met "
                "0 * log(0) = 0 * -inf where a probability underflowed to 0 (pick "
                "log_p[np.arange(n), labels] instead of multiplying by the one-hot rows))")
    return [f"forward: your loss {value:.10g}, expected {expected:.10g}{hint}"]


def _dropout_mask(cls, case, sample_shape, seed, layer=None):
    """(layer, kept) after one training forward of ones (MASK_BATCH, *sample_shape): kept = y != 0,
    the generator set to default_rng(seed) first (a given ``layer`` is reused, NOT reseeded if
    seed is None)."""
    if layer is None:
        layer = cls(**case.config)
        layer.build(sample_shape, rng=np.random.default_rng(0), dtype=np.float64)
    if seed is not None:
        layer.set_rng(np.random.default_rng(seed))
    y = layer.forward(np.ones((MASK_BATCH, *sample_shape)), training=True)
    return layer, np.asarray(y) != 0


def dropout_mask_messages(cls, case, sample_shape) -> list[str]:
    """The mistakes of a mask that does not vary as a dropout mask must: [] if none.

    Each sample draws its own mask; each forward draws a new one; the masks come from the layer's
    generator (another seed, another mask; the same seed, the same mask)."""
    layer, first = _dropout_mask(cls, case, sample_shape, seed=1)
    rows = first.reshape(MASK_BATCH, -1)
    if np.all(rows == rows[0]):
        return ["training: every sample of the batch got the same mask: draw one mask of the input's "
                "whole shape x.shape (N, ...), not of x.shape[1:] (one per sample)"]
    _, second = _dropout_mask(cls, case, sample_shape, seed=None, layer=layer)
    if np.array_equal(first, second):
        return ["training: two training forwards dropped the same units: draw a new mask at every "
                "forward from self.random_generator() (not once, kept and reused; not from a "
                "generator made anew with a fixed seed at each call)"]
    _, other_seed = _dropout_mask(cls, case, sample_shape, seed=2)
    _, same_seed = _dropout_mask(cls, case, sample_shape, seed=1)
    if np.array_equal(first, other_seed) or not np.array_equal(first, same_seed):
        return ["training: the mask does not follow the layer's generator (layer.set_rng(default_rng(1)) "
                "and (2) must give different masks, (1) twice the same): draw it from "
                "self.random_generator(), never from np.random or a generator of your own"]
    return []


def dropout_checks(cls, case, x) -> list[str]:
    """Inference is the identity; training drops about `rate` of the units, a new mask for every
    sample and every forward, drawn from the layer's generator, and scales the rest."""
    layer = cls(**case.config)
    layer.build(x.shape[1:], rng=np.random.default_rng(0), dtype=np.float64)
    layer.set_rng(np.random.default_rng(0))
    if not case.training:
        y = layer.forward(x, training=False)
        if not isinstance(y, np.ndarray) or y.shape != x.shape or not np.array_equal(y, x):
            return ["inference (training=False) must return x unchanged: no mask, no scaling"]
        return []
    mistakes = dropout_mask_messages(cls, case, x.shape[1:])
    if mistakes:
        return mistakes
    rate = case.config["rate"]
    y = layer.forward(np.ones((MASK_BATCH, *x.shape[1:])), training=True)
    dropped = float(np.mean(y == 0))
    if abs(dropped - rate) > 0.05:
        return [f"training: {dropped:.0%} of the units were dropped, expected about rate = {rate:.0%}"]
    kept = y[y != 0]
    if kept.size and not np.allclose(kept, 1 / (1 - rate)):
        return [f"training: a kept unit of 1.0 came out as {kept.flat[0]:.4g}, expected 1 / (1 - rate) = "
                f"{1 / (1 - rate):.4g} (inverted dropout scales at training time)"]
    return []


def residual_at_zero_messages(cls, case, x) -> list[str]:
    """The residual block's backward where z = x W1 + b1 is exactly 0 (relu's kink, derivative 0).

    The gradient check cannot see this: a central difference across a kink is inconclusive, and
    random weights never give z == 0. Here b1 = 0 and x has a zero row, so z's row is exactly 0;
    dx and db1 are compared with the starter's math on the student's own weights:
        dz = (dy @ W2.T) * (z > 0)     dx = dz @ W1.T + dy     db1 = sum_n dz
    """
    layer = cls(**case.config)
    layer.build(x.shape[1:], rng=np.random.default_rng(0), dtype=np.float64)
    layer.params["b1"] = np.zeros_like(layer.params["b1"])
    W1, W2 = layer.params["W1"], layer.params["W2"]
    z = x @ W1  # + b1 = 0
    y = layer.forward(x.copy(), training=False)
    dy = np.random.default_rng(1).standard_normal(np.shape(y))
    dx = layer.backward(dy.copy())
    dz = (dy @ W2.T) * (z > 0)
    expected = {"dx": dz @ W1.T + dy, "grads['b1']": dz.sum(axis=0)}
    yours = {"dx": dx, "grads['b1']": layer.grads.get("b1")}
    wrong = [what for what in expected
             if not np.allclose(yours[what], expected[what], rtol=1e-10, atol=1e-12)]
    if not wrong:
        return []
    return [f"{' and '.join(wrong)} wrong where z = x W1 + b1 is exactly 0 (here b1 = 0 and x[0] = 0): "
            "relu'(0) is taken as 0, as the starter says: the mask is (z > 0), not (z >= 0)"]
