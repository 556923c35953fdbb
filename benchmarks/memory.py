"""Memory of one training step: tracemalloc (scratchnet), and the resident memory of a process.

NumPy reports its array buffers to tracemalloc, so the traced peak covers every array a step
allocates. ``memory_table`` (run.py) reports

* the peak of one whole step above what was allocated before it (train_step releases the
  forward caches during the backward, so none is held before: this includes the new caches
  and every temporary, not the shared scratch arena allocated in warm-up), and
* the phase (one layer's forward or backward, the loss, the optimizer) whose own peak above its
  starting point is largest: its size bounds the largest temporary of the step from above.

``traced_step_peak`` (speed_zoo.py, beside PyTorch) counts the scratch arena too,
``torch_profiled_peak`` is PyTorch's side (torch.profiler; ``torch_step_peak`` of one training
step after a warm-up), and ``resident_peak`` measures what
the operating system sees: the peak resident memory of a fresh process running a few steps.
"""

from __future__ import annotations

import gc
import tracemalloc

import networks
import numpy as np

from scratchnet.kernels.workspace import shared_workspace
from scratchnet.layers.base import iter_layers


def traced(function):
    """(result, peak bytes traced during ``function()`` above the level at its start).

    Inside a running tracemalloc this measures one call; otherwise tracemalloc is started for the
    call and stopped after it (then only what the call allocates counts).
    """
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = function()
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        if started_here:
            tracemalloc.stop()


def step_phases(model, x, labels):
    """Run one train_step phase by phase; return [(phase name, peak bytes above its start)]."""
    phases = []
    out = model._prepare_input(x)
    for layer in model.layers:
        out, peak = traced(lambda layer=layer, out=out: layer.forward(out, training=True))
        phases.append((f"{layer.name} forward", peak))
    loss_value, peak = traced(lambda: model.loss.forward(out, labels))
    phases.append(("loss forward", peak))
    grad, peak = traced(model.loss.backward)
    phases.append(("loss backward", peak))
    for layer in reversed(model.layers):
        grad, peak = traced(lambda layer=layer, grad=grad: layer.backward(grad))
        phases.append((f"{layer.name} backward", peak))
    _, peak = traced(lambda: model.optimizer.step(model.layers))
    phases.append(("optimizer step", peak))
    return phases


def memory_table(rng, batch_size):
    rows = []
    for name in networks.NETWORKS:
        x, labels = networks.random_batch(name, batch_size, rng)
        model = networks.scratchnet_network(name)
        model.train_step(x, labels)  # warm: caches and optimizer state exist, as in training
        workspace = model.layers[0].workspace.nbytes()  # the thread's arena, shared by every layer
        tracemalloc.start()
        try:
            _, step_peak = traced(lambda: model.train_step(x, labels))  # noqa: B023
            phases = step_phases(model, x, labels)
        finally:
            tracemalloc.stop()
        phase, phase_peak = max(phases, key=lambda item: item[1])
        rows.append({"network": name, "batch": batch_size, "step_peak_MiB": round(step_peak / 2**20, 2),
                     "workspace_MiB": round(workspace / 2**20, 2),
                     "largest_phase": phase, "largest_phase_peak_MiB": round(phase_peak / 2**20, 2)})
    return {"title": "Memory of one scratchnet training step (tracemalloc, float32)",
            "columns": ["network", "batch", "step_peak_MiB", "workspace_MiB", "largest_phase",
                        "largest_phase_peak_MiB"],
            "rows": rows,
            "notes": ["step_peak: traced peak during one train_step above the level before it "
                      "(after a warm-up step).",
                      "workspace: the scratch arena the layers share between steps (one per thread, "
                      "kernels/workspace.py; it holds the largest request per name over every model "
                      "measured so far); allocated in warm-up, so not part of step_peak.",
                      "largest_phase_peak: the largest peak of a single layer call / loss / optimizer step "
                      "above its start: an upper bound on the largest temporary."]}


# ------------------------------------------------------------------ a fair scratchnet peak
def traced_step_peak(model, x, labels) -> int:
    """Peak bytes NumPy holds during one ``train_step`` above the model's lasting state.

    The lasting state is what a step starts from: parameters, gradients, buffers, optimizer
    moments. A warm-up step creates the optimizer state; then the forward caches (a model
    that keeps them between steps starts each step holding them: they are counted) and the
    shared scratch arena are dropped, so every array the step needs, the scratch included,
    is allocated inside the measured step, as PyTorch's are.
    """
    model.train_step(x, labels)
    for layer in iter_layers(model.layers):
        layer.cache = {}
    model.loss.cache = {}
    shared_workspace().clear()
    gc.collect()
    return traced(lambda: model.train_step(x, labels))[1]


# ------------------------------------------------------------------ torch's peak
def torch_profiled_peak(torch, function, **options) -> tuple:
    """(profiler, peak bytes) of ``function()`` run under ``torch.profiler`` with memory profiling.

    The peak is that of the running sum of every operation's self CPU memory (allocations minus
    frees) in start order; a parent operation's frees count at its start, so it reads a little
    low. ``options`` go to ``torch.profiler.profile`` (e.g. record_shapes, with_stack, which
    ``profiler.export_memory_timeline`` needs).
    """
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True, **options) as profiler:
        function()
    events = sorted((event for event in profiler.events() if event.self_cpu_memory_usage),
                    key=lambda event: event.time_range.start)
    running, peak = 0, 0
    for event in events:
        running += event.self_cpu_memory_usage
        peak = max(peak, running)
    return profiler, peak


def torch_step_peak(torch, network, optimizer, loss_function, x_nchw, labels, **options) -> tuple:
    """(profiler, peak bytes): ``torch_profiled_peak`` of one ``networks.torch_train_step`` after
    one untimed warm-up step (the optimizer's state, e.g. Adam's moments, then exists, as in
    ``traced_step_peak``). ``options`` go to ``torch.profiler.profile``: speed_zoo.py passes
    record_shapes and with_stack (its memory timeline needs them), winograd_shapes.py with_stack.
    """
    def step():
        networks.torch_train_step(torch, network, optimizer, loss_function, x_nchw, labels)
    step()
    return torch_profiled_peak(torch, step, **options)


# ------------------------------------------------------------------ resident memory
def _status_mib(field: str) -> float:
    """A ``Vm...`` line of /proc/self/status (kB) in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def resident_peak(step, steps: int = 3, extra_mib: int = 0) -> dict:
    """Peak resident memory (MiB) of ``steps`` calls of ``step()`` above the resident memory
    before the first, and what stays resident after the last; run it in a FRESH process.

    Writing 5 to /proc/self/clear_refs resets the high-water mark VmHWM to the current
    resident size, so VmHWM afterwards is the peak of the steps (the first step included:
    a user's first step allocates the optimizer state and the scratch arena too).
    ``extra_mib`` keeps a dummy array of that size alive during the steps: a check that the
    measurement moves by as much.
    """
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    start = _status_mib("VmRSS")
    ballast = np.ones(extra_mib * 2**20 // 8) if extra_mib else None  # written: resident
    for _ in range(steps):
        step()
    peak, after = _status_mib("VmHWM"), _status_mib("VmRSS")
    del ballast
    return {"peak_MiB": round(peak - start, 1), "held_MiB": round(after - start, 1)}
