"""Tensor: an array of the active backend (NumPy or CuPy) that records, for autograd, the
operations made on it; and torch's creation functions and dtypes.

    t.array          the NumPy (or CuPy) array underneath: what the ops in minicnn.ops work on
    t.data           a Tensor sharing that array, detached from the tape (torch's .data)
    t.grad           a Tensor, filled by backward() when t.requires_grad (None before)
    t.requires_grad  True for a Parameter, for a tensor made with requires_grad=True, and for
                     every result computed from one while recording
    t.backward()     runs the tape (minicnn.autograd)

Every method with a gradient is the forward/backward pair of minicnn.ops.tensor (or of another
ops module), applied through autograd.record. Dtypes follow torch: a Python number keeps the
tensor's dtype, and so does a 0-d tensor of the same kind (float32 * 0-d float64 is float32); an
integer tensor meeting a float one becomes that float, and integer division gives float32; matmul
refuses operands of two dtypes. Nothing else is promoted.

Storage, views and the version counter
--------------------------------------
A Tensor's values live in its array. Several Tensors may share that memory, exactly where torch
shares it:

    views      slicing with ints, slices, None and ... (x[0], x[:, 1:3]), view, reshape (when the
               layout allows, else a copy), permute, transpose, t, T, expand, squeeze, unsqueeze,
               flatten: the NumPy view of the same memory. Advanced indexing (x[[0, 2]], x[mask]),
               clone(), contiguous() of a non-contiguous tensor, and reshape where the layout does
               not allow a view give fresh memory.
    detach()   the same memory, cut from the tape; so is .data (minicnn shares .data's version
               counter too, where torch gives .data a new one: a change through .data is then
               caught by backward() instead of giving a silently wrong gradient)

Every family of tensors sharing memory shares one version counter (`_counter`; `t._version`
reads it). Every in-place change (`x += 1`, `x.add_()`, `x[0] = 5`, `x.copy_()`, an optimizer
step, init) writes into the memory and bumps the counter. A node on the tape saves the counter
of each input and output with its value at the call, so backward() can tell that a tensor its
cache holds was changed since (autograd.py).

An in-place change is recorded on the tape where a gradient can flow, as in torch:

    x.add_(y)     on a non-view: x's node becomes the add's node (the old node stays behind it)
    v.mul_(2)     on a view v of a base b: the new values are written into b's memory, and b gets
                  a node `copy_slices` whose backward sends the view's part of b's gradient to
                  the mul and the rest to b's old node; v's node is then "v's view of b's new node"
    h[0] = w      is the in-place index_put: w gets the gradient of the cells it was written into,
                  h's old values the gradient of the others

A view remembers its base (`_base`) and how it was taken (`_steps`: slicing, permuting, ...).
When the counter shows that the base changed since the view's node was made, the view's node is
made again from the base's current node before it is used (so an old view sees the new graph).
On a leaf that requires grad, or a view of one, an in-place change with recording on is an
error, as in torch: do it under no_grad() (as optimizers and init do).
"""

import builtins
import functools
import inspect
import math
import numbers
import operator
import warnings
import weakref

import numpy as np

from . import autograd
from .autograd import _root, record
from .backend import BackendError, backend_name, default_rng, get_array_module, get_xp, is_cupy_array, to_numpy
from .ops import activation as A
from .ops import tensor as T
from ._random import Generator, default_generator, rng_of  # noqa: F401

__all__ = [
    "Tensor", "Size", "device", "cuda", "accelerator", "tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "rand",
    "randn", "randint", "randperm", "arange", "linspace", "eye", "zeros_like", "ones_like", "rand_like", "randn_like",
    "full_like", "empty_like", "cat", "concat", "concatenate", "stack", "maximum", "minimum", "where", "equal",
    "allclose", "isclose", "numel", "is_tensor", "manual_seed", "initial_seed", "Generator", "default_generator",
    "get_default_dtype",
    "float16", "half", "float32", "float", "float64", "double", "uint8", "int8", "int16", "short", "int32", "int",
    "int64", "long", "bool",
    "sum", "mean", "max", "min", "argmax", "argmin", "amax", "amin", "flatten", "reshape", "squeeze", "unsqueeze",
    "permute", "transpose", "exp", "log", "sqrt", "abs", "clamp", "clip", "relu", "sigmoid", "tanh", "softmax",
    "log_softmax", "matmul", "mm", "var", "std", "topk", "gather", "t", "norm", "add", "sub", "mul", "div", "pow",
    "neg", "eq", "ne", "lt", "le", "gt", "ge", "detach", "clone", "all", "any",
    "multiply", "divide", "true_divide", "subtract", "absolute", "negative", "greater", "greater_equal", "less",
    "less_equal", "not_equal", "swapaxes", "swapdims", "movedim", "moveaxis", "split", "chunk", "narrow", "unbind",
    "flip", "index_select", "square", "isnan", "isinf", "isfinite",
    "use_deterministic_algorithms", "are_deterministic_algorithms_enabled", "set_float32_matmul_precision",
    "get_float32_matmul_precision",
]

# -- dtypes and devices ------------------------------------------------------------------------

float16 = half = np.dtype("float16")
float32 = float = np.dtype("float32")
float64 = double = np.dtype("float64")
uint8 = np.dtype("uint8")
int8 = np.dtype("int8")
int16 = short = np.dtype("int16")
int32 = int = np.dtype("int32")
int64 = long = np.dtype("int64")
bool = np.dtype("bool")  # noqa: A001  (torch.bool)

_DEFAULT_FLOAT = float32


def _dtype(d):
    """A NumPy dtype from torch-style names ('float32', minicnn.float32, np.float32, float)."""
    if d is None:
        return None
    if d is builtins.float:
        return _DEFAULT_FLOAT
    if d is builtins.int:
        return int64
    if d is builtins.bool:
        return bool
    if isinstance(d, str) and d.startswith("torch."):
        d = d[len("torch."):]
    try:
        return np.dtype(d)
    except TypeError:
        raise TypeError(f"unknown dtype {d!r}: use minicnn.float32, minicnn.int64, ... or a NumPy dtype") from None


