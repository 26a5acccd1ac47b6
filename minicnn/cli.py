"""The `minicnn` command (also `python -m minicnn`).

    minicnn train --model lenet5 --dataset mnist --epochs 10 --out runs/lenet5_mnist
    minicnn evaluate runs/lenet5_mnist/best.npz

`train` writes best.npz and last.npz into --out; `evaluate` rebuilds the network, the data set
and its normalisation from what the checkpoint's meta records, and prints the test accuracy.
"""

import argparse
import sys
import time
from pathlib import Path

from . import backend, data, nn, optim
from .data import (ArrayDataset, Compose, CorruptDatasetError, DataLoader, DatasetNotFoundError, Normalize,
                   RandomCrop, RandomHorizontalFlip)
from .models import MODELS, get_model
from .train import CheckpointError, NonFiniteLossError, evaluate, fit, load_checkpoint, load_model

# name -> (data set class name in minicnn.data, default model, channel means, channel stds)
DATASETS = {
    "mnist": ("MNIST", "lenet5", (0.1307,), (0.3081,)),
    "fashion_mnist": ("FashionMNIST", "lenet5", (0.2860,), (0.3530,)),
    "cifar10": ("CIFAR10", "cifar_small_cnn", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
ALIASES = {"fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist", "cifar-10": "cifar10"}
DEFAULT_LR = {"adam": 1e-3, "sgd": 0.05}


def build_parser():
    parser = argparse.ArgumentParser(prog="minicnn", description="Train and evaluate small CNNs written in NumPy.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model; writes best.npz and last.npz into --out")
    train.add_argument("--model", choices=sorted(MODELS), default=None,
                       help="default: lenet5 for MNIST and Fashion-MNIST, cifar_small_cnn for CIFAR-10")
    train.add_argument("--dataset", type=_dataset_name, default="mnist", help=f"one of {sorted(DATASETS)}")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd", help="sgd: with --momentum")
    train.add_argument("--lr", type=float, default=None,
                       help="default: 0.05 for sgd, 1e-3 for adam; annealed to 0 on a cosine")
    train.add_argument("--momentum", type=float, default=0.9, help="for sgd")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--data-dir", default=None, help="folder holding the data set's files")
    train.add_argument("--limit", type=int, default=None, help="train on the first N training images only")
    train.add_argument("--out", default=None, help="default: runs/<model>_<dataset>")
    train.add_argument("--resume", action="store_true", help="continue from <out>/last.npz")
    train.add_argument("--backend", choices=list(backend.BACKENDS), default="numpy")

    ev = commands.add_parser("evaluate", help="print the test accuracy of a checkpoint")
    ev.add_argument("checkpoint")
    ev.add_argument("--dataset", type=_dataset_name, default=None, help="default: the one it was trained on")
    ev.add_argument("--data-dir", default=None)
    ev.add_argument("--batch-size", type=int, default=1000)
    ev.add_argument("--backend", choices=list(backend.BACKENDS), default="numpy")
    return parser


def main(argv=None):
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        backend.use(args.backend)
        return train_command(args) if args.command == "train" else evaluate_command(args)
    except (DatasetNotFoundError, CorruptDatasetError, CheckpointError, NonFiniteLossError,
            backend.BackendError, FileNotFoundError) as exc:
        print(f"minicnn: error: {exc}", file=sys.stderr)
        return 1


def train_command(args):
    class_name, default_model, mean, std = DATASETS[args.dataset]
    model_name = args.model or default_model
    out = Path(args.out or f"runs/{model_name}_{args.dataset}")
    backend.seed(args.seed)

    train_set, test_set = _load(args.dataset, args.data_dir, train=True), _load(args.dataset, args.data_dir)
    if args.limit is not None:
        train_set = ArrayDataset(train_set.images[:args.limit], train_set.labels[:args.limit], train_set.classes)
    print(f"train: {train_set}\ntest:  {test_set}")
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed,
                              transform=_transform(args.dataset, augment=True))
    test_loader = DataLoader(test_set, 1000, transform=_transform(args.dataset))

    model_kwargs = {"num_classes": len(train_set.classes)}
    model = get_model(model_name, **model_kwargs)
    print(f"{model_name}: {model.num_parameters():,} parameters")
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    if args.optimizer == "adam":
        optimizer = optim.Adam(model.parameters(), lr=lr)
    else:
        optimizer = optim.SGD(model.parameters(), lr=lr, momentum=args.momentum)
    scheduler = optim.CosineAnnealingLR(optimizer, T_max=max(args.epochs, 1))
    criterion = nn.CrossEntropyLoss()
    meta = {"model": model_name, "model_kwargs": model_kwargs, "dataset": args.dataset,
            "classes": list(train_set.classes), "normalize": {"mean": list(mean), "std": list(std)},
            "optimizer": args.optimizer, "lr": lr, "batch_size": args.batch_size, "seed": args.seed}

    start = time.perf_counter()
    fit(model, criterion, optimizer, train_loader, test_loader, epochs=args.epochs, scheduler=scheduler,
        checkpoint_dir=out, resume=args.resume, meta=meta)
    print(f"trained in {time.perf_counter() - start:.0f} s")
    best = out / "best.npz"
    load_checkpoint(best, model)
    result = evaluate(model, criterion, test_loader)
    print(f"test accuracy (best epoch): {result['accuracy']:.4f}")
    print(f"checkpoints: {best} and {out / 'last.npz'}; try `minicnn evaluate {best}`")
    return 0


def evaluate_command(args):
    model, state = load_model(args.checkpoint)
    meta = state["meta"]
    dataset = args.dataset or meta.get("dataset")
    if dataset is None:
        raise CheckpointError(f"{args.checkpoint} does not say which data set it was trained on; pass --dataset")
    dataset = _dataset_name(dataset)
    norm = meta.get("normalize") or dict(zip(("mean", "std"), DATASETS[dataset][2:]))
    test_set = _load(dataset, args.data_dir)
    loader = DataLoader(test_set, args.batch_size, transform=Normalize(norm["mean"], norm["std"]))
    result = evaluate(model, nn.CrossEntropyLoss(), loader)
    print(f"checkpoint: {args.checkpoint} ({meta.get('model')}, epoch {state['epoch']})")
    print(f"test set:   {test_set}")
    print(f"test loss {result['loss']:.4f}  test accuracy {result['accuracy']:.4f}")
    classes = meta.get("classes") or test_set.classes
    for name, accuracy in zip(classes, result["per_class_accuracy"]):
        print(f"  {name:>12}: {accuracy:.3f}")
    return 0


def _dataset_name(name):
    name = ALIASES.get(name.lower(), name.lower())
    if name not in DATASETS:
        raise argparse.ArgumentTypeError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return name


def _load(dataset, data_dir, train=False):
    return getattr(data, DATASETS[dataset][0])(data_dir, train=train)


def _transform(dataset, augment=False):
    """Normalisation, and for CIFAR-10 training, random crops and flips first."""
    normalize = Normalize(*DATASETS[dataset][2:])
    if augment and dataset == "cifar10":
        return Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), normalize])
    return normalize


if __name__ == "__main__":
    sys.exit(main())
