"""HealthMonitor: update/weight ratios by hand, exact dead-ReLU fractions, warnings on broken runs,
quiet on a healthy one, pickling, and the plot's content."""

import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet import NonFiniteLossError
from scratchnet.datasets import load_mnist_sample
from scratchnet.health import HealthMonitor, HealthWarning, dead_fraction
from scratchnet.layers import Activation, Conv2D, Dense, Flatten
from scratchnet.model import Sequential
from scratchnet.models import mlp, tiny_cnn
from scratchnet.optimizers import SGD, Adam


@pytest.fixture(scope="module")
def digits():
    (x, y), _ = load_mnist_sample()
    return x[:640], y[:640]


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def tiny_dense(seed=0):
    model = Sequential([Dense(3)], input_shape=(4,), seed=seed, dtype="float64").build()
    return model


# ---------------------------------------------------------------------- update ratio by hand
def test_update_ratio_sgd_first_step_by_hand(rng):
    x, y = rng.normal(size=(5, 4)), np.array([0, 2, 1, 2, 0])
    model = tiny_dense()
    model.compile(SGD(lr=0.1), "cross_entropy")
    W0, b0 = model.layers[0].params["W"].copy(), model.layers[0].params["b"].copy()
    monitor = HealthMonitor(every=1, verbose=False)
    model.fit(x, y, epochs=1, batch_size=5, shuffle=False, verbose=0, callbacks=[monitor])
    # softmax cross-entropy, mean over 5: dL/dz = (p - onehot) / 5; dW = x^T dz
    dz = (softmax(x @ W0 + b0) - np.eye(3)[y]) / 5
    dW = x.T @ dz
    expected = np.linalg.norm(0.1 * dW) / np.linalg.norm(W0)
    (entry,) = monitor.records
    assert entry["step"] == 1
    assert entry["layers"]["dense"]["update_ratio"] == pytest.approx(expected, rel=1e-12)
    assert entry["layers"]["dense"]["grad_norm"] == pytest.approx(np.linalg.norm(dW), rel=1e-12)
    assert entry["layers"]["dense"]["grad_ratio"] == pytest.approx(
        np.linalg.norm(dW) / np.linalg.norm(W0 - 0.1 * dW), rel=1e-12)  # ||W|| after the step


def test_update_ratio_adam_first_step_by_hand(rng):
    # Adam's first step: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps)
    x, y = rng.normal(size=(6, 4)), np.array([0, 1, 2, 0, 1, 2])
    model = tiny_dense(seed=3)
    model.compile(Adam(lr=0.01), "cross_entropy")
    W0, b0 = model.layers[0].params["W"].copy(), model.layers[0].params["b"].copy()
    monitor = HealthMonitor(every=1, verbose=False)
    model.fit(x, y, epochs=1, batch_size=6, shuffle=False, verbose=0, callbacks=[monitor])
    dW = x.T @ ((softmax(x @ W0 + b0) - np.eye(3)[y]) / 6)
    expected = np.linalg.norm(0.01 * dW / (np.abs(dW) + 1e-8)) / np.linalg.norm(W0)
    assert monitor.records[0]["layers"]["dense"]["update_ratio"] == pytest.approx(expected, rel=1e-10)


def test_every_records_steps_k_every_against_weights_of_step_before(rng):
    x, y = rng.normal(size=(8, 4)), rng.integers(0, 3, 8)
    model, replay = tiny_dense(), tiny_dense()
    for m in (model, replay):
        m.compile(SGD(lr=0.5, momentum=0.9), "cross_entropy")
    monitor = HealthMonitor(every=3, verbose=False)
    model.fit(x, y, epochs=4, batch_size=4, shuffle=False, verbose=0, callbacks=[monitor])  # 8 steps
    assert [entry["step"] for entry in monitor.records] == [3, 6]
    weights = [replay.layers[0].params["W"].copy()]
    for step in range(8):  # the same steps by hand
        replay.train_step(x[(step % 2) * 4:(step % 2) * 4 + 4], y[(step % 2) * 4:(step % 2) * 4 + 4])
        weights.append(replay.layers[0].params["W"].copy())
    for entry in monitor.records:
        t = entry["step"]
        expected = np.linalg.norm(weights[t] - weights[t - 1]) / np.linalg.norm(weights[t - 1])
        assert entry["layers"]["dense"]["update_ratio"] == pytest.approx(expected, rel=1e-12)
    steps, ratios = monitor.series("update_ratio", "dense")
    np.testing.assert_array_equal(steps, [3, 6])
    # a second fit continues the step count (model.optimizer.iterations): steps 9 and 12
    model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0, callbacks=[monitor])
    assert [entry["step"] for entry in monitor.records] == [3, 6, 9, 12]
    assert np.isfinite(monitor.records[-1]["layers"]["dense"]["update_ratio"])


