"""Grouped, depthwise and separable convolutions: every backend against the loop definition
(kernels/loops.py), DepthwiseConv2D against Conv2D(groups=C) with the kernel rearranged,
SeparableConv2D against the two layers it composes, gradcheck, PyTorch, errors, config, pickle."""

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from padding_reference import torch_paddings

from scratchnet.gradcheck import check_layer
from scratchnet.layers import Conv2D, DepthwiseConv2D, SeparableConv2D

CONV_BACKENDS = ["im2col", "scipy", "loops"]
DEPTHWISE_BACKENDS = ["offsets", "im2col", "scipy", "loops"]


def built(layer, input_shape, seed=0, dtype="float64"):
    layer.build(input_shape, rng=np.random.default_rng(seed), dtype=dtype)
    if "b" in layer.params:  # a zero bias would hide a wrong bias path
        layer.params["b"][:] = np.random.default_rng(seed + 1).standard_normal(layer.params["b"].shape)
    return layer


def run(layer, x, dy_seed=7):
    y = layer.forward(x)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape)
    dx = layer.backward(dy)
    return y, dy, dx, {key: value.copy() for key, value in layer.grads.items()}


def assert_same(result, reference, atol=1e-10):
    for got, want in zip(result, reference):
        if isinstance(want, dict):
            assert got.keys() == want.keys()
            for key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=0, atol=atol)
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=atol)


# ------------------------------------------------------------------ hypothesis configurations
@st.composite
def geometry(draw):
    """kernel, stride, dilation, padding and an input size the dilated kernel fits in."""
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.one_of(st.sampled_from(["valid", "same"]), st.integers(0, 1),
                             st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 1)),
                                       st.tuples(st.integers(0, 1), st.integers(0, 2)))))
    height = draw(st.integers(dilation[0] * (kh - 1) + 1, dilation[0] * (kh - 1) + 4))
    width = draw(st.integers(dilation[1] * (kw - 1) + 1, dilation[1] * (kw - 1) + 4))
    return dict(kernel_size=(kh, kw), stride=stride, dilation=dilation, padding=padding), (height, width)


