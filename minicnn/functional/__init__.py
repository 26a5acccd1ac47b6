"""The math of minicnn: pure functions, no state.

Each operation is a forward `op(x, ...) -> (out, cache)` and a backward
`op_backward(dout, cache) -> gradients`, side by side in the same file.
"""

from .activation import (log_softmax, log_softmax_backward, relu, relu_backward, sigmoid, sigmoid_backward,
                         softmax, softmax_backward, tanh, tanh_backward)
from .conv import col2im, conv2d, conv2d_backward, conv2d_naive, conv2d_naive_backward, conv_output_size, im2col
from .dropout import dropout, dropout_backward
from .linear import flatten, flatten_backward, linear, linear_backward
from .loss import softmax_cross_entropy, softmax_cross_entropy_backward
from .pool import (avg_pool2d, avg_pool2d_backward, global_avg_pool2d, global_avg_pool2d_backward,
                   global_max_pool2d, global_max_pool2d_backward, max_pool2d, max_pool2d_backward)
