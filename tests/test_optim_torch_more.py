"""The rest of torch.optim against torch 2.13: Adadelta, Adagrad, RMSprop, Adamax, NAdam and RAdam
follow torch's parameters step for step (float64 within 1e-10 over 50 steps of a small model,
float32 within float32 rounding) for hypothesis-drawn options, with torch's signatures, state keys,
state_dict and errors; LambdaLR, MultiplicativeLR, ConstantLR, LinearLR, PolynomialLR,
CosineAnnealingWarmRestarts, CyclicLR, SequentialLR, ChainedScheduler and ReduceLROnPlateau give
torch's learning rates (bit for bit) at every step, and resume from their state_dict."""

import inspect
import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import nn, optim
from minicnn.optim import lr_scheduler

torch = pytest.importorskip("torch")
TS = torch.optim.lr_scheduler

NEW_OPTIMIZERS = ["Adadelta", "Adagrad", "RMSprop", "Adamax", "NAdam", "RAdam"]
STEPS = 50


# -- a small model, in minicnn and in torch, with the same weights ----------------------------------


def small_models(seed, dtype=np.float64):
    """Linear(4, 3) -> Tanh -> Linear(3, 2) as minicnn and torch build it, with the same weights,
    and data (x, y) to fit, 64 samples: loss = mean((model(x) - y)^2) over a batch."""
    rng = np.random.default_rng(seed)
    ours = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    for p, t in zip(ours.parameters(), theirs.parameters()):
        value = rng.standard_normal(tuple(t.shape)).astype(dtype)
        p.array = value.copy()
        with torch.no_grad():
            t.copy_(torch.from_numpy(value.copy()))
    x, y = rng.standard_normal((64, 4)).astype(dtype), rng.standard_normal((64, 2)).astype(dtype)
    return ours, theirs, x, y


def train_side_by_side(name, kwargs, seed=0, dtype=np.float64, steps=STEPS, rtol=1e-10, atol=1e-10):
    """Both optimizers on their own copy of the model, each backward() through its own framework:
    the gradients agree, and the parameters after every step agree.

    The optimizers are then handed the same gradient (torch's): the two backward passes differ in
    the last bit, and a sign-like update (Adamax with beta1 = 0, say) near a minimum turns such a
    difference into a different path within a few dozen steps, whoever computes the update."""
    ours, theirs, x, y = small_models(seed, dtype)
    opt = getattr(optim, name)(ours.parameters(), **kwargs)
    t_opt = getattr(torch.optim, name)(theirs.parameters(), **kwargs)
    batches = np.random.default_rng(seed + 1).integers(0, len(x), size=(steps, 8))  # a batch of 8 per step
    sign = -1.0 if kwargs.get("maximize") else 1.0  # maximize(-loss): still a fit, no run up into saturated tanh
    grad_tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    for step, rows in enumerate(batches):
        opt.zero_grad()
        (sign * ((ours(minicnn.tensor(x[rows])) - minicnn.tensor(y[rows])) ** 2).mean()).backward()
        t_opt.zero_grad()
        (sign * ((theirs(torch.from_numpy(x[rows])) - torch.from_numpy(y[rows])) ** 2).mean()).backward()
        for p, t in zip(ours.parameters(), theirs.parameters()):
            np.testing.assert_allclose(p.grad.array, t.grad.numpy(), **grad_tol, err_msg=f"gradient, step {step + 1}")
            p.grad = minicnn.tensor(t.grad.numpy().copy())
        opt.step()
        t_opt.step()
        for p, t in zip(ours.parameters(), theirs.parameters()):
            assert p.array.dtype == dtype
            np.testing.assert_allclose(p.array, t.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"step {step + 1}")
    return opt, t_opt


def params_and_grads(seed=0, steps=20, shapes=((3, 4), (5,), (2, 1, 3, 3))):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]
    return params, grads


def step_with(opt, params, grads, framework):
    """Feed each step's gradients to .grad and step (params: minicnn Parameters or torch tensors)."""
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = minicnn.tensor(g.copy()) if framework is minicnn else torch.tensor(g.copy())
        opt.step()


def label(kwargs):
    return ",".join(f"{k}={v}" for k, v in kwargs.items())


# -- options, drawn ------------------------------------------------------------------------------------

weight_decays = st.sampled_from([0.0, 1e-3, 0.1])
betas = st.tuples(st.floats(0.0, 0.95), st.floats(0.5, 0.999))
OPTIONS = {
    "Adadelta": st.fixed_dictionaries(dict(
        lr=st.floats(0.05, 1.0), rho=st.floats(0.0, 0.99), eps=st.sampled_from([1e-6, 1e-4]),
        weight_decay=weight_decays, maximize=st.booleans())),
    "Adagrad": st.fixed_dictionaries(dict(
        lr=st.floats(1e-3, 0.3), lr_decay=st.sampled_from([0.0, 1e-3, 0.1]), weight_decay=weight_decays,
        initial_accumulator_value=st.sampled_from([0.0, 0.1, 1.0]), eps=st.sampled_from([1e-10, 1e-6]),
        maximize=st.booleans())),
    "RMSprop": st.fixed_dictionaries(dict(
        lr=st.floats(1e-4, 1e-2), alpha=st.floats(0.5, 0.999), eps=st.sampled_from([1e-8, 1e-4]),
        weight_decay=weight_decays, momentum=st.sampled_from([0.0, 0.5, 0.9]), centered=st.booleans(),
        maximize=st.booleans())),
    "Adamax": st.fixed_dictionaries(dict(
        lr=st.floats(1e-3, 0.05), betas=betas, eps=st.sampled_from([1e-8, 1e-4]), weight_decay=weight_decays,
        maximize=st.booleans())),
    "NAdam": st.fixed_dictionaries(dict(
        lr=st.floats(1e-3, 0.05), betas=betas, eps=st.sampled_from([1e-8, 1e-4]), weight_decay=weight_decays,
        momentum_decay=st.sampled_from([0.0, 4e-3, 0.1]), decoupled_weight_decay=st.booleans(),
        maximize=st.booleans())),
    "RAdam": st.fixed_dictionaries(dict(
        lr=st.floats(1e-3, 0.05), betas=betas, eps=st.sampled_from([1e-8, 1e-4]), weight_decay=weight_decays,
        decoupled_weight_decay=st.booleans(), maximize=st.booleans())),
}

