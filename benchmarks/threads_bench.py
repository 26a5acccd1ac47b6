"""What minicnn's threads buy: the same training step and inference pass on 1 thread and on N
threads (minicnn.set_num_threads), in one process, the two taking turns block by block, with
torch on 1 and N threads beside them for reference.

    minicnn, 1 thread    the work is not cut; NumPy's BLAS runs each product on its own threads
                         (all cores), as minicnn did before it had threads
    minicnn, N threads   conv blocks, products, activations, pooling and the optimizer's update
                         cut over N threads, BLAS on one thread each (minicnn/ops/parallel.py)

Separate processes on a shared machine differ by up to 50% here, so only figures from one
process are compared. Networks: LeNet-5 (SGD with momentum) at batches 16, 64, 256, the CIFAR
CNN (Adam) at 100, ResNet-20 at 128, as in train_bench.py; float32.

    python benchmarks/threads_bench.py            # about 3 minutes on 2 cores
    python benchmarks/threads_bench.py --quick    # 3 rounds of short blocks, no ResNet-20
"""

import argparse
import os
import sys

from _common import RESULTS, describe, import_torch, interleaved, machine_info, table, write_json

import minicnn
import train_bench

CONFIGS = [("LeNet-5", "lenet5", (1, 28, 28), 16), ("LeNet-5", "lenet5", (1, 28, 28), 64),
           ("LeNet-5", "lenet5", (1, 28, 28), 256), ("CIFAR CNN (Adam)", "cifar_cnn", (3, 32, 32), 100),
           ("ResNet-20", "resnet20", (3, 32, 32), 128)]


def on_threads(fn, n, torch=None):
    """fn, run with minicnn (or torch, when given) on n threads; the count is set before each call."""
    def call():
        if torch is None:
            if minicnn.get_num_threads() != n:
                minicnn.set_num_threads(n)
        else:
            torch.set_num_threads(n)
        return fn()
    return call


def measure(name, shape, B, threads, torch, rounds, block):
    """{(library, threads, 'train' | 'infer'): seconds per call}, all timed in this process, interleaved."""
    x, y = train_bench.batch(shape, B)
    net, train, infer = train_bench.minicnn_steps(name, x, y, "fast")
    fns = {}
    for n in (1, threads):
        fns[("minicnn", n, "train")] = on_threads(train, n)
        fns[("minicnn", n, "infer")] = on_threads(infer, n)
    if torch is not None:
        state = {k: train_bench.to_numpy(v) for k, v in net.state_dict().items()}
        _, t_train, t_infer = train_bench.torch_steps(torch, name, x, y, state)
        for n in (1, threads):
            fns[("torch", n, "train")] = on_threads(t_train, n, torch)
            fns[("torch", n, "infer")] = on_threads(t_infer, n, torch)
    named = {"/".join(map(str, key)): fn for key, fn in fns.items()}
    seconds = interleaved(named, rounds, block)
    return {key: seconds["/".join(map(str, key))] for key in fns}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of short blocks, no ResNet-20")
    parser.add_argument("--threads", type=int, default=2, help="the N of 'N threads' (default 2)")
    parser.add_argument("--json", default=os.path.join(RESULTS, "threads_bench.json"), help="where to write the results")
    args = parser.parse_args()
    rounds, block = (3, 0.1) if args.quick else (5, 0.3)
    before = minicnn.get_num_threads()
    torch = import_torch(args.threads)
    info = machine_info(torch)
    print(describe(info))
    rows, results = [], []
    try:
        for title, name, shape, B in CONFIGS:
            if args.quick and name == "resnet20":
                continue
            print(f"{title} batch {B}: timing ...", flush=True)
            t = measure(name, shape, B, args.threads, torch, rounds, block)
            for kind in ("train", "infer"):
                gain = t[("minicnn", 1, kind)] / t[("minicnn", args.threads, kind)]
                row = [title, B, kind, f"{t[('minicnn', 1, kind)] * 1e3:.2f}",
                       f"{t[('minicnn', args.threads, kind)] * 1e3:.2f}", f"{gain:.2f}"]
                entry = {"network": title, "batch": B, "kind": kind, "minicnn_1": t[("minicnn", 1, kind)],
                         f"minicnn_{args.threads}": t[("minicnn", args.threads, kind)], "minicnn_gain": gain}
                if torch is not None:
                    t_gain = t[("torch", 1, kind)] / t[("torch", args.threads, kind)]
                    ratio = t[("torch", args.threads, kind)] / t[("minicnn", args.threads, kind)]
                    row += [f"{t[('torch', 1, kind)] * 1e3:.2f}", f"{t[('torch', args.threads, kind)] * 1e3:.2f}",
                            f"{t_gain:.2f}", f"{ratio:.2f}"]
                    entry.update({"torch_1": t[("torch", 1, kind)], f"torch_{args.threads}": t[("torch", args.threads, kind)],
                                  "torch_gain": t_gain, "x_torch": ratio})
                rows.append(row)
                results.append(entry)
    finally:
        minicnn.set_num_threads(before)
    n = args.threads
    headers = ["network", "batch", "step", "minicnn 1 thr ms", f"minicnn {n} thr ms", f"minicnn {n}/1 speed-up"]
    if torch is not None:
        headers += ["torch 1 thr ms", f"torch {n} thr ms", f"torch {n}/1 speed-up", f"x torch at {n}"]
    print(f"\nmedian ms per call over {rounds} interleaved rounds, one process; speed-up = time on 1 thread / on {n}")
    print(table(headers, rows))
    write_json(args.json, {"machine": info, "threads": n, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
