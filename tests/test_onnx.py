"""minicnn.onnx: export (tape -> ONNX, checked by onnx's checker and reference evaluator), load
(ONNX -> a runnable minicnn Module), against torch's own exporter, and their errors."""

import io
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import minicnn  # noqa: E402
import minicnn.nn.functional as F  # noqa: E402
import minicnn.onnx as mo  # noqa: E402
from minicnn import nn  # noqa: E402
from minicnn.models import MODELS, get_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {"lenet5": (2, 1, 28, 28), "lenet5_sigmoid": (2, 1, 28, 28)}  # the others: (2, 3, 32, 32)


class Net(nn.Module):
    """forward(x) = fn(self, x), with the given layers as attributes: one op kind per test case."""

    def __init__(self, fn, **layers):
        super().__init__()
        for name, layer in layers.items():
            setattr(self, name, layer)
        self.fn = fn

    def forward(self, x):
        return self.fn(self, x)


class PadLayer(nn.Module):
    def forward(self, x):
        return F.pad(x, (1, 1, 2, 0), value=1.5)


def randomize_batch_norm(model, seed=0):
    """Running statistics and affine parameters away from their initial 0 / 1, so BN matters."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            C = m.num_features
            m.running_mean.array[...] = rng.normal(0, 0.5, C)
            m.running_var.array[...] = rng.uniform(0.5, 2, C)
            if m.weight is not None:
                m.weight.array[...] = rng.normal(1, 0.3, C)
                m.bias.array[...] = rng.normal(0, 0.3, C)
    return model


def reference(proto, x):
    return ReferenceEvaluator(proto).run(None, {"input": x})[0]


def run(net, x):
    net.eval()
    with minicnn.no_grad():
        return net(minicnn.from_numpy(x)).numpy()


def assert_close(a, b, atol=1e-5):
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol * max(1.0, float(np.abs(b).max())))


# -- optional dependency ---------------------------------------------------------------------------


def test_import_minicnn_does_not_import_onnx():
    code = "import sys, minicnn, minicnn.nn, minicnn.models, minicnn.cli; print('onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_minicnn_onnx_without_onnx_says_what_to_install():
    code = ("import sys; sys.modules['onnx'] = None\n"
            "try:\n    import minicnn.onnx\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "pip install minicnn[onnx]" in out.stdout


# -- export: one op kind at a time -----------------------------------------------------------------

def _prelu_with(slopes):
    layer = nn.PReLU(len(slopes))
    with minicnn.no_grad():
        layer.weight.copy_(minicnn.tensor(slopes, dtype=minicnn.float32))
    return layer


class _MaskHolder(nn.Module):
    """A module that registers a constant bool mask as a buffer (the where case reads it as s.mask)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("m", minicnn.tensor(np.random.default_rng(3).random((3, 4)) > 0.5))


