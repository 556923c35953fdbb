"""Numbers about an architecture: receptive fields, parameters and multiply-accumulates.

Receptive field
---------------
Along one axis, every layer's output cell sees a window of ``r`` input pixels; neighbouring
output cells are ``j`` input pixels apart (the *jump*, the product of the strides so far); the
first output cell is centred on input coordinate ``start`` (pixel i has its centre at i). The
input itself has r = 1, j = 1, start = 0. A layer with kernel k, stride s, dilation d and
padding p_top before the image (k_eff = d (k - 1) + 1 cells under one window):

    r_out     = r_in + (k_eff - 1) * j_in
    j_out     = j_in * s
    start_out = start_in + ((k_eff - 1) / 2 - p_top) * j_in

Convolutions and pooling layers use their own k, s, d and padding. A layer that reduces the
whole map to one cell (GlobalAvgPool2D, Flatten) is a kernel as large as the map; after it,
Dense layers see everything already. Element-wise layers (activations, ...) change nothing.
r may exceed the image: it counts padded cells too.

A container is a set of branches, each a chain of layers (an identity shortcut is an empty
branch) whose outputs are added or concatenated. Each branch is walked with the recurrence;
the block's field is the union of the branch fields (the largest one when they are centred
alike), and every branch must have the same jump (else their outputs could not line up). The
branches are read from ``layer.branches`` (a list of layer lists, or a method returning one)
if the container has it; otherwise ``layer.sublayers()`` is taken as one chain.

Cost
----
Params: every parameter of the layer (and of the layers inside a container). MACs
(multiply-accumulates) per sample count the products with weights: a weight tensor of
``size`` numbers is used once per output position, so a layer with a 4-D output (Ho, Wo, F)
costs ``Ho * Wo * size`` per weight tensor with 2 or more axes (conv: Ho Wo kh kw C F; a
grouped or depthwise kernel is smaller and costs less by itself), a Dense layer ``D_in * D_out``.
Bias adds, activations, pooling and normalisation are not counted (O(activations), not
O(weights x positions)). FLOPs ~ 2 x MACs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers.base import iter_layers
from .layers.conv import ConvBase
from .layers.pooling import _Pool2D
from .layers.spatial import check_padding_option, positive_int, resolve_padding
from .option_checks import is_int

START = (np.ones(2), np.ones(2), np.zeros(2))  # (r, j, start) of the input, per (h, w) axis


@dataclass
class FieldRow:
    """One layer's receptive field: size (rh, rw), jump (jh, jw), start (sh, sw) in input pixels."""
    name: str
    kind: str
    output_shape: tuple
    size: tuple
    jump: tuple
    start: tuple


# ---------------------------------------------------------------------- one layer
class UnknownWindow(ValueError):
    """A layer whose window geometry receptive_field cannot know (a layer of one's own)."""


def _window(layer, input_shape):
    """(k, s, d, p_top) per axis as arrays of 2 for a layer with a sliding window, else None.
    scratchnet's own classes (and their subclasses) are asked for their padding; a layer of
    one's own with a ``kernel_size`` (or ``pool_size``) is read by ``_own_window``."""
    hw = tuple(input_shape[:2])
    if isinstance(layer, ConvBase):
        k, s, d = layer.kernel_size, layer.stride, getattr(layer, "dilation", (1, 1))
        pads = layer.pads_for(hw)
    elif isinstance(layer, _Pool2D):
        k, s, d = layer.pool_size, layer.stride, (1, 1)
        pads = layer.geometry(tuple(input_shape))[0]
    elif hasattr(layer, "kernel_size") or hasattr(layer, "pool_size"):
        k, s, d, pads = _own_window(layer, hw)
    else:
        return None
    return np.array(k), np.array(s), np.array(d), np.array([pads[0][0], pads[1][0]])


