"""Callbacks: hook order, EarlyStopping, ModelCheckpoint, CSV/JSON loggers, pickling, bad input."""

import csv
import json
import os
import pickle

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    MetricsLogger,
    ModelCheckpoint,
)
from scratchnet.layers import Dense, Flatten

FLOAT_HINT = r" \(a float: pass int\(\.\.\.\), or compute it with //\)$"  # after a whole-valued float


def blobs(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    return rng.normal(size=(n, 2, 2, 1)) + y[:, None, None, None], y


def model_for(seed=0):
    model = sn.Sequential([Flatten(), Dense(6, activation="relu"), Dense(2)], input_shape=(2, 2, 1),
                          seed=seed, dtype="float64")
    return model.compile(sn.Adam(lr=1e-2), "cross_entropy").build()


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))


def test_hooks_are_called_in_order_with_the_logs():
    x, y = blobs(40)
    recorder = Recorder()
    model = model_for()
    model.fit(x, y, epochs=2, batch_size=16, validation_split=0.2, callbacks=[recorder], verbose=0)
    keys = ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert recorder.calls == [("train_begin",),
                              ("epoch_begin", 0), ("batch_end", 0), ("batch_end", 1), ("epoch_end", 0, keys),
                              ("epoch_begin", 1), ("batch_end", 0), ("batch_end", 1), ("epoch_end", 1, keys),
                              ("train_end",)]
    assert recorder.model is model
    recorder.calls.clear()
    model.fit(x, y, epochs=1, batch_size=40, callbacks=[recorder], verbose=0)
    assert recorder.calls[1] == ("epoch_begin", 2)                         # epochs keep counting


def feed(callback, model, values, monitor="val_loss"):
    """Call on_epoch_end with scripted values, changing the weights each epoch (to epoch number)."""
    callback.set_model(model)
    callback.on_train_begin({})
    stopped_at = None
    for epoch, value in enumerate(values):
        model.set_weights({k: np.full_like(v, epoch) for k, v in model.get_weights().items()})
        model.stop_training = False
        callback.on_epoch_end(epoch, {monitor: value})
        if model.stop_training:
            stopped_at = epoch
            break
    return stopped_at


@pytest.mark.parametrize("values, patience, min_delta, mode, stop, best", [
    ([1.0, 0.9, 0.95, 0.96, 0.97], 2, 0.0, "auto", 4, 0.9),      # 2 non-improving epochs allowed, 3rd stops
    ([1.0, 0.9, 0.95, 0.96, 0.97], 3, 0.0, "min", None, 0.9),
    ([1.0, 0.95, 0.92, 0.91, 0.9], 1, 0.05, "min", 4, 0.92),     # improvements under min_delta do not count
    ([0.5, 0.6, 0.55, 0.58], 1, 0.0, "max", 3, 0.6),
    ([1.0, 1.0], 0, 0.0, "min", 1, 1.0),                          # equal is not better
])
def test_early_stopping_counts_patience(values, patience, min_delta, mode, stop, best):
    model = model_for()
    stopper = EarlyStopping(patience=patience, min_delta=min_delta, mode=mode, restore_best_weights=True)
    assert feed(stopper, model, values) == stop
    state = model.callback_state["early_stopping"]
    assert state["best"] == best
    if stop is not None:
        assert stopper.stopped_epoch == stop
        best_epoch = values.index(best)
        assert all(np.all(v == best_epoch) for v in model.get_weights().values())   # restored
    else:
        assert all(np.all(v == len(values) - 1) for v in model.get_weights().values())


def test_early_stopping_mode_auto_maximises_accuracy_and_ends_fit(tmp_path):
    assert EarlyStopping(monitor="val_accuracy").mode == "max"
    assert EarlyStopping(monitor="loss").mode == "min"
    x, y = blobs()
    model = model_for()
    callbacks = [EarlyStopping(monitor="loss", min_delta=1e9), ModelCheckpoint(tmp_path / "last.sn")]
    history = model.fit(x, y, epochs=10, callbacks=callbacks, verbose=0)
    assert len(history["loss"]) == 2 and model.epochs_trained == 2 and not hasattr(model, "stop_training")
    saved = sn.load(tmp_path / "last.sn")                                  # saved while stopping
    assert saved.epochs_trained == 2 and "stop_training" not in vars(saved)
    assert saved.callback_state["early_stopping"]["stopped"] is True


def test_early_stopping_bad_input():
    with pytest.raises(ValueError, match="EarlyStopping: patience must be an int >= 0, got -1"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode must be 'auto', 'min' or 'max', got 'up'"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="^EarlyStopping: min_delta must be a finite number >= 0, got -0.1$"):
        EarlyStopping(min_delta=-0.1)
    stopper = EarlyStopping()
    stopper.set_model(model_for())
    with pytest.raises(ValueError, match="EarlyStopping: epoch must be an int >= 0, got -1"):
        stopper.on_epoch_end(-1, {"val_loss": 1.0})
    # called by hand, a monitor missing from the logs is a KeyError; fit refuses it before the
    # first batch, with a ValueError (tests/test_callback_monitors.py; a KeyError after a whole
    # epoch of training until the ninth session)
    with pytest.raises(KeyError, match=r"monitor='val_loss' is not among the logged values \['accuracy', "
                                       r"'loss'\]; validation values need validation_data"):
        stopper.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5})
    x, y = blobs()
    with pytest.raises(ValueError, match=r"monitor='val_loss', which fit will not log: it logs loss, "
                                         r"accuracy \(val_\* values need validation_data"):
        model_for().fit(x, y, callbacks=[EarlyStopping()], verbose=0)


