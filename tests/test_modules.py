"""minicnn.nn against torch.nn: each layer with torch's weights copied in gives torch's
output, and loss.backward() gives torch's dx and parameter gradients; default and named
initialisers follow torch's formulas; errors say which layer, what it expected and what it
got; the Module API (names, state_dict, zero_grad, train/eval, Sequential, repr) behaves as
torch's does.
"""

import copy
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import nn
from minicnn.backend import to_device, to_numpy
from minicnn.nn import init

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-5)}
seeds = st.integers(0, 2**32 - 1)


def assert_matches(actual, expected, dtype):
    actual = to_numpy(actual)
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert actual.dtype == dtype, f"dtype {actual.dtype}, expected {np.dtype(dtype)}"
    np.testing.assert_allclose(actual, expected, **TOL[dtype])


def torch_dtype(dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def copy_weights_into_torch(ours, theirs):
    """Load our parameters into the torch module (same names), in its dtype."""
    state = {k: torch.tensor(to_numpy(v)) for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state, strict=True)


def forward_backward(module, x, dout=None, seed=1):
    """out = module(x) for an input that requires grad, then out.backward(dout): (out, dout, dx)."""
    xt = minicnn.tensor(to_device(x), requires_grad=True)
    out = module(xt)
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(tuple(out.shape)).astype(out.dtype)
    out.backward(minicnn.tensor(to_device(dout)))
    return out, dout, xt.grad


def compare_with_torch(ours, theirs, x, dtype):
    """Forward and backward through both modules with the same weights, input and dout."""
    ours.to(dtype=dtype)
    theirs.to(torch_dtype(dtype))
    copy_weights_into_torch(ours, theirs)
    out, dout, dx = forward_backward(ours, x)

    t_x = torch.tensor(x, requires_grad=True)
    t_out = theirs(t_x)
    t_out.backward(torch.tensor(dout))
    assert_matches(out, t_out, dtype)
    assert_matches(dx, t_x.grad, dtype)
    t_params = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(t_params)
    for name, p in ours.named_parameters():
        assert_matches(p.grad, t_params[name].grad, dtype)


def random_input(seed, dtype, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- each layer against torch --------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25)
@given(C=st.integers(1, 3), OC=st.integers(1, 4), KH=st.integers(1, 3), KW=st.integers(1, 3),
       stride=st.tuples(st.integers(1, 2), st.integers(1, 2)), padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dilation=st.integers(1, 2), bias=st.booleans(), seed=seeds)
def test_conv2d_layer_matches_torch_forward_backward_and_weight_grads(backend, dtype, C, OC, KH, KW, stride, padding,
                                                                       dilation, bias, seed):
    ours = nn.Conv2d(C, OC, (KH, KW), stride, padding, dilation, bias=bias)
    theirs = torch.nn.Conv2d(C, OC, (KH, KW), stride, padding, dilation, bias=bias)
    compare_with_torch(ours, theirs, random_input(seed, dtype, (2, C, 6, 5)), dtype)


def test_conv2d_layer_matches_torch_on_every_call_of_a_loop_with_changing_batch_sizes(backend):
    """A layer reuses its buffers from call to call: results must not depend on the previous call."""
    ours, theirs = nn.Conv2d(2, 3, 3, stride=2, padding=1).double(), torch.nn.Conv2d(2, 3, 3, 2, 1).double()
    copy_weights_into_torch(ours, theirs)
    rng = np.random.default_rng(0)
    for N in (4, 4, 1, 4, 2, 2):
        x, dout = rng.standard_normal((N, 2, 7, 6)), rng.standard_normal((N, 3, 4, 3))
        ours.zero_grad()
        theirs.zero_grad()
        t_x = torch.tensor(x, requires_grad=True)
        t_out = theirs(t_x)
        t_out.backward(torch.tensor(dout))
        out, _, dx = forward_backward(ours, x, dout)
        assert_matches(out, t_out, np.float64)
        assert_matches(dx, t_x.grad, np.float64)
        assert_matches(ours.weight.grad, theirs.weight.grad, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(N=st.integers(1, 4), IN=st.integers(1, 10), OUT=st.integers(1, 10), bias=st.booleans(), seed=seeds)
def test_linear_layer_matches_torch_forward_backward_and_weight_grads(backend, dtype, N, IN, OUT, bias, seed):
    compare_with_torch(nn.Linear(IN, OUT, bias=bias), torch.nn.Linear(IN, OUT, bias=bias),
                       random_input(seed, dtype, (N, IN)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ours, theirs", [
    (nn.MaxPool2d(2), torch.nn.MaxPool2d(2)),
    (nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
    (nn.MaxPool2d((3, 2), (1, 2), (1, 0)), torch.nn.MaxPool2d((3, 2), (1, 2), (1, 0))),
    (nn.AvgPool2d(2), torch.nn.AvgPool2d(2)),
    (nn.AvgPool2d(3, 1, 1), torch.nn.AvgPool2d(3, 1, 1)),
    (nn.AvgPool2d((2, 3), 2, (1, 1), count_include_pad=False), torch.nn.AvgPool2d((2, 3), 2, (1, 1), count_include_pad=False)),
    (nn.GlobalAvgPool2d(), torch.nn.AdaptiveAvgPool2d(1)),
    (nn.GlobalMaxPool2d(), torch.nn.AdaptiveMaxPool2d(1)),
    (nn.ReLU(), torch.nn.ReLU()),
    (nn.Sigmoid(), torch.nn.Sigmoid()),
    (nn.Tanh(), torch.nn.Tanh()),
    (nn.Flatten(), torch.nn.Flatten()),
], ids=lambda m: repr(m) if isinstance(m, nn.Module) else "")
@settings(max_examples=10)
@given(seed=seeds)
def test_parameter_free_layer_matches_torch_forward_and_backward(backend, dtype, ours, theirs, seed):
    # distinct values, so that max pooling has no ties
    x = (np.random.default_rng(seed).permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 11 - 20).astype(dtype)
    compare_with_torch(ours, theirs, x, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_layer_in_eval_mode_is_the_identity_like_torch(backend, dtype):
    x = random_input(0, dtype, (3, 4, 5, 5))
    compare_with_torch(nn.Dropout(0.5).eval(), torch.nn.Dropout(0.5).eval(), x, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_layer_in_training_scales_by_one_over_one_minus_p_and_backward_reuses_the_mask(backend, dtype):
    minicnn.seed(0)
    layer = nn.Dropout(0.25)
    x = np.random.default_rng(0).uniform(1, 2, (40, 50)).astype(dtype)
    out, _, dx = forward_backward(layer, x, np.ones_like(x))
    out, dx = to_numpy(out), to_numpy(dx)
    kept = out != 0
    assert 0.2 < 1 - kept.mean() < 0.3
    np.testing.assert_allclose(out[kept], x[kept] / dtype(0.75), rtol=1e-6)
    np.testing.assert_allclose(dx, kept / dtype(0.75), rtol=1e-6)
    assert out.dtype == dx.dtype == dtype


def test_dropout_masks_follow_minicnn_seed(backend):
    x = to_device(np.ones((10, 10)))
    minicnn.seed(3)
    a = to_numpy(nn.Dropout(0.5)(x))
    minicnn.seed(3)
    b = to_numpy(nn.Dropout(0.5)(x))
    np.testing.assert_array_equal(a, b)
    assert (a == 0).any() and (a != 0).any()


def lenet_like(lib, **kw):
    return lib.Sequential(
        lib.Conv2d(1, 4, 3, padding=1, **kw), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(4, 6, (3, 2), stride=(1, 2), **kw), lib.Tanh(), lib.AvgPool2d(2),
        lib.Flatten(), lib.Linear(6, 5, **kw), lib.Sigmoid(), lib.Linear(5, 3, **kw),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(seed=seeds)
def test_sequential_network_matches_torch_forward_backward_and_every_parameter_grad(backend, dtype, seed):
    compare_with_torch(lenet_like(nn), lenet_like(torch.nn), random_input(seed, dtype, (3, 1, 8, 8)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(N=st.integers(1, 6), K=st.integers(2, 6), seed=seeds)
def test_cross_entropy_loss_matches_torch_value_and_grad(backend, dtype, N, K, seed):
    rng = np.random.default_rng(seed)
    logits, labels = (rng.standard_normal((N, K)) * 3).astype(dtype), rng.integers(0, K, N)
    crit = nn.CrossEntropyLoss()
    ours = minicnn.tensor(to_device(logits), requires_grad=True)
    loss = crit(ours, to_device(labels))
    loss.backward()
    t_logits = torch.tensor(logits, requires_grad=True)
    t_loss = torch.nn.CrossEntropyLoss()(t_logits, torch.tensor(labels))
    t_loss.backward()
    assert loss.shape == () and loss.dtype == dtype  # a 0-d Tensor, as torch's
    assert loss.item() == pytest.approx(t_loss.item(), rel=TOL[dtype]["rtol"], abs=TOL[dtype]["atol"])
    assert_matches(ours.grad, t_logits.grad, dtype)


# -- dtypes ---------------------------------------------------------------------------------------

ALL_LAYERS = [
    lambda: nn.Conv2d(3, 2, 3, padding=1), lambda: nn.MaxPool2d(2), lambda: nn.AvgPool2d(3, 1, 1),
    nn.GlobalAvgPool2d, nn.GlobalMaxPool2d, nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Flatten, lambda: nn.Dropout(0.5),
    lambda: nn.Sequential(nn.Flatten(), nn.Linear(48, 2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", ALL_LAYERS)
def test_every_layer_keeps_the_dtype_of_input_output_and_gradients(backend, dtype, make):
    layer = make().to(dtype=dtype)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(dtype)
    out, _, dx = forward_backward(layer, x)
    assert out.dtype == dx.dtype == dtype
    for p in layer.parameters():
        assert p.dtype == p.grad.dtype == dtype


def test_layers_are_float32_by_default_and_double_makes_them_float64(backend):
    net = lenet_like(nn)
    assert {p.dtype for p in net.parameters()} == {np.dtype(np.float32)}
    net.double()
    assert {p.dtype for p in net.parameters()} == {np.dtype(np.float64)}


def test_cross_entropy_loss_gradient_keeps_float32(backend):
    logits = minicnn.tensor(to_device(np.zeros((2, 3), np.float32)), requires_grad=True)
    loss = nn.CrossEntropyLoss()(logits, to_device(np.array([0, 2])))
    loss.backward()
    assert loss.dtype == logits.grad.dtype == np.float32


# -- initialisation --------------------------------------------------------------------------


@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Conv2d(64, 128, 3), 64 * 9),
    (lambda: nn.Linear(800, 500), 800),
])
def test_default_init_is_uniform_within_one_over_sqrt_fan_in_like_torch(make, fan_in):
    minicnn.seed(0)
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    w, b = to_numpy(layer.weight.data), to_numpy(layer.bias.data)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # fills the whole interval
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)  # std of U(-a, a) is a / sqrt(3)
    assert abs(w.mean()) < 0.02 * bound


def test_default_init_of_large_layers_has_the_spread_of_torchs():
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(32, 64, 5).weight.detach().numpy()
    ours = to_numpy(nn.Conv2d(32, 64, 5).weight.data)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
    assert np.abs(ours).max() == pytest.approx(np.abs(theirs).max(), rel=0.01)


GAIN_CASES = [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
              ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 0), ("selu", None), ("conv_transpose2d", None)]


@pytest.mark.parametrize("nonlinearity, param", GAIN_CASES)
def test_calculate_gain_equals_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15)


def test_calculate_gain_rejects_unknown_nonlinearity():
    with pytest.raises(ValueError, match="calculate_gain: unknown nonlinearity 'swish'"):
        init.calculate_gain("swish")


def expected_spread(kind, shape, **kw):
    """(bound for a uniform init or None, std) from torch's documented formulas."""
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    if kind.startswith("xavier"):
        std = kw.get("gain", 1.0) * math.sqrt(2.0 / (fan_in + fan_out))
    else:
        fan = fan_in if kw.get("mode", "fan_in") == "fan_in" else fan_out
        std = torch.nn.init.calculate_gain(kw.get("nonlinearity", "leaky_relu"), kw.get("a", 0)) / math.sqrt(fan)
    return (math.sqrt(3.0) * std if kind.endswith("uniform_") else None), std


INIT_CASES = [
    ("xavier_uniform_", (256, 128), {}), ("xavier_uniform_", (64, 32, 3, 3), {"gain": 2.0}),
    ("xavier_normal_", (256, 128), {}), ("xavier_normal_", (64, 32, 3, 3), {"gain": 5 / 3}),
    ("kaiming_uniform_", (256, 128), {}), ("kaiming_uniform_", (64, 32, 3, 3), {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_uniform_", (128, 64, 3, 3), {"a": math.sqrt(5)}),
    ("kaiming_normal_", (256, 128), {"nonlinearity": "relu"}), ("kaiming_normal_", (64, 32, 3, 3), {"mode": "fan_out", "a": 0.1}),
]


@pytest.mark.parametrize("kind, shape, kw", INIT_CASES)
def test_named_initialisers_follow_torchs_bounds_and_std(kind, shape, kw):
    bound, std = expected_spread(kind, shape, **kw)
    minicnn.seed(0)
    ours = to_numpy(getattr(init, kind)(nn.Parameter(np.zeros(shape)), **kw).data)
    theirs = getattr(torch.nn.init, kind)(torch.empty(shape, dtype=torch.float64), **kw).numpy()
    for w in (ours, theirs):  # the formula is torch's: torch's own init passes the same check
        assert w.std() == pytest.approx(std, rel=0.03)
        if bound is not None:
            assert bound * 0.99 < np.abs(w).max() <= bound


def test_initialisers_fill_plain_arrays_in_place_keeping_their_dtype():
    a = np.zeros((50, 40), dtype=np.float32)
    out = init.xavier_uniform_(a)
    assert out is a and a.dtype == np.float32
    assert 0 < np.abs(a).max() <= math.sqrt(6 / 90)
    init.constant_(a, 0.5)
    assert (a == 0.5).all()


def test_kaiming_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out', got 'fan_avg'"):
        init.kaiming_uniform_(nn.Parameter(np.zeros((3, 3))), mode="fan_avg")


def test_the_same_seed_gives_the_same_initial_weights():
    minicnn.seed(42)
    a = lenet_like(nn).state_dict()
    minicnn.seed(42)
    b = lenet_like(nn).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.Conv2d(3, 8, 0), ValueError, r"Conv2d: kernel_size must be >= 1, got 0"),
    (lambda: nn.Conv2d(3, 8, (3, -1)), ValueError, r"Conv2d: kernel_size must be >= 1, got \(3, -1\)"),
    (lambda: nn.Conv2d(3, 8, 3, stride=0), ValueError, r"Conv2d: stride must be >= 1, got 0"),
    (lambda: nn.Conv2d(0, 8, 3), ValueError, r"Conv2d: in_channels must be a positive int, got 0"),
    (lambda: nn.Conv2d(3, 8, 2.5), TypeError, r"Conv2d: kernel_size must be an int or a pair of ints, got 2.5"),
    (lambda: nn.MaxPool2d(0), ValueError, r"MaxPool2d: kernel_size must be >= 1, got 0"),
    (lambda: nn.MaxPool2d(2, stride=0), ValueError, r"MaxPool2d: stride must be >= 1, got 0"),
    (lambda: nn.MaxPool2d(3, padding=2), ValueError, r"MaxPool2d: padding 2 must be at most half the kernel size 3"),
    (lambda: nn.AvgPool2d(2, padding=2), ValueError, r"AvgPool2d: padding 2 must be at most half the kernel size 2"),
    (lambda: nn.Linear(0, 3), ValueError, r"Linear: in_features must be a positive int, got 0"),
    (lambda: nn.Dropout(1.0), ValueError, r"Dropout: p must be a number in \[0, 1\), got 1.0"),
])
def test_constructors_reject_bad_arguments_naming_the_layer(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_conv2d_with_a_kernel_larger_than_the_padded_input_says_so():
    with pytest.raises(ValueError, match=r"Conv2d\(1, 2, kernel_size=\(5, 5\).*larger than the padded input \(4, 4\)"):
        nn.Conv2d(1, 2, 5)(np.zeros((1, 1, 4, 4), np.float32))


def test_conv2d_with_the_wrong_channel_count_says_what_it_expected():
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8, .*expected 3 input channels.*got shape \(2, 1, 8, 8\) with 1"):
        nn.Conv2d(3, 8, 3)(np.zeros((2, 1, 8, 8), np.float32))


def test_linear_after_flatten_in_a_sequential_names_the_flattened_shape():
    net = nn.Sequential(nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(1600, 10))
    with pytest.raises(ValueError) as info:
        net(np.zeros((2, 1, 8, 8), np.float32))
    message = "\n".join([str(info.value)] + getattr(info.value, "__notes__", []))
    assert re.search(r"layer \(?'?3'?\)? of the Sequential", message), message
    assert "Linear(in_features=1600" in message
    assert "4096 features arrived for 1600" in message
    assert "(2, 64, 8, 8), flattened: 64 * 8 * 8 = 4096" in message


def test_pool_whose_window_exceeds_the_input_says_so():
    with pytest.raises(ValueError, match=r"MaxPool2d\(kernel_size=4.*larger than the padded input \(2, 2\)"):
        nn.MaxPool2d(4)(np.zeros((1, 1, 2, 2), np.float32))


def test_a_layer_given_the_wrong_rank_says_what_shape_it_expected():
    with pytest.raises(ValueError, match=r"MaxPool2d\(kernel_size=2.*expected input of shape \(N, C, H, W\) "
                                         r"or \(C, H, W\), got shape \(4, 4\)"):
        nn.MaxPool2d(2)(np.zeros((4, 4), np.float32))
    # Linear, as torch's, acts on the last dim of any rank: there the feature count is what is checked
    assert nn.Linear(4, 2)(np.zeros((3, 5, 4), np.float32)).shape == (3, 5, 2)
    with pytest.raises(ValueError, match=r"Linear\(in_features=4.*expected input of shape \(N, 4\), got \(2, 2, 2\)"):
        nn.Linear(4, 2)(np.zeros((2, 2, 2), np.float32))


def test_mixing_dtypes_between_input_and_parameters_is_a_type_error():
    with pytest.raises(TypeError, match=r"Conv2d\(.*the input is float64 but the parameters are float32"):
        nn.Conv2d(1, 2, 3)(np.zeros((1, 1, 5, 5)))
    with pytest.raises(TypeError, match=r"Linear\(.*the input is float32 but the parameters are float64"):
        nn.Linear(3, 2).double()(np.zeros((1, 3), np.float32))


def test_cross_entropy_loss_with_labels_out_of_range_names_the_range():
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: .*labels must lie in \[0, 3\) for 3 classes, got values from 0 to 5"):
        nn.CrossEntropyLoss()(np.zeros((2, 3), np.float32), np.array([0, 5]))


def test_load_state_dict_with_a_shape_mismatch_names_the_key_as_torch_does():
    state = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).state_dict()
    state["2.weight"] = np.zeros((2, 5), np.float32)
    with pytest.raises(RuntimeError, match=r"size mismatch for 2.weight: copying a param with shape \(2, 5\) from "
                                           r"checkpoint, the shape in current model is \(2, 3\)"):
        nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).load_state_dict(state)


def test_load_state_dict_names_missing_and_unexpected_keys():
    state = nn.Sequential(nn.Linear(4, 3)).state_dict()
    state["1.weight"] = state.pop("0.bias")
    with pytest.raises(RuntimeError, match=r"missing keys \['0.bias'\], unexpected keys \['1.weight'\]"):
        nn.Sequential(nn.Linear(4, 3)).load_state_dict(state)


@pytest.mark.parametrize("make", [lambda: nn.Conv2d(1, 1, 3), lambda: nn.Linear(5, 5), lambda: nn.MaxPool2d(2),
                                  lambda: nn.ReLU(), lambda: nn.Dropout(),
                                  lambda: nn.Sequential(nn.Linear(5, 5), nn.ReLU())],
                         ids=["Conv2d", "Linear", "MaxPool2d", "ReLU", "Dropout", "Sequential"])
def test_backward_of_an_output_nothing_recorded_is_a_clear_runtime_error(make):
    """The successor of 'backward before forward': an output computed under no_grad (or from nothing
    that requires grad) has no graph, and its backward() says so, as torch's does."""
    module = make()
    with minicnn.no_grad():
        out = module(np.ones((1, 1, 5, 5), np.float32))
    with pytest.raises(RuntimeError, match=r"does not require grad and does not have a grad_fn.*no_grad"):
        out.sum().backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        nn.ReLU()(np.ones((2, 2), np.float32)).sum().backward()


def test_a_second_backward_through_the_same_graph_is_a_clear_runtime_error_naming_the_layer():
    net = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1))
    out = net(np.ones((4, 3), np.float32))
    out.backward(minicnn.ones_like(out))
    with pytest.raises(RuntimeError, match=r"backward through the graph a second time \(linear in Linear\(in_features=2"
                                           r".*retain_graph=True"):
        out.backward(minicnn.ones_like(out))


# -- module API ---------------------------------------------------------------------------------


def test_parameter_names_equal_torchs_for_the_same_network():
    ours = dict(lenet_like(nn).named_parameters())
    theirs = dict(lenet_like(torch.nn).named_parameters())
    assert list(ours) == list(theirs)
    for name in ours:
        assert tuple(ours[name].shape) == tuple(theirs[name].shape)
    assert lenet_like(nn).num_parameters() == sum(p.numel() for p in lenet_like(torch.nn).parameters())


def test_nested_sequential_names_its_parameters_like_torch():
    ours = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), nn.Flatten(), nn.Linear(8, 2, bias=False))
    theirs = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU()), torch.nn.Flatten(),
                                 torch.nn.Linear(8, 2, bias=False))
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


