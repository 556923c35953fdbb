"""A student's own layers and containers, written as README invites (subclassing Layer or
Conv2D; a container through ``sublayers()``): the model runs THEIR code, and a mistake in it is
blamed on their class, with what to write instead. (Fit's augment, build overrides, losses and
optimizers of one's own: test_own_training.py.)"""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.gradcheck import check_model, compare_training
from scratchnet.layers import Chain, Conv2D, Dense, Flatten, Layer, Parallel, Residual


def images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6, 6, 1)), rng.integers(0, 3, size=n)


class ZeroWeightGradConv(Conv2D):
    """README's ``class MyConv(Conv2D): def backward(...)``, deliberately wrong: dW is always 0."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["W"] = np.zeros_like(self.grads["W"])
        return dx


# ------------------------------------------------- 1. a subclass's backward runs in first place
@pytest.mark.parametrize("wrap", [lambda conv: conv, lambda conv: Chain([conv, Flatten()]),
                                  lambda conv: Residual(conv)], ids=["top", "chain", "residual"])
def test_a_subclass_backward_runs_when_its_layer_is_first(wrap):
    """Sequential.backward(input_gradient=False) skips dx of the first layer through the fast
    ``backward_params``; a subclass overriding ``backward`` must still run its own."""
    x, _ = images()
    conv = ZeroWeightGradConv(1, 3, padding="same")  # 1 filter: the identity shortcut adds
    model = sn.Sequential([wrap(conv), Flatten(), Dense(3)], input_shape=(6, 6, 1), seed=0, dtype="float64")
    model.build()
    logits = model.forward(x, training=True)
    conv.grads["W"][...] = 1.0
    model.backward(np.ones_like(logits), input_gradient=False)
    np.testing.assert_array_equal(conv.grads["W"], 0.0)
    assert np.abs(conv.grads["b"]).max() > 0  # its super().backward ran: db = sum of dy != 0


def test_a_backward_assigned_to_the_class_later_is_seen():
    """A later notebook cell assigns ``MyConv.backward = ...`` after a first backward: the answer
    remembered per class would keep running Conv2D's fast backward_params."""
    class LaterConv(Conv2D):
        pass

    x, _ = images()
    conv = LaterConv(1, 3, padding="same")
    model = sn.Sequential([conv, Flatten(), Dense(3)], input_shape=(6, 6, 1), seed=0, dtype="float64")
    logits = model.build().forward(x, training=True)
    model.backward(np.ones_like(logits), input_gradient=False)
    assert np.abs(conv.grads["W"]).max() > 0
    def zero_weight_grad_backward(self, dy):  # a cell's wrong backward, as ZeroWeightGradConv's
        dx = Conv2D.backward(self, dy)
        self.grads["W"] = np.zeros_like(self.grads["W"])
        return dx

    LaterConv.backward = zero_weight_grad_backward
    logits = model.forward(x, training=True)
    model.backward(np.ones_like(logits), input_gradient=False)
    np.testing.assert_array_equal(conv.grads["W"], 0.0)


def test_compare_training_catches_a_wrong_backward_in_first_place():
    x, y = images(8)
    model = sn.Sequential([Conv2D(2, 3), Flatten(), Dense(3)], input_shape=(6, 6, 1), seed=0)
    model.compile("sgd", "cross_entropy")
    assert not compare_training(model, "conv2d", ZeroWeightGradConv(2, 3), x, y, steps=2).passed
    assert compare_training(model, "conv2d", Conv2D(2, 3), x, y, steps=2).passed


# ----------------------------------- 2. a container of one's own, through sublayers() only
class MyResidual(Layer):
    """y = x + block(x): a container as base.py's sublayers() describes, not a Container."""

    def __init__(self, block, name=None):
        super().__init__(name=name)
        self.block = block

    def sublayers(self):
        return [self.block]

    def output_shape(self, input_shape):
        return self.block.output_shape(input_shape)

    def init_params(self, input_shape, rng):
        self.block.build(input_shape, rng, self.dtype)
        return {}

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"ran": True}
        return x + self.block.forward(x, training)

    def backward(self, dy):
        return dy + self.block.backward(dy)


def own_residual_model():
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 6, 6, 2)), rng.integers(0, 3, 8)
    model = sn.Sequential([MyResidual(Conv2D(2, 3, padding="same")), Flatten(), Dense(3)],
                          input_shape=(6, 6, 2), seed=0)
    return model.compile("adam", "cross_entropy"), x, y


def test_freezing_a_container_of_ones_own_freezes_the_layers_inside():
    model, x, y = own_residual_model()
    model.freeze(up_to="flatten")
    before = model.get_weights()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    after = model.get_weights()
    np.testing.assert_array_equal(after["conv2d/W"], before["conv2d/W"])
    np.testing.assert_array_equal(after["conv2d/b"], before["conv2d/b"])
    assert not np.array_equal(after["dense/W"], before["dense/W"])


