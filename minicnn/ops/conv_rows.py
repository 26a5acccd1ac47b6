"""Stride-1 convolution on the padded rows: the fast path's im2col for narrow images.

conv.py's fast im2col copies, for each kernel tap (i, j), an OH x OW window of every image and
channel: C*n*OH runs of OW values per tap. NumPy pays a fixed cost per run, so on ResNet-20's
8-pixel-wide images the copy costs about as much as the product that follows it.

Here each image's padded grid (Hp x Wp) is one row of Hp*Wp cells, followed by DW*(KW-1) cells
of slack. A stride-1 convolution's output pixel (p, q) reads cell (p + i*DH)*Wp + (q + j*DW) for
tap (i, j). Compute the output at every q < Wp, not only at q < OW, and tap (i, j)'s share of an
image's col is ONE contiguous run of OH*Wp cells, starting at cell i*DH*Wp + j*DW:

    col  (C, KH, KW, n, OH*Wp)      col[c, i, j, m, p*Wp + q] = xpad[m, c, p + i*DH, q + j*DW]
    rows (OC, n, OH, Wp) = W @ col  and the convolution is rows[..., :OW]

The price is Wp - OW extra columns per output row (they read the next row's first cells, and
are dropped): the product grows by Wp/OW. conv.py takes this path where that pays (see rows_pay).

The backward in the same layout:

    dW = dout_rows @ col^T,  dout_rows = dout with zeros in the dropped columns q >= OW
    dx = the stride-1 convolution of dout, padded by DH*(KH-1) - PT above (and so on for each
         side), with W flipped in both spatial axes and its two channel axes swapped
         (the full correlation of dout with W), computed by the forward above.

A dropped column of col holds a real input value, multiplied in dW by the zero of dout_rows:
0 * inf is NaN, where the exact im2col would never have multiplied that pair. So a dW that
comes out non-finite is computed again by the exact path (conv.py does it); a finite one is
exact, as each dropped column then adds 0.

Every function takes `buffer(role, shape, like)`: one thread's scratch (conv.Workspace.get).
What decides the contents of a scratch view: nothing from before. Each cell read here was
written in the same call.
"""

import numpy as np

from ..backend import get_array_module
from . import products

ROWS_WIDTH = 8  # rows_pay's widest output: measured, see rows_pay


def rows_pay(xp_name, stride, pads, OW, Wp):
    """Whether the row layout beats conv.py's im2col for a stride-1 convolution with OW output
    columns out of Wp padded ones.
    Measured on 2 threads, forward and backward of each layer alone, its image blocks as conv.py
    cuts them, in one process: 1.14-1.17x on ResNet-20's 8-pixel-wide stage; on wider images no
    steady gain (0.85-1.06x: LeNet-5's 28 and 10, ResNet-20's 16 and 32), where each run of OW
    values is long enough that the extra columns and the second buffer cost what the shorter
    copies save. Never where the product would grow by more than half (LeNet-5's third
    convolution: 5 columns for its 1 output). NumPy only: the per-run cost it saves is NumPy's."""
    if xp_name != "numpy" or tuple(stride) != (1, 1) or min(min(p) for p in pads) < 0:
        return False
    return OW <= ROWS_WIDTH and 2 * Wp <= 3 * OW


def im2col_rows(src_t, KH, KW, OH, pads, dilation, buffer, roles=("xpad", "col")):
    """col (C*KH*KW, n*OH*Wp) of src_t (C, n, H, W), a stride-1 convolution's, in the row layout
    above; the padded grid and col are scratch views from buffer(roles[0]) and buffer(roles[1])."""
    C, n, H, W = src_t.shape
    (PT, PB), (PL, PR) = pads
    DH, DW = dilation
    Hp, Wp = PT + H + PB, PL + W + PR
    cells = Hp * Wp
    grid = buffer(roles[0], (C, n, cells + DW * (KW - 1)), src_t)  # each image's grid, then its slack
    grid[:, :, cells:] = 0
    g = grid[:, :, :cells].reshape(C, n, Hp, Wp)
    g[:, :, :PT], g[:, :, PT + H:], g[:, :, PT:PT + H, :PL], g[:, :, PT:PT + H, PL + W:] = 0, 0, 0, 0
    g[:, :, PT:PT + H, PL:PL + W] = src_t
    col = buffer(roles[1], (C, KH, KW, n, OH * Wp), src_t)
    for i in range(KH):
        for j in range(KW):
            start = i * DH * Wp + j * DW
            col[:, i, j] = grid[:, :, start:start + OH * Wp]
    return col.reshape(C * KH * KW, n * OH * Wp)


