"""``scratchnet exercise list | start NAME | check FILE`` and ``scratchnet gradcheck FILE:ClassName``.

Kept apart from cli.py, which only hooks these in. Both ``exercise check`` and ``gradcheck
FILE:ClassName`` IMPORT the given Python file, which runs its code: that is what checking your
own layer means, so only run them on files you trust (your own homework).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from .cli_args import shape, shell_quoted


def layer_input_shape(text):
    """--input-shape of one layer's sample, e.g. 6,6,2."""
    return shape(text, example="6,6,2")


RUNS_CODE = ("This imports FILE with importlib, which RUNS the code in it (that is how your layer "
             "gets checked): only use it on files you trust.")


EXERCISE_WORKFLOW = """\
how it goes:
  scratchnet exercise list             the exercises, in course order
  scratchnet exercise start relu       write ./relu.py (never overwrites)
  (fill in what relu.py leaves to you)
  scratchnet exercise check relu.py    grade it: a verdict per case, a diagnosis
  scratchnet exercise start relu --overwrite
                                       start again (your relu.py is replaced)"""


def add_parsers(commands, gradcheck_parser) -> None:
    """Add the FILE:ClassName options to ``gradcheck`` and the ``exercise`` command."""
    gradcheck_parser.description = ("Without FILE:ClassName: check every built-in layer (one table). With "
                                    "FILE:ClassName: check your own layer (contract, gradients, "
                                    "diagnosis). " + RUNS_CODE)
    gradcheck_parser.add_argument("target", nargs="?", default=None, metavar="FILE:ClassName",
                                  help="a Python file and the layer class in it, e.g. my_layer.py:MyDense")
    gradcheck_parser.add_argument("--input-shape", default="5", type=layer_input_shape,
                                  help="one sample's shape, e.g. 6,6,2 (default 5)")
    gradcheck_parser.add_argument("--config", default="{}", type=_json_object,
                                  help="constructor arguments as JSON, e.g. "
                                  '\'{"filters": 2, "kernel_size": 3}\'')
    gradcheck_parser.add_argument("--battery", action="store_true",
                                  help="run the adversarial battery (stride, overlap, ties, dtypes, ...)")
    gradcheck_parser.add_argument("--training", action="store_true", help="forward in training mode")
    gradcheck_parser.add_argument("--figure", default=None,
                                  help="save a PNG of the first failing array's mismatch here")

    exercise = commands.add_parser("exercise", help="graded backprop exercises (list, start, check)",
                                   description=textwrap.fill("Graded backprop exercises. 'check' "
                                                             + RUNS_CODE[5:], 78),
                                   epilog=EXERCISE_WORKFLOW,  # kept as written: one command a line
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = exercise.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="the exercises, in course order")
    from .exercises.registry import EXERCISES

    start = actions.add_parser("start", help="write the starter file of an exercise")
    start.add_argument("name", help="the exercise, as `scratchnet exercise list` shows it")
    start.add_argument("--out", default=None, help="file to write (default ./NAME.py)")
    start.add_argument("--overwrite", action="store_true", help="replace the file if it exists")
    check = actions.add_parser("check", help="grade your file (runs its code)", description=RUNS_CODE)
    check.add_argument("file", help="your exercise file (.py), as written by `exercise start`")
    check.add_argument("--name", default=None, choices=tuple(EXERCISES),
                       help="the exercise (default: from the file's first line)")


def _json_object(text):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--config must be a JSON object: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"--config must be a JSON object like {{\"units\": 3}}, got {text!r}")
    return value


