"""A student's own training pieces, continued from test_own_layers.py: fit's augment, build
overrides, a Loss / Optimizer of one's own and predict_proba with a loss of one's own. Each
mistake is named on the student's class or function, with what to write instead."""

import re

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.gradcheck import check_layer
from scratchnet.layers import Conv2D, Dense, Flatten, Layer
from scratchnet.losses import Loss
from scratchnet.optimizers import SGD, Optimizer


# -------------------------------------------- 6. fit's augment must return (x, y), N samples each
def augment_model():
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 4)
    model = sn.Sequential([Conv2D(2, 3), Flatten(), Dense(3)], input_shape=(8, 8, 1), seed=0)
    return model.compile("sgd", "cross_entropy"), x, y


def only_x(x, y, rng):
    return x[:, ::-1]


@pytest.mark.parametrize("batch_size", [2, 4])
@pytest.mark.parametrize("augment, got", [
    (only_x, r"an array of shape \({n}, 8, 8, 1\)"),
    (lambda x, y, rng: (x, y, None), "a tuple of 3"),
    (lambda x, y, rng: [x, y, None], "a list of 3"),
    (lambda x, y, rng: {"x": x, "y": y}, "dict")])
def test_an_augment_not_returning_a_pair_is_named(augment, got, batch_size):
    model, x, y = augment_model()
    name = augment.__qualname__
    with pytest.raises(TypeError, match=rf"^sequential: fit's augment {name} must return the pair "
                                        rf"\(x_batch, y_batch\), got {got.format(n=batch_size)}; write "
                                        r"`return x, y`"):
        model.fit(x, y, batch_size=batch_size, verbose=0, augment=augment)


@pytest.mark.parametrize("augment, shapes", [
    (lambda x, y, rng: (x[:3], y), r"x of shape \(3, 8, 8, 1\) and y of shape \(4,\)"),
    (lambda x, y, rng: (x, y[:3]), r"x of shape \(4, 8, 8, 1\) and y of shape \(3,\)"),
    (lambda x, y, rng: (x[0], y), r"x of shape \(8, 8, 1\) and y of shape \(4,\)"),
    (lambda x, y, rng: (x, 1), r"x of shape \(4, 8, 8, 1\) and y of shape \(\)")])
def test_an_augment_changing_the_number_of_samples_is_named(augment, shapes):
    model, x, y = augment_model()
    with pytest.raises(ValueError, match=rf"^sequential: fit's augment .*<lambda> was given a batch of 4 "
                                         rf"samples and returned {shapes}; it must return 4 samples"):
        model.fit(x, y, batch_size=4, verbose=0, augment=augment)


@pytest.mark.parametrize("pair", [tuple, list])
def test_a_right_augment_trains_on_what_it_returns(pair):
    """An augment returning (x, y) or [x, y] is used as before: flipping every image twice is no
    change."""
    model, x, y = augment_model()
    twin = augment_model()[0]
    model.fit(x, y, batch_size=2, epochs=2, verbose=0,
              augment=lambda a, b, rng: pair([a[:, ::-1][:, ::-1], b]))
    twin.fit(x, y, batch_size=2, epochs=2, verbose=0)
    for key, value in twin.get_weights().items():
        np.testing.assert_array_equal(model.get_weights()[key], value)


# ------------------------------------------ 7. build overrides; params made in __init__
class OldBuild(Layer):
    """Overrides build(input_shape) alone, as the README's contract block once showed."""

    def __init__(self, units=4, name=None):
        super().__init__(name)
        self.units = units

    def build(self, input_shape):
        self.input_shape, self.built = tuple(input_shape), True
        self.params = {"W": np.ones((input_shape[0], self.units), "float32")}
        self.grads = {"W": np.zeros_like(self.params["W"])}
        return (self.units,)

    def output_shape(self, input_shape):
        return (self.units,)


class BuildReturnsNothing(OldBuild):
    def build(self, input_shape, rng=None, dtype="float32"):
        super(OldBuild, self).build(input_shape, rng, dtype)
        self.params["W"] = rng.normal(size=(input_shape[0], self.units)).astype(dtype)
        self.grads["W"] = np.zeros_like(self.params["W"])


class BuildReturnsShape(BuildReturnsNothing):
    def build(self, input_shape, rng=None, dtype="float32"):
        super().build(input_shape, rng, dtype)
        return self.output_shape(input_shape)


class ParamsInInit(Layer):
    def __init__(self, name=None):
        super().__init__(name)
        self.params = {"s": np.ones(6)}


