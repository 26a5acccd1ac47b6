"""The modern activations, named and shaped like torch.nn (any input shape, output the same shape),
and Dropout2d. The math is in minicnn.ops.activation (and ops.dropout2d); the functions that record
it are in minicnn.nn.functional. inplace=True writes the result into the input, as torch's does."""

import numbers

import numpy as np

from ..backend import get_xp
from . import functional_more as F
from .layers import _input, _Layer, _positive_int
from .module import Parameter


def _number(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}")
    return value


class _Activation(_Layer):
    """An element-wise activation with an inplace flag (shown in the repr only when set, as torch)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def _inplace_repr(self):
        return "inplace=True" if self.inplace else ""

    def shape_formula(self, input_shape, output_shape):
        return ["element-wise, shape kept"]


class LeakyReLU(_Activation):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__(inplace)
        self.negative_slope = _number(negative_slope, "negative_slope", "LeakyReLU")

    def forward(self, x):
        return F.leaky_relu(_input(x), self.negative_slope, self.inplace)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(_Activation):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__(inplace)
        self.alpha = _number(alpha, "alpha", "ELU")

    def forward(self, x):
        return F.elu(_input(x), self.alpha, self.inplace)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class SELU(_Activation):
    """1.0507 * ELU(x, alpha=1.6733): activations keep mean 0 and variance 1 through deep nets."""

    def forward(self, x):
        return F.selu(_input(x), self.inplace)

    def extra_repr(self):
        return self._inplace_repr()


class GELU(_Layer):
    """x * Phi(x), Phi the standard normal CDF (approximate='none', through erf), or its tanh form."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate argument must be either none or tanh, got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(_input(x), self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(_Activation):
    """x * sigmoid(x) (swish)."""

    def forward(self, x):
        return F.silu(_input(x), self.inplace)

    def extra_repr(self):
        return self._inplace_repr()


class Softplus(_Layer):
    """log(1 + exp(beta x)) / beta, a smooth ReLU; x itself where beta x > threshold."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = _number(beta, "beta", "Softplus")
        self.threshold = _number(threshold, "threshold", "Softplus")
        if beta == 0:
            raise ValueError("Softplus: beta must not be 0 (softplus divides by it)")

    def forward(self, x):
        return F.softplus(_input(x), self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(_Activation):
    """x clipped to [min_val, max_val]; the gradient is 0 at both bounds, as torch's."""

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False, min_value=None, max_value=None):
        super().__init__(inplace)
        min_val = min_value if min_value is not None else min_val  # torch's deprecated spellings
        max_val = max_value if max_value is not None else max_val
        self.min_val = _number(min_val, "min_val", type(self).__name__)
        self.max_val = _number(max_val, "max_val", type(self).__name__)
        if max_val <= min_val:
            raise ValueError(f"{type(self).__name__}: max_val ({max_val}) must be greater than min_val ({min_val})")

    def forward(self, x):
        return F.hardtanh(_input(x), self.min_val, self.max_val, self.inplace)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class ReLU6(Hardtanh):
    """min(max(x, 0), 6) (MobileNet's); the gradient is 0 at 0 and at 6, as torch's."""

    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0, inplace)

    def forward(self, x):
        return F.relu6(_input(x), self.inplace)

    def extra_repr(self):
        return self._inplace_repr()


class Hardsigmoid(_Activation):
    """min(max(x + 3, 0), 6) / 6."""

    def forward(self, x):
        return F.hardsigmoid(_input(x), self.inplace)

    def extra_repr(self):
        return self._inplace_repr()


class Hardswish(_Activation):
    """x * min(max(x + 3, 0), 6) / 6 (MobileNetV3's)."""

    def forward(self, x):
        return F.hardswish(_input(x), self.inplace)

    def extra_repr(self):
        return self._inplace_repr()


class Softsign(_Layer):
    """x / (1 + |x|)."""

    def forward(self, x):
        return F.softsign(_input(x))


class PReLU(_Layer):
    """x if x > 0 else a * x, with learnt slopes a: one for all channels (num_parameters=1) or one
    per channel of axis 1 (num_parameters=C), each starting at init. weight (num_parameters,)."""

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = _positive_int(num_parameters, "num_parameters", "PReLU")
        self.init = _number(init, "init", "PReLU")
        dtype = np.dtype(dtype) if dtype is not None else np.float32
        self.weight = Parameter(get_xp().full((self.num_parameters,), init, dtype=dtype))
        if device is not None:
            self.to(device)

    def reset_parameters(self):
        self.weight.array[...] = self.init

    def forward(self, x):
        x = _input(x)
        self._check_input(x, range(0, 9), "(N, C, *)")
        return self._run(F.prelu, x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class Dropout2d(_Layer):
    """Zero whole channels of (N, C, H, W) input with probability p while training (one draw per sample
    and channel), scale the others by 1/(1-p); the identity in eval(). Only 4-D input: see F.dropout2d."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"Dropout2d: dropout probability has to be between 0 and 1, but got {p!r}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return self._run(F.dropout2d, _input(x), self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
