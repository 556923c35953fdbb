"""scratchnet: a convolutional-network framework written from scratch in NumPy and SciPy."""

__version__ = "0.1.0"

from . import gradcheck, layers, losses, optimizers  # noqa: E402
from .model import History, Sequential  # noqa: E402
from .optimizers import SGD, Adam  # noqa: E402
from .serialization import SerializationError, UnsafeModelError, load_model  # noqa: E402


def load(path, trusted: bool = False) -> Sequential:
    """Load a model saved with ``model.save(path)``.

    The file is read with a restricted unpickler: only scratchnet's own classes, NumPy array
    reconstructors and builtin containers are allowed; anything else raises
    ``UnsafeModelError`` and nothing from the file runs. ``trusted=True`` uses plain pickle,
    which can execute arbitrary code: only for files you trust completely.
    """
    return load_model(path, trusted=trusted)


__all__ = ["__version__", "Sequential", "History", "load", "Adam", "SGD", "layers", "losses",
           "optimizers", "gradcheck", "SerializationError", "UnsafeModelError"]
