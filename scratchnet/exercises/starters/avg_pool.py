# scratchnet exercise: avg_pool
# ruff: noqa: F401, F841  (names the starter gives you to use)
"""Exercise: average pooling, forward and backward.

Shapes (channels-last), pool size k, stride s (default k), no padding:
    x  (N, H, W, C)    y, dy  (N, OH, OW, C)    OH = (H - k) // s + 1,  OW = (W - k) // s + 1

Forward:   y[n, oh, ow, c] = (1 / k^2) sum_{0 <= i, j < k} x[n, s*oh + i, s*ow + j, c]

Backward:  every cell of a window receives dy / k^2 from that window:
           dx[n, h, w, c] = sum over the windows containing (h, w) of dy[n, oh, ow, c] / k^2
           (windows overlap when s < k: ADD the shares; cells no window covers get 0)

Grade it with:   scratchnet exercise check avg_pool.py
"""

import numpy as np

from scratchnet.layers import Layer


class AvgPool2D(Layer):
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
        # ---- your code: y of shape (N, OH, OW, C); keep what backward needs in self.cache (a dict,
        # e.g. self.cache = {"x": x}) ----
        raise NotImplementedError("avg_pool: write the forward pass")

    def backward(self, dy):
        # ---- your code: return dx, shape (N, H, W, C) ----
        raise NotImplementedError("avg_pool: write the backward pass")
