"""Winograd F(2x2, 3x3) and F(4x4, 3x3) (kernels/winograd.py, Conv2D(backend="winograd"/"auto"))
against the nested-loop definition in float64, the scipy backend for many channels, gradcheck,
and float32 error bounds. No timing is asserted (speed: benchmarks/README.md)."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scratchnet.gradcheck import check_layer
from scratchnet.kernels import loops, scipy_conv
from scratchnet.kernels import winograd as wg
from scratchnet.layers import Conv2D

# float64 tolerances: F(2x2, 3x3)'s transforms hold only 0, +-1, +-1/2 (exact in binary);
# F(4x4, 3x3)'s hold 1/6, 1/24 and entries up to 8, so its rounding errors grow ~100x (docstring)
TOLERANCE = {2: 1e-10, 4: 1e-9}


def direct_1d(d, g):
    """Valid 1-D correlation: out[k] = sum_i d[k + i] g[i]."""
    return np.array([d[k:k + 3] @ g for k in range(len(d) - 2)])


@pytest.mark.parametrize("m", [2, 4])
def test_one_dimensional_identity_by_hand(m):
    """A^T [(G g) * (B^T d)] is the valid correlation of d (m + 2 numbers) with g (3 numbers)."""
    BT, G, AT = wg.transforms(m, np.float64)
    rng = np.random.default_rng(m)
    d, g = rng.standard_normal(m + 2), rng.standard_normal(3)
    np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), direct_1d(d, g), rtol=0, atol=1e-13)


def test_f2_hand_example():
    # d = 1..4, g = (1, 0, -1): out = (1 - 3, 2 - 4) = (-2, -2)
    BT, G, AT = wg.transforms(2, np.float64)
    d, g = np.array([1.0, 2, 3, 4]), np.array([1.0, 0, -1])
    np.testing.assert_array_equal(AT @ ((G @ g) * (BT @ d)), [-2.0, -2.0])


def test_unknown_tile_size_is_rejected():
    with pytest.raises(ValueError, match="winograd: output tile size must be one of \\[2, 4\\], got 3"):
        wg.transforms(3, np.float64)


def loop_reference(x_padded, W, b, dy, pads=((0, 0), (0, 0))):
    """(y, dx, dW, db) of the loop backend on ``x_padded``. With ``pads`` (x_padded is x padded by
    them, as the kernel pads it itself) dx is cropped to x's own cells: the kernel's dx is the
    gradient of the x it was given."""
    y = loops.conv2d_forward(x_padded, W, b)
    dx_padded, dW, db = loops.conv2d_backward(x_padded, W, dy)
    (top, bottom), (left, right) = pads
    height, width = x_padded.shape[1:3]
    return y, dx_padded[:, top:height - bottom, left:width - right], dW, db


def check_against(reference, x_padded, W, b, dy, m, need_dx=True, chunk_images=None):
    y_ref, dx_ref, dW_ref, db_ref = reference
    y, saved = wg.conv2d_forward(x_padded, W, b, m, chunk_images=chunk_images)
    dx, dW, db = wg.conv2d_backward(saved, W, dy, x_padded.shape, need_input_gradient=need_dx)
    tol = TOLERANCE[m]
    assert y.shape == y_ref.shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=tol)
    np.testing.assert_allclose(dW, dW_ref, rtol=0, atol=tol)
    np.testing.assert_allclose(db, db_ref, rtol=0, atol=tol)
    if need_dx:
        assert dx.shape == x_padded.shape
        np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=tol)
    else:
        assert dx is None


@settings(max_examples=40, deadline=None)
@given(m=st.sampled_from([2, 4]), n=st.integers(1, 5), height=st.integers(3, 11), width=st.integers(3, 11),
       channels=st.integers(1, 4), filters=st.integers(1, 4), use_bias=st.booleans(),
       chunk_images=st.one_of(st.none(), st.integers(1, 3)), seed=st.integers(0, 2**16))
def test_matches_loops_float64(m, n, height, width, channels, filters, use_bias, chunk_images, seed):
    """Every padded size from 3x3 (one output pixel) up: whole and ragged tiles alike; the batch
    in chunks of 1-3 images (a last chunk shorter than the others, or one chunk of it all)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, height, width, channels))
    W = rng.standard_normal((3, 3, channels, filters))
    b = rng.standard_normal(filters) if use_bias else None
    dy = rng.standard_normal((n, height - 2, width - 2, filters))
    check_against(loop_reference(x, W, b, dy), x, W, b, dy, m, chunk_images=chunk_images)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("n, chunk_images", [(1, 1), (1, 4), (5, 2), (7, 3), (6, 3), (4, 1), (3, 5)])
