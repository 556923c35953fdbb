"""Conv2D: every backend against the nested-loop definition (kernels/loops.py), gradcheck and
PyTorch. Groups have their own file, test_grouped_conv.py."""

import pickle

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from padding_reference import config_pads, torch_paddings

from scratchnet.gradcheck import check_layer
from scratchnet.kernels import col2im, loops
from scratchnet.kernels import im2col as im2col_kernels
from scratchnet.kernels.workspace import Workspace
from scratchnet.layers import Conv2D, DepthwiseConv2D, SeparableConv2D

BACKENDS = ["im2col", "scipy"]


# ---------------------------------------------------------------- nested-loop reference
# The definitions live in the package (scratchnet/kernels/loops.py, the "loops" backend); here
# they are wrapped with an independent np.pad and crop.
def pad_numeric(x, pads):
    """Zero-pad (N, H, W, C) by ((top, bottom), (left, right))."""
    return np.pad(x, ((0, 0), *pads, (0, 0)))


def loop_conv2d(x, W, b, stride, dilation, pads, groups=1):
    """y[n, oh, ow, f] = b[f] + sum_{i, j, c} xp[n, s*oh + d*i, s*ow + d*j, G(f)*Cg + c] W[i, j, c, f]."""
    return loops.conv2d_forward(pad_numeric(x, pads), W, b, stride, dilation, groups)


def loop_conv2d_backward(x, W, dy, stride, dilation, pads, groups=1):
    """(dx, dW, db): the forward's loops run backwards, padding cropped off dx."""
    dxp, dW, db = loops.conv2d_backward(pad_numeric(x, pads), W, dy, stride, dilation, groups)
    (top, bottom), (left, right) = pads
    return dxp[:, top:dxp.shape[1] - bottom, left:dxp.shape[2] - right, :], dW, db


def built_layer(input_shape, backend, seed=0, dtype="float64", **kwargs):
    layer = Conv2D(backend=backend, **kwargs)
    layer.build(input_shape, rng=np.random.default_rng(seed), dtype=dtype)
    if "b" in layer.params:  # a zero bias would hide a wrong bias path
        layer.params["b"][:] = np.random.default_rng(seed + 1).standard_normal(layer.filters)
    return layer


def run(layer, x, dy_seed=7):
    y = layer.forward(x)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape)
    dx = layer.backward(dy)
    return y, dy, dx, {key: value.copy() for key, value in layer.grads.items()}


# Hand-picked configurations naming the blind spots.
CONFIGS = {
    "valid_3x3": dict(filters=3, kernel_size=3),
    "overlapping_windows_same": dict(filters=2, kernel_size=3, padding="same"),
    "stride2_same_odd_pad_bottom_right": dict(filters=2, kernel_size=3, stride=2, padding="same"),
    "dilation2": dict(filters=2, kernel_size=3, dilation=2, padding=1),
    "non_square_kernel_and_stride": dict(filters=3, kernel_size=(2, 3), stride=(1, 2)),
    "asymmetric_padding": dict(filters=2, kernel_size=(3, 2), padding=((2, 0), (1, 3))),
    "ragged_edges_stride_gt_kernel": dict(filters=2, kernel_size=2, stride=3),
    "everything_non_square": dict(filters=2, kernel_size=(3, 2), stride=(2, 1), dilation=(1, 2),
                                  padding=((0, 1), (2, 1)), use_bias=False),
}


@pytest.mark.parametrize("backend", BACKENDS)
# 1: transposed (K, M) patches; 4 and 9: (M, K) patches (im2col.FEW_CHANNELS = 3). The input
# gradient takes the shifted path for the stride-1 configurations, the strided one otherwise.
@pytest.mark.parametrize("channels", [1, 4, 9])
@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_matches_nested_loop_reference(config_name, channels, backend):
    config = CONFIGS[config_name]
    layer = built_layer((7, 8, channels), backend, **config)
    x = np.random.default_rng(3).standard_normal((2, 7, 8, channels))
    y, dy, dx, grads = run(layer, x)
    pads = config_pads(config, (7, 8))
    b = layer.params.get("b", np.zeros(layer.filters))
    np.testing.assert_allclose(y, loop_conv2d(x, layer.params["W"], b, layer.stride, layer.dilation, pads),
                               rtol=0, atol=1e-12)
    dx_ref, dW_ref, db_ref = loop_conv2d_backward(x, layer.params["W"], dy, layer.stride,
                                                  layer.dilation, pads)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads["W"], dW_ref, rtol=0, atol=1e-12)
    if layer.use_bias:
        np.testing.assert_allclose(grads["b"], db_ref, rtol=0, atol=1e-12)
    else:
        assert "b" not in layer.params and "b" not in grads


