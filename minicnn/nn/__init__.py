"""Layers with state: parameters, buffers, train/eval mode. Named and shaped like torch.nn."""

from . import functional, init, utils
from .layers import (AdaptiveAvgPool2d, AvgPool2d, Conv2d, CrossEntropyLoss, Dropout, Flatten, GlobalAvgPool2d,
                     GlobalMaxPool2d, Identity, Linear, LogSoftmax, MaxPool2d, MSELoss, NLLLoss, ReLU, Sigmoid,
                     Softmax, Tanh)
from .module import Module, ModuleList, Parameter, Sequential
