"""ops/products.py: a product cut into pieces is the whole product, and the convolutions that cut
theirs (the fast path's forward, its dW through dout laid out channels last) still match torch.

The pieces only come where NumPy's BLAS is OpenBLAS with a small-matrix kernel, and only for
products big enough to be worth cutting: the tests shrink SMALL and MIN_PIECE so that small
products are cut too, and say that they were (assume, where a drawn product is too small to be cut).
"""

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn.ops as F
from minicnn.ops import parallel, products

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-4)}


@contextlib.contextmanager
def cut_small(small):
    """Pieces for any product over `small` multiply-adds, as if the BLAS had the small kernel; yields
    a list that gets each _piece answer (a piece's columns, 0 for a product run whole)."""
    answers, real = [], products._piece
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(products, "SMALL", small)
        mp.setattr(products, "MIN_PIECE", 1)
        mp.setitem(products._state, "small", True)
        mp.setattr(products, "_piece", lambda *args: answers.append(real(*args)) or answers[-1])
        yield answers


@settings(max_examples=60, deadline=None)
@given(G=st.sampled_from([(), (1,), (3,)]), M=st.integers(1, 12), K=st.integers(1, 12), N=st.integers(1, 300),
       small=st.integers(2, 400), dtype=st.sampled_from([np.float64, np.float32]), strided_out=st.booleans(),
       seed=st.integers(0, 2**16))
def test_matmul_in_pieces_of_columns_is_the_whole_product(G, M, K, N, small, dtype, strided_out, seed):
    """out = a @ b for stacked and plain operands, into an out that is a strided view (a conv's
    out[:, n0:n1] is one); the cut really happened (more than one piece)."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((*G, M, K)).astype(dtype), rng.standard_normal((*G, K, N)).astype(dtype)
    store = np.full((*G, M, N + 5 if strided_out else N), np.nan, dtype=dtype)
    out = store[..., :N]
    with cut_small(small) as answers:
        got = products.matmul(a, b, out)
    assume(answers[0] and N > answers[0])  # cut into two pieces at least
    assert got is out
    np.testing.assert_allclose(out, a @ b, **TOL[dtype])
    if strided_out:
        assert np.isnan(store[..., N:]).all()  # nothing written past the view


@settings(max_examples=60, deadline=None)
@given(G=st.sampled_from([(), (2,)]), M=st.integers(1, 12), L=st.integers(1, 400), N=st.integers(1, 12),
       small=st.integers(2, 400), dtype=st.sampled_from([np.float64, np.float32]), transposed=st.booleans(),
       seed=st.integers(0, 2**16))
def test_matmul_sum_in_pieces_of_the_inner_axis_is_the_whole_product(G, M, L, N, small, dtype, transposed, seed):
    """a @ b summed over pieces of the inner axis, for contiguous operands and for a right operand
    that is a transposed view (dw_product's (G, L, OC/G) view of dout); a new array each call."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((*G, M, L)).astype(dtype)
    b = rng.standard_normal((*G, N, L)).astype(dtype).swapaxes(-1, -2) if transposed else \
        rng.standard_normal((*G, L, N)).astype(dtype)
    with cut_small(small) as answers:
        got = products.matmul_sum(a, b)
        again = products.matmul_sum(a, b)
    assume(answers[0] and L > answers[0])  # cut into two pieces at least
    np.testing.assert_allclose(got, a @ b, **TOL[dtype])
    assert got.dtype == dtype and not np.shares_memory(got, a) and not np.shares_memory(got, b)
    np.testing.assert_array_equal(got, again)  # the same pieces in the same order: the same bits
    assert again is not got


def test_no_pieces_without_the_small_kernel_or_under_min_piece(monkeypatch):
    """Without the kernel (another BLAS, or no threadpoolctl to tell) a product runs whole, and so it
    does where a piece would be narrower than MIN_PIECE columns."""
    a = np.ones((16, 144), dtype=np.float32)
    monkeypatch.setitem(products._state, "small", False)
    assert products._piece(a, 16 * 144) == 0
    monkeypatch.setitem(products._state, "small", True)
    assert products._piece(a, 16 * 144) == -(-products.SMALL // (16 * 144)) - 1  # 434 columns
    assert products._piece(a, 64 * 576) == 0  # 27 columns: under MIN_PIECE
    monkeypatch.setattr(products, "MIN_PIECE", 1)
    assert products._piece(a, 64 * 576) == 27


class _Controller:
    def __init__(self, api, arch):
        self.internal_api, self.architecture = api, arch


@pytest.mark.parametrize("controllers, small", [
    ([_Controller("openblas", "SkylakeX")], True),
    ([_Controller("openblas", "SapphireRapids")], True),
    ([_Controller("openblas", "Haswell")], False),
    ([_Controller("mkl", None)], False),
    ([], False),  # no threadpoolctl: nothing to tell
])
def test_the_small_kernel_is_read_from_threadpoolctls_report(controllers, small, monkeypatch):
    monkeypatch.setitem(products._state, "small", None)
    monkeypatch.setattr(parallel, "_blas_controllers", lambda: controllers)
    assert products._has_small_kernel() is small
    monkeypatch.setattr(parallel, "_blas_controllers", lambda: pytest.fail("asked twice"))
    assert products._has_small_kernel() is small  # asked once, then remembered


@st.composite
def conv_cases(draw):
    """A convolution the fast path runs by im2col or the rows (not the shifted grid: C < 16), with
    1-40 output channels, and a threshold that cuts its products into pieces."""
    C, OC = draw(st.integers(1, 4)), draw(st.sampled_from([1, 3, 8, 17, 32, 40]))
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 1))
    H = draw(st.integers(max(1, KH - 2 * padding), 9))
    W = draw(st.integers(max(1, KW - 2 * padding), 9))
    return {"x": (draw(st.integers(1, 4)), C, H, W), "w": (OC, C, KH, KW), "stride": stride, "padding": padding,
            "small": draw(st.integers(2, 2000)), "dtype": draw(st.sampled_from([np.float64, np.float32])),
            "seed": draw(st.integers(0, 2**16))}


@settings(max_examples=80, deadline=None)
@given(conv_cases())
def test_conv2d_with_its_products_in_pieces_matches_torch(c):
    """The fast path's output and all three gradients against torch, with every product it cuts cut
    into pieces; the test counts that some product was cut."""
    dtype = c["dtype"]
    rng = np.random.default_rng(c["seed"])
    x, w = rng.standard_normal(c["x"]).astype(dtype), rng.standard_normal(c["w"]).astype(dtype)
    b = rng.standard_normal(c["w"][0]).astype(dtype)
    with cut_small(c["small"]) as answers:
        out, cache = F.conv2d(x, w, b, c["stride"], c["padding"], impl="fast")
        dout = rng.standard_normal(out.shape).astype(dtype)
        dx, dw, db = F.conv2d_backward(dout, cache)
    assume(any(answers))  # at least one product was big enough to be cut
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b)]
    t_out = TF.conv2d(*leaves, stride=c["stride"], padding=c["padding"])
    t_out.backward(torch.tensor(dout, dtype=torch.float64))
    for got, want in [(out, t_out), (dx, leaves[0].grad), (dw, leaves[1].grad), (db, leaves[2].grad)]:
        want = want.detach().numpy()
        assert got.dtype == dtype and got.shape == want.shape
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale)
