"""The checker points at the bug: worst element, counts, pattern diagnosis, maps, kinks, battery."""

import re

import numpy as np
import pytest

from scratchnet import gradcheck
from scratchnet.gradcheck import check_layer, check_model, kink_aware_gradient
from scratchnet.gradcheck_diagnose import diagnose, mismatch_grid, window_coverage
from scratchnet.gradcheck_report import distinct_digits
from scratchnet.layers import Activation, Conv2D, Dense, Layer, MaxPool2D
from scratchnet.model import Sequential


class Scaled(Dense):
    """Dense whose dW is multiplied by ``factor`` and whose dx border may be zeroed (conv below)."""

    def __init__(self, units=3, factor=1.0, **options):
        super().__init__(units, **options)
        self.factor = factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}

    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["W"] = self.grads["W"] * self.factor
        return dx


@pytest.mark.parametrize("factor, phrase", [
    (1 / 3, "analytic = 0.333333 x numeric = 1/N (batch size N = 3): mean vs sum over the batch"),
    (3.0, "analytic = 3 x numeric = N (batch size N = 3): mean vs sum over the batch"),
    (-1.0, "opposite sign"),
    (2.0, "constant factor: analytic = 2 x numeric"),
])
def test_constant_factors_are_named(factor, phrase):
    report = check_layer(Scaled(3, factor=factor), (4,))
    row = {row.name: row for row in report.rows}["W"]
    assert not row.passed and row.n_wrong == 12 and row.checked == 12
    text = str(report)
    assert phrase in text
    # the worst element and its two values are printed, and they are the true worst
    difference = np.abs(row.analytic - row.numeric)
    assert row.worst_index == np.unravel_index(np.argmax(difference), difference.shape)
    assert f"worst at [{row.worst_index[0]}, {row.worst_index[1]}]" in text
    assert f"analytic {row.worst_analytic:.6g}, numeric {row.worst_numeric:.6g}" in text
    assert row.worst_analytic == pytest.approx(factor * row.worst_numeric, rel=1e-6)


class LocalDerivativeOnly(Layer):
    """tanh whose backward returns 1 - y^2 without dy (a student's first try, /tmp/student s2.py)."""

    def forward(self, x, training=False):
        self.cache = {"y": np.tanh(x)}
        return self.cache["y"]

    def backward(self, dy):
        return 1 - self.cache["y"] ** 2


def test_a_backward_without_the_chain_rules_dy_is_named():
    # hand-worked: local derivative a = (1, 2, 3), dy = (2, -1, 0.5): the numeric dL/dx is a * dy
    local, dy = np.array([[1.0, 2.0, 3.0]]), np.array([[2.0, -1.0, 0.5]])
    mask = np.ones(local.shape, dtype=bool)
    missing = "the chain rule's dy is missing: dx * dy equals the numeric gradient"
    assert missing in diagnose("input", local, local * dy, mask, 1e-6, output_grad=dy)[0]
    assert not any(missing in note for note in diagnose("input", local, local * dy, mask, 1e-6))
    assert not any(missing in note for note in diagnose("input", local, 2 * local * dy, mask, 1e-6,
                                                        output_grad=dy))
    report = check_layer(LocalDerivativeOnly(), (5,))
    assert not report.passed and missing in str(report)


def test_diagnose_transpose_and_kernel_flip(rng):
    numeric = rng.normal(size=(4, 4))
    mask = np.ones((4, 4), dtype=bool)
    assert any("transpose matches" in note for note in diagnose("W", numeric.T, numeric, mask, 1e-6))
    kernel = rng.normal(size=(3, 3, 2, 4))
    notes = diagnose("W", kernel[::-1, ::-1], kernel, np.ones(kernel.shape, dtype=bool), 1e-6)
    assert any("kernel flip" in note for note in notes)


