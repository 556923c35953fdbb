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


# ---------------------------------------------------------------------- a new optimizer
def block_mlp(seed=0):
    """Dense, a Residual holding a Dense (an inner layer with optimizer state), relu, Dense."""
    model = sn.Sequential([Dense(6), Residual([Dense(6)]), Activation("relu"), Dense(2)],
                          input_shape=(4,), seed=seed, dtype="float64")
    return model.build()


def train_steps(model):
    """Three train_steps on three fixed batches (the same three at every call)."""
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = rng.normal(size=(8, 4))
        model.train_step(x, (x[:, 0] > 0).astype(int))


def twin_trained_with(model, optimizer):
    """A freshly built model with ``model``'s weights, trained by ``optimizer`` from there."""
    twin = block_mlp(seed=1)
    twin.set_weights(model.get_weights())
    twin.compile(optimizer, "cross_entropy")
    train_steps(twin)
    return twin


@pytest.mark.parametrize("first", [sn.optimizers.SGD(0.1, momentum=0.9), sn.optimizers.Adam(1e-2)],
                         ids=["SGD(momentum) then Adam", "Adam then a new Adam"])
def test_compiling_a_new_optimizer_starts_from_fresh_state(first):
    model = block_mlp().compile(first, "cross_entropy")
    train_steps(model)
    twin = twin_trained_with(model, sn.optimizers.Adam(1e-2))
    model.compile(sn.optimizers.Adam(1e-2), "cross_entropy")   # was a KeyError 't' after SGD
    train_steps(model)
    for name, value in twin.get_weights().items():
        np.testing.assert_array_equal(model.get_weights()[name], value, err_msg=name)
    assert model.get_layer("dense_1").opt_state["W"]["t"] == 3     # inside the Residual too


def test_compiling_the_same_optimizer_again_keeps_its_state(tmp_path):
    straight = block_mlp().compile(sn.optimizers.Adam(1e-2), "cross_entropy")
    train_steps(straight)
    train_steps(straight)                               # the same three batches again
    model = block_mlp().compile(sn.optimizers.Adam(1e-2), "cross_entropy")
    train_steps(model)
    model.save(tmp_path / "half.sn")
    loaded = sn.load(tmp_path / "half.sn")
    loaded.compile(loaded.optimizer, "cross_entropy")   # resuming after load
    model.compile(model.optimizer, "cross_entropy")
    for resumed in (model, loaded):
        train_steps(resumed)
        for name, value in straight.get_weights().items():
            np.testing.assert_array_equal(resumed.get_weights()[name], value, err_msg=name)


def test_replace_head_then_a_new_optimizer_trains():
    # the library's own transfer flow: SGD(momentum), replace_head, freeze, compile(Adam), unfreeze
    from scratchnet.interop.transfer import replace_head
    x = np.random.default_rng(1).normal(size=(64, 4))
    y = (x[:, 0] > 0).astype(int)
    model = sn.Sequential([Dense(8), Activation("relu"), Dense(2)], input_shape=(4,), seed=0)
    model.compile(sn.optimizers.SGD(0.1, momentum=0.9), "cross_entropy").fit(x, y, verbose=0)
    replace_head(model, Dense(3, name="fc"))
    model.freeze(up_to="fc")
    model.compile(optimizer=sn.optimizers.Adam(1e-3), loss="cross_entropy")
    model.fit(x, y, verbose=0)
    model.unfreeze()
    model.fit(x, y, verbose=0)
    assert model.layers[0].opt_state["W"]["t"] == 2    # Adam's steps of the unfrozen fit (2 batches)


# ---------------------------------------------------------------------- one optimizer, two models
def test_one_optimizer_in_two_models_is_refused():
    optimizer = sn.optimizers.Adam(1e-2)
    first = block_mlp().compile(optimizer, "cross_entropy")
    second = block_mlp()
    with pytest.raises(ValueError, match="give each model its own optimizer"):
        second.compile(optimizer, "cross_entropy")
    assert second.optimizer is None
    first.compile("sgd", "cross_entropy")              # the first model lets go of it
    second.compile(optimizer, "cross_entropy")
    assert second.optimizer is optimizer


def test_an_optimizer_of_a_deleted_model_can_be_compiled_again():
    import gc
    optimizer = sn.optimizers.Adam(1e-2)
    first = block_mlp().compile(optimizer, "cross_entropy")
    del first
    gc.collect()
    assert block_mlp().compile(optimizer, "cross_entropy").optimizer is optimizer


