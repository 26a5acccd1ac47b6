"""A small CNN on CIFAR-10 (32x32 colour images, 10 classes), with data augmentation.

    python3 examples/cifar10_cnn.py --data-dir ~/data             # holds cifar-10-batches-py/
    python3 examples/cifar10_cnn.py --model cifar_cnn --epochs 20   # the larger network
    python3 examples/cifar10_cnn.py --limit 5000 --epochs 2         # a quick look

CIFAR-10 is looked for in --data-dir, ./data, the cache, then downloaded (170 MB) from
https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz; with no copy and no internet the
program stops and says where it looked.

Each training batch is augmented as in most CIFAR tutorials: a random 32x32 crop of the
image padded by 4 pixels, a random left-right flip, then normalisation per channel.
Checkpoints and pictures go to --out (default runs/cifar10_cnn).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, no install needed
import minicnn  # noqa: E402
from minicnn import nn, optim  # noqa: E402
from minicnn.backend import to_numpy  # noqa: E402
from minicnn.data import (CIFAR10, ArrayDataset, Compose, DataLoader, DatasetNotFoundError,  # noqa: E402
                          Normalize, RandomCrop, RandomHorizontalFlip)
from minicnn.models import get_model  # noqa: E402
from minicnn.train import NonFiniteLossError, evaluate, fit, load_checkpoint  # noqa: E402

MEAN = (0.4914, 0.4822, 0.4465)  # per channel (R, G, B), of CIFAR-10's training images in [0, 1]
STD = (0.2470, 0.2435, 0.2616)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train a small CNN on CIFAR-10 with minicnn.")
    parser.add_argument("--model", choices=["cifar_small_cnn", "cifar_cnn"], default="cifar_small_cnn",
                        help="cifar_small_cnn: 76,922 parameters; cifar_cnn: 2.1 million")
    parser.add_argument("--data-dir", default=None, help="folder holding cifar-10-batches-py/ (or its files)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (cosine-annealed to 0)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N training images only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    parser.add_argument("--out", default="runs/cifar10_cnn")
    args = parser.parse_args(argv)

    minicnn.use(args.backend)
    minicnn.seed(args.seed)
    out = Path(args.out)

    # -- data: uint8 (N, 3, 32, 32); augmentation runs on whole batches, as they are served
    try:
        train_set = CIFAR10(args.data_dir, train=True)
        test_set = CIFAR10(args.data_dir, train=False)
    except DatasetNotFoundError as exc:
        raise SystemExit(f"error: {exc}")
    if args.limit is not None:
        train_set = ArrayDataset(train_set.images[:args.limit], train_set.labels[:args.limit], train_set.classes)
    print(f"train: {train_set}\ntest:  {test_set}")
    augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(MEAN, STD)])
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed, transform=augment)
    test_loader = DataLoader(test_set, batch_size=500, transform=Normalize(MEAN, STD))

    # -- model, loss, optimizer, schedule
    model = get_model(args.model)
    print(model)
    print(f"{model.num_parameters():,} parameters")
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    # -- train, measuring on the test set after each epoch; best.npz keeps the best epoch
    meta = {"model": args.model, "model_kwargs": {}, "dataset": "cifar10", "classes": train_set.classes,
            "normalize": {"mean": list(MEAN), "std": list(STD)}}
    start = time.perf_counter()
    try:
        history = fit(model, criterion, optimizer, train_loader, val_loader=test_loader, epochs=args.epochs,
                      scheduler=scheduler, checkpoint_dir=out, meta=meta)
    except NonFiniteLossError as exc:
        raise SystemExit(f"error: {exc}")
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s")

    # -- the best model, on the test set, class by class
    load_checkpoint(out / "best.npz", model)
    result = evaluate(model, criterion, test_loader)
    print(f"test accuracy of the best model: {result['accuracy']:.4f}")
    for name, accuracy in zip(test_set.classes, result["per_class_accuracy"]):
        print(f"  {name:>10}: {accuracy:.3f}")

    # -- pictures (need matplotlib)
    x, y = next(iter(test_loader))
    model.eval()
    with minicnn.no_grad():
        predictions = to_numpy(model(x[:32]).argmax(dim=1))
    try:
        from minicnn import viz
        viz.plot_history(history, out / "history.png", title=f"{args.model} on CIFAR-10")
        viz.plot_predictions(test_set.images[:32], to_numpy(y[:32]), predictions, test_set.classes,
                             out / "predictions.png")
        viz.plot_confusion_matrix(result["confusion_matrix"], test_set.classes, out / "confusion_matrix.png")
        viz.plot_filters(model[0], out / "filters.png")
        pictures = "history.png, predictions.png, confusion_matrix.png, filters.png"
    except ImportError as exc:
        pictures = None
        print(f"pictures skipped: {exc}")
    print(f"\nsaved in {out.resolve()}/: best.npz, last.npz" + (f", {pictures}" if pictures else ""))
    return result


if __name__ == "__main__":
    main()
