"""Unusual but legitimate arrays and labels at the public API: targets of shape (N, 1) (Dense(1) +
binary_cross_entropy), one-hot label rows, uint8 and standardised images, nested lists, a last
batch of one sample. Each test holds numbers worked by hand or an exact message."""

import re

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.layers import Dense


def binary_model(seed=0):
    """Dense(1) on 3 features, trained with binary_cross_entropy: one logit per sample."""
    model = sn.Sequential([Dense(1)], input_shape=(3,), seed=seed, dtype="float64")
    return model.compile(sn.SGD(lr=0.1), "binary_cross_entropy")


def same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


# ---------------------------------------------------------------- class_weight with (N, 1) targets
def test_class_weight_reads_targets_of_shape_n_by_1_as_labels():
    x = np.random.default_rng(0).normal(size=(8, 3))
    t = np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=np.float64)
    hand_worked = np.array([1, 10, 10, 1, 10, 1, 1, 10], dtype=np.float64)  # class 0 -> 1, class 1 -> 10
    by_class, by_sample = binary_model(), binary_model()
    options = dict(epochs=2, batch_size=4, shuffle=False, verbose=0)
    by_class.fit(x, t[:, None], class_weight={0: 1.0, 1: 10.0}, **options)
    by_sample.fit(x, t[:, None], sample_weight=hand_worked, **options)
    assert same_weights(by_class, by_sample)
    unweighted = binary_model()
    unweighted.fit(x, t[:, None], **options)
    assert not same_weights(by_class, unweighted)


def test_class_weight_refuses_multi_label_and_fractional_targets():
    x = np.random.default_rng(0).normal(size=(6, 3))
    multi_label = sn.Sequential([Dense(2)], input_shape=(3,), seed=0).compile("sgd", "binary_cross_entropy")
    with pytest.raises(ValueError, match=r"^sequential: fit's class_weight needs one class per sample, "
                                         r"labels \(N,\) or \(N, 1\), but the targets have shape \(6, 2\) "
                                         r"for loss 'binary_cross_entropy'; give the weight of each sample "
                                         r"as sample_weight \(N,\) instead$"):
        multi_label.fit(x, np.eye(2)[[0, 1, 1, 0, 1, 0]], verbose=0, class_weight={1: 2.0})
    with pytest.raises(ValueError, match=r"^sequential: fit's class_weight needs whole-number class labels, "
                                         r"but the targets hold values such as 0\.25"):
        binary_model().fit(x, [[0.0], [0.25], [1.0], [1.0], [0.0], [0.5]], verbose=0, class_weight={1: 2.0})
    one_hot = sn.Sequential([Dense(2)], input_shape=(3,), seed=0).compile("sgd", "cross_entropy")
    one_hot.fit(x, np.eye(2)[[0, 1, 1, 0, 1, 0]], verbose=0, class_weight={1: 2.0})  # rows: argmax, as before


# ---------------------------------------------------------------- one output: predict_classes / proba
def test_one_output_predicts_class_1_where_the_logit_is_positive():
    model = binary_model().build()
    model.layers[0].params["W"][...] = [[1.0], [0.0], [0.0]]  # the logit is the first feature
    model.layers[0].params["b"][...] = 0.0
    x = np.array([[-2.0, 5, 5], [0.0, 1, 1], [0.5, -3, 3], [3.0, 0, 0]])
    np.testing.assert_array_equal(model.predict_classes(x), [0, 0, 1, 1])  # z > 0 (z = 0: class 0)
    sigmoid = [1 / (1 + np.exp(2.0)), 0.5, 1 / (1 + np.exp(-0.5)), 1 / (1 + np.exp(-3.0))]
    np.testing.assert_allclose(model.predict_proba(x), np.array(sigmoid)[:, None], rtol=1e-15)
    np.testing.assert_array_equal(sn.metrics.predictions([[-1e-3], [2e-3]]), [0, 1])
    np.testing.assert_allclose(sn.metrics.probabilities([[-800.0], [800.0]]), [[0.0], [1.0]])  # no overflow


