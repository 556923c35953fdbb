"""The fast forms of the element-wise layers against plain NumPy references, in float64.

BatchNorm's forward and backward are rebuilt from the input x (cached) in the memory of the
output, on the "wide" views of ``wide_rows``; these tests compare them with the textbook
formulas written with (M, C) broadcasts, on shapes where the fold k is 1, a power of two, and
where M is odd or C does not divide the wide row.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet.layers import Activation, Add, BatchNorm, Dense
from scratchnet.layers.activations import relu
from scratchnet.layers.normalization import column_dots
from scratchnet.layers.wide_rows import WIDE_ROW_VALUES, wide_rows

# (M, C): M odd (k = 1), M a power of two (k large), C not dividing the wide row, C > the row
ROW_SHAPES = [(7, 3), (64, 16), (96, 6), (6, 5), (2048, 3), (8, WIDE_ROW_VALUES + 1), (1, 4)]


# ------------------------------------------------------------------ wide_rows, column_dots
@pytest.mark.parametrize("count, channels", ROW_SHAPES)
def test_wide_rows_times_tiled_vector_equals_the_broadcast(count, channels):
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((count, channels))
    vector, other = rng.standard_normal(channels), rng.standard_normal(channels)
    wide, (tiled, tiled_other) = wide_rows(rows, vector, other)
    assert wide.shape[0] * wide.shape[1] == count * channels and wide.shape[1] % channels == 0
    assert wide.shape[1] <= max(WIDE_ROW_VALUES, channels) and tiled.shape == (wide.shape[1],)
    wide_result = wide * tiled + tiled_other
    np.testing.assert_array_equal(wide_result.reshape(count, channels), rows * vector + other)
    assert np.shares_memory(wide, rows)  # a view: writing into it writes into rows


def test_wide_rows_folds_by_a_power_of_two_that_divides_m():
    wide, _ = wide_rows(np.zeros((64 * 32 * 32, 16)))
    assert wide.shape == (64 * 32 * 32 * 16 // WIDE_ROW_VALUES, WIDE_ROW_VALUES)
    wide, _ = wide_rows(np.zeros((3 * 12, 6)))   # M = 36 = 4 * 9: k = 4
    assert wide.shape == (9, 24)


@given(count=st.integers(1, 300), channels=st.integers(1, 9), seed=st.integers(0, 99))
def test_column_dots_equal_numpy(count, channels, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((2, count, channels))
    np.testing.assert_allclose(column_dots(a, b), (a * b).sum(axis=0), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ BatchNorm vs the textbook
def reference_batchnorm(x, dy, gamma, beta, eps):
    """The module docstring's formulas with plain (M, C) broadcasts: y, dx, dgamma, dbeta."""
    rows, d_rows = x.reshape(-1, x.shape[-1]), dy.reshape(-1, x.shape[-1])
    count = rows.shape[0]
    mean = rows.mean(axis=0)
    var = ((rows - mean) ** 2).mean(axis=0)
    xhat = (rows - mean) / np.sqrt(var + eps)
    y = gamma * xhat + beta
    dx = gamma / (count * np.sqrt(var + eps)) * (
        count * d_rows - d_rows.sum(axis=0) - xhat * (d_rows * xhat).sum(axis=0))
    return y.reshape(x.shape), dx.reshape(x.shape), (d_rows * xhat).sum(axis=0), d_rows.sum(axis=0)


BATCHNORM_SHAPES = [(64, 4, 4, 16), (3, 5, 7, 6), (2, 3, 3, 5), (8, 2, 2, 3), (5, 6), (64, 40)]


