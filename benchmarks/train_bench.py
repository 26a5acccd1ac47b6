"""minicnn against PyTorch, same networks, same weights, same batches, in one run.

Training throughput (forward + loss + backward + optimizer step: SGD with momentum 0.9, Adam for
the CIFAR CNN, as the Performance issue times them) and inference throughput
(forward in eval mode; torch under inference_mode), in images per second, float32:

    LeNet-5 (minicnn.models.lenet5) at batches 16, 64 and 256, on 1x28x28 images
    the small CIFAR CNN (minicnn.models.cifar_cnn, 3->32->64) at batch 100, on 3x32x32 images
    ResNet-20 (minicnn.models.resnet20, batch norm and residual adds) at batch 128, on 3x32x32 images

DeZero 0.0.13 (benchmarks/_dezero.py), a NumPy engine of minicnn's own kind, runs LeNet-5 and
the CIFAR CNN beside them on the CPU, with minicnn's weights (checked equal before timing);
'minicnn fast / DeZero' is printed for each (pip install dezero==0.0.13; left out without it).

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

The limit: each row also gives the GFLOP/s it reached, FLOPs of one step / seconds per step, and
that as a percent of the machine's float32 matrix-product rate, measured in the same run
(a @ b on two 1024 x 1024 float32 matrices, best of several blocks after warm-up, for NumPy and
for torch.mm with torch's thread count). The FLOPs are counted from the layers
(_common.step_flops): 2 per multiply-add; a training step is the forward plus a backward in which
each Conv2d and Linear costs twice its forward (dW and dX), the first one once (no dX for the
images). 100% would mean every counted FLOP ran as fast as in one large product; the gap is the
time spent outside the products (copies, pooling, activations, the tape, the optimizer) and the
products' own shapes (small or thin ones run slower than 1024 x 1024).

Targets (issue 22's; minicnn fast / torch, float32, 2 threads each): throughput in TARGETS, and
peak RSS growth no larger than torch's, for training and for inference, at every network and batch
(checked only when the RSS figures are measured, i.e. not with --quick); DEZERO_TARGET, minicnn's
throughput over DeZero's wherever DeZero runs; TAPE_TARGET, the autograd step over the by-hand one.

--backend cupy runs the same table on the GPU: minicnn on CuPy (minicnn.use('cupy')) against
torch on CUDA (TF32 off in torch, so that both compute in float32; CuPy uses none unless
CUPY_TF32=1 is set), each timed call ending in
a device synchronize; the GEMM rate is CuPy's and torch's on the GPU, and the memory is the peak
extra GPU memory of three steps (CuPy's memory pool, counted by a memory hook;
torch.cuda.max_memory_allocated) instead of tracemalloc and RSS. Its targets are in GPU_TARGETS.
Without a usable GPU it exits with status 2 and says what is missing.

    python benchmarks/train_bench.py                  # a couple of minutes on 2 cores
    python benchmarks/train_bench.py --quick          # fewer rounds, no subprocess memory figures
    python benchmarks/train_bench.py --full           # more rounds
    python benchmarks/train_bench.py --backend cupy   # on the GPU
"""

import argparse
import os
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from _common import (PAUSE, RESULTS, describe, draw, fmt_seconds, gemm_gflop_per_s, import_torch, interleaved,
                     machine_info, step_flops, table, use_threads, write_json)

from _dezero import dezero_steps, import_dezero

import minicnn
from minicnn import models, nn, ops, optim
from minicnn.backend import BackendError, to_device, to_numpy

CONFIGS = [("LeNet-5", "lenet5", (1, 28, 28), (16, 64, 256)), ("CIFAR CNN", "cifar_cnn", (3, 32, 32), (100,)),
           ("ResNet-20", "resnet20", (3, 32, 32), (128,))]
DEZERO = {"lenet5", "cifar_cnn"}  # what DeZero can express (no trainable batch norm: no ResNet-20)
BY_HAND = {"lenet5", "cifar_cnn"}  # the Sequential chains by_hand_step can walk; not ResNet-20
# minimum ratio of minicnn's throughput to torch's: (network, batch or None for all, mode) -> target
# (float32, 2 threads each; issue 22's: no target for LeNet-5 at batch 16, nor for its inference at 64)
TARGETS = {("LeNet-5", 64, "train"): 0.9,
           ("LeNet-5", 256, "train"): 0.9, ("LeNet-5", 256, "infer"): 0.9,
           ("CIFAR CNN", 100, "train"): 1.0, ("CIFAR CNN", 100, "infer"): 1.0,
           ("ResNet-20", 128, "train"): 0.8, ("ResNet-20", 128, "infer"): 0.9}
