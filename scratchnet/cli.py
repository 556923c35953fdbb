"""The ``scratchnet`` command.

    scratchnet train                  LeNet-5 on the bundled MNIST digits (no network needed)
    scratchnet train --dataset patterns --model tiny_cnn --epochs 3
    scratchnet gradcheck              numerical gradient check of every built-in layer
    scratchnet summary --model lenet5

Heavy modules (the layers, matplotlib) are imported inside the commands, so
``scratchnet --version`` and ``--help`` answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__, cli_exercise
from .models import MODEL_NAMES  # every name get_model knows (lenet5, small_cnn, ..., resnet8)

DATASETS = ("mnist-sample", "mnist", "patterns", "cifar10")

DESCRIPTION = """scratchnet: a convolutional network framework in NumPy, for learning backpropagation.

examples:
  scratchnet train                  LeNet-5 on the bundled MNIST digits (no network needed)
  scratchnet train --dataset patterns --model tiny_cnn --epochs 3
  scratchnet gradcheck              numerical gradient check of every built-in layer
  scratchnet gradcheck my_layer.py:MyLayer --input-shape 6,6,2   check your own layer
  scratchnet exercise list          graded backprop exercises (start NAME, check FILE)
  scratchnet summary --model lenet5
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples' line breaks and shows every option's default (unless it is None/False)."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class UsageError(Exception):
    """A command-line value that cannot work; printed without a traceback (exit code 2)."""

# Defaults of `scratchnet train`, tuned so that LeNet-5 on the bundled sample (7,200 training
# images) passes 97% test accuracy well inside two minutes on two CPU cores: Adam with a
# cosine-decayed learning rate, batches of 64 (see benchmarks/time_to_accuracy.py).
TRAIN_DEFAULTS = {"epochs": 8, "batch_size": 64, "lr": 3e-3}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scratchnet", description=DESCRIPTION,
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"scratchnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a model and save it with plots",
                                description="Train a model, print progress and validation accuracy "
                                "per epoch and the final test accuracy, and write the model, "
                                "history.json and plots to --out. Ctrl-C stops early and still "
                                "saves what was trained (exit code 130).",
                                formatter_class=_HelpFormatter)
    train.add_argument("--model", default="lenet5", choices=MODEL_NAMES, help="network to train")
    train.add_argument("--dataset", default="mnist-sample", choices=DATASETS,
                       help="mnist-sample: 10,000 real digits bundled with scratchnet (8,000 train "
                       "/ 2,000 test); mnist: the full set (downloaded once); patterns: synthetic; "
                       "cifar10: the python batches in --data-dir, downloaded there (or to the cache) "
                       "once unless --no-download")
    train.add_argument("--epochs", type=_positive_int, default=TRAIN_DEFAULTS["epochs"],
                       help="passes over the training images")
    train.add_argument("--batch-size", type=_positive_int, default=TRAIN_DEFAULTS["batch_size"],
                       help="images per optimizer step")
    train.add_argument("--lr", type=_positive_float, default=TRAIN_DEFAULTS["lr"],
                       help="initial Adam learning rate, cosine-decayed to 0 over the run")
    train.add_argument("--backend", default="im2col", choices=("im2col", "scipy"),
                       help="convolution algorithm (scipy: the slow, readable reference)")
    train.add_argument("--seed", type=int, default=0, help="seeds weights, shuffling and the data split")
    train.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                       help="float32 is fast, float64 exact")
    train.add_argument("--val-fraction", type=float, default=0.1,
                       help="share of the training images held out for validation (the last ones)")
    train.add_argument("--limit", type=_positive_int, default=None,
                       help="use only the first N training and N test images (quick runs)")
    train.add_argument("--out", default=None,
                       help="output folder, created if needed (default: runs/<date-time>)")
    train.add_argument("--data-dir", default=None,
                       help="folder with dataset files (else $SCRATCHNET_DATA, ~/.cache/scratchnet)")
    train.add_argument("--no-download", action="store_true", help="never use the network")
    train.add_argument("--monitor", action="store_true",
                       help="watch training health about 10 times per epoch (update/weight ratios, dead "
                       "ReLUs, gradient norms), print plain-word warnings and write health.png")

    gradcheck = commands.add_parser("gradcheck", help="check every built-in layer's backward numerically",
                                    formatter_class=_HelpFormatter)
    cli_exercise.add_parsers(commands, gradcheck)  # gradcheck FILE:ClassName and `exercise`

    summary = commands.add_parser("summary", help="print a model's layers and parameter counts",
                                  formatter_class=_HelpFormatter)
    summary.add_argument("--model", default="lenet5", choices=MODEL_NAMES, help="network to show")
    summary.add_argument("--input-shape", type=_shape, default="28,28,1",
                         help="one sample, e.g. 32,32,3")
    summary.add_argument("--classes", type=_positive_int, default=10, help="number of outputs")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 28,28,1, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
    return shape


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        from .datasets import DatasetError

        try:
            return run_training(args)
        except DatasetError as error:
            print(f"scratchnet train: {_cli_wording(str(error))}", file=sys.stderr)
            return 1
        except UsageError as error:
            print(f"scratchnet train: {error}", file=sys.stderr)
            return 2
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
    parser.print_help()
    return 0


