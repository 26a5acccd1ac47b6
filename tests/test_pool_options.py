"""The full pooling options and upsampling, against torch: ceil_mode, dilation, return_indices,
divisor_override, adaptive max pooling, max_unpool2d and interpolate ('nearest', 'bilinear').

Outputs and gradients agree with torch to 1e-10 in float64 and ~1e-5 (relative) in float32, on
random shapes and settings drawn by hypothesis (only valid settings are drawn); the 'plain' and
'fast' pooling paths agree with each other and with torch; each new forward/backward pair passes
a finite-difference gradcheck in float64.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.backend import to_device, to_numpy
from minicnn.gradcheck import gradcheck
from minicnn.ops import pool as P
from minicnn.ops import upsample as U
from torch_compare import TOL, assert_same, seeds  # noqa: E402

DTYPES = [np.float64, np.float32]
IMPLS = ["plain", "fast"]


# -- helpers --------------------------------------------------------------------------------------


def torch_run(fn, x, dout=None, seed=0):
    """fn on a torch leaf made from x; returns (outputs as a tuple, x.grad for a random or given dout)."""
    leaf = torch.tensor(x, requires_grad=True)
    out = fn(leaf)
    outs = out if isinstance(out, tuple) else (out,)
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(tuple(outs[0].shape)).astype(x.dtype)
    outs[0].backward(torch.tensor(dout))
    return outs, leaf.grad, dout


def ours_run(fn, x, dout):
    """fn on a minicnn leaf made from x (on the active backend); returns (outputs as a tuple, x.grad)."""
    leaf = mc.tensor(to_device(x), requires_grad=True)
    out = fn(leaf)
    outs = out if isinstance(out, tuple) else (out,)
    outs[0].backward(mc.tensor(to_device(dout)))
    return outs, leaf.grad


def check_against_torch(ours, theirs, x, seed=0):
    """ours(minicnn leaf) and theirs(torch leaf) agree: every output (values, indices) and dx."""
    t_outs, t_dx, dout = torch_run(theirs, x, seed=seed)
    outs, dx = ours_run(ours, x, dout)
    assert len(outs) == len(t_outs)
    for o, t in zip(outs, t_outs):
        assert_same(o, t)
    assert_same(dx, t_dx)


def distinct(seed, shape, dtype=np.float64):
    """Values 1/7 apart: no two cells tie for a maximum."""
    return (np.random.default_rng(seed).permutation(int(np.prod(shape))).reshape(shape) / 7).astype(dtype)


def sees_the_input(size, kernel, stride, padding, dilation, out):
    """Every window has at least one tap inside the input (a dilated window might see only padding)."""
    return all(any(0 <= o * stride - padding + k * dilation < size for k in range(kernel)) for o in range(out))


@st.composite
def max_pool_cases(draw):
    """(N, C, H, W), kernel, stride (None: the kernel), padding <= kernel // 2, dilation, ceil_mode."""
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    ceil_mode = draw(st.booleans())
    H, W = (max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 5)) for k, p, d in zip(kernel, padding, dilation))
    for size, k, s, p, d in zip((H, W), kernel, stride or kernel, padding, dilation):
        assume(sees_the_input(size, k, s, p, d, P.pool_output_size(size, k, s, p, d, ceil_mode)))
    return (N, C, H, W), kernel, stride, padding, dilation, ceil_mode


@st.composite
def avg_pool_cases(draw):
    """(N, C, H, W), kernel, stride, padding, ceil_mode, count_include_pad, divisor_override (None or a nonzero int)."""
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    H, W = (max(1, k - 2 * p) + draw(st.integers(0, 5)) for k, p in zip(kernel, padding))
    divisor = draw(st.none() | st.integers(-3, 6).filter(bool))
    return (N, C, H, W), kernel, stride, padding, draw(st.booleans()), draw(st.booleans()), divisor