@given(config=geometry(), groups=st.integers(1, 4), group_channels=st.integers(1, 5),
       group_filters=st.integers(1, 3), use_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_grouped_conv2d_backends_agree_with_loops(config, groups, group_channels, group_filters, use_bias,
                                                  seed):
    options, hw = config
    shape = (*hw, groups * group_channels)
    layer = built(Conv2D(groups * group_filters, groups=groups, use_bias=use_bias, backend="loops",
                         **options), shape, seed)
    x = np.random.default_rng(seed).standard_normal((2, *shape))
    reference = run(layer, x, seed)
    assert reference[0].shape == (2, *layer.output_shape(shape))
    for backend in ["im2col", "scipy"]:
        layer.backend = backend
        assert_same(run(layer, x, seed), reference)


@given(config=geometry(), channels=st.integers(1, 5), multiplier=st.integers(1, 3), use_bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_depthwise_backends_agree_with_grouped_loops_conv(config, channels, multiplier, use_bias, seed):
    # The independent reference: Conv2D(groups=C, filters=C*M) by loops, with the depthwise
    # kernel (kh, kw, C, M) rearranged entry by entry into the grouped one (kh, kw, 1, C*M).
    options, hw = config
    shape = (*hw, channels)
    layer = built(DepthwiseConv2D(depth_multiplier=multiplier, use_bias=use_bias, **options), shape, seed)
    grouped = built(Conv2D(channels * multiplier, groups=channels, use_bias=use_bias, backend="loops",
                           **options), shape, seed)
    W = layer.params["W"]
    for c in range(channels):
        for m in range(multiplier):
            grouped.params["W"][:, :, 0, c * multiplier + m] = W[:, :, c, m]  # output channel c*M + m
    if use_bias:
        grouped.params["b"][:] = layer.params["b"]
    x = np.random.default_rng(seed).standard_normal((2, *shape))
    y_ref, _, dx_ref, grads_ref = run(grouped, x, seed)
    dW_ref = np.stack([grads_ref["W"][:, :, 0, c * multiplier:(c + 1) * multiplier]
                       for c in range(channels)], axis=2)  # back to (kh, kw, C, M)
    assert layer.output_shape(shape) == grouped.output_shape(shape)
    for backend in DEPTHWISE_BACKENDS:
        layer.backend = backend
        y, _, dx, grads = run(layer, x, seed)
        np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(grads["W"], dW_ref, rtol=0, atol=1e-10)
        if use_bias:
            np.testing.assert_allclose(grads["b"], grads_ref["b"], rtol=0, atol=1e-10)
        assert grads.keys() == layer.params.keys()


@given(config=geometry(), channels=st.integers(1, 4), multiplier=st.integers(1, 2), filters=st.integers(1, 4),
       use_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_separable_equals_depthwise_then_pointwise_loops(config, channels, multiplier, filters, use_bias,
                                                         seed):
    options, hw = config
    shape = (*hw, channels)
    layer = built(SeparableConv2D(filters, depth_multiplier=multiplier, use_bias=use_bias, **options),
                  shape, seed)
    depthwise = built(DepthwiseConv2D(depth_multiplier=multiplier, use_bias=False, backend="loops",
                                      **options), shape)
    pointwise = built(Conv2D(filters, 1, use_bias=use_bias, backend="loops"),
                      depthwise.output_shape(shape))
    depthwise.params["W"][...] = layer.params["depthwise_W"]
    pointwise.params["W"][...] = layer.params["pointwise_W"]
    if use_bias:
        pointwise.params["b"][...] = layer.params["b"]
    x = np.random.default_rng(seed).standard_normal((2, *shape))
    y_ref = pointwise.forward(depthwise.forward(x))
    dy = np.random.default_rng(seed).standard_normal(y_ref.shape)
    dx_ref = depthwise.backward(pointwise.backward(dy))
    grads_ref = {"depthwise_W": depthwise.grads["W"], "pointwise_W": pointwise.grads["W"]}
    if use_bias:
        grads_ref["b"] = pointwise.grads["b"]
    for backend in DEPTHWISE_BACKENDS:
        layer.backend = backend
        y, _, dx, grads = run(layer, x, seed)
        assert_same((y, dx, grads), (y_ref, dx_ref, grads_ref))


# ------------------------------------------------------------------ hand-worked example
@pytest.mark.parametrize("backend", CONV_BACKENDS)
def test_groups_keep_channels_apart_by_hand(backend):
    # 4 channels, 2 groups, 1x1 kernel of ones: filter 0 sums channels 0-1, filter 1 channels 2-3
    layer = Conv2D(2, 1, groups=2, use_bias=False, backend=backend)
    layer.build((1, 1, 4), dtype="float64")
    layer.params["W"][:] = 1.0
    assert layer.params["W"].shape == (1, 1, 2, 2)
    x = np.array([1.0, 10.0, 100.0, 1000.0]).reshape(1, 1, 1, 4)
    np.testing.assert_array_equal(layer.forward(x).ravel(), [11.0, 1100.0])
    dx = layer.backward(np.array([1.0, 2.0]).reshape(1, 1, 1, 2))
    np.testing.assert_array_equal(dx.ravel(), [1.0, 1.0, 2.0, 2.0])
    np.testing.assert_array_equal(layer.grads["W"][0, 0], [[1.0, 200.0], [10.0, 2000.0]])


# ------------------------------------------------------------------ gradient checks
def layer_cases(backends_conv, backends_depthwise):
    for backend in backends_conv:
        yield Conv2D(4, (3, 2), groups=2, stride=2, padding="same", backend=backend), (6, 5, 6)
        yield Conv2D(6, 3, groups=3, dilation=(2, 1), padding=1, use_bias=False, backend=backend), (7, 5, 3)
    for backend in backends_depthwise:
        yield (DepthwiseConv2D((3, 2), depth_multiplier=2, stride=(2, 1), padding="same", backend=backend),
               (6, 5, 3))
        yield DepthwiseConv2D(3, dilation=2, use_bias=False, backend=backend), (6, 7, 2)
        yield (SeparableConv2D(3, (2, 3), depth_multiplier=2, stride=2, padding="same", backend=backend),
               (5, 6, 2))
        yield SeparableConv2D(2, 3, padding=((1, 0), (0, 2)), use_bias=False, backend=backend), (5, 4, 3)


@pytest.mark.parametrize("layer, input_shape", list(layer_cases(CONV_BACKENDS, DEPTHWISE_BACKENDS)),
                         ids=lambda value: repr(value) if not isinstance(value, tuple) else str(value))
def test_gradcheck(layer, input_shape):
    report = check_layer(layer, input_shape, batch_size=2)
    assert report.passed, str(report)
    probe = copy.deepcopy(layer)
    probe.build(input_shape)
    assert {row.name for row in report.rows} == {"input", *probe.params}  # every parameter checked


# ------------------------------------------------------------------ PyTorch
def torch_reference(torch, x, W_torch, b, padding, options, groups, dy):
    """y, dx, dW, db from torch.nn.functional.conv2d (NCHW). ``padding``: ((top, bottom), (left,
    right)) zeros added by F.pad, or "same" (torch's own rule, stride 1 only)."""
    F = torch.nn.functional
    x_t = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    w_t = torch.tensor(W_torch, requires_grad=True)
    b_t = torch.tensor(b, requires_grad=True)
    padded = x_t
    if padding != "same":
        (top, bottom), (left, right) = padding
        padded, padding = F.pad(x_t, (left, right, top, bottom)), 0
    y_t = F.conv2d(padded, w_t, b_t, stride=options.get("stride", 1), padding=padding,
                   dilation=options.get("dilation", 1), groups=groups)
    y_t.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    return (y_t.detach().numpy().transpose(0, 2, 3, 1), x_t.grad.numpy().transpose(0, 2, 3, 1),
            w_t.grad.numpy(), b_t.grad.numpy())


TORCH_GEOMETRIES = [  # "same" with stride 2 / even kernel: an odd total padding (bottom/right)
    dict(kernel_size=3, stride=2, padding="same"),
    dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1), padding="same"),
    dict(kernel_size=(2, 4), padding="same"),  # stride 1: torch's own padding="same" too
    dict(kernel_size=(3, 2), padding=((2, 0), (1, 1))),
]


@pytest.mark.torch
@pytest.mark.parametrize("backend", ["scipy", "im2col"])
@pytest.mark.parametrize("options", TORCH_GEOMETRIES)
@pytest.mark.parametrize("channels, filters, groups", [(6, 4, 2), (6, 9, 3), (4, 8, 4)])
def test_grouped_conv_matches_pytorch(backend, options, channels, filters, groups):
    torch = pytest.importorskip("torch")
    input_shape = (9, 8, channels)
    layer = built(Conv2D(filters, groups=groups, backend=backend, **options), input_shape)
    x = np.random.default_rng(5).standard_normal((3, *input_shape))
    y, dy, dx, grads = run(layer, x)
    # (kh, kw, C/g, F) -> torch's (F, C/g, kh, kw): the same grouping rule, filter f in group f // (F/g)
    W_torch = layer.params["W"].transpose(3, 2, 0, 1)
    for padding in torch_paddings(options, input_shape[:2]):
        y_t, dx_t, dW_t, db_t = torch_reference(torch, x, W_torch, layer.params["b"], padding, options,
                                                groups, dy)
        assert_same((y, dx, grads["W"], grads["b"]), (y_t, dx_t, dW_t.transpose(2, 3, 1, 0), db_t),
                    atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("backend", ["offsets", "scipy", "im2col"])
@pytest.mark.parametrize("options", TORCH_GEOMETRIES)
@pytest.mark.parametrize("multiplier", [1, 3])
def test_depthwise_matches_pytorch_groups_equal_channels(backend, options, multiplier):
    torch = pytest.importorskip("torch")
    channels = 4
    input_shape = (8, 9, channels)
    layer = built(DepthwiseConv2D(depth_multiplier=multiplier, backend=backend, **options), input_shape)
    x = np.random.default_rng(6).standard_normal((2, *input_shape))
    y, dy, dx, grads = run(layer, x)
    kh, kw = layer.kernel_size
    # Keras (kh, kw, C, M) -> torch (C*M, 1, kh, kw): torch's out channel c*M + m is filter m of channel c
    W_torch = layer.params["W"].reshape(kh, kw, channels * multiplier).transpose(2, 0, 1)[:, None]
    for padding in torch_paddings(options, input_shape[:2]):
        y_t, dx_t, dW_t, db_t = torch_reference(torch, x, W_torch, layer.params["b"], padding, options,
                                                channels, dy)
        dW_keras = dW_t[:, 0].transpose(1, 2, 0).reshape(kh, kw, channels, multiplier)
        assert_same((y, dx, grads["W"], grads["b"]), (y_t, dx_t, dW_keras, db_t), atol=1e-12)


# ------------------------------------------------------------------ shapes, dtypes, config, pickle
def test_output_shapes_and_parameter_shapes():
    conv = Conv2D(6, (3, 2), groups=3, stride=2, padding="same")
    assert conv.build((7, 8, 9)) == (4, 4, 6) and conv.params["W"].shape == (3, 2, 3, 6)
    depthwise = DepthwiseConv2D(3, depth_multiplier=2, dilation=2)
    assert depthwise.build((9, 8, 5)) == (5, 4, 10)
    assert depthwise.params["W"].shape == (3, 3, 5, 2) and depthwise.params["b"].shape == (10,)
    separable = SeparableConv2D(7, 3, depth_multiplier=2, padding="same", use_bias=False)
    assert separable.build((6, 6, 4)) == (6, 6, 7)
    assert {key: value.shape for key, value in separable.params.items()} == {
        "depthwise_W": (3, 3, 4, 2), "pointwise_W": (1, 1, 8, 7)}
    assert separable.count_params() == 3 * 3 * 4 * 2 + 8 * 7


def all_layers():
    return [Conv2D(4, (3, 2), groups=2, stride=(2, 1), padding="same", dilation=(1, 2), use_bias=False,
                   kernel_initializer="he_normal", backend="scipy", name="grouped"),
            DepthwiseConv2D((2, 3), depth_multiplier=3, stride=2, padding=((1, 0), (0, 2)), dilation=(2, 1),
                            use_bias=False, kernel_initializer="he_uniform", backend="im2col", name="dw"),
            SeparableConv2D(5, 3, depth_multiplier=2, stride=(1, 2), padding="same", dilation=2,
                            kernel_initializer="glorot_normal", backend="loops", name="sep")]


@pytest.mark.parametrize("layer", all_layers(), ids=lambda layer: layer.name)
def test_get_config_rebuilds_the_layer(layer):
    config = layer.get_config()
    copy = type(layer)(**config)
    assert copy.get_config() == config
    assert copy.output_shape((9, 10, 4)) == layer.output_shape((9, 10, 4))
    assert config["backend"] == layer.backend and config["name"] == layer.name


FLOAT32_CASES = [
    *[pytest.param(Conv2D(4, 3, groups=2, stride=2, padding="same", backend=b), id=f"grouped-{b}")
      for b in CONV_BACKENDS],
    *[pytest.param(DepthwiseConv2D(3, depth_multiplier=2, padding="same", backend=b), id=f"depthwise-{b}")
      for b in DEPTHWISE_BACKENDS],
    *[pytest.param(SeparableConv2D(3, 3, stride=2, padding="same", backend=b), id=f"separable-{b}")
      for b in DEPTHWISE_BACKENDS],
]


@pytest.mark.parametrize("layer", FLOAT32_CASES)
def test_float32_stays_float32(layer):
    layer = built(copy.deepcopy(layer), (6, 5, 4), dtype="float32")
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 4))  # float64 input
    y = layer.forward(x)
    dx = layer.backward(np.ones(y.shape))  # float64 dy
    assert y.dtype == dx.dtype == np.float32
    assert all(grad.dtype == np.float32 for grad in layer.grads.values())
    assert layer.grads.keys() == layer.params.keys()

    def arrays(store):
        for value in store.values():
            if isinstance(value, dict):
                yield from arrays(value)
            elif isinstance(value, np.ndarray):
                yield value

    assert all(array.dtype == np.float32 for array in arrays(layer.cache))


