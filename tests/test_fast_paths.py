"""The fast conv/pool paths (reused buffers, no padded copies, in-place pooling) give the
results of the plain paths and of torch, and buffer reuse never leaks one call into another.

float64 agrees to 1e-10, float32 to 1e-4 (relative); float32 stays float32.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
import minicnn.ops as F
from minicnn import nn
from minicnn.backend import to_device, to_numpy
from minicnn.ops import conv as conv_module
from minicnn.ops import pool as pool_module

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-5)}


def close(actual, expected, dtype):
    actual = to_numpy(actual)
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else to_numpy(expected)
    assert actual.dtype == dtype, f"dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, **TOL[dtype])


def torch_grads(fn, arrays, dout):
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return out, [t.grad for t in leaves]


pairs = lambda lo, hi: st.tuples(st.integers(lo, hi), st.integers(lo, hi))  # noqa: E731
conv_cases = st.fixed_dictionaries({
    "N": st.integers(1, 3), "C": st.integers(1, 3), "OC": st.integers(1, 4), "H": st.integers(1, 9),
    "W": st.integers(1, 9), "KH": st.integers(1, 4), "KW": st.integers(1, 4), "stride": pairs(1, 3),
    "padding": pairs(0, 3), "dilation": pairs(1, 2),
    "seed": st.integers(0, 2**16), "dtype": st.sampled_from([np.float64, np.float32])})


def conv_fits(c):
    axes = ((c["H"], c["padding"][0], c["dilation"][0], c["KH"]), (c["W"], c["padding"][1], c["dilation"][1], c["KW"]))
    return all(size + 2 * p - d * (k - 1) - 1 >= 0 for size, p, d, k in axes)


@settings(max_examples=60)
@given(conv_cases)
def test_conv2d_fast_equals_plain_and_torch_with_a_reused_workspace(c):
    if not conv_fits(c):
        return
    rng = np.random.default_rng(c["seed"])
    dtype = c["dtype"]
    w = rng.standard_normal((c["OC"], c["C"], c["KH"], c["KW"])).astype(dtype)
    b = rng.standard_normal(c["OC"]).astype(dtype)
    args = (c["stride"], c["padding"], c["dilation"])
    workspace = conv_module.Workspace()
    for _ in range(2):  # the second call runs on the first call's buffers, with new data
        x = rng.standard_normal((c["N"], c["C"], c["H"], c["W"])).astype(dtype)
        out_fast, cache_fast = F.conv2d(to_device(x), to_device(w), to_device(b), *args, impl="fast",
                                        workspace=workspace)
        out_plain, cache_plain = F.conv2d(to_device(x), to_device(w), to_device(b), *args, impl="plain")
        dout = rng.standard_normal(out_plain.shape).astype(dtype)
        t_out, t_grads = torch_grads(lambda x_, w_, b_: TF.conv2d(x_, w_, b_, *args), [x, w, b], dout)
        close(out_fast, out_plain, dtype)
        close(out_fast, t_out, dtype)
        for g_fast, g_plain, g_torch in zip(F.conv2d_backward(to_device(dout), cache_fast),
                                            F.conv2d_backward(to_device(dout), cache_plain), t_grads):
            close(g_fast, g_plain, dtype)
            close(g_fast, g_torch, dtype)


def test_conv2d_workspace_follows_a_change_of_batch_size_and_dtype():
    rng = np.random.default_rng(0)
    workspace = conv_module.Workspace()
    for N, dtype in ((4, np.float32), (3, np.float32), (4, np.float64), (4, np.float32)):
        x = rng.standard_normal((N, 2, 7, 7)).astype(dtype)
        w = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
        out, cache = F.conv2d(x, w, None, 1, 1, impl="fast", workspace=workspace)
        close(out, F.conv2d(x, w, None, 1, 1, impl="plain")[0], dtype)
        dx, dw, db = F.conv2d_backward(np.ones_like(out), cache)
        assert db is None
        close(dx, F.conv2d_backward(np.ones_like(out), F.conv2d(x, w, None, 1, 1, impl="plain")[1])[0], dtype)


def test_conv2d_calls_without_a_workspace_keep_independent_caches():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((2, 1, 3, 3))
    x1, x2 = rng.standard_normal((2, 1, 5, 5)), rng.standard_normal((2, 1, 5, 5))
    out1, cache1 = F.conv2d(x1, w, None, 1, 1, impl="fast")
    F.conv2d(x2, w, None, 1, 1, impl="fast")
    dout = rng.standard_normal(out1.shape)
    close(F.conv2d_backward(dout, cache1)[1], F.conv2d_backward(dout, F.conv2d(x1, w, None, 1, 1, impl="plain")[1])[1],
          np.float64)


pool_cases = st.fixed_dictionaries({
    "N": st.integers(1, 3), "C": st.integers(1, 3), "H": st.integers(1, 9), "W": st.integers(1, 9),
    "KH": st.integers(1, 4), "KW": st.integers(1, 4), "stride": st.one_of(st.none(), pairs(1, 3)),
    "pad_h": st.integers(0, 2), "pad_w": st.integers(0, 2), "seed": st.integers(0, 2**16),
    "dtype": st.sampled_from([np.float64, np.float32]), "ties": st.booleans(), "cnhw": st.booleans()})


def pool_input(c):
    """Random input, with many equal values when ties (as after a ReLU), laid out in memory as
    NCHW or, when cnhw, as conv2d's output is (CNHW)."""
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal((c["C"], c["N"], c["H"], c["W"])).astype(c["dtype"]).transpose(1, 0, 2, 3)
    if c["ties"]:
        x = np.maximum(x, 0).round(1)
    return x if c["cnhw"] else np.ascontiguousarray(x), rng


