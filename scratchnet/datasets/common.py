"""What every dataset loader shares: where data lives, errors, and turning bytes into floats.

Search order for a data folder (the first that holds the files wins):

1. the ``root`` argument of the loader,
2. the environment variable ``$SCRATCHNET_DATA``,
3. ``~/.cache/scratchnet``.

Images are returned as floats of shape ``(N, H, W, C)`` (channels-last), scaled to ``[0, 1]``
by dividing the raw bytes by 255, or standardised with fixed per-dataset constants
(``(x / 255 - mean) / std``, the usual published training-set statistics, so train and test
are scaled identically and no statistic leaks from the test set). Labels are ``int64``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from ..option_checks import check_path


class DatasetError(Exception):
    """Base class of every dataset problem."""


class DataNotFoundError(DatasetError, FileNotFoundError):
    """The files are not on this machine (and could not or may not be downloaded)."""


class CorruptDataError(DatasetError, ValueError):
    """A file exists but is not in the expected format (wrong magic, dims, size, checksum)."""


def default_cache_dir() -> Path:
    """``~/.cache/scratchnet`` (where downloads go when no root and no $SCRATCHNET_DATA is given)."""
    try:
        home = Path.home()
    except RuntimeError as error:  # HOME unset and no passwd entry for this user id (a container's)
        raise DataNotFoundError(f"no home folder for the default data folder ~/.cache/scratchnet "
                                f"({error}); set SCRATCHNET_DATA or pass the folder as root") from None
    return home / ".cache" / "scratchnet"


def search_dirs(root=None, subdir: str | None = None, who: str = "search_dirs") -> list[Path]:
    """Folders to look in, in order; each also with ``subdir`` appended (e.g. ``"mnist"``).
    ``who``: the loader, named in the error for a ``root`` that is not a folder name."""
    bases = []
    if root is not None:
        check_path(root, who, option="root", what="folder name", bytes_allowed=False)
        bases.append(Path(root).expanduser())
    if os.environ.get("SCRATCHNET_DATA"):
        bases.append(Path(os.environ["SCRATCHNET_DATA"]).expanduser())
    try:
        bases.append(default_cache_dir())
    except DataNotFoundError:  # no home folder: the folders given are enough
        if not bases:
            raise
    folders = []
    for base in bases:
        for folder in (base, base / subdir) if subdir else (base,):
            if folder not in folders:
                folders.append(folder)
    return folders


def download_dir(root=None, subdir: str = "") -> Path:
    """Where a download is written: ``root`` itself if given, else ``$SCRATCHNET_DATA/subdir``
    or ``~/.cache/scratchnet/subdir``."""
    if root is not None:
        return Path(root).expanduser()
    base = os.environ.get("SCRATCHNET_DATA")
    return (Path(base).expanduser() if base else default_cache_dir()) / subdir


def file_digest(path, algorithm: str = "md5") -> str:
    """Hex digest (``"md5"``, ``"sha256"``) of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_problem(path, md5: str | None = None, sha256: str | None = None) -> str | None:
    """None if the file matches every given checksum, else a sentence saying which one failed."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is not None:
            found = file_digest(path, algorithm)
            if found != expected.lower():
                return f"checksum mismatch ({algorithm} {found}, expected {expected})"
    return None


def download_verified(url: str, target, md5: str | None = None, sha256: str | None = None,
                      timeout: float = 30.0, opener=None) -> Path:
    """Download ``url`` to ``target``; the file appears under its real name only if it is whole
    and matches the given checksums.

    The bytes go to a temporary ``.part`` file beside ``target``; after the checksums pass it is
    renamed with ``os.replace`` (atomic on one file system). On any failure the temporary file
    is deleted and ``DataNotFoundError`` (network, truncated transfer) or ``CorruptDataError``
    (checksum mismatch) is raised naming the URL. ``opener`` replaces ``urllib.request.urlopen``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".part", dir=target.parent)
    opener = opener or urllib.request.urlopen
    try:
        try:
            with os.fdopen(handle, "wb") as out, opener(url, timeout=timeout) as response:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                promised, received = _content_length(response), out.tell()
        except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, IncompleteRead
            raise DataNotFoundError(f"{url}: {type(error).__name__}: {error}") from None
        if promised is not None and received != promised:
            raise DataNotFoundError(f"{url}: transfer cut short, {received} of {promised} bytes received")
        problem = checksum_problem(tmp_name, md5, sha256)
        if problem:
            raise CorruptDataError(f"{url}: {problem}; the download was discarded")
        os.replace(tmp_name, target)
        return target
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _content_length(response) -> int | None:
    """The Content-Length the server announced, or None (absent, unparsable, or a fake response)."""
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    return int(value) if value is not None and str(value).isdigit() else None


def check_loader_options(standardize, dtype, who: str) -> None:
    """A loader's ``standardize`` (True or False: a string like "no" would count as True) and
    ``dtype`` (a floating type), checked before any file is read."""
    if isinstance(standardize, str) or standardize not in (True, False):  # 0/1 and np.bool_ pass
        raise TypeError(f"{who}: standardize must be True or False, got {standardize!r}")
    check_image_dtype(dtype, who)


def check_image_dtype(dtype, who: str) -> None:
    """The ``dtype`` of images scaled to [0, 1]: a floating type (uint8 would hold only 0 and 1)."""
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        kind = None
    if kind != "f":
        raise TypeError(f"{who}: dtype must be a floating type such as 'float32', got {dtype!r} (the "
                        f"images are scaled to [0, 1])")


def scale_images(raw: np.ndarray, standardize: bool, mean, std, dtype="float32") -> np.ndarray:
    """uint8 images (N, H, W, C) -> floats in [0, 1], or ``(x - mean) / std`` per channel.

    mean, std : sequences of C floats (statistics of images already scaled to [0, 1]).
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"images must be returned as a floating dtype, got {dtype}")
    images = raw.astype(dtype) / dtype.type(255)
    if standardize:
        images -= np.asarray(mean, dtype=dtype)
        images /= np.asarray(std, dtype=dtype)
    return images


def channel_mean_std(x) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of images x (N, H, W, C) -> two (C,) float64 arrays.

        mean_c = mean over n, h, w of x[n, h, w, c]      std_c = sqrt(mean of (x - mean_c)^2)
    Compute them on the training images only and use them for train and test alike.
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype.kind not in "uif":
        raise ValueError(f"channel_mean_std: expected images (N, H, W, C), got shape {x.shape} "
                         f"dtype {x.dtype}")
    return x.mean(axis=(0, 1, 2), dtype=np.float64), x.std(axis=(0, 1, 2), dtype=np.float64)


def standardize(x, mean, std) -> np.ndarray:
    """(x - mean) / std per channel: x (N, H, W, C) float, mean and std (C,); keeps x's dtype."""
    x = np.asarray(x)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if x.dtype.kind != "f" or x.ndim < 1 or mean.shape != (x.shape[-1],) or std.shape != mean.shape:
        raise ValueError(f"standardize: expected float images (..., C) and mean, std of shape (C,), got "
                         f"x {x.shape} {x.dtype}, mean {mean.shape}, std {std.shape}")
    if np.any(std <= 0):
        raise ValueError(f"standardize: std must be > 0 per channel, got {std}")
    return ((x - mean.astype(x.dtype)) / std.astype(x.dtype)).astype(x.dtype, copy=False)
