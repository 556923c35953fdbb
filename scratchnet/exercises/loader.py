"""Load a student's exercise file as ``python file.py`` would run it (this RUNS the file's code).

Three things differ from ``importlib``'s ``exec_module`` on purpose:

- the file's own folder is first on ``sys.path`` while it loads, so ``import helpers`` finds the
  student's ``helpers.py`` beside it (from whichever folder the command is run);
- no bytecode cache: importlib reads ``__pycache__/NAME.pyc`` when the source's modification time
  (in whole seconds) and size match, so an edit within the same second that keeps the size would
  be graded as the OLD code; the source is compiled from its bytes every time, and nothing is
  written to the student's folder;
- the source is read as bytes and ``compile`` decodes it (UTF-8, or the file's coding cookie), so
  a comment ``# δ = dy·1[x>0]`` loads under ``LC_ALL=C`` too; it is compiled with
  ``dont_inherit=True``, so this module's ``from __future__ import annotations`` does not reach it;
- the modules the file's loading imported from its folder (its ``helpers.py``) are dropped from
  ``sys.modules`` afterwards: the next file's ``import helpers`` (another student's folder, or this
  one after an edit) imports its own, as a fresh ``python file.py`` would. Modules imported before
  the load (a notebook's own ``from mylayers import Twice``, scratchnet itself when working from a
  clone) stay, as in plain Python: dropping them would make their classes new objects (pickling
  ``Twice`` then fails: "not the same object as mylayers.Twice").
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path


class NotAPythonFile(ValueError):
    """load_module was given a file importlib cannot import (not .py)."""


def load_module(path):
    """Import a Python file from its path (this RUNS the file's code)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    module_name = f"scratchnet_student_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{abs(hash(path)) % 10**8}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or path.suffix != ".py":  # only source files: a .pyc would be a cache again
        raise NotAPythonFile(f"{path}: not a Python .py file")
    module = importlib.util.module_from_spec(spec)
    # a SyntaxError names the file and line; dont_inherit: not this module's __future__ imports
    code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    folder, wrote_bytecode = str(path.parent), sys.dont_write_bytecode
    imported_before = set(sys.modules)
    sys.path.insert(0, folder)
    sys.dont_write_bytecode = True  # the student's helpers.py imported from here: no __pycache__ either
    try:
        exec(code, module.__dict__)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        sys.dont_write_bytecode = wrote_bytecode
        if folder in sys.path:
            sys.path.remove(folder)  # the first occurrence: the one inserted above
        # what this load imported from the folder goes: the next file's `import helpers` finds its own
        forget_modules_from(path.parent, set(sys.modules) - imported_before)
    return module


def forget_modules_from(folder: Path, names: set[str]) -> None:
    """Drop from ``sys.modules`` those of ``names`` imported from ``folder`` (an absolute, resolved
    path) as a top-level name: NAME.py or NAME/__init__.py there, and their submodules NAME.sub.

    The loaded files themselves (``scratchnet_student_*``) stay: pickling looks them up. Only the
    module named by its place in ``folder`` is dropped, never a package that merely lies below it
    (a student's file in the home folder keeps numpy from ~/.local/lib/.../site-packages)."""
    resolved = {}  # sys.path folder as imported -> resolved: a few folders for ~1000 modules
    for name in names:
        module = sys.modules.get(name)
        root = None if module is None else import_root(name, module)
        if root is None or name.startswith("scratchnet_student_"):
            continue
        if root not in resolved:
            try:
                resolved[root] = Path(root).resolve()  # imported through a link to the folder
            except (OSError, RuntimeError):
                resolved[root] = None
        if resolved[root] == folder:
            del sys.modules[name]


def import_root(name: str, module) -> str | None:
    """The sys.path folder ``module`` was imported from as ``name`` ("a.b" from ROOT/a/b.py or
    ROOT/a/b/__init__.py: ROOT), or None (a built-in module, a compiled extension, no file)."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file.endswith(".py"):
        return None
    parts = Path(file).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    depth = len(name.split("."))
    if len(parts) < depth or list(parts[-depth:]) != name.split("."):
        return None  # a name that is not its place (a module loaded from a path, __main__)
    return str(Path(*parts[:-depth]))  # "." for a relative "helpers.py": the working folder


def exercise_name_of(path) -> str | None:
    """The name in the starter's first line '# scratchnet exercise: NAME', or None.

    Only that line has to be text: a byte that is not UTF-8 elsewhere (a comment '# dérivée' saved
    as cp1252) reads as U+FFFD, so the file gets the verdict it gets with ``--name`` (where
    ``compile`` reads it). A file with no such line that is not UTF-8 at all (a .npy) raises
    UnicodeDecodeError: the command says 'not a text file'."""
    source = Path(path).read_bytes()
    match = re.search(r"^# scratchnet exercise: (\w+)", source.decode("utf-8", errors="replace"), re.M)
    if match:
        return match.group(1)
    source.decode("utf-8")  # a binary file raises UnicodeDecodeError
    return None
