"""Dropout and SpatialDropout2D: statistics, scaling, the cached mask, seeds, gradients, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.gradcheck import check_layer
from scratchnet.layers import Dense, Dropout, Flatten, SpatialDropout2D


def built(layer, sample_shape, dtype="float64", seed=0):
    layer.build(sample_shape, dtype=dtype)
    layer.set_rng(np.random.default_rng(seed))
    return layer


# ------------------------------------------------------------------ statistics and scaling
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_drop_rate_and_scaling(rate, dtype):
    n = 200_000
    layer = built(Dropout(rate), (1000,), dtype=dtype, seed=1)
    x = np.ones((n // 1000, 1000), dtype=dtype)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype
    dropped = np.mean(y == 0)
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(dropped - rate) < 5 * sigma, (dropped, rate)
    # every kept value is scaled by exactly 1 / (1 - rate), so the mean stays 1
    np.testing.assert_allclose(y[y != 0], 1 / (1 - rate), rtol=1e-6 if dtype == "float32" else 1e-15)
    assert abs(y.mean() - 1.0) < 5 * sigma / (1 - rate)


@pytest.mark.parametrize("rate", [0.25, 0.6])
def test_spatial_dropout_drops_whole_channels(rate):
    layer = built(SpatialDropout2D(rate), (3, 4, 50), seed=2)
    x = np.random.default_rng(0).uniform(1.0, 2.0, (400, 3, 4, 50))  # never 0
    y = layer.forward(x, training=True)
    kept = y != 0
    per_map = kept.all(axis=(1, 2))  # (N, C): a feature map is kept as a whole ...
    np.testing.assert_array_equal(per_map, kept.any(axis=(1, 2)))  # ... or dropped as a whole
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-15)
    n_maps = per_map.size
    assert abs((1 - per_map.mean()) - rate) < 5 * np.sqrt(rate * (1 - rate) / n_maps)


def test_backward_uses_the_forward_mask():
    layer = built(Dropout(0.5), (40,), seed=3)
    x = np.random.default_rng(1).standard_normal((30, 40))
    y = layer.forward(x, training=True)
    mask = y / x  # 0 or 2
    assert set(np.unique(np.round(mask, 12))) == {0.0, 2.0}
    dy = np.random.default_rng(2).standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dy), dy * mask, rtol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), dy * mask, rtol=1e-12)  # same mask again


def test_same_seed_gives_the_same_mask_and_another_seed_another():
    x = np.ones((8, 64))
    first = built(Dropout(0.5), (64,), seed=7).forward(x, training=True)
    again = built(Dropout(0.5), (64,), seed=7).forward(x, training=True)
    other = built(Dropout(0.5), (64,), seed=8).forward(x, training=True)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    layer = built(Dropout(0.5), (64,), seed=7)
    layer.forward(x, training=True)
    assert not np.array_equal(layer.forward(x, training=True), first)  # a new mask every step


def test_seeded_models_draw_the_same_masks():
    def model():
        return sn.Sequential([Dense(16), Dropout(0.5), Dense(2)], input_shape=(5,), seed=11, dtype="float64")
    x = np.ones((4, 5))
    np.testing.assert_array_equal(model().forward(x, training=True), model().forward(x, training=True))


# ------------------------------------------------------------------ identity cases
@pytest.mark.parametrize("make, shape", [
    (lambda: Dropout(0.5), (6,)), (lambda: SpatialDropout2D(0.5), (2, 2, 3)),
    (lambda: Dropout(0.0), (6,)), (lambda: SpatialDropout2D(0.0), (2, 2, 3))])
def test_identity_at_inference_and_with_rate_zero(make, shape):
    layer = built(make(), shape)
    x = np.random.default_rng(0).standard_normal((5, *shape))
    modes = (False, True) if layer.rate == 0 else (False,)
    for training in modes:
        np.testing.assert_array_equal(layer.forward(x, training=training), x)
        np.testing.assert_array_equal(layer.backward(2 * x), 2 * x)


# ------------------------------------------------------------------ gradients
@given(rate=st.floats(0.0, 0.9), training=st.booleans(), spatial=st.booleans(),
       shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4)), seed=st.integers(0, 99))
def test_dropout_passes_gradcheck(rate, training, spatial, shape, seed):
    layer = SpatialDropout2D(rate) if spatial else Dropout(rate)
    report = check_layer(layer, shape, seed=seed, training=training)
    assert report.passed, str(report)


class UnmaskedBackward(Dropout):
    def backward(self, dy):
        return dy  # wrong: forgets the mask


def test_gradcheck_in_training_catches_a_backward_without_the_mask():
    # check_layer reseeds the layer before every forward, so the mask is fixed and a backward that
    # ignores it is caught (the passing checks above are not vacuous)
    assert check_layer(Dropout(0.5), (20,), training=True, batch_size=4).passed
    assert not check_layer(UnmaskedBackward(0.5), (20,), training=True, batch_size=4).passed
    assert check_layer(UnmaskedBackward(0.5), (20,), training=False, batch_size=4).passed


# ------------------------------------------------------------------ pickling and errors
def test_pickling_drops_the_generator():
    layer = built(Dropout(0.3), (5,), seed=4)
    layer.forward(np.ones((2, 5)), training=True)
    copy = pickle.loads(pickle.dumps(layer))
    assert copy.rng is None and copy.cache == {}
    assert isinstance(layer.rng, np.random.Generator)  # the original keeps its generator
    assert copy.rate == 0.3 and copy.forward(np.ones((2, 5)), training=True).shape == (2, 5)


@pytest.mark.parametrize("rate, error", [(-0.1, ValueError), (1.0, ValueError), (1.5, ValueError),
                                         ("0.5", TypeError), (True, TypeError), (None, TypeError)])
def test_bad_rate_is_refused(rate, error):
    """A number out of [0, 1) is a ValueError; a string, a bool or None a TypeError (check_real)."""
    with pytest.raises(error, match=r"dropout: rate \(the probability of dropping a value\) must be "
                                         r"a number in \[0, 1\), got " + repr(rate).replace(".", r"\.")):
        Dropout(rate)


def test_spatial_dropout_needs_images():
    with pytest.raises(ValueError, match=r"spatial_dropout2d: expected samples of shape \(H, W, C\) "
                                         r"\(batch shape \(N, H, W, C\)\), got \(6,\)"):
        SpatialDropout2D(0.5).build((6,))
    model = sn.Sequential([Flatten(), SpatialDropout2D(0.1)], input_shape=(2, 2, 1))
    with pytest.raises(ValueError, match="spatial_dropout2d"):
        model.build()


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="dropout: backward found no forward cache"):
        built(Dropout(0.5), (3,)).backward(np.ones((1, 3)))


# ------------------------------------------------------------------ PyTorch
@pytest.mark.torch
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_statistics_match_pytorch(rate):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    x = np.ones((200, 1000))
    ours = built(Dropout(rate), (1000,), seed=5).forward(x, training=True)
    theirs = torch.nn.functional.dropout(torch.from_numpy(x), p=rate, training=True).numpy()
    # the same scaled value for kept entries, and drop fractions within 5 sigma of each other
    np.testing.assert_allclose(np.unique(ours[ours != 0]), np.unique(theirs[theirs != 0]), rtol=1e-15)
    sigma = np.sqrt(2 * rate * (1 - rate) / x.size)
    assert abs(np.mean(ours == 0) - np.mean(theirs == 0)) < 5 * sigma
    # Dropout2d on NCHW drops whole channels with the same scaling as SpatialDropout2D
    images = np.ones((100, 2, 2, 40))
    ours = built(SpatialDropout2D(rate), (2, 2, 40), seed=5).forward(images, training=True)
    theirs = torch.nn.functional.dropout2d(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()),
                                           p=rate, training=True).numpy()
    np.testing.assert_allclose(np.unique(ours), np.unique(theirs), rtol=1e-15)
    sigma = np.sqrt(2 * rate * (1 - rate) / 4000)
    assert abs(np.mean(ours[:, 0, 0, :] == 0) - np.mean(theirs[:, :, 0, 0] == 0)) < 5 * sigma