# minicnn's throughput over DeZero's, at least this, training and inference, wherever DeZero runs
DEZERO_TARGET = 4.0
# the tape's cost: the autograd step's time over the by-hand step's, at most this (LeNet-5, batch 16;
# benchmarks/tape_bench.py measures it the way, on one thread as the fastest of many steps)
TAPE_TARGET = ("LeNet-5", 16, 1.05)
# the same against torch on CUDA, with --backend cupy
GPU_TARGETS = {("LeNet-5", 256, "train"): 0.5, ("ResNet-20", 128, "train"): 0.5}
# and for memory: minicnn's peak RSS growth / torch's, at most this, for training and for inference
MEMORY_TARGET = 1.0


# -- what differs between the CPU run and the GPU run ------------------------------------------


def select_backend(name):
    """Switch minicnn to backend name ('numpy' or 'cupy'); None when that worked, else the one
    line that says why not and what to run instead."""
    if name == "numpy":
        return None
    try:
        minicnn.use(name)
    except BackendError as exc:
        return (f"train_bench: --backend {name} cannot run here: {exc} "
                "To time the CPU instead, run: python benchmarks/train_bench.py")
    return None


def device_name(backend):
    """Where both libraries' models and tensors go: 'cuda' for --backend cupy, else 'cpu'."""
    return "cuda" if backend == "cupy" else "cpu"


def minicnn_tensor(array, backend):
    """A NumPy array as a minicnn Tensor on the backend's device (NumPy: sharing its memory)."""
    return minicnn.from_numpy(array) if backend == "numpy" else minicnn.tensor(array, device="cuda")


def torch_tensor(torch, array, backend):
    """A NumPy array as a torch tensor on device_name(backend) (the CPU: sharing its memory)."""
    t = torch.from_numpy(array)
    return t if backend == "numpy" else t.to(device_name(backend))


def device_sync(backend, torch=None):
    """None on the CPU (nothing runs behind Python's back); on the GPU, the call that waits until
    the queued kernels are done: CuPy's device synchronize, or torch.cuda.synchronize when torch is given."""
    if backend == "numpy":
        return None
    if torch is not None:
        return torch.cuda.synchronize
    import cupy
    return cupy.cuda.Device().synchronize


def synced(fn, sync):
    """fn itself when sync is None; else fn followed by sync(), so that a clock read after the call
    counts the device's work. Returns what fn returns."""
    if sync is None:
        return fn

    def call():
        out = fn()
        sync()
        return out
    return call


def gemm_rates(torch, backend, threads):
    """The machine's float32 matrix-product rate in GFLOP/s (1024 x 1024, _common.gemm_gflop_per_s):
    {'numpy': ..., 'torch': ...} on the CPU (torch with `threads` threads, as in the timing), or
    {'cupy': ..., 'torch': ...} on the GPU. The first key is minicnn's own array library."""
    if backend == "numpy":  # the machine's rate: NumPy's BLAS on all its threads (as minicnn on one thread has it)
        threads = minicnn.get_num_threads()
        minicnn.set_num_threads(1)
        try:
            rates = {"numpy": gemm_gflop_per_s(np.matmul)}
        finally:
            minicnn.set_num_threads(threads)
    else:
        import cupy
        rates = {"cupy": gemm_gflop_per_s(cupy.matmul, to_array=cupy.asarray, sync=device_sync(backend))}
    if torch is not None:
        time.sleep(PAUSE)
        torch.set_num_threads(threads)
        rates["torch"] = gemm_gflop_per_s(torch.mm, to_array=lambda a: torch_tensor(torch, a, backend),
                                          sync=device_sync(backend, torch))
    return rates


