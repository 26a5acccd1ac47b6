"""Softmax cross-entropy, the loss of every classifier here, and torch's NLL and MSE losses.

A reduced loss ('mean', 'sum') is a 0-d array of the input's dtype, on the input's array module
(NumPy's reductions give a scalar, not an array: xp.asarray makes it one, as CuPy's already are).
"""

import numpy as np

from ..backend import get_array_module
from .activation import log_softmax, sigmoid


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
    loss = xp.asarray(-logp[xp.arange(N), labels].mean())
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
        out = xp.asarray(losses.sum())
    elif reduction == "mean":
        with _errstate():
            out = xp.asarray(losses.sum() / w.sum())
    else:
        raise ValueError(f"nll_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return out, (logp.shape, safe, w, reduction)


def nll_loss_backward(dout, cache):
    """dlogp[n, t_n] = -w[t_n] * dout (/ sum of the weights for 'mean'); 0 elsewhere.

    When every target is ignored the 'mean' is NaN but its gradient is 0, as in torch
    (every w[t_n] is 0: dividing by 1 instead of 0 keeps it 0 rather than 0/0)."""
    (N, C), safe, w, reduction = cache
    xp = get_array_module(w)
    if reduction == "mean":
        total = w.sum()
        scale = w / xp.where(total != 0, total, xp.ones_like(total))
    else:
        scale = w
    dlogp = xp.zeros((N, C), dtype=w.dtype)
    dlogp[xp.arange(N), safe] = -scale * dout
    return dlogp


def mse_loss(x, y, reduction="mean"):
    """Squared error (x - y)^2, averaged ('mean'), summed ('sum') or element-wise ('none'). x, y: any shape, same."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    diff = x - y
    sq = diff * diff
    xp = get_array_module(sq)
    out = xp.asarray(sq.mean()) if reduction == "mean" else xp.asarray(sq.sum()) if reduction == "sum" else sq
    return out, (diff, reduction)


def mse_loss_backward(dout, cache):
    """dx = 2 (x - y) dout (/ the number of elements for 'mean'); dy = -dx."""
    diff, reduction = cache
    dx = 2 * diff * dout
    if reduction == "mean":
        dx /= diff.size
    return dx, -dx


def _errstate():
    """0/0 is the NaN torch gives for an all-ignored batch, not a warning. NumPy's errstate (CuPy
    has none, and warns of nothing): on CuPy arrays it changes nothing."""
    return np.errstate(invalid="ignore", divide="ignore")


# -- the full family: K-dimensional class targets, class probabilities, binary and regression ----
#
# Shapes, as torch's: class scores x (N, C) or (N, C, d1, ..., dK) (or (C,) for one sample), with
# class indices (N,) or (N, d1, ..., dK) (or ()) or, of x's own shape, class probabilities. The
# element-wise losses take input and target of one shape. reduction 'none' keeps one loss per
# element (per (n, d1, ..., dK) for the class losses), 'sum' adds them, 'mean' averages them
# (for class indices: torch's weighted mean, divided by the sum of the weights of the targets).



def _check_reduction(reduction, where):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{where}: {reduction!r} is not a valid value for reduction: use 'mean', 'sum' or 'none'")


def _reduce(losses, reduction, divisor=None):
    """The reduced loss as a 0-d array ('none': the losses themselves); 'mean' divides by divisor
    (default: the number of losses). An empty mean is NaN, as torch's."""
    xp = get_array_module(losses)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return xp.asarray(losses.sum())
    with _errstate():
        return xp.asarray(losses.sum() / (losses.size if divisor is None else divisor))


def _upstream(dout, reduction, size):
    """dL/dloss_i for each element loss: dout itself ('none', 'sum') or dout / size ('mean').
    size 0 (an empty batch, or a weighted mean whose targets are all ignored) gives 0, not NaN:
    no loss depends on any input then."""
    if reduction == "mean":
        return dout / (size if size else 1)
    return dout


