"""PyTorch programs, written in the tutorials' idioms, run on minicnn with only their imports swapped.

Each program below is one string of torch code. It runs twice in a fresh namespace: after
torch's import lines, and after minicnn's (the swap table of the README). Both runs start from
the same weights (set from NumPy arrays inside the program, with `p.copy_` under no_grad, as
torch code does) and the same data, with no shuffling and no dropout, so they must agree
number for number within float32 rounding: these are torch programs, and minicnn runs them.
"""

import contextlib
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

TORCH_IMPORTS = """
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim import lr_scheduler
from torch.utils.data import DataLoader, TensorDataset
"""

MINICNN_IMPORTS = """
import minicnn as torch
import minicnn.nn as nn
import minicnn.nn.functional as F
import minicnn.optim as optim
from minicnn.optim import lr_scheduler
from minicnn.utils.data import DataLoader, TensorDataset
"""

# Shared by the programs: weights from a NumPy generator, in the order of model.parameters().
SET_WEIGHTS = """
def set_weights(model, seed):
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else p.numel()
            values = rng.uniform(-1, 1, size=tuple(p.shape)) / np.sqrt(fan_in)
            p.copy_(torch.from_numpy(values.astype(np.float32)))
"""


def run(program, imports, **inputs):
    """Run a program after the given imports; return what it left in `result`, and what it printed."""
    namespace = {"np": np, **inputs}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(imports + SET_WEIGHTS + program, "<program>", "exec"), namespace)
    return namespace["result"], out.getvalue()


def both(program, **inputs):
    return run(program, TORCH_IMPORTS, **inputs), run(program, MINICNN_IMPORTS, **inputs)


def data(n=48, shape=(1, 28, 28), classes=10, seed=0):
    """Images whose class is a bright square at a class-dependent place: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, size=(n, *shape)).astype(np.float32)
    y = rng.integers(0, classes, size=n).astype(np.int64)
    for i, label in enumerate(y):
        r, c = divmod(int(label), 4)
        x[i, :, 2 + 6 * r:6 + 6 * r, 2 + 6 * c:6 + 6 * c] += 2.0
    return x, y


CNN_CLASS_PROGRAM = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 4 * 4)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x

net = Net()
set_weights(net, 0)
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
inputs, labels = torch.from_numpy(X), torch.from_numpy(Y)
losses = []
for epoch in range(10):
    for i in range(0, len(inputs), 16):
        optimizer.zero_grad()
        outputs = net(inputs[i:i + 16])
        loss = criterion(outputs, labels[i:i + 16])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
correct = 0
total = 0
with torch.no_grad():
    outputs = net(inputs)
    _, predicted = torch.max(outputs.data, 1)
    total += labels.size(0)
    correct += (predicted == labels).sum().item()
result = {"losses": losses, "accuracy": correct / total, "logits": outputs.numpy()}
"""


