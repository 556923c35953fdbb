"""The `scratchnet` command in the terminals, logs and signals a class runs it in: a stdout that is
not UTF-8, no PYTHONUNBUFFERED, no stdout at all, SIGTERM from a CI timeout or `timeout 60`.

The commands run in subprocesses (as a student starts them), with PYTHONUNBUFFERED removed from
their environment: this machine sets it, most do not."""

import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import scratchnet
from scratchnet import models

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_RUN = ["train", "--model", "tiny_cnn", "--epochs", "1", "--limit", "100"]


def child_env(**changes):
    """os.environ without PYTHONUNBUFFERED, this checkout importable, plus ``changes``."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**env, **changes}


def scratchnet_cli(args, cwd, **env_changes):
    return subprocess.run([sys.executable, "-m", "scratchnet", *args], cwd=cwd, env=child_env(**env_changes),
                          capture_output=True, timeout=300)


# ---------------------------------------------------------------------- a stdout that is not UTF-8
def test_predict_of_a_non_ascii_path_on_a_cp1252_stdout(tmp_path, digit_model):
    np.save(tmp_path / "imgs_日本.npy", np.zeros((2, 28, 28, 1), dtype=np.uint8))
    result = scratchnet_cli(["predict", str(digit_model), "imgs_日本.npy"], tmp_path,
                            PYTHONIOENCODING="cp1252")
    assert result.returncode == 0, result.stderr.decode("cp1252")
    lines = result.stdout.decode("cp1252").splitlines()
    # the characters cp1252 lacks are written as Python escapes, the rest of the line as it is
    assert [line.split(":")[0] for line in lines] == ["imgs_\\u65e5\\u672c.npy[0]",
                                                      "imgs_\\u65e5\\u672c.npy[1]"]


def test_train_into_a_non_ascii_folder_on_an_ascii_stdout(tmp_path):
    out = tmp_path / "rün café 'q'"
    result = scratchnet_cli([*TINY_RUN, "--out", str(out)], tmp_path, PYTHONIOENCODING="ascii")
    stdout = result.stdout.decode("ascii")
    assert result.returncode == 0, result.stderr.decode("ascii")
    assert "r\\xfcn caf\\xe9" in stdout and "Test accuracy" in stdout
    assert scratchnet.load(out / "model.sn").epochs_trained == 1
    # the load line is Python that works, whatever the path holds (quotes, backslashes on Windows)
    load_call = stdout.split("(load with ")[1].rsplit(")", 1)[0]
    expected = f"scratchnet.load({str(out / 'model.sn')!r})"
    assert load_call == expected.encode("ascii", "backslashreplace").decode()
    assert eval(load_call.replace("scratchnet.load", ""), {}) == str(out / "model.sn")


def test_exercise_start_quotes_a_path_with_spaces(tmp_path):
    result = scratchnet_cli(["exercise", "start", "relu", "--out", "my ex.py"], tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert "scratchnet exercise check 'my ex.py'" in result.stdout.decode()


def test_library_output_of_summary_and_gradcheck_is_ascii(capsys):
    from scratchnet.gradcheck import check_layer
    from scratchnet.layers import Dense

    models.lenet5().summary()
    print(check_layer(Dense(3), (4,), progress=False))
    out = capsys.readouterr().out
    assert out.isascii(), sorted({character for character in out if not character.isascii()})


# ---------------------------------------------------------------------- buffering and closed pipes
def test_stdout_is_line_buffered_in_a_log(tmp_path):
    # a line printed to stdout reaches the log before a later line on stderr
    code = ("import sys\nfrom scratchnet import cli\n"
            "cli.main(['exercise', 'list'])\n"
            "print('the end, on stderr', file=sys.stderr)\n")
    with open(tmp_path / "log", "wb") as log:
        subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=child_env(), stdout=log,
                       stderr=subprocess.STDOUT, timeout=300, check=True)
    lines = (tmp_path / "log").read_text().splitlines()
    assert lines[-1] == "the end, on stderr" and "start one with:" in lines[-2]


# ---------------------------------------------------------------------- no stdout at all
@pytest.mark.skipif(os.name != "posix", reason="closes stdout with the shell's >&-")
def test_train_with_stdout_closed(tmp_path):
    # `scratchnet train >&-` (and pythonw.exe): sys.stdout is None; the run is trained and saved
    command = [sys.executable, "-m", "scratchnet", *TINY_RUN, "--out", "run", "--epochs", "2"]
    result = subprocess.run(["sh", "-c", '"$@" >&-', "sh", *command], cwd=tmp_path, env=child_env(),
                            stderr=subprocess.PIPE, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    assert scratchnet.load(tmp_path / "run" / "model.sn").epochs_trained == 2


# ---------------------------------------------------------------------- gradcheck --figure
@pytest.mark.parametrize("figure, message", [
    ("no_such_folder/x.png", "--figure no_such_folder/x.png: no folder no_such_folder"),
    ("fig.txt", "--figure fig.txt: matplotlib cannot write '.txt' files"),
    ("fig", "--figure fig: end the name with the file's type, e.g. fig.png"),
])
def test_gradcheck_figure_in_a_missing_folder_or_of_an_unknown_type_exits_2(tmp_path, capsys, monkeypatch,
                                                                          figure, message):
    from scratchnet import cli

    layer_file = tmp_path / "wrong.py"
    layer_file.write_text("from scratchnet.layers import Dense\n\nclass Wrong(Dense):\n"
                          "    def backward(self, dy):\n        return 2 * super().backward(dy)\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["gradcheck", f"{layer_file}:Wrong", "--input-shape", "3", "--config", '{"units": 2}',
                     "--figure", figure]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"scratchnet gradcheck: {message}") and len(captured.err.splitlines()) == 1
    assert captured.out == ""                                  # refused before the check runs


# ---------------------------------------------------------------------- SIGTERM, SIGHUP
@pytest.mark.skipif(os.name != "posix", reason="SIGTERM and SIGHUP are sent with os.kill on POSIX")
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_during_training_saves_the_model_as_ctrl_c_does(tmp_path, name):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.sn").write_bytes(b"the earlier run's model")
    (out / "curves.png").write_bytes(b"the earlier run's figure")
    process = subprocess.Popen([sys.executable, "-m", "scratchnet", "train", "--model", "tiny_cnn",
                                "--epochs", "200", "--limit", "200", "--out", str(out)],
                               cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in process.stdout:                       # the first finished epoch: training is under way
        if line.startswith(b"Epoch 1/200"):
            break
    process.send_signal(getattr(signal, name))
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + getattr(signal, name), stderr.decode()
    assert f"scratchnet train: stopped by {name}" in stderr.decode()
    assert b"saving the model trained so far" in stdout
    saved = scratchnet.load(out / "model.sn")
    assert 1 <= saved.epochs_trained < 200
    history = json.loads((out / "history.json").read_text())
    assert history["interrupted"] is True and history["epochs_completed"] == saved.epochs_trained


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this system")
def test_sigterm_is_held_during_the_optimizer_step_and_handlers_are_restored():
    from scratchnet.interruptions import finish_step_before_ctrl_c, signals_stop_like_ctrl_c

    before = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGHUP)}
    steps_finished = []
    with pytest.raises(KeyboardInterrupt):
        with signals_stop_like_ctrl_c() as received:
            with finish_step_before_ctrl_c():
                os.kill(os.getpid(), signal.SIGTERM)   # half way through the step
                steps_finished.append("the rest of the step")
            steps_finished.append("the next step")     # not reached: the held signal stops here
    assert steps_finished == ["the rest of the step"] and received == [signal.SIGTERM]
    assert {number: signal.getsignal(number) for number in before} == before


def test_an_ignored_sighup_stays_ignored(monkeypatch):
    # `nohup scratchnet train &`: the user asked for the run to outlive the terminal
    from scratchnet.interruptions import signals_stop_like_ctrl_c

    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None:
        pytest.skip("no SIGHUP on this system")
    previous = signal.signal(hangup, signal.SIG_IGN)
    try:
        with signals_stop_like_ctrl_c():
            assert signal.getsignal(hangup) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        signal.signal(hangup, previous)


# ---------------------------------------------------------------------- the progress bar
class Terminal:
    """A stream that says it is a terminal and keeps what was written."""

    def __init__(self):
        self.written = []

    def write(self, text):
        self.written.append(text)

    def flush(self):
        pass

    def isatty(self):
        return True


def narrow_terminal(monkeypatch, columns):
    """shutil.get_terminal_size() says ``columns``; the bar's clock stands still (0.0 s elapsed)."""
    import shutil

    from scratchnet import progress

    monkeypatch.setattr(shutil, "get_terminal_size",
                        lambda fallback=(80, 24): os.terminal_size((columns, 24)))
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(perf_counter=lambda: 100.0))


