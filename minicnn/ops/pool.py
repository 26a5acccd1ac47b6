"""Max and average pooling in NCHW, by a few strided slices (one per window offset).

Shapes: x (N, C, H, W) -> out (N, C, OH, OW) with, as in torch,
    OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1                          (ceil_mode=False)
    OH = ceil((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1, minus one if that last window
         would start in the bottom padding (it must start in the input or the top padding)  (ceil_mode=True)
stride defaults to the kernel size; padding may be at most half the kernel (torch's rule, whatever
the dilation); dilation DH, DW (max pooling only) spreads a window's taps DH rows, DW columns apart.
With ceil_mode the last window may hang over the bottom/right edge: the input is padded far enough
for it, and that overhang counts as padding (it never wins a max, and no average counts it).

Two implementations of the same math, selected by minicnn.set_impl (or impl= per call):
    'plain'  as written first below: padded copies, an argmax array, fresh temporaries.
    'fast'   the same slices, computed in place (xp.maximum(..., out=)), no padded copy when
             there is no padding, the winning tap of each max window kept as a uint8 so the
             backward never reads x again, non-overlapping windows written without
             read-add, and gradients laid out in memory like the input (NCHW or, after
             conv2d, CNHW), so the next backward needs no transpose copy; with
             winners=False (inference: no backward to come) the maxima alone.

Also here: adaptive pooling (OH x OW bins over any input size, torch's bin edges), global pooling,
and max_unpool2d, which puts max pooling's winners back in place (from return_indices).
"""

from typing import NamedTuple

from ..backend import get_array_module
from . import parallel
from .checks import pair
from .conv import _tap
from .impl import choose as _choose


def _check_4d(x, where):
    if x.ndim != 4:
        raise ValueError(f"{where}: expected input of shape (N, C, H, W), got shape {tuple(x.shape)}")


