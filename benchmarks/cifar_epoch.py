"""CIFAR-10 beside PyTorch: one epoch's time, the augmentation's cost, the seed recipes' projected
wall-clock time, and float32/float64 agreement of training on the real CIFAR subset.

    python benchmarks/cifar_epoch.py                    # everything (~10 min on 2 busy cores)
    python benchmarks/cifar_epoch.py --sections time,augment
    python benchmarks/cifar_epoch.py --data-dir ../shared/data/cifar10-subset --epochs 3

time      one training step (forward, cross-entropy, backward, optimizer; batch 128, float32) of
          flax_cnn, small_cnn_bn and resnet8 in scratchnet and in their torch.nn twins
          (``networks.torch_network``: same weights, channels-first, a plain nn.Flatten;
          ``to_torch_optimizer``: the same optimizer); one CIFAR-10 epoch = ceil(50,000 / 128)
          = 391 steps x the median step
augment   each recipe's augmentation on a batch of 128 (in pixel space, PixelSpace), as a share of
          its model's training step (target: under 10%); the same cost is added to both libraries
          in "project" (torch never receives augmented batches here)
project   each seed recipe on full CIFAR-10: epochs x 391 x (step + augmentation) + one pass over
          the 10,000 test images per epoch
agree     float64: the loss of 20 steps (batch 32) in both libraries, largest difference;
          float32: test accuracy after --epochs epochs on the subset (4,194 / 466 images), same
          initial weights, same batches in the same order, augmentation off, dropout rate 0

Fair to torch: scratchnet takes (N, H, W, C) images, the torch twin (N, C, H, W) ones, as a
native torch model would. The training and test sets are permuted to NCHW ONCE, up front in
``main``, outside every timed call (a batch of the NCHW set is the same images as the batch of
the NHWC set at the same indices); the twin never permutes inside a step. Each twin is checked
when made: its cross-entropy on a batch equals scratchnet's to 1e-5 (``check_same_loss``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import networks  # noqa: E402
from timing import Contender, alternate  # noqa: E402

from scratchnet import datasets  # noqa: E402
from scratchnet.layers import Dropout  # noqa: E402
from scratchnet.layers.base import iter_layers  # noqa: E402
from scratchnet.losses import CrossEntropy  # noqa: E402
from scratchnet.models import get_model  # noqa: E402
from scratchnet.recipes import build_optimizer, get_recipe, training_augment  # noqa: E402

SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"
MODELS = ("flax_cnn", "small_cnn_bn", "resnet8")
# the recipe each model trains with here (resnet8 borrows the SGD recipe)
MODEL_RECIPE = {"flax_cnn": "flax", "small_cnn_bn": "torch_small_cnn", "resnet8": "torch_small_cnn"}
BATCH, TRAIN_IMAGES, TEST_IMAGES = 128, 50_000, 10_000
STEPS_PER_EPOCH = math.ceil(TRAIN_IMAGES / BATCH)


def scratchnet_model(name, dtype="float32", epochs=1, steps=STEPS_PER_EPOCH, no_dropout=False, seed=0):
    model = get_model(name, input_shape=(32, 32, 3), n_classes=10, seed=seed, dtype=dtype)
    if no_dropout:
        for layer in iter_layers(model.layers):
            if isinstance(layer, Dropout):
                layer.rate = 0.0
    recipe = get_recipe(MODEL_RECIPE[name], epochs=epochs)
    model.compile(optimizer=build_optimizer(recipe, steps), loss=CrossEntropy())
    return model, recipe


def torch_twin(torch, model, x_check, y_check):
    """The model's channels-first twin (``networks.torch_network``: same weights, training mode,
    NCHW in, every image Flatten a plain nn.Flatten) and its optimizer in torch.optim
    (``to_torch_optimizer``: the same kind, Adam / AdamW / SGD, with the same settings).
    Raises if the twin's loss on (x_check NHWC, y_check) is not scratchnet's (``check_same_loss``)."""
    from scratchnet.interop import to_torch_optimizer

    twin = networks.torch_network(model)
    check_same_loss(torch, model, twin, x_check, y_check)
    optimizer, _ = to_torch_optimizer(model.optimizer, twin)  # torch_step sets each step's lr
    return twin, optimizer


def nchw(x):
    """(N, H, W, C) images -> a contiguous (N, C, H, W) copy, torch's layout (made once, untimed)."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def check_same_loss(torch, model, twin, x, y, tolerance=1e-5):
    """Raise unless the twin computes scratchnet's function: the mean cross-entropy of the batch
    (x: (N, H, W, C), y: (N,) labels) in inference mode (BatchNorm's running statistics, no dropout)
    agrees to ``tolerance`` times max(1, |loss|) (float32: a few roundings of a loss near ln 10 = 2.3).
    No state changes."""
    ours = model.evaluate(x, y, batch_size=len(x))["loss"]
    twin.eval()
    with torch.no_grad():
        logits = twin(torch.from_numpy(nchw(x)))
        theirs = float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)))
    twin.train()
    allowed = tolerance * max(1.0, abs(ours))
    if not abs(ours - theirs) <= allowed:
        raise RuntimeError(f"{model.name}: the torch twin's loss {theirs:.8f} is not scratchnet's "
                           f"{ours:.8f} (difference {abs(ours - theirs):.1e} > {allowed:.1e})")


