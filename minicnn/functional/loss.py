"""Softmax cross-entropy, the loss of every classifier here."""

from ..backend import get_array_module
from .activation import log_softmax


def softmax_cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[n, labels[n]].

    logits (N, K) floats, labels (N,) ints in [0, K) -> (loss as a Python float, cache).
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
    return float(loss), (logp, labels)


def softmax_cross_entropy_backward(dout, cache):
    """dlogits = dout * (softmax(logits) - onehot(labels)) / N."""
    logp, labels = cache
    xp = get_array_module(logp)
    N = logp.shape[0]
    dlogits = xp.exp(logp)
    dlogits[xp.arange(N), labels] -= 1
    return dlogits * logp.dtype.type(dout / N)