@pytest.mark.parametrize("shape", BATCHNORM_SHAPES)
def test_batchnorm_training_matches_the_textbook_formulas(shape):
    rng = np.random.default_rng(1)
    x = 3.0 + 2.0 * rng.standard_normal(shape)  # a mean far from 0: x - mu matters
    dy = rng.standard_normal(shape)
    layer = BatchNorm(eps=1e-3)
    layer.build(shape[1:], dtype="float64")
    layer.params["gamma"][...] = rng.uniform(0.5, 2.0, shape[-1])
    layer.params["beta"][...] = rng.standard_normal(shape[-1])
    want_y, want_dx, want_dgamma, want_dbeta = reference_batchnorm(
        x, dy, layer.params["gamma"], layer.params["beta"], 1e-3)
    np.testing.assert_allclose(layer.forward(x, training=True), want_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), want_dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["gamma"], want_dgamma, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["beta"], want_dbeta, rtol=1e-10, atol=1e-12)


@given(batch=st.integers(2, 70), height=st.integers(1, 4), channels=st.integers(1, 40),
       seed=st.integers(0, 99))
def test_batchnorm_matches_the_textbook_for_any_fold(batch, height, channels, seed):
    rng = np.random.default_rng(seed)
    shape = (batch, height, 2, channels)  # M = 2 * batch * height: folds of 1, 2, 4, ... 128
    x, dy = rng.standard_normal(shape) - 2.0, rng.standard_normal(shape)
    layer = BatchNorm()
    layer.build(shape[1:], dtype="float64")
    want_y, want_dx, want_dgamma, _ = reference_batchnorm(x, dy, layer.params["gamma"], layer.params["beta"],
                                                          layer.eps)
    np.testing.assert_allclose(layer.forward(x, training=True), want_y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.backward(dy), want_dx, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(layer.grads["gamma"], want_dgamma, rtol=1e-8, atol=1e-10)


def test_batchnorm_accepts_non_contiguous_input_and_gradient():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5, 4, 8)).transpose(0, 2, 1, 3)   # (6, 4, 5, 8), not C-contiguous
    dy = rng.standard_normal((6, 5, 4, 8)).transpose(0, 2, 1, 3)
    layer = BatchNorm()
    layer.build(x.shape[1:], dtype="float64")
    gamma, beta = layer.params["gamma"], layer.params["beta"]
    want_y, want_dx, _, want_dbeta = reference_batchnorm(np.ascontiguousarray(x), np.ascontiguousarray(dy),
                                                         gamma, beta, layer.eps)
    np.testing.assert_allclose(layer.forward(x, training=True), want_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), want_dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["beta"], want_dbeta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", BATCHNORM_SHAPES)
def test_batchnorm_inference_matches_the_textbook_formulas(shape):
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
    layer = BatchNorm()
    layer.build(shape[1:], dtype="float64")
    gamma, beta = layer.params["gamma"], layer.params["beta"]
    gamma[...], beta[...] = rng.uniform(0.5, 2.0, shape[-1]), rng.standard_normal(shape[-1])
    mean, var = layer.buffers["mean"], layer.buffers["var"]
    mean[...], var[...] = rng.standard_normal(shape[-1]), rng.uniform(0.2, 3.0, shape[-1])
    xhat = (x - mean) / np.sqrt(var + layer.eps)
    np.testing.assert_allclose(layer.forward(x), gamma * xhat + beta, rtol=1e-12, atol=1e-12)
    mean += 1.0  # a training forward elsewhere would move the buffer; backward uses the forward's
    np.testing.assert_allclose(layer.backward(dy), dy * gamma / np.sqrt(var + layer.eps), rtol=1e-12)
    axes = tuple(range(len(shape) - 1))
    np.testing.assert_allclose(layer.grads["gamma"], (dy * xhat).sum(axis=axes), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["beta"], dy.sum(axis=axes), rtol=1e-10, atol=1e-12)


def test_batchnorm_caches_the_input_not_a_new_array():
    """Memory: the cache holds x itself (alive anyway) and (C,) statistics, no (M, C) copy."""
    x = np.random.default_rng(3).standard_normal((4, 3, 3, 8))
    layer = BatchNorm()
    layer.build(x.shape[1:], dtype="float64")
    layer.forward(x, training=True)
    big = [value for value in layer.cache.values() if isinstance(value, np.ndarray) and value.size > 8]
    assert len(big) == 1 and np.shares_memory(big[0], x)


