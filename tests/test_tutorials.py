"""Every lesson in tutorials/ runs and says what it promises."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_lesson(name, tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCRATCHNET_TUTORIAL_OUT": str(tmp_path),
           "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(ROOT / "tutorials" / name), *args], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_lesson_1_backprop_by_hand(tmp_path):
    out = run_lesson("01_backprop_by_hand.py", tmp_path)
    assert out.count("matches: True") == 3 and "PASSED" in out


def test_lesson_2_own_layer(tmp_path):
    out = run_lesson("02_write_your_own_layer.py", tmp_path)
    assert "PASSED" in out and "Your layer is correct." in out


@pytest.mark.slow
def test_lesson_3_train_a_cnn(tmp_path):
    out = run_lesson("03_train_a_cnn.py", tmp_path, "--quick")
    assert "PASSED" in out and "test accuracy:" in out
    accuracy = float(out.split("test accuracy:")[1].split()[0])
    assert accuracy > 0.5  # 500 training images, one epoch: chance is 0.1
    for name in ("filters.png", "feature_maps.png", "confusion.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
