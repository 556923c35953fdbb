# scratchnet exercise: residual_block
# ruff: noqa: F401, F841  (names the starter gives you to use)
"""Exercise: the backward pass of a residual block  y = x + F(x).

Shapes: x, y, dy, dx (N, D);  W1, W2 (D, D);  b1, b2 (D,).

Forward (given):
    z = x @ W1 + b1          h = relu(z)          y = x + h @ W2 + b2
                                                      ^ the skip connection
    relu'(z) = 1 where z > 0, 0 where z < 0 (take 0 at z == 0)

Backward: derive, in this order (the skip path and the block path both reach x):
    dW2 = ?    db2 = ?    dh = ?    dz = ?    dW1 = ?    db1 = ?
    dx  = ?    (two terms: through the block, and straight through the skip)

Grade it with:   scratchnet exercise check residual_block.py
"""

import numpy as np

from scratchnet.layers import Layer


class ResidualBlock(Layer):
    def output_shape(self, input_shape):
        return tuple(input_shape)

    def init_params(self, input_shape, rng):
        (d,) = input_shape
        return {"W1": rng.normal(0, 1 / np.sqrt(d), (d, d)), "b1": rng.normal(0, 0.1, d),
                "W2": rng.normal(0, 1 / np.sqrt(d), (d, d)), "b2": rng.normal(0, 0.1, d)}

    def forward(self, x, training=False):
        x = self.check_input(x)
        z = x @ self.params["W1"] + self.params["b1"]
        h = np.maximum(z, 0)
        self.cache = {"x": x, "z": z, "h": h}
        return x + h @ self.params["W2"] + self.params["b2"]

    def backward(self, dy):
        x, z, h = self.cache["x"], self.cache["z"], self.cache["h"]
        W1, W2 = self.params["W1"], self.params["W2"]
        self.grads["W2"] = h.T @ dy
        self.grads["b2"] = dy.sum(axis=0)
        dh = dy @ W2.T
        dz = dh * (z > 0)
        self.grads["W1"] = x.T @ dz
        self.grads["b1"] = dz.sum(axis=0)
        return dz @ W1.T + dy
