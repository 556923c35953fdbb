"""leaky_relu, elu and selu without np.where (layers/activations.py) against their definitions
written with np.where, bit for bit: the same values, the same sign of every zero, NaN where the
definition gives NaN, on inf, NaN, subnormals and random bit patterns, float32 and float64."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scratchnet.layers import Activation
from scratchnet.layers.activations import (
    SELU_ALPHA,
    SELU_SCALE,
    choose,
    elu,
    elu_backward,
    leaky_relu,
    leaky_relu_backward,
    selu,
    selu_backward,
)


# ------------------------------------------------------------------ the definitions (np.where)
def leaky_relu_definition(x, slope=0.01):
    return np.where(x > 0, x, slope * x)


def leaky_relu_backward_definition(x, y, dy, slope=0.01):
    return dy * np.where(x > 0, 1, slope).astype(dy.dtype)


def elu_definition(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def elu_backward_definition(x, y, dy, alpha=1.0):
    return dy * np.where(x > 0, 1.0, y + alpha)


def selu_definition(x):
    return SELU_SCALE * elu_definition(x, SELU_ALPHA)


def selu_backward_definition(x, y, dy):
    return dy * np.where(x > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA)


PAIRS = {  # name: (new forward, new backward, definition forward, definition backward)
    "leaky_relu": (leaky_relu, leaky_relu_backward, leaky_relu_definition, leaky_relu_backward_definition),
    "elu": (elu, elu_backward, elu_definition, elu_backward_definition),
    "selu": (selu, selu_backward, selu_definition, selu_backward_definition),
}

SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 1e-30, -1e-30, 1e-8, -1e-8, 88.7, 89.0,
           -88.7, -104.0, 710.0, -710.0, 1e38, -1e38, 3e38, -3e38]


def assert_bitwise_equal(actual, expected):
    """Same dtype, same shape, equal values with the same sign (so -0 != +0), NaN where NaN."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan)
    same = (actual == expected) & (np.signbit(actual) == np.signbit(expected))
    assert same[~nan].all(), (actual[~nan][~same[~nan]][:5], expected[~nan][~same[~nan]][:5])


def special_and_random_inputs(dtype, seed=0):
    """SPECIAL, the smallest subnormals, normal numbers of several scales and random bit patterns
    (every exponent: subnormals, huge numbers, infs and NaNs with any payload)."""
    rng = np.random.default_rng(seed)
    tiny = np.finfo(dtype).smallest_subnormal
    with np.errstate(over="ignore"):
        special = np.array(SPECIAL + [tiny, -tiny, 3 * tiny, -3 * tiny], dtype=dtype)
    normal = np.concatenate([scale * rng.standard_normal(5000) for scale in (1e-3, 1.0, 10.0, 100.0)])
    unsigned = np.uint32 if dtype == np.float32 else np.uint64
    bits = rng.integers(0, np.iinfo(unsigned).max, size=20000, dtype=unsigned, endpoint=True).view(dtype)
    x = np.concatenate([special, normal.astype(dtype), bits])
    dy = rng.standard_normal(x.shape).astype(dtype)
    dy[:len(special)] = special[::-1]  # infs and NaNs in dy too
    return x, dy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(PAIRS))
def test_fast_activation_equals_its_np_where_definition_bit_for_bit(name, dtype):
    forward, backward, forward_definition, backward_definition = PAIRS[name]
    x, dy = special_and_random_inputs(dtype)
    with np.errstate(all="ignore"):  # inf - inf, 0 * inf on the random bit patterns, as in the definition
        y = forward_definition(x)
        assert_bitwise_equal(forward(x), y)
        assert_bitwise_equal(backward(x, y, dy), backward_definition(x, y, dy))


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=32)


@given(x=arrays(np.float32, st.integers(1, 40), elements=finite_or_not),
       dy=st.floats(-10, 10, width=32), name=st.sampled_from(list(PAIRS)))
