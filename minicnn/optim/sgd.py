"""SGD: stochastic gradient descent with momentum, dampening, weight decay and Nesterov, as torch.optim.SGD."""

from .._tensor import Tensor
from .optimizer import Optimizer, _check_number


class SGD(Optimizer):
    """torch.optim.SGD, step for step. For each parameter p with gradient grad:

        g = grad (or -grad with maximize) + weight_decay * p
        buf = g on the first step, then buf = momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov) or g = buf          (only when momentum != 0)
        p = p - lr * g

    state[p]['momentum_buffer'] is buf (a Tensor of p's shape, the optimizer's own: updated in place).
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check(self, options, where):
        for name in ("lr", "momentum", "weight_decay"):
            _check_number(options, name, where)
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError(f"Nesterov momentum requires a momentum and zero dampening{where}: got momentum="
                             f"{options['momentum']}, dampening={options['dampening']}")

    def _update(self, p, grad, group):
        # Python floats: a NumPy float64 scalar (from a schedule) would turn float32 arithmetic into float64
        lr, momentum, dampening, weight_decay = (float(group[k]) for k in ("lr", "momentum", "dampening",
                                                                           "weight_decay"))
        g = -grad if group["maximize"] else grad
        if weight_decay != 0:
            g = g + weight_decay * p.array
        if momentum != 0:
            state = self.state[p]
            if state.get("momentum_buffer") is None:
                state["momentum_buffer"] = Tensor._wrap(g.copy())  # a copy: g may be the gradient array itself
            else:
                buf = state["momentum_buffer"].array
                buf *= momentum
                buf += (1 - dampening) * g
            buf = state["momentum_buffer"].array
            g = g + momentum * buf if group["nesterov"] else buf
        p.array -= lr * g
