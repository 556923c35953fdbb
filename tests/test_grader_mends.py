"""The grader's false passes, false fails and wrong hints found by the ninth session's reviewer
(/tmp/grader): each test is a student's file the grader used to pass wrongly, fail wrongly, or
fail with a hint that sends the student the wrong way."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from scratchnet.exercises import check
from scratchnet.exercises.loader import load_module

SOLUTIONS = Path(__file__).parent / "exercise_solutions"
REPO = Path(__file__).resolve().parent.parent


def edited(tmp_path, name, *replacements, filename=None):
    """The solution of exercise ``name`` with (old, new) text replacements: a student's file."""
    text = (SOLUTIONS / f"{name}.py").read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / (filename or f"{name}.py")
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- loading the student's file
RELU_WITH_HELPER = ("        return dy * (x > 0)", "        return relu_derivative(x) * dy")
HELPER_IMPORT = ("import numpy as np\n", "import numpy as np\nfrom helpers import relu_derivative\n")


def test_a_helper_module_beside_the_file_is_importable_from_any_folder(tmp_path):
    # /tmp/grader t4: `python relu.py` finds helpers.py beside it; the grader did not
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "helpers.py").write_text("def relu_derivative(x):\n    return (x > 0) * 1.0\n")
    path = edited(folder, "relu", RELU_WITH_HELPER, HELPER_IMPORT)
    path_before = list(sys.path)
    assert check(path).passed
    assert sys.path == path_before  # the folder is on sys.path only while the file loads
    assert "helpers" not in sys.modules  # nor is its helpers module left for the next file
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-m", "scratchnet", "exercise", "check", str(path)],
                            cwd=elsewhere, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout
    assert not (folder / "__pycache__").exists()  # not even for helpers.py