def test_kernel_rearrangements_are_named_only_where_they_change_the_kernel(rng):
    # /tmp/dr3/conv1.py: a 1x1 kernel (or a symmetric one) equals its own transpose, so any near
    # miss "matched" it and was called "kernel transposed in space"
    def rearrangements(analytic, numeric):
        notes = diagnose("W", analytic, numeric, np.ones(numeric.shape, dtype=bool), 1e-6)
        return {phrase for phrase in ("kernel flip", "channel axes swapped", "kernel transposed in space")
                if any(phrase in note for note in notes)}

    kernel = rng.normal(size=(3, 3, 4, 4))
    assert rearrangements(kernel.transpose(1, 0, 2, 3), kernel) == {"kernel transposed in space"}
    assert rearrangements(kernel.transpose(0, 1, 3, 2), kernel) == {"channel axes swapped"}
    assert rearrangements(kernel, kernel) == set()
    near_miss = 1 + 3e-6  # a scale: the numbers agree to 6 digits, so every rearrangement of a
    one_by_one = rng.normal(size=(1, 1, 3, 2))  # kernel that it leaves unchanged "matches"
    assert rearrangements(one_by_one * near_miss, one_by_one) == set()
    symmetric = kernel + kernel.transpose(1, 0, 2, 3)  # [i, j] = [j, i] in space
    assert rearrangements(symmetric * near_miss, symmetric) == set()
    channel_symmetric = kernel + kernel.transpose(0, 1, 3, 2)
    assert rearrangements(channel_symmetric * near_miss, channel_symmetric) == set()
    flipped_and_symmetric = symmetric[::-1, ::-1]  # a real flip of a symmetric kernel is still named
    assert rearrangements(flipped_and_symmetric, symmetric) == {"kernel flip"}


class NearMissConv(Conv2D):
    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["W"] = self.grads["W"] * (1 + 3e-6)
        return dx


def test_a_near_miss_on_a_1x1_kernel_is_not_called_a_transpose():
    report = check_layer(NearMissConv(2, 1), (4, 4, 3))
    assert not report.passed
    assert "transposed" not in str(report) and "swapped" not in str(report), str(report)


def test_a_near_miss_prints_as_many_digits_as_tell_the_two_values_apart():
    # /tmp/dr3/conv1.py printed 'analytic 14.7609, numeric 14.7609': two numbers that look equal
    report = check_layer(NearMissConv(2, 1), (4, 4, 3))
    row = {row.name: row for row in report.rows}["W"]
    printed = re.search(r"worst at \[[0-9, ]+\]: analytic (\S+), numeric (\S+)\n", str(report))
    analytic, numeric = printed.groups()
    assert analytic != numeric
    assert float(analytic) == pytest.approx(row.worst_analytic, rel=1e-6)
    assert float(numeric) == pytest.approx(row.worst_numeric, rel=1e-6)
    assert abs(row.worst_analytic / row.worst_numeric - 1) == pytest.approx(3e-6, rel=1e-2)
    assert len(analytic.replace("-", "").replace(".", "")) > 6  # more than the usual 6 digits
    from scratchnet.exercises import grader

    assert grader.distinct_digits is distinct_digits  # the grader prints its comparisons the same way


def test_diagnose_all_zeros_and_unused_parameter(rng):
    numeric = rng.normal(size=5)
    mask = np.ones(5, dtype=bool)
    assert "all zeros" in diagnose("b", np.zeros(5), numeric, mask, 1e-6)[0]
    assert "does not depend on b" in diagnose("b", numeric, np.zeros(5), mask, 1e-6)[0]


class BorderBug(Conv2D):
    """Conv2D whose dx is wrong on the outer ring only (an off-by-one crop of the padding)."""

    wrong_row = 0

    def backward(self, dy):
        dx = super().backward(dy).copy()
        dx[:, self.wrong_row, :, :] *= 0.5
        return dx


class SecondRowBug(BorderBug):
    """Wrong one row inside the border: not a padding bug, and not to be called one."""

    wrong_row = 1


def test_only_border_elements_wrong_points_at_padding():
    report = check_layer(BorderBug(2, 3, padding="same"), (5, 5, 1), batch_size=2)
    text = str(report)
    assert "only border elements are wrong" in text and "padding offsets" in text
    row = report.rows[0]
    wrong = np.abs(row.analytic - row.numeric) > 1e-6
    grid = mismatch_grid("input", wrong, row.mask, np.zeros_like(row.mask))
    assert "".join(grid[0]) == "XXXXX" and set("".join(grid[1:].ravel())) == {"."}
    assert "|XXXXX|\n" in text and "|.....|" in text
    text = str(check_layer(SecondRowBug(2, 3, padding="same"), (5, 5, 1), batch_size=2))
    assert "FAILED" in text and "only border elements" not in text


def test_window_coverage_counts_overlaps():
    coverage = window_coverage(MaxPool2D(3, stride=2), (7, 7))
    assert coverage[0].tolist() == [1, 1, 2, 1, 2, 1, 1]
    assert coverage[2, 2] == 4 and coverage.sum() == 9 * 9
    assert window_coverage(Dense(3), (4, 4)) is None


class Float32Backward(Dense):
    def backward(self, dy):
        dx = super().backward(dy)
        return dx.astype(np.float32)


def test_a_float32_backward_gets_a_dtype_hint():
    text = str(check_layer(Float32Backward(3), (4,)))
    assert "dx of dtype float32" in text and "self.dtype" in text


