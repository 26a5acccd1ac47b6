"""ops.conv_rows: the fast conv's stride-1 im2col on the padded rows (forward, dW, and dx as the
full correlation of dout) gives the plain path's numbers and torch's, in float64 by finite
differences too; it is chosen where conv_rows.rows_pay says; and an inf or NaN input that meets
a dropped column does not leak into dW."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import minicnn
import minicnn.ops as F
from minicnn.gradcheck import gradcheck
from minicnn.ops import conv_rows

TOL = dict(rtol=1e-10, atol=1e-10)  # float64


@pytest.fixture
def calls(monkeypatch):
    """Count the row-layout im2cols, by what they are of: 'x' (forward and dW) or 'dout' (dx)."""
    seen = {"x": 0, "dout": 0}
    real = conv_rows.im2col_rows

    def counted(src_t, *args, roles=("xpad", "col"), **kwargs):
        seen["dout" if roles[0] == "dout_grid" else "x"] += 1
        return real(src_t, *args, roles=roles, **kwargs)
    monkeypatch.setattr(conv_rows, "im2col_rows", counted)
    return seen


def torch_conv(x, w, b, pads, dilation, groups, dout):
    """torch's output and gradients (x, w, b) of the convolution with padding ((PT, PB), (PL, PR))."""
    leaves = [torch.tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
    (PT, PB), (PL, PR) = pads
    out = TF.conv2d(TF.pad(leaves[0], (PL, PR, PT, PB)), leaves[1], leaves[2], dilation=dilation, groups=groups)
    out.backward(torch.tensor(dout))
    return [out.detach().numpy()] + [t.grad.numpy() if t is not None else None for t in leaves]


@st.composite
def rows_cases(draw):
    """A stride-1 convolution, its padding side by side, that the row layout takes (at most half
    again as many columns as outputs): every drawn case runs it."""
    G = draw(st.integers(1, 2))
    C, OC = G * draw(st.integers(1, 3)), G * draw(st.integers(1, 3))
    assume(not (G > 1 and C == OC == G))  # depthwise goes by phases instead (ops.conv_depthwise)
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    DH, DW = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    OH, OW = H + sum(pads[0]) - DH * (KH - 1), W + sum(pads[1]) - DW * (KW - 1)
    assume(OH >= 1 and OW >= 1 and 2 * (W + sum(pads[1])) <= 3 * OW)
    return dict(N=draw(st.integers(1, 3)), C=C, OC=OC, K=(KH, KW), dilation=(DH, DW), pads=pads, H=H, W=W, G=G,
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@settings(max_examples=150, deadline=None)
@given(rows_cases())
def test_the_row_layout_gives_the_plain_paths_and_torchs_output_and_gradients(calls, monkeypatch, case):
    monkeypatch.setattr(conv_rows, "ROWS_WIDTH", 1 << 60)  # wherever it applies, whatever it costs
    calls["x"] = calls["dout"] = 0  # the fixture outlives one drawn example
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["N"], case["C"], case["H"], case["W"]))
    w = rng.standard_normal((case["OC"], case["C"] // case["G"]) + case["K"])
    b = rng.standard_normal(case["OC"]) if case["bias"] else None
    args = (1, case["pads"], case["dilation"], case["G"])
    out, cache = F.conv2d(x, w, b, *args, impl="fast")
    dout = rng.standard_normal(out.shape)
    got = [out, *F.conv2d_backward(dout, cache)]
    assert calls["x"] == 2  # the forward's col, and dW's
    # dx as a correlation: without groups, where no padding is wider than the kernel reaches
    (KH, KW), (DH, DW), ((PT, PB), (PL, PR)) = case["K"], case["dilation"], case["pads"]
    full = min(DH * (KH - 1) - max(PT, PB), DW * (KW - 1) - max(PL, PR)) >= 0
    # ... where dout's col has no more rows than x's (OC <= C), and where dout padded that way
    # (W + DW*(KW - 1) columns) is at most half again as wide as dx
    takes_dx = case["G"] == 1 and full and case["OC"] <= case["C"] and 2 * (case["W"] + DW * (KW - 1)) <= 3 * case["W"]
    assert calls["dout"] == takes_dx
    event(f"dx as a correlation: {takes_dx}")
    plain_out, plain_cache = F.conv2d(x, w, b, *args, impl="plain")
    want = [plain_out, *F.conv2d_backward(dout, plain_cache)]
    theirs = torch_conv(x, w, b, case["pads"], case["dilation"], case["G"], dout)
    for name, g, p, t in zip(("out", "dx", "dw", "db"), got, want, theirs):
        if p is None:
            assert g is None and t is None, name
            continue
        np.testing.assert_allclose(g, p, **TOL, err_msg=name)
        np.testing.assert_allclose(g, t, **TOL, err_msg=name)


@pytest.mark.parametrize("C, OC, H, K, padding, rows", [
    (1, 6, 28, 5, 2, False), (6, 16, 14, 5, 0, False),  # LeNet-5's first two convolutions: wide enough
    (16, 120, 5, 5, 0, False),  # its third: 5 columns for 1 output
    (16, 16, 32, 3, 1, False), (32, 32, 16, 3, 1, False), (64, 64, 8, 3, 1, True),  # ResNet-20's: the narrow one
    (3, 32, 32, 5, 2, False), (32, 64, 16, 5, 2, False),  # the CIFAR CNN's
])
def test_real_layers_take_the_layout_rows_pay_chooses_and_match_torch_in_float32(C, OC, H, K, padding, rows, calls):
    rng = np.random.default_rng(C + OC)
    x = rng.standard_normal((4, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((OC, C, K, K)) / np.sqrt(C * K * K)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    out, cache = F.conv2d(x, w, b, 1, padding)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    got = [out, *F.conv2d_backward(dout, cache)]
    assert (calls["x"] > 0) == rows
    theirs = torch_conv(x, w, b, ((padding,) * 2,) * 2, (1, 1), 1, dout)
    for name, g, t in zip(("out", "dx", "dw", "db"), got, theirs):
        assert g.dtype == np.float32, name  # float32 sums of up to 4,096 terms: rounding grows with the largest
        np.testing.assert_allclose(g, t, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(t).max()), err_msg=name)


@pytest.mark.parametrize("dilation, padding", [(1, 1), (2, 2), (1, ((0, 2), (1, 0)))])
def test_the_row_layout_passes_gradcheck_in_float64(dilation, padding, calls, monkeypatch):
    monkeypatch.setattr(conv_rows, "ROWS_WIDTH", 1 << 60)
    rng = np.random.default_rng(dilation)
    x, w, b = rng.standard_normal((2, 3, 5, 8)), rng.standard_normal((3, 3, 3, 3)), rng.standard_normal(3)
    result = gradcheck(lambda x_, w_, b_: F.conv2d(x_, w_, b_, 1, padding, dilation, impl="fast"),
                       F.conv2d_backward, [x, w, b])
    assert result.ok(1e-6), str(result)
    assert calls["x"] > 0 and calls["dout"] > 0


@pytest.mark.filterwarnings("error")  # nor a warning the exact path would not give
@pytest.mark.parametrize("bad", [np.inf, np.nan])
@pytest.mark.parametrize("threads", [1, 2])
def test_an_inf_or_nan_input_gives_the_exact_paths_dw_not_one_a_dropped_column_spoilt(bad, threads, calls, monkeypatch):
    """x[0, 0, 1, 0] (row 1, column 0) is bad. With padding 0 and a 2-wide kernel, tap (0, 1) never
    sees column 0, so its dW is finite; but the row layout's dropped column of output row 0 reads
    exactly that cell for tap (0, 1), times a zero of dout: NaN, unless dW is computed again."""
    monkeypatch.setattr(conv_rows, "ROWS_WIDTH", 1 << 60)
    minicnn.set_num_threads(threads)
    x = np.arange(2 * 1 * 3 * 3, dtype=np.float64).reshape(2, 1, 3, 3)
    x[0, 0, 1, 0] = bad
    w = np.ones((1, 1, 2, 2))
    out, cache = F.conv2d(x, w, None, impl="fast")
    dout = np.ones(out.shape)
    dx, dw, _ = F.conv2d_backward(dout, cache)
    assert calls["x"] == 2
    want = F.conv2d_backward(dout, F.conv2d(x, w, None, impl="plain")[1])
    theirs = torch_conv(x, w, None, ((0, 0), (0, 0)), (1, 1), 1, dout)
    assert np.isfinite(dw[0, 0, 0, 1]) and not np.isfinite(dw[0, 0, 0, 0])
    np.testing.assert_array_equal(dw, want[1])
    np.testing.assert_array_equal(dw, theirs[2])
    np.testing.assert_array_equal(dx, want[0])
