# scratchnet exercise: dropout
# ruff: noqa: F401, F841  (names the starter gives you to use)
"""Exercise: inverted dropout, forward and backward.

Shapes: x, y, dy, dx all (N, ...). rate = the probability of dropping a unit (0 <= rate < 1).

Training (training=True):
    mask = (u >= rate)   with u uniform in [0, 1), drawn from self.random_generator()
                         (never np.random: the model seeds it, the checker resets it)
    y    = x * mask / (1 - rate)          (kept units are scaled up, so E[y] = x)
Inference (training=False):
    y    = x                              (no randomness at all)

Backward (after a training forward): derive dx = ?   (the SAME mask as forward: keep it in self.cache, a dict)

Grade it with:   scratchnet exercise check dropout.py
"""

import numpy as np

from scratchnet.layers import Layer


class Dropout(Layer):
    def __init__(self, rate=0.5, name=None):
        super().__init__(name=name)
        self.rate = rate

    def get_config(self):
        return {"rate": self.rate, **super().get_config()}

    def forward(self, x, training=False):
        x = self.check_input(x)
        # ---- your code: y (and self.cache for backward: a dict, e.g. self.cache = {"mask": mask}) ----
        raise NotImplementedError("dropout: write the forward pass")

    def backward(self, dy):
        # ---- your code: return dx ----
        raise NotImplementedError("dropout: write the backward pass")
