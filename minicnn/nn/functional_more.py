"""torch.nn.functional's normalisations, modern activations, channel dropout and full loss family,
on minicnn Tensors: each function checks its arguments (torch's messages, where torch has one),
runs one forward/backward pair of minicnn.ops on the arrays and records it on the tape.

    import minicnn.nn.functional as F      # these are re-exported there
    y = F.gelu(F.batch_norm(x, mean, var, w, b, training=True))
    loss = F.cross_entropy(logits, target, label_smoothing=0.1)   # (N, C, d...) and soft targets too

Shapes and formulas are in the ops' docstrings: minicnn.ops.norm, .activation, .loss, .dropout2d.
Where minicnn differs from torch, the function says so.
"""

import numbers
import warnings
import weakref

import numpy as np

from ..autograd import is_grad_enabled, record
from ..ops import activation as A
from ..ops.dropout import dropout2d as _dropout2d, dropout2d_backward as _dropout2d_backward
from ..ops import loss as L
from ..ops import norm as N
from .._tensor import Tensor, as_tensor

__all__ = [
    "batch_norm", "group_norm", "layer_norm", "local_response_norm",
    "leaky_relu", "elu", "selu", "gelu", "silu", "softplus", "hardtanh", "relu6", "hardsigmoid", "hardswish",
    "softsign", "prelu", "dropout2d",
    "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss", "l1_loss",
    "smooth_l1_loss",
]


def _t(x):
    return x if isinstance(x, Tensor) or x is None else as_tensor(x)


def _arr(x):
    return None if x is None else x.array


def _float_input(input, name):
    input = _t(input)
    if input.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point tensor, got {input.dtype}; convert it with .float()")
    return input


def _same_kind(name, input, **others):
    """Each given tensor (a weight, a bias, running statistics) is on the input's device and has its dtype."""
    for what, t in others.items():
        if t is None:
            continue
        if type(t.array) is not type(input.array):
            raise TypeError(f"{name}: the input is on {input.device} but {what} is on {t.device}; move one of them")
        if t.dtype != input.dtype:
            raise TypeError(f"{name}: the input is {input.dtype} but {what} is {t.dtype}; give them one dtype "
                            f"(input.to(minicnn.{t.dtype}) or the layer's .to(minicnn.{input.dtype})), so that "
                            "nothing is promoted silently")


def _eps(eps, name):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
        raise ValueError(f"{name}: eps must be a number >= 0, got {eps!r}")
    return float(eps)


# -- normalisation -----------------------------------------------------------------------------


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalise each channel of input (N, C, *) and scale and shift it by weight, bias (C,).

    training=True: with this batch's mean and biased variance; running_mean and running_var
    (C,), if given, are updated in place (not recorded on the tape, as torch):
        running = (1 - momentum) * running + momentum * batch statistic,
    the variance folded in unbiased (times M / (M - 1), M values per channel), as torch keeps it.
    training=False: with running_mean and running_var.
    """
    input = _float_input(input, "batch_norm")
    eps = _eps(eps, "batch_norm")
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected input of shape (N, C, *), got shape {tuple(input.shape)}")
    running_mean, running_var, weight, bias = _t(running_mean), _t(running_var), _t(weight), _t(bias)
    C = input.shape[1]
    for what, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"batch_norm: {what} should contain {C} elements not {t.numel()} (one per channel of "
                             f"the input of shape {tuple(input.shape)})")
    _same_kind("batch_norm", input, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: training=False normalises with running_mean and running_var: pass "
                             "them, or training=True to use the batch's own statistics")
        out, cache = N.batch_norm_inference(input.array, _arr(weight), _arr(bias), running_mean.array,
                                            running_var.array, eps)
        return record(out, N.batch_norm_inference_backward, cache, (input, weight, bias), "batch_norm")
    M = input.numel() // C if C else 0
    if M <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
    out, cache = N.batch_norm(input.array, _arr(weight), _arr(bias), eps)
    if running_mean is not None:
        running_mean.array *= 1 - momentum
        running_mean.array += momentum * cache.mean
        running_mean._bump()
    if running_var is not None:
        running_var.array *= 1 - momentum
        running_var.array += (momentum * M / (M - 1)) * cache.var
        running_var._bump()
    return record(out, N.batch_norm_backward, cache, (input, weight, bias), "batch_norm")


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each sample of input (N, C, *) over groups of C / num_groups channels; weight, bias (C,)."""
    input = _float_input(input, "group_norm")
    eps = _eps(eps, "group_norm")
    weight, bias = _t(weight), _t(bias)
    if input.ndim < 2:
        raise ValueError(f"group_norm: Expected at least 2 dimensions for input tensor but received {input.ndim}: "
                         "expected (N, C, *)")
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral) or num_groups < 1:
        raise ValueError(f"group_norm: num_groups must be a positive int, got {num_groups!r}")
    C = input.shape[1]
    if C % num_groups:
        raise ValueError(f"group_norm: Expected number of channels in input to be divisible by num_groups, but got "
                         f"input of shape {list(input.shape)} and num_groups={num_groups}")
    for what, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"group_norm: expected {what} of shape ({C},), one per channel, got {tuple(t.shape)}")
    _same_kind("group_norm", input, weight=weight, bias=bias)
    out, cache = N.group_norm(input.array, int(num_groups), _arr(weight), _arr(bias), eps)
    return record(out, N.group_norm_backward, cache, (input, weight, bias), "group_norm")


