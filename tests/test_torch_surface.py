"""The calls that public torch programs make, and that stopped them on minicnn: each is checked
against torch 2.13 doing the same thing.

    Module.__getattr__ as a method        self.__getattr__('level_%d' % i)
    torch.autograd.Variable               Variable(t), Variable(t, requires_grad=True), volatile
    grad_fn.next_functions, .name()       walking the graph from a loss
    a float where an int size goes        torch.empty(30.0), Conv2d(24, 30.0, 1): TypeError
    NumPy's keywords and names            axis=, keepdims=, multiply, divide, absolute, swapaxes, ...
    the CPU machine's calls               cuda.is_available(), backends.cudnn flags, mps, threads, seeds
"""


import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.nn as mnn
from minicnn.autograd import Variable
from torch_compare import assert_same

torch = pytest.importorskip("torch")


def both(fn):
    """fn(lib) run on minicnn and on torch."""
    return fn(mc), fn(torch)


# -- Module.__getattr__ ------------------------------------------------------------------------------


def _levels(lib):
    class Tree(lib.nn.Module):
        def __init__(self):
            super().__init__()
            for i in range(3):
                setattr(self, "level_%d" % i, lib.nn.Linear(2, 2))

        def forward(self, x):
            for i in range(3):
                x = self.__getattr__("level_%d" % i)(x)
            return x
    return Tree()


def test_module_getattr_called_directly_finds_layers_as_in_torch():
    ours, theirs = both(_levels)
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    assert_same(ours(mc.tensor(x)), theirs(torch.tensor(x)))
    assert ours.__getattr__("level_1") is ours.level_1


def test_module_getattr_of_a_missing_name_is_torchs_attribute_error():
    errors = []
    for module in both(_levels):
        with pytest.raises(AttributeError) as info:
            module.__getattr__("level_9")
        errors.append(str(info.value))
    assert errors[0] == errors[1] == "'Tree' object has no attribute 'level_9'"


# -- Variable ----------------------------------------------------------------------------------------


def test_variable_is_a_detached_tensor_sharing_memory_as_in_torch():
    for lib, V in ((mc, Variable), (torch, torch.autograd.Variable)):
        t = lib.ones(3)
        v = V(t, requires_grad=True)
        assert v is not t and v.requires_grad and v.is_leaf and not t.requires_grad
        with lib.no_grad():
            v[0] = 5.0
        assert float(t[0]) == 5.0, lib.__name__  # the same memory
        assert isinstance(t, V) and not V(t).requires_grad
        made = V(lib.ones(2, requires_grad=True) * 2)
        assert made.grad_fn is None
        assert tuple(V().shape) == (0,)


def test_variable_volatile_warns_and_a_list_is_a_type_error_as_in_torch():
    for V in (Variable, torch.autograd.Variable):
        with pytest.warns(UserWarning, match="volatile was removed"):
            V(mc.ones(1) if V is Variable else torch.ones(1), volatile=True)
        with pytest.raises(TypeError, match="Variable data has to be a tensor, but got list"):
            V([1, 2])


# -- grad_fn.next_functions --------------------------------------------------------------------------


def _walk(fn, depth=0):
    """The graph from fn as nested tuples of 'node' / 'leaf' / None, as torch's walkers see it."""
    if fn is None:
        return None
    if not fn.next_functions and hasattr(fn, "variable"):
        return "leaf"
    return tuple(_walk(f, depth + 1) for f, _ in fn.next_functions)


def _net(lib):
    w = lib.ones(3, 2, requires_grad=True)
    b = lib.zeros(2, requires_grad=True)
    x = lib.ones(4, 3)
    loss = ((x @ w + b).relu() * 2).sum()
    return loss, w


def test_next_functions_walk_the_same_graph_as_torch():
    (ours, w_ours), (theirs, w_theirs) = both(_net)
    assert _walk(ours.grad_fn) == _walk(theirs.grad_fn)
    assert ours.grad_fn.name() == theirs.grad_fn.name() == "SumBackward0"


def test_next_functions_end_in_one_accumulate_grad_per_leaf_holding_it():
    loss, w = _net(mc)
    ends = []

    def collect(fn):
        for f, _ in fn.next_functions:
            if f is not None and hasattr(f, "variable"):
                ends.append(f)
            elif f is not None:
                collect(f)
    collect(loss.grad_fn)
    assert any(e.variable is w for e in ends)
    again = [e for e in ends if e.variable is w]
    assert all(e is again[0] for e in again)  # one per leaf, as torch's
    assert again[0].name() == "torch::autograd::AccumulateGrad"


