"""Looking inside a network without pictures: summary() tabulates every layer (output shape,
parameters, multiply-adds, memory); trace() walks one forward and one backward pass and
prints every shape on the way, with the formula that gives it.

Both watch the leaf layers (modules with no sub-modules) through forward hooks, so they work
for any Module, custom forward included; trace() also follows the tape's nodes through
backward(). They are inspections: the model's mode (of every module), parameter gradients,
and minicnn's random generator are left exactly as they were, and a forward of the model
still waiting for its backward is not disturbed: each forward's caches live in its own graph,
and no cache holds a scratch buffer (a Conv2d's cache keeps its input; ops.conv.scratch).
"""

import builtins
import contextlib
import math

import numpy as np

from . import autograd
from ._tensor import Tensor
from .autograd import no_grad
from .backend import default_rng, get_array_module, get_xp, to_device, to_numpy

# -- leaving the model as it was ------------------------------------------------------------


@contextlib.contextmanager
def preserved(model):
    """Run a block, then restore every module's training flag, every parameter's .grad and
    minicnn's random generator to what they were before the block."""
    modules = list(model.modules())
    modes = [m.training for m in modules]
    grads = [(p, p.grad) for p in model.parameters()]
    rng_state = default_rng().bit_generator.state
    for p, _ in grads:  # the block's backward() would add into .grad in place: it starts from None
        p.grad = None
    try:
        yield model
    finally:
        for m, mode in zip(modules, modes):
            object.__setattr__(m, "training", mode)
        for p, grad in grads:
            p.grad = grad
        default_rng().bit_generator.state = rng_state


def named_leaves(model):
    """(dotted name, module) for every module without sub-modules, in order: '0', 'features.3'.

    A model that is itself a single layer is its own leaf, named ''."""
    for name, module in model.named_modules():
        if not any(True for _ in module.children()):
            yield name, module


def _run_recorded(model, x, with_backward=False):
    """Forward x through model, recording each leaf call through forward hooks; with_backward,
    then backward from dout = ones, recording each node the tape visits.

    Returns (forward calls, backward calls, output). The caller restores the model (preserved()).
    A backward call is one node: 'main' is True for the node that does the layer's own math
    (the one that takes its parameters, or its only node), False for the others it recorded
    (the reshapes of a Linear on (N, L, IN), say) and for ops of a custom forward.
    """
    forward_calls, handles, main_nodes = [], [], set()
    names = {id(m): n for n, m in named_leaves(model)}
    for name, layer in named_leaves(model):
        def hook(module, inputs, out, _name=name):
            first = inputs[0] if inputs else None
            forward_calls.append({"name": _name, "layer": module,
                                  "input_shape": tuple(first.shape) if hasattr(first, "shape") else None,
                                  "output_shape": tuple(out.shape) if hasattr(out, "shape") else None})
            main = _main_node(module, inputs, out)
            if main is not None:
                main_nodes.add(id(main))
        handles.append(layer.register_forward_hook(hook))
    try:
        if not with_backward:
            with no_grad():
                return forward_calls, [], model(x)
        x = Tensor(x.array.copy(), requires_grad=True)  # so that the first layer's dx is computed too
        with autograd.enable_grad():  # a trace inside no_grad() still has a backward to show
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    backward_calls = []
    if getattr(out, "_node", None) is None:
        return forward_calls, backward_calls, out
    param_names = {id(p): n for n, p in model.named_parameters()}
    for node in autograd._order(out._node):
        def recorder(dout, cache, _node=node, _backward=node.backward, inputs=node.inputs, needs=node.needs):
            grads = _backward(dout, cache)
            result = grads if isinstance(grads, tuple) else (grads,)
            shapes = {param_names[id(p)]: tuple(g.shape) for p, g in zip(inputs, result)
                      if p is not None and id(p) in param_names and g is not None}
            dx = next((g for p, g in zip(inputs, result) if p is not None and id(p) not in param_names
                       and g is not None), None)
            # where each gradient goes, as backward() will send it: a node's dout, or a leaf's .grad
            sends = [(id(p), param_names.get(id(p), "x" if p is x else None), tuple(g.shape))
                     for p, need, g in zip(inputs, needs, result) if need and g is not None]
            layer = _node.module
            backward_calls.append({"name": names.get(id(layer), f"<{_node.op}>"), "layer": layer,
                                   "op": _node.op, "main": id(_node) in main_nodes,
                                   "dout_shape": tuple(dout.shape),
                                   "dx_shape": tuple(dx.shape) if dx is not None else None, "grads": shapes,
                                   "_node": id(_node), "_sends": sends})
            return grads
        node.backward = recorder
    out.backward(Tensor._wrap(get_array_module(out.array).ones_like(out.array)))
    return forward_calls, backward_calls, out


