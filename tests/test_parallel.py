"""The fast paths' threads (minicnn.ops.parallel) and the public switches set_impl / set_num_threads.

What is checked: every part of a cut job runs exactly once and no part outlives the call; errors
come back; the fast element-wise ops give the same bits as the plain ones whatever the layout and
the number of threads; a convolution cut into parts equals the plain one and the uncut one; the
switches work as functions and as context managers; a forked child gets threads of its own.
"""

import multiprocessing
import os
import threading
import time

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import models, nn, ops, optim
from minicnn.ops import conv as conv_module
from minicnn.ops import conv_rows
from minicnn.ops import parallel
from minicnn.ops import impl as impl_module

RUN_PARTS = parallel._run_parts  # the real ones, for tests that watch them through a wrapper
IM2COL, IM2COL_ROWS = conv_module._im2col_fast, conv_rows.im2col_rows


def watch_im2col(monkeypatch, workers):
    """Record in workers the thread of every im2col, in either layout (ops.conv's or ops.conv_rows's)."""
    def watched(*args, **kwargs):
        workers.add(threading.get_ident())
        return IM2COL(*args, **kwargs)

    def watched_rows(*args, **kwargs):
        workers.add(threading.get_ident())
        return IM2COL_ROWS(*args, **kwargs)
    monkeypatch.setattr(conv_module, "_im2col_fast", watched)
    monkeypatch.setattr(conv_rows, "im2col_rows", watched_rows)


@pytest.fixture
def cut_everything(monkeypatch):
    """Make even tiny jobs worth cutting, so the tests reach the threaded code on small arrays."""
    monkeypatch.setattr(parallel, "MIN_COPY", 1)
    monkeypatch.setattr(parallel, "MIN_COMPUTE", 1)
    monkeypatch.setattr(parallel, "MIN_PRODUCT", 1)


@given(n=st.integers(0, 40), threads=st.integers(1, 5))
@settings(max_examples=40, deadline=None)
def test_split_runs_every_row_exactly_once(n, threads):
    minicnn.set_num_threads(threads)
    old = parallel.MIN_COMPUTE
    parallel.MIN_COMPUTE = 1
    try:
        hits = np.zeros(n, dtype=int)
        seen = []

        def part(i, j):
            hits[i:j] += 1
            seen.append((i, j, threading.get_ident()))
        parallel.split(part, n, np.zeros(max(n, 1)))
        assert (hits == 1).all()
        assert len(seen) == (min(threads, n) if n >= 2 else 1)
    finally:
        parallel.MIN_COMPUTE = old
        minicnn.set_num_threads(2)


def test_split_raises_a_part_s_error_after_every_part_has_finished(cut_everything):
    minicnn.set_num_threads(3)
    finished = []

    def part(i, j):
        if i == 0:
            raise ValueError("part 0 failed")
        time.sleep(0.05)
        finished.append(i)
    with pytest.raises(ValueError, match="part 0 failed"):
        parallel.split(part, 3, np.zeros(3))
    assert sorted(finished) == [1, 2]  # the others ran to the end before the error came up

    def late(i, j):
        if i == 2:
            raise KeyError("last part")
    with pytest.raises(KeyError, match="last part"):
        parallel.split(late, 3, np.zeros(3))


def test_a_split_interrupted_while_waiting_leaves_no_worker_that_a_later_split_would_misread(cut_everything,
                                                                                             monkeypatch):
    """Ctrl-C while the caller waits for a worker: the worker still ends its part later, so its 'done'
    must not be taken for the end of a part of the next split. The next splits run every part once
    and return only when all have ended."""
    minicnn.set_num_threads(2)
    real_wait = parallel._Worker.wait
    interrupted = []

    def wait_interrupted(self):
        if not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt
        return real_wait(self)
    monkeypatch.setattr(parallel._Worker, "wait", wait_interrupted)
    with pytest.raises(KeyboardInterrupt):
        parallel.split(lambda i, j: time.sleep(0.2 if i else 0), 2, np.zeros(2))
    for _ in range(3):
        done = np.zeros(2, dtype=int)

        def part(i, j):
            time.sleep(0.1 if i else 0)  # the worker's part ends last
            done[i:j] += 1
        parallel.split(part, 2, np.zeros(2))
        assert done.tolist() == [1, 1]
    time.sleep(0.3)  # the abandoned worker has ended its part and stopped
    assert all(w.thread.is_alive() for w in parallel._state["pool"])
    assert sum(t.name == "minicnn" for t in threading.enumerate()) == len(parallel._state["pool"]) == 1


