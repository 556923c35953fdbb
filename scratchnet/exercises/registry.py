"""The exercises: which class the student writes, scratchnet's layer to compare with, the cases.

A case is one configuration (constructor options, one sample's input shape, batch size) the
grader checks: the cases are the adversarial battery of each exercise (stride > 1, sizes where
(H + 2p - k) is not divisible by the stride, overlapping windows, ties, non-square kernels, a
batch of one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .mistakes import (
    CONV_MISTAKES,
    DENSE_MISTAKES,
    MAX_POOL_TIE_MISTAKES,
    KnownMistake,
    max_pool_to_every_tie,
)


@dataclass
class Case:
    label: str
    config: dict
    input_shape: tuple
    batch: int = 2
    input_kind: str = "normal"      # "normal", "ties" (integer values) or "large" (x 1000)
    compare: bool = True            # compare with scratchnet's layer
    gradcheck: bool = True
    training: bool = False          # forward in training mode (dropout, batch norm)


@dataclass
class Exercise:
    name: str
    title: str
    class_name: str
    reference: str                  # how to build scratchnet's own version, see grader.reference_for
    cases: list = field(default_factory=list)
    kind: str = "layer"             # "layer" or "loss"
    writes: str = "backward"        # what the student writes: "backward", "forward" or "both"
    mistakes: list = field(default_factory=list)   # KnownMistake's, checked when a case fails

    @property
    def writes_forward(self) -> bool:
        return self.writes in ("forward", "both")

    @property
    def writes_backward(self) -> bool:
        return self.writes in ("backward", "both")


def _conv_cases():
    return [Case("3x3, stride 1, no padding", {"filters": 2, "kernel_size": 3}, (5, 5, 2)),
            Case("3x3, padding 1", {"filters": 2, "kernel_size": 3, "padding": 1}, (5, 4, 2)),
            Case("3x3, stride 2, ragged (H - k not divisible by s)",
                 {"filters": 2, "kernel_size": 3, "stride": 2}, (8, 7, 1)),
            Case("non-square (3, 2), stride 2, padding 1",
                 {"filters": 2, "kernel_size": (3, 2), "stride": 2, "padding": 1}, (6, 7, 2)),
            Case("2x2, stride 2, batch of one", {"filters": 3, "kernel_size": 2, "stride": 2}, (4, 6, 2),
                 batch=1)]


def _pool_cases():
    return [Case("2x2, stride 2", {"pool_size": 2}, (4, 6, 2)),
            Case("overlapping windows: 3x3, stride 2", {"pool_size": 3, "stride": 2}, (7, 7, 2)),
            Case("overlapping windows: 2x2, stride 1", {"pool_size": 2, "stride": 1}, (5, 4, 1)),
            Case("ragged: 2x2, stride 2 on 5x7", {"pool_size": 2}, (5, 7, 1)),
            Case("ties (integer-valued input)", {"pool_size": 2}, (4, 4, 2), input_kind="ties"),
            Case("3x3, stride 1, batch of one", {"pool_size": 3, "stride": 1}, (5, 5, 1), batch=1)]


def _activation_cases():
    return [Case("vectors (N, 5)", {}, (5,), batch=3), Case("images (N, 3, 4, 2)", {}, (3, 4, 2)),
            Case("batch of one", {}, (6,), batch=1),
            Case("exact zeros (integer input, x == 0 in places)", {}, (6,), batch=3, input_kind="zeros")]


def _batch_norm_parts(x, dy, params, config):
    """(dxhat, xhat, std) of a training-mode batch norm: statistics over every axis but the last."""
    axes = tuple(range(x.ndim - 1))
    std = np.sqrt(x.var(axis=axes) + config["eps"])
    return dy * params["gamma"], (x - x.mean(axis=axes)) / std, std


def _batch_norm_without_mean_terms(x, dy, params, config):
    """dx = dy * gamma / std: mu and var held constant."""
    dxhat, _, std = _batch_norm_parts(x, dy, params, config)
    return dxhat / std


def _batch_norm_without_variance_term(x, dy, params, config):
    """dx = (dxhat - mean(dxhat)) / std: var held constant."""
    dxhat, _, std = _batch_norm_parts(x, dy, params, config)
    return (dxhat - dxhat.mean(axis=tuple(range(x.ndim - 1)))) / std


BATCH_NORM_MISTAKES = [
    KnownMistake("mu and var treated as constants: their gradient terms are missing (your dx is "
                 "dy * gamma / std; mu and var depend on every x_m, which adds the two mean terms)",
                 _batch_norm_without_mean_terms),
    KnownMistake("var treated as a constant: its gradient term - xhat * mean(dxhat * xhat) is missing",
                 _batch_norm_without_variance_term),
]


MAX_POOL_MISTAKES = [
    KnownMistake("dy sent to every tied maximum of a window: on a tie give it to ONE cell (the first "
                 "in row-major order, as the starter says), so that each window's dx sums to its dy",
                 max_pool_to_every_tie),
    *MAX_POOL_TIE_MISTAKES,
]


EXERCISES = {exercise.name: exercise for exercise in [
    Exercise("dense_backward", "Dense: dW, db and dx of y = x @ W + b", "Dense", "dense",
             [Case("Dense(3) on (4,)", {"units": 3}, (4,), batch=3),
              Case("Dense(4) on (4,): square W", {"units": 4}, (4,), batch=3),
              Case("Dense(5) on (3,), batch of one", {"units": 5}, (3,), batch=1),
              Case("Dense(2) on (6,), batch 5", {"units": 2}, (6,), batch=5)],
             mistakes=DENSE_MISTAKES),
    Exercise("relu", "ReLU backward", "ReLU", "relu", _activation_cases()),
    Exercise("sigmoid", "sigmoid backward", "Sigmoid", "sigmoid", _activation_cases()),
    Exercise("tanh", "tanh backward", "Tanh", "tanh", _activation_cases()),
    Exercise("softmax_cross_entropy", "softmax cross-entropy from logits: stable forward, backward",
             "SoftmaxCrossEntropy", "cross_entropy",
             [Case("logits (4, 5)", {}, (5,), batch=4), Case("batch of one, 3 classes", {}, (3,), batch=1),
              Case("logits of size 1000 (overflow?)", {}, (6,), batch=3, input_kind="large",
                   gradcheck=False)],
             kind="loss", writes="both"),
    Exercise("conv_forward_loops", "Conv2D forward with loops (backward given)", "Conv2D", "conv",
             _conv_cases(), writes="forward"),
    Exercise("conv_backward_loops", "Conv2D backward with loops", "Conv2D", "conv", _conv_cases(),
             mistakes=CONV_MISTAKES),
    Exercise("conv_backward_im2col", "Conv2D backward as matrix products: col2im and dW, db, dx",
             "Conv2D", "conv", _conv_cases(), mistakes=CONV_MISTAKES),
    Exercise("max_pool", "MaxPool2D forward and backward (overlapping windows, ties)", "MaxPool2D",
             "max_pool", _pool_cases(), writes="both",
             mistakes=MAX_POOL_MISTAKES),
    Exercise("avg_pool", "AvgPool2D forward and backward", "AvgPool2D", "avg_pool", _pool_cases(),
             writes="both"),
    Exercise("dropout", "inverted dropout, forward and backward (the layer's generator, no np.random)",
             "Dropout", "dropout",
             [Case("rate 0.5, vectors", {"rate": 0.5}, (20,), batch=5, training=True),
              Case("rate 0.25, images", {"rate": 0.25}, (4, 4, 3), training=True),
              Case("inference: y = x", {"rate": 0.5}, (10,), batch=3, gradcheck=False)],
             writes="both"),
    Exercise("batch_norm_backward", "BatchNorm backward in training mode (the mean terms)", "BatchNorm",
             "batch_norm",
             [Case("vectors (N, 5)", {"momentum": 0.9, "eps": 1e-5}, (5,), batch=4, training=True),
              Case("images (N, 3, 3, 2)", {"momentum": 0.9, "eps": 1e-5}, (3, 3, 2), training=True),
              Case("batch of three, input x 1000", {"momentum": 0.9, "eps": 1e-5}, (3,), batch=3,
                   training=True, input_kind="large")],
             mistakes=BATCH_NORM_MISTAKES),
    Exercise("residual_block", "a residual block y = x + relu(x W1 + b1) W2 + b2: backward", "ResidualBlock",
             "residual",
             [Case("D = 4", {}, (4,), batch=3), Case("D = 6, batch of one", {}, (6,), batch=1),
              Case("D = 5, batch 5", {}, (5,), batch=5),
              Case("z == 0 exactly (a zero input row, b1 = 0)", {}, (4,), batch=3, input_kind="zeros")]),
]}
