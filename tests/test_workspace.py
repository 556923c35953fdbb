"""The shared scratch arena (kernels/workspace.py): grow-only named buffers, one per thread."""

import pickle
import threading

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.kernels.workspace import Workspace, shared_workspace
from scratchnet.layers import Conv2D, Dense


def test_a_request_is_a_view_of_the_named_buffer_shaped_as_asked():
    workspace = Workspace()
    first = workspace.empty("a", (3, 4), np.float32)
    assert first.shape == (3, 4) and first.dtype == np.float32 and first.flags.c_contiguous
    first[...] = 7
    again = workspace.empty("a", (2, 6), "float32")  # same bytes, other shape: the same memory
    assert np.shares_memory(first, again) and np.all(again == 7)
    assert not np.shares_memory(workspace.empty("b", (3, 4), np.float32), first)
    zeros = workspace.zeros("a", (4, 3), np.float64)
    assert zeros.dtype == np.float64 and np.all(zeros == 0)


def test_buffers_only_grow_so_alternating_shapes_allocate_nothing_after_warm_up():
    workspace = Workspace()
    workspace.empty("a", (10, 10), np.float64)  # 800 bytes
    big = workspace.buffers["a"]
    small = workspace.empty("a", (3, 3), np.float32)  # fits: a view of the same buffer
    assert workspace.buffers["a"] is big and np.shares_memory(small, big)
    workspace.empty("a", (20, 10), np.float64)  # does not fit: grows to 1600 bytes
    grown = workspace.buffers["a"]
    assert grown.nbytes == 1600
    for key, view in workspace.views.items():  # no view handed out again keeps the old buffer alive
        assert view.base is workspace.buffers[key[0]]
    assert workspace.empty("a", (3, 3), np.float32).base is not big
    for shape in [(10, 10), (20, 10), (5,), (20, 10)]:  # no reallocation any more
        workspace.empty("a", shape, np.float64)
        assert workspace.buffers["a"] is grown
    assert workspace.nbytes() == 1600  # the largest request, not the sum of them


def test_the_shared_workspace_is_one_per_thread():
    mine = shared_workspace()
    assert shared_workspace() is mine
    assert Conv2D(2, 3).workspace is mine and Conv2D(3, 1).workspace is mine  # shared by layers
    seen = []
    thread = threading.Thread(target=lambda: seen.append(shared_workspace()))
    thread.start()
    thread.join()
    assert seen[0] is not mine


def test_a_workspace_pickles_empty():
    workspace = Workspace()
    workspace.empty("a", (100, 100), np.float64)
    copy = pickle.loads(pickle.dumps(workspace))
    assert copy.nbytes() == 0 and len(pickle.dumps(workspace)) < 1000


def conv(input_shape, filters, stride, backend, seed):
    layer = Conv2D(filters, 3, stride=stride, padding="same", backend=backend)
    layer.build(input_shape, rng=np.random.default_rng(seed), dtype="float64")
    return layer


@pytest.mark.parametrize("backend", ["im2col", "winograd"])
def test_layers_of_different_shapes_alternating_get_their_own_results(backend):
    # Both layers write the same shared buffers; each one's results must be those it gets alone.
    rng = np.random.default_rng(0)
    shapes = [((12, 12, 16), 16, 1), ((8, 8, 20), 24, 1)]
    if backend == "im2col":
        shapes.append(((9, 9, 3), 5, 2))  # strided col2im
    layers = [conv(shape, filters, stride, backend, seed)
              for seed, (shape, filters, stride) in enumerate(shapes)]
    inputs = [rng.standard_normal((3, *layer.input_shape)) for layer in layers]
    alone = []
    for layer, x in zip(layers, inputs):
        y = layer.forward(x, training=True)
        alone.append((y, layer.backward(np.cos(y)), {k: g.copy() for k, g in layer.grads.items()}))
    shared_workspace().clear()
    forwards = [layer.forward(x, training=True) for layer, x in zip(layers, inputs)]  # all forwards,
    results = [layer.backward(np.cos(y)) for layer, y in zip(layers[::-1], forwards[::-1])][::-1]  # then
    for layer, y, dx, (y_alone, dx_alone, grads_alone) in zip(layers, forwards, results, alone):  # backwards
        np.testing.assert_array_equal(y, y_alone)
        np.testing.assert_array_equal(dx, dx_alone)
        for key, grad in grads_alone.items():
            np.testing.assert_array_equal(layer.grads[key], grad)


