"""Grade a student's exercise file: one verdict per case, with the diagnosis.

For each case of the exercise (registry.py):

1. if the student wrote the forward: its output against scratchnet's own layer (or loss) on the
   same weights and input, reported first ("your forward differs from Conv2D's ...");
2. ``check_layer`` (or ``check_loss``): the layer contract, then the float64 gradient check of
   the backward (the student's, or the given one) against central differences of the forward;
3. if all that passed: the comparison with scratchnet's own layer on the SAME weights, input and
   dy: the forward output, dx and every parameter gradient, each reported with its worst element
   and the diagnosis of the pattern (gradcheck_diagnose.py).

A wrong forward with a backward that matches it passes step 2 and fails step 1 (or 3); a wrong
backward fails step 2 (and 3). Loading the file runs the student's code, which is the point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..gradcheck import check_layer, check_loss
from ..gradcheck_battery import case_input, is_strided
from ..gradcheck_contract import describe_exception
from ..gradcheck_diagnose import window_coverage
from ..gradcheck_report import GradientCheckReport, distinct_digits
from .extra_checks import COMPARE_TOLERANCE, dropout_checks, loss_value_messages, residual_at_zero_messages
from .loader import NotAPythonFile, exercise_name_of, load_module  # noqa: F401 (cli imports them here)
from .registry import EXERCISES


def reference_for(exercise, config):
    """scratchnet's own layer (or loss) for one case of the exercise."""
    from ..layers import Activation, AvgPool2D, BatchNorm, Conv2D, Dense, MaxPool2D
    from ..losses import CrossEntropy

    kind = exercise.reference
    if kind in ("dropout", "residual"):
        return None  # forward is random / given: the gradient check and extra checks decide
    if kind == "batch_norm":
        return BatchNorm(momentum=config["momentum"], eps=config["eps"])
    if kind == "dense":
        return Dense(config["units"])
    if kind in ("relu", "sigmoid", "tanh"):
        return Activation(kind)
    if kind == "cross_entropy":
        return CrossEntropy()
    if kind == "conv":
        return Conv2D(config["filters"], config["kernel_size"], stride=config.get("stride", 1),
                      padding=config.get("padding", 0), backend="scipy")
    layer_type = MaxPool2D if kind == "max_pool" else AvgPool2D
    return layer_type(config["pool_size"], stride=config.get("stride"))


@dataclass
class CaseResult:
    label: str
    passed: bool
    messages: list = field(default_factory=list)
    config: dict = field(default_factory=dict)


class GradeReport:
    def __init__(self, exercise, path):
        self.exercise, self.path = exercise, path
        self.cases: list[CaseResult] = []
        self.problems: list[str] = []    # the file could not be graded at all

    @property
    def passed(self) -> bool:
        return not self.problems and bool(self.cases) and all(case.passed for case in self.cases)

    def diagnosis(self) -> list[str]:
        """Patterns across cases: only the strided ones fail, only the padded ones fail."""
        failing = [case for case in self.cases if not case.passed]
        passing = [case for case in self.cases if case.passed]
        if not failing or not passing:
            return []
        notes = []

        def strided(case):  # a pooling layer's stride defaults to its pool size
            return is_strided({"stride": case.config.get("stride", case.config.get("pool_size", 1))})

        if all(strided(case) for case in failing) and not any(strided(case) for case in passing):
            notes.append("only the cases with stride > 1 fail: the window of output (oh, ow) starts at "
                         "(s*oh, s*ow); check every index that should carry the stride")
        if all(case.config.get("padding", 0) for case in failing) and \
                not any(case.config.get("padding", 0) for case in passing):
            notes.append("only the cases with padding fail: check the padding offsets and the crop of dx")
        if not any(case.config.get("padding", 0) for case in failing) and \
                all(case.config.get("padding", 0) for case in passing):
            notes.append("only the cases without padding fail: x[p:-p] is empty when p = 0 (-0 is 0); "
                         "crop with [p:p+H]")
        return notes

    def text(self) -> str:
        return str(self)

    def __str__(self):
        name = self.exercise.name if self.exercise else "?"
        lines = [f"exercise {name}: grading {self.path}"]
        lines += [f"  ERROR  {problem}" for problem in self.problems]
        for case in self.cases:
            lines.append(f"  {'ok  ' if case.passed else 'FAIL'}  {case.label}")
            lines += ["        " + line for message in case.messages for line in message.splitlines()]
        lines += [f"diagnosis across cases: {note}" for note in self.diagnosis()]
        failed = sum(not case.passed for case in self.cases)
        if self.passed:
            lines.append(f"PASSED: all {len(self.cases)} cases")
        else:
            lines.append(f"FAILED: {failed} of {len(self.cases)} cases" if self.cases else "FAILED")
        return "\n".join(lines)

    __repr__ = __str__


