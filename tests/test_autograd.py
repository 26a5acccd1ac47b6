"""The tape (minicnn.autograd) against torch.autograd: graphs with fan-out and reuse, deep chains,
accumulation, freed graphs, the errors of backward(), no_grad/enable_grad, in-place checks,
and gradient checks by central finite differences in float64 through the tape.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.gradcheck import compare, numerical_gradient
from torch_compare import assert_same, seeds  # noqa: E402



def pair(array):
    """The same array as a minicnn leaf and a torch leaf, both requiring grad."""
    return mc.tensor(array, requires_grad=True), torch.tensor(array, requires_grad=True)


def normal(seed, shape, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- graphs: fan-out, residuals, a layer used twice, depth -----------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=15, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=seeds)
def test_a_tensor_used_three_times_gets_the_sum_of_its_three_gradients_as_torch(dtype, shape, seed):
    ours, theirs = pair(normal(seed, shape, dtype))
    (ours * ours.exp() + ours.sum() * ours).sum().backward()
    (theirs * theirs.exp() + theirs.sum() * theirs).sum().backward()
    assert_same(ours.grad, theirs.grad)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 4), features=st.integers(1, 5), seed=seeds)
def test_a_residual_add_passes_the_gradient_both_ways_as_torch(dtype, n, features, seed):
    x, w = normal(seed, (n, features), dtype), normal(seed + 1, (features, features), dtype)
    (ox, ow), (tx, tw) = zip(pair(x), pair(w))
    ((ox @ ow).tanh() + ox).pow(2).sum().backward()
    ((tx @ tw).tanh() + tx).pow(2).sum().backward()
    assert_same(ox.grad, tx.grad)
    assert_same(ow.grad, tw.grad)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_linear_layer_used_twice_in_one_forward_adds_both_gradients_as_torch(dtype):
    ours = nn.Linear(3, 3)
    theirs = torch.nn.Linear(3, 3).to(torch.float64 if dtype == np.float64 else torch.float32)
    if dtype == np.float64:
        ours.double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.detach().numpy()))
        theirs.bias.copy_(torch.tensor(ours.bias.detach().numpy()))
    ox, tx = pair(normal(0, (4, 3), dtype))
    ours(F.relu(ours(ox))).sum().backward()
    theirs(torch.relu(theirs(tx))).sum().backward()
    assert_same(ours.weight.grad, theirs.weight.grad)
    assert_same(ours.bias.grad, theirs.bias.grad)
    assert_same(ox.grad, tx.grad)


def test_a_chain_of_5000_ops_backpropagates_without_a_recursion_error():
    x = mc.tensor([0.5, -1.0], dtype=mc.float64, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 5000] * 2, rtol=1e-10)


# -- accumulation and freed graphs -------------------------------------------------------------------


def test_gradients_accumulate_across_two_backward_calls_into_the_leaves_as_torch():
    (ox, tx) = pair(normal(0, (3,)))
    for leaf in (ox, tx):
        (leaf * leaf).sum().backward()
        (leaf.exp()).sum().backward()
    assert_same(ox.grad, tx.grad)


def test_a_second_backward_through_a_freed_graph_raises():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_backward_that_accumulates_as_torch():
    ox, tx = pair(normal(0, (3,)))
    oy, ty = (ox * ox.tanh()).sum(), (tx * tx.tanh()).sum()
    oy.backward(retain_graph=True)
    ty.backward(retain_graph=True)
    oy.backward()
    ty.backward()
    assert_same(ox.grad, tx.grad)


# -- the errors of backward() -----------------------------------------------------------------------


def test_backward_of_a_non_scalar_without_a_gradient_raises():
    x = mc.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()


def test_backward_with_a_gradient_of_the_wrong_shape_names_both_shapes():
    x = mc.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"\(4,\).*\(3,\)"):
        (x * 2).backward(mc.ones(4))


def test_backward_with_a_gradient_of_the_wrong_dtype_names_both_dtypes():
    x = mc.ones(3, requires_grad=True)
    with pytest.raises(TypeError, match="float64.*float32"):
        (x * 2).backward(mc.ones(3, dtype=mc.float64))


def test_backward_of_a_tensor_that_requires_no_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (mc.ones(3) * 2).sum().backward()


# -- recording on and off -----------------------------------------------------------------------------


def test_no_grad_as_a_context_manager_records_nothing():
    x = mc.ones(3, requires_grad=True)
    with mc.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert mc.is_grad_enabled()


def test_no_grad_as_a_decorator_records_nothing():
    @mc.no_grad()
    def double(t):
        return t * 2

    y = double(mc.ones(3, requires_grad=True))
    assert not y.requires_grad and y.grad_fn is None
    assert mc.is_grad_enabled()


def test_enable_grad_inside_no_grad_records_again():
    x = mc.ones(3, requires_grad=True)
    with mc.no_grad():
        with mc.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and y.grad_fn is not None
    assert not z.requires_grad


def test_no_grad_restores_recording_after_an_exception():
    with pytest.raises(ValueError):
        with mc.no_grad():
            raise ValueError
    assert mc.is_grad_enabled()


def test_set_grad_enabled_false_records_nothing_in_its_block():
    x = mc.ones(3, requires_grad=True)
    with mc.set_grad_enabled(False):
        y = x * 2
    assert not y.requires_grad and mc.is_grad_enabled()


# -- in place ------------------------------------------------------------------------------------------


def test_an_in_place_op_on_a_leaf_that_requires_grad_raises_outside_no_grad():
    x = mc.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        x.add_(1)
    with mc.no_grad():
        x.add_(1)
    assert x.tolist() == [2.0, 2.0, 2.0]


def test_changing_in_place_an_input_saved_by_a_recorded_op_makes_backward_raise():
    w = mc.ones(3, requires_grad=True)
    x = mc.tensor([1.0, 2.0, 3.0])
    y = (w * x).sum()
    x.mul_(2)  # x was saved for dy/dw
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_changing_a_leaf_under_no_grad_after_its_use_makes_backward_raise_as_torch():
    for T in (torch, mc):
        w = T.ones(3, requires_grad=True)
        y = (w * w).sum()
        with T.no_grad():
            w.mul_(2)
        with pytest.raises(RuntimeError, match="modified by an inplace operation|modified by an in-place operation"):
            y.backward()


# -- which leaves get a .grad, and whose it is ---------------------------------------------------------


def test_a_leaf_with_requires_grad_false_gets_no_grad():
    c, w = mc.tensor([1.0, 2.0]), mc.tensor([3.0, 4.0], requires_grad=True)
    (c * w).sum().backward()
    assert c.grad is None
    assert w.grad.tolist() == [1.0, 2.0]


def test_two_leaves_that_received_one_gradient_array_have_independent_grads():
    a, b = mc.ones(3, requires_grad=True), mc.ones(3, requires_grad=True)
    (a + b).backward(mc.ones(3))
    a.grad.add_(5)
    assert b.grad.tolist() == [1.0, 1.0, 1.0]


def test_a_leaf_given_a_view_of_the_gradient_has_a_grad_of_its_own():
    a = mc.ones(2, 3, requires_grad=True)
    g = mc.ones(6)
    a.view(6).backward(g)
    g.add_(1)
    assert a.grad.tolist() == [[1.0] * 3] * 2


def test_backward_on_a_leaf_does_not_alias_the_callers_gradient_as_torch():
    x = mc.ones(3, requires_grad=True)
    g = mc.ones(3)
    x.backward(g)
    g.add_(1)
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_detach_stops_the_gradient_as_torch():
    ox, tx = pair(normal(0, (3,)))
    (ox.detach() * ox).sum().backward()
    (tx.detach() * tx).sum().backward()
    assert_same(ox.grad, tx.grad)


# -- gradient checks by central differences, through the tape -------------------------------------------


def gradcheck_tape(fn, *arrays, seed=0):
    """The tape's d(sum(fn(*x) * dout))/dx against central differences, for float64 arrays."""
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in arrays]
    leaves = [mc.from_numpy(a).requires_grad_() for a in arrays]
    out = fn(*leaves)
    dout = np.random.default_rng(seed).standard_normal(tuple(out.shape))
    out.backward(mc.tensor(dout))

    def loss():
        with mc.no_grad():
            return float((fn(*[mc.from_numpy(a) for a in arrays]).numpy() * dout).sum())

    analytic = {f"input{k}": leaf.grad.numpy() for k, leaf in enumerate(leaves)}
    numerical = {f"input{k}": numerical_gradient(loss, a) for k, a in enumerate(arrays)}
    result = compare(analytic, numerical)
    assert result.ok(1e-6), str(result)