def test_copies_and_loaded_models_own_their_optimizer(tmp_path):
    import copy
    import pickle
    model = block_mlp().compile(sn.optimizers.Adam(1e-2), "cross_entropy")
    train_steps(model)
    model.save(tmp_path / "m.sn")
    copies = [copy.deepcopy(model), pickle.loads(pickle.dumps(model)), sn.load(tmp_path / "m.sn")]
    for other in copies:
        assert other.optimizer is not model.optimizer and other.optimizer.iterations == 3
        with pytest.raises(ValueError, match="already compiled into the model 'sequential'"):
            block_mlp().compile(other.optimizer, "cross_entropy")  # the copy's, without compile again
        other.compile(other.optimizer, "cross_entropy")  # its own: not refused against the original
        with pytest.raises(ValueError, match="give each model its own optimizer"):
            other.compile(model.optimizer, "cross_entropy")
    model.compile(model.optimizer, "cross_entropy")


def test_a_shallow_copy_shares_the_optimizer_and_unpickling_never_raises_for_it():
    """copy.copy (and a pickle of two models sharing an optimizer, as an older scratchnet wrote)
    used to raise in __setstate__: the shared optimizer stays the first model's."""
    import copy
    import pickle
    model = block_mlp().compile(sn.optimizers.SGD(0.1), "cross_entropy")
    shallow = copy.copy(model)
    assert shallow.optimizer is model.optimizer and model.optimizer.owner() is model
    with pytest.raises(ValueError, match="give each model its own optimizer"):
        shallow.compile(shallow.optimizer, "cross_entropy")
    first, second = pickle.loads(pickle.dumps([model, shallow]))
    assert first.optimizer is second.optimizer and first.optimizer.owner() is first


def test_a_refusal_against_a_model_of_the_same_name_says_it_is_another_one_still_alive():
    optimizer = sn.optimizers.Adam(1e-2)
    earlier = block_mlp().compile(optimizer, "cross_entropy")   # e.g. kept alive by the REPL's _
    with pytest.raises(ValueError, match=r"already compiled into the model 'sequential' \(another model "
                                         r"object of that name, still alive: e\.g\. an earlier one the "
                                         r"interpreter keeps as _ or a notebook as Out\[n\]\)"):
        block_mlp().compile(optimizer, "cross_entropy")
    assert earlier.optimizer is optimizer


def test_an_optimizer_that_trained_a_model_now_gone_warns_that_its_schedule_goes_on():
    import gc
    optimizer = sn.optimizers.Adam(sn.schedules.CosineDecay(1e-2, 6))
    first = block_mlp().compile(optimizer, "cross_entropy")
    train_steps(first)
    del first
    gc.collect()
    expected = (r"^sequential: this Adam took 3 step\(s\) for a model that no longer exists; its "
                r"learning-rate schedule goes on from step 3")
    with pytest.warns(UserWarning, match=expected) as caught:
        block_mlp().compile(optimizer, "cross_entropy")
    assert [warning.filename for warning in caught] == [__file__]


# ---------------------------------------------------------------------- a parameter replaced
def small_float32_model():
    return sn.Sequential([Dense(8), BatchNorm(), Activation("relu"), Dense(2)], input_shape=(4,),
                         seed=0).compile("adam", "cross_entropy").build()


REPLACEMENTS = {
    "float64 W": ("W", np.random.default_rng(0).normal(size=(4, 8)), TypeError,
                  r"an array of dtype float64 and shape \(4, 8\), but the layer was built with a float32 "
                  r"array of shape \(4, 8\)"),
    "a list": ("b", [0.0] * 8, TypeError, r"a list, but the layer was built with a float32 array"),
    "wrong shape W": ("W", np.zeros((5, 8), np.float32), ValueError,
                      r"dtype float32 and shape \(5, 8\), but the layer was built with a float32 array of "
                      r"shape \(4, 8\)"),
    "wrong shape b": ("b", np.zeros((1, 8), np.float32), ValueError, r"shape \(1, 8\), but"),
}


