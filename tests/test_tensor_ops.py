"""minicnn.Tensor against torch.Tensor: every operation's value, dtype and gradient, on random
shapes drawn by hypothesis; dtype promotion; creation functions; torch.* functions; and the
Python protocol (len, iteration, __index__, item, numpy, casts).

Each comparison runs one function twice, `fn(mc, *leaves)` and `fn(torch, *leaves)`, so the same
line of code is checked in both libraries. float64 agrees to 1e-10; float32 to 1e-5 relative.
The value and gradient tests run on every available backend (NumPy; CuPy when a GPU answers).
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minicnn as mc
from minicnn.backend import to_device
from torch_compare import assert_same, seeds, torch_dtype_name  # noqa: E402

DTYPES = [np.float64, np.float32]


# -- helpers ---------------------------------------------------------------------------------------


def leaves(arrays):
    """The same arrays as minicnn leaves (on the active backend) and as torch leaves; floats require grad."""
    ours = [mc.tensor(to_device(a), requires_grad=a.dtype.kind == "f") for a in arrays]
    theirs = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    return ours, theirs


def check(fn, *arrays, seed=0):
    """fn(mc, *leaves) and fn(torch, *leaves) agree in value, and in the gradient of every leaf
    for a random upstream gradient. Returns both outputs."""
    ours, theirs = leaves(arrays)
    out, ref = fn(mc, *ours), fn(torch, *theirs)
    assert_same(out, ref)
    assert ref.requires_grad, "this check is for differentiable functions"
    dout = np.random.default_rng(seed).standard_normal(tuple(ref.shape)).astype(torch_dtype_name(ref.dtype))
    out.backward(mc.tensor(to_device(dout)))
    ref.backward(torch.tensor(dout))
    for o, t in zip(ours, theirs):
        if t.grad is None:
            assert o.grad is None
        else:
            assert o.grad is not None, "torch gives this leaf a gradient, minicnn gives none"
            assert_same(o.grad, t.grad)
    return out, ref


def normal(seed, shape, dtype, offset=0):
    return np.random.default_rng(seed + offset).standard_normal(shape).astype(dtype)


def away_from_zero(seed, shape, dtype, offset=0):
    """Random values with |v| >= 0.5 (safe divisors), of both signs."""
    x = np.random.default_rng(seed + offset).standard_normal(shape)
    return (np.sign(x) * (0.5 + np.abs(x))).astype(dtype)


def positive(seed, shape, dtype, offset=0):
    return (0.5 + np.abs(np.random.default_rng(seed + offset).standard_normal(shape))).astype(dtype)


shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)
broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=1, max_side=3)


@st.composite
def shape_and_dims(draw):
    """A shape and a dim for a reduction over it: an int or a tuple of distinct dims, some negative."""
    shape = draw(nonscalar_shapes)
    n = len(shape)
    axes = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    axes = [a - n if draw(st.booleans()) else a for a in axes]
    dim = axes[0] if len(axes) == 1 and draw(st.booleans()) else tuple(axes)
    return shape, dim


@st.composite
def shape_and_dim(draw, extra=0):
    """A shape and one dim of it (or of a result with `extra` more dims), possibly negative."""
    shape = draw(nonscalar_shapes)
    n = len(shape) + extra
    return shape, draw(st.integers(-n, n - 1))


# -- arithmetic --------------------------------------------------------------------------------------

BINARY = {
    "add": lambda T, a, b: a + b,
    "sub": lambda T, a, b: a - b,
    "mul": lambda T, a, b: a * b,
    "div": lambda T, a, b: a / b,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", BINARY)
@settings(max_examples=25, deadline=None)
@given(shapes=broadcast_pairs, seed=seeds)
def test_binary_arithmetic_and_its_grads_match_torch_under_broadcasting(backend, dtype, op, shapes, seed):
    (a_shape, b_shape), _ = shapes
    a = normal(seed, a_shape, dtype)
    b = away_from_zero(seed, b_shape, dtype, 1) if op == "div" else normal(seed, b_shape, dtype, 1)
    check(BINARY[op], a, b, seed=seed)


SCALAR_SIDES = {
    "t + 2.5": lambda T, x: x + 2.5,
    "2.5 + t": lambda T, x: 2.5 + x,
    "t - 1.5": lambda T, x: x - 1.5,
    "1.5 - t": lambda T, x: 1.5 - x,
    "t * -3.0": lambda T, x: x * -3.0,
    "-3.0 * t": lambda T, x: -3.0 * x,
    "t / 4.0": lambda T, x: x / 4.0,
    "4.0 / t": lambda T, x: 4.0 / x,
    "t * 2 (int)": lambda T, x: x * 2,
    "3 - t (int)": lambda T, x: 3 - x,
    "7 / t (int)": lambda T, x: 7 / x,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("expr", SCALAR_SIDES)
@settings(max_examples=10, deadline=None)
@given(shape=shapes, seed=seeds)
def test_arithmetic_with_a_python_scalar_on_either_side_matches_torch_and_keeps_the_dtype(backend, dtype, expr,
                                                                                            shape, seed):
    check(SCALAR_SIDES[expr], away_from_zero(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("exponent", [2, 3, 0, -1, -2, 0.5, 1.5, -0.5])
@settings(max_examples=10, deadline=None)
@given(shape=shapes, seed=seeds)
def test_pow_with_a_scalar_exponent_and_its_grad_match_torch(backend, dtype, exponent, shape, seed):
    x = away_from_zero(seed, shape, dtype) if isinstance(exponent, int) else positive(seed, shape, dtype)
    check(lambda T, x: x ** exponent, x, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10, deadline=None)
@given(shape=shapes, seed=seeds)
def test_unary_minus_and_its_grad_match_torch(backend, dtype, shape, seed):
    check(lambda T, x: -x, normal(seed, shape, dtype), seed=seed)


@st.composite
def matmul_shapes(draw):
    """Operand shapes for a @ b: vectors, matrices, and batches whose leading dims broadcast."""
    n, k, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    (batch_a, batch_b), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                                   max_side=3))
    kind = draw(st.sampled_from(["vec@vec", "vec@mat", "mat@vec", "mat@mat", "batch@batch", "batch@vec",
                                 "vec@batch"]))
    return {
        "vec@vec": ((k,), (k,)),
        "vec@mat": ((k,), (k, m)),
        "mat@vec": ((n, k), (k,)),
        "mat@mat": ((n, k), (k, m)),
        "batch@batch": (batch_a + (n, k), batch_b + (k, m)),
        "batch@vec": (batch_a + (n, k), (k,)),
        "vec@batch": ((k,), batch_b + (k, m)),
    }[kind]


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None)
@given(case=matmul_shapes(), seed=seeds)
def test_matmul_and_its_grads_match_torch_for_vectors_matrices_and_broadcast_batches(backend, dtype, case, seed):
    a_shape, b_shape = case
    check(lambda T, a, b: a @ b, normal(seed, a_shape, dtype), normal(seed, b_shape, dtype, 1), seed=seed)


# -- element-wise functions -------------------------------------------------------------------------

UNARY = {
    "exp": (lambda T, x: x.exp(), normal),
    "log": (lambda T, x: x.log(), positive),
    "sqrt": (lambda T, x: x.sqrt(), positive),
    "abs": (lambda T, x: x.abs(), away_from_zero),
    "clamp(-0.5, 0.7)": (lambda T, x: x.clamp(-0.5, 0.7), normal),
    "clamp(min=0.2)": (lambda T, x: x.clamp(min=0.2), normal),
    "clamp(max=-0.1)": (lambda T, x: x.clamp(max=-0.1), normal),
    "relu": (lambda T, x: x.relu(), away_from_zero),
    "sigmoid": (lambda T, x: x.sigmoid(), normal),
    "tanh": (lambda T, x: x.tanh(), normal),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", UNARY)
@settings(max_examples=10, deadline=None)
@given(shape=nonscalar_shapes, seed=seeds)
def test_elementwise_functions_and_their_grads_match_torch(backend, dtype, name, shape, seed):
    fn, values = UNARY[name]
    check(fn, values(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("name", list(UNARY))
def test_elementwise_functions_and_their_grads_match_torch_on_a_0d_tensor(name):
    fn, values = UNARY[name]
    check(fn, values(0, (), np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_clamp_passes_the_gradient_at_its_bounds_as_torch(dtype):
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=dtype)
    check(lambda T, x: x.clamp(-0.5, 0.5), x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_abs_has_gradient_zero_at_zero_as_torch(dtype):
    check(lambda T, x: x.abs(), np.array([-2.0, 0.0, 3.0], dtype=dtype))


# -- reductions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["sum", "mean"])
@settings(max_examples=25, deadline=None)
@given(case=shape_and_dims(), keepdim=st.booleans(), seed=seeds)
def test_sum_and_mean_over_dims_match_torch(backend, dtype, op, case, keepdim, seed):
    shape, dim = case
    check(lambda T, x: getattr(x, op)(dim=dim, keepdim=keepdim), normal(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["sum", "mean"])
@settings(max_examples=10, deadline=None)
@given(shape=shapes, seed=seeds)
def test_sum_and_mean_over_all_elements_match_torch(backend, dtype, op, shape, seed):
    check(lambda T, x: getattr(x, op)(), normal(seed, shape, dtype), seed=seed)


def test_an_in_place_op_on_a_0d_result_changes_it():
    total = mc.tensor([1.0, 2.0]).sum()
    total.add_(1)
    assert total.item() == 4.0
    assert isinstance(total.numpy(), np.ndarray)


def test_sum_of_an_integer_tensor_is_int64_and_mean_of_one_raises_as_torch():
    x = mc.tensor(np.arange(6, dtype=np.int32))
    assert x.sum().dtype == mc.int64 and x.sum().item() == 15
    with pytest.raises(RuntimeError, match="mean"):
        x.mean()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["max", "min"])
@settings(max_examples=25, deadline=None)
@given(case=shape_and_dim(), keepdim=st.booleans(), seed=seeds)
def test_max_and_min_along_a_dim_return_values_and_indices_like_torch(backend, dtype, op, case, keepdim, seed):
    shape, dim = case
    x = normal(seed, shape, dtype)  # continuous values: no ties, so the index is unambiguous
    (ours,), (theirs,) = leaves([x])
    result, ref = getattr(ours, op)(dim, keepdim), getattr(theirs, op)(dim, keepdim)
    values, indices = result
    assert result.values is values and result.indices is indices
    assert_same(values, ref.values)
    assert_same(indices, ref.indices)
    dout = normal(seed, tuple(ref.values.shape), dtype, 1)
    values.backward(mc.tensor(to_device(dout)))
    ref.values.backward(torch.tensor(dout))
    assert_same(ours.grad, theirs.grad)


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_and_min_along_a_dim_accept_dim_as_a_keyword_as_torch(op):
    x = normal(0, (3, 4), np.float64)
    result, ref = getattr(mc.tensor(x), op)(dim=1), getattr(torch.tensor(x), op)(dim=1)
    assert_same(result.values, ref.values)
    assert_same(result.indices, ref.indices)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["max", "min"])
@settings(max_examples=20, deadline=None)
@given(shape=shapes, seed=seeds)
def test_max_and_min_over_all_elements_share_the_gradient_among_ties_as_torch(backend, dtype, op, shape, seed):
    x = np.random.default_rng(seed).integers(0, 3, size=shape).astype(dtype)  # many ties
    check(lambda T, x: getattr(x, op)(), x, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["amax", "amin"])
@settings(max_examples=25, deadline=None)
@given(case=shape_and_dims(), keepdim=st.booleans(), seed=seeds)
def test_amax_and_amin_over_dims_share_the_gradient_among_ties_as_torch(backend, dtype, op, case, keepdim, seed):
    shape, dim = case
    x = np.random.default_rng(seed).integers(0, 3, size=shape).astype(dtype)
    check(lambda T, x: getattr(x, op)(dim=dim, keepdim=keepdim), x, seed=seed)


@pytest.mark.parametrize("op", ["argmax", "argmin"])
@settings(max_examples=25, deadline=None)
@given(case=shape_and_dim(), keepdim=st.booleans(), seed=seeds)
def test_argmax_and_argmin_along_a_dim_give_the_first_extreme_as_torch(backend, op, case, keepdim, seed):
    shape, dim = case
    x = np.random.default_rng(seed).integers(0, 3, size=shape).astype(np.float32)  # ties: the first one wins
    ours, ref = getattr(mc.tensor(to_device(x)), op)(dim=dim, keepdim=keepdim), getattr(torch.tensor(x), op)(
        dim=dim, keepdim=keepdim)
    assert_same(ours, ref)


@pytest.mark.parametrize("op", ["argmax", "argmin"])
@settings(max_examples=15, deadline=None)
@given(shape=shapes, seed=seeds)
def test_argmax_and_argmin_over_all_elements_index_the_flattened_tensor_as_torch(backend, op, shape, seed):
    x = np.random.default_rng(seed).integers(0, 3, size=shape).astype(np.float32)
    assert_same(getattr(mc.tensor(to_device(x)), op)(), getattr(torch.tensor(x), op)())


@pytest.mark.parametrize("op", ["max", "argmax", "amax"])
def test_a_nan_is_the_maximum_as_in_torch(op):
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, np.nan]])
    ours, ref = getattr(mc.tensor(x), op)(dim=1), getattr(torch.tensor(x), op)(dim=1)
    if op == "max":
        assert_same(ours.values, ref.values)
        assert_same(ours.indices, ref.indices)
    else:
        assert_same(ours, ref)


# -- reshaping ---------------------------------------------------------------------------------------


@st.composite
def reshape_cases(draw):
    """A shape and another with the same number of elements (its sides regrouped), maybe with a -1."""
    shape = draw(shapes)
    sides = draw(st.permutations(list(shape)))
    cuts = sorted(draw(st.lists(st.integers(0, len(sides)), max_size=3)))
    bounds = [0] + cuts + [len(sides)]
    new = [int(np.prod(sides[i:j])) for i, j in zip(bounds, bounds[1:])]
    if new and draw(st.booleans()):
        new[draw(st.integers(0, len(new) - 1))] = -1
    return shape, tuple(new)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["reshape", "view"])
@settings(max_examples=25, deadline=None)
@given(case=reshape_cases(), seed=seeds)
def test_reshape_and_view_and_their_grads_match_torch(backend, dtype, method, case, seed):
    shape, new = case
    check(lambda T, x: getattr(x, method)(*new), normal(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(shape=nonscalar_shapes, data=st.data(), seed=seeds)
def test_flatten_and_its_grad_match_torch_for_any_start_and_end_dim(backend, dtype, shape, data, seed):
    n = len(shape)
    start = data.draw(st.integers(-n, n - 1), label="start_dim")
    end = data.draw(st.integers(-n, n - 1).filter(lambda e: e % n >= start % n), label="end_dim")
    check(lambda T, x: x.flatten(start, end), normal(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(shape=nonscalar_shapes, data=st.data(), seed=seeds)
def test_permute_and_its_grad_match_torch(backend, dtype, shape, data, seed):
    dims = data.draw(st.permutations(range(len(shape))), label="dims")
    check(lambda T, x: x.permute(*dims), normal(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(shape=nonscalar_shapes, data=st.data(), seed=seeds)
def test_transpose_and_its_grad_match_torch(backend, dtype, shape, data, seed):
    n = len(shape)
    d0, d1 = data.draw(st.integers(-n, n - 1), label="dim0"), data.draw(st.integers(-n, n - 1), label="dim1")
    check(lambda T, x: x.transpose(d0, d1), normal(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=2), data=st.data(), seed=seeds)
def test_squeeze_and_its_grad_match_torch_with_and_without_dim(backend, dtype, shape, data, seed):
    n = len(shape)
    dim = data.draw(st.none() | st.integers(-n, n - 1), label="dim")
    check(lambda T, x: x.squeeze() if dim is None else x.squeeze(dim), normal(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(case=shape_and_dim(extra=1), seed=seeds)
def test_unsqueeze_and_its_grad_match_torch(backend, dtype, case, seed):
    shape, dim = case
    check(lambda T, x: x.unsqueeze(dim), normal(seed, shape, dtype), seed=seed)


@st.composite
def expand_cases(draw):
    """A shape with some sides 1, and a target that stretches those, keeps others (or says -1), adds lead dims."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    target = [draw(st.integers(1, 3)) if s == 1 else draw(st.sampled_from([s, -1])) for s in shape]
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    return shape, tuple(lead + target)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(case=expand_cases(), seed=seeds)
def test_expand_and_its_grad_match_torch(backend, dtype, case, seed):
    shape, target = case
    check(lambda T, x: x.expand(target), normal(seed, shape, dtype), seed=seed)


