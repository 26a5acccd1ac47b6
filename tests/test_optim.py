"""minicnn.optim against torch.optim: the same gradients give the same parameter trajectory
(float64 within 1e-10, float32 within float32 rounding) in every setting; parameter groups,
frozen and shared parameters behave as torch's; state_dict / load_state_dict copy, survive a
JSON round trip and resume a run bit for bit; the schedulers give torch's learning rates (and
OneCycleLR torch's momentum) at every step; invalid settings fail with torch's errors."""

import itertools
import json
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import backend as B
from minicnn import nn, optim
from minicnn.optim import lr_scheduler

SHAPES = [(3, 4), (5,), (2, 1, 3, 3)]
STEPS = 20


def make_params(seed=0, dtype=np.float64, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]


def torch_params(params):
    return [torch.tensor(B.to_numpy(p.array).copy(), requires_grad=True) for p in params]


def gradient_sequence(steps, seed=1, dtype=np.float64, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]


def run_ours(opt, params, grads):
    """Feed each step's gradients to .grad, step; the parameters (NumPy copies) after every step."""
    trajectory = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = minicnn.tensor(B.to_device(g.copy()))
        opt.step()
        trajectory.append([B.to_numpy(p.array).copy() for p in params])
    return trajectory


def run_torch(opt, params, grads):
    trajectory = []
    for step_grads in grads:
        for t, g in zip(params, step_grads):
            t.grad = torch.tensor(g.copy())
        opt.step()
        trajectory.append([t.detach().numpy().copy() for t in params])
    return trajectory


def assert_same_trajectory(ours, theirs, rtol=1e-10, atol=1e-10):
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for pa, pb in zip(a, b):
            assert pa.dtype == pb.dtype
            np.testing.assert_allclose(pa, pb, rtol=rtol, atol=atol, err_msg=f"step {step + 1}")


def compare_with_torch(name, kwargs, dtype=np.float64, rtol=1e-10, atol=1e-10, steps=STEPS):
    grads = gradient_sequence(steps, dtype=dtype)
    params = make_params(dtype=dtype)
    t_params = torch_params(params)
    ours = run_ours(getattr(optim, name)(params, **kwargs), params, grads)
    theirs = run_torch(getattr(torch.optim, name)(t_params, **kwargs), t_params, grads)
    assert_same_trajectory(ours, theirs, rtol, atol)


def label(kwargs):
    return ",".join(f"{k}={v}" for k, v in kwargs.items())


# -- update rules against torch ------------------------------------------------------------------

SGD_SETTINGS = [
    dict(lr=0.1, momentum=m, dampening=d, weight_decay=wd, nesterov=n)
    for m, d, wd, n in itertools.product([0.0, 0.9], [0.0, 0.1], [0.0, 1e-2], [False, True])
    if not (n and (m == 0 or d != 0))  # torch: nesterov needs momentum and zero dampening
] + [dict(lr=0.05, momentum=0.5, maximize=True), dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1,
                                                      maximize=True)]


@pytest.mark.parametrize("kwargs", SGD_SETTINGS, ids=label)
def test_sgd_follows_torchs_trajectory_for_20_steps(kwargs):
    compare_with_torch("SGD", kwargs)


ADAM_SETTINGS = [
    dict(lr=1e-2, betas=b, eps=e, weight_decay=wd, amsgrad=a)
    for b, e, wd, a in itertools.product([(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)], [1e-8, 1e-3], [0.0, 1e-2],
                                         [False, True])
] + [dict(lr=1e-2, maximize=True), dict(lr=1e-2, amsgrad=True, weight_decay=0.1, maximize=True)]


@pytest.mark.parametrize("kwargs", ADAM_SETTINGS, ids=label)
def test_adam_follows_torchs_trajectory_for_20_steps(kwargs):
    compare_with_torch("Adam", kwargs)


ADAMW_SETTINGS = [dict(lr=1e-2, weight_decay=wd, amsgrad=a, betas=b)
                  for wd, a, b in itertools.product([0.0, 1e-2, 0.3], [False, True], [(0.9, 0.999), (0.6, 0.95)])]


@pytest.mark.parametrize("kwargs", ADAMW_SETTINGS, ids=label)
def test_adamw_follows_torchs_trajectory_for_20_steps(kwargs):
    compare_with_torch("AdamW", kwargs)


def test_adamw_defaults_are_torchs_and_decay_is_decoupled():
    """AdamW's weight_decay is 1e-2 by default, and it is not Adam's L2 term (trajectories differ)."""
    params = make_params()
    assert optim.AdamW(params).defaults["weight_decay"] == torch.optim.AdamW(torch_params(params)).defaults[
        "weight_decay"] == 1e-2
    compare_with_torch("AdamW", dict(lr=1e-2))
    grads = gradient_sequence(5)
    a, b = make_params(), make_params()
    adamw = run_ours(optim.AdamW(a, lr=1e-2, weight_decay=0.1), a, grads)[-1]
    adam = run_ours(optim.Adam(b, lr=1e-2, weight_decay=0.1), b, grads)[-1]
    assert not np.allclose(adamw[0], adam[0], rtol=1e-6, atol=0)


@settings(max_examples=25)
@given(kind=st.sampled_from(["SGD", "Adam", "AdamW"]), lr=st.floats(1e-4, 0.5), beta=st.floats(0.0, 0.99),
       beta2=st.floats(0.5, 0.9999), weight_decay=st.sampled_from([0.0, 1e-3, 0.1]), flag=st.booleans(),
       shapes=st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple), min_size=1, max_size=3))
