"""The report of a gradient check: one row per array, contract problems, and what went wrong.

``str(report)`` is a table (array, shape, rel. error, result), then for every failing array
the worst element (its index, the analytic and numeric values there), how many elements
disagree, a diagnosis when a known mistake fits the pattern (gradcheck_diagnose.py) and a small
map of the wrong elements; contract problems come first, since they explain most failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .gradcheck_diagnose import diagnose, disagreeing, gradient_error, mismatch_map


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]], rule: bool = False) -> str:
    """Left-aligned text columns, two spaces apart (with a dashed rule under the header)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [header, tuple("-" * width for width in widths)] if rule else [header]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in [*lines, *rows])


def distinct_digits(mine, expected) -> tuple[str, str]:
    """Both numbers with 6 significant digits, or as many more as it takes to tell them apart
    (a float32 round-off: 'yours -1.14333, expected -1.14333' -> '-1.14332998, -1.14333034'; a
    factor 1 + 3e-6: 'analytic 14.7609, numeric 14.7609' -> '14.76092, 14.76088')."""
    for digits in range(6, 18):
        pair = (f"{mine:.{digits}g}", f"{expected:.{digits}g}")
        if pair[0] != pair[1]:
            return pair
    return pair


def relative_difference(a, b) -> float:
    """max |a - b| / max(max |b|, 1e-12), in float64 (b is the reference); inf if the shapes differ."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = max(float(np.max(np.abs(b), initial=0)), 1e-12)
    return float(np.max(np.abs(a - b), initial=0)) / scale


@dataclass
class CheckRow:
    """One array's result. ``mask``: the compared elements (a random sample for large arrays)."""

    name: str
    shape: tuple
    error: float
    passed: bool
    checked: int = 0
    inconclusive: int = 0
    n_wrong: int = 0
    within_round_off: bool = False   # passed only because every difference is below round-off
    worst_index: tuple | None = None
    worst_analytic: float = float("nan")
    worst_numeric: float = float("nan")
    diagnosis: list = field(default_factory=list)
    map: str = ""
    analytic: np.ndarray | None = field(default=None, repr=False)
    numeric: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def all_at_kinks(self) -> bool:
        """True when every element picked for comparison sat on a kink: nothing was measured."""
        return self.checked == 0 and self.inconclusive > 0

    def details(self) -> str:
        """The paragraph under the table for a failing array."""
        if self.analytic is None:
            return f"{self.name}: not compared (see the contract problems above)"
        if self.all_at_kinks:
            return (f"{self.name}: no element could be compared (all {self.inconclusive} on a kink): "
                    "move the input off the kink")
        index = ", ".join(map(str, self.worst_index))
        analytic, numeric = distinct_digits(self.worst_analytic, self.worst_numeric)
        lines = [f"{self.name}: {self.n_wrong} of {self.checked} checked elements disagree; worst at "
                 f"[{index}]: analytic {analytic}, numeric {numeric}"]
        lines += [f"  diagnosis: {note}" for note in self.diagnosis]
        lines += ["  " + line for line in self.map.splitlines()]
        return "\n".join(lines)


