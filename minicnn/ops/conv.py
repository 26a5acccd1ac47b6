"""2-D convolution in NCHW: im2col + one matrix product, and the plain loops beside it.

Symbols used throughout:
    N batch, C input channels, H, W input size, OC output channels,
    KH, KW kernel size, SH, SW stride, PH, PW padding, DH, DW dilation,
    OH, OW output size:  OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1

The im2col buffer is laid out as (C*KH*KW, N*OH*OW): row (c, i, j) holds, for every
output pixel of every image, the input value that kernel tap (i, j) of channel c sees
there. The convolution is then a single product  W (OC, C*KH*KW) @ col.

Two implementations of the same math, selected by IMPL (or impl= per call):
    'plain'  im2col / col2im as written above: a zero-padded copy of x, fresh buffers every call.
    'fast'   the same slices, but no padded copy (each tap copies only the pixels that fall
             inside the image; the rest of col stays zero), and, when the caller passes a
             Workspace (Conv2d does), col and the backward's temporaries are reused from
             call to call instead of being allocated (and page-faulted in) every step.
"""

import functools

from ..backend import get_array_module
from .checks import check_same_dtype, pair

IMPL = "fast"  # "plain" | "fast": the default for conv2d / conv2d_backward


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    """Output length along one axis: floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _output_hw(x_shape, KH, KW, stride, padding, dilation, where):
    """(OH, OW), or a clear error when the (dilated) kernel does not fit the padded input."""
    H, W = x_shape[2], x_shape[3]
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    OH = conv_output_size(H, KH, SH, PH, DH)
    OW = conv_output_size(W, KW, SW, PW, DW)
    if OH < 1 or OW < 1:
        raise ValueError(
            f"{where}: kernel {(KH, KW)} (dilation {dilation}) is larger than the padded input "
            f"{(H + 2 * PH, W + 2 * PW)} (input {(H, W)}, padding {padding}); "
            "use a smaller kernel, more padding or a larger input"
        )
    return OH, OW


def _tap(i, j, OH, OW, stride, dilation):
    """The strided slices that pick, for kernel tap (i, j), its input pixel under every output pixel."""
    (SH, SW), (DH, DW) = stride, dilation
    return (slice(i * DH, i * DH + SH * (OH - 1) + 1, SH), slice(j * DW, j * DW + SW * (OW - 1) + 1, SW))


def im2col(x, KH, KW, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Unfold x (N, C, H, W) into col (C*KH*KW, N*OH*OW).

    One strided-slice copy per kernel tap (KH*KW copies), never a loop over pixels.
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = _output_hw(x.shape, KH, KW, stride, padding, dilation, "im2col")
    (PH, PW) = padding
    # Channels first, so each tap's slice is one block of the buffer: (C, N, H + 2PH, W + 2PW).
    xt = xp.pad(x.transpose(1, 0, 2, 3), ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    col = xp.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            rows, cols = _tap(i, j, OH, OW, stride, dilation)
            col[:, i, j] = xt[:, :, rows, cols]
    return col.reshape(C * KH * KW, N * OH * OW)


def col2im(col, x_shape, KH, KW, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Fold col (C*KH*KW, N*OH*OW) back into (N, C, H, W), adding overlapping taps.

    The adjoint of im2col: each tap's slice is added where im2col copied it from.
    """
    xp = get_array_module(col)
    N, C, H, W = x_shape
    OH, OW = _output_hw(x_shape, KH, KW, stride, padding, dilation, "col2im")
    (PH, PW) = padding
    col = col.reshape(C, KH, KW, N, OH, OW)
    xt = xp.zeros((C, N, H + 2 * PH, W + 2 * PW), dtype=col.dtype)
    for i in range(KH):
        for j in range(KW):
            rows, cols = _tap(i, j, OH, OW, stride, dilation)
            xt[:, :, rows, cols] += col[:, i, j]
    return xt[:, :, PH:PH + H, PW:PW + W].transpose(1, 0, 2, 3)


