"""Parameter, Module, Sequential and ModuleList, with torch.nn's names and behaviour.

A Module's forward works on Tensors; autograd records what it does, so a Module needs no
backward of its own: loss.backward() fills every Parameter's .grad. Sub-modules and
Parameters are found among the attributes (in the order they were assigned), buffers are
the attributes named by register_buffer.
"""

import copy
from collections import OrderedDict, namedtuple

import numpy as np

from .. import autograd
from ..autograd import no_grad
from .._tensor import Tensor, _dtype, _move, device as _device


class Parameter(Tensor):
    """A Tensor that is a Module's learnable state: requires_grad=True, listed by parameters()."""

    def __init__(self, data=None, requires_grad=True):
        from .._tensor import zeros
        if data is None:
            data = zeros(0)
        super().__init__(data.array if isinstance(data, Tensor) else data)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        new = Parameter(self.array.copy(), self.requires_grad)
        new.grad = copy.deepcopy(self.grad, memo)
        memo[id(self)] = new
        return new


def _tensor_deepcopy(self, memo):
    if self._node is not None:
        raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                           "protocol: detach() it first")
    new = Tensor._wrap(self.array.copy())
    new.requires_grad = self.requires_grad
    new.grad = copy.deepcopy(self.grad, memo)
    memo[id(self)] = new
    return new