def _cli_wording(message: str) -> str:
    """Dataset errors speak of the Python arguments; on the command line they are flags."""
    for python, flag in (("pass the folder as root", "pass the folder with --data-dir"),
                         ("download=False", "--no-download"), ("root=", "--data-dir ")):
        message = message.replace(python, flag)
    return message


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


# ---------------------------------------------------------------------- train
def load_data(args):
    """(x_train, y_train), (x_test, y_test), class names for ``--dataset``."""
    from . import datasets

    if args.dataset == "mnist-sample":
        train, test = datasets.load_mnist_sample()
    elif args.dataset == "mnist":
        options = {"root": args.data_dir, "download": not args.no_download}
        train, test = datasets.load_mnist("train", **options), datasets.load_mnist("test", **options)
    elif args.dataset == "patterns":
        train = datasets.make_patterns(5000, image_size=28, seed=args.seed)
        test = datasets.make_patterns(1000, image_size=28, seed=args.seed + 1)
        return train, test, list(datasets.PATTERN_NAMES)
    else:
        options = {"download": not args.no_download}
        train = datasets.load_cifar10(args.data_dir, "train", **options)
        test = datasets.load_cifar10(args.data_dir, "test", **options)
        return train, test, list(datasets.CIFAR10_CLASSES)
    return train, test, [str(digit) for digit in range(10)]


def _output_dir(out):
    import time
    from pathlib import Path

    if out is not None:
        folder = Path(out).expanduser()
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"--out {out}: is a file, not a folder; give a folder for the results")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder, number = Path("runs") / stamp, 1
        while folder.exists():
            folder, number = Path("runs") / f"{stamp}-{number}", number + 1
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {folder}: cannot create the output folder ({error.strerror or error})") \
            from None
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--out {folder}: the folder is not writable")
    return folder


