"""Adadelta (Zeiler, 2012), as torch.optim.Adadelta."""

from ..backend import get_array_module
from ..ops import parallel
from .optimizer import Optimizer, _first_state, _check_number, _check_one_path


class Adadelta(Optimizer):
    """torch.optim.Adadelta, step for step. For each parameter p with gradient grad:

        g = grad (or -grad with maximize) + weight_decay * p
        v = rho * v + (1 - rho) * g^2                   running mean of the squared gradients
        delta = sqrt(u + eps) / sqrt(v + eps) * g        the step, in the units of p
        u = rho * u + (1 - rho) * delta^2               running mean of the squared steps
        p = p - lr * delta

    state[p]: 'step' (a Python int; torch keeps a tensor), 'square_avg' (v) and 'acc_delta' (u),
    Tensors of p's shape. foreach is accepted and ignored (one path); capturable=True and
    differentiable=True are refused.
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _check(self, options, where):
        _check_number(options, "lr", where)
        if not 0.0 <= options["rho"] <= 1.0:
            raise ValueError(f"Invalid rho value: {options['rho']}{where}: rho must be in [0, 1]")
        for name in ("eps", "weight_decay"):
            _check_number(options, name, where)
        _check_one_path(self, options, where)

    def _update(self, p, grad, group):
        state = self.state[p]
        _first_state(state, p, "square_avg", "acc_delta")
        state["step"] += 1
        # Python floats: a NumPy float64 scalar (from a schedule) would turn float32 arithmetic into float64
        options = dict(lr=float(group["lr"]), rho=float(group["rho"]), eps=float(group["eps"]),
                       weight_decay=float(group["weight_decay"]), maximize=group["maximize"])
        parallel.elementwise(lambda *parts: _adadelta_step(*parts, **options),
                             p.array, grad, state["square_avg"].array, state["acc_delta"].array)


def _adadelta_step(p, grad, v, u, *, lr, rho, eps, weight_decay, maximize):
    """One Adadelta step, in place on the arrays p, v (square_avg) and u (acc_delta), in torch's order:
    g = grad + weight_decay * p; v = rho v + (1 - rho) g^2; delta = sqrt(u + eps) / sqrt(v + eps) * g;
    u = rho u + (1 - rho) delta^2; p = p - lr delta."""
    xp = get_array_module(p)
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * p
    v *= rho
    v += (1 - rho) * g * g
    delta = xp.sqrt(u + eps) / xp.sqrt(v + eps) * g
    u *= rho
    u += (1 - rho) * delta * delta
    p -= lr * delta
