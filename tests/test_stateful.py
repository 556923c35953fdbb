"""Objects used in the wrong order or reused: an inference pass between a training forward and its
backward, a new optimizer compiled in, one optimizer in two models, a parameter replaced by
assignment, callbacks reused across fits, a layer added to a second model."""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.inspect import activations, input_gradient
from scratchnet.layers import Activation, BatchNorm, Dense, Dropout, Residual

X = np.random.default_rng(1).normal(size=(16, 4))
Y = np.arange(16) % 3


def dropout_batchnorm_mlp(block=False):
    """Dense, BatchNorm, relu, Dropout, Dense (float64); ``block``: the middle three in a Residual."""
    middle = [BatchNorm(), Activation("relu"), Dropout(0.5)]
    layers = [Dense(8), Residual(middle)] if block else [Dense(8), *middle]
    model = sn.Sequential([*layers, Dense(3)], input_shape=(4,), seed=0, dtype="float64")
    return model.compile("sgd", "cross_entropy").build()


def first_weight_gradient(in_between=None, block=False):
    """dL/dW of the first Dense after forward(training=True), ``in_between(model)``, backward."""
    model = dropout_batchnorm_mlp(block)
    logits = model.forward(X, training=True)
    model.loss.forward(logits, Y)
    dlogits = model.loss.backward()
    if in_between is not None:
        in_between(model)
    model.backward(dlogits)
    return model.layers[0].grads["W"]


INFERENCE_PASSES = {
    "predict": lambda model: model.predict(X),
    "predict in chunks": lambda model: model.predict(X, batch_size=5),   # 16 > batch_size
    "evaluate": lambda model: model.evaluate(X, Y, batch_size=5),
    "predict_proba": lambda model: model.predict_proba(X[:3]),
    "activations": lambda model: activations(model, X[:3]),
    "input_gradient": lambda model: input_gradient(model, X[:3], 1),
}


@pytest.mark.parametrize("block", [False, True], ids=["chain", "in a Residual"])
@pytest.mark.parametrize("name", list(INFERENCE_PASSES))
def test_an_inference_pass_between_forward_and_backward_leaves_the_training_gradient(name, block):
    # forward(train) -> predict (to log the accuracy) -> backward: the training forward's gradient
    # (its dropout mask, BatchNorm's batch statistics), as PyTorch gives
    expected = first_weight_gradient(block=block)
    got = first_weight_gradient(INFERENCE_PASSES[name], block=block)
    np.testing.assert_array_equal(got, expected)
    assert np.abs(expected).max() > 0.1


def test_the_training_gradient_is_the_numerical_one_of_the_training_forward():
    # independent reference: the loss of forward(training=True) with the same dropout mask,
    # differentiated numerically (float64) with respect to the first W
    model = dropout_batchnorm_mlp()
    model.rng = np.random.default_rng(7)
    for layer in model.layers:
        layer.set_rng(model.rng)
    state = model.rng.bit_generator.state

    def loss_at(weights):
        model.rng.bit_generator.state = state  # the same dropout mask every time
        model.layers[0].params["W"][...] = weights
        return model.loss.forward(model.forward(X, training=True), Y)

    weights = model.layers[0].params["W"].copy()
    loss_at(weights)
    dlogits = model.loss.backward()
    model.predict(X, batch_size=5)
    model.backward(dlogits)
    analytic = model.layers[0].grads["W"].copy()
    numeric = np.zeros_like(weights)
    for index in np.ndindex(weights.shape):
        step = np.zeros_like(weights)
        step[index] = 1e-6
        numeric[index] = (loss_at(weights + step) - loss_at(weights - step)) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)
