"""torch.optim's names: the optimizers, and the learning-rate schedules in minicnn.optim.lr_scheduler.

    import minicnn.optim as optim
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=30)

    optimizer.py     Optimizer: parameter groups, zero_grad, step, state_dict / load_state_dict
    sgd.py           SGD (momentum, dampening, Nesterov, weight decay, maximize)
    adam.py          Adam (amsgrad, weight decay), AdamW (decoupled weight decay)
    lr_scheduler.py  LRScheduler, StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, OneCycleLR

The schedulers are also here (minicnn.optim.StepLR), where minicnn's older programs find them.
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import CosineAnnealingLR, ExponentialLR, LRScheduler, MultiStepLR, OneCycleLR, StepLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "LRScheduler", "StepLR", "MultiStepLR",
           "ExponentialLR", "CosineAnnealingLR", "OneCycleLR"]