def test_a_cnn_class_with_forward_trains_as_in_torch():
    X, Y = data()
    (t, _), (m, _) = both(CNN_CLASS_PROGRAM, X=X, Y=Y)
    np.testing.assert_allclose(m["losses"], t["losses"], rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(m["logits"], t["logits"], rtol=1e-3, atol=1e-4)
    assert m["accuracy"] == t["accuracy"]
    assert m["losses"][-1] < m["losses"][0]


D2L_SEQUENTIAL_PROGRAM = """
net = nn.Sequential(
    nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Flatten(),
    nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
    nn.Linear(120, 84), nn.Sigmoid(),
    nn.Linear(84, 10))
X = torch.rand(size=(1, 1, 28, 28), dtype=torch.float32)
for layer in net:
    X = layer(X)
    print(layer.__class__.__name__, 'output shape: \\t', tuple(X.shape))
result = {"n_params": sum(p.numel() for p in net.parameters()), "out": tuple(X.shape)}
"""


def test_d2l_shape_printing_loop_prints_torchs_shapes():
    (t, t_printed), (m, m_printed) = both(D2L_SEQUENTIAL_PROGRAM)
    assert m_printed == t_printed
    assert m == t == {"n_params": 61706, "out": (1, 10)}


RESIDUAL_PROGRAM = """
class Residual(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, X):
        Y = F.relu(self.conv1(X))
        Y = self.conv2(Y)
        return F.relu(Y + X)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, kernel_size=3, padding=1)
        self.blocks = nn.Sequential(Residual(8), Residual(8))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.head(x)

net = Net()
set_weights(net, 1)
optimizer = optim.Adam(net.parameters(), lr=1e-2)
inputs, labels = torch.from_numpy(X), torch.from_numpy(Y)
losses = []
for step in range(5):
    optimizer.zero_grad()
    loss = F.cross_entropy(net(inputs), labels)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
grads = [p.grad.numpy().copy() for p in net.parameters()]
result = {"losses": losses, "grads": grads}
"""


def test_a_residual_network_gives_torchs_losses_and_gradients():
    X, Y = data(n=16, shape=(1, 12, 12))
    (t, _), (m, _) = both(RESIDUAL_PROGRAM, X=X, Y=Y)
    np.testing.assert_allclose(m["losses"], t["losses"], rtol=1e-4, atol=1e-5)
    assert len(m["grads"]) == len(t["grads"])
    for gm, gt in zip(m["grads"], t["grads"]):
        np.testing.assert_allclose(gm, gt, rtol=1e-3, atol=1e-5)


LOOP_SAVE_RELOAD_PROGRAM = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(4 * 13 * 13, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))

model = Net()
set_weights(model, 2)
dataset = TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
loader = DataLoader(dataset, batch_size=12, shuffle=False)
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
scheduler = lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
best_acc, history = 0.0, []
for epoch in range(4):
    model.train()
    running_loss = 0.0
    for inputs, labels in loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        running_loss += loss.item() * inputs.size(0)
    scheduler.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for inputs, labels in loader:
            preds = model(inputs).argmax(dim=1)
            correct += (preds == labels).sum().item()
    acc = correct / len(dataset)
    history.append((running_loss / len(dataset), acc, scheduler.get_last_lr()[0]))
    if acc >= best_acc:
        best_acc = acc
        torch.save(model.state_dict(), PATH)

reloaded = Net()
reloaded.load_state_dict(torch.load(PATH))
reloaded.eval()
with torch.no_grad():
    logits = reloaded(torch.from_numpy(X))