def test_random_settings_and_shapes_follow_torch(kind, lr, beta, beta2, weight_decay, flag, shapes):
    """beta is SGD's momentum (flag: nesterov, when momentum > 0) or Adam's beta1 (flag: amsgrad)."""
    if kind == "SGD":
        kwargs = dict(lr=lr, momentum=beta, weight_decay=weight_decay, nesterov=flag and beta > 0)
    else:
        kwargs = dict(lr=lr, betas=(beta, beta2), weight_decay=weight_decay, amsgrad=flag)
    grads = gradient_sequence(10, shapes=shapes)
    params = make_params(shapes=shapes)
    t_params = torch_params(params)
    ours = run_ours(getattr(optim, kind)(params, **kwargs), params, grads)
    theirs = run_torch(getattr(torch.optim, kind)(t_params, **kwargs), t_params, grads)
    assert_same_trajectory(ours, theirs)


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("Adam", dict(lr=0.05, weight_decay=1e-2)),
    ("Adam", dict(lr=0.05, betas=(0.5, 0.9), amsgrad=True)),
    ("AdamW", dict(lr=0.05, amsgrad=True)),
], ids=lambda v: v if isinstance(v, str) else label(v))
def test_float32_follows_torchs_float32_trajectory_and_stays_float32(name, kwargs):
    compare_with_torch(name, kwargs, dtype=np.float32, rtol=2e-5, atol=2e-6)
    params = make_params(dtype=np.float32)
    opt = getattr(optim, name)(params, **kwargs)
    run_ours(opt, params, gradient_sequence(3, dtype=np.float32))
    assert all(p.dtype == np.float32 for p in params)
    buffers = [v for s in opt.state.values() for v in s.values() if isinstance(v, minicnn.Tensor)]
    assert buffers and all(v.dtype == np.float32 for v in buffers)


@pytest.mark.parametrize("make", [
    lambda ps, lr: optim.SGD(ps, lr=lr, momentum=0.9, weight_decay=1e-2, nesterov=True),
    lambda ps, lr: optim.Adam(ps, lr=lr, weight_decay=1e-2, amsgrad=True),
])
def test_a_numpy_float64_learning_rate_does_not_promote_float32_arithmetic(make):
    """NumPy 2 lets a np.float64 scalar turn float32 arithmetic into float64: the steps use Python floats."""
    a, b = make_params(dtype=np.float32), make_params(dtype=np.float32)
    grads = gradient_sequence(4, dtype=np.float32)
    with_numpy_lr = run_ours(make(a, np.float64(0.1)), a, grads)
    with_float_lr = run_ours(make(b, 0.1), b, grads)
    for x, y in zip(with_numpy_lr[-1], with_float_lr[-1]):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("make, torch_class, kwargs", [
    (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True), torch.optim.SGD,
     dict(lr=0.05, momentum=0.9, nesterov=True)),
    (lambda ps: optim.Adam(ps, lr=0.05, amsgrad=True), torch.optim.Adam, dict(lr=0.05, amsgrad=True)),
])
def test_optimizers_follow_torch_on_a_real_quadratic_loss_through_autograd(make, torch_class, kwargs):
    """Minimise 0.5 * |A p - y|^2 for 25 steps with backward(); the gradient depends on the trajectory."""
    rng = np.random.default_rng(0)
    A, y, p0 = rng.standard_normal((6, 4)), rng.standard_normal(6), rng.standard_normal(4)
    p = nn.Parameter(p0.copy())
    opt = make([p])
    t_p = torch.tensor(p0.copy(), requires_grad=True)
    t_opt = torch_class([t_p], **kwargs)
    for _ in range(25):
        opt.zero_grad()
        (0.5 * ((minicnn.tensor(A) @ p - minicnn.tensor(y)) ** 2).sum()).backward()
        opt.step()
        t_opt.zero_grad()
        (0.5 * ((torch.tensor(A) @ t_p - torch.tensor(y)) ** 2).sum()).backward()
        t_opt.step()
        np.testing.assert_allclose(p.array, t_p.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_steps_follow_torch_on_every_backend(backend):
    """The same update on NumPy and on CuPy arrays (compared with torch on the host)."""
    kwargs = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)
    grads = gradient_sequence(5)
    params = [nn.Parameter(B.to_device(p.array)) for p in make_params()]
    assert all(type(p.array).__module__.split(".")[0] == backend.__name__ for p in params)
    t_params = torch_params(make_params())
    assert_same_trajectory(run_ours(optim.SGD(params, **kwargs), params, grads),
                           run_torch(torch.optim.SGD(t_params, **kwargs), t_params, grads))
    params = [nn.Parameter(B.to_device(p.array)) for p in make_params()]
    t_params = torch_params(make_params())
    assert_same_trajectory(run_ours(optim.Adam(params, lr=0.05, amsgrad=True), params, grads),
                           run_torch(torch.optim.Adam(t_params, lr=0.05, amsgrad=True), t_params, grads))


