"""BatchNorm speed next to PyTorch's BatchNorm2d (CPU, float32, training mode).

    python benchmarks/normalization.py            # a few seconds
    python benchmarks/normalization.py --quick

Same harness as run.py (timing.py: contenders interleaved round by round, medians). Forward in
training mode (batch statistics and the running-statistics update) and backward (dx, dgamma,
dbeta), for channels-last scratchnet input and NCHW PyTorch input of the same numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: import scratchnet

from run import machine_markdown, markdown, ms, parse_args, ratio, torch  # noqa: E402
from timing import alternate, layer_contenders, machine_description, torch_contenders  # noqa: E402

from scratchnet.layers import BatchNorm  # noqa: E402

# (label, batch, input (H, W, C))
BATCHNORM_SHAPES = [
    ("CIFAR 32x32x32", 64, (32, 32, 32)),
    ("16x16x64", 64, (16, 16, 64)),
    ("8x8x128", 64, (8, 8, 128)),
]


def batchnorm_table(settings, rng):
    rows = []
    for label, batch, (height, width, channels) in BATCHNORM_SHAPES:
        x = rng.standard_normal((batch, height, width, channels)).astype(np.float32)
        dy = rng.standard_normal(x.shape).astype(np.float32)
        layer = BatchNorm()
        layer.build((height, width, channels), dtype="float32")
        forward_call, backward_call = layer_contenders("scratchnet", layer, x, dy)
        forward, backward = [forward_call], [backward_call]
        if torch is not None:  # backward: dx, dgamma, dbeta, what scratchnet computes
            forward_call, backward_call = torch_contenders(torch.nn.BatchNorm2d(channels).train(), x, dy)
            forward.append(forward_call)
            backward.append(backward_call)
        for direction, contenders in (("forward", forward), ("backward", backward)):
            times = alternate(contenders, settings.rounds, settings.calls, settings.settle)
            torch_time = times.get("torch")
            # the fastest call of each: what each reaches when the shared machine leaves it alone
            best = {contender.name: min(contender.samples) for contender in contenders}
            rows.append({"shape": label, "pass": direction, "batch": batch,
                         "torch_ms": ms(torch_time) if torch_time else None,
                         "scratchnet_ms": ms(times["scratchnet"]),
                         "scratchnet_x_torch": ratio(times["scratchnet"], torch_time),
                         "torch_best_ms": ms(best["torch"]) if "torch" in best else None,
                         "scratchnet_best_ms": ms(best["scratchnet"]),
                         "best_x_torch": ratio(best["scratchnet"], best.get("torch"))})
        print(f"  batchnorm {label}: done", file=sys.stderr)
    return {"title": "BatchNorm, training mode (float32)",
            "columns": ["shape", "pass", "batch", "torch_ms", "scratchnet_ms", "scratchnet_x_torch",
                        "torch_best_ms", "scratchnet_best_ms", "best_x_torch"],
            "rows": rows,
            "notes": ["torch: nn.BatchNorm2d in train() mode on NCHW; backward via torch.autograd.grad "
                      "for (x, weight, bias).",
                      "scratchnet forward includes the running-statistics update, as PyTorch's does.",
                      "_ms columns: medians; _best_ms: the fastest of all timed calls."]}


def main(argv=None) -> None:
    settings = parse_args(argv)
    if torch is not None:
        torch.set_num_threads(2)
    machine = machine_description(torch)
    table = batchnorm_table(settings, np.random.default_rng(0))
    print(machine_markdown(machine, settings) + "\n" + markdown(**table))


if __name__ == "__main__":
    main()