CASES = {
    # name: (forward, input shape, layers, ONNX ops the graph must hold)
    "conv": (lambda s, x: s.c(x), (2, 4, 7, 7),
             dict(c=nn.Conv2d(4, 6, 3, stride=2, padding=(1, 2), dilation=2, groups=2)), {"Conv"}),
    "conv_same": (lambda s, x: s.c(x), (2, 3, 6, 6), dict(c=nn.Conv2d(3, 4, 4, padding="same")), {"Conv"}),
    "conv_reflect": (lambda s, x: s.c(x), (2, 3, 6, 6),
                     dict(c=nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")), {"Pad", "Conv"}),
    "conv_replicate": (lambda s, x: s.c(x), (2, 3, 6, 6),
                       dict(c=nn.Conv2d(3, 4, 3, padding=2, padding_mode="replicate", bias=False)), {"Pad", "Conv"}),
    "max_pool": (lambda s, x: F.max_pool2d(x, 3, 1, 1, dilation=2), (2, 3, 8, 8), {}, {"MaxPool"}),
    "max_pool_ceil": (lambda s, x: s.p(x), (2, 3, 5, 5), dict(p=nn.MaxPool2d(2, 2, 1, ceil_mode=True)), {"MaxPool"}),
    "avg_pool": (lambda s, x: s.p(x), (2, 3, 7, 7), dict(p=nn.AvgPool2d(3, 2, 1)), {"AveragePool"}),
    "avg_pool_exclude_pad": (lambda s, x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), (2, 3, 7, 7), {},
                             {"Pad", "AveragePool", "Mul"}),
    "avg_pool_ceil": (lambda s, x: F.avg_pool2d(x, 3, 3, ceil_mode=True), (2, 3, 7, 7), {}, {"AveragePool"}),
    "avg_pool_divisor": (lambda s, x: F.avg_pool2d(x, 2, divisor_override=3), (2, 3, 6, 6), {}, {"AveragePool"}),
    "global_avg_pool": (lambda s, x: s.p(x), (2, 3, 5, 4), dict(p=nn.AdaptiveAvgPool2d(1)), {"GlobalAveragePool"}),
    "adaptive_avg_pool": (lambda s, x: F.adaptive_avg_pool2d(x, (2, 3)), (2, 3, 4, 6), {}, {"AveragePool"}),
    "global_max_pool": (lambda s, x: F.adaptive_max_pool2d(x, 1), (2, 3, 4, 6), {}, {"GlobalMaxPool"}),
    "linear": (lambda s, x: s.l(x), (2, 5), dict(l=nn.Linear(5, 3)), {"Gemm"}),
    "linear_no_bias_3d": (lambda s, x: s.l(x), (2, 4, 5), dict(l=nn.Linear(5, 3, bias=False)), {"Gemm", "Reshape"}),
    "activations": (lambda s, x: F.leaky_relu(F.relu(x) - F.sigmoid(x) * F.tanh(x), 0.2), (2, 5), {},
                    {"Relu", "Sigmoid", "Tanh", "LeakyRelu"}),
    "activations_more": (lambda s, x: F.softsign(F.hardswish(F.hardsigmoid(F.selu(x * 3)) * 4 - 2)), (2, 5), {},
                         {"Selu", "HardSigmoid", "HardSwish", "Softsign"}),
    "activations_clip_elu": (lambda s, x: F.relu6(F.hardtanh(F.elu(x * 3, alpha=0.7), -0.5, 2.0) * 5 + 1), (2, 5), {},
                             {"Elu", "Clip"}),
    "silu": (lambda s, x: F.silu(x * 2), (2, 5), {}, {"Sigmoid", "Mul"}),
    "prelu_channels": (lambda s, x: s.p(x - 0.5), (2, 3, 4, 4), dict(p=_prelu_with([0.1, 0.5, -0.3])),
                       {"PRelu", "Reshape"}),  # a slope per channel: a channel mix-up would show
    "prelu_shared_2d": (lambda s, x: s.p(x), (2, 3), dict(p=nn.PReLU()), {"PRelu"}),
    "softmax": (lambda s, x: F.log_softmax(F.softmax(x, dim=1), dim=-1), (2, 3, 4), {}, {"Softmax", "LogSoftmax"}),
    "batch_norm": (lambda s, x: s.b(x), (2, 3, 4, 4), dict(b=nn.BatchNorm2d(3)), {"BatchNormalization"}),
    "batch_norm_1d_no_affine": (lambda s, x: s.b(x), (4, 3), dict(b=nn.BatchNorm1d(3, affine=False)),
                                {"BatchNormalization"}),
    "arithmetic": (lambda s, x: (2.0 - x * 0.5) / 3 + 1 - (-x) ** 2 + x * s.w, (2, 3), dict(w=nn.Parameter(
        minicnn.randn(3))), {"Add", "Sub", "Mul", "Div", "Neg", "Pow"}),
    "residual": (lambda s, x: F.relu(s.c(x) + x), (2, 3, 5, 5), dict(c=nn.Conv2d(3, 3, 3, padding=1)), {"Add"}),
    "unary": (lambda s, x: x.abs().sqrt().exp().log(), (2, 3), {}, {"Abs", "Sqrt", "Exp", "Log"}),
    "matmul": (lambda s, x: x @ s.w, (2, 3, 4), dict(w=nn.Parameter(minicnn.randn(4, 5))), {"MatMul"}),
    "flatten": (lambda s, x: s.f(x), (2, 3, 4, 5), dict(f=nn.Flatten()), {"Flatten"}),
    "view": (lambda s, x: x.view(x.size(0), 4, -1).unsqueeze(1).squeeze(1), (2, 3, 4, 4), {}, {"Reshape"}),
    "permute": (lambda s, x: x.permute(0, 2, 3, 1).transpose(1, 2), (2, 3, 4, 5), {}, {"Transpose"}),
    "index": (lambda s, x: x[:, 1, ::-1, None, 1:3], (2, 3, 4, 5), {}, {"Slice", "Squeeze", "Unsqueeze"}),
    "index_ellipsis": (lambda s, x: x[..., ::2, -1], (2, 3, 5, 5), {}, {"Slice", "Squeeze"}),
    "pad": (lambda s, x: F.pad(x, (1, 2, 0, 1)), (2, 3, 4, 5), {}, {"Pad"}),
    "pad_layer_value": (lambda s, x: s.p(x), (2, 3, 4, 5), dict(p=PadLayer()), {"Pad"}),
    "sum_mean": (lambda s, x: x.mean((2, 3), keepdim=True) + x.sum(1, keepdim=True), (2, 3, 4, 5), {},
                 {"ReduceMean", "ReduceSum"}),
    "cat": (lambda s, x: minicnn.cat([x, x * 2], dim=1), (2, 3, 4), {}, {"Concat"}),
    "expand": (lambda s, x: x[:, :, :1].expand(-1, 3, 4), (2, 3, 4), {}, {"Expand"}),
    "cast_clone": (lambda s, x: x.double().float().clone(), (2, 3), {}, {"Cast", "Identity"}),
    "dropout_in_eval": (lambda s, x: s.d(x) + F.dropout(x, training=s.training), (2, 3), dict(d=nn.Dropout(0.3)),
                        {"Add"}),
    "identity": (lambda s, x: x, (2, 4), {}, {"Identity"}),
    "softplus": (lambda s, x: F.softplus(x * 4, beta=2, threshold=3) + F.softplus(x), (2, 5), {},
                 {"Softplus", "Where", "Greater"}),  # x * 4 reaches past beta x > threshold
    "conv_transpose": (lambda s, x: s.c(x), (2, 4, 5, 5),
                       dict(c=nn.ConvTranspose2d(4, 6, 3, stride=2, padding=(1, 0), output_padding=1, groups=2,
                                                 dilation=(1, 2))), {"ConvTranspose", "Concat"}),
    "conv_transpose_no_bias": (lambda s, x: s.c(x), (2, 4, 5, 5), dict(c=nn.ConvTranspose2d(4, 3, 2, stride=2,
                                                                                              bias=False)),
                               {"ConvTranspose"}),
    "upsample_nearest_scale": (lambda s, x: F.interpolate(x, scale_factor=(2, 3)), (2, 3, 4, 5), {}, {"Resize"}),
    "upsample_nearest_gather": (lambda s, x: F.interpolate(x, scale_factor=1.2), (2, 3, 5, 7), {}, {"Gather"}),
    "upsample_nearest_size": (lambda s, x: F.interpolate(x, size=(7, 3)), (2, 3, 4, 5), {}, {"Resize"}),
    "upsample_bilinear": (lambda s, x: s.u(x), (2, 3, 4, 5), dict(u=nn.Upsample(scale_factor=2, mode="bilinear")),
                          {"Resize"}),
    "upsample_bilinear_corners": (lambda s, x: F.interpolate(x, size=(6, 9), mode="bilinear", align_corners=True),
                                  (2, 3, 4, 5), {}, {"Resize"}),
    "upsample_bilinear_kept_axis": (lambda s, x: F.interpolate(x, scale_factor=(1.2, 1.5), mode="bilinear"),
                                    (2, 3, 2, 4), {}, {"Resize"}),  # 2 * 1.2 -> 2: torch reads that axis as it is
    "layer_norm": (lambda s, x: s.n(x), (2, 3, 4, 5), dict(n=nn.LayerNorm((4, 5))), {"LayerNormalization"}),
    "layer_norm_no_affine": (lambda s, x: F.layer_norm(x, (5,), eps=1e-3), (2, 3, 5), {}, {"LayerNormalization"}),
    "group_norm": (lambda s, x: s.n(x), (2, 6, 3, 3), dict(n=nn.GroupNorm(3, 6)), {"InstanceNormalization"}),
    "group_norm_no_affine": (lambda s, x: F.group_norm(x, 2, eps=1e-2), (2, 4, 5), {}, {"InstanceNormalization"}),
    "lrn_odd": (lambda s, x: s.n(x * 3), (2, 7, 3, 3), dict(n=nn.LocalResponseNorm(3, 0.5, 0.75, 2.0)), {"Conv", "Pow"}),
    "lrn_even": (lambda s, x: F.local_response_norm(x * 3, 4, 0.5, 0.6, 1.5), (2, 7, 3, 3), {}, {"Conv", "Pow"}),
    "extremes": (lambda s, x: x.amax(1) - x.amin((1, 2), keepdim=True).squeeze(2) + x.max(2)[0] * x.min(1)[0],
                 (2, 4, 4), {}, {"ReduceMax", "ReduceMin"}),
    "norm": (lambda s, x: x.norm(dim=1) + x.norm(p=1, dim=(1,), keepdim=True).squeeze(1)
             + x.norm(p=float("inf"), dim=1), (2, 5, 3), {}, {"ReduceL2", "ReduceL1", "ReduceMax"}),
    "clamp_maximum_minimum": (lambda s, x: minicnn.maximum(x.clamp(-0.5, 0.7), x * 0.3) - minicnn.minimum(
        x.clamp(min=0.1), s.w) + x.clamp(max=0.2), (2, 5), dict(w=nn.Parameter(minicnn.randn(5))),
        {"Clip", "Max", "Min"}),
    "stack": (lambda s, x: minicnn.stack([x, x * 2, -x], dim=2), (2, 3, 4), {}, {"Concat", "Unsqueeze"}),
    "where_buffer_mask": (lambda s, x: minicnn.where(s.mask.m, x, x * -2), (2, 3, 4), dict(
        mask=_MaskHolder()), {"Where"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_each_op_passes_the_checker_and_the_reference_evaluator_and_loads_back(case, tmp_path):
    fn, shape, layers, ops = CASES[case]
    minicnn.manual_seed(0)
    net = randomize_batch_norm(Net(fn, **layers))
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    path = tmp_path / f"{case}.onnx"
    proto = mo.export(net, minicnn.from_numpy(x), path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert ops <= {n.op_type for n in proto.graph.node}
    expected = run(net, x)
    assert_close(reference(proto, x), expected)
    assert_close(run(mo.load(path), x), expected)
    bigger = np.concatenate([x, x])  # axis 0 is the symbolic batch: another batch size runs too
    assert_close(run(mo.load(path), bigger), run(net, bigger))


@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("case", ["extremes", "norm", "sum_mean", "layer_norm", "group_norm", "upsample_bilinear",
                                  "conv_transpose"])
def test_export_at_newer_opsets_where_reductions_take_their_axes_as_an_input(case, opset, tmp_path):
    fn, shape, layers, ops = CASES[case]
    minicnn.manual_seed(0)
    net = Net(fn, **layers)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    proto = mo.export(net, minicnn.from_numpy(x), tmp_path / "m.onnx", opset_version=opset)
    assert proto.opset_import[0].version == opset
    assert_close(reference(proto, x), run(net, x))
    assert_close(run(mo.load(tmp_path / "m.onnx"), x), run(net, x))


def test_export_restores_training_mode_and_writes_to_file_objects():
    net = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
    net[1].eval()  # a mixed state comes back as it was
    buffer = io.BytesIO()
    proto = mo.export(net, minicnn.randn(2, 3), buffer)
    assert net.training and not net[1].training and net[0].training
    assert onnx.load_from_string(buffer.getvalue()) == proto


def test_export_circular_padding_needs_opset_19(tmp_path):
    net = Net(lambda s, x: s.c(x), c=nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"))
    x = minicnn.randn(2, 2, 5, 5)
    with pytest.raises(mo.ExportError, match="opset 19"):
        mo.export(net, x, tmp_path / "c.onnx")
    proto = mo.export(net, x, tmp_path / "c.onnx", opset_version=19)
    assert "wrap" in str(proto.graph.node)
    assert_close(run(mo.load(tmp_path / "c.onnx"), x.numpy()), run(net, x.numpy()))


@settings(max_examples=60, deadline=None)
@given(H=st.integers(1, 7), W=st.integers(1, 7), mode=st.sampled_from(["nearest", "bilinear", "bilinear-corners"]),
       by_size=st.booleans(), scale=st.sampled_from([0.5, 0.7, 1.2, 1.5, 1.7, 2.0, 2.5, 3.0]),
       size=st.tuples(st.integers(1, 13), st.integers(1, 13)))
def test_export_interpolate_reproduces_torchs_rows_for_drawn_sizes_and_scales(H, W, mode, by_size, scale, size):
    """Resize where its rule picks torch's rows (float32 or float64, either way), two Gathers where it
    would miss one (nearest, scale 1.2 on 7 columns): the export never fails its own check."""
    kwargs = dict(size=size) if by_size else dict(scale_factor=scale)
    assume(by_size or (int(H * scale) >= 1 and int(W * scale) >= 1))
    kwargs.update(mode="nearest") if mode == "nearest" else kwargs.update(
        mode="bilinear", align_corners=mode == "bilinear-corners")
    x = np.random.default_rng(H * 10 + W).standard_normal((2, 2, H, W)).astype(np.float32)
    net = _Forward(lambda x: F.interpolate(x, **kwargs))
    buffer = io.BytesIO()
    proto = mo.export(net, minicnn.from_numpy(x), buffer)
    assert {"Resize", "Gather"} & {n.op_type for n in proto.graph.node}
    assert_close(reference(proto, x), run(net, x))
    loaded = mo.load(io.BytesIO(buffer.getvalue()))
    assert_close(run(loaded, x), run(net, x))


def _labels(shape, C, ignore=False, dtype=np.int64):
    t = np.random.default_rng(4).integers(0, C, shape).astype(dtype)
    if ignore:
        t.reshape(-1)[::3] = -100
    return t


def _probabilities(shape):
    return F.softmax(minicnn.from_numpy(np.random.default_rng(5).standard_normal(shape).astype(np.float32)), 1).numpy()


def _unit(shape):
    return np.random.default_rng(6).random(shape).astype(np.float32)


W4 = minicnn.tensor([0.5, 1.0, 2.0, 1.5])
LOSS_CASES = {
    # name: (loss(x, target), x shape, the target, ONNX ops the graph must hold)
    "cross_entropy": (lambda x, t: F.cross_entropy(x, t), (3, 4), _labels(3, 4), {"SoftmaxCrossEntropyLoss"}),
    "cross_entropy_weight_ignore_sum": (lambda x, t: F.cross_entropy(x, t, weight=W4, reduction="sum"), (5, 4),
                                        _labels(5, 4, ignore=True), {"SoftmaxCrossEntropyLoss"}),
    "cross_entropy_nd_none": (lambda x, t: F.cross_entropy(x, t, reduction="none", ignore_index=2), (2, 4, 3, 2),
                              _labels((2, 3, 2), 4), {"SoftmaxCrossEntropyLoss"}),
    "cross_entropy_int32_labels": (lambda x, t: F.cross_entropy(x, t, weight=W4), (3, 4), _labels(3, 4, dtype=np.int32),
                                   {"Cast", "SoftmaxCrossEntropyLoss"}),
    "cross_entropy_probs_smoothed": (lambda x, t: F.cross_entropy(x, t, weight=W4, label_smoothing=0.1), (3, 4, 2),
                                     _probabilities((3, 4, 2)), {"LogSoftmax", "ReduceSum"}),
    "nll_loss": (lambda x, t: F.nll_loss(F.log_softmax(x, 1), t, weight=W4), (6, 4), _labels(6, 4, ignore=True),
                 {"NegativeLogLikelihoodLoss"}),
    "nll_loss_none": (lambda x, t: F.nll_loss(x, t, reduction="none"), (3, 4, 5), _labels((3, 5), 4),
                      {"NegativeLogLikelihoodLoss"}),
    "mse_loss": (lambda x, t: F.mse_loss(x, t), (3, 4), _unit((3, 4)), {"ReduceMean"}),
    "l1_loss_sum": (lambda x, t: F.l1_loss(x, t, reduction="sum"), (3, 4), _unit((3, 4)), {"Abs", "ReduceSum"}),
    "smooth_l1_loss_none": (lambda x, t: F.smooth_l1_loss(x, t, reduction="none", beta=0.5), (3, 4), _unit((3, 4)),
                            {"Where"}),
    "smooth_l1_loss_beta_0": (lambda x, t: F.smooth_l1_loss(x, t, beta=0.0), (3, 4), _unit((3, 4)), {"Abs"}),
    "binary_cross_entropy": (lambda x, t: F.binary_cross_entropy(F.sigmoid(x * 20), t, weight=W4), (3, 4),
                             _unit((3, 4)), {"Log", "Max"}),  # x * 20: probabilities of 0 and 1, clamped logs
    "binary_cross_entropy_with_logits": (lambda x, t: F.binary_cross_entropy_with_logits(
        x * 30, t, pos_weight=minicnn.tensor([1.0, 2.0, 0.5, 3.0])), (3, 4), _unit((3, 4)), {"Exp", "Relu"}),
}


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")  # BCE's clamped log(0)
@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_export_each_loss_with_its_target_as_an_input_matches_and_loads_back(case, tmp_path):
    fn, shape, target, ops = LOSS_CASES[case]
    net = _Forward(fn)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    path = tmp_path / f"{case}.onnx"
    proto = mo.export(net, (minicnn.from_numpy(x), minicnn.from_numpy(target)), path)
    assert ops <= {n.op_type for n in proto.graph.node}
    expected = fn(minicnn.from_numpy(x), minicnn.from_numpy(target)).numpy()
    got = ReferenceEvaluator(proto).run(None, {"input0": x, "input1": target})[0]
    assert_close(got, expected)
    loaded = mo.load(path)
    assert_close(loaded(minicnn.from_numpy(x), minicnn.from_numpy(target)).detach().numpy(), expected)
    if shape[0] > 1:  # another batch size: the loss's reduction over the batch does not fix it
        x2, t2 = np.concatenate([x, x[:1]]), np.concatenate([target, target[:1]])
        assert_close(ReferenceEvaluator(proto).run(None, {"input0": x2, "input1": t2})[0],
                     fn(minicnn.from_numpy(x2), minicnn.from_numpy(t2)).numpy())


def _tape_ops(t):
    """The op names of the Nodes behind t."""
    from minicnn.autograd import _order
    return {n.op for n in _order(t._node)} if t._node is not None else set()


def test_every_op_the_exporter_writes_is_exercised_by_a_case_above():
    """Each tape op with an ONNX form goes through the checker, the reference evaluator and load in
    CASES or LOSS_CASES (the refused ones have tests of their messages below)."""
    from minicnn.onnx.export import HANDLERS
    seen = set()
    for fn, shape, layers, _ in CASES.values():
        minicnn.manual_seed(0)
        net = Net(fn, **layers).eval()
        seen |= _tape_ops(net(minicnn.randn(*shape, requires_grad=True)))
    for fn, shape, target, _ in LOSS_CASES.values():
        seen |= _tape_ops(fn(minicnn.randn(*shape, requires_grad=True), minicnn.from_numpy(target)))
    refused = {"max_unpool2d", "fill_", "copy_", "index_put", "dropout", "dropout2d"}
    elsewhere = {"gelu"}  # needs opset 20: test_export_gelu_needs_opset_20_and_round_trips_there
    assert set(HANDLERS) - refused - elsewhere - seen == set()


def test_export_refuses_label_smoothing_on_class_indices_and_a_target_that_is_not_a_tensor():
    x, t = minicnn.randn(3, 4), minicnn.tensor([0, 1, 2])
    with pytest.raises(mo.ExportError, match="label_smoothing"):
        mo.export(_Forward(lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1)), (x, t), io.BytesIO())
    with pytest.raises(mo.ExportError, match="target is not a Tensor"):
        mo.export(_Forward(lambda x: F.cross_entropy(x, [0, 1, 2], weight=W4)), x, io.BytesIO())


def test_a_class_loss_keeps_its_target_off_the_tape_as_torch_and_does_not_keep_it_alive():
    import gc
    x, t = minicnn.randn(3, 4, requires_grad=True), minicnn.tensor([0, 1, 2])
    for loss in (F.cross_entropy(x * 2, t), F.nll_loss(x * 2, t, reduction="sum")):
        assert [f is None for f, _ in loss.grad_fn.next_functions] == [False]  # torch: the input only
    loss = F.cross_entropy(x * 2, minicnn.tensor([0, 1, 2]))
    gc.collect()
    assert loss._node.cache[1][4]() is None  # the target went away: the tape held only a weak reference
    loss.backward()  # the backward needs only the op's own cache
    assert x.grad is not None and np.isfinite(x.grad.numpy()).all()


def test_export_refuses_a_where_whose_condition_is_computed_off_the_tape():
    with pytest.raises(mo.ExportError, match=r"node 0 \(where.*registered bool buffer"):
        mo.export(_Forward(lambda x: x.masked_fill(x > 0, 0.0)), minicnn.randn(2, 3), io.BytesIO())


class _Forward(nn.Module):
    """A module whose forward is the given function of its inputs."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *inputs):
        return self.fn(*inputs)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_export_gelu_needs_opset_20_and_round_trips_there(approximate, tmp_path):
    net = Net(lambda s, x: F.gelu(x * 2, approximate=approximate))
    x = np.random.default_rng(2).standard_normal((2, 5)).astype(np.float32)
    with pytest.raises(mo.ExportError, match="opset 20"):
        mo.export(net, minicnn.from_numpy(x), tmp_path / "g.onnx")
    proto = mo.export(net, minicnn.from_numpy(x), tmp_path / "g.onnx", opset_version=20)
    assert "Gelu" in {n.op_type for n in proto.graph.node}
    assert_close(reference(proto, x), run(net, x))
    assert_close(run(mo.load(tmp_path / "g.onnx"), x), run(net, x))


# -- export and load of the models ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_round_trip_with_bit_equal_initializers(name, tmp_path):
    minicnn.manual_seed(0)
    model = randomize_batch_norm(get_model(name))
    x = np.random.default_rng(0).standard_normal(SHAPES.get(name, (2, 3, 32, 32))).astype(np.float32)
    proto = mo.export(model, minicnn.from_numpy(x), tmp_path / "m.onnx")
    assert_close(reference(proto, x), run(model, x))
    net = mo.load(tmp_path / "m.onnx")
    ours, theirs = model.state_dict(), net.state_dict()
    assert set(theirs) == {k for k in ours if not k.endswith("num_batches_tracked")}
    for k, v in theirs.items():
        assert v.dtype == ours[k].dtype and np.array_equal(v.numpy(), ours[k].numpy()), k
    assert np.array_equal(run(net, x), run(model, x))  # the same ops on the same weights
    fresh = get_model(name)
    fresh.load_state_dict(net.state_dict(), strict=False)
    assert np.array_equal(run(fresh, x), run(model, x))


def test_loaded_graph_records_on_the_tape(tmp_path):
    model = get_model("cifar_small_cnn")
    mo.export(model, minicnn.randn(2, 3, 32, 32), tmp_path / "m.onnx")
    net = mo.load(tmp_path / "m.onnx")
    net(minicnn.randn(3, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
    assert len(list(net.parameters())) == 8


# -- import of graphs written by torch ---------------------------------------------------------------

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed: nothing to compare with")


def torch_resnet20():
    """minicnn.models.resnet20 written in torch (akamaster/pytorch_resnet_cifar10's code)."""
    from torch_twins import TorchResNet  # imports torch: only once torch is known to be there
    return TorchResNet()


def torch_twin(model):
    """The torch network of a minicnn model, with its weights."""
    if type(model).__name__ == "ResNet":
        twin = torch_resnet20()
    else:
        layers = []
        for m in model:
            kind = type(m).__name__
            if kind == "Conv2d":
                layers.append(torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding))
            elif kind == "Linear":
                layers.append(torch.nn.Linear(m.in_features, m.out_features))
            elif kind in ("AvgPool2d", "MaxPool2d"):
                layers.append(getattr(torch.nn, kind)(m.kernel_size, m.stride))
            else:
                layers.append(getattr(torch.nn, kind)())
        twin = torch.nn.Sequential(*layers)
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    return twin.eval()


def torch_export(twin, x, path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated in favour of dynamo's
        torch.onnx.export(twin, torch.from_numpy(x), path, dynamo=False, input_names=["input"],
                          output_names=["output"], **kwargs)


@needs_torch
@pytest.mark.parametrize("name", ["lenet5", "lenet5_sigmoid", "cifar_small_cnn", "cifar_cnn", "resnet20"])
def test_torch_exported_models_load_and_match_torch(name, tmp_path):
    minicnn.manual_seed(0)
    twin = torch_twin(randomize_batch_norm(get_model(name)))
    x = np.random.default_rng(0).standard_normal(SHAPES.get(name, (2, 3, 32, 32))).astype(np.float32)
    torch_export(twin, x, tmp_path / "t.onnx", dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    net = mo.load(tmp_path / "t.onnx")
    bigger = np.concatenate([x, x[:1]])
    with torch.no_grad():
        assert_close(run(net, bigger), twin(torch.from_numpy(bigger)).numpy())


@needs_torch
def test_torch_exported_batch_norm_loads_as_batch_norm(tmp_path):
    """With constant folding off, torch keeps BatchNormalization (it folds it into Conv otherwise)."""
    minicnn.manual_seed(0)
    twin = torch_twin(randomize_batch_norm(get_model("resnet20")))
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    torch_export(twin, x, tmp_path / "t.onnx", do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    net = mo.load(tmp_path / "t.onnx")
    assert "BatchNormalization x19" in repr(net)
    assert sum(1 for k in net.state_dict() if k.endswith("running_var")) == 19
    with torch.no_grad():
        assert_close(run(net, x), twin(torch.from_numpy(x)).numpy())


# -- hand-built graphs: the loader's operators against onnx's reference evaluator ---------------------


def graph(nodes, inputs, opset=17, initializers=(), output="y"):
    """A model of `nodes` with float32 inputs {name: shape} and one output `output`, whose shape
    (the checker wants one) is what onnx's reference evaluator makes of random inputs."""
    def build(out_shape):
        g = helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)],
            initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in dict(initializers).items()])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
        return model

    feeds = {k: np.ones([2 if isinstance(d, str) else d for d in s], np.float32) for k, s in inputs.items()}
    try:
        out_shape = [f"d{i}" for i in range(ReferenceEvaluator(build(None)).run(None, feeds)[0].ndim)]
    except Exception:  # an operator the reference evaluator refuses too: any rank will do
        out_shape = ["d0"]
    return build(out_shape)


def ints(name, values):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(values, np.int64)))


rng = np.random.default_rng(0)
W = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
HAND_BUILT = {
    "conv_same_upper": ([helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])],
                        {"x": [2, 3, 6, 7]}, 17, {"w": W}),
    "conv_asymmetric_pads": ([helper.make_node("Conv", ["x", "w"], ["y"], pads=[0, 1, 2, 0])],
                             {"x": [2, 3, 6, 7]}, 17, {"w": W}),
    # before opset 13, Softmax normalises over all dims from axis on (onnx's reference evaluator
    # knows only the newer rule, so the expected values are written out here)
    "softmax_opset11": ([helper.make_node("Softmax", ["x"], ["y"], axis=1)], {"x": [2, 3, 4]}, 11, {},
                        lambda x: (np.exp(x) / np.exp(x).sum(axis=(1, 2), keepdims=True))),
    "log_softmax_default": ([helper.make_node("LogSoftmax", ["x"], ["y"])], {"x": [2, 3, 4]}, 13, {}),
    "gemm_general": ([helper.make_node("Gemm", ["x", "b", "c"], ["y"], transA=1, alpha=0.5, beta=2.0)],
                     {"x": [5, 2]}, 17, {"b": rng.standard_normal((5, 3)).astype(np.float32),
                                         "c": rng.standard_normal((1, 3)).astype(np.float32)}),
    "clip": ([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], {"x": [2, 5]}, 13,
             {"lo": np.float32(-0.5), "hi": np.float32(0.7)}),
    "pad_reflect_edge": ([ints("p", [0, 0, 1, 2, 0, 0, 2, 1]),
                          helper.make_node("Pad", ["x", "p"], ["r"], mode="reflect"),
                          helper.make_node("Pad", ["r", "p"], ["y"], mode="edge")], {"x": [1, 2, 4, 5]}, 17, {}),
    "pad_negative_and_value": ([ints("p", [0, 0, -1, 2, 0, 0, 1, -2]),  # negative: crop (the reference
                                helper.make_node("Pad", ["x", "p", "v"], ["y"])], {"x": [1, 2, 4, 5]}, 17,  # refuses)
                               {"v": np.float32(3.0)},
                               lambda x: np.pad(x[:, :, 1:, :-2], ((0, 0), (0, 0), (0, 1), (2, 0)), constant_values=3)),
    "reduce_mean_opset18": ([ints("a", [1, -1]), helper.make_node("ReduceMean", ["x", "a"], ["y"], keepdims=0)],
                            {"x": [2, 3, 4]}, 18, {}),
    "reduce_sum_all": ([helper.make_node("ReduceSum", ["x"], ["y"])], {"x": [2, 3, 4]}, 13, {}),
    "squeeze_unsqueeze_opset11": ([helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0, 3]),
                                   helper.make_node("Squeeze", ["u"], ["y"], axes=[0])], {"x": [2, 3, 4]}, 11, {}),
    "shape_gather_concat_reshape": ([helper.make_node("Shape", ["x"], ["s"]),
                                     ints("i", 0), helper.make_node("Gather", ["s", "i"], ["n"]),
                                     ints("axes", [0]), helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
                                     ints("rest", [-1]), helper.make_node("Concat", ["n1", "rest"], ["shape"], axis=0),
                                     helper.make_node("Reshape", ["x", "shape"], ["y"])], {"x": [2, 3, 4]}, 17, {}),
    "expand_constant_of_shape": ([ints("s", [3, 1, 4]),
                                  helper.make_node("ConstantOfShape", ["s"], ["c"],
                                                   value=numpy_helper.from_array(np.array([0.5], np.float32))),
                                  helper.make_node("Expand", ["x", "s"], ["e"]),
                                  helper.make_node("Add", ["e", "c"], ["y"])], {"x": [2, 1]}, 17, {}),
    "transpose_flatten_slice": ([helper.make_node("Transpose", ["x"], ["t"]),
                                 helper.make_node("Flatten", ["t"], ["f"], axis=-1),
                                 ints("st", [-1, 0]), ints("en", [-2 ** 63, 5]), ints("ax", [0, 1]),
                                 ints("sp", [-2, 2]),
                                 helper.make_node("Slice", ["f", "st", "en", "ax", "sp"], ["y"])],
                                {"x": [2, 3, 4]}, 17, {}),
    "dropout_cast_identity": ([helper.make_node("Dropout", ["x"], ["d"]),
                               helper.make_node("Cast", ["d"], ["c"], to=TensorProto.DOUBLE),
                               helper.make_node("Cast", ["c"], ["i"], to=TensorProto.FLOAT),
                               helper.make_node("Identity", ["i"], ["y"])], {"x": [2, 3]}, 17, {}),
    "integer_div": ([helper.make_node("Shape", ["x"], ["s"]), ints("two", [2, 2]),
                     helper.make_node("Div", ["s", "two"], ["h"]), ints("z", [0, 0]), ints("ax", [0, 1]),
                     helper.make_node("Slice", ["x", "z", "h", "ax"], ["y"])], {"x": [5, 3]}, 17, {}),
    "avg_pool_count_include_pad": ([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3],
                                                      strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)],
                                    {"x": [1, 2, 6, 6]}, 17, {}),
    "global_pools_pow": ([helper.make_node("GlobalMaxPool", ["x"], ["m"]),
                          helper.make_node("GlobalAveragePool", ["x"], ["a"]),
                          helper.make_node("Pow", ["m", "e"], ["p"]), helper.make_node("Sub", ["p", "a"], ["y"])],
                         {"x": [2, 3, 4, 5]}, 17, {"e": np.float32(2.0)}),
}


