"""``scratchnet train``: options, data, the recipe, fit, and the files written afterwards.

Each option left out comes from the recipe of ``--dataset`` (``scratchnet.recipes``): MNIST
trains digit_cnn with AdamW, a one-cycle schedule, small shifts and rotations (99% on the bundled
digits in under a minute; ``--model lenet5`` trains LeNet-5 the same way); CIFAR-10 the PyTorch
SmallCNN recipe (small_cnn_bn, SGD 0.1 momentum 0.9, weight decay 5e-4, cosine, crop 32 pad 4 +
flip, standardised input).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from . import __version__
from .cli_args import nonnegative_int, positive_float, positive_int
from .cli_results import (  # noqa: F401  (feature_map_layer, RESULT_FIGURES: cli_train.X keeps working)
    RESULT_FIGURES,
    clear_earlier_run,
    feature_map_layer,
    save_model_file,
    write_history,
    write_results,
)
from .models import MODEL_NAMES  # every name get_model knows
from .recipes import AUGMENTS, OPTIMIZERS, RECIPES, SCHEDULES

DATASETS = ("mnist-sample", "mnist", "patterns", "cifar10")
RECIPE_NAMES = tuple(RECIPES)
FROM_RECIPE = " (default: from the recipe)"


class UsageError(Exception):
    """A command-line value that cannot work; printed without a traceback (exit code 2)."""


def add_train_arguments(train: argparse.ArgumentParser) -> None:
    train.add_argument("--dataset", default="mnist-sample", choices=DATASETS,
                       help="mnist-sample: 10,000 real digits bundled with scratchnet (8,000 train "
                       "/ 2,000 test); mnist: the full set (downloaded once); patterns: synthetic; "
                       "cifar10: the python batches in --data-dir, downloaded there (or to the cache) "
                       "once unless --no-download")
    train.add_argument("--recipe", default=None, choices=RECIPE_NAMES,
                       help="starting choices (scratchnet.recipes); default: mnist for the MNIST and "
                       "patterns data, torch_small_cnn for cifar10. The options below override it.")
    # metavar: the usage line wraps (the choices as one token did not); the help lists them
    train.add_argument("--model", default=None, choices=MODEL_NAMES, metavar="MODEL",
                       help=f"network to train, one of {', '.join(MODEL_NAMES)}" + FROM_RECIPE)
    train.add_argument("--epochs", type=positive_int, default=None,
                       help="passes over the training images, from the recipe: (default: 10) on MNIST and "
                       "patterns (the mnist recipe), on cifar10 the recipe's (torch_small_cnn: 30, flax: 10)")
    train.add_argument("--batch-size", type=positive_int, default=None,
                       help="images per optimizer step" + FROM_RECIPE)
    train.add_argument("--optimizer", default=None, choices=OPTIMIZERS,
                       help="optimizer" + FROM_RECIPE)
    train.add_argument("--lr", type=positive_float, default=None,
                       help="initial (cosine, constant) or peak (onecycle) learning rate" + FROM_RECIPE)
    train.add_argument("--momentum", type=float, default=None, help="SGD momentum" + FROM_RECIPE)
    train.add_argument("--weight-decay", type=float, default=None,
                       help="L2 on the gradient (sgd, adam) or decoupled (adamw)" + FROM_RECIPE)
    train.add_argument("--schedule", default=None, choices=SCHEDULES,
                       help="learning rate over the run, per optimizer step" + FROM_RECIPE)
    train.add_argument("--augment", default=None, choices=AUGMENTS,
                       help="standard: crop with padding 4 + flip; strong: + colour jitter + cutout; "
                       "flax: flip + random resized crop; digits: shifts of up to 2 pixels + rotations "
                       "of up to 10 degrees (no flips)" + FROM_RECIPE)
    train.add_argument("--label-smoothing", type=float, default=None, help="cross-entropy label "
                       "smoothing in [0, 1)" + FROM_RECIPE)
    train.add_argument("--backend", default="auto",
                       choices=("auto", "im2col", "winograd", "scipy", "loops"),
                       help="convolution algorithm: auto (the fastest: Winograd for 3x3 stride-1 "
                       "convolutions with >= 16 channels, im2col elsewhere), im2col (matrix products), "
                       "winograd (3x3 stride 1 only), scipy (the readable reference), "
                       "loops (the definition; slow)")
    train.add_argument("--seed", type=nonnegative_int, default=0,
                       help="seeds the weights, the shuffling, the augmentation and the patterns data; "
                       "the validation split is fixed (the last training images)")
    train.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                       help="float32 is fast, float64 exact")
    train.add_argument("--val-fraction", type=float, default=0.1,
                       help="share of the training images held out for validation (the last ones)")
    train.add_argument("--limit", type=positive_int, default=None,
                       help="use only the first N training and N test images (quick runs)")
    train.add_argument("--out", default=None,
                       help="output folder, created if needed (default: runs/<date-time>)")
    train.add_argument("--data-dir", default=None,
                       help="folder with dataset files (else $SCRATCHNET_DATA, ~/.cache/scratchnet)")
    train.add_argument("--no-download", action="store_true", help="never use the network")
    train.add_argument("--threads", type=int, default=None,
                       help="threads for NumPy's and SciPy's BLAS (OpenBLAS) in this command; default 1, "
                       "or OPENBLAS_NUM_THREADS if set; 0: the BLAS's own choice. One thread never waits "
                       "for a busy core: on loaded 2-core machines a digit_cnn step was 2-40x faster "
                       "with it (benchmarks/README.md, scratchnet.blas_threads)")
    train.add_argument("--kernel-workers", type=int, default=1,
                       help="threads that run the Winograd and im2col convolutions' chunks of images "
                       "(default 1: none); > 1 also sets the BLAS to 1 thread each, overriding --threads. "
                       "2 took 3-20%% off a resnet8 step on a quiet 2-core machine; a busy second core "
                       "makes it wait (benchmarks/README.md #15, scratchnet.kernels.chunk_workers)")
    train.add_argument("--monitor", action="store_true",
                       help="watch training health about 10 times per epoch (update/weight ratios, dead "
                       "ReLUs, gradient norms), print plain-word warnings and write health.png")


def resolve_recipe(args):
    """The recipe of ``--recipe`` / ``--dataset`` with every option given on the command line."""
    from .recipes import DATASET_RECIPES, get_recipe

    if args.label_smoothing is not None and not 0 <= args.label_smoothing < 1:
        raise UsageError(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    for flag, value in (("--momentum", args.momentum), ("--weight-decay", args.weight_decay)):
        if value is not None and not math.isfinite(value):  # nan passes both bounds below
            raise UsageError(f"{flag} must be a finite number, got {value}")
        if value is not None and value < 0:
            raise UsageError(f"{flag} must be >= 0, got {value}")
    if args.momentum is not None and args.momentum >= 1:  # SGD refuses it too (optimizers.py)
        raise UsageError(f"--momentum must be < 1, got {args.momentum} (SGD diverges with momentum >= 1)")
    recipe = get_recipe(args.recipe or DATASET_RECIPES[args.dataset], model=args.model, epochs=args.epochs,
                      batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                      momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
                      augment=args.augment, label_smoothing=args.label_smoothing)
    if args.momentum is not None and recipe.optimizer != "sgd":  # Adam's betas play its part
        raise UsageError(f"--momentum is for --optimizer sgd; {recipe.optimizer} has no momentum "
                         "(leave --momentum out, or add --optimizer sgd)")
    return recipe


def apply_threads(threads) -> str:
    """Set the BLAS thread count for ``--threads`` (see its help); returns it in words for the log.

    Changed at run time through the BLAS's own function, via threadpoolctl (NumPy is already
    loaded when the command parses its options, so OPENBLAS_NUM_THREADS would come too late);
    OPENBLAS_CORETYPE and the environment are left alone.
    """
    from .blas_threads import blas_threads, set_blas_threads

    if threads is not None and threads < 0:
        raise UsageError(f"--threads must be >= 0, got {threads}")
    if threads is None and os.environ.get("OPENBLAS_NUM_THREADS"):
        return f"{os.environ['OPENBLAS_NUM_THREADS']} (OPENBLAS_NUM_THREADS)"
    if threads == 0:
        counts = blas_threads()
        return f"{max(counts.values())} (the BLAS's default)" if counts else "the BLAS's default"
    counts = set_blas_threads(1 if threads is None else threads)
    return str(max(counts.values())) if counts else "unchanged (no BLAS found)"


def apply_kernel_workers(workers) -> str:
    """Run the kernels' chunks on ``--kernel-workers`` threads (see its help); returns it in words."""
    from .kernels.chunk_workers import set_kernel_workers

    if workers < 1:
        raise UsageError(f"--kernel-workers must be >= 1, got {workers}")
    set_kernel_workers(workers)
    return "" if workers == 1 else f", kernel workers: {workers} (BLAS 1 thread each)"


