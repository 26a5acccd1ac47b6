"""The modern activations and Dropout2d against torch: values and gradients (of the input, and of
PReLU's weight) in float64 (1e-10) and float32 (1e-5 relative) on random shapes and settings,
including the kinks, where the gradient is a choice and minicnn makes torch's; finite-difference
gradchecks of the array pairs; the float64 accuracy of the hand-written erf; the modules' reprs
and their errors."""

import math

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.backend import to_device, to_numpy
from minicnn.gradcheck import gradcheck
from minicnn.ops import activation as A
from minicnn.ops.dropout import dropout2d as _dropout2d, dropout2d_backward as _dropout2d_backward

DTYPES = [np.float64, np.float32]
TOL = {np.dtype("float64"): dict(rtol=1e-10, atol=1e-10), np.dtype("float32"): dict(rtol=1e-5, atol=1e-5)}
seeds = st.integers(0, 2**32 - 1)


def assert_same(ours, ref, dtype=None, tol=None):
    """ours (a minicnn Tensor) has dtype (default: ref's), ref's shape and ref's values. A float32 result is
    compared with torch's float64 result on the same inputs: the exact value, not one float32 rounding of it."""
    dtype = np.dtype(dtype or str(ref.dtype).replace("torch.", ""))
    assert ours.dtype == dtype, f"dtype {ours.dtype}, expected {dtype}"
    assert tuple(ours.shape) == tuple(ref.shape), f"shape {tuple(ours.shape)}, torch gives {tuple(ref.shape)}"
    np.testing.assert_allclose(to_numpy(ours.array), ref.detach().numpy(), **(tol or TOL[dtype]))