@pytest.mark.parametrize("backend", BACKENDS)
def test_ragged_edge_cells_get_zero_input_gradient(backend):
    # kernel 2, stride 3 on 6 cells: windows cover 0-1 and 3-4; cells 2 and 5 are never read
    layer = built_layer((6, 6, 2), backend, filters=2, kernel_size=2, stride=3)
    _, _, dx, _ = run(layer, np.random.default_rng(0).standard_normal((2, 6, 6, 2)))
    for cell in (2, 5):
        assert np.all(dx[:, cell, :, :] == 0) and np.all(dx[:, :, cell, :] == 0)
    assert np.all(dx[:, :2, :2, :] != 0)


# ------------------------------------------------------------- backends agree (hypothesis)
@st.composite
def conv_configs(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    form = draw(st.sampled_from(["valid", "same", "int", "pair_of_pairs"]))
    if form in ("valid", "same"):
        padding = form
        pad_h = pad_w = 0
    elif form == "int":
        padding = draw(st.integers(0, 2))
        pad_h = pad_w = 2 * padding
    else:
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
        pad_h, pad_w = sum(padding[0]), sum(padding[1])
    # only configurations where the dilated kernel fits the padded input ("same" always fits)
    span_h, span_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    height = draw(st.integers(max(1, span_h - pad_h), max(1, span_h - pad_h) + 4))
    width = draw(st.integers(max(1, span_w - pad_w), max(1, span_w - pad_w) + 4))
    # every im2col layout: patches transposed for Cg <= 3, (M, K) from Cg = 4 on; groups 1-3
    groups = draw(st.integers(1, 3))
    group_channels = draw(st.sampled_from([1, 2, 3, 4, 5]) if groups > 1
                          else st.sampled_from([1, 2, 3, 4, 5, 8, 9, 12]))
    return dict(batch=draw(st.integers(1, 3)), input_shape=(height, width, groups * group_channels),
                layer=dict(filters=groups * draw(st.integers(1, 3)), kernel_size=(kh, kw), stride=stride,
                           dilation=dilation, padding=padding, use_bias=draw(st.booleans()),
                           groups=groups))


@given(config=conv_configs(), seed=st.integers(0, 2**16))
def test_backends_agree_with_loops_on_outputs_and_all_gradients(config, seed):
    layer = built_layer(config["input_shape"], "loops", seed=seed, **config["layer"])
    x = np.random.default_rng(seed).standard_normal((config["batch"], *config["input_shape"]))
    y_ref, dy, dx_ref, grads_ref = run(layer, x, dy_seed=seed)
    assert y_ref.shape == (config["batch"], *layer.output_shape(config["input_shape"]))
    assert dx_ref.shape == x.shape
    for backend in BACKENDS:
        layer.backend = backend  # same layer, same weights
        y, _, dx, grads = run(layer, x, dy_seed=seed)
        np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-10)
        assert grads.keys() == grads_ref.keys() == layer.params.keys()
        for key in grads:
            np.testing.assert_allclose(grads[key], grads_ref[key], rtol=0, atol=1e-10)


# ---------------------------------------------------------------------- gradient check
GRADCHECK_CONFIGS = [
    ((6, 7, 2), dict(filters=3, kernel_size=3, stride=2, padding="same")),
    ((7, 7, 4), dict(filters=2, kernel_size=3, dilation=2)),
    ((5, 6, 3), dict(filters=2, kernel_size=(3, 1), padding=((1, 2), (0, 1)))),
    ((6, 5, 5), dict(filters=2, kernel_size=(1, 2), stride=(2, 1), dilation=(1, 2), padding=1)),
]


