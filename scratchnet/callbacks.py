"""Callbacks: code that ``fit`` calls at fixed points of training.

``fit(..., callbacks=[EarlyStopping(patience=3), ModelCheckpoint("best.sn"), CSVLogger("log.csv")])``

Hooks (epochs count from 0; ``logs`` holds loss, accuracy, val_loss, val_accuracy so far)::

    on_train_begin(logs)
        on_epoch_begin(epoch, logs)
            on_batch_end(batch, logs)        # after every optimizer step
        on_epoch_end(epoch, logs)            # after validation
    on_train_end(logs)

Rules that keep training resumable and models saveable:

* A callback holds no open file, lambda or generator (it stays picklable): loggers open their
  file for each write.
* State that decides what happens next (EarlyStopping's best value and patience count,
  ModelCheckpoint's best value) lives on the model, in ``model.callback_state[callback.key]``,
  so ``model.save`` keeps it and ``scratchnet.load`` + ``fit(..., callbacks=[same callbacks])``
  continues exactly. The state records what it watches (``monitor`` and ``mode``): a callback
  watching something else under the same key starts fresh, and so does an EarlyStopping whose
  saved best weights are not the model's any more (a layer added or replaced since:
  ``Sequential.add`` forgets them) or were kept with other layers trainable (frozen or unfrozen
  since: restoring would write into a frozen layer). Two
  callbacks of one kind on one model need different ``key``s. Put
  ModelCheckpoint after EarlyStopping in the list, so a checkpoint holds that epoch's
  early-stopping state; with ``restore_best_weights`` the best weights are part of that state
  (and of every saved file).
* Not saved: the callbacks' own settings (patience, paths, ...): pass the same ones again.
* ``model.stop_training = True`` ends training after the current epoch.
* ``monitor`` is a str; before the first batch ``fit`` checks that it will log every value a
  callback watches (``watched_values``: val_* ones only with validation data), not after an epoch.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import string

from .layers.base import iter_layers
from .option_checks import check_bool, check_count, check_monitor, check_path, check_real
from .weights import weight_arrays


class Callback:
    """Base class: every hook does nothing. ``self.model`` is set by ``fit``."""

    model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("model", None)  # the model is saved on its own
        return state


class _Monitor(Callback):
    """A callback that watches one logged value (``monitor``) for improvement.

    improved  <=>  value < best - min_delta   (mode "min")
                   value > best + min_delta   (mode "max");  "auto": max for accuracy, else min
    """

    def __init__(self, monitor, mode, min_delta, key):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = check_monitor(monitor, type(self).__name__)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.min_delta = check_real(min_delta, "min_delta", type(self).__name__, least=0)
        self.key = key

    @property
    def state(self) -> dict:
        """This callback's saved state on the model (created on first use).

        A state that watched another value or in another mode (a fresh
        ``EarlyStopping("val_accuracy")`` after one on val_loss) is replaced by a fresh one:
        a best val_loss of 1.04 is no best accuracy. States saved before ``monitor`` and
        ``mode`` were recorded are taken as this callback's.
        """
        if self.model.callback_state is None:
            self.model.callback_state = {}
        watched = {"monitor": self.monitor, "mode": self.mode}
        state = self.model.callback_state.get(self.key)
        if state is None or any(state.get(name, value) != value for name, value in watched.items()):
            state = self.model.callback_state[self.key] = {"best": None}
        state.update(watched)
        return state

    def start_fresh(self) -> dict:
        """Forget this callback's saved state (best value, patience count, best weights)."""
        self.model.callback_state[self.key] = {"best": None, "monitor": self.monitor, "mode": self.mode}
        return self.model.callback_state[self.key]

    def watched_values(self) -> list[tuple[str, str]]:
        """(name, how it is watched) of each logged value this callback reads at an epoch's end:
        fit checks, before the first batch, that it will log every one (``check_watched_values``)."""
        return [(self.monitor, f"watches monitor={self.monitor!r}")]

    def value(self, logs) -> float:
        if self.monitor not in logs:
            raise KeyError(f"{type(self).__name__}: monitor={self.monitor!r} is not among the logged "
                           f"values {sorted(logs)}; validation values need validation_data or "
                           f"validation_split")
        return float(logs[self.monitor])

    def improved(self, value) -> bool:
        best = self.state["best"]
        if best is None or math.isnan(best):
            return not math.isnan(value)
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs in a row.

    ``restore_best_weights=True`` sets the weights back to the best epoch's when it stops
    (the best weights are kept in ``model.callback_state``, so they are saved with the model).
    State continues across ``fit`` calls and save/load; after a stop, the next ``fit`` starts a
    fresh patience count (the best value is kept). It starts fresh instead when the kept best
    weights are another model's (``model.add``, ``replace_head``) or were kept while other layers
    were trainable (``freeze``/``unfreeze`` since): restoring only the layers trainable now would
    mix a head of then with a body of now, weights no epoch was ever measured with.
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False, key="early_stopping"):
        super().__init__(monitor, mode, min_delta, key)
        self.patience = check_count(patience, "patience", "EarlyStopping", 0)
        self.restore_best_weights = check_bool(restore_best_weights, "restore_best_weights", "EarlyStopping")
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        state = self.state
        best_weights, trainable_now = state.get("best_weights"), trainable_layers(self.model)
        # Best weights of another model (model.add, replace_head), or kept while other layers were
        # trainable (frozen or unfrozen since: restoring would write into a frozen layer, which
        # freeze keeps bitwise unchanged in fit, or mix a head kept then with a body trained since)
        if best_weights is not None and (not same_weight_shapes(best_weights, weight_arrays(self.model))
                                         or state.get("trainable", trainable_now) != trainable_now):
            state = self.start_fresh()
        state.setdefault("wait", 0)
        if state.get("stopped"):
            state.update(wait=0, stopped=False)
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        check_count(epoch, "epoch", "EarlyStopping", 0)
        state, value = self.state, self.value(logs)
        if self.improved(value):
            state.update(best=value, wait=0, best_epoch=epoch)
            if self.restore_best_weights:
                state["best_weights"] = self.model.get_weights()  # copies
                state["trainable"] = trainable_layers(self.model)
            return
        state["wait"] += 1
        if state["wait"] > self.patience:
            state["stopped"] = True
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and state.get("best_weights") is not None:
                self.model.set_weights(state["best_weights"])


