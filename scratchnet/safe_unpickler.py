"""The restricted unpickler behind ``scratchnet.load``: which globals a model file may name.

A pickle is a small program: it names globals (``GLOBAL``) and calls them (``REDUCE``), so a
file can say "call os.system('...')". :class:`RestrictedUnpickler` is Python's own pickle machine
(``pickle._Unpickler``, pure Python, so every opcode can be checked) with the rules written out
in scratchnet/serialization.py's docstring: only scratchnet's own classes (defined in an
already-imported scratchnet module), NumPy's array/dtype rebuilders and builtin containers may
be named; only the NumPy rebuilders, ``complex`` and ``OrderedDict`` may be called; ``BUILD``
only on instances. Each opcode is checked before it acts, so nothing a refused file names runs.
"""

from __future__ import annotations

import builtins
import collections
import pickle
import struct
import sys
from pathlib import Path

import numpy as np


class UnsafeModelError(pickle.UnpicklingError):
    """The file names or calls something the restricted loader does not allow."""


class MissingScratchnetClass(UnsafeModelError):
    """The file names a scratchnet class this scratchnet does not have (a newer one wrote it).

    Refused like any unknown global, but ``serialization.load_model`` turns it into a
    ``SerializationError`` that names both versions: the cure is an upgrade, not trust."""

    def __init__(self, module: str, name: str):
        super().__init__(f"refused to load global {module}.{name}: this scratchnet has no such class "
                         f"(a newer scratchnet may have written the file)")
        self.module, self.name = module, name


# ====================================================================== allow-list
_BUILTIN_TYPES = {name: getattr(builtins, name) for name in (
    "dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str",
    "bytes", "bytearray", "object")}
# scratchnet modules whose classes never belong in a model file.
_EXCLUDED_MODULES = ("scratchnet.serialization", "scratchnet.safe_unpickler", "scratchnet.cli",
                     "scratchnet.__main__", "scratchnet.datasets", "scratchnet.progress")


def _numpy_rebuilders() -> dict:
    """The functions NumPy's pickles call to rebuild arrays and scalars, for this NumPy."""
    try:
        from numpy._core import multiarray, numeric  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray, numeric
    return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar,
            "_frombuffer": numeric._frombuffer}


def numpy_global(module: str, name: str):
    """The NumPy array/scalar/dtype rebuilder a pickle may name as ``module.name``, or None."""
    if module == "numpy" and name in ("ndarray", "dtype"):
        return getattr(np, name)
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
        return _numpy_rebuilders()[name]
    if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
        return _numpy_rebuilders()[name]
    dtypes_module = sys.modules.get("numpy.dtypes")  # NumPy >= 1.25
    if module == "numpy.dtypes" and dtypes_module is not None:
        dtype_class = vars(dtypes_module).get(name)
        if isinstance(dtype_class, type) and issubclass(dtype_class, np.dtype):
            return dtype_class
    return None


# Classes that moved to another module since files were first saved: (old module, name) -> new
# module. Files name a class by where it was defined when they were written.
_MOVED_CLASSES = {("scratchnet.optimizers", name): "scratchnet.schedules"
                  for name in ("ConstantLR", "StepDecay", "ExponentialDecay", "CosineDecay")}


def _excluded(module: str) -> bool:
    """True for a module in ``_EXCLUDED_MODULES`` or inside one of them (a package's submodule)."""
    return any(module == excluded or module.startswith(excluded + ".") for excluded in _EXCLUDED_MODULES)


def _scratchnet_class(module: str, name: str):
    """A class defined in an already-imported scratchnet module, or None.

    Looking only in ``sys.modules`` means a file can never make Python import (run) a module;
    ``import scratchnet`` has imported every built-in layer, optimizer and loss already.
    """
    module = _MOVED_CLASSES.get((module, name), module)
    if module != "scratchnet" and not module.startswith("scratchnet."):
        return None
    if _excluded(module):
        return None
    namespace = sys.modules.get(module)
    if namespace is None:
        return None
    cls = vars(namespace).get(name)  # plain lookup: no dotted paths, no module __getattr__
    if not isinstance(cls, type) or cls.__module__ != module or cls.__qualname__ != name:
        return None
    if runs_code_when_made_or_freed(cls):
        return None
    return cls


def _missing_from_scratchnet(module: str, name: str) -> bool:
    """True if ``module.name`` is a scratchnet class name (``Dense``, a capital first letter) that
    this scratchnet does not have at all: no such module in this scratchnet (imported or not), or
    no such name in it. A name
    that exists but is refused (a function, a class imported from elsewhere, an excluded module)
    or is no class name (``math``, ``Sequential.__init__``) is unsafe, not missing."""
    module = _MOVED_CLASSES.get((module, name), module)
    if module != "scratchnet" and not module.startswith("scratchnet."):
        return False
    if not (name.isidentifier() and name[:1].isupper()):
        return False
    if _excluded(module):
        return False
    namespace = sys.modules.get(module)
    if namespace is None:
        return not _not_imported_yet(module)
    return name not in vars(namespace)


