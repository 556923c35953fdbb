"""A careless student's first week, continued from test_careless_input.py: each wrong input ends
in an error naming the model / layer / function, what it expected and, where the cause is
usually the same, what to write instead. Valid input behaves as before. (The tools around the
model, optimizers to Grad-CAM: test_careless_tools.py.)"""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import augment, callbacks, models
from scratchnet.layers import Chain, Conv2D, Dense, Flatten


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 3, size=n)


def small_cnn(compiled=True, **options):
    model = sn.Sequential([Conv2D(2, 3, name="c1"), Flatten(), Dense(3)], seed=0, **options)
    return model.compile("adam", "cross_entropy") if compiled else model


# ----------------------------------------------------------------- building the model
def test_one_layer_or_a_class_instead_of_a_list_of_layers():
    with pytest.raises(TypeError, match=r"^sequential: layers must be a list of layers, got one Dense; "
                                        r"put it in a list: Sequential\(\[Dense\(...\)\]\)$"):
        sn.Sequential(Dense(3))
    with pytest.raises(TypeError, match=r"^sequential: layers must be a list of layers, got one int$"):
        sn.Sequential(3)
    with pytest.raises(TypeError, match=r"^sequential: add\(\): the layer must be an object, got the "
                                        r"class Dense itself; create one: Dense\(\)$"):
        sn.Sequential([Flatten(), Dense])
    with pytest.raises(TypeError, match=r"add\(\) expects a Layer, got Sequential; to use a stack of "
                                        r"layers as one layer, wrap them in scratchnet.layers.Chain"):
        sn.Sequential([sn.Sequential([Dense(2)])])
    assert len(sn.Sequential((layer for layer in [Dense(2), Dense(3)])).layers) == 2  # any iterable
    assert sn.Sequential([Chain([Dense(2)]), Dense(3)], input_shape=(4,)).build().output_shape == (3,)


def test_input_shape_with_the_batch_axis_or_channels_first_gets_a_hint():
    with pytest.raises(ValueError, match=r"^conv2d: expected samples of shape \(H, W, C\) .*got "
                                         r"\(5, 28, 28, 1\); input_shape is the shape of ONE sample, "
                                         r"without the batch axis: did you mean "
                                         r"input_shape=\(28, 28, 1\)\?$"):
        models.lenet5(input_shape=(5, 28, 28, 1))
    with pytest.raises(ValueError, match=r"^max_pool2d: window of 2 cells .* \(1 \+ 0 \+ 0 = 1\); "
                                         r"input_shape \(1, 28, 28\) looks channels-first \(C, H, W\), "
                                         r"but scratchnet is channels-last \(H, W, C\): "
                                         r"input_shape=\(28, 28, 1\)$"):
        models.lenet5(input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match=r"input_shape \(3, 32, 28\) looks channels-first .*: "
                                         r"input_shape=\(32, 28, 3\)$"):
        models.lenet5(input_shape=(3, 32, 28))
    with pytest.raises(ValueError, match=r"^conv2d: window of 5 cells along height .*\(4 \+ 0 \+ 0 = 4\)$"):
        sn.Sequential([Conv2D(2, 5)], input_shape=(4, 4, 1)).build()            # no hint: none fits
    assert models.lenet5(input_shape=(28, 28, 1)).output_shape == (10,)


def test_one_image_given_to_a_model_without_input_shape():
    x, _ = data()
    model = small_cnn(compiled=False)
    with pytest.raises(ValueError, match=r"^c1: expected samples of shape \(H, W, C\) .*got \(8, 1\) "
                                         r"\(the model has no input_shape, so it took x.shape\[1:\] = "
                                         r"\(8, 1\) of the input \(8, 8, 1\) as one sample's shape; if x "
                                         r"is ONE sample, add the batch axis: x\[None\]\)$"):
        model.predict(x[0])
    assert not model.built and model.input_shape is None                     # as before the call
    assert model.predict(x[:1]).shape == (1, 3) and model.input_shape == (8, 8, 1)


