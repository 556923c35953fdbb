"""Dense, Activation, Flatten and the initialisers: values, gradients, errors, dtypes."""

import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import erf
from scipy.stats import norm

from scratchnet.gradcheck import check_layer
from scratchnet.initializers import compute_fans, initialize
from scratchnet.layers import Activation, Dense, Flatten, Layer
from scratchnet.layers.activations import ACTIVATIONS

ACTIVATION_NAMES = sorted(ACTIVATIONS)


# ---------------------------------------------------------------- gradient checks
@given(batch=st.integers(1, 4), d_in=st.integers(1, 6), units=st.integers(1, 5),
       activation=st.sampled_from(ACTIVATION_NAMES), use_bias=st.booleans(), seed=st.integers(0, 99))
def test_dense_passes_gradcheck(batch, d_in, units, activation, use_bias, seed):
    report = check_layer(Dense(units, activation=activation, use_bias=use_bias), (d_in,),
                         seed=seed, batch_size=batch)
    assert report.passed, str(report)
    assert {row.name for row in report.rows} == ({"input", "W", "b"} if use_bias else {"input", "W"})


@given(activation=st.sampled_from(ACTIVATION_NAMES),
       sample_shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
       seed=st.integers(0, 99))
def test_activation_passes_gradcheck(activation, sample_shape, seed):
    report = check_layer(Activation(activation), sample_shape, seed=seed)
    assert report.passed, str(report)


@given(sample_shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
def test_flatten_passes_gradcheck(sample_shape):
    assert check_layer(Flatten(), sample_shape).passed


# ---------------------------------------------------------------- forward values
def test_dense_forward_hand_worked():
    layer = Dense(2, activation="relu")
    layer.build((3,), dtype="float64")
    layer.params["W"][...] = [[1.0, -1.0], [2.0, 0.5], [0.0, 1.0]]
    layer.params["b"][...] = [0.5, -3.0]
    x = np.array([[1.0, 2.0, 3.0]])
    # z = [1 + 4 + 0 + 0.5, -1 + 1 + 3 - 3] = [5.5, 0.0]; relu keeps [5.5, 0]
    np.testing.assert_array_equal(layer.forward(x), [[5.5, 0.0]])
    dx = layer.backward(np.array([[1.0, 1.0]]))
    # relu'(5.5) = 1, relu'(0) = 0 (documented): dz = [1, 0], dx = dz @ W^T = [1, 2, 0]
    np.testing.assert_array_equal(dx, [[1.0, 2.0, 0.0]])
    np.testing.assert_array_equal(layer.grads["W"], [[1, 0], [2, 0], [3, 0]])
    np.testing.assert_array_equal(layer.grads["b"], [1, 0])


@pytest.mark.parametrize("name, reference", [
    ("relu", lambda x: np.where(x > 0, x, 0.0)),
    ("leaky_relu", lambda x: np.where(x > 0, x, 0.01 * x)),
    ("sigmoid", lambda x: 1.0 / (1.0 + np.exp(-x))),
    ("tanh", lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))),
    ("gelu", lambda x: x * norm.cdf(x)),
    ("linear", lambda x: x),
])
def test_activation_values_match_independent_formulas(name, reference):
    x = np.linspace(-6, 6, 49).reshape(7, 7)
    layer = Activation(name)
    layer.build((7,), dtype="float64")
    np.testing.assert_allclose(layer.forward(x), reference(x), rtol=1e-12, atol=1e-15)


def test_gelu_uses_the_exact_erf_form():
    x = np.array([[-1.0, 0.5, 2.0]])
    layer = Activation("gelu")
    layer.build((3,), dtype="float64")
    expected = [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x[0]]
    np.testing.assert_allclose(layer.forward(x)[0], expected, rtol=1e-14)
    assert erf(0.0) == 0.0


def test_softmax_backward_is_the_jacobian_vector_product(rng):
    x = rng.normal(size=(3, 5))
    dy = rng.normal(size=(3, 5))
    layer = Activation("softmax")
    layer.build((5,), dtype="float64")
    y = layer.forward(x)
    dx = layer.backward(dy)
    for n in range(3):
        jacobian = np.diag(y[n]) - np.outer(y[n], y[n])  # d y_i / d x_j
        np.testing.assert_allclose(dx[n], jacobian.T @ dy[n], rtol=1e-12, atol=1e-15)


def test_softmax_is_stable_for_huge_logits():
    layer = Activation("softmax")
    layer.build((3,), dtype="float64")
    y = layer.forward(np.array([[1e4, -1e4, 0.0], [1000.0, 1000.0, 1000.0]]))
    np.testing.assert_allclose(y, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-15)


def test_flatten_forward_and_backward_shapes():
    layer = Flatten()
    layer.build((2, 3, 4))
    x = np.arange(48, dtype="float32").reshape(2, 2, 3, 4)
    y = layer.forward(x)
    assert y.shape == (2, 24)
    np.testing.assert_array_equal(y[1], np.arange(24, 48))
    np.testing.assert_array_equal(layer.backward(y), x)


