"""from_torch never returns a model that computes something else than the PyTorch module.

Nested nn.Sequential sharing the pending Flatten permutation, the refusals at the end of a
module, the safety net (one random batch through both), and the messages naming the fix for
the bridge's common mistakes (a twin given a channels-first batch, a torch.save file given to
load_weights, DataParallel's "module." keys).
"""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import interop  # imports without torch: a broken bridge fails here, never skips
from scratchnet import layers as L
from scratchnet.serialization import SerializationError
from scratchnet.weights_file import load_weights

torch = pytest.importorskip("torch")
nn = torch.nn
from scratchnet.interop.export import UnsupportedLayerError  # noqa: E402
from scratchnet.interop.verify import ImportMismatchError, check_same_outputs  # noqa: E402


def outputs_both(net, shape_chw, samples=3):
    """(torch's output channels-last, the imported model's) for one float64 random batch."""
    net = net.double().eval()
    channels, height, width = shape_chw
    x = torch.randn(samples, *shape_chw, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    model = interop.from_torch(net, input_shape=(height, width, channels))
    with torch.no_grad():
        expected = net(x)
    if expected.dim() == 4:
        expected = expected.permute(0, 2, 3, 1)
    return expected.numpy(), model.predict(x.permute(0, 2, 3, 1).numpy())


def seeded(make):
    torch.manual_seed(0)
    return make()


# ---------------------------------------------------------------- 1. nested nn.Sequential
@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten()), nn.Linear(144, 5)),
    lambda: nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), nn.Flatten(),
                          nn.Sequential(nn.Linear(144, 8), nn.ReLU(), nn.Linear(8, 2))),
    lambda: nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()),
                          nn.Sequential(nn.Sequential(nn.BatchNorm1d(144), nn.ReLU()), nn.Linear(144, 2))),
    lambda: nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1)), nn.Flatten(),
                          nn.Linear(4, 2)),
], ids=["flatten-inside", "features-flatten-classifier", "bn1d-two-deep", "adaptive-pool-inside"])
def test_nested_sequential_shares_the_pending_flatten_permutation(make):
    expected, got = outputs_both(seeded(make), (3, 8, 8))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- 2 and 4. refused at the end
def test_a_module_ending_with_the_flatten_of_an_image_is_refused_with_the_fix():
    with pytest.raises(UnsupportedLayerError, match=r"ends with an nn.Flatten of an image.*\(c, h, w\).*"
                                                    r"end the module with an nn.Linear"):
        interop.from_torch(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), input_shape=(8, 8, 3))
    with pytest.raises(UnsupportedLayerError, match="ends with an nn.Flatten of an image"):
        interop.from_torch(nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), nn.ReLU()),
                           input_shape=(8, 8, 3))


def test_a_flatten_of_one_pixel_at_the_end_needs_no_reordering():
    expected, got = outputs_both(seeded(lambda: nn.Sequential(nn.Conv2d(3, 4, 8), nn.Flatten())), (3, 8, 8))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_a_module_ending_with_adaptive_avg_pool_is_refused():
    # Refused rather than imported: scratchnet's GlobalAvgPool2D gives (N, C), PyTorch (N, C, 1, 1)
    with pytest.raises(UnsupportedLayerError, match=r"ends with an AdaptiveAvgPool2d\(1\).*\(N, C, 1, 1\).*"
                                                    r"add nn.Flatten\(\) after it"):
        interop.from_torch(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1)), input_shape=(8, 8, 3))


# ---------------------------------------------------------------- 3. look-alikes and the safety net
def pre_activation_block(class_name):
    """torchvision's BasicBlock attribute names, a pre-activation forward:

    y = x + conv2(relu(bn2(conv1(relu(bn1(x))))))   (torchvision's: relu(bn2(conv2(relu(bn1(conv1 x)))) + x))
    """
    def __init__(self):
        nn.Module.__init__(self)
        self.bn1, self.conv1 = nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, 1, 1, bias=False)
        self.relu = nn.ReLU()
        self.bn2, self.conv2 = nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, 1, 1, bias=False)
        self.downsample = None

    def forward(self, x):
        return x + self.conv2(self.relu(self.bn2(self.conv1(self.relu(self.bn1(x))))))
    return type(class_name, (nn.Module,), {"__init__": __init__, "forward": forward})()


def test_a_block_with_torchvision_names_but_another_class_name_is_refused_by_name():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), pre_activation_block("PreActBlock"))
    with pytest.raises(UnsupportedLayerError, match="module '1' is a .*PreActBlock, which scratchnet cannot"):
        interop.from_torch(net, input_shape=(5, 5, 3))


def test_a_look_alike_named_basic_block_is_caught_by_the_safety_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), pre_activation_block("BasicBlock")).eval()
    with pytest.raises(ImportMismatchError, match=r"computes something else .* differ by up to \d"):
        interop.from_torch(net, input_shape=(5, 5, 3))


def test_safety_net_passes_an_equal_model_and_names_the_difference_of_a_changed_one():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5))
    model = interop.from_torch(net, input_shape=(8, 8, 3))
    check_same_outputs(net, model)  # float32 module and model: compared as float64 copies, passes
    model.layers[-1].params["b"][0] += 1e-5  # one bias: the outputs of class 0 move by exactly 1e-5
    with pytest.raises(ImportMismatchError, match=r"differ by up to 1e-05"):
        check_same_outputs(net, model)