def test_a_build_override_without_rng_and_dtype_is_named_with_the_hook_to_override():
    with pytest.raises(TypeError, match=r"^sequential: old_build \(OldBuild\)\.build\(input_shape\) cannot "
                                        r"be called as build\(input_shape, rng=\.\.\., dtype=\.\.\.\), as a "
                                        r"model calls it\. Override init_params\(self, input_shape, rng\)"):
        sn.Sequential([OldBuild(), Dense(3)], input_shape=(6,)).build()


def test_a_build_override_must_return_the_output_shape():
    with pytest.raises(TypeError, match=r"^sequential: build_returns_nothing \(BuildReturnsNothing\)\.build "
                                        r"returned None; it must return the shape of one output sample, "
                                        r"output_shape\(input_shape\) = \(4,\)"):
        sn.Sequential([BuildReturnsNothing(), Dense(3)], input_shape=(6,)).build()
    model = sn.Sequential([BuildReturnsShape(), Dense(3)], input_shape=(6,), seed=0).build()
    assert model.output_shape == (3,) and model.layers[1].params["W"].shape == (4, 3)


def test_params_created_in_init_are_refused_when_a_model_builds_the_layer():
    with pytest.raises(TypeError, match=r"^sequential: params_in_init: params 's' were created in __init__, "
                                        r"but build\(\) replaces self\.params"):
        sn.Sequential([ParamsInInit(), Dense(3)], input_shape=(6,)).build()


class FixedWeights(Layer):
    """Given its weights in __init__; a build of its own keeps them (and makes their grads)."""

    def __init__(self, weights, name=None):
        super().__init__(name)
        self.params = {"W": np.asarray(weights, "float64")}

    def build(self, input_shape, rng=None, dtype="float32"):
        self.input_shape, self.dtype = tuple(input_shape), np.dtype(dtype)
        self.params = {key: value.astype(dtype) for key, value in self.params.items()}
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        self.param_shapes = {key: value.shape for key, value in self.params.items()}
        self.opt_state, self.cache, self.built = {}, {}, True
        return self.output_shape(input_shape)

    def output_shape(self, input_shape):
        return (self.params["W"].shape[1],)

    def forward(self, x, training=False):
        self.cache = {"x": x}
        return x @ self.params["W"]

    def backward(self, dy):
        self.grads["W"][...] = self.cache["x"].T @ dy  # dL/dW = x^T dy
        return dy @ self.params["W"].T


def test_params_given_in_init_are_kept_by_a_build_of_ones_own():
    """Only Layer.build drops params made in __init__: a class overriding build is not refused
    by the model, nor by check_layer (they agree), and trains the weights it was given."""
    weights = np.arange(18.0).reshape(6, 3) / 10
    model = sn.Sequential([FixedWeights(weights), Dense(3)], input_shape=(6,), seed=0).build()
    np.testing.assert_array_equal(model.layers[0].params["W"], weights.astype("float32"))
    x = np.ones((2, 6), "float32")
    column_sums = [[4.5, 5.1, 5.7]] * 2  # x is ones: x @ W sums W's columns
    np.testing.assert_allclose(model.layers[0].forward(x), column_sums, rtol=1e-6)
    model.compile("sgd", "cross_entropy").fit(x, [0, 1], verbose=0)
    assert not np.array_equal(model.layers[0].params["W"], weights.astype("float32"))
    report = check_layer(FixedWeights(weights), (6,))
    assert report.passed, str(report)


class ParamsInInitThenSuperBuild(Layer):
    """Params made in __init__, a build override that calls super().build (which drops them)."""

    def __init__(self, name=None):
        super().__init__(name)
        self.params = {"w": np.ones(6)}

    def build(self, input_shape, rng=None, dtype="float32"):
        shape = super().build(input_shape, rng=rng, dtype=dtype)
        self.note = "built"
        return shape

    def forward(self, x, training=False):
        return x * self.params["w"]


def test_params_dropped_by_a_build_calling_super_are_named_by_the_model_and_check_layer():
    """Asked after build, not by class: an override calling super().build loses them too (this
    session first skipped every class with its own build: a raw KeyError 'w' in forward)."""
    expected = r"params_in_init_then_super_build: params 'w' were created in __init__, but build\(\) replaces"
    with pytest.raises(TypeError, match="^sequential: " + expected):
        sn.Sequential([ParamsInInitThenSuperBuild(), Dense(3)], input_shape=(6,)).build()
    report = check_layer(ParamsInInitThenSuperBuild(), (6,))
    assert not report.passed and re.search(expected, str(report)), str(report)


