"""Small corners where minicnn once parted from torch 2.13, each pinned down: where's and norm's
gradients at the edges, pow with a tensor exponent or a number base, reductions over dim=(),
integer dtypes through minimum, topk, relu and //, NumPy scalars in arithmetic, assigning over a
Parameter, uint8 masks, and dims out of range.

Each behaviour has a test against a plain NumPy (or hand-worked) expectation, which runs without
torch, and one against torch itself, skipped with a reason where torch is not installed.
float64 gradients are also checked by finite differences (minicnn.gradcheck).
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minicnn as mc
from minicnn import nn
from minicnn.gradcheck import gradcheck
from minicnn.ops import tensor as T
from torch_compare import assert_same, torch_dtype_name  # noqa: E402

FLOATS = [np.float32, np.float64]


def _torch():
    return pytest.importorskip("torch", reason="torch is the oracle for this comparison (the NumPy-expectation "
                                               "tests beside it run without torch)")


def _same(ours, ref):
    """assert_same, and for float16 (which torch_compare has no tolerance for) the dtype and 1e-3."""
    if str(ref.dtype) != "torch.float16":
        return assert_same(ours, ref)
    assert ours.dtype == np.float16
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-3)


def _leaves(torch, *arrays):
    """The same float arrays as minicnn and torch leaves that require grad."""
    ours = [mc.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def _values(dtype, lo=-3.0, hi=3.0, special=(0.0, 1.0, -1.0, 2.0)):
    """Finite floats of dtype, often one of a few values that make ties and edges."""
    width = 32 if dtype == np.float32 else 64
    return st.one_of(st.sampled_from(special), st.floats(lo, hi, width=width))


# -- 1. where: the unselected branch gets exactly 0 ----------------------------------------------


@settings(max_examples=30)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3), seed=st.integers(0, 2**16))
def test_where_backward_gives_exactly_zero_to_the_unselected_branch_even_for_inf_and_nan(shapes, seed):
    rng = np.random.default_rng(seed)
    cond_shape, a_shape, b_shape = shapes.input_shapes
    cond = rng.random(cond_shape) < 0.5
    out_shape = shapes.result_shape
    dout = rng.choice(np.array([np.inf, -np.inf, np.nan, 1.5]), size=out_shape)
    a = mc.tensor(rng.standard_normal(a_shape), requires_grad=True)
    b = mc.tensor(rng.standard_normal(b_shape), requires_grad=True)
    mc.where(mc.tensor(cond), a, b).backward(mc.tensor(dout))
    expect_a = np.where(cond, dout, 0.0)
    expect_b = np.where(cond, 0.0, dout)
    # summed back over broadcast axes: a 0 from the other branch never turns into NaN
    np.testing.assert_array_equal(a.grad.numpy(), T.unbroadcast(expect_a, a_shape))
    np.testing.assert_array_equal(b.grad.numpy(), T.unbroadcast(expect_b, b_shape))


def test_where_backward_matches_torch_for_inf_and_nan_gradients():
    torch = _torch()
    cond = np.array([True, False, True, False])
    dout = np.array([np.inf, np.nan, -np.inf, np.inf], np.float32)
    (a, b), (ta, tb) = _leaves(torch, np.ones(4, np.float32), np.ones(4, np.float32))
    mc.where(mc.tensor(cond), a, b).backward(mc.tensor(dout))
    torch.where(torch.tensor(cond), ta, tb).backward(torch.tensor(dout))
    assert_same(a.grad, ta.grad)
    assert_same(b.grad, tb.grad)


# -- 2. norm: its own pair, torch's signature, gradient 0 at 0 ----------------------------------


def test_norm_gradient_at_zero_is_zero_not_nan():
    x = mc.zeros(2, 3, requires_grad=True)
    x.norm().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 3), np.float32))
    y = mc.tensor([[3.0, 4.0], [0.0, 0.0]], requires_grad=True)
    y.norm(dim=1).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


def _norm_case(draw_dtype=st.sampled_from(FLOATS)):
    @st.composite
    def case(draw):
        dtype = draw(draw_dtype)
        x = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), elements=_values(dtype)))
        if draw(st.booleans()):
            x[0] = 0  # a zero slice: a zero norm whenever dim leaves axis 0 alone
        nd = x.ndim
        dim = draw(st.one_of(st.none(), st.integers(-nd, nd - 1),
                             st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple)))
        return x, dim, draw(st.booleans()), draw(st.sampled_from([2, "fro", 1, math.inf]))
    return case()


def _np_norm(x, p, axis, keepdims):
    if p in (2, "fro"):
        return np.sqrt((x * x).sum(axis=axis, keepdims=keepdims))
    if p == 1:
        return np.abs(x).sum(axis=axis, keepdims=keepdims)
    return np.abs(x).max(axis=axis, keepdims=keepdims)


@settings(max_examples=40)
@given(case=_norm_case())
def test_norm_over_any_dim_with_keepdim_equals_the_numpy_formula(case):
    x, dim, keepdim, p = case
    out = mc.tensor(x).norm(p=p, dim=dim, keepdim=keepdim)
    expected = _np_norm(x, p, dim, keepdim)
    assert out.dtype == x.dtype and out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6 if x.dtype == np.float32 else 1e-12)


@settings(max_examples=40)
@given(case=_norm_case(), seed=st.integers(0, 2**16))
def test_norm_value_and_grad_match_torch_for_any_p_dim_and_keepdim(case, seed):
    torch = _torch()
    x, dim, keepdim, p = case
    (ours,), (theirs,) = _leaves(torch, x)
    out, ref = ours.norm(p=p, dim=dim, keepdim=keepdim), theirs.norm(p=p, dim=dim, keepdim=keepdim)
    assert_same(out, ref)
    dout = np.random.default_rng(seed).standard_normal(tuple(ref.shape)).astype(x.dtype)
    out.backward(mc.tensor(dout))
    ref.backward(torch.tensor(dout))
    assert_same(ours.grad, theirs.grad)


@settings(max_examples=30)
@given(case=_norm_case(st.just(np.float64)))
def test_norm_grad_matches_finite_differences_in_float64(case):
    x, dim, keepdim, p = case
    x = x.copy()
    axes = T._axes(mc._tensor._dim(dim, x.ndim), x.ndim)
    rest = [a for a in range(x.ndim) if a not in axes]
    slices = np.abs(x).transpose(rest + list(axes)).reshape(math.prod(x.shape[a] for a in rest), -1)
    if p in (2, "fro"):
        assume(np.sqrt((slices ** 2).sum(axis=1)).min() > 1e-3)  # away from the kink at 0
        p = 2
    elif p == 1:
        assume(slices.min() > 1e-3)  # |x| is smooth away from 0
    else:
        ranked = np.sort(slices, axis=1)
        gap = ranked[:, -1] - (ranked[:, -2] if ranked.shape[1] > 1 else 0)
        assume(gap.min() > 1e-3)  # one clear maximum |x|, itself away from 0
    result = gradcheck(lambda a: T.norm(a, p, mc._tensor._dim(dim, a.ndim), keepdim), T.norm_backward, [x])
    assert result.ok(1e-6), str(result)


def test_norm_refuses_an_unimplemented_p_and_an_integer_tensor_as_torch_does():
    x = mc.tensor([[3.0, -4.0], [1.0, 0.0]])
    with pytest.raises(NotImplementedError, match=r"norm: p=3 is not implemented"):
        x.norm(p=3)
    with pytest.raises(RuntimeError, match="Expected a floating point or complex tensor as input. Got int64"):
        mc.tensor([1, 2]).norm()


# -- 3. pow with a tensor exponent, and a number raised to a tensor ----------------------------


def test_pow_of_a_negative_base_to_a_tensor_exponent_is_the_real_power():
    a = mc.tensor([-2.0, -1.5, 0.0, 0.0, 2.0], requires_grad=True)
    b = mc.tensor([3.0, 2.0, 0.0, 2.0, 0.5], requires_grad=True)
    out = a ** b
    out.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), [-8.0, 2.25, 1.0, 0.0, math.sqrt(2)], rtol=1e-6)
    # da = b a^(b-1), 0 where b = 0; db = a^b log a, NaN for a < 0 and 0 where a = 0, b >= 0
    np.testing.assert_allclose(a.grad.numpy(), [12.0, -3.0, 0.0, 0.0, 0.5 / math.sqrt(2)], rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), [np.nan, np.nan, 0.0, 0.0, math.sqrt(2) * math.log(2)], rtol=1e-6)


def _pow_case():
    @st.composite
    def case(draw):
        dtype = draw(st.sampled_from(FLOATS))
        shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
        base = draw(hnp.arrays(dtype, shapes.input_shapes[0], elements=_values(dtype, special=(0.0, -2.0, -1.0, 2.0))))
        exponent = draw(hnp.arrays(dtype, shapes.input_shapes[1],
                                   elements=_values(dtype, -2.5, 2.5, special=(0.0, 2.0, 3.0, -1.0, 0.5))))
        return base, exponent
    return case()


@settings(max_examples=40)
@given(case=_pow_case(), seed=st.integers(0, 2**16))
def test_pow_with_a_tensor_exponent_matches_torch_in_value_and_both_gradients(case, seed):
    torch = _torch()
    (a, b), (ta, tb) = _leaves(torch, *case)
    out, ref = a ** b, ta ** tb
    assert_same(out, ref)
    dout = np.random.default_rng(seed).standard_normal(tuple(ref.shape)).astype(torch_dtype_name(ref.dtype))
    out.backward(mc.tensor(dout))
    ref.backward(torch.tensor(dout))
    assert_same(a.grad, ta.grad)
    assert_same(b.grad, tb.grad)


@settings(max_examples=30)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3), seed=st.integers(0, 2**16))
def test_pow_tensor_grads_match_finite_differences_in_float64(shapes, seed):
    rng = np.random.default_rng(seed)
    base = np.array(rng.uniform(0.5, 2.0, shapes.input_shapes[0]))  # a > 0: log(a) defined, both gradients finite
    exponent = np.array(rng.uniform(-2.0, 2.0, shapes.input_shapes[1]))
    result = gradcheck(T.pow_tensor, T.pow_tensor_backward, [base, exponent])
    assert result.ok(1e-6), str(result)
    # a negative base with an integer exponent: da is finite (db is NaN there, as log(a))
    negative = np.array(-base)  # (np.array: arithmetic on a 0-d array gives a scalar, which cannot be perturbed)
    whole = np.round(exponent) + 1.0
    result = gradcheck(lambda a: T.pow_tensor(a, whole), lambda d, c: T.pow_tensor_backward(d, c)[0], [negative])
    assert result.ok(1e-6), str(result)


def test_a_number_raised_to_a_tensor_has_torchs_value_and_dtype():
    x = mc.tensor([-1.0, 0.0, 1.0, 2.0])
    np.testing.assert_allclose(((-2.0) ** x).numpy(), [-0.5, 1.0, -2.0, 4.0])
    np.testing.assert_allclose((0 ** x).numpy(), [np.inf, 1.0, 0.0, 0.0])
    ints = mc.tensor([-1, 0, 1, 2])
    assert (2 ** ints).dtype == mc.int64 and (2 ** ints).tolist() == [0, 1, 2, 4]  # 2^-1 is 0 for integers
    assert (2.0 ** ints).dtype == mc.float32 and (2.0 ** ints).tolist() == [0.5, 1.0, 2.0, 4.0]
    assert (np.int64(2) ** ints).dtype == mc.int64
    assert (ints ** mc.tensor([-1, -1, 2, 2])).tolist() == [-1, 0, 1, 4]  # negative powers: 0 unless |a| = 1


BASES = [2, 2.0, -2.0, 0, 0.0, -2, 1, 0.5, np.float64(2.0), np.int64(2), np.float32(0.5)]
# (-2 ** a uint8 tensor is left out: a negative Python int does not fit uint8 in any minicnn operator,
# an OverflowError, where torch wraps it around; that is not pow's to change)
RPOW_CASES = [(base, dtype) for dtype in ["float32", "float64", "int64", "uint8"] for base in BASES
              if not (dtype == "uint8" and isinstance(base, int) and base < 0)]


@pytest.mark.parametrize("base, dtype", RPOW_CASES, ids=[f"{b!r}-{d}" for b, d in RPOW_CASES])
def test_a_number_raised_to_a_tensor_matches_torch_in_value_dtype_and_grad(base, dtype):
    torch = _torch()
    values = np.array([-1.0, 0.0, 1.0, 2.0, 0.5]) if dtype.startswith("float") else np.array([0, 1, 2, 3])
    x = values.astype(dtype)
    grad = dtype.startswith("float")
    ours, theirs = mc.tensor(x, requires_grad=grad), torch.tensor(x, requires_grad=grad)
    out, ref = base ** ours, base ** theirs
    assert_same(out, ref)
    if grad:
        out.sum().backward()
        ref.sum().backward()
        assert_same(ours.grad, theirs.grad)


PAIRS = [("float32", "float64"), ("int64", "float32"), ("float32", "int64"), ("int64", "int64"), ("int32", "int64"),
         ("float16", "float32"), ("uint8", "int64"), ("float64", "float32")]


@pytest.mark.parametrize("zero_d", [False, True], ids=["vector", "0-d exponent"])
@pytest.mark.parametrize("pair", PAIRS, ids="-".join)
def test_pow_of_two_tensors_has_torchs_result_dtype(pair, zero_d):
    torch = _torch()
    a = np.array([2, 3]).astype(pair[0])
    b = (np.array(2) if zero_d else np.array([2, 1])).astype(pair[1])
    _same(mc.tensor(a) ** mc.tensor(b), torch.tensor(a) ** torch.tensor(b))


# -- 4. reductions over dim=() -----------------------------------------------------------------


REDUCTIONS = ["sum", "mean", "amax", "amin", "var", "std", "norm"]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("name", REDUCTIONS)
def test_a_reduction_over_an_empty_dim_tuple_reduces_every_dim(name, keepdim):
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    kwargs = {"dim": (), "keepdim": keepdim}
    out = getattr(mc.tensor(x), name)(**kwargs)
    expected = {"sum": x.sum(), "mean": x.mean(), "amax": x.max(), "amin": x.min(), "var": x.var(ddof=1),
                "std": x.std(ddof=1), "norm": np.sqrt((x * x).sum())}[name]
    assert out.shape == ((1, 1) if keepdim else ())
    np.testing.assert_allclose(out.numpy().reshape(()), expected, rtol=1e-6)


def test_sum_over_an_empty_dim_tuple_sends_the_gradient_to_every_cell():
    x = mc.arange(6.0).reshape(2, 3).detach().requires_grad_()
    x.sum(dim=()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3), np.float32))
    assert mc.tensor([[1, 2], [3, 4]]).sum(dim=[]).item() == 10


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("name", REDUCTIONS + ["sum-int"])
def test_a_reduction_over_an_empty_dim_tuple_matches_torch(name, keepdim):
    torch = _torch()
    x = np.arange(6).reshape(2, 3).astype(np.int64 if name == "sum-int" else np.float32)
    method = name.split("-")[0]
    assert_same(getattr(mc.tensor(x), method)(dim=(), keepdim=keepdim),
                getattr(torch.tensor(x), method)(dim=(), keepdim=keepdim))


# -- 5. integer and unsigned dtypes -----------------------------------------------------------


INTS = [np.uint8, np.int8, np.int16, np.int32, np.int64]


def _int_arrays(draw, dtype, shape, unique=False):
    info = np.iinfo(dtype)
    edges = st.sampled_from([int(info.min), int(info.max), 0, 1])  # where a negation wraps around
    return draw(hnp.arrays(dtype, shape, elements=st.one_of(edges, st.integers(int(info.min), int(info.max))),
                           unique=unique))


@settings(max_examples=30)
@given(data=st.data(), dtype=st.sampled_from(INTS), shape=hnp.array_shapes(max_dims=2, max_side=5))
def test_minimum_of_integers_never_wraps_around(data, dtype, shape):
    a, b = _int_arrays(data.draw, dtype, shape), _int_arrays(data.draw, dtype, shape)
    expected = np.minimum(a, b)
    ta, tb = mc.tensor(a), mc.tensor(b)
    for out in (mc.minimum(ta, tb), ta.min(tb), mc.min(ta, tb)):
        assert out.dtype == dtype
        np.testing.assert_array_equal(out.numpy(), expected)


def test_minimum_of_unsigned_bytes_keeps_uint8_and_the_true_minimum():
    out = mc.minimum(mc.tensor([0, 5, 200], dtype=mc.uint8), mc.tensor([3, 2, 100], dtype=mc.uint8))
    assert out.dtype == mc.uint8 and out.tolist() == [0, 2, 100]


@pytest.mark.parametrize("pair", [("uint8", "uint8"), ("int8", "uint8"), ("int32", "int64"), ("int64", "float32"),
                                  ("float32", "float32"), ("float64", "float64")], ids="-".join)
def test_minimum_matches_torch_in_value_dtype_and_tied_gradients(pair):
    torch = _torch()
    a = np.array([0, 5, 200, 7, 7]).astype(pair[0])
    b = np.array([3, 2, 100, 7, 1]).astype(pair[1])
    assert_same(mc.minimum(mc.tensor(a), mc.tensor(b)), torch.minimum(torch.tensor(a), torch.tensor(b)))
    assert_same(mc.tensor(a).min(mc.tensor(b)), torch.tensor(a).min(torch.tensor(b)))
    if pair[0] == pair[1] and pair[0].startswith("float"):
        (x, y), (tx, ty) = _leaves(torch, a, b)  # a tie at index 3: each side gets half
        mc.minimum(x, y).sum().backward()
        torch.minimum(tx, ty).sum().backward()
        assert_same(x.grad, tx.grad)
        assert_same(y.grad, ty.grad)


@settings(max_examples=30)
@given(data=st.data(), dtype=st.sampled_from(INTS), n=st.integers(1, 8), largest=st.booleans())
def test_topk_of_integers_orders_by_value_without_wrapping(data, dtype, n, largest):
    x = _int_arrays(data.draw, dtype, (n,), unique=True)
    k = data.draw(st.integers(1, n))
    values, indices = mc.tensor(x).topk(k, largest=largest)
    order = np.argsort(x)[::-1] if largest else np.argsort(x)
    assert values.dtype == dtype and indices.dtype == mc.int64
    np.testing.assert_array_equal(indices.numpy(), order[:k])
    np.testing.assert_array_equal(values.numpy(), x[order[:k]])


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int32", "int64"])
def test_topk_of_integers_matches_torch(dtype, largest):
    torch = _torch()
    info = np.iinfo(dtype)
    x = np.array([[info.min, 5, 3, info.max], [1, info.max, info.min, 2]], dtype=dtype)  # no ties: their order differs
    ours, theirs = mc.tensor(x).topk(3, dim=1, largest=largest), torch.tensor(x).topk(3, dim=1, largest=largest)
    assert_same(ours.values, theirs.values)
    assert_same(ours.indices, theirs.indices)


@pytest.mark.parametrize("dtype", INTS, ids=lambda d: np.dtype(d).name)
def test_relu_keeps_an_integer_dtype(dtype):
    x = np.array([-3, 0, 4]).astype(dtype)  # uint8: -3 is 253, positive, and kept
    for out in (mc.tensor(x).relu(), mc.relu(mc.tensor(x))):
        assert out.dtype == dtype
        np.testing.assert_array_equal(out.numpy(), np.maximum(x, 0))


def test_relu_refuses_a_bool_tensor_as_torch_does():
    with pytest.raises(RuntimeError, match="Boolean inputs not supported for relu"):
        mc.tensor([True, False]).relu()


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int32", "int64", "float32"])
def test_relu_matches_torch_for_every_dtype(dtype):
    torch = _torch()
    x = np.array([-3, 0, 4]).astype(dtype)
    assert_same(mc.tensor(x).relu(), torch.tensor(x).relu())
    assert_same(mc.relu(mc.tensor(x)), torch.relu(torch.tensor(x)))


@pytest.mark.parametrize("dtype", ["uint8", "int32", "int64"])
def test_integer_floor_division_by_zero_raises_as_torch_does(dtype):
    x = mc.tensor(np.array([5, 0, 3], dtype=dtype))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        x // mc.tensor(np.array([0, 1, 2], dtype=dtype))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        x // 0
    assert (x // 2).tolist() == [2, 0, 1] and (x // 2).dtype == dtype  # no zero: unchanged


def test_float_floor_division_by_zero_still_gives_inf_and_nan():
    out = mc.tensor([5.0, -1.0, 0.0]) // 0
    np.testing.assert_array_equal(out.numpy(), [np.inf, -np.inf, np.nan])
    assert (mc.tensor([5, 3]) // mc.tensor([0.0, 2.0])).tolist() == [np.inf, 1.0]


@pytest.mark.parametrize("divisor", ["tensor", "number"])
@pytest.mark.parametrize("dtype", ["uint8", "int32", "int64"])
def test_integer_floor_division_by_zero_matches_torch(dtype, divisor):
    torch = _torch()
    x = np.array([5, 0, 3], dtype=dtype)
    for lib in (mc, torch):
        d = lib.tensor(np.array([0, 1, 2], dtype=dtype)) if divisor == "tensor" else 0
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            lib.tensor(x) // d


# -- 6. NumPy scalars in arithmetic: torch's result dtypes ---------------------------------------


# (tensor dtype, expression, result dtype), as measured on torch 2.13: a NumPy scalar is a number
# (it does not widen the tensor), and a NumPy bool is read as a float.
SCALAR_TABLE = [
    ("float32", lambda t: t * np.float64(2), "float32"),
    ("float32", lambda t: np.float64(2) * t, "float32"),
    ("float32", lambda t: t + np.float16(2), "float32"),
    ("float16", lambda t: t * np.int64(2), "float16"),
    ("float16", lambda t: np.float64(2) - t, "float16"),
    ("int64", lambda t: t * np.float32(2), "float32"),
    ("int32", lambda t: np.float64(2) * t, "float32"),
    ("int32", lambda t: t + np.int64(2), "int32"),
    ("uint8", lambda t: t * np.int64(2), "uint8"),
    ("uint8", lambda t: t / np.int64(2), "float32"),
    ("int8", lambda t: np.int32(2) - t, "int8"),
    ("bool", lambda t: t + np.int64(2), "int64"),
    ("bool", lambda t: t * np.float64(2), "float32"),
    ("float32", lambda t: t ** np.float64(2), "float32"),
    ("int64", lambda t: t ** np.float64(2), "float32"),
    ("int64", lambda t: t ** np.int64(2), "int64"),
    ("int64", lambda t: np.int64(2) ** t, "int64"),
    ("uint8", lambda t: np.uint8(2) ** t, "uint8"),
    ("float32", lambda t: np.float64(2) ** t, "float32"),
    ("int64", lambda t: t * np.bool_(True), "float32"),
    ("uint8", lambda t: np.bool_(True) + t, "float32"),
    ("bool", lambda t: t + np.bool_(True), "float32"),
    ("int64", lambda t: t // np.bool_(True), "float32"),
    ("int64", lambda t: t ** np.bool_(True), "float32"),
    ("int64", lambda t: t // np.int64(2), "int64"),
]
SCALAR_IDS = [f"{row[0]}-{i}" for i, row in enumerate(SCALAR_TABLE)]


@pytest.mark.parametrize("dtype, expr, expected", SCALAR_TABLE, ids=SCALAR_IDS)
def test_numpy_scalar_operands_give_torchs_result_dtype(dtype, expr, expected):
    assert str(expr(mc.ones(3, dtype=dtype)).dtype) == expected


@pytest.mark.parametrize("dtype, expr, expected", SCALAR_TABLE, ids=SCALAR_IDS)
def test_the_numpy_scalar_table_is_what_torch_gives(dtype, expr, expected):
    torch = _torch()
    ref = expr(torch.ones(3, dtype=getattr(torch, dtype)))
    assert torch_dtype_name(ref.dtype) == expected
    _same(expr(mc.ones(3, dtype=dtype)), ref)


@pytest.mark.parametrize("scalar", [np.bool_(True), np.float64(2.0), np.int64(2)], ids=repr)
def test_where_with_a_numpy_scalar_branch_matches_torch(scalar):
    torch = _torch()
    cond, x = np.array([True, False, True]), np.array([1, 2, 3])
    assert_same(mc.where(mc.tensor(cond), scalar, mc.tensor(x)), torch.where(torch.tensor(cond), scalar, torch.tensor(x)))
    assert_same(mc.where(mc.tensor(cond), mc.tensor(x), scalar), torch.where(torch.tensor(cond), torch.tensor(x), scalar))


# -- 7. a Parameter is replaced only by a Parameter or None --------------------------------------


@pytest.mark.parametrize("value", [mc.randn(3, 2), mc.randn(3, 2, dtype=mc.float64), np.zeros((3, 2)), 3.0],
                         ids=["float32 tensor", "float64 tensor", "ndarray", "float"])
def test_assigning_a_non_parameter_over_a_parameter_raises_type_error(value):
    m = nn.Linear(2, 3)
    before = m.weight
    with pytest.raises(TypeError, match=r"cannot assign '.+' as parameter 'weight' \(minicnn.nn.Parameter or None "
                                        r"expected\)"):
        m.weight = value
    assert m.weight is before and [n for n, _ in m.named_parameters()] == ["weight", "bias"]


def test_a_parameter_can_still_be_replaced_by_a_parameter_or_none():
    m = nn.Linear(2, 3)
    m.weight = nn.Parameter(mc.zeros(3, 2))
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    m.bias = None
    assert m.bias is None and [n for n, _ in m.named_parameters()] == ["weight"]
    m.extra = mc.zeros(3)  # a plain tensor under a new name is an ordinary attribute
    assert [n for n, _ in m.named_parameters()] == ["weight"]


@pytest.mark.parametrize("make", [lambda lib: lib.randn(3, 2), lambda lib: np.zeros((3, 2)), lambda lib: 3.0],
                         ids=["tensor", "ndarray", "float"])
def test_assigning_over_a_parameter_raises_like_torch(make):
    torch = _torch()
    for lib in (mc, torch):
        m = lib.nn.Linear(2, 3)
        with pytest.raises(TypeError, match=r"cannot assign '.+' as parameter 'weight' \(.*Parameter or None expected"):
            m.weight = make(lib)
        m.weight = None
        assert m.weight is None


# -- 8. a uint8 index is a boolean mask -------------------------------------------------------


def _mask_case():
    @st.composite
    def case(draw):
        shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
        mask = draw(hnp.arrays(np.uint8, shape[:draw(st.integers(1, len(shape)))], elements=st.sampled_from([0, 1, 2])))
        return np.arange(math.prod(shape), dtype=np.float64).reshape(shape), mask
    return case()


@settings(max_examples=30)
@given(case=_mask_case())
def test_a_uint8_index_picks_like_a_bool_mask_with_torchs_warning(case):
    x, mask = case
    t = mc.tensor(x, requires_grad=True)
    with pytest.warns(UserWarning, match="indexing with dtype minicnn.uint8 is now deprecated"):
        out = t[mc.tensor(mask)]
    np.testing.assert_array_equal(out.detach().numpy(), x[mask.astype(bool)])
    out.sum().backward()
    expected = np.zeros_like(x)
    expected[mask.astype(bool)] = 1
    np.testing.assert_array_equal(t.grad.numpy(), expected)


@settings(max_examples=30)
@given(case=_mask_case())
def test_assigning_through_a_uint8_index_writes_like_a_bool_mask(case):
    x, mask = case
    picked = int(mask.astype(bool).sum()) * math.prod(x.shape[mask.ndim:])
    t = mc.tensor(x)
    values = -np.arange(1, picked + 1, dtype=np.float64).reshape((-1,) + x.shape[mask.ndim:])
    with pytest.warns(UserWarning, match="uint8 is now deprecated"):
        t[mc.tensor(mask)] = mc.tensor(values)
    expected = x.copy()
    expected[mask.astype(bool)] = values
    np.testing.assert_array_equal(t.numpy(), expected)


def test_a_uint8_index_in_a_tuple_and_a_0d_one_are_masks_too():
    x = np.arange(6.0).reshape(2, 3)
    with pytest.warns(UserWarning, match="uint8"):
        np.testing.assert_array_equal(mc.tensor(x)[:, mc.tensor([1, 0, 1], dtype=mc.uint8)].numpy(), x[:, [0, 2]])
    assert mc.tensor(x)[mc.tensor(1, dtype=mc.uint8)].shape == (1, 2, 3)  # as x[True]
    assert mc.tensor(x)[mc.tensor(0, dtype=mc.uint8)].shape == (0, 2, 3)


@settings(max_examples=20)
@given(case=_mask_case())
def test_a_uint8_index_matches_torch_in_values_grad_and_assignment(case):
    torch = _torch()
    x, mask = case
    (ours,), (theirs,) = _leaves(torch, x)
    with pytest.warns(UserWarning, match="uint8"):
        out = ours[mc.tensor(mask)]
    with pytest.warns(UserWarning, match="uint8"):
        ref = theirs[torch.tensor(mask)]
    assert_same(out, ref)
    out.sum().backward()
    ref.sum().backward()
    assert_same(ours.grad, theirs.grad)
    a, b = mc.tensor(x), torch.tensor(x)
    values = np.arange(float(ref.numel())).reshape(tuple(ref.shape))
    if values.size == 1:  # torch takes a one-element value for a number, and masked_fill_ refuses uint8
        with pytest.raises(RuntimeError, match="masked_fill_ only supports boolean masks"):
            b[torch.tensor(mask)] = torch.tensor(values)
    else:
        with pytest.warns(UserWarning, match="uint8"):
            a[mc.tensor(mask)] = mc.tensor(values)
        with pytest.warns(UserWarning, match="uint8"):
            b[torch.tensor(mask)] = torch.tensor(values)
        assert_same(a, b)


# -- 9. a dim out of range is an IndexError, in torch's words -------------------------------------


DIM_OPS = {
    "sum": lambda lib, x, d: x.sum(d),
    "mean": lambda lib, x, d: x.mean(d),
    "max": lambda lib, x, d: x.max(d),
    "min": lambda lib, x, d: x.min(d),
    "amax": lambda lib, x, d: x.amax(d),
    "amin": lambda lib, x, d: x.amin(d),
    "argmax": lambda lib, x, d: x.argmax(d),
    "argmin": lambda lib, x, d: x.argmin(d),
    "var": lambda lib, x, d: x.var(d),
    "std": lambda lib, x, d: x.std(d),
    "softmax": lambda lib, x, d: x.softmax(d),
    "log_softmax": lambda lib, x, d: x.log_softmax(d),
    "F.softmax": lambda lib, x, d: lib.nn.functional.softmax(x, d),
    "F.log_softmax": lambda lib, x, d: lib.nn.functional.log_softmax(x, d),
    "cat": lambda lib, x, d: lib.cat([x, x], d),
    "gather": lambda lib, x, d: x.gather(d, lib.zeros(2, 3, dtype=lib.int64)),
    "topk": lambda lib, x, d: x.topk(1, d),
    "norm": lambda lib, x, d: x.norm(dim=d),
    "stack": lambda lib, x, d: lib.stack([x, x], d),
}
TUPLE_OPS = {"sum", "mean", "amax", "amin", "var", "std", "norm"}
CASES = ([(name, d) for name in DIM_OPS if name != "stack" for d in [2, -3, 5]]
         + [(name, d) for name in TUPLE_OPS for d in [(0, 5), [1, -3]]]
         + [("stack", d) for d in [3, -4, 5]])  # stack makes a new dim: [-3, 2] for 2-d tensors


def _range_message(name, d):
    bad = d if isinstance(d, int) else [k for k in d if not -2 <= k <= 1][0]
    low, high = (-3, 2) if name == "stack" else (-2, 1)
    return rf"^Dimension out of range \(expected to be in range of \[{low}, {high}\], but got {bad}\)$"


@pytest.mark.parametrize("name, d", CASES, ids=[f"{n}-{d}" for n, d in CASES])
def test_a_dim_out_of_range_raises_index_error_with_torchs_message(name, d):
    x = mc.arange(6.0).reshape(2, 3)
    with pytest.raises(IndexError, match=_range_message(name, d)):
        DIM_OPS[name](mc, x, d)


@pytest.mark.parametrize("name, d", CASES, ids=[f"{n}-{d}" for n, d in CASES])
def test_a_dim_out_of_range_is_the_error_torch_raises(name, d):
    torch = _torch()
    with pytest.raises(IndexError, match=_range_message(name, d)):
        DIM_OPS[name](torch, torch.arange(6.0).reshape(2, 3), d)


@pytest.mark.parametrize("name", [n for n in DIM_OPS if n != "stack"])
def test_a_negative_dim_in_range_still_counts_from_the_end(name):
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32))
    a, b = DIM_OPS[name](mc, x, -1), DIM_OPS[name](mc, x, 1)
    a, b = (a[0], b[0]) if isinstance(a, tuple) else (a, b)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_0d_tensor_takes_dims_minus_1_and_0_only():
    z = mc.tensor(5.0)
    assert z.sum(0).item() == 5.0 and z.sum(-1).item() == 5.0
    with pytest.raises(IndexError, match=r"\[-1, 0\], but got 1"):
        z.sum(1)