def _check_conv_args(x, w, b, stride, padding, dilation, where):
    stride = pair(stride, "stride", where)
    padding = pair(padding, "padding", where, minimum=0)
    dilation = pair(dilation, "dilation", where)
    if x.ndim != 4:
        raise ValueError(f"{where}: expected input of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if w.ndim != 4:
        raise ValueError(f"{where}: expected weight of shape (OC, C, KH, KW), got shape {tuple(w.shape)}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"{where}: weight {tuple(w.shape)} expects {w.shape[1]} input channels, "
            f"got input of shape {tuple(x.shape)} with {x.shape[1]}"
        )
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"{where}: expected bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
    check_same_dtype(where, x, w, b)
    return stride, padding, dilation


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, impl=None, workspace=None):
    """Convolve x (N, C, H, W) with w (OC, C, KH, KW), add b (OC,): out (N, OC, OH, OW).

    out = W (OC, C*KH*KW) @ im2col(x) (C*KH*KW, N*OH*OW), reshaped back to NCHW.
    impl: 'plain' or 'fast' (default: IMPL). workspace: a Workspace whose buffers the fast
    path may reuse (see Workspace: col is leased to the returned cache until it is dropped).
    """
    stride, padding, dilation = _check_conv_args(x, w, b, stride, padding, dilation, "conv2d")
    impl = _choose(impl)
    N = x.shape[0]
    OC, C, KH, KW = w.shape
    OH, OW = _output_hw(x.shape, KH, KW, stride, padding, dilation, "conv2d")
    lease = None
    if impl == "plain":
        col = im2col(x, KH, KW, stride, padding, dilation)
    else:
        # Which cells of col stay zero (the padding) depends on the geometry and on H, W: all in the key.
        shape = (C, KH, KW, N, OH, OW)
        if workspace is not None:
            lease = workspace.lease("col", (stride, padding, dilation, x.shape[2:]), shape, x, zero=True)
        col = lease.array if lease is not None else get_array_module(x).zeros(shape, dtype=x.dtype)
        _im2col_into(col, x, stride, padding, dilation)
        col = col.reshape(C * KH * KW, N * OH * OW)
    out = (w.reshape(OC, -1) @ col).reshape(OC, N, OH, OW)
    if b is not None:
        out += b.reshape(OC, 1, 1, 1)
    cache = (x.shape, w, b is not None, col, stride, padding, dilation, impl, workspace, lease)
    return out.transpose(1, 0, 2, 3), cache


def conv2d_backward(dout, cache, input_grad=True):
    """Gradients of conv2d. dout (N, OC, OH, OW) -> dx (N, C, H, W), dw (OC, C, KH, KW), db (OC,) or None.

    With out = Wf @ col:  dWf = dout_f @ col^T,  dcol = Wf^T @ dout_f,  dx = col2im(dcol),
    db = dout summed over N, OH, OW.
    input_grad=False skips dx (None): a network's first layer has no use for it, and torch
    does not compute it either (its input does not require a gradient).
    """
    x_shape, w, has_bias, col, stride, padding, dilation, impl, workspace, _ = cache
    OC, C, KH, KW = w.shape
    if impl == "plain":
        dout_f = dout.transpose(1, 0, 2, 3).reshape(OC, -1)  # (OC, N*OH*OW)
        dw = (dout_f @ col.T).reshape(w.shape)
        db = dout_f.sum(axis=1) if has_bias else None
        if not input_grad:
            return None, dw, db
        dx = col2im(w.reshape(OC, -1).T @ dout_f, x_shape, KH, KW, stride, padding, dilation)
        return dx, dw, db
    xp = get_array_module(dout)
    dout_t = dout.transpose(1, 0, 2, 3)  # (OC, N, OH, OW): free when dout is laid out like conv2d's out
    if not dout_t.flags.c_contiguous:  # else one copy, into a reused buffer
        dout_t = _buffer(workspace, "dout", dout_t.shape, dout)
        dout_t[...] = dout.transpose(1, 0, 2, 3)
    dout_f = dout_t.reshape(OC, -1)
    dw = (dout_f @ col.T).reshape(w.shape)
    db = dout_f.sum(axis=1) if has_bias else None
    if not input_grad:
        return None, dw, db
    dcol = _buffer(workspace, "dcol", col.shape, dout)
    xp.matmul(w.reshape(OC, -1).T, dout_f, out=dcol)
    N, C, H, W = x_shape
    dx_t = xp.zeros((C, N, H, W), dtype=dout.dtype)  # fresh: the caller may keep dx
    _col2im_add(dx_t, dcol.reshape(C, KH, KW, N, *dout.shape[2:]), stride, padding, dilation)
    return dx_t.transpose(1, 0, 2, 3), dw, db


