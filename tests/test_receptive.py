"""Receptive fields against hand arithmetic and against the support of an input gradient; costs."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from scratchnet import Sequential
from scratchnet.inspect import input_gradient
from scratchnet.layers import (
    Activation,
    AvgPool2D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    Residual,
)
from scratchnet.models import lenet5
from scratchnet.receptive import architecture_table, compare_conv_cost, layer_costs, receptive_field


def fields(layers, input_shape=(28, 28, 1)):
    model = Sequential(layers, input_shape=input_shape, seed=0).build()
    return [(row.size[0], row.jump[0], row.start[0]) for row in receptive_field(model)]


def test_stacked_3x3_convs_grow_3_5_7():
    # valid: r = 1 + 2, + 2, + 2;  start = 0 + (3-1)/2 = 1, then 2, then 3
    assert fields([Conv2D(2, 3), Conv2D(2, 3), Conv2D(2, 3)]) == [(3, 1, 1), (5, 1, 2), (7, 1, 3)]
    # "same" pads 1 on top: start stays 0 (the first output is centred on pixel 0)
    assert fields([Conv2D(2, 3, padding="same")] * 1 + [Conv2D(2, 3, padding="same"),
                   Conv2D(2, 3, padding="same")]) == [(3, 1, 0), (5, 1, 0), (7, 1, 0)]


def test_one_5x5_sees_what_two_3x3_see():
    assert fields([Conv2D(2, 5)]) == [(5, 1, 2)]  # r = 1 + 4, start = 4 / 2
    assert fields([Conv2D(2, 3), Activation("relu"), Conv2D(2, 3)])[-1] == (5, 1, 2)


def test_strided_stack():
    # conv 3 s2: r 3, j 2, start 1;  conv 3 s2: r 3 + 2*2 = 7, j 4, start 1 + 1*2 = 3;
    # conv 3 s1: r 7 + 2*4 = 15, j 4, start 3 + 1*4 = 7
    assert fields([Conv2D(2, 3, stride=2), Conv2D(2, 3, stride=2), Conv2D(2, 3)], (32, 32, 1)) == [
        (3, 2, 1), (7, 4, 3), (15, 4, 7)]


def test_dilated_stack():
    # dilations 1, 2, 4: k_eff = 3, 5, 9: r = 3, 3 + 4 = 7, 7 + 8 = 15; start 1, 1 + 2 = 3, 3 + 4 = 7
    assert fields([Conv2D(2, 3), Conv2D(2, 3, dilation=2), Conv2D(2, 3, dilation=4)], (32, 32, 1)) == [
        (3, 1, 1), (7, 1, 3), (15, 1, 7)]


def test_pooling_and_global_pooling():
    # conv3 same: (3, 1, 0); maxpool 2: r 3 + 1*1 = 4, j 2, start 0 + 0.5 = 0.5
    # conv3 same (p_top 1): r 4 + 2*2 = 8, start 0.5 + (1 - 1)*2 = 0.5
    # avgpool 2: r 8 + 1*2 = 10, j 4, start 0.5 + 0.5*2 = 1.5
    # global average over 7x7: r 10 + 6*4 = 34, start 1.5 + 3*4 = 13.5 (the image centre)
    # Flatten and Dense after it: unchanged
    got = fields([Conv2D(2, 3, padding="same"), Activation("relu"), MaxPool2D(2),
                  Conv2D(2, 3, padding="same"), AvgPool2D(2), GlobalAvgPool2D(), Dense(3)])
    assert got == [(3, 1, 0), (3, 1, 0), (4, 2, 0.5), (8, 2, 0.5), (10, 4, 1.5), (34, 4, 13.5),
                   (34, 4, 13.5)]


def test_even_same_kernel_and_non_square_options():
    # height: 4 "same" on 8: total padding 3, top 1 (odd cell at the bottom): start = (4-1)/2 - 1 = 0.5
    # width: 3 stride 2 "same" on 8: 4 outputs need (4-1)*2 + 3 - 8 = 1 padding, all at the right,
    # so p_left = 0 and start = (3-1)/2 - 0 = 1
    model = Sequential([Conv2D(1, (4, 3), stride=(1, 2), padding="same"), MaxPool2D((2, 1))],
                       input_shape=(8, 8, 1)).build()
    rows = receptive_field(model)
    assert (rows[0].size, rows[0].jump, rows[0].start) == ((4, 3), (1, 2), (0.5, 1.0))
    # pool (2, 1): height r 4 + 1, j 2, start 0.5 + 0.5; width unchanged
    assert (rows[1].size, rows[1].jump, rows[1].start) == ((5, 3), (2, 2), (1.0, 1.0))


def test_flatten_sees_the_whole_map():
    # LeNet: ... pool2 (16, 4, 5.5) on a 5x5 map, flatten: r 16 + 4*4 = 32, start 5.5 + 2*4 = 13.5
    rows = receptive_field(lenet5())
    assert [(r.size[0], r.jump[0], r.start[0]) for r in rows[:7]] == [
        (5, 1, 0), (5, 1, 0), (6, 2, 0.5), (14, 2, 4.5), (14, 2, 4.5), (16, 4, 5.5), (32, 4, 13.5)]


# ---------------------------------------------------------------------- containers (stand-ins)
class Block(Layer):
    """A stand-in for Residual / Parallel: branches of layers, same output shape (adds them)."""

    def __init__(self, branches, name=None):
        super().__init__(name=name)
        self.branches = branches

    def sublayers(self):
        return [layer for branch in self.branches for layer in branch]

    def build(self, input_shape, rng=None, dtype="float32"):
        for branch in self.branches:
            shape = input_shape
            for layer in branch:
                shape = layer.build(shape, rng, dtype)
        return super().build(input_shape, rng, dtype)

    def output_shape(self, input_shape):
        shape = input_shape
        for layer in self.branches[0]:
            shape = layer.output_shape(shape)
        return shape


def test_residual_block_takes_the_larger_branch():
    # main branch: two 3x3 same convs (r 5, start 0); shortcut: identity (r 1, start 0) -> 5
    residual = Block([[Conv2D(2, 3, padding="same"), Activation("relu"), Conv2D(2, 3, padding="same")], []])
    got = fields([Conv2D(2, 3, padding="same"), residual, MaxPool2D(2)], (8, 8, 1))
    # before: (3, 1, 0); block: 3 + 2 + 2 = 7; pool: 7 + 1 = 8, j 2, start 0.5
    assert got == [(3, 1, 0), (7, 1, 0), (8, 2, 0.5)]


def test_parallel_branches_take_the_union_and_need_one_jump():
    parallel = Block([[Conv2D(2, 1)], [Conv2D(2, 3, padding="same")], [Conv2D(2, 5, padding="same")]])
    assert fields([parallel], (8, 8, 1)) == [(5, 1, 0)]
    # branches centred differently: valid 3x3 (start 1, span 0..2) and same 3x3 (span -1..1):
    # union -1..2 -> r 4, start 0.5 (a block that could not add them is still measurable)
    uneven = Block([[Conv2D(1, 3, padding=((0, 2), (0, 2)))], [Conv2D(1, 3, padding="same")]])
    assert fields([uneven], (8, 8, 1)) == [(4, 1, 0.5)]
    strided = Block([[Conv2D(2, 3, stride=2, padding="same")], []])
    with pytest.raises(ValueError, match="block: its branches have different jumps"):
        fields([strided], (8, 8, 1))


def test_unknown_resampling_layer_is_named():
    class Upsample(Layer):
        def output_shape(self, input_shape):
            return (2 * input_shape[0], 2 * input_shape[1], input_shape[2])

    with pytest.raises(ValueError, match="upsample: receptive_field does not know how Upsample"):
        fields([Upsample()], (8, 8, 1))


# ---------------------------------------------------------------------- against a gradient
@given(st.lists(st.tuples(st.sampled_from([1, 2, 3, 5]), st.sampled_from([1, 2]), st.sampled_from([1, 2]),
                          st.sampled_from(["valid", "same"]), st.booleans()), min_size=1, max_size=3))
def test_field_is_the_support_of_the_input_gradient(specs):
    """With positive weights, d out[cell] / d x is non-zero exactly on the receptive field (its
    bounding box: dilation leaves holes inside), for a middle cell whose field lies inside the
    image (a field clipped by the border can also lose cells no window reaches)."""
    layers = []
    for kernel, stride, dilation, padding, pool in specs:
        layers.append(Conv2D(1, kernel, stride=stride, dilation=dilation, padding=padding))
        if pool:
            layers.append(AvgPool2D(2, stride=1))
    try:
        model = Sequential(layers, input_shape=(64, 64, 1), dtype="float64", seed=0).build()
    except ValueError:  # the kernels do not fit
        assume(False)
    for layer in model.layers:
        if "W" in layer.params:
            layer.params["W"][...] = 1.0
    row = receptive_field(model)[-1]
    r, j, start = row.size[0], row.jump[0], row.start[0]
    out_h = model.output_shape[0]
    cell = out_h // 2
    centre = start + cell * j
    low, high = centre - (r - 1) / 2, centre + (r - 1) / 2
    assume(low >= 0 and high <= 63)  # the field lies inside the image (not clipped by padding)
    dy = np.zeros((1, *model.output_shape))
    dy[0, cell, cell, 0] = 1
    grad = input_gradient(model, np.ones((1, 64, 64, 1)), dy)[0, :, :, 0]
    rows, cols = np.nonzero(grad.any(axis=1))[0], np.nonzero(grad.any(axis=0))[0]
    assert (rows.min(), rows.max()) == (low, high)
    assert (cols.min(), cols.max()) == (low, high)


# ---------------------------------------------------------------------- cost
def test_lenet_costs_by_hand():
    rows, totals = layer_costs(lenet5())
    macs = {row.name: row.macs for row in rows}
    assert macs["conv2d"] == 28 * 28 * 5 * 5 * 1 * 6 == 117_600
    assert macs["conv2d_1"] == 10 * 10 * 5 * 5 * 6 * 16 == 240_000
    assert (macs["dense"], macs["dense_1"], macs["dense_2"]) == (400 * 120, 120 * 84, 84 * 10)
    assert macs["max_pool2d"] == macs["activation"] == macs["flatten"] == 0
    assert totals == {"params": 61_706, "macs": 416_520, "flops": 833_040}
    table = architecture_table(lenet5())
    assert "conv2d_1 (Conv2D)" in table and "240,000" in table and "Total params: 61,706" in table
    assert table.splitlines()[0].split() == ["Layer", "(type)", "Output", "shape", "RF", "Jump", "Start",
                                             "Params", "MACs"]


def test_container_costs_sum_their_branches():
    residual = Block([[Conv2D(4, 3, padding="same"), Conv2D(4, 3, padding="same")], []])
    model = Sequential([Conv2D(4, 1), residual, Flatten()], input_shape=(5, 5, 2), seed=0).build()
    rows, totals = layer_costs(model)
    assert [row.params for row in rows] == [2 * 4 + 4, 2 * (3 * 3 * 4 * 4 + 4), 0]
    assert [row.macs for row in rows] == [25 * 8, 2 * 25 * 144, 0]


def test_a_real_residual_is_counted_once():
    # Residual.count_params sums its children: counting it AND its children counted them twice
    model = Sequential([Conv2D(4, 3, padding="same"), Residual([Conv2D(4, 3, padding="same")]), Flatten(),
                        Dense(3)], input_shape=(5, 5, 2), seed=0).build()
    rows, totals = layer_costs(model)
    assert [row.params for row in rows] == [3 * 3 * 2 * 4 + 4, 3 * 3 * 4 * 4 + 4, 0, 100 * 3 + 3]
    assert totals["params"] == model.count_params() == 76 + 148 + 303


def test_compare_conv_cost_by_hand():
    cost = compare_conv_cost((32, 32, 64), filters=128, kernel_size=3)
    assert cost.output_shape == (32, 32, 128)
    assert cost.standard_params == 3 * 3 * 64 * 128 + 128 == 73_856
    assert cost.separable_params == 3 * 3 * 64 + 64 * 128 + 128 == 8_896
    assert cost.standard_macs == 32 * 32 * 3 * 3 * 64 * 128 == 75_497_472
    assert cost.separable_macs == 32 * 32 * (3 * 3 * 64 + 64 * 128) == 8_978_432
    assert cost.macs_ratio == pytest.approx(1 / 128 + 1 / 9, rel=1e-12)
    small = compare_conv_cost((7, 7, 3), filters=4, kernel_size=3, stride=2, padding="valid", use_bias=False)
    assert small.output_shape == (3, 3, 4)  # (7 - 3) // 2 + 1
    assert (small.standard_params, small.separable_params) == (108, 27 + 12)
    assert (small.standard_macs, small.separable_macs) == (9 * 108, 9 * 39)
    text = cost.table()
    assert "input 32x32x64 -> output 32x32x128" in text and "75,497,472" in text and "0.1189" in text
    with pytest.raises(ValueError, match="compare_conv_cost: filters must be an int >= 1, got 0"):
        compare_conv_cost((8, 8, 3), 0, 3)
    whole_float = r"2\.0 \(a float: pass int\(\.\.\.\), or compute it with //\)"
    for bad, shown, error in ((2.0, whole_float, TypeError), (True, "True", TypeError),
                              (-1, "-1", ValueError)):
        for options, what in (({"filters": bad}, "filters"), ({"kernel_size": bad}, "kernel_size"),
                              ({"stride": bad}, "stride")):
            arguments = {"filters": 2, "kernel_size": 3, **options}
            with pytest.raises(error, match=rf"^compare_conv_cost: {what} must be an int >= 1, "
                                            rf"got {shown}$"):
                compare_conv_cost((8, 8, 3), **arguments)
    assert compare_conv_cost((8, 8, 3), np.int64(2), np.int32(3)).standard_params == 3 * 3 * 3 * 2 + 2
    with pytest.raises(ValueError, match="a 9x9 kernel does not fit in 4x4"):
        compare_conv_cost((4, 4, 3), 2, 9, padding="valid")


def test_residual_and_parallel_blocks_by_hand():
    """Real containers (not stand-ins): a Residual's two paths are branches, not one chain.

    16x16 input. conv 3x3 same:                    r 3,  j 1, start 0
    Residual(conv3 same, relu, conv3 same):        block 3 + 2 + 2 = 7, identity 3 -> r 7, j 1
    Residual(conv3 s2 same, conv3 same; 1x1 s2):   block 7 + 2*1 = 9 (j 2), 9 + 2*2 = 13;
        "same" with stride 2 on 16 pads 0 top / 1 bottom, so start = 0 + (1 - 0) * 1 = 1;
        shortcut 7 + 0 = 7 at start 0 (inside the block's window) -> r 13, j 2, start 1
        (as one chain, block then shortcut, the jump would wrongly be 4)
    Parallel(1x1 | 5x5 same), concat:             13 and 13 + 4*2 = 21 -> r 21, j 2, start 1
    """
    from scratchnet.layers import Activation, Conv2D, Parallel, Residual

    model = Sequential([
        Conv2D(4, 3, padding="same"),
        Residual([Conv2D(4, 3, padding="same"), Activation("relu"), Conv2D(4, 3, padding="same")]),
        Residual([Conv2D(8, 3, stride=2, padding="same"), Conv2D(8, 3, padding="same")],
                 shortcut=Conv2D(8, 1, stride=2)),
        Parallel([Conv2D(2, 1), [Conv2D(2, 5, padding="same")]]),
    ], input_shape=(16, 16, 1)).build()
    rows = receptive_field(model)
    assert [row.size for row in rows] == [(3, 3), (7, 7), (13, 13), (21, 21)]
    assert [row.jump for row in rows] == [(1, 1), (1, 1), (2, 2), (2, 2)]
    assert [row.start for row in rows] == [(0, 0), (0, 0), (1, 1), (1, 1)]


def test_summary_shows_receptive_fields_and_macs_by_hand():
    # conv 5x5 same: RF 5, MACs 28*28 positions * 5*5*1*6 weights = 117,600; conv 5x5 after a
    # 2x2 pool: RF 6 + (5-1)*2 = 14, MACs 10*10 * 5*5*6*16 = 240,000; dense 400x120 = 48,000.
    text = lenet5().summary_text()
    rows = {line.split()[0]: line.split() for line in text.splitlines() if "(" in line.split()[0:2][-1]}
    assert rows["conv2d"][-2:] == ["5", "117,600"]
    assert rows["conv2d_1"][-2:] == ["14", "240,000"]
    assert rows["dense"][-2:] == ["32", "48,000"]
    assert "Multiply-accumulates per sample: 416,520 (FLOPs ~ 833,040)" in text


def test_summary_and_architecture_table_count_the_costs_once(monkeypatch):
    """summary_columns takes the CostRows its callers computed for the totals: one layer_costs each."""
    import scratchnet.receptive as receptive

    calls, counted = [], receptive.layer_costs

    def counting(model):
        calls.append(model.name)
        return counted(model)

    monkeypatch.setattr(receptive, "layer_costs", counting)
    model = lenet5()
    plain = counted(model)[1]
    text, table = model.summary_text(), architecture_table(model)
    assert calls == [model.name, model.name]
    assert f"Multiply-accumulates per sample: {plain['macs']:,}" in text
    assert f"MACs per sample: {plain['macs']:,}" in table and "117,600" in table