# -- a float where torch wants an int ----------------------------------------------------------------

FLOAT_SIZES = {
    "empty(30.0)": lambda lib: lib.empty(30.0),
    "zeros(2, 3.0)": lambda lib: lib.zeros((2, 3.0)),
    "ones((2.0,))": lambda lib: lib.ones((2.0,)),
    "full((2.0,), 1)": lambda lib: lib.full((2.0,), 1.0),
    "rand(2.5)": lambda lib: lib.rand(2.5),
    "randn(np.float64(2))": lambda lib: lib.randn(np.float64(2)),
    "randint(0, 5, (2.0,))": lambda lib: lib.randint(0, 5, (2.0,)),
    "randperm(3.0)": lambda lib: lib.randperm(3.0),
    "eye(2.0)": lambda lib: lib.eye(2.0),
    "view(3.0, 2)": lambda lib: lib.ones(2, 3).view(3.0, 2),
    "reshape(3.0, 2)": lambda lib: lib.ones(2, 3).reshape((3.0, 2)),
    "expand(2, 3.0)": lambda lib: lib.ones(1, 3).expand(2, 3.0),
    "unsqueeze(0.0)": lambda lib: lib.ones(2).unsqueeze(0.0),
    "sum(1.0)": lambda lib: lib.ones(2, 3).sum(1.0),
    "transpose(0.0, 1)": lambda lib: lib.ones(2, 3).transpose(0.0, 1),
    "topk(1.0)": lambda lib: lib.ones(3).topk(1.0),
    "Linear(3, 2.0)": lambda lib: lib.nn.Linear(3, 2.0),
    "Conv2d(24, 30.0, 1)": lambda lib: lib.nn.Conv2d(24, 30.0, 1),
    "BatchNorm2d(4.0)": lambda lib: lib.nn.BatchNorm2d(4.0),
    "Flatten(1.0)": lambda lib: lib.nn.Flatten(1.0)(lib.ones(2, 3)),
}


@pytest.mark.parametrize("call", FLOAT_SIZES, ids=list(FLOAT_SIZES))
def test_a_float_size_is_a_type_error_as_in_torch(call):
    for lib in (torch, mc):
        with pytest.raises(TypeError):
            FLOAT_SIZES[call](lib)


def test_a_float_size_error_names_the_function_and_the_position():
    with pytest.raises(TypeError, match=r"empty\(\): argument 'size' must be tuple of ints, but found element "
                                        r"of type float at pos 0"):
        mc.empty(30.0)
    with pytest.raises(TypeError, match="out_channels must be a positive int, got 30.0"):
        mnn.Conv2d(24, 30.0, 1)


@pytest.mark.parametrize("size", [np.int64(3), 3, (np.int32(2), 3)], ids=["np.int64", "int", "tuple"])
def test_integer_sizes_of_any_integer_type_are_taken_as_in_torch(size):
    assert tuple(mc.zeros(size).shape) == tuple(torch.zeros(size).shape)
    assert tuple(mc.zeros(mc.tensor(3)).shape) == tuple(torch.zeros(torch.tensor(3)).shape) == (3,)


# -- NumPy's keywords and names ----------------------------------------------------------------------

REDUCTIONS = ["sum", "mean", "amax", "amin", "std", "var", "argmax", "argmin", "softmax", "log_softmax", "max",
              "min"]


@settings(max_examples=60, deadline=None)
@given(ndim=st.integers(1, 3), name=st.sampled_from(REDUCTIONS), keep=st.booleans(), data=st.data())
def test_axis_and_keepdims_mean_dim_and_keepdim_as_in_torch(ndim, name, keep, data):
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    axis = data.draw(st.integers(-ndim, ndim - 1))
    assume(not (name in ("std", "var") and shape[axis] < 2))
    x = np.random.default_rng(data.draw(st.integers(0, 2**31))).standard_normal(shape)
    kwargs = {"axis": axis} if name in ("softmax", "log_softmax") else {"axis": axis, "keepdims": keep}
    ours, theirs = getattr(mc.tensor(x), name)(**kwargs), getattr(torch.tensor(x), name)(**kwargs)
    if name in ("max", "min"):  # (values, indices)
        assert_same(ours.values, theirs.values)
        assert_same(ours.indices, theirs.indices)
    else:
        assert_same(ours, theirs)
        assert_same(getattr(mc, name)(mc.tensor(x), **kwargs), getattr(torch, name)(torch.tensor(x), **kwargs))


