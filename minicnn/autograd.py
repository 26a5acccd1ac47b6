"""The tape: every operation on Tensors that require a gradient records one Node, and
backward() walks the nodes from the loss back to the parameters.

A Node holds what one call needs for its backward and nothing else:

    backward   the op's backward from minicnn.ops: backward(dout, cache) -> one gradient per input
    cache      what that op's forward returned beside its output (the cache of *this* call)
    inputs     where each input's gradient goes, in the order backward returns them: the Node
               that made the input, or the input itself when it is a leaf (a Parameter, an image)
    saved      the version counter of each input and of the output, with its value at this call
               (and, after an in-place op, of the tensor its output was written into)

A Node keeps the Nodes behind its inputs, not the input tensors, so an activation the backward
does not need (it is not in any cache) is freed as soon as the forward has moved past it.

The tape writes no derivative of its own: it only calls the pairs in minicnn.ops, adds up the
gradients of a tensor used more than once, and hands each leaf its .grad. So a layer used twice
or a tensor that fans out (a residual input) is right by construction: each use is its own node.

In-place changes (see "Storage, views and the version counter" in minicnn/_tensor.py) bump a
tensor's version counter. backward() compares each input's and output's counter with the value
saved at the call; where it moved and the node's cache holds that tensor's memory, the cache no
longer describes the values the gradient is taken at, and backward() raises torch's error
instead of returning a wrong gradient.

After backward() the caches are freed (retain_graph=True keeps them), and a second backward
through the same nodes is an error, as in torch. Inside `no_grad()` nothing is recorded and
no cache outlives the op that made it. The grad mode is per thread, as in torch.
"""

import functools
import heapq
import itertools
import threading
import weakref

from .backend import get_array_module


class _GradMode(threading.local):
    enabled = True  # each thread starts recording, whatever another thread's no_grad() says


_state = _GradMode()
_modules = []  # the Modules whose __call__ is running, innermost last: nodes remember who made them
_serial = itertools.count()  # numbers the nodes in the order they are made
TORCH_NAMES = {"float16": "Half", "float32": "Float", "float64": "Double", "uint8": "Byte", "int8": "Char",
               "int16": "Short", "int32": "Int", "int64": "Long", "bool": "Bool", "complex64": "ComplexFloat",
               "complex128": "ComplexDouble"}  # torch's names of the dtypes, for messages
Tensor = None  # set by minicnn._tensor (which imports this module) to its Tensor class


class Node:
    """One recorded call: its backward, its cache, its inputs, and what made it (for messages)."""

    __slots__ = ("backward", "cache", "inputs", "needs", "saved", "shape", "dtype", "op", "module", "freed",
                 "hooks", "serial", "__weakref__")

    def __init__(self, backward, cache, parents, name, out, out_counter=None):
        self.backward = backward
        self.cache = cache
        inputs, needs, saved = [], [], []
        for p in parents:
            if p is None:
                inputs.append(None)
                needs.append(False)
                continue
            node, array, counter = p._node, p.array, p._counter
            inputs.append(p if node is None else node)
            needs.append(p._requires_grad)
            # what a message needs of the tensor, not the tensor itself (that would keep it alive)
            saved.append((counter, counter.value, array.shape, array.dtype, None if node is None else node.op, False))
        if out_counter is not None:
            saved.append((out_counter, out_counter.value, out.shape, out.dtype, name, False))
        self.inputs, self.needs, self.saved = tuple(inputs), tuple(needs), tuple(saved)
        self.shape, self.dtype = out.shape, out.dtype  # of the output: its gradient must match
        self.op = name
        self.module = _modules[-1] if _modules else None
        self.freed = False
        self.hooks = None  # register_hook on the tensor this node made: functions of its gradient
        self.serial = next(_serial)

    def where(self):
        """'conv2d in Conv2d(1, 6, ...)' : the op and the layer that called it, for error messages."""
        return self.op + (f" in {self.module!r}".replace("\n", " ") if self.module is not None else "")

    def __repr__(self):
        return f"<{self.op}Backward>"

    # -- torch's grad_fn interface, for programs that walk the graph ------------------------

    def name(self):
        """torch's style of name: 'MulBackward0' for the op 'mul', 'MaxPool2dBackward0' for 'max_pool2d'.
        The op names are minicnn's, so some differ from torch's ('Conv2dBackward0', torch's is
        'ConvolutionBackward0')."""
        return "".join(part[:1].upper() + part[1:] for part in self.op.split("_")) + "Backward0"

    @property
    def next_functions(self):
        """((node, 0), ...) one pair per input, as torch's: the Node that made the input, an
        AccumulateGrad for a leaf that requires grad, or None for an input without a gradient."""
        pairs = []
        for source, need in zip(self.inputs, self.needs):
            if source is None or (not need and not isinstance(source, Node)):
                pairs.append((None, 0))
            elif isinstance(source, Node):
                pairs.append((source, 0))
            else:
                pairs.append((AccumulateGrad.of(source), 0))
        return tuple(pairs)

    @property
    def metadata(self):
        return {}