def test_grayscale_images_without_the_channel_axis():
    x, _ = data()
    model = small_cnn(input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match=r"^sequential: expected input of shape \(N, 8, 8, 1\), got "
                                         r"\(12, 8, 8\); the channel axis is missing: pass x\[..., None\]"):
        model.predict(x[..., 0])
    with pytest.raises(ValueError, match=r"got \(8, 8\); this looks like ONE image without the batch and "
                                         r"channel axes: pass x\[None, ..., None\] "
                                         r"\(shape \(1, 8, 8, 1\)\)$"):
        model.predict(x[0, :, :, 0])
    np.testing.assert_array_equal(model.predict(x[..., 0][..., None]), model.predict(x))


def test_flattened_samples_get_the_reshape_that_mends_them():
    x, _ = data()
    model = small_cnn(input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match=r"^sequential: expected input of shape \(N, 8, 8, 1\), got "
                                         r"\(12, 64\); each sample has the right number of values in "
                                         r"another shape: pass x.reshape\(-1, 8, 8, 1\)$"):
        model.predict(x.reshape(12, 64))
    np.testing.assert_array_equal(model.predict(x.reshape(12, 64).reshape(-1, 8, 8, 1)), model.predict(x))
    with pytest.raises(ValueError, match=r"got \(2, 65\)$"):                   # 65 values: no reshape fits
        model.predict(np.zeros((2, 65)))
    flat = sn.Sequential([Dense(3)], input_shape=(64,), seed=0)
    with pytest.raises(ValueError, match=r"got \(12, 8, 8, 1\); each sample .*pass x.reshape\(-1, 64\)$"):
        flat.predict(x)
    wide = sn.Sequential([Conv2D(2, 3), Flatten(), Dense(3)], input_shape=(8, 10, 1), seed=0)
    with pytest.raises(ValueError, match=r"^sequential: expected input of shape \(N, 8, 10, 1\), got "
                                         r"\(2, 10, 8, 1\)$"):                # transposed: no reshape hint
        wide.predict(np.zeros((2, 10, 8, 1)))


# ----------------------------------------------------------------- compile and fit
def test_a_class_where_an_object_is_expected():
    x, y = data()
    with pytest.raises(TypeError, match=r"^sequential: compile: loss must be an object, got the class "
                                        r"CrossEntropy itself; create one: CrossEntropy\(\)$"):
        small_cnn(compiled=False).compile("adam", sn.losses.CrossEntropy)
    with pytest.raises(TypeError, match=r"^sequential: compile: optimizer must be an object, got the "
                                        r"class Adam itself; create one: Adam\(\)$"):
        small_cnn(compiled=False).compile(sn.Adam, "cross_entropy")
    with pytest.raises(TypeError, match=r"^sequential: augment must be an object, got the class "
                                        r"RandomFlip itself; create one: RandomFlip\(\)$"):
        small_cnn().fit(x, y, augment=augment.RandomFlip, verbose=0)
    with pytest.raises(TypeError, match=r"^sequential: every callback must be an object, got the class "
                                        r"EarlyStopping itself; create one: EarlyStopping\(\)$"):
        small_cnn().fit(x, y, callbacks=[callbacks.EarlyStopping], verbose=0)


def test_callbacks_must_be_a_list_of_callback_objects():
    x, y = data()
    model = small_cnn()
    with pytest.raises(TypeError, match=r"^sequential: callbacks must be a list of callback objects, got "
                                        r"one EarlyStopping; put it in a list: callbacks=\[...\]$"):
        model.fit(x, y, callbacks=callbacks.EarlyStopping(monitor="loss"), verbose=0)

    class OnlyEpochEnd:
        def on_epoch_end(self, epoch, logs):
            pass

    with pytest.raises(TypeError, match=r"^sequential: callback <.*OnlyEpochEnd object .*> has no "
                                        r"on_train_begin, on_epoch_begin, on_batch_end, on_train_end; "
                                        r"subclass scratchnet.callbacks.Callback"):
        model.fit(x, y, callbacks=[OnlyEpochEnd()], verbose=0)
    assert model.optimizer.iterations == 0                                    # refused before training
    seen = []

    class Recorder(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)

    model.fit(x, y, epochs=2, callbacks=(Recorder(),), verbose=0)             # a tuple is a list too
    model.fit(x, y, epochs=1, callbacks=None, verbose=0)
    assert seen == [0, 1] and model.epochs_trained == 3


