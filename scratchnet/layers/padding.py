"""ZeroPadding2D: a border of zeros around every image."""

from __future__ import annotations

from .base import Layer
from .spatial import check_image_shape, crop_spatial, explicit_pads, pad_spatial


class ZeroPadding2D(Layer):
    """Add rows and columns of zeros around each image.

    Shapes: x (N, H, W, C) -> y (N, top + H + bottom, left + W + right, C). No parameters.
    ``padding``: p (p on every side), (ph, pw) (ph top and bottom, pw left and right) or
    ((top, bottom), (left, right)).
    Forward:  y[:, top + i, left + j, :] = x[:, i, j, :], zeros elsewhere.
    Backward: the zeros depend on nothing, so dx is the interior of dy (a crop):
              dx[:, i, j, :] = dy[:, top + i, left + j, :].
    """

    def __init__(self, padding=1, name: str | None = None):
        super().__init__(name=name)
        self.padding = explicit_pads(padding)
        if self.padding is None:
            raise ValueError(f"{self.name}: padding must be a non-negative int p, a pair (ph, pw) or "
                             f"((top, bottom), (left, right)), got {padding!r}")

    def output_shape(self, input_shape):
        check_image_shape(input_shape, self.name)
        (top, bottom), (left, right) = self.padding
        height, width, channels = input_shape
        return (top + height + bottom, left + width + right, channels)

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x_shape": x.shape}
        return pad_spatial(x, self.padding, 0.0)  # x itself when the padding is all zeros

    def backward(self, dy):
        x_shape = self.cache.get("x_shape")
        expected = (x_shape[0], *self.output_shape(x_shape[1:])) if x_shape else ()
        dy = self.check_output_grad(dy, expected)
        return crop_spatial(dy, self.padding, x_shape[1:3])

    def get_config(self):
        return {"padding": self.padding, **super().get_config()}