def pool_args(c):
    padding = (min(c["pad_h"], c["KH"] // 2), min(c["pad_w"], c["KW"] // 2))
    stride = c["stride"] or (c["KH"], c["KW"])
    fits = all(size + 2 * p - k >= 0 for size, p, k in ((c["H"], padding[0], c["KH"]), (c["W"], padding[1], c["KW"])))
    return (c["KH"], c["KW"]), stride, padding, fits


@settings(max_examples=80)
@given(pool_cases)
def test_max_pool2d_fast_equals_plain_and_torch_even_with_ties(c):
    kernel, stride, padding, fits = pool_args(c)
    if not fits:
        return
    x, rng = pool_input(c)
    dtype = c["dtype"]
    out_fast, cache_fast = F.max_pool2d(x, kernel, stride, padding, impl="fast")
    out_plain, cache_plain = F.max_pool2d(x, kernel, stride, padding, impl="plain")
    dout = rng.standard_normal(out_plain.shape).astype(dtype)
    t_out, (t_dx,) = torch_grads(lambda x_: TF.max_pool2d(x_, kernel, stride, padding), [x], dout)
    np.testing.assert_array_equal(out_fast, out_plain)
    close(out_fast, t_out, dtype)
    dx_fast = F.max_pool2d_backward(dout, cache_fast)
    close(dx_fast, F.max_pool2d_backward(dout, cache_plain), dtype)
    close(dx_fast, t_dx, dtype)  # torch, too, sends a tie's gradient to the first maximum only


@settings(max_examples=80)
@given(pool_cases, st.booleans())
def test_avg_pool2d_fast_equals_plain_and_torch(c, count_include_pad):
    kernel, stride, padding, fits = pool_args(c)
    if not fits:
        return
    x, rng = pool_input(c)
    dtype = c["dtype"]
    out_fast, cache_fast = F.avg_pool2d(x, kernel, stride, padding, count_include_pad, impl="fast")
    out_plain, cache_plain = F.avg_pool2d(x, kernel, stride, padding, count_include_pad, impl="plain")
    dout = rng.standard_normal(out_plain.shape).astype(dtype)
    t_out, (t_dx,) = torch_grads(
        lambda x_: TF.avg_pool2d(x_, kernel, stride, padding, count_include_pad=count_include_pad), [x], dout)
    close(out_fast, out_plain, dtype)
    close(out_fast, t_out, dtype)
    dx_fast = F.avg_pool2d_backward(dout, cache_fast)
    close(dx_fast, F.avg_pool2d_backward(dout, cache_plain), dtype)
    close(dx_fast, t_dx, dtype)


def test_unknown_impl_is_refused_by_name():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="impl must be 'plain' or 'fast'"):
        F.conv2d(x, np.zeros((1, 1, 3, 3)), impl="quick")
    with pytest.raises(ValueError, match="max_pool2d: impl"):
        F.max_pool2d(x, 2, impl="quick")
    with pytest.raises(ValueError, match="avg_pool2d: impl"):
        F.avg_pool2d(x, 2, impl="quick")


# -- the layers: each Conv2d owns its workspace ---------------------------------------------------


def twin_convs(dtype):
    """conv - relu - maxpool - conv - avgpool, both convs of the same shape (so of the same buffer shapes)."""
    minicnn.seed(0)
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2, stride=1),
                        nn.Conv2d(3, 3, 3, padding=1, dtype=dtype), nn.AvgPool2d(2))
    return net


