"""The README's example runs as printed (one epoch instead of three), and its commands exist."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def fenced_after(marker: str, text: str) -> str:
    return re.search(re.escape(marker) + r"\n```\n(.*?)\n```", text, re.S).group(1)


@pytest.mark.slow
def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    code = re.search(r"## Example\n\n```python\n(.*?)```", text, re.S).group(1)
    assert code.count("\n") <= 20
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("epochs=3", "epochs=1"), "README example", "exec"), {})
    out = capsys.readouterr().out
    assert "Total params" in out and "PASSED" in out
    assert (tmp_path / "digits.sn").exists()
    accuracy = float(re.search(r"'accuracy': ([0-9.]+)", out).group(1))
    assert accuracy > 0.9


def test_readme_has_the_two_commands():
    text = README.read_text()
    assert fenced_after("<!-- main-command -->", text).endswith("scratchnet train")
    assert fenced_after("<!-- test-command -->", text).endswith("python -m pytest")
