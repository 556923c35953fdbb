"""CIFAR-10: 60,000 colour images 32x32 in 10 classes, from the "python version" batches.

The archive ``cifar-10-python.tar.gz`` unpacks to a folder ``cifar-10-batches-py`` with
``data_batch_1`` .. ``data_batch_5`` (10,000 training images each) and ``test_batch``
(10,000 test images). Each is a Python pickle of a dict::

    b"data"    uint8 array (10000, 3072): per image 1024 red, then 1024 green, then 1024 blue
               bytes, each plane row-major 32x32
    b"labels"  list of 10000 ints in 0..9
    (also b"batch_label" and b"filenames", not used)

A pickle can run arbitrary code when loaded, and these files come from the internet, so they
are read with :class:`RestrictedUnpickler`: it may only build builtin containers and NumPy
arrays; any other global named in the file raises ``CorruptDataError`` before anything runs.

Download (``download=True``, the default): when no folder holds the batches, the archive
``cifar-10-python.tar.gz`` (170 MB) found beside them or fetched from ``URL`` is checked
against its published MD5 (and the SHA-256 Keras pins) *before* it is opened, then unpacked
by ``archive.safe_extract`` (no absolute paths, ``..``, links or devices) into a temporary
folder and moved into place, so a failed download or unpacking leaves nothing half-written.
Offline: put the archive or the unpacked ``cifar-10-batches-py`` folder into the cache folder
(``$SCRATCHNET_DATA`` or ``~/.cache/scratchnet``) or any folder given as ``root`` /
``scratchnet train --data-dir FOLDER``.

Per-channel statistics: ``channel_mean_std(x)`` and ``standardize(x, mean, std)`` (in
``common.py``; they serve every dataset).
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..safe_unpickler import numpy_global
from .archive import safe_extract
from .common import (
    CorruptDataError,
    DataNotFoundError,
    check_loader_options,
    checksum_problem,
    download_dir,
    download_verified,
    scale_images,
    search_dirs,
)

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"  # published on the dataset's home page
# the same file's SHA-256, as pinned by keras.datasets.cifar10
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
# Per-channel mean and standard deviation of the 50,000 training images scaled to [0, 1].
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


_BUILTINS = {("builtins", name): getattr(__import__("builtins"), name)
             for name in ("dict", "list", "tuple", "bytes", "str", "int")}
_BUILTINS[("__builtin__", "dict")] = dict  # Python 2 spelling


class RestrictedUnpickler(pickle.Unpickler):
    """Resolve only builtin containers and NumPy array reconstructors; refuse everything else."""

    def find_class(self, module, name):
        # the NumPy names are the model loader's allow-list (NumPy 1.x and 2.x module paths)
        found = _BUILTINS.get((module, name)) or numpy_global(module, name)
        if found is not None:
            return found
        raise CorruptDataError(f"refused to load {module}.{name}: a CIFAR-10 batch may only contain "
                               "dicts, lists, bytes, strings, ints and NumPy arrays")


def read_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file -> (uint8 images (N, 32, 32, 3), int64 labels (N,))."""
    path = Path(path)
    try:
        # encoding="bytes": the files were written by Python 2, whose str keys become bytes
        batch = RestrictedUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except CorruptDataError:
        raise
    except Exception as error:  # truncated or garbled pickles raise many different types
        raise CorruptDataError(f"{path}: not a readable CIFAR-10 batch ({type(error).__name__}: "
                               f"{error})") from None
    if not isinstance(batch, dict):
        raise CorruptDataError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise CorruptDataError(f"{path}: the dict has no 'data' and 'labels' entries "
                               f"(keys: {sorted(map(str, batch))})")
    data, labels = batch["data"], np.asarray(batch["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", None)
        raise CorruptDataError(f"{path}: 'data' must be a uint8 array (N, 3072), got "
                               f"{type(data).__name__} of shape {shape}")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu" \
            or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise CorruptDataError(f"{path}: 'labels' must be {len(data)} integers in 0..9, "
                               f"got shape {labels.shape}, dtype {labels.dtype}")
    # (N, 3072) = (N, channel, row, col) planes -> channels-last (N, row, col, channel)
    images = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels.astype(np.int64)


def _offline_advice(root) -> str:
    return (f"To use CIFAR-10 offline, download {URL} (170 MB, md5 {MD5}) elsewhere and put "
            f"{ARCHIVE} or the unpacked {FOLDER} folder into {download_dir(root)} (or into any "
            "folder given as root= / `scratchnet train --data-dir FOLDER`, or set $SCRATCHNET_DATA).")


