"""minicnn: a convolutional-network engine written by hand on NumPy, running unchanged on CuPy.

It speaks PyTorch: `import minicnn as torch` and a torch CNN program runs (see the README).
"""

from . import autograd, gradcheck, ops
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .backend import backend_name, get_xp, seed, use
from .ops.impl import get_impl, set_impl
from .ops.parallel import get_num_threads, set_num_threads
from ._tensor import *  # noqa: F401,F403  (torch's creation functions, dtypes, Tensor, device, cuda)
from ._tensor import Size, Tensor, cuda, device  # noqa: F401
from . import nn, optim  # noqa: E402
from .summary import summary, trace  # noqa: E402

__version__ = "0.2.0"
from .io import load, save  # noqa: E402
from . import utils, vision  # noqa: E402
from . import backends  # noqa: E402  (torch.backends.cudnn's flags)


def __getattr__(name):
    """minicnn.onnx on first use (as torch.onnx), so that `import minicnn` never imports onnx."""
    if name == "onnx":
        import importlib
        return importlib.import_module(".onnx", __name__)
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")
