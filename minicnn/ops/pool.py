"""Max and average pooling in NCHW, by a few strided slices (one per window offset).

Shapes: x (N, C, H, W) -> out (N, C, OH, OW) with, as in torch (ceil_mode=False),
    OH = floor((H + 2*PH - KH) / SH) + 1
stride defaults to the kernel size; padding may be at most half the kernel.

Two implementations of the same math, selected by IMPL (or impl= per call):
    'plain'  as written first below: padded copies, an argmax array, fresh temporaries.
    'fast'   the same slices, computed in place (xp.maximum(..., out=)), no padded copy when
             there is no padding, the winning tap of each max window kept as a uint8 so the
             backward never reads x again, non-overlapping windows written without
             read-add, and gradients laid out in memory like the input (NCHW or, after
             conv2d, CNHW), so the next backward needs no transpose copy.
"""

from ..backend import get_array_module
from .checks import pair
from .conv import _output_hw, _tap

IMPL = "fast"  # "plain" | "fast": the default for the pooling functions below


def _choose(impl, where):
    impl = IMPL if impl is None else impl
    if impl not in ("plain", "fast"):
        raise ValueError(f"{where}: impl must be 'plain' or 'fast', got {impl!r}")
    return impl


def _pool_args(x, kernel_size, stride, padding, where):
    kernel = pair(kernel_size, "kernel_size", where)
    stride = kernel if stride is None else pair(stride, "stride", where)
    padding = pair(padding, "padding", where, minimum=0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{where}: padding {padding} must be at most half the kernel size {kernel}")
    if x.ndim != 4:
        raise ValueError(f"{where}: expected input of shape (N, C, H, W), got shape {tuple(x.shape)}")
    OH, OW = _output_hw(x.shape, *kernel, stride, padding, (1, 1), where)
    return kernel, stride, padding, (OH, OW)


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


def _padded(x, padding, value):
    xp = get_array_module(x)
    (PH, PW) = padding
    return xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)), constant_values=value)


def max_pool2d(x, kernel_size, stride=None, padding=0, impl=None):
    """Maximum over each KH x KW window: x (N, C, H, W) -> out (N, C, OH, OW).

    Padding is -inf (the lowest integer for integer input), so a padded cell never wins, even
    when every input is negative. The cache keeps which tap won in each window: the first one on
    ties; a NaN wins, and then the last NaN of the window (torch's rule: NaN propagates).
    """
    xp = get_array_module(x)
    (KH, KW), stride, padding, (OH, OW) = _pool_args(x, kernel_size, stride, padding, "max_pool2d")
    if _choose(impl, "max_pool2d") == "fast":
        return _max_pool2d_fast(x, (KH, KW), stride, padding, (OH, OW))
    out = None
    for k, window in enumerate(_windows(_padded(x, padding, _lowest(x)), (KH, KW), stride, (OH, OW))):
        if out is None:
            out = window.copy()
            argmax = xp.zeros(out.shape, dtype=xp.int32)
        else:
            better = _beats(window, out)
            out = xp.where(better, window, out)
            argmax = xp.where(better, k, argmax)
    return out, ("plain", x.shape, argmax, (KH, KW), stride, padding)


def max_pool2d_backward(dout, cache):
    """dx: each window's dout goes to the input cell that won it, summed where windows overlap."""
    if cache[0] == "fast":
        return _max_pool2d_backward_fast(dout, cache)
    xp = get_array_module(dout)
    _, (N, C, H, W), argmax, (KH, KW), stride, (PH, PW) = cache
    OH, OW = dout.shape[2:]
    dxpad = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=dout.dtype)
    for k, dx_k in enumerate(_windows(dxpad, (KH, KW), stride, (OH, OW))):
        dx_k += xp.where(argmax == k, dout, 0)  # dx_k is a view: this adds into dxpad
    return dxpad[:, :, PH:PH + H, PW:PW + W]