# -- max pooling: ceil_mode, dilation, return_indices -------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40)
@given(case=max_pool_cases(), ties=st.booleans(), seed=seeds)
def test_max_pool2d_fast_equals_plain_equals_torch_with_dilation_and_ceil_mode(backend, dtype, case, ties, seed):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = distinct(seed, shape, dtype) - 2
    if ties:  # as after a ReLU: many equal cells, torch sends a tie's gradient to the first one
        x = np.maximum(x, 0).round(0)
    args = (kernel, stride, padding, dilation, ceil_mode)
    t_outs, t_dx, dout = torch_run(lambda t: TF.max_pool2d(t, *args, return_indices=True), x, seed=seed)
    results = {}
    for impl in IMPLS:
        out, cache = P.max_pool2d(to_device(x), *args, impl=impl)
        results[impl] = out, P.max_pool2d_indices(cache), P.max_pool2d_backward(to_device(dout), cache)
        assert_same(out, t_outs[0])
        assert_same(results[impl][1], t_outs[1])
        assert_same(results[impl][2], t_dx)
    for plain, fast in zip(results["plain"], results["fast"]):
        np.testing.assert_array_equal(to_numpy(plain), to_numpy(fast))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30)
@given(case=max_pool_cases(), seed=seeds)
def test_f_max_pool2d_returns_torchs_values_indices_and_gradient(backend, dtype, case, seed):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    check_against_torch(lambda t: F.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode, True),
                        lambda t: TF.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode, True),
                        distinct(seed, shape, dtype), seed)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=30)
@given(case=max_pool_cases(), seed=seeds, nan_fraction=st.sampled_from([0.1, 0.5, 1.0]))
def test_max_pool2d_with_the_new_options_propagates_nan_and_indexes_it_as_torch(backend, impl, case, seed,
                                                                               nan_fraction):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    rng = np.random.default_rng(seed)
    x = distinct(seed, shape)
    x[tuple(rng.integers(0, n) for n in shape)] = np.nan  # at least one NaN, often many
    x[rng.random(shape) < nan_fraction / 2] = np.nan
    args = (kernel, stride, padding, dilation, ceil_mode)
    t_outs, t_dx, dout = torch_run(lambda t: TF.max_pool2d(t, *args, return_indices=True), x, seed=seed)
    out, cache = P.max_pool2d(to_device(x), *args, impl=impl)
    np.testing.assert_array_equal(to_numpy(out), t_outs[0].detach().numpy())  # NaN where torch has NaN
    assert_same(P.max_pool2d_indices(cache), t_outs[1])  # the last NaN of a window, as torch
    assert_same(P.max_pool2d_backward(to_device(dout), cache), t_dx)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=30)
@given(case=max_pool_cases(), seed=seeds)
def test_max_pool2d_padding_and_overhang_never_win_on_all_negative_input(backend, impl, case, seed):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = -np.random.default_rng(seed).uniform(1, 2, shape)
    args = (kernel, stride, padding, dilation, ceil_mode)
    t_out, t_index = TF.max_pool2d(torch.tensor(x), *args, return_indices=True)
    out, cache = P.max_pool2d(to_device(x), *args, impl=impl)
    assert (to_numpy(out) < 0).all(), "a zero (or -inf) from the padding won a window"
    assert_same(out, t_out)
    assert_same(P.max_pool2d_indices(cache), t_index)
    dx = to_numpy(P.max_pool2d_backward(to_device(np.ones(out.shape)), cache))
    assert dx.sum() == out.size  # every window's gradient reached a real cell


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32, np.uint8])
def test_a_window_of_lowest_values_names_its_first_cell_inside_the_input_as_torch(backend, impl, dtype):
    """-inf (or the integer minimum) everywhere ties with the padding: torch's index is the first real cell."""
    lowest = -np.inf if dtype == np.float64 else np.iinfo(dtype).min
    x = np.full((1, 2, 5, 4), lowest, dtype=dtype)
    x[0, 1, 3, 2] = 0 if dtype == np.float64 else np.iinfo(dtype).min + 1
    for args in [(3, 1, 1, 1, False), ((3, 2), 2, 1, (2, 1), True), (2, 2, 1, 1, True)]:
        out, cache = P.max_pool2d(to_device(x), *args, impl=impl)
        t_out, t_index = TF.max_pool2d(torch.tensor(x.astype(np.float64 if dtype == np.float64 else np.int64)),
                                       *args, return_indices=True)
        np.testing.assert_array_equal(to_numpy(out), t_out.numpy().astype(dtype))
        np.testing.assert_array_equal(to_numpy(P.max_pool2d_indices(cache)), t_index.numpy())


CEIL_CASES = [  # (H, kernel, stride, padding, dilation): ceil's extra window would start in the far padding
    (5, 2, 2, 1, 1),
    (3, 2, 2, 1, 1),
    (4, 2, 3, 1, 1),
    (2, 2, 3, 1, 2),
    (4, 1, 2, 0, 1),  # no padding: the window would start just past the input
    (4, 4, 3, 2, 1),
]


