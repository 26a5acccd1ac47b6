"""BatchNorm1d/2d, GroupNorm, LayerNorm and LocalResponseNorm against torch: outputs and the
gradients of the input, weight and bias in float64 (1e-10) and float32 (1e-5 relative) on random
shapes and settings; BatchNorm's running statistics, num_batches_tracked and eval outputs over
several training steps (momentum and momentum=None), its state_dict against torch's (keys, and a
torch state dict loaded gives torch's eval outputs); finite-difference gradchecks of the array
pairs; and the errors for bad arguments and inputs."""

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
from minicnn.gradcheck import check_module, gradcheck
from minicnn.ops import norm as N

DTYPES = [np.float64, np.float32]
TOL = {np.dtype("float64"): dict(rtol=1e-10, atol=1e-10), np.dtype("float32"): dict(rtol=1e-5, atol=1e-5)}
seeds = st.integers(0, 2**32 - 1)


def assert_same(ours, ref, dtype=None):
    """ours (a minicnn Tensor) has dtype, ref's shape and ref's values. torch runs in float64 on the same
    values: a float32 result is compared with the exact one, not with one float32 rounding of it (torch's
    float32 layer_norm gradient of two nearly equal values is off by 1e-4, minicnn's by 1e-7)."""
    dtype = np.dtype(dtype or str(ref.dtype).replace("torch.", ""))
    assert ours.dtype == dtype, f"dtype {ours.dtype}, expected {dtype}"
    assert tuple(ours.shape) == tuple(ref.shape), f"shape {tuple(ours.shape)}, torch gives {tuple(ref.shape)}"
    np.testing.assert_allclose(to_numpy(ours.array), ref.detach().numpy(), **TOL[dtype])


