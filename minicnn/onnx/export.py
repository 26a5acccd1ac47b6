"""minicnn.onnx.export: a model's forward pass, as the tape recorded it, written as an ONNX graph.

    minicnn.onnx.export(model, minicnn.randn(1, 1, 28, 28), "lenet5.onnx")

How. The model runs once on the example input, in eval mode (its modes are restored after), with
the tape on and the input requiring a gradient, so that every op from the input on records a
Node (minicnn.autograd). The Nodes behind the output are walked inputs first (node k is the k-th
in that order: error messages name it), and each becomes one or a few ONNX nodes, by its op name.
Its settings come from its cache (what its forward kept for the backward) and, for batch norm,
from the layer that made it (node.module). Parameters and buffers become initializers under
their state_dict names, so minicnn.onnx.load gives back a module with the same state_dict keys.

    tape op (node.op)             ONNX                                  settings from
    conv2d                        Conv                                  cache: stride, pads, dilation, groups
    max_pool2d                    MaxPool (ceil_mode=1 only where it    cache: the pooling Window
                                  changes the output size)
    avg_pool2d                    AveragePool (count_include_pad=1)     cache: Window and divisor; any other
                                  or Pad + AveragePool + Mul            divisor (count_include_pad=False with
                                                                        padding, a ceil_mode window hanging
                                                                        over, divisor_override) exactly so
    adaptive_avg_pool2d           GlobalAveragePool, or AveragePool     output size; bins must be equal
    adaptive_max_pool2d           GlobalMaxPool, or MaxPool             output size; bins must be equal
    linear                        Gemm (transB=1)                       weight (OUT, IN) as stored
    batch_norm (eval)             BatchNormalization                    the layer: running_mean, running_var
                                                                        (initializers), eps
    relu sigmoid tanh             Relu Sigmoid Tanh
    leaky_relu                    LeakyRelu                             cache: negative_slope -> alpha
    selu, hardsigmoid, hardswish  Selu, HardSigmoid (1/6, 0.5), HardSwish
    softsign                      Softsign
    softmax log_softmax           Softmax LogSoftmax                    cache: axis
    add sub mul div pow neg       Add Sub Mul Div Pow Neg               a number operand -> a Constant
    matmul exp log sqrt abs       MatMul Exp Log Sqrt Abs
    view  (view, reshape,         Flatten (axis=1) or Reshape           input and output shapes
           flatten, squeeze, unsqueeze)
    permute (transpose, .T)       Transpose                             cache: the permutation
    index (x[...]: ints, slices,  Slice, Squeeze, Unsqueeze             cache: the index
           None, ...)
    pad   (F.pad, constant)       Pad (mode=constant)                   cache: widths; the value, see below
    pad2d (Conv2d padding_mode)   Pad (mode=reflect, edge, wrap)        cache: pads, mode (wrap: opset >= 19)
    sum mean                      ReduceSum ReduceMean                  cache: axes, keepdims
    cat expand clone to           Concat Expand Identity Cast
    (Dropout, Dropout2d in eval)  nothing: they record no op in eval, and the graph is the inference graph

F.pad's cache does not keep its fill value: it is read from the output where the pad is a
layer's output (PadShortcut), else taken as 0, and the check below refuses a graph that differs.

Anything else stops with an ExportError naming the node, e.g. "cannot export node 7 (dropout in
Net.forward): ...": an op with no ONNX form here, a batch_norm on the batch's own statistics,
a dropout recorded in eval mode (F.dropout(x) without training=self.training), an advanced
index, or a tensor that is neither the input, a parameter, a buffer nor a number (it may have
been computed from the input off the tape, which a graph could not repeat).

dynamic_batch (default True): axis 0 of the input is the symbolic batch size 'N', so the file
runs on any batch. Each node is checked to keep axis 0 the batch (a view to (1, -1) of one image
does not); one that mixes it is an ExportError that says to pass dynamic_batch=False, which
writes the example's fixed shapes. With a batch of 1 in the example, a view that keeps a leading
1 is taken to keep the batch.

check (default True): the graph must pass onnx.checker.check_model(full_check=True), and onnx's
reference evaluator must reproduce minicnn's outputs on the example input within float
tolerance (otherwise ExportError names the first layer whose output differs) and, with
dynamic_batch, on a batch one larger too (which catches a view that only looked batch-safe).
The file is written only then, atomically (a temporary file in the same folder, renamed).
"""

import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .. import __version__
from .._tensor import Tensor, as_tensor
from ..autograd import Node, _order, set_grad_enabled
from ..backend import get_array_module, to_numpy
from ..nn.module import Module
from ..ops import norm as _norm
from ..ops import pool as _pool