def student_with_helpers(tmp_path, name, helpers_text):
    """A folder ``name`` holding relu.py (which imports relu_derivative from helpers.py) and helpers.py."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "helpers.py").write_text(helpers_text)
    return edited(folder, "relu", RELU_WITH_HELPER, HELPER_IMPORT)


RIGHT_HELPER = "def relu_derivative(x):\n    return (x > 0) * 1.0\n"
WRONG_HELPER = "def relu_derivative(x):\n    return (x < 0) * 1.0\n"


def test_each_students_helpers_module_is_their_own_in_either_order(tmp_path):
    # /tmp/dr3/loop.py: helpers stayed in sys.modules, so the second student's `import helpers`
    # got the first student's module: a wrong solution graded after a right one PASSED
    right = student_with_helpers(tmp_path, "right", RIGHT_HELPER)
    wrong = student_with_helpers(tmp_path, "wrong", WRONG_HELPER)
    assert [check(path).passed for path in (right, wrong, right, wrong)] == [True, False, True, False]
    assert [check(path).passed for path in (wrong, right, wrong)] == [False, True, False]
    assert "helpers" not in sys.modules


def test_a_helpers_module_mended_between_two_checks_is_read_again(tmp_path):
    # a notebook: check, fix helpers.py, check again in the same process
    path = student_with_helpers(tmp_path, "student", WRONG_HELPER)
    assert not check(path).passed
    (path.parent / "helpers.py").write_text(RIGHT_HELPER + "# mended\n")  # another size: no stale cache
    assert check(path).passed


def test_modules_the_notebook_imported_before_the_check_stay_the_same_objects(tmp_path, monkeypatch):
    """A notebook in the student's folder imported its own module (mylayers.Twice), built a model
    with it, graded relu.py, then saved: dropping mylayers (as this session's first loader did for
    every module from the folder) made Twice a new object and the save failed ("not the same
    object as mylayers.Twice"); working from a clone, scratchnet itself was dropped. Only what the
    load itself imported goes; what was there before stays, as in plain Python."""
    import pickle

    path = student_with_helpers(tmp_path, "student", RIGHT_HELPER)
    (path.parent / "notebook_layers.py").write_text("class Twice:\n    factor = 2\n")
    monkeypatch.syspath_prepend(str(path.parent))
    for name in ("helpers", "notebook_layers"):  # other tests' modules of these names
        monkeypatch.delitem(sys.modules, name, raising=False)
    import helpers
    import notebook_layers

    try:
        assert check(path).passed
        assert sys.modules["notebook_layers"] is notebook_layers and sys.modules["helpers"] is helpers
        assert pickle.loads(pickle.dumps(notebook_layers.Twice())).factor == 2  # the class is found as it was
    finally:
        sys.modules.pop("notebook_layers", None)
        sys.modules.pop("helpers", None)


def test_a_package_beside_the_file_and_its_submodules_are_dropped_after_loading(tmp_path):
    from scratchnet.exercises.loader import load_module

    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "__init__.py").write_text("")
    (tmp_path / "tools" / "grads.py").write_text("SCALE = 2.0\n")
    (tmp_path / "student.py").write_text("from tools.grads import SCALE\n")
    assert load_module(tmp_path / "student.py").SCALE == 2.0
    assert "tools" not in sys.modules and "tools.grads" not in sys.modules
    assert "numpy" in sys.modules and "scratchnet.exercises" in sys.modules  # nothing else dropped


def test_a_package_installed_below_the_students_folder_is_kept(tmp_path, monkeypatch):
    # a student's file in the home folder, numpy in ~/.local/lib/python3.x/site-packages
    from scratchnet.exercises.loader import load_module

    (tmp_path / "lib" / "installed").mkdir(parents=True)
    (tmp_path / "lib" / "installed" / "__init__.py").write_text("VERSION = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    import installed

    try:
        (tmp_path / "student.py").write_text("import installed\nVERSION = installed.VERSION\n")
        assert load_module(tmp_path / "student.py").VERSION == 1
        assert sys.modules["installed"] is installed
    finally:
        sys.modules.pop("installed", None)


def test_a_student_file_does_not_inherit_the_loaders_future_annotations(tmp_path):
    # loader.py has `from __future__ import annotations`; compile() passed it on to the student's
    # file, whose annotations became strings (python file.py keeps them objects)
    from scratchnet.exercises.loader import load_module

    (tmp_path / "annotated.py").write_text("def f(x: int) -> float:\n    return x\n")
    module = load_module(tmp_path / "annotated.py")
    assert module.f.__annotations__ == {"x": int, "return": float}


def test_a_cp1252_comment_gets_the_same_verdict_with_and_without_name(tmp_path):
    # a comment saved by a Windows editor as cp1252: compile() reads it (load_module, --name,
    # gradcheck FILE:Class); `exercise check FILE` refused the file as 'not a text file'
    text = (SOLUTIONS / "relu.py").read_text(encoding="utf-8")
    text = text.replace("import numpy as np\n", "# dérivée: dy * 1[x > 0]\nimport numpy as np\n", 1)
    right = tmp_path / "relu.py"
    right.write_bytes(text.encode("cp1252"))
    assert check(right).passed and check(right, "relu").passed
    wrong = tmp_path / "relu_wrong.py"
    wrong.write_bytes(text.replace("return dy * (x > 0)", "return dy * (x < 0)").encode("cp1252"))
    assert not check(wrong).passed and not check(wrong, "relu").passed
    for args in ([str(right)], [str(right), "--name", "relu"]):
        result = subprocess.run([sys.executable, "-m", "scratchnet", "exercise", "check", *args],
                                cwd=tmp_path, capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        assert result.returncode == 0, result.stdout + result.stderr
        assert "PASSED" in result.stdout


def test_an_edit_in_the_same_second_with_the_same_size_grades_the_new_code(tmp_path, monkeypatch):
    # /tmp/grader t5: importlib's __pycache__/relu.pyc is keyed on (mtime in seconds, size)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # a student's shell writes bytecode
    wrong = edited(tmp_path, "relu", ("return dy * (x > 0)", "return dy * (x < 0)"))
    stamp = wrong.stat().st_mtime_ns
    assert not check(wrong).passed
    right = edited(tmp_path, "relu")  # same size, written back to the same modification time
    assert right.stat().st_size == len(wrong.read_bytes())
    os.utime(right, ns=(stamp, stamp))
    assert check(right).passed
    assert not (tmp_path / "__pycache__").exists()


def test_a_utf8_comment_loads_in_the_c_locale(tmp_path):
    path = edited(tmp_path, "relu", ("return dy * (x > 0)", "return dy * (x > 0)  # δ = dy·1[x>0]"))
    result = subprocess.run([sys.executable, "-m", "scratchnet", "exercise", "check", str(path)],
                            cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), "LC_ALL": "C", "LANG": "C",
                                 "PYTHONUTF8": "0", "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout


# ---------------------------------------------------------------- false passes
def test_a_zero_d_array_loss_is_compared_like_a_float(tmp_path):
    # /tmp/grader/work/softmax_cross_entropy_noshift_asarray.py: np.asarray(loss) skipped the value
    # check, and the overflow case has no gradient check: NaN passed
    no_shift = edited(tmp_path, "softmax_cross_entropy",
                      ("shifted = logits - logits.max(axis=1, keepdims=True)", "shifted = logits"),
                      ("return float(-log_p[np.arange(n), labels].sum() / n)",
                       "return np.asarray(-log_p[np.arange(n), labels].sum() / n)"))
    with np.errstate(all="ignore"):
        report = check(no_shift)
    assert [case.passed for case in report.cases] == [True, True, False]
    assert report.cases[2].messages[0].startswith("forward: your loss inf, expected ")
    epsilon_in_log = edited(tmp_path, "softmax_cross_entropy",  # 18.4 instead of 813.5
                            ("log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))",
                             "log_p = np.log(np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)"
                             " + 1e-12)"),
                            ("return float(-log_p[np.arange(n), labels].sum() / n)",
                             "return (-log_p[np.arange(n), labels].sum(keepdims=True) / n).squeeze()"))
    case = check(epsilon_in_log).cases[2]
    assert not case.passed and case.messages[0].startswith("forward: your loss 18.4")
    right = edited(tmp_path, "softmax_cross_entropy",
                   ("return float(-log_p[np.arange(n), labels].sum() / n)",
                    "return np.asarray(-log_p[np.arange(n), labels].sum() / n)"))
    assert check(right).passed


def dropout_with(tmp_path, old, new):
    return edited(tmp_path, "dropout", (old, new))


DRAW = "mask = self.random_generator().random(x.shape) >= self.rate"


def test_a_dropout_mask_that_never_changes_fails_and_says_why(tmp_path):
    messages = {}
    for name, new in [
            ("fixed seed", "mask = np.random.default_rng(0).random(x.shape) >= self.rate"),
            ("drawn once", "if getattr(self, '_mask', None) is None:\n"
                           "            self._mask = self.random_generator().random(x.shape) >= self.rate\n"
                           "        mask = self._mask"),
            ("shared by the batch", "mask = np.broadcast_to(self.random_generator().random(x.shape[1:])"
                                    " >= self.rate, x.shape)"),
            ("np.random", "mask = np.random.random(x.shape) >= self.rate")]:
        report = check(dropout_with(tmp_path, DRAW, new))
        assert [case.passed for case in report.cases] == [False, False, True], name
        messages[name] = {case.messages[0] for case in report.cases[:2]}
        assert len(messages[name]) == 1, messages[name]
    assert messages["fixed seed"] == messages["drawn once"] == {
        "training: two training forwards dropped the same units: draw a new mask at every forward from "
        "self.random_generator() (not once, kept and reused; not from a generator made anew with a fixed "
        "seed at each call)"}
    assert messages["shared by the batch"] == {
        "training: every sample of the batch got the same mask: draw one mask of the input's whole shape "
        "x.shape (N, ...), not of x.shape[1:] (one per sample)"}
    assert messages["np.random"] == {
        "training: the mask does not follow the layer's generator (layer.set_rng(default_rng(1)) and (2) "
        "must give different masks, (1) twice the same): draw it from self.random_generator(), never "
        "from np.random or a generator of your own"}
    assert check(SOLUTIONS / "dropout.py").passed


def test_a_dropout_drawing_from_self_rng_passes_and_check_layer_checks_it(tmp_path):
    # /tmp/dr3/rnglayer.py: the in-place-input check ran forward before set_rng, so a layer drawing
    # from self.rng (README: random layers draw from layer.rng) raised on rng None
    from scratchnet.gradcheck import check_layer

    from_rng = (DRAW, "mask = self.rng.random(x.shape) >= self.rate")
    path = edited(tmp_path, "dropout", from_rng)
    report = check(path)
    assert [case.passed for case in report.cases] == [True, True, True], str(report)
    layer_report = check_layer(load_module(path).Dropout(0.5), (6,), training=True)
    assert layer_report.passed and not layer_report.contract, str(layer_report)
    doubled = edited(tmp_path, "dropout", from_rng, ("return dy * self.cache", "return 2 * dy * self.cache"),
                     filename="doubled.py")
    report = check(doubled)  # a wrong backward still fails, on the gradient
    assert [case.passed for case in report.cases] == [False, False, True]
    assert "contract" not in str(report)
    layer_report = check_layer(load_module(doubled).Dropout(0.5), (6,), training=True)
    assert not layer_report.passed and not layer_report.contract


def test_relu_and_the_residual_block_take_0_at_exact_zeros(tmp_path):
    # /tmp/grader: dy * (x >= 0) passed: no case had an exact zero
    relu = check(edited(tmp_path, "relu", ("return dy * (x > 0)", "return dy * (x >= 0)")))
    assert [case.passed for case in relu.cases] == [True, True, True, False]
    assert relu.cases[3].messages[0].startswith("dx (backward) differs from scratchnet's in ")
    block = check(edited(tmp_path, "residual_block", ("dz = dh * (z > 0)", "dz = dh * (z >= 0)")))
    assert [case.passed for case in block.cases] == [True, True, True, False]
    assert block.cases[3].messages == [
        "dx and grads['b1'] wrong where z = x W1 + b1 is exactly 0 (here b1 = 0 and x[0] = 0): relu'(0) "
        "is taken as 0, as the starter says: the mask is (z > 0), not (z >= 0)"]
    for name in ("relu", "residual_block", "sigmoid", "tanh"):
        assert check(SOLUTIONS / f"{name}.py").passed, name
    skip_missing = check(edited(tmp_path, "residual_block", ("return dz @ W1.T + dy", "return dz @ W1.T")))
    assert "exactly 0" not in str(skip_missing)  # a differently wrong backward: the gradient check says it
    assert not any(case.passed for case in skip_missing.cases)


# ---------------------------------------------------------------- false fails
def test_a_backward_returning_dx_and_dw_is_named_not_blamed_on_numpy(tmp_path, capsys):
    # /tmp/grader/work/dense_backward_7.py: compare_repeat's np.shape((dx, dW)) raised outside the try
    from scratchnet import cli

    path = edited(tmp_path, "dense_backward", ("return dy @ W.T", "return dy @ W.T, self.grads['W']"))
    report = check(path)
    assert not any(case.passed for case in report.cases)
    for case in report.cases:
        assert "\n  contract: dense: backward returned a tuple, expected dx as a numpy array of shape (" in \
            "\n".join(case.messages)
    assert "ValueError" not in str(report) and "sequence" not in str(report)
    assert cli.main(["gradcheck", f"{path}:Dense", "--config", '{"units": 3}', "--input-shape", "4"]) == 1
    out = capsys.readouterr()
    assert "dense: backward returned a tuple, expected dx as a numpy array of shape (" in out.out
    assert "Traceback" not in out.out + out.err


# ---------------------------------------------------------------- hints that sent the student astray
IN_PLACE = ("forward modified its input in place (e.g. x /= k * k, x -= x.max(...)): the caller's "
            "array changed under it (the layer below, the next call); compute a new array instead "
            "(x = x / (k * k))")


def test_a_forward_that_modifies_its_input_in_place_is_told_so(tmp_path):
    # /tmp/grader/work/avg_pool_0.py: "calling forward twice gave different results ... self.grads (+=)"
    zeros = "y = np.zeros((x.shape[0], out_h, out_w, channels), dtype=x.dtype)"
    path = edited(tmp_path, "avg_pool", (zeros, zeros + "\n        x /= k * k"),
                  ("].mean(axis=(1, 2))", "].sum(axis=(1, 2))"))
    report = check(path)
    assert not any(case.passed for case in report.cases)
    for case in report.cases:
        assert case.messages == ["gradient check of your backward against your forward:",
                                 f"  contract: avg_pool2d: {IN_PLACE}"]
    shifted_in_place = edited(tmp_path, "softmax_cross_entropy",
                              ("shifted = logits - logits.max(axis=1, keepdims=True)",
                               "logits -= logits.max(axis=1, keepdims=True)\n        shifted = logits"))
    report = check(shifted_in_place)
    assert [case.passed for case in report.cases] == [False, False, True]  # no gradient check in case 3
    assert f"  contract: softmax_cross_entropy: {IN_PLACE}" in report.cases[0].messages


def test_a_forward_that_differs_between_calls_is_not_asked_about_grads():
    from scratchnet.gradcheck_contract import compare_repeat
    from scratchnet.layers import Dense

    layer = Dense(2)
    forward = compare_repeat(layer, np.zeros(3), np.ones(3), "forward(x, training=False)")
    assert forward == ["dense: calling forward(x, training=False) twice gave different results (max "
                       "difference 1): does it change its parameters or its buffers, or draw new random "
                       "numbers?"]
    backward = compare_repeat(layer, np.zeros(3), np.ones(3), "backward (dx)")
    assert "accumulate into self.grads (+=)" in backward[0]


def test_a_float32_forward_is_named_with_enough_digits_to_see_the_difference(tmp_path):
    # /tmp/grader t8: "output does not depend on input (bias never added)", "all on a kink"
    zeros = "y = np.zeros((x.shape[0], out_h, out_w, channels), dtype=x.dtype)"
    path = edited(tmp_path, "avg_pool", (zeros, zeros.replace("dtype=x.dtype", "dtype=np.float32")))
    report = check(path)
    assert not any(case.passed for case in report.cases)
    text = str(report)
    assert "does not depend" not in text and "kink" not in text and "bias" not in text
    for case in report.cases:
        contract = case.messages[-1]
        assert contract == ("  contract: avg_pool2d: forward returned float32 for a float64 input: compute "
                            "in the input's dtype (np.zeros(shape, dtype=x.dtype), no cast to float32)")
        if case.label.startswith("ties"):
            continue  # means of 0, 1, 2 over 4 are exact in float32: the forward agrees
        forward = case.messages[0]
        assert forward.splitlines()[1] == ("  diagnosis: yours is float32, which holds about 6 digits: keep "
                                           "the input's dtype (np.zeros(shape, dtype=x.dtype), no cast to "
                                           "float32)")
        yours, theirs = forward.split(": yours ")[1].split(")")[0].split(", AvgPool2D's ")
        assert yours != theirs and abs(float(yours) - float(theirs)) <= 1e-6 * abs(float(theirs))


def test_distinct_digits_adds_digits_only_where_six_look_equal():
    from scratchnet.exercises.grader import distinct_digits

    assert distinct_digits(-1.5, 2.25) == ("-1.5", "2.25")
    assert distinct_digits(-1.14333, -1.1433301) == ("-1.14333", "-1.1433301")  # 6 digits alike
    assert distinct_digits(1.0000001, 1.0000002) == ("1.0000001", "1.0000002")


# ---------------------------------------------------------------- from the "extend" reviewer
NARROW_LAYER = '''
import numpy as np
from scratchnet.layers import Layer


class FirstThree(Layer):
    def forward(self, x, training=False):  # declares (6,) by the default output_shape
        return x[:, :3]

    def backward(self, dy):
        return np.pad(dy, ((0, 0), (0, 3)))
'''


def test_check_layer_compares_forward_with_output_shape(tmp_path):
    from scratchnet.cli_exercise import load_class
    from scratchnet.gradcheck import check_layer

    (tmp_path / "narrow.py").write_text(NARROW_LAYER)
    report = check_layer(load_class(f"{tmp_path / 'narrow.py'}:FirstThree")(), (6,))
    assert not report.passed
    assert report.contract == ["first_three: forward returned samples of shape (3,), but output_shape((6,)) "
                               "says (6,): a model builds the next layer for output_shape; make the two "
                               "agree"]


MY_LOSS = '''
import numpy as np


class MyCE:
    name = "my_ce"

    def forward(self, logits, labels):
        self.cache = logits
        return 0.0

    def backward(self):
        return np.zeros_like(self.cache)
'''


def test_gradcheck_of_a_loss_points_to_check_loss(tmp_path, capsys):
    import pytest

    from scratchnet import cli
    from scratchnet.cli_exercise import load_class
    from scratchnet.gradcheck import check_layer

    (tmp_path / "mylib.py").write_text(MY_LOSS)
    target = f"{tmp_path / 'mylib.py'}:MyCE"
    assert cli.main(["gradcheck", target, "--input-shape", "4"]) == 2
    out = capsys.readouterr()
    assert out.err == (f"scratchnet gradcheck: {target}: MyCE is not a Layer (no build, no params): a loss? "
                       "check it with scratchnet.gradcheck.check_loss(loss, logits, labels)\n")
    assert "Traceback" not in out.out + out.err
    with pytest.raises(TypeError, match=r"^check_layer: MyCE is not a Layer \(no build, no params\)"):
        check_layer(load_class(target)(), (4,))


def test_exercise_help_shows_the_workflow_and_how_to_start_again(capsys):
    import pytest

    from scratchnet import cli

    with pytest.raises(SystemExit):
        cli.main(["exercise", "--help"])
    out = capsys.readouterr().out
    assert "  scratchnet exercise start relu       write ./relu.py (never overwrites)" in out
    assert "  scratchnet exercise check relu.py    grade it" in out
    assert "  scratchnet exercise start relu --overwrite\n" in out
    assert "start again (your relu.py is replaced)" in out


def answer_lines(name) -> set[str]:
    """The lines of exercise ``name``'s solution that its starter does not give (the answer),
    stripped, leaving out short ones ('return y', 'for n in range(...)' loops stay: they are long)."""
    from scratchnet.exercises import starter_text

    given = {line.strip() for line in starter_text(name).splitlines()}
    solution = (SOLUTIONS / f"{name}.py").read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in solution if line.strip() not in given and len(line.strip()) > 30}


def test_no_starter_gives_away_a_later_exercises_answer():
    # conv_forward_loops' starter carried conv_backward_loops' solution inline, one line apart
    from scratchnet.exercises import EXERCISES, starter_text

    names = list(EXERCISES)
    for position, name in enumerate(names):
        answer = answer_lines(name)
        for earlier in names[:position]:
            shared = answer & {line.strip() for line in starter_text(earlier).splitlines()}
            assert not shared, f"the starter of {earlier} gives lines of {name}'s answer: {sorted(shared)}"
