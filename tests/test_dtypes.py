"""No silent float64 in a float32 model (and no silent float32 in a float64 one).

A float32 model must compute in float32 end to end: a single float64 temporary halves the speed
of every matrix product downstream and doubles the memory. NumPy 2 promotes float32 arrays to
float64 when they meet a float64 ARRAY or a NumPy float64 SCALAR (np.sqrt(2.0), np.pi * 1.0,
...), so the leak is easy to write and invisible in the values. These tests check the dtype of

* every forward output, input gradient, parameter gradient and cached float array, for every
  layer type (all activations; Conv2D with both backends, with and without padding/stride; all
  pools, with padding), fed float32, float64 and integer inputs;
* the raw activation functions (the layer casts their result, which could hide a float64
  temporary);
* every loss gradient;
* parameters and optimizer state after Adam/SGD steps (momentum, Nesterov, weight decay, a
  learning-rate schedule);
* a full Sequential train_step / predict.
"""

import numpy as np
import pytest

import scratchnet
from scratchnet import SGD, Adam, Sequential
from scratchnet.layers import (
    Activation,
    Add,
    AvgPool2D,
    Chain,
    Concatenate,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    Parallel,
    Residual,
    SeparableConv2D,
)
from scratchnet.layers.activations import ACTIVATIONS
from scratchnet.layers.base import iter_layers
from scratchnet.losses import LOSSES
from scratchnet.optimizers import CosineDecay

DTYPES = ["float32", "float64"]
IMAGE = (7, 6, 3)  # (H, W, C): non-square, odd sizes (ragged pooling edges)

# (test id, factory, one sample's input shape); every layer type, several configurations
LAYER_CASES = [
    *[(f"dense-{name}", lambda name=name: Dense(4, activation=name), (5,)) for name in sorted(ACTIVATIONS)],
    ("dense-no-bias", lambda: Dense(4, use_bias=False), (5,)),
    *[(f"activation-{name}", lambda name=name: Activation(name), IMAGE) for name in sorted(ACTIVATIONS)],
    ("flatten", Flatten, IMAGE),
    *[(f"conv-{backend}-{tag}", factory, shape)
      for backend in ("im2col", "scipy")
      for tag, factory, shape in [
          ("valid", lambda b=backend: Conv2D(4, 3, backend=b), IMAGE),
          ("same-stride2", lambda b=backend: Conv2D(4, (3, 2), stride=2, padding="same", backend=b), IMAGE),
          ("dilated-no-bias", lambda b=backend: Conv2D(2, 2, dilation=2, use_bias=False, backend=b), IMAGE),
          ("many-channels", lambda b=backend: Conv2D(5, 3, padding="same", backend=b), (6, 6, 8)),
      ]],
    ("conv-grouped", lambda: Conv2D(4, 3, groups=2, padding="same"), (6, 6, 4)),
    ("depthwise", lambda: DepthwiseConv2D(3, depth_multiplier=2, stride=2, padding="same"), IMAGE),
    ("separable", lambda: SeparableConv2D(4, (3, 2), padding="same"), IMAGE),
    ("maxpool-valid", lambda: MaxPool2D(2), IMAGE),
    ("maxpool-same-overlapping", lambda: MaxPool2D(3, stride=2, padding="same"), IMAGE),
    ("avgpool-valid", lambda: AvgPool2D(2), IMAGE),
    ("avgpool-same", lambda: AvgPool2D(3, stride=2, padding="same"), IMAGE),
    ("globalavgpool", GlobalAvgPool2D, IMAGE),
    ("batchnorm-image", lambda: scratchnet.layers.BatchNorm(), IMAGE),
    ("batchnorm-flat", lambda: scratchnet.layers.BatchNorm(keras_momentum=0.9), (5,)),
    ("dropout", lambda: scratchnet.layers.Dropout(0.5), IMAGE),
    ("spatial-dropout", lambda: scratchnet.layers.SpatialDropout2D(0.5), IMAGE),
    ("channel-shuffle", lambda: scratchnet.layers.ChannelShuffle(3), (4, 4, 6)),
    ("zero-padding", lambda: scratchnet.layers.ZeroPadding2D(((1, 0), (2, 3))), IMAGE),
    ("upsampling", lambda: scratchnet.layers.UpSampling2D((2, 3)), IMAGE),
]