# ---------------------------------------------------------------------- dead ReLUs, exact
def test_dead_fraction_dense_constructed():
    model = Sequential([Dense(4, activation="relu"), Dense(2)], input_shape=(3,), dtype="float64").build()
    probe = np.array([[1.0, 2.0, 0.5], [0.2, 0.1, 3.0]])  # all inputs positive
    model.layers[0].params["W"][...] = np.array([[-1, 1, 0, 1], [-1, 1, 0, -1], [-1, 1, 0, 0]], float)
    model.layers[0].params["b"][...] = [0.0, 0.0, 0.0, -1.1]
    # unit 0: z < 0 always (dead); unit 1: z > 0 (alive); unit 2: z = 0 exactly, never positive
    # (dead); unit 3: z = x0 - x1 - 1.1 = -2.1 and -1.0 -> dead.  3 of 4 dead.
    model.compile(SGD(lr=1e-9), "cross_entropy")
    monitor = HealthMonitor(probe=probe, every=1, verbose=False)
    model.fit(probe, [0, 1], epochs=1, batch_size=2, verbose=0, callbacks=[monitor])
    assert monitor.records[0]["dead"] == {"dense": pytest.approx(0.75, abs=0)}
    assert "dense_1" not in monitor.records[0]["dead"]  # not a ReLU
    zeros = monitor.records[0]["activations"]["dense"]["zero_fraction"]
    assert zeros == pytest.approx(6 / 8, abs=0)  # units 0, 2, 3 on both samples
    assert any("75% of the ReLUs of layer 'dense' are dead" in message for message in monitor.warnings)


def test_dead_fraction_conv_channels_constructed(rng):
    model = Sequential([Conv2D(4, 2), Activation("relu"), Flatten(), Dense(2)], input_shape=(5, 5, 1),
                       dtype="float64").build()
    conv = model.layers[0]
    conv.params["W"][...] = 0.0
    conv.params["W"][..., 0] = -1.0   # negative on a positive image: dead
    conv.params["W"][..., 1] = 1.0    # alive everywhere
    conv.params["W"][0, 0, 0, 2] = 1.0  # alive only where the top-left pixel of a window is > 0.5
    conv.params["b"][...] = [0.0, 0.0, -0.5, 0.0]  # channel 3: z = 0, never positive: dead
    probe = np.zeros((3, 5, 5, 1))
    probe[0] = 0.3
    probe[1, 4, 4, 0] = 0.9   # the bottom-right pixel is never a window's top-left: channel 2 dead there
    probe[2] = 0.2
    model.compile(SGD(lr=1e-9), "cross_entropy")
    monitor = HealthMonitor(probe=probe, every=1, verbose=False)
    monitor.set_model(model)
    entry = monitor.record(0)
    assert entry["dead"]["activation"] == 0.75      # channels 0, 2, 3 of 4
    probe[2, 1, 1, 0] = 0.9   # now one window of one sample lights channel 2 up
    monitor.probe = probe
    assert monitor.record(0)["dead"]["activation"] == 0.5


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(1, 6), st.integers(0, 2**31))
def test_dead_fraction_matches_a_loop(middle, units, seed):
    y = np.random.default_rng(seed).normal(size=(2, *middle, units)) - 1.0
    dead = 0
    for c in range(units):
        dead += not any(value > 0 for value in y[..., c].ravel())
    assert dead_fraction(np.maximum(y, 0)) == dead / units


# ---------------------------------------------------------------------- broken and healthy runs
def relu_model_with_bias(bias, seed=0):
    model = tiny_cnn(input_shape=(28, 28, 1), n_classes=10, seed=seed)
    model.layers[0].params["b"][...] = bias   # the conv's bias, before its ReLU
    return model