def gpu_peak_bytes(step, torch=None, steps=3):
    """Peak extra GPU bytes allocated during `steps` calls of step, over what was allocated before.
    minicnn (torch None): the blocks CuPy's memory pool hands out and takes back, counted by a
    cupy.cuda.MemoryHook; torch: torch.cuda.max_memory_allocated after reset_peak_memory_stats.
    Both count their allocator's blocks (rounded up to 512 bytes), neither the libraries' own
    workspaces outside it (cuBLAS's), nor what the pools keep cached."""
    if torch is not None:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    import cupy
    from cupy.cuda import memory_hook

    class PeakHook(memory_hook.MemoryHook):
        name = "train_bench_peak"

        def __init__(self):
            self.now = self.peak = 0

        def malloc_postprocess(self, **kw):
            if kw["mem_ptr"]:
                self.now += kw["mem_size"]
                self.peak = max(self.peak, self.now)

        def free_postprocess(self, **kw):
            self.now -= kw["mem_size"]

    cupy.cuda.Device().synchronize()
    hook = PeakHook()
    with hook:
        for _ in range(steps):
            step()
        cupy.cuda.Device().synchronize()
    return hook.peak


# -- the networks and their steps -----------------------------------------------------------------


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


def make_optimizer(optim_module, name, parameters):
    """The optimizer a network is timed with, from minicnn.optim or torch.optim: Adam (lr 1e-3) for
    the CIFAR CNN, as the Performance issue times it; SGD with momentum 0.9 (lr 0.01) for the others."""
    if name == "cifar_cnn":
        return optim_module.Adam(parameters, lr=1e-3)
    return optim_module.SGD(parameters, lr=0.01, momentum=0.9)