@pytest.mark.parametrize("backend", [*BACKENDS, "loops"])
@pytest.mark.parametrize("input_shape, config", GRADCHECK_CONFIGS)
def test_gradcheck(backend, input_shape, config):
    report = check_layer(Conv2D(backend=backend, **config), input_shape, batch_size=2)
    assert report.passed, str(report)
    assert {row.name for row in report.rows} == {"input", "W", "b"}


# ---------------------------------------------------------------------------- PyTorch
@pytest.mark.torch
@pytest.mark.parametrize("backend", [*BACKENDS, "loops"])
@pytest.mark.parametrize("input_shape, config", [
    ((9, 8, 3), dict(filters=4, kernel_size=(3, 2), stride=(2, 1), dilation=(1, 2),
                     padding=((2, 0), (1, 3)))),
    ((10, 10, 5), dict(filters=3, kernel_size=3, stride=2, padding="same")),
    ((8, 9, 2), dict(filters=2, kernel_size=(2, 3), dilation=2, padding=1)),
    # stride 1, "same" with an odd total padding (even kernel, even dilated span): torch's own
    # padding="same" decides where the odd cell goes
    ((7, 8, 3), dict(filters=3, kernel_size=(2, 4), dilation=(1, 2), padding="same")),
    ((6, 7, 2), dict(filters=2, kernel_size=4, padding="same")),
])
def test_matches_pytorch(backend, input_shape, config):
    torch = pytest.importorskip("torch")
    layer = built_layer(input_shape, backend, **config)
    x = np.random.default_rng(5).standard_normal((3, *input_shape))
    y, dy, dx, grads = run(layer, x)

    for padding in torch_paddings(config, input_shape[:2]):
        W, b = layer.params["W"], layer.params["b"]
        y_t, dx_t, dW_t, db_t = torch_conv(torch, x, W, b, dy, config, padding)
        np.testing.assert_allclose(y, y_t, rtol=0, atol=1e-12)
        np.testing.assert_allclose(dx, dx_t, rtol=0, atol=1e-12)
        np.testing.assert_allclose(grads["W"], dW_t, rtol=0, atol=1e-12)
        np.testing.assert_allclose(grads["b"], db_t, rtol=0, atol=1e-12)


def torch_conv(torch, x, W, b, dy, config, padding):
    """(y, dx, dW, db) in scratchnet's layouts from torch's F.conv2d on NCHW tensors.

    padding: ((top, bottom), (left, right)) zeros added by F.pad, or "same" (torch's own rule,
    stride 1 only).
    """
    F = torch.nn.functional
    x_t = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)           # NCHW
    w_t = torch.tensor(W.transpose(3, 2, 0, 1), requires_grad=True)           # (F, C, kh, kw)
    b_t = torch.tensor(b, requires_grad=True)
    if padding == "same":
        padded = x_t
    else:
        (top, bottom), (left, right) = padding
        padded, padding = F.pad(x_t, (left, right, top, bottom)), 0
    y_t = F.conv2d(padded, w_t, b_t, stride=config.get("stride", 1), padding=padding,
                   dilation=config.get("dilation", 1))
    y_t.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    return (y_t.detach().numpy().transpose(0, 2, 3, 1), x_t.grad.numpy().transpose(0, 2, 3, 1),
            w_t.grad.numpy().transpose(2, 3, 1, 0), b_t.grad.numpy())


# ------------------------------------------------------------------------ output shape
@given(size=st.integers(1, 20), k=st.integers(1, 4), s=st.integers(1, 4), d=st.integers(1, 3),
       pad=st.integers(0, 3))
