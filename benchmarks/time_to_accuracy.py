"""Time to accuracy on the bundled MNIST sample: the candidates for `scratchnet train`'s default.

    python benchmarks/time_to_accuracy.py                          # every candidate, seeds 0 1 2
    python benchmarks/time_to_accuracy.py --candidates default     # exactly what `scratchnet train` runs
    python benchmarks/time_to_accuracy.py --candidates digit_cnn_onecycle --seeds 0 1 2 3
    python benchmarks/time_to_accuracy.py --list                   # the candidates and their recipes

Data as `scratchnet train` uses it: ``load_mnist_sample()``; the last 800 of its 8,000 training
images are held out for validation (``--val-fraction 0.1``, scored after every epoch, never
trained on), the model trains on the other 7,200, and the 2,000 test images are scored ONCE,
after training. Target (issue #17): at least 99.0% test accuracy within 60 s of training on
these 2-core machines.

"seconds" is the wall time of ``fit`` (training steps, augmentation and the per-epoch validation
pass): the "training took" figure `scratchnet train` prints. Start-up, data loading and the test
evaluation are outside it. "CPU seconds" is the processor time of this process meanwhile: with
one BLAS thread about the wall time on an otherwise idle machine. Every row records the load
average (1 minute) before and after and OPENBLAS_CORETYPE, because the machine is shared.

Threads: NumPy's OpenBLAS runs on ONE thread here unless OPENBLAS_NUM_THREADS is set (set before
NumPy loads): on a loaded 2-core machine each multi-threaded product waits for a busy core
(digit_cnn step, load 5.5: 31 ms with one thread, 1,280 ms with two; see README.md).
Results are appended as JSON lines to ``--json`` (default benchmarks/time_to_accuracy.jsonl,
git-ignored) and printed as a markdown table.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS (see the docstring)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, replace  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: import scratchnet

from scratchnet import augment as A  # noqa: E402
from scratchnet import metrics  # noqa: E402
from scratchnet.datasets import load_mnist_sample  # noqa: E402
from scratchnet.losses import CrossEntropy  # noqa: E402
from scratchnet.model import History  # noqa: E402
from scratchnet.models import get_model  # noqa: E402
from scratchnet.recipes import Recipe, build_augment, build_optimizer  # noqa: E402

VAL_FRACTION = 0.1

# name -> scratchnet.recipes.Recipe, built by recipes.build_optimizer and build_augment (one more
# augmentation here: "shift", RandomShift(2) alone; "digits" is RandomShift(2) then
# RandomRotation(10)). "command" candidates are built by the `scratchnet train` code itself (its
# recipe, scratchnet.recipes) with the options given.
DIGIT_CNN = Recipe("digit_cnn_onecycle", "digit_cnn", optimizer="adamw", lr=5e-3, weight_decay=1e-2,
                   schedule="onecycle", augment="shift", batch_size=64, epochs=12, label_smoothing=0.1)
CANDIDATES = {
    "default": dict(command=[]),
    "lenet5_default_recipe": dict(command=["--model", "lenet5"]),
    "lenet5_today": Recipe("lenet5_today", "lenet5", optimizer="adam", lr=3e-3, schedule="cosine",
                           batch_size=64, epochs=8),
    "digit_cnn_onecycle": DIGIT_CNN,
    "digit_cnn_cosine": replace(DIGIT_CNN, name="digit_cnn_cosine", lr=3e-3, schedule="cosine"),
    "digit_cnn_rot": replace(DIGIT_CNN, name="digit_cnn_rot", augment="digits"),
    "digit_cnn_noaug": replace(DIGIT_CNN, name="digit_cnn_noaug", augment="none"),
    "small_cnn_bn_onecycle": replace(DIGIT_CNN, name="small_cnn_bn_onecycle", model="small_cnn_bn",
                                     lr=3e-3, epochs=8),
    "resnet8w8_onecycle": replace(DIGIT_CNN, name="resnet8w8_onecycle", model="resnet", epochs=8),
}
MODEL_OPTIONS = {"resnet8w8_onecycle": {"depth": 8, "width": 8}}  # get_model's options


def recipe_augment(recipe, image_size):
    """The recipe's augmentation (recipes.build_augment), or RandomShift(2) alone for "shift"."""
    if recipe.augment == "shift":
        return A.Compose([A.RandomShift(2)])
    return build_augment(recipe.augment, image_size)


def split(seed_independent_data):
    (x_train, y_train), (x_test, y_test) = seed_independent_data
    n_val = int(round(len(x_train) * VAL_FRACTION))   # the last ones, as `scratchnet train`
    return (x_train[:-n_val], y_train[:-n_val]), (x_train[-n_val:], y_train[-n_val:]), (x_test, y_test)


def command_run(options, seed, epochs=None):
    """(model, augment, recipe, data) as `scratchnet train OPTIONS --seed SEED` builds them."""
    from scratchnet import cli, cli_train

    argv = ["train", *options, "--seed", str(seed), *(["--epochs", str(epochs)] if epochs else [])]
    run = cli_train.prepare_run(cli.build_parser().parse_args(argv))
    return run.model, run.augment, run.recipe, (run.fit, run.validation, run.test)