def test_quiet_on_a_default_run(digits):
    x, y = digits
    model = tiny_cnn()
    model.compile(Adam(lr=3e-3), "cross_entropy")  # the `scratchnet train` learning rate
    monitor = HealthMonitor(probe=x[:128], every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HealthWarning)
        model.fit(x, y, epochs=1, batch_size=64, verbose=0, callbacks=[monitor])
    assert monitor.warnings == []
    assert [entry["step"] for entry in monitor.records] == [2, 4, 6, 8, 10]
    ratios = [e["layers"][name]["update_ratio"] for e in monitor.records for name in ("conv2d", "dense")]
    assert 1e-4 < min(ratios) and max(ratios) < 0.2
    assert max(monitor.series("dead", "activation")[1]) < 0.5
    assert model.callback_state is None  # nothing stored on the model


def test_flags_all_negative_bias(digits):
    x, y = digits
    model = relu_model_with_bias(-5.0)
    model.compile(Adam(lr=3e-3), "cross_entropy")
    monitor = HealthMonitor(probe=x[:128], every=2, verbose=False)
    model.fit(x[:256], y[:256], epochs=1, batch_size=64, verbose=0, callbacks=[monitor])
    text = "\n".join(monitor.warnings)
    assert "100% of the ReLUs of layer 'activation' are dead" in text
    assert "the gradient of layer 'conv2d' vanished" in text
    assert "the gradient of layer 'dense' vanished" in text  # its input is all zeros
    assert monitor.series("dead", "activation")[1].tolist() == [1.0, 1.0]


def test_flags_learning_rate_10(digits):
    x, y = digits
    model = tiny_cnn()
    model.compile(SGD(lr=10.0), "cross_entropy")
    monitor = HealthMonitor(probe=x[:128], every=2)
    with pytest.warns(HealthWarning, match="the learning rate is too high"):
        model.fit(x[:256], y[:256], epochs=1, batch_size=64, verbose=0, callbacks=[monitor])
    assert any("the updates of layer 'conv2d' are" in message for message in monitor.warnings)
    assert monitor.records[0]["layers"]["dense"]["update_ratio"] > 1


def test_nan_loss_names_the_first_layer(digits):
    x, y = digits
    model = mlp()
    model.compile(SGD(lr=0.01), "cross_entropy")
    model.layers[2].params["W"][...] = 1e38  # float32: the sum over 128 inputs overflows to inf
    monitor = HealthMonitor(probe=x[:32], every=1, verbose=False)
    with pytest.raises(NonFiniteLossError) as info:
        model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0, callbacks=[monitor])
    monitor.report_error(info.value)
    assert "the loss became NaN/inf" in monitor.warnings[-1]
    assert "'dense_1' (Dense) is the first to contain NaN/inf" in monitor.warnings[-1]
    # the probe pass finds the same layer by itself when a recorded step meets it
    entry = monitor.record(99)
    assert not entry["activations"]["dense_1"]["finite"] and entry["activations"]["dense"]["finite"]
    (probe_warning,) = [message for message in monitor.warnings if "on the probe batch" in message]
    assert probe_warning.startswith("step 99:") and "output of layer 'dense_1' (Dense)" in probe_warning


def test_exploding_and_vanishing_thresholds():
    model = Sequential([Dense(3)], input_shape=(2,), dtype="float64").build()
    layer = model.layers[0]
    layer.params["W"][...] = 1.0
    model.compile(SGD(lr=0.1), "cross_entropy")
    monitor = HealthMonitor(every=1, verbose=False, explode=100.0, vanish=1e-3)
    monitor.set_model(model)
    layer.grads["W"] = np.full((2, 3), 1e3)             # ||g|| / ||W|| = 1e3 > 100
    monitor.record(1)
    assert "the gradient of layer 'dense' exploded" in monitor.warnings[-1]
    layer.grads["W"] = np.full((2, 3), 1e-4)            # 1e-4 < 1e-3 * ||W||
    monitor.record(2)
    assert "the gradient of layer 'dense' vanished" in monitor.warnings[-1]
    layer.grads["W"] = np.full((2, 3), np.nan)
    other = HealthMonitor(every=1, verbose=False)
    other.set_model(model)
    other.record(3)
    assert "exploded" in other.warnings[-1]
    layer.grads["W"] = np.full((2, 3), 0.05)            # healthy: no new warning
    count = len(monitor.warnings)
    monitor.record(4)
    assert len(monitor.warnings) == count


