"""The call orders real programs use give the numbers of a fresh computation.

A training loop is rarely forward-backward-step and nothing else: it evaluates between steps,
prints a summary or a trace between the forward and the backward, feeds a layer inputs of
several sizes, uses a layer twice, copies the model, ties weights, freezes layers. Each test
below is one such order, checked against a freshly built identical model (bit for bit, where
both run the same code) or against torch doing the same (float64, to 1e-10).
"""

import copy

import numpy as np
import pytest
import torch

import minicnn
from minicnn import models, nn, optim
from minicnn.ops import conv as conv_module
from minicnn.ops import impl as impl_module

T = torch.nn
TOL = dict(rtol=1e-10, atol=1e-12)


def small_net(lib):
    """conv(stride 2, pad 1) - relu - maxpool(overlapping) - conv - tanh - global pool - linear:
    any input of 5x5 or more works, so that one network sees several H, W."""
    return lib.Sequential(lib.Conv2d(2, 4, 3, stride=2, padding=1), lib.ReLU(), lib.MaxPool2d(2, stride=1),
                          lib.Conv2d(4, 5, 3, padding=1), lib.Tanh(), lib.AdaptiveAvgPool2d(1), lib.Flatten(),
                          lib.Linear(5, 3))


def twin(ours, theirs):
    """theirs with ours' weights, float64."""
    theirs.double().load_state_dict({k: torch.tensor(v.numpy(), dtype=torch.float64)
                                     for k, v in ours.state_dict().items()})
    return theirs


def built(seed=0, dtype=np.float64):
    minicnn.manual_seed(seed)
    ours = small_net(nn).to(dtype)
    return ours, twin(ours, small_net(T))


def grads(net):
    return {name: p.grad.numpy().copy() for name, p in net.named_parameters()}


def values(net):
    return {name: p.detach().numpy().copy() for name, p in net.named_parameters()}


def assert_same(a, b):
    """Bit-identical dicts of arrays."""
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def assert_like_torch(ours, theirs, what="grad"):
    t_params = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(t_params)
    for name, p in ours.named_parameters():
        mine = p.grad.numpy() if what == "grad" else p.detach().numpy()
        other = t_params[name].grad if what == "grad" else t_params[name].detach()
        np.testing.assert_allclose(mine, other.numpy(), **TOL, err_msg=f"{name}.{what}")


def batch(rng, N, H, W, C=2, classes=3):
    return rng.standard_normal((N, C, H, W)), rng.integers(0, classes, N)


def warmed_up(net, rng, sizes=((4, 6, 6),)):
    """net after forward-backward passes on batches of these sizes (mid-training: the workspaces
    hold buffers to hand out again), its weights unchanged and its gradients cleared."""
    for N, H, W in sizes:
        x, y = batch(rng, N, H, W, C=net[0].in_channels)
        nn.CrossEntropyLoss()(net(x.astype(net[0].weight.dtype)), y).backward()
    net.zero_grad()
    return net


# -- 1. different input sizes on one layer, alternating ----------------------------------------


def test_alternating_input_sizes_on_one_network_give_the_plain_paths_and_torchs_numbers(monkeypatch):
    """6x6 and 5x5 give the first conv (k=3, s=2, p=1) the same 3x3 output: the stale-workspace
    case. Each step of the fast-path model equals the plain-path model's and torch's."""
    fast, theirs = built()
    plain = copy.deepcopy(fast)
    opt_fast, opt_plain = optim.SGD(fast.parameters(), lr=0.1), optim.SGD(plain.parameters(), lr=0.1)
    t_opt = torch.optim.SGD(theirs.parameters(), lr=0.1)
    crit = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    for N, H, W in [(4, 6, 6), (4, 5, 5), (3, 7, 5), (4, 6, 6), (4, 5, 5), (2, 5, 6)]:
        x, y = batch(rng, N, H, W)
        dx = {}
        for net, opt, impl in ((fast, opt_fast, "fast"), (plain, opt_plain, "plain")):
            monkeypatch.setattr(impl_module, "IMPL", impl)
            opt.zero_grad()
            xt = minicnn.tensor(x, requires_grad=True)
            loss = crit(net(xt), y)
            loss.backward()
            dx[impl] = xt.grad.numpy()
            opt.step()
        t_opt.zero_grad()
        t_x = torch.tensor(x, requires_grad=True)
        T.CrossEntropyLoss()(theirs(t_x), torch.tensor(y)).backward()
        t_opt.step()
        for net, impl in ((fast, "fast"), (plain, "plain")):
            assert_like_torch(net, theirs, "grad")
            assert_like_torch(net, theirs, "value")
            np.testing.assert_allclose(dx[impl], t_x.grad.numpy(), **TOL)


