"""minicnn.optim against torch.optim: the same gradients give the same parameter
trajectory (float64, 1e-10) in every setting; schedulers give torch's learning rates;
state_dict / load_state_dict resume a run exactly."""

import itertools

import numpy as np
import pytest
import torch

from minicnn import nn, optim

SHAPES = [(3, 4), (5,), (2, 1, 3, 3)]
STEPS = 20


def make_params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]


def gradient_sequence(steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


def run_ours(opt, params, grads):
    trajectory = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        opt.step()
        trajectory.append([p.data.copy() for p in params])
    return trajectory


def run_torch(opt_class, kwargs, grads, seed=0):
    t_params = [torch.tensor(p.data, requires_grad=True) for p in make_params(seed)]
    opt = opt_class(t_params, **kwargs)
    trajectory = []
    for step_grads in grads:
        for t, g in zip(t_params, step_grads):
            t.grad = torch.tensor(g)
        opt.step()
        trajectory.append([t.detach().numpy().copy() for t in t_params])
    return trajectory


def assert_same_trajectory(ours, theirs):
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for pa, pb in zip(a, b):
            np.testing.assert_allclose(pa, pb, rtol=1e-10, atol=1e-10, err_msg=f"step {step + 1}")


SGD_SETTINGS = [
    dict(lr=0.1, momentum=m, dampening=d, weight_decay=wd, nesterov=n)
    for m, d, wd, n in itertools.product([0.0, 0.9], [0.0, 0.1], [0.0, 1e-2], [False, True])
    if not (n and (m == 0 or d != 0))  # torch: nesterov needs momentum and zero dampening
]


@pytest.mark.parametrize("kwargs", SGD_SETTINGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_sgd_follows_torchs_trajectory_for_20_steps(kwargs):
    grads = gradient_sequence(STEPS)
    params = make_params()
    ours = run_ours(optim.SGD(params, **kwargs), params, grads)
    assert_same_trajectory(ours, run_torch(torch.optim.SGD, kwargs, grads))


ADAM_SETTINGS = [
    dict(lr=1e-2, betas=b, eps=e, weight_decay=wd)
    for b, e, wd in itertools.product([(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)], [1e-8, 1e-3], [0.0, 1e-2])
]


@pytest.mark.parametrize("kwargs", ADAM_SETTINGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_adam_follows_torchs_trajectory_for_20_steps(kwargs):
    grads = gradient_sequence(STEPS)
    params = make_params()
    ours = run_ours(optim.Adam(params, **kwargs), params, grads)
    assert_same_trajectory(ours, run_torch(torch.optim.Adam, kwargs, grads))


@pytest.mark.parametrize("make, torch_class, kwargs", [
    (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True), torch.optim.SGD,
     dict(lr=0.05, momentum=0.9, nesterov=True)),
    (lambda ps: optim.Adam(ps, lr=0.05), torch.optim.Adam, dict(lr=0.05)),
])
def test_optimizers_follow_torch_on_a_real_quadratic_loss(make, torch_class, kwargs):
    """Minimise 0.5 * |A p - y|^2 for 25 steps; the gradient depends on the trajectory itself."""
    rng = np.random.default_rng(0)
    A, y, p0 = rng.standard_normal((6, 4)), rng.standard_normal(6), rng.standard_normal(4)
    p = nn.Parameter(p0.copy())
    opt = make([p])
    t_p = torch.tensor(p0.copy(), requires_grad=True)
    t_opt = torch_class([t_p], **kwargs)
    for _ in range(25):
        p.grad = A.T @ (A @ p.data - y)
        opt.step()
        t_opt.zero_grad()
        (0.5 * ((torch.tensor(A) @ t_p - torch.tensor(y)) ** 2).sum()).backward()
        t_opt.step()
        np.testing.assert_allclose(p.data, t_p.detach().numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True),
    lambda ps: optim.Adam(ps, lr=0.1, weight_decay=1e-2),
])
def test_steps_keep_float32_parameters_float32(make):
    params = make_params(dtype=np.float32)
    opt = make(params)
    for grads in gradient_sequence(3):
        for p, g in zip(params, grads):
            p.grad = g.astype(np.float32)
        opt.step()
    assert all(p.dtype == np.float32 for p in params)
    assert all(v.dtype == np.float32 for s in opt.state for v in s.values() if hasattr(v, "dtype"))


def test_parameters_without_a_gradient_are_left_alone():
    params = make_params()
    before = params[1].data.copy()
    opt = optim.Adam(params, lr=0.1)
    for p in params:
        p.grad = np.ones(p.shape)
    params[1].grad = None
    opt.step()
    np.testing.assert_array_equal(params[1].data, before)
    assert not (params[0].data == make_params()[0].data).any()