@pytest.mark.parametrize("H, kernel, stride, padding, dilation", CEIL_CASES)
def test_ceil_mode_drops_a_last_window_that_would_start_in_the_padding_as_torch(H, kernel, stride, padding,
                                                                                dilation):
    span = H + 2 * padding - dilation * (kernel - 1) - 1
    assert P.pool_output_size(H, kernel, stride, padding, dilation, True) == math.ceil(span / stride)  # one dropped
    x = distinct(0, (1, 2, H, H + 1))
    for impl in IMPLS:
        out, cache = P.max_pool2d(x, kernel, stride, padding, dilation, True, impl=impl)
        t_out, t_index = TF.max_pool2d(torch.tensor(x), kernel, stride, padding, dilation, True, True)
        assert_same(out, t_out)
        assert_same(P.max_pool2d_indices(cache), t_index)
        if dilation == 1:
            for include in (True, False):
                out, _ = P.avg_pool2d(x, kernel, stride, padding, include, True, impl=impl)
                assert_same(out, TF.avg_pool2d(torch.tensor(x), kernel, stride, padding, True, include))


def test_ceil_mode_lets_the_last_window_hang_over_the_edge_as_torch():
    x = distinct(1, (1, 1, 5, 5))
    out, _ = P.max_pool2d(x, 2, ceil_mode=True)
    assert out.shape == (1, 1, 3, 3)  # floor mode gives 2x2
    assert_same(out, TF.max_pool2d(torch.tensor(x), 2, ceil_mode=True))
    # count_include_pad counts the padding, not the overhang: the last windows average their 2 or 1 cells
    out, _ = P.avg_pool2d(np.ones((1, 1, 5, 5)), 2, ceil_mode=True)
    np.testing.assert_array_equal(out, np.ones((1, 1, 3, 3)))


# -- average pooling: ceil_mode, divisor_override ------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40)
@given(case=avg_pool_cases(), seed=seeds)
def test_avg_pool2d_fast_equals_plain_equals_torch_with_ceil_mode_and_divisor_override(backend, dtype, case, seed):
    shape, kernel, stride, padding, ceil_mode, include, divisor = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    t_outs, t_dx, dout = torch_run(lambda t: TF.avg_pool2d(t, kernel, stride, padding, ceil_mode, include, divisor),
                                   x, seed=seed)
    results = []
    for impl in IMPLS:
        out, cache = P.avg_pool2d(to_device(x), kernel, stride, padding, include, ceil_mode, divisor, impl=impl)
        dx = P.avg_pool2d_backward(to_device(dout), cache)
        assert_same(out, t_outs[0])
        assert_same(dx, t_dx)
        results.append((to_numpy(out), to_numpy(dx)))
    for plain, fast in zip(*results):
        np.testing.assert_allclose(plain, fast, **TOL[np.dtype(dtype)])


@settings(max_examples=20)
@given(case=avg_pool_cases(), seed=seeds)
def test_f_avg_pool2d_with_every_option_matches_torch_through_the_tape(backend, case, seed):
    shape, kernel, stride, padding, ceil_mode, include, divisor = case
    x = np.random.default_rng(seed).standard_normal(shape)
    check_against_torch(lambda t: F.avg_pool2d(t, kernel, stride, padding, ceil_mode, include, divisor),
                        lambda t: TF.avg_pool2d(t, kernel, stride, padding, ceil_mode, include, divisor), x, seed)


def test_avg_pool2d_refuses_a_zero_or_non_int_divisor_and_integer_input():
    x = np.ones((1, 1, 4, 4))
    with pytest.raises(ValueError, match="avg_pool2d: divisor_override must not be zero"):
        P.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError, match="avg_pool2d: divisor_override must be an int, got 2.5"):
        F.avg_pool2d(mc.tensor(x), 2, divisor_override=2.5)
    with pytest.raises(TypeError, match="avg_pool2d: expected a floating-point input, got int64"):
        P.avg_pool2d(x.astype(np.int64), 2)


# -- adaptive pooling -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
       output_size=st.tuples(st.integers(1, 6) | st.none(), st.integers(1, 6) | st.none()), seed=seeds)
