"""``scratchnet evaluate MODEL`` and ``scratchnet predict MODEL IMAGES`` for saved models.

Both scale the images as the model was trained: ``model.preprocessing`` (written by
``scratchnet train``) holds the dataset, the class names and the per-channel mean and standard
deviation of the training images (None when the input was not standardised).

    scratchnet evaluate runs/x/model.sn                      # on the test split of its dataset
    scratchnet predict runs/x/model.sn cat.png batch.npy     # class and probability per image
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_args import exit_code_of, nonnegative_int, positive_int
from .cli_train import DATASETS, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class CommandError(Exception):
    """A problem with the files or values given; printed without a traceback (exit code 1). A file
    that does not exist is a UsageError (exit code 2), as for every command."""


def add_parsers(commands, formatter_class) -> None:
    evaluate = commands.add_parser("evaluate", help="accuracy of a saved model, per class, on a dataset",
                                   formatter_class=formatter_class,
                                   description="Load a model saved by `scratchnet train` (or "
                                   "model.save) and print its accuracy, overall and per class, on a "
                                   "dataset split; --out also writes confusion.png and predictions.png.")
    evaluate.add_argument("model", metavar="MODEL", help="a saved model file (.sn)")
    evaluate.add_argument("--dataset", default=None, choices=DATASETS,
                          help="default: the dataset the model was trained on (saved with it)")
    evaluate.add_argument("--split", default="test", choices=("test", "train"), help="which images")
    evaluate.add_argument("--limit", type=positive_int, default=None, help="only the first N images")
    evaluate.add_argument("--batch-size", type=positive_int, default=256, help="images per forward pass")
    evaluate.add_argument("--data-dir", default=None, help="folder with dataset files")
    evaluate.add_argument("--no-download", action="store_true", help="never use the network")
    evaluate.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the patterns dataset")
    evaluate.add_argument("--out", default=None, help="folder for confusion.png and predictions.png")

    predict = commands.add_parser("predict", help="class and probability for each image",
                                  formatter_class=formatter_class,
                                  description="Classify images with a saved model. IMAGES: .npy "
                                  "arrays (N, H, W, C) or (H, W, C) (uint8 0-255 or floats 0-1), or "
                                  ".png/.jpg files (read with matplotlib.image.imread; alpha dropped). "
                                  "Images are not resized: they must have the model's height and width. "
                                  "RGB pictures are converted to grey for a 1-channel model.")
    predict.add_argument("model", metavar="MODEL", help="a saved model file (.sn)")
    predict.add_argument("images", metavar="IMAGES", nargs="+", help=".npy, .png or .jpg files")
    predict.add_argument("--top", type=positive_int, default=1, help="show the K most likely classes")


def load_model(path):
    import scratchnet

    try:
        return scratchnet.load(path)
    except FileNotFoundError:  # a path that names nothing: a usage mistake, as in gradcheck FILE
        raise UsageError(f"{path}: no such model file") from None
    except IsADirectoryError:
        inside = Path(path) / "model.sn"
        hint = f"; did you mean {inside}?" if inside.is_file() else "; give the model file (.sn) in it"
        raise CommandError(f"{path}: is a folder{hint}") from None
    except (scratchnet.SerializationError, scratchnet.UnsafeModelError, OSError) as error:
        raise CommandError(f"{path}: cannot load the model ({error})") from None


def class_names_of(model, n_classes: int) -> list[str]:
    names = (getattr(model, "preprocessing", None) or {}).get("class_names")
    return list(names) if names and len(names) == n_classes else [str(k) for k in range(n_classes)]


def report_test(model, x, y, class_names, what: str = "Test", batch_size: int = 256):
    """Print the accuracy and one line per class; return (predicted labels (N,), confusion matrix)."""
    from . import metrics

    predicted = metrics.predictions(model.predict(x, batch_size=batch_size))
    cm = metrics.confusion_matrix(y, predicted, n_classes=len(class_names))
    print(f"{what} accuracy: {metrics.accuracy(y, predicted):.4f} on {len(y)} images")
    print("Per-class accuracy:")
    print("\n".join(metrics.per_class_lines(cm, class_names)))
    return predicted, cm


def run_evaluate(args) -> int:
    from . import viz
    from .cli_train import load_data, output_dir
    from .recipes import preprocess

    out = output_dir(args.out) if args.out else None  # before the evaluation, not after it
    model = load_model(args.model)
    info = getattr(model, "preprocessing", None) or {}
    dataset = args.dataset or info.get("dataset")
    if dataset is None:
        raise CommandError(f"{args.model}: the model does not say which dataset it was trained on; "
                           "give --dataset")
    options = argparse.Namespace(dataset=dataset, data_dir=args.data_dir, no_download=args.no_download,
                                 seed=args.seed)
    train, test, class_names = load_data(options)
    x, y = train if args.split == "train" else test
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise CommandError(f"{args.model} expects images of shape {tuple(model.input_shape)} (H, W, C), "
                           f"but --dataset {dataset} has {tuple(x.shape[1:])}")
    if model.output_shape != (len(class_names),):
        raise CommandError(f"{args.model} has {model.output_shape} outputs, but --dataset {dataset} has "
                           f"{len(class_names)} classes")
    scaled = ("standardised with the saved training statistics" if info.get("mean") is not None
              else "in [0, 1]")
    print(f"{args.model}: {dataset} {args.split} split, {len(x)} images, {scaled}")
    predicted, cm = report_test(model, preprocess(model, x), y, class_names, what=args.split.capitalize(),
                                batch_size=args.batch_size)
    if out is not None:
        viz.plot_confusion_matrix(cm, class_names, save_path=out / "confusion.png")
        viz.plot_images(x[:25], y[:25], predicted[:25], class_names, save_path=out / "predictions.png")
        print(f"Saved confusion.png, predictions.png in {out}")
    return 0


# ---------------------------------------------------------------------- predict
# ITU-R BT.601 luma: grey = 0.299 R + 0.587 G + 0.114 B. Not augment_color.GRAY_WEIGHTS (0.2989, ...:
# torchvision's, which the augmentation matches): those sum to 0.9999, and a grey picture given
# to `predict` should reach the model as exactly its grey values.
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def to_grey(rgb, path, dataset=None) -> "np.ndarray":  # noqa: F821
    """An RGB image (H, W, 3) as grey (H, W, 1) in [0, 1] for a 1-channel model, with a printed note.

    grey = 0.299 R + 0.587 G + 0.114 B (uint8 pixels are divided by 255 first)."""
    import numpy as np

    pixels = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    note = f"note: {path} is RGB; converted to grey (0.299 R + 0.587 G + 0.114 B) for the 1-channel model"
    if dataset is not None and str(dataset).startswith("mnist"):
        note += "; the digit model expects a white digit on black, 28x28, as in MNIST"
    print(note, file=sys.stderr)  # stdout holds only the "path: class (p)" lines
    return (pixels @ np.asarray(GREY_WEIGHTS, dtype=np.float32))[:, :, np.newaxis]


def read_images(path, expected, dataset=None) -> "np.ndarray":  # noqa: F821
    """One file -> float images (N, H, W, C) in [0, 1]; ``expected`` is the model's (H, W, C).

    An RGB(A) picture for a 1-channel model is converted to grey (``to_grey``); ``dataset`` (the
    model's, if known) adds what a digit should look like."""
    import numpy as np

    path = Path(path)
    if path.is_dir():
        raise CommandError(f"{path}: is a folder; give its files ({path}/*.png)")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        try:
            images = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise CommandError(f"{path}: not a readable .npy array ({error})") from None
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        import matplotlib.image

        try:
            images = np.asarray(matplotlib.image.imread(path))
        except Exception as error:  # PIL and matplotlib raise many types for bad files
            raise CommandError(f"{path}: not a readable image ({type(error).__name__}: {error})") from None
        if images.ndim == 3 and images.shape[2] == 4:
            images = images[:, :, :3]                                  # drop the alpha channel
        if (images.ndim == 3 and images.shape[2] == 3 and tuple(expected)[-1] == 1
                and images.shape[:2] == tuple(expected)[:2]):  # a wrong size is refused below, no note
            images = to_grey(images, path, dataset)                    # RGB -> grey (H, W, 1)
        if images.ndim == 2:
            images = images[:, :, np.newaxis]                          # grey (H, W) -> (H, W, 1)
    else:
        raise CommandError(f"{path}: unknown file type {path.suffix!r}; give .npy, .png or .jpg files")
    if images.ndim == 3:
        images = images[np.newaxis]
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(expected):
        shape = ", ".join(map(str, expected))
        raise CommandError(f"{path}: the model expects images of shape (N, {shape}) or ({shape}) as "
                           f"(height, width, channels), got {images.shape}"
                           + (" (channels-first? use x.transpose(0, 2, 3, 1))" if images.ndim == 4
                              and images.shape[1] == expected[-1] else ""))
    if len(images) == 0:
        raise CommandError(f"{path}: holds no images (shape {images.shape})")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0                       # 0..255 -> [0, 1]
    if images.dtype.kind != "f":
        raise CommandError(f"{path}: expected uint8 (0-255) or float (0-1) pixels, got dtype {images.dtype}")
    if not np.isfinite(images).all():
        bad = int(np.count_nonzero(~np.isfinite(images)))
        raise CommandError(f"{path}: {bad} pixel value(s) are NaN or infinite; pixels must be numbers "
                           "in [0, 1]")
    if images.size and (images.min() < -1e-6 or images.max() > 1 + 1e-6):
        raise CommandError(f"{path}: float pixels must be in [0, 1] (scaled as in training), got values "
                           f"from {images.min():.3g} to {images.max():.3g}")
    return images


def run_predict(args) -> int:
    import numpy as np

    from .recipes import preprocess

    model = load_model(args.model)
    if len(model.output_shape) != 1:
        raise CommandError(f"{args.model}: predict needs a classifier (outputs (classes,)), "
                           f"got outputs {model.output_shape}")
    if model.loss is not None and not model.loss.has_accuracy:  # mse: its outputs are no classes
        raise CommandError(f"{args.model}: predict needs a classifier, but the model was trained with "
                           f"{model.loss.name} (a regression); load it in Python and call model.predict(x)")
    one_output = model.output_shape[0] == 1  # Dense(1) + binary_cross_entropy: p = P(class 1)
    names = class_names_of(model, 2 if one_output else model.output_shape[0])
    top = min(args.top, len(names))
    dataset = (getattr(model, "preprocessing", None) or {}).get("dataset")
    for path in args.images:
        images = read_images(path, model.input_shape, dataset)
        probabilities = model.predict_proba(preprocess(model, images))
        if one_output:  # both classes, as for any classifier: [P(class 0), P(class 1)] = [1 - p, p]
            probabilities = np.concatenate([1 - probabilities, probabilities], axis=1)
        for index, row in enumerate(probabilities):
            label = f"{path}[{index}]" if len(images) > 1 else str(path)
            best = np.argsort(row)[::-1][:top]
            print(f"{label}: " + ", ".join(f"{names[k]} ({row[k]:.3f})" for k in best))
    return 0


def main(command, args) -> int:
    """``scratchnet evaluate`` / ``predict``; a bad --out or a missing file is a UsageError (exit 2)."""
    run = run_evaluate if command == "evaluate" else run_predict
    return exit_code_of(command, run, args, messages=CommandError)