def test_several_outputs_still_take_softmax_and_argmax():
    logits = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, np.log(2)]])
    np.testing.assert_allclose(sn.metrics.probabilities(logits)[1], [0.25, 0.25, 0.5], rtol=1e-15)
    e = np.exp([1.0, 2.0, 0.0])
    np.testing.assert_allclose(sn.metrics.probabilities(logits)[0], e / e.sum(), rtol=1e-15)
    np.testing.assert_array_equal(sn.metrics.predictions(logits), [1, 2])


def test_predict_proba_and_classes_follow_the_loss():
    """binary_cross_entropy with K outputs (multi-label): a sigmoid per output and z > 0 per column,
    hand-worked; cross_entropy on the same logits: softmax and argmax; mse (regression): refused."""
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 2.0]])
    weights = np.array([[2.0, -1.0, 0.0], [0.0, 1.0, -3.0]])  # logits z = x @ W: no bias
    logits = np.array([[2.0, -1.0, 0.0], [0.0, 1.0, -3.0], [-2.0, 3.0, -6.0]])
    models = {}
    for loss in ("binary_cross_entropy", "cross_entropy", "mse"):
        model = sn.Sequential([Dense(3)], input_shape=(2,), dtype="float64").compile("sgd", loss)
        model.build().layers[0].params["W"][...] = weights
        model.layers[0].params["b"][...] = 0.0
        models[loss] = model
    multi_label = models["binary_cross_entropy"]
    np.testing.assert_allclose(multi_label.predict_proba(x), 1 / (1 + np.exp(-logits)), rtol=1e-15)
    np.testing.assert_array_equal(multi_label.predict_classes(x), [[1, 0, 0], [0, 1, 0], [0, 1, 0]])
    from scipy.special import softmax
    np.testing.assert_allclose(models["cross_entropy"].predict_proba(x), softmax(logits, axis=1), rtol=1e-14)
    np.testing.assert_array_equal(models["cross_entropy"].predict_classes(x), [0, 1, 1])
    for method in ("predict_proba", "predict_classes"):
        with pytest.raises(ValueError, match=rf"^sequential(_\d+)?: {method} is for classifiers \(the loss "
                                             rf"is mse\); use predict\(x\)$"):
            getattr(models["mse"], method)(x)
    regression = sn.Sequential([Dense(1)], input_shape=(2,)).compile("sgd", "mse")  # one output too
    with pytest.raises(ValueError, match=r"predict_classes is for classifiers"):
        regression.predict_classes(x)


# ---------------------------------------------------------------- images and labels in figures
def shown_arrays(figure):
    """The arrays handed to imshow, one per image panel, in panel order."""
    return [np.asarray(axes.images[0].get_array()) for axes in figure.axes if axes.images]


