"""Stride-1 convolution on shifted windows of the padded grid, for conv.py's fast path on layers
of at least MIN_CHANNELS channels that keep or narrow them (ResNet's 3 x 3 layers).

Lay a block of n images' padded grids (Hp x Wp) end to end, one row of L = n*Hp*Wp cells per
channel, then DH*(KH-1)*Wp + DW*(KW-1) cells of zeros. Output pixel p (counted on the same grid)
reads cell p + i*DH*Wp + j*DW for tap (i, j). Compute the output at every grid cell (the cells
that are no output pixel are dropped after) and the taps of kernel row i are one product with a
contiguous window of the KW horizontal shifts of the grid:

    rows  (KW*C, L + DH*(KH-1)*Wp)   rows[(j, c), p] = grid[c, p + j*DW]      (KW copies of the grid)
    out_grid (OC, L)  = sum over i of  W[:, :, i, :] (OC, KW*C) @ rows[:, i*DH*Wp : i*DH*Wp + L]
    dW[:, :, i, :]^T  = rows[:, i*DH*Wp : i*DH*Wp + L] @ dout_grid (OC, L)^T  (dout_grid: zeros off the
                        outputs; this way round is OpenBLAS's faster one, see conv_rows.dw_product)
    dx                = the full correlation of dout with W (flipped, its channel axes swapped),
                        by the forward above, as ops/conv_rows.py does

conv.py's im2col writes KH*KW copies of every input value, as C*n*OH runs of OW values per tap,
into 4 MiB blocks; here KW copies of whole grid rows, in blocks small enough that the KH products
find them in cache (measured, ResNet-20's 3 x 3 layers 32 and 16 pixels wide, 2 threads: forward
and backward 1.2-1.4x faster; the first form tried, KH*KW products of inner size C with no copy
at all, was slower than this). The price: the product runs over Hp*Wp cells per image instead of
OH*OW, and the output is summed row by row of the kernel.

As in conv_rows, a grid cell that is no output pixel holds a real input value that meets dout's
zero in dW: 0 * inf is NaN where the exact im2col never multiplies that pair, so conv.py computes
a dW that comes out non-finite again by its exact path. Every buffer here is made by the call that
uses it, and each cell is written before it is read.
"""

import numpy as np

from . import parallel
from ..backend import get_array_module

MIN_CHANNELS = 16  # fewer input channels: each product's inner size C is too small to pay (LeNet-5, the CIFAR CNN's first layer)
WIDEST_ROWS = 8  # images at most this wide go through conv_rows instead (as fast there; measured on ResNet-20's 8-pixel stage)
GRID = 1 << 16  # values of one block's grid (256 KB in float32): 2-6 images of ResNet-20's layers, the fastest of 1-128 measured


def pays(xp_name, stride, groups, C, OC, OW):
    """Whether conv.py takes this path for a convolution with C input and OC output channels."""
    return (xp_name == "numpy" and tuple(stride) == (1, 1) and groups == 1 and C >= MIN_CHANNELS and OC <= C
            and OW > WIDEST_ROWS)


def _empty(xp, shape, dtype):
    """A new array whose every cell the caller writes before reading it (the tests fill it with NaN)."""
    return xp.empty(shape, dtype=dtype)


