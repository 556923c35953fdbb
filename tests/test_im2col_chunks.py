"""The im2col kernel's chunks of the batch (kernels/im2col.py): forward and backward against the
loop definition (kernels/loops.py) in float64 when the batch is cut into chunks of 1-3 images,
at the chunk boundaries (a batch that is not a multiple of the chunk, a single image), for every
layout (few channels, many channels, 1x1, groups), strides 1-3, dilation, padding, non-square
kernels, zero padding done by the kernel chunk by chunk, with and without bias and input
gradient."""

from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet.kernels import im2col as im2col_kernels
from scratchnet.kernels import loops
from scratchnet.kernels.scipy_conv import output_hw
from scratchnet.kernels.workspace import Workspace
from scratchnet.layers import Conv2D

ATOL = 1e-11


def patch_bytes_per_image(x_padded, W, stride, dilation, use_bias) -> int:
    kh, kw, channels, _ = W.shape
    oh, ow = output_hw(x_padded.shape[1:3], (kh, kw), stride, dilation)
    return oh * ow * (kh * kw * channels + use_bias) * x_padded.itemsize


@contextmanager
def images_per_chunk(x_padded, W, stride, dilation, use_bias, images):
    """Set CHUNK_BYTES so that a chunk holds exactly ``images`` images (the rest a bit short of
    the next image, so an off-by-one in the chunk arithmetic shows)."""
    per_image = patch_bytes_per_image(x_padded, W, stride, dilation, use_bias)
    with mock.patch.object(im2col_kernels, "CHUNK_BYTES", images * per_image + per_image - 1):
        chunk = im2col_kernels.chunk_size(x_padded.shape, W, stride, dilation, use_bias, x_padded.itemsize)
        assert chunk == min(images, len(x_padded))
        yield


@st.composite
def chunked_cases(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    height = dilation[0] * (kh - 1) + 1 + draw(st.integers(0, 5))  # padded sizes the kernel fits in
    width = dilation[1] * (kw - 1) + 1 + draw(st.integers(0, 5))
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    # 1-3 channels: the transposed (K, M) patches; 4+: the (M, K) patches
    group_channels = draw(st.sampled_from([1, 2, 3, 4, 5, 8]))
    # zero padding done by the kernel, chunk by chunk (the input keeps at least one row and column)
    top = draw(st.integers(0, min(2, height - 1)))
    bottom = draw(st.integers(0, min(2, height - 1 - top)))
    left = draw(st.integers(0, min(2, width - 1)))
    right = draw(st.integers(0, min(2, width - 1 - left)))
    return dict(batch=draw(st.integers(1, 7)), chunk=draw(st.integers(1, 3)),
                padded_shape=(height, width, groups * group_channels), pads=((top, bottom), (left, right)),
                kernel=(kh, kw, group_channels, groups * draw(st.integers(1, 3))),
                stride=stride, dilation=dilation, groups=groups, use_bias=draw(st.booleans()),
                need_dx=draw(st.booleans()))


@given(case=chunked_cases(), seed=st.integers(0, 2**16))
def test_chunked_kernel_matches_loops_forward_and_backward(case, seed):
    rng = np.random.default_rng(seed)
    x_padded = rng.standard_normal((case["batch"], *case["padded_shape"]))
    (top, bottom), (left, right) = pads = case["pads"]
    x_padded[:, :top], x_padded[:, x_padded.shape[1] - bottom:] = 0, 0  # the padding's zeros
    x_padded[:, :, :left], x_padded[:, :, x_padded.shape[2] - right:] = 0, 0
    x = x_padded[:, top:x_padded.shape[1] - bottom, left:x_padded.shape[2] - right].copy()  # unpadded
    W = rng.standard_normal(case["kernel"])
    b = rng.standard_normal(W.shape[3]) if case["use_bias"] else None
    stride, dilation, groups, use_bias = case["stride"], case["dilation"], case["groups"], case["use_bias"]
    y_ref = loops.conv2d_forward(x_padded, W, b, stride, dilation, groups)
    dy = rng.standard_normal(y_ref.shape)
    dx_ref, dW_ref, db_ref = loops.conv2d_backward(x_padded, W, dy, stride, dilation, groups)
    workspace = Workspace()
    with images_per_chunk(x_padded, W, stride, dilation, use_bias, case["chunk"]):
        for _ in range(2):  # the second call reuses the workspace's arrays
            y = im2col_kernels.conv2d_forward(x, W, b, stride, dilation, groups, workspace, pads)
            dx, dW, db = im2col_kernels.conv2d_backward(x, W, dy, stride, dilation, use_bias,
                                                        case["need_dx"], workspace, groups, pads)
            np.testing.assert_allclose(y, y_ref, rtol=0, atol=ATOL)
            np.testing.assert_allclose(dW, dW_ref, rtol=0, atol=ATOL)
            if use_bias:
                np.testing.assert_allclose(db, db_ref, rtol=0, atol=ATOL)
            else:
                assert db is None
            if case["need_dx"]:  # the gradient of the UNPADDED x: the kernel padded it itself
                assert dx.shape == x.shape
                dx_ref_unpadded = dx_ref[:, top:dx_ref.shape[1] - bottom, left:dx_ref.shape[2] - right]
                np.testing.assert_allclose(dx, dx_ref_unpadded, rtol=0, atol=ATOL)
            else:
                assert dx is None


# Hand-picked boundaries: 7 images in chunks of 3 (3 + 3 + 1), a chunk larger than the batch, one image.
@pytest.mark.parametrize("batch, chunk", [(7, 3), (2, 5), (1, 1), (6, 2)])
@pytest.mark.parametrize("channels, kernel, stride, dilation", [
    (1, (5, 5), (1, 1), (1, 1)),   # LeNet's first layer: transposed patches, shifted col2im
    (3, (3, 3), (2, 2), (1, 1)),   # a strided image layer
    (6, (3, 2), (1, 1), (2, 1)),   # (M, K) patches, dilation, non-square
    (5, (3, 3), (2, 3), (1, 2)),   # per-offset col2im with unequal strides
    (4, (1, 1), (2, 2), (1, 1)),   # a 1x1 stride-2 shortcut (the strided-slice path, no chunks)
    (4, (1, 1), (1, 1), (1, 1)),
])
@pytest.mark.parametrize("use_bias", [True, False])
def test_chunk_boundaries_by_hand(batch, chunk, channels, kernel, stride, dilation, use_bias):
    rng = np.random.default_rng(batch * 100 + channels)
    x_padded = rng.standard_normal((batch, 9, 10, channels))
    W = rng.standard_normal((*kernel, channels, 3))
    b = rng.standard_normal(3) if use_bias else None
    y_ref = loops.conv2d_forward(x_padded, W, b, stride, dilation)
    dy = rng.standard_normal(y_ref.shape)
    dx_ref, dW_ref, db_ref = loops.conv2d_backward(x_padded, W, dy, stride, dilation)
    with images_per_chunk(x_padded, W, stride, dilation, use_bias, chunk):
        y = im2col_kernels.conv2d_forward(x_padded, W, b, stride, dilation)
        dx, dW, db = im2col_kernels.conv2d_backward(x_padded, W, dy, stride, dilation, use_bias)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=ATOL)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=ATOL)
    np.testing.assert_allclose(dW, dW_ref, rtol=0, atol=ATOL)
    if use_bias:
        np.testing.assert_allclose(db, db_ref, rtol=0, atol=ATOL)


