"""minicnn.summary: the layer table (shapes, parameters, MACs, memory) and the forward/backward
shape trace, checked against torch twins of the same networks."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
import minicnn.nn as nn
from minicnn import optim
from minicnn.backend import default_rng
from minicnn.summary import summary, trace


# -- the networks, and their torch twins ----------------------------------------------------


def lenet5():
    """D2L's LeNet-5: 61,706 parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))


def cifar_cnn():
    """conv3-32 pad 1, pool, conv32-64 pad 1, pool, 4096 -> 512 -> 10."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4096, 512), nn.ReLU(), nn.Linear(512, 10))


def cifar_small_cnn():
    """conv3-8 k5, pool, conv8-16 k3, pool, 576 -> 128 -> 10: 76,922 parameters."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(576, 128), nn.ReLU(), nn.Linear(128, 10))


def nested_cnn():
    """A Sequential of Sequentials with dropout and global pooling: names like 'features.0'."""
    net = nn.Sequential()
    net.features = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Tanh(),
                                 nn.MaxPool2d(3, stride=2, padding=1),
                                 nn.Conv2d(4, 6, (3, 1), dilation=(2, 1)), nn.GlobalAvgPool2d())
    net.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(6, 5, bias=False))
    return net


def residual_net(lib):
    """Not a Sequential: a custom forward with F.relu, a residual add, x.view, a pool called twice
    and a Parameter of the network itself. The same code builds it in minicnn (lib=minicnn) and in
    torch (lib=torch), so that torch's forward hooks can tell what the shapes must be."""
    T, F = lib.nn, lib.nn.functional

    class Net(T.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = T.Conv2d(3, 6, 3, padding=1)
            self.conv2 = T.Conv2d(6, 6, 3, padding=1)
            self.pool = T.MaxPool2d(2)
            self.drop = T.Dropout(0.25)
            self.fc = T.Linear(6 * 4 * 4, 5)
            self.scale = T.Parameter(lib.ones(5))

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))      # (N, 6, 8, 8)
            x = F.relu(x + self.conv2(x))             # residual: conv2 keeps the shape
            x = self.pool(x)                          # (N, 6, 4, 4)
            x = x.view(x.size(0), -1)                 # (N, 96)
            return self.fc(self.drop(x)) * self.scale

    return Net()


def torch_twin(module):
    """The same network in torch (fresh weights: only shapes and counts are compared)."""
    T = torch.nn
    if isinstance(module, nn.Sequential):
        return T.Sequential(*[torch_twin(m) for m in module])
    if isinstance(module, nn.Conv2d):
        return T.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                        module.dilation, bias=module.bias is not None)
    if isinstance(module, nn.Linear):
        return T.Linear(module.in_features, module.out_features, bias=module.bias is not None)
    if isinstance(module, nn.MaxPool2d):
        return T.MaxPool2d(module.kernel_size, module.stride, module.padding)
    if isinstance(module, nn.AvgPool2d):
        return T.AvgPool2d(module.kernel_size, module.stride, module.padding,
                           count_include_pad=module.count_include_pad)
    if isinstance(module, nn.Dropout):
        return T.Dropout(module.p)
    simple = {nn.ReLU: T.ReLU, nn.Sigmoid: T.Sigmoid, nn.Tanh: T.Tanh, nn.Flatten: T.Flatten,
              nn.GlobalAvgPool2d: lambda: T.AdaptiveAvgPool2d(1), nn.GlobalMaxPool2d: lambda: T.AdaptiveMaxPool2d(1)}
    return simple[type(module)]()


def torch_leaf_calls(twin, x):
    """(name, input shape, output shape) of every leaf-layer call, in order, for a torch network."""
    calls = []
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: calls.append((name, tuple(i[0].shape),
                                                                               tuple(o.shape))))
             for name, m in twin.named_modules() if not list(m.children())]
    twin.eval()
    with torch.no_grad():
        twin(torch.as_tensor(x))
    for h in hooks:
        h.remove()
    return calls


def torch_leaf_shapes(twin, x):
    """Every leaf layer's output shape, in order, for the torch twin."""
    return [out for _, _, out in torch_leaf_calls(twin, x)]


def grads(net):
    """{name: a copy of the gradient array, or None}."""
    return {name: None if p.grad is None else p.grad.numpy().copy() for name, p in net.named_parameters()}


