"""2-D convolution in NCHW: im2col + one matrix product per group, and the plain loops beside it.

Symbols used throughout:
    N batch, C input channels, H, W input size, OC output channels, G groups,
    KH, KW kernel size, SH, SW stride, DH, DW dilation,
    PT, PB, PL, PR padding at the top, bottom, left, right (PH = PT = PB, PW = PL = PR when symmetric),
    OH, OW output size:  OH = floor((H + PT + PB - DH*(KH - 1) - 1) / SH) + 1
                         (= floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1 for symmetric padding)

padding is given as torch gives it: an int, a pair (PH, PW), 'valid' (no padding) or 'same'
(stride 1 only: DH*(KH - 1) padding in all along H, half of it at the top and the rest, one
more when it is odd, at the bottom; the same along W). Inside minicnn it may also be a pair of
pairs ((PT, PB), (PL, PR)).

The im2col buffer is laid out as (C*KH*KW, N*OH*OW): row (c, i, j) holds, for every
output pixel of every image, the input value that kernel tap (i, j) of channel c sees
there. The convolution is then a single product  W (OC, C*KH*KW) @ col.

Groups (torch's groups=G): the C input channels and the OC output channels are cut into G
blocks, and block g of the output sees only block g of the input, through weight (OC, C/G, KH, KW).
Because col's rows are channel-major, block g of the input is one contiguous block of C/G*KH*KW
rows of the same col, so one im2col serves every group and the G products run as one batched
matmul over a (G, ...) stack: W (G, OC/G, C/G*KH*KW) @ col (G, C/G*KH*KW, N*OH*OW). A Python
loop of G im2col calls and G products would do the same arithmetic, but a depthwise layer
(G = C, up to hundreds of groups) would then pay the call overhead G times per step.

Two implementations of the same math, selected by minicnn.set_impl (or impl= per call):
    'plain'  im2col / col2im as written above: a zero-padded copy of x, fresh buffers every call,
             and the cache keeps col for the backward. Read this one first.
    'fast'   (at the end of this file) the same slices and products, image block by image block
             in reused scratch buffers; the cache keeps x and the backward makes col again, so
             no col outlives its call; a stride-1 col2im runs on the padded grid. A depthwise
             layer (G = C = OC) goes by phases instead, writing no col (ops/conv_depthwise.py).

padding_mode 'reflect', 'replicate' and 'circular' (torch's Conv2d) are not a convolution's
business: the layer pads with pad2d below (its own forward/backward pair) and convolves with no padding.
"""

import functools
import numbers
import threading

from ..backend import get_array_module
from . import conv_depthwise, conv_rows, conv_shifted, parallel, products
from .checks import check_same_dtype, pair
from .impl import choose



def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    """Output length along one axis: floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1.

    padding: an int, or a pair (before, after) for asymmetric padding (then before + after replaces 2*padding).
    """
    before, after = (padding, padding) if isinstance(padding, numbers.Integral) else padding
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(kernel_size, dilation=(1, 1)):
    """torch's padding='same' (stride 1): ((PT, PB), (PL, PR)) with PT + PB = DH*(KH - 1) and
    PT = (PT + PB) // 2, so an odd total (an even kernel) puts its extra pixel at the bottom; the same along W."""
    return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel_size, dilation))


def conv_padding(padding, kernel_size, stride, dilation, where):
    """((PT, PB), (PL, PR)) from torch's padding argument: an int, a pair (PH, PW), 'valid' (no
    padding) or 'same' (stride 1 only, as in torch); or from a pair of pairs ((PT, PB), (PL, PR))."""
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"{where}: Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
        if padding == "valid":
            return (0, 0), (0, 0)
        if tuple(stride) != (1, 1):
            raise ValueError(f"{where}: padding='same' is not supported for strided convolutions (stride "
                             f"{tuple(stride)}); use stride=1, or give the padding as numbers")
        return same_padding(kernel_size, dilation)
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(isinstance(p, (tuple, list)) for p in padding):
        return tuple(pair(p, "padding", where, minimum=0) for p in padding)
    PH, PW = pair(padding, "padding", where, minimum=0)
    return (PH, PH), (PW, PW)


def _as_pads(padding):
    """((PT, PB), (PL, PR)) from an already checked (PH, PW) or ((PT, PB), (PL, PR))."""
    return tuple((p, p) if isinstance(p, numbers.Integral) else tuple(p) for p in padding)


def _output_hw(x_shape, KH, KW, stride, padding, dilation, where):
    """(OH, OW), or a clear error when the (dilated) kernel does not fit the padded input.
    padding: (PH, PW) or ((PT, PB), (PL, PR))."""
    H, W = x_shape[2], x_shape[3]
    (PT, PB), (PL, PR) = _as_pads(padding)
    OH = conv_output_size(H, KH, stride[0], (PT, PB), dilation[0])
    OW = conv_output_size(W, KW, stride[1], (PL, PR), dilation[1])
    if OH < 1 or OW < 1:
        raise ValueError(
            f"{where}: kernel {(KH, KW)} (dilation {dilation}) is larger than the padded input "
            f"{(H + PT + PB, W + PL + PR)} (input {(H, W)}, padding {padding}); "
            "use a smaller kernel, more padding or a larger input"
        )
    return OH, OW


