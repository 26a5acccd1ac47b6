"""The layers, named and shaped like torch.nn. Each one checks its arguments when built and its
input when called (naming itself, what it expected and what it got), then calls the function
of minicnn.nn.functional, which records the op's forward/backward pair on the tape."""

import math
import numbers
import operator

import numpy as np

from ..backend import get_array_module, get_xp
from ..ops.checks import pair
from ..ops.conv import Workspace
from .._tensor import Tensor, as_tensor
from . import functional as F
from . import init
from .module import Module, Parameter


def _positive_int(value, name, where):
    """An integral number >= 1 (a NumPy integer is fine; a bool or a float is not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be a positive int, got {value!r}")
    value = operator.index(value)
    if value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return value


def _empty_parameter(shape, dtype):
    return Parameter(get_xp().zeros(shape, dtype=dtype))


def _input(x):
    return x if isinstance(x, Tensor) else as_tensor(x) if hasattr(x, "dtype") else x


class _Layer(Module):
    """Shared input checks: a layer names itself, what it expected and what it got."""

    def _check_input(self, x, ndim, layout):
        if not isinstance(x, Tensor):
            raise TypeError(f"{self!r}: expected a Tensor of shape {layout}, got {type(x).__name__}")
        if x.ndim not in ((ndim,) if isinstance(ndim, int) else ndim):
            raise ValueError(f"{self!r}: expected input of shape {layout}, got shape {tuple(x.shape)}")
        p = getattr(self, "weight", None)  # the layer's own weight, if it has one: dtype and device to match
        if isinstance(p, Parameter):
            if get_array_module(x.array) is not get_array_module(p.array):
                raise TypeError(
                    f"{self!r}: the input is on {x.device} but the parameters are on {p.device}; move one of "
                    "them (model.to(device) or x.to(device))"
                )
            if x.dtype != p.dtype:
                if x.dtype.kind in "biu":
                    hint = (f"convert the images to floating point first, e.g. x.float() / 255 (then normalise), "
                            f"for parameters of dtype {p.dtype}")
                else:
                    hint = f"cast the input (x.to(minicnn.{p.dtype})) or the model (model.to(minicnn.{x.dtype}))"
                raise TypeError(f"{self!r}: the input is {x.dtype} but the parameters are {p.dtype}; {hint}, so "
                                "nothing is promoted silently")

    def _run(self, fn, *args, **kwargs):
        """Call a functional op, prefixing a ValueError from it with this layer's name."""
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            raise ValueError(f"{self!r}: {exc}") from exc


