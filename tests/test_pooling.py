"""MaxPool2D, AvgPool2D, GlobalAvgPool2D against hand-worked examples, the plain nested-loop
definitions in scratchnet.kernels.loops, numerical gradients and PyTorch.

Blind spots covered by name: overlapping windows (stride < pool size), padding (max-pool pads
with -inf, avg-pool does not count padded cells), ragged edges (windows that do not tile the
input), ties (first maximum in row-major window order), non-square windows and strides,
stride > 1 with "same" padding.
"""

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from padding_reference import reference_pads

from scratchnet.gradcheck import check_layer
from scratchnet.kernels import loops
from scratchnet.layers import AvgPool2D, GlobalAvgPool2D, MaxPool2D

# --------------------------------------------------------------------------- reference


def reference_max_pool(x, dy_fn, pool_hw, stride_hw, pads):
    """The loops of scratchnet.kernels.loops: y, and dx for dy = dy_fn(y.shape)."""
    y, argmax = loops.max_pool_forward(x, pool_hw, stride_hw, pads)
    dy = dy_fn(y.shape)
    return y, dy, loops.max_pool_backward(x.shape, argmax, dy)


def reference_avg_pool(x, dy_fn, pool_hw, stride_hw, pads):
    """The loops of scratchnet.kernels.loops; the mean is over the real (non-padded) cells."""
    y = loops.avg_pool_forward(x, pool_hw, stride_hw, pads)
    dy = dy_fn(y.shape)
    return y, dy, loops.avg_pool_backward(x.shape, dy, pool_hw, stride_hw, pads)


def built(layer, input_shape, dtype="float64"):
    layer.build(input_shape, dtype=dtype)
    return layer


