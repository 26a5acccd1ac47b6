"""Fully connected layer, and the flatten that usually feeds it."""

from .checks import check_same_dtype


def linear(x, w, b=None):
    """out = x @ w.T + b. x (N, IN), w (OUT, IN) as in torch, b (OUT,) -> out (N, OUT)."""
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"linear: expected x (N, {w.shape[-1]}) for weight {tuple(w.shape)}, got x of shape {tuple(x.shape)}"
        )
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"linear: expected bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
    check_same_dtype("linear", x, w, b)
    out = x @ w.T
    if b is not None:
        out += b
    return out, (x, w, b is not None)


def linear_backward(dout, cache, input_grad=True):
    """dout (N, OUT) -> dx = dout @ w (N, IN), dw = dout^T @ x (OUT, IN), db = sum_n dout (OUT,) or None.

    input_grad=False skips dx (None), as for the first layer of a network.
    """
    x, w, has_bias = cache
    return dout @ w if input_grad else None, dout.T @ x, dout.sum(axis=0) if has_bias else None


def flatten(x):
    """Keep the batch axis, join the rest: (N, C, H, W) -> (N, C*H*W)."""
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, cache):
    """The gradient takes back the shape the input had."""
    return dout.reshape(cache)