# -- 2. evaluation between training steps ------------------------------------------------------


def with_dropout(lib):
    return lib.Sequential(lib.Conv2d(2, 4, 3, stride=2, padding=1), lib.ReLU(), lib.Dropout(0.3),
                          lib.Conv2d(4, 3, 3, padding=1), lib.AdaptiveAvgPool2d(1), lib.Flatten())


@pytest.mark.parametrize("grad_mode", ["no_grad", "recording"])
def test_evaluating_between_training_steps_changes_nothing_in_the_training(grad_mode):
    """A model evaluated between its steps (same batch size, and other sizes and H, W) trains
    exactly as its untouched twin; the evaluations equal a fresh model's at the same weights."""
    minicnn.manual_seed(0)
    evaluated = with_dropout(nn)
    untouched = copy.deepcopy(evaluated)
    opts = [optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (evaluated, untouched)]
    crit = nn.CrossEntropyLoss()
    rng = np.random.default_rng(1)
    steps = [batch(rng, 4, 6, 6) for _ in range(4)]
    # first a sibling of the training size (5x5: the same col shape for the first conv), then others
    evals = [batch(rng, 4, 5, 5)[0], batch(rng, 4, 6, 6)[0], batch(rng, 7, 5, 5)[0], batch(rng, 1, 6, 6)[0]]
    for net, opt in zip((evaluated, untouched), opts):
        minicnn.manual_seed(1)  # the same dropout masks for both
        for x, y in steps:
            opt.zero_grad()
            crit(net(x.astype(np.float32)), y).backward()
            opt.step()
            if net is evaluated:
                net.eval()
                for xe in evals:
                    xe = xe.astype(np.float32)
                    if grad_mode == "no_grad":
                        with minicnn.no_grad():
                            out = net(xe)
                    else:
                        out = net(xe)
                        assert out.grad_fn is not None  # recorded, never backwarded: dropped with out
                    fresh = copy.deepcopy(net)  # same weights, empty workspaces
                    with minicnn.no_grad():
                        np.testing.assert_array_equal(out.detach().numpy(), fresh(xe).numpy())
                    del out  # as a loop drops each batch's output
                net.train()
    assert_same(values(evaluated), values(untouched))
    assert_same(grads(evaluated), grads(untouched))


# -- 3. inspection between forward and backward ------------------------------------------------


def lenet_like(lib):
    return lib.Sequential(lib.Conv2d(1, 4, 3, padding=1), lib.ReLU(), lib.MaxPool2d(2),
                          lib.Conv2d(4, 6, 3), lib.Tanh(), lib.AvgPool2d(2), lib.Flatten(), lib.Linear(24, 3))


def inspect(net, x, what):
    if what == "trace":
        minicnn.trace(net, x.shape, print=False)
    elif what == "summary":
        minicnn.summary(net, x.shape, print=False)
    else:
        first_two = nn.Sequential(*list(net.children())[:4])(x[:2])  # the maps of a few images
        assert tuple(first_two.shape) == (2, 6, 4, 4)
        maps = nn.Sequential(*list(net.children())[:4])(x)  # and of the whole batch
        assert tuple(maps.shape) == (5, 6, 4, 4)


@pytest.mark.parametrize("order", [("trace", "summary", "feature maps"), ("feature maps", "summary", "trace")],
                         ids=", ".join)