class Conv2d(_Layer):
    """2-D convolution. x (N, C, H, W) -> (N, OC, OH, OW), OH = floor((H + 2P - D(K-1) - 1) / S) + 1.

    weight (OC, C, KH, KW) and bias (OC,), initialised as torch does by default.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        where = "Conv2d"
        self.in_channels = _positive_int(in_channels, "in_channels", where)
        self.out_channels = _positive_int(out_channels, "out_channels", where)
        if groups != 1 or padding_mode != "zeros" or isinstance(padding, str):
            raise NotImplementedError("Conv2d: groups, padding_mode and string padding are not implemented yet")
        self.kernel_size = pair(kernel_size, "kernel_size", where)
        self.stride = pair(stride, "stride", where)
        self.padding = pair(padding, "padding", where, minimum=0)
        self.dilation = pair(dilation, "dilation", where)
        self.groups = groups
        dtype = np.dtype(dtype) if dtype is not None else np.float32
        self.weight = _empty_parameter((self.out_channels, self.in_channels, *self.kernel_size), dtype)
        self.bias = _empty_parameter((self.out_channels,), dtype) if bias else None
        init.torch_default_(self.weight, self.bias)
        self._workspace = Workspace()  # im2col buffers reused from step to step (see ops.conv.Workspace)
        if device is not None:
            self.to(device)

    def forward(self, x):
        x = _input(x)
        self._check_input(x, (3, 4), f"(N, {self.in_channels}, H, W)")
        if x.ndim == 3:  # one unbatched image (C, H, W), as torch accepts
            return self.forward(x.unsqueeze(0)).squeeze(0)
        if x.shape[1] != self.in_channels:
            hint = ""
            if x.shape[3] == self.in_channels:
                hint = ("; this looks like channels-last (N, H, W, C) input: minicnn, like torch, wants (N, C, H, W), "
                        "so use x.permute(0, 3, 1, 2)")
            raise ValueError(
                f"{self!r}: expected {self.in_channels} input channels, i.e. input of shape "
                f"(N, {self.in_channels}, H, W), got shape {tuple(x.shape)} with {x.shape[1]} channels{hint}"
            )
        # The workspace is for training, where one batch size repeats step after step; an evaluation
        # (eval mode) gets fresh buffers, freed with its graph, so no eval-sized buffer stays behind.
        return self._run(F.conv2d, x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                         _workspace=self._workspace if self.training else None)

    def macs(self, input_shape, output_shape):
        """N*OC*OH*OW * C*KH*KW: each output pixel is a dot product over C*KH*KW inputs."""
        N, OC, OH, OW = output_shape
        return N * OC * OH * OW * self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        return s + (", bias=False" if self.bias is None else "")


class Linear(_Layer):
    """Fully connected: x (N, in_features) -> (N, out_features). weight (OUT, IN), bias (OUT,)."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", "Linear")
        self.out_features = _positive_int(out_features, "out_features", "Linear")
        dtype = np.dtype(dtype) if dtype is not None else np.float32
        self.weight = _empty_parameter((self.out_features, self.in_features), dtype)
        self.bias = _empty_parameter((self.out_features,), dtype) if bias else None
        init.torch_default_(self.weight, self.bias)
        if device is not None:
            self.to(device)

    def forward(self, x):
        x = _input(x)
        self._check_input(x, range(1, 9), f"(N, {self.in_features})")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r}: expected input of shape (N, {self.in_features}), got {tuple(x.shape)}: "
                             f"{x.shape[-1]} features arrived for {self.in_features}{self._flatten_hint(x)}")
        return F.linear(x, self.weight, self.bias)

    def _flatten_hint(self, x):
        """Where the features came from, when a view/flatten/Flatten made them from a bigger shape."""
        shape = getattr(x, "_reshaped_from", None)
        if shape is None or len(shape) <= x.ndim:
            return ""
        features = x.shape[-1]
        return (f" (they come from a tensor of shape {tuple(shape)}, flattened: "
                f"{' * '.join(str(s) for s in shape[1:])} = {math.prod(shape[1:])}; set in_features="
                f"{math.prod(shape[1:]) if len(shape) > 1 else features} or change the layers before)")

    def macs(self, input_shape, output_shape):
        """N * IN * OUT."""
        return math.prod(output_shape[:-1]) * self.in_features * self.out_features

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _unbatched(layer, x, run, channels=None):
    """Run a 2-D layer on (N, C, H, W), or on one unbatched image (C, H, W) as torch accepts."""
    x = _input(x)
    layout = f"(N, {channels or 'C'}, H, W) or ({channels or 'C'}, H, W)"
    layer._check_input(x, (3, 4), layout)
    if x.ndim == 3:
        return run(x.unsqueeze(0)).squeeze(0)
    return run(x)


class _Pool(_Layer):
    """kernel_size, stride (default: the kernel size) and padding (at most half the kernel), as in torch."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        where = type(self).__name__
        stride = kernel_size if stride is None else stride
        kernel = pair(kernel_size, "kernel_size", where)
        pair(stride, "stride", where)
        pad = pair(padding, "padding", where, minimum=0)
        if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
            raise ValueError(f"{where}: padding {padding} must be at most half the kernel size {kernel_size}")
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool):
    """Max pooling, -inf padding. x (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2P - K) / S) + 1."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__(kernel_size, stride, padding)
        if dilation not in (1, (1, 1)) or return_indices or ceil_mode:
            raise NotImplementedError("MaxPool2d: dilation, return_indices and ceil_mode are not implemented yet")
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x):
        return _unbatched(self, x, lambda x: self._run(F.max_pool2d, x, self.kernel_size, self.stride, self.padding))

    def extra_repr(self):
        return super().extra_repr() + f", dilation={self.dilation}, ceil_mode={self.ceil_mode}"


