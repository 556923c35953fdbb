"""One rule for every real-valued option (option_checks.check_real), as test_whole_numbers.py's for
whole numbers: a value of the wrong TYPE (a string, None, a bool) is a TypeError; NaN, inf or a
number out of the option's range a ValueError; both with one message naming the owner and the
option; NumPy numbers (np.float32, np.int64) pass."""

import math
import re

import numpy as np
import pytest

from scratchnet import Sequential, augment, schedules
from scratchnet import layers as L
from scratchnet.callbacks import EarlyStopping, ModelCheckpoint
from scratchnet.datasets import make_patterns
from scratchnet.health import HealthMonitor
from scratchnet.interpret import class_model, deep_dream, feature_inversion, saliency
from scratchnet.losses import CrossEntropy
from scratchnet.optimizers import SGD, Adam, AdamW
from scratchnet.option_checks import check_real, real_bounds_text
from scratchnet.style_transfer import style_transfer


def fit_tiny(**options):
    """fit a 3 -> 2 Dense model on 4 samples with ``options`` (validation_split)."""
    model = Sequential([L.Dense(2)], input_shape=(3,), name="m")
    model.compile(optimizer="sgd", loss="cross_entropy")
    return model.fit(np.arange(12.0).reshape(4, 3) / 12, np.array([0, 1, 0, 1]), verbose=0, **options)


def tiny_cnn():
    """(6, 6, 2) images -> a 3x3 convolution (the feature map 'conv') -> 2 classes, float64."""
    return Sequential([L.Conv2D(2, 3, name="conv"), L.Activation("tanh"), L.Flatten(), L.Dense(2)],
                      input_shape=(6, 6, 2), dtype="float64", seed=0).build()


IMAGE = np.random.default_rng(0).uniform(size=(6, 6, 2))


def with_tiny_cnn(function, option, **fixed):
    """A call of ``function(tiny_cnn(), ...)`` for one step with ``option`` set to the value."""
    arguments = {"feature_inversion": (IMAGE, "conv"), "deep_dream": (IMAGE, "conv"), "class_model": (0,),
                 "saliency": (IMAGE[None],), "style_transfer": (IMAGE, IMAGE)}[function.__name__]
    steps = {} if function is saliency else {"steps": 1}
    return lambda value: function(tiny_cnn(), *arguments, **steps, **fixed, **{option: value})


