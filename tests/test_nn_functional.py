"""minicnn.nn.functional against torch.nn.functional, through the tape: values, dtypes and the
gradient of every input, float64 (1e-10) and float32 (1e-5 relative), on random shapes and
settings drawn by hypothesis.

Each comparison runs one function twice, `fn(mc, F, *leaves)` with minicnn and its F, and
`fn(torch, torch.nn.functional, *leaves)`. The value and gradient tests run on every available
backend (NumPy; CuPy when a GPU answers).
"""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minicnn as mc
import minicnn.nn.functional as F
from minicnn.backend import to_device, to_numpy
from torch_compare import assert_same, seeds  # noqa: E402

DTYPES = [np.float64, np.float32]


# -- helpers --------------------------------------------------------------------------------------


def check(fn, *arrays, seed=0, grad=None):
    """fn(mc, F, *leaves) and fn(torch, TF, *leaves) agree in value and in every float leaf's gradient
    for a random upstream gradient. arrays may hold None (an absent bias). grad: which leaves
    require grad (default: every float array). Returns both outputs."""
    grad = [a is not None and a.dtype.kind == "f" for a in arrays] if grad is None else grad
    ours = [None if a is None else mc.tensor(to_device(a), requires_grad=g) for a, g in zip(arrays, grad)]
    theirs = [None if a is None else torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grad)]
    out, ref = fn(mc, F, *ours), fn(torch, TF, *theirs)
    assert_same(out, ref)
    dtype = str(ref.dtype).replace("torch.", "")
    dout = np.random.default_rng(seed).standard_normal(tuple(ref.shape)).astype(dtype)
    out.backward(mc.tensor(to_device(dout)))
    ref.backward(torch.tensor(dout))
    for o, t in zip(ours, theirs):
        if t is not None and t.requires_grad:
            assert o.grad is not None, "torch gives this input a gradient, minicnn gives none"
            assert_same(o.grad, t.grad)
    return out, ref


def normal(seed, shape, dtype, offset=0):
    return np.random.default_rng(seed + offset).standard_normal(shape).astype(dtype)


@st.composite
def conv_cases(draw):
    """(N, C, H, W), (OC, C, KH, KW), stride, padding, dilation, with the dilated kernel fitting the padded input."""
    N, C, OC = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    H = max(1, dilation[0] * (KH - 1) + 1 - 2 * padding[0]) + draw(st.integers(0, 4))
    W = max(1, dilation[1] * (KW - 1) + 1 - 2 * padding[1]) + draw(st.integers(0, 4))
    as_int = draw(st.booleans()) and stride[0] == stride[1] and padding[0] == padding[1]
    if as_int:  # torch's ints-for-pairs form too
        stride, padding = stride[0], padding[0]
    return (N, C, H, W), (OC, C, KH, KW), stride, padding, dilation


@st.composite
def pool_cases(draw):
    """(N, C, H, W), kernel, stride (None: the kernel; or smaller: overlapping windows), padding <= kernel // 2."""
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    H = max(1, kernel[0] - 2 * padding[0]) + draw(st.integers(0, 4))
    W = max(1, kernel[1] - 2 * padding[1]) + draw(st.integers(0, 4))
    return (N, C, H, W), kernel, stride, padding


# -- convolution and linear ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None)
@given(case=conv_cases(), bias=st.booleans(), seed=seeds)
def test_conv2d_and_its_grads_match_torch_for_any_stride_padding_dilation_and_bias(backend, dtype, case, bias,
                                                                                    seed):
    x_shape, w_shape, stride, padding, dilation = case
    x, w = normal(seed, x_shape, dtype), normal(seed, w_shape, dtype, 1)
    b = normal(seed, (w_shape[0],), dtype, 2) if bias else None
    check(lambda T, F, x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation), x, w, b,
          seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20, deadline=None)
@given(case=conv_cases(), seed=seeds)
def test_conv2d_of_an_input_that_needs_no_grad_still_gives_the_weight_grads_of_torch(backend, dtype, case, seed):
    x_shape, w_shape, stride, padding, dilation = case
    x, w, b = normal(seed, x_shape, dtype), normal(seed, w_shape, dtype, 1), normal(seed, (w_shape[0],), dtype, 2)
    check(lambda T, F, x, w, b: F.conv2d(x, w, b, stride, padding, dilation), x, w, b, grad=[False, True, True],
          seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(lead=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3), features=st.integers(1, 5),
       out_features=st.integers(1, 4), bias=st.booleans(), seed=seeds)
