"""BatchNorm: gradients, hand-worked values, PyTorch, running statistics, frozen rule, errors, save/load."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from serialization_models import assert_same_state

import scratchnet as sn
from scratchnet.gradcheck import check_layer
from scratchnet.layers import BatchNorm, Dense, Dropout, Flatten, SpatialDropout2D
from scratchnet.layers.normalization import column_sums

sample_shapes = st.one_of(
    st.tuples(st.integers(1, 5)),                                          # (D,)
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4)),    # (H, W, C)
)


def built_bn(sample_shape, seed=0, dtype="float64", **options):
    """A built BatchNorm with random gamma, beta and running statistics (not the trivial init)."""
    rng = np.random.default_rng(seed)
    layer = BatchNorm(**options)
    layer.build(sample_shape, dtype=dtype)
    channels = sample_shape[-1]
    layer.params["gamma"][...] = rng.uniform(0.5, 2.0, channels) * rng.choice([-1, 1], channels)
    layer.params["beta"][...] = rng.standard_normal(channels)
    layer.buffers["mean"][...] = rng.standard_normal(channels)
    layer.buffers["var"][...] = rng.uniform(0.2, 3.0, channels)
    return layer


# ------------------------------------------------------------------ gradient checks
# Batch >= 3: with only two values per channel, xhat = +-1/sqrt(1 + eps/var) barely depends on x,
# dx is ~eps-sized and central differences cannot resolve it (a batch of 2 is compared with PyTorch).
@given(sample_shape=sample_shapes, batch=st.integers(3, 5), training=st.booleans(),
       momentum=st.floats(0.0, 1.0), eps=st.sampled_from([1e-5, 1e-3, 0.5]), seed=st.integers(0, 99))
def test_batchnorm_passes_gradcheck(sample_shape, batch, training, momentum, eps, seed):
    layer = built_bn(sample_shape, seed, momentum=momentum, eps=eps)
    report = check_layer(layer, sample_shape, seed=seed, batch_size=batch, training=training)
    assert report.passed, str(report)
    assert {row.name for row in report.rows} == {"input", "gamma", "beta"}


def test_frozen_batchnorm_passes_gradcheck_in_training_mode():
    layer = built_bn((3, 3, 2), seed=1)
    layer.trainable = False
    assert check_layer(layer, (3, 3, 2), training=True).passed


@given(rows=st.integers(1, 200), channels=st.integers(1, 9), seed=st.integers(0, 99))
def test_column_sums_equal_numpy_sums(rows, channels, seed):
    a = np.random.default_rng(seed).standard_normal((rows, channels))
    np.testing.assert_allclose(column_sums(a), a.sum(axis=0), rtol=1e-12, atol=1e-12)
    assert column_sums(a.astype(np.float32)).dtype == np.float32


# ------------------------------------------------------------------ hand-worked values
def test_training_step_by_hand():
    layer = BatchNorm(eps=1e-5)  # momentum 0.1
    layer.build((1,), dtype="float64")
    x = np.array([[1.0], [3.0]])
    y = layer.forward(x, training=True)
    # mu = 2, biased var = ((1-2)^2 + (3-2)^2) / 2 = 1: xhat = -+1 / sqrt(1 + 1e-5)
    np.testing.assert_allclose(y, [[-1 / np.sqrt(1.00001)], [1 / np.sqrt(1.00001)]], rtol=1e-14)
    # running mean = 0.9 * 0 + 0.1 * 2; running var uses the UNBIASED variance 2: 0.9 * 1 + 0.1 * 2
    np.testing.assert_allclose(layer.buffers["mean"], [0.2], rtol=1e-14)
    np.testing.assert_allclose(layer.buffers["var"], [1.1], rtol=1e-14)
    # dy = [1, 0]: sum dy = 1, sum dy xhat = -s (s = 1/sqrt(1.00001)); dx = (1 / (2 sigma)) *
    # (2 dy - 1 - xhat * (-s)) = s/2 * ([2, 0] - 1 + [-s^2, s^2]) = s/2 * [1 - s^2, -1 + s^2]
    s = 1 / np.sqrt(1.00001)
    dx = layer.backward(np.array([[1.0], [0.0]]))
    np.testing.assert_allclose(dx, [[s / 2 * (1 - s * s)], [s / 2 * (s * s - 1)]], rtol=1e-9)
    np.testing.assert_allclose(layer.grads["beta"], [1.0], rtol=1e-14)
    np.testing.assert_allclose(layer.grads["gamma"], [-s], rtol=1e-14)


def test_inference_uses_the_running_statistics_by_hand():
    layer = BatchNorm(eps=0.25)
    layer.build((2,), dtype="float64")
    layer.buffers["mean"][...] = [1.0, -2.0]
    layer.buffers["var"][...] = [3.75, 0.0]           # sqrt(var + eps) = [2, 0.5]
    layer.params["gamma"][...] = [2.0, 1.0]
    layer.params["beta"][...] = [0.5, 0.0]
    x = np.array([[5.0, -1.0], [1.0, -2.0], [-3.0, 0.0]])
    y = layer.forward(x, training=False)
    # y = gamma (x - mean) / sqrt(var + eps) + beta
    np.testing.assert_allclose(y, [[4.5, 2.0], [0.5, 0.0], [-3.5, 4.0]], rtol=1e-15)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(dx, np.tile([1.0, 2.0], (3, 1)), rtol=1e-15)  # gamma / sqrt(var + eps)
    np.testing.assert_allclose(layer.grads["gamma"], [(2 + 0 - 2), (2 + 0 + 4)], rtol=1e-15)
    np.testing.assert_allclose(layer.grads["beta"], [3.0, 3.0])
    np.testing.assert_array_equal(layer.buffers["mean"], [1.0, -2.0])  # inference changes nothing


@given(sample_shape=sample_shapes, batch=st.integers(2, 5), seed=st.integers(0, 99))
def test_training_output_is_normalised_per_channel(sample_shape, batch, seed):
    layer = BatchNorm(eps=1e-12)
    layer.build(sample_shape, dtype="float64")
    x = np.random.default_rng(seed).normal(3.0, 2.0, (batch, *sample_shape))
    rows = layer.forward(x, training=True).reshape(-1, sample_shape[-1])
    np.testing.assert_allclose(rows.mean(axis=0), 0.0, atol=1e-12)
    spread = x.reshape(-1, sample_shape[-1]).std(axis=0)
    # std 1 per channel (a channel whose values happen to be all equal stays 0)
    np.testing.assert_allclose(rows.std(axis=0), np.where(spread > 1e-6, 1.0, 0.0), atol=1e-6)


def test_backward_changes_no_parameter_or_buffer():
    layer = built_bn((2, 2, 3))
    x = np.random.default_rng(0).standard_normal((4, 2, 2, 3))
    layer.forward(x, training=True)
    before = copy.deepcopy((layer.params, layer.buffers))
    layer.backward(np.ones_like(x))
    for store, saved in zip((layer.params, layer.buffers), before):
        for key in store:
            np.testing.assert_array_equal(store[key], saved[key])


# ------------------------------------------------------------------ frozen rule and dtypes
def test_frozen_batchnorm_runs_in_inference_mode_even_when_training():
    layer = built_bn((2, 2, 3), seed=3)
    x = np.random.default_rng(1).standard_normal((5, 2, 2, 3))
    expected = layer.forward(x, training=False)
    expected_dx = layer.backward(np.ones_like(x))
    buffers = copy.deepcopy(layer.buffers)
    layer.trainable = False
    np.testing.assert_array_equal(layer.forward(x, training=True), expected)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), expected_dx)
    for key in buffers:
        np.testing.assert_array_equal(layer.buffers[key], buffers[key])
    layer.trainable = True
    assert not np.allclose(layer.forward(x, training=True), expected)  # the rule is not vacuous


def test_float32_stays_float32():
    layer = BatchNorm()
    layer.build((3, 3, 4), dtype="float32")
    x = np.random.default_rng(0).standard_normal((2, 3, 3, 4)).astype(np.float32)
    for training in (True, False):
        y = layer.forward(x, training=training)
        dx = layer.backward(np.ones(y.shape, dtype=np.float64))
        assert y.dtype == dx.dtype == np.float32
        assert all(value.dtype == np.float32 for store in (layer.params, layer.grads, layer.buffers)
                   for value in store.values())


# ------------------------------------------------------------------ options and errors
def test_keras_momentum_is_one_minus_momentum():
    assert BatchNorm(keras_momentum=0.99).momentum == pytest.approx(0.01, abs=1e-15)
    assert BatchNorm().momentum == 0.1 and BatchNorm(momentum=0.3).momentum == 0.3
    layer = BatchNorm(keras_momentum=0.75)
    layer.build((1,), dtype="float64")
    layer.forward(np.array([[0.0], [4.0]]), training=True)
    np.testing.assert_allclose(layer.buffers["mean"], [0.25 * 2.0], rtol=1e-15)  # 0.75 * 0 + 0.25 * 2


@pytest.mark.parametrize("options, message", [
    ({"momentum": 0.1, "keras_momentum": 0.9}, "not both"),
    ({"momentum": 1.5}, "momentum must be a number in [0, 1], got 1.5"),
    ({"momentum": -0.1}, "momentum must be a number in [0, 1], got -0.1"),
    ({"keras_momentum": 2.0}, "keras_momentum must be a number in [0, 1], got 2.0"),
    ({"eps": 0.0}, "eps must be a finite number > 0, got 0.0"),
    ({"eps": -1e-5}, "eps must be a finite number > 0, got -1e-05"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match="batch_norm: ") as error:
        BatchNorm(**options)
    assert message in str(error.value)


def test_momentum_must_be_a_number():
    with pytest.raises(TypeError, match=r"^bn: momentum must be a number in \[0, 1\], got '0.1'$"):
        BatchNorm(momentum="0.1", name="bn")


@pytest.mark.parametrize("sample_shape, batch", [((4,), 1), ((1, 1, 3), 1)])
def test_one_value_per_channel_in_training_is_a_clear_error(sample_shape, batch):
    layer = BatchNorm(name="bn1")
    layer.build(sample_shape)
    x = np.ones((batch, *sample_shape))
    with pytest.raises(ValueError, match=r"bn1: training mode needs more than one value per channel"):
        layer.forward(x, training=True)
    assert layer.forward(x, training=False).shape == x.shape  # inference is fine
    np.testing.assert_array_equal(layer.buffers["mean"], 0.0)  # the refused batch changed nothing


def test_wrong_input_shape_names_the_layer():
    layer = BatchNorm(name="bn2")
    layer.build((4, 4, 3))
    with pytest.raises(ValueError, match=r"bn2: expected input of shape \(N, 4, 4, 3\), got \(2, 4, 4, 2\)"):
        layer.forward(np.zeros((2, 4, 4, 2)), training=True)


# ------------------------------------------------------------------ PyTorch
def to_nchw(array):
    return np.moveaxis(array, -1, 1) if array.ndim == 4 else array


@pytest.mark.torch
@pytest.mark.parametrize("sample_shape", [(5,), (4, 3, 6)])
@pytest.mark.parametrize("momentum", [0.1, 0.35])
def test_training_and_running_stats_match_pytorch(sample_shape, momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    channels = sample_shape[-1]
    layer = built_bn(sample_shape, seed=2, momentum=momentum, eps=1e-3)
    layer.buffers["mean"][...] = 0.0
    layer.buffers["var"][...] = 1.0  # PyTorch starts from these
    module_type = torch.nn.BatchNorm1d if len(sample_shape) == 1 else torch.nn.BatchNorm2d
    module = module_type(channels, eps=1e-3, momentum=momentum).double()
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(layer.params["gamma"]))
        module.bias.copy_(torch.from_numpy(layer.params["beta"]))
    for step, batch in enumerate([6, 3, 2, 5]):  # several steps, including a batch of 2
        x = rng.normal(step, 1.0 + step, (batch, *sample_shape))
        dy = rng.standard_normal(x.shape)
        y = layer.forward(x, training=True)
        dx = layer.backward(dy)
        module.train()
        x_t = torch.from_numpy(to_nchw(x).copy()).requires_grad_(True)
        y_t = module(x_t)
        y_t.backward(torch.from_numpy(to_nchw(dy).copy()))
        np.testing.assert_allclose(to_nchw(y), y_t.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(to_nchw(dx), x_t.grad.numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(layer.grads["gamma"], module.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.grads["beta"], module.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
        module.zero_grad()
        np.testing.assert_allclose(layer.buffers["mean"], module.running_mean.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(layer.buffers["var"], module.running_var.numpy(), rtol=1e-12, atol=1e-14)
    module.eval()
    x = rng.standard_normal((4, *sample_shape))
    with torch.no_grad():
        expected = module(torch.from_numpy(to_nchw(x).copy())).numpy()
    np.testing.assert_allclose(to_nchw(layer.forward(x, training=False)), expected, rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------ save, load and resume
def bn_model(seed=0, dtype="float64"):
    model = sn.Sequential([Dense(8), BatchNorm(), Dropout(0.3), Dense(3)],
                          input_shape=(6,), seed=seed, dtype=dtype)
    return model.compile("adam", "cross_entropy")


def bn_image_model(seed=0, dtype="float32"):
    model = sn.Sequential([BatchNorm(keras_momentum=0.9), SpatialDropout2D(0.25), Flatten(),
                           BatchNorm(), Dropout(0.2), Dense(3)],
                          input_shape=(4, 4, 2), seed=seed, dtype=dtype)
    return model.compile("adam", "cross_entropy")


def data(shape, n=50, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 2.0, (n, *shape)).astype(dtype), rng.integers(0, 3, n)


@pytest.mark.parametrize("make, shape, dtype", [(bn_model, (6,), "float64"),
                                                (bn_image_model, (4, 4, 2), "float32")])
def test_save_load_keeps_buffers_and_resume_is_bitwise(tmp_path, make, shape, dtype):
    # 50 samples, batch 16: the last batch has 2 samples (BatchNorm's smallest legal batch).
    x, y = data(shape, dtype=dtype)
    straight = make(seed=4, dtype=dtype)
    full = straight.fit(x, y, epochs=3, batch_size=16, verbose=0)

    resumed = make(seed=4, dtype=dtype)
    first = resumed.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert any(np.any(layer.buffers["mean"] != 0) for layer in resumed.layers if layer.buffers)
    resumed.save(tmp_path / "bn.sn")
    loaded = sn.load(tmp_path / "bn.sn")
    assert_same_state(resumed, loaded)
    np.testing.assert_array_equal(loaded.predict(x), resumed.predict(x))
    # the layers draw their dropout masks from the loaded model's generator, not a fresh one
    assert all(layer.rng is loaded.rng for layer in loaded.layers)
    second = loaded.fit(x, y, epochs=2, batch_size=16, verbose=0)

    assert_same_state(straight, loaded)
    assert first["loss"] + second["loss"] == full["loss"]


def test_resume_would_differ_if_the_dropout_generator_were_not_restored(tmp_path):
    # Guards the test above: with a fresh generator on the dropout layer, resuming differs.
    x, y = data((6,))
    straight = bn_model(seed=4)
    straight.fit(x, y, epochs=2, batch_size=16, verbose=0)
    resumed = bn_model(seed=4)
    resumed.fit(x, y, epochs=1, batch_size=16, verbose=0)
    resumed.save(tmp_path / "bn.sn")
    loaded = sn.load(tmp_path / "bn.sn")
    loaded.layers[2].set_rng(np.random.default_rng(123))
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert not np.array_equal(loaded.layers[0].params["W"], straight.layers[0].params["W"])
