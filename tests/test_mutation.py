"""Mutation with torch's semantics: in-place methods and operators, views that share memory and a
version counter, writes on the tape, saved-tensor checks, gradients accumulated in place.

Each check runs the same program on minicnn and, where torch is installed, on torch; the values,
gradients and errors must agree. Without torch each still checks minicnn against a plain-NumPy
expected value (values by the NumPy formula, gradients by central differences in float64).
"""

import threading

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn
import minicnn.nn as mnn
import minicnn.optim as moptim

try:
    import torch
except ImportError:  # the NumPy expectations below still run
    torch = None

LIBS = [minicnn] + ([torch] if torch is not None else [])
A = np.array([[0.3, -0.7, 1.2], [-1.4, 0.8, 2.1]])
C = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.5]])  # weights of the loss sum(C * y)


def arr(t):
    return np.asarray(t.detach().numpy(), dtype=np.float64)


def fd_grad(f, a, eps=1e-6):
    """d sum(C * f(a)) / da by central differences, in float64."""
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        up, down = a.copy(), a.copy()
        up[i] += eps
        down[i] -= eps
        g[i] = ((C * f(up)).sum() - (C * f(down)).sum()) / (2 * eps)
    return g


def error_of(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the type and the message are what is compared
        return e
    return None


# -- the sweep: each in-place method x where it is applied x {values, gradient, error} -------------

# name: (apply to tensor t in library lib, the NumPy formula, input transform keeping off kinks)
def _const(lib):
    return lib.tensor([0.125], dtype=lib.float64)  # broadcast over whatever it is copied into


METHODS = {
    "add_": (lambda lib, t: t.add_(2.0), lambda a: a + 2.0, None),
    "sub_(alpha)": (lambda lib, t: t.sub_(0.5, alpha=2), lambda a: a - 1.0, None),
    "mul_": (lambda lib, t: t.mul_(3.0), lambda a: a * 3.0, None),
    "div_": (lambda lib, t: t.div_(4.0), lambda a: a / 4.0, None),
    "pow_": (lambda lib, t: t.pow_(2), lambda a: a ** 2, None),
    "neg_": (lambda lib, t: t.neg_(), lambda a: -a, None),
    "abs_": (lambda lib, t: t.abs_(), np.abs, None),
    "sqrt_": (lambda lib, t: t.sqrt_(), np.sqrt, np.abs),
    "exp_": (lambda lib, t: t.exp_(), np.exp, None),
    "log_": (lambda lib, t: t.log_(), np.log, np.abs),
    "relu_": (lambda lib, t: t.relu_(), lambda a: np.maximum(a, 0), None),
    "sigmoid_": (lambda lib, t: t.sigmoid_(), lambda a: 1 / (1 + np.exp(-a)), None),
    "tanh_": (lambda lib, t: t.tanh_(), np.tanh, None),
    "clamp_": (lambda lib, t: t.clamp_(-0.5, 1.0), lambda a: np.clip(a, -0.5, 1.0), None),
    "clamp_min_": (lambda lib, t: t.clamp_min_(0.5), lambda a: np.maximum(a, 0.5), None),
    "clamp_max_": (lambda lib, t: t.clamp_max_(0.5), lambda a: np.minimum(a, 0.5), None),
    "zero_": (lambda lib, t: t.zero_(), np.zeros_like, None),
    "fill_": (lambda lib, t: t.fill_(1.5), lambda a: np.full_like(a, 1.5), None),
    "copy_": (lambda lib, t: t.copy_(_const(lib)), lambda a: np.full_like(a, 0.125), None),
    "masked_fill_": (lambda lib, t: t.masked_fill_(t > 1.0, 0.5), lambda a: np.where(a > 1.0, 0.5, a), None),
    "+=": (lambda lib, t: t.__iadd__(1.5), lambda a: a + 1.5, None),
    "-=": (lambda lib, t: t.__isub__(1.5), lambda a: a - 1.5, None),
    "*=": (lambda lib, t: t.__imul__(-2.0), lambda a: a * -2.0, None),
    "/=": (lambda lib, t: t.__itruediv__(2.0), lambda a: a / 2.0, None),
    "**=": (lambda lib, t: t.__ipow__(3), lambda a: a ** 3, None),
    "[0] =": (lambda lib, t: t.__setitem__(0, 5.0), lambda a: np.concatenate([np.full((1, a.shape[1]), 5.0), a[1:]]), None),
}


def _input(method):
    transform = METHODS[method][2]
    return transform(A) + 0.5 if transform is not None else A.copy()


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("method", METHODS)
def test_an_in_place_method_on_a_leaf_under_no_grad_writes_its_memory_and_bumps_the_version(lib, method):
    apply, formula, _ = METHODS[method]
    a = _input(method)
    x = lib.tensor(a, dtype=lib.float64, requires_grad=True)
    before = x._version
    with lib.no_grad():
        out = apply(lib, x)
    assert out is None or out is x  # the same object: never a new tensor bound to the name
    np.testing.assert_allclose(arr(x), formula(a), rtol=1e-12)
    assert x._version > before and x.grad is None and x.is_leaf


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("method", METHODS)
def test_an_in_place_method_on_a_non_leaf_is_recorded_and_gives_the_gradient_of_its_formula(lib, method):
    apply, formula, _ = METHODS[method]
    a = _input(method)
    x = lib.tensor(a, dtype=lib.float64, requires_grad=True)
    y = x * 1
    apply(lib, y)
    np.testing.assert_allclose(arr(y), formula(a), rtol=1e-12)
    (y * lib.tensor(C)).sum().backward()
    np.testing.assert_allclose(arr(x.grad), fd_grad(formula, a), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("method", METHODS)
def test_an_in_place_method_on_a_view_of_a_non_leaf_reaches_the_base_and_its_gradient(lib, method):
    apply, formula, _ = METHODS[method]
    a = _input(method)
    x = lib.tensor(a, dtype=lib.float64, requires_grad=True)
    y = x * 1
    v = y.t()  # a transposed view: the method works on the transpose, the base sees it
    apply(lib, v)
    expected = formula(a.T).T
    np.testing.assert_allclose(arr(y), expected, rtol=1e-12)
    (y * lib.tensor(C)).sum().backward()
    np.testing.assert_allclose(arr(x.grad), fd_grad(lambda b: formula(b.T).T, a), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("method", METHODS)
def test_an_in_place_method_on_a_leaf_or_a_view_of_one_that_requires_grad_raises_torchs_error(lib, method):
    apply = METHODS[method][0]
    x = lib.tensor(_input(method), dtype=lib.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        apply(lib, x)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad is being used in an in-pl"):
        apply(lib, x[0:2])
    assert x._version == 0  # refused before anything was written


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("method", METHODS)
def test_an_in_place_method_on_a_detached_tensor_changes_the_original_and_stops_a_backward_that_saved_it(
        lib, method):
    apply, formula, _ = METHODS[method]
    a = _input(method)
    x = lib.tensor(a, dtype=lib.float64, requires_grad=True)
    w = lib.tensor(C, requires_grad=True)
    y = x * 1
    loss = (y * w).sum()  # the product saved y for w's gradient
    d = y.detach()
    apply(lib, d)
    np.testing.assert_allclose(arr(y), formula(a), rtol=1e-12)
    assert y._version == d._version == 1 or (method == "[0] =" and y._version == d._version >= 1)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation.*is at version \d+; expected version 0"):
        loss.backward()


# -- 1. one storage model: views share memory and the version counter ------------------------------

VIEWS = {
    "a[1:3]": lambda a: a[1:3],
    "a[0]": lambda a: a[0],
    "a[:, 1]": lambda a: a[:, 1],
    "view": lambda a: a.view(12),
    "reshape": lambda a: a.reshape(2, 6),
    "t": lambda a: a.t(),
    "T": lambda a: a.T,
    "permute": lambda a: a.permute(1, 0),
    "transpose": lambda a: a.transpose(0, 1),
    "unsqueeze": lambda a: a.unsqueeze(0),
    "squeeze": lambda a: a.unsqueeze(1).squeeze(1),
    "flatten": lambda a: a.flatten(),
    "detach": lambda a: a.detach(),
    "data": lambda a: a.data,
    "view of a view": lambda a: a[1:].t()[0],
}


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("how", VIEWS)
def test_a_view_shares_memory_with_its_base_in_both_directions(lib, how):
    a = lib.arange(12.0).view(4, 3)
    v = VIEWS[how](a)
    before = arr(v).copy()
    v.add_(100)
    assert arr(a).sum() == np.arange(12.0).sum() + 100 * v.numel()  # the base saw the write
    a.mul_(0)
    assert (arr(v) == 0).all() and before.shape == tuple(v.shape)  # and the view sees the base's


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("how", [h for h in VIEWS if h != "data"])
def test_a_view_shares_the_version_counter_of_its_base(lib, how):
    a = lib.arange(12.0).view(4, 3)
    v = VIEWS[how](a)
    start = a._version
    v.add_(1)
    assert a._version == v._version == start + 1
    a[0, 0] = 7
    assert a._version == v._version == start + 2


def test_data_shares_the_version_counter_too_where_torch_gives_it_a_new_one():
    """A deliberate difference (see the Tensor's module docstring): a change through .data is counted,
    so that a backward that saved the tensor stops instead of using the changed values."""
    x = minicnn.tensor([1.0, 2.0], requires_grad=True)
    w = minicnn.tensor([3.0, 4.0], requires_grad=True)
    loss = (x * w).sum()
    x.data.mul_(2)
    assert x._version == 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("how", ["t().contiguous()", "clone()", "t().reshape(6)", "a[[0, 1]]", "a[mask]"])
def test_a_copy_has_fresh_memory_writes_into_it_leave_the_source_alone(lib, how):
    a = lib.arange(6.0).view(2, 3)
    copies = {"t().contiguous()": lambda: a.t().contiguous(), "clone()": lambda: a.clone(),
              "t().reshape(6)": lambda: a.t().reshape(6), "a[[0, 1]]": lambda: a[[0, 1]],
              "a[mask]": lambda: a[a > 2]}
    c = copies[how]()
    c.fill_(-1)
    np.testing.assert_array_equal(arr(a), np.arange(6.0).reshape(2, 3))
    assert a._version == 0


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_view_of_a_non_contiguous_tensor_raises_and_reshape_copies(lib):
    a = lib.arange(6.0).view(2, 3)
    with pytest.raises(RuntimeError, match="view size is not compatible with input tensor's size and stride"):
        a.t().view(6)
    np.testing.assert_array_equal(arr(a.t().reshape(6)), np.arange(6.0).reshape(2, 3).T.ravel())


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_a_slice_then_plus_equals_changes_the_tensor_it_was_sliced_from(lib):
    a = lib.zeros(4)
    v = a[:2]
    v += 1
    np.testing.assert_array_equal(arr(a), [1, 1, 0, 0])


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_writing_into_t_contiguous_leaves_the_original_unchanged(lib):
    x = lib.arange(6.0).view(2, 3)
    y = x.t().contiguous()
    y[0, 0] = 100
    assert arr(x)[0, 0] == 0 and arr(y)[0, 0] == 100


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_writing_into_an_expanded_tensor_is_refused(lib):
    b = lib.zeros(3).expand(2, 3)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor refers to a single"):
        b.add_(1)


# -- 2. in-place operators keep the tensor's identity; dtype rules ---------------------------------


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_sub_assign_under_no_grad_updates_the_parameter_in_place(lib):
    p = lib.nn.Parameter(lib.tensor([1.0, 2.0]))
    (p * p).sum().backward()
    held = p
    with lib.no_grad():
        p -= 0.1 * p.grad
    assert p is held and isinstance(p, lib.nn.Parameter) and p.is_leaf and p.requires_grad
    np.testing.assert_allclose(arr(p), [0.8, 1.6], rtol=1e-6)


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_an_integer_tensor_plus_equals_a_float_raises_torchs_cast_error(lib):
    i = lib.ones(3, dtype=lib.long)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Long"):
        i += 1.5
    i += 2  # an int keeps the dtype
    assert arr(i).tolist() == [3, 3, 3] and i.dtype == lib.long


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_an_in_place_result_of_a_larger_broadcast_shape_raises(lib):
    x = lib.zeros(3)
    with pytest.raises(RuntimeError, match=r"output with shape \[3\] doesn't match the broadcast shape \[2, 3\]"):
        x.add_(lib.ones(2, 3))


def _manual_sgd(lib, W, b, X, Y, batch_size=None):
    """Learning PyTorch with Examples (and D2L's sgd): the update loop written with -= under no_grad."""
    w = lib.tensor(W, requires_grad=True)
    bias = lib.tensor(b, requires_grad=True)
    losses = []
    for _ in range(4):
        loss = ((lib.tensor(X) @ w + bias - lib.tensor(Y)) ** 2).sum()
        loss.backward()
        losses.append(loss.item())
        with lib.no_grad():
            for p in (w, bias):
                p -= 0.01 * p.grad / (batch_size or 1)
                p.grad.zero_()
    return arr(w), arr(bias), losses


@pytest.mark.parametrize("batch_size", [None, 4])
def test_the_manual_sgd_loop_of_the_tutorials_trains_as_in_torch(batch_size):
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((3, 2)), rng.standard_normal(2)
    X, Y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    ours = _manual_sgd(minicnn, W, b, X, Y, batch_size)
    # plain NumPy: the same four steps
    w, bias = W.copy(), b.copy()
    for step in range(4):
        r = X @ w + bias - Y
        assert ours[2][step] == pytest.approx((r ** 2).sum(), rel=1e-12)
        w -= 0.01 * (2 * X.T @ r) / (batch_size or 1)
        bias -= 0.01 * (2 * r.sum(0)) / (batch_size or 1)
    np.testing.assert_allclose(ours[0], w, rtol=1e-12)
    np.testing.assert_allclose(ours[1], bias, rtol=1e-12)
    if torch is not None:
        theirs = _manual_sgd(torch, W, b, X, Y, batch_size)
        np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
        np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-12)


# -- 3. saved-tensor checks -------------------------------------------------------------------------

def _leaf_under_no_grad(lib, x, w):
    loss = (x * w).sum()  # saves x for w's gradient
    with lib.no_grad():
        x.add_(1)
    loss.backward()


def _through_detach(lib, x, w):
    y = x * 1
    loss = (y * w).sum()
    y.detach().add_(1)
    loss.backward()


def _through_a_view(lib, x, w):
    y = x * 1
    loss = (y * w).sum()
    y[0].mul_(2)  # a view of y: the shared counter moves
    loss.backward()


def _input_of_add(lib, x, w):
    loss = (x + w).sum()  # add saves nothing
    with lib.no_grad():
        x.add_(1)
    loss.backward()


def _output_changed(op):
    def program(lib, x, w):
        y = x * 1
        out = y * 2 if op == "mul by 2" else getattr(y, op)()
        out.add_(1)
        out.sum().backward()
    return program


def _input_of_exp_changed(lib, x, w):
    y = x * 1
    out = y.exp()  # exp saves its output, not its input
    y.add_(1)
    out.sum().backward()


SAVED = {  # name: (program, whether torch raises)
    "a leaf changed under no_grad, saved by mul": (_leaf_under_no_grad, True),
    "a non-leaf changed through detach()": (_through_detach, True),
    "a non-leaf changed through a view": (_through_a_view, True),
    "the output of exp": (_output_changed("exp"), True),
    "the output of sigmoid": (_output_changed("sigmoid"), True),
    "the output of tanh": (_output_changed("tanh"), True),
    "the output of relu": (_output_changed("relu"), True),
    "the output of sqrt": (_output_changed("sqrt"), True),
    "an input of add (not saved)": (_input_of_add, False),
    "the output of a mul by a number (not saved)": (_output_changed("mul by 2"), False),
    "the input of exp (exp saves its output)": (_input_of_exp_changed, False),
}


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("case", SAVED)
def test_backward_raises_where_a_saved_tensor_was_changed_in_place_and_only_there(lib, case):
    program, raises = SAVED[case]
    x = lib.tensor(np.abs(A) + 0.5, requires_grad=True)
    w = lib.tensor(C, requires_grad=True)
    if raises:
        with pytest.raises(RuntimeError, match=r"modified by an inplace operation: \[torch\.DoubleTensor \[2, 3\]\]"
                                               r".* is at version \d+; expected version \d+ instead"):
            program(lib, x, w)
    else:
        program(lib, x, w)
        assert x.grad is not None and np.isfinite(arr(x.grad)).all()


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_the_error_names_the_versions_as_torch_does(lib):
    x = lib.tensor(A, requires_grad=True)
    y = x * 1
    z = (y * y).sum()
    y.detach().add_(1)
    y.detach().add_(1)
    e = error_of(z.backward)
    assert isinstance(e, RuntimeError)
    assert "[torch.DoubleTensor [2, 3]]" in str(e) and "is at version 2; expected version 0 instead" in str(e)


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_a_value_changed_after_backward_is_no_error_and_the_gradient_is_the_one_at_the_forward(lib):
    x = lib.tensor(A, requires_grad=True)
    y = x * 1
    (y * y).sum().backward()
    y.detach().add_(1)
    np.testing.assert_allclose(arr(x.grad), 2 * A)


# -- 4. writes on the tape --------------------------------------------------------------------------

WRITES = {
    "h[0, :2] = w": (lambda lib, h, w: h.__setitem__((0, slice(0, 2)), w), (2,),
                     lambda H, W: _put(H, (0, slice(0, 2)), W)),
    "h[1] = w": (lambda lib, h, w: h.__setitem__(1, w), (4,), lambda H, W: _put(H, 1, W)),
    "h[[0, 2]] = w": (lambda lib, h, w: h.__setitem__([0, 2], w), (2, 4), lambda H, W: _put(H, [0, 2], W)),
    "h[mask] = w": (lambda lib, h, w: h.__setitem__(lib.tensor([True, False, True]), w), (2, 4),
                    lambda H, W: _put(H, np.array([True, False, True]), W)),
    "h[:, 1:3].copy_(w)": (lambda lib, h, w: h[:, 1:3].copy_(w), (3, 2), lambda H, W: _put(H, (slice(None), slice(1, 3)), W)),
    "h.copy_(w) (broadcast)": (lambda lib, h, w: h.copy_(w), (4,), lambda H, W: np.broadcast_to(W, H.shape).copy()),
    "h[:, 0] = w (broadcast row)": (lambda lib, h, w: h.__setitem__((slice(None), 0), w), (1,),
                                    lambda H, W: _put(H, (slice(None), 0), W)),
}
G = np.arange(12.0).reshape(3, 4) - 5  # the loss weights: sum(G * h**2) sees every cell


def _put(H, index, W):
    out = H.copy()
    out[index] = W
    return out


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("start", ["zeros (a plain tensor)", "x * 1 (a non-leaf)"])
def test_a_write_on_the_tape_sends_each_written_cell_its_gradient_and_zero_to_the_overwritten_ones(
        lib, write, start):
    apply, w_shape, formula = WRITES[write]
    rng = np.random.default_rng(1)
    X, W = rng.standard_normal((3, 4)), rng.standard_normal(w_shape)
    x = lib.tensor(X, requires_grad=True)
    w = lib.tensor(W, requires_grad=True)
    h = lib.zeros(3, 4, dtype=lib.float64) if start.startswith("zeros") else x * 1
    apply(lib, h, w)
    H0 = np.zeros((3, 4)) if start.startswith("zeros") else X
    np.testing.assert_allclose(arr(h), formula(H0, W), rtol=1e-12)
    assert h.requires_grad and h.grad_fn is not None
    (lib.tensor(G) * h * h).sum().backward()
    eps = 1e-6

    def loss_of(Xv, Wv):
        return (G * formula(np.zeros((3, 4)) if start.startswith("zeros") else Xv, Wv) ** 2).sum()
    dW = np.zeros_like(W)
    for i in np.ndindex(W.shape):
        up, down = W.copy(), W.copy()
        up[i] += eps
        down[i] -= eps
        dW[i] = (loss_of(X, up) - loss_of(X, down)) / (2 * eps)
    np.testing.assert_allclose(arr(w.grad), dW, rtol=1e-5, atol=1e-6)
    if not start.startswith("zeros"):
        dX = np.zeros_like(X)
        for i in np.ndindex(X.shape):
            up, down = X.copy(), X.copy()
            up[i] += eps
            down[i] -= eps
            dX[i] = (loss_of(up, W) - loss_of(down, W)) / (2 * eps)
        np.testing.assert_allclose(arr(x.grad), dX, rtol=1e-5, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(1, 5), data=st.data())
def test_a_slice_written_through_a_view_of_a_non_leaf_gives_torchs_gradients_for_any_slice(rows, cols, data):
    r0 = data.draw(st.integers(0, rows - 1))
    r1 = data.draw(st.integers(r0 + 1, rows))
    step = data.draw(st.integers(1, 2))
    assume(len(range(r0, r1, step)) >= 1)
    rng = np.random.default_rng(rows * 10 + cols)
    X, W = rng.standard_normal((rows, cols)), rng.standard_normal((len(range(r0, r1, step)), cols))
    results = []
    for lib in LIBS:
        x = lib.tensor(X, requires_grad=True)
        w = lib.tensor(W, requires_grad=True)
        y = x * 2
        v = y.t()[:, r0:r1:step]  # a view of a view: transposed, then sliced
        v.mul_(w.t())
        (y * y).sum().backward()
        results.append((arr(y), arr(x.grad), arr(w.grad)))
    Y = 2 * X
    Y[r0:r1:step] *= W
    mask = np.zeros_like(X)
    mask[r0:r1:step] = 1
    factor = np.where(mask == 1, 0, 1.0)
    factor[r0:r1:step] = W
    np.testing.assert_allclose(results[0][0], Y, rtol=1e-12)
    np.testing.assert_allclose(results[0][1], 2 * Y * 2 * factor, rtol=1e-10)  # dL/dy = 2y, dy/dx = 2 * factor
    np.testing.assert_allclose(results[0][2], (2 * Y * 2 * X)[r0:r1:step], rtol=1e-10)
    for other in results[1:]:
        for ours, theirs in zip(results[0], other):
            np.testing.assert_allclose(ours, theirs, rtol=1e-10)


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_a_view_taken_before_its_base_changed_in_place_sees_the_new_graph(lib):
    x = lib.tensor(A, requires_grad=True)
    y = x * 2
    v = y[0]  # taken before the change
    y.mul_(3)
    (v * v).sum().backward()  # v = 6 x[0], so d/dx[0] = 72 x[0]; the other row gets nothing
    np.testing.assert_allclose(arr(x.grad), np.concatenate([72 * A[:1], np.zeros((1, 3))]))


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_a_view_made_under_no_grad_and_changed_in_place_with_grad_on_is_refused(lib):
    y = lib.tensor(A, requires_grad=True) * 1
    with lib.no_grad():
        v = y[0]
    with pytest.raises(RuntimeError, match="A view was created in no_grad mode and is being modified inplace"):
        v.mul_(2)


# -- 5. gradients: accumulated in place, zeroed in place, hooks once -------------------------------


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_grad_accumulates_in_place_a_held_reference_sees_the_sum(lib):
    p = lib.tensor(A, requires_grad=True)
    (p * 2).sum().backward()
    held = p.grad
    (p * p).sum().backward()
    assert p.grad is held
    np.testing.assert_allclose(arr(held), 2 + 2 * A)


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("who", ["optimizer", "module"])
def test_zero_grad_with_set_to_none_false_zeroes_in_place(lib, who):
    model = lib.nn.Linear(3, 2)
    model(lib.ones(4, 3)).sum().backward()
    held = model.weight.grad
    if who == "optimizer":
        lib.optim.SGD(model.parameters(), lr=0.1).zero_grad(set_to_none=False)
    else:
        model.zero_grad(set_to_none=False)
    assert model.weight.grad is held and (arr(held) == 0).all()


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_a_hook_on_a_leaf_used_twice_runs_once_with_the_summed_gradient(lib):
    p = lib.tensor(A, requires_grad=True)
    seen = []
    p.register_hook(lambda g: seen.append(arr(g)))
    (p * 2 + p * p).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], 2 + 2 * A)


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_a_hook_on_a_non_leaf_runs_once_and_its_replacement_reaches_the_leaves(lib):
    x = lib.tensor(A, requires_grad=True)
    y = x * 3
    seen = []

    def hook(g):
        seen.append(arr(g))
        return g * 10
    y.register_hook(hook)
    (y * 2 + y).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], np.full((2, 3), 3.0))
    np.testing.assert_allclose(arr(x.grad), np.full((2, 3), 90.0))


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_a_hook_handle_removes_the_hook(lib):
    p = lib.tensor(A, requires_grad=True)
    handle = p.register_hook(lambda g: g * 0)
    handle.remove()
    p.sum().backward()
    np.testing.assert_allclose(arr(p.grad), np.ones((2, 3)))


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_retain_grad_keeps_a_non_leafs_gradient(lib):
    x = lib.tensor(A, requires_grad=True)
    y = x * 2
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(arr(y.grad), 4 * A)


