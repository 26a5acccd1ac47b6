"""How the time per image grows with the batch and with the image size, minicnn against torch.

Two workloads, float32, minicnn's fast path against torch (torch on --threads threads, NumPy's
BLAS as configured), the same weights and the same data in both:

    conv   one Conv2d(16, 32, 3, padding=1), forward + backward (dx, dW, db), input (N, 16, S, S)
    step   one training step (forward, cross-entropy, backward, SGD with momentum 0.9) of a small
           CNN that takes any image size S divisible by 4, input (N, 3, S, S):
           conv3x3(3->16)-ReLU-maxpool2, conv3x3(16->32)-ReLU-maxpool2, AdaptiveAvgPool2d(1),
           Flatten, Linear(32 -> 10)

each swept two ways:

    batch  N = 1, 2, 4, ..., 512 at S = 32
    size   S = 28, 32, 48, 64, 96, 128 at N = 32

A point's figure is seconds per call / N (seconds per image); the two libraries take turns block
by block, a pause before each, and the figure is the median over the rounds (_common.interleaved).
Each point also gets its FLOP rate: FLOPs per call / seconds per call, 2 FLOPs per multiply-add;
the conv's forward + backward is 3x its forward (out, dW, dx), the step's FLOPs are
_common.step_flops (its first conv computes no dx).
Before timing, the two outputs are checked to agree (the conv's output, the CNN's logits).

How to read it (log-log, time per image against N or S):
    against the batch  a call has a fixed cost (Python, the tape, launching each op) whatever N
                       is, so while that dominates the time per image falls as 1/N (a slope of
                       -1); it flattens once the work per call dominates, and the batch where it
                       bends is how much work it takes to hide the overhead. Past that it stays
                       flat while the arrays fit the caches, and rises again if they no longer do.
    against the size   the work per image grows as S^2, so a slope of 2 (a constant GFLOP/s)
                       means the rate holds; a flatter start is the fixed cost again, a steeper
                       end means the buffers (a 3x3 im2col matrix holds 9x the input) have left
                       the cache and memory bandwidth sets the pace.
The printed slopes (of log time per image between neighbouring points) are these bends in numbers.
Measured figures, and where the bends fall on a given machine: benchmarks/PERFORMANCE.md, "Growth"
(figures: run `python benchmarks/growth_bench.py`).

    python benchmarks/growth_bench.py           # every point
    python benchmarks/growth_bench.py --quick   # fewer points, short blocks

Writes benchmarks/results/growth_bench.json and growth_bench.png (four log-log panels: conv
against the batch, conv against the size, step against the batch, step against the size; needs
matplotlib).
"""

import argparse
import math
import os

import numpy as np

from _common import (RESULTS, describe, fmt_seconds, use_threads, interleaved, machine_info,
                     step_flops, table, write_json)

import minicnn
from minicnn import nn, optim

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
SIZES = (28, 32, 48, 64, 96, 128)
FIXED_SIZE, FIXED_BATCH = 32, 32           # the size of the batch sweep, the batch of the size sweep
QUICK_BATCHES, QUICK_SIZES = (1, 4, 16, 64), (28, 48, 96)
CONV = (16, 32, 3, 1)                      # in channels, out channels, kernel, padding
CLASSES = 10
AGREE = 1e-3                               # largest |minicnn - torch| allowed before timing (float32)


def _data(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _agree(what, a, b, tol=AGREE):
    diff = float(np.abs(np.asarray(a) - np.asarray(b)).max())
    if not diff < tol:
        raise AssertionError(f"{what}: minicnn and torch disagree by {diff:.3g} (more than {tol})")


# -- the conv layer -------------------------------------------------------------------------------


def conv_flops(N, size):
    """FLOPs of one forward + backward of the Conv2d(16, 32, 3, padding=1) on (N, 16, size, size):
    3 products (out, dW, dx) of N*OC*OH*OW*C*KH*KW multiply-adds each, 2 FLOPs apiece."""
    C, OC, K, P = CONV
    out = size + 2 * P - K + 1
    return 2 * 3 * N * OC * out * out * C * K * K


def conv_calls(torch, N, size):
    """{'minicnn': fn, 'torch': fn}: each call runs the conv layer forward and backward (dx, dW, db)
    on the same (N, 16, size, size) batch with the same weights and the same upstream gradient,
    gradients cleared first (set to None, as torch's zero_grad does). The outputs are checked to agree."""
    C, OC, K, P = CONV
    minicnn.seed(0)
    layer = nn.Conv2d(C, OC, K, padding=P)
    x_np = _data((N, C, size, size))
    x = minicnn.from_numpy(x_np).requires_grad_()
    g_np = _data((N, OC, size + 2 * P - K + 1, size + 2 * P - K + 1), seed=1)
    g = minicnn.from_numpy(g_np)
    tlayer = torch.nn.Conv2d(C, OC, K, padding=P)
    tlayer.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in layer.state_dict().items()})
    tx, tg = torch.from_numpy(x_np.copy()).requires_grad_(), torch.from_numpy(g_np)

    def mine():
        layer.zero_grad()
        x.grad = None
        layer(x).backward(g)

    def theirs():
        tlayer.zero_grad()
        tx.grad = None
        tlayer(tx).backward(tg)

    with minicnn.no_grad(), torch.no_grad():
        _agree(f"conv N={N} S={size}", layer(x).numpy(), tlayer(tx).numpy())
    return {"minicnn": mine, "torch": theirs}


