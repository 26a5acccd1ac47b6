"""RAdam (Liu et al., 2019: Adam with a rectified variance), as torch.optim.RAdam."""

from ..backend import get_array_module
from ..ops import parallel
from .adam import _moments_
from .optimizer import Optimizer, _check_adam_family, _first_state


class RAdam(Optimizer):
    """torch.optim.RAdam, step for step. For each parameter p with gradient grad, at step t = 1, 2, ...:

        g = grad (or -grad with maximize)
        g = g + weight_decay * p           (or p = p * (1 - lr * weight_decay): decoupled_weight_decay)
        m = b1 * m + (1 - b1) * g          v = b2 * v + (1 - b2) * g^2
        rho_inf = 2 / (1 - b2) - 1         rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
        while rho_t <= 5 (the variance of v is not yet trusted): p = p - lr * m / (1 - b1^t)
        after:  r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                p = p - lr * m / (1 - b1^t) * sqrt(1 - b2^t) / (sqrt(v) + eps) * r

    state[p]: 'step' (t, a Python int; torch keeps a tensor), 'exp_avg' (m) and 'exp_avg_sq' (v),
    Tensors of p's shape. foreach is accepted and ignored (one path); capturable=True and
    differentiable=True are refused.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, maximize=maximize, foreach=foreach, capturable=capturable,
                        decoupled_weight_decay=decoupled_weight_decay, differentiable=differentiable)
        super().__init__(params, defaults)

    def _check(self, options, where):
        _check_adam_family(self, options, where)

    def _update(self, p, grad, group):
        xp = get_array_module(p.array)
        state = self.state[p]
        _first_state(state, p, "exp_avg", "exp_avg_sq")
        state["step"] += 1
        t = state["step"]
        # Python floats: a NumPy float64 scalar (from a schedule) would turn float32 arithmetic into float64
        beta1, beta2 = (float(b) for b in group["betas"])
        bias_correction2 = 1 - beta2 ** t
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * (beta2 ** t) / bias_correction2
        rect = None
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        options = dict(lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=float(group["eps"]),
                       weight_decay=float(group["weight_decay"]), bias_correction1=1 - beta1 ** t,
                       bias_correction2=bias_correction2, rect=rect, maximize=group["maximize"],
                       decoupled=group["decoupled_weight_decay"])
        parallel.elementwise(lambda *parts: _radam_step(*parts, **options), p.array, grad,
                             state["exp_avg"].array, state["exp_avg_sq"].array, xp.empty_like(p.array))


def _radam_step(p, grad, m, v, work, *, lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2,
                rect, maximize, decoupled):
    """One RAdam step, in place on the arrays p, m (exp_avg) and v (exp_avg_sq), in torch's order:
    weight decay; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; then
    p = p - m / bias_correction1 * lr * (sqrt(bias_correction2) / (sqrt(v) + eps)) * rect, or
    p = p - m / bias_correction1 * lr while rect is None (rho_t <= 5). work: an array of p's shape."""
    xp = get_array_module(p)
    _moments_(p, grad, m, v, work, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay, maximize=maximize,
              decoupled=decoupled)
    step = m / bias_correction1 * lr
    if rect is not None:
        step = step * (bias_correction2 ** 0.5 / (xp.sqrt(v) + eps)) * rect
    p -= step
