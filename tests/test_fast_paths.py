"""The fast conv/pool paths (reused buffers, no padded copies, in-place pooling) give the
results of the plain paths and of torch, and buffer reuse never leaks one call into another:
not when the batch size, the dtype or the input's H and W change between calls on one
layer, not when two graphs are alive at once, not when a layer is used twice.

float64 agrees to 1e-10, float32 to 1e-4 (relative); float32 stays float32.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn
import minicnn.ops as F
from minicnn import nn
from minicnn.backend import to_numpy
from minicnn.ops import conv as conv_module
from minicnn.ops import conv_rows
from minicnn.ops import pool as pool_module
from minicnn.ops import parallel
from minicnn.ops import impl as impl_module

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-5)}


def close(actual, expected, dtype):
    actual = to_numpy(actual)
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else to_numpy(expected)
    assert actual.dtype == dtype, f"dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, **TOL[dtype])


def close_summed(actual, expected, dtype):
    """close(), with float32's absolute tolerance taken relative to the largest expected value: a sum
    of a few hundred float32 products near zero is off by about 1e-7 of the terms' size, not of its own."""
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    actual = to_numpy(actual)
    assert actual.dtype == dtype and actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(actual, expected, **tol)


def torch_grads(fn, arrays, dout):
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return out, [t.grad for t in leaves]


def fits(size, kernel, stride, padding, dilation=1):
    """The (dilated) kernel fits the padded input: at least one output pixel."""
    return size + 2 * padding - dilation * (kernel - 1) - 1 >= 0


def min_size(kernel, padding, dilation=1):
    return max(1, dilation * (kernel - 1) + 1 - 2 * padding)


