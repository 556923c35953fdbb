"""Plots for looking at what a network learned (matplotlib).

Every function builds a ``matplotlib.figure.Figure`` with its own Agg canvas, not through
``pyplot``: no global figure list, no GUI backend, so it works on a headless server and does
not disturb a notebook's backend. It returns the figure (a notebook displays it) and, given
``save_path``, writes it there (PNG by extension) too.

    >>> fig = plot_history(history, save_path="curves.png")
"""

from __future__ import annotations

import math

import numpy as np

from .inspect import activations, as_batch, layer_index
from .option_checks import check_count


def _figure(width: float, height: float):
    # Imported here so `import scratchnet` stays fast and never touches matplotlib.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Rounded: 1.2 + 0.6 is 1.7999999999999998 inches, which older matplotlib (< 3.9) truncates
    # to one pixel fewer at the saved dpi.
    figure = Figure(figsize=(round(width, 2), round(height, 2)), layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself as figure.canvas: savefig needs no pyplot
    return figure


def _finish(figure, save_path):
    if save_path is not None:
        figure.savefig(save_path, dpi=100)
    return figure


def _grid(count: int, max_columns: int = 8) -> tuple[int, int]:
    columns = min(count, max_columns)
    return math.ceil(count / columns), columns


# ---------------------------------------------------------------------- training curves
def plot_history(history, save_path=None, title: str | None = None):
    """Loss (left) and accuracy (right) per epoch, training and validation.

    history : a ``History`` from ``fit`` or a dict such as ``{"loss": [...], "val_loss": [...]}``

    Every epoch is a marker (a one-epoch run shows its point) and the epoch axis has whole-number
    ticks. With no finished epoch (Ctrl-C during the first) the figure says so in words instead of
    showing empty axes.
    """
    from matplotlib.ticker import MaxNLocator

    metrics = history.to_dict() if hasattr(history, "to_dict") else dict(history)
    n_epochs = max((len(v) for k, v in metrics.items() if k not in ("epoch", "seconds")), default=0)
    epochs = metrics.get("epoch") or list(range(1, n_epochs + 1))
    if n_epochs == 0:
        figure = _figure(5.5, 4)
        axes = figure.subplots()
        axes.set_axis_off()
        axes.text(0.5, 0.5, "no epoch finished yet:\nno training curves to show", ha="center",
                  va="center", fontsize=12, transform=axes.transAxes)
        if title:
            figure.suptitle(title)
        return _finish(figure, save_path)
    has_accuracy = any(key in metrics for key in ("accuracy", "val_accuracy"))
    figure = _figure(10 if has_accuracy else 5.5, 4)
    panels = figure.subplots(1, 2 if has_accuracy else 1, squeeze=False)[0]
    for axes, name in zip(panels, ("loss", "accuracy")):
        for key, label, style in ((name, "training", "o-"), (f"val_{name}", "validation", "s--")):
            if metrics.get(key):
                axes.plot(epochs[:len(metrics[key])], metrics[key], style, label=label)
        axes.set_xlabel("epoch")
        axes.set_ylabel(name)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 1.25"
        if len(epochs) == 1:  # one point: centre it between whole-number neighbours
            axes.set_xlim(epochs[0] - 1, epochs[0] + 1)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend()
    if title:
        figure.suptitle(title)
    return _finish(figure, save_path)


# ---------------------------------------------------------------------- filters
def _find_layer(model, layer):
    """A layer of ``model`` by index, name or object; its index and the layer (inspect.layer_index:
    the same errors for an index out of range, an unknown name, a layer inside a container)."""
    index = layer_index(model, layer)
    return index, model.layers[index]


def plot_filters(model, layer=None, channel: int | None = None, save_path=None):
    """The kernels of a convolution layer, one small image per filter.

    layer : index or name; default the first layer that has a 4-D weight ``W`` (kh, kw, C, F)
    channel : for C not in (1, 3), which input channel to show (default 0). One channel is
        shown in grey; three channels (an RGB input) as colour.

    All filters share one scale, symmetric around 0: ``-m`` black, 0 mid-grey, ``+m`` white with
    ``m = max |W|`` (for RGB, each channel's value the same way), read off the colour bar.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if layer is None:
        layer = next((i for i, lyr in enumerate(model.layers) if np.ndim(lyr.params.get("W")) == 4), None)
        if layer is None:
            raise ValueError(f"{model.name}: no convolution layer (4-D weight W) to show")
    _, conv = _find_layer(model, layer)
    weights = np.asarray(conv.params.get("W"))
    if weights.ndim != 4:
        raise ValueError(f"{conv.name}: has no 4-D kernel W (kh, kw, C, filters) to show")
    kh, kw, channels, filters = weights.shape
    if channel is not None and not 0 <= channel < channels:
        raise ValueError(f"plot_filters: layer {conv.name!r} has {channels} input channel(s) (0 to "
                         f"{channels - 1}), got channel={channel!r}")
    if channels != 3 or channel is not None:
        weights = weights[:, :, (channel or 0):(channel or 0) + 1, :]
    rows, columns = _grid(filters)
    limit = float(np.abs(weights).max()) or 1.0           # m = max |W|
    figure = _figure(1.2 * columns + 1.3, 1.2 * rows + 0.6)
    panels = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(panels.ravel()):
        axes.set_axis_off()
        if index >= filters:
            continue
        kernel = weights[..., index]
        if kernel.shape[2] == 3:  # w -> (w + m) / 2m in [0, 1] per channel
            axes.imshow((kernel + limit) / (2 * limit), interpolation="nearest")
        else:
            axes.imshow(kernel[:, :, 0], cmap="gray", vmin=-limit, vmax=limit, interpolation="nearest")
        axes.set_title(str(index), fontsize=8)
    figure.colorbar(ScalarMappable(Normalize(-limit, limit), cmap="gray"), ax=panels, shrink=0.8,
                    label="weight" + (" (each RGB channel)" if weights.shape[2] == 3 else ""))
    figure.suptitle(f"{conv.name}: {filters} filters {kh}x{kw}")
    return _finish(figure, save_path)


# ---------------------------------------------------------------------- feature maps
def feature_maps(model, image, layer) -> np.ndarray:
    """The output of ``layer`` (index, name or object) for one image (H, W, C): (h, w, F), a copy."""
    index, chosen = _find_layer(model, layer)
    batch = as_batch(model, image)
    if len(batch) != 1:
        raise ValueError(f"{model.name}: feature maps need one image, got a batch of {len(batch)}")
    return activations(model, batch, [index])[chosen.name][0]


def plot_feature_maps(model, image, layer=0, max_maps: int = 32, save_path=None, label=None,
                      class_names=None):
    """What one image looks like at ``layer``: the input, then one panel per channel.

    The input's title gives its true class (``label``, if known) and the model's prediction; all
    maps share one colour scale, shown by the colour bar.
    """
    index, chosen = _find_layer(model, layer)
    maps = feature_maps(model, image, index)
    if maps.ndim != 3:
        raise ValueError(f"{chosen.name}: output of shape {maps.shape} is not a stack of 2-D maps; "
                         "choose a convolution, activation or pooling layer")
    count = min(maps.shape[2], max_maps)
    rows, columns = _grid(count + 1)
    figure = _figure(1.3 * columns + 0.5, 1.3 * rows + 0.6)
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    picture = np.asarray(image).reshape(model.input_shape)
    panels[0].imshow(_displayable(picture), cmap="gray")
    output = np.asarray(model.predict(picture[np.newaxis]))
    predicted = int(output[0].argmax()) if output.ndim == 2 else None  # class scores only
    parts = [f"{word} {_label_text(value, class_names)}"  # a label may be a one-hot or soft row
             for word, value in (("true", label), ("pred", predicted)) if value is not None]
    wrong = label is not None and predicted is not None and _label_class(label) != predicted
    panels[0].set_title("\n".join(["input", " / ".join(parts)]) if parts else "input", fontsize=8,
                        color="red" if wrong else "black")
    low, high = (float(maps[:, :, :count].min()), float(maps[:, :, :count].max())) if count else (0, 1)
    for number, axes in enumerate(panels[1:]):
        if number < count:
            shown = axes.imshow(maps[:, :, number], cmap="viridis", vmin=low, vmax=high)
            axes.set_title(str(number), fontsize=8)
    for axes in panels:
        axes.set_axis_off()
    if count:
        figure.colorbar(shown, ax=panels[1:].tolist(), shrink=0.8, label="activation")
    figure.suptitle(f"{chosen.name}: {count} of {maps.shape[2]} maps, {maps.shape[0]}x{maps.shape[1]}")
    return _finish(figure, save_path)


# ---------------------------------------------------------------------- confusion matrix
def plot_confusion_matrix(cm, class_names=None, normalize: bool = False, save_path=None,
                          title: str | None = None):
    """Rows: true class, columns: predicted class; each cell shows its count (or row share)."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    n_classes = cm.shape[0]
    names = [str(name) for name in (class_names if class_names is not None else range(n_classes))]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class names for a {n_classes}-class confusion matrix")
    values = cm.astype(float)
    if normalize:
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.nan_to_num(values / values.sum(axis=1, keepdims=True))
    size = 2 + 0.5 * n_classes
    figure = _figure(size + 1, size)
    axes = figure.subplots()
    image = axes.imshow(values, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true class" if normalize else "count")
    axes.set_xticks(range(n_classes), names, rotation=45 if max(map(len, names)) > 2 else 0)
    axes.set_yticks(range(n_classes), names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if n_classes <= 20:
        threshold = values.max() / 2
        for (row, col), value in np.ndenumerate(values):
            axes.text(col, row, f"{value:.2f}" if normalize else f"{int(value)}", ha="center",
                      va="center", fontsize=8, color="white" if value > threshold else "black")
    accuracy = np.trace(cm) / cm.sum() if cm.sum() else 0.0
    axes.set_title(title or f"confusion matrix (accuracy {accuracy:.2%})")
    return _finish(figure, save_path)


# ---------------------------------------------------------------------- images
def plot_images(images, labels=None, predicted=None, class_names=None, n: int = 25, save_path=None):
    """A grid of the first ``n`` images (N, H, W, C), titled "true a / pred b" (red if they differ)."""
    images = np.asarray(images)[:n]
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C), got {images.shape}")
    labels, predicted = _labels_per_image(labels), _labels_per_image(predicted)
    for values, what in ((labels, "labels"), (predicted, "predicted")):
        if values is not None and len(values) < len(images):
            raise ValueError(f"plot_images: {what} has {len(values)} entries for {len(images)} images")
    rows, columns = _grid(len(images), max_columns=int(math.ceil(math.sqrt(len(images)))))
    figure = _figure(1.4 * columns + 0.3, 1.5 * rows + 0.3)
    for index, axes in enumerate(figure.subplots(rows, columns, squeeze=False).ravel()):
        axes.set_axis_off()
        if index >= len(images):
            continue
        picture = images[index]
        axes.imshow(_displayable(picture), cmap="gray")
        parts = []
        true_word = "true " if predicted is not None else ""  # labels alone: just the class
        for values, word in ((labels, true_word), (predicted, "pred ")):
            if values is not None:
                parts.append(word + _label_text(values[index], class_names))
        wrong = len(parts) == 2 and _label_class(labels[index]) != _label_class(predicted[index])
        axes.set_title(" / ".join(parts), fontsize=8, color="red" if wrong else "black")
    return _finish(figure, save_path)


# ---------------------------------------------------------------------- augmentation
def _displayable(picture):
    """An image (H, W, C) for imshow, in floats [0, 1]; grey (C = 1) comes back (H, W).

    Integer pixels 0-255 whose largest value is > 1 (uint8 photos) become x / 255; an integer 0/1
    mask stays 0/1 (x / 255 showed it near-black). Images within [0, 1] are kept as they are; others
    (standardised) are min-max scaled. The range is that of the finite values: one NaN or inf
    pixel no longer blanks the panel; NaN pixels stay NaN (imshow leaves them blank), +inf and
    -inf are shown as the brightest and darkest."""
    picture = np.asarray(picture)
    is_pixels = (picture.dtype.kind in "iu" and picture.size and 0 <= picture.min()
                 and 1 < picture.max() <= 255)
    picture = picture / 255 if is_pixels else picture.astype(np.float64)
    finite = picture[np.isfinite(picture)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if low < -1e-6 or high > 1 + 1e-6:
        picture = (picture - low) / (high - low if high > low else 1.0)
    picture = np.clip(picture, 0, 1)  # NaN stays NaN; +-inf -> 1 and 0
    return picture[:, :, 0] if picture.shape[2] == 1 else picture


def _labels_per_image(values):
    """Labels given to a plot, one entry per image: ints (N,) as they are, a column (N, 1) as (N,),
    one-hot or soft rows (N, classes) as rows (``_label_text`` names their largest entries)."""
    if values is None:
        return None
    values = np.asarray(values)
    return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values


def _label_class(label) -> int:
    """The class of one label: the label itself, or a row's largest entry."""
    label = np.asarray(label)
    return int(label) if label.ndim == 0 else int(label.argmax())


def _label_text(label, class_names) -> str:
    label = np.asarray(label)

    def name(k):
        return str(class_names[k]) if class_names is not None else str(k)

    if label.ndim == 0:
        return name(int(label))
    top = np.argsort(label)[::-1][:2]  # soft labels (mixup, cutmix): the two largest weights
    return " ".join(f"{name(int(k))} {label[k]:.2f}" for k in top if label[k] > 0.005)


def plot_augmented_grid(images, augment, labels=None, class_names=None, n_images: int = 6,
                        n_versions: int = 5, seed: int = 0, save_path=None):
    """Each of the first ``n_images`` images (one per row), then ``n_versions`` augmented copies.

    images : (N, H, W, C);  augment : a transform ``augment(x, y, rng) -> (x, y)`` (scratchnet.augment)
    Column 0 is the original, column k the batch after the k-th call of ``augment`` on the rows
    (random numbers from ``numpy.random.default_rng(seed)``, so the figure is reproducible).
    Titles give the (possibly mixed) labels when ``labels`` are given.
    """
    n_images = check_count(n_images, "n_images", "plot_augmented_grid", 1)
    n_versions = check_count(n_versions, "n_versions", "plot_augmented_grid", 1)
    images = np.asarray(images)[:n_images]
    if images.ndim != 4:
        raise ValueError(f"plot_augmented_grid: images must have shape (N, H, W, C), got {images.shape}")
    labels = None if labels is None else np.asarray(labels)[:n_images]
    rng = np.random.default_rng(seed)
    columns = [(images, labels)] + [augment(images, labels, rng) for _ in range(n_versions)]
    figure = _figure(1.3 * len(columns) + 0.3, 1.4 * len(images) + 0.3)
    grid = figure.subplots(len(images), len(columns), squeeze=False)
    for column, (batch, batch_labels) in enumerate(columns):
        for row in range(len(images)):
            axes = grid[row, column]
            axes.set_axis_off()
            axes.imshow(_displayable(np.asarray(batch[row])), cmap="gray")
            text = "original" if column == 0 else f"augmented {column}"
            if batch_labels is not None:
                text = _label_text(batch_labels[row], class_names) + ("" if column else "\n(original)")
            axes.set_title(text, fontsize=7)
    return _finish(figure, save_path)
