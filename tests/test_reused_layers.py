"""Layers built already (trained in one model) put into another model: their weights are kept.

Before, building the new model built every layer again and drew new random weights over the
trained ones, silently, in BOTH models (they hold the same layer objects). Now a built layer keeps
its weights (cast to the new model's dtype), as in Keras; one built for another input shape is an
error that names it, and ``model.build(input_shape, reset=True)`` still draws new weights on purpose.
"""

from __future__ import annotations

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, Residual


def trained_base(seed=0):
    rng = np.random.default_rng(seed)
    base = sn.Sequential([Conv2D(3, 3, padding="same"), BatchNorm(), Flatten(),
                          Dense(8, activation="relu"), Dense(4)], input_shape=(6, 6, 2), seed=seed,
                         dtype="float64").compile(optimizer="adam", loss="cross_entropy")
    x, labels = rng.standard_normal((16, 6, 6, 2)), rng.integers(0, 4, size=16)
    base.fit(x, labels, epochs=2, batch_size=8, verbose=0)
    return base, x


def snapshot(layers):
    return [{key: value.copy() for key, value in {**layer.params, **layer.buffers}.items()}
            for layer in layers]


def assert_same(before, layers):
    for saved, layer in zip(before, layers):
        for key, value in saved.items():
            np.testing.assert_array_equal({**layer.params, **layer.buffers}[key], value)


def test_trained_layers_in_a_new_model_keep_their_weights():
    base, x = trained_base()
    body = base.layers[:-1]
    before = snapshot(body)
    features = sn.Sequential(body, input_shape=(6, 6, 2), dtype="float64").predict(x)
    new = sn.Sequential(body + [Dense(5)], input_shape=(6, 6, 2), dtype="float64", seed=1).build()
    assert_same(before, body)  # building the new model drew nothing over them
    head = new.layers[-1]
    np.testing.assert_allclose(new.predict(x), features @ head.params["W"] + head.params["b"],
                               rtol=0, atol=1e-12)


def test_adding_a_built_layer_to_a_built_model_keeps_its_weights():
    base, _ = trained_base()
    dense = base.layers[3]  # Dense(8) built for the 108 flattened features
    before = snapshot([dense])
    model = sn.Sequential([Conv2D(3, 3, padding="same"), Flatten()], input_shape=(6, 6, 2),
                          dtype="float64").build()
    model.add(dense)
    assert_same(before, [dense])
    assert model.output_shape == (8,)


def test_a_float32_layer_in_a_float64_model_is_refused_until_cast_on_purpose():
    layer = Dense(3)
    layer.build((4,), rng=np.random.default_rng(0), dtype="float32")
    weights = layer.params["W"].copy()
    with pytest.raises(ValueError, match=r"sequential: layer 'dense' \(Dense\) is built already, in float32, "
                                         r"but the model computes in float64; give the model "
                                         r"dtype='float32', or call layer.astype\('float64'\) first"):
        sn.Sequential([layer], input_shape=(4,), dtype="float64").build()
    assert layer.params["W"].dtype == np.float32  # unchanged: another model may hold it
    sn.Sequential([layer.astype("float64")], input_shape=(4,), dtype="float64").build()
    np.testing.assert_array_equal(layer.params["W"], weights.astype(np.float64))


def test_a_failed_build_leaves_no_layer_built_so_the_corrected_build_works():
    model = sn.Sequential([Conv2D(4, 3, padding="same"), MaxPool2D(2), Flatten(), Dense(3)],
                          input_shape=(1, 6, 6))
    with pytest.raises(ValueError):
        model.build()  # channels first by mistake: the Conv2D builds, the 2x2 pool on 1 row fails
    assert model.layers[0].built is False
    model.build((6, 6, 1))  # the student's fix: without the rollback "conv2d is built already"
    assert model.output_shape == (3,) and model.layers[0].input_shape == (6, 6, 1)
    trained, _ = trained_base()
    kept = trained.layers[0]
    weights = kept.params["W"].copy()
    model = sn.Sequential([kept, Conv2D(2, 9)], input_shape=(6, 6, 2), dtype="float64")
    with pytest.raises(ValueError):
        model.build()  # a 9x9 kernel does not fit 6x6: fails after the kept layer
    assert kept.built  # built before this call (trained): it stays built, its weights untouched
    np.testing.assert_array_equal(kept.params["W"], weights)


def test_add_refuses_a_layer_built_for_another_shape_and_leaves_its_name():
    base, _ = trained_base()
    dense = base.layers[3]  # built for 108 features
    model = sn.Sequential([Dense(5)], input_shape=(7,), dtype="float64").build()
    model.layers[0].name = "dense"
    with pytest.raises(ValueError, match=r"is built already, for input shape \(108,\), but here it gets "
                                         r"\(5,\); .*: use a new layer$"):
        model.add(dense)
    assert dense.name == "dense" and len(model.layers) == 1


def test_a_built_layer_for_another_input_shape_is_refused_and_keeps_its_weights():
    base, _ = trained_base()
    block = Residual([Conv2D(2, 3, padding="same"), BatchNorm()])
    block.build((6, 6, 2), rng=np.random.default_rng(0), dtype="float64")
    before = snapshot([block.block.layers[0]])
    with pytest.raises(ValueError, match=r"sequential: layer 'residual' \(Residual\) is built already, "
                                         r"for input shape \(6, 6, 2\), but here it gets \(8, 8, 2\); .*"
                                         r"model\.build\(input_shape, reset=True\)"):
        sn.Sequential([block], input_shape=(8, 8, 2), dtype="float64").build()
    assert_same(before, [block.block.layers[0]])
    dense = base.layers[3]
    with pytest.raises(ValueError, match=r"layer 'dense' \(Dense\) is built already, for input shape "
                                         r"\(108,\), but here it gets \(72,\)"):
        sn.Sequential([Flatten(), dense], input_shape=(6, 6, 2), dtype="float64").build()


def test_reset_draws_new_weights_on_purpose():
    base, _ = trained_base()
    first_weights = base.layers[0].params["W"].copy()
    base.build((6, 6, 2), reset=True)
    assert not np.array_equal(base.layers[0].params["W"], first_weights)