def test_targets_missing_or_not_one_per_sample():
    x, y = data()
    with pytest.raises(TypeError, match=r"^sequential: y is None; pass the targets, one per sample: "
                                        r"labels \(N,\) or rows \(N, classes\), here N = 12$"):
        small_cnn().fit(x, None, verbose=0)
    with pytest.raises(ValueError, match=r"^sequential: got 12 inputs but \(\) targets; y needs one target "
                                         r"per sample: labels \(12,\) or rows \(12, classes\)$"):
        small_cnn().evaluate(x, 1)


# ----------------------------------------------------------------- labels that do not fit the loss
def one_output(loss):
    return sn.Sequential([Flatten(), Dense(1)], input_shape=(8, 8, 1), seed=0).compile("adam", loss)


def test_binary_cross_entropy_refuses_class_labels_beyond_one():
    x, y = data()                                                             # labels 0, 1, 2
    model = one_output("binary_cross_entropy")
    with pytest.raises(ValueError, match=r"^binary_cross_entropy: targets must be in \[0, 1\] \(0/1 labels "
                                         r"or probabilities\), got values from 0 to 2; for labels of more "
                                         r"than two classes use loss='cross_entropy'"):
        model.fit(x, y, verbose=0)
    assert model.optimizer.iterations == 0                                    # nothing trained on them
    with pytest.raises(ValueError, match=r"got values from -1 to 0"):
        sn.losses.BinaryCrossEntropy().forward(np.zeros((2, 1)), np.array([-1.0, 0.0]))
    loss = sn.losses.BinaryCrossEntropy().forward(np.array([[0.0], [2.0]]), np.array([1.0, 0.25]))
    expected = np.mean([np.log(2.0), np.log1p(np.exp(2.0)) - 2.0 * 0.25])    # max(z,0) - z t + log(1+e^-|z|)
    assert loss == pytest.approx(expected, rel=1e-12)


def test_targets_of_the_wrong_shape_for_the_loss_get_a_hint():
    x, y = data()
    with pytest.raises(ValueError, match=r"^mse: expected targets of shape \(12, 1\), got \(12,\); for one "
                                         r"output per sample pass y.reshape\(-1, 1\)$"):
        one_output("mse").fit(x, y.astype(float), verbose=0)
    with pytest.raises(ValueError, match=r"^mse: expected targets of shape \(12, 3\), got \(12,\); integer "
                                         r"class labels need loss='cross_entropy' \(or one-hot rows: "
                                         r"np.eye\(3\)\[y\]\)$"):
        small_cnn(input_shape=(8, 8, 1)).compile("adam", "mse").evaluate(x, y)
    with pytest.raises(ValueError, match=r"^mse: expected targets of shape \(12, 3\), got \(12,\)$"):
        small_cnn(input_shape=(8, 8, 1)).compile("adam", "mse").evaluate(x, y * 0.5)   # floats: no hint
    with pytest.raises(ValueError, match=r"^mse: expected targets of shape \(12, 3\), got \(12, 2\)$"):
        small_cnn(input_shape=(8, 8, 1)).compile("adam", "mse").evaluate(x, np.zeros((12, 2)))
    with pytest.raises(ValueError, match=r"^cross_entropy: labels must be in \[0, 0\] for 1 logits, got "
                                         r"values from 0 to 1; one output with 0/1 labels is a binary "
                                         r"problem: use loss='binary_cross_entropy', or Dense\(2\)"):
        one_output("cross_entropy").fit(x, y % 2, verbose=0)
    with pytest.raises(ValueError, match=r"^cross_entropy: labels must be in \[0, 2\] for 3 logits, got "
                                         r"values from 3 to 5; for 6 classes the last layer needs 6 outputs "
                                         r"\(e.g. Dense\(6\)\), one per class$"):
        small_cnn(input_shape=(8, 8, 1)).fit(x, y + 3, verbose=0)
    with pytest.raises(ValueError, match=r"^cross_entropy: labels must be in \[0, 2\] for 3 logits, got "
                                         r"values from -1 to 1$"):              # negative: no hint
        small_cnn(input_shape=(8, 8, 1)).fit(x, y - 1, verbose=0)
    with pytest.raises(ValueError, match=r"^cross_entropy: expected labels of shape \(12,\) or \(12, 3\), "
                                         r"got \(12, 1\); for labels of shape \(N, 1\) pass y.ravel\(\)$"):
        small_cnn(input_shape=(8, 8, 1)).fit(x, y[:, None], verbose=0)
    with pytest.raises(ValueError, match=r"^cross_entropy: expected labels of shape \(12,\) or \(12, 3\), "
                                         r"got \(12, 10\); the rows hold 10 classes but the model has 3 "
                                         r"outputs: the last layer needs one output per class "
                                         r"\(e.g. Dense\(10\)\)$"):
        small_cnn(input_shape=(8, 8, 1)).fit(x, np.eye(10)[y], verbose=0)
    with pytest.raises(ValueError, match=r"^cross_entropy: expected labels of shape \(4,\) or \(4, 3\), "
                                         r"got \(5, 3\)$"):                     # not one row per sample
        sn.losses.CrossEntropy().forward(np.zeros((4, 3)), np.eye(3)[[0, 1, 2, 0, 1]])


