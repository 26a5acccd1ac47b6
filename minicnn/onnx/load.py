"""minicnn.onnx.load: an ONNX file as a runnable minicnn Module.

    net = minicnn.onnx.load("model.onnx")   # written by minicnn.onnx.export, torch.onnx.export, ...
    logits = net(x)                         # the graph's nodes run in order, with minicnn.nn.functional
    net.state_dict()                        # the initializers, under their names in the file

The module holds the graph's initializers as Parameters (floating-point ones) and buffers (the
running mean and variance of BatchNormalization; integer ones, not saved), nested by the dots
of their names: the state dict of a graph that minicnn.onnx.export wrote has the keys of the
model it came from (minus BatchNorm's num_batches_tracked), so model.load_state_dict(
net.state_dict(), strict=False) takes the weights back. Constant nodes are evaluated once,
at load, and kept as buffers (not saved). forward(*inputs) runs the nodes in the file's order
(ONNX keeps it topological) on minicnn Tensors, recording on the tape like any layer: a
loaded graph can be trained further.

The operators of the default domain, opset 11 or newer, each with the attributes listed;
any other operator, attribute or setting is a LoadError naming the node, at load time:

    Conv                     1-D, 2-D; strides, pads, dilations, group, kernel_shape, auto_pad
    ConvTranspose            1-D, 2-D; strides, pads, dilations, group, kernel_shape, output_padding,
                             output_shape, auto_pad
    MaxPool, AveragePool     1-D, 2-D; kernel_shape, strides, pads (the same before and after),
                             ceil_mode, auto_pad NOTSET or VALID; MaxPool: dilations,
                             storage_order; AveragePool: count_include_pad
    GlobalAveragePool, GlobalMaxPool
    Gemm (alpha, beta, transA, transB), MatMul
    BatchNormalization       inference (training_mode 0): epsilon, momentum (unused)
    Relu, Sigmoid, Tanh, LeakyRelu (alpha), Softmax, LogSoftmax (axis), Clip
    Add, Sub, Mul, Div, Pow, Neg, Exp, Log, Sqrt, Abs
    Flatten (axis), Reshape (allowzero), Transpose (perm), Squeeze, Unsqueeze, Concat (axis),
    Slice, Gather (axis), Expand
    Pad                      mode constant, or reflect, edge, wrap on the last two axes
    ReduceMean, ReduceSum    axes, keepdims, noop_with_empty_axes
    Dropout                  the identity (inference; training_mode must be false)
    Identity, Cast (to: float16/32/64, int8-64, uint8-64, bool), Constant, ConstantOfShape, Shape (start, end)
    Elu (alpha), Selu (alpha, gamma), PRelu (slope broadcast to x), HardSigmoid (alpha, beta), HardSwish,
    Softplus, Softsign, Gelu (approximate)
    InstanceNormalization (epsilon), LRN (alpha, beta, bias, size: odd sizes)
    SoftmaxCrossEntropyLoss (reduction, ignore_index, weights; both outputs), NegativeLogLikelihoodLoss
    Resize                   4-D, on H and W: nearest (asymmetric, floor: torch's nearest), linear (half_pixel,
                             pytorch_half_pixel, align_corners with sizes: torch's bilinear)

    Max, Min, Sum, Mean (any number of inputs), Where, Equal, Less, Greater, Not, Reciprocal,
    Floor, Ceil, Sign (constants on the tape: their gradient is 0)
    LayerNormalization (axis, epsilon, stash_type; Y, Mean, InvStdDev), GroupNormalization-21 (num_groups,
    epsilon, stash_type), MaxUnpool (2-D; kernel_shape, strides, pads; no output_shape input)
    ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2 (axes, keepdims, noop_with_empty_axes), ArgMax, ArgMin (axis, keepdims,
    select_last_index), Split (axis, split, num_outputs), Tile, Range

MaxPool and AveragePool with pads over half the kernel pad explicitly first (-inf, or zeros counted:
count_include_pad=1), without ceil_mode. Graph inputs, outputs and initializers of a type minicnn
cannot hold (float8, 4- and 2-bit types, bfloat16, strings, complex) are a LoadError.

Pooling follows torch's output-size rule (with ceil_mode, a last window that would start in
the padding is dropped), as ONNX's newer opsets specify it too.
"""

import functools
import math
import operator
import os
from collections import Counter

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .._tensor import Tensor, as_tensor, cat, maximum, minimum, where
from ..autograd import record
from ..backend import get_array_module, to_numpy
from ..nn import functional as F
from ..nn.module import Module, Parameter
from ..ops import conv as _conv_ops

__all__ = ["load", "OnnxModule", "LoadError", "MIN_OPSET", "OPERATORS"]

MIN_OPSET = 11


class LoadError(ValueError):
    """The ONNX file cannot be run by minicnn: the message names the node, its operator and what is not supported."""


def load(f):
    """An OnnxModule for the ONNX model in f: a path, a binary file object, bytes, or an onnx.ModelProto."""
    if isinstance(f, onnx.ModelProto):
        proto, label = f, "the ModelProto"
    else:
        label = repr(str(f)) if isinstance(f, (str, os.PathLike)) else f"the {type(f).__name__}"
        try:
            proto = onnx.load_from_string(f) if isinstance(f, bytes) else onnx.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"minicnn.onnx.load: {f} does not exist") from None
        except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
            raise LoadError(f"minicnn.onnx.load: {label} is not a readable ONNX model ({type(exc).__name__}: "
                            f"{exc})") from None
    return OnnxModule(proto, label)


class _Folder(Module):
    """Holds the part of the loaded state whose names share a prefix (conv1.weight -> conv1 / weight)."""


class _Step:
    """One node of the graph, ready to run: its operator's function, input and output names, attributes."""

    __slots__ = ("index", "name", "op_type", "fn", "inputs", "outputs", "attrs", "opset")

    def __init__(self, index, node, fn, attrs, opset):
        self.index, self.name, self.op_type, self.fn = index, node.name, node.op_type, fn
        self.inputs, self.outputs = list(node.input), list(node.output)
        self.attrs, self.opset = attrs, opset

    def where(self):
        name = f" {self.name!r}" if self.name else ""
        return f"node {self.index}{name} ({self.op_type})"