def rgb_gradient():
    """Two 4x4 RGB images of pixels: red rises down, green across, blue constant; the first spans
    0-255, the second 40-167 (there x / 255 and a min-max stretch differ)."""
    rows, columns = np.meshgrid(np.arange(4) * 85, np.arange(4) * 85, indexing="ij")
    image = np.stack([rows, columns, np.full((4, 4), 60)], axis=-1)
    return np.stack([image, image // 2 + 40]).astype(np.uint8)


def test_plot_images_shows_uint8_rgb_as_x_over_255_and_standardised_rgb_min_max_scaled():
    pytest.importorskip("matplotlib")
    from scratchnet import viz

    pixels = rgb_gradient()
    for shown, image in zip(shown_arrays(viz.plot_images(pixels)), pixels):
        np.testing.assert_allclose(shown, image / 255.0, rtol=1e-15)  # was np.clip(image, 0, 1): 0 or 1
    standardised = (pixels / 255.0 - 0.5) / 0.2                        # values from -2.5 to 2.5
    for shown, image in zip(shown_arrays(viz.plot_images(standardised)), standardised):
        low, high = image.min(), image.max()
        np.testing.assert_allclose(shown, (image - low) / (high - low), rtol=1e-13)
    assert shown_arrays(viz.plot_images(pixels))[0][3, 0].tolist() == pytest.approx([1.0, 0.0, 60 / 255])


def test_one_nan_or_inf_pixel_leaves_the_rest_of_the_image_and_an_integer_mask_shows_0_and_1():
    """The range is the finite pixels' (min/max over all made the whole panel NaN); NaN stays NaN,
    +inf is the brightest; an integer 0/1 mask is not divided by 255 (it showed near-black)."""
    pytest.importorskip("matplotlib")
    from scratchnet import viz

    standardised = (rgb_gradient()[0] / 255.0 - 0.5) / 0.2  # -2.5 to 2.5 with every pixel finite
    low, high = standardised.min(), standardised.max()
    expected = (standardised - low) / (high - low)
    broken = standardised.copy()
    broken[1, 2, 0], broken[2, 1, 1] = np.nan, np.inf
    expected[1, 2, 0], expected[2, 1, 1] = np.nan, 1.0
    (shown,) = shown_arrays(viz.plot_images(broken[None]))
    np.testing.assert_allclose(shown, expected, rtol=1e-13)  # NaN where expected is NaN
    grey = np.array([[0.25, np.nan], [0.5, 1.0]])[None, :, :, None]  # within [0, 1]: kept as it is
    np.testing.assert_array_equal(shown_arrays(viz.plot_images(grey))[0], grey[0, :, :, 0])
    mask = (rgb_gradient()[:1] > 100).astype(np.int64)
    np.testing.assert_array_equal(shown_arrays(viz.plot_images(mask))[0], mask[0])
    np.testing.assert_array_equal(viz._displayable(np.full((2, 2, 1), 2, np.uint8)), np.full((2, 2), 2 / 255))


def test_plot_feature_maps_input_panel_shows_uint8_and_standardised_rgb_faithfully():
    pytest.importorskip("matplotlib")
    from scratchnet import viz
    from scratchnet.layers import Conv2D

    model = sn.Sequential([Conv2D(2, 3, padding="same")], input_shape=(4, 4, 3), seed=0)
    pixels = rgb_gradient()[1]
    with pytest.warns(UserWarning, match="integer input"):
        figure = viz.plot_feature_maps(model, pixels)
    np.testing.assert_allclose(shown_arrays(figure)[0], pixels / 255.0, rtol=1e-15)
    standardised = (pixels / 255.0 - 0.5) / 0.2
    shown = shown_arrays(viz.plot_feature_maps(model, standardised))[0]
    low, high = standardised.min(), standardised.max()
    np.testing.assert_allclose(shown, (standardised - low) / (high - low), rtol=1e-13)


@pytest.mark.parametrize("label, shown", [(2, "c"), (np.eye(3)[2], "c 1.00"), (np.int64(2), "c")])
def test_plot_feature_maps_titles_a_label_given_as_an_int_or_a_one_hot_row(label, shown):
    pytest.importorskip("matplotlib")
    from scratchnet import viz
    from scratchnet.layers import Conv2D, Dense, Flatten

    model = sn.Sequential([Conv2D(2, 3, padding="same"), Flatten(), Dense(3)], input_shape=(4, 4, 3), seed=0)
    image = rgb_gradient()[1] / 255.0
    predicted = int(model.predict(image[None])[0].argmax())
    figure = viz.plot_feature_maps(model, image, label=label, class_names=["a", "b", "c"])
    title = figure.axes[0].title
    assert title.get_text() == f"input\ntrue {shown} / pred {'abc'[predicted]}"
    assert title.get_color() == ("black" if predicted == 2 else "red")


@pytest.mark.parametrize("labels", [np.array([2, 0]), np.array([[2], [0]]), np.eye(3)[[2, 0]],
                                    [2.0, 0.0], [[2], [0]]])
def test_plot_images_titles_labels_given_as_ints_columns_or_one_hot_rows(labels):
    pytest.importorskip("matplotlib")
    from scratchnet import viz

    figure = viz.plot_images(rgb_gradient(), labels=labels, predicted=[2, 1], class_names=["a", "b", "c"])
    titles = [axes.title for axes in figure.axes if axes.images]
    weight = " 1.00" if np.ndim(labels) == 2 and np.shape(labels)[1] == 3 else ""  # one-hot: the weight too
    assert [title.get_text() for title in titles] == [f"true c{weight} / pred c", f"true a{weight} / pred b"]
    assert [title.get_color() for title in titles] == ["black", "red"]


@pytest.mark.parametrize("labels", [[[1], [0]], np.eye(3)[[1, 0]]])
def test_plot_grad_cam_titles_labels_given_as_a_column_or_one_hot_rows(labels):
    pytest.importorskip("matplotlib")
    from scratchnet.interpret import plot_grad_cam
    from scratchnet.models import tiny_cnn

    model = tiny_cnn(input_shape=(8, 8, 1), n_classes=3, dtype="float64")
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 1))
    figure = plot_grad_cam(model, x, labels=labels)[1]
    predicted = model.predict(x).argmax(axis=1)
    true = ["1", "0"] if np.shape(labels)[1] == 1 else ["1 1.00", "0 1.00"]
    assert [axes.get_title() for axes in figure.axes[:2]] == [f"true {t} / pred {p}"
                                                             for t, p in zip(true, predicted)]