# -- the fast path ----------------------------------------------------------------------


def _choose(impl):
    impl = IMPL if impl is None else impl
    if impl not in ("plain", "fast"):
        raise ValueError(f"conv2d: impl must be 'plain' or 'fast', got {impl!r}")
    return impl


class Workspace:
    """Arrays one owner (a layer) reuses across calls, so that a training step does not allocate
    (and page-fault in) a fresh im2col buffer every time.

    What decides a buffer's contents is its key: shape, dtype, array module and, for col, the
    convolution's geometry and the input's H and W (they decide which cells are padding and stay
    zero). A buffer is reused only for the same key, and col only when no live cache holds it:
    `lease` hands it out wrapped in a _Lease, and it comes back to the workspace when the last
    cache that holds the lease is dropped (after backward, or when its graph is discarded). Two
    forwards before one backward, or a layer used twice, therefore get two buffers.
    """

    def __init__(self):
        self._buffers = {}  # role -> (key, array): temporaries used only inside one call
        self._free = {}     # role -> (key, array): a leased buffer that came back

    def get(self, role, shape, like, zero=False):
        """A temporary for role, shaped shape with like's dtype and array module; for use within
        one call only (nothing may keep it after that call returns)."""
        xp = get_array_module(like)
        key = (tuple(shape), like.dtype, xp.__name__)
        held = self._buffers.get(role)
        if held is None or held[0] != key:
            held = (key, (xp.zeros if zero else xp.empty)(shape, dtype=like.dtype))
            self._buffers[role] = held
        return held[1]

    def lease(self, role, key, shape, like, zero=False):
        """A _Lease on a buffer for role: the one that came back under the same key, else a new one."""
        xp = get_array_module(like)
        key = (tuple(shape), like.dtype, xp.__name__) + tuple(key)
        held = self._free.pop(role, None)
        array = held[1] if held is not None and held[0] == key else (xp.zeros if zero else xp.empty)(shape, like.dtype)
        return _Lease(self, role, key, array)

    def nbytes(self):
        """Bytes held while no call is running (for the memory checks)."""
        return sum(a.nbytes for _, a in list(self._buffers.values()) + list(self._free.values()))

    def clear(self):
        self._buffers.clear()
        self._free.clear()

    def __deepcopy__(self, memo):
        return Workspace()  # a copy of a layer starts with its own, empty workspace


class _Lease:
    """A workspace buffer held by one cache; returned to the workspace when that cache is dropped."""

    __slots__ = ("workspace", "role", "key", "array")

    def __init__(self, workspace, role, key, array):
        self.workspace, self.role, self.key, self.array = workspace, role, key, array

    def __del__(self):
        self.workspace._free[self.role] = (self.key, self.array)


def _buffer(workspace, role, shape, like, zero=False):
    """A temporary from the workspace, or a fresh one when there is none."""
    if workspace is not None:
        return workspace.get(role, shape, like, zero)
    xp = get_array_module(like)
    return (xp.zeros if zero else xp.empty)(shape, dtype=like.dtype)


