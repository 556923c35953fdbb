"""Data augmentation: random transforms of a whole batch at once.

Every transform is a small picklable object called as

    x, y = transform(x, y, rng)

x : float images (N, H, W, C), channels-last       y : int labels (N,) or soft labels (N, K)
rng : a ``numpy.random.Generator`` (in ``fit`` the model's own, so a run is reproducible and
      a saved model resumes with the same random stream); no transform touches NumPy's global state.

The input arrays are never modified; a new x is returned in x's dtype, and y is returned as
given except by ``Mixup``/``CutMix``, which mix labels and always return soft labels (N, K).
Random numbers are drawn per image in one call (``rng.random(N)``, ``rng.integers(.., size=N)``)
and the images are transformed with array indexing, not a Python loop over the batch.

Geometry (``RandomFlip``, ``RandomCrop``, ``RandomResizedCrop``, ``Cutout``, ``RandomShift``,
``RandomRotation``) is in this file; colour (``ColorJitter``, ``RandomGrayscale``) and label
mixing (``Mixup``, ``CutMix``) in ``augment_color.py`` and ``augment_mix.py``, re-exported here.

    >>> augment = Compose([RandomCrop(32, padding=4), RandomFlip()])
    >>> model.fit(x, y, augment=augment)
"""

from __future__ import annotations

import math

import numpy as np

from .layers.spatial import as_pair
from .option_checks import check_count, check_real


# ---------------------------------------------------------------------- checks
def check_batch(x, y, rng, who: str):
    """x must be float (N, H, W, C), y hold N labels, rng be a Generator; returns x as an array."""
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype.kind != "f":
        raise ValueError(f"{who}: expected float images (N, H, W, C), got shape {x.shape} dtype {x.dtype}")
    if y is not None and len(y) != len(x):
        raise ValueError(f"{who}: {len(x)} images but {len(y)} labels")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{who}: rng must be a numpy.random.Generator (the model's, model.rng), "
                        f"got {type(rng).__name__}")
    return x


def _pair(size, who: str) -> tuple[int, int]:
    """An int or a (height, width) pair of ints >= 1 (a 1-D array too), as a pair of ints."""
    return as_pair(tuple(size) if isinstance(size, np.ndarray) and size.ndim == 1 else size, "size", who)


def _probability(p, who: str) -> float:
    """A probability p in [0, 1] (``check_real``)."""
    return check_real(p, "p", who, least=0, most=1)


def _min_max(pair, option: str, who: str, most=None) -> tuple[float, float]:
    """A pair (min, max) of numbers with 0 < min <= max (<= most if given), as two floats."""
    if np.ndim(pair) != 1 or len(pair) != 2:
        raise TypeError(f"{who}: {option} must be a pair (min, max), got {pair!r}")
    low = check_real(pair[0], f"{option}[0]", who, above=0, most=most)
    return low, check_real(pair[1], f"{option}[1]", who, least=low, most=most)


# ---------------------------------------------------------------------- sampling
def bilinear_sample(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, fill: float | None = None):
    """Sample images at fractional pixel coordinates (pixel centres at integers).

    x : (N, H, W, C);  rows, cols : (N, h, w) (or broadcastable) -> out (N, h, w, C), with
        r0 = floor(r), a = r - r0, c0 = floor(c), b = c - c0,
        out = (1-a)(1-b) x[r0, c0] + (1-a) b x[r0, c0+1] + a (1-b) x[r0+1, c0] + a b x[r0+1, c0+1]
    fill=None: coordinates are first clamped into the image (edge pixels repeat);
    fill=v   : neighbours outside the image count as the value v (zero-padding style border).
    """
    n, height, width, channels = x.shape
    # rows and cols stay in their own shapes (a resize passes (N, h, 1) and (N, 1, w)): the
    # per-coordinate work below is done once per row or column and broadcast only when combined
    rows, cols = np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64)
    shape = np.broadcast_shapes(rows.shape, cols.shape)
    if fill is None:
        rows, cols = np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)
    r0, c0 = np.floor(rows), np.floor(cols)
    a, b = (rows - r0).astype(x.dtype)[..., None], (cols - c0).astype(x.dtype)[..., None]
    r0, c0 = r0.astype(np.intp), c0.astype(np.intp)
    # x[n, r, c] as one flat index n H W + r W + c into rows of (N H W, C): a single fast take
    flat = np.ascontiguousarray(x).reshape(-1, channels)
    image_start = (np.arange(n) * (height * width)).reshape((n,) + (1,) * (len(shape) - 1))
    out = np.zeros(shape + (channels,), dtype=x.dtype)
    corners = ((0, 0, (1 - a) * (1 - b)), (0, 1, (1 - a) * b), (1, 0, a * (1 - b)), (1, 1, a * b))
    for dr, dc, weight in corners:
        r, c = r0 + dr, c0 + dc
        index = image_start + np.clip(r, 0, height - 1) * width + np.clip(c, 0, width - 1)
        values = np.take(flat, index, axis=0)                           # (N, h, w, C) gather
        if fill is not None:
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            values = np.where(inside[..., None], values, x.dtype.type(fill))
        out += weight * values
    return out.astype(x.dtype, copy=False)


