"""Issue #15: where a zoo network's step loses or wins against PyTorch, layer by layer.

    OPENBLAS_NUM_THREADS=1 python benchmarks/layers_vs_torch.py --threads 1              # resnet8
    OPENBLAS_NUM_THREADS=1 python benchmarks/layers_vs_torch.py --networks small_cnn_bn,resnet8 --batch 128

Every leaf layer of the network (containers opened: a residual block's convolutions, batch norms
and shortcut) is timed alone, forward (training mode) and backward, beside its own torch.nn twin
(``networks.torch_layer``: the same weights, NCHW), on the input that layer sees in a real forward
of a random batch, with a random upstream gradient. Forwards are alternated with the twin's
forwards, backwards with its backwards (timing.py, medians). The backward is the input gradient
and the parameter gradients for both sides (``timing.torch_contenders``). glibc's malloc is tuned
as ``train_step`` tunes it (``keep_freed_memory``), so a layer's new output costs no page faults,
as inside a step. Not in the table: what a step adds around the layers (the loss, the
optimizer, a container's own add), which speed_zoo.py's per-layer profile shows is ~0.25 ms.

Read it as: the sum of the rows against the step ratio in speed_zoo.py; the rows above 1.0 are
where the remaining time goes. Two differences from a step, both sides alike: the first layer's
backward here computes the input gradient, which a step skips (scratchnet's ``backward_params``,
torch's input without ``requires_grad``), and every layer is a separate call (torch's per-call
overhead of its autograd and dispatcher counts once per row). So the sum matches the step where
the first layer is cheap (resnet8: rows 1.10x, step 1.09-1.18x) and not where it dominates
(LeNet-5: rows 0.74x, step ~0.98x). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: import scratchnet

import networks  # noqa: E402
import torch  # noqa: E402
from run import markdown, ms, ratio  # noqa: E402
from speed_zoo import NETWORKS, build, walk  # noqa: E402
from timing import alternate, layer_contenders, machine_description, torch_contenders  # noqa: E402

from scratchnet.kernels.workspace import keep_freed_memory  # noqa: E402


def leaf_inputs(model, x):
    """{leaf layer: the input it receives} in one training-mode forward of ``model`` on ``x``,
    and the leaves in forward order. Each leaf's forward is wrapped for the one call (an
    instance attribute shadows the method) and unwrapped after."""
    leaves = [layer for _, layer in walk(model.layers) if not layer.sublayers()]
    inputs = {}
    for leaf in leaves:
        def recording(x_in, training=False, leaf=leaf, forward=leaf.forward):
            inputs[leaf] = x_in.copy()
            return forward(x_in, training=training)
        leaf.forward = recording
    try:
        model.forward(x, training=True)
    finally:
        for leaf in leaves:
            leaf.__dict__.pop("forward", None)
    return inputs, leaves


def layer_rows(label, batch, rounds, calls, rng):
    """One row per leaf layer of zoo network ``label``: ms forward and backward, ours and torch's."""
    model = build(label, "auto")
    x = rng.standard_normal((batch, *NETWORKS[label][1])).astype("float32")
    inputs, leaves = leaf_inputs(model, x)
    rows = []
    for leaf in leaves:
        x_leaf = inputs[leaf]
        y = leaf.forward(x_leaf, training=True)
        backend = leaf.cache.get("backend", "")
        dy = rng.standard_normal(y.shape).astype("float32")
        ours_forward, ours_backward = layer_contenders("ours", leaf, x_leaf, dy)
        torch_forward, torch_backward = torch_contenders(networks.torch_layer(leaf), x_leaf, dy)
        forward = alternate([ours_forward, torch_forward], rounds, calls, 0.05)
        backward = alternate([ours_backward, torch_backward], rounds, calls, 0.05)
        ours, theirs = forward["ours"] + backward["ours"], forward["torch"] + backward["torch"]
        rows.append({"network": label, "batch": batch, "layer": leaf.name, "kind": type(leaf).__name__,
                     "backend": backend, "input": "x".join(map(str, x_leaf.shape[1:])),
                     "ours_fwd_ms": ms(forward["ours"]), "torch_fwd_ms": ms(forward["torch"]),
                     "ours_bwd_ms": ms(backward["ours"]), "torch_bwd_ms": ms(backward["torch"]),
                     "x_torch": ratio(ours, theirs), "ours_s": ours, "torch_s": theirs})
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def totals(rows):
    """Per network: the layers' summed ms, ours and torch's, and the sums by kind of layer."""
    def kind_of(row):  # "Conv2D winograd", "BatchNorm", ...
        return f"{row['kind']} {row['backend']}".strip()

    summary = []
    for label in dict.fromkeys(row["network"] for row in rows):
        mine = [row for row in rows if row["network"] == label]
        for kind in [*dict.fromkeys(map(kind_of, mine)), "all layers"]:
            chosen = [row for row in mine if kind in ("all layers", kind_of(row))]
            ours, theirs = sum(row["ours_s"] for row in chosen), sum(row["torch_s"] for row in chosen)
            summary.append({"network": label, "layers": kind, "count": len(chosen), "ours_ms": ms(ours),
                            "torch_ms": ms(theirs), "x_torch": ratio(ours, theirs),
                            "ours_minus_torch_ms": ms(ours - theirs)})
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default="resnet8", help=f"comma-separated, of {', '.join(NETWORKS)}")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch threads (set OPENBLAS_NUM_THREADS to the same number for NumPy)")
    settings = parser.parse_args(argv)
    torch.set_num_threads(settings.threads)
    keep_freed_memory()
    machine = machine_description(torch)
    print("\n".join(["#### Machine", ""] + [f"- {k}: {v}" for k, v in machine.items()]), flush=True)
    rng = np.random.default_rng(0)
    rows = []
    for label in settings.networks.split(","):
        rows += layer_rows(label, settings.batch, settings.rounds, settings.calls, rng)
    columns = ["network", "batch", "layer", "backend", "input", "ours_fwd_ms", "torch_fwd_ms",
               "ours_bwd_ms", "torch_bwd_ms", "x_torch"]
    print(markdown(rows, "Each leaf layer beside its torch twin (float32)", columns=columns,
                   notes=["ms: medians of alternated rounds; x_torch: (fwd + bwd) / torch's"],
                   heading="####"))
    print(markdown(totals(rows), "Summed by kind of layer", heading="####"))


if __name__ == "__main__":
    main()
