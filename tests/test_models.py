"""Ready-made models: architecture (shapes, parameter counts worked out by hand), options, learning."""

import numpy as np
import pytest

from scratchnet.datasets import make_patterns
from scratchnet.layers import Conv2D
from scratchnet.models import MODELS, get_model, lenet5, mlp, small_cnn, tiny_cnn
from scratchnet.optimizers import Adam


def layer_table(model):
    shape, rows = model.input_shape, []
    for layer in model.layers:
        shape = layer.output_shape(shape)
        rows.append((type(layer).__name__, shape, layer.count_params()))
    return rows


def test_lenet5_architecture_for_mnist():
    model = lenet5()
    assert layer_table(model) == [
        ("Conv2D", (28, 28, 6), 5 * 5 * 1 * 6 + 6),        # "same": 28 -> 28
        ("Activation", (28, 28, 6), 0),
        ("MaxPool2D", (14, 14, 6), 0),
        ("Conv2D", (10, 10, 16), 5 * 5 * 6 * 16 + 16),     # "valid": 14 - 5 + 1 = 10
        ("Activation", (10, 10, 16), 0),
        ("MaxPool2D", (5, 5, 16), 0),
        ("Flatten", (400,), 0),
        ("Dense", (120,), 400 * 120 + 120),
        ("Dense", (84,), 120 * 84 + 84),
        ("Dense", (10,), 84 * 10 + 10),
    ]
    assert model.count_params() == 61_706
    assert model.loss is None and model.optimizer is None  # returned uncompiled


def test_small_cnn_and_tiny_cnn_parameter_counts():
    small = small_cnn(input_shape=(32, 32, 3), n_classes=10)
    # conv 3*3*3*32+32, conv 3*3*32*64+64, dense (8*8*64)*128+128, dense 128*10+10
    assert small.count_params() == 896 + 18_496 + 524_416 + 1_290
    assert small.output_shape == (10,)
    tiny = tiny_cnn(input_shape=(28, 28, 1), n_classes=5)
    # conv 3*3*1*8+8 -> 26x26x8, pool -> 13x13x8 = 1352, dense 1352*5+5
    assert tiny.count_params() == 80 + 6_765
    assert mlp(n_classes=3).count_params() == 784 * 128 + 128 + 128 * 3 + 3


def test_model_options_reach_every_layer():
    model = get_model("small-cnn", input_shape=(12, 12, 2), n_classes=4, seed=3, dtype="float64",
                      backend="scipy")
    convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    assert len(convs) == 2 and all(conv.backend == "scipy" for conv in convs)
    assert all(param.dtype == np.float64 for layer in model.layers for param in layer.params.values())
    same_seed = get_model("small_cnn", input_shape=(12, 12, 2), n_classes=4, seed=3, dtype="float64")
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(value, same_seed.get_weights()[key])
    other_seed = get_model("small_cnn", input_shape=(12, 12, 2), n_classes=4, seed=4, dtype="float64")
    assert not np.array_equal(other_seed.layers[0].params["W"], model.layers[0].params["W"])


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'vgg16'; choose one of lenet5"):
        get_model("vgg16")
    assert set(MODELS) == {"lenet5", "small_cnn", "tiny_cnn", "mlp", "flax_cnn", "small_cnn_bn", "deeper_cnn",
                           "resnet", "resnet8", "resnet14", "resnet20"}


def test_lenet5_backends_give_the_same_logits(rng):
    x = rng.random((2, 28, 28, 1))
    fast = lenet5(dtype="float64", backend="im2col", seed=1)
    reference = lenet5(dtype="float64", backend="scipy", seed=1)
    np.testing.assert_allclose(fast.predict(x), reference.predict(x), rtol=0, atol=1e-10)


def test_tiny_cnn_learns_patterns_better_than_chance():
    x, y = make_patterns(1000, image_size=16, seed=0)
    x_test, y_test = make_patterns(300, image_size=16, seed=1)
    model = tiny_cnn(input_shape=(16, 16, 1), n_classes=5, seed=0)
    model.compile(optimizer=Adam(lr=3e-3), loss="cross_entropy")
    before = model.evaluate(x_test, y_test)["accuracy"]
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    after = model.evaluate(x_test, y_test)["accuracy"]
    assert before < 0.4 and after > 0.8  # chance is 0.2; measured 0.91 with seed 0
