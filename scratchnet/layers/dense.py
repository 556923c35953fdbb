"""Fully connected layer."""

from __future__ import annotations

import numpy as np

from ..initializers import check_initializer_name, check_use_bias, initialize
from .activations import ACTIVATIONS, OUTPUT_ONLY_DERIVATIVES, check_activation_name
from .base import Layer
from .spatial import positive_int


class Dense(Layer):
    """y = f(x @ W + b)

    Shapes
    ------
    x  (N, D_in)       W  (D_in, units)       b  (units,)
    z  (N, units)      y  (N, units)          f  the activation ("linear" if None)

    Backward, with dz = dy * f'(z) (softmax: its Jacobian-vector product, see activations.py):
        dW = x^T @ dz          (D_in, units)
        db = sum_n dz[n]       (units,)
        dx = dz @ W^T          (N, D_in)
    """

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 kernel_initializer: str = "glorot_uniform", name: str | None = None):
        super().__init__(name=name)
        self.units = positive_int(units, "units", self.name)
        self.activation = check_activation_name(activation, self.name)
        self.use_bias = check_use_bias(use_bias, self.name)
        self.kernel_initializer = check_initializer_name(kernel_initializer, self.name)

    def output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.name}: expected flat samples of shape (D,), got {tuple(input_shape)}; "
                "put a Flatten() layer before Dense"
            )
        return (self.units,)

    def init_params(self, input_shape, rng):
        (fan_in,) = input_shape
        params = {"W": initialize(self.kernel_initializer, (fan_in, self.units), rng)}
        if self.use_bias:
            params["b"] = np.zeros(self.units)
        return params

    def forward(self, x, training=False):
        x = self.check_input(x)
        z = x @ self.params["W"]
        if self.use_bias:
            z += self.params["b"]
        activation, _ = ACTIVATIONS[self.activation]
        y = activation(z).astype(self.dtype, copy=False)
        # z only if the activation's derivative needs it (relu's reads y): one array less kept
        self.cache = {"x": x, "z": None if self.activation in OUTPUT_ONLY_DERIVATIVES else z, "y": y}
        return y

    def backward(self, dy):
        dy = self.check_output_grad(dy, self.cache["y"].shape if self.cache else ())
        x, z, y = self.cache["x"], self.cache["z"], self.cache["y"]
        _, derivative = ACTIVATIONS[self.activation]
        dz = derivative(z, y, dy).astype(self.dtype, copy=False)
        self.grads["W"] = x.T @ dz
        if self.use_bias:
            self.grads["b"] = dz.sum(axis=0)
        return dz @ self.params["W"].T

    def get_config(self):
        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, **super().get_config()}