@pytest.mark.parametrize("need_dx", [True, False])
def test_chunk_boundaries_match_loops_float64(m, n, chunk_images, need_dx):
    """Chunks that split the batch evenly, unevenly (a shorter last chunk), one image each, or one
    chunk larger than the batch; odd, ragged image sizes (9x10 padded: 7x8 outputs). dx, dW, db."""
    rng = np.random.default_rng(n * 10 + chunk_images)
    x = rng.standard_normal((n, 9, 10, 3))
    W = rng.standard_normal((3, 3, 3, 2))
    b = rng.standard_normal(2)
    dy = rng.standard_normal((n, 7, 8, 2))
    check_against(loop_reference(x, W, b, dy), x, W, b, dy, m, need_dx, chunk_images)


def test_default_chunks_split_the_batch_and_reuse_the_workspace(monkeypatch):
    """With CHUNK_BYTES small the default chunk is 2 images: 5 images go as 2 + 2 + 1, the short
    last chunk takes the front of the full chunk's workspace arrays, and a second forward and
    backward (ragged tiles: 7x8 outputs, padding 1) replace none of them."""
    m, channels, filters = 4, 3, 2
    tile_bytes = (m + 2) ** 2 * 4 * channels * 8  # alpha^2 x 2x2 tiles per image x C x float64
    monkeypatch.setattr(wg, "CHUNK_BYTES", 2 * tile_bytes + 1)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 7, 8, channels))
    pads = ((1, 1), (1, 1))
    W = rng.standard_normal((3, 3, channels, filters))
    dy = rng.standard_normal((5, 7, 8, filters))
    workspace = wg.Workspace()
    results = []
    for _ in range(2):
        y, saved = wg.conv2d_forward(x, W, None, m, workspace=workspace, pads=pads)
        results.append((y, *wg.conv2d_backward(saved, W, dy, (5, 9, 10, channels), workspace=workspace)))
        if len(results) == 1:
            arrays_after_first_call = dict(workspace.buffers)
    assert saved["chunk_images"] == 2 and wg.batch_chunks(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert workspace.buffers.keys() == arrays_after_first_call.keys()
    assert all(workspace.buffers[name] is array for name, array in arrays_after_first_call.items())
    reference = loop_reference(np.pad(x, ((0, 0), *pads, (0, 0))), W, None, dy, pads)
    for result in results:
        for got, want in zip(result, reference):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_forward_keeps_the_transformed_tiles_in_new_arrays():
    """The forward keeps V (alpha^2, p, C) per chunk for the backward, in new arrays (never the
    shared workspace's, which the next layer overwrites), and U (C*F*36 numbers); not x nor a
    padded copy of it. 2 images of 32x32 padded to 34x34: 8x8 tiles of 6x6 per image."""
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 16))
    W = np.zeros((3, 3, 16, 8))
    workspace = wg.Workspace()
    _, saved = wg.conv2d_forward(x, W, None, pads=((1, 1), (1, 1)), workspace=workspace, chunk_images=1)
    assert [V.shape for V in saved["V_chunks"]] == [(36, 64, 16)] * 2
    for V in saved["V_chunks"]:
        assert not np.shares_memory(V, x)
        assert not any(np.shares_memory(V, buffer) for buffer in workspace.buffers.values())
    arrays = [value for value in saved.values() if isinstance(value, np.ndarray)]
    assert sum(array.nbytes for array in arrays) == 36 * 16 * 8 * 8  # U only, besides V_chunks
    layer = built((32, 32, 16), "winograd", filters=8, kernel_size=3, padding="same")
    layer.forward(x)
    assert "x" not in layer.cache["winograd"] and layer.cache["padded_shape"] == (2, 34, 34, 16)
    arrays = [value for value in layer.cache.values() if isinstance(value, np.ndarray)]
    assert arrays == []


