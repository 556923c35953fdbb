"""What a trained CNN looks at: Grad-CAM, saliency, feature inversion, deep dream, class model.

Every method is one of the gradients of ``inspect.py`` put to work:

* Grad-CAM (Selvaraju et al. 2017): with A (N, h, w, K) a convolution layer's output and y^c
  the class score, the channel weights are ``alpha_k = mean_{i,j} d y^c / d A[i, j, k]`` and
  the map is ``ReLU(sum_k alpha_k A[:, :, k])``, upsampled to the image and scaled to [0, 1].
  ``weighting="elementwise"`` keeps the gradient per cell instead of averaging it:
  ``ReLU(sum_k dy^c/dA^k * A^k)`` (HiResCAM, Draelos & Carin 2020). Behind a global average
  pooling head the gradient is the same in every cell and both are the same map (CAM, Zhou et
  al. 2016). Behind Flatten + Dense they differ: a small digit model trained for one epoch
  gives *empty* mean-weighted maps for about half the digits (the class weights of the many
  background cells are mostly negative, "no stroke here", and their average outweighs the few
  positive ones on the strokes), while the element-wise map puts most of its mass on the digit.
  The default ``weighting="auto"`` runs the seed formula where it is exact, i.e. where the layer
  feeds a GlobalAvgPool2D directly (there the gradient is W[:, c] / (h w) in every cell, so
  "mean" = "elementwise" = CAM), and "elementwise" everywhere else. Measured (tests): behind a
  GAP head but at an earlier layer the averaged gradient is worse too (worst share of the map on
  the dilated strokes 0.39 against 0.58), and even the exact CAM of small fast-trained GAP models
  is only weakly localised (digits: mean share 0.47 on strokes covering 0.36; patterns: it marks
  the background around a disc, not the disc).
* Saliency (Simonyan et al. 2014): ``max_channels |d y^c / d x|``; SmoothGrad (Smilkov et al.
  2017) averages that gradient over noisy copies ``x + N(0, (noise * (max x - min x))^2)``.
* Feature inversion, deep dream and the class model change the pixels themselves, step by step
  along a gradient (each a small optimisation loop with its own loss): ``interpret_synthesis.py``
  holds them; they are importable from here too, and their figures are drawn here.
* Style transfer (Gatys et al. 2016), with the same pixel-descent loop: ``style_transfer.py``.

Each ``name(...)`` returns arrays; each ``plot_name(...)`` takes the same arguments, computes
them, and returns ``(arrays..., figure)``: a matplotlib Figure made headless like viz.py's.
The model is used in inference mode; its parameters and optimizer state never change.
"""

from __future__ import annotations

import numpy as np

from .augment import resize_boxes
from .inspect import as_batch, backprop, input_gradient, layer_index
from .interpret_synthesis import class_model, deep_dream, feature_inversion  # their figures are below
from .layers.base import iter_layers
from .layers.spatial import positive_int
from .option_checks import check_real
from .pixel_descent import PixelAdam, descend_pixels, total_variation  # noqa: F401 (were public here)

# ---------------------------------------------------------------------- helpers


def _classes(model, batch, class_index, who: str):
    """class_index (an int, or one per image) as an (N,) int array; None means the predicted
    classes. ``who`` (grad_cam, saliency) names the caller in the error."""
    if class_index is None:
        return np.asarray(model.predict(batch)).argmax(axis=-1)
    classes = np.asarray(class_index)
    whole = classes.dtype.kind in "iu" or (classes.dtype.kind == "f" and np.all(np.mod(classes, 1) == 0))
    if not whole or classes.ndim > 1 or (classes.ndim == 1 and len(classes) != len(batch)):
        raise ValueError(f"{who}: class_index must be an int or one int per image ({len(batch)},), "
                         f"got {class_index!r}")
    return np.broadcast_to(classes.astype(np.int64), (len(batch),))


