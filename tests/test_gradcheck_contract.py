"""The checker's contract checks: every broken rule found, named (layer and array), before numbers."""

import numpy as np
import pytest

from scratchnet.gradcheck import check_layer, check_loss, check_model
from scratchnet.layers import Dense, Layer
from scratchnet.model import Sequential


class Bugged(Dense):
    """A Dense layer whose backward breaks the contract in the way named by ``bug``."""

    def __init__(self, units=3, bug=None, **options):
        super().__init__(units, **options)
        self.bug = bug

    def get_config(self):
        return {**super().get_config(), "bug": self.bug}

    def forward(self, x, training=False):
        y = super().forward(x, training)
        if self.bug == "nested cache in place":  # a list of arrays in a dict, as Winograd's V chunks
            self.cache["saved"] = {"chunks": [x.copy(), x.copy()]}
        return y

    def backward(self, dy):
        bug = self.bug
        if bug == "dy in place":
            dx = super().backward(dy.copy())
            dy *= 2
            return dx
        dx = super().backward(dy)
        if bug == "bias (1, U)":
            self.grads["b"] = self.grads["b"][None, :]
        elif bug == "transposed dW":
            self.grads["W"] = self.grads["W"].T
        elif bug == "sgd step":
            self.params["W"] -= 0.1 * self.grads["W"]
        elif bug == "replace dict":
            self.params = {key: value - 0.1 * self.grads[key] for key, value in self.params.items()}
        elif bug == "missing b":
            del self.grads["b"]
        elif bug == "extra key":
            self.grads["gamma"] = np.zeros(3)
        elif bug == "float32 grads":
            self.grads["W"] = self.grads["W"].astype(np.float32)
        elif bug == "accumulate":
            self.total = getattr(self, "total", 0) + self.grads["W"]
            self.grads["W"] = self.total
        elif bug == "cache in place":
            self.cache["x"] *= 0.5
        elif bug == "nested cache in place":
            self.cache["saved"]["chunks"][1] *= 0.5
        elif bug == "None":
            return None
        elif bug == "extra axis":
            return dx[:, None, :]
        elif bug == "transposed dx":
            return dx.T
        return dx


@pytest.mark.parametrize("bug, phrases", [
    ("bias (1, U)", ["bugged: grads['b'] has shape (1, 3) but params['b'] has shape (3,)", "extra axis"]),
    ("transposed dW", ["grads['W'] has shape (3, 4) but params['W'] has shape (4, 3)", "transposed"]),
    ("sgd step", ["backward changed params['W']", "own update step", "update them twice"]),
    ("replace dict", ["backward replaced the params dict"]),
    ("missing b", ["grads has no 'b'", "must fill grads['b']"]),
    ("extra key", ["grads has 'gamma', which is not a parameter"]),
    ("float32 grads", ["grads['W'] is float32 but params['W'] is float64"]),
    ("accumulate", ["calling backward (grads of 'W') twice gave different results"]),
    ("cache in place", ["modified the cached array cache['x'] in place"]),
    ("nested cache in place", ["modified the cached array cache['saved']['chunks'][1] in place"]),
    ("dy in place", ["backward modified dy in place"]),
    ("None", ["backward returned None", "shape (3, 4)"]),
    ("extra axis", ["backward returned dx of shape (3, 1, 4), expected the input's shape (3, 4)",
                    "extra or missing axis of size 1"]),
    ("transposed dx", ["dx of shape (4, 3), expected the input's shape (3, 4)", "wrong order"]),
])
def test_each_broken_rule_fails_with_a_message_naming_layer_and_array(bug, phrases):
    report = check_layer(Bugged(3, bug=bug, name="bugged"), (4,))
    assert not report.passed
    text = str(report)
    assert "contract problems" in text and text.endswith("FAILED")
    for phrase in phrases:
        assert phrase in text, text


def test_a_correct_layer_has_no_contract_problem():
    report = check_layer(Bugged(3), (4,))
    assert report.passed and report.contract == []


def test_the_1x3_bias_also_fails_check_model(rng):
    model = Sequential([Bugged(3, bug="bias (1, U)", name="head")], input_shape=(4,), seed=0)
    model.compile(loss="cross_entropy")
    report = check_model(model, rng.normal(size=(2, 4)), np.array([0, 2]))
    assert not report.passed
    assert "head: grads['b'] has shape (1, 3) but params['b'] has shape (3,)" in str(report)


