"""A model stopped in the middle of an epoch says so, and a Ctrl-C never splits an optimizer step.

Resuming is exact between epochs (tests/test_serialization.py). A model saved from
``on_batch_end``, or by ``scratchnet train`` after Ctrl-C, is not at an epoch's end: fitting it
again starts that epoch over (the shuffling generator has moved on), and fit warns once
that it does.
"""

from __future__ import annotations

import os
import signal
import warnings

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.callbacks import Callback, ModelCheckpoint
from scratchnet.layers import Dense, Flatten
from scratchnet.optimizers import Adam

rng = np.random.default_rng(1)
X = rng.random((40, 6, 6, 2)).astype("float32")  # batch_size 8: 5 batches an epoch
Y = rng.integers(0, 3, 40)


def make():
    model = sn.Sequential([Flatten(), Dense(3)], input_shape=(6, 6, 2), seed=7, name="net")
    return model.compile(Adam(lr=0.01), "cross_entropy")


class SaveAt(Callback):
    """Save the model after batch ``step`` (from 0) of epoch ``epoch``."""

    def __init__(self, epoch, step, path):
        self.at, self.path, self.epoch = (epoch, step), path, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, step, logs=None):
        if (self.epoch, step) == self.at:
            self.model.save(self.path)


def fit_recording(model, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, Y, batch_size=8, verbose=0, **options)
    return [str(warning.message) for warning in caught if "middle of epoch" in str(warning.message)]


def test_a_model_saved_mid_epoch_warns_once_that_the_epoch_starts_again(tmp_path):
    make().fit(X, Y, epochs=3, batch_size=8, verbose=0, callbacks=[SaveAt(1, 2, tmp_path / "mid.sn")])
    loaded = sn.load(tmp_path / "mid.sn")
    assert loaded.epochs_trained == 1 and loaded.optimizer.iterations == 5 + 3
    assert loaded.epoch_in_progress == {"epoch": 1, "batches": 5, "iterations_at_start": 5}
    assert fit_recording(loaded, epochs=1) == [
        "net stopped in the middle of epoch 2, after batch 3 of 5; fit starts that epoch again from its "
        "first batch (the batches already trained stay in the weights and the optimizer state, and the "
        "shuffling generator has moved on), so the result differs from a run never interrupted"]
    assert loaded.epochs_trained == 2 and loaded.epoch_in_progress is None  # a whole epoch again
    assert fit_recording(loaded, epochs=1) == []                            # said once


def test_a_model_saved_between_epochs_is_not_in_the_middle_of_one(tmp_path):
    model = make()
    checkpoint = ModelCheckpoint(tmp_path / "end.sn", monitor="loss")
    assert fit_recording(model, epochs=2, callbacks=[checkpoint]) == []
    loaded = sn.load(tmp_path / "end.sn")
    assert loaded.epoch_in_progress is None and model.epoch_in_progress is None
    assert fit_recording(loaded, epochs=1) == []


def test_ctrl_c_inside_an_epoch_leaves_the_mark_that_the_cli_saves(tmp_path):
    class CtrlC(Callback):
        def on_batch_end(self, step, logs=None):
            if step == 1:
                raise KeyboardInterrupt

    model = make()
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y, epochs=2, batch_size=8, verbose=0, callbacks=[CtrlC()])
    model.save(tmp_path / "stopped.sn")  # what scratchnet train does after Ctrl-C
    assert fit_recording(sn.load(tmp_path / "stopped.sn"), epochs=1) == [
        "net stopped in the middle of epoch 1, after batch 2 of 5; fit starts that epoch again from its "
        "first batch (the batches already trained stay in the weights and the optimizer state, and the "
        "shuffling generator has moved on), so the result differs from a run never interrupted"]


def test_ctrl_c_during_the_optimizer_step_waits_for_the_step_to_finish(monkeypatch):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # what the CLI runs under
    model = sn.Sequential([Dense(4, name="a"), Dense(3, name="b")], input_shape=(5,), seed=0)
    model.compile(Adam(0.01), "cross_entropy")
    x, y = rng.random((8, 5)).astype("float32"), np.arange(8) % 3
    model.train_step(x, y)
    real_update, calls = Adam.update, []

    def update_pressing_ctrl_c(self, *args):
        calls.append(1)
        if len(calls) == 3:  # while layer b's W is updated, the user presses Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
        return real_update(self, *args)

    monkeypatch.setattr(Adam, "update", update_pressing_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        model.train_step(x, y)
    assert len(calls) == 4                                    # every parameter was updated
    steps = {f"{layer.name}/{name}": state["t"] for layer in model.layers
             for name, state in layer.opt_state.items()}
    assert steps == {"a/W": 2, "a/b": 2, "b/W": 2, "b/b": 2} and model.optimizer.iterations == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's handler is back


def test_a_users_own_sigint_handler_is_left_in_charge(monkeypatch):
    pressed = []

    def users_handler(number, frame):
        pressed.append(number)
    previous = signal.signal(signal.SIGINT, users_handler)
    real_update = Adam.update

    def update_pressing_ctrl_c(self, *args):
        if not pressed:
            os.kill(os.getpid(), signal.SIGINT)
        return real_update(self, *args)

    monkeypatch.setattr(Adam, "update", update_pressing_ctrl_c)
    try:
        try:
            make().fit(X, Y, epochs=1, batch_size=8, verbose=0)  # the user's handler decides
        except KeyboardInterrupt:
            pytest.fail("fit replaced the user's SIGINT handler and raised KeyboardInterrupt")
        assert pressed == [signal.SIGINT] and signal.getsignal(signal.SIGINT) is users_handler
    finally:
        signal.signal(signal.SIGINT, previous)
