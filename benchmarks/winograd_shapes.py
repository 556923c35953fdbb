"""Issue #15: every 3x3 stride-1 convolution shape of the model zoo, one Conv2D layer at a time,
Winograd (this checkout's kernel, and optionally an older one from git) beside im2col and
torch.nn.Conv2d, forward and backward, interleaved in one process.

    OPENBLAS_NUM_THREADS=1 python benchmarks/winograd_shapes.py                # 1 thread each
    OPENBLAS_NUM_THREADS=1 python benchmarks/winograd_shapes.py --old-ref 5770e54 --batches 64
    OPENBLAS_NUM_THREADS=1 python benchmarks/winograd_shapes.py --tile-sizes 4,2   # F(2x2, 3x3) too
    OPENBLAS_NUM_THREADS=1 python benchmarks/winograd_shapes.py --old-ref 5770e54 --steps resnet8

Each contender is a built ``Conv2D(F, 3, padding=1)`` (float32, bias) timed through the layer's
``forward(x, training=True)`` and ``backward(dy)`` (so the padding and the dx crop are in),
except torch: ``torch.nn.Conv2d`` with the same weights on the NCHW input. ``--old-ref``
loads ``scratchnet/kernels/winograd.py`` as it was at that git commit into a temporary module
and runs the same layer with it (the layer calls ``conv.winograd_kernels``; swapped for the
duration of each call; the input padded first, as the layer did for it). Memory: tracemalloc
peak of one forward + backward above its start (the layer's previous cache dropped first, so
what the forward keeps for the backward is in), and torch.profiler's peak for torch
(memory.py ``torch_profiled_peak``). ``--steps``: whole training steps of zoo networks with
``backend="auto"`` (speed_zoo.py's models and torch twins), with the old kernel and the new,
time and peak (memory.py ``traced_step_peak``; torch: memory.py ``torch_step_peak``, the
``torch_profiled_peak`` of ``networks.torch_train_step`` after a warm-up step). Medians of
alternated rounds (timing.py); nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout: import scratchnet

import networks  # noqa: E402
import torch  # noqa: E402
from memory import torch_profiled_peak, torch_step_peak, traced, traced_step_peak  # noqa: E402
from run import markdown, ms, ratio  # noqa: E402
from timing import Contender, alternate, machine_description, module_at_revision, torch_contenders  # noqa: E402

from scratchnet.layers import Conv2D  # noqa: E402
from scratchnet.layers import conv as conv_module  # noqa: E402
from scratchnet.layers.spatial import pad_spatial  # noqa: E402

# (which zoo layers, H = W, C, F): every 3x3 stride-1 Conv2D of the zoo networks (padding 1)
SHAPES = [
    ("resnet8 stem", 32, 3, 16),
    ("flax_cnn / small_cnn_bn conv1", 32, 3, 32),
    ("resnet8 stage 1", 32, 16, 16),
    ("resnet8 stage 2", 16, 32, 32),
    ("resnet8 stage 3", 8, 64, 64),
    ("flax_cnn / small_cnn_bn conv2", 16, 32, 64),
    ("digit_cnn conv2", 14, 16, 32),
    ("digit_cnn conv3 (ragged tiles)", 7, 32, 64),
]


def old_winograd_module(ref):
    """scratchnet/kernels/winograd.py at git commit ``ref``, behind the adapter below."""
    return PaddingFirst(module_at_revision("scratchnet/kernels/winograd.py", ref))


class PaddingFirst:
    """An older kernel module behind this checkout's Conv2D: the layer hands Winograd x unpadded
    plus the pads, the old kernels took x padded (by ConvBase.forward, as this adapter does)."""

    def __init__(self, kernels):
        self.kernels = kernels

    def conv2d_forward(self, x, W, b, pads, workspace):
        return self.kernels.conv2d_forward(pad_spatial(x, pads, fill=0), W, b, workspace=workspace)

    def conv2d_backward(self, *args):
        return self.kernels.conv2d_backward(*args[:6])  # the old kernel had no use_bias (db always)


class WithKernels:
    """Run a layer's calls with ``conv.winograd_kernels`` swapped for ``kernels`` (None: as is)."""

    def __init__(self, kernels):
        self.kernels = kernels

    def __call__(self, function, *args):
        if self.kernels is None:
            return function(*args)
        saved = conv_module.winograd_kernels
        conv_module.winograd_kernels = self.kernels
        try:
            return function(*args)
        finally:
            conv_module.winograd_kernels = saved


