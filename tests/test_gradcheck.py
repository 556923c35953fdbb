"""The gradient checker itself: it must pass right layers and catch wrong ones."""

import re

import numpy as np
import pytest

from scratchnet.gradcheck import (
    TOLERANCE,
    check_layer,
    gradient_error,
    kink_aware_gradient,
    numerical_gradient,
)
from scratchnet.layers import Dense, Layer


def test_numerical_gradient_of_a_known_function(rng):
    x = rng.normal(size=(3, 4))
    numeric = numerical_gradient(lambda v: float(np.sum(v ** 3)), x)
    np.testing.assert_allclose(numeric, 3 * x ** 2, rtol=1e-8, atol=1e-9)


def test_numerical_gradient_restores_its_input(rng):
    x = rng.normal(size=5)
    copy = x.copy()
    numerical_gradient(lambda v: float(np.sum(np.sin(v))), x)
    np.testing.assert_array_equal(x, copy)


def test_numerical_gradient_wants_float64():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda v: 0.0, np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match="^numerical_gradient needs a float64 array, got int64$"):
        numerical_gradient(lambda v: 0.0, np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match="^kink_aware_gradient needs a float64 array, got float32$"):
        kink_aware_gradient(lambda v: 0.0, np.zeros(3, dtype=np.float32))


def test_gradient_error_is_relative_to_the_array_scale():
    assert gradient_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0
    assert gradient_error(np.array([100.0, 1e-9]), np.array([100.0, 2e-9])) == pytest.approx(1e-11)
    assert gradient_error(np.array([1.0]), np.array([1.1])) == pytest.approx(0.1 / 1.1)


class ScaledSquare(Layer):
    """y = scale * x^2 with a learnable scale; the backward can be made wrong on purpose."""

    def __init__(self, bug=None):
        super().__init__()
        self.bug = bug

    def init_params(self, input_shape, rng):
        return {"scale": rng.normal(size=input_shape)}

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x": x}
        return self.params["scale"] * x * x

    def backward(self, dy):
        x = self.cache["x"]
        self.grads["scale"] = (dy * x * x).sum(axis=0)
        if self.bug == "param":
            self.grads["scale"] = self.grads["scale"] * 1.001   # 0.1% off: still caught
        dx = 2 * self.params["scale"] * x * dy
        return dx if self.bug != "input" else x * dy           # forgot the chain rule


def test_correct_student_layer_passes():
    report = check_layer(ScaledSquare(), (4,))
    assert report.passed
    assert report.max_error < 1e-8
    assert "PASSED" in str(report) and "scale" in str(report)


@pytest.mark.parametrize("bug, failing", [("input", "input"), ("param", "scale")])
def test_wrong_backward_is_caught(bug, failing):
    report = check_layer(ScaledSquare(bug=bug), (4,))
    assert not report.passed
    assert report.errors()[failing] > TOLERANCE
    text = str(report)
    assert "FAIL" in text and "FAILED" in text
    with pytest.raises(AssertionError, match="gradient check failed"):
        report.assert_passed()


def test_check_layer_leaves_the_original_alone(rng):
    layer = Dense(3)
    layer.build((2,), rng=rng)            # float32
    before = layer.params["W"].copy()
    report = check_layer(layer, rng.normal(size=(2, 2)))
    assert report.passed
    assert layer.dtype == np.float32 and layer.params["W"].dtype == np.float32
    np.testing.assert_array_equal(layer.params["W"], before)


def test_check_layer_reads_a_one_pass_iterator_once():
    """map(int, ["5"]) is the shape (5,): the first look at it used the iterator up, so Dense was
    built for samples of shape (); a generator of rows is the batch those rows make."""
    rows = [[0.5, -1.0], [2.0, 0.25]]
    for given, same_as in ((map(int, ["5"]), (5,)), ((row for row in rows), rows)):
        report, expected = check_layer(Dense(3), given, progress=False), check_layer(Dense(3), same_as,
                                                                                      progress=False)
        assert report.passed and not report.contract
        assert [row.shape for row in report.rows] == [row.shape for row in expected.rows]
        assert [row.error for row in report.rows] == [row.error for row in expected.rows]


def test_check_layer_samples_large_arrays(rng):
    report = check_layer(Dense(40), (50,), max_elements=25)
    assert report.passed
    assert report.rows[1].shape == (50, 40)


def test_round_off_floor_passes_a_tiny_correct_gradient_but_not_a_wrong_one():
    # Found by hypothesis in tests/test_containers.py: a one-element bias gradient of -1.2e-3 next
    # to a function whose terms sum to ~20 was "wrong" by 2.8e-9 (relative 2.3e-6): central
    # differences cannot resolve it closer (eps_64 * 20 / 1e-6 ~ 4e-9). The round-off floor
    # passes it; a 1% error on the same gradient (1.2e-5) is far above the floor and fails.
    from scratchnet.gradcheck import central_difference_noise
    from scratchnet.layers import Activation, Conv2D, Parallel, Residual

    def block():
        inner = Parallel([Conv2D(2, 1), Residual([Conv2D(2, 3, padding="same"), Activation("tanh")])],
                         merge="add")
        return Parallel([Residual([inner, Activation("tanh")]),
                         [Conv2D(2, 3, padding="same"), Activation("tanh"),
                          Parallel([Conv2D(1, 1), Conv2D(2, 1)])]])

    report = check_layer(block(), (4, 4, 2), seed=525, batch_size=2)
    row = next(row for row in report.rows if row.name == "conv2d_3/b")
    assert row.error > 1e-6 and row.passed and report.passed    # relative error alone would fail
    # named, not passed silently: the table says why it passed, a note gives the numbers
    assert row.within_round_off and [r.name for r in report.rows if r.within_round_off] == ["conv2d_3/b"]
    table_row = next(line for line in str(report).splitlines() if line.startswith("conv2d_3/b "))
    assert table_row.split()[1:5] == ["(1,)", f"{row.error:.2e}", "ok", "(round-off)"]
    assert len(report.notes) == 1
    note = re.fullmatch(rf"conv2d_3/b: rel\. error {row.error:.1e} > 1e-06, but every difference is "
                        r"below the round-off of a central difference \((\S+)\): too small to measure "
                        r"closer, passed", report.notes[0])
    assert note and np.abs(row.analytic - row.numeric).max() <= float(note.group(1)) < 1e-6

    class SlightlyWrongBias(Conv2D):
        def backward(self, dy):
            dx = super().backward(dy)
            self.grads["b"] = self.grads["b"] * 1.01
            return dx

    wrong = block()
    wrong.branches[1].children[2].branches[0].__class__ = SlightlyWrongBias
    report = check_layer(wrong, (4, 4, 2), seed=525, batch_size=2)
    assert not next(row for row in report.rows if row.name == "conv2d_3/b").passed
    assert central_difference_noise(20.0, 1e-6) == pytest.approx(4 * 2.220446049250313e-16 * 20 / 1e-6)
