"""minicnn.ops (the array pairs) against torch.nn.functional: every op, forward and every
gradient, on random shapes, strides, paddings and dilations drawn by hypothesis (only valid
cases are drawn, so every example checks something).

float64 agrees with torch to 1e-10 (relative and absolute); float32 to 1e-4 relative
(1e-5 absolute for values near zero). Each test runs on every available backend.
"""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn.ops as F
from minicnn.backend import to_device, to_numpy

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-5)}
IMPLS = ["plain", "fast"]  # conv and pooling keep a plain version beside the optimised one: both must be right


def assert_matches(actual, expected, dtype):
    """actual (an engine array, any backend) has the dtype and the values of expected (numpy or torch)."""
    actual = to_numpy(actual)
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert actual.dtype == dtype, f"dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, **TOL[dtype])


def random_arrays(seed, dtype, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def torch_forward_backward(fn, arrays, dout):
    """Run fn on torch leaf tensors made from arrays (None stays None); return out and each grad."""
    leaves = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    out.backward(torch.tensor(dout))
    return out, [None if t is None else t.grad for t in leaves]


seeds = st.integers(0, 2**32 - 1)


@st.composite
def conv_cases(draw, max_channels=3, max_kernel=4, max_extra=5):
    """(N, C, H, W), (OC, C, KH, KW), stride, padding, dilation with the dilated kernel fitting the padded input."""
    N, C, OC = draw(st.integers(1, 2)), draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    KH, KW = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    H = max(1, dilation[0] * (KH - 1) + 1 - 2 * padding[0]) + draw(st.integers(0, max_extra))
    W = max(1, dilation[1] * (KW - 1) + 1 - 2 * padding[1]) + draw(st.integers(0, max_extra))
    return (N, C, H, W), (OC, C, KH, KW), stride, padding, dilation


@st.composite
def pool_cases(draw):
    """(N, C, H, W), kernel, stride (possibly smaller than the kernel: overlapping windows), padding <= kernel // 2."""
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    H = max(1, kernel[0] - 2 * padding[0]) + draw(st.integers(0, 5))
    W = max(1, kernel[1] - 2 * padding[1]) + draw(st.integers(0, 5))
    return (N, C, H, W), kernel, stride, padding


# -- convolution -------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40)
@given(case=conv_cases(), bias=st.booleans(), seed=seeds)
def test_conv2d_and_its_grads_match_torch_for_any_stride_padding_and_dilation(backend, dtype, impl, case, bias, seed):
    x_shape, w_shape, stride, padding, dilation = case
    x, w, b = random_arrays(seed, dtype, x_shape, w_shape, (w_shape[0],))
    b = b if bias else None
    out, cache = F.conv2d(to_device(x), to_device(w), None if b is None else to_device(b), stride, padding, dilation,
                          impl=impl)
    dout = random_arrays(seed + 1, dtype, out.shape)[0]
    dx, dw, db = F.conv2d_backward(to_device(dout), cache)

    t_out, (t_dx, t_dw, t_db) = torch_forward_backward(
        lambda x, w, b: TF.conv2d(x, w, b, stride, padding, dilation), [x, w, b], dout)
    assert_matches(out, t_out, dtype)
    assert_matches(dx, t_dx, dtype)
    assert_matches(dw, t_dw, dtype)
    if bias:
        assert_matches(db, t_db, dtype)
    else:
        assert db is None


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(case=conv_cases(max_channels=2, max_kernel=3, max_extra=3), bias=st.booleans(), seed=seeds)
def test_conv2d_naive_and_its_grads_match_torch_on_small_shapes(backend, dtype, case, bias, seed):
    x_shape, w_shape, stride, padding, dilation = case
    x, w, b = random_arrays(seed, dtype, x_shape, w_shape, (w_shape[0],))
    b = b if bias else None
    out, cache = F.conv2d_naive(to_device(x), to_device(w), None if b is None else to_device(b),
                                stride, padding, dilation)
    dout = random_arrays(seed + 1, dtype, out.shape)[0]
    dx, dw, db = F.conv2d_naive_backward(to_device(dout), cache)

    t_out, (t_dx, t_dw, t_db) = torch_forward_backward(
        lambda x, w, b: TF.conv2d(x, w, b, stride, padding, dilation), [x, w, b], dout)
    assert_matches(out, t_out, dtype)
    assert_matches(dx, t_dx, dtype)
    assert_matches(dw, t_dw, dtype)
    assert (db is None) == (not bias)
    if bias:
        assert_matches(db, t_db, dtype)


@settings(max_examples=40)
@given(case=conv_cases(), seed=seeds)
def test_im2col_matches_torch_unfold(backend, case, seed):
    x_shape, (_, _, KH, KW), stride, padding, dilation = case
    (x,) = random_arrays(seed, np.float64, x_shape)
    col = to_numpy(F.im2col(to_device(x), KH, KW, stride, padding, dilation))
    unfolded = TF.unfold(torch.tensor(x), (KH, KW), dilation, padding, stride).numpy()  # (N, C*KH*KW, OH*OW)
    N = x_shape[0]
    np.testing.assert_array_equal(col, unfolded.transpose(1, 0, 2).reshape(col.shape[0], N * unfolded.shape[2]))


@settings(max_examples=40)
@given(case=conv_cases(), seed=seeds)
def test_col2im_is_the_adjoint_of_im2col(backend, case, seed):
    """<im2col(x), c> == <x, col2im(c)> for every x and c: col2im is exactly the transpose of im2col."""
    x_shape, (_, _, KH, KW), stride, padding, dilation = case
    (x,) = random_arrays(seed, np.float64, x_shape)
    col = F.im2col(to_device(x), KH, KW, stride, padding, dilation)
    (c,) = random_arrays(seed + 1, np.float64, col.shape)
    folded = F.col2im(to_device(c), x_shape, KH, KW, stride, padding, dilation)
    assert folded.shape == x_shape
    lhs = float((to_numpy(col) * c).sum())
    rhs = float((x * to_numpy(folded)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


@settings(max_examples=30)
@given(case=conv_cases(), seed=seeds)
def test_col2im_matches_torch_fold(backend, case, seed):
    x_shape, (_, C, KH, KW), stride, padding, dilation = case
    (x,) = random_arrays(seed, np.float64, x_shape)
    L = F.im2col(to_device(x), KH, KW, stride, padding, dilation).shape[1] // x_shape[0]
    (c,) = random_arrays(seed + 1, np.float64, (C * KH * KW, x_shape[0] * L))
    folded = F.col2im(to_device(c), x_shape, KH, KW, stride, padding, dilation)
    t_c = torch.tensor(c.reshape(C * KH * KW, x_shape[0], L).transpose(1, 0, 2).copy())
    expected = TF.fold(t_c, x_shape[2:], (KH, KW), dilation, padding, stride)
    assert_matches(folded, expected, np.float64)


@settings(max_examples=30)
@given(case=conv_cases(), seed=seeds)
def test_conv2d_equals_the_unfold_matmul_computed_by_torch(backend, case, seed):
    x_shape, w_shape, stride, padding, dilation = case
    x, w = random_arrays(seed, np.float64, x_shape, w_shape)
    out, _ = F.conv2d(to_device(x), to_device(w), None, stride, padding, dilation)
    N, OC = x_shape[0], w_shape[0]
    unfolded = TF.unfold(torch.tensor(x), w_shape[2:], dilation, padding, stride)  # (N, C*KH*KW, L)
    expected = (torch.tensor(w).reshape(OC, -1) @ unfolded).reshape(N, OC, *out.shape[2:])
    assert_matches(out, expected, np.float64)


def test_conv_output_size_is_the_floor_formula():
    assert F.conv_output_size(28, 5) == 24
    assert F.conv_output_size(28, 5, stride=1, padding=2) == 28
    assert F.conv_output_size(7, 3, stride=2) == 3
    assert F.conv_output_size(8, 3, stride=2) == 3  # floor, not ceil
    assert F.conv_output_size(10, 3, stride=1, padding=0, dilation=2) == 6


# -- pooling -------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40)
@given(case=pool_cases(), seed=seeds)
def test_max_pool2d_and_its_grad_match_torch_for_any_window(backend, dtype, impl, case, seed):
    x_shape, kernel, stride, padding = case
    # distinct values, so that no two cells of a window tie for the max
    x = np.random.default_rng(seed).permutation(np.prod(x_shape)).reshape(x_shape).astype(dtype) / 7
    out, cache = F.max_pool2d(to_device(x), kernel, stride, padding, impl=impl)
    (dout,) = random_arrays(seed, dtype, out.shape)
    dx = F.max_pool2d_backward(to_device(dout), cache)
    t_out, (t_dx,) = torch_forward_backward(lambda x: TF.max_pool2d(x, kernel, stride, padding), [x], dout)
    assert_matches(out, t_out, dtype)
    assert_matches(dx, t_dx, dtype)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=30)
@given(case=pool_cases(), seed=seeds)
def test_max_pool2d_padding_never_wins_on_all_negative_input(backend, impl, case, seed):
    x_shape, kernel, stride, padding = case
    x = -np.random.default_rng(seed).uniform(1, 2, x_shape)
    out, cache = F.max_pool2d(to_device(x), kernel, stride, padding, impl=impl)
    out = to_numpy(out)
    assert (out < 0).all(), "a zero (or -inf) from the padding won a window"
    np.testing.assert_array_equal(out, TF.max_pool2d(torch.tensor(x), kernel, stride, padding).numpy())
    dx = to_numpy(F.max_pool2d_backward(to_device(np.ones(out.shape)), cache))
    assert dx.sum() == out.size  # every window's gradient reached a real cell


def test_max_pool2d_without_stride_uses_the_kernel_size_as_torch_does(backend):
    x = np.arange(2 * 1 * 6 * 6, dtype=np.float64).reshape(2, 1, 6, 6)
    out, _ = F.max_pool2d(to_device(x), 3)
    assert_matches(out, TF.max_pool2d(torch.tensor(x), 3), np.float64)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=30)
@given(case=pool_cases(), seed=seeds, nan_fraction=st.sampled_from([0.1, 0.5, 1.0]))
def test_max_pool2d_propagates_nan_and_sends_its_gradient_where_torch_does(backend, impl, case, seed, nan_fraction):
    x_shape, kernel, stride, padding = case
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.prod(x_shape)).reshape(x_shape) / 7.0
    x[tuple(rng.integers(0, n) for n in x_shape)] = np.nan  # at least one NaN, often many
    x[rng.random(x_shape) < nan_fraction / 2] = np.nan
    out, cache = F.max_pool2d(to_device(x), kernel, stride, padding, impl=impl)
    (dout,) = random_arrays(seed, np.float64, out.shape)
    dx = F.max_pool2d_backward(to_device(dout), cache)
    t_out, (t_dx,) = torch_forward_backward(lambda x: TF.max_pool2d(x, kernel, stride, padding), [x], dout)
    np.testing.assert_array_equal(to_numpy(out), t_out.detach().numpy())  # NaN where torch has NaN
    assert_matches(dx, t_dx, np.float64)  # a window with NaNs sends its gradient to torch's NaN


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
@settings(max_examples=15)
@given(case=pool_cases(), seed=seeds)
def test_max_pool2d_pads_integer_input_with_the_lowest_value_of_its_dtype(backend, impl, dtype, case, seed):
    x_shape, kernel, stride, padding = case
    info = np.iinfo(dtype)
    x = np.random.default_rng(seed).integers(info.min, info.min + 3, x_shape, endpoint=True).astype(dtype)
    out, _ = F.max_pool2d(to_device(x), kernel, stride, padding, impl=impl)
    assert out.dtype == dtype
    expected = TF.max_pool2d(torch.tensor(x.astype(np.int64)), kernel, stride, padding).numpy()
    np.testing.assert_array_equal(to_numpy(out), expected)  # a zero from the padding never wins


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
       output_size=st.tuples(st.integers(1, 5), st.integers(1, 5)), seed=seeds)