def _own_window(layer, hw):
    """(k, s, d, pads) of a layer of one's own, read from its attributes when they are all
    well-formed: ``kernel_size`` (or ``pool_size``) and ``stride`` (h, w) pairs of ints >= 1,
    ``padding`` "valid", "same", an int, an (h, w) pair or ((top, bottom), (left, right)), and
    ``dilation`` a pair too if it has one ((1, 1) if not). Anything else (an int kernel_size,
    a padding rule of its own) is refused by name (UnknownWindow), not guessed."""
    window = "kernel_size" if hasattr(layer, "kernel_size") else "pool_size"
    names = (window, "stride", "padding")
    missing = [name for name in names if not hasattr(layer, name)]
    if missing:
        _refuse_own_window(layer, f"it has no {' or '.join(missing)}")
    k, s = getattr(layer, window), layer.stride
    d = getattr(layer, "dilation", (1, 1))
    for name, value in ((window, k), ("stride", s), ("dilation", d)):
        if not _is_positive_pair(value):
            _refuse_own_window(layer, f"its {name} is {value!r}, not an (h, w) pair of ints >= 1")
    try:
        padding = check_padding_option(layer.padding, layer.name)
    except (TypeError, ValueError):
        _refuse_own_window(layer, f"its padding is {layer.padding!r}, not 'valid', 'same', an int or "
                                  f"an (h, w) pair")
    return tuple(k), tuple(s), tuple(d), resolve_padding(padding, hw, k, s, d)


def _is_positive_pair(value) -> bool:
    """(3, 3), [2, 1]: a pair of ints >= 1 (not a bool, not a float)."""
    return (isinstance(value, (tuple, list)) and len(value) == 2
            and all(is_int(size) and size >= 1 for size in value))


def _refuse_own_window(layer, why: str):
    raise UnknownWindow(f"{layer.name}: receptive_field reads the window of a layer of one's own "
                        f"from its kernel_size (or pool_size), stride, padding and dilation, and "
                        f"{type(layer).__module__}.{type(layer).__qualname__}'s cannot be read: {why}")


def _step(field, k, s, d, p_top):
    """The recurrence of the module docstring, on both axes at once."""
    r, j, start = field
    k_eff = d * (k - 1) + 1
    return r + (k_eff - 1) * j, j * s, start + ((k_eff - 1) / 2 - p_top) * j


def _layer_field(layer, input_shape, field):
    """(r, j, start) after ``layer`` for an input of one-sample shape ``input_shape``."""
    output_shape = tuple(layer.output_shape(input_shape))
    branches = _branches(layer)
    if branches is not None:
        return _merge(layer, [_chain_field(branch, input_shape, field)[0] for branch in branches])
    if len(input_shape) != 3:  # after Flatten: every unit already sees the whole input
        return field
    window = _window(layer, input_shape)
    if window is not None:
        return _step(field, *window)
    if len(output_shape) != 3:  # (H, W, C) -> (C,) or (H*W*C,): one window as large as the map
        size = np.array(input_shape[:2])
        return _step(field, size, np.ones(2), np.ones(2), np.zeros(2))
    if output_shape[:2] == tuple(input_shape[:2]):
        return field  # element-wise: activations, normalisation, dropout
    raise UnknownWindow(f"{layer.name}: receptive_field does not know how {type(layer).__name__} "
                     f"maps {tuple(input_shape)} to {output_shape} (no kernel_size / pool_size)")


# ---------------------------------------------------------------------- chains and branches
def _branches(layer):
    """A container's branches as lists of layers, or None for a leaf layer."""
    branches = getattr(layer, "branches", None)
    if callable(branches):
        branches = branches()
    if branches is None:
        children = list(layer.sublayers())
        return [children] if children else None
    return [list(b) if isinstance(b, (list, tuple)) else ([] if b is None else [b]) for b in branches]


def _chain_field(layers, input_shape, field):
    """Walk a chain of layers; returns the final (r, j, start) and one FieldRow per layer."""
    rows, shape = [], tuple(input_shape)
    for layer in layers:
        field = _layer_field(layer, shape, field)
        shape = tuple(layer.output_shape(shape))
        r, j, start = field
        rows.append(FieldRow(layer.name, type(layer).__name__, shape, tuple(int(v) for v in r),
                             tuple(int(v) for v in j), tuple(float(v) for v in start)))
    return field, rows


