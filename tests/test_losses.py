"""The loss family against torch: CrossEntropyLoss and NLLLoss with K-dimensional inputs, weight,
ignore_index, every reduction, label_smoothing and class-probability targets; BCELoss,
BCEWithLogitsLoss (weight, pos_weight), MSELoss, L1Loss, SmoothL1Loss. Values and the gradients of
the input and (where torch gives one) the target, in float64 (1e-10) and float32 (1e-5 relative)
on random shapes and settings; finite-difference gradchecks of the array pairs; torch's edge
cases (all targets ignored: NaN mean, zero gradient) and errors."""

import warnings

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
from minicnn.ops import loss as L

DTYPES = [np.float64, np.float32]
TOL = {np.dtype("float64"): dict(rtol=1e-10, atol=1e-10), np.dtype("float32"): dict(rtol=1e-5, atol=1e-5)}
REDUCTIONS = ["mean", "sum", "none"]
seeds = st.integers(0, 2**32 - 1)


def assert_same(ours, ref, dtype=None):
    """ours (a minicnn Tensor) has dtype (default: ref's), ref's shape and ref's values (NaN where NaN). A
    float32 result is compared with torch's float64 result on the same inputs: the exact value, not one
    float32 rounding of it."""
    dtype = np.dtype(dtype or str(ref.dtype).replace("torch.", ""))
    assert ours.dtype == dtype, f"dtype {ours.dtype}, expected {dtype}"
    assert tuple(ours.shape) == tuple(ref.shape), f"shape {tuple(ours.shape)}, torch gives {tuple(ref.shape)}"
    np.testing.assert_allclose(to_numpy(ours.array), ref.detach().numpy(), **TOL[dtype])


def _torch(a, g):
    return torch.tensor(a.astype(np.float64) if a.dtype.kind == "f" else a, requires_grad=g)


def check(fn, *arrays, grad, seed=0):
    """fn(mc, F, *leaves) and fn(torch, TF, *leaves) (torch in float64 on the same values) agree in value
    and in the gradient of every leaf marked in grad (the others, integer targets and weights, are
    constants)."""
    dtype = arrays[0].dtype
    ours = [None if a is None else mc.tensor(to_device(a), requires_grad=g) for a, g in zip(arrays, grad)]
    theirs = [None if a is None else _torch(a, g) for a, g in zip(arrays, grad)]
    out, ref = fn(mc, F, *ours), fn(torch, TF, *theirs)
    assert_same(out, ref, dtype)
    dout = np.random.default_rng(seed).standard_normal(tuple(ref.shape)).astype(dtype)
    out.backward(mc.tensor(to_device(dout)))
    ref.backward(torch.tensor(dout.astype(np.float64)))
    for o, t in zip(ours, theirs):
        if t is not None and t.requires_grad:
            assert o.grad is not None, "torch gives this input a gradient, minicnn gives none"
            assert_same(o.grad, t.grad, dtype)
    return out, ref


@st.composite
def class_cases(draw, min_dims=0):
    """(input shape (N, C, d...) or (C,), target shape, C): K = 0..2 extra dims, or one unbatched sample."""
    C = draw(st.integers(1, 5))
    if draw(st.integers(0, 5)) == 0:
        return (C,), (), C
    N = draw(st.integers(1, 4))
    extra = tuple(draw(st.lists(st.integers(1, 3), min_size=min_dims, max_size=2)))
    return (N, C) + extra, (N,) + extra, C


def class_targets(rng, shape, C, ignore_index, ignore_some):
    t = rng.integers(0, C, size=shape)
    if ignore_some and t.size:
        t = np.where(rng.random(shape) < 0.3, ignore_index, t)
    return np.asarray(t, dtype=np.int64)


