"""Conv2d's full options (groups, depthwise, padding='same'/'valid', padding_mode) and
ConvTranspose2d, against torch: outputs and the gradients wrt input, weight and bias, on random
shapes, strides, paddings, dilations and groups drawn by hypothesis (only valid cases are drawn,
so every example checks something), through both implementations ('plain' and 'fast'), and by
finite differences in float64. Bad arguments get torch's error, naming the layer. The array-op
tests run on every available backend.

float64 agrees with torch to 1e-10, float32 to 1e-4 (relative; 1e-5 absolute near zero).
"""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
import minicnn.nn.functional as F
from minicnn import nn
from minicnn.backend import to_device, to_numpy
from minicnn.gradcheck import check_module, gradcheck
from minicnn.ops import conv as conv_module
from minicnn.ops import conv_transpose as transpose_module
from minicnn.ops import impl as impl_module

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-5)}
IMPLS = ["plain", "fast"]
MODES = ["zeros", "reflect", "replicate", "circular"]


def close(actual, expected, dtype):
    actual = to_numpy(actual.array if isinstance(actual, minicnn.Tensor) else actual)
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert actual.dtype == dtype, f"dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert actual.shape == expected.shape, f"shape {actual.shape}, expected {expected.shape}"
    np.testing.assert_allclose(actual, expected, **TOL[dtype])


def torch_pads(padding, kernel, dilation):
    """((PT, PB), (PL, PR)) by torch's rule, written out independently of minicnn: 'same' pads
    d*(k-1) in all, total // 2 before and the rest after."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
    p = (padding, padding) if isinstance(padding, int) else padding
    return (p[0], p[0]), (p[1], p[1])


@st.composite
def conv_layers(draw):
    """Conv2d settings with 1-3 input sizes (N, H, W) that each fit: the dilated kernel fits the
    padded input, reflect padding is smaller than the input, circular at most the input."""
    G = draw(st.integers(1, 3))
    C = G if draw(st.booleans()) else G * draw(st.integers(1, 2))  # often depthwise
    g = {"C": C, "OC": G * draw(st.integers(1, 2)), "groups": G,
         "kernel": (draw(st.integers(1, 4)), draw(st.integers(1, 4))),
         "dilation": (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
         "padding": draw(st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, 2),
                                   st.tuples(st.integers(0, 2), st.integers(0, 2)))),
         "mode": draw(st.sampled_from(MODES)), "bias": draw(st.booleans()),
         "dtype": draw(st.sampled_from([np.float64, np.float32])), "seed": draw(st.integers(0, 2**16))}
    g["stride"] = (1, 1) if g["padding"] == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    smallest = []
    for (before, after), k, d in zip(torch_pads(g["padding"], g["kernel"], g["dilation"]), g["kernel"], g["dilation"]):
        n = max(1, d * (k - 1) + 1 - before - after)
        n = max(n, max(before, after) + 1) if g["mode"] == "reflect" else n
        n = max(n, max(before, after)) if g["mode"] == "circular" else n
        smallest.append(n)
    sizes = [(draw(st.integers(1, 2)), smallest[0] + draw(st.integers(0, 4)), smallest[1] + draw(st.integers(0, 4)))
             for _ in range(draw(st.integers(1, 3)))]
    return g, sizes


def pair_of_layers(g):
    ours = nn.Conv2d(g["C"], g["OC"], g["kernel"], g["stride"], g["padding"], g["dilation"], g["groups"], g["bias"],
                     g["mode"]).to(g["dtype"])
    theirs = torch.nn.Conv2d(g["C"], g["OC"], g["kernel"], g["stride"], g["padding"], g["dilation"], g["groups"],
                             g["bias"], g["mode"]).double()
    with torch.no_grad():  # the same weights (torch's float64 copy of ours)
        theirs.weight.copy_(torch.from_numpy(to_numpy(ours.weight.array).astype(np.float64)))
        if g["bias"]:
            theirs.bias.copy_(torch.from_numpy(to_numpy(ours.bias.array).astype(np.float64)))
    return ours, theirs


def check_call(ours, theirs, x, dtype, rng, **kwargs):
    """One forward and backward of both layers on x: the output and every gradient agree."""
    for layer in (ours, theirs):
        layer.zero_grad()
    xo = minicnn.tensor(x.astype(dtype), requires_grad=True)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out, t_out = ours(xo, **kwargs), theirs(xt, **kwargs)
    close(out, t_out, dtype)
    dout = rng.standard_normal(tuple(t_out.shape))
    out.backward(minicnn.tensor(dout.astype(dtype)))
    t_out.backward(torch.from_numpy(dout))
    close(xo.grad, xt.grad, dtype)
    close(ours.weight.grad, theirs.weight.grad, dtype)
    if ours.bias is not None:
        close(ours.bias.grad, theirs.bias.grad, dtype)


# -- Conv2d: groups, string padding, padding modes -----------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=150)
@given(case=conv_layers())
def test_conv2d_with_groups_string_padding_and_every_padding_mode_matches_torch_while_h_and_w_change(impl, case):
    g, sizes = case
    rng = np.random.default_rng(g["seed"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(impl_module, "IMPL", impl)
        ours, theirs = pair_of_layers(g)  # one layer, called on every size in turn (its workspace kept)
        for N, H, W in sizes:
            check_call(ours, theirs, rng.standard_normal((N, g["C"], H, W)), g["dtype"], rng)


@st.composite
def conv_ops_cases(draw):
    """conv2d's array op with asymmetric padding ((PT, PB), (PL, PR)) and groups."""
    G = draw(st.integers(1, 3))
    C, OC = G * draw(st.integers(1, 2)), G * draw(st.integers(1, 2))
    K = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    S = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    D = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    H, W = (max(1, d * (k - 1) + 1 - sum(p)) + draw(st.integers(0, 4)) for k, d, p in zip(K, D, pads))
    return (draw(st.integers(1, 2)), C, H, W), (OC, C // G, *K), S, pads, D, G


@settings(max_examples=100)
@given(case=conv_ops_cases(), dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16))
def test_conv2d_op_fast_equals_plain_equals_torch_for_asymmetric_padding_and_groups(backend, case, dtype, seed):
    x_shape, w_shape, S, pads, D, G = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    (PT, PB), (PL, PR) = pads
    t_out = TF.conv2d(TF.pad(leaves[0], (PL, PR, PT, PB)), leaves[1], leaves[2], S, 0, D, G)
    dout = rng.standard_normal(tuple(t_out.shape))
    t_out.backward(torch.from_numpy(dout))
    results = {}
    for impl, workspace in (("plain", None), ("fast", None), ("fast", conv_module.Workspace())):
        out, cache = conv_module.conv2d(*(to_device(a.astype(dtype)) for a in (x, w, b)), S, pads, D, G, impl=impl,
                                        workspace=workspace)
        grads = conv_module.conv2d_backward(to_device(dout.astype(dtype)), cache)
        results[impl] = (out, *grads)
        for ours, theirs in zip(results[impl], [t_out] + [t.grad for t in leaves]):
            close(ours, theirs, dtype)
    for fast, plain in zip(results["fast"], results["plain"]):  # and the two paths agree with each other
        close(fast, plain, dtype)


