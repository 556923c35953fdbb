"""The PyTorch bridge: to_torch / from_torch / state dicts / parity_report against PyTorch 2.13."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet import interop  # imports without torch: a broken bridge fails here, never skips
from scratchnet import layers as L
from scratchnet.weights_file import load_weights, save_weights

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_torch_thread")]



def every_layer_model(dropout=True, seed=1):
    """A float64 model using every supported layer (odd 'same' totals, asymmetric pads, containers)."""
    rate = 0.25 if dropout else 0.0
    return sn.Sequential([
        L.Conv2D(4, 3, padding="same", stride=2),             # odd total on 9 and 7: asymmetric pad
        L.BatchNorm(momentum=0.3, eps=1e-3), L.Activation("gelu"),
        L.Residual([L.Conv2D(4, (3, 2), padding="same"), L.BatchNorm(), L.Activation("relu")]),
        L.Residual([L.Conv2D(6, 1), L.Activation("elu")], shortcut=L.Conv2D(6, 1, use_bias=False)),
        L.Parallel([[L.Conv2D(2, 1), L.Activation("selu")], L.MaxPool2D(3, stride=1, padding="same"),
                    L.AvgPool2D(2, stride=1, padding="same")], merge="concat"),
        L.Parallel([L.Conv2D(3, 1, dilation=1), L.Chain([L.Conv2D(3, 3, padding=1, dilation=1),
                                                        L.Activation("silu")])], merge="add"),
        L.ZeroPadding2D(((1, 0), (0, 2))), L.ChannelShuffle(3), L.MaxPool2D(2, padding=((1, 0), (0, 1))),
        L.AvgPool2D(2, padding="same"), L.UpSampling2D((2, 3)), L.SpatialDropout2D(rate),
        L.Conv2D(5, 3, stride=(2, 1), padding=((0, 2), (1, 1)), dilation=(1, 2)), L.Activation("softplus"),
        L.Flatten(), L.Dense(16, activation="tanh"), L.BatchNorm(), L.Dropout(rate),
        L.Dense(12, activation="leaky_relu"), L.ChannelShuffle(4), L.Activation("sigmoid"),
        L.Dense(8, activation="softmax"), L.Activation("linear"), L.Dense(3),
    ], input_shape=(9, 7, 3), seed=seed, dtype="float64").build()


def grouped_model(dropout=False, seed=3):
    """Grouped, depthwise and separable convolutions, with 'same' padding of odd totals and strides."""
    return sn.Sequential([
        L.Conv2D(6, 3, padding="same", groups=3), L.BatchNorm(), L.Activation("relu"),
        L.DepthwiseConv2D(3, depth_multiplier=2, stride=2, padding="same"),        # 6 -> 12 channels
        L.Conv2D(8, 2, padding="same", groups=4, use_bias=False),                   # even kernel: odd total
        L.SeparableConv2D(5, (3, 2), depth_multiplier=2, padding="same", dilation=(1, 2)),
        L.Residual([L.DepthwiseConv2D(3, padding="same", use_bias=False, backend="im2col"), L.BatchNorm()]),
        L.SeparableConv2D(4, 1, use_bias=False), L.Flatten(), L.Dense(3),
    ], input_shape=(9, 8, 3), seed=seed, dtype="float64").build()


def conv_head_model(seed=2):
    return sn.Sequential([L.Conv2D(3, 3), L.GlobalAvgPool2D(), L.Activation("softmax"), L.Dense(2)],
                         input_shape=(6, 6, 2), seed=seed, dtype="float64").build()


def batch(shape, n=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape))


def warm_up_statistics(model, x):
    """Give the BatchNorms running statistics that differ from (0, 1), so inference mode is tested."""
    for _ in range(3):
        model.forward(x + 0.5, training=True)


def run_twin(twin, x):
    return twin(torch.from_numpy(x)).detach().numpy()


# ------------------------------------------------------------------ forward and gradients
@pytest.mark.parametrize("make", [every_layer_model, grouped_model, conv_head_model])
def test_twin_forward_matches_predict_inference(make):
    model = make(dropout=False) if make is not conv_head_model else make()
    x = batch(model.input_shape)
    warm_up_statistics(model, x)
    twin = interop.to_torch(model)
    np.testing.assert_allclose(run_twin(twin, x), model.predict(x), rtol=0, atol=1e-10)
    assert twin[0].weight.dtype == torch.float64


def test_twin_with_dropout_equals_predict_in_eval_mode():
    model = every_layer_model(dropout=True)
    x = batch(model.input_shape)
    np.testing.assert_allclose(run_twin(interop.to_torch(model), x), model.predict(x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("make", [every_layer_model, grouped_model])
def test_parity_report_every_layer_forward_and_gradients(training, make):
    model = make(dropout=False)
    x = batch(model.input_shape)
    warm_up_statistics(model, x)
    before = model.get_weights()
    report = interop.parity_report(model, x, verbose=False, training=training)
    assert report.forward_max <= 1e-10 and report.gradient_max <= 1e-10, str(report)
    assert len(report.rows) == len(model.layers)
    names = {p["name"] for p in report.params}
    assert "conv2d/weight" in names and "batch_norm/weight" in names and len(names) >= 12
    for key, value in model.get_weights().items():      # the model (and its running stats) untouched
        np.testing.assert_array_equal(value, before[key])


def test_parity_report_with_labels_and_dropout_in_training_mode(capsys):
    model = every_layer_model(dropout=True).compile("adam", "cross_entropy")
    x = batch(model.input_shape)
    report = interop.parity_report(model, x, y=np.array([0, 1, 2, 0, 1, 2]), training=True)
    assert report.passed(1e-10), str(report)
    printed = capsys.readouterr().out
    assert "dropout turned off" in printed and "conv2d/weight" in printed and "largest: forward" in printed


def test_parity_report_detects_a_wrong_weight(monkeypatch):
    """A report that cannot fail is useless: break the twin's weights and it must show it."""
    model = conv_head_model()
    x = batch(model.input_shape)
    module = sys.modules["scratchnet.interop.export"]
    real = module.to_torch

    def broken(m, **kw):
        twin = real(m, **kw)
        with torch.no_grad():
            twin[0].weight[0, 0, 0, 0] += 1e-3
        return twin

    monkeypatch.setattr(module, "to_torch", broken)
    report = interop.parity_report(model, x, verbose=False)
    assert report.rows[0]["output"] > 1e-5 and not report.passed()
    assert max(p["grad"] for p in report.params if p["name"].startswith("dense")) > 1e-6


