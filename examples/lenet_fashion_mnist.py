"""LeNet on Fashion-MNIST, as Dive into Deep Learning trains it, and a better recipe.

    python3 examples/lenet_fashion_mnist.py                   # the D2L recipe: about 0.78-0.80 after 10 epochs
    python3 examples/lenet_fashion_mnist.py --recipe better   # about 0.90

The D2L recipe (d2l.ai, chapter "Convolutional Neural Networks (LeNet)"): LeNet with sigmoid
activations, Xavier-uniform initial weights, plain SGD with lr 0.9, batch 256, 10 epochs,
pixels in [0, 1] without normalisation. Sigmoids saturate, so it learns slowly at first.

The better recipe: LeNet-5 with tanh (minicnn.models.lenet5), normalised inputs, Adam with
lr 1e-3 annealed to 0 on a cosine, batch 64.

Fashion-MNIST is looked for in --data-dir, ./data/fashion-mnist, the cache, and where the
Debian/Ubuntu package puts it (`sudo apt-get install dataset-fashion-mnist`), then downloaded.
Checkpoints and pictures go to --out (default runs/lenet_fashion_mnist).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, no install needed
import minicnn  # noqa: E402
from minicnn import nn, optim  # noqa: E402
from minicnn.backend import to_numpy  # noqa: E402
from minicnn.data import DataLoader, DatasetNotFoundError, FashionMNIST, Normalize  # noqa: E402
from minicnn.models import lenet5, lenet5_sigmoid  # noqa: E402
from minicnn.train import NonFiniteLossError, evaluate, fit, load_checkpoint  # noqa: E402

MEAN, STD = (0.2860,), (0.3530,)  # of Fashion-MNIST's training pixels on the [0, 1] scale
RECIPES = {  # model, optimizer, lr, batch size, normalise the inputs
    "d2l": ("lenet5_sigmoid", "sgd", 0.9, 256, False),
    "better": ("lenet5", "adam", 1e-3, 64, True),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train LeNet on Fashion-MNIST with minicnn.")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="d2l")
    parser.add_argument("--data-dir", default=None, help="folder holding the four Fashion-MNIST *-ubyte(.gz) files")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's (d2l 256, better 64)")
    parser.add_argument("--lr", type=float, default=None, help="default: the recipe's (d2l 0.9, better 1e-3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    parser.add_argument("--out", default="runs/lenet_fashion_mnist")
    args = parser.parse_args(argv)
    model_name, optimizer_name, lr, batch_size, normalized = RECIPES[args.recipe]
    lr = args.lr if args.lr is not None else lr
    batch_size = args.batch_size or batch_size

    minicnn.use(args.backend)
    minicnn.seed(args.seed)
    out = Path(args.out)

    # -- data
    try:
        train_set = FashionMNIST(args.data_dir, train=True)
        test_set = FashionMNIST(args.data_dir, train=False)
    except DatasetNotFoundError as exc:
        raise SystemExit(f"error: {exc}")
    print(f"train: {train_set}\ntest:  {test_set}")
    normalize = Normalize(MEAN, STD) if normalized else None
    train_loader = DataLoader(train_set, batch_size, shuffle=True, seed=args.seed, transform=normalize)
    test_loader = DataLoader(test_set, batch_size=1000, transform=normalize)

    # -- model and optimizer
    if args.recipe == "d2l":
        model = lenet5_sigmoid()
        for layer in model:  # D2L's init_cnn: Xavier-uniform weights, biases as torch leaves them
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(layer.weight)
        optimizer = optim.SGD(model.parameters(), lr=lr)
        scheduler = None
    else:
        model = lenet5()
        optimizer = optim.Adam(model.parameters(), lr=lr)
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    print(f"recipe {args.recipe}: {model_name}, {model.num_parameters():,} parameters, "
          f"{optimizer_name} lr {lr:g}, batch {batch_size}, {args.epochs} epochs")
    criterion = nn.CrossEntropyLoss()

    # -- train, measuring on the test set after each epoch; best.npz keeps the best epoch
    norm = {"mean": list(MEAN), "std": list(STD)} if normalized else {"mean": [0.0], "std": [1.0]}
    meta = {"model": model_name, "model_kwargs": {}, "dataset": "fashion_mnist", "classes": train_set.classes,
            "normalize": norm, "recipe": args.recipe}
    start = time.perf_counter()
    try:
        history = fit(model, criterion, optimizer, train_loader, val_loader=test_loader, epochs=args.epochs,
                      scheduler=scheduler, checkpoint_dir=out, meta=meta)
    except NonFiniteLossError as exc:
        raise SystemExit(f"error: {exc}")
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s")
    print(f"test accuracy after the last epoch: {history['val_acc'][-1]:.4f}")

    load_checkpoint(out / "best.npz", model)
    result = evaluate(model, criterion, test_loader)
    print(f"test accuracy of the best epoch: {result['accuracy']:.4f}")
    for name, accuracy in zip(test_set.classes, result["per_class_accuracy"]):
        print(f"  {name:>12}: {accuracy:.3f}")

    # -- pictures (need matplotlib)
    x, y = next(iter(test_loader))
    model.eval()
    with minicnn.no_grad():
        predictions = to_numpy(model(x[:32]).argmax(dim=1))
    try:
        from minicnn import viz
        viz.plot_history(history, out / "history.png", title=f"LeNet on Fashion-MNIST, recipe {args.recipe}")
        viz.plot_predictions(test_set.images[:32], to_numpy(y[:32]), predictions, test_set.classes,
                             out / "predictions.png")
        viz.plot_confusion_matrix(result["confusion_matrix"], test_set.classes, out / "confusion_matrix.png")
        pictures = "history.png, predictions.png, confusion_matrix.png"
    except ImportError as exc:
        pictures = None
        print(f"pictures skipped: {exc}")
    print(f"\nsaved in {out.resolve()}/: best.npz, last.npz" + (f", {pictures}" if pictures else ""))
    return result


if __name__ == "__main__":
    main()
