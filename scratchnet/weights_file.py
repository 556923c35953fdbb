"""A model's weights as a pickle-free ``.npz`` file: ``model.save_weights`` / ``load_weights``.

No code runs on load (``allow_pickle=False``), so a weights file from a stranger is safe to
read, unlike a whole-model pickle (``serialization.py``). The names are those of ``weights.py``
("layer_name/param_name"), or PyTorch's ``state_dict`` keys with ``naming="torch"``.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

from .option_checks import check_path
from .serialization import MAGIC, SerializationError, atomic_write
from .weights import weight_arrays


def save_weights(model, path, naming: str = "scratchnet") -> None:
    """Every parameter and buffer as a named array in a pickle-free ``.npz`` file at ``path``.

    naming="scratchnet": keys "layer_name/param_name", scratchnet layouts.
    naming="torch": PyTorch ``state_dict`` keys and layouts ("0.weight" (F, C, kh, kw), ...), those
    of ``scratchnet.interop.to_torch(model).state_dict()``; NumPy only, PyTorch not needed.
    ``load_weights`` recognises either naming.
    """
    if not model.built:
        raise ValueError(f"{model.name}: the model is not built, it has no weights to save yet")
    if naming not in ("scratchnet", "torch"):
        raise ValueError(f"{model.name}: save_weights naming must be 'scratchnet' or 'torch', got {naming!r}")
    if naming == "torch":
        from .interop.layouts import torch_state_dict
        arrays = torch_state_dict(model)
    else:
        arrays = weight_arrays(model)  # the live arrays: np.savez copies them into the file once
    buffer = io.BytesIO()  # np.savez on a file object: no ".npz" appended to the user's path
    np.savez(buffer, **arrays)
    atomic_write(path, [buffer.getvalue()], who="save_weights")


def is_torch_save_file(path) -> bool:
    """True for a file written by torch.save: a zip archive holding "<name>/data.pkl" (an .npz has none)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("data.pkl") for name in archive.namelist())


def load_weights(model, path) -> None:
    """Read a ``.npz`` written by ``save_weights`` (``allow_pickle=False``) into ``model``.

    Every name and shape is checked before any parameter changes (``set_weights``); values must be
    real numbers and are converted to the model's dtype (float64 weights load into a float32 model).
    A file written with ``naming="torch"`` (keys without "/", e.g. "0.weight") is read as a PyTorch
    state_dict (``scratchnet.interop.load_torch_state_dict``).
    """
    real = os.path.expanduser(os.fspath(check_path(path, "load_weights")))
    with open(real, "rb") as file:  # FileNotFoundError as it is
        start = file.read(len(MAGIC))
    if start == MAGIC:
        raise SerializationError(
            f"{path}: not a readable weights file: it is a model file (written by model.save); load it with "
            f"scratchnet.load({os.fspath(path)!r}); load_weights reads files written by model.save_weights")
    if is_torch_save_file(real):
        raise SerializationError(
            f"{path}: not a readable weights file: it is a torch.save file (a zip holding data.pkl), which "
            f"load_weights does not unpickle; with PyTorch: scratchnet.interop.load_torch_state_dict(model, "
            f"torch.load({os.fspath(path)!r}))")
    try:
        with np.load(real, allow_pickle=False) as archive:
            weights = {key: archive[key] for key in archive.files}
    except Exception as error:
        reason = "it holds pickled objects" if "allow_pickle" in str(error) else f"{type(error).__name__}"
        raise SerializationError(
            f"{path}: not a readable weights file ({reason}); load_weights reads the .npz files "
            f"model.save_weights writes") from None
    if weights and not any("/" in key for key in weights):
        from .interop.layouts import load_torch_state_dict
        load_torch_state_dict(model, weights)
        return
    model.set_weights(weights)
