"""When the output goes away under `scratchnet train` (the terminal window is closed, the reader
of a pipe leaves) the run is still saved; and cli.main gives a calling script its stdout back as it
found it."""

import errno
import io
import json
import os
import select
import signal
import sys
import time

import pytest
from test_cli_terminals import child_env

import scratchnet
from scratchnet.cli import PipeSafeStdout


def read_until(terminal, text, seconds=120):
    """What the child printed to the pseudo-terminal ``terminal`` (a file descriptor), up to ``text``."""
    seen, end = b"", time.monotonic() + seconds
    while text not in seen and time.monotonic() < end:
        if select.select([terminal], [], [], 0.5)[0]:
            seen += os.read(terminal, 4096)
    assert text in seen, seen.decode(errors="replace")
    return seen


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux pseudo-terminal")
def test_closing_the_terminal_saves_the_model(tmp_path):
    # the terminal window closes: SIGHUP, and every later print to it fails with EIO (not EPIPE)
    # POSIX only (pty needs termios, which Windows lacks)
    import pty

    out = tmp_path / "run"
    pid, terminal = pty.fork()                        # stdout and stderr both on the terminal
    if pid == 0:
        try:
            os.chdir(tmp_path)
            os.execve(sys.executable, [sys.executable, "-m", "scratchnet", "train", "--dataset", "patterns",
                                       "--model", "mlp", "--epochs", "200", "--limit", "300", "--threads",
                                       "1", "--out", str(out)], child_env())
        finally:
            os._exit(127)                             # never back into pytest in the child
    try:
        read_until(terminal, b"Epoch 2/200")          # the first epoch finished: training is under way
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(terminal)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGHUP
    saved = scratchnet.load(out / "model.sn")
    assert 1 <= saved.epochs_trained < 200
    history = json.loads((out / "history.json").read_text())
    assert history["interrupted"] is True and history["epochs_completed"] == saved.epochs_trained


def test_pipe_safe_stdout_drops_output_gone_but_not_a_full_disk():
    class Failing:
        def __init__(self, number):
            self.number = number

        def write(self, text):
            raise OSError(self.number, os.strerror(self.number))

        flush = write

    for number in (errno.EPIPE, errno.EIO):            # a pipe's reader left, a terminal closed
        wrapped = PipeSafeStdout(Failing(number))
        assert wrapped.write("epoch 3\n") == 8 and wrapped.pipe_closed
        wrapped.write("more")                          # now to /dev/null
        wrapped.flush()
        wrapped.stream.close()
    with pytest.raises(OSError, match="No space left"):  # a log on a full disk is still said
        PipeSafeStdout(Failing(errno.ENOSPC)).write("epoch 3\n")


@pytest.mark.parametrize("argv", [["summary", "--model", "mlp"], ["summary", "--help"]])
def test_cli_main_gives_the_callers_stdout_back_as_it_was(monkeypatch, argv):
    # a script or REPL that calls cli.main (--help too: SystemExit): its stdout keeps its own
    # errors and buffering afterwards; main line-buffers and backslash-replaces only meanwhile
    from scratchnet import cli

    def settings(stream):
        return stream.errors, stream.line_buffering

    during = []
    real_run_command = cli.run_command
    monkeypatch.setattr(cli, "run_command", lambda *args: during.append(settings(sys.stdout))
                        or real_run_command(*args))
    callers = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="strict", line_buffering=False)
    monkeypatch.setattr(sys, "stdout", callers)
    try:
        cli.main(argv)
    except SystemExit:                                 # --help
        pass
    assert during in ([("backslashreplace", True)], [])
    assert settings(callers) == ("strict", False)
    callers.flush()
    assert (b"usage:" if "--help" in argv else b"Dense") in callers.buffer.getvalue()
    set_already = io.TextIOWrapper(io.BytesIO(), errors="backslashreplace", line_buffering=True)
    monkeypatch.setattr(sys, "stdout", set_already)    # what main sets already: left as it is
    cli.main(["summary", "--model", "mlp"])
    assert settings(set_already) == ("backslashreplace", True)
