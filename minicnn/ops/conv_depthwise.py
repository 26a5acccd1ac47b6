"""The backward of a depthwise convolution (groups = C = OC: one KH x KW kernel per channel), by
phases, for conv.py's fast path.

Stride S splits the padded input into SH * SW phases, phase (p, q) = xpad[..., p::SH, q::SW], each
on a grid of Hq x Wq cells (Hq = OH + (KH - 1)*DH // SH, Wq likewise). Tap (i, j) reads phase
(i*DH % SH, j*DW % SW) shifted by (a, b) = (i*DH // SH, j*DW // SW):

    out[oh, ow] = sum over taps of w[i, j] * phase[oh + a, ow + b]

Lay each channel's grids end to end (the n images in one row of L = n*Hq*Wq cells) and put dout on
the same grid, zeros at the cells that are no output pixel. Then each tap is one contiguous shift
by off = a*Wq + b, and per channel c:

    dw[c, i, j] = dout_grid[c] . phase[c, off:off + L]          one dot product
    dphase[c, off:off + L] += w[c, i, j] * dout_grid[c]         dx is dphase put back in place

conv.py's general path writes col and dcol, KH*KW times the output each, and runs G products of one
row; this writes neither (measured: the backward of a 3 x 3 depthwise layer twice as fast). The
channels are cut into chunks whose grids fit in the processor's cache, the chunks over threads.
"""

from . import parallel
from ..backend import get_array_module

CHUNK = 1 << 17  # values of one chunk's phases (512 KB in float32): the fastest of 2^14 ... 2^24 on 3 x 3 layers


def _empty(xp, shape, dtype):
    """A new array whose every cell the caller writes before reading it (the tests fill it with NaN)."""
    return xp.empty(shape, dtype=dtype)


