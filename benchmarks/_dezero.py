"""DeZero (0.0.13, the engine of "Deep Learning from Scratch 3"), the NumPy engine a learner would
otherwise pick: the same Sequential chains as minicnn's, with minicnn's weights, timed beside it.

DeZero expresses LeNet-5 and the CIFAR CNN (conv, tanh/relu, average/max pooling, linear). It has
no batch norm layer that trains as torch's does, so ResNet-20 is left out. It was written for
NumPy 1: `numpy.int` is set back before it is imported (NumPy 2 removed that alias).
"""

import numpy as np


def import_dezero():
    """dezero, or None (and a note) when it is not installed."""
    if not hasattr(np, "int"):
        np.int = int  # DeZero 0.0.13 still calls np.int
    try:
        import dezero
        import dezero.functions  # noqa: F401
        import dezero.optimizers  # noqa: F401
    except ImportError:
        print("note: DeZero is not installed; its rows are left out (pip install dezero==0.0.13)")
        return None
    return dezero


def dezero_steps(dezero, net, x, y, name):
    """(train step, inference call) for DeZero running minicnn's Sequential `net` layer by layer
    with copies of its weights (float32), and the same optimizer: MomentumSGD(0.01, 0.9) or, for the
    CIFAR CNN, Adam(1e-3). DeZero's functions: conv2d, average_pooling, pooling (max), tanh, relu,
    linear, softmax_cross_entropy."""
    from minicnn import nn
    F, opt_mod = dezero.functions, dezero.optimizers
    layers, params = [], []
    for layer in net:
        if isinstance(layer, nn.Conv2d):
            W = dezero.Parameter(layer.weight.detach().numpy().copy())
            b = dezero.Parameter(layer.bias.detach().numpy().copy())
            params += [W, b]
            layers.append(lambda h, W=W, b=b, s=layer.stride, p=layer.padding: F.conv2d(h, W, b, s, p))
        elif isinstance(layer, nn.Linear):  # minicnn's (out, in) weight; DeZero's linear takes (in, out)
            W = dezero.Parameter(layer.weight.detach().numpy().T.copy())
            b = dezero.Parameter(layer.bias.detach().numpy().copy())
            params += [W, b]
            layers.append(lambda h, W=W, b=b: F.linear(h, W, b))
        elif isinstance(layer, nn.AvgPool2d):
            layers.append(lambda h, k=layer.kernel_size: F.average_pooling(h, k, k))
        elif isinstance(layer, nn.MaxPool2d):
            layers.append(lambda h, k=layer.kernel_size: F.pooling(h, k, k))
        elif isinstance(layer, nn.Tanh):
            layers.append(F.tanh)
        elif isinstance(layer, nn.ReLU):
            layers.append(F.relu)
        elif isinstance(layer, nn.Flatten):
            layers.append(lambda h: F.reshape(h, (h.shape[0], -1)))
        else:
            raise ValueError(f"{name}: DeZero has no form of {layer!r} here")

    class Holder(dezero.Model):
        def forward(self, h):
            for f in layers:
                h = f(h)
            return h
    model = Holder()
    for k, p in enumerate(params):  # registered as attributes: DeZero's optimizers walk them
        setattr(model, f"p{k}", p)
    optimizer = (opt_mod.Adam(alpha=1e-3) if name == "cifar_cnn" else opt_mod.MomentumSGD(lr=0.01, momentum=0.9))
    optimizer.setup(model)
    xv, yv = x.astype(np.float32), y.astype(np.int64)

    def train():
        model.cleargrads()
        loss = F.softmax_cross_entropy(model(xv), yv)
        loss.backward()
        optimizer.update()

    def infer():
        with dezero.no_grad():
            return model(xv).data
    return train, infer
