"""What a careless student gets wrong when training: optimizer hyperparameters, a layer of one's
own that never fills its gradients, unscaled images, NaN in the data.

Every error or warning names who raised it (the optimizer, the model, the layer) and what was
expected.
"""

import re
import warnings

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.layers import Activation, BatchNorm, Chain, Dense, Flatten, Residual
from scratchnet.optimizers import SGD, Adam, AdamW


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 4, 4, 1)).astype("float32"), rng.integers(0, 2, size=n)


def mlp(*first, optimizer="adam", **options):
    layers = [*first, Flatten(), Dense(3, activation="relu"), Dense(2)]
    return sn.Sequential(layers, input_shape=(4, 4, 1), seed=0, **options).compile(optimizer).build()


# ----------------------------------------------------------------- optimizer hyperparameters
@pytest.mark.parametrize("make", [
    lambda lr, mu: SGD(lr=lr, momentum=mu, nesterov=True),
    lambda lr, mu: Adam(lr=lr, beta1=mu),
    lambda lr, mu: AdamW(lr=lr, betas=(mu, np.float32(0.99))),
])
def test_numpy_numbers_are_hyperparameters_like_python_ones(make):
    """np.int64(1) and np.float64(0.5) give bitwise the steps of 1 and 0.5."""
    grads = np.random.default_rng(0).normal(size=(2, 3, 4))
    params = {}
    for kind, (lr, mu) in {"python": (1, 0.5), "numpy": (np.int64(1), np.float64(0.5))}.items():
        layer = Dense(4)
        layer.build((3,), np.random.default_rng(1), dtype="float64")
        optimizer = make(lr, mu)
        for grad in grads:
            layer.grads["W"][...] = grad
            optimizer.step([layer])
        params[kind] = layer.params["W"]
    np.testing.assert_array_equal(params["numpy"], params["python"])
    assert optimizer.lr == 1.0


def test_sgd_with_numpy_numbers_takes_the_hand_worked_steps():
    """p = 1, g = 1 twice, lr = 1, mu = 0.5: buf = 1 then 1.5, p = 0 then -1.5."""
    layer = Dense(1, use_bias=False)
    layer.build((1,), dtype="float64")
    layer.params["W"][...] = 1.0
    optimizer = SGD(lr=np.int64(1), momentum=np.float32(0.5))
    for expected in (0.0, -1.5):
        layer.grads["W"][...] = 1.0
        optimizer.step([layer])
        assert layer.params["W"][0, 0] == expected
    optimizer.lr = np.int32(2)
    assert optimizer.lr == 2.0 and type(optimizer.lr) is float


