"""check_model measures no closer than round-off: a true gradient of 0 passes as "ok (round-off)".

Found by a hypothesis state machine (ninth session): a conv bias before a training-mode
BatchNorm has a true gradient of exactly 0 (the batch mean removes the bias), analytic ~1e-17 of
round-off, numeric 0: a relative error of 1e-17 against 0 failed, diagnosed "a bias never added".
check_layer passed the round-off floor of a central difference; check_model did not.
"""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import layers as L
from scratchnet.gradcheck import check_model
from scratchnet.gradcheck_diagnose import diagnose
from scratchnet.gradcheck_numeric import central_difference_noise


def conv_batchnorm_model(kernel_size, layer=None):
    conv = layer if layer is not None else L.Conv2D(3, kernel_size)
    return sn.Sequential([conv, L.BatchNorm(), L.Activation("tanh"), L.Flatten(), L.Dense(2)],
                         input_shape=(6, 6, 2), dtype="float64", seed=0).compile("adam")


@pytest.mark.parametrize("kernel_size", [3, 1])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_conv_bias_before_a_training_batchnorm_passes_as_round_off(kernel_size, seed):
    x = np.random.default_rng(seed).standard_normal((4, 6, 6, 2))
    y = np.arange(4) % 2
    report = check_model(conv_batchnorm_model(kernel_size), x, y, training=True, seed=seed)
    assert report.passed, str(report)
    rows = {row.name: row for row in report.rows}
    bias = rows["conv2d/b"]
    # the true gradient is 0: both sides are round-off, far below the floor of the loss
    loss = conv_batchnorm_model(kernel_size).loss.forward(
        conv_batchnorm_model(kernel_size).forward(x, training=True), y)
    floor = central_difference_noise(abs(loss), 1e-6)
    assert np.abs(bias.analytic).max() <= 1e-15 and np.abs(bias.numeric).max() <= floor
    # every other array is measured: a relative error <= 1e-6 on its own, not by the floor
    assert [name for name, row in rows.items() if row.within_round_off] in ([], ["conv2d/b"])
    assert all(row.error <= 1e-6 for name, row in rows.items() if name != "conv2d/b"), str(report)
    if bias.within_round_off:
        assert "ok (round-off)" in str(report) and "conv2d/b: rel. error" in str(report)
    assert "never added" not in str(report) and "kernel flip" not in str(report)


class BiasGradientDropped(L.Conv2D):
    """Conv2D whose backward forgets the bias gradient (a real bug the floor must not hide)."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["b"] = np.zeros_like(self.grads["b"])
        return dx


def test_a_dropped_bias_gradient_is_still_caught():
    # without the BatchNorm the bias matters: its gradient (~1e-2) is far above the floor (~1e-9)
    x = np.random.default_rng(0).standard_normal((4, 6, 6, 2))
    model = sn.Sequential([BiasGradientDropped(3, 3), L.Activation("tanh"), L.Flatten(), L.Dense(2)],
                          input_shape=(6, 6, 2), dtype="float64", seed=0).compile("adam")
    report = check_model(model, x, np.arange(4) % 2, training=True)
    assert not report.passed and [row.name for row in report.failing()] == ["bias_gradient_dropped/b"]
    assert "all zeros: the analytic gradient of bias_gradient_dropped/b" in str(report)


def test_the_kernel_flip_note_needs_a_kernel_that_differs_from_its_flip(rng):
    # a 1x1 kernel (or a symmetric one) equals its own flip: "W[::-1, ::-1] equals the numeric
    # gradient" then holds for ANY near miss (here one element off by 3e-6 of the scale, a fail
    # at 1e-6), and the note blamed a flip that cannot be seen
    for kernel in (rng.normal(size=(1, 1, 2, 3)), rng.normal(size=(3, 3, 2, 3))):
        kernel = kernel + kernel[::-1, ::-1]    # symmetric: unchanged by the flip
        near_miss = kernel.copy()
        near_miss[0, 0, 0, 0] += 3e-6 * np.abs(kernel).max()
        notes = diagnose("W", near_miss, kernel, np.ones(kernel.shape, dtype=bool), 1e-6)
        assert not any("kernel flip" in note for note in notes), notes
    # a kernel that differs from its flip still gets the note
    kernel = rng.normal(size=(3, 3, 2, 3))
    notes = diagnose("W", kernel[::-1, ::-1], kernel, np.ones(kernel.shape, dtype=bool), 1e-6)
    assert any("kernel flip" in note for note in notes)