def numpy_layers(height, channels, filters, kernel_modules, tile_sizes):
    """name -> (layer, WithKernels, tile size) for every numpy contender, built with the same weights."""
    layers = {}
    for tile_size in tile_sizes:
        for label, kernels in kernel_modules.items():
            if tile_size != 4 and label != "new":
                continue
            name = f"{label} F({tile_size}x{tile_size})" if len(tile_sizes) > 1 else label
            layers[name] = (built(height, channels, filters, "winograd"), WithKernels(kernels), tile_size)
    layers["im2col"] = (built(height, channels, filters, "im2col"), WithKernels(None), None)
    return layers


def built(height, channels, filters, backend):
    layer = Conv2D(filters, 3, padding=1, backend=backend)
    layer.build((height, height, channels), rng=np.random.default_rng(0), dtype="float32")
    return layer


def with_tile_size(layer, tile_size):
    """The layer's forward with F(m x m, 3x3), m = tile_size (the layer itself always uses 4)."""
    if tile_size in (None, 4):
        return lambda x: layer.forward(x, training=True)
    kernels = conv_module.winograd_kernels

    def forward(x):
        original = kernels.conv2d_forward
        kernels.conv2d_forward = lambda *args, **kwargs: original(*args, m=tile_size, **kwargs)
        try:
            return layer.forward(x, training=True)
        finally:
            kernels.conv2d_forward = original
    return forward


def numpy_peak(run, layer, x, dy, forward):
    """tracemalloc peak of one forward + backward, the workspace warm and the layer's cache dropped."""
    def forward_backward():
        run(forward, x)
        run(layer.backward, dy)
    forward_backward()  # warm-up: the workspace exists
    layer.cache = {}
    return traced(forward_backward)[1]


def shape_rows(label, height, channels, filters, batch, kernel_modules, settings, rng):
    x = rng.standard_normal((batch, height, height, channels)).astype(np.float32)
    dy = rng.standard_normal((batch, height, height, filters)).astype(np.float32)
    layers = numpy_layers(height, channels, filters, kernel_modules, settings.tile_sizes)
    forward, backward, memory = [], [], {}
    for name, (layer, run, tile_size) in layers.items():
        forward_call = with_tile_size(layer, tile_size)
        forward.append(Contender(name, "numpy", lambda f=forward_call, r=run: r(f, x)))
        backward.append(Contender(name, "numpy", lambda lay=layer, r=run: r(lay.backward, dy)))
        memory[name] = numpy_peak(run, layer, x, dy, forward_call)
    module = networks.torch_layer(layers["im2col"][0])
    torch_forward, torch_backward = torch_contenders(module, x, dy)
    forward.append(torch_forward)
    backward.append(torch_backward)
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)  # for the memory peak
    dy_t = torch.from_numpy(dy.transpose(0, 3, 1, 2).copy())
    memory["torch"] = torch_profiled_peak(torch, lambda: torch.autograd.grad(
        module(x_t), [x_t, *module.parameters()], dy_t))[1]
    # backward first: each layer's cache then holds the forward that the timed backwards reuse
    for layer, run, tile_size in layers.values():
        run(with_tile_size(layer, tile_size), x)
    backward_times = alternate(backward, settings.rounds, settings.calls, settings.settle)
    forward_times = alternate(forward, settings.rounds, settings.calls, settings.settle)
    rows = []
    for name in forward_times:
        both = forward_times[name] + backward_times[name]
        torch_both = forward_times["torch"] + backward_times["torch"]
        rows.append({"layers": label, "shape": f"{height}x{height}x{channels} -> {filters}", "batch": batch,
                     "contender": name, "fwd_ms": ms(forward_times[name]), "bwd_ms": ms(backward_times[name]),
                     "fwd_x_torch": ratio(forward_times[name], forward_times["torch"]),
                     "bwd_x_torch": ratio(backward_times[name], backward_times["torch"]),
                     "fwd+bwd_x_torch": ratio(both, torch_both),
                     "fwd+bwd_x_im2col": ratio(both, forward_times["im2col"] + backward_times["im2col"]),
                     "peak_MiB": round(memory[name] / 2**20, 2),
                     "peak_x_torch": ratio(memory[name], memory["torch"])})
        old = [other for other in forward_times if other.startswith("old")]
        if old:
            rows[-1]["fwd+bwd_x_old"] = ratio(both, forward_times[old[0]] + backward_times[old[0]])
    return rows


