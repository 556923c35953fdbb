"""Reshaping layers."""

from __future__ import annotations

import math

import numpy as np

from .base import Layer
from .spatial import positive_int


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
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # not -1: an empty batch has no -1

    def backward(self, dy):
        x_shape = self.cache.get("x_shape")
        expected = (x_shape[0], int(np.prod(x_shape[1:]))) if x_shape else ()
        dy = self.check_output_grad(dy, expected)
        return dy.reshape(x_shape)


class ChannelShuffle(Layer):
    """Interleave the channels of ``groups`` groups (ShuffleNet, Zhang et al. 2018).

    Shapes: x (N, ..., C) -> y (N, ..., C), C divisible by g = groups. No parameters.
    Forward: view the C channels as a (g, C/g) table (row a = group a), transpose it to
    (C/g, g) and read it out again:

        y[..., b*g + a] = x[..., a*(C/g) + b]        a < g, b < C/g

    so the next grouped convolution sees one channel of every group (C = 6, g = 2: channel
    order [0, 3, 1, 4, 2, 5]). A permutation of channels: backward applies the inverse one,
    i.e. the same shuffle with the roles of g and C/g swapped.
    """

    def __init__(self, groups: int, name: str | None = None):
        super().__init__(name=name)
        self.groups = positive_int(groups, "groups", self.name)

    def output_shape(self, input_shape):
        channels = input_shape[-1]
        if channels % self.groups:
            raise ValueError(f"{self.name}: groups={self.groups} must divide the number of channels "
                             f"(last axis), got {channels} channels in input shape {tuple(input_shape)}")
        return tuple(input_shape)

    @staticmethod
    def shuffle(x, rows: int, columns: int) -> np.ndarray:
        """Read the last axis of ``x`` as a (rows, columns) table and transpose it."""
        lead = x.shape[:-1]
        return x.reshape(*lead, rows, columns).swapaxes(-1, -2).reshape(*lead, rows * columns)

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x_shape": x.shape}
        return self.shuffle(x, self.groups, x.shape[-1] // self.groups)

    def backward(self, dy):
        dy = self.check_output_grad(dy, self.cache.get("x_shape", ()))
        return self.shuffle(dy, dy.shape[-1] // self.groups, self.groups)  # the inverse permutation

    def get_config(self):
        return {"groups": self.groups, **super().get_config()}