def test_report_error_writes_the_plot(digits, tmp_path):
    x, y = digits
    model = mlp()
    model.compile(SGD(lr=0.01), "cross_entropy")
    model.layers[2].params["W"][...] = 1e38  # the loss is inf at the first step
    monitor = HealthMonitor(probe=x[:32], every=1, verbose=False, plot_path=tmp_path / "health.png")
    with pytest.raises(NonFiniteLossError) as info:
        model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0, callbacks=[monitor])
    monitor.record(1)
    monitor._previous = {}
    monitor.report_error(info.value)
    assert monitor._previous is None and (tmp_path / "health.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="every must be an int >= 1, got 0"):
        HealthMonitor(every=0)
    for bad, error in ((2.5, TypeError), (True, TypeError), (-1, ValueError)):
        with pytest.raises(error, match=rf"^HealthMonitor: every must be an int >= 1, got {bad!r}$"):
            HealthMonitor(every=bad)
        with pytest.raises(error, match=rf"^HealthMonitor: bins must be an int >= 1, got {bad!r}$"):
            HealthMonitor(bins=bad)
    assert HealthMonitor(every=np.int64(3), bins=np.int32(4)).every == 3
    with pytest.raises(ValueError, match=r"^HealthMonitor: dead_fraction must be a number in \[0, 1\), "
                                         r"got 1.5$"):
        HealthMonitor(dead_fraction=1.5)
    with pytest.raises(ValueError, match="probe must be a non-empty batch"):
        HealthMonitor(probe=np.zeros((0, 3)))


def test_monitoring_does_not_change_training(digits):
    # the probe pass runs in inference mode and draws no random number: same weights bitwise
    x, y = digits
    runs = []
    for callbacks in ([], [HealthMonitor(probe=x[:64], every=1, verbose=False)]):
        model = tiny_cnn(seed=5)
        model.compile(Adam(lr=1e-3), "cross_entropy")
        model.fit(x[:192], y[:192], epochs=1, batch_size=64, verbose=0, callbacks=callbacks)
        runs.append(model.get_weights())
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])


# ---------------------------------------------------------------------- pickling and the plot
def test_picklable_and_histograms(digits, tmp_path):
    x, y = digits
    model = tiny_cnn()
    model.compile(Adam(lr=1e-3), "cross_entropy")
    monitor = HealthMonitor(probe=x[:64], every=3, bins=7, verbose=False)
    model.fit(x[:192], y[:192], epochs=1, batch_size=64, verbose=0, callbacks=[monitor])
    entry = monitor.records[0]
    counts, edges = entry["layers"]["conv2d"]["grad"]["histogram"]
    assert counts.sum() == model.layers[0].params["W"].size and len(edges) == 8
    counts, _ = entry["activations"]["activation"]["histogram"]
    assert counts.sum() == 64 * 26 * 26 * 8
    copy = pickle.loads(pickle.dumps(monitor))
    assert copy.model is None and copy.records[0]["step"] == 3 and copy._previous is None
    np.testing.assert_array_equal(copy.records[0]["layers"]["conv2d"]["grad"]["histogram"][0],
                                  monitor.records[0]["layers"]["conv2d"]["grad"]["histogram"][0])
    model.save(tmp_path / "m.sn")  # the monitor left nothing unsaveable on the model


def test_plot_content(digits, tmp_path):
    import matplotlib.image

    x, y = digits
    model = tiny_cnn()
    model.compile(SGD(lr=10.0), "cross_entropy")
    monitor = HealthMonitor(probe=x[:64], every=1, verbose=False, plot_path=tmp_path / "health.png")
    model.fit(x[:192], y[:192], epochs=1, batch_size=64, verbose=0, callbacks=[monitor])
    picture = matplotlib.image.imread(tmp_path / "health.png")  # written by on_train_end
    assert picture.shape[:2] == (380, 1300)
    figure = monitor.plot()
    ratio_axes, dead_axes, grad_axes = figure.axes
    assert ratio_axes.get_yscale() == "log" and ratio_axes.get_xlabel() == "optimizer step"
    assert [line.get_label() for line in ratio_axes.lines] == ["conv2d", "dense", "1e-3 rule of thumb"]
    np.testing.assert_array_equal(ratio_axes.lines[2].get_ydata(), [1e-3, 1e-3])
    np.testing.assert_allclose(ratio_axes.lines[0].get_ydata(), monitor.series("update_ratio", "conv2d")[1])
    assert [line.get_label() for line in dead_axes.lines] == ["activation"]
    assert grad_axes.get_title() == "gradient norm"
    assert "warning" in figure._suptitle.get_text()
