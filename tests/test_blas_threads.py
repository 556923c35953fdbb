"""scratchnet.blas_threads: the BLAS thread count of this process, read and changed at run time."""

import numpy as np
import pytest

from scratchnet import blas_threads as bt


@pytest.fixture
def restore_threads():
    before = bt.blas_threads()
    yield before
    for count in set(before.values()):  # every library started with the same count here
        bt.set_blas_threads(count)


def test_numpy_and_scipy_blas_are_found():
    paths = bt.loaded_blas_libraries()
    if not paths:
        pytest.skip("no BLAS that threadpoolctl knows is loaded here")
    assert len(paths) >= 1 and all(isinstance(path, str) for path in paths)
    counts = bt.blas_threads()
    assert counts and all(isinstance(n, int) and n >= 1 for n in counts.values())


@pytest.mark.parametrize("n", [1, 2, 3])
def test_set_blas_threads_changes_every_library(restore_threads, n):
    if not restore_threads:
        pytest.skip("no OpenBLAS found")
    after = bt.set_blas_threads(n)
    assert after == {name: n for name in restore_threads}   # every library, exactly n
    assert bt.blas_threads() == after
    a = np.arange(64 * 64, dtype=np.float64).reshape(64, 64) / 4096
    np.testing.assert_allclose(a @ a.T, np.einsum("ik,jk->ij", a, a), rtol=1e-12)  # BLAS still right


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                        (True, TypeError), ("2", TypeError), (2.0, TypeError)])
def test_set_blas_threads_refuses_a_bad_count(bad, error):
    hint = r" \(a float: pass int\(\.\.\.\), or compute it with //\)" if bad == 2.0 else ""  # whole float
    with pytest.raises(error, match=rf"^set_blas_threads: n must be an int >= 1, got {bad!r}{hint}$"):
        bt.set_blas_threads(bad)
