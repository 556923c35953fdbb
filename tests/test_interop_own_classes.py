"""The PyTorch bridge recognises scratchnet's classes as class objects, never by their names.

A student's own ``class Dense(Layer)`` (a tanh inside) used to become an ``nn.Linear`` (the twin
then differed by 1.9, silently); the exercise starter's MaxPool2D crashed with AttributeError.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import interop
from scratchnet import layers as L
from scratchnet.losses import Loss
from scratchnet.schedules import ReduceOnPlateau

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_torch_thread")]


class Dense(L.Layer):
    """A student's own Dense (lesson 2), with Keras-like attributes and a tanh built in."""

    def __init__(self, units, activation="linear", use_bias=True, name=None):
        super().__init__(name)
        self.units, self.activation, self.use_bias = units, activation, use_bias

    def output_shape(self, input_shape):
        return (self.units,)

    def init_params(self, input_shape, rng):
        return {"W": rng.normal(size=(input_shape[0], self.units)) * 0.1, "b": np.zeros(self.units)}

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x": x}
        return np.tanh(x @ self.params["W"] + self.params["b"])

    def backward(self, dy):
        raise NotImplementedError


class HeConv(L.Conv2D):
    """A subclass of scratchnet's Conv2D (only its initial weights differ)."""

    def init_params(self, input_shape, rng):
        params = super().init_params(input_shape, rng)
        params["W"] = np.full_like(params["W"], 0.01)
        return params


def starter_max_pool():
    """The exercise starter's MaxPool2D class (a student's pooling layer, no padding attribute)."""
    path = Path(sn.__file__).parent / "exercises" / "starters" / "max_pool.py"
    spec = importlib.util.spec_from_file_location("max_pool_starter", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MaxPool2D


def test_own_class_named_dense_is_refused_not_made_an_nn_linear():
    model = sn.Sequential([L.Flatten(), Dense(3, name="mine")], input_shape=(4, 4, 1), seed=0,
                          dtype="float64").build()
    with pytest.raises(interop.UnsupportedLayerError,
                       match=r"'mine' \(Dense\) has no PyTorch equivalent here \(class "
                             r".*test_interop_own_classes\.Dense is not scratchnet\.layers\.Dense: "
                             r"only scratchnet's own classes"):
        interop.to_torch(model)
    with pytest.raises(TypeError, match="mine: no PyTorch layout known for Dense"):
        interop.torch_state_dict(model)  # its W is not laid out like scratchnet's Dense's by decree


def test_exercise_starter_max_pool_is_refused_with_a_message_not_an_attribute_error():
    model = sn.Sequential([L.Conv2D(2, 3), starter_max_pool()(2, name="pool"), L.Flatten(), L.Dense(3)],
                          input_shape=(8, 8, 1), seed=0, dtype="float64").build()
    with pytest.raises(interop.UnsupportedLayerError,
                       match=r"'pool' \(MaxPool2D\).*is not scratchnet\.layers\.MaxPool2D"):
        interop.to_torch(model)


def test_subclass_is_refused_saying_only_exact_classes_are_translated():
    model = sn.Sequential([HeConv(2, 3, name="he"), L.Flatten(), L.Dense(3)], input_shape=(6, 6, 1),
                          seed=0, dtype="float64").build()
    with pytest.raises(interop.UnsupportedLayerError,
                       match=r"'he' \(HeConv\).*is a subclass of scratchnet's Conv2D: "
                             r"only these exact classes are translated, since a subclass may change forward"):
        interop.to_torch(model)


def test_subclass_weights_keep_their_parents_torch_layout():
    """torch_state_dict is about arrays only: a Conv2D subclass's W is laid out as Conv2D's."""
    mine = sn.Sequential([HeConv(2, 3), L.Flatten(), L.Dense(3)], input_shape=(6, 6, 1), seed=0,
                         dtype="float64").build()
    state = interop.torch_state_dict(mine)
    kernel = mine.layers[0].params["W"]                                   # (kh, kw, C, F)
    assert state["0.weight"].shape == (2, 1, 3, 3)
    np.testing.assert_array_equal(state["0.weight"], np.transpose(kernel, (3, 2, 0, 1)))
    np.testing.assert_array_equal(state["2.weight"], mine.layers[2].params["W"].T)


def test_parity_report_refuses_an_own_loss_named_like_mse():
    class Halved(Loss):
        name = "mse"  # the same short name as MeanSquaredError, another formula

        def forward(self, logits, y, weights=None):
            self.cache = {"d": logits - y}
            return float((self.cache["d"] ** 2).mean() / 2)

        def backward(self):
            return self.cache["d"] / self.cache["d"].size

    model = sn.Sequential([L.Dense(2)], input_shape=(3,), seed=0, dtype="float64")
    model.compile(sn.SGD(0.1), Halved())
    x, y = np.ones((2, 3)), np.zeros((2, 2))
    with pytest.raises(ValueError, match="no PyTorch counterpart known for the loss Halved"):
        interop.parity_report(model, x, y, verbose=False)


def test_to_torch_optimizer_refuses_a_subclass_of_reduce_on_plateau():
    class Patient(ReduceOnPlateau):
        pass

    model = sn.Sequential([L.Dense(2)], input_shape=(3,), seed=0).build()
    with pytest.raises(ValueError, match="ReduceOnPlateau follows a metric"):
        interop.to_torch_optimizer(sn.SGD(Patient(0.1)), interop.to_torch(model))
