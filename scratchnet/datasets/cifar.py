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

scratchnet does not download CIFAR-10 (170 MB); ``load_cifar10`` says where to put it.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from ..serialization import numpy_global
from .common import CorruptDataError, DataNotFoundError, scale_images, search_dirs

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
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


def find_cifar10(root=None) -> Path:
    """The folder holding the batch files: ``<dir>/cifar-10-batches-py`` or ``<dir>`` itself."""
    folders = search_dirs(root, FOLDER)
    for folder in folders:
        if all((folder / name).is_file() for name in TRAIN_BATCHES + TEST_BATCHES):
            return folder
    where = "\n  ".join(str(folder) for folder in folders)
    raise DataNotFoundError(
        f"CIFAR-10 python batches not found in:\n  {where}\nDownload cifar-10-python.tar.gz "
        "(the 'CIFAR-10 python version' from the dataset's home page at the University of "
        "Toronto), unpack it with `tar xzf cifar-10-python.tar.gz` and pass the folder as root "
        "(or set $SCRATCHNET_DATA).")


def load_cifar10(root=None, split: str = "train", standardize: bool = False, dtype="float32"):
    """Load CIFAR-10 from the unpacked python batches.

    Parameters
    ----------
    root : folder holding ``cifar-10-batches-py`` (or the batch files themselves); then
        $SCRATCHNET_DATA and ~/.cache/scratchnet are searched
    split : "train" (data_batch_1..5, 50,000 images) or "test" (test_batch, 10,000 images)
    standardize : False -> pixels in [0, 1]; True -> per channel (x - MEAN) / STD

    Returns
    -------
    x : float array (N, 32, 32, 3)
    y : int64 array (N,), class indices into ``CLASSES``
    """
    if split not in ("train", "test"):
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    folder = find_cifar10(root)
    parts = [read_batch(folder / name) for name in (TRAIN_BATCHES if split == "train" else TEST_BATCHES)]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return scale_images(images, standardize, MEAN, STD, dtype), labels