def test_cat_and_stack_take_axis_and_functional_does_not_as_in_torch():
    a = np.arange(6.0).reshape(2, 3)
    for fn in ("cat", "concat", "concatenate", "stack"):
        assert_same(getattr(mc, fn)([mc.tensor(a), mc.tensor(a)], axis=1),
                    getattr(torch, fn)([torch.tensor(a), torch.tensor(a)], axis=1))
    for lib in (mc, torch):  # torch.nn.functional is Python, and takes torch's keywords only
        with pytest.raises(TypeError):
            lib.nn.functional.softmax(lib.tensor(a), axis=0)


def test_dim_and_axis_together_are_a_type_error_as_in_torch():
    for lib in (mc, torch):
        with pytest.raises(TypeError):
            lib.ones(2, 3).sum(dim=0, axis=1)


BINARY = ["multiply", "divide", "true_divide", "subtract", "greater", "greater_equal", "less", "less_equal",
          "not_equal"]
UNARY = ["absolute", "negative"]


@pytest.mark.parametrize("name", BINARY)
def test_numpy_binary_names_equal_torchs_with_gradients(name):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)) + 3.0
    ours = getattr(mc, name)(mc.tensor(a, requires_grad=True), mc.tensor(b))
    theirs = getattr(torch, name)(torch.tensor(a, requires_grad=True), torch.tensor(b))
    assert_same(ours, theirs)
    assert_same(getattr(mc.tensor(a), name)(mc.tensor(b)), getattr(torch.tensor(a), name)(torch.tensor(b)))
    if theirs.requires_grad:
        xa, ta = mc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        getattr(xa, name)(mc.tensor(b)).sum().backward()
        getattr(ta, name)(torch.tensor(b)).sum().backward()
        assert_same(xa.grad, ta.grad)


@pytest.mark.parametrize("name", UNARY)
def test_numpy_unary_names_equal_torchs_with_gradients(name):
    a = np.random.default_rng(2).standard_normal((3, 4))
    xa, ta = mc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    ours, theirs = getattr(mc, name)(xa), getattr(torch, name)(ta)
    assert_same(ours, theirs)
    (ours * ours).sum().backward()
    (theirs * theirs).sum().backward()
    assert_same(xa.grad, ta.grad)


@settings(max_examples=40, deadline=None)
@given(ndim=st.integers(1, 4), data=st.data())
def test_swapaxes_movedim_and_moveaxis_are_torchs_views(ndim, data):
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
    d0, d1 = data.draw(st.integers(-ndim, ndim - 1)), data.draw(st.integers(-ndim, ndim - 1))
    x = np.random.default_rng(0).standard_normal(shape)
    for name in ("swapaxes", "swapdims", "movedim", "moveaxis"):
        xa, ta = mc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ours, theirs = getattr(mc, name)(xa, d0, d1), getattr(torch, name)(ta, d0, d1)
        assert_same(ours, theirs)
        weights = np.random.default_rng(1).standard_normal(tuple(theirs.shape))
        (ours * mc.tensor(weights)).sum().backward()
        (theirs * torch.tensor(weights)).sum().backward()
        assert_same(xa.grad, ta.grad)
        assert ours._base is xa  # a view, as torch's


def test_movedim_of_several_dims_equals_torchs():
    x = np.arange(24.0).reshape(2, 3, 4)
    assert_same(mc.tensor(x).movedim((0, 1), (2, 0)), torch.tensor(x).movedim((0, 1), (2, 0)))
    for lib in (mc, torch):
        with pytest.raises(RuntimeError):
            lib.ones(2, 3).movedim((0, 1), (1,))