def check(fn, *arrays, seed=0, grad_tol=None):
    """fn(mc, F, *leaves) and fn(torch, TF, *leaves) agree in value and in every leaf's gradient (torch in
    float64 on the same values: see assert_same)."""
    dtype = arrays[0].dtype
    ours = [mc.tensor(to_device(a), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    out, ref = fn(mc, F, *ours), fn(torch, TF, *theirs)
    assert_same(out, ref, dtype)
    dout = np.random.default_rng(seed).standard_normal(tuple(ref.shape)).astype(dtype)
    out.backward(mc.tensor(to_device(dout)))
    ref.backward(torch.tensor(dout.astype(np.float64)))
    for o, t in zip(ours, theirs):
        assert o.grad is not None, "torch gives this input a gradient, minicnn gives none"
        assert_same(o.grad, t.grad, dtype, grad_tol)


# name: (call on (module, F, x, **params), strategy of params, the kinks for those params)
ACTIVATIONS = {
    "leaky_relu": (lambda T, F, x, slope: F.leaky_relu(x, slope), dict(slope=st.sampled_from([0.01, 0.2, -0.5])),
                   lambda slope: [0.0]),
    "elu": (lambda T, F, x, alpha: F.elu(x, alpha), dict(alpha=st.sampled_from([1.0, 0.5, 2.0])), lambda alpha: [0.0]),
    "selu": (lambda T, F, x: F.selu(x), {}, lambda: [0.0]),
    "gelu": (lambda T, F, x, approximate: F.gelu(x, approximate=approximate),
             dict(approximate=st.sampled_from(["none", "tanh"])), lambda approximate: []),
    "silu": (lambda T, F, x: F.silu(x), {}, lambda: []),
    "softplus": (lambda T, F, x, beta, threshold: F.softplus(x, beta, threshold),
                 dict(beta=st.sampled_from([1.0, 2.0, 0.5]), threshold=st.sampled_from([20.0, 1.0, 3.0])),
                 lambda beta, threshold: [threshold / beta]),
    "hardtanh": (lambda T, F, x, lo, hi: F.hardtanh(x, lo, hi), dict(lo=st.sampled_from([-1.0, -2.5, 0.0]),
                                                                     hi=st.sampled_from([1.0, 0.5, 3.0])),
                 lambda lo, hi: [lo, hi]),
    "relu6": (lambda T, F, x: F.relu6(x), {}, lambda: [0.0, 6.0]),
    "hardsigmoid": (lambda T, F, x: F.hardsigmoid(x), {}, lambda: [-3.0, 3.0]),
    "hardswish": (lambda T, F, x: F.hardswish(x), {}, lambda: [-3.0, 3.0]),
    "softsign": (lambda T, F, x: F.softsign(x), {}, lambda: [0.0]),
}


def _with_kinks(x, kinks, seed):
    """x with some entries set exactly to the kinks (where one-sided derivatives differ)."""
    flat = x.reshape(-1).copy()
    rng = np.random.default_rng(seed)
    for k in kinks:
        flat[rng.integers(0, flat.size, size=max(1, flat.size // 6))] = k
    return flat.reshape(x.shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@settings(max_examples=20)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=5), seed=seeds,
       scale=st.sampled_from([1.0, 4.0, 30.0]))
def test_activation_value_and_grad_match_torch_including_at_the_kinks(backend, dtype, name, data, shape, seed, scale):
    fn, params, kinks = ACTIVATIONS[name]
    kwargs = {k: data.draw(s, label=k) for k, s in params.items()}
    assume(name != "hardtanh" or kwargs["lo"] < kwargs["hi"])
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    if x.size:
        x = _with_kinks(x, kinks(**kwargs), seed)
    grad_tol = dict(rtol=1e-7, atol=1e-7) if name == "hardsigmoid" and dtype == np.float64 else None
    check(lambda T, F, x: fn(T, F, x, **kwargs), x, seed=seed, grad_tol=grad_tol)


def test_hardsigmoid_gradient_is_exactly_one_sixth_where_torch_rounds_it_to_float32():
    x = mc.tensor(np.array([-1.0, 0.5, 2.0]), requires_grad=True)
    F.hardsigmoid(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 1 / 6))
    t = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    TF.hardsigmoid(t).sum().backward()
    assert t.grad[0].item() == float(np.float32(1 / 6))  # torch's float64 kernel: 1/6 rounded to float32


@pytest.mark.parametrize("x, grads", [
    ("hardtanh", {-1.0: 0.0, 1.0: 0.0, 0.0: 1.0}), ("relu6", {0.0: 0.0, 6.0: 0.0, 3.0: 1.0}),
    ("hardswish", {-3.0: 0.0, 3.0: 1.0, 0.0: 0.5}), ("hardsigmoid", {-3.0: 0.0, 3.0: 0.0}),
    ("leaky_relu", {0.0: 0.01}), ("elu", {0.0: 1.0}),
])
def test_gradients_at_the_kinks_are_torchs_choices(x, grads):
    points = np.array(list(grads), dtype=np.float64)
    t = mc.tensor(points, requires_grad=True)
    getattr(F, x)(t).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.array(list(grads.values())))


def _away_from(x, kinks, gap=1e-3):
    return all(np.abs(x - k).min() > gap for k in kinks) if x.size else True


PAIRS = {  # name: (forward on the array, backward, kinks)
    "leaky_relu": (lambda x: A.leaky_relu(x, 0.1), A.leaky_relu_backward, [0.0]),
    "elu": (lambda x: A.elu(x, 1.5), A.elu_backward, [0.0]),
    "selu": (A.selu, A.selu_backward, [0.0]),
    "gelu": (A.gelu, A.gelu_backward, []),
    "gelu_tanh": (lambda x: A.gelu(x, "tanh"), A.gelu_backward, []),
    "silu": (A.silu, A.silu_backward, []),
    "softplus": (lambda x: A.softplus(x, 2.0, 3.0), A.softplus_backward, [1.5]),
    "hardtanh": (lambda x: A.hardtanh(x, -0.5, 1.5), A.hardtanh_backward, [-0.5, 1.5]),
    "relu6": (A.relu6, A.relu6_backward, [0.0, 6.0]),
    "hardsigmoid": (A.hardsigmoid, A.hardsigmoid_backward, [-3.0, 3.0]),
    "hardswish": (A.hardswish, A.hardswish_backward, [-3.0, 3.0]),
    "softsign": (A.softsign, A.softsign_backward, [0.0]),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
@settings(max_examples=5)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                    elements=st.floats(-8, 8, allow_nan=False)))
def test_activation_pair_passes_gradcheck_in_float64(name, x):
    forward, backward, kinks = PAIRS[name]
    assume(_away_from(x, kinks))
    x = np.ascontiguousarray(x)
    result = gradcheck(forward, backward, [x])
    assert result.ok(1e-6), f"{name}: {result}"


@settings(max_examples=10)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), per_channel=st.booleans(), seed=seeds)
def test_prelu_pair_passes_gradcheck_for_input_and_weight(shape, per_channel, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    C = shape[1] if per_channel and len(shape) >= 2 else 1
    w = rng.standard_normal(C)
    assume(_away_from(x, [0.0]))
    result = gradcheck(A.prelu, A.prelu_backward, [x, w])
    assert result.ok(1e-6), str(result)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=4), per_channel=st.booleans(), seed=seeds,
       init=st.sampled_from([0.25, -0.3, 1.5]))
