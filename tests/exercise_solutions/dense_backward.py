# scratchnet exercise: dense_backward
# ruff: noqa: F401, F841  (names the starter gives you to use)
"""Exercise: the backward pass of a fully connected layer.

Forward (given):   y = x @ W + b

Shapes:  x (N, D)   W (D, U)   b (U,)   y (N, U)   dy = dL/dy (N, U)

Derive with the chain rule (the loss depends on W through every sample n of the batch):

    dW[d, u] = sum_n x[n, d] * dy[n, u]        dW = ?    shape (D, U), like W
    db[u]    = sum_n dy[n, u]                  db = ?    shape (U,), like b (no keepdims)
    dx[n, d] = sum_u dy[n, u] * W[d, u]        dx = ?    shape (N, D), like x

Rules: fill self.grads["W"] and self.grads["b"], return dx; never change self.params (the
optimizer does that). Grade it with:   scratchnet exercise check dense_backward.py
"""

import numpy as np

from scratchnet.layers import Layer


class Dense(Layer):
    def __init__(self, units, name=None):
        super().__init__(name=name)
        self.units = units

    def get_config(self):
        return {"units": self.units, **super().get_config()}

    def output_shape(self, input_shape):
        return (self.units,)

    def init_params(self, input_shape, rng):
        (fan_in,) = input_shape
        return {"W": rng.normal(0, 1 / np.sqrt(fan_in), size=(fan_in, self.units)),
                "b": rng.normal(0, 0.1, size=self.units)}

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x": x}
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy):
        x, W = self.cache["x"], self.params["W"]
        self.grads["W"] = x.T @ dy
        self.grads["b"] = dy.sum(axis=0)
        return dy @ W.T