def _normalized_shape(normalized_shape, name):
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in shape):
        raise ValueError(f"{name}: normalized_shape must be a positive int or a sequence of them, got "
                         f"{normalized_shape!r}")
    return tuple(int(s) for s in shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise input (*, S) over its trailing dims S = normalized_shape; weight, bias of shape S."""
    input = _float_input(input, "layer_norm")
    eps = _eps(eps, "layer_norm")
    shape = _normalized_shape(normalized_shape, "layer_norm")
    weight, bias = _t(weight), _t(bias)
    k = len(shape)
    if input.ndim < k or tuple(input.shape[input.ndim - k:]) != shape:
        raise ValueError(f"layer_norm: Given normalized_shape={list(shape)}, expected input with shape "
                         f"[*, {', '.join(map(str, shape))}], but got input of size{list(input.shape)}")
    for what, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"layer_norm: expected {what} of shape {shape} (normalized_shape), got {tuple(t.shape)}")
    _same_kind("layer_norm", input, weight=weight, bias=bias)
    out, cache = N.layer_norm(input.array, shape, _arr(weight), _arr(bias), eps)
    return record(out, N.layer_norm_backward, cache, (input, weight, bias), "layer_norm")


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """AlexNet's normalisation across nearby channels of input (N, C, *):
    b_c = a_c / (k + alpha / size * sum of a^2 over the size channels around c)^beta."""
    input = _float_input(input, "local_response_norm")
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: Expected 3D or higher dimensionality input (got {input.ndim} "
                         "dimensions): (N, C, *)")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    out, cache = N.local_response_norm(input.array, int(size), float(alpha), float(beta), float(k))
    return record(out, N.local_response_norm_backward, cache, (input,), "local_response_norm")


# -- activations -------------------------------------------------------------------------------


def _elementwise(pair, backward, name, input, *args):
    input = _float_input(input, name)
    out, cache = pair(input.array, *args)
    return record(out, backward, cache, (input,), name)


def _in_place(inplace, name, input, fn):
    """fn(input), or with inplace=True its result written into input (torch's F.<name>(..., inplace=True))."""
    if not inplace:
        return fn(input)
    input = input if isinstance(input, Tensor) else as_tensor(input)
    return input._write(name + "_", fn)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x if x > 0 else negative_slope * x. inplace=True writes the result into input."""
    return _in_place(inplace, "leaky_relu", input, lambda x: _elementwise(A.leaky_relu, A.leaky_relu_backward, "leaky_relu", x,
                                                                        float(negative_slope)))


def elu(input, alpha=1.0, inplace=False):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return _in_place(inplace, "elu", input,
                     lambda x: _elementwise(A.elu, A.elu_backward, "elu", x, float(alpha)))


def selu(input, inplace=False):
    """1.0507 * elu(x, 1.6733): the self-normalising activation."""
    return _in_place(inplace, "selu", input,
                     lambda x: _elementwise(A.selu, A.selu_backward, "selu", x))


def gelu(input, approximate="none"):
    """x * Phi(x) (exact, through erf) or its tanh approximation (approximate='tanh')."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate argument must be either none or tanh, got {approximate!r}")
    return _elementwise(A.gelu, A.gelu_backward, "gelu", input, approximate)


def silu(input, inplace=False):
    """x * sigmoid(x)."""
    return _in_place(inplace, "silu", input,
                     lambda x: _elementwise(A.silu, A.silu_backward, "silu", x))


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, x where beta x > threshold. minicnn refuses beta = 0 (torch gives NaN)."""
    if beta == 0:
        raise ValueError("softplus: beta must not be 0 (softplus divides by it)")
    return _elementwise(A.softplus, A.softplus_backward, "softplus", input, float(beta), float(threshold))


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """x clipped to [min_val, max_val]."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})")
    return _in_place(inplace, "hardtanh", input, lambda x: _elementwise(
        A.hardtanh, A.hardtanh_backward, "hardtanh", x, float(min_val), float(max_val)))


