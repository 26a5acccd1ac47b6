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