# -- what step() touches ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True),
    lambda ps: optim.Adam(ps, lr=0.1, amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=0.1),
])
def test_step_updates_the_parameter_arrays_in_place_and_never_writes_the_gradients(make):
    params = make_params()
    arrays = [p.array for p in params]
    opt = make(params)
    (grads,) = gradient_sequence(1)
    for p, g in zip(params, grads):
        p.grad = minicnn.tensor(g.copy())
    for _ in range(3):  # the same gradients three times (as when accumulating without zero_grad)
        before = [p.array.copy() for p in params]
        opt.step()
        assert all(p.array is a for p, a in zip(params, arrays))  # other code holds these arrays
        assert all(not np.array_equal(p.array, b) for p, b in zip(params, before))
        for p, g in zip(params, grads):
            np.testing.assert_array_equal(p.grad.array, g)
    buffers = [v.array for s in opt.state.values() for v in s.values() if isinstance(v, minicnn.Tensor)]
    assert not any(np.shares_memory(b, p.grad.array) for b in buffers for p in params)


def test_step_bumps_the_version_so_a_backward_after_it_is_an_error():
    """A step between a forward and its backward would make the gradient use the new weights: refused."""
    layer = nn.Linear(3, 2, dtype=np.float64)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    x = minicnn.tensor(np.ones((4, 3)))
    layer(x).sum().backward()
    versions = [p._version for p in layer.parameters()]
    opt.step()
    assert [p._version for p in layer.parameters()] == [v + 1 for v in versions]
    out = layer(x).sum()
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


def test_parameters_without_a_gradient_or_frozen_are_left_alone_as_torch_leaves_them():
    params = make_params()
    t_params = torch_params(params)
    params[1].grad = None
    params[2].requires_grad_(False)
    t_params[2].requires_grad_(False)
    before = [p.array.copy() for p in params]
    versions = [p._version for p in params]
    opt = optim.Adam(params, lr=0.1)
    t_opt = torch.optim.Adam(t_params, lr=0.1)
    params[0].grad = minicnn.tensor(np.ones(SHAPES[0]))
    params[2].grad = minicnn.tensor(np.ones(SHAPES[2]))  # a frozen parameter with a stale gradient
    t_params[0].grad = torch.ones(SHAPES[0], dtype=torch.float64)
    opt.step()
    t_opt.step()
    np.testing.assert_allclose(params[0].array, t_params[0].detach().numpy(), rtol=1e-12)
    np.testing.assert_array_equal(params[1].array, before[1])
    np.testing.assert_array_equal(params[2].array, before[2])
    assert [p._version for p in params] == [versions[0] + 1, versions[1], versions[2]]
    assert list(opt.state) == [params[0]] and len(t_opt.state) == 1


def tied_pair(nn_module, dtype):
    a, b = nn_module.Linear(3, 3, dtype=dtype), nn_module.Linear(3, 3, dtype=dtype)
    b.weight = a.weight
    return nn_module.Sequential(a, b)


def test_a_weight_shared_by_two_layers_is_listed_once_and_stepped_once_as_in_torch():
    model = tied_pair(nn, np.float64)
    t_model = tied_pair(torch.nn, torch.float64)
    with torch.no_grad():
        for t, p in zip(t_model.parameters(), model.parameters()):
            t.copy_(torch.from_numpy(p.array))
    assert len(list(model.parameters())) == len(list(t_model.parameters())) == 3
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.1, momentum=0.9)
    x = np.random.default_rng(0).standard_normal((5, 3))
    for _ in range(5):
        opt.zero_grad()
        (model(minicnn.tensor(x)) ** 2).sum().backward()
        opt.step()
        t_opt.zero_grad()
        (t_model(torch.tensor(x)) ** 2).sum().backward()
        t_opt.step()
    for p, t in zip(model.parameters(), t_model.parameters()):
        np.testing.assert_allclose(p.array, t.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert model[1].weight is model[0].weight


def test_a_parameter_listed_twice_warns_and_is_stepped_twice_as_in_torch():
    p = nn.Parameter(np.zeros(2))
    t = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        opt = optim.SGD([p, p], lr=0.1)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        t_opt = torch.optim.SGD([t, t], lr=0.1)
    assert len(opt.param_groups[0]["params"]) == len(t_opt.param_groups[0]["params"]) == 2
    p.grad, t.grad = minicnn.tensor(np.ones(2)), torch.ones(2, dtype=torch.float64)
    opt.step()
    t_opt.step()
    np.testing.assert_array_equal(p.array, t.detach().numpy())


def test_step_with_a_closure_returns_its_loss():
    p = nn.Parameter(np.array([3.0]))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 9.0 and p.array[0] == 3.0 - 0.25 * 6.0


def test_a_gradient_that_does_not_fit_its_parameter_is_an_error():
    p = nn.Parameter(np.zeros(3))
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.ones(3)
    with pytest.raises(TypeError, match="grad expected to be a Tensor or None but got grad of type ndarray"):
        opt.step()
    p.grad = minicnn.tensor(np.ones(1))  # would broadcast silently
    with pytest.raises(RuntimeError, match=r"shape \(3,\).*gradient of shape \(1,\)"):
        opt.step()
    p.grad = minicnn.tensor(np.ones(3, np.float32))
    with pytest.raises(RuntimeError, match="float32"):
        opt.step()
    np.testing.assert_array_equal(p.array, np.zeros(3))


def test_zero_grad_sets_none_or_zeroes_the_gradient_in_place_as_torch():
    params = make_params()
    for p in params[:2]:
        p.grad = minicnn.tensor(np.ones(p.shape))
    opt = optim.SGD(params, lr=0.1)
    held = params[0].grad
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is held and (held.numpy() == 0).all()  # torch: zeroed in place, a reference sees it
    assert params[0].grad.dtype == np.float64
    assert params[2].grad is None  # torch: a missing gradient stays missing
    opt.zero_grad()
    assert all(p.grad is None for p in params)


# -- parameter groups ------------------------------------------------------------------------------


def test_parameter_groups_take_their_own_options_and_the_defaults_for_the_rest_as_torch():
    params = make_params()
    t_params = torch_params(params)
    ours = optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.01, "nesterov": True}],
                     lr=0.1, momentum=0.9)
    theirs = torch.optim.SGD([{"params": t_params[:1]}, {"params": t_params[1:], "lr": 0.01, "nesterov": True}],
                             lr=0.1, momentum=0.9)
    for g, tg in zip(ours.param_groups, theirs.param_groups):
        assert {k: v for k, v in g.items() if k != "params"} == {k: tg[k] for k in g if k != "params"}
    grads = gradient_sequence(STEPS)
    assert_same_trajectory(run_ours(ours, params, grads), run_torch(theirs, t_params, grads))


