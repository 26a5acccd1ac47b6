"""RMSprop (Hinton's lecture 6e), as torch.optim.RMSprop."""

from ..backend import get_array_module
from ..ops import parallel
from .._tensor import Tensor
from .adam import _lerp_
from .optimizer import Optimizer, _check_number, _check_one_path


class RMSprop(Optimizer):
    """torch.optim.RMSprop, step for step. For each parameter p with gradient grad:

        g = grad (or -grad with maximize) + weight_decay * p
        v = alpha * v + (1 - alpha) * g^2               running mean of the squared gradients
        m = alpha * m + (1 - alpha) * g                 running mean of the gradients (centered only)
        avg = sqrt(v - m^2) + eps  (centered)   or   sqrt(v) + eps
        buf = momentum * buf + g / avg,  p = p - lr * buf    (momentum > 0)
        p = p - lr * g / avg                                  (momentum = 0)

    state[p]: 'step' (a Python int; torch keeps a tensor), 'square_avg' (v), and 'grad_avg' (m,
    centered) and 'momentum_buffer' (buf, momentum > 0): Tensors of p's shape. foreach is accepted
    and ignored (one path); capturable=True and differentiable=True are refused.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach, maximize=maximize,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _check(self, options, where):
        for name in ("lr", "eps", "momentum", "weight_decay", "alpha"):
            _check_number(options, name, where)
        _check_one_path(self, options, where)

    def _update(self, p, grad, group):
        xp = get_array_module(p.array)
        # Python floats: a NumPy float64 scalar (from a schedule) would turn float32 arithmetic into float64
        lr, alpha, eps, weight_decay, momentum = (float(group[k]) for k in ("lr", "alpha", "eps", "weight_decay",
                                                                            "momentum"))
        names = ["square_avg"] + (["momentum_buffer"] if momentum > 0 else []) + \
            (["grad_avg"] if group["centered"] else [])
        state = self.state[p]
        state.setdefault("step", 0)
        for name in names:  # made when first needed: a scheduler (CyclicLR) may turn momentum on later
            if name not in state:
                state[name] = Tensor._wrap(xp.zeros_like(p.array))
        state["step"] += 1
        options = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                       maximize=group["maximize"])
        # the same formulas on parts of the arrays, on threads for a big parameter (the same bits either way)
        parallel.elementwise(lambda p, g, work, *buffers: _rmsprop_step(p, g, work, **dict(zip(names, buffers)),
                                                                        **options),
                             p.array, grad, xp.empty_like(p.array), *(state[k].array for k in names))


def _rmsprop_step(p, grad, work, square_avg, grad_avg=None, momentum_buffer=None, *, lr, alpha, eps, weight_decay,
                  momentum, maximize):
    """One RMSprop step, in place on the arrays p, v = square_avg, m = grad_avg (centered, else None)
    and buf = momentum_buffer (momentum > 0, else None), in torch's order:
    g = grad + weight_decay * p; v = alpha v + (1 - alpha) g^2; m = alpha m + (1 - alpha) g;
    avg = sqrt(v - m^2) + eps, or sqrt(v) + eps; buf = momentum buf + g / avg, p = p - lr buf,
    or p = p - lr g / avg. work: an array of p's shape."""
    xp = get_array_module(p)
    v, m, buf = square_avg, grad_avg, momentum_buffer
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * p
    v *= alpha
    v += (1 - alpha) * g * g
    if m is not None:
        _lerp_(m, g, 1 - alpha, work)   # m = alpha * m + (1 - alpha) * g, as torch's lerp_ computes it
        avg = xp.sqrt(v - m * m)
    else:
        avg = xp.sqrt(v)
    avg += eps
    if buf is not None:
        buf *= momentum
        buf += g / avg
        p -= lr * buf
    else:
        p += -lr * g / avg