class AccumulateGrad:
    """torch's AccumulateGrad: the end of the graph at a leaf; .variable is the leaf, whose .grad
    backward() adds to. One per leaf while anything holds it, so `is` compares as in torch."""

    _live = weakref.WeakValueDictionary()  # id(leaf) -> its AccumulateGrad (which keeps the leaf alive)
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    @classmethod
    def of(cls, leaf):
        found = cls._live.get(id(leaf))
        if found is None or found.variable is not leaf:
            found = cls._live[id(leaf)] = cls(leaf)
        return found

    def name(self):
        return "torch::autograd::AccumulateGrad"

    @property
    def metadata(self):
        return {}

    def __repr__(self):
        return "<AccumulateGrad>"


def _refers(cache, root_id, depth=0):
    """True when the cache holds an array whose memory belongs to the array with id root_id."""
    if hasattr(cache, "shape") and hasattr(cache, "dtype"):
        a = cache
        while getattr(a, "base", None) is not None:
            a = a.base
        return id(a) == root_id
    if depth > 4 or cache is None or isinstance(cache, (str, bytes, int, float, bool, complex)):
        return False
    if isinstance(cache, dict):
        items = cache.values()
    elif isinstance(cache, (tuple, list)):
        items = cache
    elif hasattr(cache, "__dict__"):
        items = vars(cache).values()
    elif hasattr(cache, "__slots__"):
        items = [getattr(cache, s, None) for s in cache.__slots__]
    else:
        return False
    return any(_refers(c, root_id, depth + 1) for c in items)


def _check_saved(node):
    """Raise torch's error if a tensor this node's cache holds was changed in place since the call."""
    for counter, version, shape, dtype, maker, stands_for_cache in node.saved:
        # stands_for_cache: the tensor's values are what the cache holds (an in-place op's output)
        if counter.value != version and (stands_for_cache or _refers(node.cache, counter.root)):
            made = f", which is output 0 of {maker}," if maker is not None else ""
            kind = f"torch.{TORCH_NAMES.get(str(dtype), str(dtype))}Tensor"
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"[{kind} {list(shape)}]{made} is at version {counter.value}; expected version {version} instead. (It was saved "
                f"by {node.where()}; make a copy with .clone() before changing it in place, or change it after "
                "backward().)"
            )


def is_grad_enabled():
    """True when operations are being recorded (outside no_grad, or inside enable_grad); per thread."""
    return _state.enabled


class set_grad_enabled:
    """Turn recording on or off, as a call, a context manager (restoring the old mode) or a decorator."""

    def __init__(self, mode):
        self.previous = _state.enabled
        self.mode = bool(mode)
        _state.enabled = self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state.enabled = self.previous
        return False

    def __call__(self, fn):
        _state.enabled = self.previous  # as a decorator it only changes the mode while fn runs
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper


class no_grad:
    """Record nothing: no nodes, no caches (for evaluation). A context manager and a decorator."""

    mode = False

    def __init__(self):
        pass

    def __enter__(self):
        self.previous = _state.enabled
        _state.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _state.enabled = self.previous
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._again():
                return fn(*args, **kwargs)
        return wrapper

    def _again(self):
        """A fresh context with the same setting (a decorated function may run in many threads)."""
        return type(self)()


class enable_grad(no_grad):
    """Record again inside a no_grad block."""

    mode = True


class inference_mode(no_grad):
    """torch.inference_mode: no_grad here (minicnn has no separate inference tensors).
    inference_mode(False) changes nothing."""

    def __init__(self, mode=True):
        self.inference = bool(mode)

    def __enter__(self):
        self.previous = _state.enabled
        if self.inference:
            _state.enabled = False
        return self

    def _again(self):
        return inference_mode(self.inference)


def record(out, backward, cache, parents, name):
    """A Tensor for the array `out`; with a Node behind it when recording and an input needs a gradient.

    parents: the input Tensors (None for an absent one, e.g. no bias), in the order `backward`
    returns gradients. A Node is made only when one of them requires a gradient. An output that
    lies in an input's memory (a view the op returned) shares that input's version counter.
    """
    t = Tensor._wrap(out)
    if getattr(t.array, "base", None) is not None:
        root = _root(t.array)
        for p in parents:
            if p is not None and _root(p.array) is root:
                t._counter = p._counter
                p._counter.shared = True
                break
    if _state.enabled:
        for p in parents:
            if p is not None and p.requires_grad:
                t._node = Node(backward, cache, parents, name, t.array, t._counter)
                t._requires_grad = True
                break
    return t