def out_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@st.composite
def conv_geometries(draw):
    """A convolution's geometry and 2-4 input sizes (N, H, W) for it, each of which fits: only
    valid cases are drawn, so every example checks something. A size is often a sibling of the
    one before: the same N and output size OH x OW (so the same col shape) from another H or W,
    as 6x6 and 5x5 are for k=3, s=2, p=1: the case a workspace keyed by col's shape got wrong."""
    g = {"C": draw(st.integers(1, 3)), "OC": draw(st.integers(1, 4)),
         "KH": draw(st.integers(1, 4)), "KW": draw(st.integers(1, 4)),
         "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
         "padding": (draw(st.integers(0, 3)), draw(st.integers(0, 3))),
         "dilation": (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
         "dtype": draw(st.sampled_from([np.float64, np.float32])), "seed": draw(st.integers(0, 2**16))}
    axes = [(g["KH"], g["stride"][0], g["padding"][0], g["dilation"][0]),
            (g["KW"], g["stride"][1], g["padding"][1], g["dilation"][1])]
    ranges = [range(min_size(k, p, d), min_size(k, p, d) + 7) for k, s, p, d in axes]
    sizes = [(draw(st.integers(1, 3)), draw(st.sampled_from(ranges[0])), draw(st.sampled_from(ranges[1])))]
    for _ in range(draw(st.integers(1, 3))):
        N, *hw = sizes[-1]
        if draw(st.booleans()):  # a sibling: same N and output size, H and W drawn among those giving it
            same = [[n for n in ranges[i] if out_size(n, *axes[i]) == out_size(hw[i], *axes[i])] for i in (0, 1)]
            sizes.append((N, draw(st.sampled_from(same[0])), draw(st.sampled_from(same[1]))))
        else:
            sizes.append((draw(st.integers(1, 3)), draw(st.sampled_from(ranges[0])), draw(st.sampled_from(ranges[1]))))
    return g, sizes


@settings(max_examples=60)
@given(conv_geometries(), st.booleans())
def test_conv2d_fast_on_one_workspace_equals_plain_and_torch_while_h_and_w_change(case, keep_alive):
    """One workspace across calls of changing N, H, W: each call's output and gradients are those of
    the plain path and of torch. keep_alive: every cache stays alive until all forwards ran (the
    backwards then run newest first), so no two live caches may share a buffer."""
    g, sizes = case
    rng = np.random.default_rng(g["seed"])
    dtype = g["dtype"]
    w = rng.standard_normal((g["OC"], g["C"], g["KH"], g["KW"])).astype(dtype)
    b = rng.standard_normal(g["OC"]).astype(dtype)
    args = (g["stride"], g["padding"], g["dilation"])
    workspace = conv_module.Workspace()
    pending = []  # what each call's backward needs; its cache (and col) is dropped once checked
    for N, H, W in sizes:
        x = rng.standard_normal((N, g["C"], H, W)).astype(dtype)
        pending.append(check_conv_forward(x, w, b, args, workspace, rng, dtype))
        if not keep_alive:
            check_conv_backward(*pending.pop(), dtype)
    while pending:
        check_conv_backward(*pending.pop(), dtype)


def check_conv_forward(x, w, b, args, workspace, rng, dtype):
    out_fast, cache_fast = F.conv2d(x, w, b, *args, impl="fast", workspace=workspace)
    out_plain, cache_plain = F.conv2d(x, w, b, *args, impl="plain")
    dout = rng.standard_normal(out_plain.shape).astype(dtype)
    t_out, t_grads = torch_grads(lambda x_, w_, b_: TF.conv2d(x_, w_, b_, *args), [x, w, b], dout)
    close(out_fast, out_plain, dtype)
    close(out_fast, t_out, dtype)
    return dout, cache_fast, cache_plain, t_grads


def check_conv_backward(dout, cache_fast, cache_plain, t_grads, dtype):
    for g_fast, g_plain, g_torch in zip(F.conv2d_backward(dout, cache_fast), F.conv2d_backward(dout, cache_plain),
                                        t_grads):
        close(g_fast, g_plain, dtype)
        close(g_fast, g_torch, dtype)


@pytest.mark.parametrize("impl", ["plain", "fast"])
@settings(max_examples=25)
@given(conv_geometries())
def test_one_conv2d_layer_matches_torch_on_every_call_while_n_h_and_w_change(impl, case):
    g, sizes = case
    dtype = g["dtype"]
    minicnn.manual_seed(g["seed"])
    ours = nn.Conv2d(g["C"], g["OC"], (g["KH"], g["KW"]), g["stride"], g["padding"], g["dilation"], dtype=dtype)
    theirs = torch.nn.Conv2d(g["C"], g["OC"], (g["KH"], g["KW"]), g["stride"], g["padding"], g["dilation"]).double()
    theirs.load_state_dict({k: torch.tensor(v.numpy(), dtype=torch.float64) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(g["seed"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(impl_module, "IMPL", impl)
        for N, H, W in sizes:
            x = rng.standard_normal((N, g["C"], H, W)).astype(dtype)
            close_to_torch(ours, theirs, x, rng, dtype)


def close_to_torch(ours, theirs, x, rng, dtype):
    """One forward and backward through ours and theirs (fresh gradients): out, dx and every grad agree."""
    ours.zero_grad()
    theirs.zero_grad()
    xt = minicnn.tensor(x, requires_grad=True)
    out = ours(xt)
    dout = rng.standard_normal(tuple(out.shape)).astype(dtype)
    out.backward(minicnn.tensor(dout))
    t_x = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    t_out = theirs(t_x)
    t_out.backward(torch.tensor(dout, dtype=torch.float64))
    close(out, t_out, dtype)
    close(xt.grad, t_x.grad, dtype)
    t_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        close(p.grad, t_params[name].grad, dtype)


@pytest.mark.parametrize("impl", ["plain", "fast"])
def test_conv2d_k3_s2_p1_on_6x6_then_5x5_gives_the_plain_paths_numbers(impl, monkeypatch):
    """The regression: both sizes give a 3x3 output, so the old workspace handed the 5x5 call the
    6x6 call's col, whose last row and column held pixels where 5x5 has padding (off by ~0.16)."""
    monkeypatch.setattr(impl_module, "IMPL", impl)
    minicnn.manual_seed(0)
    layer = nn.Conv2d(2, 3, 3, stride=2, padding=1, dtype=np.float64)
    w, b = layer.weight.array, layer.bias.array
    rng = np.random.default_rng(0)
    for H in (6, 5, 6, 5):
        x = rng.standard_normal((2, 2, H, H))
        layer.zero_grad()
        out = layer(x)
        out.backward(minicnn.ones_like(out))
        expected, cache = F.conv2d(x, w, b, 2, 1, impl="plain")
        _, dw, db = F.conv2d_backward(np.ones_like(expected), cache)
        assert out.shape == (2, 3, 3, 3)
        close(out, expected, np.float64)
        close(layer.weight.grad, dw, np.float64)
        close(layer.bias.grad, db, np.float64)


def test_conv2d_workspace_follows_a_change_of_batch_size_and_dtype():
    rng = np.random.default_rng(0)
    workspace = conv_module.Workspace()
    for N, dtype in ((4, np.float32), (3, np.float32), (4, np.float64), (4, np.float32)):
        x = rng.standard_normal((N, 2, 7, 7)).astype(dtype)
        w = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
        out, cache = F.conv2d(x, w, None, 1, 1, impl="fast", workspace=workspace)
        close(out, F.conv2d(x, w, None, 1, 1, impl="plain")[0], dtype)
        dx, dw, db = F.conv2d_backward(np.ones_like(out), cache)
        assert db is None
        close(dx, F.conv2d_backward(np.ones_like(out), F.conv2d(x, w, None, 1, 1, impl="plain")[1])[0], dtype)


@pytest.mark.parametrize("workspace", [None, "one"])
def test_two_live_conv2d_caches_never_share_a_buffer(workspace):
    """Two forwards before their backwards (with or without a workspace): each cache keeps its own col."""
    workspace = conv_module.Workspace() if workspace else None
    rng = np.random.default_rng(1)
    w = rng.standard_normal((2, 1, 3, 3))
    x1, x2 = rng.standard_normal((2, 2, 1, 5, 5))
    F.conv2d(x1, w, None, 1, 1, impl="fast", workspace=workspace)  # its col comes back at once: ready to reuse
    out1, cache1 = F.conv2d(x1, w, None, 1, 1, impl="fast", workspace=workspace)
    out2, cache2 = F.conv2d(x2, w, None, 1, 1, impl="fast", workspace=workspace)
    dout = rng.standard_normal(out1.shape)
    for cache, x in ((cache1, x1), (cache2, x2)):
        dx, dw, db = F.conv2d_backward(dout, cache)
        want_dx, want_dw, _ = F.conv2d_backward(dout, F.conv2d(x, w, None, 1, 1, impl="plain")[1])
        assert db is None
        close(dx, want_dx, np.float64)
        close(dw, want_dw, np.float64)


@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("stride", [1, 2])  # stride 1: col2im on the padded grid or the rows; stride 2: by taps
@pytest.mark.parametrize("threads", [1, 3])  # 1: a workspace handed in; 3: each thread's own scratch
@pytest.mark.parametrize("rows", [False, True])  # stride 1 in ops.conv_rows's layout, or not
def test_a_scratch_buffer_holds_nothing_a_result_depends_on(padding, stride, threads, rows, monkeypatch):
    """Every cell of a scratch view is written by the call that reads it, and nothing returned is a
    view of scratch: NaN written over every scratch buffer before and after each call changes nothing
    (on 3 threads: over the scratch of every thread that runs image blocks). In the row layout dW
    never came out non-finite (which would have had it computed again by the taps, hiding a leak)."""
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((3, 2, 5, 6)), rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
    workspace = conv_module.Workspace() if threads == 1 else None
    minicnn.set_num_threads(threads)
    monkeypatch.setattr(parallel, "MIN_PRODUCT", 1)  # cut even this small convolution
    monkeypatch.setattr(conv_rows, "ROWS_WIDTH", 1 << 60 if rows else 0)
    row_dws = []
    real_dw_rows = conv_rows.dw_rows

    def dw_rows(*args):
        row_dws.append(real_dw_rows(*args))
        return row_dws[-1]
    monkeypatch.setattr(conv_rows, "dw_rows", dw_rows)

    def poison_one(space):
        for role in ("col", "dcol", "dout", "xpad", "dout_grid", "dxpad", "dout_rows"):
            space.get(role, (10_000,), x)[...] = np.nan

    def poison():
        if workspace is not None:
            poison_one(workspace)
        else:  # one part per thread: each poisons the scratch of the thread it runs on
            parallel.split(lambda i, j: poison_one(conv_module.scratch()), threads, x, k=threads)
    poison()
    out, cache = F.conv2d(x, w, b, stride, padding, impl="fast", workspace=workspace)
    assert cache[3] is x  # the cache keeps x, not col
    poison()
    dout = rng.standard_normal(out.shape[::-1]).transpose(3, 2, 1, 0)  # not laid out as out: the dout copy runs
    dx, dw, db = F.conv2d_backward(dout, cache)
    results = [a.copy() for a in (out, dx, dw, db)]
    poison()
    want_out, want_cache = F.conv2d(x, w, b, stride, padding, impl="plain")
    for got, kept, want in zip((out, dx, dw, db), results, (want_out,) + F.conv2d_backward(dout, want_cache)):
        np.testing.assert_array_equal(got, kept)  # the poison after the call did not reach the results
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert len(row_dws) == (threads if rows and stride == 1 else 0)  # one block a thread
    assert all(np.isfinite(d).all() for d in row_dws)


def test_one_workspace_shared_by_convolutions_of_different_padding_keeps_each_result_right():
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    workspace = conv_module.Workspace()
    # padding 1 on a 6x6 input and padding 0 on an 8x8 one give the same col shape
    x8 = rng.standard_normal((2, 3, 8, 8))
    F.conv2d(x, w, None, 1, 1, impl="fast", workspace=workspace)
    out, _ = F.conv2d(x8, w, None, 1, 0, impl="fast", workspace=workspace)
    again, _ = F.conv2d(x, w, None, 1, 1, impl="fast", workspace=workspace)
    np.testing.assert_allclose(out, F.conv2d(x8, w, None, 1, 0, impl="plain")[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(again, F.conv2d(x, w, None, 1, 1, impl="plain")[0], rtol=1e-12, atol=1e-12)


@st.composite
def pool_geometries(draw):
    """A pooling geometry (padding at most half the kernel) and 1-3 input sizes that fit it, laid
    out as NCHW or as conv2d's output is (CNHW), with many ties (as after a ReLU) or none."""
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, KH // 2)), draw(st.integers(0, KW // 2)))
    lo_h, lo_w = min_size(KH, padding[0]), min_size(KW, padding[1])
    sizes = draw(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(lo_h, lo_h + 6),
                                    st.integers(lo_w, lo_w + 6)), min_size=1, max_size=3))
    return {"kernel": (KH, KW), "stride": stride or (KH, KW), "padding": padding, "sizes": sizes,
            "seed": draw(st.integers(0, 2**16)), "dtype": draw(st.sampled_from([np.float64, np.float32])),
            "ties": draw(st.booleans()), "cnhw": draw(st.booleans())}


def pool_input(c, size, rng):
    N, C, H, W = size
    x = rng.standard_normal((C, N, H, W)).astype(c["dtype"]).transpose(1, 0, 2, 3)
    if c["ties"]:
        x = np.maximum(x, 0).round(1)
    return x if c["cnhw"] else np.ascontiguousarray(x)


@settings(max_examples=60)
@given(pool_geometries())
def test_max_pool2d_fast_equals_plain_and_torch_even_with_ties(c):
    rng = np.random.default_rng(c["seed"])
    args = (c["kernel"], c["stride"], c["padding"])
    for size in c["sizes"]:
        x = pool_input(c, size, rng)
        out_fast, cache_fast = F.max_pool2d(x, *args, impl="fast")
        out_plain, cache_plain = F.max_pool2d(x, *args, impl="plain")
        dout = rng.standard_normal(out_plain.shape).astype(c["dtype"])
        t_out, (t_dx,) = torch_grads(lambda x_: TF.max_pool2d(x_, *args), [x], dout)
        np.testing.assert_array_equal(out_fast, out_plain)
        close(out_fast, t_out, c["dtype"])
        dx_fast = F.max_pool2d_backward(dout, cache_fast)
        close(dx_fast, F.max_pool2d_backward(dout, cache_plain), c["dtype"])
        close(dx_fast, t_dx, c["dtype"])  # torch, too, sends a tie's gradient to the first maximum only


@settings(max_examples=80)
@given(c=pool_geometries(), kind=st.sampled_from(["finite", "nan", "-inf", "int"]), dilation=st.integers(1, 2),
       ceil_mode=st.booleans(), chunk=st.sampled_from([1, 40, 1 << 18]))
def test_max_pool2d_without_winners_gives_the_same_maxima_and_refuses_a_backward(c, kind, dilation, ceil_mode, chunk,
                                                                                   monkeypatch):
    """winners=False (inference) computes the maxima alone, rows then columns, the row maxima a few
    images at a time (chunk: pool.VALUES_CHUNK, from one image a time up): the same values as with
    the winners and as torch's (any kernel, stride, padding, dilation, ceil_mode), NaN propagating,
    -inf windows and integers too, laid out like x; the cache then refuses a backward and
    return_indices with a message naming what to do."""
    monkeypatch.setattr(pool_module, "VALUES_CHUNK", chunk)
    rng = np.random.default_rng(c["seed"])
    (KH, KW), (PH, PW) = c["kernel"], c["padding"]
    assume(all(H + 2 * PH > dilation * (KH - 1) and W + 2 * PW > dilation * (KW - 1) for _, _, H, W in c["sizes"]))
    args = (c["kernel"], c["stride"], c["padding"], dilation, ceil_mode)
    for size in c["sizes"]:
        x = pool_input(c, size, rng)
        if kind == "nan":
            x[tuple(rng.integers(0, n) for n in x.shape)] = np.nan
        elif kind == "-inf":
            x[..., :2, :] = -np.inf
        elif kind == "int":
            x = (x * 10).astype(np.int32)
        got, cache = F.max_pool2d(x, *args, impl="fast", winners=False)
        want, _ = F.max_pool2d(x, *args, impl="fast")
        np.testing.assert_array_equal(got, want)
        assert got.dtype == x.dtype and got.strides == want.strides
        if kind != "int":
            np.testing.assert_array_equal(got, TF.max_pool2d(torch.from_numpy(np.ascontiguousarray(x)), *args).numpy())
        with pytest.raises(ValueError, match=r"max_pool2d: its backward needs the winner.*winners=True"):
            F.max_pool2d_backward(np.ones_like(got), cache)
        with pytest.raises(ValueError, match=r"max_pool2d: return_indices needs the winner.*winners=True"):
            pool_module.max_pool2d_indices(cache)


def test_the_functional_max_pool_keeps_winners_exactly_where_a_backward_or_indices_can_follow(monkeypatch):
    """F.max_pool2d (and nn.MaxPool2d) ask for the winners when the input requires a gradient and
    grad mode is on, or when return_indices asks; an inference pass under no_grad does without."""
    import minicnn.nn.functional as NF
    asked = []
    real = pool_module.max_pool2d
    monkeypatch.setattr(F, "max_pool2d", lambda *a, winners=True, **k: asked.append(winners) or real(*a, winners=winners, **k))
    x = minicnn.randn(2, 3, 8, 8, requires_grad=True)
    out = NF.max_pool2d(x, 2)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy().sum(axis=(2, 3)), np.full((2, 3), 16.0))
    with minicnn.no_grad():
        NF.max_pool2d(x, 2)
        _, indices = NF.max_pool2d(x, 2, return_indices=True)
    NF.max_pool2d(x.detach(), 2)
    layer = nn.MaxPool2d(2).eval()
    with minicnn.no_grad():
        layer(x)
    assert asked == [True, False, True, False, False]
    assert indices.shape == (2, 3, 4, 4)


@settings(max_examples=60)
@given(pool_geometries(), st.booleans())
def test_avg_pool2d_fast_equals_plain_and_torch(c, count_include_pad):
    rng = np.random.default_rng(c["seed"])
    args = (c["kernel"], c["stride"], c["padding"], count_include_pad)
    for size in c["sizes"]:
        x = pool_input(c, size, rng)
        out_fast, cache_fast = F.avg_pool2d(x, *args, impl="fast")
        out_plain, cache_plain = F.avg_pool2d(x, *args, impl="plain")
        dout = rng.standard_normal(out_plain.shape).astype(c["dtype"])
        t_out, (t_dx,) = torch_grads(lambda x_: TF.avg_pool2d(x_, *args[:3], count_include_pad=count_include_pad),
                                     [x], dout)
        close(out_fast, out_plain, c["dtype"])
        close(out_fast, t_out, c["dtype"])
        dx_fast = F.avg_pool2d_backward(dout, cache_fast)
        close(dx_fast, F.avg_pool2d_backward(dout, cache_plain), c["dtype"])
        close(dx_fast, t_dx, c["dtype"])


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("kernel, stride, size", [(2, 2, 28), (2, 2, 10), (3, 3, 9), (2, 3, 8), (3, 2, 7)])
def test_a_pool_backward_writes_every_cell_of_a_gradient_it_does_not_zero_first(kind, kernel, stride, size, monkeypatch):
    """Where the windows tile x, the fast backward takes dx from empty_like, not zeros_like, and
    writes each cell: NaN in every fresh empty array changes nothing (fresh pages are zeros, so a
    cell left unwritten would pass unseen without the poison). The other geometries start from
    zeros: same check."""
    real = np.empty_like

    def poisoned(*args, **kwargs):
        a = real(*args, **kwargs)
        a.fill(np.nan if a.dtype.kind == "f" else 1)  # max pooling's masks too: they must be written as well
        return a
    monkeypatch.setattr(np, "empty_like", poisoned)
    x = np.random.default_rng(size).standard_normal((3, 2, size, size))
    forward, backward = {"max": (F.max_pool2d, F.max_pool2d_backward), "avg": (F.avg_pool2d, F.avg_pool2d_backward)}[kind]
    out, cache = forward(x, kernel, stride, impl="fast")
    dout = np.random.default_rng(1).standard_normal(out.shape)
    want = backward(dout, forward(x, kernel, stride, impl="plain")[1])
    np.testing.assert_allclose(backward(dout, cache), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=20)
@given(pool_geometries())
def test_one_pooling_layer_matches_torch_on_every_call_while_n_h_and_w_change(kind, c):
    kernel, stride, padding = c["kernel"], c["stride"], c["padding"]
    ours = (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(kernel, stride, padding)
    theirs = (torch.nn.MaxPool2d if kind == "max" else torch.nn.AvgPool2d)(kernel, stride, padding)
    rng = np.random.default_rng(c["seed"])
    for size in c["sizes"]:
        x = pool_input(c, size, rng)
        if c["ties"] and kind == "max":
            x = x + rng.permutation(x.size).reshape(x.shape).astype(x.dtype) * 1e-3  # no ties: dx is unique
        close_to_torch(ours, theirs, x, rng, c["dtype"])


def test_unknown_impl_is_refused_by_name():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="impl must be 'plain' or 'fast'"):
        F.conv2d(x, np.zeros((1, 1, 3, 3)), impl="quick")
    with pytest.raises(ValueError, match="max_pool2d: impl"):
        F.max_pool2d(x, 2, impl="quick")
    with pytest.raises(ValueError, match="avg_pool2d: impl"):
        F.avg_pool2d(x, 2, impl="quick")


# -- the layers: each Conv2d owns its workspace ---------------------------------------------------


def twin_convs(dtype):
    """conv - relu - maxpool - conv - avgpool, both convs of the same shape (so of the same buffer shapes)."""
    minicnn.seed(0)
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2, stride=1),
                        nn.Conv2d(3, 3, 3, padding=1, dtype=dtype), nn.AvgPool2d(2))
    return net


def torch_twin(net):
    T = torch.nn
    twin = T.Sequential(T.Conv2d(3, 3, 3, padding=1), T.ReLU(), T.MaxPool2d(2, stride=1), T.Conv2d(3, 3, 3, padding=1),
                        T.AvgPool2d(2)).double()
    twin.load_state_dict({k: torch.tensor(v.numpy(), dtype=torch.float64) for k, v in net.state_dict().items()})
    return twin


@pytest.fixture(params=["plain", "fast"])
def impl(request, monkeypatch):
    monkeypatch.setattr(impl_module, "IMPL", request.param)
    return request.param


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_conv_layers_of_one_shape_in_one_network_match_torch(impl, dtype):
    net = twin_convs(dtype)
    twin = torch_twin(net)
    rng = np.random.default_rng(2)
    for _ in range(2):  # the second step reuses the buffers of the first
        close_to_torch(net, twin, rng.standard_normal((2, 3, 8, 8)).astype(dtype), rng, dtype)


def test_two_forwards_then_two_backwards_give_each_forward_its_own_gradient(impl):
    net = twin_convs(np.float64)
    twin = torch_twin(net)
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((2, 2, 3, 8, 8))
    xt1, xt2 = minicnn.tensor(x1, requires_grad=True), minicnn.tensor(x2, requires_grad=True)
    out1 = net(xt1)
    kept = out1.array.copy()
    out2 = net(xt2)
    np.testing.assert_array_equal(out1.array, kept)  # outputs are never reused buffers
    for xt, x, out in ((xt1, x1, out1), (xt2, x2, out2)):  # the older graph first
        net.zero_grad()
        dout = rng.standard_normal(tuple(out.shape))
        out.backward(minicnn.tensor(dout))
        twin.zero_grad()
        t_x = torch.tensor(x, requires_grad=True)
        twin(t_x).backward(torch.tensor(dout))
        close(xt.grad, t_x.grad, np.float64)
        close(net[0].weight.grad, twin[0].weight.grad, np.float64)
        close(net[3].weight.grad, twin[3].weight.grad, np.float64)


def test_gradients_handed_out_are_not_overwritten_by_the_next_step(impl):
    net = twin_convs(np.float64)
    rng = np.random.default_rng(4)
    xt = minicnn.tensor(rng.standard_normal((2, 3, 8, 8)), requires_grad=True)
    out = net(xt)
    dout = rng.standard_normal(tuple(out.shape))
    out.backward(minicnn.tensor(dout))
    dx, dw = xt.grad.array, net[0].weight.grad.array
    kept_dx, kept_dw = dx.copy(), dw.copy()
    net.zero_grad()
    xt2 = minicnn.tensor(rng.standard_normal((2, 3, 8, 8)), requires_grad=True)
    net(xt2).backward(minicnn.tensor(-dout))
    np.testing.assert_array_equal(dx, kept_dx)
    np.testing.assert_array_equal(dw, kept_dw)


@pytest.mark.parametrize("make, torch_make", [
    (lambda: nn.Conv2d(2, 2, 3, padding=1, dtype=np.float64), lambda: torch.nn.Conv2d(2, 2, 3, padding=1)),
    (lambda: nn.MaxPool2d(3, stride=1, padding=1), lambda: torch.nn.MaxPool2d(3, stride=1, padding=1)),
    (lambda: nn.AvgPool2d(3, stride=1, padding=1), lambda: torch.nn.AvgPool2d(3, stride=1, padding=1)),
], ids=["Conv2d", "MaxPool2d", "AvgPool2d"])
def test_a_layer_used_twice_in_one_forward_pass_gets_the_sum_of_both_uses_gradients_like_torch(impl, make, torch_make):
    minicnn.manual_seed(0)
    layer = make()
    t_layer = torch_make().double()
    t_layer.load_state_dict({k: torch.tensor(v.numpy()) for k, v in layer.state_dict().items()})
    x = np.random.default_rng(5).permutation(50).reshape(1, 2, 5, 5) / 10 - 2.45  # no ties
    close_to_torch(nn.Sequential(layer, nn.Tanh(), layer), torch.nn.Sequential(t_layer, torch.nn.Tanh(), t_layer),
                   x, np.random.default_rng(6), np.float64)


def test_a_float32_training_step_stays_float32(impl):
    from minicnn import models, optim
    net, crit = models.lenet5(), nn.CrossEntropyLoss()
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x = np.random.default_rng(6).random((4, 1, 28, 28), dtype=np.float32)
    for _ in range(2):
        opt.zero_grad()
        logits = net(x)
        assert logits.dtype == np.float32
        loss = crit(logits, np.arange(4))
        assert loss.dtype == np.float32
        loss.backward()
        opt.step()
    assert all(p.dtype == np.float32 and p.grad.dtype == np.float32 for p in net.parameters())
    assert all(s["momentum_buffer"].dtype == np.float32 for s in opt.state.values())


# -- the depthwise convolution by phases (ops.conv_depthwise) ------------------------------------


@st.composite
def depthwise_geometries(draw):
    """A depthwise convolution (groups = C = OC) with any kernel, stride, dilation and padding,
    which may differ before and after each axis, on an input the dilated kernel fits."""
    C, N = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride, dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))), (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    H = max(1, dilation[0] * (KH - 1) + 1 - sum(pads[0])) + draw(st.integers(0, 6))
    W = max(1, dilation[1] * (KW - 1) + 1 - sum(pads[1])) + draw(st.integers(0, 6))
    return dict(shape=(N, C, H, W), kernel=(KH, KW), stride=stride, dilation=dilation, pads=pads,
                bias=draw(st.booleans()), input_grad=draw(st.booleans()), chunk=draw(st.sampled_from([1, 1 << 17])),
                threads=draw(st.sampled_from([1, 2])), dtype=draw(st.sampled_from([np.float64, np.float32])),
                seed=draw(st.integers(0, 2**16)))


@settings(max_examples=120, deadline=None)
@given(depthwise_geometries())
def test_depthwise_conv2d_by_phases_matches_torch_for_any_stride_dilation_and_padding(g):
    """Values and all three gradients against torch (the padding applied by TF.pad first, as torch's
    conv2d has no padding that differs before and after), with every scratch array of the phases
    path filled with NaN when made (a cell read before it is written would show), its channels one
    per chunk or all in one, on one thread or cut over two."""
    from minicnn.ops import conv_depthwise
    dtype, (N, C, H, W) = g["dtype"], g["shape"]
    rng = np.random.default_rng(g["seed"])
    x, w = rng.standard_normal(g["shape"]).astype(dtype), rng.standard_normal((C, 1, *g["kernel"])).astype(dtype)
    b = rng.standard_normal(C).astype(dtype) if g["bias"] else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_depthwise, "_empty", lambda xp, shape, dt: xp.full(shape, np.nan, dtype=dt))
        mp.setattr(conv_depthwise, "CHUNK", g["chunk"])
        mp.setattr(parallel, "MIN_PRODUCT", 1)  # cut even these small convolutions when on two threads
        minicnn.set_num_threads(g["threads"])
        try:
            out, cache = F.conv2d(x, w, b, g["stride"], g["pads"], g["dilation"], groups=C, impl="fast")
            dout = rng.standard_normal(out.shape).astype(dtype)
            dx, dw, db = F.conv2d_backward(dout, cache, input_grad=g["input_grad"])
        finally:
            minicnn.set_num_threads(2)
    (PT, PB), (PL, PR) = g["pads"]
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w) + ((b,) if g["bias"] else ())]
    t_out = TF.conv2d(TF.pad(leaves[0], (PL, PR, PT, PB)), leaves[1], leaves[2] if g["bias"] else None,
                      g["stride"], 0, g["dilation"], C)
    t_out.backward(torch.tensor(dout, dtype=torch.float64))
    close_summed(out, t_out, dtype)
    close_summed(dw, leaves[1].grad, dtype)
    if g["bias"]:
        close_summed(db, leaves[2].grad, dtype)
    else:
        assert db is None
    if g["input_grad"]:
        close_summed(dx, leaves[0].grad, dtype)
    else:
        assert dx is None