# -- indexing ------------------------------------------------------------------------------------------


@st.composite
def basic_indexes(draw):
    """A shape and a basic index into it: ints (maybe negative), slices with positive steps, None."""
    shape = draw(nonscalar_shapes)
    parts = []
    for n in shape[:draw(st.integers(1, len(shape)))]:
        kind = draw(st.sampled_from(["int", "slice", "full"]))
        if kind == "int":
            parts.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            bound = st.none() | st.integers(-n - 1, n + 1)
            parts.append(slice(draw(bound), draw(bound), draw(st.none() | st.integers(1, 3))))
        else:
            parts.append(slice(None))
        if draw(st.integers(0, 4)) == 0:
            parts.append(None)
    return shape, tuple(parts)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None)
@given(case=basic_indexes(), seed=seeds)
def test_basic_indexing_and_slicing_and_their_grads_match_torch(backend, dtype, case, seed):
    shape, index = case
    check(lambda T, x: x[index], normal(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15, deadline=None)
@given(shape=nonscalar_shapes, step=st.integers(1, 3), seed=seeds)
def test_negative_step_slicing_matches_torch_flip_then_slice(backend, dtype, shape, step, seed):
    """torch refuses negative steps; minicnn takes NumPy's meaning: x[::-k] is flip(x)[::k]."""
    x = normal(seed, shape, dtype)
    ours, theirs = leaves([x])
    out, ref = ours[0][::-step], theirs[0].flip(0)[::step]
    assert_same(out, ref)
    dout = normal(seed, tuple(ref.shape), dtype, 1)
    out.backward(mc.tensor(to_device(dout)))
    ref.backward(torch.tensor(dout))
    assert_same(ours[0].grad, theirs[0].grad)


INTEGER_INDEXES = {
    "x[idx]": lambda T, x, i, j: x[T.tensor(i.tolist())],
    "x[:, idx]": lambda T, x, i, j: x[:, T.tensor(j.tolist())],
    "x[idx, idx2]": lambda T, x, i, j: x[T.tensor(i.tolist()), T.tensor(j.tolist())],
    "x[idx[:, None], idx2]": lambda T, x, i, j: x[T.tensor(i.tolist())[:, None], T.tensor(j.tolist())],
    "x[list]": lambda T, x, i, j: x[i.tolist()],
    "x[idx, 1:]": lambda T, x, i, j: x[T.tensor(i.tolist()), 1:],
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", INTEGER_INDEXES)
@settings(max_examples=15, deadline=None)
@given(rows=st.integers(1, 4), cols=st.integers(2, 4), count=st.integers(5, 9), seed=seeds)
def test_integer_array_indexing_adds_the_gradients_of_repeated_indices_as_torch(backend, dtype, form, rows, cols,
                                                                                  count, seed):
    rng = np.random.default_rng(seed)
    i = rng.integers(-rows, rows, size=count)  # more picks (5 or more) than rows (4 at most): some repeat
    j = rng.integers(-cols, cols, size=count)
    check(lambda T, x: INTEGER_INDEXES[form](T, x, i, j), normal(seed, (rows, cols, 2), dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 8), classes=st.integers(1, 5), seed=seeds)
def test_picking_each_rows_label_with_arange_matches_torch(backend, dtype, n, classes, seed):
    labels = np.random.default_rng(seed).integers(0, classes, size=n)
    check(lambda T, x: x[T.arange(n), T.tensor(labels.tolist())], normal(seed, (n, classes), dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15, deadline=None)
@given(shape=nonscalar_shapes, seed=seeds)
def test_boolean_mask_indexing_and_its_grad_match_torch(backend, dtype, shape, seed):
    check(lambda T, x: x[x > 0], normal(seed, shape, dtype), seed=seed)


# -- joining, where, maximum -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("join", ["cat", "stack"])
@settings(max_examples=25, deadline=None)
@given(shape=nonscalar_shapes, sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3), data=st.data(),
       seed=seeds)
def test_cat_and_stack_and_their_grads_match_torch_along_any_dim(backend, dtype, join, shape, sizes, data, seed):
    n = len(shape)
    if join == "stack":  # a new dim, at any of n + 1 places; one shape for all
        dim = data.draw(st.integers(-n - 1, n), label="dim")
        arrays = [normal(seed, shape, dtype, k) for k in range(len(sizes))]
    else:  # an existing dim, whose size may differ between the inputs
        dim = data.draw(st.integers(-n, n - 1), label="dim")
        arrays = [normal(seed, shape[:dim % n] + (s,) + shape[dim % n + 1:], dtype, k) for k, s in enumerate(sizes)]
    check(lambda T, *xs: getattr(T, join)(list(xs), dim=dim), *arrays, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3), seed=seeds)
def test_where_and_its_grads_match_torch_under_broadcasting(backend, dtype, shapes, seed):
    (c_shape, a_shape, b_shape), _ = shapes
    condition = np.random.default_rng(seed).random(c_shape) > 0.5
    check(lambda T, a, b: T.where(T.tensor(condition.tolist()), a, b),
          normal(seed, a_shape, dtype, 1), normal(seed, b_shape, dtype, 2), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("side", ["scalar else", "scalar then"])
@settings(max_examples=10, deadline=None)
@given(shape=shapes, seed=seeds)
def test_where_with_a_python_scalar_matches_torch_and_keeps_the_dtype(backend, dtype, side, shape, seed):
    fn = (lambda T, x: T.where(x > 0, x, 0.0)) if side == "scalar else" else (lambda T, x: T.where(x > 0, -1.5, x))
    check(fn, normal(seed, shape, dtype), seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(shapes=broadcast_pairs, seed=seeds)
def test_maximum_and_its_grads_match_torch_and_split_ties_in_half(backend, dtype, shapes, seed):
    (a_shape, b_shape), _ = shapes
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(0, 3, size=s).astype(dtype) for s in (a_shape, b_shape))  # many ties
    check(lambda T, a, b: T.maximum(a, b), a, b, seed=seed)


COMPARISONS = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


@pytest.mark.parametrize("op", COMPARISONS)
@settings(max_examples=15, deadline=None)
@given(shapes=broadcast_pairs, seed=seeds, scalar=st.booleans())
def test_comparisons_give_bool_tensors_equal_to_torch(backend, op, shapes, seed, scalar):
    (a_shape, b_shape), _ = shapes
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 3, size=a_shape).astype(np.float32), rng.integers(0, 3, size=b_shape).astype(np.float32)
    compare = COMPARISONS[op]
    (oa, ob), (ta, tb) = leaves([a, b])  # they require grad: a comparison still records nothing
    ours, ref = (compare(oa, 1.0), compare(ta, 1.0)) if scalar else (compare(oa, ob), compare(ta, tb))
    assert_same(ours, ref)
    assert not ours.requires_grad and ours.grad_fn is None


# -- dtypes, as torch promotes them --------------------------------------------------------------------

RESULT_DTYPES = {
    "float32 * python float": lambda T: T.ones(2) * 2.5,
    "float64 * python float": lambda T: T.ones(2, dtype=T.float64) * 2.5,
    "float32 * python int": lambda T: T.ones(2) * 3,
    "int64 * python int": lambda T: T.tensor([1, 2]) * 3,
    "int64 * python float": lambda T: T.tensor([1, 2]) * 0.5,
    "int64 + float32": lambda T: T.tensor([1, 2]) + T.tensor([0.5, 1.5]),
    "float32 + int64": lambda T: T.tensor([0.5, 1.5]) + T.tensor([1, 2]),
    "int64 / int64": lambda T: T.tensor([1, 2]) / T.tensor([3, 4]),
    "int64 / python int": lambda T: T.tensor([1, 2]) / 2,
    "python int / int64": lambda T: 2 / T.tensor([1, 2]),
    "float32 + float64": lambda T: T.ones(2) + T.ones(2, dtype=T.float64),
    "float64 @ float64": lambda T: T.ones(2, 2, dtype=T.float64) @ T.ones(2, dtype=T.float64),
    "float32 * 0-d float64": lambda T: T.ones(2) * T.tensor(2.0, dtype=T.float64),
    "0-d float64 * float32": lambda T: T.tensor(2.0, dtype=T.float64) * T.ones(2),
    "int32 + 0-d int64": lambda T: T.ones(2, dtype=T.int32) + T.tensor(1),
    "int32 + 0-d float64": lambda T: T.ones(2, dtype=T.int32) + T.tensor(1.5, dtype=T.float64),
    "0-d float32 + 0-d float64": lambda T: T.tensor(1.0) + T.tensor(1.0, dtype=T.float64),
    "tensor of ints": lambda T: T.tensor([1, 2]),
    "tensor of floats": lambda T: T.tensor([1.0]),
    "tensor of bools": lambda T: T.tensor([True, False]),
    "tensor of a 0-d int": lambda T: T.tensor(3),
    "from_numpy of float64": lambda T: T.from_numpy(np.zeros(3)),
    "from_numpy of int32": lambda T: T.from_numpy(np.zeros(3, dtype=np.int32)),
    "arange of ints": lambda T: T.arange(5),
    "arange of a float": lambda T: T.arange(0, 1, 0.25),
    "arange(5.0)": lambda T: T.arange(5.0),
    "zeros": lambda T: T.zeros(2, 3),
    "full of an int": lambda T: T.full((2,), 3),
    "full of a float": lambda T: T.full((2,), 3.0),
    "sum of int64": lambda T: T.tensor([1, 2]).sum(),
    "exp of int64": lambda T: T.tensor([1, 2]).exp(),
    "bool tensor + python int": lambda T: T.tensor([True, False]) + 1,
}


@pytest.mark.parametrize("expr", RESULT_DTYPES)
def test_result_dtype_and_value_follow_torch(expr):
    assert_same(RESULT_DTYPES[expr](mc), RESULT_DTYPES[expr](torch))


def test_float32_input_of_a_float64_op_gets_a_float32_gradient_as_in_torch():
    check(lambda T, a, b: a * b, normal(0, (3,), np.float32), normal(1, (3,), np.float64))


def test_a_0d_float64_operand_of_a_float32_op_gets_a_float64_gradient_as_in_torch():
    check(lambda T, a, b: a * b, normal(0, (3,), np.float32), normal(1, (), np.float64))


@pytest.mark.parametrize("dtypes", [(np.float32, np.float64), (np.int64, np.float32)])
def test_matmul_of_two_dtypes_raises_as_in_torch(dtypes):
    a, b = np.ones((2, 2), dtype=dtypes[0]), np.ones((2, 2), dtype=dtypes[1])
    with pytest.raises(RuntimeError):
        torch.tensor(a) @ torch.tensor(b)
    with pytest.raises(RuntimeError, match="same dtype"):
        mc.tensor(a) @ mc.tensor(b)


def test_casting_with_float_long_type_and_to_follows_torch():
    x = np.array([1.7, -2.2, 3.5], dtype=np.float64)
    for cast in (lambda t: t.float(), lambda t: t.long(), lambda t: t.type(mc.float32 if isinstance(t, mc.Tensor)
                                                                            else torch.float32),
                 lambda t: t.to(mc.int32 if isinstance(t, mc.Tensor) else torch.int32), lambda t: t.double()):
        assert_same(cast(mc.tensor(x)), cast(torch.tensor(x)))


def test_the_gradient_of_a_cast_is_cast_back_to_the_input_dtype_as_torch():
    check(lambda T, x: x.float() * 2, normal(0, (4,), np.float64))
    check(lambda T, x: x.to(T.float64).exp(), normal(0, (4,), np.float32))


def test_type_without_argument_names_the_dtype():
    assert mc.ones(2).type() == "minicnn.float32"
    assert mc.ones(2, dtype=mc.int64).type() == "minicnn.int64"


# -- creation -------------------------------------------------------------------------------------------


def test_tensor_copies_its_data():
    a = np.zeros(3)
    t = mc.tensor(a)
    a[0] = 5
    assert t[0].item() == 0


def test_from_numpy_shares_memory_with_the_array_and_keeps_its_dtype():
    a = np.zeros(3)
    t = mc.from_numpy(a)
    a[0] = 5
    assert t.dtype == mc.float64 and t[0].item() == 5


def test_from_numpy_refuses_what_is_not_an_array_as_torch():
    with pytest.raises(TypeError):
        mc.from_numpy([1.0, 2.0])


def test_as_tensor_shares_an_arrays_memory_when_no_copy_is_needed():
    a = np.zeros(3, dtype=np.float32)
    t = mc.as_tensor(a)
    a[1] = 7
    assert t.dtype == mc.float32 and t[1].item() == 7
    assert mc.as_tensor(t) is t


def test_as_tensor_with_another_dtype_copies_as_torch():
    a = np.zeros(3, dtype=np.float32)
    t = mc.as_tensor(a, dtype=mc.float64)
    a[0] = 1
    assert t.dtype == mc.float64 and t[0].item() == 0


CREATION = {
    "zeros(2, 3)": lambda T: T.zeros(2, 3),
    "zeros((2, 3))": lambda T: T.zeros((2, 3)),
    "zeros(size=(2, 3))": lambda T: T.zeros(size=(2, 3)),
    "ones(size=4)": lambda T: T.ones(size=[4]),
    "empty(size=(1, 2)).shape": lambda T: T.tensor(list(T.empty(size=(1, 2)).shape)),
    "ones(4, dtype=float64)": lambda T: T.ones(4, dtype=T.float64),
    "full((2, 2), 1.5)": lambda T: T.full((2, 2), 1.5),
    "arange(2, 11, 3)": lambda T: T.arange(2, 11, 3),
    "arange(0.5, 2.0, 0.5)": lambda T: T.arange(0.5, 2.0, 0.5),
    "zeros_like(int64)": lambda T: T.zeros_like(T.tensor([[1, 2]])),
    "ones_like(float64)": lambda T: T.ones_like(T.zeros(3, dtype=T.float64)),
    "full_like": lambda T: T.full_like(T.zeros(2), 7.0),
}


@pytest.mark.parametrize("expr", CREATION)
def test_creation_functions_give_torch_shapes_dtypes_and_values(expr):
    assert_same(CREATION[expr](mc), CREATION[expr](torch))


@pytest.mark.parametrize("fn", ["rand", "randn"])
def test_rand_and_randn_give_float32_of_the_asked_shape(fn):
    t = getattr(mc, fn)(3, 4)
    assert t.dtype == mc.float32 and tuple(t.shape) == (3, 4) and not t.requires_grad
    assert tuple(getattr(mc, fn)((3, 4)).shape) == tuple(getattr(mc, fn)(size=(3, 4)).shape) == (3, 4)
    assert getattr(mc, fn)(2, dtype=mc.float64).dtype == mc.float64


def test_rand_lies_in_zero_one_and_randn_is_standard_normal():
    mc.manual_seed(0)
    u, z = mc.rand(20000).numpy(), mc.randn(20000).numpy()
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03


def test_manual_seed_makes_randn_reproducible():
    mc.manual_seed(123)
    first = mc.randn(5).tolist()
    mc.manual_seed(123)
    assert mc.randn(5).tolist() == first
    assert mc.randn(5).tolist() != first


def test_creation_with_requires_grad_makes_a_leaf_that_requires_grad():
    t = mc.zeros(2, requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad_fn is None


def test_an_integer_tensor_cannot_require_grad_as_in_torch():
    with pytest.raises(RuntimeError, match="floating point"):
        mc.tensor([1, 2], requires_grad=True)


# -- torch.* functions ------------------------------------------------------------------------------------

FUNCTIONS = {
    "max": lambda T, x: T.max(x),
    "max(x, 1).values": lambda T, x: T.max(x, 1).values,
    "max(x, dim=0, keepdim=True)[0]": lambda T, x: T.max(x, dim=0, keepdim=True)[0],
    "sum": lambda T, x: T.sum(x),
    "sum(x, dim=1)": lambda T, x: T.sum(x, dim=1),
    "mean": lambda T, x: T.mean(x),
    "mean(x, (0, 2), keepdim)": lambda T, x: T.mean(x, (0, 2), keepdim=True),
    "flatten": lambda T, x: T.flatten(x),
    "flatten(x, 1)": lambda T, x: T.flatten(x, 1),
    "cat": lambda T, x: T.cat([x, x * 2], dim=1),
    "stack": lambda T, x: T.stack([x, x + 1]),
    "unsqueeze": lambda T, x: T.unsqueeze(x, -1),
    "squeeze": lambda T, x: T.squeeze(T.unsqueeze(x, 1)),
    "relu": lambda T, x: T.relu(x),
    "sigmoid": lambda T, x: T.sigmoid(x),
    "tanh": lambda T, x: T.tanh(x),
    "softmax": lambda T, x: T.softmax(x, dim=1),
    "softmax(x, -1)": lambda T, x: T.softmax(x, -1),
    "log_softmax": lambda T, x: T.log_softmax(x, dim=2),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_torch_functions_and_their_grads_match_torch(backend, dtype, name):
    check(FUNCTIONS[name], normal(0, (2, 3, 4), dtype))


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
def test_torch_argmax_matches_torch(dim):
    x = normal(0, (3, 4), np.float32)
    assert_same(mc.argmax(mc.tensor(x), dim=dim), torch.argmax(torch.tensor(x), dim=dim))


def test_torch_equal_is_true_only_for_the_same_shape_and_values():
    a = mc.tensor([1.0, 2.0])
    assert mc.equal(a, mc.tensor([1.0, 2.0])) is True
    assert mc.equal(a, mc.tensor([1.0, 2.5])) is False
    assert mc.equal(a, mc.tensor([[1.0, 2.0]])) is False


def test_torch_allclose_uses_torch_tolerances():
    a = mc.tensor([1.0, 2.0])
    assert mc.allclose(a, a + 1e-6) is True
    assert mc.allclose(a, a + 1e-3) is False
    assert mc.allclose(a, a + 1e-3, atol=1e-2) is True


# -- the Python protocol ---------------------------------------------------------------------------------


def test_a_0d_integer_tensor_indexes_a_python_list():
    classes = ["plane", "car", "bird"]
    pred = mc.tensor([2, 0])
    assert classes[pred[0]] == "bird"
    assert classes[mc.tensor([[1.0, 5.0, 0.0]]).argmax(1)[0]] == "car"


def test_a_float_tensor_is_not_an_index_as_in_torch():
    with pytest.raises(TypeError):
        ["a", "b"][mc.tensor(1.0)]


def test_len_is_the_size_of_the_first_dim_and_refused_for_a_0d_tensor():
    assert len(mc.zeros(5, 2)) == 5
    with pytest.raises(TypeError):
        len(mc.tensor(1.0))


def test_iteration_yields_the_rows_like_torch():
    x = normal(0, (3, 2), np.float64)
    rows = list(mc.tensor(x))
    assert len(rows) == 3
    for ours, ref in zip(rows, torch.tensor(x)):
        assert_same(ours, ref)


def test_iteration_over_rows_carries_the_gradient_as_torch():
    check(lambda T, x: T.stack([row * k for k, row in enumerate(x)]), normal(0, (3, 2), np.float64))


def test_item_gives_a_python_number_and_refuses_more_than_one_element():
    assert type(mc.tensor([2.5]).item()) is float and mc.tensor([2.5]).item() == 2.5
    assert type(mc.tensor(3).item()) is int
    with pytest.raises(RuntimeError):
        mc.zeros(2).item()


@pytest.mark.parametrize("data", [[[1.5, 2.0], [3.0, -4.0]], [1, 2, 3], 7, [[True], [False]]])
def test_tolist_matches_torch(data):
    ours, ref = mc.tensor(data).tolist(), torch.tensor(data).tolist()
    assert ours == ref and type(ours) is type(ref)


def test_numpy_shares_memory_with_the_tensor():
    t = mc.zeros(3)
    t.numpy()[0] = 4
    assert t[0].item() == 4


def test_numpy_refuses_a_tensor_that_requires_grad_and_says_to_detach():
    t = mc.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        t.numpy()
    assert isinstance(t.detach().numpy(), np.ndarray)


def test_detach_shares_memory_and_records_nothing():
    x = mc.ones(3, requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    d.numpy()[0] = 9
    assert x[0].item() == 9


def test_clone_copies_the_values_and_passes_the_gradient():
    x = mc.ones(3, requires_grad=True)
    c = x.clone()
    assert c.requires_grad and c.grad_fn is not None
    assert not np.shares_memory(c.array, x.array)
    check(lambda T, x: x.clone() * 3, normal(0, (2, 2), np.float32))


@pytest.mark.parametrize("shape", [(), (3,), (2, 1, 4)])
def test_size_dim_numel_dtype_and_device_match_torch(shape):
    ours, ref = mc.zeros(shape, dtype=mc.float64), torch.zeros(shape, dtype=torch.float64)
    assert tuple(ours.size()) == tuple(ref.size()) == tuple(ours.shape)
    assert all(ours.size(d) == ref.size(d) for d in range(-len(shape), len(shape)))
    assert ours.dim() == ref.dim() and ours.ndim == ref.ndim
    assert ours.numel() == ref.numel()
    assert str(ours.dtype) == torch_dtype_name(ref.dtype)
    assert ours.device.type == ref.device.type == "cpu"
    assert ours.device == "cpu"


def test_argmax_and_max_dim_pick_the_first_nan_only_in_the_rows_that_hold_one_as_torch():
    a = np.array([[1.0, np.nan, 3.0, np.nan], [4.0, 5.0, 2.0, 0.0], [0.0, 0.0, -1.0, 7.0]], np.float32)
    for dim in (0, 1):
        assert mc.tensor(a).argmax(dim).tolist() == torch.tensor(a).argmax(dim).tolist()
        assert mc.tensor(a).argmin(dim).tolist() == torch.tensor(a).argmin(dim).tolist()
        assert mc.tensor(a).max(dim).indices.tolist() == torch.tensor(a).max(dim).indices.tolist()
        assert mc.tensor(a).min(dim).indices.tolist() == torch.tensor(a).min(dim).indices.tolist()