@settings(max_examples=25)
@given(case=conv_ops_cases(), seed=st.integers(0, 2**16))
def test_conv2d_naive_with_groups_and_asymmetric_padding_matches_torch(case, seed):
    x_shape, w_shape, S, pads, D, G = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    (PT, PB), (PL, PR) = pads
    t_out = TF.conv2d(TF.pad(leaves[0], (PL, PR, PT, PB)), leaves[1], leaves[2], S, 0, D, G)
    dout = rng.standard_normal(tuple(t_out.shape))
    t_out.backward(torch.from_numpy(dout))
    out, cache = conv_module.conv2d_naive(x, w, b, S, pads, D, G)
    for ours, theirs in zip((out, *conv_module.conv2d_naive_backward(dout, cache)), [t_out] + [t.grad for t in leaves]):
        close(ours, theirs, np.float64)


@settings(max_examples=80)
@given(mode=st.sampled_from(MODES[1:]), pads=st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4),
                                                        st.integers(0, 4)),
       extra=st.tuples(st.integers(0, 3), st.integers(0, 3)), seed=st.integers(0, 2**16))
def test_pad2d_and_its_backward_match_torch_for_reflect_replicate_and_circular(backend, mode, pads, extra, seed):
    PT, PB, PL, PR = pads
    reach = 1 if mode == "reflect" else 0  # reflect: padding < size; circular: padding <= size
    H, W = max(1, PT + reach, PB + reach) + extra[0], max(1, PL + reach, PR + reach) + extra[1]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, H, W))
    xt = torch.tensor(x, requires_grad=True)
    t_out = TF.pad(xt, (PL, PR, PT, PB), mode=mode)
    dout = rng.standard_normal(tuple(t_out.shape))
    t_out.backward(torch.from_numpy(dout))
    out, cache = conv_module.pad2d(to_device(x), ((PT, PB), (PL, PR)), mode)
    close(out, t_out, np.float64)
    close(conv_module.pad2d_backward(to_device(dout), cache), xt.grad, np.float64)


