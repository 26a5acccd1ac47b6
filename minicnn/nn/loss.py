"""The losses, named and shaped like torch.nn: CrossEntropyLoss, NLLLoss, BCELoss,
BCEWithLogitsLoss, MSELoss, L1Loss, SmoothL1Loss. Each calls the function of the same family in
minicnn.nn.functional (cross_entropy, nll_loss, ...), whose docstrings give the shapes, the
formulas and torch's weighted mean; the math is in minicnn.ops.loss.

Arguments in torch's order, including the deprecated size_average and reduce (turned into a
reduction, with torch's warning). weight and pos_weight are buffers, as in torch: they appear in
state_dict and move with .to().
"""

from .._tensor import Tensor, as_tensor
from . import functional_more as F
from .layers import _input
from .module import Module


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        self.reduction = F._reduction(size_average, reduce, reduction, type(self).__name__)

    def _named(self, fn, *args, **kwargs):
        """Call the function, prefixing a ValueError from it with this loss's name."""
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            raise ValueError(f"{type(self).__name__}: {exc}") from exc


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))


def _buffer(value):
    return None if value is None else value if isinstance(value, Tensor) else as_tensor(value)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy of scores (N, C), (N, C, d1, ...) or (C,) against class indices (N,),
    (N, d1, ...) or () or against class probabilities of the scores' shape; weight (C,), ignore_index,
    label_smoothing and reduction as torch's (see F.cross_entropy)."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        if not 0 <= label_smoothing <= 1:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return self._named(F.cross_entropy, _input(input), target, self.weight, ignore_index=self.ignore_index,
                           reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities (N, C), (N, C, d1, ...) or (C,) and class indices
    (see F.nll_loss): put a LogSoftmax(dim=1) before it, or use CrossEntropyLoss on the scores."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return self._named(F.nll_loss, _input(input), target, self.weight, ignore_index=self.ignore_index,
                           reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities in [0, 1] and targets of their shape (see
    F.binary_cross_entropy); BCEWithLogitsLoss on the logits is the stable choice."""

    def forward(self, input, target):
        return self._named(F.binary_cross_entropy, _input(input), target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid and binary cross-entropy in one stable step, from the logits (see
    F.binary_cross_entropy_with_logits); pos_weight (C,) weighs the positives of each class."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))
        self.register_buffer("pos_weight", _buffer(pos_weight))

    def forward(self, input, target):
        return self._named(F.binary_cross_entropy_with_logits, _input(input), target, self.weight,
                           reduction=self.reduction, pos_weight=self.pos_weight)


class MSELoss(_Loss):
    """Mean squared error (x - y)^2 (or its sum, or per element); input and target of one shape."""

    def forward(self, input, target):
        return self._named(F.mse_loss, _input(input), _input(target), reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error |x - y| (or its sum, or per element); input and target of one shape."""

    def forward(self, input, target):
        return self._named(F.l1_loss, _input(input), _input(target), reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = x - y): L2 near 0, L1 far away."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        if beta < 0:
            raise ValueError(f"SmoothL1Loss: smooth_l1_loss does not support negative values for beta, got {beta}")
        self.beta = beta

    def forward(self, input, target):
        return self._named(F.smooth_l1_loss, _input(input), _input(target), reduction=self.reduction,
                           beta=self.beta)