def distinct_values(shape, seed=0):
    """A shuffled grid of distinct values 0.1 apart: no near-ties, so max is differentiable."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))) * 0.1 - 1.0).reshape(shape)


# ------------------------------------------------------------------ worked examples

WORKED_X = np.array([[1, 3, 2, 4],
                     [5, 6, 7, 8],
                     [9, 2, 4, 3],
                     [6, 7, 8, 9]], dtype=np.float64).reshape(1, 4, 4, 1)


def test_max_pool_worked_example_forward_and_backward():
    layer = built(MaxPool2D(2, stride=2), (4, 4, 1))
    y = layer.forward(WORKED_X)
    np.testing.assert_array_equal(y[0, :, :, 0], [[6, 8], [9, 9]])
    dx = layer.backward(np.array([[10.0, 20.0], [30.0, 40.0]]).reshape(1, 2, 2, 1))
    expected_dx = np.array([[0, 0, 0, 0],
                            [0, 10, 0, 20],
                            [30, 0, 0, 0],
                            [0, 0, 0, 40]], dtype=np.float64)
    np.testing.assert_array_equal(dx[0, :, :, 0], expected_dx)


def test_max_pool_overlapping_windows_add_gradients_at_shared_maximum():
    # 2x2 windows, stride 1: the centre 9 is the max of all four windows.
    x = np.array([[1, 2, 1], [3, 9, 4], [1, 5, 1]], dtype=np.float64).reshape(1, 3, 3, 1)
    layer = built(MaxPool2D(2, stride=1), (3, 3, 1))
    np.testing.assert_array_equal(layer.forward(x)[0, :, :, 0], [[9, 9], [9, 9]])
    dx = layer.backward(np.array([[1.0, 2.0], [4.0, 8.0]]).reshape(1, 2, 2, 1))
    expected = np.zeros((3, 3))
    expected[1, 1] = 15.0
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_max_pool_ties_go_to_first_maximum_in_row_major_window_order():
    x = np.array([[0, 5, 5, 1],
                  [5, 5, 1, 1],
                  [2, 2, 3, 0],
                  [2, 2, 0, 3]], dtype=np.float64).reshape(1, 4, 4, 1)
    layer = built(MaxPool2D(2), (4, 4, 1))
    np.testing.assert_array_equal(layer.forward(x)[0, :, :, 0], [[5, 5], [2, 3]])
    dx = layer.backward(np.ones((1, 2, 2, 1)))
    expected = np.array([[0, 1, 1, 0],
                         [0, 0, 0, 0],
                         [1, 0, 1, 0],
                         [0, 0, 0, 0]], dtype=np.float64)
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


@pytest.mark.parametrize("pool_size, stride", [(1, 2), ((2, 1), (2, 2)), (2, 3)])
def test_max_pool_cells_between_windows_get_zero_gradient(pool_size, stride):
    # stride > pool size leaves gaps no window covers, even when the windows' count times the
    # stride equals the input size: dx must be 0 there, not whatever memory dx was given.
    layer = built(MaxPool2D(pool_size, stride=stride), (6, 6, 2))
    x = distinct_values((3, 6, 6, 2))
    y = layer.forward(x)
    garbage = np.full((3, 6, 6, 2), 7.0)  # freed just before: a fresh np.empty may reuse it
    del garbage
    dx = layer.backward(np.ones(y.shape))
    covered = np.zeros((6, 6), dtype=bool)
    (kh, kw), (sh, sw) = layer.pool_size, layer.stride
    for p in range(y.shape[1]):
        for q in range(y.shape[2]):
            covered[p * sh:p * sh + kh, q * sw:q * sw + kw] = True
    assert not covered.all()
    assert np.all(dx[:, ~covered, :] == 0)
    assert dx.sum() == y.size  # every window routed its 1 somewhere


@pytest.mark.parametrize("height, width", [(5, 5), (5, 4), (4, 5)])  # ragged on both axes or on one
def test_max_pool_ragged_edges_get_zero_gradient(height, width):
    # 2x2 windows, stride 2: row 4 and column 4 (where there is one) are in no window.
    x = distinct_values((2, height, width, 3))
    x[:, 4:, :, :] += 100.0  # even the largest values there must not be chosen
    x[:, :, 4:, :] += 100.0
    layer = built(MaxPool2D(2), (height, width, 3))
    for _ in range(20):  # dx must be zeroed, not whatever memory it was given: try several blocks
        y = layer.forward(x)
        assert y.shape == (2, 2, 2, 3)
        garbage = np.full(x.shape, 7.0)  # freed just before: a fresh np.empty may reuse it
        del garbage
        dx = layer.backward(np.ones(y.shape))
        assert np.all(dx[:, 4:, :, :] == 0) and np.all(dx[:, :, 4:, :] == 0)
        assert dx.sum() == y.size  # every output gradient went somewhere inside


def test_max_pool_padding_is_minus_infinity_never_chosen():
    # All-negative input: a zero-padded max-pool would output 0 at the borders.
    x = -1.0 - distinct_values((1, 3, 3, 1)) ** 2
    layer = built(MaxPool2D(2, stride=2, padding="same"), (3, 3, 1))  # pads (0, 1) each axis
    y = layer.forward(x)
    np.testing.assert_array_equal(y[0, :, :, 0], [[x[0, :2, :2, 0].max(), x[0, :2, 2, 0].max()],
                                                  [x[0, 2, :2, 0].max(), x[0, 2, 2, 0]]])
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.sum() == 4.0


def test_avg_pool_same_padding_excludes_padded_cells_from_the_mean():
    x = np.arange(9, dtype=np.float64).reshape(1, 3, 3, 1)
    layer = built(AvgPool2D(2, stride=2, padding="same"), (3, 3, 1))  # pads (0, 1) each axis
    y = layer.forward(x)
    # windows: {0,1,3,4}, {2,5}, {6,7}, {8}: divided by 4, 2, 2, 1 (not always by 4)
    np.testing.assert_allclose(y[0, :, :, 0], [[2.0, 3.5], [6.5, 8.0]], rtol=0, atol=1e-15)
    dx = layer.backward(np.ones_like(y))
    expected = np.array([[0.25, 0.25, 0.5], [0.25, 0.25, 0.5], [0.5, 0.5, 1.0]])
    np.testing.assert_allclose(dx[0, :, :, 0], expected, rtol=0, atol=1e-15)


def test_avg_pool_constant_image_stays_constant_with_padding():
    layer = built(AvgPool2D(3, stride=2, padding=1), (5, 4, 2))
    y = layer.forward(np.full((2, 5, 4, 2), 7.0))
    np.testing.assert_allclose(y, 7.0, rtol=0, atol=1e-14)


def test_global_avg_pool_forward_backward_by_hand():
    x = np.arange(12, dtype=np.float64).reshape(1, 2, 3, 2)  # channel 0: 0,2,..,10; channel 1: 1,..,11
    layer = built(GlobalAvgPool2D(), (2, 3, 2))
    y = layer.forward(x)
    np.testing.assert_allclose(y, [[5.0, 6.0]], rtol=0, atol=1e-15)
    dx = layer.backward(np.array([[6.0, -12.0]]))
    expected = np.empty((1, 2, 3, 2))
    expected[..., 0], expected[..., 1] = 1.0, -2.0
    np.testing.assert_allclose(dx, expected, rtol=0, atol=1e-15)
    assert layer.output_shape((7, 5, 3)) == (3,)


# --------------------------------------------------------------- gradient checks

GRADCHECK_CONFIGS = [
    # (pool_size, stride, padding, input (H, W, C))
    pytest.param(3, 1, "valid", (5, 6, 2), id="overlap-3x3-stride1"),
    pytest.param(3, 2, "valid", (6, 7, 2), id="overlap-3x3-stride2-ragged"),
    pytest.param(3, 2, "same", (5, 6, 2), id="same-padding-stride2"),
    pytest.param(2, None, "same", (5, 5, 1), id="same-padding-asymmetric"),
    pytest.param(2, 2, "valid", (5, 7, 2), id="ragged-edges"),
    pytest.param((2, 3), (1, 2), "valid", (5, 7, 2), id="non-square-window-and-stride"),
    pytest.param((3, 2), 1, ((1, 2), (0, 1)), (4, 5, 2), id="non-square-explicit-padding"),
]


@pytest.mark.parametrize("pool_size, stride, padding, input_hwc", GRADCHECK_CONFIGS)
def test_max_pool_gradcheck(pool_size, stride, padding, input_hwc):
    x = distinct_values((2, *input_hwc), seed=3)
    report = check_layer(MaxPool2D(pool_size, stride=stride, padding=padding), x)
    assert report.passed, str(report)


@pytest.mark.parametrize("pool_size, stride, padding, input_hwc", GRADCHECK_CONFIGS)
def test_avg_pool_gradcheck(pool_size, stride, padding, input_hwc):
    report = check_layer(AvgPool2D(pool_size, stride=stride, padding=padding), input_hwc, batch_size=2)
    assert report.passed, str(report)


def test_global_avg_pool_gradcheck():
    report = check_layer(GlobalAvgPool2D(), (4, 5, 3))
    assert report.passed, str(report)


# ------------------------------------------------ nested-loop reference, hypothesis

@st.composite
def pool_configs(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))  # includes stride < pool size
    form = draw(st.sampled_from(["valid", "same", "int", "pair", "nested"]))
    if form in ("valid", "same"):
        padding = form
    elif form == "int":
        padding = draw(st.integers(0, min(kh, kw) - 1))
    elif form == "pair":
        padding = (draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)))
    else:
        padding = ((draw(st.integers(0, kh - 1)), draw(st.integers(0, kh - 1))),
                   (draw(st.integers(0, kw - 1)), draw(st.integers(0, kw - 1))))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8)),
             draw(st.integers(1, 3)))
    many_ties = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    return (kh, kw), (sh, sw), padding, shape, many_ties, seed


def run_against_reference(layer_class, reference, config):
    pool_hw, stride_hw, padding, shape, many_ties, seed = config
    rng = np.random.default_rng(seed)
    # small integers: many ties, which exercises the tie rule
    x = rng.integers(0, 3, size=shape).astype(np.float64) if many_ties else rng.standard_normal(shape)
    pads = reference_pads(padding, shape[1:3], pool_hw, stride_hw)
    layer = layer_class(pool_hw, stride=stride_hw, padding=padding)
    fits = all(size + before + after >= k for size, (before, after), k in zip(shape[1:3], pads, pool_hw))
    if not fits:
        with pytest.raises(ValueError, match="larger than the padded input"):
            layer.build(shape[1:], dtype="float64")
        return
    layer.build(shape[1:], dtype="float64")
    y_ref, dy, dx_ref = reference(x, lambda s: rng.standard_normal(s), pool_hw, stride_hw, pads)
    y = layer.forward(x)
    assert y.shape == y_ref.shape == (shape[0], *layer.output_shape(shape[1:]))
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), dx_ref, rtol=0, atol=1e-12)


@given(pool_configs())
def test_max_pool_matches_nested_loop_reference(config):
    run_against_reference(MaxPool2D, reference_max_pool, config)


@given(pool_configs())
def test_avg_pool_matches_nested_loop_reference(config):
    run_against_reference(AvgPool2D, reference_avg_pool, config)


@given(st.integers(1, 9), st.integers(1, 4), st.integers(1, 4), st.sampled_from(["valid", "same"]))
def test_output_shape_matches_formula(size, k, s, padding):
    expected = -(-size // s) if padding == "same" else (size - k) // s + 1
    for layer in (MaxPool2D((k, 1), stride=(s, 1), padding=padding),
                  AvgPool2D((1, k), stride=(1, s), padding=padding)):
        input_shape = (size, 3, 2) if isinstance(layer, MaxPool2D) else (3, size, 2)
        if expected < 1:
            with pytest.raises(ValueError):
                layer.output_shape(input_shape)
            continue
        shape = layer.output_shape(input_shape)
        assert shape == ((expected, 3, 2) if isinstance(layer, MaxPool2D) else (3, expected, 2))


def test_output_shape_explicit_padding_formula():
    # out = floor((in + top + bottom - k) / s) + 1 along each axis
    layer = MaxPool2D((3, 2), stride=(2, 3), padding=((1, 2), (0, 1)))
    assert layer.output_shape((10, 11, 4)) == ((10 + 3 - 3) // 2 + 1, (11 + 1 - 2) // 3 + 1, 4)


# --------------------------------------------------------------------- PyTorch

def to_nchw(torch, x):
    return torch.tensor(np.transpose(x, (0, 3, 1, 2)), dtype=torch.float64, requires_grad=True)


def from_nchw(tensor):
    return np.transpose(tensor.detach().numpy(), (0, 2, 3, 1))


# torch padding is symmetric and at most kernel / 2
TORCH_CONFIGS = [
    pytest.param(3, 1, 1, (7, 6), id="overlap-3x3-stride1-pad1"),
    pytest.param(3, 2, 1, (7, 8), id="overlap-3x3-stride2-pad1"),
    pytest.param((3, 2), (2, 1), (1, 1), (6, 5), id="non-square-pad"),
    pytest.param(2, 2, 0, (5, 7), id="ragged-edges"),
    pytest.param((4, 3), (3, 2), (2, 1), (9, 8), id="non-square-stride-pad"),
]


def torch_max_pool_input(kind, shape):
    """"distinct" values, or "ties": integers 0, 1, 2, so most windows hold their maximum twice and
    both backends must route dy to the same (the first, row-major) cell."""
    if kind == "ties":
        return np.random.default_rng(8).integers(0, 3, size=shape).astype(np.float64)
    return distinct_values(shape, seed=7)


@pytest.mark.torch
@pytest.mark.parametrize("backend", ["offsets", "loops"])
@pytest.mark.parametrize("kind", ["distinct", "ties"])
@pytest.mark.parametrize("pool_size, stride, padding, input_hw", TORCH_CONFIGS)
def test_max_pool_matches_torch(pool_size, stride, padding, input_hw, kind, backend):
    torch = pytest.importorskip("torch")
    x = torch_max_pool_input(kind, (2, *input_hw, 3))
    layer = built(MaxPool2D(pool_size, stride=stride, padding=padding, backend=backend), x.shape[1:])
    y = layer.forward(x)
    x_t = to_nchw(torch, x)
    y_t = torch.nn.functional.max_pool2d(x_t, pool_size, stride=stride, padding=padding)
    np.testing.assert_allclose(y, from_nchw(y_t), rtol=0, atol=1e-10)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    y_t.backward(torch.tensor(np.transpose(dy, (0, 3, 1, 2))))
    np.testing.assert_allclose(layer.backward(dy), from_nchw(x_t.grad), rtol=0, atol=1e-10)


@pytest.mark.torch
@pytest.mark.parametrize("pool_size, stride, padding, input_hw", TORCH_CONFIGS)
def test_avg_pool_matches_torch_count_include_pad_false(pool_size, stride, padding, input_hw):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).standard_normal((2, *input_hw, 3))
    layer = built(AvgPool2D(pool_size, stride=stride, padding=padding), x.shape[1:])
    y = layer.forward(x)
    x_t = to_nchw(torch, x)
    y_t = torch.nn.functional.avg_pool2d(x_t, pool_size, stride=stride, padding=padding,
                                         count_include_pad=False)
    np.testing.assert_allclose(y, from_nchw(y_t), rtol=0, atol=1e-10)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    y_t.backward(torch.tensor(np.transpose(dy, (0, 3, 1, 2))))
    np.testing.assert_allclose(layer.backward(dy), from_nchw(x_t.grad), rtol=0, atol=1e-10)


@pytest.mark.torch
def test_global_avg_pool_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(6).standard_normal((3, 5, 4, 2))
    layer = built(GlobalAvgPool2D(), x.shape[1:])
    x_t = to_nchw(torch, x)
    y_t = x_t.mean(dim=(2, 3))
    np.testing.assert_allclose(layer.forward(x), y_t.detach().numpy(), rtol=0, atol=1e-10)
    dy = np.random.default_rng(3).standard_normal((3, 2))
    y_t.backward(torch.tensor(dy))
    np.testing.assert_allclose(layer.backward(dy), from_nchw(x_t.grad), rtol=0, atol=1e-10)


# ---------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("make_layer", [lambda: MaxPool2D(3, stride=2, padding="same"),
                                        lambda: AvgPool2D(3, stride=2, padding="same"),
                                        GlobalAvgPool2D], ids=["max", "avg", "global"])
@pytest.mark.parametrize("input_dtype", [np.float32, np.float64])
def test_float32_layer_gives_float32_output_and_gradient(make_layer, input_dtype):
    layer = built(make_layer(), (6, 5, 3), dtype="float32")
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 3)).astype(input_dtype)
    y = layer.forward(x)
    assert y.dtype == np.float32
    dx = layer.backward(np.ones(y.shape, dtype=np.float64))
    assert dx.dtype == np.float32 and dx.shape == x.shape


# ---------------------------------------------------------------------- errors

@pytest.mark.parametrize("kwargs, match", [
    ({"pool_size": 0}, "pool_size must be an int >= 1 or an"),
    ({"pool_size": 2, "stride": 0}, "stride must be an int >= 1 or an"),
    ({"pool_size": 2, "stride": (1, -1)}, "stride must be an int >= 1 or an"),
    ({"pool_size": 2, "padding": "full"}, "padding must be"),
    ({"pool_size": 2, "padding": -1}, "padding must be"),
    ({"pool_size": 2, "padding": ((1,), (2,))}, "padding must be"),
    ({"pool_size": 2, "padding": 2}, "smaller than the pool size 2"),
    ({"pool_size": (3, 2), "padding": ((0, 0), (0, 2))}, "padding along width"),
])
@pytest.mark.parametrize("layer_class", [MaxPool2D, AvgPool2D])
def test_bad_options_raise_value_error_naming_the_layer(layer_class, kwargs, match):
    with pytest.raises(ValueError, match=match) as error:
        layer_class(name="pool_a", **kwargs)
    assert "pool_a" in str(error.value)


@pytest.mark.parametrize("layer_class", [MaxPool2D, AvgPool2D])
def test_a_float_pool_size_is_a_type_error_naming_the_layer(layer_class):
    with pytest.raises(TypeError, match=r"^pool_a: pool_size must be an int >= 1 or an \(h, w\) pair of "
                                        r"them, got 2.5$"):
        layer_class(2.5, name="pool_a")


@pytest.mark.parametrize("layer_class", [MaxPool2D, AvgPool2D, GlobalAvgPool2D])
def test_wrong_rank_raises(layer_class):
    layer = layer_class(name="pool_b")
    with pytest.raises(ValueError, match=r"pool_b.*\(H, W, C\).*\(4, 4\)"):
        layer.build((4, 4))
    layer.build((4, 4, 1))
    with pytest.raises(ValueError, match=r"pool_b.*\(N, 4, 4, 1\).*\(2, 4, 4\)"):
        layer.forward(np.zeros((2, 4, 4)))


@pytest.mark.parametrize("layer_class", [MaxPool2D, AvgPool2D, GlobalAvgPool2D])
def test_channel_count_different_from_build_raises(layer_class):
    layer = built(layer_class(name="pool_c"), (4, 4, 3))
    with pytest.raises(ValueError, match=r"pool_c.*\(N, 4, 4, 3\).*\(2, 4, 4, 2\)"):
        layer.forward(np.zeros((2, 4, 4, 2)))


@pytest.mark.parametrize("layer_class", [MaxPool2D, AvgPool2D])
def test_window_larger_than_padded_input_raises(layer_class):
    with pytest.raises(ValueError, match=r"pool_d.*window of 5 cells along width.*3 \+ 1 \+ 0 = 4"):
        layer_class((2, 5), padding=((0, 0), (1, 0)), name="pool_d").build((4, 3, 1))


def test_backward_with_wrong_dy_shape_raises():
    layer = built(MaxPool2D(2, name="pool_e"), (4, 4, 1))
    layer.forward(np.zeros((1, 4, 4, 1)))
    with pytest.raises(ValueError, match=r"pool_e.*\(1, 2, 2, 1\).*\(1, 4, 4, 1\)"):
        layer.backward(np.zeros((1, 4, 4, 1)))


# ------------------------------------------------------------- config, pickling

@pytest.mark.parametrize("layer", [MaxPool2D((3, 2), stride=1, padding=((1, 0), (0, 1))),
                                   AvgPool2D(3, stride=2, padding="same"), GlobalAvgPool2D()],
                         ids=["max", "avg", "global"])
def test_get_config_rebuilds_an_equal_layer_and_pickle_drops_cache(layer):
    x = distinct_values((2, 6, 5, 2))
    built(layer, x.shape[1:])
    y = layer.forward(x)
    copy = built(type(layer)(**layer.get_config()), x.shape[1:])
    np.testing.assert_array_equal(copy.forward(x), y)
    restored = pickle.loads(pickle.dumps(layer))
    assert restored.cache == {}
    np.testing.assert_array_equal(restored.forward(x), y)


# ------------------------------------------------- backend="loops": the definitions as a layer

def test_loops_backend_worked_examples():
    # the hand-worked numbers above, through the loops backend
    layer = built(MaxPool2D(2, stride=2, backend="loops"), (4, 4, 1))
    np.testing.assert_array_equal(layer.forward(WORKED_X)[0, :, :, 0], [[6, 8], [9, 9]])
    dx = layer.backward(np.array([[10.0, 20.0], [30.0, 40.0]]).reshape(1, 2, 2, 1))
    np.testing.assert_array_equal(dx[0, :, :, 0],
                                  [[0, 0, 0, 0], [0, 10, 0, 20], [30, 0, 0, 0], [0, 0, 0, 40]])
    ties = np.array([[0, 5, 5, 1], [5, 5, 1, 1], [2, 2, 3, 0], [2, 2, 0, 3]], dtype=np.float64)
    layer = built(MaxPool2D(2, backend="loops"), (4, 4, 1))
    layer.forward(ties.reshape(1, 4, 4, 1))
    np.testing.assert_array_equal(layer.backward(np.ones((1, 2, 2, 1)))[0, :, :, 0],
                                  [[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    layer = built(AvgPool2D(2, stride=2, padding="same", backend="loops"), (3, 3, 1))
    y = layer.forward(np.arange(9, dtype=np.float64).reshape(1, 3, 3, 1))
    np.testing.assert_allclose(y[0, :, :, 0], [[2.0, 3.5], [6.5, 8.0]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(layer.backward(np.ones_like(y))[0, :, :, 0],
                               [[0.25, 0.25, 0.5], [0.25, 0.25, 0.5], [0.5, 0.5, 1.0]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("pool_size, stride, padding, input_hwc", GRADCHECK_CONFIGS[:4])
@pytest.mark.parametrize("layer_class", [MaxPool2D, AvgPool2D])
def test_loops_backend_gradcheck(layer_class, pool_size, stride, padding, input_hwc):
    x = distinct_values((2, *input_hwc), seed=4)
    report = check_layer(layer_class(pool_size, stride=stride, padding=padding, backend="loops"), x)
    assert report.passed, str(report)


@pytest.mark.torch
@pytest.mark.parametrize("pool_size, stride, padding, input_hw", TORCH_CONFIGS)
def test_loops_backend_matches_torch(pool_size, stride, padding, input_hw):
    torch = pytest.importorskip("torch")
    x = distinct_values((2, *input_hw, 2), seed=9)
    dy = np.random.default_rng(3).standard_normal
    for layer_class, torch_pool, options in [
            (MaxPool2D, torch.nn.functional.max_pool2d, {}),
            (AvgPool2D, torch.nn.functional.avg_pool2d, {"count_include_pad": False})]:
        layer = built(layer_class(pool_size, stride=stride, padding=padding, backend="loops"), x.shape[1:])
        y = layer.forward(x)
        x_t = to_nchw(torch, x)
        y_t = torch_pool(x_t, pool_size, stride=stride, padding=padding, **options)
        np.testing.assert_allclose(y, from_nchw(y_t), rtol=0, atol=1e-12)
        gradient = dy(y.shape)
        y_t.backward(torch.tensor(np.transpose(gradient, (0, 3, 1, 2))))
        np.testing.assert_allclose(layer.backward(gradient), from_nchw(x_t.grad), rtol=0, atol=1e-12)


@pytest.mark.parametrize("layer_class", [MaxPool2D, AvgPool2D])
def test_loops_backend_float32_config_and_errors(layer_class):
    layer = built(layer_class(3, stride=2, padding="same", backend="loops", name="pool_l"), (5, 4, 2),
                  dtype="float32")
    y = layer.forward(np.random.default_rng(0).standard_normal((2, 5, 4, 2)))
    assert y.dtype == np.float32 and layer.backward(np.ones(y.shape)).dtype == np.float32
    assert layer.get_config()["backend"] == "loops"
    assert type(layer)(**layer.get_config()).backend == "loops"
    assert layer_class(2).backend == "offsets"  # the default stays the vectorised path
    message = r"pool_l: unknown backend 'fast'; expected one of 'offsets', 'loops'"
    with pytest.raises(ValueError, match=message):
        layer_class(2, backend="fast", name="pool_l")
    with pytest.raises(ValueError, match=r"pool_l: backward expected dy of shape \(2, 3, 2, 2\)"):
        layer.backward(np.ones((2, 2, 2, 2)))