def test_sgd_step_in_backward_fails_check_model(rng):
    model = Sequential([Bugged(3, bug="sgd step", name="head")], input_shape=(4,), seed=0)
    model.compile(loss="cross_entropy")
    report = check_model(model, rng.normal(size=(2, 4)), np.array([0, 2]))
    assert "head: backward changed its parameters" in str(report)


class ParamsInInit(Layer):
    def __init__(self):
        super().__init__()
        self.params = {"w": np.ones(3)}

    def forward(self, x, training=False):
        self.cache = {"x": x}
        return x * self.params["w"]

    def backward(self, dy):
        self.grads["w"] = (dy * self.cache["x"]).sum(axis=0)
        return dy * self.params["w"]


def test_params_created_in_init_are_explained_before_build_replaces_them():
    report = check_layer(ParamsInInit(), (3,))
    assert not report.passed
    text = str(report)
    assert "params 'w' were created in __init__" in text and "init_params" in text


class NoisyInference(Layer):
    def forward(self, x, training=False):
        self.cache = {"mask": self.random_generator().random(x.shape) > 0.5}
        return x * self.cache["mask"]

    def backward(self, dy):
        return dy * self.cache["mask"]


def test_inference_forward_must_be_deterministic():
    report = check_layer(NoisyInference(), (6,))
    assert "forward(x, training=False) twice gave different results" in str(report)


class RaisesInForward(Layer):
    def forward(self, x, training=False):
        return x @ self.params["W"]


def test_an_exception_in_the_students_code_is_reported_with_layer_and_line():
    report = check_layer(RaisesInForward(), (3,))
    text = str(report)
    assert "raises_in_forward: forward raised KeyError: 'W'" in text
    assert "test_gradcheck_contract.py line" in text


class NamelessLoss:
    """A student's loss without a ``name``: the report names its class."""

    def forward(self, logits, labels):
        return float(np.sum(logits)) / self.missing

    def backward(self):
        return None


def test_an_exception_in_a_nameless_loss_is_reported_with_class_and_line():
    report = check_loss(NamelessLoss(), np.zeros((2, 3)), np.array([0, 1]))
    assert report.title.startswith("check_loss: NamelessLoss, logits (2, 3)")
    assert len(report.contract) == 1
    assert report.contract[0].startswith("NamelessLoss: forward/backward raised AttributeError: ")
    assert "test_gradcheck_contract.py line" in report.contract[0]


class TwoDense(Layer):
    """A minimal container: y = second(first(x)); its own params stay empty (the DESIGN's rule)."""

    def __init__(self, bug=False):
        super().__init__()
        self.first, self.second = Dense(4, activation="tanh", name="inner1"), Dense(2, name="inner2")
        self.bug = bug

    def sublayers(self):
        return [self.first, self.second]

    def build(self, input_shape, rng=None, dtype="float32"):
        shape = self.first.build(input_shape, rng=rng, dtype=dtype)
        out = self.second.build(shape, rng=rng, dtype=dtype)
        super().build(input_shape, rng=rng, dtype=dtype)
        return out

    def output_shape(self, input_shape):
        return (2,)

    def forward(self, x, training=False):
        self.cache = {"x": x}
        return self.second.forward(self.first.forward(x, training), training)

    def backward(self, dy):
        dh = self.second.backward(dy)
        if self.bug:
            self.second.grads["W"] = 2 * self.second.grads["W"]
        return self.first.backward(dh)


def test_a_containers_children_are_checked_by_name():
    report = check_layer(TwoDense(), (3,))
    assert report.passed
    assert [row.name for row in report.rows] == ["input", "inner1/W", "inner1/b", "inner2/W", "inner2/b"]
    report = check_layer(TwoDense(bug=True), (3,))
    assert not report.passed and [row.name for row in report.failing()] == ["inner2/W"]
    assert "inner2/W: 8 of 8 checked elements disagree" in str(report)


class GlobalRandomDropout(Layer):
    def forward(self, x, training=False):
        mask = np.random.random(x.shape) > 0.5 if training else np.ones(x.shape, dtype=bool)
        self.cache = {"mask": mask}
        return x * mask

    def backward(self, dy):
        return dy * self.cache["mask"]


def test_training_randomness_must_come_from_the_layers_generator():
    report = check_layer(GlobalRandomDropout(), (20,), training=True)
    assert "draw random numbers from self.random_generator(), never from np.random" in str(report)