def twin(ours, theirs, seed):
    """Give the torch layer the same (random, so that a mixed-up channel shows) parameters as ours."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            value = (1 + 0.5 * rng.standard_normal(p.shape)).astype(p.dtype)
            p.array[...] = to_device(value)
            q.copy_(torch.tensor(value.astype(np.float64)))


def run_both(ours, theirs, x, seed):
    """Forward and backward (a random upstream gradient) through ours and through torch's layer (float64):
    compare the output and the gradients of the input and of every parameter."""
    xt, xr = mc.tensor(to_device(x), requires_grad=True), torch.tensor(x.astype(np.float64), requires_grad=True)
    out, ref = ours(xt), theirs(xr)
    assert_same(out, ref, x.dtype)
    dout = np.random.default_rng(seed + 1).standard_normal(ref.shape).astype(x.dtype)
    out.backward(mc.tensor(to_device(dout)))
    ref.backward(torch.tensor(dout.astype(np.float64)))
    assert_same(xt.grad, xr.grad, x.dtype)
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert p.grad is not None, f"torch gives {name} a gradient, minicnn gives none"
        assert_same(p.grad, q.grad, x.dtype)


def well_conditioned(x, axes):
    """Each group of values that share a mean spreads enough for float32: x - mean loses about
    |x| * 6e-8 / std of its relative accuracy, which for two nearly equal values is all of it."""
    return x.dtype == np.float64 or bool((x.std(axis=axes) > 0.05 * (1 + np.abs(x).max())).all())


@st.composite
def batch_norm_cases(draw):
    """(layer name, input shape, affine, bias): (N, C), (N, C, L) or (N, C, H, W), more than one value per channel."""
    kind = draw(st.sampled_from(["1d", "1d_seq", "2d"]))
    N, C = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    spatial = {"1d": (), "1d_seq": (draw(st.integers(1, 5)),), "2d": (draw(st.integers(1, 4)), draw(st.integers(1, 4)))}
    shape = (N, C) + spatial[kind]
    assume(np.prod(shape) // C > 1)
    affine = draw(st.booleans())
    return ("BatchNorm2d" if kind == "2d" else "BatchNorm1d"), shape, affine, affine and draw(st.booleans())


# -- BatchNorm ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25)
@given(case=batch_norm_cases(), seed=seeds, scale=st.sampled_from([1.0, 10.0]), offset=st.sampled_from([0.0, 3.0]),
       eps=st.sampled_from([1e-5, 1e-3, 0.1]))
def test_batch_norm_training_value_and_grads_match_torch(backend, dtype, case, seed, scale, offset, eps):
    name, shape, affine, bias = case
    ours = getattr(nn, name)(shape[1], eps=eps, affine=affine, bias=bias).to(dtype=dtype)
    theirs = getattr(torch.nn, name)(shape[1], eps=eps, affine=affine, bias=bias).double()
    twin(ours, theirs, seed)
    x = (np.random.default_rng(seed).standard_normal(shape) * scale + offset).astype(dtype)
    assume(well_conditioned(x, (0,) + tuple(range(2, x.ndim))))
    run_both(ours, theirs, x, seed)
    assert_same(ours.running_mean, theirs.running_mean, dtype)
    assert_same(ours.running_var, theirs.running_var, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(case=batch_norm_cases(), seed=seeds, track=st.booleans())
def test_batch_norm_eval_value_and_grads_match_torch(backend, dtype, case, seed, track):
    name, shape, affine, bias = case
    ours = getattr(nn, name)(shape[1], affine=affine, bias=bias, track_running_stats=track).to(dtype=dtype)
    theirs = getattr(torch.nn, name)(shape[1], affine=affine, bias=bias, track_running_stats=track).double()
    twin(ours, theirs, seed)
    rng = np.random.default_rng(seed)
    if track:  # running statistics far from 0 and 1, so that using the wrong ones shows
        mean, var = rng.standard_normal(shape[1]).astype(dtype), rng.uniform(0.5, 2, shape[1]).astype(dtype)
        ours.running_mean.array[...], ours.running_var.array[...] = to_device(mean), to_device(var)
        theirs.running_mean.copy_(torch.tensor(mean.astype(np.float64)))
        theirs.running_var.copy_(torch.tensor(var.astype(np.float64)))
    ours.eval(), theirs.eval()
    x = rng.standard_normal(shape).astype(dtype)
    assume(track or well_conditioned(x, (0,) + tuple(range(2, x.ndim))))  # without running stats: batch stats
    run_both(ours, theirs, x, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15, deadline=None)
@given(case=batch_norm_cases(), seed=seeds, big=st.booleans())
def test_batch_norm_eval_under_no_grad_folds_to_one_scale_and_shift_and_matches_torch(backend, dtype, case, seed,
                                                                                       big):
    """Nothing recorded (no_grad): the output alone, x * a + b per channel, cut over the channels on
    threads when big (a shape of at least parallel.MIN_COMPUTE values). After training steps, so the
    running statistics it reads are the ones the steps left, as torch's."""
    name, shape, affine, bias = case
    if big:
        shape = (64, shape[1]) + (32,) * (len(shape) - 2) if len(shape) > 2 else (40000, shape[1])
    ours = getattr(nn, name)(shape[1], affine=affine, bias=bias).to(dtype=dtype)
    theirs = getattr(torch.nn, name)(shape[1], affine=affine, bias=bias).double()
    twin(ours, theirs, seed)
    rng = np.random.default_rng(seed)
    for _ in range(2):  # training steps move the running statistics away from 0 and 1
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        ours(mc.from_numpy(x))
        theirs(torch.from_numpy(x.astype(np.float64)))
    ours.eval(), theirs.eval()
    x = rng.standard_normal(shape).astype(dtype)
    with mc.no_grad():
        y = ours(mc.from_numpy(x))
    with mc.set_impl("plain"), mc.no_grad():
        plain = ours(mc.from_numpy(x))
    assert y._node is None
    assert_same(y, theirs(torch.from_numpy(x.astype(np.float64))), dtype)
    np.testing.assert_allclose(to_numpy(y.array), to_numpy(plain.array), **TOL[np.dtype(dtype)])
    ours.train()  # and back to training: the batch's statistics again
    z = ours(mc.from_numpy(x))
    assert_same(z, theirs.train()(torch.from_numpy(x.astype(np.float64))), dtype)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), C=st.integers(1, 5), H=st.integers(1, 4), W=st.integers(1, 4), affine=st.booleans(),
       bias=st.booleans(), threads=st.integers(1, 3), dtype=st.sampled_from(DTYPES), seed=seeds)