class RoundOff(Dense):
    def backward(self, dy):
        dx = super().backward(dy)
        return dx + 1e-5 * np.sign(dx)  # a tiny relative error, like float32 arithmetic


def test_tiny_errors_suggest_float32_round_off():
    text = str(check_layer(RoundOff(3), (4,)))
    assert "looks like float32 round-off" in text and "float64" in text


@pytest.mark.parametrize("layer, input_shape", [
    (RoundOff(3), (4,)), (Scaled(3, factor=2.0), (4,)),
    (BorderBug(2, 3, padding="same"), (5, 5, 1)),
])
def test_the_report_diagnoses_as_diagnose_does_on_its_own(layer, input_shape):
    # report.add hands diagnose the error and the wrong mask it computed: the same notes result
    report = check_layer(layer, input_shape, batch_size=2)
    failing = report.failing()
    assert failing and all(row.diagnosis for row in failing)
    for row in failing:
        coverage = window_coverage(layer, input_shape[:2]) if row.name == "input" and len(input_shape) == 3 \
            else None
        assert row.diagnosis == diagnose(row.name, row.analytic, row.numeric, row.mask, report.tolerance,
                                         report.batch_size, coverage)


def test_kinks_are_inconclusive_not_failures():
    # ReLU at exactly 0: the one-sided slopes are 0 and 1 at any step size
    x = np.array([[0.0, 1.0, -1.0, 0.0]])
    report = check_layer(Activation("relu"), x)
    assert report.passed
    assert report.rows[0].inconclusive == 2 and report.rows[0].checked == 2
    assert "2 element(s) sit on a kink" in str(report) and "(+2 at kinks)" in str(report)


def test_an_array_with_every_element_on_a_kink_fails_and_says_move_the_input():
    # ReLU at 0 everywhere: no element of dx could be measured; 0 compared elements is no pass
    report = check_layer(Activation("relu"), np.zeros((2, 3)))
    row = report.rows[0]
    assert not report.passed and not row.passed and row.all_at_kinks
    assert (row.checked, row.inconclusive) == (0, 6) and np.isnan(row.error)
    lines = str(report).splitlines()
    assert lines[2].split() == ["input", "(2,", "3)", "nan", "FAIL", "(all", "at", "kinks)", "0", "of", "6",
                                "(+6", "at", "kinks)"]
    assert lines[-2:] == ["input: no element could be compared (all 6 on a kink): move the input off "
                          "the kink", "FAILED"]
    # check_model the same; the arrays it could measure still pass on their own
    model = Sequential([Activation("relu"), Dense(3)], input_shape=(3,), seed=0)
    model.compile(optimizer="sgd", loss="cross_entropy")
    report = check_model(model, np.zeros((2, 3)), np.array([0, 2]))
    assert [(row.name, row.passed, row.all_at_kinks) for row in report.rows] == [
        ("input", False, True), ("dense/W", True, False), ("dense/b", True, False)]
    assert not report.passed and [row.name for row in report.failing()] == ["input"]
    # one element off the kink is enough to measure the array: it passes, 5 left out
    x = np.zeros((2, 3))
    x[1, 2] = 0.5
    row = check_layer(Activation("relu"), x).rows[0]
    assert row.passed and (row.checked, row.inconclusive) == (1, 5) and not row.all_at_kinks


def test_a_kink_within_the_step_is_rechecked_with_a_smaller_step():
    # |x| with x = 3e-7: central differences with eps = 1e-6 straddle the kink (slope 0.3 instead of 1)
    x = np.array([3e-7, 2.0])
    numeric = gradcheck.numerical_gradient(lambda v: float(np.sum(np.abs(v))), x.copy())
    assert numeric[0] == pytest.approx(0.3, abs=1e-3)
    careful, kinks = kink_aware_gradient(lambda v: float(np.sum(np.abs(v))), x.copy())
    assert careful[0] == pytest.approx(1.0, abs=1e-6) and not kinks.any()


def test_large_arrays_are_sampled_and_the_sample_size_is_printed():
    report = check_layer(Conv2D(16, 3, padding="same"), (28, 28, 3), progress=False)
    assert report.passed
    rows = {row.name: row for row in report.rows}
    assert rows["input"].checked == gradcheck.SAMPLE_SIZE and rows["input"].shape == (3, 28, 28, 3)
    assert rows["W"].checked == 432  # under the sample size: every element
    assert f"input: {gradcheck.SAMPLE_SIZE} of 7056 elements checked" in str(report)


