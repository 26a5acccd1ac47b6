"""ResNet-20 and VGG-11-BN (minicnn.models) against the same networks written in torch here,
and the ResNet-20 example trained on a fake CIFAR-10 in the real file format.

The torch twins are the code of the usual CIFAR repositories: akamaster/pytorch_resnet_cifar10
(ResNet with option A shortcuts as a LambdaLayer, in torch_twins.py) and kuangliu/pytorch-cifar (VGG).
"""

import json
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn as tnn

import minicnn
from minicnn import models, nn, optim
from torch_twins import TorchResNet

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "cifar10_resnet.py"


# -- the torch twins -------------------------------------------------------------------------------

class TorchVGG(tnn.Module):
    def __init__(self, cfg, num_classes=10):
        super().__init__()
        layers, in_channels = [], 3
        for v in cfg:
            if v == "M":
                layers.append(tnn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [tnn.Conv2d(in_channels, v, kernel_size=3, padding=1), tnn.BatchNorm2d(v), tnn.ReLU()]
                in_channels = v
        self.features = tnn.Sequential(*layers)
        self.classifier = tnn.Linear(512, num_classes)

    def forward(self, x):
        out = self.features(x)
        return self.classifier(out.view(out.size(0), -1))


TWINS = {"resnet20": TorchResNet,
         "vgg11_bn": lambda: TorchVGG([64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"])}
NAMES = sorted(TWINS)


# -- helpers -------------------------------------------------------------------------------------

def randomised(model, seed=0):
    """The model with random batch-norm weights, biases and running statistics, so that every
    term of the normalisation shows in the outputs (BN starts at weight 1, bias 0, mean 0, var 1)."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            for t, values in ((m.weight, rng.uniform(0.5, 1.5, c)), (m.bias, rng.normal(0, 0.2, c)),
                              (m.running_mean, rng.normal(0, 0.2, c)), (m.running_var, rng.uniform(0.5, 2, c))):
                t.array[...] = values
    return model


def twin_of(name, ours):
    """The torch twin of `ours`, holding a copy of its parameters and buffers, in its dtype."""
    theirs = TWINS[name]()
    if next(iter(ours.parameters())).dtype == np.float64:
        theirs = theirs.double()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})
    return theirs


def batch(n, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 32, 32)).astype(dtype), rng.integers(0, 10, n)


# -- the architectures -------------------------------------------------------------------------

def test_parameter_counts_are_torchs_and_the_documented_ones():
    counts = {name: models.get_model(name).num_parameters() for name in NAMES}
    assert counts == {name: sum(p.numel() for p in TWINS[name]().parameters()) for name in NAMES}
    # the paper's 0.27 M for ResNet-20 with option A (parameter-free) shortcuts; VGG-11-BN with one Linear
    assert counts == {"resnet20": 269_722, "vgg11_bn": 9_231_114}


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_shapes_and_order_are_torchs(name):
    ours, theirs = models.get_model(name).state_dict(), TWINS[name]().state_dict()
    assert [(k, tuple(v.shape)) for k, v in ours.items()] == [(k, tuple(v.shape)) for k, v in theirs.items()]
    assert any(k.endswith("num_batches_tracked") for k in ours)
    assert ours["bn1.running_var" if name == "resnet20" else "features.1.running_var"].numpy().tolist()[:2] == [1, 1]


def test_resnet20_layout_follows_the_paper():
    net = models.resnet20()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == 20  # 19 convolutions and the Linear layer
    assert [m.stride for m in convs if m.stride != (1, 1)] == [(2, 2), (2, 2)]
    assert all(m.bias is None and m.kernel_size == (3, 3) for m in convs)
    assert [type(b.shortcut).__name__ for b in (net.layer1[0], net.layer2[0], net.layer3[0])] == \
        ["Sequential", "PadShortcut", "PadShortcut"]
    assert net.layer2[0].shortcut.pad == 8 and net.layer3[0].shortcut.pad == 16
    # kaiming_normal_ (fan_in, gain sqrt 2): the 36,864 weights of a 64-channel conv have std sqrt(2 / 576)
    std = float(net.layer3[1].conv1.weight.detach().numpy().std())
    assert abs(std / np.sqrt(2 / 576) - 1) < 0.03


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_outputs_equal_torchs_with_the_same_weights_in_float32(name, mode):
    minicnn.seed(0)
    ours = randomised(models.get_model(name))
    theirs = twin_of(name, ours)
    ours.train(mode == "train")
    theirs.train(mode == "train")
    x, _ = batch(4, seed=1)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    out = ours(minicnn.from_numpy(x))
    assert out.shape == (4, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_of_every_parameter_equal_torchs_after_one_backward_in_train_mode(name):
    minicnn.seed(0)
    ours = randomised(models.get_model(name)).double()
    theirs = twin_of(name, ours)
    x, y = batch(4, seed=2, dtype=np.float64)
    nn.CrossEntropyLoss()(ours(minicnn.from_numpy(x)), minicnn.from_numpy(y)).backward()
    tnn.CrossEntropyLoss()(theirs(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    t_params = dict(theirs.named_parameters())
    names = [k for k, _ in ours.named_parameters()]
    assert names == list(t_params)
    for k, p in ours.named_parameters():
        assert p.grad is not None, k
        np.testing.assert_allclose(p.grad.numpy(), t_params[k].grad.numpy(), rtol=1e-7, atol=1e-10, err_msg=k)


@pytest.mark.parametrize("name", NAMES)
def test_eval_outputs_and_running_statistics_after_sgd_steps_equal_torchs(name):
    minicnn.seed(0)
    ours = models.get_model(name).double()
    theirs = twin_of(name, ours)
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    t_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for step in range(3):
        x, y = batch(4, seed=10 + step, dtype=np.float64)
        ours.train()
        theirs.train()
        opt.zero_grad()
        t_opt.zero_grad()
        nn.CrossEntropyLoss()(ours(minicnn.from_numpy(x)), minicnn.from_numpy(y)).backward()
        tnn.CrossEntropyLoss()(theirs(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
        t_opt.step()
    t_state = theirs.state_dict()
    for k, v in ours.state_dict().items():
        np.testing.assert_allclose(v.numpy(), t_state[k].numpy(), rtol=1e-6, atol=1e-9, err_msg=k)
    assert int(ours.state_dict()["bn1.num_batches_tracked" if name == "resnet20"
                                 else "features.1.num_batches_tracked"].item()) == 3
    ours.eval()
    theirs.eval()
    x, _ = batch(4, seed=20, dtype=np.float64)
    with minicnn.no_grad(), torch.no_grad():
        np.testing.assert_allclose(ours(minicnn.from_numpy(x)).numpy(), theirs(torch.from_numpy(x)).numpy(),
                                   rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_summary_runs_and_counts_the_parameters(name):
    net = models.get_model(name)
    text = net.summary((3, 32, 32), print=False)
    assert f"{net.num_parameters():,}" in text
    assert "BatchNorm2d" in text and ("PadShortcut" in text) == (name == "resnet20")


@pytest.mark.parametrize("name", NAMES)
def test_get_model_rebuilds_with_num_classes(name):
    net = models.get_model(name, num_classes=4).eval()
    with minicnn.no_grad():
        assert net(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 4)


@pytest.mark.parametrize("name", NAMES)
def test_a_checkpoint_rebuilds_the_network_by_name_with_its_running_statistics(name, tmp_path):
    from minicnn.train import load_model, save_checkpoint
    minicnn.seed(0)
    net = randomised(models.get_model(name, num_classes=4))
    net.train()
    net(minicnn.from_numpy(batch(2, seed=4)[0]))  # moves the running statistics, counts one batch
    save_checkpoint(tmp_path / "net.npz", net, meta={"model": name, "model_kwargs": {"num_classes": 4}})
    rebuilt, _ = load_model(tmp_path / "net.npz")
    assert type(rebuilt) is type(net)
    saved, loaded = net.state_dict(), rebuilt.state_dict()
    assert list(loaded) == list(saved)
    for k in saved:
        np.testing.assert_array_equal(loaded[k].numpy(), saved[k].numpy(), err_msg=k)
    x = minicnn.from_numpy(batch(2, seed=5)[0])
    with minicnn.no_grad():
        np.testing.assert_array_equal(rebuilt.eval()(x).numpy(), net.eval()(x).numpy())


# -- the example, on a fake CIFAR-10 --------------------------------------------------------------

def write_fake_cifar(root, per_batch, n_test, seed=0):
    """root/cifar-10-batches-py/ as the real one: data_batch_1..5 and test_batch, pickled dicts of
    b'data' uint8 (N, 3072) (1024 red, 1024 green, 1024 blue values per image) and b'labels', and
    batches.meta. Each class has its own colour under the noise, so a network can learn it."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    colours = rng.integers(40, 216, size=(10, 3))

    def images(n):
        labels = rng.integers(0, 10, n)
        x = colours[labels][:, :, None, None] + rng.normal(0, 25, (n, 3, 32, 32))
        return np.clip(x, 0, 255).astype(np.uint8).reshape(n, 3072), labels.tolist()

    for name, n in [(f"data_batch_{k}", per_batch) for k in range(1, 6)] + [("test_batch", n_test)]:
        data, labels = images(n)
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": []}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog",
                                      b"horse", b"ship", b"truck"], b"num_vis": 3072}, f)
    return root


@pytest.fixture(scope="module")
def example():
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import cifar10_resnet
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    return cifar10_resnet


def test_the_example_trains_on_a_fake_cifar_and_writes_its_outputs(example, tmp_path, capsys):
    root = write_fake_cifar(tmp_path / "data", per_batch=32, n_test=50)
    out = tmp_path / "run"
    history = example.main(["--data-root", str(root), "--epochs", "2", "--batch-size", "16", "--limit", "96",
                            "--lr", "0.05", "--seed", "0", "--log-interval", "3", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "96 training images, 50 test images" in printed and "269,722 parameters" in printed
    assert re.search(r"epoch 2: train loss [\d.]+, accuracy [\d.]+ %; test loss [\d.]+, accuracy [\d.]+ %", printed)
    assert len(re.findall(r"^\s+\w+: [\d.]+ %$", printed, re.M)) == 10  # the accuracy of each class
    assert history["epoch"] == [1, 2] and history["train_loss"][1] < history["train_loss"][0]
    assert history["lr"] == [0.05, pytest.approx(0.025)]  # cosine over 2 epochs
    assert json.loads((out / "history.json").read_text()) == history
    # the checkpoint is the state_dict of minicnn.models.resnet20: a checkpoint rebuilds it by name
    net = models.get_model("resnet20")
    net.load_state_dict(minicnn.load(out / "resnet20.pt"))
    assert int(net.bn1.num_batches_tracked.item()) == 12  # 2 epochs of 96 / 16 steps
    pytest.importorskip("matplotlib")
    assert (out / "history.png").stat().st_size > 0


def test_the_example_stops_with_a_message_when_cifar_is_missing(example, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CIFAR10 \(train split\) not found in root="):
        example.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "run")])


def test_the_examples_network_is_torch_code_with_minicnns_state_dict(tmp_path):
    """The example's body under torch (its import lines swapped, as its docstring says): its
    ResNet-20 is the same network as minicnn.models.resnet20, key for key, output for output."""
    source = EXAMPLE.read_text()
    swaps = {"import minicnn as torch": "import torch", "import minicnn.nn as nn": "import torch.nn as nn",
             "import minicnn.nn.functional as F": "import torch.nn.functional as F",
             "import minicnn.optim as optim": "import torch.optim as optim",
             "from minicnn.vision import datasets, transforms": "datasets = transforms = None  # torchvision"}
    for before, after in swaps.items():
        assert before in source, before
        source = source.replace(before, after)
    namespace = {"__name__": "cifar10_resnet_under_torch", "__file__": str(EXAMPLE)}
    exec(compile(source, str(EXAMPLE), "exec"), namespace)
    theirs = namespace["resnet20"]()
    assert isinstance(theirs, torch.nn.Module)
    minicnn.seed(0)
    ours = randomised(models.resnet20())
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})
    assert list(theirs.state_dict()) == list(ours.state_dict())
    x, _ = batch(2, seed=3)
    theirs.eval()
    ours.eval()
    with torch.no_grad(), minicnn.no_grad():
        np.testing.assert_allclose(ours(minicnn.from_numpy(x)).numpy(), theirs(torch.from_numpy(x)).numpy(),
                                   rtol=1e-4, atol=1e-4)
