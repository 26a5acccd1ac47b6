"""Element-wise activations and the softmax family. Shapes: any; output same as input.

softmax and log_softmax normalise along `axis` (the class axis, 1 for (N, K) logits).
"""

from ..backend import get_array_module


def relu(x):
    """max(x, 0). (Not x * (x > 0): that is nan at x = -inf.)"""
    return get_array_module(x).maximum(x, 0), (x,)


def relu_backward(dout, cache):
    """dx = dout where the input was positive, else 0."""
    (x,) = cache
    return dout * (x > 0)


def sigmoid(x):
    """1 / (1 + exp(-x)), computed from exp(-|x|) so that no exp overflows."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return out, (out,)


def sigmoid_backward(dout, cache):
    """d sigmoid / dx = s * (1 - s)."""
    (out,) = cache
    dx = 1 - out  # one new array, then updated in place: no temporaries on a hot path
    dx *= out
    dx *= dout
    return dx


def tanh(x):
    """Hyperbolic tangent."""
    out = get_array_module(x).tanh(x)
    return out, (out,)


def tanh_backward(dout, cache):
    """d tanh / dx = 1 - tanh^2."""
    (out,) = cache
    dx = out * out  # one new array, then updated in place: no temporaries on a hot path
    get_array_module(out).subtract(1, dx, out=dx)
    dx *= dout
    return dx


def softmax(x, axis=1):
    """exp(x) / sum(exp(x)) along axis, shifted by the max so exp never overflows."""
    xp = get_array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    out = e / e.sum(axis=axis, keepdims=True)
    return out, (out, axis)


def softmax_backward(dout, cache):
    """Jacobian-vector product of softmax: dx = y * (dout - sum(dout * y))."""
    out, axis = cache
    return out * (dout - (dout * out).sum(axis=axis, keepdims=True))


def log_softmax(x, axis=1):
    """x - logsumexp(x) along axis, with the max subtracted first (log-sum-exp trick)."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return out, (out, axis)


def log_softmax_backward(dout, cache):
    """dx = dout - softmax(x) * sum(dout), since d logsumexp / dx = softmax(x)."""
    out, axis = cache
    xp = get_array_module(out)
    return dout - xp.exp(out) * dout.sum(axis=axis, keepdims=True)
