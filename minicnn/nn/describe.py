"""The text a layer gives of itself, for summary() and trace(): its short name and the formulas
behind its output shape and its gradients. The layers call these helpers; summary and trace
only ask each layer (Module.short_name, .shape_formula, .gradient_formula), so they keep no
list of layer types."""


def by(hw):
    """(5, 5) -> '5', (3, 5) -> '3x5'."""
    return str(hw[0]) if hw[0] == hw[1] else f"{hw[0]}x{hw[1]}"


def size_formula(axis, size, kernel, stride, pads, dilation, out, pool=False, ceil=False):
    """'floor((H + 2P - D(K-1) - 1)/S) + 1 = floor((28 + 4 - 4 - 1)/1) + 1 = 28' for one axis.

    pads: (before, after). A pool without dilation gets the textbook form floor((H + 2P - K)/S) + 1;
    ceil_mode rounds up (and drops a last window that would start in the right padding).
    """
    rounding = "ceil" if ceil else "floor"
    before, after = pads
    p_text = "2P" if before == after else "PT + PB"
    if pool and dilation == 1:
        return (f"{rounding}(({axis} + {p_text} - K)/S) + 1 = {rounding}(({size} + {before + after} - {kernel})"
                f"/{stride}) + 1 = {out}")
    return (f"{rounding}(({axis} + {p_text} - D(K-1) - 1)/S) + 1 = "
            f"{rounding}(({size} + {before + after} - {dilation * (kernel - 1)} - 1)/{stride}) + 1 = {out}")


def spatial_formulas(in_shape, out_shape, kernel, stride, pads, dilation, pool=False, ceil=False):
    """['OH = OW = ...'] or ['OH = ...', 'OW = ...']. pads: ((PT, PB), (PL, PR))."""
    H, W = in_shape[-2:]
    OH, OW = out_shape[-2:]
    rows = [size_formula("H", H, kernel[0], stride[0], pads[0], dilation[0], OH, pool, ceil),
            size_formula("W", W, kernel[1], stride[1], pads[1], dilation[1], OW, pool, ceil)]
    if rows[0] == rows[1].replace("(W +", "(H +"):
        return ["OH = OW = " + rows[0]]
    return ["OH = " + rows[0], "OW = " + rows[1]]


def symmetric(padding):
    """(P, Q) -> ((P, P), (Q, Q))."""
    return ((padding[0], padding[0]), (padding[1], padding[1]))
