"""A value a callback watches must be one fit logs, checked BEFORE the first batch.

Found by a hypothesis state machine (ninth session): ``fit(x, y, epochs=5,
callbacks=[EarlyStopping()])`` without validation data (the default monitor is val_loss)
trained a whole epoch, then raised a KeyError (weights changed, epochs_trained 1); the same for
ReduceOnPlateau and ModelCheckpoint("m_{val_loss}.pkl"); ``EarlyStopping(monitor=["loss"])``
was accepted and failed later with "unhashable list".
"""

import re

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.callbacks import Callback, EarlyStopping, ModelCheckpoint
from scratchnet.layers import Dense, Flatten
from scratchnet.schedules import ReduceOnPlateau


def blobs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    return rng.normal(size=(n, 2, 2, 1)) + y[:, None, None, None], y


def model_for(loss="cross_entropy", lr=1e-2):
    model = sn.Sequential([Flatten(), Dense(4, activation="tanh"), Dense(2)], input_shape=(2, 2, 1),
                          seed=0, dtype="float64")
    return model.compile(sn.Adam(lr=lr), loss).build()


def refused_before_training(model, x, y, callbacks, match, **options):
    """fit raises ValueError(match) and leaves the model as it was: no batch trained."""
    before = {name: value.copy() for name, value in model.get_weights().items()}
    with pytest.raises(ValueError, match=match):
        model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=callbacks, **options)
    assert model.epochs_trained == 0 and model.optimizer.iterations == 0
    assert all(np.array_equal(value, before[name]) for name, value in model.get_weights().items())


NOT_LOGGED = r"which fit will not log: it logs loss, accuracy"
NO_VALIDATION = r" \(val_\* values need validation_data or validation_split\)"


def test_early_stopping_on_val_loss_without_validation_is_refused_before_the_first_batch():
    x, y = blobs()
    refused_before_training(model_for(), x, y, [EarlyStopping()],
                            rf"^sequential: EarlyStopping watches monitor='val_loss', {NOT_LOGGED}"
                            rf"{NO_VALIDATION}$")


def test_model_checkpoint_path_fields_are_checked_before_the_first_batch(tmp_path):
    x, y = blobs()
    path = str(tmp_path / "m_{val_loss:.3f}.pkl")
    refused_before_training(model_for(), x, y, [ModelCheckpoint(path)],
                            rf"^sequential: ModelCheckpoint has {{val_loss}} in its path "
                            rf"'.*m_{{val_loss:.3f}}.pkl', {NOT_LOGGED}{NO_VALIDATION}$")
    refused_before_training(model_for(), x, y, [ModelCheckpoint(tmp_path / "m.pkl", monitor="val_loss",
                                                                save_best_only=True)],
                            r"^sequential: ModelCheckpoint watches monitor='val_loss'")
    # without save_best_only the monitor is not read: saving every epoch needs no val_loss
    model = model_for()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "every.pkl")])
    assert (tmp_path / "every.pkl").exists()


def test_reduce_on_plateau_is_checked_before_the_first_batch():
    x, y = blobs()
    model = model_for()
    model.optimizer.schedule = ReduceOnPlateau(1e-2)
    refused_before_training(model, x, y, [], rf"^sequential: ReduceOnPlateau \(the optimizer's schedule\) "
                                             rf"watches monitor='val_loss', {NOT_LOGGED}{NO_VALIDATION}$")


def test_a_loss_without_accuracy_logs_no_accuracy():
    x, y = blobs()
    targets = np.eye(2)[y]
    refused_before_training(model_for("mse"), x, targets, [EarlyStopping(monitor="accuracy")],
                            r"^sequential: EarlyStopping watches monitor='accuracy', which fit will not log: "
                            r"it logs loss \(val_\* values need")
    refused_before_training(model_for("mse"), x, targets, [EarlyStopping(monitor="val_accuracy")],
                            r"^sequential: EarlyStopping watches monitor='val_accuracy', which fit will "
                            r"not log: it logs loss, val_loss$", validation_split=0.25)


