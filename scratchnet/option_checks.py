"""Checks on the options a function, layer or model is given (numbers, paths, dtypes, seeds),
each raising with a message that names the owner, the option, what was expected and what came.

Which exception, by one rule (Python's own: ``range(2.5)`` is a TypeError, ``math.factorial(-1)``
a ValueError): a value of the wrong TYPE (a float, a string, a bool or None where a whole number
is expected; a number where a file name is expected) raises ``TypeError``; a value of the right
type out of range (``batch_size=0``) raises ``ValueError``. Whole numbers are checked in one
place, ``check_count``: an int or a NumPy integer (``np.int64`` read from an array), never a
bool (``True`` is an int to Python, but ``epochs=True`` is a mistake) nor a float (``2.0``).
Real numbers (lr, rate, p, momentum, a threshold) by the same rule in ``check_real``: an int, a
float or a NumPy number, never a bool, a string or None (TypeError); NaN, inf or a number outside
the option's bounds is a ValueError, with one message: ``Dropout: rate must be a number in [0, 1)``.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np


def check_model_dtype(dtype, owner: str) -> np.dtype:
    """float32 or float64; anything else (float16 included: Adam's eps=1e-8 underflows) is refused."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{owner}: dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dtype not in (np.dtype("float32"), np.dtype("float64")):
        reason = (" (float16 is not supported: its smallest step is too coarse for the optimizer, "
                  "Adam's eps=1e-8 rounds to 0)" if dtype == np.dtype("float16") else "")
        raise TypeError(f"{owner}: dtype must be 'float32' or 'float64', got {dtype}{reason}")
    return dtype


def check_seed(seed, owner: str) -> int:
    """The seed a model keeps, as a Python int: an int >= 0 (a NumPy integer too, never a bool:
    ``seed=True`` is a mistake, not seed 1), or None for fresh entropy from the operating system,
    returned as the int ``np.random.SeedSequence().entropy`` drew (128 bits), so that
    ``Sequential(seed=model.seed)`` repeats a lucky run. ``np.random.default_rng(seed)`` of the
    int is the generator ``default_rng`` would make of the seed as given.

    A ``np.random.SeedSequence`` of one int (not spawned: its spawn_key is part of the seed) is
    that int. Anything else (a Generator, a list, a float, a string) is a TypeError, a negative
    int a ValueError: the model saves its seed, and a file must hold plain numbers to load."""
    message = f"{owner}: seed must be an int >= 0 or None, got {seed!r}"
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, np.random.SeedSequence) and is_int(seed.entropy) and not seed.spawn_key \
            and seed.pool_size == np.random.SeedSequence(0).pool_size:
        seed = seed.entropy
    if not is_int(seed):
        raise TypeError(message)
    if seed < 0:
        raise ValueError(message)
    return int(seed)


def check_path(path, owner: str, option: str = "path", what: str = "file name", bytes_allowed: bool = True):
    """A path: str or os.PathLike (pathlib.Path), and bytes where ``bytes_allowed`` (``open``
    takes them; ``pathlib.Path``, which a data folder becomes, does not). Anything else is a
    TypeError naming ``owner``, the ``option`` and ``what`` it must be ("file name", "folder name")."""
    kinds = (str, bytes, os.PathLike) if bytes_allowed else (str, os.PathLike)
    if not isinstance(path, kinds):
        raise TypeError(f"{owner}: {option} must be a {what} (str or pathlib.Path), got {path!r}")
    return path


def refuse_class(value, what: str, owner: str, expected: str = "an object", arguments: str = "") -> None:
    """A class given where an object of it is expected (``Adam`` for ``Adam()``): TypeError.

    ``expected`` says what ``what`` must be; ``arguments`` go in the remedy's parentheses
    (``"..."`` for a class that needs some, as ``StepDecay(...)``)."""
    if isinstance(value, type):
        raise TypeError(f"{owner}: {what} must be {expected}, got the class {value.__name__} itself; "
                        f"create one: {value.__name__}({arguments})")


def check_bool(value, option: str, owner: str, hint: str = "") -> bool:
    """True or False: a Python bool or a NumPy bool (read from an array), returned as a bool.

    Anything else is a TypeError (``hint`` is added to its message): ``bool("no")`` is True, and
    a value given by position in the wrong place (``Dense(10, "relu", "he_normal")``: the
    initializer lands in use_bias) would switch the option on and be lost. 0 and 1 are refused
    too: a flag is not a count."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {option} must be True or False, got {value!r}{hint}")
    return bool(value)


def check_monitor(monitor, owner: str) -> str:
    """A callback's ``monitor``: the name of a logged value, a str (a list would pass until the
    first epoch's end, then fail as an unhashable key). Whether fit logs it is checked by fit."""
    if not isinstance(monitor, str):
        raise TypeError(f"{owner}: monitor must be the name of a logged value (a str such as "
                        f"'val_loss' or 'loss'), got {monitor!r}")
    return monitor