# every option of each, on: all the state torch keeps
FULL = {
    "Adadelta": dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=True),
    "Adagrad": dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-8),
    "RMSprop": dict(lr=0.01, alpha=0.9, momentum=0.9, centered=True, weight_decay=0.1),
    "Adamax": dict(lr=0.05, betas=(0.5, 0.9), weight_decay=0.1, maximize=True),
    "NAdam": dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1, momentum_decay=0.01, decoupled_weight_decay=True),
    "RAdam": dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, decoupled_weight_decay=True),
}


# -- the update rules against torch --------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
@settings(max_examples=30)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_each_optimizer_follows_torch_step_for_step_for_50_steps_on_a_small_model(name, data, seed):
    kwargs = data.draw(OPTIONS[name], label="options")
    train_side_by_side(name, kwargs, seed=seed)


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_every_option_at_once_follows_torch_on_fed_gradients_for_50_steps(name):
    """The same gradients to both (no model): only the update rule is compared."""
    values, grads = params_and_grads(steps=STEPS)
    params = [nn.Parameter(v.copy()) for v in values]
    t_params = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    opt, t_opt = getattr(optim, name)(params, **FULL[name]), getattr(torch.optim, name)(t_params, **FULL[name])
    for step_grads in grads:
        step_with(opt, params, [step_grads], minicnn)
        step_with(t_opt, t_params, [step_grads], torch)
        for p, t in zip(params, t_params):
            np.testing.assert_allclose(p.array, t.detach().numpy(), rtol=1e-10, atol=1e-10)


EDGES = [
    ("Adadelta", dict(rho=0.0)), ("Adadelta", dict(rho=1.0, lr=0.1)),  # rho = 1: plain gradient descent
    ("Adagrad", dict(lr_decay=1.0, lr=0.5)), ("RMSprop", dict(alpha=0.0, momentum=0.9)),
    ("Adamax", dict(betas=(0.0, 0.0))), ("NAdam", dict(betas=(0.0, 0.0))), ("NAdam", dict(momentum_decay=0.0)),
    ("RAdam", dict(betas=(0.0, 0.0))),  # beta2 = 0: rho_inf = 1, never rectified
    ("RAdam", dict(betas=(0.9, 0.99), lr=0.01)),  # rectified from step 6 on
]


