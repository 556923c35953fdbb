"""A careless student's first week with the tools around the model (optimizers, schedules, the
zoo, augmentation, data loaders, callbacks, metrics, Grad-CAM and pictures): each wrong input ends
in an error naming the function or class, what it expected and, where the cause is usually the
same, what to write instead. Valid input behaves as before. (The model itself: test_careless_student.py.)"""

import warnings

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import augment, callbacks, models
from scratchnet.layers import Conv2D, Dense, Flatten


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 3, size=n)


# ----------------------------------------------------------------- optimizers, zoo, augment, callbacks
def test_optimizer_options_name_the_optimizer():
    with pytest.raises(ValueError, match=r"^Adam: lr must be a finite number > 0, got -1$"):
        sn.Adam(lr=-1)
    with pytest.raises(TypeError, match=r"^SGD: lr must be a positive number or a schedule object, got 'x'$"):
        sn.SGD(lr="x")
    with pytest.raises(TypeError, match=r"^AdamW: lr must be .*got the class StepDecay itself; create one: "
                                        r"StepDecay\(...\)$"):
        sn.AdamW(lr=sn.schedules.StepDecay)
    optimizer = sn.Adam()
    with pytest.raises(ValueError, match=r"^Adam.lr: lr must be a finite number > 0, got 0$"):
        optimizer.lr = 0
    with pytest.raises(ValueError, match=r"^AdamW: betas must be a pair \(beta1, beta2\), got 0.9$"):
        sn.AdamW(betas=0.9)
    assert (sn.AdamW(betas=np.array([0.8, 0.99])).beta1, sn.AdamW(betas=[0.8, 0.99]).beta2) == (0.8, 0.99)


def test_get_model_lists_the_options_of_the_model():
    with pytest.raises(TypeError, match=r"^get_model\('LeNet5'\): unknown option\(s\) num_classes, hidden; "
                                        r"lenet5 takes input_shape, n_classes, seed, dtype, backend$"):
        models.get_model("LeNet5", num_classes=3, hidden=4, seed=1)
    model = models.get_model("resnet", depth=8, width=4, n_classes=3, input_shape=(8, 8, 1))
    assert model.name == "resnet8" and model.output_shape == (3,)


def test_compose_and_logger_paths():
    with pytest.raises(TypeError, match=r"^Compose: transforms must be a list of transforms, got one "
                                        r"RandomFlip; write Compose\(\[...\]\)$"):
        augment.Compose(augment.RandomFlip())
    assert len(augment.Compose((augment.RandomFlip(), augment.RandomShift(1))).transforms) == 2
    with pytest.raises(TypeError, match=r"^ModelCheckpoint: path must be a file name "
                                        r"\(str or pathlib.Path\), got None$"):
        callbacks.ModelCheckpoint(None)
    with pytest.raises(TypeError, match=r"^CSVLogger: path must be a file name .*got 3$"):
        callbacks.CSVLogger(3)


# ----------------------------------------------------------------- interpret and viz
def cam_model(**options):
    return sn.Sequential([Conv2D(4, 3, name="c1", padding="same"), Flatten(), Dense(3)], seed=0, **options)


def test_grad_cam_class_index_must_be_one_int_per_image():
    from scratchnet import interpret

    x, _ = data(2)
    model = cam_model(input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match=r"^grad_cam: class_index must be an int or one int per image "
                                         r"\(2,\), got \[0, 1, 2\]$"):
        interpret.grad_cam(model, x, class_index=[0, 1, 2])
    with pytest.raises(ValueError, match=r"^saliency: class_index must be .*got 1.5$"):
        interpret.saliency(model, x, class_index=1.5)
    with pytest.raises(ValueError, match=r"^sequential: class indices must be in \[0, 2\], got values from "
                                         r"3 to 3$"):                       # as before: the range check
        interpret.grad_cam(model, x, class_index=3)
    np.testing.assert_array_equal(interpret.grad_cam(model, x, class_index=np.array([1.0, 2.0])),
                                  interpret.grad_cam(model, x, class_index=[1, 2]))