# ---------------------------------------------------------------- make_patterns(dtype=...)
@pytest.mark.parametrize("dtype", ["uint8", "int64", bool, "not a dtype"])
def test_make_patterns_refuses_a_dtype_that_cannot_hold_values_in_0_1(dtype):
    from scratchnet.datasets import make_patterns

    expected = (f"make_patterns: dtype must be a floating type such as 'float32', got {dtype!r} (the images "
                f"are scaled to [0, 1])")
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        make_patterns(10, dtype=dtype)
    x, _ = make_patterns(10, dtype="float64")
    assert x.dtype == np.float64 and 0 < x.mean() < 1


# ---------------------------------------------------------------- BatchNorm and a last batch of one
def batch_norm_model(sample_shape=(5,)):
    from scratchnet.layers import BatchNorm, Flatten

    layers = [Dense(4), BatchNorm(name="bn"), Dense(3)] if len(sample_shape) == 1 else \
        [BatchNorm(name="bn"), Flatten(), Dense(3)]
    model = sn.Sequential(layers, input_shape=sample_shape, seed=0)
    return model.compile("sgd", "cross_entropy")


def test_fit_refuses_a_last_batch_of_one_sample_for_batch_norm_before_training():
    rng = np.random.default_rng(0)
    x, y = rng.random((21, 5)), rng.integers(0, 3, 21)
    model = batch_norm_model()
    with pytest.raises(ValueError, match=r"^sequential: 21 training samples in batches of 10 leave a last "
                                         r"batch of ONE sample \(21 % 10 = 1\), and BatchNorm layer 'bn' on "
                                         r"inputs of shape \(4,\) cannot compute a batch variance from one "
                                         r"value per channel; pass another batch_size \(e\.g\. 11\) or drop "
                                         r"one training sample$"):
        model.fit(x, y, epochs=1, batch_size=10, verbose=0)
    assert model.optimizer.iterations == 0  # refused before the first step, not at the third
    with pytest.raises(ValueError, match=r"^sequential: 16 training samples in batches of 5 leave"):
        model.fit(x[:20], y[:20], batch_size=5, validation_split=0.2, verbose=0)  # 20 - 4 = 16
    with pytest.raises(ValueError, match=r"^sequential: batch_size=1 makes every batch ONE sample, .*"
                                         r"pass another batch_size \(e\.g\. 3\)$"):  # 21 % 2 = 1
        model.fit(x, y, batch_size=1, verbose=0)
    with pytest.raises(ValueError, match="give it at least 2 training samples$"):
        model.fit(x[:1], y[:1], batch_size=10, verbose=0)
    model.fit(x[:20], y[:20], batch_size=10, verbose=0)  # 20 % 10 = 0: two full batches
    model.layers[1].trainable = False                    # frozen: running statistics, any batch
    model.fit(x, y, batch_size=10, verbose=0)
    images = batch_norm_model((2, 2, 3))                 # one image: 4 values per channel
    images.fit(rng.random((21, 2, 2, 3)), y, batch_size=10, verbose=0)