def test_safety_net_leaves_the_module_and_model_as_they_were():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Dropout(0.5),
                        nn.Linear(144, 5))
    net.train()
    net[3].eval()  # mixed flags: each one must come back as it was
    flags = [module.training for module in net.modules()]
    statistics = net[1].running_mean.clone()
    model = interop.from_torch(net, input_shape=(8, 8, 3))
    assert [module.training for module in net.modules()] == flags
    assert net[0].weight.dtype == torch.float32 and model.dtype == "float32"
    assert torch.equal(net[1].running_mean, statistics)  # no training-mode forward updated the statistics


# ---------------------------------------------------------------- 5. dtype without parameters
def test_a_float64_twin_without_parameters_comes_back_float64():
    model = sn.Sequential([L.MaxPool2D(2), L.Flatten()], input_shape=(4, 4, 2), dtype="float64")
    model.build()
    twin = interop.to_torch(model)
    assert twin.scratchnet_dtype == "float64"
    assert interop.from_torch(twin).dtype == "float64"
    plain = nn.Sequential(nn.Conv2d(2, 2, 1), nn.Flatten(), nn.Linear(32, 1)).double()
    assert interop.from_torch(plain, input_shape=(4, 4, 2)).dtype == "float64"


# ---------------------------------------------------------------- 6. unknown after a Flatten
def test_an_unknown_module_after_a_flatten_is_refused_as_unknown():
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(), nn.LayerNorm(32), nn.Linear(32, 2))
    with pytest.raises(UnsupportedLayerError, match="module '2' is a .*LayerNorm, which scratchnet") as info:
        interop.from_torch(net, input_shape=(4, 4, 3))
    assert "between an nn.Flatten" not in str(info.value)
    known = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(), nn.MaxPool1d(2), nn.Linear(16, 2))
    with pytest.raises(UnsupportedLayerError, match="MaxPool1d, which"):
        interop.from_torch(known, input_shape=(4, 4, 3))


# ---------------------------------------------------------------- 7. weights files
def small_model():
    model = sn.Sequential([L.Conv2D(4, 3, padding="same"), L.Flatten(), L.Dense(3)],
                          input_shape=(6, 6, 2), seed=0)
    model.build()
    return model


def test_load_weights_of_a_torch_save_file_says_how_to_load_it(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(interop.to_torch(small_model()).state_dict(), path)
    with pytest.raises(SerializationError, match=r"a torch.save file .*load_torch_state_dict\(model, "
                                                 r"torch.load\("):
        load_weights(small_model(), path)


def test_state_dict_keys_with_the_data_parallel_prefix_get_the_hint():
    state = {"module." + key: value for key, value in interop.to_torch(small_model()).state_dict().items()}
    with pytest.raises(ValueError, match=r"starts with 'module.' .*DataParallel.*strip it"):
        interop.load_torch_state_dict(small_model(), state)


# ---------------------------------------------------------------- 8. the twin's input
def test_the_twin_names_the_fix_for_a_channels_first_batch_and_a_numpy_array():
    twin = interop.to_torch(small_model())
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")
    with pytest.raises(ValueError, match=r"channels-last \(N, H, W, C\) batches of samples of shape "
                                         r"\(6, 6, 2\), got a batch of shape \(2, 2, 6, 6\)"
                                         r".*x.permute\(0, 2, 3, 1\)"):
        twin(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    with pytest.raises(TypeError, match=r"twin\(torch.from_numpy\(x\)\)"):
        twin(x)
    first = interop.to_torch(small_model(), channels_first=True)
    with pytest.raises(ValueError, match=r"channels-first .* \(2, 6, 6\).*x.permute\(0, 3, 1, 2\)"):
        first(torch.from_numpy(x))
    right = twin(torch.from_numpy(x)).detach().numpy()  # the right layout still runs
    np.testing.assert_allclose(right, small_model().predict(x), rtol=0, atol=1e-5)


# ---------------------------------------------------------------- 9. twin nested, Softmax(dim=None)
def test_a_twin_inside_a_users_sequential_gets_the_specific_message():
    model = sn.Sequential([L.Conv2D(4, 3), L.GlobalAvgPool2D(), L.Dense(3)], input_shape=(6, 6, 2), seed=0)
    user = nn.Sequential(interop.to_torch(model), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(UnsupportedLayerError, match="twin inside another module.*import the twin alone"):
        interop.from_torch(user, input_shape=(6, 6, 2))


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.Softmax()), (3, 2, 2)),
    (lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.Softmax()), (3, 2, 2)),
], ids=["2-D", "4-D"])
def test_softmax_without_dim_is_over_dim_1_for_2d_and_4d(make, shape):
    with pytest.warns(UserWarning, match="Implicit dimension"):
        expected, got = outputs_both(seeded(make), shape)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


def test_a_known_module_where_a_flatten_or_linear_must_come_is_blamed_on_what_is_pending():
    squeeze_excite = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 2, 1))
    with pytest.raises(UnsupportedLayerError, match=r"after an AdaptiveAvgPool2d\(1\) that is not"):
        interop.from_torch(squeeze_excite, input_shape=(8, 8, 3))
    conv_after_flatten = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Conv2d(4, 2, 1))
    with pytest.raises(UnsupportedLayerError, match="between an nn.Flatten of an image and the next"):
        interop.from_torch(conv_after_flatten, input_shape=(8, 8, 3))
