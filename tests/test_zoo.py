"""The model zoo (issue 11): parameter counts worked out by hand, output shapes, whole-model and
block gradient checks in float64 (training and inference mode), get_model, exact resume after
save/load. The PyTorch comparisons are in test_zoo_torch.py."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.gradcheck import check_layer, check_model
from scratchnet.layers import Conv2D, Dense, Flatten
from scratchnet.layers.base import iter_layers
from scratchnet.models import (
    MODEL_NAMES,
    dense_block,
    get_model,
    inception_block,
    inverted_residual,
    mobilenet_block,
    resnet,
    resnet8,
    resnet14,
    resnet20,
    shufflenet_unit,
)
from scratchnet.optimizers import AdamW


def bn(c):       # BatchNorm: gamma and beta per channel
    return 2 * c


# ====================================================================== parameter counts by hand
def test_flax_cnn_layers_shapes_and_parameters():
    model = get_model("flax_cnn")
    shape, rows = model.input_shape, []
    for layer in model.layers:
        shape = layer.output_shape(shape)
        rows.append((type(layer).__name__, shape, layer.count_params()))
    assert rows == [
        ("Conv2D", (32, 32, 32), 3 * 3 * 3 * 32 + 32),          # "same" keeps 32x32
        ("Activation", (32, 32, 32), 0), ("AvgPool2D", (16, 16, 32), 0),
        ("Conv2D", (16, 16, 64), 3 * 3 * 32 * 64 + 64),
        ("Activation", (16, 16, 64), 0), ("AvgPool2D", (8, 8, 64), 0),
        ("Flatten", (8 * 8 * 64,), 0),
        ("Dense", (256,), 8 * 8 * 64 * 256 + 256),
        ("Dense", (10,), 256 * 10 + 10),
    ]
    assert model.count_params() == 1_070_794
    # MNIST: 28 -> 14 -> 7, the dense layer sees 7*7*64
    assert get_model("flax_cnn", input_shape=(28, 28, 1)).count_params() == \
        (9 * 1 * 32 + 32) + (9 * 32 * 64 + 64) + (7 * 7 * 64 * 256 + 256) + (256 * 10 + 10) == 824_458


def test_small_cnn_bn_parameters_and_layers():
    model = get_model("small_cnn_bn")
    names = [type(layer).__name__ for layer in model.layers]
    assert names == ["Conv2D", "BatchNorm", "Activation", "MaxPool2D", "Conv2D", "BatchNorm", "Activation",
                     "MaxPool2D", "Flatten", "Dense", "Dropout", "Dense"]
    assert not model.layers[0].use_bias and model.layers[10].rate == 0.5
    # conv 3*3*3*32 (no bias), BN 32, conv 3*3*32*64, BN 64, dense 4096*128+128, dense 128*10+10
    expected = 864 + bn(32) + 18_432 + bn(64) + (8 * 8 * 64 * 128 + 128) + 1_290
    assert model.count_params() == expected == 545_194
    mnist = get_model("small_cnn_bn", input_shape=(28, 28, 1))
    assert mnist.count_params() == 9 * 32 + bn(32) + 18_432 + bn(64) + (7 * 7 * 64 * 128 + 128) + 1_290
    assert mnist.output_shape == (10,)
    assert get_model("small_cnn_bn", dropout=0.2).layers[10].rate == 0.2


def pool_output(layer):
    return layer.output_shape(layer.input_shape)


def test_deeper_cnn_parameters_and_shapes():
    model = get_model("deeper_cnn")
    # stem 3*3*3*64, stages 3*3*64*64, 3*3*64*128, 3*3*128*256, each + BN; dense 256*10+10
    convs = 9 * 3 * 64 + 9 * 64 * 64 + 9 * 64 * 128 + 9 * 128 * 256
    assert model.count_params() == convs + bn(64) + bn(64) + bn(128) + bn(256) + 2_570 == 410_826
    shapes = [pool_output(layer) for layer in model.layers if type(layer).__name__ == "MaxPool2D"]
    assert shapes == [(16, 16, 64), (8, 8, 128), (4, 4, 256)]
    mnist = get_model("deeper_cnn", input_shape=(28, 28, 1), n_classes=7)
    shapes = [pool_output(layer) for layer in mnist.layers if type(layer).__name__ == "MaxPool2D"]
    assert shapes == [(14, 14, 64), (7, 7, 128), (3, 3, 256)]
    assert mnist.count_params() == 410_826 - 9 * 2 * 64 - 3 * 256 - 3 and mnist.output_shape == (7,)


def resnet_count(n, w, channels=3, classes=10):
    """He et al.'s CIFAR ResNet, counted block by block (convolutions without bias, BN 2 per channel)."""
    total = 9 * channels * w + bn(w)                                          # stem
    total += n * (9 * w * w + bn(w) + 9 * w * w + bn(w))                      # stage 1: identity shortcuts
    for c_in, c in ((w, 2 * w), (2 * w, 4 * w)):                              # stages 2 and 3
        # the first block of the stage: stride 2 and a 1x1 projection shortcut
        total += 9 * c_in * c + bn(c) + 9 * c * c + bn(c) + c_in * c + bn(c)
        total += (n - 1) * (9 * c * c + bn(c) + 9 * c * c + bn(c))
    return total + 4 * w * classes + classes                                  # dense


