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
# # 05. BatchNorm's backward, a ResNet block, and a short ResNet-20 run
#
# **What you will learn.** The closed form of batch normalisation's backward and a check of it
# by finite differences (the error as a number); what the recorded graph of a residual block
# looks like, where the input fans out to the block and to its shortcut and `backward()` adds
# the two gradients; and a few training steps of ResNet-20 on a small subset.
#
# **Source files read alongside:** `minicnn/ops/norm.py` (`batch_norm`, `batch_norm_backward`: `ops.norm.*`),
# `minicnn/models.py` (`BasicBlock`, `resnet20`), `minicnn/gradcheck.py`, `minicnn/viz.py`
# (`plot_graph`).
#
# Runs offline in under a minute. There is no CIFAR-10 here, so the ResNet-20 run uses MNIST
# digits padded to 32x32 and repeated over 3 channels: a shape fit, not a CIFAR result.

# %%
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn import nn, ops, optim, viz
from minicnn.data import MNIST
from minicnn.gradcheck import gradcheck, numerical_gradient
from minicnn.models import BasicBlock, resnet20

OUT = Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)

# %% [markdown]
# ## BatchNorm forward and backward
#
# In training mode each channel is standardised with its batch's mean and variance over its
# M = N*H*W values, `xhat = (x - mean) / sqrt(var + eps)`, then scaled and shifted,
# `out = gamma * xhat + beta`. Because `mean` and `var` depend on every x, the gradient of one
# x gathers terms from all of them; worked through, it collapses to
#
#     dx = gamma / (M * sqrt(var + eps)) * (M * dout - sum(dout) - xhat * sum(dout * xhat))
#
# and the two sums are `dbeta` and `dgamma`. Here it is by hand, next to minicnn's pair.

# %%
x = rng.standard_normal((4, 3, 5, 5)) * 2 + 1
gamma, beta, eps = rng.standard_normal(3), rng.standard_normal(3), 1e-5
out, cache = ops.norm.batch_norm(x, gamma, beta, eps)
dout = rng.standard_normal(out.shape)
dx, dgamma, dbeta = ops.norm.batch_norm_backward(dout, cache)

axes, M = (0, 2, 3), 4 * 5 * 5
mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
xhat = (x - mean) / np.sqrt(var + eps)
g = gamma.reshape(1, 3, 1, 1)
dbeta_hand = dout.sum(axis=axes)
dgamma_hand = (dout * xhat).sum(axis=axes)
dx_hand = g / (M * np.sqrt(var + eps)) * (M * dout - dbeta_hand.reshape(1, 3, 1, 1)
                                          - xhat * dgamma_hand.reshape(1, 3, 1, 1))
print("forward equal:", np.allclose(out, g * xhat + beta.reshape(1, 3, 1, 1)))
print("largest |dx - by hand|:", np.abs(dx - dx_hand).max())
print("largest |dgamma - by hand|, |dbeta - by hand|:", np.abs(dgamma - dgamma_hand).max(), np.abs(dbeta - dbeta_hand).max())

# %% [markdown]
# ## Against finite differences
#
# Central differences of `L = sum(out * dout)` with respect to every entry of x, gamma and beta.

# %%
def loss():
    return float((ops.norm.batch_norm(x, gamma, beta, eps)[0] * dout).sum())

print("largest |dx - numerical|:", np.abs(dx - numerical_gradient(loss, x)).max())
result = gradcheck(lambda x, g, b: ops.norm.batch_norm(x, g, b, eps), ops.norm.batch_norm_backward, [x, gamma, beta])
print(result)
print("max relative error over x, gamma, beta:", result.max_rel_error)

# %% [markdown]
# A plausible-looking mistake, dropping the `xhat * sum(dout * xhat)` term (the path through the
# variance), is caught at once:

# %%
def backward_without_variance_path(dout, cache):
    dx, dgamma, dbeta = ops.norm.batch_norm_backward(dout, cache)
    scale = cache.gamma.reshape(1, -1, 1, 1) * cache.inv_std.reshape(1, -1, 1, 1) / M
    dx = dx + scale * cache.xhat * (dout * cache.xhat).sum(axis=axes, keepdims=True)  # adds back what it took
    return dx, dgamma, dbeta

