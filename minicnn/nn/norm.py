"""Normalisation layers, named and shaped like torch.nn: BatchNorm1d, BatchNorm2d, GroupNorm,
LayerNorm, LocalResponseNorm. The math is in minicnn.ops.norm; the functions that record it are
in minicnn.nn.functional (batch_norm, group_norm, layer_norm, local_response_norm).

BatchNorm keeps torch's buffers under torch's names (running_mean, running_var: the unbiased
batch variance, num_batches_tracked: int64), so a torch state_dict loads into it unchanged.
"""

import numbers

import numpy as np

from ..backend import get_array_module, get_xp
from .._tensor import Tensor
from . import functional_more as F
from .layers import _input, _Layer, _positive_int
from .module import Parameter


def _check_eps(eps, where):
    """eps >= 0. (torch accepts a negative eps and gives NaN where var + eps < 0; minicnn refuses it.)"""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
        raise ValueError(f"{where}: eps must be a number >= 0 (it keeps the division by sqrt(var + eps) finite), "
                         f"got {eps!r}")
    return eps


def _vector(fill, shape, dtype):
    return get_xp().full(shape, fill, dtype=np.dtype(dtype) if dtype is not None else np.float32)


class _NormLayer(_Layer):
    """Checks shared by the normalisation layers: the input is a float Tensor on the layer's device
    and of its dtype (compared with the parameters, or the running statistics when there are none)."""

    def shape_formula(self, input_shape, output_shape):
        return [f"normalised ({type(self).__name__}), shape kept"]

    def _check_kind(self, x):
        if not isinstance(x, Tensor):
            raise TypeError(f"{self!r}: expected a Tensor, got {type(x).__name__}")
        state = next(iter(self.parameters()), None)
        if state is None:
            state = next(iter(self.buffers()), None)
        if state is None or state.dtype.kind != "f":
            if x.dtype.kind != "f":
                raise TypeError(f"{self!r}: expected a floating-point input, got {x.dtype}; convert it with .float()")
            return
        if get_array_module(x.array) is not get_array_module(state.array):
            raise TypeError(f"{self!r}: the input is on {x.device} but the layer's state is on {state.device}; move "
                            "one of them (model.to(device) or x.to(device))")
        if x.dtype != state.dtype:
            raise TypeError(f"{self!r}: the input is {x.dtype} but the layer is {state.dtype}; cast the input "
                            f"(x.to(minicnn.{state.dtype})) or the model (model.to(minicnn.{x.dtype})), so that "
                            "nothing is promoted silently")


