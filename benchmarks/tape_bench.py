"""What the tape costs per training step: LeNet-5 through autograd against the same step by hand.

Both steps are train_bench's: 'minicnn' (zero_grad, loss = criterion(model(x), y), loss.backward(),
step()) and 'minicnn by hand' (the same forward/backward pairs called in order, no tape, the same
optimizer step). The figure is the ratio of their fastest steps, each the minimum over many steps
(the fixed cost shows best in the minimum: noise only adds time), on one thread with NumPy's BLAS
on one thread too, so the two steps do the same arithmetic the same way. The two take turns, block
by block; the whole is measured in both orders (autograd's model built first, and the by-hand
one first), since on this machine which of two same-sized models is built first moved its steps
by up to 10%, and both orders are printed with their mean.

    python benchmarks/tape_bench.py                  # batch 16 (the issue's case), about half a minute
    python benchmarks/tape_bench.py --batch 1        # almost nothing but the fixed costs
"""

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy is imported: BLAS on one thread

import _common  # noqa: F401,E402  (puts the checkout on sys.path)

import minicnn  # noqa: E402
from train_bench import batch, by_hand_step, minicnn_steps  # noqa: E402


def fastest(steps, rounds, block):
    """{name: the fastest single call of steps[name]}, the steps taking turns block by block."""
    for step in steps.values():
        for _ in range(block):
            step()
    best = {name: float("inf") for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            for _ in range(block):
                t = time.perf_counter()
                step()
                best[name] = min(best[name], time.perf_counter() - t)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16, help="images per step (default 16)")
    parser.add_argument("--rounds", type=int, default=20, help="turns each step takes (default 20)")
    args = parser.parse_args()
    minicnn.set_num_threads(1)
    x, y = batch((1, 28, 28), args.batch)
    ratios = []
    for order in ("autograd first", "by hand first"):
        if order == "autograd first":
            auto = minicnn_steps("lenet5", x, y, "fast")[1]
            hand = by_hand_step("lenet5", x, y)
        else:
            hand = by_hand_step("lenet5", x, y)
            auto = minicnn_steps("lenet5", x, y, "fast")[1]
        best = fastest({"autograd": auto, "by hand": hand}, args.rounds, 25)
        ratios.append(best["autograd"] / best["by hand"])
        print(f"LeNet-5, batch {args.batch}, 1 thread, {order}: autograd {best['autograd'] * 1e3:.3f} ms, "
              f"by hand {best['by hand'] * 1e3:.3f} ms, the tape {(best['autograd'] - best['by hand']) * 1e3:+.3f} ms "
              f"per step, autograd / by hand = {ratios[-1]:.3f}")
    print(f"mean of the two orders: autograd / by hand = {sum(ratios) / len(ratios):.3f}")


if __name__ == "__main__":
    main()