def test_batch_norm_eval_fast_path_cut_over_channels_matches_the_plain_path_and_torch(n, C, H, W, affine, bias,
                                                                                     threads, dtype, seed):
    """The eval forward as one fused scale and shift (its channels cut over threads even when tiny)
    gives the plain path's and torch's output and gradients, with its cache holding x and the
    statistics instead of xhat."""
    from minicnn.ops import parallel
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, C, H, W)) * 2 + 1).astype(dtype)
    mean, var = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    gamma = rng.standard_normal(C).astype(dtype) if affine else None
    beta = rng.standard_normal(C).astype(dtype) if affine and bias else None
    dout = rng.standard_normal(x.shape).astype(dtype)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parallel, "MIN_COMPUTE", 1)
        mc.set_num_threads(threads)
        try:
            out, cache = N.batch_norm_inference(x, gamma, beta, mean, var)
            grads = N.batch_norm_inference_backward(dout, cache)
        finally:
            mc.set_num_threads(2)
    assert isinstance(cache, N.BatchNormInferenceCache) and cache.x is x
    with mc.set_impl("plain"):
        want_out, want_cache = N.batch_norm_inference(x, gamma, beta, mean, var)
        want = N.batch_norm_inference_backward(dout, want_cache)
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(out, want_out, **tol)
    assert out.dtype == dtype
    for g, w in zip(grads, want):
        assert (g is None) == (w is None)
        if g is not None:
            assert g.dtype == dtype
            np.testing.assert_allclose(g, w, **tol)
    leaves = [torch.tensor(a.astype(np.float64), requires_grad=True) if a is not None else None for a in (x, gamma, beta)]
    ref = TF.batch_norm(leaves[0], torch.tensor(mean.astype(np.float64)), torch.tensor(var.astype(np.float64)),
                        leaves[1], leaves[2], training=False)
    ref.backward(torch.tensor(dout.astype(np.float64)))
    np.testing.assert_allclose(out, ref.detach().numpy(), **tol)
    for g, t in zip(grads, leaves):
        if t is not None:
            np.testing.assert_allclose(g, t.grad.numpy(), **tol)


def test_an_eval_batch_norm_backward_uses_the_statistics_of_its_forward_and_sees_x_changed_in_place():
    """The fast eval forward keeps a copy of the running mean: a training step between an eval
    forward and its backward (which updates the running statistics in place) does not change that
    backward; and x changed in place after the forward is torch's in-place error, not a wrong dgamma."""
    rng = np.random.default_rng(4)
    layer = nn.BatchNorm2d(3).double()
    layer.weight.data = mc.tensor(rng.standard_normal(3))
    layer.running_mean.array[...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 3, 4, 4))
    layer.eval()
    xt = mc.tensor(x, requires_grad=True)
    out = layer(xt)
    want_dgamma = ((x - layer.running_mean.array.reshape(1, 3, 1, 1)) / np.sqrt(layer.running_var.array.reshape(1, 3, 1, 1)
                                                                                + layer.eps)).sum(axis=(0, 2, 3))
    layer.train()
    layer(mc.tensor(rng.standard_normal((2, 3, 4, 4)) + 5))  # moves running_mean in place
    out.sum().backward()
    np.testing.assert_allclose(layer.weight.grad.array, want_dgamma, rtol=1e-10)
    layer.eval()
    layer.zero_grad()
    xt = mc.tensor(x.copy(), requires_grad=True)
    y = xt * 1.0
    out = layer(y)
    with mc.no_grad():
        y.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