# ---------------------------------------------------------------- errors in y with validation_split
def test_a_bad_label_in_y_is_reported_in_the_training_rows_or_the_split_rows():
    rng = np.random.default_rng(0)
    x, y = rng.random((10, 3)), rng.integers(0, 3, 10)
    model = sn.Sequential([Dense(3)], input_shape=(3,), seed=0).compile("sgd", "cross_entropy")
    in_training = y.copy()
    in_training[[1, 9]] = 7          # row 9 is in the split, row 1 is not: the training rows say so
    with pytest.raises(ValueError, match=r"^cross_entropy: labels must be in \[0, 2\] for 3 logits, got "
                                         r"values from 0 to 7; for 8 classes .*one per class$"):  # no "(in"
        model.fit(x, in_training, validation_split=0.2, verbose=0)
    in_split = y.copy()
    in_split[9] = 5
    with pytest.raises(ValueError, match=r"^cross_entropy: labels must be in \[0, 2\] for 3 logits, got "
                                         r"values from .* to 5; .* \(in the validation split, the last 2 "
                                         r"rows of x and y\)$"):
        model.fit(x, in_split, validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match=r"\(in validation_data\)$"):
        model.fit(x, y, validation_data=(x, in_split), verbose=0)
    assert model.optimizer.iterations == 0


# ---------------------------------------------------------------- metrics: hints for labels
def test_metrics_hint_ravel_for_a_column_of_labels_and_astype_for_whole_floats():
    from scratchnet import metrics

    column, predicted = np.array([[2], [0], [1]]), np.array([2, 1, 1])
    refused = "y_true must be a 1-D array of non-negative integer class labels, got shape"
    for who, call in (("accuracy", metrics.accuracy), ("confusion_matrix", metrics.confusion_matrix),
                      ("top_k_accuracy", lambda labels, _: metrics.top_k_accuracy(labels, np.eye(3), k=1))):
        with pytest.raises(ValueError, match=rf"^{who}: {refused} \(3, 1\) and dtype int64; for labels of "
                                             rf"shape \(N, 1\) pass y_true\.ravel\(\)$"):
            call(column, predicted)
        with pytest.raises(ValueError, match=rf"^{who}: {refused} \(3,\) and dtype float64; the labels are "
                                             rf"whole numbers stored as floats: pass y_true\.astype\(int\)$"):
            call(column.ravel().astype(float), predicted)
    assert metrics.accuracy(column.ravel(), predicted) == pytest.approx(2 / 3)  # the hint's fix
    logits = np.array([[0.3], [-2.0], [1.5]])                                  # one column of logits
    column_hint = (r"; for one column of logits \(N, 1\) pass metrics\.predictions\(logits\), 1 where the "
                   r"logit is > 0 \(for a column of probabilities p: \(p\[:, 0\] > 0\.5\)\.astype\(int\)\)$")
    with pytest.raises(ValueError, match=column_hint):  # logits: metrics.predictions is the fix
        metrics.accuracy([1, 0, 0], logits)
    assert metrics.accuracy([1, 0, 0], metrics.predictions(logits)) == pytest.approx(2 / 3)
    probabilities = np.array([[0.3], [0.2], [0.9]])  # predictions() would call every one class 1
    with pytest.raises(ValueError, match=column_hint):
        metrics.accuracy([0, 0, 1], probabilities)
    assert metrics.accuracy([0, 0, 1], (probabilities[:, 0] > 0.5).astype(int)) == 1.0  # the hint's fix
    scores_hint = r"for scores \(N, n_classes\) pass metrics\.predictions\(scores\), the argmax of each row$"
    with pytest.raises(ValueError, match=scores_hint):
        metrics.accuracy([1, 0, 0], np.eye(3) / 2)
    with pytest.raises(ValueError, match=r"dtype float64$"):                   # fractions: no hint
        metrics.accuracy([0.5, 1.0, 2.0], predicted)


# ---------------------------------------------------------------- binary_cross_entropy's target shapes
def test_binary_cross_entropy_reshapes_only_a_vector_for_one_output():
    from scratchnet.losses import BinaryCrossEntropy

    loss = BinaryCrossEntropy()
    logits = np.array([[0.0, 2.0], [-1.0, 0.0], [3.0, 1.0]])
    targets = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match=r"^binary_cross_entropy: expected targets of shape \(3, 2\), "
                                         r"got \(2, 3\)$"):
        loss.forward(logits, targets.T)              # 6 values, not in the same places: refused
    with pytest.raises(ValueError, match=r"got \(6,\)$"):
        loss.forward(logits, targets.ravel())
    with pytest.raises(ValueError, match=r"got \(1, 3\); for one output per sample pass y\.reshape"):
        loss.forward(logits[:, :1], targets[None, :, 0])
    column = logits[:, :1]                           # z = 0, -1, 3 with t = 1, 0, 1
    hand_worked = np.mean([np.log(2), np.log1p(np.exp(-1.0)), np.log1p(np.exp(-3.0))])
    assert loss.forward(column, targets[:, 0]) == pytest.approx(hand_worked, rel=1e-15)  # (N,) -> (N, 1)
    assert loss.forward(column, targets[:, :1]) == pytest.approx(hand_worked, rel=1e-15)


