"""Training health: a callback that watches the inside of a network while it trains.

    >>> monitor = HealthMonitor(probe=x_train[:256], every=20)
    >>> model.fit(x_train, y_train, callbacks=[monitor])
    >>> monitor.warnings                      # plain-word messages, [] for a healthy run
    >>> monitor.plot("health.png")

Every ``every`` optimizer steps (steps counted by ``model.optimizer.iterations``, so they keep
counting across ``fit`` calls), for every layer with parameters it records

* the update-to-weight ratio (CS231n's rule of thumb: about 1e-3)::

      ratio = ||W_t - W_{t-1}|| / ||W_{t-1}||      W: the layer's "W" (all its params if none)

  ``W_t - W_{t-1}`` is the update the optimizer applied at step t (``-lr * g`` for plain SGD;
  Adam's rescaled step, momentum and weight decay included), measured, not recomputed: the
  monitor copies the weights after step t-1 and compares after step t. Biases are left out
  when there is a ``W``: they start at zero, so their ratio is meaningless at first.
* gradient statistics of the step t batch: ``||dL/dW||``, ``||dL/dW|| / ||W_t||``, mean, std,
  the fraction of exact zeros and a histogram (``bins`` counts over [min, max]).

and, when a fixed ``probe`` batch is given, for every top-level layer the statistics of its
output on that batch (inference mode, weights after step t): mean, std, fraction of zeros,
histogram; and for every ReLU (``Activation("relu")`` or a layer with ``activation="relu"``)
the **dead fraction**::

      dead fraction = #{units c : y[n, ..., c] <= 0 for every probe sample n and position} / #units

A unit is one feature of a dense layer or one channel of a convolution's maps (the channel's
filter is shared by all positions): its output is never positive on the probe batch, so
ReLU'(z) = 0 everywhere and its weights receive no gradient from this data. ReLUs inside a
container (Residual, ...) are read from their forward cache ``y`` after the probe pass.
Without a probe, activations and dead fractions are not recorded.

Warnings, in plain words (``warnings.warn(..., HealthWarning)`` once per problem and layer,
all collected in ``monitor.warnings``):

* update ratio above ``max_update_ratio``: the learning rate is too high;
* gradient norm below ``vanish * ||W||``: the gradient vanished (e.g. every ReLU above is dead);
* gradient norm above ``explode * ||W||``, or non-finite: the gradient exploded;
* more than ``dead_fraction`` of a ReLU layer's units dead on the probe batch;
* a non-finite output on the probe batch, naming the first layer that produced it.

A NaN/inf loss: ``fit`` raises ``NonFiniteLossError`` before the update (and before any
callback hook runs), with the first layer whose output went non-finite in its message. Catch it
and hand it to ``monitor.report_error(error)``, which adds it to the warnings (and writes the
plot if ``plot_path`` is set); ``scratchnet train --monitor`` does this. Often the monitor has
already warned earlier, because the probe pass or the gradients went non-finite first.

The monitor is picklable (no open file) and stores nothing on the model: its records are plain
lists, dicts, floats and small arrays on the monitor itself.
"""

from __future__ import annotations

import math
import warnings as _warnings

import numpy as np

from .callbacks import Callback
from .layer_tree import caches_kept
from .option_checks import check_count, check_real
from .training import diagnose_non_finite


class HealthWarning(RuntimeWarning):
    """A training-health problem found by ``HealthMonitor``."""


def _named_leaves(layers, prefix=""):
    """(path name, layer) for every layer in the tree, e.g. "residual/dense"."""
    for layer in layers:
        yield prefix + layer.name, layer
        yield from _named_leaves(layer.sublayers(), f"{prefix}{layer.name}/")


def _weight_of(store: dict) -> np.ndarray:
    """The layer's "W" (float64, flat), or all its arrays end to end if it has no "W"."""
    if "W" in store:
        return np.asarray(store["W"], dtype=np.float64).ravel()
    return np.concatenate([np.asarray(value, dtype=np.float64).ravel() for value in store.values()])


