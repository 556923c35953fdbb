# scratchnet exercise: relu
# ruff: noqa: F401, F841  (names the starter gives you to use)
"""Exercise: the backward pass of ReLU.

Forward (given):   y = max(x, 0)        element-wise; x, y, dy, dx all of shape (N, ...)

Derive:  dy/dx = 1 where x > 0, 0 where x < 0 (take 0 at x == 0), so

    dx = ?      (element-wise, the same shape as x)

Rules: return dx; do not modify dy in place (the layer below needs it unchanged).
Grade it with:   scratchnet exercise check relu.py
"""

import numpy as np

from scratchnet.layers import Layer


class ReLU(Layer):
    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x": x}
        return np.maximum(x, 0)

    def backward(self, dy):
        x = self.cache["x"]
        # ---- your code: return dx ----
        raise NotImplementedError("relu: write the backward pass")
