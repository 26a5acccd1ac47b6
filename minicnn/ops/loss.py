"""Softmax cross-entropy, the loss of every classifier here."""

from ..backend import get_array_module
from .activation import log_softmax


def softmax_cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[n, labels[n]].

    logits (N, K) floats, labels (N,) ints in [0, K) -> (loss, a 0-d array of logits' dtype; cache).
    Computed through log_softmax (log-sum-exp), so large logits do not overflow.
    """
    xp = get_array_module(logits)
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: expected logits of shape (N, K), got {tuple(logits.shape)}")
    labels = xp.asarray(labels)
    if labels.shape != (logits.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"softmax_cross_entropy: expected integer labels of shape ({logits.shape[0]},), "
            f"got {labels.dtype} of shape {tuple(labels.shape)}"
        )
    K = logits.shape[1]
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= K):
        raise ValueError(
            f"softmax_cross_entropy: labels must lie in [0, {K}) for {K} classes, "
            f"got values from {int(labels.min())} to {int(labels.max())}"
        )
    logp, _ = log_softmax(logits, axis=1)
    N = logits.shape[0]
    loss = -logp[xp.arange(N), labels].mean()
    return loss, (logp, labels)


def softmax_cross_entropy_backward(dout, cache):
    """dlogits = dout * (softmax(logits) - onehot(labels)) / N."""
    logp, labels = cache
    xp = get_array_module(logp)
    N = logp.shape[0]
    dlogits = xp.exp(logp)
    dlogits[xp.arange(N), labels] -= 1
    dlogits *= dout / N  # dout: the 0-d gradient of the loss
    return dlogits


def _check_targets(logp, target, where):
    xp = get_array_module(logp)
    target = xp.asarray(target)
    if logp.ndim != 2 or target.shape != (logp.shape[0],) or target.dtype.kind not in "iu":
        raise ValueError(f"{where}: expected input (N, C) and integer targets (N,), got input of shape "
                         f"{tuple(logp.shape)} and targets {target.dtype} of shape {tuple(target.shape)}")
    return target


def nll_loss(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood: loss_n = -w[t_n] * logp[n, t_n], 0 where t_n == ignore_index.

    logp (N, C) log-probabilities, target (N,) ints in [0, C) or ignore_index, weight (C,) or None.
    reduction 'none' -> (N,); 'sum' -> sum of loss_n; 'mean' -> sum of loss_n / sum of w[t_n]
    over the targets not ignored (torch's weighted mean: NaN when every target is ignored).
    """
    xp = get_array_module(logp)
    target = _check_targets(logp, target, "nll_loss")
    N, C = logp.shape
    keep = target != ignore_index
    bad = keep & ((target < 0) | (target >= C))
    if bool(bad.any()):
        raise ValueError(f"nll_loss: targets must lie in [0, {C}) (or be ignore_index={ignore_index}), got "
                         f"{int(target[bad][0])}")
    safe = xp.where(keep, target, 0)
    w = (weight[safe] if weight is not None else xp.ones(N, dtype=logp.dtype)) * keep
    w = w.astype(logp.dtype, copy=False)
    losses = -logp[xp.arange(N), safe] * w
    if reduction == "none":
        out = losses
    elif reduction == "sum":
        out = losses.sum()
    elif reduction == "mean":
        with _errstate(xp):
            out = losses.sum() / w.sum()
    else:
        raise ValueError(f"nll_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return out, (logp.shape, safe, w, reduction)


def nll_loss_backward(dout, cache):
    """dlogp[n, t_n] = -w[t_n] * dout (/ sum of the weights for 'mean'); 0 elsewhere."""
    (N, C), safe, w, reduction = cache
    xp = get_array_module(w)
    scale = w if reduction != "mean" else w / w.sum()
    dlogp = xp.zeros((N, C), dtype=w.dtype)
    dlogp[xp.arange(N), safe] = -scale * dout
    return dlogp


def mse_loss(x, y, reduction="mean"):
    """Squared error (x - y)^2, averaged ('mean'), summed ('sum') or element-wise ('none'). x, y: any shape, same."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    diff = x - y
    sq = diff * diff
    out = sq.mean() if reduction == "mean" else sq.sum() if reduction == "sum" else sq
    return out, (diff, reduction)


def mse_loss_backward(dout, cache):
    """dx = 2 (x - y) dout (/ the number of elements for 'mean'); dy = -dx."""
    diff, reduction = cache
    dx = 2 * diff * dout
    if reduction == "mean":
        dx /= diff.size
    return dx, -dx


class _errstate:
    """numpy's errstate (0/0 is the NaN torch gives for an all-ignored batch, not a warning); nothing on CuPy."""

    def __init__(self, xp):
        self.ctx = xp.errstate(invalid="ignore", divide="ignore") if hasattr(xp, "errstate") else None

    def __enter__(self):
        if self.ctx is not None:
            self.ctx.__enter__()

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.__exit__(*exc)