def test_state_dict_round_trip_reproduces_the_network(backend):
    x = to_device(np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32))
    a, b = lenet_like(nn).to(minicnn.backend.backend_name()), lenet_like(nn)
    state = a.state_dict()
    assert all(isinstance(v, minicnn.Tensor) and not v.requires_grad for v in state.values())
    b.load_state_dict(state)
    b.to(minicnn.backend.backend_name())
    np.testing.assert_array_equal(to_numpy(a(x)), to_numpy(b(x)))
    b[0].weight.data.zero_()  # loading copied the values: b has its own
    assert (to_numpy(a[0].weight.data) != 0).any()


def test_state_dict_shares_memory_with_the_model_as_torchs_and_a_deepcopy_is_a_snapshot():
    net = nn.Linear(3, 2)
    snapshot = copy.deepcopy(net.state_dict())
    live = net.state_dict()
    net.weight.data.fill_(7.0)
    assert (live["weight"].numpy() == 7).all()  # torch's state_dict holds detached views too
    assert (snapshot["weight"].numpy() != 7).all()


def test_load_state_dict_keeps_the_models_dtype():
    net = nn.Linear(3, 2)
    net.load_state_dict({"weight": np.ones((2, 3)), "bias": np.ones(2)})
    assert net.weight.dtype == net.bias.dtype == np.float32


