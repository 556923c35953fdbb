"""A student's own layers, containers, losses and optimizers, written as README invites
(subclassing Layer, Conv2D, Loss, Optimizer; a container through ``sublayers()``): the model
runs THEIR code, and a mistake in it is blamed on their class, with what to write instead."""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.gradcheck import compare_training
from scratchnet.layers import Chain, Conv2D, Dense, Flatten, Layer, Residual


def images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6, 6, 1)), rng.integers(0, 3, size=n)


class ZeroWeightGradConv(Conv2D):
    """README's ``class MyConv(Conv2D): def backward(...)``, deliberately wrong: dW is always 0."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["W"] = np.zeros_like(self.grads["W"])
        return dx


# ------------------------------------------------- 1. a subclass's backward runs in first place
@pytest.mark.parametrize("wrap", [lambda conv: conv, lambda conv: Chain([conv, Flatten()]),
                                  lambda conv: Residual(conv)], ids=["top", "chain", "residual"])
def test_a_subclass_backward_runs_when_its_layer_is_first(wrap):
    """Sequential.backward(input_gradient=False) skips dx of the first layer through the fast
    ``backward_params``; a subclass overriding ``backward`` must still run its own."""
    x, _ = images()
    conv = ZeroWeightGradConv(1, 3, padding="same")  # 1 filter: the identity shortcut adds
    model = sn.Sequential([wrap(conv), Flatten(), Dense(3)], input_shape=(6, 6, 1), seed=0, dtype="float64")
    model.build()
    logits = model.forward(x, training=True)
    conv.grads["W"][...] = 1.0
    model.backward(np.ones_like(logits), input_gradient=False)
    np.testing.assert_array_equal(conv.grads["W"], 0.0)
    assert np.abs(conv.grads["b"]).max() > 0  # its super().backward ran: db = sum of dy != 0


def test_compare_training_catches_a_wrong_backward_in_first_place():
    x, y = images(8)
    model = sn.Sequential([Conv2D(2, 3), Flatten(), Dense(3)], input_shape=(6, 6, 1), seed=0)
    model.compile("sgd", "cross_entropy")
    assert not compare_training(model, "conv2d", ZeroWeightGradConv(2, 3), x, y, steps=2).passed
    assert compare_training(model, "conv2d", Conv2D(2, 3), x, y, steps=2).passed
