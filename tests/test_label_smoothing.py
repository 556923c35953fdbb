"""CrossEntropy(label_smoothing=e): hand-worked value, soft labels, gradient check, PyTorch."""

import math

import numpy as np
import pytest

from scratchnet.gradcheck import check_loss
from scratchnet.losses import CrossEntropy, get_loss


def test_hand_worked_two_classes():
    # logits (0, 0): log p = -log 2 for both; any target rows summing to 1 give log 2
    value = CrossEntropy(label_smoothing=0.3).forward(np.zeros((1, 2)), np.array([0]))
    assert value == pytest.approx(math.log(2), abs=1e-15)
    # logits (log 3, 0): p = (3/4, 1/4); e = 0.2, K = 2: t = (0.9, 0.1)
    loss = CrossEntropy(label_smoothing=0.2)
    value = loss.forward(np.array([[math.log(3), 0.0]]), np.array([0]))
    assert value == pytest.approx(-(0.9 * math.log(0.75) + 0.1 * math.log(0.25)), abs=1e-15)
    np.testing.assert_allclose(loss.backward(), [[0.75 - 0.9, 0.25 - 0.1]], atol=1e-15)


@pytest.mark.parametrize("smoothing", [0.05, 0.3, 1.0])
@pytest.mark.parametrize("soft", [False, True])
def test_gradient_check_with_smoothing(smoothing, soft, rng):
    logits = rng.normal(size=(5, 4)) * 3
    y = rng.dirichlet(np.ones(4), size=5) if soft else rng.integers(0, 4, size=5)
    report = check_loss(CrossEntropy(label_smoothing=smoothing), logits, y)
    assert report.passed, report


@pytest.mark.torch
@pytest.mark.parametrize("soft", [False, True])
def test_matches_torch(soft, rng):
    torch = pytest.importorskip("torch")
    logits = rng.normal(size=(7, 5)) * 4
    y = rng.dirichlet(np.ones(5), size=7) if soft else rng.integers(0, 5, size=7)
    for smoothing in (0.0, 0.1, 0.45):
        ours = CrossEntropy(label_smoothing=smoothing)
        value = ours.forward(logits, y)
        z = torch.tensor(logits, requires_grad=True)
        target = torch.tensor(y)
        theirs = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)(z, target)
        theirs.backward()
        assert value == pytest.approx(theirs.item(), rel=1e-13)
        np.testing.assert_allclose(ours.backward(), z.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_option_checked_named_and_default_unchanged():
    with pytest.raises(ValueError, match=r"^cross_entropy: label_smoothing must be a number "
                                         r"in \[0, 1\], got 1.5$"):
        CrossEntropy(label_smoothing=1.5)
    assert get_loss("cross_entropy").label_smoothing == 0.0
    assert repr(CrossEntropy(label_smoothing=0.1)) == "CrossEntropy(label_smoothing=0.1)"
