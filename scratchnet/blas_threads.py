"""How many threads NumPy's and SciPy's BLAS use in THIS process, changed while running.

The matrix products behind every convolution run in a BLAS (OpenBLAS in NumPy's and SciPy's
wheels), which starts one worker thread per core. On a machine whose cores are busy with other
programs, each multi-threaded product waits for a core to come free: on the project's loaded
2-core machines a digit_cnn training step took 31 ms with one thread and over a second with two
(benchmarks/README.md). ``scratchnet train --threads N`` therefore calls ``set_blas_threads(N)``
before training (default 1).

The usual way is the environment variable ``OPENBLAS_NUM_THREADS=N``, read once when NumPy loads
OpenBLAS, so it must be set before ``import numpy``; the command cannot, because NumPy is loaded
by then. The BLAS's own set-threads function changes the count at run time. Finding every
loaded BLAS library (NumPy and SciPy each bundle their own, with renamed symbols) and calling
that function is what ``threadpoolctl`` (the library scikit-learn uses for this) does, so this
module asks it. Nothing else is changed: not the environment, not OPENBLAS_CORETYPE (which
kernels run), not other processes.
"""

from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits

from .option_checks import check_count


def loaded_blas_libraries() -> list[str]:
    """Paths of the BLAS libraries loaded in this process (imports NumPy and SciPy's BLAS)."""
    return sorted(blas_threads())


def _load_blas() -> None:
    import numpy  # noqa: F401  (loads NumPy's BLAS)
    import scipy.linalg  # noqa: F401  (loads SciPy's)


def blas_threads() -> dict[str, int]:
    """{library path: its current thread count} for every loaded BLAS (NumPy's and SciPy's loaded first)."""
    _load_blas()
    return {info["filepath"]: int(info["num_threads"]) for info in threadpool_info()
            if info.get("user_api") == "blas"}


def set_blas_threads(n: int) -> dict[str, int]:
    """Use ``n`` threads in every loaded BLAS from now on; returns ``blas_threads()`` afterwards.

    An empty dict means no BLAS was found (then nothing changed).
    """
    n = check_count(n, "n", "set_blas_threads", 1)
    _load_blas()  # NumPy's and SciPy's BLAS, so both are limited
    threadpool_limits(limits=int(n), user_api="blas")  # kept: the limit is not undone
    return blas_threads()
