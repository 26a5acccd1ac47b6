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
# # 01. The pairs: a convolution's forward and backward, by hand
#
# **What you will learn.** How a 2-D convolution computes its output, and how its backward turns
# the gradient of the output (`dout`) into the gradients of the input (`dx`), the weights (`dw`)
# and the bias (`db`). You will do it with loops on a 1x1x4x4 input, then see that minicnn's
# `ops.conv2d` / `ops.conv2d_backward` give the same numbers; see im2col as a picture of which
# input pixel lands in which column; and check the backward by finite differences.
#
# **Source files read alongside:** `minicnn/ops/conv.py` (`conv_output_size`, `im2col`,
# `col2im`, `conv2d`, `conv2d_backward`) and `minicnn/gradcheck.py` (`numerical_gradient`,
# `gradcheck`).
#
# Runs offline in a few seconds.

# %%
import matplotlib.pyplot as plt
import numpy as np

from minicnn import ops
from minicnn.gradcheck import gradcheck, numerical_gradient

# %% [markdown]
# ## The input, the kernel, the output size
#
# One image (N = 1), one channel (C = 1), 4x4 pixels; one 3x3 filter (OC = 1). With stride S = 1
# and no padding the output is `OH = (H - KH) / S + 1 = 2`, so 2x2. float64 throughout, so that
# the finite differences at the end agree to about 1e-8.

# %%
x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)      # x[0, 0] is 0..15, row by row
w = np.array([[1.0, 0.0, -1.0],
              [2.0, 0.0, -2.0],
              [1.0, 0.0, -1.0]]).reshape(1, 1, 3, 3)          # a Sobel filter: responds to left-right change
b = np.array([0.5])
OH = ops.conv_output_size(4, 3)
print("x:\n", x[0, 0])
print("output size:", OH, "x", OH)

# %% [markdown]
# ## Forward by hand
#
# Every output pixel is the kernel laid on the input at that place, multiplied entry by entry and
# summed, plus the bias:  `out[p, q] = sum_ij w[i, j] * x[p + i, q + j] + b`.

# %%
out_hand = np.zeros((1, 1, OH, OH))
for p in range(OH):
    for q in range(OH):
        out_hand[0, 0, p, q] = (w[0, 0] * x[0, 0, p:p + 3, q:q + 3]).sum() + b[0]
print(out_hand[0, 0])

# %% [markdown]
# minicnn's pair: the forward returns the output *and the cache* its backward will need.
# `impl="plain"` picks the textbook path (im2col, then one matrix product).

# %%
out, cache = ops.conv2d(x, w, b, impl="plain")
print(out[0, 0])
print("same as by hand:", np.array_equal(out, out_hand))

# %% [markdown]
# ## Backward by hand
#
# Take some gradient of the loss with respect to the output, `dout` (2x2). Each `w[i, j]` met
# `x[p + i, q + j]` in output pixel (p, q), so `dw[i, j] = sum_pq dout[p, q] * x[p + i, q + j]`.
# Each input pixel received `w[i, j]` from every output pixel it fed, so `dx` is `dout` spread
# back through the kernel: `dx[p + i, q + j] += dout[p, q] * w[i, j]`. And `db = sum_pq dout[p, q]`.

# %%
dout = np.array([[1.0, -1.0], [2.0, 0.5]]).reshape(1, 1, 2, 2)
dx_hand = np.zeros_like(x)
dw_hand = np.zeros_like(w)
for p in range(OH):
    for q in range(OH):
        dw_hand[0, 0] += dout[0, 0, p, q] * x[0, 0, p:p + 3, q:q + 3]
        dx_hand[0, 0, p:p + 3, q:q + 3] += dout[0, 0, p, q] * w[0, 0]
db_hand = dout.sum(axis=(0, 2, 3))

dx, dw, db = ops.conv2d_backward(dout, cache)
print("dx by hand:\n", dx_hand[0, 0])
print("dx, dw, db equal to minicnn's:", np.allclose(dx, dx_hand), np.allclose(dw, dw_hand), np.allclose(db, db_hand))