@pytest.mark.parametrize("layer", [Conv2D(8, 3, groups=4, padding="same"),
                                   DepthwiseConv2D(3, padding="same", backend="im2col"),
                                   SeparableConv2D(8, 3, padding="same", backend="im2col")],
                         ids=["grouped", "depthwise", "separable"])
def test_pickle_drops_cache_and_workspace(layer):
    built(layer, (16, 16, 8), dtype="float32")
    x = np.random.default_rng(1).standard_normal((8, 16, 16, 8))
    y = layer.forward(x)
    layer.backward(np.ones(y.shape))
    assert layer.workspace.nbytes() > 50_000 and layer.cache
    data = pickle.dumps(layer)
    assert len(data) < 20_000  # the weights, not the patches or the scratch arrays
    copy = pickle.loads(data)
    assert copy.cache == {}
    np.testing.assert_array_equal(copy.forward(x), layer.forward(x))


def test_conv2d_pickled_before_groups_existed_loads_ungrouped():
    layer = built(Conv2D(3, 3), (5, 5, 2))
    del layer.__dict__["groups"]  # what an older file holds
    copy = pickle.loads(pickle.dumps(layer))
    assert copy.groups == 1 and copy.forward(np.ones((1, 5, 5, 2))).shape == (1, 3, 3, 3)