def _tap(i, j, OH, OW, stride, dilation):
    """The strided slices that pick, for kernel tap (i, j), its input pixel under every output pixel."""
    (SH, SW), (DH, DW) = stride, dilation
    return (slice(i * DH, i * DH + SH * (OH - 1) + 1, SH), slice(j * DW, j * DW + SW * (OW - 1) + 1, SW))


def im2col(x, KH, KW, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Unfold x (N, C, H, W) into col (C*KH*KW, N*OH*OW). padding: (PH, PW) or ((PT, PB), (PL, PR)).

    One strided-slice copy per kernel tap (KH*KW copies), never a loop over pixels.
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = _output_hw(x.shape, KH, KW, stride, padding, dilation, "im2col")
    (PT, PB), (PL, PR) = _as_pads(padding)
    # Channels first, so each tap's slice is one block of the buffer: (C, N, PT + H + PB, PL + W + PR).
    xt = xp.pad(x.transpose(1, 0, 2, 3), ((0, 0), (0, 0), (PT, PB), (PL, PR)))
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
    (PT, PB), (PL, PR) = _as_pads(padding)
    col = col.reshape(C, KH, KW, N, OH, OW)
    xt = xp.zeros((C, N, PT + H + PB, PL + W + PR), dtype=col.dtype)
    for i in range(KH):
        for j in range(KW):
            rows, cols = _tap(i, j, OH, OW, stride, dilation)
            xt[:, :, rows, cols] += col[:, i, j]
    return xt[:, :, PT:PT + H, PL:PL + W].transpose(1, 0, 2, 3)


def check_groups(groups, where):
    """groups as an int >= 1 (a NumPy integer is fine; a bool or a float is not)."""
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral):
        raise TypeError(f"{where}: groups must be a positive int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{where}: groups must be a positive int, got {groups!r} (non-positive groups is not "
                         "supported)")
    return int(groups)


