"""CIFAR-10 with the PyTorch SmallCNN recipe of the seed notebook, in scratchnet.

    model         small_cnn_bn (convolutions with batch norm, dropout before the classifier)
    input         per-channel (x - mean) / std, mean and std of the training images only
    augmentation  random crop 32 with padding 4, random horizontal flip
    optimizer     SGD lr 0.1, momentum 0.9, weight decay 5e-4 (L2 on the gradient, as torch.optim.SGD)
    schedule      cosine annealing from 0.1 to 0 over the run, per step
    batch         128

    python examples/cifar10_torch_small_cnn.py                 # full CIFAR-10 (downloads 170 MB once)
    python examples/cifar10_torch_small_cnn.py --data-dir ../shared/data/cifar10-subset --quick

``--quick``: one epoch on 512 training and 256 test images (a smoke test, not a result).
The same recipe from the command line: ``scratchnet train --dataset cifar10 --recipe torch_small_cnn``.
"""

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from scratchnet import augment as A  # noqa: E402
from scratchnet import datasets  # noqa: E402
from scratchnet.losses import CrossEntropy  # noqa: E402
from scratchnet.models import get_model  # noqa: E402
from scratchnet.optimizers import SGD  # noqa: E402
from scratchnet.recipes import PixelSpace, attach_preprocessing, preprocess  # noqa: E402
from scratchnet.schedules import CosineAnnealing  # noqa: E402


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding cifar-10-batches-py")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="1 epoch on 512 / 256 images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="cifar10_torch_small_cnn.sn", help="where to save the model")
    return parser.parse_args(argv)


def main(argv=None) -> float:
    args = parse(argv)
    x_train, y_train = datasets.load_cifar10(args.data_dir, "train")
    x_test, y_test = datasets.load_cifar10(args.data_dir, "test")
    epochs = args.epochs
    if args.quick:
        x_train, y_train, x_test, y_test, epochs = x_train[:512], y_train[:512], x_test[:256], y_test[:256], 1

    model = get_model("small_cnn_bn", input_shape=(32, 32, 3), n_classes=10, seed=args.seed)
    # {"mean": [3 floats], "std": [3 floats]} of the training images only, saved with the model
    # (model.preprocessing), so `scratchnet evaluate` / `predict` scale new images the same way
    stats = attach_preprocessing(model, "cifar10", datasets.CIFAR10_CLASSES, x_train)
    x_train, x_test = preprocess(model, x_train), preprocess(model, x_test)

    batch_size = 128
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    schedule = CosineAnnealing(0.1, T_max=epochs * steps_per_epoch)          # lr_t = 0.05 (1 + cos(pi t / T))
    model.compile(optimizer=SGD(lr=schedule, momentum=0.9, weight_decay=5e-4), loss=CrossEntropy())
    # crop and flip the images in pixel space ([0, 1], black padding), then standardise again
    augment = PixelSpace(A.Compose([A.RandomCrop(32, padding=4), A.RandomFlip()]),
                         stats["mean"], stats["std"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, augment=augment)

    accuracy = model.evaluate(x_test, y_test)["accuracy"]
    print(f"Test accuracy: {accuracy:.4f} on {len(x_test)} images")
    model.save(args.out)
    print(f"Saved {args.out}  (scratchnet evaluate {args.out} --data-dir ...)")
    return accuracy


if __name__ == "__main__":
    main()