def upsample_bilinear(maps: np.ndarray, size) -> np.ndarray:
    """(N, h, w) -> (N, H, W) by bilinear interpolation between cell centres, in float64.

    Output pixel y samples the input at ``(y + 0.5) * h / H - 0.5`` (half-pixel centres, clamped
    to the border): PyTorch's ``align_corners=False``, scipy's ``zoom(order=1, grid_mode=True,
    mode="nearest")`` (zoom's default border mode, "constant", differs at the edges). It is
    ``augment.resize_boxes`` with every map's box the whole map.
    """
    maps = np.asarray(maps, dtype=float)
    n, height, width = maps.shape
    corner, heights, widths = np.zeros(n, dtype=np.intp), np.full(n, height), np.full(n, width)
    return resize_boxes(maps[..., np.newaxis], corner, corner, heights, widths, size)[..., 0]


def _scale01(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum (an all-zero map stays 0)."""
    peak = maps.max(axis=tuple(range(1, maps.ndim)), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


# ---------------------------------------------------------------------- Grad-CAM
def feature_map_layers(model) -> list[int]:
    """Indices of the layers with weights and an (h, w, C) output (convolutions, normalisations),
    each moved past the shape-keeping layers without weights that follow it (its activation), as in
    Keras models whose convolution includes its ReLU. Pooling is not passed: it coarsens the map."""
    shape, shapes = model.input_shape, []
    for layer in model.layers:
        shape = layer.output_shape(shape)
        shapes.append(shape)
    chosen = []
    for index, layer in enumerate(model.layers):
        if len(shapes[index]) != 3 or not any(lyr.params for lyr in iter_layers([layer])):
            continue
        while index + 1 < len(model.layers) and shapes[index + 1] == shapes[index] \
                and not model.layers[index + 1].params:
            index += 1
        if index not in chosen:
            chosen.append(index)
    return chosen


def default_cam_layer(model) -> int:
    """The last of ``feature_map_layers``: the last convolution (or a normalisation after it), past
    its activation."""
    chosen = feature_map_layers(model)
    if not chosen:
        raise ValueError(f"{model.name}: no layer with weights and an (H, W, C) output for Grad-CAM; "
                         "pass layer=")
    return chosen[-1]


def cam_weighting(model, index: int, weighting: str = "auto") -> str:
    """The weighting ``grad_cam`` runs at ``model.layers[index]``: "auto" is "mean" (the seed
    formula) when the next top-level layer is a GlobalAvgPool2D (the gradient is then the same in
    every cell and the formula is exact), else "elementwise"; "mean" / "elementwise" stay as given."""
    if weighting not in ("auto", "mean", "elementwise"):
        raise ValueError(f"grad_cam: weighting must be 'auto', 'mean' or 'elementwise', got {weighting!r}")
    if weighting != "auto":
        return weighting
    from .layers import GlobalAvgPool2D

    feeds_gap = index + 1 < len(model.layers) and isinstance(model.layers[index + 1], GlobalAvgPool2D)
    return "mean" if feeds_gap else "elementwise"


def grad_cam(model, images, class_index=None, layer=None, weighting: str = "auto") -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] for images (N, H, W, C) (or one image (H, W, C)).

    class_index : int, (N,) ints, or None for each image's predicted class
    layer : index / name of a layer with an (h, w, K) output; default ``default_cam_layer``
    weighting : "mean" (Grad-CAM: alpha_k = spatial mean of the gradient), "elementwise"
        (HiResCAM: the gradient cell by cell) or "auto" (``cam_weighting``: "mean" where the layer
        feeds a global average pooling, where both are the same map, else "elementwise", because
        the mean-weighted map is empty for about half the digits behind a Flatten head); see the
        module docstring for the measurements
    An all-zero map means no cell had positive evidence for the class.
    """
    batch = as_batch(model, images)
    index = default_cam_layer(model) if layer is None else layer_index(model, layer)
    weighting = cam_weighting(model, index, weighting)
    classes = _classes(model, batch, class_index, "grad_cam")
    feature, grad, _ = backprop(model, batch, classes, layer=index)  # A, dy^c/dA: (N, h, w, K)
    if feature.ndim != 4:
        raise ValueError(f"{model.layers[index].name}: Grad-CAM needs a layer with an (h, w, K) "
                         f"output, this one gives {feature.shape[1:]}")
    if weighting == "mean":
        alpha = grad.mean(axis=(1, 2), keepdims=True)        # alpha_k = mean_ij dy^c / dA_ijk (N,1,1,K)
    else:
        alpha = grad                                         # dy^c / dA_ijk itself (N, h, w, K)
    cam = np.maximum((alpha * feature).sum(axis=-1), 0)      # ReLU(sum_k alpha_k A^k)  (N, h, w)
    return _scale01(upsample_bilinear(cam, batch.shape[1:3]))


# ---------------------------------------------------------------------- saliency
def saliency(model, images, class_index=None, method: str = "vanilla", samples: int = 25,
             noise: float = 0.15, rng=0) -> np.ndarray:
    """Saliency maps (N, H, W) >= 0: max over channels of |d y^c / d x| (not rescaled).

    method : "vanilla" (one gradient) or "smoothgrad" (mean gradient over ``samples`` noisy
        copies, noise standard deviation ``noise * (max - min)`` of each image)
    rng : a numpy Generator or an int seed for SmoothGrad's noise (never NumPy's global state)
    """
    if method not in ("vanilla", "smoothgrad"):
        raise ValueError(f"saliency: method must be 'vanilla' or 'smoothgrad', got {method!r}")
    batch = np.asarray(as_batch(model, images), dtype=float)
    classes = _classes(model, batch, class_index, "saliency")
    if method == "vanilla":
        grad = input_gradient(model, batch, classes)
    else:
        positive_int(samples, "samples", "saliency")
        check_real(noise, "noise", "saliency", least=0)
        rng = np.random.default_rng(rng)
        sigma = noise * (batch.max(axis=(1, 2, 3)) - batch.min(axis=(1, 2, 3)))  # (N,)
        grad = 0.0
        for _ in range(samples):
            noisy = batch + sigma[:, None, None, None] * rng.standard_normal(batch.shape)
            grad = grad + input_gradient(model, noisy, classes) / samples
    return np.abs(grad).max(axis=-1)


# ---------------------------------------------------------------------- figures
def _show(axes, picture, title=None):
    """One image (H, W, C) in grey (C = 1) or colour, rescaled to its own [min, max]."""
    picture = np.asarray(picture, dtype=float)
    low, high = picture.min(), picture.max()
    picture = (picture - low) / (high - low) if high > low else np.zeros_like(picture)
    axes.imshow(picture[:, :, 0] if picture.shape[2] == 1 else picture, cmap="gray", vmin=0, vmax=1)
    axes.set_axis_off()
    if title:
        axes.set_title(title, fontsize=8)


def _label(index, labels, predicted):
    from .viz import _label_text, _labels_per_image  # labels (N,), (N, 1) or one-hot rows
    parts = [] if labels is None else [f"true {_label_text(_labels_per_image(labels)[index], None)}"]
    return " / ".join(parts + [f"pred {int(predicted[index])}"])


def plot_grad_cam(model, images, class_index=None, layer=None, labels=None, weighting: str = "auto",
                  max_images: int = 8, save_path=None):
    """Row 1: the images (true / predicted label); row 2: the Grad-CAM map over each, with a colour bar.
    The title names the layer and the weighting that ran ("auto" resolved by ``cam_weighting``).

    Returns ``(maps (N, H, W), figure)``; only the first ``max_images`` are drawn.
    """
    from .viz import _figure, _finish

    batch = as_batch(model, images)
    predicted = np.asarray(model.predict(batch)).argmax(axis=-1)
    # one predict: the predicted classes are the default class_index too
    classes = predicted if class_index is None else _classes(model, batch, class_index, "plot_grad_cam")
    maps = grad_cam(model, batch, classes, layer, weighting)
    count = min(len(batch), max_images)
    figure = _figure(1.6 * count + 1.0, 3.6)
    panels = figure.subplots(2, count, squeeze=False)
    for i in range(count):
        _show(panels[0, i], batch[i], _label(i, labels, predicted))
        _show(panels[1, i], batch[i], f"class {int(classes[i])}")
        overlay = panels[1, i].imshow(maps[i], cmap="jet", alpha=0.5, vmin=0, vmax=1)
    figure.colorbar(overlay, ax=list(panels[1]), fraction=0.05, label="Grad-CAM (0-1)")
    index = default_cam_layer(model) if layer is None else layer_index(model, layer)
    ran = cam_weighting(model, index, weighting)
    figure.suptitle(f"Grad-CAM at {model.layers[index].name}"
                    + (" (element-wise)" if ran == "elementwise" else " (mean gradient)"))
    return maps, _finish(figure, save_path)


def plot_saliency(model, images, class_index=None, methods=("vanilla", "smoothgrad"), labels=None,
                  max_images: int = 8, samples: int = 25, noise: float = 0.15, rng=0, save_path=None):
    """Row 1 the images, then one row per method (each map scaled to its own maximum), colour bar.

    Returns ``({method: maps (N, H, W)}, figure)``.
    """
    from .viz import _figure, _finish

    batch = as_batch(model, images)
    predicted = np.asarray(model.predict(batch)).argmax(axis=-1)
    classes = predicted if class_index is None else class_index  # one predict for every method
    results = {method: saliency(model, batch, classes, method, samples, noise, rng) for method in methods}
    count = min(len(batch), max_images)
    figure = _figure(1.6 * count + 1.0, 1.8 * (1 + len(methods)))
    panels = figure.subplots(1 + len(methods), count, squeeze=False)
    scaled = {method: _scale01(maps) for method, maps in results.items()}  # each map to its own max
    for i in range(count):
        _show(panels[0, i], batch[i], _label(i, labels, predicted))
        for row, (method, maps) in enumerate(scaled.items(), start=1):
            shown = panels[row, i].imshow(maps[i], cmap="hot", vmin=0, vmax=1)
            panels[row, i].set_axis_off()
            panels[row, i].set_title(method, fontsize=8)
    figure.colorbar(shown, ax=list(panels[1:].ravel()), fraction=0.05, label="|gradient| / max")
    figure.suptitle("saliency: |d class score / d pixel|")
    return results, _finish(figure, save_path)


def pictures_and_curve(title, pictures, values, value_label, save_path):
    """One panel per ``(image (H, W, C), panel title)`` in ``pictures``, then the curve of the
    optimised quantity per step (``values``). Returns the figure."""
    from .viz import _figure, _finish

    figure = _figure(3 * (len(pictures) + 1), 3.2)
    panels = figure.subplots(1, len(pictures) + 1)
    for axes, (picture, picture_title) in zip(panels, pictures):
        _show(axes, picture, picture_title)
    panels[-1].plot(np.arange(1, len(values) + 1), values)
    panels[-1].set_xlabel("step")
    panels[-1].set_ylabel(value_label)
    panels[-1].grid(alpha=0.3)
    figure.suptitle(title)
    return _finish(figure, save_path)


def plot_feature_inversion(model, image, layer, steps: int = 200, save_path=None, **options):
    """Original, reconstruction and loss curve. Returns ``(reconstruction, losses, figure)``."""
    reconstruction, losses = feature_inversion(model, image, layer, steps, **options)
    original = as_batch(model, image)[0]
    correlation = np.corrcoef(original.ravel(), reconstruction.ravel())[0, 1]
    name = model.layers[layer_index(model, layer)].name
    pictures = [(original, "original"), (reconstruction, f"reconstruction (r = {correlation:.2f})")]
    figure = pictures_and_curve(f"feature inversion from {name}", pictures, losses, "loss", save_path)
    return reconstruction, losses, figure


def plot_deep_dream(model, image, layer, steps: int = 20, save_path=None, **options):
    """Original, dreamed image and the objective per step. Returns ``(dreamed, objectives, figure)``."""
    dreamed, objectives = deep_dream(model, image, layer, steps, **options)
    name = model.layers[layer_index(model, layer)].name
    pictures = [(as_batch(model, image)[0], "original"), (dreamed, "dreamed")]
    figure = pictures_and_curve(f"deep dream on {name}", pictures, objectives, "mean(A^2) / 2", save_path)
    return dreamed, objectives, figure


def plot_class_model(model, class_index: int, steps: int = 200, save_path=None, **options):
    """Start image, the class model and the class score per step. Returns ``(image, scores, figure)``."""
    image, scores = class_model(model, class_index, steps, **options)
    low, high = options.get("bounds", (0.0, 1.0))
    start = np.full(model.input_shape, (low + high) / 2)
    pictures = [(start, "start (grey)"), (image, f"class {class_index}")]
    figure = pictures_and_curve(f"class model for class {class_index}", pictures, scores,
                                f"score of class {class_index}", save_path)
    return image, scores, figure