def _number_and_add_up(calls):
    """Give each backward call its place ('index', from 1) and say where gradients were added up.

    A tensor used k times (a residual input, the output of a layer called twice, a shared
    Parameter) gets k gradients, and backward() adds them. 'dout_from': the indices of the calls
    whose gradients were summed into this call's dout (one for a tensor used once; [] for the
    first call, whose dout is the ones). 'adds': the sums this call's gradients joined, each
    {'into': 'node 9' or a leaf's name ('x', '1.weight'), 'node', 'param', 'after' (the indices
    of the calls that had sent theirs before)}. Returns the leaves whose .grad is such a sum:
    [{'into', 'shape', 'from'}]."""
    index = {c["_node"]: k for k, c in enumerate(calls, start=1)}
    received = {}   # id of a node or a leaf -> the calls that sent it a gradient, in order
    leaves = {}
    for k, c in enumerate(calls, start=1):
        c["index"] = k
        c["dout_from"] = list(received.get(c["_node"], ()))
        c["adds"] = []
        for target, leaf_name, shape in c.pop("_sends"):
            earlier = received.setdefault(target, [])
            if target in index:
                into = {"into": f"node {index[target]}", "node": index[target], "param": None}
            else:
                into = {"into": leaf_name or "a tensor", "node": None, "param": leaf_name}
                leaves[target] = (into["into"], shape)
            if earlier:
                c["adds"].append(dict(into, after=list(earlier)))
            earlier.append(k)
        del c["_node"]
    return [{"into": name, "shape": shape, "from": received[target]}
            for target, (name, shape) in leaves.items() if len(received[target]) > 1]


def _main_node(layer, inputs, out):
    """The node of one call of `layer` that does its own math: of the nodes the call recorded (from
    its output's node back to its inputs' nodes), the one with a parameter among its inputs, else
    the only one; None when there is none or no single one (a layer of several parameter-free ops)."""
    stop = {id(t._node) for t in inputs if isinstance(t, Tensor) and t._node is not None}
    params = {id(p) for p in layer.parameters()}
    own, seen = [], set()
    stack = [out._node] if isinstance(out, Tensor) and out._node is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen or id(node) in stop or node.module is not layer:
            continue
        seen.add(id(node))
        own.append(node)
        stack += [e for e in node.inputs if isinstance(e, autograd.Node)]
    with_params = [n for n in own if any(id(e) in params for e in n.inputs)]
    if len(with_params) == 1:
        return with_params[0]
    return own[0] if len(own) == 1 else None


def model_input(model, x):
    """x as a Tensor on the model's device and in its dtype (the parameters' array module and dtype)."""
    x = x.array if isinstance(x, Tensor) else x
    p = next(iter(model.parameters()), None)
    if p is None:
        return Tensor._wrap(x)
    if get_array_module(x) is not get_array_module(p.array):
        x = to_device(to_numpy(x))
    return Tensor._wrap(x.astype(p.dtype))


def _full_shape(input_shape):
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    return shape


# -- what one layer costs -------------------------------------------------------------------


def layer_macs(layer, output_shape, input_shape=None):
    """Multiply-adds of one forward call, as the layer itself reports them (its macs() method;
    summary holds no table of layer types). Bias additions are not counted, as in torchinfo.
    Conv2d: N*OC*OH*OW * C*KH*KW. Linear: N*IN*OUT. Module.macs gives 0, the usual convention
    for pooling, activations, Flatten and Dropout (comparisons, additions or element-wise
    functions, not multiply-adds); a layer of your own overrides macs(input_shape, output_shape)."""
    return layer.macs(input_shape, output_shape)


