"""Where a ResNet-20 training step spends its time, by layer kind, in minicnn and in torch.

    python benchmarks/profile_bench.py              # ResNet-20, batch 128, 2 threads, 5 profiled steps
    python benchmarks/profile_bench.py --batch 32 --steps 3

minicnn: the step (zero_grad, forward, cross-entropy, backward, SGD with momentum) runs under
cProfile, and the time of each op pair is its cumulative time (what the pair's function and all it
calls took, its threads' work included, since the main thread waits for them). Each function
belongs to one kind: conv forward, conv backward, BatchNorm forward / backward, ReLU forward /
backward, the residual add and its backward, the shortcut (stride-2 pick and channel pad),
pooling, the linear layer, the loss, the optimizer. What is left of the step is 'the tape and the
rest' (recording, the walk, summing gradients, hooks, Python calls). cProfile adds a cost to every
Python call, so each kind is shown as its share of the profiled step times the unprofiled step's
time; the tape's small calls slow the most, so its share reads high (an upper bound).

The conv backward is split into dW and dx by timing conv2d_backward on ResNet-20's own layer
shapes with input_grad=False (dW only) and True (both), outside the profiler: dx = both - dW.

torch: the same network (train_bench.torch_twin, with minicnn's weights) under torch.profiler,
self CPU time of its aten ops, put into the same kinds. Quote the ratios, and only from one run:
the two are measured in the same process, one after the other.
"""

import argparse
import cProfile
import os
import pstats
import sys
import time

import numpy as np

from _common import import_torch, table, use_threads

import minicnn
from minicnn import models, nn, ops, optim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_bench  # noqa: E402

# (file ending, function name) of each op pair -> its kind. Cumulative times: a pair that calls
# another listed pair (none here) would count twice.
KINDS = {
    ("ops/conv.py", "conv2d"): "conv forward",
    ("ops/conv.py", "conv2d_backward"): "conv backward (dW + dx)",
    ("ops/norm.py", "batch_norm"): "BatchNorm forward",
    ("ops/norm.py", "batch_norm_backward"): "BatchNorm backward",
    ("ops/activation.py", "relu"): "ReLU forward",
    ("ops/activation.py", "relu_backward"): "ReLU backward",
    ("ops/tensor.py", "add"): "residual add",
    ("ops/tensor.py", "add_backward"): "residual add backward",
    ("ops/tensor.py", "pad"): "shortcut (pick, pad)",
    ("ops/tensor.py", "pad_backward"): "shortcut (pick, pad)",
    ("ops/tensor.py", "getitem"): "shortcut (pick, pad)",
    ("ops/tensor.py", "getitem_backward"): "shortcut (pick, pad)",
    ("ops/pool.py", "avg_pool2d"): "pooling",
    ("ops/pool.py", "avg_pool2d_backward"): "pooling",
    ("ops/linear.py", "linear"): "linear",
    ("ops/linear.py", "linear_backward"): "linear",
    ("ops/loss.py", "softmax_cross_entropy"): "loss",
    ("ops/loss.py", "softmax_cross_entropy_backward"): "loss",
    ("optim/optimizer.py", "step"): "optimizer",
    ("optim/optimizer.py", "zero_grad"): "optimizer",
}

# torch's ops (self CPU time; aten:: left off) -> the same kinds; the rest is 'the tape and the rest'
TORCH_KINDS = {
    "mkldnn_convolution": "conv forward", "convolution_backward": "conv backward (dW + dx)",
    "native_batch_norm": "BatchNorm forward", "native_batch_norm_backward": "BatchNorm backward",
    "clamp_min": "ReLU forward", "relu": "ReLU forward", "threshold_backward": "ReLU backward",
    "add": "residual add", "constant_pad_nd": "shortcut (pick, pad)", "slice": "shortcut (pick, pad)",
    "slice_backward": "shortcut (pick, pad)", "avg_pool2d": "pooling", "avg_pool2d_backward": "pooling",
    "addmm": "linear", "mm": "linear", "_log_softmax": "loss", "_log_softmax_backward_data": "loss",
    "nll_loss_forward": "loss", "nll_loss_backward": "loss", "add_": "optimizer", "mul_": "optimizer",
    "zero_": "optimizer", "Optimizer.step#SGD.step": "optimizer", "Optimizer.zero_grad#SGD.zero_grad": "optimizer",
}