def _merge(layer, fields):
    """Union of the branch fields: [start - (r-1)/2, start + (r-1)/2] per branch; jumps agree."""
    jumps = {tuple(j) for _, j, _ in fields}
    if len(jumps) != 1:
        raise ValueError(f"{layer.name}: its branches have different jumps {sorted(jumps)}; their "
                         "outputs cannot line up cell by cell")
    low = np.min([start - (r - 1) / 2 for r, _, start in fields], axis=0)
    high = np.max([start + (r - 1) / 2 for r, _, start in fields], axis=0)
    return high - low + 1, fields[0][1], (low + high) / 2


def receptive_field(model) -> list[FieldRow]:
    """One FieldRow per layer of ``model.layers`` (a container: the whole block)."""
    if model.input_shape is None:
        raise ValueError(f"{model.name}: receptive_field needs the input shape; build the model first")
    if len(model.input_shape) != 3:
        raise ValueError(f"{model.name}: receptive_field needs image inputs (H, W, C), "
                         f"got input_shape {model.input_shape}")
    return _chain_field(model.layers, model.input_shape, START)[1]


# ---------------------------------------------------------------------- cost
@dataclass
class CostRow:
    name: str
    kind: str
    output_shape: tuple
    params: int
    macs: int


def _macs(layer, input_shape) -> int:
    """Multiply-accumulates per sample (see the module docstring)."""
    branches = _branches(layer)
    if branches is not None:
        total = 0
        for branch in branches:
            shape = tuple(input_shape)
            for child in branch:
                total += _macs(child, shape)
                shape = tuple(child.output_shape(shape))
        return total
    output_shape = tuple(layer.output_shape(input_shape))
    positions = int(np.prod(output_shape[:-1]))  # Ho*Wo for images, 1 for vectors
    return sum(positions * value.size for value in layer.params.values() if value.ndim >= 2)


def layer_costs(model) -> tuple[list[CostRow], dict]:
    """Per top-level layer params and MACs (per sample), and the totals {"params", "macs", "flops"}."""
    if not model.built:
        model.build()
    rows, shape = [], tuple(model.input_shape)
    for layer in model.layers:
        # each layer's own arrays, over the tree (a container's count_params already sums its children)
        params = sum(value.size for inner in iter_layers([layer]) for value in inner.params.values())
        macs = _macs(layer, shape)
        shape = tuple(layer.output_shape(shape))
        rows.append(CostRow(layer.name, type(layer).__name__, shape, params, macs))
    totals = {"params": sum(row.params for row in rows), "macs": sum(row.macs for row in rows)}
    totals["flops"] = 2 * totals["macs"]
    return rows, totals