def test_zero_grad_clears_every_gradient():
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    net(np.ones((4, 3), np.float32)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net(np.ones((4, 3), np.float32)).sum().backward()
    net.zero_grad(set_to_none=False)  # torch's other form: zeros of the same shape and dtype
    assert all(p.grad.shape == p.shape and p.grad.dtype == p.dtype and not p.grad.numpy().any()
               for p in net.parameters())


def test_gradients_accumulate_over_two_backward_passes_as_in_torch():
    """Two forward/backward passes without zero_grad leave the sum of both gradients, as in torch."""
    ours, theirs = lenet_like(nn).double(), lenet_like(torch.nn).double()
    copy_weights_into_torch(ours, theirs)
    rng = np.random.default_rng(0)
    for _ in range(2):
        x, dout = rng.standard_normal((2, 1, 8, 8)), rng.standard_normal((2, 3))
        ours(x).backward(minicnn.tensor(dout))
        theirs(torch.tensor(x)).backward(torch.tensor(dout))
    t_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), rtol=1e-10, atol=1e-10)


def test_train_and_eval_set_the_mode_of_every_submodule():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(), nn.ReLU()))
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_sequential_indexing_and_slicing_share_the_layers():
    net = lenet_like(nn)
    assert len(net) == 10
    assert isinstance(net[0], nn.Conv2d) and net[-1] is list(net)[-1]
    head = net[:4]
    assert isinstance(head, nn.Sequential) and len(head) == 4
    assert all(a is b for a, b in zip(head, list(net)[:4]))
    head[0].weight.data.zero_()  # a shared layer: the change shows in the whole network
    assert (to_numpy(net[0].weight.data) == 0).all()
    x = np.ones((1, 1, 8, 8), np.float32)
    assert head(x).shape == (1, 6, 2, 2)


