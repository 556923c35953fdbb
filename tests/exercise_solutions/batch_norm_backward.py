# scratchnet exercise: batch_norm_backward
# ruff: noqa: F401, F841  (names the starter gives you to use)
"""Exercise: the backward pass of batch normalization (training mode).

Shapes: x, y, dy, dx  (N, ..., C): statistics are taken over every axis but the last, M cells
per channel (M = N for vectors (N, C), M = N*H*W for images).  gamma, beta, mean, var: (C,).

Forward (given, training=True):
    mu   = (1/M) sum_m x_m                 var = (1/M) sum_m (x_m - mu)^2      (biased)
    xhat = (x - mu) / sqrt(var + eps)      y   = gamma * xhat + beta
    (the running buffers mean/var are updated with momentum; inference uses them instead)

Backward: derive (sums over the M cells of each channel; mu and var depend on EVERY x_m):
    dbeta  = ?                             dgamma = ?                          shapes (C,)
    dxhat  = dy * gamma
    dx     = (1 / sqrt(var + eps)) * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
             -- derive it: the two mean terms come from mu and var. Shape of x.

Grade it with:   scratchnet exercise check batch_norm_backward.py
"""

import numpy as np

from scratchnet.layers import Layer


class BatchNorm(Layer):
    def __init__(self, momentum=0.9, eps=1e-5, name=None):
        super().__init__(name=name)
        self.momentum, self.eps = momentum, eps

    def get_config(self):
        return {"momentum": self.momentum, "eps": self.eps, **super().get_config()}

    def init_params(self, input_shape, rng):
        channels = input_shape[-1]
        self.buffers = {"mean": np.zeros(channels), "var": np.ones(channels)}
        return {"gamma": 1 + 0.1 * rng.standard_normal(channels), "beta": 0.1 * rng.standard_normal(channels)}

    def forward(self, x, training=False):
        x = self.check_input(x)
        axes = tuple(range(x.ndim - 1))
        if training:
            mu, var = x.mean(axis=axes), x.var(axis=axes)
            m = self.momentum
            self.buffers["mean"] = m * self.buffers["mean"] + (1 - m) * mu
            self.buffers["var"] = m * self.buffers["var"] + (1 - m) * var
        else:
            mu, var = self.buffers["mean"], self.buffers["var"]
        std = np.sqrt(var + self.eps)
        xhat = (x - mu) / std
        self.cache = {"xhat": xhat, "std": std}
        return self.params["gamma"] * xhat + self.params["beta"]

    def backward(self, dy):
        xhat, std, gamma = self.cache["xhat"], self.cache["std"], self.params["gamma"]
        axes = tuple(range(dy.ndim - 1))
        self.grads["beta"] = dy.sum(axis=axes)
        self.grads["gamma"] = (dy * xhat).sum(axis=axes)
        dxhat = dy * gamma
        return (dxhat - dxhat.mean(axis=axes) - xhat * (dxhat * xhat).mean(axis=axes)) / std