@pytest.mark.parametrize("make, error, message", [
    (lambda: SGD(momentum=1.5), ValueError,
     r"^SGD: momentum must be a number in \[0, 1\), got 1.5 \(.*diverges\)$"),
    (lambda: SGD(momentum=1), ValueError, r"^SGD: momentum must be a number in \[0, 1\), got 1 "),
    (lambda: SGD(momentum=-0.1), ValueError, r"^SGD: momentum must be a number in \[0, 1\), got -0.1$"),
    (lambda: SGD(momentum=True), TypeError, r"^SGD: momentum must be a number in \[0, 1\), got True$"),
    (lambda: SGD(momentum="0.9"), TypeError, r"^SGD: momentum must be a number in \[0, 1\), got '0.9'$"),
    (lambda: SGD(momentum=0.9, nesterov="no"), TypeError, r"^SGD: nesterov must be True or False, got 'no'$"),
    (lambda: Adam(eps=0), ValueError, r"^Adam: eps must be a finite number > 0, got 0 \(.*0 / 0 = NaN\)$"),
    (lambda: AdamW(eps=-1e-8), ValueError, r"^AdamW: eps must be a finite number > 0, got -1e-08 "),
    (lambda: Adam(eps=None), TypeError, r"^Adam: eps must be a finite number > 0, got None$"),
    (lambda: Adam(beta2=1.0), ValueError, r"^Adam: beta2 must be a number in \[0, 1\), got 1.0 \(.*is 0\)$"),
    (lambda: AdamW(betas=(-0.1, 0.9)), ValueError, r"^AdamW: beta1 must be a number in \[0, 1\), got -0.1$"),
    (lambda: AdamW(betas=("0.9", 0.99)), TypeError,
     r"^AdamW: beta1 must be a number in \[0, 1\), got '0.9'$"),
    (lambda: Adam(beta1=np.bool_(True)), TypeError,
     rf"^Adam: beta1 must be a number in \[0, 1\), got {re.escape(repr(np.True_))}$"),
    (lambda: SGD(weight_decay=-1e-4), ValueError,
     r"^SGD: weight_decay must be a finite number >= 0, got -0.0001$"),
    (lambda: AdamW(weight_decay="0.01"), TypeError,
     r"^AdamW: weight_decay must be a finite number >= 0, got '0.01'$"),
    (lambda: Adam(clipnorm=-1.0), ValueError, r"^Adam: clipnorm must be a finite number > 0, got -1.0$"),
    (lambda: Adam(clipnorm=True), TypeError, r"^Adam: clipnorm must be a finite number > 0, got True$"),
    (lambda: SGD(lr=True), TypeError, r"^SGD: lr must be a positive number or a schedule object, got True$"),
    (lambda: SGD(lr=np.float64("nan")), ValueError, r"^SGD: lr must be a finite number > 0, got nan$"),
    (lambda: SGD(lr=float("inf")), ValueError, r"^SGD: lr must be a finite number > 0, got inf$"),
    (lambda: Adam(weight_decay=float("nan")), ValueError,
     r"^Adam: weight_decay must be a finite number >= 0, got nan$"),
])
def test_bad_hyperparameters_name_the_optimizer_and_what_it_expected(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_a_schedule_class_for_lr_is_refused_with_the_remedy():
    with pytest.raises(TypeError, match=r"^SGD: lr must be a positive number or a schedule object, got "
                                        r"the class ConstantLR itself; create one: ConstantLR\(\.\.\.\)$"):
        SGD(lr=sn.schedules.ConstantLR)


# ----------------------------------------------------------------- gradients at the step
def test_the_step_gives_the_hint_of_check_layer_for_a_gradient_of_the_wrong_shape():
    layer = Dense(3, name="head")
    layer.build((4,))
    layer.grads["W"] = np.zeros((3, 4), "float32")                          # dW = dz.T @ x
    with pytest.raises(ValueError, match=r"^head: grads\['W'\] must have the shape of params\['W'\], "
                                         r"\(4, 3\), got shape \(3, 4\) \(transposed: dW = x.T @ dz has the "
                                         r"shape of W\); backward fills every gradient"):
        SGD().step([layer])
    layer.grads["W"] = np.zeros((4, 3), "float32")
    layer.grads["b"] = np.zeros((1, 3), "float32")                          # keepdims=True
    with pytest.raises(ValueError, match=r"^head: grads\['b'\] .* got shape \(1, 3\) \(an extra axis of "
                                         r"size 1: sum with axis=0 and no keepdims"):
        SGD().step([layer])
    del layer.grads["b"]
    with pytest.raises(ValueError, match=r"^head: grads\['b'\] must have the shape of params\['b'\], \(3,\), "
                                         r"got nothing; .*the layer contract, grads\[name\] for every "
                                         r"params\[name\]; scratchnet.gradcheck.check_layer\(layer\)"):
        SGD().step([layer])


# ----------------------------------------------------------------- a backward that never fills grads
class Scale(sn.layers.Layer):
    """y = x * s per feature; dL/ds = sum_n dy x, dL/dx = dy s. ``bug`` leaves grads alone."""

    def __init__(self, bug=None, **options):
        super().__init__(**options)
        self.bug = bug

    def init_params(self, input_shape, rng):
        return {"s": np.ones(input_shape)}

    def forward(self, x, training=False):
        self.cache = {"x": self.check_input(x)}
        return self.cache["x"] * self.params["s"]

    def backward(self, dy):
        if self.bug == "zeros":
            self.grads["s"] = np.zeros_like(self.params["s"])
        elif self.bug is None:
            self.grads["s"] = (dy * self.cache["x"]).sum(axis=0)
        return dy * self.params["s"]


def scaled(bug, **options):
    layers = [Flatten(), Scale(bug, name="scale"), Dense(3, activation="relu"), Dense(2)]
    return sn.Sequential(layers, input_shape=(4, 4, 1), seed=0, **options).compile("sgd")


@pytest.mark.parametrize("bug", ["never", "zeros"])
def test_a_layer_whose_backward_never_fills_its_grads_warns_once_at_the_second_step(bug):
    x, y = data()
    model = scaled(bug)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=2, batch_size=4, verbose=0)                 # 6 steps
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and model.optimizer.iterations == 6
    assert messages[0].startswith("sequential: at the second training step, every gradient of layer(s) "
                                  "'scale' (Scale) is exactly 0, so the step does not change them: does "
                                  "the layer's backward fill self.grads[name] for every params[name] (the "
                                  "layer contract)? scratchnet.gradcheck.check_layer(layer) tells.")
    np.testing.assert_array_equal(model.get_layer("scale").params["s"], np.ones(16))  # it never moved


