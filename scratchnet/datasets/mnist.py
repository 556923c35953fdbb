"""MNIST handwritten digits: the IDX file reader, the downloader and the bundled sample.

The IDX format (big-endian), as used by the four MNIST files::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 = unsigned byte (also 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64)
    byte  3     number of dimensions d
    then        d sizes, each a 4-byte big-endian unsigned int
    then        prod(sizes) elements, row-major

So an image file starts with the "magic number" 0x00000803 (ubyte, 3 dims: N, 28, 28) and
a label file with 0x00000801 (ubyte, 1 dim: N). Files may be gzip-compressed (``.gz``) or raw.

``load_mnist(split)`` looks for the files in ``root``, ``$SCRATCHNET_DATA`` and
``~/.cache/scratchnet`` (each also with ``/mnist`` appended). Missing files are downloaded
from the public mirrors in ``MIRRORS`` with ``urllib.request``, written to a temporary file,
checked against the known MD5 and only then moved into place with ``os.replace``.

``load_mnist_sample()`` needs no network: it reads the real 10,000-image MNIST test set that
ships inside the package (``scratchnet/datasets/data``) and splits it into a fixed
training part (the first 8,000 images) and test part (the last 2,000).
"""

from __future__ import annotations

import gzip
import struct
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from .common import (
    CorruptDataError,
    DataNotFoundError,
    check_loader_options,
    download_dir,
    download_verified,
    file_digest,
    scale_images,
    search_dirs,
)

# Tests replace these two module attributes with local fakes (no network in tests).
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
urlopen = urllib.request.urlopen

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# Mean and standard deviation of the 60,000 MNIST training images scaled to [0, 1].
MEAN, STD = (0.1307,), (0.3081,)

BUNDLED_DIR = Path(__file__).resolve().parent / "data"
SAMPLE_TRAIN_SIZE = 8000  # load_mnist_sample: images [0, 8000) train, [8000, 10000) test

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# ---------------------------------------------------------------------- IDX parsing
def parse_idx(data: bytes, source: str = "IDX data") -> np.ndarray:
    """Parse the bytes of one (uncompressed) IDX file into an array of the stored shape.

    Raises ``CorruptDataError`` naming ``source`` if the header is wrong or the number of
    data bytes does not match the sizes in the header (truncated or padded file).
    """
    if len(data) < 4:
        raise CorruptDataError(f"{source}: only {len(data)} bytes, too short for an IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or data[3] == 0:
        raise CorruptDataError(f"{source}: not an IDX file (magic number 0x{data[:4].hex()}; "
                               "expected 0x0000 then a type byte such as 08 and a dimension count)")
    n_dims = data[3]
    header_size = 4 + 4 * n_dims
    if len(data) < header_size:
        raise CorruptDataError(f"{source}: truncated header ({len(data)} bytes, "
                               f"{header_size} needed for {n_dims} dimensions)")
    shape = struct.unpack(f">{n_dims}I", data[4:header_size])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_size
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise CorruptDataError(f"{source}: file {problem}: header says shape {shape} "
                               f"({expected} data bytes) but {found} data bytes follow")
    return np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)


def _read_bytes(path) -> bytes:
    """The uncompressed bytes of a file, gzip-compressed (detected by its first two bytes) or raw."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise CorruptDataError(f"{path}: damaged or truncated gzip file ({error})") from None
    return data


def read_idx(path) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw, into an array of the stored shape."""
    return parse_idx(_read_bytes(path), str(path))


def _read_mnist_idx(path, magic: int, what: str) -> np.ndarray:
    data = _read_bytes(path)
    found = data[:4].hex()
    if found != f"{magic:08x}":
        n_dims = magic & 0xFF
        raise CorruptDataError(f"{path}: not an MNIST {what} file: expected magic 0x{magic:08x} "
                               f"(unsigned bytes, {n_dims} dimension{'s' if n_dims > 1 else ''}), "
                               f"got 0x{found}")
    return parse_idx(data, str(path))


def read_images(path) -> np.ndarray:
    """An MNIST image file -> uint8 array (N, rows, cols). Checks magic 0x00000803."""
    return _read_mnist_idx(path, IMAGES_MAGIC, "image")


def read_labels(path) -> np.ndarray:
    """An MNIST label file -> uint8 array (N,). Checks magic 0x00000801 and values 0..9."""
    labels = _read_mnist_idx(path, LABELS_MAGIC, "label")
    if labels.size and labels.max() > 9:
        raise CorruptDataError(f"{path}: labels must be digits 0..9, found {int(labels.max())}")
    return labels