def test_sequential_append_adds_a_layer_named_by_its_position():
    net = nn.Sequential(nn.Linear(3, 2))
    assert net.append(nn.ReLU()) is net
    assert len(net) == 2 and [name for name, _ in net.named_children()] == ["0", "1"]
    with pytest.raises(TypeError, match="Sequential: expected a Module, got function"):
        net.append(lambda x: x)


def test_repr_matches_torchs_print_for_conv_linear_and_sequential():
    def build(lib):
        return lib.Sequential(lib.Conv2d(1, 6, 5, padding=2), lib.ReLU(), lib.Conv2d(6, 16, (3, 2), stride=2, bias=False),
                              lib.Linear(400, 120))
    assert repr(build(nn)) == repr(build(torch.nn))


def test_repr_of_pooling_and_dropout_layers_starts_like_torchs():
    assert repr(torch.nn.MaxPool2d(2)).startswith(repr(nn.MaxPool2d(2))[:-1])
    assert repr(nn.AvgPool2d(3, 1, 1)) == repr(torch.nn.AvgPool2d(3, 1, 1))
    assert repr(nn.Dropout(0.3)) == repr(torch.nn.Dropout(0.3))


def test_repr_of_max_pool2d_equals_torchs():
    assert repr(nn.MaxPool2d(3, 2, 1)) == repr(torch.nn.MaxPool2d(3, 2, 1))