# ----------------------------------------------------------------- smaller slips
def test_seed_get_layer_class_weight_and_schedule_numbers():
    x, y = data()
    with pytest.raises(TypeError, match=r"^sequential: seed must be an int >= 0 or None, got 'abc'$"):
        sn.Sequential([Dense(2)], seed="abc")
    with pytest.raises(ValueError, match=r"^sequential: seed must be an int >= 0 or None, got -1$"):
        sn.Sequential([Dense(2)], seed=-1)
    same = [sn.Sequential([Dense(2)], input_shape=(3,), seed=seed).build().get_weights()["dense/W"]
            for seed in (7, np.int64(7), np.random.SeedSequence(7))]
    np.testing.assert_array_equal(same[0], same[1])
    np.testing.assert_array_equal(same[0], same[2])
    model = small_cnn(input_shape=(8, 8, 1)).build()
    with pytest.raises(KeyError, match=r"no layer named 0; the layers are: c1, flatten, dense; to choose by "
                                       r"position write get_layer\(index=0\)"):
        model.get_layer(0)
    assert model.get_layer(index=0) is model.get_layer("c1")
    with pytest.raises(TypeError, match=r"^sequential: class_weight keys must be class indices \(ints\), "
                                        r"got '0'$"):
        model.fit(x, y, class_weight={"0": 2.0, 1: 1.0}, verbose=0)
    by_class = small_cnn(input_shape=(8, 8, 1)).fit(x, y, class_weight={0: 2.0, np.int64(1): 0.5}, verbose=0)
    by_sample = small_cnn(input_shape=(8, 8, 1)).fit(x, y, sample_weight=np.choose(y, [2.0, 0.5, 1.0]),
                                                     verbose=0)
    assert by_class["loss"] == by_sample["loss"]                              # the int64 key counts
    with pytest.raises(TypeError, match=r"^StepDecay: initial must be a finite number > 0, got None$"):
        sn.schedules.StepDecay(None)


# ----------------------------------------------------------------- checked before the first step
def test_validation_data_is_checked_before_the_first_epoch():
    x, y = data()
    cases = [((x[:, :4], y), ValueError, r"^sequential: expected input of shape \(N, 8, 8, 1\), got "
                                         r"\(12, 4, 8, 1\) \(in validation_data\)$"),
             ((x, y[:5]), ValueError, r"^sequential: got 12 inputs but \(5,\) targets; .* "
                                      r"\(in validation_data\)$"),
             ((x, y + 5), ValueError, r"^cross_entropy: labels must be in \[0, 2\] for 3 logits, got values "
                                      r"from 5 to 7; for 8 classes .*\(in validation_data\)$"),
             ((x, y.astype(str)), TypeError, r"^cross_entropy: expected integer class labels .* "
                                             r"\(in validation_data\)$")]
    for validation_data, error, message in cases:
        model = small_cnn(input_shape=(8, 8, 1))
        with pytest.raises(error, match=message):
            model.fit(x, y, epochs=2, validation_data=validation_data, verbose=0)
        assert model.optimizer.iterations == 0 and model.epochs_trained == 0  # no epoch wasted
    history = small_cnn(input_shape=(8, 8, 1)).fit(x, y, validation_data=(x.tolist(), list(y)), verbose=0)
    expected = small_cnn(input_shape=(8, 8, 1)).fit(x, y, validation_data=(x, y), verbose=0)
    assert history["val_loss"] == expected["val_loss"]                         # lists still accepted