def _class_targets(x, target, weight, ignore_index, where):
    """Check class-index targets against scores x as torch does -> (x as (N, C, *), target
    (N, *) with the ignored ones set to class 0, keep (N, *) bool: not ignored, unbatched)."""
    xp = get_array_module(x)
    target = xp.asarray(target)
    if target.dtype.kind not in "iu":
        raise ValueError(f"{where}: expected integer class indices as targets, got {target.dtype} (class "
                         f"probabilities must be floats of the input's shape {tuple(x.shape)})")
    if x.ndim == 0:
        raise ValueError(f"{where}: expected scores of shape (N, C, *) or (C,), got a 0-d input")
    unbatched = x.ndim == 1
    if unbatched:
        if target.ndim != 0:
            raise ValueError(f"{where}: for one sample's scores (C,) the target must be one class index (0-d), "
                             f"got shape {tuple(target.shape)} (0D or 1D target tensor expected)")
        x, target = x[None], target[None]
    expected = (x.shape[0],) + tuple(x.shape[2:])
    if target.ndim >= 1 and target.shape[0] != x.shape[0]:
        raise ValueError(f"{where}: Expected input batch_size ({x.shape[0]}) to match target batch_size "
                         f"({target.shape[0]}).")
    if tuple(target.shape) != expected:
        raise ValueError(f"{where}: Expected target size {list(expected)}, got {list(target.shape)}: scores "
                         f"(N, C, d1, ...) take class indices (N, d1, ...)")
    C = x.shape[1]
    if weight is not None and tuple(weight.shape) != (C,):
        raise ValueError(f"{where}: weight tensor should be defined either for all {C} classes or no classes but "
                         f"got weight tensor of shape: {list(weight.shape)}")
    if weight is not None and weight.dtype != x.dtype:
        raise TypeError(f"{where}: the weight is {weight.dtype} but the input is {x.dtype}; give the weight the "
                        "input's dtype (no silent promotion)")
    keep = target != ignore_index
    bad = keep & ((target < 0) | (target >= C))
    if bool(bad.any()):
        raise ValueError(f"{where}: Target {int(target[bad].ravel()[0])} is out of bounds: class indices must lie "
                         f"in [0, {C}) for {C} classes (or be ignore_index={ignore_index})")
    return x, xp.where(keep, target, 0), keep, unbatched


def _one_hot(safe, C, dtype):
    """(N, C, *) of dtype: 1 at [n, safe[n, ...], ...], 0 elsewhere."""
    xp = get_array_module(safe)
    classes = xp.arange(C).reshape((1, C) + (1,) * (safe.ndim - 1))
    return (classes == safe[:, None]).astype(dtype)


def _target_weights(x, safe, keep, weight):
    """w[t] for each target (N, *), 0 where ignored: the per-element weights of the NLL term."""
    xp = get_array_module(x)
    w = weight[safe] if weight is not None else xp.ones(safe.shape, dtype=x.dtype)
    return xp.where(keep, w, 0).astype(x.dtype, copy=False)


