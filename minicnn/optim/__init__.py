"""torch.optim's names: the optimizers, and the learning-rate schedules in minicnn.optim.lr_scheduler.

    import minicnn.optim as optim
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=30)

    optimizer.py     Optimizer: parameter groups, zero_grad, step, state_dict / load_state_dict
    sgd.py           SGD (momentum, dampening, Nesterov, weight decay, maximize)
    adam.py          Adam (amsgrad, weight decay), AdamW (decoupled weight decay)
    adadelta.py      Adadelta (rho, weight decay, maximize)
    adagrad.py       Adagrad (lr_decay, initial_accumulator_value, weight decay, maximize)
    rmsprop.py       RMSprop (alpha, momentum, centered, weight decay, maximize)
    adamax.py        Adamax (Adam with the infinity norm)
    nadam.py         NAdam (Nesterov momentum, momentum_decay, decoupled weight decay)
    radam.py         RAdam (rectified variance, decoupled weight decay)
    lr_scheduler.py  LRScheduler, LambdaLR, MultiplicativeLR, StepLR, MultiStepLR, ConstantLR, LinearLR,
                     ExponentialLR, PolynomialLR, CosineAnnealingLR, CosineAnnealingWarmRestarts, CyclicLR,
                     OneCycleLR, SequentialLR, ChainedScheduler, ReduceLROnPlateau

The optimizers take torch's arguments, foreach, capturable, differentiable and fused among them
where torch has them: minicnn has one plain path on arrays, so foreach is ignored and
capturable=True, differentiable=True or fused=True is refused with a ValueError.
The schedulers are also here (minicnn.optim.StepLR), where minicnn's older programs find them.
"""

from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .lr_scheduler import (ChainedScheduler, ConstantLR, CosineAnnealingLR, CosineAnnealingWarmRestarts, CyclicLR,
                           ExponentialLR, LambdaLR, LinearLR, LRScheduler, MultiplicativeLR, MultiStepLR, OneCycleLR,
                           PolynomialLR, ReduceLROnPlateau, SequentialLR, StepLR)
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adadelta", "Adagrad", "RMSprop", "Adamax", "NAdam", "RAdam",
           "lr_scheduler", "LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR",
           "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
           "CyclicLR", "OneCycleLR", "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau"]