# -- the small CNN --------------------------------------------------------------------------------


def _cnn_layers(T):
    """The small CNN's layers from a torch-like nn module T (minicnn.nn or torch.nn); parameter names
    match across the two: 0.*, 3.*, 8.*."""
    return [T.Conv2d(3, 16, 3, padding=1), T.ReLU(), T.MaxPool2d(2), T.Conv2d(16, 32, 3, padding=1), T.ReLU(),
            T.MaxPool2d(2), T.AdaptiveAvgPool2d(1), T.Flatten(), T.Linear(32, CLASSES)]


def cnn_pair(torch, seed=0):
    """(minicnn net, torch net): the small CNN in both libraries, torch's with minicnn's initial weights."""
    minicnn.seed(seed)
    net = nn.Sequential(*_cnn_layers(nn))
    tnet = torch.nn.Sequential(*_cnn_layers(torch.nn))
    tnet.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in net.state_dict().items()})
    return net, tnet


def cnn_outputs(torch, N, size, nets=None):
    """The small CNN's logits (N, 10) on the same (N, 3, size, size) batch, as NumPy arrays:
    (minicnn's, torch's), both in eval mode without gradients."""
    net, tnet = nets or cnn_pair(torch)
    x = _data((N, 3, size, size))
    net.eval()
    tnet.eval()
    with minicnn.no_grad(), torch.no_grad():
        return net(minicnn.from_numpy(x)).numpy().copy(), tnet(torch.from_numpy(x)).numpy()


def step_calls(torch, N, size):
    """{'minicnn': fn, 'torch': fn}: each call is one training step of the small CNN on the same
    (N, 3, size, size) batch and labels (zero_grad, cross-entropy of the logits, backward, SGD step
    with lr 0.01 and momentum 0.9), from the same weights. The logits are checked to agree first."""
    net, tnet = cnn_pair(torch)
    mine_out, torch_out = cnn_outputs(torch, N, size, (net, tnet))
    _agree(f"small CNN N={N} S={size}", mine_out, torch_out)
    x, y = _data((N, 3, size, size)), np.random.default_rng(2).integers(0, CLASSES, N)
    xt, yt, tx, ty = minicnn.from_numpy(x), minicnn.from_numpy(y), torch.from_numpy(x), torch.from_numpy(y)
    loss, tloss = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.01, momentum=0.9)
    net.train()
    tnet.train()

    def mine():
        opt.zero_grad()
        loss(net(xt), yt).backward()
        opt.step()

    def theirs():
        topt.zero_grad()
        tloss(tnet(tx), ty).backward()
        topt.step()
    return {"minicnn": mine, "torch": theirs}


def step_flops_of(N, size):
    """FLOPs of one training step of the small CNN on (N, 3, size, size) (_common.step_flops)."""
    minicnn.seed(0)
    return step_flops(nn.Sequential(*_cnn_layers(nn)), (N, 3, size, size))["train"]


# -- measuring ------------------------------------------------------------------------------------

WORKLOADS = {"conv": (conv_calls, conv_flops), "step": (step_calls, step_flops_of)}


def measure(workload, N, size, torch, rounds=5, block=0.2):
    """One point: workload ('conv' or 'step') at batch N and image size `size`, both libraries
    interleaved. Returns a dict with 'minicnn_s_per_image' and 'torch_s_per_image' (seconds per call
    / N), 'gflops' (GFLOP per call), the GFLOP/s each reached, and 'vs_torch' (minicnn's
    throughput / torch's: torch's time / minicnn's)."""
    calls, flops = WORKLOADS[workload]
    seconds = interleaved(calls(torch, N, size), rounds, block, slow=5.0)
    f = flops(N, size)
    row = {"workload": workload, "batch": N, "size": size, "gflops": f / 1e9}
    for lib in ("minicnn", "torch"):
        row[f"{lib}_s_per_call"] = seconds[lib]
        row[f"{lib}_s_per_image"] = seconds[lib] / N
        row[f"{lib}_gflop_per_s"] = f / seconds[lib] / 1e9
    row["vs_torch"] = seconds["torch"] / seconds["minicnn"]
    return row


