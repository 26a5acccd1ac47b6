"""The layers, named and shaped like torch.nn. Each one checks its input, calls the
pure function from minicnn.functional, keeps the cache, and hands it to the backward."""

import numpy as np

from .. import functional as F
from ..backend import get_array_module, get_xp
from ..functional.checks import pair
from ..functional.conv import Workspace
from . import init
from .module import Module, Parameter


def _empty_parameter(shape, dtype):
    return Parameter(get_xp().zeros(shape, dtype=dtype))


class _Layer(Module):
    """Shared input checks: a layer names itself, what it expected and what it got."""

    def _check_input(self, x, ndim, layout):
        if not hasattr(x, "ndim") or not hasattr(x, "dtype"):
            raise TypeError(f"{self!r}: expected an array of shape {layout}, got {type(x).__name__}")
        if x.ndim != ndim:
            raise ValueError(f"{self!r}: expected input of shape {layout}, got shape {tuple(x.shape)}")
        for p in self.parameters():
            if get_array_module(x) is not get_array_module(p.data):
                raise TypeError(
                    f"{self!r}: the input is a {type(x).__module__} array but the parameters live in "
                    f"{type(p.data).__module__}; move one of them (model.to(backend) or minicnn.backend.to_device(x))"
                )
            if x.dtype != p.dtype:
                raise TypeError(
                    f"{self!r}: the input is {x.dtype} but the parameters are {p.dtype}; cast the input "
                    f"(x.astype('{p.dtype}')) or the model (model.to(dtype='{x.dtype}')) so nothing is promoted silently"
                )

    def _run(self, fn, *args, **kwargs):
        """Call a functional op, prefixing any ValueError with this layer's name."""
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            raise ValueError(f"{self!r}: {exc}") from None


class Conv2d(_Layer):
    """2-D convolution. x (N, C, H, W) -> (N, OC, OH, OW), OH = floor((H + 2P - D(K-1) - 1) / S) + 1.

    weight (OC, C, KH, KW) and bias (OC,), initialised as torch does by default.
    """

    can_skip_input_grad = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 dtype=np.float32):
        super().__init__()
        where = "Conv2d"
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size", where)
        self.stride = pair(stride, "stride", where)
        self.padding = pair(padding, "padding", where, minimum=0)
        self.dilation = pair(dilation, "dilation", where)
        self.weight = _empty_parameter((out_channels, in_channels, *self.kernel_size), dtype)
        self.bias = _empty_parameter((out_channels,), dtype) if bias else None
        init.torch_default_(self.weight, self.bias)
        self._workspace = Workspace()  # im2col buffers reused from step to step (the fast path)

    def forward(self, x):
        self._check_input(x, 4, f"(N, {self.in_channels}, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self!r}: expected {self.in_channels} input channels, i.e. input of shape "
                f"(N, {self.in_channels}, H, W), got shape {tuple(x.shape)} with {x.shape[1]} channels"
            )
        b = self.bias.data if self.bias is not None else None
        out, self._cache = self._run(F.conv2d, x, self.weight.data, b, self.stride, self.padding, self.dilation,
                                     workspace=self._workspace)
        return out

    def backward(self, dout, input_grad=True):
        """dx (None with input_grad=False); adds dw and db to weight.grad and bias.grad."""
        dx, dw, db = F.conv2d_backward(dout, self._saved(), input_grad)
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        return s + (", bias=False" if self.bias is None else "")


class Linear(_Layer):
    """Fully connected: x (N, in_features) -> (N, out_features). weight (OUT, IN), bias (OUT,)."""

    can_skip_input_grad = True

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Linear: {name} must be a positive int, got {value!r}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty_parameter((out_features, in_features), dtype)
        self.bias = _empty_parameter((out_features,), dtype) if bias else None
        init.torch_default_(self.weight, self.bias)

    def forward(self, x):
        self._check_input(x, 2, f"(N, {self.in_features})")
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"{self!r}: expected input of shape (N, {self.in_features}), got {tuple(x.shape)}: "
                f"{x.shape[1]} features arrived for {self.in_features}"
            )
        b = self.bias.data if self.bias is not None else None
        out, self._cache = F.linear(x, self.weight.data, b)
        return out

    def backward(self, dout, input_grad=True):
        """dx (None with input_grad=False); adds dw and db to weight.grad and bias.grad."""
        dx, dw, db = F.linear_backward(dout, self._saved(), input_grad)
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


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

    def forward(self, x):
        self._check_input(x, 4, "(N, C, H, W)")
        out, self._cache = self._run(F.max_pool2d, x, self.kernel_size, self.stride, self.padding)
        return out

    def backward(self, dout):
        return F.max_pool2d_backward(dout, self._saved())