def test_trace_summary_and_feature_maps_between_forward_and_backward_leave_the_gradients_bit_identical(order):
    minicnn.manual_seed(0)
    inspected = lenet_like(nn)
    reference = copy.deepcopy(inspected)
    crit = nn.CrossEntropyLoss()
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 1, 12, 12)).astype(np.float32), rng.integers(0, 3, 5)
    warmed_up(inspected, rng, [(5, 12, 12)])  # mid-training: the workspaces hold buffers to hand out

    loss_ref = crit(reference(x), y)
    loss_ref.backward()

    out = inspected(x)
    for what in order:
        inspect(inspected, x, what)
    assert all(p.grad is None for p in inspected.parameters())  # the inspections left no gradient
    loss = crit(out, y)
    loss.backward()

    assert loss.item() == loss_ref.item()
    assert_same(grads(inspected), grads(reference))
    # and that is the right gradient: torch's, at the same weights
    theirs = twin(reference, lenet_like(T))
    T.CrossEntropyLoss()(theirs(torch.tensor(x, dtype=torch.float64)), torch.tensor(y)).backward()
    t_params = dict(theirs.named_parameters())
    for name, p in inspected.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), rtol=1e-4, atol=1e-5)


# -- 4. another forward between a loss and its backward ----------------------------------------


@pytest.mark.parametrize("xb_shape", [(4, 2, 6, 6), (3, 2, 5, 5)], ids=["same shape", "other shape"])
def test_a_forward_on_another_batch_between_loss_and_backward_leaves_the_first_batchs_gradients(xb_shape):
    ours, theirs = built()
    reference = copy.deepcopy(ours)
    crit = nn.CrossEntropyLoss()
    rng = np.random.default_rng(3)
    warmed_up(ours, rng, [(4, 6, 6), xb_shape[:1] + xb_shape[2:]])
    xa, y = batch(rng, 4, 6, 6)
    xb = rng.standard_normal(xb_shape)

    loss = crit(ours(xa), y)
    ours(xb)  # e.g. a validation batch, a visualisation
    loss.backward()

    crit(reference(xa), y).backward()
    assert_same(grads(ours), grads(reference))
    T.CrossEntropyLoss()(theirs(torch.tensor(xa)), torch.tensor(y)).backward()
    assert_like_torch(ours, theirs)


# -- 5. a layer used twice; two graphs alive at once -------------------------------------------


def shared_block(lib):
    conv = lib.Conv2d(3, 3, 3, padding=1)
    fc = lib.Linear(3, 3)
    return lib.Sequential(conv, lib.Tanh(), conv, lib.ReLU(), lib.AdaptiveAvgPool2d(1), lib.Flatten(), fc, lib.Tanh(),
                          fc)


def test_a_layer_used_twice_in_one_forward_gets_the_sum_of_both_uses_gradients_like_torch():
    minicnn.manual_seed(0)
    ours = shared_block(nn).double()
    theirs = twin(ours, shared_block(T))
    assert len(list(ours.parameters())) == len(list(theirs.parameters())) == 4
    rng = np.random.default_rng(4)
    warmed_up(ours, rng, [(2, 5, 5)])
    x, y = batch(rng, 2, 5, 5, C=3)
    xt = minicnn.tensor(x, requires_grad=True)
    nn.CrossEntropyLoss()(ours(xt), y).backward()
    t_x = torch.tensor(x, requires_grad=True)
    T.CrossEntropyLoss()(theirs(t_x), torch.tensor(y)).backward()
    assert_like_torch(ours, theirs)
    np.testing.assert_allclose(xt.grad.numpy(), t_x.grad.numpy(), **TOL)