def value_stats(values: np.ndarray, bins: int) -> dict:
    """mean, std, fraction of exact zeros, norm, and a histogram of ``values`` (finite ones)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    stats = {"mean": float(finite.mean()) if finite.size else math.nan,
             "std": float(finite.std()) if finite.size else math.nan,
             "zero_fraction": float(np.mean(values == 0)) if values.size else math.nan,
             "norm": float(np.linalg.norm(values)),
             "finite": bool(finite.size == values.size)}
    counts, edges = np.histogram(finite, bins=bins) if finite.size else (np.zeros(bins, int), None)
    stats["histogram"] = (counts, edges)
    return stats


def dead_fraction(y: np.ndarray) -> float:
    """Share of units (last axis) whose ReLU output is <= 0 for every sample and position."""
    y = np.asarray(y)
    alive = (y.reshape(-1, y.shape[-1]) > 0).any(axis=0)  # (units,)
    return float(np.count_nonzero(~alive) / alive.size)


def is_relu(layer) -> bool:
    return getattr(layer, "activation", None) == "relu"


class HealthMonitor(Callback):
    """Callback: update/weight ratios, gradient and activation statistics, dead ReLUs, warnings.

    probe : a fixed batch (N, *input_shape) for activations and dead ReLUs (None: skip them)
    every : record after every ``every``-th optimizer step (steps every, 2 every, ...)
    bins : histogram bins;  plot_path : write ``plot()`` there when training ends (or fails)
    max_update_ratio, vanish, explode, dead_fraction : the warning thresholds (module docstring)
    verbose : also issue each warning with ``warnings.warn`` (else only ``monitor.warnings``)
    """

    def __init__(self, probe=None, every: int = 10, bins: int = 20, plot_path=None,
                 max_update_ratio: float = 0.2, vanish: float = 1e-7, explode: float = 1e3,
                 dead_fraction: float = 0.5, verbose: bool = True):
        check_count(every, "every", "HealthMonitor", 1)
        check_count(bins, "bins", "HealthMonitor", 1)
        self.probe = None if probe is None else np.asarray(probe)
        if self.probe is not None and (self.probe.ndim < 2 or len(self.probe) == 0):
            raise ValueError(f"HealthMonitor: probe must be a non-empty batch (N, ...), got shape "
                             f"{self.probe.shape}")
        self.every, self.bins = int(every), int(bins)
        self.plot_path = plot_path
        # inf switches the update-ratio and exploding-gradient checks off (nothing is above it)
        self.max_update_ratio = check_real(max_update_ratio, "max_update_ratio", "HealthMonitor", above=0,
                                           allow_inf=True)
        self.vanish = check_real(vanish, "vanish", "HealthMonitor", above=0)
        self.explode = check_real(explode, "explode", "HealthMonitor", above=0, allow_inf=True)
        self.dead_threshold = check_real(dead_fraction, "dead_fraction", "HealthMonitor", least=0, below=1)
        self.verbose = bool(verbose)
        self.records: list[dict] = []   # one per recorded step, see record()
        self.warnings: list[str] = []
        self._warned: set = set()
        self._previous: dict | None = None  # {layer path: W after step t-1} (float64 copies)

    # ------------------------------------------------------------------ the callback hooks
    def on_train_begin(self, logs=None):
        self._snapshot_if_next_is_recorded()

    def on_batch_end(self, batch, logs=None):
        step = self.model.optimizer.iterations  # steps taken, this one included
        if step % self.every == 0:
            self.record(step, (logs or {}).get("loss"))
        self._snapshot_if_next_is_recorded()

    def on_train_end(self, logs=None):
        """Drop the weight copy; write the plot to ``plot_path`` if set (also after an error)."""
        self._previous = None
        if self.plot_path is not None and self.records:
            self.plot(self.plot_path)

    def report_error(self, error) -> None:
        """Record a ``NonFiniteLossError`` that ended ``fit`` (its message names the layer)."""
        self._warn(("nonfinite-loss", None), f"the loss became NaN/inf, training stopped: {error}")
        self.on_train_end()

    def __getstate__(self):
        state = super().__getstate__()  # without the model (saved on its own)
        state["_previous"] = None       # a weight copy for the next step only
        return state

    # ------------------------------------------------------------------ measuring
    def _layers(self):
        """(path, layer) of every trainable layer with parameters."""
        return [(path, layer) for path, layer in _named_leaves(self.model.layers)
                if layer.params and layer.trainable]

    def _snapshot_if_next_is_recorded(self):
        if (self.model.optimizer.iterations + 1) % self.every == 0:
            self._previous = {path: _weight_of(layer.params).copy() for path, layer in self._layers()}
        else:
            self._previous = None

    def record(self, step: int, loss=None) -> dict:
        """Measure now (after optimizer step ``step``) and append to ``self.records``::

            {"step": int, "loss": float | None,
             "layers": {path: {"update_ratio", "weight_norm", "grad_norm", "grad_ratio", "grad": stats}},
             "activations": {name: stats},  "dead": {name: dead fraction}}

        ``stats`` as ``value_stats`` returns (mean, std, zero_fraction, norm, finite, histogram).
        """
        entry = {"step": int(step), "loss": None if loss is None else float(loss),
                 "layers": {}, "activations": {}, "dead": {}}
        for path, layer in self._layers():
            weight = _weight_of(layer.params)
            grad_values = _weight_of(layer.grads) if layer.grads else np.zeros_like(weight)
            weight_norm = float(np.linalg.norm(weight))
            grad = value_stats(grad_values, self.bins)
            ratio = math.nan
            if self._previous is not None and path in self._previous and weight_norm > 0:
                before = self._previous[path]                        # W_{t-1}
                ratio = float(np.linalg.norm(weight - before) / np.linalg.norm(before)) \
                    if np.linalg.norm(before) > 0 else math.nan
            entry["layers"][path] = {"update_ratio": ratio, "weight_norm": weight_norm,
                                     "grad_norm": grad["norm"],
                                     "grad_ratio": grad["norm"] / weight_norm if weight_norm else math.nan,
                                     "grad": grad}
        if self.probe is not None:
            self._record_activations(entry)
        self.records.append(entry)
        self._check(entry)
        return entry

    def _record_activations(self, entry):
        model = self.model
        out = model._prepare_input(self.probe, check_range=False)
        any_nonfinite = False
        with caches_kept(model.layers):  # the probe's caches go; a training forward's stay
            for layer in model.layers:
                out = layer.forward(out, training=False)
                stats = entry["activations"][layer.name] = value_stats(out, self.bins)
                if is_relu(layer):
                    entry["dead"][layer.name] = dead_fraction(out)
                any_nonfinite = any_nonfinite or not stats["finite"]  # value_stats has looked already
            for path, layer in _named_leaves(model.layers):
                if "/" in path and is_relu(layer) and "y" in layer.cache:  # inside a container
                    entry["dead"][path] = dead_fraction(layer.cache["y"])
        if any_nonfinite:
            self._warn(("nonfinite-output", None),
                       f"step {entry['step']}: on the probe batch, {diagnose_non_finite(model, self.probe)}")

    # ------------------------------------------------------------------ judging
    def _warn(self, key, message) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        self.warnings.append(message)
        if self.verbose:
            _warnings.warn(message, HealthWarning, stacklevel=2)

    def _check(self, entry):
        step = entry["step"]
        for path, info in entry["layers"].items():
            ratio, grad_ratio = info["update_ratio"], info["grad_ratio"]
            if not info["grad"]["finite"] or grad_ratio > self.explode:
                self._warn(("explode", path),
                           f"step {step}: the gradient of layer {path!r} exploded (||grad|| = "
                           f"{info['grad_norm']:.3g}, {grad_ratio:.3g} x ||W||); lower the learning rate "
                           f"or clip gradients")
            elif grad_ratio < self.vanish:
                self._warn(("vanish", path),
                           f"step {step}: the gradient of layer {path!r} vanished (||grad|| = "
                           f"{info['grad_norm']:.3g}, {grad_ratio:.3g} x ||W||): it has stopped learning; "
                           f"look for dead ReLUs or saturated units above it")
            if ratio > self.max_update_ratio:  # False for NaN
                self._warn(("update", path),
                           f"step {step}: the updates of layer {path!r} are {ratio:.3g} of its weights "
                           f"(rule of thumb: about 1e-3); the learning rate is too high")
        for name, fraction in entry["dead"].items():
            if fraction > self.dead_threshold:
                self._warn(("dead", name),
                           f"step {step}: {fraction:.0%} of the ReLUs of layer {name!r} are dead (never "
                           f"positive on the probe batch), so they pass no gradient; lower the learning "
                           f"rate, check the bias initialisation, or try leaky_relu")

    # ------------------------------------------------------------------ reading and plotting
    def series(self, quantity: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of ``quantity`` for layer ``name`` over the records.

        quantity : "update_ratio", "grad_norm", "grad_ratio", "weight_norm" (per parameter layer),
            "dead" (per ReLU layer), or "activation_mean" / "activation_std" /
            "activation_zero_fraction" (per top-level layer, with a probe).
        """
        steps, values = [], []
        for entry in self.records:
            if quantity == "dead":
                value = entry["dead"].get(name)
            elif quantity.startswith("activation_"):
                value = entry["activations"].get(name, {}).get(quantity[len("activation_"):])
            else:
                value = entry["layers"].get(name, {}).get(quantity)
            if value is not None:
                steps.append(entry["step"])
                values.append(value)
        return np.array(steps, dtype=int), np.array(values, dtype=float)

    def plot(self, save_path=None):
        """Three panels over the steps: update/weight ratio per layer (log axis, the 1e-3 line),
        dead ReLU fraction per ReLU layer, gradient norm per layer (log axis)."""
        from .viz import _figure, _finish

        figure = _figure(13, 3.8)
        panels = figure.subplots(1, 3)
        names = list(dict.fromkeys(name for entry in self.records for name in entry["layers"]))
        relus = list(dict.fromkeys(name for entry in self.records for name in entry["dead"]))
        for name in names:
            for axes, quantity in ((panels[0], "update_ratio"), (panels[2], "grad_norm")):
                steps, values = self.series(quantity, name)
                keep = np.isfinite(values) & (values > 0)  # a log axis shows no 0 and no NaN
                axes.plot(steps[keep], values[keep], ".-", label=name)
        for name in relus:
            panels[1].plot(*self.series("dead", name), ".-", label=name)
        panels[0].axhline(1e-3, color="black", linestyle="--", linewidth=1, label="1e-3 rule of thumb")
        titles = ("update / weight ratio", "dead ReLU fraction" + ("" if relus else " (no probe or ReLU)"),
                  "gradient norm")
        ylabels = ("||W_t - W_{t-1}|| / ||W_{t-1}||", "share of units never positive", "||dL/dW||")
        for axes, title, ylabel in zip(panels, titles, ylabels):
            axes.set_title(title)
            axes.set_xlabel("optimizer step")
            axes.set_ylabel(ylabel)
            axes.grid(alpha=0.3)
            if axes.lines:
                axes.legend(fontsize=7)
        panels[0].set_yscale("log")
        panels[1].set_ylim(-0.05, 1.05)
        if any(line.get_xdata().size for line in panels[2].lines):
            panels[2].set_yscale("log")
        if self.warnings:
            figure.suptitle(f"{len(self.warnings)} warning(s): {self.warnings[0][:90]}", color="red",
                            fontsize=9)
        else:
            figure.suptitle("training health: no warnings")
        return _finish(figure, save_path)