def test_twin_backward_matches_scratchnet_input_gradient_channels_first():
    model = every_layer_model(dropout=False)
    x = batch(model.input_shape)
    twin = interop.to_torch(model, channels_first=True)
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    y_t = twin(x_t)
    projection = np.random.default_rng(3).normal(size=y_t.shape)
    (y_t * torch.from_numpy(projection)).sum().backward()
    # forward, not predict: predict leaves no cache of its own for a backward (eighth session)
    np.testing.assert_allclose(y_t.detach().numpy(), model.forward(x), rtol=0, atol=1e-10)
    dx = model.backward(projection)
    np.testing.assert_allclose(x_t.grad.numpy().transpose(0, 2, 3, 1), dx, rtol=0, atol=1e-10)


def test_frozen_batchnorm_stays_in_inference_mode_in_the_twin():
    model = conv_head_model()
    model = sn.Sequential([L.Conv2D(3, 3), L.BatchNorm(), L.Flatten(), L.Dense(2)], input_shape=(5, 5, 2),
                          seed=0, dtype="float64")
    x = batch(model.input_shape)
    warm_up_statistics(model, x)
    model.freeze(up_to=2)
    twin = interop.to_torch(model).train()
    assert not twin[1].training and not twin[1].weight.requires_grad and twin[3].weight.requires_grad
    expected = model.forward(x, training=True)           # frozen: running statistics even in training
    np.testing.assert_allclose(run_twin(twin, x), expected, rtol=0, atol=1e-10)
    again = interop.from_torch(twin)
    assert [layer.trainable for layer in again.layers] == [False, False, True, True]


