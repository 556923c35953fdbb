"""Numbers at the extremes: infinite and near-overflow logits, gradients and scores, against torch
(the numerics reviewer's /tmp/numerics scripts) and hand-worked limits."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet.layers import Dense
from scratchnet.losses import BinaryCrossEntropy, CrossEntropy, MeanSquaredError
from scratchnet.optimizers import Adam, AdamW

EXTREME_LOGITS = [[1e4, -1e4, 0], [88.0, -88.0, 0.0], [1e30, -1e30, 0.0], [3e38, -3e38, 0.0],
                  [0.0, -np.inf, 1.0], [-1e30, -1e30, -1e30]]


def torch_cross_entropy(torch, logits, labels, smoothing):
    """torch's mean cross-entropy and its gradient for (N, K) logits, (N,) labels."""
    z = torch.tensor(logits, requires_grad=True)
    value = torch.nn.functional.cross_entropy(z, torch.tensor(labels), label_smoothing=smoothing)
    value.backward()
    return value.item(), z.grad.numpy()


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("logits", EXTREME_LOGITS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_with_infinite_log_probs_matches_torch(dtype, logits, smoothing):
    """A class whose target is 0 adds 0 even where its log p is -inf (0 * -inf was NaN): a -inf
    logit, or float32's 0 - 3e38 - 3e38 = -inf. Loss and gradient as torch's, for every label."""
    torch = pytest.importorskip("torch")
    z = np.array([logits], dtype)
    for label in range(3):
        expected_value, expected_grad = torch_cross_entropy(torch, z, np.array([label]), smoothing)
        for y in (np.array([label]), np.eye(3, dtype=dtype)[[label]]):  # integer labels and one-hot
            loss = CrossEntropy(label_smoothing=smoothing)
            with np.errstate(all="ignore"):
                value = loss.forward(z, y)
            assert value == pytest.approx(expected_value, rel=1e-6), (label, value, expected_value)
            np.testing.assert_allclose(loss.backward(), expected_grad, rtol=1e-6, atol=1e-7)


def test_cross_entropy_zero_weight_class_at_minus_infinity_hand_worked():
    # z = [0, -inf, 1], label 0: L = log(e^0 + e^1) - 0 = log(1 + e)
    value = CrossEntropy().forward(np.array([[0.0, -np.inf, 1.0]]), np.array([0]))
    assert value == pytest.approx(math.log(1 + math.e), rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_perfect_cross_entropy_is_plus_zero(dtype):
    """-(sum of 1 * 0.0) is -0.0, printed "-0.0000": the loss returns +0.0."""
    for weights in (None, np.array([2.0])):
        value = CrossEntropy().forward(np.array([[1e4, 0.0, 0.0]], dtype), np.array([0]), weights=weights)
        assert value == 0.0 and math.copysign(1.0, value) == 1.0
        assert f"{value:.4f}" == "0.0000"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_at_infinite_logits(dtype):
    """-t log s(z) - (1 - t) log(1 - s(z)): z = +inf, t = 0 is inf (torch: inf; was NaN from inf * 0);
    z = -inf, t = 0 is 0 (the limit; torch gives NaN); z = -inf, t = 1 is inf."""
    logits = np.array([[np.inf], [-np.inf], [-np.inf]], dtype)
    targets = np.array([[0.0], [0.0], [1.0]], dtype)
    per_sample = []
    for z, t in zip(logits, targets):
        with np.errstate(all="ignore"):
            per_sample.append(BinaryCrossEntropy().forward(z[None], t[None]))
    assert per_sample == [math.inf, 0.0, math.inf]
    loss = BinaryCrossEntropy()
    loss.forward(logits, targets)
    np.testing.assert_array_equal(loss.backward(), (np.array([[1.0], [0.0], [-1.0]]) / 3).astype(dtype))


@pytest.mark.torch
def test_mse_gradient_of_huge_differences_is_finite_as_torch():
    """2 * diff / size overflowed for diff = 2e38 in float32 (inf); diff * (2 / size) is torch's 3.33e37."""
    torch = pytest.importorskip("torch")
    logits, targets = np.full((4, 3), 1e38, np.float32), np.full((4, 3), -1e38, np.float32)
    for weights in (None, np.ones(4)):
        loss = MeanSquaredError()
        with np.errstate(over="ignore"):
            loss.forward(logits, targets, weights=weights)
        z = torch.tensor(logits, requires_grad=True)
        torch.nn.functional.mse_loss(z, torch.tensor(targets)).backward()
        grad = loss.backward()
        assert np.all(np.isfinite(grad))
        np.testing.assert_allclose(grad, z.grad.numpy(), rtol=1e-7)


def adam_steps(optimizer, start, gradients):
    """The float32 weights (4,) of a Dense(4) on one input after one optimizer step per gradient."""
    layer = Dense(4)
    layer.build((1,), dtype="float32")
    layer.params["W"][...] = start.reshape(1, 4)
    for gradient in gradients:
        layer.grads = {"W": gradient.reshape(1, 4), "b": np.zeros(4, np.float32)}
        optimizer.step([layer])
    return layer.params["W"].ravel()


@pytest.mark.torch
@pytest.mark.parametrize("size", [1e20, 5e20])
@pytest.mark.parametrize("make_pair", [
    lambda torch, p: (Adam(), torch.optim.Adam(p)),
    lambda torch, p: (AdamW(), torch.optim.AdamW(p))])
def test_adam_second_moment_of_huge_float32_gradients_as_torch(make_pair, size):
    """v += (1 - b2) g g in torch's order: g * g first overflowed float32 from 1.8e19 (v = inf, step 0)."""
    torch = pytest.importorskip("torch")
    start = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    gradients = [np.full(4, size, np.float32), np.full(4, -size / 2, np.float32)]
    param = torch.nn.Parameter(torch.tensor(start))
    ours, theirs = make_pair(torch, [param])
    for gradient in gradients:
        param.grad = torch.tensor(gradient)
        theirs.step()
    mine = adam_steps(ours, start, gradients)
    assert np.all(mine != start)  # the step moved every weight (it was silently 0)
    np.testing.assert_allclose(mine, param.detach().numpy(), rtol=2e-6)


def test_top_k_ranks_nan_scores_as_argmax_does():
    """NaN counts as the largest score (np.argmax, accuracy, torch.topk); argpartition took it for the
    smallest, so a NaN row's top-k held the finite scores and could score a hit."""
    from scratchnet import metrics
    scores = np.array([[np.nan, 5.0, 1.0, 0.0],    # NaN largest: top-2 = {0, 1}
                       [1.0, np.nan, 3.0, np.nan],  # NaNs first, by index: top-2 = {1, 3}
                       [np.nan] * 4,               # all NaN: top-1 = {0}, as argmax
                       [2.0, 2.0, 1.0, np.inf]])   # top-2 = {3, 0}: a tie goes to the first index
    assert metrics.top_k_accuracy([0, 1, 0, 0], scores, k=1) == 0.75  # row 3's argmax is 3
    assert metrics.top_k_accuracy([1, 3, 0, 0], scores, k=2) == 1.0
    assert metrics.top_k_accuracy([2, 2, 2, 1], scores, k=2) == 0.0
    labels = np.array([1, 0, 3, 2])
    assert metrics.top_k_accuracy(labels, scores, k=1) == metrics.accuracy(labels, np.argmax(scores, axis=1))


@pytest.mark.torch
def test_top_k_matches_torch_topk_with_a_nan_column():
    torch = pytest.importorskip("torch")
    from scratchnet import metrics
    rng = np.random.default_rng(0)
    scores = np.where(np.arange(10) == 3, np.nan, rng.standard_normal((200, 10))).astype(np.float32)
    labels = rng.integers(0, 10, 200)
    for k in (1, 2, 5):
        hits = (torch.tensor(scores).topk(k, dim=1).indices == torch.tensor(labels)[:, None]).any(dim=1)
        assert metrics.top_k_accuracy(labels, scores, k) == pytest.approx(hits.double().mean().item(), abs=0)


def lexsort_ranks(scores, labels):
    """The rank of each true class in a full sort (the sort top_k_accuracy used before the rank
    count): NaN first, then the numbers from the largest down, ties by index (lexsort is stable)."""
    scores = scores.astype(np.float64)
    is_nan = np.isnan(scores)
    order = np.lexsort((np.where(is_nan, 0, -scores), ~is_nan), axis=1)  # the last key sorts first
    return np.argmax(order == labels[:, None], axis=1)


@given(st.integers(1, 6), st.integers(1, 7), st.integers(0, 2**32 - 1),
       st.sampled_from(["f4", "f8", "i2", "u1"]))
def test_top_k_rank_count_equals_the_full_sort(n_rows, n_classes, seed, dtype):
    """Scores drawn from a few values, so that ties, NaN, inf and all-NaN rows are common."""
    from scratchnet import metrics
    rng = np.random.default_rng(seed)
    values = [0, 1, 2, 200] if dtype[0] in "iu" else [np.nan, -np.inf, np.inf, -1.5, 0.0, 2.0]
    scores = rng.choice(values, (n_rows, n_classes)).astype(dtype)
    labels = rng.integers(0, n_classes, n_rows)
    expected_ranks = lexsort_ranks(scores, labels)
    np.testing.assert_array_equal(metrics._ranks_of_true_class(scores, labels), expected_ranks)
    for k in range(1, n_classes + 1):
        assert metrics.top_k_accuracy(labels, scores, k) == np.mean(expected_ranks < k)


def test_top_k_of_unsigned_integer_scores():
    from scratchnet import metrics
    assert metrics.top_k_accuracy([0, 2], np.array([[200, 10, 0], [0, 1, 255]], np.uint8), k=1) == 1.0


def test_one_cycle_without_a_warm_up_step_is_refused_when_made():
    """pct_start * total_steps = 1: phase 1 ends at step 0 and step 0 computed 0 / 0 (a bare
    ZeroDivisionError at the first step, as torch's OneCycleLR)."""
    from scratchnet.schedules import OneCycle
    with pytest.raises(ValueError, match=r"^OneCycle: pct_start \* total_steps = 0.25 \* 4 = 1 gives the "
                                         r"warm-up phase no length .* make pct_start larger than "
                                         r"1 / total_steps = 0.25, or total_steps larger$"):
        OneCycle(0.1, total_steps=4, pct_start=0.25)
    for total, pct in ((4, 0.3), (4, 0.2), (1, 0.5), (10, 0.11)):  # either side of 1: every step a number
        schedule = OneCycle(0.1, total_steps=total, pct_start=pct)
        assert all(math.isfinite(schedule(step)) for step in range(total + 1))


def test_linear_warmup_default_first_step_is_zero_and_says_so():
    from scratchnet.schedules import LinearWarmup
    assert LinearWarmup(0.1, 5)(0) == 0.0 and LinearWarmup(0.1, 5)(1) == pytest.approx(0.02, rel=1e-15)
    assert "refuses start_factor=0" in LinearWarmup.__doc__


def test_a_negative_soft_target_counts_with_its_sign():
    """-(1/N) sum_n sum_k t[n, k] log softmax(z)[n, k], t = [1.5, -0.5] included: the value 4be678a
    gave (0.2345996536845...), and scipy's log_softmax; counting only t > 0 gave 0.66."""
    from scipy.special import log_softmax
    logits = np.array([[0.5, -1.0], [2.0, 0.3]])
    targets = np.array([[1.5, -0.5], [0.5, 0.5]])
    expected = -(targets * log_softmax(logits, axis=1)).sum() / 2
    value = CrossEntropy().forward(logits, targets)
    assert value == pytest.approx(expected, rel=1e-14)
    assert value == pytest.approx(0.23459965368450916, rel=1e-14)


def test_a_nan_target_gives_a_nan_loss():
    """NaN * value is NaN: the loss says so (a finite loss with a NaN gradient wrote NaN weights)."""
    logits = np.array([[0.5, -1.0], [2.0, 0.3]])
    assert math.isnan(BinaryCrossEntropy().forward(logits, np.array([[np.nan, 1.0], [0.0, 1.0]])))
    with pytest.warns(UserWarning):  # the row does not sum to 1
        assert math.isnan(CrossEntropy().forward(logits, np.array([[np.nan, 1.0], [0.5, 0.5]])))


def test_fit_stops_at_the_first_batch_with_a_nan_target_and_keeps_the_weights():
    from scratchnet import Sequential
    from scratchnet.layers import Activation
    from scratchnet.training import NonFiniteLossError
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (rng.random((64, 3)) > 0.5).astype(np.float32)
    y[5, 1] = np.nan  # in the first batch of 16 (no shuffle)
    model = Sequential([Dense(8), Activation("relu"), Dense(3)], input_shape=(4,))
    model.compile(optimizer=Adam(1e-2), loss="binary_cross_entropy")
    before = [p.copy() for layer in model.layers for p in layer.params.values()]
    with pytest.raises(NonFiniteLossError, match="batch 1 of 4"):
        model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    after = [p for layer in model.layers for p in layer.params.values()]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(new, old)


def test_top_k_refuses_a_label_beyond_the_scores_classes():
    from scratchnet import metrics
    with pytest.raises(ValueError, match=r"^top_k_accuracy: y_true holds label 3 but logits have 3 classes "
                                         r"\(labels 0 to 2\)$"):
        metrics.top_k_accuracy([3, 0], np.zeros((2, 3)), 1)


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "loss object"])
def test_predictions_and_probabilities_take_any_name_of_the_loss(loss):
    """The loss argument goes through get_loss: a Loss object is the same loss as its name (a
    mistyped name is refused, never silently read as cross-entropy)."""
    from scipy.special import expit

    from scratchnet import metrics
    from scratchnet.losses import get_loss
    loss = get_loss("binary_cross_entropy") if loss == "loss object" else loss
    scores = np.array([[1.0, -1.0, 2.0], [-1.0, -2.0, -3.0]])
    np.testing.assert_array_equal(metrics.predictions(scores, loss), [[1, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(metrics.probabilities(scores, loss), expit(scores))
    with pytest.raises(ValueError, match="unknown loss 'bce'"):
        metrics.predictions(scores, "bce")