def test_a_bad_label_in_a_late_batch_fails_before_training():
    from scratchnet.training import check_targets_for_loss

    x, y = data()
    y[-1] = 3                                                                 # 3 classes: 0, 1, 2
    model = small_cnn(input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match=r"^cross_entropy: labels must be in \[0, 2\] for 3 logits, got "
                                         r"values from 0 to 3; for 4 classes"):
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 0                                    # batches 1 and 2 not run
    with pytest.raises(ValueError, match=r"got values from 3 to 3; "):         # the chunk of sample 11 alone
        check_targets_for_loss(model, y, chunk=11)  # chunks 0-10 and 11
    assert model.loss.cache == {}
    mixed = small_cnn(input_shape=(8, 8, 1)).compile("adam", "mse")           # Mixup turns labels into rows
    history = mixed.fit(x, y % 3, augment=augment.Mixup(0.2, num_classes=3), verbose=0)
    assert np.isfinite(history["loss"][0])


def test_float_images_of_pixel_values_warn_like_uint8():
    import warnings

    x, y = data()
    pixels = np.round(x * 255)                                                # float32, 0..255, whole
    with pytest.warns(UserWarning, match=r"^sequential: got float images holding whole numbers from \d+ "
                                         r"to \d+ \(pixel values 0-255\?\); .*scaled to \[0, 1\]: "
                                         r"pass x / 255$"):
        small_cnn(input_shape=(8, 8, 1)).fit(pixels, y, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_cnn(input_shape=(8, 8, 1)).fit(pixels / 255, y, verbose=0)      # scaled: quiet
        small_cnn(input_shape=(8, 8, 1)).fit(x * 255, y, verbose=0)           # not whole numbers: quiet
        small_cnn(input_shape=(8, 8, 1)).fit(np.round(x), y, verbose=0)       # 0/1 masks: quiet
        flat = sn.Sequential([Dense(3)], input_shape=(4,), seed=0).compile()
        flat.fit(np.arange(48.0).reshape(12, 4), y, verbose=0)                # not images: quiet


def test_paths_and_targets_of_direct_calls():
    x, y = data()
    model = small_cnn(input_shape=(8, 8, 1)).build()
    with pytest.raises(TypeError, match=r"^save: path must be a file name \(str or pathlib.Path\), "
                                        r"got None$"):
        model.save(None)
    with pytest.raises(TypeError, match=r"^save_weights: path must be a file name .*got None$"):
        model.save_weights(None)
    with pytest.raises(TypeError, match=r"^scratchnet.load: path must be a file name .*got None$"):
        sn.load(None)
    with pytest.raises(TypeError, match=r"^load_weights: path must be a file name .*got 3$"):
        model.load_weights(3)
    with pytest.raises(TypeError, match=r"^sequential: y is None; pass the targets"):
        model.train_step(x, None)
    with pytest.raises(ValueError, match=r"^sequential: got 12 inputs but \(3,\) targets"):
        model.train_step(x, y[:3])
    assert model.optimizer.iterations == 0
    with pytest.raises(ValueError, match=r"^sequential: the model has no layers$"):   # no hint about x
        sn.Sequential([]).predict(np.zeros((2, 3)))


# ----------------------------------------------------------------- a layer of your own
class Doubler(sn.layers.Layer):
    """y = 2x, dx = 2 dy: a correct layer of one's own, the reference for the broken ones below."""

    def forward(self, x, training=False):
        self.cache = {"x": x}
        return 2 * self.check_input(x)

    def backward(self, dy):
        return 2 * dy


def test_a_layer_of_your_own_that_forgot_super_init_or_return():
    class NoSuperInit(Doubler):
        def __init__(self, factor=2):
            self.factor = factor

    class NoReturn(Doubler):
        def backward(self, dy):
            dx = 2 * dy  # noqa: F841 (the forgotten return is the point)

    with pytest.raises(TypeError, match=r"^sequential: the NoSuperInit object was not set up as a layer: its "
                                        r"__init__ must call super\(\).__init__\(\) first"):
        sn.Sequential([NoSuperInit(), Dense(3)])
    with pytest.raises(TypeError, match=r"^residual: the NoSuperInit object was not set up as a layer"):
        sn.layers.Residual(NoSuperInit())
    x, y = np.random.default_rng(0).random((6, 4)), np.arange(6) % 3
    model = sn.Sequential([Dense(4), NoReturn(), Dense(3)], input_shape=(4,), seed=0).compile()
    with pytest.raises(TypeError, match=r"^sequential: no_return \(NoReturn\).backward returned None; it "
                                        r"must return dL/dx, the gradient for its input"):
        model.fit(x, y, verbose=0)                                           # was blamed on the Dense below
    assert model.optimizer.iterations == 0
    good = sn.Sequential([Dense(4), Doubler(), Dense(3)], input_shape=(4,), seed=0).compile()
    good.forward(x)
    dx = good.backward(np.ones((6, 3)))
    first, last = good.layers[0].params["W"], good.layers[2].params["W"]   # dx = dy (2 W1 W3)^T
    np.testing.assert_allclose(dx, np.ones((6, 3)) @ (2 * first @ last).T, rtol=1e-5)


def test_gradients_of_the_wrong_shape_stop_the_step_before_any_update():
    class PerSampleScale(sn.layers.Layer):
        def init_params(self, input_shape, rng):
            return {"s": np.ones(input_shape)}

        def forward(self, x, training=False):
            self.cache = {"x": self.check_input(x)}
            return x * self.params["s"]

        def backward(self, dy):
            self.grads["s"] = dy * self.cache["x"]                           # forgot .sum(axis=0)
            return dy * self.params["s"]

    x, y = np.random.default_rng(0).random((6, 4)), np.arange(6) % 3
    model = sn.Sequential([Dense(4), PerSampleScale(), Dense(3)], input_shape=(4,), seed=0).compile()
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"^per_sample_scale: grads\['s'\] must have the shape of "
                                         r"params\['s'\], \(4,\), got shape \(6, 4\); backward fills every "
                                         r"gradient \(summed over the batch axis\)$"):
        model.train_step(x, y)
    after = model.get_weights()
    assert all(np.array_equal(before[key], after[key]) for key in before)   # no parameter moved
    del model.layers[1].grads["s"]
    with pytest.raises(ValueError, match=r"grads\['s'\] must have the shape .*, got nothing;"):
        model.optimizer.step(model.layers)