@pytest.mark.parametrize("mode", MODES)
def test_same_padding_with_an_even_kernel_and_dilation_2_keeps_the_size_and_pads_the_extra_at_the_end(mode):
    """kernel 4, dilation 2: 6 pixels of padding along each axis, 3 before and 3 after; kernel (2, 4),
    dilation (2, 1): 2 along H (1 + 1) and 3 along W (1 before, 2 after): torch's rule, extra at the end."""
    for kernel, dilation in (((4, 4), (2, 2)), ((2, 4), (2, 1))):
        g = {"C": 2, "OC": 3, "groups": 1, "kernel": kernel, "dilation": dilation, "padding": "same", "mode": mode,
             "bias": True, "dtype": np.float64, "stride": (1, 1)}
        ours, theirs = pair_of_layers(g)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 2, 5, 7))
        assert ours(minicnn.tensor(x)).shape == (2, 3, 5, 7)
        check_call(ours, theirs, x, np.float64, rng)
    assert conv_module.same_padding((2, 4), (2, 1)) == ((1, 1), (1, 2))
    assert conv_module.same_padding((4, 4), (2, 2)) == ((3, 3), (3, 3))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv_groups_equal_to_channels_matches_torch(impl, multiplier, monkeypatch):
    monkeypatch.setattr(impl_module, "IMPL", impl)
    g = {"C": 6, "OC": 6 * multiplier, "groups": 6, "kernel": (3, 3), "dilation": (1, 1), "padding": 1,
         "mode": "zeros", "bias": True, "dtype": np.float32, "stride": (2, 2)}
    ours, theirs = pair_of_layers(g)
    assert ours.weight.shape == (6 * multiplier, 1, 3, 3)
    rng = np.random.default_rng(1)
    for size in (9, 8):
        check_call(ours, theirs, rng.standard_normal((3, 6, size, size)), np.float32, rng)


def test_f_conv2d_takes_string_padding_and_groups_on_tensors_like_torch():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((6, 2, 2, 3)), rng.standard_normal(6)
    for padding in ("same", "valid"):
        ours = F.conv2d(minicnn.tensor(x), minicnn.tensor(w), minicnn.tensor(b), padding=padding, groups=2)
        close(ours, TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), padding=padding, groups=2),
              np.float64)


# -- ConvTranspose2d ---------------------------------------------------------------------------