def relu6(input, inplace=False):
    """min(max(x, 0), 6)."""
    return _in_place(inplace, "relu6", input,
                     lambda x: _elementwise(A.relu6, A.relu6_backward, "relu6", x))


def hardsigmoid(input, inplace=False):
    """min(max(x + 3, 0), 6) / 6."""
    return _in_place(inplace, "hardsigmoid", input,
                     lambda x: _elementwise(A.hardsigmoid, A.hardsigmoid_backward, "hardsigmoid", x))


def hardswish(input, inplace=False):
    """x * min(max(x + 3, 0), 6) / 6."""
    return _in_place(inplace, "hardswish", input,
                     lambda x: _elementwise(A.hardswish, A.hardswish_backward, "hardswish", x))


def softsign(input):
    """x / (1 + |x|)."""
    return _elementwise(A.softsign, A.softsign_backward, "softsign", input)


def prelu(input, weight):
    """x if x > 0 else weight * x; weight (C,) per channel of axis 1, or (1,) shared; both get gradients."""
    input, weight = _float_input(input, "prelu"), _t(weight)
    _same_kind("prelu", input, weight=weight)
    out, cache = A.prelu(input.array, weight.array)
    return record(out, A.prelu_backward, cache, (input, weight), "prelu")


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of input (N, C, H, W) with probability p, scale the rest by 1/(1-p); the
    identity when not training. inplace is accepted and computed out of place.

    Only 4-D input: torch 2.13 reads a 3-D input as (N, C, L) with a warning that this will change
    to one unbatched image (C, H, W), and other ranks element-wise; minicnn asks which is meant.
    """
    input = _float_input(input, "dropout2d")
    if not 0 <= p <= 1:
        raise ValueError(f"dropout2d: dropout probability has to be between 0 and 1, but got {p}")
    if input.ndim != 4:
        hint = ("; for one image (C, H, W) use input.unsqueeze(0), for 1-D feature maps (N, C, L) use "
                "input.unsqueeze(-1) (torch 2.13 reads 3-D input as (N, C, L), with a warning that this will change)"
                if input.ndim == 3 else "; for element-wise dropout use F.dropout")
        raise ValueError(f"dropout2d: expected input of shape (N, C, H, W), got shape {tuple(input.shape)}{hint}")
    out, mask = _dropout2d(input.array, p, training)
    if mask is None:
        return input
    return record(out, _dropout2d_backward, mask, (input,), "dropout2d")


# -- losses ------------------------------------------------------------------------------------


def _reduction(size_average, reduce, reduction, name):
    """torch's legacy size_average / reduce arguments, turned into a reduction (with torch's warning)."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' "
                      "instead.", UserWarning, stacklevel=3)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{name}: {reduction!r} is not a valid value for reduction: use 'mean', 'sum' or 'none'")
    return reduction


def _constant(t, what, name):
    """A weight the loss is not differentiated by (torch refuses one that requires a gradient)."""
    t = _t(t)
    if t is not None and t.requires_grad and is_grad_enabled():
        raise RuntimeError(f"The function '{name}' is not differentiable with respect to argument '{what}'. This "
                           f"input cannot have requires_grad True: pass {what}.detach()")
    return t


