"""The tape: every operation on Tensors that require a gradient records one Node, and
backward() walks the nodes from the loss back to the parameters.

A Node holds what one call needs for its backward and nothing else:

    backward   the op's backward from minicnn.ops: backward(dout, cache) -> one gradient per input
    cache      what that op's forward returned beside its output (the cache of *this* call)
    inputs     where each input's gradient goes, in the order backward returns them: the Node
               that made the input, or the input itself when it is a leaf (a Parameter, an image)

A Node keeps the Nodes behind its inputs, not the input tensors, so an activation the backward
does not need (it is not in any cache) is freed as soon as the forward has moved past it.

The tape writes no derivative of its own: it only calls the pairs in minicnn.ops, adds up the
gradients of a tensor used more than once, and hands each leaf its .grad. So a layer used twice
or a tensor that fans out (a residual input) is right by construction: each use is its own node.

After backward() the caches are freed (retain_graph=True keeps them), and a second backward
through the same nodes is an error, as in torch. Inside `no_grad()` nothing is recorded and
no cache outlives the op that made it.
"""

import functools

from .backend import get_array_module

_state = {"enabled": True}
_modules = []  # the Modules whose __call__ is running, innermost last: nodes remember who made them
Tensor = None  # set by minicnn.tensor (which imports this module) to its Tensor class


class Node:
    """One recorded call: its backward, its cache, its inputs, and what made it (for messages)."""

    __slots__ = ("backward", "cache", "inputs", "needs", "versions", "shape", "dtype", "name", "module", "freed",
                 "__weakref__")

    def __init__(self, backward, cache, parents, name, out):
        self.backward = backward
        self.cache = cache
        inputs, needs, versions = [], [], []
        for p in parents:
            if p is None:
                inputs.append(None), needs.append(False), versions.append(0)
            elif p._node is not None:
                inputs.append(p._node), needs.append(p.requires_grad), versions.append(0)
            else:
                # An in-place change of a leaf input after this call would make the cache describe
                # other values than the ones the gradient is taken at: backward() checks versions.
                # (A non-leaf input requires grad, and in-place changes of those are refused outright.)
                inputs.append(p), needs.append(p.requires_grad), versions.append(p._version)
        self.inputs, self.needs, self.versions = tuple(inputs), tuple(needs), tuple(versions)
        self.shape, self.dtype = out.shape, out.dtype  # of the output: its gradient must match
        self.name = name
        self.module = _modules[-1] if _modules else None
        self.freed = False

    def where(self):
        """'conv2d in Conv2d(1, 6, ...)' : the op and the layer that called it, for error messages."""
        return self.name + (f" in {self.module!r}".replace("\n", " ") if self.module is not None else "")

    def __repr__(self):
        return f"<{self.name}Backward>"


def is_grad_enabled():
    return _state["enabled"]


class set_grad_enabled:
    """Turn recording on or off, as a call, a context manager (restoring the old mode) or a decorator."""

    def __init__(self, mode):
        self.previous = _state["enabled"]
        self.mode = bool(mode)
        _state["enabled"] = self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state["enabled"] = self.previous
        return False

    def __call__(self, fn):
        _state["enabled"] = self.previous  # as a decorator it only changes the mode while fn runs
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper


class no_grad:
    """Record nothing: no nodes, no caches (for evaluation). A context manager and a decorator."""

    mode = False

    def __enter__(self):
        self.previous = _state["enabled"]
        _state["enabled"] = self.mode
        return self

    def __exit__(self, *exc):
        _state["enabled"] = self.previous
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class enable_grad(no_grad):
    """Record again inside a no_grad block."""

    mode = True


inference_mode = no_grad


def record(out, backward, cache, parents, name):
    """A Tensor for the array `out`; with a Node behind it when recording and an input needs a gradient.

    parents: the input Tensors (None for an absent one, e.g. no bias), in the order `backward`
    returns gradients. A Node is made only when one of them requires a gradient.
    """
    t = Tensor._wrap(out)
    if _state["enabled"]:
        for p in parents:
            if p is not None and p.requires_grad:
                t._node = Node(backward, cache, parents, name, out)
                t.requires_grad = True
                break
    return t


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


def backward(tensor, gradient=None, retain_graph=False):
    """Fill .grad of every leaf that requires a gradient, walking the nodes behind `tensor` once each.

    gradient: d(something)/d(tensor), of tensor's shape and dtype; may be omitted for a
    one-element tensor (then it is 1). Gradients add into leaves' .grad, as in torch.
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
    if tensor._node is None:
        _accumulate_leaf(tensor, dout, set(), shared=True)
        return
    grads = {id(tensor._node): dout}
    root = dout
    handed = set()  # ids of the arrays given to leaves' .grad (alive there): a second leaf gets a copy
    for node in _order(tensor._node):
        dout = grads.pop(id(node), None)
        if dout is None:  # no gradient reached this node (its output only fed integer ops)
            continue
        if node.freed:
            raise RuntimeError(
                f"Trying to backward through the graph a second time ({node.where()}): its saved values were "
                "freed by the first backward(). Specify retain_graph=True on the first call if you need to "
                "backward twice, or run the forward again."
            )
        for p, version in zip(node.inputs, node.versions):  # (a freed node has no inputs left)
            if p is not None and type(p) is not Node and p._version != version:
                raise RuntimeError(
                    f"one of the tensors needed for the gradient of {node.where()} has been modified by an "
                    "in-place operation after it was used; make a copy (.clone()) before changing it"
                )
        result = node.backward(dout, node.cache)
        if not isinstance(result, tuple):
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
                key = id(p)
                grads[key] = g if key not in grads else grads[key] + g
            else:
                # g may be the dout itself passed through (add, clone) or the caller's gradient:
                # the leaf then gets a copy, so that changing one .grad never changes anything else
                _accumulate_leaf(p, g, handed, shared=g is dout or g is root)


def _accumulate_leaf(leaf, g, handed, shared):
    """leaf.grad += g. A gradient array another holder may also have (shared: the dout passed
    through; a view of an array; one already given to another leaf) is copied first, so that
    changing one .grad in place (clip_grad_norm_, zero_grad) never changes another."""
    for hook in leaf._hooks:
        out = hook(Tensor._wrap(g))
        if out is not None:
            g = out.array
    if leaf.grad is None:
        if shared or id(g) in handed or g.base is not None:
            g = g.copy()
        handed.add(id(g))
        leaf.grad = Tensor._wrap(g)
    else:
        leaf.grad = Tensor._wrap(leaf.grad.array + g)