class device:
    """torch.device: 'cpu' (NumPy arrays) or 'cuda' (CuPy arrays)."""

    def __init__(self, type, index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        type = str(type)
        if ":" in type:
            type, _, number = type.partition(":")
            index = builtins.int(number)
        aliases = {"numpy": "cpu", "cupy": "cuda", "gpu": "cuda"}
        type = aliases.get(type, type)
        if type not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {type!r}: expected 'cpu' or 'cuda' (or 'cuda:0')")
        self.type, self.index = type, index

    def __eq__(self, other):
        try:
            other = device(other)
        except (ValueError, TypeError):
            return NotImplemented
        return self.type == other.type

    def __hash__(self):
        return hash(self.type)

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + (f", index={self.index})" if self.index is not None else ")")


def _device_of(array):
    return device("cuda", 0) if is_cupy_array(array) else device("cpu")


def _move(array, dev):
    """array on device dev ('cpu' -> NumPy, 'cuda' -> CuPy)."""
    dev = device(dev)
    if dev.type == "cpu":
        return to_numpy(array)
    from .backend import _load_cupy
    cupy = _load_cupy()
    return array if is_cupy_array(array) else cupy.asarray(array)


def _default_xp(dev=None):
    if dev is None:
        return get_xp()
    if device(dev).type == "cuda":
        from .backend import _load_cupy
        return _load_cupy()
    return np


# -- the Tensor --------------------------------------------------------------------------------


class Size(tuple):
    """torch.Size: a tuple of ints, printed as torch prints it."""

    def numel(self):
        return math.prod(self)

    def __repr__(self):
        return f"minicnn.Size({list(self)})"


class _Version:
    """The version counter of one memory: every in-place write bumps `value`. `root` is the id of
    the array that owns the memory, so that backward() can tell whether a cache holds it."""

    __slots__ = ("value", "root", "shared")

    def __init__(self, array):
        self.value = 0
        self.root = id(_root(array))
        self.shared = False  # True once a view, detach() or an op's output shares the memory


class Tensor:
    """An n-dimensional array with autograd. See the module docstring."""

    __array_priority__ = 1000  # numpy array (op) Tensor goes to Tensor's reflected operator

    def __init__(self, data, dtype=None, requires_grad=False):
        array = _as_array(data, dtype)
        _init(self, array)
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array):
        """A Tensor around an existing backend array (no copy, no checks): used by the tape."""
        if isinstance(array, np.generic):  # NumPy reduces to a scalar: hold a 0-d array, so in-place ops write into it
            array = np.asarray(array)
        t = object.__new__(Tensor)
        _init(t, array)
        return t

    # -- storage: version, views, refreshing a view's node --------------------------------------

    @property
    def _version(self):
        """How many in-place changes this tensor's memory has had (shared with its views)."""
        return self._counter.value

    def _bump(self):
        """Count one in-place change of the memory (every writer calls this after writing)."""
        self._counter.value += 1

    @property
    def _base(self):
        """The tensor this one is a view of (torch's ._base), or None."""
        return self._view_base

    @property
    def requires_grad(self):
        if self._view_base is not None and self._view_version != self._counter.value:
            self._refresh()
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(value)

    def _view_of(self, out, backward, cache, name, take):
        """A Tensor for `out`, a view of this tensor's memory made by take(array): recorded as the op
        (backward, cache, name), sharing the version counter, and remembering its base and steps."""
        t = record(out, backward, cache, (self,), name)
        t._counter = self._counter
        self._counter.shared = True
        base = self._view_base
        t._view_base = base if base is not None else self
        t._steps = self._steps + ((take, backward, cache, name),)
        t._view_version = self._counter.value
        t._grad_view = autograd.is_grad_enabled() and (base is None or self._grad_view)
        return t

    def _refresh(self):
        """The base changed since this view's node was made: make it again, from the base's node now."""
        self._view_version = self._counter.value
        if not self._grad_view:
            return
        t = _replay(self._view_base, self._steps)
        self._node, self._requires_grad = t._node, t._requires_grad

    # -- what it is ---------------------------------------------------------------------------

    @property
    def shape(self):
        return Size(self.array.shape)

    def size(self, dim=None):
        return self.shape if dim is None else self.array.shape[dim]

    def dim(self):
        return self.array.ndim

    @property
    def ndim(self):
        return self.array.ndim

    def numel(self):
        return builtins.int(self.array.size)

    nelement = numel

    def element_size(self):
        return self.array.itemsize

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def device(self):
        return _device_of(self.array)

    @property
    def is_cuda(self):
        return is_cupy_array(self.array)

    @property
    def is_cpu(self):
        return not is_cupy_array(self.array)

    # the devices and layouts minicnn has not: scripts test them to pick a code path
    is_mps = is_xpu = is_meta = is_sparse = is_quantized = property(lambda self: False)

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def grad_fn(self):
        if self._view_base is not None and self._view_version != self._counter.value:
            self._refresh()
        return self._node

    @property
    def data(self):
        """A Tensor sharing this one's memory and version counter, outside the tape."""
        return self.detach()

    @data.setter
    def data(self, value):
        new = value.array if isinstance(value, Tensor) else _as_array(value, None)
        if tuple(new.shape) != tuple(self.array.shape) and self.requires_grad and self.grad is not None:
            self.grad = None
        self._set_array(new, value._counter if isinstance(value, Tensor) else None)

    def _set_array(self, array, counter=None):
        """This tensor now shows other memory (x.data = y, module.to): with that memory's version counter."""
        self.array = array
        self._counter = counter if counter is not None else _Version(array)
        if counter is not None:
            counter.shared = True

    @property
    def T(self):
        return self.permute(*range(self.ndim - 1, -1, -1))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def __len__(self):
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def __iter__(self):
        if self.array.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.array.shape[0]))

    def __repr__(self):
        body = np.array2string(to_numpy(self.array), separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self.array.dtype not in (float32, int64, bool) or self.array.size == 0:
            extras.append(f"dtype=minicnn.{self.array.dtype}")
        if self.is_cuda:
            extras.append("device='cuda:0'")
        if self._node is not None:
            extras.append(f"grad_fn={self._node!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    __hash__ = object.__hash__  # == compares values, as in torch; identity is the hash

    # -- conversion ----------------------------------------------------------------------------

    def item(self):
        if self.array.size != 1:
            raise RuntimeError(f"a Tensor with {self.array.size} elements cannot be converted to a Scalar")
        return self.array.reshape(()).item()

    def tolist(self):
        return to_numpy(self.array).tolist()

    def numpy(self):
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if self.is_cuda:
            raise TypeError("can't convert cuda tensor to numpy. Use Tensor.cpu() to copy the tensor to host memory first.")
        return self.array

    def __array__(self, dtype=None, copy=None):
        a = to_numpy(self.array)
        return a if dtype is None else a.astype(dtype)

    def __float__(self):
        return builtins.float(self.item())

    def __int__(self):
        return builtins.int(self.item())

    def __bool__(self):
        if self.array.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.array.size} elements is ambiguous")
        return builtins.bool(self.item())

    def __index__(self):
        if self.array.size != 1 or self.array.dtype.kind not in "iu":
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return builtins.int(self.item())

    def __format__(self, spec):
        return format(self.item(), spec) if self.array.size == 1 and spec else repr(self).__format__(spec)

    def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False):
        """t.to(dtype), t.to(device), t.to('cuda', minicnn.float64), t.to(other_tensor)."""
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, (str, globals()["device"])):
                device = a
            else:
                dtype = a
        array = self.array
        if device is not None and _device_of(array) != globals()["device"](device):
            moved = _move(array, device)
            out = record(moved, _MoveBack(_device_of(array)), None, (self,), "to")
            t = out
        else:
            t = self
        dtype = _dtype(dtype)
        if dtype is not None and dtype != t.dtype:
            t = t.type(dtype)
        if copy and t is self:
            t = self.clone()
        return t

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda")

    def type(self, dtype=None):
        """t.type() names the dtype; t.type(minicnn.float64) casts (the gradient is cast back)."""
        if dtype is None:
            return f"minicnn.{self.dtype}"
        dtype = _dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.kind not in "fc":  # an integer or bool result has no gradient: the graph ends here (torch)
            return Tensor._wrap(self.array.astype(dtype))
        return record(self.array.astype(dtype), _cast_back, self.dtype, (self,), "to")

    def float(self):
        return self.type(float32)

    def double(self):
        return self.type(float64)

    def half(self):
        return self.type(float16)

    def long(self):
        return self.type(int64)

    def int(self):
        return self.type(int32)

    def bool(self):
        return self.type(bool)

    def type_as(self, other):
        return self.type(other.dtype)

    # -- autograd ------------------------------------------------------------------------------

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """d(self)/d(every leaf that requires grad), added into the leaves' .grad."""
        autograd.backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.array.dtype.kind not in "fc":
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, this one is {self.dtype}")
        if self.grad_fn is not None:
            if requires_grad:
                return self
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use a "
                               "computed variable in a subgraph that doesn't require differentiation use "
                               "var_no_grad = var.detach().")
        self._requires_grad = builtins.bool(requires_grad)
        return self

    def detach(self):
        """The same memory and version counter, cut from the tape."""
        t = Tensor._wrap(self.array)
        t._counter = self._counter
        self._counter.shared = True
        return t

    def detach_(self):
        if self._view_base is not None:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self._node, self._requires_grad = None, False
        return self

    def clone(self):
        return record(self.array.copy(), _identity_backward, None, (self,), "clone")

    def register_hook(self, hook):
        """hook(grad) runs once per backward() with the summed gradient of this tensor; it may return
        a replacement. Returns a handle whose remove() takes the hook away."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        node = self.grad_fn
        if node is None:
            hooks = self._hooks
        else:
            if node.hooks is None:
                node.hooks = []
            hooks = node.hooks
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in .grad after backward() (a no-op on a leaf)."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is None or getattr(self, "_retains", False):
            return
        self._retains = True
        ref = weakref.ref(self)

        def keep(grad):
            t = ref()
            if t is not None:
                if t.grad is None:
                    t.grad = Tensor._wrap(grad.array.copy())
                else:
                    t.grad.array += grad.array
                    t.grad._bump()
        self.grad_fn.hooks = (self.grad_fn.hooks or []) + [keep]

    @property
    def retains_grad(self):
        return getattr(self, "_retains", False)

    # -- in place: written into this tensor's memory, recorded where a gradient can flow -----------

    def _check_write(self, name):
        """torch's refusals of an in-place change, before anything is written."""
        if autograd.is_grad_enabled():
            base = self._view_base
            if base is None and self._node is None and self._requires_grad:
                raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place "
                                   "operation. Do it under minicnn.no_grad() (as optimizers and init do), or use "
                                   "the out-of-place form")
            if base is not None and base.requires_grad:
                if base._node is None:
                    raise RuntimeError(f"{name}: a view of a leaf Variable that requires grad is being used in an "
                                       "in-place operation. Do it under minicnn.no_grad(), or clone() first")
                if not self._grad_view:
                    raise RuntimeError(f"{name}: {_NO_GRAD_VIEW}")
        a = self.array
        if builtins.any(st == 0 and n > 1 for st, n in zip(a.strides, a.shape)) or not getattr(
                a.flags, "writeable", True):
            raise RuntimeError(f"{name}: unsupported operation: more than one element of the written-to tensor "
                               "refers to a single memory location (an expand()ed or read-only tensor). Please "
                               "clone() the tensor before performing the operation.")

    def _write(self, name, compute, *operands):
        """self = compute(self, *operands), in place: torch's in-place semantics for any operation.

        compute is the out-of-place operation on Tensors. Its result is cast to self's dtype (a
        float result into an integer tensor is refused, as in torch) and written into self's memory;
        the version counter is bumped. Where a gradient can flow (recording is on, and self or an
        operand requires grad) the result's node becomes self's, or, on a view, its base's through
        a copy_slices node. If compute's cache would hold self's memory (mul_ saves its input), it
        runs on a copy of self, so that the write does not change what its backward reads.
        """
        self._check_write(name)
        graph = autograd.is_grad_enabled() and (self.requires_grad or builtins.any(
            isinstance(o, Tensor) and o.requires_grad for o in operands))
        if graph and self._view_base is not None and not self._grad_view:
            raise RuntimeError(f"{name}: {_NO_GRAD_VIEW}")
        if not graph:
            with autograd.no_grad():
                result = compute(self, *operands)
            self._store(name, result)
            return self
        start = next(autograd._serial)
        result = compute(self, *operands)
        if _caches_hold(result._node, start, self._counter.root):
            snapshot = Tensor._wrap(self.array.copy())
            snapshot._node, snapshot._requires_grad = self._node, self.requires_grad
            result = compute(snapshot, *operands)
        if result.dtype != self.dtype:
            _check_cast(result.dtype, self.dtype)
            result = result.type(self.dtype)
        self._store(name, result)
        if result._node is not None and autograd._refers(result._node.cache, id(_root(result.array))):
            # the op saved its output (exp, sigmoid, relu...): that output is self now, so a later
            # change of self must stop the backward, as torch's does
            result._node.saved += ((self._counter, self._counter.value, self.array.shape, self.dtype,
                                    result._node.op, True),)
        base = self._view_base
        if base is None:
            self._node, self._requires_grad = result._node, result.requires_grad
            return self
        takes = tuple(take for take, _, _, _ in self._steps)
        order = tuple(sorted(range(base.ndim), key=lambda i: -builtins.abs(base.array.strides[i])))
        node = autograd.Node(T.copy_slices_backward, (takes, order), (base, result), "copy_slices", base.array)
        base._node, base._requires_grad = node, True
        self._refresh()
        return self

    def _store(self, name, result):
        """Write result's values into self's memory (cast to self's dtype) and bump the version."""
        if result.dtype != self.dtype:
            _check_cast(result.dtype, self.dtype)
        if tuple(result.shape) != tuple(self.shape):
            raise RuntimeError(f"{name}: output with shape {list(self.shape)} doesn't match the broadcast shape "
                               f"{list(result.shape)}")
        self.array[...] = result.array
        self._bump()

    def _direct(self, name, write, *operands):
        """Where no gradient can flow: write(self.array), straight on the array, and True; else False."""
        self._check_write(name)
        if autograd.is_grad_enabled() and (self.requires_grad or builtins.any(
                isinstance(o, Tensor) and o.requires_grad for o in operands)):
            return False
        write(self.array)
        self._bump()
        return True

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        if isinstance(value, Tensor) and value.ndim != 0:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with "
                               f"{value.ndim} dimensions.")
        v = _scalar(value) if not isinstance(value, Tensor) else value

        def write(a):
            a[...] = _scalar(v)
        return self if self._direct("fill_", write, v) else self._write("fill_", _fill, v)

    def copy_(self, src, non_blocking=False):
        """self's values = src's (broadcast to self's shape, cast to its dtype, moved to its device)."""
        src = src if isinstance(src, Tensor) else Tensor(src)

        def write(a):
            a[...] = _move(src.array, self.device) if get_array_module(src.array) is not get_array_module(a) \
                else src.array
        return self if self._direct("copy_", write, src) else self._write("copy_", _copy_from, src)

    def add_(self, other, alpha=1):
        return self._write("add_", lambda s, o: s + (o * alpha if alpha != 1 else o), other)

    def sub_(self, other, alpha=1):
        return self._write("sub_", lambda s, o: s - (o * alpha if alpha != 1 else o), other)

    def mul_(self, other):
        return self._write("mul_", Tensor.__mul__, other)

    def div_(self, other, *, rounding_mode=None):
        _check_rounding(rounding_mode)
        return self._write("div_", lambda a, b: a.div(b, rounding_mode=rounding_mode), other)

    def floor_divide_(self, other):
        return self._write("floor_divide_", Tensor.__floordiv__, other)

    def remainder_(self, other):
        return self._write("remainder_", Tensor.__mod__, other)

    def pow_(self, exponent):
        return self._write("pow_", Tensor.__pow__, exponent)

    def neg_(self):
        return self._write("neg_", Tensor.__neg__)

    def abs_(self):
        return self._write("abs_", Tensor.abs)

    def sqrt_(self):
        return self._write("sqrt_", Tensor.sqrt)

    def exp_(self):
        return self._write("exp_", Tensor.exp)

    def log_(self):
        return self._write("log_", Tensor.log)

    def relu_(self):
        return self._write("relu_", Tensor.relu)

    def sigmoid_(self):
        return self._write("sigmoid_", Tensor.sigmoid)

    def tanh_(self):
        return self._write("tanh_", Tensor.tanh)

    def clamp_(self, min=None, max=None):
        return self._write("clamp_", lambda s: s.clamp(min, max))

    clip_ = clamp_

    def clamp_min_(self, min):
        return self._write("clamp_min_", lambda s: s.clamp(min=min))

    def clamp_max_(self, max):
        return self._write("clamp_max_", lambda s: s.clamp(max=max))

    def masked_fill_(self, mask, value):
        return self._write("masked_fill_", lambda s, v: s.masked_fill(mask, v), value)

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        rng = rng_of(generator, "normal_")

        def write(a):
            a[...] = _random_like(a, lambda shape: rng.normal(mean, std, size=shape))
        return self if self._direct("normal_", write) else self._write("normal_", lambda s: _fill(s, 0) + Tensor._wrap(
            _random_like(s.array, lambda shape: rng.normal(mean, std, size=shape))))

    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        rng = rng_of(generator, "uniform_")

        def write(arr):
            arr[...] = _random_like(arr, lambda shape: rng.uniform(a, b, size=shape))
        return self if self._direct("uniform_", write) else self._write("uniform_", lambda s: _fill(s, 0) + Tensor._wrap(
            _random_like(s.array, lambda shape: rng.uniform(a, b, size=shape))))

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def __ifloordiv__(self, other):
        return self.floor_divide_(other)

    def __imod__(self, other):
        return self.remainder_(other)

    def __ipow__(self, exponent):
        return self.pow_(exponent)

    # torch defines no __imatmul__: `a @= b` makes a new tensor and rebinds the name, as there

    def __setitem__(self, index, value):
        """self[index] = value: written in place; differentiable (index_put) where a gradient can flow."""
        index = _index(index)
        if isinstance(value, Tensor) or hasattr(value, "shape"):
            value = value if isinstance(value, Tensor) else Tensor(value)
        else:
            value = _scalar(value)

        def write(a):
            a[index] = value.array if isinstance(value, Tensor) else value
        return self if self._direct("__setitem__", write, value) else self._write(
            "__setitem__", lambda s, v: _index_put(s, index, v), value)

    def t_(self):
        return self._reshape_in_place("t_", self.t())

    def squeeze_(self, dim=None):
        return self._reshape_in_place("squeeze_", self.squeeze(dim))

    def unsqueeze_(self, dim):
        return self._reshape_in_place("unsqueeze_", self.unsqueeze(dim))

    def _reshape_in_place(self, name, view):
        """t_, squeeze_, unsqueeze_: this tensor takes the view's shape (same memory, same counter)."""
        if autograd.is_grad_enabled() and self._requires_grad and self._node is None:
            raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place operation.")
        self.array, self._node = view.array, view._node
        if self._view_base is not None:
            self._steps = view._steps
            self._view_version = self._counter.value
        return self

    # -- reshaping: views of the same memory (see "Storage, views and the version counter") -------

    def view(self, *shape):
        """The same memory in a new shape; an error where the layout allows no view (use reshape)."""
        shape = _shape_ints("view", shape)
        out = self._reshaped(shape)
        if not _is_view(out, self.array) and self._view_base is None and not self._counter.shared:
            # no one else sees this memory, and its layout is minicnn's choice (a pooling's output
            # may be strided where torch's is contiguous): lay it out contiguously, as torch would have
            self.array = get_array_module(self.array).ascontiguousarray(self.array)
            self._counter.root = id(_root(self.array))
            out = self._reshaped(shape)
        if not _is_view(out, self.array):
            raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                               "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
        t = self._view_of(out, T.reshape_backward, self.array.shape, "view", functools.partial(_reshape, out.shape))
        t._reshaped_from = tuple(self.shape)
        return t

    def reshape(self, *shape):
        """A view where the layout allows one (as view()), else a copy in the new shape."""
        shape = _shape_ints("reshape", shape)
        out = self._reshaped(shape)
        if _is_view(out, self.array):
            t = self._view_of(out, T.reshape_backward, self.array.shape, "view",
                              functools.partial(_reshape, out.shape))
        else:
            t = record(out, T.reshape_backward, self.array.shape, (self,), "view")
        t._reshaped_from = tuple(self.shape)
        return t

    def _reshaped(self, shape):
        try:
            return self.array.reshape(shape)
        except ValueError:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {self.array.size} "
                               f"(a tensor of shape {tuple(self.shape)})") from None

    def view_as(self, other):
        return self.view(*other.shape)

    def reshape_as(self, other):
        return self.reshape(*other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        nd = builtins.max(self.ndim, 1)
        start, end = _dim(start_dim, nd), _dim(end_dim, nd)
        if start > end:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        shape = self.shape
        return self.reshape(*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if len(dims) != self.ndim:
            raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                               f"length of the desired ordering of dimensions i.e. input.dim() = {self.ndim} is not "
                               f"equal to len(dims) = {len(dims)}")
        dims = tuple(_dim(d, builtins.max(self.ndim, 1)) for d in dims)
        if sorted(dims) != list(range(self.ndim)):
            raise RuntimeError(f"permute(): duplicate dims are not allowed: {dims}")
        out, cache = T.transpose(self.array, dims)
        return self._view_of(out, T.transpose_backward, cache, "permute", functools.partial(_transpose, dims))

    def transpose(self, dim0, dim1):
        nd = builtins.max(self.ndim, 1)
        dims = list(range(self.ndim))
        dim0, dim1 = _dim(dim0, nd), _dim(dim1, nd)
        if self.ndim:
            dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(*dims)

    swapaxes = swapdims = transpose

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self.T

    def squeeze(self, dim=None):
        if dim is None:
            shape = [s for s in self.shape if s != 1]
        else:
            nd = builtins.max(self.ndim, 1)
            dims = {_dim(d, nd) for d in ((dim,) if isinstance(dim, numbers.Integral) else dim)}
            shape = [s for i, s in enumerate(self.shape) if not (i in dims and s == 1)]
        return self.reshape(*shape)

    def unsqueeze(self, dim):
        dim = _dim(dim, self.ndim + 1)
        shape = list(self.shape)
        shape.insert(dim, 1)
        return self.reshape(*shape)

    def expand(self, *shape):
        shape = _shape_ints("expand", shape)
        lead = len(shape) - self.ndim
        if lead < 0:
            raise RuntimeError(f"expand: the number of sizes provided ({len(shape)}) must be greater or equal to "
                               f"the number of dimensions in the tensor ({self.ndim})")
        shape = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
        if shape == tuple(self.shape):  # nothing broadcast: a plain (writable) view
            return self._view_of(self.array[...], T.expand_backward, self.array.shape, "expand", _whole)
        out, cache = T.expand(self.array, shape)
        return self._view_of(out, T.expand_backward, cache, "expand", functools.partial(_broadcast, shape))

    def expand_as(self, other):
        return self.expand(*other.shape)

    def contiguous(self, memory_format=None):
        """self when its memory is C-contiguous, else a copy that is (new memory: writes do not reach self)."""
        if self.array.flags.c_contiguous:
            return self
        xp = get_array_module(self.array)
        return record(xp.ascontiguousarray(self.array), _identity_backward, None, (self,), "clone")

    def is_contiguous(self, memory_format=None):
        return builtins.bool(self.array.flags.c_contiguous)

    def __getitem__(self, index):
        """x[index]: a view for ints, slices, None and ...; a copy for advanced indices (tensors, lists, masks)."""
        index = _index(index)
        if T._is_basic(index):
            index = index if isinstance(index, tuple) else (index,)
            if not builtins.any(p is Ellipsis for p in index):
                index = index + (Ellipsis,)  # so that x[0] of a 1-d x is a 0-d view, not a NumPy scalar
        out, cache = T.getitem(self.array, index)
        if _is_view(out, self.array):
            return self._view_of(out, T.getitem_backward, cache, "index", functools.partial(_pick, index))
        return record(out, T.getitem_backward, cache, (self,), "index")

    # -- reductions ----------------------------------------------------------------------------

    def sum(self, dim=None, keepdim=False, dtype=None, axis=None):
        dim = axis if dim is None else dim
        x = self.type(dtype) if dtype is not None else self
        if x.dtype.kind in "biu" and dtype is None:
            x = x.type(int64)
        out, cache = T.sum(x.array, _dim(dim, x.ndim), keepdim)
        return record(out, T.sum_backward, cache, (x,), "sum")

    def mean(self, dim=None, keepdim=False, dtype=None, axis=None):
        dim = axis if dim is None else dim
        if self.dtype.kind not in "fc" and dtype is None:
            raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a floating "
                               f"point or complex dtype. Got: {self.dtype}")
        x = self.type(dtype) if dtype is not None else self
        out, cache = T.mean(x.array, _dim(dim, x.ndim), keepdim)
        return record(out, T.mean_backward, cache, (x,), "mean")

    def _extreme(self, name, dim, keepdim, other):
        if isinstance(dim, Tensor) or other is not None:  # torch.max(a, b): the element-wise maximum
            o = other if other is not None else dim
            return minimum(self, o) if name == "min" else maximum(self, o)
        if dim is None:
            out, cache = (T.max if name == "max" else T.min)(self.array)
            return record(out, T.max_backward, cache, (self,), name)
        dim = _dim(dim, self.ndim)
        (values, index), cache = (T.max_along if name == "max" else T.min_along)(self.array, dim, keepdim)
        values = record(values, T.max_along_backward, cache, (self,), name)
        return _ValuesIndices(values, Tensor._wrap(index.astype(np.int64, copy=False)))

    def max(self, dim=None, keepdim=False, other=None):
        """max() over all; max(dim) -> (values, indices); max(other) element-wise."""
        return self._extreme("max", dim, keepdim, other)

    def min(self, dim=None, keepdim=False, other=None):
        return self._extreme("min", dim, keepdim, other)

    def amax(self, dim=None, keepdim=False):
        out, cache = T.max(self.array, _dim(dim, self.ndim), keepdim)
        return record(out, T.max_backward, cache, (self,), "amax")

    def amin(self, dim=None, keepdim=False):
        out, cache = T.min(self.array, _dim(dim, self.ndim), keepdim)
        return record(out, T.min_backward, cache, (self,), "amin")

    def argmax(self, dim=None, keepdim=False):
        dim = _dim(dim, self.ndim)
        a = self.array if dim is not None else self.array.reshape(-1)
        index = T.argmax(a, 0 if dim is None else dim).astype(np.int64, copy=False)
        if keepdim and dim is not None:
            index = get_array_module(index).expand_dims(index, dim)
        return Tensor._wrap(index)

    def argmin(self, dim=None, keepdim=False):
        dim = _dim(dim, self.ndim)
        a = self.array if dim is not None else self.array.reshape(-1)
        index = T.argmin(a, 0 if dim is None else dim).astype(np.int64, copy=False)
        if keepdim and dim is not None:
            index = get_array_module(index).expand_dims(index, dim)
        return Tensor._wrap(index)

    def var(self, dim=None, unbiased=True, keepdim=False, correction=None):
        if correction is None:
            correction = 1 if unbiased else 0
        mean = self.mean(dim, keepdim=True)
        dims = _dim(dim, self.ndim)
        count = self.array.size if dims is None else math.prod(
            self.shape[d] for d in ((dims,) if isinstance(dims, builtins.int) else dims))
        return ((self - mean) ** 2).sum(dim, keepdim=keepdim) / builtins.max(count - correction, 0)

    def std(self, dim=None, unbiased=True, keepdim=False, correction=None):
        return self.var(dim, unbiased, keepdim, correction).sqrt()

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        """The vector p-norm over dim (None: all dims): p = 2 or 'fro' (the same for a vector norm), 1, inf."""
        if p == "fro":
            p = 2
        if p not in (1, 2, math.inf):
            raise NotImplementedError(f"norm: p={p!r} is not implemented; minicnn has p=2 (or 'fro'), p=1 and "
                                      "p=float('inf')")
        x = self.type(dtype) if dtype is not None else self
        if x.dtype.kind not in "fc":
            raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. "
                               f"Got {x.dtype}")
        out, cache = T.norm(x.array, p, _dim(dim, x.ndim), keepdim)
        return record(out, T.norm_backward, cache, (x,), "norm")

    def all(self):
        return Tensor._wrap(get_array_module(self.array).asarray(self.array.all()))

    def any(self):
        return Tensor._wrap(get_array_module(self.array).asarray(self.array.any()))

    def topk(self, k, dim=-1, largest=True, sorted=True):
        xp = get_array_module(self.array)
        dim = _dim(dim, self.ndim)
        # largest first: sort -x, or ~x for integers (it reverses their order without wrapping around)
        key = (-self.array if self.dtype.kind in "fc" else ~self.array) if largest else self.array
        k = _int("topk", k, "k")
        if not 0 <= k <= (self.shape[dim] if self.ndim else 1):
            raise RuntimeError(f"selected index k out of range: k={k} for a dimension of size "
                               f"{self.shape[dim] if self.ndim else 1}")
        order = xp.argsort(key, axis=dim, kind="stable")
        index = xp.take(order, xp.arange(k), axis=dim)
        values = self.gather(dim, Tensor._wrap(index))
        return _ValuesIndices(values, Tensor._wrap(index.astype(np.int64)))

    def gather(self, dim, index):
        xp = get_array_module(self.array)
        idx = index.array if isinstance(index, Tensor) else xp.asarray(index)
        dim = _dim(dim, self.ndim)
        grid = list(xp.indices(idx.shape, sparse=True))
        grid[dim] = idx
        return self[tuple(Tensor._wrap(g) for g in grid)]

    # -- element-wise functions ----------------------------------------------------------------

    def _unary(self, pair, backward, name, *args):
        x = self if self.dtype.kind in "fc" else self.type(_DEFAULT_FLOAT)
        out, cache = pair(x.array, *args)
        return record(out, backward, cache, (x,), name)

    def exp(self):
        return self._unary(T.exp, T.exp_backward, "exp")

    def log(self):
        return self._unary(T.log, T.log_backward, "log")

    def sqrt(self):
        return self._unary(T.sqrt, T.sqrt_backward, "sqrt")

    def abs(self):
        out, cache = T.abs(self.array)
        return record(out, T.abs_backward, cache, (self,), "abs")

    def clamp(self, min=None, max=None):
        out, cache = T.clamp(self.array, _scalar(min), _scalar(max))
        return record(out, T.clamp_backward, cache, (self,), "clamp")

    clip = clamp

    def masked_fill(self, mask, value):
        """value where mask is True, else self (self's dtype kept)."""
        mask = mask if isinstance(mask, Tensor) else Tensor(mask)
        if mask.dtype != bool:
            raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {mask.dtype}")
        if isinstance(value, Tensor):
            if value.ndim != 0:
                raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                                   f"{value.ndim} dimension(s).")
            value = value.type(self.dtype)
        else:
            value = Tensor._wrap(get_array_module(self.array).asarray(_scalar(value)).astype(self.dtype))
        return where(mask, value, self)

    def relu(self):
        if self.dtype.kind == "b":
            raise RuntimeError("Boolean inputs not supported for relu")
        if self.dtype.kind in "iu":  # torch keeps an integer dtype (and an integer tensor has no gradient)
            return Tensor._wrap(A.relu(self.array)[0])
        return self._unary(A.relu, A.relu_backward, "relu")

    def sigmoid(self):
        return self._unary(A.sigmoid, A.sigmoid_backward, "sigmoid")

    def tanh(self):
        return self._unary(A.tanh, A.tanh_backward, "tanh")

    def softmax(self, dim):
        return self._unary(A.softmax, A.softmax_backward, "softmax", _dim(dim, self.ndim))

    def log_softmax(self, dim):
        return self._unary(A.log_softmax, A.log_softmax_backward, "log_softmax", _dim(dim, self.ndim))

    # -- arithmetic ----------------------------------------------------------------------------

    def _binary(self, other, pair, backward, name, reflected=False, true_division=False):
        a, b = _operands(self, other, true_division)
        if reflected:
            a, b = b, a
        if pair in (T.mul, T.div) and a.requires_grad != b.requires_grad and autograd.is_grad_enabled():
            # one side is a constant for the tape: keep only what the other side's gradient needs
            if pair is T.mul:
                out, cache = T.mul_one_side(a.array, b.array, 0 if a.requires_grad else 1)
                return record(out, T.mul_one_side_backward, cache, (a, b), name)
            if a.requires_grad:
                out, cache = T.div_by_constant(a.array, b.array)
                return record(out, T.div_by_constant_backward, cache, (a, b), name)
        out, cache = pair(a.array, b.array)
        return record(out, backward, cache, (a, b), name)

    def __add__(self, other):
        return self._binary(other, T.add, T.add_backward, "add")

    def __radd__(self, other):
        return self._binary(other, T.add, T.add_backward, "add", reflected=True)

    def __sub__(self, other):
        return self._binary(other, T.sub, T.sub_backward, "sub")

    def __rsub__(self, other):
        return self._binary(other, T.sub, T.sub_backward, "sub", reflected=True)

    def __mul__(self, other):
        return self._binary(other, T.mul, T.mul_backward, "mul")

    def __rmul__(self, other):
        return self._binary(other, T.mul, T.mul_backward, "mul", reflected=True)

    def __truediv__(self, other):
        return self._binary(other, T.div, T.div_backward, "div", true_division=True)

    def __rtruediv__(self, other):
        return self._binary(other, T.div, T.div_backward, "div", reflected=True, true_division=True)

    def __matmul__(self, other):
        _check_matmul_dtypes(self, other)
        return self._binary(other, T.matmul, T.matmul_backward, "matmul")

    def __rmatmul__(self, other):
        _check_matmul_dtypes(other, self)
        return self._binary(other, T.matmul, T.matmul_backward, "matmul", reflected=True)

    def __neg__(self):
        out, cache = T.neg(self.array)
        return record(out, T.neg_backward, cache, (self,), "neg")

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            a, b = _operands(self, exponent, False)
            out, cache = T.pow_tensor(a.array, b.array)
            return record(out, T.pow_tensor_backward, cache, (a, b), "pow")
        # a NumPy scalar is a number too: np.float64(2) keeps float32; torch reads a NumPy bool as a float
        exponent = builtins.float(exponent) if isinstance(exponent, np.bool_) else _scalar(exponent)
        x = self if (self.dtype.kind in "fc" or isinstance(exponent, numbers.Integral)) else self.type(_DEFAULT_FLOAT)
        out, cache = T.pow(x.array, exponent)
        return record(out, T.pow_backward, cache, (x,), "pow")

    def __rpow__(self, base):
        exponent, base = _operands(self, base, False)  # a number base takes t's dtype (float32 for 2.5 ** int t)
        out, cache = T.pow_tensor(base.array, exponent.array)
        return record(out, T.pow_tensor_backward, cache, (base, exponent), "pow")

    def __floordiv__(self, other):
        a, b = _operands(self, other, False)
        if a.dtype.kind in "biu" and builtins.bool((b.array == 0).any()):
            raise RuntimeError("ZeroDivisionError: integer floor division by zero (a float tensor gives inf)")
        return Tensor._wrap(a.array // b.array)

    def __mod__(self, other):
        a, b = _operands(self, other, False)
        return Tensor._wrap(a.array % b.array)

    add = __add__
    sub = __sub__
    mul = __mul__

    def div(self, other, *, rounding_mode=None):
        """self / other; rounding_mode 'floor' rounds down, 'trunc' towards zero (no gradient then, as in torch)."""
        if _check_rounding(rounding_mode) is None:
            return self.__truediv__(other)
        if rounding_mode == "floor":
            return self.__floordiv__(other)
        a, b = _operands(self, other, False)
        if a.dtype.kind in "biu":
            if builtins.bool((b.array == 0).any()):
                raise RuntimeError("ZeroDivisionError: integer division by zero (a float tensor gives inf)")
            q = a.array // b.array
            # // rounds down; towards zero differs where the division is inexact and the signs differ
            q = q + ((a.array % b.array != 0) & ((a.array < 0) != (b.array < 0)))
            return Tensor._wrap(q.astype(a.dtype, copy=False))
        return Tensor._wrap(get_array_module(a.array).trunc(a.array / b.array))

    divide = true_divide = div
    matmul = __matmul__
    mm = __matmul__
    pow = __pow__
    neg = __neg__

    # -- comparisons: bool tensors, no gradient ------------------------------------------------

    def _compare(self, other, op):
        a, b = _operands(self, other, False)
        return Tensor._wrap(op(a.array, b.array))

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def __and__(self, other):
        return self._compare(other, lambda a, b: a & b)

    def __or__(self, other):
        return self._compare(other, lambda a, b: a | b)

    def __invert__(self):
        return Tensor._wrap(~self.array)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def equal(self, other):
        return equal(self, other)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return allclose(self, other, rtol, atol, equal_nan)


class _ValuesIndices(tuple):
    """torch.return_types.max: a (values, indices) pair with those names."""

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


autograd.Tensor = Tensor


# -- NumPy's spellings, which torch accepts too -----------------------------------------------------
#
# torch's argument parser takes axis= for dim= and keepdims= for keepdim= in every function, and
# has NumPy's names for many ops (multiply, absolute, swapaxes, ...). The same here: the names
# below are the same functions, and every method with a dim or keepdim takes the NumPy keyword.

_NUMPY_KEYWORDS = {"axis": "dim", "keepdims": "keepdim"}


def _numpy_keywords(fn):
    """fn, also taking axis= for dim= and keepdims= for keepdim= (both at once: torch's TypeError)."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        if "axis" in kwargs or "keepdims" in kwargs:
            for numpy_name, torch_name in _NUMPY_KEYWORDS.items():
                if numpy_name in kwargs:
                    if torch_name in kwargs:
                        raise TypeError(f"{fn.__name__}() got multiple values for argument '{torch_name}' "
                                        f"('{numpy_name}' is another name for it)")
                    kwargs[torch_name] = kwargs.pop(numpy_name)
        return fn(*args, **kwargs)
    call._numpy_keywords = True
    return call


def _takes_dim(fn):
    try:
        names = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return ("dim" in names or "keepdim" in names) and not getattr(fn, "_numpy_keywords", False)


def _with_numpy_keywords(namespace):
    """Wrap each function of namespace (a dict: a class's or a module's) that has dim or keepdim."""
    for name, value in list(namespace.items()):
        if inspect.isfunction(value) and _takes_dim(value):
            namespace[name] = _numpy_keywords(value)


def _numpy_aliases_of_methods():
    for name, fn in list(vars(Tensor).items()):
        if inspect.isfunction(fn) and _takes_dim(fn):
            setattr(Tensor, name, _numpy_keywords(fn))
    aliases = {"multiply": "mul", "multiply_": "mul_", "subtract": "sub", "subtract_": "sub_", "divide_": "div_",
               "true_divide_": "div_", "absolute": "abs", "absolute_": "abs_", "negative": "neg",
               "negative_": "neg_", "greater": "gt", "greater_equal": "ge", "less": "lt", "less_equal": "le",
               "not_equal": "ne", "ndimension": "dim", "moveaxis": "movedim"}
    for alias, name in aliases.items():
        setattr(Tensor, alias, getattr(Tensor, name))


def _movedim(self, source, destination):
    """The dims at source moved to destination, the rest in their order (a view, as permute)."""
    many = isinstance(source, (tuple, list))
    source = (source,) if not many else tuple(source)
    destination = (destination,) if not isinstance(destination, (tuple, list)) else tuple(destination)
    if len(source) != len(destination):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(source)} dims) should "
                           f"contain the same number of dims as destination ({list(destination)} dims)")
    nd = builtins.max(self.ndim, 1)
    source = [_dim(d, nd) for d in source]
    destination = [_dim(d, nd) for d in destination]
    if len(set(source)) != len(source) or len(set(destination)) != len(destination):
        raise RuntimeError("movedim: repeated dim in `source` or `destination`")
    order = [None] * self.ndim
    for s, d in zip(source, destination):
        order[d] = s
    rest = iter(d for d in range(self.ndim) if d not in source)
    return self.permute(*[next(rest) if o is None else o for o in order])


Tensor.movedim = _movedim


# -- more of torch's Tensor methods that programs reach for, built from the recorded ops above -------


def _split(self, split_size, dim=0):
    """Views of consecutive pieces along dim: of split_size each (the last may be smaller), or of the
    listed sizes (which must add up to the dim's size)."""
    dim = _dim(dim, self.ndim)
    n = self.shape[dim]
    if isinstance(split_size, (list, tuple)):
        sizes = [_int("split", s, "split_sizes") for s in split_size]
        if builtins.sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size "
                               f"at dimension {dim}), but got split_sizes={sizes}")
    else:
        size = _int("split", split_size, "split_size")
        if size <= 0 and n:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}")
        sizes = [builtins.min(size, n - start) for start in range(0, n, size)] if n else [0]
    pieces, start = [], 0
    for s in sizes:
        pieces.append(self.narrow(dim, start, s))
        start += s
    return tuple(pieces)


