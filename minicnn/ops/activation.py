"""Element-wise activations and the softmax family. Shapes: any; output same as input.

softmax and log_softmax normalise along `axis` (the class axis, 1 for (N, K) logits).
"""

from ..backend import get_array_module
from . import parallel
from .impl import choose


def relu(x, impl=None):
    """max(x, 0). (Not x * (x > 0): that is nan at x = -inf.) The cache is the output, as torch's
    (out > 0 where x > 0), so that an in-place change of the output is caught and one of x is not."""
    out = _relu_fast(x) if choose(impl, "relu") == "fast" else get_array_module(x).maximum(x, 0)
    return out, (out,)


def relu_backward(dout, cache):
    """dx = dout where the output (so the input) was positive, else 0."""
    (out,) = cache
    if choose(None, "relu") == "fast":
        return _relu_backward_fast(dout, out)
    return dout * (out > 0)


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


def tanh(x, impl=None):
    """Hyperbolic tangent."""
    if choose(impl, "tanh") == "fast":
        out = _tanh_fast(x)
        return out, (out,)
    out = get_array_module(x).tanh(x)
    return out, (out,)


def tanh_backward(dout, cache):
    """d tanh / dx = 1 - tanh^2."""
    (out,) = cache
    xp = get_array_module(out)
    if choose(None, "tanh") == "fast" and dout.dtype == out.dtype:
        return _tanh_backward_fast(dout, out)
    dx = xp.multiply(out, out, out=xp.empty_like(out))  # one new array (even 0-d), then updated in place
    xp.subtract(1, dx, out=dx)
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


# -- the modern activations (torch's names and defaults; gradients at the kinks as torch's) --------


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else negative_slope * x."""
    return get_array_module(x).where(x > 0, x, x * negative_slope), (x, negative_slope)


def leaky_relu_backward(dout, cache):
    """dx = dout where x > 0, else negative_slope * dout (the slope at 0 too, as torch)."""
    x, slope = cache
    return get_array_module(x).where(x > 0, dout, dout * slope)


def elu(x, alpha=1.0):
    """x where x > 0, else alpha * (exp(x) - 1) (expm1: exact near 0; exp of min(x, 0): no overflow)."""
    xp = get_array_module(x)
    return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0))), (x, alpha)


def elu_backward(dout, cache):
    """dx = dout where x > 0, else alpha * exp(x) * dout (alpha at 0, as torch)."""
    x, alpha = cache
    xp = get_array_module(x)
    return xp.where(x > 0, dout, dout * (alpha * xp.exp(xp.minimum(x, 0))))


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu(x):
    """scale * elu(x, alpha) with the self-normalising constants of Klambauer et al. (2017)."""
    out, cache = elu(x, SELU_ALPHA)
    out *= SELU_SCALE
    return out, cache


def selu_backward(dout, cache):
    """dx = scale * elu's dx."""
    return elu_backward(dout, cache) * SELU_SCALE


# erf and erfc: NumPy has neither, and minicnn depends on NumPy alone. W. J. Cody's rational
# Chebyshev approximations ("Rational Chebyshev approximations for the error function", Math.
# Comp. 23, 1969; netlib specfun CALERF), evaluated on the whole array with NumPy/CuPy functions:
#   |x| <= 0.46875     erf(x)  = x P(x^2) / Q(x^2)
#   0.46875 < |x| <= 4 erfc(x) = exp(-x^2) P(x) / Q(x)
#   |x| > 4            erfc(x) = exp(-x^2) / x (1/sqrt(pi) + P(1/x^2) / (x^2 Q(1/x^2)))
# exp(-x^2) is taken as exp(-s^2) exp(-(x - s)(x + s)), s = x rounded down to 1/16, so that the
# rounding of x^2 does not cost digits. In float64 both are within 1e-15 relative of the true
# values (measured against mpmath at 40 digits: at most 3e-16 for erf, 7e-16 for erfc; checked by
# tests/test_activations.py), and erfc keeps that relative accuracy down its tail, where 1 - erf
# would be 0. In float32 they are within 2e-7.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03,
          1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
          8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
          2.15311535474403846e-8)
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
          3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03)
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
          6.58749161529837803e-4, 1.63153871373020978e-2)
_ERF_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
          2.33520497626869185e-3)
_INV_SQRT_PI = 5.6418958354775628695e-1


def _erf_small(x):
    """erf(x) for |x| <= 0.46875 (Cody's first interval)."""
    z = x * x
    num, den = _ERF_A[4] * z, z
    for a, b in zip(_ERF_A[:3], _ERF_B[:3]):
        num, den = (num + a) * z, (den + b) * z
    return x * (num + _ERF_A[3]) / (den + _ERF_B[3])