def test_output_shape_formula(size, k, s, d, pad):
    span = d * (k - 1) + 1
    layer = Conv2D(2, (k, 1), stride=(s, 1), dilation=(d, 1), padding=((pad, 0), (0, 0)))
    if size + pad < span:
        with pytest.raises(ValueError, match="larger than the padded input"):
            layer.output_shape((size, 3, 1))
        return
    assert layer.output_shape((size, 3, 1)) == ((size + pad - d * (k - 1) - 1) // s + 1, 3, 2)


@given(size=st.integers(1, 20), k=st.integers(1, 5), s=st.integers(1, 4), d=st.integers(1, 2))
def test_same_padding_gives_ceil_of_input_over_stride(size, k, s, d):
    layer = Conv2D(1, k, stride=s, dilation=d, padding="same")
    assert layer.output_shape((size, size, 1)) == (-(-size // s), -(-size // s), 1)
    (top, bottom), _ = layer.pads_for((size, size))
    assert bottom - top in (0, 1)  # the odd cell goes to the bottom


def test_same_padding_hand_examples():
    assert Conv2D(1, 3, stride=2, padding="same").pads_for((6, 5)) == ((0, 1), (1, 1))
    assert Conv2D(1, 3, stride=2, padding="same").output_shape((6, 5, 1)) == (3, 3, 1)
    assert Conv2D(1, 4, padding="same").pads_for((5, 5)) == ((1, 2), (1, 2))
    assert Conv2D(1, 1, stride=3, padding="same").output_shape((7, 7, 1)) == (3, 3, 1)


@pytest.mark.parametrize("backend", [*BACKENDS, "loops"])
def test_same_padding_extra_row_is_bottom_right_by_hand(backend):
    # 2x2 kernel of ones, "same": total padding 1 per axis, all of it at the bottom/right,
    # so y[r, q] = x[r, q] + x[r, q+1] + x[r+1, q] + x[r+1, q+1] with zeros past the edge.
    layer = Conv2D(1, 2, padding="same", backend=backend)
    layer.build((4, 4, 1), dtype="float64")
    layer.params["W"][:] = 1.0
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    y = layer.forward(x)[0, :, :, 0]
    assert y.shape == (4, 4)
    assert y[0, 0] == 0 + 1 + 4 + 5
    assert y[0, 3] == 3 + 7       # right column padded
    assert y[3, 0] == 12 + 13     # bottom row padded
    assert y[3, 3] == 15          # corner: only x itself
    dx = layer.backward(np.ones((1, 4, 4, 1)))[0, :, :, 0]
    # x[0, 0] is read by one window only; an interior cell by four
    assert dx[0, 0] == 1 and dx[1, 1] == 4 and dx[3, 3] == 4


# ---------------------------------------------------------------------------- errors
PAIR = r"an int >= 1 or an \(h, w\) pair of them"


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(filters=0, kernel_size=3), ValueError, "filters must be an int >= 1, got 0"),
    (dict(filters=2.5, kernel_size=3), TypeError, "filters must be an int >= 1, got 2.5"),
    (dict(filters=True, kernel_size=3), TypeError, "filters must be an int >= 1, got True"),
    (dict(filters=2, kernel_size=0), ValueError, f"kernel_size must be {PAIR}, got 0"),
    (dict(filters=2, kernel_size=3.0), TypeError, f"kernel_size must be {PAIR}, got 3.0"),
    (dict(filters=2, kernel_size=3, stride=0), ValueError, f"stride must be {PAIR}, got 0"),
    (dict(filters=2, kernel_size=3, stride=(1, -1)), ValueError, rf"stride must be {PAIR}, got \(1, -1\)"),
    (dict(filters=2, kernel_size=3, stride=(1, 1, 1)), ValueError,
     rf"stride must be {PAIR}, got \(1, 1, 1\)"),
    (dict(filters=2, kernel_size=3, dilation=0), ValueError, f"dilation must be {PAIR}, got 0"),
    (dict(filters=2, kernel_size=3, dilation=(1, "2")), TypeError,
     rf"dilation must be {PAIR}, got \(1, '2'\)"),
    (dict(filters=2, kernel_size=3, padding="full"), ValueError, "padding must be"),
    (dict(filters=2, kernel_size=3, backend="cuda"), ValueError,
     "unknown backend 'cuda'.*'im2col', 'scipy', 'loops'"),
    (dict(filters=2, kernel_size=3, groups=0), ValueError, "groups must be an int >= 1, got 0"),
    (dict(filters=6, kernel_size=3, groups=4), ValueError, "groups=4 must divide filters, got filters=6"),
    (dict(filters=2, kernel_size=3, kernel_initializer="ones"), ValueError, "unknown initializer 'ones'"),
])
def test_constructor_errors_name_the_layer(kwargs, error, message):
    with pytest.raises(error, match=f"^my_conv: {message}"):
        Conv2D(name="my_conv", **kwargs)


