"""The im2col convolution kernel on the zoo's im2col layer shapes: main's version, this one and
torch.nn.Conv2d, side by side in one process (issue #15).

    OPENBLAS_NUM_THREADS=1 python benchmarks/im2col_shapes.py                  # batch 64 and 128
    OPENBLAS_NUM_THREADS=1 python benchmarks/im2col_shapes.py --batches 64 --chunk-bytes 262144,1048576
    OPENBLAS_NUM_THREADS=1 python benchmarks/im2col_shapes.py --sections steps --batches 64

"old" is ``scratchnet/kernels/im2col.py`` and ``col2im.py`` as committed on the git branch
``--old-ref`` (default main), loaded from ``git show`` into temporary modules; "new" is the
working tree's. Every contender gets its own workspace (as a layer has), warmed by one call. The
first layer of a network skips the input gradient in training (``backward_params``), so those
rows time the backward without dx, for torch too. Memory: tracemalloc peak of forward then
backward above the start (the input and dy exist before; the workspaces are warm, their size is
reported beside). Nothing is asserted.

``--sections steps``: whole training steps of zoo networks (``backend="auto"``: Winograd where it
applies, im2col elsewhere) with main's im2col kernel swapped into the Conv2D layers ("old"), with
this one ("new"), and torch (speed_zoo.py's twin), alternated. Memory: speed_zoo.py
``--sections memory``.
"""

from __future__ import annotations

import argparse
import os
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout: import scratchnet

import speed_zoo  # noqa: E402
import torch  # noqa: E402
from memory import traced  # noqa: E402
from run import markdown, ms, ratio  # noqa: E402
from timing import Contender, alternate, machine_description, module_at_revision  # noqa: E402

from scratchnet.kernels import im2col as new  # noqa: E402
from scratchnet.kernels.workspace import Workspace  # noqa: E402
from scratchnet.layers import conv as conv_layers  # noqa: E402

# label -> (H, W, C, F, kernel, stride, padding, bias, first layer of its network)
SHAPES = {
    "resnet8 stem 3x3 3->16 @32": (32, 32, 3, 16, 3, 1, 1, False, True),
    "resnet8 3x3 s2 16->32 @32": (32, 32, 16, 32, 3, 2, 1, False, False),
    "resnet8 3x3 s2 32->64 @16": (16, 16, 32, 64, 3, 2, 1, False, False),
    "resnet8 1x1 s2 16->32 @32": (32, 32, 16, 32, 1, 2, 0, False, False),
    "resnet8 1x1 s2 32->64 @16": (16, 16, 32, 64, 1, 2, 0, False, False),
    "small_cnn/flax 3x3 3->32 @32": (32, 32, 3, 32, 3, 1, 1, True, True),
    "lenet5 5x5 1->6 same @28": (28, 28, 1, 6, 5, 1, 2, True, True),
    "lenet5 5x5 6->16 @14": (14, 14, 6, 16, 5, 1, 0, True, False),
    "reference 3x3 1->8 @28": (28, 28, 1, 8, 3, 1, 0, True, True),
    "reference 3x3 8->16 @13": (13, 13, 8, 16, 3, 1, 0, True, False),
}


def load_old_kernel(ref: str) -> types.ModuleType:
    """``kernels/im2col.py`` at git ``ref``, importing ``kernels/col2im.py`` at the same ``ref``."""
    old_col2im = module_at_revision("scratchnet/kernels/col2im.py", ref)
    saved = sys.modules["scratchnet.kernels.col2im"]
    sys.modules["scratchnet.kernels.col2im"] = old_col2im  # what its ``from .col2im import`` finds
    try:
        return module_at_revision("scratchnet/kernels/im2col.py", ref)
    finally:
        sys.modules["scratchnet.kernels.col2im"] = saved


