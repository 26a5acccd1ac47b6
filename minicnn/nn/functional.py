"""torch.nn.functional on minicnn Tensors: each function runs one forward/backward pair of
minicnn.ops on the arrays and records it on the tape (minicnn.autograd.record).

    import minicnn.nn.functional as F
    x = F.relu(F.conv2d(x, w, b, padding=1))
    loss = F.cross_entropy(logits, labels)

Shapes and formulas are those of the ops (see minicnn.ops.conv, .pool, ...). Arrays are
accepted where torch takes Tensors and are wrapped (they do not require a gradient).
"""

import functools

import numpy as np

from .. import ops
from ..autograd import is_grad_enabled, record
from ..ops import tensor as T
from ..ops.checks import pair
from .._tensor import Tensor, as_tensor


def _t(x):
    return x if isinstance(x, Tensor) or x is None else as_tensor(x)


def _arr(x):
    return None if x is None else x.array


# -- convolution and linear -------------------------------------------------------------------


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, _workspace=None):
    """input (N, C, H, W), weight (OC, C, KH, KW), bias (OC,) -> (N, OC, OH, OW) by im2col + GEMM.

    OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1. Only groups=1 for now.
    """
    if groups != 1:
        raise NotImplementedError("conv2d: groups other than 1 are not implemented yet")
    input, weight, bias = _t(input), _t(weight), _t(bias)
    if isinstance(padding, str):
        raise NotImplementedError(f"conv2d: padding={padding!r} is not implemented yet; give the padding as ints")
    # A workspace buffer is leased to the cache, which exists only when a node will keep it.
    workspace = _workspace if is_grad_enabled() else None
    out, cache = ops.conv2d(input.array, weight.array, _arr(bias), stride, padding, dilation, workspace=workspace)
    backward = functools.partial(_conv2d_backward, input_grad=input.requires_grad)
    return record(out, backward, cache, (input, weight, bias), "conv2d")


def _conv2d_backward(dout, cache, input_grad):
    # no dx for an input that needs none (a network's first layer), as torch
    return ops.conv2d_backward(dout, cache, input_grad)


def linear(input, weight, bias=None):
    """input (N, IN) or (..., IN), weight (OUT, IN), bias (OUT,) -> (..., OUT): input @ weight.T + bias."""
    input, weight, bias = _t(input), _t(weight), _t(bias)
    if input.ndim != 2:
        lead = tuple(input.shape[:-1])
        return linear(input.reshape(-1, input.shape[-1]), weight, bias).reshape(*lead, weight.shape[0])
    out, cache = ops.linear(input.array, weight.array, _arr(bias))
    backward = functools.partial(ops.linear_backward, input_grad=input.requires_grad)
    return record(out, backward, cache, (input, weight, bias), "linear")


# -- pooling ----------------------------------------------------------------------------------


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over each window: (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2P - K) / S) + 1."""
    if dilation not in (1, (1, 1)) or ceil_mode or return_indices:
        raise NotImplementedError("max_pool2d: dilation, ceil_mode and return_indices are not implemented yet")
    input = _t(input)
    out, cache = ops.max_pool2d(input.array, kernel_size, stride, padding)
    return record(out, ops.max_pool2d_backward, cache, (input,), "max_pool2d")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over each window: (N, C, H, W) -> (N, C, OH, OW)."""
    if ceil_mode or divisor_override is not None:
        raise NotImplementedError("avg_pool2d: ceil_mode and divisor_override are not implemented yet")
    input = _t(input)
    out, cache = ops.avg_pool2d(input.array, kernel_size, stride, padding, count_include_pad)
    return record(out, ops.avg_pool2d_backward, cache, (input,), "avg_pool2d")


