"""CrossEntropy's gradient with target rows that do not sum to 1: the gradient of its forward,
-sum_k t_k log softmax(z)_k, is softmax(z) * sum_k t_k - t (per row, / N), not softmax(z) - t."""

import warnings

import numpy as np
import pytest

from scratchnet.gradcheck import numerical_gradient
from scratchnet.losses import CrossEntropy


def gradient(loss, z, t, weights=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # rows not summing to 1 warn, on purpose here
        loss.forward(z, t, weights=weights)
    return loss.backward()


def test_the_hand_worked_example():
    """z = [[1, 2, .5]], t = [[1, 1, 0]]: softmax(z) = [.23122, .62853, .14024]; times 2, minus t
    (before: softmax(z) - t = [-.769, -.371, .140])."""
    z, t = np.array([[1.0, 2.0, 0.5]]), np.array([[1.0, 1.0, 0.0]])
    softmax = np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(gradient(CrossEntropy(), z, t), 2 * softmax - t, rtol=1e-14)
    np.testing.assert_allclose(gradient(CrossEntropy(), z, t), [[-0.537552, 0.257063, 0.280489]],
                               atol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_rows_of_any_sum_match_central_differences(smoothing, weighted):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(5, 4))
    t = rng.random((5, 4)) * np.array([[0.5], [1.0], [2.0], [0.0], [3.0]])  # row sums 0 to ~6
    weights = rng.random(5) if weighted else None
    loss = CrossEntropy(label_smoothing=smoothing)
    analytic = gradient(loss, z, t, weights)

    def value(logits):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return CrossEntropy(label_smoothing=smoothing).forward(logits, t, weights=weights)

    np.testing.assert_allclose(analytic, numerical_gradient(value, z.copy(), 1e-6), rtol=1e-7, atol=1e-9)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    z, t = rng.normal(size=(6, 5)), rng.random((6, 5)) * 3
    for smoothing in (0.0, 0.1):
        logits = torch.tensor(z, requires_grad=True)
        torch.nn.functional.cross_entropy(logits, torch.tensor(t), label_smoothing=smoothing).backward()
        np.testing.assert_allclose(gradient(CrossEntropy(smoothing), z, t), logits.grad.numpy(),
                                   rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_labels_and_one_hot_rows_are_bitwise_the_plain_form(smoothing):
    """Rows summing to exactly 1 keep (softmax(z) - t) / N, the smoothed targets of them too,
    although (1 - e) t + e / K may sum to 1 - 1ulp (7 classes, e = 0.1)."""
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        z, labels = rng.normal(size=(9, 7)).astype(dtype), rng.integers(0, 7, 9)
        for y in (labels, np.eye(7, dtype=dtype)[labels]):
            loss = CrossEntropy(smoothing)
            loss.forward(z, y)
            t = loss.cache["t"]
            expected = (np.exp(loss.cache["log_probs"]) - t) / len(z)
            np.testing.assert_array_equal(loss.backward(), expected)