def test_progress_bar_redraws_one_row_of_a_narrow_terminal(monkeypatch):
    from scratchnet.progress import ProgressBar

    narrow_terminal(monkeypatch, 40)
    terminal = Terminal()
    bar = ProgressBar(200, "Epoch 10/10", stream=terminal)
    bar.update(1, {"loss": 2.345678, "accuracy": 0.123456})
    bar.last_draw = 0.0                                           # redraw now (no waiting in a test)
    bar.update(2, {})                                             # a shorter line than the first
    first, second = terminal.written
    # 39 characters: the cursor stays on the row, so "\r" goes back to its start (no wrapping)
    assert first == "\rEpoch 10/10 [----------] 1/200   0.0s l"
    # the bar takes back what fits (11); a space to the end of the row (none here, the trailing
    # one is the line's own) clears what the longer first line left on screen
    assert second == "\rEpoch 10/10 [-----------] 2/200   0.0s "
    assert len(first) == len(second) == 40
    narrow_terminal(monkeypatch, 80)                              # a line shorter than the row
    bar.last_draw = 0.0
    bar.update(3, {})
    assert terminal.written[2] == "\rEpoch 10/10 [" + "-" * 30 + "] 3/200   0.0s " + " " * 21  # 79 in all


def test_progress_bar_shortens_the_bar_before_cutting_the_numbers(monkeypatch):
    from scratchnet.progress import ProgressBar

    narrow_terminal(monkeypatch, 70)
    terminal = Terminal()
    bar = ProgressBar(200, "Epoch 1/10", stream=terminal)
    bar.update(100, {"loss": 0.5, "accuracy": 0.75})
    bar.close({"loss": 0.5, "accuracy": 0.75, "val_loss": 0.25, "val_accuracy": 0.875})
    # 56 characters besides the bar: 13 left of 69, half of them done
    assert terminal.written[0] == "\rEpoch 1/10 [######-------] 100/200   0.0s loss 0.5000 accuracy 0.7500"
    # the epoch's last line keeps every number (the bar at its shortest, 10), even past the row
    assert terminal.written[1] == ("\rEpoch 1/10 [##########] 200/200   0.0s loss 0.5000 accuracy 0.7500 "
                                   "val_loss 0.2500 val_accuracy 0.8750\n")


