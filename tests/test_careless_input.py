"""Issue 10: the mistakes a class makes in its first week end in the right behaviour or in an
error (or warning) that names the model/layer/argument, what was expected and what was given."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet import cli, layers
from scratchnet.layers import Activation, Conv2D, Dense, Flatten, MaxPool2D
from scratchnet.layers.base import iter_layers
from scratchnet.serialization import SerializationError, UnsafeModelError


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.random((n, 4, 4, 1)) + 0.3 * y[:, None, None, None]
    return (x / 1.3).astype("float32"), y


def mlp(seed=0, lr=1e-2, dtype="float32"):
    model = sn.Sequential([Flatten(), Dense(8, activation="relu"), Dense(2)], input_shape=(4, 4, 1),
                          seed=seed, dtype=dtype)
    return model.compile(sn.Adam(lr=lr), "cross_entropy").build()


# 1 ---------------------------------------------------------------- get_weights / set_weights
def test_get_weights_returns_copies_and_set_weights_takes_a_dict_or_a_list():
    x, y = data()
    model = mlp()
    best = model.get_weights()
    frozen = {key: value.copy() for key, value in best.items()}
    model.fit(x, y, epochs=2, verbose=0)
    assert all(np.array_equal(best[key], frozen[key]) for key in best)     # not live arrays
    assert not np.array_equal(model.get_weights()["dense/W"], best["dense/W"])
    model.get_weights()["dense/W"][...] = 7                                 # writing into a copy
    assert not np.any(model.layers[1].params["W"] == 7)
    model.set_weights(best)
    assert all(np.array_equal(model.get_weights()[k], best[k]) for k in best)
    trained = mlp(seed=5)
    trained.set_weights(list(best.values()))                                # layer order
    assert all(np.array_equal(trained.get_weights()[k], best[k]) for k in best)
    with pytest.raises(ValueError, match=r"list of 3 arrays, the model has 4 \(dense/W, dense/b"):
        trained.set_weights(list(best.values())[:3])
    with pytest.raises(TypeError, match=r"set_weights expects a dict .* or a list of arrays in layer "
                                        r"order, got str"):
        trained.set_weights("weights.npz")


# 2 ---------------------------------------------------------------- empty data
def test_empty_data_is_a_clear_error(tmp_path, capsys):
    x, y = data()
    model = mlp()
    with pytest.raises(ValueError, match=r"sequential: fit: x has no samples \(shape \(0, 4, 4, 1\)\)"):
        model.fit(x[:0], y[:0], verbose=0)
    with pytest.raises(ValueError, match=r"sequential: evaluate: x has no samples"):
        model.evaluate(x[:0], y[:0])
    with pytest.raises(ValueError, match=r"evaluate: x has no samples|validation_data: x_val has no samples"):
        model.fit(x, y, validation_data=(x[:0], y[:0]), verbose=0)
    with pytest.raises(ValueError, match="validation_split=0.999 of 64 samples leaves no training samples"):
        model.fit(x, y, validation_split=0.999, verbose=0)
    assert model.predict(x[:0]).shape == (0, 2)                             # predict: empty in, empty out
    code = cli.main(["train", "--limit", "10", "--val-fraction", "0.95", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "--val-fraction 0.95 of 10 training images leaves none to train on" in capsys.readouterr().err


# 3 ---------------------------------------------------------------- a layer object used twice
def test_a_layer_used_twice_is_refused_with_a_hint():
    d = Dense(4)
    with pytest.raises(ValueError, match=r"layer 'dense' \(Dense\) is already in the model; a layer "
                                         r"object can be used only once.*create a new object.*sharing "
                                         r"weights .* is not supported"):
        sn.Sequential([d, d, Dense(3)], input_shape=(5,))
    model = sn.Sequential([d], input_shape=(5,))
    with pytest.raises(ValueError, match="already in the model"):
        model.add(d)
    assert len(model.layers) == 1


# 4 ---------------------------------------------------------------- build on a built model
def test_build_on_a_built_model_keeps_the_training():
    x, y = data()
    model = mlp()
    model.fit(x, y, epochs=1, verbose=0)
    trained = model.get_weights()
    assert model.build() is model and model.build((4, 4, 1)) is model     # no-op, same shape
    assert all(np.array_equal(model.get_weights()[k], trained[k]) for k in trained)
    with pytest.raises(ValueError, match=r"already built for input shape \(4, 4, 1\), got \(16,\);.*"
                                         r"Call model\.build\(\(16,\), reset=True\)"):
        model.build((16,))
    model.build((4, 4, 1), reset=True)
    assert model.epochs_trained == 0 and model.optimizer.iterations == 0
    assert not np.array_equal(model.get_weights()["dense/W"], trained["dense/W"])
    assert model.layers[1].opt_state == {}


# 5 ---------------------------------------------------------------- a NaN pixel
def test_first_non_finite_loss_stops_fit_naming_the_batch_and_the_cause():
    x, y = data()
    x[37, 1, 2, 0] = np.nan
    model = mlp()
    before = model.get_weights()
    with pytest.raises(sn.NonFiniteLossError, match=r"epoch 1, batch 3 of 4 \(rows \[37\] of x hold "
                                                    r"NaN/inf\): sequential: the loss is nan; "
                                                    r"the input batch contains 1 NaN/inf value\(s\) "
                                                    r"\(in batch sample\(s\) \[5\]\).*weights are those "
                                                    r"from before this step"):
        model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    after = model.get_weights()
    assert all(np.all(np.isfinite(value)) for value in after.values())
    assert model.optimizer.iterations == 2                                 # two good steps, no third
    assert not np.array_equal(after["dense/W"], before["dense/W"])
    # shuffled: the batch position tells the student nothing, the row of x does
    with pytest.raises(sn.NonFiniteLossError, match=r"batch \d of 4 \(rows \[37\] of x hold NaN/inf\)"):
        mlp().fit(x, y, epochs=1, batch_size=16, shuffle=True, verbose=0)


def test_non_finite_loss_from_a_layer_names_the_layer():
    x, y = data()
    model = sn.Sequential([Flatten(), Dense(8), Dense(2, name="logits")], input_shape=(4, 4, 1), seed=0)
    model.compile(sn.SGD(lr=1e36), "cross_entropy")
    with np.errstate(all="ignore"), pytest.raises(
            sn.NonFiniteLossError, match=r"the input is finite; the output of layer '(dense|logits)' "
                                         r"\(Dense\) is the first to contain NaN/inf"):
        model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert all(np.all(np.isfinite(value)) for value in model.get_weights().values())


# 6 ---------------------------------------------------------------- uint8 images, unscaled inputs
def test_integer_images_and_out_of_range_inputs_warn_once_with_the_hint():
    x, y = data()
    model = mlp()
    images = (x * 255).round().astype(np.uint8)
    images[0, 0, 0, 0] = 255
    with pytest.warns(UserWarning, match=r"integer input \(dtype uint8, values up to 255\).*"
                                         r"x.astype\('float32'\) / 255"):
        model.fit(images, y, epochs=1, verbose=0)
    model = mlp()
    model.fit(x, y, epochs=1, verbose=0)
    assert model.input_range[0] >= 0 and model.input_range[1] <= 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict(x * 255, batch_size=8)                               # 8 batches, one warning
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "inputs range from" in messages[0] and "x / 255" in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(x)                                                   # in range: silent
        model.evaluate(x * 1.5, y)                                         # a bit beyond: silent


# 7 ---------------------------------------------------------------- float16
@pytest.mark.parametrize("dtype", ["float16", "int32", "complex128"])
def test_only_float32_and_float64_are_accepted(dtype):
    with pytest.raises(TypeError, match=f"dtype must be 'float32' or 'float64', got {dtype}"):
        sn.Sequential([Dense(2)], input_shape=(3,), dtype=dtype)
    with pytest.raises(TypeError, match="float32' or 'float64'"):
        mlp().astype(dtype)
    with pytest.raises(TypeError, match="Adam's eps=1e-8 rounds to 0"):
        sn.Sequential([Dense(2)], dtype="float16")


# 8 ---------------------------------------------------------------- classes saved from __main__
def test_a_layer_class_saved_from_a_script_loads_from_another(tmp_path):
    layer_source = textwrap.dedent('''
        import numpy as np
        from scratchnet.layers import Layer

        class Scale(Layer):
            def forward(self, x, training=False):
                self.cache = {"x": x}
                return 2 * self.check_input(x)

            def backward(self, dy):
                return 2 * dy
    ''')
    (tmp_path / "mylayers.py").write_text(layer_source)
    script = layer_source + textwrap.dedent('''
        import scratchnet as sn
        from scratchnet.layers import Dense
        model = sn.Sequential([Scale(), Dense(2)], input_shape=(3,), seed=0).build()
        model.save("model.sn")
    ''')
    (tmp_path / "save_it.py").write_text(script)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), str(tmp_path)]))
    subprocess.run([sys.executable, "save_it.py"], cwd=tmp_path, check=True, env=env)
    sys.path.insert(0, str(tmp_path))
    try:
        import mylayers
    finally:
        sys.path.remove(str(tmp_path))
    path = tmp_path / "model.sn"
    with pytest.raises(UnsafeModelError, match=r"global __main__.Scale.*allowed_classes=\[Scale\]"):
        sn.load(path)
    model = sn.load(path, allowed_classes=[mylayers.Scale])
    assert isinstance(model.layers[0], mylayers.Scale)
    dense = model.layers[1].params
    np.testing.assert_allclose(model.predict(np.ones((1, 3))), 2 * np.ones((1, 3)) @ dense["W"] + dense["b"],
                               rtol=1e-6)
    with pytest.raises(SerializationError, match=r"needs class __main__.Scale, which does not exist here "
                                                 r"\(it was saved from a script run as __main__\).*"
                                                 r"allowed_classes=\[Scale\]") as info:
        sn.load(path, trusted=True)
    assert "corrupted" not in str(info.value)


# 9 ---------------------------------------------------------------- softmax twice, rows not summing to 1
def test_softmax_before_cross_entropy_and_bad_label_rows_warn():
    for last in (Dense(2, activation="softmax"), Activation("softmax")):
        model = sn.Sequential([Flatten(), Dense(4), last], input_shape=(4, 4, 1))
        with pytest.warns(UserWarning, match=r"applies softmax and the loss 'cross_entropy' applies "
                                             r"softmax again.*predict_proba"):
            model.compile("adam", "cross_entropy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        softmax_last = sn.Sequential([Flatten(), Dense(2, activation="softmax")], input_shape=(4, 4, 1))
        softmax_last.compile("adam", "mse")
        mlp()
    x, y = data(16)
    rows = np.eye(2)[y] * 2.0                                             # "one-hot" of 2s
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mlp().fit(x, rows, epochs=2, batch_size=4, verbose=0)              # 8 batches, one warning
    messages = [str(w.message) for w in caught]
    assert messages == ["cross_entropy: label rows should be probabilities summing to 1, but row 0 sums "
                        "to 2; the loss is then not a cross-entropy (pass integer labels (N,), or one-hot "
                        "/ soft-label rows)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mlp().fit(x, np.full((16, 2), 0.5), epochs=1, verbose=0)          # soft labels: fine


# 10 --------------------------------------------------------------- channels-first, no batch axis
def test_channels_first_and_missing_batch_axis_get_hints():
    model = sn.Sequential([Conv2D(4, 3), Flatten(), Dense(2)], input_shape=(28, 28, 1))
    with pytest.raises(ValueError, match=r"got \(2, 1, 28, 28\); this looks channels-first.*"
                                         r"x.transpose\(0, 2, 3, 1\)"):
        model.predict(np.zeros((2, 1, 28, 28)))
    with pytest.raises(ValueError, match=r"got \(28, 28, 1\); this looks like ONE sample without the "
                                         r"batch axis: add it with x\[None\]"):
        model.predict(np.zeros((28, 28, 1)))
    unbuilt = sn.Sequential([Conv2D(4, 3), MaxPool2D(2), Flatten(), Dense(2)])
    with pytest.raises(ValueError, match=r"input of shape \(2, 3, 32, 32\) looks channels-first"):
        unbuilt.predict(np.zeros((2, 3, 32, 32)))
    assert not unbuilt.built
    with pytest.raises(ValueError, match=r"add a batch axis"):
        sn.Sequential([Dense(2)]).predict(np.zeros(5))
    assert unbuilt.predict(np.zeros((2, 32, 32, 3))).shape == (2, 2)


# 11 --------------------------------------------------------------- batch_size=0, (x,), input_shape=784
def test_wrong_arguments_say_what_was_expected():
    x, y = data(8)
    model = mlp()
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        model.predict(x, batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        model.evaluate(x, y, batch_size=0)
    with pytest.raises(ValueError, match=r"validation_data must be a pair \(x_val, y_val\), got a tuple "
                                         r"of 1 item"):
        model.fit(x, y, validation_data=(x,), verbose=0)
    flat = sn.Sequential([Dense(3)], input_shape=784)
    assert flat.input_shape == (784,) and flat.build().output_shape == (3,)
    with pytest.raises(TypeError, match=r"input_shape must be a tuple of ints .* got 'abc'"):
        sn.Sequential([Dense(3)], input_shape="abc")


# 12 --------------------------------------------------------------- save paths
def test_save_names_the_users_path_and_the_reason(tmp_path, monkeypatch):
    model = mlp().build()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"cannot save to 'missing/dir/m.sn': the folder .*missing/dir"
                                                r"' does not exist") as info:
        model.save("missing/dir/m.sn")
    assert ".tmp" not in str(info.value)
    (tmp_path / "a_folder").mkdir()
    with pytest.raises(IsADirectoryError, match=r"cannot save to 'a_folder': it is a folder; give a file "
                                                r"name, e.g. 'a_folder/model.sn'"):
        model.save("a_folder")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    model.save("~/m.sn")
    assert (tmp_path / "home" / "m.sn").exists() and not (tmp_path / "~").exists()
    assert sn.load("~/m.sn").count_params() == model.count_params()
    model.save_weights("~/w.npz")
    model.load_weights("~/w.npz")
    if os.geteuid() != 0:                                                  # root may write anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        with pytest.raises(PermissionError, match=r"cannot save to 'ro/m.sn': Permission denied"):
            model.save("ro/m.sn")


# 13 --------------------------------------------------------------- load_weights on a model file
def test_load_weights_on_a_model_file_points_to_scratchnet_load(tmp_path):
    model = mlp().build()
    model.save(tmp_path / "model.sn")
    with pytest.raises(SerializationError, match=r"it is a model file \(written by model.save\); load it "
                                                 r"with scratchnet.load") as info:
        model.load_weights(tmp_path / "model.sn")
    assert "allow_pickle" not in str(info.value)


# 14 --------------------------------------------------------------- the lr setter
# Item 14 (model.optimizer.lr = 1e-4) belongs to the optimizers work (AdamW/schedules): not here.


# 15 --------------------------------------------------------------- command line
def test_command_line_messages(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert cli.main(["train", "--limit", "10", "--out", str(tmp_path / "file")]) == 2
    assert f"--out {tmp_path / 'file'}: is a file, not a folder" in capsys.readouterr().err
    assert cli.main(["train", "--limit", "10", "--out", "/proc/no/such"]) == 2
    assert "--out /proc/no/such: cannot create the output folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--epochs", "abc"])
    err = capsys.readouterr().err
    assert "argument --epochs: expected a whole number >= 1, got 'abc'" in err and "_positive_int" not in err
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    assert "``" not in text and "(default: 10)" in text and "(default: 0.1)" in text
    assert "(default: None)" not in text
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text and "imported inside" not in text and "scratchnet train" in text


# Keras habits ------------------------------------------------------------------------------
def test_keras_habits(capsys):
    x, y = data()
    model = mlp()
    history = model.fit(x, y, epochs=2, validation_split=0.25, verbose=0)
    assert "val_loss" in history and len(history["val_accuracy"]) == 2
    logits = model.predict(x)
    np.testing.assert_array_equal(model(x), logits)
    proba = model.predict_proba(x)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(proba, expected / expected.sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(model.predict_classes(x), logits.argmax(axis=1))
    capsys.readouterr()
    result = model.evaluate(x, y, verbose=1)
    expected = f"loss: {result['loss']:.4f} - accuracy: {result['accuracy']:.4f}"
    assert capsys.readouterr().out.strip() == expected
    model.evaluate(x, y)
    assert capsys.readouterr().out == ""


# Every built-in layer, fed wrong shapes, dtypes and values ----------------------------------
# (label -> (factory, one sample's shape)). Other layers extend this dict: add one line each.
LAYER_FACTORIES = {
    "Dense": (lambda: Dense(3, activation="relu"), (5,)),
    "Conv2D": (lambda: Conv2D(2, 3, padding="same"), (5, 5, 2)),
    "Activation": (lambda: Activation("tanh"), (4,)),
    "Flatten": (lambda: Flatten(), (3, 3, 2)),
    "MaxPool2D": (lambda: MaxPool2D(2), (4, 4, 2)),
    "AvgPool2D": (lambda: layers.AvgPool2D(2), (4, 4, 2)),
    "GlobalAvgPool2D": (lambda: layers.GlobalAvgPool2D(), (3, 3, 2)),
    "Chain": (lambda: layers.Chain([Conv2D(2, 3, padding="same"), Activation("relu")]), (5, 5, 2)),
    "Residual": (lambda: layers.Residual([Conv2D(2, 3, padding="same"), Activation("relu")]), (5, 5, 2)),
    "Parallel": (lambda: layers.Parallel([Conv2D(2, 1), [Conv2D(3, 3, padding="same")]]), (5, 5, 2)),
    "BatchNorm": (lambda: layers.BatchNorm(), (3, 3, 2)),
    "Dropout": (lambda: layers.Dropout(0.5), (4,)),
    "SpatialDropout2D": (lambda: layers.SpatialDropout2D(0.5), (3, 3, 2)),
    "ChannelShuffle": (lambda: layers.ChannelShuffle(2), (3, 3, 4)),
    "ZeroPadding2D": (lambda: layers.ZeroPadding2D(1), (3, 3, 2)),
    "UpSampling2D": (lambda: layers.UpSampling2D(2), (3, 3, 2)),
    "DepthwiseConv2D": (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (4, 4, 2)),
    "SeparableConv2D": (lambda: layers.SeparableConv2D(3, 3, padding="same"), (4, 4, 2)),
}
# Merge layers take a LIST of arrays; tests/test_merge.py feeds them wrong lists and shapes.
MULTI_INPUT_LAYERS = {"Add", "Concatenate"}


def test_every_exported_layer_has_a_factory():
    exported = {name for name in layers.__all__ if name != "Layer"}
    exported -= MULTI_INPUT_LAYERS
    assert exported <= set(LAYER_FACTORIES), f"add factories for {sorted(exported - set(LAYER_FACTORIES))}"


BAD_DTYPES = [np.dtype("U3"), np.dtype(object), np.dtype("complex128"), np.dtype(bool), np.dtype("int64"),
              np.dtype("float16"), np.dtype("float64")]


@given(name=st.sampled_from(sorted(LAYER_FACTORIES)), dtype=st.sampled_from(BAD_DTYPES),
       shape_change=st.sampled_from(["same", "drop_axis", "add_axis", "swap", "grow", "batch0"]),
       fill=st.sampled_from([0.5, np.nan, np.inf, -np.inf]), n=st.integers(1, 3))
def test_layers_either_work_or_raise_an_error_naming_the_layer(name, dtype, shape_change, fill, n):
    factory, sample = LAYER_FACTORIES[name]
    layer = factory()
    layer.build(sample, rng=np.random.default_rng(0), dtype="float64")
    shape = {"same": (n, *sample), "drop_axis": (n, *sample[1:]), "add_axis": (n, 1, *sample),
             "swap": (n, *sample[::-1]), "grow": (n, *(s + 1 for s in sample)), "batch0": (0, *sample)}
    shape = shape[shape_change]
    x = np.full(shape, fill if dtype.kind in "fc" else 1, dtype=dtype) if dtype.kind != "U" \
        else np.full(shape, "abc")
    try:
        with np.errstate(all="ignore"):
            y = layer.forward(x, training=True)
    except (ValueError, TypeError) as error:
        # a container may let the child that failed speak: its name is as precise as the container's
        names = [inner.name for inner in iter_layers([layer])]
        assert any(found in str(error) for found in names), f"{name}: the error names no layer: {error}"
        return
    assert dtype.kind in "fiub", f"{name} accepted dtype {dtype}"
    assert y.dtype == np.float64 and y.shape[0] == shape[0]
    if np.isfinite(fill) and dtype.kind == "f":
        assert np.all(np.isfinite(y))


def test_the_readme_errors_section_shows_messages_the_code_produces():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## Errors"):text.index("## Tutorials")]
    shown = [" ".join(block.split()) for block in re.findall(r"```\n(.*?)\n```", section, re.S)]
    model = sn.Sequential([Conv2D(8, 3), MaxPool2D(2), Flatten(), Dense(10)], seed=0)
    with pytest.raises(ValueError) as channels_first:
        model.predict(np.zeros((2, 1, 28, 28)))
    rng = np.random.default_rng(0)
    x, y = rng.random((256, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 256)
    x[100, 5, 5, 0] = np.nan
    model = sn.Sequential([Conv2D(8, 3), MaxPool2D(2), Flatten(), Dense(10)], input_shape=(28, 28, 1), seed=0)
    with pytest.raises(sn.NonFiniteLossError) as nan_pixel:
        model.compile("adam", "cross_entropy").fit(x, y, batch_size=64, shuffle=False, verbose=0)
    three_outputs = sn.Sequential([Flatten(), Dense(3)], input_shape=(28, 28, 1), seed=0).compile()
    with pytest.raises(ValueError) as too_few_outputs:
        three_outputs.fit(np.nan_to_num(x), y, verbose=0)                  # labels 0..9
    assert shown == [f"ValueError: {channels_first.value}", f"NonFiniteLossError: {nan_pixel.value}",
                     f"ValueError: {too_few_outputs.value}"]
    assert "DESIGN.md" not in text


def test_flatten_accepts_an_empty_batch():
    layer = Flatten()
    layer.build((3, 3, 2))
    assert layer.forward(np.zeros((0, 3, 3, 2))).shape == (0, 18)