def conv_rows(out_t, src_t, w_g, KH, KW, pads, dilation, buffer, b=None, roles=("xpad", "col", "dxpad")):
    """Write out_t (OC, n, OH, OW) = the stride-1 convolution of src_t (C, n, H, W) with
    w_g (G, OC/G, C/G*KH*KW), plus b (OC,) if given, through the row layout."""
    xp = get_array_module(src_t)
    G, OCg, Kg = w_g.shape
    OC, n, OH, OW = out_t.shape
    col = im2col_rows(src_t, KH, KW, OH, pads, dilation, buffer, roles=roles[:2])
    Wp = col.shape[1] // (n * OH)
    rows = buffer(roles[2], (OC, n, OH, Wp), src_t)
    products.matmul(w_g, col.reshape(G, Kg, -1), rows.reshape(G, OCg, -1))
    if b is None:
        out_t[...] = rows[..., :OW]
    else:
        xp.add(rows[..., :OW], b.reshape(OC, 1, 1, 1), out=out_t)


def dw_rows(dout_t, src_t, w_shape, pads, dilation, buffer, G=1):
    """dW (G, OC/G, C/G*KH*KW) of the n images of src_t (C, n, H, W) from dout_t (OC, n, OH, OW),
    through the row layout (non-finite only if an input cell is: see the module's docstring)."""
    OC, _, KH, KW = w_shape
    _, n, OH, OW = dout_t.shape
    col = im2col_rows(src_t, KH, KW, OH, pads, dilation, buffer)
    Wp = col.shape[1] // (n * OH)
    d = buffer("dout_rows", (OC, n, OH, Wp), dout_t)
    d[..., OW:] = 0
    d[..., :OW] = dout_t
    with np.errstate(invalid="ignore"):  # a 0 * inf here is the caller's to find and redo, not the user's to hear of
        return dw_product(col, d.reshape(OC, -1), G)


def dw_product(col, d, G):
    """dW (G, OC/G, K/G) = dout @ col^T per group, from col (K, L) and dout d (OC, L), each row of d
    contiguous. Computed the other way round, dW^T = col @ d^T with d^T a transposed view (no copy),
    in pieces of L (ops/products.py), and returned transposed (a view). OpenBLAS runs dW's shapes
    faster this way round: one thread, GFLOP/s, d @ col^T -> col @ d^T: K 25, OC 6: 16 -> 29;
    K 150, OC 16: 41 -> 72; K 96, OC 32: 58 -> 76; K 288, OC 64: 77 -> 93."""
    K, L = col.shape
    OC = d.shape[0]
    rhs = d.reshape(G, OC // G, L).transpose(0, 2, 1)  # (G, L, OC/G), a view
    return products.matmul_sum(col.reshape(G, K // G, L), rhs).transpose(0, 2, 1)


def full_correlation(w, pads, dilation):
    """(w', pads') such that dx = conv_rows of dout with w' and pads': w (OC, C, KH, KW) flipped in
    both spatial axes, its channel axes swapped, as (1, C, OC*KH*KW); each side's padding
    D*(K-1) - P (None if one is negative: a padding wider than the kernel reaches)."""
    OC, C, KH, KW = w.shape
    (PT, PB), (PL, PR) = pads
    DH, DW = dilation
    full = ((DH * (KH - 1) - PT, DH * (KH - 1) - PB), (DW * (KW - 1) - PL, DW * (KW - 1) - PR))
    if min(min(p) for p in full) < 0:
        return None, None
    wf = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, OC, KH, KW)
    xp = get_array_module(w)
    return xp.ascontiguousarray(wf).reshape(1, C, OC * KH * KW), full
