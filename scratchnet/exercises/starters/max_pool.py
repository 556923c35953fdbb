# scratchnet exercise: max_pool
# ruff: noqa: F401, F841  (names the starter gives you to use)
"""Exercise: max pooling, forward and backward.

Shapes (channels-last), pool size k, stride s (default k), no padding:
    x  (N, H, W, C)    y, dy  (N, OH, OW, C)    OH = (H - k) // s + 1,  OW = (W - k) // s + 1

Forward:   y[n, oh, ow, c] = max_{0 <= i, j < k} x[n, s*oh + i, s*ow + j, c]
           remember WHICH cell won (its (i, j) in the window) for backward.

Backward:  the max passes dy to the one cell that won, every other cell of the window gets 0:
           dx[n, h, w, c] = sum over the windows whose winner is (h, w) of dy[n, oh, ow, c]
           With overlapping windows (s < k) one cell can win several windows: ADD them up.
           On a tie, give the gradient to ONE cell (the first in row-major order).

Grade it with:   scratchnet exercise check max_pool.py
"""

import numpy as np

from scratchnet.layers import Layer


class MaxPool2D(Layer):
    def __init__(self, pool_size=2, stride=None, name=None):
        super().__init__(name=name)
        self.pool_size = pool_size
        self.stride = pool_size if stride is None else stride

    def get_config(self):
        return {"pool_size": self.pool_size, "stride": self.stride, **super().get_config()}

    def output_shape(self, input_shape):
        height, width, channels = input_shape
        k, s = self.pool_size, self.stride
        return ((height - k) // s + 1, (width - k) // s + 1, channels)

    def forward(self, x, training=False):
        x = self.check_input(x)
        # ---- your code: y of shape (N, OH, OW, C); save the winners in self.cache (a dict,
        # e.g. self.cache = {"x": x, "winners": ...}) ----
        raise NotImplementedError("max_pool: write the forward pass")

    def backward(self, dy):
        # ---- your code: return dx, shape (N, H, W, C) ----
        raise NotImplementedError("max_pool: write the backward pass")
