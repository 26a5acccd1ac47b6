"""Shared by the benchmarks: timing, the machine's description, the FLOP count of a network and
the machine's matrix-product rate, tables, JSON and the chart.

Timing rule: warm up, sleep briefly before each timed block (OpenBLAS's and torch's thread
pools keep spinning for a moment after use and slow whichever library runs next), let the
methods take turns block by block, and report the median over the rounds.
"""

import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

PAUSE = 0.3  # seconds of quiet before each timed block


def interleaved(fns, rounds, block_seconds, slow=0.5):
    """Median seconds per call of each fn (a dict name -> fn), timed in blocks that take turns
    round by round, a pause before each, so that load from elsewhere hits them alike. Every other
    round runs them in the reverse order: on this machine the same code timed first and timed
    second in a fixed order came out up to 13% apart (a memory-layout effect that follows the
    order of the calls). A fn whose first call after the warm-up takes `slow` seconds or more
    (the Python loops) is not timed again: that call is its figure."""
    calls, result = {}, {}
    for name, fn in fns.items():  # warm up, then size each block to about block_seconds
        fn()
        time.sleep(PAUSE)
        t = time.perf_counter()
        fn()
        once = time.perf_counter() - t
        if once >= slow:
            result[name] = once
        else:
            calls[name] = max(1, int(block_seconds / max(once, 1e-6)))
    per_call = {name: [] for name in calls}
    for r in range(rounds):
        for name in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
            time.sleep(PAUSE)
            t = time.perf_counter()
            for _ in range(calls[name]):
                fns[name]()
            per_call[name].append((time.perf_counter() - t) / calls[name])
    result.update({name: float(np.median(v)) for name, v in per_call.items()})
    return {name: result[name] for name in fns}


def forward_macs(model, input_shape):
    """[(leaf module, multiply-adds)] of one forward pass of a minicnn model on a batch of
    input_shape (N, C, H, W), one entry per leaf-layer call in call order, as each layer's macs()
    reports them (through minicnn.summary, which runs the model once on zeros and leaves it as it
    was): Conv2d N*OC*OH*OW*C/G*KH*KW, Linear N*IN*OUT, BatchNorm2d one per value, biases,
    pooling and activations 0."""
    from minicnn.summary import summary
    modules = dict(model.named_modules())
    return [(modules[row["name"]], row["macs"]) for row in summary(model, tuple(input_shape), print=False).rows]


def step_flops(model, input_shape):
    """FLOPs of one inference pass and of one training step of a minicnn model on a batch of
    input_shape (N, C, H, W): {'infer': int, 'train': int}, counting 2 FLOPs per multiply-add.

    Inference is the forward's multiply-adds (forward_macs). A training step is forward +
    backward, where the backward of a Conv2d or Linear costs twice its forward (dW and dX are
    each one product as large as the forward's), except for the first of them, which gets the
    images and computes no dX (once: dW only). Other layers that report multiply-adds
    (BatchNorm2d) count theirs once more in the backward. The loss, the bias gradients, pooling,
    activations and the optimizer step are not counted: they are not multiply-adds of products."""
    from minicnn import nn
    forward = backward = 0
    first = True
    for layer, macs in forward_macs(model, input_shape):
        forward += macs
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            backward += macs if first else 2 * macs
            first = False
        else:
            backward += macs
    return {"infer": 2 * forward, "train": 2 * (forward + backward)}


def gemm_gflop_per_s(matmul, n=1024, sync=None, to_array=None, repeats=5, block_seconds=0.05):
    """The float32 matrix-product rate of matmul(a, b) on two n x n matrices, in GFLOP/s
    (2 n^3 FLOPs per product): two warm-up calls, then the best of `repeats` blocks of calls,
    each block about block_seconds long, a pause before each. to_array moves the NumPy inputs
    to where matmul wants them (a torch tensor, a GPU array); sync, when given, waits for the
    device at the end of each block, before the clock is read."""
    rng = np.random.default_rng(0)
    a, b = (rng.random((n, n), dtype=np.float32) for _ in range(2))
    if to_array is not None:
        a, b = to_array(a), to_array(b)

    def block(calls):
        t = time.perf_counter()
        for _ in range(calls):
            matmul(a, b)
        if sync is not None:
            sync()
        return time.perf_counter() - t

    block(2)
    calls = max(1, int(block_seconds / max(block(1), 1e-6)))
    best = float("inf")
    for _ in range(repeats):
        time.sleep(PAUSE)
        best = min(best, block(calls) / calls)
    return 2 * n ** 3 / best / 1e9


def use_threads(threads=2):
    """minicnn on `threads` threads (minicnn.set_num_threads), and torch, when installed, on as many
    intra-op threads; returns torch, or None (and a note) when it is not installed."""
    import minicnn
    minicnn.set_num_threads(threads)
    return import_torch(threads)


def import_torch(threads=2):
    """torch with `threads` intra-op threads, or None (and a note) when it is not installed. It leaves
    minicnn's threads as they are (a process that measures torch alone sees torch alone)."""
    try:
        import torch
    except ImportError:
        print("note: torch is not installed; its columns are left out (pip install torch)")
        return None
    torch.set_num_threads(threads)
    return torch


def machine_info(torch=None):
    """What the numbers depend on: CPU, cores, numpy and its BLAS kernel, torch, the threads of each."""
    info = {"python": platform.python_version(), "numpy": np.__version__, "cpu": platform.processor() or "?",
            "cores": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                                "threading_layer", "filepath")}
                        for p in threadpool_info() if p.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = "threadpoolctl not installed (pip install threadpoolctl); see numpy.show_config()"
    info["env"] = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                               "OMP_NUM_THREADS") if k in os.environ}
    if hasattr(os, "getloadavg"):  # other work on the machine: the figures are only as quiet as it was
        info["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    import minicnn
    info["minicnn_threads"] = minicnn.get_num_threads()
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def describe(info):
    """The machine, in the few lines printed above each table."""
    blas = info["blas"]
    if isinstance(blas, list):
        blas = "; ".join(f"{b['internal_api']} {b['version']} kernel {b['architecture']}, {b['num_threads']} threads"
                         for b in blas) or "no BLAS found by threadpoolctl"
    lines = [f"machine: {info['cpu']}, {info['cores']} cores; python {info['python']}",
             f"numpy {info['numpy']} with {blas}; minicnn {info['minicnn_threads']} threads"
             + (" (BLAS on one thread while minicnn cuts the work)" if info["minicnn_threads"] > 1 else ""),
             f"torch {info['torch']}, {info['torch_threads']} threads" if "torch" in info else "torch: not installed"]
    if "gpu" in info:
        lines.append(f"gpu: {info['gpu']}")
    if "load_average_at_start" in info:
        lines.append("load average (1, 5, 15 min) at start: " + ", ".join(map(str, info["load_average_at_start"])))
    if info["env"]:
        lines.append("environment: " + ", ".join(f"{k}={v}" for k, v in info["env"].items()))
    return "\n".join(lines)


def table(headers, rows):
    """A plain-text table with right-aligned columns (rows: lists of already formatted cells)."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def fmt_seconds(s):
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} us"


def write_json(path, payload):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {path}")


def draw(rows, path, title, ylabel):
    """The bar chart, by minicnn.viz.plot_timings (rows of case / method / seconds)."""
    try:
        from minicnn.viz import plot_timings
        plot_timings(rows, path, title=title, ylabel=ylabel)
        print(f"wrote {path}")
    except ImportError as exc:
        print(f"note: no chart ({exc})")
