"""Optimizers and learning-rate schedules, following torch.optim's update rules step for step.

Every optimizer takes a list of Parameters, reads their .grad in step() (parameters with
no gradient are skipped) and updates .data in place. Its learning rate is .lr, which the
schedulers change once per epoch.
"""

import math

from .backend import get_array_module, to_numpy


class Optimizer:
    """Shared contract: step(), zero_grad(), .lr, state_dict(), load_state_dict()."""

    hyper_parameters = ()  # names of the attributes state_dict saves besides lr (as torch's param_groups)

    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(lr, (int, float)) or lr < 0:
            raise ValueError(f"{type(self).__name__}: lr must be a number >= 0, got {lr!r}")
        self.lr = float(lr)
        self.state = [{} for _ in self.params]  # per parameter: its buffers

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        raise NotImplementedError

    def state_dict(self):
        """lr, hyper-parameters and every buffer as NumPy arrays (for checkpoints)."""
        state = [{k: to_numpy(v).copy() if hasattr(v, "shape") else v for k, v in s.items()} for s in self.state]
        hyper = {name: getattr(self, name) for name in self.hyper_parameters}
        return {"type": type(self).__name__, "lr": self.lr, "hyper": hyper, "state": state}

    def load_state_dict(self, state_dict):
        """Restore buffers onto each parameter's backend; refuses a state from another optimizer or model."""
        name = type(self).__name__
        if state_dict.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: the state is from {state_dict.get('type')!r}, not {name}")
        if len(state_dict["state"]) != len(self.params):
            raise ValueError(
                f"{name}.load_state_dict: the state holds {len(state_dict['state'])} parameters, "
                f"this optimizer has {len(self.params)}"
            )
        self.lr = float(state_dict["lr"])
        for name, value in state_dict.get("hyper", {}).items():
            setattr(self, name, tuple(value) if isinstance(value, list) else value)  # JSON turns tuples to lists
        self.state = []
        for p, s in zip(self.params, state_dict["state"]):
            xp = get_array_module(p.data)
            self.state.append({k: xp.asarray(v, dtype=p.dtype) if hasattr(v, "shape") else v for k, v in s.items()})


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, weight decay and Nesterov, as torch.optim.SGD:

        g = grad + weight_decay * p
        buf = g (first step), then buf = momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov) or buf
        p = p - lr * g
    """

    hyper_parameters = ("momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: momentum and weight_decay must be >= 0, got {momentum} and {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0")
        self.momentum, self.dampening, self.weight_decay, self.nesterov = momentum, dampening, weight_decay, nesterov

    def step(self):
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            if self.momentum:
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = g.copy()
                else:  # in place: no fresh parameter-sized arrays on every step
                    state["momentum_buffer"] *= self.momentum
                    state["momentum_buffer"] += (1 - self.dampening) * g
                buf = state["momentum_buffer"]
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba), as torch.optim.Adam:

        g = grad + weight_decay * p
        m = b1 * m + (1 - b1) * g          v = b2 * v + (1 - b2) * g^2
        p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    hyper_parameters = ("betas", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        if not all(0 <= b < 1 for b in betas) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be two numbers in [0, 1), got {betas!r}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"Adam: eps and weight_decay must be >= 0, got {eps} and {weight_decay}")
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay

    def step(self):
        b1, b2 = self.betas
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            xp = get_array_module(p.data)
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            if not state:
                state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
            state["step"] += 1
            t = state["step"]
            state["exp_avg"] = b1 * state["exp_avg"] + (1 - b1) * g
            state["exp_avg_sq"] = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
            denom = xp.sqrt(state["exp_avg_sq"]) / math.sqrt(1 - b2 ** t) + self.eps
            p.data -= (self.lr / (1 - b1 ** t)) * (state["exp_avg"] / denom)


class LRScheduler:
    """Changes optimizer.lr once per epoch: call step() after each epoch, as in torch."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def lr_at(self, epoch):
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def get_last_lr(self):
        return self.optimizer.lr

    def state_dict(self):
        return {"type": type(self).__name__, "base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict):
        if state_dict.get("type") != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state is from {state_dict.get('type')!r}")
        self.base_lr, self.last_epoch = state_dict["base_lr"], state_dict["last_epoch"]
        self.optimizer.lr = self.lr_at(self.last_epoch)


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """lr = base_lr * gamma ** (number of milestones reached)."""

    def __init__(self, optimizer, milestones, gamma=0.1):
        milestones = sorted(milestones)
        if not all(isinstance(m, int) and m >= 0 for m in milestones):
            raise ValueError(f"MultiStepLR: milestones must be ints >= 0, got {milestones!r}")
        super().__init__(optimizer)
        self.milestones, self.gamma = milestones, gamma

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** sum(1 for m in self.milestones if m <= epoch)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        if not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive int, got {T_max!r}")
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, epoch):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
