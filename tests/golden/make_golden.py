"""Write golden files: models saved by THIS version of scratchnet, for later versions to load.

The promise is "a model saved today loads a year from now". tests/test_serialization.py checks
round trips within one version of the code; the files in tests/golden/ were written by EARLIER
commits, and tests/test_golden_files.py loads every one of them with today's code. A refactor
that moves a class, renames an attribute a layer stores, or changes a cache key that
forward/backward reads then fails a test instead of a user's year-old file.

Run by hand, from the repository root, with a clean scratchnet/ package (the file names carry
the commit that wrote them, so that commit must BE the code that wrote them):

    python3 tests/golden/make_golden.py            # writes into tests/golden/, then git add them
    python3 tests/golden/make_golden.py --out DIR  # a trial run elsewhere (a dirty tree is allowed)

When to run it: when tests/test_golden_files.py says a layer class has no golden file (a new
public layer), or when a change adds state a model file holds (a new option, buffer, optimizer
or schedule) and you want files with it. The rule: golden files are never regenerated, edited or
deleted. A change that breaks an old file needs a migration (README.md, "Saving and loading":
a class-level default, a ``__setstate__`` on the class, or the old name in ``_MOVED_CLASSES``),
not a new file in its place.

For each dtype (float64, float32) it writes, with <tag> = v<scratchnet version>_<git short
rev>_<dtype>, and refuses to overwrite any file that exists:

    model_<tag>.sn            model.save: every public layer class, one frozen layer, an
                              optimizer with a schedule and moments, a loss with an option,
                              BatchNorm running statistics, epochs_trained, the generator's state
    weights_<tag>.npz         model.save_weights (scratchnet naming)
    weights_torch_<tag>.npz   model.save_weights(naming="torch")
    expected_<tag>.npz        what the loaded model must reproduce (pickle-free; keys below)

expected_<tag>.npz:
    meta_json                     JSON: versions, rev, dtype, layer classes, file names,
                                  epochs_trained, input_range, optimizer iterations and step
                                  counts (Adam's t), callback state, the generator's state
    x_predict, predictions        a fixed batch and model.predict of it, right after saving
    opt/<layer>/<param>/<key>     every optimizer state array as saved (Adam: m, v; SGD: buf)
    x_step, y_step                a fixed batch for ONE more train_step after predict
    loss_after_step               that step's loss
    after/<layer>/<param>         every parameter and buffer after that step
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))  # run as a script: import the scratchnet of this checkout

import scratchnet as sn  # noqa: E402
from scratchnet.callbacks import EarlyStopping  # noqa: E402
from scratchnet.layers import (  # noqa: E402
    Activation,
    Add,
    AvgPool2D,
    BatchNorm,
    ChannelShuffle,
    Concatenate,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    Parallel,
    Residual,
    SeparableConv2D,
    SpatialDropout2D,
    UpSampling2D,
    ZeroPadding2D,
)
from scratchnet.layers.base import iter_layers  # noqa: E402
from scratchnet.losses import CrossEntropy  # noqa: E402
from scratchnet.schedules import CosineAnnealing, LinearWarmup, StepDecay  # noqa: E402

GOLDEN_DIR = Path(__file__).resolve().parent
INPUT_SHAPE = (8, 8, 2)   # one sample: 8x8 pixels, 2 channels (tiny: the files stay a few KB)
CLASSES = 3
SEED = 20261201


# ------------------------------------------------------------------ the model
def build_model(dtype: str) -> sn.Sequential:
    """Every public layer class of scratchnet.layers (and every Conv2D backend) in one model.

    Shapes of one sample, (H, W, C) -> ...:
        (8, 8, 2) conv_im2col, bn, relu, conv_winograd (frozen), leaky_relu -> (8, 8, 3)
        residual_identity: [conv_scipy, bn, gelu] + x                     -> (8, 8, 3)
        zero_padding (10, 10, 3), max_pool (5, 5, 3), upsampling (10, 10, 3), avg_pool (5, 5, 3)
        residual_projection: [conv_loops stride 2, tanh] + [conv_auto_1x1 stride 2]  -> (3, 3, 4)
        parallel_concat: [grouped 1x1 conv (2)] | [depthwise (4), silu]    -> (3, 3, 6)
        channel_shuffle, spatial_dropout                                    -> (3, 3, 6)
        parallel_add: [separable (3)] + [conv_auto_3x3 (3), elu]            -> (3, 3, 3)
        parallel_pool: [global_avg_pool (3)] | [flatten (27)]               -> (30,)
        dense_hidden (softplus) (6,), dropout, dense_out (3,)
    About 850 parameters: each file stays a few tens of KB. No bias before a BatchNorm: the
    normalisation cancels it, so its gradient is 0 in exact arithmetic and only rounding noise
    (~1e-17) in practice, which Adam scales up to steps of ~lr * noise / eps, ~1e-10; those
    parameters would then differ by 50% between BLAS kernels (measured with other
    OPENBLAS_CORETYPEs) and no tolerance could tell a break from the noise.
    """
    layers = [
        Conv2D(3, 3, padding="same", use_bias=False, backend="im2col", name="conv_im2col"),
        BatchNorm(name="bn"),
        Activation("relu"),
        Conv2D(3, 3, padding="same", backend="winograd", name="conv_winograd"),
        Activation("leaky_relu"),
        Residual([Conv2D(3, 3, padding="same", use_bias=False, backend="scipy", name="conv_scipy"),
                  BatchNorm(momentum=0.9, name="bn_residual"), Activation("gelu")],
                 name="residual_identity"),
        ZeroPadding2D(1),
        MaxPool2D(2, backend="loops"),
        UpSampling2D(2),
        AvgPool2D(2),
        Residual([Conv2D(4, 3, stride=2, padding="same", backend="loops", name="conv_loops"),
                  Activation("tanh")],
                 shortcut=Conv2D(4, 1, stride=2, use_bias=False, backend="auto", name="conv_auto_1x1"),
                 name="residual_projection"),
        Parallel([Conv2D(2, 1, groups=2, name="conv_grouped"),
                  [DepthwiseConv2D(3, padding="same", name="depthwise"), Activation("silu")]],
                 merge="concat", name="parallel_concat"),
        ChannelShuffle(2),
        SpatialDropout2D(0.25),
        Parallel([SeparableConv2D(3, 3, padding="same", backend="scipy", name="separable"),
                  [Conv2D(3, 3, padding="same", backend="auto", name="conv_auto_3x3"), Activation("elu")]],
                 merge=Add(), name="parallel_add"),
        Parallel([GlobalAvgPool2D(), Flatten()], merge=Concatenate(axis=-1), name="parallel_pool"),
        Dense(6, activation="softplus", name="dense_hidden"),
        Dropout(0.2),
        Dense(CLASSES, name="dense_out"),
    ]
    model = sn.Sequential(layers, input_shape=INPUT_SHAPE, seed=SEED, dtype=dtype, name=f"golden_{dtype}")
    model.build()
    model.get_layer("conv_winograd").trainable = False  # a frozen layer: no optimizer state
    if dtype == "float64":  # decoupled decay, clipping, a schedule made of two schedules
        schedule = LinearWarmup(CosineAnnealing(0.01, T_max=20), warmup_steps=2, start_factor=0.5)
        optimizer = sn.AdamW(lr=schedule, weight_decay=0.01, clipnorm=5.0)
        loss = CrossEntropy(label_smoothing=0.1)
    else:  # another optimizer's state (a momentum buffer) and schedule
        optimizer = sn.SGD(lr=StepDecay(0.05, factor=0.5, every=2), momentum=0.9, nesterov=True,
                           weight_decay=1e-4)
        loss = CrossEntropy(label_smoothing=0.05)
    return model.compile(optimizer, loss)


def fixed_batches(dtype: str) -> dict[str, np.ndarray]:
    """The training batch, the batch to predict and the batch of the extra step (seeded)."""
    rng = np.random.default_rng(SEED + 1)
    return {"x_train": rng.normal(size=(12, *INPUT_SHAPE)).astype(dtype),
            "y_train": rng.integers(0, CLASSES, size=12),
            "x_predict": rng.normal(size=(4, *INPUT_SHAPE)).astype(dtype),
            "x_step": rng.normal(size=(3, *INPUT_SHAPE)).astype(dtype),
            "y_step": rng.integers(0, CLASSES, size=3)}


def train_briefly(model: sn.Sequential, batches: dict) -> None:
    """One epoch of three steps (batch size 4): moments, step counts, running statistics,
    epochs_trained, input_range and a callback's state all exist afterwards."""
    model.fit(batches["x_train"], batches["y_train"], epochs=1, batch_size=4, verbose=0,
              callbacks=[EarlyStopping(monitor="loss", patience=3)])


