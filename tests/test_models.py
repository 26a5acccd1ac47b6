"""The model zoo: each network has torch's parameter count for the same architecture, the
shapes its docstring promises, and (given the same weights) torch's outputs."""

import numpy as np
import pytest
import torch
from torch import nn as tnn

import minicnn
from minicnn import models


def torch_lenet5():
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.Tanh(), tnn.AvgPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2),
        tnn.Conv2d(16, 120, 5), tnn.Tanh(), tnn.Flatten(),
        tnn.Linear(120, 84), tnn.Tanh(), tnn.Linear(84, 10))


def torch_lenet5_sigmoid():  # d2l.ai, chapter "Convolutional Neural Networks (LeNet)"
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.Sigmoid(), tnn.AvgPool2d(2, stride=2),
        tnn.Conv2d(6, 16, 5), tnn.Sigmoid(), tnn.AvgPool2d(2, stride=2), tnn.Flatten(),
        tnn.Linear(400, 120), tnn.Sigmoid(), tnn.Linear(120, 84), tnn.Sigmoid(), tnn.Linear(84, 10))


def torch_cifar_cnn():
    return tnn.Sequential(
        tnn.Conv2d(3, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
        tnn.Linear(4096, 512), tnn.ReLU(), tnn.Linear(512, 10))


def torch_cifar_small_cnn():
    return tnn.Sequential(
        tnn.Conv2d(3, 8, 5), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(8, 16, 3), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
        tnn.Linear(576, 128), tnn.ReLU(), tnn.Linear(128, 10))


CASES = [  # name, torch twin, input shape
    ("lenet5", torch_lenet5, (2, 1, 28, 28)),
    ("lenet5_sigmoid", torch_lenet5_sigmoid, (2, 1, 28, 28)),
    ("cifar_cnn", torch_cifar_cnn, (2, 3, 32, 32)),
    ("cifar_small_cnn", torch_cifar_small_cnn, (2, 3, 32, 32)),
]


@pytest.mark.parametrize("name, twin, shape", CASES, ids=[c[0] for c in CASES])
def test_parameter_count_and_names_equal_torch(name, twin, shape):
    ours, theirs = models.get_model(name), twin()
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}


@pytest.mark.parametrize("name, twin, shape", CASES, ids=[c[0] for c in CASES])
def test_outputs_equal_torch_with_the_same_weights(name, twin, shape):
    minicnn.seed(0)
    ours, theirs = models.get_model(name), twin()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    out = ours(x)
    assert out.shape == (shape[0], 10) and out.dtype == np.float32
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, twin, shape", CASES, ids=[c[0] for c in CASES])
def test_gradients_of_a_training_step_equal_torchs_with_the_same_weights(name, twin, shape):
    minicnn.seed(0)
    ours, theirs = models.get_model(name).double(), twin().double()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(shape), rng.integers(0, 10, shape[0])
    minicnn.nn.CrossEntropyLoss()(ours(x), y).backward()
    tnn.CrossEntropyLoss()(theirs(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    t_params = dict(theirs.named_parameters())
    for k, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[k].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


def test_the_documented_parameter_counts():
    counts = {name: models.get_model(name).num_parameters() for name in models.MODELS}
    assert counts == {"lenet5": 61_706, "lenet5_sigmoid": 61_706, "cifar_cnn": 2_122_186,
                      "cifar_small_cnn": 3 * 8 * 25 + 8 + 8 * 16 * 9 + 16 + 576 * 128 + 128 + 1290,
                      "resnet20": 269_722, "vgg11_bn": 9_231_114}  # checked against torch in test_resnet.py
    assert counts["cifar_small_cnn"] == 76_922


def test_num_classes_sets_the_last_layer():
    assert models.get_model("cifar_cnn", num_classes=4)(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 4)


def test_get_model_names_the_choices_for_an_unknown_model():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'.*'lenet5'"):
        models.get_model("resnet")
    with pytest.raises(TypeError, match=r"get_model\('lenet5'\)"):
        models.get_model("lenet5", width=3)
