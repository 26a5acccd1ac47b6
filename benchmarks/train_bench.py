"""minicnn against PyTorch, same networks, same weights, same batches, in one run.

Training throughput (forward + loss + backward + SGD step) and inference throughput
(forward in eval mode; torch under inference_mode), in images per second, float32:

    LeNet-5 (minicnn.models.lenet5) at batches 16, 64 and 256, on 1x28x28 images
    the small CIFAR CNN (minicnn.models.cifar_cnn, 3->32->64) at batch 100, on 3x32x32 images
    ResNet-20 (minicnn.models.resnet20, batch norm and residual adds) at batch 128, on 3x32x32 images

minicnn's training step is the torch-style step through autograd (zero_grad, loss =
criterion(model(x), y), loss.backward(), step()), with the fast conv/pool paths (the default)
and with the plain ones (minicnn.set_impl('plain')); beside them, 'minicnn
by hand' is the explicit step that calls the same forward/backward pairs in order without the
tape, to show what the tape costs (for the Sequential chains only: ResNet-20's residual adds and
batch norms are not a chain of layers, so it has no by-hand step). The methods take turns, block by block,
with a pause before each block, so load from elsewhere on the machine hits them alike; each
figure is the median over the rounds.

Memory: the peak extra memory of three training steps (and of three inference passes) over the
built model and the batch,
    minicnn  tracemalloc peak (NumPy reports its allocations to tracemalloc), in this process;
    both     peak RSS growth (Linux VmHWM, reset first) in a fresh subprocess per network and library.

    python benchmarks/train_bench.py            # a couple of minutes on 2 cores
    python benchmarks/train_bench.py --quick    # fewer rounds, no subprocess memory figures
    python benchmarks/train_bench.py --full     # more rounds
"""

import argparse
import os
import resource
import subprocess
import sys
import tracemalloc

import numpy as np

from _common import (RESULTS, describe, draw, fmt_seconds, import_torch, interleaved, limit_blas_threads,
                     machine_info, table, write_json)

import minicnn
from minicnn import models, nn, ops, optim
from minicnn.ops import conv as conv_module
from minicnn.ops import pool as pool_module

CONFIGS = [("LeNet-5", "lenet5", (1, 28, 28), (16, 64, 256)), ("CIFAR CNN", "cifar_cnn", (3, 32, 32), (100,)),
           ("ResNet-20", "resnet20", (3, 32, 32), (128,))]
BY_HAND = {"lenet5", "cifar_cnn"}  # the Sequential chains by_hand_step can walk; not ResNet-20
# minimum ratio of minicnn's throughput to torch's: (network, batch or None for all, mode) -> target
TARGETS = {("LeNet-5", 64, "train"): 0.8, ("LeNet-5", 256, "train"): 0.6, ("CIFAR CNN", 100, "train"): 0.6,
           ("LeNet-5", None, "infer"): 0.5, ("CIFAR CNN", None, "infer"): 0.5}


def torch_twin(torch, name):
    """The same architecture in torch.nn (parameter names match minicnn's)."""
    T = torch.nn
    if name == "resnet20":
        return _torch_resnet20(torch)
    if name == "lenet5":
        return T.Sequential(T.Conv2d(1, 6, 5, padding=2), T.Tanh(), T.AvgPool2d(2), T.Conv2d(6, 16, 5), T.Tanh(),
                            T.AvgPool2d(2), T.Conv2d(16, 120, 5), T.Tanh(), T.Flatten(), T.Linear(120, 84), T.Tanh(),
                            T.Linear(84, 10))
    return T.Sequential(T.Conv2d(3, 32, 3, padding=1), T.ReLU(), T.MaxPool2d(2), T.Conv2d(32, 64, 3, padding=1),
                        T.ReLU(), T.MaxPool2d(2), T.Flatten(), T.Linear(4096, 512), T.ReLU(), T.Linear(512, 10))