@pytest.mark.parametrize("name, kwargs", EDGES, ids=lambda v: v if isinstance(v, str) else label(v))
def test_the_ends_of_each_range_follow_torch_on_fed_gradients(name, kwargs):
    values, grads = params_and_grads(steps=30)
    params = [nn.Parameter(v.copy()) for v in values]
    t_params = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    step_with(getattr(optim, name)(params, **kwargs), params, grads, minicnn)
    step_with(getattr(torch.optim, name)(t_params, **kwargs), t_params, grads, torch)
    for p, t in zip(params, t_params):
        np.testing.assert_allclose(p.array, t.detach().numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_float32_follows_torchs_float32_and_stays_float32(name):
    opt, _ = train_side_by_side(name, FULL[name], dtype=np.float32, rtol=1e-4, atol=1e-5)
    buffers = [v for s in opt.state.values() for v in s.values() if isinstance(v, minicnn.Tensor)]
    assert buffers and all(v.dtype == np.float32 for v in buffers)


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_steps_follow_torch_on_every_backend(name, backend):
    """The same update on NumPy and on CuPy arrays (compared with torch on the host)."""
    from minicnn import backend as B

    values, grads = params_and_grads(steps=10)
    params = [nn.Parameter(B.to_device(v.copy())) for v in values]
    assert all(type(p.array).__module__.split(".")[0] == backend.__name__ for p in params)
    t_params = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    opt, t_opt = getattr(optim, name)(params, **FULL[name]), getattr(torch.optim, name)(t_params, **FULL[name])
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = minicnn.tensor(B.to_device(g.copy()))
        opt.step()
        step_with(t_opt, t_params, [step_grads], torch)
        for p, t in zip(params, t_params):
            np.testing.assert_allclose(B.to_numpy(p.array), t.detach().numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_a_numpy_float64_learning_rate_does_not_promote_float32_arithmetic(name):
    values, grads = params_and_grads(steps=4)
    a = [nn.Parameter(v.astype(np.float32)) for v in values]
    b = [nn.Parameter(v.astype(np.float32)) for v in values]
    grads = [[g.astype(np.float32) for g in step] for step in grads]
    step_with(getattr(optim, name)(a, **dict(FULL[name], lr=np.float64(0.01))), a, grads, minicnn)
    step_with(getattr(optim, name)(b, **dict(FULL[name], lr=0.01)), b, grads, minicnn)
    for p, q in zip(a, b):
        assert p.dtype == np.float32
        np.testing.assert_array_equal(p.array, q.array)


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_a_step_cut_over_threads_gives_the_bits_of_one_thread(name, monkeypatch):
    """Big parameters are updated in parts on threads (ops/parallel.py): made to cut even small
    ones, 3 threads change no bit, and the cut really happens."""
    from minicnn.ops import parallel

    monkeypatch.setattr(parallel, "MIN_COPY", 1)
    monkeypatch.setattr(parallel, "MIN_COMPUTE", 1)
    cuts, run_parts = [], parallel._run_parts
    monkeypatch.setattr(parallel, "_run_parts", lambda fn, bounds: (cuts.append(len(bounds) - 1),
                                                                   run_parts(fn, bounds)))
    before = minicnn.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            minicnn.set_num_threads(threads)
            values, grads = params_and_grads(steps=3, shapes=((50, 20), (7,)))
            params = [nn.Parameter(v.astype(np.float32)) for v in values]
            grads = [[g.astype(np.float32) for g in step] for step in grads]
            step_with(getattr(optim, name)(params, **FULL[name]), params, grads, minicnn)
            results.append([p.array.copy() for p in params])
    finally:
        minicnn.set_num_threads(before)
    assert cuts == [3] * 6  # 2 parameters x 3 steps, on 3 threads
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_each_optimizer_decreases_a_quadratic_and_stays_finite(name):
    """Minimise 0.5 * |A p - y|^2 (no torch in the loop): the loss falls by half or more in 200 steps."""
    rng = np.random.default_rng(0)
    A, y = minicnn.tensor(rng.standard_normal((6, 4))), minicnn.tensor(rng.standard_normal(6))
    p = nn.Parameter(rng.standard_normal(4))
    lr = {"Adadelta": 1.0, "Adagrad": 0.3, "RMSprop": 0.01, "Adamax": 0.05, "NAdam": 0.05, "RAdam": 0.05}[name]
    opt = getattr(optim, name)([p], lr=lr)
    losses = []
    for _ in range(200):
        opt.zero_grad()
        loss = 0.5 * ((A @ p - y) ** 2).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and np.isfinite(p.array).all()
    assert losses[-1] < 0.5 * losses[0], losses[::20]


# -- signatures, state, state_dict ----------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_the_signature_is_torchs_names_order_kinds_and_defaults(name):
    ours = inspect.signature(getattr(optim, name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    assert [(n, p.kind, p.default) for n, p in ours.items()] == [(n, p.kind, p.default) for n, p in theirs.items()]


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_state_has_torchs_keys_and_values_after_steps(name):
    """'step' is a Python int here (a tensor in torch); NAdam's 'mu_product' a Python float with
    torch's float32 value."""
    values, grads = params_and_grads(steps=7)
    params = [nn.Parameter(v.copy()) for v in values]
    t_params = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    opt, t_opt = getattr(optim, name)(params, **FULL[name]), getattr(torch.optim, name)(t_params, **FULL[name])
    step_with(opt, params, grads, minicnn)
    step_with(t_opt, t_params, grads, torch)
    for p, t in zip(params, t_params):
        ours, theirs = opt.state[p], t_opt.state[t]
        assert list(ours) == list(theirs)
        for key, value in theirs.items():
            if key in ("step", "mu_product"):
                assert isinstance(ours[key], int if key == "step" else float) and ours[key] == value.item()
            else:
                np.testing.assert_allclose(ours[key].array, value.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_state_dict_param_groups_are_torchs(name):
    """Every option torch keeps in a group (foreach, capturable, ... included), with its value."""
    p = [nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros(2))]
    t = [torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)]
    groups = lambda a, b: [{"params": [a]}, {"params": [b], "lr": 0.5}]  # noqa: E731
    ours = getattr(optim, name)(groups(*p), **FULL[name]).state_dict()["param_groups"]
    theirs = getattr(torch.optim, name)(groups(*t), **FULL[name]).state_dict()["param_groups"]
    assert ours == theirs


def test_adagrad_makes_its_state_at_construction_as_torch():
    p, t = nn.Parameter(np.ones(3)), torch.ones(3, requires_grad=True)
    ours = optim.Adagrad([p], initial_accumulator_value=0.25).state_dict()["state"]
    theirs = torch.optim.Adagrad([t], initial_accumulator_value=0.25).state_dict()["state"]
    assert list(ours) == list(theirs) == [0] and ours[0]["step"] == theirs[0]["step"].item() == 0
    np.testing.assert_array_equal(ours[0]["sum"].array, theirs[0]["sum"].numpy())


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_resuming_from_a_saved_state_dict_after_10_steps_equals_20_steps_bit_for_bit(name, tmp_path):
    values, grads = params_and_grads(steps=20)
    params = [nn.Parameter(v.copy()) for v in values]
    opt = getattr(optim, name)(params, **FULL[name])
    step_with(opt, params, grads[:10], minicnn)
    minicnn.save({"optim": opt.state_dict(), "params": [p.array.copy() for p in params]}, tmp_path / "ckpt")
    step_with(opt, params, grads[10:], minicnn)

    ckpt = minicnn.load(tmp_path / "ckpt")
    resumed = [nn.Parameter(a) for a in ckpt["params"]]
    opt2 = getattr(optim, name)(resumed, **FULL[name])
    opt2.load_state_dict(ckpt["optim"])
    step_with(opt2, resumed, grads[10:], minicnn)
    for p, q in zip(params, resumed):
        np.testing.assert_array_equal(p.array, q.array)


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_a_state_saved_by_torch_resumes_here_as_it_resumes_in_torch(name, tmp_path):
    """torch.save(torch_optimizer.state_dict()) -> minicnn.load -> load_state_dict: the next steps are torch's."""
    values, grads = params_and_grads(steps=16)
    t_params = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    t_opt = getattr(torch.optim, name)(t_params, **FULL[name])
    step_with(t_opt, t_params, grads[:8], torch)
    torch.save(t_opt.state_dict(), tmp_path / "optim.pth")
    params = [nn.Parameter(t.detach().numpy().copy()) for t in t_params]
    opt = getattr(optim, name)(params, **FULL[name])
    opt.load_state_dict(minicnn.load(tmp_path / "optim.pth"))
    assert all(isinstance(s["step"], int) and s["step"] == 8 for s in opt.state.values())
    step_with(t_opt, t_params, grads[8:], torch)
    step_with(opt, params, grads[8:], minicnn)
    for p, t in zip(params, t_params):
        np.testing.assert_allclose(p.array, t.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_rmsprop_makes_the_momentum_buffer_when_a_schedule_turns_momentum_on():
    """CyclicLR sets RMSprop's momentum: the buffer appears then (torch's needs it from the first step)."""
    p = nn.Parameter(np.ones(3))
    opt = optim.RMSprop([p], lr=0.1)
    step_with(opt, [p], [[np.ones(3)]], minicnn)
    assert list(opt.state[p]) == ["step", "square_avg"]
    opt.param_groups[0]["momentum"] = 0.9
    step_with(opt, [p], [[np.ones(3)]], minicnn)
    assert list(opt.state[p]) == ["step", "square_avg", "momentum_buffer"] and opt.state[p]["step"] == 2


# -- errors -----------------------------------------------------------------------------------------------

INVALID = [
    ("Adadelta", dict(lr=-1)), ("Adadelta", dict(rho=1.5)), ("Adadelta", dict(rho=-0.1)), ("Adadelta", dict(eps=-1)),
    ("Adadelta", dict(weight_decay=-1)),
    ("Adagrad", dict(lr=-1)), ("Adagrad", dict(lr_decay=-1)), ("Adagrad", dict(weight_decay=-1)),
    ("Adagrad", dict(initial_accumulator_value=-1)), ("Adagrad", dict(eps=-1)),
    ("RMSprop", dict(lr=-1)), ("RMSprop", dict(eps=-1)), ("RMSprop", dict(momentum=-1)),
    ("RMSprop", dict(weight_decay=-1)), ("RMSprop", dict(alpha=-1)),
    ("Adamax", dict(lr=-1)), ("Adamax", dict(eps=-1)), ("Adamax", dict(betas=(1.0, 0.9))),
    ("Adamax", dict(betas=(0.9, -0.1))), ("Adamax", dict(weight_decay=-1)),
    ("NAdam", dict(lr=-1)), ("NAdam", dict(betas=(0.9, 1.0))), ("NAdam", dict(weight_decay=-1)),
    ("NAdam", dict(momentum_decay=-1)),
    ("RAdam", dict(lr=-1)), ("RAdam", dict(eps=-1)), ("RAdam", dict(betas=(-0.5, 0.9))),
    ("RAdam", dict(weight_decay=-1)),
]


@pytest.mark.parametrize("name, kwargs", INVALID, ids=lambda v: v if isinstance(v, str) else label(v))
def test_invalid_options_raise_torchs_value_error_with_torchs_message(name, kwargs):
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError) as ours:
        getattr(optim, name)([nn.Parameter(np.zeros(2))], **kwargs)
    assert str(theirs.value) in str(ours.value)


TORCH_ONLY = [(name, flag) for name in NEW_OPTIMIZERS for flag in ("capturable", "differentiable", "fused")
              if flag in inspect.signature(getattr(torch.optim, name)).parameters]


@pytest.mark.parametrize("name, flag", TORCH_ONLY)
def test_torchs_other_code_paths_are_refused_by_name(name, flag):
    with pytest.raises(ValueError, match=rf"{name}: {flag}=True .* not supported by minicnn.*leave {flag} out"):
        getattr(optim, name)([nn.Parameter(np.zeros(2))], **{flag: True})


@pytest.mark.parametrize("name", NEW_OPTIMIZERS)
def test_foreach_is_accepted_and_changes_nothing(name):
    values, grads = params_and_grads(steps=5)
    a, b = [nn.Parameter(v.copy()) for v in values], [nn.Parameter(v.copy()) for v in values]
    step_with(getattr(optim, name)(a, foreach=True, **FULL[name]), a, grads, minicnn)
    step_with(getattr(optim, name)(b, **FULL[name]), b, grads, minicnn)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.array, q.array)


def test_an_invalid_option_in_a_parameter_group_is_refused_naming_the_group():
    p, q = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match=r"Invalid rho value: 2 \(in parameter group 1\)"):
        optim.Adadelta([{"params": [p]}, {"params": [q], "rho": 2}])


def test_the_new_optimizers_are_importable_where_torch_has_them():
    for name in NEW_OPTIMIZERS:
        assert issubclass(getattr(optim, name), optim.Optimizer) and name in optim.__all__
        assert hasattr(torch.optim, name)


# -- learning-rate schedules: torch's lr at every step ----------------------------------------------------


def two_groups(kind="SGD"):
    """Ours and torch's optimizer (kind), two parameter groups with different lrs."""
    p, q = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(3))
    tp, tq = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    groups = lambda a, b: [{"params": [a]}, {"params": [b], "lr": 0.03}]  # noqa: E731
    kwargs = dict(lr=0.1, momentum=0.9) if kind in ("SGD", "RMSprop") else dict(lr=0.1)
    return getattr(optim, kind)(groups(p, q), **kwargs), getattr(torch.optim, kind)(groups(tp, tq), **kwargs)


