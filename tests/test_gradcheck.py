"""Finite differences agree with every backward (float64, tolerance 1e-6), and the
gradient checker itself catches a wrong backward and says where it is wrong."""

import numpy as np
import pytest

import minicnn.ops as F
from minicnn import nn
from minicnn.gradcheck import check_module, gradcheck, numerical_gradient

TOL = 1e-6


def arrays(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def distinct(shape, seed=0):
    """Values at least 0.1 apart, so that no max or relu kink lies within eps of a probe."""
    return np.random.default_rng(seed).permutation(int(np.prod(shape))).reshape(shape) / 10 - 1.55


def loss_as_array(logits, labels):
    loss, cache = F.softmax_cross_entropy(logits, labels)
    return np.asarray(loss), cache


OP_CASES = {  # name: (forward, backward, inputs)
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2)), F.conv2d_backward,
               arrays(0, (2, 2, 5, 6), (3, 2, 3, 2), (3,))),
    "conv2d_no_bias": (lambda x, w: F.conv2d(x, w, None, 1, 1), F.conv2d_backward, arrays(1, (1, 2, 4, 4), (2, 2, 3, 3))),
    "conv2d_naive": (lambda x, w, b: F.conv2d_naive(x, w, b, 2, 1), F.conv2d_naive_backward,
                     arrays(2, (1, 2, 5, 5), (2, 2, 3, 3), (2,))),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), F.max_pool2d_backward, [distinct((2, 2, 5, 5))]),
    "max_pool2d_overlapping": (lambda x: F.max_pool2d(x, (3, 2), (1, 1)), F.max_pool2d_backward, [distinct((1, 2, 5, 4))]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1), F.avg_pool2d_backward, arrays(3, (2, 2, 5, 5))),
    "avg_pool2d_exclude_pad": (lambda x: F.avg_pool2d(x, (3, 2), 1, (1, 1), count_include_pad=False),
                               F.avg_pool2d_backward, arrays(4, (1, 2, 4, 5))),
    "global_avg_pool2d": (F.global_avg_pool2d, F.global_avg_pool2d_backward, arrays(5, (2, 3, 4, 4))),
    "global_max_pool2d": (F.global_max_pool2d, F.global_max_pool2d_backward, [distinct((2, 3, 4, 4))]),
    "relu": (F.relu, F.relu_backward, [distinct((3, 7))]),
    "sigmoid": (F.sigmoid, F.sigmoid_backward, arrays(6, (3, 7))),
    "tanh": (F.tanh, F.tanh_backward, arrays(7, (3, 7))),
    "softmax": (F.softmax, F.softmax_backward, arrays(8, (3, 7))),
    "log_softmax": (lambda x: F.log_softmax(x, axis=0), F.log_softmax_backward, arrays(9, (3, 7))),
    "linear": (F.linear, F.linear_backward, arrays(10, (4, 5), (3, 5), (3,))),
    "flatten": (F.flatten, F.flatten_backward, arrays(11, (2, 3, 2, 2))),
    # a fixed rng: every call draws the same mask, so the op is a fixed linear map
    "dropout": (lambda x: F.dropout(x, 0.4, True, np.random.default_rng(0)), F.dropout_backward, arrays(12, (4, 6))),
    "softmax_cross_entropy": (lambda z: loss_as_array(z, np.array([0, 2, 1, 2])),
                              lambda dout, cache: F.softmax_cross_entropy_backward(float(dout), cache),
                              arrays(13, (4, 3))),
}


@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_every_op_passes_gradcheck_in_float64(name):
    forward, backward, inputs = OP_CASES[name]
    result = gradcheck(forward, backward, [a.copy() for a in inputs])
    assert result.ok(TOL), str(result)


MODULE_CASES = {
    "Conv2d": (lambda: nn.Conv2d(2, 3, (3, 2), stride=(1, 2), padding=1), (2, 2, 5, 5)),
    "Conv2d_no_bias": (lambda: nn.Conv2d(2, 2, 3, dilation=2, bias=False), (1, 2, 6, 6)),
    "Linear": (lambda: nn.Linear(5, 3), (4, 5)),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), (2, 2, 4, 4)),
    "AvgPool2d": (lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False), (1, 2, 4, 4)),
    "GlobalAvgPool2d": (nn.GlobalAvgPool2d, (2, 2, 3, 3)),
    "GlobalMaxPool2d": (nn.GlobalMaxPool2d, (2, 2, 3, 3)),
    "Sigmoid": (nn.Sigmoid, (3, 4)),
    "Tanh": (nn.Tanh, (3, 4)),
    "ReLU": (nn.ReLU, (3, 4)),
    "Flatten": (nn.Flatten, (2, 2, 2, 2)),
    "Dropout_eval": (lambda: nn.Dropout(0.5).eval(), (3, 4)),
    "Sequential": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                         nn.Linear(8, 3), nn.Tanh(), nn.Linear(3, 2)), (2, 1, 4, 4)),
}


@pytest.mark.parametrize("name", sorted(MODULE_CASES))
def test_every_module_passes_check_module_for_input_and_parameter_grads(name):
    make, shape = MODULE_CASES[name]
    module = make().double()
    result = check_module(module, distinct(shape, seed=1))
    assert result.ok(TOL), str(result)


def test_gradcheck_catches_a_wrong_backward_and_reports_where():
    def wrong_sigmoid_backward(dout, cache):
        dx = F.sigmoid_backward(dout, cache).copy()
        dx[1, 2] *= 1.5  # one wrong entry
        return dx

    x = np.random.default_rng(0).standard_normal((3, 4))
    result = gradcheck(F.sigmoid, wrong_sigmoid_backward, [x])
    assert not result.ok(TOL)
    assert result.max_rel_error > 1e-3
    assert result.where == ("input0", (1, 2))
    assert "input0[1, 2]" in str(result)


def test_gradcheck_catches_a_relu_backward_that_forgets_the_mask():
    x = distinct((3, 5))
    result = gradcheck(F.relu, lambda dout, cache: dout, [x])
    assert not result.ok(TOL)
    name, index = result.where
    assert name == "input0" and x[index] < 0  # reported at an input where relu is flat
    assert result.numerical == 0 and result.analytic != 0


def test_check_module_catches_a_wrong_parameter_gradient_and_names_it():
    class ForgetfulLinear(nn.Linear):
        def backward(self, dout):
            dx = super().backward(dout)
            self.bias.grad = self.bias.grad * 0  # drops the bias gradient
            return dx

    result = check_module(ForgetfulLinear(4, 3).double(), np.random.default_rng(0).standard_normal((2, 4)))
    assert not result.ok(TOL)
    assert result.where[0] == "bias"


def test_gradcheck_leaves_its_inputs_unchanged():
    x = np.random.default_rng(0).standard_normal((2, 3))
    before = x.copy()
    gradcheck(F.tanh, F.tanh_backward, [x])
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_refuses_float32():
    with pytest.raises(TypeError, match="numerical_gradient: needs float64 arrays .*got float32"):
        numerical_gradient(lambda: 0.0, np.zeros(3, np.float32))