def test_progress_bar_in_a_log_file_is_unchanged(monkeypatch):
    from scratchnet.progress import ProgressBar

    narrow_terminal(monkeypatch, 40)
    log = Terminal()
    log.isatty = lambda: False
    bar = ProgressBar(4, "Epoch 1/1", stream=log)
    bar.update(2, {"loss": 1.0})
    bar.close({"loss": 1.0, "accuracy": 0.5})
    assert log.written == ["Epoch 1/1 [" + "#" * 30 + "] 4/4   0.0s loss 1.0000 accuracy 0.5000\n"]


def test_progress_bar_with_no_stdout_draws_nothing(monkeypatch):
    # pythonw.exe, `python train.py >&-`: sys.stdout is None; fit goes on without a bar
    x = np.random.default_rng(0).normal(size=(64, 3))
    y = (x[:, 0] > 0).astype(int)
    model = scratchnet.Sequential([scratchnet.layers.Dense(2)], input_shape=(3,), seed=0).compile("sgd")
    monkeypatch.setattr(sys, "stdout", None)
    history = model.fit(x, y, epochs=3, batch_size=16)
    assert len(history.history["loss"]) == 3 and model.epochs_trained == 3


def test_a_notebooks_stream_gets_a_live_bar_redrawn_less_often(monkeypatch):
    from scratchnet import progress

    class OutStream(Terminal):                        # ipykernel.iostream.OutStream: isatty() is False
        def isatty(self):
            return False

    OutStream.__module__ = "ipykernel.iostream"
    narrow_terminal(monkeypatch, 40)                  # what shutil says in a kernel: not the page's width
    clock = [0.0]                                     # seconds, moved by hand
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    terminal, notebook = Terminal(), OutStream()
    for stream in (terminal, notebook):
        clock[0] = 0.0
        bar = progress.ProgressBar(10, "Epoch 1/1", stream=stream)
        for done, seconds in ((1, 1.0), (2, 1.3), (3, 1.6)):
            clock[0] = seconds
            bar.update(done, {"loss": 1.0, "accuracy": 0.5})
    assert len(terminal.written) == 3                 # 0.3 s apart: redrawn each time on a terminal,
    assert len(notebook.written) == 2                 # at most every 0.5 s in a notebook (stored output)
    # the whole line, not cut to a terminal's row
    assert notebook.written[0] == ("\rEpoch 1/1 [###---------------------------] 1/10   1.0s "
                                   "loss 1.0000 accuracy 0.5000")


