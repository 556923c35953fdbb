"""fit's training-loop options: validation_split, sample_weight / class_weight, augment,
initial_epoch, the schedule hook, and bitwise resume after save/load with all of them."""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.callbacks import Callback, EarlyStopping
from scratchnet.layers import Dense, Flatten
from scratchnet.losses import BinaryCrossEntropy, CrossEntropy, MeanSquaredError


def blobs(n=96, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = rng.normal(size=(n, 3, 3, 1)) + y[:, None, None, None]
    return x, y


def model_for(seed=0, dtype="float64", optimizer=None, classes=3):
    model = sn.Sequential([Flatten(), Dense(8, activation="tanh"), Dense(classes)], input_shape=(3, 3, 1),
                          seed=seed, dtype=dtype)
    return model.compile(optimizer or sn.Adam(lr=1e-2), "cross_entropy")


def same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


# ---------------------------------------------------------------- validation_split
def test_validation_split_holds_out_the_last_samples_before_shuffling():
    x, y = blobs(100)
    model = model_for()
    history = model.fit(x, y, epochs=1, batch_size=16, validation_split=0.2, verbose=0)
    reference = model_for()
    reference.fit(x[:80], y[:80], epochs=1, batch_size=16, verbose=0)    # trains on the first 80 only
    assert same_weights(model, reference)
    assert history["val_loss"][0] == pytest.approx(model.evaluate(x[80:], y[80:])["loss"], abs=1e-12)
    with pytest.raises(ValueError, match="give validation_data or validation_split, not both"):
        model.fit(x, y, validation_split=0.1, validation_data=(x, y), verbose=0)
    with pytest.raises(ValueError, match=r"^sequential: validation_split must be a number in \[0, 1\), "
                                         r"got 1.5$"):
        model.fit(x, y, validation_split=1.5, verbose=0)


# ---------------------------------------------------------------- weighted losses
@pytest.mark.parametrize("loss, targets", [
    (CrossEntropy(), lambda rng, z: rng.integers(0, z.shape[1], len(z))),
    (MeanSquaredError(), lambda rng, z: rng.normal(size=z.shape)),
    (BinaryCrossEntropy(), lambda rng, z: rng.random(z.shape)),
])
def test_weighted_loss_is_the_mean_of_weighted_sample_losses_and_its_gradient_is_exact(loss, targets):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(5, 4))
    t = targets(rng, z)
    w = rng.random(5) * 3
    per_sample = np.array([loss.forward(z[i:i + 1], t[i:i + 1]) for i in range(5)])  # each mean over 1 row
    value = loss.forward(z, t, weights=w)
    assert value == pytest.approx(np.mean(w * per_sample), rel=1e-12)     # mean_n w_n L_n
    grad = loss.backward()
    numeric = np.zeros_like(z)
    h = 1e-6
    for index in np.ndindex(z.shape):
        plus, minus = z.copy(), z.copy()
        plus[index] += h
        minus[index] -= h
        numeric[index] = (loss.forward(plus, t, weights=w) - loss.forward(minus, t, weights=w)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-10)
    assert loss.forward(z, t, weights=np.ones(5)) == pytest.approx(loss.forward(z, t), rel=1e-14)
    with pytest.raises(ValueError, match=f"{loss.name}: expected 5 sample weights, got shape \\(4,\\)"):
        loss.forward(z, t, weights=np.ones(4))


@pytest.mark.torch
def test_weighted_cross_entropy_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    z, y, w = rng.normal(size=(6, 5)), rng.integers(0, 5, 6), rng.random(6)
    loss = CrossEntropy()
    value = loss.forward(z, y, weights=w)
    zt = torch.tensor(z, requires_grad=True)
    reference = (torch.nn.functional.cross_entropy(zt, torch.tensor(y), reduction="none")
                 * torch.tensor(w)).mean()
    reference.backward()
    assert value == pytest.approx(reference.item(), abs=1e-12)
    np.testing.assert_allclose(loss.backward(), zt.grad.numpy(), atol=1e-14)