def assert_same_grads(a, b):
    ga, gb = grads(a), grads(b)
    assert list(ga) == list(gb)
    for name in ga:
        assert (ga[name] is None) == (gb[name] is None), name
        if ga[name] is not None:
            assert np.array_equal(ga[name], gb[name]), name


NETWORKS = [(lenet5, (1, 1, 28, 28), 61_706), (cifar_cnn, (1, 3, 32, 32), 2_122_186),
            (cifar_small_cnn, (1, 3, 32, 32), 76_922)]


# -- summary --------------------------------------------------------------------------------


@pytest.mark.parametrize("build, shape, expected", NETWORKS, ids=lambda v: getattr(v, "__name__", ""))
def test_summary_parameter_counts_equal_torch(build, shape, expected):
    net = build()
    s = summary(net, shape, print=False)
    torch_count = sum(p.numel() for p in torch_twin(net).parameters())
    assert s.total_params == s.trainable_params == torch_count == expected
    assert sum(r["params"] for r in s.rows) == expected
    assert f"{expected:,}" in s


@pytest.mark.parametrize("name, expected", [("lenet5", 61_706), ("lenet5_sigmoid", 61_706),
                                            ("cifar_cnn", 2_122_186), ("cifar_small_cnn", 76_922)])
def test_summary_counts_the_library_models_like_torch(name, expected):
    models = pytest.importorskip("minicnn.models")
    build = getattr(models, name, None)
    if build is None:
        pytest.skip(f"minicnn.models has no {name}()")
    net = build()
    shape = (1, 1, 28, 28) if name.startswith("lenet") else (1, 3, 32, 32)
    s = summary(net, shape, print=False)
    assert s.total_params == sum(p.numel() for p in torch_twin(net).parameters()) == expected


@pytest.mark.parametrize("build, shape, expected", NETWORKS + [(nested_cnn, (2, 3, 17, 15), None)],
                         ids=lambda v: getattr(v, "__name__", ""))
def test_summary_output_shapes_equal_torch(build, shape, expected):
    net = build()
    s = summary(net, shape, print=False)
    x = np.zeros(shape, np.float32)
    assert [r["output_shape"] for r in s.rows] == torch_leaf_shapes(torch_twin(net), x)


@settings(max_examples=30)
@given(N=st.integers(1, 3), C=st.integers(1, 4), OC=st.integers(1, 5), H=st.integers(5, 12), W=st.integers(5, 12),
       KH=st.integers(1, 3), KW=st.integers(1, 3), stride=st.integers(1, 3), padding=st.integers(0, 2),
       dilation=st.integers(1, 2))
def test_summary_conv_macs_equal_n_oc_oh_ow_c_kh_kw(N, C, OC, H, W, KH, KW, stride, padding, dilation):
    conv = nn.Conv2d(C, OC, (KH, KW), stride=stride, padding=padding, dilation=dilation)
    s = summary(conv, (N, C, H, W), print=False)
    OH, OW = torch.nn.functional.conv2d(torch.zeros(N, C, H, W), torch.zeros(OC, C, KH, KW), stride=stride,
                                        padding=padding, dilation=dilation).shape[2:]
    assert s.rows[0]["output_shape"] == (N, OC, OH, OW)
    assert s.rows[0]["macs"] == s.total_macs == N * OC * OH * OW * C * KH * KW


def test_summary_linear_macs_are_n_in_out_and_other_layers_count_zero():
    s = summary(lenet5(), (4, 1, 28, 28), print=False)
    linear = [r for r in s.rows if r["layer"].startswith("Linear")]
    assert [r["macs"] for r in linear] == [4 * 400 * 120, 4 * 120 * 84, 4 * 84 * 10]
    assert all(r["macs"] == 0 for r in s.rows if not r["layer"].startswith(("Linear", "Conv2d")))


def test_summary_memory_is_output_bytes_for_the_batch_and_dtype():
    s = summary(lenet5(), (3, 1, 28, 28), print=False)
    assert s.rows[0]["activation_bytes"] == 3 * 6 * 28 * 28 * 4
    assert s.activation_bytes == sum(int(np.prod(r["output_shape"])) * 4 for r in s.rows)
    assert s.param_bytes == 61_706 * 4 and s.input_bytes == 3 * 28 * 28 * 4
    s64 = summary(lenet5().double(), (3, 1, 28, 28), print=False)
    assert s64.param_bytes == 2 * s.param_bytes and s64.activation_bytes == 2 * s.activation_bytes
    counted_as_64 = summary(lenet5(), (3, 1, 28, 28), dtype=np.float64, print=False)
    assert counted_as_64.param_bytes == s64.param_bytes and counted_as_64.activation_bytes == s64.activation_bytes


