"""ResNet-20 on CIFAR-10 (He et al. 2016, section 4.2), trained with the standard recipe.

    python3 examples/cifar10_resnet.py --data-root ~/data               # holds cifar-10-batches-py/
    python3 examples/cifar10_resnet.py --data-root ~/data --epochs 200  # the full recipe (the paper: 91.25 %)
    python3 examples/cifar10_resnet.py --data-root ~/data --limit 2000  # a quick look

The recipe of the paper and of the usual CIFAR ResNet code: SGD with momentum 0.9 and weight
decay 5e-4 (the paper: 1e-4), learning rate 0.1 annealed to 0 by a cosine over the epochs, batch
128, random 32x32 crops of the image padded by 4 and random left-right flips, each channel
normalised. The network has 269,722 parameters (the paper's 0.27 M; option A shortcuts).

How long it takes on a 2-core CPU (the machine it was written on, shared with other jobs):
one training step at batch 128 takes about 1.0 s (torch: 0.5 s; benchmarks/train_bench.py
times both), so one epoch of 50,000 images (391 steps) takes about 7 minutes and the test pass
40 s more; under load from other jobs a measured epoch on a fake CIFAR-10 of the real size
took 19 minutes. The 200 epochs of the full recipe: about a day. --limit gives a quicker look.

Everything below the imports is PyTorch code: the BasicBlock and ResNet classes with their
forward, torchvision's CIFAR10 with its transforms, DataLoader, SGD, CosineAnnealingLR,
loss.backward(), torch.no_grad(), torch.save. To run it under PyTorch, swap these import lines:

    import torch                                 <-  import minicnn as torch
    import torch.nn as nn                        <-  import minicnn.nn as nn
    import torch.nn.functional as F              <-  import minicnn.nn.functional as F
    import torch.optim as optim                  <-  import minicnn.optim as optim
    from torchvision import datasets, transforms <-  from minicnn.vision import datasets, transforms

(the curves are then drawn only where minicnn is installed too: plot_history is minicnn's).
The same network, for checkpoints and summaries: minicnn.models.resnet20(), with the same
state_dict keys. Written to --out: resnet20.pt (the weights of the last epoch), history.json
(per-epoch loss, accuracy and learning rate) and history.png (when matplotlib is there).
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, no install needed
import minicnn as torch  # noqa: E402
import minicnn.nn as nn  # noqa: E402
import minicnn.nn.functional as F  # noqa: E402
import minicnn.optim as optim  # noqa: E402
from minicnn.vision import datasets, transforms  # noqa: E402

try:
    from minicnn.viz import plot_history
except ImportError:  # under torch without minicnn: no curves drawn, history.json still written
    plot_history = None

# ---- from here on: PyTorch code -------------------------------------------------------------

MEAN = (0.4914, 0.4822, 0.4465)  # per channel (R, G, B), of CIFAR-10's training images in [0, 1]
STD = (0.2470, 0.2435, 0.2616)


class PadShortcut(nn.Module):
    """Option A: keep every second pixel and pad the channels with zeros (no parameters)."""

    def __init__(self, pad):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = PadShortcut((planes - in_planes) // 2)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(block, 16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def _make_layer(self, block, planes, num_blocks, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


def resnet20(num_classes=10):
    return ResNet(BasicBlock, [3, 3, 3], num_classes)


def train(model, device, train_loader, criterion, optimizer, epoch, log_interval):
    """One epoch; returns (mean training loss, training accuracy)."""
    model.train()
    total_loss, correct, total = 0.0, 0, 0
    start = time.time()
    for i, (inputs, labels) in enumerate(train_loader):
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * labels.size(0)
        correct += (outputs.argmax(dim=1) == labels).sum().item()
        total += labels.size(0)
        if i % log_interval == log_interval - 1:
            print(f"[{epoch}, {i + 1:4d}/{len(train_loader)}] loss {total_loss / total:.3f}, "
                  f"accuracy {100 * correct / total:.1f} %, {(time.time() - start) / (i + 1):.2f} s/step", flush=True)
    return total_loss / total, correct / total


def test(model, device, test_loader, criterion, num_classes):
    """(mean loss, accuracy, accuracy of each class) on the test set, in eval mode."""
    model.eval()
    total_loss, correct, total = 0.0, 0, 0
    class_correct, class_total = [0] * num_classes, [0] * num_classes
    with torch.no_grad():
        for images, labels in test_loader:
            images, labels = images.to(device), labels.to(device)
            outputs = model(images)
            total_loss += criterion(outputs, labels).item() * labels.size(0)
            _, predicted = torch.max(outputs.data, 1)
            hits = predicted == labels
            correct += hits.sum().item()
            total += labels.size(0)
            for k in range(num_classes):
                of_k = labels == k
                class_correct[k] += (hits & of_k).sum().item()
                class_total[k] += of_k.sum().item()
    return total_loss / total, correct / total, [c / max(t, 1) for c, t in zip(class_correct, class_total)]


def main(argv=None):
    parser = argparse.ArgumentParser(description="ResNet-20 on CIFAR-10, PyTorch code on minicnn")
    parser.add_argument("--data-root", default="./data", help="the folder that holds cifar-10-batches-py/")
    parser.add_argument("--epochs", type=int, default=1, help="1 for a quick look; the full recipe is 200")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1, help="the initial learning rate (cosine-annealed to 0)")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--limit", type=int, default=None, help="train on the first LIMIT training images only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-interval", type=int, default=50, help="steps between progress lines")
    parser.add_argument("--out", default="runs/cifar10_resnet", help="where the weights and curves go")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train_transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])
    test_transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    trainset = datasets.CIFAR10(args.data_root, train=True, download=False, transform=train_transform)
    testset = datasets.CIFAR10(args.data_root, train=False, download=False, transform=test_transform)
    if args.limit is not None:
        trainset = torch.utils.data.Subset(trainset, range(min(args.limit, len(trainset))))
    train_loader = torch.utils.data.DataLoader(trainset, batch_size=args.batch_size, shuffle=True, num_workers=0)
    test_loader = torch.utils.data.DataLoader(testset, batch_size=500, shuffle=False, num_workers=0)
    classes = testset.classes  # the names in batches.meta: airplane, automobile, bird, ...
    print(f"{len(trainset)} training images, {len(testset)} test images")

    model = resnet20(num_classes=len(classes)).to(device)
    print(f"ResNet-20: {sum(p.numel() for p in model.parameters()):,} parameters")
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    history = {"epoch": [], "train_loss": [], "train_acc": [], "val_loss": [], "val_acc": [], "lr": []}
    for epoch in range(1, args.epochs + 1):
        start = time.time()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train(model, device, train_loader, criterion, optimizer, epoch, args.log_interval)
        seconds = time.time() - start
        test_loss, test_acc, per_class = test(model, device, test_loader, criterion, len(classes))
        scheduler.step()
        print(f"epoch {epoch}: train loss {train_loss:.3f}, accuracy {100 * train_acc:.2f} %; "
              f"test loss {test_loss:.3f}, accuracy {100 * test_acc:.2f} %; lr {lr:.4f}; "
              f"{seconds:.0f} s training, {time.time() - start - seconds:.0f} s testing", flush=True)
        for key, value in zip(history, (epoch, train_loss, train_acc, test_loss, test_acc, lr)):
            history[key].append(value)
        torch.save(model.state_dict(), out / "resnet20.pt")
        with open(out / "history.json", "w") as f:
            json.dump(history, f, indent=1)

    print("test accuracy of each class, after the last epoch:")
    for name, accuracy in zip(classes, per_class):
        print(f"  {name:>10}: {100 * accuracy:.1f} %")
    written = ["resnet20.pt", "history.json"]
    if plot_history is not None:
        try:
            plot_history(history, out / "history.png", title="ResNet-20 on CIFAR-10")
            written.append("history.png")
        except ImportError as exc:
            print(f"curves not drawn: {exc}")
    print(f"saved in {out.resolve()}/: {', '.join(written)}")
    return history


if __name__ == "__main__":
    main()