def compare_arrays(what, mine, expected, batch_size, coverage=None) -> list[str]:
    """[] if the student's array equals scratchnet's (1e-8 relative), else one paragraph in a list."""
    if not isinstance(mine, np.ndarray):
        return [f"{what}: got {type(mine).__name__}, expected an array of shape {np.shape(expected)}"]
    if mine.shape != expected.shape:
        return [f"{what}: shape {mine.shape}, scratchnet's is {expected.shape}"]
    dtype, mine = mine.dtype, mine.astype(np.float64)
    if not np.all(np.isfinite(mine)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(mine))[0])
        return [f"{what}: not finite at {list(bad)} ({mine[bad]}): overflow? (use the max shift)"]
    # the gradient check's comparison, with scratchnet's array in the place of the numeric one
    name = "input" if what.startswith(("dx", "output")) else what
    report = GradientCheckReport(what, COMPARE_TOLERANCE, batch_size=batch_size)
    row = report.add(name, mine, expected, coverage=coverage)
    if row.passed:
        return []
    yours, theirs = distinct_digits(row.worst_analytic, row.worst_numeric)
    lines = [f"{what} differs from scratchnet's in {row.n_wrong} of {mine.size} elements; worst at "
             f"[{', '.join(map(str, row.worst_index))}]: yours {yours}, expected {theirs}"]
    lines += [f"  diagnosis: {note}" for note in row.diagnosis] + _precision_hint(dtype)
    return ["\n".join(lines)]


def _precision_hint(dtype) -> list[str]:
    """The hint for an array in single (or half) precision, which cannot match float64 to 1e-8."""
    if dtype in (np.float16, np.float32):
        return [f"  diagnosis: yours is {dtype}, which holds about {np.finfo(dtype).precision} digits: "
                "keep the input's dtype (np.zeros(shape, dtype=x.dtype), no cast to float32)"]
    return []


def _bias_hint(mine, expected):
    """forward outputs that differ by one constant per output channel: the bias."""
    difference = (np.asarray(mine, dtype=np.float64) - expected).reshape(-1, expected.shape[-1])
    if np.allclose(difference, difference[0], atol=1e-9) and np.abs(difference).max() > 1e-9:
        return ["  diagnosis: the output differs by one constant per output channel: the bias is "
                "missing, added twice, or the wrong one"]
    return []


def build_pair(student, reference, x, seed=0):
    """Build both layers from one seed and give the student's scratchnet's weights, each nudged by
    normal noise of 0.5: a bias initialised to 0 would hide a forward that forgets it."""
    for layer in (reference, student):
        layer.build(x.shape[1:], rng=np.random.default_rng(seed), dtype=np.float64)
    noise = np.random.default_rng(seed + 3)
    for key, value in reference.params.items():
        reference.params[key] = value + 0.5 * noise.standard_normal(value.shape)
    for key, value in reference.params.items():
        if key in student.params and np.shape(student.params[key]) == value.shape:
            student.params[key] = value.copy()