# (what is called with the value, the message's start, a valid value, a value out of range)
OPTIONS = {
    "SGD lr": (lambda v: SGD(lr=v), "SGD: lr must be", 1, -1),
    "SGD momentum": (lambda v: SGD(momentum=v), "SGD: momentum must be", 0, 1),
    "SGD weight_decay": (lambda v: SGD(weight_decay=v), "SGD: weight_decay must be", 0, -0.5),
    "SGD clipnorm": (lambda v: SGD(clipnorm=v), "SGD: clipnorm must be", 1, 0),
    "Adam beta1": (lambda v: Adam(beta1=v), "Adam: beta1 must be", 0, 1),
    "Adam beta2": (lambda v: Adam(beta2=v), "Adam: beta2 must be", 0.5, -0.1),
    "Adam eps": (lambda v: Adam(eps=v), "Adam: eps must be", 1, 0),
    "AdamW betas": (lambda v: AdamW(betas=(0.9, v)), "AdamW: beta2 must be", 0.5, 1.5),
    "AdamW weight_decay": (lambda v: AdamW(weight_decay=v), "AdamW: weight_decay must be", 0, -1),
    "ConstantLR lr": (lambda v: schedules.ConstantLR(v), "ConstantLR: lr must be", 1, 0),
    "StepDecay initial": (lambda v: schedules.StepDecay(v), "StepDecay: initial must be", 1, 0),
    "StepDecay factor": (lambda v: schedules.StepDecay(0.1, factor=v), "StepDecay: factor must be", 1, 0),
    "ExponentialDecay rate": (lambda v: schedules.ExponentialDecay(0.1, rate=v),
                              "ExponentialDecay: rate must be", 0.5, -0.5),
    "CosineDecay final": (lambda v: schedules.CosineDecay(0.1, 5, final=v),
                          "CosineDecay: final must be", 0, -1),
    "CosineAnnealing eta_min": (lambda v: schedules.CosineAnnealing(0.1, 5, eta_min=v),
                                "CosineAnnealing: eta_min must be", 0, -1),
    "LinearWarmup start_factor": (lambda v: schedules.LinearWarmup(0.1, 5, start_factor=v),
                                  "LinearWarmup: start_factor must be", 1, 1.5),
    "LinearWarmup after": (lambda v: schedules.LinearWarmup(v, 5), "LinearWarmup: after must be", 1, 0),
    "OneCycle max_lr": (lambda v: schedules.OneCycle(v, 10), "OneCycle: max_lr must be", 1, 0),
    "OneCycle pct_start": (lambda v: schedules.OneCycle(0.1, 10, pct_start=v), "OneCycle: pct_start must be",
                           0.5, 1),
    "OneCycle div_factor": (lambda v: schedules.OneCycle(0.1, 10, div_factor=v),
                            "OneCycle: div_factor must be", 25, 0),
    "OneCycle final_div_factor": (lambda v: schedules.OneCycle(0.1, 10, final_div_factor=v),
                                  "OneCycle: final_div_factor must be", 100, -1),
    "ReduceOnPlateau initial": (lambda v: schedules.ReduceOnPlateau(v),
                                "ReduceOnPlateau: initial must be", 1, 0),
    "ReduceOnPlateau factor": (lambda v: schedules.ReduceOnPlateau(0.1, factor=v),
                               "ReduceOnPlateau: factor must be", 0.5, 0),
    "ReduceOnPlateau min_lr": (lambda v: schedules.ReduceOnPlateau(0.1, min_lr=v),
                               "ReduceOnPlateau: min_lr must be", 0, -1),
    "ReduceOnPlateau threshold": (lambda v: schedules.ReduceOnPlateau(0.1, threshold=v),
                                  "ReduceOnPlateau: threshold must be", 0, -1),
    "EarlyStopping min_delta": (lambda v: EarlyStopping(min_delta=v),
                                "EarlyStopping: min_delta must be", 1, -1),
    "HealthMonitor max_update_ratio": (lambda v: HealthMonitor(max_update_ratio=v),
                                       "HealthMonitor: max_update_ratio must be", 1, 0),
    "HealthMonitor vanish": (lambda v: HealthMonitor(vanish=v), "HealthMonitor: vanish must be", 1, 0),
    "HealthMonitor explode": (lambda v: HealthMonitor(explode=v), "HealthMonitor: explode must be", 100, -1),
    "HealthMonitor dead_fraction": (lambda v: HealthMonitor(dead_fraction=v),
                                    "HealthMonitor: dead_fraction must be", 0, 1),
    "Dropout rate": (lambda v: L.Dropout(v, name="d"),
                     "d: rate (the probability of dropping a value) must be", 0, 1),
    "SpatialDropout2D rate": (lambda v: L.SpatialDropout2D(v, name="sd"),
                              "sd: rate (the probability of dropping a value) must be", 0, -0.5),
    "BatchNorm momentum": (lambda v: L.BatchNorm(momentum=v, name="bn"), "bn: momentum must be", 1, 1.5),
    "BatchNorm keras_momentum": (lambda v: L.BatchNorm(keras_momentum=v, name="bn"),
                                 "bn: keras_momentum must be", 0, -0.1),
    "BatchNorm eps": (lambda v: L.BatchNorm(eps=v, name="bn"), "bn: eps must be", 1, 0),
    "CrossEntropy label_smoothing": (lambda v: CrossEntropy(label_smoothing=v),
                                     "cross_entropy: label_smoothing must be", 0, 1.5),
    "fit validation_split": (lambda v: fit_tiny(validation_split=v), "m: validation_split must be", 0, 1),
    "RandomFlip p": (lambda v: augment.RandomFlip(p=v), "RandomFlip: p must be", 1, 1.5),
    "RandomGrayscale p": (lambda v: augment.RandomGrayscale(p=v), "RandomGrayscale: p must be", 0, -0.5),
    "Cutout p": (lambda v: augment.Cutout(2, p=v), "Cutout: p must be", 1, 2),
    "Cutout fill": (lambda v: augment.Cutout(2, fill=v), "Cutout: fill must be", -1, math.inf),
    "RandomCrop fill": (lambda v: augment.RandomCrop(4, fill=v), "RandomCrop: fill must be", 1, -math.inf),
    "RandomShift fill": (lambda v: augment.RandomShift(2, fill=v), "RandomShift: fill must be", 1, math.inf),
    "RandomRotation degrees": (lambda v: augment.RandomRotation(v),
                               "RandomRotation: degrees must be", 10, 181),
    "RandomRotation fill": (lambda v: augment.RandomRotation(fill=v), "RandomRotation: fill must be", 0,
                            math.inf),
    "RandomResizedCrop scale": (lambda v: augment.RandomResizedCrop(4, scale=(v, 1)),
                                "RandomResizedCrop: scale[0] must be", 0.5, 0),
    "RandomResizedCrop scale max": (lambda v: augment.RandomResizedCrop(4, scale=(0.5, v)),
                                    "RandomResizedCrop: scale[1] must be", 1, 0.4),
    "RandomResizedCrop ratio": (lambda v: augment.RandomResizedCrop(4, ratio=(v, 2)),
                                "RandomResizedCrop: ratio[0] must be", 1, -1),
    "ColorJitter brightness": (lambda v: augment.ColorJitter(brightness=v), "ColorJitter: brightness must be",
                               1, -0.1),
    "ColorJitter contrast": (lambda v: augment.ColorJitter(contrast=v),
                             "ColorJitter: contrast must be", 0, -1),
    "ColorJitter saturation": (lambda v: augment.ColorJitter(saturation=v), "ColorJitter: saturation must be",
                               2, -1),
    "ColorJitter hue": (lambda v: augment.ColorJitter(hue=v), "ColorJitter: hue must be", 0, 0.6),
    "ColorJitter value_range low": (lambda v: augment.ColorJitter(value_range=(v, 1)),
                                    "ColorJitter: value_range[0] must be", -1, math.inf),
    "ColorJitter value_range high": (lambda v: augment.ColorJitter(value_range=(0, v)),
                                     "ColorJitter: value_range[1] must be", 255, 0),   # not above the low end
    "Mixup alpha": (lambda v: augment.Mixup(alpha=v), "Mixup: alpha must be", 1, 0),
    "CutMix alpha": (lambda v: augment.CutMix(alpha=v), "CutMix: alpha must be", 2, -1),
    "make_patterns noise": (lambda v: make_patterns(2, image_size=8, noise=v), "make_patterns: noise must be",
                            0, -0.1),
    "style_transfer lr": (with_tiny_cnn(style_transfer, "lr"), "style_transfer: lr must be", 1, 0),
    "style_transfer content_weight": (with_tiny_cnn(style_transfer, "content_weight"),
                                      "style_transfer: content_weight must be", 1, -1),
    "style_transfer tv_weight": (with_tiny_cnn(style_transfer, "tv_weight"),
                                 "style_transfer: tv_weight must be", 0, -1),
    "feature_inversion lr": (with_tiny_cnn(feature_inversion, "lr"), "feature_inversion: lr must be", 1, 0),
    "feature_inversion tv_weight": (with_tiny_cnn(feature_inversion, "tv_weight"),
                                    "feature_inversion: tv_weight must be", 0, -1),
    "feature_inversion l2_weight": (with_tiny_cnn(feature_inversion, "l2_weight"),
                                    "feature_inversion: l2_weight must be", 1, -1),
    "deep_dream lr": (with_tiny_cnn(deep_dream, "lr"), "deep_dream: lr must be", 1, -1),
    "class_model lr": (with_tiny_cnn(class_model, "lr"), "class_model: lr must be", 1, 0),
    "class_model l2_weight": (with_tiny_cnn(class_model, "l2_weight"),
                              "class_model: l2_weight must be", 0, -1),
    "saliency noise": (with_tiny_cnn(saliency, "noise", method="smoothgrad", samples=1),
                       "saliency: noise must be", 0, -0.1),
}
NONE_IS_AN_ANSWER = {"SGD clipnorm", "BatchNorm momentum", "BatchNorm keras_momentum"}  # None: the default