def test_adaptive_avg_pool2d_and_its_grad_match_torch_for_any_output_size(backend, dtype, shape, output_size, seed):
    (x,) = random_arrays(seed, dtype, shape)
    out, cache = F.adaptive_avg_pool2d(to_device(x), output_size)
    (dout,) = random_arrays(seed + 1, dtype, out.shape)
    dx = F.adaptive_avg_pool2d_backward(to_device(dout), cache)
    t_out, (t_dx,) = torch_forward_backward(lambda t: TF.adaptive_avg_pool2d(t, output_size), [x], dout)
    assert_matches(out, t_out, dtype)
    assert_matches(dx, t_dx, dtype)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@settings(max_examples=30)
@given(case=pool_cases(), seed=seeds)
def test_avg_pool2d_and_its_grad_match_torch(backend, dtype, count_include_pad, impl, case, seed):
    x_shape, kernel, stride, padding = case
    (x,) = random_arrays(seed, dtype, x_shape)
    out, cache = F.avg_pool2d(to_device(x), kernel, stride, padding, count_include_pad, impl=impl)
    (dout,) = random_arrays(seed + 1, dtype, out.shape)
    dx = F.avg_pool2d_backward(to_device(dout), cache)
    t_out, (t_dx,) = torch_forward_backward(
        lambda x: TF.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad), [x], dout)
    assert_matches(out, t_out, dtype)
    assert_matches(dx, t_dx, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op, torch_op", [
    ("global_avg_pool2d", lambda x: TF.adaptive_avg_pool2d(x, 1)),
    ("global_max_pool2d", lambda x: TF.adaptive_max_pool2d(x, 1)),
])
@settings(max_examples=25)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)), seed=seeds)
def test_global_pools_and_their_grads_match_torch_adaptive_pools(backend, dtype, op, torch_op, shape, seed):
    x = np.random.default_rng(seed).permutation(np.prod(shape)).reshape(shape).astype(dtype) / 5
    out, cache = getattr(F, op)(to_device(x))
    assert out.shape == shape[:2] + (1, 1)
    (dout,) = random_arrays(seed, dtype, out.shape)
    dx = getattr(F, op + "_backward")(to_device(dout), cache)
    t_out, (t_dx,) = torch_forward_backward(torch_op, [x], dout)
    assert_matches(out, t_out, dtype)
    assert_matches(dx, t_dx, dtype)