def test_resnet_parameter_counts_by_hand():
    assert resnet_count(1, 16) == 432 + 32 + 4_672 + 14_528 + 57_728 + 650 == 78_042
    for depth, function, expected in ((8, resnet8, 78_042), (14, resnet14, 175_258), (20, resnet20, 272_474)):
        n = (depth - 2) // 6
        assert function().count_params() == resnet(depth).count_params() == resnet_count(n, 16) == expected
        assert function().name == f"resnet{depth}"
    assert resnet(8, width=8, input_shape=(28, 28, 1), n_classes=5).count_params() == resnet_count(1, 8, 1, 5)


def test_resnet8_shapes_shortcuts_and_mnist_input():
    model = resnet8()
    blocks = [layer for layer in model.layers if type(layer).__name__ == "Residual"]
    assert [pool_output(block) for block in blocks] == [(32, 32, 16), (16, 16, 32), (8, 8, 64)]
    assert blocks[0].shortcut is None                                          # same shape: identity
    assert [type(layer).__name__ for layer in blocks[1].shortcut.layers] == ["Conv2D", "BatchNorm"]
    projection = blocks[1].shortcut.layers[0]
    assert projection.kernel_size == (1, 1) and projection.stride == (2, 2)
    assert [type(layer).__name__ for layer in blocks[1].block.layers] == [
        "Conv2D", "BatchNorm", "Activation", "Conv2D", "BatchNorm"]       # no ReLU before the addition
    after = model.layers[model.layers.index(blocks[1]) + 1]
    assert type(after).__name__ == "Activation" and after.activation == "relu"  # ReLU after it
    mnist = resnet8(input_shape=(28, 28, 1))
    blocks = [layer for layer in mnist.layers if type(layer).__name__ == "Residual"]
    assert [pool_output(block) for block in blocks] == [(28, 28, 16), (14, 14, 32), (7, 7, 64)]
    assert mnist.predict(np.zeros((2, 28, 28, 1))).shape == (2, 10)


@pytest.mark.parametrize("depth, error", [(0, ValueError), (7, ValueError), (9, ValueError), (21, ValueError),
                                          ("8", TypeError), (True, TypeError), (8.0, TypeError)])
def test_resnet_refuses_depths_that_are_not_6n_plus_2(depth, error):
    with pytest.raises(error, match=r"^resnet: depth must be 6n \+ 2"):
        resnet(depth)


def test_resnet_takes_a_numpy_integer_depth():
    model = resnet(np.int64(14), width=4)  # e.g. a depth read from an array of a sweep
    assert model.name == "resnet14" and model.count_params() == resnet_count(2, 4)
    with pytest.raises(ValueError, match=r"resnet: depth must be 6n \+ 2"):
        resnet(np.int64(9))


