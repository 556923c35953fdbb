# scratchnet exercise: conv_backward_im2col
# ruff: noqa: F401, F841  (names the starter gives you to use)
"""Exercise: the backward pass of a 2-D convolution as matrix products (im2col / col2im).

Shapes (channels-last), P = N * OH * OW output positions, K = kh * kw * C:
    xp    (N, Hp, Wp, C)   the padded input          W  (kh, kw, C, F)    b  (F,)
    cols  (P, K)           row (n, oh, ow) = the window xp[n, s*oh:s*oh+kh, s*ow:s*ow+kw, :] flattened
    Wm    (K, F)           W.reshape(K, F)
    y     = (cols @ Wm + b).reshape(N, OH, OW, F)          (given: forward)

Backward, with dym = dy.reshape(P, F):

    dWm   = ?   (K, F)  -> dW = dWm.reshape(W.shape)
    db    = ?   (F,)
    dcols = ?   (P, K)  the gradient of every window copy
    dxp   = col2im(dcols, ...): every row of dcols is ADDED back onto the window it came from.
            Windows overlap when s < k: a cell inside several windows receives the sum.
    dx    = dxp with the padding cropped off.

Write col2im (the inverse scatter of im2col, with +=) and backward.
Grade it with:   scratchnet exercise check conv_backward_im2col.py
"""

import numpy as np

from scratchnet.layers import Layer


def im2col(xp, kernel_size, stride):
    """(N, Hp, Wp, C) -> (N*OH*OW, kh*kw*C): one flattened window per row (given)."""
    (kh, kw), s = kernel_size, stride
    n_batch, height, width, channels = xp.shape
    out_h, out_w = (height - kh) // s + 1, (width - kw) // s + 1
    cols = np.empty((n_batch, out_h, out_w, kh, kw, channels), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = xp[:, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s, :]
    return cols.reshape(n_batch * out_h * out_w, kh * kw * channels)


def col2im(dcols, padded_shape, kernel_size, stride):
    """(N*OH*OW, kh*kw*C) -> (N, Hp, Wp, C): add every row back onto its window."""
    # ---- your code ----
    raise NotImplementedError("conv_backward_im2col: write col2im")


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
        cols = im2col(xp, self.kernel_size, self.stride)
        out_h, out_w, filters = self.output_shape(x.shape[1:])
        W = self.params["W"]
        y = cols @ W.reshape(-1, filters) + self.params["b"]
        self.cache = {"cols": cols, "padded_shape": xp.shape}
        return y.reshape(x.shape[0], out_h, out_w, filters)

    def backward(self, dy):
        cols, padded_shape, W = self.cache["cols"], self.cache["padded_shape"], self.params["W"]
        p = self.padding
        # ---- your code: fill self.grads["W"] and self.grads["b"], return dx ----
        raise NotImplementedError("conv_backward_im2col: write the backward pass")