@settings(max_examples=30, deadline=None)
@given(m=st.sampled_from([2, 4]), n=st.integers(1, 4), height=st.integers(1, 9), width=st.integers(1, 9),
       pads=st.tuples(*[st.integers(0, 2)] * 4), chunk_images=st.one_of(st.none(), st.integers(1, 3)),
       seed=st.integers(0, 2**16))
def test_padding_inside_the_kernel_matches_loops_float64(m, n, height, width, pads, chunk_images, seed):
    """x unpadded, the zero padding done by the kernel chunk by chunk (as Conv2D runs it): every
    padding from 0 to 2 cells per side, whole and ragged tiles, chunks of 1-3 images."""
    top, bottom, left, right = pads
    assume(height + top + bottom >= 3 and width + left + right >= 3)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, height, width, 2))
    x_padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    W = rng.standard_normal((3, 3, 2, 3))
    b = rng.standard_normal(3)
    dy = rng.standard_normal((n, x_padded.shape[1] - 2, x_padded.shape[2] - 2, 3))
    reference = loop_reference(x_padded, W, b, dy, ((top, bottom), (left, right)))
    y, saved = wg.conv2d_forward(x, W, b, m, chunk_images=chunk_images, pads=((top, bottom), (left, right)))
    results = (y, *wg.conv2d_backward(saved, W, dy, x_padded.shape))
    for got, want in zip(results, reference):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[m])


@pytest.mark.parametrize("pads", [((1, 1), (1, 1)), ((2, 0), (1, 3)), ((0, 0), (0, 2)), ((3, 3), (0, 0))])
@pytest.mark.parametrize("chunk_images", [None, 2])
def test_kernel_pads_each_chunk_itself_float64(pads, chunk_images):
    """x unpadded plus ``pads`` gives the same y, dW, db as x padded beforehand, and dx is the
    gradient of the unpadded x: the interior of the padded input's gradient, a contiguous array."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 5, 7, 3))
    (top, bottom), (left, right) = pads
    x_padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    W = rng.standard_normal((3, 3, 3, 2))
    b = rng.standard_normal(2)
    dy = rng.standard_normal((3, x_padded.shape[1] - 2, x_padded.shape[2] - 2, 2))
    y_ref, dx_ref, dW_ref, db_ref = loop_reference(x_padded, W, b, dy, pads)
    for m in (2, 4):
        y, saved = wg.conv2d_forward(x, W, b, m, chunk_images=chunk_images, pads=pads)
        dx, dW, db = wg.conv2d_backward(saved, W, dy, x_padded.shape)
        assert dx.shape == x.shape and dx.flags.c_contiguous
        for got, want in ((y, y_ref), (dx, dx_ref), (dW, dW_ref), (db, db_ref)):
            np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[m])


@settings(max_examples=12, deadline=None)
@given(m=st.sampled_from([2, 4]), height=st.integers(3, 9), width=st.integers(3, 9),
       channels=st.integers(1, 64), filters=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_many_channels_match_scipy_backend_float64(m, height, width, channels, filters, seed):
    """C and F up to 64 (the loop oracle is too slow there; the scipy backend is checked against
    it in test_conv.py)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, height, width, channels))
    W = rng.standard_normal((3, 3, channels, filters))
    b = rng.standard_normal(filters)
    dy = rng.standard_normal((2, height - 2, width - 2, filters))
    y = scipy_conv.conv2d_forward(x, W, b)
    reference = (y, *scipy_conv.conv2d_backward(x, W, dy))
    check_against(reference, x, W, b, dy, m, need_dx=bool(seed % 2))


