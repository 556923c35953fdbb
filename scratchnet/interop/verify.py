"""The safety net of ``from_torch``: the imported model must compute what the PyTorch module computes.

The importer recognises modules by class and reads their options, but it cannot read a
``forward`` method: a module whose forward does something else than its class and attributes
say would come back as a model with the right weights and the wrong numbers. So, once the model
is built, ``check_same_outputs`` runs ONE small seeded random batch through both and raises
if they disagree. It costs one forward of each (on copies, in float64), nothing else.
"""

from __future__ import annotations

import copy

import numpy as np

SAMPLES = 2  # a batch of 2: a mistake that mixes the samples of a batch shows too
RELATIVE_TOLERANCE = 1e-8  # of the output scale, in float64; float32 noise alone is ~1e-7, a mistake ~1


class ImportMismatchError(ValueError):
    """from_torch made a model that does not compute what the PyTorch module computes."""


def check_same_outputs(module, model, seed: int = 0) -> None:
    """Raise ``ImportMismatchError`` unless ``model`` (scratchnet) and ``module`` (torch) agree.

    x : ``SAMPLES`` samples of ``model.input_shape`` (channels-last), standard normal, seeded.
    Both run in inference mode (``module.eval()``, ``model.predict``) in float64, on COPIES
    (``copy.deepcopy(module).double()``, ``copy.deepcopy(model).astype("float64")``): the user's
    module keeps its training flags and dtype, the model its dtype. Images go to PyTorch as
    (N, C, H, W) (a ``to_torch`` twin: as the twin takes them) and 4-D outputs come back
    channels-last. Passes if

        max |y_torch - y_scratchnet| <= RELATIVE_TOLERANCE * max(|y_torch|, |y_scratchnet|)

    A model is only checked with an input shape: ``from_torch`` has one (given, or a twin's).
    """
    x = np.random.default_rng(seed).standard_normal((SAMPLES, *model.input_shape))
    expected = torch_outputs(copy.deepcopy(module).double().eval(), x)
    got = copy.deepcopy(model).astype("float64").predict(x)
    if expected.shape != got.shape:
        raise ImportMismatchError(
            f"from_torch: the imported model gives outputs of shape {got.shape[1:]} per sample, the "
            f"PyTorch module {expected.shape[1:]} (channels-last) for input samples of shape "
            f"{tuple(model.input_shape)}; the module's forward does something the importer cannot see")
    difference = float(np.abs(expected - got).max(initial=0.0))
    scale = float(max(np.abs(expected).max(initial=0.0), np.abs(got).max(initial=0.0)))
    if not difference <= RELATIVE_TOLERANCE * scale:
        raise ImportMismatchError(
            f"from_torch: the imported model computes something else than the PyTorch module: on a "
            f"random float64 batch their outputs differ by up to {difference:.3g} (outputs up to "
            f"{scale:.3g}; allowed {RELATIVE_TOLERANCE:g} of that). The importer reads classes and options, "
            "not forward methods: a module whose forward differs from its class's (a pre-activation block "
            "with torchvision's attribute names, a reshaping forward) cannot be imported; build it in "
            "scratchnet instead")


def torch_outputs(module, x: np.ndarray) -> np.ndarray:
    """The module's outputs for channels-last x, channels-last, as a float64 NumPy array."""
    import torch

    channels_last_twin = getattr(module, "channels_last", False)  # a to_torch twin taking (N, H, W, C)
    inputs = torch.from_numpy(x)
    if x.ndim == 4 and not channels_last_twin:
        inputs = inputs.permute(0, 3, 1, 2)
    with torch.no_grad():
        outputs = module(inputs)
    if not isinstance(outputs, torch.Tensor):
        raise ImportMismatchError(
            f"from_torch: the PyTorch module returns a {type(outputs).__name__}, not a tensor")
    if outputs.dim() == 4 and not channels_last_twin:
        outputs = outputs.permute(0, 2, 3, 1)
    return outputs.detach().numpy().astype(np.float64)
