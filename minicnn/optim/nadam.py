"""NAdam (Dozat, 2016: Adam with Nesterov momentum), as torch.optim.NAdam."""

import numpy as np

from ..backend import get_array_module
from ..ops import parallel
from .._tensor import Tensor
from .adam import _moments_
from .optimizer import Optimizer, _check_betas, _check_number, _check_one_path


class NAdam(Optimizer):
    """torch.optim.NAdam, step for step. For each parameter p with gradient grad, at step t = 1, 2, ...:

        g = grad (or -grad with maximize)
        g = g + weight_decay * p           (or p = p * (1 - lr * weight_decay): decoupled_weight_decay)
        mu_t = b1 * (1 - 0.96^(t * momentum_decay) / 2)     the momentum of step t, warming up to b1
        P_t = mu_1 * mu_2 * ... * mu_t                       (state 'mu_product')
        m = b1 * m + (1 - b1) * g          v = b2 * v + (1 - b2) * g^2
        d = sqrt(v / (1 - b2^t)) + eps
        p = p - lr * (1 - mu_t) / (1 - P_t) * g / d - lr * mu_{t+1} / (1 - P_t * mu_{t+1}) * m / d

    state[p]: 'step' (t, a Python int; torch keeps a tensor), 'mu_product' (P_t, a Python float
    rounded to float32 at each step, as torch keeps it in a float32 scalar tensor: minicnn's
    default dtype, torch's), 'exp_avg' (m) and 'exp_avg_sq' (v), Tensors of p's shape. foreach is
    accepted and ignored (one path); capturable=True and differentiable=True are refused.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def _check(self, options, where):
        for name in ("lr", "eps"):
            _check_number(options, name, where)
        _check_betas(options, where)
        for name in ("weight_decay", "momentum_decay"):
            _check_number(options, name, where)
        _check_one_path(self, options, where)

    def _update(self, p, grad, group):
        xp = get_array_module(p.array)
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["mu_product"] = 1.0
            state["exp_avg"] = Tensor._wrap(xp.zeros_like(p.array))
            state["exp_avg_sq"] = Tensor._wrap(xp.zeros_like(p.array))
        state["step"] += 1
        t = state["step"]
        # Python floats: a NumPy float64 scalar (from a schedule) would turn float32 arithmetic into float64
        lr, momentum_decay = float(group["lr"]), float(group["momentum_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        state["mu_product"] = float(np.float32(state["mu_product"]) * np.float32(mu))
        product = state["mu_product"]
        options = dict(lr=lr, beta1=beta1, beta2=beta2, eps=float(group["eps"]),
                       weight_decay=float(group["weight_decay"]), bias_correction2=1 - beta2 ** t,
                       grad_coef=-lr * (1.0 - mu) / (1.0 - product),
                       exp_avg_coef=(-lr * mu_next) / (1.0 - product * mu_next),
                       maximize=group["maximize"], decoupled=group["decoupled_weight_decay"])
        parallel.elementwise(lambda *parts: _nadam_step(*parts, **options), p.array, grad,
                             state["exp_avg"].array, state["exp_avg_sq"].array, xp.empty_like(p.array))


def _nadam_step(p, grad, m, v, work, *, lr, beta1, beta2, eps, weight_decay, bias_correction2, grad_coef,
                exp_avg_coef, maximize, decoupled):
    """One NAdam step, in place on the arrays p, m (exp_avg) and v (exp_avg_sq), in torch's order:
    weight decay; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; d = sqrt(v / bias_correction2) + eps;
    p = p + grad_coef * g / d; p = p + exp_avg_coef * m / d. The coefficients (the class docstring's
    -lr (1 - mu_t) / (1 - P_t) and -lr mu_{t+1} / (1 - P_t mu_{t+1})) are numbers, made once per
    step by the caller. work: an array of p's shape."""
    xp = get_array_module(p)
    g = _moments_(p, grad, m, v, work, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay,
                  maximize=maximize, decoupled=decoupled)
    d = xp.sqrt(v / bias_correction2) + eps
    p += grad_coef * g / d
    p += exp_avg_coef * m / d