@pytest.mark.parametrize("name, shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)),
                                         ("BatchNorm2d", (4, 3, 2, 3))])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batch_norm_running_statistics_over_several_steps_and_eval_outputs_match_torch(name, shape, momentum):
    ours = getattr(nn, name)(shape[1], momentum=momentum).double()
    theirs = getattr(torch.nn, name)(shape[1], momentum=momentum).double()
    rng = np.random.default_rng(0)
    for step in range(1, 5):
        x = rng.standard_normal(shape) * (1 + step) + step
        assert_same(ours(mc.tensor(x)), theirs(torch.tensor(x)))
        assert_same(ours.running_mean, theirs.running_mean)
        assert_same(ours.running_var, theirs.running_var)
        assert ours.num_batches_tracked.dtype == np.int64 and ours.num_batches_tracked.shape == ()
        assert int(ours.num_batches_tracked.item()) == int(theirs.num_batches_tracked) == step
    ours.eval(), theirs.eval()
    x = rng.standard_normal(shape)
    assert_same(ours(mc.tensor(x)), theirs(torch.tensor(x)))
    assert int(ours.num_batches_tracked.item()) == 4  # eval counts nothing


def test_batch_norm_momentum_none_is_the_plain_average_of_the_batches():
    bn = nn.BatchNorm1d(2, momentum=None).double()
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((5, 2)) for _ in range(3)]
    for x in batches:
        bn(mc.tensor(x))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), np.mean([b.var(0, ddof=1) for b in batches], axis=0),
                               rtol=1e-12)  # the unbiased variance, as torch keeps it


def test_batch_norm_updates_its_buffers_in_place_and_not_under_the_tape():
    bn = nn.BatchNorm2d(3)
    mean, var = bn.running_mean.array, bn.running_var.array
    x = mc.randn(4, 3, 2, 2, requires_grad=True)
    with mc.no_grad():
        bn(x)
    assert bn.running_mean.array is mean and bn.running_var.array is var  # the same arrays, updated
    assert bn.running_mean.array.any() and not bn.running_mean.requires_grad
    assert int(bn.num_batches_tracked.item()) == 1


@pytest.mark.parametrize("affine, track", [(True, True), (False, True), (True, False), (False, False)])
def test_batch_norm_state_dict_keys_and_buffers_are_torchs(affine, track):
    for name in ("BatchNorm1d", "BatchNorm2d"):
        ours, theirs = getattr(nn, name)(3, affine=affine, track_running_stats=track), \
            getattr(torch.nn, name)(3, affine=affine, track_running_stats=track)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
        assert repr(ours) == repr(theirs)


def test_batch_norm_loads_a_torch_state_dict_and_then_gives_torchs_eval_outputs():
    theirs = torch.nn.BatchNorm2d(3)
    torch.manual_seed(0)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-1, 1)
    for _ in range(3):
        theirs(torch.randn(4, 3, 5, 5) * 2 + 1)
    theirs.eval()
    ours = nn.BatchNorm2d(3)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert int(ours.num_batches_tracked.item()) == 3 and ours.num_batches_tracked.dtype == np.int64
    ours.eval()
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 4)).astype(np.float32)
    assert_same(ours(mc.tensor(x)), theirs(torch.tensor(x)))


def test_batch_norm_without_running_stats_uses_batch_statistics_in_eval_too():
    ours, theirs = nn.BatchNorm2d(2, track_running_stats=False).eval(), torch.nn.BatchNorm2d(
        2, track_running_stats=False).eval()
    x = np.random.default_rng(3).standard_normal((3, 2, 2, 2)) * 5 + 2
    assert_same(ours.double()(mc.tensor(x)), theirs.double()(torch.tensor(x)))


