"""CIFAR-10 end to end on the real subset in ../shared: `scratchnet train`, `evaluate`, `predict`,
the example scripts, and clear errors for a damaged CIFAR folder."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
from test_cifar_download import NAMES, batch_bytes

import scratchnet
from scratchnet import cli, models
from scratchnet.datasets import CIFAR10_CLASSES, channel_mean_std, load_cifar10, standardize

SUBSET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-subset"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODEL = "small_cnn_bn"


@pytest.fixture(scope="module")
def cifar_dir():
    """The real CIFAR-10 subset (4,194 train / 466 test); skip cleanly where it is absent."""
    if not (SUBSET / "cifar-10-batches-py" / "test_batch").exists():
        pytest.skip("../shared/data/cifar10-subset is not available on this machine")
    return SUBSET


@pytest.fixture(scope="module")
def trained(cifar_dir, tmp_path_factory):
    """One quick `scratchnet train --dataset cifar10` run: (output folder, printed text, figures)."""
    pytest.importorskip("matplotlib")
    from scratchnet import viz

    figures, real = [], viz.plot_confusion_matrix

    def keep(*args, **kwargs):
        figures.append(real(*args, **kwargs))
        return figures[-1]

    out = tmp_path_factory.mktemp("cifar") / "run"
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(viz, "plot_confusion_matrix", keep)
    import contextlib
    import io

    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            code = cli.main(["train", "--dataset", "cifar10", "--data-dir", str(cifar_dir), "--model", MODEL,
                             "--epochs", "1", "--limit", "300", "--batch-size", "64", "--out", str(out)])
    finally:
        monkeypatch.undo()
    assert code == 0
    return out, printed.getvalue(), figures


@pytest.mark.slow
def test_train_cifar10_writes_every_output_with_class_names(trained):
    out, printed, (confusion,) = trained
    assert {"model.sn", "history.json", "curves.png", "confusion.png", "predictions.png", "augmented.png",
            "filters.png", "feature_maps.png", "grad_cam.png"} <= {path.name for path in out.iterdir()}
    assert "recipe torch_small_cnn: sgd lr 0.1 (cosine), batch 64, 1 epochs, augment standard" in printed
    record = json.loads((out / "history.json").read_text())
    assert (record["train_images"], record["validation_images"], record["test_images"]) == (270, 30, 300)
    assert record["recipe"]["momentum"] == 0.9 and record["recipe"]["weight_decay"] == 5e-4
    # one printed line per class, with the accuracy history.json records for it
    lines = printed.split("Per-class accuracy:\n")[1].splitlines()[:10]
    assert [line.split()[0] for line in lines] == list(CIFAR10_CLASSES)
    for line, name in zip(lines, CIFAR10_CLASSES):
        correct, total = map(int, line.split("(")[1].rstrip(")").split("/"))
        assert float(line.split()[1]) == pytest.approx(record["per_class_accuracy"][name], abs=5e-4)
        assert correct / total == pytest.approx(record["per_class_accuracy"][name], abs=1e-12)
    # the confusion figure names the classes on both axes and counts the 300 test images
    axes = confusion.axes[0]
    assert [label.get_text() for label in axes.get_xticklabels()] == list(CIFAR10_CLASSES)
    assert [label.get_text() for label in axes.get_yticklabels()] == list(CIFAR10_CLASSES)
    assert sum(int(text.get_text()) for text in axes.texts) == 300


@pytest.mark.slow
def test_standardisation_statistics_come_from_the_training_images_and_are_saved(trained, cifar_dir):
    out, _, _ = trained
    model = scratchnet.load(out / "model.sn")
    x_train, _ = load_cifar10(cifar_dir, "train", download=False)
    mean, std = channel_mean_std(x_train[:270])              # the 270 fitted images, not validation/test
    assert model.preprocessing["dataset"] == "cifar10"
    assert model.preprocessing["class_names"] == list(CIFAR10_CLASSES)
    np.testing.assert_allclose(model.preprocessing["mean"], mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.preprocessing["std"], std, rtol=0, atol=1e-12)
    assert not np.allclose(mean, channel_mean_std(x_train[:300])[0], rtol=0, atol=1e-6)
    record = json.loads((out / "history.json").read_text())
    assert record["preprocessing"]["mean"] == model.preprocessing["mean"]


@pytest.mark.slow
def test_evaluate_reproduces_the_training_runs_test_accuracy(trained, cifar_dir, capsys):
    out, _, _ = trained
    record = json.loads((out / "history.json").read_text())
    assert cli.main(["evaluate", str(out / "model.sn"), "--data-dir", str(cifar_dir), "--limit", "300",
                     "--out", str(out / "eval")]) == 0
    printed = capsys.readouterr().out
    assert "cifar10 test split, 300 images, standardised with the saved training statistics" in printed
    assert f"Test accuracy: {record['test_accuracy']:.4f} on 300 images" in printed
    assert printed.count("\n  ") == 10 and "  truck " in printed
    assert (out / "eval" / "confusion.png").exists() and (out / "eval" / "predictions.png").exists()


@pytest.mark.slow
def test_predict_npy_and_png_round_trip(trained, cifar_dir, tmp_path, capsys):
    import matplotlib.image

    out, _, _ = trained
    model = scratchnet.load(out / "model.sn")
    x_test, _ = load_cifar10(cifar_dir, "test", download=False)
    pixels = np.round(x_test[:3] * 255).astype(np.uint8)
    np.save(tmp_path / "three.npy", pixels)
    matplotlib.image.imsave(tmp_path / "one.png", pixels[1])
    np.save(tmp_path / "single.npy", x_test[2])                    # (H, W, C) floats
    assert cli.main(["predict", str(out / "model.sn"), str(tmp_path / "three.npy"), str(tmp_path / "one.png"),
                     str(tmp_path / "single.npy")]) == 0
    lines = capsys.readouterr().out.splitlines()
    info = model.preprocessing
    expected = model.predict_proba(standardize(pixels / np.float32(255), info["mean"], info["std"]))
    for index, line in enumerate(lines[:3]):
        best = int(np.argmax(expected[index]))
        name, probability = CIFAR10_CLASSES[best], expected[index, best]
        assert line == f"{tmp_path / 'three.npy'}[{index}]: {name} ({probability:.3f})"
    assert lines[3].split(": ")[1] == lines[1].split(": ")[1]          # the PNG of image 1: same answer
    assert lines[4].startswith(f"{tmp_path / 'single.npy'}: ")


def test_predict_refuses_wrong_shapes_naming_the_expected_input(tmp_path, capsys):
    model = models.tiny_cnn(input_shape=(32, 32, 3))
    model.compile()
    model.save(tmp_path / "m.sn")
    cases = {"gray.npy": np.zeros((2, 32, 32, 1), np.float32), "small.npy": np.zeros((28, 28, 3), np.float32),
             "first.npy": np.zeros((2, 3, 32, 32), np.float32), "flat.npy": np.zeros(3072, np.float32),
             "ints.npy": np.zeros((32, 32, 3), np.int64), "big.npy": np.full((32, 32, 3), 255.0, np.float32)}
    for name, array in cases.items():
        np.save(tmp_path / name, array)
    messages = {"gray.npy": "the model expects images of shape (N, 32, 32, 3) or (32, 32, 3) as (height, "
                "width, channels), got (2, 32, 32, 1)",
                "small.npy": "got (1, 28, 28, 3)", "first.npy": "got (2, 3, 32, 32) (channels-first?",
                "flat.npy": "got (3072,)", "ints.npy": "expected uint8 (0-255) or float (0-1) pixels",
                "big.npy": "float pixels must be in [0, 1]"}
    for name, message in messages.items():
        assert cli.main(["predict", str(tmp_path / "m.sn"), str(tmp_path / name)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"scratchnet predict: {tmp_path / name}: ") and message in err, (name, err)
    (tmp_path / "notes.txt").write_text("hello")
    assert cli.main(["predict", str(tmp_path / "m.sn"), str(tmp_path / "notes.txt")]) == 1
    assert "unknown file type '.txt'" in capsys.readouterr().err
    # a file that does not exist is a usage mistake (2) in every command, as in gradcheck FILE
    assert cli.main(["predict", str(tmp_path / "missing.sn"), str(tmp_path / "big.npy")]) == 2
    assert "missing.sn: no such model file" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path / "m.sn")]) == 1
    assert "does not say which dataset it was trained on; give --dataset" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path / "m.sn"), "--dataset", "mnist-sample"]) == 1
    assert "expects images of shape (32, 32, 3) (H, W, C), but --dataset mnist-sample has (28, 28, 1)" \
        in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    ("missing", "incomplete CIFAR-10 folder, missing data_batch_3"),
    ("truncated", "data_batch_3: not a readable CIFAR-10 batch"),
])
def test_train_on_a_damaged_cifar_folder_exits_1_with_the_batch_named(tmp_path, capsys, damage, message):
    # batch files of 2 images each (test_cifar_download's): no need for the real subset in ../shared
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for seed, name in enumerate(NAMES):
        (folder / name).write_bytes(batch_bytes(2, seed))
    batch = folder / "data_batch_3"
    if damage == "missing":
        batch.unlink()
    else:
        batch.write_bytes(batch.read_bytes()[:-40])
    assert cli.main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--no-download",
                     "--epochs", "1", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("scratchnet train: ") and message in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("script, model", [("cifar10_torch_small_cnn.py", "small_cnn_bn"),
                                           ("cifar10_flax_cnn.py", "flax_cnn")])
def test_example_scripts_run_quick_on_the_subset(cifar_dir, tmp_path, capsys, script, model):
    from scratchnet.recipes import build_optimizer, get_recipe

    namespace = runpy.run_path(str(EXAMPLES / script))
    accuracy = namespace["main"](["--data-dir", str(cifar_dir), "--quick", "--out", str(tmp_path / "m.sn")])
    assert 0.0 <= accuracy <= 1.0
    assert f"Test accuracy: {accuracy:.4f} on 256 images" in capsys.readouterr().out
    saved = scratchnet.load(tmp_path / "m.sn")
    # the script builds the same optimizer and schedule as the named recipe (4 steps of 128 in 512 images)
    recipe = get_recipe("torch_small_cnn" if "torch" in script else "flax", epochs=1)
    reference = build_optimizer(recipe, steps_per_epoch=4)
    assert type(saved.optimizer) is type(reference) and saved.optimizer.iterations == 4
    assert vars(saved.optimizer.schedule) == vars(reference.schedule)
    for key in ("momentum", "weight_decay", "nesterov"):
        assert getattr(saved.optimizer, key, None) == getattr(reference, key, None)
    x_train, _ = load_cifar10(cifar_dir, "train", download=False)
    np.testing.assert_allclose(saved.preprocessing["mean"], channel_mean_std(x_train[:512])[0], atol=1e-12)


# ---------------------------------------------------------------------- bad input of the training pipeline
@pytest.mark.parametrize("make", ["ModelCheckpoint", "CSVLogger", "JSONLogger"])
def test_callbacks_refuse_a_negative_epoch(tmp_path, make):
    from scratchnet import callbacks

    callback = getattr(callbacks, make)(tmp_path / "file")
    callback.set_model(models.tiny_cnn(input_shape=(8, 8, 1)).compile())
    with pytest.raises(ValueError, match=f"^{make}: epoch must be an int >= 0, got -1$"):
        callback.on_epoch_end(-1, {"loss": 1.0, "val_loss": 1.0})
    assert not (tmp_path / "file").exists()                      # nothing written for the bad call


def test_fit_refuses_a_negative_initial_epoch():
    model = models.tiny_cnn(input_shape=(8, 8, 1)).compile()
    with pytest.raises(ValueError, match="^tiny_cnn: initial_epoch must be an int >= 0, got -1$"):
        model.fit(np.zeros((4, 8, 8, 1)), np.zeros(4, dtype=int), initial_epoch=-1, verbose=0)
    assert model.epochs_trained == 0


# ---------------------------------------------------------------------- beside PyTorch
@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("name, recipe_name", [("small_cnn_bn", "torch_small_cnn"), ("flax_cnn", "flax")])
def test_recipe_training_matches_pytorch_in_float64(cifar_dir, name, recipe_name):
    """Same initial weights, batches and schedule, dropout off: 6 steps' losses agree to 1e-8."""
    torch = pytest.importorskip("torch")
    from scratchnet import interop  # imports without torch: a broken bridge fails, never skips
    from scratchnet.layers import Dropout
    from scratchnet.layers.base import iter_layers
    from scratchnet.recipes import build_optimizer, get_recipe

    x, y = load_cifar10(cifar_dir, "train", dtype="float64", download=False)
    x = standardize(x[:96], *channel_mean_std(x[:96]))
    model = models.get_model(name, input_shape=(32, 32, 3), dtype="float64", seed=3)
    for layer in iter_layers(model.layers):
        if isinstance(layer, Dropout):
            layer.rate = 0.0
    recipe = get_recipe(recipe_name, epochs=2)
    model.compile(optimizer=build_optimizer(recipe, steps_per_epoch=3), loss="cross_entropy")
    twin = interop.to_torch(model)
    twin.train()
    if recipe.optimizer == "sgd":
        optimizer = torch.optim.SGD(twin.parameters(), lr=recipe.lr, momentum=0.9, weight_decay=5e-4)
    else:
        optimizer = torch.optim.Adam(twin.parameters(), lr=recipe.lr)
    ours, theirs = [], []
    for step in range(6):
        index = np.arange(step % 3 * 32, step % 3 * 32 + 32)
        for group in optimizer.param_groups:
            group["lr"] = model.optimizer.lr
        ours.append(float(model.train_step(x[index], y[index])[0]))
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x[index])), torch.from_numpy(y[index]))
        loss.backward()
        optimizer.step()
        theirs.append(float(loss.detach()))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-8)
    assert ours[3] != ours[0]                                    # the weights did change between visits
