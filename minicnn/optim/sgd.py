"""SGD: stochastic gradient descent with momentum, dampening, weight decay and Nesterov, as torch.optim.SGD."""

from ..backend import get_array_module
from ..ops import parallel
from .._tensor import Tensor
from .optimizer import Optimizer, _check_number, _check_one_path


class SGD(Optimizer):
    """torch.optim.SGD, step for step. For each parameter p with gradient grad:

        g = grad (or -grad with maximize) + weight_decay * p
        buf = g on the first step, then buf = momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov) or g = buf          (only when momentum != 0)
        p = p - lr * g

    state[p]['momentum_buffer'] is buf (a Tensor of p's shape, the optimizer's own: updated in place).
    foreach is accepted and ignored (one path); differentiable=True and fused=True are refused.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused)
        super().__init__(params, defaults)

    def _check(self, options, where):
        for name in ("lr", "momentum", "weight_decay"):
            _check_number(options, name, where)
        _check_one_path(self, options, where)
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError(f"Nesterov momentum requires a momentum and zero dampening{where}: got momentum="
                             f"{options['momentum']}, dampening={options['dampening']}")

    def _update(self, p, grad, group):
        # Python floats: a NumPy float64 scalar (from a schedule) would turn float32 arithmetic into float64
        lr, momentum, dampening, weight_decay = (float(group[k]) for k in ("lr", "momentum", "dampening",
                                                                           "weight_decay"))
        arrays = [p.array, grad]
        first = False
        if momentum != 0:
            state = self.state[p]
            first = state.get("momentum_buffer") is None
            if first:
                state["momentum_buffer"] = Tensor._wrap(get_array_module(grad).empty_like(p.array))
            arrays.append(state["momentum_buffer"].array)
        options = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, first=first,
                       nesterov=group["nesterov"], maximize=group["maximize"])
        # the same formulas on parts of the arrays, on threads for a big parameter (the same bits either way)
        parallel.elementwise(lambda *parts: _sgd_step(*parts, **options), *arrays)


def _sgd_step(p, grad, buf=None, *, lr, momentum, dampening, weight_decay, first, nesterov, maximize):
    """One SGD step, in place on the arrays p (and the momentum buffer buf) from the gradient grad.
    first: buf holds nothing yet (it starts as g)."""
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * p
    if buf is not None:
        if first:
            buf[...] = g
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g