def _conv_layer_through_call_orders(C, kwargs, seed, sizes):
    """One Conv2d(C, C, 3, **kwargs) in a training loop's call orders, against torch: the batch and
    image size change (sizes), an eval-mode no_grad pass comes between two training steps, and the
    layer is used twice in one graph."""
    ours, theirs = nn.Conv2d(C, C, 3, **kwargs).double(), torch.nn.Conv2d(C, C, 3, **kwargs).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.array))
        theirs.bias.copy_(torch.from_numpy(ours.bias.array))
    rng = np.random.default_rng(seed)
    for N, H in sizes:
        x = rng.standard_normal((N, C, H, H))
        with minicnn.no_grad():
            ours.eval()
            close(ours(minicnn.tensor(x)).array, theirs(torch.tensor(x)), np.float64)
            ours.train()
        ours.zero_grad(), theirs.zero_grad()
        xo, xt = minicnn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        (ours(ours(xo)) ** 2).sum().backward()
        (theirs(theirs(xt)) ** 2).sum().backward()
        close(xo.grad.array, xt.grad, np.float64)
        close(ours.weight.grad.array, theirs.weight.grad, np.float64)
        close(ours.bias.grad.array, theirs.bias.grad, np.float64)


def test_a_depthwise_layer_matches_torch_while_sizes_change_eval_and_no_grad_come_between():
    _conv_layer_through_call_orders(4, dict(stride=2, padding=1, groups=4), 5, [(3, 9), (2, 16), (3, 9)])


