"""How many threads NumPy's and SciPy's OpenBLAS use in THIS process, changed while running.

The matrix products behind every convolution run in OpenBLAS, which starts one worker thread per
core. On a machine whose cores are busy with other programs, each multi-threaded product waits
for a core to come free: on the project's loaded 2-core machines a digit_cnn training step took
31 ms with one thread and over a second with two (benchmarks/README.md). ``scratchnet train
--threads N`` therefore calls ``set_blas_threads(N)`` before training (default 1).

The usual way is the environment variable ``OPENBLAS_NUM_THREADS=N``, read once when NumPy loads
OpenBLAS, so it must be set before ``import numpy``. After that, OpenBLAS's own function
``openblas_set_num_threads(n)`` changes the count; NumPy's and SciPy's wheels each bundle their
own OpenBLAS, with the symbol renamed (``scipy_openblas_set_num_threads64_`` for NumPy's 64-bit
integer build, ``scipy_openblas_set_num_threads`` for SciPy's). This module finds the loaded
libraries and calls whichever of these functions each exports. Nothing else is changed: not the
environment, not OPENBLAS_CORETYPE (which kernels run), not other processes. A NumPy linked to
another BLAS (MKL, Accelerate) is left alone and reported as such.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re

_PREFIXES = ("scipy_openblas_", "openblas_")
_SUFFIXES = ("64_", "")


def loaded_openblas_libraries() -> list[str]:
    """Paths of the OpenBLAS shared libraries loaded in this process (imports NumPy and SciPy's BLAS)."""
    import numpy  # noqa: F401  (loads NumPy's OpenBLAS)
    import scipy.linalg  # noqa: F401  (loads SciPy's)

    try:
        with open("/proc/self/maps") as maps:  # Linux: every mapped file of this process
            found = re.findall(r"(/\S*openblas\S*\.so\S*)", maps.read())
    except OSError:  # macOS, Windows: look in the wheels' bundled-library folders
        import numpy
        import scipy

        found = []
        for package in (numpy, scipy):
            root = os.path.dirname(package.__file__)
            for folder in (os.path.join(root, ".dylibs"), root + ".libs"):
                found += glob.glob(os.path.join(folder, "*openblas*"))
    return sorted(set(found))


def _function(library, verb: str):
    """The library's ``<prefix><verb>_num_threads<suffix>`` function, or None."""
    for prefix in _PREFIXES:
        for suffix in _SUFFIXES:
            function = getattr(library, f"{prefix}{verb}_num_threads{suffix}", None)
            if function is not None:
                return function
    return None


def blas_threads() -> dict[str, int]:
    """{library file name: its current thread count} for every loaded OpenBLAS."""
    counts = {}
    for path in loaded_openblas_libraries():
        getter = _function(ctypes.CDLL(path), "get")
        if getter is not None:
            getter.restype = ctypes.c_int
            counts[os.path.basename(path)] = int(getter())
    return counts


def set_blas_threads(n: int) -> dict[str, int]:
    """Use ``n`` threads in every loaded OpenBLAS from now on; returns ``blas_threads()`` afterwards.

    An empty dict means no OpenBLAS was found (then nothing changed; OPENBLAS_NUM_THREADS or
    the BLAS's own setting still works when given before Python starts).
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"set_blas_threads: n must be a whole number >= 1, got {n!r}")
    for path in loaded_openblas_libraries():
        setter = _function(ctypes.CDLL(path), "set")
        if setter is not None:
            setter.argtypes = [ctypes.c_int]
            setter(int(n))
    return blas_threads()
