"""Scratch arrays reused from one call to the next, shared by every layer of a thread.

Why reuse: a training step allocates and frees the same large temporaries every time. glibc's
allocator gives freed memory back to the operating system when the free space at the top of
its heap grows large, and takes it back at the next step one 4 KiB page at a time: each page
is a page fault, ~2 us on the machine the benchmarks ran on. The convolution backward's three
temporaries (4 MB for the reference network) cost ~500 faults per training step: 0.6 ms of a
4.4 ms step. Asking a Workspace for them instead brings that to 10-30 (benchmarks/README.md).

Why share: one workspace per layer kept every layer's scratch alive at once, the SUM over the
layers (a resnet8 held tens of MB per conv layer). Only one layer runs at a time, so one
workspace per thread (``shared_workspace()``) is enough: each name keeps ONE buffer, grown to
the largest request made with that name and never shrunk, and a request gets a view of its
first bytes. The memory is the MAX over the layers, and once every layer has run (warm-up)
nothing is allocated again, even when layers of different shapes alternate. Thread-local:
two threads never hand out the same memory.

The rule that keeps this safe: an array from a workspace is scratch for ONE call. It is shared
by every layer, so the next call of ANY layer overwrites it: never return it, never keep it in
a cache, never hold it across a call into another layer. Layer outputs and everything a
forward caches for its backward are always new arrays. A workspace is never pickled.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import sys
import threading

import numpy as np


class Workspace:
    """Named grow-only scratch buffers.

    ``empty(name, shape, dtype)`` returns a view of the first ``nbytes`` of the buffer called
    ``name`` (a new, larger buffer replaces it when the request does not fit), shaped and typed
    as asked, holding whatever the last call left in it.
    """

    def __init__(self):
        self.buffers: dict[str, np.ndarray] = {}  # name -> 1-D uint8 buffer, the largest request so far
        self.views: dict[tuple, np.ndarray] = {}  # (name, shape, dtype) -> a view handed out before

    def empty(self, name: str, shape, dtype) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` (C-contiguous) with whatever the last call left in it."""
        # The same request again returns the same view: a dict lookup (0.3 us) where making the
        # view costs 1.7 us, and a resnet8 step makes ~90 requests.
        key = (name, tuple(shape), dtype)
        view = self.views.get(key)
        if view is None:
            view = self.views[key] = self._new_view(name, key[1], np.dtype(dtype))
        return view

    def _new_view(self, name, shape, dtype) -> np.ndarray:
        shape = tuple(int(size) for size in shape)
        nbytes = math.prod(shape) * dtype.itemsize
        buffer = self.buffers.get(name)
        if buffer is None or buffer.nbytes < nbytes:
            buffer = np.empty(nbytes, dtype=np.uint8)  # malloc'd: aligned for any NumPy dtype
            self.buffers[name] = buffer
            self.views = {key: view for key, view in self.views.items() if key[0] != name}  # old buffer
        return buffer[:nbytes].view(dtype).reshape(shape)

    def zeros(self, name: str, shape, dtype) -> np.ndarray:
        """Like ``empty``, filled with zeros."""
        array = self.empty(name, shape, dtype)
        array.fill(0)
        return array

    def nbytes(self) -> int:
        """Bytes held: the sum over names of the largest request made with each name."""
        return sum(buffer.nbytes for buffer in self.buffers.values())

    def clear(self) -> None:
        """Give every buffer back (the next calls allocate them again)."""
        self.buffers.clear()
        self.views.clear()

    def __getstate__(self):
        return {"buffers": {}, "views": {}}  # scratch is never saved


_thread_local = threading.local()


def shared_workspace() -> Workspace:
    """The calling thread's workspace, shared by every layer that runs in this thread."""
    workspace = getattr(_thread_local, "workspace", None)
    if workspace is None:
        workspace = _thread_local.workspace = Workspace()
    return workspace


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
_allocator_tuned = False
_allocator_tried = False  # asked once per process: train_step calls this every step
TUNE_ALLOCATOR = True  # False: train_step leaves malloc's settings alone (see keep_freed_memory)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for the next training step (once per process).

    Why: a training step frees its forward caches during the backward (Sequential.train_step)
    and allocates them again in the next forward. By default glibc then gives the freed top of
    its heap back to the operating system (above a trim threshold of ~2x the largest freed
    block) and maps every block above its mmap threshold afresh, so each step page-faults its
    caches back in, 4 KiB at a time: measured 2,300-6,500 minor faults per step of the zoo
    networks (batch 64; 13,500 and +29% time for resnet8 before Winograd worked in chunks).
    Serving blocks up to 32 MiB from the heap and never trimming it brings that to 0-50; the
    price is that the process keeps its peak (as it did when caches were kept between steps).
    Returns False where the C library is not glibc, or when ``TUNE_ALLOCATOR`` is False: then
    nothing is changed (a program that wants malloc's defaults sets
    ``scratchnet.kernels.workspace.TUNE_ALLOCATOR = False`` before training).
    """
    global _allocator_tuned, _allocator_tried
    if _allocator_tried or not TUNE_ALLOCATOR or not sys.platform.startswith("linux"):
        return _allocator_tuned
    _allocator_tried = True  # also when it fails below: looking up libc costs ~1 ms, not per step
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _allocator_tuned = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
                            and mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    return _allocator_tuned
