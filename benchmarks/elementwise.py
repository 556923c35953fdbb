"""Issue #15: the element-wise layers (BatchNorm, activations, MaxPool2D 2x2, Add) beside PyTorch, and
beside an older version of the same layers.

    OPENBLAS_NUM_THREADS=1 python benchmarks/elementwise.py                     # ~1 minute
    OPENBLAS_NUM_THREADS=1 python benchmarks/elementwise.py --baseline main     # + the old code
    OPENBLAS_NUM_THREADS=1 python benchmarks/elementwise.py --steps --baseline main   # whole steps
    python benchmarks/elementwise.py --layers batchnorm,relu --rounds 5
    OPENBLAS_NUM_THREADS=1 python benchmarks/elementwise.py --layers leaky_relu,elu,selu --baseline main

Every layer runs forward (training mode) and backward on the shapes of the zoo's training steps
(batch 64); PyTorch runs the same numbers in NCHW (the layer's ``networks.torch_layer`` twin:
``torch.nn.BatchNorm2d`` in training mode with the layer's eps and momentum, ``ReLU``,
``LeakyReLU``, ``ELU``, ``SELU``, ``MaxPool2d``; ``+`` for Add), forward with autograd recording
and backward via ``torch.autograd.grad`` (timing.py ``torch_contenders``).
``--baseline REV`` also loads the layer modules as they were at git revision REV (``git show``
as a module inside ``scratchnet.layers``: timing.py ``module_at_revision``) and times them in the same rounds,
so "new / old" is measured side by side; ``--steps`` times whole training steps of the zoo
networks, the old model being the same network with those layers switched to their old classes.
One thread each (torch.set_num_threads(1); set
OPENBLAS_NUM_THREADS=1 for NumPy). Contenders are interleaved round by round (timing.py);
medians are reported. Nothing is asserted.
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
from run import markdown, ms, ratio  # noqa: E402
from timing import (  # noqa: E402
    Contender,
    alternate,
    layer_contenders,
    machine_description,
    module_at_revision,
    torch_contenders,
)

from scratchnet import layers as current_layers  # noqa: E402

try:
    import torch
except ImportError:  # the tables then have no torch column
    torch = None

# layer key -> (scratchnet module, class name, shapes (N, H, W, C) or lists of them)
CASES = {
    "batchnorm": ("normalization", "BatchNorm", [(64, 32, 32, 16), (64, 32, 32, 32), (64, 16, 16, 32),
                                                 (64, 8, 8, 64)]),
    "relu": ("activations", "Activation", [(64, 32, 32, 16), (64, 32, 32, 32), (64, 28, 28, 6),
                                           (64, 8, 8, 64)]),
    # the activations that were np.where: 4 MB of float32 (resnet8's first stage) and a small one
    "leaky_relu": ("activations", "Activation", [(64, 32, 32, 16), (64, 8, 8, 64)]),
    "elu": ("activations", "Activation", [(64, 32, 32, 16), (64, 8, 8, 64)]),
    "selu": ("activations", "Activation", [(64, 32, 32, 16), (64, 8, 8, 64)]),
    "maxpool": ("pooling", "MaxPool2D", [(64, 32, 32, 32), (64, 28, 28, 6), (64, 16, 16, 64),
                                         (64, 10, 10, 16)]),
    "add": ("merge", "Add", [(64, 32, 32, 16), (64, 8, 8, 64)]),
}


def load_baseline(module_name: str, revision: str):
    """``scratchnet.layers.<module_name>`` as it was at git ``revision``, as a separate module."""
    return module_at_revision(f"scratchnet/layers/{module_name}.py", revision)


# the keys that are an activation's name (the layer is Activation(key))
ACTIVATION_KEYS = tuple(key for key, (_, class_name, _) in CASES.items() if class_name == "Activation")


def make_layer(layer_class, key, sample_shape):
    layer = layer_class(key) if key in ACTIVATION_KEYS else layer_class()
    layer.build([sample_shape, sample_shape] if key == "add" else sample_shape, dtype="float32")
    return layer


def torch_pair(key, layer, x, dy):
    """forward and backward of the torch twin on the same numbers in NCHW: ``layer``'s (the built
    "new" one) ``networks.torch_layer`` twin (training mode) through timing.py's
    ``torch_contenders``, or, for "add" (two inputs, no module), ``+`` with torch.autograd.grad for
    both inputs."""
    if key != "add":
        return torch_contenders(networks.torch_layer(layer), x, dy)
    first, second = (torch.from_numpy(part.transpose(0, 3, 1, 2).copy()).requires_grad_(True) for part in x)
    dy_nchw = torch.from_numpy(dy.transpose(0, 3, 1, 2).copy())
    y = first + second
    return (Contender("torch", "torch", lambda: first + second),
            Contender("torch", "torch", lambda: torch.autograd.grad(y, [first, second], dy_nchw,
                                                                    retain_graph=True)))


def warm_up(contender):
    """An untimed-in-effect copy of ``contender`` to run first in each round.

    Measured: the first NumPy contender after the torch one (after timing.py's pause) ran up to
    1.5x slower than the second, with identical code (MaxPool2D new vs old, 8 MB input, load ~3).
    This copy takes that place; its times are not reported.
    """
    return Contender("warm-up", contender.library, contender.call)


def layer_rows(key, settings, baseline_revision, rng):
    module_name, class_name, shapes = CASES[key]
    classes = {"new": getattr(current_layers, class_name)}
    if baseline_revision:
        classes["old"] = getattr(load_baseline(module_name, baseline_revision), class_name)
    rows = []
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        if key == "add":
            x = [x, rng.standard_normal(shape).astype(np.float32)]
            out_shape = shape
        elif key == "maxpool":
            out_shape = (shape[0], shape[1] // 2, shape[2] // 2, shape[3])
        else:
            out_shape = shape
        dy = rng.standard_normal(out_shape).astype(np.float32)
        forward, backward = [], []
        layers = {name: make_layer(layer_class, key, shape[1:]) for name, layer_class in classes.items()}
        for name, layer in layers.items():
            pair = layer_contenders(name, layer, x, dy)
            forward.append(pair[0])
            backward.append(pair[1])
        if torch is not None:
            pair = torch_pair(key, layers["new"], x, dy)
            forward.append(pair[0])
            backward.append(pair[1])
        for contenders in (forward, backward):
            contenders.insert(0, warm_up(contenders[0]))
        for direction, contenders in (("forward", forward), ("backward", backward)):
            times = alternate(contenders, settings.rounds, settings.calls, settings.settle)
            row = {"layer": key, "shape": "x".join(map(str, shape)), "pass": direction,
                   "new_ms": ms(times["new"])}
            if "old" in times:
                row["old_ms"] = ms(times["old"])
                row["new_x_old"] = ratio(times["new"], times["old"])
            if "torch" in times:
                row["torch_ms"] = ms(times["torch"])
                row["new_x_torch"] = ratio(times["new"], times["torch"])
            row["load"] = round(os.getloadavg()[0], 2)
            rows.append(row)
            print(f"  {row}", file=sys.stderr, flush=True)
    return rows


# ------------------------------------------------------------------ whole training steps
STEP_NETWORKS = ["reference (MNIST)", "lenet5", "flax_cnn", "small_cnn_bn", "resnet8"]


def with_baseline_layers(model, revision):
    """``model`` with every layer of the modules timed here switched to its class at ``revision``
    (same parameters and buffers; only the methods change)."""
    from scratchnet.layers.base import iter_layers

    modules = {name: load_baseline(name, revision) for name in ("normalization", "activations", "merge",
                                                                 "pooling", "dense", "dropout")}
    modules["dense"].ACTIVATIONS = modules["activations"].ACTIVATIONS  # Dense's old activations too
    for layer in iter_layers(model.layers):
        for module in modules.values():
            old_class = getattr(module, type(layer).__name__, None)
            if isinstance(old_class, type) and old_class.__module__ == module.__name__:
                layer.__class__ = old_class
    return model


def step_rows(settings, baseline_revision, rng):
    """Whole training steps (batch 64, "auto" backend): new layers, old layers (--baseline), torch."""
    import speed_zoo  # imports torch

    rows = []
    for label in settings.networks.split(","):
        contenders, state = speed_zoo.step_contenders(label, 64, "float32", rng, backends=("auto",))
        contenders[0].name = "new"
        contenders.insert(0, warm_up(contenders[0]))
        model, x, labels = state[:3]
        if baseline_revision:
            old_model = with_baseline_layers(speed_zoo.build(label, "auto"), baseline_revision)
            def old_step(m=old_model, x=x, labels=labels):
                return m.train_step(x, labels)
            contenders.insert(1, Contender("old", "numpy", old_step))
        times = alternate(contenders, settings.rounds, settings.calls, settings.settle)
        row = {"network": label, "new_ms": round(times["new"] * 1e3, 2)}
        if "old" in times:
            row["old_ms"] = round(times["old"] * 1e3, 2)
            row["new_x_old"] = ratio(times["new"], times["old"])
        row["torch_ms"] = round(times["torch"] * 1e3, 2)
        row["new_x_torch"] = ratio(times["new"], times["torch"])
        if "old" in times:
            row["old_x_torch"] = ratio(times["old"], times["torch"])
        row["load"] = round(os.getloadavg()[0], 2)
        rows.append(row)
        print(f"  {row}", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default=",".join(CASES), help=f"subset of {','.join(CASES)}")
    parser.add_argument("--baseline", default=None, help="git revision of the old layers to time too")
    parser.add_argument("--steps", action="store_true", help="time whole training steps instead")
    parser.add_argument("--networks", default=",".join(STEP_NETWORKS), help="for --steps")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=3)
    settings = parser.parse_args(argv)
    settings.settle = 0.1
    if torch is not None:
        torch.set_num_threads(1)
    machine = machine_description(torch)
    machine["OPENBLAS_NUM_THREADS"] = os.environ.get("OPENBLAS_NUM_THREADS", "(unset)")
    print("\n".join(f"- {key}: {value}" for key, value in machine.items()) + "\n")
    rng = np.random.default_rng(0)
    if settings.steps:
        print(markdown(step_rows(settings, settings.baseline, rng)))
        return
    rows = []
    for key in settings.layers.split(","):
        rows += layer_rows(key, settings, settings.baseline, rng)
    print(markdown(rows))


if __name__ == "__main__":
    main()
