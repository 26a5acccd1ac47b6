"""Weight initialisers, as torch.nn.init defines them. Each fills a Parameter in place.

fan_in = C * KH * KW for a conv weight (OC, C, KH, KW), IN for a linear weight (OUT, IN);
fan_out = OC * KH * KW, or OUT. Random numbers come from minicnn's host generator
(seeded by minicnn.seed), so the same seed gives the same weights on every backend.
"""

import math

import numpy as np

from ..backend import default_rng, get_array_module


def _fill(param, values):
    """Write host values into the tensor (or plain array) in place, keeping its dtype and device.
    Like torch's init functions, this is not recorded on the tape."""
    array = param.array if hasattr(param, "array") else param
    array[...] = get_array_module(array).asarray(values.astype(array.dtype))
    if hasattr(param, "_bump"):
        param._bump()
    return param


def _fans(shape):
    if len(shape) < 2:
        raise ValueError(f"init: fan in and fan out need a weight with at least 2 dimensions, got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """The gain torch recommends for each nonlinearity (1 for linear, conv and sigmoid)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "selu":
        return 3.0 / 4
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def _rng(generator, name):
    """minicnn's global generator for None, else the minicnn.Generator's own stream."""
    if generator is None:
        return default_rng()
    from .._random import rng_of
    return rng_of(generator, name)


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """U(a, b)."""
    return _fill(tensor, _rng(generator, "uniform_").uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """N(mean, std^2)."""
    return _fill(tensor, _rng(generator, "normal_").normal(mean, std, size=tensor.shape))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """N(mean, std^2) kept to [a, b]: each value outside is drawn again (the same distribution as
    torch's inverse-CDF method; the draws differ, as every random number here does from torch's)."""
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    rng = _rng(generator, "trunc_normal_")
    values = rng.normal(mean, std, size=tensor.shape)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = rng.normal(mean, std, size=int(outside.sum()))
        outside = (values < a) | (values > b)
    return _fill(tensor, values)


def constant_(tensor, val):
    """Every element val."""
    return _fill(tensor, np.full(tensor.shape, val))


def zeros_(tensor):
    """Every element 0."""
    return constant_(tensor, 0.0)


def ones_(tensor):
    """Every element 1."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _fans(tensor.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor.shape)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(shape, a, mode, nonlinearity):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(shape)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al., 2015)."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor.shape, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2) with std = gain / sqrt(fan)."""
    return normal_(tensor, 0.0, _kaiming_std(tensor.shape, a, mode, nonlinearity), generator)


def torch_default_(weight, bias=None):
    """torch's default for Conv2d and Linear: kaiming_uniform_(a=sqrt(5)) on the weight,
    which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1 / math.sqrt(_fans(weight.shape)[0])
        uniform_(bias, -bound, bound)
