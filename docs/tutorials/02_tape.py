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
# # 02. The tape: what `loss.backward()` does, node by node
#
# **What you will learn.** How minicnn's autograd records one node per operation during the
# forward pass (the pair's backward plus the cache of that call), what the recorded graph of a
# small network looks like, in which order `loss.backward()` visits the nodes, and that the
# gradients it produces are the ones you get by calling the forward/backward pairs by hand, and
# the ones torch gives.
#
# **Source files read alongside:** `minicnn/autograd.py` (`Node`, `record`, `backward`),
# `minicnn/summary.py` (`trace`), `minicnn/viz.py` (`plot_graph`), and the pairs from tutorial 01
# in `minicnn/ops/`.
#
# Runs offline in a few seconds (torch is used only for the last comparison, and skipped when it
# is not installed).

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn import nn, ops, viz

# %% [markdown]
# ## A small network
#
# A convolution, a ReLU, a flatten and a linear layer, on two 1x5x5 images, in float64 so that
# every comparison below is exact to rounding.

# %%
minicnn.manual_seed(0)
net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3)).double()
x = minicnn.randn(2, 1, 5, 5, dtype=minicnn.float64)
y = minicnn.tensor([0, 2])
criterion = nn.CrossEntropyLoss()
print(net)

# %% [markdown]
# ## The graph the forward pass recorded
#
# Every operation on a Tensor that needs a gradient leaves one node behind. `loss.grad_fn` is the
# last one; each node points to the nodes that made its inputs. `viz.plot_graph` draws them:
# boxes are ops (with the layer that ran them and the output shape) and leaves (the parameters
# and the input); `backward()` runs against the arrows.

# %%
loss = criterion(net(x), y)
print("loss:", loss.item(), " grad_fn:", loss.grad_fn)

path = Path(tempfile.mkdtemp()) / "graph.png"
viz.plot_graph(loss, path, model=net, engine="matplotlib")
plt.figure(figsize=(7, 8))
plt.imshow(plt.imread(path))
plt.axis("off")
plt.show()

# %% [markdown]
# ## One backward, node by node
#
# `minicnn.trace` runs one forward and one backward (from `dout = ones`, the gradient of
# `out.sum()`) and prints one row per node of the tape in the order `backward()` runs them, with
# each gradient's shape and the rule that made it.

# %%
minicnn.trace(net, x)

# %% [markdown]
# Now the real thing: `loss.backward()` walks the same nodes from the loss back to the leaves and
# fills every parameter's `.grad`. It writes no derivative of its own: each node calls the
# backward of the pair that its forward called, with that call's cache.

# %%
net.zero_grad()
loss = criterion(net(x), y)
loss.backward()
tape = {name: p.grad.numpy().copy() for name, p in net.named_parameters()}
for name, g in tape.items():
    print(f"{name:10s} grad shape {g.shape}")

# %% [markdown]
# ## The same gradients by hand
#
# The forward pairs in order, keeping each cache; then their backwards in reverse order. This is
# all the tape does (see `examples/backprop_by_hand.py` for LeNet-5 done this way).

# %%
W1, b1 = net[0].weight.detach().numpy(), net[0].bias.detach().numpy()
W2, b2 = net[3].weight.detach().numpy(), net[3].bias.detach().numpy()
a, c1 = ops.conv2d(x.numpy(), W1, b1)
h, c2 = ops.relu(a)
f, c3 = ops.flatten(h)
logits, c4 = ops.linear(f, W2, b2)
L, c5 = ops.softmax_cross_entropy(logits, y.numpy())

dlogits = ops.softmax_cross_entropy_backward(1.0, c5)   # (softmax - onehot) / N
df, dW2, db2 = ops.linear_backward(dlogits, c4)
dh = ops.flatten_backward(df, c3)
da = ops.relu_backward(dh, c2)
_, dW1, db1 = ops.conv2d_backward(da, c1)
hand = {"0.weight": dW1, "0.bias": db1, "3.weight": dW2, "3.bias": db2}

print("loss by hand:", float(L), " through the tape:", loss.item())
for name in tape:
    print(f"{name:10s} largest |tape - by hand| = {np.abs(tape[name] - hand[name]).max():.1e}")

# %% [markdown]
# ## And from torch
#
# The same weights in torch's layers; torch's autograd is the oracle minicnn's tests compare with.

# %%
try:
    import torch
except ImportError:
    torch = None
    print("torch is not installed: skipped")
if torch is not None:
    t = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                            torch.nn.Linear(18, 3)).double()
    t.load_state_dict({name: torch.from_numpy(p.detach().numpy().copy()) for name, p in net.named_parameters()})
    tloss = torch.nn.functional.cross_entropy(t(torch.from_numpy(x.numpy().copy())), torch.from_numpy(y.numpy().copy()))
    tloss.backward()
    print("loss in torch:", tloss.item())
    for name, p in t.named_parameters():
        print(f"{name:10s} largest |tape - torch| = {np.abs(tape[name] - p.grad.numpy()).max():.1e}")

# %% [markdown]
# ## The graph is freed
#
# Each node drops its cache once its backward has run, so a second `backward()` through the same
# graph is an error, as in torch; a fresh forward records a fresh graph.

# %%
try:
    loss.backward()
except RuntimeError as e:
    print("RuntimeError:", str(e)[:160])