def load_data(args):
    """(x_train, y_train), (x_test, y_test), class names for ``--dataset``."""
    from . import datasets

    if args.data_dir is not None and args.dataset in ("mnist-sample", "patterns"):
        where = "is bundled with scratchnet" if args.dataset == "mnist-sample" else "is generated"
        raise UsageError(f"--data-dir {args.data_dir}: --dataset {args.dataset} {where} and reads no "
                         "folder; --data-dir is for --dataset mnist or cifar10")
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


def output_dir(out):
    import time

    if out is not None:
        if not out.strip():
            raise UsageError("--out is empty; give a folder for the results, e.g. --out runs/first")
        try:
            folder = Path(out).expanduser()
        except RuntimeError as error:  # '~nouser/x': no such user's home
            raise UsageError(f"--out {out}: cannot find the home folder of "
                             f"{out.split('/')[0]!r} ({error})") from None
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"--out {out}: is a file, not a folder; give a folder for the results")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder, number = Path("runs") / stamp, 1
        while folder.exists():
            folder, number = Path("runs") / f"{stamp}-{number}", number + 1
    # the default folder was not typed: say where it is and how to choose another
    where = f"--out {folder}" if out is not None else f"the default output folder {folder}"
    advice = "" if out is not None else "; choose one with --out FOLDER"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{where}: cannot create the output folder ({error.strerror or error}){advice}") \
            from None
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{where}: the folder is not writable{advice}")
    return folder


