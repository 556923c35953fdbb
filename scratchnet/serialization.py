"""Saving and loading models.

File format of ``model.save(path)``::

    MAGIC (10 bytes)  b"SCRATCHNET"
    header line       b' {"format": 1, "scratchnet": "0.1.0", "payload_bytes": 12345}\\n'
    payload           a pickle (protocol 5) of the Sequential model

``load(path)`` reads that pickle with a restricted unpickler that resolves only scratchnet's
own classes, the NumPy functions that rebuild arrays and dtypes, and
plain builtin containers. Anything else raises ``UnsafeModelError`` before any of it runs.

Saving is atomic: a temporary file in the same folder is written, flushed, fsynced and then
``os.replace``d over the target, so a failed save never damages the file that was there.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile

import numpy as np

MAGIC = b"SCRATCHNET"
FORMAT_VERSION = 1


class SerializationError(Exception):
    """A model or weights file is missing parts, corrupted, or from a newer format."""


class UnsafeModelError(pickle.UnpicklingError):
    """The file asked to import something that is not on the allow-list."""


# The globals a scratchnet model pickle may name. numpy's module paths differ between
# NumPy 1.x (numpy.core) and 2.x (numpy._core); both spellings are accepted.
_NUMPY_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}
_NUMPY_DTYPE_MODULE = "numpy.dtypes"  # numpy.dtypes.Float32DType and friends
_BUILTIN_GLOBALS = {("builtins", name) for name in
                    ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex",
                     "bool", "str", "bytes", "bytearray", "slice", "range", "object")}
_BUILTIN_GLOBALS.add(("copyreg", "_reconstructor"))
_BUILTIN_GLOBALS.add(("collections", "OrderedDict"))


def _scratchnet_class(module: str, name: str):
    """Resolve a class defined in scratchnet itself; None for anything else."""
    if not (module == "scratchnet" or module.startswith("scratchnet.")):
        return None
    import importlib

    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return obj if isinstance(obj, type) else None


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _NUMPY_GLOBALS or (module, name) in _BUILTIN_GLOBALS:
            return super().find_class(module, name)
        if module == _NUMPY_DTYPE_MODULE and name.endswith("DType"):
            return super().find_class(module, name)
        cls = _scratchnet_class(module, name)
        if cls is not None:
            return cls
        raise UnsafeModelError(
            f"refused to load global {module}.{name}: a scratchnet model file may only name "
            "scratchnet classes, NumPy array/dtype reconstructors and builtin "
            "containers. If you trust this file, use scratchnet.load(path, trusted=True)."
        )


def _atomic_write(path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it into place."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    handle, tmp_path = tempfile.mkstemp(prefix=".scratchnet-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass
        raise


def save_model(model, path) -> None:
    from . import __version__

    payload = pickle.dumps(model, protocol=5)
    header = json.dumps({"format": FORMAT_VERSION, "scratchnet": __version__,
                         "payload_bytes": len(payload)}).encode()

    def write(file):
        file.write(MAGIC + b" " + header + b"\n")
        file.write(payload)

    _atomic_write(path, write)


def _read_payload(path) -> bytes:
    with open(path, "rb") as file:
        data = file.read()
    if not data:
        raise SerializationError(f"{path}: file is empty")
    if not data.startswith(MAGIC + b" "):
        raise SerializationError(f"{path}: not a scratchnet model file (wrong magic)")
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        raise SerializationError(f"{path}: truncated header")
    try:
        header = json.loads(data[len(MAGIC) + 1:end].decode())
        version, size = int(header["format"]), int(header["payload_bytes"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise SerializationError(f"{path}: corrupted header") from None
    if version > FORMAT_VERSION:
        raise SerializationError(
            f"{path}: written in format {version} by scratchnet {header.get('scratchnet')}; this "
            f"scratchnet reads format {FORMAT_VERSION} and older. Upgrade scratchnet.")
    payload = data[end + 1:]
    if len(payload) != size:
        raise SerializationError(f"{path}: truncated or padded: payload is {len(payload)} bytes, "
                                 f"header says {size}")
    return payload


def load_model(path, trusted: bool = False):
    """Load a model saved with ``model.save``.

    ``trusted=True`` uses the plain ``pickle`` loader, which can run any code the file
    contains: only for files you made yourself or fully trust.
    """
    from .model import Sequential

    payload = _read_payload(path)
    try:
        if trusted:
            model = pickle.loads(payload)
        else:
            model = RestrictedUnpickler(io.BytesIO(payload)).load()
    except UnsafeModelError:
        raise
    except Exception as error:
        raise SerializationError(f"{path}: corrupted model data ({type(error).__name__}: {error})") from None
    if not isinstance(model, Sequential):
        raise SerializationError(f"{path}: file holds a {type(model).__name__}, not a Sequential model")
    return model


def save_weights(model, path) -> None:
    """Every parameter and buffer as a named array in a pickle-free ``.npz`` file."""
    weights = model.get_weights()
    _atomic_write(path, lambda file: np.savez(file, **weights))


def load_weights(model, path) -> None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            weights = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise
    except Exception as error:
        raise SerializationError(f"{path}: not a readable weights file ({error})") from None
    model.set_weights(weights)