def test_resnet_refuses_a_bad_width():
    with pytest.raises(ValueError, match="resnet: width must be an int >= 1, got 0"):
        resnet(8, width=0)
    with pytest.raises(TypeError, match=r"^resnet: width must be an int >= 1, got 4.0 \(a float: pass int"):
        resnet(8, width=4.0)
    narrow = resnet(8, width=np.int64(4))  # a NumPy int passes now (layers.spatial.positive_int)
    assert narrow.count_params() == resnet(8, width=4).count_params()
    assert type(narrow.layers[0].filters) is int


# ====================================================================== blocks
@given(c=st.integers(1, 6), f1=st.integers(1, 4), f3r=st.integers(1, 4), f3=st.integers(1, 4),
       f5r=st.integers(1, 4), f5=st.integers(1, 4), pool=st.integers(1, 4), size=st.integers(3, 7))
def test_inception_block_shape_and_parameters(c, f1, f3r, f3, f5r, f5, pool, size):
    model = sn.Sequential([inception_block(f1, f3r, f3, f5r, f5, pool)], input_shape=(size, size, c)).build()
    assert model.output_shape == (size, size, f1 + f3 + f5 + pool)
    assert model.count_params() == ((c + 1) * f1 + (c + 1) * f3r + (9 * f3r + 1) * f3 + (c + 1) * f5r
                                    + (25 * f5r + 1) * f5 + (c + 1) * pool)


def test_googlenet_3a_block():
    block = sn.Sequential([inception_block(64, 96, 128, 16, 32, 32)], input_shape=(28, 28, 192)).build()
    assert block.output_shape == (28, 28, 256)
    assert block.count_params() == 163_696  # GoogLeNet's inception (3a): 159k weights + biases


@given(c=st.integers(1, 6), n=st.integers(1, 4), k=st.integers(1, 5), bottleneck=st.booleans())
def test_dense_block_shape_and_parameters(c, n, k, bottleneck):
    model = sn.Sequential([dense_block(n, k, bottleneck=bottleneck)], input_shape=(5, 5, c)).build()
    assert model.output_shape == (5, 5, c + n * k)
    if bottleneck:  # BN(C_l), conv 1x1 C_l -> 4k, BN(4k), conv 3x3 4k -> k
        per_layer = [bn(c + l * k) + (c + l * k) * 4 * k + bn(4 * k) + 9 * 4 * k * k for l in range(n)]
    else:           # BN(C_l), conv 3x3 C_l -> k
        per_layer = [bn(c + l * k) + 9 * (c + l * k) * k for l in range(n)]
    assert model.count_params() == sum(per_layer)


def test_dense_block_keeps_its_input_as_the_first_channels(rng):
    model = sn.Sequential([dense_block(2, 3)], input_shape=(4, 4, 2), dtype="float64").build()
    x = rng.standard_normal((3, 4, 4, 2))
    y = model.predict(x)
    np.testing.assert_array_equal(y[..., :2], x)  # x_l = [x_{l-1} | H_l(x_{l-1})]: x is carried unchanged


def test_dense_block_refuses_zero_layers():
    with pytest.raises(ValueError, match="dense_block: n_layers must be an int >= 1, got 0"):
        dense_block(0, 4)
    with pytest.raises(TypeError, match=r"^dense_block: n_layers must be an int >= 1, got True$"):
        dense_block(True, 4)
    assert len(dense_block(np.int64(3), 4).children) == 3


# ====================================================================== gradient checks (float64)
def small_models():
    """Every zoo model on an 8x8x2 input with 3 classes (resnet narrowed to width 4)."""
    options = {"input_shape": (8, 8, 2), "n_classes": 3, "seed": 1, "dtype": "float64"}
    return {"flax_cnn": get_model("flax_cnn", **options),
            "small_cnn_bn": get_model("small_cnn_bn", **options),
            "deeper_cnn": get_model("deeper_cnn", **options),
            "resnet8": resnet(8, width=4, **options),
            "resnet14": resnet(14, width=2, **options)}


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("name", ["flax_cnn", "small_cnn_bn", "deeper_cnn", "resnet8", "resnet14"])
def test_zoo_model_gradients(name, training, rng):
    model = small_models()[name].compile(optimizer="adam", loss="cross_entropy")
    if training is False:  # give BatchNorm non-trivial running statistics first
        model.forward(rng.standard_normal((4, 8, 8, 2)) * 2 + 1, training=True)
    x, y = rng.standard_normal((4, 8, 8, 2)), np.array([0, 2, 1, 2])
    report = check_model(model, x, y, training=training, max_elements=12)
    assert report.passed, str(report)
    assert len(report.errors()) == 1 + sum(len(leaf.params) for leaf in iter_layers(model.layers))