class GradientCheckReport:
    """The result of a check: one row per array. ``str(report)`` is a readable table."""

    def __init__(self, title: str, tolerance: float, batch_size: int = 0):
        self.title = title
        self.tolerance = tolerance
        self.batch_size = batch_size
        self.rows: list[CheckRow] = []
        self.contract: list[str] = []   # broken layer-contract rules, one sentence each
        self.notes: list[str] = []      # sample sizes and other information
        self.sample_notes: list[str] = []   # the notes of the sampled arrays (one line when many)

    def add(self, name, analytic, numeric, mask=None, inconclusive=None, coverage=None, dtype_hint=None,
            noise_floor=0.0, output_grad=None):
        """Compare one array; ``mask`` selects the compared elements, ``inconclusive`` (kinks) are
        excluded from the error. An array whose every selected element is inconclusive fails:
        nothing about its gradient was measured (0 elements compared is not a pass).

        ``noise_floor``: the round-off of a central difference, ~ machine eps * sum|f terms| / step.
        An array whose largest difference is below it passes even when its relative error does
        not: a gradient of 1e-3 next to a function of size 20 cannot be measured closer.
        ``output_grad``: the dy backward was given, for the diagnosis of an input gradient.
        """
        analytic = np.asarray(analytic, dtype=np.float64)
        numeric = np.asarray(numeric, dtype=np.float64)
        mask = np.ones(analytic.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        kinks = np.zeros(analytic.shape, dtype=bool) if inconclusive is None else inconclusive & mask
        compared = mask & ~kinks
        error = gradient_error(analytic[compared], numeric[compared])
        largest = float(np.max(np.abs(analytic[compared] - numeric[compared]), initial=0.0))
        within = error <= self.tolerance or largest <= noise_floor
        row = CheckRow(name, tuple(analytic.shape), error, bool(within),
                       checked=int(compared.sum()), inconclusive=int(kinks.sum()),
                       analytic=analytic, numeric=numeric, mask=compared)
        if row.all_at_kinks:
            row.passed, row.error = False, float("nan")  # no error was measured
        elif row.passed and error > self.tolerance:
            row.within_round_off = True
            self.notes.append(f"{name}: rel. error {error:.1e} > {self.tolerance:.0e}, but every difference "
                              f"is below the round-off of a central difference ({noise_floor:.1e}): too "
                              "small to measure closer, passed")
        elif not row.passed:
            wrong = disagreeing(analytic, numeric, compared, self.tolerance)
            difference = np.where(compared, np.abs(analytic - numeric), -1)
            worst = np.unravel_index(int(np.argmax(difference)), analytic.shape)
            row.n_wrong, row.worst_index = int(wrong.sum()), tuple(int(i) for i in worst)
            row.worst_analytic, row.worst_numeric = float(analytic[worst]), float(numeric[worst])
            row.diagnosis = diagnose(name, analytic, numeric, compared, self.tolerance, self.batch_size,
                                     coverage, dtype_hint, wrong=wrong, error=error, output_grad=output_grad)
            row.map = mismatch_map(name, wrong, compared, kinks)
        self.rows.append(row)
        return row

    def note_sample(self, name, checked, size):
        """Record that only ``checked`` of ``size`` elements of array ``name`` were compared."""
        note = f"{name}: {checked} of {size} elements checked (a random sample; max_elements=None checks all)"
        self.notes.append(note)
        self.sample_notes.append(note)

    def printed_notes(self) -> list[str]:
        """The notes, with those of several sampled arrays collapsed into one line (the table's
        'elements checked' column has each array's count)."""
        if len(self.sample_notes) < 2:
            return self.notes
        collapsed = (f"{len(self.sample_notes)} arrays were checked on a random sample of their elements "
                     "(the 'elements checked' column; max_elements=None checks all)")
        others = [note for note in self.notes if note not in self.sample_notes]
        return [collapsed, *others]

    def add_unchecked(self, name, shape):
        """An array that could not be compared (its contract failed)."""
        self.rows.append(CheckRow(name, tuple(shape), float("nan"), False))

    @property
    def passed(self) -> bool:
        return not self.contract and all(row.passed for row in self.rows)

    @property
    def max_error(self) -> float:
        return max((row.error for row in self.rows if row.error == row.error), default=0.0)

    def errors(self) -> dict[str, float]:
        return {row.name: row.error for row in self.rows}

    def failing(self) -> list[CheckRow]:
        return [row for row in self.rows if not row.passed]

    def assert_passed(self) -> None:
        if not self.passed:
            raise AssertionError(f"gradient check failed\n{self}")

    def figure(self, name: str, path=None):
        """matplotlib figure of one array's mismatch (gradcheck_diagnose.mismatch_figure)."""
        from .gradcheck_diagnose import mismatch_figure

        return mismatch_figure(next(row for row in self.rows if row.name == name), path)

    def table_rows(self):
        rows = []
        for row in self.rows:
            result = "ok" if row.passed else ("FAIL" if row.analytic is not None else "FAIL (contract)")
            if row.all_at_kinks:
                result = "FAIL (all at kinks)"
            elif row.within_round_off:
                result = "ok (round-off)"
            checked = str(row.checked) if row.checked == row.size else f"{row.checked} of {row.size}"
            if row.inconclusive:
                checked += f" (+{row.inconclusive} at kinks)"
            rows.append((row.name, str(row.shape), f"{row.error:.2e}", result, checked))
        return rows

    def __str__(self):
        header = ("array", "shape", "rel. error", "result", "elements checked")
        lines = [f"{self.title}  (float64, pass if rel. error <= {self.tolerance:.0e})",
                 format_table(header, self.table_rows())]
        lines += [f"note: {note}" for note in self.printed_notes()]
        if self.contract:
            lines.append("contract problems (fix these first):")
            lines += [f"  - {problem}" for problem in self.contract]
        lines += [row.details() for row in self.failing()]
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)

    __repr__ = __str__
