# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03. im2col against the naive loops: the same numbers, a different speed
#
# **What you will learn.** That the im2col convolution (KH*KW strided copies, then one matrix
# product) and the definition written as loops give the same output and gradients, and how
# their running times grow with the image size, measured here on this machine and plotted.
#
# **Source files read alongside:** `minicnn/ops/conv.py` (`conv2d_naive`, `conv2d_naive_backward`,
# `im2col`, `conv2d`); the full benchmark is `benchmarks/conv_bench.py`, its results in
# `benchmarks/PERFORMANCE.md`.
#
# Runs offline in well under a minute: the loops are timed on small inputs only.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from minicnn import ops

rng = np.random.default_rng(0)

# %% [markdown]
# ## The same numbers
#
# A batch of 2 images, 3 channels, 8x8, four 3x3 filters, stride 2 and padding 1, in float64.
# `conv2d_naive` computes every output value by its definition, `out[n, o, p, q] = b[o] +
# sum_{c,i,j} w[o, c, i, j] * xpad[n, c, p*S + i, q*S + j]`; `conv2d` does it as `W @ im2col(x)`.

# %%
x = rng.standard_normal((2, 3, 8, 8))
w = rng.standard_normal((4, 3, 3, 3))
b = rng.standard_normal(4)
out_loops, cache_loops = ops.conv2d_naive(x, w, b, stride=2, padding=1)
out_im2col, cache_im2col = ops.conv2d(x, w, b, stride=2, padding=1, impl="plain")
print("output shape:", out_im2col.shape)
print("largest |loops - im2col| in the output:", np.abs(out_loops - out_im2col).max())

dout = rng.standard_normal(out_im2col.shape)
for name, g_loops, g_im2col in zip(["dx", "dw", "db"], ops.conv2d_naive_backward(dout, cache_loops),
                                   ops.conv2d_backward(dout, cache_im2col)):
    print(f"largest |loops - im2col| in {name}: {np.abs(g_loops - g_im2col).max():.1e}")

# %% [markdown]
# ## A different speed
#
# One image, 3 -> 8 channels, a 3x3 kernel with padding 1, float32, for growing image sizes S.
# Each method is timed as the best of a few calls (the best is the least disturbed by anything
# else running). The loops run `N*OC*OH*OW` Python iterations, so they are timed only up to 64x64.

# %%
def best_time(f, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)

sizes = [8, 16, 32, 64, 128, 256]
w32 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
b32 = np.zeros(8, np.float32)
rows = []
for S in sizes:
    xs = rng.standard_normal((1, 3, S, S)).astype(np.float32)
    t_loops = best_time(lambda: ops.conv2d_naive(xs, w32, b32, padding=1), 2) if S <= 64 else np.nan
    t_plain = best_time(lambda: ops.conv2d(xs, w32, b32, padding=1, impl="plain"), 20)
    t_fast = best_time(lambda: ops.conv2d(xs, w32, b32, padding=1, impl="fast"), 20)
    rows.append((S, t_loops, t_plain, t_fast))
    loops = f"{t_loops * 1e3:8.2f} ms ({t_loops / t_plain:4.0f}x plain)" if S <= 64 else "   not timed" + " " * 15
    print(f"S = {S:3d}: loops {loops}   im2col plain {t_plain * 1e3:7.3f} ms   im2col fast {t_fast * 1e3:7.3f} ms")

# %%
S_, loops_, plain_, fast_ = (np.array(c) for c in zip(*rows))
plt.figure(figsize=(6, 4))
plt.loglog(S_, loops_ * 1e3, "o-", label="naive loops (conv2d_naive)")
plt.loglog(S_, plain_ * 1e3, "s-", label="im2col + GEMM, plain")
plt.loglog(S_, fast_ * 1e3, "^-", label="im2col + GEMM, fast")
plt.xlabel("image size S (S x S, 3 -> 8 channels, 3x3)")
plt.ylabel("forward time, ms (best of several)")
plt.title("one convolution, one image, measured in this run")
plt.legend()
plt.grid(True, which="both", alpha=0.3)
plt.show()

# %% [markdown]
# The loops' time grows with the number of output values, `S^2` (a slope of 2 on this log-log
# plot): they pay one Python iteration per value. im2col's time stays almost flat at small sizes,
# where the fixed cost of its calls (9 array copies and one BLAS product, whatever the size)
# dominates, and turns towards the same slope of 2 only for large images, where the copies and
# the product themselves take the time. So the gap in the table widens with the size. `python benchmarks/conv_bench.py` measures the same on real layers, with
# torch beside them.
