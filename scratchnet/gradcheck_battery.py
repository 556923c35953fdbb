"""An adversarial battery: one layer type checked over the configurations where backward breaks.

``check_layer(layer, input_shape, configs="battery")`` rebuilds the layer as
``type(layer)(**layer.get_config())`` with options changed where the layer has them, and checks
each case (contract + gradients, gradcheck.py):

    as given                  the layer and the input shape passed in
    batch of one              N = 1 (a sum over the batch that drops an axis shows here)
    stride 2, ragged sizes    (H + 2p - k) not divisible by the stride: the last rows are unused
    stride 3                  windows far apart
    overlapping windows       pool 3, stride 2: cells inside two windows (`+=`, not `=`)
    ties in max pooling       integer-valued input: the max is not unique
    non-square kernel         (3, 2)
    padding                   1 and "same" with stride 2 (border offsets)
    dilation 2                where the layer has it
    float32                   built in float32: forward, dx and grads stay float32 and agree
                              with the float64 layer to float32 precision

A case whose options the constructor refuses is "not applicable". ``BatteryReport.passed`` is
True when every applicable case passes; ``str()`` gives one verdict per case and the diagnosis.
"""

from __future__ import annotations

import copy

import numpy as np

from .gradcheck_report import relative_difference


def _variants(config, input_shape):
    """(label, config overrides, input sample shape, input kind) for this layer's options."""
    cases = [("as given", {}, input_shape, "normal"), ("batch of one", {}, input_shape, "batch1")]
    window = "kernel_size" if "kernel_size" in config else "pool_size" if "pool_size" in config else None
    if window is None or len(input_shape) != 3:
        return cases
    channels = input_shape[2]
    ragged = (8, 9, channels)  # k = 2 or 3, s = 2: (8 - k) and (9 - k) differ in parity
    cases += [("stride 2, ragged sizes (H + 2p - k not divisible by s)", {"stride": 2}, ragged, "normal"),
              ("stride 3", {"stride": 3, window: 3}, (10, 11, channels), "normal"),
              ("non-square kernel (3, 2)", {window: (3, 2), "stride": 1}, (6, 7, channels), "normal")]
    if window == "pool_size":
        cases += [("overlapping windows (pool 3, stride 2)", {window: 3, "stride": 2}, (7, 9, channels),
                   "normal"),
                  ("ties (integer-valued input)", {window: 2, "stride": 2}, (6, 6, channels), "ties"),
                  ("ties under overlapping windows", {window: 3, "stride": 1}, (5, 5, channels), "ties")]
    if "padding" in config:
        cases += [("padding 1", {"padding": 1, window: 3, "stride": 1}, (5, 6, channels), "normal"),
                  ("padding 'same', stride 2", {"padding": "same", window: 3, "stride": 2}, ragged, "normal")]
    if "dilation" in config:
        cases += [("dilation 2", {"dilation": 2, window: 3}, (7, 8, channels), "normal")]
    return cases


