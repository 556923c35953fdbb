"""Style transfer (Gatys, Ecker & Bethge 2016): one image's content drawn in another's style.

A layer's features F (1, h, w, C) are read as a matrix with M = h*w rows (cells) and C columns
(channels, channels-last). With x the image being optimised:

* content loss at one layer:  L_c = ||F(x) - F(content)||^2 / F.size   (mean squared distance)
  dL_c/dF = 2 (F(x) - F(content)) / F.size
* Gram matrix:  G = F^T F / (M C)   (C, C): which channels fire together, wherever in the image
* style loss, summed over the style layers:  L_s = sum_l ||G_l(x) - G_l(style)||^2   (Frobenius)
  dL_s/dF_l = 4 F_l (G_l(x) - G_l(style)) / (M C)   (as G - A is symmetric)

The total L = content_weight L_c + style_weight L_s + tv_weight TV(x) is minimised over the pixels
by ``pixel_descent.descend_pixels`` (Adam, clipped to ``bounds``), starting from the content image.
dL/dx = sum_l (dF_l/dx)^T dL/dF_l over the chosen layers l comes from
``inspect.input_gradient_of_sum``: one forward pass to the deepest chosen layer, where each layer's
target, a callable F_l -> dL/dF_l, computes that layer's loss terms from its output; then ONE walk
back to the pixels through the layers' own backward, adding dL/dF_l as it passes layer l. (One
``input_gradient`` per layer gives the same sum up to round-off, with a forward pass and a walk
per layer. Tutorial 10's model, float32, content at the last ReLU, style at both: a loss and
gradient takes 0.76-0.77x the time of one input_gradient per layer (2 forward passes, 2 walks) and
0.61x that of activations() plus one input_gradient per layer (3 forward passes, 2 walks); one
thread, side by side, load 2.4-3.4, OPENBLAS_CORETYPE=Haswell.) The model's parameters never change.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from .inspect import activations, input_gradient_of_sum, layer_index
from .interpret import feature_map_layers, pictures_and_curve
from .layers.spatial import positive_int
from .option_checks import check_real
from .pixel_descent import as_float, descend_pixels, total_variation


def gram_matrix(features: np.ndarray) -> np.ndarray:
    """(N, h, w, C) -> (N, C, C): G[n] = F^T F / (h w C), with F = features[n] as (h*w, C).
    Integer features (uint8 images) are computed in float64 (``as_float``)."""
    features = as_float(features)
    n, h, w, c = features.shape
    flat = features.reshape(n, h * w, c)
    return flat.transpose(0, 2, 1) @ flat / (h * w * c)


def content_loss(features, target):
    """``(||F - P||^2 / F.size, dL/dF)`` for features F and target P of the same shape."""
    difference = features - target
    return float((difference ** 2).sum()) / difference.size, 2 * difference / difference.size


def style_loss(features, target_gram):
    """``(||G(F) - A||^2, dL/dF)`` for features F (N, h, w, C) and a target Gram matrix A (N, C, C),
    symmetric like every Gram matrix (the gradient's formula uses it)."""
    n, h, w, c = features.shape
    difference = gram_matrix(features) - target_gram                       # G - A  (N, C, C)
    grad = features.reshape(n, h * w, c) @ difference * (4 / (h * w * c))  # 4 F (G - A) / (M C)
    return float((difference ** 2).sum()), grad.reshape(features.shape)


class StyleTargets(NamedTuple):
    """What the image should match: F(content) at one layer and G(style) at the style layers."""
    content_layer: int                   # index in model.layers
    content_features: np.ndarray         # P = F(content) (1, *that layer's output shape)
    style_grams: dict[int, np.ndarray]   # {layer index: A_l = G_l(style) (1, C_l, C_l)}


def _one_image(model, image, what: str) -> np.ndarray:
    """(H, W, C) or (1, H, W, C) of the model's input shape -> (1, H, W, C) float64."""
    image = np.asarray(image, dtype=np.float64)
    if image.shape not in (tuple(model.input_shape), (1, *model.input_shape)):
        raise ValueError(f"style_transfer: {what} must be one image of the model's input shape "
                         f"{tuple(model.input_shape)}, got shape {image.shape}")
    return image.reshape(1, *model.input_shape)


def style_targets(model, content, style, content_layer, style_layers) -> StyleTargets:
    """F(content) at ``content_layer`` and G(style) at each of ``style_layers`` (names/indices;
    each must give an (h, w, C) output)."""
    content_index, style_indices = _chosen_layers(model, content_layer, style_layers)
    return _targets_of_images(model, _one_image(model, content, "content"),
                              _one_image(model, style, "style"), content_index, style_indices)


def _chosen_layers(model, content_layer, style_layers) -> tuple[int, list[int]]:
    """(content layer's index, [style layers' indices]), checked."""
    if isinstance(style_layers, (str, numbers.Integral)) or not style_layers:
        raise ValueError(f"style_transfer: style_layers must be a non-empty list of layer names or "
                         f"indices, got {style_layers!r}")
    return layer_index(model, content_layer), [layer_index(model, layer) for layer in style_layers]


def _targets_of_images(model, content_image, style_image, content_index, style_indices) -> StyleTargets:
    """``style_targets`` for images already checked by ``_one_image`` (1, H, W, C) float64."""
    content_features = activations(model, content_image, [content_index])
    style_features = activations(model, style_image, style_indices)
    style_grams = {}
    for index in style_indices:
        features = np.asarray(style_features[model.layers[index].name], dtype=np.float64)
        if features.ndim != 4:
            raise ValueError(f"style_transfer: a style layer needs an (h, w, C) output for its Gram "
                             f"matrix; {model.layers[index].name!r} gives {features.shape[1:]}")
        style_grams[index] = gram_matrix(features)
    content_features = np.asarray(content_features[model.layers[content_index].name], dtype=np.float64)
    return StyleTargets(content_index, content_features, style_grams)


def style_transfer_loss(model, x, targets: StyleTargets, content_weight=1.0, style_weight=10.0,
                        tv_weight=0.0):
    """``(losses, dL/dx)``: losses = {"content", "style", "tv", "total"} (floats) for the image
    x (1, H, W, C), and the gradient of the total with respect to the pixels (x's shape)."""
    losses = {"content": 0.0, "style": 0.0}

    def d_loss_at(index):
        """The target for layer ``index``: its output F_l -> dL/dF_l, adding the layer's content
        and style terms to ``losses`` on the way (as feature_inversion's d_feature_loss does)."""
        def d_loss(layer_output):
            features = np.asarray(layer_output, dtype=np.float64)
            feature_grad = np.zeros_like(features)
            if index == targets.content_layer:
                value, grad = content_loss(features, targets.content_features)
                losses["content"] += value
                feature_grad += content_weight * grad
            if index in targets.style_grams:
                value, grad = style_loss(features, targets.style_grams[index])
                losses["style"] += value
                feature_grad += style_weight * grad
            return feature_grad
        return d_loss

    chosen = sorted({targets.content_layer, *targets.style_grams})
    # dL/dx = sum_l (dF_l/dx)^T dL/dF_l: one forward pass, one walk back adding each dL/dF_l
    pixel_grad = input_gradient_of_sum(model, x, {index: d_loss_at(index) for index in chosen})
    losses["tv"], tv_grad = total_variation(x)
    pixel_grad = pixel_grad + tv_weight * tv_grad
    losses["total"] = content_weight * losses["content"] + style_weight * losses["style"] \
        + tv_weight * losses["tv"]
    return losses, pixel_grad


def style_transfer(model, content, style, content_layer=None, style_layers=None, steps: int = 100,
                   lr: float = 0.02, content_weight: float = 1.0, style_weight: float = 10.0,
                   tv_weight: float = 0.0, bounds=None):
    """The content image redrawn with the style image's Gram matrices (module docstring).

    content, style : images (H, W, C) of the model's input shape
    content_layer : name / index; default the last of ``interpret.feature_map_layers`` (the last
        convolution's activation)
    style_layers : list of names / indices with (h, w, C) outputs; default all of them
    bounds : (low, high) for the pixels; default the min and max of both images
    Returns ``(image (H, W, C), total loss before each step (steps,))``.
    """
    positive_int(steps, "steps", "style_transfer")
    check_real(lr, "lr", "style_transfer", above=0)
    for name, weight in (("content_weight", content_weight), ("style_weight", style_weight),
                         ("tv_weight", tv_weight)):
        check_real(weight, name, "style_transfer", least=0)
    if content_layer is None or style_layers is None:  # the defaults
        feature_layers = feature_map_layers(model)
        if not feature_layers:
            raise ValueError(f"style_transfer: {model.name} has no layer with weights and an (h, w, C) "
                             "output to default to; pass content_layer= and style_layers=")
        content_layer = feature_layers[-1] if content_layer is None else content_layer
        style_layers = feature_layers if style_layers is None else style_layers
    content_index, style_indices = _chosen_layers(model, content_layer, style_layers)
    x, style_image = _one_image(model, content, "content"), _one_image(model, style, "style")
    targets = _targets_of_images(model, x, style_image, content_index, style_indices)
    if bounds is None:
        both = np.concatenate([x.ravel(), style_image.ravel()])
        bounds = (both.min(), both.max())

    def loss_and_gradient(image):
        losses, grad = style_transfer_loss(model, image, targets, content_weight, style_weight, tv_weight)
        return losses["total"], grad

    x, losses = descend_pixels(x, loss_and_gradient, steps, lr, bounds)
    return x[0], losses


def plot_style_transfer(model, content, style, steps: int = 100, save_path=None, **options):
    """Content, style, result and the total loss per step. Returns ``(image, losses, figure)``."""
    content, style = _one_image(model, content, "content"), _one_image(model, style, "style")
    image, losses = style_transfer(model, content, style, steps=steps, **options)  # checks, no copies
    pictures = [(content[0], "content"), (style[0], "style"), (image, "result")]
    figure = pictures_and_curve("style transfer", pictures, losses, "total loss", save_path)
    return image, losses, figure