def test_input_errors_name_the_layer_and_the_numbers():
    layer = Conv2D(2, 3, name="c1")
    layer.build((8, 8, 3))
    with pytest.raises(ValueError, match=r"c1: expected a 4-D input \(N, H, W, 3\), got 3-D"):
        layer.forward(np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="c1: built for 3 input channels, got 1"):
        layer.forward(np.zeros((2, 8, 8, 1)))
    with pytest.raises(ValueError, match=r"c1: window of 3 cells along height .* \(2 \+ 0 \+ 0 = 2\)"):
        layer.forward(np.zeros((2, 2, 8, 3)))
    with pytest.raises(ValueError, match=r"c1: window of 5 cells along width \(kernel 3, dilation 2\)"):
        Conv2D(2, 3, dilation=2, name="c1").build((8, 4, 3))
    with pytest.raises(ValueError, match=r"c1: expected samples of shape \(H, W, C\)"):
        Conv2D(2, 3, name="c1").build((8, 8))
    with pytest.raises(ValueError, match="c1: backward expected dy of shape"):
        layer.forward(np.zeros((2, 8, 8, 3)))
        layer.backward(np.zeros((2, 8, 8, 2)))
    with pytest.raises(ValueError, match="c1: unknown backend 'fast'"):
        layer.backend = "fast"
    assert layer.backend == "im2col"


# --------------------------------------------------------------- dtype, switching, pickle
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("channels", [2, 5])
def test_float32_layer_stays_float32(backend, channels):
    layer = built_layer((6, 6, channels), backend, dtype="float32", filters=3, kernel_size=3,
                        stride=2, padding="same")
    x = np.random.default_rng(0).standard_normal((2, 6, 6, channels))  # float64 input
    y = layer.forward(x)
    dx = layer.backward(np.ones(y.shape))  # float64 dy
    assert y.dtype == dx.dtype == np.float32
    assert layer.grads["W"].dtype == layer.grads["b"].dtype == np.float32
    cached = [value for value in layer.cache.values() if isinstance(value, np.ndarray)]
    assert cached and all(value.dtype == np.float32 for value in cached)


def test_switching_backend_keeps_weights_and_numbers():
    layer = built_layer((6, 7, 3), "im2col", filters=4, kernel_size=(3, 2), stride=2, padding="same")
    weights = {key: value.copy() for key, value in layer.params.items()}
    x = np.random.default_rng(1).standard_normal((2, 6, 7, 3))
    y_fast, _, dx_fast, grads_fast = run(layer, x)
    layer.backend = "scipy"
    for key in weights:
        np.testing.assert_array_equal(layer.params[key], weights[key])
    y_ref, _, dx_ref, grads_ref = run(layer, x)
    np.testing.assert_allclose(y_ref, y_fast, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx_ref, dx_fast, rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads_ref["W"], grads_fast["W"], rtol=0, atol=1e-12)
    assert layer.get_config()["backend"] == "scipy"


def test_pickle_after_forward_drops_the_cache():
    layer = built_layer((16, 16, 8), "im2col", filters=4, kernel_size=3, padding="same")
    layer.forward(np.ones((8, 16, 16, 8)))
    assert layer.cache["x"].nbytes > 100_000
    data = pickle.dumps(layer)
    assert len(data) < 20_000  # the weights (3*3*8*4 + 4 floats), not the cached input
    copy = pickle.loads(data)
    assert copy.cache == {} and copy.backend == "im2col"
    np.testing.assert_array_equal(copy.params["W"], layer.params["W"])
    x = np.ones((1, 16, 16, 8))
    np.testing.assert_array_equal(copy.forward(x), layer.forward(x))


def test_pickle_after_backward_drops_the_workspace():
    # The backward's scratch arrays (kernels/workspace.py, shared by all layers) are never saved.
    layer = built_layer((16, 16, 8), "im2col", filters=4, kernel_size=3, padding="same")
    y = layer.forward(np.ones((8, 16, 16, 8)))
    layer.backward(np.ones(y.shape))
    assert layer.workspace.nbytes() > 100_000
    data = pickle.dumps(layer)
    assert len(data) < 20_000
    copy = pickle.loads(data)
    assert copy.cache == {}
    copy.forward(np.ones((2, 16, 16, 8)))
    assert copy.backward(np.ones((2, 16, 16, 4))).shape == (2, 16, 16, 8)