def sweep(workload, axis, values, torch, rounds=5, block=0.2, fixed_batch=FIXED_BATCH, fixed_size=FIXED_SIZE):
    """measure() at every value of axis ('batch': values are N at fixed_size; 'size': values are S
    at fixed_batch). Each row gets 'sweep' = axis."""
    rows = []
    for v in values:
        N, size = (v, fixed_size) if axis == "batch" else (fixed_batch, v)
        print(f"{workload} N={N} S={size}: timing ...", flush=True)
        rows.append(dict(measure(workload, N, size, torch, rounds, block), sweep=axis))
    return rows


def draw_growth(rows, path):
    """Four log-log panels of seconds per image: conv against the batch, conv against the size, step
    against the batch, step against the size; minicnn and torch in each. Needs matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullLocator
    except ImportError as exc:
        print(f"note: no chart ({exc})")
        return
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, (workload, axis) in zip(axes.flat, [("conv", "batch"), ("conv", "size"), ("step", "batch"),
                                                ("step", "size")]):
        part = [r for r in rows if r["workload"] == workload and r["sweep"] == axis]
        for lib, marker in (("minicnn", "o"), ("torch", "s")):
            ax.plot([r[axis] for r in part], [r[f"{lib}_s_per_image"] for r in part], marker=marker, label=lib)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks([r[axis] for r in part], [str(r[axis]) for r in part])
        ax.xaxis.set_minor_locator(NullLocator())  # the sweep's own values as the only x ticks
        fixed = f"S = {part[0]['size']}" if axis == "batch" and part else f"N = {part[0]['batch']}" if part else ""
        what = "Conv2d(16, 32, 3, padding=1) fwd + bwd" if workload == "conv" else "small CNN training step"
        ax.set_title(f"{what}, {fixed}", fontsize=10)
        ax.set_xlabel("batch N" if axis == "batch" else "image size S (S x S)")
        ax.set_ylabel("seconds per image")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("time per image (lower is faster), float32, log-log")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"batches {QUICK_BATCHES}, sizes {QUICK_SIZES}, 2 rounds of short blocks")
    parser.add_argument("--json", default=os.path.join(RESULTS, "growth_bench.json"), help="where to write the results")
    parser.add_argument("--png", default=os.path.join(RESULTS, "growth_bench.png"), help="the chart")
    parser.add_argument("--threads", type=int, default=2, help="threads for each library: torch.set_num_threads and minicnn.set_num_threads (default 2)")
    args = parser.parse_args()
    torch = use_threads(args.threads)
    if torch is None:
        raise SystemExit("growth_bench compares minicnn with torch: install torch (pip install torch)")
    info = machine_info(torch)
    print(describe(info))
    batches, sizes = (QUICK_BATCHES, QUICK_SIZES) if args.quick else (BATCHES, SIZES)
    rounds, block = (2, 0.05) if args.quick else (5, 0.2)
    rows = []
    for workload in WORKLOADS:
        rows += sweep(workload, "batch", batches, torch, rounds, block)
        rows += sweep(workload, "size", sizes, torch, rounds, block)

    print(f"\nfloat32, seconds per image (lower is faster), median of {rounds} interleaved rounds; "
          "'x torch' = minicnn's throughput / torch's; GFLOP/s = FLOPs per call / seconds per call.")
    print(table(["workload", "sweep", "N", "S", "minicnn / image", "torch / image", "x torch", "minicnn GFLOP/s",
                 "torch GFLOP/s"],
                [[r["workload"], r["sweep"], r["batch"], r["size"], fmt_seconds(r["minicnn_s_per_image"]),
                  fmt_seconds(r["torch_s_per_image"]), f"{r['vs_torch']:.2f}", f"{r['minicnn_gflop_per_s']:.1f}",
                  f"{r['torch_gflop_per_s']:.1f}"] for r in rows]))
    for workload in WORKLOADS:  # the log-log slopes between neighbouring points, the bends in numbers
        for axis in ("batch", "size"):
            part = [r for r in rows if r["workload"] == workload and r["sweep"] == axis]
            for lib in ("minicnn", "torch"):
                slopes = [math.log(b[f"{lib}_s_per_image"] / a[f"{lib}_s_per_image"]) / math.log(b[axis] / a[axis])
                          for a, b in zip(part, part[1:])]
                print(f"slopes of log(time per image) / log({axis}), {workload}, {lib}: "
                      + ", ".join(f"{s:+.2f}" for s in slopes))
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        print("load average (1, 5, 15 min) at the end: " + ", ".join(map(str, info["load_average_at_end"])))
    write_json(args.json, {"benchmark": "growth_bench", "machine": info, "rounds": rounds, "block_seconds": block,
                           "batch_sweep": {"size": FIXED_SIZE, "batches": list(batches)},
                           "size_sweep": {"batch": FIXED_BATCH, "sizes": list(sizes)}, "results": rows})
    draw_growth(rows, args.png)


if __name__ == "__main__":
    main()
