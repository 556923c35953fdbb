"""Named recipes build the documented optimizer, schedule and augmentation; standardisation in
pixel space and with training-set statistics."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet import augment as A
from scratchnet.datasets import standardize
from scratchnet.models import tiny_cnn
from scratchnet.optimizers import SGD, Adam, AdamW
from scratchnet.recipes import (
    RECIPES,
    PixelSpace,
    build_augment,
    build_optimizer,
    fit_standardization,
    get_recipe,
    preprocess,
    training_augment,
)
from scratchnet.schedules import ConstantLR, CosineAnnealing, OneCycle


def test_torch_small_cnn_recipe_is_sgd_momentum_cosine_crop_flip():
    recipe = get_recipe("torch_small_cnn")
    assert (recipe.model, recipe.batch_size, recipe.standardize) == ("small_cnn_bn", 128, True)
    optimizer = build_optimizer(recipe, steps_per_epoch=391)        # 50,000 / 128
    assert type(optimizer) is SGD
    assert (optimizer.momentum, optimizer.weight_decay, optimizer.nesterov) == (0.9, 5e-4, False)
    schedule = optimizer.schedule
    assert type(schedule) is CosineAnnealing
    assert (schedule.initial, schedule.T_max, schedule.eta_min) == (0.1, recipe.epochs * 391, 0.0)
    total = recipe.epochs * 391
    assert [schedule(t) for t in (0, total // 2, total)] == pytest.approx([0.1, 0.05, 0.0], abs=1e-15)
    pipeline = build_augment(recipe.augment, (32, 32))
    crop, flip = pipeline.transforms
    assert type(crop) is A.RandomCrop and (crop.size, crop.padding, crop.fill) == ((32, 32), 4, 0.0)
    assert type(flip) is A.RandomFlip and (flip.horizontal, flip.vertical, flip.p) == (True, False, 0.5)


def test_flax_recipe_is_constant_adam_flip_and_resized_crop():
    recipe = get_recipe("flax")
    assert (recipe.model, recipe.batch_size, recipe.standardize) == ("flax_cnn", 128, True)
    optimizer = build_optimizer(recipe, steps_per_epoch=10)
    assert type(optimizer) is Adam and optimizer.weight_decay == 0.0
    assert type(optimizer.schedule) is ConstantLR and optimizer.lr == 1e-4
    flip, crop = build_augment(recipe.augment, (32, 32)).transforms
    assert type(flip) is A.RandomFlip and flip.p == 0.5
    assert type(crop) is A.RandomResizedCrop
    assert (crop.size, crop.scale, crop.ratio) == ((32, 32), (0.8, 1.0), (0.9, 1.1))


def test_mnist_recipe_is_the_measured_default_and_overrides_apply():
    recipe = get_recipe("mnist")   # issue 17: benchmarks/time_to_accuracy.py
    assert (recipe.model, recipe.optimizer, recipe.lr, recipe.weight_decay) == (
        "digit_cnn", "adamw", 5e-3, 1e-2)
    assert (recipe.batch_size, recipe.epochs) == (64, 10)
    assert (recipe.schedule, recipe.augment, recipe.label_smoothing, recipe.standardize) == (
        "onecycle", "digits", 0.1, False)
    shift, rotation = build_augment(recipe.augment, (28, 28)).transforms   # no flips for digits
    assert (type(shift), shift.max_shift, type(rotation), rotation.degrees) == (
        A.RandomShift, 2, A.RandomRotation, 10.0)
    assert get_recipe("mnist", augment="none").augment == "none"
    assert build_augment("none", (28, 28)) is None
    changed = get_recipe("torch_small_cnn", lr=0.05, optimizer="adamw", weight_decay=0.01,
                         schedule="onecycle", epochs=None)
    assert changed.epochs == RECIPES["torch_small_cnn"].epochs          # None keeps the recipe's value
    optimizer = build_optimizer(changed, steps_per_epoch=7)
    assert type(optimizer) is AdamW and optimizer.weight_decay == 0.01
    assert type(optimizer.schedule) is OneCycle
    assert (optimizer.schedule.max_lr, optimizer.schedule.total_steps) == (0.05, changed.epochs * 7)


def test_strong_augmentation_adds_colour_jitter_and_cutout():
    crop, flip, jitter, cutout = build_augment("strong", (32, 32)).transforms
    assert (type(crop), type(flip)) == (A.RandomCrop, A.RandomFlip)
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (0.2, 0.2, 0.2, 0.0)
    assert jitter.value_range == (0.0, 1.0) and type(cutout) is A.Cutout and cutout.size == 8


@pytest.mark.parametrize("call, message", [
    (lambda: get_recipe("keras"), "unknown recipe 'keras'; choose one of mnist, torch_small_cnn, flax"),
    (lambda: build_augment("heavy", (32, 32)), "unknown augmentation 'heavy'"),
    (lambda: build_augment("strong", (28, 28, 1)), "augmentation 'strong' jitters colour and needs RGB"),
    (lambda: build_optimizer(get_recipe("mnist", optimizer="rmsprop"), 3), "unknown optimizer 'rmsprop'"),
    (lambda: build_optimizer(get_recipe("mnist", schedule="step"), 3), "unknown schedule 'step'"),
])
def test_unknown_names_are_refused_with_the_choices(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_fit_standardization_uses_the_given_images_only():
    rng = np.random.default_rng(0)
    x = rng.random((20, 4, 5, 3))
    stats = fit_standardization(x[:12])
    assert stats["mean"] == pytest.approx(x[:12].reshape(-1, 3).mean(axis=0).tolist(), abs=1e-15)
    assert stats["std"] == pytest.approx(x[:12].reshape(-1, 3).std(axis=0).tolist(), abs=1e-15)
    assert all(type(v) is float for v in stats["mean"] + stats["std"])   # JSON- and pickle-plain


def test_preprocess_applies_the_saved_statistics():
    model = tiny_cnn(input_shape=(6, 6, 3), dtype="float64")
    x = np.random.default_rng(1).random((4, 6, 6, 3))
    assert preprocess(model, x) is x                                      # nothing saved: unchanged
    model.preprocessing = {"mean": [0.5, 0.25, 0.125], "std": [2.0, 4.0, 0.5]}
    expected = (x - np.array([0.5, 0.25, 0.125])) / np.array([2.0, 4.0, 0.5])
    np.testing.assert_allclose(preprocess(model, x), expected, rtol=0, atol=1e-15)
    model.preprocessing = {"mean": None, "std": None}
    assert preprocess(model, x) is x


@given(seed=st.integers(0, 2**31), n=st.integers(1, 5), padding=st.integers(0, 3))
def test_pixel_space_crops_with_black_padding_and_standardises_again(seed, n, padding):
    rng = np.random.default_rng(seed)
    pixels = rng.random((n, 8, 8, 3))
    mean, std = rng.random(3) * 0.5 + 0.25, rng.random(3) * 0.2 + 0.1
    crop = A.RandomCrop(8, padding=padding)
    ours, labels = PixelSpace(crop, mean, std)(standardize(pixels, mean, std), np.arange(n),
                                               np.random.default_rng(7))
    reference, _ = crop(pixels, np.arange(n), np.random.default_rng(7))
    np.testing.assert_allclose(ours, (reference - mean) / std, rtol=0, atol=1e-12)
    assert labels.tolist() == list(range(n))
    black = -mean / std                                  # pixel 0 after standardisation, per channel
    padded = np.all(reference == 0.0, axis=-1)
    np.testing.assert_allclose(ours[padded], np.broadcast_to(black, ours[padded].shape), rtol=0, atol=1e-12)


def test_training_augment_wraps_only_standardised_input():
    recipe = get_recipe("torch_small_cnn")
    plain = training_augment(recipe, (32, 32), None)
    assert type(plain) is A.Compose
    wrapped = training_augment(recipe, (32, 32), {"mean": [0.5] * 3, "std": [0.25] * 3})
    assert type(wrapped) is PixelSpace and type(wrapped.transform) is A.Compose
    assert wrapped.mean.tolist() == [0.5] * 3 and wrapped.std.tolist() == [0.25] * 3
    assert training_augment(get_recipe("mnist", augment="none"), (28, 28), None) is None
    assert type(training_augment(get_recipe("mnist"), (28, 28), None)) is A.Compose   # not wrapped
    assert math.isclose(get_recipe("torch_small_cnn").weight_decay, 5e-4)


def test_the_epochs_help_quotes_the_recipes():
    from scratchnet import cli

    text = cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    text = " ".join(text.split())
    assert f"(default: {RECIPES['mnist'].epochs}) on MNIST" in text
    assert f"torch_small_cnn: {RECIPES['torch_small_cnn'].epochs}, flax: {RECIPES['flax'].epochs}" in text
