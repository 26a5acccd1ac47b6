"""torch.nn.functional on minicnn Tensors: each function runs one forward/backward pair of
minicnn.ops on the arrays and records it on the tape (minicnn.autograd.record).

    import minicnn.nn.functional as F
    x = F.relu(F.conv2d(x, w, b, padding=1))
    loss = F.cross_entropy(logits, labels)

Shapes and formulas are those of the ops (see minicnn.ops.conv, .pool, ...). Arrays are
accepted where torch takes Tensors and are wrapped (they do not require a gradient).
"""

import functools

from .. import ops
from ..autograd import is_grad_enabled, record
from ..ops import tensor as T
from ..ops import pool as _pool, upsample as _upsample
from ..ops import conv as _conv, conv_transpose as _conv_transpose
from .._tensor import Tensor, _dim, as_tensor


def _t(x):
    return x if isinstance(x, Tensor) or x is None else as_tensor(x)


def _arr(x):
    return None if x is None else x.array


# -- convolution and linear -------------------------------------------------------------------


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """input (N, C, H, W), weight (OC, C/groups, KH, KW), bias (OC,) -> (N, OC, OH, OW) by im2col + GEMM.

    OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1. padding: an int, (PH, PW), 'valid' or 'same'
    (stride 1; an odd total padding DH*(KH - 1) puts its extra row at the bottom, as torch), or,
    beyond torch, ((PT, PB), (PL, PR)) for padding that differs before and after.
    groups G: G independent convolutions of C/G channels each, side by side (depthwise: G = C).
    """
    input, weight, bias = _t(input), _t(weight), _t(bias)
    out, cache = ops.conv2d(input.array, weight.array, _arr(bias), stride, padding, dilation, groups)
    # no dx for an input that needs none (a network's first layer), as torch
    backward = functools.partial(ops.conv2d_backward, input_grad=input.requires_grad)
    return record(out, backward, cache, (input, weight, bias), "conv2d")


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """input (N, C_in, H, W), weight (C_in, C_out/groups, KH, KW), bias (C_out,) -> (N, C_out, OH, OW).

    OH = (H - 1)*SH - 2*PH + DH*(KH - 1) + OPH + 1. The adjoint of conv2d: its forward is conv2d's
    input gradient, col2im(W^T @ x) (see minicnn.ops.conv_transpose). Arguments in torch's order.
    """
    input, weight, bias = _t(input), _t(weight), _t(bias)
    out, cache = _conv_transpose.conv_transpose2d(input.array, weight.array, _arr(bias), stride, padding,
                                                  output_padding, groups, dilation)
    backward = functools.partial(_conv_transpose.conv_transpose2d_backward, input_grad=input.requires_grad)
    return record(out, backward, cache, (input, weight, bias), "conv_transpose2d")


def _pad_for_conv(input, pads, mode):
    """Conv2d's padding_mode 'reflect', 'replicate' or 'circular': input padded by pads ((PT, PB), (PL, PR))."""
    out, cache = _conv.pad2d(input.array, pads, mode)
    return record(out, _conv.pad2d_backward, cache, (input,), "pad2d")


def linear(input, weight, bias=None):
    """input (N, IN) or (..., IN), weight (OUT, IN), bias (OUT,) -> (..., OUT): input @ weight.T + bias."""
    input, weight, bias = _t(input), _t(weight), _t(bias)
    if input.ndim != 2:
        lead = tuple(input.shape[:-1])
        return linear(input.reshape(-1, input.shape[-1]), weight, bias).reshape(*lead, weight.shape[0])
    out, cache = ops.linear(input.array, weight.array, _arr(bias))
    backward = functools.partial(ops.linear_backward, input_grad=input.requires_grad)
    return record(out, backward, cache, (input, weight, bias), "linear")


# -- pooling and upsampling -------------------------------------------------------------------


def _batched(fn, input, *args):
    """fn on one unbatched image (C, H, W), run as a batch of one (torch accepts it); outputs lose that dim again."""
    out = fn(input.unsqueeze(0), *args)
    return tuple(t.squeeze(0) for t in out) if isinstance(out, tuple) else out.squeeze(0)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over each window: (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2P - D(K-1) - 1) / S) + 1
    (ceil with ceil_mode, see minicnn.ops.pool). return_indices: also (N, C, OH, OW) int64, where each
    maximum lies in its flattened H*W input plane (for max_unpool2d)."""
    input = _t(input)
    if input.ndim == 3:
        return _batched(max_pool2d, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    # the winners cost about half the pass: skip them where no backward and no indices will ask
    winners = return_indices or (input.requires_grad and is_grad_enabled())
    out, cache = ops.max_pool2d(input.array, kernel_size, stride, padding, dilation, ceil_mode, winners=winners)
    out = record(out, ops.max_pool2d_backward, cache, (input,), "max_pool2d")
    return (out, Tensor._wrap(_pool.max_pool2d_indices(cache))) if return_indices else out


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over each window: (N, C, H, W) -> (N, C, OH, OW), divided as torch (see minicnn.ops.pool)."""
    input = _t(input)
    if input.ndim == 3:
        return _batched(avg_pool2d, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override)
    out, cache = ops.avg_pool2d(input.array, kernel_size, stride, padding, count_include_pad, ceil_mode,
                                divisor_override)
    return record(out, ops.avg_pool2d_backward, cache, (input,), "avg_pool2d")