def nll_loss_nd(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    """loss[n, d...] = -w[t] * logp[n, t, d...] with t = target[n, d...]; 0 where t == ignore_index.

    logp (N, C, d1, ..., dK) or (N, C) or (C,) log-probabilities, target (N, d1, ..., dK) ints
    (or () for (C,)), weight (C,) or None -> 'none': (N, d1, ..., dK); 'mean': sum(loss) / sum of
    w[t] over the targets not ignored (NaN when every target is ignored, as torch); 'sum'.
    """
    _check_reduction(reduction, "nll_loss")
    xp = get_array_module(logp)
    x, safe, keep, unbatched = _class_targets(logp, target, weight, ignore_index, "nll_loss")
    w = _target_weights(x, safe, keep, weight)
    picked = xp.take_along_axis(x, safe[:, None], axis=1)[:, 0]
    losses = xp.where(keep, -picked * w, 0).astype(x.dtype, copy=False)
    out = _reduce(losses, reduction, w.sum())
    if unbatched and reduction == "none":
        out = out.reshape(())
    return out, (x.shape, safe, w, reduction, unbatched)


def nll_loss_nd_backward(dout, cache):
    """dlogp[n, t, d...] = -w[t] * dL/dloss[n, d...] (divided by sum(w[t]) for 'mean'), 0 at every other class."""
    shape, safe, w, reduction, unbatched = cache
    if unbatched and reduction == "none":
        dout = dout[None]
    d = -w * _upstream(dout, reduction, float(w.sum()))
    dlogp = _one_hot(safe, shape[1], w.dtype) * d[:, None]
    return dlogp[0] if unbatched else dlogp


def cross_entropy_nd(logits, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy against class indices, with torch's label smoothing eps:

        loss[n, d...] = (1 - eps) * w[t] * (-logp[n, t, d...]) + eps / C * sum_c w[c] * (-logp[n, c, d...])

    logp = log_softmax(logits) along the class axis 1, t = target[n, d...], w = weight (1 if None);
    0 where t == ignore_index. Shapes and reductions as nll_loss_nd; both terms of the 'mean'
    are divided by the sum of w[t] over the targets not ignored (the count, unweighted), as torch.
    """
    _check_reduction(reduction, "cross_entropy")
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    xp = get_array_module(logits)
    x, safe, keep, unbatched = _class_targets(logits, target, weight, ignore_index, "cross_entropy")
    C, eps = x.shape[1], label_smoothing
    logp, _ = log_softmax(x, axis=1)
    w = _target_weights(x, safe, keep, weight)
    losses = -xp.take_along_axis(logp, safe[:, None], axis=1)[:, 0] * w
    if eps:
        wc = weight.reshape((1, C) + (1,) * (x.ndim - 2)) if weight is not None else 1
        losses = (1 - eps) * losses - (eps / C) * (logp * wc).sum(axis=1)
    losses = xp.where(keep, losses, 0).astype(x.dtype, copy=False)
    out = _reduce(losses, reduction, w.sum())
    if unbatched and reduction == "none":
        out = out.reshape(())
    return out, (logp, safe, keep, w, weight, eps, reduction, unbatched)


def cross_entropy_nd_backward(dout, cache):
    """With q[n, c] = (1 - eps) w[t] onehot(t)[c] + eps / C * w[c] (0 where ignored), loss = -sum_c q_c logp_c,
    and d logp_c / d x_j = [c = j] - softmax_j, so dx_j = s * (softmax_j * sum_c q_c - q_j), s = dL/dloss."""
    logp, safe, keep, w, weight, eps, reduction, unbatched = cache
    xp = get_array_module(logp)
    if unbatched and reduction == "none":
        dout = dout[None]
    C = logp.shape[1]
    s = xp.where(keep, _upstream(dout, reduction, float(w.sum())), 0).astype(logp.dtype, copy=False)
    wsum = float(weight.sum()) if weight is not None else C
    q_sum = (1 - eps) * w + (eps / C * wsum) * keep.astype(logp.dtype)
    dx = xp.exp(logp) * (s * q_sum)[:, None]
    if eps:
        wc = weight.reshape((1, C) + (1,) * (logp.ndim - 2)) if weight is not None else 1
        dx -= (eps / C) * wc * s[:, None]
    dx -= _one_hot(safe, C, logp.dtype) * ((1 - eps) * w * s)[:, None]
    return dx[0] if unbatched else dx


def cross_entropy_probs(logits, target, weight=None, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy against class probabilities (soft labels, mixup, distillation):

        loss[n, d...] = -sum_c w[c] * p[n, c, d...] * logp[n, c, d...],   p = (1 - eps) target + eps / C

    logits and target (N, C, d1, ..., dK) or (C,), of one dtype, weight (C,) or None -> 'none':
    (N, d1, ..., dK); 'mean' divides by N * d1 * ... * dK (not by the weights, as torch); 'sum'.
    """
    _check_reduction(reduction, "cross_entropy")
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if logits.ndim == 0 or tuple(target.shape) != tuple(logits.shape) or target.dtype != logits.dtype:
        raise ValueError(f"cross_entropy: class probabilities must have the input's shape {tuple(logits.shape)} "
                         f"and dtype {logits.dtype}, got {target.dtype} of shape {tuple(target.shape)}")
    unbatched = logits.ndim == 1
    x, t = (logits[None], target[None]) if unbatched else (logits, target)
    C, eps = x.shape[1], label_smoothing
    if weight is not None and (tuple(weight.shape) != (C,) or weight.dtype != x.dtype):
        raise ValueError(f"cross_entropy: weight tensor should be defined either for all {C} classes (of dtype "
                         f"{x.dtype}) or no classes but got weight tensor {weight.dtype} of shape: "
                         f"{list(weight.shape)}")
    wc = weight.reshape((1, C) + (1,) * (x.ndim - 2)) if weight is not None else None
    p = t * (1 - eps) + eps / C if eps else t
    q = p * wc if wc is not None else p
    logp, _ = log_softmax(x, axis=1)
    losses = -(logp * q).sum(axis=1)
    out = _reduce(losses, reduction)
    if unbatched and reduction == "none":
        out = out.reshape(())
    return out, (logp, q, wc, eps, reduction, unbatched)


def cross_entropy_probs_backward(dout, cache):
    """-> (dlogits, dtarget). With q = w * p: dx_j = s * (softmax_j * sum_c q_c - q_j) (as cross_entropy_nd),
    and d loss / d target_c = -(1 - eps) * w_c * logp_c, s = dL/dloss."""
    logp, q, wc, eps, reduction, unbatched = cache
    xp = get_array_module(logp)
    if unbatched and reduction == "none":
        dout = dout[None]
    s = _upstream(dout, reduction, logp.size // logp.shape[1])
    s = s[:, None] if reduction == "none" else s
    dx = (xp.exp(logp) * q.sum(axis=1, keepdims=True) - q) * s
    dtarget = logp * ((eps - 1) * s)
    if wc is not None:
        dtarget *= wc
    return (dx[0], dtarget[0]) if unbatched else (dx, dtarget)


def _same_shape(x, y, where):
    if tuple(x.shape) != tuple(y.shape):
        raise ValueError(f"{where}: input {tuple(x.shape)} and target {tuple(y.shape)} differ in shape; give them "
                         "one shape (torch broadcasts them, with a warning that it is likely wrong)")
    _same_dtype(x, y, where)


def _same_dtype(x, y, where):
    if x.dtype != y.dtype:
        raise TypeError(f"{where}: the input is {x.dtype} but the target is {y.dtype}; give them one dtype "
                        "(no silent promotion)")


def _elementwise_weight(weight, x, where, what="weight"):
    """weight broadcast to x's shape (it must broadcast to exactly that shape), or None."""
    if weight is None:
        return None
    try:
        shape = np.broadcast_shapes(tuple(weight.shape), tuple(x.shape))
    except ValueError:
        shape = None
    if shape != tuple(x.shape):
        raise ValueError(f"{where}: {what} of shape {tuple(weight.shape)} does not broadcast to the input's shape "
                         f"{tuple(x.shape)}")
    if weight.dtype != x.dtype:
        raise TypeError(f"{where}: {what} is {weight.dtype} but the input is {x.dtype}; give it the input's dtype "
                        "(no silent promotion)")
    return weight


def binary_cross_entropy(x, y, weight=None, reduction="mean"):
    """loss = -w * (y * log(x) + (1 - y) * log(1 - x)), each log clamped at -100 as torch (so that
    x = 0 or 1 gives 100, not inf). x probabilities in [0, 1], y targets, weight broadcastable; one shape.
    """
    _check_reduction(reduction, "binary_cross_entropy")
    if tuple(y.shape) != tuple(x.shape):
        raise ValueError(f"binary_cross_entropy: Using a target size {tuple(y.shape)} that is different to the "
                         f"input size {tuple(x.shape)} is deprecated. Please ensure they have the same size.")
    _same_dtype(x, y, "binary_cross_entropy")
    xp = get_array_module(x)
    if not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1 (they are "
                         "probabilities: apply sigmoid first, or use binary_cross_entropy_with_logits on the logits)")
    w = _elementwise_weight(weight, x, "binary_cross_entropy")
    with _errstate():
        log_x, log_1mx = xp.maximum(xp.log(x), -100), xp.maximum(xp.log1p(-x), -100)
    losses = -(y * log_x + (1 - y) * log_1mx)
    if w is not None:
        losses = losses * w
    return _reduce(losses, reduction), (x, y, w, log_x, log_1mx, reduction)


def binary_cross_entropy_backward(dout, cache):
    """-> (dx, dy). dx = w (x - y) / (x (1 - x)), the denominator at least 1e-12 (torch's, so that x = 0
    or 1 gives a large finite gradient); dy = w (log(1 - x) - log(x)) with the forward's clamped logs."""
    x, y, w, log_x, log_1mx, reduction = cache
    xp = get_array_module(x)
    s = _upstream(dout, reduction, x.size)
    if w is not None:
        s = s * w
    dx = s * (x - y) / xp.maximum((1 - x) * x, 1e-12)
    return dx, s * (log_1mx - log_x)


def binary_cross_entropy_with_logits(x, y, weight=None, pos_weight=None, reduction="mean"):
    """BCE of sigmoid(x) computed from the logits x, stably:

        loss = w * ((1 - y) x + (1 + (pw - 1) y) * softplus(-x)),   softplus(-x) = -log sigmoid(x)
                                                                    = max(-x, 0) + log1p(exp(-|x|))

    (the log-sum-exp form: no exp overflows, no log(0)). pos_weight pw (broadcast along the last
    axis, e.g. (C,) for multi-label (N, C)) weighs the positive targets; weight broadcasts to x.
    """
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    if tuple(y.shape) != tuple(x.shape):
        raise ValueError(f"binary_cross_entropy_with_logits: Target size {tuple(y.shape)} must be the same as "
                         f"input size {tuple(x.shape)}")
    _same_dtype(x, y, "binary_cross_entropy_with_logits")
    xp = get_array_module(x)
    w = _elementwise_weight(weight, x, "binary_cross_entropy_with_logits")
    pw = _elementwise_weight(pos_weight, x, "binary_cross_entropy_with_logits", "pos_weight")
    softplus_neg = xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
    log_weight = 1 + (pw - 1) * y if pw is not None else 1
    losses = (1 - y) * x + log_weight * softplus_neg
    if w is not None:
        losses = losses * w
    return _reduce(losses, reduction), (x, y, w, pw, softplus_neg, reduction)


def binary_cross_entropy_with_logits_backward(dout, cache):
    """-> (dx, dy). dx = w ((1 + (pw - 1) y) sigmoid(x) - pw y) (= w (sigmoid(x) - y) without pos_weight);
    dy = w (-x + (pw - 1) softplus(-x))."""
    x, y, w, pw, softplus_neg, reduction = cache
    s = _upstream(dout, reduction, x.size)
    if w is not None:
        s = s * w
    sig, _ = sigmoid(x)
    if pw is None:
        return s * (sig - y), s * -x
    return s * ((1 + (pw - 1) * y) * sig - pw * y), s * ((pw - 1) * softplus_neg - x)


def l1_loss(x, y, reduction="mean"):
    """|x - y|, element-wise, then reduced. x, y: one shape."""
    _check_reduction(reduction, "l1_loss")
    _same_shape(x, y, "l1_loss")
    diff = x - y
    return _reduce(get_array_module(diff).abs(diff), reduction), (diff, reduction)


def l1_loss_backward(dout, cache):
    """-> (dx, dy). dx = sign(x - y) (0 where equal, as torch), dy = -dx."""
    diff, reduction = cache
    dx = get_array_module(diff).sign(diff) * _upstream(dout, reduction, diff.size)
    return dx, -dx


def smooth_l1_loss(x, y, reduction="mean", beta=1.0):
    """Huber-like: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta, d = x - y; beta = 0 is L1 (as torch).
    Quadratic near 0 (a gradient that shrinks), linear beyond (a gradient that does not explode)."""
    _check_reduction(reduction, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: smooth_l1_loss does not support negative values for beta, got {beta}")
    _same_shape(x, y, "smooth_l1_loss")
    xp = get_array_module(x)
    diff = x - y
    z = xp.abs(diff)
    losses = xp.where(z < beta, 0.5 * diff * diff / beta, z - 0.5 * beta) if beta else z
    return _reduce(losses, reduction), (diff, reduction, beta)


def smooth_l1_loss_backward(dout, cache):
    """-> (dx, dy). dx = d / beta where |d| < beta, else sign(d); dy = -dx."""
    diff, reduction, beta = cache
    xp = get_array_module(diff)
    g = xp.clip(diff / beta, -1, 1) if beta else xp.sign(diff)
    dx = g * _upstream(dout, reduction, diff.size)
    return dx, -dx
