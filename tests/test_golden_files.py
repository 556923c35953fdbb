"""Models saved by EARLIER versions of scratchnet still load, predict and resume training.

Every ``tests/golden/model_*.sn`` was written by ``tests/golden/make_golden.py`` at the commit
its name gives, beside ``weights_*.npz``, ``weights_torch_*.npz`` and ``expected_*.npz`` (what a
loaded copy must reproduce). The files are never regenerated or deleted: a test failing here
means today's code breaks a user's old file. Fix the code, or add a migration (README.md,
"Saving and loading": a class-level default, a ``__setstate__``, ``_MOVED_CLASSES``); never
replace the file.

Exact or close, and why:
* What the file HOLDS comes back bitwise: parameters, buffers, optimizer moments and step
  counts, epochs_trained, the recorded input range, callback state, the generator's state.
* What the loaded model COMPUTES (predictions, the loss and the parameters after one more
  step) is compared within a tight tolerance: float64 rtol 1e-12, float32 rtol 1e-5. The code
  path is deterministic, and on the machine and versions that wrote a file the numbers are
  bitwise equal (checked when the files were made); but OpenBLAS picks its matrix kernels, and so
  the order of the sums, by CPU and version, and NumPy's SIMD exp/tanh may round the last bit
  differently in another release, so a later run elsewhere may differ by a few ulps. Measured
  on the first files with other OpenBLAS kernels (OPENBLAS_CORETYPE=Prescott, SandyBridge,
  SkylakeX, Nehalem, Atom): float64 up to 6e-15 relative (0.1% of the tolerance), float32 up to
  3e-5 relative on small values (10% of rtol + atol). A renamed attribute, a changed default or a
  dropped term moves the numbers far beyond these bounds (gelu's backward without its x*pdf
  term: 4% after one step).
* Within this process (reloading, load_weights into a fresh model) everything is bitwise.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import layers as layers_module
from scratchnet.layers.base import iter_layers
from scratchnet.layers.containers import layer_config, layer_from_config

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
MODEL_FILES = sorted(GOLDEN_DIR.glob("model_*.sn"))
TOLERANCE = {"float64": {"rtol": 1e-12, "atol": 1e-13}, "float32": {"rtol": 1e-5, "atol": 1e-6}}
HOW_TO_ADD = ("commit your change, run `python3 tests/golden/make_golden.py` and commit the new "
              "files in tests/golden/; never regenerate, edit or delete the old ones")

golden = pytest.mark.parametrize("model_path", MODEL_FILES, ids=[path.name for path in MODEL_FILES])


# ------------------------------------------------------------------ helpers
def companion(model_path: Path, kind: str) -> Path:
    """The file of ``kind`` ("expected", "weights", "weights_torch") written with ``model_path``."""
    tag = model_path.name[len("model_"):-len(".sn")]
    return model_path.with_name(f"{kind}_{tag}.npz")


def read_expected(model_path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) from expected_<tag>.npz, read without pickle."""
    with np.load(companion(model_path, "expected"), allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    return json.loads(str(arrays.pop("meta_json"))), arrays


def read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def assert_close(actual, expected, dtype: str, what: str) -> None:
    np.testing.assert_allclose(actual, expected, **TOLERANCE[dtype], err_msg=what)


def assert_same_arrays(actual: dict, expected: dict, what: str) -> None:
    assert sorted(actual) == sorted(expected), what
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, f"{what}: {key}"
        np.testing.assert_array_equal(actual[key], value, err_msg=f"{what}: {key}")


def optimizer_arrays(model) -> dict[str, np.ndarray]:
    """{"opt/<layer>/<param>/<key>": array}, as make_golden.optimizer_state writes them."""
    return {f"opt/{layer.name}/{param}/{key}": value
            for layer in iter_layers(model.layers)
            for param, state in layer.opt_state.items()
            for key, value in state.items() if isinstance(value, np.ndarray)}


def optimizer_counts(model) -> dict[str, int]:
    return {f"{layer.name}/{param}/{key}": value
            for layer in iter_layers(model.layers)
            for param, state in layer.opt_state.items()
            for key, value in state.items() if not isinstance(value, np.ndarray)}


def fresh_model_like(model) -> sn.Sequential:
    """The same architecture, newly built (new random weights), from the layers' configs."""
    layers = [layer_from_config(layer_config(layer), "golden test") for layer in model.layers]
    return sn.Sequential(layers, input_shape=model.input_shape, seed=0, dtype=str(model.dtype)).build()


def loaded(model_path: Path) -> sn.Sequential:
    return sn.load(model_path)  # the safe loader: trusted=False


# ------------------------------------------------------------------ the tests
def test_the_golden_files_are_there():
    assert MODEL_FILES, f"no model_*.sn in {GOLDEN_DIR}: {HOW_TO_ADD}"
    for model_path in MODEL_FILES:
        for kind in ("expected", "weights", "weights_torch"):
            assert companion(model_path, kind).exists(), f"{model_path.name} has no {kind} file"


@golden
def test_loading_gives_back_everything_the_file_holds_bitwise(model_path):
    meta, expected = read_expected(model_path)
    model = loaded(model_path)
    assert model.dtype == np.dtype(meta["dtype"])
    assert sorted({type(layer).__name__ for layer in iter_layers(model.layers)}) == meta["layer_classes"]
    assert [layer.name for layer in iter_layers(model.layers) if not layer.trainable] == meta["frozen_layers"]
    assert_same_arrays(model.get_weights(), read_npz(companion(model_path, "weights")), "weights")
    opt_expected = {key: value for key, value in expected.items() if key.startswith("opt/")}
    assert_same_arrays(optimizer_arrays(model), opt_expected, "optimizer state")
    assert optimizer_counts(model) == meta["opt_counts"]
    assert model.optimizer.iterations == meta["iterations"]
    assert model.epochs_trained == meta["epochs_trained"]
    assert model.input_range == tuple(meta["input_range"])
    assert model.callback_state == meta["callback_state"]
    assert model.rng.bit_generator.state == meta["rng_state"]
    for layer in iter_layers(model.layers):  # gradients rebuilt as zeros, no caches
        assert layer.cache == {} and all(not grad.any() for grad in layer.grads.values())


@golden
@pytest.mark.parametrize("trusted", [False, True], ids=["safe_loader", "plain_pickle"])
def test_predictions_are_the_stored_ones(model_path, trusted):
    meta, expected = read_expected(model_path)
    predictions = sn.load(model_path, trusted=trusted).predict(expected["x_predict"])
    assert predictions.dtype == np.dtype(meta["dtype"])
    assert_close(predictions, expected["predictions"], meta["dtype"], "predictions")


@golden
def test_one_more_train_step_gives_the_stored_loss_and_parameters(model_path):
    meta, expected = read_expected(model_path)
    model = loaded(model_path)
    model.predict(expected["x_predict"])  # as make_golden did: inference changes no state
    loss, _ = model.train_step(expected["x_step"], expected["y_step"])
    assert_close(loss, expected["loss_after_step"], meta["dtype"], "loss")
    after = model.get_weights()
    stored_after = {key[len("after/"):]: value for key, value in expected.items() if key.startswith("after/")}
    assert sorted(after) == sorted(stored_after)
    for key, value in stored_after.items():
        assert_close(after[key], value, meta["dtype"], f"{key} after one more step")
    assert model.optimizer.iterations == meta["iterations"] + 1
    saved = read_npz(companion(model_path, "weights"))
    for name in meta["frozen_layers"]:  # frozen: not one bit changes
        for key in model.get_layer(name).params:
            np.testing.assert_array_equal(after[f"{name}/{key}"], saved[f"{name}/{key}"])


@golden
@pytest.mark.parametrize("kind", ["weights", "weights_torch"])
def test_weights_files_load_into_a_fresh_model_of_the_same_architecture(model_path, kind):
    meta, expected = read_expected(model_path)
    model = loaded(model_path)
    fresh = fresh_model_like(model)
    fresh.load_weights(companion(model_path, kind))
    assert_same_arrays(fresh.get_weights(), model.get_weights(), f"{kind} file")
    predictions = fresh.predict(expected["x_predict"])
    np.testing.assert_array_equal(predictions, model.predict(expected["x_predict"]))
    assert_close(predictions, expected["predictions"], meta["dtype"], "predictions")


@golden
def test_the_loaded_model_saves_and_pickles_again(model_path, tmp_path):
    _, expected = read_expected(model_path)
    model = loaded(model_path)
    model.save(tmp_path / "again.sn")
    copies = [sn.load(tmp_path / "again.sn"), pickle.loads(pickle.dumps(model))]
    for copy in copies:
        assert_same_arrays(copy.get_weights(), model.get_weights(), "weights")
        assert_same_arrays(optimizer_arrays(copy), optimizer_arrays(model), "optimizer state")
        assert copy.rng.bit_generator.state == model.rng.bit_generator.state
    predictions = model.predict(expected["x_predict"])
    steps = [model.train_step(expected["x_step"], expected["y_step"])[0]]
    for copy in copies:  # the copies resume bitwise as the loaded model did
        np.testing.assert_array_equal(copy.predict(expected["x_predict"]), predictions)
        steps.append(copy.train_step(expected["x_step"], expected["y_step"])[0])
        assert_same_arrays(copy.get_weights(), model.get_weights(), "weights after a step")
    assert steps[1] == steps[0] and steps[2] == steps[0]


def test_every_public_layer_class_is_in_a_golden_file():
    in_files = set()
    for model_path in MODEL_FILES:
        in_files |= {type(layer).__name__ for layer in iter_layers(loaded(model_path).layers)}
    public = set(layers_module.__all__) - {"Layer"}  # Layer: the base class every one of them is
    missing = sorted(public - in_files)
    assert not missing, (f"no golden file holds these public layer classes: {', '.join(missing)}. "
                         f"Add them to build_model in tests/golden/make_golden.py, then {HOW_TO_ADD}")


def test_make_golden_still_writes_files_that_pass_these_tests(tmp_path):
    """The script must still run when a new layer needs a new golden file (float64 only: fast)."""
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN_DIR / "make_golden.py")
    make_golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_golden)
    paths = make_golden.golden_paths(tmp_path, "vtest_float64")
    make_golden.write_golden(paths, "test", "float64")
    assert paths["model"].name == "model_vtest_float64.sn" and all(path.exists() for path in paths.values())
    test_loading_gives_back_everything_the_file_holds_bitwise(paths["model"])
    test_predictions_are_the_stored_ones(paths["model"], trusted=False)
    test_one_more_train_step_gives_the_stored_loss_and_parameters(paths["model"])
    meta, _ = read_expected(paths["model"])
    assert set(meta["layer_classes"]) == set(layers_module.__all__) - {"Layer"}, \
        "make_golden.build_model does not hold every public layer class: add the new one"