def _inside(k, size, out_size, s, p, d):
    """For kernel offset k along one axis: (input slice, output slice) of the output pixels
    o whose input o*s + k*d - p falls inside [0, size), i.e. not in the padding."""
    first = max(0, -((k * d - p) // s))  # smallest o with o*s + k*d - p >= 0
    last = min(out_size - 1, (size - 1 + p - k * d) // s)
    if last < first:
        return None
    start = first * s + k * d - p
    return slice(start, start + (last - first) * s + 1, s), slice(first, last + 1)


@functools.lru_cache(maxsize=256)
def _taps_inside(HW, out_hw, KH, KW, stride, padding, dilation):
    """(i, j, input slices, output slices) for every kernel tap that sees any real pixel of an
    H x W image. Computed once per geometry: a training loop asks for the same ones every step."""
    (H, W), taps = HW, []
    for i in range(KH):
        rows = _inside(i, H, out_hw[0], stride[0], padding[0], dilation[0])
        for j in range(KW):
            cols = _inside(j, W, out_hw[1], stride[1], padding[1], dilation[1])
            if rows is not None and cols is not None:
                taps.append((i, j, (rows[0], cols[0]), (rows[1], cols[1])))
    return tuple(taps)


def _im2col_into(col, x, stride, padding, dilation):
    """Fill col (C, KH, KW, N, OH, OW) from x (N, C, H, W) without padding x: each tap copies
    only the pixels inside the image; the padded positions are never written (col came zeroed,
    and a reused col keeps its zeros, since for one shape they are always the same positions)."""
    C, KH, KW, N, OH, OW = col.shape
    xt = x.transpose(1, 0, 2, 3)  # (C, N, H, W), a view
    for i, j, (rows, cols), (orows, ocols) in _taps_inside(x.shape[2:], (OH, OW), KH, KW, stride, padding, dilation):
        col[:, i, j, :, orows, ocols] = xt[:, :, rows, cols]


def _col2im_add(dx_t, dcol, stride, padding, dilation):
    """The adjoint of _im2col_into: add each tap of dcol (C, KH, KW, N, OH, OW) into the
    pixels of dx_t (C, N, H, W) it was copied from; the padding's share is dropped."""
    C, KH, KW, N, OH, OW = dcol.shape
    for i, j, (rows, cols), (orows, ocols) in _taps_inside(dx_t.shape[2:], (OH, OW), KH, KW, stride, padding, dilation):
        dx_t[:, :, rows, cols] += dcol[:, i, j, :, orows, ocols]


def conv2d_naive(x, w, b=None, stride=1, padding=0, dilation=1):
    """conv2d by the definition, one output value at a time. Same shapes as conv2d.

    out[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, p*SH + i*DH, q*SW + j*DW]
    Kept as the teaching reference and the benchmark baseline: it is very slow.
    """
    xp = get_array_module(x)
    (SH, SW), (PH, PW), (DH, DW) = _check_conv_args(x, w, b, stride, padding, dilation, "conv2d_naive")
    N = x.shape[0]
    OC, C, KH, KW = w.shape
    OH, OW = _output_hw(x.shape, KH, KW, (SH, SW), (PH, PW), (DH, DW), "conv2d_naive")
    xpad = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    out = xp.zeros((N, OC, OH, OW), dtype=x.dtype)
    for n in range(N):
        for o in range(OC):
            for p in range(OH):
                for q in range(OW):
                    window = xpad[n, :, p * SH:p * SH + DH * (KH - 1) + 1:DH, q * SW:q * SW + DW * (KW - 1) + 1:DW]
                    out[n, o, p, q] = (window * w[o]).sum() + (b[o] if b is not None else 0)
    return out, (x, w, b is not None, (SH, SW), (PH, PW), (DH, DW))


def conv2d_naive_backward(dout, cache):
    """Gradients of conv2d_naive by the same loops: each output value sends dout back to
    the window it read (dx) and to the weights it used (dw)."""
    x, w, has_bias, (SH, SW), (PH, PW), (DH, DW) = cache
    xp = get_array_module(x)
    N, OC, OH, OW = dout.shape
    _, C, KH, KW = w.shape
    xpad = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    dxpad = xp.zeros_like(xpad)
    dw = xp.zeros_like(w)
    for n in range(N):
        for o in range(OC):
            for p in range(OH):
                for q in range(OW):
                    rows = slice(p * SH, p * SH + DH * (KH - 1) + 1, DH)
                    cols = slice(q * SW, q * SW + DW * (KW - 1) + 1, DW)
                    dw[o] += dout[n, o, p, q] * xpad[n, :, rows, cols]
                    dxpad[n, :, rows, cols] += dout[n, o, p, q] * w[o]
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dxpad[:, :, PH:PH + x.shape[2], PW:PW + x.shape[3]], dw, db