# -- cross entropy and NLL: class indices --------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=25)
@given(case=class_cases(), seed=seeds, weighted=st.booleans(), ignore=st.sampled_from([None, -100, 1, 0]),
       label_smoothing=st.sampled_from([0.0, 0.1, 0.35, 1.0]), scale=st.sampled_from([1.0, 30.0]))
def test_cross_entropy_with_class_indices_matches_torch_for_k_dims_weights_ignore_and_smoothing(
        backend, dtype, reduction, case, seed, weighted, ignore, label_smoothing, scale):
    shape, target_shape, C = case
    rng = np.random.default_rng(seed)
    ignore_index = -100 if ignore is None else ignore
    target = class_targets(rng, target_shape, C, ignore_index, ignore is not None)
    assume(reduction != "mean" or (target != ignore_index).any())  # the all-ignored NaN has its own test
    weight = (0.2 + rng.random(C)).astype(dtype) if weighted else None
    x = (rng.standard_normal(shape) * scale).astype(dtype)

    def loss(T, F, x, target, w):
        return F.cross_entropy(x, target, weight=w, ignore_index=ignore_index, reduction=reduction,
                               label_smoothing=label_smoothing)
    check(loss, x, target, weight, grad=[True, False, False], seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=20)
@given(case=class_cases(), seed=seeds, weighted=st.booleans(), ignore=st.sampled_from([None, -100, 2]))
def test_nll_loss_matches_torch_for_k_dims_weights_and_ignore_index(backend, dtype, reduction, case, seed, weighted,
                                                                   ignore):
    shape, target_shape, C = case
    rng = np.random.default_rng(seed)
    ignore_index = -100 if ignore is None else ignore
    target = class_targets(rng, target_shape, C, ignore_index, ignore is not None)
    assume(reduction != "mean" or (target != ignore_index).any())
    weight = (0.2 + rng.random(C)).astype(dtype) if weighted else None

    def loss(T, F, x, target, w):
        return F.nll_loss(x, target, weight=w, ignore_index=ignore_index, reduction=reduction)
    check(loss, rng.standard_normal(shape).astype(dtype), target, weight, grad=[True, False, False], seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=20)
@given(case=class_cases(), seed=seeds, weighted=st.booleans(), label_smoothing=st.sampled_from([0.0, 0.2, 1.0]),
       target_grad=st.booleans())
def test_cross_entropy_with_class_probabilities_matches_torch_for_input_and_target_grads(
        backend, dtype, reduction, case, seed, weighted, label_smoothing, target_grad):
    shape, _, C = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    p = rng.random(shape)
    p = (p / p.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)).astype(dtype)
    weight = (0.2 + rng.random(C)).astype(dtype) if weighted else None

    def loss(T, F, x, p, w):
        return F.cross_entropy(x, p, weight=w, reduction=reduction, label_smoothing=label_smoothing)
    check(loss, x, p, weight, grad=[True, target_grad, False], seed=seed)


def test_the_plain_case_runs_the_fused_softmax_cross_entropy_pair():
    loss = F.cross_entropy(mc.randn(4, 3, requires_grad=True), mc.tensor([0, 2, 1, 1]))
    assert loss._node.backward.__name__ == "_softmax_cross_entropy_backward"
    assert loss._node.cache[0][0].shape == (4, 3)  # the fused pair's own cache: (logp, labels)
    loss = F.cross_entropy(mc.randn(4, 3, requires_grad=True), mc.tensor([0, 2, -100, 1]))
    assert loss._node.backward.__name__ == "_cross_entropy_nd_backward"


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fn, label_smoothing", [("cross_entropy", 0.0), ("cross_entropy", 0.2), ("nll_loss", 0.0)])
def test_every_target_ignored_gives_torchs_nan_mean_with_a_zero_gradient(label_smoothing, weighted, fn):
    x = np.random.default_rng(0).standard_normal((3, 4, 2))
    target = np.full((3, 2), -100)
    weight = np.array([0.5, 1.0, 2.0, 1.5]) if weighted else None
    kwargs = dict(label_smoothing=label_smoothing) if fn == "cross_entropy" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0/0 is torch's NaN here, not a RuntimeWarning
        out, ref = check(lambda T, F, x, t, w: getattr(F, fn)(x, t, weight=w, **kwargs), x, target, weight,
                         grad=[True, False, False])
    assert torch.isnan(ref) and np.isnan(out.item())


