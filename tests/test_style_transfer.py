"""Style transfer: the Gram matrix by hand, pixel gradients against central differences and torch,
a short run that lowers the loss, clear errors, and the figure."""

import numpy as np
import pytest
from torch_twin import nchw_tensor

from scratchnet import Sequential
from scratchnet.gradcheck import gradient_error, numerical_gradient
from scratchnet.inspect import activations
from scratchnet.interpret import feature_map_layers
from scratchnet.layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D
from scratchnet.style_transfer import (
    content_loss,
    gram_matrix,
    plot_style_transfer,
    style_loss,
    style_targets,
    style_transfer,
    style_transfer_loss,
)


def tiny_network(seed=0):
    """Smooth (tanh, average pooling) so central differences have no kinks to trip on."""
    return Sequential([
        Conv2D(3, 3, padding="same"), Activation("tanh"), AvgPool2D(2),
        Conv2D(4, 3, padding="same"), Activation("tanh"), Flatten(), Dense(2),
    ], input_shape=(6, 6, 2), dtype="float64", seed=seed).build()


def images(seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(6, 6, 2)), rng.uniform(size=(6, 6, 2)), rng.uniform(size=(1, 6, 6, 2))


# ---------------------------------------------------------------------- the formulas by hand
def test_gram_matrix_and_style_loss_by_hand():
    """F (2x2 cells, 2 channels) as rows (1,2), (3,4), (5,6), (7,8): F^T F = [[84, 100], [100, 120]]
    (1+9+25+49, 2+12+30+56, 4+16+36+64), divided by h w C = 8."""
    features = np.arange(1.0, 9.0).reshape(1, 2, 2, 2)
    np.testing.assert_allclose(gram_matrix(features), [[[10.5, 12.5], [12.5, 15.0]]], rtol=1e-15)
    value, _ = style_loss(features, np.zeros((1, 2, 2)))
    assert value == pytest.approx(10.5 ** 2 + 2 * 12.5 ** 2 + 15.0 ** 2, rel=1e-15)  # 647.75
    target = np.array([[[10.0, 12.0], [12.0, 16.0]]])
    value, _ = style_loss(features, target)
    assert value == pytest.approx(0.5 ** 2 + 2 * 0.5 ** 2 + 1.0 ** 2, rel=1e-15)
    value, grad = content_loss(features, features + 2.0)
    assert value == pytest.approx(4.0, rel=1e-15) and np.allclose(grad, -0.5)  # 2 * (-2) / 8


def test_feature_gradients_match_central_differences(rng):
    features = rng.normal(size=(1, 3, 4, 5))
    target_gram = gram_matrix(rng.normal(size=(1, 2, 2, 5)))  # symmetric, as every Gram matrix
    target_features = rng.normal(size=(1, 3, 4, 5))
    for loss, target in ((style_loss, target_gram), (content_loss, target_features)):
        numeric = numerical_gradient(lambda f, loss=loss, target=target: loss(f, target)[0], features)
        assert gradient_error(loss(features, target)[1], numeric) < 1e-8


# ---------------------------------------------------------------------- pixel gradients
@pytest.mark.parametrize("part, weights", [("content", (1.0, 0.0, 0.0)), ("style", (0.0, 1.0, 0.0)),
                                           ("tv", (0.0, 0.0, 1.0)), ("total", (0.7, 30.0, 0.1))])
def test_pixel_gradient_matches_central_differences(part, weights):
    """Each part alone (the others weighted 0), then all three: float64 central differences of
    the total loss with respect to every pixel."""
    model = tiny_network()
    content, style, x = images()
    targets = style_targets(model, content, style, "activation_1", ["activation", "activation_1"])
    losses, grad = style_transfer_loss(model, x, targets, *weights)
    numeric = numerical_gradient(
        lambda image: style_transfer_loss(model, image, targets, *weights)[0]["total"], x)
    assert losses[part] > 1e-4 and np.abs(numeric).max() > 1e-4
    assert gradient_error(grad, numeric) < 1e-8


