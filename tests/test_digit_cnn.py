"""digit_cnn (issue 17, the default of `scratchnet train` on MNIST): parameters counted by hand,
output shapes, options, whole-model gradient checks in float64 (training and inference mode)."""

import numpy as np
import pytest

from scratchnet.gradcheck import check_model
from scratchnet.layers.base import iter_layers
from scratchnet.models import MODEL_NAMES, digit_cnn, get_model


def bn(c):       # BatchNorm: gamma and beta per channel
    return 2 * c


def test_digit_cnn_parameters_and_shapes_by_hand():
    model = get_model("digit_cnn")
    names = [type(layer).__name__ for layer in model.layers]
    assert names == ["Conv2D", "BatchNorm", "Activation", "MaxPool2D"] * 3 + ["Flatten", "Dense"]
    # conv 3*3*1*16, 3*3*16*32, 3*3*32*64 (no bias), BN per channel, dense 3*3*64*10 + 10
    expected = 144 + bn(16) + 4_608 + bn(32) + 18_432 + bn(64) + (576 * 10 + 10)
    assert model.count_params() == expected == 29_178
    sizes = [layer.output_shape(layer.input_shape) for layer in model.layers if type(layer).__name__ ==
             "MaxPool2D"]
    assert sizes == [(14, 14, 16), (7, 7, 32), (3, 3, 64)]          # 28 -> 14 -> 7 -> 3 (floor)
    assert not any(layer.use_bias for layer in model.layers if type(layer).__name__ == "Conv2D")
    assert model.output_shape == (10,) and "digit_cnn" in MODEL_NAMES


def test_digit_cnn_widths_dropout_and_other_inputs():
    model = digit_cnn(widths=(8, 8, 16), dropout=0.25, input_shape=(32, 32, 3), n_classes=5)
    # 32 -> 16 -> 8 -> 4: the dense layer sees 4*4*16 = 256 values
    assert model.count_params() == 27 * 8 + bn(8) + 72 * 8 + bn(8) + 72 * 16 + bn(16) + 256 * 5 + 5
    assert [type(layer).__name__ for layer in model.layers][-3:] == ["Flatten", "Dropout", "Dense"]
    assert model.layers[-2].rate == 0.25
    message = r"^digit_cnn: widths must be three ints >= 1, got \(8, 0, 4\)$"
    with pytest.raises(ValueError, match=message):
        digit_cnn(widths=(8, 0, 4))
    with pytest.raises(ValueError, match="digit_cnn: widths"):
        digit_cnn(widths=(8, 16))
    with pytest.raises(TypeError, match=r"^digit_cnn: widths must be three ints >= 1, got \(8, 8.0, 4\)$"):
        digit_cnn(widths=(8, 8.0, 4))                    # a float is refused, as everywhere (was accepted)
    assert digit_cnn(widths=np.array([2, 3, 4]), input_shape=(8, 8, 1)).layers[0].filters == 2


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
def test_digit_cnn_gradients(training, rng):
    model = digit_cnn(widths=(3, 4, 5), input_shape=(8, 8, 2), n_classes=3, seed=1, dtype="float64")
    model.compile(optimizer="adam", loss="cross_entropy")
    if training is False:  # give BatchNorm non-trivial running statistics first
        model.forward(rng.standard_normal((4, 8, 8, 2)) * 2 + 1, training=True)
    x, y = rng.standard_normal((4, 8, 8, 2)), np.array([0, 2, 1, 2])
    report = check_model(model, x, y, training=training, max_elements=12)
    assert report.passed, str(report)
    assert len(report.errors()) == 1 + sum(len(leaf.params) for leaf in iter_layers(model.layers))


def test_digit_cnn_is_deterministic_per_seed():
    a, b, c = get_model("digit_cnn", seed=3), get_model("digit_cnn", seed=3), get_model("digit_cnn", seed=4)
    np.testing.assert_array_equal(a.layers[0].params["W"], b.layers[0].params["W"])
    assert not np.array_equal(a.layers[0].params["W"], c.layers[0].params["W"])