def short_name(layer):
    """A one-line name: 'Conv2d(1, 6, k=5, p=2)', 'MaxPool2d(k=2, s=2)', 'Linear(400, 120)' (the layer's own)."""
    return layer.short_name()


# -- summary --------------------------------------------------------------------------------


class ModelSummary(str):
    """The summary table: a str (print it, search it), which also carries the numbers.

    .rows: one dict per leaf-layer call with 'name', 'layer', 'input_shape', 'output_shape',
    'params', 'macs', 'activation_bytes'; .total_params, .trainable_params, .total_macs,
    .activation_bytes, .param_bytes, .input_bytes.
    """

    def __new__(cls, text, rows, **totals):
        self = super().__new__(cls, text)
        self.rows = rows
        vars(self).update(totals)
        return self

    def __repr__(self):
        return (f"<ModelSummary: {len(self.rows)} layers, {self.total_params:,} parameters, "
                f"{self.total_macs:,} MACs; print() it for the table>")


def summary(model, input_shape, dtype=None, print=True):
    """Tabulate a model, one row per leaf layer, like torchsummary / torchinfo.

    input_shape: the shape of one input batch including N, e.g. (1, 1, 28, 28); a (C, H, W)
    triple means N = 1. A forward pass on zeros of that shape, in the parameters' dtype
    (float32 unless the model was cast), finds every layer's output shape.
    Columns: layer (its dotted name and a short description), output shape, parameters,
    MACs (multiply-adds of the forward pass, as each layer's macs() reports them, see layer_macs:
    Conv2d N*OC*OH*OW*C*KH*KW, Linear N*IN*OUT, biases not counted, pooling and activations 0),
    and activation memory: the bytes of the layer's output for this batch. Totals: parameters (each Parameter once, even when shared;
    trainable_params: those with requires_grad), MACs, input, activation and parameter memory.
    dtype: the dtype to count memory in (default: the parameters' dtype), e.g. np.float64
    to see what a gradient-check model would need.
    The mode of every module, the parameters' gradients and minicnn's random generator are
    left as they were; so is a forward of the model still waiting for its backward.
    Returns a ModelSummary (a str with .rows and the totals); print=True also prints it.
    """
    shape = _full_shape(input_shape)
    params = list(model.parameters())   # a shared parameter counts once
    x = model_input(model, get_xp().zeros(shape, dtype=np.float32))
    dtype = np.dtype(dtype or x.dtype)
    with preserved(model):
        model.eval()
        calls, _, _ = _run_recorded(model, x)

    itemsize = dtype.itemsize
    rows = []
    for call in calls:
        layer = call["layer"]
        rows.append({
            "name": call["name"], "layer": short_name(layer), "input_shape": call["input_shape"],
            "output_shape": call["output_shape"], "params": sum(p.numel() for p in layer.parameters()),
            "macs": layer_macs(layer, call["output_shape"], call["input_shape"]),
            "activation_bytes": math.prod(call["output_shape"]) * itemsize,
        })
    totals = {
        "total_params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "total_macs": sum(r["macs"] for r in rows),
        "input_bytes": math.prod(shape) * itemsize,
        "activation_bytes": sum(r["activation_bytes"] for r in rows),
        "param_bytes": sum(p.numel() for p in params) * itemsize,
    }
    result = ModelSummary(_summary_table(model, shape, dtype, rows, totals), rows, **totals)
    if print:
        builtins.print(result)
    return result