def run_exercise(args) -> int:
    from . import exercises

    if args.action == "list":
        rows = exercises.list_exercises()
        width = max(len(name) for name, _ in rows)
        for name, title in rows:
            print(f"{name.ljust(width)}  {title}")
        print("\nstart one with:  scratchnet exercise start NAME")
        return 0
    if args.action == "start":
        try:
            path = exercises.start(args.name, args.out, overwrite=args.overwrite)
        except ValueError as error:
            print(f"scratchnet exercise start: {error}", file=sys.stderr)
            return 2
        except FileExistsError:  # the API's message says overwrite=True: say the command's way
            print(f"scratchnet exercise start: {args.out or args.name + '.py'} exists already; write "
                  "another file with --out FILE (or replace it with --overwrite)", file=sys.stderr)
            return 2
        except OSError as error:  # --out in a missing folder, a folder, no permission
            print(f"scratchnet exercise start: {args.out or args.name + '.py'}: cannot write "
                  f"({error.strerror or error})", file=sys.stderr)
            return 1
        print(f"wrote {path}: fill in the parts marked '---- your code', then run\n"
              f"  scratchnet exercise check {shell_quoted(path)}")  # 'my ex.py' stays one argument
        return 0
    if args.action == "check":
        try:
            if Path(args.file).is_dir():  # the grader would call it a missing file
                raise IsADirectoryError(21, "Is a directory", args.file)
            report = exercises.check(args.file, args.name)
        except FileNotFoundError as error:
            print(f"scratchnet exercise check: {error}", file=sys.stderr)
            return 2
        except (OSError, UnicodeDecodeError) as error:  # a folder, a binary file, no permission
            reason = getattr(error, "strerror", None) or f"not a text file: {error.reason}"
            print(f"scratchnet exercise check: {args.file}: cannot read ({reason})", file=sys.stderr)
            return 1
        print(report)
        return 0 if report.passed else 1
    print("usage: scratchnet exercise {list, start NAME, check FILE}", file=sys.stderr)
    return 2


class ImportFailed(Exception):
    """The file given to ``gradcheck FILE:ClassName`` raised while being imported (exit code 1)."""


def load_class(target: str):
    """'path/to/file.py:ClassName' -> the class (imports the file, running its code)."""
    from .exercises.grader import NotAPythonFile, load_module

    path, separator, class_name = target.rpartition(":")
    if not separator or not path or not class_name:
        raise ValueError(f"expected FILE:ClassName, e.g. my_layer.py:MyDense, got {target!r}")
    try:
        module = load_module(path)
    except (KeyboardInterrupt, NotAPythonFile):
        raise
    except BaseException as error:  # a SyntaxError, an import failing, sys.exit() in the file
        if isinstance(error, FileNotFoundError) and not Path(path).is_file():
            raise  # no such file (load_module's own message)
        from .gradcheck_contract import describe_exception

        raise ImportFailed(describe_exception(path, "importing the file", error)) from None
    if not hasattr(module, class_name):
        classes = sorted(name for name, value in vars(module).items() if isinstance(value, type))
        raise ValueError(f"{path} has no {class_name!r}; classes in it: {', '.join(classes) or 'none'}")
    return getattr(module, class_name)


def figure_problem(figure: str):
    """Why matplotlib could not save ``--figure`` (a missing folder, a file type it does not
    write), or None: said before the check runs, not in a traceback after it."""
    from matplotlib.backend_bases import FigureCanvasBase

    folder, suffix = Path(figure).parent, Path(figure).suffix.lower()
    if not folder.is_dir():
        return f"--figure {figure}: no folder {folder}"
    if not suffix:  # matplotlib would write fig.png, not the file named
        return f"--figure {figure}: end the name with the file's type, e.g. {figure}.png"
    types = FigureCanvasBase.get_supported_filetypes()  # {"png": "Portable Network Graphics", ...}
    if suffix[1:] not in types:
        return (f"--figure {figure}: matplotlib cannot write {suffix!r} files; end the name with one "
                f"of {', '.join('.' + name for name in sorted(types))}")
    return None


def run_gradcheck_file(args) -> int:
    """Check one layer class from a file; print the report; exit 1 if it fails (2: a usage mistake)."""
    from .gradcheck import check_layer
    from .gradcheck_contract import not_a_layer

    problem = figure_problem(args.figure) if args.figure else None
    if problem:
        print(f"scratchnet gradcheck: {problem}", file=sys.stderr)
        return 2
    try:
        cls = load_class(args.target)
        layer = cls(**args.config)
    except (ValueError, FileNotFoundError, TypeError) as error:
        print(f"scratchnet gradcheck: {error}", file=sys.stderr)
        return 2
    except ImportFailed as error:
        print(f"scratchnet gradcheck: {error}", file=sys.stderr)
        return 1
    for problem in not_a_layer(layer):  # a Loss: check_loss, from Python
        print(f"scratchnet gradcheck: {args.target}: {problem}", file=sys.stderr)
        return 2
    report = check_layer(layer, args.input_shape, training=args.training,
                         configs="battery" if args.battery else None)
    print(report)
    if args.figure and not args.battery:
        failing = [row for row in report.failing()
                   if row.analytic is not None and row.analytic.ndim in (2, 4)]
        if failing:
            report.figure(failing[0].name, args.figure)
            print(f"figure of {failing[0].name}: {args.figure}")
    return 0 if report.passed else 1
