"""Load a student's exercise file as ``python file.py`` would run it (this RUNS the file's code).

Three things differ from ``importlib``'s ``exec_module`` on purpose:

- the file's own folder is first on ``sys.path`` while it loads, so ``import helpers`` finds the
  student's ``helpers.py`` beside it (from whichever folder the command is run);
- no bytecode cache: importlib reads ``__pycache__/NAME.pyc`` when the source's modification time
  (in whole seconds) and size match, so an edit within the same second that keeps the size would
  be graded as the OLD code; the source is compiled from its bytes every time, and nothing is
  written to the student's folder;
- the source is read as bytes and ``compile`` decodes it (UTF-8, or the file's coding cookie), so
  a comment ``# δ = dy·1[x>0]`` loads under ``LC_ALL=C`` too.
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
    code = compile(path.read_bytes(), str(path), "exec")  # a SyntaxError names the file and line
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    folder, wrote_bytecode = str(path.parent), sys.dont_write_bytecode
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
    return module


def exercise_name_of(path) -> str | None:
    """The name in the starter's first line '# scratchnet exercise: NAME' (the file read as UTF-8)."""
    text = Path(path).read_bytes().decode("utf-8")  # a binary file raises UnicodeDecodeError
    match = re.search(r"^# scratchnet exercise: (\w+)", text, re.M)
    return match.group(1) if match else None
