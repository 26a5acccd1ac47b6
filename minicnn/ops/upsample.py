"""Resizing NCHW images by interpolation, as torch.nn.functional.interpolate: 'nearest' and 'bilinear'.

Shapes: x (N, C, H, W) -> out (N, C, OH, OW), with OH = size[0], or floor(H * scale_factor[0]).

Both modes are separable: each output row is a weighted sum of one ('nearest') or two
('bilinear') input rows, then each output column of one or two input columns. So the forward
is two gathers along an axis (rows, then columns), and the backward undoes them in reverse
order: each input row receives the weighted sum of the output rows that read it. (Gathers, not
products with an (OH, H) interpolation matrix: its zeros times one NaN or inf would make a whole
row NaN, where torch's output has NaN only next to it.)

Where output pixel o reads from, along one axis of input length n and output length m
(torch's rules, with s = 1 / scale_factor when a scale factor is given, else n / m):
    nearest:                      src = min(floor(o * s), n - 1)   (in float32, as torch; not 'nearest-exact')
    bilinear, align_corners=False: src = max((o + 0.5) * s - 0.5, 0)   (half-pixel centres)
    bilinear, align_corners=True:  src = o * (n - 1) / (m - 1)          (the corner pixels line up)
bilinear reads i0 = floor(src) and i1 = min(i0 + 1, n - 1) with weights 1 - (src - i0) and src - i0.
An axis whose length is kept (m == n) is read as it is, in both modes, and a doubled one (m == 2n)
as src = o // 2 in 'nearest', even when the scale factor given says otherwise (torch's special
cases: scale_factor=1.2 on 3 pixels gives those 3 pixels unchanged).
"""

import math
import numbers

import numpy as np

from ..backend import get_array_module

MODES = ("nearest", "bilinear")


def _size_args(shape, size, scale_factor, recompute_scale_factor):
    """torch's rules: (OH, OW) and the scales the source rule uses ((None, None): n / m)."""
    where = "interpolate"
    if size is not None and scale_factor is not None:
        raise ValueError(f"{where}: only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError(f"{where}: either size or scale_factor should be defined")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError(f"{where}: recompute_scale_factor is not meaningful with an explicit size")
        sizes = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        if len(sizes) != 2:
            raise ValueError(f"{where}: input of spatial size {list(shape[2:])} needs an output size of 2 numbers "
                             f"(OH, OW), got {size!r}")
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in sizes):
            raise TypeError(f"{where}: size must be an int or a pair of ints, got {size!r}")
        out_hw, scales = tuple(int(s) for s in sizes), (None, None)
    else:
        scales = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor, scale_factor)
        if len(scales) != 2:
            raise ValueError(f"{where}: input of spatial size {list(shape[2:])} needs a scale_factor of 2 numbers, "
                             f"got {scale_factor!r}")
        if not all(isinstance(s, numbers.Real) and not isinstance(s, bool) for s in scales):
            raise TypeError(f"{where}: scale_factor must be a number or a pair of numbers, got {scale_factor!r}")
        scales = tuple(float(s) for s in scales)
        out_hw = tuple(math.floor(n * s) for n, s in zip(shape[2:], scales))
        if recompute_scale_factor:  # the rule then uses n / m of the rounded size, not the factor given
            scales = (None, None)
    if min(out_hw) < 1:
        raise ValueError(f"{where}: input and output sizes should be greater than 0, got input {tuple(shape[2:])} "
                         f"and output {out_hw}")
    return out_hw, scales


def nearest_source(n, m, scale=None):
    """The input index each of m outputs reads, torch's 'nearest' rule (float32 arithmetic, as torch):
    the identity when the size is kept, o // 2 when it doubles, else min(floor(o * s), n - 1)."""
    if m == n:
        return np.arange(m)
    if m == 2 * n:
        return np.arange(m) // 2
    s = np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(n) / np.float32(m)
    return np.minimum(np.floor(np.arange(m, dtype=np.float32) * s).astype(np.int64), n - 1)