def test_add_param_group_adds_a_group_stepped_with_the_defaults_as_torch():
    params = make_params()
    t_params = torch_params(params)
    ours = optim.Adam(params[:2], lr=0.1)
    theirs = torch.optim.Adam(t_params[:2], lr=0.1)
    grads = gradient_sequence(10)
    run_ours(ours, params, grads[:5])  # the third parameter gets gradients but is not optimised yet
    run_torch(theirs, t_params, grads[:5])
    ours.add_param_group({"params": params[2], "betas": (0.5, 0.9)})
    theirs.add_param_group({"params": t_params[2], "betas": (0.5, 0.9)})
    assert ours.param_groups[1]["lr"] == 0.1 and ours.param_groups[1]["betas"] == (0.5, 0.9)
    assert_same_trajectory(run_ours(ours, params, grads[5:]), run_torch(theirs, t_params, grads[5:]))


def test_named_parameters_give_a_group_param_names_as_torch():
    layer = nn.Linear(2, 2)
    opt = optim.SGD(layer.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(layer.weight), id(layer.bias)]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]


def test_the_lr_property_reads_the_first_group_and_sets_every_group():
    params = make_params()
    opt = optim.SGD([{"params": params[:1], "lr": 0.5}, {"params": params[1:]}], lr=0.1)
    assert opt.lr == 0.5
    opt.lr = 0.02
    assert [g["lr"] for g in opt.param_groups] == [0.02, 0.02]
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        opt.lr = -1
    assert opt.lr == 0.02


def test_state_is_a_dict_keyed_by_parameter_as_torchs():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run_ours(opt, params, gradient_sequence(2))
    assert set(map(id, opt.state)) == set(map(id, params))
    buf = opt.state[params[1]]["momentum_buffer"]
    assert isinstance(buf, minicnn.Tensor) and buf.shape == params[1].shape


def test_repr_lists_each_group_as_torchs():
    params = make_params()
    ours, theirs = optim.SGD(params, lr=0.1), torch.optim.SGD(torch_params(params), lr=0.1)
    lines = repr(ours).splitlines()
    assert lines[:2] == repr(theirs).splitlines()[:2] == ["SGD (", "Parameter Group 0"]
    assert set(lines[2:]) <= set(repr(theirs).splitlines()[2:])


# -- state_dict / load_state_dict ---------------------------------------------------------------------


def arrays_of(state):
    return [v for s in state["state"].values() for v in s.values() if isinstance(v, minicnn.Tensor)]


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-2)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
])
def test_state_dict_has_torchs_layout_and_values(name, kwargs):
    params = make_params()
    t_params = torch_params(params)
    ours, theirs = getattr(optim, name)(params, **kwargs), getattr(torch.optim, name)(t_params, **kwargs)
    grads = gradient_sequence(3)
    run_ours(ours, params, grads)
    run_torch(theirs, t_params, grads)
    mine, torchs = ours.state_dict(), theirs.state_dict()
    assert list(mine) == ["state", "param_groups"]
    assert list(mine["state"]) == sorted(torchs["state"]) == [0, 1, 2]
    for i in mine["state"]:
        assert set(mine["state"][i]) == set(torchs["state"][i])
        for k, v in mine["state"][i].items():
            np.testing.assert_allclose(np.asarray(v), torchs["state"][i][k].numpy(), rtol=1e-10)
    group, t_group = mine["param_groups"][0], torchs["param_groups"][0]
    assert group["params"] == t_group["params"] == [0, 1, 2]
    assert all(group[k] == t_group[k] for k in group)


def test_state_dict_is_a_snapshot_that_later_steps_do_not_change():
    params = make_params()
    opt = optim.Adam(params, lr=0.1)
    grads = gradient_sequence(4)
    run_ours(opt, params, grads[:2])
    saved = opt.state_dict()
    copies = [a.array.copy() for a in arrays_of(saved)]
    run_ours(opt, params, grads[2:])
    assert saved["state"][0]["step"] == 2
    for a, c in zip(arrays_of(saved), copies):
        np.testing.assert_array_equal(a.array, c)


