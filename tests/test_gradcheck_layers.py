"""check_layer over hypothesis-generated shapes for the spatial layers (Dense, Activation and
Flatten have theirs in test_layers_basic.py, the losses in test_losses.py).

Inputs are random normal draws, so max-pool windows have no ties and no window maximum lies
within eps of another value (where max is not differentiable) except with negligible
probability."""

from hypothesis import given
from hypothesis import strategies as st

from scratchnet.gradcheck import check_layer
from scratchnet.layers import AvgPool2D, Conv2D, GlobalAvgPool2D, MaxPool2D

PADDINGS = st.one_of(st.sampled_from(["valid", "same"]), st.integers(0, 1),
                     st.tuples(st.tuples(st.integers(0, 1), st.integers(0, 1)),
                               st.tuples(st.integers(0, 1), st.integers(0, 1))))


@st.composite
def conv_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))          # non-square too
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    height = draw(st.integers(dilation[0] * (kernel[0] - 1) + 1, 6))    # the kernel always fits
    width = draw(st.integers(dilation[1] * (kernel[1] - 1) + 1, 6))
    layer = Conv2D(draw(st.integers(1, 3)), kernel, stride=stride, padding=draw(PADDINGS),
                   dilation=dilation, use_bias=draw(st.booleans()),
                   backend=draw(st.sampled_from(["im2col", "scipy"])))
    return layer, (height, width, draw(st.integers(1, 3)))


@given(case=conv_cases(), seed=st.integers(0, 999))
def test_conv2d_gradcheck(case, seed):
    layer, input_shape = case
    report = check_layer(layer, input_shape, seed=seed, batch_size=2)
    assert report.passed, str(report)


@st.composite
def pool_cases(draw):
    pool = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))        # < pool: overlapping windows
    padding = draw(st.sampled_from(["valid", "same"]))
    height, width = draw(st.integers(pool[0], 6)), draw(st.integers(pool[1], 6))
    return pool, stride, padding, (height, width, draw(st.integers(1, 3)))


@given(case=pool_cases(), kind=st.sampled_from([MaxPool2D, AvgPool2D]), seed=st.integers(0, 999))
def test_pooling_gradcheck(case, kind, seed):
    pool, stride, padding, input_shape = case
    report = check_layer(kind(pool, stride=stride, padding=padding), input_shape, seed=seed, batch_size=2)
    assert report.passed, str(report)


@given(shape=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 4)), seed=st.integers(0, 999))
def test_global_avg_pool_gradcheck(shape, seed):
    assert check_layer(GlobalAvgPool2D(), shape, seed=seed).passed