# ------------------------------------------------------------------ round trips and state dicts
@pytest.mark.parametrize("make", [every_layer_model, grouped_model])
def test_from_torch_of_to_torch_round_trips_bitwise(make):
    model = make(dropout=True)
    x = batch(model.input_shape)
    warm_up_statistics(model, x)
    again = interop.from_torch(interop.to_torch(model))
    assert [type(a) for a in again.layers] == [type(b) for b in model.layers]
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    assert again.input_shape == model.input_shape
    assert [layer.get_config() for layer in again.layers] == [layer.get_config() for layer in model.layers]
    mine, theirs = model.get_weights(), again.get_weights()
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert mine[key].dtype == theirs[key].dtype and np.array_equal(mine[key], theirs[key]), key
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_torch_state_dict_keys_layouts_and_load(tmp_path):
    model = every_layer_model(dropout=False)
    twin = interop.to_torch(model)
    ours = interop.torch_state_dict(model)
    theirs = twin.state_dict()
    assert list(ours) == list(theirs)
    assert ours["0.weight"].shape == (4, 3, 3, 3)        # (F, C, kh, kw)
    np.testing.assert_array_equal(ours["0.weight"], model.layers[0].params["W"].transpose(3, 2, 0, 1))
    # a twin trained a little in torch loads back into a fresh model
    with torch.no_grad():
        for parameter in twin.parameters():
            parameter.mul_(1.5)
    fresh = every_layer_model(dropout=False, seed=9)
    interop.load_torch_state_dict(fresh, twin.state_dict())
    x = batch(model.input_shape)
    np.testing.assert_allclose(fresh.predict(x), run_twin(twin, x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("make", [every_layer_model, grouped_model])
def test_state_dict_and_twin_hold_copies_and_load_back_bitwise(make):
    """torch_state_dict copies every array once; to_torch's twin shares memory with neither the
    model nor that dict; load_torch_state_dict gives the very same numbers back (transposes only)."""
    model = make(dropout=False)
    warm_up_statistics(model, batch(model.input_shape))
    own = [value for layer in sn.layers.base.iter_layers(model.layers)
           for value in {**layer.params, **layer.buffers}.values()]
    state, twin = interop.torch_state_dict(model), interop.to_torch(model)
    twin_arrays = [tensor.numpy() for tensor in twin.state_dict().values()]
    for key, value in state.items():
        assert not any(np.shares_memory(value, array) for array in own + twin_arrays), key
    before = {key: value.copy() for key, value in state.items()}
    for array in own:
        array += 1.0                                       # the model changes; the copies do not
    for (key, value), tensor in zip(state.items(), twin.state_dict().values()):
        np.testing.assert_array_equal(value, before[key])
        np.testing.assert_array_equal(tensor.numpy(), before[key])
    fresh = make(dropout=False, seed=11)
    interop.load_torch_state_dict(fresh, twin.state_dict())
    again = interop.torch_state_dict(fresh)
    assert list(again) == list(before)
    for key, value in before.items():
        assert again[key].dtype == value.dtype and np.array_equal(again[key], value), key


def test_save_weights_with_torch_names_round_trips(tmp_path):
    model = every_layer_model(dropout=False)
    path = tmp_path / "w.npz"
    save_weights(model, path, naming="torch")
    with np.load(path, allow_pickle=False) as archive:
        assert "0.weight" in archive.files and "1.running_mean" in archive.files
        twin = interop.to_torch(every_layer_model(dropout=False, seed=5))
        twin.load_state_dict({key: torch.from_numpy(archive[key]) for key in archive.files})
    fresh = every_layer_model(dropout=False, seed=7)
    load_weights(fresh, path)                              # the torch naming is recognised
    fresh.load_weights(path)                               # also through the model's method
    model.save_weights(tmp_path / "w2.npz", naming="torch")  # the model's method writes the same
    with np.load(path, allow_pickle=False) as first, np.load(tmp_path / "w2.npz") as second:
        assert first.files == second.files
        assert all(np.array_equal(first[key], second[key]) for key in first.files)
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(fresh.get_weights()[key], value)
    x = batch(model.input_shape)
    np.testing.assert_allclose(run_twin(twin, x), model.predict(x), rtol=0, atol=1e-10)


def test_load_torch_state_dict_refuses_mismatches_before_changing_anything():
    model = conv_head_model()
    before = model.get_weights()
    state = interop.torch_state_dict(model)
    state.pop("3.bias")
    state["9.weight"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"missing \['3.bias'\], unexpected \['9.weight'\]"):
        interop.load_torch_state_dict(model, state)
    state = interop.torch_state_dict(model)
    state["0.weight"] = np.zeros((3, 2, 2, 3))
    with pytest.raises(ValueError, match="conv2d"):
        interop.load_torch_state_dict(model, state)
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(value, before[key])


# ------------------------------------------------------------------ from_torch on plain PyTorch
def test_from_torch_plain_sequential_with_nchw_flatten():
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 3, 3, stride=2, padding="valid", bias=False), nn.Tanh(),
                        nn.Flatten(), nn.Dropout(0.1), nn.BatchNorm1d(9), nn.Linear(9, 5), nn.GELU(),
                        nn.Linear(5, 3)).double()
    net.train()
    net(torch.randn(4, 2, 14, 8, dtype=torch.float64))    # running statistics away from (0, 1)
    net.eval()
    model = interop.from_torch(net, input_shape=(14, 8, 2))
    x = batch((14, 8, 2))
    expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=0, atol=1e-10)
    assert model.dtype == np.float64 and isinstance(model.layers[6], L.Flatten)


