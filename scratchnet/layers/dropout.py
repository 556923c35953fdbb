"""Dropout (Srivastava et al., 2014), in its "inverted" form, and SpatialDropout2D.

Training mode, with drop rate p and a mask drawn once per forward pass:

    keep ~ Bernoulli(1 - p)           1 = keep, 0 = drop
    mask = keep / (1 - p)             scaled, so that E[mask] = 1 and E[y] = x
    y    = x * mask
    dx   = dy * mask                  (the same mask: it is cached for backward)

Because the scaling happens while training, inference needs nothing: y = x, dx = dy.
``Dropout`` draws one mask entry per value; ``SpatialDropout2D`` draws one per (sample,
channel) of an (N, H, W, C) batch and drops whole feature maps (Tompson et al., 2015): the
neighbouring pixels of a feature map are strongly correlated, so dropping single pixels
barely regularises a convolutional layer.

Randomness comes from ``self.random_generator()``, the generator the model hands every layer
(never NumPy's global state), so a seeded model draws the same masks every run and a saved
model resumes with the masks it would have drawn.
"""

from __future__ import annotations

import numpy as np

from ..option_checks import check_real
from .base import Layer
from .spatial import check_image_shape


class Dropout(Layer):
    """Inverted dropout: zero each value with probability ``rate``, scale the rest by 1/(1-rate).

    Shapes: x (N, ...) -> y (N, ...), same shape; mask (N, ...) (SpatialDropout2D: (N, 1, 1, C)).
    Forward (training): y = x * mask, mask = Bernoulli(1 - rate) / (1 - rate).
    Backward: dx = dy * mask.   Inference, or rate 0: y = x, dx = dy. No parameters.
    """

    def __init__(self, rate: float, name: str | None = None):
        super().__init__(name=name)
        self.rate = check_real(rate, "rate (the probability of dropping a value)", self.name,
                               least=0, below=1)

    def mask_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        """One random draw per value (SpatialDropout2D overrides: one per feature map)."""
        return x_shape

    def forward(self, x, training=False):
        x = self.check_input(x)
        if not training or self.rate == 0.0:
            self.cache = {"x_shape": x.shape, "mask": None}
            return x
        draw_dtype = self.dtype if self.dtype in (np.float32, np.float64) else np.float64  # what NumPy draws
        uniform = self.random_generator().random(self.mask_shape(x.shape), dtype=draw_dtype)  # U[0, 1)
        # keep with probability P(u >= rate) = 1 - rate; scaled so that E[mask] = 1
        mask = (uniform >= self.rate).astype(self.dtype) * (1.0 / (1.0 - self.rate))
        self.cache = {"x_shape": x.shape, "mask": mask}
        return x * mask

    def backward(self, dy):
        dy = self.check_output_grad(dy, self.cache.get("x_shape", ()))
        mask = self.cache["mask"]
        return dy if mask is None else dy * mask

    def get_config(self):
        return {"rate": self.rate, **super().get_config()}


class SpatialDropout2D(Dropout):
    """Dropout of whole channels: every (sample, channel) feature map is kept or zeroed at once.

    Shapes: x (N, H, W, C) -> y (N, H, W, C); mask (N, 1, 1, C), broadcast over H and W.
    Forward (training): y[n, :, :, c] = x[n, :, :, c] * mask[n, c],
    mask = Bernoulli(1 - rate) / (1 - rate).   Backward: dx = dy * mask.
    """

    def output_shape(self, input_shape):
        check_image_shape(input_shape, self.name)
        return tuple(input_shape)

    def mask_shape(self, x_shape):
        return (x_shape[0], 1, 1, x_shape[3])