def batch(shape, B, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((B, *shape), dtype=np.float32), rng.integers(0, 10, B)


def minicnn_steps(name, x, y, impl, backend="numpy"):
    """(model, train step, inference call) closures for minicnn with the conv/pool implementation impl,
    on the backend's device (the model is built on the active backend; x and y are NumPy arrays).
    On the GPU each call ends in a device synchronize."""
    minicnn.seed(0)
    net, loss = getattr(models, name)(), nn.CrossEntropyLoss()
    if backend != "numpy":  # built on the active backend already; to() makes sure of it
        net.to(device_name(backend))
    opt = make_optimizer(optim, name, net.parameters())
    xt, yt = minicnn_tensor(x, backend), minicnn_tensor(y, backend)

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
    sync = device_sync(backend)
    return net, synced(train, sync), synced(infer, sync)


def by_hand_step(name, x, y, backend="numpy"):
    """A training step without the tape: every layer's forward pair in order, keeping the caches,
    then every backward pair in reverse, then the same optimizer step (the pairs are minicnn.ops).
    x, y: NumPy arrays; on the GPU they are moved there first and the ops get CuPy arrays."""
    minicnn.seed(0)
    net = getattr(models, name)()
    wrap = minicnn.from_numpy
    if backend != "numpy":
        net.to(device_name(backend))
        x, y, wrap = to_device(x), to_device(y), minicnn.as_tensor
    opt = make_optimizer(optim, name, net.parameters())
    pairs = {nn.Tanh: (ops.tanh, ops.tanh_backward), nn.ReLU: (ops.relu, ops.relu_backward),
             nn.Flatten: (ops.flatten, ops.flatten_backward)}

    def train():
        minicnn.set_impl("fast")
        net.train()  # as the autograd step does (it only sets flags here): the two steps differ by the tape alone
        opt.zero_grad()
        h, caches = x, []
        for layer in net:
            if isinstance(layer, nn.Conv2d):
                # each thread's own scratch, as Conv2d uses (a workspace= handed in would keep the
                # convolution on this one thread: the two steps would then differ by more than the tape)
                h, c = ops.conv2d(h, layer.weight.array, layer.bias.array, layer.stride, layer.padding)
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
                layer.weight.grad, layer.bias.grad = wrap(dw), wrap(db)
            elif isinstance(layer, nn.AvgPool2d):
                d = ops.avg_pool2d_backward(d, c)
            elif isinstance(layer, nn.MaxPool2d):
                d = ops.max_pool2d_backward(d, c)
            else:
                d = pairs[type(layer)][1](d, c)
        opt.step()
    return synced(train, device_sync(backend))


def torch_steps(torch, name, x, y, state, backend="numpy"):
    """(model, train step, inference call) closures for torch with the weights in state (NumPy
    arrays), on device_name(backend); on the GPU each call ends in torch.cuda.synchronize()."""
    net, loss = torch_twin(torch, name), torch.nn.CrossEntropyLoss()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    if backend != "numpy":
        net.to(device_name(backend))
    opt = make_optimizer(torch.optim, name, net.parameters())
    xt, yt = torch_tensor(torch, x, backend), torch_tensor(torch, y, backend)

    def train():
        net.train()
        opt.zero_grad()
        loss(net(xt), yt).backward()
        opt.step()

    def infer():
        net.eval()
        with torch.inference_mode():
            return net(xt)
    sync = device_sync(backend, torch)
    return net, synced(train, sync), synced(infer, sync)


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
    else:  # minicnn on 2 threads too, as timed (torch's process above leaves minicnn's threads alone)
        minicnn.set_num_threads(2)
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


def gpu_name():
    """The GPU CuPy runs on, for the machine description."""
    import cupy
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def memory_checks(results):
    """The memory targets: for every network and batch, minicnn fast's peak RSS growth (training,
    and inference) at most MEMORY_TARGET times torch's. Rows without both figures are left out."""
    checks = []
    for r in results:
        if r["method"] != "minicnn fast":
            continue
        t = next((h for h in results if h["network"] == r["network"] and h["batch"] == r["batch"]
                  and h["method"] == "torch"), None)
        for mode_, key in (("train", "peak_rss_growth_bytes"), ("infer", "infer_peak_rss_growth_bytes")):
            mine, theirs = r.get(key), None if t is None else t.get(key)
            if mine is None or theirs is None:
                continue
            checks.append({"network": r["network"], "batch": r["batch"], "mode": mode_, "measure": "peak RSS growth",
                           "rule": "minicnn / torch <= target", "target": MEMORY_TARGET, "minicnn_bytes": mine,
                           "torch_bytes": theirs, "ratio": mine / theirs if theirs else None,
                           "met": mine <= MEMORY_TARGET * theirs})
    return checks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="3 rounds, no subprocess memory figures")
    mode.add_argument("--full", action="store_true", help="11 rounds of longer blocks")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                        help="minicnn's array backend: numpy (CPU, against torch on the CPU; the default) or "
                             "cupy (GPU, against torch on CUDA)")
    parser.add_argument("--json", default=None,
                        help="where to write the results (default benchmarks/results/train_bench.json, "
                             "train_bench_cupy.json with --backend cupy)")
    parser.add_argument("--png", default=None, help="the chart (default beside the JSON, .png)")
    parser.add_argument("--threads", type=int, default=2, help="threads for each library: torch.set_num_threads and minicnn.set_num_threads (default 2)")
    parser.add_argument("--no-plain", action="store_true", help="skip minicnn's plain (unoptimised) path")
    parser.add_argument("--rss-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_worker:
        return rss_worker(args.rss_worker[0], args.rss_worker[1], int(args.rss_worker[2]))
    problem = select_backend(args.backend)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    gpu = args.backend == "cupy"
    stem = "train_bench_cupy" if gpu else "train_bench"
    json_path = args.json or os.path.join(RESULTS, stem + ".json")
    png_path = args.png or os.path.splitext(json_path)[0] + ".png"
    rounds, block = (3, 0.15) if args.quick else (11, 0.3) if args.full else (7, 0.2)

    torch = use_threads(args.threads)
    if torch is not None and gpu:
        if not torch.cuda.is_available():
            print(f"note: torch {torch.__version__} sees no CUDA device; its columns are left out")
            torch = None
        else:  # float32 against float32: no TF32 in torch's convolutions or products (CuPy uses none by default)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
    info = machine_info(torch)
    info["backend"] = args.backend
    if gpu:
        info["gpu"] = gpu_name()
    print(describe(info))
    gemm = gemm_rates(torch, args.backend, args.threads)
    reference = next(iter(gemm))  # minicnn's own array library: numpy, or cupy
    info["gemm_gflop_per_s"] = gemm
    info["gemm"] = {"n": 1024, "dtype": "float32", "reference": reference,
                    "torch_threads": torch.get_num_threads() if torch is not None and not gpu else None}
    print("float32 GEMM, 1024 x 1024, best of 5 blocks: "
          + ", ".join(f"{lib} {rate:.1f} GFLOP/s" for lib, rate in gemm.items()))
    dezero = None if gpu else import_dezero()  # a NumPy engine: measured on the CPU only
    impls = ["fast"] if args.no_plain else ["fast", "plain"]
    results, flop_rows = [], []
    for title, name, shape, batches in CONFIGS:
        for B in batches:
            x, y = batch(shape, B)
            train, infer = {}, {}
            net = None
            for impl in impls:
                model, train[f"minicnn {impl}"], infer[f"minicnn {impl}"] = minicnn_steps(name, x, y, impl,
                                                                                         args.backend)
                net = net or model
            if name in BY_HAND:  # ResNet-20 is no Sequential chain: no by-hand step for it (see BY_HAND)
                train["minicnn by hand"] = by_hand_step(name, x, y, args.backend)
            if torch is not None:
                state = {k: to_numpy(v) for k, v in net.state_dict().items()}
                tnet, train["torch"], infer["torch"] = torch_steps(torch, name, x, y, state, args.backend)
                with torch.no_grad():  # same weights, same function: check before timing
                    diff = np.abs(infer["torch"]().cpu().numpy() - to_numpy(infer["minicnn fast"]())).max()
                assert diff < 1e-3, f"{title}: minicnn and torch disagree by {diff}"
            if dezero is not None and name in DEZERO:
                train["dezero"], infer["dezero"] = dezero_steps(dezero, net, x, y, name)
                diff = np.abs(infer["dezero"]() - to_numpy(infer["minicnn fast"]())).max()
                assert diff < 1e-3, f"{title}: minicnn and DeZero disagree by {diff}"
            flops = step_flops(net, (B, *shape))
            flop_rows.append([title, B, f"{flops['infer'] / 1e9:.4f}", f"{flops['train'] / 1e9:.4f}"])
            print(f"{title} batch {B}: timing ...", flush=True)
            t_train = interleaved(train, rounds, block, slow=10.0)
            t_infer = interleaved(infer, rounds, block, slow=10.0)
            if gpu:  # device memory, in this process, for both libraries
                memory = {"minicnn fast gpu": gpu_peak_bytes(train["minicnn fast"]),
                          "minicnn fast infer gpu": gpu_peak_bytes(infer["minicnn fast"])}
                if torch is not None:
                    memory["torch gpu"] = gpu_peak_bytes(train["torch"], torch)
                    memory["torch infer gpu"] = gpu_peak_bytes(infer["torch"], torch)
            else:
                memory = {"minicnn fast tracemalloc": tracemalloc_peak(train["minicnn fast"]),
                          "minicnn fast infer tracemalloc": tracemalloc_peak(infer["minicnn fast"])}
                if not args.quick:
                    for lib in ["minicnn fast"] + (["torch"] if torch is not None else []):
                        memory[f"{lib} rss"] = rss_growth(lib, name, B)
                        memory[f"{lib} infer rss"] = rss_growth(lib, name, B, "infer")
            for method in train:
                t_inf = t_infer.get(method)
                r = {"network": title, "batch": B, "method": method,
                     "train_s_per_step": t_train[method], "train_images_per_s": B / t_train[method],
                     "infer_s_per_batch": t_inf, "infer_images_per_s": B / t_inf if t_inf else None,
                     "train_gflops": flops["train"] / 1e9, "infer_gflops": flops["infer"] / 1e9,
                     "train_gflop_per_s": flops["train"] / t_train[method] / 1e9,
                     "infer_gflop_per_s": flops["infer"] / t_inf / 1e9 if t_inf else None}
                r["train_percent_of_gemm"] = 100 * r["train_gflop_per_s"] / gemm[reference]
                r["infer_percent_of_gemm"] = (100 * r["infer_gflop_per_s"] / gemm[reference]
                                              if t_inf else None)
                results.append(r)
            for r in results[-len(train):]:
                if "torch" in train:
                    r["train_vs_torch"] = t_train["torch"] / r["train_s_per_step"]
                    r["infer_vs_torch"] = t_infer["torch"] / r["infer_s_per_batch"] if r["infer_s_per_batch"] else None
                lib = r["method"] if r["method"] in ("torch", "minicnn fast") else None
                if gpu:
                    r["peak_gpu_bytes"] = memory.get(f"{lib} gpu")
                    r["infer_peak_gpu_bytes"] = memory.get(f"{lib} infer gpu")
                    continue
                r["peak_tracemalloc_bytes"] = memory["minicnn fast tracemalloc"] if lib == "minicnn fast" else None
                r["infer_peak_tracemalloc_bytes"] = (memory["minicnn fast infer tracemalloc"]
                                                     if lib == "minicnn fast" else None)
                r["peak_rss_growth_bytes"] = memory.get(f"{lib} rss")
                r["infer_peak_rss_growth_bytes"] = memory.get(f"{lib} infer rss")

    ratio = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    rate = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    memory_keys = (("peak_gpu_bytes", "infer_peak_gpu_bytes") if gpu else
                   ("peak_tracemalloc_bytes", "peak_rss_growth_bytes", "infer_peak_tracemalloc_bytes",
                    "infer_peak_rss_growth_bytes"))
    rows = [[r["network"], r["batch"], r["method"], f"{r['train_images_per_s']:.0f}", ratio(r.get("train_vs_torch")),
             "-" if r["infer_images_per_s"] is None else f"{r['infer_images_per_s']:.0f}",
             ratio(r.get("infer_vs_torch")), fmt_seconds(r["train_s_per_step"]),
             rate(r["train_gflop_per_s"]), rate(r["train_percent_of_gemm"]),
             rate(r["infer_gflop_per_s"]), rate(r["infer_percent_of_gemm"])]
            + [mb(r[k]) for k in memory_keys] for r in results]
    where = "on the GPU (CuPy against torch on CUDA)" if gpu else "on the CPU"
    print(f"\nfloat32 {where}, images per second (higher is faster), median of {rounds} interleaved rounds; "
          "'x torch' = throughput / torch's.\nGFLOP/s = FLOPs of a step / its time; "
          f"'% GEMM' = that as a percent of {reference}'s 1024 x 1024 GEMM rate ({gemm[reference]:.1f} GFLOP/s).")
    if gpu:
        print("memory: peak extra GPU MB over 3 training steps (and 3 inference passes), in this process.")
        memory_headers = ["train GPU MB", "infer GPU MB"]
    else:
        print("memory: peak extra MB over 3 training steps (and 3 inference passes) (tracemalloc: NumPy's "
              "allocations; RSS: peak RSS growth in a fresh subprocess).")
        memory_headers = ["train tracemalloc MB", "train RSS MB", "infer tracemalloc MB", "infer RSS MB"]
    print(table(["network", "batch", "method", "train img/s", "x torch", "infer img/s", "x torch", "train step",
                 "train GFLOP/s", "% GEMM", "infer GFLOP/s", "% GEMM"] + memory_headers, rows))
    print("\nFLOPs counted from the layers (2 per multiply-add; training: backward = 2x forward per "
          "Conv2d/Linear, 1x for the first):")
    print(table(["network", "batch", "inference GFLOP", "training step GFLOP"], flop_rows))
    for r in results:
        if r["method"] == "minicnn fast":
            hand = next((h for h in results if h["network"] == r["network"] and h["batch"] == r["batch"]
                         and h["method"] == "minicnn by hand"), None)
            if hand is None:  # ResNet-20: no by-hand step to compare with
                continue
            r["tape_ratio"] = r["train_s_per_step"] / hand["train_s_per_step"]
            print(f"autograd step / by-hand step, {r['network']} batch {r['batch']}: "
                  f"{r['tape_ratio']:.3f} (1.00 = the tape costs nothing)")
    for r in results:
        if r["method"] == "minicnn fast":
            peer = next((h for h in results if h["network"] == r["network"] and h["batch"] == r["batch"]
                         and h["method"] == "dezero"), None)
            if peer is not None:
                r["train_vs_dezero"] = peer["train_s_per_step"] / r["train_s_per_step"]
                r["infer_vs_dezero"] = peer["infer_s_per_batch"] / r["infer_s_per_batch"]
                print(f"minicnn fast / DeZero throughput, {r['network']} batch {r['batch']}: training "
                      f"{r['train_vs_dezero']:.2f}x, inference {r['infer_vs_dezero']:.2f}x")

    checks = []
    targets = GPU_TARGETS if gpu else TARGETS
    if torch is not None:
        print(f"\ntargets (minicnn fast / torch{' on CUDA' if gpu else ''} throughput):")
        for r in results:
            if r["method"] != "minicnn fast":
                continue
            for mode_, key in (("train", "train_vs_torch"), ("infer", "infer_vs_torch")):
                target = targets.get((r["network"], r["batch"], mode_), targets.get((r["network"], None, mode_)))
                if target is not None:
                    met = r[key] >= target
                    checks.append({"network": r["network"], "batch": r["batch"], "mode": mode_,
                                   "measure": "throughput", "rule": "minicnn / torch >= target", "target": target,
                                   "ratio": r[key], "met": met})
                    print(f"  {r['network']:9s} batch {r['batch']:3d} {mode_:5s}: {r[key]:.2f}x torch, "
                          f"target >= {target}: {'met' if met else 'NOT met'}")
    if not gpu and any("train_vs_dezero" in r or "tape_ratio" in r for r in results):
        print("targets against DeZero, and the tape's cost:")
        for r in results:
            if r["method"] == "minicnn fast" and "train_vs_dezero" in r:
                for mode_ in ("train", "infer"):
                    ratio = r[f"{mode_}_vs_dezero"]
                    checks.append({"network": r["network"], "batch": r["batch"], "mode": mode_,
                                   "measure": "throughput against DeZero", "rule": "minicnn / DeZero >= target",
                                   "target": DEZERO_TARGET, "ratio": ratio, "met": ratio >= DEZERO_TARGET})
                    print(f"  {r['network']:9s} batch {r['batch']:3d} {mode_:5s}: {ratio:.2f}x DeZero, "
                          f"target >= {DEZERO_TARGET}: {'met' if ratio >= DEZERO_TARGET else 'NOT met'}")
            if (r["method"] == "minicnn fast" and "tape_ratio" in r
                    and (r["network"], r["batch"]) == TAPE_TARGET[:2]):
                met = r["tape_ratio"] <= TAPE_TARGET[2]
                checks.append({"network": r["network"], "batch": r["batch"], "mode": "train",
                               "measure": "autograd step / by-hand step", "rule": "ratio <= target",
                               "target": TAPE_TARGET[2], "ratio": r["tape_ratio"], "met": met})
                print(f"  {r['network']:9s} batch {r['batch']:3d} tape : {r['tape_ratio']:.3f} autograd / by hand "
                      f"(2 threads, median; tape_bench.py measures the issue's way), target <= {TAPE_TARGET[2]}: "
                      f"{'met' if met else 'NOT met'}")
    if torch is not None:
        if not gpu and args.quick:
            print("memory targets (peak RSS growth <= torch's): not checked with --quick (no RSS figures)")
        elif not gpu:
            memory = memory_checks(results)
            print("memory targets (minicnn fast's peak RSS growth <= torch's):")
            for c in memory:
                print(f"  {c['network']:9s} batch {c['batch']:3d} {c['mode']:5s}: minicnn {mb(c['minicnn_bytes'])} MB, "
                      f"torch {mb(c['torch_bytes'])} MB: {'met' if c['met'] else 'NOT met'}")
            if not memory:
                print("  none measured (the memory subprocesses failed; see the notes above)")
            checks += memory
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        print("load average (1, 5, 15 min) at the end: " + ", ".join(map(str, info["load_average_at_end"])))
    write_json(json_path, {"benchmark": "train_bench", "backend": args.backend, "machine": info, "rounds": rounds,
                           "results": results, "targets": checks})
    chart = [{"case": f"{r['network']} b{r['batch']} {mode_}", "method": r["method"], "seconds": r[key] / r["batch"]}
             for mode_, key in (("train", "train_s_per_step"), ("infer", "infer_s_per_batch")) for r in results
             if r[key] is not None]
    draw(chart, png_path, f"minicnn vs torch {where}, time per image (lower is faster)", "seconds per image")


if __name__ == "__main__":
    sys.exit(main())