@pytest.mark.parametrize("name", OPTIONS)
def test_wrong_types_are_type_errors_and_nan_or_out_of_range_value_errors(name):
    call, start, valid, out_of_range = OPTIONS[name]
    wrong_types = ("0.1", True, np.bool_(False)) + (() if name in NONE_IS_AN_ANSWER else (None,))
    for wrong_type in wrong_types:
        with pytest.raises(TypeError, match=f"^{re.escape(start)} .*got {re.escape(repr(wrong_type))}$"):
            call(wrong_type)
    for wrong_value in (float("nan"), out_of_range):
        with pytest.raises(ValueError, match=f"^{re.escape(start)} .*got {re.escape(str(wrong_value))}"):
            call(wrong_value)
    call(np.float32(valid))   # a NumPy number (read from an array, a sweep) is a number
    if float(valid).is_integer():
        call(np.int64(valid))


def test_color_jitter_value_range_is_a_pair_or_none():
    assert augment.ColorJitter(value_range=[0, 255]).value_range == (0.0, 255.0)
    assert augment.ColorJitter(value_range=None).value_range is None
    for not_a_pair in ((0,), (0, 1, 2), "01", 1.0):
        with pytest.raises(TypeError, match=r"^ColorJitter: value_range must be a pair \(low, high\) or"):
            augment.ColorJitter(value_range=not_a_pair)


