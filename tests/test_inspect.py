"""activations / input_gradient / gradient_at: against a manual forward and central differences."""

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet import Sequential
from scratchnet.gradcheck import gradient_error, numerical_gradient
from scratchnet.inspect import activations, backprop, gradient_at, input_gradient, input_gradient_of_sum
from scratchnet.layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, Layer, MaxPool2D
from scratchnet.losses import CrossEntropy


def conv_model(dtype="float64", seed=0):
    return Sequential([
        Conv2D(3, 3, padding="same"), Activation("tanh"), MaxPool2D(2),
        Conv2D(4, 3, stride=1), Activation("tanh"), AvgPool2D(2, padding="same"),
        Flatten(), Dense(5),
    ], input_shape=(8, 8, 2), seed=seed, dtype=dtype).build()


def forward_to(model, x, stop):
    out = x
    for layer in model.layers[:stop + 1]:
        out = layer.forward(out)
    return out


def test_activations_equal_a_manual_forward(rng):
    model = conv_model()
    x = rng.normal(size=(3, 8, 8, 2))
    got = activations(model, x, layers=[0, "max_pool2d", -1])
    assert list(got) == ["conv2d", "max_pool2d", "dense"]
    for index, name in ((0, "conv2d"), (2, "max_pool2d"), (7, "dense")):
        np.testing.assert_allclose(got[name], forward_to(model, x, index), rtol=0, atol=1e-14)
    assert len(activations(model, x)) == len(model.layers)
    assert activations(model, x, []) == {}
    # copies: changing them does not change a second call
    got["conv2d"][...] = 0
    assert np.abs(activations(model, x, [0])["conv2d"]).max() > 0


def test_activations_come_in_model_order_and_an_empty_choice_still_checks_x(rng):
    model = conv_model()
    x = rng.normal(size=(2, 8, 8, 2))
    got = activations(model, x, layers=[-1, 3, 0, 3])
    assert list(got) == ["conv2d", "conv2d_1", "dense"]
    for index, name in ((0, "conv2d"), (3, "conv2d_1"), (7, "dense")):
        np.testing.assert_allclose(got[name], forward_to(model, x, index), rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 8, 8, 2\), got \(2, 5, 5, 2\)"):
        activations(model, np.zeros((2, 5, 5, 2)), [])


def test_input_gradient_of_a_class_score_matches_central_differences(rng):
    model = conv_model()
    x = rng.normal(size=(2, 8, 8, 2))
    classes = np.array([1, 4])
    analytic = input_gradient(model, x, classes)

    def score(xx):
        return float(forward_to(model, xx, 7)[np.arange(2), classes].sum())

    numeric = numerical_gradient(score, x.copy())
    assert gradient_error(analytic, numeric) < 1e-8
    # an int target: the same class for every sample
    numeric3 = numerical_gradient(lambda xx: float(forward_to(model, xx, 7)[:, 3].sum()), x.copy())
    assert gradient_error(input_gradient(model, x, 3), numeric3) < 1e-8


def test_input_gradient_of_the_loss_and_of_an_explicit_dy(rng):
    model = conv_model().compile("adam", "cross_entropy")
    x, y = rng.normal(size=(3, 8, 8, 2)), np.array([0, 2, 4])
    loss = CrossEntropy()
    numeric = numerical_gradient(lambda xx: loss.forward(forward_to(model, xx, 7), y), x.copy())
    # the mean loss has small gradients (~1e-3): round-off of the differences is ~1e-8 of them
    assert gradient_error(input_gradient(model, x, "loss", labels=y), numeric) < 1e-6
    dy = rng.normal(size=(3, 5))
    numeric = numerical_gradient(lambda xx: float((forward_to(model, xx, 7) * dy).sum()), x.copy())
    assert gradient_error(input_gradient(model, x, dy), numeric) < 1e-8


@pytest.mark.parametrize("layer", [0, 1, 2, "conv2d_1", 5, 6])
def test_gradient_at_a_layer_matches_central_differences(rng, layer):
    model = conv_model()
    x = rng.normal(size=(2, 8, 8, 2))
    activation, analytic = gradient_at(model, x, layer, np.array([2, 0]), return_activation=True)
    index = [lyr.name for lyr in model.layers].index(layer) if isinstance(layer, str) else layer
    np.testing.assert_allclose(activation, forward_to(model, x, index), atol=1e-14)

    def score(a):  # run the rest of the network from the activation
        out = a
        for later in model.layers[index + 1:]:
            out = later.forward(out)
        return float(out[0, 2] + out[1, 0])

    numeric = numerical_gradient(score, activation.copy())
    assert analytic.shape == activation.shape
    assert gradient_error(analytic, numeric) < 1e-8


