"""A dependency-free text progress bar for ``Sequential.fit``.

It is created inside ``fit`` and never stored on the model, so models stay picklable.
On a terminal it redraws one line in place; when output goes to a file or a CI log it prints
only the finished line of each epoch.
"""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, total: int, title: str, width: int = 30, stream=None):
        self.total = max(int(total), 1)
        self.title = title
        self.width = width
        self.stream = stream if stream is not None else sys.stdout
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.last_draw = 0.0

    def _line(self, done: int, metrics: dict) -> str:
        filled = int(self.width * done / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        shown = " ".join(f"{key} {value:.4f}" for key, value in metrics.items() if value is not None)
        return f"{self.title} [{bar}] {done}/{self.total} {elapsed:5.1f}s {shown}"

    def update(self, done: int, metrics: dict) -> None:
        now = time.perf_counter()
        if self.interactive and (now - self.last_draw > 0.1 or done == self.total):
            self.stream.write("\r" + self._line(done, metrics))
            self.stream.flush()
            self.last_draw = now

    def close(self, metrics: dict) -> None:
        line = self._line(self.total, metrics)
        self.stream.write(("\r" if self.interactive else "") + line + "\n")
        self.stream.flush()