def json_round_trip(state):
    """What a checkpoint does (minicnn.train): arrays aside as NumPy, the rest through JSON (int keys
    become strings, tuples lists)."""
    arrays = {}

    def split(obj, key):
        if isinstance(obj, minicnn.Tensor) or hasattr(obj, "dtype"):
            arrays[key] = np.asarray(obj).copy()
            return {"__array__": key}
        if isinstance(obj, dict):
            return {str(k): split(v, f"{key}/{k}") for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [split(v, f"{key}/{i}") for i, v in enumerate(obj)]
        return obj

    def join(obj):
        if isinstance(obj, dict):
            return arrays[obj["__array__"]] if set(obj) == {"__array__"} else {k: join(v) for k, v in obj.items()}
        return [join(v) for v in obj] if isinstance(obj, list) else obj

    return join(json.loads(json.dumps(split(state, "optim"))))


RESUMABLE = [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-2),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.SGD([{"params": ps[:1], "lr": 0.3}, {"params": ps[1:]}], lr=0.1, momentum=0.5),
    lambda ps: optim.Adam(ps, lr=0.05, betas=(0.8, 0.99), weight_decay=1e-2, amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=0.05, betas=(0.8, 0.99)),
]


@pytest.mark.parametrize("through_json", [False, True], ids=["dict", "json"])
@pytest.mark.parametrize("make", RESUMABLE)
def test_resuming_from_state_dict_after_10_steps_equals_20_uninterrupted_steps_bit_for_bit(make, through_json):
    grads = gradient_sequence(STEPS)
    params = make_params()
    uninterrupted = run_ours(make(params), params, grads)

    params = make_params()
    first = make(params)
    run_ours(first, params, grads[:10])
    saved, saved_params = first.state_dict(), [p.array.copy() for p in params]
    if through_json:
        saved = json_round_trip(saved)
        assert set(saved["state"]) == {"0", "1", "2"}
    run_ours(first, params, grads[10:12])  # later steps must not change what was saved

    resumed_params = [nn.Parameter(a.copy()) for a in saved_params]
    resumed = make(resumed_params)
    for group in resumed.param_groups:
        group["lr"] = 123.0  # the loaded state decides the options
    resumed.load_state_dict(saved)
    assert resumed.state_dict()["param_groups"] == first.state_dict()["param_groups"]
    resumed_run = run_ours(resumed, resumed_params, grads[10:])
    for a, b in zip(resumed_run, uninterrupted[10:]):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_load_state_dict_copies_so_the_source_and_other_loaders_stay_independent():
    """Before: SGD's in-place momentum wrote into the caller's arrays, and two optimizers loaded
    from one state shared a buffer."""
    params = make_params()
    source = optim.SGD(params, lr=0.1, momentum=0.9)
    run_ours(source, params, gradient_sequence(2))
    state = source.state_dict()
    state["state"][0]["momentum_buffer"] = state["state"][0]["momentum_buffer"].array  # a raw array loads too
    before = [np.array(v).copy() for s in state["state"].values() for v in s.values()]

    a_params, b_params = make_params(), make_params()
    a, b = optim.SGD(a_params, lr=0.1, momentum=0.9), optim.SGD(b_params, lr=0.1, momentum=0.9)
    a.load_state_dict(state)
    b.load_state_dict(state)
    run_ours(a, a_params, gradient_sequence(3, seed=5))
    after = [np.array(v) for s in state["state"].values() for v in s.values()]
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)  # the source was not written
    for p, q in zip(b_params, params):  # the second was not touched by the first's steps
        np.testing.assert_array_equal(b.state[p]["momentum_buffer"].array, source.state[q]["momentum_buffer"].array)
    state["state"][1]["momentum_buffer"].array[...] = 7.0  # changing the source afterwards changes nothing
    assert not (b.state[b_params[1]]["momentum_buffer"].array == 7.0).any()


def test_load_state_dict_casts_buffers_to_each_parameters_dtype():
    params64 = make_params()
    source = optim.Adam(params64, lr=0.1)
    run_ours(source, params64, gradient_sequence(2))
    params32 = make_params(dtype=np.float32)
    target = optim.Adam(params32, lr=0.1)
    target.load_state_dict(source.state_dict())
    for p in params32:
        assert target.state[p]["exp_avg"].dtype == np.float32 and target.state[p]["step"] == 2
    run_ours(target, params32, gradient_sequence(1, dtype=np.float32))
    assert all(p.dtype == np.float32 for p in params32)


def test_load_state_dict_moves_buffers_to_each_parameters_device(backend):
    host = make_params()
    source = optim.SGD(host, lr=0.1, momentum=0.9)
    run_ours(source, host, gradient_sequence(2))
    params = [nn.Parameter(B.to_device(p.array.copy())) for p in make_params()]
    target = optim.SGD(params, lr=0.1, momentum=0.9)
    target.load_state_dict(source.state_dict())
    for p in params:
        assert type(target.state[p]["momentum_buffer"].array) is type(p.array)


@pytest.mark.parametrize("change, match", [
    (lambda s: s["param_groups"].append(dict(s["param_groups"][0], params=[])),
     "different number of parameter groups: 2 in the state, 1 in this SGD"),
    (lambda s: s["param_groups"][0]["params"].pop(),
     "parameter group that doesn't match the size of optimizer's group: group 0 has 2 parameters in the state, 3"),
    (lambda s: s["param_groups"][0].pop("momentum"), r"lacks the options \['momentum'\]: is it the state of another"),
    (lambda s: s["state"].update({7: {}}), "buffers for parameter 7, but its parameter groups list only"),
    (lambda s: s["state"][0].update(momentum_buffer=np.zeros(2)),
     r"'momentum_buffer' of parameter 0 has shape \(2,\), the parameter has shape \(3, 4\)"),
    (lambda s: s.pop("state"), "expected what state_dict\\(\\) returns"),
])
def test_load_state_dict_refuses_a_state_that_does_not_fit_and_changes_nothing(change, match):
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run_ours(opt, params, gradient_sequence(1))
    state = opt.state_dict()
    change(state)
    other = optim.SGD(params, lr=0.2, momentum=0.9)
    with pytest.raises(ValueError, match=match):
        other.load_state_dict(state)
    assert other.lr == 0.2 and len(other.state) == 0