def test_sample_weight_of_two_equals_twice_the_sgd_learning_rate():
    x, y = blobs()
    weighted, doubled = model_for(optimizer=sn.SGD(lr=0.05)), model_for(optimizer=sn.SGD(lr=0.1))
    h1 = weighted.fit(x, y, epochs=2, batch_size=16, sample_weight=np.full(len(x), 2.0), verbose=0)
    h2 = doubled.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert same_weights(weighted, doubled)                                # scaling by 2 is exact
    np.testing.assert_allclose(h1["loss"], 2 * np.array(h2["loss"]), rtol=1e-12)


def test_class_weight_equals_the_matching_sample_weight_and_they_multiply():
    x, y = blobs()
    a, b = model_for(), model_for()
    a.fit(x, y, epochs=1, batch_size=16, class_weight={0: 3.0, 2: 0.5}, sample_weight=np.arange(96) % 2,
          verbose=0)
    b.fit(x, y, epochs=1, batch_size=16, sample_weight=np.where(y == 0, 3.0, np.where(y == 2, 0.5, 1.0))
          * (np.arange(96) % 2), verbose=0)
    assert same_weights(a, b)
    ignored = model_for()
    ignored.fit(x, y, epochs=1, batch_size=16, class_weight={1: 0.0}, verbose=0)
    assert not same_weights(ignored, model_for().build())
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(96,\), got \(3,\)"):
        a.fit(x, y, sample_weight=[1, 2, 3], verbose=0)
    with pytest.raises(TypeError, match="class_weight must be a dict"):
        a.fit(x, y, class_weight=[1.0, 2.0], verbose=0)
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        a.fit(x, y, sample_weight=-np.ones(96), verbose=0)


# ---------------------------------------------------------------- augment
class Jitter:
    """A test augmenter: adds noise from the generator it is given and mixes labels softly."""

    def __init__(self, classes=3):
        self.classes, self.calls = classes, 0

    def __call__(self, x, y, rng):
        self.calls += 1
        soft = np.eye(self.classes)[y] * 0.9 + 0.1 / self.classes      # soft labels (N, classes)
        return x + 0.1 * rng.normal(size=x.shape), soft


def test_augment_is_applied_per_training_batch_with_the_models_generator():
    x, y = blobs(96)
    jitter = Jitter()
    model = model_for()
    model.fit(x, y, epochs=2, batch_size=32, augment=jitter, validation_split=0.25, verbose=0)
    assert jitter.calls == 2 * 3                                           # 72 training samples, 3 batches
    again = model_for()
    again.fit(x, y, epochs=2, batch_size=32, augment=Jitter(), validation_split=0.25, verbose=0)
    assert same_weights(model, again)                                      # the model's seed decides
    plain = model_for()
    plain.fit(x, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0)
    assert not same_weights(model, plain)
    generators = []

    def record(xb, yb, rng):
        generators.append(rng)
        return xb, yb

    model.fit(x, y, epochs=1, batch_size=48, augment=record, verbose=0)
    assert len(generators) == 2 and all(rng is model.rng for rng in generators)   # the saved generator
    with pytest.raises(TypeError, match="augment must be callable as augment"):
        model.fit(x, y, augment="flip", verbose=0)


# ---------------------------------------------------------------- epochs, initial_epoch, schedule hook
def test_initial_epoch_follows_keras_and_matches_epochs_trained():
    x, y = blobs()
    model = model_for()
    history = model.fit(x, y, epochs=2, verbose=0)
    assert history.epoch == [1, 2] and model.epochs_trained == 2
    history = model.fit(x, y, epochs=4, initial_epoch=2, verbose=0)       # epochs 2 and 3 run
    assert history.epoch == [3, 4] and model.epochs_trained == 4
    assert model.fit(x, y, epochs=4, initial_epoch=4, verbose=0).epoch == []
    with pytest.raises(ValueError, match=r"initial_epoch=1 but the model has trained 4 epoch\(s\); pass "
                                         r"initial_epoch=4"):
        model.fit(x, y, epochs=5, initial_epoch=1, verbose=0)
    with pytest.raises(ValueError, match="epochs is the epoch to stop at and must be >= 4, got 3"):
        model.fit(x, y, epochs=3, initial_epoch=4, verbose=0)
    with pytest.raises(ValueError, match="initial_epoch must be an int >= 0, got -1"):
        model.fit(x, y, epochs=3, initial_epoch=-1, verbose=0)