def test_last_smaller_chunk_reuses_the_full_chunks_scratch_memory():
    # 7 images in chunks of 3: the last chunk (1 image) must use the start of the same arrays,
    # not replace them (which would allocate them again at every call).
    rng = np.random.default_rng(0)
    x_padded, W = rng.standard_normal((7, 9, 9, 4)), rng.standard_normal((3, 3, 4, 2))
    dy = rng.standard_normal((7, 4, 4, 2))
    workspace = Workspace()
    with images_per_chunk(x_padded, W, (2, 2), (1, 1), True, 3):
        im2col_kernels.conv2d_forward(x_padded, W, np.zeros(2), (2, 2), workspace=workspace)
        im2col_kernels.conv2d_backward(x_padded, W, dy, (2, 2), workspace=workspace)
        buffers = dict(workspace.buffers)  # the grow-only arena: name -> bytes
        # "cols" holds a full chunk's patches (M_c, K + 1) = (3*4*4, 37), then its dcols^T (K, OH*n*Wph)
        # = (36, 4*3*5) in the backward: the larger of the two, float64
        assert buffers["cols"].nbytes == max(3 * 16 * (9 * 4 + 1), 36 * 4 * 3 * 5) * 8
        im2col_kernels.conv2d_forward(x_padded, W, np.zeros(2), (2, 2), workspace=workspace)
        im2col_kernels.conv2d_backward(x_padded, W, dy, (2, 2), workspace=workspace)
    assert all(workspace.buffers[name] is buffer for name, buffer in buffers.items())


@pytest.mark.parametrize("kernel_size, stride", [(5, 1), (3, 2), (1, 2)])
def test_layer_keeps_only_its_input_not_a_padded_copy_nor_the_patch_matrix(kernel_size, stride):
    layer = Conv2D(4, kernel_size, stride=stride, padding="same")
    layer.build((16, 16, 3), rng=np.random.default_rng(0), dtype="float32")
    x = np.random.default_rng(1).standard_normal((8, 16, 16, 3)).astype(np.float32)
    layer.forward(x)
    arrays = [value for value in layer.cache.values() if isinstance(value, np.ndarray)]
    # the patch matrix would be kh*kw times the input, a padded copy 1.1-1.6x: the cache holds x itself
    assert len(arrays) == 1 and arrays[0] is x


def test_one_by_one_input_gradient_is_a_new_array():
    # the 1x1 path writes dy2d @ W2d^T through a workspace array: dx itself must be new memory
    rng = np.random.default_rng(2)
    x_padded, W = rng.standard_normal((3, 6, 6, 4)), rng.standard_normal((1, 1, 4, 5))
    dy = rng.standard_normal((3, 3, 3, 5))
    workspace = Workspace()
    dx, _, _ = im2col_kernels.conv2d_backward(x_padded, W, dy, (2, 2), workspace=workspace)
    kept = dx.copy()
    im2col_kernels.conv2d_backward(x_padded, W, rng.standard_normal(dy.shape), (2, 2), workspace=workspace)
    np.testing.assert_array_equal(dx, kept)
    assert not any(np.shares_memory(dx, array) for array in workspace.buffers.values())