def test_prelu_module_value_and_grads_of_input_and_weight_match_torch(backend, dtype, shape, per_channel, seed, init):
    C = shape[1] if per_channel and len(shape) >= 2 else 1
    ours, theirs = nn.PReLU(C, init).to(dtype=dtype), torch.nn.PReLU(C, init).double()
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(C).astype(dtype)  # not all equal, so a weight mixed up between channels shows
    ours.weight.array[...] = to_device(w)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(w.astype(np.float64)))
    x = _with_kinks(rng.standard_normal(shape).astype(dtype), [0.0], seed) if shape else rng.standard_normal(shape)
    x = np.asarray(x, dtype=dtype)
    xt, xr = mc.tensor(to_device(x), requires_grad=True), torch.tensor(x.astype(np.float64), requires_grad=True)
    out, ref = ours(xt), theirs(xr)
    assert_same(out, ref, dtype)
    dout = rng.standard_normal(ref.shape).astype(dtype)
    out.backward(mc.tensor(to_device(dout)))
    ref.backward(torch.tensor(dout.astype(np.float64)))
    assert_same(xt.grad, xr.grad, dtype)
    assert_same(ours.weight.grad, theirs.weight.grad, dtype)


def test_prelu_with_more_slopes_than_channels_is_torchs_error():
    with pytest.raises(ValueError, match="Found parameter numbers = 3 and channel size = 4"):
        nn.PReLU(3)(mc.zeros(2, 4))
    with pytest.raises(ValueError, match="channel size = 1"):
        nn.PReLU(3)(mc.zeros(3))


# -- erf -------------------------------------------------------------------------------------------


def test_erf_and_erfc_are_float64_accurate_to_1e_15_relative_against_mpmath():
    mpmath.mp.dps = 40
    x = np.concatenate([np.linspace(-6, 26, 1601), [0.0, 0.46875, -0.46875, 4.0, -4.0, 1e-300, -1e-12, 5e-9],
                        np.random.default_rng(0).uniform(-5, 5, 400)])
    ref_erf = np.array([float(mpmath.erf(mpmath.mpf(float(v)))) for v in x])
    ref_erfc = np.array([float(mpmath.erfc(mpmath.mpf(float(v)))) for v in x])
    for ours, ref in ((A.erf(x), ref_erf), (A.erfc(x), ref_erfc)):
        nonzero = ref != 0
        rel = np.abs(ours - ref)[nonzero] / np.abs(ref[nonzero])
        assert rel.max() < 1e-15, f"max relative error {rel.max():.2e} at x = {x[nonzero][np.argmax(rel)]}"
        np.testing.assert_array_equal(ours[~nonzero], 0)


def test_erf_is_odd_bounded_and_keeps_float32():
    x = np.float32([-np.inf, -30, -1, 0, 1, 30, np.inf])
    e = A.erf(x)
    assert e.dtype == np.float32
    np.testing.assert_array_equal(e, -e[::-1])
    np.testing.assert_allclose(e, [math.erf(v) for v in x.astype(float)], atol=2e-7)
    assert np.isnan(A.erf(np.array([np.nan]))).all()


def test_gelu_far_in_the_negative_tail_is_tiny_not_zero_and_its_gradient_too():
    mpmath.mp.dps = 40
    x = mpmath.mpf(-30)
    cdf, pdf = mpmath.erfc(-x / mpmath.sqrt(2)) / 2, mpmath.exp(-x * x / 2) / mpmath.sqrt(2 * mpmath.pi)
    out, cache = A.gelu(np.array([-30.0]))
    grad = A.gelu_backward(np.ones(1), cache)
    assert out[0] == pytest.approx(float(x * cdf), rel=1e-14) and out[0] < 0
    assert grad[0] == pytest.approx(float(cdf + x * pdf), rel=1e-14) and grad[0] < 0


# -- stability ---------------------------------------------------------------------------------


def test_softplus_never_overflows_even_with_a_huge_threshold():
    x = mc.tensor(np.float32([-200.0, 0.0, 100.0, 200.0]), requires_grad=True)
    y = F.softplus(x, beta=1.0, threshold=1e4)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), [0.0, math.log(2), 100.0, 200.0], rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.5, 1.0, 1.0], atol=1e-7)


def test_elu_and_selu_of_large_positive_inputs_stay_finite():
    x = np.float32([100.0, 1000.0])
    assert np.isfinite(A.elu(x)[0]).all() and np.isfinite(A.selu_backward(np.ones(2, np.float32), A.selu(x)[1])).all()


# -- Dropout2d ---------------------------------------------------------------------------------