@pytest.mark.parametrize("name, shape", [("BatchNorm2d", (1, 3, 1, 1)), ("BatchNorm1d", (1, 3)),
                                         ("BatchNorm1d", (1, 3, 1))])
def test_batch_norm_of_one_value_per_channel_in_training_is_torchs_error_and_counts_nothing(name, shape):
    ours = getattr(nn, name)(3)
    with pytest.raises(ValueError) as torch_error:
        getattr(torch.nn, name)(3)(torch.zeros(shape))
    with pytest.raises(ValueError) as our_error:
        ours(mc.zeros(*shape))
    expected = str(torch_error.value).replace("torch.Size", "minicnn.Size")
    assert str(our_error.value) == expected
    assert int(ours.num_batches_tracked.item()) == 0 and not ours.running_mean.array.any()
    ours.eval()(mc.zeros(*shape))  # eval uses the running statistics: one value is fine, as torch


@pytest.mark.parametrize("call, error, message", [
    (lambda: nn.BatchNorm2d(3, eps=-1e-5), ValueError, "eps must be a number >= 0"),
    (lambda: nn.BatchNorm2d(3, momentum=1.5), ValueError, r"momentum must be a number in \[0, 1\]"),
    (lambda: nn.BatchNorm2d(0), ValueError, "num_features must be a positive int"),
    (lambda: nn.BatchNorm2d(3)(mc.zeros(2, 3, 4)), ValueError, r"expected 4D input \(got 3D input\)"),
    (lambda: nn.BatchNorm1d(3)(mc.zeros(2, 3, 4, 4)), ValueError, r"expected 2D or 3D input \(got 4D input\)"),
    (lambda: nn.BatchNorm2d(3)(mc.zeros(2, 4, 2, 2)), ValueError, "expected 3 channels"),
    (lambda: nn.BatchNorm2d(3)(mc.zeros(2, 3, 2, 2, dtype=mc.float64)), TypeError,
     "the input is float64 but the layer is float32"),
    (lambda: nn.BatchNorm2d(3, affine=False)(mc.zeros(2, 3, 2, 2, dtype=mc.float64)), TypeError,
     "the input is float64 but the layer is float32"),
    (lambda: nn.GroupNorm(2, 3), ValueError, r"num_channels \(3\) must be divisible by num_groups \(2\)"),
    (lambda: nn.GroupNorm(0, 3), ValueError, "num_groups must be a positive int"),
    (lambda: nn.GroupNorm(2, 4, eps=-1), ValueError, "eps must be a number >= 0"),
    (lambda: nn.GroupNorm(2, 4)(mc.zeros(2, 6, 3)), ValueError, r"expected input of shape \(N, 4, \*\)"),
    (lambda: F.group_norm(mc.zeros(2, 3, 5), 2), ValueError,
     "Expected number of channels in input to be divisible by num_groups"),
    (lambda: nn.LayerNorm(4)(mc.zeros(2, 3)), ValueError,
     r"Given normalized_shape=\[4\], expected input with shape \[\*, 4\], but got input of size\[2, 3\]"),
    (lambda: nn.LayerNorm([3, 4])(mc.zeros(4)), ValueError, r"expected input with shape \[\*, 3, 4\]"),
    (lambda: nn.LayerNorm(0), ValueError, "normalized_shape must be a positive int"),
    (lambda: nn.LayerNorm(4, eps=-0.1), ValueError, "eps must be a number >= 0"),
    (lambda: nn.LocalResponseNorm(2)(mc.zeros(2, 3)), ValueError, r"Expected 3D or higher dimensionality input"),
    (lambda: nn.LocalResponseNorm(0), ValueError, "size must be a positive int"),
    (lambda: F.batch_norm(mc.zeros(2, 3), None, None), ValueError, "training=False normalises with running_mean"),
    (lambda: F.batch_norm(mc.zeros(2, 3), mc.zeros(4), mc.ones(4)), ValueError,
     "running_mean should contain 3 elements not 4"),
])
def test_bad_arguments_and_inputs_are_refused_with_a_clear_message(call, error, message):
    with pytest.raises(error, match=message):
        call()


