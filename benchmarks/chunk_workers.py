"""Issue #15, fifth session: the kernels' chunks on 2 threads (kernels/chunk_workers.py).

    OPENBLAS_NUM_THREADS=1 python benchmarks/chunk_workers.py --sections layers,step --rounds 7

layers: Winograd forward and backward of resnet8's three shapes, 1 worker against 2 (BLAS one
        thread), with ``keep_freed_memory()`` applied as ``train_step`` does; minor page faults.
step:   the resnet8 training step (``auto``; ``--networks`` for others): 1 worker + BLAS 1
        thread (w1b1), 2 workers + BLAS 1 (w2b1), 1 worker + BLAS 2 threads (w1b2, what
        ``--threads 2`` does), torch on 2 threads.
passes: issue #15's "two cores for the element-wise passes": each pass of a resnet8 step on the
        stage-1 activations (64x32x32x16 float32, 4 MB) and Adam's update (0.5 M parameters),
        whole in the calling thread against the batch split in two halves on the pool
        (``map_chunks``, 2 workers), the same arithmetic either way.
Every contender alternated round by round in this one process; medians; results in
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import Contender, alternate, machine_description  # noqa: E402

from scratchnet.blas_threads import set_blas_threads  # noqa: E402
from scratchnet.kernels import chunk_workers  # noqa: E402
from scratchnet.kernels import winograd as wg  # noqa: E402
from scratchnet.kernels.workspace import keep_freed_memory, shared_workspace  # noqa: E402
from scratchnet.layers.wide_rows import wide_rows  # noqa: E402

# (batch, height = width, channels in, filters): resnet8's Winograd layers
LAYER_SHAPES = [(64, 32, 16, 16), (64, 16, 32, 32), (64, 8, 64, 64), (128, 32, 16, 16)]
STEP_MODES = {"w1b1": (1, 1), "w2b1": (2, 1), "w1b2": (1, 2), "torch2": (1, 1)}  # (workers, BLAS threads)


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_layer(batch, size, channels, filters, rounds, rng):
    x = rng.standard_normal((batch, size, size, channels)).astype(np.float32)
    dy = rng.standard_normal((batch, size, size, filters)).astype(np.float32)
    W = rng.standard_normal((3, 3, channels, filters)).astype(np.float32)
    b = rng.standard_normal(filters).astype(np.float32)
    pads, padded = ((1, 1), (1, 1)), (batch, size + 2, size + 2, channels)
    saved = {}

    def forward():
        saved["winograd"] = wg.conv2d_forward(x, W, b, pads=pads, workspace=shared_workspace())[1]

    def backward():
        wg.conv2d_backward(saved["winograd"], W, dy, padded, workspace=shared_workspace())

    times, faults = {}, {}
    for _ in range(rounds):
        for workers in (1, 2):
            chunk_workers.set_kernel_workers(workers)
            forward()
            backward()  # untimed: warms this mode's scratch
            for _ in range(3):
                for name, call in (("forward", forward), ("backward", backward)):
                    faults_before, start = minor_faults(), time.perf_counter()
                    call()
                    times.setdefault((name, workers), []).append(time.perf_counter() - start)
                    faults.setdefault((name, workers), []).append(minor_faults() - faults_before)
    chunk_workers.set_kernel_workers(1)
    medians = {key: np.median(samples) * 1e3 for key, samples in times.items()}
    cells = [f"{name} {medians[(name, 1)]:.2f} -> {medians[(name, 2)]:.2f} ms "
             f"({medians[(name, 2)] / medians[(name, 1)]:.2f}x, faults "
             f"{np.median(faults[(name, 1)]):.0f} / {np.median(faults[(name, 2)]):.0f})"
             for name in ("forward", "backward")]
    print(f"{batch}x{size}x{size}x{channels} -> {filters}:", "; ".join(cells),
          f"load {os.getloadavg()[0]:.2f}", flush=True)


def time_layers(rounds, rng):
    set_blas_threads(1)
    keep_freed_memory()
    for batch, size, channels, filters in LAYER_SHAPES:
        time_layer(batch, size, channels, filters, rounds, rng)


def time_steps(rounds, batches, networks, modes, rng):
    """Whole steps in each of ``modes`` (keys of STEP_MODES), alternated by ``timing.alternate``:
    each mode is its own "library", so every switch runs its setup (kernel workers, BLAS threads),
    pauses 0.2 s and makes one untimed call."""
    import speed_zoo
    import torch

    torch.set_num_threads(2)
    for batch, network in ((batch, network) for batch in batches for network in networks):
        step_contenders, _ = speed_zoo.step_contenders(network, batch, "float32", rng, backends=("auto",))
        calls = {contender.name: contender.call for contender in step_contenders}
        contenders = []
        for mode in modes:
            workers, blas = STEP_MODES[mode]

            def setup(workers=workers, blas=blas):
                chunk_workers.set_kernel_workers(workers)
                set_blas_threads(blas)
            contenders.append(Contender(mode, mode, calls["torch" if mode == "torch2" else "auto"],
                                        setup=setup))
        ms = {mode: value * 1e3 for mode, value in alternate(contenders, rounds, 3, 0.2).items()}
        chunk_workers.set_kernel_workers(1)
        ratios = [f"{mode}/w1b1 {ms[mode] / ms['w1b1']:.3f}" for mode in ms
                  if mode != "w1b1" and "w1b1" in ms]
        if "w2b1" in ms and "torch2" in ms:
            ratios.append(f"w2b1/torch2 {ms['w2b1'] / ms['torch2']:.3f}")
        print(f"{network} batch {batch}:", ", ".join(f"{mode} {value:.1f} ms" for mode, value in ms.items()),
              "|", ", ".join(ratios), f"| load {os.getloadavg()[0]:.2f}", flush=True)


def element_wise_passes(rng):
    """{name: pass(rows)}: each pass of a step, applied to a range of the (M, ...) arrays'
    first axis (all of it, or one half), writing into preallocated outputs."""
    x, dy, other = (rng.standard_normal((64 * 32 * 32, 16)).astype(np.float32) for _ in range(3))
    out = np.empty_like(x)
    scale, shift = rng.standard_normal(16).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    ones = np.ones(x.shape[0], np.float32)
    weights, grad, moment1, moment2 = (rng.standard_normal(512 * 1024).astype(np.float32) for _ in range(4))
    moment2 = moment2 ** 2

    def relu_forward(rows):
        np.maximum(x[rows], 0, out=out[rows])

    def relu_backward(rows):
        mask = (out[rows] > 0).astype(np.float32)
        np.multiply(mask, dy[rows], out=mask)

    def residual_add(rows):
        np.add(x[rows], other[rows], out=out[rows])

    def scale_and_shift(rows):  # BatchNorm's y = x * (gamma / sigma) + beta on wide rows, as the layer
        wide_out, (wide_scale, wide_shift) = wide_rows(out[rows], scale, shift)
        np.multiply(wide_rows(x[rows])[0], wide_scale, out=wide_out)
        wide_out += wide_shift

    def channel_sums(rows):  # BatchNorm's sums: ones @ rows, a partial sum per half
        return ones[rows] @ dy[rows]

    def adam_update(rows):  # m, v, w updated in place over a slice of the parameters
        moment1[rows] *= 0.9
        moment1[rows] += 0.1 * grad[rows]
        moment2[rows] *= 0.999
        moment2[rows] += 0.001 * grad[rows] ** 2
        weights[rows] -= 1e-3 * moment1[rows] / (np.sqrt(moment2[rows]) + 1e-8)

    passes = {"relu forward": relu_forward, "relu backward": relu_backward, "residual add": residual_add,
              "BN scale and shift": scale_and_shift, "BN channel sums": channel_sums}
    sizes = {name: x.shape[0] for name in passes}
    passes["Adam update (0.5 M)"], sizes["Adam update (0.5 M)"] = adam_update, weights.shape[0]
    return passes, sizes


def time_passes(rounds, rng):
    """Each pass whole (one thread) against two halves on the pool, alternated; medians."""
    set_blas_threads(1)
    keep_freed_memory()
    passes, sizes = element_wise_passes(rng)
    for name, one_pass in passes.items():
        half = sizes[name] // 2
        halves = [slice(0, half), slice(half, sizes[name])]

        def whole(one_pass=one_pass):
            chunk_workers.set_kernel_workers(1)
            one_pass(slice(None))

        def split(one_pass=one_pass, halves=halves):
            chunk_workers.map_chunks(lambda rows, scratch: one_pass(rows), halves, None)

        contenders = [Contender("whole", "whole", whole, setup=lambda: chunk_workers.set_kernel_workers(1)),
                      Contender("halves", "halves", split, setup=lambda: chunk_workers.set_kernel_workers(2))]
        ms = {label: value * 1e3 for label, value in alternate(contenders, rounds, 5, 0.05).items()}
        print(f"{name}: whole {ms['whole']:.3f} ms, two halves on 2 threads {ms['halves']:.3f} ms "
              f"({ms['halves'] / ms['whole']:.2f}x) | load {os.getloadavg()[0]:.2f}", flush=True)
    chunk_workers.set_kernel_workers(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="layers,step")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", default="64,128")
    parser.add_argument("--networks", default="resnet8", help="speed_zoo network labels, comma-separated")
    parser.add_argument("--modes", default=",".join(STEP_MODES),
                        help="step modes to alternate (w<workers>b<BLAS threads>, torch2); leave out w1b2 "
                        "to keep the BLAS thread count fixed within the rounds")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(machine_description())  # OPENBLAS_CORETYPE and the load among the rest
    sections = args.sections.split(",")
    if "layers" in sections:
        time_layers(args.rounds, rng)
    if "passes" in sections:
        time_passes(args.rounds, rng)
    if "step" in sections:
        batches = [int(batch) for batch in args.batches.split(",")]
        time_steps(args.rounds, batches, args.networks.split(","), args.modes.split(","), rng)


if __name__ == "__main__":
    main()
