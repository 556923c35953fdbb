"""Test accuracy of the model zoo's BatchNorm networks on the bundled MNIST sample, and the time it takes.

    python benchmarks/zoo_accuracy.py                       # small_cnn_bn and resnet8, the recipes below
    python benchmarks/zoo_accuracy.py --models resnet8 --epochs 4 --seed 1

Data: ``scratchnet.datasets.load_mnist_sample()``: 8,000 training images, of which the last
1,000 are held out for validation (printed per epoch, never trained on), and 2,000 test images
evaluated ONCE, after training. Target (issue #11): at least 98.5% test accuracy within two
minutes of training on the project's 2-core machine. "Seconds" is the wall time of ``fit``
(training steps and the per-epoch validation pass), without start-up, data loading and the
final test evaluation; "CPU seconds" the processor time this process used meanwhile (with one
BLAS thread, about the wall time the same run takes on an otherwise idle machine). The target
column judges the wall time.

Recipe (per model in RECIPES): AdamW (decoupled weight decay) with a cosine learning-rate decay
to 0 over all steps, batch 64, random shifts of up to 2 pixels (``augment.RandomShift``),
float32, the im2col backend.

Threads: the machine is shared by several agents, and OpenBLAS's worker threads stall for
milliseconds waiting for a busy core at every multi-threaded product (see README.md): under a
load average of 4-5 a small_cnn_bn step measured 650 ms (median) with the default two threads
and 52 ms with one. This script therefore runs NumPy's BLAS on ONE thread unless
OPENBLAS_NUM_THREADS is set; the value used is printed with the load average.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS (see the docstring)

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: import scratchnet

from time_to_accuracy import train_and_test  # noqa: E402  (benchmarks/time_to_accuracy.py)

from scratchnet.datasets import load_mnist_sample  # noqa: E402
from scratchnet.recipes import Recipe  # noqa: E402

BATCH_SIZE, VALIDATION = 64, 1000
# model name -> its recipe (time_to_accuracy.py builds it: recipes.build_optimizer, RandomShift(2))
RECIPES = {name: Recipe(name, name, optimizer="adamw", lr=3e-3, weight_decay=1e-2, schedule="cosine",
                        augment="shift", batch_size=BATCH_SIZE, epochs=epochs)
           for name, epochs in (("small_cnn_bn", 12), ("resnet8", 4))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--lr", type=float, default=None, help="override the recipe's peak learning rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = load_mnist_sample()
    data = ((x_train[:-VALIDATION], y_train[:-VALIDATION]), (x_train[-VALIDATION:], y_train[-VALIDATION:]),
            (x_test, y_test))
    rows = []
    for name in args.models:
        recipe = replace(RECIPES[name], lr=args.lr or RECIPES[name].lr)
        row = train_and_test(name, recipe, args.seed, data, args.epochs)
        rows.append(row)
        print(f"  {name}: {row['test_accuracy']:.4f} in {row['seconds']:.1f} s", file=sys.stderr)

    print(f"## Model zoo on the MNIST sample ({len(data[0][0])} training, {VALIDATION} validation, "
          f"{len(x_test)} test images)\n")
    print("| model | params | epochs | AdamW lr (cosine) | weight decay | seconds | CPU seconds | "
          "test accuracy | target 98.5% within 120 s | load average before/after |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for row in rows:
        met = row["test_accuracy"] >= 0.985 and row["seconds"] <= 120
        print(f"| {row['model']} | {row['params']:,} | {row['epochs']} | {row['lr']:g} | "
              f"{row['weight_decay']:g} | "
              f"{row['seconds']:.1f} | {row['cpu_seconds']:.1f} | {row['test_accuracy']:.4f} | "
              f"{'met' if met else 'NOT met'} | "
              f"{row['load'][0]:.2f} / {row['load'][1]:.2f} |")
    for row in rows:
        print(f"\n{row['model']} validation accuracy per epoch: {row['val_accuracy']}")
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"seed {args.seed}; batch {BATCH_SIZE}; random shifts of up to 2 pixels; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(not set)')}")


if __name__ == "__main__":
    main()