MOMENTUM_KEYS = ("momentum", "betas")


def assert_same_schedule(build, steps=40, kind="SGD", metrics=None, epochs=None):
    """build(module, optimizer) makes the scheduler from minicnn's lr_scheduler or torch's. After
    construction and every step: get_last_lr(), every group's lr (and momentum / betas) equal to
    torch's, bit for bit. metrics: ReduceLROnPlateau's values; epochs: the step(epoch) arguments."""
    opt, t_opt = two_groups(kind)
    sched, t_sched = build(lr_scheduler, opt), build(TS, t_opt)
    args = [(m,) for m in metrics] if metrics is not None else [(e,) for e in epochs] if epochs is not None \
        else [()] * steps
    for i, arg in enumerate([None] + args):
        if arg is not None:
            t_opt.step()
            sched.step(*arg)
            t_sched.step(*arg)
        assert sched.get_last_lr() == t_sched.get_last_lr(), f"step {i}"
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in t_opt.param_groups] == sched.get_last_lr()
        for key in MOMENTUM_KEYS:
            assert [g.get(key) for g in opt.param_groups] == [g.get(key) for g in t_opt.param_groups], f"step {i}"
    return sched, t_sched


factors = st.floats(0.05, 1.0)
LAMBDAS = {
    "power": lambda a: (lambda e: a ** e),
    "inverse": lambda a: (lambda e: 1 / (1 + a * e)),
    "warmup": lambda a: (lambda e: min(1.0, (e + 1) * a)),
}


