"""Whole training steps of a zoo network: the package as committed at a git ref ("base") beside
the working tree ("new") and the torch twin, alternated in one process (issue #15).

    OPENBLAS_NUM_THREADS=1 python benchmarks/step_ab.py --base main --networks resnet8 --batches 64,128
    OPENBLAS_NUM_THREADS=1 python benchmarks/step_ab.py --base main --layers conv2d,basic_block_1

Why a whole package: a change that touches a layer and its kernel together (say, a kernel that
returns the unpadded input gradient and the layer that stops cropping it) cannot be timed by
swapping one kernel module into the new layers (``im2col_shapes.py --sections steps`` does that).
Here ``git archive <base> scratchnet`` is unpacked into a temporary folder as the package
``scratchnet_base`` (the package imports itself relatively), so both versions run side by side.

``--layers``: instead of steps, time ``forward(training=True)`` then ``backward`` of the named
top-level layers of both models (a model's first layer: ``backward_params``, as training runs
it), each fed its input from a forward pass of the whole model. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout: import scratchnet

import speed_zoo  # noqa: E402
import torch  # noqa: E402
from run import ms  # noqa: E402
from timing import Contender, alternate, machine_description  # noqa: E402


def import_base(ref: str, folder: str):
    """The package ``scratchnet`` at git ``ref``, imported as ``scratchnet_base``."""
    archive = subprocess.run(["git", "archive", ref, "scratchnet"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    os.rename(Path(folder) / "scratchnet", Path(folder) / "scratchnet_base")
    sys.path.insert(0, folder)
    import scratchnet_base
    import scratchnet_base.models
    return scratchnet_base


def base_model(base, label):
    """speed_zoo.build(label, "auto") with the base package (zoo networks only)."""
    name, input_shape, options = speed_zoo.NETWORKS[label]
    model = base.models.get_model(name, input_shape=input_shape, dtype="float32", backend="auto", **options)
    return model.compile(optimizer=base.Adam(lr=1e-3), loss="cross_entropy")


def step_row(base, label, batch, settings, rng):
    contenders, state = speed_zoo.step_contenders(label, batch, "float32", rng, backends=("auto",))
    _, x, labels = state[:3]
    old = base_model(base, label)
    new_step, torch_step = contenders
    contenders = [Contender("base", "numpy", lambda: old.train_step(x, labels)),
                  Contender("new", "numpy", new_step.call), torch_step]
    load = os.getloadavg()[0]
    times = alternate(contenders, settings.rounds, settings.calls, settings.settle)
    best = {c.name: min(c.samples) for c in contenders}
    return {"network": label, "batch": batch, "torch_ms": ms(times["torch"]), "base_ms": ms(times["base"]),
            "new_ms": ms(times["new"]), "new_base": round(times["new"] / times["base"], 3),
            "new_base_best": round(best["new"] / best["base"], 3),
            "base_x_torch": round(times["base"] / times["torch"], 3),
            "new_x_torch": round(times["new"] / times["torch"], 3),
            "load": f"{load:.1f} -> {os.getloadavg()[0]:.1f}"}


def layer_call(model, name, x):
    """forward + backward of top-level layer ``name`` of ``model`` on its input for ``x``."""
    names = [layer.name for layer in model.layers]
    h = x
    for layer in model.layers[:names.index(name)]:
        h = layer.forward(h, training=True)
    layer = model.layers[names.index(name)]
    dy = np.random.default_rng(1).standard_normal(layer.forward(h, training=True).shape).astype(np.float32)
    if layer is model.layers[0]:  # training skips the first layer's input gradient
        return lambda: (layer.forward(h, training=True), layer.backward_params(dy))
    return lambda: (layer.forward(h, training=True), layer.backward(dy))


def layer_row(base, label, batch, name, settings, rng):
    input_shape = speed_zoo.NETWORKS[label][1]
    x = rng.standard_normal((batch, *input_shape)).astype(np.float32)
    contenders = [Contender("base", "numpy", layer_call(base_model(base, label), name, x)),
                  Contender("new", "numpy", layer_call(speed_zoo.build(label, "auto"), name, x))]
    load = os.getloadavg()[0]
    times = alternate(contenders, settings.rounds, settings.calls, settings.settle)
    return {"network": label, "batch": batch, "layer": name, "base_ms": ms(times["base"]),
            "new_ms": ms(times["new"]), "new_base": round(times["new"] / times["base"], 3),
            "new_base_best": round(min(contenders[1].samples) / min(contenders[0].samples), 3),
            "load": f"{load:.1f} -> {os.getloadavg()[0]:.1f}"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git ref of the base package")
    parser.add_argument("--networks", default="resnet8")
    parser.add_argument("--batches", default="64,128")
    parser.add_argument("--layers", default="", help="comma-separated top-level layer names: time those")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--settle", type=float, default=0.1)
    settings = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(machine_description(torch), f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}",
          flush=True)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        base = import_base(settings.base, folder)
        for batch in [int(value) for value in settings.batches.split(",")]:
            for label in settings.networks.split(","):
                if settings.layers:
                    for name in settings.layers.split(","):
                        print(layer_row(base, label, batch, name, settings, rng), flush=True)
                else:
                    print(step_row(base, label, batch, settings, rng), flush=True)


if __name__ == "__main__":
    main()