@pytest.mark.parametrize("case", sorted(HAND_BUILT))
def test_hand_built_graphs_run_as_onnx_specifies(case):
    nodes, inputs, opset, inits, *spec = HAND_BUILT[case]
    model = graph(nodes, inputs, opset, inits)
    onnx.checker.check_model(model)
    feeds = {k: np.random.default_rng(3).standard_normal(s).astype(np.float32) for k, s in inputs.items()}
    expected = spec[0](*feeds.values()) if spec else ReferenceEvaluator(model).run(None, feeds)[0]
    with minicnn.no_grad():
        got = mo.load(model)(*(minicnn.from_numpy(v) for v in feeds.values())).numpy()
    assert_close(got, expected)


# -- refusals -----------------------------------------------------------------------------------------


def export_error(fn, shape=(2, 3, 4, 4), **layers):
    with pytest.raises(mo.ExportError) as info:
        mo.export(Net(fn, **layers), minicnn.randn(*shape), io.BytesIO())
    return str(info.value)


def test_export_refuses_an_op_without_onnx_form_naming_the_node():
    from minicnn.autograd import record

    def custom(x):  # an op of one's own, recorded on the tape with a name minicnn.onnx does not know
        return record(x.array * 2, lambda dout, cache: 2 * dout, None, (x,), "my_double")
    message = export_error(lambda s, x: custom(s.c(x)), c=nn.Conv2d(3, 3, 1))
    assert "cannot export node 1 (my_double in Net.forward)" in message and "'my_double'" in message


