"""What ``model.save`` refuses because ``scratchnet.load`` would: globals the safe loader refuses.

A pickle names every function and class it needs as a global (``module.name``). The restricted
loader (safe_unpickler.py) takes only scratchnet's classes, NumPy's array rebuilders, builtin
containers and the user's own classes of the kinds ``allowed_classes`` takes. So a layer keeping
``self.fn = np.tanh`` or its own ``np.random.default_rng()`` saved fine and then could not be
loaded, with no layer named. ``check_globals`` reads the globals the pickle names (an opcode
scan of the bytes, before any file is written) and, for one the loader would refuse even with
``allowed_classes``, names the layer and attribute that hold it, with what to do instead.
"""

from __future__ import annotations

import io
import pickletools
import sys

from .safe_unpickler import ALLOWED_KINDS, allowed_global, own_class_kind

# How the scan treats each opcode (pickletools.code2op: every opcode of every protocol):
#   "string"  pushes a string (a global's module or name, protocol 4+): read with pickletools' reader
#   "get"     pushes memo[index]; "put" stores the top in memo[index]; "memoize" in memo[len(memo)]
#   "global"  GLOBAL "module name" (protocols 0-3); "stack_global" the two strings pushed before it
#   "read"    another argument read with its reader (text, up to a newline); "fixed": n bytes
#   "counted" an argument after its own length field (n bytes wide): bytes, the arrays' data,
#             stepped over unread (most of the file)
# and whether it pushes a value (PROTO and FRAME do not: they must not hide the strings before
# a STACK_GLOBAL).
_STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                   "BINSTRING", "STRING"}
_MEMO_INDEX_WIDTH = {"BINGET": 1, "BINPUT": 1, "LONG_BINGET": 4, "LONG_BINPUT": 4}
_LENGTH_WIDTH = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
                 pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}


def _scan_rule(opcode) -> tuple[str, int, bool]:
    """(what the scan does, argument bytes or length-field width, pushes a value) for an opcode."""
    name, size = opcode.name, opcode.arg.n if opcode.arg is not None else 0
    pushes = name not in ("PROTO", "FRAME")
    if name in _STRING_OPCODES:
        return "string", 0, pushes
    if name in _MEMO_INDEX_WIDTH:
        return ("get" if "GET" in name else "put"), _MEMO_INDEX_WIDTH[name], "GET" in name
    if name in ("GET", "PUT"):  # protocol 0: a decimal index on a line
        return name.lower(), -1, name == "GET"
    if name in ("MEMOIZE", "GLOBAL", "STACK_GLOBAL"):
        return name.lower(), 0, name != "MEMOIZE"
    if size == pickletools.UP_TO_NEWLINE:
        return "read", 0, pushes
    if size >= 0:
        return "fixed", size, pushes
    return "counted", _LENGTH_WIDTH[size], pushes


_RULES = {ord(code): (opcode, *_scan_rule(opcode)) for code, opcode in pickletools.code2op.items()}


def pickle_globals(payload: bytes) -> set[tuple[str, str]]:
    """Every (module, name) a pickle names with ``GLOBAL`` or ``STACK_GLOBAL``.

    ``STACK_GLOBAL`` takes its module and name from the two values pushed just before it,
    either strings or memo fetches of strings seen earlier; so the scan remembers the last two
    values pushed (a string, or None for anything else) and which memo slots hold strings.
    Same opcodes as ``pickletools.genops``, but only the arguments the scan needs are read.
    """
    found, memo = set(), {}
    before_last = last = None  # the last two values pushed
    stream = io.BytesIO(payload)  # for pickletools' argument readers (shares the bytes, no copy)
    position = 0
    while True:
        opcode, rule, size, pushes = _RULES[payload[position]]  # IndexError/KeyError: not a pickle
        position += 1
        pushed = None
        if rule in ("string", "read", "global") or size < 0:
            stream.seek(position)
            argument = opcode.arg.reader(stream)
            position = stream.tell()
            if rule == "string":
                pushed = argument
            elif rule == "global":
                module, _, qualname = argument.partition(" ")
                found.add((module, qualname))
            elif rule in ("get", "put"):
                size, index = 0, int(argument)
        elif rule in ("get", "put", "counted"):
            number = int.from_bytes(payload[position:position + size], "little")
            position += size + (number if rule == "counted" else 0)
            index = number
        else:
            position += size  # "fixed", "memoize", "stack_global"
        if rule == "get":
            pushed = memo.get(index)
        elif rule == "put":
            memo[index] = last
        elif rule == "memoize":
            memo[len(memo)] = last
        elif rule == "stack_global" and isinstance(before_last, str) and isinstance(last, str):
            found.add((before_last, last))
        if opcode.name == "STOP":
            return found
        if pushes:
            before_last, last = last, pushed


def _look_up(module: str, name: str):
    """The object ``module.name`` names in this process (the one being saved), or None."""
    found = sys.modules.get(module)
    for part in name.split("."):
        found = getattr(found, part, None)
    return found


def refused_at_load(module: str, name: str) -> bool:
    """True if the safe loader refuses ``module.name`` whatever ``allowed_classes`` is given."""
    if allowed_global(module, name) is not None:
        return False
    found = _look_up(module, name)
    if own_class_kind(found) is None:
        return True
    return any("__new__" in vars(klass) or "__del__" in vars(klass) for klass in found.__mro__[:-1])


def _names(value, pickler_class) -> set[tuple[str, str]]:
    buffer = io.BytesIO()
    try:
        pickler_class(buffer, protocol=5).dump(value)
    except Exception:  # noqa: BLE001 - the whole model pickled; a part that does not is not the holder
        return set()
    return pickle_globals(buffer.getvalue())


def holder(model, refused: tuple[str, str], pickler_class) -> tuple[str, object]:
    """(where, what): the layer attribute (or model attribute) whose value names ``refused``.

    Layers are searched deepest first (a container's children before the container), each
    attribute pickled alone as the model file pickles it.
    """
    from .layers.base import iter_layers

    for layer in reversed(list(iter_layers(model.layers))):
        for attribute, value in layer.__getstate__().items():
            if refused in _names(value, pickler_class):
                return f"layer {layer.name!r} ({type(layer).__name__}) attribute {attribute!r}", value
    for attribute, value in model.__getstate__().items():
        if attribute != "layers" and refused in _names(value, pickler_class):
            return f"the model's attribute {attribute!r}", value
    return "an attribute of the model", None


def _advice(module: str, name: str) -> str:
    """What to keep in the attribute instead of the refused object."""
    found = _look_up(module, name)
    if module.startswith("numpy.random"):
        return ("a NumPy random generator pickles through NumPy internals the safe loader refuses: "
                "draw from self.random_generator() (the model's generator, saved with it and seeded "
                "by the model's seed) instead of keeping a generator of your own")
    if isinstance(found, type):
        return (f"it is a class of no kind a model file holds ({ALLOWED_KINDS}), or one with its own "
                f"__new__ or __del__: keep plain data (numbers, strings, arrays, lists, dicts) instead")
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
    where, value = holder(model, refused[0], pickler_class)
    what = f"{module}.{name}"
    if value is not _look_up(module, name):  # the value is not the global itself but names it
        kind = type(value)
        what = f"a {kind.__module__}.{kind.__qualname__} whose pickle names {what}"
    return f"{where} holds {what}, which the safe loader refuses even with allowed_classes: " \
           f"{_advice(module, name)}"