class AvgPool2d(_Pool):
    """Average pooling, zero padding. x (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2P - K) / S) + 1."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding)
        if ceil_mode or divisor_override is not None:
            raise NotImplementedError("AvgPool2d: ceil_mode and divisor_override are not implemented yet")
        self.count_include_pad = count_include_pad

    def forward(self, x):
        return _unbatched(self, x, lambda x: self._run(F.avg_pool2d, x, self.kernel_size, self.stride, self.padding,
                                                       count_include_pad=self.count_include_pad))


class AdaptiveAvgPool2d(_Layer):
    """Mean over OH x OW bins of the input, whatever its size: (N, C, H, W) -> (N, C, OH, OW)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        x = _input(x)
        self._check_input(x, 4, "(N, C, H, W)")
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(AdaptiveAvgPool2d):
    """Mean over each whole feature map: (N, C, H, W) -> (N, C, 1, 1) (torch's AdaptiveAvgPool2d(1))."""

    def __init__(self):
        super().__init__(1)

    def extra_repr(self):
        return ""


class AdaptiveMaxPool2d(_Layer):
    """Maximum over each whole feature map: (N, C, H, W) -> (N, C, 1, 1). Only output_size=1 so far."""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        if pair(output_size, "output_size", "AdaptiveMaxPool2d") != (1, 1) or return_indices:
            raise NotImplementedError("AdaptiveMaxPool2d: only output_size=1 (global max pooling) is implemented yet")
        self.output_size = output_size

    def forward(self, x):
        x = _input(x)
        self._check_input(x, 4, "(N, C, H, W)")
        return F.adaptive_max_pool2d(x, 1)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class GlobalMaxPool2d(_Layer):
    """Maximum over each whole feature map: (N, C, H, W) -> (N, C, 1, 1) (torch's AdaptiveMaxPool2d(1))."""

    def forward(self, x):
        x = _input(x)
        self._check_input(x, 4, "(N, C, H, W)")
        return F.adaptive_max_pool2d(x, 1)


class ReLU(_Layer):
    """max(x, 0). inplace=True is accepted; minicnn computes out of place (the tape keeps the input)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(_input(x))

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Sigmoid(_Layer):
    """1 / (1 + exp(-x))."""

    def forward(self, x):
        return F.sigmoid(_input(x))


class Tanh(_Layer):
    """tanh(x)."""

    def forward(self, x):
        return F.tanh(_input(x))


class Softmax(_Layer):
    """exp(x) / sum exp(x) along dim."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(_input(x), self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """x - logsumexp(x) along dim."""

    def forward(self, x):
        return F.log_softmax(_input(x), self.dim)


class Identity(Module):
    """Returns its input (a placeholder, e.g. for a removed classifier head)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Flatten(_Layer):
    """Joins dims start_dim..end_dim: (N, C, H, W) -> (N, C*H*W) with the defaults."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        x = _input(x)
        if not isinstance(x, Tensor) or x.ndim < 2:
            raise ValueError(f"{self!r}: expected input of shape (N, ...), got {getattr(x, 'shape', type(x))}")
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(_Layer):
    """Inverted dropout while training (zero with probability p, scale by 1/(1-p)); identity in eval()."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be a number in [0, 1), got {p!r}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return F.dropout(_input(x), self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def _named(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            raise ValueError(f"{type(self).__name__}: {exc}") from exc


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits (N, C) and class indices (N,): a 0-d Tensor (see F.cross_entropy)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        self.register_buffer("weight", as_tensor(weight) if weight is not None else None)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return self._named(F.cross_entropy, _input(input), target, self.weight, self.ignore_index, self.reduction,
                           self.label_smoothing)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C) and class indices (N,)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", as_tensor(weight) if weight is not None else None)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return self._named(F.nll_loss, _input(input), target, self.weight, self.ignore_index, self.reduction)


class MSELoss(_Loss):
    """Mean squared error (or sum, or element-wise)."""

    def forward(self, input, target):
        return self._named(F.mse_loss, _input(input), _input(target), self.reduction)
