"""The files ``scratchnet train`` writes after training: model.sn, history.json, the figures.

model.sn and history.json go through ``atomic_file.atomic_write`` (model.sn by ``model.save``):
a failed write leaves the earlier file as it was (the figures are matplotlib's savefig). A model
that cannot be saved (a full disk, a read-only file) is said in one line, history.json is still
written, and the command ends with exit code 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .atomic_file import atomic_write

RESULT_FIGURES = ("curves.png", "confusion.png", "predictions.png", "augmented.png", "filters.png",
                  "feature_maps.png", "grad_cam.png", "health.png")


def clear_earlier_run(out: Path) -> None:
    """Training again into the same folder: remove the earlier run's figures (this run may not
    write all of them, e.g. no health.png without --monitor), so the folder holds one run only.
    model.sn and history.json are replaced."""
    if not (out / "model.sn").exists():
        return
    removed = [name for name in RESULT_FIGURES if (out / name).is_file()]
    for name in removed:
        (out / name).unlink()
    print(f"note: {out} holds an earlier run: its model.sn and history.json will be replaced"
          + (f" and its figures removed ({', '.join(removed)})" if removed else ""))


def save_model_file(model, out: Path):
    """Save ``out/model.sn``; if that fails (OSError: a full disk, a read-only file), say so on
    stderr and return the reason (kept in history.json), else None.

    No second place is tried: a full disk is usually full for every folder on it, and a model
    saved somewhere unexpected is easily missed; the message says what happened instead.
    """
    try:
        model.save(out / "model.sn")
    except OSError as error:
        reason = error.strerror or str(error)  # atomic_write's: "cannot save to '...': No space left ..."
        print(f"scratchnet train: the trained model could not be saved ({reason}); history.json keeps "
              f"the training history. Make room (or choose another --out) and train again.", file=sys.stderr)
        return reason
    return None


def write_history(record: dict, out: Path) -> None:
    """``out/history.json``, atomically: a failed write leaves the earlier file whole."""
    import json

    atomic_write(out / "history.json", [(json.dumps(record, indent=2) + "\n").encode("utf-8")],
                 who="history.json")


def feature_map_layer(model, conv: int) -> int:
    """Index of the first Activation after layer ``conv`` (past a BatchNorm), else the layer after it."""
    from .layers import Activation

    after = [i for i in range(conv + 1, len(model.layers)) if isinstance(model.layers[i], Activation)]
    return after[0] if after else min(conv + 1, len(model.layers) - 1)


def write_results(model, run, history, record, out, monitor) -> list[str]:
    """Test accuracy (overall and per class), history.json and every figure; the names written."""
    import numpy as np

    from . import interpret, metrics, viz
    from .cli_evaluate import report_test

    x_test, y_test = run.test
    predicted, cm = report_test(model, x_test, y_test, run.class_names)
    print(f"(training took {record['train_seconds']:.1f} s)")
    record["test_accuracy"] = float(np.trace(cm) / max(1, cm.sum()))
    record["per_class_accuracy"] = {name: None if np.isnan(value) else float(value) for name, value
                                    in zip(run.class_names, metrics.per_class_accuracy(cm))}
    write_history(record, out)
    written = ["model.sn", "history.json"]
    title = f"{record['model']} on {record['dataset']}"
    if history.epoch:
        viz.plot_history(history, save_path=out / "curves.png", title=title)
        written.append("curves.png")
    else:  # stopped inside the first epoch: no curve to draw, so no empty figure
        print("No epoch finished: curves.png is not written.")
    viz.plot_confusion_matrix(cm, run.class_names, save_path=out / "confusion.png")
    # the pictures show the images as they are (pixels in [0, 1]), not as the model sees them
    viz.plot_images(run.raw_test[:25], y_test[:25], predicted[:25], run.class_names,
                    save_path=out / "predictions.png")
    written += ["confusion.png", "predictions.png"]
    if run.augment is not None:
        from .recipes import build_augment

        viz.plot_augmented_grid(run.raw_fit[:6], build_augment(run.recipe.augment, run.raw_fit.shape[1:]),
                                labels=run.fit[1][:6], class_names=run.class_names,
                                save_path=out / "augmented.png")
        written.append("augmented.png")
    convs = [i for i, layer in enumerate(model.layers) if np.ndim(layer.params.get("W")) == 4]
    if convs:  # the first convolution's filters, its maps after the activation, Grad-CAM
        viz.plot_filters(model, layer=convs[0], save_path=out / "filters.png")
        viz.plot_feature_maps(model, x_test[0], layer=feature_map_layer(model, convs[0]),
                              label=y_test[0], class_names=run.class_names,
                              save_path=out / "feature_maps.png")
        interpret.plot_grad_cam(model, x_test[:8], labels=y_test[:8], save_path=out / "grad_cam.png")
        written += ["filters.png", "feature_maps.png", "grad_cam.png"]
    if monitor and monitor.records:
        monitor.plot(out / "health.png")
        written.append("health.png")
    return written