def _to_dataset(images, labels, images_path, labels_path, standardize, dtype):
    if len(images) != len(labels):
        raise CorruptDataError(f"{images_path} holds {len(images)} images but {labels_path} "
                               f"holds {len(labels)} labels")
    x = scale_images(images[..., np.newaxis], standardize, MEAN, STD, dtype)
    return x, labels.astype(np.int64)


# ---------------------------------------------------------------------- downloading
def md5sum(path) -> str:
    return file_digest(path, "md5")


def download_file(filename: str, folder, mirrors=None, timeout: float = 30.0) -> Path:
    """Download ``filename`` (e.g. ``"train-images-idx3-ubyte.gz"``) into ``folder``.

    Tries each mirror in turn with ``common.download_verified``: the bytes go to a temporary
    file in ``folder``; only when their MD5 equals ``MD5[filename]`` is it renamed into place
    (``os.replace``), so a failed or interrupted download never leaves a half-written file
    under the real name. Raises ``DataNotFoundError`` listing every attempt if no mirror
    delivered a good file.
    """
    target = Path(folder) / filename
    attempts = []
    for mirror in (MIRRORS if mirrors is None else mirrors):
        try:
            return download_verified(mirror + filename, target, md5=MD5.get(filename),
                                     timeout=timeout, opener=urlopen)
        except (DataNotFoundError, CorruptDataError) as error:
            attempts.append(str(error))
    raise DataNotFoundError(f"could not download {filename}; tried:\n  " + "\n  ".join(attempts))


# ---------------------------------------------------------------------- loaders
def find_file(stem: str, folders) -> Path | None:
    """The first ``stem.gz`` or ``stem`` that exists in ``folders``, or None."""
    for folder in folders:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def load_mnist(split: str = "train", root=None, download: bool = True, standardize: bool = False,
               dtype="float32", mirrors=None):
    """Load one split of MNIST.

    Parameters
    ----------
    split : "train" (60,000 images) or "test" (10,000 images)
    root : folder to look in first (then $SCRATCHNET_DATA, then ~/.cache/scratchnet)
    download : fetch missing files from ``MIRRORS`` (checksums verified) into ``root`` or
        ``$SCRATCHNET_DATA/mnist`` or ``~/.cache/scratchnet/mnist``
    standardize : False -> pixels in [0, 1]; True -> (x - 0.1307) / 0.3081

    Returns
    -------
    x : float array (N, 28, 28, 1)
    y : int64 array (N,), digits 0..9
    """
    if split not in FILES:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    check_loader_options(standardize, dtype, "load_mnist")
    folders = search_dirs(root, "mnist", who="load_mnist")
    paths = []
    for stem in FILES[split]:
        path = find_file(stem, folders)
        if path is None:
            path = _fetch(stem + ".gz", folders, root, download, mirrors)
        paths.append(path)
    images_path, labels_path = paths
    return _to_dataset(read_images(images_path), read_labels(labels_path), images_path,
                       labels_path, standardize, dtype)


def _fetch(filename, folders, root, download, mirrors) -> Path:
    where = "\n  ".join(str(folder) for folder in folders)
    advice = (f"Put {filename} (or its unzipped form) into one of those folders or set "
              "$SCRATCHNET_DATA to the folder that holds it. With no network, "
              "load_mnist_sample() / `scratchnet train --dataset mnist-sample` use the 10,000 "
              "real MNIST digits bundled with scratchnet.")
    if not download:
        raise DataNotFoundError(f"MNIST file {filename} not found in:\n  {where}\n"
                                f"and download=False. {advice}")
    try:
        return download_file(filename, download_dir(root, "mnist"), mirrors)
    except DataNotFoundError as error:
        raise DataNotFoundError(f"MNIST file {filename} not found in:\n  {where}\nand the download "
                                f"failed (is this machine offline?): {error}\n{advice}") from None


def load_mnist_sample(standardize: bool = False, dtype="float32"):
    """The bundled real MNIST digits, split into a fixed training and test part.

    The package ships the 10,000-image MNIST test set (t10k files, CC BY-SA 3.0). It is split
    in file order: images 0..7999 are the training part, images 8000..9999 the test part
    (every digit appears in both, 169 to 905 times). No network is needed.

    Returns ``(x_train, y_train), (x_test, y_test)`` with x of shape (N, 28, 28, 1) as in
    ``load_mnist``: 8,000 and 2,000 samples.
    """
    check_loader_options(standardize, dtype, "load_mnist_sample")
    images_path = BUNDLED_DIR / "t10k-images-idx3-ubyte.gz"
    labels_path = BUNDLED_DIR / "t10k-labels-idx1-ubyte.gz"
    x, y = _to_dataset(read_images(images_path), read_labels(labels_path), images_path,
                       labels_path, standardize, dtype)
    cut = SAMPLE_TRAIN_SIZE
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])