def minicnn_profile(net, x, y, steps):
    """{kind: seconds per step} from cProfile's cumulative times, and the step's own time."""
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    xt, yt = minicnn.from_numpy(x), minicnn.from_numpy(y)

    def step():
        opt.zero_grad()
        loss_fn(net(xt), yt).backward()
        opt.step()
    step()  # warm: scratch buffers, thread pool
    start = time.perf_counter()
    for _ in range(steps):
        step()
    plain = (time.perf_counter() - start) / steps
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    profiled = (time.perf_counter() - start) / steps
    stats = pstats.Stats(profiler).stats
    kinds = {}
    for (path, _, func), (_, _, _, cumulative, _) in stats.items():
        kind = next((k for (end, name), k in KINDS.items() if func == name and path.replace(os.sep, "/").endswith(end)),
                    None)
        if kind is not None:
            kinds[kind] = kinds.get(kind, 0.0) + cumulative / steps
    # cProfile slows every Python call: each kind is taken as its share of the profiled step, times
    # the unprofiled step. The tape's many small calls slow the most, so its share is an upper bound.
    kinds["the tape and the rest"] = max(0.0, profiled - sum(kinds.values()))
    return {kind: seconds * plain / profiled for kind, seconds in kinds.items()}, plain


def conv_backward_split(net, x, repeats=3):
    """(dW seconds, dx seconds) of one step's conv backwards, timed on each Conv2d's own input."""
    shapes = []
    hooks = [m.register_forward_hook(lambda m, inp, out: shapes.append((m, inp[0].detach().numpy())))
             for m in net.modules() if isinstance(m, nn.Conv2d)]
    with minicnn.no_grad():
        net(minicnn.from_numpy(x))
    for h in hooks:
        h.remove()
    dw = both = 0.0
    for conv, inp in shapes:
        out, cache = ops.conv2d(inp, conv.weight.array, None, conv.stride, conv.padding)
        dout = np.ones_like(out)
        for input_grad in (False, True):
            best = min(_timed(lambda: ops.conv2d_backward(dout, cache, input_grad=input_grad)) for _ in range(repeats))
            if input_grad:
                both += best
            else:
                dw += best
    return dw, max(0.0, both - dw)


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def torch_profile(torch, name, state, x, y, steps):
    """{kind: seconds per step} from torch.profiler's self CPU times, and the step's own time."""
    net = train_bench.torch_twin(torch, name)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss_fn(net(xt), yt).backward()
        opt.step()
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    plain = (time.perf_counter() - start) / steps
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    kinds, total = {}, 0.0
    for event in prof.key_averages():
        seconds = event.self_cpu_time_total / 1e6 / steps
        total += seconds
        kind = TORCH_KINDS.get(event.key.replace("aten::", ""), "the tape and the rest")
        kinds[kind] = kinds.get(kind, 0.0) + seconds
    return kinds, total, plain


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="profiled steps (each side)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch = use_threads(args.threads)
    minicnn.set_impl("fast")
    x, y = train_bench.batch((3, 32, 32), args.batch)
    minicnn.seed(0)
    net = models.resnet20()
    state = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    kinds, plain = minicnn_profile(net, x, y, args.steps)
    dw, dx = conv_backward_split(net, x)
    theirs, t_total, t_plain = (torch_profile(torch, "resnet20", state, x, y, args.steps) if torch is not None
                                else ({}, None, None))
    print(f"ResNet-20, batch {args.batch}, {args.threads} threads, float32; one step: minicnn {plain * 1e3:.1f} ms"
          + (f", torch {t_plain * 1e3:.1f} ms ({t_plain / plain:.2f}x minicnn's speed)" if t_plain else "")
          + (f"; torch under its profiler: {t_total * 1e3:.1f} ms" if t_total else ""))
    order = sorted(set(kinds) | set(theirs), key=lambda k: -kinds.get(k, 0.0))
    rows = []
    for kind in order:
        ours, ref = kinds.get(kind, 0.0), theirs.get(kind)
        rows.append([kind, f"{ours * 1e3:.1f}", f"{100 * ours / plain:.1f}",
                     "-" if ref is None else f"{ref * 1e3:.1f}",
                     "-" if ref is None or t_total is None else f"{100 * ref / t_total:.1f}",
                     "-" if not ref else f"{ours / ref:.2f}"])
    print(table(["kind", "minicnn ms", "minicnn %", "torch ms", "torch %", "minicnn / torch time"], rows))
    split = dw + dx
    print(f"conv backward split, timed per layer outside the profiler: dW {dw * 1e3:.1f} ms "
          f"({100 * dw / split:.0f}%), dx {dx * 1e3:.1f} ms ({100 * dx / split:.0f}%)")


if __name__ == "__main__":
    sys.exit(main())