def _erfc_positive(y):
    """erfc(y) for y > 0.46875 (Cody's second and third intervals). Each interval's y is clipped to
    its range, so that no inf or 0 reaches a division; beyond Cody's 26.543 erfc is 0 (it would be
    below float64's smallest normal number)."""
    xp = get_array_module(y)
    y2 = xp.clip(y, 0.46875, 4.0)
    num, den = _ERF_C[8] * y2, y2
    for c, d in zip(_ERF_C[:7], _ERF_D[:7]):
        num, den = (num + c) * y2, (den + d) * y2
    middle = (num + _ERF_C[7]) / (den + _ERF_D[7])
    y3 = xp.clip(y, 4.0, 27.0)
    z = 1 / (y3 * y3)
    num, den = _ERF_P[5] * z, z
    for p, q in zip(_ERF_P[:4], _ERF_Q[:4]):
        num, den = (num + p) * z, (den + q) * z
    tail = (_INV_SQRT_PI - z * (num + _ERF_P[4]) / (den + _ERF_Q[4])) / y3
    big = y >= 26.543
    y = xp.minimum(y, 27.0)
    s = xp.trunc(y * 16) / 16
    out = xp.where(y <= 4, middle, tail) * (xp.exp(-s * s) * xp.exp(-(y - s) * (y + s)))
    return xp.where(big, 0, out)


def erf(x):
    """The error function 2/sqrt(pi) int_0^x exp(-t^2) dt, element-wise, x's dtype (Cody 1969, above)."""
    xp = get_array_module(x)
    y = xp.abs(x)
    small = y <= 0.46875
    return xp.where(small, _erf_small(xp.where(small, x, 0)), xp.sign(x) * (1 - _erfc_positive(y)))


def erfc(x):
    """1 - erf(x), accurate also where it is tiny (x > 5: 1 - erf(x) would be 0)."""
    xp = get_array_module(x)
    y = xp.abs(x)
    small = y <= 0.46875
    tail = _erfc_positive(y)
    return xp.where(small, 1 - _erf_small(xp.where(small, x, 0)), xp.where(x > 0, tail, 2 - tail))


_SQRT_HALF = 0.70710678118654752440
_INV_SQRT_2PI = 0.39894228040143267794
_SQRT_2_OVER_PI = 0.79788456080286535588
_GELU_KAPPA = 0.044715


def gelu(x, approximate="none"):
    """x * Phi(x), Phi the standard normal CDF = erfc(-x / sqrt(2)) / 2 ('none', exact), or
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) ('tanh', Hendrycks and Gimpel's approximation)."""
    xp = get_array_module(x)
    if approximate == "none":
        cdf = 0.5 * erfc(x * -_SQRT_HALF)
        return x * cdf, (x, cdf, approximate)
    if approximate == "tanh":
        t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_KAPPA * x * x * x))
        return 0.5 * x * (1 + t), (x, t, approximate)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu_backward(dout, cache):
    """exact: d(x Phi(x))/dx = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi).
    tanh:  0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    x, c, approximate = cache
    xp = get_array_module(x)
    if approximate == "none":
        return dout * (c + x * (_INV_SQRT_2PI * xp.exp(-0.5 * x * x)))
    return dout * (0.5 * (1 + c) + 0.5 * x * (1 - c * c) * (_SQRT_2_OVER_PI * (1 + 3 * _GELU_KAPPA * x * x)))


def silu(x):
    """x * sigmoid(x) (also called swish)."""
    s, _ = sigmoid(x)
    return x * s, (x, s)


def silu_backward(dout, cache):
    """d(x s)/dx = s + x s (1 - s) = s (1 + x (1 - s))."""
    x, s = cache
    return dout * (s * (1 + x * (1 - s)))


def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as torch: there they
    agree to float precision). Computed as (max(z, 0) + log1p(exp(-|z|))) / beta, z = beta x,
    so that exp never overflows whatever the threshold."""
    xp = get_array_module(x)
    z = x * beta
    soft = (xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))) / beta
    return xp.where(z > threshold, x, soft), (z, threshold, beta)


def softplus_backward(dout, cache):
    """dx = sigmoid(beta x) * dout, and dout where beta x > threshold."""
    z, threshold, _ = cache
    s, _ = sigmoid(z)
    return get_array_module(z).where(z > threshold, dout, dout * s)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """x clipped to [min_val, max_val]."""
    return get_array_module(x).clip(x, min_val, max_val), (x, min_val, max_val)


def hardtanh_backward(dout, cache):
    """dx = dout strictly inside (min_val, max_val), 0 outside and at both bounds (as torch)."""
    x, lo, hi = cache
    return dout * ((x > lo) & (x < hi))


