"""Numerical gradient checking by central differences, in float64.

For a scalar L = sum(f(x) * dout), with dout a fixed random array, the analytic gradient
dL/dx is what backward(dout) returns, and the numerical one is, entry by entry,
    (L(x + eps) - L(x - eps)) / (2 eps).
The error is reported relative to max(1, |analytic|, |numerical|), so that it is a relative
error for large gradients and an absolute one for gradients near zero.
"""

from dataclasses import dataclass

import numpy as np

from .backend import get_array_module, to_numpy


@dataclass
class GradcheckResult:
    """The worst error found: its size, and which input and entry it happened at."""

    max_rel_error: float
    where: tuple  # (input name, index)
    analytic: float
    numerical: float

    def ok(self, tol=1e-6):
        return self.max_rel_error <= tol

    def __str__(self):
        name, index = self.where
        return (f"max relative error {self.max_rel_error:.3e} at {name}{list(index)}: "
                f"analytic {self.analytic:.10g}, numerical {self.numerical:.10g}")


def numerical_gradient(loss, x, eps=1e-6):
    """dloss/dx by central differences, perturbing x in place one entry at a time. x float64."""
    if x.dtype != np.float64:
        raise TypeError(f"numerical_gradient: needs float64 arrays for exact differences, got {x.dtype}")
    if not x.flags.c_contiguous:
        raise ValueError("numerical_gradient: x must be C-contiguous, so that its flat view writes into it")
    xp = get_array_module(x)
    grad = xp.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: writing into them writes into x and grad
    for i in range(flat.size):
        old = float(flat[i])
        flat[i] = old + eps
        plus = loss()
        flat[i] = old - eps
        minus = loss()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def compare(analytic, numerical):
    """The worst entry over named pairs of arrays: a GradcheckResult."""
    worst = GradcheckResult(0.0, ("", ()), 0.0, 0.0)
    for name in numerical:
        a, n = to_numpy(analytic[name]), to_numpy(numerical[name])
        if a.shape != n.shape:
            raise ValueError(f"gradcheck: analytic gradient for {name} has shape {a.shape}, expected {n.shape}")
        if a.size == 0:
            continue
        err = np.abs(a - n) / np.maximum(1.0, np.maximum(np.abs(a), np.abs(n)))
        i = np.unravel_index(int(np.argmax(err)), err.shape)
        if err[i] >= worst.max_rel_error:
            worst = GradcheckResult(float(err[i]), (name, tuple(int(k) for k in i)), float(a[i]), float(n[i]))
    return worst


def gradcheck(forward, backward, inputs, eps=1e-6, seed=0):
    """Check a functional op: forward(*inputs) -> (out, cache), backward(dout, cache) -> grads
    (one per input, None where an input gets none). inputs: float64 arrays, perturbed in place
    and restored. Returns the worst GradcheckResult."""
    inputs = list(inputs)
    out, cache = forward(*inputs)
    xp = get_array_module(out)
    dout = xp.asarray(np.random.default_rng(seed).standard_normal(out.shape))
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)

    def loss():
        return float((forward(*inputs)[0] * dout).sum())

    analytic, numerical = {}, {}
    for k, (x, g) in enumerate(zip(inputs, grads)):
        if g is not None:
            analytic[f"input{k}"] = g
            numerical[f"input{k}"] = numerical_gradient(loss, x, eps)
    return compare(analytic, numerical)


def check_module(module, x, eps=1e-6, seed=0):
    """Check a Module through autograd (float64 parameters and input x): dx and every parameter's
    gradient from loss.backward() against central differences. Dropout and other random layers
    must be in eval() mode. Returns the worst GradcheckResult. The parameters' .grad are left
    as they were."""
    from ._tensor import Tensor
    from .autograd import no_grad
    x_array = (x.array if isinstance(x, Tensor) else x).copy()
    params = list(module.named_parameters())
    saved = [(p, p.grad) for _, p in params]
    xt = Tensor(x_array, requires_grad=True)
    out = module(xt)
    xp = get_array_module(out.array)
    dout = xp.asarray(np.random.default_rng(seed).standard_normal(out.shape)).astype(out.dtype)
    for _, p in params:
        p.grad = None
    (out * Tensor(dout)).sum().backward()
    analytic = {"x": xt.grad.array, **{name: p.grad.array for name, p in params if p.grad is not None}}
    for p, grad in saved:
        p.grad = grad

    def loss():
        with no_grad():
            return float((module(Tensor._wrap(x_array)).array * dout).sum())

    numerical = {"x": numerical_gradient(loss, x_array, eps)}
    for name, p in params:
        if name in analytic:
            numerical[name] = numerical_gradient(loss, p.array, eps)
    return compare(analytic, numerical)
