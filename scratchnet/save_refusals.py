"""What ``model.save`` refuses because ``scratchnet.load`` would: globals the safe loader refuses.

A pickle names every function and class it needs as a global (``module.name``). The restricted
loader (safe_unpickler.py) takes only scratchnet's classes, NumPy's array rebuilders, builtin
containers and the user's own classes of the kinds ``allowed_classes`` takes. So a layer keeping
``self.fn = np.tanh`` or its own ``np.random.default_rng()`` saved fine and then could not be
loaded, with no layer named. ``check_globals`` reads the globals the pickle names (an opcode
scan of the bytes, before any file is written) and, for one the loader would refuse even with
``allowed_classes``, names the layer and attribute that hold it, with what to do instead.
Names only: a call the loader refuses (``REDUCE`` of an allowed class) is left to the load.
"""

from __future__ import annotations

import io
import pickletools
import sys

from .safe_unpickler import ALLOWED_KINDS, allowed_global, check_allowed_class, own_class_kind

# The opcodes that push a string: a global's module or name when a STACK_GLOBAL follows.
_STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                   "BINSTRING", "STRING"}
_GET_OPCODES = {"GET", "BINGET", "LONG_BINGET"}  # push memo[index]
_PUT_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT"}  # memo[index] = the top value (nothing pushed)
# Opcodes that push nothing: they must not hide the two strings before a STACK_GLOBAL.
_PUSH_NOTHING = {"PROTO", "FRAME", "MEMOIZE"} | _PUT_OPCODES


def pickle_globals(payload: bytes) -> set[tuple[str, str]]:
    """Every (module, name) a pickle names with ``GLOBAL`` or ``STACK_GLOBAL``.

    The pickle is read opcode by opcode (``pickletools.genops``: nothing is run or imported):

    * ``GLOBAL`` (protocols 0-3) carries "module name" in its argument;
    * ``STACK_GLOBAL`` (protocol 4+) takes module and name from the two values pushed just
      before it: two strings, each pushed as a string opcode or fetched from the memo (``GET``),
      where an earlier ``PUT``/``MEMOIZE`` stored a string already written once.

    So the scan keeps the last two values pushed (a string, or None for anything else) and what
    each memo slot holds (``MEMOIZE`` stores into slot ``len(memo)``, as the unpickler does).
    genops reads every argument, arrays' bytes too: about 1 ms per MB of pickle (an 84 MB model's
    save took 290 ms instead of 200; the zoo's models, under 2 MB, a few ms), chosen over a
    faster scan that stepped over the bytes by hand, for a reader's sake.
    """
    found = set()
    memo = {}                    # memo slot -> the string stored there, or None
    before_last, last = None, None  # the last two values pushed
    for opcode, argument, _ in pickletools.genops(payload):
        name = opcode.name
        if name == "GLOBAL":
            module, _, qualname = argument.partition(" ")
            found.add((module, qualname))
        elif name == "STACK_GLOBAL" and isinstance(before_last, str) and isinstance(last, str):
            found.add((before_last, last))
        elif name in _PUT_OPCODES:
            memo[argument] = last
        elif name == "MEMOIZE":
            memo[len(memo)] = last
        if name in _PUSH_NOTHING:
            continue
        if name in _STRING_OPCODES:
            pushed = argument
        elif name in _GET_OPCODES:
            pushed = memo.get(argument)
        else:
            pushed = None  # a number, an object, a mark, a STACK_GLOBAL's class, ...
        before_last, last = last, pushed
    return found


def _look_up(module: str, name: str):
    """The object ``module.name`` names in this process (the one being saved), or None."""
    found = sys.modules.get(module)
    for part in name.split("."):
        found = getattr(found, part, None)
    return found


def refused_at_load(module: str, name: str) -> bool:
    """True if the safe loader refuses ``module.name`` whatever ``allowed_classes`` is given:
    neither allowed by itself (``allowed_global``) nor a class ``allowed_classes`` would take
    (``check_allowed_class``, the rule ``scratchnet.load`` applies to it)."""
    if allowed_global(module, name) is not None:
        return False
    try:
        check_allowed_class(_look_up(module, name))
    except TypeError:
        return True
    return False