def test_an_empty_batch_has_a_nan_mean_and_a_zero_sum_as_torch():
    for reduction in ("mean", "sum"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check(lambda T, F, x, t: F.cross_entropy(x, t, reduction=reduction, label_smoothing=0.1),
                  np.zeros((0, 3)), np.zeros(0, np.int64), grad=[True, False])


# -- binary and regression losses ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=15)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4), seed=seeds, weight=st.sampled_from(
    [None, "full", "last"]), hard=st.booleans())
def test_binary_cross_entropy_matches_torch_for_input_and_target_grads(backend, dtype, reduction, shape, seed,
                                                                      weight, hard):
    assume(weight != "last" or len(shape) >= 1)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.02, 0.98, shape).astype(dtype)
    y = (rng.random(shape) < 0.5 if hard else rng.random(shape)).astype(dtype)
    w = None if weight is None else (0.5 + rng.random(shape if weight == "full" else shape[-1:])).astype(dtype)
    check(lambda T, F, x, y, w: F.binary_cross_entropy(x, y, weight=w, reduction=reduction), x, y, w,
          grad=[True, True, False], seed=seed)


def test_binary_cross_entropy_clamps_its_logs_at_minus_100_and_its_gradient_as_torch():
    x, y = np.array([0.0, 1.0, 0.5, 1e-50]), np.array([1.0, 0.0, 0.5, 1.0])
    ours, theirs = mc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = F.binary_cross_entropy(ours, mc.tensor(y), reduction="sum"), TF.binary_cross_entropy(
        theirs, torch.tensor(y), reduction="sum")
    assert_same(out, ref)  # 100 + 100 + log 2 + 100
    out.backward(), ref.backward()
    # dx = (x - y) / max(x (1 - x), 1e-12): torch's 1e-12 is a float32 constant even in float64 (4e-9 apart)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-8)
    assert abs(ours.grad.numpy()[0]) == pytest.approx(1e12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=15)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=seeds, weighted=st.booleans(),
       pos_weight=st.sampled_from([None, "class", "scalar"]), scale=st.sampled_from([1.0, 50.0]))
def test_binary_cross_entropy_with_logits_matches_torch_with_weight_and_pos_weight(
        backend, dtype, reduction, shape, seed, weighted, pos_weight, scale):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    y = rng.random(shape).astype(dtype)
    w = (0.5 + rng.random(shape)).astype(dtype) if weighted else None
    pw = None if pos_weight is None else (0.2 + 3 * rng.random(shape[-1:] if pos_weight == "class" else (1,))).astype(
        dtype)
    check(lambda T, F, x, y, w, pw: F.binary_cross_entropy_with_logits(x, y, weight=w, reduction=reduction,
                                                                       pos_weight=pw),
          x, y, w, pw, grad=[True, True, False, False], seed=seed)


def test_binary_cross_entropy_with_logits_is_finite_for_huge_logits():
    x = np.array([-1e4, -100.0, 100.0, 1e4], np.float32)
    out, _ = check(lambda T, F, x: F.binary_cross_entropy_with_logits(x, T.tensor([1.0, 0.0, 1.0, 0.0]),
                                                                     reduction="none"), x, grad=[True])
    assert np.isfinite(out.detach().numpy()).all()


REGRESSION = {
    "mse_loss": lambda F, x, y, r, beta: F.mse_loss(x, y, reduction=r),
    "l1_loss": lambda F, x, y, r, beta: F.l1_loss(x, y, reduction=r),
    "smooth_l1_loss": lambda F, x, y, r, beta: F.smooth_l1_loss(x, y, reduction=r, beta=beta),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(REGRESSION))
