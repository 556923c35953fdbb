"""scratchnet speed, side by side with PyTorch (CPU, float32).

    python benchmarks/run.py            # full run (a few minutes on 2 cores)
    python benchmarks/run.py --quick    # fewer repeats; the scipy reference skips the heavy shapes
    python benchmarks/run.py --json out.json

Prints markdown tables and writes the same numbers to a JSON file (default
benchmarks/results.json, git-ignored). Every timing is the median of repeated calls, with the
contenders interleaved round by round (see timing.py): the machine is shared, so single numbers
are noisy and only medians of alternated repeats are reported. Nothing here is asserted.

Sections: convolution shapes (forward, backward, GFLOP/s against NumPy's own GEMM of the same
size), max-pool, full training steps of two networks and of the model zoo's (`--sections zoo`),
and the memory of one training step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: import scratchnet

import memory  # noqa: E402  (benchmarks/memory.py)
import networks  # noqa: E402
from timing import Contender, alternate, layer_contenders, machine_description, torch_contenders  # noqa: E402

from scratchnet.layers import Conv2D, MaxPool2D  # noqa: E402

try:
    import torch
except ImportError:  # the benchmark still runs, without the PyTorch columns
    torch = None

# (label, batch, input (H, W, C), filters, kernel, padding)
CONV_SHAPES = [
    ("LeNet conv1 28x28x1 -> 6, 5x5", 64, (28, 28, 1), 6, 5, "valid"),
    ("LeNet conv2 14x14x6 -> 16, 5x5", 64, (14, 14, 6), 16, 5, "valid"),
    ("CIFAR conv1 32x32x3 -> 32, 3x3 same", 64, (32, 32, 3), 32, 3, "same"),
    ("CIFAR conv2 16x16x32 -> 64, 3x3 same", 64, (16, 16, 32), 64, 3, "same"),
    ("heavy 16x16x64 -> 128, 3x3 same", 32, (16, 16, 64), 128, 3, "same"),
]
HEAVY_SHAPES = {"CIFAR conv2 16x16x32 -> 64, 3x3 same", "heavy 16x16x64 -> 128, 3x3 same"}
# (label, batch, input (H, W, C)); 2x2 max-pool, stride 2
POOL_SHAPES = [
    ("reference pool1 26x26x8", 64, (26, 26, 8)),
    ("CIFAR pool1 32x32x32", 64, (32, 32, 32)),
    ("CIFAR pool2 16x16x64", 64, (16, 16, 64)),
]
BATCH_SIZE = 64


def ms(seconds: float) -> float:
    return round(float(seconds) * 1e3, 3)


def ratio(value: float, reference: float | None):
    return round(value / reference, 2) if reference else None


# ------------------------------------------------------------------ convolution
def conv_contenders(shape, settings, rng):
    """Forward and backward contenders for one convolution shape (plus the GEMM ceiling)."""
    label, batch, (height, width, channels), filters, kernel, padding = shape
    x = rng.standard_normal((batch, height, width, channels)).astype(np.float32)
    layers = {}
    for backend in ("im2col", "scipy"):
        layer = Conv2D(filters, kernel, padding=padding, backend=backend)
        layer.build((height, width, channels), rng=np.random.default_rng(0), dtype="float32")
        layers[backend] = layer
    y = layers["im2col"].forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, out_h, out_w, _ = y.shape
    rows, depth = batch * out_h * out_w, kernel * kernel * channels  # GEMM (M, K) @ (K, F)
    patches = rng.standard_normal((rows, depth)).astype(np.float32)
    kernel_matrix = rng.standard_normal((depth, filters)).astype(np.float32)

    skip_scipy = settings.quick and label in HEAVY_SHAPES
    forward = [Contender("gemm", "numpy", lambda: patches @ kernel_matrix),
               Contender("im2col", "numpy", lambda: layers["im2col"].forward(x, training=True))]
    backward = [Contender("im2col", "numpy", lambda: layers["im2col"].backward(dy))]
    if not skip_scipy:
        layers["scipy"].forward(x, training=True)
        forward.append(Contender("scipy", "numpy", lambda: layers["scipy"].forward(x, training=True),
                                 rounds=settings.scipy_rounds))
        backward.append(Contender("scipy", "numpy", lambda: layers["scipy"].backward(dy),
                                  rounds=settings.scipy_rounds))
    if torch is not None:
        torch_forward, torch_backward = torch_contenders(networks.torch_layer(layers["im2col"]), x, dy)
        forward.append(torch_forward)
        backward.append(torch_backward)
    flops = 2.0 * rows * depth * filters  # multiply-adds of the forward product, x2
    return forward, backward, flops, skip_scipy


def conv_tables(settings, rng):
    forward_rows, backward_rows = [], []
    for shape in CONV_SHAPES:
        forward, backward, flops, skip_scipy = conv_contenders(shape, settings, rng)
        forward_times = alternate(forward, settings.rounds, settings.calls, settings.settle)
        backward_times = alternate(backward, settings.rounds, settings.calls, settings.settle)
        ceiling = flops / forward_times["gemm"] / 1e9
        for rows, times, work in ((forward_rows, forward_times, flops),
                                  (backward_rows, backward_times, 2 * flops)):  # dW and dx
            torch_time = times.get("torch")
            row = {"shape": shape[0], "batch": shape[1],
                   "torch_ms": ms(torch_time) if torch_time else None,
                   "im2col_ms": ms(times["im2col"]), "im2col_x_torch": ratio(times["im2col"], torch_time),
                   "scipy_ms": None if skip_scipy else ms(times["scipy"]),
                   "scipy_x_torch": None if skip_scipy else ratio(times["scipy"], torch_time),
                   "im2col_gflops": round(work / times["im2col"] / 1e9, 1),
                   "torch_gflops": round(work / torch_time / 1e9, 1) if torch_time else None,
                   "gemm_ceiling_gflops": round(ceiling, 1)}
            row["im2col_pct_of_gemm"] = round(100 * row["im2col_gflops"] / ceiling)
            rows.append(row)
        print(f"  conv {shape[0]}: forward {ms(forward_times['im2col'])} ms, "
              f"backward {ms(backward_times['im2col'])} ms", file=sys.stderr)
    columns = ["shape", "batch", "torch_ms", "im2col_ms", "im2col_x_torch", "scipy_ms", "scipy_x_torch",
               "im2col_gflops", "torch_gflops", "gemm_ceiling_gflops", "im2col_pct_of_gemm"]
    scipy_note = (f"scipy timed over {settings.scipy_rounds} rounds only (it is the slow reference)"
                  + ("; skipped on the two heaviest shapes in --quick mode (blank cells)" if settings.quick
                     else ""))
    ceiling_note = ("gemm_ceiling_gflops: NumPy float32 (M, K) @ (K, F) of the layer's own sizes, "
                    "M = N*OH*OW, K = kh*kw*C, timed in the same run.")
    return [
        {"title": "Convolution forward (float32)", "columns": columns, "rows": forward_rows,
         "notes": [ceiling_note, "GFLOP/s = 2*M*K*F / time.", scipy_note]},
        {"title": "Convolution backward: dx, dW, db (float32)", "columns": columns, "rows": backward_rows,
         "notes": ["GFLOP/s = 4*M*K*F / time (the dW and dx products); the ceiling is the forward GEMM's.",
                   "torch: torch.autograd.grad of the conv output for (x, weight, bias).", scipy_note]},
    ]


# ------------------------------------------------------------------ max-pool
def pool_table(settings, rng):
    rows = []
    for label, batch, (height, width, channels) in POOL_SHAPES:
        x = rng.standard_normal((batch, height, width, channels)).astype(np.float32)
        layer = MaxPool2D(2)
        layer.build((height, width, channels), dtype="float32")
        dy = rng.standard_normal(layer.forward(x, training=True).shape).astype(np.float32)
        forward_call, backward_call = layer_contenders("scratchnet", layer, x, dy)
        forward, backward = [forward_call], [backward_call]
        if torch is not None:  # nn.MaxPool2d(2) (to_torch's twin); x and dy permuted once, untimed
            torch_forward, torch_backward = torch_contenders(networks.torch_layer(layer), x, dy)
            forward.append(torch_forward)
            backward.append(torch_backward)
        for direction, contenders in (("forward", forward), ("backward", backward)):
            times = alternate(contenders, settings.rounds, settings.calls, settings.settle)
            torch_time = times.get("torch")
            rows.append({"shape": label, "pass": direction, "batch": batch,
                         "torch_ms": ms(torch_time) if torch_time else None,
                         "scratchnet_ms": ms(times["scratchnet"]),
                         "scratchnet_x_torch": ratio(times["scratchnet"], torch_time)})
    return {"title": "Max-pool 2x2, stride 2 (float32)",
            "columns": ["shape", "pass", "batch", "torch_ms", "scratchnet_ms", "scratchnet_x_torch"],
            "rows": rows, "notes": ["torch: nn.MaxPool2d(2) on NCHW (timing.torch_contenders); backward via "
                                     "torch.autograd.grad."]}


# ------------------------------------------------------------------ training step
def train_step_table(settings, rng):
    rows = [train_step_row(name, networks.scratchnet_network(name), settings, rng)
            for name in networks.NETWORKS]
    return {"title": "Full training step: forward, cross-entropy, backward, Adam (float32, batch 64)",
            "columns": STEP_COLUMNS, "rows": rows,
            "notes": ["reference: conv(1->8, 3x3) relu maxpool2, conv(8->16, 3x3) relu maxpool2, flatten, "
                      "dense 128 relu, dense 10, on 28x28x1.",
                      "small CNN: conv 32 3x3 same relu maxpool2, conv 64 3x3 same relu maxpool2, flatten, "
                      "dense 128 relu, dense 10, on 32x32x3.",
                      "scratchnet uses the im2col backend; torch: the same network built by "
                      "scratchnet.interop.to_torch, its Flatten a plain nn.Flatten (the next Linear's "
                      "columns reordered once), torch.optim.Adam, NCHW input.",
                      "_ms columns: medians; _best_ms: the fastest of all timed calls (least disturbed by "
                      "other processes on the shared machine)."]}


def zoo_step_table(settings, rng):
    """Training steps of model-zoo networks (BatchNorm, dropout, residual blocks) beside torch.nn."""
    rows = [train_step_row(name, networks.zoo_network(name), settings, rng) for name in networks.ZOO_NETWORKS]
    return {"title": "Model zoo training step: forward, cross-entropy, backward, Adam (float32, batch 64)",
            "columns": STEP_COLUMNS, "rows": rows,
            "notes": ["small_cnn_bn: scratchnet.models.small_cnn_bn (conv-BN-ReLU-maxpool x2, dense 128, "
                      "dropout 0.5, dense 10); resnet8: scratchnet.models.resnet8 (He et al.'s CIFAR ResNet, "
                      "one BasicBlock per stage, projection shortcuts); both on 32x32x3.",
                      "torch: the same layers built by scratchnet.interop.to_torch (BatchNorm2d and Dropout "
                      "in training mode, the scratchnet weights copied in, a plain nn.Flatten), "
                      "torch.optim.Adam, NCHW input.",
                      "_ms columns: medians; _best_ms: the fastest of all timed calls."]}


STEP_COLUMNS = ["network", "batch", "torch_ms", "scratchnet_ms", "scratchnet_x_torch",
                "torch_best_ms", "scratchnet_best_ms", "best_x_torch"]


def train_step_row(name, model, settings, rng):
    """One row: scratchnet's train_step against the same network's step in torch, alternated."""
    x, labels = networks.random_batch(name, BATCH_SIZE, rng)
    contenders = [Contender("scratchnet", "numpy", lambda: model.train_step(x, labels))]
    if torch is not None:
        net = networks.torch_network(model)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_function = torch.nn.CrossEntropyLoss()
        x_nchw = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())  # permuted once, untimed
        labels_t = torch.from_numpy(labels)
        contenders.append(Contender("torch", "torch", lambda: networks.torch_train_step(
            torch, net, optimizer, loss_function, x_nchw, labels_t)))
    times = alternate(contenders, settings.rounds, settings.calls, settings.settle)
    torch_time = times.get("torch")
    # the fastest call of each: what each reaches when the shared machine leaves it alone
    best = {contender.name: min(contender.samples) for contender in contenders}
    print(f"  train step {name}: {ms(times['scratchnet'])} ms", file=sys.stderr)
    return {"network": name, "batch": BATCH_SIZE, "torch_ms": ms(torch_time) if torch_time else None,
            "scratchnet_ms": ms(times["scratchnet"]),
            "scratchnet_x_torch": ratio(times["scratchnet"], torch_time),
            "torch_best_ms": ms(best["torch"]) if "torch" in best else None,
            "scratchnet_best_ms": ms(best["scratchnet"]),
            "best_x_torch": ratio(best["scratchnet"], best.get("torch"))}


# ------------------------------------------------------------------ output
def markdown(rows, title=None, notes=(), columns=None, heading="###") -> str:
    """Rows (dicts) as a markdown table, under ``heading title`` if given, the notes as a list below.

    columns: default every key of the rows, in the order first seen; a missing or None cell is
    blank, a float is written with ``:g``. run.py's tables are dicts of these: ``markdown(**table)``.
    """
    def cell(value):
        if value is None:
            return ""
        return f"{value:g}" if isinstance(value, float) else str(value)

    columns = columns or list(dict.fromkeys(column for row in rows for column in row))
    lines = [f"{heading} {title}", ""] if title else []
    lines += ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row.get(column)) for column in columns) + " |" for row in rows]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def machine_markdown(machine: dict, settings) -> str:
    lines = ["### Machine", ""] + [f"- {key}: {value}" for key, value in machine.items()]
    lines.append(f"- mode: {'quick' if settings.quick else 'full'}; medians of {settings.rounds} alternated "
                 f"rounds x {settings.calls} calls")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats; skip scipy on heavy shapes")
    parser.add_argument("--json", default=str(Path(__file__).with_name("results.json")),
                        help="where to write the results (default benchmarks/results.json)")
    parser.add_argument("--sections", default="conv,pool,step,zoo,memory",
                        help="comma-separated subset of conv,pool,step,zoo,memory")
    settings = parser.parse_args(argv)
    settings.rounds = 5 if settings.quick else 15
    settings.calls = 2 if settings.quick else 3
    settings.scipy_rounds = 1 if settings.quick else 3
    settings.settle = 0.1
    return settings


def main(argv=None) -> None:
    settings = parse_args(argv)
    if torch is not None:
        torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    machine = machine_description(torch)
    sections = set(settings.sections.split(","))
    started = time.perf_counter()
    tables = []
    if "conv" in sections:
        tables += conv_tables(settings, rng)
    if "pool" in sections:
        tables.append(pool_table(settings, rng))
    if "step" in sections:
        tables.append(train_step_table(settings, rng))
    if "zoo" in sections:
        tables.append(zoo_step_table(settings, rng))
    if "memory" in sections:
        tables.append(memory.memory_table(rng, BATCH_SIZE))
    output = machine_markdown(machine, settings) + "\n" + "\n".join(markdown(**table) for table in tables)
    print(output)
    results = {"machine": machine, "mode": "quick" if settings.quick else "full", "rounds": settings.rounds,
               "calls_per_round": settings.calls, "seconds": round(time.perf_counter() - started, 1),
               "tables": tables}
    Path(settings.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {settings.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
