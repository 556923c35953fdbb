"""One rule for every whole-number option (option_checks.check_count, layers.spatial.as_pair):
a value of the wrong TYPE (a float, a string, None, a bool) is a TypeError, a whole number out of
range a ValueError, both with one message naming the owner and the option; NumPy integers pass."""

import re

import numpy as np
import pytest

from scratchnet import Sequential, augment, schedules
from scratchnet import layers as L
from scratchnet.blas_threads import blas_threads, set_blas_threads
from scratchnet.callbacks import EarlyStopping
from scratchnet.datasets import make_patterns
from scratchnet.health import HealthMonitor
from scratchnet.kernels.chunk_workers import kernel_workers, set_kernel_workers
from scratchnet.models import lenet5, resnet
from scratchnet.models.blocks import dense_block
from scratchnet.option_checks import check_count
from scratchnet.receptive import compare_conv_cost

# what a whole-valued float (2.0) gets after the message: how to make it an int
FLOAT_HINT = r" \(a float: pass int\(\.\.\.\), or compute it with //\)$"


def fit_tiny(**options):
    """fit a 3 -> 2 Dense model on 4 samples with ``options`` (batch_size, epochs)."""
    model = Sequential([L.Dense(2)], input_shape=(3,), name="m")
    model.compile(optimizer="sgd", loss="cross_entropy")
    return model.fit(np.zeros((4, 3)), np.array([0, 1, 0, 1]), verbose=0, **options)