def test_batchnorm_float32_keeps_float32_and_stays_close_to_float64():
    rng = np.random.default_rng(4)
    x, dy = 5.0 + rng.standard_normal((64, 8, 8, 16)), rng.standard_normal((64, 8, 8, 16))
    results = {}
    for dtype in ("float32", "float64"):
        layer = BatchNorm()
        layer.build(x.shape[1:], dtype=dtype)
        y = layer.forward(x.astype(dtype), training=True)
        dx = layer.backward(dy.astype(dtype))
        assert y.dtype == dx.dtype == layer.grads["gamma"].dtype == np.dtype(dtype)
        results[dtype] = (y, dx, layer.grads["gamma"])
    for low, high in zip(results["float32"], results["float64"]):
        np.testing.assert_allclose(low, high, rtol=1e-5, atol=1e-5)  # measured: ~1e-6 absolute, 4e-6 relative


# ------------------------------------------------------------------ ReLU from its output
def test_relu_backward_from_the_output_equals_the_input_mask_with_zero_nan_and_inf():
    x = np.array([[-np.inf, -2.0, -0.0, 0.0, 1e-300, 3.0, np.inf, np.nan]])
    dy = np.arange(1.0, 9.0)[None, :]
    layer = Activation("relu")
    layer.build((8,), dtype="float64")
    with np.errstate(invalid="ignore"):
        y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, [[0, 0, 0, 0, 1e-300, 3, np.inf, np.nan]])
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, dy * (x > 0))  # 0 at x <= 0 and at NaN
    np.testing.assert_array_equal(dx, [[0, 0, 0, 0, 5, 6, 7, 0]])
    assert dx.dtype == np.float64


@pytest.mark.parametrize("activation, keeps_input", [("relu", False), ("sigmoid", False), ("tanh", False),
                                                     ("gelu", True), ("elu", True)])
def test_activation_keeps_its_input_only_if_the_derivative_needs_it(activation, keeps_input):
    layer = Activation(activation)
    layer.build((3,), dtype="float32")
    x = np.ones((2, 3), np.float32)
    layer.forward(x, training=True)
    assert (layer.cache["x"] is not None) == keeps_input and layer.cache["y"] is not None
    dense = Dense(4, activation=activation)
    dense.build((3,), rng=np.random.default_rng(0), dtype="float32")
    dense.forward(x, training=True)
    assert (dense.cache["z"] is not None) == keeps_input
    assert dense.backward(np.ones((2, 4), np.float32)).dtype == np.float32


@pytest.mark.parametrize("shape", [(64, 4, 4, 16), (3, 5, 7), (1, 1), (2, 9, 9, 5), (0, 3), (7,)])
def test_relu_on_wide_rows_equals_np_maximum(shape):
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(relu(x), np.maximum(x, 0))
    assert relu(x).dtype == np.float32 and relu(x).shape == x.shape


# ------------------------------------------------------------------ Add
@pytest.mark.parametrize("count", [1, 2, 3])
def test_add_writes_a_new_array_and_hands_dy_to_every_input(count):
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((2, 3, 3, 4)) for _ in range(count)]
    originals = [x.copy() for x in xs]
    layer = Add()
    layer.build([(3, 3, 4)] * count, dtype="float64")
    y = layer.forward(xs)
    np.testing.assert_allclose(y, sum(originals), rtol=1e-15)
    assert not any(np.shares_memory(y, x) for x in xs)
    assert all(np.array_equal(x, original) for x, original in zip(xs, originals))
    dy = rng.standard_normal(y.shape)
    dxs = layer.backward(dy)
    assert len(dxs) == count and all(np.array_equal(dx, dy) for dx in dxs)