def _summary_table(model, shape, dtype, rows, t):
    header = ("layer", "output shape", "params", "MACs", "activation")
    cells = [(f"({r['name']}) {r['layer']}" if r["name"] else r["layer"], str(r["output_shape"]),
              f"{r['params']:,}", f"{r['macs']:,}", _bytes(r["activation_bytes"])) for r in rows]
    widths = [max(len(c[i]) for c in cells + [header]) for i in range(5)]

    def line(c):
        return "  ".join([c[0].ljust(widths[0]), c[1].ljust(widths[1])] + [c[i].rjust(widths[i]) for i in (2, 3, 4)])
    rule_width = len(line(header))
    lines = [f"{type(model).__name__} on input {shape}, memory counted in {dtype.name}", "=" * rule_width, line(header),
             "-" * rule_width]
    lines += [line(c) for c in cells]
    lines += [
        "=" * rule_width,
        f"Total params:          {t['total_params']:,}",
        f"Trainable params:      {t['trainable_params']:,}",
        f"Total MACs:            {t['total_macs']:,} ({_si(t['total_macs'])})",
        "  (each layer's macs(): Conv2d and Linear count their products; biases, pooling, activations 0)",
        f"Input memory:          {_bytes(t['input_bytes'])}",
        f"Activation memory:     {_bytes(t['activation_bytes'])}  (every layer's output, once)",
        f"Parameter memory:      {_bytes(t['param_bytes'])}",
        "=" * rule_width,
    ]
    return "\n".join(lines)


def _bytes(n):
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def _si(n):
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


# -- trace ----------------------------------------------------------------------------------


class Trace(str):
    """The text of a trace: a str, which also carries .forward and .backward, lists of dicts.

    forward rows, one per leaf-layer call: 'name', 'layer', 'input_shape', 'output_shape', 'formula'.
    backward rows, one per node of the tape, in the order backward runs them: 'name' (the leaf
    layer that recorded the op, or '<op>' for an op of a custom forward such as '<view>',
    '<add>'), 'layer' (that leaf, or the module whose forward ran the op; None outside any),
    'op' (the op's name), 'main' (True for the node of the layer's own math, which gets its
    formula), 'dout_shape', 'dx_shape', 'grads' ({parameter name in the model: gradient
    shape}), 'formula', 'index' (k for the k-th node backward runs, from 1), 'dout_from' (the
    indices of the nodes whose gradients were added up into this dout: two or more where a
    tensor fans out; [] for node 1, whose dout is the ones) and 'adds' (the sums this node's
    gradients joined late: {'into': 'node 9' or a leaf's name such as 'x' or '1.weight', 'node',
    'param', 'after': the nodes that had sent theirs before}).
    .added: the leaves whose .grad is such a sum (a shared Parameter, an input used twice):
    {'into', 'shape', 'from'}.
    """

    def __new__(cls, text, forward, backward):
        self = super().__new__(cls, text)
        self.forward, self.backward = forward, backward
        return self

    def __repr__(self):
        return f"<Trace: {len(self.forward)} layers forward, {len(self.backward)} backward; print() it for the text>"