def test_zero_grad_clears_the_gradients_of_its_parameters():
    params = make_params()
    for p in params:
        p.grad = np.ones(p.shape)
    optim.SGD(params, lr=0.1).zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-2),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.Adam(ps, lr=0.05, betas=(0.8, 0.99), weight_decay=1e-2),
])
def test_state_dict_resume_after_10_steps_equals_20_uninterrupted_steps(make):
    grads = gradient_sequence(STEPS)
    params = make_params()
    uninterrupted = run_ours(make(params), params, grads)[-1]

    params = make_params()
    first = make(params)
    run_ours(first, params, grads[:10])
    saved_state, saved_params = first.state_dict(), [p.data.copy() for p in params]
    run_ours(first, params, grads[10:12])  # later steps must not change what was saved

    resumed_params = [nn.Parameter(d.copy()) for d in saved_params]
    resumed = make(resumed_params)
    resumed.load_state_dict(saved_state)
    final = run_ours(resumed, resumed_params, grads[10:])[-1]
    for a, b in zip(final, uninterrupted):
        np.testing.assert_array_equal(a, b)


def test_state_dict_carries_the_hyper_parameters_as_torchs_does():
    params = make_params()
    saved = optim.SGD(params, lr=0.3, momentum=0.9, weight_decay=1e-2, nesterov=True).state_dict()
    restored = optim.SGD(params, lr=0.1)
    restored.load_state_dict(saved)
    assert (restored.lr, restored.momentum, restored.weight_decay, restored.nesterov) == (0.3, 0.9, 1e-2, True)
    adam = optim.Adam(params)
    adam.load_state_dict(optim.Adam(params, betas=(0.5, 0.9), eps=1e-3).state_dict())
    assert (adam.betas, adam.eps) == ((0.5, 0.9), 1e-3)


def test_load_state_dict_refuses_the_state_of_another_optimizer():
    params = make_params()
    with pytest.raises(ValueError, match="Adam.load_state_dict: the state is from 'SGD', not Adam"):
        optim.Adam(params).load_state_dict(optim.SGD(params, lr=0.1).state_dict())
    with pytest.raises(ValueError, match="the state holds 3 parameters, this optimizer has 1"):
        optim.SGD(params[:1], lr=0.1).load_state_dict(optim.SGD(params, lr=0.1).state_dict())


@pytest.mark.parametrize("make, match", [
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov needs momentum > 0"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "nesterov needs momentum > 0"),
    (lambda ps: optim.SGD(ps, lr=-1), "SGD: lr must be a number >= 0, got -1"),
    (lambda ps: optim.Adam(ps, betas=(0.9, 1.0)), r"Adam: betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)"),
    (lambda ps: optim.SGD([], lr=0.1), "SGD: got an empty parameter list"),
])
def test_invalid_hyper_parameters_are_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make(make_params())


# -- learning-rate schedules ----------------------------------------------------------------

SCHEDULES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("StepLR", dict(step_size=1, gamma=0.9)),
    ("MultiStepLR", dict(milestones=[5, 12, 20], gamma=0.3)),
    ("MultiStepLR", dict(milestones=[3, 3, 10], gamma=0.5)),
    ("CosineAnnealingLR", dict(T_max=30)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=1e-3)),  # past T_max the cosine rises again, as torch's does
]


@pytest.mark.parametrize("name, kwargs", SCHEDULES, ids=lambda v: str(v))
def test_schedulers_follow_torchs_learning_rates_for_30_epochs(name, kwargs):
    opt = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    sched = getattr(optim, name)(opt, **kwargs)
    t_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    t_sched = getattr(torch.optim.lr_scheduler, name)(t_opt, **kwargs)
    ours, theirs = [sched.get_last_lr()], [t_sched.get_last_lr()[0]]
    for _ in range(30):
        t_opt.step()
        sched.step()
        t_sched.step()
        ours.append(sched.get_last_lr())
        theirs.append(t_sched.get_last_lr()[0])
        assert opt.lr == ours[-1]
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_scheduler_state_dict_resumes_the_schedule():
    opt = optim.SGD(make_params(), lr=0.1)
    sched = optim.StepLR(opt, step_size=3, gamma=0.5)
    for _ in range(4):
        sched.step()
    state = sched.state_dict()
    opt2 = optim.SGD(make_params(), lr=0.1)
    sched2 = optim.StepLR(opt2, step_size=3, gamma=0.5)
    sched2.load_state_dict(state)
    assert opt2.lr == opt.lr == 0.05
    for _ in range(5):
        sched.step()
        sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()