@pytest.mark.parametrize("case", list(REPLACEMENTS))
@pytest.mark.parametrize("call", ["fit", "predict", "optimizer step"])
def test_a_parameter_replaced_by_assignment_is_named_before_anything_runs(case, call):
    name, value, error, detail = REPLACEMENTS[case]
    model = small_float32_model()
    x = np.random.default_rng(1).normal(size=(16, 4))
    y = (x[:, 0] > 0).astype(int)
    if call == "optimizer step":   # a manual loop: the replacement after the backward
        model.loss.forward(model.forward(x, training=True), y)
        model.backward(model.loss.backward())
    before = {key: value.copy() for key, value in model.get_weights().items()}
    model.layers[0].params[name] = value
    run = {"fit": lambda: model.fit(x, y, verbose=0), "predict": lambda: model.predict(x),
           "optimizer step": lambda: model.optimizer.step(model.layers)}[call]
    with pytest.raises(error, match=rf"^dense \(Dense\): params\['{name}'\] is .*{detail}.*"
                                    rf"layer.params\['{name}'\]\[\.\.\.\] = value, or use model.set_weights"):
        run()
    assert model.optimizer.iterations == 0
    for key in ("dense_1/W", "batch_norm/gamma", "batch_norm/mean"):
        np.testing.assert_array_equal(model.get_weights()[key], before[key])


def test_a_model_from_a_file_without_built_shapes_gets_them_on_load(tmp_path):
    """Files saved before build recorded param_shapes: load records them from the arrays, so the
    shape check covers old models too (and the file saved again carries them)."""
    model = small_float32_model()
    for layer in model.layers:
        layer.param_shapes = None                    # as a layer pickled by an older scratchnet
    model.save(tmp_path / "old.sn")
    loaded = sn.load(tmp_path / "old.sn")
    assert loaded.layers[0].param_shapes == {"W": (4, 8), "b": (8,)}
    loaded.layers[0].params["W"] = np.zeros((5, 8), np.float32)
    with pytest.raises(ValueError, match=r"^dense \(Dense\): params\['W'\] is .* shape \(5, 8\), but the "
                                         r"layer was built with a float32 array of shape \(4, 8\)"):
        loaded.predict(np.zeros((2, 4)))


def test_a_layer_of_ones_own_making_float64_parameters_is_told_where_to_make_them():
    class Scale(sn.layers.Layer):
        def build(self, input_shape, rng=None, dtype="float32"):   # skips Layer.build
            self.dtype, self.input_shape, self.built = np.dtype(dtype), tuple(input_shape), True
            self.params, self.grads = {"s": np.ones(input_shape)}, {"s": np.zeros(input_shape)}
            return tuple(input_shape)

        def forward(self, x, training=False):
            self.cache = {"x": x}
            return x * self.params["s"]

    model = sn.Sequential([Scale(name="scale"), Dense(2)], input_shape=(3,), seed=0).build()
    with pytest.raises(TypeError, match=r"^scale \(Scale\): params\['s'\] is an array of dtype float64 "
                                        r"and shape \(3,\), but the model computes in float32: make "
                                        r"parameters in init_params \(Layer.build casts them\), or with "
                                        r"dtype=self.dtype$"):
        model.predict(np.zeros((2, 3)))


def test_copying_into_a_parameter_trains():
    model = small_float32_model()
    model.layers[0].params["W"][...] = np.random.default_rng(0).normal(size=(4, 8))   # cast to float32
    x = np.random.default_rng(1).normal(size=(16, 4))
    model.fit(x, (x[:, 0] > 0).astype(int), verbose=0)
    assert model.layers[0].params["W"].dtype == np.float32


def test_save_refuses_a_model_load_would_refuse(tmp_path):
    path = tmp_path / "m.sn"
    model = small_float32_model()
    model.save(path)
    good = path.read_bytes()
    model.layers[0].params["W"] = model.layers[0].params["W"].astype(np.float64)
    with pytest.raises(sn.serialization.SerializationError,
                       match=r"^sequential: not saved: scratchnet.load would refuse the file \(dense: "
                             r"params\['W'\] is an array of dtype float64 and shape \(4, 8\), expected a "
                             r"float32 array\)$"):
        model.save(path)
    assert path.read_bytes() == good   # the file that was there is untouched
    model = small_float32_model()
    model.dtype = "float32"            # a string, not a numpy dtype
    with pytest.raises(sn.serialization.SerializationError, match="dtype is 'float32', not a float numpy"):
        model.save(path)