def _blocks(N, C, cells, k):
    """Image ranges (n0, n1) covering range(N), of about equal sizes, each with at most GRID values
    of grid (one image at least), and at least k of them: every one of the k threads gets a block,
    so no two threads' runs start at the same block (dw keys each thread's sum by it)."""
    per = max(1, GRID // (C * cells))
    count = min(N, max(k, -(-N // per)))
    return [(N * i // count, N * (i + 1) // count) for i in range(count)]


def _fill_grid(grid, src_t, n0, n1, pads):
    """grid (C, n*Hp*Wp + slack) := images n0:n1 of src_t (C, N, H, W) on their padded grids, then zeros."""
    C, _, H, W = src_t.shape
    (PT, PB), (PL, PR) = pads
    n, Hp, Wp = n1 - n0, PT + H + PB, PL + W + PR
    grid[:, n * Hp * Wp:] = 0
    g = grid[:, :n * Hp * Wp].reshape(C, n, Hp, Wp)
    g[:, :, :PT], g[:, :, PT + H:], g[:, :, PT:PT + H, :PL], g[:, :, PT:PT + H, PL + W:] = 0, 0, 0, 0
    g[:, :, PT:PT + H, PL:PL + W] = src_t[:, n0:n1]


def _rows_of_taps(col, grid, KW, DW, C, cells):
    """col (KW*C, cells) := the KW horizontal shifts of grid: row (j, c) is grid[c, j*DW:j*DW + cells]."""
    for j in range(KW):
        col[j * C:(j + 1) * C, :cells] = grid[:, j * DW:j * DW + cells]


def conv(out_t, src_t, w, pads, dilation, b, k):
    """Write out_t (OC, N, OH, OW) := the stride-1 convolution of src_t (C, N, H, W) with w
    (OC, C, KH, KW), plus b (OC,) if given; the image blocks on k threads."""
    xp = get_array_module(src_t)
    C, N, H, W = src_t.shape
    OC, _, KH, KW = w.shape
    OH, OW = out_t.shape[2:]
    (PT, PB), (PL, PR) = pads
    DH, DW = dilation
    Hp, Wp = PT + H + PB, PL + W + PR
    slack = DH * (KH - 1) * Wp + DW * (KW - 1)
    wt = xp.ascontiguousarray(w.transpose(2, 0, 3, 1)).reshape(KH, OC, KW * C)  # kernel row i's (OC, KW*C) matrix
    blocks = _blocks(N, C, Hp * Wp, k)
    most = max(n1 - n0 for n0, n1 in blocks) * Hp * Wp

    def run(first, last):  # blocks[first:last], on one thread, in buffers of its own
        grid = _empty(xp, (C, most + slack), src_t.dtype)
        col = _empty(xp, (KW * C, most + DH * (KH - 1) * Wp), src_t.dtype)
        acc, term = _empty(xp, (OC, most), src_t.dtype), _empty(xp, (OC, most), src_t.dtype)
        for n0, n1 in blocks[first:last]:
            L = (n1 - n0) * Hp * Wp
            _fill_grid(grid, src_t, n0, n1, pads)
            _rows_of_taps(col, grid, KW, DW, C, L + DH * (KH - 1) * Wp)
            a, t = acc[:, :L], term[:, :L]
            for i in range(KH):
                off = i * DH * Wp
                xp.matmul(wt[i], col[:, off:off + L], out=t if i else a)
                if i:
                    a += t
            rows = a.reshape(OC, n1 - n0, Hp, Wp)[:, :, :OH, :OW]
            if b is None:
                out_t[:, n0:n1] = rows
            else:
                xp.add(rows, b.reshape(OC, 1, 1, 1), out=out_t[:, n0:n1])
    parallel.split(run, len(blocks), src_t, k=k)


def dw(dout_t, src_t, w_shape, pads, dilation, k):
    """dW (OC, C, KH, KW) of the stride-1 convolution of src_t (C, N, H, W) from dout_t
    (OC, N, OH, OW); each thread sums its own image blocks, the sums added in thread order."""
    xp = get_array_module(src_t)
    C, N, H, W = src_t.shape
    OC, _, KH, KW = w_shape
    OH, OW = dout_t.shape[2:]
    (PT, PB), (PL, PR) = pads
    DH, DW = dilation
    Hp, Wp = PT + H + PB, PL + W + PR
    slack = DH * (KH - 1) * Wp + DW * (KW - 1)
    blocks = _blocks(N, C, Hp * Wp, k)
    most = max(n1 - n0 for n0, n1 in blocks) * Hp * Wp
    sums = {}

    def run(first, last):
        if first == last:  # no block for this thread (a job cut into more parts than blocks): no sum either
            return
        grid = _empty(xp, (C, most + slack), src_t.dtype)
        col = _empty(xp, (KW * C, most + DH * (KH - 1) * Wp), src_t.dtype)
        dgrid = _empty(xp, (OC, most), dout_t.dtype)
        total = xp.zeros((KH, KW * C, OC), dtype=dout_t.dtype)  # dW^T, kernel row by kernel row
        for n0, n1 in blocks[first:last]:
            n, L = n1 - n0, (n1 - n0) * Hp * Wp
            _fill_grid(grid, src_t, n0, n1, pads)
            _rows_of_taps(col, grid, KW, DW, C, L + DH * (KH - 1) * Wp)
            d = dgrid[:, :L].reshape(OC, n, Hp, Wp)
            d[:, :, OH:], d[:, :, :OH, OW:] = 0, 0
            d[:, :, :OH, :OW] = dout_t[:, n0:n1]
            with np.errstate(invalid="ignore"):  # a 0 * inf is conv.py's to find and redo, not the user's to hear of
                for i in range(KH):
                    off = i * DH * Wp
                    total[i] += col[:, off:off + L] @ dgrid[:, :L].T
        sums[first] = total
    parallel.split(run, len(blocks), src_t, k=k)
    total = sums.pop(0)
    for first in sorted(sums):
        total += sums[first]
    return total.reshape(KH, KW, C, OC).transpose(3, 2, 0, 1)