def test_check_model_notes_its_samples_and_kinks_as_check_layer_does():
    # one comparison loop serves both checks (gradcheck.compare_gradients): check_model's report
    # now says which arrays were sampled and which elements sat on a kink, as check_layer's does
    model = Sequential([Activation("relu"), Dense(3)], input_shape=(4,), seed=0)
    model.compile(optimizer="sgd", loss="cross_entropy")
    x = np.array([[0.0, 1.0, -1.0, 0.0], [2.0, 0.0, -3.0, 1.0]])  # ReLU(0): 3 kinks
    report = check_model(model, x, np.array([0, 2]), max_elements=None)
    assert report.passed and report.rows[0].inconclusive == 3 and report.rows[0].checked == 5
    assert report.notes == ["input: 3 element(s) sit on a kink (ReLU/max tie) even at step 1e-09: "
                            "inconclusive, not counted"]
    report = check_model(model, x, np.array([0, 2]), max_elements=5)
    assert [row.checked + row.inconclusive for row in report.rows] == [5, 5, 3]
    assert "input: 5 of 8 elements checked (a random sample; max_elements=None checks all)" in report.notes
    assert "dense/W: 5 of 12 elements checked (a random sample; max_elements=None checks all)" in report.notes
    # printed: the two sample notes as ONE line (lesson 05 printed nine), the kink note as it is
    printed = [line for line in str(report).splitlines() if line.startswith("note: ")]
    assert printed[0] == ("note: 2 arrays were checked on a random sample of their elements (the 'elements "
                          "checked' column; max_elements=None checks all)")
    assert len(printed) == 1 + len(report.notes) - 2


def test_a_long_check_prints_a_progress_line(capsys, monkeypatch):
    monkeypatch.setattr(gradcheck, "PROGRESS_AFTER", 0.0)
    ticks = iter(range(0, 10**6))
    monkeypatch.setattr(gradcheck.time, "perf_counter", lambda: float(next(ticks)))
    check_layer(Dense(3), (30,), max_elements=None)
    err = capsys.readouterr().err
    assert "gradcheck dense: W" in err and "elements" in err


def test_figure_shows_the_mismatch(tmp_path):
    report = check_layer(Scaled(3, factor=2.0), (4,))
    figure = report.figure("W", tmp_path / "w.png")
    image = figure.axes[0].images[0].get_array()
    row = report.rows[1]
    np.testing.assert_allclose(image, np.abs(row.analytic - row.numeric))
    assert "W (4, 3): 12 wrong" in figure.axes[0].get_title()
    assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"


def test_figure_of_a_kernel_shows_the_largest_mismatch_over_channels_and_filters():
    report = check_layer(StrideBug(2, 3, stride=2), (6, 6, 2), batch_size=2)
    row = {row.name: row for row in report.rows}["W"]
    image = report.figure("W").axes[0].images[0].get_array()
    assert image.shape == (3, 3)  # kernel h x w
    np.testing.assert_allclose(image, np.abs(row.analytic - row.numeric).max(axis=(2, 3)))


class StrideBug(Conv2D):
    """dW is wrong only when the stride is > 1 (a scatter that forgets the stride)."""

    def backward(self, dy):
        dx = super().backward(dy)
        if max(self.stride) > 1:
            self.grads["W"] = self.grads["W"] * 1.5
        return dx


def test_battery_gives_one_verdict_per_case_and_spots_stride_only_failures():
    report = check_layer(StrideBug(2, 3), (6, 6, 2), configs="battery")
    text = str(report)
    assert not report.passed
    labels = [case[0] for case in report.cases]
    assert "stride 2, ragged sizes (H + 2p - k not divisible by s)" in labels and "batch of one" in labels
    assert "dilation 2" in labels and any("float32" in label for label in labels)
    failing = {case[0] for case in report.failing()}
    assert failing == {"stride 2, ragged sizes (H + 2p - k not divisible by s)", "stride 3",
                       "padding 'same', stride 2"}
    assert "only the cases with stride > 1 fail" in text


def test_battery_of_builtin_pooling_passes_including_ties():
    report = check_layer(MaxPool2D(2), (6, 6, 2), configs="battery")
    assert report.passed, str(report)
    assert any(case[0].startswith("ties") for case in report.cases)
    assert any(case[0].startswith("overlapping windows") for case in report.cases)


def test_battery_catches_a_float32_layer_that_computes_in_float64():
    class Upcast(Dense):
        def forward(self, x, training=False):
            return super().forward(x, training).astype(np.float64)

    report = check_layer(Upcast(3), (4,), configs="battery")
    assert not report.passed
    assert "built in float32, output came back as float64" in str(report)