def check_watched_values(model, callbacks, validating: bool) -> None:
    """fit, before the first batch: every value a watcher (a callback, or the optimizer's
    schedule) reads at an epoch's end is one fit will log (_run_epoch: loss, accuracy for a
    classification loss, and val_ of each with validation), else a ValueError naming the watcher
    and what fit logs. Callbacks share one ``logs`` dict in list order: one of your own may add a
    value (``logs["val_f1"] = ...``, as in Keras) that later ones read, so scratchnet's callbacks
    are checked up to the first one of your own; the schedule reads the logs first: always checked.
    """
    logged = ["loss", "accuracy"] if model.loss.has_accuracy else ["loss"]
    logged += [f"val_{name}" for name in logged] if validating else []
    watchers = []
    for callback in callbacks:
        if not _is_scratchnet_class(callback):
            break  # it may write into the logs what the ones after it read
        watchers.append((type(callback).__name__, callback))
    schedule = getattr(model.optimizer, "schedule", None)
    watchers.append((f"{type(schedule).__name__} (the optimizer's schedule)", schedule))
    for label, watcher in watchers:
        for name, how in getattr(watcher, "watched_values", list)():
            if name not in logged:
                hint = "" if validating else " (val_* values need validation_data or validation_split)"
                raise ValueError(f"{model.name}: {label} {how}, which fit will not log: it logs "
                                 f"{', '.join(logged)}{hint}")


def _is_scratchnet_class(obj) -> bool:
    """True for an object of a class defined in scratchnet (EarlyStopping), False for a class of
    your own (a Callback subclass you wrote, even one of EarlyStopping)."""
    return type(obj).__module__.split(".")[0] == "scratchnet"


def trainable_layers(model) -> list[str]:
    """The names of the layers with weights that fit trains now (not frozen)."""
    return [layer.name for layer in iter_layers(model.layers) if layer.params and layer.trainable]


def forget_best_weights(model) -> None:
    """``Sequential.add`` (and so ``replace_head``): a callback state that kept best weights
    starts fresh, its best value and patience count too. A new head with the removed one's name
    and shape would pass ``same_weight_shapes`` and be "restored" to the removed head's weights;
    states without weights (a checkpoint's best value) are kept."""
    for key, state in list((model.callback_state or {}).items()):
        if isinstance(state, dict) and state.get("best_weights") is not None:
            watched = {name: state[name] for name in ("monitor", "mode") if name in state}
            model.callback_state[key] = {"best": None, **watched}


def same_weight_shapes(saved: dict, current: dict) -> bool:
    """True if ``saved`` and ``current`` ({"layer/param": array}) have the same names and shapes."""
    return saved.keys() == current.keys() and all(
        getattr(saved[name], "shape", None) == current[name].shape for name in current)