def block_model(block, input_shape, seed=0):
    """block -> Flatten -> Dense 3, in float64, compiled: check_model then covers every weight."""
    return sn.Sequential([block, Flatten(), Dense(3)], input_shape=input_shape, seed=seed,
                         dtype="float64").build().compile(optimizer="adam", loss="cross_entropy")


BLOCKS = {
    "inception": (lambda: inception_block(2, 2, 3, 1, 2, 2), (5, 5, 3)),
    "dense": (lambda: dense_block(2, 2), (4, 4, 3)),
    "dense_bottleneck": (lambda: dense_block(2, 2, bottleneck=True), (4, 4, 3)),
}


def spread_constants(layer_or_model, seed=7):
    """Draw every bias and BatchNorm beta ~ N(0, 0.5), every gamma ~ 1 + N(0, 0.5) (built, in place).

    With the initial bias or beta = 0, a ReLU whose input is exactly 0 (a 1x1 conv of an all-zero
    ReLU output, a conv over zero padding) sits on its kink for every element of that bias: the
    check then compared none of them. And gamma = 1 hides a backward that forgets gamma.
    """
    rng = np.random.default_rng(seed)
    layers = layer_or_model.layers if isinstance(layer_or_model, sn.Sequential) else [layer_or_model]
    for leaf in iter_layers(layers):
        for key, value in leaf.params.items():
            if key == "gamma":
                leaf.params[key] = (1 + 0.5 * rng.standard_normal(value.shape)).astype(value.dtype)
            elif key in ("b", "beta"):
                leaf.params[key] = (0.5 * rng.standard_normal(value.shape)).astype(value.dtype)
    return layer_or_model


def built_block(make, input_shape):
    """``make()`` built in float64 for one sample of ``input_shape``, biases, betas and gammas spread."""
    block = make()
    block.build(input_shape, rng=np.random.default_rng(0), dtype=np.float64)
    return spread_constants(block)


def assert_every_element_compared(report):
    """No array was left unmeasured: every selected element compared, none only on a kink."""
    for row in report.rows:
        assert row.inconclusive == 0 and row.checked > 0, str(report)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_gradients(name, training, rng):
    make, input_shape = BLOCKS[name]
    report = check_layer(built_block(make, input_shape), input_shape, batch_size=3, training=training,
                         progress=False)
    assert report.passed, str(report)
    assert_every_element_compared(report)
    x, y = rng.standard_normal((3, *input_shape)), np.array([0, 1, 2])
    report = check_model(spread_constants(block_model(make(), input_shape)), x, y, training=training,
                         max_elements=30)
    assert report.passed, str(report)
    assert_every_element_compared(report)


# ====================================================================== lookup, CLI names, save/load
def test_get_model_names_and_options():
    assert {"flax_cnn", "small_cnn_bn", "deeper_cnn", "resnet", "resnet8", "resnet14",
            "resnet20"} <= set(MODEL_NAMES)
    model = get_model("ResNet8", input_shape=(12, 12, 1), n_classes=4, seed=2, dtype="float64",
                      backend="scipy")
    assert model.name == "resnet8" and model.output_shape == (4,)
    convs = [layer for layer in iter_layers(model.layers) if isinstance(layer, Conv2D)]
    assert len(convs) == 9  # stem, 2 per block, 2 projections
    assert all(conv.backend == "scipy" for conv in convs)
    leaves = [leaf for leaf in iter_layers(model.layers) if leaf.params]
    assert all(value.dtype == np.float64 for leaf in leaves for value in leaf.params.values())
    assert get_model("resnet", depth=14, width=4).count_params() == resnet_count(2, 4)
    same = get_model("resnet8", input_shape=(12, 12, 1), n_classes=4, seed=2, dtype="float64")
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(value, same.get_weights()[key])