@pytest.mark.parametrize("m, bound", [(2, 2e-6), (4, 2e-5)])
def test_float32_error_relative_to_output_scale(m, bound):
    """float32 Winograd against a float64 direct sum, C = F = 64 (measured: ~3e-7 and ~3e-6)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 12, 12, 64))
    W = rng.standard_normal((3, 3, 64, 64))
    dy = rng.standard_normal((4, 10, 10, 64))
    y_ref = scipy_conv.conv2d_forward(x, W, None)
    dx_ref, dW_ref, _ = scipy_conv.conv2d_backward(x, W, dy)
    y, saved = wg.conv2d_forward(x.astype(np.float32), W.astype(np.float32), None, m)
    dx, dW, db = wg.conv2d_backward(saved, W.astype(np.float32), dy.astype(np.float32), x.shape)
    assert y.dtype == dx.dtype == dW.dtype == db.dtype == np.float32
    for got, want in ((y, y_ref), (dx, dx_ref), (dW, dW_ref)):
        assert np.abs(got - want).max() < bound * np.abs(want).max()


# ------------------------------------------------------------------ the Conv2D backends
def built(input_shape, backend, **kwargs):
    layer = Conv2D(backend=backend, **kwargs)
    layer.build(input_shape, rng=np.random.default_rng(0), dtype="float64")
    layer.params["b"][:] = np.random.default_rng(1).standard_normal(layer.filters)
    return layer


@pytest.mark.parametrize("padding", ["same", "valid", 1, ((2, 0), (1, 3))])
@pytest.mark.parametrize("backend", ["winograd", "auto"])
def test_layer_matches_loops_backend(padding, backend):
    layer = built((7, 9, 16), "loops", filters=16, kernel_size=3, padding=padding)
    x = np.random.default_rng(2).standard_normal((2, 7, 9, 16))
    y_ref = layer.forward(x)
    dy = np.random.default_rng(3).standard_normal(y_ref.shape)
    dx_ref = layer.backward(dy)
    grads_ref = {key: value.copy() for key, value in layer.grads.items()}
    layer.backend = backend
    y = layer.forward(x)
    assert layer.cache["backend"] == "winograd"  # auto: 16 channels, 16 filters, 3x3, stride 1
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(layer.backward(dy), dx_ref, rtol=0, atol=1e-9)
    for key in grads_ref:
        np.testing.assert_allclose(layer.grads[key], grads_ref[key], rtol=0, atol=1e-9)


def test_gradcheck_winograd():
    report = check_layer(Conv2D(3, 3, padding="same", backend="winograd"), (6, 7, 2), batch_size=2)
    assert report.passed, str(report)
    assert {row.name for row in report.rows} == {"input", "W", "b"}


@pytest.mark.parametrize("input_shape, config, expected", [
    ((8, 8, 16), dict(filters=16, kernel_size=3, padding="same"), "winograd"),
    ((8, 8, 3), dict(filters=32, kernel_size=3, padding="same"), "im2col"),      # few channels
    ((8, 8, 32), dict(filters=8, kernel_size=3, padding="same"), "im2col"),      # few filters
    ((8, 8, 16), dict(filters=16, kernel_size=3, stride=2, padding="same"), "im2col"),
    ((8, 8, 16), dict(filters=16, kernel_size=5, padding="same"), "im2col"),
    ((8, 8, 16), dict(filters=16, kernel_size=3, dilation=2, padding="same"), "im2col"),
    ((8, 8, 16), dict(filters=16, kernel_size=3, groups=2, padding="same"), "im2col"),
    ((3, 3, 16), dict(filters=16, kernel_size=3, padding="valid"), "im2col"),    # one output pixel
])
def test_auto_picks_winograd_only_where_it_applies_and_pays(input_shape, config, expected):
    layer = Conv2D(backend="auto", **config)
    layer.build(input_shape, rng=np.random.default_rng(0), dtype="float32")
    layer.forward(np.ones((1, *input_shape), dtype=np.float32), training=True)
    assert layer.cache["backend"] == expected
    assert layer.backend == "auto"


@pytest.mark.parametrize("config", [dict(kernel_size=5), dict(kernel_size=3, stride=2),
                                    dict(kernel_size=3, dilation=2), dict(kernel_size=3, groups=2)])
def test_winograd_rejects_what_it_cannot_compute(config):
    with pytest.raises(ValueError, match="c1: backend 'winograd' needs kernel_size 3x3, stride 1"):
        Conv2D(4, backend="winograd", name="c1", **config)
    layer = Conv2D(4, name="c1", **config)
    layer.build((9, 9, 4), rng=np.random.default_rng(0))
    layer.backend = "winograd"  # switched on a built layer: the forward says why it cannot run
    with pytest.raises(ValueError, match="c1: backend 'winograd' needs kernel_size 3x3"):
        layer.forward(np.ones((1, 9, 9, 4)))


def test_first_layer_skips_input_gradient():
    layer = built((6, 6, 2), "winograd", filters=2, kernel_size=3)
    layer.forward(np.ones((1, 6, 6, 2)))
    assert layer.backward_params(np.ones((1, 4, 4, 2))) is None
    assert set(layer.grads) == {"W", "b"}


def test_resnet8_auto_trains_like_im2col_float64():
    """A zoo network with backend="auto" (Winograd in its 3x3 stride-1 layers with >= 16
    channels, im2col elsewhere): the same loss and weights after two Adam steps as im2col."""
    from scratchnet import Adam
    from scratchnet.models import get_model

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 12, 12, 3))
    labels = rng.integers(0, 10, size=4)
    results = {}
    for backend in ("im2col", "auto"):
        model = get_model("resnet8", input_shape=(12, 12, 3), dtype="float64", backend=backend, seed=3)
        model.compile(optimizer=Adam(lr=1e-2), loss="cross_entropy")
        losses = [model.train_step(x, labels)[0] for _ in range(2)]
        model.forward(x)  # train_step released the caches; an inference forward refills them
        used = {layer.cache["backend"] for layer in _convs(model)}
        weights = model.get_weights()  # {name: array}
        results[backend] = (losses, {name: np.array(w) for name, w in weights.items()}, used)
    assert results["im2col"][2] == {"im2col"} and results["auto"][2] == {"im2col", "winograd"}
    np.testing.assert_allclose(results["auto"][0], results["im2col"][0], rtol=0, atol=1e-10)
    assert results["auto"][1].keys() == results["im2col"][1].keys()
    for name, want in results["im2col"][1].items():
        np.testing.assert_allclose(results["auto"][1][name], want, rtol=0, atol=1e-9, err_msg=name)


def _convs(model):
    from scratchnet.layer_tree import iter_layers

    return [layer for layer in iter_layers(model.layers) if isinstance(layer, Conv2D)]


@pytest.mark.parametrize("layout", ["channels strided", "rows reversed", "images strided"])
@pytest.mark.parametrize("size", [8, 9])
def test_non_contiguous_inputs_match_loops_float64(layout, size):
    """The tiles are copied a run of C (or F) numbers at a time (``channel_runs``); inputs and
    output gradients that are views with other strides give the same results (size 8: whole
    tiles, dy used in place; 9: ragged tiles, dy copied into a frame)."""
    rng = np.random.default_rng(11)
    x_full = rng.standard_normal((6, size, size, 6))
    dy_full = rng.standard_normal((6, size, size, 4))
    views = {"channels strided": lambda a: a[:3, :, :, ::2], "rows reversed": lambda a: a[:3, ::-1],
             "images strided": lambda a: a[::2, :, :, :3 if a.shape[3] == 6 else 2]}
    x, dy = views[layout](x_full), views[layout](dy_full)
    W = rng.standard_normal((3, 3, x.shape[3], dy.shape[3]))
    b = rng.standard_normal(dy.shape[3])
    pads = ((1, 1), (1, 1))
    x_padded = np.pad(x, ((0, 0), *pads, (0, 0)))
    reference = loop_reference(x_padded, W, b, dy, pads)
    for m in (2, 4):
        y, saved = wg.conv2d_forward(x, W, b, m, pads=pads, chunk_images=2)
        results = (y, *wg.conv2d_backward(saved, W, dy, x_padded.shape))
        for got, want in zip(results, reference):
            np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[m])


def test_a_layer_without_bias_skips_the_bias_sum_and_keeps_its_gradients_right():
    # use_bias=False: the kernel returns db None (the sum over every output is never computed);
    # dx and dW stay those of the loop backend
    rng = np.random.default_rng(5)
    x, W = rng.standard_normal((3, 8, 8, 4)), rng.standard_normal((3, 3, 4, 5))
    dy = rng.standard_normal((3, 6, 6, 5))
    _, saved = wg.conv2d_forward(x, W, None)
    dx, dW, db = wg.conv2d_backward(saved, W, dy, x.shape, use_bias=False)
    dx_ref, dW_ref, _ = loops.conv2d_backward(x, W, dy)
    assert db is None
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dW, dW_ref, rtol=1e-9, atol=1e-9)
    layer = Conv2D(5, 3, padding="same", use_bias=False, backend="winograd")
    layer.build((6, 6, 4), rng=np.random.default_rng(0), dtype="float64")
    assert check_layer(layer, (6, 6, 4), batch_size=2).passed
    assert "b" not in layer.grads