Tensor.__deepcopy__ = _tensor_deepcopy

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and network: subclass it, assign layers in __init__, write forward."""

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_buffer_names", [])
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "_forward_pre_hooks", [])

    def __setattr__(self, name, value):
        if isinstance(value, (Module, Parameter)) and "_buffer_names" not in vars(self):
            raise AttributeError(f"cannot assign {type(value).__name__} '{name}' before Module.__init__() call: "
                                 f"call super().__init__() first in {type(self).__name__}.__init__")
        if isinstance(vars(self).get(name), Parameter) and value is not None and not isinstance(value, Parameter):
            raise TypeError(f"cannot assign '{_typename(value)}' as parameter '{name}' (minicnn.nn.Parameter or None "
                            f"expected): wrap it, nn.Parameter(t), or change the values in place with .data.copy_(t)")
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        """Reached only for a name not found the usual way (torch programs also call it directly,
        self.__getattr__('level_%d' % i)): a layer, parameter or buffer of this module, or torch's error."""
        found = object.__getattribute__(self, "__dict__")
        if name in found:
            return found[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        for hook in self._forward_pre_hooks:
            changed = hook(self, args)
            if changed is not None:
                args = changed if isinstance(changed, tuple) else (changed,)
        autograd._modules.append(self)
        try:
            out = self.forward(*args, **kwargs)
        except Exception as exc:
            _annotate(exc, self)
            raise
        finally:
            autograd._modules.pop()
        for hook in self._forward_hooks:
            changed = hook(self, args, out)
            if changed is not None:
                out = changed
        return out

    def register_forward_hook(self, hook):
        """hook(module, inputs, output) after each forward; returns a handle with .remove()."""
        return _Handle(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook):
        """hook(module, inputs) before each forward; returns a handle with .remove()."""
        return _Handle(self._forward_pre_hooks, hook)

    # -- the tree ------------------------------------------------------------------------------

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if not isinstance(name, str) or "." in name or not name:
            raise KeyError(f"module name must be a non-empty string without '.', got {name!r}")
        setattr(self, name, module)

    register_module = add_module

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(minicnn.nn.Parameter or None required)")
        setattr(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that is state but not a parameter (a running mean): in state_dict, moved by to()."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' (Tensor or None required)")
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        if not persistent:
            self._non_persistent.add(name)
        setattr(self, name, tensor)

    def named_children(self):
        """(name, module) for each direct sub-module, each module once."""
        seen = set()
        for name, value in vars(self).items():
            if isinstance(value, Module) and id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def children(self):
        return (m for _, m in self.named_children())

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) for this module and every sub-module below it, each once."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in vars(self).items():
            if isinstance(child, Module):
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        return (m for _, m in self.named_modules())

    def apply(self, fn):
        """fn(module) for every sub-module, then for this one (as torch: children first)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _own(self, kind):
        for name, value in vars(self).items():
            if kind == "parameters" and isinstance(value, Parameter):
                yield name, value
            elif kind == "buffers" and name in self._buffer_names and isinstance(value, Tensor):
                yield name, value

    def _named(self, kind, prefix, recurse, remove_duplicate):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in module._own(kind):
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(name, Parameter) named as torch names them ('fc1.weight'); a shared Parameter once."""
        return self._named("parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        """Each Parameter once, even when tied weights or a shared layer reach it by two names."""
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named("buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        return (b for _, b in self.named_buffers(recurse=recurse))

    def num_parameters(self):
        """The number of learnable values (a shared Parameter counted once)."""
        return sum(p.numel() for p in self.parameters())

    def get_submodule(self, target):
        module = self
        for part in target.split(".") if target else []:
            if not isinstance(getattr(module, part, None), Module):
                raise AttributeError(f"{type(module).__name__} has no sub-module {part!r}")
            module = getattr(module, part)
        return module

    # -- gradients and mode --------------------------------------------------------------------

    def zero_grad(self, set_to_none=True):
        """Every parameter's .grad = None, or (set_to_none=False) its .grad zeroed in place, as torch."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                with no_grad():
                    p.grad.zero_()

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze every parameter: a frozen one gets no gradient and is not stepped."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """OrderedDict name -> Tensor (sharing memory with the model, as torch: copy it to keep a
        snapshot), parameters and persistent buffers, every name under which each is reachable."""
        out = OrderedDict() if destination is None else destination
        for module_prefix, module in self.named_modules(prefix=prefix.rstrip("."), remove_duplicate=False):
            for name, value in module._own("parameters"):
                out[_join(module_prefix, name)] = value if keep_vars else value.detach()
            for name, value in module._own("buffers"):
                if name not in module._non_persistent:
                    out[_join(module_prefix, name)] = value if keep_vars else value.detach()
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy the values into the parameters and buffers of the same names, in place, keeping
        each one's dtype and device. A shape mismatch is always an error; with strict, so are
        missing and unexpected keys. Returns (missing_keys, unexpected_keys)."""
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}: missing keys {missing}, unexpected keys "
                f"{unexpected}; is this state from a different architecture?"
            )
        mismatched = [(k, tuple(np.shape(_raw(state_dict[k]))), tuple(own[k].shape))
                      for k in own if k in state_dict and tuple(np.shape(_raw(state_dict[k]))) != tuple(own[k].shape)]
        if mismatched:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}: " + "; ".join(
                f"size mismatch for {k}: copying a param with shape {s} from checkpoint, the shape in current "
                f"model is {m}" for k, s, m in mismatched))
        with no_grad():
            for name, target in own.items():
                if name in state_dict:
                    value = _raw(state_dict[name])
                    value = _move(value, target.device) if hasattr(value, "dtype") else np.asarray(value)
                    target.array[...] = value.astype(target.dtype, copy=False) if hasattr(value, "astype") else value
                    target._bump()
        return _IncompatibleKeys(missing, unexpected)

    def to(self, *args, **kwargs):
        """Move parameters and buffers to a device ('cpu', 'cuda') and/or cast floating ones to a dtype,
        in place: model.to('cuda'), model.to(minicnn.float64), model.to(device, dtype)."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        if kwargs.pop("backend", None) is not None:
            raise TypeError("Module.to: use a device ('cpu' or 'cuda'), not backend=")
        for a in args:
            if isinstance(a, (str, _device)):
                device = a
            elif isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            else:
                dtype = a
        dtype = _dtype(dtype)
        for t in list(self.parameters()) + list(self.buffers()):
            array = t.array
            if device is not None:
                array = _move(array, device)
            if dtype is not None and array.dtype.kind == "f":
                array = array.astype(dtype)
            if array is not t.array:
                t._set_array(array)
                if t.grad is not None:
                    t.grad = Tensor._wrap(_move(t.grad.array, device) if device is not None else t.grad.array)
                    if dtype is not None:
                        t.grad = Tensor._wrap(t.grad.array.astype(dtype))
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda")

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def half(self):
        return self.to(np.float16)

    # -- describing itself ---------------------------------------------------------------------

    def macs(self, input_shape, output_shape):
        """Multiply-adds of one forward call, for summary(); 0 for layers that do none."""
        return 0

    def short_name(self):
        """A one-line name for tables ('Conv2d(1, 6, k=5, p=2)'); layers make theirs shorter than repr."""
        text = f"{type(self).__name__}({self.extra_repr()})"
        return text if len(text) <= 32 else text[:29] + "...)"

    def shape_formula(self, input_shape, output_shape):
        """The lines that explain output_shape from input_shape, for trace(); none by default."""
        return []

    def gradient_formula(self, dout_shape, dx_shape):
        """The rule that turns dout into dx and the parameters' gradients, for trace(); none by default."""
        return []

    def summary(self, input_shape, dtype=None, print=True):
        """A table of layers, output shapes, parameters and MACs: see minicnn.summary.summary."""
        from ..summary import summary
        return summary(self, input_shape, dtype=dtype, print=print)

    def extra_repr(self):
        return ""

    def __repr__(self):
        children = list(self.named_children())
        extra = self.extra_repr()
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = [f"{type(self).__name__}(" + (extra if extra else "")]
        for name, child in children:
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return "\n".join(lines) + "\n)"


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _raw(value):
    return value.array if isinstance(value, Tensor) else value


