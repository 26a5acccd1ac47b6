"""minicnn.summary: the layer table (shapes, parameters, MACs, memory) and the forward/backward
shape trace, checked against torch twins of the same networks."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn.nn as nn
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


def torch_leaf_shapes(twin, x):
    """Every leaf layer's output shape, in order, for the torch twin."""
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
             for m in twin.modules() if not list(m.children())]
    twin.eval()
    with torch.no_grad():
        twin(torch.as_tensor(x))
    for h in hooks:
        h.remove()
    return shapes


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


def test_summary_leaves_mode_caches_and_gradients_as_they_were():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    dout = rng.standard_normal((2, 10)).astype(np.float32)
    reference, net = lenet5(), lenet5()
    net.load_state_dict(reference.state_dict())
    reference(x)
    reference.backward(dout)
    net(x)                               # a forward whose caches the backward below needs
    summary(net, (5, 1, 28, 28), print=False)
    net.backward(dout)
    assert net.training and all(m.training for m in net.modules())
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)


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
    assert [c["dx_shape"] for c in t.backward] == [c["input_shape"] for c in reversed(t.forward)]


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


def test_trace_leaves_gradients_mode_and_caches_as_they_were():
    net = nested_cnn()
    x = np.random.default_rng(2).standard_normal((2, 3, 17, 15)).astype(np.float32)
    sentinels = {name: np.full(p.shape, 7.0, np.float32) for name, p in net.named_parameters()}
    for name, p in net.named_parameters():
        p.grad = sentinels[name]
    cache = net.features[0]._cache if hasattr(net.features[0], "_cache") else None
    trace(net, x, print=False)
    assert all(p.grad is sentinels[name] for name, p in net.named_parameters())
    assert net.training and getattr(net.features[0], "_cache", None) is cache
    assert all("forward" not in vars(m) and "backward" not in vars(m) for m in net.modules())


def test_trace_casts_the_input_to_the_model_dtype():
    t = trace(lenet5(), np.zeros((1, 1, 28, 28)), print=False)    # float64 input, float32 model
    assert t.splitlines()[0] == "Forward: x (1, 1, 28, 28) float32"