# -- GroupNorm, LayerNorm, LocalResponseNorm ---------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(N=st.integers(1, 3), groups=st.integers(1, 3), per_group=st.integers(1, 3),
       spatial=st.lists(st.integers(1, 4), max_size=2), affine=st.booleans(), seed=seeds,
       eps=st.sampled_from([1e-5, 0.1]))
def test_group_norm_value_and_grads_match_torch(backend, dtype, N, groups, per_group, spatial, affine, seed, eps):
    C = groups * per_group
    assume(per_group * int(np.prod(spatial)) > 1)  # a group of one value normalises to 0 in both, checking little
    ours = nn.GroupNorm(groups, C, eps=eps, affine=affine).to(dtype=dtype)
    theirs = torch.nn.GroupNorm(groups, C, eps=eps, affine=affine).double()
    twin(ours, theirs, seed)
    x = (np.random.default_rng(seed).standard_normal((N, C, *spatial)) * 3 + 1).astype(dtype)
    assume(well_conditioned(x.reshape(N, groups, -1), (2,)))
    run_both(ours, theirs, x, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(lead=st.lists(st.integers(1, 3), max_size=2), normalized=st.lists(st.integers(1, 4), min_size=1, max_size=2),
       affine=st.booleans(), bias=st.booleans(), seed=seeds, eps=st.sampled_from([1e-5, 0.1]))
def test_layer_norm_value_and_grads_match_torch(backend, dtype, lead, normalized, affine, bias, seed, eps):
    assume(int(np.prod(normalized)) > 1)
    ours = nn.LayerNorm(normalized, eps=eps, elementwise_affine=affine, bias=bias).to(dtype=dtype)
    theirs = torch.nn.LayerNorm(normalized, eps=eps, elementwise_affine=affine, bias=bias).double()
    twin(ours, theirs, seed)
    x = (np.random.default_rng(seed).standard_normal((*lead, *normalized)) * 2 - 1).astype(dtype)
    assume(well_conditioned(x, tuple(range(len(lead), x.ndim))))
    run_both(ours, theirs, x, seed)
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(N=st.integers(1, 3), C=st.integers(1, 7), spatial=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       size=st.integers(1, 6), alpha=st.sampled_from([1e-4, 0.5, 2.0]), beta=st.sampled_from([0.75, 0.5, 2.0]),
       k=st.sampled_from([1.0, 2.0]), seed=seeds)
def test_local_response_norm_value_and_grad_match_torch(backend, dtype, N, C, spatial, size, alpha, beta, k, seed):
    ours, theirs = nn.LocalResponseNorm(size, alpha, beta, k), torch.nn.LocalResponseNorm(size, alpha, beta, k)
    x = (np.random.default_rng(seed).standard_normal((N, C, *spatial)) * 2).astype(dtype)
    run_both(ours, theirs, x, seed)


@pytest.mark.parametrize("make", [
    lambda nn: nn.GroupNorm(2, 4), lambda nn: nn.GroupNorm(1, 3, eps=1e-3, affine=False), lambda nn: nn.LayerNorm(4),
    lambda nn: nn.LayerNorm([2, 3], elementwise_affine=False), lambda nn: nn.LayerNorm(5, bias=False),
    lambda nn: nn.LocalResponseNorm(2), lambda nn: nn.LocalResponseNorm(5, 1e-3, 0.5, 2.0),
    lambda nn: nn.BatchNorm1d(4, momentum=None), lambda nn: nn.BatchNorm2d(3, affine=True, bias=False),
])
def test_norm_layer_repr_and_state_dict_keys_are_torchs(make):
    ours, theirs = make(nn), make(torch.nn)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (name, p), (_, q) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)  # torch's initial values