def test_grad_cam_on_an_unbuilt_model():
    from scratchnet import interpret

    x, _ = data(2)
    unbuilt = cam_model(input_shape=(8, 8, 1))                               # built on first use
    maps = interpret.grad_cam(unbuilt, x, class_index=1)
    assert unbuilt.built and maps.shape == (2, 8, 8)
    np.testing.assert_array_equal(maps, interpret.grad_cam(cam_model(input_shape=(8, 8, 1)).build(), x, 1))
    with pytest.raises(ValueError, match=r"^sequential: the model is not built and has no input_shape; give "
                                         r"Sequential\(input_shape=...\), call model.build\(input_shape\)"):
        interpret.grad_cam(cam_model(), x)


def test_channel_and_label_counts_in_pictures():
    import matplotlib
    matplotlib.use("Agg")
    from scratchnet import interpret, viz

    x, y = data(3)
    model = cam_model(input_shape=(8, 8, 1)).build()
    with pytest.raises(ValueError, match=r"^deep_dream: layer 'c1' has 4 channels \(0 to 3, or -1 to -4 "
                                         r"from the end\), got channel=4$"):
        interpret.deep_dream(model, x[0], "c1", steps=1, channel=4)
    last, _ = interpret.deep_dream(model, x[0], "c1", steps=1, channel=-1)   # from the end, as before
    np.testing.assert_array_equal(last, interpret.deep_dream(model, x[0], "c1", steps=1, channel=3)[0])
    with pytest.raises(ValueError, match=r"^plot_filters: layer 'c1' has 1 input channel\(s\) \(0 to 0\), "
                                         r"got channel=1$"):
        viz.plot_filters(model, "c1", channel=1)
    with pytest.raises(ValueError, match=r"^plot_images: predicted has 2 entries for 3 images$"):
        viz.plot_images(x, labels=y, predicted=y[:2])
    viz.plot_images(x, labels=y, predicted=y)


def test_metrics_name_the_function():
    from scratchnet import metrics

    scores = np.array([[0.1, 0.9], [0.8, 0.2]])
    with pytest.raises(ValueError, match=r"^accuracy: y_pred must be a 1-D array of non-negative integer "
                                         r"class labels, got shape \(2, 2\) and dtype float64; for scores "
                                         r"\(N, n_classes\) pass metrics.predictions\(scores\)"):
        metrics.accuracy([1, 0], scores)
    assert metrics.accuracy([1, 1], metrics.predictions(scores)) == 0.5
    with pytest.raises(ValueError, match=r"^confusion_matrix: y_true has 3 labels but y_pred has 2$"):
        metrics.confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=r"^confusion_matrix: label 5 is out of range for n_classes=3$"):
        metrics.confusion_matrix([0, 5], [0, 1], n_classes=3)
    with pytest.raises(ValueError, match=r"^top_k_accuracy: k must be between 1 and 2, got 3$"):
        metrics.top_k_accuracy([0, 1], scores, k=3)
    with pytest.raises(ValueError, match=r"^predictions: logits must have shape \(N, n_classes\)"):
        metrics.predictions([1, 2])


# ----------------------------------------------------------------- data loaders and augmentation options
def test_loader_options_are_checked_before_reading():
    from scratchnet import datasets

    with pytest.raises(TypeError, match=r"^load_mnist_sample: standardize must be True or False, got 'no'$"):
        datasets.load_mnist_sample(standardize="no")                         # "no" was truthy: standardised
    with pytest.raises(TypeError, match=r"^load_mnist: dtype must be a floating type such as 'float32', "
                                        r"got 'int32' \(the images are scaled to \[0, 1\]\)$"):
        datasets.load_mnist(root="/no/such/folder", download=False, dtype="int32")  # before the search
    with pytest.raises(TypeError, match=r"^load_cifar10: dtype must be a floating type .*got 'pixels'"):
        datasets.load_cifar10(root="/no/such/folder", download=False, dtype="pixels")
    (x, y), _ = datasets.load_mnist_sample(standardize=np.bool_(False), dtype=np.float64)
    assert x.dtype == np.float64 and 0 <= x.min() and x.max() <= 1 and len(x) == len(y) == 8000