def _names(value, pickler_class) -> set[tuple[str, str]]:
    buffer = io.BytesIO()
    try:
        pickler_class(buffer, protocol=5).dump(value)
    except Exception:  # noqa: BLE001 - the whole model pickled; a part that does not is not the holder
        return set()
    return pickle_globals(buffer.getvalue())


def _saved_attributes(obj) -> dict:
    """The attributes pickle saves for ``obj``: its ``__getstate__()`` dict, or ``vars(obj)`` when
    ``__getstate__`` returns something else (a tuple of the class's own making)."""
    state = obj.__getstate__()
    return state if isinstance(state, dict) else vars(obj)


def _is_of_class(obj, refused: tuple[str, str]) -> bool:
    return (type(obj).__module__, type(obj).__qualname__) == refused


def _holding(value, refused: tuple[str, str]) -> str:
    """"numpy.tanh" for the global itself, or "a numpy.random._generator.Generator whose pickle
    names numpy.random..." for a value that names it."""
    what = ".".join(refused)
    if value is _look_up(*refused):
        return what
    kind = type(value)
    return f"a {kind.__module__}.{kind.__qualname__} whose pickle names {what}"


def holder(model, refused: tuple[str, str], pickler_class) -> str:
    """What names ``refused``, in words: a layer of that class, or the layer attribute (or model
    attribute) holding it ("layer 'act' (Func) attribute 'fn' holds numpy.tanh").

    Layers are searched deepest first (a container's children before the container), each
    layer's own class before its attributes, each attribute pickled alone as the file pickles it.
    """
    from .layers.base import iter_layers

    what = ".".join(refused)
    for layer in reversed(list(iter_layers(model.layers))):
        where = f"layer {layer.name!r} ({type(layer).__name__})"
        if _is_of_class(layer, refused):
            return f"{where} is an object of {what}"
        for attribute, value in _saved_attributes(layer).items():
            if refused in _names(value, pickler_class):
                return f"{where} attribute {attribute!r} holds {_holding(value, refused)}"
    if _is_of_class(model, refused):
        return f"the model is an object of {what}"
    for attribute, value in _saved_attributes(model).items():
        if attribute != "layers" and refused in _names(value, pickler_class):
            return f"the model's attribute {attribute!r} holds {_holding(value, refused)}"
    return f"the model's pickle names {what}"


def _advice(module: str, name: str) -> str:
    """What to keep in the attribute instead of the refused object."""
    from .model import Sequential

    found = _look_up(module, name)
    if module.startswith("numpy.random"):
        return ("a NumPy random generator pickles through NumPy internals the safe loader refuses: "
                "draw from self.random_generator() (the model's generator, saved with it and seeded "
                "by the model's seed) instead of keeping a generator of your own")
    if isinstance(found, type) and issubclass(found, Sequential):
        return ("a model class of your own (a Sequential subclass) is no kind allowed_classes takes: "
                "build a scratchnet.Sequential and keep your code in layers of your own")
    if isinstance(found, type) and own_class_kind(found) is not None:  # refused for its __new__/__del__
        return (f"{name} (or a base class) defines __new__ or __del__, which would run code when the "
                f"file is loaded: remove them")
    if isinstance(found, type) and any("__call__" in vars(klass) for klass in found.__mro__[:-1]):
        return (f"{name} looks like a learning-rate schedule (it has __call__): derive it from "
                f"scratchnet.schedules.Schedule, the kind a model file holds, and load it with "
                f"allowed_classes=[{name}]")
    if isinstance(found, type):
        return (f"it is a class of no kind a model file holds ({ALLOWED_KINDS}): keep plain data "
                f"(numbers, strings, arrays, lists, dicts) instead")
    if callable(found):
        return (f"a model file never names a function: keep its name, self.fn_name = {name!r}, and look "
                f"it up when you call it, getattr(np, self.fn_name)(x)")
    return "keep plain data (numbers, strings, arrays, lists, dicts) instead"


def check_globals(model, payload: bytes, pickler_class) -> str | None:
    """Why ``scratchnet.load`` would refuse the pickle ``payload`` of ``model``, or None."""
    refused = sorted(key for key in pickle_globals(payload) if refused_at_load(*key))
    if not refused:
        return None
    module, name = refused[0]
    return (f"{holder(model, refused[0], pickler_class)}, which the safe loader refuses even with "
            f"allowed_classes: {_advice(module, name)}")