def _chunk(self, chunks, dim=0):
    """At most `chunks` views along dim, each of ceil(size / chunks) (the last may be smaller)."""
    chunks = _int("chunk", chunks, "chunks")
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0, got: " + str(chunks))
    n = self.shape[_dim(dim, self.ndim)]
    if n == 0:  # as torch: `chunks` empty pieces
        return tuple(self.narrow(dim, 0, 0) for _ in range(chunks))
    return _split(self, -(-n // chunks), dim)


def _narrow(self, dim, start, length):
    """The view self[..., start:start + length, ...] along dim."""
    dim = _dim(dim, self.ndim)
    start, length = _int("narrow", start, "start"), _int("narrow", length, "length")
    n = self.shape[dim]
    start = start + n if start < 0 else start
    if not (0 <= start <= n and 0 <= length <= n - start):
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return self[(slice(None),) * dim + (slice(start, start + length),)]


def _unbind(self, dim=0):
    """The views self.select(dim, i), i = 0 .. size - 1 (the dim removed)."""
    dim = _dim(dim, self.ndim)
    return tuple(self[(slice(None),) * dim + (i,)] for i in range(self.shape[dim]))


def _repeat(self, *sizes):
    """Tile the tensor sizes[i] times along dim i (leading sizes add dims), as torch's repeat: a copy.
    Built as a view (1, s) per dim, expanded to (r, s), reshaped to r * s: the gradient sums the tiles."""
    sizes = _shape_ints("repeat", sizes)
    if len(sizes) < self.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions "
                           "of tensor")
    shape = (1,) * (len(sizes) - self.ndim) + tuple(self.shape)
    paired = self.reshape(*[d for s in shape for d in (1, s)])
    tiled = paired.expand(*[d for r, s in zip(sizes, shape) for d in (r, s)])
    return tiled.reshape(*[r * s for r, s in zip(sizes, shape)])


def _flip(self, *dims):
    """The values in reverse order along each of dims (a copy, as torch's)."""
    dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
    out = self
    for d in {_dim(d, self.ndim) for d in dims}:
        out = out[(slice(None),) * d + (arange(self.shape[d] - 1, -1, -1),)]
    return out if out is not self else self.clone()


def _index_select(self, dim, index):
    """The entries at index (a 1-d integer tensor) along dim, a copy; its gradient adds back per index."""
    index = _t(index)
    if index.ndim > 1 or index.dtype.kind not in "iu":
        raise IndexError(f"index_select(): Index is supposed to be a vector of integers, got {index.dtype} "
                         f"of shape {tuple(index.shape)}")
    return self[(slice(None),) * _dim(dim, self.ndim) + (index.reshape(-1),)]


def _scatter_(self, dim, index, src=None, value=None, *, reduce=None):
    """self[..., index[i][j], ...] = src[i][j] (or value) along dim, in place; as torch's scatter_,
    the one-hot idiom zeros(n, 10).scatter_(1, labels.unsqueeze(1), 1). Not recorded: a tensor
    that needs a gradient through it is refused (use a mask and where)."""
    if reduce is not None:
        raise NotImplementedError("scatter_(reduce=...): minicnn has the plain scatter only")
    if src is None:
        src = value
    index = _t(index)
    if index.dtype.kind not in "iu":
        raise RuntimeError(f"scatter(): Expected dtype int64 for index, got {index.dtype}")
    if isinstance(src, Tensor) and src.dtype != self.dtype:
        raise RuntimeError(f"scatter(): Expected self.dtype to be equal to src.dtype ({self.dtype} and {src.dtype})")
    xp = get_array_module(self.array)
    dim = _dim(dim, self.ndim)
    idx = index.array
    if idx.ndim != self.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    values = src.array if isinstance(src, Tensor) else src
    grids = list(xp.indices(idx.shape, sparse=True))
    grids[dim] = idx
    cells = values[tuple(slice(0, n) for n in idx.shape)] if hasattr(values, "shape") and values.ndim else values

    def write(a):
        a[tuple(grids)] = cells
    if not self._direct("scatter_", write, src):
        raise RuntimeError("scatter_: minicnn does not record scatter, and a gradient would flow here; build "
                           "the tensor under no_grad(), or from a mask with where()")
    return self


Tensor.split, Tensor.chunk, Tensor.narrow, Tensor.unbind = _split, _chunk, _narrow, _unbind
Tensor.repeat, Tensor.flip, Tensor.index_select = _repeat, _flip, _index_select
Tensor.scatter_ = _scatter_
Tensor.square = lambda self: self * self
Tensor.square.__doc__ = "self * self, with its gradient 2 * self * dout."
Tensor.isnan = lambda self: Tensor._wrap(get_array_module(self.array).isnan(self.array))
Tensor.isinf = lambda self: Tensor._wrap(get_array_module(self.array).isinf(self.array))
Tensor.isfinite = lambda self: Tensor._wrap(get_array_module(self.array).isfinite(self.array))
Tensor.stride = lambda self, dim=None: (tuple(s // self.array.itemsize for s in self.array.strides) if dim is None
                                        else self.array.strides[_dim(dim, self.ndim)] // self.array.itemsize)
Tensor.data_ptr = lambda self: builtins.int(self.array.__array_interface__["data"][0]) \
    if not is_cupy_array(self.array) else builtins.int(self.array.data.ptr)


def _new_like(name):
    """self.new_zeros(2, 3) and friends: the creation function, with self's dtype and device."""
    def new(self, *size, dtype=None, device=None, requires_grad=False):
        return globals()[name](*size, dtype=dtype or self.dtype, device=device or self.device,
                               requires_grad=requires_grad)
    new.__name__ = "new_" + name
    return new


Tensor.new_zeros, Tensor.new_ones, Tensor.new_empty = _new_like("zeros"), _new_like("ones"), _new_like("empty")
Tensor.new_full = lambda self, size, fill_value, dtype=None, device=None, requires_grad=False: full(
    size, fill_value, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)
Tensor.new_tensor = lambda self, data, dtype=None, device=None, requires_grad=False: tensor(
    data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)
Tensor.itemsize = property(lambda self: self.array.itemsize, doc="bytes per element, as element_size()")
Tensor.nbytes = property(lambda self: self.array.nbytes, doc="bytes of the data: numel() * itemsize")
_numpy_aliases_of_methods()


def _check_rounding(mode):
    if mode not in (None, "floor", "trunc"):
        raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{mode}'")
    return mode


# -- helpers of the storage model and the in-place writes -------------------------------------------


def _init(t, array):
    """The fields every Tensor has: its array, its place on the tape, its memory's version counter."""
    t.array = array
    t._requires_grad = False
    t._node = None
    t._counter = _Version(array)
    t._hooks = []
    t.grad = None
    t._view_base = None  # for a view: the tensor whose memory it shows (never itself a view)
    t._steps = ()  # for a view: (take, backward, cache, name) per step from the base, take(array) -> view
    t._view_version = 0  # the counter's value when the view's node was made
    t._grad_view = True  # False for a view made under no_grad: it never joins the base's graph


_NO_GRAD_VIEW = ("A view was created in no_grad mode and is being modified inplace with grad mode enabled. Given "
                 "that this use case is ambiguous and error-prone, it is forbidden. You can clarify your code by "
                 "moving both the view and the inplace either both inside the no_grad block (if you don't want the "
                 "inplace to be tracked) or both outside (if you want the inplace to be tracked).")


def _replay(base, steps):
    """The view that `steps` take of base, recorded from base's node as it is now."""
    t = base
    with autograd.enable_grad():
        for take, backward, cache, name in steps:
            t = record(take(t.array), backward, cache, (t,), name)
    return t


def _caches_hold(node, start, root):
    """True when a node made after serial `start`, behind `node`, caches memory of the array id root."""
    stack = [node]
    while stack:
        n = stack.pop()
        if type(n) is not autograd.Node or n.serial <= start:
            continue
        if autograd._refers(n.cache, root):
            return True
        stack.extend(n.inputs)
    return False


def _check_cast(source, target):
    """torch's rule for writing a result into an existing tensor: never to a lower kind
    (complex -> real, float -> integer, anything but bool -> bool)."""
    s, t = np.dtype(source).kind, np.dtype(target).kind
    if (s == "c" and t != "c") or (s == "f" and t in "biu") or (s != "b" and t == "b"):
        raise RuntimeError(f"result type {autograd.TORCH_NAMES.get(str(source), source)} can't be cast to the desired "
                           f"output type {autograd.TORCH_NAMES.get(str(target), target)}")


def _random_like(a, draw):
    """Random values of a's shape and dtype, on a's device, from minicnn's generator."""
    return get_array_module(a).asarray(draw(a.shape).astype(a.dtype))


def _fill(src, value):
    """src's shape and dtype, every cell `value` (a number or a 0-d Tensor); src gets a zero gradient."""
    if isinstance(value, Tensor):
        return _fill(src, 0) + value.type(src.dtype)
    out, cache = T.fill(src.array, value)
    return record(out, T.fill_backward, cache, (src,), "fill_")


def _copy_from(dest, src):
    """src broadcast to dest's shape, cast to its dtype and moved to its device: copy_'s new values."""
    if src.device != dest.device:
        src = src.to(dest.device)
    if src.dtype != dest.dtype:
        src = src.type(dest.dtype)
    out, cache = T.copy_into(dest.array, src.array)
    return record(out, T.copy_into_backward, cache, (dest, src), "copy_")


def _index_put(dest, index, value):
    """dest with dest[index] = value (cast to dest's dtype): __setitem__'s new values."""
    if isinstance(value, Tensor):
        if value.device != dest.device:
            value = value.to(dest.device)
        if value.dtype != dest.dtype:
            value = value.type(dest.dtype)
        out, cache = T.index_put(dest.array, index, value.array)
        return record(out, T.index_put_backward, cache, (dest, value), "index_put")
    out, cache = T.index_put(dest.array, index, value)
    return record(out, T.index_put_backward, cache, (dest, None), "index_put")


def _is_view(out, array):
    """True when out lies in array's memory (NumPy's reshape copies where the layout allows no view)."""
    return out.size == 0 or get_array_module(array).may_share_memory(out, array)


def _reshape(shape, a):
    return a.reshape(shape)


def _transpose(dims, a):
    return a.transpose(dims)


def _broadcast(shape, a):
    return get_array_module(a).broadcast_to(a, shape)


def _whole(a):
    return a[...]


def _pick(index, a):
    return a[index]


def _shape_ints(name, shape):
    """view(2, 3) or view((2, 3)): the shape as a tuple of ints. An int, a NumPy integer or a 0-d
    integer tensor counts; a float (30.0, from a division) or a bool is torch's TypeError."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(_int(name, s, "size", pos) for pos, s in enumerate(shape))


def _int(name, value, argument, pos=None):
    """value as an int, or torch's TypeError naming the function and the argument."""
    if not isinstance(value, builtins.bool):
        try:
            return operator.index(value)
        except TypeError:
            pass
    if pos is None:
        raise TypeError(f"{name}(): argument '{argument}' must be int, not {type(value).__name__}")
    raise TypeError(f"{name}(): argument '{argument}' must be tuple of ints, but found element of type "
                    f"{type(value).__name__} at pos {pos}")


class _HookHandle:
    """What register_hook returns: remove() takes the hook away again."""

    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


# -- helpers for the methods above -----------------------------------------------------------------


def _identity_backward(dout, cache):
    return dout


def _cast_back(dout, dtype):
    """The gradient of a cast is the gradient cast back to the input's dtype."""
    return dout.astype(dtype)


class _MoveBack:
    """Backward of a device move: the gradient goes back to the input's device."""

    def __init__(self, dev):
        self.dev = dev

    def __call__(self, dout, cache):
        return _move(dout, self.dev)


def _check_matmul_dtypes(a, b):
    """matmul promotes nothing, as in torch: float32 @ float64 is an error, not a float64 result."""
    da, db = (x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype for x in (a, b))
    if da != db:
        raise RuntimeError(f"matmul: expected both operands to have the same dtype, got {da} and {db}; "
                           "cast one with .to(dtype)")


def _scalar(value):
    if isinstance(value, Tensor):
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _dim(dim, ndim):
    """dim (an int, a tuple or list of ints, or None) checked against ndim and made >= 0, as torch:
    IndexError outside [-ndim, ndim - 1] (a 0-d tensor takes -1 and 0); an empty tuple means all dims."""
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        return tuple(_dim(d, ndim) for d in dim) or None
    if not isinstance(dim, numbers.Integral):
        raise TypeError(f"argument 'dim' must be int, not {type(dim).__name__}")
    n = builtins.max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


def _index(index):
    """A torch index with Tensors in it, as a NumPy index (a uint8 tensor as a bool mask; NumPy
    integers as Python ints, so that x[np.int64(0)] is a view like x[0])."""
    if isinstance(index, tuple):
        return tuple(_index_part(i) for i in index)
    if isinstance(index, list):
        return get_xp().asarray(index)
    return _index_part(index)


def _index_part(i):
    if isinstance(i, Tensor):
        return _mask(i.array)
    if isinstance(i, np.integer):
        return builtins.int(i)
    return i


def _mask(array):
    """A uint8 index array is a boolean mask, as in torch (which warns that this is deprecated)."""
    if array.dtype != uint8:
        return array
    if array.ndim:
        warnings.warn("indexing with dtype minicnn.uint8 is now deprecated, please use a dtype minicnn.bool instead.",
                      UserWarning, stacklevel=4)
    return array.astype(bool)


def _other_array(value, like):
    if isinstance(value, Tensor):
        return value.array
    return _scalar(value) if not hasattr(value, "shape") else get_array_module(like).asarray(value)


def _as_array(data, dtype):
    """A backend array for torch.tensor's accepted inputs, with torch's default dtypes:
    Python floats -> float32, ints -> int64, bools -> bool; arrays keep their dtype."""
    dtype = _dtype(dtype)
    if isinstance(data, Tensor):
        data = data.array
    xp = get_array_module(data) if hasattr(data, "dtype") and not isinstance(data, np.generic) else get_xp()
    if not hasattr(data, "dtype"):
        data = _nested_tensors_to_lists(data)
        probe = np.asarray(data)
        if dtype is None:
            dtype = _DEFAULT_FLOAT if probe.dtype.kind == "f" else int64 if probe.dtype.kind in "iu" else probe.dtype
        return xp.asarray(probe, dtype=dtype)
    if dtype is None:
        return xp.asarray(data)
    return xp.asarray(data, dtype=dtype)


def _nested_tensors_to_lists(data):
    if isinstance(data, Tensor):
        return to_numpy(data.array)
    if isinstance(data, (list, tuple)):
        return [_nested_tensors_to_lists(d) for d in data]
    return data


def _as_tensor_operand(value):
    """(operand, is_number): a Tensor as it is, an array as a Tensor, a number left as it is (weak)."""
    if isinstance(value, Tensor):
        return value, False
    if isinstance(value, (numbers.Number, np.generic)):
        return value, True  # a Python number: weak, it takes the tensor's dtype (NEP 50, as torch)
    return Tensor(value), False


def _operands(a, other, true_division):
    """Both operands as Tensors of torch's result dtype for a binary operation."""
    b, is_scalar = _as_tensor_operand(other)
    if is_scalar:
        s = builtins.float(b) if isinstance(b, np.bool_) else _scalar(b)  # torch reads a NumPy bool as a float
        kind = a.dtype.kind
        if kind in "biu" and (isinstance(s, builtins.float) or true_division):
            a = a.type(_DEFAULT_FLOAT)
        elif kind == "b" and isinstance(s, numbers.Integral) and not isinstance(s, builtins.bool):
            a = a.type(int64)
        xp = get_array_module(a.array)
        return a, Tensor._wrap(xp.asarray(s, dtype=a.dtype))
    ka, kb = a.dtype.kind, b.dtype.kind
    if ka in "fc" and kb not in "fc":
        b = b.type(a.dtype)
    elif kb in "fc" and ka not in "fc":
        a = a.type(b.dtype)
    elif true_division and ka not in "fc":
        a, b = a.type(_DEFAULT_FLOAT), b.type(_DEFAULT_FLOAT)
    same_kind = (ka in "fc") == (kb in "fc") and (ka == "b") == (kb == "b")
    if a.dtype != b.dtype and same_kind and (a.ndim == 0) != (b.ndim == 0):
        # torch: a 0-d tensor, like a number, does not widen a tensor with dims of its kind (float32 * 0-d float64)
        a, b = (a.type(b.dtype), b) if a.ndim == 0 else (a, b.type(a.dtype))
    if get_array_module(a.array) is not get_array_module(b.array) and a.ndim and b.ndim:
        raise RuntimeError(f"Expected all tensors to be on the same device, but found {a.device} and {b.device}")
    return a, b


# -- torch.* creation functions ------------------------------------------------------------------


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor with a copy of data (Python numbers, lists, arrays, Tensors)."""
    array = _as_array(data, dtype)
    array = array.copy() if array is (data.array if isinstance(data, Tensor) else data) else array
    if device is not None:
        array = _move(array, device)
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None):
    """A tensor sharing data's memory where it can (an array of the right dtype and device)."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    array = _as_array(data, dtype)
    if device is not None:
        array = _move(array, device)
    return Tensor._wrap(array)


def from_numpy(array):
    """A tensor sharing the NumPy array's memory (dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return Tensor._wrap(array)


def _new(fill, size, dtype, device, requires_grad, name):
    xp = _default_xp(device)
    array = fill(xp, _shape_ints(name, size), _dtype(dtype) or _DEFAULT_FLOAT)
    return Tensor(array, requires_grad=requires_grad)


def _size(shape, size):
    """The shape in either of torch's spellings: zeros(2, 3) or zeros((2, 3)), or zeros(size=(2, 3))."""
    if size is None:
        return shape
    if shape:
        raise TypeError(f"got the size twice: {shape} and size={size!r}; give one of them")
    return (size,)


def zeros(*shape, size=None, dtype=None, device=None, requires_grad=False):
    """A tensor of zeros: zeros(2, 3), zeros((2, 3)) or zeros(size=(2, 3)); float32 by default."""
    return _new(lambda xp, s, d: xp.zeros(s, dtype=d), _size(shape, size), dtype, device, requires_grad, "zeros")


def ones(*shape, size=None, dtype=None, device=None, requires_grad=False):
    """A tensor of ones: ones(2, 3), ones((2, 3)) or ones(size=(2, 3)); float32 by default."""
    return _new(lambda xp, s, d: xp.ones(s, dtype=d), _size(shape, size), dtype, device, requires_grad, "ones")


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor of shape size, every element fill_value (int64 for an int, bool for a bool, else float32)."""
    if dtype is None and isinstance(fill_value, numbers.Integral):
        dtype = bool if isinstance(fill_value, builtins.bool) else int64
    return _new(lambda xp, s, d: xp.full(s, fill_value, dtype=d), (size,), dtype, device, requires_grad,
                "full")


def empty(*shape, size=None, dtype=None, device=None, requires_grad=False):
    """Zeros: minicnn has no uninitialised memory to hand out."""
    return _new(lambda xp, s, d: xp.zeros(s, dtype=d), _size(shape, size), dtype, device, requires_grad, "empty")


def rand(*shape, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    """U[0, 1), from minicnn's generator (seeded by manual_seed), or from `generator`."""
    rng = rng_of(generator, "rand")
    return _new(lambda xp, s, d: xp.asarray(rng.random(s).astype(d)), _size(shape, size), dtype, device,
                requires_grad, "rand")


def randn(*shape, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    """N(0, 1), from minicnn's generator, or from `generator`."""
    rng = rng_of(generator, "randn")
    return _new(lambda xp, s, d: xp.asarray(rng.standard_normal(s).astype(d)), _size(shape, size), dtype,
                device, requires_grad, "randn")


def randint(low, high=None, size=None, generator=None, dtype=None, device=None):
    """Integers drawn uniformly from [low, high) (randint(high, size) starts at 0), int64 by default."""
    if high is None:
        low, high = 0, low
    xp = _default_xp(device)
    return Tensor._wrap(xp.asarray(rng_of(generator, "randint").integers(low, high, size=_shape_ints("randint", (size,))).astype(_dtype(dtype) or int64)))


def randperm(n, generator=None, dtype=None, device=None):
    """A random permutation of 0 .. n - 1, int64 by default."""
    xp = _default_xp(device)
    return Tensor._wrap(xp.asarray(rng_of(generator, "randperm").permutation(_int("randperm", n, "n")).astype(_dtype(dtype) or int64)))


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Like torch.arange: int64 for integer arguments, float32 when any is a float."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = int64 if builtins.all(isinstance(v, numbers.Integral) for v in (start, end, step)) else _DEFAULT_FLOAT
    xp = _default_xp(device)
    return Tensor(xp.arange(start, end, step, dtype=_dtype(dtype)), requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, device=None):
    """steps values evenly spaced from start to end, both included: shape (steps,)."""
    xp = _default_xp(device)
    return Tensor._wrap(xp.linspace(start, end, _int("linspace", steps, "steps"), dtype=_dtype(dtype) or _DEFAULT_FLOAT))


def eye(n, m=None, dtype=None, device=None):
    """The (n, m) identity matrix (m = n by default): ones on the diagonal."""
    xp = _default_xp(device)
    return Tensor._wrap(xp.eye(_int("eye", n, "n"), None if m is None else _int("eye", m, "m"), dtype=_dtype(dtype) or _DEFAULT_FLOAT))


def _like(fn, t, dtype, kwargs):
    return fn(*t.shape, dtype=dtype or t.dtype, device=kwargs.get("device", t.device),
              requires_grad=kwargs.get("requires_grad", False))


def zeros_like(t, dtype=None, **kwargs):
    """Zeros of t's shape, and its dtype and device unless given."""
    return _like(zeros, t, dtype, kwargs)


def ones_like(t, dtype=None, **kwargs):
    """Ones of t's shape, and its dtype and device unless given."""
    return _like(ones, t, dtype, kwargs)


def rand_like(t, dtype=None, **kwargs):
    """U[0, 1) values of t's shape, dtype and device."""
    return _like(rand, t, dtype, kwargs)


def randn_like(t, dtype=None, **kwargs):
    """N(0, 1) values of t's shape, dtype and device."""
    return _like(randn, t, dtype, kwargs)


def full_like(t, fill_value, dtype=None, **kwargs):
    """fill_value everywhere, in t's shape, dtype and device."""
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=kwargs.get("device", t.device))


def empty_like(t, dtype=None, **kwargs):
    """A tensor of t's shape, dtype and device (zeros: minicnn hands out no uninitialised memory)."""
    return zeros_like(t, dtype, **kwargs)


# -- torch.* operations ------------------------------------------------------------------------


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def cat(tensors, dim=0):
    """Join tensors along an existing dim (dtypes must agree)."""
    tensors = [_t(t) for t in tensors]
    if not tensors:
        raise RuntimeError("cat(): expected a non-empty list of Tensors")
    if len({t.dtype for t in tensors}) > 1:
        raise TypeError(f"cat: expected tensors of one dtype, got {[str(t.dtype) for t in tensors]}")
    out, cache = T.cat([t.array for t in tensors], _dim(dim, tensors[0].ndim))
    return record(out, T.cat_backward, cache, tuple(tensors), "cat")


concat = concatenate = cat


def stack(tensors, dim=0):
    """Join tensors of one shape along a new dim."""
    tensors = [_t(t) for t in tensors]
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    if len({tuple(t.shape) for t in tensors}) > 1:
        raise RuntimeError(f"stack expects each tensor to be equal size, got {[tuple(t.shape) for t in tensors]}")
    out, cache = T.stack([t.array for t in tensors], _dim(dim, tensors[0].ndim + 1))
    return record(out, T.stack_backward, cache, tuple(tensors), "stack")


def maximum(a, b):
    """The larger of a and b, element by element (broadcast shapes); the gradient goes to the larger one."""
    a, b = _operands(_t(a), b, False)
    out, cache = T.maximum(a.array, b.array)
    return record(out, T.maximum_backward, cache, (a, b), "maximum")


def minimum(a, b):
    """The smaller of a and b, element by element (broadcast shapes); the gradient goes to the smaller one."""
    a, b = _operands(_t(a), b, False)
    out, cache = T.minimum(a.array, b.array)
    return record(out, T.minimum_backward, cache, (a, b), "minimum")


def where(condition, a, b):
    """a where condition holds, else b (broadcast shapes); gradients flow to the side that was taken."""
    condition = _t(condition)
    a = _t(a) if not isinstance(a, (numbers.Number, np.generic)) else a
    if isinstance(a, Tensor):
        a, b = _operands(a, b, False)
    else:
        b, a = _operands(_t(b), a, False)
    # copy=False: a bool mask stays its own array in the cache (minicnn.onnx's export finds a buffer by it)
    out, cache = T.where(condition.array.astype(builtins.bool, copy=False), a.array, b.array)
    return record(out, T.where_backward, cache, (a, b), "where")


def equal(a, b):
    """True when both have the same shape and the same values."""
    a, b = _t(a), _t(b)
    return tuple(a.shape) == tuple(b.shape) and builtins.bool((a.array == b.array).all())


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True when |a - b| <= atol + rtol * |b| everywhere (broadcast shapes), as torch.allclose."""
    a, b = _t(a), _t(b)
    xp = get_array_module(a.array)
    return builtins.bool(xp.allclose(a.array, b.array, rtol=rtol, atol=atol, equal_nan=equal_nan))


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """The bool tensor |a - b| <= atol + rtol * |b|, element by element (broadcast shapes)."""
    a, b = _t(a), _t(b)
    return Tensor._wrap(get_array_module(a.array).isclose(a.array, b.array, rtol=rtol, atol=atol, equal_nan=equal_nan))


def numel(t):
    """The number of elements of t: the product of its shape."""
    return t.numel()


def is_tensor(obj, /):
    """True when obj is a minicnn Tensor (or a Parameter)."""
    return isinstance(obj, Tensor)


def manual_seed(seed):
    """Seed minicnn's generator (weights, dropout, shuffling, rand/randn), as torch.manual_seed;
    returns it (minicnn.default_generator)."""
    return default_generator.manual_seed(seed)


def initial_seed():
    """The seed of the global generator (the last manual_seed, or the one drawn at import)."""
    return default_generator.initial_seed()


_settings = {"deterministic": False, "matmul_precision": "highest"}


def use_deterministic_algorithms(mode, *, warn_only=False):
    """Accepted and recorded: minicnn's ops are deterministic already (no atomics, fixed GEMM order)."""
    _settings["deterministic"] = builtins.bool(mode)


def are_deterministic_algorithms_enabled():
    """What use_deterministic_algorithms last set (minicnn's ops are deterministic either way)."""
    return _settings["deterministic"]


def set_float32_matmul_precision(precision):
    """Accepted and recorded ('highest', 'high' or 'medium'): minicnn's GEMM is plain float32."""
    if precision not in ("highest", "high", "medium"):
        raise RuntimeError(f"Invalid float32 matmul precision {precision!r}: expected 'highest', 'high' or 'medium'")
    _settings["matmul_precision"] = precision


def get_float32_matmul_precision():
    """What set_float32_matmul_precision last set ('highest' by default)."""
    return _settings["matmul_precision"]


def get_default_dtype():
    """float32: the dtype of floating tensors made from Python numbers."""
    return _DEFAULT_FLOAT


class cuda:
    """torch.cuda: is_available() says whether CuPy sees a GPU."""

    @staticmethod
    def is_available():
        try:
            from .backend import _load_cupy
            _load_cupy()
        except BackendError:
            return False
        return True

    @staticmethod
    def device_count():
        return 1 if cuda.is_available() else 0

    @staticmethod
    def manual_seed(seed):
        manual_seed(seed)

    manual_seed_all = manual_seed

    @staticmethod
    def current_device():
        """0, the one GPU minicnn uses; torch's error where there is none."""
        if not cuda.is_available():
            raise RuntimeError("No CUDA GPUs are available (minicnn runs on CUDA through CuPy: "
                               "pip install cupy-cuda12x on a machine with a GPU)")
        return 0

    @staticmethod
    def get_device_name(device=None):
        cuda.current_device()
        from .backend import _load_cupy
        props = _load_cupy().cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else name

    @staticmethod
    def empty_cache():
        """Give CuPy's cached blocks back to the GPU (nothing to do without one)."""
        if cuda.is_available():
            from .backend import _load_cupy
            _load_cupy().get_default_memory_pool().free_all_blocks()

    @staticmethod
    def synchronize():
        if cuda.is_available():
            from .backend import _load_cupy
            _load_cupy().cuda.Device().synchronize()


class accelerator:
    """torch.accelerator (torch 2.6+): the GPU when CuPy sees one, else none (the CPU)."""

    @staticmethod
    def is_available():
        return cuda.is_available()

    @staticmethod
    def current_accelerator(check_available=False):
        """device('cuda') where a GPU answers; None otherwise, as torch on a machine without one."""
        return device("cuda") if cuda.is_available() else None

    @staticmethod
    def device_count():
        return cuda.device_count()

    @staticmethod
    def synchronize(device=None):
        cuda.synchronize()


def _function(method):
    """torch.sum(x, ...) and friends: the method, called on a Tensor made from x."""
    def fn(input, *args, **kwargs):
        return getattr(_t(input), method)(*args, **kwargs)
    fn.__name__ = method
    fn.__doc__ = f"torch.{method}(input, ...): the same as input.{method}(...)."
    return fn


for _name in ("sum", "mean", "max", "min", "argmax", "argmin", "amax", "amin", "flatten", "reshape", "squeeze",
              "unsqueeze", "permute", "transpose", "exp", "log", "sqrt", "abs", "clamp", "clip", "relu", "sigmoid",
              "tanh", "softmax", "log_softmax", "matmul", "mm", "var", "std", "topk", "gather", "t", "norm",
              "add", "sub", "mul", "div", "pow", "neg", "eq", "ne", "lt", "le", "gt", "ge", "detach", "clone",
              "all", "any", "multiply", "divide", "true_divide", "subtract", "absolute", "negative", "greater",
              "greater_equal", "less", "less_equal", "not_equal", "swapaxes", "swapdims", "movedim", "moveaxis",
              "chunk", "narrow", "unbind", "flip", "index_select", "square", "isnan", "isinf", "isfinite"):
    globals()[_name] = _function(_name)
del _name


def split(tensor, split_size_or_sections, dim=0):
    """torch.split: tensor.split(split_size_or_sections, dim), pieces of one size or of the sizes listed."""
    return _t(tensor).split(split_size_or_sections, dim)


_with_numpy_keywords(globals())  # cat(..., axis=0), stack, and the rest

backend = backend_name
