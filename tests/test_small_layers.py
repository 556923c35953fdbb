"""New activations (elu, selu, silu/swish, softplus), ChannelShuffle, ZeroPadding2D, UpSampling2D."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.gradcheck import check_layer
from scratchnet.layers import Activation, ChannelShuffle, Dense, UpSampling2D, ZeroPadding2D
from scratchnet.layers.activations import SELU_ALPHA, SELU_SCALE

NEW_ACTIVATIONS = ["elu", "selu", "silu", "swish", "softplus"]
images = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3))  # N, H, W, C


def forward_backward(layer, x, dy=None, training=False):
    layer.build(x.shape[1:], dtype=x.dtype)
    y = layer.forward(x, training=training)
    return y, layer.backward(np.ones_like(y) if dy is None else dy)


# ================================================================== activations
@pytest.mark.parametrize("name, value, expected", [
    ("elu", -1.0, math.exp(-1) - 1), ("elu", 2.0, 2.0),
    ("selu", 1.0, 1.0507009873554805),
    ("selu", -1.0, 1.0507009873554805 * 1.6732632423543772 * (math.exp(-1) - 1)),
    ("silu", 1.0, 1 / (1 + math.exp(-1))), ("swish", -2.0, -2 / (1 + math.exp(2))),
    ("softplus", 0.0, math.log(2.0)), ("softplus", 1.0, math.log(1 + math.e)),
])
def test_activation_values_by_hand(name, value, expected):
    y, _ = forward_backward(Activation(name), np.array([[value]]))
    assert y[0, 0] == pytest.approx(expected, rel=1e-15, abs=1e-16)


def test_selu_constants():
    assert SELU_ALPHA == 1.6732632423543772 and SELU_SCALE == 1.0507009873554805


def test_softplus_is_stable_for_large_inputs():
    x = np.array([[-1000.0, -40.0, 40.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning
        y, dx = forward_backward(Activation("softplus"), x)
    # softplus(x) = x + log1p(e^-x) for large x; = e^x (to double precision) for very negative x
    np.testing.assert_allclose(y, [[0.0, math.exp(-40.0), 40.0 + math.exp(-40.0), 1000.0]], rtol=1e-15)
    assert y[0, 1] > 0  # log(1 + e^-40) = 4.2e-18, not rounded to 0
    np.testing.assert_allclose(dx, [[0.0, math.exp(-40.0), 1.0, 1.0]], rtol=1e-15)
    y32, _ = forward_backward(Activation("softplus"), x.astype(np.float32))
    assert y32.dtype == np.float32 and np.all(np.isfinite(y32))


def test_elu_has_no_overflow_for_large_positive_inputs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, dx = forward_backward(Activation("elu"), np.array([[1000.0, -1000.0]]))
    np.testing.assert_array_equal(y, [[1000.0, -1.0]])
    np.testing.assert_array_equal(dx, [[1.0, 0.0]])


@given(activation=st.sampled_from(NEW_ACTIVATIONS), units=st.integers(1, 4), seed=st.integers(0, 99))
def test_dense_accepts_the_new_activations(activation, units, seed):
    layer = Dense(units, activation=activation)
    assert check_layer(layer, (3,), seed=seed).passed
    model = sn.Sequential([Dense(4, activation=activation), Activation(activation)], input_shape=(3,))
    assert model.predict(np.ones((2, 3))).dtype == np.float32


def test_swish_is_silu():
    x = np.linspace(-5, 5, 21).reshape(3, 7)
    np.testing.assert_array_equal(forward_backward(Activation("swish"), x)[0],
                                  forward_backward(Activation("silu"), x)[0])


@pytest.mark.torch
@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
def test_activations_match_pytorch(name):
    torch = pytest.importorskip("torch")
    functional = {"elu": torch.nn.functional.elu, "selu": torch.nn.functional.selu,
                  "silu": torch.nn.functional.silu, "swish": torch.nn.functional.silu,
                  "softplus": lambda t: torch.nn.functional.softplus(t, threshold=1000.0)}[name]
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 3, 200), [-60.0, -20.0, -1e-3, 1e-3, 20.0, 60.0]]).reshape(2, -1)
    dy = rng.standard_normal(x.shape)
    y, dx = forward_backward(Activation(name), x, dy)
    x_t = torch.from_numpy(x).requires_grad_(True)
    y_t = functional(x_t)
    y_t.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=1e-12, atol=1e-15)


# ================================================================== ChannelShuffle
def test_channel_shuffle_by_hand():
    x = np.arange(6.0).reshape(1, 6)
    y, _ = forward_backward(ChannelShuffle(2), x)
    np.testing.assert_array_equal(y, [[0, 3, 1, 4, 2, 5]])
    y, _ = forward_backward(ChannelShuffle(3), x)
    np.testing.assert_array_equal(y, [[0, 2, 4, 1, 3, 5]])  # groups [0 1][2 3][4 5] interleaved
    layer = ChannelShuffle(2)
    layer.build((6,), dtype="float64")
    layer.forward(x)
    # backward is the inverse permutation: dy at output position k goes to input channel order[k]
    np.testing.assert_array_equal(layer.backward(np.array([[0.0, 3, 1, 4, 2, 5]])), [[0, 1, 2, 3, 4, 5]])


@given(shape=images, groups=st.integers(1, 4), training=st.booleans(), seed=st.integers(0, 99))
def test_channel_shuffle_gradcheck_and_inverse(shape, groups, training, seed):
    n, height, width, per_group = shape
    sample = (height, width, groups * per_group)
    assert check_layer(ChannelShuffle(groups), sample, seed=seed, batch_size=n, training=training).passed
    x = np.random.default_rng(seed).standard_normal((n, *sample))
    layer = ChannelShuffle(groups)
    layer.build(sample, dtype="float64")
    y = layer.forward(x)
    np.testing.assert_array_equal(np.sort(y, axis=-1), np.sort(x, axis=-1))  # a permutation of channels
    np.testing.assert_array_equal(layer.backward(y), x)  # P^T P x = x


@pytest.mark.torch
@pytest.mark.parametrize("channels, groups", [(6, 2), (12, 3), (12, 4), (5, 5)])
def test_channel_shuffle_matches_pytorch(channels, groups):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, channels))
    y, _ = forward_backward(ChannelShuffle(groups), x)
    expected = torch.nn.ChannelShuffle(groups)(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_array_equal(y, expected.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("groups, error, message", [
    (0, ValueError, "channel_shuffle: groups must be an int >= 1, got 0"),
    (2.0, TypeError, "channel_shuffle: groups must be an int >= 1, got 2.0"),
    (True, TypeError, "channel_shuffle: groups must be an int >= 1, got True"),
])
def test_channel_shuffle_bad_groups(groups, error, message):
    with pytest.raises(error) as raised:
        ChannelShuffle(groups)
    assert message in str(raised.value)


def test_channel_shuffle_groups_must_divide_channels():
    with pytest.raises(ValueError, match=r"channel_shuffle: groups=4 must divide the number of channels "
                                         r"\(last axis\), got 6 channels in input shape \(3, 3, 6\)"):
        ChannelShuffle(4).build((3, 3, 6))


# ================================================================== ZeroPadding2D
def test_zero_padding_by_hand():
    x = np.array([[[[1.0], [2.0]]]])  # (1, 1, 2, 1)
    y, dx = forward_backward(ZeroPadding2D(((1, 0), (0, 2))), x, dy=np.arange(8.0).reshape(1, 2, 4, 1))
    np.testing.assert_array_equal(y[0, :, :, 0], [[0, 0, 0, 0], [1, 2, 0, 0]])
    np.testing.assert_array_equal(dx[0, :, :, 0], [[4, 5]])  # the crop of dy where x landed


@pytest.mark.parametrize("padding, expected", [
    (2, ((2, 2), (2, 2))), ((1, 3), ((1, 1), (3, 3))),
    (((0, 1), (2, 3)), ((0, 1), (2, 3))), (0, ((0, 0), (0, 0))),
])
def test_zero_padding_forms(padding, expected):
    layer = ZeroPadding2D(padding)
    assert layer.padding == expected
    (top, bottom), (left, right) = expected
    assert layer.output_shape((5, 4, 3)) == (5 + top + bottom, 4 + left + right, 3)


@given(shape=images, pads=st.tuples(*[st.integers(0, 2)] * 4), training=st.booleans(),
       seed=st.integers(0, 99))
def test_zero_padding_gradcheck(shape, pads, training, seed):
    layer = ZeroPadding2D(((pads[0], pads[1]), (pads[2], pads[3])))
    report = check_layer(layer, shape[1:], seed=seed, batch_size=shape[0], training=training)
    assert report.passed, str(report)


@pytest.mark.torch
@given(shape=images, pads=st.tuples(*[st.integers(0, 3)] * 4), seed=st.integers(0, 99))
def test_zero_padding_matches_pytorch(shape, pads, seed):
    torch = pytest.importorskip("torch")
    top, bottom, left, right = pads
    x = np.random.default_rng(seed).standard_normal(shape)
    dy_shape = (shape[0], shape[1] + top + bottom, shape[2] + left + right, shape[3])
    dy = np.random.default_rng(seed + 1).standard_normal(dy_shape)
    y, dx = forward_backward(ZeroPadding2D(((top, bottom), (left, right))), x, dy)
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    y_t = torch.nn.functional.pad(x_t, (left, right, top, bottom))  # last axis first
    y_t.backward(torch.from_numpy(dy.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_array_equal(y, y_t.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(dx, x_t.grad.numpy().transpose(0, 2, 3, 1))


@pytest.mark.parametrize("padding", [-1, (1, -1), ((1, 2), (3,)), "same", 1.5, True,
                                     ((1, 2), (3, 4), (5, 6))])
def test_zero_padding_bad_options(padding):
    with pytest.raises(ValueError, match=r"zero_padding2d: padding must be a non-negative int p, "
                                         r"a pair \(ph, pw\) or \(\(top, bottom\), \(left, right\)\), got "):
        ZeroPadding2D(padding)


@pytest.mark.parametrize("layer", [ZeroPadding2D(1), UpSampling2D(2)], ids=["pad", "upsample"])
def test_image_layers_refuse_flat_samples(layer):
    with pytest.raises(ValueError,
                       match=rf"{layer.name}: expected samples of shape \(H, W, C\) "
                             r"\(batch shape \(N, H, W, C\)\), got \(7,\)"):
        layer.build((7,))


# ================================================================== UpSampling2D
def test_upsampling_by_hand():
    x = np.array([[[[1.0], [2.0]], [[3.0], [4.0]]]])  # (1, 2, 2, 1)
    dy = np.arange(24.0).reshape(1, 4, 6, 1)
    y, dx = forward_backward(UpSampling2D((2, 3)), x, dy)
    np.testing.assert_array_equal(y[0, :, :, 0], [[1, 1, 1, 2, 2, 2], [1, 1, 1, 2, 2, 2],
                                                  [3, 3, 3, 4, 4, 4], [3, 3, 3, 4, 4, 4]])
    # dx[0, 0] = dy rows 0-1, columns 0-2: 0+1+2 + 6+7+8 = 24; dx[0, 1]: 3+4+5 + 9+10+11 = 42; ...
    np.testing.assert_array_equal(dx[0, :, :, 0], [[24, 42], [96, 114]])


@given(shape=images, size=st.tuples(st.integers(1, 3), st.integers(1, 3)), training=st.booleans(),
       seed=st.integers(0, 99))
def test_upsampling_gradcheck(shape, size, training, seed):
    report = check_layer(UpSampling2D(size), shape[1:], seed=seed, batch_size=shape[0], training=training)
    assert report.passed, str(report)


@pytest.mark.torch
@given(shape=images, size=st.tuples(st.integers(1, 3), st.integers(1, 3)), seed=st.integers(0, 99))
def test_upsampling_matches_pytorch(shape, size, seed):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(seed).standard_normal(shape)
    layer = UpSampling2D(size)
    layer.build(shape[1:], dtype="float64")
    y = layer.forward(x)
    dy = np.random.default_rng(seed + 1).standard_normal(y.shape)
    dx = layer.backward(dy)
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    y_t = torch.nn.functional.interpolate(x_t, scale_factor=size, mode="nearest")
    y_t.backward(torch.from_numpy(dy.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_array_equal(y, y_t.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_allclose(dx, x_t.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("size, error", [(0, ValueError), ((2, 0), ValueError), (1.5, TypeError),
                                         ("2", TypeError), ((1, 2, 3), ValueError)])
def test_upsampling_bad_size(size, error):
    with pytest.raises(error, match=r"^up_sampling2d: size must be an int >= 1 or an \(h, w\) pair of them"):
        UpSampling2D(size)


# ================================================================== dtypes
@pytest.mark.parametrize("layer, shape", [(ChannelShuffle(2), (3, 3, 4)), (ZeroPadding2D((1, 2)), (3, 3, 4)),
                                          (UpSampling2D(2), (3, 3, 4))], ids=["shuffle", "pad", "upsample"])
def test_float32_stays_float32(layer, shape):
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    layer.build(shape, dtype="float32")
    y = layer.forward(x)
    dx = layer.backward(np.ones(y.shape))  # float64 dy is cast, not promoted to
    assert y.dtype == dx.dtype == np.float32
