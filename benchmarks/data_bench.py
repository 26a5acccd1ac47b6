"""The cost of data loading: one epoch of CIFAR-sized augmented batches, whole-batch against per-sample.

Data: generated uint8 images, 50,000 x 3 x 32 x 32 (the CIFAR-10 training set's size; no CIFAR
files needed), random labels. Transform, torchvision's CIFAR recipe:

    Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor(), Normalize(MEAN, STD)])

Each figure is the time to iterate one epoch of DataLoader(ds, batch_size=100, shuffle=True):
    batch form   the DataLoader gathers 100 uint8 images by index and runs each transform once
                 on the whole (100, 3, 32, 32) batch (the default for the array data sets)
    per sample   ds[i] for each index (a PIL Image when Pillow is installed, else an array),
                 the transform on each sample, then default_collate stacks them; forced here by
                 passing collate_fn=default_collate, which turns the whole-batch path off
    per sample, N threads   the same with num_workers=N (threads build whole batches ahead)

The per-sample epochs take a while (seconds to minutes), so each is timed once; the batch form
is timed over --rounds epochs (median). Compare with an epoch of the CIFAR CNN in train_bench.py.

    python benchmarks/data_bench.py               # the full 50,000 images
    python benchmarks/data_bench.py --n 5000      # a tenth: the per-sample figure scaled x10
"""

import argparse
import os
import time

import numpy as np

from _common import RESULTS, describe, fmt_seconds, machine_info, table, write_json

from minicnn.data import ArrayDataset, DataLoader, default_collate
from minicnn.data.image import pil_image_module
from minicnn.vision import transforms as T

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def epoch_seconds(loader):
    start = time.perf_counter()
    n = 0
    for x, y in loader:
        n += len(y)
    seconds = time.perf_counter() - start
    assert n == len(loader.dataset)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="images in the generated data set")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="epochs timed for the batch form (median)")
    parser.add_argument("--workers", type=int, nargs="*", default=[2], help="num_workers for extra per-sample runs")
    parser.add_argument("--out", default=os.path.join(RESULTS, "data_bench.json"))
    args = parser.parse_args(argv)

    info = machine_info()
    print("\n".join(line for line in describe(info).splitlines() if not line.startswith("torch")))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, args.n)
    augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    ds = ArrayDataset(images, labels, transform=augment)
    samples = "PIL Images" if pil_image_module() is not None else "uint8 arrays (no Pillow)"
    print(f"data: {args.n:,} generated uint8 images 3x32x32, batch {args.batch_size}, samples are {samples}\n"
          f"transform: Compose([{', '.join(map(repr, augment.transforms))}])\n")

    batch_loader = DataLoader(ds, args.batch_size, shuffle=True, seed=0)
    epoch_seconds(batch_loader)  # warm-up
    batch_form = float(np.median([epoch_seconds(batch_loader) for _ in range(args.rounds)]))
    results = {"batch form": batch_form}
    results["per sample"] = epoch_seconds(DataLoader(ds, args.batch_size, shuffle=True, seed=0,
                                                     collate_fn=default_collate))
    for w in args.workers:
        results[f"per sample, {w} threads"] = epoch_seconds(
            DataLoader(ds, args.batch_size, shuffle=True, seed=0, collate_fn=default_collate, num_workers=w))

    scale = 50_000 / args.n
    rows = [[name, fmt_seconds(s), fmt_seconds(s * scale), f"{args.n / s:,.0f}", f"{s / batch_form:.1f}x"]
            for name, s in results.items()]
    print(table(["path", "epoch", "per 50,000", "images/s", "vs batch form"], rows))
    print(f"\nper-sample / batch-form ratio: {results['per sample'] / batch_form:.1f}x")
    write_json(args.out, {"machine": info, "n": args.n, "batch_size": args.batch_size, "samples": samples,
                          "epoch_seconds": results})


if __name__ == "__main__":
    main()
