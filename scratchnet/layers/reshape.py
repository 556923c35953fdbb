"""Reshaping layers."""

from __future__ import annotations

import numpy as np

from .base import Layer


class Flatten(Layer):
    """Flatten every sample to a vector.

    Shapes: x (N, d1, d2, ...) -> y (N, d1 * d2 * ...).
    Forward is a reshape; backward reshapes dy back to x's shape. No parameters.
    """

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x_shape": x.shape}
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        x_shape = self.cache.get("x_shape")
        expected = (x_shape[0], int(np.prod(x_shape[1:]))) if x_shape else ()
        dy = self.check_output_grad(dy, expected)
        return dy.reshape(x_shape)