@settings(max_examples=60, deadline=None)
@given(mode=st.sampled_from([None, "floor", "trunc"]), integer=st.booleans(), data=st.data())
def test_div_rounding_modes_equal_torchs(mode, integer, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    if integer:
        a, b = rng.integers(-20, 20, (5,)), rng.integers(1, 6, (5,)) * rng.choice([-1, 1], 5)
        assume(mode is not None)  # torch's true division of ints gives floats; that is div's own test
    else:
        a, b = rng.standard_normal(5) * 10, rng.standard_normal(5) + 0.1
    assert_same(mc.tensor(a).div(mc.tensor(b), rounding_mode=mode),
                torch.tensor(a).div(torch.tensor(b), rounding_mode=mode))
    x, y = mc.tensor(a.copy()), torch.tensor(a.copy())
    x.div_(mc.tensor(b), rounding_mode=mode) if not integer or mode else None
    y.div_(torch.tensor(b), rounding_mode=mode)
    assert_same(x, y)


def test_an_unknown_rounding_mode_is_torchs_error():
    for lib in (mc, torch):
        with pytest.raises(RuntimeError, match="rounding_mode"):
            lib.ones(2).div(2, rounding_mode="round")


def test_ndim_T_mT_nbytes_itemsize_and_ndimension_are_torchs():
    x = np.arange(24.0, dtype=np.float32).reshape(2, 3, 4)
    ours, theirs = mc.tensor(x), torch.tensor(x)
    assert (ours.ndim, ours.ndimension(), ours.nbytes, ours.itemsize) == \
           (theirs.ndim, theirs.ndimension(), theirs.nbytes, theirs.itemsize)
    assert_same(ours.mT, theirs.mT)
    assert_same(ours[0].T, theirs[0].T)


# -- the calls of a script on a CPU machine ----------------------------------------------------------


def test_device_choice_and_cudnn_flags_as_scripts_write_them():
    import minicnn.backends.cudnn as cudnn
    device = "cuda" if mc.cuda.is_available() else "cpu"
    assert mc.device(device).type == device
    assert mc.cuda.is_available() == (mc.cuda.device_count() > 0)
    before = (cudnn.benchmark, cudnn.deterministic)
    try:
        cudnn.benchmark = True
        mc.backends.cudnn.deterministic = True
        assert mc.backends.cudnn.benchmark is True and cudnn.deterministic is True
    finally:
        cudnn.benchmark, cudnn.deterministic = before
    assert mc.backends.mps.is_available() is False and mc.backends.mps.is_built() is False
    assert cudnn.is_available() is False  # minicnn calls no cuDNN


def test_the_official_examples_device_line_runs():
    use_accel = mc.accelerator.is_available()
    assert use_accel == mc.cuda.is_available()
    device = mc.accelerator.current_accelerator() if use_accel else mc.device("cpu")
    assert device.type == ("cuda" if use_accel else "cpu")
    if not torch.accelerator.is_available() and not use_accel:  # both on a CPU-only machine
        assert mc.accelerator.current_accelerator() is torch.accelerator.current_accelerator() is None


def test_no_gpu_means_current_device_is_an_error_that_says_why():
    if mc.cuda.is_available():
        pytest.skip("a GPU is here: current_device() answers 0")
    with pytest.raises(RuntimeError, match="No CUDA GPUs are available"):
        mc.cuda.current_device()
    mc.cuda.empty_cache()  # nothing to free, no error


def test_threads_seeds_and_determinism_switches():
    before = mc.get_num_threads()
    try:
        mc.set_num_threads(1)
        assert mc.get_num_threads() == 1
    finally:
        mc.set_num_threads(before)
    mc.manual_seed(3)
    a = mc.randn(4)
    mc.manual_seed(3)
    assert mc.equal(a, mc.randn(4))
    s = mc.seed()
    b = mc.randn(4)
    mc.manual_seed(s)
    assert isinstance(s, int) and mc.equal(b, mc.randn(4))
    mc.use_deterministic_algorithms(True)
    assert mc.are_deterministic_algorithms_enabled()
    mc.use_deterministic_algorithms(False)
    mc.set_float32_matmul_precision("high")
    assert mc.get_float32_matmul_precision() == "high"
    mc.set_float32_matmul_precision("highest")
    with pytest.raises(RuntimeError):
        mc.set_float32_matmul_precision("fast")


def test_inference_mode_false_records_as_in_torch():
    for lib in (mc, torch):
        x = lib.ones(2, requires_grad=True)
        with lib.inference_mode():
            assert not (x * 2).requires_grad
        with lib.inference_mode(False):
            assert (x * 2).requires_grad

        @lib.inference_mode()
        def f():
            return (x * 2).requires_grad
        assert f() is False


def test_editing_param_groups_lr_changes_the_next_step_as_in_torch():
    w0 = np.array([1.0, -2.0, 3.0])
    results = []
    for lib in (mc, torch):
        w = lib.tensor(w0.copy(), requires_grad=True)
        opt = lib.optim.SGD([w], lr=0.1, momentum=0.9)
        for step in range(4):
            opt.zero_grad()
            (w * w).sum().backward()
            opt.step()
            for group in opt.param_groups:
                group["lr"] = group["lr"] * 0.5
        results.append(w.detach().numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)


def test_autograd_backward_of_several_tensors_is_one_pass_as_in_torch():
    grads, calls = [], []
    for lib in (mc, torch):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 2
        y.register_hook(lambda g, lib=lib: calls.append(lib.__name__))
        lib.autograd.backward([(y * y).sum(), y * 3], [None, lib.tensor([1.0, 0.0, 2.0])])
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1])
    assert calls == ["minicnn", "torch"]  # the hook saw one summed gradient in each