def _not_imported_yet(module: str) -> bool:
    """True if ``module`` (a scratchnet.* name) is a module of this scratchnet that nobody has
    imported yet (e.g. an exercise starter): its file is in the package, no import needed to see."""
    package_folder = Path(__file__).resolve().parent
    parts = module.split(".")[1:]  # scratchnet.exercises.starters.relu -> exercises/starters/relu
    if not parts or not all(part.isidentifier() for part in parts):
        return False
    if module in sys.modules or _excluded(module):
        return False  # imported already, or never loadable: importing it would not help
    path = package_folder.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _is_scratchnet_class(cls) -> bool:
    return (isinstance(cls, type) and isinstance(getattr(cls, "__module__", None), str)
            and _scratchnet_class(cls.__module__, cls.__qualname__) is cls)


# What a class given in allowed_classes may be, by kind: the base classes a model file holds.
ALLOWED_KINDS = "layer, loss, optimizer, callback or schedule"


def own_class_kind(cls) -> str | None:
    """"layer", "loss", "optimizer", "callback" or "schedule" for a subclass of scratchnet's
    Layer, Loss, Optimizer, Callback or Schedule (scratchnet.schedules); else None.

    These are the kinds a model file holds (its layers, ``model.loss``, ``model.optimizer`` and
    its ``schedule``, and what a layer or optimizer keeps), so the kinds ``allowed_classes`` takes.
    A class is of a kind by its base class only: any class with a ``__call__`` (a library's
    ``ServerProxy``, ``torch.nn.Linear``) is no schedule.
    """
    from .callbacks import Callback
    from .layers.base import Layer
    from .losses import Loss
    from .optimizers import Optimizer
    from .schedules import Schedule

    if not isinstance(cls, type):
        return None
    for base, kind in ((Layer, "layer"), (Loss, "loss"), (Optimizer, "optimizer"), (Callback, "callback"),
                       (Schedule, "schedule")):
        if issubclass(cls, base):
            return kind
    return None


def runs_code_when_made_or_freed(cls) -> bool:
    """True if ``cls`` or a base (but object) defines ``__new__`` or ``__del__``: creating or
    freeing an instance would run its code, so the safe loader never names it."""
    return any("__new__" in vars(klass) or "__del__" in vars(klass) for klass in cls.__mro__[:-1])


def check_allowed_class(cls) -> None:
    """Raise TypeError unless ``allowed_classes`` may take ``cls``: a class of a kind a model
    file holds (``own_class_kind``) that runs no code when made or freed."""
    if own_class_kind(cls) is None:
        raise TypeError(f"allowed_classes takes Layer subclasses, Loss, Optimizer and Callback "
                        f"subclasses and schedule classes (subclasses of scratchnet.schedules.Schedule) "
                        f"of your own, got {cls!r}")
    if runs_code_when_made_or_freed(cls):
        raise TypeError(f"{cls.__qualname__} defines __new__ or __del__: load it with trusted=True")


def _own_class_hint(module: str, name: str) -> str:
    """What to do about a refused ``module.name`` that may be a class of the user's own.

    Its kind is read from an already-imported module (a plain dict lookup: nothing is imported
    and no code runs); a class saved from a script (``__main__``) is looked up in this one."""
    if not name[:1].isupper() or module.split(".")[0] in ("numpy", "builtins", "scratchnet"):
        return ""
    namespace = sys.modules.get(module)
    found = vars(namespace).get(name) if namespace is not None else None
    kind = own_class_kind(found) if isinstance(found, type) else None
    if kind is not None:
        article = "an" if kind[0] in "aeiou" else "a"
        return (f" {name} is {article} {kind} class of your own: pass it, "
                f"scratchnet.load(path, allowed_classes=[{name}]).")
    if isinstance(found, type):
        return (f" {name} is a class of your own that is no {ALLOWED_KINDS} class, so allowed_classes "
                f"cannot take it.")
    return (f" If {name} is a {ALLOWED_KINDS} class of your own, import it and pass it: "
            f"scratchnet.load(path, allowed_classes=[{name}]).")


def allowed_global(module: str, name: str):
    """The object a restricted model file may name as ``module.name``, or None if refused."""
    if module == "builtins" and name in _BUILTIN_TYPES:
        return _BUILTIN_TYPES[name]
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    found = numpy_global(module, name)
    return found if found is not None else _scratchnet_class(module, name)


def _describe(obj) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return f"{module}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