def compare_forward(mine, expected, reference_name) -> list[str]:
    """[] if the student's forward output equals the reference's (1e-8 relative), else one paragraph:
    'your forward differs from Conv2D's in 4 of 36 elements (max |diff| 0.3, at [0, 1, 2, 1]: ...)'."""
    if not isinstance(mine, np.ndarray):
        return [f"your forward returned {type(mine).__name__}, expected an array of shape {expected.shape}"]
    if mine.shape != expected.shape:
        return [f"your forward returned shape {mine.shape}, {reference_name}'s is {expected.shape}"]
    difference = np.abs(mine.astype(np.float64) - expected)
    difference[~np.isfinite(difference)] = np.inf  # a NaN or inf output is as wrong as can be
    wrong = difference > COMPARE_TOLERANCE * max(float(np.max(np.abs(expected), initial=0)), 1e-12)
    if not wrong.any():
        return []
    worst = np.unravel_index(int(np.argmax(difference)), mine.shape)
    where = ", ".join(map(str, worst))
    yours, theirs = distinct_digits(mine[worst], expected[worst])
    lines = [f"your forward differs from {reference_name}'s in {int(wrong.sum())} of {mine.size} elements "
             f"(max |diff| {difference[worst]:.3g}, at [{where}]: yours {yours}, {reference_name}'s "
             f"{theirs})", *_bias_hint(mine, expected), *_precision_hint(mine.dtype)]
    return ["\n".join(lines)]


def forward_first(cls, case, reference, x, seed) -> list[str]:
    """The student's forward against scratchnet's on the same weights and input ([] if equal)."""
    student = cls(**case.config)
    build_pair(student, reference, x, seed)
    expected = reference.forward(x, training=case.training)
    return compare_forward(student.forward(x.copy(), training=case.training), expected,
                           type(reference).__name__)


def compare_layers(student, reference, x, batch_size, seed=0, training=False) -> list[str]:
    """Build both from one seed, share scratchnet's weights, compare forward, dx and grads."""
    build_pair(student, reference, x, seed)
    expected = reference.forward(x, training=training)
    mine = student.forward(x.copy(), training=training)
    messages = compare_arrays("output of forward", mine, expected, batch_size)
    if messages and isinstance(mine, np.ndarray) and mine.shape == expected.shape:
        messages[-1] += "".join("\n" + hint for hint in _bias_hint(mine, expected))
    if messages:
        return messages
    dy = np.random.default_rng(seed + 1).standard_normal(expected.shape)
    dx_expected = reference.backward(dy.copy())
    dx = student.backward(dy.copy())
    coverage = window_coverage(student, x.shape[1:3]) if x.ndim == 4 else None
    messages += compare_arrays("dx (backward)", dx, dx_expected, batch_size, coverage)
    for key, value in reference.grads.items():
        messages += compare_arrays(f"grads[{key!r}]", student.grads.get(key), value, batch_size)
    return messages


def _gradcheck_messages(report, exercise) -> list[str]:
    """A failed check_layer / check_loss report as grading messages ([] if it passed)."""
    if report.passed:
        return []
    backward = "your backward" if exercise.writes_backward else "the given backward"
    forward = "your forward" if exercise.writes_forward else "the given forward"
    return ([f"gradient check of {backward} against {forward}:"]
            + [f"  contract: {problem}" for problem in report.contract]
            + ["  " + line for row in report.failing() for line in row.details().splitlines()])


def grade_case(exercise, cls, case, seed=0) -> CaseResult:
    x = case_input(case.batch, case.input_shape, case.input_kind, seed)
    try:
        if exercise.kind == "loss":
            messages = _grade_loss_case(exercise, cls, case, x, seed)
        else:
            messages = _grade_layer_case(exercise, cls, case, x, seed)
    except Exception as error:  # the student's code raised: report where
        messages = [describe_exception(exercise.class_name, "your code", error)]
    return CaseResult(f"{case.label}: input {x.shape}", not messages, messages, case.config)


