"""Seeds and the model's generator: what ``Sequential(seed=...)`` accepts and keeps, and
``model.rng = ...`` handing the new generator to every layer (dropout draws from the same one as
shuffling, and save/load resumes the same run)."""

from pathlib import Path

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.layers import Dense, Dropout, Residual
from scratchnet.layers.base import iter_layers

X = np.random.default_rng(1).normal(size=(24, 4))
Y = np.arange(24) % 3
GOLDEN_MODELS = sorted((Path(__file__).resolve().parent / "golden").glob("model_*.sn"))


def dropout_mlp(seed=0):
    """Dense, Dropout, a Residual holding a Dropout, Dense: float64, compiled with Adam."""
    layers = [Dense(8, activation="relu"), Dropout(0.5), Residual([Dense(8), Dropout(0.3)]), Dense(3)]
    model = sn.Sequential(layers, input_shape=(4,), seed=seed, dtype="float64")
    return model.compile("adam", "cross_entropy")


def same_weights(a, b) -> bool:
    wa, wb = a.get_weights(), b.get_weights()
    return wa.keys() == wb.keys() and all(np.array_equal(wa[key], wb[key]) for key in wa)


# ------------------------------------------------------------------ model.rng = ...
def test_assigning_model_rng_hands_the_generator_to_every_layer():
    model = dropout_mlp()
    model.rng = np.random.default_rng(5)
    assert all(leaf.rng is model.rng for leaf in iter_layers(model.layers))


def test_a_reseeded_model_resumes_the_same_run_after_save_and_load(tmp_path):
    """Before: dropout kept drawing from the old generator, shuffling from the new one; the file
    holds only the new one, so the loaded model trained differently (weights 0.025 apart)."""
    def run(save_between):
        model = dropout_mlp()
        model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
        model.rng = np.random.default_rng(5)
        if save_between:
            model.save(tmp_path / "reseeded.sn")
            model = sn.load(tmp_path / "reseeded.sn")
        model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
        return model

    in_memory, reloaded = run(False), run(True)
    assert same_weights(in_memory, reloaded)
    assert in_memory.rng.bit_generator.state == reloaded.rng.bit_generator.state


def test_model_rng_must_be_a_generator():
    model = dropout_mlp().build()
    with pytest.raises(TypeError, match=r"^sequential: rng must be a numpy.random.Generator "
                                        r"\(np.random.default_rng\(seed\)\), got 5$"):
        model.rng = 5
    assert all(leaf.rng is model.rng for leaf in iter_layers(model.layers))


@pytest.mark.parametrize("model_path", GOLDEN_MODELS, ids=[path.name for path in GOLDEN_MODELS])
def test_files_saved_before_rng_became_a_property_load_with_one_generator(model_path):
    model = sn.load(model_path)
    assert all(leaf.rng is model.rng for leaf in iter_layers(model.layers))
    model.rng = np.random.default_rng(3)
    assert all(leaf.rng is model.rng for leaf in iter_layers(model.layers))
    assert "rng" not in vars(model)  # the generator lives behind the property only


def test_a_pickled_model_keeps_its_generator_state_and_hands_it_to_its_layers():
    import pickle

    model = dropout_mlp()
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    copy = pickle.loads(pickle.dumps(model))
    assert copy.rng.bit_generator.state == model.rng.bit_generator.state
    assert copy.rng is not model.rng
    assert all(leaf.rng is copy.rng for leaf in iter_layers(copy.layers))


# ------------------------------------------------------------------ Sequential(seed=...)
@pytest.mark.parametrize("seed", [np.random.default_rng(0), True, False, [1, 2], 1.0, "1"],
                         ids=["Generator", "True", "False", "list", "float", "str"])
def test_a_seed_the_model_cannot_keep_is_refused(seed):
    with pytest.raises(TypeError, match=r"^sequential: seed must be an int >= 0 or None, got "):
        sn.Sequential([Dense(2)], seed=seed)


def test_a_spawned_seed_sequence_is_refused_a_plain_one_is_its_int():
    """SeedSequence(7) is default_rng(7)'s own seed: kept as 7. A spawned child is not its
    entropy alone (its spawn_key counts too): refused rather than stored as something else."""
    assert sn.Sequential([Dense(2)], seed=np.random.SeedSequence(7)).seed == 7
    child = np.random.SeedSequence(7).spawn(1)[0]
    with pytest.raises(TypeError, match=r"^sequential: seed must be an int >= 0 or None"):
        sn.Sequential([Dense(2)], seed=child)


@pytest.mark.parametrize("seed", [0, 7, np.int64(7), np.uint8(7), 2**70])
def test_an_int_seed_is_stored_as_a_python_int_and_seeds_as_default_rng(seed):
    model = sn.Sequential([Dense(3)], input_shape=(4,), seed=seed).build()
    assert type(model.seed) is int and model.seed == int(seed)
    expected, generator = Dense(3), np.random.default_rng(int(seed))
    expected.build((4,), rng=generator, dtype=np.float32)
    np.testing.assert_array_equal(model.get_weights()["dense/W"], expected.params["W"])
    assert model.rng.bit_generator.state == generator.bit_generator.state


def test_seed_none_stores_the_entropy_used_so_the_run_can_be_repeated(tmp_path):
    lucky = dropout_mlp(seed=None)
    assert type(lucky.seed) is int and lucky.seed > 2**64   # 128 bits from the OS
    again = dropout_mlp(seed=lucky.seed)
    assert same_weights(lucky, again)
    lucky.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    again.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    assert same_weights(lucky, again)
    assert dropout_mlp(seed=None).seed != lucky.seed


def test_the_seed_saves_and_loads(tmp_path):
    for seed in (None, np.int64(5)):
        model = dropout_mlp(seed=seed)
        model.save(tmp_path / "m.sn")
        loaded = sn.load(tmp_path / "m.sn")
        assert loaded.seed == model.seed and type(loaded.seed) is int
