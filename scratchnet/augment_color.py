"""Colour augmentation for RGB batches (N, H, W, 3): ColorJitter and RandomGrayscale.

Called as ``x, y = transform(x, y, rng)`` like every transform in ``scratchnet.augment``. The
formulas are torchvision's, one random factor per image:

    gray(x)     = 0.2989 R + 0.587 G + 0.114 B                         (N, H, W)
    brightness  x = b x                                                b ~ U[max(0, 1 - B), 1 + B]
    contrast    x = c x + (1 - c) mean_{h,w}(gray(x))                  c ~ U[max(0, 1 - C), 1 + C]
    saturation  x = s x + (1 - s) gray(x)                              s ~ U[max(0, 1 - S), 1 + S]
    hue         h = (h + d) mod 1 in HSV space                         d ~ U[-Hu, Hu], Hu <= 0.5

applied in this fixed order (torchvision shuffles the order per call), each result clipped to
``value_range`` (default (0, 1): apply colour transforms before standardising; None: no clip).
"""

from __future__ import annotations

import numpy as np

from .augment import _probability, check_batch
from .option_checks import check_real

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _rgb(x, who):
    if x.shape[3] != 3:
        raise ValueError(f"{who}: expected RGB images (N, H, W, 3), got {x.shape[3]} channels")


def grayscale(x: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> (N, H, W): 0.2989 R + 0.587 G + 0.114 B."""
    red, green, blue = (x.dtype.type(w) for w in GRAY_WEIGHTS)
    return red * x[..., 0] + green * x[..., 1] + blue * x[..., 2]


def rgb_to_hsv(x: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 1] -> (..., 3) HSV, each in [0, 1] (hue as a fraction of a turn).

        v = max(R, G, B),  d = v - min(R, G, B),  s = d / v,
        6 h = (G - B) / d        if v = R      (mod 6)
              2 + (B - R) / d    if v = G
              4 + (R - G) / d    otherwise            (h = 0 for grays, d = 0)
    """
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v = np.maximum(np.maximum(r, g), b)
    spread = v - np.minimum(np.minimum(r, g), b)
    d = np.where(spread > 0, spread, 1)
    h = np.where(v == r, (g - b) / d, np.where(v == g, 2 + (b - r) / d, 4 + (r - g) / d))
    h = np.where(spread > 0, h / 6 % 1.0, 0)
    return np.stack([h, spread / np.where(v > 0, v, 1), v], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """(..., 3) HSV -> RGB, the closed form of the six hue sectors: for channel offsets
    m = 5 (R), 3 (G), 1 (B),  k = (m + 6 h) mod 6,  channel = v (1 - s clip(min(k, 4 - k), 0, 1))."""
    h, s, v = hsv[..., 0:1], hsv[..., 1:2], hsv[..., 2:3]
    k = (np.array([5.0, 3.0, 1.0], dtype=hsv.dtype) + 6 * h) % 6                # (..., 3)
    return v * (1 - s * np.clip(np.minimum(k, 4 - k), 0, 1))


class ColorJitter:
    """Random brightness, contrast, saturation and hue per image (see the module docstring)."""

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0, value_range=(0.0, 1.0)):
        self.brightness = check_real(brightness, "brightness", "ColorJitter", least=0)
        self.contrast = check_real(contrast, "contrast", "ColorJitter", least=0)
        self.saturation = check_real(saturation, "saturation", "ColorJitter", least=0)
        self.hue = check_real(hue, "hue", "ColorJitter", least=0, most=0.5)
        self.value_range = None if value_range is None else self._checked_range(value_range)

    @staticmethod
    def _checked_range(value_range) -> tuple:
        """(low, high) as floats, low < high: the range the jittered pixels are clipped to."""
        is_pair = not isinstance(value_range, (str, bytes)) and hasattr(value_range, "__len__")
        if not is_pair or len(value_range) != 2:
            raise TypeError(f"ColorJitter: value_range must be a pair (low, high) or None, "
                            f"got {value_range!r}")
        low = check_real(value_range[0], "value_range[0]", "ColorJitter")
        high = check_real(value_range[1], "value_range[1]", "ColorJitter", above=low)
        return low, high

    def _clip(self, x):
        return x if self.value_range is None else np.clip(x, *self.value_range)

    @staticmethod
    def _factors(amount, n, rng, dtype):
        return rng.uniform(max(0.0, 1 - amount), 1 + amount, size=n).astype(dtype)[:, None, None, None]

    def __call__(self, x, y, rng):
        x = check_batch(x, y, rng, "ColorJitter")
        _rgb(x, "ColorJitter")
        out, n, dtype = x, len(x), x.dtype       # computed in the images' dtype (float32 stays float32)
        if self.brightness:
            out = self._clip(self._factors(self.brightness, n, rng, dtype) * out)
        if self.contrast:
            c = self._factors(self.contrast, n, rng, dtype)
            mean = grayscale(out).mean(axis=(1, 2))[:, None, None, None]
            out = self._clip(c * out + (1 - c) * mean)
        if self.saturation:
            s = self._factors(self.saturation, n, rng, dtype)
            out = self._clip(s * out + (1 - s) * grayscale(out)[..., None])
        if self.hue:
            shift = rng.uniform(-self.hue, self.hue, size=n).astype(dtype)[:, None, None]
            hsv = rgb_to_hsv(out)
            hsv[..., 0] = (hsv[..., 0] + shift) % 1.0
            out = self._clip(hsv_to_rgb(hsv))
        return out.astype(dtype, copy=out is x), y

    def __repr__(self):
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")


class RandomGrayscale:
    """With probability p per image, replace R, G, B by gray(x) = 0.2989 R + 0.587 G + 0.114 B."""

    def __init__(self, p: float = 0.1):
        self.p = _probability(p, "RandomGrayscale")

    def __call__(self, x, y, rng):
        x = check_batch(x, y, rng, "RandomGrayscale")
        _rgb(x, "RandomGrayscale")
        chosen = rng.random(len(x)) < self.p
        return np.where(chosen[:, None, None, None], grayscale(x)[..., None], x), y

    def __repr__(self):
        return f"RandomGrayscale(p={self.p})"