def test_from_torch_adaptive_pool_and_padding_modules():
    nn = torch.nn
    net = nn.Sequential(nn.ZeroPad2d((1, 0, 2, 1)), nn.Conv2d(3, 4, 3, dilation=2), nn.SiLU(),
                        nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), nn.ChannelShuffle(2),
                        nn.Upsample(scale_factor=2), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                        nn.Linear(4, 2)).double().eval()
    model = interop.from_torch(net, input_shape=(10, 9, 3))
    x = batch((10, 9, 3))
    expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=0, atol=1e-10)
    assert isinstance(model.layers[6], L.GlobalAvgPool2D) and len(model.layers) == 8


def test_from_torch_grouped_and_depthwise_conv2d():
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, groups=2), nn.ReLU(),
                        nn.Conv2d(6, 12, (3, 2), stride=2, groups=6, bias=False),      # depthwise, M = 2
                        nn.Flatten(), nn.Linear(12 * 3 * 4, 2)).double().eval()
    model = interop.from_torch(net, input_shape=(7, 8, 4))
    assert model.layers[0].groups == 2 and model.layers[2].groups == 6
    x = batch((7, 8, 4))
    expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("module, needle", [
    (lambda nn: nn.Sequential(nn.Conv2d(3, 2, 3), nn.LSTM(2, 2)), "LSTM"),
    (lambda nn: nn.Sequential(nn.Conv2d(3, 2, 3, padding_mode="reflect")), "padding_mode='reflect'"),
    (lambda nn: nn.Sequential(nn.Conv2d(3, 2, 3), nn.LeakyReLU(0.2)), "negative_slope=0.2"),
    (lambda nn: nn.Sequential(nn.Conv2d(3, 2, 3), nn.AvgPool2d(3, padding=1)), "count_include_pad"),
    (lambda nn: nn.Sequential(nn.Conv2d(3, 2, 3), nn.MaxPool2d(2, ceil_mode=True)), "ceil_mode"),
    (lambda nn: nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2, momentum=None)), "momentum"),
    (lambda nn: nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.ReLU()), "not followed"),
])
def test_from_torch_refuses_unsupported_modules_by_name(module, needle):
    with pytest.raises(interop.UnsupportedLayerError, match="supported modules: Sequential, Linear") as info:
        interop.from_torch(module(torch.nn), input_shape=(8, 8, 3))
    assert needle in str(info.value)