# ---------------------------------------------------------------- contract
def test_backward_never_changes_parameters(rng):
    layer = Dense(4, activation="tanh")
    layer.build((3,), rng=rng, dtype="float64")
    before = {key: value.copy() for key, value in layer.params.items()}
    layer.forward(rng.normal(size=(5, 3)))
    layer.backward(rng.normal(size=(5, 4)))
    for key in before:
        np.testing.assert_array_equal(layer.params[key], before[key])
        assert layer.grads[key].shape == layer.params[key].shape


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_float32_layers_stay_float32(activation, rng):
    layer = Dense(4, activation=activation)
    layer.build((3,), rng=rng)
    y = layer.forward(rng.normal(size=(5, 3)))  # float64 input is cast to the layer's dtype
    dx = layer.backward(rng.normal(size=(5, 4)))
    assert y.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.grads.values())


def test_pickled_layer_drops_its_forward_cache(rng):
    layer = Dense(3)
    layer.build((1000,), rng=rng)
    layer.forward(rng.normal(size=(500, 1000)))
    restored = pickle.loads(pickle.dumps(layer))
    assert restored.cache == {}
    np.testing.assert_array_equal(restored.params["W"], layer.params["W"])


def test_output_shape_is_arithmetic():
    assert Dense(7).output_shape((5,)) == (7,)
    assert Flatten().output_shape((4, 5, 6)) == (120,)
    assert Activation("relu").output_shape((3, 2)) == (3, 2)


# ---------------------------------------------------------------- errors
def test_wrong_input_shape_names_layer_and_shapes():
    layer = Dense(3, name="hidden")
    layer.build((4,))
    with pytest.raises(ValueError, match=r"hidden: expected input of shape \(N, 4\), got \(2, 5\)"):
        layer.forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"hidden: expected input of shape \(N, 4\), got \(4,\)"):
        layer.forward(np.zeros(4))


def test_dense_on_images_suggests_flatten():
    with pytest.raises(ValueError, match="dense: expected flat samples.*Flatten"):
        Dense(3).build((28, 28, 1))


def test_unknown_names_are_rejected_at_construction():
    with pytest.raises(ValueError, match="unknown activation 'relux'"):
        Activation("relux")
    with pytest.raises(ValueError, match="dense: unknown activation 'mish'"):
        Dense(3, activation="mish")
    with pytest.raises(ValueError, match="unknown initializer 'kaiming'"):
        Dense(3, kernel_initializer="kaiming")
    with pytest.raises(ValueError, match="^dense: units must be an int >= 1, got 0$"):
        Dense(0)


def test_unbuilt_layer_and_backward_before_forward():
    with pytest.raises(RuntimeError, match="not built"):
        Dense(3).forward(np.zeros((1, 2)))
    layer = Dense(3)
    layer.build((2,))
    with pytest.raises(RuntimeError, match="backward found no forward cache"):
        layer.backward(np.zeros((1, 3)))
    layer.forward(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"expected dy of shape \(4, 3\).*got \(4, 2\)"):
        layer.backward(np.zeros((4, 2)))


def test_non_numeric_input_is_a_type_error():
    layer = Flatten()
    layer.build((2,))
    with pytest.raises(TypeError, match="flatten: expected a numeric array"):
        layer.forward(np.array([["a", "b"]]))


# ---------------------------------------------------------------- initialisers
def test_fans_for_dense_and_conv_weights():
    assert compute_fans((30, 20)) == (30, 20)
    assert compute_fans((3, 5, 4, 8)) == (3 * 5 * 4, 3 * 5 * 8)


@pytest.mark.parametrize("name, expected_std", [
    ("he_normal", math.sqrt(2 / 200)),
    ("he_uniform", math.sqrt(2 / 200)),
    ("glorot_normal", math.sqrt(2 / (200 + 300))),
    ("glorot_uniform", math.sqrt(2 / (200 + 300))),
])
def test_initializer_variance(name, expected_std):
    weights = initialize(name, (200, 300), np.random.default_rng(0))
    # 60,000 draws: the sample std is within 1% of the target with overwhelming probability
    assert abs(weights.std() / expected_std - 1) < 0.01
    assert abs(weights.mean()) < 0.01 * expected_std * 10
    if name.endswith("uniform"):
        assert np.abs(weights).max() <= math.sqrt(3) * expected_std


def test_zeros_initializer():
    assert not np.any(initialize("zeros", (3, 4), np.random.default_rng(0)))


# ---------------------------------------------------------------- a student's own layer
class Square(Layer):
    """y = x^2, dx = 2 x dy: the kind of layer a student writes."""

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x": x}
        return x * x

    def backward(self, dy):
        return 2 * self.cache["x"] * dy


def test_custom_layer_subclass_passes_check():
    assert check_layer(Square(), (3, 2)).passed


@pytest.mark.torch
def test_dense_and_activations_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(4, 6))
    dy = rng.normal(size=(4, 5))
    torch_functions = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                       "gelu": torch.nn.functional.gelu, "linear": lambda t: t,
                       "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.01),
                       "softmax": lambda t: torch.softmax(t, dim=-1)}
    for name, torch_function in torch_functions.items():
        layer = Dense(5, activation=name)
        layer.build((6,), rng=rng, dtype="float64")
        tx = torch.tensor(x, requires_grad=True)
        tw = torch.tensor(layer.params["W"], requires_grad=True)
        tb = torch.tensor(layer.params["b"], requires_grad=True)
        ty = torch_function(tx @ tw + tb)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(layer.forward(x), ty.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(layer.backward(dy), tx.grad.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(layer.grads["W"], tw.grad.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(layer.grads["b"], tb.grad.numpy(), rtol=1e-10, atol=1e-13)
