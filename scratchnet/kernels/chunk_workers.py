"""Run the independent chunks of a kernel on a few threads (an experiment: off by default).

The fast kernels (winograd.py, im2col.py) cut the batch into chunks of a few images, each small
enough to stay in the cache from one stage to the next. The chunks do not depend on each other:
chunk k reads images k and writes its own slice of the output. NumPy and BLAS release the GIL
(Python's one-thread-at-a-time lock) inside their calls, so two threads can work on two chunks at
once, one per core, each with BLAS on ONE thread (a multi-threaded BLAS gains nothing on products
this small: benchmarks/README.md #15).

    set_kernel_workers(2)        # from now on, chunks run on 2 threads (BLAS set to 1 thread each)
    set_kernel_workers(1)        # the default: every chunk in the calling thread, in order

Rules that keep the results equal to the serial ones, bit for bit:
* each job writes only its own chunk's slice of an output array, and returns its other results
  (a kernel-gradient share); the caller sums those IN CHUNK ORDER, as the serial loop does;
* each job takes its scratch from the workspace it is given: the caller's with one worker, the
  worker thread's own ``shared_workspace()`` otherwise (two threads never share scratch).

The pool lives in this module, never on a model or layer (models must pickle), and is made the
first time it is needed.

Measured (benchmarks/README.md #15, 2-core VM, float32, alternated, quiet machine): resnet8
training steps 0.80-0.97x the serial time (Winograd layers 0.65-0.90x, far from 0.5x: two
independent forwards on two threads already take 0.72-0.80x of one after the other), lenet5
1.07x; each worker's scratch arena adds to the resident peak (resnet8 batch 64: +27 MiB). A
layer of few chunks can lose (3 chunks split 2 + 1 over two workers: 0.86-1.2x), and timing it
beside a 2-thread BLAS in the same rounds made it lose everywhere (OpenBLAS's second thread).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from ..option_checks import check_count
from .workspace import shared_workspace

_workers = 1
_pool: ThreadPoolExecutor | None = None
_blas_threads_before: int | None = None  # the BLAS's count when workers went from 1 to more
_pool_lock = threading.Lock()  # two threads' first kernels must not make two pools


def kernel_workers() -> int:
    """How many threads run a kernel's chunks (1: the calling thread only)."""
    return _workers


def set_kernel_workers(n: int) -> int:
    """Run kernel chunks on ``n`` threads from now on (1: serial, the default); returns ``n``.

    With n > 1 the BLAS is set to one thread (blas_threads.set_blas_threads(1)): each worker
    thread then multiplies on its own core instead of the BLAS splitting every small product.
    Going back to 1 worker gives the BLAS back the thread count it had before (the largest of
    its libraries'), so serial results are those from before: products round differently on 1
    and 2 BLAS threads.
    """
    global _workers, _pool, _blas_threads_before
    check_count(n, "n", "set_kernel_workers", 1)
    from ..blas_threads import blas_threads, set_blas_threads
    if n > 1 and _workers == 1:
        counts = blas_threads()
        _blas_threads_before = max(counts.values()) if counts else None
    if n > 1:
        set_blas_threads(1)
    elif _blas_threads_before is not None:
        set_blas_threads(_blas_threads_before)
        _blas_threads_before = None
    old_pool = None
    with _pool_lock:  # map_chunks submits under this lock: it never submits to a pool shut down here
        if _pool is not None and n != _workers:
            old_pool, _pool = _pool, None
        _workers = int(n)
    if old_pool is not None:
        old_pool.shutdown(wait=False)  # its jobs already queued still run; its threads then exit
    return int(n)


def sum_in_chunk_order(shares) -> np.ndarray:
    """``shares`` (n_chunks, ...) summed one after the other from zeros, in chunk order: what the
    serial loop added up, in the same order, so the same rounding however many workers ran."""
    total = np.zeros(shares.shape[1:], dtype=shares.dtype)
    for share in shares:
        total += share
    return total


def map_chunks(job, chunks, workspace) -> list:
    """``[job(chunk, scratch) for chunk in chunks]``, the results in chunk order.

    One worker: in the calling thread with ``workspace``. More: on the pool, each job with its
    worker thread's ``shared_workspace()``. Every job has finished before this returns or raises
    (a failed chunk raises its error, the first in chunk order, only then; a Ctrl-C while waiting
    cancels the jobs not started and raises once the running ones end): no job still writes
    into the kernel's arrays or a worker's scratch after the caller has moved on.
    """
    if _workers == 1 or len(chunks) == 1:
        return [job(chunk, workspace) for chunk in chunks]
    futures = _submit_to_the_pool(job, chunks)
    try:
        wait(futures)
    except BaseException:  # KeyboardInterrupt in wait: the jobs not started never start, and
        for future in futures:  # the running ones finish before the interrupt goes on
            future.cancel()
        wait(futures)
        raise
    return [future.result() for future in futures]


def _submit_to_the_pool(job, chunks) -> list:
    """One future per chunk, submitted under the lock that ``set_kernel_workers`` swaps the pool
    under: another thread cannot shut this pool down between finding it and submitting to it."""
    with _pool_lock:
        pool = _the_pool()
        return [pool.submit(_with_own_scratch, job, chunk) for chunk in chunks]


def _the_pool() -> ThreadPoolExecutor:
    """The pool of ``kernel_workers()`` threads, made on first use. The caller holds
    ``_pool_lock``: two threads running kernels at once must share one pool."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_workers, thread_name_prefix="scratchnet-chunks")
    return _pool


def _forget_the_pool_in_a_forked_child():
    """A process forked (multiprocessing's "fork", os.fork) copies the pool object but not its
    threads, and maybe the lock held by a thread that does not exist in the child: a job submitted
    there would wait forever. The child starts without a pool (made again on first use)."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_forget_the_pool_in_a_forked_child)


def _with_own_scratch(job, chunk):
    """``job(chunk, scratch)`` in a worker thread, with that thread's own scratch arena."""
    return job(chunk, shared_workspace())