def test_an_output_shape_with_float_sizes_is_refused_naming_that_layer():
    class Halve(sn.layers.Layer):                        # a student's 2x2 subsampling layer
        def output_shape(self, input_shape):
            height, width, channels = input_shape
            return (height / 2, width / 2, channels)    # "/" where "//" was meant: (4.0, 4.0, 4)

        def forward(self, x, training=False):
            return x[:, ::2, ::2]

        def backward(self, dy):
            raise NotImplementedError

    layers = [Conv2D(4, 3, padding="same"), Halve(), Flatten(), Dense(3)]
    with pytest.raises(TypeError, match=r"^halve \(Halve\): output_shape returned \(4\.0, 4\.0, 4\); sizes "
                                        r"must be ints: use // "):
        sn.Sequential(layers, input_shape=(8, 8, 1)).build()   # not flatten's "input_shape must be ..."
    class HalveToArray(Halve):
        def output_shape(self, input_shape):
            return np.array(super().output_shape(input_shape))          # an array of floats

    with pytest.raises(TypeError, match=r"^halve_to_array \(HalveToArray\): output_shape returned"):
        sn.Sequential([HalveToArray(), Flatten()], input_shape=(8, 8, 4)).build()
    built = layers[1]
    built.built, built.input_shape = True, (8, 8, 4)           # built already (in another model)
    with pytest.raises(TypeError, match=r"^halve \(Halve\): output_shape returned"):
        sn.Sequential([built, Flatten()], input_shape=(8, 8, 4)).build()