# -- stride-1 convolution on shifted windows of the padded grid (ops.conv_shifted) -----------------


@st.composite
def shifted_geometries(draw):
    """A stride-1 convolution that conv_shifted takes (at least 16 input channels, no more output
    ones, outputs wider than conv_rows's), any kernel, dilation and padding before and after."""
    from minicnn.ops import conv_shifted
    C = draw(st.integers(conv_shifted.MIN_CHANNELS, conv_shifted.MIN_CHANNELS + 3))
    OC = C if draw(st.booleans()) else draw(st.integers(1, C))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    H = max(1, dilation[0] * (KH - 1) + 1 - sum(pads[0])) + draw(st.integers(0, 4))
    OW = conv_shifted.WIDEST_ROWS + 1 + draw(st.integers(0, 4))
    W = OW - 1 + dilation[1] * (KW - 1) + 1 - sum(pads[1])
    assume(W >= 1)
    return dict(shape=(draw(st.integers(1, 3)), C, H, W), OC=OC, kernel=(KH, KW), dilation=dilation, pads=pads,
                bias=draw(st.booleans()), input_grad=draw(st.booleans()), grid=draw(st.sampled_from([1, 1 << 16])),
                threads=draw(st.sampled_from([1, 2])), dtype=draw(st.sampled_from([np.float64, np.float32])),
                seed=draw(st.integers(0, 2**16)))


