"""Issue #15: the model zoo's training steps, the heavy 3x3 convolution, memory and a per-layer
profile, side by side with PyTorch (CPU) in one process.

    python benchmarks/speed_zoo.py                    # everything, a few minutes on 2 cores
    python benchmarks/speed_zoo.py --sections step --batches 64
    python benchmarks/speed_zoo.py --sections conv,memory,profile,float64
    OPENBLAS_NUM_THREADS=1 python benchmarks/speed_zoo.py --threads 1   # one core each

Contenders are interleaved round by round with a pause when the library changes (timing.py);
every number is a median of rounds x calls (and the fastest call, "best", which the shared
machine disturbs least). scratchnet runs with the "im2col" backend and with "auto" (Winograd
F(4x4, 3x3) for 3x3 stride-1 layers with >= 16 channels and filters). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: import scratchnet

import memory  # noqa: E402
import networks  # noqa: E402
import torch  # noqa: E402
from run import markdown, ms, ratio  # noqa: E402
from timing import Contender, alternate, machine_description, torch_contenders  # noqa: E402

from scratchnet import Adam  # noqa: E402
from scratchnet.kernels import im2col, winograd  # noqa: E402
from scratchnet.kernels.workspace import Workspace  # noqa: E402
from scratchnet.models import get_model  # noqa: E402

# label -> (scratchnet.models name, input shape, options)
NETWORKS = {
    "reference (MNIST)": ("reference", (28, 28, 1), {}),
    "lenet5": ("lenet5", (28, 28, 1), {}),
    "flax_cnn": ("flax_cnn", (32, 32, 3), {}),
    "small_cnn_bn": ("small_cnn_bn", (32, 32, 3), {}),
    "resnet8": ("resnet8", (32, 32, 3), {}),
}


def build(label, backend, dtype="float32"):
    name, input_shape, options = NETWORKS[label]
    if name == "reference":  # benchmarks/networks.py's reference network (not in the zoo), float32
        model = networks.scratchnet_network("reference (MNIST)", backend=backend)
    else:
        model = get_model(name, input_shape=input_shape, dtype=dtype, backend=backend, **options)
    return model.compile(optimizer=Adam(lr=1e-3), loss="cross_entropy")


def step_contenders(label, batch, dtype, rng, backends=("im2col", "auto")):
    input_shape = NETWORKS[label][1]
    x = rng.standard_normal((batch, *input_shape)).astype(dtype)
    labels = rng.integers(0, 10, size=batch)
    contenders = []
    model = None
    for backend in backends:
        model = build(label, backend, dtype)
        contenders.append(Contender(backend, "numpy", lambda m=model: m.train_step(x, labels)))
    network = networks.torch_network(model)  # in the model's dtype
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    loss_function = torch.nn.CrossEntropyLoss()
    x_nchw, labels_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(labels)
    contenders.append(Contender("torch", "torch", lambda: networks.torch_train_step(
        torch, network, optimizer, loss_function, x_nchw, labels_t)))
    return contenders, (model, x, labels, network, optimizer, loss_function, x_nchw, labels_t)


def step_table(settings, rng, dtype="float32", labels_=None, batches=None):
    rows = []
    for batch in batches or settings.batches:
        for label in labels_ or NETWORKS:
            contenders, _ = step_contenders(label, batch, dtype, rng)
            times = alternate(contenders, settings.rounds, settings.calls, settings.settle)
            best = {c.name: min(c.samples) for c in contenders}
            row = {"network": label, "batch": batch, "dtype": dtype, "torch_ms": ms(times["torch"])}
            for backend in ("im2col", "auto"):
                row[f"{backend}_ms"] = ms(times[backend])
                row[f"{backend}_x_torch"] = ratio(times[backend], times["torch"])
            row["auto_best_x_torch"] = ratio(best["auto"], best["torch"])
            rows.append(row)
            print(f"  {label} batch {batch} {dtype}: {row}", file=sys.stderr, flush=True)
    return rows


# ------------------------------------------------------------------ the heavy convolution
def peak_gflops():
    """cores x FMA units x SIMD lanes x 2 flops x clock, from lscpu/cpuinfo (see README)."""
    cores = os.cpu_count()
    flags = Path("/proc/cpuinfo").read_text()
    bogomips = float(flags.split("bogomips")[1].split(":")[1].split()[0])
    clock_ghz = bogomips / 2 / 1000  # x86 BogoMIPS = 2 x the TSC clock
    lanes_avx512, lanes_avx2 = 16, 8  # float32 lanes per 512-/256-bit register
    fma_units = 2  # Zen 4/5 and Intel server cores: two FMA pipes
    return {"clock_ghz": round(clock_ghz, 3), "cores": cores,
            "peak_avx512_gflops": round(cores * fma_units * lanes_avx512 * 2 * clock_ghz, 1),
            "peak_avx2_gflops": round(cores * fma_units * lanes_avx2 * 2 * clock_ghz, 1)}


def conv_rows(settings, rng):
    batch, (height, width, channels), filters = 32, (16, 16, 64), 128
    x = rng.standard_normal((batch, height + 2, width + 2, channels)).astype(np.float32)  # padded ("same")
    W = (0.05 * rng.standard_normal((3, 3, channels, filters))).astype(np.float32)
    b = np.zeros(filters, np.float32)
    dy = rng.standard_normal((batch, height, width, filters)).astype(np.float32)
    rows_m, depth = batch * height * width, 9 * channels
    patches = rng.standard_normal((rows_m, depth)).astype(np.float32)
    kernel_matrix = rng.standard_normal((depth, filters)).astype(np.float32)
    _, saved = winograd.conv2d_forward(x, W, b)
    workspace = Workspace()  # im2col's chunk scratch arrays, as a layer keeps them
    # torch pads inside the convolution: its input is x without the padding ring
    torch_forward, torch_backward = torch_contenders(torch.nn.Conv2d(channels, filters, 3, padding=1),
                                                     x[:, 1:-1, 1:-1], dy)
    forward = [Contender("gemm", "numpy", lambda: patches @ kernel_matrix),
               Contender("im2col", "numpy", lambda: im2col.conv2d_forward(x, W, b, workspace=workspace)),
               Contender("winograd", "numpy", lambda: winograd.conv2d_forward(x, W, b)),
               torch_forward]
    backward = [Contender("im2col", "numpy", lambda: im2col.conv2d_backward(x, W, dy, workspace=workspace)),
                Contender("winograd", "numpy", lambda: winograd.conv2d_backward(saved, W, dy, x.shape)),
                torch_backward]
    flops = 2.0 * rows_m * depth * filters  # the direct method's multiply-adds x 2
    peak = peak_gflops()
    forward_times = alternate(forward, settings.rounds, settings.calls, settings.settle)
    backward_times = alternate(backward, settings.rounds, settings.calls, settings.settle)
    gemm = flops / forward_times["gemm"] / 1e9
    rows = []
    passes = (("forward", forward_times, flops), ("backward", backward_times, 2 * flops))
    for direction, times, work in passes:
        for name in ("im2col", "winograd", "torch"):
            gflops = work / times[name] / 1e9  # direct-method-equivalent GFLOP/s
            rows.append({"pass": direction, "contender": name, "ms": ms(times[name]),
                         "x_torch": ratio(times[name], times["torch"]), "equiv_gflops": round(gflops, 1),
                         "pct_of_numpy_gemm": round(100 * gflops / gemm),
                         "pct_of_avx512_peak": round(100 * gflops / peak["peak_avx512_gflops"], 1),
                         "pct_of_avx2_peak": round(100 * gflops / peak["peak_avx2_gflops"], 1)})
    return rows, {"numpy_gemm_gflops": round(gemm, 1), **peak}


# ------------------------------------------------------------------ memory
def torch_step_memory(network, optimizer, loss_function, x, labels):
    """Three views of one torch step's memory after a warm-up (bytes):

    running_sum: memory.torch_profiled_peak (the running sum of torch.profiler's self CPU
        memory per operation in start order; reads a little low);
    timeline: peak of torch's own memory timeline (export_memory_timeline: every allocation
        and free at its time) above its start;
    saved: the distinct storages autograd saves for the backward (saved_tensors_hooks), the
        activations torch must hold at the end of the forward: a floor for the peak.
    """
    profiler, running_peak = memory.torch_step_peak(torch, network, optimizer, loss_function, x, labels,
                                                    record_shapes=True, with_stack=True)  # after a warm-up
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "timeline.json"
        profiler.export_memory_timeline(str(path), device="cpu")
        _, sizes = json.loads(path.read_text())[:2]
    totals = [sum(categories) for categories in sizes]
    saved = {}

    def pack(tensor):
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = loss_function(network(x), labels)
    del loss
    return {"running_sum": running_peak, "timeline": max(totals) - totals[0], "saved": sum(saved.values())}


def resident_child(label, contender, batch, extra_mib=0):
    """In a fresh process: resident peak of 3 steps of ``contender`` ("im2col", "auto", "torch")."""
    _, state = step_contenders(label, batch, "float32", np.random.default_rng(0),
                               backends=("auto" if contender == "torch" else contender,))
    model, x, labels, network, optimizer, loss_function, x_nchw, labels_t = state
    if contender == "torch":
        def step():
            networks.torch_train_step(torch, network, optimizer, loss_function, x_nchw, labels_t)
    else:
        def step():
            model.train_step(x, labels)
    return memory.resident_peak(step, extra_mib=extra_mib)


def resident_in_subprocess(settings, label, contender, batch):
    command = [sys.executable, __file__, "--threads", str(settings.threads),
               "--resident-child", f"{label}|{contender}|{batch}|{settings.extra_mib}"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_rows(settings, rng):
    """Per network and batch: the traced peak (ours) beside torch's three views, then the
    resident peak of each contender in its own fresh process."""
    rows = []
    for batch in settings.batches:
        for label in NETWORKS:
            row = {"network": label, "batch": batch}
            for backend in ("im2col", "auto"):
                _, state = step_contenders(label, batch, "float32", rng, backends=(backend,))
                model, x, labels, network, optimizer, loss_function, x_nchw, labels_t = state
                row[f"traced_{backend}_MiB"] = mib(memory.traced_step_peak(model, x, labels))
            torch_memory = torch_step_memory(network, optimizer, loss_function, x_nchw, labels_t)
            for view, size in torch_memory.items():
                row[f"torch_{view}_MiB"] = mib(size)
            row["traced_auto_x_torch"] = round(row["traced_auto_MiB"] / row["torch_timeline_MiB"], 2)
            for contender in ("im2col", "auto", "torch"):
                resident = resident_in_subprocess(settings, label, contender, batch)
                row[f"rss_{contender}_MiB"] = resident["peak_MiB"]
                row[f"rss_held_{contender}_MiB"] = resident["held_MiB"]
            row["rss_auto_x_torch"] = round(row["rss_auto_MiB"] / row["rss_torch_MiB"], 2)
            rows.append(row)
            print(f"  memory {row}", file=sys.stderr, flush=True)
    return rows


def mib(size):
    return round(size / 2**20, 1)


# ------------------------------------------------------------------ per-layer profile
def layer_profile(label, batch, backend, rng, steps=7):
    """Median ms of every layer's forward and backward over ``steps`` training steps (nested
    layers indented; a container's time includes its children's)."""
    _, state = step_contenders(label, batch, "float32", rng, backends=(backend,))
    model, x, labels = state[:3]
    samples, backends = {}, {}

    def timed(layer, method):
        original = getattr(layer, method)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            result = original(*args, **kwargs)
            samples.setdefault((id(layer), method), []).append(time.perf_counter() - start)
            if method == "forward":  # read now: train_step releases the cache during the backward
                backends[id(layer)] = layer.cache.get("backend", "")
            return result
        setattr(layer, method, wrapper)  # an instance attribute shadows the method
        return original

    layers = [(depth, layer) for depth, layer in walk(model.layers)]
    for _, layer in layers:
        for method in ("forward", "backward", "backward_params"):
            timed(layer, method)
    step_times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_step(x, labels)
        step_times.append(time.perf_counter() - start)
    rows = []
    for depth, layer in layers:
        med = {m: np.median(samples[(id(layer), m)]) * 1e3 for m in ("forward", "backward", "backward_params")
               if (id(layer), m) in samples}
        rows.append({"layer": "  " * depth + layer.name, "backend": backends.get(id(layer), ""),
                     "forward_ms": round(med.get("forward", 0), 3),
                     "backward_ms": round(med.get("backward", med.get("backward_params", 0)), 3)})
    for layer in layers:  # restore the methods
        for method in ("forward", "backward", "backward_params"):
            layer[1].__dict__.pop(method, None)
    return rows, ms(np.median(step_times))


def walk(layers, depth=0):
    for layer in layers:
        yield depth, layer
        yield from walk(layer.sublayers(), depth + 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="step,conv,memory,float64,profile")
    parser.add_argument("--batches", default="64,128")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch threads (set OPENBLAS_NUM_THREADS to the same number for NumPy)")
    parser.add_argument("--json", default=str(Path(__file__).with_name("results_speed_zoo.json")))
    parser.add_argument("--extra-mib", type=int, default=0,
                        help="memory check: keep a dummy array this large alive during the resident steps")
    parser.add_argument("--resident-child", help=argparse.SUPPRESS)  # "label|contender|batch|extra"
    settings = parser.parse_args(argv)
    if settings.resident_child:
        torch.set_num_threads(settings.threads)
        label, contender, batch, extra = settings.resident_child.split("|")
        print(json.dumps(resident_child(label, contender, int(batch), int(extra))))
        return
    settings.batches = [int(b) for b in settings.batches.split(",")]
    settings.settle = 0.1
    torch.set_num_threads(settings.threads)
    rng = np.random.default_rng(0)
    sections = settings.sections.split(",")
    machine = machine_description(torch)
    for variable in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS"):
        machine[variable] = os.environ.get(variable, "(unset)")
    out = ["\n".join(["#### Machine", ""] + [f"- {k}: {v}" for k, v in machine.items()] + [""])]
    results = {"machine": machine}
    print(out[0], flush=True)
    if "step" in sections:
        results["step"] = step_table(settings, rng)
        title = "Training step (float32): forward, cross-entropy, backward, Adam"
        notes = ["_ms: medians of alternated rounds; best: fastest calls."]
        out.append(markdown(results["step"], title, notes, heading="####"))
        save(settings, out, results)
    if "float64" in sections:
        zoo = ["flax_cnn", "small_cnn_bn", "resnet8"]
        results["float64"] = step_table(settings, rng, "float64", zoo, [64])
        out.append(markdown(results["float64"], "Training step (float64, batch 64)", heading="####"))
        save(settings, out, results)
    if "conv" in sections:
        rows, extra = conv_rows(settings, rng)
        results["conv"], results["conv_machine"] = rows, extra
        out.append(markdown(rows, "Heavy conv 16x16x64 -> 128, 3x3 same, batch 32 (float32)",
                            [f"{k}: {v}" for k, v in extra.items()], heading="####"))
        save(settings, out, results)
    if "memory" in sections:
        results["memory"] = memory_rows(settings, rng)
        out.append(markdown(results["memory"], "Peak memory of one training step (float32)",
                            ["traced: tracemalloc peak of one step above the lasting state (params, "
                             "grads, buffers, Adam moments; caches and scratch arena dropped before)",
                             "torch running_sum / timeline / saved: see torch_step_memory",
                             "rss: peak resident memory (VmHWM) of 3 steps above the resident size "
                             "before them, each contender in a fresh process; rss_held: after them"],
                            heading="####"))
        save(settings, out, results)
    if "profile" in sections:
        for label in ("small_cnn_bn", "resnet8"):
            rows, step = layer_profile(label, 64, "auto", rng)
            results[f"profile {label}"] = rows
            out.append(markdown(rows, f"Per-layer profile: {label}, batch 64, auto (step {step} ms)",
                                heading="####"))
            save(settings, out, results)


def save(settings, out, results):
    """Print the markdown so far and write the JSON (after every section: a long run under load
    keeps what it measured)."""
    print(out[-1], flush=True)
    Path(settings.json).write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