def _windows(xpad, kernel, stride, out_hw):
    """The KH*KW strided views of xpad, one per tap: window k holds tap k of every output pixel.

    Views, not copies: reading one reads xpad, and adding into one adds into xpad.
    """
    KH, KW = kernel
    return [xpad[(Ellipsis, *_tap(k // KW, k % KW, *out_hw, stride, (1, 1)))] for k in range(KH * KW)]


def _max_pool2d_fast(x, kernel, stride, padding, out_hw, nan_aware=False):
    """A running maximum, updated in place tap by tap, and the winning tap of each window
    kept as a small integer (uint8 for up to 256 taps): the backward then reads only that,
    not x again. A later tap wins only when strictly greater: the first one wins ties."""
    xp = get_array_module(x)
    xpad = _padded(x, padding, _lowest(x)) if padding != (0, 0) else x
    windows = _windows(xpad, kernel, stride, out_hw)
    # empty_like/copy(order="K") lay their arrays out like x (NCHW, or CNHW after conv2d).
    out = windows[0].copy(order="K")
    argmax = xp.zeros_like(out, dtype=xp.uint8 if len(windows) <= 256 else xp.int32)
    tap, rose = xp.empty_like(out), xp.empty_like(argmax)  # reused for every tap
    for k, window in enumerate(windows[1:], start=1):
        tap[...] = window  # one strided read; the comparisons below then run on contiguous memory
        beats = _beats(tap, out) if nan_aware else tap > out  # k where tap k beats the maximum so far
        xp.multiply(beats, rose.dtype.type(k), out=rose)
        xp.maximum(out, tap, out=out)  # NaN propagates
        # Taps come in increasing k, so the winner is the last tap at which the maximum rose.
        xp.maximum(argmax, rose, out=argmax)
    if not nan_aware and out.dtype.kind == "f" and bool(xp.isnan(out).any()):
        # some window held a NaN: its output is NaN already; the winning tap needs torch's rule
        return _max_pool2d_fast(x, kernel, stride, padding, out_hw, nan_aware=True)
    return out, ("fast", x, argmax, kernel, stride, padding)


def _max_pool2d_backward_fast(dout, cache):
    """Tap k of every window receives dout where k won the window (argmax == k), else 0."""
    xp = get_array_module(dout)
    _, x, argmax, kernel, stride, (PH, PW) = cache
    N, C, H, W = x.shape
    OH, OW = dout.shape[2:]
    tiled = _disjoint(kernel, stride) and (OH * kernel[0], OW * kernel[1]) == (H + 2 * PH, W + 2 * PW)
    if (PH, PW) == (0, 0):  # laid out like x; when the windows tile x, every cell is written below
        dxpad = (xp.empty_like if tiled else xp.zeros_like)(x, dtype=dout.dtype)
    else:
        dxpad = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=dout.dtype)
    won = xp.empty_like(argmax, dtype=bool)  # reused for every tap
    for k, dx_k in enumerate(_windows(dxpad, kernel, stride, (OH, OW))):
        xp.equal(argmax, k, out=won)
        if _disjoint(kernel, stride):  # each input cell in one window at most: write, no read-add
            xp.multiply(dout, won, out=dx_k)
        else:
            dx_k += dout * won
    return dxpad[:, :, PH:PH + H, PW:PW + W]


def _disjoint(kernel, stride):
    """Windows never overlap, so each input cell belongs to one window at most."""
    return stride[0] >= kernel[0] and stride[1] >= kernel[1]


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True, impl=None):
    """Mean over each KH x KW window: x (N, C, H, W) -> out (N, C, OH, OW).

    Zero padding. With count_include_pad (torch's default) every window divides by KH*KW;
    without, by the number of real (unpadded) cells it covers.
    """
    xp = get_array_module(x)
    (KH, KW), stride, padding, (OH, OW) = _pool_args(x, kernel_size, stride, padding, "avg_pool2d")
    divisor = _divisor(x, (KH, KW), stride, padding, (OH, OW), count_include_pad)
    if _choose(impl, "avg_pool2d") == "fast":
        windows = _windows(_padded(x, padding, 0) if padding != (0, 0) else x, (KH, KW), stride, (OH, OW))
        out = windows[0] + windows[1] if len(windows) > 1 else windows[0].copy()
        for window in windows[2:]:
            out += window
        out /= divisor
        return out, ("fast", x, divisor, (KH, KW), stride, padding)
    out = xp.zeros((x.shape[0], x.shape[1], OH, OW), dtype=x.dtype)
    for window in _windows(_padded(x, padding, 0), (KH, KW), stride, (OH, OW)):
        out += window
    return out / divisor, ("plain", x, divisor, (KH, KW), stride, padding)


def _divisor(x, kernel, stride, padding, out_hw, count_include_pad):
    """KH*KW, or an (OH, OW) array counting the real cells in each window."""
    KH, KW = kernel
    if count_include_pad or padding == (0, 0):
        return x.dtype.type(KH * KW)
    xp = get_array_module(x)
    ones = _padded(xp.ones((1, 1) + x.shape[2:], dtype=x.dtype), padding, 0)
    count = xp.zeros((1, 1) + tuple(out_hw), dtype=x.dtype)
    for window in _windows(ones, kernel, stride, out_hw):
        count += window
    return count[0, 0]


def avg_pool2d_backward(dout, cache):
    """dx: each window's dout / divisor is spread evenly over the cells of the window.

    dx is laid out in memory like x (NCHW, or CNHW after conv2d), so the next backward
    needs no transpose copy. The fast path writes, rather than adds, where windows do not overlap.
    """
    xp = get_array_module(dout)
    impl, x, divisor, kernel, stride, (PH, PW) = cache
    N, C, H, W = x.shape
    share = dout / divisor
    dxpad = xp.zeros_like(x) if (PH, PW) == (0, 0) else xp.zeros((N, C, H + 2 * PH, W + 2 * PW), x.dtype)
    for dx_k in _windows(dxpad, kernel, stride, dout.shape[2:]):
        if impl == "fast" and _disjoint(kernel, stride):
            dx_k[...] = share
        else:
            dx_k += share  # dx_k is a view: this adds into dxpad
    return dxpad[:, :, PH:PH + H, PW:PW + W]


def _check_4d(x, where):
    if x.ndim != 4:
        raise ValueError(f"{where}: expected input of shape (N, C, H, W), got shape {tuple(x.shape)}")


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
    """Maximum over the whole H x W plane: x (N, C, H, W) -> out (N, C, 1, 1)."""
    _check_4d(x, "global_max_pool2d")
    N, C, H, W = x.shape
    flat = x.reshape(N, C, H * W)
    argmax = flat.argmax(axis=2)
    return flat.max(axis=2).reshape(N, C, 1, 1), (x.shape, argmax)


def global_max_pool2d_backward(dout, cache):
    """dx: all of dout goes to the (first) cell that held the maximum."""
    xp = get_array_module(dout)
    (N, C, H, W), argmax = cache
    hit = xp.arange(H * W).reshape(1, 1, H * W) == argmax[:, :, None]
    return (hit * dout.reshape(N, C, 1)).reshape(N, C, H, W).astype(dout.dtype, copy=False)


def _adaptive_edges(size, out_size):
    """torch's bins for adaptive pooling: bin i covers [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out_size, -(-(i + 1) * size // out_size)) for i in range(out_size)]


def adaptive_avg_pool2d(x, output_size):
    """Mean over each of OH x OW bins laid over the input: x (N, C, H, W) -> (N, C, OH, OW).

    Bins follow torch (see _adaptive_edges); they may overlap when H is not a multiple of OH.
    """
    _check_4d(x, "adaptive_avg_pool2d")
    xp = get_array_module(x)
    OH, OW = pair(output_size, "output_size", "adaptive_avg_pool2d")
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
