"""minicnn.vision.models is torchvision.models: the same parameter counts (torchvision's documented
ones), shapes, heads and init, and trained weights refused with a way to load them. Where
torchvision imports, also the same state_dict keys, printout, outputs and gradients given its weights.

Each default network is built once for the whole file (`built`): a VGG fills 130 M weights twice,
seconds on a small machine. A test that reads weight values loads its own into it first.
"""

import functools
import sys
import types

import numpy as np
import pytest

import minicnn
import minicnn.vision as torchvision
from minicnn import nn
from minicnn.vision import models

COUNTS = {  # torchvision's documentation (the num_params of each model's weights)
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "vgg11": 132_863_336, "vgg11_bn": 132_868_840, "vgg16": 138_357_544, "vgg16_bn": 138_365_992,
    "mobilenet_v2": 3_504_872, "alexnet": 61_100_840, "squeezenet1_0": 1_248_424, "squeezenet1_1": 1_235_496,
}
NAMES = list(COUNTS)
SIZE = {name: 64 if name == "alexnet" else 32 for name in NAMES}  # AlexNet's smallest input is 63x63


@functools.lru_cache(maxsize=None)
def built(name):
    return getattr(models, name)().eval()


def values(tensor):
    return tensor.detach().numpy()


def image(name, n=1, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, SIZE[name], SIZE[name])).astype(dtype)


# -- without torchvision ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_equals_torchvisions_documented_one(name):
    assert built(name).num_parameters() == COUNTS[name]


@pytest.mark.parametrize("name", NAMES)
def test_a_small_image_gives_one_row_of_1000_float32_logits(name):
    with minicnn.no_grad():
        out = built(name)(image(name))
    assert tuple(out.shape) == (1, 1000) and out.dtype == np.float32
    assert np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("name, head, count", [
    ("resnet18", "fc.weight", 11_181_642), ("mobilenet_v2", "classifier.1.weight", 2_236_682),
    ("squeezenet1_1", "classifier.1.weight", 727_626), ("alexnet", "classifier.6.weight", 57_044_810),
])
def test_num_classes_changes_the_head_to_torchvisions_count(name, head, count):
    net = getattr(torchvision.models, name)(num_classes=10).eval()
    assert net.state_dict()[head].shape[0] == 10 and net.num_parameters() == count
    with minicnn.no_grad():
        assert tuple(net(image(name)).shape) == (1, 10)


def test_groups_width_per_group_and_width_mult_give_torchvisions_counts():
    resnext50_32x4d = models.ResNet(models.Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4)
    assert resnext50_32x4d.num_parameters() == 25_028_904
    assert models.mobilenet_v2(width_mult=0.5).num_parameters() == 1_968_680


def test_norm_layer_replaces_every_batch_norm():
    net = models.resnet18(norm_layer=lambda channels: nn.GroupNorm(32, channels))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert isinstance(net.layer2[0].downsample[1], nn.GroupNorm)
    assert tuple(net(image("resnet18")).shape) == (1, 1000)


def test_basic_block_refuses_groups_as_torchvision():
    with pytest.raises(ValueError, match="only groups=1 and base_width=64"):
        models.ResNet(models.BasicBlock, [2, 2, 2, 2], groups=32)


@pytest.mark.parametrize("asked", [dict(weights="IMAGENET1K_V1"), dict(weights="DEFAULT"), dict(pretrained=True)],
                         ids=["IMAGENET1K_V1", "DEFAULT", "pretrained"])
@pytest.mark.parametrize("name", NAMES)
def test_trained_weights_are_refused_with_how_to_load_torchvisions_pth(name, asked):
    with pytest.raises(NotImplementedError) as info:
        getattr(models, name)(**asked)
    message = str(info.value)
    assert "minicnn downloads no weights" in message
    assert f"model = torchvision.models.{name}()" in message
    assert "model.load_state_dict(torch.load('" in message and "https://download.pytorch.org/models/" in message


def test_weights_none_and_pretrained_false_build_the_network():
    assert models.squeezenet1_1(weights=None).num_parameters() == COUNTS["squeezenet1_1"]
    assert models.squeezenet1_1(pretrained=False).num_parameters() == COUNTS["squeezenet1_1"]


def test_resnet_init_is_kaiming_normal_fan_out_and_unit_batch_norm():
    minicnn.seed(0)
    net = models.resnet50()
    w = values(net.layer3[0].conv2.weight)  # (256, 256, 3, 3): fan_out = 256 * 9
    assert abs(w.std() / np.sqrt(2 / (256 * 9)) - 1) < 0.02 and abs(w.mean()) < 1e-3
    bn = net.layer3[0].bn2
    assert (values(bn.weight) == 1).all() and (values(bn.bias) == 0).all()


def test_zero_init_residual_zeroes_the_last_norm_of_every_block():
    basic, bottleneck = models.resnet18(zero_init_residual=True), models.resnet50(zero_init_residual=True)
    assert all((values(block.bn2.weight) == 0).all() for block in [*basic.layer1, *basic.layer4])
    assert all((values(block.bn3.weight) == 0).all() for block in bottleneck.layer3)
    assert (values(bottleneck.layer3[0].bn2.weight) == 1).all()