def _typename(value):
    """'minicnn.Tensor (float32)', 'numpy.ndarray', 'float': what a message calls the value (torch.typename's role)."""
    if isinstance(value, Tensor):
        return f"minicnn.Tensor ({value.dtype})"
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


class _Handle:
    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook
        hooks.append(hook)

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def _annotate(exc, module):
    """Add, once, where in the model an error happened: 'in fc1 (Linear(...)) of Net'. The
    exception and its traceback are kept as they are; the place is a note (Python 3.11+)."""
    where = getattr(exc, "_minicnn_module", None)
    if where is None:
        try:
            exc._minicnn_module = module
        except AttributeError:
            return
        where = module
    if len(autograd._modules) != 1 or module is where or not hasattr(exc, "add_note"):
        return  # the outermost module names the place, once
    path = next((name for name, m in module.named_modules() if m is where), None)
    if path:
        exc.add_note(f"(raised in layer '{path}' of the {type(module).__name__}: {where!r})".replace("\n", " "))


class _Container(Module):
    """Modules kept in order under the names '0', '1', ...: what Sequential and ModuleList share."""

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def __len__(self):
        return sum(1 for v in vars(self).values() if isinstance(v, Module))

    def __iter__(self):
        return (v for v in vars(self).values() if isinstance(v, Module))

    def __getitem__(self, index):
        layers = list(self)
        return self._from_list(layers[index]) if isinstance(index, slice) else layers[index]


class Sequential(_Container):
    """Modules applied one after another. net[i] is a layer, net[a:b] a new Sequential sharing them,
    as in torch's nn.Sequential(*list(net.children())[:4])."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            self.extend(args)

    @staticmethod
    def _from_list(layers):
        return Sequential(*layers)

    def forward(self, input):
        for layer in self:  # an error names its layer: see _annotate, in Module.__call__
            input = layer(input)
        return input


class ModuleList(_Container):
    """A list of modules whose parameters the parent sees: self.blocks = ModuleList([...])."""

    def __init__(self, modules=None):
        super().__init__()
        self.extend(modules or [])

    @staticmethod
    def _from_list(layers):
        return ModuleList(layers)

    def forward(self, *args):
        raise NotImplementedError("ModuleList has no forward: iterate over it in the parent's forward")