def test_load_state_dict_refuses_the_state_of_another_optimizer():
    params = make_params()
    with pytest.raises(ValueError, match=r"lacks the options \['betas', 'eps', 'amsgrad'.*another optimizer"):
        optim.Adam(params).load_state_dict(optim.SGD(params, lr=0.1).state_dict())
    with pytest.raises(ValueError, match=r"lacks the options \['momentum', 'dampening', 'nesterov'\]"):
        optim.SGD(params).load_state_dict(optim.Adam(params).state_dict())


def test_adamw_stays_decoupled_after_loading_an_adam_state_as_torchs():
    params = make_params()
    adamw = optim.AdamW(params)
    adamw.load_state_dict(optim.Adam(params).state_dict())
    t_adamw = torch.optim.AdamW(torch_params(params))
    t_adamw.load_state_dict(torch.optim.Adam(torch_params(params)).state_dict())
    assert adamw.param_groups[0]["decoupled_weight_decay"] is t_adamw.param_groups[0]["decoupled_weight_decay"]


# -- invalid settings: torch's errors ------------------------------------------------------------------

INVALID = [
    ("SGD", dict(lr=-1)),
    ("SGD", dict(lr=0.1, momentum=-0.5)),
    ("SGD", dict(lr=0.1, weight_decay=-1e-3)),
    ("SGD", dict(lr=0.1, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
    ("Adam", dict(lr=-0.1)),
    ("Adam", dict(eps=-1e-8)),
    ("Adam", dict(betas=(1.0, 0.999))),
    ("Adam", dict(betas=(0.9, 1.0))),
    ("Adam", dict(betas=(-0.1, 0.999))),
    ("Adam", dict(weight_decay=-1.0)),
    ("AdamW", dict(betas=(0.9, 1.5))),
]


@pytest.mark.parametrize("name, kwargs", INVALID, ids=lambda v: v if isinstance(v, str) else label(v))
def test_invalid_options_raise_torchs_value_error_with_torchs_message(name, kwargs):
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError) as ours:
        getattr(optim, name)(make_params(), **kwargs)
    assert str(theirs.value) in str(ours.value)


def test_an_invalid_option_in_a_parameter_group_is_refused_too():
    """torch checks only the defaults; minicnn also checks each group, naming it."""
    params = make_params()
    with pytest.raises(ValueError, match=r"Invalid learning rate: -0.5 \(in parameter group 1\)"):
        optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": -0.5}], lr=0.1)


@pytest.mark.parametrize("build, error", [
    (lambda T, P: T.optim.SGD([], lr=0.1), ValueError),
    (lambda T, P: T.optim.SGD(P[0], lr=0.1), TypeError),
    (lambda T, P: T.optim.SGD([{"params": set(P)}], lr=0.1), TypeError),
    (lambda T, P: T.optim.SGD([1.0], lr=0.1), TypeError),
    (lambda T, P: T.optim.SGD([{"params": P[:1]}, {"params": P}], lr=0.1), ValueError),
    (lambda T, P: T.optim.SGD(P[:1], lr=0.1).add_param_group({"params": P[:2]}), ValueError),
    (lambda T, P: T.optim.SGD(P[:1], lr=0.1).add_param_group(P[1:]), TypeError),
    (lambda T, P: T.optim.SGD([P[0] * 2], lr=0.1), ValueError),
], ids=["empty", "a-tensor", "a-set", "not-a-tensor", "twice-across-groups", "add-a-listed-one", "group-not-dict",
        "non-leaf"])
def test_wrong_parameters_raise_torchs_errors(build, error):
    t_params = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    with pytest.raises(error) as theirs:
        build(torch, t_params)
    with pytest.raises(error) as ours:
        build(minicnn, make_params())
    words = str(theirs.value).split(":")[0].split(" but got ")[0].replace("<class 'list'>", "list")
    assert words in str(ours.value)


def test_an_empty_group_is_accepted_as_torch_accepts_it():
    p = make_params()[0]
    opt = optim.SGD([{"params": []}, {"params": [p]}], lr=0.1)
    torch.optim.SGD([{"params": []}, {"params": [torch.zeros(1, requires_grad=True)]}], lr=0.1)
    assert [len(g["params"]) for g in opt.param_groups] == [0, 1]


# -- learning-rate schedules -----------------------------------------------------------------------------


def two_group_optimizers(kind="SGD"):
    """Ours and torch's, two parameter groups with different lrs."""
    p, q = make_params()[:2]
    tp, tq = torch_params([p, q])
    groups = lambda a, b: [{"params": [a]}, {"params": [b], "lr": 0.03}]  # noqa: E731
    if kind == "SGD":
        return (optim.SGD(groups(p, q), lr=0.1, momentum=0.9),
                torch.optim.SGD(groups(tp, tq), lr=0.1, momentum=0.9))
    return optim.Adam(groups(p, q), lr=0.1), torch.optim.Adam(groups(tp, tq), lr=0.1)


SCHEDULES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("StepLR", dict(step_size=1, gamma=0.9)),
    ("MultiStepLR", dict(milestones=[5, 12, 20], gamma=0.3)),
    ("MultiStepLR", dict(milestones=[10, 3, 3], gamma=0.5)),  # unsorted, 3 twice: times gamma^2 at epoch 3
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=30)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=1e-3)),  # past T_max the cosine rises again, as torch's does
    ("CosineAnnealingLR", dict(T_max=7.5, eta_min=0.01)),
]


