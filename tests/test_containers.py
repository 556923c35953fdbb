"""Containers (Residual, Parallel, Chain), issue 11 (the merge layers: test_merge.py).

Gradients: ``check_layer`` checks a container's input gradient; a container has no params of
its own, so ``check_everything`` checks every parameter inside it (walking ``iter_layers``) by
central differences in float64. Independent references: NumPy by hand and PyTorch (marked torch).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.gradcheck import check_layer, gradient_error, numerical_gradient
from scratchnet.gradcheck_numeric import EPS, central_difference_noise
from scratchnet.layers import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Chain,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    Parallel,
    Residual,
)
from scratchnet.layers.base import iter_layers


def check_everything(layer, input_shape, seed=0, training=False):
    """Input gradient (check_layer) and every parameter inside the tree, float64.

    A container has no params of its own, so check_layer checks only its input gradient; the
    weights inside are checked here the same way (f = sum(y * R), central differences) through
    a one-layer float64 model. An array passes with a relative error <= 1e-6 OR an absolute one
    within the central difference's own round-off (``central_difference_noise`` of sum|y * R|, as
    check_layer allows): a one-element bias gradient can be ~1e-3 by chance, and then round-off
    alone (1.7e-9 for channels=2, f1=2, f2=1, size=5, seed=793, where sum|y * R| ~ 50) is a
    relative 1e-6.
    """
    report = check_layer(layer, input_shape, seed=seed, batch_size=2, training=training)
    assert report.passed, str(report)
    # reset: the layer was built before (check_layer, or the test itself): new float64 weights
    model = sn.Sequential([layer], input_shape=input_shape, dtype="float64", seed=seed).build(reset=True)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, *input_shape))
    projection = rng.standard_normal((2, *model.output_shape))

    def scalar(_):
        model.layers[0].set_rng(np.random.default_rng(seed))  # one fixed noise draw per check
        return float(np.sum(model.forward(x, training=training) * projection))

    model.layers[0].set_rng(np.random.default_rng(seed))  # the draw scalar() makes
    terms = model.forward(x, training=training) * projection  # scalar() = sum(terms)
    round_off = central_difference_noise(np.sum(np.abs(terms)), EPS)
    model.backward(projection)
    checked = 0
    for leaf in iter_layers(model.layers):
        analytic = {key: value.copy() for key, value in leaf.grads.items()}
        for key, param in leaf.params.items():
            numeric = numerical_gradient(scalar, param)
            error = gradient_error(analytic[key], numeric)
            assert error <= 1e-6 or np.max(np.abs(analytic[key] - numeric)) <= round_off, \
                f"{leaf.name}/{key}: relative error {error:.2e}\n{analytic[key]}\n{numeric}"
            checked += 1
    assert checked == sum(len(leaf.params) for leaf in iter_layers(model.layers)) > 0


# ====================================================================== gradient checks
@given(channels=st.integers(1, 3), size=st.integers(2, 5), seed=st.integers(0, 999))
def test_residual_identity_gradcheck(channels, size, seed):
    block = [Conv2D(channels, 3, padding="same"), Activation("tanh"), Conv2D(channels, 3, padding="same")]
    check_everything(Residual(block), (size, size + 1, channels), seed)


@given(channels=st.integers(1, 3), filters=st.integers(1, 3), stride=st.integers(1, 2),
       size=st.integers(2, 5), seed=st.integers(0, 999))
def test_residual_projection_gradcheck(channels, filters, stride, size, seed):
    # 3x3 conv with padding 1 and a 1x1 conv, same stride: both give floor((H - 1) / s) + 1
    block = [Conv2D(filters, 3, stride=stride, padding=1), Activation("tanh"),
             Conv2D(filters, 3, padding="same")]
    residual = Residual(block, shortcut=Conv2D(filters, 1, stride=stride))
    check_everything(residual, (size, size, channels), seed)


@given(units=st.integers(1, 5), seed=st.integers(0, 999))
def test_nested_residuals_on_vectors_gradcheck(units, seed):
    inner = Residual(Dense(units, activation="tanh"))
    outer = Residual([inner, Dense(units + 1, activation="tanh")], shortcut=[Dense(units + 1)])
    check_everything(outer, (units,), seed)


@given(channels=st.integers(1, 3), f1=st.integers(1, 3), f2=st.integers(1, 3), size=st.integers(3, 5),
       seed=st.integers(0, 999))
def test_parallel_concat_gradcheck(channels, f1, f2, size, seed):
    block = Parallel([Conv2D(f1, 1), [Conv2D(f2, 3, padding="same"), Activation("tanh")],
                      AvgPool2D(3, stride=1, padding="same"), MaxPool2D(3, stride=1, padding="same")])
    check_everything(block, (size, size, channels), seed)


@given(channels=st.integers(1, 3), filters=st.integers(1, 3), seed=st.integers(0, 999))
def test_parallel_add_gradcheck(channels, filters, seed):
    block = Parallel([Conv2D(filters, 1), [Conv2D(filters, 3, padding="same"), Activation("tanh")],
                      Conv2D(filters, 3, padding="same", dilation=2)], merge="add")
    check_everything(block, (4, 4, channels), seed)


@given(channels=st.integers(1, 3), seed=st.integers(0, 999))
def test_nested_parallel_and_residual_gradcheck(channels, seed):
    inner = Parallel([Conv2D(channels, 1), Residual([Conv2D(channels, 3, padding="same"),
                                                     Activation("tanh")])], merge="add")
    block = Parallel([Residual([inner, Activation("tanh")]),
                      [Conv2D(2, 3, padding="same"), Activation("tanh"),
                       Parallel([Conv2D(1, 1), Conv2D(2, 1)])]])
    assert block.build((4, 4, channels)) == (4, 4, channels + 3)
    check_everything(block, (4, 4, channels), seed)


def test_forward_matches_the_formula_by_hand():
    rng = np.random.default_rng(0)
    dense, projection = Dense(3, activation="tanh"), Dense(3)
    residual = Residual(dense, shortcut=projection)
    residual.build((4,), rng=rng, dtype="float64")
    x = rng.standard_normal((5, 4))
    expected = (np.tanh(x @ dense.params["W"] + dense.params["b"])
                + x @ projection.params["W"] + projection.params["b"])
    np.testing.assert_allclose(residual.forward(x), expected, rtol=0, atol=1e-14)
    identity = Residual(Dense(4))
    identity.build((4,), rng=rng, dtype="float64")
    W, b = identity.block.params["W"], identity.block.params["b"]
    np.testing.assert_allclose(identity.forward(x), x @ W + b + x, rtol=0, atol=1e-14)
    # backward by hand: dx = dy W^T + dy (identity)
    dy = rng.standard_normal((5, 4))
    np.testing.assert_allclose(identity.backward(dy), dy @ W.T + dy, rtol=0, atol=1e-14)


def test_backward_params_gives_the_same_weight_gradients():
    """The first layer of a model runs backward_params (no dL/dx): same grads as backward."""
    rng = np.random.default_rng(1)
    block = Residual([Conv2D(3, 3, padding="same"), Activation("tanh")], shortcut=Conv2D(3, 1))
    tree = Parallel([block, [Conv2D(2, 1), Conv2D(1, 3, padding="same")]])
    tree.build((4, 4, 2), rng=rng, dtype="float64")
    x = rng.standard_normal((2, 4, 4, 2))
    dy = rng.standard_normal((2, 4, 4, 4))
    tree.forward(x)
    tree.backward(dy)
    full = [{k: v.copy() for k, v in leaf.grads.items()} for leaf in iter_layers([tree])]
    tree.zero_grads()
    tree.forward(x)
    assert tree.backward_params(dy) is None
    for before, leaf in zip(full, iter_layers([tree])):
        for key in before:
            np.testing.assert_allclose(leaf.grads[key], before[key], rtol=0, atol=1e-13)


# ====================================================================== errors
def test_a_block_that_changes_the_shape_needs_a_projection():
    residual = Residual([Conv2D(8, 3, stride=2, padding="same")], name="res1")
    with pytest.raises(ValueError) as info:
        sn.Sequential([residual], input_shape=(8, 8, 4)).build()
    message = str(info.value)
    assert "res1:" in message and "(8, 8, 4) to (4, 4, 8)" in message and "identity" in message
    assert "shortcut=Conv2D(8, 1, stride=2)" in message
    with pytest.raises(ValueError,
                       match=r"res2: .* shortcut \(conv2d\) gives \(8, 8, 8\).*outputs \(4, 4, 8\)"):
        Residual(Conv2D(8, 3, stride=2, padding="same"), shortcut=Conv2D(8, 1), name="res2").build((8, 8, 4))
    with pytest.raises(ValueError, match=r"residual: the block maps \(5,\) to \(3,\).*shortcut=Dense\(3\)"):
        Residual(Dense(3)).build((5,))


def test_bad_children_and_options():
    with pytest.raises(TypeError, match="residual: block must be a Layer or a list of layers, got str"):
        Residual("conv")
    with pytest.raises(TypeError, match="residual: shortcut must be a Layer or a list of layers, got int"):
        Residual(Dense(2), shortcut=3)
    with pytest.raises(TypeError, match="parallel: branches must be a non-empty list"):
        Parallel(Dense(2))
    with pytest.raises(TypeError, match=r"parallel: branches\[1\] must be a Layer"):
        Parallel([Dense(2), np.eye(2)])
    with pytest.raises(ValueError, match="parallel: merge must be one of 'concat', 'add'.* got 'mean'"):
        Parallel([Dense(2)], merge="mean")
    with pytest.raises(TypeError, match="chain: layers must be a non-empty list"):
        Chain([])
    shared = Dense(2)
    with pytest.raises(ValueError, match="residual: the layer object 'dense' appears twice"):
        Residual(shared, shortcut=shared)
    with pytest.raises(ValueError, match=r"p: the outputs of the branches \(dense, dense_2\) cannot be "
                                         r"merged: add: every input must have the same shape.*\(2,\), \(3"):
        Parallel([Dense(2), Dense(3, name="dense_2")], merge="add", name="p").build((4,))


def test_container_input_and_backward_errors():
    residual = Residual(Dense(3))
    with pytest.raises(RuntimeError, match="residual: layer is not built"):
        residual.forward(np.zeros((2, 3)))
    residual.build((3,))
    with pytest.raises(ValueError, match=r"residual: expected input of shape \(N, 3\), got \(2, 4\)"):
        residual.forward(np.zeros((2, 4)))
    with pytest.raises(RuntimeError, match="residual: backward found no forward cache"):
        residual.backward(np.zeros((2, 3)))
    residual.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"residual: backward expected dy of shape \(2, 3\).*got \(2, 5\)"):
        residual.backward(np.zeros((2, 5)))


# ====================================================================== the tree
def resnet_like(seed=0, dtype="float32"):
    model = sn.Sequential([
        Conv2D(4, 3, padding="same", name="stem"),
        Residual([Conv2D(4, 3, padding="same"), Activation("relu"), Conv2D(4, 3, padding="same")]),
        Residual([Conv2D(6, 3, stride=2, padding=1), Activation("relu")], shortcut=Conv2D(6, 1, stride=2)),
        Parallel([Conv2D(2, 1), [Conv2D(2, 3, padding="same"), Activation("relu")],
                  [MaxPool2D(3, stride=1, padding="same"), Conv2D(2, 1)]]),
        GlobalAvgPool2D(), Dense(3)], input_shape=(7, 7, 3), seed=seed, dtype=dtype).build()
    return model.compile(sn.Adam(lr=0.01), "cross_entropy")


def images(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 7, 7, 3)).astype("float32"), rng.integers(0, 3, size=n)


def test_names_are_unique_over_the_whole_tree():
    model = resnet_like()
    names = [layer.name for layer in iter_layers(model.layers)]
    assert len(names) == len(set(names))
    assert [layer.name for layer in iter_layers([model.layers[2]])] == [
        "residual_1", "block_1", "conv2d_2", "activation_1", "conv2d_3"]
    # weights are saved by name: every nested param is there, each once
    weights = model.get_weights()
    assert sum(value.size for value in weights.values()) == model.count_params() == 819
    assert "conv2d_3/W" in weights and weights["conv2d_3/W"].shape == (1, 1, 4, 6)


def test_count_params_by_hand():
    model = resnet_like()
    # stem 3*3*3*4+4 = 112; residual 2 * (3*3*4*4+4) = 296; projection block 3*3*4*6+6 = 222,
    # shortcut 4*6+6 = 30; parallel (6*2+2) + (3*3*6*2+2) + (6*2+2) = 14 + 110 + 14; dense 6*3+3 = 21
    assert [layer.count_params() for layer in model.layers] == [112, 296, 252, 138, 0, 21]
    assert model.count_params() == 819


def test_summary_indents_children_and_counts_params_once():
    text = resnet_like().summary_text()
    lines = text.splitlines()
    row = {line.strip().split(" ")[0]: line for line in lines}
    params_end = next(line for line in lines if line.startswith("Layer")).index("Params") + len("Params")

    def params(line):  # the right-aligned Params column (RF and MACs follow for top-level rows)
        return line[:params_end].split()[-1]

    assert row["residual"].startswith("residual (Residual)") and params(row["residual"]) == "(296)"
    assert row["block"].startswith("  block (Chain)")
    assert row["conv2d"].startswith("    conv2d (Conv2D)") and params(row["conv2d"]) == "148"
    assert row["conv2d_3"].startswith("  conv2d_3 (Conv2D)") and "(None, 4, 4, 6)" in row["conv2d_3"]
    assert row["concatenate"].startswith("  concatenate (Concatenate)")
    assert "(None, 4, 4, 6)" in row["concatenate"]
    assert row["max_pool2d"].startswith("    max_pool2d (MaxPool2D)")
    assert "Total params: 819" in text and "Trainable params: 819" in text
    assert "Non-trainable params: 0" in text
    assert "(n): a container's params" in text
    # every leaf row once: the leaf counts add up to the total
    leaf_counts = [int(params(line).replace(",", "")) for line in lines
                   if "(None" in line and params(line).replace(",", "").isdigit()]
    assert sum(leaf_counts) == 819


def test_get_layer_at_any_depth():
    model = resnet_like()
    conv = model.layers[3].branches[2].layers[1]
    assert model.get_layer("conv2d_6") is conv
    assert model.get_layer("concatenate") is model.layers[3].merge
    assert model.get_layer(index=-1) is model.layers[-1] and model.get_layer(index=0).name == "stem"
    with pytest.raises(KeyError,
                       match="sequential: no layer named 'conv9'; the layers are: stem, residual, block"):
        model.get_layer("conv9")
    with pytest.raises(IndexError, match=r"index must be an int in \[-6, 6\).*got 6"):
        model.get_layer(index=6)
    for wrong in (1.0, "1", True):  # the wrong type: a TypeError, as for a list (was an IndexError)
        with pytest.raises(TypeError, match=rf"^sequential: index must be an int in \[-6, 6\).*"
                                            rf"got {wrong!r}$"):
            model.get_layer(index=wrong)
    assert model.get_layer(index=np.int64(0)).name == "stem"
    with pytest.raises(TypeError, match="exactly one"):
        model.get_layer()


def test_config_rebuilds_an_equal_untrained_copy():
    for layer in resnet_like().layers[1:4]:
        config = layer.get_config()
        copy = type(layer)(**config)
        assert copy.get_config() == config and not copy.built
        assert [type(leaf) for leaf in iter_layers([copy])] == [type(leaf) for leaf in iter_layers([layer])]
    assert repr(Residual(Dense(2), name="r")) == ("Residual(block=Dense(units=2, activation='linear', "
                                                  "use_bias=True, kernel_initializer='glorot_uniform', "
                                                  "name='dense'), shortcut=None, name='r')")


def test_astype_and_dtype_reach_every_child():
    model = resnet_like(dtype="float64")
    assert all(value.dtype == np.float64 for value in model.get_weights().values())
    model.astype("float32")
    assert all(leaf.dtype == np.float32 for leaf in iter_layers(model.layers))
    assert all(value.dtype == np.float32 for value in model.get_weights().values())
    assert model.predict(images(4)[0]).dtype == np.float32


def test_a_layer_that_is_not_a_container_has_no_children():
    assert Dense(2).sublayers() == [] and isinstance(Residual(Dense(2)), Layer)


def test_nested_layers_share_the_model_generator(tmp_path):
    model = resnet_like()
    assert all(leaf.rng is model.rng for leaf in iter_layers(model.layers))
    model.save(tmp_path / "m.sn")
    loaded = sn.load(tmp_path / "m.sn")
    assert all(leaf.rng is loaded.rng for leaf in iter_layers(loaded.layers))


@pytest.mark.parametrize("training", [False, True])
def test_projection_with_batchnorm(training, tmp_path):
    # no conv bias before a BatchNorm: in training mode its true gradient is 0 (the batch mean
    # removes it), and a relative error of round-off against 0 is meaningless
    block = Residual([Conv2D(3, 3, stride=2, padding=1, use_bias=False), BatchNorm(), Activation("tanh")],
                     shortcut=[Conv2D(3, 1, stride=2, use_bias=False), BatchNorm()])
    check_everything(block, (5, 5, 2), seed=3, training=training)
    model = sn.Sequential([block, Flatten(), Dense(2)], input_shape=(5, 5, 2), seed=0).build(reset=True)
    buffers = {f"{leaf.name}/{key}" for leaf in iter_layers(model.layers) for key in leaf.buffers}
    assert buffers and buffers <= set(model.get_weights())  # nested buffers are saved by name
    assert "Buffers (saved, never trained" in model.summary_text()


# ====================================================================== save / load
def test_save_load_resumes_training_bitwise(tmp_path):
    x, y = images()
    reference = resnet_like()
    reference.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model = resnet_like()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "res.sn")
    loaded = sn.load(tmp_path / "res.sn")  # the restricted loader: Residual, Parallel, Chain allowed
    nested = loaded.get_layer("conv2d_6")
    assert isinstance(loaded.layers[3], Parallel) and nested.grads.keys() == nested.params.keys()
    assert all(np.array_equal(nested.grads[key], np.zeros_like(value))
               for key, value in nested.params.items())
    assert nested.opt_state["W"]["t"] == 3  # 24 samples / batch 8: three Adam steps
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)
    a, b = loaded.get_weights(), reference.get_weights()
    assert a.keys() == b.keys() and all(np.array_equal(a[key], b[key]) for key in a)
    for leaf_a, leaf_b in zip(iter_layers(loaded.layers), iter_layers(reference.layers)):
        for key, state in leaf_a.opt_state.items():
            assert state["t"] == leaf_b.opt_state[key]["t"]
            assert np.array_equal(state["m"], leaf_b.opt_state[key]["m"])
            assert np.array_equal(state["v"], leaf_b.opt_state[key]["v"])


def test_weights_files_hold_the_nested_layers(tmp_path):
    x, _ = images(4)
    model, other = resnet_like(seed=0), resnet_like(seed=1)
    assert not np.array_equal(model.predict(x), other.predict(x))
    model.save_weights(tmp_path / "w.npz")
    other.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(model.predict(x), other.predict(x))


# ====================================================================== PyTorch
def to_torch_kernel(torch, layer):
    """(kh, kw, C, F) -> (F, C, kh, kw), and the bias."""
    return (torch.tensor(layer.params["W"].transpose(3, 2, 0, 1), requires_grad=True),
            torch.tensor(layer.params["b"], requires_grad=True))


def compare_with_torch(torch, block, input_shape, torch_forward, seed=0):
    """Same weights, same input: forward, dL/dx and every weight gradient, float64."""
    rng = np.random.default_rng(seed)
    block.build(input_shape, rng=rng, dtype="float64")
    convs = [leaf for leaf in iter_layers([block]) if isinstance(leaf, Conv2D)]
    weights = [to_torch_kernel(torch, conv) for conv in convs]
    x = rng.standard_normal((2, *input_shape))
    y = block.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = block.backward(dy)
    x_t = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)                    # NHWC -> NCHW
    y_t = torch_forward(x_t, weights)
    y_t.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(y, y_t.detach().numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-10)
    np.testing.assert_allclose(dx, x_t.grad.numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-10)
    for conv, (w_t, b_t) in zip(convs, weights):
        dW_t = w_t.grad.numpy().transpose(2, 3, 1, 0)                                 # back to (kh, kw, C, F)
        np.testing.assert_allclose(conv.grads["W"], dW_t, rtol=0, atol=1e-10)
        np.testing.assert_allclose(conv.grads["b"], b_t.grad.numpy(), rtol=0, atol=1e-10)


@pytest.mark.torch
@pytest.mark.parametrize("stride", [1, 2])
def test_residual_block_matches_pytorch(stride):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    block = Residual([Conv2D(6, 3, stride=stride, padding=1), Activation("relu"), Conv2D(6, 3, padding=1)],
                     shortcut=Conv2D(6, 1, stride=stride))

    def reference(x, weights):
        (w1, b1), (w2, b2), (ws, bs) = weights
        main = F.conv2d(F.relu(F.conv2d(x, w1, b1, stride=stride, padding=1)), w2, b2, padding=1)
        return main + F.conv2d(x, ws, bs, stride=stride)

    compare_with_torch(torch, block, (7, 7, 3), reference)


@pytest.mark.torch
def test_inception_block_matches_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    block = Parallel([Conv2D(2, 1), Conv2D(3, 3, padding="same"), Conv2D(2, 5, padding="same"),
                      [MaxPool2D(3, stride=1, padding="same"), Conv2D(2, 1)]])

    def reference(x, weights):
        (w1, b1), (w3, b3), (w5, b5), (wp, bp) = weights
        pooled = F.max_pool2d(x, 3, stride=1, padding=1)  # pads with -inf, like MaxPool2D "same"
        return torch.cat([F.conv2d(x, w1, b1), F.conv2d(x, w3, b3, padding=1), F.conv2d(x, w5, b5, padding=2),
                          F.conv2d(pooled, wp, bp)], dim=1)

    compare_with_torch(torch, block, (6, 6, 4), reference)


def test_containers_train_inside_a_model():
    """Smoke-free: the loss on a learnable problem falls with residual and parallel blocks."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=120)
    x = (rng.normal(size=(120, 4, 4, 2)) + np.where(y == 1, 0.7, -0.7)[:, None, None, None]).astype("float32")
    model = sn.Sequential([Residual([Conv2D(2, 3, padding="same"), Activation("relu")]),
                           Parallel([Conv2D(2, 1), AvgPool2D(3, stride=1, padding="same")]),
                           Flatten(), Dense(2)], input_shape=(4, 4, 2), seed=0)
    history = model.compile(sn.Adam(lr=0.01), "cross_entropy").fit(x, y, epochs=6, verbose=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0] and history["accuracy"][-1] > 0.9