__all__ = ["export", "ExportError", "MIN_OPSET"]

MIN_OPSET = 13  # Squeeze, Unsqueeze, ReduceSum take axes as an input from 13 on
INT64_MIN = -(2 ** 63)


class ExportError(RuntimeError):
    """The model cannot be written as ONNX; the message names the node and what is missing."""


def export(model, args, f, opset_version=17, input_names=None, output_names=None, dynamic_batch=True, check=True,
           metadata=None):
    """Write model's forward on `args` as an ONNX file, as torch.onnx.export; returns the ModelProto.

    model          a minicnn Module
    args           the example input: a Tensor (or array), or a tuple of them for a forward of several
    f              a path (written atomically) or a binary file object
    opset_version  the ONNX opset, 13 to onnx's newest (default 17)
    input_names    names of the graph inputs (default 'input', or 'input0', 'input1', ...)
    output_names   names of the graph outputs (default 'output', or 'output0', ...)
    dynamic_batch  axis 0 of inputs and outputs is the symbolic batch size 'N' (see the module docstring)
    check          check the graph and compare onnx's reference evaluator with minicnn on args
    metadata       a dict of strings stored as the model's metadata_props (e.g. the model's name)
    """
    if not isinstance(model, Module):
        raise TypeError(f"onnx.export: expected a minicnn Module, got {type(model).__name__}")
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset_version, bool) or not isinstance(opset_version, int) or not (
            MIN_OPSET <= opset_version <= newest):
        raise ValueError(f"onnx.export: opset_version must be an int from {MIN_OPSET} to {newest} (the newest this "
                         f"onnx knows), got {opset_version!r}")
    examples = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    inputs = [_leaf(x, i) for i, x in enumerate(examples)]
    input_names = _names(input_names, len(inputs), "input")

    captured = {}  # id(node) -> output array of every layer's call: for F.pad's value and for diagnostics

    def capture(module, args, out):
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor) and t._node is not None:
                captured[id(t._node)] = t.array

    handles = [m.register_forward_hook(capture) for m in model.modules()]
    try:
        with set_grad_enabled(True):
            result = _in_eval(model, inputs)
    finally:
        for handle in handles:
            handle.remove()
    outputs = list(result) if isinstance(result, (tuple, list)) else [result]
    if not outputs or not all(isinstance(t, Tensor) for t in outputs):
        raise ExportError(f"onnx.export: {type(model).__name__}.forward must return a Tensor or a tuple of Tensors, "
                          f"got {type(result).__name__}")
    output_names = _names(output_names, len(outputs), "output")
    if len(set(input_names) | set(output_names)) != len(input_names) + len(output_names):
        raise ValueError(f"onnx.export: input and output names must all differ, got {input_names} and {output_names}")

    builder = _Builder(model, opset_version, dynamic_batch, captured)
    proto = builder.build(inputs, input_names, outputs, output_names)
    if metadata:
        helper.set_model_props(proto, {str(k): str(v) for k, v in metadata.items()})
    if check:
        bigger = _bigger_batch(model, inputs) if dynamic_batch and all(t.ndim for t in inputs) else None
        _check(proto, builder, inputs, input_names, outputs, output_names, bigger)
    _write(proto, f)
    return proto


