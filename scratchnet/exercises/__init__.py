"""Graded backprop exercises: ``scratchnet exercise list | start NAME | check FILE``.

Each exercise is a starter file (package data in ``starters/``) with a layer whose forward or
backward is left for the student, and a docstring with the shapes and the math to derive. The
grader (grader.py) loads the student's file, then for every case of the exercise runs

1. the layer contract and a float64 gradient check (``scratchnet.gradcheck.check_layer``);
2. a comparison with scratchnet's own layer, on the same weights and inputs (forward, dx, grads);

and prints one verdict per case with the diagnosis of what is wrong. No solution is shipped.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .registry import EXERCISES, Case, Exercise

__all__ = ["EXERCISES", "Case", "Exercise", "list_exercises", "starter_text", "start", "check"]


def list_exercises() -> list[tuple[str, str]]:
    """(name, one-line description) of every exercise, in course order."""
    return [(exercise.name, exercise.title) for exercise in EXERCISES.values()]


def get_exercise(name: str) -> Exercise:
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; expected one of {', '.join(EXERCISES)}")
    return EXERCISES[name]


def starter_text(name: str) -> str:
    """The starter file of exercise ``name``."""
    get_exercise(name)
    return resources.files("scratchnet.exercises.starters").joinpath(f"{name}.py").read_text(encoding="utf-8")


def start(name: str, path=None, overwrite: bool = False) -> Path:
    """Write the starter of ``name`` to ``path`` (default ./NAME.py); never overwrites silently."""
    text = starter_text(name)
    path = Path(path if path is not None else f"{name}.py")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists already; pass another path (or overwrite=True)")
    path.write_text(text, encoding="utf-8")
    return path


def check(path, name: str | None = None):
    """Grade the student's file at ``path``; returns a ``GradeReport`` (``.passed``, ``str()``)."""
    from .grader import grade_file

    return grade_file(path, name)