def case_input(batch, shape, kind, seed):
    """An input (batch, *shape) drawn from ``seed``: standard normal; for ``kind`` "ties" integers
    0, 1, 2 instead (the max of a window is not unique), for "large" normal x 1000 (overflow?), for
    "zeros" integers -2 .. 2 with the first sample all 0 (exact zeros: relu's kink taken as 0)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *shape))
    if kind == "ties":
        x = rng.integers(0, 3, size=x.shape).astype(np.float64)
    elif kind == "zeros":
        x = rng.integers(-2, 3, size=x.shape).astype(np.float64)
        x[0] = 0.0
    elif kind == "large":
        x = 1000 * x
    return x


def is_strided(config) -> bool:
    stride = config.get("stride", 1)
    return stride is not None and any(s > 1 for s in np.atleast_1d(stride))


class BatteryReport:
    """One verdict per case: (label, passed or None if not applicable, report or str why, config)."""

    def __init__(self, title):
        self.title = title
        self.cases: list[tuple[str, bool | None, object, dict]] = []

    @property
    def passed(self) -> bool:
        return all(passed is not False for _, passed, _, _ in self.cases)

    def failing(self):
        return [case for case in self.cases if case[1] is False]

    def diagnosis(self) -> list[str]:
        """Battery-level patterns (which options the failures share)."""
        failing = self.failing()
        passing = [case for case in self.cases if case[1]]
        if not failing:
            return []
        notes = []
        if all(is_strided(case[3]) for case in failing) and passing and \
                all(not is_strided(case[3]) for case in passing):
            notes.append("only the cases with stride > 1 fail: check the window start s*oh + i, the "
                         "output size floor((H + 2p - k) / s) + 1 and where dy is scattered back")
        if all("padding" in case[0] for case in failing) and len(failing) < len(self.cases):
            notes.append("only the padded cases fail: check the padding offsets and the crop of dx")
        if all("float32" in case[0] for case in failing):
            notes.append("only the float32 case fails: keep every array in self.dtype")
        return notes

    def __str__(self):
        lines = [self.title]
        for label, passed, detail, _ in self.cases:
            verdict = {True: "ok", False: "FAIL", None: "n/a"}[passed]
            summary = ""
            if passed is None:
                summary = f"  ({detail})"
            elif hasattr(detail, "rows"):
                summary = f"  max rel. error {detail.max_error:.1e}"
            lines.append(f"  {verdict:4}  {label}{summary}")
        for label, _, detail, _ in self.failing():
            lines.append(f"--- {label}")
            lines.append(str(detail))
        lines += [f"battery diagnosis: {note}" for note in self.diagnosis()]
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)

    __repr__ = __str__


def float32_case(factory, input_shape, seed):
    """Build the layer twice from one seed, in float32 and float64; compare forward and backward."""
    x = case_input(2, input_shape, "normal", seed)
    layers = {}
    for dtype in ("float32", "float64"):
        layer = factory()
        layer.build(input_shape, rng=np.random.default_rng(seed), dtype=dtype)
        y = layer.forward(x.astype(dtype))
        dy = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(dtype)
        layers[dtype] = (layer, y, layer.backward(dy))
    problems = []
    layer32, y32, dx32 = layers["float32"]
    _, y64, dx64 = layers["float64"]
    named = [("output", y32, y64), ("dx", dx32, dx64)] + [
        (f"grads[{key!r}]", layer32.grads.get(key), layers["float64"][0].grads.get(key))
        for key in layer32.params]
    for name, a32, a64 in named:
        if not isinstance(a32, np.ndarray) or a32.dtype != np.float32:
            problems.append(f"{layer32.name}: built in float32, {name} came back as "
                            f"{getattr(a32, 'dtype', type(a32).__name__)}")
        elif a32.shape == np.shape(a64):
            error = relative_difference(a32, a64)
            if error > 1e-4:
                problems.append(f"{layer32.name}: float32 {name} differs from float64 by {error:.1e} "
                                "(more than float32 round-off)")
    return (not problems), ("\n".join(problems) if problems else None)


def check_battery(layer, x_or_input_shape, configs="battery", seed=0, training=False,
                  max_elements=200, tolerance=None):
    """Run ``check_layer`` over the battery of ``_variants``; see the module docstring."""
    from .gradcheck import TOLERANCE, check_layer

    if configs != "battery":
        raise ValueError(f"check_layer: configs must be None or 'battery', got {configs!r}")
    tolerance = TOLERANCE if tolerance is None else tolerance
    input_shape = tuple(x_or_input_shape.shape[1:]) if isinstance(x_or_input_shape, np.ndarray) \
        else tuple(x_or_input_shape)
    try:
        config = dict(layer.get_config())
        type(layer)(**config)
    except Exception:  # a layer without a complete get_config: vary the input only
        config = None
    report = BatteryReport(f"battery for {type(layer).__name__} ({layer.name}), one verdict per case")

    def factory(overrides=None):
        if config is None:
            fresh = copy.deepcopy(layer)
            fresh.built = False
            return fresh
        return type(layer)(**{**config, **(overrides or {})})

    for label, overrides, shape, kind in _variants(config or {}, input_shape):
        try:
            case_layer = factory(overrides)
            if label != "as given":  # an option the layer accepts but cannot use: not applicable
                case_layer.output_shape(shape)
        except Exception as error:
            report.cases.append((label, None, f"not applicable: {error}", overrides))
            continue
        case_config = {**(config or {}), **overrides}
        x = case_input(1 if kind == "batch1" else 2, shape, kind, seed)
        try:
            result = check_layer(case_layer, x, seed=seed, training=training, max_elements=max_elements,
                                 tolerance=tolerance, progress=False)
            passed = result.passed
        except Exception as error:
            passed, result = False, f"{type(error).__name__}: {error}"
        report.cases.append((label, passed, result, case_config))
    if config is not None and not isinstance(x_or_input_shape, np.ndarray):
        try:
            passed, detail = float32_case(factory, input_shape, seed)
        except Exception as error:
            passed, detail = False, f"{type(error).__name__}: {error}"
        report.cases.append(("float32 (forward, dx, grads stay float32)", passed, detail, config))
    return report
