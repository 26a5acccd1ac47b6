"""im2col, explained: a convolution turned into one matrix product, on an input small enough to read.

    python3 examples/im2col_explained.py                      # the tiny example, then LeNet's conv1 timed
    python3 examples/im2col_explained.py --batch 64 --naive-images 4

1. A tiny input x (N=1, C=2, H=W=4) and a kernel w (OC=2, C=2, KH=KW=3): the output is 2x2.
2. im2col(x) lays every 3x3 window out as a column: the matrix col (C*KH*KW, N*OH*OW) = (18, 4),
   whose row (c, i, j) holds what kernel tap (i, j) of channel c sees under each output pixel
   (n, oh, ow). Read a column top to bottom: it is one window, channel by channel.
3. The convolution is one product, W (OC, C*KH*KW) @ col = (2, 18) @ (18, 4) -> (2, 4): one row
   per output channel, one column per output pixel. Folding it to (N, OC, OH, OW) gives the output.
4. Each step is checked against the definition, the loops of conv2d_naive:
   out[n, o, p, q] = b[o] + sum over c, i, j of w[o, c, i, j] * x[n, c, p + i, q + j].
5. col2im, which the backward uses (dx = col2im(W^T @ dout)), is the adjoint of im2col:
   <im2col(x), m> = <x, col2im(m)> for every matrix m; it adds each column back onto its window.
6. Both are timed on a real layer: LeNet's conv1, Conv2d(1, 6, 5, padding=2), on a batch of
   --batch MNIST-sized images. The naive loops run on --naive-images images only (they are slow)
   and their time is scaled to the batch; the program says so and ends with the speed-up.

Everything here is minicnn.ops: plain functions on NumPy arrays, no Tensor, no layer.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, no install needed
from minicnn import ops  # noqa: E402
from minicnn.ops.conv import col2im, conv2d, conv2d_naive, im2col  # noqa: E402


def show(name, matrix, row_labels, col_labels):
    """Print a matrix with a label on every row and every column."""
    width = max(len(label) for label in col_labels + [f"{v:g}" for v in matrix.ravel()]) + 1
    left = max(len(label) for label in row_labels)
    print(f"{name} {matrix.shape}:")
    print(" " * (left + 2) + "".join(label.rjust(width) for label in col_labels))
    for label, row in zip(row_labels, matrix):
        print(f"  {label.rjust(left)}" + "".join(f"{v:g}".rjust(width) for v in row))
    print()


def seconds(fn, repeats):
    """The median time of `repeats` calls of fn()."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description="im2col explained on a tiny input, then timed on LeNet's conv1.")
    parser.add_argument("--batch", type=int, default=16, help="images in the timed batch (default 16)")
    parser.add_argument("--naive-images", type=int, default=2,
                        help="images the naive loops are timed on; their time is scaled to --batch (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of each; the median is kept")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    # -- 1. a tiny input and kernel: whole numbers, so that every entry can be followed by eye
    N, C, H, W, OC, KH, KW = 1, 2, 4, 4, 2, 3, 3
    x = np.arange(N * C * H * W, dtype=np.float32).reshape(N, C, H, W)
    w = rng.integers(-1, 2, size=(OC, C, KH, KW)).astype(np.float32)
    b = np.array([0.0, 100.0], dtype=np.float32)
    OH, OW = ops.conv_output_size(H, KH), ops.conv_output_size(W, KW)    # (4 - 3)/1 + 1 = 2
    print(f"x (N, C, H, W) = {x.shape}; kernel w (OC, C, KH, KW) = {w.shape}, bias b = {b}; "
          f"stride 1, no padding -> OH = OW = (4 - 3)/1 + 1 = {OH}")
    for c in range(C):
        show(f"x[0, {c}]", x[0, c], [f"h={h}" for h in range(H)], [f"w={j}" for j in range(W)])

    # -- 2. im2col: one column per output pixel (n, oh, ow), one row per kernel tap (c, i, j)
    col = im2col(x, KH, KW)
    rows = [f"(c={c}, i={i}, j={j})" for c in range(C) for i in range(KH) for j in range(KW)]
    cols = [f"({n},{p},{q})" for n in range(N) for p in range(OH) for q in range(OW)]
    show("col = im2col(x), rows (c, i, j), columns (n, oh, ow)", col, rows, cols)
    for k, (n, p, q) in enumerate((n, p, q) for n in range(N) for p in range(OH) for q in range(OW)):
        window = x[n, :, p:p + KH, q:q + KW]                  # what the kernel sees at output pixel (p, q)
        assert np.array_equal(col[:, k], window.ravel()), f"column {k} is not the window at {(n, p, q)}"
    print(f"check: column (n, oh, ow) of col is the {C}x{KH}x{KW} window of x under output pixel (oh, ow), "
          "flattened channel by channel: yes, for all "
          f"{col.shape[1]} columns\n")

    # -- 3. the convolution as one product, then folded back to (N, OC, OH, OW)
    w_matrix = w.reshape(OC, C * KH * KW)
    show("W = w.reshape(OC, C*KH*KW), rows o, columns (c, i, j)", w_matrix, [f"o={o}" for o in range(OC)],
         [f"{c}{i}{j}" for c in range(C) for i in range(KH) for j in range(KW)])
    gemm = w_matrix @ col + b[:, None]
    show("W @ col + b, rows o, columns (n, oh, ow)", gemm, [f"o={o}" for o in range(OC)], cols)
    out = gemm.reshape(OC, N, OH, OW).transpose(1, 0, 2, 3)   # (OC, N*OH*OW) -> (N, OC, OH, OW)
    for o in range(OC):
        show(f"out[0, {o}] (folded)", out[0, o], [f"oh={p}" for p in range(OH)], [f"ow={q}" for q in range(OW)])

    # -- 4. the same numbers from the loops of the definition, and from ops.conv2d
    naive, _ = conv2d_naive(x, w, b)
    fast, _ = conv2d(x, w, b)
    assert np.array_equal(out, naive), "im2col + GEMM differs from the naive loops"
    assert np.array_equal(fast, naive), "ops.conv2d differs from the naive loops"
    print("check: W @ im2col(x) + b, folded, equals conv2d_naive(x, w, b) (the loops of the definition) "
          "and ops.conv2d(x, w, b), entry for entry: yes\n")

    # -- 5. col2im is im2col's adjoint: the backward folds gradients with it
    m = rng.standard_normal(col.shape)
    xd = x.astype(np.float64)
    left, right = np.vdot(im2col(xd, KH, KW), m), np.vdot(xd, col2im(m, x.shape, KH, KW))
    assert np.isclose(left, right, rtol=1e-12), (left, right)
    print(f"check: <im2col(x), m> = {left:.6f} and <x, col2im(m)> = {right:.6f} for a random m: col2im is "
          "the adjoint of im2col")
    covers = col2im(np.ones_like(col), x.shape, KH, KW)
    show("col2im(ones): how many windows (output pixels) each input pixel feeds, channel 0", covers[0, 0],
         [f"h={h}" for h in range(H)], [f"w={j}" for j in range(W)])

    # -- 6. timed on a real layer: LeNet's conv1 on a batch of MNIST-sized images
    B, k = args.batch, min(args.naive_images, args.batch)
    images = rng.standard_normal((B, 1, 28, 28)).astype(np.float32)
    w1 = (rng.standard_normal((6, 1, 5, 5)) * 0.2).astype(np.float32)
    b1 = np.zeros(6, np.float32)
    print(f"LeNet conv1: Conv2d(1, 6, kernel 5, padding 2) on {B} images (1, 28, 28) -> ({B}, 6, 28, 28); "
          f"col is (1*5*5, {B}*28*28) = (25, {B * 784})")
    assert np.allclose(conv2d(images[:k], w1, b1, padding=2)[0], conv2d_naive(images[:k], w1, b1, padding=2)[0],
                       atol=1e-5), "im2col and the loops disagree on LeNet's conv1"
    t_im2col = seconds(lambda: conv2d(images, w1, b1, padding=2), args.repeats)
    t_naive_k = seconds(lambda: conv2d_naive(images[:k], w1, b1, padding=2), max(1, min(args.repeats, 3)))
    t_naive = t_naive_k * B / k
    print(f"  im2col + GEMM, {B:>3} images: {t_im2col * 1e3:9.2f} ms  (the median of {args.repeats} timed)")
    print(f"  naive loops,   {k:>3} image{'s' if k != 1 else ' '}: {t_naive_k * 1e3:9.2f} ms  -> scaled x{B / k:g} to {B} images: "
          f"{t_naive * 1e3:.1f} ms (the loops cost the same for every image; timing them all would take long)")
    print(f"speed-up of im2col over the naive loops: {t_naive / t_im2col:.0f}x (measured just now, on this machine)")
    return {"im2col_seconds": t_im2col, "naive_seconds": t_naive, "speedup": t_naive / t_im2col}


if __name__ == "__main__":
    main()
