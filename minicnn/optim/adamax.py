"""Adamax (Kingma & Ba, section 7: Adam with the infinity norm), as torch.optim.Adamax."""

from ..backend import get_array_module
from ..ops import parallel
from .adam import _lerp_
from .optimizer import Optimizer, _check_adam_family, _first_state


class Adamax(Optimizer):
    """torch.optim.Adamax, step for step. For each parameter p with gradient grad, at step t = 1, 2, ...:

        g = grad (or -grad with maximize) + weight_decay * p
        m = b1 * m + (1 - b1) * g                      running mean of the gradients
        u = max(b2 * u, |g| + eps)                     decaying maximum of their sizes
        p = p - lr / (1 - b1^t) * m / u

    state[p]: 'step' (t, a Python int; torch keeps a tensor), 'exp_avg' (m) and 'exp_inf' (u),
    Tensors of p's shape. foreach is accepted and ignored (one path); capturable=True and
    differentiable=True are refused.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _check(self, options, where):
        _check_adam_family(self, options, where)

    def _update(self, p, grad, group):
        xp = get_array_module(p.array)
        state = self.state[p]
        _first_state(state, p, "exp_avg", "exp_inf")
        state["step"] += 1
        # Python floats: a NumPy float64 scalar (from a schedule) would turn float32 arithmetic into float64
        beta1, beta2 = (float(b) for b in group["betas"])
        options = dict(clr=float(group["lr"]) / (1 - beta1 ** state["step"]), beta1=beta1, beta2=beta2,
                       eps=float(group["eps"]), weight_decay=float(group["weight_decay"]),
                       maximize=group["maximize"])
        parallel.elementwise(lambda *parts: _adamax_step(*parts, **options),
                             p.array, grad, state["exp_avg"].array, state["exp_inf"].array, xp.empty_like(p.array))


def _adamax_step(p, grad, m, u, work, *, clr, beta1, beta2, eps, weight_decay, maximize):
    """One Adamax step, in place on the arrays p, m (exp_avg) and u (exp_inf), in torch's order:
    g = grad + weight_decay * p; m = b1 m + (1 - b1) g; u = max(b2 u, |g| + eps); p = p - clr m / u,
    where clr = lr / (1 - b1^t) corrects m's bias. work: an array of p's shape."""
    xp = get_array_module(p)
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * p
    _lerp_(m, g, 1 - beta1, work)   # as torch's lerp_ computes it
    u *= beta2
    xp.maximum(u, xp.abs(g) + eps, out=u)
    p += -clr * m / u