def _torch_resnet20(torch):
    """minicnn.models.resnet20 in torch: BasicBlocks with option A (zero-padded identity) shortcuts."""
    T, F = torch.nn, torch.nn.functional

    class PadShortcut(T.Module):
        def __init__(self, pad):
            super().__init__()
            self.pad = pad

        def forward(self, x):
            return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))

    class BasicBlock(T.Module):
        def __init__(self, in_planes, planes, stride):
            super().__init__()
            self.conv1 = T.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn1 = T.BatchNorm2d(planes)
            self.conv2 = T.Conv2d(planes, planes, 3, padding=1, bias=False)
            self.bn2 = T.BatchNorm2d(planes)
            self.shortcut = PadShortcut((planes - in_planes) // 2) if stride != 1 else T.Sequential()

        def forward(self, x):
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(out + self.shortcut(x))

    class ResNet20(T.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = T.Conv2d(3, 16, 3, padding=1, bias=False), T.BatchNorm2d(16)
            self.layer1, self.layer2, self.layer3 = (
                T.Sequential(*[BasicBlock(planes if k else in_planes, planes, stride if k == 0 else 1)
                               for k in range(3)])
                for in_planes, planes, stride in ((16, 16, 1), (16, 32, 2), (32, 64, 2)))
            self.linear = T.Linear(64, 10)

        def forward(self, x):
            out = self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))
            return self.linear(F.avg_pool2d(out, out.size(3)).flatten(1))
    return ResNet20()