@pytest.mark.parametrize("order", ["newest first", "oldest first", "retain, then both"])
def test_two_forwards_then_two_backwards_in_either_order_accumulate_torchs_gradients(order):
    ours, theirs = built()
    rng = np.random.default_rng(5)
    warmed_up(ours, rng, [(4, 6, 6), (4, 6, 6)])
    (x1, y1), (x2, y2) = batch(rng, 4, 6, 6), batch(rng, 4, 6, 6)  # same sizes: each cache keeps its own x
    for lib, net, tensor in ((nn, ours, minicnn.tensor), (T, theirs, torch.tensor)):
        loss1 = lib.CrossEntropyLoss()(net(tensor(x1)), tensor(y1))
        loss2 = lib.CrossEntropyLoss()(net(tensor(x2)), tensor(y2))
        if order == "newest first":
            loss2.backward()
            loss1.backward()
        elif order == "oldest first":
            loss1.backward()
            loss2.backward()
        else:
            loss1.backward(retain_graph=True)
            loss2.backward()
            loss1.backward()  # its graph was kept: a second backward adds g1 again
    assert_like_torch(ours, theirs)


# -- 6. a copy of the model mid-training -------------------------------------------------------


@pytest.mark.parametrize("when", ["between steps", "between forward and backward"])
def test_a_deepcopy_of_the_model_and_optimizer_mid_training_continues_exactly_as_the_original(when):
    ours, _ = built()
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    rng = np.random.default_rng(6)
    data = [batch(rng, 4, 6, 6) for _ in range(5)]
    for x, y in data[:2]:
        opt.zero_grad()
        crit(ours(x), y).backward()
        opt.step()
    opt.zero_grad()
    x, y = data[2]
    loss = crit(ours(x), y)
    if when == "between steps":
        loss.backward()
        opt.step()
        copied, copied_opt = copy.deepcopy((ours, opt))
    else:
        copied, copied_opt = copy.deepcopy((ours, opt))  # the live graph belongs to the original alone
        loss.backward()
        assert all(p.grad is None for p in copied.parameters())
        opt.step()
        crit(copied(x), y).backward()  # the copy takes the same step on its own
        copied_opt.step()
    assert_same(values(copied), values(ours))
    for x, y in data[3:]:
        for net, o in ((ours, opt), (copied, copied_opt)):
            o.zero_grad()
            crit(net(x), y).backward()
            o.step()
    assert_same(values(copied), values(ours))
    assert_same(grads(copied), grads(ours))
    assert all(p is not q and not np.shares_memory(p.array, q.array)
               for p, q in zip(ours.parameters(), copied.parameters()))


# -- 7. tied weights, and one layer under two names --------------------------------------------


def tied(lib):
    class Tied(lib.Module):
        def __init__(self):
            super().__init__()
            self.conv = lib.Conv2d(2, 2, 3, padding=1)
            self.again = self.conv  # the same layer, reachable under a second name
            self.fc = lib.Linear(2 * 4 * 4, 6)
            self.a = lib.Linear(6, 6)
            self.b = lib.Linear(6, 6)
            self.b.weight = self.a.weight  # tied weights, biases apart

        def forward(self, x):
            x = self.again(self.conv(x).tanh()).relu()
            return self.b(self.a(self.fc(x.flatten(1))).tanh())

    return Tied()


