"""The course in tutorials/: every lesson runs, as a script and as a Jupyter notebook.

Each lesson runs in its quick mode (SCRATCHNET_QUICK=1: small data, one epoch) twice:

* as a script, in a subprocess whose working folder is a tmp dir;
* converted to a notebook with jupytext and executed cell by cell in a real Jupyter kernel
  (nbclient + ipykernel, the kernel started from this Python), so "it opens in Jupyter" is
  tested, not assumed. Skipped cleanly when jupytext, nbclient or ipykernel is missing
  (`pip install ".[dev]"` installs them).

Both runs write their figures into a folder the test controls (SCRATCHNET_FIGURES); the test
checks they are real PNG images of a plausible size with something drawn on them, that the
graded exercise at the end of the lesson passed, and what each lesson promises to print.
"""

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
LESSONS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
PNG = b"\x89PNG\r\n\x1a\n"

# What each lesson must print (besides the graded exercise's "PASSED"), by file-name prefix.
PROMISES = {
    "01": ["matches scipy.signal.correlate2d: True", "output size formula agrees with Conv2D: True"],
    "02": ["dx matches: True", "dW matches: True", "db matches: True",
           "float64 at the library's step gradcheck.EPS = 1e-06"],
    "03": ["dW by hand matches Conv2D: True", "dx = full convolution with the flipped kernel: True"],
    "04": ["only elements under overlapping windows are wrong", "global average = mean: True"],
    "05": ["test accuracy:", "Total params: 61,706", "note: 9 arrays were checked on a random sample"],
    "06": ["seconds per forward + backward", "copies per cell = windows covering it: True"],
    "07": ["HealthMonitor on the broken run:", "HealthMonitor on the good run:", "early stopping"],
    "08": ["BatchNorm backward matches the formula: True", "two 3x3 see 5x5: True"],
    "09": ["per-class accuracy", "test accuracy:"],
    "10": ["Grad-CAM", "saliency", "feature inversion", "deep dream", "style transfer: loss"],
    "11": ["UnsafeModelError", "the marker file exists: False", "resumed bitwise: True",
           "the classes given in allowed_classes.\n"],              # the error's first sentence, whole
    "12": ["compare_training", "LeakyReLU slope learned:",
           "Conv1D matches Conv2D with a (1, k) kernel: True", "check_layer LeakyReLU(0.3) on (6, 4): PASSED",
           "check_layer Conv1D(4, 3, stride=2) on (11, 3): PASSED",
           "compare_training Conv1D(32, 3, stride=2) in the model: PASSED"],
}


def lesson_id(path):
    return path.stem


def lesson_env(figures, script=True, temporary=None):
    """``temporary``: a folder for TMPDIR, to see what the lesson leaves behind in it."""
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "SCRATCHNET_QUICK": "1",
           "SCRATCHNET_FIGURES": str(figures)}
    if temporary is not None:
        env["TMPDIR"] = str(temporary)
    env.pop("MPLBACKEND", None)
    if script:
        env["MPLBACKEND"] = "Agg"  # headless; a notebook kernel picks its own (inline) backend
    return env


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG, "not a PNG file"
    return struct.unpack(">II", data[16:24])


def check_figures(folder: Path) -> list[str]:
    """Every figure is a PNG of plausible size with something drawn on it; returns the names."""
    from matplotlib.image import imread

    figures = sorted(folder.glob("*.png"))
    assert figures, f"the lesson wrote no figure into {folder}"
    for path in figures:
        data = path.read_bytes()
        width, height = png_size(data)
        assert 200 <= width <= 5000 and 150 <= height <= 5000, f"{path.name}: {width}x{height} pixels"
        assert len(data) > 4000, f"{path.name}: only {len(data)} bytes"
        pixels = imread(path)
        assert np.std(pixels[..., :3]) > 0.02, f"{path.name}: the image is (nearly) blank"
    return [path.name for path in figures]


def check_output(lesson: Path, text: str) -> None:
    assert "PASSED" in text, f"{lesson.name}: the graded exercise did not pass:\n{text[-3000:]}"
    for promise in PROMISES[lesson.name[:2]]:
        assert promise in text, f"{lesson.name}: expected {promise!r} in the output:\n{text[-3000:]}"