def test_the_arena_holds_the_max_over_layers_not_the_sum():
    rng = np.random.default_rng(1)
    small, large = conv((8, 8, 4), 4, 1, "im2col", 0), conv((16, 16, 4), 4, 1, "im2col", 1)
    workspace = shared_workspace()
    held = []
    for layer in (small, large):
        workspace.clear()
        y = layer.forward(rng.standard_normal((2, *layer.input_shape)), training=True)
        layer.backward(y)
        held.append(workspace.nbytes())
    workspace.clear()
    for layer in (small, large, small):
        layer.backward(layer.forward(rng.standard_normal((2, *layer.input_shape)), training=True))
    assert workspace.nbytes() == max(held) < sum(held)


def test_two_threads_training_at_once_get_their_own_results():
    # the arena is per thread: layers running at the same time never write the same scratch
    rng = np.random.default_rng(2)
    layers = [conv((16, 16, 16), 16, 1, "winograd", 0), conv((12, 12, 16), 16, 1, "winograd", 1)]
    inputs = [rng.standard_normal((4, *layer.input_shape)) for layer in layers]
    expected = []
    for layer, x in zip(layers, inputs):
        y = layer.forward(x, training=True)
        expected.append((y, layer.backward(np.sin(y))))
    mismatches = []

    def run(layer, x, want):
        for _ in range(30):  # NumPy's products release the GIL: the threads overlap
            y = layer.forward(x, training=True)
            dx = layer.backward(np.sin(y))
            mismatches.append(not (np.array_equal(y, want[0]) and np.array_equal(dx, want[1])))
    threads = [threading.Thread(target=run, args=args) for args in zip(layers, inputs, expected)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(mismatches) == 60 and not any(mismatches)


def test_tune_allocator_false_leaves_malloc_alone(monkeypatch):
    # README "Design notes": a program that wants glibc's defaults switches the tuning off
    from scratchnet.kernels import workspace as workspace_module

    def no_libc(*args, **kwargs):
        raise AssertionError("mallopt must not be looked up when TUNE_ALLOCATOR is False")

    monkeypatch.setattr(workspace_module, "_allocator_tuned", False)
    monkeypatch.setattr(workspace_module, "_allocator_tried", False)
    monkeypatch.setattr(workspace_module, "TUNE_ALLOCATOR", False)
    monkeypatch.setattr(workspace_module.ctypes, "CDLL", no_libc)
    assert workspace_module.keep_freed_memory() is False
    model = sn.Sequential([Dense(3)], input_shape=(4,), seed=0).compile(optimizer=sn.Adam(), loss="mse")
    loss, _ = model.train_step(np.ones((2, 4), np.float32), np.zeros((2, 3), np.float32))
    assert np.isfinite(loss)


def test_a_c_library_without_mallopt_is_asked_once_not_every_step(monkeypatch):
    # train_step calls keep_freed_memory every step; looking up libc costs ~1 ms
    from scratchnet.kernels import workspace as workspace_module

    lookups = []

    def no_glibc(*args, **kwargs):
        lookups.append(args)
        raise OSError("not glibc")

    monkeypatch.setattr(workspace_module, "_allocator_tuned", False)
    monkeypatch.setattr(workspace_module, "_allocator_tried", False)
    monkeypatch.setattr(workspace_module.ctypes, "CDLL", no_glibc)
    if not workspace_module.sys.platform.startswith("linux"):
        pytest.skip("mallopt is only asked for on Linux")
    assert workspace_module.keep_freed_memory() is False
    assert workspace_module.keep_freed_memory() is False
    assert len(lookups) == 1