@pytest.mark.parametrize("name, kwargs", SCHEDULES, ids=lambda v: v if isinstance(v, str) else label(v))
def test_schedulers_give_torchs_learning_rates_for_40_epochs(name, kwargs):
    opt, t_opt = two_group_optimizers()
    sched = getattr(lr_scheduler, name)(opt, **kwargs)
    t_sched = getattr(torch.optim.lr_scheduler, name)(t_opt, **kwargs)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.03]
    for epoch in range(41):
        assert sched.get_last_lr() == t_sched.get_last_lr(), f"epoch {epoch}"  # the same floats, bit for bit
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr() and opt.lr == sched.get_last_lr()[0]
        assert sched.last_epoch == t_sched.last_epoch == epoch
        t_opt.step()
        sched.step()
        t_sched.step()


@pytest.mark.parametrize("name, kwargs", SCHEDULES[::2], ids=lambda v: v if isinstance(v, str) else label(v))
def test_the_closed_form_gives_the_chained_values(name, kwargs):
    """CosineAnnealingLR is computed step by step (as torch), but it is the closed form in its docstring."""
    opt, _ = two_group_optimizers()
    sched = getattr(lr_scheduler, name)(opt, **kwargs)
    for epoch in range(1, 35):
        sched.step()
        with pytest.warns(UserWarning, match="epoch parameter"):
            closed = type(sched)(two_group_optimizers()[0], **kwargs)
            closed.step(epoch)
        np.testing.assert_allclose(closed.get_last_lr(), sched.get_last_lr(), rtol=1e-12, atol=1e-15)


ONE_CYCLE = [
    dict(max_lr=0.1, total_steps=40),
    dict(max_lr=[0.1, 0.5], epochs=4, steps_per_epoch=10, pct_start=0.25, anneal_strategy="linear"),
    dict(max_lr=0.2, total_steps=37, three_phase=True, div_factor=10.0, final_div_factor=100.0),
    dict(max_lr=0.2, total_steps=30, three_phase=True, anneal_strategy="linear", base_momentum=[0.8, 0.7],
         max_momentum=0.9),
    dict(max_lr=0.05, total_steps=25, cycle_momentum=False),
]


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@pytest.mark.parametrize("kwargs", ONE_CYCLE, ids=label)
def test_one_cycle_gives_torchs_lr_and_momentum_at_every_step(kwargs, kind):
    opt, t_opt = two_group_optimizers(kind)
    sched = lr_scheduler.OneCycleLR(opt, **kwargs)
    t_sched = torch.optim.lr_scheduler.OneCycleLR(t_opt, **kwargs)
    key = "momentum" if kind == "SGD" else "betas"
    total = t_sched.total_steps
    for step in range(total):
        assert sched.get_last_lr() == t_sched.get_last_lr(), f"step {step}"
        assert [g[key] for g in opt.param_groups] == [g[key] for g in t_opt.param_groups], f"step {step}"
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
        t_opt.step()
        sched.step()
        t_sched.step()
    with pytest.raises(ValueError) as theirs:
        t_sched.step()
    with pytest.raises(ValueError) as ours:
        sched.step()
    assert str(theirs.value) in str(ours.value)


def test_one_cycle_steers_the_optimizers_actual_steps():
    """The momentum it sets is the one SGD uses: the trajectory equals torch's under the same schedule."""
    params = make_params()
    t_params = torch_params(params)
    opt, t_opt = optim.SGD(params, lr=0.1, momentum=0.9), torch.optim.SGD(t_params, lr=0.1, momentum=0.9)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=STEPS)
    t_sched = torch.optim.lr_scheduler.OneCycleLR(t_opt, max_lr=0.3, total_steps=STEPS)
    grads = gradient_sequence(STEPS)
    for step_grads in grads:
        ours = run_ours(opt, params, [step_grads])
        theirs = run_torch(t_opt, t_params, [step_grads])
        assert_same_trajectory(ours, theirs)
        sched.step()
        t_sched.step()


def make_scheduler(name):
    opt, _ = two_group_optimizers("Adam" if name == "OneCycleLR" else "SGD")
    kwargs = dict(SCHEDULES + [("OneCycleLR", dict(max_lr=0.2, total_steps=30, three_phase=True))])[name]
    return opt, getattr(lr_scheduler, name)(opt, **kwargs)