def prepare_training(args):
    """Data, split and compiled model for ``args``: (model, (x_fit, y_fit), validation or None,
    (x_test, y_test), class names)."""
    from .models import get_model
    from .optimizers import Adam, CosineDecay

    (x_train, y_train), (x_test, y_test), class_names = load_data(args)
    if args.limit:
        x_train, y_train, x_test, y_test = (x_train[:args.limit], y_train[:args.limit],
                                            x_test[:args.limit], y_test[:args.limit])
    # the validation images are the last ones of the training part (a fixed split)
    n_val = int(round(len(x_train) * args.val_fraction))
    validation = (x_train[-n_val:], y_train[-n_val:]) if n_val else None
    x_fit, y_fit = (x_train[:-n_val], y_train[:-n_val]) if n_val else (x_train, y_train)
    if len(x_fit) == 0:
        raise UsageError(f"--val-fraction {args.val_fraction} of {len(x_train)} training images leaves "
                         f"none to train on; use a smaller --val-fraction or a larger --limit")
    model = get_model(args.model, input_shape=x_train.shape[1:], n_classes=len(class_names),
                      seed=args.seed, dtype=args.dtype, backend=args.backend)
    total_steps = args.epochs * -(-len(x_fit) // args.batch_size)
    model.compile(optimizer=Adam(lr=CosineDecay(args.lr, total_steps)), loss="cross_entropy")
    return model, (x_fit, y_fit), validation, (x_test, y_test), class_names


def run_training(args) -> int:
    import json
    import time

    import numpy as np

    from . import interpret, metrics, viz
    from .health import HealthMonitor
    from .model import History
    from .training import NonFiniteLossError

    if not 0 <= args.val_fraction < 1:
        print("scratchnet train: --val-fraction must be in [0, 1)", file=sys.stderr)
        return 2
    model, (x_fit, y_fit), validation, (x_test, y_test), class_names = prepare_training(args)
    n_val = 0 if validation is None else len(validation[0])
    out = _output_dir(args.out)
    print(f"{args.model} on {args.dataset}: {len(x_fit)} training, {n_val} validation, "
          f"{len(x_test)} test images {x_fit.shape[1:]}; {model.count_params():,} parameters; "
          f"output in {out}")

    history, interrupted, failure = History(), False, None  # fit appends each epoch as it finishes
    # the monitor's probe: the first 256 training images, the same at every check
    monitor = HealthMonitor(probe=x_fit[:256], every=max(1, -(-len(x_fit) // args.batch_size) // 10),
                            verbose=False) if args.monitor else None
    start = time.perf_counter()
    try:
        model.fit(x_fit, y_fit, epochs=args.epochs, batch_size=args.batch_size,
                  validation_data=validation, history=history, callbacks=[monitor] if monitor else ())
    except KeyboardInterrupt:
        interrupted = True
        print(f"\nInterrupted after {len(history.epoch)} complete epoch(s): saving the model "
              "trained so far.")
    except NonFiniteLossError as error:  # the weights are those from before the failed step
        failure = str(error)
        if monitor:
            monitor.report_error(error)
        print(f"\nTraining stopped: {error}", file=sys.stderr)
    train_seconds = time.perf_counter() - start
    if monitor:
        lines = [f"  - {message}" for message in monitor.warnings] or [
            "  no warnings: update/weight ratios, dead ReLUs and gradients look normal"]
        print("\n".join([f"Training health ({len(monitor.records)} checks):", *lines]))

    logits = model.predict(x_test)
    predicted = metrics.predictions(logits)
    test_accuracy = metrics.accuracy(y_test, predicted)
    print(f"Test accuracy: {test_accuracy:.4f} on {len(x_test)} images "
          f"(training took {train_seconds:.1f} s)")
    model.save(out / "model.sn")
    record = {"scratchnet": __version__, "model": args.model, "dataset": args.dataset,
              "options": {key: value for key, value in vars(args).items() if key != "command"},
              "train_images": len(x_fit), "validation_images": n_val, "test_images": len(x_test),
              "epochs_completed": len(history.epoch), "interrupted": interrupted, "error": failure,
              "train_seconds": train_seconds,
              "test_accuracy": test_accuracy, "history": history.to_dict()}
    (out / "history.json").write_text(json.dumps(record, indent=2) + "\n")
    written = ["model.sn", "history.json"]
    if history.epoch:
        viz.plot_history(history, save_path=out / "curves.png", title=f"{args.model} on {args.dataset}")
        written.append("curves.png")
    else:  # stopped inside the first epoch: no curve to draw, so no empty figure
        print("No epoch finished: curves.png is not written.")
    cm = metrics.confusion_matrix(y_test, predicted, n_classes=len(class_names))
    viz.plot_confusion_matrix(cm, class_names, save_path=out / "confusion.png")
    viz.plot_images(x_test[:25], y_test[:25], predicted[:25], class_names, save_path=out / "predictions.png")
    written += ["confusion.png", "predictions.png"]
    convs = [i for i, layer in enumerate(model.layers) if np.ndim(layer.params.get("W")) == 4]
    if convs:  # the first convolution's filters, its maps after the activation, Grad-CAM
        viz.plot_filters(model, layer=convs[0], save_path=out / "filters.png")
        viz.plot_feature_maps(model, x_test[0], layer=min(convs[0] + 1, len(model.layers) - 1),
                              label=y_test[0], class_names=class_names, save_path=out / "feature_maps.png")
        interpret.plot_grad_cam(model, x_test[:8], labels=y_test[:8], save_path=out / "grad_cam.png")
        written += ["filters.png", "feature_maps.png", "grad_cam.png"]
    if monitor and monitor.records:
        monitor.plot(out / "health.png")
        written.append("health.png")
    print(f"Saved {', '.join(written)} in {out}  (load with scratchnet.load('{out / 'model.sn'}'))")
    return 130 if interrupted else 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