def test_augment_sizes_and_class_counts():
    with pytest.raises(ValueError, match=r"^RandomCrop: size must be an int >= 1 or an \(h, w\) pair of "
                                         r"them, got \(4, 4, 4\)$"):
        augment.RandomCrop((4, 4, 4))
    with pytest.raises(TypeError, match=r"^RandomResizedCrop: size must be .*got 'big'$"):
        augment.RandomResizedCrop("big")
    assert augment.RandomCrop(np.int64(3)).size == (3, 3)
    assert augment.RandomCrop(np.array([4, 5])).size == (4, 5)
    with pytest.raises(TypeError, match=r"^RandomCrop: size must be .*got \(4, 5.0\) \(a float: pass int"):
        augment.RandomCrop((4, 5.0))                # a float is refused, as everywhere (was (4, 5))
    with pytest.raises(ValueError, match=r"^Mixup: num_classes must be an int >= 1, got 0$"):
        augment.Mixup(num_classes=0)
    with pytest.raises(TypeError, match=r"^CutMix: num_classes must be an int >= 1, got 2.5$"):
        augment.CutMix(num_classes=2.5)
    assert augment.Mixup(num_classes=np.int64(3)).num_classes == 3


def test_decay_factors_must_be_positive():
    with pytest.raises(ValueError, match=r"^ExponentialDecay: rate must be a finite number > 0, got -0.5$"):
        sn.schedules.ExponentialDecay(0.1, rate=-0.5)                       # was a complex lr, cast silently
    with pytest.raises(ValueError, match=r"^StepDecay: factor must be a finite number > 0, got 0$"):
        sn.schedules.StepDecay(0.1, factor=0)                               # was lr 0 after `every` steps
    assert sn.schedules.StepDecay(0.1, factor=0.5, every=2)(5) == pytest.approx(0.1 * 0.5 ** 2, rel=1e-15)
    assert sn.schedules.ExponentialDecay(0.1, rate=0.5, decay_steps=2)(3) == pytest.approx(0.1 * 0.5 ** 1.5,
                                                                                         rel=1e-15)


def test_zoo_n_classes_names_the_model():
    with pytest.raises(ValueError, match=r"^lenet5: n_classes must be an int >= 1, got 0$"):
        models.lenet5(n_classes=0)                                           # was "dense: units must be ..."
    with pytest.raises(TypeError, match=r"^resnet: n_classes must be an int >= 1, got 2.0 \(a float: "):
        models.resnet8(n_classes=2.0)
    with pytest.raises(TypeError, match=r"^digit_cnn: n_classes must be an int >= 1, got '10'$"):
        models.get_model("digit_cnn", n_classes="10")
    for name in models.MODELS:
        model = models.get_model(name, n_classes=np.int64(4), input_shape=(32, 32, 3))
        assert model.output_shape == (4,) and type(model.layers[-1]).__name__ == "Dense"


# ----------------------------------------------------------------- names from Keras, capitals
def test_keras_and_capitalised_names_get_the_name_here():
    model = sn.Sequential([Dense(3)], input_shape=(4,))
    with pytest.raises(ValueError, match=r"^unknown loss 'sparse_categorical_crossentropy'; expected a Loss "
                                         r"or one of cross_entropy, mse, binary_cross_entropy \(Keras' "
                                         r"'sparse_categorical_crossentropy' is 'cross_entropy' here: it "
                                         r"takes logits \(no softmax layer\) and integer labels\)$"):
        model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"\(Keras' 'binary_crossentropy' is 'binary_cross_entropy' here: "
                                         r"it takes logits \(no sigmoid layer\) and 0/1 targets\)$"):
        model.compile("adam", "binary_crossentropy")
    with pytest.raises(ValueError, match=r"^unknown loss 'MSE'; .* \(did you mean 'mse'\? names are lower "
                                         r"case\)$"):
        model.compile("adam", "MSE")
    with pytest.raises(ValueError, match=r"^unknown loss 'hinge'; expected a Loss or one of cross_entropy, "
                                         r"mse, binary_cross_entropy$"):
        model.compile("adam", "hinge")
    with pytest.raises(ValueError, match=r"^dense: unknown activation 'ReLU'; expected one of relu, .*linear "
                                         r"\(did you mean 'relu'\? names are lower case\)$"):
        Dense(3, activation="ReLU")
    assert model.compile("adam", "mse").loss.name == "mse"


def test_fit_shuffle_must_be_a_bool():
    model = sn.Sequential([Dense(2)], input_shape=(3,), dtype="float64").compile()
    x, y = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    with pytest.raises(TypeError, match=r"sequential: shuffle must be True or False, got 'no'"):
        model.fit(x, y, shuffle="no", verbose=0)


@pytest.mark.parametrize("name", [5, "", ("a",)])
def test_a_layer_name_must_be_a_non_empty_string(name):
    with pytest.raises(TypeError, match=r"^Dense: name must be a non-empty string, got "):
        Dense(3, name=name)


