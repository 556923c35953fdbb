"""Freezing (issue 11): frozen layers keep params and optimizer state bitwise through fit, still
pass the gradient on; model.freeze / unfreeze; a frozen container freezes everything inside it."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.layers import Activation, Conv2D, Dense, Flatten, GlobalAvgPool2D, Parallel, Residual
from scratchnet.layers.base import iter_layers


def make_model(seed=0, optimizer=None):
    model = sn.Sequential([
        Conv2D(3, 3, padding="same", name="stem"),
        Residual([Conv2D(3, 3, padding="same"), Activation("relu"), Conv2D(3, 3, padding="same")],
                 name="res"),
        Parallel([Conv2D(2, 1), [Conv2D(2, 3, padding="same"), Activation("tanh")]], name="mix"),
        GlobalAvgPool2D(), Dense(8, activation="relu", name="hidden"), Dense(3, name="out")],
        input_shape=(5, 5, 2), seed=seed).build()
    return model.compile(optimizer or sn.Adam(lr=0.01), "cross_entropy")


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5, 5, 2)).astype("float32"), rng.integers(0, 3, size=n)


def snapshot(model):
    """name -> (params, opt_state), deep copies."""
    return {leaf.name: (copy.deepcopy(leaf.params), copy.deepcopy(leaf.opt_state))
            for leaf in iter_layers(model.layers) if leaf.params}


def unchanged(before, leaf):
    params, state = before[leaf.name]
    return (all(np.array_equal(params[key], leaf.params[key]) for key in params)
            and state.keys() == leaf.opt_state.keys()
            and all(np.array_equal(state[key][part], leaf.opt_state[key][part])
                    for key in state for part in state[key]))


@pytest.mark.parametrize("optimizer", [lambda: sn.Adam(lr=0.01), lambda: sn.SGD(lr=0.1, momentum=0.9)])
def test_frozen_layers_are_bitwise_unchanged_and_the_rest_trains(optimizer):
    x, y = data()
    model = make_model(optimizer=optimizer())
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # every layer now has optimizer state
    model.get_layer("res").trainable = False            # a container in the MIDDLE of the model
    model.get_layer("out").trainable = False
    before = snapshot(model)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    frozen = {"conv2d", "conv2d_1", "out"}               # res's children and the last layer
    for leaf in iter_layers(model.layers):
        if leaf.params:
            assert unchanged(before, leaf) == (leaf.name in frozen), leaf.name
    # "stem" comes before the frozen block: it changed, so the gradient went through "res"
    assert not unchanged(before, model.get_layer("stem"))


def test_freeze_all_then_unfreeze():
    x, y = data()
    model = make_model()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert model.freeze() is model
    assert not any(leaf.trainable for leaf in iter_layers(model.layers))
    before = snapshot(model)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert all(unchanged(before, leaf) for leaf in iter_layers(model.layers) if leaf.params)
    model.unfreeze()
    assert all(leaf.trainable for leaf in iter_layers(model.layers))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not any(unchanged(before, leaf) for leaf in iter_layers(model.layers) if leaf.params)


@pytest.mark.parametrize("up_to", ["hidden", 4])
def test_freeze_up_to_excludes_the_named_layer(up_to):
    x, y = data()
    model = make_model()
    model.freeze(up_to=up_to)
    assert [layer.trainable for layer in model.layers] == [False, False, False, False, True, True]
    assert not model.get_layer("conv2d_3").trainable  # inside the Parallel, inside a Chain
    before = snapshot(model)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert [unchanged(before, leaf) for leaf in iter_layers(model.layers) if leaf.params] == \
        [True, True, True, True, True, False, False]  # stem, res x2, mix x2 | hidden, out
    assert model.get_layer("stem").opt_state == {}  # never touched by the optimizer


def test_freeze_errors():
    # an unknown name is a ValueError (the value of an argument, as an index out of range is),
    # not get_layer's KeyError (until the ninth session it was one; no doc named the type)
    model = make_model()
    with pytest.raises(ValueError, match="up_to=.*takes a top-level layer; no top-level layer named "
                                         "'conv2d'.*inside a container.*get_layer.name..trainable = False.*"
                                         "top-level layers are: stem, res, mix"):
        model.freeze(up_to="conv2d")
    with pytest.raises(ValueError, match="no top-level layer named 'nope'; the top-level layers are"):
        model.freeze(up_to="nope")
    for bad, error in ((7, ValueError), (-1, ValueError), (True, TypeError), (2.0, TypeError)):
        with pytest.raises(error, match=r"up_to must be a top-level layer name or an index in \[0, 6\]"):
            model.freeze(up_to=bad)
    assert all(leaf.trainable for leaf in iter_layers(model.layers))  # nothing frozen by a failed call


def test_container_trainable_propagates_and_children_can_be_unfrozen():
    block = Residual([Dense(2), Dense(2)], shortcut=Dense(2))
    block.trainable = False
    assert not block.trainable and not any(leaf.trainable for leaf in iter_layers(block.sublayers()))
    block.block.trainable = True  # a child unfrozen on its own
    assert [leaf.trainable for leaf in iter_layers([block])] == [False, True, True, True, False]
    block.trainable = True
    assert all(leaf.trainable for leaf in iter_layers([block]))
    frozen_child = Dense(2)
    frozen_child.trainable = False
    assert not Residual(frozen_child).block.trainable  # building a container keeps the child's flag


def test_summary_counts_frozen_params_as_non_trainable():
    model = make_model()
    model.freeze(up_to="hidden")
    text = model.summary_text()
    # frozen: stem 3*3*2*3+3 = 57, res 2 * (3*3*3*3+3) = 168, mix (3*2+2) + (3*3*3*2+2) = 64  -> 289
    # trainable: hidden (2+2)*8+8 = 40, out 8*3+3 = 27  -> 67
    assert "Total params: 356" in text and "Trainable params: 67" in text
    assert "Non-trainable params: 289" in text
    assert "res (Residual)  [frozen]" in text and "    conv2d (Conv2D)  [frozen]" in text
    assert "hidden (Dense) " in text and "hidden (Dense)  [frozen]" not in text


def test_frozen_flags_survive_save_and_load(tmp_path):
    model = make_model()
    model.freeze(up_to="mix")
    model.save(tmp_path / "m.sn")
    loaded = sn.load(tmp_path / "m.sn")
    assert [leaf.trainable for leaf in iter_layers(loaded.layers)] == \
        [leaf.trainable for leaf in iter_layers(model.layers)]
    assert not loaded.get_layer("res").trainable and not loaded.get_layer("conv2d_1").trainable
    loaded.unfreeze()  # the property setter still works on a loaded container
    assert loaded.get_layer("conv2d_1").trainable


def test_frozen_first_layer_still_lets_the_rest_train():
    x, y = data()
    model = sn.Sequential([Flatten(), Dense(4, name="a"), Dense(3, name="b")], input_shape=(5, 5, 2),
                          seed=0).build().compile("adam", "cross_entropy")
    model.get_layer("a").trainable = False
    before = snapshot(model)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert unchanged(before, model.get_layer("a")) and not unchanged(before, model.get_layer("b"))