def test_init_takes_torchs_keywords_and_trunc_normal_keeps_to_its_bounds():
    w = mnn.Parameter(mc.zeros(2000))
    mnn.init.constant_(tensor=w, val=0.5)
    assert float(w.sum()) == 1000.0
    mc.manual_seed(0)
    mnn.init.trunc_normal_(w, mean=0.0, std=1.0, a=-0.5, b=1.0)
    values = w.detach().numpy()
    assert values.min() >= -0.5 and values.max() <= 1.0 and values.std() > 0.35
    # the mean of N(0, 1) cut to [-0.5, 1]: (phi(-0.5) - phi(1)) / (Phi(1) - Phi(-0.5)) = 0.2066, std 0.4157
    assert abs(values.mean() - 0.2066) < 0.03 and abs(values.std() - 0.4157) < 0.03  # 3 standard errors
    mnn.init.ones_(w)
    assert float(w.min()) == 1.0
    with pytest.raises(TypeError, match="generator must be a minicnn.Generator"):
        mnn.init.normal_(w, generator=object())
    first = mnn.init.normal_(mnn.Parameter(mc.zeros(5)), generator=mc.Generator().manual_seed(1)).detach().numpy()
    again = mnn.init.normal_(mnn.Parameter(mc.zeros(5)), generator=mc.Generator().manual_seed(1)).detach().numpy()
    np.testing.assert_array_equal(first, again)


def test_load_refuses_a_pickle_module_it_would_not_use(tmp_path):
    path = tmp_path / "x.pt"
    mc.save({"a": mc.ones(2)}, str(path))
    import pickle
    with pytest.raises(TypeError, match="pickle_module is not supported"):
        mc.load(str(path), pickle_module=pickle)
    assert mc.equal(mc.load(str(path), "cpu", weights_only=True)["a"], mc.ones(2))


def test_data_parallel_on_one_device_keeps_torchs_module_prefix_and_output():
    ours, theirs = mnn.DataParallel(mnn.Linear(3, 2)), torch.nn.DataParallel(torch.nn.Linear(3, 2))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["module.weight", "module.bias"]
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    assert_same(ours(mc.tensor(x)), theirs(torch.tensor(x)))
    assert_same(mnn.parallel.data_parallel(ours.module, mc.tensor(x)), theirs(torch.tensor(x)))
    with pytest.raises(ValueError, match="one device"):
        mnn.DataParallel(mnn.Linear(3, 2), device_ids=[0, 1])


def test_device_and_layout_flags_scripts_test_are_torchs_on_the_cpu():
    for t in (mc.ones(2), torch.ones(2)):
        assert (t.is_cpu, t.is_cuda, t.is_mps, t.is_xpu, t.is_meta, t.is_sparse, t.is_quantized) == \
               (True, False, False, False, False, False, False)


# -- more of torch's Tensor methods, built from recorded ops: values and gradients against torch -----


def _grad_pair(x, fn_ours, fn_theirs):
    """(ours, theirs) outputs, and the input gradients of sum(out * w) for a fixed w, compared."""
    xa, ta = mc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours, theirs = fn_ours(xa), fn_theirs(ta)
    outs = list(ours) if isinstance(ours, tuple) else [ours]
    refs = list(theirs) if isinstance(theirs, tuple) else [theirs]
    assert len(outs) == len(refs)
    total_o, total_t = 0, 0
    for k, (o, r) in enumerate(zip(outs, refs)):
        assert_same(o, r)
        w = np.random.default_rng(k).standard_normal(tuple(r.shape))
        total_o = total_o + (o * mc.tensor(w)).sum()
        total_t = total_t + (r * torch.tensor(w)).sum()
    total_o.backward()
    total_t.backward()
    assert_same(xa.grad, ta.grad)