class PlateauProbe:
    """A learning-rate schedule with the reduce-on-plateau hook: records what fit hands it."""

    def __init__(self, lr):
        self.lr, self.seen = lr, []

    def __call__(self, step):
        return self.lr

    def on_epoch_end(self, epoch, logs):
        self.seen.append((epoch, sorted(logs)))
        self.lr /= 2


def test_a_schedule_with_on_epoch_end_is_called_after_validation():
    x, y = blobs()
    probe = PlateauProbe(0.01)
    model = model_for(optimizer=sn.SGD(lr=probe))
    model.fit(x, y, epochs=2, validation_split=0.25, verbose=0)
    assert probe.seen == [(0, ["accuracy", "loss", "val_accuracy", "val_loss"])] * 1 + \
        [(1, ["accuracy", "loss", "val_accuracy", "val_loss"])]
    assert model.optimizer.lr == pytest.approx(0.0025)


# ---------------------------------------------------------------- resume bitwise
class RecordLosses(Callback):
    def __init__(self):
        self.losses = []

    def on_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_epochs_equal_one_epoch_saved_loaded_and_one_more(tmp_path, dtype):
    x, y = blobs(120)
    options = dict(batch_size=16, validation_split=0.2, verbose=0, sample_weight=np.linspace(0.5, 1.5, 120),
                   class_weight={1: 2.0})

    def callbacks():
        return [EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True), RecordLosses()]

    straight_callbacks = callbacks()
    straight = model_for(dtype=dtype)
    h_straight = straight.fit(x, y, epochs=3, augment=Jitter(), callbacks=straight_callbacks, **options)

    first = model_for(dtype=dtype)
    first_callbacks = callbacks()
    h_first = first.fit(x, y, epochs=1, augment=Jitter(), callbacks=first_callbacks, **options)
    first.save(tmp_path / "m.sn")
    resumed = sn.load(tmp_path / "m.sn")
    assert resumed.epochs_trained == 1
    resumed_callbacks = callbacks()
    h_rest = resumed.fit(x, y, epochs=3, initial_epoch=1, augment=Jitter(), callbacks=resumed_callbacks,
                         **options)
    assert same_weights(straight, resumed)
    assert h_first["loss"] + h_rest["loss"] == h_straight["loss"]
    assert h_first["val_loss"] + h_rest["val_loss"] == h_straight["val_loss"]
    assert first_callbacks[1].losses + resumed_callbacks[1].losses == straight_callbacks[1].losses
    best = [model.callback_state["early_stopping"]["best"] for model in (resumed, straight)]
    assert best[0] == best[1]
    assert h_first.epoch + h_rest.epoch == h_straight.epoch == [1, 2, 3]


def test_early_stopping_state_crosses_save_and_load(tmp_path):
    """patience=1 and a min_delta no epoch can beat: the best stays epoch 0, the run stops after
    epoch 2 and restores epoch 0's weights, in one run and across a save/load alike."""
    x, y = blobs(120)

    def stopper():
        return EarlyStopping(monitor="val_loss", patience=1, min_delta=1e6, restore_best_weights=True)

    straight = model_for()
    straight.fit(x, y, epochs=5, validation_split=0.2, verbose=0, callbacks=[stopper()])
    first = model_for()
    first.fit(x, y, epochs=1, validation_split=0.2, verbose=0, callbacks=[stopper()])
    after_epoch_0 = first.get_weights()
    first.save(tmp_path / "m.sn")
    resumed = sn.load(tmp_path / "m.sn")
    resumed.fit(x, y, epochs=5, initial_epoch=1, validation_split=0.2, verbose=0, callbacks=[stopper()])
    assert straight.epochs_trained == resumed.epochs_trained == 3          # stopped after epoch index 2
    assert same_weights(straight, resumed)
    assert all(np.array_equal(resumed.get_weights()[k], after_epoch_0[k]) for k in after_epoch_0)
