"""examples/transfer_learning.py in its quick mode: the lesson runs offline and draws its figure."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "transfer_learning.py"


def load_example():
    spec = importlib.util.spec_from_file_location("transfer_learning_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digit_splits_keep_the_two_tasks_apart():
    example = load_example()
    (x_pre, y_pre), (x_few, y_few), (x_test, y_test) = example.digit_splits(120, 500)
    assert x_pre.shape == (500, 28, 28, 1) and set(np.unique(y_pre)) == {0, 1, 2, 3, 4}
    assert x_few.shape == (120, 28, 28, 1) and set(np.unique(y_few)) <= {0, 1, 2, 3, 4}
    assert len(x_test) > 800 and set(np.unique(y_test)) == {0, 1, 2, 3, 4}   # digits 5-9, relabelled


@pytest.mark.slow
def test_quick_lesson_runs_freezes_and_plots(tmp_path):
    example = load_example()
    path = tmp_path / "transfer.png"
    results = example.run(plot_path=path, quick=True, verbose=False)
    epochs = example.QUICK["few_epochs"]
    for label in ("transfer", "scratch"):
        assert len(results[label]["curve"]) == epochs and results[label]["seconds"] > 0
    assert results["transfer"]["frozen_unchanged"]            # the convolutional part did not move
    assert results["transfer"]["accuracy"] > 0.6 and results["scratch"]["accuracy"] > 0.3  # chance: 0.2
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