# containers (their children's dtypes: test_container_children_keep_the_dtype) and merge layers
LAYER_CASES += [
    ("chain", lambda: Chain([Conv2D(2, 3), Activation("tanh")]), IMAGE),
    ("residual-identity", lambda: Residual([Conv2D(3, 3, padding="same"), Activation("relu")]), IMAGE),
    ("residual-projection", lambda: Residual(Conv2D(4, 3, stride=2, padding=1),
                                             shortcut=Conv2D(4, 1, stride=2)), IMAGE),
    ("parallel-concat", lambda: Parallel([Conv2D(2, 1), MaxPool2D(3, stride=1, padding="same")]), IMAGE),
    ("parallel-add", lambda: Parallel([Conv2D(2, 1), Conv2D(2, 3, padding="same")], merge="add"), IMAGE),
]
MERGE_CASES = [("add", Add, [IMAGE, IMAGE]), ("concatenate", Concatenate, [IMAGE, (7, 6, 2)])]


def built(factory, input_shape, dtype):
    layer = factory()
    layer.build(input_shape, rng=np.random.default_rng(0), dtype=dtype)
    return layer


def float_arrays(store):
    """Every floating-point ndarray in a (possibly nested) dict/list/tuple."""
    if isinstance(store, np.ndarray):
        return [store] if store.dtype.kind == "f" else []
    if isinstance(store, dict):
        store = list(store.values())
    if isinstance(store, (list, tuple)):
        return [array for item in store for array in float_arrays(item)]
    return []


def assert_all_dtype(arrays: dict, dtype, what):
    wrong = {name: str(array.dtype) for name, array in arrays.items() if array.dtype != np.dtype(dtype)}
    assert not wrong, f"{what}: expected {dtype}, got {wrong}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("input_kind", ["float32", "float64", "int64"])
@pytest.mark.parametrize("case_id, factory, input_shape", LAYER_CASES, ids=[case[0] for case in LAYER_CASES])
def test_layer_forward_backward_keep_the_layer_dtype(case_id, factory, input_shape, input_kind, dtype):
    layer = built(factory, input_shape, dtype)
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, *input_shape)) * 3).astype(input_kind)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype, f"{case_id}: forward output is {y.dtype}"
    cached = {f"cache[{i}]": array for i, array in enumerate(float_arrays(layer.cache))}
    assert_all_dtype(cached, dtype, f"{case_id}: cached arrays")
    # dy in the OTHER float type: backward must cast it, not promote to it
    other = "float64" if dtype == "float32" else "float32"
    dx = layer.backward(rng.standard_normal(y.shape).astype(other))
    assert dx.dtype == dtype, f"{case_id}: input gradient is {dx.dtype}"
    assert set(layer.grads) == set(layer.params)
    assert_all_dtype(layer.params, dtype, f"{case_id}: params")
    assert_all_dtype(layer.grads, dtype, f"{case_id}: grads")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_raw_activation_functions_compute_in_float32(name):
    # The Activation layer casts f(x) to its dtype, which would hide a float64 temporary
    # (e.g. float32 / np.float64 scalar): the raw functions must already return float32.
    function, derivative = ACTIVATIONS[name]
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    y = function(x)
    assert y.dtype == np.float32, f"{name} forward gives {y.dtype}"
    dx = derivative(x, y, np.ones_like(x))
    assert dx.dtype == np.float32, f"{name} backward gives {dx.dtype}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_loss_gradient_has_the_logits_dtype(loss_name, dtype):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 4)).astype(dtype)
    targets = {"cross_entropy": rng.integers(0, 4, size=6),
               "mse": rng.standard_normal((6, 4)),  # float64 targets into a float32 loss
               "binary_cross_entropy": rng.integers(0, 2, size=(6, 4))}[loss_name]
    loss = LOSSES[loss_name]()
    value = loss.forward(logits, targets)
    assert isinstance(value, float)
    assert loss.backward().dtype == dtype