@settings(max_examples=60, deadline=None)
@given(ndim=st.integers(1, 3), data=st.data())
def test_split_chunk_narrow_unbind_equal_torchs_with_gradients(ndim, data):
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    dim = data.draw(st.integers(-ndim, ndim - 1))
    n = shape[dim]
    x = np.random.default_rng(0).standard_normal(shape)
    size = data.draw(st.integers(1, n + 1))
    _grad_pair(x, lambda t: t.split(size, dim), lambda t: t.split(size, dim))
    sections = data.draw(st.lists(st.integers(0, n), min_size=1, max_size=3))
    assume(sum(sections) <= n)
    sections = sections + [n - sum(sections)]
    _grad_pair(x, lambda t: t.split(sections, dim), lambda t: t.split(sections, dim))
    chunks = data.draw(st.integers(1, 6))
    _grad_pair(x, lambda t: t.chunk(chunks, dim), lambda t: t.chunk(chunks, dim))
    start = data.draw(st.integers(-n, n - 1))
    length = data.draw(st.integers(0, n - (start % n)))
    _grad_pair(x, lambda t: t.narrow(dim, start, length), lambda t: t.narrow(dim, start, length))
    _grad_pair(x, lambda t: t.unbind(dim), lambda t: t.unbind(dim))


@settings(max_examples=40, deadline=None)
@given(ndim=st.integers(1, 3), extra=st.integers(0, 2), data=st.data())
def test_repeat_and_flip_equal_torchs_with_gradients(ndim, extra, data):
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
    reps = tuple(data.draw(st.lists(st.integers(0, 3), min_size=ndim + extra, max_size=ndim + extra)))
    x = np.random.default_rng(1).standard_normal(shape)
    _grad_pair(x, lambda t: t.repeat(*reps), lambda t: t.repeat(*reps))
    dims = tuple(data.draw(st.sets(st.integers(0, ndim - 1), min_size=1)))
    _grad_pair(x, lambda t: t.flip(dims), lambda t: t.flip(dims))


def test_index_select_square_and_the_nan_tests_equal_torchs():
    x = np.random.default_rng(2).standard_normal((3, 4))
    _grad_pair(x, lambda t: t.index_select(1, mc.tensor([3, 0, 3])),
               lambda t: t.index_select(1, torch.tensor([3, 0, 3])))
    _grad_pair(x, lambda t: t.square(), lambda t: t.square())
    y = np.array([1.0, np.nan, np.inf, -np.inf])
    for name in ("isnan", "isinf", "isfinite"):
        assert_same(getattr(mc.tensor(y), name)(), getattr(torch.tensor(y), name)())


def test_scatter_makes_the_one_hot_of_torch_programs_and_refuses_a_recorded_write():
    labels = np.array([3, 0, 9, 3])
    ours = mc.zeros(4, 10).scatter_(1, mc.tensor(labels).unsqueeze(1), 1.0)
    theirs = torch.zeros(4, 10).scatter_(1, torch.tensor(labels).unsqueeze(1), 1.0)
    assert_same(ours, theirs)
    src = np.arange(6.0).reshape(2, 3)
    index = np.array([[1, 0, 1]])
    assert_same(mc.zeros(2, 3, dtype=mc.float64).scatter_(0, mc.tensor(index), mc.tensor(src)),
                torch.zeros(2, 3, dtype=torch.float64).scatter_(0, torch.tensor(index), torch.tensor(src)))
    with pytest.raises(RuntimeError, match="does not record scatter"):
        mc.zeros(2, 3).scatter_(0, mc.tensor(index), mc.ones(2, 3, requires_grad=True))