@settings(max_examples=30)
@given(kind=st.sampled_from(sorted(LAMBDAS)), a=factors, per_group=st.booleans(),
       multiplicative=st.booleans())
def test_lambda_and_multiplicative_lr_give_torchs_lrs(kind, a, per_group, multiplicative):
    fn = LAMBDAS[kind](a)
    lr_lambda = [fn, LAMBDAS["inverse"](a)] if per_group else fn
    name = "MultiplicativeLR" if multiplicative else "LambdaLR"
    assert_same_schedule(lambda S, o: getattr(S, name)(o, lr_lambda=lr_lambda))


@settings(max_examples=40)
@given(factor=st.floats(0.01, 1.0), start=st.floats(0.01, 1.0), end=st.floats(0.0, 1.0),
       total_iters=st.integers(1, 12), power=st.floats(0.3, 3.0), which=st.sampled_from(["constant", "linear",
                                                                                        "polynomial"]))
def test_constant_linear_and_polynomial_lr_give_torchs_lrs(factor, start, end, total_iters, power, which):
    build = {"constant": lambda S, o: S.ConstantLR(o, factor=factor, total_iters=total_iters),
             "linear": lambda S, o: S.LinearLR(o, start_factor=start, end_factor=end, total_iters=total_iters),
             "polynomial": lambda S, o: S.PolynomialLR(o, total_iters=total_iters, power=power)}[which]
    assert_same_schedule(build, steps=total_iters + 8)


@pytest.mark.parametrize("build", [
    lambda S, o: S.ConstantLR(o, factor=0.25, total_iters=6),
    lambda S, o: S.LinearLR(o, start_factor=0.1, end_factor=0.8, total_iters=7),
    lambda S, o: S.PolynomialLR(o, total_iters=9, power=2.0),
], ids=["constant", "linear", "polynomial"])
def test_step_epoch_warns_and_takes_torchs_closed_form(build):
    for epoch in [0, 3, 6, 7, 12]:
        opt, t_opt = two_groups()
        sched, t_sched = build(lr_scheduler, opt), build(TS, t_opt)
        t_opt.step()
        with pytest.warns(UserWarning, match="epoch parameter"):
            sched.step(epoch)
        with pytest.warns(UserWarning, match="epoch parameter"):
            t_sched.step(epoch)
        assert sched.get_last_lr() == t_sched.get_last_lr(), epoch


@settings(max_examples=40)
@given(T_0=st.integers(1, 8), T_mult=st.integers(1, 3), eta_min=st.sampled_from([0.0, 1e-3, 0.01]))
def test_cosine_warm_restarts_gives_torchs_lrs_step_by_step(T_0, T_mult, eta_min):
    assert_same_schedule(lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=T_0, T_mult=T_mult, eta_min=eta_min),
                         steps=60)