def test_count_params_and_summary_count_the_layers_inside_a_container_of_ones_own():
    model, _, _ = own_residual_model()
    conv, dense = 3 * 3 * 2 * 2 + 2, 6 * 6 * 2 * 3 + 3  # 38 and 219, by hand
    assert model.count_params() == conv + dense == 257
    assert model.layers[0].count_params() == conv
    model.freeze(up_to="flatten")
    lines = model.summary_text().splitlines()
    assert "Total params: 257" in lines
    assert "Trainable params: 219" in lines
    assert "Non-trainable params: 38" in lines


def test_astype_casts_the_layers_inside_a_container_of_ones_own():
    model, x, y = own_residual_model()
    model.build().astype("float64")
    conv = model.layers[0].block
    assert conv.dtype == np.float64
    assert {value.dtype for value in [*conv.params.values(), *conv.grads.values()]} == {np.dtype("float64")}
    assert check_model(model, x[:2], y[:2]).passed


# ------------------------------------------- 3. int and bool buffers keep their dtype
class KeepChannels(Layer):
    """Keeps the channels of a saved bool mask; counts training samples in an int buffer."""

    def __init__(self, keep, name=None):
        super().__init__(name)
        self.keep = list(keep)

    def output_shape(self, input_shape):
        return (*input_shape[:-1], sum(self.keep))

    def init_params(self, input_shape, rng):
        self.buffers["mask"] = np.array(self.keep, dtype=bool)
        self.buffers["seen"] = np.zeros((), dtype=np.int64)
        self.buffers["scale"] = np.ones(1)  # float64: cast to the model's dtype
        return {}

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"shape": x.shape}
        if training:
            self.buffers["seen"] += len(x)
        return x[..., self.buffers["mask"]] * self.buffers["scale"]

    def backward(self, dy):
        dx = np.zeros(self.cache["shape"], dy.dtype)
        dx[..., self.buffers["mask"]] = dy * self.buffers["scale"]
        return dx


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_int_and_bool_buffers_keep_their_dtype_through_build_and_astype(dtype):
    model = sn.Sequential([KeepChannels([1, 0, 1, 1]), Dense(2)], input_shape=(4,), seed=0).build()
    model.astype(dtype)
    buffers = model.layers[0].buffers
    assert {key: value.dtype for key, value in buffers.items()} == {
        "mask": np.dtype(bool), "seen": np.dtype(np.int64), "scale": np.dtype(dtype)}
    x = np.arange(8.0).reshape(2, 4)
    np.testing.assert_array_equal(model.layers[0].forward(x, training=True), [[0, 2, 3], [4, 6, 7]])
    assert buffers["seen"] == 2
    model.compile("sgd", "cross_entropy").fit(x, [0, 1], verbose=0)
    assert buffers["seen"] == 4 and buffers["seen"].dtype == np.int64


class RunningScale(Layer):
    """Divides by a running mean of |x|: a scalar buffer started from the Python number 1."""

    def init_params(self, input_shape, rng):
        self.buffers = {"scale": 1, "offsets": [0, 1]}  # Python numbers: float buffers
        return {}

    def forward(self, x, training=False):
        if training:
            self.buffers["scale"] *= 0.9  # in place: an int64 buffer would refuse a float
            self.buffers["scale"] += 0.1 * np.abs(x).mean()
        self.cache = {"scale": self.buffers["scale"].copy()}
        return x / self.cache["scale"]

    def backward(self, dy):
        return dy / self.cache["scale"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_python_number_and_list_buffers_become_float_buffers(dtype):
    """Only NumPy int and bool ARRAYS keep their dtype; {"scale": 1} is a float buffer, as it
    was before int buffers were kept (it stayed int64 and `*= 0.9` raised UFuncTypeError)."""
    model = sn.Sequential([RunningScale(), Dense(2)], input_shape=(4,), seed=0, dtype=dtype).build()
    buffers = model.layers[0].buffers
    assert {key: value.dtype for key, value in buffers.items()} == {
        "scale": np.dtype(dtype), "offsets": np.dtype(dtype)}
    x = np.array([[1.0, -2.0, 3.0, -4.0], [0.0, 2.0, -1.0, 5.0]])  # mean |x| = 18 / 8 = 2.25
    model.layers[0].forward(x.astype(dtype), training=True)
    np.testing.assert_allclose(buffers["scale"], 0.9 * 1 + 0.1 * 2.25, rtol=1e-6)  # 1.125
    other = "float64" if dtype == "float32" else "float32"
    model.astype(other)
    assert {value.dtype for value in model.layers[0].buffers.values()} == {np.dtype(other)}


# ------------------------- 4. a missing or wrong-shaped dx is blamed on the layer that returned it
class NoReturn(Layer):
    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"ran": True}
        return x * 2

    def backward(self, dy):
        dx = dy * 2  # noqa: F841  (the forgotten `return dx`)


