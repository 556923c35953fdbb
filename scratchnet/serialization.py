"""Saving and loading models, safely.

Model files: ``model.save(path)`` / ``scratchnet.load(path)``
-------------------------------------------------------------
::

    b"SCRATCHNET"     magic, 10 bytes
    b" "
    header            one line of JSON, then b"\\n", at most 4096 bytes, e.g.
                      {"format": 1, "scratchnet": "0.2.0", "numpy": "2.4.6", "pickle_protocol": 5,
                       "payload_bytes": 123456, "sha256": "<64 hex digits of the payload's SHA-256>"}
    payload           a pickle (protocol 5) of the Sequential model

The payload holds every layer's configuration, parameters and buffers, the optimizer (step
count, schedule; its moments live in ``layer.opt_state``), the loss, ``epochs_trained`` and the
shuffling generator's state: enough to resume training bitwise. Not saved: forward caches
(``layer.cache``) and gradients (the next backward overwrites them; they load as zeros), so a
file is the size of the parameters plus the optimizer state.

Loading checks the magic, the header, the format version (newer: refused), the payload length
and its SHA-256 (so a flipped byte inside array data is caught), raising ``SerializationError``
that says what is wrong; then :class:`RestrictedUnpickler` reads the payload, and the result
must be a consistent ``Sequential``. A failed load never returns a model.

Why pickle is dangerous, and the rules of the restricted loader
---------------------------------------------------------------
A pickle is a small program: it names globals (``GLOBAL``) and calls them (``REDUCE``), so a
file can say "call os.system('...')". The restricted loader is Python's own pickle machine
(``pickle._Unpickler``, pure Python, so every opcode can be checked) with these rules:

* ``GLOBAL`` may name only (anything else raises ``UnsafeModelError`` naming it):
  - a class *defined* in an already-imported scratchnet module (``cls.__module__`` and
    ``cls.__qualname__`` must match the file's names, so ``scratchnet.cli.sys``, a function, or
    a class imported into scratchnet from elsewhere is refused; nothing is imported because a
    file asked). Classes with their own ``__new__`` or ``__del__`` are refused too.
  - ``numpy.ndarray``, ``numpy.dtype``, ``numpy.dtypes.*DType`` and the three rebuilders NumPy
    pickles name: ``_reconstruct``, ``scalar`` (``numpy.core.multiarray`` on NumPy 1.x,
    ``numpy._core.multiarray`` on 2.x; both spellings work on both) and ``_frombuffer``.
  - plain builtin types (dict, list, tuple, set, frozenset, int, float, complex, bool, str,
    bytes, bytearray, object) and ``collections.OrderedDict``.
* ``REDUCE`` (a call) is allowed only for ``numpy.dtype``, the NumPy rebuilders, ``complex(x, y)``
  and ``OrderedDict()``. A scratchnet class is never called: its constructor could do I/O.
  Instances are created with ``cls.__new__(cls)`` (``NEWOBJ``) and filled with ``BUILD``.
* ``BUILD`` is allowed only on instances of allowed classes, arrays and dtypes, never on a
  class (that would rewrite scratchnet's code for the rest of the process).
* ``INST``/``OBJ`` (protocol 0/1 calls) and ``EXT1/2/4`` (the extension registry) are refused.

Each opcode is checked before it acts, so nothing a refused file names ever runs.
The allow-list and the loader live in ``scratchnet/safe_unpickler.py``.
``load(path, trusted=True)`` uses plain ``pickle``: it loads your own layer classes, and it runs
any code the file contains (``TrustedUnpickler``: NumPy's rebuilders are looked up as the safe
loader does, so a file from NumPy 1 loads under NumPy 2 and the other way round).

Weights files: ``model.save_weights(path)`` / ``model.load_weights(path)``
--------------------------------------------------------------------------
A ``.npz`` archive, one array per parameter or buffer named ``"layer_name/param_name"``, read
with ``allow_pickle=False``: safe to share. The path is used as given (no ``.npz`` appended).

Saving refuses what loading would refuse
----------------------------------------
``save`` checks the structure (``check_structure``) and every global the pickle names
(``save_refusals.py``: an opcode scan of the bytes) before writing: a layer attribute holding a
function (``np.tanh``) or a generator of its own is refused with the layer and attribute named.
It checks the globals a file names, not the calls it makes (a class whose ``__reduce__`` is a
call of itself saves; the load refuses the call). ``ModelCheckpoint`` runs the same check at the
start of ``fit``; ``save(path, trusted=True)`` skips the globals check.

Saving never destroys the previous file
---------------------------------------
The bytes are made in memory first (a pickling error touches no file), written to a new
temporary file beside the target, flushed, fsynced and ``os.replace``d over it (atomic). On any
failure the temporary file is removed and the previous file is left byte-identical. A target
that is not a regular file (``/dev/null``, a FIFO) or is read-only is refused: replacing it would
destroy it. (``scratchnet/atomic_file.py``, also used by ``save_weights`` and ``ModelCheckpoint``.)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import zipfile

import numpy as np

from .atomic_file import atomic_write  # noqa: F401  (re-exported)
from .option_checks import check_path
from .safe_unpickler import (  # noqa: F401  (re-exported: scratchnet.serialization.X keeps working)
    MissingScratchnetClass,
    RestrictedUnpickler,
    TrustedUnpickler,
    UnsafeModelError,
    _numpy_rebuilders,
    allowed_global,
    check_allowed_class,
    numpy_global,
    own_class_kind,
)

MAGIC = b"SCRATCHNET"
FORMAT_VERSION = 1
PICKLE_PROTOCOL = 5
MAX_HEADER_BYTES = 4096


class SerializationError(Exception):
    """A model or weights file is missing parts, corrupted, or from a newer format."""


# ====================================================================== model files
class _ModelPickler(pickle.Pickler):
    """Pickles a model without gradients (``layer.cache`` is already dropped by the layer)."""

    def reducer_override(self, obj):
        from .layers.base import Layer

        if not isinstance(obj, Layer):
            return NotImplemented
        reduced = obj.__reduce_ex__(PICKLE_PROTOCOL)
        if isinstance(reduced, tuple) and len(reduced) >= 3 and isinstance(reduced[2], dict) \
                and "grads" in reduced[2]:
            state = dict(reduced[2], grads={})  # rebuilt as zeros by load_model
            reduced = (*reduced[:2], state, *reduced[3:])
        return reduced


def model_bytes(model) -> bytes:
    """The complete file content ``model.save`` writes: magic, header line, payload."""
    from . import __version__

    return frame_payload(pickle_model(model), scratchnet_version=__version__)


def pickle_model(model) -> bytes:
    """The payload: the model pickled as ``_ModelPickler`` does (no gradients, no caches)."""
    buffer = io.BytesIO()
    try:
        _ModelPickler(buffer, protocol=PICKLE_PROTOCOL).dump(model)
    except Exception as error:
        raise SerializationError(
            f"{getattr(model, 'name', 'model')}: cannot pickle the model ({type(error).__name__}: "
            f"{error}); every attribute must be picklable (no lambdas, open files, generators)"
        ) from error
    return buffer.getvalue()


def frame_payload(payload: bytes, scratchnet_version: str = "",
                  format_version: int = FORMAT_VERSION) -> bytes:
    """Magic + header line (with length and SHA-256) + ``payload``."""
    header = {"format": format_version, "scratchnet": scratchnet_version, "numpy": np.__version__,
              "pickle_protocol": PICKLE_PROTOCOL, "payload_bytes": len(payload),
              "sha256": hashlib.sha256(payload).hexdigest()}
    return MAGIC + b" " + json.dumps(header).encode("ascii") + b"\n" + payload


def save_model(model, path, trusted: bool = False) -> None:
    """Check that ``load`` would accept ``model``, pickle it in memory, then write it atomically
    to ``path``: a file that cannot load is never written (``checked_payload``).
    ``trusted=True``: for a file only ever read back with ``scratchnet.load(path, trusted=True)``.
    """
    from . import __version__

    payload = checked_payload(model, trusted)
    atomic_write(path, [frame_payload(payload, scratchnet_version=__version__)])


def checked_payload(model, trusted: bool = False) -> bytes:
    """The pickle of ``model`` that ``save_model`` writes, made in memory (no file touched).

    Checked first: the structure (``check_structure``) and every global the pickle names
    (``save_refusals.check_globals``: a function such as ``np.tanh`` or a generator of a
    layer's own is refused, naming the layer and attribute); a SerializationError says what
    ``scratchnet.load`` would refuse. ``trusted=True`` skips the second check.
    """
    from .save_refusals import check_globals

    name = getattr(model, "name", "model")
    try:
        check_structure(model)
    except (SerializationError, AttributeError, TypeError, RecursionError) as error:
        raise SerializationError(f"{name}: not saved: scratchnet.load would "
                                 f"refuse the file ({error})") from None
    payload = pickle_model(model)
    problem = None if trusted else check_globals(model, payload, _ModelPickler)
    if problem is not None:
        raise SerializationError(
            f"{name}: not saved: scratchnet.load would refuse the file: {problem}. (To write it anyway "
            f"for scratchnet.load(path, trusted=True) only: model.save(path, trusted=True), or "
            f"ModelCheckpoint(..., trusted=True) in fit.)")
    return payload


def _zip_hint(data: bytes) -> str:
    """What a zip file given to load probably is: torch.save writes a zip holding NAME/data.pkl."""
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        names = []
    if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        return (" (it is a PyTorch checkpoint (torch.save): see scratchnet.interop.from_torch / "
                "load_torch_state_dict)")
    return " (it looks like a .npz weights file: use model.load_weights)"


def _parse_header(data: bytes, path) -> tuple[dict, bytes]:
    if not data:
        raise SerializationError(f"{path}: file is empty")
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            raise SerializationError(f"{path}: truncated file (it ends inside the magic string)")
        hint = _zip_hint(data) if data[:2] == b"PK" else ""
        raise SerializationError(f"{path}: not a scratchnet model file (wrong magic){hint}")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER_BYTES)
    if end < 0:
        reason = "truncated" if len(data) < len(MAGIC) + MAX_HEADER_BYTES else "corrupted"
        raise SerializationError(f"{path}: {reason} header (no end of line)")
    try:
        if data[len(MAGIC):len(MAGIC) + 1] != b" ":
            raise ValueError("no space after the magic")
        header = json.loads(data[len(MAGIC) + 1:end].decode("ascii"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        version = header["format"]
        if type(version) is not int:
            raise ValueError(f"format {version!r} is not a whole number")
    except (ValueError, KeyError, UnicodeDecodeError, RecursionError) as error:
        raise SerializationError(f"{path}: corrupted header ({error})") from None
    _check_format(version, header, path)  # first: a newer format may have other fields
    try:
        size, digest = header["payload_bytes"], header["sha256"]
        if not (type(size) is int and size >= 0) or not isinstance(digest, str) or len(digest) != 64:
            raise ValueError("bad field types")
    except (ValueError, KeyError) as error:
        raise SerializationError(f"{path}: corrupted header ({error})") from None
    payload = data[end + 1:]
    if len(payload) != size:
        what = "truncated" if len(payload) < size else "has extra bytes"
        raise SerializationError(f"{path}: file {what}: payload is {len(payload)} bytes, header says {size}")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise SerializationError(f"{path}: corrupted: the payload's SHA-256 does not match the header")
    return header, payload


def written_by(header: dict) -> str:
    """Who wrote a file, from its header: "scratchnet 0.2.0", or words saying it is not recorded."""
    version = header.get("scratchnet")
    if isinstance(version, str) and version:
        return f"scratchnet {version}"
    return "a scratchnet that did not record its version"


def _check_format(version: int, header: dict, path) -> None:
    """Format 1 is the only one this scratchnet reads; a newer one is from a newer scratchnet."""
    from . import __version__

    if version < 1:
        raise SerializationError(f"{path}: corrupted header (unknown format {version})")
    if version > FORMAT_VERSION:
        raise SerializationError(
            f"{path}: written in format {version} by {written_by(header)}; this scratchnet "
            f"({__version__}) reads format {FORMAT_VERSION}. Upgrade scratchnet to load it.")


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise SerializationError(problem)


def _check_and_finish(model, path):
    """Reject anything that is not a consistent Sequential; rebuild the (unsaved) gradients."""
    from .layers.base import iter_layers
    from .model import Sequential

    _require(isinstance(model, Sequential),
             f"{path}: file holds a {type(model).__name__}, not a Sequential model")
    try:
        check_structure(model)
        for layer in iter_layers(model.layers):
            layer.grads = {key: np.zeros_like(value) for key, value in layer.params.items()}
            layer.cache = {}
            if layer.param_shapes is None and layer.built:  # a file saved before build recorded them
                layer.param_shapes = {key: value.shape for key, value in layer.params.items()}
    except (SerializationError, AttributeError, TypeError, RecursionError) as error:  # (a cycle)
        raise SerializationError(f"{path}: the file holds a malformed model ({error})") from None
    return model


def check_structure(model) -> None:
    """What ``load`` requires of a Sequential (``save`` checks it first), else SerializationError
    naming the problem (a layer's array: its name, and what it holds instead)."""
    from .layers.base import Layer, iter_layers
    from .losses import Loss
    from .optimizers import Optimizer, describe_value

    _require(isinstance(model.layers, list) and all(isinstance(layer, Layer) for layer in model.layers),
             "layers is not a list of Layer objects")
    _require(isinstance(model.dtype, np.dtype) and model.dtype.kind == "f",
             f"dtype is {model.dtype!r}, not a float numpy.dtype (set it with model.astype(...))")
    _require(isinstance(model.rng, np.random.Generator), "no random generator")
    _require(model.optimizer is None or isinstance(model.optimizer, Optimizer), "bad optimizer")
    _require(model.loss is None or isinstance(model.loss, Loss), "bad loss")
    input_range = model.input_range
    _require(input_range is None or (isinstance(input_range, tuple) and len(input_range) == 2
             and all(type(v) is float for v in input_range)), "bad input_range")
    _require(model.callback_state is None or isinstance(model.callback_state, dict), "bad callback_state")
    for layer in iter_layers(model.layers):  # and every layer inside a container
        _require(isinstance(layer, Layer), "a container holds something that is not a Layer")
        _require(isinstance(layer.name, str) and isinstance(layer.opt_state, dict),
                 "a layer has no name or optimizer state")
        for store_name, store, kinds in (("params", layer.params, "f"), ("buffers", layer.buffers, "biuf")):
            _require(isinstance(store, dict) and all(isinstance(key, str) for key in store),
                     f"{layer.name}: {store_name} is not a dict of named arrays")
            for key, value in store.items():
                expected = f"a {layer.dtype} array" if kinds == "f" else "a numeric array"
                what = describe_value(value)
                _require(type(value) is np.ndarray and value.dtype.kind in kinds
                         and (kinds == "biuf" or value.dtype == layer.dtype),
                         f"{layer.name}: {store_name}[{key!r}] is {what}, expected {expected}")
        _require(layer.built or not layer.params, f"{layer.name}: parameters in an unbuilt layer")


def load_model(path, trusted: bool = False, allowed_classes=()):
    """Load a model saved with ``model.save`` (see the module docstring for every check).

    ``allowed_classes``: your own classes that the file may contain, e.g.
    ``load("hw.sn", allowed_classes=[MyLayer, MyLoss])``: subclasses of scratchnet's ``Layer``,
    ``Loss``, ``Optimizer``, ``Callback`` or ``Schedule`` (scratchnet.schedules); they are checked
    like scratchnet's own (``check_allowed_class``).
    ``trusted=True`` uses the plain ``pickle`` loader, which can run any code the file contains:
    only for files you made yourself or fully trust.
    """
    for cls in allowed_classes:
        check_allowed_class(cls)
    check_path(path, "scratchnet.load")
    with open(os.path.expanduser(os.fspath(path)), "rb") as file:  # FileNotFoundError as it is
        data = file.read()
    header, payload = _parse_header(data, path)
    try:
        if trusted:
            model = TrustedUnpickler(io.BytesIO(payload)).load()
        else:
            model = RestrictedUnpickler(io.BytesIO(payload), len(payload), allowed_classes).load()
    except MissingScratchnetClass as error:
        raise SerializationError(_missing_message(path, header, error.module, error.name)) from None
    except UnsafeModelError as error:
        raise UnsafeModelError(f"{path}: {error}") from None
    except (AttributeError, ImportError) as error:
        missing = _missing_class(error)
        if missing is None:
            raise SerializationError(f"{path}: corrupted model data ({type(error).__name__}: {error})") \
                from error
        raise SerializationError(_missing_message(path, header, *missing)) from None
    except Exception as error:
        raise SerializationError(f"{path}: corrupted model data ({type(error).__name__}: {error})") from error
    return _check_and_finish(model, path)


def _missing_class(error):
    """(module, name) of the class plain pickle could not find, from its error, or None (name None:
    the whole module is missing, and pickle's error does not say which class was wanted)."""
    text = str(error)
    found = re.search(r"Can't get attribute '([\w.]+)' on <module '([\w.]+)'", text)
    if found:  # "python -m tool" runs the script as __main__ under the name "tool.__main__"
        module = "__main__" if found.group(2).endswith("__main__") else found.group(2)
        return module, found.group(1)
    found = re.search(r"No module named '([\w.]+)'", text)
    return (found.group(1), None) if found else None


def _missing_message(path, header: dict, module: str, name) -> str:
    """Why a file's class is not here: a newer scratchnet's, or the user's own."""
    from . import __version__

    what = f"class {module}.{name}" if name else f"module {module}"
    if module == "scratchnet" or module.startswith("scratchnet."):
        writer = written_by(header)
        advice = ("upgrade scratchnet to load it" if writer != f"scratchnet {__version__}" else
                  "the same version number as this one, so it came from a changed copy of scratchnet: "
                  "load it with that copy")
        return (f"{path}: the file needs scratchnet {what}, which this scratchnet (version "
                f"{__version__}) does not have; the file was written by {writer}: {advice}.")
    if not name:  # (trusted=True only: the restricted loader never imports)
        return (f"{path}: the file needs {what}, which cannot be imported here: install it or put "
                f"it on sys.path before loading.")
    where = "a script run as __main__" if module == "__main__" else f"module {module}"
    return (f"{path}: the file needs {what}, which does not exist here (it was saved from {where}). "
            f"Import or define {name} before loading, and pass it: "
            f"scratchnet.load(path, allowed_classes=[{name}]).")