@pytest.mark.parametrize("through_json", [False, True], ids=["dict", "json"])
@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "OneCycleLR"])
def test_scheduler_state_dict_resumes_the_schedule(name, through_json):
    opt, sched = make_scheduler(name)
    for _ in range(8):
        sched.step()
    state = sched.state_dict()
    opt_state = opt.state_dict()
    if through_json:
        state, opt_state = json.loads(json.dumps(state)), json_round_trip(opt_state)
    for _ in range(3):
        sched.step()  # later steps do not change what was saved
    assert state["last_epoch"] == 8
    opt2, sched2 = make_scheduler(name)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(state)
    assert sched2.get_last_lr() == [g["lr"] for g in opt2.param_groups]
    for _ in range(3):
        sched2.step()
    for _ in range(15):
        sched.step()
        sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()
        assert opt2.param_groups[0]["betas" if name == "OneCycleLR" else "momentum"] == \
            opt.param_groups[0]["betas" if name == "OneCycleLR" else "momentum"]


def test_loading_a_scheduler_state_alone_sets_the_learning_rates_too():
    """torch leaves the lr to the optimizer's state; minicnn also sets it, so a forgotten optimizer load
    does not silently train at the wrong rate."""
    opt, sched = make_scheduler("StepLR")
    for _ in range(8):
        sched.step()
    opt2, sched2 = make_scheduler("StepLR")
    sched2.load_state_dict(sched.state_dict())
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    np.testing.assert_allclose(opt2.lr, 0.1 * 0.9 ** 8, rtol=1e-12)


def test_a_scheduler_refuses_the_state_of_another_scheduler():
    _, step = make_scheduler("StepLR")
    _, cosine = make_scheduler("CosineAnnealingLR")
    with pytest.raises(ValueError, match=r"StepLR.load_state_dict: the state lacks \['step_size', 'gamma'\]"):
        step.load_state_dict(cosine.state_dict())


def test_constructing_a_scheduler_records_initial_lr_and_takes_the_first_step_as_torch():
    opt, t_opt = two_group_optimizers()
    sched = lr_scheduler.StepLR(opt, step_size=3)
    t_sched = torch.optim.lr_scheduler.StepLR(t_opt, step_size=3)
    assert sched.last_epoch == t_sched.last_epoch == 0 and sched._step_count == t_sched._step_count == 1
    assert sched.base_lrs == t_sched.base_lrs == [0.1, 0.03]
    assert isinstance(sched.get_last_lr(), list) and len(sched.get_last_lr()) == 2
    resumed = lr_scheduler.StepLR(opt, step_size=3, last_epoch=5)  # resuming needs 'initial_lr', now there
    t_resumed = torch.optim.lr_scheduler.StepLR(t_opt, step_size=3, last_epoch=5)
    assert resumed.get_last_lr() == t_resumed.get_last_lr() and resumed.last_epoch == t_resumed.last_epoch == 6


class _NoMomentum(torch.optim.Optimizer):
    def __init__(self, params):
        super().__init__(params, dict(lr=0.1))


class _OurNoMomentum(optim.Optimizer):
    def __init__(self, params):
        super().__init__(params, dict(lr=0.1))


@pytest.mark.parametrize("build, error", [
    (lambda S, opt, O: S.StepLR(object(), step_size=1), TypeError),
    (lambda S, opt, O: S.StepLR(opt, step_size=1, last_epoch=3), KeyError),
    (lambda S, opt, O: S.OneCycleLR(opt, max_lr=0.1), ValueError),
    (lambda S, opt, O: S.OneCycleLR(opt, max_lr=0.1, total_steps=0), ValueError),
    (lambda S, opt, O: S.OneCycleLR(opt, max_lr=0.1, epochs=2, steps_per_epoch=2.5), ValueError),
    (lambda S, opt, O: S.OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=1.5), ValueError),
    (lambda S, opt, O: S.OneCycleLR(opt, max_lr=0.1, total_steps=10, anneal_strategy="exp"), ValueError),
    (lambda S, opt, O: S.OneCycleLR(opt, max_lr=[0.1, 0.2, 0.3], total_steps=10), ValueError),
    (lambda S, opt, O: S.OneCycleLR(O, max_lr=0.1, total_steps=10), ValueError),
], ids=["not-an-optimizer", "resume-without-initial-lr", "no-length", "zero-steps", "float-steps", "pct-start",
        "strategy", "max-lr-per-group", "no-momentum"])
def test_scheduler_arguments_raise_torchs_errors(build, error):
    with pytest.raises(error) as theirs:
        build(torch.optim.lr_scheduler, two_group_optimizers()[1], _NoMomentum([torch.zeros(1, requires_grad=True)]))
    with pytest.raises(error) as ours:
        build(lr_scheduler, two_group_optimizers()[0], _OurNoMomentum(make_params()[:1]))
    assert str(theirs.value).split("\\n")[0].split(" when ")[0].strip("\"'") in str(ours.value)


def test_the_schedulers_are_importable_as_torch_names_them_and_from_minicnn_optim():
    import minicnn.optim.lr_scheduler as module

    assert module is lr_scheduler is optim.lr_scheduler
    for name in ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "OneCycleLR"]:
        assert getattr(optim, name) is getattr(lr_scheduler, name)
        assert hasattr(torch.optim.lr_scheduler, name)
    assert issubclass(lr_scheduler.OneCycleLR, lr_scheduler.LRScheduler)


def test_the_optimizers_signatures_and_defaults_are_torchs():
    import inspect

    for name in ["SGD", "Adam", "AdamW"]:
        ours = inspect.signature(getattr(optim, name)).parameters
        theirs = inspect.signature(getattr(torch.optim, name)).parameters
        for arg, p in ours.items():
            assert arg in theirs and p.default == theirs[arg].default and p.kind == theirs[arg].kind, (name, arg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optim.SGD(make_params())  # lr has torch's default: no argument is required