def _root(a):
    """The array that owns a's memory (a itself, or the base its views lead to)."""
    while getattr(a, "base", None) is not None:
        a = a.base
    return a


def _order(root):
    """The nodes behind root, each after every node that uses its output (root first).

    Iterative depth-first post-order, then reversed, so deep networks need no recursion.
    """
    post, seen, stack = [], set(), [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            post.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for e in node.inputs:
            if isinstance(e, Node) and id(e) not in seen:
                stack.append((e, False))
    return post[::-1]


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, grad_variables=None, inputs=None):
    """torch.autograd.backward: tensor.backward(gradient) for one tensor or a sequence of them (one
    pass over the graph: for several, the backward of sum_i (tensors[i] * grad_tensors[i]).sum(),
    so a hook sees the sum of the gradients that reach it once, as in torch)."""
    if create_graph:
        raise NotImplementedError("backward(create_graph=True): minicnn's backwards are array code, not "
                                  "recorded, so second derivatives are not available")
    if inputs is not None:
        raise NotImplementedError("backward(inputs=...): minicnn fills the .grad of every leaf; leave inputs out")
    grad_tensors = grad_variables if grad_tensors is None else grad_tensors
    many = isinstance(tensors, (tuple, list))
    tensors = list(tensors) if many else [tensors]
    if grad_tensors is None:
        grads = [None] * len(tensors)
    else:
        grads = list(grad_tensors) if isinstance(grad_tensors, (tuple, list)) else [grad_tensors]
    if len(grads) != len(tensors):
        raise RuntimeError(f"grad_tensors has {len(grads)} gradients but {len(tensors)} tensors were given")
    if len(tensors) == 1:
        return _backward(tensors[0], grads[0], bool(retain_graph))
    with enable_grad():
        total = None
        for t, g in zip(tensors, grads):
            if not t.requires_grad:
                raise RuntimeError("element of tensors does not require grad and does not have a grad_fn")
            if g is None and t.numel() != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; a tensor of shape "
                                   f"{tuple(t.shape)} needs its gradient in grad_tensors")
            term = (t if g is None else t * g).sum()
            total = term if total is None else total + term
    _backward(total, None, bool(retain_graph))


def _backward(tensor, gradient=None, retain_graph=False):
    """Fill .grad of every leaf that requires a gradient, walking the nodes behind `tensor` once each.

    gradient: d(something)/d(tensor), of tensor's shape and dtype; may be omitted for a
    one-element tensor (then it is 1). Gradients add into leaves' .grad in place, as in torch.
    A hook registered on a tensor runs once, on the sum of every gradient that reaches it.
    """
    if not tensor.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn: "
                           "nothing recorded this tensor (was it computed under no_grad, or from tensors "
                           "that do not require grad?)")
    xp = get_array_module(tensor.array)
    if gradient is None:
        if tensor.array.size != 1:
            raise RuntimeError(f"grad can be implicitly created only for scalar outputs; this tensor has shape "
                               f"{tuple(tensor.shape)}: pass backward(gradient) of that shape")
        dout = xp.ones(tensor.shape, dtype=tensor.dtype)
    else:
        dout = gradient.array if isinstance(gradient, Tensor) else xp.asarray(gradient)
        where = tensor._node.where() if tensor._node is not None else "a leaf tensor"
        if tuple(dout.shape) != tuple(tensor.shape):
            raise RuntimeError(f"backward: the gradient has shape {tuple(dout.shape)} but the tensor (made by "
                               f"{where}) has shape {tuple(tensor.shape)}; pass a gradient of the tensor's shape")
        if dout.dtype != tensor.dtype:
            raise TypeError(f"backward: the gradient is {dout.dtype} but the tensor (made by {where}) is "
                            f"{tensor.dtype}; pass a gradient of the tensor's dtype (no silent promotion)")
    leaves = {}  # id(leaf) -> [leaf, the sum of its gradients so far, whether this backward made that sum]
    if tensor._node is None:
        leaves[id(tensor)] = [tensor, dout, False]
    else:
        _walk(tensor._node, dout, retain_graph, leaves)
    handed = {id(dout)}  # arrays someone else holds: the caller's gradient, one already given to a leaf
    with no_grad():
        for leaf, g, owned in leaves.values():
            owned = owned or (getattr(g, "base", None) is None and id(g) not in handed)
            handed.add(id(g))
            _accumulate_leaf(leaf, g, owned)


