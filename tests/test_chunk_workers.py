"""kernels/chunk_workers.py: Winograd's and im2col's chunks on 2 threads give the serial results bit for bit
(float64), a model trained with 2 workers equals one trained with 1, and it still pickles.
No timing is asserted (speed: benchmarks/README.md #15)."""

import contextlib
import multiprocessing
import os
import pickle
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scratchnet import blas_threads as bt
from scratchnet.kernels import chunk_workers
from scratchnet.kernels import im2col as im2col_kernels
from scratchnet.kernels import winograd as wg
from scratchnet.layers import Activation, Conv2D, Dense, Flatten
from scratchnet.model import Sequential


def assert_results_equal(serial, threaded):
    """The same names, and each array bitwise equal (None stays None)."""
    assert serial.keys() == threaded.keys()
    for name, value in serial.items():
        if value is None:
            assert threaded[name] is None
        else:
            np.testing.assert_array_equal(threaded[name], value, err_msg=name)


def winograd_results(x, W, b, dy, pads, m, chunk_images, workers):
    chunk_workers.set_kernel_workers(workers)
    y, saved = wg.conv2d_forward(x, W, b, m=m, pads=pads, chunk_images=chunk_images)
    padded = (x.shape[0], x.shape[1] + sum(pads[0]), x.shape[2] + sum(pads[1]), x.shape[3])
    dx, dW, db = wg.conv2d_backward(saved, W, dy, padded, use_bias=b is not None)
    return {"y": y, "dx": dx, "dW": dW, "db": db, **{f"V{k}": V for k, V in enumerate(saved["V_chunks"])}}


# the fixture only restores the settings at the end; each example sets its worker count itself
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.sampled_from([2, 4]), n=st.integers(1, 9), height=st.integers(1, 9), width=st.integers(1, 9),
       channels=st.integers(1, 4), filters=st.integers(1, 4), use_bias=st.booleans(),
       chunk_images=st.integers(1, 4), workers=st.integers(2, 3), seed=st.integers(0, 2**16))
def test_threaded_winograd_equals_serial_bitwise(serial_afterwards, m, n, height, width, channels, filters,
                                                 use_bias, chunk_images, workers, seed):
    """1 to 9 chunks (of 1-4 images, a shorter last one), on 2 or 3 threads: y, the kept V
    chunks, dx, dW and db are the serial ones exactly (dW's chunk shares are summed in order)."""
    rng = np.random.default_rng(seed)
    pads = ((1, 1), (1, 1))
    x = rng.standard_normal((n, height, width, channels))
    W = rng.standard_normal((3, 3, channels, filters))
    b = rng.standard_normal(filters) if use_bias else None
    dy = rng.standard_normal((n, height, width, filters))
    serial = winograd_results(x, W, b, dy, pads, m, chunk_images, workers=1)
    threaded = winograd_results(x, W, b, dy, pads, m, chunk_images, workers=workers)
    assert_results_equal(serial, threaded)


def im2col_results(x, W, b, dy, stride, pads, workers):
    chunk_workers.set_kernel_workers(workers)
    y = im2col_kernels.conv2d_forward(x, W, b, stride, pads=pads)
    dx, dW, db = im2col_kernels.conv2d_backward(x, W, dy, stride, use_bias=b is not None, pads=pads)
    return {"y": y, "dx": dx, "dW": dW, "db": db}


# the fixture only restores the settings at the end; each example sets its worker count itself
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 9), size=st.integers(3, 9), channels=st.sampled_from([1, 3, 5]),
       filters=st.integers(1, 4), kernel=st.sampled_from([2, 3]), stride=st.sampled_from([1, 2]),
       use_bias=st.booleans(), images_per_chunk=st.integers(1, 4), workers=st.integers(2, 3),
       seed=st.integers(0, 2**16))
def test_threaded_im2col_equals_serial_bitwise(serial_afterwards, n, size, channels, filters, kernel, stride,
                                               use_bias, images_per_chunk, workers, seed):
    """1 to 9 chunks, both patch layouts (1-3 channels transposed, 5 not), strides 1 and 2: y, dx,
    dW and db on 2 or 3 threads are the serial ones exactly."""
    rng = np.random.default_rng(seed)
    pads = ((1, 1), (0, 1))
    x = rng.standard_normal((n, size, size, channels))
    W = rng.standard_normal((kernel, kernel, channels, filters))
    b = rng.standard_normal(filters) if use_bias else None
    oh = (size + 2 - kernel) // stride + 1
    ow = (size + 1 - kernel) // stride + 1
    dy = rng.standard_normal((n, oh, ow, filters))
    patch_bytes = oh * ow * (kernel * kernel * channels + use_bias) * 8
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(im2col_kernels, "CHUNK_BYTES", images_per_chunk * patch_bytes)
        serial = im2col_results(x, W, b, dy, (stride, stride), pads, workers=1)
        threaded = im2col_results(x, W, b, dy, (stride, stride), pads, workers=workers)
    assert_results_equal(serial, threaded)