def test_load_names_the_array_it_refuses(tmp_path):
    import pickle

    from scratchnet.serialization import frame_payload
    model = small_float32_model()
    model.layers[1].buffers["mean"] = ["not", "numbers"]
    model.layers[0].params["b"] = model.layers[0].params["b"].astype(np.float64)
    path = tmp_path / "odd.sn"
    path.write_bytes(frame_payload(pickle.dumps(model, protocol=5)))
    with pytest.raises(sn.serialization.SerializationError,
                       match=r"odd.sn: the file holds a malformed model \(dense: params\['b'\] is an array "
                             r"of dtype float64 and shape \(8,\), expected a float32 array\)$"):
        sn.load(path)
    model.layers[0].params["b"] = model.layers[0].params["b"].astype(np.float32)
    path.write_bytes(frame_payload(pickle.dumps(model, protocol=5)))
    with pytest.raises(sn.serialization.SerializationError,
                       match=r"\(batch_norm: buffers\['mean'\] is a list, expected a numeric array\)$"):
        sn.load(path)


# ---------------------------------------------------------------------- callbacks reused
def feed(callback, model, values, monitor):
    """on_train_begin, then on_epoch_end with scripted values, the weights set to the epoch number
    before each; returns the epoch training stopped at (None: it did not)."""
    callback.set_model(model)
    callback.on_train_begin({})
    for epoch, value in enumerate(values):
        model.set_weights({k: np.full_like(v, epoch) for k, v in model.get_weights().items()})
        model.stop_training = False
        callback.on_epoch_end(epoch, {monitor: value})
        if model.stop_training:
            return epoch
    return None


def test_a_new_early_stopping_watching_another_value_starts_fresh():
    from scratchnet.callbacks import EarlyStopping
    model = small_float32_model()
    assert feed(EarlyStopping("val_loss"), model, [1.04, 0.9], "val_loss") is None
    # val_accuracy 0.5, 0.6, 0.55, 0.58 with patience 1: best 0.6 (epoch 1), stop at epoch 3.
    # Against the old best val_loss 0.9 (mode max) nothing improved: it stopped at epoch 1.
    stopper = EarlyStopping("val_accuracy", patience=1, restore_best_weights=True)
    assert feed(stopper, model, [0.5, 0.6, 0.55, 0.58], "val_accuracy") == 3
    state = model.callback_state["early_stopping"]
    watched = (state["best"], state["best_epoch"], state["monitor"], state["mode"])
    assert watched == (0.6, 1, "val_accuracy", "max")
    assert all(np.all(value == 1) for value in model.get_weights().values())   # epoch 1's, restored


def test_the_same_monitor_in_another_mode_starts_fresh_and_the_same_one_continues():
    from scratchnet.callbacks import EarlyStopping
    model = small_float32_model()
    feed(EarlyStopping("loss", patience=5), model, [3.0, 2.0], "loss")
    feed(EarlyStopping("loss", patience=5, mode="max"), model, [1.0], "loss")
    assert model.callback_state["early_stopping"]["best"] == 1.0             # fresh: 1.0 is its first
    # the same monitor and mode again: continues (best 1.0 kept, 0.5 does not improve, patience 0)
    assert feed(EarlyStopping("loss", mode="max"), model, [0.5], "loss") == 0


def test_restore_best_weights_after_the_model_changed_starts_fresh():
    from scratchnet.callbacks import EarlyStopping
    model = small_float32_model()
    feed(EarlyStopping("loss", restore_best_weights=True), model, [1.0], "loss")
    model.add(Dense(3))                                   # the saved best weights lack its W and b
    stopper = EarlyStopping("loss", patience=1, restore_best_weights=True)
    assert feed(stopper, model, [2.0, 1.5, 1.6, 1.7], "loss") == 3        # best 1.5, not the old 1.0
    assert all(np.all(value == 1) for value in model.get_weights().values())   # epoch 1's, restored