def _check_conv_args(x, w, b, stride, padding, dilation, groups, where):
    stride = pair(stride, "stride", where)
    dilation = pair(dilation, "dilation", where)
    groups = check_groups(groups, where)
    if x.ndim != 4:
        raise ValueError(f"{where}: expected input of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if w.ndim != 4:
        raise ValueError(f"{where}: expected weight of shape (OC, C/groups, KH, KW), got shape {tuple(w.shape)}")
    pads = conv_padding(padding, w.shape[2:], stride, dilation, where)
    if w.shape[0] % groups:
        raise ValueError(f"{where}: Given groups={groups}, expected weight to be divisible by {groups} at dimension 0 "
                         f"(its output channels), but got weight of shape {tuple(w.shape)}")
    if x.shape[1] != w.shape[1] * groups:
        with_groups = f" with groups={groups}" if groups != 1 else ""
        raise ValueError(
            f"{where}: weight {tuple(w.shape)}{with_groups} expects {w.shape[1] * groups} input channels, "
            f"got input of shape {tuple(x.shape)} with {x.shape[1]}"
        )
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"{where}: expected bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
    check_same_dtype(where, x, w, b)
    return stride, pads, dilation, groups


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, impl=None, workspace=None):
    """Convolve x (N, C, H, W) with w (OC, C/G, KH, KW), add b (OC,): out (N, OC, OH, OW).

    Per group g:  out_g (OC/G, N*OH*OW) = W_g (OC/G, C/G*KH*KW) @ col_g (C/G*KH*KW, N*OH*OW),
    col = im2col(x) and col_g its g-th block of rows; with G = 1 this is  out = W @ im2col(x).
    padding: an int, (PH, PW), 'valid', 'same' or ((PT, PB), (PL, PR)); groups G divides C and OC.
    impl: 'plain' or 'fast' (default: minicnn.get_impl()). workspace: the Workspace the fast path
    takes its scratch buffers from (default: this thread's, see scratch()).
    """
    stride, pads, dilation, G = _check_conv_args(x, w, b, stride, padding, dilation, groups, "conv2d")
    impl = choose(impl, "conv2d")
    N, C = x.shape[:2]
    OC, _, KH, KW = w.shape
    OH, OW = _output_hw(x.shape, KH, KW, stride, pads, dilation, "conv2d")
    if impl == "fast" and G > 1 and G == C == OC:  # depthwise: by phases, no col (see conv_depthwise)
        k = _on_threads(C, N * C * OH * OW * KH * KW, x, workspace)
        out = conv_depthwise.depthwise_forward(x, w, b, OH, OW, stride, pads, dilation, k)
        return out.transpose(1, 0, 2, 3), (x.shape, w, b is not None, x, stride, pads, dilation, G, impl, workspace)
    if impl == "fast":  # the same products, image block by image block; the cache keeps x, not col
        out = _conv2d_fast(x, w, b, OH, OW, stride, pads, dilation, G, workspace)
        return out.transpose(1, 0, 2, 3), (x.shape, w, b is not None, x, stride, pads, dilation, G, impl, workspace)
    col = im2col(x, KH, KW, stride, pads, dilation)
    out = (w.reshape(G, OC // G, -1) @ col.reshape(G, -1, N * OH * OW)).reshape(OC, N, OH, OW)
    if b is not None:
        out += b.reshape(OC, 1, 1, 1)
    cache = (x.shape, w, b is not None, col, stride, pads, dilation, G, impl, workspace)
    return out.transpose(1, 0, 2, 3), cache


def conv2d_backward(dout, cache, input_grad=True):
    """Gradients of conv2d. dout (N, OC, OH, OW) -> dx (N, C, H, W), dw (OC, C/G, KH, KW), db (OC,) or None.

    With out_g = W_g @ col_g for each group g:  dW_g = dout_g @ col_g^T,  dcol_g = W_g^T @ dout_g,
    dx = col2im(dcol), db = dout summed over N, OH, OW.
    input_grad=False skips dx (None): a network's first layer has no use for it, and torch
    does not compute it either (its input does not require a gradient).
    """
    x_shape, w, has_bias, kept, stride, pads, dilation, G, impl, workspace = cache
    OC, _, KH, KW = w.shape
    w_g = w.reshape(G, OC // G, -1)             # (G, OC/G, C/G*KH*KW)
    if impl == "plain":
        col = kept  # the fast path's cache keeps x here instead
        col_g = col.reshape(G, -1, col.shape[1])    # (G, C/G*KH*KW, N*OH*OW)
        dout_g = dout.transpose(1, 0, 2, 3).reshape(G, OC // G, -1)  # (G, OC/G, N*OH*OW)
        dw = (dout_g @ col_g.transpose(0, 2, 1)).reshape(w.shape)
        db = dout_g.reshape(OC, -1).sum(axis=1) if has_bias else None
        if not input_grad:
            return None, dw, db
        dcol = (w_g.transpose(0, 2, 1) @ dout_g).reshape(col.shape)
        return col2im(dcol, x_shape, KH, KW, stride, pads, dilation), dw, db
    if G > 1 and G == x_shape[1] == OC:  # depthwise: by phases, no col or dcol (see conv_depthwise)
        k = _on_threads(G, dout.size * KH * KW * (2 if input_grad else 1), kept, workspace, backward=True)
        return conv_depthwise.depthwise_backward(dout, kept, w, has_bias, stride, pads, dilation, input_grad, k)
    return _conv2d_backward_fast(dout, kept, w_g, w.shape, has_bias, stride, pads, dilation, workspace, input_grad)


# -- padding modes: torch's Conv2d(padding_mode=...) --------------------------------------------


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NUMPY_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}  # xp.pad's names for them


def pad2d(x, pads, mode):
    """Pad the last two axes of x (..., H, W) -> (..., PT + H + PB, PL + W + PR), pads = ((PT, PB), (PL, PR)).

    mode 'reflect': mirrored about the edge pixel, which is not repeated (x[1], x[0] | x[0], x[1], ...),
         so each padding must be smaller than its axis;
    'replicate': the edge pixel repeated; 'circular': wrapped around (the last PT rows go on top),
         so each padding may be at most its axis.
    """
    if mode not in _NUMPY_PAD_MODE:
        raise ValueError(f"pad2d: mode must be one of {tuple(_NUMPY_PAD_MODE)}, got {mode!r}")
    for axis, (before, after) in zip((x.ndim - 2, x.ndim - 1), pads):
        n = x.shape[axis]
        if n < 1 or (mode == "reflect" and max(before, after) >= n):
            raise ValueError(
                f"{mode} padding: Padding size should be less than the corresponding input dimension, but got: "
                f"padding {(before, after)} at dimension {axis} of input {tuple(x.shape)}; use less padding, "
                "a larger input or padding_mode='replicate'")
        if mode == "circular" and max(before, after) > n:
            raise ValueError(
                f"circular padding: Padding value causes wrapping around more than once: padding {(before, after)} "
                f"at dimension {axis} of input {tuple(x.shape)}; it may be at most the input's size there ({n})")
    widths = ((0, 0),) * (x.ndim - 2) + tuple(pads)
    return get_array_module(x).pad(x, widths, mode=_NUMPY_PAD_MODE[mode]), (tuple(pads), mode)


def pad2d_backward(dout, cache):
    """Each padded pixel is a copy of one input pixel, so its gradient is added back onto that pixel:
    dx = the middle of dout + the padding's blocks, mirrored (reflect), summed onto the edge
    (replicate) or wrapped (circular). Done along H, then along W (the two paddings commute)."""
    ((PT, PB), (PL, PR)), mode = cache
    return _fold_axis(_fold_axis(dout, -2, PT, PB, mode), -1, PL, PR, mode)


def _fold_axis(d, axis, before, after, mode):
    """The adjoint of padding one axis (-2 or -1) of d by (before, after) in mode: slices, no scatter."""
    xp = get_array_module(d)
    n = d.shape[axis] - before - after

    def at(start, stop):  # the index picking [start, stop) along `axis`
        return (Ellipsis, slice(start, stop)) + (slice(None),) * (-1 - axis)

    dx = d[at(before, before + n)].copy()
    head, tail = d[at(0, before)], d[at(before + n, before + n + after)]
    if mode == "reflect":  # head holds x[before], ..., x[1]; tail holds x[n-2], ..., x[n-1-after]
        dx[at(1, before + 1)] += xp.flip(head, axis)
        dx[at(n - 1 - after, n - 1)] += xp.flip(tail, axis)
    elif mode == "replicate":  # every padded pixel is a copy of the edge pixel
        dx[at(0, 1)] += head.sum(axis=axis, keepdims=True)
        dx[at(n - 1, n)] += tail.sum(axis=axis, keepdims=True)
    else:  # circular: head holds x[n-before], ..., x[n-1]; tail holds x[0], ..., x[after-1]
        dx[at(n - before, n)] += head
        dx[at(0, after)] += tail
    return dx


# -- the definition, one output value at a time -------------------------------------------


def conv2d_naive(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """conv2d by the definition, one output value at a time. Same shapes as conv2d.

    out[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, g*C/G + c, p*SH + i*DH, q*SW + j*DW],
    g = o // (OC/G) the group of output channel o, c over its C/G input channels.
    Kept as the teaching reference and the benchmark baseline: it is very slow.
    """
    xp = get_array_module(x)
    (SH, SW), pads, (DH, DW), G = _check_conv_args(x, w, b, stride, padding, dilation, groups, "conv2d_naive")
    N = x.shape[0]
    OC, Cg, KH, KW = w.shape
    OH, OW = _output_hw(x.shape, KH, KW, (SH, SW), pads, (DH, DW), "conv2d_naive")
    xpad = xp.pad(x, ((0, 0), (0, 0)) + pads)
    out = xp.zeros((N, OC, OH, OW), dtype=x.dtype)
    for n in range(N):
        for o in range(OC):
            g = o // (OC // G)
            for p in range(OH):
                for q in range(OW):
                    window = xpad[n, g * Cg:(g + 1) * Cg, p * SH:p * SH + DH * (KH - 1) + 1:DH,
                                  q * SW:q * SW + DW * (KW - 1) + 1:DW]
                    out[n, o, p, q] = (window * w[o]).sum() + (b[o] if b is not None else 0)
    return out, (x, w, b is not None, (SH, SW), pads, (DH, DW), G)


def conv2d_naive_backward(dout, cache):
    """Gradients of conv2d_naive by the same loops: each output value sends dout back to
    the window it read (dx) and to the weights it used (dw)."""
    x, w, has_bias, (SH, SW), pads, (DH, DW), G = cache
    xp = get_array_module(x)
    N, OC, OH, OW = dout.shape
    _, Cg, KH, KW = w.shape
    xpad = xp.pad(x, ((0, 0), (0, 0)) + pads)
    dxpad = xp.zeros_like(xpad)
    dw = xp.zeros_like(w)
    for n in range(N):
        for o in range(OC):
            channels = slice(o // (OC // G) * Cg, (o // (OC // G) + 1) * Cg)
            for p in range(OH):
                for q in range(OW):
                    rows = slice(p * SH, p * SH + DH * (KH - 1) + 1, DH)
                    cols = slice(q * SW, q * SW + DW * (KW - 1) + 1, DW)
                    dw[o] += dout[n, o, p, q] * xpad[n, channels, rows, cols]
                    dxpad[n, channels, rows, cols] += dout[n, o, p, q] * w[o]
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    (PT, _), (PL, _) = pads
    return dxpad[:, :, PT:PT + x.shape[2], PL:PL + x.shape[3]], dw, db


# -- the fast path ----------------------------------------------------------------------
#
# The same im2col, products and col2im, with three differences:
#   - image block by image block: im2col of a few images at a time (a block's col is about
#     CHUNK values), its products, and its col2im. So col never grows past a block, whatever the
#     batch (the whole batch's col is KH*KW times an activation);
#   - col and the other temporaries are scratch buffers (Workspace, below), used within one call:
#     the forward multiplies col and drops it, the backward makes it again from x. The cache keeps
#     x, so a training step holds its activations, not one col per convolution;
#   - no padded copy of the whole x (each block is padded into scratch), and for a stride-1
#     convolution the backward's col2im runs on the padded grid, one contiguous add per tap.

CHUNK = 1 << 20  # values of col per image block (4 MiB of float32): peak memory under torch's, no slower than bigger blocks


def _blocks(N, per_image, k=1):
    """Image ranges (n0, n1) covering range(N), of about equal sizes, each with at most CHUNK values
    of col (one image at least), and at least k of them (one per thread that will run them)."""
    per_block = max(1, CHUNK // per_image)  # the most images a block may hold
    count = min(N, max(k, -(-N // per_block)))
    return [(N * i // count, N * (i + 1) // count) for i in range(count)]


BACKWARD_LEAST = 2  # a backward is cut from this many times parallel.MIN_PRODUCT multiply-adds


def _on_threads(N, macs, like, workspace, backward=False):
    """How many threads a convolution of `macs` multiply-adds over N images runs its blocks on
    (ops.parallel); one when the caller hands in a workspace (one thread's buffers).
    A backward is cut only from BACKWARD_LEAST times the forward's size: its blocks carry more
    fixed cost (dout's copies, the threads' dW sums added after). Measured, 2 threads, once the
    products ran in pieces (ops/products.py): LeNet-5's batch-16 step 2.84 -> 2.61 ms with its second
    convolution's backward (7.7 million multiply-adds) on one thread, while its batch-64 inference
    lost 27% with the first convolution's forward (7.5 million) on one thread."""
    least = parallel.MIN_PRODUCT * (BACKWARD_LEAST if backward else 1)
    return 1 if workspace is not None else parallel.parts(N, macs, like, least)


class Workspace:
    """Scratch buffers for one thread's calls, so that a training step does not allocate (and
    page-fault in) a fresh im2col buffer for every convolution.

    One flat buffer per role ('col', 'xpad', 'dout', 'dcol', 'dout_grid', 'dxpad', 'dout_rows'),
    grown to the largest size asked for; get() hands out a view of its first bytes in the shape and
    dtype asked for. What decides the contents of a view: nothing from before. Every caller writes
    each cell it later reads, within the one call that asked for it, and keeps no reference once
    that call returns (nothing returned to the caller is a view of scratch). Two roles never share
    memory, so one call may hold a 'col' and a 'dcol' at once; calls do not nest, and each thread
    has its own Workspace.
    """

    def __init__(self):
        self._buffers = {}  # (role, array module name) -> flat uint8 array

    def get(self, role, shape, like):
        """A view (shape, like.dtype) of role's buffer, on like's array module, for use within one call."""
        xp = get_array_module(like)
        nbytes = like.dtype.itemsize
        for n in shape:
            nbytes *= n
        key = (role, xp.__name__)
        flat = self._buffers.get(key)
        if flat is None or flat.nbytes < nbytes:
            self._buffers[key] = flat = None  # the old one goes before the bigger one comes
            self._buffers[key] = flat = xp.empty(max(nbytes, 1), dtype=xp.uint8)
        return flat[:nbytes].view(like.dtype).reshape(shape)

    def nbytes(self):
        """Bytes held while no call is running."""
        return sum(a.nbytes for a in self._buffers.values())

    def clear(self):
        """Give every buffer back (the next call allocates again)."""
        self._buffers.clear()

    def __deepcopy__(self, memo):
        return Workspace()  # a copy holds nothing worth copying: it starts empty


_threads = threading.local()


def scratch():
    """This thread's Workspace: the scratch every conv2d without a workspace= argument uses."""
    ws = getattr(_threads, "workspace", None)
    if ws is None:
        ws = _threads.workspace = Workspace()
    return ws


def _buffer(workspace, role, shape, like):
    """A scratch view from workspace, or from this thread's Workspace when none is given."""
    return (workspace if workspace is not None else scratch()).get(role, shape, like)


def _inside(k, size, out_size, s, p, d):
    """For kernel offset k along one axis: (input slice, output slice) of the output pixels
    o whose input o*s + k*d - p falls inside [0, size), i.e. not in the padding (p: the padding
    before the axis; the padding after it only decides out_size)."""
    first = max(0, -((k * d - p) // s))  # smallest o with o*s + k*d - p >= 0
    last = min(out_size - 1, (size - 1 + p - k * d) // s)
    if last < first:
        return None
    start = first * s + k * d - p
    return slice(start, start + (last - first) * s + 1, s), slice(first, last + 1)


@functools.lru_cache(maxsize=256)
def _taps(HW, out_hw, KH, KW, stride, before, dilation):
    """For every kernel tap (i, j): the slices (input, output) of the pixels it sees inside an
    H x W image, or None when it sees only padding, and the output regions (row slice, column
    slice) where it sees padding. Computed once per geometry: a training loop asks for the same ones."""
    (H, W), (OH, OW), taps = HW, out_hw, []
    for i in range(KH):
        rows = _inside(i, H, OH, stride[0], before[0], dilation[0])
        for j in range(KW):
            cols = _inside(j, W, OW, stride[1], before[1], dilation[1])
            if rows is None or cols is None:
                taps.append((i, j, None, ((slice(None), slice(None)),)))
                continue
            (r0, r1), (c0, c1) = (rows[1].start, rows[1].stop), (cols[1].start, cols[1].stop)
            pad = [((0, r0), (0, OW)), ((r1, OH), (0, OW)), ((r0, r1), (0, c0)), ((r0, r1), (c1, OW))]
            pad = tuple((slice(*a), slice(*b)) for a, b in pad if a[0] < a[1] and b[0] < b[1])
            taps.append((i, j, ((rows[0], cols[0]), (rows[1], cols[1])), pad))
    return tuple(taps)


def _im2col_into(col, x, stride, before, dilation):
    """Fill every cell of col (C, KH, KW, N, OH, OW) from x (N, C, H, W) without padding x: each
    tap copies the pixels inside the image and writes zeros where it sees the padding.
    before = (PT, PL), the padding above and left of the image; the output size OH, OW may end
    anywhere (ConvTranspose2d's backward crops with it)."""
    C, KH, KW, N, OH, OW = col.shape
    xt = x.transpose(1, 0, 2, 3)  # (C, N, H, W), a view
    for i, j, inside, pad in _taps(x.shape[2:], (OH, OW), KH, KW, stride, before, dilation):
        if inside is not None:
            (rows, cols), (orows, ocols) = inside
            col[:, i, j, :, orows, ocols] = xt[:, :, rows, cols]
        for prows, pcols in pad:
            col[:, i, j, :, prows, pcols] = 0


def _col2im_add(dx_t, dcol, stride, before, dilation):
    """The adjoint of _im2col_into: add each tap of dcol (C, KH, KW, N, OH, OW) into the
    pixels of dx_t (C, N, H, W) it was copied from; the padding's share is dropped."""
    C, KH, KW, N, OH, OW = dcol.shape
    for i, j, inside, _ in _taps(dx_t.shape[2:], (OH, OW), KH, KW, stride, before, dilation):
        if inside is not None:
            (rows, cols), (orows, ocols) = inside
            dx_t[:, :, rows, cols] += dcol[:, i, j, :, orows, ocols]


def _im2col_fast(x, KH, KW, OH, OW, stride, pads, dilation, workspace):
    """col (C*KH*KW, n*OH*OW) of the n images of x in a scratch buffer (valid until the caller
    returns), with the padded x in scratch too. Every cell of both is written here (the padding's
    zeros included), so they depend on nothing a former call left in them."""
    N, C, H, W = x.shape
    (PT, PB), (PL, PR) = pads
    col = _buffer(workspace, "col", (C, KH, KW, N, OH, OW), x)
    src = x.transpose(1, 0, 2, 3)  # (C, N, H, W), a view
    if PT or PB or PL or PR:  # zeros around a copy of x
        pad = _buffer(workspace, "xpad", (C, N, PT + H + PB, PL + W + PR), x)
        pad[:, :, :PT], pad[:, :, PT + H:], pad[:, :, PT:PT + H, :PL], pad[:, :, PT:PT + H, PL + W:] = 0, 0, 0, 0
        pad[:, :, PT:PT + H, PL:PL + W] = src
        src = pad
    for i in range(KH):
        for j in range(KW):
            col[:, i, j] = src[(Ellipsis, *_tap(i, j, OH, OW, stride, dilation))]
    return col.reshape(C * KH * KW, N * OH * OW)


def _conv2d_fast(x, w, b, OH, OW, stride, pads, dilation, G, workspace):
    """conv2d's out (OC, N, OH, OW), block of images by block: out[:, n0:n1] = W @ im2col(x[n0:n1]).
    The blocks are cut over threads: each writes its own images of out."""
    xp = get_array_module(x)
    N, C = x.shape[:2]
    OC, _, KH, KW = w.shape
    w_g = w.reshape(G, OC // G, -1)
    out = xp.empty((OC, N, OH, OW), dtype=x.dtype)
    k = _on_threads(N, N * OC * OH * OW * (C // G) * KH * KW, x, workspace)
    if conv_shifted.pays(xp.__name__, stride, G, C, OC, OW):  # stride 1, no im2col: see conv_shifted
        conv_shifted.conv(out, x.transpose(1, 0, 2, 3), w, pads, dilation, b, k)
        return out
    Wp = pads[1][0] + x.shape[3] + pads[1][1]
    rows = conv_rows.rows_pay(xp.__name__, stride, pads, OW, Wp)  # stride 1, narrow: see conv_rows
    blocks = _blocks(N, C * KH * KW * OH * (Wp if rows else OW), k)

    def run(first, last):  # blocks[first:last], on one thread
        ws = workspace if workspace is not None else scratch()
        for n0, n1 in blocks[first:last]:
            if rows:
                conv_rows.conv_rows(out[:, n0:n1], x[n0:n1].transpose(1, 0, 2, 3), w_g, KH, KW, pads, dilation,
                                    ws.get, b)
                continue
            col = _im2col_fast(x[n0:n1], KH, KW, OH, OW, stride, pads, dilation, ws)
            part = out[:, n0:n1].reshape(G, OC // G, (n1 - n0) * OH * OW)  # a view (rows N*OH*OW apart)
            products.matmul(w_g, col.reshape(G, -1, col.shape[1]), part)
            if b is not None:
                part += b.reshape(G, OC // G, 1)
    parallel.split(run, len(blocks), x, k=k)
    return out


def _conv2d_backward_fast(dout, x, w_g, w_shape, has_bias, stride, pads, dilation, workspace, input_grad):
    """conv2d_backward's formulas, block of images by block, with col made again from x:
    dW = sum over blocks of dout_block @ col_block^T, and dx[block] = col2im(W^T @ dout_block).
    The blocks are cut over threads: each writes its own images of dx and sums its own blocks' dW
    and db; those sums are added in thread order (the same order in every run)."""
    xp = get_array_module(dout)
    G, OCg, Kg = w_g.shape
    OC, _, KH, KW = w_shape
    N, C, H, W = x.shape
    OH, OW = dout.shape[2:]
    (PT, PB), (PL, PR) = pads
    Hp, Wp = PT + H + PB, PL + W + PR
    shifted = _conv2d_backward_shifted(dout, x, w_g, w_shape, has_bias, stride, pads, dilation, workspace,
                                       input_grad)
    if shifted is not None:
        return shifted
    # stride 1, narrow images: dW and dx in conv_rows's layout, dx as the full correlation of dout with w
    rows_dw = conv_rows.rows_pay(xp.__name__, stride, pads, OW, Wp)
    wf, full = None, None
    if input_grad and G == 1 and tuple(stride) == (1, 1):
        wf, full = conv_rows.full_correlation(w_g.reshape(w_shape), pads, dilation)
    Wf = None if full is None else full[1][0] + OW + full[1][1]  # dout's padded width
    # (not where OC > C: dout's col then has more rows than x's; LeNet-5's 6 -> 16 took 2x as long that way)
    rows_dx = full is not None and OC <= C and conv_rows.rows_pay(xp.__name__, stride, full, W, Wf)
    # else stride 1, no groups, a padded grid at most twice the output: col2im on the grid (see _col2im_shifted;
    # with groups its product is G small ones, slower than the taps: measured on depthwise layers)
    on_grid = input_grad and not rows_dx and G == 1 and tuple(stride) == (1, 1) and Hp * Wp <= 2 * OH * OW
    dout_t = dout.transpose(1, 0, 2, 3)  # (OC, N, OH, OW): laid out so when dout is laid out like conv2d's out
    dx_t = None
    if input_grad:  # fresh: the caller may keep dx. col2im by taps adds into it; the others write all of it
        dx_t = (xp.empty if on_grid or rows_dx else xp.zeros)((C, N, H, W), dtype=dout.dtype)
    k = _on_threads(N, N * OC * OH * OW * Kg * (2 if input_grad else 1), x, workspace, backward=True)
    per_image = max(C * KH * KW * OH * (Wp if rows_dw else OW),  # the most values of col and dcol one image needs
                    OC * KH * KW * H * Wf if rows_dx else 0, C * KH * KW * Hp * Wp if on_grid else 0)
    blocks = _blocks(N, per_image, k)
    sums = {}  # first block of a thread's run -> (its dW, its db)

    def block_dout(n0, n1, ws):  # dout's block (OC, n, OH, OW), contiguous: copied into scratch if it is not
        d = dout_t[:, n0:n1]
        if not d.flags.c_contiguous:
            d = ws.get("dout", d.shape, dout)
            d[...] = dout_t[:, n0:n1]
        return d

    def taps_dw(n0, n1, d, ws):  # the block's share of dW, through the taps' col
        col = _im2col_fast(x[n0:n1], KH, KW, OH, OW, stride, pads, dilation, ws)
        return conv_rows.dw_product(col, d.reshape(OC, -1), G)

    def run(first, last):  # blocks[first:last], on one thread
        ws = workspace if workspace is not None else scratch()
        dw = xp.zeros((G, OCg, Kg), dtype=dout.dtype)
        db = xp.zeros(OC, dtype=dout.dtype) if has_bias else None
        for n0, n1 in blocks[first:last]:
            d = block_dout(n0, n1, ws)
            if rows_dw:
                dw += conv_rows.dw_rows(d, x[n0:n1].transpose(1, 0, 2, 3), w_shape, pads, dilation, ws.get, G)
            else:
                dw += taps_dw(n0, n1, d, ws)
            if has_bias:
                db += d.reshape(OC, -1).sum(axis=1)
            if rows_dx:
                conv_rows.conv_rows(dx_t[:, n0:n1], d, wf, KH, KW, full, dilation, ws.get,
                                    roles=("dout_grid", "dcol", "dxpad"))
            elif on_grid:
                _col2im_shifted(dx_t[:, n0:n1], d, w_g, KH, KW, pads, dilation, ws)
            elif input_grad:
                dcol = ws.get("dcol", (C, KH, KW, n1 - n0, OH, OW), dout)
                xp.matmul(w_g.transpose(0, 2, 1), d.reshape(G, OCg, -1), out=dcol.reshape(G, Kg, -1))
                _col2im_add(dx_t[:, n0:n1], dcol, stride, (PT, PL), dilation)
        if rows_dw and not xp.isfinite(dw).all():  # an inf or NaN input met a dropped column: see conv_rows
            dw[...] = 0
            for n0, n1 in blocks[first:last]:
                dw += taps_dw(n0, n1, block_dout(n0, n1, ws), ws)
        sums[first] = dw, db
    parallel.split(run, len(blocks), x, k=k)
    dw, db = sums.pop(0)
    for first in sorted(sums):
        dw += sums[first][0]
        if has_bias:
            db += sums[first][1]
    return (None if dx_t is None else dx_t.transpose(1, 0, 2, 3)), dw.reshape(w_shape), db


def _conv2d_backward_shifted(dout, x, w_g, w_shape, has_bias, stride, pads, dilation, workspace, input_grad):
    """(dx, dW, db) by conv_shifted's products where they pay for dW and for dx (the full correlation
    of dout with w: no padding wider than the kernel reaches, and as many input channels as output
    ones, so that it pays too), else None; None also when dW comes out non-finite (see
    conv_shifted), so that the exact path computes it."""
    xp = get_array_module(dout)
    G = w_g.shape[0]
    OC, C, KH, KW = w_shape
    N, _, H, W = x.shape
    if not conv_shifted.pays(xp.__name__, stride, G, C, OC, dout.shape[3]):
        return None
    wf, full = None, None
    if input_grad:
        wf, full = conv_rows.full_correlation(w_g.reshape(w_shape), pads, dilation)
        if full is None or not conv_shifted.pays(xp.__name__, stride, G, OC, C, W):
            return None
    k = _on_threads(N, dout.size * C * KH * KW * (2 if input_grad else 1), x, workspace, backward=True)
    dout_t = dout.transpose(1, 0, 2, 3)
    dw = conv_shifted.dw(dout_t, x.transpose(1, 0, 2, 3), w_shape, pads, dilation, k)
    if not xp.isfinite(dw).all():
        return None
    dx = None
    if input_grad:  # the full correlation: dout's OC channels in, C out, w flipped with its channel axes swapped
        dx_t = conv_shifted._empty(xp, (C, N, H, W), dout.dtype)  # conv writes every cell
        conv_shifted.conv(dx_t, dout_t, wf.reshape(C, OC, KH, KW), full, dilation, None, k)
        dx = dx_t.transpose(1, 0, 2, 3)
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, xp.ascontiguousarray(dw), db


def _col2im_shifted(dx_t, dout_t, w_g, KH, KW, pads, dilation, workspace):
    """Write dx_t (C, n, H, W) of a stride-1 convolution from dout_t (OC, n, OH, OW), by col2im
    on the padded grid.

    Lay the n images' padded grids (Hp x Wp) end to end in one row per channel, of L = n*Hp*Wp
    cells. An output pixel p (counted on that grid) reads input cell p + off(i, j), off = i*DH*Wp
    + j*DW, for tap (i, j). So if dcol is computed at every grid cell (dout is zero at the cells
    that are no output pixel), each tap's share of dx is ONE contiguous add of a (C, L) block at
    offset off, instead of n*C*OH strided runs of OW values. The cost: dcol's product runs over
    Hp*Wp cells per image instead of OH*OW (the caller takes this path only when that is at most
    twice as many). Every cell of the scratch buffers is written here before it is read.
    """
    xp = get_array_module(dout_t)
    G, OCg, Kg = w_g.shape
    OC, n, OH, OW = dout_t.shape
    C, _, H, W = dx_t.shape
    (PT, PB), (PL, PR) = pads
    Hp, Wp = PT + H + PB, PL + W + PR
    L, last = n * Hp * Wp, dilation[0] * (KH - 1) * Wp + dilation[1] * (KW - 1)
    grid = _buffer(workspace, "dout_grid", (OC, n, Hp, Wp), dout_t)  # dout on the grid, zeros elsewhere
    grid[:, :, OH:], grid[:, :, :OH, OW:] = 0, 0
    grid[:, :, :OH, :OW] = dout_t
    dcol = _buffer(workspace, "dcol", (G, Kg, L), dout_t)
    xp.matmul(w_g.transpose(0, 2, 1), grid.reshape(G, OCg, L), out=dcol)
    dcol = dcol.reshape(C, KH, KW, L)
    dpad = _buffer(workspace, "dxpad", (C, L + last), dout_t)  # the padded dx, one row per channel
    dpad[...] = 0
    for i in range(KH):
        for j in range(KW):
            off = i * dilation[0] * Wp + j * dilation[1]
            dpad[:, off:off + L] += dcol[:, i, j]
    dx_t[...] = dpad[:, :L].reshape(C, n, Hp, Wp)[:, :, PT:PT + H, PL:PL + W]
