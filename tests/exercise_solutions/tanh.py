# scratchnet exercise: tanh
# ruff: noqa: F401, F841  (names the starter gives you to use)
"""Exercise: the backward pass of tanh.

Forward (given):   y = tanh(x)      element-wise, shapes (N, ...)

Derive tanh'(x) and write it with y:

    dx = dy * tanh'(x) = ?

Grade it with:   scratchnet exercise check tanh.py
"""

import numpy as np

from scratchnet.layers import Layer


class Tanh(Layer):
    def forward(self, x, training=False):
        x = self.check_input(x)
        y = np.tanh(x)
        self.cache = {"x": x, "y": y}
        return y

    def backward(self, dy):
        x, y = self.cache["x"], self.cache["y"]
        return dy * (1 - y * y)
