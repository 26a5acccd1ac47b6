"""Finite differences agree with every backward (float64, tolerance 1e-6): each ops pair on
its own, and each Module through autograd (check_module); and the gradient checker itself
catches a wrong backward and says where it is wrong."""

import numpy as np
import pytest

import minicnn.ops as F
from minicnn import nn
from minicnn.autograd import record
from minicnn.gradcheck import check_module, gradcheck, numerical_gradient

TOL = 1e-6


def arrays(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def distinct(shape, seed=0):
    """Values at least 0.1 apart, so that no max or relu kink lies within eps of a probe."""
    return np.random.default_rng(seed).permutation(int(np.prod(shape))).reshape(shape) / 10 - 1.55


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
    "softmax_cross_entropy": (lambda z: F.softmax_cross_entropy(z, np.array([0, 2, 1, 2])),
                              F.softmax_cross_entropy_backward, arrays(13, (4, 3))),
    "nll_loss_weighted_mean": (lambda z: F.nll_loss(z, np.array([0, 2, 1, 2]), np.array([0.5, 2.0, 1.5]), 1),
                               F.nll_loss_backward, arrays(14, (4, 3))),
    "nll_loss_none": (lambda z: F.nll_loss(z, np.array([2, 0, 1]), reduction="none"), F.nll_loss_backward,
                      arrays(15, (3, 4))),
    "mse_loss": (F.mse_loss, F.mse_loss_backward, arrays(16, (3, 4), (3, 4))),
    "mse_loss_sum": (lambda x, y: F.mse_loss(x, y, "sum"), F.mse_loss_backward, arrays(17, (2, 5), (2, 5))),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (3, 2)), F.adaptive_avg_pool2d_backward,
                            arrays(18, (2, 2, 5, 5))),
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
    "Sequential_layer_used_twice": (lambda: _twice(nn.Conv2d(2, 2, 3, padding=1)), (1, 2, 4, 4)),
    "Softmax": (lambda: nn.Softmax(dim=1), (3, 4)),
    "LogSoftmax": (lambda: nn.LogSoftmax(dim=1), (3, 4)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((2, 3)), (1, 2, 5, 4)),
}


def _twice(layer):
    return nn.Sequential(layer, nn.Tanh(), layer)


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


def _forgetful_linear_backward(dout, cache):
    dx, dw, db = F.linear_backward(dout, cache)
    return dx, dw, db * 0  # drops the bias gradient


class ForgetfulLinear(nn.Linear):
    """A Linear whose recorded backward forgets the bias: what check_module must catch."""

    def forward(self, x):
        out, cache = F.linear(x.array, self.weight.array, self.bias.array)
        return record(out, _forgetful_linear_backward, cache, (x, self.weight, self.bias), "forgetful_linear")


def test_check_module_catches_a_wrong_parameter_gradient_and_names_it():
    result = check_module(ForgetfulLinear(4, 3).double(), np.random.default_rng(0).standard_normal((2, 4)))
    assert not result.ok(TOL)
    assert result.where[0] == "bias"


def test_check_module_catches_a_wrong_input_gradient_inside_a_network():
    def wrong_tanh_backward(dout, cache):
        return F.tanh_backward(dout, cache) * 1.01

    class WrongTanh(nn.Module):
        def forward(self, x):
            out, cache = F.tanh(x.array)
            return record(out, wrong_tanh_backward, cache, (x,), "wrong_tanh")

    net = nn.Sequential(nn.Linear(3, 4), WrongTanh(), nn.Linear(4, 2)).double()
    result = check_module(net, np.random.default_rng(1).standard_normal((2, 3)))
    assert not result.ok(TOL)
    assert result.where[0] in ("x", "0.weight", "0.bias")  # only what lies before the wrong op is off


def test_check_module_leaves_the_parameters_grads_and_values_as_they_were():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = np.random.default_rng(2).standard_normal((2, 3))
    net(x).sum().backward()
    before = {name: (p.array.copy(), p.grad.array.copy()) for name, p in net.named_parameters()}
    x_before = x.copy()
    assert check_module(net, x).ok(TOL)
    for name, p in net.named_parameters():
        np.testing.assert_array_equal(p.array, before[name][0], err_msg=name)
        np.testing.assert_array_equal(p.grad.array, before[name][1], err_msg=name)
    np.testing.assert_array_equal(x, x_before)


def test_check_module_skips_frozen_parameters():
    net = nn.Linear(3, 2).double()
    net.bias.requires_grad_(False)
    result = check_module(net, np.random.default_rng(3).standard_normal((2, 3)))
    assert result.ok(TOL)
    assert net.bias.grad is None


def test_gradcheck_leaves_its_inputs_unchanged():
    x = np.random.default_rng(0).standard_normal((2, 3))
    before = x.copy()
    gradcheck(F.tanh, F.tanh_backward, [x])
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_refuses_float32():
    with pytest.raises(TypeError, match="numerical_gradient: needs float64 arrays .*got float32"):
        numerical_gradient(lambda: 0.0, np.zeros(3, np.float32))