class positive(tuple):
    """The shape of an input that must stay positive (a divisor, a log's or sqrt's argument, a weight)."""


GRADCHECKS = {
    "mul with broadcasting": (lambda a, b: a * b, [(3, 1, 4), (2, 1)]),
    "div with broadcasting": (lambda a, b: a / b, [(2, 3), positive((3,))]),
    "batched matmul": (lambda a, b: a @ b, [(2, 1, 3, 4), (3, 4, 2)]),
    "vector @ matrix": (lambda a, b: a @ b, [(4,), (4, 3)]),
    "pow 3 and sqrt": (lambda a: (a ** 3).abs().sqrt(), [positive((2, 3))]),
    "log and exp": (lambda a: a.log() * a.exp(), [positive((3, 2))]),
    "sum and mean over dims": (lambda a: a.sum(dim=(0, 2), keepdim=True) * a.mean(dim=1, keepdim=True), [(2, 3, 4)]),
    "max along a dim": (lambda a: a.max(dim=1).values, [(3, 5)]),
    "amax over a tuple": (lambda a: a.amax(dim=(0, 1)), [(3, 4, 2)]),
    "repeated integer index": (lambda a: a[mc.tensor([0, 2, 0, 0]), 1:], [(3, 4)]),
    "permute, flatten, expand": (lambda a: a.permute(2, 0, 1).flatten(1).unsqueeze(0).expand(2, 3, 6), [(2, 3, 3)]),
    "cat and stack": (lambda a, b: mc.stack([mc.cat([a, b], dim=1), mc.cat([b, a], dim=1)]), [(2, 3), (2, 3)]),
    "where and maximum": (lambda a, b: mc.where(a > 0, a * b, mc.maximum(a, b)), [(3, 4), (4,)]),
    "softmax and log_softmax": (lambda a: a.softmax(dim=1) * a.log_softmax(dim=0), [(3, 4)]),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, dilation=(1, 2)),
               [(2, 2, 5, 6), (3, 2, 2, 2), (3,)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, stride=2, padding=1), [(1, 2, 5, 5)]),
    "avg_pool2d without pad count": (lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), [(1, 2, 5, 4)]),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), [(1, 2, 5, 4)]),
    "cross_entropy with weight and smoothing": (
        lambda x: F.cross_entropy(x, mc.tensor([0, 2, -100, 1]), weight=mc.tensor([0.5, 2.0, 1.5], dtype=mc.float64),
                                  ignore_index=-100, label_smoothing=0.2), [(4, 3)]),
    "nll_loss summed": (lambda x: F.nll_loss(x, mc.tensor([1, 0, 1]), reduction="sum"), [(3, 2)]),
    "linear on 3-D input": (F.linear, [(2, 3, 4), (5, 4), (5,)]),
    "mse_loss": (lambda a, b: F.mse_loss(a, b), [(3, 4), (3, 4)]),
}


@pytest.mark.parametrize("name", GRADCHECKS)
def test_the_tape_gradient_matches_central_differences_in_float64(name):
    fn, specs = GRADCHECKS[name]
    arrays = [0.5 + np.abs(normal(k, shape)) if isinstance(shape, positive) else normal(k, shape)
              for k, shape in enumerate(specs)]
    gradcheck_tape(fn, *arrays)