def test_export_refuses_max_unpool_and_in_place_writes_saying_why():
    def unpool(s, x):
        y, i = F.max_pool2d(x, 2, return_indices=True)
        return F.max_unpool2d(y, i, 2)
    assert "off the tape" in export_error(unpool)
    assert "in place (fill_)" in export_error(lambda s, x: (x * 2).fill_(1.0))

    def setitem(s, x):
        y = x * 2
        y[:, 0] = 0.0
        return y
    assert "in place (index_put)" in export_error(setitem)


def test_export_refuses_advanced_indexing_dropout_in_eval_and_batch_statistics():
    assert "node 0 (index in Net.forward)" in export_error(lambda s, x: x[:, [0, 2]])
    assert "training=self.training" in export_error(lambda s, x: F.dropout(x, 0.5))
    message = export_error(lambda s, x: s.b(x), b=nn.BatchNorm2d(3, track_running_stats=False))
    assert "node 0 (batch_norm in b (BatchNorm2d))" in message and "batch's own statistics" in message


def test_export_refuses_a_tensor_it_cannot_place():
    mask = minicnn.randn(2, 3, 4, 4) > 0  # computed off the tape: a graph could not repeat it
    message = export_error(lambda s, x: x * mask.float())
    assert "register_buffer" in message and "(2, 3, 4, 4)" in message