def linear_source(n, m, align_corners, scale=None, dtype=np.float64):
    """The two input indices (i0, i1) each of m outputs reads and their weights (w0, w1), torch's
    'bilinear' rule along one axis, computed in `dtype` (the input's, as torch does). A kept size
    is read as it is (torch's special case, even when a scale factor says otherwise)."""
    one = np.dtype(dtype).type(1)
    if m == n:
        src = np.arange(m, dtype=dtype)
    elif align_corners:
        s = one * (n - 1) / (m - 1) if m > 1 else one * 0
        src = s * np.arange(m, dtype=dtype)
    else:
        s = one * (1.0 / scale) if scale is not None and scale > 0 else one * n / m
        src = np.maximum(s * (np.arange(m, dtype=dtype) + one / 2) - one / 2, 0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
    w1 = np.clip(src - i0, 0, 1).astype(dtype)
    return (i0, np.minimum(i0 + 1, n - 1)), (one - w1, w1)


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None):
    """Resize x (N, C, H, W) -> out (N, C, OH, OW) by 'nearest' or 'bilinear' interpolation.

    Give size ((OH, OW) or one int) or scale_factor (OH = floor(H * scale)), as torch.
    align_corners (bilinear only; None means False) lines up the corner pixels instead of the pixel
    centres. The cache keeps, per axis, the indices each output reads and their weights.
    """
    where = "interpolate"
    if mode not in MODES:
        raise NotImplementedError(f"{where}: mode {mode!r} is not implemented; minicnn has {MODES}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{where}: align_corners can only be set with the interpolating modes (here 'bilinear')")
    if x.ndim != 4:
        raise NotImplementedError(f"{where}: expected input of shape (N, C, H, W), got shape {tuple(x.shape)} "
                                  "(torch would interpolate 3-D input (N, C, L) along L; minicnn does 4-D only)")
    if mode == "bilinear" and x.dtype.kind != "f":
        raise TypeError(f"{where}: bilinear mode needs a floating-point input, got {x.dtype}; convert it first")
    out_hw, scales = _size_args(x.shape, size, scale_factor, recompute_scale_factor)
    taps = []  # per axis: [(indices, weights or None), ...], small NumPy arrays
    for n, m, scale in zip(x.shape[2:], out_hw, scales):
        if mode == "nearest":
            taps.append([(nearest_source(n, m, scale), None)])
        else:
            taps.append(list(zip(*linear_source(n, m, bool(align_corners), scale, x.dtype))))
    rows = _read(x, taps[0], axis=2)
    # (mode, align_corners, scales): what minicnn.onnx's export writes as Resize's settings
    return _read(rows, taps[1], axis=3), (x.shape, taps, (mode, bool(align_corners), scales))


def interpolate_backward(dout, cache):
    """dx: the columns step undone, then the rows step; each input row or column receives the
    weighted sum of the outputs that read it. dout (N, C, OH, OW) -> dx (N, C, H, W)."""
    shape, (rows, cols), _ = cache
    d = _read_backward(dout, cols, shape[3], axis=3)
    return _read_backward(d, rows, shape[2], axis=2)


def _weights(w, axis, ndim):
    """w (M,) shaped to broadcast along `axis` of an ndim array."""
    return w.reshape((-1,) + (1,) * (ndim - 1 - axis))


def _read(x, taps, axis):
    """out[.., o, ..] = sum over taps (index, weight) of weight[o] * x[.., index[o], ..] along axis."""
    xp = get_array_module(x)
    out = None
    for index, weight in taps:
        part = xp.take(x, xp.asarray(index), axis=axis)
        part = part if weight is None else part * _weights(xp.asarray(weight), axis, x.ndim)
        out = part if out is None else out + part
    return out


def _read_backward(dout, taps, n, axis):
    """The adjoint of _read: dx[.., i, ..] = sum, over the taps and the o with index[o] == i,
    of weight[o] * dout[.., o, ..].

    An index never decreases along the outputs, so the outputs that read one input form a run
    (of about OH / H outputs when upsampling). The t-th output of every run is added in one go,
    for t = 0, 1, ...: within one add no input repeats, so a plain indexed += is exact (no scatter-add needed).
    """
    xp = get_array_module(dout)
    shape = list(dout.shape)
    shape[axis] = n
    dx = xp.zeros(shape, dtype=dout.dtype)
    at = (slice(None),) * axis
    for index, weight in taps:
        d = dout if weight is None else dout * _weights(xp.asarray(weight), axis, dout.ndim)
        starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])  # where each run begins
        rank = np.arange(index.size) - np.repeat(starts, np.diff(np.r_[starts, index.size]))  # place in its run
        for t in range(int(rank.max()) + 1):
            outs = np.flatnonzero(rank == t)
            dx[at + (xp.asarray(index[outs]),)] += xp.take(d, xp.asarray(outs), axis=axis)
    return dx
