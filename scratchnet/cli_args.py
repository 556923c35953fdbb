"""Argument types shared by the ``scratchnet`` subcommands (each refuses a bad value clearly)."""

from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import sys


def whole_number(text: str, minimum: int) -> int:
    """``text`` as an int >= ``minimum``, else an error argparse prints beside the option's name."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def nonnegative_int(text: str) -> int:
    """A whole number >= 0, such as a random seed."""
    return whole_number(text, 0)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    if not math.isfinite(value):  # float("inf") parses; a learning rate of inf gives NaN weights
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value}")
    return value


def shape(text: str, example: str = "28,28,1") -> tuple[int, ...]:
    """Sizes such as "28,28,1" or "28x28x1"; ``example`` is the one the error message shows."""
    try:
        sizes = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like {example}, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
    return sizes


def shell_quoted(path) -> str:
    """``path`` as one argument for the user's shell, to copy into a command: 'my ex.py' in a POSIX
    shell, "my ex.py" in Windows' cmd.exe; a plain path stays as it is."""
    return subprocess.list2cmdline([str(path)]) if os.name == "nt" else shlex.quote(str(path))


def cli_wording(message: str) -> str:
    """Dataset errors speak of the Python arguments; on the command line they are flags."""
    for python, flag in (("given as root= / `scratchnet train --data-dir FOLDER`", "given with --data-dir"),
                         ("pass the folder as root", "pass the folder with --data-dir"),
                         ("download=False", "--no-download"), ("root=", "--data-dir ")):
        message = message.replace(python, flag)
    return message


def exit_code_of(command: str, run, args, messages=()) -> int:
    """``run(args)``, with the mistakes a user can make printed as one line on stderr (no
    traceback) and turned into an exit code: a dataset that cannot be read (``DatasetError``) and
    the ``messages`` exception classes (e.g. evaluate's ``CommandError``) exit 1, a command-line
    value that cannot work (``UsageError``) exits 2."""
    from .cli_train import UsageError
    from .datasets import DatasetError

    try:
        return run(args)
    except DatasetError as error:
        print(f"scratchnet {command}: {cli_wording(str(error))}", file=sys.stderr)
        return 1
    except messages as error:
        print(f"scratchnet {command}: {error}", file=sys.stderr)
        return 1
    except UsageError as error:
        print(f"scratchnet {command}: {error}", file=sys.stderr)
        return 2
