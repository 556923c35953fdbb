"""Models, data and the state comparison shared by the three test_serialization*.py files.

A small tanh MLP on Gaussian blobs (fast to train, three classes), and ``assert_same_state``:
weights, buffers, optimizer moments, step counts and the shuffling generator, bitwise.
"""

from __future__ import annotations

import numpy as np

import scratchnet as sn
from scratchnet.layers import Dense


def blobs(n=90, features=6, classes=3, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = rng.normal(size=(n, features)) + 2.0 * np.eye(classes, features)[y]
    return x.astype(dtype), y


def mlp(seed=0, dtype="float32", optimizer="adam", features=6):
    model = sn.Sequential([Dense(8, activation="tanh"), Dense(3)], input_shape=(features,),
                          seed=seed, dtype=dtype)
    return model.compile(optimizer, "cross_entropy")


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