def torch_twin(net):
    T = torch.nn
    twin = T.Sequential(T.Conv2d(3, 3, 3, padding=1), T.ReLU(), T.MaxPool2d(2, stride=1), T.Conv2d(3, 3, 3, padding=1),
                        T.AvgPool2d(2)).double()
    twin.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in net.state_dict().items()})
    return twin


@pytest.fixture(params=["plain", "fast"])
def impl(request, monkeypatch):
    monkeypatch.setattr(conv_module, "IMPL", request.param)
    monkeypatch.setattr(pool_module, "IMPL", request.param)
    return request.param


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_conv_layers_of_one_shape_in_one_network_match_torch(impl, dtype):
    net = twin_convs(dtype)
    twin = torch_twin(net)
    rng = np.random.default_rng(2)
    for _ in range(2):  # the second step reuses the buffers of the first
        net.zero_grad()
        twin.zero_grad()
        x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
        out = net(x)
        dout = rng.standard_normal(out.shape).astype(dtype)
        dx = net.backward(dout)
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        t_out = twin(xt)
        t_out.backward(torch.tensor(dout, dtype=torch.float64))
        close(out, t_out, dtype)
        close(dx, xt.grad, dtype)
        for name, p in net.named_parameters():
            close(p.grad, dict(twin.named_parameters())[name].grad, dtype)


def test_forward_twice_then_backward_gives_the_gradient_of_the_last_forward(impl):
    net = twin_convs(np.float64)
    twin = torch_twin(net)
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((2, 2, 3, 8, 8))
    out1 = net(x1)
    kept = out1.copy()
    out2 = net(x2)
    np.testing.assert_array_equal(out1, kept)  # outputs are never reused buffers
    dout = rng.standard_normal(out2.shape)
    dx = net.backward(dout)
    xt = torch.tensor(x2, requires_grad=True)
    twin(xt).backward(torch.tensor(dout))
    close(dx, xt.grad, np.float64)
    close(net[0].weight.grad, twin[0].weight.grad, np.float64)


def test_gradients_handed_out_are_not_overwritten_by_the_next_step(impl):
    net = twin_convs(np.float64)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8, 8))
    dout = rng.standard_normal(net(x).shape)
    dx = net.backward(dout)
    dw = net[0].weight.grad
    kept_dx, kept_dw = dx.copy(), dw.copy()
    net.zero_grad()
    net(rng.standard_normal(x.shape))
    net.backward(-dout)
    np.testing.assert_array_equal(dx, kept_dx)
    np.testing.assert_array_equal(dw, kept_dw)


@pytest.mark.parametrize("make", [lambda: nn.Conv2d(2, 2, 3, padding=1, dtype=np.float64),
                                  lambda: nn.MaxPool2d(3, stride=1, padding=1),
                                  lambda: nn.AvgPool2d(3, stride=1, padding=1)])
def test_a_layer_used_twice_in_one_forward_pass_refuses_its_second_backward(impl, make):
    layer = make()
    net = nn.Sequential(layer, nn.ReLU(), layer)
    x = np.random.default_rng(5).standard_normal((1, 2, 5, 5))
    out = net(x)
    with pytest.raises(RuntimeError, match="backward\\(\\) ran twice after one forward\\(\\)"):
        net.backward(np.ones_like(out))


def test_a_float32_training_step_stays_float32(impl):
    from minicnn import models, optim
    net, loss = models.lenet5(), nn.CrossEntropyLoss()
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x = np.random.default_rng(6).random((4, 1, 28, 28), dtype=np.float32)
    for _ in range(2):
        opt.zero_grad()
        logits = net(x)
        assert logits.dtype == np.float32
        loss(logits, np.arange(4))
        assert net.backward(loss.backward()).dtype == np.float32
        opt.step()
    assert all(p.dtype == np.float32 and p.grad.dtype == np.float32 for p in net.parameters())


def test_one_workspace_shared_by_convolutions_of_different_padding_keeps_each_result_right():
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    workspace = conv_module.Workspace()
    # padding 1 on a 6x6 input and padding 0 on an 8x8 one give the same col shape
    x8 = rng.standard_normal((2, 3, 8, 8))
    F.conv2d(x, w, None, 1, 1, impl="fast", workspace=workspace)
    out, _ = F.conv2d(x8, w, None, 1, 0, impl="fast", workspace=workspace)
    again, _ = F.conv2d(x, w, None, 1, 1, impl="fast", workspace=workspace)
    np.testing.assert_allclose(out, F.conv2d(x8, w, None, 1, 0, impl="plain")[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(again, F.conv2d(x, w, None, 1, 1, impl="plain")[0], rtol=1e-12, atol=1e-12)
