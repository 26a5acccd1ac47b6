"""Parameter, Module and Sequential: the state around the pure functions.

A Module's forward keeps what its backward will need (the cache of the functional op);
backward(dout) returns dx and adds each parameter's gradient to its .grad, as torch does.
"""

from collections import OrderedDict

import numpy as np

from ..backend import backend_name, get_array_module, get_xp, to_device, to_numpy, use


class Parameter:
    """A trainable array (.data) and its gradient (.grad, None until a backward adds one)."""

    def __init__(self, data):
        self.data = data
        self.grad = None

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def accumulate(self, grad):
        """Add a gradient to .grad (gradients from several uses of a parameter add up)."""
        self.grad = grad if self.grad is None else self.grad + grad

    def __repr__(self):
        return f"Parameter(shape={tuple(self.shape)}, dtype={self.dtype})"


class Module:
    """Base class of every layer and network.

    Subclasses set Parameters and sub-Modules as attributes in __init__ (the order of
    assignment is the order of parameters()), and define forward(x) and backward(dout).
    """

    def __init__(self):
        self.training = True

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define forward(x)")

    can_skip_input_grad = False  # True where backward(dout, input_grad=False) skips computing dx

    def backward(self, dout):
        raise NotImplementedError(f"{type(self).__name__} must define backward(dout)")

    def _saved(self):
        """The cache of the last forward, handed to one backward only.

        A layer keeps a single cache, so a second backward after one forward (as when one layer
        object appears twice in a network) would silently use the wrong one: it stops here instead.
        """
        cache = getattr(self, "_cache", None)
        if cache is None:
            if "_cache" in vars(self):
                raise RuntimeError(
                    f"{self!r}: backward() ran twice after one forward(). A layer keeps the cache of its "
                    "last forward only, once: if this layer object appears twice in the network, use two objects"
                )
            raise RuntimeError(f"{self!r}: backward() was called before forward(); run a forward pass first")
        self._cache = None
        return cache

    # -- walking the tree --------------------------------------------------------------

    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self):
        return (m for _, m in self.named_children())

    def modules(self):
        yield self
        for child in self.children():
            yield from child.modules()

    def named_parameters(self, prefix=""):
        """(name, Parameter) pairs, named as torch names them: 'weight', '0.bias', 'features.3.weight'."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(prefix + name + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    # -- state -------------------------------------------------------------------------

    def state_dict(self):
        """OrderedDict of parameter name -> a NumPy copy of its data."""
        return OrderedDict((name, to_numpy(p.data).copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters of the same names, keeping each parameter's dtype and device.

        A shape mismatch is always an error; with strict, so are missing and unexpected keys.
        """
        own = dict(self.named_parameters())
        if strict:
            missing = [k for k in own if k not in state_dict]
            unexpected = [k for k in state_dict if k not in own]
            if missing or unexpected:
                raise ValueError(
                    f"load_state_dict for {type(self).__name__}: missing keys {missing}, unexpected keys "
                    f"{unexpected}; is this state from a different architecture?"
                )
        for name, value in state_dict.items():
            if name not in own:
                continue
            p = own[name]
            if tuple(value.shape) != tuple(p.shape):
                raise ValueError(
                    f"load_state_dict for {type(self).__name__}: '{name}' has shape {tuple(value.shape)} "
                    f"in the state, but the model's parameter has shape {tuple(p.shape)}"
                )
            xp = get_array_module(p.data)
            p.data = xp.asarray(value, dtype=p.dtype).copy() if xp is np else xp.asarray(value, dtype=p.dtype)
            p.grad = None

    def to(self, backend=None, dtype=None):
        """Move the parameters to a backend ('numpy' or 'cupy') and/or cast them to dtype, in place."""
        if backend is not None and backend != backend_name():
            use(backend)
        for p in self.parameters():
            data = to_device(p.data) if backend is not None else p.data
            p.data = data.astype(dtype) if dtype is not None else data
            p.grad = None
        return self

    def double(self):
        """Cast every parameter to float64 (as for a gradient check)."""
        return self.to(dtype=get_xp().float64)

    # -- printing ----------------------------------------------------------------------

    def summary(self, input_shape, dtype=None, print=True):
        """A table of layers, output shapes, parameters and MACs: see minicnn.summary.summary."""
        from ..summary import summary
        return summary(self, input_shape, dtype=dtype, print=print)

    def extra_repr(self):
        return ""

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in children:
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return "\n".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied one after another; backward runs them in reverse.

    Indexing gives a layer, slicing a new Sequential that shares the same layers,
    as in torch's nn.Sequential(*list(net.children())[:4]).
    """

    def __init__(self, *modules):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def __len__(self):
        return sum(1 for _ in self.named_children())

    def __iter__(self):
        return self.children()

    def __getitem__(self, index):
        layers = list(self.children())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def forward(self, x):
        for i, layer in enumerate(self):
            try:
                x = layer(x)
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"layer ({i}) of the Sequential: {exc}{self._flatten_hint(i, layer)}") from None
        return x

    def _flatten_hint(self, i, layer):
        """For a Linear after a Flatten, say which shape the features came from."""
        previous = self[i - 1] if i > 0 else None
        shape = getattr(previous, "input_shape", None)
        if getattr(layer, "in_features", None) is None or shape is None:
            return ""
        return (
            f" (the Flatten before it turned {tuple(shape)} into {int(np.prod(shape[1:]))} features; "
            f"set in_features={int(np.prod(shape[1:]))} or change the layers before)"
        )

    can_skip_input_grad = True

    def backward(self, dout, input_grad=True):
        """dx of the first layer, after every layer's backward in reverse order.

        input_grad=False: the gradient of the network's input is not wanted (a training step),
        so a first layer that can skip it (Conv2d, Linear) does, and None is returned.
        """
        layers = list(self)
        for layer in reversed(layers[1:]):
            dout = layer.backward(dout)
        first = layers[0]
        if not input_grad and getattr(first, "can_skip_input_grad", False):
            return first.backward(dout, input_grad=False)
        dx = first.backward(dout)
        return dx if input_grad else None