# -- activations --------------------------------------------------------------------------------

ELEMENTWISE = [("relu", torch.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh)]
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op, torch_op", ELEMENTWISE)
@settings(max_examples=25)
@given(shape=shapes, scale=st.sampled_from([0.1, 1.0, 10.0]), seed=seeds)
def test_activations_and_their_grads_match_torch(backend, dtype, op, torch_op, shape, scale, seed):
    (x,) = random_arrays(seed, dtype, shape)
    x = (x * scale).astype(dtype)
    out, cache = getattr(F, op)(to_device(x))
    (dout,) = random_arrays(seed + 1, dtype, shape)
    dx = getattr(F, op + "_backward")(to_device(dout), cache)
    t_out, (t_dx,) = torch_forward_backward(torch_op, [x], dout)
    assert_matches(out, t_out, dtype)
    assert_matches(dx, t_dx, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_of_huge_inputs_is_exact_and_raises_no_overflow_warning(backend, dtype):
    x = np.array([-1e4, -800.0, -100.0, -30.0, 0.0, 30.0, 100.0, 800.0, 1e4], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would be a RuntimeWarning
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            out, cache = F.sigmoid(to_device(x))
            dx = F.sigmoid_backward(to_device(np.ones_like(x)), cache)
    out, dx = to_numpy(out), to_numpy(dx)
    assert np.isfinite(out).all() and np.isfinite(dx).all()
    assert_matches(out, torch.sigmoid(torch.tensor(x)), dtype)
    assert out[0] >= 0 and out[-1] == 1


def test_relu_maps_minus_infinity_to_zero_and_keeps_nan(backend):
    out, _ = F.relu(to_device(np.array([-np.inf, -1.0, 0.0, 2.0, np.inf, np.nan])))
    np.testing.assert_array_equal(to_numpy(out), [0.0, 0.0, 0.0, 2.0, np.inf, np.nan])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op, torch_op", [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)])
@settings(max_examples=25)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple), data=st.data(), seed=seeds)
def test_softmax_family_and_grads_match_torch_along_any_axis(backend, dtype, op, torch_op, shape, data, seed):
    axis = data.draw(st.integers(0, len(shape) - 1))
    x, dout = random_arrays(seed, dtype, shape, shape)
    x = (x * 3).astype(dtype)
    out, cache = getattr(F, op)(to_device(x), axis=axis)
    dx = getattr(F, op + "_backward")(to_device(dout), cache)
    t_out, (t_dx,) = torch_forward_backward(lambda t: torch_op(t, axis), [x], dout)
    assert_matches(out, t_out, dtype)
    assert_matches(dx, t_dx, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op, torch_op", [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)])
def test_softmax_family_is_finite_for_huge_logits(backend, dtype, op, torch_op):
    x = np.array([[1000.0, 0.0, -1000.0], [1e4, 1e4 - 1, 1e4 - 2], [-1e4, -1e4, -1e4]], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        out, _ = getattr(F, op)(to_device(x), axis=1)
    assert np.isfinite(to_numpy(out)).all()
    assert_matches(out, torch_op(torch.tensor(x), 1), dtype)


# -- linear, flatten, dropout --------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30)
@given(N=st.integers(1, 6), IN=st.integers(1, 8), OUT=st.integers(1, 8), bias=st.booleans(), seed=seeds)
def test_linear_and_its_grads_match_torch(backend, dtype, N, IN, OUT, bias, seed):
    x, w, b, dout = random_arrays(seed, dtype, (N, IN), (OUT, IN), (OUT,), (N, OUT))
    b = b if bias else None
    out, cache = F.linear(to_device(x), to_device(w), None if b is None else to_device(b))
    dx, dw, db = F.linear_backward(to_device(dout), cache)
    t_out, (t_dx, t_dw, t_db) = torch_forward_backward(TF.linear, [x, w, b], dout)
    assert_matches(out, t_out, dtype)
    assert_matches(dx, t_dx, dtype)
    assert_matches(dw, t_dw, dtype)
    assert (db is None) == (not bias)
    if bias:
        assert_matches(db, t_db, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple), seed=seeds)
def test_flatten_and_its_grad_match_torch(backend, dtype, shape, seed):
    (x,) = random_arrays(seed, dtype, shape)
    out, cache = F.flatten(to_device(x))
    (dout,) = random_arrays(seed + 1, dtype, out.shape)
    dx = F.flatten_backward(to_device(dout), cache)
    t_out, (t_dx,) = torch_forward_backward(lambda t: torch.flatten(t, 1), [x], dout)
    assert_matches(out, t_out, dtype)
    assert_matches(dx, t_dx, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_zeroes_a_fraction_p_and_scales_the_rest_by_one_over_one_minus_p(backend, dtype, p):
    x = np.random.default_rng(0).uniform(1, 2, (200, 500)).astype(dtype)
    out, _ = F.dropout(to_device(x), p, training=True, rng=np.random.default_rng(1))
    out = to_numpy(out)
    assert out.dtype == dtype
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / dtype(1 - p), rtol=1e-6)
    # the dropped fraction is Binomial(n, p) / n: within 5 standard deviations of p
    n = x.size
    assert abs((~kept).mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    # inverted dropout keeps the expectation: mean(out) ~ mean(x)
    assert out.mean() == pytest.approx(x.mean(), rel=0.02)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_backward_uses_the_forward_mask(backend, dtype):
    p = 0.3
    x = np.random.default_rng(0).uniform(1, 2, (50, 40)).astype(dtype)
    dout = np.random.default_rng(1).uniform(1, 2, x.shape).astype(dtype)
    out, cache = F.dropout(to_device(x), p, training=True)
    dx = to_numpy(F.dropout_backward(to_device(dout), cache))
    out = to_numpy(out)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx == 0, out == 0)
    kept = out != 0
    np.testing.assert_allclose(dx[kept], dout[kept] / dtype(1 - p), rtol=1e-6)


def test_dropout_mask_is_reproducible_from_the_rng(backend):
    x = to_device(np.ones((20, 20)))
    a, _ = F.dropout(x, 0.5, rng=np.random.default_rng(7))
    b, _ = F.dropout(x, 0.5, rng=np.random.default_rng(7))
    c, _ = F.dropout(x, 0.5, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert (to_numpy(a) != to_numpy(c)).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_is_the_identity_in_eval_mode_and_for_p_zero(backend, dtype):
    x = to_device(np.random.default_rng(0).standard_normal((4, 5)).astype(dtype))
    for kwargs in (dict(p=0.5, training=False), dict(p=0.0, training=True)):
        out, cache = F.dropout(x, **kwargs)
        np.testing.assert_array_equal(to_numpy(out), to_numpy(x))
        dout = to_device(np.ones((4, 5), dtype=dtype))
        np.testing.assert_array_equal(to_numpy(F.dropout_backward(dout, cache)), to_numpy(dout))


def test_dropout_rejects_p_outside_zero_one(backend):
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\), got 1"):
        F.dropout(to_device(np.ones(3)), p=1.0)


# -- loss ---------------------------------------------------------------------------------------


def one(dtype):
    """The gradient of a 0-d loss as autograd hands it to the backward: a 0-d array of its dtype."""
    return to_device(np.ones((), dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30)
@given(N=st.integers(1, 8), K=st.integers(1, 6), scale=st.sampled_from([0.1, 1.0, 30.0]), seed=seeds)
def test_softmax_cross_entropy_value_and_grad_match_torch_mean_reduction(backend, dtype, N, K, scale, seed):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((N, K)) * scale).astype(dtype)
    labels = rng.integers(0, K, N)
    loss, cache = F.softmax_cross_entropy(to_device(logits), to_device(labels))
    dlogits = F.softmax_cross_entropy_backward(one(dtype), cache)
    t_logits = torch.tensor(logits, requires_grad=True)
    t_loss = TF.cross_entropy(t_logits, torch.tensor(labels))
    t_loss.backward()
    # a 0-d array of the logits' own array type and dtype (not a Python float, not a NumPy scalar)
    assert type(loss) is type(to_device(logits)) and loss.shape == ()
    assert_matches(loss, t_loss, dtype)
    assert_matches(dlogits, t_logits.grad, dtype)


def test_softmax_cross_entropy_backward_scales_with_dout(backend):
    logits, labels = to_device(np.random.default_rng(0).standard_normal((4, 3))), to_device(np.array([0, 2, 1, 1]))
    _, cache = F.softmax_cross_entropy(logits, labels)
    np.testing.assert_allclose(to_numpy(F.softmax_cross_entropy_backward(2.5 * one(np.float64), cache)),
                               2.5 * to_numpy(F.softmax_cross_entropy_backward(one(np.float64), cache)), rtol=1e-14)


def test_softmax_cross_entropy_is_finite_for_huge_logits(backend):
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]])
    labels = np.array([2, 0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss, cache = F.softmax_cross_entropy(to_device(logits), to_device(labels))
    assert float(loss) == pytest.approx(TF.cross_entropy(torch.tensor(logits), torch.tensor(labels)).item(), rel=1e-12)
    assert np.isfinite(to_numpy(F.softmax_cross_entropy_backward(one(np.float64), cache))).all()


@st.composite
def nll_cases(draw):
    """log-probabilities (N, C), targets (some possibly ignore_index), optional class weights, a reduction."""
    N, C = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    ignore_index = draw(st.sampled_from([-100, 0, C - 1]))
    target = draw(st.lists(st.integers(0, C - 1), min_size=N, max_size=N))
    weighted = draw(st.booleans())
    return N, C, np.array(target), ignore_index, weighted, draw(st.sampled_from(["mean", "sum", "none"]))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40)
@given(case=nll_cases(), seed=seeds)
def test_nll_loss_and_its_grad_match_torch_for_weights_ignore_index_and_every_reduction(backend, dtype, case, seed):
    N, C, target, ignore_index, weighted, reduction = case
    rng = np.random.default_rng(seed)
    logp = rng.standard_normal((N, C)).astype(dtype)
    weight = rng.uniform(0.5, 2.0, C).astype(dtype) if weighted else None
    out, cache = F.nll_loss(to_device(logp), to_device(target), None if weight is None else to_device(weight),
                            ignore_index, reduction)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = F.nll_loss_backward(to_device(dout), cache)
    t_out, (t_dx,) = torch_forward_backward(
        lambda t: TF.nll_loss(t, torch.tensor(target), None if weight is None else torch.tensor(weight),
                              ignore_index=ignore_index, reduction=reduction), [logp], dout)
    assert out.shape == tuple(t_out.shape) and type(out) is type(to_device(logp))
    # an all-ignored batch: torch's mean is NaN (0/0) and its gradient 0; both compare equal here
    np.testing.assert_array_equal(np.isnan(to_numpy(out)), np.isnan(t_out.detach().numpy()))
    assert_matches(np.nan_to_num(to_numpy(out)), np.nan_to_num(t_out.detach().numpy()), dtype)
    assert_matches(dx, t_dx, dtype)


def test_nll_loss_mean_of_an_all_ignored_batch_is_nan_with_a_zero_gradient_like_torch(backend):
    logp = np.log(np.full((2, 3), 1 / 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0/0 here is meant: no RuntimeWarning
        out, cache = F.nll_loss(to_device(logp), to_device(np.array([1, 1])), ignore_index=1)
        dx = to_numpy(F.nll_loss_backward(one(np.float64), cache))
    t_logp = torch.tensor(logp, requires_grad=True)
    TF.nll_loss(t_logp, torch.tensor([1, 1]), ignore_index=1).backward()
    assert np.isnan(to_numpy(out))
    np.testing.assert_array_equal(dx, t_logp.grad.numpy())  # zeros, not NaN


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30)
@given(shape=shapes, reduction=st.sampled_from(["mean", "sum", "none"]), seed=seeds)
def test_mse_loss_and_its_grads_match_torch(backend, dtype, shape, reduction, seed):
    x, y = random_arrays(seed, dtype, shape, shape)
    out, cache = F.mse_loss(to_device(x), to_device(y), reduction)
    (dout,) = random_arrays(seed + 1, dtype, out.shape)
    dx, dy = F.mse_loss_backward(to_device(dout), cache)
    t_out, (t_dx, t_dy) = torch_forward_backward(lambda a, b: TF.mse_loss(a, b, reduction=reduction), [x, y], dout)
    assert_matches(out, t_out, dtype)
    assert_matches(dx, t_dx, dtype)
    assert_matches(dy, t_dy, dtype)


@pytest.mark.parametrize("labels, match", [
    (np.array([0, 3]), r"labels must lie in \[0, 3\) for 3 classes, got values from 0 to 3"),
    (np.array([-1, 0]), r"labels must lie in \[0, 3\) for 3 classes, got values from -1 to 0"),
    (np.array([0.0, 1.0]), r"expected integer labels of shape \(2,\), got float64"),
    (np.array([0, 1, 2]), r"expected integer labels of shape \(2,\), got int64 of shape \(3,\)"),
])
def test_softmax_cross_entropy_rejects_bad_labels_saying_what_it_got(backend, labels, match):
    with pytest.raises(ValueError, match="softmax_cross_entropy: " + match):
        F.softmax_cross_entropy(to_device(np.zeros((2, 3))), to_device(labels))


# -- dtypes and errors ----------------------------------------------------------------------

x4 = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
w4 = np.random.default_rng(1).standard_normal((4, 3, 3, 3))
w2 = np.random.default_rng(2).standard_normal((5, 3 * 6 * 6))
OPS = {  # name: (forward taking x, backward); weights take the dtype of x
    "conv2d": (lambda x: F.conv2d(x, w4.astype(x.dtype), w4[:, 0, 0, 0].astype(x.dtype), 2, 1), F.conv2d_backward),
    "conv2d_naive": (lambda x: F.conv2d_naive(x, w4.astype(x.dtype), None, 1, 1), F.conv2d_naive_backward),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), F.max_pool2d_backward),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1, False), F.avg_pool2d_backward),
    "global_avg_pool2d": (F.global_avg_pool2d, F.global_avg_pool2d_backward),
    "global_max_pool2d": (F.global_max_pool2d, F.global_max_pool2d_backward),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (4, 3)), F.adaptive_avg_pool2d_backward),
    "relu": (F.relu, F.relu_backward),
    "sigmoid": (F.sigmoid, F.sigmoid_backward),
    "tanh": (F.tanh, F.tanh_backward),
    "softmax": (F.softmax, F.softmax_backward),
    "log_softmax": (F.log_softmax, F.log_softmax_backward),
    "flatten": (F.flatten, F.flatten_backward),
    "linear": (lambda x: F.linear(x.reshape(2, -1), w2.astype(x.dtype), w2[:, 0].astype(x.dtype)), F.linear_backward),
    "dropout": (lambda x: F.dropout(x, 0.5), F.dropout_backward),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_keeps_the_input_dtype_forward_and_backward(backend, dtype, op):
    forward, backward = OPS[op]
    out, cache = forward(to_device(x4.astype(dtype)))
    assert out.dtype == dtype
    grads = backward(to_device(np.ones(out.shape, dtype=dtype)), cache)
    for g in grads if isinstance(grads, tuple) else (grads,):
        assert g is None or g.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_loss_keeps_the_input_dtype_for_its_value_and_gradient(backend, dtype):
    logits, labels = to_device(np.zeros((2, 3), dtype)), to_device(np.array([0, 1]))
    loss, cache = F.softmax_cross_entropy(logits, labels)
    assert loss.dtype == F.softmax_cross_entropy_backward(one(dtype), cache).dtype == dtype
    loss, cache = F.nll_loss(logits, labels, to_device(np.ones(3, dtype)))
    assert loss.dtype == F.nll_loss_backward(one(dtype), cache).dtype == dtype
    loss, cache = F.mse_loss(logits, logits + 1)
    assert loss.dtype == dtype and all(g.dtype == dtype for g in F.mse_loss_backward(one(dtype), cache))


