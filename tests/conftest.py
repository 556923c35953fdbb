import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# The machine is shared and noisy: no per-example deadlines. CI runs more examples.
settings.register_profile("default", deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def shared_mnist_dir():
    """The real MNIST test set in ../shared (developers and CI); skip cleanly elsewhere."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("../shared/data/mnist is not available on this machine")
    return SHARED_MNIST


@pytest.fixture
def one_torch_thread():
    """PyTorch's OpenMP threads spin-wait; on a loaded 2-core machine that made a tiny float64 step
    take 2.7 s instead of 0.01 s (measured). One thread, restored afterwards."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def serial_afterwards():
    """The test leaves the kernels serial (kernels/chunk_workers.py), and the BLAS at its thread
    count from before (set_kernel_workers(2) sets it to one thread)."""
    from scratchnet import blas_threads
    from scratchnet.kernels import chunk_workers

    before = blas_threads.blas_threads()
    yield
    chunk_workers.set_kernel_workers(1)
    for count in set(before.values()):
        blas_threads.set_blas_threads(count)


@pytest.fixture
def digit_model(tmp_path):
    """A saved (untrained) 28x28x1 digit model for the CLI's tests: the path of its .sn file."""
    from scratchnet import models
    from scratchnet.recipes import attach_preprocessing

    model = models.tiny_cnn(input_shape=(28, 28, 1))
    model.compile()
    attach_preprocessing(model, "mnist-sample", [str(k) for k in range(10)], None, standardize=False)
    model.save(tmp_path / "m.sn")
    return tmp_path / "m.sn"