def test_export_keeps_a_registered_buffer_as_an_initializer():
    net = Net(lambda s, x: x * s.scale)
    net.register_buffer("scale", minicnn.randn(3, 1, 1))
    proto = mo.export(net, minicnn.randn(2, 3, 4, 4), io.BytesIO())
    assert [i.name for i in proto.graph.initializer] == ["scale"]


def test_export_refuses_an_op_that_mixes_the_batch_unless_static():
    net = Net(lambda s, x: x.t() @ s.w, w=nn.Parameter(minicnn.randn(3, 4)))
    x = minicnn.randn(3, 2)
    with pytest.raises(mo.ExportError, match=r"node 0 \(permute in Net.forward\).*dynamic_batch=False"):
        mo.export(net, x, io.BytesIO())
    proto = mo.export(net, x, io.BytesIO(), dynamic_batch=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    assert_close(reference(proto, x.numpy()), run(net, x.numpy()))


def test_export_catches_a_view_that_only_looks_batch_safe_on_one_image():
    net = Net(lambda s, x: s.l(x).squeeze(0), l=nn.Linear(3, 2))  # (1, 2) -> (2,): not (N, 2) -> (2N,)
    with pytest.raises(mo.ExportError, match="batch of 2"):
        mo.export(net, minicnn.randn(1, 3), io.BytesIO())


def test_export_keeps_the_fill_value_of_f_pad():
    net = Net(lambda s, x: F.pad(x, (1, 1), value=2.0) * 1.0)
    x = minicnn.randn(2, 3)
    assert_close(reference(mo.export(net, x, io.BytesIO()), x.numpy()), run(net, x.numpy()))


def test_export_refuses_a_graph_the_reference_evaluator_does_not_reproduce_and_writes_nothing(tmp_path, monkeypatch):
    export_module = sys.modules["minicnn.onnx.export"]  # (the package's `export` is the function)

    def wrong_mul(b, node, *inputs):  # a deliberately wrong translation: what the check is there to catch
        return b.emit("Add", list(inputs))
    monkeypatch.setitem(export_module.HANDLERS, "mul", wrong_mul)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    with pytest.raises(mo.ExportError, match="does not reproduce"):
        mo.export(Net(lambda s, x: x * 3.0), minicnn.randn(2, 3), path)
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]