class WrongShapeDx(NoReturn):
    def backward(self, dy):
        return dy[:, :2]


WRAPPERS = {"top": lambda layer: layer, "residual": lambda layer: Residual(layer),
            "chain": lambda layer: Chain([Dense(6), layer]),
            "chain_first": lambda layer: Chain([layer, Dense(6)]),
            "parallel": lambda layer: Parallel([layer, Dense(6)], merge="add")}


@pytest.mark.parametrize("where", sorted(WRAPPERS))
@pytest.mark.parametrize("cls, error, said", [
    (NoReturn, TypeError, r"no_return \(NoReturn\)\.backward returned None; it must return dL/dx"),
    (WrongShapeDx, ValueError, r"wrong_shape_dx \(WrongShapeDx\)\.backward returned dx of shape \(4, 2\); it "
                               r"must return dL/dx, of the shape of the input its forward saw: \(4, 6\)$")])
def test_fit_names_the_layer_whose_backward_returned_a_wrong_dx(where, cls, error, said):
    x, y = np.random.default_rng(0).random((4, 6)), np.arange(4) % 3
    model = sn.Sequential([Dense(6), WRAPPERS[where](cls()), Dense(3)], input_shape=(6,), seed=0)
    model.compile("sgd", "cross_entropy")
    owner = "sequential" if where == "top" else where.split("_")[0]
    with pytest.raises(error, match=rf"^{owner}: {said}"):
        model.fit(x, y, batch_size=4, verbose=0)


@pytest.mark.parametrize("cls, error", [(NoReturn, TypeError), (WrongShapeDx, ValueError)])
def test_saliency_names_the_layer_whose_backward_returned_a_wrong_dx(cls, error):
    from scratchnet import interpret

    model = sn.Sequential([Dense(6), cls(), Dense(3)], input_shape=(6,), seed=0)
    with pytest.raises(error, match=rf"^sequential: {cls().name} \({cls.__name__}\)\.backward returned"):
        interpret.saliency(model, np.ones((2, 6)))


def test_a_right_dx_passes_the_check_unchanged():
    """The check is one shape compare: a right dx is returned as the layer gave it."""
    x = np.random.default_rng(1).random((3, 6))
    model = sn.Sequential([Dense(6), Chain([Dense(5), Dense(6)]), Residual(Dense(6)), Dense(3)],
                          input_shape=(6,), seed=0, dtype="float64").compile("sgd", "cross_entropy")
    logits = model.forward(x, training=True)
    dx = model.backward(np.ones_like(logits))
    assert dx.shape == (3, 6)
    assert check_model(model, x, np.arange(3)).passed


# ------------------------------------ 5. receptive fields: a window of one's own is not guessed
class IntKernelConv(Layer):
    """A student's 'same' convolution holding kernel_size as an int (as the exercise starters do)."""

    def __init__(self, filters, kernel_size, name=None):
        super().__init__(name)
        self.filters, self.kernel_size, self.stride, self.padding = filters, kernel_size, 1, 1

    def output_shape(self, input_shape):
        return (*input_shape[:2], self.filters)

    def init_params(self, input_shape, rng):
        return {"W": rng.normal(size=(self.kernel_size, self.kernel_size, input_shape[2], self.filters))}


def test_receptive_field_refuses_a_window_of_ones_own_by_name():
    from scratchnet import receptive

    model = sn.Sequential([Conv2D(2, 3), IntKernelConv(4, 3), Flatten(), Dense(3)], input_shape=(8, 8, 1))
    with pytest.raises(receptive.UnknownWindow, match=
                       r"^int_kernel_conv: receptive_field reads the window of a layer of one's own from "
                       r"its kernel_size \(or pool_size\), stride, padding and dilation, and "
                       r"test_own_layers\.IntKernelConv's cannot be read: its kernel_size is 3, not an "
                       r"\(h, w\) pair of ints >= 1$"):
        receptive.receptive_field(model)


class OwnWindow(Layer):
    """A convolution of one's own with well-formed window attributes (as Conv2D holds them);
    its output shape is Conv2D's with the same options."""

    def __init__(self, kernel_size=(3, 3), stride=(1, 1), padding="valid", dilation=(1, 1), name=None):
        super().__init__(name)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        if dilation is not None:
            self.dilation = dilation

    def output_shape(self, input_shape):
        twin = Conv2D(input_shape[2], self.kernel_size, stride=self.stride, padding=self.padding,
                      dilation=getattr(self, "dilation", 1))
        return twin.output_shape(input_shape)


