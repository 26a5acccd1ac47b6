"""Adagrad (Duchi, Hazan & Singer, 2011), as torch.optim.Adagrad."""

from ..backend import get_array_module
from ..ops import parallel
from .._tensor import Tensor
from .optimizer import Optimizer, _check_number, _check_one_path


class Adagrad(Optimizer):
    """torch.optim.Adagrad, step for step. For each parameter p with gradient grad, at step t = 1, 2, ...:

        g = grad (or -grad with maximize) + weight_decay * p
        s = s + g^2                                   the sum of all squared gradients so far
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    s starts at initial_accumulator_value. state[p]: 'step' (t, a Python int; torch keeps a tensor)
    and 'sum' (s, a Tensor of p's shape). As torch, the state of the constructor's parameters is
    made at once (step 0), so state_dict() lists them before the first step.

    Differs from torch: each parameter group's own initial_accumulator_value fills its 'sum'
    (torch takes the constructor's value for every group). foreach is accepted and ignored (one
    path); differentiable=True and fused=True are refused.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _check(self, options, where):
        for name in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            _check_number(options, name, where)
        _check_one_path(self, options, where)

    def _init_state(self, p, group):
        state = self.state[p]
        state["step"] = 0
        state["sum"] = Tensor._wrap(get_array_module(p.array).full_like(
            p.array, float(group["initial_accumulator_value"])))

    def _update(self, p, grad, group):
        if not self.state[p]:  # a parameter of a group added later
            self._init_state(p, group)
        state = self.state[p]
        state["step"] += 1
        # Python floats: a NumPy float64 scalar (from a schedule) would turn float32 arithmetic into float64
        lr, lr_decay = float(group["lr"]), float(group["lr_decay"])
        options = dict(clr=lr / (1 + (state["step"] - 1) * lr_decay), eps=float(group["eps"]),
                       weight_decay=float(group["weight_decay"]), maximize=group["maximize"])
        parallel.elementwise(lambda *parts: _adagrad_step(*parts, **options), p.array, grad, state["sum"].array)


def _adagrad_step(p, grad, s, *, clr, eps, weight_decay, maximize):
    """One Adagrad step, in place on the arrays p and s (sum), in torch's order:
    g = grad + weight_decay * p; s = s + g^2; p = p - clr * g / (sqrt(s) + eps), where clr is the
    decayed learning rate lr / (1 + (t - 1) * lr_decay)."""
    xp = get_array_module(p)
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * p
    s += g * g
    p += -clr * g / (xp.sqrt(s) + eps)
