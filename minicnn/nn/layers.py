"""The layers, named and shaped like torch.nn. Each one checks its arguments when built and its
input when called (naming itself, what it expected and what it got), then calls the function
of minicnn.nn.functional, which records the op's forward/backward pair on the tape."""

import math
import numbers
import operator

import numpy as np

from ..backend import get_array_module, get_xp
from ..ops.checks import pair
from ..ops.conv import PADDING_MODES, check_groups, conv_padding
from ..ops.conv_transpose import conv_transpose_output_size
from .._tensor import Tensor, as_tensor
from . import describe
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


class _Conv(_Layer):
    """What Conv2d and ConvTranspose2d share: the channel, kernel, stride, dilation and groups
    arguments (checked as torch checks them), the weight and its torch default init, the repr."""

    def _init_conv(self, where, in_channels, out_channels, kernel_size, stride, dilation, groups, transposed,
                   bias, dtype):
        self.in_channels = _positive_int(in_channels, "in_channels", where)
        self.out_channels = _positive_int(out_channels, "out_channels", where)
        self.groups = check_groups(groups, where)
        for name in ("in_channels", "out_channels"):
            if getattr(self, name) % self.groups:
                raise ValueError(f"{where}: {name} must be divisible by groups, got {name}={getattr(self, name)} "
                                 f"and groups={self.groups}")
        self.kernel_size = pair(kernel_size, "kernel_size", where)
        self.stride = pair(stride, "stride", where)
        self.dilation = pair(dilation, "dilation", where)
        dtype = np.dtype(dtype) if dtype is not None else np.float32
        if transposed:  # (C_in, C_out/groups, KH, KW): the weight of the convolution it is the adjoint of
            channels = (self.in_channels, self.out_channels // self.groups)
        else:  # (OC, C/groups, KH, KW)
            channels = (self.out_channels, self.in_channels // self.groups)
        self.weight = _empty_parameter((*channels, *self.kernel_size), dtype)
        self.bias = _empty_parameter((self.out_channels,), dtype) if bias else None
        # kaiming_uniform_(a=sqrt(5)) with fan_in = weight.shape[1] * KH * KW, as torch: for
        # ConvTranspose2d that is C_out/groups * KH * KW (torch's choice, kept for the same weights' scale)
        init.torch_default_(self.weight, self.bias)

    def _check_channels(self, x):
        if x.shape[1] != self.in_channels:
            hint = ""
            if x.shape[3] == self.in_channels:
                hint = ("; this looks like channels-last (N, H, W, C) input: minicnn, like torch, wants (N, C, H, W), "
                        "so use x.permute(0, 3, 1, 2)")
            raise ValueError(
                f"{self!r}: expected {self.in_channels} input channels, i.e. input of shape "
                f"(N, {self.in_channels}, H, W), got shape {tuple(x.shape)} with {x.shape[1]} channels{hint}"
            )

    def short_name(self):
        """'Conv2d(1, 6, k=5, p=2)': the settings that differ from the defaults, shortly."""
        parts = [str(self.in_channels), str(self.out_channels), "k=" + describe.by(self.kernel_size)]
        padding = self.padding if isinstance(self.padding, str) else describe.by(self.padding)
        for key, value, default in (("s", describe.by(self.stride), "1"), ("p", padding, "0"),
                                    ("op", describe.by(getattr(self, "output_padding", (0, 0))), "0"),
                                    ("d", describe.by(self.dilation), "1"), ("g", str(self.groups), "1")):
            if value != default:
                parts.append(f"{key}={value}")
        if self.padding_mode != "zeros":
            parts.append(self.padding_mode)
        if self.bias is None:
            parts.append("bias=False")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _per_group(self):
        """' in each of the g groups' when the convolution is grouped: the products below are one group's."""
        return f", in each of the {self.groups} groups" if self.groups > 1 else ""

    def extra_repr(self):
        """torch's text: the settings that differ from their defaults, in torch's order."""
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_Conv):
    """2-D convolution. x (N, C, H, W) -> (N, OC, OH, OW), OH = floor((H + 2P - D(K-1) - 1) / S) + 1.

    weight (OC, C/groups, KH, KW) and bias (OC,), initialised as torch does by default.
    padding: an int, a pair, 'valid' (none) or 'same' (stride 1 only; an odd total D(K-1) puts
    its extra row at the bottom and its extra column at the right, as torch). groups: C and OC
    cut into that many blocks, each output block seeing only its input block (groups = C: depthwise).
    padding_mode: 'zeros' (done inside the convolution), or 'reflect', 'replicate', 'circular'
    (a pad op of its own first, recorded on the tape, then a convolution without padding), as torch.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        where = "Conv2d"
        self._init_conv(where, in_channels, out_channels, kernel_size, stride, dilation, groups, False, bias, dtype)
        self._pads = conv_padding(padding, self.kernel_size, self.stride, self.dilation, where)  # ((PT, PB), (PL, PR))
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding", where, minimum=0)  # as torch
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{where}: padding_mode must be one of {{{', '.join(map(repr, PADDING_MODES))}}}, "
                             f"but got padding_mode={padding_mode!r}")
        self.padding_mode = padding_mode
        if device is not None:
            self.to(device)

    def forward(self, x):
        x = _input(x)
        self._check_input(x, (3, 4), f"(N, {self.in_channels}, H, W)")
        if x.ndim == 3:  # one unbatched image (C, H, W), as torch accepts
            return self.forward(x.unsqueeze(0)).squeeze(0)
        self._check_channels(x)
        padding = self._pads
        if self.padding_mode != "zeros":
            x = self._run(F._pad_for_conv, x, self._pads, self.padding_mode)
            padding = 0
        # im2col's buffer is this thread's scratch (ops.conv.scratch), used within one call; the graph keeps x
        return self._run(F.conv2d, x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def macs(self, input_shape, output_shape):
        """N*OC*OH*OW * C/groups*KH*KW: each output pixel is a dot product over C/groups*KH*KW inputs."""
        return math.prod(output_shape) * (self.in_channels // self.groups) * self.kernel_size[0] * self.kernel_size[1]

    def shape_formula(self, input_shape, output_shape):
        return describe.spatial_formulas(input_shape, output_shape, self.kernel_size, self.stride, self._pads,
                                         self.dilation) + [f"channels: C = {input_shape[-3]} -> OC = {output_shape[-3]}"]

    def gradient_formula(self, dout_shape, dx_shape):
        g = self.groups
        OC, C, KH, KW = self.out_channels // g, self.in_channels // g, *self.kernel_size
        N, OH, OW = dout_shape[0], dout_shape[-2], dout_shape[-1]
        P = N * OH * OW
        rows = [f"dx = col2im(W^T (C*KH*KW, OC) @ dout (OC, N*OH*OW)) = col2im(({C * KH * KW}, {OC}) @ ({OC}, {P}))"
                f"{self._per_group()} -> {dx_shape}",
                f"dW = dout (OC, N*OH*OW) @ col^T (N*OH*OW, C*KH*KW) = ({OC}, {P}) @ ({P}, {C * KH * KW})"
                f"{self._per_group()} -> reshaped to {tuple(self.weight.shape)}"]
        if self.bias is not None:
            rows.append(f"db = dout summed over N, OH, OW -> ({self.out_channels},)")
        return rows


class ConvTranspose2d(_Conv):
    """Transposed 2-D convolution, the adjoint of Conv2d: x (N, C_in, H, W) -> (N, C_out, OH, OW),
    OH = (H - 1)*S - 2P + D(K-1) + output_padding + 1 (see minicnn.ops.conv_transpose).

    weight (C_in, C_out/groups, KH, KW) and bias (C_out,), as torch's, with torch's default init
    (whose fan_in comes from the weight's second dimension: C_out/groups * KH * KW).
    output_padding (< stride or < dilation, per axis) adds rows at the bottom and columns at the
    right: a stride-S convolution maps S different input sizes to one output size, and this picks
    which one to go back to. forward(x, output_size=(OH, OW)) picks it from the size wanted instead.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        where = "ConvTranspose2d"
        self._init_conv(where, in_channels, out_channels, kernel_size, stride, dilation, groups, True, bias, dtype)
        self.padding = pair(padding, "padding", where, minimum=0)
        self.output_padding = pair(output_padding, "output_padding", where, minimum=0)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise ValueError(
                    f"{where}: output padding must be smaller than either stride or dilation, but got output_padding="
                    f"{self.output_padding}, stride={self.stride}, dilation={self.dilation}")
        if padding_mode != "zeros":
            raise ValueError(f'{where}: Only "zeros" padding mode is supported for ConvTranspose2d, got '
                             f"padding_mode={padding_mode!r}")
        self.padding_mode = padding_mode
        if device is not None:
            self.to(device)

    def forward(self, x, output_size=None):
        x = _input(x)
        self._check_input(x, (3, 4), f"(N, {self.in_channels}, H, W)")
        output_padding = self._output_padding(x, output_size)
        if x.ndim == 3:  # one unbatched image (C, H, W), as torch accepts
            return self._transposed(x.unsqueeze(0), output_padding).squeeze(0)
        return self._transposed(x, output_padding)

    def _transposed(self, x, output_padding):
        self._check_channels(x)
        return self._run(F.conv_transpose2d, x, self.weight, self.bias, self.stride, self.padding, output_padding,
                         self.groups, self.dilation)

    def _output_padding(self, x, output_size):
        """self.output_padding, or the one that gives output_size ((OH, OW), or the whole shape), as torch."""
        if output_size is None:
            return self.output_padding
        size = tuple(int(n) for n in output_size)
        lead = x.ndim - 2
        if len(size) == lead + 2:
            size = size[lead:]
        if len(size) != 2:
            raise ValueError(f"{self!r}: for {x.ndim}D input, output_size must have 2 or {lead + 2} elements "
                             f"(got {len(size)})")
        smallest = [conv_transpose_output_size(n, k, s, p, 0, d) for n, k, s, p, d in
                    zip(x.shape[-2:], self.kernel_size, self.stride, self.padding, self.dilation)]
        largest = [n + s - 1 for n, s in zip(smallest, self.stride)]
        if any(not lo <= n <= hi for n, lo, hi in zip(size, smallest, largest)):
            raise ValueError(f"{self!r}: requested an output size of {list(size)}, but valid sizes range from "
                             f"{smallest} to {largest} (for an input of {tuple(x.shape[-2:])})")
        return tuple(n - lo for n, lo in zip(size, smallest))

    def macs(self, input_shape, output_shape):
        """N*C_in*H*W * C_out/groups*KH*KW: each input pixel stamps its C_out/groups x KH x KW patch."""
        return math.prod(input_shape) * (self.out_channels // self.groups) * self.kernel_size[0] * self.kernel_size[1]

    def shape_formula(self, input_shape, output_shape):
        rows = []
        for axis, n, k, st, p, d, op, out in zip("HW", input_shape[-2:], self.kernel_size, self.stride, self.padding,
                                                 self.dilation, self.output_padding, output_shape[-2:]):
            rows.append(f"O{axis} = ({axis} - 1)*S - 2P + D(K-1) + output_padding + 1 = ({n} - 1)*{st} - {2 * p} + "
                        f"{d * (k - 1)} + {op} + 1 = {out}")
        return rows + [f"channels: C_in = {input_shape[-3]} -> C_out = {output_shape[-3]}"]

    def gradient_formula(self, dout_shape, dx_shape):
        g = self.groups
        C_in, C_out, KH, KW = self.in_channels // g, self.out_channels // g, *self.kernel_size
        P = dx_shape[0] * dx_shape[-2] * dx_shape[-1]
        rows = [f"dx = W^T (C_in, C_out*KH*KW) @ im2col(dout) (C_out*KH*KW, N*H*W) = ({C_in}, {C_out * KH * KW}) @ "
                f"({C_out * KH * KW}, {P}){self._per_group()} -> {dx_shape}  (the convolution's forward)",
                f"dW = x (C_in, N*H*W) @ im2col(dout)^T (N*H*W, C_out*KH*KW) = ({C_in}, {P}) @ ({P}, "
                f"{C_out * KH * KW}){self._per_group()} -> reshaped to {tuple(self.weight.shape)}"]
        if self.bias is not None:
            rows.append(f"db = dout summed over N, OH, OW -> ({self.out_channels},)")
        return rows


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

    def short_name(self):
        return f"Linear({self.in_features}, {self.out_features}" + (", bias=False)" if self.bias is None else ")")

    def shape_formula(self, input_shape, output_shape):
        b = " + b" if self.bias is not None else ""
        return [f"(N, IN) @ W^T (IN, OUT){b} = {input_shape} @ {(self.in_features, self.out_features)} -> "
                f"{output_shape}"]

    def gradient_formula(self, dout_shape, dx_shape):
        N, OUT, IN = math.prod(dout_shape[:-1]), self.out_features, self.in_features
        rows = [f"dx = dout @ W = ({N}, {OUT}) @ ({OUT}, {IN}) -> {dx_shape}",
                f"dW = dout^T @ x = ({OUT}, {N}) @ ({N}, {IN}) -> ({OUT}, {IN})"]
        if self.bias is not None:
            rows.append(f"db = dout summed over N -> ({OUT},)")
        return rows

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _unbatched(layer, x, run, channels=None):
    """Run a 2-D layer on (N, C, H, W), or on one unbatched image (C, H, W) as torch accepts."""
    x = _input(x)
    layout = f"(N, {channels or 'C'}, H, W) or ({channels or 'C'}, H, W)"
    layer._check_input(x, (3, 4), layout)
    if x.ndim == 3:
        out = run(x.unsqueeze(0))
        return tuple(t.squeeze(0) for t in out) if isinstance(out, tuple) else out.squeeze(0)
    return run(x)


class _Pool(_Layer):
    """kernel_size, stride (default: the kernel size) and padding (at most half the kernel), as in torch.

    The arguments are kept as given (an int stays an int), so the repr reads as torch's."""

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

    def short_name(self):
        kind = type(self).__name__
        parts = [f"k={describe.by(pair(self.kernel_size, 'kernel_size', kind))}",
                 f"s={describe.by(pair(self.stride, 'stride', kind))}"]
        if pair(self.padding, "padding", kind, minimum=0) != (0, 0):
            parts.append(f"p={describe.by(pair(self.padding, 'padding', kind, minimum=0))}")
        if pair(getattr(self, "dilation", 1), "dilation", kind) != (1, 1):
            parts.append(f"d={describe.by(pair(self.dilation, 'dilation', kind))}")
        if self.ceil_mode:
            parts.append("ceil")
        return f"{kind}({', '.join(parts)})"

    def shape_formula(self, input_shape, output_shape):
        kind = type(self).__name__
        return describe.spatial_formulas(
            input_shape, output_shape, pair(self.kernel_size, "kernel_size", kind), pair(self.stride, "stride", kind),
            describe.symmetric(pair(self.padding, "padding", kind, 0)), pair(getattr(self, "dilation", 1), "dilation",
                                                                             kind),
            pool=True, ceil=self.ceil_mode) + ["channels kept"]


class MaxPool2d(_Pool):
    """Max pooling, -inf padding. x (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2P - D(K-1) - 1) / S) + 1
    (ceil, dropping a last window that would start in the padding, with ceil_mode).

    return_indices: forward returns (out, indices), indices into each flattened H*W plane (int64),
    as MaxUnpool2d takes them.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__(kernel_size, stride, padding)
        pair(dilation, "dilation", "MaxPool2d")
        self.dilation, self.return_indices, self.ceil_mode = dilation, bool(return_indices), bool(ceil_mode)

    def forward(self, x):
        return _unbatched(self, x, lambda x: self._run(F.max_pool2d, x, self.kernel_size, self.stride, self.padding,
                                                       self.dilation, self.ceil_mode, self.return_indices))

    def extra_repr(self):
        return super().extra_repr() + f", dilation={self.dilation}, ceil_mode={self.ceil_mode}"

    def gradient_formula(self, dout_shape, dx_shape):
        return ["dout goes to the position of each window's maximum, 0 elsewhere"]


class AvgPool2d(_Pool):
    """Average pooling, zero padding. x (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2P - K) / S) + 1
    (ceil with ceil_mode). Each window is divided by the cells it covers in the padded input
    (count_include_pad, torch's default), or in the input alone, or by divisor_override."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding)
        if divisor_override is not None and (isinstance(divisor_override, bool)
                                             or not isinstance(divisor_override, numbers.Integral)):
            raise TypeError(f"AvgPool2d: divisor_override must be an int, got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError("AvgPool2d: divisor_override must not be zero")
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.divisor_override = None if divisor_override is None else operator.index(divisor_override)

    def forward(self, x):
        return _unbatched(self, x, lambda x: self._run(F.avg_pool2d, x, self.kernel_size, self.stride, self.padding,
                                                       self.ceil_mode, self.count_include_pad, self.divisor_override))

    def gradient_formula(self, dout_shape, dx_shape):
        return ["dout / (the window's divisor) spread evenly over each window"]


def _output_size(value, where):
    """An adaptive pool's output_size: an int, or a pair of ints in which None keeps that side of the input."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and None in value:
        for side in value:
            if side is not None:
                _positive_int(side, "output_size", where)
    else:
        pair(value, "output_size", where)
    return value


class AdaptiveAvgPool2d(_Layer):
    """Mean over OH x OW bins of the input, whatever its size: (N, C, H, W) -> (N, C, OH, OW).

    Bin i covers rows floor(i*H/OH) to ceil((i+1)*H/OH), as torch (bins overlap when OH does not divide H).
    output_size: an int or a pair; None in the pair keeps that side of the input.
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = _output_size(output_size, type(self).__name__)

    def forward(self, x):
        return _unbatched(self, x, lambda x: self._run(F.adaptive_avg_pool2d, x, self.output_size))

    def shape_formula(self, input_shape, output_shape):
        return [f"mean over {output_shape[-2]}x{output_shape[-1]} bins of each {input_shape[-2]}x{input_shape[-1]} map "
                "(bin i covers floor(i*H/OH) .. ceil((i+1)*H/OH))"]

    def gradient_formula(self, dout_shape, dx_shape):
        return ["dout / (bin area) spread over each bin"]

    def extra_repr(self):
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(AdaptiveAvgPool2d):
    """Mean over each whole feature map: (N, C, H, W) -> (N, C, 1, 1) (torch's AdaptiveAvgPool2d(1))."""

    def __init__(self):
        super().__init__(1)

    def extra_repr(self):
        return ""


class AdaptiveMaxPool2d(_Layer):
    """Maximum over OH x OW bins of the input (torch's bins, as AdaptiveAvgPool2d): (N, C, H, W) -> (N, C, OH, OW).

    return_indices: forward returns (out, indices), indices into each flattened H*W plane (int64).
    """

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size = _output_size(output_size, "AdaptiveMaxPool2d")
        self.return_indices = bool(return_indices)

    def forward(self, x):
        return _unbatched(self, x, lambda x: self._run(F.adaptive_max_pool2d, x, self.output_size,
                                                       self.return_indices))

    def shape_formula(self, input_shape, output_shape):
        return [f"max over {output_shape[-2]}x{output_shape[-1]} bins of each {input_shape[-2]}x{input_shape[-1]} map"]

    def gradient_formula(self, dout_shape, dx_shape):
        return ["dout goes to the position of each bin's maximum"]

    def extra_repr(self):
        return f"output_size={self.output_size}"


class GlobalMaxPool2d(_Layer):
    """Maximum over each whole feature map: (N, C, H, W) -> (N, C, 1, 1) (torch's AdaptiveMaxPool2d(1))."""

    def forward(self, x):
        return _unbatched(self, x, lambda x: self._run(F.adaptive_max_pool2d, x, 1))

    def shape_formula(self, input_shape, output_shape):
        return [f"max over each {input_shape[-2]}x{input_shape[-1]} map -> 1x1"]

    def gradient_formula(self, dout_shape, dx_shape):
        return ["dout goes to the position of each map's maximum"]


class MaxUnpool2d(_Layer):
    """The partial inverse of MaxPool2d: forward(input, indices, output_size=None) puts each value
    back where MaxPool2d(return_indices=True) found it, zeros elsewhere.

    (N, C, H, W) -> (N, C, OH, OW), OH = (H - 1)*S - 2P + K, or output_size ((OH, OW) or (N, C, OH, OW),
    within a stride of that) when several input sizes pool to the same H.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size", "MaxUnpool2d")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", "MaxUnpool2d")
        self.padding = pair(padding, "padding", "MaxUnpool2d", minimum=0)

    def forward(self, input, indices, output_size=None):
        input, indices = _input(input), _input(indices)
        self._check_input(input, (3, 4), "(N, C, H, W) or (C, H, W)")
        if not isinstance(indices, Tensor):
            raise TypeError(f"{self!r}: expected the indices as a Tensor (from MaxPool2d(return_indices=True)), "
                            f"got {type(indices).__name__}")
        return self._run(F.max_unpool2d, input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Upsample(_Layer):
    """Resize (N, C, H, W) -> (N, C, OH, OW) by F.interpolate: mode 'nearest' (torch's rule) or 'bilinear'.

    Give size (OH, OW) or scale_factor (OH = floor(H * scale_factor)), not both. align_corners
    (bilinear only) lines up the corner pixels instead of the pixel centres.
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        if mode not in ("nearest", "bilinear"):
            raise NotImplementedError(f"Upsample: mode {mode!r} is not implemented; minicnn has 'nearest' and "
                                      "'bilinear'")
        if mode == "nearest" and align_corners is not None:
            raise ValueError("Upsample: align_corners can only be set with the interpolating modes (here 'bilinear')")
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor = tuple(float(s) for s in scale_factor)
        else:  # as torch: a float, and 0 is the same as None
            self.scale_factor = float(scale_factor) if scale_factor else None
        if (self.size is None) == (self.scale_factor is None):
            raise ValueError("Upsample: give either size or scale_factor (one of them, not both)")
        self.mode, self.align_corners, self.recompute_scale_factor = mode, align_corners, recompute_scale_factor

    def forward(self, x):
        x = _input(x)
        self._check_input(x, 4, "(N, C, H, W)")
        return self._run(F.interpolate, x, self.size, self.scale_factor, self.mode, self.align_corners,
                         self.recompute_scale_factor)

    def extra_repr(self):
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class ReLU(_Layer):
    """max(x, 0). inplace=True writes the result into x and returns x, as torch's."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(_input(x), self.inplace)

    def shape_formula(self, input_shape, output_shape):
        return ["element-wise, shape kept"]

    def gradient_formula(self, dout_shape, dx_shape):
        return ["dx = dout * (x > 0)"]

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""

    saturation_text = "y == 0"

    def saturated(self, y):
        """Where a unit is saturated (its gradient vanishes there or nearly): for viz.ActivationRecorder."""
        return y == 0


class Sigmoid(_Layer):
    """1 / (1 + exp(-x))."""

    def forward(self, x):
        return F.sigmoid(_input(x))

    def shape_formula(self, input_shape, output_shape):
        return ["element-wise, shape kept"]

    def gradient_formula(self, dout_shape, dx_shape):
        return ["dx = dout * y * (1 - y)"]

    saturation_text = "y < 0.03 or y > 0.97"

    def saturated(self, y):
        """Where a unit is saturated (its gradient vanishes there or nearly): for viz.ActivationRecorder."""
        return (y < 0.03) | (y > 0.97)


class Tanh(_Layer):
    """tanh(x)."""

    def forward(self, x):
        return F.tanh(_input(x))

    def shape_formula(self, input_shape, output_shape):
        return ["element-wise, shape kept"]

    def gradient_formula(self, dout_shape, dx_shape):
        return ["dx = dout * (1 - y^2)"]

    saturation_text = "|y| > 0.97"

    def saturated(self, y):
        """Where a unit is saturated (its gradient vanishes there or nearly): for viz.ActivationRecorder."""
        return abs(y) > 0.97


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

    def shape_formula(self, input_shape, output_shape):
        letters = "C*H*W" if len(input_shape) == 4 else "*".join(f"D{i}" for i in range(1, len(input_shape)))
        numbers = "*".join(str(n) for n in input_shape[1:])
        return [f"{letters} = {numbers} = {math.prod(input_shape[1:])}"]

    def gradient_formula(self, dout_shape, dx_shape):
        return [f"reshape back: {dout_shape} -> {dx_shape}"]

    def short_name(self):
        defaults = (self.start_dim, self.end_dim) == (1, -1)
        return "Flatten()" if defaults else f"Flatten({self.start_dim}, {self.end_dim})"

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

    def shape_formula(self, input_shape, output_shape):
        return ["identity in eval mode (a random mask while training), shape kept"]

    def gradient_formula(self, dout_shape, dx_shape):
        return ["dx = dout * mask (the identity in eval mode)"]

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
