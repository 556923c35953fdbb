"""The table ``Sequential.summary()`` prints: one row per layer, then the totals.

Columns: layer name and type (layers inside a container indented two spaces per level), the
output shape of one sample, the parameter count, and for each top-level layer of an image model
its receptive field (RF: how many input pixels one output cell sees) and its multiply-accumulates
per sample (MACs), from ``scratchnet.receptive`` where the formulas are written out.
"""

from __future__ import annotations

from .layer_tree import build_for
from .layers.base import iter_layers


def _layer_rows(layers, depth=0):
    """(layer, depth) for every layer of the tree, depth-first: containers before their children."""
    for layer in layers:
        yield layer, depth
        yield from _layer_rows(layer.sublayers(), depth + 1)


def _architecture_cells(model) -> tuple[dict, dict]:
    """{layer name: (RF, MACs)} for the top-level layers, and the totals (params, macs, flops)."""
    from .receptive import layer_costs, summary_columns

    try:
        rows, totals = layer_costs(model)
        columns = summary_columns(model, rows)
    except (ValueError, TypeError, AttributeError):  # a student's layer the arithmetic does not know
        return {}, {}
    return {layer.name: (cells["RF"], cells["MACs"]) for layer, cells in zip(model.layers, columns)}, totals


def summary_text(model) -> str:
    """The table (see the module docstring); builds the model first if it has an input_shape."""
    build_for(model, "summary()")
    cells, totals = _architecture_cells(model)
    rows = [("Layer (type)", "Output shape", "Params", "RF", "MACs")]
    for layer, depth in _layer_rows(model.layers):
        shape = layer.checked_output_shape(layer.input_shape)  # Python ints: (None, 4), not np.int64(4)
        count = f"{layer.count_params():,}"
        frozen = "" if layer.trainable else "  [frozen]"
        rf, macs = cells.get(layer.name, ("", "")) if depth == 0 else ("", "")
        rows.append(("  " * depth + f"{layer.name} ({type(layer).__name__}){frozen}",
                     str((None, *shape)), f"({count})" if layer.sublayers() else count, rf, macs))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    rule = "-" * (sum(widths) + 12)
    lines = [f'Model "{model.name}"  input {(None, *model.input_shape)}  dtype {model.dtype}', rule]
    for i, row in enumerate(rows):
        lines.append(f"{row[0]:<{widths[0]}}   {row[1]:<{widths[1]}}   {row[2]:>{widths[2]}}   "
                     f"{row[3]:>{widths[3]}}   {row[4]:>{widths[4]}}".rstrip())
        if i == 0:
            lines.append(rule)
    tree = list(iter_layers(model.layers))  # a container's own params are empty: each counted once
    total = model.count_params()
    trainable = sum(value.size for layer in tree if layer.trainable for value in layer.params.values())
    buffers = sum(value.size for layer in tree for value in layer.buffers.values())
    lines += [rule, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}"]
    if buffers:
        lines.append(f"Buffers (saved, never trained, e.g. running statistics): {buffers:,}")
    if totals:
        lines.append(f"Multiply-accumulates per sample: {totals['macs']:,} (FLOPs ~ {totals['flops']:,})")
    if any(layer.sublayers() for layer in model.layers):
        lines.append("(n): a container's params, the sum of the rows indented under it")
    if any(rf not in ("", "-") for rf, _ in cells.values()):
        lines.append("RF: receptive field, the input pixels one output cell sees (scratchnet.receptive)")
    return "\n".join(lines)