def test_scratchnet_train_run_from_a_notebook_draws_a_live_bar(tmp_path, monkeypatch):
    # cli.main(["train", ...]) in a notebook cell: the bar sees train's PipeSafeStdout around
    # ipykernel's stream and still redraws in place, at the notebook's pace, uncut
    from scratchnet import cli, progress

    class OutStream(Terminal):                        # ipykernel.iostream.OutStream: isatty() is False
        def isatty(self):
            return False

    OutStream.__module__ = "ipykernel.iostream"
    bar = progress.ProgressBar(10, "Epoch 1/1", stream=cli.PipeSafeStdout(OutStream()))
    assert bar.interactive and bar.redraw_every == progress.NOTEBOOK_REDRAW_EVERY and not bar.fit_to_row
    notebook = OutStream()
    monkeypatch.setattr(sys, "stdout", notebook)
    assert cli.main(TINY_RUN + ["--out", str(tmp_path / "run")]) == 0
    printed = "".join(notebook.written)
    assert "\rEpoch 1/1 [" + "#" * 30 + "] 2/2" in printed       # the bar's last redraw, in place


# ---------------------------------------------------------------------- minor: help, exit codes, HOME
def test_every_commands_help_fits_an_80_column_terminal(tmp_path):
    for command in ("train", "evaluate", "predict", "gradcheck", "summary", "exercise"):
        result = scratchnet_cli([command, "--help"], tmp_path, COLUMNS="80")
        lines = result.stdout.decode().splitlines()
        assert result.returncode == 0 and len(lines) > 3
        assert max(map(len, lines)) <= 80, (command, max(lines, key=len))
    top = scratchnet_cli(["--help"], tmp_path, COLUMNS="80").stdout.decode()
    assert "\n  scratchnet train --model lenet5   LeNet-5" in top    # the examples keep their lines


def test_a_file_that_does_not_exist_is_a_usage_mistake_in_every_command(tmp_path, digit_model, capsys):
    from scratchnet import cli

    missing = str(tmp_path / "nothing_here")
    for argv in (["predict", missing + ".sn", missing + ".npy"],
                 ["predict", str(digit_model), missing + ".npy"], ["evaluate", missing + ".sn"],
                 ["gradcheck", missing + ".py:X"], ["exercise", "check", missing + ".py"]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "nothing_here" in err and ("no such" in err or "No such" in err)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_train_from_a_read_only_folder_names_the_default_out_folder(tmp_path, capsys, monkeypatch):
    from scratchnet import cli

    tmp_path.chmod(0o555)
    monkeypatch.chdir(tmp_path)
    try:
        assert cli.main(TINY_RUN) == 2
    finally:
        tmp_path.chmod(0o755)
    err = capsys.readouterr().err
    assert err.startswith("scratchnet train: the default output folder runs/") and "--out FOLDER" in err


def test_train_out_in_a_folder_that_cannot_be_created_names_the_default(tmp_path, capsys, monkeypatch):
    # as above, for root too: runs/ is a file here, so runs/<date-time> cannot be created
    from scratchnet import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("not a folder")
    assert cli.main(TINY_RUN) == 2
    err = capsys.readouterr().err
    assert err.startswith("scratchnet train: the default output folder runs/")
    assert "cannot create the output folder" in err and err.rstrip().endswith("choose one with --out FOLDER")


def test_no_home_folder_is_no_obstacle_when_the_data_folder_is_given(tmp_path, monkeypatch):
    # HOME unset and a user id with no passwd entry (a container's): Path.home() raises RuntimeError
    from scratchnet.datasets import DataNotFoundError, load_mnist
    from scratchnet.datasets.common import search_dirs

    def no_home(cls):
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", classmethod(no_home))
    monkeypatch.delenv("SCRATCHNET_DATA", raising=False)
    assert search_dirs(tmp_path, "mnist") == [tmp_path, tmp_path / "mnist"]
    with pytest.raises(DataNotFoundError, match="no home folder.*set SCRATCHNET_DATA or pass the folder as"):
        search_dirs(None, "mnist")
    with pytest.raises(DataNotFoundError):                     # said as a dataset problem (CLI: exit 1)
        load_mnist("test", download=False)