def relu6(x):
    """min(max(x, 0), 6): hardtanh(x, 0, 6) (so the gradient is 0 at 0 and at 6, as torch)."""
    return hardtanh(x, 0.0, 6.0)


relu6_backward = hardtanh_backward


def hardsigmoid(x):
    """min(max(x + 3, 0), 6) / 6: the piecewise-linear sigmoid of MobileNetV3."""
    return get_array_module(x).clip(x + 3, 0, 6) / 6, (x,)


def hardsigmoid_backward(dout, cache):
    """dx = dout / 6 strictly inside (-3, 3), else 0. (torch's float64 kernel uses 1/6 rounded to
    float32, 0.16666667163; this is 1/6 in the input's dtype.)"""
    (x,) = cache
    return dout * ((x > -3) & (x < 3)) / 6


def hardswish(x):
    """x * min(max(x + 3, 0), 6) / 6: MobileNetV3's cheap swish."""
    return x * get_array_module(x).clip(x + 3, 0, 6) / 6, (x,)


def hardswish_backward(dout, cache):
    """dx = 0 for x <= -3, (x/3 + 1/2) dout for -3 < x < 3, dout for x >= 3 (torch's choice at +-3)."""
    (x,) = cache
    xp = get_array_module(x)
    return xp.where(x <= -3, 0, xp.where(x < 3, dout * (x / 3 + 0.5), dout)).astype(dout.dtype, copy=False)


def softsign(x):
    """x / (1 + |x|)."""
    return x / (1 + get_array_module(x).abs(x)), (x,)


def softsign_backward(dout, cache):
    """d(x / (1 + |x|))/dx = 1 / (1 + |x|)^2."""
    (x,) = cache
    d = 1 + get_array_module(x).abs(x)
    return dout / (d * d)


def _prelu_weight(x, weight):
    """weight (C,) shaped to broadcast along x's channel axis 1, or (1,) as a 0-d scalar."""
    if weight.size == 1:
        return weight.reshape(())
    return weight.reshape((1, weight.size) + (1,) * (x.ndim - 2))


def prelu(x, weight):
    """x where x > 0, else weight * x, with a learnt slope per channel (axis 1) or one for all.

    x (N, C, *) (or any shape with one slope), weight (C,) or (1,) -> out of x's shape.
    """
    channels = x.shape[1] if x.ndim >= 2 else 1
    if weight.ndim != 1 or weight.size not in (1, channels):
        raise ValueError(f"prelu: Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                         f"{weight.size} and channel size = {channels}: the weight needs 1 or {channels} values "
                         f"(the size of axis 1 of an input of shape {tuple(x.shape)})")
    w = _prelu_weight(x, weight)
    return get_array_module(x).where(x > 0, x, w * x), (x, weight)


def prelu_backward(dout, cache):
    """-> (dx, dweight). dx = dout where x > 0, else weight * dout; dweight_c = sum of x * dout over
    the entries of channel c with x <= 0 (every axis but 1; every entry for a single slope)."""
    x, weight = cache
    xp = get_array_module(x)
    dx = xp.where(x > 0, dout, _prelu_weight(x, weight) * dout)
    contribution = xp.where(x > 0, 0, x * dout).astype(dout.dtype, copy=False)
    if weight.size == 1:
        dweight = contribution.sum().reshape(weight.shape)
    else:
        dweight = contribution.sum(axis=(0,) + tuple(range(2, x.ndim)))
    return dx, dweight


# -- the fast path: the same formulas on parts of the arrays, on threads (ops.parallel) --------------


def _tanh_fast(x):
    xp = get_array_module(x)
    return parallel.elementwise(lambda o, a: xp.tanh(a, out=o), xp.empty_like(x), x)


def _tanh_backward_fast(dout, out):
    xp = get_array_module(out)

    def part(d, y, g):  # d = (1 - y*y) * g, in place in d
        xp.multiply(y, y, out=d)
        xp.subtract(1, d, out=d)
        xp.multiply(d, g, out=d)
    return parallel.elementwise(part, xp.empty_like(out), out, dout)


def _relu_fast(x):
    xp = get_array_module(x)
    return parallel.elementwise(lambda o, a: xp.maximum(a, 0, out=o), xp.empty_like(x), x)


def _relu_backward_fast(dout, x):
    xp = get_array_module(x)
    if dout.dtype != x.dtype or dout.shape != x.shape:
        return dout * (x > 0)
    return parallel.elementwise(lambda d, g, a: xp.multiply(g, a > 0, out=d), xp.empty_like(x), dout, x)
