"""EarlyStopping's kept best weights belong to the model as it was when they were kept.

Found by a hypothesis state machine (ninth session):
* ``replace_head(model, Dense(3))`` then a fit with EarlyStopping(restore_best_weights=True):
  the fresh head has the removed head's name and shape, so the kept best weights still "fit"
  and the stop restored the REMOVED head's weights into the new one;
* ``model.freeze(up_to=2)`` then a fit with the same kind of EarlyStopping: the stop restored
  the best weights kept before freezing into the frozen layers (freeze promises they stay
  bitwise unchanged during fit).
Both now start fresh (best value, patience count and weights), as a callback watching another
value does: replace_head through ``Sequential.add``, which forgets every kept best weights; a
change of the trainable layers in EarlyStopping.on_train_begin (the set is recorded with them).
"""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import callbacks as CB
from scratchnet import layers as L
from scratchnet.interop.transfer import replace_head


def data(n=8, classes=2):
    x = np.random.default_rng(0).standard_normal((n, 6, 6, 1)).astype("float32")
    return x, np.arange(n) % classes


def stopper(patience):
    return CB.EarlyStopping(monitor="loss", patience=patience, restore_best_weights=True)


def test_a_replaced_head_is_never_given_the_removed_heads_best_weights():
    x, y = data(4, 3)
    model = sn.Sequential([L.Flatten(), L.Dense(3)], input_shape=(6, 6, 1), seed=0).compile("adam")
    model.fit(x, y, epochs=20, batch_size=1, verbose=0, callbacks=[stopper(0)])
    old_best = model.callback_state["early_stopping"]["best_weights"]["dense/W"].copy()
    removed = replace_head(model, L.Dense(3))
    assert removed.name == model.layers[-1].name == "dense"          # same name, same shape
    state = model.callback_state["early_stopping"]
    assert state == {"best": None, "monitor": "loss", "mode": "min"}  # started fresh
    model.compile(sn.Adam(1e-3))
    history = model.fit(x, y, epochs=3, batch_size=1, verbose=0, callbacks=[stopper(0)])
    head = model.get_layer("dense").params["W"]
    assert not np.array_equal(head, old_best)
    # the best kept is this fit's own: its first epoch's loss, not the removed head's best
    assert model.callback_state["early_stopping"]["best"] == min(history["loss"])


def test_add_forgets_best_weights_but_not_other_callback_state():
    model = sn.Sequential([L.Flatten(), L.Dense(3)], input_shape=(6, 6, 1), seed=0).compile("adam")
    model.callback_state = {
        "early_stopping": {"best": 0.5, "wait": 1, "best_epoch": 2, "best_weights": model.get_weights(),
                           "monitor": "loss", "mode": "min"},
        "other": {"best": 0.7, "monitor": "val_loss", "mode": "min"},   # no weights: kept as it is
    }
    model.add(L.Dense(2))
    assert model.callback_state == {"early_stopping": {"best": None, "monitor": "loss", "mode": "min"},
                                    "other": {"best": 0.7, "monitor": "val_loss", "mode": "min"}}


@pytest.mark.parametrize("reuse_the_callback", [False, True], ids=["new callback", "same callback"])
def test_freezing_between_fits_keeps_frozen_layers_bitwise_unchanged(reuse_the_callback):
    x, y = data()
    model = sn.Sequential([L.Flatten(), L.Dense(4), L.Dense(2)], input_shape=(6, 6, 1), seed=0)
    model.compile(sn.SGD(3.0))
    first = stopper(5)
    model.fit(x, y, epochs=3, batch_size=2, verbose=0, callbacks=[first])   # best at epoch 0, no stop
    assert model.callback_state["early_stopping"]["best_epoch"] == 0
    model.freeze(up_to=2)                                  # the body 'dense' frozen; 'dense_1' trains
    body = model.get_layer("dense").params["W"].copy()
    second = first if reuse_the_callback else stopper(5)
    history = model.fit(x, y, epochs=6, batch_size=2, verbose=0, callbacks=[second])
    assert np.array_equal(model.get_layer("dense").params["W"], body)
    state = model.callback_state["early_stopping"]
    assert state["best"] == min(history["loss"])            # this fit's own best, from scratch
    assert state["trainable"] == ["dense_1"]


def test_the_same_trainable_layers_continue_and_a_change_starts_fresh():
    # scripted (the weights set to the epoch number before each, as test_stateful's feed)
    model = sn.Sequential([L.Dense(3), L.Dense(2)], input_shape=(4,), seed=0).build()

    def feed(values):
        callback = stopper(1)
        callback.set_model(model)
        callback.on_train_begin({})
        for epoch, value in enumerate(values):
            model.set_weights({k: np.full_like(v, epoch) for k, v in model.get_weights().items()})
            model.stop_training = False
            callback.on_epoch_end(epoch, {"loss": value})
            if model.stop_training:
                return epoch
        return None

    assert feed([1.0]) is None
    assert model.callback_state["early_stopping"]["trainable"] == ["dense", "dense_1"]
    assert feed([2.0, 3.0]) == 1                      # continues: 2.0, 3.0 never beat the kept 1.0
    assert all(np.all(value == 0) for value in model.get_weights().values())   # epoch 0 of the first
    model.freeze(up_to=1)
    assert feed([2.0, 1.5, 1.6, 1.7]) == 3            # fresh: best 1.5 (epoch 1), not the old 1.0
    assert all(np.all(value == 1) for value in model.get_weights().values())
    assert model.callback_state["early_stopping"]["trainable"] == ["dense_1"]


def test_a_state_saved_before_the_trainable_layers_were_recorded_is_taken_as_it_is():
    model = sn.Sequential([L.Dense(3)], input_shape=(4,), seed=0).build()
    model.callback_state = {"early_stopping": {"best": 1.0, "wait": 0, "best_epoch": 0, "monitor": "loss",
                                               "mode": "min", "best_weights": model.get_weights()}}
    callback = stopper(0)
    callback.set_model(model)
    callback.on_train_begin({})
    assert model.callback_state["early_stopping"]["best"] == 1.0
