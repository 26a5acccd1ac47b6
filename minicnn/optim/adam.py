"""Adam (Kingma & Ba) and AdamW (Loshchilov & Hutter), as torch.optim.Adam and torch.optim.AdamW."""

from ..backend import get_array_module
from ..ops import parallel
from .._tensor import Tensor
from .optimizer import Optimizer, _first_state, _check_betas, _check_number, _check_one_path


class Adam(Optimizer):
    """torch.optim.Adam, step for step. For each parameter p with gradient grad, at step t = 1, 2, ...:

        g = grad (or -grad with maximize)
        g = g + weight_decay * p               (or p = p * (1 - lr * weight_decay): decoupled, AdamW)
        m = b1 * m + (1 - b1) * g              v = b2 * v + (1 - b2) * g^2
        v_max = max(v_max, v), used for v      (amsgrad only)
        p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    state[p]: 'step' (t, a Python int; torch keeps a tensor), 'exp_avg' (m), 'exp_avg_sq' (v) and,
    with amsgrad, 'max_exp_avg_sq' (v_max): Tensors of p's shape, updated in place. foreach is
    accepted and ignored (one path); capturable=True, differentiable=True and fused=True are refused.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check(self, options, where):
        for name in ("lr", "eps", "weight_decay"):
            _check_number(options, name, where)
        _check_betas(options, where)
        _check_one_path(self, options, where)

    def _update(self, p, grad, group):
        xp = get_array_module(p.array)
        # Python floats: a NumPy float64 scalar (from a schedule) would turn float32 arithmetic into float64
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        state = self.state[p]
        _first_state(state, p, "exp_avg", "exp_avg_sq")
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = Tensor._wrap(xp.zeros_like(p.array))
        state["step"] += 1
        t = state["step"]
        work = [xp.empty_like(p.array) for _ in range(2)]  # made here, whole, not by each part on its thread
        arrays = [p.array, grad, state["exp_avg"].array, state["exp_avg_sq"].array] + work
        if group["amsgrad"]:
            arrays.append(state["max_exp_avg_sq"].array)
        options = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, t=t,
                       maximize=group["maximize"], decoupled=group["decoupled_weight_decay"])
        # the same formulas on parts of the arrays, on threads for a big parameter (the same bits either way)
        parallel.elementwise(lambda *parts: _adam_step(*parts, **options), *arrays)


def _adam_step(p, grad, m, v, a, b, v_max=None, *, lr, beta1, beta2, eps, weight_decay, t, maximize, decoupled):
    """One Adam step, in place on the arrays p, m, v (and v_max, with amsgrad) from the gradient grad.
    a and b are work arrays of p's shape: each line below is one formula of the class docstring,
    computed in place in the order torch computes it (so the bits are torch's)."""
    xp = get_array_module(p)
    _moments_(p, grad, m, v, a, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay, maximize=maximize,
              decoupled=decoupled)
    if v_max is not None:
        xp.maximum(v_max, v, out=v_max)
        v = v_max
    step_size = lr / (1 - beta1 ** t)
    denom = xp.add(xp.divide(xp.sqrt(v, out=a), (1 - beta2 ** t) ** 0.5, out=a), eps, out=a)
    p += xp.divide(xp.multiply(m, -step_size, out=b), denom, out=b)


def _moments_(p, grad, m, v, work, *, lr, beta1, beta2, weight_decay, maximize, decoupled):
    """The first half of an Adam-family step (Adam, AdamW, NAdam, RAdam), in place, in torch's order:
    g = -grad with maximize; weight decay, decoupled (p shrinks by lr * weight_decay * p) or added
    to g; then m = b1 * m + (1 - b1) * g and v = b2 * v + (1 - b2) * g^2. Returns g (the caller's
    step may read it again). work: an array of p's shape."""
    xp = get_array_module(p)
    g = -grad if maximize else grad
    if weight_decay != 0:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    _lerp_(m, g, 1 - beta1, work)            # m = b1 * m + (1 - b1) * g, as torch's lerp_ computes it
    v *= beta2                               # v = b2 * v + (1 - b2) * g^2
    v += xp.multiply(xp.multiply(g, 1 - beta2, out=work), g, out=work)
    return g


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay (p shrinks by lr * weight_decay * p each
    step, outside the moments), and weight_decay=1e-2 by default."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, foreach=foreach,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # as torch: an AdamW stays decoupled, whatever state it loads
            group["decoupled_weight_decay"] = True


def _lerp_(start, end, weight, work):
    """start += weight * (end - start), in place, in the form torch's lerp_ uses for this weight
    (from the nearer end, so that weight 0 gives start and weight 1 gives end exactly); work: an
    array of start's shape for the difference."""
    diff = get_array_module(start).subtract(end, start, out=work)
    if abs(weight) < 0.5:
        diff *= weight
        start += diff
    else:
        diff *= 1 - weight
        get_array_module(start).subtract(end, diff, out=start)