OPTIMIZERS = {
    "adam": lambda: Adam(lr=1e-2),
    "adam-weight-decay-schedule": lambda: Adam(lr=CosineDecay(1e-2, total_steps=10), weight_decay=1e-3),
    "sgd": lambda: SGD(lr=0.1),
    "sgd-momentum-weight-decay": lambda: SGD(lr=0.1, momentum=0.9, weight_decay=1e-3),
    "sgd-nesterov": lambda: SGD(lr=0.1, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
def test_optimizer_keeps_params_and_state_in_the_layer_dtype(optimizer_name, dtype):
    layers = [built(lambda: Conv2D(3, 2), IMAGE, dtype), built(lambda: Dense(3), (5,), dtype)]
    rng = np.random.default_rng(3)
    optimizer = OPTIMIZERS[optimizer_name]()
    for _ in range(3):
        for layer in layers:
            layer.grads = {name: rng.standard_normal(param.shape).astype(dtype)
                           for name, param in layer.params.items()}
        before = {(layer.name, name): p.copy() for layer in layers for name, p in layer.params.items()}
        optimizer.step(layers)
    for layer in layers:
        assert_all_dtype(layer.params, dtype, f"{optimizer_name}: {layer.name} params")
        state = {f"{name}[{i}]": array for name, per_param in layer.opt_state.items()
                 for i, array in enumerate(float_arrays(per_param))}
        assert_all_dtype(state, dtype, f"{optimizer_name}: {layer.name} optimizer state")
        changed = [not np.array_equal(p, before[(layer.name, name)]) for name, p in layer.params.items()]
        assert all(changed), "the optimizer did not update every parameter"
    if optimizer_name.startswith("adam") or "momentum" in optimizer_name or "nesterov" in optimizer_name:
        assert state, "this optimizer keeps state; the dtype check above saw none"


def small_cnn(dtype, backend):
    return Sequential([Conv2D(4, 3, padding="same", backend=backend), Activation("relu"), MaxPool2D(2),
                       Conv2D(6, 3, backend=backend), Activation("tanh"), AvgPool2D(2, padding="same"),
                       Flatten(), Dense(8, activation="gelu"), Dense(3)],
                      input_shape=(10, 9, 1), seed=0, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ["im2col", "scipy"])
def test_full_model_train_step_stays_in_the_model_dtype(backend, dtype):
    model = small_cnn(dtype, backend).compile(optimizer="adam", loss="cross_entropy")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 10, 9, 1))  # float64 data into a float32 model
    labels = rng.integers(0, 3, size=5)
    for _ in range(2):
        loss, logits = model.train_step(x, labels)
    assert isinstance(loss, float) and np.isfinite(loss)
    assert logits.dtype == dtype
    for layer in model.layers:
        assert_all_dtype(layer.params, dtype, f"{layer.name} params")
        assert_all_dtype(layer.grads, dtype, f"{layer.name} grads")
        state = {f"{name}[{i}]": array for name, per_param in layer.opt_state.items()
                 for i, array in enumerate(float_arrays(per_param))}
        assert_all_dtype(state, dtype, f"{layer.name} optimizer state")
        cached = {f"cache[{i}]": array for i, array in enumerate(float_arrays(layer.cache))}
        assert_all_dtype(cached, dtype, f"{layer.name} cache")
    assert model.predict(x).dtype == dtype
    assert model.forward(x.astype(np.float32)).dtype == dtype


def test_every_exported_layer_type_is_covered():
    """A new layer in scratchnet.layers must get a case in LAYER_CASES above."""
    exported = {getattr(scratchnet.layers, name) for name in scratchnet.layers.__all__}
    layer_types = {cls for cls in exported
                   if isinstance(cls, type) and issubclass(cls, Layer) and cls is not Layer}
    covered = {type(factory()) for _, factory, _ in LAYER_CASES + MERGE_CASES}
    missing = sorted(cls.__name__ for cls in layer_types - covered)
    assert not missing, f"add dtype cases for {missing} to tests/test_dtypes.py"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case_id, factory, input_shapes", MERGE_CASES, ids=[case[0] for case in MERGE_CASES])
def test_merge_layers_keep_the_dtype(case_id, factory, input_shapes, dtype):
    layer = built(factory, input_shapes, dtype)
    rng = np.random.default_rng(5)
    kinds = ["float64", "int64"]  # never the layer's dtype: the layer must cast
    xs = [rng.standard_normal((2, *shape)).astype(kind) for shape, kind in zip(input_shapes, kinds)]
    y = layer.forward(xs)
    assert y.dtype == dtype, f"{case_id}: forward output is {y.dtype}"
    other = "float64" if dtype == "float32" else "float32"
    assert [dx.dtype for dx in layer.backward(rng.standard_normal(y.shape).astype(other))] == [dtype] * 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_container_children_keep_the_dtype(dtype):
    block = Parallel([Residual([Conv2D(3, 3, padding="same"), Activation("tanh")]), Conv2D(2, 1)])
    block.build(IMAGE, rng=np.random.default_rng(0), dtype=dtype)
    y = block.forward(np.ones((2, *IMAGE), dtype="float64"), training=True)
    block.backward(np.ones(y.shape, dtype="float64"))
    for leaf in iter_layers([block]):
        assert leaf.dtype == dtype
        assert_all_dtype({**leaf.params, **{f"d{key}": value for key, value in leaf.grads.items()}}, dtype,
                         leaf.name)
