"""`scratchnet exercise list|start|check`, `scratchnet gradcheck FILE:ClassName`, compare_training."""

from pathlib import Path

import numpy as np
import pytest

from scratchnet import cli
from scratchnet.exercises import EXERCISES, check, list_exercises, start, starter_text
from scratchnet.gradcheck import check_layer, compare_training
from scratchnet.layers import Dense
from scratchnet.model import Sequential

SOLUTIONS = Path(__file__).parent / "exercise_solutions"


def test_list_names_every_exercise(capsys):
    assert cli.main(["exercise", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("dense_backward", "relu", "sigmoid", "tanh", "softmax_cross_entropy", "conv_forward_loops",
                 "conv_backward_loops", "conv_backward_im2col", "max_pool", "avg_pool", "dropout",
                 "batch_norm_backward", "residual_block"):
        assert name in out and name in EXERCISES
    assert [name for name, _ in list_exercises()] == list(EXERCISES)


@pytest.mark.parametrize("name", list(EXERCISES))
def test_starters_leave_the_work_to_the_student_and_fail_the_grader(tmp_path, name):
    text = starter_text(name)
    assert text.startswith(f"# scratchnet exercise: {name}\n")
    assert "---- your code" in text and "NotImplementedError" in text
    assert "shape" in text.split('"""')[1].lower()  # the docstring gives the shapes
    report = check(start(name, tmp_path / f"{name}.py"))
    assert not report.passed
    assert "NotImplementedError" in str(report) and "write the" in str(report)


def test_start_writes_the_file_and_never_overwrites(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["exercise", "start", "relu"]) == 0
    assert (tmp_path / "relu.py").read_text() == starter_text("relu")
    assert "scratchnet exercise check relu.py" in capsys.readouterr().out
    assert cli.main(["exercise", "start", "relu"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert cli.main(["exercise", "start", "nope"]) == 2
    assert "unknown exercise 'nope'" in capsys.readouterr().err


def test_check_exit_codes_and_verdicts(tmp_path, capsys):
    assert cli.main(["exercise", "check", str(SOLUTIONS / "dense_backward.py")]) == 0
    out = capsys.readouterr().out
    assert out.count("  ok    ") == len(EXERCISES["dense_backward"].cases) and "PASSED: all 4 cases" in out
    wrong = tmp_path / "dense_backward.py"
    text = (SOLUTIONS / "dense_backward.py").read_text()
    wrong.write_text(text.replace("return dy @ W.T", "return dy @ W.T * 2"))
    assert cli.main(["exercise", "check", str(wrong)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  Dense(3) on (4,): input (3, 4)" in out and "constant factor: analytic = 2 x numeric" in out
    assert cli.main(["exercise", "check", str(tmp_path / "missing.py")]) == 2


def test_check_refuses_a_file_without_the_exercise_line(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("x = 1\n")
    report = check(path)
    assert not report.passed and "which exercise is this?" in str(report)
    problems = check(path, "relu").problems
    assert problems == ["mine.py: no class ReLU (the exercise grades class ReLU; "
                        "keep the starter's class name)"]


def test_check_names_the_file_and_line_when_importing_it_raises(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("# scratchnet exercise: relu\nraise ValueError('boom')\n")
    assert check(path).problems == ["mine.py: importing the file raised ValueError: boom "
                                    "(mine.py line 2, in <module>)"]


STUDENT_LAYER = '''
import numpy as np
from scratchnet.layers import Layer


class Square(Layer):
    def forward(self, x, training=False):
        self.cache = {"x": x}
        return x * x

    def backward(self, dy):
        return {factor} * self.cache["x"] * dy
'''


def test_gradcheck_file_colon_class(tmp_path, capsys):
    good = tmp_path / "good.py"
    good.write_text(STUDENT_LAYER.replace("{factor}", "2"))
    assert cli.main(["gradcheck", f"{good}:Square", "--input-shape", "4"]) == 0
    assert "PASSED" in capsys.readouterr().out
    bad = tmp_path / "bad.py"
    bad.write_text(STUDENT_LAYER.replace("{factor}", "1"))
    figure = tmp_path / "f.png"
    assert cli.main(["gradcheck", f"{bad}:Square", "--input-shape", "4", "--figure", str(figure)]) == 1
    out = capsys.readouterr().out
    assert "constant factor: analytic = 0.5 x numeric" in out and "worst at [" in out
    assert (tmp_path / "f.png").exists()
    assert cli.main(["gradcheck", f"{bad}:Nope"]) == 2
    assert "has no 'Nope'; classes in it: Layer, Square" in capsys.readouterr().err


def test_gradcheck_file_battery_and_config(capsys):
    target = f"{SOLUTIONS / 'conv_backward_loops.py'}:Conv2D"
    assert cli.main(["gradcheck", target, "--input-shape", "6,6,2", "--config",
                     '{"filters": 2, "kernel_size": 3}', "--battery"]) == 0
    out = capsys.readouterr().out
    assert "stride 2, ragged sizes" in out and "PASSED" in out


def test_gradcheck_help_says_it_runs_the_file(capsys):
    with pytest.raises(SystemExit):
        cli.main(["gradcheck", "--help"])
    assert "RUNS the code" in capsys.readouterr().out


class StaleCache(Dense):
    """Keeps the cache of its FIRST forward: passes a single-layer check, breaks training."""

    def forward(self, x, training=False):
        y = super().forward(x, training)
        self.first = getattr(self, "first", None) or dict(self.cache)
        self.cache = self.first
        return y


class TrainOnlyScale(Dense):
    """Scales its output in inference mode only: wrong predictions, right training."""

    def forward(self, x, training=False):
        y = super().forward(x, training)
        return y if training else 0.5 * y


class BatchSizeRecorder(Dense):
    """Notes the batch size of every forward in a class attribute (the layer itself is deep-copied)."""

    seen: list[int] = []

    def forward(self, x, training=False):
        BatchSizeRecorder.seen.append(len(x))
        return super().forward(x, training)


def small_model():
    model = Sequential([Dense(5, activation="tanh", name="hidden"), Dense(3, name="head")], input_shape=(4,),
                       seed=0)
    return model.compile(optimizer="adam", loss="cross_entropy")


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)), rng.integers(0, 3, size=32)


def test_compare_training_accepts_the_same_layer():
    result = compare_training(small_model(), "hidden", Dense(5, activation="tanh"), *data(), steps=4)
    assert result.passed and "agree for all 4 steps" in str(result)


def test_compare_training_finds_a_stale_cache_the_single_check_misses():
    assert check_layer(StaleCache(5, activation="tanh"), (4,)).passed
    result = compare_training(small_model(), "hidden", StaleCache(5, activation="tanh"), *data(), steps=4)
    assert not result.passed
    assert result.step == 1 and result.where == "parameter hidden/W after the update"
    assert "part at step 1: parameter hidden/W after the update" in str(result)


def test_compare_training_finds_a_train_eval_mismatch():
    result = compare_training(small_model(), "head", TrainOnlyScale(3), *data(), steps=3)
    assert (result.step, result.where) == (0, "the inference-mode output (training=False)")


def test_compare_training_names_unknown_layers():
    with pytest.raises(ValueError, match="no top-level layer 'nope'; its layers are hidden, head"):
        compare_training(small_model(), "nope", Dense(3), *data())


def test_compare_training_shows_its_real_signature_and_forwards_every_option():
    """help(compare_training) names the parameters and defaults, not (*args, **kwargs)."""
    import inspect

    from scratchnet import gradcheck_training

    signature = inspect.signature(compare_training)
    assert list(signature.parameters) == ["model", "layer_name", "replacement", "x", "y", "steps",
                                          "batch_size", "tolerance"]
    assert {name: p.default for name, p in signature.parameters.items() if p.default is not p.empty} == {
        "steps": 5, "batch_size": None, "tolerance": 1e-9}
    assert signature.parameters == inspect.signature(gradcheck_training.compare_training).parameters
    for name in signature.parameters:
        assert name in compare_training.__doc__, f"the docstring does not explain {name}"
    # Every option reaches the work: steps, batch_size, tolerance.
    same = Dense(5, activation="tanh")
    assert "agree for all 2 steps" in str(compare_training(small_model(), "hidden", same, *data(), steps=2))
    BatchSizeRecorder.seen = []
    recorder = BatchSizeRecorder(5, activation="tanh")
    assert compare_training(small_model(), "hidden", recorder, *data(), steps=2, batch_size=16).passed
    assert set(BatchSizeRecorder.seen) == {16}, BatchSizeRecorder.seen  # not the default 8
    strict = compare_training(small_model(), "hidden", Dense(5, activation="tanh"), *data(), tolerance=-1.0)
    assert (strict.step, strict.where) == (0, "the loss")


def test_the_readme_failing_report_is_what_the_code_prints(capsys):
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"<!-- failing-report-code -->\n```python\n(.*?)```", readme, re.S).group(1)
    printed = re.search(r"<!-- failing-report-output -->\n```\n(.*?)\n```", readme, re.S).group(1)
    exec(compile(code, "README failing report", "exec"), {})
    out = capsys.readouterr().out.rstrip("\n")
    assert out == printed
    assert "mean vs sum over the batch" in out and "all zeros" in out and "worst at [" in out


def test_batch_norm_exercise_is_compared_with_scratchnets_batchnorm():
    from scratchnet import layers
    from scratchnet.exercises.grader import reference_for

    exercise = EXERCISES["batch_norm_backward"]
    assert isinstance(reference_for(exercise, exercise.cases[0].config), layers.BatchNorm)
    assert check(SOLUTIONS / "batch_norm_backward.py").passed


def test_compare_arrays_names_the_count_the_worst_element_and_the_pattern():
    from scratchnet.exercises.grader import compare_arrays

    expected = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert compare_arrays("grads['W']", expected * (1 + 1e-9), expected, 3) == []  # within 1e-8
    mine = expected.copy()
    mine[0, 0], mine[1, 2] = 1.1, 6.5
    assert compare_arrays("grads['W']", mine, expected, 3) == [
        "grads['W'] differs from scratchnet's in 2 of 6 elements; worst at [1, 2]: yours 6.5, expected 6"]
    assert compare_arrays("grads['W']", 3 * expected, expected, 3) == [
        "grads['W'] differs from scratchnet's in 6 of 6 elements; worst at [1, 2]: yours 18, expected 6\n"
        "  diagnosis: constant factor: analytic = 3 x numeric = N (batch size N = 3): mean vs sum over "
        "the batch (summed where a mean (1/N) was needed)"]
    assert compare_arrays("dx (backward)", mine.astype(np.float32), expected, 3)[0].startswith(
        "dx (backward) differs from scratchnet's in 2 of 6 elements; worst at [1, 2]: yours 6.5")


def test_the_grader_and_the_battery_draw_their_inputs_alike():
    from scratchnet.gradcheck_battery import case_input

    normal = np.random.default_rng(3).standard_normal((2, 4, 4, 1))
    np.testing.assert_array_equal(case_input(2, (4, 4, 1), "normal", 3), normal)
    np.testing.assert_array_equal(case_input(2, (4, 4, 1), "large", 3), 1000 * normal)
    ties = case_input(2, (4, 4, 1), "ties", 3)
    assert ties.shape == (2, 4, 4, 1) and ties.dtype == np.float64
    assert set(np.unique(ties).tolist()) == {0.0, 1.0, 2.0}  # every window of 2x2 of 3 values: ties


def wrong_solution(tmp_path, name, *replacements):
    """The solution of exercise ``name`` with (old, new) text replacements: a student's mistake."""
    text = (SOLUTIONS / f"{name}.py").read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return path


@pytest.mark.parametrize("stored, read", [("x", "x"), ("(winner, x_shape)", "winner, x_shape")])
def test_a_cache_that_is_not_a_dict_is_named_not_blamed_on_the_grader(tmp_path, stored, read):
    # /tmp/student m1.py, m3.py: self.cache = x (or a tuple) crashed the grader's restore step
    path = wrong_solution(tmp_path, "max_pool",
                          ('self.cache = {"winner": winner, "x_shape": x.shape}',
                           f"x_shape = x.shape\n        self.cache = {stored}"),
                          ('winner, x_shape = self.cache["winner"], self.cache["x_shape"]',
                           f"{read} = self.cache" if read != "x" else
                           "x = self.cache\n        x_shape, winner = x.shape, _winners(x, k, s, dy.shape)"))
    if read == "x":
        with path.open("a") as file:
            file.write(WINNERS)
    report = check(path)
    text = str(report)
    assert not report.passed and "update" not in text and "gradcheck.py" not in text
    kind = "ndarray" if read == "x" else "tuple"
    expected = (f"contract: max_pool2d: self.cache is of type {kind} after forward; self.cache must be a "
                'dict, e.g. self.cache = {"x": x}')
    assert text.count(expected) == len(EXERCISES["max_pool"].cases)
    assert "disagree" not in text  # the backward itself is right: the numbers agree


WINNERS = '''

def _winners(x, k, s, out_shape):
    """The argmax of each window, as the solution's forward stores it (for a cache of x alone)."""
    n_batch, out_h, out_w, channels = out_shape
    winner = np.zeros(out_shape, dtype=int)
    for oh in range(out_h):
        for ow in range(out_w):
            window = x[:, s * oh:s * oh + k, s * ow:s * ow + k, :].reshape(n_batch, k * k, channels)
            winner[:, oh, ow, :] = window.argmax(axis=1)
    return winner
'''


def test_an_error_inside_numpy_is_located_in_the_students_file(tmp_path):
    # np.pad raises deep inside numpy's own Python code: the student needs their own line
    padded = "return np.pad(dy * (x > 0), ((1, 1),) * 5)"
    path = wrong_solution(tmp_path, "relu", ("return dy * (x > 0)", padded))
    line = path.read_text().splitlines().index(f"        {padded}") + 1
    text = str(check(path))
    assert f"(relu.py line {line}, in backward)" in text
    assert "_arraypad" not in text and "stride_tricks" not in text


def test_a_syntax_error_names_the_students_file_and_line(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("# scratchnet exercise: relu\nimport numpy as np\n\ndef backward(dy:\n    pass\n")
    problems = check(path).problems
    assert len(problems) == 1 and problems[0].startswith("mine.py: importing the file raised SyntaxError: ")
    assert problems[0].endswith("(mine.py line 4)") and "frozen" not in problems[0]


def test_a_wrong_forward_is_reported_as_the_forward_before_the_gradient_check(tmp_path):
    # /tmp/student f1.py: conv_forward_loops without the bias; the backward is given, not the student's
    path = wrong_solution(tmp_path, "conv_forward_loops", ("b[f] + np.sum(window", "np.sum(window"))
    report = check(path)
    assert not any(case.passed for case in report.cases)
    for case in report.cases:
        assert case.messages[0].startswith("your forward differs from Conv2D's in ")
        assert "(max |diff| " in case.messages[0] and "the bias is missing" in case.messages[0]
        assert case.messages[1] == "gradient check of the given backward against your forward:"
    assert "your backward" not in str(report)


def test_a_wrong_pooling_forward_is_named_first(tmp_path):
    path = wrong_solution(tmp_path, "max_pool", ("y[:, oh, ow, :] = window.max(axis=1)",
                                                 "y[:, oh, ow, :] = window.min(axis=1)"))
    first = check(path).cases[0].messages[0]
    assert first.startswith("your forward differs from MaxPool2D's in 24 of 24 elements (max |diff| ")
    assert "gradient check of your backward against your forward:" in str(check(path))


def test_the_wrong_forward_message_names_the_worst_element():
    from scratchnet.exercises.grader import compare_forward

    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert compare_forward(expected * (1 + 1e-9), expected, "Dense") == []
    mine = expected.copy()
    mine[1, 0] = 3.5
    assert compare_forward(mine, expected, "Dense") == [
        "your forward differs from Dense's in 1 of 4 elements (max |diff| 0.5, at [1, 0]: yours 3.5, "
        "Dense's 3)"]
    assert compare_forward(mine[:1], expected, "Dense") == [
        "your forward returned shape (1, 2), Dense's is (2, 2)"]
    mine[0, 1] = np.nan
    assert compare_forward(mine, expected, "Dense")[0].startswith(
        "your forward differs from Dense's in 2 of 4 elements (max |diff| inf, at [0, 1]: yours nan")


def test_a_wrong_loss_value_is_reported_before_the_gradient_check(tmp_path):
    path = wrong_solution(tmp_path, "softmax_cross_entropy",
                          ("return float(-log_p[np.arange(n), labels].sum() / n)",
                           "return float(-log_p[np.arange(n), labels].sum())"))
    case = check(path).cases[0]
    assert case.messages[0].startswith("forward: your loss ") and "(a factor N: divide by the batch size)" \
        in case.messages[0]
    assert case.messages[1] == "gradient check of your backward against your forward:"


def max_pool_routing_ties(folder, name, routed):
    """The max_pool solution with a student's backward that sends dy to every tied maximum of a
    window, times ``routed`` (an expression of the 0/1 array ``winners``); written to
    folder/name.py, its path."""
    backward = f'''
    def backward(self, dy):  # dy to every tied maximum, times {routed}
        x, k, s = self.cache["x"], self.pool_size, self.stride
        dx = np.zeros_like(x)
        for i in range(dy.shape[1]):
            for j in range(dy.shape[2]):
                window = x[:, i * s:i * s + k, j * s:j * s + k, :]
                winners = window == window.max(axis=(1, 2), keepdims=True)
                dx[:, i * s:i * s + k, j * s:j * s + k, :] += ({routed}) * dy[:, i:i + 1, j:j + 1, :]
        return dx
'''
    text = (SOLUTIONS / "max_pool.py").read_text()
    text = text[:text.index("    def backward(self, dy):")] + backward
    cache = 'self.cache = {"winner": winner, "x_shape": x.shape}'
    path = folder / f"{name}.py"
    path.write_text(text.replace(cache, 'self.cache = {"x": x}'))
    return path


def test_max_pool_ties_are_graded_one_cell_per_window(tmp_path):
    report = check(max_pool_routing_ties(tmp_path, "max_pool", "winners"))  # /tmp/student m2.py
    verdicts = {case.label.split(":")[0]: case for case in report.cases}
    ties = verdicts["ties (integer-valued input)"]
    assert not ties.passed and ties.messages[0].startswith("dx (backward) differs from scratchnet's in ")
    assert ties.messages[-1] == ("diagnosis: dy sent to every tied maximum of a window: on a tie give it to "
                                 "ONE cell (the first in row-major order, as the starter says), so that "
                                 "each window's dx sums to its dy")
    assert verdicts["2x2, stride 2"].passed  # no ties in a normal input: right there
    assert check(SOLUTIONS / "max_pool.py").passed


def test_a_crop_that_is_empty_without_padding_is_explained(tmp_path):
    # /tmp/student k1.py: dxp[:, p:-p, p:-p] is empty when p = 0
    crop = "return dxp[:, p:xp.shape[1] - p, p:xp.shape[2] - p, :]"
    path = wrong_solution(tmp_path, "conv_backward_loops", (crop, "return dxp[:, p:-p, p:-p, :]"))
    report = check(path)
    assert [case.passed for case in report.cases] == [False, True, False, True, False]
    assert ("backward returned dx of shape (2, 0, 0, 2), expected the input's shape (2, 5, 5, 2) (an "
            "empty axis: a slice like dxp[:, p:-p] is empty when p = 0, as -0 is 0; crop with [p:p+H])"
            ) in str(report)
    assert report.diagnosis() == ["only the cases without padding fail: x[p:-p] is empty when p = 0 "
                                  "(-0 is 0); crop with [p:p+H]"]


def test_the_command_line_says_its_own_way_to_overwrite_and_name_the_exercise(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["exercise", "start", "relu"]) == 0
    capsys.readouterr()
    assert cli.main(["exercise", "start", "relu"]) == 2
    assert capsys.readouterr().err == ("scratchnet exercise start: relu.py exists already; write another "
                                       "file with --out FILE (or replace it with --overwrite)\n")
    (tmp_path / "relu.py").write_text("# mine\n")
    assert cli.main(["exercise", "start", "relu", "--overwrite"]) == 0
    assert (tmp_path / "relu.py").read_text() == starter_text("relu")
    with pytest.raises(FileExistsError, match=r"\(or overwrite=True\)"):  # the Python API keeps its way
        start("relu", tmp_path / "relu.py")
    headless = tmp_path / "mine.py"
    headless.write_text((SOLUTIONS / "relu.py").read_text().split("\n", 1)[1])
    assert cli.main(["exercise", "check", str(headless)]) == 1
    out = capsys.readouterr().out
    assert "which exercise is this? the file has no first line '# scratchnet exercise: NAME'" in out
    assert "give the name (scratchnet exercise check FILE --name NAME; check(FILE, name) in Python)" in out
    assert "got None" not in out
    assert cli.main(["exercise", "check", str(headless), "--name", "relu"]) == 0


def test_an_infinite_loss_is_log_of_zero_and_a_nan_loss_is_exp_overflow(tmp_path):
    """/tmp/numerics/naive_logp.py: the row maximum subtracted, then np.log(softmax): inf, not NaN."""
    log_of_softmax = wrong_solution(tmp_path, "softmax_cross_entropy",
                                    ("log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))",
                                     "log_p = np.log(np.exp(shifted) / np.exp(shifted).sum(axis=1, "
                                     "keepdims=True))"))
    with np.errstate(divide="ignore"):
        case = check(log_of_softmax).cases[2]
    assert case.messages[0].startswith("forward: your loss inf, expected ")
    infinite_log = ("(an infinite log p: compute log p = z - max(z) - log(sum exp(z - max(z))) as written, "
                    "the row maximum subtracted inside the exp; log(softmax(z)) is log(0) where a "
                    "probability underflows to 0)")
    assert case.messages[0].endswith(infinite_log)
    log_of_inf = wrong_solution(tmp_path, "softmax_cross_entropy",  # z - log(sum exp(z)) = 1000 - inf
                                ("shifted = logits - logits.max(axis=1, keepdims=True)", "shifted = logits"))
    with np.errstate(all="ignore"):
        case = check(log_of_inf).cases[2]
    assert case.messages[0].startswith("forward: your loss inf, expected ") and \
        case.messages[0].endswith(infinite_log)
    no_shift = wrong_solution(tmp_path, "softmax_cross_entropy",  # exp(1000) / exp(1000) = inf / inf
                              ("shifted = logits - logits.max(axis=1, keepdims=True)", "shifted = logits"),
                              ("log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))",
                               "log_p = np.log(np.exp(shifted) / np.exp(shifted).sum(axis=1, "
                               "keepdims=True))"))
    with np.errstate(all="ignore"):
        case = check(no_shift).cases[2]
    nan_hint = ("(a NaN: exp overflowed (subtract the row maximum before exp), or t * log p met "
                "0 * log(0) = 0 * -inf where a probability underflowed to 0 (pick "
                "log_p[np.arange(n), labels] instead of multiplying by the one-hot rows))")
    assert case.messages[0].startswith("forward: your loss nan, expected ")
    assert case.messages[0].endswith(nan_hint)
    one_hot_times_log = wrong_solution(  # /tmp/diffB/ex/b.py: the shift, then -(t * log p) with p = 0
        tmp_path, "softmax_cross_entropy",
        ("log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))",
         "log_p = np.log(np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True))"),
        ("return float(-log_p[np.arange(n), labels].sum() / n)",
         "return float(-(np.eye(logits.shape[1])[labels] * log_p).sum() / n)"))
    with np.errstate(all="ignore"):
        case = check(one_hot_times_log).cases[2]
    assert case.messages[0].startswith("forward: your loss nan, expected ")
    assert case.messages[0].endswith(nan_hint)