@pytest.mark.parametrize("call, error, match", [
    (lambda: F.conv2d(np.zeros((1, 3, 8, 8)), np.zeros((4, 2, 3, 3))), ValueError,
     r"conv2d: weight \(4, 2, 3, 3\) expects 2 input channels, got input of shape \(1, 3, 8, 8\) with 3"),
    (lambda: F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 5, 5))), ValueError,
     r"conv2d: kernel \(5, 5\) .* larger than the padded input \(4, 4\)"),
    (lambda: F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), stride=0), ValueError,
     r"conv2d: stride must be >= 1, got 0"),
    (lambda: F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), padding=-1), ValueError,
     r"conv2d: padding must be >= 0, got -1"),
    (lambda: F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), stride=1.5), TypeError,
     r"conv2d: stride must be an int or a pair of ints, got 1.5"),
    (lambda: F.conv2d(np.zeros((1, 4, 4)), np.zeros((1, 1, 3, 3))), ValueError,
     r"conv2d: expected input of shape \(N, C, H, W\), got shape \(1, 4, 4\)"),
    (lambda: F.conv2d(np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 3, 3))), TypeError,
     r"conv2d: expected x, w and b of one dtype .*got x float32, w float64"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 0), ValueError, r"max_pool2d: kernel_size must be >= 1, got 0"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 2, 0), ValueError, r"max_pool2d: stride must be >= 1, got 0"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 4, 4)), 3, 1, 2), ValueError,
     r"max_pool2d: padding \(2, 2\) must be at most half the kernel size \(3, 3\)"),
    (lambda: F.avg_pool2d(np.zeros((1, 1, 2, 2)), 5, 1, 1), ValueError,
     r"avg_pool2d: kernel \(5, 5\) .* larger than the padded input \(4, 4\)"),
    (lambda: F.linear(np.zeros((2, 4096)), np.zeros((10, 1600))), ValueError,
     r"linear: expected x \(N, 1600\) for weight \(10, 1600\), got x of shape \(2, 4096\)"),
    (lambda: F.linear(np.zeros((2, 3), np.float32), np.zeros((4, 3))), TypeError,
     r"linear: expected x, w and b of one dtype .*got x float32, w float64"),
])
def test_bad_arguments_raise_an_error_naming_the_function_what_it_expected_and_got(call, error, match):
    with pytest.raises(error, match=match):
        call()