def test_no_warning_for_a_working_layer_a_frozen_one_or_later_steps():
    x, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        working = scaled(None)
        working.fit(x, y, batch_size=4, verbose=0)
        assert not np.array_equal(working.get_layer("scale").params["s"], np.ones(16))
        frozen = scaled("never")
        frozen.get_layer("scale").trainable = False                        # no params to train
        frozen.fit(x, y, batch_size=4, verbose=0)
        resumed = scaled(None)
        resumed.train_step(x, y)
        resumed.train_step(x, y)
        resumed.get_layer("scale").bug = "never"                          # goes wrong after step 2
        resumed.train_step(x, y)                                           # not looked at again
        # a later layer initialised with zeros passes no gradient back at the FIRST step only
        zero_init = sn.Sequential([Flatten(), Dense(16, activation="relu", name="first"),
                                   Dense(3, kernel_initializer="zeros")], input_shape=(4, 4, 1),
                                  seed=0).compile("sgd").build()
        W_first = zero_init.get_layer("first").params["W"].copy()
        zero_init.train_step(x, y)
        np.testing.assert_array_equal(zero_init.get_layer("first").params["W"], W_first)  # step 1: 0
        zero_init.fit(x, y, batch_size=4, verbose=0)                       # no warning at step 2
        assert not np.array_equal(zero_init.get_layer("first").params["W"], W_first)


def test_a_missing_gradient_stops_the_first_step_naming_the_layer_and_the_contract():
    class Forgetful(Scale):
        def backward(self, dy):
            self.grads = {}                                                # replaced, not filled
            return dy * self.params["s"]

    x, y = data()
    model = sn.Sequential([Flatten(), Forgetful(name="forgetful"), Dense(2)], input_shape=(4, 4, 1),
                          seed=0).compile("sgd")
    before = model.get_weights()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                     # the error alone, no warning
        with pytest.raises(ValueError, match=r"^forgetful: grads\['s'\] must have the shape of "
                                             r"params\['s'\], \(16,\), got nothing; .*the layer contract"):
            model.train_step(x, y)
    assert all(np.array_equal(value, model.get_weights()[key]) for key, value in before.items())


def test_a_dead_scratchnet_layer_warns_that_no_gradient_reaches_it():
    x, y = data()
    layers = [Flatten(), Dense(3, activation="relu", name="dead"), Dense(2)]
    model = sn.Sequential(layers, input_shape=(4, 4, 1), seed=0).compile("sgd").build()
    model.get_layer("dead").params["b"][...] = -100.0                      # every ReLU off
    model.train_step(x, y)                                                 # step 1: not looked at
    with pytest.warns(UserWarning, match=r"^sequential: at the second training step, every gradient of "
                                         r"layer\(s\) 'dead' \(Dense\) is exactly 0, so the step does not "
                                         r"change them: no gradient reaches them \(are their ReLU units "
                                         r"all off, a bias far below 0\?"):
        model.train_step(x, y)


# ----------------------------------------------------------------- unscaled images
def test_unscaled_images_warn_unless_the_first_layer_normalises_its_input():
    x, y = data()
    pixels = np.round(x * 255)                                                # float, whole, 0..255
    with pytest.warns(UserWarning, match=r"^sequential: got float images holding whole numbers from \d+ "
                                         r"to \d+ \(pixel values 0-255\?\)"):
        mlp().fit(pixels, y, verbose=0)
    with pytest.warns(UserWarning, match=r"^sequential: got integer input \(dtype uint8, values up to "
                                         r"25\d\)"):
        mlp().predict(pixels.astype(np.uint8))

    class MyBatchNorm(BatchNorm):
        pass

    class Block(Chain):
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for first in (BatchNorm(), MyBatchNorm(), Chain([BatchNorm(), Activation("relu")]),
                      Block([BatchNorm(), Activation("relu")])):
            model = mlp(first)
            model.fit(pixels, y, verbose=0)                                   # the layer rescales them
            model.fit(pixels.astype(np.uint8), y, verbose=0)
            model.predict(pixels.astype(np.uint8))
    with pytest.warns(UserWarning, match="holding whole numbers"):          # its skip path sees raw pixels
        mlp(Residual(Chain([BatchNorm(), Activation("relu")]))).fit(pixels, y, verbose=0)