@pytest.mark.parametrize("channels, stride", [(1, 1), (5, 1), (3, 2)])  # shifted and strided col2im
def test_input_gradient_is_a_new_array_not_workspace_memory(channels, stride):
    # dx must survive the next backward: the kernels reuse their scratch arrays, never dx.
    layer = built_layer((7, 7, channels), "im2col", filters=3, kernel_size=3, stride=stride, padding="same")
    rng = np.random.default_rng(8)
    y = layer.forward(rng.standard_normal((2, 7, 7, channels)))
    dx_first = layer.backward(rng.standard_normal(y.shape))
    kept = dx_first.copy()
    for _ in range(2):
        layer.forward(rng.standard_normal((2, 7, 7, channels)))
        layer.backward(rng.standard_normal(y.shape))
    np.testing.assert_array_equal(dx_first, kept)
    for scratch in layer.workspace.buffers.values():
        assert not np.shares_memory(dx_first, scratch)


def test_get_config_rebuilds_the_layer():
    layer = Conv2D(5, (3, 2), stride=(2, 1), padding=((1, 0), (2, 2)), dilation=2, use_bias=False,
                   kernel_initializer="he_normal", backend="scipy", name="conv_x")
    config = layer.get_config()
    assert config == {"filters": 5, "kernel_size": (3, 2), "stride": (2, 1),
                      "padding": ((1, 0), (2, 2)), "dilation": (2, 2), "use_bias": False,
                      "kernel_initializer": "he_normal", "backend": "scipy", "name": "conv_x",
                      "groups": 1}
    assert Conv2D(**config).get_config() == config
    assert Conv2D(1, 3, padding="SAME").get_config()["padding"] == "same"


def test_build_creates_weights_of_the_documented_shapes():
    layer = Conv2D(6, (5, 3))
    assert layer.build((28, 28, 1)) == (24, 26, 6)
    assert layer.params["W"].shape == (5, 3, 1, 6) and layer.params["b"].shape == (6,)
    assert layer.params["W"].dtype == np.float32 and np.all(layer.params["b"] == 0)
    assert layer.count_params() == 5 * 3 * 6 + 6


def test_im2col_patch_view_reads_the_right_cells():
    x = np.arange(2 * 7 * 6 * 3, dtype=np.float64).reshape(2, 7, 6, 3)
    patches = im2col_kernels.patch_view(x, (2, 3), stride=(2, 1), dilation=(3, 1))
    assert patches.shape == (2, 2, 4, 2, 3, 3)
    n, r, q, i, j = 1, 1, 2, 1, 2
    np.testing.assert_array_equal(patches[n, r, q, i, j], x[n, 2 * r + 3 * i, q + j])


def test_zero_padding_is_not_copied_and_padding_is_cropped_from_dx():
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 2))
    valid = built_layer((6, 6, 2), "scipy", filters=2, kernel_size=3)
    valid.forward(x)
    assert valid.cache["x_padded"] is x  # float64 input, no padding: used as it is
    padded = built_layer((6, 6, 2), "scipy", filters=2, kernel_size=3, padding=((1, 2), (0, 3)))
    y = padded.forward(x)
    assert padded.cache["x_padded"].shape == (2, 9, 9, 2) and y.shape == (2, 7, 7, 2)
    assert padded.backward(np.ones(y.shape)).shape == x.shape


# --------------------------------------------------------------- skipping the input gradient
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("channels", [1, 3, 5])  # both im2col layouts (few / many channels)
def test_backward_params_fills_the_same_grads_as_backward(backend, channels):
    # A model's first layer skips dx (backward_params); its dW and db must not change.
    layer = built_layer((7, 6, channels), backend, filters=4, kernel_size=3, stride=2, padding="same")
    x = np.random.default_rng(2).standard_normal((3, 7, 6, channels))
    _, dy, _, grads = run(layer, x)
    layer.grads = {key: np.zeros_like(value) for key, value in layer.grads.items()}
    assert layer.backward_params(dy) is None
    for key in grads:
        np.testing.assert_array_equal(layer.grads[key], grads[key])