def test_adaptive_max_pool2d_values_indices_and_grad_match_torch_for_any_output_size(backend, dtype, shape,
                                                                                      output_size, seed):
    check_against_torch(lambda t: F.adaptive_max_pool2d(t, output_size, return_indices=True),
                        lambda t: TF.adaptive_max_pool2d(t, output_size, return_indices=True),
                        distinct(seed, shape, dtype), seed)


@settings(max_examples=20)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 8), st.integers(1, 8)),
       output_size=st.tuples(st.integers(1, 5) | st.none(), st.integers(1, 5) | st.none()), seed=seeds)
def test_adaptive_avg_pool2d_with_none_in_the_output_size_matches_torch(backend, shape, output_size, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    check_against_torch(lambda t: F.adaptive_avg_pool2d(t, output_size),
                        lambda t: TF.adaptive_avg_pool2d(t, output_size), x, seed)


@pytest.mark.parametrize("hw, output_size", [((5, 7), (3, 4)), ((7, 5), (4, 3)), ((3, 2), (5, 3)), ((10, 9), 4),
                                             ((6, 6), (4, None))])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pools_of_sizes_that_do_not_divide_the_input_match_torch(hw, output_size, kind):
    x = distinct(3, (2, 2) + hw)
    if kind == "avg":
        check_against_torch(lambda t: F.adaptive_avg_pool2d(t, output_size),
                            lambda t: TF.adaptive_avg_pool2d(t, output_size), x)
    else:
        check_against_torch(lambda t: F.adaptive_max_pool2d(t, output_size, True),
                            lambda t: TF.adaptive_max_pool2d(t, output_size, True), x)


@settings(max_examples=20)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 7), st.integers(1, 7)),
       output_size=st.tuples(st.integers(1, 4), st.integers(1, 4)), seed=seeds)
def test_adaptive_max_pool2d_propagates_nan_and_indexes_the_last_nan_as_torch(backend, shape, output_size, seed):
    rng = np.random.default_rng(seed)
    x = distinct(seed, shape)
    x[tuple(rng.integers(0, n) for n in shape)] = np.nan
    x[rng.random(shape) < 0.3] = np.nan
    t_outs, t_dx, dout = torch_run(lambda t: TF.adaptive_max_pool2d(t, output_size, True), x, seed=seed)
    outs, dx = ours_run(lambda t: F.adaptive_max_pool2d(t, output_size, True), x, dout)
    np.testing.assert_array_equal(to_numpy(outs[0].array), t_outs[0].detach().numpy())
    assert_same(outs[1], t_outs[1])
    assert_same(dx, t_dx)
    _, index = F.adaptive_max_pool2d(mc.tensor(x), 1, True)  # the global case follows the same rule
    np.testing.assert_array_equal(index.numpy(), TF.adaptive_max_pool2d(torch.tensor(x), 1, True)[1].numpy())
    ones = np.ones(shape[:2] + (1, 1))
    dx = P.global_max_pool2d_backward(ones, P.global_max_pool2d(x)[1])
    np.testing.assert_array_equal(dx, torch_run(lambda t: TF.adaptive_max_pool2d(t, 1), x, ones)[1].numpy())


# -- max_unpool2d -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(2, 9), st.integers(2, 9)),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), stride=st.none() | st.tuples(st.integers(1, 3),
                                                                                             st.integers(1, 3)),
       pad=st.booleans(), exact_size=st.booleans(), seed=seeds)
