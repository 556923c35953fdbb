"""scratchnet: a convolutional-network framework written from scratch in NumPy and SciPy."""

__version__ = "0.2.0"

from . import (  # noqa: E402
    augment,
    callbacks,
    datasets,
    gradcheck,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    schedules,
)
from .model import History, Sequential  # noqa: E402
from .optimizers import SGD, Adam, AdamW  # noqa: E402
from .serialization import SerializationError, UnsafeModelError, load_model  # noqa: E402
from .training import NonFiniteLossError  # noqa: E402


def load(path, trusted: bool = False, allowed_classes=()) -> Sequential:
    """Load a model saved with ``model.save(path)``, ready to predict or resume training.

    The file is read with a restricted unpickler: only scratchnet's own classes, NumPy array
    reconstructors and builtin containers are allowed; anything else raises
    ``UnsafeModelError`` (naming it) and nothing from the file runs. A missing file raises
    ``FileNotFoundError``; an empty, truncated, corrupted (checksum) or newer-format file raises
    ``SerializationError``. No half-built model is ever returned.

    A model with layer classes of your own: name them, ``load(path, allowed_classes=[MyLayer])``.

    ``trusted=True`` uses plain pickle, which can execute arbitrary code hidden in the file:
    only for files you made yourself or trust completely.
    """
    return load_model(path, trusted=trusted, allowed_classes=allowed_classes)


__all__ = ["__version__", "Sequential", "History", "load", "Adam", "SGD", "layers", "losses",
           "optimizers", "gradcheck", "SerializationError", "UnsafeModelError",
           "datasets", "metrics", "models", "NonFiniteLossError", "callbacks",
           "AdamW", "augment", "schedules"]  # scratchnet.viz is imported on use (matplotlib)