class _ClassLoss(tuple):
    """The settings of a cross_entropy or nll_loss against class indices, kept on the tape beside
    the op's cache for minicnn.onnx's export: (reduction, class weight array or None, ignore_index,
    label_smoothing, target), the target a weak reference to the target Tensor (None for a list or
    an array): the export finds it among its inputs, and the tape does not keep it alive. The target
    is not a node input, as in torch (it has no gradient, and grad_fn.next_functions leaves it out)."""

    __slots__ = ()

    def __new__(cls, reduction, weight, ignore_index, label_smoothing, target):
        ref = weakref.ref(target) if isinstance(target, Tensor) else None
        return super().__new__(cls, (reduction, weight, ignore_index, label_smoothing, ref))


# the ops' backwards, reading their own cache from the (cache, settings) pair a class loss records
def _softmax_cross_entropy_backward(dout, cache):
    return L.softmax_cross_entropy_backward(dout, cache[0])


def _cross_entropy_nd_backward(dout, cache):
    return L.cross_entropy_nd_backward(dout, cache[0])


def _nll_loss_nd_backward(dout, cache):
    return L.nll_loss_nd_backward(dout, cache[0])


def _class_indices(target):
    """The array of an integer target (a Tensor, an array or a list)."""
    if isinstance(target, Tensor):
        return target.array
    return target if hasattr(target, "dtype") and hasattr(target, "shape") else np.asarray(target)