class TrustedUnpickler(pickle.Unpickler):
    """``load(path, trusted=True)``: plain pickle (any class, any code), with two renames only.

    A file names NumPy's array rebuilders by the module that held them when it was written
    (``numpy.core`` before NumPy 2, ``numpy._core`` since), and scratchnet classes by where they
    were defined then (``_MOVED_CLASSES``). Plain ``pickle.loads`` would fail on a NumPy 1 install
    reading a NumPy 2 file (no ``numpy._core``) and warn, then fail once ``numpy.core`` is gone,
    the other way round; the safe loader already maps both, and so does this one.
    """

    def find_class(self, module, name):
        found = numpy_global(module, name)
        if found is not None:
            return found
        return super().find_class(_MOVED_CLASSES.get((module, name), module), name)


# ====================================================================== restricted loader
class RestrictedUnpickler(pickle._Unpickler):
    """Python's pure-Python unpickler with every opcode that names, calls or builds checked.

    The C unpickler offers only ``find_class`` as a hook; the pure-Python one lets us also check
    ``REDUCE``, ``NEWOBJ`` and ``BUILD``. Model pickles are a few hundred small objects plus one
    big byte string per array, so the pure-Python machine is fast enough.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, payload_bytes: int, allowed_classes=()):
        super().__init__(file)
        self.payload_bytes = payload_bytes
        # classes of the user's own (see own_class_kind), allowed by name like ours
        self.extra_classes = {(cls.__module__, cls.__qualname__): cls for cls in allowed_classes}

    def _allowed_class(self, cls) -> bool:
        return _is_scratchnet_class(cls) or cls in self.extra_classes.values()

    def _user_class(self, module, name):
        """An allowed class by module and name; a class saved from a script (``__main__.Scale``)
        or given from one matches an allowed class of the same name in any module."""
        found = self.extra_classes.get((module, name))
        if found is None:
            same_name = [cls for (mod, qualname), cls in self.extra_classes.items()
                         if qualname == name and "__main__" in (mod, module)]
            found = same_name[0] if len(same_name) == 1 else None
        return found

    def find_class(self, module, name):
        found = self._user_class(module, name) or allowed_global(module, name)
        if found is None and _missing_from_scratchnet(module, name):
            raise MissingScratchnetClass(module, name)
        if found is None and module.startswith("scratchnet.") and _not_imported_yet(module):
            raise UnsafeModelError(f"refused to load global {module}.{name}: its module is part of "
                                   f"scratchnet but not imported, and the loader only finds classes of "
                                   f"imported modules: import {module} before scratchnet.load")
        if found is None:
            hint = _own_class_hint(module, name)
            raise UnsafeModelError(
                f"refused to load global {module}.{name}: a scratchnet model file may only name "
                f"scratchnet classes, NumPy array/dtype rebuilders, builtin containers and the "
                f"classes given in allowed_classes.{hint} If you trust this file completely, use "
                f"scratchnet.load(path, trusted=True).")
        return found

    def _refuse(self, what: str):
        raise UnsafeModelError(f"refused to {what}: scratchnet model files never need it. If you "
                               "trust this file completely, use scratchnet.load(path, trusted=True).")

    def load_reduce(self):
        func, args = self.stack[-2], self.stack[-1]
        rebuilders = _numpy_rebuilders()
        if func is np.dtype or func in (rebuilders["scalar"], rebuilders["_frombuffer"]):
            pass
        elif func is rebuilders["_reconstruct"]:
            if not (isinstance(args, tuple) and args and args[0] is np.ndarray):
                self._refuse("rebuild an array of a type other than numpy.ndarray")
        elif func is collections.OrderedDict and args == ():
            pass
        elif func is complex and all(type(part) in (int, float) for part in args):
            pass
        else:
            self._refuse(f"call {_describe(func)}")
        super().load_reduce()

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _check_new(self, cls):
        if not (cls in (object, complex) or self._allowed_class(cls)):
            self._refuse(f"create an object of {_describe(cls)} with NEWOBJ")

    def load_newobj(self):
        self._check_new(self.stack[-2])
        super().load_newobj()

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        self._check_new(self.stack[-3])
        super().load_newobj_ex()

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def load_build(self):
        target = self.stack[-2]
        if isinstance(target, type) or not (isinstance(target, (np.ndarray, np.dtype))
                                            or self._allowed_class(type(target))):
            self._refuse(f"set the state of {_describe(target)} with BUILD")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def load_bytearray8(self):
        # bytearray(n) zero-fills n bytes before reading: check n against the payload first,
        # so a forged length cannot make us allocate gigabytes.
        (size,) = struct.unpack("<Q", self.read(8))
        if size > self.payload_bytes:
            raise pickle.UnpicklingError(f"BYTEARRAY8 of {size} bytes in a {self.payload_bytes}-byte payload")
        data = bytearray(size)
        self.readinto(data)
        if len(data) != size:
            raise pickle.UnpicklingError("pickle data was truncated")
        self.append(data)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def _refuse_opcode(self):
        self._refuse("run protocol 0/1 constructor calls or the copyreg extension registry")

    for _opcode in (pickle.INST, pickle.OBJ, pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_opcode[0]] = _refuse_opcode
    del _opcode