def _phase_slices(size, before, out_cells, s):
    """For each phase p along one axis: (grid slice, input slice) of the grid cells u whose input
    pixel u*s + p - before lies inside [0, size), or None when there are none."""
    found = []
    for p in range(s):
        first = max(0, -((p - before) // s))  # smallest u with u*s + p - before >= 0
        last = min(out_cells - 1, (size - 1 + before - p) // s)
        if last < first:
            found.append(None)
            continue
        start = first * s + p - before
        found.append((slice(first, last + 1), slice(start, start + (last - first) * s + 1, s)))
    return found


def depthwise_backward(dout, x, w, has_bias, stride, pads, dilation, input_grad, k):
    """Gradients of a depthwise conv2d. dout (N, C, OH, OW), x (N, C, H, W), w (C, 1, KH, KW) ->
    dx (N, C, H, W) or None (input_grad False), dw (C, 1, KH, KW), db (C,) or None; k threads."""
    xp = get_array_module(dout)
    N, C, H, W = x.shape
    KH, KW = w.shape[2:]
    OH, OW = dout.shape[2:]
    (SH, SW), (DH, DW) = stride, dilation
    Hq, Wq = OH + (KH - 1) * DH // SH, OW + (KW - 1) * DW // SW
    L = N * Hq * Wq
    tail = (KH - 1) * DH // SH * Wq + (KW - 1) * DW // SW  # the largest shift: the row's zero end
    taps = [(i * KW + j, i * DH % SH, j * DW % SW, i * DH // SH * Wq + j * DW // SW)
            for i in range(KH) for j in range(KW)]
    rows, cols = _phase_slices(H, pads[0][0], Hq, SH), _phase_slices(W, pads[1][0], Wq, SW)
    phases = [(p, q, rows[p], cols[q]) for p in range(SH) for q in range(SW) if rows[p] and cols[q]]
    xt, dt = x.transpose(1, 0, 2, 3), dout.transpose(1, 0, 2, 3)  # (C, N, ...), views
    wf = w.reshape(C, KH * KW)
    dw = _empty(xp, (C, KH * KW), dout.dtype)
    dx_t = xp.zeros((C, N, H, W), dtype=dout.dtype) if input_grad else None  # pixels no tap reads stay 0
    step = max(1, CHUNK // (SH * SW * (L + tail)))  # channels per chunk

    def run(c0, c1):  # channels c0:c1, chunk by chunk; every buffer is written here before it is read
        n = min(step, c1 - c0)
        ph = _empty(xp, (SH, SW, n, L + tail), x.dtype)
        grid = _empty(xp, (n, L), dout.dtype)
        dph = _empty(xp, ph.shape, dout.dtype) if input_grad else None
        tmp = _empty(xp, (n, L), dout.dtype)
        for a0 in range(c0, c1, step):
            a1 = min(c1, a0 + step)
            m = a1 - a0
            p_, g_ = ph[:, :, :m], grid[:m]
            p_[...] = 0
            for p, q, (gr, xr), (gc, xc) in phases:
                p_[p, q, :, :L].reshape(m, N, Hq, Wq)[:, :, gr, gc] = xt[a0:a1, :, xr, xc]
            g_[...] = 0
            g_.reshape(m, N, Hq, Wq)[:, :, :OH, :OW] = dt[a0:a1]
            if input_grad:
                d_ = dph[:, :, :m]
                d_[...] = 0
            for t, p, q, off in taps:
                dw[a0:a1, t] = (g_[:, None, :] @ p_[p, q, :, off:off + L, None]).reshape(m)
                if input_grad:
                    xp.multiply(g_, wf[a0:a1, t:t + 1], out=tmp[:m])
                    d_[p, q, :, off:off + L] += tmp[:m]
            if input_grad:
                for p, q, (gr, xr), (gc, xc) in phases:
                    dx_t[a0:a1, :, xr, xc] = d_[p, q, :, :L].reshape(m, N, Hq, Wq)[:, :, gr, gc]
    parallel.split(run, C, x, k=k)
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return (None if dx_t is None else dx_t.transpose(1, 0, 2, 3)), dw.reshape(w.shape), db


def depthwise_forward(x, w, b, OH, OW, stride, pads, dilation, k):
    """out (C, N, OH, OW) of a depthwise conv2d of x (N, C, H, W) with w (C, 1, KH, KW) and b (C,)
    or None, by the same phases: out_grid[c] = sum over taps of w[c, i, j] * phase[c, off:off + L]."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    KH, KW = w.shape[2:]
    (SH, SW), (DH, DW) = stride, dilation
    Hq, Wq = OH + (KH - 1) * DH // SH, OW + (KW - 1) * DW // SW
    L = N * Hq * Wq
    tail = (KH - 1) * DH // SH * Wq + (KW - 1) * DW // SW
    taps = [(i * KW + j, i * DH % SH, j * DW % SW, i * DH // SH * Wq + j * DW // SW)
            for i in range(KH) for j in range(KW)]
    rows, cols = _phase_slices(H, pads[0][0], Hq, SH), _phase_slices(W, pads[1][0], Wq, SW)
    phases = [(p, q, rows[p], cols[q]) for p in range(SH) for q in range(SW) if rows[p] and cols[q]]
    xt = x.transpose(1, 0, 2, 3)
    wf = w.reshape(C, KH * KW)
    out = _empty(xp, (C, N, OH, OW), x.dtype)
    step = max(1, CHUNK // (SH * SW * (L + tail)))

    def run(c0, c1):
        n = min(step, c1 - c0)
        ph = _empty(xp, (SH, SW, n, L + tail), x.dtype)
        acc, tmp = _empty(xp, (n, L), x.dtype), _empty(xp, (n, L), x.dtype)
        for a0 in range(c0, c1, step):
            a1 = min(c1, a0 + step)
            m = a1 - a0
            p_, acc_, tmp_ = ph[:, :, :m], acc[:m], tmp[:m]
            p_[...] = 0
            for p, q, (gr, xr), (gc, xc) in phases:
                p_[p, q, :, :L].reshape(m, N, Hq, Wq)[:, :, gr, gc] = xt[a0:a1, :, xr, xc]
            for t, p, q, off in taps:
                if t == 0:
                    xp.multiply(p_[p, q, :, off:off + L], wf[a0:a1, t:t + 1], out=acc_)
                    continue
                xp.multiply(p_[p, q, :, off:off + L], wf[a0:a1, t:t + 1], out=tmp_)
                acc_ += tmp_
            if b is not None:
                acc_ += b[a0:a1, None]
            out[a0:a1] = acc_.reshape(m, N, Hq, Wq)[:, :, :OH, :OW]
    parallel.split(run, C, x, k=k)
    return out