def test_train_step_equals_full_backward_then_update():
    # Sequential.train_step uses backward_params on the first layer; the update must be the
    # one a full backward (with dx) gives.
    from scratchnet import SGD, Sequential
    from scratchnet.layers import Activation, Dense, Flatten

    def model():
        layers = [Conv2D(3, 3, padding="same"), Activation("relu"), Flatten(), Dense(2)]
        net = Sequential(layers, input_shape=(5, 5, 2), seed=3, dtype="float64")
        return net.compile(SGD(lr=0.1), "cross_entropy")

    x = np.random.default_rng(4).standard_normal((4, 5, 5, 2))
    labels = np.array([0, 1, 1, 0])
    fast, reference = model(), model()
    fast.train_step(x, labels)
    reference.loss.forward(reference.forward(x, training=True), labels)
    dx = reference.backward(reference.loss.backward())
    assert dx.shape == x.shape
    reference.optimizer.step(reference.layers)
    for key, value in reference.get_weights().items():
        np.testing.assert_allclose(fast.get_weights()[key], value, rtol=0, atol=1e-14)


@pytest.mark.parametrize("channels", [1, 5])  # the (K, M) and the (M, K) layout
def test_bias_trick_ones_and_gradients(channels):
    # [cols, 1] @ [W2d; b] = cols @ W2d + b, and the last row of [cols, 1]^T @ dy is sum_m dy = db.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 5, channels))
    W, b = rng.standard_normal((3, 2, channels, 4)), rng.standard_normal(4)
    cols = im2col_kernels.patch_matrix(x, (3, 2), (2, 1), (1, 2), with_ones=True)
    cols_plain = im2col_kernels.patch_matrix(x, (3, 2), (2, 1), (1, 2), with_ones=False)
    ones_axis = 0 if im2col_kernels.few_channels(channels) else 1
    assert cols.shape[ones_axis] == cols_plain.shape[ones_axis] + 1
    np.testing.assert_array_equal(np.take(cols, -1, axis=ones_axis), 1)
    np.testing.assert_array_equal(np.delete(cols, -1, axis=ones_axis), cols_plain)
    y = im2col_kernels.conv2d_forward(x, W, b, (2, 1), (1, 2))
    y_plain = im2col_kernels.conv2d_forward(x, W, None, (2, 1), (1, 2))
    np.testing.assert_allclose(y, y_plain + b, rtol=0, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    _, dW, db = im2col_kernels.conv2d_backward(x, W, dy, (2, 1), (1, 2), use_bias=True)
    _, dW_plain, db_plain = im2col_kernels.conv2d_backward(x, W, dy, (2, 1), (1, 2), use_bias=False)
    assert db_plain is None
    np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW, dW_plain, rtol=1e-12, atol=1e-12)


# ----------------------------------- col2im by stride phases against the loops (kernels/col2im.py)
@given(kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       dh=st.integers(1, 3), dw=st.integers(1, 3), channels=st.integers(1, 6), filters=st.integers(1, 4),
       extra_h=st.integers(0, 5), extra_w=st.integers(0, 5), n_samples=st.integers(1, 3),
       groups=st.sampled_from([1, 1, 2]))
def test_phase_col2im_matches_loops(kh, kw, sh, sw, dh, dw, channels, filters, extra_h, extra_w, n_samples,
                                    groups):
    # Non-square kernels, strides and dilations; extra = 0 is a 1x1 output (every add shifted to
    # the end of its phase); strides above the kernel leave phases no window reaches (zeros).
    height, width = dh * (kh - 1) + 1 + extra_h, dw * (kw - 1) + 1 + extra_w
    rng = np.random.default_rng(kh * 1000 + kw * 100 + channels * 10 + sh)
    x = rng.standard_normal((n_samples, height, width, groups * channels))
    W = rng.standard_normal((kh, kw, channels, groups * filters))
    dy = rng.standard_normal(loops.conv2d_forward(x, W, None, (sh, sw), (dh, dw), groups).shape)
    dx_ref = loops.conv2d_backward(x, W, dy, (sh, sw), (dh, dw), groups)[0]
    out = np.full(x.shape, np.nan)  # every cell must be written, the ones no window reads with 0
    dx = col2im.input_gradient(dy, W, (sh, sw), (dh, dw), Workspace(), groups, out=out)
    assert dx is out
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-12)


