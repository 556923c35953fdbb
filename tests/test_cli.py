"""The `scratchnet` command: version, summary, gradcheck, and train end to end on small slices."""

import json
import os
import subprocess
import sys
import urllib.error

import numpy as np
import pytest

import scratchnet
from scratchnet import cli
from scratchnet.datasets import load_mnist_sample, mnist
from scratchnet.layers import Dense
from scratchnet.model import Sequential

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_version_and_help():
    result = subprocess.run([sys.executable, "-m", "scratchnet", "--version"], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == f"scratchnet {scratchnet.__version__}"
    # What cli.py's docstring says is deferred: matplotlib, until a command draws.
    code = ("import sys\nfrom scratchnet import cli\n"
            "try:\n    cli.main(['--version'])\nexcept SystemExit:\n    pass\n"
            "assert 'matplotlib' not in sys.modules, 'scratchnet --version imported matplotlib'\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--help"])
    assert info.value.code == 0


def test_summary_lenet5(capsys):
    assert cli.main(["summary", "--model", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 61,706" in out and "(None, 5, 5, 16)" in out
    assert cli.main(["summary", "--model", "small_cnn", "--input-shape", "32,32,3"]) == 0
    assert "Total params: 545,098" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["summary", "--model", "vgg16"], "invalid choice: 'vgg16'"),
    (["train", "--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    (["train", "--epochs", "0"], "must be >= 1"),
    (["summary", "--input-shape", "28,x"], "expected sizes like 28,28,1"),
])
def test_bad_arguments_are_refused_clearly(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_gradcheck_covers_every_builtin_layer(capsys):
    assert cli.main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for label in ("Dense(4, relu)", "Dense(4, softmax)", "Activation(gelu)", "Flatten",
                  "Conv2D(3, 3x3, same, im2col)", "Conv2D(3, 3x3, same, scipy)", "MaxPool2D(2)",
                  "AvgPool2D(2)", "GlobalAvgPool2D"):
        assert label in out
    assert "FAIL" not in out and "arrays ok" in out


class WrongDense(Dense):
    """A deliberately broken backward: the input gradient is twice too large."""

    def backward(self, dy):
        return 2 * super().backward(dy)


def test_gradcheck_exit_code_1_on_a_wrong_backward(capsys, monkeypatch):
    monkeypatch.setattr(cli, "gradcheck_cases", lambda: [("WrongDense", WrongDense(3), (4,))])
    assert cli.main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "WrongDense  input" in out and "FAIL" in out and "1 of 3 arrays FAILED" in out


def assert_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert matplotlib.image.imread(path).shape[0] > 50


@pytest.mark.slow
def test_train_one_epoch_writes_every_output(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    code = cli.main(["train", "--epochs", "1", "--limit", "300", "--batch-size", "32", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Epoch 1/1" in printed and "val_accuracy" in printed and "Test accuracy" in printed
    assert sorted(path.name for path in out.iterdir()) == [
        "augmented.png", "confusion.png", "curves.png", "feature_maps.png", "filters.png", "grad_cam.png",
        "history.json", "model.sn", "predictions.png"]
    for name in ("confusion.png", "curves.png", "feature_maps.png", "filters.png", "grad_cam.png",
                 "predictions.png"):
        assert_png(out / name)
    record = json.loads((out / "history.json").read_text())
    assert record["epochs_completed"] == 1 and record["interrupted"] is False and record["error"] is None
    assert (record["train_images"], record["validation_images"], record["test_images"]) == (270, 30, 300)
    assert set(record["history"]) == {"epoch", "seconds", "loss", "accuracy", "val_loss", "val_accuracy"}
    # the saved model is the trained one: it reproduces the reported test accuracy
    model = scratchnet.load(out / "model.sn")
    (_, _), (x_test, y_test) = load_mnist_sample()
    predicted = np.argmax(model.predict(x_test[:300]), axis=1)
    assert np.mean(predicted == y_test[:300]) == pytest.approx(record["test_accuracy"])
    assert model.epochs_trained == 1


@pytest.mark.slow
def test_ctrl_c_saves_the_model_trained_so_far(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    real_step, calls = Sequential.train_step, []

    def step_then_interrupt(self, x, y):
        calls.append(len(x))
        if len(calls) == 5:  # epoch 1 has 3 steps (180 images / 64): stop inside epoch 2
            raise KeyboardInterrupt
        return real_step(self, x, y)

    monkeypatch.setattr(Sequential, "train_step", step_then_interrupt)
    out = tmp_path / "run"
    code = cli.main(["train", "--model", "tiny_cnn", "--epochs", "3", "--limit", "200",
                     "--out", str(out)])
    assert code == 130
    assert "Interrupted after 1 complete epoch" in capsys.readouterr().out
    record = json.loads((out / "history.json").read_text())
    assert record["interrupted"] is True and record["epochs_completed"] == 1
    assert record["history"]["epoch"] == [1]
    assert scratchnet.load(out / "model.sn").epochs_trained == 1
    assert_png(out / "curves.png")


@pytest.mark.slow
def test_train_patterns_with_mlp_has_no_filter_plots(tmp_path):
    out = tmp_path / "patterns"
    assert cli.main(["train", "--dataset", "patterns", "--model", "mlp", "--epochs", "1",
                     "--limit", "100", "--val-fraction", "0", "--out", str(out)]) == 0
    record = json.loads((out / "history.json").read_text())
    assert record["validation_images"] == 0 and "val_accuracy" not in record["history"]
    assert not (out / "filters.png").exists() and (out / "confusion.png").exists()


def test_missing_datasets_exit_1_with_advice(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SCRATCHNET_DATA", raising=False)

    def offline(url, timeout=None):
        raise urllib.error.URLError("no route to host (test)")

    monkeypatch.setattr(mnist, "urlopen", offline)
    assert cli.main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err
    assert "is this machine offline?" in err and "--dataset mnist-sample" in err
    assert cli.main(["train", "--dataset", "mnist", "--no-download"]) == 1
    err = capsys.readouterr().err
    assert "--no-download" in err and "download=False" not in err  # the flag's name, not Python's
    assert cli.main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "cifar-10-python.tar.gz" in err and "--data-dir" in err and "as root" not in err


# ---------------------------------------------------------------------- the figures of `train`
def spy(monkeypatch, module, name):
    """Replace module.name by a wrapper that keeps every figure it returns."""
    real, figures = getattr(module, name), []

    def wrapper(*args, **kwargs):
        result = real(*args, **kwargs)
        figures.append(result[1] if isinstance(result, tuple) else result)
        return result

    monkeypatch.setattr(module, name, wrapper)
    return figures


def colorbar_labels(figure):
    return [axes.get_ylabel() for axes in figure.axes if axes.get_label() == "<colorbar>"]


def test_train_figures_show_values_and_labels(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from scratchnet import interpret, viz

    figures = {name: spy(monkeypatch, viz, name) for name in
               ("plot_history", "plot_confusion_matrix", "plot_images", "plot_filters", "plot_feature_maps")}
    figures["grad_cam"] = spy(monkeypatch, interpret, "plot_grad_cam")
    out = tmp_path / "run"
    assert cli.main(["train", "--model", "tiny_cnn", "--epochs", "1", "--limit", "120",
                     "--out", str(out)]) == 0
    capsys.readouterr()
    model = scratchnet.load(out / "model.sn")
    (_, _), (x_test, y_test) = load_mnist_sample()
    predicted = model.predict(x_test[:120]).argmax(axis=1)
    (curves,) = figures["plot_history"]
    assert [axes.get_xlim() for axes in curves.axes] == [(0, 2), (0, 2)]  # one epoch, centred
    assert all(line.get_marker() in ("o", "s") for axes in curves.axes for line in axes.lines)
    assert colorbar_labels(figures["plot_confusion_matrix"][0]) == ["count"]
    assert colorbar_labels(figures["plot_filters"][0]) == ["weight"]
    maps = figures["plot_feature_maps"][0]
    assert colorbar_labels(maps) == ["activation"]
    assert maps.axes[0].get_title() == f"input\ntrue {y_test[0]} / pred {predicted[0]}"
    grid = figures["plot_images"][0]
    assert [axes.get_title() for axes in grid.axes if axes.images][:3] == [
        f"true {y_test[i]} / pred {predicted[i]}" for i in range(3)]
    (cam,) = figures["grad_cam"]
    images = [axes for axes in cam.axes if axes.images and axes.get_label() != "<colorbar>"]
    assert len(images) == 16 and colorbar_labels(cam) == ["Grad-CAM (0-1)"]
    assert [axes.get_title() for axes in images[:8]] == [f"true {y_test[i]} / pred {predicted[i]}"
                                                         for i in range(8)]
    assert all(len(axes.images) == 2 for axes in images[8:])  # the image and the map over it
    import matplotlib.image
    assert matplotlib.image.imread(out / "grad_cam.png").shape[:2] == (360, 1380)  # 8 images


def test_interrupted_first_epoch_writes_no_empty_curves(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    real_step, calls = Sequential.train_step, []

    def step_then_interrupt(self, x, y):
        calls.append(len(x))
        if len(calls) == 2:  # inside epoch 1
            raise KeyboardInterrupt
        return real_step(self, x, y)

    monkeypatch.setattr(Sequential, "train_step", step_then_interrupt)
    out = tmp_path / "run"
    code = cli.main(["train", "--model", "mlp", "--epochs", "2", "--limit", "200", "--out", str(out)])
    assert code == 130
    printed = capsys.readouterr().out
    assert "Interrupted after 0 complete epoch" in printed and "curves.png is not written" in printed
    assert not (out / "curves.png").exists()
    assert "curves.png" not in printed.split("Saved ")[1]
    assert json.loads((out / "history.json").read_text())["history"]["epoch"] == []
    assert_png(out / "confusion.png")


def test_monitor_flag_writes_health_plot_and_prints_warnings(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    assert cli.main(["train", "--model", "mlp", "--epochs", "1", "--limit", "200", "--monitor",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Training health (3 checks):" in printed and "no warnings" in printed  # 180 / 64: 3 steps
    assert_png(out / "health.png")
    out = tmp_path / "broken"
    assert cli.main(["train", "--model", "mlp", "--epochs", "1", "--limit", "200", "--monitor",
                     "--lr", "10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "the learning rate is too high" in printed and "health.png" in printed


def test_monitor_reports_a_non_finite_loss(tmp_path, capsys, monkeypatch):
    real_step, calls = Sequential.train_step, []

    def step_then_fail(self, x, y):
        calls.append(len(x))
        if len(calls) == 3:
            raise scratchnet.NonFiniteLossError("mlp: the loss is nan; the output of layer 'dense' (Dense) "
                                                "is the first to contain NaN/inf")
        return real_step(self, x, y)

    monkeypatch.setattr(Sequential, "train_step", step_then_fail)
    out = tmp_path / "run"
    code = cli.main(["train", "--model", "mlp", "--epochs", "1", "--limit", "400", "--monitor",
                     "--out", str(out)])
    assert code == 1
    captured = capsys.readouterr()
    assert "Training stopped: epoch 1, batch 3 of 6" in captured.err
    assert "the loss became NaN/inf, training stopped" in captured.out and "'dense'" in captured.out
    record = json.loads((out / "history.json").read_text())
    assert "layer 'dense'" in record["error"] and record["epochs_completed"] == 0
    assert (out / "health.png").exists() and (out / "model.sn").exists()


# ---------------------------------------------------------------------- recipes and their options
def train_args(*extra):
    return cli.build_parser().parse_args(["train", *extra])


def test_mnist_default_is_digit_cnn_adamw_onecycle_with_shifts_and_rotations():
    from scratchnet import augment as A
    from scratchnet import cli_train
    from scratchnet.optimizers import AdamW
    from scratchnet.schedules import OneCycle

    run = cli_train.prepare_run(train_args("--limit", "200"))
    model, optimizer = run.model, run.model.optimizer
    assert model.name == "digit_cnn" and model.count_params() == 29_178
    assert type(optimizer) is AdamW and optimizer.weight_decay == 0.01
    assert type(optimizer.schedule) is OneCycle
    assert (optimizer.schedule.max_lr, optimizer.schedule.total_steps) == (5e-3, 10 * 3)   # 180 images / 64
    shift, rotation = run.augment.transforms
    assert (type(shift), shift.max_shift, type(rotation), rotation.degrees) == (
        A.RandomShift, 2, A.RandomRotation, 10.0)
    assert model.loss.label_smoothing == 0.1 and (run.recipe.batch_size, run.recipe.epochs) == (64, 10)
    assert model.preprocessing["mean"] is None                          # pixels in [0, 1], as LeNet-5's
    lenet = cli_train.prepare_run(train_args("--limit", "200", "--model", "lenet5"))  # one flag away
    assert lenet.model.name == "lenet5" and lenet.model.count_params() == 61_706


def test_feature_maps_are_shown_after_the_first_activation():
    from scratchnet import cli_train
    from scratchnet.models import get_model

    assert cli_train.feature_map_layer(get_model("digit_cnn"), 0) == 2     # conv, BatchNorm, ReLU
    lenet = get_model("lenet5")
    assert type(lenet.layers[1]).__name__ == "Activation" and cli_train.feature_map_layer(lenet, 0) == 1
    assert cli_train.feature_map_layer(get_model("tiny_cnn"), 0) == 1


def test_threads_option_sets_the_blas_threads(monkeypatch, capsys, tmp_path):
    from scratchnet import blas_threads, cli_train

    before = blas_threads.blas_threads()
    if not before:
        pytest.skip("no OpenBLAS found")
    try:
        monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
        blas_threads.set_blas_threads(2)
        assert cli_train.apply_threads(None) == "1"                     # the default: one thread
        assert set(blas_threads.blas_threads().values()) == {1}
        assert cli_train.apply_threads(3) == "3" and set(blas_threads.blas_threads().values()) == {3}
        assert cli_train.apply_threads(0) == "3 (the BLAS's default)"   # 0 leaves it as it is
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")                  # the user's own setting wins
        assert cli_train.apply_threads(None) == "2 (OPENBLAS_NUM_THREADS)"
        assert set(blas_threads.blas_threads().values()) == {3}
    finally:
        for count in set(before.values()):
            blas_threads.set_blas_threads(count)
    assert cli.main(["train", "--threads", "-1", "--limit", "50", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "scratchnet train: --threads must be >= 0, got -1\n"


def test_kernel_workers_option_sets_the_chunk_pool(capsys, tmp_path, serial_afterwards):
    from scratchnet import blas_threads, cli_train
    from scratchnet.kernels import chunk_workers

    before = blas_threads.blas_threads()
    assert cli_train.apply_kernel_workers(1) == "" and chunk_workers.kernel_workers() == 1
    assert cli_train.apply_kernel_workers(2) == ", kernel workers: 2 (BLAS 1 thread each)"
    assert chunk_workers.kernel_workers() == 2
    assert not before or set(blas_threads.blas_threads().values()) == {1}
    chunk_workers.set_kernel_workers(1)
    assert cli.main(["train", "--kernel-workers", "0", "--limit", "50", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "scratchnet train: --kernel-workers must be >= 1, got 0\n"
    assert chunk_workers.kernel_workers() == 1


def test_options_override_the_recipe():
    from scratchnet import cli_train
    from scratchnet.optimizers import AdamW
    from scratchnet.recipes import PixelSpace
    from scratchnet.schedules import OneCycle

    run = cli_train.prepare_run(train_args(
        "--dataset", "patterns", "--model", "tiny_cnn", "--limit", "100", "--recipe", "torch_small_cnn",
        "--optimizer", "adamw", "--weight-decay", "0.02", "--lr", "0.003", "--schedule", "onecycle",
        "--label-smoothing", "0.1", "--epochs", "2", "--batch-size", "30", "--augment", "flax"))
    optimizer = run.model.optimizer
    assert type(optimizer) is AdamW and optimizer.weight_decay == 0.02
    assert type(optimizer.schedule) is OneCycle
    assert (optimizer.schedule.max_lr, optimizer.schedule.total_steps) == (0.003, 2 * 3)   # 90 / 30
    assert run.model.loss.label_smoothing == 0.1
    # the recipe's "standard" (crop, flip) overridden: flax's flip and resized crop ("strong" jitters
    # colour, which these grey patterns refuse)
    flip, resized_crop = run.augment.transform.transforms
    assert type(run.augment) is PixelSpace and type(resized_crop).__name__ == "RandomResizedCrop"
    x_fit = run.raw_fit                       # standardised with the 90 fitted images' statistics
    np.testing.assert_allclose(run.model.preprocessing["mean"], x_fit.mean(axis=(0, 1, 2)), atol=1e-6)
    np.testing.assert_allclose(run.fit[0].mean(axis=(0, 1, 2)), 0.0, atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--label-smoothing", "1.5"], "--label-smoothing must be in [0, 1), got 1.5"),
    (["--momentum", "-0.5"], "--momentum must be >= 0, got -0.5"),
    (["--momentum", "1"], "--momentum must be < 1, got 1.0 (SGD diverges with momentum >= 1)"),
    (["--weight-decay", "-1"], "--weight-decay must be >= 0, got -1.0"),
])
def test_bad_recipe_values_exit_2_naming_the_flag(capsys, argv, message, tmp_path):
    assert cli.main(["train", "--limit", "50", "--out", str(tmp_path), *argv]) == 2
    assert capsys.readouterr().err == f"scratchnet train: {message}\n"


def test_strong_augmentation_on_grey_images_exits_2_naming_the_flag(capsys, tmp_path):
    """'strong' jitters colour: on 1-channel images it crashed in the first batch with a traceback."""
    argv = ["train", "--dataset", "patterns", "--augment", "strong", "--limit", "50", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == ("scratchnet train: --augment strong: augmentation 'strong' jitters "
                                       "colour and needs RGB images (3 channels), got 1; use 'standard' "
                                       "(crop and flip) instead\n")


def test_help_lists_the_recipe_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--recipe", "--optimizer", "--weight-decay", "--label-smoothing", "--augment", "--schedule",
                 "--val-fraction", "(default: from the recipe)"):
        assert flag in out
    for command in ("evaluate", "predict"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "MODEL" in capsys.readouterr().out


def test_gradcheck_command_covers_every_exported_layer():
    from scratchnet import layers
    from scratchnet.layers.base import iter_layers

    covered = {type(inner).__name__ for _, layer, *_ in cli.gradcheck_cases()
               for inner in iter_layers([layer])}
    exported = set(layers.__all__) - {"Layer"}
    assert exported - covered == set(), f"scratchnet gradcheck does not check {sorted(exported - covered)}"


def test_a_closed_pipe_ends_the_command_quietly():
    # `scratchnet exercise list | head -1`: the reader leaves early; no traceback, exit 141 (SIGPIPE).
    # Without PYTHONUNBUFFERED (set on some machines, not on most), where stdout is flushed at exit.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    process = subprocess.Popen([sys.executable, "-m", "scratchnet", "exercise", "list"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.stdout.close()                                  # nobody reads: the first write fails
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) in (0, 141)            # 0 if everything fit in the pipe first
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
