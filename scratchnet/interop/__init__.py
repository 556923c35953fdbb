"""The PyTorch bridge: scratchnet models to ``torch.nn`` and back (PyTorch optional).

    twin  = to_torch(model)                       # an nn.Module, same weights, channels-last input
    model = from_torch(module, input_shape)       # nn.Sequential, a to_torch twin, a torchvision ResNet
    parity_report(model, x, y)                    # per layer: largest forward and gradient differences
    torch_state_dict(model) / load_torch_state_dict(model, state_dict)   # "0.weight", torch layouts
    to_torch_optimizer(model.optimizer, twin)     # the same Adam/AdamW/SGD and schedule in torch.optim
    replace_head(model, Dense(5, name="fc"))      # transfer learning: a new last layer, the body kept

PyTorch is imported inside these functions only: ``import scratchnet.interop`` works without it.
"""

from .export import SUPPORTED_LAYERS, UnsupportedLayerError, to_torch
from .importer import SUPPORTED_MODULES, from_torch
from .layouts import load_torch_state_dict, torch_state_dict
from .optim import to_torch_optimizer
from .parity import ParityReport, parity_report
from .transfer import replace_head
from .verify import ImportMismatchError

__all__ = ["to_torch", "from_torch", "torch_state_dict", "load_torch_state_dict", "UnsupportedLayerError",
           "ImportMismatchError", "parity_report", "ParityReport", "to_torch_optimizer", "replace_head",
           "SUPPORTED_LAYERS", "SUPPORTED_MODULES"]
