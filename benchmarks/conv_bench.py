"""Why im2col: one convolution layer timed five ways, side by side, in one run.

    naive        minicnn.ops.conv2d_naive: a Python loop over (n, o, p, q), one output value at a time
    pixel loop   a loop over the output pixels (p, q) only: one tensordot of the window over (C, KH, KW)
                 for the whole batch and every output channel at once (written below)
    im2col       minicnn.ops.conv2d: unfold into (C*KH*KW, N*OH*OW), then one matrix product;
                 'plain' (fresh buffers, padded copy) and 'fast' (the default: reused buffers, no padded copy)
    as_strided   im2col by numpy's sliding_window_view (a strided view, then one copy) (written below)
    torch        torch.nn.functional.conv2d on the CPU, when torch is installed

Forward, and forward + backward (dx, dw, db), for the layers of LeNet-5, a small CIFAR CNN and a
VGG-like block, float32. The naive loops take seconds per image, so they run on a smaller batch
and their time is scaled to the full batch (marked *); they, and any call of half a second or
more, are timed once after a warm-up call. The others take turns, block by block, a pause before each, and each
figure is the median over the rounds (after warm-up).

    python benchmarks/conv_bench.py            # a couple of minutes on 2 cores
    python benchmarks/conv_bench.py --quick    # the three smaller layers, fewer rounds
    python benchmarks/conv_bench.py --full     # naive on 4 images, more rounds
"""

import argparse
import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from _common import (RESULTS, describe, draw, fmt_seconds, use_threads, interleaved,
                     machine_info, table, write_json)

import minicnn.ops as F

# name, batch, in channels, out channels, input size, kernel, padding  (stride 1)
SHAPES = [
    ("LeNet conv1", 128, 1, 6, 28, 5, 2),
    ("LeNet conv2", 128, 6, 16, 14, 5, 0),
    ("CIFAR conv1", 64, 3, 32, 32, 3, 1),
    ("CIFAR conv2", 64, 32, 64, 16, 3, 1),
    ("VGG-like", 32, 64, 64, 32, 3, 1),
]


# -- the two variants that live only here ---------------------------------------------------


def conv2d_pixel_loop(x, w, b, stride=1, padding=0):
    """One tensordot per output pixel (p, q): out[:, :, p, q] = window (N, C, KH, KW) . w over (C, KH, KW)."""
    N, C, H, W = x.shape
    OC, _, KH, KW = w.shape
    OH, OW = (H + 2 * padding - KH) // stride + 1, (W + 2 * padding - KW) // stride + 1
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.empty((N, OC, OH, OW), dtype=x.dtype)
    for p in range(OH):
        for q in range(OW):
            window = xpad[:, :, p * stride:p * stride + KH, q * stride:q * stride + KW]
            out[:, :, p, q] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3]))
    out += b.reshape(1, OC, 1, 1)
    return out, (xpad, w, stride, padding)


def conv2d_pixel_loop_backward(dout, cache):
    """Per output pixel: dw += dout[:, :, p, q]^T . window, dwindow = dout[:, :, p, q] . w."""
    xpad, w, stride, padding = cache
    KH, KW = w.shape[2:]
    dxpad, dw = np.zeros_like(xpad), np.zeros_like(w)
    for p in range(dout.shape[2]):
        for q in range(dout.shape[3]):
            rows, cols = slice(p * stride, p * stride + KH), slice(q * stride, q * stride + KW)
            d = dout[:, :, p, q]  # (N, OC)
            dw += np.tensordot(d, xpad[:, :, rows, cols], axes=(0, 0))
            dxpad[:, :, rows, cols] += np.tensordot(d, w, axes=(1, 0))
    H, W = xpad.shape[2] - 2 * padding, xpad.shape[3] - 2 * padding
    return dxpad[:, :, padding:padding + H, padding:padding + W], dw, dout.sum(axis=(0, 2, 3))


def im2col_strided(x, KH, KW, stride=1, padding=0):
    """im2col as one copy of a strided view: (N, C, OH, OW, KH, KW) -> (C*KH*KW, N*OH*OW)."""
    N, C = x.shape[:2]
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = sliding_window_view(xpad, (KH, KW), axis=(2, 3))[:, :, ::stride, ::stride]
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * KH * KW, -1)


