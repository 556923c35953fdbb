"""Lesson 2: write your own layer and let the gradient checker grade it.

Run:  python tutorials/02_write_your_own_layer.py

The layer below is a learnable per-feature scale followed by a softplus:
    y = softplus(a * x) = log(1 + exp(a * x))          a: (D,)  x, y: (N, D)
Its derivatives, with s = sigmoid(a * x) = softplus'(a * x):
    dx = dy * s * a
    da = sum over the batch of dy * s * x
Try breaking the backward (drop the "* a", say) and run again: the check fails and its
table shows which array is wrong.
"""

import numpy as np
from scipy.special import expit

from scratchnet.gradcheck import check_layer
from scratchnet.layers import Layer


class ScaledSoftplus(Layer):
    """y = log(1 + exp(a * x)), one learnable scale a per feature."""

    def init_params(self, input_shape, rng):
        return {"a": rng.uniform(0.5, 1.5, size=input_shape)}

    def forward(self, x, training=False):
        x = self.check_input(x)                       # shape and dtype checked, named errors
        ax = self.params["a"] * x
        self.cache = {"x": x, "s": expit(ax)}         # what backward needs
        return np.logaddexp(0, ax)                    # log(1 + e^ax) without overflow

    def backward(self, dy):
        x, s = self.cache["x"], self.cache["s"]
        self.grads["a"] = (dy * s * x).sum(axis=0)    # da: gradients only, no update here
        return dy * s * self.params["a"]              # dx


report = check_layer(ScaledSoftplus(), (5,))
print(report)
print("\nYour layer is", "correct." if report.passed else "wrong somewhere: see the table.")
