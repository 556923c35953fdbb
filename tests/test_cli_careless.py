"""The `scratchnet` command used carelessly: each mistake gets one clear line and an exit code (2 for a
usage mistake, 1 for a failure, 130 for Ctrl-C), never a traceback; a run is not thrown away."""

import io
import json
import sys
import zipfile

import numpy as np
import pytest

import scratchnet
from scratchnet import cli, cli_train

TINY_RUN = ["train", "--model", "tiny_cnn", "--epochs", "1", "--limit", "100"]


def exits_with(argv, code, capsys):
    """cli.main(argv) returns (or argparse exits with) ``code``; returns what went to stderr."""
    try:
        returned = cli.main(argv)
    except SystemExit as info:
        returned = info.code
    assert returned == code
    return capsys.readouterr().err


# ---------------------------------------------------------------------- 1. no traceback
def test_evaluate_out_a_file_is_refused_before_evaluating(tmp_path, digit_model, capsys, monkeypatch):
    (tmp_path / "t.txt").write_text("x")

    def no_data(args):
        raise AssertionError("the data was loaded before --out was checked")

    monkeypatch.setattr(cli_train, "load_data", no_data)
    err = exits_with(["evaluate", str(digit_model), "--out", str(tmp_path / "t.txt")], 2, capsys)
    assert err == (f"scratchnet evaluate: --out {tmp_path / 't.txt'}: is a file, not a folder; give a folder "
                   "for the results\n")


