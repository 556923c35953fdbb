"""digit_cnn: a compact conv-BatchNorm-ReLU network sized for 28x28 digits (the default of
``scratchnet train`` on MNIST; see benchmarks/time_to_accuracy.py for how it was chosen)."""

from __future__ import annotations

from .. import layers as L
from ..model import Sequential
from ..option_checks import is_int
from .classic import conv_bn_relu, logits_layer


def digit_cnn(input_shape=(28, 28, 1), n_classes: int = 10, seed: int | None = 0, dtype="float32",
              backend: str = "auto", widths=(16, 32, 64), dropout: float = 0.0) -> Sequential:
    """Three conv-BN-ReLU-pool stages of 16, 32, 64 channels, then one dense layer to the logits.

    ==========================  =========================  ==============
    layer                       output (for 28x28x1)        parameters
    ==========================  =========================  ==============
    Conv2D 16, 3x3, no bias     28 x 28 x 16                144
    BatchNorm, ReLU, MaxPool 2  14 x 14 x 16                32
    Conv2D 32, 3x3, no bias     14 x 14 x 32                4,608
    BatchNorm, ReLU, MaxPool 2  7 x 7 x 32                  64
    Conv2D 64, 3x3, no bias     7 x 7 x 64                  18,432
    BatchNorm, ReLU, MaxPool 2  3 x 3 x 64                  128
    Flatten                     576
    Dense n_classes             10 (logits)                 5,770
    ==========================  =========================  ==============

    29,178 parameters, about 2 million multiply-adds per image (LeNet-5: 61,706 and 0.4 million;
    small_cnn_bn: 421,738 and 4.2 million). Each stage doubles the channels while pooling halves
    the size, so every convolution costs about the same; the last pool (7 -> 3, floor) keeps the
    classifier small. ``widths`` sets the three channel counts; ``dropout`` > 0 adds a Dropout
    layer before the logits. Convolutions as in ``conv_bn_relu`` (3x3, padding 1, no bias,
    He-normal).
    """
    widths_message = f"digit_cnn: widths must be three ints >= 1, got {widths!r}"
    values = list(widths) if hasattr(widths, "__iter__") else [widths]
    if not all(is_int(width) for width in values):
        raise TypeError(widths_message)
    if len(values) != 3 or min(values) < 1:
        raise ValueError(widths_message)
    layers = []
    for filters in values:
        layers += [*conv_bn_relu(int(filters), backend=backend), L.MaxPool2D(2)]
    layers.append(L.Flatten())
    if dropout:
        layers.append(L.Dropout(dropout))
    layers.append(logits_layer(n_classes, "digit_cnn"))
    return Sequential(layers, input_shape=input_shape, seed=seed, dtype=dtype, name="digit_cnn").build()
