"""Losses from logits: hand-worked values, gradients, stability, label errors, PyTorch."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet import Sequential
from scratchnet.gradcheck import check_loss
from scratchnet.layers import Dense
from scratchnet.losses import (
    BinaryCrossEntropy,
    CrossEntropy,
    Loss,
    MeanSquaredError,
    check_takes_weights,
    get_loss,
)
from scratchnet.optimizers import SGD


def test_cross_entropy_hand_worked():
    # softmax([1, 2, 3])[2] = e^3 / (e + e^2 + e^3);  L = -log of that = log(1 + e^-1 + e^-2)
    loss = CrossEntropy().forward(np.array([[1.0, 2.0, 3.0]]), np.array([2]))
    assert loss == pytest.approx(math.log(1 + math.exp(-1) + math.exp(-2)), rel=1e-15)
    # dL/dz = softmax(z) - onehot
    expected = np.array([math.exp(1), math.exp(2), math.exp(3)]) / (math.exp(1) + math.exp(2) + math.exp(3))
    expected[2] -= 1
    np.testing.assert_allclose(CrossEntropy_backward([[1.0, 2.0, 3.0]], [2]), [expected], rtol=1e-14)


def CrossEntropy_backward(logits, labels):
    loss = CrossEntropy()
    loss.forward(np.array(logits), np.array(labels))
    return loss.backward()


def test_cross_entropy_one_hot_equals_integer_labels(rng):
    logits = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, size=6)
    one_hot = np.eye(4)[labels]
    a, b = CrossEntropy(), CrossEntropy()
    assert a.forward(logits, labels) == pytest.approx(b.forward(logits, one_hot), rel=1e-15)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-15)


def test_mse_and_bce_hand_worked():
    # mean of (0.5-1)^2, (2-0)^2 = (0.25 + 4) / 2
    assert MeanSquaredError().forward(np.array([[0.5, 2.0]]), np.array([[1.0, 0.0]])) == 2.125
    # BCE(z=0, t=1) = log 2; BCE(z=2, t=0) = log(1 + e^2)
    value = BinaryCrossEntropy().forward(np.array([[0.0, 2.0]]), np.array([[1.0, 0.0]]))
    assert value == pytest.approx((math.log(2) + math.log(1 + math.exp(2))) / 2, rel=1e-15)


@pytest.mark.parametrize("magnitude", [1e2, 1e4, 1e8])
def test_losses_are_stable_for_huge_logits(magnitude):
    logits = np.array([[magnitude, -magnitude, 0.0]])
    ce = CrossEntropy()
    assert ce.forward(logits, np.array([0])) == 0.0
    assert ce.forward(logits, np.array([1])) == pytest.approx(2 * magnitude, rel=1e-12)
    assert np.all(np.isfinite(ce.backward()))
    bce = BinaryCrossEntropy()
    value = bce.forward(logits, np.array([[1.0, 1.0, 1.0]]))
    assert value == pytest.approx((0 + magnitude + math.log(2)) / 3, rel=1e-12)
    assert np.all(np.isfinite(bce.backward()))
    # float32 logits too
    assert np.isfinite(CrossEntropy().forward(logits.astype("float32"), np.array([1])))


@given(batch=st.integers(1, 5), classes=st.integers(2, 6), seed=st.integers(0, 999),
       one_hot=st.booleans())
def test_cross_entropy_gradient(batch, classes, seed, one_hot):
    rng = np.random.default_rng(seed)
    # Logits within [-3, 3]: every probability is >= e^-6 / classes, so every gradient entry is
    # >= ~4e-4. A saturated softmax (a gap of ~14, p ~ 1e-6) has gradients below what central
    # differences resolve on a loss computed from logits of size ~6 (found by hypothesis:
    # [[6.12, -7.67]] gave a relative error of 8e-5 with a correct backward).
    logits = np.clip(rng.normal(scale=2, size=(batch, classes)), -3, 3)
    labels = rng.integers(0, classes, size=batch)
    targets = np.eye(classes)[labels] if one_hot else labels
    assert check_loss(CrossEntropy(), logits, targets).passed


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), seed=st.integers(0, 999))
def test_mse_and_bce_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2, size=shape)
    assert check_loss(MeanSquaredError(), logits, rng.normal(size=shape)).passed
    assert check_loss(BinaryCrossEntropy(), logits, rng.uniform(size=shape)).passed


def test_label_errors_name_the_loss():
    with pytest.raises(ValueError, match=r"cross_entropy: labels must be in \[0, 2\]"):
        CrossEntropy().forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="cross_entropy: expected 2 labels, got 3"):
        CrossEntropy().forward(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="mse: expected targets of shape"):
        MeanSquaredError().forward(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        get_loss("hinge")


def test_label_rows_not_summing_to_one_warn_once_at_the_training_step():
    """The warning names the worst row, comes once per loss object, and points at the caller of
    the loss (Sequential.train_step), not inside losses.py."""
    import warnings

    import scratchnet as sn
    from scratchnet.layers import Dense, Flatten

    loss = CrossEntropy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss.forward(np.zeros((3, 2)), np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 3.0]]))
        loss.forward(np.zeros((3, 2)), np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 3.0]]))
        CrossEntropy().forward(np.zeros((2, 2)), np.array([[0.25, 0.75], [1.0, 0.0]]))  # fine
    assert [str(w.message) for w in caught] == [
        "cross_entropy: label rows should be probabilities summing to 1, but row 2 sums to 3; the loss is "
        "then not a cross-entropy (pass integer labels (N,), or one-hot / soft-label rows)"]
    model = sn.Sequential([Flatten(), Dense(2)], input_shape=(2, 2, 1), seed=0)
    model.compile("sgd", "cross_entropy")
    x = np.zeros((4, 2, 2, 1), dtype=np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # rows [3, 1]: [2, 2] would give softmax(0) * 4 - t = 0, a zero gradient (health warns)
        model.train_step(x, np.tile([3.0, 1.0], (4, 1)))
        model.train_step(x, np.tile([3.0, 1.0], (4, 1)))
    (warning,) = caught
    assert warning.filename == __file__ and "row 0 sums to 4" in str(warning.message)  # the caller's line


def test_accuracy():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    assert CrossEntropy().accuracy(logits, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert BinaryCrossEntropy().accuracy(np.array([[1.0], [-1.0]]), np.array([1, 1])) == 0.5


@pytest.mark.torch
def test_losses_match_torch(rng):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    logits = rng.normal(scale=4, size=(5, 3))
    labels = rng.integers(0, 3, size=5)
    targets = rng.uniform(size=(5, 3))
    cases = [
        (CrossEntropy(), labels, lambda z: functional.cross_entropy(z, torch.tensor(labels))),
        (MeanSquaredError(), targets, lambda z: functional.mse_loss(z, torch.tensor(targets))),
        (BinaryCrossEntropy(), targets,
         lambda z: functional.binary_cross_entropy_with_logits(z, torch.tensor(targets))),
    ]
    for loss, y, torch_loss in cases:
        z = torch.tensor(logits, requires_grad=True)
        value = torch_loss(z)
        value.backward()
        assert loss.forward(logits, y) == pytest.approx(value.item(), rel=1e-13)
        np.testing.assert_allclose(loss.backward(), z.grad.numpy(), rtol=1e-12, atol=1e-15)


class SquaredErrorOfMyOwn(Loss):
    """A student's loss written to the base signature: mean_n w_n (z_n - t_n)^2, one output."""

    name = "my_squared_error"

    def forward(self, logits, y, weights=None):
        diff = logits - y
        w = self._sample_weights(weights, logits)  # (N, 1) or None
        w = 1.0 if w is None else w
        self.cache = {"diff": diff, "w": w}
        return float(np.mean(w * diff * diff))

    def backward(self):
        diff = self.cache["diff"]
        return 2 * self.cache["w"] * diff / diff.size