@st.composite
def transpose_cases(draw):
    """conv_transpose2d settings: output_padding below stride or dilation along each axis, and
    an input large enough for an output of at least one pixel."""
    G = draw(st.integers(1, 3))
    C_in = G if draw(st.booleans()) else G * draw(st.integers(1, 2))
    C_out = G * draw(st.integers(1, 2))
    K = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    S = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    D = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    P = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    OP = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(S, D))
    # (H - 1)*S - 2P + D(K - 1) + OP + 1 >= 1
    smallest = [max(1, 1 + -(-(2 * p - d * (k - 1) - op) // s)) for k, s, p, d, op in zip(K, S, P, D, OP)]
    sizes = [(draw(st.integers(1, 2)), smallest[0] + draw(st.integers(0, 3)), smallest[1] + draw(st.integers(0, 3)))
             for _ in range(draw(st.integers(1, 3)))]
    return {"C_in": C_in, "C_out": C_out, "kernel": K, "stride": S, "padding": P, "output_padding": OP,
            "groups": G, "dilation": D, "bias": draw(st.booleans())}, sizes


def transpose_pair(g, dtype):
    ours = nn.ConvTranspose2d(g["C_in"], g["C_out"], g["kernel"], g["stride"], g["padding"], g["output_padding"],
                              g["groups"], g["bias"], g["dilation"]).to(dtype)
    theirs = torch.nn.ConvTranspose2d(g["C_in"], g["C_out"], g["kernel"], g["stride"], g["padding"],
                                      g["output_padding"], g["groups"], g["bias"], g["dilation"]).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(to_numpy(ours.weight.array).astype(np.float64)))
        if g["bias"]:
            theirs.bias.copy_(torch.from_numpy(to_numpy(ours.bias.array).astype(np.float64)))
    return ours, theirs


@settings(max_examples=100)
@given(case=transpose_cases(), dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16))
def test_conv_transpose2d_op_fast_equals_plain_equals_torch(backend, case, dtype, seed):
    g, sizes = case
    rng = np.random.default_rng(seed)
    N, H, W = sizes[0]
    x = rng.standard_normal((N, g["C_in"], H, W))
    w = rng.standard_normal((g["C_in"], g["C_out"] // g["groups"], *g["kernel"]))
    b = rng.standard_normal(g["C_out"]) if g["bias"] else None
    args = (g["stride"], g["padding"], g["output_padding"], g["groups"], g["dilation"])
    leaves = [None if a is None else torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    t_out = TF.conv_transpose2d(*leaves, *args)
    dout = rng.standard_normal(tuple(t_out.shape))
    t_out.backward(torch.from_numpy(dout))
    cast = [None if a is None else to_device(a.astype(dtype)) for a in (x, w, b)]
    results = {}
    for impl, workspace in (("plain", None), ("fast", None), ("fast", conv_module.Workspace())):
        out, cache = transpose_module.conv_transpose2d(*cast, *args, impl=impl, workspace=workspace)
        results[impl] = (out, *transpose_module.conv_transpose2d_backward(to_device(dout.astype(dtype)), cache))
        for ours, theirs in zip(results[impl], [t_out] + [t.grad for t in leaves if t is not None]):
            close(ours, theirs, dtype)
        assert (results[impl][3] is None) == (b is None)
    for fast, plain in zip(results["fast"][:3], results["plain"][:3]):
        close(fast, plain, dtype)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=100)
@given(case=transpose_cases(), dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16))
def test_conv_transpose2d_layer_matches_torch_while_h_and_w_change(impl, case, dtype, seed):
    g, sizes = case
    rng = np.random.default_rng(seed)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(impl_module, "IMPL", impl)
        ours, theirs = transpose_pair(g, dtype)
        for N, H, W in sizes:
            check_call(ours, theirs, rng.standard_normal((N, g["C_in"], H, W)), dtype, rng)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_transpose2d_output_padding_at_its_maximum_matches_torch(impl, monkeypatch):
    """output_padding = stride - 1, and (stride 1, dilation 3) output_padding = dilation - 1 = 2."""
    monkeypatch.setattr(impl_module, "IMPL", impl)
    rng = np.random.default_rng(3)
    for stride, dilation, padding in (((3, 2), (1, 1), (1, 0)), ((1, 1), (3, 3), (0, 2)), ((2, 1), (1, 3), (2, 0))):
        op = tuple(max(s, d) - 1 for s, d in zip(stride, dilation))
        g = {"C_in": 4, "C_out": 6, "kernel": (3, 2), "stride": stride, "padding": padding, "output_padding": op,
             "groups": 2, "dilation": dilation, "bias": True}
        ours, theirs = transpose_pair(g, np.float64)
        check_call(ours, theirs, rng.standard_normal((2, 4, 3, 4)), np.float64, rng)


@pytest.mark.parametrize("layer_kind", ["conv", "transpose"])
def test_two_forwards_then_two_backwards_on_one_layer_give_each_call_its_own_gradients(layer_kind, monkeypatch):
    """The fast path's workspace is shared by both calls of the one layer: nothing may leak between them."""
    monkeypatch.setattr(impl_module, "IMPL", "fast")
    minicnn.manual_seed(0)
    if layer_kind == "conv":
        ours = nn.Conv2d(4, 6, 3, padding="same", groups=2, padding_mode="reflect").double()
        theirs = torch.nn.Conv2d(4, 6, 3, padding="same", groups=2, padding_mode="reflect").double()
    else:
        ours = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2).double()
        theirs = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(to_numpy(ours.weight.array)))
        theirs.bias.copy_(torch.from_numpy(to_numpy(ours.bias.array)))
    rng = np.random.default_rng(9)
    xs = [rng.standard_normal((2, 4, 5, 5)), rng.standard_normal((2, 4, 5, 5))]  # one shape: the same buffers
    inputs = [minicnn.tensor(x, requires_grad=True) for x in xs]
    outs = [ours(x) for x in inputs]
    for k in (1, 0):
        ours.zero_grad()
        theirs.zero_grad()
        dout = rng.standard_normal(tuple(outs[k].shape))
        outs[k].backward(minicnn.tensor(dout))
        xt = torch.tensor(xs[k], requires_grad=True)
        theirs(xt).backward(torch.from_numpy(dout))
        close(inputs[k].grad, xt.grad, np.float64)
        close(ours.weight.grad, theirs.weight.grad, np.float64)
        close(ours.bias.grad, theirs.bias.grad, np.float64)