def test_tied_weights_and_a_layer_under_two_names_are_listed_counted_and_stepped_once_like_torch():
    minicnn.manual_seed(0)
    ours = tied(nn).double()
    theirs = twin(ours, tied(T))
    names = [n for n, _ in ours.named_parameters()]
    assert names == [n for n, _ in theirs.named_parameters()]
    assert len(names) == len({id(p) for p in ours.parameters()}) == 7
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters()) == 2 * 18 + 2 + 32 * 6 + 6 + 36 + 12
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    t_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    x, y = batch(np.random.default_rng(7), 3, 4, 4, classes=6)
    for _ in range(2):
        opt.zero_grad()
        t_opt.zero_grad()
        nn.CrossEntropyLoss()(ours(x), y).backward()
        T.CrossEntropyLoss()(theirs(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
        t_opt.step()
        assert_like_torch(ours, theirs, "grad")
        assert_like_torch(ours, theirs, "value")
    assert ours.b.weight is ours.a.weight and ours.again is ours.conv


# -- 8. a gradient of the wrong dtype or shape -------------------------------------------------


def test_a_float64_gradient_for_a_float32_network_is_a_clear_type_error_and_leaves_no_gradient():
    net = models.lenet5()
    out = net(np.random.default_rng(8).random((2, 1, 28, 28), dtype=np.float32))
    for g in (np.ones((2, 10)), minicnn.ones(2, 10, dtype=minicnn.float64)):
        with pytest.raises(TypeError, match=r"gradient is float64 but the tensor .* is float32.*no silent promotion"):
            out.backward(g)
    with pytest.raises(RuntimeError, match=r"gradient has shape \(10,\) but the tensor .* has shape \(2, 10\)"):
        out.backward(minicnn.ones(10))  # broadcastable, but not the tensor's shape: refused, as torch
    with pytest.raises(RuntimeError, match=r"gradient has shape \(2, 3\) but the tensor .* has shape \(2, 10\)"):
        out.backward(minicnn.ones(2, 3))
    assert all(p.grad is None for p in net.parameters())
    out.backward(minicnn.ones(2, 10))  # the graph is intact: the right gradient still goes through
    assert all(p.grad.dtype == np.float32 for p in net.parameters())


# -- 9. frozen parameters ----------------------------------------------------------------------


@pytest.mark.parametrize("make_opt", [
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1)),
    (lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1), lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1)),
], ids=["SGD", "Adam"])
def test_frozen_parameters_get_no_gradient_and_are_not_stepped_like_torch(make_opt):
    ours, theirs = built()
    frozen = {"0.weight", "7.weight", "7.bias"}
    for net in (ours, theirs):
        net[0].weight.requires_grad_(False)  # one Parameter
        net[7].requires_grad_(False)  # a whole module
    before = values(ours)
    opt, t_opt = make_opt[0](ours.parameters()), make_opt[1](theirs.parameters())
    x, y = batch(np.random.default_rng(9), 4, 6, 6)
    for _ in range(2):
        opt.zero_grad()
        t_opt.zero_grad()
        nn.CrossEntropyLoss()(ours(x), y).backward()
        T.CrossEntropyLoss()(theirs(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
        t_opt.step()
    for name, p in ours.named_parameters():
        if name in frozen:
            assert p.grad is None and not p.requires_grad, name
            np.testing.assert_array_equal(p.detach().numpy(), before[name], err_msg=name)
        else:
            assert not np.array_equal(p.detach().numpy(), before[name]), name
    assert_like_torch(ours, theirs, "value")
    ours[7].requires_grad_(True)  # unfrozen, it trains again
    nn.CrossEntropyLoss()(ours(x), y).backward()
    assert ours[7].weight.grad is not None and ours[0].weight.grad is None


# -- 10. memory ----------------------------------------------------------------------------------


def layer_buffer_bytes(net):
    """Bytes of arrays a layer holds beyond its parameters and buffers (none: convolutions use scratch)."""
    known = {id(a.array) for a in list(net.parameters()) + list(net.buffers())}
    held = (v.array if isinstance(v, minicnn.Tensor) else v for m in net.modules() for v in vars(m).values())
    return sum(a.nbytes for a in held if hasattr(a, "nbytes") and hasattr(a, "dtype") and id(a) not in known)


def test_no_layer_keeps_a_buffer_the_scratch_does_not_grow_with_the_batch_and_the_graph_keeps_x_not_col(monkeypatch):
    """The fast conv works image block by image block (ops.conv.CHUNK values of col at most, or one
    image's): its scratch is the same after 1,000 images as after as many as fill one block.
    (On one thread: with more, each thread has a scratch of its own, as test_parallel checks.)"""
    minicnn.set_num_threads(1)
    monkeypatch.setattr(conv_module, "CHUNK", 25 * 28 * 28 * 20)  # 20 images of LeNet-5's first conv a block
    minicnn.manual_seed(0)
    net = models.lenet5()
    images = np.random.default_rng(10).random((1000, 1, 28, 28), dtype=np.float32)
    scratch = conv_module.scratch()
    sizes = []
    for n in (20, 1000, 20):
        scratch.clear()
        with minicnn.no_grad():
            out = net(images[:n])
        assert out.grad_fn is None and not out.requires_grad
        sizes.append(scratch.nbytes())
    assert layer_buffer_bytes(net) == 0
    # one block's col (20 images x 25 x 28 x 28) and its padded input (20 x 32 x 32), float32
    assert sizes == [4 * (20 * 25 * 28 * 28 + 20 * 32 * 32)] * 3
    scratch.clear()  # given back on request
    assert scratch.nbytes() == 0

    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    held = []
    for step in range(4):
        opt.zero_grad()
        x = minicnn.tensor(images[64 * step:64 * (step + 1)])
        out = net(x)
        first = out.grad_fn
        while first.inputs[0] is not x:  # back to the first conv's node: its cache keeps the input itself
            first = next(e for e in first.inputs if isinstance(e, type(first)))
        assert first.op == "conv2d" and first.cache[3] is x.array
        crit(out, np.arange(64) % 10).backward()
        opt.step()
        held.append(scratch.nbytes())
        assert layer_buffer_bytes(net) == 0
    assert held == [held[0]] * 4, "the scratch grew from step to step"
    # col, xpad, and the backward's dout_grid, dcol and dxpad, each at most one block's
    assert 4 * 20 * 25 * 28 * 28 <= held[0] <= 5 * 4 * 20 * 25 * 28 * 28


def test_an_evaluation_in_eval_mode_with_gradients_on_changes_no_gradient_after_it():
    minicnn.manual_seed(0)
    net = models.lenet5()
    images = np.random.default_rng(11).random((500, 1, 28, 28), dtype=np.float32)
    crit = nn.CrossEntropyLoss()
    crit(net(images[:16]), np.arange(16) % 10).backward()
    net.eval()
    out = net(images)  # recorded (gradients are on), as a user who forgot no_grad would do
    assert out.requires_grad
    del out
    net.train()
    fresh = models.lenet5()
    fresh.load_state_dict(net.state_dict())
    for model in (net, fresh):
        model.zero_grad()
        crit(model(images[:16]), np.arange(16) % 10).backward()
    for p, q in zip(net.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(p.grad.array, q.grad.array)


def test_an_unbatched_image_goes_through_conv_and_pooling_as_in_torch():
    minicnn.manual_seed(0)
    conv, pool = nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2)
    tconv = torch.nn.Conv2d(3, 4, 3, padding=1)
    tconv.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in conv.state_dict().items()})
    x = np.random.default_rng(12).standard_normal((3, 6, 6)).astype(np.float32)
    out = pool(conv(minicnn.tensor(x)))
    expected = torch.nn.MaxPool2d(2)(tconv(torch.from_numpy(x)))
    assert tuple(out.shape) == tuple(expected.shape) == (4, 3, 3)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-6)