# ------------------------------------------------------------------ what a loaded model must give
def optimizer_state(model: sn.Sequential) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Every optimizer state entry: arrays as {"opt/<layer>/<param>/<key>": array} (Adam's m and
    v, SGD's buf) and counts as {"<layer>/<param>/<key>": int} (Adam's t, for the JSON)."""
    arrays, counts = {}, {}
    for layer in iter_layers(model.layers):
        for param, state in layer.opt_state.items():
            for key, value in state.items():
                if isinstance(value, np.ndarray):
                    arrays[f"opt/{layer.name}/{param}/{key}"] = value.copy()
                else:
                    counts[f"{layer.name}/{param}/{key}"] = int(value)
    return arrays, counts


def layer_class_names(model: sn.Sequential) -> list[str]:
    return sorted({type(layer).__name__ for layer in iter_layers(model.layers)})


def git_short_rev() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def package_is_clean() -> bool:
    """True if scratchnet/ has no uncommitted changes (the rev then names the code that runs)."""
    changes = subprocess.run(["git", "status", "--porcelain", "--", "scratchnet"], cwd=REPO_ROOT,
                             check=True, capture_output=True, text=True).stdout
    return not changes.strip()


def golden_paths(folder: Path, tag: str) -> dict[str, Path]:
    return {"model": folder / f"model_{tag}.sn",
            "weights": folder / f"weights_{tag}.npz",
            "weights_torch": folder / f"weights_torch_{tag}.npz",
            "expected": folder / f"expected_{tag}.npz"}


def write_golden(paths: dict[str, Path], rev: str, dtype: str) -> None:
    """Train, save the model and its weights, then record what a loaded copy must reproduce."""
    batches = fixed_batches(dtype)
    model = build_model(dtype)
    train_briefly(model, batches)

    model.save(paths["model"])
    model.save_weights(paths["weights"])
    model.save_weights(paths["weights_torch"], naming="torch")

    opt_arrays, opt_counts = optimizer_state(model)
    expected = {"x_predict": batches["x_predict"], "predictions": model.predict(batches["x_predict"]),
                **opt_arrays}  # the parameters as saved are in the weights file
    meta = {"scratchnet": sn.__version__, "git_rev": rev, "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "dtype": dtype,
            "layer_classes": layer_class_names(model),
            "frozen_layers": [layer.name for layer in iter_layers(model.layers) if not layer.trainable],
            "files": {kind: path.name for kind, path in paths.items()},
            "epochs_trained": model.epochs_trained, "input_range": list(model.input_range),
            "iterations": model.optimizer.iterations, "opt_counts": opt_counts,
            "rng_state": model.rng.bit_generator.state, "callback_state": model.callback_state}
    loss, _ = model.train_step(batches["x_step"], batches["y_step"])  # after predict, as the test does
    expected.update({"x_step": batches["x_step"], "y_step": batches["y_step"],
                     "loss_after_step": np.array(loss, dtype=np.float64),
                     **{f"after/{key}": value for key, value in model.get_weights().items()},
                     "meta_json": np.array(json.dumps(meta, sort_keys=True))})
    with open(paths["expected"], "xb") as file:  # "x": never overwrite
        np.savez_compressed(file, **expected)  # the npy headers compress; random floats do not


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="write here instead of tests/golden/ (a trial run; a dirty tree is allowed)")
    args = parser.parse_args(argv)
    folder = args.out if args.out is not None else GOLDEN_DIR
    if args.out is None and not package_is_clean():
        print("scratchnet/ has uncommitted changes: commit them first, so that the git rev in the "
              "file names is the code that wrote the files (or pass --out DIR for a trial run)")
        return 1
    rev = git_short_rev()
    paths = {dtype: golden_paths(folder, f"v{sn.__version__}_{rev}_{dtype}")
             for dtype in ("float64", "float32")}
    existing = [path.name for files in paths.values() for path in files.values() if path.exists()]
    if existing:  # checked before anything is written
        print(f"golden files are never overwritten, and these exist already in {folder}: "
              f"{', '.join(existing)}. Commit your change first: a new commit writes new files.")
        return 1
    for dtype, files in paths.items():
        write_golden(files, rev, dtype)
        for path in files.values():
            print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