def test_mobilenet_and_squeezenet_init_as_torchvision():
    minicnn.seed(0)
    mobile = models.mobilenet_v2()
    head = mobile.classifier[1]
    assert abs(values(head.weight).std() / 0.01 - 1) < 0.02 and (values(head.bias) == 0).all()
    squeeze = models.squeezenet1_1()
    final, first = values(squeeze.classifier[1].weight), values(squeeze.features[0].weight)
    assert abs(final.std() / 0.01 - 1) < 0.05
    bound = np.sqrt(2) * np.sqrt(3 / (3 * 3 * 3))  # kaiming_uniform_: gain sqrt(2), fan_in = C * KH * KW
    assert np.abs(first).max() <= bound and np.abs(first).max() > 0.9 * bound


def test_the_cifar_networks_are_minicnn_models_own_and_vgg11_bn_is_torchvisions():
    assert models.resnet20 is minicnn.models.resnet20 and models.lenet5 is minicnn.models.lenet5
    assert models.vgg11_bn is not minicnn.models.vgg11_bn  # the CIFAR variant keeps its home in minicnn.models


# -- with torchvision ---------------------------------------------------------------------------------


def _import_torchvision():
    """(torchvision, '') or (None, why not). torchvision's _meta_registrations registers kernels of
    its C++ ops and fails when that extension does not match torch; the models need none of it,
    so a failed import is retried once with that module stubbed out."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return None, f"torch is not installed ({exc})"
    try:
        import torchvision as tv
        return tv, ""
    except ImportError as exc:
        return None, f"torchvision is not installed ({exc})"
    except Exception as first:
        for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[key]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        try:
            import torchvision as tv
            return tv, ""
        except Exception as exc:
            return None, (f"torchvision does not import ({type(first).__name__}: {first}; with "
                          f"_meta_registrations stubbed: {type(exc).__name__}: {exc})")


TV, NO_TV = _import_torchvision()
needs_torchvision = pytest.mark.skipif(TV is None, reason=NO_TV)


def fresh_reference(name):
    """torchvision's network in eval mode, its batch norms given random statistics and affine
    parameters (at their init, mean 0, variance 1, weight 1, bias 0, they would hide a mix-up)."""
    import torch
    torch.manual_seed(0)
    net = getattr(TV.models, name)().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


reference = functools.lru_cache(maxsize=None)(fresh_reference)  # shared by the tests that only read it


def numpy_state(net):
    return {k: v.detach().numpy() for k, v in net.state_dict().items()}


@needs_torchvision
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_and_shapes_equal_torchvisions_in_order(name):
    ours = [(k, tuple(v.shape)) for k, v in built(name).state_dict().items()]
    theirs = [(k, tuple(v.shape)) for k, v in reference(name).state_dict().items()]
    assert ours == theirs


@needs_torchvision
@pytest.mark.parametrize("name", NAMES)
def test_the_network_prints_as_torchvisions(name):
    assert repr(built(name)) == repr(reference(name))


@needs_torchvision
@pytest.mark.parametrize("name", NAMES)
def test_eval_outputs_equal_torchvisions_with_its_weights(name):
    import torch
    ours, theirs = built(name), reference(name)
    ours.load_state_dict(numpy_state(theirs))
    x = image(name)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with minicnn.no_grad():
        out = ours(x).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@needs_torchvision
@pytest.mark.parametrize("name, train", [("resnet18", True), ("mobilenet_v2", False)],
                         ids=["resnet18-train", "mobilenet_v2-eval"])
def test_float64_gradients_of_the_input_and_weights_equal_torchvisions(name, train):
    import torch
    theirs = fresh_reference(name).double().train(train)
    ours = getattr(models, name)().double().train(train)
    ours.load_state_dict(numpy_state(theirs))
    x = image(name, n=2, dtype=np.float64, seed=1)
    weights = np.random.default_rng(2).standard_normal((2, 1000))  # a loss sum(w * logits): every logit counts
    x_ours, x_theirs = minicnn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (ours(x_ours) * minicnn.tensor(weights)).sum().backward()
    (theirs(x_theirs) * torch.from_numpy(weights)).sum().backward()
    expected = x_theirs.grad.numpy()
    np.testing.assert_allclose(x_ours.grad.numpy(), expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    ours_params = dict(ours.named_parameters())
    for key, p in theirs.named_parameters():
        expected = p.grad.numpy()
        np.testing.assert_allclose(ours_params[key].grad.numpy(), expected, rtol=1e-9,
                                   atol=1e-9 * np.abs(expected).max(), err_msg=key)


@needs_torchvision
def test_a_pth_file_torch_saved_loads_with_minicnn_load(tmp_path):
    import torch
    theirs = reference("squeezenet1_1")
    path = tmp_path / "squeezenet1_1.pth"
    torch.save(theirs.state_dict(), path)
    ours = torchvision.models.squeezenet1_1()
    ours.load_state_dict(minicnn.load(path))
    ours.eval()
    x = image("squeezenet1_1")
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(x).detach().numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