def adaptive_avg_pool2d(input, output_size):
    """Mean over OH x OW bins with torch's edges: (N, C, H, W) -> (N, C, OH, OW); None keeps that side."""
    input = _t(input)
    if input.ndim == 3:
        return _batched(adaptive_avg_pool2d, input, output_size)
    if output_size in (1, (1, 1), [1, 1]):
        out, cache = ops.global_avg_pool2d(input.array)
        return record(out, ops.global_avg_pool2d_backward, cache, (input,), "adaptive_avg_pool2d")
    out, cache = ops.adaptive_avg_pool2d(input.array, output_size)
    return record(out, ops.adaptive_avg_pool2d_backward, cache, (input,), "adaptive_avg_pool2d")


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max over OH x OW bins with torch's edges: (N, C, H, W) -> (N, C, OH, OW); None keeps that side.
    return_indices: also where each maximum lies in its flattened H*W plane, int64."""
    input = _t(input)
    if input.ndim == 3:
        return _batched(adaptive_max_pool2d, input, output_size, return_indices)
    out, cache = _pool.adaptive_max_pool2d(input.array, output_size)
    out = record(out, _pool.adaptive_max_pool2d_backward, cache, (input,), "adaptive_max_pool2d")
    return (out, Tensor._wrap(_pool.adaptive_max_pool2d_indices(cache))) if return_indices else out


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of max_pool2d: (N, C, H, W) values and their return_indices -> (N, C, OH, OW),
    zero where no maximum came from. OH = (H - 1)*S - 2P + K, or output_size (within a stride of it)."""
    input, indices = _t(input), _t(indices)
    if input.ndim == 3:
        return max_unpool2d(input.unsqueeze(0), indices.unsqueeze(0), kernel_size, stride, padding,
                            output_size).squeeze(0)
    out, cache = _pool.max_unpool2d(input.array, indices.array, kernel_size, stride, padding, output_size)
    return record(out, _pool.max_unpool2d_backward, cache, (input,), "max_unpool2d")


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize (N, C, H, W) -> (N, C, OH, OW): mode 'nearest' (torch's floor rule, not 'nearest-exact')
    or 'bilinear' (align_corners False: pixel centres line up; True: corner pixels). Give size or
    scale_factor (OH = floor(H * scale_factor)), as torch; see minicnn.ops.upsample."""
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not implemented")
    input = _t(input)
    out, cache = _upsample.interpolate(input.array, size, scale_factor, mode, align_corners, recompute_scale_factor)
    return record(out, _upsample.interpolate_backward, cache, (input,), "interpolate")


# -- activations ------------------------------------------------------------------------------


def _elementwise(pair_, backward, name, input, *args):
    input = _t(input)
    if input.dtype.kind not in "fc":
        raise TypeError(f"{name}: expected a floating-point tensor, got {input.dtype}; convert it with .float()")
    out, cache = pair_(input.array, *args)
    return record(out, backward, cache, (input,), name)


def relu(input, inplace=False):
    """max(x, 0). inplace=True writes the result into input (input.relu_()) and returns input."""
    if inplace:
        return _t(input).relu_()
    return _elementwise(ops.relu, ops.relu_backward, "relu", input)


def sigmoid(input):
    """1 / (1 + exp(-x)), element by element. Shapes: any, same as input."""
    return _elementwise(ops.sigmoid, ops.sigmoid_backward, "sigmoid", input)


def tanh(input):
    """tanh(x), element by element. Shapes: any, same as input."""
    return _elementwise(ops.tanh, ops.tanh_backward, "tanh", input)


def _softmax_dim(input, dim, name):
    if dim is None:  # torch's legacy rule when dim is not given
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return _dim(dim, input.ndim)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x) / sum(exp(x)) along dim, computed from x - max(x) (no overflow). Shapes: any, same as input."""
    input = _t(input) if dtype is None else _t(input).type(dtype)
    return _elementwise(ops.softmax, ops.softmax_backward, "softmax", input, _softmax_dim(input, dim, "softmax"))


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """x - logsumexp(x) along dim, computed stably. Shapes: any, same as input."""
    input = _t(input) if dtype is None else _t(input).type(dtype)
    return _elementwise(ops.log_softmax, ops.log_softmax_backward, "log_softmax", input,
                        _softmax_dim(input, dim, "log_softmax"))


# -- reshaping and regularisation -------------------------------------------------------------


def flatten(input, start_dim=0, end_dim=-1):
    """torch.flatten: join dims start_dim..end_dim into one."""
    return _t(input).flatten(start_dim, end_dim)


def dropout(input, p=0.5, training=True, inplace=False):
    """Inverted dropout: zero with probability p and scale the rest by 1/(1-p); identity when not training."""
    input = _t(input)
    out, mask = ops.dropout(input.array, p, training)
    if mask is None:
        return input
    return record(out, ops.dropout_backward, mask, (input,), "dropout")


def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad)//2 dims: pad = (left, right, top, bottom, ...), last dim first, as torch."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not implemented yet (only 'constant')")
    input = _t(input)
    if len(pad) % 2 or len(pad) // 2 > input.ndim or any(p < 0 for p in pad):
        raise ValueError(f"pad: expected an even number of non-negative sizes, at most 2 per dimension, got {pad}")
    widths = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        widths[input.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    out, cache = T.pad(input.array, tuple(widths), 0 if value is None else value)
    return record(out, T.pad_backward, cache, (input,), "pad")


# -- losses: in functional_more.py (cross_entropy, nll_loss, mse_loss, binary_cross_entropy, ...) ----------

from .functional_more import *  # noqa