def check_count(value, option: str, owner: str, least: int, most: int | None = None) -> int:
    """A whole number ``least <= value`` (``<= most`` if given), returned as a Python int: the one
    check of every whole-number option (batch_size, epochs, filters, steps, n, ...).

    Not an int (``is_int``: a float, a string, None, a bool) -> TypeError; an int out of range ->
    ValueError. Both messages name ``owner`` and ``option`` and say what was expected."""
    expected = f"an int >= {least}" if most is None else f"an int from {least} to {most}"
    if not is_int(value):
        raise TypeError(f"{owner}: {option} must be {expected}, got {value!r}{whole_float_hint(value)}")
    if value < least or (most is not None and value > most):
        raise ValueError(f"{owner}: {option} must be {expected}, got {value!r}")
    return int(value)


def check_real(value, option: str, owner: str, least=None, most=None, above=None, below=None,
               why_low: str = "", why_high: str = "", allow_inf: bool = False) -> float:
    """A real number as a Python float: the one check of every real-valued option (lr, rate, p,
    momentum, eps, thresholds, weights, ...), by ``check_count``'s rule. Optional bounds:
    ``least <= value <= most``, ``above < value < below``; ``least=0, below=1`` is [0, 1).

    Not a real number (``is_real``: a string, None, a bool) -> TypeError; NaN, inf or a number out
    of the bounds -> ValueError, followed by `` (why_low)`` or `` (why_high)`` (why that bound)
    when the number is below or above its bounds. Both messages name ``owner`` and
    ``option`` and say what was expected: ``SGD: momentum must be a number in [0, 1), got 1.5``.
    ``allow_inf``: inf passes (within the bounds): a threshold set to inf switches its check off."""
    expected = real_bounds_text(least, most, above, below)
    if allow_inf:  # 'a finite number > 0' -> 'a number > 0 or inf'
        expected = expected.replace("a finite number", "a number") + " or inf"
    if not is_real(value):
        raise TypeError(f"{owner}: {option} must be {expected}, got {value!r}")
    too_low = (least is not None and not value >= least) or (above is not None and not value > above)
    too_high = (most is not None and not value <= most) or (below is not None and not value < below)
    if too_low or too_high or math.isnan(value) or (math.isinf(value) and not allow_inf):
        why = why_low if too_low else why_high if too_high else ""
        reason = f" ({why})" if why else ""
        raise ValueError(f"{owner}: {option} must be {expected}, got {value}{reason}")
    return float(value)


def real_bounds_text(least=None, most=None, above=None, below=None) -> str:
    """What ``check_real`` expects, in words: 'a number in [0, 1)', 'a finite number > 0', ..."""
    low_bracket, low = ("[", least) if least is not None else ("(", above)
    high, high_bracket = (most, "]") if most is not None else (below, ")")
    if low is not None and high is not None:
        return f"a number in {low_bracket}{low}, {high}{high_bracket}"
    if low is not None:
        return f"a finite number {'>=' if least is not None else '>'} {low}"
    if high is not None:
        return f"a finite number {'<=' if most is not None else '<'} {high}"
    return "a finite number"


def lower_case_hint(name, known) -> str:
    """' (did you mean 'relu'? names are lower case)' for 'ReLU' when 'relu' is in ``known``."""
    lowered = name.lower() if isinstance(name, str) else None
    return f" (did you mean {lowered!r}? names are lower case)" if lowered in known else ""


def is_int(value) -> bool:
    """True for an int or a NumPy integer (numbers.Integral), False for a bool: ``True`` is an int
    to Python, but as a count or a size it is always a mistake."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    """True for a real number, Python's or NumPy's (numbers.Real: np.float32, np.int64), False for
    a bool (``True`` is 1 to Python, but as a rate or a weight it is always a mistake)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def whole_float_hint(*values) -> str:
    """' (a float: pass int(...), or compute it with //)' if one of ``values`` is a whole-valued
    float such as 2.0 or np.float64(3) (a size computed with / or read as a float), else ''."""
    def is_whole_float(value):
        return isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value)

    return " (a float: pass int(...), or compute it with //)" if any(map(is_whole_float, values)) else ""