def test_to_dtype_casts_in_place_and_returns_the_module():
    net = nn.Linear(3, 2)
    assert net.to(dtype=np.float64) is net
    assert net.weight.dtype == np.float64


TWICE = {"ReLU": (nn.ReLU, torch.nn.ReLU), "Tanh": (nn.Tanh, torch.nn.Tanh), "Sigmoid": (nn.Sigmoid, torch.nn.Sigmoid),
         "Flatten": (lambda: nn.Flatten(2), lambda: torch.nn.Flatten(2)),  # (N, C, H*W), then the identity
         "GlobalAvgPool2d": (nn.GlobalAvgPool2d, lambda: torch.nn.AdaptiveAvgPool2d(1)),
         "GlobalMaxPool2d": (nn.GlobalMaxPool2d, lambda: torch.nn.AdaptiveMaxPool2d(1))}


@pytest.mark.parametrize("name", sorted(TWICE))
def test_any_layer_used_twice_in_one_forward_pass_gets_torchs_gradient_of_both_uses(name):
    """Once refused ('backward() ran twice after one forward()'): each use is now its own node."""
    make, make_theirs = TWICE[name]
    ours, theirs = make(), make_theirs()
    x = np.random.default_rng(7).permutation(96).reshape(2, 3, 4, 4) / 40 - 1.2  # no ties for the max
    compare_with_torch(nn.Sequential(ours, ours), torch.nn.Sequential(theirs, theirs), x, np.float64)


