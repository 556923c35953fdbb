"""Issue #18's comparison: the model zoo trained in scratchnet and in PyTorch agree step by step.

Each zoo model and its ``to_torch`` twin take 20 training steps with the seed recipes' optimizers,
Adam(1e-4) and SGD(0.1, momentum 0.9, weight decay 5e-4) with a cosine schedule (torch's
CosineAnnealingLR), on the same float64 batches of 16x16x3 images (CIFAR's 32x32 took 3 minutes for
the six runs; the layers are the same). At the end every weight
and running statistic agrees to 1e-8, and so does every loss on the way. Dropout is off
(``small_cnn_bn(dropout=0)``): its random masks cannot agree. The zoo's blocks (inception, dense,
mobilenet, inverted residual, shufflenet) go through the bridge too.
"""

import numpy as np
import pytest
from test_interop_training import STEPS, batches, train_both

import scratchnet as sn
from scratchnet import interop, models  # interop imports without torch: broken, it fails, never skips
from scratchnet.schedules import CosineAnnealing

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_torch_thread")]


SHAPE = (16, 16, 3)  # the CIFAR models on 16x16 crops: the same layers, a quarter of the arithmetic
ZOO = {
    "flax_cnn": lambda: models.flax_cnn(SHAPE, dtype="float64", seed=0),
    "small_cnn_bn": lambda: models.small_cnn_bn(SHAPE, dtype="float64", seed=0, dropout=0.0),
    "resnet8": lambda: models.resnet(depth=8, input_shape=SHAPE, dtype="float64", seed=0),
}
RECIPES = {
    "adam_1e-4": lambda: sn.Adam(lr=1e-4),
    "sgd_cosine": lambda: sn.SGD(lr=CosineAnnealing(0.1, T_max=STEPS), momentum=0.9, weight_decay=5e-4),
}


def train_side_by_side(model, optimizer, batch_size=4, seed=0):
    """20 steps of ``model.train_step`` and of the same loop on ``to_torch(model)`` (``train_both``).

    Returns (largest weight/buffer difference at the end, largest loss difference, largest weight move).
    """
    start = interop.torch_state_dict(model)
    difference, loss_difference = train_both(model, optimizer, batches(model, batch_size, seed))
    end = interop.torch_state_dict(model)
    moved = max(float(np.max(np.abs(end[key] - start[key]))) for key in end
                if not key.endswith("num_batches_tracked"))
    return difference, loss_difference, moved


@pytest.mark.slow
@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_and_its_torch_twin_train_alike_for_20_steps(name, recipe):
    difference, loss_difference, moved = train_side_by_side(ZOO[name](), RECIPES[recipe]())
    assert difference <= 1e-8 and loss_difference <= 1e-8, (difference, loss_difference)
    assert moved > 1e-4   # training really changed the weights


@pytest.mark.parametrize("make", [
    lambda: models.inception_block(4, 3, 4, 2, 3, 2),
    lambda: models.dense_block(2, 3, bottleneck=True),
    lambda: models.mobilenet_block(8, stride=2),
    lambda: models.inverted_residual(6, 6, expansion=2),
    lambda: models.shufflenet_unit(6, 12, groups=2, stride=2),
], ids=["inception", "dense", "mobilenet", "inverted_residual", "shufflenet"])
@pytest.mark.parametrize("training", [False, True])
def test_zoo_blocks_through_the_bridge(make, training):
    """Every zoo block in a model: the twin agrees (forward and every gradient), and comes back bitwise."""
    model = sn.Sequential([sn.layers.Conv2D(6, 3, padding="same"), make(), sn.layers.GlobalAvgPool2D(),
                           sn.layers.Dense(3)], input_shape=(8, 8, 3), seed=0, dtype="float64").build()
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3))
    report = interop.parity_report(model, x, y=np.array([0, 1, 2, 0]), training=training, verbose=False)
    assert report.passed(1e-10), str(report)
    again = interop.from_torch(interop.to_torch(model))
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(again.get_weights()[key], value)