def crop_batch(x: np.ndarray, top: np.ndarray, left: np.ndarray, height: int, width: int) -> np.ndarray:
    """out[n] = x[n, top[n] : top[n] + height, left[n] : left[n] + width] for every n, by one gather."""
    n = len(x)
    rows = top[:, None, None] + np.arange(height)[None, :, None]    # (N, height, 1)
    cols = left[:, None, None] + np.arange(width)[None, None, :]    # (N, 1, width)
    return x[np.arange(n)[:, None, None], rows, cols]


# ---------------------------------------------------------------------- transforms
class Compose:
    """Apply transforms in order: x, y = t_k(... t_1(x, y, rng) ..., rng)."""

    def __init__(self, transforms):
        if not hasattr(transforms, "__iter__"):  # one transform, not a list of them
            raise TypeError(f"Compose: transforms must be a list of transforms, got one "
                            f"{type(transforms).__name__}; write Compose([...])")
        self.transforms = list(transforms)
        for transform in self.transforms:
            if not callable(transform):
                raise TypeError(f"Compose: every transform must be callable as t(x, y, rng), "
                                f"got {transform!r}")

    def __call__(self, x, y, rng):
        for transform in self.transforms:
            x, y = transform(x, y, rng)
        return x, y

    def __repr__(self):
        return f"Compose([{', '.join(map(repr, self.transforms))}])"


class RandomFlip:
    """Mirror each image with probability p: horizontal x[:, :, ::-1], vertical x[:, ::-1]."""

    def __init__(self, horizontal: bool = True, vertical: bool = False, p: float = 0.5):
        if not (horizontal or vertical):
            raise ValueError("RandomFlip: at least one of horizontal, vertical must be True")
        self.horizontal, self.vertical = bool(horizontal), bool(vertical)
        self.p = _probability(p, "RandomFlip")

    def __call__(self, x, y, rng):
        x = check_batch(x, y, rng, "RandomFlip")
        for enabled, axis in ((self.horizontal, 2), (self.vertical, 1)):
            if enabled:
                flip = rng.random(len(x)) < self.p                     # (N,) one draw per image
                x = np.where(flip[:, None, None, None], np.flip(x, axis=axis), x)
        return x, y

    def __repr__(self):
        return f"RandomFlip(horizontal={self.horizontal}, vertical={self.vertical}, p={self.p})"


class RandomCrop:
    """Pad each side by ``padding`` (with ``fill``), then cut a size x size window at a uniformly
    random offset (top in 0 .. H + 2 padding - size, likewise left): the CIFAR "crop 32 pad 4"."""

    def __init__(self, size, padding: int = 0, fill: float = 0.0):
        self.size = _pair(size, "RandomCrop")
        self.padding = check_count(padding, "padding", "RandomCrop", 0)
        self.fill = check_real(fill, "fill", "RandomCrop")

    def __call__(self, x, y, rng):
        x = check_batch(x, y, rng, "RandomCrop")
        p, (height, width) = self.padding, self.size
        if x.shape[1] + 2 * p < height or x.shape[2] + 2 * p < width:
            raise ValueError(f"RandomCrop: cannot cut {self.size} from images {x.shape[1:3]} padded by {p}")
        padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=self.fill) if p else x
        top = rng.integers(0, padded.shape[1] - height + 1, size=len(x))
        left = rng.integers(0, padded.shape[2] - width + 1, size=len(x))
        return crop_batch(padded, top, left, height, width), y

    def __repr__(self):
        return f"RandomCrop({self.size}, padding={self.padding}, fill={self.fill})"