# (what is called with the value, the message's start, a valid value, a value out of range)
OPTIONS = {
    "make_patterns n": (lambda n: make_patterns(n, image_size=8), "make_patterns: n must be", 2, -1),
    "make_patterns image_size": (lambda size: make_patterns(2, image_size=size),
                                 "make_patterns: image_size must be", 8, 7),
    "make_patterns n_classes": (lambda k: make_patterns(2, image_size=8, n_classes=k),
                                "make_patterns: n_classes must be", 3, 6),
    "Conv2D filters": (lambda v: L.Conv2D(v, 3, name="c"), "c: filters must be", 2, 0),
    "Conv2D groups": (lambda v: L.Conv2D(4, 3, groups=v, name="c"), "c: groups must be", 2, 0),
    "Conv2D kernel_size": (lambda v: L.Conv2D(2, v, name="c"), "c: kernel_size must be", 3, 0),
    "Conv2D stride": (lambda v: L.Conv2D(2, 3, stride=v, name="c"), "c: stride must be", 2, 0),
    "MaxPool2D pool_size": (lambda v: L.MaxPool2D(v, name="p"), "p: pool_size must be", 2, 0),
    "UpSampling2D size": (lambda v: L.UpSampling2D(v, name="u"), "u: size must be", 2, 0),
    "Dense units": (lambda v: L.Dense(v, name="d"), "d: units must be", 3, 0),
    "ChannelShuffle groups": (lambda v: L.ChannelShuffle(v, name="s"), "s: groups must be", 2, 0),
    "DepthwiseConv2D depth_multiplier": (lambda v: L.DepthwiseConv2D(3, depth_multiplier=v, name="dw"),
                                         "dw: depth_multiplier must be", 2, 0),
    "SeparableConv2D filters": (lambda v: L.SeparableConv2D(v, 3, name="sep"), "sep: filters must be", 2, 0),
    "Concatenate axis": (lambda v: L.Concatenate(axis=v, name="cat"), "cat: axis must be", -1, 0),
    "Mixup num_classes": (lambda v: augment.Mixup(num_classes=v), "Mixup: num_classes must be", 3, 0),
    "CutMix num_classes": (lambda v: augment.CutMix(num_classes=v), "CutMix: num_classes must be", 3, 0),
    "RandomCrop size": (lambda v: augment.RandomCrop(v), "RandomCrop: size must be", 4, 0),
    "RandomCrop padding": (lambda v: augment.RandomCrop(4, padding=v), "RandomCrop: padding must be", 2, -1),
    "RandomShift max_shift": (lambda v: augment.RandomShift(v), "RandomShift: max_shift must be", 2, -1),
    "Cutout size": (lambda v: augment.Cutout(v), "Cutout: size must be", 2, 0),
    "StepDecay every": (lambda v: schedules.StepDecay(0.1, every=v), "StepDecay: every must be", 2, 0),
    "ExponentialDecay decay_steps": (lambda v: schedules.ExponentialDecay(0.1, 0.5, decay_steps=v),
                                     "ExponentialDecay: decay_steps must be", 2, 0),
    "CosineDecay total_steps": (lambda v: schedules.CosineDecay(0.1, v),
                                "CosineDecay: total_steps must be", 5, 0),
    "CosineAnnealing T_max": (lambda v: schedules.CosineAnnealing(0.1, v),
                              "CosineAnnealing: T_max must be", 5, 0),
    "LinearWarmup warmup_steps": (lambda v: schedules.LinearWarmup(0.1, v),
                                  "LinearWarmup: warmup_steps must be", 5, 0),
    "OneCycle total_steps": (lambda v: schedules.OneCycle(0.1, v), "OneCycle: total_steps must be", 10, 0),
    "ReduceOnPlateau patience": (lambda v: schedules.ReduceOnPlateau(0.1, patience=v),
                                 "ReduceOnPlateau: patience must be", 2, -1),
    "ReduceOnPlateau cooldown": (lambda v: schedules.ReduceOnPlateau(0.1, cooldown=v),
                                 "ReduceOnPlateau: cooldown must be", 2, -1),
    "a schedule's step": (lambda v: schedules.CosineDecay(0.1, 5)(v),
                          "CosineDecay: the step/epoch must be", 3, -1),
    "EarlyStopping patience": (lambda v: EarlyStopping(patience=v), "EarlyStopping: patience must be", 2, -1),
    "HealthMonitor every": (lambda v: HealthMonitor(every=v), "HealthMonitor: every must be", 2, 0),
    "HealthMonitor bins": (lambda v: HealthMonitor(bins=v), "HealthMonitor: bins must be", 2, 0),
    "fit batch_size": (lambda v: fit_tiny(batch_size=v), "m: batch_size must be", 2, 0),
    "fit epochs": (lambda v: fit_tiny(epochs=v), "m: epochs must be", 1, -1),
    "lenet5 n_classes": (lambda v: lenet5(n_classes=v), "lenet5: n_classes must be", 3, 0),
    "resnet depth": (lambda v: resnet(v, width=2), "resnet: depth must be", 8, 9),
    "resnet width": (lambda v: resnet(8, width=v), "resnet: width must be", 2, 0),
    "dense_block n_layers": (lambda v: dense_block(v, 2), "dense_block: n_layers must be", 2, 0),
    "compare_conv_cost filters": (lambda v: compare_conv_cost((8, 8, 3), v, 3),
                                  "compare_conv_cost: filters must be", 2, 0),
    "set_kernel_workers n": (lambda v: set_kernel_workers(v), "set_kernel_workers: n must be", 1, 0),
    "set_blas_threads n": (lambda v: set_blas_threads(v), "set_blas_threads: n must be", None, 0),
}
NONE_IS_AN_ANSWER = {"Mixup num_classes", "CutMix num_classes"}  # None: the labels come as rows


@pytest.mark.parametrize("name", OPTIONS)
def test_wrong_types_are_type_errors_and_out_of_range_value_errors(name):
    call, start, valid, out_of_range = OPTIONS[name]
    for wrong_type in (2.5, "3", True) if name in NONE_IS_AN_ANSWER else (2.5, "3", None, True):
        with pytest.raises(TypeError, match=f"^{re.escape(start)} .*got {re.escape(repr(wrong_type))}$"):
            call(wrong_type)
    with pytest.raises(ValueError, match=f"^{re.escape(start)} .*got {out_of_range}$"):
        call(out_of_range)
    if valid is None:  # the BLAS thread count: set it to what it is, so nothing changes
        counts = set(blas_threads().values())
        valid = counts.pop() if len(counts) == 1 else None
    if valid is not None:
        call(np.int64(valid))  # a NumPy integer (read from an array, a sweep) is a whole number
    assert kernel_workers() == 1