def test_export_checks_its_arguments():
    with pytest.raises(ValueError, match="opset_version"):
        mo.export(nn.Linear(2, 2), minicnn.randn(1, 2), io.BytesIO(), opset_version=9)
    with pytest.raises(TypeError, match="Module"):
        mo.export(lambda x: x, minicnn.randn(1, 2), io.BytesIO())
    with pytest.raises(mo.ExportError, match="does not depend on the input"):
        mo.export(Net(lambda s, x: s.w, w=nn.Parameter(minicnn.randn(2))), minicnn.randn(1, 2), io.BytesIO())
    with pytest.raises(ValueError, match="names"):
        mo.export(nn.Linear(2, 2), minicnn.randn(1, 2), io.BytesIO(), input_names=["a", "b"])


def load_error(nodes, inputs, opset=17, inits=()):
    with pytest.raises(mo.LoadError) as info:
        mo.load(graph(nodes, inputs, opset, inits))
    return str(info.value)


def test_load_refuses_an_unsupported_operator_naming_the_node():
    message = load_error([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Erf", ["r"], ["y"], name="e")],
                         {"x": [2]})
    assert "node 1 'e' (Erf)" in message and "not supported" in message


@pytest.mark.parametrize("node, why", [
    (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], pads=[0, 0, 1, 1]), "differ before and after"),
    (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2]), "dilations"),
    (helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2]), "first 1 output"),
    (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2, 2]), "2-D"),
    (helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3, 3]), "1-D and 2-D"),
    (helper.make_node("Cast", ["x"], ["y"], to=TensorProto.STRING), "casting"),
    (helper.make_node("BatchNormalization", ["x", "s", "s", "s", "s"], ["y"], training_mode=1), "training_mode"),
])
def test_load_refuses_unsupported_settings_naming_the_node(node, why):
    message = load_error([node], {"x": [1, 2, 4, 4]}, opset=19, inits={"w": W[:, :2], "s": np.ones(2, np.float32)})
    assert f"node 0 ({node.op_type})" in message and why in message