class RandomShift:
    """Move each image by whole pixels, dy and dx uniform in -max_shift .. max_shift, filling the
    uncovered border with ``fill`` (for digits: no flips, small moves). Same as
    RandomCrop((H, W), padding=max_shift)."""

    def __init__(self, max_shift: int = 2, fill: float = 0.0):
        self.max_shift = check_count(max_shift, "max_shift", "RandomShift", 0)
        self.fill = check_real(fill, "fill", "RandomShift")

    def __call__(self, x, y, rng):
        x = check_batch(x, y, rng, "RandomShift")
        return RandomCrop(x.shape[1:3], self.max_shift, self.fill)(x, y, rng)

    def __repr__(self):
        return f"RandomShift(max_shift={self.max_shift}, fill={self.fill})"


class RandomRotation:
    """Rotate each image by an angle uniform in [-degrees, degrees] about its centre, bilinear,
    the uncovered corners set to ``fill``. A positive angle turns the picture counter-clockwise
    (as scipy.ndimage.rotate). With centre (r_c, c_c) = ((H-1)/2, (W-1)/2), output pixel (i, j)
    reads the input at
        c_in = cos t (j - c_c) - sin t (i - r_c) + c_c,   r_in = sin t (j - c_c) + cos t (i - r_c) + r_c
    """

    def __init__(self, degrees: float = 10.0, fill: float = 0.0):
        self.degrees = check_real(degrees, "degrees", "RandomRotation", least=0, most=180)
        self.fill = check_real(fill, "fill", "RandomRotation")

    def __call__(self, x, y, rng):
        x = check_batch(x, y, rng, "RandomRotation")
        angles = np.deg2rad(rng.uniform(-self.degrees, self.degrees, size=len(x)))
        return rotate_batch(x, angles, self.fill), y

    def __repr__(self):
        return f"RandomRotation(degrees={self.degrees}, fill={self.fill})"


