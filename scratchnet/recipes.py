"""Named training recipes: model, optimizer, learning-rate schedule, augmentation, input scaling.

A recipe is a plain record of choices; the functions below turn it into the objects ``fit``
takes. ``scratchnet train`` starts from the recipe of ``--dataset`` (or ``--recipe NAME``) and
lets every command-line option override one field.

=================  ============  ===============================  ============  ===========================
recipe             model         optimizer                        schedule      augmentation
=================  ============  ===============================  ============  ===========================
mnist              digit_cnn     AdamW 5e-3, wd 0.01, batch 64,   onecycle      shift 2 px + rotate 10 deg
                                 label smoothing 0.1                            ("digits")
torch_small_cnn    small_cnn_bn  SGD 0.1, momentum 0.9, wd 5e-4,  cosine        crop 32 pad 4 + flip
                                 batch 128                                      ("standard")
flax               flax_cnn      Adam 1e-4, batch 128             constant      flip + random resized crop
                                                                                (scale 0.8-1, ratio 0.9-1.1)
=================  ============  ===============================  ============  ===========================

The two CIFAR-10 recipes are those of the seed notebooks (a PyTorch SmallCNN and a Flax CNN);
both standardise the input per channel with the mean and standard deviation of the *training*
images (``fit_standardization``), saved on the model as ``model.preprocessing`` so that
``scratchnet evaluate`` / ``predict`` scale new images the same way (``preprocess``).

Augmentation runs in pixel space ([0, 1]) even though the model sees standardised images:
``PixelSpace(transform, mean, std)`` undoes the standardisation, applies the transform (so a
crop pads with black and colour jitter clips to [0, 1], as torchvision does before
``Normalize``), and standardises again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import augment as A
from .optimizers import SGD, Adam, AdamW
from .schedules import CosineAnnealing, OneCycle

AUGMENTS = ("none", "standard", "strong", "flax", "digits")
SCHEDULES = ("constant", "cosine", "onecycle")
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class Recipe:
    """Every choice of a training run; ``replace(recipe, lr=0.05)`` gives a variant."""

    name: str
    model: str
    optimizer: str = "adam"        # one of OPTIMIZERS
    lr: float = 1e-3               # initial (cosine) or peak (onecycle) learning rate
    momentum: float = 0.0          # SGD only
    weight_decay: float = 0.0      # SGD/Adam: L2 added to the gradient; AdamW: decoupled
    schedule: str = "constant"     # one of SCHEDULES
    augment: str = "none"          # one of AUGMENTS
    batch_size: int = 32
    epochs: int = 1
    label_smoothing: float = 0.0
    standardize: bool = False      # per-channel (x - mean) / std with training-set statistics


RECIPES = {
    # the MNIST default (issue 17): at least 99.0% on the bundled sample's 2,000 test digits in
    # well under a minute of training; chosen by measurement (benchmarks/time_to_accuracy.py)
    "mnist": Recipe("mnist", "digit_cnn", optimizer="adamw", lr=5e-3, weight_decay=1e-2,
                    schedule="onecycle", augment="digits", batch_size=64, epochs=10, label_smoothing=0.1),
    # the PyTorch SmallCNN notebook (epochs: our choice, about 30 make the cosine run its course)
    "torch_small_cnn": Recipe("torch_small_cnn", "small_cnn_bn", optimizer="sgd", lr=0.1, momentum=0.9,
                              weight_decay=5e-4, schedule="cosine", augment="standard", batch_size=128,
                              epochs=30, standardize=True),
    # the Flax notebook (72.7% test accuracy there; epochs: our choice)
    "flax": Recipe("flax", "flax_cnn", optimizer="adam", lr=1e-4, schedule="constant", augment="flax",
                   batch_size=128, epochs=10, standardize=True),
}

# the recipe ``scratchnet train --dataset D`` starts from
DATASET_RECIPES = {"mnist-sample": "mnist", "mnist": "mnist", "patterns": "mnist",
                   "cifar10": "torch_small_cnn"}


def get_recipe(name: str, **overrides) -> Recipe:
    """A named recipe, with fields replaced by ``overrides`` whose value is not None."""
    _choice(name, RECIPES, "recipe")
    return replace(RECIPES[name], **{key: value for key, value in overrides.items() if value is not None})


def _choice(value, choices, what):
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return value


# ---------------------------------------------------------------------- optimizer and schedule
def build_schedule(recipe: Recipe, steps_per_epoch: int):
    """The learning rate as a number or schedule over ``epochs * steps_per_epoch`` optimizer steps.

    cosine:   lr_t = lr (1 + cos(pi t / T)) / 2, T = all steps (torch's CosineAnnealingLR stepped
              per batch, eta_min 0)
    onecycle: torch's OneCycleLR with max_lr = lr over T steps
    constant: lr
    """
    total = recipe.epochs * steps_per_epoch
    kind = _choice(recipe.schedule, SCHEDULES, "schedule")
    if kind == "cosine":
        return CosineAnnealing(recipe.lr, T_max=total)
    if kind == "onecycle":
        return OneCycle(recipe.lr, total_steps=total)
    return recipe.lr


def build_optimizer(recipe: Recipe, steps_per_epoch: int):
    """The recipe's optimizer with its schedule."""
    lr = build_schedule(recipe, steps_per_epoch)
    kind = _choice(recipe.optimizer, OPTIMIZERS, "optimizer")
    if kind == "sgd":
        return SGD(lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    if kind == "adamw":
        return AdamW(lr=lr, weight_decay=recipe.weight_decay)
    return Adam(lr=lr, weight_decay=recipe.weight_decay)


# ---------------------------------------------------------------------- augmentation
def build_augment(name: str, image_size):
    """The pixel-space pipeline named ``name`` for images of ``image_size`` (H, W) or (H, W, C),
    or None; "strong" jitters colour, so with C given it must be 3 (RGB).

    standard: RandomCrop(size, padding=4), RandomFlip()                (the CIFAR classic)
    flax:     RandomFlip(), RandomResizedCrop(size, scale=(0.8, 1), ratio=(0.9, 1.1))
    strong:   standard + ColorJitter(0.2, 0.2, 0.2) + Cutout(size // 4)
    digits:   RandomShift(2), RandomRotation(10)                    (no flips: a flipped 2 is no digit)
    """
    kind = _choice(name, AUGMENTS, "augmentation")
    size = tuple(int(s) for s in image_size[:2])
    if kind == "none":
        return None
    if kind == "digits":
        return A.Compose([A.RandomShift(2), A.RandomRotation(10)])
    if kind == "flax":
        return A.Compose([A.RandomFlip(), A.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(0.9, 1.1))])
    steps = [A.RandomCrop(size, padding=4), A.RandomFlip()]
    if kind == "strong":
        if len(image_size) > 2 and int(image_size[2]) != 3:  # else ColorJitter fails at the first batch
            raise ValueError(f"augmentation 'strong' jitters colour and needs RGB images (3 channels), "
                             f"got {int(image_size[2])}; use 'standard' (crop and flip) instead")
        steps += [A.ColorJitter(0.2, 0.2, 0.2), A.Cutout(max(1, min(size) // 4))]
    return A.Compose(steps)


class PixelSpace:
    """Apply ``transform`` to standardised images in pixel space:

        pixels = x * std + mean;   pixels', y' = transform(pixels, y, rng);   x' = (pixels' - mean) / std
    x (N, H, W, C), mean and std (C,).
    """

    def __init__(self, transform, mean, std):
        self.transform = transform
        self.mean, self.std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)

    def __call__(self, x, y, rng):
        mean, std = self.mean.astype(x.dtype), self.std.astype(x.dtype)
        pixels, y = self.transform(x * std + mean, y, rng)
        return ((pixels - mean) / std).astype(x.dtype, copy=False), y

    def __repr__(self):
        return f"PixelSpace({self.transform!r}, mean={self.mean.tolist()}, std={self.std.tolist()})"


# ---------------------------------------------------------------------- standardisation
def fit_standardization(x_train) -> dict:
    """{"mean": [C floats], "std": [C floats]} of the training images x_train (N, H, W, C)."""
    from .datasets import channel_mean_std

    mean, std = channel_mean_std(x_train)
    return {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}


def attach_preprocessing(model, dataset: str, class_names, x_train, standardize: bool = True) -> dict | None:
    """Record on ``model.preprocessing`` how its input is scaled, for ``scratchnet evaluate`` /
    ``predict``: the dataset, the class names and (when ``standardize``) the per-channel mean and
    std of the training images x_train (``fit_standardization``; None, None otherwise).
    Returns the statistics, or None when the input is not standardised."""
    stats = fit_standardization(x_train) if standardize else None
    model.preprocessing = {"dataset": dataset, "class_names": list(class_names),
                           "mean": None if stats is None else stats["mean"],
                           "std": None if stats is None else stats["std"]}
    return stats


def preprocess(model, x) -> np.ndarray:
    """Scale images x (N, H, W, C) in [0, 1] as the model was trained: ``(x - mean) / std`` with
    the statistics in ``model.preprocessing`` (unchanged if it has none)."""
    from .datasets import standardize

    info = getattr(model, "preprocessing", None) or {}
    if info.get("mean") is None:
        return x
    return standardize(np.asarray(x, dtype=model.dtype), info["mean"], info["std"])


def training_augment(recipe: Recipe, image_size, stats: dict | None):
    """The augment for ``fit``: the recipe's pipeline, wrapped in PixelSpace if input is standardised.
    ``image_size``: (H, W) or (H, W, C), as for ``build_augment``."""
    pipeline = build_augment(recipe.augment, image_size)
    if pipeline is None or stats is None:
        return pipeline
    return PixelSpace(pipeline, stats["mean"], stats["std"])