def conv2d_strided(x, w, b, stride=1, padding=0):
    N = x.shape[0]
    OC, C, KH, KW = w.shape
    col = im2col_strided(x, KH, KW, stride, padding)
    OH = (x.shape[2] + 2 * padding - KH) // stride + 1
    out = (w.reshape(OC, -1) @ col).reshape(OC, N, OH, -1) + b.reshape(OC, 1, 1, 1)
    return out.transpose(1, 0, 2, 3), (x.shape, w, col, stride, padding)


def conv2d_strided_backward(dout, cache):
    """dw and db as in im2col; dx by minicnn's col2im (adding slices): a strided view cannot be
    added into where windows overlap (that would take np.add.at)."""
    x_shape, w, col, stride, padding = cache
    OC, C, KH, KW = w.shape
    dout_f = dout.transpose(1, 0, 2, 3).reshape(OC, -1)
    dx = F.col2im(w.reshape(OC, -1).T @ dout_f, x_shape, KH, KW, (stride, stride), (padding, padding))
    return dx, (dout_f @ col.T).reshape(w.shape), dout_f.sum(axis=1)


# -- the methods, as (forward, forward + backward) closures ------------------------------------


def numpy_method(forward, backward):
    def make(x, w, b, padding, dout):
        def fwd():
            return forward(x, w, b, 1, padding)

        def fwd_bwd():
            out, cache = forward(x, w, b, 1, padding)
            return backward(dout, cache)
        return fwd, fwd_bwd
    return make


def im2col_method(impl):
    def make(x, w, b, padding, dout):
        def fwd():  # the fast path on each thread's own scratch, cut over the threads, as Conv2d runs it
            return F.conv2d(x, w, b, 1, padding, impl=impl)

        def fwd_bwd():
            out, cache = fwd()
            return F.conv2d_backward(dout, cache)
        return fwd, fwd_bwd
    return make


