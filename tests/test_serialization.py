"""Safe save and load (issue 4): format, restricted unpickler, atomic writes, exact resume.

Every malicious payload in this file is first shown to be live (plain ``pickle.loads`` runs it
and the marker file appears), so the "refused and nothing ran" assertions can fail.
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet import serialization
from scratchnet.layers import Activation, BatchNorm, Conv2D, Dense, Flatten, Layer, MaxPool2D
from scratchnet.optimizers import SGD, Adam, StepDecay
from scratchnet.serialization import (
    MAGIC,
    RestrictedUnpickler,
    SerializationError,
    UnsafeModelError,
    frame_payload,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED_ERRORS = (SerializationError, UnsafeModelError, FileNotFoundError)


# ------------------------------------------------------------------ models and data
def blobs(n=90, features=6, classes=3, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = rng.normal(size=(n, features)) + 2.0 * np.eye(classes, features)[y]
    return x.astype(dtype), y


def mlp(seed=0, dtype="float32", optimizer="adam", features=6):
    model = sn.Sequential([Dense(8, activation="tanh"), Dense(3)], input_shape=(features,),
                          seed=seed, dtype=dtype)
    return model.compile(optimizer, "cross_entropy")


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


def assert_same_state(a, b):
    """Weights, buffers, optimizer moments and step counts: bitwise equal."""
    assert [type(layer) for layer in a.layers] == [type(layer) for layer in b.layers]
    for layer_a, layer_b in zip(a.layers, b.layers):
        assert layer_a.get_config() == layer_b.get_config()
        for store_a, store_b in ((layer_a.params, layer_b.params), (layer_a.buffers, layer_b.buffers)):
            assert store_a.keys() == store_b.keys()
            for key in store_a:
                assert store_a[key].dtype == store_b[key].dtype
                np.testing.assert_array_equal(store_a[key], store_b[key])
        assert layer_a.opt_state.keys() == layer_b.opt_state.keys()
        for name, state in layer_a.opt_state.items():
            assert state.keys() == layer_b.opt_state[name].keys()
            for key, value in state.items():
                if isinstance(value, np.ndarray):
                    assert value.dtype == layer_b.opt_state[name][key].dtype
                np.testing.assert_array_equal(value, layer_b.opt_state[name][key])
    if a.optimizer is not None:
        assert a.optimizer.iterations == b.optimizer.iterations
        assert repr(a.optimizer) == repr(b.optimizer)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    assert a.epochs_trained == b.epochs_trained and a.dtype == b.dtype


@functools.lru_cache(maxsize=None)
def trained_file_bytes() -> bytes:
    """A small trained model file, shared by the byte-mutation tests."""
    x, y = blobs(40)
    model = mlp(seed=5)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    return serialization.model_bytes(model)


def reference_model():
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.sn"
        path.write_bytes(trained_file_bytes())
        return sn.load(path)


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


# ------------------------------------------------------------------ malicious payloads
class Evil:
    """Pickles as a call chosen by the test: (function, args)."""

    def __init__(self, function, args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def payloads(marker: Path):
    command = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": Evil(os.system, (command,)),
        "subprocess.call": Evil(subprocess.call, (["touch", str(marker)],)),
        "subprocess.Popen": Evil(subprocess.Popen, (["touch", str(marker)],)),
        "subprocess.check_output": Evil(subprocess.check_output, (["touch", str(marker)],)),
        "builtins.eval": Evil(eval, (code,)),
        "builtins.exec": Evil(exec, (code,)),
        "io.open": Evil(open, (str(marker), "w")),
    }


def wait_for_child_processes():
    # subprocess.Popen payloads run asynchronously in the control run: let them finish.
    import time
    time.sleep(0.2)


@pytest.mark.skipif(os.name != "posix", reason="payloads use the touch command")
@pytest.mark.parametrize("name", list(payloads(Path("x"))))
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, name):
    marker = tmp_path / "pwned"
    evil_bytes = pickle.dumps(payloads(marker)[name], protocol=5)
    # Control: the payload is live.
    result = pickle.loads(evil_bytes)
    if isinstance(result, subprocess.Popen):
        result.wait()
    if hasattr(result, "close"):
        result.close()
    assert marker.exists(), "the test payload itself does not work"
    marker.unlink()

    path = tmp_path / "evil.sn"
    path.write_bytes(frame_payload(evil_bytes, sn.__version__))  # valid header and checksum
    with pytest.raises(UnsafeModelError) as error:
        sn.load(path)
    assert isinstance(error.value, pickle.UnpicklingError)
    function = payloads(marker)[name].function
    assert f"{function.__module__}.{function.__qualname__}" in str(error.value)
    assert "trusted=True" in str(error.value)
    wait_for_child_processes()
    assert not marker.exists()


@pytest.mark.skipif(os.name != "posix", reason="payloads use the touch command")
@pytest.mark.parametrize("where", ["layer attribute", "optimizer state", "epoch counter"])
def test_payload_nested_inside_a_valid_model_is_refused(tmp_path, where):
    marker = tmp_path / "pwned"
    x, y = blobs()
    model = mlp(seed=1)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    evil = Evil(os.system, (f"touch {marker}",))
    if where == "layer attribute":
        model.layers[1].note = evil
    elif where == "optimizer state":
        model.layers[0].opt_state["W"]["extra"] = [1, {"deep": evil}]
    else:
        model.epochs_trained = [0, (evil,)]
    model.save(tmp_path / "evil.sn")  # saving is harmless: pickle only records the call
    assert not marker.exists()
    with pytest.raises(UnsafeModelError, match="posix.system|nt.system"):
        sn.load(tmp_path / "evil.sn")
    assert not marker.exists()
    try:  # control: the plain loader (trusted=True) does run it
        sn.load(tmp_path / "evil.sn", trusted=True)
    except SerializationError:
        pass
    assert marker.exists()


FORBIDDEN_GLOBALS = [
    ("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"), ("builtins", "setattr"),
    ("builtins", "__import__"), ("builtins", "open"), ("builtins", "compile"), ("builtins", "globals"),
    ("builtins", "type"), ("builtins", "breakpoint"), ("builtins", "input"), ("builtins", "vars"),
    ("os", "system"), ("os", "popen"), ("os", "remove"), ("posix", "system"), ("nt", "system"),
    ("subprocess", "Popen"), ("subprocess", "call"), ("subprocess", "run"), ("subprocess", "check_output"),
    ("importlib", "import_module"), ("pickle", "loads"), ("marshal", "loads"), ("shutil", "rmtree"),
    ("copyreg", "_reconstructor"),  # protocol 0/1 only; it would call base.__init__ with file data
    ("numpy", "load"), ("numpy", "save"), ("numpy", "fromfile"), ("numpy", "frompyfunc"),
    ("numpy", "testing"), ("numpy.testing", "assert_equal"), ("numpy.lib.npyio", "load"),
    ("numpy.random._pickle", "__generator_ctor"), ("numpy.core.multiarray", "array"),
    ("numpy._core.multiarray", "_reconstruct.__globals__"),
    # scratchnet modules: imported modules, imported classes, functions, module objects, dotted paths
    ("scratchnet.cli", "sys"), ("scratchnet.cli", "argparse"), ("scratchnet.cli", "main"),
    ("scratchnet.serialization", "os"), ("scratchnet.serialization", "pickle"),
    ("scratchnet.serialization", "RestrictedUnpickler"), ("scratchnet.serialization", "atomic_write"),
    ("scratchnet.model", "np"), ("scratchnet.model", "math"), ("scratchnet.optimizers", "get_optimizer"),
    ("scratchnet.optimizers", "OPTIMIZERS"), ("scratchnet", "load"), ("scratchnet", "Sequential"),
    ("scratchnet", "SerializationError"), ("scratchnet.layers", "Dense"),
    ("scratchnet.model", "Sequential.__init__"), ("scratchnet.model", "Sequential.__setstate__"),
    ("scratchnet.__main__", "main"), ("scratchnet.datasets.mnist", "Path"),
    ("scratchnet.datasets.mnist", "urllib"), ("scratchnet.datasets.mnist", "os"),
    ("scratchnet.nonexistent_module", "Thing"),
]


@pytest.mark.parametrize("module, name", FORBIDDEN_GLOBALS)
def test_forbidden_globals_are_refused_by_name(module, name):
    imported_before = set(sys.modules)
    unpickler = RestrictedUnpickler(io.BytesIO(b""), 0)
    with pytest.raises(UnsafeModelError, match=f"global {module}.{name}".replace(".", r"\.")):
        unpickler.find_class(module, name)
    assert set(sys.modules) - imported_before == set()  # a file never makes Python import a module


def test_allowed_globals_resolve_on_both_numpy_spellings():
    rebuilders = serialization._numpy_rebuilders()
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        assert serialization.allowed_global(module, "_reconstruct") is rebuilders["_reconstruct"]
        assert serialization.allowed_global(module, "scalar") is rebuilders["scalar"]
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        assert serialization.allowed_global(module, "_frombuffer") is rebuilders["_frombuffer"]
    assert serialization.allowed_global("numpy", "dtype") is np.dtype
    assert serialization.allowed_global("builtins", "dict") is dict
    assert serialization.allowed_global("scratchnet.layers.dense", "Dense") is Dense
    assert serialization.allowed_global("scratchnet.model", "Sequential") is sn.Sequential
    assert serialization.allowed_global("scratchnet.schedules", "StepDecay") is StepDecay


@pytest.mark.parametrize("value", [np.float32(1.5), np.float64(-2.25), np.int64(7), np.bool_(True),
                                   np.arange(6, dtype=np.int32).reshape(2, 3),
                                   np.asfortranarray(np.ones((3, 2))), np.ones((4, 4))[::2, ::2],
                                   np.zeros(0, dtype=np.float32), np.dtype("float64"), 1 + 2j,
                                   {1, 2}, frozenset({3}), bytearray(b"ab")])
def test_numpy_values_and_builtins_pass_the_restricted_loader(value):
    # Protocol 5 arrays use _frombuffer; non-contiguous ones use _reconstruct; scalars use scalar.
    data = pickle.dumps({"value": value}, protocol=5)
    loaded = RestrictedUnpickler(io.BytesIO(data), len(data)).load()["value"]
    assert type(loaded) is type(value)
    np.testing.assert_array_equal(loaded, value)


def test_calling_an_allowed_scratchnet_class_is_refused(tmp_path, monkeypatch):
    # REDUCE on Dense would run Dense.__init__ with arguments from the file.
    calls = []
    original_init = Dense.__init__
    monkeypatch.setattr(Dense, "__init__",
                        lambda self, *args: calls.append(args) or original_init(self, *args))
    data = pickle.dumps(Evil(Dense, (3,)), protocol=5)
    assert isinstance(pickle.loads(data), Dense) and calls == [(3,)]  # control
    calls.clear()
    with pytest.raises(UnsafeModelError, match=r"call scratchnet\.layers\.dense\.Dense"):
        RestrictedUnpickler(io.BytesIO(data), len(data)).load()
    assert calls == []


def test_build_on_a_class_is_refused_and_the_class_is_unchanged(monkeypatch):
    # GLOBAL Dense; BUILD (None, {"forward": 1}) would setattr on the class itself.
    data = (b"\x80\x05cscratchnet.layers.dense\nDense\nN}\x8c\x07forwardK\x01s\x86b.")
    original_forward = Dense.forward
    monkeypatch.setattr(Dense, "forward", original_forward)  # restored after the control run
    pickle.loads(data)
    assert Dense.forward == 1  # control: the plain loader rewrites the class
    Dense.forward = original_forward
    with pytest.raises(UnsafeModelError, match="BUILD"):
        RestrictedUnpickler(io.BytesIO(data), len(data)).load()
    assert Dense.forward is original_forward


@pytest.mark.parametrize("data", [b"(K\x03iscratchnet.layers.dense\nDense\n.",          # INST: Dense(3)
                                  b"(cscratchnet.layers.dense\nDense\nK\x03o.",         # OBJ: Dense(3)
                                  b"\x80\x02\x82\x01."])                                  # EXT1
def test_protocol_0_1_calls_and_extension_registry_are_refused(data):
    with pytest.raises(UnsafeModelError):
        RestrictedUnpickler(io.BytesIO(data), len(data)).load()


def test_reconstruct_of_a_non_ndarray_type_is_refused():
    data = (b"\x80\x05cnumpy._core.multiarray\n_reconstruct\ncscratchnet.layers.dense\nDense\n"
            b"K\x00\x85C\x01b\x87R.")
    with pytest.raises(UnsafeModelError, match="other than numpy.ndarray"):
        RestrictedUnpickler(io.BytesIO(data), len(data)).load()


def test_forged_bytearray_length_is_refused_without_allocating():
    data = b"\x80\x05\x96" + (2**40).to_bytes(8, "little") + b"."
    with pytest.raises(pickle.UnpicklingError, match="BYTEARRAY8"):
        RestrictedUnpickler(io.BytesIO(data), len(data)).load()


class Scale(Layer):
    """A user-defined layer: not a scratchnet class, so only a trusted load accepts it."""

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x": x}
        return 2 * x

    def backward(self, dy):
        return 2 * self.check_output_grad(dy, self.cache["x"].shape)


def test_user_classes_need_trusted_true(tmp_path):
    model = sn.Sequential([Scale(), Dense(2)], input_shape=(3,), seed=0)
    model.save(tmp_path / "custom.sn")
    with pytest.raises(UnsafeModelError, match=f"{Scale.__module__}.Scale".replace(".", r"\.")):
        sn.load(tmp_path / "custom.sn")
    loaded = sn.load(tmp_path / "custom.sn", trusted=True)
    x = np.ones((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# ------------------------------------------------------------------ damaged files
def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        sn.load(tmp_path / "nope.sn")
    with pytest.raises(FileNotFoundError):
        mlp().build().load_weights(tmp_path / "nope.npz")


def header_with(**changes):
    data = trained_file_bytes()
    end = data.index(b"\n")
    header = json.loads(data[len(MAGIC) + 1:end])
    header.update(changes)
    return MAGIC + b" " + json.dumps(header).encode() + data[end:]


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"SCRATCH", "truncated"),
    (b"PK\x03\x04 something", "wrong magic.*load_weights"),
    (b"\x80\x05K\x01.", "wrong magic"),
    (b"SCRATCHNET {\"format\": 1", "truncated header"),
    (b"SCRATCHNET not json\n\x80\x05.", "corrupted header"),
    (b"SCRATCHNET [1, 2]\n", "corrupted header"),
    (b"SCRATCHNET" + b"[" * 5000, "corrupted header"),
    (b"SCRATCHNET " + b"[" * 3000 + b"\n", "corrupted header"),
    (header_with(format="1"), "corrupted header"),
    (header_with(payload_bytes=-1), "corrupted header"),
    (header_with(format=2), "format 2.*Upgrade scratchnet"),
    (trained_file_bytes()[:-1], "truncated: payload"),
    (trained_file_bytes()[:trained_file_bytes().index(b"\n") + 1], "truncated: payload"),
    (trained_file_bytes() + b"\x00", "extra bytes"),
    (header_with(sha256="0" * 64), "SHA-256"),
])
def test_damaged_files_raise_a_clear_serialization_error(tmp_path, content, message):
    path = tmp_path / "bad.sn"
    path.write_bytes(content)
    with pytest.raises(SerializationError, match=message):
        sn.load(path)


def test_a_flipped_bit_inside_array_data_is_detected(tmp_path):
    model = reference_model()
    data = bytearray(trained_file_bytes())
    weights = model.layers[0].params["W"].tobytes()
    start = bytes(data).index(weights)
    data[start + len(weights) // 2] ^= 0x01  # one bit of one float: still a perfectly valid pickle
    (tmp_path / "flipped.sn").write_bytes(bytes(data))
    with pytest.raises(SerializationError, match="SHA-256"):
        sn.load(tmp_path / "flipped.sn")


def test_a_pickle_that_is_not_a_model_is_refused(tmp_path):
    for obj in ([1, 2], Dense(3), {"layers": []}):
        path = tmp_path / "other.sn"
        path.write_bytes(frame_payload(pickle.dumps(obj, protocol=5)))
        with pytest.raises(SerializationError, match="not a Sequential"):
            sn.load(path)


def test_a_malformed_sequential_is_refused(tmp_path):
    model = reference_model()
    model.layers[0].params["W"] = model.layers[0].params["W"].astype(np.float64)  # not the layer dtype
    path = tmp_path / "odd.sn"
    path.write_bytes(frame_payload(pickle.dumps(model, protocol=5)))
    with pytest.raises(SerializationError, match="malformed"):
        sn.load(path)


@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
       keep=st.one_of(st.none(), st.integers(0, 10**6)))
def test_fuzzed_files_raise_only_documented_errors_and_never_load_wrong_weights(flips, keep):
    data = bytearray(trained_file_bytes())
    for position, mask in flips:
        data[position % len(data)] ^= mask
    if keep is not None:
        data = data[:keep % (len(data) + 1)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.sn"
        path.write_bytes(bytes(data))
        try:
            loaded = sn.load(path)
        except DOCUMENTED_ERRORS:
            return
    # Only a flip in an unchecked header field (e.g. the version string) can load at all.
    assert_same_state(reference_model(), loaded)


@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=3),
       keep=st.one_of(st.none(), st.integers(0, 10**6)))
def test_fuzzed_payloads_with_a_valid_checksum_raise_only_documented_errors(flips, keep):
    # The checksum is recomputed, so the damaged pickle itself reaches the restricted unpickler.
    data = trained_file_bytes()
    payload = bytearray(data[data.index(b"\n") + 1:])
    for position, mask in flips:
        payload[position % len(payload)] ^= mask
    if keep is not None:
        payload = payload[:keep % (len(payload) + 1)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.sn"
        path.write_bytes(frame_payload(bytes(payload)))
        try:
            loaded = sn.load(path)
        except (SerializationError, UnsafeModelError):
            return
    assert isinstance(loaded, sn.Sequential)


# ------------------------------------------------------------------ atomic save
class FailingFile:
    """Wraps the temporary file: writes ``budget`` bytes, then fails like a full disk."""

    def __init__(self, file, budget):
        self.file, self.budget = file, budget

    def write(self, data):
        if len(data) > self.budget:
            self.file.write(data[:self.budget])
            self.file.flush()
            raise OSError(28, "No space left on device")
        self.budget -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def inject(monkeypatch, where):
    if where == "pickle":
        def fail(*args, **kwargs):
            raise pickle.PicklingError("injected")
        monkeypatch.setattr(serialization._ModelPickler, "dump", fail)
        monkeypatch.setattr(serialization.np, "savez", fail)
    elif where == "write":
        real_fdopen = os.fdopen
        monkeypatch.setattr(serialization.os, "fdopen",
                            lambda *args, **kwargs: FailingFile(real_fdopen(*args, **kwargs), 100))
    elif where == "interrupt":
        real_fdopen = os.fdopen

        class Interrupted(FailingFile):
            def write(self, data):
                raise KeyboardInterrupt
        monkeypatch.setattr(serialization.os, "fdopen",
                            lambda *args, **kwargs: Interrupted(real_fdopen(*args, **kwargs), 0))
    elif where == "fsync":
        def fail(fd):
            raise OSError(5, "injected fsync failure")
        monkeypatch.setattr(serialization.os, "fsync", fail)
    elif where == "replace":
        def fail(src, dst):
            raise OSError(13, "injected replace failure")
        monkeypatch.setattr(serialization.os, "replace", fail)


@pytest.mark.parametrize("method", ["save", "save_weights"])
@pytest.mark.parametrize("where", ["pickle", "write", "interrupt", "fsync", "replace"])
def test_failed_save_leaves_previous_file_byte_identical_and_no_temp_file(tmp_path, monkeypatch, method,
                                                                          where):
    x, y = blobs()
    model = mlp(seed=1).build()
    target = tmp_path / "model.bin"
    getattr(model, method)(target)
    before = target.read_bytes()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # the next save would write different bytes
    with monkeypatch.context() as patch:
        inject(patch, where)
        with pytest.raises((OSError, SerializationError, pickle.PicklingError, KeyboardInterrupt)):
            getattr(model, method)(target)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]
    getattr(model, method)(target)  # and without the fault, the save goes through
    assert target.read_bytes() != before


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_failed_first_save_creates_no_file(tmp_path, monkeypatch, where):
    inject(monkeypatch, where)
    with pytest.raises(OSError):
        mlp().build().save(tmp_path / "new.sn")
    assert os.listdir(tmp_path) == []


def test_unpicklable_model_fails_before_touching_the_file(tmp_path):
    model = mlp().build()
    model.save(tmp_path / "m.sn")
    before = (tmp_path / "m.sn").read_bytes()
    model.layers[0].callback = lambda x: x
    with pytest.raises(SerializationError, match="cannot pickle"):
        model.save(tmp_path / "m.sn")
    assert (tmp_path / "m.sn").read_bytes() == before and os.listdir(tmp_path) == ["m.sn"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_file_gets_normal_permissions_and_keeps_existing_ones(tmp_path):
    old_umask = os.umask(0o022)
    try:
        model = mlp().build()
        model.save(tmp_path / "m.sn")
        assert (tmp_path / "m.sn").stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
        os.chmod(tmp_path / "m.sn", 0o640)
        model.save(tmp_path / "m.sn")
        assert (tmp_path / "m.sn").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old_umask)


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_saving_through_a_symlink_updates_the_linked_file(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "m.sn").write_bytes(b"old")
    (tmp_path / "link.sn").symlink_to(tmp_path / "real" / "m.sn")
    model = mlp().build()
    model.save(tmp_path / "link.sn")
    assert (tmp_path / "link.sn").is_symlink()
    assert sn.load(tmp_path / "real" / "m.sn").count_params() == model.count_params()


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


@pytest.mark.skipif(os.name != "posix", reason="payloads use the touch command")
def test_weights_file_with_a_pickled_object_array_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    model = mlp().build()
    weights = dict(model.get_weights())
    evil = np.empty(1, dtype=object)
    evil[0] = Evil(os.system, (f"touch {marker}",))
    weights["dense/b"] = evil
    np.savez(tmp_path / "evil.npz", **weights)
    with pytest.raises(SerializationError, match="not a readable weights file"):
        model.load_weights(tmp_path / "evil.npz")
    assert not marker.exists()
    with np.load(tmp_path / "evil.npz", allow_pickle=True) as archive:  # control: the payload is live
        archive["dense/b"]
    assert marker.exists()


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


class StudentScale(Layer):
    """A student's own layer: y = a * x with a learnable a per feature."""

    def init_params(self, input_shape, rng):
        return {"a": rng.normal(size=input_shape)}

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x": x}
        return self.params["a"] * x

    def backward(self, dy):
        self.grads["a"] = (dy * self.cache["x"]).sum(axis=0)
        return dy * self.params["a"]


def test_own_layer_classes_load_only_when_named(tmp_path):
    model = sn.Sequential([StudentScale(), Dense(2)], input_shape=(3,), seed=0).compile("adam", "mse")
    model.save(tmp_path / "homework.sn")
    with pytest.raises(sn.UnsafeModelError, match="StudentScale"):
        sn.load(tmp_path / "homework.sn")
    loaded = sn.load(tmp_path / "homework.sn", allowed_classes=[StudentScale])
    x = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(TypeError, match="Layer subclasses"):
        sn.load(tmp_path / "homework.sn", allowed_classes=[dict])


def test_schedules_saved_under_their_old_module_still_load():
    # Files written before the schedules moved to scratchnet.schedules name
    # scratchnet.optimizers.StepDecay; the loader maps the old name to the class's new home.
    from scratchnet.schedules import StepDecay

    data = pickle.dumps(StepDecay(0.1, factor=0.5, every=3), protocol=2)
    old_data = data.replace(b"scratchnet.schedules", b"scratchnet.optimizers")
    assert old_data != data
    schedule = RestrictedUnpickler(io.BytesIO(old_data), len(old_data)).load()
    assert type(schedule) is StepDecay and schedule(7) == 0.1 * 0.5 ** 2