class Case:
    """One layer shape at one batch size: the arrays and a torch twin with the same weights."""

    def __init__(self, shape, batch, rng):
        height, width, channels, filters, kernel, stride, pad, bias, first = shape
        self.stride, self.dilation, self.bias, self.first = (stride, stride), (1, 1), bias, first
        x = rng.standard_normal((batch, height, width, channels)).astype(np.float32)
        self.x, self.pads = x, ((pad, pad), (pad, pad))
        self.padded_shape = (batch, height + 2 * pad, width + 2 * pad, channels)
        self.W = (0.1 * rng.standard_normal((kernel, kernel, channels, filters))).astype(np.float32)
        self.b = rng.standard_normal(filters).astype(np.float32) if bias else None
        self.module = torch.nn.Conv2d(channels, filters, kernel, stride=stride, padding=pad, bias=bias)
        with torch.no_grad():
            self.module.weight.copy_(torch.from_numpy(self.W.transpose(3, 2, 0, 1).copy()))
            if bias:
                self.module.bias.copy_(torch.from_numpy(self.b))
        self.x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(not first)
        y_t = self.module(self.x_t)
        self.dy = rng.standard_normal(y_t.shape).astype(np.float32).transpose(0, 2, 3, 1).copy()
        self.dy_t = torch.from_numpy(self.dy.transpose(0, 3, 1, 2).copy())

    # ---- the three kernels' forward and backward (the backward reuses one forward's state)
    def old_forward(self, old, workspace):
        return old.conv2d_forward(self.x, self.W, self.b, self.stride, self.dilation, workspace=workspace,
                                  pads=self.pads)

    def old_backward(self, old, workspace):
        return old.conv2d_backward(self.x, self.W, self.dy, self.stride, self.dilation, self.bias,
                                   need_input_gradient=not self.first, workspace=workspace, pads=self.pads)

    def new_forward(self, workspace):
        return new.conv2d_forward(self.x, self.W, self.b, self.stride, self.dilation, workspace=workspace,
                                  pads=self.pads)

    def new_backward(self, workspace):
        return new.conv2d_backward(self.x, self.W, self.dy, self.stride, self.dilation, self.bias,
                                   need_input_gradient=not self.first, workspace=workspace, pads=self.pads)

    def torch_forward(self):
        with torch.no_grad():
            return self.module(self.x_t)

    def torch_backward(self, y_t):
        inputs = [*self.module.parameters()] + ([] if self.first else [self.x_t])
        return torch.autograd.grad(y_t, inputs, self.dy_t, retain_graph=True)


def with_attribute(owner, name, value, function):
    """Run ``function`` with ``owner.name`` set to ``value`` for the call, then restored (a
    contender's setting: a chunk size, or the kernel module the Conv2D layers call)."""
    def call():
        saved = getattr(owner, name)
        setattr(owner, name, value)
        try:
            return function()
        finally:
            setattr(owner, name, saved)
    return call


def with_chunk_bytes(chunk_bytes, function):
    """Run ``function`` with ``new.CHUNK_BYTES`` set to ``chunk_bytes``."""
    return with_attribute(new, "CHUNK_BYTES", chunk_bytes, function)


def shape_rows(label, case, old, chunk_sizes, settings):
    old_workspace = Workspace()
    forward = [Contender("old", "numpy", lambda: case.old_forward(old, old_workspace))]
    backward = [Contender("old", "numpy", lambda: case.old_backward(old, old_workspace))]
    new_workspaces = {}
    for chunk_bytes in chunk_sizes:
        workspace = new_workspaces[chunk_bytes] = Workspace()
        name = f"new {chunk_bytes // 1024}K"
        forward.append(Contender(name, "numpy",
                                 with_chunk_bytes(chunk_bytes, lambda w=workspace: case.new_forward(w))))
        backward.append(Contender(name, "numpy",
                                  with_chunk_bytes(chunk_bytes, lambda w=workspace: case.new_backward(w))))
    y_t = case.module(case.x_t)
    forward.append(Contender("torch", "torch", case.torch_forward))
    backward.append(Contender("torch", "torch", lambda: case.torch_backward(y_t)))
    forward_times = alternate(forward, settings.rounds, settings.calls, settings.settle)
    backward_times = alternate(backward, settings.rounds, settings.calls, settings.settle)

    def old_step():
        case.old_forward(old, old_workspace)
        case.old_backward(old, old_workspace)

    old_step()  # warm the workspace before tracing
    old_peak = traced(old_step)[1]
    rows = []
    for contender in forward[:-1]:
        row = {"layer": label, "batch": case.x.shape[0], "kernel": contender.name,
               "fwd_ms": ms(forward_times[contender.name]), "bwd_ms": ms(backward_times[contender.name])}
        row["fwd_x_torch"] = ratio(forward_times[contender.name], forward_times["torch"])
        row["bwd_x_torch"] = ratio(backward_times[contender.name], backward_times["torch"])
        row["fwd_new_old"] = ratio(forward_times[contender.name], forward_times["old"])
        row["bwd_new_old"] = ratio(backward_times[contender.name], backward_times["old"])
        if contender.name == "old":
            row["peak_MiB"], row["workspace_MiB"] = old_peak / 2**20, old_workspace.nbytes() / 2**20
        else:
            chunk_bytes = int(contender.name.split()[1][:-1]) * 1024
            workspace = new_workspaces[chunk_bytes]

            def new_step(w=workspace):
                case.new_forward(w)
                case.new_backward(w)
            step = with_chunk_bytes(chunk_bytes, new_step)
            step()
            row["peak_MiB"], row["workspace_MiB"] = traced(step)[1] / 2**20, workspace.nbytes() / 2**20
        row["peak_MiB"], row["workspace_MiB"] = round(row["peak_MiB"], 2), round(row["workspace_MiB"], 2)
        rows.append(row)
    rows.append({"layer": label, "batch": case.x.shape[0], "kernel": "torch",
                 "fwd_ms": ms(forward_times["torch"]), "bwd_ms": ms(backward_times["torch"])})
    return rows


