"""Sequential: building, summary arithmetic, training, determinism, resume, errors."""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.gradcheck import check_model
from scratchnet.layers import Activation, Dense, Flatten


def two_blobs(n=400, seed=0):
    """Two Gaussian blobs in 4x4x1 'images', separable by the sign of the pixel sum."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 4, 4, 1)) + np.where(y == 1, 0.5, -0.5)[:, None, None, None]
    return x.astype("float32"), y


def mlp(seed=0, dtype="float32", optimizer=None):
    model = sn.Sequential([Flatten(), Dense(16, activation="relu"), Dense(2)],
                          input_shape=(4, 4, 1), seed=seed, dtype=dtype)
    return model.compile(optimizer or sn.Adam(lr=1e-2), "cross_entropy")


def weights_equal_dicts(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def weights_equal(a, b):
    return weights_equal_dicts(a.get_weights(), b.get_weights())


def test_summary_counts_match_hand_arithmetic():
    model = sn.Sequential([Flatten(), Dense(128, activation="relu"), Dense(10)], input_shape=(28, 28, 1))
    text = model.summary_text()
    # Dense(128) on 784 inputs: 784 * 128 + 128 = 100,480;  Dense(10): 128 * 10 + 10 = 1,290
    assert model.layers[1].count_params() == 100_480
    assert model.layers[2].count_params() == 1_290
    assert model.count_params() == 101_770
    assert "100,480" in text and "1,290" in text and "Total params: 101,770" in text
    assert "(None, 784)" in text and "(None, 10)" in text


def test_summary_prints(capsys):
    mlp().summary()
    assert "Total params: 306" in capsys.readouterr().out  # 16*16+16 + 16*2+2


def test_layer_names_are_unique():
    model = sn.Sequential([Dense(3), Dense(3), Dense(2, name="out"), Dense(2, name="out")], input_shape=(4,))
    assert [layer.name for layer in model.layers] == ["dense", "dense_1", "out", "out_1"]


def test_build_infers_input_shape_from_data():
    model = sn.Sequential([Flatten(), Dense(2)], seed=0).compile("sgd", "cross_entropy")
    x, y = two_blobs(8)
    model.fit(x, y, epochs=1, verbose=0)
    assert model.input_shape == (4, 4, 1) and model.layers[1].params["W"].shape == (16, 2)


def test_fit_learns_a_separable_problem():
    x, y = two_blobs(600)
    model = mlp()
    history = model.fit(x[:500], y[:500], epochs=8, batch_size=32, verbose=0,
                        validation_data=(x[500:], y[500:]))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == list(range(1, 9))
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    # Bayes accuracy of these blobs is about 0.98 (sum of 16 pixels, mean +-8, std 4)
    assert history["val_accuracy"][-1] > 0.9


def test_evaluate_matches_a_manual_computation():
    x, y = two_blobs(100)
    model = mlp()
    model.fit(x, y, epochs=1, verbose=0)
    logits = model.predict(x).astype(np.float64)
    log_probs = logits - logits.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    expected_loss = -log_probs[np.arange(100), y].mean()
    result = model.evaluate(x, y, batch_size=7)  # a batch size that does not divide 100
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))


def test_predict_does_not_depend_on_batch_size():
    x, _ = two_blobs(50)
    model = mlp(dtype="float64")
    # equal up to BLAS summation order, which depends on the matrix sizes
    np.testing.assert_allclose(model.predict(x, batch_size=50), model.predict(x, batch_size=3),
                               rtol=1e-13, atol=1e-14)
    assert model.predict(x[:0]).shape == (0, 2)


def test_same_seed_same_data_is_bitwise_identical():
    x, y = two_blobs(200)
    runs = [mlp(seed=7) for _ in range(2)]
    histories = [model.fit(x, y, epochs=2, batch_size=16, verbose=0).history for model in runs]
    assert histories[0] == histories[1]
    assert weights_equal(*runs)
    assert not weights_equal(runs[0], mlp(seed=8).build())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_epochs_equal_one_epoch_saved_loaded_and_one_more(tmp_path, dtype):
    x, y = two_blobs(200)
    straight = mlp(seed=3, dtype=dtype)
    straight_history = straight.fit(x, y, epochs=2, batch_size=16, verbose=0)

    resumed = mlp(seed=3, dtype=dtype)
    first = resumed.fit(x, y, epochs=1, batch_size=16, verbose=0)
    resumed.save(tmp_path / "model.sn")
    resumed = sn.load(tmp_path / "model.sn")
    second = resumed.fit(x, y, epochs=1, batch_size=16, verbose=0)

    assert weights_equal(straight, resumed)
    assert first["loss"] + second["loss"] == straight_history["loss"]
    assert first["accuracy"] + second["accuracy"] == straight_history["accuracy"]
    assert resumed.epochs_trained == 2 and resumed.optimizer.iterations == straight.optimizer.iterations


def test_progress_bar_and_silence(capsys):
    x, y = two_blobs(64)
    model = mlp()
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, batch_size=32, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2 [" in out and "Epoch 2/2 [" in out and "2/2" in out and "accuracy" in out


def test_check_model_passes_for_each_loss(rng):
    x = rng.normal(size=(4, 3))
    cases = [("cross_entropy", rng.integers(0, 3, size=4)),
             ("mse", rng.normal(size=(4, 3))),
             ("binary_cross_entropy", rng.uniform(size=(4, 3)))]
    for loss, y in cases:
        model = sn.Sequential([Dense(5, activation="tanh"), Activation("gelu"), Dense(3)],
                              input_shape=(3,), seed=0).compile("adam", loss)
        report = check_model(model, x, y)
        assert report.passed, str(report)
        assert len(report.rows) == 5  # input, two W, two b


def test_float32_model_has_no_silent_float64():
    x, y = two_blobs(32)
    model = mlp()
    model.train_step(x, y)
    for layer in model.layers:
        for key in layer.params:
            assert layer.params[key].dtype == layer.grads[key].dtype == np.float32
    assert model.predict(x.astype(np.float64)).dtype == np.float32


def test_errors_name_the_model_and_shapes():
    model = mlp()
    x, y = two_blobs(10)
    expected = r"sequential: expected input of shape \(N, 4, 4, 1\), got \(10, 16\)"
    with pytest.raises(ValueError, match=expected):
        model.predict(x.reshape(10, 16))
    with pytest.raises(ValueError, match="got 10 inputs but"):
        model.fit(x, y[:5], verbose=0)
    with pytest.raises(RuntimeError, match="compile"):
        sn.Sequential([Dense(2)], input_shape=(3,)).fit(np.zeros((2, 3)), [0, 1])
    with pytest.raises(TypeError, match="epochs must be an int >= 0, got 1.5"):
        model.fit(x, y, epochs=1.5, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(TypeError, match="cross_entropy: expected integer class labels"):
        model.fit(x, np.array(["a"] * 10), verbose=0)
    with pytest.raises(TypeError, match="expects a Layer"):
        sn.Sequential().add("dense")
    checked = sn.Sequential([Dense(2)], input_shape=(2,), check_numerics=True)
    with pytest.raises(ValueError, match="NaN or inf"):
        checked.predict(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="no input_shape"):
        sn.Sequential([Dense(2)]).build()


def test_backward_returns_the_input_gradient_and_leaves_weights_alone(rng):
    model = mlp(dtype="float64").build()
    before = {k: v.copy() for k, v in model.get_weights().items()}
    logits = model.forward(rng.normal(size=(3, 4, 4, 1)))
    dx = model.backward(np.ones_like(logits))
    assert dx.shape == (3, 4, 4, 1)
    assert weights_equal_dicts(before, model.get_weights())


def test_add_after_build_builds_the_new_layer():
    model = sn.Sequential([Flatten()], input_shape=(2, 3)).build()
    model.add(Dense(4))
    assert model.layers[1].params["W"].shape == (6, 4)
    assert model.output_shape == (4,)


def test_interrupted_fit_keeps_finished_epochs_in_the_given_history(monkeypatch):
    x, y = two_blobs(64)
    model = mlp()
    original_step, calls = model.train_step, []

    def step_then_interrupt(xb, yb):
        calls.append(1)
        if len(calls) == 5:          # in the third epoch (2 steps per epoch)
            raise KeyboardInterrupt
        return original_step(xb, yb)

    monkeypatch.setattr(model, "train_step", step_then_interrupt)
    history = sn.History()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=5, batch_size=32, verbose=0, history=history)
    assert history.epoch == [1, 2] and len(history["loss"]) == 2
    assert len(history.seconds) == 2 and all(s > 0 for s in history.seconds)


def test_predict_proba_and_classes_need_class_scores_and_say_which_was_called():
    from scipy.special import softmax

    x = np.random.default_rng(3).normal(size=(5, 4, 4, 1))
    model = sn.Sequential([Flatten(), Dense(3)], input_shape=(4, 4, 1), seed=1, dtype="float64").build()
    logits = model.predict(x, batch_size=2)
    np.testing.assert_allclose(model.predict_proba(x, batch_size=2), softmax(logits, axis=1),
                               rtol=0, atol=1e-15)
    np.testing.assert_array_equal(model.predict_classes(x, batch_size=2), logits.argmax(axis=1))
    images = sn.Sequential([Activation("relu")], input_shape=(4, 4, 1)).build()
    for method in ("predict_proba", "predict_classes"):
        with pytest.raises(ValueError, match=rf"^sequential(_\d+)?: {method} needs outputs of shape "
                                             rf"\(N, classes\), got \(5, 4, 4, 1\)$"):
            getattr(images, method)(x)