def torch_step(torch, twin, optimizer, x, y, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr                                   # scratchnet's schedule, step by step
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(twin(x), y)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def median_ms(repeats, function, *args):
    """Median wall time of ``function(*args)`` in milliseconds over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def load(data_dir):
    x_train, y_train = datasets.load_cifar10(data_dir, "train", download=data_dir is None)
    x_test, y_test = datasets.load_cifar10(data_dir, "test", download=data_dir is None)
    return x_train, y_train, x_test, y_test


# ---------------------------------------------------------------------- sections
def section_time(torch, x, x_nchw, y, repeats):
    """{model: (scratchnet ms, torch ms, scratchnet predict ms per image, torch ms per image)}.

    x: (N, 32, 32, 3) for scratchnet; x_nchw: the same images (N, 3, 32, 32) for torch."""
    print("\n#### One training step (batch 128, float32) and one CIFAR-10 epoch (391 steps)\n")
    print("| model | params | scratchnet_step_ms | torch_step_ms | ratio | scratchnet_epoch_min "
          "| torch_epoch_min |")
    print("|---|---|---|---|---|---|---|")
    results = {}
    xb, yb = x[:BATCH], y[:BATCH]
    for name in MODELS:
        model, recipe = scratchnet_model(name)
        twin, optimizer = torch_twin(torch, model, xb, yb)
        tx, ty = torch.from_numpy(x_nchw[:BATCH]), torch.from_numpy(yb)  # NCHW already: no copy
        contenders = [  # alternated, a 0.1 s pause and one untimed warm-up call before each
            Contender("scratchnet", "numpy", partial(model.train_step, xb, yb)),
            Contender("torch", "torch", partial(torch_step, torch, twin, optimizer, tx, ty, recipe.lr))]
        times = alternate(contenders, repeats, calls_per_round=1, settle_seconds=0.1)
        step, torch_ms = 1000 * times["scratchnet"], 1000 * times["torch"]
        xt = x[:500]
        predict = median_ms(2, model.predict, xt, 250) / len(xt)
        twin.eval()
        with torch.no_grad():
            torch_predict = median_ms(2, twin, torch.from_numpy(x_nchw[:500])) / len(xt)
        results[name] = (step, torch_ms, predict, torch_predict)
        print(f"| {name} | {model.count_params():,} | {step:.0f} | {torch_ms:.1f} | {step / torch_ms:.1f}x | "
              f"{step * STEPS_PER_EPOCH / 60000:.1f} | {torch_ms * STEPS_PER_EPOCH / 60000:.2f} |")
    return results


def section_augment(x, y, steps, repeats):
    """{augment: ms per batch of 128}, each as a share of its recipe model's step."""
    print("\n#### Augmentation per batch of 128 (pixel space, float32)\n")
    print("| augment | ms_per_batch | of the step of | step_ms | share |")
    print("|---|---|---|---|---|")
    stats = datasets.channel_mean_std(x)
    stats = {"mean": stats[0].tolist(), "std": stats[1].tolist()}
    costs, rng = {}, np.random.default_rng(0)
    for augment, model in (("standard", "small_cnn_bn"), ("flax", "flax_cnn"), ("strong", "small_cnn_bn")):
        pipeline = training_augment(get_recipe("torch_small_cnn", augment=augment), (32, 32), stats)
        ms = median_ms(repeats, pipeline, x[:BATCH], y[:BATCH], rng)
        costs[augment] = ms
        step = steps[model][0] if steps else float("nan")
        print(f"| {augment} | {ms:.2f} | {model} | {step:.0f} | {100 * ms / step:.1f}% |")
    return costs


def section_project(steps, costs):
    print("\n#### Projected wall-clock time of the seed recipes on full CIFAR-10 (this machine)\n")
    print("| recipe | model | epochs | augment | scratchnet_hours | torch_hours |")
    print("|---|---|---|---|---|---|")
    for name in ("torch_small_cnn", "flax"):
        recipe = get_recipe(name)
        step, torch_ms, predict, torch_predict = steps[recipe.model]
        per_epoch = STEPS_PER_EPOCH * (step + costs[recipe.augment]) + TEST_IMAGES * predict
        torch_epoch = STEPS_PER_EPOCH * (torch_ms + costs[recipe.augment]) + TEST_IMAGES * torch_predict
        print(f"| {name} | {recipe.model} | {recipe.epochs} | {recipe.augment} | "
              f"{recipe.epochs * per_epoch / 3.6e6:.1f} | {recipe.epochs * torch_epoch / 3.6e6:.2f} |")


def train_both(torch, name, x, x_nchw, y, dtype, epochs, batch, steps=None, seed=0):
    """Train scratchnet (on x, NHWC) and its twin (on x_nchw, the same images NCHW) on the same
    batches; returns (model, twin, losses, torch losses)."""
    steps_per_epoch = math.ceil(len(x) / batch)
    model, _ = scratchnet_model(name, dtype, epochs, steps_per_epoch, no_dropout=True, seed=seed)
    x, x_nchw, order_rng = x.astype(dtype), x_nchw.astype(dtype), np.random.default_rng(seed)
    twin, optimizer = torch_twin(torch, model, x[:batch], y[:batch])
    ours, theirs, step = [], [], 0
    for _ in range(epochs):
        order = order_rng.permutation(len(x))
        for start in range(0, len(x), batch):
            if steps is not None and step == steps:
                return model, twin, ours, theirs
            index = order[start:start + batch]
            lr = model.optimizer.lr                       # the rate this step uses
            ours.append(float(model.train_step(x[index], y[index])[0]))
            theirs.append(torch_step(torch, twin, optimizer, torch.from_numpy(x_nchw[index]),
                                     torch.from_numpy(y[index]), lr))
            step += 1
    return model, twin, ours, theirs


def section_agree(torch, x, x_nchw, y, x_test, x_test_nchw, y_test, epochs, names=MODELS, seed=0):
    """x, x_test: (N, 32, 32, 3) for scratchnet; x_nchw, x_test_nchw: the same images NCHW for torch."""
    print("\n#### Agreement with PyTorch (same initial weights, batches, schedule; no augmentation or "
          "dropout)\n")
    print("| model | float64_max_loss_diff_20_steps | f32_scratchnet_test_acc | f32_torch_test_acc "
          "| diff_points |")
    print("|---|---|---|---|---|")
    torch.set_default_dtype(torch.float32)
    for name in names:
        _, _, ours, theirs = train_both(torch, name, x[:640], x_nchw[:640], y[:640], "float64", 1, 32,
                                        steps=20, seed=seed)
        loss_diff = max(abs(a - b) for a, b in zip(ours, theirs))
        model, twin, _, _ = train_both(torch, name, x, x_nchw, y, "float32", epochs, BATCH, seed=seed)
        ours_acc = float(np.mean(model.predict(x_test).argmax(1) == y_test))
        twin.eval()
        with torch.no_grad():
            theirs_acc = float(np.mean(twin(torch.from_numpy(x_test_nchw)).numpy().argmax(1) == y_test))
        print(f"| {name} (seed {seed}) | {loss_diff:.1e} | {100 * ours_acc:.1f}% | {100 * theirs_acc:.1f}% | "
              f"{100 * abs(ours_acc - theirs_acc):.1f} |", flush=True)


def machine(torch):
    lines = [f"- cpu: {platform.processor() or platform.machine()}, cores: {os.cpu_count()}",
             f"- python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__} "
             f"({torch.get_num_threads()} threads)",
             f"- OPENBLAS_CORETYPE: {os.environ.get('OPENBLAS_CORETYPE', '(unset)')}",
             f"- load average at start: {os.getloadavg()[0]:.2f}"]
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(SUBSET) if SUBSET.exists() else None)
    parser.add_argument("--sections", default="time,augment,project,agree")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per contender")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the float32 accuracy comparison")
    parser.add_argument("--models", default=",".join(MODELS), help="models of the agree section")
    parser.add_argument("--seeds", default="0", help="seeds (weights and batch order) of the agree section")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    sections = set(args.sections.split(","))
    machine(torch)
    x_train, y_train, x_test, y_test = load(args.data_dir)
    stats = datasets.channel_mean_std(x_train)
    scaled = [datasets.standardize(x, *stats) for x in (x_train, x_test)]
    scaled_nchw = [nchw(x) for x in scaled]  # torch's layout, permuted once here, outside all timing
    steps = section_time(torch, scaled[0], scaled_nchw[0], y_train, args.repeats) \
        if sections & {"time", "project"} else {}
    costs = section_augment(scaled[0], y_train, steps, 20) if sections & {"augment", "project"} else {}
    if "project" in sections:
        section_project(steps, costs)
    if "agree" in sections:
        for seed in map(int, args.seeds.split(",")):
            section_agree(torch, scaled[0], scaled_nchw[0], y_train, scaled[1], scaled_nchw[1], y_test,
                          args.epochs, args.models.split(","), seed)


if __name__ == "__main__":
    main()