@settings(max_examples=40)
@given(T_0=st.integers(1, 8), T_mult=st.integers(1, 3),
       epochs=st.lists(st.floats(0.0, 60.0, allow_nan=False), min_size=1, max_size=30))
def test_cosine_warm_restarts_step_epoch_takes_fractional_epochs_without_a_warning(T_0, T_mult, epochs):
    """step(epoch + i / iters) after each batch, as torch's docs show (in any order: a jump is fine)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_schedule(lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=T_0, T_mult=T_mult),
                             epochs=epochs)


@settings(max_examples=50)
@given(base_lr=st.floats(1e-4, 0.05), height=st.floats(0.0, 1.0), up=st.integers(1, 8),
       down=st.none() | st.integers(1, 8), mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
       gamma=st.floats(0.8, 1.0), kind=st.sampled_from(["SGD", "Adam", "RMSprop", "NAdam"]),
       cycle_momentum=st.booleans(), per_group=st.booleans())
def test_cyclic_lr_gives_torchs_lrs_and_momentum(base_lr, height, up, down, mode, gamma, kind, cycle_momentum,
                                                 per_group):
    max_lr = [base_lr + height, base_lr + height / 2] if per_group else base_lr + height
    assert_same_schedule(lambda S, o: S.CyclicLR(o, base_lr=base_lr, max_lr=max_lr, step_size_up=up,
                                                 step_size_down=down, mode=mode, gamma=gamma,
                                                 cycle_momentum=cycle_momentum, base_momentum=[0.8, 0.7],
                                                 max_momentum=0.95), steps=50, kind=kind)


@pytest.mark.parametrize("scale_mode", ["cycle", "iterations"])
def test_cyclic_lr_takes_a_scale_fn_of_the_cycle_or_the_step(scale_mode):
    assert_same_schedule(lambda S, o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3,
                                                 scale_fn=lambda x: 0.9 ** x, scale_mode=scale_mode), steps=30)


def test_cyclic_lr_steers_the_optimizers_actual_steps():
    """The momentum CyclicLR sets is the one RMSprop uses: the parameters stay torch's."""
    values, grads = params_and_grads(steps=20)
    params = [nn.Parameter(v.copy()) for v in values]
    t_params = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    opt, t_opt = optim.RMSprop(params, lr=0.01), torch.optim.RMSprop(t_params, lr=0.01)
    sched = lr_scheduler.CyclicLR(opt, base_lr=1e-3, max_lr=0.01, step_size_up=4)
    t_sched = TS.CyclicLR(t_opt, base_lr=1e-3, max_lr=0.01, step_size_up=4)
    for step_grads in grads:
        step_with(opt, params, [step_grads], minicnn)
        step_with(t_opt, t_params, [step_grads], torch)
        sched.step()
        t_sched.step()
        for p, t in zip(params, t_params):
            np.testing.assert_allclose(p.array, t.detach().numpy(), rtol=1e-10, atol=1e-10)


SUBSCHEDULES = {
    "linear": lambda S, o: S.LinearLR(o, start_factor=0.1, total_iters=5),
    "constant": lambda S, o: S.ConstantLR(o, factor=0.5, total_iters=3),
    "exponential": lambda S, o: S.ExponentialLR(o, gamma=0.9),
    "step": lambda S, o: S.StepLR(o, step_size=4, gamma=0.5),
    "cosine": lambda S, o: S.CosineAnnealingLR(o, T_max=12, eta_min=1e-3),
    "lambda": lambda S, o: S.LambdaLR(o, lambda e: 0.95 ** e),
    "polynomial": lambda S, o: S.PolynomialLR(o, total_iters=6, power=2.0),
}


@settings(max_examples=40)
@given(names=st.lists(st.sampled_from(sorted(SUBSCHEDULES)), min_size=1, max_size=3),
       gaps=st.lists(st.integers(1, 10), min_size=2, max_size=2))
def test_sequential_lr_gives_torchs_lrs(names, gaps):
    milestones = list(np.cumsum(gaps[:len(names) - 1]).tolist())
    build = lambda S, o: S.SequentialLR(o, [SUBSCHEDULES[n](S, o) for n in names], milestones=milestones)  # noqa
    assert_same_schedule(build, steps=35)


@settings(max_examples=30)
@given(names=st.lists(st.sampled_from(sorted(SUBSCHEDULES)), min_size=1, max_size=3))
def test_chained_scheduler_gives_torchs_lrs(names):
    assert_same_schedule(lambda S, o: S.ChainedScheduler([SUBSCHEDULES[n](S, o) for n in names]), steps=30)


@settings(max_examples=30)
@given(mode=st.sampled_from(["min", "max"]), threshold_mode=st.sampled_from(["rel", "abs"]),
       threshold=st.sampled_from([0.0, 1e-4, 0.1]), factor=st.floats(0.05, 0.9), patience=st.integers(0, 4),
       cooldown=st.integers(0, 3), min_lr=st.sampled_from([0.0, 1e-3, [1e-2, 0.0]]),
       eps=st.sampled_from([1e-8, 1e-3]), seed=st.integers(0, 2**16))