# ------------------------------------------------------------------ errors
def test_groups_not_dividing_channels_names_the_layer_and_numbers():
    with pytest.raises(ValueError, match=r"g1: groups=3 must divide the input channels, got C=4"):
        Conv2D(6, 3, groups=3, name="g1").build((8, 8, 4))
    with pytest.raises(ValueError, match=r"g2: groups=2 must divide filters, got filters=3"):
        Conv2D(3, 3, groups=2, name="g2")
    with pytest.raises(TypeError, match=r"g3: groups must be an int >= 1, got 1.5"):
        Conv2D(3, 3, groups=1.5, name="g3")


@pytest.mark.parametrize("make_layer, message", [
    (lambda: DepthwiseConv2D(3, depth_multiplier=0, name="dw"),
     "dw: depth_multiplier must be an int >= 1, got 0"),
    (lambda: DepthwiseConv2D(3, backend="winograd", name="dw"),
     "dw: unknown backend 'winograd'; expected one of 'offsets', 'im2col', 'scipy', 'loops'"),
    (lambda: DepthwiseConv2D(0, name="dw"),
     r"dw: kernel_size must be an int >= 1 or an \(h, w\) pair of them, got 0"),
    (lambda: SeparableConv2D(0, 3, name="sep"), "sep: filters must be an int >= 1, got 0"),
    (lambda: SeparableConv2D(2, 3, kernel_initializer="ones", name="sep"), "sep: unknown initializer 'ones'"),
    (lambda: Conv2D(2, 3, backend="offsets", name="c"), "c: unknown backend 'offsets'"),
])
def test_constructor_errors_name_the_layer(make_layer, message):
    with pytest.raises(ValueError, match=message):
        make_layer()