# -- 11. optimizer state -----------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.Adam(ps, lr=0.01)],
                         ids=["SGD", "Adam"])
def test_optimizer_state_dict_and_load_state_dict_copy_the_state(make):
    net, _ = built()
    opt = make(net.parameters())
    x, y = batch(np.random.default_rng(11), 4, 6, 6)

    def step(o):
        o.zero_grad()
        nn.CrossEntropyLoss()(net(x), y).backward()
        o.step()

    step(opt)
    saved = opt.state_dict()
    kept = copy.deepcopy(saved)
    step(opt)  # the running optimizer does not write into a state_dict it handed out
    resumed = make(net.parameters())
    resumed.load_state_dict(saved)
    step(resumed)  # nor does an optimizer write into the state_dict it loaded
    for index, buffers in kept["state"].items():
        for key, value in buffers.items():
            np.testing.assert_array_equal(np.asarray(saved["state"][index][key]), np.asarray(value),
                                          err_msg=f"{index}.{key}")
    for buffers in saved["state"].values():  # and changing that state_dict changes nothing loaded
        for value in buffers.values():
            if isinstance(value, minicnn.Tensor):
                value.array[...] = np.nan
    assert all(np.isfinite(np.asarray(v)).all() for s in resumed.state.values() for v in s.values()
               if isinstance(v, minicnn.Tensor))