def small_winograd_model(seed=3):
    model = Sequential([Conv2D(8, 3, padding="same", backend="winograd"), Activation("relu"),
                        Conv2D(8, 3, padding="same", backend="winograd"), Activation("relu"),
                        Flatten(), Dense(4)], input_shape=(8, 8, 3), seed=seed, dtype="float64")
    return model.compile("sgd")


def trained_weights(workers, x, labels, monkeypatch):
    monkeypatch.setattr(wg, "CHUNK_BYTES", 1)  # one image per chunk: 6 chunks per forward
    chunk_workers.set_kernel_workers(workers)
    model = small_winograd_model()
    losses = [model.train_step(x, labels)[0] for _ in range(3)]
    return model, losses


def test_model_trained_with_two_workers_equals_one_and_pickles(serial_afterwards, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 8, 8, 3))
    labels = rng.integers(0, 4, size=6)
    serial_model, serial_losses = trained_weights(1, x, labels, monkeypatch)
    threaded_model, threaded_losses = trained_weights(2, x, labels, monkeypatch)
    assert threaded_losses == serial_losses
    for serial_layer, threaded_layer in zip(serial_model.layers, threaded_model.layers):
        for name, value in serial_layer.params.items():
            np.testing.assert_array_equal(threaded_layer.params[name], value)
    loaded = pickle.loads(pickle.dumps(threaded_model))  # the pool is the module's, not the model's
    np.testing.assert_array_equal(loaded.predict(x), threaded_model.predict(x))


def test_set_kernel_workers_sets_blas_to_one_thread(serial_afterwards):
    if not bt.blas_threads():
        pytest.skip("no OpenBLAS found")
    bt.set_blas_threads(2)
    assert chunk_workers.set_kernel_workers(2) == 2 and chunk_workers.kernel_workers() == 2
    assert set(bt.blas_threads().values()) == {1}
    chunk_workers.set_kernel_workers(1)
    assert chunk_workers.kernel_workers() == 1


def test_going_back_to_one_worker_restores_the_blas_thread_count_it_found(serial_afterwards):
    """Before: set_kernel_workers(2) then (1) left the BLAS at one thread, and im2col products
    then rounded differently (1.4e-6 in float32) from the same model's before."""
    if not bt.blas_threads():
        pytest.skip("no OpenBLAS found")
    bt.set_blas_threads(2)
    chunk_workers.set_kernel_workers(2)
    chunk_workers.set_kernel_workers(3)   # still threaded: the BLAS stays at one thread
    assert set(bt.blas_threads().values()) == {1}
    chunk_workers.set_kernel_workers(1)
    assert set(bt.blas_threads().values()) == {2}
    bt.set_blas_threads(1)                # serial already: going to 1 again changes nothing
    chunk_workers.set_kernel_workers(1)
    assert set(bt.blas_threads().values()) == {1}


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                        (True, TypeError), ("2", TypeError)])
def test_set_kernel_workers_refuses_a_bad_count(bad, error):
    with pytest.raises(error, match=rf"^set_kernel_workers: n must be an int >= 1, got {bad!r}$"):
        chunk_workers.set_kernel_workers(bad)
    assert chunk_workers.kernel_workers() == 1


def test_set_kernel_workers_takes_a_numpy_integer(serial_afterwards):
    assert chunk_workers.set_kernel_workers(np.int64(2)) == 2
    assert type(chunk_workers.kernel_workers()) is int


def test_a_failed_chunk_raises_only_after_every_chunk_has_finished(serial_afterwards):
    """The error of chunk 0 must not reach the caller while chunk 1 still runs: the caller would
    go on (free or reuse the arrays the job writes into) under a running job."""
    finished = []

    def job(chunk, scratch):
        if chunk == 0:
            raise RuntimeError("chunk 0 failed")
        time.sleep(0.3)  # chunk 1 is still running when chunk 0 fails
        finished.append(chunk)
        return chunk

    chunk_workers.set_kernel_workers(2)
    with pytest.raises(RuntimeError, match="chunk 0 failed"):
        chunk_workers.map_chunks(job, [0, 1], workspace=None)
    assert finished == [1]