def train_and_test(name, candidate, seed, data, epochs=None, model_options=None):
    """Train the candidate (a Recipe or a command line) on data = (fit, validation, test); one row."""
    if isinstance(candidate, dict):
        model, augment, recipe, data = command_run(candidate["command"], seed, epochs)
    else:
        recipe = replace(candidate, epochs=epochs or candidate.epochs)
        image_shape = data[0][0].shape[1:]
        augment = recipe_augment(recipe, image_shape[:2])
        model = get_model(recipe.model, input_shape=image_shape, n_classes=10, seed=seed,
                          **(model_options or {}))
        steps_per_epoch = -(-len(data[0][0]) // recipe.batch_size)
        model.compile(optimizer=build_optimizer(recipe, steps_per_epoch),
                      loss=CrossEntropy(label_smoothing=recipe.label_smoothing))
    result = fit_and_test(model, data, recipe.epochs, recipe.batch_size, augment)
    return {**asdict(recipe), "model_options": model_options or {}, "candidate": name, "seed": seed,
            "params": model.count_params(), "seconds": round(result["seconds"], 2),
            "cpu_seconds": round(result["cpu_seconds"], 2),
            "test_accuracy": result["test_accuracy"], "load": [round(load, 2) for load in result["load"]],
            "val_accuracy": result["val_accuracy"],
            "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "(not set)")}


def fit_and_test(model, data, epochs, batch_size, augment):
    """Train a compiled model on data = (fit, validation, test) and score the test split ONCE, after.

    {"seconds", "cpu_seconds": of ``fit`` alone (steps, augmentation, per-epoch validation),
    "test_accuracy", "load": 1-minute load average before and after, "val_accuracy": per epoch}.
    Also used by zoo_accuracy.py.
    """
    (x_fit, y_fit), validation, (x_test, y_test) = data
    history, load_before = History(), os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(x_fit, y_fit, epochs=epochs, batch_size=batch_size, validation_data=validation,
              history=history, augment=augment, verbose=0)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    test_accuracy = metrics.accuracy(y_test, metrics.predictions(model.predict(x_test)))  # once, at the end
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "test_accuracy": test_accuracy,
            "load": (load_before, os.getloadavg()[0]),
            "val_accuracy": [round(v, 4) for v in history.history.get("val_accuracy", [])]}


def describe(recipe: dict) -> str:
    """One line for a row (or asdict of a Recipe): optimizer, lr, schedule, batch, epochs, ..."""
    extra = f", wd {recipe['weight_decay']:g}" if recipe["weight_decay"] else ""
    return (f"{recipe['optimizer']} {recipe['lr']:g} {recipe['schedule']}{extra}, "
            f"batch {recipe['batch_size']}, {recipe['epochs']} ep, aug {recipe['augment']}, "
            f"ls {recipe['label_smoothing']:g}")


def print_table(rows) -> None:
    print("| candidate | recipe | seed | params | seconds | CPU s | test accuracy | "
          "99.0% within 60 s | load before/after | BLAS threads |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|---:|")
    for row in rows:
        met = row["test_accuracy"] >= 0.99 and row["seconds"] <= 60
        print(f"| {row['candidate']} | {describe(row)} | {row['seed']} | {row['params']:,} | "
              f"{row['seconds']:.1f} | {row['cpu_seconds']:.1f} | {row['test_accuracy']:.4f} | "
              f"{'met' if met else 'NOT met'} | {row['load'][0]:.2f} / {row['load'][1]:.2f} | "
              f"{row['openblas_num_threads']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override the candidates' epochs")
    parser.add_argument("--json", default=str(Path(__file__).with_name("time_to_accuracy.jsonl")))
    parser.add_argument("--list", action="store_true", help="print the candidates and stop")
    args = parser.parse_args()
    if args.list:
        for name, candidate in CANDIDATES.items():
            recipe = command_run(candidate["command"], 0)[2] if isinstance(candidate, dict) else candidate
            print(f"{name}: {recipe.model}, {describe(asdict(recipe))}")
        return

    data = split(load_mnist_sample())
    rows = []
    for name in args.candidates:
        for seed in args.seeds:
            row = train_and_test(name, CANDIDATES[name], seed, data, args.epochs, MODEL_OPTIONS.get(name))
            rows.append(row)
            with open(args.json, "a") as out:
                out.write(json.dumps(row) + "\n")
            print(f"  {name} seed {seed}: {row['test_accuracy']:.4f} in {row['seconds']:.1f} s "
                  f"(CPU {row['cpu_seconds']:.1f} s, load {row['load']})", file=sys.stderr, flush=True)
    print_table(rows)
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{len(data[0][0])} training, {len(data[1][0])} validation, {len(data[2][0])} test images; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(not set)')}")


if __name__ == "__main__":
    main()