def test_summary_takes_c_h_w_as_a_batch_of_one_and_prints_the_table(capsys):
    net = lenet5()
    s = net.summary((1, 28, 28))
    assert s.rows[0]["input_shape"] == (1, 1, 28, 28)
    out = capsys.readouterr().out
    assert out.strip() == s.strip()
    for text in ("Conv2d(1, 6, k=5, p=2)", "(1, 6, 28, 28)", "Total params", "61,706", "Total MACs"):
        assert text in out
    assert isinstance(s, str) and "61,706" in repr(s)


def test_summary_names_nested_layers_with_dotted_paths():
    s = summary(nested_cnn(), (1, 3, 17, 15), print=False)
    assert [r["name"] for r in s.rows] == ["features.0", "features.1", "features.2", "features.3", "features.4",
                                           "classifier.0", "classifier.1", "classifier.2"]


def test_summary_counts_a_shared_parameter_once_like_torch():
    def tied(lib):
        T = lib.nn

        class Tied(T.Module):
            def __init__(self):
                super().__init__()
                self.encoder, self.decoder, self.block = T.Linear(6, 6), T.Linear(6, 6), T.Linear(6, 6)
                self.decoder.weight = self.encoder.weight     # tied weights
                self.act = T.Tanh()

            def forward(self, x):
                x = self.block(self.act(self.block(x)))       # one layer called twice
                return self.decoder(self.act(self.encoder(x)))
        return Tied()

    s = summary(tied(minicnn), (3, 6), print=False)
    expected = sum(p.numel() for p in tied(torch).parameters())   # torch lists each Parameter once
    assert s.total_params == s.trainable_params == expected == 3 * 6 + 3 * 36 - 36
    assert s.param_bytes == expected * 4
    assert [r["name"] for r in s.rows] == [name for name, _, _ in torch_leaf_calls(tied(torch), np.zeros((3, 6),
                                                                                                        np.float32))]
    assert s.total_macs == 4 * 3 * 6 * 6    # MACs are per call: four Linear calls


def test_summary_counts_frozen_parameters_as_not_trainable_like_torch():
    net = cifar_small_cnn()
    twin = torch_twin(net)
    for model in (net, twin):
        for p in model[0].parameters():
            p.requires_grad_(False)
    s = summary(net, (1, 3, 32, 32), print=False)
    assert s.total_params == 76_922
    assert s.trainable_params == sum(p.numel() for p in twin.parameters() if p.requires_grad) == 76_922 - 608
    assert "Trainable params:      76,314" in s


def test_summary_takes_each_layers_macs_from_its_macs_method(monkeypatch):
    class Scale(nn.Module):
        """A custom layer that declares its own cost: one multiply per output value."""

        def __init__(self):
            super().__init__()
            self.s = nn.Parameter(minicnn.ones(1))

        def forward(self, x):
            return x * self.s

        def macs(self, input_shape, output_shape):
            return math.prod(output_shape)

    net = nn.Sequential(nn.Conv2d(1, 2, 3), Scale(), nn.ReLU())
    s = summary(net, (2, 1, 5, 5), print=False)
    assert [r["macs"] for r in s.rows] == [2 * 2 * 3 * 3 * 1 * 3 * 3, 2 * 2 * 3 * 3, 0]
    assert s.total_macs == sum(r["macs"] for r in s.rows)
    monkeypatch.setattr(nn.Conv2d, "macs", lambda self, input_shape, output_shape: 1234)
    assert summary(net, (2, 1, 5, 5), print=False).rows[0]["macs"] == 1234   # no list of layer types