class ModelCheckpoint(_Monitor):
    """Save the model (atomically, ``model.save``) after each epoch, or only when ``monitor``
    improves (``save_best_only=True``). ``path`` may contain ``{epoch}`` (1-based) and any
    logged name, e.g. ``"ckpt-{epoch:03d}-{val_loss:.3f}.sn"``.

    Checked when it is made, not after an epoch of work: the folder exists and the template
    parses; fit checks each field (and, with save_best_only, ``monitor``) against the values it
    will log before the first batch (``watched_values``), and every epoch's end again. At the
    start of fit it checks that the model would save (``on_train_begin``), so a model that
    ``model.save`` refuses stops fit before the first batch, not after an epoch. ``trusted=True``
    saves as ``model.save(path, trusted=True)`` does, for files read back with ``trusted=True``.
    """

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto",
                 key="model_checkpoint", trusted=False):
        super().__init__(monitor, mode, 0.0, key)
        self.path = os.fspath(check_path(path, "ModelCheckpoint"))
        self.save_best_only = check_bool(save_best_only, "save_best_only", "ModelCheckpoint")
        self.trusted = check_bool(trusted, "trusted", "ModelCheckpoint")
        self.fields = _template_fields(self.path)
        _check_folder(self.path)

    def on_train_begin(self, logs=None):
        """Pickle the model in memory and check it as ``model.save`` would (no file written):
        a SerializationError now, before the first batch."""
        from .serialization import checked_payload

        checked_payload(self.model, self.trusted)

    def watched_values(self) -> list[tuple[str, str]]:
        """The path's fields (but {epoch}), and ``monitor`` only with save_best_only (else unread)."""
        fields = [(field, f"has {{{field}}} in its path {self.path!r}") for field in self.fields
                  if field != "epoch"]
        return fields + (super().watched_values() if self.save_best_only else [])

    def on_epoch_end(self, epoch, logs=None):
        check_count(epoch, "epoch", "ModelCheckpoint", 0)
        logs = logs or {}
        missing = [field for field in self.fields if field != "epoch" and field not in logs]
        if missing:
            raise KeyError(f"ModelCheckpoint: path {self.path!r} uses {{{missing[0]}}}, which is not "
                           f"among the logged values {sorted(logs)} (or epoch); validation values "
                           f"need validation_data or validation_split")
        path = self.path.format(epoch=epoch + 1, **logs)
        if not self.save_best_only:
            self.model.save(path, trusted=self.trusted)
            return
        value = self.value(logs)
        if not self.improved(value):
            return
        previous_best = self.state["best"]
        self.state["best"] = value  # before saving, so the file holds this epoch's state
        try:
            self.model.save(path, trusted=self.trusted)
        except BaseException:
            self.state["best"] = previous_best  # not saved: a later epoch must still beat the old best
            raise


_TEMPLATE_HELP = ("fields are {epoch} (1-based) and the logged values, e.g. "
                  "'ckpt-{epoch:03d}-{val_loss:.3f}.sn'; write {{ and }} for a literal brace")


def _template_fields(path: str) -> list[str]:
    """The field names of ``path`` as a ``str.format`` template, checked by formatting it once
    with stand-in values (epoch 1, every logged value 0.0)."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(path) if name is not None]
    except ValueError as error:  # "ck-{epoch.sn": expected '}' before end of string
        raise ValueError(f"ModelCheckpoint: path {path!r} is not a valid template ({error}); "
                         f"{_TEMPLATE_HELP}") from None
    for name in fields:
        if not name.isidentifier():  # {}, {0}, {epoch.real}, {loss[0]}
            raise ValueError(f"ModelCheckpoint: path {path!r} has the field {{{name}}}; {_TEMPLATE_HELP}")
    try:
        path.format(**{name: 1 if name == "epoch" else 0.0 for name in fields})
    except (ValueError, TypeError) as error:  # a format spec that does not fit: {loss:d}
        raise ValueError(f"ModelCheckpoint: path {path!r} cannot be filled in ({error}); "
                         f"{_TEMPLATE_HELP}") from None
    return fields


def _check_folder(path: str) -> None:
    """The folder a checkpoint goes into must exist now (unless its name holds a field)."""
    folder = os.path.dirname(os.path.expanduser(path))
    if folder and "{" not in folder and not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"ModelCheckpoint: the folder {folder!r} of {path!r} does not "
                                f"exist (create it first, e.g. os.makedirs)")


class MetricsLogger(Callback):
    """Append one line per epoch to ``path``: CSV with a header (``format="csv"``) or JSON
    lines (``format="json"``, one object per epoch). The file is opened for each write, so the
    logger holds no open file; an existing file is appended to (a resumed run continues it)."""

    def __init__(self, path, format="csv"):
        if format not in ("csv", "json"):
            raise ValueError(f"MetricsLogger: format must be 'csv' or 'json', got {format!r}")
        self.path = os.path.expanduser(os.fspath(check_path(path, type(self).__name__)))
        self.format = format

    def on_epoch_end(self, epoch, logs=None):
        check_count(epoch, "epoch", type(self).__name__, 0)
        row = {"epoch": epoch + 1, **{key: float(value) for key, value in (logs or {}).items()}}
        if self.format == "json":
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(json.dumps(row) + "\n")
            return
        fields = list(row)
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        if not new:
            with open(self.path, newline="", encoding="utf-8") as file:
                fields = next(csv.reader(file), fields)
        with open(self.path, "a", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=fields, extrasaction="ignore", restval="")
            if new:
                writer.writeheader()
            writer.writerow(row)


class CSVLogger(MetricsLogger):
    def __init__(self, path):
        super().__init__(path, format="csv")


class JSONLogger(MetricsLogger):
    def __init__(self, path):
        super().__init__(path, format="json")

