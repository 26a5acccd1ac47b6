"""Shared by the benchmarks: timing, the machine's description, tables, JSON and the chart.

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
    round by round, a pause before each, so that load from elsewhere hits them alike.
    A fn whose first call after the warm-up takes `slow` seconds or more (the Python loops)
    is not timed again: that call is its figure."""
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
    for _ in range(rounds):
        for name in calls:
            time.sleep(PAUSE)
            t = time.perf_counter()
            for _ in range(calls[name]):
                fns[name]()
            per_call[name].append((time.perf_counter() - t) / calls[name])
    result.update({name: float(np.median(v)) for name, v in per_call.items()})
    return {name: result[name] for name in fns}


def import_torch(threads=2):
    """torch with `threads` intra-op threads, or None (and a note) when it is not installed."""
    try:
        import torch
    except ImportError:
        print("note: torch is not installed; its columns are left out (pip install torch)")
        return None
    torch.set_num_threads(threads)
    return torch


def limit_blas_threads(n):
    """Run NumPy's BLAS on n threads (None: leave it as it is). Needs threadpoolctl."""
    if n is None:
        return None
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=n, user_api="blas")  # applied now, for the whole process


def machine_info(torch=None):
    """What the numbers depend on: CPU, cores, numpy and its BLAS kernel, torch."""
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
             f"numpy {info['numpy']} with {blas}",
             f"torch {info['torch']}, {info['torch_threads']} threads" if "torch" in info else "torch: not installed"]
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