def find_cifar10(root=None, download: bool = False, url: str = URL, md5: str | None = MD5,
                 sha256: str | None = SHA256, timeout: float = 60.0) -> Path:
    """The folder holding the batch files: ``<dir>/cifar-10-batches-py`` or ``<dir>`` itself.

    Searched in ``root``, ``$SCRATCHNET_DATA``, ``~/.cache/scratchnet``. If none has them, an
    archive ``cifar-10-python.tar.gz`` in one of those folders is verified and unpacked, else
    (``download=True``) it is downloaded from ``url`` into ``root`` or the cache folder.
    A folder with some batches but not all is an error (``CorruptDataError``), not a reason to
    download over it.
    """
    names = TRAIN_BATCHES + TEST_BATCHES
    folders = search_dirs(root, FOLDER, who="find_cifar10")
    for folder in folders:
        present = [name for name in names if (folder / name).is_file()]
        if len(present) == len(names):
            return folder
        if present:
            missing = ", ".join(name for name in names if name not in present)
            raise CorruptDataError(f"{folder}: incomplete CIFAR-10 folder, missing {missing}. Copy the "
                                   f"missing batches in, or delete the folder to unpack {ARCHIVE} again.")
    for base in search_dirs(root):
        if (base / ARCHIVE).is_file():
            return _unpack(base / ARCHIVE, md5, sha256)
    where = "\n  ".join(str(folder) for folder in folders)
    if not download:
        raise DataNotFoundError(f"CIFAR-10 python batches not found in:\n  {where}\nand download=False. "
                                + _offline_advice(root))
    try:
        archive = download_verified(url, download_dir(root) / ARCHIVE, md5, sha256, timeout)
    except DataNotFoundError as error:
        raise DataNotFoundError(f"CIFAR-10 python batches not found in:\n  {where}\nand the download failed "
                                f"(is this machine offline?): {error}\n{_offline_advice(root)}") from None
    return _unpack(archive, md5, sha256)


def _unpack(archive: Path, md5, sha256) -> Path:
    """Verify ``archive``, unpack it beside itself via a temporary folder; return the batch folder."""
    problem = checksum_problem(archive, md5, sha256)
    if problem:
        raise CorruptDataError(f"{archive}: {problem}. The file is damaged or not the official "
                               f"{ARCHIVE}: delete it and download it again.")
    staging = Path(tempfile.mkdtemp(prefix=".cifar-unpack-", dir=archive.parent))
    try:
        safe_extract(archive, staging)
        unpacked = staging / FOLDER
        missing = [name for name in TRAIN_BATCHES + TEST_BATCHES if not (unpacked / name).is_file()]
        if missing:
            raise CorruptDataError(f"{archive}: the archive has no {FOLDER}/ with {', '.join(missing)}")
        target = archive.parent / FOLDER
        try:
            os.replace(unpacked, target)  # atomic; fails rather than merging into a non-empty folder
        except OSError:
            if not all((target / name).is_file() for name in TRAIN_BATCHES + TEST_BATCHES):
                raise
            # another process unpacked the same archive first: use its folder
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_cifar10(root=None, split: str = "train", standardize: bool = False, dtype="float32", *,
                 download: bool = True, url: str = URL, md5: str | None = MD5, sha256: str | None = SHA256):
    """Load CIFAR-10 from the python batches, downloading and unpacking them if needed.

    Parameters
    ----------
    root : folder holding ``cifar-10-batches-py`` (or the batch files themselves); then
        $SCRATCHNET_DATA and ~/.cache/scratchnet are searched
    split : "train" (data_batch_1..5, 50,000 images) or "test" (test_batch, 10,000 images)
    standardize : False -> pixels in [0, 1]; True -> per channel (x - MEAN) / STD
    download : fetch ``url`` into ``root`` (or the cache folder) when nothing is found
    url, md5, sha256 : where from and the checksums the archive must match (tests use a local server)

    Returns
    -------
    x : float array (N, 32, 32, 3)
    y : int64 array (N,), class indices into ``CLASSES``
    """
    if split not in ("train", "test"):
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    check_loader_options(standardize, dtype, "load_cifar10")
    folder = find_cifar10(root, download, url, md5, sha256)
    parts = [read_batch(folder / name) for name in (TRAIN_BATCHES if split == "train" else TEST_BATCHES)]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return scale_images(images, standardize, MEAN, STD, dtype), labels