@settings(max_examples=10)
@given(N=st.integers(1, 4), C=st.integers(1, 6), p=st.sampled_from([0.2, 0.5, 0.8]), seed=seeds)
def test_dropout2d_zeroes_whole_channels_and_scales_the_rest(N, C, p, seed):
    mc.manual_seed(seed)
    values = np.random.default_rng(seed).uniform(1, 2, (N, C, 3, 4))
    x = mc.tensor(values, requires_grad=True)
    y = F.dropout2d(x, p, training=True)
    out = y.detach().numpy()
    kept = out.reshape(N, C, -1).any(axis=2)
    np.testing.assert_allclose(out, np.where(kept[:, :, None, None], values / (1 - p), 0))
    y.sum().backward()  # the gradient goes through the same channels, scaled the same
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(np.where(kept, 1 / (1 - p), 0)[:, :, None, None],
                                                               x.shape))


def test_dropout2d_drops_a_fraction_p_of_channels_and_is_seeded():
    x = mc.ones(200, 50, 1, 1)
    mc.manual_seed(1)
    a = F.dropout2d(x, 0.3).numpy()
    mc.manual_seed(1)
    b = F.dropout2d(x, 0.3).numpy()
    np.testing.assert_array_equal(a, b)
    assert (a == 0).mean() == pytest.approx(0.3, abs=0.02)


def test_dropout2d_is_the_identity_in_eval_and_zero_for_p_one():
    layer = nn.Dropout2d(0.5).eval()
    x = mc.randn(2, 3, 4, 4)
    assert layer(x) is x
    np.testing.assert_array_equal(nn.Dropout2d(1.0)(x).numpy(), np.zeros(x.shape, np.float32))


def test_dropout2d_refuses_3d_input_and_says_which_shapes_it_could_mean():
    with pytest.raises(ValueError, match=r"Dropout2d.*expected input of shape \(N, C, H, W\), got shape \(2, 3, 4\).*"
                                         r"unsqueeze\(0\).*unsqueeze\(-1\)"):
        nn.Dropout2d(0.5)(mc.randn(2, 3, 4))
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout2d(1.5)


def test_dropout2d_pair_identity_when_not_training():
    x = np.ones((1, 2, 2, 2))
    out, cache = _dropout2d(x, 0.5, training=False)
    assert out is x and cache is None and _dropout2d_backward(x, cache) is x


# -- modules: reprs, defaults and errors ---------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda nn: nn.LeakyReLU(), lambda nn: nn.LeakyReLU(0.2, True), lambda nn: nn.ELU(), lambda nn: nn.ELU(0.5),
    lambda nn: nn.SELU(), lambda nn: nn.GELU(), lambda nn: nn.GELU("tanh"), lambda nn: nn.SiLU(),
    lambda nn: nn.Softplus(), lambda nn: nn.Softplus(2, 10), lambda nn: nn.Hardtanh(), lambda nn: nn.Hardtanh(-2, 3),
    lambda nn: nn.ReLU6(), lambda nn: nn.ReLU6(inplace=True), lambda nn: nn.Hardsigmoid(), lambda nn: nn.Hardswish(),
    lambda nn: nn.Softsign(), lambda nn: nn.PReLU(), lambda nn: nn.PReLU(3), lambda nn: nn.Dropout2d(),
    lambda nn: nn.Dropout2d(0.2),
])
def test_activation_module_repr_is_torchs(make):
    assert repr(make(nn)) == repr(make(torch.nn))


def test_prelu_defaults_and_state_dict_are_torchs():
    ours, theirs = nn.PReLU(4), torch.nn.PReLU(4)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    np.testing.assert_array_equal(ours.weight.detach().numpy(), theirs.weight.detach().numpy())
    assert ours.weight.dtype == np.float32


@pytest.mark.parametrize("call, message", [
    (lambda: nn.GELU("fast"), "approximate argument must be either none or tanh"),
    (lambda: F.gelu(mc.zeros(2), approximate="erf"), "approximate argument must be either none or tanh"),
    (lambda: nn.Hardtanh(1.0, -1.0), r"max_val \(-1.0\) must be greater than min_val \(1.0\)"),
    (lambda: nn.Softplus(beta=0), "beta must not be 0"),
    (lambda: nn.PReLU(0), "num_parameters must be a positive int"),
])
def test_bad_activation_arguments_are_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_activations_refuse_integer_input_and_keep_float32():
    with pytest.raises(TypeError, match="floating-point"):
        F.silu(mc.tensor([1, 2]))
    x = mc.randn(3, requires_grad=True)
    for name in sorted(ACTIVATIONS):
        y = getattr(F, name)(x)
        y.sum().backward()
        assert y.dtype == x.grad.dtype == np.float32