@given(kh=st.integers(1, 4), kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3),
       dh=st.integers(1, 2), extra_h=st.integers(0, 5), extra_w=st.integers(0, 5),
       top=st.integers(0, 3), bottom=st.integers(0, 3), left=st.integers(0, 3), right=st.integers(0, 3))
def test_phase_col2im_with_pads_writes_only_the_unpadded_cells(kh, kw, sh, sw, dh, extra_h, extra_w,
                                                               top, bottom, left, right):
    # ``pads``: out is the gradient of the unpadded input, the interior of the loops' dx_padded;
    # pads of 0-3 against strides of 1-3 cover a phase whose first rows all lie in the padding.
    height, width = dh * (kh - 1) + 1 + extra_h, kw + extra_w  # padded sizes
    inner_h, inner_w = height - top - bottom, width - left - right
    assume(inner_h >= 1 and inner_w >= 1)
    rng = np.random.default_rng(kh * 1000 + kw * 100 + top * 10 + sh)
    x_padded = rng.standard_normal((2, height, width, 3))
    W = rng.standard_normal((kh, kw, 3, 2))
    dy = rng.standard_normal(loops.conv2d_forward(x_padded, W, None, (sh, sw), (dh, 1)).shape)
    dx_ref = loops.conv2d_backward(x_padded, W, dy, (sh, sw), (dh, 1))[0]
    out = np.full((2, inner_h, inner_w, 3), np.nan)  # every cell must be written
    dx = col2im.input_gradient(dy, W, (sh, sw), (dh, 1), Workspace(), out=out,
                               pads=((top, bottom), (left, right)))
    assert dx is out
    np.testing.assert_allclose(dx, dx_ref[:, top:top + inner_h, left:left + inner_w], rtol=0, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
def test_im2col_layer_input_gradient_is_contiguous(stride):
    # The kernel pads x itself and returns the unpadded x's gradient: a C-contiguous array, not a
    # cropped view (the next layer's element-wise backward is slower on a view).
    layer = Conv2D(4, 3, stride=stride, padding="same", backend="im2col")
    layer.build((8, 8, 3), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 3))
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.flags.c_contiguous


LAYER_BACKENDS = [(Conv2D, dict(filters=3), backend) for backend in ("im2col", "winograd", "scipy")] + [
    (layer_class, options, backend) for layer_class, options in ((DepthwiseConv2D, dict(depth_multiplier=2)),
                                                                 (SeparableConv2D, dict(filters=3)))
    for backend in ("offsets", "im2col", "scipy")]


@pytest.mark.parametrize("layer_class, options, backend", LAYER_BACKENDS,
                         ids=[f"{cls.__name__}-{backend}" for cls, _, backend in LAYER_BACKENDS])
def test_backward_unpadded_is_the_gradient_of_x_for_every_backend(layer_class, options, backend):
    # ConvBase's one hook: whether the kernel padded x itself (Conv2D's im2col, Winograd: x's own
    # array, no cropped view) or ConvBase cropped a padded gradient, it is dL/dx for x (N, H, W, C).
    x = np.random.default_rng(1).standard_normal((2, 7, 6, 4))
    layer = layer_class(kernel_size=3, padding=((2, 0), (1, 1)), backend=backend, **options)
    reference = layer_class(kernel_size=3, padding=((2, 0), (1, 1)), backend="loops", **options)
    for built in (layer, reference):
        built.build(x.shape[1:], rng=np.random.default_rng(0), dtype="float64")
    dy = np.random.default_rng(2).standard_normal(layer.forward(x).shape)
    reference.forward(x)
    dx, dx_ref = layer.backward_unpadded(dy, need_dx=True), reference.backward_unpadded(dy, need_dx=True)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-12)
    if backend in ("im2col", "winograd") and layer_class is Conv2D:
        assert dx.base is None and dx.flags.c_contiguous