def test_a_part_that_cuts_again_runs_inline_not_on_a_pool_it_would_wait_for(cut_everything):
    minicnn.set_num_threads(2)
    inner = []

    def part(i, j):
        parallel.split(lambda a, b: inner.append((a, b)), 10, np.zeros(10))
    parallel.split(part, 2, np.zeros(2))
    assert sorted(inner) == [(0, 10), (0, 10)]  # each outer part ran the inner job whole


def test_set_num_threads_refuses_what_is_not_a_positive_int():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="positive int"):
            minicnn.set_num_threads(bad)
    minicnn.set_num_threads(3)
    assert minicnn.get_num_threads() == 3
    minicnn.set_num_threads(2)


def layouts(rng, shape):
    """The same values in the layouts the engine hands its ops: NCHW, conv2d's CNHW, a strided slice."""
    a = rng.standard_normal(shape).astype(np.float32)
    cnhw = np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    wide = np.zeros(shape[:3] + (2 * shape[3],), np.float32)
    wide[..., ::2] = a
    return {"nchw": a, "cnhw": cnhw, "strided": wide[..., ::2]}


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("layout", ["nchw", "cnhw", "strided"])
@pytest.mark.parametrize("grad_layout", ["nchw", "cnhw"])
def test_fast_tanh_and_relu_give_the_plain_bits_in_every_layout(threads, layout, grad_layout, cut_everything):
    minicnn.set_num_threads(threads)
    rng = np.random.default_rng(3)
    x = layouts(rng, (5, 3, 4, 6))[layout]
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    dout = layouts(rng, (5, 3, 4, 6))[grad_layout]
    for forward, backward in ((ops.tanh, ops.tanh_backward), (ops.relu, ops.relu_backward)):
        with minicnn.set_impl("plain"):
            want, want_cache = forward(x)
            want_dx = backward(dout, want_cache)
        out, cache = forward(x, impl="fast")
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(backward(dout, cache), want_dx)
        assert out.strides == want.strides  # laid out as the input, as the plain ufunc does


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("a_layout", ["nchw", "cnhw", "strided"])
@pytest.mark.parametrize("b_layout", ["nchw", "cnhw", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fast_add_of_two_arrays_of_one_shape_gives_the_plain_bits_in_every_layout(threads, a_layout, b_layout,
                                                                                      dtype, cut_everything):
    """A residual add cut over threads: a + b bit for bit, whatever the two layouts (unlike ones
    run whole), infs and NaNs included; other operands (a broadcast, another dtype, 0-d) take a + b."""
    minicnn.set_num_threads(threads)
    rng = np.random.default_rng(5)
    a = layouts(rng, (5, 3, 4, 6))[a_layout].astype(dtype, copy=False)
    b = layouts(rng, (5, 3, 4, 6))[b_layout].astype(dtype, copy=False)
    a[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    out, cache = ops.tensor.add(a, b)
    want = a + b
    np.testing.assert_array_equal(out, want)
    assert out.dtype == want.dtype and cache == (a.shape, b.shape)
    for other in (b[:1], b.astype(np.float16), np.float32(2.0)):
        np.testing.assert_array_equal(ops.tensor.add(a, other)[0], a + other)
    zero_d = ops.tensor.add(np.array(1.5, dtype), np.array(2.0, dtype))[0]
    assert zero_d == 3.5 and np.ndim(zero_d) == 0


@given(N=st.integers(1, 6), C=st.integers(1, 3), H=st.integers(3, 7), W=st.integers(3, 7), K=st.integers(1, 3),
       stride=st.integers(1, 2), padding=st.integers(0, 2), per_block=st.integers(1, 3), threads=st.integers(1, 3),
       rows=st.booleans())
@settings(max_examples=60, deadline=None)
def test_a_convolution_in_image_blocks_on_threads_equals_the_plain_one(N, C, H, W, K, stride, padding, per_block,
                                                                        threads, rows, cut_everything, monkeypatch):
    """The fast conv runs image block by image block (ops.conv.CHUNK values of col a block), the
    blocks cut over threads: blocks of 1-3 images on 1-3 threads give the plain path's output and
    gradients, as one block does, in either layout of col (rows: ops.conv_rows's, wherever it
    applies; else ops.conv's taps). (Not the same bits: BLAS may sum a product of another size in
    another order, and each thread sums its own blocks' dW.) Every thread that should work does."""
    rng = np.random.default_rng(N * 100 + H * 10 + W)
    x = rng.standard_normal((N, C, H, W))
    w, b = rng.standard_normal((4, C, K, K)), rng.standard_normal(4)
    OH, OW = (H + 2 * padding - K) // stride + 1, (W + 2 * padding - K) // stride + 1
    assume(OH >= 1 and OW >= 1)
    minicnn.set_num_threads(threads)
    monkeypatch.setattr(conv_rows, "ROWS_WIDTH", 1 << 60 if rows else 0)
    workers = set()
    watch_im2col(monkeypatch, workers)
    old = conv_module.CHUNK
    results = {}
    try:
        for blocked in (False, True):
            conv_module.CHUNK = C * K * K * OH * (W + 2 * padding) * per_block if blocked else 1 << 40
            workers.clear()
            out, cache = ops.conv2d(x, w, b, stride, padding, impl="fast")
            dout = np.random.default_rng(1).standard_normal(out.shape)
            results[blocked] = (out,) + ops.conv2d_backward(dout, cache)
            assert len(workers) == min(threads, N)  # forward and backward, on as many threads as there are parts
    finally:
        conv_module.CHUNK = old
    want_out, want_cache = ops.conv2d(x, w, b, stride, padding, impl="plain")
    want = (want_out,) + ops.conv2d_backward(dout, want_cache)
    for got in results.values():
        for g, p in zip(got, want):
            np.testing.assert_allclose(g, p, rtol=1e-12, atol=1e-12)


def test_a_convolution_given_a_workspace_runs_on_the_calling_thread_alone(cut_everything, monkeypatch):
    """A Workspace handed in is one thread's buffers: the blocks then do not go to other threads."""
    minicnn.set_num_threads(3)
    workers = set()
    watch_im2col(monkeypatch, workers)
    x = np.random.default_rng(2).standard_normal((6, 2, 5, 5))
    w = np.random.default_rng(3).standard_normal((3, 2, 3, 3))
    out, cache = ops.conv2d(x, w, padding=1, workspace=conv_module.Workspace())
    dx, dw, _ = ops.conv2d_backward(np.ones_like(out), cache)
    assert workers == {threading.get_ident()}
    want, want_cache = ops.conv2d(x, w, padding=1, impl="plain")
    want_dx, want_dw, _ = ops.conv2d_backward(np.ones_like(out), want_cache)
    for got, ref in ((out, want), (dx, want_dx), (dw, want_dw)):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@given(N=st.integers(1, 9), IN=st.integers(1, 12), OUT=st.integers(1, 9), bias=st.booleans(),
       threads=st.integers(2, 3))
@settings(max_examples=30, deadline=None)
def test_linear_cut_over_threads_equals_the_whole_products(N, IN, OUT, bias, threads, cut_everything, monkeypatch):
    """The fast Linear cuts out and dx by rows (images) and dw by output features: the plain numbers,
    and the job really went to the threads when there were two rows to cut."""
    minicnn.set_num_threads(threads)
    cuts = []
    monkeypatch.setattr(parallel, "_run_parts", lambda fn, bounds: (cuts.append(len(bounds) - 1),
                                                                   RUN_PARTS(fn, bounds)))
    rng = np.random.default_rng(N * 100 + IN * 10 + OUT)
    x, w, b = rng.standard_normal((N, IN)), rng.standard_normal((OUT, IN)), rng.standard_normal(OUT)
    b = b if bias else None
    out, cache = ops.linear(x, w, b)
    dout = rng.standard_normal(out.shape)
    got = (out,) + ops.linear_backward(dout, cache)
    assert len(cuts) == ((N >= 2) * (2 + (OUT >= 2)))  # forward, dx (rows); dw (features); one image: none
    with minicnn.set_impl("plain"):
        want_out, want_cache = ops.linear(x, w, b)
        want = (want_out,) + ops.linear_backward(dout, want_cache)
    for g, p in zip(got, want):
        if p is None:
            assert g is None
        else:
            np.testing.assert_allclose(g, p, rtol=1e-12, atol=1e-12)


def test_set_impl_is_a_function_and_a_context_manager_and_restores_on_error():
    assert minicnn.get_impl() == "fast"
    with minicnn.set_impl("plain") as switch:
        assert minicnn.get_impl() == "plain" and "plain" in repr(switch)
        with minicnn.set_impl("fast"):
            assert minicnn.get_impl() == "fast"
        assert minicnn.get_impl() == "plain"
    assert minicnn.get_impl() == "fast"
    with pytest.raises(RuntimeError, match="inside"):
        with minicnn.set_impl("plain"):
            raise RuntimeError("inside")
    assert minicnn.get_impl() == "fast"
    minicnn.set_impl("plain")
    try:
        assert impl_module.IMPL == "plain"
        x = np.ones((1, 1, 4, 4))
        _, cache = ops.conv2d(x, np.ones((1, 1, 3, 3)))
        assert cache[3].shape == (9, 4)  # the plain path's cache keeps col
    finally:
        minicnn.set_impl("fast")
    with pytest.raises(ValueError, match="impl must be 'plain' or 'fast', got 'quick'"):
        minicnn.set_impl("quick")
    assert minicnn.get_impl() == "fast"


def lenet_step_gradients():
    minicnn.manual_seed(0)
    net = models.lenet5()
    x = np.random.default_rng(4).random((8, 1, 28, 28), dtype=np.float32)
    nn.CrossEntropyLoss()(net(x), np.arange(8) % 10).backward()
    return [p.grad.numpy() for p in net.parameters()]


def test_a_lenet_step_under_set_impl_plain_equals_the_fast_one():
    fast = lenet_step_gradients()
    with minicnn.set_impl("plain"):
        plain = lenet_step_gradients()
    assert len(fast) == len(plain) == 10
    for f, p in zip(fast, plain):
        np.testing.assert_allclose(f, p, rtol=1e-4, atol=1e-5)


def _child_conv(queue):
    x = np.random.default_rng(5).standard_normal((64, 8, 16, 16)).astype(np.float32)
    out, _ = ops.conv2d(x, np.ones((4, 8, 3, 3), np.float32), padding=1)
    queue.put(float(out.sum()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is a POSIX start method")
def test_a_forked_child_gets_threads_of_its_own(cut_everything):
    minicnn.set_num_threads(2)
    parallel.split(lambda i, j: None, 4, np.zeros(4))  # the parent's pool exists now
    x = np.random.default_rng(5).standard_normal((64, 8, 16, 16)).astype(np.float32)
    want = float(ops.conv2d(x, np.ones((4, 8, 3, 3), np.float32), padding=1)[0].sum())
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_conv, args=(queue,))
    child.start()
    child.join(60)
    assert child.exitcode == 0, "the forked child hung or failed"
    assert queue.get(timeout=5) == pytest.approx(want, rel=1e-6)


def lenet_training(threads, steps=2):
    minicnn.set_num_threads(threads)
    minicnn.manual_seed(0)
    net = models.lenet5()
    opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x = np.random.default_rng(6).random((16, 1, 28, 28), dtype=np.float32)
    for _ in range(steps):
        opt.zero_grad()
        nn.CrossEntropyLoss()(net(x), np.arange(16) % 10).backward()
        opt.step()
    return [p.detach().numpy().copy() for p in net.parameters()]


def test_training_on_threads_is_the_same_from_run_to_run_and_matches_one_thread(cut_everything):
    """On a given number of threads the numbers are the same in every run (each thread sums its own
    blocks, and the sums are added in thread order); another number of threads sums dW in another
    order, so it agrees to float rounding."""
    one, two, two_again, three = (lenet_training(t) for t in (1, 2, 2, 3))
    for a, b, c, d in zip(one, two, two_again, three):
        np.testing.assert_array_equal(b, c)
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(d, a, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, maximize=True),
    lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01, amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=0.01),
], ids=["sgd", "sgd-nesterov-maximize", "adam-amsgrad", "adamw"])
def test_an_optimizer_step_cut_over_threads_gives_the_bits_of_one_thread(make, cut_everything, monkeypatch):
    """The update is element by element: cut over 3 threads it changes no bit, step after step,
    and the cut really happens (every big parameter goes to the threads)."""
    cuts = []
    monkeypatch.setattr(parallel, "_run_parts", lambda fn, bounds: (cuts.append(len(bounds) - 1),
                                                                   RUN_PARTS(fn, bounds)))
    results = []
    for threads in (1, 3):
        minicnn.set_num_threads(threads)
        rng = np.random.default_rng(8)
        params = [nn.Parameter(rng.standard_normal((50, 20)).astype(np.float32)),
                  nn.Parameter(rng.standard_normal(7).astype(np.float32))]
        opt = make(params)
        for step in range(3):
            for p in params:
                p.grad = minicnn.tensor(rng.standard_normal(p.shape).astype(np.float32))
            opt.step()
        results.append([p.detach().numpy().copy() for p in params])
    assert cuts == [3] * 6  # 2 parameters x 3 steps, on 3 threads
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def numpy_blas_threads():
    from threadpoolctl import threadpool_info
    home = os.path.dirname(os.path.dirname(np.__file__))
    own = [i["num_threads"] for i in threadpool_info()
           if i["user_api"] == "blas" and i["filepath"].startswith(os.path.join(home, "numpy"))]
    return own or [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_numpy_s_blas_runs_on_one_thread_while_minicnn_cuts_and_gets_its_threads_back():
    """Each of minicnn's threads runs products on one core: NumPy's BLAS is told to use one thread
    while minicnn uses several, and gets back the number it had when minicnn goes to one thread."""
    pytest.importorskip("threadpoolctl", reason="threadpoolctl (optional) is what talks to BLAS")
    minicnn.set_num_threads(1)
    before = numpy_blas_threads()
    assert before, "threadpoolctl sees no BLAS in NumPy"
    minicnn.set_num_threads(2)
    assert numpy_blas_threads() == [1] * len(before)
    minicnn.set_num_threads(1)
    assert numpy_blas_threads() == before


def test_two_program_threads_that_convolve_at_once_get_their_own_results(cut_everything):
    """Two threads of a program run convolutions at the same time: one of them gets minicnn's
    workers, the other runs its parts itself; each gets the numbers it would get alone."""
    minicnn.set_num_threads(2)
    rng = np.random.default_rng(9)
    xs = [rng.standard_normal((8, 3, 9, 9)) for _ in range(2)]
    w = rng.standard_normal((4, 3, 3, 3))
    alone = [ops.conv2d_backward(np.ones((8, 4, 9, 9)), ops.conv2d(x, w, padding=1)[1]) for x in xs]
    got = [None, None]

    def work(i):
        for _ in range(20):
            got[i] = ops.conv2d_backward(np.ones((8, 4, 9, 9)), ops.conv2d(xs[i], w, padding=1)[1])
    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, a in zip(got, alone):
        for gg, aa in zip(g, a):
            if aa is not None:
                np.testing.assert_allclose(gg, aa, rtol=1e-12, atol=1e-12)


def test_without_threadpoolctl_minicnn_stays_on_one_thread_unless_asked(monkeypatch):
    """No threadpoolctl: minicnn cannot tell BLAS to stand aside, so by default it does not cut
    (one thread, BLAS as it is); asked for more, it cuts all the same."""
    minicnn.set_num_threads(1)  # BLAS as it was
    monkeypatch.setitem(parallel._state, "blas", [])  # what _blas_controllers() finds without threadpoolctl
    monkeypatch.setitem(parallel._state, "threads", None)  # no choice made yet
    assert minicnn.get_num_threads() == 1
    assert parallel.parts(100, 1 << 30, np.zeros(1)) == 1
    minicnn.set_num_threads(2)
    assert parallel.parts(100, 1 << 30, np.zeros(1)) == 2


def test_the_default_is_one_thread_per_core_when_blas_can_be_told(monkeypatch):
    pytest.importorskip("threadpoolctl", reason="threadpoolctl (optional) is what talks to BLAS")
    minicnn.set_num_threads(1)
    monkeypatch.setitem(parallel._state, "threads", None)
    assert minicnn.get_num_threads() == parallel._cores() >= 1


@given(N=st.integers(1, 4), C=st.integers(1, 5), H=st.integers(1, 5), W=st.integers(1, 5), affine=st.booleans(),
       cnhw=st.booleans(), threads=st.integers(2, 3))
@settings(max_examples=30, deadline=None)
def test_batch_norm_cut_over_channels_equals_the_whole_call(N, C, H, W, affine, cnhw, threads, cut_everything,
                                                            monkeypatch):
    """Training-mode batch norm cut over channels (each thread its own channels' statistics and
    values) gives the plain path's output, statistics and gradients, and the cut really happens
    when there are two channels to cut."""
    assume(N * H * W > 1)  # one value per channel: var 0, inv_std 1/sqrt(eps) amplifies rounding
    minicnn.set_num_threads(threads)
    cuts = []
    monkeypatch.setattr(parallel, "_run_parts", lambda fn, bounds: (cuts.append(len(bounds) - 1),
                                                                   RUN_PARTS(fn, bounds)))
    rng = np.random.default_rng(N * 1000 + C * 100 + H * 10 + W)
    x = rng.standard_normal((C, N, H, W)).transpose(1, 0, 2, 3) if cnhw else rng.standard_normal((N, C, H, W))
    gamma, beta = (rng.standard_normal(C), rng.standard_normal(C)) if affine else (None, None)
    dout = rng.standard_normal((N, C, H, W))
    out, cache = ops.norm.batch_norm(x, gamma, beta)
    got = (out, cache.mean, cache.var) + ops.norm.batch_norm_backward(dout, cache)
    assert len(cuts) == (2 if C >= 2 else 0)  # forward and backward
    with minicnn.set_impl("plain"):
        want_out, want_cache = ops.norm.batch_norm(x, gamma, beta)
        want = (want_out, want_cache.mean, want_cache.var) + ops.norm.batch_norm_backward(dout, want_cache)
    for g, p in zip(got, want):
        if p is None:
            assert g is None
        else:
            np.testing.assert_allclose(g, p, rtol=1e-10, atol=1e-12)


def test_batch_norm_on_threads_matches_torch_at_a_real_size(monkeypatch):
    """A ResNet-sized batch norm (the default thresholds cut it on 2 threads) against torch: output
    and every gradient, float32."""
    torch = pytest.importorskip("torch")
    minicnn.set_num_threads(2)
    cuts = []
    monkeypatch.setattr(parallel, "_run_parts", lambda fn, bounds: (cuts.append(len(bounds) - 1),
                                                                   RUN_PARTS(fn, bounds)))
    rng = np.random.default_rng(12)
    x = rng.standard_normal((16, 8, 32, 32)).astype(np.float32)  # 131,072 values: MIN_COMPUTE
    layer = nn.BatchNorm2d(8)
    layer.weight.data = minicnn.tensor(rng.standard_normal(8).astype(np.float32))
    xt = minicnn.tensor(x, requires_grad=True)
    out = layer(xt)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(minicnn.tensor(dout))
    assert cuts == [2, 2]  # forward and backward, each on both threads
    tl = torch.nn.BatchNorm2d(8)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(layer.weight.detach().numpy()))
    tx = torch.from_numpy(x).requires_grad_()
    tout = tl(tx)
    tout.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad.numpy(), tl.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.bias.grad.numpy(), tl.bias.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.running_var.numpy(), tl.running_var.numpy(), rtol=1e-5, atol=1e-6)