def _in_eval(model, inputs):
    """model(*inputs) in eval mode; each module's mode is restored after, as it was."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        return model(*inputs)
    finally:
        for m, mode in modes:
            m.training = mode


def _bigger_batch(model, inputs):
    """(inputs, outputs) as NumPy arrays for a batch one larger than the example (its first sample
    again): a graph with a symbolic batch size must reproduce these too."""
    bigger = [Tensor._wrap(get_array_module(t.array).concatenate([t.array, t.array[:1]])) for t in inputs]
    n = inputs[0].shape[0]
    try:
        with set_grad_enabled(False):
            out = _in_eval(model, bigger)
    except Exception as exc:
        raise ExportError(f"onnx.export: {type(model).__name__} runs on the example batch of {n} but not on a batch of "
                          f"{n + 1} ({type(exc).__name__}: {exc}): its forward depends on the batch size, so export "
                          "it with dynamic_batch=False") from exc
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [to_numpy(t.array) for t in bigger], [to_numpy(t.array) for t in outs]


def _leaf(x, i):
    """The example input as a fresh leaf Tensor that requires a gradient (so every op from it on is recorded)."""
    if not isinstance(x, Tensor) and not hasattr(x, "shape"):
        raise TypeError(f"onnx.export: example input {i} must be a Tensor or an array, got {type(x).__name__}")
    t = Tensor._wrap(as_tensor(x).array)
    if t.dtype.kind == "f":
        t.requires_grad_(True)
    return t


def _names(names, n, stem):
    if names is None:
        return [stem] if n == 1 else [f"{stem}{i}" for i in range(n)]
    names = [str(s) for s in names]
    if len(names) != n or len(set(names)) != n or not all(names):
        raise ValueError(f"onnx.export: expected {n} distinct non-empty {stem} names, got {names}")
    return names


def _topological(roots):
    """The Nodes behind roots, each after every Node it reads: the tape's own order (autograd._order,
    iterative, no recursion limit) reversed, root by root, each node once."""
    order, seen = [], set()
    for root in roots:
        for node in reversed(_order(root)):
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
    return order


class _Builder:
    """Turns the recorded Nodes into ONNX nodes, initializers and value infos."""

    def __init__(self, model, opset, dynamic, captured):
        self.model, self.opset, self.dynamic, self.captured = model, opset, dynamic, captured
        self.nodes, self.initializers, self.value_info = [], [], []
        self.names = {}          # id(Node or leaf Tensor) -> the ONNX value holding it
        self.batched = {}        # value -> m, for values whose axis 0 is m samples per example (m = 1: the batch)
        self.batch = None        # the example's batch size
        self.state = {}          # id(tensor) and id(array) -> state_dict name, for parameters and buffers
        for kind in (model.named_parameters(), model.named_buffers()):
            for name, t in kind:
                self.state.setdefault(id(t), name)
                self.state.setdefault(id(t.array), name)
        self.module_names = {id(m): name for name, m in model.named_modules()}
        self.k, self.node, self.used, self.renamed, self.order = None, None, set(), set(), []

    # -- messages --------------------------------------------------------------------------------

    def where(self, node=None, k=None):
        node, k = node or self.node, self.k if k is None else k
        m = node.module
        if m is None:
            owner = "no layer"
        elif self.module_names.get(id(m)) == "":
            owner = f"{type(m).__name__}.forward"
        elif id(m) in self.module_names:
            owner = f"{self.module_names[id(m)]} ({type(m).__name__})"
        else:
            owner = type(m).__name__
        return f"node {k} ({node.op} in {owner})"

    def error(self, why):
        return ExportError(f"onnx.export: cannot export {self.where()}: {why}")

    def mixes_batch(self, why):
        """The node does not keep axis 0 the batch: refused when the graph is to run on any batch size."""
        if self.dynamic:
            raise self.error(f"{why}, so the graph would not run on another batch size; export with "
                             "dynamic_batch=False for a graph of the example's fixed shapes")

    # -- values ----------------------------------------------------------------------------------

    def shape_of(self, e):
        return tuple(e.shape)

    def value(self, e):
        """The ONNX value for one input of a Node: a Node's output, the graph input, an initializer, a Constant."""
        if e is None:
            return None
        if id(e) in self.names:
            return self.names[id(e)]
        if isinstance(e, Node):
            raise self.error("internal error: an input node was not exported before it")
        name = self.state.get(id(e), self.state.get(id(e.array)))
        if name is not None:
            self.initializers.append(numpy_helper.from_array(to_numpy(e.array), name))
        elif e.numel() == 1:
            name = self.constant(to_numpy(e.array))
        else:
            raise self.error(
                f"it reads a tensor of shape {tuple(e.shape)} that is not the input, a parameter, a buffer or a "
                "number: the exporter cannot tell a constant from a value computed from the input off the tape "
                "(a comparison, .numpy(), ...). If it is a constant, register it in the model with "
                "self.register_buffer(name, tensor)")
        self.names[id(e)] = name
        return name

    def fresh(self, op):
        scope = self.module_names.get(id(self.node.module), "") if self.node.module is not None else ""
        base = f"{scope}/{op}_{self.k}"
        name, j = base, 1
        while name in self.used:
            j += 1
            name = f"{base}_{j}"
        self.used.add(name)
        return name

    def constant(self, array):
        name = self.fresh("Constant")
        self.nodes.append(helper.make_node("Constant", [], [name], name=name,
                                           value=numpy_helper.from_array(np.asarray(array))))
        return name

    def ints(self, values):
        return self.constant(np.asarray([int(v) for v in values], dtype=np.int64))

    def emit(self, op, inputs, batched=None, **attrs):
        """Append one ONNX node; returns its output's name. batched: None (default) when the output's
        axis 0 is that of its first batched input, False when it is not the batch, or m (axis 0 is
        m rows per sample)."""
        inputs = list(inputs)
        while inputs and inputs[-1] is None:
            inputs.pop()
        name = self.fresh(op)
        self.nodes.append(helper.make_node(op, [i or "" for i in inputs], [name], name=name, **attrs))
        if batched is None:
            batched = next((self.batched[i] for i in inputs if i in self.batched), False)
        if batched:
            self.batched[name] = int(batched)
        return name

    def info(self, name, shape, dtype):
        dims = list(shape)
        if self.dynamic and name in self.batched and dims:
            m = self.batched[name]
            dims[0] = "N" if m == 1 else f"{m}*N"
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), dims)

    # -- the graph -------------------------------------------------------------------------------

    def build(self, inputs, input_names, outputs, output_names):
        for t, name in zip(inputs, input_names):
            self.names[id(t)] = name
            if t.ndim:
                self.batched[name] = 1
        sizes = {t.shape[0] for t in inputs if t.ndim}
        if self.dynamic and len(sizes) > 1:
            raise ExportError(f"onnx.export: the example inputs have different sizes on axis 0 ({sorted(sizes)}), so "
                              "it cannot be one batch axis; export with dynamic_batch=False")
        self.batch = sizes.pop() if sizes else 1
        self.used.update(input_names, output_names)
        order = _topological([t._node for t in outputs if t._node is not None])
        self.order = order
        for k, node in enumerate(order):
            self.k, self.node = k, node
            handler = HANDLERS.get(node.op)
            if handler is None:
                raise self.error(f"minicnn.onnx has no ONNX form for the op '{node.op}'; it exports "
                                 f"{', '.join(sorted(HANDLERS))}")
            ins = [self.value(e) for e in node.inputs]
            try:
                out = handler(self, node, *ins)
            except ExportError:
                raise
            except (TypeError, ValueError, IndexError, AttributeError, KeyError) as exc:
                raise self.error(f"its cache is not laid out as minicnn.onnx expects ({type(exc).__name__}: {exc}); "
                                 "was minicnn.ops changed?") from exc
            self.names[id(node)] = out
            self.value_info.append(self.info(out, node.shape, node.dtype))

        graph_inputs = [self.info(n, t.shape, t.dtype) for t, n in zip(inputs, input_names)]
        graph_outputs = []
        input_ids = {id(t) for t in inputs}
        for t, name in zip(outputs, output_names):
            key = id(t._node) if t._node is not None else id(t)
            if t._node is None and key not in input_ids:
                raise ExportError(f"onnx.export: output {name!r} does not depend on the input through any recorded op "
                                  "(was it computed under no_grad, or off the tape?)")
            current = self.names[key]
            if t._node is not None and current not in input_names + output_names and key not in self.renamed:
                self.rename(current, name)
                self.names[key] = name
                self.renamed.add(key)
            else:  # the input itself, or a value that is already another output: copy it
                self.nodes.append(helper.make_node("Identity", [current], [name], name=f"/Identity_{name}"))
            if current in self.batched:
                self.batched[name] = self.batched[current]
            graph_outputs.append(self.info(name, t.shape, t.dtype))
        self.value_info = [v for v in self.value_info if v.name not in output_names]
        graph = helper.make_graph(self.nodes, type(self.model).__name__, graph_inputs, graph_outputs,
                                  initializer=self.initializers, value_info=self.value_info)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="minicnn", producer_version=__version__)
        # the oldest IR version the opset allows, so that older runtimes read the file
        proto.ir_version = helper.find_min_ir_version_for(list(proto.opset_import))
        return proto

    def rename(self, old, new):
        """The value `old` is called `new` from now on (a node output that becomes a graph output)."""
        for n in self.nodes:
            for field in (n.input, n.output):
                for i, v in enumerate(field):
                    if v == old:
                        field[i] = new
        for v in self.value_info:
            if v.name == old:
                v.name = new
        if old in self.batched:
            self.batched[new] = self.batched[old]