def step_rows(label, batch, kernel_modules, settings, rng):
    """One zoo network's training step: backend "auto" with each Winograd kernel, "im2col", torch."""
    import speed_zoo

    contenders, state = speed_zoo.step_contenders(label, batch, "float32", rng, backends=("im2col",))
    model, x, labels = state[:3]
    peaks = {"im2col": traced_step_peak(model, x, labels)}
    for name, kernels in kernel_modules.items():
        model = speed_zoo.build(label, "auto")
        run = WithKernels(kernels)
        contenders.insert(0, Contender(name, "numpy", lambda r=run, m=model: r(m.train_step, x, labels)))
        peaks[name] = run(traced_step_peak, model, x, labels)
    # with_stack=True, as the figures in benchmarks/README.md were measured (speed_zoo.py's
    # torch_step_memory needs stacks for its timeline): the Python frames become parent events
    # whose frees count at their start, so the running sum reads lower than without them
    # (measured: 2.4% on resnet8, batch 16). memory.py torch_step_peak warms the step up once.
    peaks["torch"] = torch_step_peak(torch, *state[3:], with_stack=True)[1]
    times = alternate(contenders, settings.rounds, settings.calls, settings.settle)
    rows = []
    for name, seconds in times.items():
        rows.append({"network": label, "batch": batch, "contender": name, "step_ms": ms(seconds),
                     "x_torch": ratio(seconds, times["torch"]), "peak_MiB": round(peaks[name] / 2**20, 1),
                     "peak_x_torch": ratio(peaks[name], peaks["torch"])})
        if "old" in times:
            rows[-1]["x_old"] = ratio(seconds, times["old"])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="64,128")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--settle", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OpenBLAS: set "
                        "OPENBLAS_NUM_THREADS in the environment)")
    parser.add_argument("--old-ref", default=None, help="git commit whose winograd.py runs as 'old'")
    parser.add_argument("--tile-sizes", default="4", help="F(m x m, 3x3) of the new kernel, e.g. 4,2")
    parser.add_argument("--shapes", default=None, help="comma-separated indices into SHAPES")
    parser.add_argument("--steps", default=None, help="zoo networks' training steps instead, "
                        "e.g. resnet8,small_cnn_bn,flax_cnn")
    settings = parser.parse_args(argv)
    settings.tile_sizes = [int(size) for size in settings.tile_sizes.split(",")]
    torch.set_num_threads(settings.threads)
    description = machine_description(torch)
    description["OPENBLAS_NUM_THREADS"] = os.environ.get("OPENBLAS_NUM_THREADS", "(unset)")
    print(description)
    kernel_modules = {"new": None}
    if settings.old_ref:
        kernel_modules = {"old": old_winograd_module(settings.old_ref), "new": None}
    shapes = SHAPES if settings.shapes is None else [SHAPES[int(i)] for i in settings.shapes.split(",")]
    rows = []
    rng = np.random.default_rng(0)
    for batch in (int(b) for b in settings.batches.split(",")):
        for label in settings.steps.split(",") if settings.steps else []:
            rows += step_rows(label, batch, kernel_modules, settings, rng)
        for label, height, channels, filters in [] if settings.steps else shapes:
            rows += shape_rows(label, height, channels, filters, batch, kernel_modules, settings, rng)
            print(f"  done {label} batch {batch}, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    print(markdown(rows))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