def test_counts_may_be_numpy_ints_but_not_floats_or_bools():
    """option_checks.check_count: NumPy ints pass (on purpose: before, only Python ints did) and
    are stored as ints; floats and bools are still refused with the same message, as a TypeError
    (the wrong type; a number out of range is a ValueError)."""
    stopper = EarlyStopping(patience=np.int64(2))
    assert stopper.patience == 2 and type(stopper.patience) is int
    for bad, hint in ((2.0, FLOAT_HINT), (True, "$")):
        with pytest.raises(TypeError, match=rf"^EarlyStopping: patience must be an int >= 0, "
                                            rf"got {bad!r}{hint}"):
            EarlyStopping(patience=bad)
    stopper.set_model(model_for())
    stopper.on_epoch_end(np.int64(0), {"val_loss": 1.0})
    with pytest.raises(TypeError, match=r"^EarlyStopping: epoch must be an int >= 0, got 1.0" + FLOAT_HINT):
        stopper.on_epoch_end(1.0, {"val_loss": 1.0})


def test_model_checkpoint_saves_the_best_model_atomically(tmp_path):
    model = model_for()
    checkpoint = ModelCheckpoint(tmp_path / "best.sn", monitor="val_loss", save_best_only=True)
    checkpoint.set_model(model)
    saved = {}
    for epoch, value in enumerate([1.0, 0.8, 0.9]):
        model.set_weights({k: np.full_like(v, epoch) for k, v in model.get_weights().items()})
        model.epochs_trained = epoch + 1
        checkpoint.on_epoch_end(epoch, {"val_loss": value})
        saved[epoch] = sn.load(tmp_path / "best.sn").epochs_trained
    assert saved == {0: 1, 1: 2, 2: 2}                                     # epoch 2 was worse: not saved
    assert all(np.all(v == 1) for v in sn.load(tmp_path / "best.sn").get_weights().values())
    assert os.listdir(tmp_path) == ["best.sn"]                             # no temporary files left
    every = ModelCheckpoint(tmp_path / "m-{epoch:02d}-{loss:.2f}.sn")
    x, y = blobs()
    history = model.fit(x, y, epochs=2, callbacks=[every], verbose=0)       # epochs 4 and 5 of the model
    expected = [f"m-{epoch:02d}-{loss:.2f}.sn" for epoch, loss in zip([4, 5], history["loss"])]
    assert sorted(os.listdir(tmp_path)) == ["best.sn", *expected]
    assert sn.load(tmp_path / expected[0]).epochs_trained == 4


def test_loggers_append_one_line_per_epoch_and_continue_after_resume(tmp_path):
    x, y = blobs()
    model = model_for()
    loggers = [CSVLogger(tmp_path / "log.csv"), JSONLogger(tmp_path / "log.jsonl")]
    history = model.fit(x, y, epochs=2, validation_split=0.25, callbacks=loggers, verbose=0)
    model.save(tmp_path / "m.sn")
    resumed = sn.load(tmp_path / "m.sn")
    more = resumed.fit(x, y, epochs=1, validation_split=0.25, callbacks=pickle.loads(pickle.dumps(loggers)),
                       verbose=0)
    with open(tmp_path / "log.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert [float(row["val_loss"]) for row in rows] == history["val_loss"] + more["val_loss"]
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    assert [line["loss"] for line in lines] == history["loss"] + more["loss"]
    with pytest.raises(ValueError, match="format must be 'csv' or 'json', got 'xml'"):
        MetricsLogger(tmp_path / "x", format="xml")


def test_callbacks_pickle_without_their_model_and_hold_no_open_files(tmp_path):
    x, y = blobs()
    model = model_for()
    callbacks = [EarlyStopping(monitor="loss", restore_best_weights=True),
                 ModelCheckpoint(tmp_path / "c.sn", "loss", save_best_only=True),
                 CSVLogger(tmp_path / "l.csv"), JSONLogger(tmp_path / "l.json")]
    model.fit(x, y, epochs=1, callbacks=callbacks, verbose=0)
    for callback in callbacks:
        copy = pickle.loads(pickle.dumps(callback))
        assert "model" not in vars(copy)
        assert not any(hasattr(value, "read") or hasattr(value, "write") for value in vars(callback).values())
    model.save(tmp_path / "with_state.sn")
    state = sn.load(tmp_path / "with_state.sn").callback_state
    assert set(state) == {"early_stopping", "model_checkpoint"} and "best_weights" in state["early_stopping"]