def test_load_refuses_old_opsets_and_files_that_are_not_onnx(tmp_path):
    assert "version_converter" in load_error([helper.make_node("Relu", ["x"], ["y"])], {"x": [2]}, opset=9)
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(mo.LoadError, match="bad.onnx"):
        mo.load(tmp_path / "bad.onnx")
    with pytest.raises(FileNotFoundError):
        mo.load(tmp_path / "missing.onnx")


def test_loaded_module_checks_its_inputs():
    net = mo.load(graph([helper.make_node("Relu", ["x"], ["y"])], {"x": ["N", 3]}))
    assert net.input_names == ["x"] and net.input_shapes == [["N", 3]]
    with pytest.raises(ValueError, match=r"must have shape \(N, 3\)"):
        net(minicnn.randn(2, 4))
    with pytest.raises(TypeError, match="float32"):
        net(minicnn.randn(2, 3).double())
    with pytest.raises(TypeError, match="takes 1 input"):
        net(minicnn.randn(2, 3), minicnn.randn(2, 3))


def test_a_failing_node_is_named_at_run_time():
    nodes = [ints("s", [5, -1]), helper.make_node("Reshape", ["x", "s"], ["y"], name="r")]
    net = mo.load(graph(nodes, {"x": ["N", 3]}))
    with pytest.raises(Exception, match="node 1 'r' \\(Reshape\\)"):
        net(minicnn.randn(2, 3))