@pytest.mark.parametrize("argv, message", [
    (["--lr", "inf"], "argument --lr: must be a finite number > 0, got inf"),
    (["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
])
def test_train_option_types_refuse_inf_and_negative_seeds(argv, message, capsys):
    assert message in exits_with(["train", *argv], 2, capsys)


@pytest.mark.parametrize("argv, message", [
    (["--momentum", "nan"], "--momentum must be a finite number, got nan"),
    (["--weight-decay", "inf"], "--weight-decay must be a finite number, got inf"),
    (["--momentum", "0.5", "--optimizer", "adam"],
     "--momentum is for --optimizer sgd; adam has no momentum (leave --momentum out, or add "
     "--optimizer sgd)"),
    (["--out", ""], "--out is empty; give a folder for the results, e.g. --out runs/first"),
    (["--augment", "strong"], "--augment strong: augmentation 'strong' jitters colour and needs RGB images "
     "(3 channels), got 1; use 'digits' (shifts and small rotations, no flips) instead"),
    (["--data-dir", "data/mnist"], "--data-dir data/mnist: --dataset mnist-sample is bundled with "
     "scratchnet and reads no folder; --data-dir is for --dataset mnist or cifar10"),
    (["--dataset", "patterns", "--data-dir", "x"], "--data-dir x: --dataset patterns is generated and reads "
     "no folder; --data-dir is for --dataset mnist or cifar10"),
])
def test_train_values_that_cannot_work_exit_2(argv, message, tmp_path, capsys):
    argv = [*TINY_RUN, "--out", str(tmp_path), *argv] if "--out" not in argv else [*TINY_RUN, *argv]
    assert exits_with(argv, 2, capsys) == f"scratchnet train: {message}\n"


def test_train_out_in_an_unknown_users_home_exits_2(capsys):
    err = exits_with([*TINY_RUN, "--out", "~no_such_user_scratchnet/x"], 2, capsys)
    assert err.startswith("scratchnet train: --out ~no_such_user_scratchnet/x: cannot find the home folder "
                          "of '~no_such_user_scratchnet'")


def test_an_optimizer_refusing_the_recipe_is_a_usage_error(tmp_path, capsys, monkeypatch):
    from scratchnet import recipes

    def refuse(recipe, steps_per_epoch):
        raise ValueError("lr must be finite")

    monkeypatch.setattr(recipes, "build_optimizer", refuse)
    err = exits_with([*TINY_RUN, "--out", str(tmp_path)], 2, capsys)
    assert err == "scratchnet train: lr must be finite\n"


def test_exercise_check_of_a_folder_or_binary_file_exits_1(tmp_path, capsys):
    err = exits_with(["exercise", "check", str(tmp_path), "--name", "relu"], 1, capsys)
    assert err == f"scratchnet exercise check: {tmp_path}: cannot read (Is a directory)\n"
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY\xff\xfe")
    err = exits_with(["exercise", "check", str(tmp_path / "x.npy")], 1, capsys)
    assert err.startswith(f"scratchnet exercise check: {tmp_path / 'x.npy'}: cannot read (not a text file: ")


def test_exercise_start_into_a_missing_folder_exits_1(tmp_path, capsys):
    target = tmp_path / "nodir" / "x.py"
    err = exits_with(["exercise", "start", "relu", "--out", str(target)], 1, capsys)
    assert err == f"scratchnet exercise start: {target}: cannot write (No such file or directory)\n"


def test_gradcheck_of_a_file_that_is_not_python_or_fails_to_import(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("class X: pass\n")
    err = exits_with(["gradcheck", f"{tmp_path / 't.txt'}:X"], 2, capsys)
    assert err == f"scratchnet gradcheck: {tmp_path / 't.txt'}: not a Python .py file\n"
    (tmp_path / "syn.py").write_text("x = 1\ndef f(:\n")
    err = exits_with(["gradcheck", f"{tmp_path / 'syn.py'}:X"], 1, capsys)
    assert err == (f"scratchnet gradcheck: {tmp_path / 'syn.py'}: importing the file raised SyntaxError: "
                   "invalid syntax (syn.py line 2)\n")
    (tmp_path / "boom.py").write_text("x = 1\nraise RuntimeError('boom')\n")
    err = exits_with(["gradcheck", f"{tmp_path / 'boom.py'}:X"], 1, capsys)
    assert err == (f"scratchnet gradcheck: {tmp_path / 'boom.py'}: importing the file raised RuntimeError: "
                   "boom (boom.py line 2, in <module>)\n")


def test_a_file_calling_sys_exit_at_import_is_reported(tmp_path, capsys):
    (tmp_path / "quit.py").write_text("# scratchnet exercise: relu\nimport sys\nsys.exit(3)\n")
    assert cli.main(["exercise", "check", str(tmp_path / "quit.py")]) == 1
    assert "quit.py: importing the file raised SystemExit: 3 (quit.py line 3, in <module>)" in \
        capsys.readouterr().out
    err = exits_with(["gradcheck", f"{tmp_path / 'quit.py'}:ReLU"], 1, capsys)
    assert "importing the file raised SystemExit: 3 (quit.py line 3, in <module>)" in err


# ---------------------------------------------------------------------- 2. Ctrl-C
def test_ctrl_c_during_the_report_keeps_model_and_history(tmp_path, capsys, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_train, "write_results", interrupted)
    out = tmp_path / "run"
    err = exits_with([*TINY_RUN, "--optimizer", "sgd", "--out", str(out)], 130, capsys)
    assert err == (f"\nStopped: skipped the report and figures; model.sn and history.json saved in "
                   f"{out}\n")
    record = json.loads((out / "history.json").read_text())
    assert record["epochs_completed"] == 1 and record["test_accuracy"] is None
    assert scratchnet.load(out / "model.sn").epochs_trained == 1
    assert sorted(path.name for path in out.iterdir()) == ["history.json", "model.sn"]


def test_ctrl_c_anywhere_else_is_one_line_and_exit_130(capsys, monkeypatch):
    def interrupted(parser, args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_command", interrupted)
    assert exits_with(["summary"], 130, capsys) == "\nscratchnet: interrupted\n"


def test_the_recipe_line_shows_sgds_momentum(tmp_path, capsys):
    assert cli.main([*TINY_RUN, "--optimizer", "sgd", "--momentum", "0.8", "--out", str(tmp_path)]) == 0
    recipe_line = [line for line in capsys.readouterr().out.splitlines() if line.startswith("recipe ")][0]
    assert "recipe mnist: sgd lr " in recipe_line and ", momentum 0.8, label smoothing" in recipe_line


# ---------------------------------------------------------------------- 3. the same --out twice
def test_a_second_run_into_the_same_folder_removes_the_first_runs_figures(tmp_path, capsys):
    for name in ("model.sn", "history.json", "health.png", "curves.png", "mine.txt"):
        (tmp_path / name).write_text("earlier")
    cli_train.clear_earlier_run(tmp_path)
    assert capsys.readouterr().out == (f"note: {tmp_path} holds an earlier run: its model.sn and "
                                       "history.json will be replaced and its figures removed "
                                       "(curves.png, health.png)\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["history.json", "mine.txt", "model.sn"]
    (tmp_path / "model.sn").unlink()
    (tmp_path / "curves.png").write_text("not a run's")
    cli_train.clear_earlier_run(tmp_path)                     # no model.sn: not a run folder, left alone
    assert (tmp_path / "curves.png").exists() and capsys.readouterr().out == ""


# ---------------------------------------------------------------------- 4. a closed pipe
class ClosedPipe(io.StringIO):
    """stdout of `scratchnet train | head -2`: the reader leaves after two writes."""

    def write(self, text):
        if len(self.getvalue()) > 40:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_a_closed_pipe_does_not_throw_the_run_away(tmp_path, monkeypatch):
    pipe = ClosedPipe()
    monkeypatch.setattr(sys, "stdout", pipe)
    assert cli.main([*TINY_RUN, "--out", str(tmp_path)]) == 0
    assert sys.stdout is pipe                                  # put back after the command
    assert scratchnet.load(tmp_path / "model.sn").epochs_trained == 1
    assert json.loads((tmp_path / "history.json").read_text())["test_accuracy"] is not None
    assert (tmp_path / "confusion.png").exists()


# ---------------------------------------------------------------------- 5. predict's inputs
def test_predict_refuses_nan_empty_and_folder_inputs(tmp_path, digit_model, capsys):
    images = np.full((2, 28, 28, 1), 0.5, dtype=np.float32)
    images[1, 3, 4, 0] = np.nan
    np.save(tmp_path / "nan.npy", images)
    err = exits_with(["predict", str(digit_model), str(tmp_path / "nan.npy")], 1, capsys)
    assert err == (f"scratchnet predict: {tmp_path / 'nan.npy'}: 1 pixel value(s) are NaN or infinite; "
                   "pixels must be numbers in [0, 1]\n")
    np.save(tmp_path / "empty.npy", np.zeros((0, 28, 28, 1), dtype=np.float32))
    err = exits_with(["predict", str(digit_model), str(tmp_path / "empty.npy")], 1, capsys)
    assert err == f"scratchnet predict: {tmp_path / 'empty.npy'}: holds no images (shape (0, 28, 28, 1))\n"
    err = exits_with(["predict", str(digit_model), str(tmp_path)], 1, capsys)
    assert err == f"scratchnet predict: {tmp_path}: is a folder; give its files ({tmp_path}/*.png)\n"


def test_predict_refuses_a_regression_model_in_one_line(tmp_path, capsys):
    import scratchnet as sn
    from scratchnet.layers import Dense, Flatten
    model = sn.Sequential([Flatten(), Dense(3)], input_shape=(4, 4, 1), seed=0).compile("sgd", "mse")
    model.build().save(tmp_path / "regression.sn")
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 4, 1), dtype=np.float32))
    err = exits_with(["predict", str(tmp_path / "regression.sn"), str(tmp_path / "x.npy")], 1, capsys)
    assert err == (f"scratchnet predict: {tmp_path / 'regression.sn'}: predict needs a classifier, but the "
                   "model was trained with mse (a regression); load it in Python and call model.predict(x)\n")


def test_predict_of_a_one_output_binary_model_names_both_classes(tmp_path, capsys):
    """Dense(1) + binary_cross_entropy: its one probability is P(class 1); predict ranks both
    classes, [1 - p, p], instead of printing p under class 0's name."""
    import scratchnet as sn
    from scratchnet.layers import Dense, Flatten
    model = sn.Sequential([Flatten(), Dense(1)], input_shape=(2, 2, 1), seed=0)
    model.compile("sgd", "binary_cross_entropy").build()
    model.layers[1].params["W"][...] = 0.0
    model.layers[1].params["b"][...] = np.log(3.0)                 # sigmoid(log 3) = 3 / 4
    model.save(tmp_path / "binary.sn")
    np.save(tmp_path / "x.npy", np.zeros((1, 2, 2, 1), dtype=np.float32))
    assert cli.main(["predict", str(tmp_path / "binary.sn"), str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'x.npy'}: 1 (0.750)\n"    # was '0 (0.750)'
    assert cli.main(["predict", str(tmp_path / "binary.sn"), str(tmp_path / "x.npy"), "--top", "2"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'x.npy'}: 1 (0.750), 0 (0.250)\n"


def test_a_wrong_size_rgb_png_is_refused_without_the_grey_note(tmp_path, digit_model, capsys):
    import matplotlib.image

    matplotlib.image.imsave(tmp_path / "big.png", np.zeros((64, 64, 3)))
    err = exits_with(["predict", str(digit_model), str(tmp_path / "big.png")], 1, capsys)
    assert err == (f"scratchnet predict: {tmp_path / 'big.png'}: the model expects images of shape "
                   "(N, 28, 28, 1) or (28, 28, 1) as (height, width, channels), got (1, 64, 64, 3)\n")


# ---------------------------------------------------------------------- 6. messages
def test_load_names_a_pytorch_checkpoint(tmp_path):
    with zipfile.ZipFile(tmp_path / "net.pt", "w") as archive:   # what torch.save writes
        archive.writestr("net/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("net/version", b"3\n")
    with pytest.raises(scratchnet.SerializationError) as info:
        scratchnet.load(tmp_path / "net.pt")
    assert str(info.value) == (f"{tmp_path / 'net.pt'}: not a scratchnet model file (wrong magic) (it is a "
                               "PyTorch checkpoint (torch.save): see scratchnet.interop.from_torch / "
                               "load_torch_state_dict)")
    np.savez(tmp_path / "w.npz", a=np.zeros(2))                  # a weights file keeps its hint
    with pytest.raises(scratchnet.SerializationError, match=r"looks like a \.npz weights file"):
        scratchnet.load(tmp_path / "w.npz")


def test_evaluate_of_a_run_folder_names_its_model_file(tmp_path, digit_model, capsys):
    run = tmp_path / "run"
    run.mkdir()
    err = exits_with(["evaluate", str(run)], 1, capsys)
    assert err == f"scratchnet evaluate: {run}: is a folder; give the model file (.sn) in it\n"
    digit_model.rename(run / "model.sn")
    err = exits_with(["evaluate", str(run)], 1, capsys)
    assert err == f"scratchnet evaluate: {run}: is a folder; did you mean {run / 'model.sn'}?\n"


def test_exercise_check_name_has_choices(tmp_path, capsys):
    err = exits_with(["exercise", "check", str(tmp_path / "x.py"), "--name", "nope"], 2, capsys)
    assert "argument --name: invalid choice: 'nope' (choose from 'dense_backward', 'relu'" in err


def test_cifar_advice_names_the_data_dir_flag_once():
    from scratchnet.cli_args import cli_wording
    from scratchnet.datasets.cifar import _offline_advice

    advice = cli_wording(_offline_advice(None))
    assert "(or into any folder given with --data-dir, or set $SCRATCHNET_DATA)." in advice
    assert "root=" not in advice and "--data-dir  " not in advice


# ---------------------------------------------------------------------- 8, 9. help, no command
def help_of(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_the_seed_default_and_describes_every_command(capsys):
    train_help = help_of(["train"], capsys)
    assert "the validation split is fixed (the last training images) (default: 0)" in train_help
    assert "from the recipe: (default: 10) on MNIST and patterns (the mnist recipe)" in train_help
    assert "parameter counts for one input shape" in help_of(["summary"], capsys)
    assert "as `scratchnet exercise list` shows it" in help_of(["exercise", "start"], capsys)
    assert "your exercise file (.py)" in help_of(["exercise", "check"], capsys)
    assert "Images are not resized" in help_of(["predict"], capsys)


def test_no_command_is_a_usage_mistake(capsys):
    assert "usage: scratchnet" in exits_with([], 2, capsys)
    err = exits_with(["exercise"], 2, capsys)
    assert err == "usage: scratchnet exercise {list, start NAME, check FILE}\n"


def test_ctrl_c_in_fit_then_again_in_the_report_says_again(tmp_path, capsys, monkeypatch):
    from scratchnet.model import Sequential

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Sequential, "train_step", interrupted)     # the first Ctrl-C, in fit
    monkeypatch.setattr(cli_train, "write_results", interrupted)   # the second, in the report
    out = tmp_path / "run"
    err = exits_with([*TINY_RUN, "--out", str(out)], 130, capsys)
    assert err.endswith(f"\nStopped again: skipped the report and figures; model.sn and history.json saved "
                        f"in {out}\n")
    record = json.loads((out / "history.json").read_text())
    assert record["interrupted"] is True and record["epochs_completed"] == 0
