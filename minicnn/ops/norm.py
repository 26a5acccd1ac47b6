"""Normalisation layers as forward/backward pairs on arrays.

batch_norm, group_norm and layer_norm standardise groups of values and then scale and shift them:

    xhat = (x - mean) / sqrt(var + eps)      (var: the biased variance, mean((x - mean)^2))
    y    = gamma * xhat + beta               (gamma, beta per channel or per feature; may be None)

They differ only in which values share one mean and variance:

    batch_norm    x (N, C, *)  one channel over the batch and every position: axes (0, 2, 3, ...)
    group_norm    x (N, C, *)  one sample and a group of C/G channels with their positions
    layer_norm    x (*, S...)  one sample over the trailing dims S = normalized_shape

local_response_norm (AlexNet's) instead divides each value by a power of the sum of squares of
the values at the same position in the nearby channels.

The backward of standardisation (all three share it): with dxhat = dL/dxhat and M the number
of values in a group, mean and var depend on every x of the group, and

    dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))

(the mean term comes through d mean / dx = 1/M, the last through d var / dx = 2 (x - mean) / M).
"""

from collections import namedtuple

from ..backend import get_array_module
from . import parallel
from .impl import choose


def _standardize(x, axes, eps):
    """xhat, inv_std, mean, var over axes (kept as size-1 dims). Two passes: the variance is
    the mean of the squared deviations, not E[x^2] - E[x]^2, which cancels catastrophically."""
    xp = get_array_module(x)
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=axes, keepdims=True)
    inv_std = 1 / xp.sqrt(var + eps)
    xc *= inv_std  # xc becomes xhat: one temporary fewer
    return xc, inv_std, mean, var


def _standardize_backward(dxhat, xhat, inv_std, axes):
    """dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), the means over axes."""
    return inv_std * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                      - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))


