"""The math of minicnn: pure functions on arrays, no state, no Tensor.

Each operation is a forward `op(x, ...) -> (out, cache)` and a backward
`op_backward(dout, cache) -> gradients`, side by side in the same file. Autograd
(minicnn.autograd) calls these pairs; it writes no derivative of its own.

This package was called `functional` before minicnn had autograd: `minicnn.nn.functional`
is now torch's F on Tensors, and two packages named "functional" would confuse a reader.
"""

from . import norm, tensor  # noqa: F401  (ops.norm.batch_norm, ops.tensor.add, ...)
from .activation import (log_softmax, log_softmax_backward, relu, relu_backward, sigmoid, sigmoid_backward,
                         softmax, softmax_backward, tanh, tanh_backward)
from .conv import col2im, conv2d, conv2d_backward, conv2d_naive, conv2d_naive_backward, conv_output_size, im2col
from .dropout import dropout, dropout2d, dropout2d_backward, dropout_backward
from .linear import flatten, flatten_backward, linear, linear_backward
from .loss import (mse_loss, mse_loss_backward, nll_loss, nll_loss_backward, softmax_cross_entropy,
                   softmax_cross_entropy_backward)
from .pool import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d, avg_pool2d_backward,
                   global_avg_pool2d, global_avg_pool2d_backward, global_max_pool2d, global_max_pool2d_backward,
                   max_pool2d, max_pool2d_backward)