class SquaredErrorWithoutWeights(SquaredErrorOfMyOwn):
    """The same loss written before forward had ``weights``: (logits, y) only."""

    name = "unweighted_squared_error"

    def forward(self, logits, y):
        return super().forward(logits, y)


def one_output_model(loss):
    model = Sequential([Dense(1)], input_shape=(3,), dtype="float64", seed=0).build()
    return model.compile(optimizer=SGD(lr=0.1), loss=loss)


def test_a_loss_of_my_own_trains_with_sample_weight(rng):
    x, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 1))
    w = np.array([0.0, 1.0, 2.0, 0.5, 3.0])
    model = one_output_model(SquaredErrorOfMyOwn())
    dense = model.layers[0]
    W0, b0 = dense.params["W"].copy(), dense.params["b"].copy()
    model.fit(x, t, epochs=1, batch_size=5, shuffle=False, verbose=0, sample_weight=w)
    # by hand: z = x W0 + b0, dz_n = 2 w_n (z_n - t_n) / N, one SGD step on dW = x^T dz, db = sum_n dz_n
    dz = 2 * w[:, None] * (x @ W0 + b0 - t) / 5
    np.testing.assert_allclose(dense.params["W"], W0 - 0.1 * x.T @ dz, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dense.params["b"], b0 - 0.1 * dz.sum(axis=0), rtol=1e-13, atol=1e-15)
    check_takes_weights(model.loss)  # no error: its forward takes weights


def test_a_loss_without_weights_trains_and_refuses_sample_weight_by_name(rng):
    x, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 1))
    model = one_output_model(SquaredErrorWithoutWeights())
    W0 = model.layers[0].params["W"].copy()
    model.fit(x, t, epochs=1, batch_size=5, verbose=0)  # no weights: fit never passes weights=
    assert not np.allclose(model.layers[0].params["W"], W0)
    W_trained = model.layers[0].params["W"].copy()
    takes_no_weights = r"SquaredErrorWithoutWeights\.forward\(logits, y\) takes no weights"
    with pytest.raises(TypeError, match=takes_no_weights):  # before the first step, not inside it
        model.fit(x, t, epochs=1, batch_size=5, verbose=0, sample_weight=np.ones(5))
    with pytest.raises(TypeError, match=takes_no_weights):
        model.fit(x, t, epochs=1, batch_size=5, verbose=0, class_weight={0: 1.0})
    with pytest.raises(TypeError, match=takes_no_weights):
        model.evaluate(x, t, sample_weight=np.ones(5))
    np.testing.assert_array_equal(model.layers[0].params["W"], W_trained)  # refused: nothing trained
    with pytest.raises(TypeError, match=r"unweighted_squared_error: SquaredErrorWithoutWeights\.forward"
                                        r"\(logits, y\) takes no weights.*weights=None"):
        check_takes_weights(model.loss)
    for loss in (CrossEntropy(), MeanSquaredError(), BinaryCrossEntropy()):
        check_takes_weights(loss)
