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
    elu, hardtanh / relu6, silu   Elu, Clip, x * Sigmoid                cache: alpha; the bounds
    gelu, prelu                   Gelu (opset 20), PRelu                cache: approximate; the slope per channel
    softplus                      Softplus, with beta and torch's       cache: beta, threshold
                                  threshold written around it (Where)
    conv_transpose2d              ConvTranspose (one per group, joined  cache: stride, padding, output_padding,
                                  by Concat, where groups > 1)          dilation, groups
    interpolate (Upsample)        Resize: nearest (asymmetric, floor),  cache: mode, align_corners, the scale
                                  linear (half_pixel or align_corners)  factor torch used, else the sizes
    layer_norm                    LayerNormalization (opset 17)         cache: the normalised axes, eps
    group_norm (GroupNorm,        Reshape to (N, G, -1),                cache: G, eps
      InstanceNorm)               InstanceNormalization, the affine
    local_response_norm           x / (k + alpha/n * Conv(x^2, band))   cache: size, alpha, beta, k (not LRN:
                                  ^ beta                                its window differs for even sizes)
    amax amin max min (values)    ReduceMax ReduceMin                   cache: axes, keepdims
    norm (p = 2, 1, inf)          ReduceL2, ReduceL1, ReduceMax(Abs)    cache: p, axes, keepdims
    clamp maximum minimum         Clip Max Min
    where                         Where (the condition must be a        the buffer, as an initializer
                                  registered bool buffer)
    stack                         Unsqueeze + Concat                    cache: axis
    cross_entropy, nll_loss       SoftmaxCrossEntropyLoss,              the node's settings: reduction, class
      (class indices)             NegativeLogLikelihoodLoss             weight, ignore_index; the target is an
                                                                        input of the export
    cross_entropy (probabilities) -sum w p' LogSoftmax, reduced         cache: weight, label smoothing
    mse_loss l1_loss              written out (Sub, Mul or Abs,         cache: reduction (and smooth_l1's beta,
    smooth_l1_loss                Where), then ReduceMean / ReduceSum   the BCE weights as constants)
    binary_cross_entropy(_with_logits)
    (Dropout, Dropout2d in eval)  nothing: they record no op in eval, and the graph is the inference graph

A loss reduced over the batch ('mean', 'sum') has no batch axis, and runs on any batch size.
Refused, with the reason: max_unpool2d (its indices are off the tape), in-place writes (fill_,
copy_, x[i] = v), cross_entropy with label smoothing against class indices, a where whose
condition is not a registered buffer.

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
from onnx import TensorProto, helper, numpy_helper

from .. import __version__
from .._tensor import Tensor, as_tensor
from ..autograd import Node, _order, set_grad_enabled
from ..backend import get_array_module, to_numpy
from ..nn.module import Module
from ..ops import loss as _loss_ops
from ..ops import norm as _norm
from ..ops import pool as _pool
from ..ops import tensor as _tensor_ops

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


def _reduce_op(b, op, x, axes, keepdims, batched=None):
    """One ONNX reduction over axes (None: every axis), in the opset's form: ReduceSum takes its axes
    as an input from opset 13, the others (ReduceMean, ReduceMax, ReduceMin, ReduceL1, ReduceL2)
    from 18; before, an attribute."""
    attrs = dict(keepdims=int(keepdims))
    if axes is None:
        return b.emit(op, [x], batched=batched, **attrs)
    axes = [int(a) for a in axes]
    if op == "ReduceSum" or b.opset >= 18:
        return b.emit(op, [x, b.ints(axes)], batched=batched, **attrs)
    return b.emit(op, [x], batched=batched, axes=axes, **attrs)


def _over_batch(b, x, axes):
    """None when the reduction keeps axis 0 (the batch) in the output, else False (the output has no batch)."""
    return False if x in b.batched and (axes is None or 0 in axes) else None


def _extreme(op):
    """amax / amin, and max / min over all elements or along one dim (their values: ONNX's ReduceMax
    and ReduceMin keep NaN, as torch does)."""
    def handler(b, node, x):
        n = len(b.shape_of(node.inputs[0]))
        if node.backward in (_tensor_ops.max_along_backward, _tensor_ops.min_along_backward):
            _, axis, _, keepdims = node.cache
            axes = (int(axis),)
        else:
            _, axes, _, keepdims = node.cache
            axes = tuple(int(a) for a in axes) if axes is not None else tuple(range(n))
        if n == 0:
            return b.emit("Identity", [x])
        return _reduce_op(b, op, x, axes, keepdims, _over_batch(b, x, axes))
    return handler


