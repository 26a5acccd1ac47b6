"""minicnn.onnx.load against ONNX's own backend node tests (onnx.backend.test.case.node, the installed
onnx's): every node test of the operators listed here either runs and matches its expected outputs
within the test's tolerance, or is refused with a LoadError at load time. A wrong result, or an error
while running, fails. The counts (pass / refused / fail) are printed."""

import collections
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
node_cases = pytest.importorskip("onnx.backend.test.case.node")
from onnx import numpy_helper  # noqa: E402

import minicnn.onnx as mo  # noqa: E402
from minicnn.onnx.load import OPERATORS  # noqa: E402

# the operators of a CNN: the target is 160 passing node tests among them
CNN_OPERATORS = (
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "MaxUnpool",
    "BatchNormalization", "InstanceNormalization", "LRN",
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
    "Elu", "Selu", "PRelu", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Gelu", "Erf",
    "Gemm", "MatMul", "Flatten", "Dropout", "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss",
)
CNN_TARGET = 160
# the other operators the issue names (counted too: a refusal must be a LoadError, a result must be right)
MORE_OPERATORS = ("GroupNormalization", "LayerNormalization", "Erf", "Resize", "Upsample", "ReduceProd", "ReduceL1",
                  "ReduceL2")


def _cases():
    """{operator: [TestCase]} for the single-operator node tests (the '_expanded' function bodies left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases()
    by_op = collections.defaultdict(list)
    for case in cases:
        ops = {n.op_type for n in case.model.graph.node}
        if case.kind == "node" and len(ops) == 1 and "expanded" not in case.name:
            by_op[ops.pop()].append(case)
    return by_op


def _array(value):
    """A data set's value: a NumPy array, or a TensorProto (the cases of types NumPy lacks)."""
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)


def _run(case):
    """'pass', 'refused' (a LoadError at load) or 'fail: why'."""
    try:
        net = mo.load(case.model)
    except mo.LoadError:
        return "refused"
    for inputs, expected in case.data_sets:
        inputs, expected = [_array(v) for v in inputs], [_array(v) for v in expected]
        try:
            got = net(*inputs)
        except Exception as exc:
            return f"fail: {type(exc).__name__}: {str(exc)[:200]}"
        got = got if isinstance(got, tuple) else (got,)
        if len(got) != len(expected):
            return f"fail: {len(got)} outputs, expected {len(expected)}"
        for g, e in zip(got, expected):
            g = np.asarray(g.detach().numpy() if hasattr(g, "detach") else g)
            if g.shape != e.shape:
                return f"fail: shape {g.shape}, expected {e.shape}"
            if g.dtype != e.dtype:
                return f"fail: dtype {g.dtype}, expected {e.dtype}"
            if e.dtype.kind in "fc":
                if not np.allclose(g, e, rtol=case.rtol, atol=case.atol, equal_nan=True):
                    worst = float(np.nanmax(np.abs(g.astype(np.float64) - e)))
                    return f"fail: values differ by up to {worst:g}"
            elif not np.array_equal(g, e):
                return "fail: values differ"
    return "pass"


def test_node_suite_has_no_wrong_result_and_counts_pass_refused_fail(capsys):
    by_op = _cases()
    claimed = set(OPERATORS) - {"Constant"}
    ops = sorted(set(CNN_OPERATORS) | set(MORE_OPERATORS) | (claimed & set(by_op)))
    results = {op: {case.name: _run(case) for case in by_op.get(op, [])} for op in ops}
    failures = [f"{op} {name}: {r}" for op, rs in results.items() for name, r in rs.items() if r.startswith("fail")]

    def count(names):
        c = collections.Counter(r.split(":")[0] for op in names for r in results[op].values())
        return c["pass"], c["refused"], c["fail"], sum(c.values())

    with capsys.disabled():
        print()
        for op in ops:
            p, r, f, n = count([op])
            print(f"  {op:28s} {p:3d} pass {r:3d} refused {f:3d} fail (of {n})")
        print("onnx node suite, all listed operators: %d pass, %d refused, %d fail (of %d)" % count(ops))
        print("onnx node suite, CNN operators:        %d pass, %d refused, %d fail (of %d)" % count(CNN_OPERATORS))
        for line in failures:
            print("  FAIL", line)
    assert not failures, "\n".join(failures)
    assert count(CNN_OPERATORS)[0] >= CNN_TARGET
