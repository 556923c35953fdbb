"""Unusual but legitimate arrays and labels at the public API: targets of shape (N, 1) (Dense(1) +
binary_cross_entropy), one-hot label rows, uint8 and standardised images, nested lists, a last
batch of one sample. Each test holds numbers worked by hand or an exact message."""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.layers import Dense


def binary_model(seed=0):
    """Dense(1) on 3 features, trained with binary_cross_entropy: one logit per sample."""
    model = sn.Sequential([Dense(1)], input_shape=(3,), seed=seed, dtype="float64")
    return model.compile(sn.SGD(lr=0.1), "binary_cross_entropy")


def same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


# ---------------------------------------------------------------- class_weight with (N, 1) targets
def test_class_weight_reads_targets_of_shape_n_by_1_as_labels():
    x = np.random.default_rng(0).normal(size=(8, 3))
    t = np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=np.float64)
    hand_worked = np.array([1, 10, 10, 1, 10, 1, 1, 10], dtype=np.float64)  # class 0 -> 1, class 1 -> 10
    by_class, by_sample = binary_model(), binary_model()
    options = dict(epochs=2, batch_size=4, shuffle=False, verbose=0)
    by_class.fit(x, t[:, None], class_weight={0: 1.0, 1: 10.0}, **options)
    by_sample.fit(x, t[:, None], sample_weight=hand_worked, **options)
    assert same_weights(by_class, by_sample)
    unweighted = binary_model()
    unweighted.fit(x, t[:, None], **options)
    assert not same_weights(by_class, unweighted)


def test_class_weight_refuses_multi_label_and_fractional_targets():
    x = np.random.default_rng(0).normal(size=(6, 3))
    multi_label = sn.Sequential([Dense(2)], input_shape=(3,), seed=0).compile("sgd", "binary_cross_entropy")
    with pytest.raises(ValueError, match=r"^sequential: fit's class_weight needs one class per sample, "
                                         r"labels \(N,\) or \(N, 1\), but the targets have shape \(6, 2\) "
                                         r"for loss 'binary_cross_entropy'; give the weight of each sample "
                                         r"as sample_weight \(N,\) instead$"):
        multi_label.fit(x, np.eye(2)[[0, 1, 1, 0, 1, 0]], verbose=0, class_weight={1: 2.0})
    with pytest.raises(ValueError, match=r"^sequential: fit's class_weight needs whole-number class labels, "
                                         r"but the targets hold values such as 0\.25"):
        binary_model().fit(x, [[0.0], [0.25], [1.0], [1.0], [0.0], [0.5]], verbose=0, class_weight={1: 2.0})
    one_hot = sn.Sequential([Dense(2)], input_shape=(3,), seed=0).compile("sgd", "cross_entropy")
    one_hot.fit(x, np.eye(2)[[0, 1, 1, 0, 1, 0]], verbose=0, class_weight={1: 2.0})  # rows: argmax, as before


# ---------------------------------------------------------------- one output: predict_classes / proba
def test_one_output_predicts_class_1_where_the_logit_is_positive():
    model = binary_model().build()
    model.layers[0].params["W"][...] = [[1.0], [0.0], [0.0]]  # the logit is the first feature
    model.layers[0].params["b"][...] = 0.0
    x = np.array([[-2.0, 5, 5], [0.0, 1, 1], [0.5, -3, 3], [3.0, 0, 0]])
    np.testing.assert_array_equal(model.predict_classes(x), [0, 0, 1, 1])  # z > 0 (z = 0: class 0)
    sigmoid = [1 / (1 + np.exp(2.0)), 0.5, 1 / (1 + np.exp(-0.5)), 1 / (1 + np.exp(-3.0))]
    np.testing.assert_allclose(model.predict_proba(x), np.array(sigmoid)[:, None], rtol=1e-15)
    np.testing.assert_array_equal(sn.metrics.predictions([[-1e-3], [2e-3]]), [0, 1])
    np.testing.assert_allclose(sn.metrics.probabilities([[-800.0], [800.0]]), [[0.0], [1.0]])  # no overflow


def test_several_outputs_still_take_softmax_and_argmax():
    logits = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, np.log(2)]])
    np.testing.assert_allclose(sn.metrics.probabilities(logits)[1], [0.25, 0.25, 0.5], rtol=1e-15)
    e = np.exp([1.0, 2.0, 0.0])
    np.testing.assert_allclose(sn.metrics.probabilities(logits)[0], e / e.sum(), rtol=1e-15)
    np.testing.assert_array_equal(sn.metrics.predictions(logits), [1, 2])