# ----------------------------------------------------------------- a NaN/inf loss
def test_a_non_finite_loss_from_huge_inputs_says_scale_them_not_lower_the_learning_rate():
    x, y = data()
    x[:, 0, 0, 0] = 1.0                                                     # each batch's largest value
    model = mlp(optimizer=SGD(lr=0.5))
    with np.errstate(all="ignore"), pytest.raises(
            sn.NonFiniteLossError, match=r"^epoch 1, batch \d+ of 3: sequential: the loss is (nan|inf); the "
                                         r"input is finite; the output of layer '\w+' \(Dense\) is the first "
                                         r"to contain NaN/inf \(input values up to 1e\+20: scale your images "
                                         r"or features to about \[0, 1\] \(x / 255\) or standardise them\); "
                                         r"the weights are those from before this step$"):
        model.fit(x * 1e20, y, batch_size=4, shuffle=False, verbose=0)
    small = mlp(optimizer=SGD(lr=1e36))                                    # inputs in [0, 1]: the rate
    with np.errstate(all="ignore"), pytest.raises(sn.NonFiniteLossError, match=r"\(try a smaller learning "
                                                                               r"rate\); the weights"):
        small.fit(x, y, epochs=3, batch_size=4, verbose=0)


def test_a_non_finite_loss_from_a_nan_pixel_says_the_input_batch_holds_it():
    x, y = data()
    x[5, 0, 0, 0] = np.inf
    message = (r"^epoch 1, batch 2 of 3 \(rows \[5\] of x hold NaN/inf\): sequential: the loss is nan; "
               r"the input batch contains 1 NaN/inf "
               r"value\(s\) \(in batch sample\(s\) \[1\]\); clean the data")
    with np.errstate(all="ignore"), pytest.raises(sn.NonFiniteLossError, match=message), \
            pytest.warns(UserWarning, match="the input holds NaN or inf in 1 sample"):
        mlp().fit(x, y, batch_size=4, shuffle=False, verbose=0)


# ----------------------------------------------------------------- NaN in predict, evaluate and fit
def test_nan_or_inf_input_warns_once_per_call_naming_the_samples():
    x, y = data(n=40)
    model = mlp()
    x[[7, 30], 1, 1, 0] = np.nan
    x[30, 2, 2, 0] = -np.inf                                                 # sample 30 twice: counted once
    expected = (r"^sequential: the input holds NaN or inf in 2 sample\(s\) of 40, the first at index 7; "
                r"{}\. Clean the data \(np.nan_to_num\(x\), or drop those rows\), or give "
                r"Sequential\(check_numerics=True\) to make this an error$")
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        outputs = model.predict(x, batch_size=8)                            # 5 batches, one warning
        results = model.evaluate(x, y, batch_size=8)
    assert len(caught) == 2                                                  # predict's, evaluate's
    for warning in caught:
        assert warning.category is UserWarning
        assert re.match(expected.format("their outputs will be NaN"), str(warning.message))
    assert np.isnan(outputs[[7, 30]]).all() and np.isfinite(np.delete(outputs, [7, 30], axis=0)).all()
    assert np.isnan(results["loss"])
    in_fit = r"fit will stop with NonFiniteLossError at the first batch holding one"
    with pytest.warns(UserWarning, match=expected.format(in_fit)), \
            np.errstate(all="ignore"), pytest.raises(sn.NonFiniteLossError, match="batch 1 of 5"):
        model.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    x_last = data(n=40)[0]
    x_last[[33, 39], 0, 0, 0] = np.nan                                       # in the validation split
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        history = mlp().fit(x_last, y, epochs=2, batch_size=8, verbose=0, validation_split=0.25)
    assert [str(w.message) for w in caught] == [                             # once, not every epoch
        "sequential: the validation split (the last rows of x) holds NaN or inf in 2 sample(s) of 10, the "
        "first at index 33; val_loss will be NaN. Clean the data (np.nan_to_num(x), or drop those rows), "
        "or give Sequential(check_numerics=True) to make this an error"]
    assert np.isnan(history["val_loss"]).all() and np.isfinite(history["loss"]).all()  # said, happened


def test_nan_input_is_an_error_with_check_numerics_and_finite_input_is_quiet():
    x, y = data()
    checked = mlp(check_numerics=True)
    x_nan = x.copy()
    x_nan[3, 0, 0, 0] = np.nan
    for call in (lambda: checked.predict(x_nan), lambda: checked.evaluate(x_nan, y),
                 lambda: checked.fit(x_nan, y, verbose=0)):
        with pytest.raises(ValueError, match=r"^sequential: input contains NaN or inf \(1 values\)$"):
            call()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = mlp()
        model.fit(x, y, verbose=0)
        model.predict(x), model.evaluate(x, y)
        model.forward(x_nan)                                                 # forward: no check (gradcheck)
