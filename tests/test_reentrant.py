"""fit from several threads and from inside its own callbacks (the reentrant reviewer's
/tmp/reentrant scripts): what one fit does must not leak into the process or into an outer fit."""

import threading
import warnings

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.callbacks import Callback
from scratchnet.input_checks import non_finite_already_said, warn_non_finite
from scratchnet.layers import Dense, Flatten


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 4, 4, 1)).astype("float32"), rng.integers(0, 2, size=n)


def mlp():
    layers = [Flatten(), Dense(3, activation="relu"), Dense(2)]
    return sn.Sequential(layers, input_shape=(4, 4, 1), seed=0).compile("adam").build()


def test_fit_validates_without_touching_the_process_warnings_filters():
    """t14: fit wrapped validation in warnings.catch_warnings() + an 'ignore' filter, which swaps
    the filters of the whole process: fits in two threads restored them out of order and left
    the 'ignore' behind, so later NaN warnings of every thread vanished. Validation's evaluate
    now runs under the global filters as they are; the NaN is still said once, not per epoch."""
    x, y = data()
    x_val, y_val = data(n=6, seed=1)
    x_val[2, 0, 0, 0] = np.nan
    model = mlp()
    filters_seen = []
    evaluate = model.evaluate

    def evaluate_seeing_the_filters(*args, **kwargs):
        filters_seen.append(list(warnings.filters))
        return evaluate(*args, **kwargs)

    model.evaluate = evaluate_seeing_the_filters  # an instance attribute: fit calls this one
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        filters_outside = list(warnings.filters)
        history = model.fit(x, y, epochs=2, batch_size=4, verbose=0, validation_data=(x_val, y_val))
    del model.evaluate
    assert filters_seen == [filters_outside, filters_outside]
    assert [str(w.message).split(";")[0] for w in caught] == [
        "sequential: validation_data holds NaN or inf in 1 sample(s) of 6, the first at index 2"]
    assert np.isnan(history["val_loss"]).all()


def test_quiet_validation_in_one_thread_leaves_another_threads_warnings():
    """The flag is the thread's own: another thread's NaN input warns meanwhile, and afterwards."""
    inside, release = threading.Event(), threading.Event()

    def validating():
        with non_finite_already_said():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=validating)
    thread.start()
    inside.wait(10)
    try:
        with pytest.warns(UserWarning, match=r"^m: the input holds NaN or inf in 1 sample\(s\) of 1"):
            warn_non_finite(np.array([[np.nan]]), "m")
    finally:
        release.set()
        thread.join()
    with non_finite_already_said(), warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_non_finite(np.array([[np.nan]]), "m")  # quiet in its own thread
    with pytest.warns(UserWarning, match=r"^m: the input holds NaN"):
        warn_non_finite(np.array([[np.nan]]), "m")  # and said again once it ends


class FitAgainInside(Callback):
    """At the end of the first epoch, fit the same model on a few rows (after ``stop`` sets
    stop_training, if given)."""

    def __init__(self, x, y, stop=False):
        self.x, self.y, self.stop = x, y, stop

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            if self.stop:
                self.model.stop_training = True
            self.model.fit(self.x[:4], self.y[:4], epochs=1, batch_size=2, verbose=0)


@pytest.mark.parametrize("stop, outer_epochs", [(False, 3), (True, 1)])
def test_fit_from_inside_a_callback_of_fit_on_the_same_model(stop, outer_epochs):
    """t6: the inner fit popped stop_training at its end, and the outer fit then failed with
    AttributeError 'stop_training'. The outer fit's flag is now as the inner fit found it: False
    (3 epochs run), or True when the callback asked to stop before fitting again (1 epoch)."""
    x, y = data()
    model = mlp()
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[FitAgainInside(x, y, stop)])
    assert history.epoch == [1, 3, 4][:outer_epochs]  # epoch 2 was the inner fit's
    assert model.epochs_trained == outer_epochs + 1
    assert "stop_training" not in model.__dict__  # a flag for the call only, after both


class PauseInFit(Callback):
    """Holds the training thread after its first batch until ``resume`` is set."""

    def __init__(self):
        self.paused, self.resume = threading.Event(), threading.Event()

    def on_batch_end(self, batch, logs=None):
        if not self.paused.is_set():
            self.paused.set()
            assert self.resume.wait(timeout=60)