# ------------------------------------------------------------------ whole training steps
def with_kernel(kernel, function):
    """Run ``function`` with the Conv2D layers calling ``kernel`` (an im2col module) for im2col."""
    return with_attribute(conv_layers, "im2col_kernels", kernel, function)


def step_rows(label, batch, old, settings, rng):
    contenders, state = speed_zoo.step_contenders(label, batch, "float32", rng, backends=("auto",))
    model, x, labels, network, optimizer, loss_function, x_nchw, labels_t = state
    old_model = speed_zoo.build(label, "auto")
    new_step, torch_step = contenders
    contenders = [Contender("old", "numpy", with_kernel(old, lambda: old_model.train_step(x, labels))),
                  Contender("new", "numpy", new_step.call), torch_step]
    times = alternate(contenders, settings.rounds, settings.calls, settings.settle)
    return {"network": label, "batch": batch, "torch_ms": round(1e3 * times["torch"], 2),
            "old_ms": round(1e3 * times["old"], 2), "new_ms": round(1e3 * times["new"], 2),
            "new_old": ratio(times["new"], times["old"]),
            "new_old_best": ratio(min(contenders[1].samples), min(contenders[0].samples)),
            "old_x_torch": ratio(times["old"], times["torch"]),
            "new_x_torch": ratio(times["new"], times["torch"])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="64,128")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--settle", type=float, default=0.1)
    parser.add_argument("--old-ref", default="main")
    parser.add_argument("--chunk-bytes", default=str(new.CHUNK_BYTES),
                        help="comma-separated CHUNK_BYTES settings of the new kernel to time")
    parser.add_argument("--shapes", default="", help="only the layers whose label contains this")
    parser.add_argument("--sections", default="layers,steps")
    parser.add_argument("--networks", default="lenet5,resnet8,reference (MNIST),small_cnn_bn,flax_cnn")
    settings = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(machine_description(torch), f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}",
          f"load {os.getloadavg()}", flush=True)
    old = load_old_kernel(settings.old_ref)
    chunk_sizes = [int(value) for value in settings.chunk_bytes.split(",")]
    rng = np.random.default_rng(0)
    batches = [int(value) for value in settings.batches.split(",")]
    if "layers" in settings.sections.split(","):
        rows = []
        for batch in batches:
            for label, shape in SHAPES.items():
                if settings.shapes in label:
                    rows += shape_rows(label, Case(shape, batch, rng), old, chunk_sizes, settings)
                    print(markdown(rows[-len(chunk_sizes) - 2:]), flush=True)
        print(f"\nload {os.getloadavg()}\n")
        print(markdown(rows), flush=True)
    if "steps" in settings.sections.split(","):
        rows = [step_rows(label, batch, old, settings, rng)
                for batch in batches for label in settings.networks.split(",")]
        print(f"\nload {os.getloadavg()}\n")
        print(markdown(rows))


if __name__ == "__main__":
    main()