def test_linear_and_its_grads_match_torch_for_2d_and_higher_input(backend, dtype, lead, features, out_features,
                                                                    bias, seed):
    x, w = normal(seed, lead + (features,), dtype), normal(seed, (out_features, features), dtype, 1)
    b = normal(seed, (out_features,), dtype, 2) if bias else None
    check(lambda T, F, x, w, b: F.linear(x, w, b), x, w, b, seed=seed)


# -- pooling -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None)
@given(case=pool_cases(), seed=seeds)
def test_max_pool2d_and_its_grad_match_torch_for_any_window_stride_and_padding(backend, dtype, case, seed):
    shape, kernel, stride, padding = case
    check(lambda T, F, x: F.max_pool2d(x, kernel, stride, padding), normal(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@settings(max_examples=30, deadline=None)
@given(case=pool_cases(), seed=seeds)
def test_avg_pool2d_and_its_grad_match_torch_with_and_without_counting_the_padding(backend, dtype,
                                                                                     count_include_pad, case, seed):
    shape, kernel, stride, padding = case
    check(lambda T, F, x: F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad),
          normal(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None)
@given(hw=st.tuples(st.integers(1, 9), st.integers(1, 9)), out=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       seed=seeds, as_int=st.booleans())
def test_adaptive_avg_pool2d_and_its_grad_match_torch_whether_or_not_the_size_divides(backend, dtype, hw, out,
                                                                                       seed, as_int):
    output_size = out[0] if as_int else out
    check(lambda T, F, x: F.adaptive_avg_pool2d(x, output_size), normal(seed, (2, 2) + hw, dtype), seed=seed)


@pytest.mark.parametrize("case", [
    ((6, 6), (3, 2)), ((7, 5), (3, 2)), ((5, 5), 1), ((4, 6), (None, 4))],
    ids=["divides", "does not divide", "global", "None keeps a side"])
def test_adaptive_avg_pool2d_named_cases_match_torch(case):
    hw, output_size = case
    check(lambda T, F, x: F.adaptive_avg_pool2d(x, output_size), normal(0, (1, 2) + hw, np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None)
@given(case=pool_cases(), seed=seeds, nan_fraction=st.sampled_from([0.1, 0.3, 0.7]))
def test_max_pool2d_with_nans_in_its_windows_matches_torch_values_and_gradient(backend, dtype, case, seed,
                                                                                 nan_fraction):
    shape, kernel, stride, padding = case
    x = normal(seed, shape, dtype)
    x[np.random.default_rng(seed + 5).random(shape) < nan_fraction] = np.nan
    assume(np.isnan(x).any())
    check(lambda T, F, x: F.max_pool2d(x, kernel, stride, padding), x, seed=seed)


def _max_pool_by_definition(x, kernel, stride, padding):
    """The maximum over the real (unpadded) cells of each window, by loops."""
    (KH, KW), (SH, SW), (PH, PW) = kernel, stride, padding
    N, C, H, W = x.shape
    OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    out = np.empty((N, C, OH, OW), dtype=x.dtype)
    for i in range(OH):
        for j in range(OW):
            r0, c0 = i * SH - PH, j * SW - PW
            window = x[:, :, max(r0, 0):r0 + KH, max(c0, 0):c0 + KW]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64])
@settings(max_examples=25, deadline=None)
@given(case=pool_cases(), seed=seeds)
def test_max_pool2d_of_integers_with_padding_is_the_max_of_the_real_cells(backend, dtype, case, seed):
    shape, kernel, stride, padding = case
    info = np.iinfo(dtype)
    x = np.random.default_rng(seed).integers(info.min, int(info.min) + 3, size=shape, endpoint=True).astype(dtype)
    ours = F.max_pool2d(mc.tensor(to_device(x)), kernel, stride, padding)
    np.testing.assert_array_equal(to_numpy(ours.array), _max_pool_by_definition(x, kernel, stride or kernel,
                                                                                padding))
    assert_same(ours, TF.max_pool2d(torch.tensor(x), kernel, stride, padding))


def test_max_pool2d_padding_never_wins_on_negative_input_as_torch():
    x = -np.abs(normal(0, (1, 1, 4, 4), np.float64)) - 1
    check(lambda T, F, x: F.max_pool2d(x, 3, stride=1, padding=1), x)


# -- activations ------------------------------------------------------------------------------------

ACTIVATIONS = {
    "relu": lambda T, F, x: F.relu(x),
    "sigmoid": lambda T, F, x: F.sigmoid(x),
    "tanh": lambda T, F, x: F.tanh(x),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
@settings(max_examples=15, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), scale=st.sampled_from([0.1, 1.0, 30.0]),
       seed=seeds)
def test_activations_and_their_grads_match_torch(backend, dtype, name, shape, scale, seed):
    check(ACTIVATIONS[name], normal(seed, shape, dtype) * dtype(scale), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@settings(max_examples=25, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), data=st.data(),
       scale=st.sampled_from([1.0, 50.0]), seed=seeds)
def test_softmax_and_log_softmax_and_their_grads_match_torch_along_any_dim(backend, dtype, name, shape, data, scale,
                                                                             seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    check(lambda T, F, x: getattr(F, name)(x, dim=dim), normal(seed, shape, dtype) * dtype(scale), seed=seed)


# -- dropout -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.3, 0.9])
def test_dropout_when_not_training_is_the_identity_as_torch(backend, p):
    check(lambda T, F, x: F.dropout(x, p=p, training=False) * 1.0, normal(0, (3, 4), np.float64))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_when_training_zeroes_about_p_and_scales_the_rest_by_one_over_one_minus_p(backend, p):
    mc.manual_seed(0)
    x = mc.tensor(to_device(1 + np.abs(normal(0, (200, 100), np.float32))))
    out = to_numpy(F.dropout(x, p=p, training=True).array)
    kept = out != 0
    assert abs((~kept).mean() - p) < 0.02
    np.testing.assert_allclose(out[kept], to_numpy(x.array)[kept] / np.float32(1 - p), rtol=1e-6)
    assert out.dtype == np.float32


def test_dropout_gradient_uses_the_mask_of_its_forward(backend):
    mc.manual_seed(1)
    x = mc.ones(50, 40, dtype=mc.float64, requires_grad=True)
    out = F.dropout(x, p=0.4, training=True)
    dout = normal(0, (50, 40), np.float64)
    out.backward(mc.tensor(to_device(dout)))
    np.testing.assert_array_equal(to_numpy(x.grad.array), dout * to_numpy(out.array))  # x = 1: out is the mask


def test_dropout_is_reproducible_under_manual_seed():
    x = mc.ones(10, 10)
    mc.manual_seed(7)
    first = F.dropout(x, 0.5).tolist()
    mc.manual_seed(7)
    assert F.dropout(x, 0.5).tolist() == first


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_refuses_a_probability_outside_zero_one_as_torch(p):
    with pytest.raises(ValueError):
        TF.dropout(torch.ones(3), p)
    with pytest.raises(ValueError, match="p must be"):
        F.dropout(mc.ones(3), p)


# -- flatten and pad ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=3), data=st.data(), seed=seeds)
def test_flatten_and_its_grad_match_torch(backend, dtype, shape, data, seed):
    n = len(shape)
    start = data.draw(st.integers(0, n - 1), label="start_dim")
    end = data.draw(st.integers(start, n - 1), label="end_dim")
    check(lambda T, F, x: T.flatten(x, start, end) if T is torch else F.flatten(x, start, end),
          normal(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=3), data=st.data(), seed=seeds,
       value=st.sampled_from([0, 0.0, -1.5]))
def test_pad_with_a_constant_and_its_grad_match_torch(backend, dtype, shape, data, seed, value):
    dims = data.draw(st.integers(1, len(shape)), label="padded dims")
    pad = tuple(data.draw(st.lists(st.integers(0, 3), min_size=2 * dims, max_size=2 * dims), label="pad"))
    check(lambda T, F, x: F.pad(x, pad, value=value), normal(seed, shape, dtype), seed=seed)


# -- losses -------------------------------------------------------------------------------------------


@st.composite
def classification_cases(draw):
    """N, C, targets (some maybe ignored), ignore_index, and a class weight or None."""
    N, C = draw(st.integers(1, 6)), draw(st.integers(2, 5))
    ignore_index = draw(st.sampled_from([-100, 1]))
    targets = draw(st.lists(st.integers(0, C - 1) | st.just(ignore_index), min_size=N, max_size=N))
    assume(any(t != ignore_index for t in targets))
    weighted = draw(st.booleans())
    return N, C, targets, ignore_index, weighted


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@settings(max_examples=30, deadline=None)
@given(case=classification_cases(), label_smoothing=st.sampled_from([0.0, 0.1, 0.35]), seed=seeds)
def test_cross_entropy_and_its_grad_match_torch_for_every_reduction_weight_ignore_index_and_smoothing(
        backend, dtype, reduction, case, label_smoothing, seed):
    N, C, targets, ignore_index, weighted = case
    weight = (0.2 + np.random.default_rng(seed).random(C)).astype(dtype) if weighted else None

    def loss(T, F, x):
        w = None if weight is None else T.tensor(weight.tolist(), dtype=x.dtype)
        return F.cross_entropy(x, T.tensor(targets), weight=w, ignore_index=ignore_index, reduction=reduction,
                               label_smoothing=label_smoothing)
    check(loss, normal(seed, (N, C), dtype) * dtype(3), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 8), classes=st.integers(1, 6), seed=seeds, scale=st.sampled_from([1.0, 100.0]))
def test_cross_entropy_of_plain_labels_matches_torch_even_for_huge_logits(backend, dtype, n, classes, seed, scale):
    labels = np.random.default_rng(seed).integers(0, classes, size=n)
    check(lambda T, F, x: F.cross_entropy(x, T.tensor(labels.tolist())), normal(seed, (n, classes), dtype) *
          dtype(scale), seed=seed)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_mean_is_nan_when_every_target_is_ignored_as_torch(label_smoothing, weighted):
    x = normal(0, (3, 4), np.float64)
    w = [0.5, 1.0, 2.0, 1.5] if weighted else None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0/0 is torch's NaN here, not a RuntimeWarning
        ours = F.cross_entropy(mc.tensor(x), mc.tensor([-100, -100, -100]),
                               weight=None if w is None else mc.tensor(w, dtype=mc.float64),
                               label_smoothing=label_smoothing)
    ref = TF.cross_entropy(torch.tensor(x), torch.tensor([-100, -100, -100]),
                           weight=None if w is None else torch.tensor(w, dtype=torch.float64),
                           label_smoothing=label_smoothing)
    assert torch.isnan(ref)
    assert_same(ours, ref)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_gradient_is_zero_when_every_target_is_ignored_as_torch(label_smoothing):
    x = normal(0, (3, 4), np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(lambda T, F, x: F.cross_entropy(x, T.tensor([-100, -100, -100]), label_smoothing=label_smoothing), x)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_refuses_a_weight_that_requires_grad_as_torch(label_smoothing):
    x, w = mc.randn(4, 3, requires_grad=True), mc.tensor([0.5, 1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="weight"):
        F.cross_entropy(x, mc.tensor([0, 2, 1, 1]), weight=w, label_smoothing=label_smoothing).backward()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@settings(max_examples=20, deadline=None)
@given(case=classification_cases(), seed=seeds)
def test_nll_loss_and_its_grad_match_torch(backend, dtype, reduction, case, seed):
    N, C, targets, ignore_index, weighted = case
    weight = (0.2 + np.random.default_rng(seed).random(C)).astype(dtype) if weighted else None

    def loss(T, F, x):
        w = None if weight is None else T.tensor(weight.tolist(), dtype=x.dtype)
        return F.nll_loss(F.log_softmax(x, dim=1), T.tensor(targets), weight=w, ignore_index=ignore_index,
                          reduction=reduction)
    check(loss, normal(seed, (N, C), dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@settings(max_examples=15, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), seed=seeds)
def test_mse_loss_and_its_grads_match_torch_for_input_and_target(backend, dtype, reduction, shape, seed):
    check(lambda T, F, x, y: F.mse_loss(x, y, reduction=reduction), normal(seed, shape, dtype),
          normal(seed, shape, dtype, 1), seed=seed)


def test_mse_loss_refuses_shapes_that_differ():
    with pytest.raises(ValueError, match="differ in shape"):
        F.mse_loss(mc.zeros(3, 1), mc.zeros(3))
