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

from .augment import check_batch

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _rgb(x, who):
    if x.shape[3] != 3:
        raise ValueError(f"{who}: expected RGB images (N, H, W, 3), got {x.shape[3]} channels")


def grayscale(x: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> (N, H, W): 0.2989 R + 0.587 G + 0.114 B."""
    return x @ np.asarray(GRAY_WEIGHTS, dtype=x.dtype)


def rgb_to_hsv(x: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 1] -> (..., 3) HSV, each in [0, 1] (hue as a fraction of a turn)."""
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v = x.max(axis=-1)
    spread = v - x.min(axis=-1)
    gray = spread == 0
    s = spread / np.where(v == 0, 1, v)
    d = np.where(gray, 1, spread)
    rc, gc, bc = (v - r) / d, (v - g) / d, (v - b) / d
    h = np.select([gray, v == r, v == g], [0.0, bc - gc, 2.0 + rc - bc], default=4.0 + gc - rc)
    return np.stack([(h / 6.0) % 1.0, s, v], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """(..., 3) HSV -> RGB: the six sectors of the hue circle."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector = np.floor(h * 6.0)
    f = h * 6.0 - sector
    sector = sector.astype(np.intp) % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [sector == k for k in range(6)]
    r = np.select(choices, [v, q, p, p, t, v])
    g = np.select(choices, [t, v, v, q, p, p])
    b = np.select(choices, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


class ColorJitter:
    """Random brightness, contrast, saturation and hue per image (see the module docstring)."""

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0, value_range=(0.0, 1.0)):
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if value < 0:
                raise ValueError(f"ColorJitter: {name} must be >= 0, got {value}")
        if not 0 <= hue <= 0.5:
            raise ValueError(f"ColorJitter: hue must be in [0, 0.5], got {hue}")
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.hue = float(saturation), float(hue)
        self.value_range = None if value_range is None else (float(value_range[0]), float(value_range[1]))

    def _clip(self, x):
        return x if self.value_range is None else np.clip(x, *self.value_range)

    @staticmethod
    def _factors(amount, n, rng):
        return rng.uniform(max(0.0, 1 - amount), 1 + amount, size=n)[:, None, None, None]

    def __call__(self, x, y, rng):
        x = check_batch(x, y, rng, "ColorJitter")
        _rgb(x, "ColorJitter")
        out, n = x.astype(np.float64), len(x)
        if self.brightness:
            out = self._clip(self._factors(self.brightness, n, rng) * out)
        if self.contrast:
            c = self._factors(self.contrast, n, rng)
            mean = grayscale(out).mean(axis=(1, 2))[:, None, None, None]
            out = self._clip(c * out + (1 - c) * mean)
        if self.saturation:
            s = self._factors(self.saturation, n, rng)
            out = self._clip(s * out + (1 - s) * grayscale(out)[..., None])
        if self.hue:
            shift = rng.uniform(-self.hue, self.hue, size=n)[:, None, None]
            hsv = rgb_to_hsv(out)
            hsv[..., 0] = (hsv[..., 0] + shift) % 1.0
            out = self._clip(hsv_to_rgb(hsv))
        return out.astype(x.dtype), y

    def __repr__(self):
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")


class RandomGrayscale:
    """With probability p per image, replace R, G, B by gray(x) = 0.2989 R + 0.587 G + 0.114 B."""

    def __init__(self, p: float = 0.1):
        if not 0 <= p <= 1:
            raise ValueError(f"RandomGrayscale: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x, y, rng):
        x = check_batch(x, y, rng, "RandomGrayscale")
        _rgb(x, "RandomGrayscale")
        chosen = rng.random(len(x)) < self.p
        return np.where(chosen[:, None, None, None], grayscale(x)[..., None], x), y

    def __repr__(self):
        return f"RandomGrayscale(p={self.p})"
