"""A classic PyTorch CNN tutorial program, run on minicnn by changing only its import lines.

    python3 examples/torch_tutorial.py --data-root ~/data      # holds MNIST/raw/ (torchvision's layout)
    python3 examples/torch_tutorial.py --data-root ~/data --limit 6000 --epochs 1   # a quick look

Everything below the imports is PyTorch code, byte for byte: the network class with its
forward, the DataLoader over torchvision's MNIST with ToTensor and Normalize, SGD with
momentum and a StepLR schedule, `loss.backward()`, `loss.item()`, `torch.max(outputs.data, 1)`,
`torch.no_grad()`, and `torch.save` / `torch.load` of the best model. To run it under PyTorch,
swap the five import lines back:

    import torch                                 <-  import minicnn as torch
    import torch.nn as nn                        <-  import minicnn.nn as nn
    import torch.nn.functional as F              <-  import minicnn.nn.functional as F
    import torch.optim as optim                  <-  import minicnn.optim as optim
    from torchvision import datasets, transforms <-  from minicnn.vision import datasets, transforms

The data: MNIST's four IDX files, in torchvision's layout (ROOT/MNIST/raw/) or in ROOT itself.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, no install needed
import minicnn as torch  # noqa: E402
import minicnn.nn as nn  # noqa: E402
import minicnn.nn.functional as F  # noqa: E402
import minicnn.optim as optim  # noqa: E402
from minicnn.vision import datasets, transforms  # noqa: E402

# ---- from here on: PyTorch code, unchanged ---------------------------------------------------


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


def train(model, device, train_loader, criterion, optimizer, epoch, log_interval):
    model.train()
    running_loss = 0.0
    for i, (inputs, labels) in enumerate(train_loader):
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        if i % log_interval == log_interval - 1:
            print(f"[{epoch}, {i + 1:5d}] loss: {running_loss / log_interval:.3f}")
            running_loss = 0.0


def test(model, device, test_loader, classes):
    model.eval()
    correct, total = 0, 0
    correct_pred = {classname: 0 for classname in classes}
    total_pred = {classname: 0 for classname in classes}
    with torch.no_grad():
        for images, labels in test_loader:
            images, labels = images.to(device), labels.to(device)
            outputs = model(images)
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
            for label, prediction in zip(labels, predicted):
                if label == prediction:
                    correct_pred[classes[label]] += 1
                total_pred[classes[label]] += 1
    return correct / total, {c: correct_pred[c] / max(total_pred[c], 1) for c in classes}


def main(argv=None):
    parser = argparse.ArgumentParser(description="A PyTorch MNIST tutorial, on minicnn")
    parser.add_argument("--data-root", default="./data")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--limit", type=int, default=None, help="train on the first LIMIT images only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-interval", type=int, default=200)
    parser.add_argument("--save", default="mnist_cnn.pt")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    trainset = datasets.MNIST(args.data_root, train=True, download=False, transform=transform)
    testset = datasets.MNIST(args.data_root, train=False, download=False, transform=transform)
    if args.limit is not None:
        trainset = torch.utils.data.Subset(trainset, range(args.limit))
    train_loader = torch.utils.data.DataLoader(trainset, batch_size=args.batch_size, shuffle=True, num_workers=0)
    test_loader = torch.utils.data.DataLoader(testset, batch_size=1000, shuffle=False, num_workers=0)
    classes = [str(digit) for digit in range(10)]

    model = Net().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)

    best_accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        start = time.time()
        train(model, device, train_loader, criterion, optimizer, epoch, args.log_interval)
        accuracy, _ = test(model, device, test_loader, classes)
        print(f"epoch {epoch}: test accuracy {100 * accuracy:.2f} %, lr {scheduler.get_last_lr()[0]:.4f}, "
              f"{time.time() - start:.1f} s")
        if accuracy > best_accuracy:
            best_accuracy = accuracy
            torch.save(model.state_dict(), args.save)
        scheduler.step()

    model = Net().to(device)
    model.load_state_dict(torch.load(args.save))
    accuracy, per_class = test(model, device, test_loader, classes)
    print(f"best model, reloaded from {args.save}: test accuracy {100 * accuracy:.2f} %")
    for classname, class_accuracy in per_class.items():
        print(f"  accuracy for digit {classname}: {100 * class_accuracy:.1f} %")
    return accuracy


if __name__ == "__main__":
    main()