def batch_norm_cnn():
    """BatchNorm2d, whose running statistics an inspection must not move."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


INSPECTED = [(nested_cnn, (2, 3, 17, 15)), (lambda: residual_net(minicnn), (2, 3, 16, 16)),
             (lenet5, (3, 1, 28, 28)), (batch_norm_cnn, (4, 3, 8, 8)), (lambda: resnet_blocks(minicnn), (2, 3, 8, 8))]
INSPECTED_IDS = ["nested_cnn", "residual_net", "lenet5", "batch_norm_cnn", "resnet_blocks"]


def inspect(net, x):
    """Every inspection: on the batch itself, then on zeros of the batch's shape (where a buffer
    shared with the pending backward would now hold other values), and on another batch size."""
    trace(net, x, print=False)
    trace(net, x.shape, print=False)
    summary(net, tuple(x.shape), print=False)
    summary(net, (1,) + tuple(x.shape[1:]), print=False)


@pytest.mark.parametrize("build, shape", INSPECTED, ids=INSPECTED_IDS)
def test_summary_and_trace_between_a_forward_and_its_backward_change_no_gradient(build, shape):
    rng = np.random.default_rng(0)
    x = minicnn.from_numpy(rng.standard_normal(shape).astype(np.float32))
    minicnn.seed(0)
    net = build()
    minicnn.seed(0)
    reference = build()
    g = None
    for model, inspected in ((reference, False), (net, True)):
        minicnn.seed(5)                       # the same dropout masks in both programs
        out = model(x)                        # train mode: Dropout draws from minicnn's generator
        if g is None:
            g = minicnn.from_numpy(rng.standard_normal(tuple(out.shape)).astype(np.float32))
        if inspected:
            inspect(model, x)
        loss = (out * g).sum()
        loss.backward()
        if not inspected:
            rng_after = default_rng().bit_generator.state
    assert_same_grads(net, reference)
    assert default_rng().bit_generator.state == rng_after


@pytest.mark.parametrize("build, shape", INSPECTED, ids=INSPECTED_IDS)
def test_after_summary_and_trace_the_model_trains_exactly_like_one_never_inspected(build, shape):
    x = minicnn.from_numpy(np.random.default_rng(1).standard_normal(shape).astype(np.float32))
    minicnn.seed(0)
    net = build()
    minicnn.seed(0)
    reference = build()
    outputs = {}
    for model, inspected in ((reference, False), (net, True)):
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        minicnn.seed(7)
        outputs[inspected] = []
        for step in range(2):
            if inspected:
                inspect(model, x)
            opt.zero_grad()
            out = model(x)
            out.sum().backward()
            outputs[inspected].append(out.detach().numpy().copy())
            opt.step()
        model(x).sum().backward()   # the gradients of a third step, to compare
    for a, b in zip(outputs[True], outputs[False]):
        assert np.array_equal(a, b)
    assert_same_grads(net, reference)
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        assert np.array_equal(p.detach().numpy(), q.detach().numpy()), name


@pytest.mark.parametrize("build, shape", INSPECTED, ids=INSPECTED_IDS)
def test_summary_and_trace_leave_modes_gradients_and_the_random_generator_as_they_were(build, shape):
    net = build()
    modules = list(net.modules())
    for k, m in enumerate(modules):           # a mix of modes, which eval() inside must not flatten
        object.__setattr__(m, "training", k % 2 == 0)
    modes = [m.training for m in modules]
    params = list(net.named_parameters())
    sentinels = {}
    for k, (name, p) in enumerate(params):    # some gradients set, some None, one parameter frozen
        if k % 2 == 0:
            p.grad = sentinels[name] = minicnn.full(tuple(p.shape), 7.0)
    params[-1][1].requires_grad_(False)
    versions = [p._version for _, p in params]
    minicnn.seed(11)
    default_rng().random(3)
    rng_state = default_rng().bit_generator.state

    state = {name: t.numpy().copy() for name, t in net.state_dict().items()}   # buffers too
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    inspect(net, minicnn.from_numpy(x))

    assert [m.training for m in modules] == modes
    for name, t in net.state_dict().items():
        assert np.array_equal(t.numpy(), state[name]), name
    for name, p in params:
        if name in sentinels:
            assert p.grad is sentinels[name] and (p.grad.numpy() == 7.0).all(), name
        else:
            assert p.grad is None, name
    assert [p.requires_grad for _, p in params] == [True] * (len(params) - 1) + [False]
    assert [p._version for _, p in params] == versions
    assert default_rng().bit_generator.state == rng_state
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in modules)   # no hook left behind
    assert all("forward" not in vars(m) and "backward" not in vars(m) for m in modules)


def test_summary_runs_on_every_backend(backend):
    net = cifar_small_cnn()
    s = summary(net, (2, 3, 32, 32), print=False)
    assert s.total_params == 76_922 and s.rows[-1]["output_shape"] == (2, 10)


# -- trace ----------------------------------------------------------------------------------


@pytest.mark.parametrize("build, shape", [(lenet5, (2, 1, 28, 28)), (cifar_cnn, (2, 3, 32, 32)),
                                          (nested_cnn, (2, 3, 17, 15))], ids=lambda v: getattr(v, "__name__", ""))
def test_trace_forward_shapes_equal_torch_and_every_parameter_gets_a_gradient_shape(build, shape):
    net = build()
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    t = trace(net, x, print=False)
    assert [c["output_shape"] for c in t.forward] == torch_leaf_shapes(torch_twin(net), x)
    grads = {name: shape for c in t.backward for name, shape in c["grads"].items()}
    assert grads == {name: tuple(p.shape) for name, p in net.named_parameters()}
    for name, shape in grads.items():
        assert f"{name}.grad {shape}" in t
    # one backward row per recorded op; Dropout in eval mode records none (it returns its input, as torch's)
    recorded = [c for c in reversed(t.forward) if not isinstance(c["layer"], nn.Dropout)]
    assert [(c["name"], c["dout_shape"], c["dx_shape"]) for c in t.backward] == \
        [(c["name"], c["output_shape"], c["input_shape"]) for c in recorded]
    assert all(c["main"] for c in t.backward)


def test_trace_of_a_custom_forward_lists_every_layer_call_with_torchs_shapes():
    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    net = residual_net(minicnn)
    t = trace(net, x, print=False)
    expected = torch_leaf_calls(residual_net(torch), x)
    assert [(c["name"], c["input_shape"], c["output_shape"]) for c in t.forward] == expected
    assert [name for name, _, _ in expected] == ["conv1", "pool", "conv2", "pool", "drop", "fc"]

    grads = {name: shape for c in t.backward for name, shape in c["grads"].items()}
    assert grads == {name: tuple(p.shape) for name, p in net.named_parameters()}   # 'scale' included
    # each leaf call that records an op has one main row, in reverse order, with torch's shapes
    assert [(c["name"], c["dout_shape"], c["dx_shape"]) for c in t.backward if c["main"]] == \
        [(name, out, inp) for name, inp, out in reversed(expected) if name != "drop"]
    # the ops of the custom forward are rows too, labelled by the op
    ops = [(c["name"], c["dout_shape"], c["dx_shape"]) for c in t.backward if not c["main"]]
    assert ops == [("<mul>", (2, 5), (2, 5)), ("<view>", (2, 96), (2, 6, 4, 4)), ("<relu>", (2, 6, 8, 8), (2, 6, 8, 8)),
                   ("<add>", (2, 6, 8, 8), (2, 6, 8, 8)), ("<relu>", (2, 6, 16, 16), (2, 6, 16, 16))]
    assert "<view> (in Net.forward)" in t and "scale.grad (5,)" in t


def test_trace_of_a_linear_on_3d_input_gives_its_formula_to_the_matmul_and_labels_the_reshapes():
    t = trace(nn.Sequential(nn.Linear(4, 3)), (2, 5, 4), print=False)    # (C, H, W): N = 1
    assert [(c["op"], c["main"], c["dout_shape"], c["dx_shape"]) for c in t.backward] == [
        ("view", False, (1, 2, 5, 3), (10, 3)), ("linear", True, (10, 3), (10, 4)),
        ("view", False, (10, 4), (1, 2, 5, 4))]
    assert "dx = dout @ W = (10, 3) @ (3, 4) -> (10, 4)" in t and "(0) Linear(4, 3) <view>" in t


def test_trace_inside_no_grad_still_walks_the_backward():
    with minicnn.no_grad():
        t = trace(cifar_small_cnn(), (2, 3, 32, 32), print=False)
        assert not minicnn.is_grad_enabled()
    assert len(t.backward) == len(t.forward) and t.backward[-1]["dx_shape"] == (2, 3, 32, 32)


def test_trace_names_the_formula_behind_each_shape():
    t = trace(lenet5(), (2, 1, 28, 28), print=False)
    assert "OH = OW = floor((H + 2P - D(K-1) - 1)/S) + 1 = floor((28 + 4 - 4 - 1)/1) + 1 = 28" in t
    assert "OH = OW = floor((H + 2P - K)/S) + 1 = floor((28 + 0 - 2)/2) + 1 = 14" in t
    assert "C*H*W = 16*5*5 = 400" in t
    assert "(N, IN) @ W^T (IN, OUT) + b = (2, 400) @ (400, 120) -> (2, 120)" in t
    t = trace(nn.Sequential(nn.Conv2d(1, 2, (3, 5), stride=(2, 1))), (1, 1, 9, 9), print=False)
    assert "OH = floor((H + 2P - D(K-1) - 1)/S) + 1 = floor((9 + 0 - 2 - 1)/2) + 1 = 4" in t
    assert "OW = floor((W + 2P - D(K-1) - 1)/S) + 1 = floor((9 + 0 - 4 - 1)/1) + 1 = 5" in t


def test_trace_prints_and_returns_the_same_text(capsys):
    t = trace(cifar_small_cnn(), np.zeros((3, 32, 32), np.float32))
    assert capsys.readouterr().out.strip() == t.strip()
    assert t.forward[0]["input_shape"] == (1, 3, 32, 32)


def test_trace_casts_the_input_to_the_model_dtype():
    t = trace(lenet5(), np.zeros((1, 1, 28, 28)), print=False)    # float64 input, float32 model
    assert t.splitlines()[0] == "Forward: x (1, 1, 28, 28) float32"


def test_trace_states_the_formulas_of_same_padding_groups_dilated_ceil_pooling_and_transposed_convs():
    import torch
    m = nn.Sequential(nn.Conv2d(3, 8, 4, padding="same"), nn.Conv2d(8, 8, 3, groups=8),
                      nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), nn.ConvTranspose2d(8, 4, 3, stride=2))
    t = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, padding="same"), torch.nn.Conv2d(8, 8, 3, groups=8),
                            torch.nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), torch.nn.ConvTranspose2d(8, 4, 3, 2))
    result = trace(m, (2, 3, 8, 8), print=False)
    shapes, x = [], torch.zeros(2, 3, 8, 8)
    for layer in t:
        x = layer(x)
        shapes.append(tuple(x.shape))
    assert [row["output_shape"] for row in result.forward] == shapes
    text = str(result)
    assert "floor((8 + 3 - 3 - 1)/1) + 1 = 8" in text            # 'same' with an even kernel: 1 + 2 rows of padding
    assert "ceil((6 + 2 - 4 - 1)/2) + 1 = 3" in text             # dilation 2 and ceil_mode
    assert "(3 - 1)*2 - 0 + 2 + 0 + 1 = 7" in text               # the transposed convolution's size
    assert "in each of the 8 groups" in text and "(1, 72) @ (72, 9)" in text


# -- trace: where gradients are added up ------------------------------------------------------


def resnet_blocks(lib):
    """A stem conv and two ResNet blocks (conv-bn-relu-conv-bn + shortcut, add, relu): the first with
    the identity shortcut (its input fans out to conv1 and to the add), the second with a strided 1x1
    conv shortcut (its input fans out to conv1 and to the shortcut). Each block calls its ReLU twice.
    The same code builds it in minicnn and in torch."""
    T = lib.nn

    class Block(T.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = T.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = T.BatchNorm2d(cout)
            self.conv2 = T.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = T.BatchNorm2d(cout)
            self.relu = T.ReLU()
            self.shortcut = T.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.shortcut is None else self.shortcut(x)))

    return T.Sequential(T.Conv2d(3, 4, 3, padding=1), Block(4, 4, 1), Block(4, 8, 2), T.AvgPool2d(4),
                        T.Flatten(), T.Linear(8, 3))


def torch_leaf_backward_calls(twin, x):
    """(name, grad_output shape, grad_input shape) of every leaf-layer backward, in the order torch's
    full backward hooks see them, and each parameter's gradient shape, for out.sum() on input x."""
    calls = []
    def hook(m, grad_input, grad_output, name):
        calls.append((name, tuple(grad_output[0].shape), tuple(grad_input[0].shape)))
    hooks = [m.register_full_backward_hook(lambda m, gi, go, name=name: hook(m, gi, go, name))
             for name, m in twin.named_modules() if not list(m.children())]
    twin.eval()
    x = torch.as_tensor(x).requires_grad_(True)
    twin(x).sum().backward()
    for h in hooks:
        h.remove()
    return calls, {name: tuple(p.grad.shape) for name, p in twin.named_parameters()}