def _grade_layer_case(exercise, cls, case, x, seed) -> list[str]:
    """The student's forward first (if they wrote it), then the gradient check, then the comparison
    of dx and grads with scratchnet's layer: a wrong forward is reported as a wrong forward."""
    messages = []
    has_reference = reference_for(exercise, case.config) is not None  # dropout, residual: none
    if exercise.writes_forward and has_reference:
        messages += forward_first(cls, case, reference_for(exercise, case.config), x, seed)
    if exercise.reference == "dropout":
        messages += dropout_checks(cls, case, x)
    if case.gradcheck:
        report = check_layer(cls(**case.config), x, seed=seed, max_elements=300, progress=False,
                             training=case.training)
        messages += _gradcheck_messages(report, exercise)
    if case.compare and not messages and has_reference:
        messages += compare_layers(cls(**case.config), reference_for(exercise, case.config), x, case.batch,
                                   seed, case.training)
    if exercise.reference == "residual" and case.input_kind == "zeros" and not messages:
        messages += residual_at_zero_messages(cls, case, x)
    if messages and exercise.mistakes:
        messages += known_mistakes(exercise, cls, case, x, seed)
    return messages


def known_mistakes(exercise, cls, case, x, seed) -> list[str]:
    """'diagnosis: ...' for each of the exercise's known wrong answers the student's dx equals."""
    try:
        student = cls(**case.config)
        student.build(x.shape[1:], rng=np.random.default_rng(seed), dtype=np.float64)
        y = student.forward(x.copy(), training=case.training)
        dy = np.random.default_rng(seed + 1).standard_normal(np.shape(y))
        dx = student.backward(dy.copy())
    except Exception:  # the gradient check has reported it
        return []
    notes = []
    for mistake in exercise.mistakes:
        wrong = mistake.wrong(x, dy, student.params, case.config)
        yours = dx if mistake.array == "dx" else student.grads.get(mistake.array)
        if wrong is not None and isinstance(yours, np.ndarray) and yours.shape == wrong.shape and \
                np.max(np.abs(yours - wrong)) <= 1e-6 * max(np.max(np.abs(wrong)), 1e-12):
            notes.append(f"diagnosis: {mistake.message}")
    return notes


def _grade_loss_case(exercise, cls, case, x, seed):
    """The loss value first, then the gradient check, then dlogits against scratchnet's."""
    labels = np.random.default_rng(seed + 2).integers(0, x.shape[1], size=x.shape[0])
    student, reference = cls(), reference_for(exercise, case.config)
    value, expected = student.forward(x.copy(), labels), reference.forward(x, labels)
    messages = loss_value_messages(value, expected, x.shape[0])
    if case.gradcheck:
        messages += _gradcheck_messages(check_loss(cls(), x, labels), exercise)
    if messages:
        return messages
    return compare_arrays("dlogits (backward)", student.backward(), reference.backward(), x.shape[0])


def grade_file(path, name=None) -> GradeReport:
    """Grade the file at ``path`` against exercise ``name`` (default: from its first line)."""
    name = name or exercise_name_of(path)
    exercise = EXERCISES.get(name) if name else None
    report = GradeReport(exercise, path)
    if exercise is None and name is None:
        report.problems.append(f"which exercise is this? the file has no first line '# scratchnet exercise: "
                               f"NAME' (NAME one of {', '.join(EXERCISES)}): add it, or give the name "
                               "(scratchnet exercise check FILE --name NAME; check(FILE, name) in Python)")
        return report
    if exercise is None:
        report.problems.append(f"which exercise is this? the first line should read '# scratchnet "
                               f"exercise: NAME' (one of {', '.join(EXERCISES)}), got {name!r}")
        return report
    try:
        module = load_module(path)
    except (Exception, SystemExit) as error:  # SystemExit: the file calls sys.exit() when imported
        report.problems.append(describe_exception(Path(path).name, "importing the file", error))
        return report
    cls = getattr(module, exercise.class_name, None)
    if cls is None:
        report.problems.append(f"{Path(path).name}: no class {exercise.class_name} (the exercise grades "
                               f"class {exercise.class_name}; keep the starter's class name)")
        return report
    for index, case in enumerate(exercise.cases):
        report.cases.append(grade_case(exercise, cls, case, seed=index))
    return report