# ---------------------------------------------------------------------- a layer in two models
def test_adding_a_built_layer_whose_name_is_taken_renames_nothing():
    from scratchnet.layers import Flatten
    first = sn.Sequential([Flatten(), Dense(3, name="x")], input_shape=(6, 6, 2), dtype="float64").build()
    shared = first.layers[1]
    with pytest.raises(ValueError, match=r"^second: the layer 'x' \(Dense\) is built already \(perhaps in "
                                         r"another model\) and its name is taken in this model; renaming it "
                                         r"to 'x_1' would rename it in the other model too"):
        sn.Sequential([Dense(2, name="x"), shared], input_shape=(5,), name="second")
    assert [layer.name for layer in first.layers] == ["flatten", "x"]      # was renamed to 'x_1'
    assert list(first.get_weights()) == ["x/W", "x/b"]


def test_a_refused_layer_keeps_its_name_and_a_new_one_is_renamed():
    model = sn.Sequential([Dense(3, name="x")], input_shape=(4,), dtype="float64").build()
    wrong = Dense(2, name="x")
    wrong.build((7,), dtype="float64")                   # built for another input shape: refused
    with pytest.raises(ValueError, match="built already"):
        model.add(wrong)
    assert wrong.name == "x" and [layer.name for layer in model.layers] == ["x"]
    model.add(Dense(2, name="x"))                        # a new layer is still renamed
    assert [layer.name for layer in model.layers] == ["x", "x_1"]


def test_duplicate_names_inside_a_built_block_are_still_renamed():
    from scratchnet.layers import Parallel
    block = Parallel([Dense(2), Parallel([Dense(2), Dense(2)], merge="add")], merge="add")
    block.build((4,), dtype="float64")
    model = sn.Sequential([block], input_shape=(4,), dtype="float64")
    names = [layer.name for layer in sn.layers.base.iter_layers(model.layers)]
    assert names == ["parallel", "dense", "parallel_1", "dense_1", "dense_2", "add", "add_1"]


# ---------------------------------------------------------------------- backward without a cache
def drop_the_cache(model, how, tmp_path):
    """``model`` (or its copy) after ``how``, starting from a training forward's caches."""
    import copy
    model.forward(X, training=True)
    if how == "evaluate":
        model = copy.deepcopy(model)   # no cache, then evaluate: it leaves none of its own
        model.evaluate(X, Y)
    elif how == "predict":
        model = copy.deepcopy(model)
        model.predict(X)
    elif how == "train_step":
        model.train_step(X, Y)
    elif how == "release_caches":
        model.backward(np.ones((16, 3)), release_caches=True)
    elif how == "astype":
        model.astype("float32")
    elif how == "deepcopy":
        model = copy.deepcopy(model)
    elif how == "save and load":
        model.save(tmp_path / "m.sn")
        model = sn.load(tmp_path / "m.sn")
    return model


@pytest.mark.parametrize("how", ["evaluate", "predict", "train_step", "release_caches", "astype", "deepcopy",
                                 "save and load"])
def test_backward_without_a_forward_cache_says_what_drops_it(how, tmp_path):
    model = drop_the_cache(dropout_batchnorm_mlp(), how, tmp_path)
    with pytest.raises(RuntimeError, match=r"^dense_1: backward found no forward cache; call forward\(x, "
                                           r"training=\.\.\.\) right before it\. These leave no cache for "
                                           r"a backward: predict and evaluate .*, fit and train_step, "
                                           r"backward\(release_caches=True\), copy.deepcopy, pickling and "
                                           r"save/load, astype$"):
        model.backward(np.ones((16, 3)))


# ---------------------------------------------------------------------- an unbuilt model
@pytest.mark.parametrize("who", ["output_shape", "count_params()", "get_weights()", "summary()"])
def test_an_unbuilt_model_without_input_shape_asks_to_be_built(who):
    from scratchnet.layers import Conv2D, Flatten
    model = sn.Sequential([Conv2D(4, 3), Flatten(), Dense(3)])
    read = {"output_shape": lambda: model.output_shape, "count_params()": model.count_params,
            "get_weights()": model.get_weights, "summary()": model.summary}[who]
    with pytest.raises(ValueError, match=rf"^sequential: build the model \(give input_shape\) before "
                                         rf"{who.replace('(', '[(]').replace(')', '[)]')}$"):
        read()


def test_an_unbuilt_model_with_input_shape_is_built_to_count_its_params():
    model = sn.Sequential([Dense(3)], input_shape=(4,))
    assert model.output_shape == (3,) and not model.built        # arithmetic only
    assert model.count_params() == 4 * 3 + 3                     # was 0
    assert list(model.get_weights()) == ["dense/W", "dense/b"]   # was {}
