"""Depthwise, separable and grouped convolutions next to PyTorch (CPU, float32).

    python benchmarks/grouped.py            # a few minutes on 2 cores
    python benchmarks/grouped.py --quick

Same harness as run.py (timing.py: contenders interleaved round by round, medians). Rows:

* DepthwiseConv2D, batch 64, 32x32x32, 3x3 same, multiplier 1: the "offsets" kernel (default),
  the grouped im2col kernel (groups = C, kernels/grouped.py) and torch.nn.Conv2d(groups=C).
* SeparableConv2D 32x32x32 -> 64 (depthwise 3x3 then 1x1) against torch's two convolutions.
* Grouped Conv2D (im2col, one batched matmul over groups) against the same convolution run as
  g separate Conv2D layers on the channel slices (concatenated), and torch's groups=g.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import networks  # noqa: E402
from run import machine_markdown, markdown, ms, parse_args, ratio  # noqa: E402
from timing import alternate, layer_contenders, machine_description, torch_contenders  # noqa: E402

from scratchnet.interop.layouts import to_torch_arrays  # noqa: E402
from scratchnet.layers import Conv2D, DepthwiseConv2D, SeparableConv2D  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

# (label, batch, input (H, W, C), filters, groups)
GROUPED_SHAPES = [
    ("16x16x64 -> 64, 3x3 same, groups 4", 64, (16, 16, 64), 64, 4),
    ("16x16x64 -> 128, 3x3 same, groups 2", 32, (16, 16, 64), 128, 2),
    ("32x32x32 -> 32, 3x3 same, groups 8", 64, (32, 32, 32), 32, 8),
]
DEPTHWISE_SHAPE = ("32x32x32, 3x3 same, M=1", 64, (32, 32, 32))


def built(layer, input_shape):
    layer.build(input_shape, rng=np.random.default_rng(0), dtype="float32")
    return layer


def torch_module(in_channels, out_channels, kernel, groups, W_torch, bias):
    """A depthwise (groups = C) or 1x1 ``nn.Conv2d``, padding kernel // 2 built in: not to_torch's
    depthwise twin, which pads with an explicit F.pad first (a copy this benchmark would time)."""
    module = torch.nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, groups=groups,
                             bias=bias is not None)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(np.ascontiguousarray(W_torch)))
        if bias is not None:
            module.bias.copy_(torch.from_numpy(bias))
    return module


class SeparateGroups:
    """The baseline a grouped kernel must beat: g Conv2D layers on the channel slices."""

    def __init__(self, grouped: Conv2D, input_shape):
        height, width, channels = input_shape
        g, filters = grouped.groups, grouped.filters
        self.cg, self.fg = channels // g, filters // g
        self.layers = []
        for group in range(g):
            layer = built(Conv2D(self.fg, grouped.kernel_size, padding=grouped.padding),
                          (height, width, self.cg))
            layer.params["W"][...] = grouped.params["W"][..., group * self.fg:(group + 1) * self.fg]
            self.layers.append(layer)

    def forward(self, x, training=True):
        return np.concatenate([layer.forward(x[..., k * self.cg:(k + 1) * self.cg], training)
                               for k, layer in enumerate(self.layers)], axis=-1)

    def backward(self, dy):
        return np.concatenate([layer.backward(dy[..., k * self.fg:(k + 1) * self.fg])
                               for k, layer in enumerate(self.layers)], axis=-1)


def time_rows(label, batch, forward, backward, settings, baseline_names):
    rows = []
    for direction, contenders in (("forward", forward), ("backward", backward)):
        times = alternate(contenders, settings.rounds, settings.calls, settings.settle)
        torch_time = times.get("torch")
        best = {contender.name: min(contender.samples) for contender in contenders}
        for name in baseline_names:
            rows.append({"layer": label, "pass": direction, "batch": batch, "contender": name,
                         "ms": ms(times[name]), "torch_ms": ms(torch_time) if torch_time else None,
                         "x_torch": ratio(times[name], torch_time), "best_ms": ms(best[name]),
                         "torch_best_ms": ms(best["torch"]) if "torch" in best else None,
                         "best_x_torch": ratio(best[name], best.get("torch"))})
        print(f"  {label} {direction}: " + ", ".join(f"{k} {ms(v)} ms" for k, v in times.items()),
              file=sys.stderr)
    return rows


def depthwise_rows(settings, rng):
    label, batch, shape = DEPTHWISE_SHAPE
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    rows, channels = [], shape[2]
    layers = {backend: built(DepthwiseConv2D(3, padding="same", backend=backend), shape)
              for backend in ("offsets", "im2col")}
    dy = rng.standard_normal(layers["offsets"].forward(x).shape).astype(np.float32)
    forward, backward = [], []
    for backend, layer in layers.items():
        f, b = layer_contenders(backend, layer, x, dy)
        forward.append(f)
        backward.append(b)
    if torch is not None:
        arrays = to_torch_arrays(layers["offsets"], layers["offsets"].params)  # (C*M, 1, kh, kw), bias
        module = torch_module(channels, channels, 3, channels, arrays["weight"], arrays["bias"])
        f, b = torch_contenders(module, x, dy)
        forward.append(f)
        backward.append(b)
    rows += time_rows(f"DepthwiseConv2D {label}", batch, forward, backward, settings, list(layers))

    separable = built(SeparableConv2D(64, 3, padding="same"), shape)
    dy = rng.standard_normal(separable.forward(x).shape).astype(np.float32)
    forward, backward = map(list, zip(layer_contenders("offsets", separable, x, dy)))
    if torch is not None:
        arrays = to_torch_arrays(separable, separable.params)
        depth = torch_module(channels, channels, 3, channels, arrays["depthwise.weight"], None)
        point = torch_module(channels, 64, 1, 1, arrays["pointwise.weight"], arrays["pointwise.bias"])
        f, b = torch_contenders(torch.nn.Sequential(depth, point), x, dy)
        forward.append(f)
        backward.append(b)
    rows += time_rows(f"SeparableConv2D {label} -> 64", batch, forward, backward, settings, ["offsets"])
    return rows


def grouped_rows(settings, rng):
    rows = []
    for label, batch, shape, filters, groups in GROUPED_SHAPES:
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        grouped = built(Conv2D(filters, 3, padding="same", groups=groups, use_bias=False), shape)
        separate = SeparateGroups(grouped, shape)
        dy = rng.standard_normal(grouped.forward(x).shape).astype(np.float32)
        np.testing.assert_allclose(grouped.forward(x), separate.forward(x), rtol=1e-4, atol=1e-4)
        forward, backward = [], []
        for name, layer in (("im2col grouped", grouped), ("g separate Conv2D", separate)):
            f, b = layer_contenders(name, layer, x, dy)
            forward.append(f)
            backward.append(b)
        if torch is not None:  # to_torch's nn.Conv2d(groups=g, padding=1), weight (F, C/g, kh, kw)
            f, b = torch_contenders(networks.torch_layer(grouped), x, dy)
            forward.append(f)
            backward.append(b)
        rows += time_rows(f"Conv2D {label}", batch, forward, backward, settings,
                          ["im2col grouped", "g separate Conv2D"])
    return rows


def main(argv=None):
    settings = parse_args(argv)
    if torch is not None:
        torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    machine = machine_description(torch)
    started = time.perf_counter()
    table = {"title": "Depthwise, separable and grouped convolution (float32)",
             "columns": ["layer", "pass", "batch", "contender", "ms", "torch_ms", "x_torch", "best_ms",
                         "torch_best_ms", "best_x_torch"],
             "rows": depthwise_rows(settings, rng) + grouped_rows(settings, rng),
             "notes": ["torch: torch.nn.Conv2d(groups=...) on NCHW (separable: depthwise then 1x1); "
                       "backward = torch.autograd.grad for input, weight (and bias).",
                       "backward for scratchnet: layer.backward (dx, dW, db).",
                       "ms: medians; best_ms: the fastest timed call (least disturbed by other processes)."]}
    print(machine_markdown(machine, settings) + "\n" + markdown(**table))
    path = Path(__file__).with_name("results_grouped.json")
    path.write_text(json.dumps({"machine": machine, "seconds": round(time.perf_counter() - started, 1),
                                "table": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