# ---------------------------------------------------------------- check_layer's input
def test_check_layer_takes_a_nested_list_as_a_batch_and_refuses_what_is_neither():
    from scratchnet.gradcheck import check_layer

    batch = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]
    from_list = check_layer(Dense(2, activation="tanh"), batch, progress=False)
    from_array = check_layer(Dense(2, activation="tanh"), np.array(batch), progress=False)
    assert from_list.passed and str(from_list) == str(from_array)   # the same batch (2, 3)
    assert "input (2, 3)" in str(from_list)
    assert "input (3, 3)" in str(check_layer(Dense(2), [3], progress=False))  # a list of ints: a shape
    expected = ("check_layer: x_or_input_shape must be an input batch (an array (N, ...) or nested lists) or "
                "the shape of ONE sample (a tuple of ints such as (28, 28, 1)), got (3.0,) (a float: pass ")
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}"):
        check_layer(Dense(2), (3.0,), progress=False)
    with pytest.raises(TypeError, match=r"got 'abc'$"):
        check_layer(Dense(2), "abc", progress=False)


# ---------------------------------------------------------------- Mixup / CutMix labels
@pytest.mark.parametrize("kind", ["Mixup", "CutMix"])
def test_mixup_and_cutmix_hint_ravel_for_a_column_and_ask_for_labels(kind):
    from scratchnet import augment

    transform = getattr(augment, kind)(num_classes=3)
    x, y = np.random.default_rng(0).random((4, 6, 6, 1)), np.array([2, 0, 1, 1])
    column = f"{kind}: expected integer labels (N,) or soft labels (N, K), got shape (4, 1); for labels of " \
             f"shape (N, 1) pass y.ravel()"
    with pytest.raises(ValueError, match=f"^{re.escape(column)}$"):
        transform(x, y[:, None], np.random.default_rng(1))
    no_labels = f"{kind}: mixes labels as well as images, so it needs them: call it as " \
                f"transform(x, y, rng) with integer labels (N,) or soft labels (N, K), got y=None"
    with pytest.raises(TypeError, match=f"^{re.escape(no_labels)}$"):
        transform(x, None, np.random.default_rng(1))
    mixed, labels = transform(x, y.ravel(), np.random.default_rng(1))          # the hint's fix works
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-12)


# ---------------------------------------------------------------- Gram matrix, total variation of uint8
def test_gram_matrix_and_total_variation_of_uint8_images_do_not_wrap_around():
    from scratchnet.pixel_descent import total_variation
    from scratchnet.style_transfer import gram_matrix

    pixels = np.array([[[[3], [200]], [[5], [0]]]], dtype=np.uint8)  # one 2x2 grey image
    # down: 5 - 3 = 2, 0 - 200 = -200; right: 200 - 3 = 197, 0 - 5 = -5
    tv, grad = total_variation(pixels)
    assert tv == 2 ** 2 + 200 ** 2 + 197 ** 2 + 5 ** 2
    # dTV/dx[h, w] = 2 (x - up) + 2 (x - left) - 2 (down - x) - 2 (right - x), missing neighbours dropped
    top = [2 * (3 - 5) + 2 * (3 - 200), 2 * (200 - 0) + 2 * (200 - 3)]
    bottom = [2 * (5 - 3) + 2 * (5 - 0), 2 * (0 - 200) + 2 * (0 - 5)]
    np.testing.assert_array_equal(grad[0, :, :, 0], [top, bottom])
    gram = gram_matrix(pixels)
    np.testing.assert_allclose(gram, [[[(3 ** 2 + 200 ** 2 + 5 ** 2) / 4]]], rtol=1e-15)  # F^T F / (h w C)
    tv_float, grad_float = total_variation(pixels.astype(np.float32))
    assert tv_float == tv and grad_float.dtype == np.float32               # floats keep their dtype