def test_dropout_used_twice_draws_two_masks_and_backward_applies_each():
    minicnn.seed(0)
    layer = nn.Dropout(0.5)
    x = np.ones((50, 40))
    xt = minicnn.tensor(x, requires_grad=True)
    first = layer(xt)
    out = layer(first)
    out.backward(minicnn.ones_like(out))
    m1, out = first.detach().numpy() / 2, out.detach().numpy() / 4  # the masks, as 0 / 1
    assert ((out == 0) | (out == 1)).all() and (out <= m1).all()
    assert (m1 != (out != 0)).any()  # the second use drew a mask of its own
    np.testing.assert_array_equal(xt.grad.numpy(), 4 * out)  # d out / dx = mask1 * mask2 / (1 - p)^2


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_used_twice_in_one_forward_pass_gets_torchs_gradient_of_both_uses(dtype):
    minicnn.seed(0)
    layer, t_layer = nn.Linear(3, 3), torch.nn.Linear(3, 3)
    compare_with_torch(nn.Sequential(layer, nn.Tanh(), layer), torch.nn.Sequential(t_layer, torch.nn.Tanh(), t_layer),
                       np.random.default_rng(8).standard_normal((2, 3)).astype(dtype), dtype)


@pytest.mark.parametrize("first", ["conv", "linear"])
def test_an_input_that_needs_no_grad_gives_the_same_parameter_grads_and_no_dx(first):
    """The successor of backward(dout, input_grad=False): the first layer skips dx when its
    input does not require grad (as torch), and the parameter gradients are bit-identical."""
    rng = np.random.default_rng(9)
    if first == "conv":
        make = lambda: nn.Sequential(nn.Conv2d(2, 3, 3, dtype=np.float64), nn.Tanh(), nn.Flatten(),  # noqa: E731
                                     nn.Linear(12, 4, dtype=np.float64))
        x = rng.standard_normal((2, 2, 4, 4))
    else:
        make = lambda: nn.Sequential(nn.Linear(5, 4, dtype=np.float64), nn.ReLU(),  # noqa: E731
                                     nn.Linear(4, 3, dtype=np.float64))
        x = rng.standard_normal((2, 5))
    minicnn.seed(0)
    full = make()
    minicnn.seed(0)
    skip = make()
    out, dout, dx = forward_backward(full, x)
    assert dx is not None and dx.shape == x.shape
    plain = minicnn.tensor(x)  # requires_grad=False
    skip(plain).backward(minicnn.tensor(dout))
    assert plain.grad is None
    for (name, p), (_, q) in zip(full.named_parameters(), skip.named_parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy(), err_msg=name)