def test_score_at_an_intermediate_layer(rng):
    """Deep-dream style: d(sum of channel 1 of conv2d_1) / d x."""
    model = conv_model()
    x = rng.normal(size=(1, 8, 8, 2))
    analytic = input_gradient(model, x, 1, score_layer="conv2d_1")
    numeric = numerical_gradient(lambda xx: float(forward_to(model, xx, 3)[..., 1].sum()), x.copy())
    assert gradient_error(analytic, numeric) < 1e-8


def test_parameters_optimizer_state_and_grads_are_unchanged(rng):
    model = conv_model(dtype="float32").compile("adam", "cross_entropy")
    x, y = rng.normal(size=(4, 8, 8, 2)), np.array([0, 1, 2, 3])
    model.train_step(x, y)  # fills grads and Adam moments
    before = copy.deepcopy([(lyr.params, lyr.grads, lyr.opt_state) for lyr in model.layers])
    input_gradient(model, x, "loss", labels=y)
    gradient_at(model, x, 1, 3)
    activations(model, x)
    input_gradient(model, x, 0, dtype="float64")
    for layer, (params, grads, state) in zip(model.layers, before):
        for store, saved in ((layer.params, params), (layer.grads, grads)):
            for key in saved:
                np.testing.assert_array_equal(store[key], saved[key])
        assert state.keys() == layer.opt_state.keys()
        for key in state:
            for name, value in state[key].items():
                np.testing.assert_array_equal(layer.opt_state[key][name], value)
    assert model.dtype == np.float32 and model.layers[0].params["W"].dtype == np.float32


def test_grads_inside_a_container_are_unchanged_too(rng):
    from scratchnet.layers import Residual
    from scratchnet.layers.base import iter_layers

    layers = [Conv2D(3, 3, padding="same"), Residual([Conv2D(3, 3, padding="same")]), Flatten(), Dense(2)]
    model = Sequential(layers, input_shape=(5, 5, 2), seed=0, dtype="float64")
    model.compile("adam", "cross_entropy")
    x, y = rng.normal(size=(2, 5, 5, 2)), np.array([0, 1])
    model.train_step(x, y)
    before = {layer.name: copy.deepcopy(layer.grads) for layer in iter_layers(model.layers)}
    input_gradient(model, x, "loss", labels=y)
    for layer in iter_layers(model.layers):
        for key, value in before[layer.name].items():
            np.testing.assert_array_equal(layer.grads[key], value, err_msg=f"{layer.name}/{key}")


def test_float32_model_computes_in_float32_and_float64_copy_agrees(rng):
    model = conv_model(dtype="float32")
    x = rng.normal(size=(2, 8, 8, 2)).astype(np.float32)
    g32 = input_gradient(model, x, 1)
    g64 = input_gradient(model, x, 1, dtype="float64")
    assert g32.dtype == np.float32 and g64.dtype == np.float64
    np.testing.assert_allclose(g32, g64, rtol=0, atol=1e-5 * np.abs(g64).max())


def test_backprop_returns_the_input_as_activation(rng):
    model = conv_model()
    x = rng.normal(size=(1, 8, 8, 2))
    activation, grad, out = backprop(model, x, 0)
    np.testing.assert_array_equal(activation, x)
    np.testing.assert_allclose(out, forward_to(model, x, 7), atol=1e-14)


class Box(Layer):
    """A stand-in container: one child, same shape."""

    def __init__(self, child):
        super().__init__()
        self.child = child

    def sublayers(self):
        return [self.child]


def test_bad_arguments_name_what_is_wrong(rng):
    model = conv_model()
    x = rng.normal(size=(2, 8, 8, 2))
    with pytest.raises(ValueError, match="no layer 'nope'; layers are: conv2d, activation"):
        activations(model, x, ["nope"])
    with pytest.raises(ValueError, match="layer index 8 out of range"):
        gradient_at(model, x, 8, 0)
    with pytest.raises(ValueError, match="must come before the score layer"):
        gradient_at(model, x, 7, 0)
    with pytest.raises(ValueError, match="class indices must be in \\[0, 4\\]"):
        input_gradient(model, x, 5)
    with pytest.raises(ValueError, match="one class index per sample \\(2,\\)"):
        input_gradient(model, x, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="target='loss' needs labels"):
        input_gradient(model, x, "loss")
    with pytest.raises(ValueError, match="output's shape \\(2, 5\\), got \\(2, 4\\)"):
        input_gradient(model, x, np.zeros((2, 4)))
    with pytest.raises(TypeError, match="int index, name or Layer object"):
        gradient_at(model, x, 1.5, 0)
    inner = Activation("relu", name="inner_relu")
    model.layers.insert(1, Box(inner))
    with pytest.raises(ValueError, match="'inner_relu' is inside the container 'box'"):
        activations(model, x, ["inner_relu"])