# ---------------------------------------------------------------------- tables
def format_table(header, rows) -> str:
    """Left-aligned first column, right-aligned others, columns as wide as their widest cell."""
    rows = [tuple(header)] + [tuple(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["   ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                        enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _pair(values, fmt="{:g}") -> str:
    return "x".join(fmt.format(v) for v in values) if values[0] != values[1] else fmt.format(values[0])


def summary_columns(model, rows) -> list[dict[str, str]]:
    """Per top-level layer the extra ``summary()`` cells: RF, jump, start, MACs (as strings).

    rows : the CostRows of ``layer_costs(model)`` (the caller has them: it prints the totals too).
    Without image input (an MLP) the receptive-field cells are "-". From a layer whose window is
    unknown (``UnknownWindow``: a layer of one's own) on, they are blank: that layer's and every
    later one's (the field grows layer by layer); the MACs cells stay.
    """
    if len(model.input_shape) != 3:
        return [{"RF": "-", "Jump": "-", "Start": "-", "MACs": f"{row.macs:,}"} for row in rows]
    fields = _fields_until_unknown(model)
    return [{"RF": _pair(f.size) if f else "", "Jump": _pair(f.jump) if f else "",
             "Start": _pair(f.start) if f else "", "MACs": f"{row.macs:,}"}
            for f, row in zip(fields, rows)]


def _fields_until_unknown(model) -> list[FieldRow | None]:
    """``receptive_field(model)``'s rows, None from the first layer of unknown window on."""
    rows, shape, field = [], tuple(model.input_shape), START
    for layer in model.layers:
        try:
            field, (row,) = _chain_field([layer], shape, field)
        except UnknownWindow:
            return rows + [None] * (len(model.layers) - len(rows))
        rows.append(row)
        shape = row.output_shape
    return rows


def architecture_table(model) -> str:
    """Layer, output shape, receptive field, jump, start, params and MACs, then the totals."""
    rows, totals = layer_costs(model)
    columns = summary_columns(model, rows)
    body = [(f"{row.name} ({row.kind})", str((None, *row.output_shape)), cells["RF"], cells["Jump"],
             cells["Start"], f"{row.params:,}", cells["MACs"]) for row, cells in zip(rows, columns)]
    table = format_table(("Layer (type)", "Output shape", "RF", "Jump", "Start", "Params", "MACs"), body)
    return (f"{table}\nTotal params: {totals['params']:,}   MACs per sample: {totals['macs']:,}   "
            f"FLOPs ~ {totals['flops']:,}")


# ---------------------------------------------------------------------- standard vs separable
@dataclass
class ConvCost:
    """A standard k x k convolution against a depthwise-separable one of the same shape.

    standard:  params k*k*C*F (+ F bias)          MACs Ho*Wo*k*k*C*F
    separable: depthwise k*k*C, pointwise C*F (+ F bias)
               MACs Ho*Wo*(k*k*C + C*F)
    macs_ratio = separable / standard = 1/F + 1/k^2   (MobileNet, Howard et al. 2017)
    """
    input_shape: tuple
    output_shape: tuple
    kernel_size: int
    standard_params: int
    separable_params: int
    standard_macs: int
    separable_macs: int

    @property
    def macs_ratio(self) -> float:
        return self.separable_macs / self.standard_macs

    @property
    def params_ratio(self) -> float:
        return self.separable_params / self.standard_params

    def table(self) -> str:
        k, (h, w, c), f = self.kernel_size, self.input_shape, self.output_shape[2]
        rows = [(f"standard conv {k}x{k}", f"{self.standard_params:,}", f"{self.standard_macs:,}"),
                (f"depthwise {k}x{k} + pointwise 1x1", f"{self.separable_params:,}",
                 f"{self.separable_macs:,}"),
                ("separable / standard", f"{self.params_ratio:.4f}", f"{self.macs_ratio:.4f}")]
        head = f"input {h}x{w}x{c} -> output {'x'.join(map(str, self.output_shape))}"
        return f"{head}\n{format_table(('', 'Params', 'MACs'), rows)}\n1/F + 1/k^2 = {1 / f + 1 / k ** 2:.4f}"

    def __str__(self):
        return self.table()


def compare_conv_cost(input_shape, filters: int, kernel_size: int, stride: int = 1, padding="same",
                      use_bias: bool = True) -> ConvCost:
    """Params and MACs (per sample) of a standard conv and of a depthwise-separable one."""
    try:
        h, w, c = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"compare_conv_cost: input_shape must be (H, W, C), got {input_shape!r}") from None
    for what, value in (("filters", filters), ("kernel_size", kernel_size), ("stride", stride)):
        positive_int(value, what, "compare_conv_cost")
    k, f = kernel_size, filters
    padding = check_padding_option(padding, "compare_conv_cost")
    pads = resolve_padding(padding, (h, w), (k, k), (stride, stride))
    ho, wo = ((size + sum(pad) - k) // stride + 1 for size, pad in zip((h, w), pads))
    if min(ho, wo) < 1:
        raise ValueError(f"compare_conv_cost: a {k}x{k} kernel does not fit in {h}x{w} "
                         f"with padding {padding!r}")
    bias = f if use_bias else 0
    return ConvCost((h, w, c), (ho, wo, f), k,
                    standard_params=k * k * c * f + bias, separable_params=k * k * c + c * f + bias,
                    standard_macs=ho * wo * k * k * c * f, separable_macs=ho * wo * (k * k * c + c * f))