def test_what_fit_logs_passes_and_trains(tmp_path):
    x, y = blobs()
    for monitor in ("loss", "accuracy", "val_loss", "val_accuracy"):
        model = model_for()
        callbacks = [EarlyStopping(monitor=monitor, patience=10),
                     ModelCheckpoint(str(tmp_path / ("m_{epoch}_{%s:.2f}.pkl" % monitor)), monitor=monitor,
                                     save_best_only=True)]
        model.optimizer.schedule = ReduceOnPlateau(1e-2, monitor=monitor)
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=callbacks, validation_split=0.25)
        assert model.epochs_trained == 2


def test_a_callback_of_your_own_is_not_asked():
    # a user's callback may read anything (or nothing) from the logs: fit checks only its own kinds
    class Watcher(Callback):
        monitor = "val_something"

    x, y = blobs()
    model = model_for()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[Watcher()])
    assert model.epochs_trained == 1


class F1(Callback):
    """Writes its own value into the logs each epoch's end (the Keras pattern): a constant, so a
    later EarlyStopping(monitor="val_f1", patience=0) stops after epoch 1 (no improvement)."""

    def on_epoch_end(self, epoch, logs=None):
        logs["val_f1"] = 0.5


def test_a_value_a_callback_of_your_own_logs_is_read_by_the_built_in_ones_after_it():
    x, y = blobs()
    model = model_for()
    stopping = EarlyStopping(monitor="val_f1", mode="max", patience=0)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0, validation_split=0.25, callbacks=[F1(), stopping])
    assert stopping.stopped_epoch == 1 and model.epochs_trained == 2  # epoch 0 best; 1 no better
    assert model.callback_state["early_stopping"]["best"] == 0.5


def test_built_in_callbacks_before_your_own_and_the_schedule_are_still_checked():
    """Only the callbacks AFTER one of one's own may read what it logs; the schedule reads the
    logs before any callback runs."""
    x, y = blobs()
    refused_before_training(model_for(), x, y, [EarlyStopping(monitor="val_f1"), F1()],
                            rf"^sequential: EarlyStopping watches monitor='val_f1', {NOT_LOGGED}, "
                            r"val_loss, val_accuracy$", validation_split=0.25)
    model = model_for()
    model.optimizer.schedule = ReduceOnPlateau(1e-2, monitor="val_f1")
    refused_before_training(model, x, y, [F1(), EarlyStopping(monitor="val_f1")],
                            rf"^sequential: ReduceOnPlateau \(the optimizer's schedule\) watches "
                            rf"monitor='val_f1', {NOT_LOGGED}, val_loss, val_accuracy$",
                            validation_split=0.25)


@pytest.mark.parametrize("make", [
    lambda monitor: EarlyStopping(monitor=monitor),
    lambda monitor: ModelCheckpoint("m.pkl", monitor=monitor),
    lambda monitor: ReduceOnPlateau(1e-2, monitor=monitor),
], ids=["EarlyStopping", "ModelCheckpoint", "ReduceOnPlateau"])
@pytest.mark.parametrize("monitor", [["loss"], ("loss",), None, 1, b"loss"], ids=repr)
def test_monitor_must_be_a_string(make, monitor):
    with pytest.raises(TypeError, match=r"^(EarlyStopping|ModelCheckpoint|ReduceOnPlateau): monitor must "
                                        r"be the name of a logged value \(a str such as 'val_loss' or "
                                        r"'loss'\), got "):
        make(monitor)


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, [True]], ids=repr)
def test_the_callbacks_flags_take_true_or_false(value, tmp_path):
    # bool("no") is True: restore_best_weights="no" restored, save_best_only="no" kept only the best
    with pytest.raises(TypeError, match=rf"^EarlyStopping: restore_best_weights must be True or False, "
                                        rf"got {re.escape(repr(value))}$"):
        EarlyStopping(restore_best_weights=value)
    with pytest.raises(TypeError, match=r"^ModelCheckpoint: save_best_only must be True or False, got "):
        ModelCheckpoint(tmp_path / "m.pkl", save_best_only=value)
    assert EarlyStopping(restore_best_weights=np.bool_(True)).restore_best_weights is True
