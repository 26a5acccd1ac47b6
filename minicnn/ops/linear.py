"""Fully connected layer, and the flatten that usually feeds it."""

from ..backend import get_array_module
from . import parallel
from .checks import check_same_dtype
from .impl import choose


def linear(x, w, b=None, impl=None):
    """out = x @ w.T + b. x (N, IN), w (OUT, IN) as in torch, b (OUT,) -> out (N, OUT)."""
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"linear: expected x (N, {w.shape[-1]}) for weight {tuple(w.shape)}, got x of shape {tuple(x.shape)}"
        )
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"linear: expected bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
    check_same_dtype("linear", x, w, b)
    if choose(impl, "linear") == "fast" and _threads(x, w) > 1:
        return _linear_fast(x, w, b), (x, w, b is not None)
    out = x @ w.T
    if b is not None:
        out += b
    return out, (x, w, b is not None)


def linear_backward(dout, cache, input_grad=True):
    """dout (N, OUT) -> dx = dout @ w (N, IN), dw = dout^T @ x (OUT, IN), db = sum_n dout (OUT,) or None.

    input_grad=False skips dx (None), as for the first layer of a network.
    """
    x, w, has_bias = cache
    if choose(None, "linear") == "fast" and _threads(x, w) > 1 and dout.dtype == x.dtype:
        return _linear_backward_fast(dout, x, w, has_bias, input_grad)
    return dout @ w if input_grad else None, dout.T @ x, dout.sum(axis=0) if has_bias else None


def flatten(x):
    """Keep the batch axis, join the rest: (N, C, H, W) -> (N, C*H*W)."""
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, cache):
    """The gradient takes back the shape the input had."""
    return dout.reshape(cache)


# -- the fast path: the same products, cut over threads (ops.parallel) -------------------------------
# Each thread writes its own rows of the result (rows of out and dx are images, rows of dw are output
# features), so no sum is cut: the numbers are those of the whole products.


def _threads(x, w):
    return parallel.parts(x.shape[0], x.shape[0] * w.shape[0] * w.shape[1], x, parallel.MIN_PRODUCT)


def _linear_fast(x, w, b):
    xp = get_array_module(x)
    out = xp.empty((x.shape[0], w.shape[0]), dtype=x.dtype)

    def rows(i, j):
        xp.matmul(x[i:j], w.T, out=out[i:j])
        if b is not None:
            out[i:j] += b
    parallel.split(rows, x.shape[0], x, k=_threads(x, w))
    return out


def _linear_backward_fast(dout, x, w, has_bias, input_grad):
    xp = get_array_module(x)
    dx = xp.empty(x.shape, dtype=x.dtype) if input_grad else None
    dw = xp.empty(w.shape, dtype=x.dtype)

    def rows(i, j):
        if input_grad:
            xp.matmul(dout[i:j], w, out=dx[i:j])
    parallel.split(rows, x.shape[0], x, k=_threads(x, w))

    def features(i, j):
        xp.matmul(dout[:, i:j].T, x, out=dw[i:j])
    parallel.split(features, w.shape[0], x, k=parallel.parts(w.shape[0], dout.size * x.shape[1], x,
                                                              parallel.MIN_PRODUCT))
    return dx, dw, dout.sum(axis=0) if has_bias else None