print("max relative error with the slip:",
      gradcheck(lambda x, g, b: ops.norm.batch_norm(x, g, b, eps), backward_without_variance_path, [x, gamma, beta]).max_rel_error)

# %% [markdown]
# ## A ResNet block's graph
#
# `BasicBlock(16, 16)`: conv, batch norm, ReLU, conv, batch norm, then the input added back and a
# last ReLU. In the graph below the input has two arrows out, one into the first convolution and
# one into the add: `backward()` sums the gradients that come back along the two. The shortcut's
# gradient is `dout` itself, which is why deep ResNets still train.

# %%
minicnn.manual_seed(0)
block = BasicBlock(16, 16)
xb = minicnn.randn(2, 16, 8, 8, requires_grad=True)
yb = block(xb).mean()
viz.plot_graph(yb, OUT / "block.png", model=block, engine="matplotlib")
plt.figure(figsize=(7, 9))
plt.imshow(plt.imread(OUT / "block.png"))
plt.axis("off")
plt.show()
yb.backward()
print("x.grad shape:", tuple(xb.grad.shape))

# %% [markdown]
# ## A short ResNet-20 run
#
# ResNet-20 (He et al. 2016, 269,722 parameters) for 3x32x32 inputs. With no CIFAR-10 here, the
# inputs are 512 MNIST digits padded from 28x28 to 32x32 and repeated over 3 channels. 30 steps of
# SGD (lr 0.05, momentum 0.9, batch 32), then the accuracy on those 512 digits.

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the offline fallback warns that it stands in for MNIST
    train = MNIST(train=True, download=False)
digits = (train.images[:512].astype(np.float32) / 255.0 - 0.1307) / 0.3081
digits = np.repeat(np.pad(digits, ((0, 0), (0, 0), (2, 2), (2, 2))), 3, axis=1)
targets = train.labels[:512]
print("inputs:", digits.shape, "from", train.source[:40])

minicnn.manual_seed(0)
model = resnet20()
print("parameters:", sum(p.numel() for p in model.parameters()))
opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
criterion = nn.CrossEntropyLoss()
order = np.random.default_rng(0).permutation(np.tile(np.arange(512), 2))
losses, start = [], time.perf_counter()
model.train()
for step in range(30):
    idx = order[step * 32:(step + 1) * 32]
    opt.zero_grad()
    loss = criterion(model(minicnn.from_numpy(digits[idx])), minicnn.from_numpy(targets[idx]))
    loss.backward()
    opt.step()
    losses.append(loss.item())
print(f"30 steps in {time.perf_counter() - start:.1f} s; loss {np.mean(losses[:5]):.2f} (first 5) -> {np.mean(losses[-5:]):.2f} (last 5)")
model.eval()
with minicnn.no_grad():
    accuracy = (model(minicnn.from_numpy(digits)).argmax(1).numpy() == targets).mean()
print(f"accuracy on the 512 digits, eval mode (BatchNorm's running statistics): {accuracy:.1%}")
model.train()  # BatchNorm normalises with each batch's own statistics again
with minicnn.no_grad():
    hits = sum((model(minicnn.from_numpy(digits[i:i + 64])).argmax(1).numpy() == targets[i:i + 64]).sum()
               for i in range(0, 512, 64))
print(f"accuracy on the 512 digits, train mode (batch statistics, 64 at a time): {hits / 512:.1%}")

plt.figure(figsize=(5, 3))
plt.plot(losses)
plt.xlabel("step"), plt.ylabel("training loss"), plt.title("ResNet-20, 30 steps")
plt.tight_layout()
plt.show()

# %% [markdown]
# Compare the two accuracies above. In eval mode BatchNorm uses the running averages of mean and
# variance it collected during training; after only 30 steps, taken while the weights moved fast,
# those averages can be far from the statistics the current weights produce, and the eval-mode
# accuracy can lag far behind the train-mode one. Training longer (or at a lower learning rate at
# the end, as a cosine schedule does) brings them together.
#
# For a real run, `python examples/cifar10_resnet.py --data-root DIR` trains ResNet-20 on
# CIFAR-10 in torch's style.
