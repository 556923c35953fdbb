"""A dependency-free text progress bar for ``Sequential.fit``.

It is created inside ``fit`` and never stored on the model, so models stay picklable.
On a terminal (and in a Jupyter notebook) it redraws one line in place, cut to the terminal's
width: a line longer than the row would wrap, and "\\r" would then go back only to the start of
the last row, leaving a new row per redraw. When output goes to a file or a CI log it prints only
the finished line of each epoch; with no stdout at all (pythonw.exe, ``>&-``) it prints nothing.
"""

from __future__ import annotations

import shutil
import sys
import time

MIN_BAR_WIDTH = 10        # the bar gives up characters to the numbers down to this
REDRAW_EVERY = 0.1        # seconds between redraws on a terminal
# In a notebook each redraw is a message to the browser, and a notebook executed by nbclient or
# nbconvert stores every one: a 3-epoch fit of 563 steps (20-40 s) stored 34-68 redraws (3-5.5 kB)
# at 0.5 s, where the bar without redraws stored its 3 finished lines (0.4 kB).
NOTEBOOK_REDRAW_EVERY = 0.5


def underlying(stream):
    """The stream a wrapper writes to: `scratchnet train` puts sys.stdout in a cli.PipeSafeStdout,
    which keeps it as ``.stream``; any other stream as it is."""
    return getattr(stream, "stream", stream)


def in_notebook(stream) -> bool:
    """A Jupyter notebook's output (ipykernel's OutStream), wrapped or not."""
    return "ipykernel" in type(underlying(stream)).__module__


def is_interactive(stream) -> bool:
    """A terminal, or a Jupyter notebook's output (ipykernel's OutStream says isatty() False but
    shows "\\r" redraws in place)."""
    if in_notebook(stream):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


class ProgressBar:
    def __init__(self, total: int, title: str, width: int = 30, stream=None):
        self.total = max(int(total), 1)
        self.title = title
        self.width = width
        self.stream = stream if stream is not None else sys.stdout   # None: no stdout, no bar
        self.interactive = self.stream is not None and is_interactive(self.stream)
        notebook = in_notebook(self.stream)  # no stdout (None): False
        self.redraw_every = NOTEBOOK_REDRAW_EVERY if notebook else REDRAW_EVERY
        self.fit_to_row = self.interactive and not notebook  # a notebook has no rows to wrap
        self.start = time.perf_counter()
        self.last_draw = 0.0

    def _line(self, done: int, metrics: dict, width: int) -> str:
        filled = int(width * done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        elapsed = time.perf_counter() - self.start
        shown = " ".join(f"{key} {value:.4f}" for key, value in metrics.items() if value is not None)
        return f"{self.title} [{bar}] {done}/{self.total} {elapsed:5.1f}s {shown}"

    def _row(self, done: int, metrics: dict, cut: bool) -> str:
        """The line in one row of the terminal (columns - 1 characters, so the cursor never wraps):
        the bar first gives up characters (down to MIN_BAR_WIDTH), then, if ``cut``, the end of the
        line goes; spaces to the end of the row clear what a longer earlier line left there.
        In a notebook the line as it is (the browser clears the line at "\r" itself)."""
        line = self._line(done, metrics, self.width)
        if not self.fit_to_row:
            return line
        room = shutil.get_terminal_size().columns - 1
        too_long = len(line) - room
        if too_long > 0:
            line = self._line(done, metrics, max(MIN_BAR_WIDTH, self.width - too_long))
        return (line[:room] if cut else line).ljust(room)

    def update(self, done: int, metrics: dict) -> None:
        now = time.perf_counter()
        if self.interactive and (now - self.last_draw > self.redraw_every or done == self.total):
            self.stream.write("\r" + self._row(done, metrics, cut=True))
            self.stream.flush()
            self.last_draw = now

    def close(self, metrics: dict) -> None:
        """The epoch's last line: every number kept (on a narrow terminal it may take two rows)."""
        if self.stream is None:
            return
        if self.interactive:
            self.stream.write("\r" + self._row(self.total, metrics, cut=False) + "\n")
        else:
            self.stream.write(self._line(self.total, metrics, self.width) + "\n")
        self.stream.flush()