def test_max_unpool2d_of_max_pool2ds_indices_and_its_grad_match_torch(backend, dtype, shape, kernel, stride, pad,
                                                                      exact_size, seed):
    padding = (kernel[0] // 2, kernel[1] // 2) if pad else 0
    assume(shape[2] + 2 * (kernel[0] // 2) * pad >= kernel[0] and shape[3] + 2 * (kernel[1] // 2) * pad >= kernel[1])
    x = distinct(seed, shape, dtype)
    pooled, index = TF.max_pool2d(torch.tensor(x), kernel, stride, padding, return_indices=True)
    output_size = shape[2:] if exact_size else None  # the input's size: within a stride of the default, always
    pads = (kernel[0] // 2, kernel[1] // 2) if pad else (0, 0)
    default = [(n - 1) * s - 2 * p + k for n, s, p, k in zip(pooled.shape[2:], stride or kernel, pads, kernel)]
    # without output_size, torch refuses indices past its default plane
    assume(exact_size or (min(default) >= 1 and int(index.max()) < default[0] * default[1]))
    ours_index = mc.tensor(to_device(index.numpy()))
    check_against_torch(lambda t: F.max_unpool2d(t, ours_index, kernel, stride, padding, output_size),
                        lambda t: TF.max_unpool2d(t, index, kernel, stride, padding, output_size),
                        pooled.numpy(), seed)


def test_max_unpool2d_layer_inverts_max_pool2d_as_torch_even_when_the_size_is_ambiguous():
    pool, unpool = nn.MaxPool2d(2, stride=2, return_indices=True), nn.MaxUnpool2d(2, stride=2)
    t_pool, t_unpool = torch.nn.MaxPool2d(2, stride=2, return_indices=True), torch.nn.MaxUnpool2d(2, stride=2)
    for W in (4, 5):  # torch's example: 4x5 pools to 2x2 as 4x4 does, so only output_size tells them apart
        x = np.arange(1, 4 * W + 1, dtype=np.float32).reshape(1, 1, 4, W)
        out, index = pool(mc.tensor(x))
        t_out, t_index = t_pool(torch.tensor(x))
        assert_same(index, t_index)
        assert_same(unpool(out, index, output_size=(1, 1, 4, W)), t_unpool(t_out, t_index, output_size=(1, 1, 4, W)))
        assert_same(unpool(out[0], index[0], (4, W)), t_unpool(t_out[0], t_index[0], (4, W)))  # unbatched (C, H, W)
    assert_same(unpool(*pool(mc.tensor(x[..., :4]))), t_unpool(*t_pool(torch.tensor(x[..., :4]))))  # 4x4 by default
    with pytest.raises(ValueError, match="found index 18, outside the output planes of 4x4"):
        unpool(out, index)  # 4x5's indices in the default 4x4 plane: torch refuses them too


def test_max_unpool2d_refuses_bad_indices_and_sizes_naming_what_to_fix():
    x, index = F.max_pool2d(mc.tensor(distinct(0, (1, 1, 4, 4))), 2, return_indices=True)
    with pytest.raises(ValueError, match=r"max_unpool2d: found index 11\d, outside the output planes of 4x4"):
        F.max_unpool2d(x, index + 100, 2)
    with pytest.raises(TypeError, match="max_unpool2d: indices must be integers"):
        F.max_unpool2d(x, index.float(), 2)
    with pytest.raises(ValueError, match=r"max_unpool2d: expected indices of the input's shape \(1, 1, 2, 2\)"):
        F.max_unpool2d(x, index[..., :1], 2)
    with pytest.raises(ValueError, match=r"invalid output_size \(6, 5\) \(dim 0 must be between 2 and 6"):
        F.max_unpool2d(x, index, 2, output_size=(6, 5))
    with pytest.raises(ValueError, match=r"MaxUnpool2d\(kernel_size=\(2, 2\).*output_size should be a sequence of 2"):
        nn.MaxUnpool2d(2)(x, index, output_size=(1, 4, 4))


# -- interpolate and Upsample -------------------------------------------------------------------------


@st.composite
def interpolate_cases(draw):
    """(N, C, H, W) and interpolate's keyword arguments: size or scale_factor, mode, align_corners."""
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    kwargs = {"mode": mode}
    if mode == "bilinear":
        kwargs["align_corners"] = draw(st.sampled_from([None, False, True]))
    if draw(st.booleans()):
        kwargs["size"] = draw(st.integers(1, 12) | st.tuples(st.integers(1, 12), st.integers(1, 12)))
    else:
        factors = st.sampled_from([0.5, 0.75, 1.0, 1.2, 1.3, 1.5, 2.0, 2.5, 3.0])
        scale = draw(factors | st.tuples(factors, factors))
        sh, sw = scale if isinstance(scale, tuple) else (scale, scale)
        assume(math.floor(H * sh) >= 1 and math.floor(W * sw) >= 1)
        kwargs["scale_factor"] = scale
        kwargs["recompute_scale_factor"] = draw(st.sampled_from([None, True]))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W), kwargs


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=60)
@given(case=interpolate_cases(), seed=seeds)
def test_interpolate_and_its_grad_match_torch_for_any_size_scale_mode_and_corners(backend, dtype, case, seed):
    shape, kwargs = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    check_against_torch(lambda t: F.interpolate(t, **kwargs), lambda t: TF.interpolate(t, **kwargs), x, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [
    dict(scale_factor=2), dict(scale_factor=1.5), dict(scale_factor=(2, 1.5)), dict(size=(7, 3)), dict(size=9),
    dict(scale_factor=2, mode="bilinear"), dict(scale_factor=1.5, mode="bilinear"),
    dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(scale_factor=1.5, mode="bilinear", align_corners=True),
    dict(size=(7, 3), mode="bilinear"), dict(size=(7, 3), mode="bilinear", align_corners=True),
    dict(size=1, mode="bilinear", align_corners=True), dict(scale_factor=0.5, mode="bilinear"),
], ids=repr)
def test_interpolate_named_scale_factors_and_sizes_match_torch(dtype, kwargs):
    x = np.random.default_rng(5).standard_normal((2, 3, 5, 4)).astype(dtype)
    check_against_torch(lambda t: F.interpolate(t, **kwargs), lambda t: TF.interpolate(t, **kwargs), x)


def test_nearest_uses_torchs_floor_rule_not_nearest_exact():
    x = np.arange(3.0).reshape(1, 1, 1, 3)
    out = F.interpolate(mc.tensor(x), size=(1, 5)).numpy()
    np.testing.assert_array_equal(out, TF.interpolate(torch.tensor(x), size=(1, 5)).numpy())  # 0 0 1 1 2
    assert not np.array_equal(out, TF.interpolate(torch.tensor(x), size=(1, 5), mode="nearest-exact").numpy())


def test_interpolate_gradient_adds_up_where_several_outputs_read_one_input():
    x = mc.tensor(np.ones((1, 1, 2, 3)), requires_grad=True)
    F.interpolate(x, scale_factor=2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((1, 1, 2, 3), 4.0))  # each input read by 2x2 outputs
    x.grad = None
    F.interpolate(x, scale_factor=1.5, mode="bilinear").sum().backward()
    assert x.grad.numpy().sum() == pytest.approx(3 * 4)  # bilinear weights sum to one per output


def test_interpolate_with_nan_keeps_it_where_torch_does():
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 5))
    x[0, 0, 1, 2] = np.nan
    for kwargs in [dict(scale_factor=2), dict(scale_factor=1.5, mode="bilinear"),
                   dict(size=(3, 7), mode="bilinear", align_corners=True)]:
        ours = F.interpolate(mc.tensor(x), **kwargs).numpy()
        theirs = TF.interpolate(torch.tensor(x), **kwargs).numpy()
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))  # no NaN spreads further than torch's
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("call, error, message", [
    (lambda x: F.interpolate(x, size=3, scale_factor=2), ValueError, "only one of size or scale_factor"),
    (lambda x: F.interpolate(x), ValueError, "either size or scale_factor should be defined"),
    (lambda x: F.interpolate(x, scale_factor=2, align_corners=True), ValueError, "align_corners can only be set"),
    (lambda x: F.interpolate(x, scale_factor=2, mode="bicubic"), NotImplementedError, "mode 'bicubic' is not"),
    (lambda x: F.interpolate(x, size=0), ValueError, "output sizes should be greater than 0"),
    (lambda x: F.interpolate(x, scale_factor=0.1), ValueError, "output sizes should be greater than 0"),
    (lambda x: F.interpolate(x, size=(2, 2, 2)), ValueError, "needs an output size of 2 numbers"),
    (lambda x: F.interpolate(x, size=(2, 2.0)), TypeError, "size must be an int or a pair of ints"),
    (lambda x: F.interpolate(x, size=3, recompute_scale_factor=True), ValueError, "not meaningful with an explicit"),
    (lambda x: F.interpolate(x[0], scale_factor=2), NotImplementedError, r"expected input of shape \(N, C, H, W\)"),
])
def test_interpolate_refuses_what_torch_refuses(call, error, message):
    with pytest.raises(error, match=message):
        call(mc.tensor(np.ones((1, 1, 2, 2))))