# -- the array pairs by finite differences -------------------------------------------------------


def _arrays(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


PAIRS = {  # name: (forward, backward, inputs (float64))
    "batch_norm_2d": (lambda x, g, b: N.batch_norm(x, g, b, 1e-5), N.batch_norm_backward,
                      _arrays(0, (3, 2, 2, 3), (2,), (2,))),
    "batch_norm_1d_no_affine": (lambda x: N.batch_norm(x, None, None, 1e-3), N.batch_norm_backward,
                                _arrays(1, (5, 3))),
    "batch_norm_seq_weight_only": (lambda x, g: N.batch_norm(x, g, None), N.batch_norm_backward,
                                   _arrays(2, (2, 3, 4), (3,))),
    "batch_norm_inference": (lambda x, g, b: N.batch_norm_inference(x, g, b, np.array([0.5, -1.0]),
                                                                    np.array([2.0, 0.3]), 1e-5),
                             N.batch_norm_inference_backward, _arrays(3, (2, 2, 3), (2,), (2,))),
    "group_norm": (lambda x, g, b: N.group_norm(x, 2, g, b), N.group_norm_backward,
                   _arrays(4, (2, 4, 3), (4,), (4,))),
    "group_norm_no_affine_2d": (lambda x: N.group_norm(x, 3, None, None, 0.1), N.group_norm_backward,
                                _arrays(5, (2, 3, 2, 2))),
    "layer_norm": (lambda x, g, b: N.layer_norm(x, (3, 2), g, b), N.layer_norm_backward,
                   _arrays(6, (2, 3, 2), (3, 2), (3, 2))),
    "layer_norm_no_affine": (lambda x: N.layer_norm(x, (4,)), N.layer_norm_backward, _arrays(7, (3, 4))),
    "local_response_norm": (lambda x: N.local_response_norm(x, 3, 0.5, 0.75, 1.0), N.local_response_norm_backward,
                            _arrays(8, (2, 5, 2, 2))),
    "local_response_norm_even_size": (lambda x: N.local_response_norm(x, 4, 1.0, 2.0, 2.0),
                                      N.local_response_norm_backward, _arrays(9, (1, 6, 3))),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_norm_pair_passes_gradcheck_in_float64(name):
    forward, backward, inputs = PAIRS[name]
    result = gradcheck(forward, backward, [a.copy() for a in inputs])
    assert result.ok(1e-6), f"{name}: {result}"


def test_batch_norm_pair_cache_carries_the_batch_statistics():
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2))
    _, cache = N.batch_norm(x)
    np.testing.assert_allclose(cache.mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(cache.var, x.var(axis=(0, 2, 3)), rtol=1e-12)  # biased: the one it normalises by


def test_batch_norm_matches_torch_functional_with_explicit_running_statistics():
    x = np.random.default_rng(4).standard_normal((5, 3, 2))
    mean, var = mc.zeros(3, dtype=mc.float64), mc.ones(3, dtype=mc.float64)
    tmean, tvar = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    assert_same(F.batch_norm(mc.tensor(x), mean, var, training=True, momentum=0.3),
                TF.batch_norm(torch.tensor(x), tmean, tvar, training=True, momentum=0.3))
    assert_same(mean, tmean)
    assert_same(var, tvar)


def test_a_network_of_norm_layers_passes_check_module_through_autograd():
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.GroupNorm(2, 4), nn.PReLU(4),
                        nn.LocalResponseNorm(3, alpha=0.5), nn.LayerNorm([4, 3])).double()
    rng = np.random.default_rng(0)
    for p in net.parameters():  # away from their initial ones and zeros
        p.array[...] = 1 + 0.5 * rng.standard_normal(p.shape)
    x = np.random.default_rng(1).standard_normal((3, 2, 4, 3))
    result = check_module(net, x)
    assert result.ok(1e-6), str(result)
