"""Zero padding worked out independently of scratchnet.layers.spatial, for the reference side of
tests (the loops, PyTorch, the torch twin): a reference that asks the layer under test for its
padding agrees with any wrong padding the layer picks.

    reference_pads("same", (9, 8), 3, 2)   ->  ((1, 1), (0, 1))      ((top, bottom), (left, right))

"same" keeps ceil(size / stride) outputs: the windows (span d*(k-1) + 1 each, stride s) must
reach over (out - 1) * s + span cells, so total = max((out - 1) * s + span - size, 0) zeros are
added, half before and half after; an odd cell goes AFTER (bottom / right), the rule of
TensorFlow and of PyTorch's padding="same" (stride 1 only there).
"""

from __future__ import annotations


def pair(value):
    """An int or an (h, w) pair -> (h, w)."""
    return (value, value) if isinstance(value, int) else tuple(value)


def reference_pads(padding, input_hw, kernel_hw, stride_hw=1, dilation_hw=1):
    """((top, bottom), (left, right)) for a padding option: "valid", "same", p, (ph, pw) or
    ((top, bottom), (left, right)); kernel, stride and dilation are ints or (h, w) pairs."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        pads = []
        for size, k, s, d in zip(input_hw, pair(kernel_hw), pair(stride_hw), pair(dilation_hw)):
            out = (size + s - 1) // s            # ceil(size / s)
            span = d * (k - 1) + 1               # cells one (dilated) window covers
            total = max((out - 1) * s + span - size, 0)
            before = total // 2
            pads.append((before, total - before))  # the odd cell after
        return tuple(pads)
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    if isinstance(padding[0], int):
        return ((padding[0], padding[0]), (padding[1], padding[1]))
    return tuple(tuple(p) for p in padding)


def config_pads(config, input_hw):
    """The padding a conv layer's options (kernel_size, stride, dilation, padding) mean."""
    return reference_pads(config.get("padding", "valid"), input_hw, config["kernel_size"],
                          config.get("stride", 1), config.get("dilation", 1))


def torch_paddings(config, input_hw):
    """The paddings a PyTorch reference tries: ``config_pads`` (zeros added by F.pad), and for
    "same" at stride 1 also torch's own padding="same", which decides where the odd cell goes."""
    paddings = [config_pads(config, input_hw)]
    if config.get("padding") == "same" and pair(config.get("stride", 1)) == (1, 1):
        paddings.append("same")
    return paddings