@settings(max_examples=10)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4), seed=seeds, beta=st.sampled_from([1.0, 0.3, 0.0]),
       ties=st.booleans())
def test_regression_loss_matches_torch_for_input_and_target_grads(backend, dtype, reduction, name, shape, seed, beta,
                                                                  ties):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    if ties and x.size:  # x == y, and |x - y| == beta exactly: the kinks
        x.reshape(-1)[0] = y.reshape(-1)[0]
        x.reshape(-1)[-1] = y.reshape(-1)[-1] + dtype(beta)
    check(lambda T, F, x, y: REGRESSION[name](F, x, y, reduction, beta), x, y, grad=[True, True], seed=seed)


# -- the array pairs by finite differences -------------------------------------------------------


def _case(seed):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((3, 4, 2))


def _pairs():
    rng, x = _case(0)
    t = np.array([[0, 3], [-100, 1], [2, 2]])
    w = 0.5 + rng.random(4)
    p = rng.random((3, 4, 2))
    p /= p.sum(axis=1, keepdims=True)
    q, y = rng.uniform(0.1, 0.9, (3, 4)), rng.random((3, 4))
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    return {
        "cross_entropy_nd": (lambda x: L.cross_entropy_nd(x, t, w, -100, "mean", 0.2), L.cross_entropy_nd_backward,
                             [x]),
        "cross_entropy_nd_none": (lambda x: L.cross_entropy_nd(x, t, None, -100, "none", 0.0),
                                  L.cross_entropy_nd_backward, [x.copy()]),
        "cross_entropy_unbatched": (lambda x: L.cross_entropy_nd(x, np.array(2), w, -100, "none", 0.3),
                                    L.cross_entropy_nd_backward, [x[0, :, 0].copy()]),
        "nll_loss_nd": (lambda x: L.nll_loss_nd(x, t, w, -100, "mean"), L.nll_loss_nd_backward, [x.copy()]),
        "cross_entropy_probs": (lambda x, p: L.cross_entropy_probs(x, p, w, "mean", 0.1),
                                L.cross_entropy_probs_backward, [x.copy(), p]),
        "cross_entropy_probs_none": (lambda x, p: L.cross_entropy_probs(x, p, None, "none", 0.0),
                                     L.cross_entropy_probs_backward, [x.copy(), p.copy()]),
        "binary_cross_entropy": (lambda q, y: L.binary_cross_entropy(q, y, w[:, None].repeat(4, 1)[:3], "sum"),
                                 L.binary_cross_entropy_backward, [q, y]),
        "bce_with_logits": (lambda a, y: L.binary_cross_entropy_with_logits(a, y, None, 0.5 + w, "mean"),
                            L.binary_cross_entropy_with_logits_backward, [a, y.copy()]),
        "bce_with_logits_plain": (lambda a, y: L.binary_cross_entropy_with_logits(a, y, None, None, "none"),
                                  L.binary_cross_entropy_with_logits_backward, [a.copy(), y.copy()]),
        "l1_loss": (lambda a, b: L.l1_loss(a, b, "mean"), L.l1_loss_backward, [a.copy(), b]),
        "smooth_l1_loss": (lambda a, b: L.smooth_l1_loss(a, b, "sum", 0.7), L.smooth_l1_loss_backward,
                           [a.copy(), b.copy()]),
    }


PAIRS = _pairs()


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_loss_pair_passes_gradcheck_in_float64(name):
    forward, backward, inputs = PAIRS[name]
    result = gradcheck(forward, backward, inputs)
    assert result.ok(1e-6), f"{name}: {result}"