def _walk(root, dout, retain_graph, leaves):
    """Run every node's backward behind root, in order; collect the leaves' summed gradients.

    A node is made after the nodes behind its inputs, so it has a larger serial number: taking the
    waiting node with the largest serial first (a heap) runs each node after every node that feeds
    it a gradient, and a node no gradient reaches (its output only fed integer ops) never runs.
    """
    grads = {root: dout}  # node -> the sum of the gradients that reached its output so far
    waiting = [(-root.serial, root)]
    while waiting:
        node = heapq.heappop(waiting)[1]
        dout = grads.pop(node)
        if node.freed:
            raise RuntimeError(
                f"Trying to backward through the graph a second time ({node.where()}): its saved values were "
                "freed by the first backward(). Specify retain_graph=True on the first call if you need to "
                "backward twice, or run the forward again."
            )
        for saved in node.saved:
            if saved[0].value != saved[1]:  # a counter moved: look closer (the common case is none)
                _check_saved(node)
                break
        if node.hooks:
            dout = _run_hooks(node.hooks, dout)
        result = node.backward(dout, node.cache)
        if type(result) is not tuple:
            result = (result,)
        inputs = node.inputs
        if not retain_graph:  # free as we go: the cache, and the links to the nodes behind
            node.cache, node.inputs, node.freed = None, (), True
        for p, need, g in zip(inputs, node.needs, result):
            if not need or g is None:
                continue
            is_node = type(p) is Node
            shape, dtype = (p.shape, p.dtype) if is_node else (p.array.shape, p.array.dtype)
            if g.shape != shape:
                raise RuntimeError(f"internal error: the backward of {node.where()} gave a gradient of shape "
                                   f"{tuple(g.shape)} for an input of shape {tuple(shape)}")
            if g.dtype != dtype:  # an input promoted by the op (float32 * float64) gets its own dtype back
                g = g.astype(dtype)
            if is_node:
                if p in grads:
                    grads[p] = grads[p] + g
                else:
                    grads[p] = g
                    heapq.heappush(waiting, (-p.serial, p))
                continue
            key = id(p)
            if key in leaves:
                entry = leaves[key]
                entry[1], entry[2] = entry[1] + g, True  # a sum is a new array, owned here
            else:
                # g may be the dout itself passed through (add, clone), a view of another array, or
                # handed to another leaf too: it is copied before it becomes anyone's .grad
                leaves[key] = [p, g, False]


def _run_hooks(hooks, g):
    """g after each hook(grad) in turn; a hook may return a replacement (of g's shape and dtype)."""
    for hook in hooks:
        out = hook(Tensor._wrap(g))
        if out is None:
            continue
        new = out.array if isinstance(out, Tensor) else out
        if tuple(new.shape) != tuple(g.shape) or new.dtype != g.dtype:
            raise RuntimeError(f"hook {getattr(hook, '__name__', hook)!r} returned a gradient of shape "
                               f"{tuple(new.shape)} and dtype {new.dtype}; expected {tuple(g.shape)} {g.dtype}")
        g = new
    return g


def _accumulate_leaf(leaf, g, owned):
    """leaf.grad += g, in place once .grad exists (a reference held to .grad sees the sum, as in torch).
    The first gradient becomes .grad as it is only when no one else holds that array (not the
    caller's gradient, a view, or an array given to another leaf); otherwise it is copied, so that changing one .grad in place (clip_grad_norm_, zero_grad) never
    changes another, nor the caller's `gradient`."""
    if leaf._hooks:
        before = g
        g = _run_hooks(leaf._hooks, g)
        owned = owned and g is before
    if leaf.grad is None:
        leaf.grad = Tensor._wrap(g if owned else g.copy())
    else:
        a = leaf.grad.array
        if tuple(a.shape) != tuple(g.shape):
            raise RuntimeError(f"backward: the existing .grad has shape {tuple(a.shape)} but the new gradient "
                               f"has shape {tuple(g.shape)}; set .grad = None (zero_grad()) first")
        a += g
        leaf.grad._bump()


class _VariableType(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor)

    def __subclasscheck__(cls, sub):
        return isinstance(sub, type) and issubclass(sub, Tensor)


class Variable(metaclass=_VariableType):
    """torch.autograd.Variable, kept by torch for old programs: Variable(t) is a Tensor that shares
    t's memory, with no history (as t.detach()) and the requires_grad asked for. Every Tensor is
    a Variable to isinstance, as in torch. volatile=True only warns, as in torch: use no_grad()."""

    def __new__(cls, data=None, requires_grad=False, volatile=False):
        if volatile:
            import warnings
            warnings.warn("volatile was removed and now has no effect. Use `with torch.no_grad():` instead.",
                          UserWarning, stacklevel=2)
        if data is None:  # torch's Variable(): an empty float tensor
            data = Tensor._wrap(get_array_module().empty((0,), dtype="float32"))
        if not isinstance(data, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}: make one with "
                            "minicnn.tensor(data) (or leave Variable out: tensors carry gradients themselves)")
        out = data.detach()
        out.requires_grad = bool(requires_grad)
        return out