class Run:
    """Everything ``run_training`` needs: the recipe, the compiled model, the data (as the model
    sees it), the raw test images for pictures, the augment, the class names and the optimizer
    steps per epoch."""


def prepare_run(args) -> Run:
    """Data, split, standardisation (training images only) and the compiled model for ``args``."""
    from .losses import CrossEntropy
    from .models import get_model
    from .recipes import attach_preprocessing, build_optimizer, preprocess, training_augment

    run = Run()
    run.recipe = recipe = resolve_recipe(args)
    (x_train, y_train), (x_test, y_test), run.class_names = load_data(args)
    if args.limit:
        x_train, y_train, x_test, y_test = (x_train[:args.limit], y_train[:args.limit],
                                            x_test[:args.limit], y_test[:args.limit])
    # the validation images are the last ones of the training part (a fixed split)
    n_val = int(round(len(x_train) * args.val_fraction))
    x_fit, y_fit = (x_train[:-n_val], y_train[:-n_val]) if n_val else (x_train, y_train)
    if len(x_fit) == 0:
        raise UsageError(f"--val-fraction {args.val_fraction} of {len(x_train)} training images leaves "
                         f"none to train on; use a smaller --val-fraction or a larger --limit")
    try:
        model = get_model(recipe.model, input_shape=x_train.shape[1:], n_classes=len(run.class_names),
                          seed=args.seed, dtype=args.dtype, backend=args.backend)
    except ValueError as error:
        raise UsageError(f"--model {recipe.model}: {error}") from None
    stats = attach_preprocessing(model, args.dataset, run.class_names, x_fit,   # training images only
                                 standardize=recipe.standardize)
    run.raw_fit, run.raw_test = x_fit, x_test                      # [0, 1] pixels, for pictures
    run.fit = (preprocess(model, x_fit), y_fit)
    run.validation = (preprocess(model, x_train[-n_val:]), y_train[-n_val:]) if n_val else None
    run.test = (preprocess(model, x_test), y_test)
    try:
        run.augment = training_augment(recipe, x_train.shape[1:], stats)
    except ValueError as error:  # 'strong' on grey images
        message = str(error)
        if args.dataset.startswith("mnist"):  # 'standard' flips, and a flipped digit is no digit
            message = message.replace("use 'standard' (crop and flip)",
                                      "use 'digits' (shifts and small rotations, no flips)")
        raise UsageError(f"--augment {recipe.augment}: {message}") from None
    run.steps_per_epoch = -(-len(x_fit) // recipe.batch_size)           # optimizer steps per epoch
    try:
        optimizer = build_optimizer(recipe, run.steps_per_epoch)
    except ValueError as error:  # e.g. a schedule or optimizer refusing the recipe's values
        raise UsageError(str(error)) from None
    model.compile(optimizer=optimizer, loss=CrossEntropy(label_smoothing=recipe.label_smoothing))
    run.model = model
    return run


def prepare_training(args):
    """(model, (x_fit, y_fit), validation or None, (x_test, y_test), class names) for ``args``."""
    run = prepare_run(args)
    return run.model, run.fit, run.validation, run.test, run.class_names


def run_training(args) -> int:
    import dataclasses
    import time

    from .health import HealthMonitor
    from .model import History
    from .training import NonFiniteLossError

    if not 0 <= args.val_fraction < 1:
        print("scratchnet train: --val-fraction must be in [0, 1)", file=sys.stderr)
        return 2
    threads = apply_threads(args.threads) + apply_kernel_workers(args.kernel_workers)
    run = prepare_run(args)
    model, recipe, (x_fit, y_fit) = run.model, run.recipe, run.fit
    n_val = 0 if run.validation is None else len(run.validation[0])
    out = output_dir(args.out)
    clear_earlier_run(out)
    print(f"{recipe.model} on {args.dataset}: {len(x_fit)} training, {n_val} validation, "
          f"{len(run.test[0])} test images {x_fit.shape[1:]}; {model.count_params():,} parameters; "
          f"output in {out}")
    momentum = f", momentum {recipe.momentum:g}" if recipe.optimizer == "sgd" else ""
    print(f"recipe {recipe.name}: {recipe.optimizer} lr {recipe.lr:g} ({recipe.schedule}), batch "
          f"{recipe.batch_size}, {recipe.epochs} epochs, augment {recipe.augment}, weight decay "
          f"{recipe.weight_decay:g}{momentum}, label smoothing {recipe.label_smoothing:g}"
          + (", standardised input" if recipe.standardize else "") + f"; BLAS threads: {threads}")

    history, interrupted, failure = History(), False, None  # fit appends each epoch as it finishes
    # the monitor's probe: the first 256 training images, the same at every check
    monitor = HealthMonitor(probe=x_fit[:256], every=max(1, run.steps_per_epoch // 10),
                            verbose=False) if args.monitor else None
    start = time.perf_counter()
    try:
        model.fit(x_fit, y_fit, epochs=recipe.epochs, batch_size=recipe.batch_size,
                  validation_data=run.validation, history=history,
                  callbacks=[monitor] if monitor else (), augment=run.augment)
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
    model_error = save_model_file(model, out)  # None, or why model.sn could not be written
    record = {"scratchnet": __version__, "model": recipe.model, "dataset": args.dataset,
              "options": {key: value for key, value in vars(args).items() if key != "command"},
              "recipe": dataclasses.asdict(recipe),
              "preprocessing": model.preprocessing,
              "train_images": len(x_fit), "validation_images": n_val, "test_images": len(run.test[0]),
              "epochs_completed": len(history.epoch), "interrupted": interrupted, "error": failure,
              "model_save_error": model_error, "train_seconds": train_seconds, "history": history.to_dict(),
              "test_accuracy": None, "per_class_accuracy": None}   # filled in by write_results
    try:
        write_history(record, out)  # saved before the report, which a second Ctrl-C may stop
    except OSError as error:
        print(f"scratchnet train: history.json could not be written ({error.strerror or error})",
              file=sys.stderr)
        return 1
    if model_error is not None:
        print(f"Skipped the report and figures: model.sn was not saved; history.json is in {out}",
              file=sys.stderr)
        return 1
    try:
        written = write_results(model, run, history, record, out, monitor)
    except KeyboardInterrupt:
        print(f"\nStopped{' again' if interrupted else ''}: skipped the report and figures; model.sn "
              f"and history.json saved in {out}", file=sys.stderr)
        return 130
    # repr: a Python string that works for any path (runs\2026... on Windows, a quote in a folder name)
    print(f"Saved {', '.join(written)} in {out}  (load with scratchnet.load({str(out / 'model.sn')!r}))")
    return 130 if interrupted else 1 if failure else 0
