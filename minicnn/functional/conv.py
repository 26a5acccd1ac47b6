"""2-D convolution in NCHW: im2col + one matrix product, and the plain loops beside it.

Symbols used throughout:
    N batch, C input channels, H, W input size, OC output channels,
    KH, KW kernel size, SH, SW stride, PH, PW padding, DH, DW dilation,
    OH, OW output size:  OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1

The im2col buffer is laid out as (C*KH*KW, N*OH*OW): row (c, i, j) holds, for every
output pixel of every image, the input value that kernel tap (i, j) of channel c sees
there. The convolution is then a single product  W (OC, C*KH*KW) @ col.
"""

from ..backend import get_array_module


def pair(value, name, where, minimum=1):
    """(value, value) for an int, the tuple for a pair; checks both are ints >= minimum."""
    pair_ = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else None
    if pair_ is None or len(pair_) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair_):
        raise TypeError(f"{where}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair_) < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return pair_


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
    return stride, padding, dilation


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    """Convolve x (N, C, H, W) with w (OC, C, KH, KW), add b (OC,): out (N, OC, OH, OW).

    out = W (OC, C*KH*KW) @ im2col(x) (C*KH*KW, N*OH*OW), reshaped back to NCHW.
    """
    stride, padding, dilation = _check_conv_args(x, w, b, stride, padding, dilation, "conv2d")
    N = x.shape[0]
    OC, C, KH, KW = w.shape
    OH, OW = _output_hw(x.shape, KH, KW, stride, padding, dilation, "conv2d")
    col = im2col(x, KH, KW, stride, padding, dilation)
    out = (w.reshape(OC, -1) @ col).reshape(OC, N, OH, OW)
    if b is not None:
        out += b.reshape(OC, 1, 1, 1)
    cache = (x.shape, w, b is not None, col, stride, padding, dilation)
    return out.transpose(1, 0, 2, 3), cache


def conv2d_backward(dout, cache):
    """Gradients of conv2d. dout (N, OC, OH, OW) -> dx (N, C, H, W), dw (OC, C, KH, KW), db (OC,) or None.

    With out = Wf @ col:  dWf = dout_f @ col^T,  dcol = Wf^T @ dout_f,  dx = col2im(dcol),
    db = dout summed over N, OH, OW.
    """
    x_shape, w, has_bias, col, stride, padding, dilation = cache
    OC, C, KH, KW = w.shape
    dout_f = dout.transpose(1, 0, 2, 3).reshape(OC, -1)  # (OC, N*OH*OW)
    dw = (dout_f @ col.T).reshape(w.shape)
    db = dout_f.sum(axis=1) if has_bias else None
    dx = col2im(w.reshape(OC, -1).T @ dout_f, x_shape, KH, KW, stride, padding, dilation)
    return dx, dw, db


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