def _norm_op(b, node, x):
    _, p, axes, _, keepdims = node.cache
    n = len(b.shape_of(node.inputs[0]))
    axes = tuple(int(a) for a in axes) if axes is not None else tuple(range(n))
    batched = _over_batch(b, x, axes)
    if p == 2:
        return _reduce_op(b, "ReduceL2", x, axes, keepdims, batched)
    if p == 1:
        return _reduce_op(b, "ReduceL1", x, axes, keepdims, batched)
    return _reduce_op(b, "ReduceMax", b.emit("Abs", [x]), axes, keepdims, batched)


def _clamp(b, node, x):
    _, low, high = node.cache
    dtype = node.dtype
    bound = [b.constant(np.asarray(v, dtype=dtype)) if v is not None else None for v in (low, high)]
    if bound == [None, None]:
        return b.emit("Identity", [x])
    return b.emit("Clip", [x] + bound)  # an absent bound: an empty input (a trailing one is left out)


def _where(b, node, x, y):
    condition = node.cache[0]
    name = b.state.get(id(condition))
    if name is None:
        raise b.error("its condition is not a registered bool buffer: the exporter cannot tell a constant mask "
                      "from one computed from the input off the tape (x > 0 records no op). Register a constant "
                      "mask with self.register_buffer(name, mask), or write the op with relu, clamp or maximum")
    _check_broadcast(b, node, (x, y))
    if id(condition) not in b.names:
        b.initializers.append(numpy_helper.from_array(to_numpy(condition), name))
        b.names[id(condition)] = name
    return b.emit("Where", [b.names[id(condition)], x, y])


def _stack(b, node, *values):
    count, axis = node.cache
    axis = int(axis)
    if axis == 0 and any(v in b.batched for v in values):
        b.mixes_batch("it stacks tensors along a new axis 0, the batch")
    axes = b.ints([axis])
    return b.emit("Concat", [b.emit("Unsqueeze", [v, axes]) for v in values], axis=axis)


def _softplus(b, node, x):
    """torch's softplus: log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (ONNX's
    Softplus has neither beta nor threshold, so both are written out around it)."""
    _, threshold, beta = node.cache
    beta = float(beta)
    scale = b.constant(np.asarray(beta, dtype=node.dtype)) if beta != 1 else None
    z = b.emit("Mul", [x, scale]) if scale else x
    soft = b.emit("Softplus", [z])
    if scale:
        soft = b.emit("Div", [soft, scale])
    above = b.emit("Greater", [z, b.constant(np.asarray(threshold, dtype=node.dtype))])
    return b.emit("Where", [above, x, soft])


