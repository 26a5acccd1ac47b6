"""minicnn: a convolutional-network engine written by hand on NumPy, running unchanged on CuPy."""

from . import functional, gradcheck, nn, optim
from .backend import backend_name, get_xp, seed, use
from .summary import summary, trace

__version__ = "0.1.0"
