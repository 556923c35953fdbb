"""Lesson 1: backpropagation through one Dense layer, by hand and by the library.

Run:  python tutorials/01_backprop_by_hand.py

A Dense layer computes  z = x @ W + b,  y = tanh(z).  For a scalar loss L with dL/dy = dy:
    dz = dy * (1 - y^2)        tanh'(z) = 1 - tanh(z)^2
    dW = x^T @ dz              each weight W[i, j] touched x[:, i] on its way to z[:, j]
    db = sum over the batch of dz
    dx = dz @ W^T              what flows back to the layer before
We compute these with NumPy, compare with scratchnet's Dense.backward, and then let
scratchnet.gradcheck compare both with central differences.
"""

import numpy as np

from scratchnet.gradcheck import check_layer
from scratchnet.layers import Dense

rng = np.random.default_rng(0)
layer = Dense(3, activation="tanh")
layer.build((4,), rng=rng, dtype="float64")   # W: (4, 3), b: (3,)

x = rng.normal(size=(2, 4))                    # a batch of 2 samples
y = layer.forward(x)                           # (2, 3)
dy = rng.normal(size=y.shape)                  # pretend this came from the loss

# --- by hand -------------------------------------------------------------
W, b = layer.params["W"], layer.params["b"]
z = x @ W + b
dz = dy * (1 - np.tanh(z) ** 2)
dW_by_hand = x.T @ dz
db_by_hand = dz.sum(axis=0)
dx_by_hand = dz @ W.T

# --- by the library ------------------------------------------------------
dx = layer.backward(dy)
print("dx matches:", np.allclose(dx, dx_by_hand))
print("dW matches:", np.allclose(layer.grads["W"], dW_by_hand))
print("db matches:", np.allclose(layer.grads["b"], db_by_hand))

# --- and against numerical derivatives ------------------------------------
print()
print(check_layer(Dense(3, activation="tanh"), (4,)))
