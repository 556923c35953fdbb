# scratchnet exercise: conv_forward_loops
# ruff: noqa: F401, F841  (names the starter gives you to use)
"""Exercise: the forward pass of a 2-D convolution, with plain loops.

Shapes (channels-last):
    x   (N, H, W, C)     W  (kh, kw, C, F)     b  (F,)
    xp  x with `padding` zeros on each side of H and W: (N, H + 2p, W + 2p, C)
    y   (N, OH, OW, F)   OH = (H + 2p - kh) // s + 1,   OW = (W + 2p - kw) // s + 1

Forward (a cross-correlation, which deep learning calls convolution: the kernel is NOT flipped):

    y[n, oh, ow, f] = b[f] + sum_{i, j, c} xp[n, s*oh + i, s*ow + j, c] * W[i, j, c, f]

Write it with one loop per output index (n, oh, ow, f) and the sum over (i, j, c) as
np.sum(window * W[:, :, :, f]). The backward is given, imported from scratchnet's loop kernels
(writing it is the next exercise, conv_backward_loops).
Grade it with:   scratchnet exercise check conv_forward_loops.py
"""

import numpy as np

from scratchnet.kernels.loops import conv2d_backward
from scratchnet.kernels.padding import unpadded
from scratchnet.layers import Layer


class Conv2D(Layer):
    def __init__(self, filters, kernel_size, stride=1, padding=0, name=None):
        super().__init__(name=name)
        self.filters = filters
        self.kernel_size = (kernel_size, kernel_size) if np.isscalar(kernel_size) else tuple(kernel_size)
        self.stride, self.padding = stride, padding

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, **super().get_config()}

    def output_shape(self, input_shape):
        height, width, _ = input_shape
        (kh, kw), s, p = self.kernel_size, self.stride, self.padding
        return ((height + 2 * p - kh) // s + 1, (width + 2 * p - kw) // s + 1, self.filters)

    def init_params(self, input_shape, rng):
        kh, kw = self.kernel_size
        fan_in = kh * kw * input_shape[2]
        return {"W": rng.normal(0, 1 / np.sqrt(fan_in), size=(kh, kw, input_shape[2], self.filters)),
                "b": rng.normal(0, 0.1, size=self.filters)}

    def forward(self, x, training=False):
        x = self.check_input(x)
        p = self.padding
        xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        self.cache = {"xp": xp}
        W, b = self.params["W"], self.params["b"]
        # ---- your code: y of shape (N, OH, OW, F) ----
        raise NotImplementedError("conv_forward_loops: write the forward pass")

    def backward(self, dy):
        """Given: scratchnet's loop kernel (scratchnet/kernels/loops.py). Writing it is the next
        exercise, conv_backward_loops: do that one before reading the kernel."""
        xp, (s, p) = self.cache["xp"], (self.stride, self.padding)
        dxp, self.grads["W"], self.grads["b"] = conv2d_backward(xp, self.params["W"], dy, stride=(s, s))
        return unpadded(dxp, ((p, p), (p, p)))