# -- modules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda nn, T: nn.CrossEntropyLoss(), lambda nn, T: nn.CrossEntropyLoss(weight=T.ones(3)),
    lambda nn, T: nn.NLLLoss(weight=T.ones(3)), lambda nn, T: nn.BCELoss(),
    lambda nn, T: nn.BCEWithLogitsLoss(pos_weight=T.ones(3)), lambda nn, T: nn.BCEWithLogitsLoss(weight=T.ones(3)),
    lambda nn, T: nn.MSELoss(), lambda nn, T: nn.L1Loss(), lambda nn, T: nn.SmoothL1Loss(beta=0.5),
])
def test_loss_module_repr_and_state_dict_keys_are_torchs(make):
    ours, theirs = make(nn, mc), make(torch.nn, torch)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(case=class_cases(min_dims=1), seed=seeds, label_smoothing=st.sampled_from([0.0, 0.2]),
       reduction=st.sampled_from(REDUCTIONS))
def test_cross_entropy_loss_module_on_segmentation_maps_matches_torch(backend, dtype, case, seed, label_smoothing,
                                                                     reduction):
    shape, target_shape, C = case
    rng = np.random.default_rng(seed)
    weight = (0.2 + rng.random(C)).astype(dtype)
    target = class_targets(rng, target_shape, C, 0, True)
    assume(reduction != "mean" or (target != 0).any())
    ours = nn.CrossEntropyLoss(mc.tensor(to_device(weight)), ignore_index=0, reduction=reduction,
                               label_smoothing=label_smoothing)
    theirs = torch.nn.CrossEntropyLoss(torch.tensor(weight.astype(np.float64)), ignore_index=0, reduction=reduction,
                                       label_smoothing=label_smoothing)
    check(lambda T, F, x, t: (ours if T is mc else theirs)(x, t), rng.standard_normal(shape).astype(dtype), target,
          grad=[True, False], seed=seed)


@pytest.mark.parametrize("size_average, reduce, reduction", [(None, False, "none"), (False, None, "sum"),
                                                             (True, True, "mean"), (False, False, "none")])
def test_the_deprecated_size_average_and_reduce_become_torchs_reduction(size_average, reduce, reduction):
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        ours = nn.MSELoss(size_average, reduce)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ours.reduction == torch.nn.MSELoss(size_average, reduce).reduction == reduction