def test_new_tensors_stride_and_data_ptr_are_torchs():
    x = np.arange(12.0).reshape(3, 4)
    ours, theirs = mc.tensor(x), torch.tensor(x)
    for name, args in (("new_zeros", (2, 3)), ("new_ones", ((2,),)), ("new_empty", (0,))):
        o, t = getattr(ours, name)(*args), getattr(theirs, name)(*args)
        assert (o.dtype, tuple(o.shape)) == (np.float64, tuple(t.shape))
    assert_same(ours.new_full((2,), 7.0), theirs.new_full((2,), 7.0))
    assert_same(ours.new_tensor([1.0, 2.0]), theirs.new_tensor([1.0, 2.0]))
    assert ours.stride() == theirs.stride() and ours.t().stride() == theirs.t().stride()
    assert ours.stride(1) == theirs.stride(1)
    assert ours.view(12).data_ptr() == ours.data_ptr() != ours.clone().data_ptr()


def test_the_function_forms_equal_the_methods_as_in_torch():
    x = np.arange(12.0).reshape(3, 4)
    for name, args in (("split", (2, 1)), ("chunk", (2,)), ("narrow", (1, 1, 2)), ("unbind", (0,)),
                       ("flip", ((0, 1),)), ("square", ()), ("isnan", ())):
        ours, theirs = getattr(mc, name)(mc.tensor(x), *args), getattr(torch, name)(torch.tensor(x), *args)
        for o, t in zip(ours if isinstance(ours, tuple) else [ours], theirs if isinstance(theirs, tuple) else [theirs],
                        strict=True):
            assert_same(o, t)



# -- Generator objects --------------------------------------------------------------------------------


def test_a_seeded_generator_gives_the_same_split_on_every_run_as_torchs_idiom():
    from minicnn.utils.data import TensorDataset, random_split
    data = TensorDataset(mc.arange(100))
    splits = [random_split(data, [70, 30], generator=mc.Generator().manual_seed(42))[0].indices for _ in range(2)]
    assert splits[0] == splits[1]
    other = random_split(data, [70, 30], generator=mc.Generator().manual_seed(43))[0].indices
    assert other != splits[0]
    g = mc.Generator().manual_seed(42)  # one generator used twice advances, as torch's does
    assert random_split(data, [70, 30], generator=g)[0].indices == splits[0]
    assert random_split(data, [70, 30], generator=g)[0].indices != splits[0]
    for lib in (mc, torch):  # the same behaviour in torch
        tdata = (TensorDataset if lib is mc else torch.utils.data.TensorDataset)(lib.arange(100))
        split = (random_split if lib is mc else torch.utils.data.random_split)
        g = lib.Generator().manual_seed(7)
        assert split(tdata, [70, 30], generator=g)[0].indices != split(tdata, [70, 30], generator=g)[0].indices


def test_generator_streams_are_their_own_and_their_state_round_trips():
    g = mc.Generator().manual_seed(5)
    mc.manual_seed(0)
    a = mc.rand(4, generator=g)
    mc.manual_seed(1)  # the global stream does not touch g's
    assert mc.equal(a, mc.rand(4, generator=mc.Generator().manual_seed(5)))
    state = g.get_state()
    assert state.dtype == np.uint8
    b = mc.randn(3, generator=g)
    g.set_state(state)
    assert mc.equal(b, mc.randn(3, generator=g))
    assert g.initial_seed() == 5 and isinstance(g.seed(), int)
    x = mc.zeros(3).normal_(generator=mc.Generator().manual_seed(2))
    assert mc.equal(x, mc.zeros(3).normal_(generator=mc.Generator().manual_seed(2)))
    p = mc.randperm(10, generator=mc.Generator().manual_seed(3))
    assert mc.equal(p, mc.randperm(10, generator=mc.Generator().manual_seed(3)))
    with pytest.raises(RuntimeError, match="set_state"):
        g.set_state(mc.tensor([1, 2, 3], dtype=mc.uint8))


def test_manual_seed_returns_the_default_generator_and_initial_seed_reads_it_as_torch():
    for lib in (mc, torch):
        g = lib.manual_seed(1234)
        assert g.initial_seed() == lib.initial_seed() == 1234
        lib.manual_seed(-1)
        assert lib.initial_seed() == 2 ** 64 - 1
    assert mc.manual_seed(3) is mc.default_generator
    a = mc.rand(3)
    mc.default_generator.manual_seed(3)
    assert mc.equal(a, mc.rand(3))


def test_chunk_of_an_empty_dim_gives_torchs_empty_pieces():
    for lib in (mc, torch):
        pieces = lib.ones(0, 2).chunk(3)
        assert [tuple(p.shape) for p in pieces] == [(0, 2)] * 3