def test_check_real_by_hand():
    assert check_real(np.float32(0.5), "p", "f", least=0, most=1) == 0.5
    assert type(check_real(np.int64(3), "x", "f")) is float
    assert check_real(0, "rate", "f", least=0, below=1) == 0.0
    assert check_real(1, "p", "f", least=0, most=1) == 1.0
    with pytest.raises(ValueError, match=r"^f: rate must be a number in \[0, 1\), got 1$"):
        check_real(1, "rate", "f", least=0, below=1)                  # the open end is refused
    with pytest.raises(ValueError, match=r"^f: x must be a number in \(0, 1\], got 0$"):
        check_real(0, "x", "f", above=0, most=1)
    with pytest.raises(ValueError, match=r"^f: lr must be a finite number > 0, got 0 \(too low\)$"):
        check_real(0, "lr", "f", above=0, why_low="too low", why_high="too high")
    with pytest.raises(ValueError, match=r"^f: lr must be a finite number > 0, got inf$"):  # not 'too low'
        check_real(math.inf, "lr", "f", above=0, why_low="too low")
    with pytest.raises(ValueError, match=r"^f: momentum must be a number in \[0, 1\), got -0.1$"):
        check_real(-0.1, "momentum", "f", least=0, below=1, why_high="it diverges at 1")   # the low end
    with pytest.raises(ValueError, match=r"^f: x must be a finite number, got -inf$"):
        check_real(-math.inf, "x", "f")
    with pytest.raises(TypeError, match=r"^f: eps must be a finite number > 0, got '1e-8'$"):
        check_real("1e-8", "eps", "f", above=0, why_low="not for a wrong type")
    with pytest.raises(TypeError, match=rf"^f: x must be a finite number, got {re.escape(repr(np.True_))}$"):
        check_real(np.bool_(True), "x", "f")
    with pytest.raises(TypeError, match=r"^f: x must be a finite number, got array\(0.5\)$"):
        check_real(np.array(0.5), "x", "f")                           # an array, even of one value
    assert [real_bounds_text(least=0), real_bounds_text(most=1), real_bounds_text(below=2)] == [
        "a finite number >= 0", "a finite number <= 1", "a finite number < 2"]


def test_the_checked_value_is_kept_as_a_python_float():
    """Pickled attributes keep their names and hold floats, whatever number type came in."""
    sgd = SGD(lr=np.float32(0.5), momentum=np.float64(0.25), clipnorm=np.int64(2))
    assert (sgd.momentum, sgd.clipnorm, sgd.lr) == (0.25, 2.0, 0.5)
    assert all(type(value) is float for value in (sgd.momentum, sgd.clipnorm, sgd.weight_decay, sgd.lr))
    monitor = HealthMonitor(vanish=np.float32(0.5), explode=np.int64(10))
    assert (monitor.vanish, monitor.explode) == (0.5, 10.0) and type(monitor.explode) is float
    assert ModelCheckpoint("x.sn").min_delta == 0.0
    assert augment.RandomResizedCrop(4, scale=(np.float32(0.5), 1)).scale == (0.5, 1.0)
    with pytest.raises(TypeError, match=r"^RandomResizedCrop: scale must be a pair \(min, max\), got 0.5$"):
        augment.RandomResizedCrop(4, scale=0.5)


def test_inf_switches_a_health_check_off_and_is_refused_elsewhere():
    """HealthMonitor's max_update_ratio and explode are thresholds: inf (nothing is above it) turns
    that warning off, as before check_real; a rate or an lr of inf stays an error."""
    monitor = HealthMonitor(max_update_ratio=np.inf, explode=math.inf)
    assert monitor.max_update_ratio == monitor.explode == math.inf
    with pytest.raises(ValueError, match=r"^HealthMonitor: explode must be a number > 0 or inf, got nan$"):
        HealthMonitor(explode=math.nan)
    with pytest.raises(ValueError, match=r"^HealthMonitor: vanish must be a finite number > 0, got inf$"):
        HealthMonitor(vanish=math.inf)
    with pytest.raises(ValueError, match=r"^f: t must be a number > 0 or inf, got -inf$"):
        check_real(-math.inf, "t", "f", above=0, allow_inf=True)
    assert check_real(math.inf, "t", "f", above=0, allow_inf=True) == math.inf