def test_summary_lists_the_new_models(capsys):
    from scratchnet import cli

    assert cli.main(["summary", "--model", "resnet8", "--input-shape", "32,32,3"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 78,042" in out and "basic_block (Residual)" in out


def test_resnet8_resumes_bitwise_after_save_and_load(tmp_path, rng):
    x, y = rng.random((24, 8, 8, 1)), rng.integers(0, 3, 24)

    def make():
        model = resnet(8, width=4, input_shape=(8, 8, 1), n_classes=3, seed=5)
        return model.compile(optimizer=AdamW(lr=1e-2), loss="cross_entropy")

    straight, stopped = make(), make()
    straight.fit(x, y, epochs=2, batch_size=8, verbose=0)
    stopped.fit(x, y, epochs=1, batch_size=8, verbose=0)
    stopped.save(tmp_path / "resnet8.sn")
    resumed = sn.load(tmp_path / "resnet8.sn")
    resumed.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for key, value in straight.get_weights().items():
        np.testing.assert_array_equal(resumed.get_weights()[key], value, err_msg=key)
    for a, b in zip(iter_layers(straight.layers), iter_layers(resumed.layers)):
        for key, value in a.buffers.items():  # BatchNorm running statistics
            np.testing.assert_array_equal(b.buffers[key], value, err_msg=f"{a.name}/{key}")
    assert resumed.epochs_trained == 2
    assert not np.array_equal(straight.get_weights()["conv2d/W"], make().get_weights()["conv2d/W"])


# ================================================================ depthwise blocks (groups, depthwise)
@given(c=st.integers(1, 6), f=st.integers(1, 6), stride=st.sampled_from([1, 2]), size=st.integers(3, 7))
def test_mobilenet_block_shape_and_parameters(c, f, stride, size):
    model = sn.Sequential([mobilenet_block(f, stride=stride)], input_shape=(size, size, c)).build()
    assert model.output_shape == (-(-size // stride), -(-size // stride), f)  # padding 1: ceil(size / s)
    # depthwise 3x3 (9 per channel, no bias), BN(C), pointwise C*F (no bias), BN(F)
    assert model.count_params() == 9 * c + bn(c) + c * f + bn(f)


@given(c=st.integers(1, 4), f=st.integers(1, 4), stride=st.sampled_from([1, 2]), t=st.sampled_from([1, 2, 6]))
def test_inverted_residual_shape_parameters_and_skip(c, f, stride, t):
    block = inverted_residual(c, f, stride=stride, expansion=t)
    model = sn.Sequential([block], input_shape=(6, 6, c)).build()
    assert model.output_shape == (6 // stride, 6 // stride, f)
    expand = c * (c * t) + bn(c * t) if t != 1 else 0
    assert model.count_params() == expand + 9 * c * t + bn(c * t) + c * t * f + bn(f)
    assert type(block).__name__ == ("Residual" if stride == 1 and c == f else "Chain")


@pytest.mark.parametrize("c, f, g, stride", [(8, 8, 2, 1), (6, 12, 3, 2), (4, 12, 2, 2)])
def test_shufflenet_unit_shape_and_parameters(c, f, g, stride):
    unit = shufflenet_unit(c, f, groups=g, stride=stride)
    model = sn.Sequential([unit], input_shape=(6, 6, c)).build()
    assert model.output_shape == (6 // stride, 6 // stride, f)
    m = max(g, round(f * 0.25 / g) * g)          # bottleneck channels, a multiple of g
    out = f if stride == 1 else f - c            # stride 2: the avg-pooled input fills the other c channels
    # grouped 1x1: (C/g)*m weights; BN(m); depthwise 9*m; BN(m); grouped 1x1: (m/g)*out; BN(out)
    assert model.count_params() == (c // g) * m + bn(m) + 9 * m + bn(m) + (m // g) * out + bn(out)
    inner = unit.layers[0]
    assert type(inner).__name__ == ("Residual" if stride == 1 else "Parallel")


def test_shufflenet_unit_refuses_impossible_channel_counts():
    with pytest.raises(ValueError, match="stride 1 adds x to the branch, so filters must equal in_channels"):
        shufflenet_unit(8, 12, stride=1)
    with pytest.raises(ValueError, match="stride 2 concatenates x, so filters must exceed in_channels"):
        shufflenet_unit(8, 8, stride=2)


DEPTHWISE_BLOCKS = {
    "mobilenet": (lambda: mobilenet_block(4, stride=2), (5, 5, 3)),
    "inverted_residual": (lambda: inverted_residual(3, 3, expansion=2), (4, 4, 3)),
    "inverted_residual_s2": (lambda: inverted_residual(2, 3, stride=2, expansion=3), (5, 5, 2)),
    "shufflenet": (lambda: shufflenet_unit(4, 4, groups=2), (4, 4, 4)),
    "shufflenet_s2": (lambda: shufflenet_unit(4, 8, groups=2, stride=2), (5, 5, 4)),
}


# arrays whose true gradient is exactly 0 in training mode: batch_norm_1 (after the depthwise conv)
# shifts a channel by beta everywhere, the grouped 1x1 conv (one input channel per output channel
# here) passes the shift on per channel, and the training-mode BatchNorm after it subtracts it again
ZERO_GRADIENT_IN_TRAINING = {"shufflenet": {"batch_norm_1/beta"}, "shufflenet_s2": {"batch_norm_1/beta"}}


def assert_passed_but_zero(report, zero_gradients):
    """Every array passes (relative error <= 1e-6) except those named in ``zero_gradients``.

    Those have a true gradient of exactly 0, where a relative error compares round-off with
    round-off (a central difference of a loss of size ~10 is only good to ~1e-9 absolute). For
    them: the analytic gradient is 0 to round-off (<= 1e-12 x the report's largest gradient) and
    the numeric one is no more than central-difference noise (<= 1e-8).
    """
    assert not report.contract, str(report)
    rows = {row.name: row for row in report.rows}
    assert set(zero_gradients) <= set(rows), (sorted(zero_gradients), sorted(rows))
    largest = max(np.abs(row.analytic[row.mask]).max() for row in report.rows if row.analytic is not None)
    for name, row in rows.items():
        if name not in zero_gradients:
            assert row.passed, str(report)
            continue
        assert row.checked == row.size, str(report)
        assert np.abs(row.analytic).max() <= 1e-12 * largest, f"{name}: {row.analytic}\n{report}"
        assert np.abs(row.numeric).max() <= 1e-8, f"{name}: {row.numeric}\n{report}"


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("name", list(DEPTHWISE_BLOCKS))
def test_depthwise_block_gradients(name, training, rng):
    make, input_shape = DEPTHWISE_BLOCKS[name]
    zero_gradients = ZERO_GRADIENT_IN_TRAINING.get(name, set()) if training else set()
    report = check_layer(built_block(make, input_shape), input_shape, batch_size=3, training=training,
                         progress=False)
    assert_passed_but_zero(report, zero_gradients)
    assert_every_element_compared(report)
    x, y = rng.standard_normal((3, *input_shape)), np.array([0, 1, 2])
    report = check_model(spread_constants(block_model(make(), input_shape)), x, y, training=training,
                         max_elements=30)
    assert_passed_but_zero(report, zero_gradients)
    assert_every_element_compared(report)


@pytest.mark.parametrize("backend", ["scipy", "loops"])
def test_depthwise_blocks_give_the_same_numbers_on_every_backend(backend, rng):
    x = rng.standard_normal((2, 6, 6, 4))
    for make in (lambda b: mobilenet_block(5, stride=2, backend=b),
                 lambda b: shufflenet_unit(4, 12, groups=2, stride=2, backend=b)):
        fast = sn.Sequential([make("im2col")], input_shape=(6, 6, 4), seed=3, dtype="float64").build()
        other = sn.Sequential([make(backend)], input_shape=(6, 6, 4), seed=3, dtype="float64").build()
        np.testing.assert_allclose(other.forward(x, training=True), fast.forward(x, training=True),
                                   rtol=0, atol=1e-12)