def test_a_model_training_in_one_thread_refuses_the_others(tmp_path):
    """t3c: predict from the notebook while fit runs in a background thread overwrote the layers'
    caches between the training forward and its backward (weights off by 0.39, no error). Every
    entry point that runs the layers or reads half-updated weights refuses another thread while
    fit runs; after fit, every thread may use the model again."""
    x, y = data()
    model, pause = mlp(), PauseInFit()
    trainer = threading.Thread(target=model.fit, args=(x, y),
                               kwargs={"epochs": 1, "batch_size": 4, "verbose": 0, "callbacks": [pause]},
                               name="trainer")
    model.save_weights(tmp_path / "w.npz")
    trainer.start()
    try:
        assert pause.paused.wait(timeout=60)
        caches = "would overwrite the forward caches that training needs"
        changes = "would change the model under the running fit"
        half = "could write half-updated weights. Save from a callback of that fit"
        calls = {"predict": (lambda: model.predict(x), caches),
                 "forward": (lambda: model.forward(x, training=True), caches),
                 "evaluate": (lambda: model.evaluate(x, y), caches),
                 "train_step": (lambda: model.train_step(x, y), caches),
                 "fit": (lambda: model.fit(x, y, verbose=0), caches),
                 "running its layers": (lambda: model.activations(x), caches),
                 "backward": (lambda: model.backward(np.ones((12, 2))), "would use up the forward caches"),
                 "compile": (lambda: model.compile("sgd"), changes),
                 "build": (lambda: model.build(reset=True), changes),
                 "set_weights": (lambda: model.set_weights(model.get_weights()), changes),
                 "load_weights": (lambda: model.load_weights(tmp_path / "w.npz"), changes),
                 "save": (lambda: model.save(tmp_path / "m.sn"), half),
                 "save_weights": (lambda: model.save_weights(tmp_path / "w2.npz"), half)}
        for what, (call, why) in calls.items():
            with pytest.raises(RuntimeError, match=rf"^sequential is being trained by another thread "
                                                   rf"\(trainer\); {what} from this thread {why}"):
                call()
        assert not (tmp_path / "m.sn").exists() and not (tmp_path / "w2.npz").exists()
        assert type(model.optimizer).__name__ == "Adam"
    finally:
        pause.resume.set()
        trainer.join(timeout=60)
    assert model.optimizer.iterations == 3   # the refused train_step and fit took no step
    assert model.predict(x).shape == (12, 2) and "_training_thread" not in vars(model)


def test_the_training_thread_itself_may_predict_evaluate_and_save(tmp_path):
    """A callback runs in the training thread: it evaluates and saves a checkpoint; the file
    holds no trace of the thread (it loads and trains anywhere)."""
    x, y = data()
    model = mlp()

    class CheckpointAndScore(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.evaluate(x, y)
            self.model.predict(x)
            self.model.save(tmp_path / "m.sn")

    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[CheckpointAndScore()])
    loaded = sn.load(tmp_path / "m.sn")
    assert "_training_thread" not in vars(loaded)
    worker = threading.Thread(target=loaded.fit, args=(x, y), kwargs={"verbose": 0})
    worker.start()
    worker.join(timeout=60)
    assert loaded.epochs_trained == 2


def test_fits_warnings_point_at_the_callers_line():
    """The thread mark must not add a frame between the user's fit call and the warnings that
    name their line (stacklevel): NaN in x, and a model stopped in the middle of an epoch."""
    x, y = data()
    x[3, 0, 0, 0] = np.nan
    model = mlp()
    with pytest.warns(UserWarning, match="holds NaN or inf") as caught:
        with pytest.raises(sn.NonFiniteLossError):
            model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    assert [warning.filename for warning in caught] == [__file__]
    with pytest.warns(UserWarning, match="stopped in the middle of epoch 1") as caught:
        model.fit(x[4:], y[4:], epochs=1, batch_size=4, verbose=0)
    assert {warning.filename for warning in caught} == {__file__}


def test_every_input_warning_names_the_line_that_called_scratchnet():
    """caller.user_stacklevel: the warning names the user's line whatever the depth inside
    scratchnet (a fixed stacklevel named model.py or training.py for fit, train_step,
    predict_proba, activations and validation data, and was then shown once for all calls)."""
    x = (np.arange(48).reshape(3, 4, 4, 1) * 5).astype(np.uint8)   # unscaled 0-255 pixels
    y = np.array([0, 1, 0])
    model = mlp()
    calls = [lambda: model.fit(x, y, verbose=0), lambda: model.train_step(x, y),
             lambda: model.predict_proba(x), lambda: model.activations(x),
             lambda: model.fit(x, y, verbose=0, validation_data=(x, y))]
    for call in calls:
        with pytest.warns(UserWarning, match="got integer input") as caught:
            call()
        assert {warning.filename for warning in caught} == {__file__}