def test_check_count_by_hand():
    assert check_count(np.int32(3), "n", "f", 1) == 3 and type(check_count(np.int32(3), "n", "f", 1)) is int
    assert check_count(5, "k", "f", 2, most=5) == 5
    with pytest.raises(ValueError, match=r"^f: k must be an int from 2 to 5, got 6$"):
        check_count(6, "k", "f", 2, most=5)
    with pytest.raises(TypeError, match=r"^f: n must be an int >= 0, got 1.0" + FLOAT_HINT):
        check_count(1.0, "n", "f", 0)
    with pytest.raises(TypeError, match=r"^f: n must be an int >= 0, got False$"):
        check_count(False, "n", "f", 0)
    two = re.escape(repr(np.float64(2.0)))  # np.float64(2.0) on NumPy 2, 2.0 on NumPy 1
    with pytest.raises(TypeError, match=rf"^f: n must be an int >= 0, got {two}" + FLOAT_HINT):
        check_count(np.float64(2.0), "n", "f", 0)


@pytest.mark.parametrize("wrong", [(28.5, 28, 1), ("28", 28, 1), "28", (28, None, 1), (28, True, 1)])
def test_a_sample_shape_of_other_than_ints_is_a_type_error(wrong):
    """One shape check for Layer.build and Sequential(input_shape=...): 28.5 was truncated to 28,
    "28" became (2, 8); now both refuse them with one message naming the layer or model."""
    message = (r"input_shape must be a tuple of ints for one sample \(no batch axis\), e.g. \(28, 28, 1\), "
               r"got ")
    with pytest.raises(TypeError, match=f"^dense: {message}"):
        L.Dense(2).build(wrong)
    with pytest.raises(TypeError, match=f"^sequential: {message}"):
        Sequential([L.Flatten(), L.Dense(2)], input_shape=wrong)
    with pytest.raises(ValueError, match=r"^sequential: every size in input_shape must be >= 1, "
                                         r"got \(28, 0, 1\)$"):
        Sequential([L.Flatten(), L.Dense(2)], input_shape=(28, 0, 1))
    assert Sequential([L.Dense(2)], input_shape=np.int64(3)).input_shape == (3,)   # an int: one axis
    assert L.Dense(2).build(np.array([3])) == (2,)
    with pytest.raises(TypeError, match=f"^dense: {message}3$"):
        L.Dense(2).build(3)                                      # a layer takes a shape, not an int


def test_a_whole_valued_float_is_refused_with_how_to_make_it_an_int():
    """2.0 and np.float64(3) (a size computed with / or read as a float) are refused like 2.5, with
    a hint; a float that is not whole gets no hint."""
    hint = FLOAT_HINT
    with pytest.raises(TypeError, match=r"^sequential: batch_size must be an int >= 1, got 64\.0" + hint):
        check_count(64.0, "batch_size", "sequential", 1)
    with pytest.raises(TypeError, match=rf"got {re.escape(repr(np.float64(3.0)))}" + hint):
        check_count(np.float64(3.0), "n", "make_patterns", 0)
    with pytest.raises(TypeError, match=r"got 2\.5$"):
        check_count(2.5, "n", "make_patterns", 0)
    with pytest.raises(TypeError, match=r"^conv2d: kernel_size must be .*, got \(3, 3\.0\)" + hint):
        L.Conv2D(4, (3, 3.0), name="conv2d")
    with pytest.raises(TypeError, match=r"input_shape must be a tuple of ints .* got \(28\.0, 28, 1\)"
                                        + FLOAT_HINT):
        Sequential([L.Flatten()], input_shape=(28.0, 28, 1))
