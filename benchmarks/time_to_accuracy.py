"""Time to accuracy of the default `scratchnet train` (LeNet-5 on the bundled MNIST sample).

    python benchmarks/time_to_accuracy.py [--seeds 0 1 2] [--command] [train options...]

For each seed it trains with the command's defaults (or the train options given) and prints a
markdown table: after each epoch, the training seconds so far (validation included, test
evaluation excluded) and the accuracy on the 2,000 held-out test images. ``--command`` also
times one full `python -m scratchnet train` run end to end (start-up, data, training, saving,
plots): the number a user sees. Timing is wall-clock on a possibly shared machine: the
load average is printed with the results. OPENBLAS_CORETYPE (if set) changes which BLAS
kernels NumPy uses, so it is recorded too.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scratchnet import cli, metrics  # noqa: E402
from scratchnet.model import History  # noqa: E402


def run_seed(train_args) -> list[tuple[int, float, float]]:
    model, (x_fit, y_fit), validation, (x_test, y_test), _ = cli.prepare_training(train_args)
    rows, history = [], History()
    for epoch in range(1, train_args.epochs + 1):
        # one epoch at a time, so the test accuracy is measured outside the timed part
        model.fit(x_fit, y_fit, epochs=1, batch_size=train_args.batch_size,
                  validation_data=validation, history=history)
        accuracy = metrics.accuracy(y_test, metrics.predictions(model.predict(x_test)))
        rows.append((epoch, sum(history.seconds), accuracy))
    return rows


def time_command(extra) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "scratchnet", "train", "--out", folder, *extra],
                       check=True, stdout=subprocess.DEVNULL,
                       cwd=Path(__file__).resolve().parents[1])
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--command", action="store_true", help="also time the full command")
    args, extra = parser.parse_known_args()
    load_before = os.getloadavg()[0]
    results = {}
    for seed in args.seeds:
        train_args = cli.build_parser().parse_args(["train", "--seed", str(seed), *extra])
        results[seed] = run_seed(train_args)
    command_seconds = time_command(extra) if args.command else None

    defaults = cli.build_parser().parse_args(["train", *extra])
    print(f"## Time to accuracy: `scratchnet train {' '.join(extra)}`".rstrip() + "\n")
    print(f"model {defaults.model}, dataset {defaults.dataset}, epochs {defaults.epochs}, batch size "
          f"{defaults.batch_size}, lr {defaults.lr} (Adam, cosine decay), backend {defaults.backend}\n")
    print("| seed | epochs | seconds | test accuracy |")
    print("|---:|---:|---:|---:|")
    for seed, rows in results.items():
        for epoch, seconds, accuracy in rows:
            print(f"| {seed} | {epoch} | {seconds:.1f} | {accuracy:.4f} |")
    if command_seconds is not None:
        print(f"\nFull command, wall clock (start-up, data, training, saving, plots): "
              f"{command_seconds:.1f} s")
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(not set)')}")


if __name__ == "__main__":
    main()