class TwoWay(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(3, 3)

    def forward(self, x, y):
        h = self.l(x)
        return h + y, h * y


def test_export_several_inputs_and_outputs_with_names(tmp_path):
    net = TwoWay()
    x, y = minicnn.randn(2, 3), minicnn.randn(2, 3)
    proto = mo.export(net, (x, y), tmp_path / "m.onnx", input_names=["x", "y"], output_names=["sum", "product"])
    assert [i.name for i in proto.graph.input] == ["x", "y"]
    assert [o.name for o in proto.graph.output] == ["sum", "product"]
    loaded = mo.load(tmp_path / "m.onnx")
    with minicnn.no_grad():
        for got, expected in zip(loaded(x, y), net(x, y)):
            assert_close(got.numpy(), expected.numpy())


@pytest.mark.parametrize("to", [TensorProto.FLOAT8E5M2, TensorProto.FLOAT8E4M3FN, TensorProto.BFLOAT16,
                                TensorProto.INT4, TensorProto.STRING])
def test_load_refuses_a_cast_to_a_dtype_minicnn_cannot_hold(to):
    nodes = [helper.make_node("Cast", ["x"], ["t"], to=to),
             helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    with pytest.raises(mo.LoadError, match=f"node 0 .*casting to {TensorProto.DataType.Name(to)}"):
        mo.load(model)


def test_load_refuses_a_graph_input_of_bfloat16():
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    with pytest.raises(mo.LoadError, match="BFLOAT16"):
        mo.load(model)


@needs_torch
def test_torch_exported_batch_norm_prelu_conv_transpose_upsample_match_torch_and_train_as_torch():
    """Conv, BatchNorm2d, PReLU, ConvTranspose2d and Upsample out of torch.onnx.export: the loaded graph
    gives torch's outputs, and 10 SGD steps on minicnn's tape follow torch's own 10 steps."""
    torch.manual_seed(0)
    twin = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.PReLU(4),
                               torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
                               torch.nn.Upsample(scale_factor=2))
    with torch.no_grad():
        twin[1].running_mean.uniform_(-0.5, 0.5), twin[1].running_var.uniform_(0.5, 2.0)
        twin[2].weight.uniform_(0.1, 0.4)
    twin.eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    target = rng.standard_normal((2, 2, 32, 32)).astype(np.float32)
    buffer = io.BytesIO()
    torch_export(twin, x, buffer, do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    net = mo.load(buffer.getvalue())
    ops = {step.op_type for step in net._plan}
    assert {"Conv", "BatchNormalization", "PRelu", "ConvTranspose", "Resize"} <= ops
    with torch.no_grad():
        assert_close(run(net, x), twin(torch.from_numpy(x)).numpy())

    net.eval()  # the inference graph (BatchNormalization with running statistics), trained by SGD
    opt = minicnn.optim.SGD(net.parameters(), lr=0.05)
    torch_opt = torch.optim.SGD(twin.parameters(), lr=0.05)
    for _ in range(10):
        opt.zero_grad()
        loss = F.mse_loss(net(minicnn.from_numpy(x)), minicnn.from_numpy(target))
        loss.backward()
        opt.step()
        torch_opt.zero_grad()
        torch_loss = torch.nn.functional.mse_loss(twin(torch.from_numpy(x)), torch.from_numpy(target))
        torch_loss.backward()
        torch_opt.step()
        np.testing.assert_allclose(float(loss.item()), float(torch_loss.item()), rtol=1e-5)
    with torch.no_grad():
        assert_close(run(net, x), twin(torch.from_numpy(x)).numpy())


@needs_torch
def test_loaded_new_operators_record_on_the_tape_with_torch_gradients():
    """ConvTranspose (asymmetric pads), InstanceNormalization, LayerNormalization, PRelu, HardSigmoid, Selu
    and SoftmaxCrossEntropyLoss: the loaded graph's loss and weight gradients are torch's."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32) * 0.3
    scale, bias = rng.uniform(0.5, 1.5, 2).astype(np.float32), rng.standard_normal(2).astype(np.float32)
    slope = rng.uniform(0.1, 0.3, (2, 1, 1)).astype(np.float32)
    layer_scale = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["a"], strides=[2, 2], pads=[1, 0, 0, 1]),
             helper.make_node("InstanceNormalization", ["a", "s", "b"], ["c"], epsilon=1e-3),
             helper.make_node("PRelu", ["c", "slope"], ["d"]),
             helper.make_node("HardSigmoid", ["d"], ["e"], alpha=0.3, beta=0.4),
             helper.make_node("Selu", ["e"], ["f"], alpha=1.5, gamma=1.2),
             helper.make_node("LayerNormalization", ["f", "ls"], ["g"], axis=-1),
             helper.make_node("Reshape", ["g", "shape"], ["h"]),
             helper.make_node("SoftmaxCrossEntropyLoss", ["h", "labels"], ["y"], reduction="sum")]
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4]),
                     helper.make_tensor_value_info("labels", TensorProto.INT64, [2, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(scale, "s"),
                     numpy_helper.from_array(bias, "b"), numpy_helper.from_array(slope, "slope"),
                     numpy_helper.from_array(layer_scale, "ls"),
                     numpy_helper.from_array(np.array([2, 2, -1], np.int64), "shape")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    labels = rng.integers(0, 2, (2, 64))
    net = mo.load(model)
    loss = net(minicnn.from_numpy(x), minicnn.from_numpy(labels))
    loss.backward()

    tw, ts, tb, tslope, tls = (torch.tensor(v, requires_grad=True) for v in (w, scale, bias, slope, layer_scale))
    a = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), tw, stride=2)[:, :, 1:, :-1]
    c = torch.nn.functional.instance_norm(a, weight=ts, bias=tb, eps=1e-3)
    d = torch.where(c > 0, c, tslope * c)
    e = (d * 0.3 + 0.4).clamp(0, 1)
    f = 1.2 * torch.nn.functional.elu(e, 1.5)
    h = torch.nn.functional.layer_norm(f, (8,), tls).reshape(2, 2, -1)
    torch_loss = torch.nn.functional.cross_entropy(h, torch.from_numpy(labels), reduction="sum")
    torch_loss.backward()
    np.testing.assert_allclose(float(loss.item()), float(torch_loss.item()), rtol=1e-5)
    for name, t in (("w", tw), ("s", ts), ("b", tb), ("slope", tslope), ("ls", tls)):
        np.testing.assert_allclose(getattr(net, name).grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)