class AvgPool2d(_Pool):
    """Average pooling, zero padding. x (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2P - K) / S) + 1."""

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = count_include_pad

    def forward(self, x):
        self._check_input(x, 4, "(N, C, H, W)")
        out, self._cache = self._run(F.avg_pool2d, x, self.kernel_size, self.stride, self.padding,
                                     self.count_include_pad)
        return out

    def backward(self, dout):
        return F.avg_pool2d_backward(dout, self._saved())


class GlobalAvgPool2d(_Layer):
    """Mean over each whole feature map: (N, C, H, W) -> (N, C, 1, 1) (torch's AdaptiveAvgPool2d(1))."""

    def forward(self, x):
        self._check_input(x, 4, "(N, C, H, W)")
        out, self._cache = F.global_avg_pool2d(x)
        return out

    def backward(self, dout):
        return F.global_avg_pool2d_backward(dout, self._saved())


class GlobalMaxPool2d(_Layer):
    """Maximum over each whole feature map: (N, C, H, W) -> (N, C, 1, 1) (torch's AdaptiveMaxPool2d(1))."""

    def forward(self, x):
        self._check_input(x, 4, "(N, C, H, W)")
        out, self._cache = F.global_max_pool2d(x)
        return out

    def backward(self, dout):
        return F.global_max_pool2d_backward(dout, self._saved())


class _Activation(_Layer):
    """An element-wise function and its derivative; any shape in, the same shape out."""

    function = backward_function = None

    def forward(self, x):
        if not hasattr(x, "dtype"):
            raise TypeError(f"{self!r}: expected an array, got {type(x).__name__}")
        out, self._cache = type(self).function(x)
        return out

    def backward(self, dout):
        return type(self).backward_function(dout, self._saved())


class ReLU(_Activation):
    """max(x, 0)."""
    function, backward_function = F.relu, F.relu_backward


class Sigmoid(_Activation):
    """1 / (1 + exp(-x))."""
    function, backward_function = F.sigmoid, F.sigmoid_backward


class Tanh(_Activation):
    """tanh(x)."""
    function, backward_function = F.tanh, F.tanh_backward


class Flatten(_Layer):
    """(N, C, H, W) -> (N, C*H*W). Remembers the input shape, for the backward and for error messages."""

    input_shape = None

    def forward(self, x):
        if not hasattr(x, "ndim") or x.ndim < 2:
            raise ValueError(f"{self!r}: expected input of shape (N, ...), got {getattr(x, 'shape', type(x))}")
        self.input_shape = tuple(x.shape)
        out, self._cache = F.flatten(x)
        return out

    def backward(self, dout):
        return F.flatten_backward(dout, self._saved())


class Dropout(_Layer):
    """Inverted dropout while training (zero with probability p, scale by 1/(1-p)); identity in eval()."""

    def __init__(self, p=0.5):
        super().__init__()
        if not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be a number in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x):
        out, mask = F.dropout(x, self.p, self.training)
        self._cache = (mask,)  # mask is None in eval mode: the cache itself must not be
        return out

    def backward(self, dout):
        (mask,) = self._saved()
        return F.dropout_backward(dout, mask)

    def extra_repr(self):
        return f"p={self.p}"


class CrossEntropyLoss(Module):
    """Softmax cross-entropy, mean over the batch: loss = crit(logits (N, K), labels (N,)) is a float;
    crit.backward() then returns dloss/dlogits (N, K)."""

    def __call__(self, logits, labels):
        return self.forward(logits, labels)

    def forward(self, logits, labels):
        try:
            loss, self._cache = F.softmax_cross_entropy(logits, labels)
        except ValueError as exc:
            raise ValueError(f"CrossEntropyLoss: {exc}") from None
        return loss

    def backward(self, dout=1.0):
        return F.softmax_cross_entropy_backward(dout, self._saved())
