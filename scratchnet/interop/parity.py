"""parity_report: run a scratchnet model and its PyTorch twin side by side, layer by layer.

For every top-level layer i (module i of the twin) the report gives

    output   max |y_scratchnet - y_torch|                  the layer's forward output
    d input  max |dL/dx_scratchnet - dL/dx_torch|           the gradient reaching the layer's input
    then one row per parameter (layers inside containers too): max |dL/dp_scratchnet - dL/dp_torch|

L is the model's loss with labels ``y`` (cross-entropy or MSE), or, without ``y``, the fixed
random projection L = sum(output * R), R ~ N(0, 1) (as ``gradcheck.check_layer``). Teachers use
it to show that a student's framework agrees with PyTorch: in float64 every number is ~1e-15.

Training mode compares batch statistics too (on copies: neither model's running statistics
change). Dropout masks are random and cannot agree, so training mode turns dropout off in both
(and says so).
"""

from __future__ import annotations

import copy

import numpy as np

from ..layers.base import iter_layers
from .layouts import _as_numpy, to_torch_arrays, twin_prefixes


def _nhwc(tensor) -> np.ndarray:
    array = _as_numpy(tensor)
    return array.transpose(0, 2, 3, 1) if array.ndim == 4 else array


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if np.size(a) else 0.0


class ParityReport:
    """Rows of (name, kind, forward diff, input-gradient diff) and (param name, gradient diff)."""

    def __init__(self, rows, params, dtype, training, notes):
        self.rows, self.params, self.dtype, self.training, self.notes = rows, params, dtype, training, notes

    @property
    def forward_max(self) -> float:
        return max((row["output"] for row in self.rows), default=0.0)

    @property
    def gradient_max(self) -> float:
        values = [row["d_input"] for row in self.rows] + [p["grad"] for p in self.params]
        return max(values, default=0.0)

    def passed(self, tol: float = 1e-10) -> bool:
        return self.forward_max <= tol and self.gradient_max <= tol

    def __str__(self) -> str:
        mode = "training" if self.training else "inference"
        lines = [f"parity with PyTorch ({self.dtype}, {mode} mode): largest difference per layer",
                 f"{'layer':<28} {'type':<18} {'output':>9} {'d input':>9}   param gradients"]
        for row in self.rows:
            lines.append(f"{row['name']:<28} {row['kind']:<18} {row['output']:>9.1e} {row['d_input']:>9.1e}")
            for param in self.params:
                if param["top"] == row["name"]:
                    lines.append(f"{'':<60}{param['name']}: {param['grad']:.1e}")
        lines.append(f"largest: forward {self.forward_max:.1e}, gradient {self.gradient_max:.1e}")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    __repr__ = __str__


def _loss_pair(model, y, output, torch_output, torch, rng):
    """(dL/doutput in NumPy, the torch loss tensor)."""
    from ..losses import CrossEntropy, MeanSquaredError, get_loss
    if y is None:
        projection = rng.normal(size=output.shape).astype(output.dtype)
        layout = projection.transpose(0, 3, 1, 2) if projection.ndim == 4 else projection
        return projection, (torch_output * torch.from_numpy(np.ascontiguousarray(layout))).sum()
    loss = copy.deepcopy(model.loss) if model.loss is not None else CrossEntropy()
    loss = get_loss(loss)
    loss.forward(output, y)
    name = type(loss).__name__  # compared as classes below: a loss of your own may compute otherwise
    if type(loss) is CrossEntropy:
        target = torch.from_numpy(np.asarray(y)) if np.asarray(y).ndim == 1 else \
            torch.from_numpy(np.asarray(y, dtype=output.dtype))
        smoothing = getattr(loss, "label_smoothing", 0.0)
        torch_loss = torch.nn.functional.cross_entropy(torch_output, target, label_smoothing=smoothing)
        return loss.backward(), torch_loss
    if type(loss) is MeanSquaredError:
        target = torch.from_numpy(np.asarray(y, dtype=output.dtype))
        return loss.backward(), torch.nn.functional.mse_loss(torch_output, target)
    raise ValueError(f"parity_report: no PyTorch counterpart known for the loss {name}; pass y=None to "
                     "compare gradients of a random projection of the output")


def parity_report(model, x, y=None, training: bool = False, seed: int = 0,
                  verbose: bool = True) -> ParityReport:
    """Run ``model`` and ``to_torch(model)`` on ``x``; compare every layer's output and gradients.

    x : a channels-last batch; y : labels for the model's loss (or None: a random projection).
    The model is not changed (both runs use copies). Returns a ``ParityReport`` (printed if verbose).
    """
    import torch

    from .export import to_torch

    work, notes = copy.deepcopy(model), []
    if not work.built:
        work.build()
    if training:
        dropouts = [layer for layer in iter_layers(work.layers) if getattr(layer, "rate", 0) > 0]
        for layer in dropouts:
            layer.rate = 0.0
        if dropouts:
            names = ", ".join(d.name for d in dropouts)
            notes.append(f"dropout turned off in both ({names}): random masks differ")
    twin = to_torch(work)
    twin.train(training)
    x = np.asarray(x, dtype=work.dtype)

    # scratchnet, layer by layer
    outputs, out = [], x
    for layer in work.layers:
        out = layer.forward(out, training=training)
        outputs.append(out)

    # PyTorch, module by module, keeping every intermediate gradient
    x_torch = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x))
    x_torch.requires_grad_(True)
    inputs, t_out = [], x_torch
    for module in twin:
        inputs.append(t_out)
        t_out = module(t_out)
        t_out.retain_grad()
    t_outputs = inputs[1:] + [t_out]

    d_out, torch_loss = _loss_pair(work, y, outputs[-1], t_out, torch, np.random.default_rng(seed))
    d_inputs = [None] * len(work.layers)
    for i in reversed(range(len(work.layers))):
        d_out = work.layers[i].backward(d_out)
        d_inputs[i] = d_out
    torch_loss.backward()

    rows = []
    for i, layer in enumerate(work.layers):
        t_grad = inputs[i].grad
        rows.append({"name": layer.name, "kind": type(layer).__name__,
                     "output": _max_diff(outputs[i], _nhwc(t_outputs[i])),
                     "d_input": float("nan") if t_grad is None else _max_diff(d_inputs[i], _nhwc(t_grad))})
    named = dict(twin.named_parameters())
    tops = {id(leaf): top.name for top in work.layers for leaf in iter_layers([top])}
    params = []
    for prefix, layer in twin_prefixes(work):
        if not layer.params:
            continue
        for suffix, grad in to_torch_arrays(layer, layer.grads).items():
            theirs = named[f"{prefix}.{suffix}"].grad
            if theirs is None:
                continue  # a frozen layer: PyTorch computes no gradient for it
            params.append({"top": tops[id(layer)], "name": f"{layer.name}/{suffix}",
                           "grad": _max_diff(grad, theirs.numpy())})
    report = ParityReport(rows, params, str(work.dtype), training, notes)
    if verbose:
        print(report)
    return report