def trace(model, x, print=True):
    """Walk one forward and one backward pass, showing every shape and where it comes from.

    x: an input batch (N, C, H, W) (or (C, H, W), taken as N = 1), or a shape tuple (zeros
    are used). Forward: each leaf layer's input -> output shape, with the formula behind it
    (Conv2d and pools: OH = floor((H + 2P - D(K-1) - 1)/S) + 1 with the numbers filled in;
    Flatten: C*H*W; Linear: (N, IN) @ W^T (IN, OUT)). Backward: starting from dout = ones
    (the gradient of out.sum()), one row per node of the tape, in the order backward() runs
    them: its dout -> dx shape and the gradient shape of each parameter it feeds; a layer's
    own node also shows the rule that computes them. Ops written in a custom forward (x.view,
    F.relu, a residual +) are rows of their own, labelled '<view>', '<relu>', '<add>'; a
    layer that records nothing (Dropout in eval mode, Identity) has no backward row.
    Rows are numbered 'node k' in the order backward() runs them. Where a tensor fans out (a
    residual input used by a block and by its shortcut, a layer called twice, a shared
    Parameter), backward() adds the gradients of its uses: the later sender's row says
    '+= into the dout of node 9 (...)', the receiver's row 'dout = node 4 (<add>) + node 8 (...)',
    and a leaf's sum is listed at the end ('x.grad (2, 6) = node 2 (<add>) + node 3 (...)').
    Runs in eval mode (Dropout is the identity), with gradients recorded even inside no_grad().
    The mode of every module, the parameters' gradients and minicnn's random generator are
    left as they were; so is a forward of the model still waiting for its backward.
    Returns a Trace (a str with .forward and .backward); print=True also prints it.
    """
    if isinstance(x, tuple):
        x = get_xp().zeros(_full_shape(x), dtype=np.float32)
    x = model_input(model, x)
    if x.ndim == 3:
        x = Tensor._wrap(x.array[None])
    with preserved(model):
        model.eval()
        forward_calls, backward_calls, out = _run_recorded(model, x, with_backward=True)
    leaf_names = {name for name, _ in named_leaves(model)}
    added = _number_and_add_up(backward_calls)
    for call in forward_calls:
        call["formula"] = forward_formula(call["layer"], call["input_shape"], call["output_shape"])
    for call in backward_calls:
        call["formula"] = backward_formula(call["layer"], call["dout_shape"], call["dx_shape"]) \
            if call["main"] else []

    labels, refs = [], {}
    module_names = {id(m): name for name, m in model.named_modules()}
    for c in backward_calls:
        if c["name"] in leaf_names:
            labels.append(_label(c) + ("" if c["main"] else f" <{c['op']}>"))
            refs[c["index"]] = f"({c['name']}) {type(c['layer']).__name__}" if c["name"] else type(c["layer"]).__name__
            refs[c["index"]] += "" if c["main"] else f" <{c['op']}>"
        elif c["layer"] is not None:
            owner = module_names.get(id(c["layer"]))
            labels.append(f"{c['name']} (in {type(c['layer']).__name__}.forward{f' of {owner}' if owner else ''})")
            refs[c["index"]] = c["name"]
        else:
            labels.append(c["name"])
            refs[c["index"]] = c["name"]
    number = len(f"node {len(backward_calls)}")
    labels = [f"node {c['index']}".ljust(number) + "  " + label for c, label in zip(backward_calls, labels)]
    width = max([len(_label(c)) for c in forward_calls] + [len(label) for label in labels], default=0)

    def sources(indices):
        return " + ".join(f"node {j} ({refs[j]})" for j in indices)

    lines = [f"Forward: x {tuple(x.shape)} {x.dtype}"]
    for c in forward_calls:
        lines.append(f"  {_label(c).ljust(width)}  {c['input_shape']} -> {c['output_shape']}")
        lines += [f"      {f}" for f in c["formula"]]
    lines.append(f"Backward: dout = ones {tuple(out.shape)}, the gradient of out.sum(); node k is the k-th op "
                 "backward() runs")
    for c, label in zip(backward_calls, labels):
        lines.append(f"  {label.ljust(width)}  dout {c['dout_shape']} -> dx {c['dx_shape']}")
        if len(c["dout_from"]) > 1:
            lines.append(f"      dout = {sources(c['dout_from'])}: the output is used {len(c['dout_from'])} "
                         "times, the gradients of its uses add")
        lines += [f"      {f}" for f in c["formula"]]
        lines += [f"      {name}.grad {shape}" for name, shape in c["grads"].items()]
        for a in c["adds"]:
            target = (f"the dout of node {a['node']} ({refs[a['node']]})" if a["node"] is not None
                      else f"{a['into']}.grad")
            lines.append(f"      += into {target}, which already has the gradient from {sources(a['after'])}")
    if added:
        lines.append("Leaves used more than once: their .grad is the sum of the gradients of every use")
        lines += [f"  {a['into']}.grad {a['shape']} = {sources(a['from'])}" for a in added]
    result = Trace("\n".join(lines), forward_calls, backward_calls)
    result.added = added
    if print:
        builtins.print(result)
    return result


def _label(call):
    text = short_name(call["layer"])
    return f"({call['name']}) {text}" if call["name"] else text


def forward_formula(layer, in_shape, out_shape):
    """The lines that explain out_shape from in_shape for one layer (its own shape_formula; may be empty)."""
    return layer.shape_formula(in_shape, out_shape)


def backward_formula(layer, dout_shape, dx_shape):
    """The rule that turns dout into dx and the parameter gradients, for one layer (its own gradient_formula)."""
    return layer.gradient_formula(dout_shape, dx_shape)