def test_a_bool_depth_multiplier_is_a_type_error_naming_the_layer():
    with pytest.raises(TypeError, match="^sep: depth_multiplier must be an int >= 1, got True$"):
        SeparableConv2D(2, 3, depth_multiplier=True, name="sep")


@pytest.mark.parametrize("layer_class", [DepthwiseConv2D, lambda **kw: SeparableConv2D(2, **kw)])
def test_input_errors_name_the_layer(layer_class):
    layer = layer_class(kernel_size=3, name="d1")
    layer.build((6, 6, 3))
    with pytest.raises(ValueError, match=r"d1: built for 3 input channels, got 2"):
        layer.forward(np.zeros((1, 6, 6, 2)))
    with pytest.raises(ValueError, match=r"d1: window of 3 cells along height .* \(2 \+ 0 \+ 0 = 2\)"):
        layer.forward(np.zeros((1, 2, 6, 3)))
    with pytest.raises(RuntimeError, match="d1: backward found no forward cache"):
        layer.backward(np.zeros((1, 4, 4, 2)))
    layer.forward(np.zeros((1, 6, 6, 3)))
    with pytest.raises(ValueError, match="d1: backward expected dy of shape"):
        layer.backward(np.zeros((1, 4, 4, 5)))


def test_model_with_the_new_layers_trains_saves_and_loads_through_the_restricted_loader(tmp_path):
    import scratchnet as sn
    from scratchnet.layers import Activation, Dense, Flatten

    layers = [Conv2D(4, 3, groups=2, padding="same"), Activation("relu"),
              DepthwiseConv2D(3, depth_multiplier=2, stride=2, padding="same"),
              SeparableConv2D(3, 3, padding="same"), Flatten(), Dense(2)]
    model = sn.Sequential(layers, input_shape=(6, 6, 2), seed=0, dtype="float64")
    model.compile(sn.SGD(lr=0.1), "cross_entropy")
    x = np.random.default_rng(0).standard_normal((4, 6, 6, 2))
    labels = np.array([0, 1, 1, 0])
    before = model.predict(x)
    model.train_step(x, labels)
    assert not np.allclose(model.predict(x), before)  # every layer's gradients moved the output
    model.save(tmp_path / "model.sn")
    loaded = sn.load(tmp_path / "model.sn")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("stride, multiplier", [(1, 1), (1, 2), (2, 1)])  # shifted and view paths