def test_style_loss_is_zero_at_the_style_image():
    model = tiny_network()
    content, style, _ = images()
    targets = style_targets(model, content, style, 4, [1, 3, 4])
    losses, grad = style_transfer_loss(model, style[np.newaxis], targets, content_weight=0.0)
    assert losses["style"] == 0.0 and losses["content"] > 0.01
    assert not grad.any()
    losses, _ = style_transfer_loss(model, content[np.newaxis], targets)
    assert losses["content"] == 0.0 and losses["style"] > 0


@pytest.mark.torch
def test_style_loss_and_pixel_gradient_match_torch_autograd(one_torch_thread):
    """The same network as a torch twin (interop.to_torch), the Gram loss written in torch."""
    torch = pytest.importorskip("torch")
    from scratchnet.interop import to_torch

    model = tiny_network(seed=3)
    content, style, x = images(seed=4)
    style_layers, content_layer = [1, 3, 4], 4
    targets = style_targets(model, content, style, content_layer, style_layers)
    losses, grad = style_transfer_loss(model, x, targets, content_weight=0.5, style_weight=20.0)

    twin = to_torch(model, channels_first=True)

    def gram(a):  # a (1, C, h, w) channels-first -> F (1, h*w, C) -> F^T F / (h w C)
        _, c, h, w = a.shape
        flat = a.permute(0, 2, 3, 1).reshape(1, h * w, c)
        return flat.transpose(1, 2) @ flat / (h * w * c)

    def features_at(pixels):  # {layer index: output}: module i of the twin is layer i
        out, seen = pixels, {}
        for index in range(content_layer + 1):
            out = twin[index](out)
            seen[index] = out
        return seen

    style_features = features_at(nchw_tensor(torch, style[np.newaxis]))
    content_features = features_at(nchw_tensor(torch, content[np.newaxis]))[content_layer].detach()
    pixels = nchw_tensor(torch, x).requires_grad_(True)
    seen = features_at(pixels)
    style_value = sum(((gram(seen[i]) - gram(style_features[i]).detach()) ** 2).sum() for i in style_layers)
    content_value = ((seen[content_layer] - content_features) ** 2).mean()
    total = 0.5 * content_value + 20.0 * style_value
    total.backward()
    assert losses["style"] == pytest.approx(style_value.item(), rel=1e-12)
    assert losses["content"] == pytest.approx(content_value.item(), rel=1e-12)
    assert losses["total"] == pytest.approx(total.item(), rel=1e-12)
    expected = pixels.grad.numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(grad, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


# ---------------------------------------------------------------------- the run
def test_a_short_run_lowers_the_loss_and_leaves_the_model_alone():
    """Seeded tiny network, 30 steps of lr 0.05 from the content image: the first loss is the
    style term at the content image (content term 0); measured 0.09121 -> 0.003687 (x 0.04)."""
    model = tiny_network(seed=5)
    content, style, _ = images(seed=6)
    weights_before = model.get_weights()
    image, losses = style_transfer(model, content, style, "activation_1", ["activation", "activation_1"],
                                   steps=30, lr=0.05, style_weight=100.0)
    targets = style_targets(model, content, style, "activation_1", ["activation", "activation_1"])
    at_content = style_transfer_loss(model, content[np.newaxis], targets, style_weight=100.0)[0]
    assert losses.shape == (30,) and losses[0] == pytest.approx(at_content["total"], rel=1e-12)
    assert losses[0] == pytest.approx(0.09121, rel=1e-3) and losses[-1] == pytest.approx(0.003687, rel=1e-3)
    assert losses[-1] < 0.1 * losses[0]
    after = style_transfer_loss(model, image[np.newaxis], targets, style_weight=100.0)[0]
    assert after["total"] < 0.1 * at_content["total"] and after["content"] > 0
    low, high = min(content.min(), style.min()), max(content.max(), style.max())
    assert image.shape == (6, 6, 2) and low <= image.min() and image.max() <= high
    weights_after = model.get_weights()
    assert all(np.array_equal(weights_after[name], weights_before[name]) for name in weights_before)


def test_default_layers_are_the_feature_maps():
    """Default: style at every convolution's activation, content at the last of them."""
    model = tiny_network()
    content, style, _ = images()
    assert feature_map_layers(model) == [1, 4]
    default = style_transfer(model, content, style, steps=3)
    explicit = style_transfer(model, content, style, 4, [1, 4], steps=3)
    np.testing.assert_array_equal(default[0], explicit[0])
    np.testing.assert_array_equal(default[1], explicit[1])


# ---------------------------------------------------------------------- careless input
def test_clear_errors_for_wrong_shapes_layers_and_options():
    model = tiny_network()
    content, style, _ = images()
    with pytest.raises(ValueError, match=r"style must be one image of the model's input shape \(6, 6, 2\), "
                                         r"got shape \(6, 6, 3\)"):
        style_transfer(model, content, np.zeros((6, 6, 3)))
    with pytest.raises(ValueError, match=r"content must be one image of the model's input shape "
                                         r"\(6, 6, 2\), got shape \(2, 6, 6, 2\)"):
        style_transfer(model, np.stack([content, content]), style)
    with pytest.raises(ValueError, match="no layer 'conv9'; layers are: conv2d, activation, "):
        style_transfer(model, content, style, style_layers=["activation", "conv9"])
    with pytest.raises(ValueError, match=r"a style layer needs an \(h, w, C\) output for its Gram matrix; "
                                         r"'dense' gives \(2,\)"):
        style_transfer(model, content, style, style_layers=["activation", "dense"])
    for wrong in ([], "activation", 1):
        with pytest.raises(ValueError, match="style_layers must be a non-empty list of layer names or "):
            style_transfer(model, content, style, style_layers=wrong)
    with pytest.raises(ValueError, match=r"^style_transfer: style_weight must be a finite number >= 0, "
                                         r"got -1.0$"):
        style_transfer(model, content, style, style_weight=-1.0)
    with pytest.raises(ValueError, match="style_transfer: steps must be an int >= 1, got 0"):
        style_transfer(model, content, style, steps=0)
    dense_only = Sequential([Flatten(), Dense(2)], input_shape=(6, 6, 2), dtype="float64").build()
    with pytest.raises(ValueError, match="has no layer with weights and an \\(h, w, C\\) output to default "
                                         "to; pass content_layer= and style_layers="):
        style_transfer(dense_only, content, style)


# ---------------------------------------------------------------------- the figure
def test_style_transfer_figure_content(tmp_path):
    pytest.importorskip("matplotlib")
    model = Sequential([Conv2D(4, 3, padding="same"), Activation("relu"), MaxPool2D(2), Flatten(), Dense(3)],
                       input_shape=(12, 12, 1), seed=2).build()
    rng = np.random.default_rng(0)
    content, style = rng.uniform(size=(12, 12, 1)), rng.uniform(size=(12, 12, 1))
    image, losses, figure = plot_style_transfer(model, content, style, steps=4, save_path=tmp_path / "s.png")
    assert image.shape == (12, 12, 1) and losses.shape == (4,)
    image_axes = [axes for axes in figure.axes if axes.images]
    assert len(figure.axes) == 4
    assert [axes.get_title() for axes in image_axes] == ["content", "style", "result"]
    assert all(axes.images[0].get_array().shape == (12, 12) for axes in image_axes)
    for axes, picture in zip(image_axes, (content, style)):  # shown rescaled to [0, 1]
        expected = (picture - picture.min()) / (picture.max() - picture.min())
        np.testing.assert_allclose(axes.images[0].get_array(), expected[:, :, 0], rtol=0, atol=1e-15)
    curve = figure.axes[3]
    assert curve.get_xlabel() == "step" and curve.get_ylabel() == "total loss"
    np.testing.assert_allclose(curve.lines[0].get_ydata(), losses)
    assert figure.get_suptitle() == "style transfer"
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_each_image_is_converted_once(monkeypatch):
    """style_transfer converts content and style once (the targets, the start and the bounds reuse
    them); plot_style_transfer converts them once and hands style_transfer float64 batches of one,
    which it only checks (np.asarray returns them as they are). A wrong image is named as before."""
    from scratchnet import style_transfer as module

    model = Sequential([Conv2D(2, 3, padding="same"), Activation("tanh"), Flatten(), Dense(2)],
                       input_shape=(6, 6, 1), dtype="float64", seed=0).build()  # 1 channel: plottable
    content, style = np.random.default_rng(0).uniform(size=(2, 6, 6, 1))
    seen = []

    def counting_one_image(model, image, what):
        seen.append((what, np.shape(image), np.asarray(image).dtype))
        return one_image(model, image, what)

    one_image = module._one_image
    monkeypatch.setattr(module, "_one_image", counting_one_image)
    style_transfer(model, content, style, steps=1)
    assert seen == [("content", (6, 6, 1), np.float64), ("style", (6, 6, 1), np.float64)]
    pytest.importorskip("matplotlib")
    seen.clear()
    plot_style_transfer(model, content.tolist(), style, steps=1)
    assert [what for what, _, _ in seen] == ["content", "style", "content", "style"]
    assert seen[2:] == [("content", (1, 6, 6, 1), np.float64), ("style", (1, 6, 6, 1), np.float64)]
    with pytest.raises(ValueError, match=r"style must be one image of the model's input shape \(6, 6, 1\), "
                                         r"got shape \(6, 6, 3\)"):
        plot_style_transfer(model, content, np.zeros((6, 6, 3)), steps=1)


def test_activations_read_by_the_losses_are_the_model_outputs():
    """The features style_targets stores are the model's own layer outputs (float64 copies)."""
    model = tiny_network()
    content, style, _ = images()
    targets = style_targets(model, content, style, 4, [1])
    expected = activations(model, content[np.newaxis], [4])["activation_1"]
    np.testing.assert_array_equal(targets.content_features, expected)
    np.testing.assert_array_equal(targets.style_grams[1],
                                  gram_matrix(activations(model, style[np.newaxis], [1])["activation"]))


# ---------------------------------------------------------------------- a trained digit model
def stripe_direction(images):
    """Mean |difference| across the width / along the height, per image (N, H, W, 1) -> (N,):
    large for vertical stripes (measured 3.5), small for horizontal ones (0.35), ~1 for most digits."""
    across = np.abs(np.diff(images, axis=2)).mean(axis=(1, 2, 3))
    down = np.abs(np.diff(images, axis=1)).mean(axis=(1, 2, 3))
    return across / down


@pytest.mark.slow
def test_digits_take_on_the_direction_of_the_stripes():
    """A small CNN trained one epoch on 3,000 digits; 5 test digits restyled (60 steps, style
    weight 3) with vertical and with horizontal stripes from make_patterns. Thresholds: the
    vertical-stripe result's direction ratio is > 1.8 times the horizontal one's for every digit
    (measured 2.3-3.2), and the result still correlates with the digit (> 0.5; measured 0.61-0.83)."""
    from scratchnet import Adam
    from scratchnet.datasets import load_mnist_sample, make_patterns

    (x_train, y_train), (x_test, _) = load_mnist_sample()
    model = Sequential([
        Conv2D(8, 3, padding="same"), Activation("relu"), MaxPool2D(2),
        Conv2D(16, 3, padding="same"), Activation("relu"), MaxPool2D(2), Flatten(), Dense(10),
    ], input_shape=(28, 28, 1), seed=0).build().compile(Adam(lr=3e-3), "cross_entropy")
    model.fit(x_train[:3000], y_train[:3000], epochs=1, batch_size=32, verbose=0)
    patterns, classes = make_patterns(40, image_size=28, seed=0)
    vertical, horizontal = patterns[list(classes).index(1)], patterns[list(classes).index(0)]
    digits = x_test[:5]
    results = {}
    for name, style in (("vertical", vertical), ("horizontal", horizontal)):
        results[name] = np.array([style_transfer(model, digit, style, steps=60, style_weight=3.0)[0]
                                  for digit in digits])
        for result, digit in zip(results[name], digits):
            assert np.corrcoef(result.ravel(), digit.ravel())[0, 1] > 0.5
    assert (stripe_direction(results["vertical"]) > 1.8 * stripe_direction(results["horizontal"])).all()