# -- one handler per tape op: handler(builder, node, *input values) -> the output value ----------------


def _conv2d(b, node, x, w, bias):
    _, weight, _, _, stride, pads, dilation, groups = node.cache[:8]
    (pt, pb), (pl, pr) = pads
    return b.emit("Conv", [x, w, bias], kernel_shape=[int(k) for k in weight.shape[2:]],
                  strides=[int(s) for s in stride], pads=[int(pt), int(pl), int(pb), int(pr)],
                  dilations=[int(d) for d in dilation], group=int(groups))


def _max_pool2d(b, node, x):
    g = node.cache[3]
    H, W = b.shape_of(node.inputs[0])[2:]
    floor = tuple(_pool.pool_output_size(n, k, s, p, d, False)
                  for n, k, s, p, d in zip((H, W), g.kernel, g.stride, g.padding, g.dilation))
    (PH, PW) = g.padding
    return b.emit("MaxPool", [x], kernel_shape=list(g.kernel), strides=list(g.stride), pads=[PH, PW, PH, PW],
                  dilations=list(g.dilation), ceil_mode=int(floor != tuple(g.out_hw)))


def _avg_pool2d(b, node, x):
    _, _, divisor, g = node.cache
    (KH, KW), (PH, PW) = g.kernel, g.padding
    H, W = b.shape_of(node.inputs[0])[2:]
    if np.ndim(divisor) == 0 and float(divisor) == KH * KW and tuple(g.padded_hw) == (H + 2 * PH, W + 2 * PW):
        return b.emit("AveragePool", [x], kernel_shape=[KH, KW], strides=list(g.stride), pads=[PH, PW, PH, PW],
                      count_include_pad=1)
    # Any other divisor, exactly: pad to the cells the windows reach, average over whole windows
    # (every cell counted), and rescale each window by KH*KW / (the divisor minicnn used).
    HP, WP = g.padded_hw
    padded = b.emit("Pad", [x, b.ints([0, 0, PH, PW, 0, 0, HP - H - PH, WP - W - PW])], mode="constant")
    pooled = b.emit("AveragePool", [padded], kernel_shape=[KH, KW], strides=list(g.stride))
    scale = (KH * KW / np.asarray(to_numpy(divisor), dtype=np.float64)).astype(node.dtype)
    return b.emit("Mul", [pooled, b.constant(scale)])