@settings(max_examples=80, deadline=None)
@given(shifted_geometries())
def test_conv2d_on_shifted_grid_windows_matches_torch_for_any_kernel_dilation_and_padding(g):
    """Values and all three gradients against torch (padding by TF.pad, as torch has no padding that
    differs before and after), every scratch array of the path NaN-filled when made, one image per
    block or many, on one thread or two; the path is taken (forward, dW, and dx where C == OC and
    no padding is wider than the kernel reaches)."""
    from minicnn.ops import conv_shifted
    dtype, (N, C, H, W), OC = g["dtype"], g["shape"], g["OC"]
    rng = np.random.default_rng(g["seed"])
    x, w = rng.standard_normal(g["shape"]).astype(dtype), rng.standard_normal((OC, C, *g["kernel"])).astype(dtype)
    b = rng.standard_normal(OC).astype(dtype) if g["bias"] else None
    calls = []
    real_conv, real_dw = conv_shifted.conv, conv_shifted.dw
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_shifted, "_empty", lambda xp, shape, dt: xp.full(shape, np.nan, dtype=dt))
        mp.setattr(conv_shifted, "GRID", g["grid"])
        mp.setattr(conv_shifted, "conv", lambda *a: (calls.append("conv"), real_conv(*a))[1])
        mp.setattr(conv_shifted, "dw", lambda *a: (calls.append("dw"), real_dw(*a))[1])
        mp.setattr(parallel, "MIN_PRODUCT", 1)
        minicnn.set_num_threads(g["threads"])
        try:
            out, cache = F.conv2d(x, w, b, 1, g["pads"], g["dilation"], impl="fast")
            dout = rng.standard_normal(out.shape).astype(dtype)
            dx, dw, db = F.conv2d_backward(dout, cache, input_grad=g["input_grad"])
        finally:
            minicnn.set_num_threads(2)
    (PT, PB), (PL, PR) = g["pads"]
    (KH, KW), (DH, DW) = g["kernel"], g["dilation"]
    full = min(DH * (KH - 1) - max(PT, PB), DW * (KW - 1) - max(PL, PR)) >= 0
    takes_backward = not g["input_grad"] or (full and OC == C)
    assert calls == ["conv"] + (["dw", "conv"] if g["input_grad"] else ["dw"]) * takes_backward
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w) + ((b,) if g["bias"] else ())]
    t_out = TF.conv2d(TF.pad(leaves[0], (PL, PR, PT, PB)), leaves[1], leaves[2] if g["bias"] else None,
                      1, 0, g["dilation"])
    t_out.backward(torch.tensor(dout, dtype=torch.float64))
    close_summed(out, t_out, dtype)
    close_summed(dw, leaves[1].grad, dtype)
    assert dw.flags.c_contiguous
    if g["bias"]:
        close_summed(db, leaves[2].grad, dtype)
    if g["input_grad"]:
        close_summed(dx, leaves[0].grad, dtype)
    else:
        assert dx is None