def test_a_weight_that_requires_grad_is_refused_as_torch():
    x, w = mc.randn(4, 3, requires_grad=True), mc.tensor([0.5, 1.0, 2.0], requires_grad=True)
    for call in (lambda: F.cross_entropy(x, mc.tensor([0, 2, 1, 1]), weight=w),
                 lambda: F.nll_loss(x, mc.tensor([0, 2, 1, 1]), weight=w),
                 lambda: F.binary_cross_entropy_with_logits(x, mc.zeros(4, 3), pos_weight=w)):
        with pytest.raises(RuntimeError, match="not differentiable with respect to argument"):
            call()


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.cross_entropy(mc.zeros(3, 4), mc.tensor([0, 1])), ValueError,
     r"Expected input batch_size \(3\) to match target batch_size \(2\)"),
    (lambda: F.cross_entropy(mc.zeros(2, 4, 5), mc.zeros(2, 4, dtype=mc.int64)), ValueError,
     r"Expected target size \[2, 5\], got \[2, 4\]"),
    (lambda: F.cross_entropy(mc.zeros(3, 4), mc.tensor([0, 1, 4]), reduction="sum"), ValueError,
     r"Target 4 is out of bounds"),
    (lambda: F.nll_loss(mc.zeros(3, 4), mc.tensor([0, -1, 2])), ValueError, r"Target -1 is out of bounds"),
    (lambda: nn.CrossEntropyLoss()(mc.zeros(2, 3), mc.tensor([0, 5])), ValueError,
     r"CrossEntropyLoss: .*labels must lie in \[0, 3\)"),
    (lambda: F.cross_entropy(mc.zeros(3, 4), mc.tensor([0, 1, 2]), weight=mc.ones(3)), ValueError,
     r"weight tensor should be defined either for all 4 classes or no classes"),
    (lambda: F.cross_entropy(mc.zeros(3, 4), mc.rand(3, 5)), ValueError,
     "class probabilities must have the input's shape"),
    (lambda: F.cross_entropy(mc.zeros(3, 4), mc.rand(3, 4), ignore_index=1), ValueError,
     "ignore_index is not supported for floating point target"),
    (lambda: F.cross_entropy(mc.zeros(3, 4), mc.tensor([0, 1, 2]), label_smoothing=1.5), ValueError,
     r"label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
    (lambda: nn.CrossEntropyLoss(label_smoothing=-0.1), ValueError, "label_smoothing must be between 0.0 and 1.0"),
    (lambda: F.cross_entropy(mc.zeros(3, 4), mc.tensor([0, 1, 2]), reduction="avg"), ValueError,
     "'avg' is not a valid value for reduction"),
    (lambda: nn.L1Loss(reduction="average"), ValueError, "'average' is not a valid value for reduction"),
    (lambda: F.cross_entropy(mc.zeros(3, 4), mc.tensor([0, 1, 2]), weight=mc.ones(4, dtype=mc.float64)),
     TypeError, "the input is float32 but weight is float64"),
    (lambda: F.binary_cross_entropy(mc.rand(3), mc.rand(4)), ValueError,
     r"Using a target size \(4,\) that is different to the input size \(3,\)"),
    (lambda: F.binary_cross_entropy(mc.rand(3) + 1, mc.rand(3)), ValueError,
     "all elements of input should be between 0 and 1"),
    (lambda: F.binary_cross_entropy(mc.rand(3), mc.rand(3), weight=mc.rand(2)), ValueError,
     r"does not broadcast to the input's shape \(3,\)"),
    (lambda: F.binary_cross_entropy_with_logits(mc.rand(3), mc.rand(4)), ValueError,
     r"Target size \(4,\) must be the same as input size \(3,\)"),
    (lambda: F.smooth_l1_loss(mc.rand(3), mc.rand(3), beta=-1), ValueError,
     "does not support negative values for beta"),
    (lambda: nn.SmoothL1Loss(beta=-1), ValueError, "does not support negative values for beta"),
    (lambda: F.mse_loss(mc.zeros(3, 1), mc.zeros(3)), ValueError, "differ in shape"),
    (lambda: nn.L1Loss()(mc.zeros(3, 1), mc.zeros(3)), ValueError, "L1Loss: l1_loss: .*differ in shape"),
    (lambda: F.mse_loss(mc.zeros(3), mc.zeros(3), weight=mc.ones(3)), NotImplementedError, "weight="),
])
def test_bad_loss_arguments_and_inputs_are_refused_with_a_clear_message(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_losses_keep_float32_and_give_a_0d_tensor():
    x = mc.randn(4, 3, requires_grad=True)
    for loss in (F.cross_entropy(x, mc.tensor([0, 1, 2, 0]), label_smoothing=0.1), F.l1_loss(x, mc.zeros(4, 3)),
                 F.binary_cross_entropy_with_logits(x, mc.ones(4, 3)), F.smooth_l1_loss(x, mc.zeros(4, 3))):
        x.grad = None
        loss.backward()
        assert loss.shape == () and loss.dtype == x.grad.dtype == np.float32


def test_class_indices_may_be_numpy_arrays_or_lists_of_any_integer_dtype():
    x = np.random.default_rng(0).standard_normal((3, 4))
    ref = TF.cross_entropy(torch.tensor(x), torch.tensor([0, 3, 1]), reduction="sum")
    for target in ([0, 3, 1], np.array([0, 3, 1], np.int32), np.array([0, 3, 1], np.uint8)):
        assert_same(F.cross_entropy(mc.tensor(x), target, reduction="sum"), ref)
