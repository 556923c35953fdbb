"""Scratch arrays that a layer reuses from one call to the next.

Why: a training step allocates and frees the same large temporaries every time. glibc's
allocator gives freed memory back to the operating system when the free space at the top of
its heap grows large, and takes it back at the next step one 4 KiB page at a time: each page
is a page fault, ~2 us on the machine the benchmarks ran on. The convolution backward's three
temporaries (4 MB for the reference network) cost ~500 faults per training step: 0.6 ms of a
4.4 ms step. Asking a Workspace for them instead brings that to 10-30 (benchmarks/README.md).

The rule that keeps this safe: an array from a workspace is scratch for ONE call. Never return
it, never keep it in a cache: the next call overwrites it. Layer outputs are always new arrays.
(The forward's patch matrices are not workspace arrays: they live in the layer's cache.)
"""

from __future__ import annotations

import numpy as np


class Workspace:
    """Named scratch arrays: ``empty(name, shape, dtype)`` returns the same memory as the last
    call with that name when shape and dtype match, and a new array otherwise."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def empty(self, name: str, shape, dtype) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` with whatever the last call left in it."""
        shape, dtype = tuple(shape), np.dtype(dtype)
        array = self.arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = np.empty(shape, dtype=dtype)
            self.arrays[name] = array
        return array

    def zeros(self, name: str, shape, dtype) -> np.ndarray:
        """Like ``empty``, filled with zeros."""
        array = self.empty(name, shape, dtype)
        array.fill(0)
        return array

    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays.values())