def test_conv_transpose2d_output_size_picks_the_output_padding_as_torch():
    rng = np.random.default_rng(4)
    g = {"C_in": 3, "C_out": 2, "kernel": (3, 3), "stride": (3, 2), "padding": (1, 1), "output_padding": (0, 0),
         "groups": 1, "dilation": (1, 1), "bias": True}
    ours, theirs = transpose_pair(g, np.float64)
    x = rng.standard_normal((2, 3, 4, 5))  # smallest output (10, 9); (12, 10) is the largest the strides allow
    for size in ((10, 9), (12, 10), (2, 2, 11, 10)):
        check_call(ours, theirs, x, np.float64, rng, output_size=size)
    unbatched = ours(minicnn.tensor(x[0]), output_size=[2, 11, 10])
    close(unbatched, theirs(torch.tensor(x[0]), output_size=[2, 11, 10]), np.float64)
    with pytest.raises(ValueError, match=re.escape("requested an output size of [13, 9], but valid sizes range from "
                                                   "[10, 9] to [12, 10] (for an input of (4, 5))")):
        ours(minicnn.tensor(x), output_size=(13, 9))


def test_f_conv_transpose2d_on_tensors_records_its_backward():
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(6)
    leaves = [minicnn.tensor(a, requires_grad=True) for a in (x, w, b)]
    t_leaves = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    out = F.conv_transpose2d(*leaves, stride=2, padding=1, output_padding=1, groups=2)
    t_out = TF.conv_transpose2d(*t_leaves, stride=2, padding=1, output_padding=1, groups=2)
    close(out, t_out, np.float64)
    (out * out).sum().backward()
    (t_out * t_out).sum().backward()
    for ours, theirs in zip(leaves, t_leaves):
        close(ours.grad, theirs.grad, np.float64)


# -- finite differences ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_conv2d_grouped_same_padding_gradients_pass_a_finite_difference_check(mode):
    minicnn.manual_seed(0)
    layer = nn.Conv2d(4, 6, (2, 3), padding="same", dilation=(2, 1), groups=2, padding_mode=mode).double()
    x = np.random.default_rng(6).standard_normal((2, 4, 5, 4))
    result = check_module(layer, x)
    assert result.ok(1e-6), str(result)


def test_conv_transpose2d_gradients_pass_a_finite_difference_check():
    minicnn.manual_seed(0)
    layer = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=(1, 2)).double()
    result = check_module(layer, np.random.default_rng(7).standard_normal((2, 4, 3, 3)))
    assert result.ok(1e-6), str(result)


@pytest.mark.parametrize("mode", MODES[1:])
def test_pad2d_backward_passes_a_finite_difference_check(mode):
    x = np.random.default_rng(8).standard_normal((2, 2, 4, 3))
    result = gradcheck(lambda a: conv_module.pad2d(a, ((3 if mode != "reflect" else 2, 1), (0, 2)), mode),
                       conv_module.pad2d_backward, [x])
    assert result.ok(1e-6), str(result)


# -- init, repr, macs ----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda lib: lib.Conv2d(8, 16, 3, groups=4),
    lambda lib: lib.Conv2d(8, 8, (3, 5), groups=8),
    lambda lib: lib.ConvTranspose2d(6, 32, 3),
    lambda lib: lib.ConvTranspose2d(6, 32, (2, 3), groups=2),
])
def test_default_init_uses_torchs_fan_in_for_groups_and_transposed_weights(make):
    ours, theirs = make(nn), make(torch.nn)
    assert tuple(ours.weight.shape) == tuple(theirs.weight.shape)
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(theirs.weight)
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)): gain sqrt(1/3), bound gain*sqrt(3/fan_in)
    for p in (ours.weight, ours.bias):
        values = to_numpy(p.array)
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.7 * bound  # spread over the whole range, not a smaller one