def test_depthwise_offsets_kernel_over_many_batch_chunks(monkeypatch, stride, multiplier):
    # The offsets kernel works on cache-sized batch chunks; tiny test batches fit in one chunk,
    # so force one sample per chunk (and a smaller last one) to check the chunks add up.
    from scratchnet.kernels import depthwise as depthwise_kernels

    monkeypatch.setattr(depthwise_kernels, "CHUNK_NUMBERS", 100)  # < one sample: 1 sample per chunk
    layer = built(DepthwiseConv2D((3, 2), depth_multiplier=multiplier, stride=stride, dilation=(1, 2),
                                  padding="same"), (6, 7, 3))
    x = np.random.default_rng(2).standard_normal((3, 6, 7, 3))
    result = run(layer, x)
    layer.backend = "loops"
    assert_same(result, run(layer, x))
    monkeypatch.setattr(depthwise_kernels, "CHUNK_NUMBERS", 2 * 6 * 7 * 3 * multiplier)  # another chunking
    layer.backend = "offsets"
    assert_same(run(layer, x), result)


def test_depthwise_layers_take_auto_as_their_fast_backend():
    # "auto" picks the fastest kernel: for a depthwise convolution that is always "offsets", so a
    # whole model can be built with backend="auto" (Conv2D then chooses winograd or im2col).
    from scratchnet.layers import DepthwiseConv2D, SeparableConv2D
    from scratchnet.models import mobilenet_block

    assert DepthwiseConv2D(3, backend="auto").backend == "offsets"
    assert SeparableConv2D(4, 3, backend="auto").backend == "offsets"
    block = mobilenet_block(8, backend="auto")
    block.build((6, 6, 4), rng=np.random.default_rng(0), dtype="float64")
    reference = mobilenet_block(8, backend="loops")
    reference.build((6, 6, 4), rng=np.random.default_rng(0), dtype="float64")
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 4))
    np.testing.assert_allclose(block.forward(x), reference.forward(x), rtol=0, atol=1e-12)