@pytest.mark.parametrize("option", ["n", "image_size", "n_classes"])
def test_make_patterns_counts_must_be_whole_numbers(option):
    from scratchnet.datasets import make_patterns

    with pytest.raises(TypeError, match=rf"^make_patterns: {option} must be an int (>=|from) \d.*, got 2.5$"):
        make_patterns(**{"n": 10, option: 2.5})
    assert make_patterns(np.int64(4), image_size=np.int64(8))[0].shape == (4, 8, 8, 1)


def test_loaders_refuse_a_root_that_is_not_a_folder_name():
    from scratchnet.datasets import load_mnist
    from scratchnet.datasets.cifar import find_cifar10

    with pytest.raises(TypeError, match=r"^load_mnist: root must be a folder name \(str or pathlib.Path\), "
                                        r"got 5$"):
        load_mnist(root=5)
    with pytest.raises(TypeError, match=r"^find_cifar10: root must be a folder name"):
        find_cifar10(root=5)
    with pytest.raises(TypeError, match=r"^load_mnist: root must be a folder name .*got b'/tmp'$"):
        load_mnist(root=b"/tmp")                    # bytes: a file name may be bytes, a folder not


def test_review_mends_valid_input_passes_and_hints_fit_the_case(tmp_path):
    """What the review of the careless-input work found: valid input refused, hints that misled."""
    from scratchnet.datasets import load_mnist_sample
    from scratchnet.models import MODELS, get_model

    model = sn.Sequential([Dense(10)], input_shape=(3,), dtype="float64", seed=0).compile()
    x = np.random.default_rng(0).standard_normal((4, 3))
    model.fit(x, np.array([0, 1, 2, 3]), shuffle=0, verbose=0)  # 0 / 1 are fine as shuffle
    with pytest.raises(ValueError, match=r"the labels run from 1 to 10: count classes from 0, pass y - 1"):
        model.fit(x, np.array([1, 10, 3, 4]), verbose=0)
    with pytest.raises(TypeError, match=r"^save_weights: path must be a file name"):
        model.save_weights(5)
    with warnings.catch_warnings():  # whole numbers up to 16 (another scale than 0-255): no warning
        warnings.simplefilter("error")
        images = sn.Sequential([Flatten(), Dense(2)], input_shape=(2, 2, 1), dtype="float64").compile()
        images.fit(np.arange(16.0).reshape(4, 2, 2, 1), np.array([0, 1, 0, 1]), verbose=0)
    digits_a, digits_b = load_mnist_sample(standardize=1), load_mnist_sample(standardize=True)
    np.testing.assert_array_equal(digits_a[0][0], digits_b[0][0])

    def mine(**options):  # a model function of one's own that takes any option
        return sn.Sequential([Dense(options.get("n_classes", 2))], input_shape=(3,))

    MODELS["mine_for_test"] = mine
    try:
        assert get_model("mine_for_test", n_classes=3).build().output_shape == (3,)
    finally:
        del MODELS["mine_for_test"]


def test_the_label_check_before_fit_takes_large_outputs_a_few_at_a_time(monkeypatch):
    from scratchnet import training

    shapes = []
    model = sn.Sequential([Flatten(), Dense(64 * 64 * 3)], input_shape=(2, 2, 1), dtype="float64")
    model.compile(loss="mse").build()
    original = model.loss.forward

    def recording(logits, y, *rest):
        shapes.append(logits.shape)
        return original(logits, y, *rest)
    monkeypatch.setattr(model.loss, "forward", recording)
    training.check_targets_for_loss(model, np.zeros((1000, 64 * 64 * 3)))  # 1000 x 49 KB
    assert shapes[0][0] == (1 << 22) // (64 * 64 * 3) == 341  # 16 MB of logits, not 50
    assert sum(shape[0] for shape in shapes) == 1000


def test_a_history_given_as_a_callback_points_to_fit_s_history_argument():
    model = sn.Sequential([Dense(2)], input_shape=(3,), dtype="float64").compile()
    x, y = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    history = model.fit(x, y, verbose=0)
    with pytest.raises(TypeError, match=r"^sequential: a History is not a callback: fit returns one; to "
                                        r"add this run's epochs to an earlier History pass "
                                        r"fit\(\.\.\., history=that_history\)$"):
        model.fit(x, y, callbacks=[history], verbose=0)
    assert len(model.fit(x, y, history=history, verbose=0).history["loss"]) == 2
