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
        k, s = self.pool_size, self.stride
        n_batch, height, width, channels = x.shape
        out_h, out_w, _ = self.output_shape(x.shape[1:])
        y = np.zeros((n_batch, out_h, out_w, channels), dtype=x.dtype)
        winner = np.zeros((n_batch, out_h, out_w, channels), dtype=int)
        for oh in range(out_h):
            for ow in range(out_w):
                window = x[:, s * oh:s * oh + k, s * ow:s * ow + k, :].reshape(n_batch, k * k, channels)
                winner[:, oh, ow, :] = window.argmax(axis=1)
                y[:, oh, ow, :] = window.max(axis=1)
        self.cache = {"winner": winner, "x_shape": x.shape}
        return y

    def backward(self, dy):
        k, s = self.pool_size, self.stride
        winner, x_shape = self.cache["winner"], self.cache["x_shape"]
        dx = np.zeros(x_shape, dtype=dy.dtype)
        n_batch, out_h, out_w, channels = dy.shape
        for n in range(n_batch):
            for oh in range(out_h):
                for ow in range(out_w):
                    for c in range(channels):
                        i, j = divmod(int(winner[n, oh, ow, c]), k)
                        dx[n, s * oh + i, s * ow + j, c] += dy[n, oh, ow, c]
        return dx