def _adaptive_pool(op, global_op):
    def handler(b, node, x):
        H, W = b.shape_of(node.inputs[0])[2:]
        OH, OW = node.shape[2:]
        if (OH, OW) == (1, 1):
            return b.emit(global_op, [x])
        if H % OH or W % OW:
            raise b.error(f"its bins are not all of one size (input {H}x{W} into {OH}x{OW}), which no ONNX pooling "
                          "has; pick an output size that divides the input")
        k = [H // OH, W // OW]
        return b.emit(op, [x], kernel_shape=k, strides=k)
    return handler


def _linear(b, node, x, w, bias):
    return b.emit("Gemm", [x, w, bias], transB=1)


def _batch_norm(b, node, x, w, bias):
    if node.backward is not _norm.batch_norm_inference_backward:
        raise b.error("it normalises with the batch's own statistics (a BatchNorm with track_running_stats=False, "
                      "or F.batch_norm(training=True)); ONNX's BatchNormalization infers with running statistics")
    m = node.module
    if getattr(m, "running_mean", None) is None or getattr(m, "running_var", None) is None or not hasattr(m, "eps"):
        raise b.error("F.batch_norm was called outside a BatchNorm layer, so its running statistics and eps are "
                      "not known to the exporter; use nn.BatchNorm1d / nn.BatchNorm2d")
    C = b.shape_of(node.inputs[0])[1]
    scale = w or b.constant(np.ones(C, dtype=node.dtype))
    shift = bias or b.constant(np.zeros(C, dtype=node.dtype))
    return b.emit("BatchNormalization", [x, scale, shift, b.value(m.running_mean), b.value(m.running_var)],
                  epsilon=float(m.eps))


def _unary(op):
    return lambda b, node, x: b.emit(op, [x])


def _leaky_relu(b, node, x):
    return b.emit("LeakyRelu", [x], alpha=float(node.cache[1]))


def _clip(low, high):
    """Clip between constants: hardtanh's (min_val, max_val) from the cache, relu6's (0, 6)."""
    def handler(b, node, x):
        lo, hi = (node.cache[1], node.cache[2]) if low is None else (low, high)
        return b.emit("Clip", [x, b.constant(np.asarray(lo, dtype=node.dtype)),
                               b.constant(np.asarray(hi, dtype=node.dtype))])
    return handler


def _prelu(b, node, x, w):
    """ONNX's PRelu broadcasts the slope from the last axis: a per-channel weight (C,) of a
    (N, C, *) input is reshaped to (C, 1, ..., 1) first."""
    rank, (C,) = len(b.shape_of(node.inputs[0])), b.shape_of(node.inputs[1])
    if rank > 2 and C != 1:
        w = b.emit("Reshape", [w, b.ints([C] + [1] * (rank - 2))])
    return b.emit("PRelu", [x, w])


def _silu(b, node, x):
    return b.emit("Mul", [x, b.emit("Sigmoid", [x])])


def _gelu(b, node, x):
    """ONNX's Gelu (opset 20), exact or with torch's tanh approximation."""
    if b.opset < 20:
        raise b.error(f"gelu is ONNX Gelu, new in opset 20; export with opset_version=20 or later (this is "
                      f"{b.opset})")
    return b.emit("Gelu", [x], approximate=str(node.cache[2]))


def _softmax(op):
    def handler(b, node, x):
        axis = node.cache[1] % max(len(node.shape), 1)
        if axis == 0 and x in b.batched:
            b.mixes_batch("it normalises along axis 0, the batch")
        return b.emit(op, [x], axis=int(axis))
    return handler


def _check_broadcast(b, node, values):
    """An operand of a batched result must carry the batch on axis 0, or broadcast along it."""
    out = node.shape
    if not any(v in b.batched for v in values):
        return
    for e, v in zip(node.inputs, values):
        s = b.shape_of(e)
        if v in b.batched and len(s) != len(out):
            b.mixes_batch(f"an operand of shape {s} broadcasts to {out}, moving the batch off axis 0")
        if v not in b.batched and len(s) == len(out) and s[0] != 1:
            b.mixes_batch(f"a constant operand of shape {s} has its own size on the batch axis")


def _binary(op):
    def handler(b, node, x, y):
        _check_broadcast(b, node, (x, y))
        return b.emit(op, [x, y])
    return handler


def _pow(b, node, x):
    return b.emit("Pow", [x, b.constant(np.asarray(node.cache[1], dtype=node.dtype))])


def _matmul(b, node, x, y):
    r = len(node.shape)
    for v, e, least in ((x, node.inputs[0], 2), (y, node.inputs[1], 3)):
        s = b.shape_of(e)
        if v in b.batched and (len(s) != r or r < least):
            b.mixes_batch(f"a batched operand of shape {s} is contracted or broadcast along axis 0")
        if v not in b.batched and any(w in b.batched for w in (x, y)) and len(s) == r and r >= 3 and s[0] != 1:
            b.mixes_batch(f"a constant operand of shape {s} has its own size on the batch axis")
    return b.emit("MatMul", [x, y])


def _view(b, node, x):
    before, after = b.shape_of(node.inputs[0]), tuple(node.shape)
    if 0 in after:
        raise b.error(f"it reshapes to an empty shape {after}")
    if x in b.batched:
        if len(after) == 2 and after[0] == before[0]:
            return b.emit("Flatten", [x], axis=1)
        if after and after[0] % b.batch == 0:
            # -1: axis 0 takes what the samples bring, m = after[0] / N rows each (row-major order keeps
            # each sample's values together, whatever N is)
            return b.emit("Reshape", [x, b.ints((-1,) + after[1:])], batched=after[0] // b.batch)
        b.mixes_batch(f"it reshapes {before} to {after}, which does not keep axis 0 as the batch")
        return b.emit("Reshape", [x, b.ints(after)], batched=False)
    return b.emit("Reshape", [x, b.ints(after)])


def _permute(b, node, x):
    perm = [int(a) for a in node.cache]
    if perm and perm[0] != 0 and x in b.batched:
        b.mixes_batch(f"it permutes the axes by {tuple(perm)}, moving the batch off axis 0")
    return b.emit("Transpose", [x], perm=perm)


def _index(b, node, x):
    shape, _, index = node.cache
    parts = list(index) if isinstance(index, tuple) else [index]
    if not all(p is None or p is Ellipsis or isinstance(p, slice) or
               (isinstance(p, (int, np.integer)) and not isinstance(p, bool)) for p in parts):
        raise b.error("it indexes with a tensor, an array or a list (advanced indexing), which has no simple "
                      "ONNX form here; use slices and ints")
    if parts.count(Ellipsis) > 1:
        raise b.error("an index can have only one Ellipsis")
    real = sum(1 for p in parts if p is not None and p is not Ellipsis)
    if Ellipsis in parts:
        i = parts.index(Ellipsis)
        parts[i:i + 1] = [slice(None)] * (len(shape) - real)
    parts += [slice(None)] * (len(shape) - sum(1 for p in parts if p is not None))
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    axis = out_pos = 0
    for p in parts:
        if p is None:
            unsqueeze.append(out_pos)
            out_pos += 1
            continue
        n = shape[axis]
        if isinstance(p, slice):
            start, stop, step = p.indices(n)
            if (start, stop, step) != (0, n, 1):
                starts.append(start)
                ends.append(INT64_MIN if step < 0 and stop < 0 else stop)
                axes.append(axis)
                steps.append(step)
            out_pos += 1
        else:
            i = int(p) % n
            starts.append(i)
            ends.append(i + 1)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        axis += 1
    if x in b.batched and ((0 in axes) or (0 in unsqueeze)):
        b.mixes_batch(f"the index {index!r} picks from or adds to axis 0, the batch")
    if 0 in node.shape:
        raise b.error(f"the index {index!r} selects nothing (output shape {tuple(node.shape)})")
    out = x
    if axes:
        out = b.emit("Slice", [out, b.ints(starts), b.ints(ends), b.ints(axes), b.ints(steps)])
    if squeeze:
        out = b.emit("Squeeze", [out, b.ints(squeeze)])
    if unsqueeze:
        out = b.emit("Unsqueeze", [out, b.ints(unsqueeze)])
    if out == x:
        out = b.emit("Identity", [x])
    return out


def _pad(b, node, x):
    widths, value = node.cache
    widths = [(int(p), int(q)) for p, q in widths]
    if widths and widths[0] != (0, 0) and x in b.batched:
        b.mixes_batch(f"it pads axis 0, the batch, by {widths[0]}")
    value = float(value)
    pads = b.ints([p for p, _ in widths] + [q for _, q in widths])
    return b.emit("Pad", [x, pads, b.constant(np.asarray(value, dtype=node.dtype))], mode="constant")


_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad2d(b, node, x):
    ((pt, pb), (pl, pr)), mode = node.cache
    if mode == "circular" and b.opset < 19:
        raise b.error(f"circular padding is ONNX Pad mode 'wrap', new in opset 19; export with opset_version=19 "
                      f"or later (this is {b.opset})")
    lead = len(b.shape_of(node.inputs[0])) - 2
    pads = b.ints([0] * lead + [pt, pl] + [0] * lead + [pb, pr])
    return b.emit("Pad", [x, pads], mode=_PAD_MODES[mode])


def _reduce(op):
    def handler(b, node, x):
        _, axes, keepdims = node.cache
        axes = [int(a) for a in axes]
        if 0 in axes and x in b.batched:
            b.mixes_batch("it reduces over axis 0, the batch")
        if op == "ReduceMean" and b.opset < 18:
            return b.emit(op, [x], axes=axes, keepdims=int(keepdims), batched=None if 0 not in axes else False)
        return b.emit(op, [x, b.ints(axes)], keepdims=int(keepdims), batched=None if 0 not in axes else False)
    return handler


def _cat(b, node, *values):
    axis = int(node.cache[1])
    if any(v in b.batched for v in values):
        if axis == 0:
            b.mixes_batch("it joins tensors along axis 0, the batch")
        if not all(v in b.batched for v in values):
            b.mixes_batch("it joins a batched tensor with a constant that has its own size on axis 0")
    return b.emit("Concat", list(values), axis=axis)


def _expand(b, node, x):
    before, after = b.shape_of(node.inputs[0]), tuple(node.shape)
    if x in b.batched:
        if len(before) != len(after) or before[0] != after[0]:
            b.mixes_batch(f"it expands {before} to {after}, changing axis 0")
        return b.emit("Expand", [x, b.ints((1,) + after[1:])])  # 1 broadcasts to the batch, whatever it is
    return b.emit("Expand", [x, b.ints(after)])


def _cast(b, node, x):
    return b.emit("Cast", [x], to=helper.np_dtype_to_tensor_dtype(np.dtype(node.dtype)))


def _dropout(b, node, x):
    raise b.error("it drops values at random even though the model is in eval mode (F.dropout(x) defaults to "
                  "training=True): pass training=self.training, or use nn.Dropout, which is the identity in eval")


HANDLERS = {
    "conv2d": _conv2d,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "adaptive_avg_pool2d": _adaptive_pool("AveragePool", "GlobalAveragePool"),
    "adaptive_max_pool2d": _adaptive_pool("MaxPool", "GlobalMaxPool"),
    "linear": _linear,
    "batch_norm": _batch_norm,
    "relu": _unary("Relu"),
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "leaky_relu": _leaky_relu,
    "selu": _unary("Selu"),  # ONNX's default alpha and gamma are torch's constants
    "elu": lambda b, node, x: b.emit("Elu", [x], alpha=float(node.cache[1])),
    "hardtanh": _clip(None, None),
    "relu6": _clip(0.0, 6.0),
    "silu": _silu,
    "prelu": _prelu,
    "gelu": _gelu,
    "hardsigmoid": lambda b, node, x: b.emit("HardSigmoid", [x], alpha=1.0 / 6, beta=0.5),
    "hardswish": _unary("HardSwish"),
    "softsign": _unary("Softsign"),
    "softmax": _softmax("Softmax"),
    "log_softmax": _softmax("LogSoftmax"),
    "add": _binary("Add"),
    "sub": _binary("Sub"),
    "mul": _binary("Mul"),
    "div": _binary("Div"),
    "pow": _pow,
    "neg": _unary("Neg"),
    "exp": _unary("Exp"),
    "log": _unary("Log"),
    "sqrt": _unary("Sqrt"),
    "abs": _unary("Abs"),
    "matmul": _matmul,
    "view": _view,
    "permute": _permute,
    "index": _index,
    "pad": _pad,
    "pad2d": _pad2d,
    "sum": _reduce("ReduceSum"),
    "mean": _reduce("ReduceMean"),
    "cat": _cat,
    "expand": _expand,
    "clone": _unary("Identity"),
    "to": _cast,
    "dropout": _dropout,
    "dropout2d": _dropout,
}


# -- the check and the file ---------------------------------------------------------------------------


def _tolerance(dtype, expected):
    """(rtol, atol): a thousand roundings of the dtype, relative to the output's scale."""
    eps = float(np.finfo(dtype).eps) if np.dtype(dtype).kind == "f" else 0.0
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    return 1e3 * eps, 1e3 * eps * scale


def _close(got, expected):
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return False
    rtol, atol = _tolerance(expected.dtype, expected)
    return bool(np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True))


def _check(proto, builder, inputs, input_names, outputs, output_names, bigger):
    from onnx.reference import ReferenceEvaluator

    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"onnx.export: the graph fails onnx.checker.check_model ({exc}); this is a bug in "
                          "minicnn.onnx, please report it with the model") from None
    feeds = {name: to_numpy(t.array) for t, name in zip(inputs, input_names)}
    session = ReferenceEvaluator(proto)
    got = session.run(None, feeds)
    wrong = [name for name, g, t in zip(output_names, got, outputs) if not _close(g, to_numpy(t.array))]
    if not wrong:
        if bigger is not None:
            arrays, expected = bigger
            got = session.run(None, dict(zip(input_names, arrays)))
            for name, g, e in zip(output_names, got, expected):
                if not _close(g, e):
                    how = (f"shape {np.shape(g)} instead of {e.shape}" if np.shape(g) != e.shape else "other values")
                    raise ExportError(
                        f"onnx.export: the graph reproduces minicnn's output {name!r} on the example batch of "
                        f"{builder.batch}, but not on a batch of {builder.batch + 1} ({how}): a view or index in "
                        f"forward that depends on the batch size looked like one that keeps it (x.view(1, -1), "
                        "x.squeeze() on a batch of 1, ...). Write it with x.size(0) or x.flatten(1), use an example "
                        "batch larger than 1, or export with dynamic_batch=False. Nothing was written.")
        return
    # Find the first layer whose output differs, comparing what each layer's call gave in minicnn.
    values = session.run(None, feeds, intermediate=True)
    first = ""
    for k, node in enumerate(builder.order):
        name = builder.names.get(id(node))
        if id(node) in builder.captured and name in values:
            expected = to_numpy(builder.captured[id(node)])
            if not _close(values[name], expected):
                got = np.asarray(values[name])
                how = (f"shape {got.shape} instead of {expected.shape}" if got.shape != expected.shape else
                       f"max |difference| {float(np.abs(got.astype(np.float64) - expected).max()):.3g}")
                first = f"; the first layer output that differs is that of {builder.where(node, k)}: {how}"
                break
    raise ExportError(f"onnx.export: onnx's reference evaluator does not reproduce minicnn's output {wrong[0]!r} "
                      f"on the example input{first}. (F.pad's fill value is taken as 0 where it is not a layer's "
                      "output.) Nothing was written.")


def _write(proto, f):
    data = proto.SerializeToString()
    if isinstance(f, (str, bytes, os.PathLike)):
        path = os.fsdecode(os.fspath(f))
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fp:
                fp.write(data)
                fp.flush()
                os.fsync(fp.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    elif hasattr(f, "write"):
        f.write(data)
    else:
        raise TypeError(f"onnx.export: f must be a path or a writable binary file object, got {type(f).__name__}")

