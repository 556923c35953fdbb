"""Merge layers Add and Concatenate (issue 11): several arrays in, one out; backward returns a
list. Checked by hand, against np.concatenate, and with central differences in float64."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet.gradcheck import numerical_gradient
from scratchnet.layers import Add, Concatenate


def test_add_by_hand():
    add = Add()
    add.build([(2,), (2,), (2,)], dtype="float64")
    y = add.forward([np.array([[1.0, 2.0]]), np.array([[10.0, 20.0]]), np.array([[100.0, 200.0]])])
    np.testing.assert_array_equal(y, [[111.0, 222.0]])
    dxs = add.backward(np.array([[0.5, -1.0]]))
    assert len(dxs) == 3
    for dx in dxs:
        np.testing.assert_array_equal(dx, [[0.5, -1.0]])


@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4), height=st.integers(1, 3),
       axis=st.sampled_from([-1, 3, 1, -3]), seed=st.integers(0, 999))
def test_concatenate_forward_and_numerical_gradient(sizes, height, axis, seed):
    rng = np.random.default_rng(seed)
    if axis in (-1, 3):
        shapes = [(height, 2, c) for c in sizes]       # joined along the channels
    else:
        shapes = [(c, 2, height) for c in sizes]       # axis 1 / -3: joined along the height
    layer = Concatenate(axis=axis)
    assert layer.build(shapes, dtype="float64") == layer.output_shape(shapes)
    xs = [rng.standard_normal((2, *shape)) for shape in shapes]
    y = layer.forward(xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=axis))
    assert y.shape[1:] == layer.output_shape(shapes)
    projection = rng.standard_normal(y.shape)
    dxs = layer.backward(projection)
    for i, x in enumerate(xs):
        def scalar(x_i, i=i):
            return float(np.sum(layer.forward([*xs[:i], x_i, *xs[i + 1:]]) * projection))
        np.testing.assert_allclose(dxs[i], numerical_gradient(scalar, x), rtol=0, atol=1e-8)


def test_merge_errors_name_the_layer_and_the_shapes():
    with pytest.raises(ValueError,
                       match=r"add: every input must have the same shape.*\(4, 4, 3\).*\(4, 4, 2\)"):
        Add().build([(4, 4, 3), (4, 4, 2)])
    with pytest.raises(ValueError, match=r"cat: inputs must have equal sizes on every axis but axis -1.*"
                                         r"\(4, 4, 3\), \(5, 4, 2\)"):
        Concatenate(name="cat").build([(4, 4, 3), (5, 4, 2)])
    with pytest.raises(ValueError, match="concatenate: every input must have the same number of axes"):
        Concatenate().build([(4, 4, 3), (4, 3)])
    with pytest.raises(ValueError, match="axis must be a nonzero int .0 is the batch axis"):
        Concatenate(axis=0)
    for wrong in ("1", 1.0, True, None):
        with pytest.raises(TypeError, match=r"^concatenate: axis must be a nonzero int \(0 is the batch "):
            Concatenate(axis=wrong)
    assert Concatenate(axis=np.int64(-1)).axis == -1
    with pytest.raises(ValueError, match="axis 5 is out of range for inputs with 4 axes"):
        Concatenate(axis=5).build([(2, 2, 1), (2, 2, 1)])
    with pytest.raises(TypeError, match="add: expected a non-empty list of sample shapes"):
        Add().build((4, 4, 3))
    add = Add()
    add.build([(3,), (3,)])
    with pytest.raises(ValueError,
                       match=r"add: expected 2 inputs of shapes \(N, 3\), \(N, 3\), got \[\(2, 3\)\]"):
        add.forward([np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"add: expected 2 inputs.*got \[\(2, 3\), \(2, 4\)\]"):
        add.forward([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match="add: every input must hold the same number of samples"):
        add.forward([np.zeros((2, 3)), np.zeros((5, 3))])
    with pytest.raises(TypeError, match="add: expected a list of 2 arrays, got ndarray"):
        add.forward(np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="add: backward found no forward cache"):
        add.backward(np.zeros((2, 3)))
