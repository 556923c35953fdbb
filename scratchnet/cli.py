"""The ``scratchnet`` command.

    scratchnet train                  99% on the bundled MNIST digits in under a minute (no network needed)
    scratchnet train --dataset patterns --model tiny_cnn --epochs 3
    scratchnet train --dataset cifar10 --model resnet8 --augment strong --schedule onecycle
    scratchnet evaluate runs/X/model.sn;  scratchnet predict runs/X/model.sn image.png
    scratchnet gradcheck              numerical gradient check of every built-in layer
    scratchnet summary --model lenet5

Every command, ``--version`` and ``--help`` included, imports the package (its ``__init__``
imports the layers, NumPy and SciPy: about two seconds on a busy machine, most of it
scipy.signal). Only matplotlib (``scratchnet.viz``) is imported inside the commands that draw.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys

from . import __version__, cli_evaluate, cli_exercise, cli_train
from .cli_args import exit_code_of, positive_int
from .cli_args import shape as _shape
from .cli_train import DATASETS, MODEL_NAMES, UsageError, load_data, prepare_training, run_training  # noqa: F401
from .interruptions import signals_stop_like_ctrl_c

DESCRIPTION = """scratchnet: a convolutional network framework in NumPy, for learning backpropagation.

examples:
  scratchnet train                  99% on the bundled MNIST digits in under a minute (no network needed)
  scratchnet train --model lenet5   LeNet-5 instead of digit_cnn (the lessons' network)
  scratchnet train --dataset patterns --model tiny_cnn --epochs 3
  scratchnet train --dataset cifar10 --epochs 30   the PyTorch SmallCNN recipe (--recipe flax: Flax's)
  scratchnet evaluate runs/X/model.sn              accuracy per class on its dataset's test split
  scratchnet predict runs/X/model.sn cat.png       class and probability per image
  scratchnet gradcheck              numerical gradient check of every built-in layer
  scratchnet gradcheck my_layer.py:MyLayer --input-shape 6,6,2   check your own layer
  scratchnet exercise list          graded backprop exercises (start NAME, check FILE)
  scratchnet summary --model lenet5
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """A command's help: its description wrapped to the terminal, every option's default shown
    (unless it is None/False or the help says it)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class _MainHelpFormatter(argparse.RawDescriptionHelpFormatter, _HelpFormatter):
    """`scratchnet --help`: the examples keep their line breaks."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scratchnet", description=DESCRIPTION,
                                     formatter_class=_MainHelpFormatter)
    parser.add_argument("--version", action="version", version=f"scratchnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a model and save it with plots",
                                description="Train a model, print progress and validation accuracy "
                                "per epoch and the final test accuracy (overall and per class), and "
                                "write the model, history.json and plots to --out. Options left out "
                                "come from the dataset's recipe (scratchnet.recipes). Ctrl-C stops "
                                "early and still saves what was trained (exit code 130); so do SIGTERM "
                                "and SIGHUP (a CI timeout, `timeout`, a closed terminal; exit code "
                                "143, 129).",
                                formatter_class=_HelpFormatter)
    cli_train.add_train_arguments(train)
    cli_evaluate.add_parsers(commands, _HelpFormatter)

    gradcheck = commands.add_parser("gradcheck", help="check every built-in layer's backward numerically",
                                    formatter_class=_HelpFormatter)
    cli_exercise.add_parsers(commands, gradcheck)  # gradcheck FILE:ClassName and `exercise`

    summary = commands.add_parser("summary", help="print a model's layers and parameter counts",
                                  formatter_class=_HelpFormatter,
                                  description="Print a built-in network's layers, output shapes and "
                                  "parameter counts for one input shape (nothing is trained or loaded).")
    summary.add_argument("--model", default="lenet5", choices=MODEL_NAMES, metavar="MODEL",
                         help=f"network to show, one of {', '.join(MODEL_NAMES)}")
    summary.add_argument("--input-shape", type=_shape, default="28,28,1",
                         help="one sample, e.g. 32,32,3")
    summary.add_argument("--classes", type=positive_int, default=10, help="number of outputs")
    return parser


def prepare_stdout() -> None:
    """Every path and class name prints, and stdout and stderr lines keep their order in a log.

    errors="backslashreplace": a character the stdout's encoding lacks (a folder named in Japanese
    on a cp1252 Windows console, PYTHONIOENCODING=ascii) prints as \\u65e5 instead of ending the
    command with a UnicodeEncodeError (stderr does so already). line_buffering: each line is
    written when it ends, so `scratchnet train > log 2>&1` keeps the order things happened in.
    A stdout that cannot be reconfigured (None under pythonw.exe or `>&-`, a StringIO) is left as is.
    """
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace", line_buffering=True)


def stdout_settings():
    """sys.stdout and its (errors, line_buffering), or None when it cannot be reconfigured."""
    stream = sys.stdout
    if getattr(stream, "reconfigure", None) is None:
        return None
    return stream, (stream.errors, stream.line_buffering)


def restore_stdout(before) -> None:
    """Give the caller's sys.stdout back its settings (a script or REPL that called cli.main goes on
    printing as before), if prepare_stdout changed them. A stdout gone in the meantime is left."""
    if before is None:
        return
    stream, (errors, line_buffering) = before
    if (stream.errors, stream.line_buffering) == (errors, line_buffering):
        return
    try:
        stream.reconfigure(errors=errors, line_buffering=line_buffering)
    except (OSError, ValueError):  # a closed terminal or pipe (its flush fails), a closed file
        pass


def main(argv=None) -> int:
    before = stdout_settings()
    prepare_stdout()
    try:
        return run_main(argv)
    finally:
        restore_stdout(before)


def run_main(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = run_command(parser, args)
        if sys.stdout is not None:  # a closed pipe shows here, not in Python's flush at exit
            sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `scratchnet exercise list | head`: the reader left; stop quietly, as other commands do.
        # Point stdout at /dev/null so Python's flush at exit does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, the shell's code for a command whose pipe closed
    except KeyboardInterrupt:  # Ctrl-C outside the places that save work (train's fit and report)
        print("\nscratchnet: interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT


class PipeSafeStdout:
    """Stands in for sys.stdout (and sys.stderr) during `scratchnet train`: when the reader of a
    pipe leaves (`scratchnet train | head -2`) or the terminal is closed, the rest of the printing
    goes to /dev/null and the training and saving go on (a run is worth more than its log)."""

    def __init__(self, stream):
        self.stream = stream
        self.pipe_closed = False

    def _closed(self):
        self.pipe_closed = True
        if self.stream in (sys.__stdout__, sys.__stderr__):  # so Python's flush at exit does not raise
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
        self.stream = open(os.devnull, "w")

    def write(self, text):
        try:
            return self.stream.write(text)
        except OSError as error:
            self._gone_or_raise(error)
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except OSError as error:
            self._gone_or_raise(error)

    def _gone_or_raise(self, error):
        """EPIPE: the pipe's reader left; EIO: the terminal was closed (SIGHUP follows, and the next
        print fails). Either way the output is gone: print no more, go on training and saving."""
        if error.errno not in (errno.EPIPE, errno.EIO):
            raise error
        self._closed()

    def __getattr__(self, name):  # isatty, fileno, encoding, ...: the wrapped stream's
        return getattr(self.stream, name)


def train_command(args) -> int:
    """``scratchnet train`` with its errors as messages, and a closed stdout pipe or terminal ignored."""
    real_stdout, real_stderr = sys.stdout, sys.stderr
    if real_stdout is not None:  # None (pythonw.exe, `>&-`): print() writes nothing, nothing to wrap
        sys.stdout = PipeSafeStdout(real_stdout)
    if real_stderr is not None:  # a closed terminal: "stopped by SIGHUP" must not end the saving
        sys.stderr = PipeSafeStdout(real_stderr)
    try:
        return train_until_a_signal(args)
    finally:
        sys.stdout, sys.stderr = real_stdout, real_stderr


def train_until_a_signal(args) -> int:
    """SIGTERM and SIGHUP (a CI timeout, `timeout 60`, Slurm, `docker stop`, a closed terminal)
    stop training as Ctrl-C does: the model trained so far and history.json are saved. Exit code
    128 + the signal's number (143 for SIGTERM), as if the signal had ended the process."""
    with signals_stop_like_ctrl_c() as received:
        try:
            code = exit_code_of("train", run_training, args)
        except KeyboardInterrupt:  # outside fit and the report, e.g. while loading the data
            if not received:
                raise              # Ctrl-C: main says so (exit code 130)
            code = 130
    if not received:
        return code
    print(f"scratchnet train: stopped by {signal.Signals(received[0]).name}", file=sys.stderr)
    return 128 + received[0]


def run_command(parser, args) -> int:
    """Dispatch one parsed command; returns the exit code."""
    if args.command == "train":
        return train_command(args)
    if args.command in ("evaluate", "predict"):
        return cli_evaluate.main(args.command, args)
    if args.command == "gradcheck":
        return cli_exercise.run_gradcheck_file(args) if args.target else run_gradcheck()
    if args.command == "exercise":
        return cli_exercise.run_exercise(args)
    if args.command == "summary":
        from .models import get_model

        try:
            model = get_model(args.model, input_shape=args.input_shape, n_classes=args.classes)
        except ValueError as error:
            print(f"scratchnet summary: {error}", file=sys.stderr)
            return 2
        model.summary()
        return 0
    parser.print_help(sys.stderr)  # no command: a usage mistake, as a bare `scratchnet exercise`
    return 2


# ---------------------------------------------------------------------- gradcheck
def gradcheck_cases() -> list:
    """(label, layer, shape of one input sample[, training]) for every built-in layer."""
    from .layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D
    from .layers.activations import ACTIVATIONS

    cases = [(f"Dense(4, {name})", Dense(4, activation=name), (5,)) for name in ACTIVATIONS]
    cases += [(f"Activation({name})", Activation(name), (6,)) for name in ACTIVATIONS]
    cases.append(("Flatten", Flatten(), (3, 3, 2)))
    for backend in ("im2col", "scipy"):
        cases.append((f"Conv2D(3, 3x3, same, {backend})", Conv2D(3, 3, padding="same", backend=backend),
                      (5, 5, 2)))
        cases.append((f"Conv2D(2, 3x2, stride 2, {backend})",
                      Conv2D(2, (3, 2), stride=2, backend=backend), (7, 6, 2)))
    cases += [("MaxPool2D(2)", MaxPool2D(2), (4, 6, 2)),
              ("MaxPool2D(3, stride 2, overlapping)", MaxPool2D(3, stride=2), (7, 7, 2)),
              ("AvgPool2D(2)", AvgPool2D(2), (4, 6, 2)),
              ("GlobalAvgPool2D", GlobalAvgPool2D(), (3, 4, 2))]
    return cases + modern_gradcheck_cases()


def modern_gradcheck_cases() -> list:
    """The layers and blocks beyond LeNet: grouped/depthwise conv, batch norm, dropout, blocks."""
    from . import layers as L

    return [
        ("Conv2D(4, 3x3, groups 2, loops)", L.Conv2D(4, 3, groups=2, backend="loops"), (5, 5, 2)),
        ("Conv2D(4, 3x3, groups 2, im2col)", L.Conv2D(4, 3, groups=2), (5, 5, 2)),
        ("Conv2D(3, 3x3, same, winograd)", L.Conv2D(3, 3, padding="same", backend="winograd"), (7, 5, 2)),
        ("DepthwiseConv2D(3x3, x2, stride 2)", L.DepthwiseConv2D(3, depth_multiplier=2, stride=2,
                                                                  padding="same"), (5, 5, 2)),
        ("SeparableConv2D(3, 3x3)", L.SeparableConv2D(3, 3, padding="same"), (4, 4, 2)),
        ("BatchNorm (inference)", L.BatchNorm(), (3, 3, 2)),
        ("BatchNorm (training)", L.BatchNorm(), (3, 3, 2), True),
        ("Dropout(0.5) (inference)", L.Dropout(0.5), (6,)),
        ("Dropout(0.5) (training, one fixed mask)", L.Dropout(0.5), (6,), True),
        ("SpatialDropout2D(0.5) (training)", L.SpatialDropout2D(0.5), (3, 3, 4), True),
        ("ChannelShuffle(2)", L.ChannelShuffle(2), (3, 3, 4)),
        ("ZeroPadding2D(1)", L.ZeroPadding2D(1), (3, 3, 2)),
        ("UpSampling2D(2)", L.UpSampling2D(2), (3, 3, 2)),
        ("Residual(conv, tanh, conv)", L.Residual([L.Conv2D(2, 3, padding="same"), L.Activation("tanh"),
                                                   L.Conv2D(2, 3, padding="same")]), (4, 4, 2)),
        ("Parallel(1x1 | 3x3, concat)", L.Parallel([L.Conv2D(2, 1), L.Conv2D(3, 3, padding="same")]),
         (4, 4, 2)),
        ("Parallel(1x1 | 3x3, add)",
         L.Parallel([L.Conv2D(2, 1), L.Conv2D(2, 3, padding="same")], merge="add"), (4, 4, 2)),
    ]


def run_gradcheck() -> int:
    """Print one table of relative errors (float64); exit code 1 if any array fails."""
    from .gradcheck import TOLERANCE, check_layer, format_table

    rows = []
    for label, layer, shape, *training in gradcheck_cases():
        report = check_layer(layer, shape, seed=0, training=bool(training and training[0]))
        rows += [(label, row.name, f"{row.error:.2e}", "ok" if row.passed else "FAIL")
                 for row in report.rows]
    print(f"Gradient check, float64, central differences: pass if rel. error <= {TOLERANCE:.0e}")
    print(format_table(("layer", "array", "rel. error", "result"), rows, rule=True))
    failures = sum(row[3] == "FAIL" for row in rows)
    print(f"{failures} of {len(rows)} arrays FAILED" if failures else f"all {len(rows)} arrays ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
