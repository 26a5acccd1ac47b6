"""Layers with state: parameters, buffers, train/eval mode. Named and shaped like torch.nn."""

from . import functional, init, parallel, utils
from .parallel import DataParallel
from .layers import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, Conv2d, Dropout, Flatten,
                     GlobalAvgPool2d, GlobalMaxPool2d, Identity, Linear, LogSoftmax, MaxPool2d, ReLU,
                     Sigmoid, Softmax, Tanh)
from .layers import ConvTranspose2d
from .layers import MaxUnpool2d, Upsample
from .module import Module, ModuleList, Parameter, Sequential
from .activation import (ELU, GELU, SELU, Dropout2d, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, PReLU, ReLU6,
                         SiLU, Softplus, Softsign)
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss
from .norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, LocalResponseNorm