# ------------------------------------------- 7. (and) NumPy ints from output_shape
class HalfSize(Layer):
    def output_shape(self, input_shape):
        sizes = np.array(input_shape)
        return tuple(np.concatenate([sizes[:2] // 2, sizes[2:]]))  # np.int64 sizes


def test_numpy_int_sizes_from_output_shape_are_shown_as_ints():
    model = sn.Sequential([HalfSize(), Flatten(), Dense(3)], input_shape=(8, 8, 2)).build()
    assert "half_size (HalfSize)   (None, 4, 4, 2)" in model.summary_text()
    assert model.layers[0].checked_output_shape((8, 8, 2)) == (4, 4, 2)
    assert all(type(size) is int for size in model.layers[0].checked_output_shape((8, 8, 2)))


# ------------------------------- 8. a Loss / Optimizer of one's own: the hook to write, super()
class NoUpdate(Optimizer):
    def apply(self, param, grad, state, lr):  # the wrong name: update is the hook
        param -= lr * grad


class NoSuperOptimizer(Optimizer):
    def __init__(self, lr=0.1):
        self.rate = lr

    def update(self, param, grad, state, lr):
        param -= lr * grad


class NoForward(Loss):
    def __call__(self, logits, y):
        return 0.0


class NoBackward(Loss):
    def forward(self, logits, y, weights=None):
        return 0.0


class NoSuperLoss(Loss):
    def __init__(self):
        pass

    def forward(self, logits, y, weights=None):
        self.cache["logits"] = logits
        return 0.0


def fit_with(optimizer, loss):
    model = sn.Sequential([Dense(2)], input_shape=(3,), seed=0).compile(optimizer, loss)
    model.fit(np.ones((4, 3)), np.arange(4) % 2, verbose=0)


@pytest.mark.parametrize("optimizer, loss, error, said", [
    (NoUpdate(0.1), "cross_entropy", NotImplementedError,
     r"^NoUpdate must write update\(self, param, grad, state, lr\): change param in place"),
    ("sgd", NoForward(), NotImplementedError,
     r"^NoForward must write forward\(self, logits, y, weights=None\) -> float: the mean loss"),
    ("sgd", NoBackward(), NotImplementedError, r"^NoBackward must write backward\(self\) -> dL/dlogits"),
    (NoSuperOptimizer(), "cross_entropy", AttributeError,
     r"^'NoSuperOptimizer' object has no attribute 'iterations': Optimizer\.__init__ sets it .*, so the "
     r"__init__ of NoSuperOptimizer must call super\(\)\.__init__\(\.\.\.\) first$"),
    ("sgd", NoSuperLoss(), AttributeError,
     r"^'NoSuperLoss' object has no attribute 'cache': Loss\.__init__ sets it \(cache\), so the __init__ "
     r"of NoSuperLoss must call super\(\)\.__init__\(\.\.\.\) first$")])
def test_a_loss_or_optimizer_of_ones_own_is_told_what_it_misses(optimizer, loss, error, said):
    with pytest.raises(error, match=said):
        fit_with(optimizer, loss)


def test_other_missing_attributes_keep_pythons_message_and_copies_still_work():
    import copy
    import pickle

    optimizer, loss = SGD(0.1), sn.losses.CrossEntropy()
    for obj in (optimizer, loss):
        python_says = rf"^'{type(obj).__name__}' object has no attribute 'nothing'$"
        with pytest.raises(AttributeError, match=python_says):
            obj.nothing  # noqa: B018
        assert getattr(obj, "nothing", 7) == 7
    assert copy.deepcopy(optimizer).iterations == 0
    assert pickle.loads(pickle.dumps(loss)).cache == {}


# -------------------------------- 9. predict_proba: a BCE of one's own, under another name
class FocalishBCE(sn.losses.BinaryCrossEntropy):
    name = "my_bce"  # a subclass under its own name: still one yes/no per column


def test_predict_proba_and_classes_decide_binary_by_class_not_by_name():
    from scratchnet.metrics import predictions, probabilities

    logits = np.array([[2.0, -1.0, 0.5], [-3.0, 0.0, 4.0]])
    sigmoid = 1 / (1 + np.exp(-logits))  # by hand
    np.testing.assert_allclose(probabilities(logits, FocalishBCE()), sigmoid, rtol=1e-15)
    np.testing.assert_array_equal(predictions(logits, FocalishBCE()), [[1, 0, 1], [0, 0, 1]])
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities(logits, "cross_entropy"), softmax, rtol=1e-12)

    model = sn.Sequential([Dense(3)], input_shape=(2,), seed=0, dtype="float64").compile("sgd", FocalishBCE())
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    z = model.predict(x)
    np.testing.assert_allclose(model.predict_proba(x), 1 / (1 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_array_equal(model.predict_classes(x), (z > 0).astype(int))
