"""A layer's True/False option takes True or False (or a NumPy bool), nothing else.

Found by a hypothesis state machine (ninth session): ``bool(use_bias)`` turned anything into a
flag: ``Dense(10, "relu", "he_normal")`` (the initializer given by position, where use_bias
sits) became use_bias=True with the initializer silently left at glorot_uniform, and
``Conv2D(8, 3, use_bias="no")`` kept its bias.
"""

import math

import numpy as np
import pytest

from scratchnet import layers as L
from scratchnet.option_checks import check_bool

LAYERS_WITH_USE_BIAS = {
    "Dense": lambda use_bias: L.Dense(4, use_bias=use_bias),
    "Conv2D": lambda use_bias: L.Conv2D(2, 3, use_bias=use_bias),
    "DepthwiseConv2D": lambda use_bias: L.DepthwiseConv2D(3, use_bias=use_bias),
    "SeparableConv2D": lambda use_bias: L.SeparableConv2D(2, 3, use_bias=use_bias),
}
NOT_A_FLAG = ["no", "False", "he_normal", 0, 1, 1.0, -math.inf, math.nan, 1j, (1, 2, 3), [True], None,
              np.array([True]), np.int64(1)]


@pytest.mark.parametrize("kind", list(LAYERS_WITH_USE_BIAS))
@pytest.mark.parametrize("value", NOT_A_FLAG, ids=repr)
def test_use_bias_refuses_anything_but_true_or_false(kind, value):
    name = {"Dense": "dense", "Conv2D": "conv2d", "DepthwiseConv2D": "depthwise_conv2d",
            "SeparableConv2D": "separable_conv2d"}[kind]
    with pytest.raises(TypeError, match=rf"^{name}(_\d+)?: use_bias must be True or False, got "):
        LAYERS_WITH_USE_BIAS[kind](value)


@pytest.mark.parametrize("kind", list(LAYERS_WITH_USE_BIAS))
@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.bool_(False), np.array([False])[0]])
def test_use_bias_takes_python_and_numpy_bools(kind, value):
    layer = LAYERS_WITH_USE_BIAS[kind](value)
    assert layer.use_bias is bool(value)   # a plain bool, whatever came in
    layer.build((6, 6, 2) if kind != "Dense" else (5,), np.random.default_rng(0))
    assert ("b" in layer.params) is bool(value)


def test_an_initializer_given_by_position_is_refused_with_the_way_out():
    # Dense(units, activation, use_bias, kernel_initializer): "he_normal" landed in use_bias
    with pytest.raises(TypeError) as caught:
        L.Dense(10, "relu", "he_normal")
    assert str(caught.value) == ("dense: use_bias must be True or False, got 'he_normal'; a string "
                                 "given by position? pass it by name, e.g. kernel_initializer='he_normal'")
    assert L.Dense(10, "relu", kernel_initializer="he_normal").kernel_initializer == "he_normal"


def test_check_bool_returns_a_python_bool():
    assert check_bool(np.bool_(True), "flag", "owner") is True
    assert check_bool(False, "flag", "owner") is False
    with pytest.raises(TypeError, match=r"^owner: flag must be True or False, got 0$"):
        check_bool(0, "flag", "owner")