def by_layer(calls):
    """{layer name: [(dout shape, dx shape) of each of its backward calls, in order]}."""
    grouped = {}
    for name, dout, dx in calls:
        grouped.setdefault(name, []).append((dout, dx))
    return grouped


def test_trace_of_resnet_blocks_has_torchs_forward_and_gradient_shapes():
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    t = trace(resnet_blocks(minicnn), x, print=False)
    assert [(c["name"], c["input_shape"], c["output_shape"]) for c in t.forward] == \
        torch_leaf_calls(resnet_blocks(torch), x)
    torch_calls, torch_grads = torch_leaf_backward_calls(resnet_blocks(torch), x)
    ours = [(c["name"], c["dout_shape"], c["dx_shape"]) for c in t.backward if c["main"]]
    # the same calls; each layer's calls in the same order (the two branches after an add may run
    # in either order: torch's engine takes the later-made one first, minicnn's walk the earlier)
    assert by_layer(ours) == by_layer(torch_calls) and len(ours) == len(torch_calls)
    assert {name: shape for c in t.backward for name, shape in c["grads"].items()} == torch_grads
    assert [c["index"] for c in t.backward] == list(range(1, len(t.backward) + 1))


def test_trace_shows_where_the_gradients_of_a_tensor_that_fans_out_are_added():
    t = trace(resnet_blocks(minicnn), (2, 3, 8, 8), print=False)
    row = {(c["name"], c["op"]): c for c in t.backward}
    summed = [c for c in t.backward if len(c["dout_from"]) > 1]
    # the stem's output feeds block 1's conv1 and its identity shortcut (the add);
    # block 1's output feeds block 2's conv1 and its 1x1 shortcut conv
    assert [c["name"] for c in summed] == ["1.relu", "0"]     # backward reaches block 1's output first
    block1_out, stem = summed
    senders = lambda c: {(t.backward[j - 1]["name"], t.backward[j - 1]["op"]) for j in c["dout_from"]}
    assert senders(stem) == {("<add>", "add"), ("1.conv1", "conv2d")}
    assert senders(block1_out) == {("2.conv1", "conv2d"), ("2.shortcut", "conv2d")}
    for c in summed:   # the second sender says it added into the dout of the receiver
        second = t.backward[c["dout_from"][1] - 1]
        assert second["adds"] == [{"into": f"node {c['index']}", "node": c["index"], "param": None,
                                   "after": c["dout_from"][:1]}]
        assert f"node {c['index']}  ({c['name']})" in t
        assert f"      += into the dout of node {c['index']} " in t
    assert "dout = node {} (<add>) + node {} ((1.conv1) Conv2d): the output is used 2 times".format(
        *stem["dout_from"]) in t
    assert sum(len(c["adds"]) for c in t.backward) == 2 and t.added == []
    # every other row got its dout from exactly one node (the first from the ones)
    assert all(len(c["dout_from"]) == 1 for c in t.backward[1:] if c not in summed)
    assert row[("3", "avg_pool2d")]["dout_from"] and t.backward[0]["dout_from"] == []


def test_trace_adds_up_the_gradients_of_a_shared_parameter_and_of_an_input_used_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(self.fc(x) + x)     # fc called twice; x used by fc and by the add

    t = trace(Twice(), (3, 4), print=False)
    assert [(c["op"], c["name"]) for c in t.backward] == [("linear", "fc"), ("add", "<add>"), ("linear", "fc")]
    assert t.added == [{"into": "fc.weight", "shape": (4, 4), "from": [1, 3]},
                       {"into": "fc.bias", "shape": (4,), "from": [1, 3]},
                       {"into": "x", "shape": (3, 4), "from": [2, 3]}]
    assert "  x.grad (3, 4) = node 2 (<add>) + node 3 ((fc) Linear)" in t
    assert "      += into fc.weight.grad, which already has the gradient from node 1 ((fc) Linear)" in t
    assert {a["into"] for a in t.backward[2]["adds"]} == {"fc.weight", "fc.bias", "x"}