def batch(shape, B, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((B, *shape), dtype=np.float32), rng.integers(0, 10, B)


def minicnn_steps(name, x, y, impl):
    """(model, train step, inference call) closures for minicnn with the conv/pool implementation impl."""
    minicnn.seed(0)
    net, loss = getattr(models, name)(), nn.CrossEntropyLoss()
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    xt, yt = minicnn.from_numpy(x), minicnn.from_numpy(y)

    def use_impl():
        minicnn.set_impl(impl)

    def train():
        use_impl()
        net.train()
        opt.zero_grad()
        loss(net(xt), yt).backward()
        opt.step()

    def infer():
        use_impl()
        net.eval()
        with minicnn.no_grad():
            return net(xt)
    return net, train, infer


def by_hand_step(name, x, y):
    """A training step without the tape: every layer's forward pair in order, keeping the caches,
    then every backward pair in reverse, then the same SGD update (the pairs are minicnn.ops)."""
    minicnn.seed(0)
    net = getattr(models, name)()
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    workspaces = {id(layer): conv_module.Workspace() for layer in net if isinstance(layer, nn.Conv2d)}
    pairs = {nn.Tanh: (ops.tanh, ops.tanh_backward), nn.ReLU: (ops.relu, ops.relu_backward),
             nn.Flatten: (ops.flatten, ops.flatten_backward)}

    def train():
        minicnn.set_impl("fast")
        net.train()  # as the autograd step does (it only sets flags here): the two steps differ by the tape alone
        opt.zero_grad()
        h, caches = x, []
        for layer in net:
            if isinstance(layer, nn.Conv2d):
                h, c = ops.conv2d(h, layer.weight.array, layer.bias.array, layer.stride, layer.padding,
                                  workspace=workspaces[id(layer)])
            elif isinstance(layer, nn.Linear):
                h, c = ops.linear(h, layer.weight.array, layer.bias.array)
            elif isinstance(layer, nn.AvgPool2d):
                h, c = ops.avg_pool2d(h, layer.kernel_size, layer.stride)
            elif isinstance(layer, nn.MaxPool2d):
                h, c = ops.max_pool2d(h, layer.kernel_size, layer.stride)
            else:
                h, c = pairs[type(layer)][0](h)
            caches.append(c)
        _, c = ops.softmax_cross_entropy(h, y)
        d = ops.softmax_cross_entropy_backward(1.0, c)
        for k in range(len(net) - 1, -1, -1):
            layer, c = net[k], caches.pop()
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                backward = ops.conv2d_backward if isinstance(layer, nn.Conv2d) else ops.linear_backward
                d, dw, db = backward(d, c, input_grad=k > 0)
                layer.weight.grad, layer.bias.grad = minicnn.from_numpy(dw), minicnn.from_numpy(db)
            elif isinstance(layer, nn.AvgPool2d):
                d = ops.avg_pool2d_backward(d, c)
            elif isinstance(layer, nn.MaxPool2d):
                d = ops.max_pool2d_backward(d, c)
            else:
                d = pairs[type(layer)][1](d, c)
        opt.step()
    return train


def torch_steps(torch, name, x, y, state):
    net, loss = torch_twin(torch, name), torch.nn.CrossEntropyLoss()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def train():
        net.train()
        opt.zero_grad()
        loss(net(xt), yt).backward()
        opt.step()

    def infer():
        net.eval()
        with torch.inference_mode():
            return net(xt)
    return net, train, infer


def tracemalloc_peak(step, steps=3):
    """Peak bytes NumPy allocated during `steps` calls of step, over what was held before."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(steps):
        step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def _status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def rss_worker(lib, name, B):
    """Subprocess body: peak RSS growth (bytes) over three training steps of a freshly built network.
    On Linux the peak (VmHWM) is reset to the current RSS first (/proc/self/clear_refs), so import
    peaks do not hide the steps; elsewhere, the growth of getrusage's max RSS."""
    shape = next(c[2] for c in CONFIGS if c[1] == name)
    x, y = batch(shape, B)
    kind, lib = lib.split(":")
    if lib == "torch":
        torch = import_torch(2)
        state = {k: v.numpy() for k, v in torch_twin(torch, name).state_dict().items()}
        _, train, infer = torch_steps(torch, name, x, y, state)
    else:
        _, train, infer = minicnn_steps(name, x, y, lib.split()[-1])
    step = train if kind == "train" else infer
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kib("VmRSS")
        linux = True
    except OSError:  # elsewhere: the growth of the max RSS so far (in KiB on Linux, bytes on macOS)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        linux = False
    for _ in range(3):
        step()
    after = _status_kib("VmHWM") if linux else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(max(0, after - before) * (1024 if linux or sys.platform != "darwin" else 1))


def rss_growth(lib, name, B, kind="train"):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-worker", f"{kind}:{lib}", name, str(B)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode:
        print(f"note: the memory subprocess for {lib} {name} failed: {out.stderr.strip()[-300:]}")
        return None
    return int(out.stdout.split()[-1])


def mb(n):
    return "-" if n is None else f"{n / 2**20:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="3 rounds, no subprocess memory figures")
    mode.add_argument("--full", action="store_true", help="11 rounds of longer blocks")
    parser.add_argument("--json", default=os.path.join(RESULTS, "train_bench.json"), help="where to write the results")
    parser.add_argument("--png", default=os.path.join(RESULTS, "train_bench.png"), help="the chart")
    parser.add_argument("--threads", type=int, default=2, help="torch's intra-op threads (default 2)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="NumPy's BLAS threads (default: as configured, usually one per core)")
    parser.add_argument("--no-plain", action="store_true", help="skip minicnn's plain (unoptimised) path")
    parser.add_argument("--rss-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_worker:
        return rss_worker(args.rss_worker[0], args.rss_worker[1], int(args.rss_worker[2]))
    rounds, block = (3, 0.15) if args.quick else (11, 0.3) if args.full else (7, 0.2)

    torch = import_torch(args.threads)
    limit = limit_blas_threads(args.blas_threads)  # noqa: F841 (kept for the whole run)
    info = machine_info(torch)
    print(describe(info))
    impls = ["fast"] if args.no_plain else ["fast", "plain"]
    results = []
    for title, name, shape, batches in CONFIGS:
        for B in batches:
            x, y = batch(shape, B)
            train, infer = {}, {}
            net = None
            for impl in impls:
                model, train[f"minicnn {impl}"], infer[f"minicnn {impl}"] = minicnn_steps(name, x, y, impl)
                net = net or model
            if name in BY_HAND:  # ResNet-20 is no Sequential chain: no by-hand step for it (see BY_HAND)
                train["minicnn by hand"] = by_hand_step(name, x, y)
            if torch is not None:
                state = {k: v.numpy() for k, v in net.state_dict().items()}
                tnet, train["torch"], infer["torch"] = torch_steps(torch, name, x, y, state)
                with torch.no_grad():  # same weights, same function: check before timing
                    diff = np.abs(infer["torch"]().numpy() - infer["minicnn fast"]().numpy()).max()
                assert diff < 1e-3, f"{title}: minicnn and torch disagree by {diff}"
            print(f"{title} batch {B}: timing ...", flush=True)
            t_train = interleaved(train, rounds, block, slow=10.0)
            t_infer = interleaved(infer, rounds, block, slow=10.0)
            memory = {"minicnn fast tracemalloc": tracemalloc_peak(train["minicnn fast"]),
                      "minicnn fast infer tracemalloc": tracemalloc_peak(infer["minicnn fast"])}
            if not args.quick:
                for lib in ["minicnn fast"] + (["torch"] if torch is not None else []):
                    memory[f"{lib} rss"] = rss_growth(lib, name, B)
                    memory[f"{lib} infer rss"] = rss_growth(lib, name, B, "infer")
            for method in train:
                results.append({"network": title, "batch": B, "method": method,
                                "train_s_per_step": t_train[method], "train_images_per_s": B / t_train[method],
                                "infer_s_per_batch": t_infer.get(method),
                                "infer_images_per_s": B / t_infer[method] if method in t_infer else None})
            for r in results[-len(train):]:
                if "torch" in train:
                    r["train_vs_torch"] = t_train["torch"] / r["train_s_per_step"]
                    r["infer_vs_torch"] = t_infer["torch"] / r["infer_s_per_batch"] if r["infer_s_per_batch"] else None
                lib = "torch" if r["method"] == "torch" else "minicnn fast" if r["method"] == "minicnn fast" else None
                r["peak_tracemalloc_bytes"] = memory["minicnn fast tracemalloc"] if lib == "minicnn fast" else None
                r["infer_peak_tracemalloc_bytes"] = (memory["minicnn fast infer tracemalloc"]
                                                     if lib == "minicnn fast" else None)
                r["peak_rss_growth_bytes"] = memory.get(f"{lib} rss")
                r["infer_peak_rss_growth_bytes"] = memory.get(f"{lib} infer rss")

    ratio = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    rows = [[r["network"], r["batch"], r["method"], f"{r['train_images_per_s']:.0f}", ratio(r.get("train_vs_torch")),
             "-" if r["infer_images_per_s"] is None else f"{r['infer_images_per_s']:.0f}",
             ratio(r.get("infer_vs_torch")), fmt_seconds(r["train_s_per_step"]),
             mb(r["peak_tracemalloc_bytes"]), mb(r["peak_rss_growth_bytes"]), mb(r["infer_peak_tracemalloc_bytes"]),
             mb(r["infer_peak_rss_growth_bytes"])] for r in results]
    print(f"\nfloat32, images per second (higher is faster), median of {rounds} interleaved rounds; "
          "'x torch' = throughput / torch's.\nmemory: peak extra MB over 3 training steps "
          "(tracemalloc: NumPy's allocations; RSS: peak RSS growth in a fresh subprocess).")
    print(table(["network", "batch", "method", "train img/s", "x torch", "infer img/s", "x torch", "train step",
                 "train tracemalloc MB", "train RSS MB", "infer tracemalloc MB", "infer RSS MB"], rows))
    for r in results:
        if r["method"] == "minicnn fast":
            hand = next((h for h in results if h["network"] == r["network"] and h["batch"] == r["batch"]
                         and h["method"] == "minicnn by hand"), None)
            if hand is None:  # ResNet-20: no by-hand step to compare with
                continue
            print(f"autograd step / by-hand step, {r['network']} batch {r['batch']}: "
                  f"{r['train_s_per_step'] / hand['train_s_per_step']:.3f} (1.00 = the tape costs nothing)")

    checks = []
    if torch is not None:
        print("\ntargets (minicnn fast / torch throughput):")
        for r in results:
            if r["method"] != "minicnn fast":
                continue
            for mode_, key in (("train", "train_vs_torch"), ("infer", "infer_vs_torch")):
                target = TARGETS.get((r["network"], r["batch"], mode_), TARGETS.get((r["network"], None, mode_)))
                if target is not None:
                    met = r[key] >= target
                    checks.append({"network": r["network"], "batch": r["batch"], "mode": mode_, "target": target,
                                   "ratio": r[key], "met": met})
                    print(f"  {r['network']:9s} batch {r['batch']:3d} {mode_:5s}: {r[key]:.2f}x torch, "
                          f"target >= {target}: {'met' if met else 'NOT met'}")
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        print("load average (1, 5, 15 min) at the end: " + ", ".join(map(str, info["load_average_at_end"])))
    write_json(args.json, {"benchmark": "train_bench", "machine": info, "rounds": rounds, "results": results,
                           "targets": checks})
    chart = [{"case": f"{r['network']} b{r['batch']} {mode_}", "method": r["method"], "seconds": r[key] / r["batch"]}
             for mode_, key in (("train", "train_s_per_step"), ("infer", "infer_s_per_batch")) for r in results
             if r[key] is not None]
    draw(chart, args.png, "minicnn vs torch, time per image (lower is faster)", "seconds per image")


if __name__ == "__main__":
    main()
