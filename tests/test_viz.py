"""Plots (headless, valid PNGs, right content) and the metrics they show."""

import os
import subprocess
import sys

import numpy as np
import pytest

from scratchnet import metrics, viz
from scratchnet.model import History
from scratchnet.models import tiny_cnn

pytest.importorskip("matplotlib")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def colorbars(figure):
    """The colour-bar axes of a figure (matplotlib labels them "<colorbar>")."""
    return [axes for axes in figure.axes if axes.get_label() == "<colorbar>"]


def image_axes(figure):
    return [axes for axes in figure.axes if axes.images and axes.get_label() != "<colorbar>"]


def assert_png(path):
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    picture = matplotlib.image.imread(path)
    assert picture.ndim == 3 and picture.shape[0] > 50 and picture.shape[1] > 50
    assert picture[..., :3].std() > 0.01  # not a blank canvas
    return picture


# ---------------------------------------------------------------------- metrics
def test_confusion_matrix_hand_worked():
    cm = metrics.confusion_matrix([0, 1, 1, 2, 2, 2], [0, 2, 1, 2, 0, 2], n_classes=4)
    np.testing.assert_array_equal(cm, [[1, 0, 0, 0], [0, 1, 1, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(metrics.per_class_accuracy(cm)[:3], [1.0, 0.5, 2 / 3])
    assert np.isnan(metrics.per_class_accuracy(cm)[3])  # no sample of class 3
    assert metrics.confusion_matrix([2, 0], [0, 0]).shape == (3, 3)  # n_classes inferred


def test_confusion_matrix_against_a_loop(rng):
    y_true, y_pred = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    expected = np.zeros((7, 7), dtype=int)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred, 7), expected)
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(np.trace(expected) / 500)


def test_metrics_reject_bad_labels():
    with pytest.raises(ValueError, match="label 5 is out of range for n_classes=3"):
        metrics.confusion_matrix([0, 5], [0, 1], n_classes=3)
    with pytest.raises(ValueError, match="y_true must be a 1-D array of non-negative integer"):
        metrics.accuracy([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="3 labels but y_pred has 2"):
        metrics.accuracy([0, 1, 2], [0, 1])


def test_predictions_and_top_k():
    logits = np.array([[0.1, 2.0, 0.3], [5.0, 1.0, 4.0], [0.0, 0.2, 0.1]])
    np.testing.assert_array_equal(metrics.predictions(logits), [1, 0, 1])
    assert metrics.top_k_accuracy([2, 2, 0], logits, k=1) == 0.0
    assert metrics.top_k_accuracy([2, 2, 0], logits, k=2) == pytest.approx(2 / 3)  # row 1: 5, 4
    assert metrics.top_k_accuracy([2, 2, 0], logits, k=3) == 1.0


# ---------------------------------------------------------------------- plots
def test_plot_history_from_history_and_dict(tmp_path):
    history = History()
    for epoch, (loss, acc) in enumerate([(1.2, 0.6), (0.7, 0.8), (0.5, 0.85)], start=1):
        history.append(epoch, {"loss": loss, "accuracy": acc,
                               "val_loss": loss + 0.1, "val_accuracy": acc - 0.05})
    figure = viz.plot_history(history, save_path=tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")
    loss_axes, accuracy_axes = figure.axes
    assert [line.get_label() for line in loss_axes.lines] == ["training", "validation"]
    np.testing.assert_allclose(accuracy_axes.lines[1].get_ydata(), [0.55, 0.75, 0.80])
    np.testing.assert_array_equal(loss_axes.lines[0].get_xdata(), [1, 2, 3])
    only_loss = viz.plot_history({"loss": [3.0, 2.0]})
    assert len(only_loss.axes) == 1 and len(only_loss.axes[0].lines) == 1


def test_plot_history_one_epoch_is_readable(tmp_path):
    history = History()
    history.append(1, {"loss": 0.9, "accuracy": 0.7, "val_loss": 1.0, "val_accuracy": 0.65}, seconds=2.0)
    figure = viz.plot_history(history, save_path=tmp_path / "one.png")
    assert_png(tmp_path / "one.png")
    for axes in figure.axes:
        training, validation = axes.lines
        assert training.get_marker() == "o" and validation.get_marker() == "s"  # a point, not nothing
        assert list(training.get_xdata()) == [1]
        assert axes.get_xlim() == (0, 2)
        ticks = [tick for tick in axes.get_xticks() if 0 <= tick <= 2]
        assert ticks and all(float(tick).is_integer() for tick in ticks)  # no "epoch 1.25"
    many = viz.plot_history({"loss": list(np.linspace(2, 1, 7))})
    assert all(float(tick).is_integer() for tick in many.axes[0].get_xticks())


def test_plot_history_without_any_epoch_says_so(tmp_path):
    for empty in (History(), {"loss": []}, {}):
        figure = viz.plot_history(empty, save_path=tmp_path / "empty.png", title="lenet5 on digits")
        (axes,) = figure.axes
        assert not axes.axison and not axes.lines
        assert "no epoch finished yet" in axes.texts[0].get_text()
        assert figure._suptitle.get_text() == "lenet5 on digits"
    assert_png(tmp_path / "empty.png")  # the words are drawn: not a blank canvas


def test_plot_filters_shows_each_kernel(tmp_path):
    model = tiny_cnn(input_shape=(12, 12, 1), n_classes=3)
    figure = viz.plot_filters(model, save_path=tmp_path / "filters.png")
    picture = assert_png(tmp_path / "filters.png")
    assert picture.shape[:2] == (180, 1090)  # one row of 8 (1.2 x 1 + 0.6 by 1.2 x 8 + 1.3 inches)
    shown = [axes.images[0] for axes in image_axes(figure)]
    assert len(shown) == 8
    weights = model.layers[0].params["W"]
    np.testing.assert_array_equal(shown[5].get_array(), weights[:, :, 0, 5])  # the raw weights
    limit = np.abs(weights).max()
    assert all(image.get_clim() == pytest.approx((-limit, limit)) for image in shown)  # one scale
    (bar,) = colorbars(figure)
    assert bar.get_ylabel() == "weight" and bar.get_ylim() == pytest.approx((-limit, limit))
    with pytest.raises(ValueError, match="has no 4-D kernel"):
        viz.plot_filters(model, layer="dense")


def test_plot_filters_rgb_input(tmp_path):
    model = tiny_cnn(input_shape=(10, 10, 3), n_classes=2)
    figure = viz.plot_filters(model, layer=0)
    shown = image_axes(figure)[2].images[0].get_array()
    weights, limit = model.layers[0].params["W"], np.abs(model.layers[0].params["W"]).max()
    np.testing.assert_allclose(shown, (weights[..., 2] + limit) / (2 * limit), rtol=1e-6)
    assert shown.shape == (3, 3, 3) and colorbars(figure)[0].get_ylabel() == "weight (each RGB channel)"


def test_feature_maps_equal_the_layer_output(tmp_path, rng):
    model = tiny_cnn(input_shape=(12, 12, 1), n_classes=3, dtype="float64")
    image = rng.random((12, 12, 1))
    maps = viz.feature_maps(model, image, "activation")
    expected = model.layers[1].forward(model.layers[0].forward(image[None]))[0]
    np.testing.assert_allclose(maps, expected)
    figure = viz.plot_feature_maps(model, image, layer=2, save_path=tmp_path / "maps.png")  # pooled
    assert_png(tmp_path / "maps.png")
    panels = image_axes(figure)
    assert len(panels) == 1 + 8  # the input and 8 maps
    pooled = viz.feature_maps(model, image, 2)
    np.testing.assert_allclose(panels[3].images[0].get_array(), pooled[:, :, 2])
    assert all(axes.images[0].get_clim() == (pooled.min(), pooled.max()) for axes in panels[1:])
    (bar,) = colorbars(figure)
    assert bar.get_ylabel() == "activation"
    predicted = int(model.predict(image[None]).argmax())
    assert panels[0].get_title() == f"input\npred {predicted}"
    labelled = viz.plot_feature_maps(model, image, layer=1, label=(predicted + 1) % 3,
                                     class_names=["a", "b", "c"])
    title = image_axes(labelled)[0].title
    names = ["a", "b", "c"]
    assert title.get_text() == f"input\ntrue {names[(predicted + 1) % 3]} / pred {names[predicted]}"
    assert title.get_color() == "red"  # a wrong prediction
    with pytest.raises(ValueError, match="not a stack of 2-D maps"):
        viz.plot_feature_maps(model, image, layer=-1)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        viz.feature_maps(model, image, "nope")


def test_plot_confusion_matrix_writes_counts(tmp_path):
    cm = np.array([[5, 1], [2, 7]])
    figure = viz.plot_confusion_matrix(cm, ["cat", "dog"], save_path=tmp_path / "cm.png")
    assert_png(tmp_path / "cm.png")
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert texts == ["5", "1", "2", "7"]
    (bar,) = colorbars(figure)
    assert bar.get_ylabel() == "count" and bar.get_ylim() == (1, 7)
    assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == ["cat", "dog"]
    assert figure.axes[0].get_xlabel() == "predicted class" and figure.axes[0].get_ylabel() == "true class"
    assert "80.00%" in figure.axes[0].get_title()  # (5 + 7) / 15
    normalized = viz.plot_confusion_matrix(cm, normalize=True)
    assert [text.get_text() for text in normalized.axes[0].texts] == ["0.83", "0.17", "0.22", "0.78"]
    assert colorbars(normalized)[0].get_ylabel() == "share of the true class"
    with pytest.raises(ValueError, match="must be square"):
        viz.plot_confusion_matrix(np.ones((2, 3)))
    with pytest.raises(ValueError, match="3 class names for a 2-class"):
        viz.plot_confusion_matrix(cm, ["a", "b", "c"])


def test_plot_images_marks_mistakes_in_red(tmp_path, rng):
    figure = viz.plot_images(rng.random((4, 8, 8, 1)), labels=[0, 1, 2, 3], predicted=[0, 1, 0, 3],
                             save_path=tmp_path / "images.png")
    assert_png(tmp_path / "images.png")
    titles = [axes.title for axes in figure.axes if axes.images]
    assert [title.get_text() for title in titles] == ["true 0 / pred 0", "true 1 / pred 1",
                                                      "true 2 / pred 0", "true 3 / pred 3"]
    assert titles[2].get_color() == "red" and titles[0].get_color() == "black"
    named = viz.plot_images(rng.random((2, 8, 8, 1)), labels=[1, 0], class_names=["cat", "dog"])
    assert [axes.get_title() for axes in named.axes if axes.images] == ["dog", "cat"]


def test_plots_never_touch_pyplot_and_import_is_light():
    # A fresh interpreter: `import scratchnet` must not load matplotlib; plotting must not
    # load pyplot (no global figures, no GUI backend), so it is safe headless and in notebooks.
    code = ("import sys, scratchnet\n"
            "assert 'matplotlib' not in sys.modules\n"
            "from scratchnet import viz\n"
            "viz.plot_history({'loss': [1.0, 0.5]}).savefig('/dev/null', format='png')\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "MPLBACKEND": "TkAgg"})