def test_two_threads_starting_kernels_at_once_make_one_pool(serial_afterwards, monkeypatch):
    made = []

    class SlowToMakePool(chunk_workers.ThreadPoolExecutor):  # widens the window a race needs
        def __init__(self, *args, **kwargs):
            time.sleep(0.2)
            made.append(self)
            super().__init__(*args, **kwargs)

    chunk_workers.set_kernel_workers(2)
    monkeypatch.setattr(chunk_workers, "_pool", None)
    monkeypatch.setattr(chunk_workers, "ThreadPoolExecutor", SlowToMakePool)
    results = []
    callers = [threading.Thread(target=lambda: results.append(
        chunk_workers.map_chunks(lambda chunk, scratch: chunk * 10, [1, 2, 3], workspace=None)))
        for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    for pool in made:
        pool.shutdown()
    assert results == [[10, 20, 30], [10, 20, 30]]
    assert len(made) == 1


def times_ten_in_chunks(queue):
    """In a forked child: map_chunks on 2 workers, its result sent back on ``queue``."""
    queue.put(chunk_workers.map_chunks(lambda chunk, scratch: chunk * 10, [1, 2, 3], workspace=None))


def times_ten_in_a_forked_child(holding=None):
    """Fork (while holding the lock ``holding``, if given) and run times_ten_in_chunks in the
    child: its result; the test fails if the child hung (20 s) or failed."""
    fork = multiprocessing.get_context("fork")
    queue = fork.Queue()
    with holding if holding is not None else contextlib.nullcontext():
        child = fork.Process(target=times_ten_in_chunks, args=(queue,))
        child.start()
    child.join(20)
    hung = child.is_alive()
    if hung:
        child.kill()
        child.join()
    assert not hung and child.exitcode == 0
    return queue.get(timeout=5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_process_forked_after_the_pool_started_runs_its_kernels(serial_afterwards):
    """/tmp/reentrant/t4_fork.py: the child has the pool object but not its threads; a job
    submitted to it waited forever. The child now makes its own pool."""
    def slow_job(chunk, scratch):  # the jobs overlap: the pool starts both its threads
        time.sleep(0.05)
        return chunk

    chunk_workers.set_kernel_workers(2)
    assert chunk_workers.map_chunks(slow_job, [1, 2, 3, 4], workspace=None) == [1, 2, 3, 4]
    assert times_ten_in_a_forked_child() == [10, 20, 30]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_process_forked_while_another_thread_holds_the_pool_lock_runs_its_kernels(serial_afterwards):
    """The lock another thread holds at the fork is held forever in the child (that thread does
    not exist there): the child makes its own lock, as it makes its own pool (a refactor that
    dropped that line made the child's first kernel wait forever; a diff reviewer caught it)."""
    chunk_workers.set_kernel_workers(2)
    # forked while holding the lock, as a thread in the middle of submitting holds it
    assert times_ten_in_a_forked_child(holding=chunk_workers._pool_lock) == [10, 20, 30]


def test_switching_workers_while_another_thread_submits_loses_no_job(serial_afterwards, monkeypatch):
    """/tmp/reentrant/t5_switch.py: set_kernel_workers shut the pool down between another thread's
    finding it and submitting to it (RuntimeError: cannot schedule new futures after shutdown).
    Here the switch comes exactly in that window; it now waits until the jobs are submitted, and
    the old pool finishes them."""
    switches = []

    class PoolSwitchedWhileSubmitting(chunk_workers.ThreadPoolExecutor):
        def submit(self, *args, **kwargs):
            if not switches:
                switches.append(threading.Thread(target=chunk_workers.set_kernel_workers, args=(3,)))
                switches[0].start()
                time.sleep(0.2)  # the switch runs now, unless it waits for the submitting to end
            return super().submit(*args, **kwargs)

    chunk_workers.set_kernel_workers(2)
    monkeypatch.setattr(chunk_workers, "_pool", None)
    monkeypatch.setattr(chunk_workers, "ThreadPoolExecutor", PoolSwitchedWhileSubmitting)
    results = chunk_workers.map_chunks(lambda chunk, scratch: chunk * 10, [1, 2, 3], workspace=None)
    switches[0].join()
    assert results == [10, 20, 30] and chunk_workers.kernel_workers() == 3
    assert chunk_workers.map_chunks(lambda chunk, scratch: -chunk, [1, 2, 3], workspace=None) == [-1, -2, -3]


def test_an_interrupt_while_waiting_ends_every_job_before_it_goes_on(serial_afterwards, monkeypatch):
    """/tmp/reentrant/t9_ctrlc.py: Ctrl-C in map_chunks' wait left the jobs running after it had
    raised. Now the queued jobs are cancelled and the running ones finish first. (A KeyboardInterrupt
    raised by a stand-in for wait, not a real SIGINT: one outside pytest.raises would stop pytest.)"""
    started, finished, interrupts = [], [], []
    real_wait = chunk_workers.wait

    def interrupted_wait(futures):
        if not interrupts:
            interrupts.append("Ctrl-C")
            while len(started) < 2:  # chunks 0 and 1 running on the two workers, 2 and 3 queued
                time.sleep(0.01)
            raise KeyboardInterrupt
        return real_wait(futures)

    def job(chunk, scratch):
        started.append(chunk)
        time.sleep(0.5)
        finished.append(chunk)

    chunk_workers.set_kernel_workers(2)
    monkeypatch.setattr(chunk_workers, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        chunk_workers.map_chunks(job, [0, 1, 2, 3], workspace=None)
    assert sorted(finished) == [0, 1]  # the running jobs had finished when it raised
    time.sleep(0.5)
    assert sorted(finished) == [0, 1]  # and the queued ones never started