def _channel_shape(x):
    """(1, C, 1, ...): a per-channel vector broadcast against x (N, C, *)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _affine(xhat, gamma, beta, shape):
    out = xhat * gamma.reshape(shape) if gamma is not None else xhat.copy()
    if beta is not None:
        out += beta.reshape(shape)
    return out


def _affine_grads(dout, xhat, gamma, has_beta, axes):
    """dgamma = sum(dout * xhat), dbeta = sum(dout) over the axes gamma is broadcast along."""
    dgamma = (dout * xhat).sum(axis=axes) if gamma is not None else None
    dbeta = dout.sum(axis=axes) if has_beta else None
    return dgamma, dbeta


# -- batch normalisation ------------------------------------------------------------------------

BatchNormCache = namedtuple("BatchNormCache", "xhat gamma inv_std has_beta axes mean var")
BatchNormCache.__doc__ = """What batch_norm's backward needs, plus the batch statistics mean (C,) and
var (C,) (biased) that a BatchNorm layer folds into its running statistics."""


def _batch_axes(x, where):
    if x.ndim < 2:
        raise ValueError(f"{where}: expected input of shape (N, C, *), got shape {tuple(x.shape)}")
    return (0,) + tuple(range(2, x.ndim))


def batch_norm(x, gamma=None, beta=None, eps=1e-5):
    """Training mode: normalise each channel with the statistics of this batch.

    x (N, C) or (N, C, L) or (N, C, H, W) (any (N, C, *)), gamma (C,) or None, beta (C,) or None
    -> out of x's shape; cache a BatchNormCache, whose .mean and .var (C,) are the batch mean and
    biased variance over the M = N * L (or N * H * W) values of each channel.
    """
    axes = _batch_axes(x, "batch_norm")
    if choose(None, "batch_norm") == "fast" and _threads(x) > 1:
        return _batch_norm_fast(x, gamma, beta, eps, axes)
    xhat, inv_std, mean, var = _standardize(x, axes, eps)
    out = _affine(xhat, gamma, beta, _channel_shape(x))
    return out, BatchNormCache(xhat, gamma, inv_std, beta is not None, axes, mean.reshape(-1), var.reshape(-1))


def batch_norm_backward(dout, cache):
    """-> (dx, dgamma, dbeta). With dxhat = gamma * dy and gamma constant over a channel's M values,
    the standardisation backward (module docstring) becomes the compact closed form

        dx = (1/M) * gamma * inv_std * (M * dy - sum(dy) - xhat * sum(dy * xhat))

    whose two sums are exactly dbeta and dgamma: the backward costs two reductions."""
    xhat, gamma, inv_std, has_beta, axes = cache[:5]
    if choose(None, "batch_norm") == "fast" and _threads(xhat) > 1 and dout.shape == xhat.shape \
            and dout.dtype == xhat.dtype:
        return _batch_norm_backward_fast(dout, xhat, gamma, inv_std, has_beta, axes)
    shape = inv_std.shape
    M = xhat.size // xhat.shape[1]
    sum_dy = dout.sum(axis=axes)
    sum_dy_xhat = (dout * xhat).sum(axis=axes)
    scale = inv_std / M if gamma is None else gamma.reshape(shape) * inv_std / M
    dx = scale * (M * dout - sum_dy.reshape(shape) - xhat * sum_dy_xhat.reshape(shape))
    return dx, (sum_dy_xhat if gamma is not None else None), (sum_dy if has_beta else None)


def batch_norm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5):
    """Eval mode: normalise with given statistics (a layer's running mean and variance, (C,)).

    x (N, C, *) -> out of x's shape. The statistics are constants here: nothing flows back to them.
    """
    axes = _batch_axes(x, "batch_norm_inference")
    shape = _channel_shape(x)
    xp = get_array_module(x)
    inv_std = 1 / xp.sqrt(running_var.reshape(shape) + eps)
    if choose(None, "batch_norm") == "fast":
        return _batch_norm_inference_fast(x, gamma, beta, running_mean.reshape(shape), inv_std, axes)
    xhat = (x - running_mean.reshape(shape)) * inv_std
    return _affine(xhat, gamma, beta, shape), (xhat, gamma, inv_std, beta is not None, axes)


def batch_norm_inference_backward(dout, cache):
    """-> (dx, dgamma, dbeta). y = gamma * (x - mean) * inv_std + beta is affine in x: dx = gamma * inv_std * dy.
    The fast forward's cache holds x and the statistics instead of xhat: xhat is made here, for dgamma."""
    if isinstance(cache, BatchNormInferenceCache):
        x, mean, gamma, inv_std, has_beta, axes = cache
        cache = ((x - mean) * inv_std if gamma is not None else None, gamma, inv_std, has_beta, axes)
    xhat, gamma, inv_std, has_beta, axes = cache
    dx = dout * inv_std if gamma is None else dout * (gamma.reshape(inv_std.shape) * inv_std)
    return (dx, *_affine_grads(dout, xhat, gamma, has_beta, axes))


# -- batch normalisation's fast path: the same formulas, channel by channel on threads (ops.parallel) --
# A channel's statistics use its own values only, so the thread that takes channels c0:c1 computes
# for them what the whole call would, operation for operation, and writes only their part of each
# result. (Agreeing to float rounding, not bit for bit: NumPy may sum a slice of channels in another
# order than the whole array.) Its temporaries are parts of arrays made here, whole.


def _threads(x):
    return parallel.parts(x.shape[1], x.size, x) if x.ndim >= 2 else 1


def _channel_dots(a, b, work):
    """sum over the N and * axes of a * b, per channel: (C,) for a, b (N, C, *). Where each sample's
    channel has at least 16 values, as N * C dot products (one matrix product call, no a * b array
    written); else through work, an array of a's shape, as (a * b).sum()."""
    N, C = a.shape[:2]
    L = a.size // (N * C) if N * C else 0
    if L >= 16:
        ar, br = a.reshape(N, C, 1, L), b.reshape(N, C, L, 1)
        return (ar @ br).sum(axis=(0, 2, 3))
    return get_array_module(a).multiply(a, b, out=work).sum(axis=(0,) + tuple(range(2, a.ndim)))


def _batch_norm_fast(x, gamma, beta, eps, axes):
    xp = get_array_module(x)
    shape = _channel_shape(x)
    xhat, out = xp.empty_like(x), xp.empty_like(x)
    mean, var, inv_std = (xp.empty(shape, dtype=x.dtype) for _ in range(3))

    def channels(c0, c1):
        c = (slice(None), slice(c0, c1))
        m = x[c].mean(axis=axes, keepdims=True)
        xc = xp.subtract(x[c], m, out=xhat[c])
        M = xc.size // xc.shape[1]
        v = (_channel_dots(xc, xc, out[c]) / M).astype(x.dtype, copy=False).reshape(m.shape)  # out[c]: scratch
        i = 1 / xp.sqrt(v + eps)
        xc *= i  # xhat
        if gamma is not None:
            xp.multiply(xc, gamma[c0:c1].reshape(m.shape), out=out[c])
        else:
            out[c] = xc
        if beta is not None:
            out[c] += beta[c0:c1].reshape(m.shape)
        mean[c], var[c], inv_std[c] = m, v, i
    parallel.split(channels, x.shape[1], x, k=_threads(x))
    return out, BatchNormCache(xhat, gamma, inv_std, beta is not None, axes, mean.reshape(-1), var.reshape(-1))


def _batch_norm_backward_fast(dout, xhat, gamma, inv_std, has_beta, axes):
    xp = get_array_module(xhat)
    M = xhat.size // xhat.shape[1]
    dx = xp.empty_like(dout)
    sum_dy, sum_dy_xhat = (xp.empty(xhat.shape[1], dtype=dout.dtype) for _ in range(2))

    def channels(c0, c1):
        c = (slice(None), slice(c0, c1))
        d, xh, o = dout[c], xhat[c], dx[c]
        sum_dy[c0:c1] = d.sum(axis=axes)
        sum_dy_xhat[c0:c1] = _channel_dots(d, xh, o)  # o as scratch where it needs one
        part = inv_std[c]
        scale = part if gamma is None else gamma[c0:c1].reshape(part.shape) * part
        # dx = scale * (dy - mean(dy) - xhat * mean(dy * xhat)): one pass that writes a new array, the
        # other three in place (a pass into a new array costs here about 1.7 times one in place)
        xp.multiply(xh, -(sum_dy_xhat[c0:c1] / M).reshape(part.shape), out=o)
        o += d
        o -= (sum_dy[c0:c1] / M).reshape(part.shape)
        o *= scale
    parallel.split(channels, xhat.shape[1], xhat, k=_threads(xhat))
    return dx, (sum_dy_xhat if gamma is not None else None), (sum_dy if has_beta else None)


BatchNormInferenceCache = namedtuple("BatchNormInferenceCache", "x mean gamma inv_std has_beta axes")
BatchNormInferenceCache.__doc__ = """The fast eval-mode forward's cache: its input x (the tape checks it was not changed in
place), a copy of the running mean (the layer may update its own before this backward runs) and
inv_std (C,) as (1, C, 1, ...); the backward makes xhat from them only when it needs it (dgamma)."""


def _batch_norm_inference_fast(x, gamma, beta, mean, inv_std, axes):
    """out = x * scale + shift with scale = gamma * inv_std and shift = beta - mean * scale: one pass
    into out and one in place (the plain form makes xhat and then out, four passes), the channels
    cut over threads. The fused form is torch's (and oneDNN's) in eval mode, with its rounding."""
    xp = get_array_module(x)
    scale = inv_std if gamma is None else gamma.reshape(inv_std.shape) * inv_std
    shift = -mean * scale if beta is None else beta.reshape(inv_std.shape) - mean * scale
    out = xp.empty_like(x)

    def channels(c0, c1):
        c = (slice(None), slice(c0, c1))
        xp.multiply(x[c], scale[c], out=out[c])
        out[c] += shift[c]
    parallel.split(channels, x.shape[1], x, k=_threads(x))
    return out, BatchNormInferenceCache(x, mean.copy(), gamma, inv_std, beta is not None, axes)


# -- group and layer normalisation --------------------------------------------------------------


def group_norm(x, num_groups, gamma=None, beta=None, eps=1e-5):
    """Normalise each sample over groups of C/G channels (and all their positions).

    x (N, C, *) with C divisible by G = num_groups, gamma and beta (C,) or None -> out of x's shape.
    G = 1 is layer norm over (C, *) with per-channel affine; G = C is instance norm.
    """
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise ValueError(f"group_norm: expected input (N, C, *) with C divisible by num_groups={num_groups}, "
                         f"got shape {tuple(x.shape)}")
    N, G = x.shape[0], num_groups
    xhat, inv_std, _, _ = _standardize(x.reshape(N, G, -1), (2,), eps)
    xhat = xhat.reshape(x.shape)
    out = _affine(xhat, gamma, beta, _channel_shape(x))
    return out, (xhat, gamma, inv_std, beta is not None, G, eps)  # eps: for minicnn.onnx's export


def group_norm_backward(dout, cache):
    """-> (dx, dgamma, dbeta): the standardisation backward within each (sample, group),
    with dxhat = gamma * dy (gamma varies across a group's channels, so no compact form here)."""
    xhat, gamma, inv_std, has_beta, G, _ = cache
    axes = (0,) + tuple(range(2, xhat.ndim))
    dxhat = dout * gamma.reshape(_channel_shape(xhat)) if gamma is not None else dout
    N = xhat.shape[0]
    dx = _standardize_backward(dxhat.reshape(N, G, -1), xhat.reshape(N, G, -1), inv_std, (2,))
    return (dx.reshape(xhat.shape), *_affine_grads(dout, xhat, gamma, has_beta, axes))


def layer_norm(x, normalized_shape, gamma=None, beta=None, eps=1e-5):
    """Normalise over the trailing dims S = normalized_shape, separately for every leading index.

    x (*, S), gamma and beta of shape S or None -> out of x's shape. For a transformer's
    (N, T, D) activations, normalized_shape = (D,): each token's features on their own.
    """
    k = len(normalized_shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != tuple(normalized_shape):
        raise ValueError(f"layer_norm: expected input of shape (*, {', '.join(map(str, normalized_shape))}), "
                         f"got {tuple(x.shape)}")
    axes = tuple(range(x.ndim - k, x.ndim))
    xhat, inv_std, _, _ = _standardize(x, axes, eps)
    out = _affine(xhat, gamma, beta, tuple(normalized_shape))
    return out, (xhat, gamma, inv_std, beta is not None, axes, eps)  # eps: for minicnn.onnx's export


def layer_norm_backward(dout, cache):
    """-> (dx, dgamma, dbeta): the standardisation backward over the normalised dims with
    dxhat = gamma * dy; dgamma and dbeta sum over the leading dims."""
    xhat, gamma, inv_std, has_beta, axes, _ = cache
    dxhat = dout * gamma if gamma is not None else dout
    dx = _standardize_backward(dxhat, xhat, inv_std, axes)
    lead = tuple(range(xhat.ndim - len(axes)))
    return (dx, *_affine_grads(dout, xhat, gamma, has_beta, lead))


# -- local response normalisation ---------------------------------------------------------------


def _channel_window_sum(a, before, after):
    """s[:, c] = sum of a[:, c - before], ..., a[:, c + after] along the channel axis, zero beyond
    the ends: a zero-padded copy and one slice per window offset."""
    xp = get_array_module(a)
    C = a.shape[1]
    padded = xp.zeros((a.shape[0], C + before + after) + a.shape[2:], dtype=a.dtype)
    padded[:, before:before + C] = a
    s = padded[:, 0:C].copy()
    for offset in range(1, before + after + 1):
        s += padded[:, offset:offset + C]
    return s


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """AlexNet's local response normalisation across channels, as torch computes it:

        b_c = a_c / d_c^beta,   d_c = k + alpha / n * sum_{c' = c - n//2}^{c + (n-1)//2} a_{c'}^2

    with n = size and channels beyond the ends counted as 0. x (N, C, *) -> out of x's shape.
    """
    if x.ndim < 3:
        raise ValueError(f"local_response_norm: expected input of shape (N, C, *) with at least 3 dims, "
                         f"got {tuple(x.shape)}")
    d = _channel_window_sum(x * x, size // 2, (size - 1) // 2)
    d *= alpha / size
    d += k
    scale = d ** -beta
    out = x * scale
    return out, (x, d, scale, out, size, alpha, beta, k)  # k: for minicnn.onnx's export


def local_response_norm_backward(dout, cache):
    """dx_j = dy_j d_j^-beta - (2 alpha beta / n) a_j sum_{c: j in window(c)} dy_c a_c d_c^(-beta-1).

    a_j appears in the windows of c = j - (n-1)//2 ... j + n//2: the same window sum with its two
    sides swapped. dy_c a_c d_c^(-beta-1) is dy_c * b_c / d_c."""
    x, d, scale, out, size, alpha, beta, _ = cache
    u = dout * out / d
    return dout * scale - (2 * alpha * beta / size) * x * _channel_window_sum(u, (size - 1) // 2, size // 2)