def test_an_inf_on_the_shifted_grid_gives_the_exact_paths_dw_not_nan():
    """An inf input in a cell that is no output pixel's tap meets dout's zero there: the shifted
    path's dW comes out NaN, and the exact path's dW (what plain im2col gives) is returned instead."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 16, 6, 12)), rng.standard_normal((16, 16, 3, 3))
    x[0, 3, 2, 11] = np.inf  # the last column: with padding 0, no output's tap (i, 0) or (i, 1) reads it
    out, cache = F.conv2d(x, w, None, 1, 0, impl="fast")
    dout = rng.standard_normal(out.shape)
    got = F.conv2d_backward(dout, cache)
    want_out, want_cache = F.conv2d(x, w, None, 1, 0, impl="plain")
    want = F.conv2d_backward(dout, want_cache)
    np.testing.assert_array_equal(np.isfinite(got[1]), np.isfinite(want[1]))
    np.testing.assert_allclose(got[1][np.isfinite(want[1])], want[1][np.isfinite(want[1])], rtol=1e-10)


def test_a_resnet_sized_conv_layer_matches_torch_while_sizes_change_eval_and_no_grad_come_between():
    """16 -> 16 channels, 3 x 3, padding 1: the shifted path."""
    _conv_layer_through_call_orders(16, dict(padding=1), 6, [(3, 12), (5, 10), (3, 12)])


def test_shifted_dw_on_two_threads_sums_every_image_when_one_block_would_hold_them_all(monkeypatch):
    """Three small images fit one grid block; cut over two threads, each thread must still get a
    block of its own and its sum be kept (an empty second part once overwrote the first's dW with
    zeros, now and then). Repeated, since it was a race."""
    from minicnn.ops import conv_shifted
    monkeypatch.setattr(parallel, "MIN_PRODUCT", 1)
    minicnn.set_num_threads(2)
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((3, 16, 3, 9)), rng.standard_normal((4, 16, 3, 1))
    assert len(conv_shifted._blocks(3, 16, 8 * 12, 1)) == 1 and len(conv_shifted._blocks(3, 16, 8 * 12, 2)) == 2
    out, cache = F.conv2d(x, w, None, 1, ((2, 3), (3, 2)), (1, 2), impl="fast")
    dout = rng.standard_normal(out.shape)
    t_x, t_w = torch.tensor(x), torch.tensor(w, requires_grad=True)
    TF.conv2d(TF.pad(t_x, (3, 2, 2, 3)), t_w, None, 1, 0, (1, 2)).backward(torch.tensor(dout))
    for _ in range(30):
        _, dw, _ = F.conv2d_backward(dout, cache, input_grad=False)
        close(dw, t_w.grad, np.float64)
