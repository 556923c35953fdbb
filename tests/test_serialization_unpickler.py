"""Safe load (issue 4): the restricted unpickler, what it refuses and what it lets through.

Every malicious payload in this file is first shown to be live (plain ``pickle.loads`` runs it
and the marker file appears), so the "refused and nothing ran" assertions can fail.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from serialization_models import blobs, mlp

import scratchnet as sn
from scratchnet import serialization
from scratchnet.layers import Dense, Layer
from scratchnet.optimizers import StepDecay
from scratchnet.serialization import (
    RestrictedUnpickler,
    SerializationError,
    UnsafeModelError,
    frame_payload,
)


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
    with pytest.raises(SerializationError, match="posix.system|nt.system"):
        model.save(tmp_path / "evil.sn")  # save refuses what load refuses, and writes nothing
    assert not (tmp_path / "evil.sn").exists()
    # the file as an old scratchnet saved it (saving is harmless: pickle only records the call)
    serialization.save_model(model, tmp_path / "evil.sn", trusted=True)
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


# ------------------------------------------------------------------ weights files and own classes
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


def test_trusted_load_reads_the_other_numpys_spelling(tmp_path, monkeypatch):
    """NumPy 1 writes ``numpy.core.multiarray._reconstruct``, NumPy 2 ``numpy._core...``; NumPy 2
    keeps ``numpy.core`` only as a deprecated alias (to be removed), NumPy 1 has no ``numpy._core``.
    trusted=True maps both spellings as the safe loader does, so a file written under the other
    NumPy loads (and predicts the same) where its spelling does not import."""
    x, y = blobs()
    model = mlp(seed=1)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    payload = pickle.dumps(model, protocol=2)  # protocol 2: GLOBAL opcodes name "module\nname\n"
    written_by_numpy_2 = b"cnumpy._core." in payload
    ours, other = ("numpy._core", "numpy.core") if written_by_numpy_2 else ("numpy.core", "numpy._core")
    other_payload = payload.replace(b"c" + ours.encode() + b".", b"c" + other.encode() + b".")
    assert b"c" + other.encode() + b".multiarray\n_reconstruct\n" in other_payload
    path = tmp_path / "other_numpy.sn"
    path.write_bytes(frame_payload(other_payload))
    for gone in (other, other + ".multiarray"):  # the other NumPy's spelling does not import here
        monkeypatch.setitem(sys.modules, gone, None)
    with pytest.raises(ImportError):
        pickle.loads(other_payload)  # what load(trusted=True) used to do
    loaded = sn.load(path, trusted=True)  # (protocol 2 pickles bytes through _codecs.encode,
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))  # which the safe loader refuses)
