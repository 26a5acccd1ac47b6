"""The benchmarks' own arithmetic and plumbing, on tiny settings (no timing is asserted):
the FLOP counter against hand counts, the matrix-product rate, the memory targets,
`train_bench.py --backend cupy` without a GPU, and growth_bench's points."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from minicnn import models, nn
from minicnn.backend import BackendError

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)

import _common  # noqa: E402
import growth_bench  # noqa: E402
import train_bench  # noqa: E402

torch = pytest.importorskip("torch")


def conv_macs(out_shape, in_channels, k):
    """N*OC*OH*OW * C*K*K for a square kernel, written out again here."""
    return math.prod(out_shape) * in_channels * k * k


@pytest.mark.parametrize("N", [1, 3])
def test_flops_of_a_tiny_net(N):
    # Conv2d(1, 2, 3) on 1x5x5 -> (N, 2, 3, 3): 18 outputs per image, 9 products each = 162;
    # Flatten -> 18; Linear(18, 4): 72. Forward 234 MACs per image.
    # Backward: the conv is the first layer (dW only, 1x = 162), the Linear 2x = 144.
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 4))
    flops = _common.step_flops(net, (N, 1, 5, 5))
    assert flops == {"infer": 2 * 234 * N, "train": 2 * (234 + 162 + 144) * N}
    per_layer = [(type(layer).__name__, macs) for layer, macs in _common.forward_macs(net, (N, 1, 5, 5))]
    assert per_layer == [("Conv2d", 162 * N), ("Flatten", 0), ("Linear", 72 * N)]


def test_flops_of_lenet5():
    N = 4
    conv1 = conv_macs((N, 6, 28, 28), 1, 5)    # 28x28 padded by 2, 5x5 -> 28x28
    conv2 = conv_macs((N, 16, 10, 10), 6, 5)   # pooled to 14x14, 5x5 -> 10x10
    conv3 = conv_macs((N, 120, 1, 1), 16, 5)   # pooled to 5x5, 5x5 -> 1x1
    fc1, fc2 = N * 120 * 84, N * 84 * 10
    forward = conv1 + conv2 + conv3 + fc1 + fc2
    assert forward == 416_520 * N              # the classic LeNet-5 count, 0.42 M MACs per image
    backward = conv1 + 2 * (conv2 + conv3 + fc1 + fc2)
    assert _common.step_flops(models.lenet5(), (N, 1, 28, 28)) == {"infer": 2 * forward,
                                                                   "train": 2 * (forward + backward)}


def test_flops_count_batch_norm_once_each_way():
    # Conv2d(3, 4, 3, padding=1) on 3x6x6: 4*36 outputs * 27 = 3888; BatchNorm2d(4): one per value, 144
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
    flops = _common.step_flops(net, (1, 3, 6, 6))
    assert flops == {"infer": 2 * (3888 + 144), "train": 2 * (3888 + 144 + 3888 + 144)}


def test_gemm_rate_is_a_finite_positive_rate():
    rate = _common.gemm_gflop_per_s(np.matmul, n=64, repeats=1, block_seconds=0.001)
    assert math.isfinite(rate) and rate > 0


def test_memory_targets_compare_with_torch_per_network_and_mode():
    rows = [{"network": "LeNet-5", "batch": 64, "method": "minicnn fast", "peak_rss_growth_bytes": 10,
             "infer_peak_rss_growth_bytes": 30},
            {"network": "LeNet-5", "batch": 64, "method": "torch", "peak_rss_growth_bytes": 20,
             "infer_peak_rss_growth_bytes": 20},
            {"network": "CIFAR CNN", "batch": 100, "method": "minicnn fast", "peak_rss_growth_bytes": None,
             "infer_peak_rss_growth_bytes": None}]
    checks = train_bench.memory_checks(rows)
    assert [(c["network"], c["mode"], c["met"]) for c in checks] == [("LeNet-5", "train", True),
                                                                     ("LeNet-5", "infer", False)]
    assert checks[0]["ratio"] == 0.5


def test_train_bench_targets_are_the_issues():
    assert train_bench.TARGETS[("LeNet-5", 64, "train")] == 0.9  # issue 22's table
    assert train_bench.TARGETS[("ResNet-20", 128, "infer")] == 0.9
    assert train_bench.TARGETS[("CIFAR CNN", 100, "train")] == 1.0
    assert train_bench.DEZERO_TARGET == 4.0 and train_bench.TAPE_TARGET == ("LeNet-5", 16, 1.05)
    assert not any(batch == 16 for _, batch, _ in train_bench.TARGETS)
    assert set(train_bench.GPU_TARGETS) == {("LeNet-5", 256, "train"), ("ResNet-20", 128, "train")}


def test_backend_cupy_without_a_gpu_exits_2_with_one_clear_line():
    try:
        minicnn.use("cupy")
    except BackendError as exc:
        reason = str(exc)
    else:
        minicnn.use("numpy")
        pytest.skip("a GPU answers here: --backend cupy would run the benchmark")
    out = subprocess.run([sys.executable, os.path.join(BENCH, "train_bench.py"), "--backend", "cupy", "--quick"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and out.stdout == ""
    assert reason in lines[0]                                  # what is missing, in the backend's own words
    assert "python benchmarks/train_bench.py" in lines[0]      # and what to run instead


def test_growth_points_are_finite_and_positive():
    for workload in ("conv", "step"):
        row = growth_bench.measure(workload, 2, 8, torch, rounds=1, block=0.005)
        for lib in ("minicnn", "torch"):
            s = row[f"{lib}_s_per_image"]
            assert math.isfinite(s) and s > 0
            assert row[f"{lib}_s_per_call"] == pytest.approx(2 * s)
        assert row["gflops"] > 0


def test_growth_sweep_walks_the_axis():
    rows = growth_bench.sweep("conv", "size", [8, 12], torch, rounds=1, block=0.005, fixed_batch=1)
    assert [(r["batch"], r["size"], r["sweep"]) for r in rows] == [(1, 8, "size"), (1, 12, "size")]
    assert rows[1]["gflops"] == pytest.approx(rows[0]["gflops"] * (12 / 8) ** 2)


@pytest.mark.parametrize("size", [8, 12, 28])
def test_growth_small_cnn_agrees_with_torch(size):
    mine, theirs = growth_bench.cnn_outputs(torch, 3, size)
    assert mine.shape == theirs.shape == (3, growth_bench.CLASSES)
    np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)
    assert np.abs(mine).max() > 0                              # not two zero outputs agreeing trivially


def test_growth_conv_flops_by_hand():
    # (2, 16, 8, 8) with 3x3 padding 1 -> (2, 32, 8, 8); 16*9 products per output; 3 products (out, dW, dx)
    assert growth_bench.conv_flops(2, 8) == 2 * 3 * (2 * 32 * 8 * 8) * 16 * 9


def test_threads_bench_times_both_libraries_on_1_and_n_threads_in_one_process():
    import threads_bench
    before = minicnn.get_num_threads()
    try:
        t = threads_bench.measure("lenet5", (1, 28, 28), 4, 2, torch, rounds=1, block=0.001)
    finally:
        minicnn.set_num_threads(before)
    assert sorted(t) == sorted((lib, n, kind) for lib in ("minicnn", "torch") for n in (1, 2)
                               for kind in ("train", "infer"))
    assert all(math.isfinite(v) and v > 0 for v in t.values())


def test_the_by_hand_step_and_conv_bench_run_the_fast_conv_on_the_threads_as_conv2d_does(monkeypatch):
    """A workspace= handed to conv2d keeps it on the calling thread; the by-hand step and
    conv_bench's fast method once passed one, so they timed minicnn's convolutions on one thread
    beside torch on two (the by-hand step came out slower than the tape's). Both now cut them."""
    import threading

    import conv_bench
    from minicnn.ops import conv as conv_module
    from minicnn.ops import parallel
    real, seen = conv_module._im2col_fast, set()

    def watched(*args):
        seen.add(threading.get_ident())
        return real(*args)
    monkeypatch.setattr(conv_module, "_im2col_fast", watched)
    monkeypatch.setattr(parallel, "MIN_PRODUCT", 1)
    before = minicnn.get_num_threads()
    minicnn.set_num_threads(2)
    try:
        x, y = train_bench.batch((1, 28, 28), 8)
        train_bench.by_hand_step("lenet5", x, y)()
        assert len(seen) == 2, "the by-hand step ran its convolutions on one thread"
        seen.clear()
        rng = np.random.default_rng(0)
        xc, w, b = rng.standard_normal((4, 2, 12, 12)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
        fwd, fwd_bwd = conv_bench.im2col_method("fast")(xc, w, b, 1, np.ones((4, 3, 12, 12)))
        fwd_bwd()
        assert len(seen) == 2, "conv_bench's fast method ran its convolutions on one thread"
    finally:
        minicnn.set_num_threads(before)


def test_interleaved_times_every_method_every_round_in_alternating_order(monkeypatch):
    """Blocks take turns, and every other round in the reverse order (a fixed order biased one
    position by up to 13% here); each figure is the median of its own blocks."""
    monkeypatch.setattr(_common, "PAUSE", 0)
    seen = []
    fns = {name: (lambda name=name: seen.append(name)) for name in ("a", "b", "c")}
    result = _common.interleaved(fns, rounds=4, block_seconds=0)
    assert sorted(result) == ["a", "b", "c"] and all(v >= 0 for v in result.values())
    timed = seen[6:]  # after the warm-up and sizing calls (two each, in dict order)
    assert seen[:6] == ["a", "a", "b", "b", "c", "c"]
    assert timed == ["a", "b", "c", "c", "b", "a", "a", "b", "c", "c", "b", "a"]


@pytest.mark.parametrize("name, shape", [("lenet5", (1, 28, 28)), ("cifar_cnn", (3, 32, 32))])
def test_dezero_peer_runs_the_same_network_with_the_same_weights(name, shape):
    """train_bench times DeZero beside minicnn only after checking it computes the same function;
    here that check, and that a few of its training steps follow minicnn's (SGD with momentum is
    the same update in both; DeZero's Adam puts eps elsewhere, so the CIFAR CNN is checked on the
    forward only)."""
    import _dezero
    dezero = _dezero.import_dezero()
    if dezero is None:
        pytest.skip("DeZero is not installed (pip install dezero==0.0.13)")
    x, y = train_bench.batch(shape, 8)
    net, train, infer = train_bench.minicnn_steps(name, x, y, "fast")
    d_train, d_infer = _dezero.dezero_steps(dezero, net, x, y, name)
    np.testing.assert_allclose(d_infer(), infer().numpy(), rtol=1e-4, atol=1e-5)
    if name == "lenet5":
        for _ in range(3):
            train(), d_train()
        np.testing.assert_allclose(d_infer(), infer().numpy(), rtol=1e-4, atol=1e-5)


def test_profile_bench_names_only_functions_that_exist_and_its_kinds_add_up():
    """profile_bench files each op pair under a kind by (file, function name): a renamed pair would
    drop out of its kind silently, so each name must be a function of that file. And on a tiny
    batch the kinds, the tape included, add up to the step's time."""
    import importlib
    import profile_bench
    for (end, name) in profile_bench.KINDS:
        module = importlib.import_module("minicnn." + end[:-3].replace("/", "."))
        assert callable(getattr(module, name, None)) or hasattr(minicnn.optim.Optimizer, name), (end, name)
    minicnn.seed(0)
    x, y = train_bench.batch((3, 32, 32), 4)
    kinds, plain = profile_bench.minicnn_profile(models.resnet20(), x, y, steps=1)
    if kinds["the tape and the rest"] > 0:  # else the profiled ops alone took longer than the step
        assert sum(kinds.values()) == pytest.approx(plain, rel=1e-9)
    assert kinds["conv forward"] > 0 and kinds["conv backward (dW + dx)"] > 0 and kinds["BatchNorm forward"] > 0


def test_tape_bench_keeps_each_steps_fastest_call_and_runs_every_step_every_round():
    import tape_bench
    calls = {"a": 0, "b": 0}

    def step(name, seconds):
        def run():
            calls[name] += 1
            time.sleep(seconds)
        return run
    import time
    best = tape_bench.fastest({"a": step("a", 0.0), "b": step("b", 0.002)}, rounds=2, block=3)
    assert calls == {"a": 9, "b": 9}  # a warm-up block, then one block a round
    assert 0 < best["a"] < best["b"] and best["b"] >= 0.002