def test_reduce_lr_on_plateau_gives_torchs_lrs_and_counters(mode, threshold_mode, threshold, factor, patience,
                                                            cooldown, min_lr, eps, seed):
    metrics = np.random.default_rng(seed).standard_normal(40).cumsum().tolist()  # a random walk: plateaus too
    sched, t_sched = assert_same_schedule(
        lambda S, o: S.ReduceLROnPlateau(o, mode=mode, factor=factor, patience=patience, threshold=threshold,
                                         threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps),
        metrics=metrics)
    for key in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
        assert getattr(sched, key) == getattr(t_sched, key), key


def test_reduce_lr_on_plateau_with_min_lr_per_group_refuses_a_group_added_later_as_torch():
    opt, t_opt = two_groups()
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=0, min_lr=[0.0, 0.0])
    t_sched = TS.ReduceLROnPlateau(t_opt, patience=0, min_lr=[0.0, 0.0])
    opt.add_param_group({"params": [nn.Parameter(np.zeros(1))]})
    t_opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)]})
    for s in (sched, t_sched):
        s.step(1.0)
    with pytest.raises(RuntimeError) as theirs:
        t_sched.step(2.0)
    with pytest.raises(RuntimeError) as ours:
        sched.step(2.0)
    assert str(ours.value) == str(theirs.value)


def test_reduce_lr_on_plateau_takes_a_0d_tensor_and_warns_for_epoch_as_torch():
    opt, t_opt = two_groups()
    sched, t_sched = lr_scheduler.ReduceLROnPlateau(opt, patience=0), TS.ReduceLROnPlateau(t_opt, patience=0)
    for value in [1.0, 2.0, 3.0]:
        sched.step(minicnn.tensor(value))
        t_sched.step(torch.tensor(value))
    assert sched.get_last_lr() == t_sched.get_last_lr() and sched.num_bad_epochs == t_sched.num_bad_epochs
    with pytest.warns(UserWarning, match="epoch parameter"):
        sched.step(1.0, epoch=7)
    assert sched.last_epoch == 7


# -- schedulers: state_dict --------------------------------------------------------------------------------


class WarmUp:
    """A callable object as lr_lambda: its attributes are state, saved by state_dict() (torch too)."""

    def __init__(self, epochs):
        self.epochs = epochs

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.epochs)


STATEFUL = {
    "LambdaLR": lambda S, o: S.LambdaLR(o, WarmUp(6)),
    "MultiplicativeLR": lambda S, o: S.MultiplicativeLR(o, lambda e: 0.9),
    "ConstantLR": lambda S, o: S.ConstantLR(o, factor=0.5, total_iters=12),
    "LinearLR": lambda S, o: S.LinearLR(o, start_factor=0.2, total_iters=15),
    "PolynomialLR": lambda S, o: S.PolynomialLR(o, total_iters=20, power=1.5),
    "CosineAnnealingWarmRestarts": lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=1e-3),
    "CyclicLR": lambda S, o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range", gamma=0.97),
    "SequentialLR": lambda S, o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=4),
                                                    S.CosineAnnealingLR(o, T_max=10)], milestones=[4]),
    "ChainedScheduler": lambda S, o: S.ChainedScheduler([S.ConstantLR(o, factor=0.5, total_iters=10),
                                                         S.ExponentialLR(o, gamma=0.95)]),
    "ReduceLROnPlateau": lambda S, o: S.ReduceLROnPlateau(o, patience=1, cooldown=1, factor=0.5),
}
METRICS = [5.0, 4.0, 4.0, 4.5, 4.2, 4.1, 4.1, 4.1, 3.0, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]


def step_scheduler(sched, i):
    if isinstance(sched, lr_scheduler.ReduceLROnPlateau):
        sched.step(METRICS[i % len(METRICS)])
    else:
        sched.step()