def _float_target(target, input, name):
    """target as a Tensor of the input's dtype (the cast is recorded: a target that requires grad gets one)."""
    target = _t(target)
    if tuple(target.shape) != tuple(input.shape) and name != "cross_entropy":
        raise ValueError(f"{name}: input {tuple(input.shape)} and target {tuple(target.shape)} differ in shape; "
                         "give them one shape (torch broadcasts them, with a warning that it is likely wrong)")
    return target.type(input.dtype) if target.dtype != input.dtype else target


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """Softmax cross-entropy of scores input (N, C), (N, C, d1, ...) or (C,) against either

    - class indices target (N,), (N, d1, ...) or () of ints: -w[t] log softmax(x)[t] per element, with
      ignore_index, label_smoothing and torch's weighted 'mean' (sum / sum of w[t]; NaN when every
      target is ignored, with a zero gradient, as torch);
    - class probabilities target of input's shape (floats): -sum_c w_c p_c log softmax(x)_c, 'mean'
      over the N * d1 * ... positions; the target gets a gradient if it requires one.

    The plain case ((N, C), no weight, no smoothing, 'mean', nothing ignored) runs the fused
    ops.softmax_cross_entropy pair. minicnn accepts any integer dtype for class indices (torch:
    int64 or uint8) and raises ValueError where torch raises RuntimeError or IndexError.
    """
    input = _float_input(input, "cross_entropy")
    reduction = _reduction(size_average, reduce, reduction, "cross_entropy")
    weight = _constant(weight, "weight", "cross_entropy")
    _same_kind("cross_entropy", input, weight=weight)
    if not isinstance(target, Tensor) and not hasattr(target, "dtype"):
        target = np.asarray(target)  # a list: of ints (class indices) or of floats (probabilities)
    if target.dtype.kind == "f":
        if ignore_index >= 0:
            raise ValueError(f"cross_entropy: ignore_index is not supported for floating point target (class "
                             f"probabilities), got ignore_index={ignore_index}")
        target = _float_target(target, input, "cross_entropy")
        out, cache = L.cross_entropy_probs(input.array, target.array, _arr(weight), reduction, label_smoothing)
        return record(out, L.cross_entropy_probs_backward, cache, (input, target), "cross_entropy")
    labels = _class_indices(target)
    plain = (weight is None and label_smoothing == 0 and reduction == "mean" and input.ndim == 2
             and labels.dtype.kind in "iu" and tuple(labels.shape) == (input.shape[0],)
             and not bool((labels == ignore_index).any()))
    settings = _ClassLoss(reduction, _arr(weight), int(ignore_index), float(label_smoothing), target)
    if plain:  # the common case: one fused pair, softmax minus one-hot
        out, cache = L.softmax_cross_entropy(input.array, labels)
        return record(out, _softmax_cross_entropy_backward, (cache, settings), (input,), "cross_entropy")
    out, cache = L.cross_entropy_nd(input.array, labels, _arr(weight), ignore_index, reduction, label_smoothing)
    return record(out, _cross_entropy_nd_backward, (cache, settings), (input,), "cross_entropy")


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """-w[t] * input[n, t, d...] for log-probabilities input (N, C), (N, C, d1, ...) or (C,) and class
    indices (N,), (N, d1, ...) or (); reductions, ignore_index and weights as cross_entropy's."""
    input = _float_input(input, "nll_loss")
    reduction = _reduction(size_average, reduce, reduction, "nll_loss")
    weight = _constant(weight, "weight", "nll_loss")
    _same_kind("nll_loss", input, weight=weight)
    out, cache = L.nll_loss_nd(input.array, _class_indices(target), _arr(weight), ignore_index, reduction)
    settings = _ClassLoss(reduction, _arr(weight), int(ignore_index), 0.0, target)
    return record(out, _nll_loss_nd_backward, (cache, settings), (input,), "nll_loss")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-w (y log x + (1 - y) log(1 - x)) for probabilities x (any shape) and targets y of x's shape,
    logs clamped at -100 as torch. Prefer binary_cross_entropy_with_logits on the logits."""
    input = _float_input(input, "binary_cross_entropy")
    reduction = _reduction(size_average, reduce, reduction, "binary_cross_entropy")
    weight = _constant(weight, "weight", "binary_cross_entropy")
    target = _t(target)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"binary_cross_entropy: Using a target size {tuple(target.shape)} that is different to the "
                         f"input size {tuple(input.shape)} is deprecated. Please ensure they have the same size.")
    target = _float_target(target, input, "binary_cross_entropy")
    _same_kind("binary_cross_entropy", input, weight=weight)
    out, cache = L.binary_cross_entropy(input.array, target.array, _arr(weight), reduction)
    return record(out, L.binary_cross_entropy_backward, cache, (input, target), "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """BCE of sigmoid(input) from the logits, in the stable log-sum-exp form; pos_weight (broadcast along
    the last axis) weighs the positive targets, weight each element."""
    name = "binary_cross_entropy_with_logits"
    input = _float_input(input, name)
    reduction = _reduction(size_average, reduce, reduction, name)
    weight, pos_weight = _constant(weight, "weight", name), _constant(pos_weight, "pos_weight", name)
    target = _t(target)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{name}: Target size {tuple(target.shape)} must be the same as input size "
                         f"{tuple(input.shape)}")
    target = _float_target(target, input, name)
    _same_kind(name, input, weight=weight, pos_weight=pos_weight)
    out, cache = L.binary_cross_entropy_with_logits(input.array, target.array, _arr(weight), _arr(pos_weight),
                                                    reduction)
    return record(out, L.binary_cross_entropy_with_logits_backward, cache, (input, target), name)


def _regression(pair, backward, name, input, target, size_average, reduce, reduction, weight, *args):
    if weight is not None:
        raise NotImplementedError(f"{name}: weight= (torch 2.13's per-element weights) is not implemented yet")
    input = _float_input(input, name)
    reduction = _reduction(size_average, reduce, reduction, name)
    target = _float_target(target, input, name)
    out, cache = pair(input.array, target.array, reduction, *args)
    return record(out, backward, cache, (input, target), name)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """(x - y)^2 per element, then reduced; input and target of one shape (torch broadcasts, with a
    warning; minicnn refuses). Both get gradients."""
    return _regression(L.mse_loss, L.mse_loss_backward, "mse_loss", input, target, size_average, reduce, reduction,
                       weight)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """|x - y| per element, then reduced; shapes as mse_loss."""
    return _regression(L.l1_loss, L.l1_loss_backward, "l1_loss", input, target, size_average, reduce, reduction,
                       weight)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = x - y), then reduced; beta = 0 is L1."""
    return _regression(L.smooth_l1_loss, L.smooth_l1_loss_backward, "smooth_l1_loss", input, target, size_average,
                       reduce, reduction, None, float(beta))