def test_fast_activations_equal_their_definitions_on_any_float32(x, dy, name):
    forward, backward, forward_definition, backward_definition = PAIRS[name]
    dy = np.full(x.shape, dy, dtype=np.float32)
    with np.errstate(all="ignore"):
        y = forward_definition(x)
        assert_bitwise_equal(forward(x), y)
        assert_bitwise_equal(backward(x, y, dy), backward_definition(x, y, dy))


@pytest.mark.parametrize("slope", [0.01, 0.2, 1.0, 1e-30, 0.0, -0.3, 1.5, 3.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_leaky_relu_equals_its_definition_for_any_slope(slope, dtype):
    # 0 < slope <= 1 takes max(x, slope * x); any other slope (0: 0 * inf is NaN) the definition
    x, dy = special_and_random_inputs(dtype, seed=1)
    with np.errstate(all="ignore"):
        assert_bitwise_equal(leaky_relu(x, slope), leaky_relu_definition(x, slope))
        assert_bitwise_equal(leaky_relu_backward(x, None, dy, slope),
                             leaky_relu_backward_definition(x, None, dy, slope))


@pytest.mark.parametrize("alpha", [0.51, 0.7, 1.0, 2.0, 0.5, 0.3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elu_equals_its_definition_for_any_alpha(alpha, dtype):
    x, dy = special_and_random_inputs(dtype, seed=2)
    with np.errstate(all="ignore"):
        y = elu_definition(x, alpha)
        assert_bitwise_equal(elu_backward(x, y, dy, alpha), elu_backward_definition(x, y, dy, alpha))
        fast = elu(x, alpha)
    if alpha > 0.5:
        assert_bitwise_equal(fast, y)
    else:  # documented: alpha * x underflowing to -0 comes back as +0, an equal number
        np.testing.assert_array_equal(fast, y)
        tiny = np.finfo(dtype).smallest_subnormal
        assert elu(np.array([-tiny], dtype), alpha)[0] == 0
        assert not np.signbit(elu(np.array([-tiny], dtype), alpha)[0])


def test_elu_and_selu_by_hand():
    # elu(-1) = e^-1 - 1, elu'(-1) = e^-1 = y + 1; elu(2) = 2, elu'(2) = 1
    x = np.array([-1.0, 2.0, 0.0])
    y = elu(x)
    np.testing.assert_allclose(y, [np.exp(-1) - 1, 2.0, 0.0], rtol=1e-15)
    np.testing.assert_allclose(elu_backward(x, y, np.array([3.0, 3.0, 3.0])), [3 * np.exp(-1), 3.0, 3.0],
                               rtol=1e-15)
    # selu'(x) = scale for x > 0, scale alpha e^x otherwise (x = 0: scale alpha)
    np.testing.assert_allclose(selu_backward(x, selu(x), np.ones(3)),
                               [SELU_SCALE * SELU_ALPHA * np.exp(-1), SELU_SCALE, SELU_SCALE * SELU_ALPHA],
                               rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_choose_equals_np_where_on_finite_numbers(dtype):
    rng = np.random.default_rng(3)
    condition = rng.standard_normal((64, 7)) > 0
    if_true, if_false = rng.standard_normal((2, 64, 7)).astype(dtype)
    if_false[0, 0] = 0.0
    for a, b in [(if_true, if_false), (1.0, if_false), (if_true, 0.01), (1.0, 0.01)]:
        chosen = choose(condition, a, b, dtype)
        assert chosen.dtype == dtype
        assert_bitwise_equal(chosen, np.where(condition, a, b).astype(dtype))


@pytest.mark.parametrize("name", list(PAIRS))
def test_activation_layer_keeps_float32(name):
    layer = Activation(name)
    layer.build((5,), dtype="float32")
    x = np.linspace(-3, 3, 20, dtype=np.float32).reshape(4, 5)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    assert_bitwise_equal(y, PAIRS[name][2](x).astype(np.float32))