def test_upsample_layer_matches_torch_and_is_printed_as_torch_prints_it():
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    for args in [dict(scale_factor=2), dict(scale_factor=1.5, mode="bilinear"), dict(size=(3, 8), mode="bilinear",
                                                                                      align_corners=True),
                 dict(scale_factor=(2, 3)), dict(size=6)]:
        ours, theirs = nn.Upsample(**args), torch.nn.Upsample(**args)
        assert repr(ours) == repr(theirs)
        check_against_torch(ours, theirs, x)


def test_upsample_checks_its_arguments_and_its_input_naming_itself():
    with pytest.raises(ValueError, match="Upsample: give either size or scale_factor"):
        nn.Upsample()
    with pytest.raises(NotImplementedError, match="Upsample: mode 'bicubic' is not implemented"):
        nn.Upsample(scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="Upsample: align_corners can only be set"):
        nn.Upsample(scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match=r"Upsample\(scale_factor=2.0, mode='nearest'\): expected input of shape "
                                         r"\(N, C, H, W\), got shape \(3, 4, 4\)"):
        nn.Upsample(scale_factor=2)(mc.tensor(np.ones((3, 4, 4))))


# -- the layers ---------------------------------------------------------------------------------------


REPRS = [
    lambda m: m.MaxPool2d(2),
    lambda m: m.MaxPool2d((2, 3), None, (1, 1), 2, True, True),
    lambda m: m.MaxPool2d(3, 1, 1, dilation=(1, 2), ceil_mode=True),
    lambda m: m.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=4),
    lambda m: m.AvgPool2d((2, 4), (1, 2)),
    lambda m: m.AdaptiveAvgPool2d((2, None)),
    lambda m: m.AdaptiveMaxPool2d((None, 3), return_indices=True),
    lambda m: m.AdaptiveMaxPool2d(4),
    lambda m: m.MaxUnpool2d(2),
    lambda m: m.MaxUnpool2d((2, 3), 1, (1, 0)),
    lambda m: m.Upsample(scale_factor=2),
    lambda m: m.Upsample(size=(3, 4), mode="bilinear", align_corners=True),
]


