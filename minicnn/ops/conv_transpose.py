"""Transposed 2-D convolution (torch's conv_transpose2d, "deconvolution"), built from conv2d's own pieces.

conv2d maps an image to  out = W @ im2col(image)  and sends a gradient back by  col2im(W^T @ dout).
A transposed convolution is that second map used as a layer: it is the adjoint of a convolution.
So it needs no new machinery, only the pieces of minicnn.ops.conv, swapped around:

    forward   y  = col2im(W^T @ x)          conv2d's input gradient, with x in the place of dout
    backward  dx = W @ im2col(dy)           conv2d's forward, applied to dy
              dW = x @ im2col(dy)^T         the weight-gradient product (with the roles of x and dout swapped)
              db = dy summed over N, OH, OW

Each input pixel stamps a KH x KW copy of the kernel, scaled by its value, onto the output,
SH, SW pixels apart (col2im adds the overlaps); padding P crops P pixels off each border of
that full result, and output_padding OP gives OP rows (columns) back at the bottom (right).

Symbols: N batch, C_in, C_out channels, G groups, H, W input size, KH, KW kernel, SH, SW stride,
PH, PW padding, DH, DW dilation, OPH, OPW output padding, OH, OW output size:
    OH = (H - 1)*SH - 2*PH + DH*(KH - 1) + OPH + 1
weight (C_in, C_out/G, KH, KW), as torch's: it is the weight of the convolution this one is the
adjoint of (that one maps C_out channels to C_in). Groups as in conv2d: group g of the output
comes from group g of the input, all groups in one batched matmul.

Two implementations, as for conv2d (minicnn.set_impl, or impl= per call):
    'plain'  col2im into the full, uncropped output, then the crop; im2col of a zero-extended dy.
    'fast'   the same slices, but each tap adds only the pixels that land inside the cropped
             output (and im2col reads only those), so there is no full-size copy; the
             temporaries are scratch buffers (ops.conv.scratch), used only within one call.
"""

from ..backend import get_array_module
from .checks import check_same_dtype, pair
from .conv import _buffer, _col2im_add, _im2col_into, check_groups, col2im, im2col
from .impl import choose