def rotate_batch(x: np.ndarray, angles: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Rotate image n by angles[n] radians (counter-clockwise), see RandomRotation."""
    _, height, width, _ = x.shape
    rc, cc = (height - 1) / 2, (width - 1) / 2
    i = np.arange(height)[None, :, None] - rc                        # (1, H, 1)
    j = np.arange(width)[None, None, :] - cc                         # (1, 1, W)
    cos, sin = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
    cols = cos * j - sin * i + cc                                    # (N, H, W)
    rows = sin * j + cos * i + rc
    return bilinear_sample(x, rows, cols, fill=fill)


class RandomResizedCrop:
    """Cut a random box of random area and aspect ratio, resize it to ``size`` (bilinear).

    As torchvision's RandomResizedCrop: up to 10 tries per image of
        area = H W * U(scale),  ratio = exp(U(log ratio)),  w = round(sqrt(area ratio)),
        h = round(sqrt(area / ratio)),  accepted if 0 < w <= W and 0 < h <= H,
        top ~ integers(0, H - h + 1), left ~ integers(0, W - w + 1);
    else the largest centred box within the ratio range. The box is resized with half-pixel
    centres (torch's ``interpolate(mode="bilinear", align_corners=False)``, no antialiasing):
        source row = top + clip((i + 0.5) h / size - 0.5, 0, h - 1)     (likewise columns)
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = _pair(size, "RandomResizedCrop")
        self.scale = _min_max(scale, "scale", "RandomResizedCrop", most=1)   # 0 < min <= max <= 1
        self.ratio = _min_max(ratio, "ratio", "RandomResizedCrop")           # 0 < min <= max

    def boxes(self, n: int, height: int, width: int, rng) -> tuple[np.ndarray, ...]:
        """(top, left, h, w), each (n,) ints: the crop box of every image."""
        area = height * width * rng.uniform(*self.scale, size=(n, 10))
        aspect = np.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), size=(n, 10)))
        w = np.round(np.sqrt(area * aspect)).astype(np.intp)
        h = np.round(np.sqrt(area / aspect)).astype(np.intp)
        valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = valid.argmax(axis=1)                                   # the first accepted try
        h, w = h[np.arange(n), first], w[np.arange(n), first]
        found = valid.any(axis=1)
        fallback_h, fallback_w = self._fallback(height, width)
        h, w = np.where(found, h, fallback_h), np.where(found, w, fallback_w)
        top = np.where(found, rng.integers(0, height - h + 1), (height - h) // 2)
        left = np.where(found, rng.integers(0, width - w + 1), (width - w) // 2)
        return top, left, h, w

    def _fallback(self, height, width):
        if width / height < self.ratio[0]:
            return int(round(width / self.ratio[0])), width
        if width / height > self.ratio[1]:
            return height, int(round(height * self.ratio[1]))
        return height, width

    def __call__(self, x, y, rng):
        x = check_batch(x, y, rng, "RandomResizedCrop")
        top, left, h, w = self.boxes(len(x), x.shape[1], x.shape[2], rng)
        return resize_boxes(x, top, left, h, w, self.size), y

    def __repr__(self):
        return f"RandomResizedCrop({self.size}, scale={self.scale}, ratio={self.ratio})"


def resize_boxes(x, top, left, h, w, size) -> np.ndarray:
    """Resize box n of image n, x[n, top:top+h, left:left+w], to ``size`` (half-pixel bilinear)."""
    out_h, out_w = size
    i = (np.arange(out_h)[None, :] + 0.5) * (h[:, None] / out_h) - 0.5    # (N, out_h)
    j = (np.arange(out_w)[None, :] + 0.5) * (w[:, None] / out_w) - 0.5    # (N, out_w)
    rows = top[:, None] + np.clip(i, 0, (h - 1)[:, None])
    cols = left[:, None] + np.clip(j, 0, (w - 1)[:, None])
    return bilinear_sample(x, rows[:, :, None], cols[:, None, :])


class Cutout:
    """Set a size x size square at a uniformly random centre to ``fill`` (clipped at the border;
    DeVries & Taylor 2017), in each image with probability p."""

    def __init__(self, size: int, fill: float = 0.0, p: float = 1.0):
        self.size = check_count(size, "size", "Cutout", 1)
        self.fill, self.p = check_real(fill, "fill", "Cutout"), _probability(p, "Cutout")

    def __call__(self, x, y, rng):
        x = check_batch(x, y, rng, "Cutout")
        n, height, width, _ = x.shape
        top = rng.integers(0, height, size=n) - self.size // 2          # square [top, top + size)
        left = rng.integers(0, width, size=n) - self.size // 2
        apply = rng.random(n) < self.p
        rows = np.arange(height)[None, :]
        cols = np.arange(width)[None, :]
        in_rows = (rows >= top[:, None]) & (rows < top[:, None] + self.size)    # (N, H)
        in_cols = (cols >= left[:, None]) & (cols < left[:, None] + self.size)  # (N, W)
        mask = in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]
        return np.where(mask[..., None], x.dtype.type(self.fill), x), y

    def __repr__(self):
        return f"Cutout({self.size}, fill={self.fill}, p={self.p})"


from .augment_color import ColorJitter, RandomGrayscale  # noqa: E402
from .augment_mix import CutMix, Mixup  # noqa: E402

__all__ = ["Compose", "RandomFlip", "RandomCrop", "RandomResizedCrop", "RandomShift", "RandomRotation",
           "Cutout", "ColorJitter", "RandomGrayscale", "Mixup", "CutMix", "bilinear_sample",
           "crop_batch", "rotate_batch", "resize_boxes", "check_batch"]
