"""Safe save and load (issue 4): round trip and format, exact resume, file size, weights files.

The restricted unpickler and what it refuses are in test_serialization_unpickler.py; damaged
files and atomic writes in test_serialization_damage.py; the models, data and
``assert_same_state`` they share in serialization_models.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from serialization_models import assert_same_state, blobs, mlp

import scratchnet as sn
from scratchnet import serialization
from scratchnet.layers import Activation, BatchNorm, Conv2D, Dense, Flatten, MaxPool2D
from scratchnet.optimizers import SGD, Adam, StepDecay
from scratchnet.serialization import MAGIC, SerializationError

REPO_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ models and data
def cnn(seed=0, dtype="float32", optimizer="adam"):
    model = sn.Sequential([Conv2D(3, 3, padding="same"), MaxPool2D(2), Flatten(), Dense(3)],
                          input_shape=(6, 6, 1), seed=seed, dtype=dtype)
    return model.compile(optimizer, "cross_entropy")


def images(n=30, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 1)).astype(dtype), rng.integers(0, 3, size=n)


def make_optimizer(kind):
    return {"adam": lambda: Adam(lr=0.01),
            "momentum": lambda: SGD(lr=0.05, momentum=0.9),
            "nesterov": lambda: SGD(lr=StepDecay(0.05, factor=0.5, every=4), momentum=0.9, nesterov=True),
            }[kind]()


# ------------------------------------------------------------------ round trip and format
def test_round_trip_keeps_everything_and_header_describes_payload(tmp_path):
    x, y = blobs()
    model = mlp(seed=1)
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    model.save(tmp_path / "model.sn")
    loaded = sn.load(tmp_path / "model.sn")

    assert_same_state(model, loaded)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    data = (tmp_path / "model.sn").read_bytes()
    assert data.startswith(MAGIC + b" ")
    header_line, payload = data[len(MAGIC) + 1:].split(b"\n", 1)
    header = json.loads(header_line)
    assert header["format"] == serialization.FORMAT_VERSION and header["scratchnet"] == sn.__version__
    assert header["payload_bytes"] == len(payload) and header["pickle_protocol"] == 5
    assert payload[:2] == b"\x80\x05"  # pickle protocol 5


def test_loaded_model_has_zero_gradients_no_caches_and_trains(tmp_path):
    x, y = blobs()
    model = mlp(seed=2)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert any(np.any(grad != 0) for layer in model.layers for grad in layer.grads.values())
    model.save(tmp_path / "m.sn")
    loaded = sn.load(tmp_path / "m.sn")
    for layer in loaded.layers:
        assert layer.cache == {}
        assert layer.grads.keys() == layer.params.keys()
        for key, grad in layer.grads.items():
            assert grad.shape == layer.params[key].shape and grad.dtype == layer.dtype
            assert not np.any(grad)
    loaded.fit(x, y, epochs=1, batch_size=32, verbose=0)  # the zero grads are only placeholders


def test_cnn_round_trip(tmp_path):
    x, y = images()
    model = cnn(seed=3)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "cnn.sn")
    loaded = sn.load(tmp_path / "cnn.sn")
    assert_same_state(model, loaded)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_batchnorm_running_statistics_round_trip(tmp_path):
    # the running mean and variance are buffers, not parameters: saved and loaded all the same
    x, y = images()
    model = sn.Sequential([Conv2D(3, 3, padding="same"), BatchNorm(), Activation("relu"), MaxPool2D(2),
                           Flatten(), Dense(3)], input_shape=(6, 6, 1), seed=3)
    model.compile("adam", "cross_entropy").fit(x + 2.0, y, epochs=2, batch_size=8, verbose=0)
    norm = model.layers[1]
    assert np.all(norm.buffers["mean"] != 0) and np.all(norm.buffers["var"] != 1)  # trained, not initial
    model.save(tmp_path / "bn.sn")
    loaded = sn.load(tmp_path / "bn.sn")
    assert_same_state(model, loaded)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))  # inference: running statistics


# ------------------------------------------------------------------ exact resume
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["adam", "momentum", "nesterov"])
def test_resume_is_bitwise_identical_to_training_without_stopping(tmp_path, dtype, optimizer):
    # 90 samples, batch 32: a ragged last batch, and shuffling draws from the saved generator.
    x, y = blobs(dtype=dtype)
    validation = blobs(30, seed=9, dtype=dtype)
    straight = mlp(seed=4, dtype=dtype, optimizer=make_optimizer(optimizer))
    full = straight.fit(x, y, epochs=5, batch_size=32, validation_data=validation, verbose=0)

    resumed = mlp(seed=4, dtype=dtype, optimizer=make_optimizer(optimizer))
    first = resumed.fit(x, y, epochs=2, batch_size=32, validation_data=validation, verbose=0)
    resumed.save(tmp_path / "ckpt.sn")
    del resumed
    resumed = sn.load(tmp_path / "ckpt.sn")
    second = resumed.fit(x, y, epochs=3, batch_size=32, validation_data=validation, verbose=0)

    assert_same_state(straight, resumed)
    assert resumed.optimizer.iterations == 5 * 3
    assert first.epoch + second.epoch == full.epoch == [1, 2, 3, 4, 5]
    assert first.history.keys() == full.history.keys()
    for key in full.history:
        assert first[key] + second[key] == full[key], key


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cnn_resume_is_bitwise_identical(tmp_path, dtype):
    x, y = images(dtype=dtype)
    straight = cnn(seed=6, dtype=dtype, optimizer=SGD(lr=0.05, momentum=0.9, nesterov=True))
    full = straight.fit(x, y, epochs=2, batch_size=8, verbose=0)
    resumed = cnn(seed=6, dtype=dtype, optimizer=SGD(lr=0.05, momentum=0.9, nesterov=True))
    first = resumed.fit(x, y, epochs=1, batch_size=8, verbose=0)
    resumed.save(tmp_path / "cnn.sn")
    resumed = sn.load(tmp_path / "cnn.sn")
    second = resumed.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert_same_state(straight, resumed)
    assert first["loss"] + second["loss"] == full["loss"]


# ------------------------------------------------------------------ fresh process
def test_fresh_python_process_gives_identical_predictions(tmp_path):
    models = {"mlp": (mlp(seed=7), blobs()[0]), "cnn": (cnn(seed=7), images()[0])}
    script = ["import sys, numpy as np, scratchnet as sn"]
    for name, (model, x) in models.items():
        model.fit(x, np.arange(len(x)) % 3, epochs=1, batch_size=16, verbose=0)
        model.save(tmp_path / f"{name}.sn")
        np.save(tmp_path / f"{name}_x.npy", x)
        script.append(f"np.save(r'{tmp_path / name}_out.npy', "
                      f"sn.load(r'{tmp_path / name}.sn').predict(np.load(r'{tmp_path / name}_x.npy')))")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", "\n".join(script)], check=True, env=env, cwd=tmp_path,
                   timeout=300)
    for name, (model, x) in models.items():
        out = np.load(tmp_path / f"{name}_out.npy")
        assert out.dtype == model.dtype
        np.testing.assert_array_equal(out, model.predict(x))


# ------------------------------------------------------------------ size: no caches, no grads
def expected_bytes(model):
    arrays = [value for layer in model.layers for store in (layer.params, layer.buffers)
              for value in store.values()]
    arrays += [value for layer in model.layers for state in layer.opt_state.values()
               for value in state.values() if isinstance(value, np.ndarray)]
    return sum(array.nbytes for array in arrays)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_file_is_about_params_plus_optimizer_state_after_a_big_forward(tmp_path, kind):
    if kind == "cnn":
        model, (x, y) = cnn(seed=8), images(64)
        big = np.random.default_rng(0).normal(size=(3000, 6, 6, 1))  # im2col cols: 3000*36*9 floats
    else:
        model = sn.Sequential([Dense(64, activation="relu"), Dense(10)], input_shape=(200,), seed=8)
        model.compile("adam")
        x, y = np.random.default_rng(0).normal(size=(64, 200)), np.arange(64) % 10
        big = np.random.default_rng(1).normal(size=(3000, 200))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.forward(big, training=True)  # fills every layer's cache with batch-sized arrays
    cached = sum(value.nbytes for layer in model.layers for value in layer.cache.values()
                 if isinstance(value, np.ndarray))
    expected = expected_bytes(model)
    assert cached > 4 * expected  # the caches would dominate the file if they were saved
    model.save(tmp_path / "m.sn")
    size = (tmp_path / "m.sn").stat().st_size
    # Params + Adam's m and v, plus a few kB of configuration; saved gradients would add a third.
    assert expected <= size <= expected * 1.05 + 6000, (size, expected)


# ------------------------------------------------------------------ weights files
def test_weights_round_trip_into_a_fresh_model_at_the_exact_path(tmp_path):
    x, y = blobs()
    model = mlp(seed=1)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.save_weights(tmp_path / "weights.bin")
    assert os.listdir(tmp_path) == ["weights.bin"]  # no ".npz" appended
    with np.load(tmp_path / "weights.bin", allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(model.get_weights())
        for key, value in model.get_weights().items():
            np.testing.assert_array_equal(archive[key], value)
    other = mlp(seed=99)  # unbuilt: load_weights builds it from input_shape
    other.load_weights(tmp_path / "weights.bin")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))


def test_shape_mismatch_names_layer_and_both_shapes_and_changes_nothing(tmp_path):
    small = mlp(seed=1, features=6).build()
    wide = sn.Sequential([Dense(8, activation="tanh"), Dense(4)], input_shape=(6,), seed=2).build()
    wide.save_weights(tmp_path / "wide.npz")
    before = {key: value.copy() for key, value in small.get_weights().items()}
    with pytest.raises(ValueError, match=r"dense_1: parameter 'W' has shape \(8, 3\) in the model but "
                                         r"\(8, 4\) in the weights"):
        small.load_weights(tmp_path / "wide.npz")
    for key, value in small.get_weights().items():  # dense/W came first and was not copied either
        np.testing.assert_array_equal(value, before[key])


def test_float64_weights_load_into_a_float32_model_converted_to_its_dtype(tmp_path):
    """The docstrings' promise: names and shapes are checked, the dtype is converted."""
    wide = mlp(seed=1, dtype="float64").build()
    wide.save_weights(tmp_path / "float64.npz")
    narrow = mlp(seed=2, dtype="float32").build()
    narrow.load_weights(tmp_path / "float64.npz")
    for key, value in wide.get_weights().items():
        loaded = narrow.get_weights()[key]
        assert loaded.dtype == np.float32
        np.testing.assert_array_equal(loaded, value.astype(np.float32))  # rounded once, exactly
    integers = {key: np.ones(value.shape, dtype=np.int64) for key, value in wide.get_weights().items()}
    narrow.set_weights(integers)  # whole numbers are real numbers too
    for value in narrow.get_weights().values():
        assert value.dtype == np.float32 and np.all(value == 1.0)


def test_bad_dtype_or_names_change_nothing():
    model = mlp(seed=1).build()
    before = {key: value.copy() for key, value in model.get_weights().items()}
    weights = {key: np.full_like(value, 7) for key, value in before.items()}
    weights["dense_1/b"] = np.array(["a", "b", "c"])
    with pytest.raises(TypeError, match="dense_1: parameter 'b' must hold real numbers"):
        model.set_weights(weights)
    with pytest.raises(ValueError, match=r"missing \['dense_1/b'\], unexpected \['extra/W'\]"):
        model.set_weights({**{k: v for k, v in weights.items() if k != "dense_1/b"}, "extra/W": 1})
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_weights_rejects_files_that_are_not_npz(tmp_path):
    model = mlp().build()
    model.save(tmp_path / "model.sn")
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    for name in ("model.sn", "single.npy", "garbage.npz"):
        with pytest.raises(SerializationError, match="not a readable weights file"):
            model.load_weights(tmp_path / name)


def test_save_weights_of_an_unbuilt_model_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        mlp().save_weights(tmp_path / "w.npz")
    assert os.listdir(tmp_path) == []