def conv_transpose_output_size(size, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    """Output length along one axis: (size - 1)*stride - 2*padding + dilation*(kernel - 1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def _check_args(x, w, b, stride, padding, output_padding, groups, dilation, where):
    stride = pair(stride, "stride", where)
    padding = pair(padding, "padding", where, minimum=0)
    output_padding = pair(output_padding, "output_padding", where, minimum=0)
    dilation = pair(dilation, "dilation", where)
    groups = check_groups(groups, where)
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(
                f"{where}: output padding must be smaller than either stride or dilation, but got output_padding "
                f"{output_padding}, stride {stride}, dilation {dilation}; use output_padding < stride "
                "(it only picks among the output sizes a stride leaves open)")
    if x.ndim != 4:
        raise ValueError(f"{where}: expected input of shape (N, C_in, H, W), got shape {tuple(x.shape)}")
    if w.ndim != 4:
        raise ValueError(f"{where}: expected weight of shape (C_in, C_out/groups, KH, KW), got shape "
                         f"{tuple(w.shape)}")
    if w.shape[0] % groups:
        raise ValueError(f"{where}: Given groups={groups}, expected weight to be divisible by {groups} at dimension 0 "
                         f"(its input channels), but got weight of shape {tuple(w.shape)}")
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"{where}: weight {tuple(w.shape)} expects {w.shape[0]} input channels (its first "
                         f"dimension), got input of shape {tuple(x.shape)} with {x.shape[1]}")
    C_out = w.shape[1] * groups
    if b is not None and tuple(b.shape) != (C_out,):
        raise ValueError(f"{where}: expected bias of shape ({C_out},), got {tuple(b.shape)}")
    check_same_dtype(where, x, w, b)
    H, W = x.shape[2:]
    OH, OW = (conv_transpose_output_size(n, k, s, p, op, d)
              for n, k, s, p, op, d in zip((H, W), w.shape[2:], stride, padding, output_padding, dilation))
    if OH < 1 or OW < 1:
        raise ValueError(f"{where}: Given input size per channel: ({H} x {W}). Calculated output size per channel: "
                         f"({OH} x {OW}). Output size is too small: use less padding, a larger kernel or input")
    return stride, padding, output_padding, dilation, groups, (OH, OW)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, impl=None,
                     workspace=None):
    """x (N, C_in, H, W), w (C_in, C_out/G, KH, KW), b (C_out,) -> y (N, C_out, OH, OW).

    Per group g:  col_g (C_out/G*KH*KW, N*H*W) = W_g^T (C_out/G*KH*KW, C_in/G) @ x_g (C_in/G, N*H*W),
    y = col2im(col) (conv2d's input gradient), cropped by the padding, plus b.
    OH = (H - 1)*SH - 2*PH + DH*(KH - 1) + OPH + 1. Arguments in torch's order and with its defaults.
    """
    stride, padding, output_padding, dilation, G, (OH, OW) = _check_args(
        x, w, b, stride, padding, output_padding, groups, dilation, "conv_transpose2d")
    impl = choose(impl, "conv_transpose2d")
    xp = get_array_module(x)
    N, C_in, H, W = x.shape
    _, Cg_out, KH, KW = w.shape
    C_out = Cg_out * G
    x_g = x.transpose(1, 0, 2, 3).reshape(G, C_in // G, N * H * W)  # (G, C_in/G, N*H*W), a copy
    w_g = w.reshape(G, C_in // G, -1)                                 # (G, C_in/G, C_out/G*KH*KW)
    if impl == "plain":
        col = (w_g.transpose(0, 2, 1) @ x_g).reshape(C_out * KH * KW, N * H * W)
        full = col2im(col, (N, C_out) + _full_hw(x.shape, KH, KW, stride, dilation), KH, KW, stride, (0, 0), dilation)
        y = _crop(full, padding, (OH, OW))
    else:
        col = _buffer(workspace, "xcol", (G, Cg_out * KH * KW, N * H * W), x)
        xp.matmul(w_g.transpose(0, 2, 1), x_g, out=col)
        y_t = xp.zeros((C_out, N, OH, OW), dtype=x.dtype)  # fresh: the caller keeps y
        _col2im_add(y_t, col.reshape(C_out, KH, KW, N, H, W), stride, padding, dilation)
        y = y_t.transpose(1, 0, 2, 3)
    if b is not None:
        y += b.reshape(1, C_out, 1, 1)
    return y, (x_g, x.shape, w, b is not None, stride, padding, output_padding, dilation, G, impl, workspace)


def conv_transpose2d_backward(dout, cache, input_grad=True):
    """Gradients of conv_transpose2d. dout (N, C_out, OH, OW) -> dx (N, C_in, H, W), dw (C_in, C_out/G, KH, KW),
    db (C_out,) or None.

    With col = im2col(dout) (C_out*KH*KW, N*H*W), per group g:
        dx_g = W_g @ col_g     (conv2d's forward: the adjoint of the adjoint)
        dW_g = x_g @ col_g^T   (the weight-gradient product)
    input_grad=False skips dx (None), as for conv2d.
    """
    x_g, x_shape, w, has_bias, stride, padding, _, dilation, G, impl, workspace = cache
    N, C_in, H, W = x_shape
    _, Cg_out, KH, KW = w.shape
    if impl == "plain":
        full = _uncrop(dout, padding, _full_hw(x_shape, KH, KW, stride, dilation))
        col = im2col(full, KH, KW, stride, (0, 0), dilation)
    else:  # a scratch col, used only within this call; _im2col_into writes every cell of it
        col = _buffer(workspace, "col", (Cg_out * G, KH, KW, N, H, W), dout)
        _im2col_into(col, dout, stride, padding, dilation)
    col_g = col.reshape(G, Cg_out * KH * KW, N * H * W)
    dw = (x_g @ col_g.transpose(0, 2, 1)).reshape(w.shape)
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    if not input_grad:
        return None, dw, db
    dx = (w.reshape(G, C_in // G, -1) @ col_g).reshape(C_in, N, H, W)
    return dx.transpose(1, 0, 2, 3), dw, db


# -- the plain path's full output and its crop ------------------------------------------------


def _full_hw(x_shape, KH, KW, stride, dilation):
    """The uncropped output size, no padding and no output padding: (H - 1)*SH + DH*(KH - 1) + 1, and along W."""
    return tuple((n - 1) * s + d * (k - 1) + 1 for n, k, s, d in zip(x_shape[2:], (KH, KW), stride, dilation))


def _crop(full, padding, out_hw):
    """full (N, C, FH, FW) without its first PH rows and PW columns, cut (or zero-extended, where
    output_padding asks for more than the full output has) to out_hw."""
    (PH, PW), (OH, OW) = padding, out_hw
    y = get_array_module(full).zeros(full.shape[:2] + (OH, OW), dtype=full.dtype)
    kept = full[:, :, PH:PH + OH, PW:PW + OW]
    y[:, :, :kept.shape[2], :kept.shape[3]] = kept
    return y


def _uncrop(dy, padding, full_hw):
    """The adjoint of _crop: dy (N, C, OH, OW) put back at offset (PH, PW) of zeros (N, C, FH, FW)."""
    (PH, PW), (FH, FW) = padding, full_hw
    full = get_array_module(dy).zeros(dy.shape[:2] + (FH, FW), dtype=dy.dtype)
    kept = full[:, :, PH:PH + dy.shape[2], PW:PW + dy.shape[3]]
    kept[...] = dy[:, :, :kept.shape[2], :kept.shape[3]]
    return full