class OnnxModule(Module):
    """An ONNX graph as a minicnn Module: forward(*inputs) runs its nodes with minicnn (see minicnn.onnx.load).

    input_names, output_names   the graph's inputs (initializers excluded) and outputs, in order
    input_shapes                 each input's dims: ints, or names ('N') / None where the file leaves them open
    metadata                     the file's metadata_props, a dict of strings (minicnn.onnx.export's metadata)
    """

    def __init__(self, proto, label="the model"):
        super().__init__()
        self._label = label
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as exc:
            raise LoadError(f"minicnn.onnx.load: {label} is not a valid ONNX model: {exc}") from None
        self._opset = _default_opset(proto, label)
        graph = proto.graph
        self._graph_name = graph.name
        self.metadata = {p.key: p.value for p in proto.metadata_props}
        for t in graph.sparse_initializer:
            raise LoadError(f"minicnn.onnx.load: {label} holds a sparse initializer ({t.values.name!r}); "
                            "minicnn reads dense tensors only")
        known = {t.name for t in graph.initializer}  # (old files list initializers among the inputs too)
        for value in list(graph.input) + list(graph.output):
            elem = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else None
            if elem is None or (elem and elem not in _TYPES):
                what = _type_name(elem) if elem else "a non-tensor type"
                raise LoadError(f"minicnn.onnx.load: {label}: the graph's {value.name!r} is {what}; minicnn holds "
                                "tensors of float16/32/64, int8-64, uint8-64 and bool")
        for t in graph.initializer:
            if t.data_type not in _TYPES:
                raise LoadError(f"minicnn.onnx.load: {label}: the initializer {t.name!r} is "
                                f"{_type_name(t.data_type)}, which minicnn cannot hold")
        self.input_names = [i.name for i in graph.input if i.name not in known]
        self.input_shapes = [_dims(i) for i in graph.input if i.name not in known]
        self._input_dtypes = [_elem_dtype(i) for i in graph.input if i.name not in known]
        self.output_names = [o.name for o in graph.output]
        self._plan = []
        self._refs = {}  # ONNX value name -> (module holding it, attribute name)
        self.constants = _Folder()
        stats = {n.input[i] for n in graph.node if n.op_type == "BatchNormalization"
                 for i in (3, 4) if len(n.input) > i}
        for tensor in graph.initializer:
            self._place_initializer(tensor, tensor.name in stats)
        self._ranks = _ranks(proto)
        for index, node in enumerate(graph.node):
            self._add_node(index, node)

    # -- building --------------------------------------------------------------------------------

    def _place(self, name, tensor, kind):
        """Store tensor under `name` as a Parameter or buffer, nested by the dots of the name when it can be."""
        parts = name.split(".")
        owner = self
        placed = False
        if all(parts) and kind != "constant":
            for part in parts[:-1]:
                child = vars(owner).get(part)
                if child is None and not hasattr(owner, part):
                    child = _Folder()
                    setattr(owner, part, child)
                if not isinstance(child, _Folder):
                    break
                owner = child
            else:
                attr = parts[-1]
                placed = attr not in vars(owner) and not hasattr(type(owner), attr)
        if not placed:  # a name that clashes with an attribute: kept flat, under a safe name
            owner = self.constants
            attr = f"c{len(self._refs)}"
        if kind == "parameter":
            owner.register_parameter(attr, Parameter(tensor))
        else:
            owner.register_buffer(attr, Tensor._wrap(tensor), persistent=kind == "buffer")
        self._refs[name] = (owner, attr)

    def _place_initializer(self, tensor, is_stat):
        array = np.array(numpy_helper.to_array(tensor))  # a copy: writable, owned
        if array.dtype.kind == "f" and not is_stat:
            self._place(tensor.name, array, "parameter")
        else:
            self._place(tensor.name, array, "buffer" if array.dtype.kind == "f" else "constant")

    def _add_node(self, index, node):
        where = f"node {index}{' ' + repr(node.name) if node.name else ''} ({node.op_type})"

        def refuse(why):
            return LoadError(f"minicnn.onnx.load: {self._label}, {where}: {why}")

        if node.domain not in ("", "ai.onnx"):
            raise refuse(f"operators of the domain {node.domain!r} are not supported (only ONNX's default domain)")
        spec = OPERATORS.get(node.op_type)
        if spec is None:
            raise refuse(f"the operator {node.op_type} is not supported; minicnn runs {', '.join(sorted(OPERATORS))}")
        attrs = dict(spec.attrs)
        for a in node.attribute:
            if a.name not in spec.attrs:
                raise refuse(f"the attribute {a.name!r} is not supported (minicnn reads "
                             f"{', '.join(sorted(spec.attrs)) or 'none'} for {node.op_type})")
            value = helper.get_attribute_value(a)
            attrs[a.name] = value.decode() if isinstance(value, bytes) else value
        outputs = [o for o in node.output if o]
        if len(node.output) > spec.outputs and any(node.output[spec.outputs:]):
            raise refuse(f"only the first {spec.outputs} output(s) of {node.op_type} can be computed, the node asks "
                         f"for {len(outputs)} ({', '.join(outputs)})")
        if len(node.input) > spec.inputs:
            raise refuse(f"{node.op_type} takes at most {spec.inputs} inputs here, the node has {len(node.input)}")
        rank = self._ranks.get(node.input[0]) if node.input else None
        if spec.ranks is not None and rank is not None and rank not in spec.ranks:
            raise refuse(f"the input {node.input[0]!r} has rank {rank}; minicnn runs {node.op_type} on rank "
                         f"{' or '.join(map(str, sorted(spec.ranks)))}")
        if spec.check is not None:
            why = spec.check(attrs, self._opset, node)
            if why:
                raise refuse(why)
        if node.op_type == "Constant":
            value = _constant_value(attrs)
            self._place(node.output[0], np.array(value), "constant")
            return
        self._plan.append(_Step(index, node, spec.fn, attrs, self._opset))

    # -- running ---------------------------------------------------------------------------------

    def forward(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise TypeError(f"{self._describe()} takes {len(self.input_names)} input(s) "
                            f"({', '.join(self.input_names)}), got {len(inputs)}")
        env = {name: getattr(owner, attr) for name, (owner, attr) in self._refs.items()}
        for name, dims, dtype, x in zip(self.input_names, self.input_shapes, self._input_dtypes, inputs):
            env[name] = self._check_input(name, dims, dtype, as_tensor(x))
        for step in self._plan:
            args = [env[n] if n else None for n in step.inputs]
            try:
                out = step.fn(step, step.attrs, *args)
            except Exception as exc:
                message = f"{self._describe()}, {step.where()}: {exc}"
                try:
                    error = type(exc)(message)
                except Exception:
                    error = RuntimeError(message)
                raise error from exc
            for name, value in zip(step.outputs, out if isinstance(out, tuple) else (out,)):
                if name:
                    env[name] = value
        outs = tuple(env[name] for name in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def _check_input(self, name, dims, dtype, x):
        if dtype is not None and x.dtype != dtype:
            raise TypeError(f"{self._describe()}: input {name!r} must be {dtype}, got {x.dtype}; cast it "
                            f"(x.to(minicnn.{dtype}))")
        if dims is not None:
            if x.ndim != len(dims) or any(isinstance(d, int) and d != n for d, n in zip(dims, x.shape)):
                shown = "(" + ", ".join(str(d) if d is not None else "?" for d in dims) + ")"
                raise ValueError(f"{self._describe()}: input {name!r} must have shape {shown}, got {tuple(x.shape)}")
        return x

    def _describe(self):
        return f"OnnxModule({self._graph_name!r})"

    def __repr__(self):
        counts = Counter(step.op_type for step in self._plan)
        ops = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in counts.items())
        ins = ", ".join(f"{n}[{', '.join('?' if d is None else str(d) for d in dims)}]" if dims is not None else n
                        for n, dims in zip(self.input_names, self.input_shapes))
        return (f"OnnxModule({self._graph_name!r}, opset {self._opset}, inputs {ins}, outputs "
                f"{', '.join(self.output_names)}, {len(self._plan)} nodes: {ops})")


def _default_opset(proto, label):
    versions = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise LoadError(f"minicnn.onnx.load: {label} imports no opset of ONNX's default domain")
    opset = max(versions)
    if opset < MIN_OPSET:
        raise LoadError(f"minicnn.onnx.load: {label} uses opset {opset}; minicnn reads opset {MIN_OPSET} or newer. "
                        f"Convert it first: onnx.version_converter.convert_version(model, {MIN_OPSET})")
    return opset


def _ranks(proto):
    """{value name: rank} for the values whose rank the file states or ONNX's shape inference finds."""
    try:
        graph = onnx.shape_inference.infer_shapes(proto).graph
    except Exception:  # inference is a help, not a requirement
        graph = proto.graph
    ranks = {t.name: len(t.dims) for t in graph.initializer}
    for v in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = v.type.tensor_type
        if v.type.HasField("tensor_type") and t.HasField("shape"):
            ranks[v.name] = len(t.shape.dim)
    return ranks


def _dims(value_info):
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def _elem_dtype(value_info):
    elem = value_info.type.tensor_type.elem_type
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem)) if elem else None