def pool_output_size(size, kernel, stride, padding=0, dilation=1, ceil_mode=False):
    """Output length along one axis, torch's rule: floor (or, with ceil_mode, ceil) of
    (size + 2*padding - dilation*(kernel - 1) - 1) / stride, plus 1. With ceil_mode a last window
    that would start in the far padding (at or past size + padding) is dropped."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


class Window(NamedTuple):
    """The geometry of one pooling call, in (rows, columns) pairs."""
    kernel: tuple     # (KH, KW)
    stride: tuple     # (SH, SW)
    padding: tuple    # (PH, PW): cells added before the first row / column (and, at least, after the last)
    dilation: tuple   # (DH, DW): the distance between a window's taps
    out_hw: tuple     # (OH, OW)
    padded_hw: tuple  # size of the padded input: H + 2*PH, more where ceil_mode's last window hangs over


def _pool_args(x, kernel_size, stride, padding, dilation, ceil_mode, where):
    """Checks the arguments (torch's rules) and returns the Window they describe."""
    kernel = pair(kernel_size, "kernel_size", where)
    stride = kernel if stride is None else pair(stride, "stride", where)
    padding = pair(padding, "padding", where, minimum=0)
    dilation = pair(dilation, "dilation", where)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{where}: padding {padding} must be at most half the kernel size {kernel}")
    _check_4d(x, where)
    H, W = x.shape[2:]
    OH, OW = (pool_output_size(n, k, s, p, d, ceil_mode) for n, k, s, p, d in zip((H, W), kernel, stride, padding,
                                                                                     dilation))
    if OH < 1 or OW < 1:
        raise ValueError(
            f"{where}: kernel {kernel} (dilation {dilation}) is larger than the padded input "
            f"{(H + 2 * padding[0], W + 2 * padding[1])} (input {(H, W)}, padding {padding}); "
            "use a smaller kernel, more padding or a larger input"
        )
    # rows the windows reach: the last one starts at (OH - 1)*SH and spans DH*(KH - 1) + 1
    reach = [(o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip((OH, OW), stride, dilation, kernel)]
    padded_hw = (max(H + 2 * padding[0], reach[0]), max(W + 2 * padding[1], reach[1]))
    return Window(kernel, stride, padding, dilation, (OH, OW), padded_hw)


def _lowest(x):
    """The value a padded cell of max pooling gets: one that never wins (-inf, or the integer minimum)."""
    xp = get_array_module(x)
    return -xp.inf if x.dtype.kind == "f" else xp.iinfo(x.dtype).min


def _beats(window, best):
    """Where a tap replaces the running maximum: it is greater, or it is NaN (NaN propagates, as in torch)."""
    better = window > best
    if window.dtype.kind == "f":
        better |= get_array_module(window).isnan(window)
    return better


def _padded(x, g, value):
    """x inside a frame of `value`: PH rows on top, PW columns on the left, and the rest of g.padded_hw after."""
    xp = get_array_module(x)
    (PH, PW), (HP, WP) = g.padding, g.padded_hw
    H, W = x.shape[2:]
    return xp.pad(x, ((0, 0), (0, 0), (PH, HP - H - PH), (PW, WP - W - PW)), constant_values=value)


def _unpadded(dxpad, x_shape, g):
    """The cells of a padded-shape gradient that lie over the input itself."""
    (PH, PW), (H, W) = g.padding, x_shape[2:]
    return dxpad[:, :, PH:PH + H, PW:PW + W]


def _windows(xpad, g):
    """The KH*KW strided views of xpad, one per tap: window k holds tap k of every output pixel.

    Tap k = (i, j), i = k // KW, j = k % KW, sits at row oh*SH + i*DH, column ow*SW + j*DW of xpad.
    Views, not copies: reading one reads xpad, and adding into one adds into xpad.
    """
    KH, KW = g.kernel
    return [xpad[(Ellipsis, *_tap(i, j, *g.out_hw, g.stride, g.dilation))] for i in range(KH) for j in range(KW)]


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, impl=None, winners=True):
    """Maximum over each KH x KW window (taps DH, DW apart): x (N, C, H, W) -> out (N, C, OH, OW).

    Padding is -inf (the lowest integer for integer input), so a padded cell never wins, even
    when every input is negative. The cache keeps which tap won in each window: the first one on
    ties; a NaN wins, and then the last NaN of the window (torch's rule: NaN propagates).
    max_pool2d_indices(cache) gives torch's return_indices.
    winners=False: the fast path computes the maxima alone (for inference: no backward and no
    indices will be asked for), and its cache refuses both; the plain path ignores it.
    """
    xp = get_array_module(x)
    g = _pool_args(x, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    if _choose(impl, "max_pool2d") == "fast":
        return _max_pool2d_fast(x, g) if winners else _max_pool2d_values(x, g)
    out = None
    for k, window in enumerate(_windows(_padded(x, g, _lowest(x)), g)):
        if out is None:
            out = window.copy()
            argmax = xp.zeros(out.shape, dtype=xp.int32)
        else:
            better = _beats(window, out)
            out = xp.where(better, window, out)
            argmax = xp.where(better, k, argmax)
    return out, ("plain", x.shape, _winner_inside(argmax, out, x, g), g)


def max_pool2d_backward(dout, cache):
    """dx: each window's dout goes to the input cell that won it, summed where windows overlap."""
    _no_winners(cache, "its backward")
    if cache[0] == "fast":
        return _max_pool2d_backward_fast(dout, cache)
    xp = get_array_module(dout)
    _, (N, C, H, W), argmax, g = cache
    dxpad = xp.zeros((N, C) + g.padded_hw, dtype=dout.dtype)
    for k, dx_k in enumerate(_windows(dxpad, g)):
        dx_k += xp.where(argmax == k, dout, 0)  # dx_k is a view: this adds into dxpad
    return _unpadded(dxpad, (N, C, H, W), g)


def _winner_inside(argmax, out, x, g):
    """A window whose maximum is the lowest value (all its cells -inf, or the integer minimum) ties
    with its padding, so its first tap, the winner, may be a padded cell. torch names the first
    tap inside the input instead (row oh*SH - PH + i*DH >= 0, likewise the column): so does this."""
    if g.padding == (0, 0):  # then every window's first tap is inside the input
        return argmax
    xp = get_array_module(argmax)
    lowest = out == _lowest(x)
    (OH, OW), (SH, SW), (PH, PW), (DH, DW), KW = g.out_hw, g.stride, g.padding, g.dilation, g.kernel[1]
    first_i = xp.maximum(0, -((xp.arange(OH) * SH - PH) // DH))  # ceil((PH - oh*SH) / DH), at least 0
    first_j = xp.maximum(0, -((xp.arange(OW) * SW - PW) // DW))
    xp.copyto(argmax, (first_i[:, None] * KW + first_j[None, :]).astype(argmax.dtype), where=lowest)
    return argmax


def max_pool2d_indices(cache):
    """torch's return_indices: where each window's maximum lies in its input plane, as an index
    into the flattened H*W plane of its (n, c). (N, C, OH, OW) int64."""
    _no_winners(cache, "return_indices")
    xp = get_array_module(cache[2])
    _, x, argmax, g = cache
    W = (x if cache[0] == "plain" else x.shape)[3]
    (OH, OW), (SH, SW), (PH, PW), (DH, DW), KW = g.out_hw, g.stride, g.padding, g.dilation, g.kernel[1]
    tap = argmax.astype(xp.int64)
    rows = (xp.arange(OH) * SH - PH)[:, None] + (tap // KW) * DH
    cols = (xp.arange(OW) * SW - PW)[None, :] + (tap % KW) * DW
    return rows * W + cols


def _max_pool2d_fast(x, g, nan_aware=False):
    """A running maximum, updated in place tap by tap, and the winning tap of each window
    kept as a small integer (uint8 for up to 256 taps): the backward then reads only that,
    not x again. A later tap wins only when strictly greater: the first one wins ties."""
    xp = get_array_module(x)
    xpad = _padded(x, g, _lowest(x)) if g.padded_hw != x.shape[2:] else x
    windows = _windows(xpad, g)
    # empty_like lays its arrays out like x (NCHW, or CNHW after conv2d).
    out = xp.empty_like(windows[0])
    argmax = xp.zeros_like(out, dtype=xp.uint8 if len(windows) <= 256 else xp.int32)

    def part(n0, n1):  # images n0:n1, on one thread (ops.parallel)
        o, best = out[n0:n1], argmax[n0:n1]
        o[...] = windows[0][n0:n1]
        tap, rose = xp.empty_like(o), xp.empty_like(best)  # reused for every tap
        for k, window in enumerate(windows[1:], start=1):
            tap[...] = window[n0:n1]  # one strided read; the comparisons below then run on contiguous memory
            beats = _beats(tap, o) if nan_aware else tap > o  # k where tap k beats the maximum so far
            xp.multiply(beats, rose.dtype.type(k), out=rose)
            xp.maximum(o, tap, out=o)  # NaN propagates
            # Taps come in increasing k, so the winner is the last tap at which the maximum rose.
            xp.maximum(best, rose, out=best)
    parallel.split(part, x.shape[0], xpad, min_size=parallel.MIN_COPY)
    if not nan_aware and out.dtype.kind == "f" and bool(xp.isnan(out).any()):
        # some window held a NaN: its output is NaN already; the winning tap needs torch's rule
        return _max_pool2d_fast(x, g, nan_aware=True)
    return out, ("fast", x, _winner_inside(argmax, out, x, g), g)


VALUES_CHUNK = 1 << 18  # values of the row maxima held at a time by one thread (1 MiB of float32)


def _max_pool2d_values(x, g):
    """The maxima alone, for a call whose caller will take no backward and no indices. A maximum
    is separable: first over each window's KH rows, whole padded rows at a time (contiguous
    reads), then over its KW columns of that: (KH - 1) + (KW - 1) passes instead of KH*KW - 1
    over strided windows. NaN propagates through both (xp.maximum). The row maxima are held a
    few images at a time (VALUES_CHUNK values), so they add no more than that to the peak memory."""
    xp = get_array_module(x)
    xpad = _padded(x, g, _lowest(x)) if g.padded_hw != x.shape[2:] else x
    (KH, KW), (OH, OW), (SH, SW), (DH, DW) = g.kernel, g.out_hw, g.stride, g.dilation
    rows = [xpad[:, :, i * DH:i * DH + SH * (OH - 1) + 1:SH] for i in range(KH)]  # (N, C, OH, Wp) each
    out = xp.empty_like(rows[0][..., ::SW][..., :OW])  # laid out like x
    per_image = rows[0][0].size
    step = max(1, VALUES_CHUNK // per_image)

    def running_max(views, o):  # o = the maximum of the views
        if len(views) == 1:
            o[...] = views[0]
            return
        xp.maximum(views[0], views[1], out=o)
        for view in views[2:]:
            xp.maximum(o, view, out=o)

    def part(n0, n1):  # images n0:n1, on one thread (ops.parallel), a few at a time
        for a in range(n0, n1, step):
            b = min(a + step, n1)
            m = rows[0][a:b]
            if KH > 1:
                m = xp.empty_like(m)  # laid out like x
                running_max([r[a:b] for r in rows], m)
            running_max([m[..., j * DW:j * DW + SW * (OW - 1) + 1:SW] for j in range(KW)], out[a:b])
    parallel.split(part, x.shape[0], xpad, min_size=parallel.MIN_COPY)
    return out, ("values", x.shape, None, g)


def _no_winners(cache, what):
    if cache[0] == "values":
        raise ValueError(f"max_pool2d: {what} needs the winner of each window, and this call was made with "
                         "winners=False (for inference); call ops.max_pool2d with winners=True")


def _max_pool2d_backward_fast(dout, cache):
    """Tap k of every window receives dout where k won the window (argmax == k), else 0."""
    xp = get_array_module(dout)
    _, x, argmax, g = cache
    (KH, KW), (OH, OW) = g.kernel, g.out_hw
    if g.padded_hw == x.shape[2:]:  # no padding: laid out like x; when windows tile x, every cell is written below
        tiled = _disjoint(g) and (OH * KH, OW * KW) == g.padded_hw
        dxpad = (xp.empty_like if tiled else xp.zeros_like)(x, dtype=dout.dtype)
    else:
        dxpad = xp.zeros(x.shape[:2] + g.padded_hw, dtype=dout.dtype)

    def part(n0, n1):  # images n0:n1, on one thread (ops.parallel)
        d, best = dout[n0:n1], argmax[n0:n1]
        won = xp.empty_like(best, dtype=bool)  # reused for every tap
        for k, dx_k in enumerate(_windows(dxpad[n0:n1], g)):
            xp.equal(best, k, out=won)
            if _disjoint(g):  # each input cell in one window at most: write, no read-add
                xp.multiply(d, won, out=dx_k)
            else:
                dx_k += d * won
    parallel.split(part, dout.shape[0], dxpad, min_size=parallel.MIN_COPY)
    return _unpadded(dxpad, x.shape, g)


def _disjoint(g):
    """Windows never overlap, so each input cell belongs to one window at most (undilated windows only)."""
    return g.dilation == (1, 1) and g.stride[0] >= g.kernel[0] and g.stride[1] >= g.kernel[1]


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True, ceil_mode=False,
               divisor_override=None, impl=None):
    """Mean over each KH x KW window: x (N, C, H, W) -> out (N, C, OH, OW).

    Zero padding. Each window's sum is divided as torch divides it (see _divisor): by the cells it
    covers in the padded input (count_include_pad, torch's default: KH*KW unless ceil_mode makes it
    hang over the far edge), or in the input alone, or by divisor_override when given.
    """
    xp = get_array_module(x)
    g = _pool_args(x, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    if x.dtype.kind != "f":
        raise TypeError(f"avg_pool2d: expected a floating-point input, got {x.dtype}; convert it first (x.float())")
    if divisor_override is not None and (isinstance(divisor_override, bool) or not isinstance(divisor_override, int)):
        raise TypeError(f"avg_pool2d: divisor_override must be an int, got {divisor_override!r}")
    if divisor_override == 0:
        raise ValueError("avg_pool2d: divisor_override must not be zero")
    divisor = _divisor(x, g, count_include_pad, divisor_override)
    if _choose(impl, "avg_pool2d") == "fast":
        windows = _windows(_padded(x, g, 0) if g.padded_hw != x.shape[2:] else x, g)
        out = xp.empty_like(windows[0])

        def part(n0, n1):  # images n0:n1, on one thread (ops.parallel)
            o = out[n0:n1]
            o[...] = windows[0][n0:n1]
            for window in windows[1:]:
                o += window[n0:n1]
            o /= divisor
        parallel.split(part, x.shape[0], x, min_size=parallel.MIN_COPY)
        return out, ("fast", x, divisor, g)
    out = xp.zeros(x.shape[:2] + g.out_hw, dtype=x.dtype)
    for window in _windows(_padded(x, g, 0), g):
        out += window
    return out / divisor, ("plain", x, divisor, g)


def _divisor(x, g, count_include_pad, divisor_override):
    """What each window's sum is divided by, torch's rule: divisor_override if given; else the
    number of cells the window covers in the padded input (count_include_pad) or in the input
    alone, never counting the overhang past the padding that ceil_mode allows.
    A number when every window counts the same, else an (OH, OW) array."""
    if divisor_override is not None:
        return x.dtype.type(divisor_override)
    (KH, KW), (PH, PW), (H, W) = g.kernel, g.padding, x.shape[2:]
    top, left, rows, cols = (0, 0, H + 2 * PH, W + 2 * PW) if count_include_pad else (PH, PW, H, W)
    if (rows, cols) == g.padded_hw:  # every window lies wholly on counted cells
        return x.dtype.type(KH * KW)
    xp = get_array_module(x)
    counted = xp.zeros((1, 1) + g.padded_hw, dtype=x.dtype)
    counted[:, :, top:top + rows, left:left + cols] = 1
    count = xp.zeros((1, 1) + g.out_hw, dtype=x.dtype)
    for window in _windows(counted, g):
        count += window
    return count[0, 0]


def avg_pool2d_backward(dout, cache):
    """dx: each window's dout / divisor is spread evenly over the cells of the window.

    dx is laid out in memory like x (NCHW, or CNHW after conv2d), so the next backward
    needs no transpose copy. The fast path writes, rather than adds, where windows do not overlap.
    """
    xp = get_array_module(dout)
    impl, x, divisor, g = cache
    share = dout / divisor
    if impl == "plain":
        dxpad = xp.zeros_like(x) if g.padded_hw == x.shape[2:] else xp.zeros(x.shape[:2] + g.padded_hw, x.dtype)
        for dx_k in _windows(dxpad, g):
            dx_k += share  # dx_k is a view: this adds into dxpad
        return _unpadded(dxpad, x.shape, g)
    (KH, KW), (OH, OW) = g.kernel, g.out_hw
    if g.padded_hw == x.shape[2:]:  # no padding: laid out like x; when windows tile x, every cell is written below
        tiled = _disjoint(g) and (OH * KH, OW * KW) == g.padded_hw
        dxpad = (xp.empty_like if tiled else xp.zeros_like)(x)
    else:
        dxpad = xp.zeros(x.shape[:2] + g.padded_hw, x.dtype)

    def part(n0, n1):  # images n0:n1, on one thread (ops.parallel)
        for dx_k in _windows(dxpad[n0:n1], g):
            if _disjoint(g):
                dx_k[...] = share[n0:n1]
            else:
                dx_k += share[n0:n1]
    parallel.split(part, dout.shape[0], dxpad, min_size=parallel.MIN_COPY)
    return _unpadded(dxpad, x.shape, g)


def _argmax(flat):
    """Index of the maximum along the last axis, torch's way: the first one on ties, the last NaN if any."""
    k = flat.argmax(axis=-1)
    if flat.dtype.kind != "f":
        return k
    xp = get_array_module(flat)
    nan = xp.isnan(flat)
    last_nan = flat.shape[-1] - 1 - nan[..., ::-1].argmax(axis=-1)
    return xp.where(nan.any(axis=-1), last_nan, k)


def global_avg_pool2d(x):
    """Mean over the whole H x W plane: x (N, C, H, W) -> out (N, C, 1, 1)."""
    _check_4d(x, "global_avg_pool2d")
    return x.mean(axis=(2, 3), keepdims=True), x.shape


def global_avg_pool2d_backward(dout, cache):
    """dx = dout / (H*W) at every cell. dout (N, C, 1, 1) -> dx (N, C, H, W)."""
    xp = get_array_module(dout)
    N, C, H, W = cache
    return xp.broadcast_to(dout / (H * W), (N, C, H, W)).copy()


def global_max_pool2d(x):
    """Maximum over the whole H x W plane: x (N, C, H, W) -> out (N, C, 1, 1) (NaN propagates)."""
    _check_4d(x, "global_max_pool2d")
    N, C, H, W = x.shape
    flat = x.reshape(N, C, H * W)
    return flat.max(axis=2).reshape(N, C, 1, 1), (x.shape, _argmax(flat))


def global_max_pool2d_backward(dout, cache):
    """dx: all of dout goes to the cell that held the maximum (the first one; the last NaN)."""
    xp = get_array_module(dout)
    (N, C, H, W), argmax = cache
    hit = xp.arange(H * W).reshape(1, 1, H * W) == argmax[:, :, None]
    return (hit * dout.reshape(N, C, 1)).reshape(N, C, H, W).astype(dout.dtype, copy=False)


def _adaptive_edges(size, out_size):
    """torch's bins for adaptive pooling: bin i covers [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out_size, -(-(i + 1) * size // out_size)) for i in range(out_size)]


def _adaptive_output_hw(x, output_size, where):
    """(OH, OW) from an int or a pair, in which None keeps that side of the input (as torch)."""
    _check_4d(x, where)
    size = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if len(size) == 2:
        size = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(size))
    return pair(size, "output_size", where)


def adaptive_avg_pool2d(x, output_size):
    """Mean over each of OH x OW bins laid over the input: x (N, C, H, W) -> (N, C, OH, OW).

    Bins follow torch (see _adaptive_edges); they may overlap when H is not a multiple of OH.
    output_size: an int, or a pair in which None keeps that side of the input.
    """
    xp = get_array_module(x)
    OH, OW = _adaptive_output_hw(x, output_size, "adaptive_avg_pool2d")
    rows, cols = _adaptive_edges(x.shape[2], OH), _adaptive_edges(x.shape[3], OW)
    out = xp.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return out, (x.shape, rows, cols)


def adaptive_avg_pool2d_backward(dout, cache):
    """dx: each bin's dout / (bin area) added to every cell of the bin."""
    shape, rows, cols = cache
    xp = get_array_module(dout)
    dx = xp.zeros(shape, dtype=dout.dtype)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            dx[:, :, r0:r1, c0:c1] += (dout[:, :, i, j] / ((r1 - r0) * (c1 - c0)))[:, :, None, None]
    return dx


def adaptive_max_pool2d(x, output_size):
    """Maximum over each of OH x OW bins (torch's edges, as adaptive_avg_pool2d): (N, C, H, W) -> (N, C, OH, OW).

    The winner of a bin is its first maximum, or its last NaN (NaN propagates, as in torch). The
    cache holds where each winner lies in its flattened H*W plane: torch's return_indices,
    adaptive_max_pool2d_indices(cache).
    """
    xp = get_array_module(x)
    OH, OW = _adaptive_output_hw(x, output_size, "adaptive_max_pool2d")
    N, C, H, W = x.shape
    out = xp.empty((N, C, OH, OW), dtype=x.dtype)
    index = xp.empty((N, C, OH, OW), dtype=xp.int64)
    for i, (r0, r1) in enumerate(_adaptive_edges(H, OH)):
        for j, (c0, c1) in enumerate(_adaptive_edges(W, OW)):
            block = x[:, :, r0:r1, c0:c1].reshape(N, C, -1)
            k = _argmax(block)  # (N, C): the winner's place in the bin, read row by row
            out[:, :, i, j] = xp.take_along_axis(block, k[:, :, None], axis=2)[:, :, 0]
            index[:, :, i, j] = (r0 + k // (c1 - c0)) * W + c0 + k % (c1 - c0)
    return out, (x.shape, index)


def adaptive_max_pool2d_indices(cache):
    """torch's return_indices: (N, C, OH, OW) int64 indices into each flattened H*W plane."""
    return cache[1]


def adaptive_max_pool2d_backward(dout, cache):
    """dx: each bin's dout goes to the cell that won the bin, summed where overlapping bins share a winner."""
    xp = get_array_module(dout)
    (N, C, H, W), index = cache
    dx = xp.zeros((N * C, H * W), dtype=dout.dtype)
    planes, index, dout = xp.arange(N * C), index.reshape(N * C, -1), dout.reshape(N * C, -1)
    for b in range(index.shape[1]):  # one bin at a time: each plane gets one cell, so no index repeats in an add
        dx[planes, index[:, b]] += dout[:, b]
    return dx.reshape(N, C, H, W)


def unpool_output_hw(in_hw, kernel, stride, padding, output_size, where="max_unpool2d"):
    """The output (OH, OW) of max_unpool2d, torch's rule: OH = (H - 1)*SH - 2*PH + KH, or the
    output_size asked for ((OH, OW) or (N, C, OH, OW)) when it lies strictly within a stride of that."""
    default = [(n - 1) * s - 2 * p + k for n, k, s, p in zip(in_hw, kernel, stride, padding)]
    if output_size is None:
        size = default
    else:
        size = list(output_size)[-2:] if len(output_size) == 4 else list(output_size)
        if len(size) != 2:
            raise ValueError(f"{where}: output_size should be a sequence of 2 or 4 elements, got {output_size!r}")
        for d in range(2):
            low, high = default[d] - stride[d], default[d] + stride[d]
            if not low < size[d] < high:
                raise ValueError(f"{where}: invalid output_size {tuple(output_size)} (dim {d} must be between "
                                 f"{low} and {high}, exclusive, for input size {tuple(in_hw)})")
    if min(size) < 1:
        raise ValueError(f"{where}: the output size {tuple(size)} of input size {tuple(in_hw)} is not positive; "
                         "check kernel_size, stride and padding")
    return tuple(int(s) for s in size)


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of max pooling: each value of x goes back where its index says, zero elsewhere.

    x, indices (N, C, H, W) -> out (N, C, OH, OW), OH = (H - 1)*SH - 2*PH + KH (see unpool_output_hw).
    indices: max_pool2d's return_indices (int64), each into the flattened OH*OW plane of its (n, c).
    Where two values share an index, one of them is kept (torch leaves which one undefined too).
    """
    where = "max_unpool2d"
    kernel = pair(kernel_size, "kernel_size", where)
    stride = kernel if stride is None else pair(stride, "stride", where)
    padding = pair(padding, "padding", where, minimum=0)
    _check_4d(x, where)
    if tuple(indices.shape) != tuple(x.shape):
        raise ValueError(f"{where}: expected indices of the input's shape {tuple(x.shape)}, got {tuple(indices.shape)}")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{where}: indices must be integers (int64, as max_pool2d returns them), got {indices.dtype}")
    OH, OW = unpool_output_hw(x.shape[2:], kernel, stride, padding, output_size, where)
    xp = get_array_module(x)
    N, C = x.shape[:2]
    flat = indices.reshape(N * C, -1)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= OH * OW):
        bad = int(flat.min()) if int(flat.min()) < 0 else int(flat.max())
        raise ValueError(f"{where}: found index {bad}, outside the output planes of {OH}x{OW} = {OH * OW} cells; "
                         "pass the indices, kernel_size, stride and padding of the max pooling that made them")
    out = xp.zeros((N * C, OH * OW), dtype=x.dtype)
    out[xp.arange(N * C)[:, None], flat] = x.reshape(N * C, -1)
    return out.reshape(N, C, OH, OW), (x.shape, flat)


def max_unpool2d_backward(dout, cache):
    """dx: each input reads dout back at its index (the forward only moved it).

    dout (N, C, OH, OW) -> dx (N, C, H, W)."""
    xp = get_array_module(dout)
    shape, flat = cache
    planes = dout.reshape(flat.shape[0], -1)
    return planes[xp.arange(flat.shape[0])[:, None], flat].reshape(shape)