@given(split=st.integers(0, 6), n=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_the_walk_back_splits_at_any_layer(split, n, seed):
    """Chain rule: d score/dx = (d a_k/dx)^T (d score/d a_k). Backward from the output to layer k,
    then from layer k to the input with that gradient as the target, gives input_gradient."""
    data = np.random.default_rng(seed)
    model = conv_model(seed=seed % 7)
    x, dy = data.normal(size=(n, 8, 8, 2)), data.normal(size=(n, 5))
    at_k = gradient_at(model, x, split, dy)
    through_k = input_gradient(model, x, at_k, score_layer=split)
    np.testing.assert_allclose(through_k, input_gradient(model, x, dy), rtol=1e-12, atol=1e-14)


@given(chosen=st.sets(st.integers(0, 7), min_size=1, max_size=4), n=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_one_walk_for_several_layers_is_the_sum_of_single_layer_walks(chosen, n, seed):
    """d (sum_l sum(a_l * dy_l)) / dx in one walk = sum over l of input_gradient(.., dy_l, score_layer=l)."""
    data = np.random.default_rng(seed)
    model = conv_model(seed=seed % 7)
    x = data.normal(size=(n, 8, 8, 2))
    shapes = {index: out.shape for index, out in enumerate(activations(model, x).values())}
    targets = {index: data.normal(size=shapes[index]) for index in sorted(chosen, reverse=True)}
    expected = sum(input_gradient(model, x, dy, score_layer=index) for index, dy in targets.items())
    got = input_gradient_of_sum(model, x, targets)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())


def test_one_walk_takes_every_target_form_in_model_order_and_leaves_grads_alone(rng):
    """A callable (sees its layer's output), a float array, a class index, and two keys naming
    the same layer (their scores add); float32 in, float32 out; the layers' grads untouched."""
    model = conv_model(dtype="float32").compile("adam", "cross_entropy")
    x, y = rng.normal(size=(2, 8, 8, 2)).astype(np.float32), np.array([0, 3])
    model.train_step(x, y)
    grads_before = copy.deepcopy([layer.grads for layer in model.layers])
    dy_conv = rng.normal(size=(2, 2, 2, 4)).astype(np.float32)  # conv2d_1's output: 3x3 valid on 4x4
    seen = []

    def half_square(out):  # score = sum(out^2) / 2, d score / d out = out
        seen.append(out.shape)
        return out

    targets = {7: 2, "conv2d_1": dy_conv, 1: half_square, "activation": half_square}
    got = input_gradient_of_sum(model, x, targets)
    assert seen == [(2, 8, 8, 3), (2, 8, 8, 3)] and got.dtype == np.float32
    expected = (input_gradient(model, x, 2, dtype="float64")
                + input_gradient(model, x, dy_conv.astype(np.float64), score_layer=3, dtype="float64")
                + 2 * input_gradient(model, x, half_square, score_layer=1, dtype="float64"))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    for layer, grads in zip(model.layers, grads_before):
        for key, value in grads.items():
            np.testing.assert_array_equal(layer.grads[key], value)
    with pytest.raises(ValueError, match="input_gradient_of_sum needs at least one \\{layer: target\\}"):
        input_gradient_of_sum(model, x, {})
    with pytest.raises(ValueError, match="no layer 'nope'"):
        input_gradient_of_sum(model, x, {"nope": 0})


def test_model_methods_call_the_inspect_functions():
    import scratchnet as sn
    from scratchnet import inspect as inspect_module
    from scratchnet.layers import Dense

    model = sn.Sequential([Dense(4, activation="tanh"), Dense(3)], input_shape=(5,), seed=0,
                          dtype="float64")
    x = np.random.default_rng(0).normal(size=(2, 5))
    np.testing.assert_array_equal(model.input_gradient(x, 1), inspect_module.input_gradient(model, x, 1))
    np.testing.assert_array_equal(model.gradient_at(x, 0, 2), inspect_module.gradient_at(model, x, 0, 2))
    assert set(model.activations(x, [0, 1])) == {model.layers[0].name, model.layers[1].name}
