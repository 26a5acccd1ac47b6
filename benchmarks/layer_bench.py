"""Layers beyond the plain convolution, minicnn against torch: a depthwise convolution (groups =
channels) and a transposed convolution, each through minicnn's 'plain' and 'fast' paths, and
BatchNorm2d in training mode (batch statistics, running averages updated).

Each case is one layer called as a training loop calls it: forward (under no_grad), and forward +
backward (dx and every parameter gradient, through the tape), float32. The methods take turns,
block by block, a pause before each, and each figure is the median over the rounds (after a
warm-up call), as in benchmarks/_common.py's `interleaved`. "vs torch" is time / torch's time.

    python benchmarks/layer_bench.py            # two to three minutes on 2 cores
    python benchmarks/layer_bench.py --quick    # fewer rounds, about a minute

A case is one row of CASES: a name, the input shape and a function that builds the layer from a
library (minicnn.nn or torch.nn); `impls` names the minicnn paths to time (None: the layer has one).
"""

import argparse
import os

from _common import (RESULTS, describe, fmt_seconds, use_threads, interleaved, machine_info,
                     table, write_json)

import minicnn

CASES = [
    {"name": "depthwise 3x3 (MobileNet block)", "input": (32, 64, 32, 32), "impls": ("plain", "fast"),
     "build": lambda nn: nn.Conv2d(64, 64, 3, padding=1, groups=64)},
    {"name": "depthwise 3x3 stride 2", "input": (32, 64, 32, 32), "impls": ("plain", "fast"),
     "build": lambda nn: nn.Conv2d(64, 64, 3, stride=2, padding=1, groups=64)},
    {"name": "grouped 3x3, groups 4", "input": (32, 64, 16, 16), "impls": ("plain", "fast"),
     "build": lambda nn: nn.Conv2d(64, 64, 3, padding=1, groups=4)},
    {"name": "ConvTranspose2d 4x4 s2 (DCGAN)", "input": (32, 64, 8, 8), "impls": ("plain", "fast"),
     "build": lambda nn: nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)},
    {"name": "ConvTranspose2d 2x2 s2 (U-Net)", "input": (16, 64, 16, 16), "impls": ("plain", "fast"),
     "build": lambda nn: nn.ConvTranspose2d(64, 32, 2, stride=2)},
    {"name": "BatchNorm2d, training (ResNet-20 stage 1)", "input": (128, 16, 32, 32), "impls": (None,),
     "build": lambda nn: nn.BatchNorm2d(16)},
]


def minicnn_method(case, impl):
    """(forward, forward + backward) closures for minicnn's layer on the given path."""
    minicnn.manual_seed(0)
    layer = case["build"](minicnn.nn)
    x = minicnn.randn(*case["input"], requires_grad=True)
    with minicnn.no_grad():
        dout = minicnn.randn(*layer(x).shape)

    def use_impl():
        if impl is not None:
            minicnn.set_impl(impl)

    def fwd():
        use_impl()
        with minicnn.no_grad():
            return layer(x)

    def fwd_bwd():
        use_impl()
        x.grad = None
        for p in layer.parameters():
            p.grad = None
        layer(x).backward(dout)
    return fwd, fwd_bwd


def torch_method(torch, case):
    layer = case["build"](torch.nn)
    x = torch.randn(*case["input"], requires_grad=True)
    with torch.no_grad():
        dout = torch.randn(layer(x).shape)

    def fwd():
        with torch.no_grad():
            return layer(x)

    def fwd_bwd():
        x.grad = None
        for p in layer.parameters():
            p.grad = None
        layer(x).backward(dout)
    return fwd, fwd_bwd


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter blocks")
    parser.add_argument("--json", default=os.path.join(RESULTS, "layer_bench.json"), help="where to write the results")
    parser.add_argument("--threads", type=int, default=2, help="threads for each library: torch.set_num_threads and minicnn.set_num_threads (default 2)")
    args = parser.parse_args()
    rounds, block = (3, 0.1) if args.quick else (7, 0.2)

    torch = use_threads(args.threads)
    info = machine_info(torch)
    print(describe(info))
    default_impl = minicnn.get_impl()
    results = []
    try:
        for case in CASES:
            methods = {f"minicnn {impl}" if impl else "minicnn": minicnn_method(case, impl) for impl in case["impls"]}
            if torch is not None:
                methods["torch"] = torch_method(torch, case)
            print(f"\n{case['name']}: input {case['input']}", flush=True)
            t_fwd = interleaved({m: f for m, (f, _) in methods.items()}, rounds, block)
            t_bwd = interleaved({m: fb for m, (_, fb) in methods.items()}, rounds, block)
            for method in methods:
                results.append({"case": case["name"], "input": list(case["input"]), "method": method,
                                "forward_s": t_fwd[method], "forward_backward_s": t_bwd[method]})
                print(f"  {method:14s} forward {fmt_seconds(t_fwd[method]):>9s}   forward+backward "
                      f"{fmt_seconds(t_bwd[method]):>9s}", flush=True)
    finally:
        minicnn.set_impl(default_impl)

    def vs_torch(r, key):
        other = next((o for o in results if o["case"] == r["case"] and o["method"] == "torch"), None)
        return None if other is None else r[key] / other[key]

    rows = []
    for r in results:
        r["time_vs_torch_forward"], r["time_vs_torch_forward_backward"] = (vs_torch(r, "forward_s"),
                                                                            vs_torch(r, "forward_backward_s"))
        cells = [("-" if v is None else f"{v:.2f}") for v in (r["time_vs_torch_forward"],
                                                              r["time_vs_torch_forward_backward"])]
        rows.append([r["case"], str(tuple(r["input"])), r["method"], fmt_seconds(r["forward_s"]),
                     fmt_seconds(r["forward_backward_s"]), *cells])
    print(f"\nTimes per call for the whole batch, float32, medians of {rounds} interleaved rounds. "
          "'vs torch' = time / torch's time (1.00 = as fast).")
    print(table(["layer", "input", "method", "forward", "fwd+bwd", "fwd vs torch", "fwd+bwd vs torch"], rows))
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        print("load average (1, 5, 15 min) at the end: " + ", ".join(map(str, info["load_average_at_end"])))
    write_json(args.json, {"benchmark": "layer_bench", "machine": info, "results": results})


if __name__ == "__main__":
    main()