class _BatchNorm(_NormLayer):
    """Batch normalisation over the channels (axis 1) of (N, C, *) input (see BatchNorm2d)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        where = type(self).__name__
        self.num_features = _positive_int(num_features, "num_features", where)
        self.eps = _check_eps(eps, where)
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
                                     or not 0 <= momentum <= 1):
            raise ValueError(f"{where}: momentum must be a number in [0, 1] (the weight of each new batch in the "
                             f"running statistics) or None (a cumulative average), got {momentum!r}")
        self.momentum, self.affine, self.track_running_stats = momentum, affine, track_running_stats
        C = self.num_features
        self.weight = Parameter(_vector(1, C, dtype)) if affine else None
        self.bias = Parameter(_vector(0, C, dtype)) if affine and bias else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor._wrap(_vector(0, C, dtype)))
            self.register_buffer("running_var", Tensor._wrap(_vector(1, C, dtype)))
            self.register_buffer("num_batches_tracked", Tensor._wrap(get_xp().zeros((), dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        if device is not None:
            self.to(device)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.array[...] = 0
            self.running_var.array[...] = 1
            self.num_batches_tracked.array[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.array[...] = 1
        if self.bias is not None:
            self.bias.array[...] = 0

    def _check_input_dim(self, x):
        raise NotImplementedError

    def forward(self, x):
        x = _input(x)
        self._check_kind(x)
        self._check_input_dim(x)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{self!r}: expected {self.num_features} channels (axis 1), got input of shape "
                             f"{tuple(x.shape)} (running_mean should contain {x.shape[1]} elements not "
                             f"{self.num_features})")
        use_batch_stats = self.training or self.running_mean is None
        if use_batch_stats and x.numel() // x.shape[1] <= 1:  # checked before anything is counted
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array[...] += 1
            self.num_batches_tracked._bump()
            if self.momentum is None:  # the cumulative moving average: each batch counts equally
                factor = 1.0 / float(self.num_batches_tracked.array)
        track = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)

    def macs(self, input_shape, output_shape):
        """One multiply-add per value (x * scale + shift, scale and shift folded per channel)."""
        return int(np.prod(output_shape))

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of features (N, C) or sequences (N, C, L), per channel C:

        y = (x - mean) / sqrt(var + eps) * weight + bias

    with the batch's mean and biased variance in training (over N, or N * L, values per channel),
    and the running ones in eval(). running = (1 - momentum) * running + momentum * batch value
    (the variance unbiased), or with momentum=None the plain average of all batches so far.
    track_running_stats=False uses batch statistics in eval() too. weight, bias (C,) if affine.
    """

    def _check_input_dim(self, x):
        if x.ndim not in (2, 3):
            raise ValueError(f"{self!r}: expected 2D or 3D input (got {x.ndim}D input): (N, C) or (N, C, L)")


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of images (N, C, H, W), per channel over N * H * W values (see BatchNorm1d)."""

    def _check_input_dim(self, x):
        if x.ndim != 4:
            raise ValueError(f"{self!r}: expected 4D input (got {x.ndim}D input): (N, C, H, W)")


class GroupNorm(_NormLayer):
    """Normalise each sample over groups of num_channels / num_groups channels (N, C, *) -> same shape;
    independent of the batch size, so the same in training and eval. weight, bias (C,) if affine."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        self.num_groups = _positive_int(num_groups, "num_groups", "GroupNorm")
        self.num_channels = _positive_int(num_channels, "num_channels", "GroupNorm")
        if self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.eps, self.affine = _check_eps(eps, "GroupNorm"), affine
        self.weight = Parameter(_vector(1, self.num_channels, dtype)) if affine else None
        self.bias = Parameter(_vector(0, self.num_channels, dtype)) if affine and bias else None
        if device is not None:
            self.to(device)

    def forward(self, x):
        x = _input(x)
        self._check_kind(x)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"{self!r}: expected input of shape (N, {self.num_channels}, *), got "
                             f"{tuple(x.shape)}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class LayerNorm(_NormLayer):
    """Normalise over the trailing dims normalized_shape (e.g. the D features of (N, T, D)):
    input (*, normalized_shape) -> same shape. weight (and bias, unless bias=False) of
    normalized_shape if elementwise_affine."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = F._normalized_shape(normalized_shape, "LayerNorm")
        self.eps, self.elementwise_affine = _check_eps(eps, "LayerNorm"), elementwise_affine
        self.weight = Parameter(_vector(1, self.normalized_shape, dtype)) if elementwise_affine else None
        self.bias = Parameter(_vector(0, self.normalized_shape, dtype)) if elementwise_affine and bias else None
        if device is not None:
            self.to(device)

    def forward(self, x):
        x = _input(x)
        self._check_kind(x)
        return self._run(F.layer_norm, x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class LocalResponseNorm(_NormLayer):
    """AlexNet's normalisation across channels: (N, C, *) -> same shape,
    b_c = a_c / (k + alpha / size * sum of a^2 over the size channels centred on c)^beta."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = _positive_int(size, "size", "LocalResponseNorm")
        self.alpha, self.beta, self.k = alpha, beta, k

    def forward(self, x):
        x = _input(x)
        self._check_kind(x)
        return self._run(F.local_response_norm, x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