@pytest.mark.parametrize("make", REPRS)
def test_layer_reprs_equal_torchs(make):
    assert repr(make(nn)) == repr(make(torch.nn))


@pytest.mark.parametrize("make", [
    lambda m: m.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True, return_indices=True),
    lambda m: m.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=5),
    lambda m: m.AdaptiveMaxPool2d((3, None), return_indices=True),
    lambda m: m.AdaptiveAvgPool2d((4, 3)),
], ids=lambda make: repr(make(nn)))
@pytest.mark.parametrize("shape", [(2, 3, 7, 6), (3, 7, 6)], ids=["batched", "unbatched"])
def test_pooling_layers_with_the_new_options_match_torch_batched_or_not(make, shape):
    check_against_torch(make(nn), make(torch.nn), distinct(4, shape))


def test_an_encoder_decoder_of_pool_unpool_and_upsample_gets_torchs_gradient():
    def net(m, F_):
        pool, unpool = m.MaxPool2d(2, return_indices=True, ceil_mode=True), m.MaxUnpool2d(2)
        up = m.Upsample(scale_factor=2, mode="bilinear")

        def run(x):
            y, index = pool(x)
            z = unpool(F_.relu(y) * 2, index, output_size=x.shape[-2:])
            return up(z) + F_.adaptive_max_pool2d(z, (7, 7)).sum()
        return run
    check_against_torch(net(nn, F), net(torch.nn, TF), distinct(6, (2, 2, 5, 7)) - 3)


@pytest.mark.parametrize("make, message", [
    (lambda: nn.MaxPool2d(3, padding=2), r"MaxPool2d: padding 2 must be at most half the kernel size 3"),
    (lambda: nn.MaxPool2d(2, dilation=0), r"MaxPool2d: dilation must be >= 1, got 0"),
    (lambda: nn.AvgPool2d(2, divisor_override=0), r"AvgPool2d: divisor_override must not be zero"),
    (lambda: nn.AdaptiveMaxPool2d(0), r"AdaptiveMaxPool2d: output_size must be >= 1, got 0"),
    (lambda: nn.AdaptiveAvgPool2d((None, 0)), r"AdaptiveAvgPool2d: output_size must be a positive int, got 0"),
    (lambda: nn.MaxUnpool2d(2, padding=-1), r"MaxUnpool2d: padding must be >= 0, got -1"),
])
def test_pool_constructors_refuse_bad_arguments_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_pool_layers_name_themselves_when_the_input_is_wrong():
    with pytest.raises(ValueError, match=r"MaxPool2d\(kernel_size=3, stride=3, padding=0, dilation=2, ceil_mode=True\)"
                                         r": max_pool2d: kernel \(3, 3\) \(dilation \(2, 2\)\) is larger"):
        nn.MaxPool2d(3, dilation=2, ceil_mode=True)(mc.tensor(np.ones((1, 1, 2, 2))))
    with pytest.raises(ValueError, match=r"AdaptiveMaxPool2d\(output_size=2\): expected input of shape "
                                         r"\(N, C, H, W\) or \(C, H, W\), got shape \(4, 4\)"):
        nn.AdaptiveMaxPool2d(2)(mc.tensor(np.ones((4, 4))))
    with pytest.raises(ValueError, match=r"MaxUnpool2d\(kernel_size=\(2, 2\).*expected input of shape"):
        nn.MaxUnpool2d(2)(mc.tensor(np.ones((4, 4))), mc.tensor(np.zeros((4, 4), np.int64)))