@pytest.mark.parametrize("make", [
    lambda lib: lib.Conv2d(4, 8, 3),
    lambda lib: lib.Conv2d(4, 8, 3, padding="same", groups=2, padding_mode="circular", bias=False),
    lambda lib: lib.Conv2d(4, 8, (3, 2), stride=(2, 1), padding="valid", dilation=(2, 1), groups=4,
                           padding_mode="reflect"),
    lambda lib: lib.Conv2d(4, 4, 3, padding=(1, 2), padding_mode="replicate"),
    lambda lib: lib.ConvTranspose2d(4, 8, 3),
    lambda lib: lib.ConvTranspose2d(4, 8, (3, 2), stride=2, padding=1, output_padding=1, groups=2, bias=False,
                                    dilation=(2, 1)),
])
def test_repr_is_torchs(make):
    assert repr(make(nn)) == repr(make(torch.nn))


def test_macs_count_one_product_per_weight_tap_each_output_or_input_pixel_uses():
    conv = nn.Conv2d(8, 16, 3, padding=1, groups=4)
    assert conv.macs((2, 8, 10, 10), (2, 16, 10, 10)) == 2 * 16 * 10 * 10 * (8 // 4) * 9
    depthwise = nn.Conv2d(8, 8, 3, groups=8)
    assert depthwise.macs((1, 8, 6, 6), (1, 8, 4, 4)) == 8 * 4 * 4 * 9
    up = nn.ConvTranspose2d(8, 6, (3, 2), stride=2, groups=2)
    x_shape = (2, 8, 5, 5)
    y = up(minicnn.zeros(x_shape))
    assert up.macs(x_shape, tuple(y.shape)) == 2 * 8 * 5 * 5 * (6 // 2) * 3 * 2


# -- errors --------------------------------------------------------------------------------------


x4 = np.zeros((1, 4, 3, 5), np.float32)
BAD = [
    (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, r"Conv2d: in_channels must be divisible by groups"),
    (lambda: nn.Conv2d(4, 3, 3, groups=2), ValueError, r"Conv2d: out_channels must be divisible by groups"),
    (lambda: nn.Conv2d(4, 4, 3, groups=0), ValueError, r"Conv2d: groups must be a positive int, got 0"),
    (lambda: nn.Conv2d(4, 4, 3, groups=1.5), TypeError, r"Conv2d: groups must be a positive int, got 1.5"),
    (lambda: nn.Conv2d(4, 4, 3, padding="full"), ValueError,
     r"Conv2d: Invalid padding string 'full', should be one of \{'valid', 'same'\}"),
    (lambda: nn.Conv2d(4, 4, 3, stride=2, padding="same"), ValueError,
     r"Conv2d: padding='same' is not supported for strided convolutions"),
    (lambda: nn.Conv2d(4, 4, 3, padding_mode="mirror"), ValueError,
     r"Conv2d: padding_mode must be one of \{'zeros', 'reflect', 'replicate', 'circular'\}, "
     r"but got padding_mode='mirror'"),
    (lambda: nn.Conv2d(4, 4, 3, padding=3, padding_mode="reflect")(x4), ValueError,
     r"Conv2d\(4, 4, .*padding_mode=reflect\): reflect padding: Padding size should be less than the corresponding "
     r"input dimension, but got: padding \(3, 3\) at dimension 2 of input \(1, 4, 3, 5\)"),
    (lambda: nn.Conv2d(4, 4, 1, padding=4, padding_mode="circular")(x4), ValueError,
     r"Conv2d\(4, 4, .*\): circular padding: Padding value causes wrapping around more than once"),
    (lambda: nn.Conv2d(4, 4, 3, groups=2)(np.zeros((1, 2, 5, 5), np.float32)), ValueError,
     r"Conv2d\(4, 4, .*groups=2\): expected 4 input channels"),
    (lambda: F.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((4, 1, 3, 3)), groups=2), ValueError,
     r"conv2d: weight \(4, 1, 3, 3\) with groups=2 expects 2 input channels, got input of shape \(1, 4, 5, 5\) with 4"),
    (lambda: F.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((4, 2, 3, 3)), groups=3), ValueError,
     r"conv2d: Given groups=3, expected weight to be divisible by 3 at dimension 0"),
    (lambda: F.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((4, 4, 3, 3)), stride=2, padding="same"), ValueError,
     r"conv2d: padding='same' is not supported for strided convolutions"),
    (lambda: nn.ConvTranspose2d(3, 4, 3, groups=2), ValueError,
     r"ConvTranspose2d: in_channels must be divisible by groups"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, stride=2, output_padding=2), ValueError,
     r"ConvTranspose2d: output padding must be smaller than either stride or dilation, but got output_padding="
     r"\(2, 2\), stride=\(2, 2\), dilation=\(1, 1\)"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, stride=(2, 1), output_padding=1), ValueError,
     r"ConvTranspose2d: output padding must be smaller than either stride or dilation"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, padding_mode="reflect"), ValueError,
     r'ConvTranspose2d: Only "zeros" padding mode is supported for ConvTranspose2d'),
    (lambda: nn.ConvTranspose2d(4, 4, 3, padding="same"), TypeError,
     r"ConvTranspose2d: padding must be an int or a pair of ints, got 'same'"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, padding=3)(np.zeros((1, 4, 2, 2), np.float32)), ValueError,
     r"ConvTranspose2d\(4, 4, .*\): conv_transpose2d: Given input size per channel: \(2 x 2\). Calculated output "
     r"size per channel: \(-2 x -2\). Output size is too small"),
    (lambda: nn.ConvTranspose2d(4, 4, 3)(np.zeros((1, 3, 2, 2), np.float32)), ValueError,
     r"ConvTranspose2d\(4, 4, .*\): expected 4 input channels"),
    (lambda: nn.ConvTranspose2d(4, 4, 3)(np.zeros((1, 4, 2, 2), np.float32), output_size=(1, 2, 3)), ValueError,
     r"for 4D input, output_size must have 2 or 4 elements \(got 3\)"),
    (lambda: F.conv_transpose2d(np.zeros((1, 4, 5, 5)), np.zeros((4, 3, 3, 3)), output_padding=1), ValueError,
     r"conv_transpose2d: output padding must be smaller than either stride or dilation"),
    (lambda: F.conv_transpose2d(np.zeros((1, 4, 5, 5)), np.zeros((3, 3, 3, 3))), ValueError,
     r"conv_transpose2d: weight \(3, 3, 3, 3\) expects 3 input channels \(its first dimension\), got input of shape "
     r"\(1, 4, 5, 5\) with 4"),
    (lambda: F.conv_transpose2d(np.zeros((1, 4, 5, 5)), np.zeros((4, 3, 3, 3)), groups=3), ValueError,
     r"conv_transpose2d: Given groups=3, expected weight to be divisible by 3 at dimension 0"),
    (lambda: F.conv_transpose2d(np.zeros((1, 4, 5, 5)), np.zeros((4, 3, 3, 3)), np.zeros(3), groups=2), ValueError,
     r"conv_transpose2d: expected bias of shape \(6,\), got \(3,\)"),
    (lambda: F.conv_transpose2d(np.zeros((1, 4, 5, 5), np.float32), np.zeros((4, 3, 3, 3))), TypeError,
     r"conv_transpose2d: expected x, w and b of one dtype"),
    (lambda: transpose_module.conv_transpose2d(np.zeros((1, 4, 5, 5)), np.zeros((4, 3, 3, 3)), impl="quick"),
     ValueError, r"conv_transpose2d: impl must be 'plain' or 'fast', got 'quick'"),
]


@pytest.mark.parametrize("call, error, message", BAD)
def test_bad_arguments_get_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("call", [
    lambda lib, x: lib.nn.Conv2d(4, 4, 3, groups=3),
    lambda lib, x: lib.nn.Conv2d(4, 4, 3, stride=2, padding="same"),
    lambda lib, x: lib.nn.Conv2d(4, 4, 3, padding=3, padding_mode="reflect")(x),
    lambda lib, x: lib.nn.Conv2d(4, 4, 1, padding=4, padding_mode="circular")(x),
    lambda lib, x: lib.nn.ConvTranspose2d(4, 4, 3, stride=2, output_padding=2)(x),
    lambda lib, x: lib.nn.ConvTranspose2d(4, 4, 3, padding_mode="reflect"),
])
def test_what_minicnn_refuses_torch_refuses_too(call):
    with pytest.raises((ValueError, RuntimeError)):
        call(torch, torch.zeros(1, 4, 3, 5))
    with pytest.raises(ValueError):
        call(minicnn, minicnn.zeros(1, 4, 3, 5))