# %% [markdown]
# ## im2col as a picture
#
# minicnn does not loop over output pixels. `im2col` copies every 3x3 window into one column of a
# matrix `col` of shape `(C*KH*KW, N*OH*OW) = (9, 4)`; then the whole convolution is one matrix
# product, `out = W (OC, 9) @ col (9, 4)`. Because our input holds its own pixel numbers (0..15),
# the matrix shows *which input pixel lands where*: row r is kernel tap (i, j) = divmod(r, 3),
# column c is output pixel (p, q) = divmod(c, 2).

# %%
col = ops.im2col(x, 3, 3)
print(col.shape)

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [1, 1.1]})
ax0.imshow(x[0, 0], cmap="Blues", vmin=-4, vmax=20)
for (r, c), v in np.ndenumerate(x[0, 0]):
    ax0.text(c, r, int(v), ha="center", va="center")
ax0.add_patch(plt.Rectangle((-0.5, -0.5), 3, 3, fill=False, ec="red", lw=2))
ax0.set_title("input x (pixel numbers);\nred: the window of output (0, 0)")
ax0.set_xticks([]), ax0.set_yticks([])
ax1.imshow(col, cmap="Blues", vmin=-4, vmax=20, aspect="auto")
for (r, c), v in np.ndenumerate(col):
    ax1.text(c, r, int(v), ha="center", va="center")
ax1.add_patch(plt.Rectangle((-0.5, -0.5), 1, 9, fill=False, ec="red", lw=2))
ax1.set_xticks(range(4), [f"out{divmod(c, 2)}" for c in range(4)])
ax1.set_yticks(range(9), [f"w{divmod(r, 3)}" for r in range(9)])
ax1.set_title("col = im2col(x, 3, 3): one column per output pixel")
plt.tight_layout()
plt.show()

# %% [markdown]
# The product with the flattened kernel gives the output; `col2im` is the adjoint, folding a
# column gradient back onto the pixels it came from (overlapping windows add up), which is how
# `conv2d_backward` gets `dx` from `dcol = W^T @ dout`.

# %%
print("W @ col + b:", (w.reshape(1, 9) @ col + b).ravel(), " out:", out.ravel())
dcol = w.reshape(1, 9).T @ dout.reshape(1, 4)
print("col2im(W^T @ dout) equals dx:", np.allclose(ops.col2im(dcol, x.shape, 3, 3), dx))

# %% [markdown]
# ## Checking a backward by finite differences
#
# A backward can be wrong and still look plausible. The check: nudge one input entry by ±eps,
# see how much `L = sum(out * dout)` moves, and divide, `dL/dx ≈ (L(x + eps) - L(x - eps)) / 2eps`.
# Its gradient is exactly what the backward should return for that `dout`.

# %%
def loss():
    return float((ops.conv2d(x, w, b, impl="plain")[0] * dout).sum())

dx_num = numerical_gradient(loss, x)
dw_num = numerical_gradient(loss, w)
print("largest |dx - numerical|:", np.abs(dx - dx_num).max())
print("largest |dw - numerical|:", np.abs(dw - dw_num).max())

# %% [markdown]
# `minicnn.gradcheck.gradcheck` does the same for every input of any pair, with a random `dout`,
# and reports the worst relative error and where it is. The tests run it on every pair in
# `minicnn.ops`.

# %%
x3 = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
w3 = np.random.default_rng(1).standard_normal((4, 3, 3, 3))
b3 = np.random.default_rng(2).standard_normal(4)
result = gradcheck(lambda x, w, b: ops.conv2d(x, w, b, stride=2, padding=1), ops.conv2d_backward, [x3, w3, b3])
print(result)
print("max relative error:", result.max_rel_error)

# %% [markdown]
# A wrong backward is caught: here `dw` is transposed in its spatial axes, a classic slip.

# %%
def wrong_backward(dout, cache):
    dx, dw, db = ops.conv2d_backward(dout, cache)
    return dx, dw.transpose(0, 1, 3, 2), db

print("max relative error with the slip:", gradcheck(ops.conv2d, wrong_backward, [x3, w3, b3]).max_rel_error)
