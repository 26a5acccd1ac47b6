"""Layers with state: parameters, caches, train/eval mode. Named and shaped like torch.nn."""

from . import init
from .layers import (AvgPool2d, Conv2d, CrossEntropyLoss, Dropout, Flatten, GlobalAvgPool2d, GlobalMaxPool2d, Linear,
                     MaxPool2d, ReLU, Sigmoid, Tanh)
from .module import Module, Parameter, Sequential