def torch_method(torch):
    def make(x, w, b, padding, dout):
        xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
        dt = torch.from_numpy(dout)

        def fwd():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, bt, 1, padding)

        def fwd_bwd():
            for t in (xt, wt, bt):
                t.grad = None
            torch.nn.functional.conv2d(xt, wt, bt, 1, padding).backward(dt)
            return xt.grad, wt.grad, bt.grad
        return fwd, fwd_bwd
    return make


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the three smaller layers only, fewer rounds")
    mode.add_argument("--full", action="store_true", help="naive on 4 images, more rounds")
    parser.add_argument("--json", default=os.path.join(RESULTS, "conv_bench.json"), help="where to write the results")
    parser.add_argument("--png", default=os.path.join(RESULTS, "conv_bench.png"),
                        help="the chart (forward + backward); the forward chart goes beside it")
    parser.add_argument("--threads", type=int, default=2, help="threads for each library: torch.set_num_threads and minicnn.set_num_threads (default 2)")
    args = parser.parse_args()
    naive_batch, rounds, block = (1, 3, 0.1) if args.quick else (4, 9, 0.3) if args.full else (1, 5, 0.15)

    torch = use_threads(args.threads)
    info = machine_info(torch)
    print(describe(info))
    methods = [("naive", numpy_method(F.conv2d_naive, F.conv2d_naive_backward)),
               ("pixel loop", numpy_method(conv2d_pixel_loop, conv2d_pixel_loop_backward)),
               ("as_strided im2col", numpy_method(conv2d_strided, conv2d_strided_backward)),
               ("im2col plain", im2col_method("plain")),
               ("im2col fast", im2col_method("fast"))]
    if torch is not None:
        methods.append(("torch", torch_method(torch)))

    rng = np.random.default_rng(0)
    results = []
    for name, N, C, OC, size, K, P in SHAPES[:3] if args.quick else SHAPES:
        x = rng.standard_normal((N, C, size, size), dtype=np.float32)
        w = rng.standard_normal((OC, C, K, K), dtype=np.float32) / np.sqrt(C * K * K, dtype=np.float32)
        b = rng.standard_normal(OC, dtype=np.float32)
        OH = size + 2 * P - K + 1
        dout = rng.standard_normal((N, OC, OH, OH), dtype=np.float32)
        col_mb = C * K * K * N * OH * OH * 4 / 2**20
        reference = F.conv2d(x, w, b, 1, P, impl="plain")[0]
        case = f"{name} ({N}, {C}, {size}, {size}) -> {OC}, {K}x{K}"
        print(f"\n{case}, pad {P}: im2col buffer {col_mb:.1f} MB", flush=True)
        batch_timed, fwds, fwd_bwds, errors = {}, {}, {}, {}
        for method, make in methods:
            n = batch_timed[method] = min(naive_batch, N) if method == "naive" else N  # naive: a few images
            fwds[method], fwd_bwds[method] = make(x[:n], w, b, P, dout[:n])
            out = fwds[method]()[0] if method != "torch" else fwds[method]().numpy()
            errors[method] = float(np.abs(np.asarray(out) - reference[:n]).max())
        t_fwd = interleaved(fwds, rounds, block)  # the loops (a second or more a call) are timed once
        t_bwd = interleaved(fwd_bwds, rounds, block)
        for method, n in batch_timed.items():
            results.append({"case": name, "shape": [N, C, size, size], "out_channels": OC, "kernel": K, "padding": P,
                            "method": method, "batch_timed": n, "forward_s": t_fwd[method] * N / n,
                            "forward_backward_s": t_bwd[method] * N / n, "max_abs_error_vs_im2col": errors[method],
                            "im2col_buffer_mb": col_mb})
            print(f"  {method:18s} forward {fmt_seconds(results[-1]['forward_s']):>9s}   forward+backward "
                  f"{fmt_seconds(results[-1]['forward_backward_s']):>9s}"
                  + (f"   (timed on {n} images, scaled to {N})" if n < N else ""), flush=True)

    def ratio(r, key, method):
        other = next((o for o in results if o["case"] == r["case"] and o["method"] == method), None)
        return None if other is None else r[key] / other[key]

    ratio_cell = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    rows = []
    for r in results:
        fwd_speedup, bwd_speedup = ratio(r, "forward_s", "naive") ** -1, ratio(r, "forward_backward_s", "naive") ** -1
        r["speedup_vs_naive_forward"], r["speedup_vs_naive_forward_backward"] = fwd_speedup, bwd_speedup
        r["time_vs_torch_forward"] = ratio(r, "forward_s", "torch")
        r["time_vs_torch_forward_backward"] = ratio(r, "forward_backward_s", "torch")
        star = "*" if r["batch_timed"] < r["shape"][0] else ""
        rows.append([r["case"], f"{r['shape'][0]}", r["method"], fmt_seconds(r["forward_s"]) + star,
                     fmt_seconds(r["forward_backward_s"]) + star, f"{fwd_speedup:.0f}x", f"{bwd_speedup:.0f}x",
                     ratio_cell(r["time_vs_torch_forward"]), ratio_cell(r["time_vs_torch_forward_backward"]),
                     f"{r['im2col_buffer_mb']:.1f}"])
    print(f"\nTimes for the whole batch, float32, medians of {rounds} interleaved rounds. * = timed on "
          f"{naive_batch} image(s) and scaled to the batch. 'vs torch' = time / torch's time (1.00 = as fast).")
    print(table(["layer", "N", "method", "forward", "fwd+bwd", "fwd speed-up", "fwd+bwd speed-up",
                 "fwd vs torch", "fwd+bwd vs torch", "col MB"], rows))
    lenet1 = next(r for r in results if r["case"] == "LeNet conv1" and r["method"] == "im2col fast")
    target = lenet1["speedup_vs_naive_forward"] >= 300
    print(f"\ntarget: im2col forward >= 300x the naive loops on LeNet conv1: "
          f"{lenet1['speedup_vs_naive_forward']:.0f}x ({'met' if target else 'NOT met'})")

    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        print("load average (1, 5, 15 min) at the end: " + ", ".join(map(str, info["load_average_at_end"])))
    write_json(args.json, {"benchmark": "conv_bench", "machine": info, "naive_batch": naive_batch, "results": results})
    for key, suffix, title in (("forward_backward_s", "", "one conv layer, forward + backward (lower is faster)"),
                               ("forward_s", "_forward", "one conv layer, forward (lower is faster)")):
        base, ext = os.path.splitext(args.png)
        draw([{"case": r["case"], "method": r["method"], "seconds": r[key]} for r in results],
             base + suffix + ext, title, "seconds per batch")


if __name__ == "__main__":
    main()