def test_numpy_integers_are_accepted_where_an_int_is_expected_and_bools_and_floats_are_not():
    assert nn.Linear(np.prod((16, 5, 5)), 120).in_features == 400
    conv = nn.Conv2d(np.int64(3), np.int32(4), np.int64(3), stride=np.int8(2), padding=np.int16(1))
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding) == (3, 4, (3, 3), (2, 2),
                                                                                                  (1, 1))
    assert type(conv.kernel_size[0]) is int and type(conv.in_channels) is int
    for bad in (True, 2.0, 2.5):
        with pytest.raises(TypeError, match="must be"):
            nn.Conv2d(3, 4, bad)
        with pytest.raises(TypeError, match="in_features must be a positive int"):
            nn.Linear(bad, 4)


class _NeedsTwoArguments(Exception):
    def __init__(self, code, detail):
        super().__init__(f"{code}: {detail}")
        self.code = code


class _Raises(nn.Module):
    def forward(self, x):
        raise _NeedsTwoArguments(7, "from inside the layer")


def test_an_error_inside_a_sequential_keeps_its_type_arguments_and_traceback_and_gains_only_a_note():
    net = nn.Sequential(nn.ReLU(), _Raises())
    with pytest.raises(_NeedsTwoArguments) as info:
        net(np.zeros((1, 3), np.float32))
    assert info.value.code == 7 and str(info.value) == "7: from inside the layer"  # the same exception object
    assert any(entry.name == "forward" and "_Raises" in str(entry.locals.get("self", ""))
               for entry in info.traceback)  # the failing layer's frame is still in the traceback
    notes = getattr(info.value, "__notes__", [])
    if hasattr(info.value, "add_note"):
        assert notes == ["(raised in layer '1' of the Sequential: _Raises())"]


def test_a_dtype_error_after_a_flatten_gets_no_advice_about_in_features():
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    with pytest.raises(TypeError) as info:
        net(np.zeros((2, 1, 4, 4), np.float64))
    message = "\n".join([str(info.value)] + getattr(info.value, "__notes__", []))
    assert "float64" in message and "set in_features" not in message and "flattened" not in message


def test_a_uint8_image_batch_is_told_to_become_float32_not_to_cast_the_model():
    with pytest.raises(TypeError) as info:
        nn.Conv2d(3, 4, 3)(np.zeros((1, 3, 8, 8), np.uint8))
    assert "x.float() / 255" in str(info.value) and "model.to(" not in str(info.value)


def test_channels_last_input_to_a_conv_is_recognised_as_such():
    with pytest.raises(ValueError, match=r"channels-last \(N, H, W, C\).*x\.permute\(0, 3, 1, 2\)"):
        nn.Conv2d(3, 8, 3)(np.zeros((2, 32, 32, 3), np.float32))