result = {"history": history, "best_acc": best_acc, "logits": logits.numpy()}
"""


def test_a_training_loop_with_dataloader_schedule_clipping_and_save_reload_matches_torch(tmp_path):
    X, Y = data(n=36)
    t, _ = run(LOOP_SAVE_RELOAD_PROGRAM, TORCH_IMPORTS, X=X, Y=Y, PATH=str(tmp_path / "torch.pt"))
    m, _ = run(LOOP_SAVE_RELOAD_PROGRAM, MINICNN_IMPORTS, X=X, Y=Y, PATH=str(tmp_path / "minicnn.pt"))
    np.testing.assert_allclose(np.array(m["history"]), np.array(t["history"]), rtol=1e-3, atol=1e-5)
    assert m["best_acc"] == t["best_acc"]
    np.testing.assert_allclose(m["logits"], t["logits"], rtol=1e-3, atol=1e-4)


TENSOR_IDIOMS_PROGRAM = """
classes = ('plane', 'car', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')
logits = torch.from_numpy(L)
probs = F.softmax(logits, dim=1)
top_p, top_class = probs.max(dim=1)
pred = torch.argmax(logits, 1)
names = [classes[pred[j]] for j in range(4)]
confident = (top_p > 0.2).sum().item()
x = torch.arange(12).view(3, 4).float()
y = x.unsqueeze(0).permute(2, 1, 0).squeeze()
stats = [x.mean().item(), x.sum(dim=0).tolist(), x.max().item(), y.shape[0], len(x),
         x[:, 1].tolist(), (x * 2 + 1 - x / 2).tolist(), torch.cat([x, x], dim=0).shape[0],
         torch.stack([x, x]).shape[0], x.dtype == torch.float32, torch.tensor([1, 2]).dtype == torch.int64,
         x.long().dtype == torch.long, torch.zeros(2, 3).numel(), x.t().shape[0], int(x[0, 3].item())]
result = {"names": names, "confident": confident, "stats": stats, "top_class": top_class.tolist()}
"""


def test_tensor_idioms_of_the_tutorials_give_torchs_values():
    L = np.random.default_rng(3).normal(size=(4, 10)).astype(np.float32)
    (t, _), (m, _) = both(TENSOR_IDIOMS_PROGRAM, L=L)
    assert m["names"] == t["names"]
    assert m["confident"] == t["confident"]
    assert m["top_class"] == t["top_class"]
    assert m["stats"] == t["stats"]


INIT_AND_MODULES_PROGRAM = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.ModuleList([nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)])
        self.fc = nn.Linear(4 * 8 * 8, 10)
        self.register_buffer("scale", torch.ones(1))

    def forward(self, x):
        for conv in self.body:
            x = F.relu(conv(x))
        return self.fc(x.flatten(1)) * self.scale

def init_weights(m):
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.constant_(m.bias, 0.1)

net = Net()
net.apply(init_weights)
names = [name for name, _ in net.named_parameters()]
state_keys = list(net.state_dict().keys())
modules = [name for name, _ in net.named_modules()]
n = sum(p.numel() for p in net.parameters() if p.requires_grad)
net.fc.requires_grad_(False)
trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
biases = net.fc.bias.detach().numpy().tolist()
result = {"names": names, "state_keys": state_keys, "modules": modules, "n": n, "trainable": trainable,
          "biases": biases, "training": [net.training, net.eval().training, net.train().body[0].training]}
"""


def test_module_tree_init_buffers_and_freezing_behave_as_in_torch():
    (t, _), (m, _) = both(INIT_AND_MODULES_PROGRAM)
    assert m["names"] == t["names"]
    assert m["state_keys"] == t["state_keys"]
    assert m["modules"] == t["modules"]
    assert (m["n"], m["trainable"]) == (t["n"], t["trainable"])
    np.testing.assert_allclose(m["biases"], t["biases"], rtol=1e-6)
    assert m["training"] == t["training"] == [True, False, True]


# -- programs as files: a model zoo package and a training script, imports swapped as a user does ----
#
# Written here in the style of the public CIFAR model zoos and their main.py: a models/ package of
# one file per network (with the idioms those files use: _make_layer, cfg dicts, groups, channel
# shuffle by view/transpose, torch.cat, squeeze-excite gates, self.__getattr__ on numbered
# levels), and a script with argparse, cudnn flags, a device line, a progress bar and a checkpoint.
# Each file is written with torch's imports; the minicnn copy has only its import lines swapped.

import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

SWAPS = [(r"^(\s*)import torch\.nn\.functional as F$", r"\1import minicnn.nn.functional as F"),
         (r"^(\s*)import torch\.nn as nn$", r"\1import minicnn.nn as nn"),
         (r"^(\s*)import torch\.optim as optim$", r"\1import minicnn.optim as optim"),
         (r"^(\s*)import torch\.backends\.cudnn as cudnn$", r"\1import minicnn.backends.cudnn as cudnn"),
         (r"^(\s*)from torch\.(\S+) import", r"\1from minicnn.\2 import"),
         (r"^(\s*)import torch$", r"\1import minicnn as torch")]


def swap_imports(source):
    """The import lines of a torch program, made minicnn's; nothing else is touched."""
    for pattern, replacement in SWAPS:
        source = re.sub(pattern, replacement, source, flags=re.M)
    return source


ZOO = {
    "models/__init__.py": """
        from .resnet import ResNet18ish, Bottlenecked
        from .vgg import VGG
        from .mobile import MobileNetish
        from .shuffle import ShuffleNetish
        from .dense import DenseNetish
        from .tree import Treeish
        """,
    "models/resnet.py": """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F


        class BasicBlock(nn.Module):
            expansion = 1

            def __init__(self, in_planes, planes, stride=1):
                super(BasicBlock, self).__init__()
                self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(planes)
                self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
                self.bn2 = nn.BatchNorm2d(planes)
                self.shortcut = nn.Sequential()
                if stride != 1 or in_planes != self.expansion * planes:
                    self.shortcut = nn.Sequential(
                        nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                        nn.BatchNorm2d(self.expansion * planes))

            def forward(self, x):
                out = F.relu(self.bn1(self.conv1(x)))
                out = self.bn2(self.conv2(out))
                out += self.shortcut(x)
                out = F.relu(out)
                return out


        class Bottleneck(nn.Module):
            expansion = 4

            def __init__(self, in_planes, planes, stride=1):
                super(Bottleneck, self).__init__()
                self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
                self.bn1 = nn.BatchNorm2d(planes)
                self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
                self.bn2 = nn.BatchNorm2d(planes)
                self.conv3 = nn.Conv2d(planes, self.expansion * planes, kernel_size=1, bias=False)
                self.bn3 = nn.BatchNorm2d(self.expansion * planes)
                self.shortcut = nn.Sequential()
                if stride != 1 or in_planes != self.expansion * planes:
                    self.shortcut = nn.Sequential(
                        nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                        nn.BatchNorm2d(self.expansion * planes))

            def forward(self, x):
                out = F.relu(self.bn1(self.conv1(x)))
                out = F.relu(self.bn2(self.conv2(out)))
                out = self.bn3(self.conv3(out))
                out += self.shortcut(x)
                return F.relu(out)


        class ResNet(nn.Module):
            def __init__(self, block, num_blocks, num_classes=10, width=8):
                super(ResNet, self).__init__()
                self.in_planes = width
                self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(width)
                self.layer1 = self._make_layer(block, width, num_blocks[0], stride=1)
                self.layer2 = self._make_layer(block, 2 * width, num_blocks[1], stride=2)
                self.linear = nn.Linear(2 * width * block.expansion, num_classes)

            def _make_layer(self, block, planes, num_blocks, stride):
                strides = [stride] + [1] * (num_blocks - 1)
                layers = []
                for stride in strides:
                    layers.append(block(self.in_planes, planes, stride))
                    self.in_planes = planes * block.expansion
                return nn.Sequential(*layers)

            def forward(self, x):
                out = F.relu(self.bn1(self.conv1(x)))
                out = self.layer1(out)
                out = self.layer2(out)
                out = F.avg_pool2d(out, 8)
                out = out.view(out.size(0), -1)
                return self.linear(out)


        def ResNet18ish():
            return ResNet(BasicBlock, [2, 2])


        def Bottlenecked():
            return ResNet(Bottleneck, [1, 1], width=4)
        """,
    "models/vgg.py": """
        import torch
        import torch.nn as nn

        cfg = {"tiny": [8, "M", 16, "M", 16, 16, "M"]}


        class VGG(nn.Module):
            def __init__(self, vgg_name):
                super(VGG, self).__init__()
                self.features = self._make_layers(cfg[vgg_name])
                self.classifier = nn.Linear(16 * 2 * 2, 10)

            def forward(self, x):
                out = self.features(x)
                out = out.view(out.size(0), -1)
                return self.classifier(out)

            def _make_layers(self, cfg):
                layers = []
                in_channels = 3
                for x in cfg:
                    if x == "M":
                        layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
                    else:
                        layers += [nn.Conv2d(in_channels, x, kernel_size=3, padding=1), nn.BatchNorm2d(x),
                                   nn.ReLU(inplace=True)]
                        in_channels = x
                layers += [nn.AvgPool2d(kernel_size=1, stride=1)]
                return nn.Sequential(*layers)
        """,
    "models/mobile.py": """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F


        class Block(nn.Module):
            '''Depthwise conv + pointwise conv.'''
            def __init__(self, in_planes, out_planes, stride=1):
                super(Block, self).__init__()
                self.conv1 = nn.Conv2d(in_planes, in_planes, kernel_size=3, stride=stride, padding=1,
                                       groups=in_planes, bias=False)
                self.bn1 = nn.BatchNorm2d(in_planes)
                self.conv2 = nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=1, padding=0, bias=False)
                self.bn2 = nn.BatchNorm2d(out_planes)

            def forward(self, x):
                out = F.relu(self.bn1(self.conv1(x)))
                return F.relu(self.bn2(self.conv2(out)))


        class MobileNetish(nn.Module):
            cfg = [16, (32, 2), 32]

            def __init__(self, num_classes=10):
                super(MobileNetish, self).__init__()
                self.conv1 = nn.Conv2d(3, 8, kernel_size=3, stride=1, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(8)
                self.layers = self._make_layers(in_planes=8)
                self.linear = nn.Linear(32, num_classes)

            def _make_layers(self, in_planes):
                layers = []
                for x in self.cfg:
                    out_planes = x if isinstance(x, int) else x[0]
                    stride = 1 if isinstance(x, int) else x[1]
                    layers.append(Block(in_planes, out_planes, stride))
                    in_planes = out_planes
                return nn.Sequential(*layers)

            def forward(self, x):
                out = F.relu(self.bn1(self.conv1(x)))
                out = self.layers(out)
                out = F.adaptive_avg_pool2d(out, 1)
                out = out.view(out.size(0), -1)
                return self.linear(out)
        """,
    "models/shuffle.py": """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F


        class ShuffleBlock(nn.Module):
            def __init__(self, groups):
                super(ShuffleBlock, self).__init__()
                self.groups = groups

            def forward(self, x):
                '''Channel shuffle: [N,C,H,W] -> [N,g,C/g,H,W] -> [N,C/g,g,H,w] -> [N,C,H,W]'''
                N, C, H, W = x.size()
                g = self.groups
                return x.view(N, g, C // g, H, W).permute(0, 2, 1, 3, 4).reshape(N, C, H, W)


        class SplitBlock(nn.Module):
            def __init__(self, ratio):
                super(SplitBlock, self).__init__()
                self.ratio = ratio

            def forward(self, x):
                c = int(x.size(1) * self.ratio)
                return x[:, :c, :, :], x[:, c:, :, :]


        class ShuffleNetish(nn.Module):
            def __init__(self):
                super(ShuffleNetish, self).__init__()
                self.conv1 = nn.Conv2d(3, 8, 1, bias=False)
                self.split = SplitBlock(0.5)
                self.conv2 = nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False)
                self.bn2 = nn.BatchNorm2d(4)
                self.shuffle = ShuffleBlock(groups=2)
                self.fc = nn.Linear(8, 10)

            def forward(self, x):
                x = F.relu(self.conv1(x))
                x1, x2 = self.split(x)
                out = F.relu(self.bn2(self.conv2(x2)))
                out = torch.cat([x1, out], 1)
                out = self.shuffle(out)
                out = F.avg_pool2d(out, out.size(2))
                return self.fc(out.flatten(1))
        """,
    "models/dense.py": """
        import math

        import torch
        import torch.nn as nn
        import torch.nn.functional as F


        class Bottleneck(nn.Module):
            def __init__(self, in_planes, growth_rate):
                super(Bottleneck, self).__init__()
                self.bn1 = nn.BatchNorm2d(in_planes)
                self.conv1 = nn.Conv2d(in_planes, 4 * growth_rate, kernel_size=1, bias=False)
                self.bn2 = nn.BatchNorm2d(4 * growth_rate)
                self.conv2 = nn.Conv2d(4 * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

            def forward(self, x):
                out = self.conv1(F.relu(self.bn1(x)))
                out = self.conv2(F.relu(self.bn2(out)))
                return torch.cat([out, x], 1)


        class SE(nn.Module):
            def __init__(self, planes):
                super(SE, self).__init__()
                self.fc1 = nn.Conv2d(planes, planes // 2, kernel_size=1)
                self.fc2 = nn.Conv2d(planes // 2, planes, kernel_size=1)

            def forward(self, x):
                w = F.avg_pool2d(x, x.size(2))
                w = F.relu(self.fc1(w))
                w = torch.sigmoid(self.fc2(w))
                return x * w


        class DenseNetish(nn.Module):
            def __init__(self, growth_rate=4, reduction=0.5):
                super(DenseNetish, self).__init__()
                planes = 2 * growth_rate
                self.conv1 = nn.Conv2d(3, planes, kernel_size=3, padding=1, bias=False)
                self.dense = nn.Sequential(Bottleneck(planes, growth_rate), Bottleneck(planes + growth_rate,
                                                                                      growth_rate))
                planes += 2 * growth_rate
                out_planes = int(math.floor(planes * reduction))
                self.trans = nn.Conv2d(planes, out_planes, kernel_size=1, bias=False)
                self.se = SE(out_planes)
                self.bn = nn.BatchNorm2d(out_planes)
                self.linear = nn.Linear(out_planes, 10)

            def forward(self, x):
                out = self.conv1(x)
                out = F.avg_pool2d(self.trans(self.dense(out)), 2)
                out = self.se(out)
                out = F.avg_pool2d(F.relu(self.bn(out)), 8)
                return self.linear(out.view(out.size(0), -1))
        """,
    "models/tree.py": """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F


        class Root(nn.Module):
            def __init__(self, in_channels, out_channels):
                super(Root, self).__init__()
                self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
                self.bn = nn.BatchNorm2d(out_channels)

            def forward(self, xs):
                return F.relu(self.bn(self.conv(torch.cat(xs, 1))))


        class Treeish(nn.Module):
            def __init__(self, channels=6, levels=3):
                super(Treeish, self).__init__()
                self.stem = nn.Conv2d(3, channels, 3, padding=1)
                self.levels = levels
                for i in range(levels):
                    self.__setattr__('level_%d' % i, nn.Conv2d(channels, channels, 3, padding=1))
                self.root = Root(channels * levels, channels)
                self.linear = nn.Linear(channels, 10)

            def forward(self, x):
                x = self.stem(x)
                xs = []
                for i in range(self.levels):
                    x = F.relu(self.__getattr__('level_%d' % i)(x))
                    xs.append(x)
                out = self.root(xs)
                out = F.adaptive_avg_pool2d(out, (1, 1)).flatten(1)
                return self.linear(out)
        """,
}

ZOO_CHECK = """
import sys
import numpy as np
import torch
sys.path.insert(0, sys.argv[1])
from models import *

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 16, 16)).astype(np.float64)
report = {}
for name in ["ResNet18ish", "Bottlenecked", "VGG", "MobileNetish", "ShuffleNetish", "DenseNetish", "Treeish"]:
    net = VGG("tiny") if name == "VGG" else globals()[name]()
    net = net.double()
    with torch.no_grad():
        for key, value in net.state_dict().items():
            if value.dtype == torch.float64:
                value.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, size=tuple(value.shape))))
    net.train()
    inputs = torch.tensor(x, requires_grad=True)
    out = net(inputs)
    (out * out).sum().backward()
    report[name] = {"keys": list(net.state_dict().keys()), "params": sum(p.numel() for p in net.parameters()),
                    "out": out.detach().numpy(), "dx": inputs.grad.numpy(),
                    "grads": [p.grad.numpy() for p in net.parameters()],
                    "running_mean": [v.numpy() for k, v in net.state_dict().items() if k.endswith("running_mean")]}
np.save(sys.argv[2], report, allow_pickle=True)
"""


def _write_tree(root, files, swap):
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        text = textwrap.dedent(text).lstrip("\n")
        target.write_text(swap_imports(text) if swap else text)


def _run_file(script, *args, cwd):
    """Run a program file in a fresh interpreter (minicnn from this checkout on the path)."""
    import minicnn
    from pathlib import Path
    env = {"PYTHONPATH": str(Path(minicnn.__file__).parent.parent), "PATH": "/usr/bin:/bin",
           "OMP_NUM_THREADS": "1", "HOME": str(cwd)}
    done = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_a_model_zoo_package_runs_with_only_its_imports_swapped(tmp_path):
    reports = {}
    for side in ("torch", "minicnn"):
        root = tmp_path / side
        _write_tree(root, {**ZOO, "check.py": ZOO_CHECK}, swap=side == "minicnn")
        _run_file(root / "check.py", root, root / "report.npy", cwd=root)
        reports[side] = np.load(root / "report.npy", allow_pickle=True).item()
    assert "import minicnn as torch" in (tmp_path / "minicnn" / "models" / "tree.py").read_text()
    for name, theirs in reports["torch"].items():
        ours = reports["minicnn"][name]
        assert ours["keys"] == theirs["keys"], name
        assert ours["params"] == theirs["params"], name
        np.testing.assert_allclose(ours["out"], theirs["out"], rtol=1e-9, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(ours["dx"], theirs["dx"], rtol=1e-9, atol=1e-9, err_msg=name)
        for a, b in zip(ours["grads"], theirs["grads"], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, err_msg=name)
        for a, b in zip(ours["running_mean"], theirs["running_mean"], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=name)


TRAIN_SCRIPT = '''
"""Train a small CNN on arrays saved as .npy, as CIFAR scripts do: argparse, cudnn, a progress bar,
a checkpoint with the best accuracy, and --resume."""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.backends.cudnn as cudnn
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser(description="small CNN training")
parser.add_argument("--lr", default=0.05, type=float, help="learning rate")
parser.add_argument("--epochs", default=3, type=int)
parser.add_argument("--resume", "-r", action="store_true", help="resume from checkpoint")
parser.add_argument("--data", required=True)
args = parser.parse_args()

device = "cuda" if torch.cuda.is_available() else "cpu"
if device == "cuda":
    cudnn.benchmark = True
torch.backends.cudnn.deterministic = True
torch.manual_seed(0)
torch.set_num_threads(1)


def progress_bar(current, total, msg=None, width=20):
    filled = int(width * (current + 1) / total)
    sys.stdout.write(" [" + "=" * filled + "." * (width - filled) + "]" + (" | " + msg if msg else ""))
    sys.stdout.write("\\r" if current < total - 1 else "\\n")
    sys.stdout.flush()


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 12, 3, padding=1)
        self.drop = nn.Dropout(0.0)
        self.fc = nn.Linear(12 * 4 * 4, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc(self.drop(x))


data = np.load(args.data)
train_set = TensorDataset(torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"]))
test_set = TensorDataset(torch.from_numpy(data["x_test"]), torch.from_numpy(data["y_test"]))
trainloader = DataLoader(train_set, batch_size=16, shuffle=False)
testloader = DataLoader(test_set, batch_size=32, shuffle=False)

net = Net().to(device)
with torch.no_grad():
    for i, p in enumerate(net.parameters()):
        w = data["w%d" % i]
        p.copy_(torch.from_numpy(w.reshape(tuple(p.shape))))
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
best_acc, start_epoch = 0, 0
if args.resume:
    assert os.path.isdir("checkpoint"), "Error: no checkpoint directory found!"
    checkpoint = torch.load("./checkpoint/ckpt.pth")
    net.load_state_dict(checkpoint["net"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    best_acc, start_epoch = checkpoint["acc"], checkpoint["epoch"] + 1

losses = []
for epoch in range(start_epoch, start_epoch + args.epochs):
    print("\\nEpoch: %d" % epoch)
    net.train()
    train_loss, correct, total = 0, 0, 0
    for batch_idx, (inputs, targets) in enumerate(trainloader):
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()
        train_loss += loss.item()
        losses.append(loss.item())
        _, predicted = outputs.max(1)
        total += targets.size(0)
        correct += predicted.eq(targets).sum().item()
        progress_bar(batch_idx, len(trainloader), "Loss: %.3f | Acc: %.3f%% (%d/%d)"
                     % (train_loss / (batch_idx + 1), 100. * correct / total, correct, total))
    scheduler.step()
    net.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for inputs, targets in testloader:
            outputs = net(inputs.to(device))
            correct += outputs.argmax(dim=1).eq(targets.to(device)).sum().item()
            total += targets.size(0)
    acc = 100. * correct / total
    if acc >= best_acc:
        state = {"net": net.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "acc": acc, "epoch": epoch}
        if not os.path.isdir("checkpoint"):
            os.mkdir("checkpoint")
        torch.save(state, "./checkpoint/ckpt.pth")
        best_acc = acc
print("RESULT", repr([round(v, 6) for v in losses]), best_acc, scheduler.get_last_lr())
'''


def test_a_training_script_with_argparse_cudnn_progress_bar_checkpoint_and_resume_matches_torch(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.5, size=(80, 3, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, size=80).astype(np.int64)
    for i, label in enumerate(y):  # a learnable signal: a bright patch at a class-dependent place
        r, c = divmod(int(label), 4)
        x[i, :, 4 * r:4 * r + 3, 4 * c:4 * c + 3] += 2.0
    shapes = [(6, 3, 3, 3), (6,), (6,), (6,), (12, 6, 3, 3), (12,), (10, 192), (10,)]
    weights = [(rng.uniform(-1, 1, s) / np.sqrt(np.prod(s[1:]) if len(s) > 1 else 4)).astype(np.float32)
               for s in shapes]
    weights[2], weights[3] = np.ones(6, np.float32), np.zeros(6, np.float32)  # BatchNorm's weight and bias
    np.savez(tmp_path / "data.npz", x_train=x[:64], y_train=y[:64], x_test=x[64:], y_test=y[64:],
             **{"w%d" % i: w for i, w in enumerate(weights)})
    outputs = {}
    for side in ("torch", "minicnn"):
        root = tmp_path / side
        root.mkdir()
        (root / "main.py").write_text(swap_imports(TRAIN_SCRIPT) if side == "minicnn" else TRAIN_SCRIPT)
        first = _run_file(root / "main.py", "--data", tmp_path / "data.npz", "--epochs", "2", cwd=root)
        again = _run_file(root / "main.py", "--data", tmp_path / "data.npz", "--epochs", "1", "--resume", cwd=root)
        assert (root / "checkpoint" / "ckpt.pth").is_file() and "Epoch: 2" in again
        assert " [====================] | Loss:" in first  # the progress bar drew to the end
        outputs[side] = [eval(line.split("RESULT", 1)[1].rsplit(" ", 2)[0]) for line in (first, again)
                         for line in line.splitlines() if line.startswith("RESULT")]
        outputs[side + " tail"] = [line.split("RESULT", 1)[1].rsplit(" ", 2)[1:] for text in (first, again)
                                   for line in text.splitlines() if line.startswith("RESULT")]
    assert "import minicnn.backends.cudnn as cudnn" in (tmp_path / "minicnn" / "main.py").read_text()
    for ours, theirs in zip(outputs["minicnn"], outputs["torch"], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert [len(losses) for losses in outputs["minicnn"]] == [8, 4]  # 2 epochs of 4 batches, then 1 more
    for ours, theirs in zip(outputs["minicnn tail"], outputs["torch tail"], strict=True):
        assert float(ours[0]) == float(theirs[0])  # the best test accuracy, from the checkpoint on resuming
        np.testing.assert_allclose(eval(ours[1]), eval(theirs[1]), rtol=1e-12)  # the schedule went on
    assert outputs["minicnn"][0][-1] < outputs["minicnn"][0][0]  # it learned
