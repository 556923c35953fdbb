"""UpSampling2D: nearest-neighbour enlargement of images by an integer factor."""

from __future__ import annotations

import numpy as np

from .base import Layer
from .spatial import as_pair, check_image_shape


class UpSampling2D(Layer):
    """Repeat every pixel ``sh`` times down and ``sw`` times across (nearest neighbour).

    Shapes: x (N, H, W, C) -> y (N, H*sh, W*sw, C). ``size``: an int s (= (s, s)) or (sh, sw).
    No parameters.
    Forward:  y[n, i, j, c] = x[n, floor(i / sh), floor(j / sw), c]
    Backward: each input pixel was copied into one sh x sw block, so its gradient is the sum of
              that block:  dx[n, a, b, c] = sum_{p < sh, q < sw} dy[n, a*sh + p, b*sw + q, c].
    """

    def __init__(self, size=2, name: str | None = None):
        super().__init__(name=name)
        self.size = as_pair(size, "size", self.name)

    def output_shape(self, input_shape):
        check_image_shape(input_shape, self.name)
        height, width, channels = input_shape
        return (height * self.size[0], width * self.size[1], channels)

    def forward(self, x, training=False):
        x = self.check_input(x)
        n, height, width, channels = x.shape
        sh, sw = self.size
        self.cache = {"x_shape": x.shape}
        # view x as (N, H, 1, W, 1, C), broadcast to (N, H, sh, W, sw, C): block (a, b) holds x[a, b]
        blocks = np.broadcast_to(x[:, :, None, :, None, :], (n, height, sh, width, sw, channels))
        return blocks.reshape(n, height * sh, width * sw, channels)

    def backward(self, dy):
        x_shape = self.cache.get("x_shape")
        expected = (x_shape[0], *self.output_shape(x_shape[1:])) if x_shape else ()
        dy = self.check_output_grad(dy, expected)
        n, height, width, channels = x_shape
        sh, sw = self.size
        return dy.reshape(n, height, sh, width, sw, channels).sum(axis=(2, 4))  # sum of each block

    def get_config(self):
        return {"size": self.size, **super().get_config()}