def _conv_transpose2d(b, node, x, w, bias):
    """ConvTranspose; with groups, one ConvTranspose per group on its slice of channels, joined
    (onnx 1.23's reference evaluator cannot run a grouped ConvTranspose, so the check could not pass)."""
    _, _, weight, _, stride, padding, output_padding, dilation, groups = node.cache[:9]
    (ph, pw) = padding
    attrs = dict(kernel_shape=[int(k) for k in weight.shape[2:]], strides=[int(s) for s in stride],
                 pads=[int(ph), int(pw), int(ph), int(pw)], output_padding=[int(p) for p in output_padding],
                 dilations=[int(d) for d in dilation])
    G = int(groups)
    if G == 1:
        return b.emit("ConvTranspose", [x, w, bias], **attrs)
    C_in, C_out_g = int(weight.shape[0]), int(weight.shape[1])

    def part(value, size, g):
        return b.emit("Slice", [value, b.ints([g * size]), b.ints([(g + 1) * size]), b.ints([1 if value is x else 0])],
                      batched=None if value is x else False)
    parts = [b.emit("ConvTranspose", [part(x, C_in // G, g), part(w, C_in // G, g),
                                      part(bias, C_out_g, g) if bias else None], **attrs) for g in range(G)]
    return b.emit("Concat", parts, axis=1)


def _resize_rule_is_torchs(n, m, scale, rows):
    """Whether Resize's nearest rule (asymmetric, floor: src = floor(o / scale)) picks torch's rows for
    every output o, computed in float32 and in float64, from the scale and from its float32 rounding
    (runtimes differ in which they use)."""
    o = np.arange(m)
    stored = np.float32(scale)  # a Resize scale is a float32 in the file
    return all(np.array_equal(np.clip(np.floor(o.astype(dt) / dt(s)), 0, n - 1).astype(np.int64), rows)
               for dt in (np.float32, np.float64) for s in (scale, stored))


def _interpolate(b, node, x):
    """Resize: 'nearest' as asymmetric coordinates with nearest_mode floor, 'bilinear' as linear with
    half_pixel centres (align_corners: the corner rule, from the sizes). Where torch used the scale
    factor given, so does the graph (scales, 1 on an axis whose length is kept); else the sizes.
    Torch's nearest rule is floor(o * s) in float32, which Resize's floor(o / scale) can miss by one
    row (scale 1.2, o = 6): where it would for some row, the rows torch reads are two Gathers instead."""
    shape, taps, (mode, align_corners, scales) = node.cache
    sides = list(zip(shape[2:], node.shape[2:]))
    # align_corners reads n and m only, never the scale: from the sizes
    use_scales = (mode == "nearest" or not align_corners) and all(s is not None for s in scales)
    per_axis = [1.0 if m == n else float(s) for (n, m), s in zip(sides, scales)] if use_scales else None
    if mode == "nearest":
        rows = [to_numpy(t[0][0]).astype(np.int64) for t in taps]
        ratios = per_axis or [m / n for n, m in sides]
        if not all(_resize_rule_is_torchs(n, m, r, i) for (n, m), r, i in zip(sides, ratios, rows)):
            out = b.emit("Gather", [x, b.ints(rows[0])], axis=2)
            return b.emit("Gather", [out, b.ints(rows[1])], axis=3)
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        attrs = dict(mode="linear", coordinate_transformation_mode="align_corners" if align_corners else "half_pixel")
    if per_axis is not None:
        return b.emit("Resize", [x, "", b.constant(np.asarray([1.0, 1.0] + per_axis, dtype=np.float32))], **attrs)
    lead = b.emit("Slice", [b.emit("Shape", [x], batched=False), b.ints([0]), b.ints([2])], batched=False)
    sizes = b.emit("Concat", [lead, b.ints([m for _, m in sides])], batched=False, axis=0)
    return b.emit("Resize", [x, "", "", sizes], batched=None if x in b.batched else False, **attrs)


def _layer_norm(b, node, x, w, bias):
    _, _, _, _, axes, eps = node.cache
    if b.opset < 17:
        raise b.error(f"layer norm is ONNX's LayerNormalization, new in opset 17; export with opset_version=17 or "
                      f"later (this is {b.opset})")
    shape = b.shape_of(node.inputs[0])
    if x in b.batched and 0 in axes:
        b.mixes_batch("it normalises over axis 0, the batch")
    scale = w or b.constant(np.ones([shape[a] for a in axes], dtype=node.dtype))
    return b.emit("LayerNormalization", [x, scale, bias], axis=int(axes[0]) - len(shape), epsilon=float(eps))


def _channel_vector(b, node, value, rank):
    """A (C,) weight as (C, 1, ..., 1), to broadcast along axis 1 of a tensor of the given rank."""
    C = b.shape_of(node.inputs[0])[1]
    return b.emit("Reshape", [value, b.ints([C] + [1] * (rank - 2))], batched=False)


def _group_norm(b, node, x, w, bias):
    """(N, C, *) as (N, G, C/G * ...) through InstanceNormalization (which normalises each (n, g) over
    the rest), back to x's shape, then the per-channel affine: exactly group norm, in any opset."""
    _, _, _, _, G, eps = node.cache
    shape = b.shape_of(node.inputs[0])
    grouped = b.emit("Reshape", [x, b.ints([0, int(G), -1])])
    ones, zeros = (b.constant(np.full(int(G), v, dtype=node.dtype)) for v in (1, 0))
    normed = b.emit("InstanceNormalization", [grouped, ones, zeros], epsilon=float(eps))
    out = b.emit("Reshape", [normed, b.emit("Shape", [x], batched=False)])
    if w:
        out = b.emit("Mul", [out, _channel_vector(b, node, w, len(shape))])
    if bias:
        out = b.emit("Add", [out, _channel_vector(b, node, bias, len(shape))])
    return out


def _local_response_norm(b, node, x):
    """b = x / (k + alpha / n * s)^beta, s the sum of x^2 over torch's window of channels c - n//2 ... c + (n-1)//2:
    a 1x1 convolution of x^2 with that band of channels. Not ONNX's LRN: its window is the mirror image
    for an even n, and onnx 1.23's reference evaluator sums only the first N channels (its loop runs
    over the batch), so the check could not pass."""
    _, _, _, _, size, alpha, beta, k = node.cache
    shape = b.shape_of(node.inputs[0])
    C, dtype = shape[1], node.dtype
    band = np.zeros((C, C) + (1,) * (len(shape) - 2), dtype=dtype)
    for c in range(C):
        band[c, max(c - size // 2, 0):c + (size - 1) // 2 + 1] = 1
    total = b.emit("Conv", [b.emit("Mul", [x, x]), b.constant(band)], kernel_shape=[1] * (len(shape) - 2))
    d = b.emit("Add", [b.emit("Mul", [total, b.constant(np.asarray(alpha / size, dtype=dtype))]),
                       b.constant(np.asarray(k, dtype=dtype))])
    return b.emit("Div", [x, b.emit("Pow", [d, b.constant(np.asarray(beta, dtype=dtype))])])


# -- losses: their reductions over the batch give a value with no batch axis, on any batch size ----------


def _reduced(b, losses, reduction):
    if reduction == "none":
        return losses
    return _reduce_op(b, "ReduceMean" if reduction == "mean" else "ReduceSum", losses, None, 0, batched=False)


def _number(b, node, v):
    return b.constant(np.asarray(v, dtype=node.dtype))


def _weighted(b, node, losses, w):
    """losses * w, w a loss's constant weight (an array: torch's exporter writes it as a constant too)."""
    return losses if w is None else b.emit("Mul", [losses, b.constant(to_numpy(w).astype(node.dtype))])


def _mse_loss(b, node, x, y):
    d = b.emit("Sub", [x, y])
    return _reduced(b, b.emit("Mul", [d, d]), node.cache[1])


def _l1_loss(b, node, x, y):
    return _reduced(b, b.emit("Abs", [b.emit("Sub", [x, y])]), node.cache[1])


def _smooth_l1_loss(b, node, x, y):
    _, reduction, beta = node.cache
    z = b.emit("Abs", [b.emit("Sub", [x, y])])
    if beta:
        square = b.emit("Div", [b.emit("Mul", [b.emit("Mul", [z, z]), _number(b, node, 0.5)]), _number(b, node, beta)])
        z = b.emit("Where", [b.emit("Less", [z, _number(b, node, beta)]), square,
                             b.emit("Sub", [z, _number(b, node, 0.5 * beta)])])
    return _reduced(b, z, reduction)


def _binary_cross_entropy(b, node, x, y):
    """-w (y max(log x, -100) + (1 - y) max(log(1 - x), -100)), torch's clamped logs."""
    _, _, w, _, _, reduction = node.cache
    low = _number(b, node, -100)
    log_x = b.emit("Max", [b.emit("Log", [x]), low])
    log_1mx = b.emit("Max", [b.emit("Log", [b.emit("Sub", [_number(b, node, 1), x])]), low])
    terms = b.emit("Add", [b.emit("Mul", [y, log_x]), b.emit("Mul", [b.emit("Sub", [_number(b, node, 1), y]), log_1mx])])
    return _reduced(b, _weighted(b, node, b.emit("Neg", [terms]), w), reduction)


def _binary_cross_entropy_with_logits(b, node, x, y):
    """w ((1 - y) x + (1 + (pw - 1) y) softplus(-x)), softplus(-x) = max(-x, 0) + log(1 + exp(-|x|))
    (the stable form, as minicnn computes it)."""
    _, _, w, pw, _, reduction = node.cache
    one = _number(b, node, 1)
    softplus_neg = b.emit("Add", [b.emit("Relu", [b.emit("Neg", [x])]),
                                  b.emit("Log", [b.emit("Add", [one, b.emit("Exp", [b.emit("Neg", [b.emit("Abs", [x])])])])])])
    if pw is not None:
        pw_minus_1 = b.constant(to_numpy(pw).astype(node.dtype) - 1)
        softplus_neg = b.emit("Mul", [b.emit("Add", [one, b.emit("Mul", [pw_minus_1, y])]), softplus_neg])
    losses = b.emit("Add", [b.emit("Mul", [b.emit("Sub", [one, y]), x]), softplus_neg])
    return _reduced(b, _weighted(b, node, losses, w), reduction)


def _class_loss(b, node, scores, op):
    """SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss against class indices: (N, C, d...) scores,
    (N, d...) int64 labels; an unbatched (C,) input is written as a batch of one. The target is found
    by the weak reference the node's settings keep: an input of the export, a buffer, or a number."""
    _, (reduction, weight, ignore_index, smoothing, ref) = node.cache  # (the op's own cache, the settings)
    if smoothing:
        raise b.error(f"it smooths the labels (label_smoothing={smoothing}), which ONNX's SoftmaxCrossEntropyLoss "
                      "does not; export the model without its loss, or with label_smoothing=0")
    t = ref() if ref is not None else None
    if t is None:
        raise b.error("its target is not a Tensor (a list or an array was given): pass the class indices as a "
                      "Tensor, an input of the export")
    target = b.value(t)
    labels = target
    if np.dtype(t.dtype) != np.int64:
        labels = b.emit("Cast", [target], to=TensorProto.INT64)
    shape = b.shape_of(node.inputs[0])
    unbatched = len(shape) == 1
    if unbatched:
        scores = b.emit("Unsqueeze", [scores, b.ints([0])], batched=False)
        labels = b.emit("Unsqueeze", [labels, b.ints([0])], batched=False)
    inputs = [scores, labels]
    if weight is not None:
        inputs.append(b.constant(to_numpy(weight).astype(node.dtype)))
    out = b.emit(op, inputs, batched=None if reduction == "none" and not unbatched else False,
                 reduction=reduction, ignore_index=int(ignore_index))
    if unbatched and reduction == "none":
        out = b.emit("Squeeze", [out, b.ints([0])], batched=False)
    return out


def _cross_entropy(b, node, x, target=None):
    if node.backward is _loss_ops.cross_entropy_probs_backward:  # (input, target) of class probabilities
        return _cross_entropy_probs(b, node, x, target)
    return _class_loss(b, node, x, "SoftmaxCrossEntropyLoss")


def _cross_entropy_probs(b, node, x, p):
    """-sum_c w_c p'_c log softmax(x)_c, p' = (1 - eps) p + eps / C: written out (ONNX's loss takes labels)."""
    _, _, wc, eps, reduction, unbatched = node.cache
    shape = b.shape_of(node.inputs[0])
    C = shape[0] if unbatched else shape[1]
    axis = 0 if unbatched else 1
    if eps:
        p = b.emit("Add", [b.emit("Mul", [p, _number(b, node, 1 - eps)]), _number(b, node, eps / C)])
    q = p if wc is None else b.emit("Mul", [p, b.constant(to_numpy(wc).reshape(
        (C,) + (1,) * (len(shape) - 1 - axis)).astype(node.dtype))])
    logp = b.emit("LogSoftmax", [x], axis=axis)
    losses = b.emit("Neg", [_reduce_op(b, "ReduceSum", b.emit("Mul", [logp, q]), [axis], 0,
                                       batched=False if unbatched else None)])
    return _reduced(b, losses, reduction)


def _max_unpool2d(b, node, x):
    raise b.error("its indices come from max_pool2d(return_indices=True), which keeps them off the tape, so the "
                  "graph has no value for them (and ONNX's MaxUnpool counts indices over the whole tensor, not per "
                  "plane); export the encoder and the decoder separately, with the indices as an input")


def _in_place(b, node, *values):
    raise b.error(f"it writes into a tensor in place ({node.op}), and an ONNX graph has no in-place writes; write "
                  "forward without it (minicnn.where, cat, or a new tensor)")


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
    "amax": _extreme("ReduceMax"),
    "amin": _extreme("ReduceMin"),
    "max": _extreme("ReduceMax"),
    "min": _extreme("ReduceMin"),
    "norm": _norm_op,
    "clamp": _clamp,
    "maximum": _binary("Max"),
    "minimum": _binary("Min"),
    "where": _where,
    "stack": _stack,
    "softplus": _softplus,
    "conv_transpose2d": _conv_transpose2d,
    "interpolate": _interpolate,
    "layer_norm": _layer_norm,
    "group_norm": _group_norm,
    "local_response_norm": _local_response_norm,
    "mse_loss": _mse_loss,
    "l1_loss": _l1_loss,
    "smooth_l1_loss": _smooth_l1_loss,
    "binary_cross_entropy": _binary_cross_entropy,
    "binary_cross_entropy_with_logits": _binary_cross_entropy_with_logits,
    "cross_entropy": _cross_entropy,
    "nll_loss": lambda b, node, x: _class_loss(b, node, x, "NegativeLogLikelihoodLoss"),
    "max_unpool2d": _max_unpool2d,
    "fill_": _in_place,
    "copy_": _in_place,
    "index_put": _in_place,
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

