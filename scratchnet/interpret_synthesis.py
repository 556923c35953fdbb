"""Pictures made by optimising pixels: feature inversion, deep dream and the class model.

Grad-CAM and saliency (interpret.py) read ONE gradient off a given image. The three methods
here instead start from an image (or grey noise) and change its pixels step by step along the
gradient of an objective, so each is a small optimisation loop with its own loss:

* Feature inversion (Mahendran & Vedaldi 2015): find pixels x whose features at a layer match
  the image's, by Adam on the pixels: ``||phi(x) - phi(x0)||^2 / ||phi(x0)||^2 + tv * TV(x) + l2 * ||x||^2``.
* Deep dream: gradient ascent on ``mean(A^2) / 2`` (a layer, or one channel of it).
* Class model (Simonyan et al. 2014): Adam ascent on ``y^c(x) - l2 * ||x - grey||^2`` from a grey
  image (grey: the middle of ``bounds``).

The loop, Adam on the pixels and total variation are shared with style transfer in
pixel_descent.py; the gradients come from ``inspect.backprop``. Kept apart from interpret.py,
which imports these names (and draws their figures), so that each file holds one idea. The
model is used in inference mode; its parameters and optimizer state never change.
"""

from __future__ import annotations

import numpy as np

from .inspect import activations, as_batch, backprop, layer_index
from .layers.spatial import positive_int
from .option_checks import check_count, check_real
from .pixel_descent import descend_pixels, total_variation


def feature_inversion(model, image, layer, steps: int = 200, lr: float = 0.05, tv_weight: float = 1e-3,
                      l2_weight: float = 0.0, bounds=None, rng=0):
    """Reconstruct an image (H, W, C) from its features at ``layer``.

    Starts from a grey image with small noise (``rng``) and runs ``steps`` of Adam on
    L(x) = ||phi(x) - phi0||^2 / ||phi0||^2 + tv_weight * TV(x) + l2_weight * ||x||^2,
    clipping x to ``bounds`` (default the image's own (min, max)).
    Returns ``(reconstruction (H, W, C), losses (steps,))``.
    """
    positive_int(steps, "steps", "feature_inversion")
    check_real(lr, "lr", "feature_inversion", above=0)
    check_real(tv_weight, "tv_weight", "feature_inversion", least=0)
    check_real(l2_weight, "l2_weight", "feature_inversion", least=0)
    index = layer_index(model, layer)
    x0 = np.asarray(as_batch(model, image), dtype=float)[:1]
    phi0 = np.asarray(activations(model, x0, [index])[model.layers[index].name], dtype=float)
    norm = max(float((phi0 ** 2).sum()), 1e-12)
    low, high = bounds if bounds is not None else (x0.min(), x0.max())
    rng = np.random.default_rng(rng)
    x = np.full_like(x0, (low + high) / 2) + 0.01 * (high - low) * rng.standard_normal(x0.shape)
    feature_loss = []

    def d_feature_loss(phi):  # d/dphi of ||phi - phi0||^2 / ||phi0||^2
        feature_loss.append(float(((phi - phi0) ** 2).sum()) / norm)
        return 2 * (phi - phi0) / norm

    def loss_and_gradient(x):
        grad = backprop(model, x, d_feature_loss, score_layer=index)[1].astype(float)
        tv, tv_grad = total_variation(x)
        loss = feature_loss[-1] + tv_weight * tv + l2_weight * float((x ** 2).sum())
        return loss, grad + tv_weight * tv_grad + 2 * l2_weight * x

    x, losses = descend_pixels(x, loss_and_gradient, steps, lr, (low, high))
    return x[0], losses


def deep_dream(model, image, layer, steps: int = 20, lr: float = 0.02, channel: int | None = None,
               bounds=None):
    """Amplify what ``layer`` (or one ``channel`` of it) sees in the image.

    Gradient ascent on J = mean(A^2) / 2 with the step normalised by the mean |gradient|:
    x += lr * g / mean|g|, clipped to ``bounds`` (default the image's (min, max)).
    Returns ``(dreamed image (H, W, C), J before each step (steps,))``.
    """
    positive_int(steps, "steps", "deep_dream")
    check_real(lr, "lr", "deep_dream", above=0)
    index = layer_index(model, layer)
    x = np.asarray(as_batch(model, image), dtype=float)[:1].copy()
    if channel is not None:  # the channel count is needed only to check a chosen channel
        n_channels = model.layers[index].output_shape(model.layers[index].input_shape)[-1]
        if not -n_channels <= channel < n_channels:
            raise ValueError(f"deep_dream: layer {model.layers[index].name!r} has {n_channels} channels "
                             f"(0 to {n_channels - 1}, or -1 to -{n_channels} from the end), "
                             f"got channel={channel!r}")
    low, high = bounds if bounds is not None else (x.min(), x.max())
    objectives = []

    def d_objective(a):  # J = ||A_c||^2 / (2 |A_c|), dJ/dA = A_c / |A_c|, |A_c| = mask.sum() the
        # size of the chosen channel (A.size with channel=None), 0 in the other channels
        mask = np.zeros_like(a)
        mask[..., slice(None) if channel is None else channel] = 1
        chosen = a * mask
        objectives.append(float((chosen ** 2).sum()) / (2 * mask.sum()))
        return chosen / mask.sum()

    for _ in range(steps):
        grad = backprop(model, x, d_objective, score_layer=index)[1].astype(float)
        x = np.clip(x + lr * grad / (np.abs(grad).mean() + 1e-12), low, high)
    return x[0], np.array(objectives)


def class_model(model, class_index: int, steps: int = 200, lr: float = 0.05, l2_weight: float = 1e-2,
                bounds=(0.0, 1.0), rng=0):
    """The image a class likes best: Adam ascent on y^c(x) - l2_weight * ||x - grey||^2.

    Starts from mid-grey plus small noise (``rng``); x stays inside ``bounds``. The L2 term
    (around the grey middle of ``bounds``) keeps the pixels from running to the limits.
    Returns ``(image (*input_shape), class scores y^c before each step (steps,))``.
    """
    positive_int(steps, "steps", "class_model")
    check_real(lr, "lr", "class_model", above=0)
    check_real(l2_weight, "l2_weight", "class_model", least=0)
    n_classes = model.output_shape[-1]
    check_count(class_index, "class_index", "class_model", 0, most=n_classes - 1)
    low, high = bounds
    middle = (low + high) / 2
    rng = np.random.default_rng(rng)
    x = middle + 0.01 * (high - low) * rng.standard_normal((1, *model.input_shape))
    scores = []

    def d_score(out):  # d y^c / d out, recording y^c
        scores.append(float(out[0, class_index]))
        return np.eye(out.shape[-1], dtype=out.dtype)[[class_index]]

    def score_and_descent(x):
        grad = backprop(model, x, d_score)[1].astype(float)
        ascent = grad - 2 * l2_weight * (x - middle)  # d/dx of y^c - l2 ||x - middle||^2
        return scores[-1], -ascent  # Adam minimises: step on the negative

    x, scores_per_step = descend_pixels(x, score_and_descent, steps, lr, bounds)
    return x[0], scores_per_step