def test_receptive_field_reads_a_well_formed_window_of_ones_own():
    """kernel_size (3, 3), stride (1, 1), padding "valid", dilation (1, 1): read, as before this
    session's refusal. By hand: conv 3x3 -> 3, own 3x3 -> 5, pool 2 -> 6 (jump 2)."""
    from scratchnet.layers import MaxPool2D
    from scratchnet.receptive import receptive_field

    model = sn.Sequential([Conv2D(2, 3), OwnWindow(), MaxPool2D(2)], input_shape=(12, 12, 1)).build()
    rows = receptive_field(model)
    assert [row.size for row in rows] == [(3, 3), (5, 5), (6, 6)]
    assert [row.jump for row in rows] == [(1, 1), (1, 1), (2, 2)]
    assert [row.start for row in rows] == [(1, 1), (2, 2), (2.5, 2.5)]


@pytest.mark.parametrize("options", [
    {"kernel_size": (3, 2), "stride": (2, 1), "padding": "same", "dilation": (2, 1)},
    {"kernel_size": (4, 4), "stride": [2, 2], "padding": 1, "dilation": (1, 1)},
    {"kernel_size": (3, 5), "stride": (1, 2), "padding": (2, 1), "dilation": (1, 2)},
    {"kernel_size": (2, 3), "stride": (2, 2), "padding": ((0, 1), (1, 0)), "dilation": None}])
def test_a_window_of_ones_own_gives_the_field_conv2d_gives(options):
    """The same options read from a layer of one's own and from scratchnet's Conv2D (no
    dilation attribute: (1, 1)) give the same sizes, jumps and starts on both axes."""
    from scratchnet.receptive import receptive_field

    dilation = options["dilation"] or 1
    built_in = {**options, "dilation": dilation}
    mine = sn.Sequential([Conv2D(2, 3, stride=2), OwnWindow(**options), Conv2D(1, 3, padding="same")],
                         input_shape=(23, 19, 1)).build()
    theirs = sn.Sequential([Conv2D(2, 3, stride=2), Conv2D(2, **built_in), Conv2D(1, 3, padding="same")],
                           input_shape=(23, 19, 1)).build()
    for own, conv in zip(receptive_field(mine), receptive_field(theirs)):
        assert (own.size, own.jump, own.start) == (conv.size, conv.jump, conv.start)


@pytest.mark.parametrize("attributes, why", [
    ({"stride": None}, "it has no stride"),
    ({"stride": None, "padding": None}, "it has no stride or padding"),
    ({"kernel_size": (3, 0)}, r"its kernel_size is \(3, 0\), not an \(h, w\) pair of ints >= 1"),
    ({"stride": (1.0, 1)}, r"its stride is \(1\.0, 1\), not an \(h, w\) pair of ints >= 1"),
    ({"dilation": (True, 1)}, r"its dilation is \(True, 1\), not an \(h, w\) pair of ints >= 1"),
    ({"kernel_size": (3, 3, 3)}, r"its kernel_size is \(3, 3, 3\), not an \(h, w\) pair of ints >= 1"),
    ({"padding": "full"}, r"its padding is 'full', not 'valid', 'same', an int or an \(h, w\) pair")])
def test_a_malformed_window_of_ones_own_is_refused_naming_what(attributes, why):
    from scratchnet.receptive import UnknownWindow, receptive_field

    layer = OwnWindow(name="mine")
    for name, value in attributes.items():
        if value is None:
            delattr(layer, name)
        else:
            setattr(layer, name, value)
    layer.output_shape = lambda input_shape: input_shape  # the window is refused before it is used
    model = sn.Sequential([layer], input_shape=(8, 8, 1)).build()
    read = r"test_own_layers\.OwnWindow's cannot be read"
    with pytest.raises(UnknownWindow, match=rf"^mine: .* {read}: {why}$"):
        receptive_field(model)


def test_summary_blanks_the_receptive_field_from_a_window_of_ones_own_on_and_keeps_the_rest():
    from scratchnet.receptive import layer_costs, summary_columns

    # conv2d 3x3 valid: RF 3, MACs 6*6 positions * 3*3*1*2 = 648; int_kernel_conv: 6*6 * 3*3*2*4
    # = 2,592; dense: 6*6*4 * 3 = 432 (all by hand)
    model = sn.Sequential([Conv2D(2, 3), IntKernelConv(4, 3), Flatten(), Dense(3)], input_shape=(8, 8, 1))
    cells = summary_columns(model, layer_costs(model)[0])
    assert [row["RF"] for row in cells] == ["3", "", "", ""]
    assert [row["MACs"] for row in cells] == ["648", "2,592", "0", "432"]
    lines = model.summary_text().splitlines()
    assert lines[4].split()[-2:] == ["3", "648"]  # conv2d's row keeps its RF
    assert lines[5].split()[-1] == "2,592"
    assert "Multiply-accumulates per sample: 3,672 (FLOPs ~ 7,344)" in lines