def test_stride_defaults_to_the_kernel_for_every_pool_as_torch():
    x = distinct(7, (1, 2, 7, 8))
    check_against_torch(lambda t: F.max_pool2d(t, (3, 2), dilation=2, return_indices=True),
                        lambda t: TF.max_pool2d(t, (3, 2), dilation=2, return_indices=True), x)
    check_against_torch(lambda t: F.avg_pool2d(t, (3, 2), ceil_mode=True),
                        lambda t: TF.avg_pool2d(t, (3, 2), ceil_mode=True), x)
    assert nn.AvgPool2d((3, 2)).stride == torch.nn.AvgPool2d((3, 2)).stride == (3, 2)


# -- finite differences ----------------------------------------------------------------------------


def _unpool_case():
    pooled, index = TF.max_pool2d(torch.tensor(distinct(8, (2, 2, 5, 6))), 2, 2, 1, return_indices=True)
    return lambda x: P.max_unpool2d(x, index.numpy(), 2, 2, 1, (5, 6)), pooled.numpy()


GRADCHECKS = {
    "max_pool2d_dilated_ceil_plain": (lambda x: P.max_pool2d(x, 3, 2, 1, 2, True, impl="plain"),
                                      P.max_pool2d_backward, (2, 2, 7, 8)),
    "max_pool2d_dilated_ceil_fast": (lambda x: P.max_pool2d(x, (2, 3), (2, 1), (1, 1), (3, 1), True, impl="fast"),
                                     P.max_pool2d_backward, (1, 2, 8, 6)),
    "avg_pool2d_ceil_include_pad": (lambda x: P.avg_pool2d(x, 3, 2, 1, True, True), P.avg_pool2d_backward,
                                    (2, 2, 6, 7)),
    "avg_pool2d_ceil_exclude_pad": (lambda x: P.avg_pool2d(x, (3, 2), 2, (1, 1), False, True, impl="plain"),
                                    P.avg_pool2d_backward, (1, 2, 6, 5)),
    "avg_pool2d_divisor_override": (lambda x: P.avg_pool2d(x, 2, 1, 1, True, True, 3), P.avg_pool2d_backward,
                                    (1, 2, 4, 5)),
    "adaptive_max_pool2d": (lambda x: P.adaptive_max_pool2d(x, (3, 4)), P.adaptive_max_pool2d_backward,
                            (2, 2, 5, 7)),
    "max_unpool2d": (_unpool_case()[0], P.max_unpool2d_backward, _unpool_case()[1]),
    "interpolate_nearest": (lambda x: U.interpolate(x, scale_factor=1.5), U.interpolate_backward, (2, 2, 3, 4)),
    "interpolate_nearest_down": (lambda x: U.interpolate(x, size=(2, 5)), U.interpolate_backward, (1, 2, 5, 7)),
    "interpolate_bilinear": (lambda x: U.interpolate(x, size=(5, 7), mode="bilinear"), U.interpolate_backward,
                             (2, 2, 3, 4)),
    "interpolate_bilinear_corners": (lambda x: U.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True),
                                     U.interpolate_backward, (1, 2, 3, 3)),
}


@pytest.mark.parametrize("name", sorted(GRADCHECKS))
def test_each_new_pair_passes_gradcheck_in_float64(name):
    forward, backward, x = GRADCHECKS[name]
    x = x.copy() if isinstance(x, np.ndarray) else distinct(9, x) / 10  # distinct: no max kink within eps
    result = gradcheck(forward, backward, [np.ascontiguousarray(x)])
    assert result.ok(1e-6), str(result)