def test_from_torch_refuses_a_subclass_and_a_channels_first_shape():
    class MyConv(torch.nn.Conv2d):
        pass

    with pytest.raises(interop.UnsupportedLayerError, match="MyConv"):
        interop.from_torch(torch.nn.Sequential(MyConv(3, 2, 3)), input_shape=(8, 8, 3))
    with pytest.raises(ValueError, match=r"\(224, 224, 3\)"):
        interop.from_torch(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3)), input_shape=(3, 8, 8))


def test_to_torch_refuses_an_unknown_layer_by_name():
    class Square(L.Layer):
        def forward(self, x, training=False):
            return self.check_input(x) ** 2

    model = sn.Sequential([L.Dense(3), Square(name="square")], input_shape=(4,))
    with pytest.raises(interop.UnsupportedLayerError,
                       match=r"'square' \(Square\) has no PyTorch equivalent.*supported layers: Dense"):
        interop.to_torch(model)


def test_import_interop_does_not_import_torch():
    code = ("import sys, scratchnet, scratchnet.interop, scratchnet.serialization; "
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(
        __import__("pathlib").Path(__file__).resolve().parents[1]))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_readme_bridge_example_runs(capsys):
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"<!-- bridge-example -->\n```python\n(.*?)```", text, re.S).group(1)
    namespace = {}
    exec(compile(code, "README bridge example", "exec"), namespace)
    printed = float(capsys.readouterr().out.splitlines()[0])
    assert printed < 1e-12
    said = float(re.search(r"model\.predict\(x\)\)\.max\(\)\)  # ~(\S+)", code).group(1))
    assert said / 10 < printed < said * 10, f"the README says ~{said:g}, it prints {printed:.2g}"
    assert namespace["report"].passed(1e-10)
    x = namespace["x"]
    np.testing.assert_array_equal(namespace["again"].predict(x), namespace["model"].predict(x))


@settings(max_examples=25)
@given(size=st.tuples(st.integers(4, 11), st.integers(4, 11)), channels=st.sampled_from([2, 4]),
       kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.sampled_from(["same", "valid", 1, ((0, 2), (1, 0))]), dilation=st.integers(1, 2),
       groups=st.sampled_from([1, 2]), pool=st.sampled_from(["max", "avg"]),
       pool_padding=st.sampled_from(["same", "valid", ((1, 0), (0, 1))]))
def test_random_conv_and_pool_options_agree_and_round_trip(size, channels, kernel, stride, padding, dilation,
                                                           groups, pool, pool_padding):
    """Any kernel/stride/padding/dilation/groups and pooling padding: through the twin and back."""
    span = [dilation * (k - 1) + 1 for k in kernel]
    assume(padding == "same" or all(s >= k + 2 for s, k in zip(size, span)))
    pooling = (L.MaxPool2D if pool == "max" else L.AvgPool2D)(2, padding=pool_padding)
    conv = L.Conv2D(4, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)
    model = sn.Sequential([conv, L.Activation("tanh"), pooling, L.Flatten(), L.Dense(2)],
                          input_shape=(*size, channels), seed=0, dtype="float64")
    try:
        model.build()
    except ValueError:
        assume(False)  # shapes that do not fit (a window larger than its input)
    x = batch(model.input_shape, n=3)
    report = interop.parity_report(model, x, verbose=False)
    assert report.passed(1e-10), str(report)
    again = interop.from_torch(interop.to_torch(model))
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    assert again.layers[0].get_config() == model.layers[0].get_config()


def test_float32_model_gives_a_float32_twin_and_back():
    model = sn.Sequential([L.Conv2D(3, 3, padding="same"), L.BatchNorm(), L.Flatten(), L.Dense(2)],
                          input_shape=(5, 4, 2), seed=0).build()
    twin = interop.to_torch(model)
    assert twin[0].weight.dtype == torch.float32
    x = batch(model.input_shape).astype(np.float32)
    np.testing.assert_allclose(run_twin(twin, x), model.predict(x), rtol=0, atol=1e-5)
    again = interop.from_torch(twin)
    assert again.dtype == np.float32 and np.array_equal(again.predict(x), model.predict(x))