def _constant_value(a):
    if a["value"] is not None:
        return numpy_helper.to_array(a["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if a[key] is not None:
            return np.asarray(a[key], dtype=dtype)
    raise ValueError("Constant has no value")


# -- the operators ---------------------------------------------------------------------------------------
# Each: fn(step, attrs, *inputs) -> a Tensor (or a tuple of them). step.opset tells the opset apart
# where an operator changed (Softmax's axis in 13, Squeeze's axes from attribute to input in 13, ...).


class _Spec:
    __slots__ = ("fn", "attrs", "inputs", "outputs", "check", "ranks")

    def __init__(self, fn, attrs, inputs, outputs, check, ranks):
        self.fn, self.attrs, self.inputs, self.outputs, self.check = fn, attrs, inputs, outputs, check
        self.ranks = ranks


OPERATORS = {}


def _op(name, inputs=1, outputs=1, check=None, ranks=None, **attrs):
    """Register fn(step, attrs, *inputs) for the operator `name`; ranks: the ranks its first input may have."""
    def register(fn):
        OPERATORS[name] = _Spec(fn, attrs, inputs, outputs, check, ranks)
        return fn
    return register


def _ints(t):
    """A Tensor of integers (pads, axes, a shape) as a list of Python ints."""
    return [int(v) for v in np.asarray(to_numpy(t)).reshape(-1)]


def _float(t):
    return float(np.asarray(to_numpy(t)).reshape(-1)[0])


def _like(x, array):
    """array (host data) as a Tensor on x's device."""
    xp = get_array_module(x.array)
    return Tensor._wrap(xp.asarray(array))


def _check_2d(a, opset, node, pooling=True):
    if a.get("kernel_shape") is not None and len(a["kernel_shape"]) == 1:
        a = _attrs_2d(a)  # 1-D runs as 2-D, with a height of 1
    k = a.get("kernel_shape")
    if k is not None and len(k) != 2:
        return f"only 1-D and 2-D operations are supported, kernel_shape is {list(k)}"
    if a.get("auto_pad", "NOTSET") not in (("NOTSET", "VALID") if pooling else
                                           ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")):
        return f"auto_pad={a['auto_pad']!r} is not supported (NOTSET or VALID)"
    pads = a.get("pads")
    if pads is not None and len(pads) != 4:
        return f"pads must have 4 values for 2-D (top, left, bottom, right), got {list(pads)}"
    if pooling:
        if k is None:
            return "kernel_shape is required"
        if pads is not None and (pads[0] != pads[2] or pads[1] != pads[3]):
            return (f"pads {list(pads)} differ before and after; minicnn pools with the same padding on both "
                    "sides (top = bottom, left = right)")
    return None


def _same_pads(size, kernel, stride, dilation, upper):
    """auto_pad SAME_*: the output is ceil(size / stride); the odd cell goes after (UPPER) or before (LOWER)."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


@_op("Conv", inputs=3, ranks={3, 4}, check=lambda a, o, n: _check_2d(a, o, n, pooling=False), auto_pad="NOTSET",
     dilations=None, group=1, kernel_shape=None, pads=None, strides=None)
def _conv(step, a, x, w, b=None):
    if x.ndim == 3:  # 1-D: run as 2-D with a height of 1
        return _conv(step, _attrs_2d(a), x.unsqueeze(2), w.unsqueeze(2), b).squeeze(2)
    if w.ndim != 4 or x.ndim != 4:
        raise ValueError(f"only 1-D and 2-D convolutions are supported: input {tuple(x.shape)}, "
                         f"weight {tuple(w.shape)}")
    KH, KW = w.shape[2:]
    if a["kernel_shape"] is not None and tuple(a["kernel_shape"]) != (KH, KW):
        raise ValueError(f"kernel_shape {list(a['kernel_shape'])} does not match the weight {tuple(w.shape)}")
    stride = tuple(a["strides"] or (1, 1))
    dilation = tuple(a["dilations"] or (1, 1))
    if a["auto_pad"] in ("SAME_UPPER", "SAME_LOWER"):
        upper = a["auto_pad"] == "SAME_UPPER"
        pads = tuple(_same_pads(n, k, s, d, upper) for n, k, s, d in zip(x.shape[2:], (KH, KW), stride, dilation))
    else:
        pt, pl, pb, pr = a["pads"] if a["pads"] is not None and a["auto_pad"] == "NOTSET" else (0, 0, 0, 0)
        pads = ((pt, pb), (pl, pr))
    return F.conv2d(x, w, b, stride=stride, padding=pads, dilation=dilation, groups=int(a["group"]))


def _pool_args(a):
    k = tuple(a["kernel_shape"])
    stride = tuple(a["strides"] or (1, 1))  # ONNX's default stride is 1 (torch's is the kernel)
    pads = a["pads"] if a["pads"] is not None and a["auto_pad"] == "NOTSET" else (0, 0, 0, 0)
    return k, stride, (int(pads[0]), int(pads[1]))


def _wide_pads(kernel, padding):
    return any(p > k // 2 for p, k in zip(padding, kernel))


def _check_wide_pads(a):
    """Pads over half the kernel are run as explicit padding, which is exact without ceil_mode only."""
    if a.get("pads") is None or a.get("kernel_shape") is None or len(a["pads"]) != 2 * len(a["kernel_shape"]):
        return None
    if _wide_pads(a["kernel_shape"], a["pads"]) and a["ceil_mode"]:
        return f"pads {list(a['pads'])} over half the kernel {list(a['kernel_shape'])} with ceil_mode=1"
    return None


def _check_max(a, opset, node):
    return _check_2d(a, opset, node) or _check_wide_pads(_as_2d(a))


@_op("MaxPool", ranks={3, 4}, check=_check_max, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None,
     pads=None, storage_order=0, strides=None)
def _max_pool(step, a, x):
    if len(a["kernel_shape"]) == 1:
        return _max_pool(step, _attrs_2d(a), x.unsqueeze(2)).squeeze(2)
    k, stride, padding = _pool_args(a)
    if _wide_pads(k, padding):  # torch's pool takes at most half the kernel: pad with the lowest value first
        low = float("-inf") if x.dtype.kind == "f" else int(np.iinfo(x.dtype).min)
        x, padding = F.pad(x, [padding[1], padding[1], padding[0], padding[0]], value=low), (0, 0)
    return F.max_pool2d(x, k, stride, padding, tuple(a["dilations"] or (1, 1)), ceil_mode=bool(a["ceil_mode"]))


def _check_avg(a, opset, node):
    why = _check_2d(a, opset, node) or _check_wide_pads(_as_2d(a))
    if why:
        return why
    a = _as_2d(a)
    if a["pads"] is not None and _wide_pads(a["kernel_shape"], a["pads"]) and not a["count_include_pad"]:
        return (f"pads {list(a['pads'])} over half the kernel {list(a['kernel_shape'])} with "
                "count_include_pad=0 are not supported")
    if a["dilations"] is not None and any(d != 1 for d in a["dilations"]):
        return f"dilations {list(a['dilations'])} are not supported for AveragePool (only 1)"
    return _check_2d(a, opset, node)


@_op("AveragePool", ranks={3, 4}, check=_check_avg, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None,
     kernel_shape=None, pads=None, strides=None)
def _avg_pool(step, a, x):
    if len(a["kernel_shape"]) == 1:
        return _avg_pool(step, _attrs_2d(a), x.unsqueeze(2)).squeeze(2)
    k, stride, padding = _pool_args(a)
    if _wide_pads(k, padding):  # count_include_pad (checked at load): the zeros are counted, as padded data
        x, padding = F.pad(x, [padding[1], padding[1], padding[0], padding[0]], value=0.0), (0, 0)
    return F.avg_pool2d(x, k, stride, padding, ceil_mode=bool(a["ceil_mode"]),
                        count_include_pad=bool(a["count_include_pad"]))


@_op("GlobalAveragePool")
def _global_avg_pool(step, a, x):
    if x.ndim == 4:
        return F.adaptive_avg_pool2d(x, 1)
    return x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)


@_op("GlobalMaxPool")
def _global_max_pool(step, a, x):
    if x.ndim == 4:
        return F.adaptive_max_pool2d(x, 1)
    return x.amax(dim=tuple(range(2, x.ndim)), keepdim=True)


@_op("Gemm", inputs=3, alpha=1.0, beta=1.0, transA=0, transB=0)
def _gemm(step, a, A, B, C=None):
    if a["alpha"] == 1 and a["beta"] == 1 and not a["transA"] and a["transB"] and (C is None or C.ndim == 1):
        return F.linear(A, B, C)  # the Linear layer's layout: weight (OUT, IN)
    y = (A.t() if a["transA"] else A) @ (B.t() if a["transB"] else B)
    if a["alpha"] != 1:
        y = y * float(a["alpha"])
    if C is not None:
        y = y + (C * float(a["beta"]) if a["beta"] != 1 else C)
    return y


@_op("MatMul", inputs=2)
def _matmul(step, a, x, y):
    return x @ y


def _check_bn(a, opset, node):
    if a["training_mode"]:
        return "training_mode=1 (batch statistics) is not supported: minicnn runs the inference graph"
    if a["spatial"] != 1:
        return "spatial=0 is not supported"
    return None


# the element-wise operators with no attributes: each is one minicnn function of its input
_ELEMENTWISE = {"Relu": F.relu, "Sigmoid": F.sigmoid, "Tanh": F.tanh, "HardSwish": F.hardswish,
                "Softplus": F.softplus, "Softsign": F.softsign, "Neg": Tensor.__neg__, "Exp": Tensor.exp,
                "Log": Tensor.log, "Sqrt": Tensor.sqrt, "Abs": Tensor.abs}
for _name, _fn in _ELEMENTWISE.items():
    _op(_name)(lambda step, a, x, fn=_fn: fn(x))


@_op("BatchNormalization", inputs=5, check=_check_bn, epsilon=1e-5, momentum=0.9, training_mode=0, spatial=1)
def _batch_norm(step, a, x, scale, bias, mean, var):
    return F.batch_norm(x, mean, var, scale, bias, training=False, eps=float(a["epsilon"]))


@_op("LeakyRelu", alpha=0.01)
def _leaky_relu(step, a, x):
    return F.leaky_relu(x, float(a["alpha"]))


def _softmax_op(fn):
    def run(step, a, x):
        if step.opset >= 13:
            return fn(x, dim=-1 if a["axis"] is None else int(a["axis"]))
        # before opset 13: the input is seen as 2-D, (dims before axis) x (dims from axis on)
        axis = (1 if a["axis"] is None else int(a["axis"])) % max(x.ndim, 1)
        if axis == x.ndim - 1:
            return fn(x, dim=-1)
        shape = tuple(x.shape)
        return fn(x.reshape(math.prod(shape[:axis]), -1), dim=1).reshape(*shape)
    return run


_op("Softmax", axis=None)(_softmax_op(F.softmax))
_op("LogSoftmax", axis=None)(_softmax_op(F.log_softmax))


@_op("Clip", inputs=3)
def _clip(step, a, x, low=None, high=None):
    if x.dtype.kind in "iu":  # integers stay integers (clamp would give floats)
        xp = get_array_module(x.array)
        low = x.array.min() if low is None else low.array
        high = x.array.max() if high is None else high.array
        return Tensor._wrap(xp.minimum(xp.maximum(x.array, low), high).astype(x.dtype))
    return x.clamp(None if low is None else _float(low), None if high is None else _float(high))


@_op("Add", inputs=2)
def _add(step, a, x, y):
    return x + y


@_op("Sub", inputs=2)
def _sub(step, a, x, y):
    return x - y


@_op("Mul", inputs=2)
def _mul(step, a, x, y):
    return x * y


@_op("Div", inputs=2)
def _div(step, a, x, y):
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":  # ONNX's integer division truncates
        xp = get_array_module(x.array)
        return Tensor._wrap(xp.trunc(x.array / y.array).astype(x.dtype))
    return x / y


@_op("Pow", inputs=2)
def _pow(step, a, x, y):
    if x.dtype.kind in "iu":  # ONNX: the result has the base's type
        xp = get_array_module(x.array)
        return Tensor._wrap(xp.power(x.array.astype(np.float64), y.array).astype(x.dtype))
    return x ** (_float(y) if y.numel() == 1 else y)


@_op("Flatten", axis=1)
def _flatten(step, a, x):
    axis = int(a["axis"]) + (x.ndim if a["axis"] < 0 else 0)
    shape = tuple(x.shape)
    return x.reshape(math.prod(shape[:axis]), math.prod(shape[axis:]))


@_op("Reshape", inputs=2, allowzero=0)
def _reshape(step, a, x, shape):
    target = _ints(shape)
    if not a["allowzero"]:
        target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return x.reshape(*target)


@_op("Transpose", perm=None)
def _transpose(step, a, x):
    perm = a["perm"] if a["perm"] is not None else list(range(x.ndim))[::-1]
    return x.permute(*[int(p) for p in perm])


def _axes(step, a, axes, since):
    """axes as an input (from opset `since` on) or an attribute (before), or None."""
    if step.opset >= since:
        return None if axes is None else _ints(axes)
    return None if a["axes"] is None else [int(v) for v in a["axes"]]


@_op("Squeeze", inputs=2, axes=None)
def _squeeze(step, a, x, axes=None):
    axes = _axes(step, a, axes, 13)
    if axes is None:
        return x.reshape(*[n for n in x.shape if n != 1])
    axes = {d % x.ndim for d in axes}
    for d in axes:
        if x.shape[d] != 1:
            raise ValueError(f"cannot squeeze axis {d} of shape {tuple(x.shape)}: its size is not 1")
    return x.reshape(*[n for i, n in enumerate(x.shape) if i not in axes])


@_op("Unsqueeze", inputs=2, axes=None)
def _unsqueeze(step, a, x, axes=None):
    axes = _axes(step, a, axes, 13)
    rank = x.ndim + len(axes)
    axes = sorted(d % rank for d in axes)
    shape = list(x.shape)
    for d in axes:
        shape.insert(d, 1)
    return x.reshape(*shape)


@_op("Concat", inputs=2 ** 31, axis=None)
def _concat(step, a, *xs):
    return cat([x for x in xs if x is not None], dim=int(a["axis"]))


@_op("Slice", inputs=5)
def _slice(step, a, x, starts, ends, axes=None, steps=None):
    starts, ends = _ints(starts), _ints(ends)
    axes = _ints(axes) if axes is not None else list(range(len(starts)))
    steps = _ints(steps) if steps is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step_ in zip(starts, ends, axes, steps):
        if step_ == 0:
            raise ValueError("Slice: a step of 0")
        index[axis % x.ndim] = slice(start, end, step_)  # Python's slice clamps as ONNX specifies
    return x[tuple(index)]


@_op("Gather", inputs=2, axis=0)
def _gather(step, a, x, indices):
    axis = int(a["axis"]) % x.ndim
    return x[(slice(None),) * axis + (indices.array,)]


@_op("Expand", inputs=2)
def _expand(step, a, x, shape):
    return x.expand(*np.broadcast_shapes(tuple(x.shape), tuple(_ints(shape))))


def _check_pad(a, opset, node):
    if a["mode"] not in _PAD_MODES:
        return f"mode={a['mode']!r} is not supported (constant, reflect, edge, wrap)"
    return None


_PAD_MODES = {"constant": None, "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


@_op("Pad", inputs=4, check=_check_pad, mode="constant")
def _pad(step, a, x, pads, value=None, axes=None):
    pads = _ints(pads)
    axes = [d % x.ndim for d in _ints(axes)] if axes is not None else list(range(x.ndim))
    if len(pads) != 2 * len(axes):
        raise ValueError(f"Pad: {len(pads)} pads for {len(axes)} axes (expected two per axis)")
    widths = [(0, 0)] * x.ndim
    for i, d in enumerate(axes):
        widths[d] = (pads[i], pads[i + len(axes)])
    if any(p < 0 for w in widths for p in w):  # a negative pad crops
        x = x[tuple(slice(-min(b, 0), n + min(e, 0)) for (b, e), n in zip(widths, x.shape))]
        widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    if all(w == (0, 0) for w in widths):
        return x
    mode = _PAD_MODES[a["mode"]]
    if mode is None:
        fill = 0.0 if value is None or value.numel() == 0 else _float(value)
        return F.pad(x, [p for b, e in reversed(widths) for p in (b, e)], value=fill)
    if any(w != (0, 0) for w in widths[:-2]):
        raise ValueError(f"Pad mode {a['mode']!r}: only the last two axes can be padded here, got {widths}")
    out, cache = _conv_ops.pad2d(x.array, tuple(widths[-2:]), mode)
    return record(out, _conv_ops.pad2d_backward, cache, (x,), "pad2d")


def _reduced_axes(step, a, x, axes, since):
    """A reduction's axes, sorted and made non-negative: all of x's when none are given, or None
    when none are given and noop_with_empty_axes says that the reduction is the identity."""
    axes = _axes(step, a, axes, since)
    if not axes:
        if a["noop_with_empty_axes"]:
            return None
        axes = range(x.ndim)
    return tuple(sorted({d % x.ndim for d in axes}))


def _reduce(method, since):
    def run(step, a, x, axes=None):
        axes = _reduced_axes(step, a, x, axes, since)
        if axes is None:
            return x
        return getattr(x, method)(dim=axes, keepdim=bool(a["keepdims"]))
    return run


_op("ReduceMean", inputs=2, axes=None, keepdims=1, noop_with_empty_axes=0)(_reduce("mean", 18))


def _reduce_norm(p):
    """ReduceL1 / ReduceL2: Tensor.norm(p) over the axes (all of them when none are given)."""
    def run(step, a, x, axes=None):
        axes = _reduced_axes(step, a, x, axes, 18)
        if axes is None:
            return x
        return x.norm(p=p, dim=axes, keepdim=bool(a["keepdims"]))
    return run


_op("ReduceL1", inputs=2, axes=None, keepdims=1, noop_with_empty_axes=0)(_reduce_norm(1))
_op("ReduceL2", inputs=2, axes=None, keepdims=1, noop_with_empty_axes=0)(_reduce_norm(2))
_op("ReduceSum", inputs=2, axes=None, keepdims=1, noop_with_empty_axes=0)(_reduce("sum", 13))


def _check_dropout(a, opset, node):
    if len(node.input) > 2 and node.input[2]:
        return ("a training_mode input is not supported: minicnn loads the inference graph, where Dropout is "
                "the identity")
    return None


@_op("Dropout", inputs=3, outputs=2, check=_check_dropout, ratio=None, seed=None)
def _dropout(step, a, x, ratio=None, training_mode=None):
    xp = get_array_module(x.array)
    return x, Tensor._wrap(xp.ones(x.shape, dtype=bool))  # inference: nothing dropped, the mask all True


@_op("Identity")
def _identity(step, a, x):
    return x


# the ONNX element types minicnn holds (NumPy's own dtypes); float8, 4- and 2-bit types, bfloat16,
# strings and complex numbers are refused at load
_TYPES = {getattr(onnx.TensorProto, t) for t in ("FLOAT", "DOUBLE", "FLOAT16", "INT8", "INT16", "INT32", "INT64",
                                                  "UINT8", "UINT16", "UINT32", "UINT64", "BOOL")}


def _type_name(elem):
    return onnx.TensorProto.DataType.Name(elem) if elem in onnx.TensorProto.DataType.values() else str(elem)


def _check_cast(a, opset, node):
    if a["to"] is None or int(a["to"]) not in _TYPES:
        return (f"casting to {_type_name(a['to'])} is not supported: minicnn holds float16/32/64, int8-64, "
                "uint8-64 and bool")
    return None


@_op("Cast", check=_check_cast, to=None, saturate=1)
def _cast(step, a, x):
    return x.type(np.dtype(helper.tensor_dtype_to_np_dtype(int(a["to"]))))


@_op("Constant", inputs=0, value=None, value_float=None, value_floats=None, value_int=None, value_ints=None)
def _constant(step, a):
    raise AssertionError("Constant nodes are evaluated at load")


@_op("ConstantOfShape", value=None)
def _constant_of_shape(step, a, shape):
    value = numpy_helper.to_array(a["value"]) if a["value"] is not None else np.zeros(1, np.float32)
    return _like(shape, np.full(_ints(shape), value.reshape(-1)[0], dtype=value.dtype))


@_op("Shape", start=0, end=None)
def _shape(step, a, x):
    return _like(x, np.asarray(x.shape[a["start"]:a["end"]], dtype=np.int64))



# -- activations with attributes ---------------------------------------------------------------------


@_op("Elu", alpha=1.0)
def _elu(step, a, x):
    return F.elu(x, float(a["alpha"]))


@_op("Selu", alpha=1.67326319217681884765625, gamma=1.05070102214813232421875)
def _selu(step, a, x):
    return F.elu(x, float(a["alpha"])) * float(a["gamma"])  # gamma * elu(x, alpha), for any alpha and gamma


@_op("PRelu", inputs=2)
def _prelu(step, a, x, slope):
    # slope broadcasts to x (not only per channel): relu(x) + slope * min(x, 0), exact on both sides of 0
    positive = F.relu(x)
    return positive + slope * (x - positive)


@_op("HardSigmoid", alpha=0.2, beta=0.5)
def _hard_sigmoid(step, a, x):
    return (x * float(a["alpha"]) + float(a["beta"])).clamp(0.0, 1.0)


@_op("Gelu", check=lambda a, o, n: None if a["approximate"] in ("none", "tanh") else
     f"approximate={a['approximate']!r} is not supported (none or tanh)", approximate="none")
def _gelu(step, a, x):
    return F.gelu(x, approximate=a["approximate"])


# -- normalisation -----------------------------------------------------------------------------------


@_op("InstanceNormalization", inputs=3, epsilon=1e-5)
def _instance_norm(step, a, x, scale, bias):
    return F.group_norm(x, x.shape[1], scale, bias, eps=float(a["epsilon"]))  # one group per channel


def _check_lrn(a, opset, node):
    if a["size"] is None or a["size"] % 2 == 0:
        return (f"size={a['size']} is not supported: only an odd size, where ONNX's channel window "
                "(floor((size-1)/2) before, ceil((size-1)/2) after) is torch's")
    return None


@_op("LRN", check=_check_lrn, alpha=1e-4, beta=0.75, bias=1.0, size=None)
def _lrn(step, a, x):
    return F.local_response_norm(x, int(a["size"]), float(a["alpha"]), float(a["beta"]), float(a["bias"]))


# -- losses --------------------------------------------------------------------------------------------

_NO_INDEX = -(2 ** 62)  # ONNX's loss without ignore_index ignores no class (torch's default is -100)


def _check_loss(a, opset, node):
    if a["reduction"] not in ("mean", "sum", "none"):
        return f"reduction={a['reduction']!r} is not supported (mean, sum, none)"
    return None


@_op("SoftmaxCrossEntropyLoss", inputs=3, outputs=2, check=_check_loss, reduction="mean", ignore_index=None)
def _softmax_cross_entropy_loss(step, a, scores, labels, weights=None):
    # scores (N, C, d1, ...), labels (N, d1, ...): the mean is weighted, sum / sum of w[label], as torch's
    log_prob = F.log_softmax(scores, dim=1)
    ignore = _NO_INDEX if a["ignore_index"] is None else int(a["ignore_index"])
    loss = F.nll_loss(log_prob, labels, weights, ignore_index=ignore, reduction=a["reduction"])
    return loss, log_prob


@_op("NegativeLogLikelihoodLoss", inputs=3, check=_check_loss, reduction="mean", ignore_index=None)
def _nll_loss(step, a, log_prob, target, weight=None):
    ignore = _NO_INDEX if a["ignore_index"] is None else int(a["ignore_index"])
    return F.nll_loss(log_prob, target, weight, ignore_index=ignore, reduction=a["reduction"])


# -- transposed convolution ----------------------------------------------------------------------------


def _check_conv_transpose(a, opset, node):
    k = a["kernel_shape"]
    if k is not None and len(k) not in (1, 2):
        return f"only 1-D and 2-D transposed convolutions are supported, kernel_shape is {list(k)}"
    if a["auto_pad"] not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        return f"auto_pad={a['auto_pad']!r} is not supported"
    return None


@_op("ConvTranspose", inputs=3, ranks={3, 4}, check=_check_conv_transpose, auto_pad="NOTSET", dilations=None,
     group=1, kernel_shape=None, output_padding=None, output_shape=None, pads=None, strides=None)
def _conv_transpose(step, a, x, w, b=None):
    if x.ndim == 3:  # 1-D: run as 2-D with a height of 1
        return _conv_transpose(step, _attrs_2d(a), x.unsqueeze(2), w.unsqueeze(2), b).squeeze(2)
    if w.ndim != 4 or x.ndim != 4:
        raise ValueError(f"only 1-D and 2-D transposed convolutions: input {tuple(x.shape)}, weight {tuple(w.shape)}")
    K = tuple(w.shape[2:])
    if a["kernel_shape"] is not None and tuple(a["kernel_shape"]) != K:
        raise ValueError(f"kernel_shape {list(a['kernel_shape'])} does not match the weight {tuple(w.shape)}")
    S = tuple(a["strides"] or (1, 1))
    D = tuple(a["dilations"] or (1, 1))
    extra = tuple(a["output_padding"] or (0, 0))
    # with no padding, each axis is S*(n-1) + D*(K-1) + 1 long; ONNX's output is a window of it
    # (begin..begin+size), zeros where the window passes its end (output_padding, a larger output_shape)
    y = F.conv_transpose2d(x, w, None, stride=S, dilation=D, groups=int(a["group"]))
    full = [s * (n - 1) + d * (k - 1) + 1 for n, k, s, d in zip(x.shape[2:], K, S, D)]
    if a["output_shape"] is not None or (a["pads"] is None and a["auto_pad"] in ("SAME_UPPER", "SAME_LOWER")):
        size = (list(a["output_shape"][-2:]) if a["output_shape"] is not None
                else [n * s for n, s in zip(x.shape[2:], S)])
        total = [f + e - o for f, e, o in zip(full, extra, size)]
        begin = [t // 2 if a["auto_pad"] == "SAME_UPPER" else t - t // 2 for t in total]
    else:
        pads = a["pads"] if a["pads"] is not None and a["auto_pad"] == "NOTSET" else (0, 0, 0, 0)
        begin = [pads[0], pads[1]]
        size = [f + e - pb - pe for f, e, pb, pe in zip(full, extra, begin, pads[2:])]
    widths = []
    for f, pb, o in zip(full, begin, size):
        widths.append((max(-pb, 0), max(pb + o - f, 0)))  # zeros before / after the computed part
    if any(w_ != (0, 0) for w_ in widths):
        y = F.pad(y, [widths[1][0], widths[1][1], widths[0][0], widths[0][1]])
    top, left = begin[0] + widths[0][0], begin[1] + widths[1][0]
    y = y[:, :, top:top + size[0], left:left + size[1]]
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y


def _as_2d(a):
    return _attrs_2d(a) if a.get("kernel_shape") is not None and len(a["kernel_shape"]) == 1 else a


def _attrs_2d(a):
    """A 1-D operator's attributes as the 2-D ones of a height-1 input."""
    two = dict(a)
    for key, one in (("kernel_shape", 1), ("strides", 1), ("dilations", 1), ("output_padding", 0),
                     ("output_shape", 1)):
        if a.get(key) is not None:
            two[key] = [one] + list(a[key])
    if a.get("pads") is not None:
        two["pads"] = [0, a["pads"][0], 0, a["pads"][1]]
    return two


# -- resizing ------------------------------------------------------------------------------------------


def _check_resize(a, opset, node):
    if a["mode"] == "nearest":
        if (a["coordinate_transformation_mode"], a["nearest_mode"]) != ("asymmetric", "floor"):
            return (f"mode 'nearest' with coordinate_transformation_mode={a['coordinate_transformation_mode']!r} "
                    f"and nearest_mode={a['nearest_mode']!r} is not supported: only asymmetric and floor (torch's "
                    "'nearest')")
    elif a["mode"] == "linear":
        if a["coordinate_transformation_mode"] not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            return (f"mode 'linear' with coordinate_transformation_mode={a['coordinate_transformation_mode']!r} is "
                    "not supported (half_pixel, pytorch_half_pixel or align_corners: torch's bilinear)")
    else:
        return f"mode={a['mode']!r} is not supported (nearest, linear)"
    if (a["coordinate_transformation_mode"] == "align_corners" and len(node.input) > 2 and node.input[2]
            and not (len(node.input) > 3 and node.input[3])):
        return ("align_corners with scales is not supported: ONNX divides by the unrounded output size "
                "(H * scale - 1), torch by OH - 1; give sizes")
    if a["antialias"]:
        return "antialias=1 is not supported"
    if a["axes"] is not None:
        return "the axes attribute is not supported"
    if a["keep_aspect_ratio_policy"] != "stretch":
        return f"keep_aspect_ratio_policy={a['keep_aspect_ratio_policy']!r} is not supported (stretch)"
    return None


@_op("Resize", inputs=4, ranks={4}, check=_check_resize, mode="nearest", coordinate_transformation_mode="half_pixel",
     nearest_mode="round_prefer_floor", antialias=0, axes=None, cubic_coeff_a=-0.75, exclude_outside=0,
     extrapolation_value=0.0, keep_aspect_ratio_policy="stretch")
def _resize(step, a, x, roi=None, scales=None, sizes=None):
    # (N, C, H, W) resized on H and W only: scales (1, 1, SH, SW) or sizes (N, C, OH, OW)
    mode = "nearest" if a["mode"] == "nearest" else "bilinear"
    corners = None if mode == "nearest" else a["coordinate_transformation_mode"] == "align_corners"
    if sizes is not None and sizes.numel():
        size = _ints(sizes)
        if size[:2] != list(x.shape[:2]):
            raise ValueError(f"Resize: only H and W can be resized, sizes are {size} for an input {tuple(x.shape)}")
        size, factors = size[2:], None
    else:
        factors = [float(v) for v in np.asarray(to_numpy(scales)).reshape(-1)]
        if factors[:2] != [1.0, 1.0]:
            raise ValueError(f"Resize: only H and W can be resized, scales are {factors}")
        factors = factors[2:]
        size = [math.floor(n * f) for n, f in zip(x.shape[2:], factors)]
    if a["coordinate_transformation_mode"] == "pytorch_half_pixel":  # an axis resized to 1 takes its first row
        if size[0] == 1:
            x, factors = x[:, :, :1], None
        if size[1] == 1:
            x, factors = x[:, :, :, :1], None
    if factors is None or corners:  # align_corners: (in - 1) / (out - 1) whatever the scales
        return F.interpolate(x, size=tuple(size), mode=mode, align_corners=corners)
    return F.interpolate(x, scale_factor=tuple(factors), mode=mode, align_corners=corners)


# -- element-wise and comparisons ----------------------------------------------------------------------


def _fold(combine):
    """Max, Min, Sum: any number of inputs, combined left to right (broadcasting), one recorded op each."""
    return lambda step, a, *xs: functools.reduce(combine, xs)


_op("Max", inputs=2 ** 31)(_fold(maximum))
_op("Min", inputs=2 ** 31)(_fold(minimum))
_sum = _op("Sum", inputs=2 ** 31)(_fold(operator.add))


@_op("Mean", inputs=2 ** 31)
def _mean(step, a, *xs):
    return _sum(step, a, *xs) / float(len(xs))


@_op("Where", inputs=3)
def _where(step, a, condition, x, y):
    return where(condition, x, y)


@_op("Equal", inputs=2)
def _equal(step, a, x, y):
    return x == y


@_op("Less", inputs=2)
def _less(step, a, x, y):
    return x < y


@_op("Greater", inputs=2)
def _greater(step, a, x, y):
    return x > y


@_op("Not")
def _not(step, a, x):
    return ~x


@_op("Reciprocal")
def _reciprocal(step, a, x):
    return 1.0 / x


def _step_function(name):
    # floor, ceil and sign are flat almost everywhere: their output is a constant on the tape (gradient 0)
    def run(step, a, x):
        xp = get_array_module(x.array)
        return Tensor._wrap(getattr(xp, name)(x.array))
    return run


_op("Floor")(_step_function("floor"))
_op("Ceil")(_step_function("ceil"))
_op("Sign")(_step_function("sign"))


def _lowest_or_highest(dtype, highest):
    """The identity of max (the dtype's lowest value) or of min (its highest): -inf / inf, False / True, ..."""
    if dtype.kind == "b":
        return highest
    if dtype.kind in "iu":
        return np.iinfo(dtype).max if highest else np.iinfo(dtype).min
    return np.inf if highest else -np.inf


def _reduce_extreme(method, empty):
    def run(step, a, x, axes=None):
        axes = _reduced_axes(step, a, x, axes, 18)
        if axes is None:
            return x
        if any(x.shape[d] == 0 for d in axes):  # the maximum of no values is the lowest value (min: highest)
            shape = [1 if d in axes else n for d, n in enumerate(x.shape)]
            if not a["keepdims"]:
                shape = [n for d, n in enumerate(shape) if d not in axes]
            return _like(x, np.full(shape, _lowest_or_highest(x.dtype, empty > 0), dtype=x.dtype))
        return getattr(x, method)(dim=axes, keepdim=bool(a["keepdims"]))
    return run


_op("ReduceMax", inputs=2, axes=None, keepdims=1, noop_with_empty_axes=0)(_reduce_extreme("amax", -1))
_op("ReduceMin", inputs=2, axes=None, keepdims=1, noop_with_empty_axes=0)(_reduce_extreme("amin", 1))


def _arg_extreme(method):
    def run(step, a, x):
        axis = int(a["axis"]) % x.ndim
        xp = get_array_module(x.array)
        data = x.array
        if a["select_last_index"]:  # the last of equal extremes: search the reversed axis
            data = xp.flip(data, axis=axis)
        index = getattr(xp, method)(data, axis=axis)
        if a["select_last_index"]:
            index = x.shape[axis] - 1 - index
        if a["keepdims"]:
            index = xp.expand_dims(index, axis)
        return Tensor._wrap(index.astype(np.int64))
    return run


_op("ArgMax", axis=0, keepdims=1, select_last_index=0)(_arg_extreme("argmax"))
_op("ArgMin", axis=0, keepdims=1, select_last_index=0)(_arg_extreme("argmin"))


# -- shapes ------------------------------------------------------------------------------------------


@_op("Split", inputs=2, outputs=2 ** 31, axis=0, split=None, num_outputs=None)
def _split(step, a, x, split=None):
    axis = int(a["axis"]) % x.ndim
    n = x.shape[axis]
    if split is not None:
        sizes = _ints(split)
    elif a["split"] is not None:
        sizes = [int(v) for v in a["split"]]
    else:  # equal parts (num_outputs, or one per output); the last one smaller when they do not divide
        parts = int(a["num_outputs"]) if a["num_outputs"] is not None else len(step.outputs)
        size = -(-n // parts)
        sizes = [min(size, n - i * size) for i in range(parts)]
    if sum(sizes) != n:
        raise ValueError(f"Split: the parts {sizes} do not add up to the axis' size {n}")
    outs, start = [], 0
    for size in sizes:
        outs.append(x[(slice(None),) * axis + (slice(start, start + size),)])
        start += size
    return tuple(outs)


@_op("Tile", inputs=2)
def _tile(step, a, x, repeats):
    for axis, r in enumerate(_ints(repeats)):
        if r != 1:
            x = cat([x] * r, dim=axis)
    return x


@_op("Range", inputs=3)
def _range(step, a, start, limit, delta):
    first, last, by = (np.asarray(to_numpy(t)).reshape(()) for t in (start, limit, delta))
    count = max(math.ceil((float(last) - float(first)) / float(by)), 0)
    return _like(start, (first + np.arange(count, dtype=first.dtype) * by).astype(first.dtype))


# -- more normalisation, unpooling, products -----------------------------------------------------------


def _stashed(a, x):
    """x in the stash_type precision ONNX computes the statistics in (float32 by default)."""
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(int(a["stash_type"])))
    return x.type(dtype) if x.dtype != dtype else x


def _check_stash(a, opset, node):
    if a["stash_type"] not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
        return f"stash_type={_type_name(a['stash_type'])} is not supported (FLOAT or DOUBLE)"
    return None


@_op("LayerNormalization", inputs=3, outputs=3, check=_check_stash, axis=-1, epsilon=1e-5, stash_type=1)
def _layer_norm(step, a, x, scale, bias=None):
    # Y = (x - mean) / sqrt(var + eps) * scale + bias over the axes from `axis` on; Mean, InvStdDev kept
    axis = int(a["axis"]) % x.ndim
    shape = tuple(x.shape[axis:])
    eps = float(a["epsilon"])
    z = _stashed(a, x)
    weight = scale.type(z.dtype).expand(*shape)
    shift = None if bias is None else bias.type(z.dtype).expand(*shape)
    y = F.layer_norm(z, shape, weight, shift, eps=eps).type(x.dtype)
    dims = tuple(range(axis, x.ndim))
    mean = z.mean(dim=dims, keepdim=True)
    inv_std = 1.0 / (((z - mean) ** 2).mean(dim=dims, keepdim=True) + eps).sqrt()
    return y, mean, inv_std


def _check_group_norm(a, opset, node):
    if opset < 21:
        return ("opset < 21 is not supported: GroupNormalization-18 scales per group, minicnn's group_norm "
                "per channel (GroupNormalization-21)")
    return _check_stash(a, opset, node)


@_op("GroupNormalization", inputs=3, check=_check_group_norm, epsilon=1e-5, num_groups=None, stash_type=1)
def _group_norm(step, a, x, scale, bias):
    z = _stashed(a, x)
    return F.group_norm(z, int(a["num_groups"]), scale.type(z.dtype), bias.type(z.dtype),
                        eps=float(a["epsilon"])).type(x.dtype)


def _check_unpool(a, opset, node):
    if len(node.input) > 2 and node.input[2]:
        return "the output_shape input is not supported (the output is (H - 1) * stride - 2 * pad + kernel)"
    if a["kernel_shape"] is None or len(a["kernel_shape"]) != 2:
        return f"only 2-D MaxUnpool is supported, kernel_shape is {a['kernel_shape']}"
    pads = a["pads"]
    if pads is not None and (len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]):
        return f"pads {list(pads)} must be 4 values, the same before and after"
    return None


@_op("MaxUnpool", inputs=3, ranks={4}, check=_check_unpool, kernel_shape=None, pads=None, strides=None)
def _max_unpool(step, a, x, indices, output_shape=None):
    k = tuple(a["kernel_shape"])
    stride = tuple(a["strides"] or (1, 1))
    pads = a["pads"] or (0, 0, 0, 0)
    size = tuple((n - 1) * s - 2 * p + kk for n, s, p, kk in zip(x.shape[2:], stride, pads[:2], k))
    # ONNX's indices count over the whole (N, C, OH, OW) tensor, torch's within each (OH, OW) plane
    xp = get_array_module(indices.array)
    plane = xp.asarray(indices.array) % (size[0] * size[1])
    return F.max_unpool2d(x, Tensor._wrap(plane), k, stride, (int(pads[0]), int(pads[1])), output_size=size)


@_op("ReduceProd", inputs=2, axes=None, keepdims=1, noop_with_empty_axes=0)
def _reduce_prod(step, a, x, axes=None):
    axes = _reduced_axes(step, a, x, axes, 18)
    if axes is None:
        return x
    if any(x.shape[d] == 0 for d in axes):  # the product of no values is 1
        shape = [1 if d in axes else n for d, n in enumerate(x.shape)]
        out = _like(x, np.ones(shape, dtype=x.dtype))
    else:
        out = x
        for d in axes:  # a product of slices along each axis, recorded as multiplications
            index = (slice(None),) * d
            product = out[index + (slice(0, 1),)]
            for i in range(1, out.shape[d]):
                product = product * out[index + (slice(i, i + 1),)]
            out = product
    if not a["keepdims"]:
        out = out.reshape(*[n for d, n in enumerate(out.shape) if d not in axes])
    return out