# -- 6. grad mode per thread; integer casts end the graph -------------------------------------------


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_no_grad_in_one_thread_leaves_recording_on_in_another(lib):
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def other():
        inside.wait(5)
        x = lib.ones(2, requires_grad=True)
        seen["records"] = (x * 2).requires_grad
        seen["mode"] = lib.is_grad_enabled()
        done.set()
    t = threading.Thread(target=other)
    t.start()
    with lib.no_grad():
        inside.set()
        done.wait(5)
        assert not lib.is_grad_enabled()
    t.join()
    assert seen == {"records": True, "mode": True}


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("cast", ["long()", "int()", "to(int64)", "bool()"])
def test_an_integer_cast_ends_the_graph(lib, cast):
    x = lib.tensor(A, requires_grad=True)
    y = {"long()": lambda: x.long(), "int()": lambda: x.int(), "to(int64)": lambda: x.to(lib.int64),
         "bool()": lambda: x.bool()}[cast]()
    assert not y.requires_grad and y.grad_fn is None
    z = x.double() if x.dtype != lib.float64 else x.float()
    assert z.requires_grad and z.grad_fn is not None  # a float cast keeps it


# -- inplace=True layers ------------------------------------------------------------------------------


def _small_net(lib):
    lib.manual_seed(0)
    net = lib.nn.Sequential(lib.nn.Conv2d(1, 3, 3), lib.nn.ReLU(inplace=True), lib.nn.Conv2d(3, 2, 3),
                            lib.nn.LeakyReLU(0.1, inplace=True), lib.nn.Flatten(), lib.nn.Linear(8, 2),
                            lib.nn.Hardtanh(inplace=True))
    with lib.no_grad():
        for i, p in enumerate(net.parameters()):
            p.copy_(lib.tensor(np.cos(np.arange(p.numel()) + i).reshape(tuple(p.shape)).astype(np.float32)))
    return net


@pytest.mark.skipif(torch is None, reason="compares with torch, which is not installed")
def test_in_place_activations_train_with_torchs_gradients():
    x = np.sin(np.arange(4 * 36)).reshape(4, 1, 6, 6).astype(np.float32)
    grads = []
    for lib in (minicnn, torch):
        net = _small_net(lib)
        net(lib.tensor(x)).pow(2).sum().backward()
        grads.append([arr(p.grad) for p in net.parameters()])
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_relu_inplace_writes_into_its_input_and_returns_it():
    x = minicnn.tensor([-1.0, 2.0, -3.0])
    out = mnn.ReLU(inplace=True)(x)
    assert out is x and arr(x).tolist() == [0.0, 2.0, 0.0]
    y = minicnn.tensor([-1.0, 2.0])
    assert mnn.ReLU()(y) is not y and arr(y).tolist() == [-1.0, 2.0]


def test_an_optimizer_step_between_forward_and_backward_is_caught_by_the_version():
    model = mnn.Linear(3, 2)
    loss = model(minicnn.ones(4, 3)).sum()
    opt = moptim.SGD(model.parameters(), lr=0.1)
    model(minicnn.ones(1, 3)).sum().backward()
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