# ---------------------------------------------------------------------- the form of every lesson
def test_every_lesson_is_listed_and_promised():
    assert len(LESSONS) == 12, [path.name for path in LESSONS]
    readme = (TUTORIALS / "README.md").read_text()
    for lesson in LESSONS:
        assert lesson.name in readme, f"{lesson.name} is missing from tutorials/README.md"
        assert lesson.name[:2] in PROMISES
        minutes = re.search(r"about (\d+) minutes", lesson.read_text()).group(1)
        row = next(line for line in readme.splitlines() if f"[`{lesson.name}`]" in line)
        assert f"| {minutes} min |" in row, f"{lesson.name} says {minutes} minutes, the course table: {row}"
    assert "tutorials/README.md" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("lesson", LESSONS, ids=lesson_id)
def test_lesson_form(lesson):
    """Percent cells; the top says what it teaches and how long; formulas; a graded exercise."""
    text = lesson.read_text()
    assert text.startswith("# %% [markdown]"), "the lesson opens with a markdown cell"
    top = text.split("# %%", 2)[1]
    assert re.search(r"\bteaches\b", top) and re.search(r"\d+ minutes", top), top
    assert text.count("# %% [markdown]") >= 5 and text.count("# %%\n") >= 5
    assert "$$" in text, "the math is written out in markdown formulas"
    assert re.search(r"## Exercise", text) and re.search(r"scratchnet exercise|check_layer", text)
    assert "SCRATCHNET_FIGURES" in text and "SCRATCHNET_QUICK" in text
    assert "exercise_solutions" not in text, "a lesson grades scratchnet's own layers, never the answer"
    assert "savefig(" in text or "save_path=" in text or "save(" in text


# ---------------------------------------------------------------------- as a script
@pytest.mark.parametrize("lesson", LESSONS, ids=lesson_id)
def test_lesson_runs_as_script(lesson, tmp_path):
    figures = tmp_path / "figures"
    work, temporary = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    temporary.mkdir()
    result = subprocess.run([sys.executable, str(lesson)], cwd=work,
                            env=lesson_env(figures, temporary=temporary), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    check_output(lesson, result.stdout)
    check_figures(figures)
    leftovers = [p.name for p in work.iterdir()]
    assert leftovers == [], f"the lesson wrote into its working folder: {leftovers}"
    left_in_tmp = [p.name for p in temporary.iterdir()]
    assert left_in_tmp == [], f"the lesson left temporary folders behind: {left_in_tmp}"


# ---------------------------------------------------------------------- as a notebook
def _kernel_manager(tmp_path):
    """A kernel started from THIS Python (the one running the tests), whatever is installed."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = tmp_path / "kernels" / "scratchnet-course"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "scratchnet course", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name="scratchnet-course", kernel_spec_manager=specs)


def _notebook_text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "data" in output:
                parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS, ids=lesson_id)
def test_lesson_runs_as_notebook(lesson, tmp_path):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = jupytext.read(lesson)  # the percent format: one cell per "# %%"
    assert len(notebook.cells) >= 10
    assert sum(cell.cell_type == "markdown" for cell in notebook.cells) >= 5
    figures = tmp_path / "figures"
    work = tmp_path / "work"
    work.mkdir()
    client = nbclient.NotebookClient(notebook, km=_kernel_manager(tmp_path), timeout=600,
                                     resources={"metadata": {"path": str(work)}})
    client.execute(env=lesson_env(figures, script=False))
    check_output(lesson, _notebook_text(notebook))
    check_figures(figures)
    shown = [output for cell in notebook.cells for output in cell.get("outputs", [])
             if "image/png" in output.get("data", {})]
    assert shown, "the notebook displays no figure"


# ---------------------------------------------------------------------- the documented .ipynb command
def test_make_notebooks_command_writes_notebooks_without_outputs(tmp_path):
    """The command in the Makefile (and tutorials/README.md) turns every lesson into an .ipynb."""
    pytest.importorskip("jupytext")
    makefile = (ROOT / "Makefile").read_text()
    command = re.search(r"^notebooks:\n\t\$\(PYTHON\) (.+)$", makefile, re.M).group(1)
    assert command in (TUTORIALS / "README.md").read_text()
    for lesson in LESSONS:
        (tmp_path / "tutorials").mkdir(exist_ok=True)
        (tmp_path / "tutorials" / lesson.name).write_text(lesson.read_text())
    args = command.replace("tutorials/[0-9][0-9]_*.py", "").split()
    files = [str(tmp_path / "tutorials" / lesson.name) for lesson in LESSONS]
    result = subprocess.run([sys.executable, *args, *files], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    written = sorted((tmp_path / "tutorials" / "notebooks").glob("*.ipynb"))
    assert [path.stem for path in written] == [lesson.stem for lesson in LESSONS]
    for path in written:
        notebook = json.loads(path.read_text())
        assert notebook["metadata"]["kernelspec"]["name"] == "python3"
        code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
        assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