@pytest.mark.parametrize("through_json", [False, True], ids=["dict", "json"])
@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_scheduler_state_dict_resumes_the_schedule(name, through_json):
    opt, _ = two_groups()
    sched = STATEFUL[name](lr_scheduler, opt)
    for i in range(8):
        step_scheduler(sched, i)
    state, opt_state = sched.state_dict(), opt.state_dict()
    if through_json:
        state = json.loads(json.dumps(state))
    for i in range(8, 11):
        step_scheduler(sched, i)  # later steps do not change what was saved
    opt2, _ = two_groups()
    sched2 = STATEFUL[name](lr_scheduler, opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(state)
    assert sched2.get_last_lr() == [g["lr"] for g in opt2.param_groups]
    for i in range(8, 11):
        step_scheduler(sched2, i)
    for i in range(11, 30):
        step_scheduler(sched, i)
        step_scheduler(sched2, i)
        assert sched2.get_last_lr() == sched.get_last_lr() == [g["lr"] for g in opt2.param_groups], f"step {i}"


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_scheduler_state_dict_has_torchs_keys_and_values(name):
    """torch's own state_dict() after the same steps: the same entries (torch's flag for its warning,
    '_get_lr_called_within_step', aside), the same numbers."""
    opt, t_opt = two_groups()
    sched, t_sched = STATEFUL[name](lr_scheduler, opt), STATEFUL[name](TS, t_opt)
    for i in range(9):
        t_opt.step()
        step_scheduler(sched, i)
        if isinstance(t_sched, TS.ReduceLROnPlateau):
            t_sched.step(METRICS[i])
        else:
            t_sched.step()
    ours, theirs = sched.state_dict(), t_sched.state_dict()

    def flat(state):
        """Nested schedulers' states in place; torch's warning flag and our own _is_initial aside."""
        skip = ("_get_lr_called_within_step", "_is_initial")
        return {k: [flat(s) for s in v] if k == "_schedulers" else v for k, v in state.items() if k not in skip}

    assert flat(ours) == flat(theirs)


def test_a_lambda_is_not_saved_but_a_callable_objects_attributes_are_as_torch():
    opt, t_opt = two_groups()
    ours = lr_scheduler.LambdaLR(opt, [WarmUp(4), lambda e: 1.0]).state_dict()["lr_lambdas"]
    theirs = TS.LambdaLR(t_opt, [WarmUp(4), lambda e: 1.0]).state_dict()["lr_lambdas"]
    assert ours == theirs == [{"epochs": 4}, None]
    sched = lr_scheduler.LambdaLR(opt, WarmUp(9))
    sched.load_state_dict(dict(sched.state_dict(), lr_lambdas=[{"epochs": 2}, {"epochs": 2}]))
    assert sched.lr_lambdas[0].epochs == 2


# -- schedulers: errors ------------------------------------------------------------------------------------

SCHEDULER_ERRORS = [
    (lambda S, o, s: S.LambdaLR(o, [lambda e: 1.0]), ValueError),
    (lambda S, o, s: S.MultiplicativeLR(o, 0.9), TypeError),
    (lambda S, o, s: S.ConstantLR(o, factor=1.5), ValueError),
    (lambda S, o, s: S.LinearLR(o, start_factor=0.0), ValueError),
    (lambda S, o, s: S.LinearLR(o, end_factor=1.5), ValueError),
    (lambda S, o, s: S.CosineAnnealingWarmRestarts(o, T_0=0), ValueError),
    (lambda S, o, s: S.CosineAnnealingWarmRestarts(o, T_0=2.5), ValueError),
    (lambda S, o, s: S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), ValueError),
    (lambda S, o, s: S.CosineAnnealingWarmRestarts(o, T_0=2, eta_min="0"), ValueError),
    (lambda S, o, s: S.CosineAnnealingWarmRestarts(o, T_0=2).step(-1), ValueError),
    (lambda S, o, s: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, mode="sine"), ValueError),
    (lambda S, o, s: S.CyclicLR(o, base_lr=[0.01] * 3, max_lr=0.1), ValueError),
    (lambda S, o, s: S.CyclicLR(s, base_lr=0.01, max_lr=0.1), ValueError),  # Adagrad: no momentum, no betas
    (lambda S, o, s: S.CyclicLR(object(), base_lr=0.01, max_lr=0.1), TypeError),
    (lambda S, o, s: S.SequentialLR(o, [S.ConstantLR(o), S.ConstantLR(o)], milestones=[]), ValueError),
    (lambda S, o, s: S.SequentialLR(o, [], milestones=[]), ValueError),
    (lambda S, o, s: S.SequentialLR(o, [S.ReduceLROnPlateau(o)], milestones=[]), ValueError),
    (lambda S, o, s: S.SequentialLR(o, [S.ConstantLR(s)], milestones=[]), ValueError),
    (lambda S, o, s: S.SequentialLR(o, [object()], milestones=[]), TypeError),
    (lambda S, o, s: S.ChainedScheduler([]), ValueError),
    (lambda S, o, s: S.ChainedScheduler([S.ConstantLR(o), S.ReduceLROnPlateau(o)]), ValueError),
    (lambda S, o, s: S.ReduceLROnPlateau(o, factor=1.0), ValueError),
    (lambda S, o, s: S.ReduceLROnPlateau(o, mode="biggest"), ValueError),
    (lambda S, o, s: S.ReduceLROnPlateau(o, threshold_mode="ratio"), ValueError),
    (lambda S, o, s: S.ReduceLROnPlateau(o, min_lr=[0.0]), ValueError),
    (lambda S, o, s: S.ReduceLROnPlateau(object()), TypeError),
]


@pytest.mark.parametrize("build, error", SCHEDULER_ERRORS, ids=range(len(SCHEDULER_ERRORS)))
def test_scheduler_arguments_raise_torchs_errors(build, error):
    t_other = torch.optim.Adagrad([torch.zeros(1, requires_grad=True)])
    with pytest.raises(error) as theirs:
        build(TS, two_groups()[1], t_other)
    with pytest.raises(error) as ours:
        build(lr_scheduler, two_groups()[0], optim.Adagrad([nn.Parameter(np.zeros(1))]))
    words = str(theirs.value).split(" has <")[0].split(" has Adagrad")[0]  # torch prints the optimizer's repr
    assert words in str(ours.value)


def test_every_torch_scheduler_name_is_in_minicnn_lr_scheduler():
    for name in TS.__all__:
        assert getattr(lr_scheduler, name) is getattr(optim, name), name
        assert name in lr_scheduler.__all__
        assert issubclass(getattr(lr_scheduler, name), lr_scheduler.LRScheduler), name


@pytest.mark.parametrize("name", TS.__all__)
def test_every_scheduler_signature_is_torchs_names_order_kinds_and_defaults(name):
    ours = inspect.signature(getattr(lr_scheduler, name)).parameters
    theirs = inspect.signature(getattr(TS, name)).parameters
    assert [(n, p.kind, p.default) for n, p in ours.items()] == [(n, p.kind, p.default) for n, p in theirs.items()]