def adaptive_avg_pool2d(input, output_size):
    """Mean over OH x OW bins with torch's edges: (N, C, H, W) -> (N, C, OH, OW)."""
    input = _t(input)
    size = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    size = tuple(input.shape[2 + i] if s is None else s for i, s in enumerate(size))  # None keeps that size
    size = pair(size, "output_size", "adaptive_avg_pool2d")
    if size == (1, 1):
        out, cache = ops.global_avg_pool2d(input.array)
        return record(out, ops.global_avg_pool2d_backward, cache, (input,), "adaptive_avg_pool2d")
    out, cache = ops.adaptive_avg_pool2d(input.array, size)
    return record(out, ops.adaptive_avg_pool2d_backward, cache, (input,), "adaptive_avg_pool2d")


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Only output_size 1 (global max pooling) for now."""
    if pair(output_size, "output_size", "adaptive_max_pool2d") != (1, 1) or return_indices:
        raise NotImplementedError("adaptive_max_pool2d: only output_size=1 is implemented yet")
    input = _t(input)
    out, cache = ops.global_max_pool2d(input.array)
    return record(out, ops.global_max_pool2d_backward, cache, (input,), "adaptive_max_pool2d")


# -- activations ------------------------------------------------------------------------------


def _elementwise(pair_, backward, name, input, *args):
    input = _t(input)
    if input.dtype.kind not in "fc":
        raise TypeError(f"{name}: expected a floating-point tensor, got {input.dtype}; convert it with .float()")
    out, cache = pair_(input.array, *args)
    return record(out, backward, cache, (input,), name)


def relu(input, inplace=False):
    """max(x, 0). inplace is accepted and computed out of place (the tape keeps the input)."""
    return _elementwise(ops.relu, ops.relu_backward, "relu", input)


def sigmoid(input):
    return _elementwise(ops.sigmoid, ops.sigmoid_backward, "sigmoid", input)


def tanh(input):
    return _elementwise(ops.tanh, ops.tanh_backward, "tanh", input)


def _softmax_dim(input, dim, name):
    if dim is None:  # torch's legacy rule when dim is not given
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return dim


def softmax(input, dim=None, dtype=None):
    input = _t(input) if dtype is None else _t(input).type(dtype)
    return _elementwise(ops.softmax, ops.softmax_backward, "softmax", input, _softmax_dim(input, dim, "softmax"))


def log_softmax(input, dim=None, dtype=None):
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


def pad(input, pad, mode="constant", value=0):
    """Pad the last len(pad)//2 dims: pad = (left, right, top, bottom, ...), last dim first, as torch."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not implemented yet (only 'constant')")
    input = _t(input)
    if len(pad) % 2 or len(pad) // 2 > input.ndim or any(p < 0 for p in pad):
        raise ValueError(f"pad: expected an even number of non-negative sizes, at most 2 per dimension, got {pad}")
    widths = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        widths[input.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    out, cache = T.pad(input.array, tuple(widths), value)
    return record(out, T.pad_backward, cache, (input,), "pad")


# -- losses -----------------------------------------------------------------------------------


def _targets(target):
    target = target.array if isinstance(target, Tensor) else np.asarray(target) if not hasattr(target, "dtype") else target
    return target


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy of logits (N, C) against class indices (N,), as torch's:

        loss_n = -w[t_n] * log_softmax(x)[n, t_n]    mean = sum_n loss_n / sum_n w[t_n]

    label_smoothing eps mixes in the uniform target: (1 - eps) * nll + eps * (-sum_c w_c logp_c) / C.
    ignore_index targets add nothing (the mean of an all-ignored batch is NaN, as in torch).
    """
    input = _t(input)
    target_array = _targets(target)
    if input.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits of shape (N, C), got {tuple(input.shape)}")
    plain = weight is None and label_smoothing == 0 and reduction == "mean" and not bool(
        (target_array == ignore_index).any())
    if plain:  # the common case: one fused pair, softmax minus one-hot
        out, cache = ops.softmax_cross_entropy(input.array, target_array)
        return record(out, ops.softmax_cross_entropy_backward, cache, (input,), "cross_entropy")
    logp = log_softmax(input, dim=1)
    loss = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0:
        return loss
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    C = input.shape[1]
    keep = as_tensor(target_array != ignore_index).type(input.dtype)
    per_class = logp * _t(weight).reshape(1, C) if weight is not None else logp
    smooth = -per_class.sum(dim=1) * keep
    if reduction == "mean":
        if weight is not None:
            w = _t(weight).array
            denom = float((w[np.where(target_array != ignore_index, target_array, 0)] * keep.array).sum())
        else:
            denom = float(keep.array.sum())
        smooth = smooth.sum() / denom if denom else smooth.sum() / float("nan")
    elif reduction == "sum":
        smooth = smooth.sum()
    return loss * (1 - label_smoothing) + smooth * (label_smoothing / C)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """-w[t_n] * input[n, t_n] for log-probabilities input (N, C); reductions as cross_entropy."""
    input = _t(input)
    w = None if weight is None else _t(weight).array
    out, cache = ops.nll_loss(input.array, _targets(target), w, ignore_index, reduction)
    return record(out, ops.nll_loss_backward, cache, (input,), "nll_loss")


def mse_loss(input, target, reduction="mean"):
    """(input - target)^2, mean / sum / none. Shapes must match (torch warns on broadcasting; this refuses)."""
    input, target = _t(input), _t(target)
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"mse_loss: input {tuple(input.shape)} and target {tuple(target.shape)} differ in shape")
    if input.dtype != target.dtype:
        target = target.type(input.dtype)
    out, cache = ops.mse_loss(input.array, target.array, reduction)
    return record(out, ops.mse_loss_backward, cache, (input, target), "mse_loss")
from .functional_more import *  # noqa
