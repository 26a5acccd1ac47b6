"""Seeing inside: the recorded graph as a picture (and inspection leaves it whole), the gradient
flow, activation statistics recorded during training (and recording changes nothing), and the
im2col example."""

import importlib.util
import math
import pathlib
import shutil

import numpy as np
import pytest

import minicnn
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn import autograd, optim, viz
from minicnn.data import ArrayDataset, DataLoader
from minicnn.models import BasicBlock
from minicnn.train import HISTORY_KEYS, fit

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

ROOT = pathlib.Path(__file__).resolve().parents[1]


class SmallResNet(nn.Module):
    """A stem (conv-bn-relu), one ResNet block (conv-bn-relu-conv-bn + identity shortcut, add,
    relu), global average pooling and a Linear: the graph of the README picture."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.block = BasicBlock(4, 4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        out = F.relu(self.bn(self.conv(x)))
        out = self.block(out)
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def resnet_loss(seed=0):
    minicnn.seed(seed)
    net = SmallResNet()
    x = minicnn.from_numpy(np.random.default_rng(seed).standard_normal((2, 3, 6, 6)).astype(np.float32))
    return net, F.cross_entropy(net(x), minicnn.tensor([0, 2]))


def read_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return np.asarray(Image.open(path).convert("RGB"))


def assert_drawn(pixels):
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10, "the picture is (nearly) blank"


# -- plot_graph ---------------------------------------------------------------------------------


def test_graph_of_a_resnet_block_is_a_png_of_the_size_its_layout_needs_or_of_figsize(tmp_path):
    net, loss = resnet_loss()
    natural = read_png(viz.plot_graph(loss, str(tmp_path / "g.png"), model=net, engine="matplotlib", dpi=40))
    assert_drawn(natural)
    height, width, _ = natural.shape
    assert height > width > 200        # top to bottom: 14 ops in 14 layers
    sized = read_png(viz.plot_graph(loss, str(tmp_path / "s.png"), engine="matplotlib", figsize=(5, 4), dpi=30))
    assert sized.shape == (120, 150, 3)
    assert_drawn(sized)


def test_graph_names_ops_layers_shapes_parameters_and_the_input():
    net, loss = resnet_loss()
    boxes, edges = viz._recorded_graph(loss, net, max_nodes=400)
    ops = [b["lines"] for b in boxes.values() if b["kind"] in ("op", "root")]
    assert ["conv2d", "block.conv1 (Conv2d)", "(2, 4, 6, 6)"] in ops
    assert ["add", "in block (BasicBlock)", "(2, 4, 6, 6)"] in ops
    assert ["relu", "in Net.forward", "(2, 4, 6, 6)"] not in ops      # a named root module is 'SmallResNet'
    assert ["relu", "in SmallResNet.forward", "(2, 4, 6, 6)"] in ops
    assert [b["lines"] for b in boxes.values() if b["kind"] == "root"] == [["cross_entropy", "()"]]
    params = {b["lines"][0]: b["lines"][1] for b in boxes.values() if b["kind"] == "param"}
    assert params == {name: str(tuple(p.shape)) for name, p in net.named_parameters()}
    assert [b["lines"] for b in boxes.values() if b["kind"] == "input"] == [["input", "(2, 3, 6, 6)"]]
    # the residual: the stem's relu feeds the block's conv1 and its add; only the input gets no gradient
    stem_relu = next(k for k, b in boxes.items() if b["lines"][:2] == ["relu", "in SmallResNet.forward"])
    assert sorted(boxes[t]["lines"][0] for s, t, _ in edges if s == stem_relu) == ["add", "conv2d"]
    assert [boxes[s]["kind"] for s, _, grad in edges if not grad] == ["input"]
    # forward order: every box comes after the boxes it reads
    position = {k: i for i, k in enumerate(boxes)}
    assert all(position[s] < position[t] for s, t, _ in edges)
    # without a model the parameters are 'Parameter' and the layers their class names
    boxes, _ = viz._recorded_graph(loss, None, max_nodes=400)
    assert {b["lines"][0] for b in boxes.values() if b["kind"] == "param"} == {"Parameter"}
    assert ["conv2d", "Conv2d", "(2, 4, 6, 6)"] in [b["lines"] for b in boxes.values()]


def test_graph_layout_keeps_boxes_apart_and_routes_the_shortcut_beside_the_block():
    net, loss = resnet_loss()
    boxes, edges = viz._recorded_graph(loss, net, max_nodes=400)
    sizes = {k: (1.0 + 0.05 * len(max(b["lines"], key=len)), 0.2 * len(b["lines"])) for k, b in boxes.items()}
    layer, x, y, routes = viz._layered_layout(list(boxes), edges, sizes)
    rows = {}
    for k in boxes:
        rows.setdefault(layer[k], []).append(k)
    for row in rows.values():
        row.sort(key=lambda k: x[k])
        for a, b in zip(row, row[1:]):
            assert x[b] - x[a] >= (sizes[a][0] + sizes[b][0]) / 2 + viz._GAP_X - 1e-9
    for (s, t, _), points in zip(edges, routes):
        assert layer[t] > layer[s] and len(points) == layer[t] - layer[s] + 1
        for px, py in points[1:-1]:        # a long edge passes no box on its way
            assert all(abs(px - x[k]) >= sizes[k][0] / 2 for k in boxes if abs(y[k] - py) < 1e-9)
    assert max(len(p) for p in routes) == 7     # the shortcut: from the stem relu past the 5 ops of the block to the add


def test_plotting_the_graph_leaves_it_whole_for_backward(tmp_path):
    net, loss = resnet_loss()
    nodes = autograd._order(loss._node)
    before = [(n.cache, n.inputs, n.backward, n.freed) for n in nodes]
    viz.plot_graph(loss, str(tmp_path / "g.png"), model=net, engine="matplotlib", figsize=(4, 6), dpi=30)
    assert [(n.cache, n.inputs, n.backward, n.freed) for n in nodes] == before
    assert all(p.grad is None for p in net.parameters())
    loss.backward()
    reference, reference_loss = resnet_loss()
    reference_loss.backward()
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        assert np.array_equal(p.grad.numpy(), q.grad.numpy()), name


def test_plot_graph_says_what_to_do_with_a_freed_graph_a_leaf_or_a_bad_engine(tmp_path):
    net, loss = resnet_loss()
    loss.backward()
    with pytest.raises(RuntimeError, match="freed by backward.*before calling backward.*retain_graph=True"):
        viz.plot_graph(loss, str(tmp_path / "g.png"))
    with pytest.raises(RuntimeError, match="nothing was recorded"):
        viz.plot_graph(net.fc.weight, str(tmp_path / "g.png"))
    with minicnn.no_grad():
        out = net(minicnn.zeros(1, 3, 6, 6))
    with pytest.raises(RuntimeError, match="no_grad"):
        viz.plot_graph(out, str(tmp_path / "g.png"))
    _, loss = resnet_loss()
    with pytest.raises(ValueError, match="engine"):
        viz.plot_graph(loss, str(tmp_path / "g.png"), engine="dot")
    with pytest.raises(ValueError, match="max_nodes=5"):
        viz.plot_graph(loss, str(tmp_path / "g.png"), max_nodes=5)
    assert not (tmp_path / "g.png").exists()


def test_plot_graph_after_backward_with_retain_graph_still_draws(tmp_path):
    _, loss = resnet_loss()
    loss.backward(retain_graph=True)
    assert_drawn(read_png(viz.plot_graph(loss, str(tmp_path / "g.png"), engine="matplotlib", dpi=30)))


@pytest.mark.skipif(importlib.util.find_spec("graphviz") is None or shutil.which("dot") is None,
                    reason="graphviz (the Python package and the dot program) is not installed")
def test_plot_graph_with_graphviz_draws_a_png(tmp_path):
    net, loss = resnet_loss()
    assert_drawn(read_png(viz.plot_graph(loss, str(tmp_path / "g.png"), model=net, engine="graphviz", dpi=40)))


def test_auto_engine_falls_back_to_matplotlib_without_the_dot_program_or_the_package(tmp_path, monkeypatch):
    _, loss = resnet_loss()
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "graphviz" else find_spec(name))
    assert not viz._graphviz_available()                              # a dot program, no Python package
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "graphviz" else
                        find_spec(name))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert not viz._graphviz_available()                              # the package, no dot program
    pixels = read_png(viz.plot_graph(loss, str(tmp_path / "g.png"), figsize=(3, 4), dpi=20))
    assert pixels.shape == (80, 60, 3)                                # matplotlib's: the size asked for
    assert_drawn(pixels)
    with pytest.raises(ImportError, match="pip install graphviz.*engine='matplotlib' needs neither"):
        viz.plot_graph(loss, str(tmp_path / "h.png"), engine="graphviz")
    assert not (tmp_path / "h.png").exists()


# -- gradient flow --------------------------------------------------------------------------------


def test_grad_flow_needs_gradients_and_says_so(tmp_path):
    net = SmallResNet()
    with pytest.raises(RuntimeError, match=r"no parameter .* has a gradient; call loss.backward\(\) first"):
        viz.plot_grad_flow(net, str(tmp_path / "f.png"))
    assert not (tmp_path / "f.png").exists()


def test_grad_flow_marks_a_frozen_layer_and_a_zero_gradient(tmp_path):
    net, loss = resnet_loss()
    net.bn.requires_grad_(False)
    _, loss = net, F.cross_entropy(net(minicnn.randn(2, 3, 6, 6)), minicnn.tensor([0, 1]))
    loss.backward()
    net.fc.bias.grad = minicnn.zeros(3)
    net.fc.weight.grad = minicnn.zeros(3, 4)
    pixels = read_png(viz.plot_grad_flow(net, str(tmp_path / "f.png"), figsize=(6, 3), dpi=40))
    assert pixels.shape == (120, 240, 3)
    assert_drawn(pixels)


# -- recording activations and gradients ------------------------------------------------------------


def test_recorder_measures_mean_std_and_saturation_of_each_layer_on_due_steps_only():
    net = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 3), nn.ReLU(), nn.Tanh())
    large_weights(net)
    x = minicnn.tensor([[1.0, -2.0], [0.5, 3.0], [-4.0, 0.0], [2.0, 2.0]])
    recorder = viz.ActivationRecorder(net, every=2)
    for step in range(5):
        loss = net(x).sum()
        loss.backward()
        recorder.step(loss, accuracy=0.25 * step)
    assert sorted({r["step"] for r in recorder.activations}) == [0, 2, 4]
    assert sorted({r["step"] for r in recorder.grad_norms}) == [0, 2, 4]
    assert [m["accuracy"] for m in recorder.batch_metrics] == [0.0, 0.5, 1.0]
    # the values of the last recorded step, computed again here
    with minicnn.no_grad():
        h1 = net[1](net[0](x)).numpy().astype(np.float64)
        h3 = net[3](net[2](net[1](net[0](x)))).numpy()
    h4 = np.tanh(h3)
    last = {r["layer"]: r for r in recorder.activations if r["step"] == 4}
    assert list(last) == ["0", "1", "2", "3", "4"]
    assert last["1"]["type"] == "Sigmoid" and math.isclose(last["1"]["mean"], h1.mean(), rel_tol=1e-6)
    assert math.isclose(last["1"]["std"], h1.std(), rel_tol=1e-5)
    assert last["1"]["saturated"] == float(((h1 < 0.03) | (h1 > 0.97)).mean())
    assert last["3"]["saturated"] == float((h3 == 0).mean()) > 0
    assert last["4"]["saturated"] == float((np.abs(h4) > 0.97).mean())
    assert last["0"]["saturated"] is None and last["2"]["saturated"] is None
    norms = {r["param"]: r["norm"] for r in recorder.grad_norms if r["step"] == 4}
    for name, p in net.named_parameters():
        assert math.isclose(norms[name], float(np.linalg.norm(p.grad.numpy())), rel_tol=1e-5), name
    recorder.remove()
    assert all(not m._forward_hooks for m in net.modules())


def large_weights(net):
    """Fixed weights, large enough that the sigmoid and the tanh saturate somewhere."""
    rng = np.random.default_rng(3)
    with minicnn.no_grad():
        for p in net.parameters():
            p.copy_(minicnn.from_numpy((3 * rng.standard_normal(tuple(p.shape))).astype(np.float32)))


def test_recorder_skips_evaluation_forwards_and_names_a_second_call_of_a_layer():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return self.act(self.fc(self.act(x)))

    net = Twice()
    with viz.ActivationRecorder(net, every=1) as recorder:
        net(minicnn.randn(2, 3)).sum().backward()
        net.eval()
        net(minicnn.randn(2, 3))                   # evaluation: not recorded
        net.train()
        recorder.step()
    assert [r["layer"] for r in recorder.activations] == ["act", "fc", "act#2"]
    assert recorder.batch_metrics == [] and not net.act._forward_hooks
    with pytest.raises(ValueError, match="every must be a positive int"):
        viz.ActivationRecorder(net, every=0)


def tiny_setup(model_seed=0):
    """A small sigmoid CNN, its SGD, and a loader of 24 random 8x8 images (3 steps an epoch)."""
    minicnn.seed(model_seed)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Sigmoid(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(3 * 4 * 4, 3))
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.integers(0, 255, (24, 1, 8, 8), dtype=np.uint8), np.arange(24) % 3)
    return net, optim.SGD(net.parameters(), lr=0.5), DataLoader(data, batch_size=8, shuffle=True, seed=0)


def test_fit_records_every_n_steps_and_trains_exactly_as_without_recording(tmp_path):
    results = {}
    for every in (None, 2):
        net, opt, loader = tiny_setup()
        history = fit(net, nn.CrossEntropyLoss(), opt, loader, epochs=2, progress=False, record_every=every)
        results[every] = (net, history)
    (plain, h_plain), (recorded, h_rec) = results[None], results[2]
    for (name, p), q in zip(recorded.named_parameters(), plain.parameters()):
        assert np.array_equal(p.detach().numpy(), q.detach().numpy()), name
    assert set(h_plain) == set(HISTORY_KEYS)                          # off by default: nothing new
    assert set(h_rec) == set(HISTORY_KEYS) | {"activations", "grad_norms", "batch_metrics"}
    assert h_rec["train_loss"] == h_plain["train_loss"] and h_rec["train_acc"] == h_plain["train_acc"]
    # 3 steps an epoch, 6 in all: steps 0, 2, 4 recorded; 5 leaf layers; 4 parameters
    assert sorted({r["step"] for r in h_rec["activations"]}) == [0, 2, 4]
    assert len(h_rec["activations"]) == 3 * 5 and len(h_rec["grad_norms"]) == 3 * 4
    assert [m["step"] for m in h_rec["batch_metrics"]] == [0, 2, 4]
    assert all(not m._forward_hooks for m in recorded.modules())    # the recorder is gone after fit
    pixels = read_png(viz.plot_activation_stats(h_rec, str(tmp_path / "a.png"), figsize=(8, 5), dpi=30))
    assert pixels.shape == (150, 240, 3)
    assert_drawn(pixels)


def test_fit_resumed_with_recording_continues_the_step_count(tmp_path):
    net, opt, loader = tiny_setup()
    whole = fit(net, nn.CrossEntropyLoss(), opt, loader, epochs=2, progress=False, record_every=1)
    net, opt, loader = tiny_setup()
    fit(net, nn.CrossEntropyLoss(), opt, loader, epochs=1, progress=False, record_every=1, checkpoint_dir=tmp_path)
    net, opt, loader = tiny_setup(model_seed=1)     # other weights: the checkpoint's replace them
    resumed = fit(net, nn.CrossEntropyLoss(), opt, loader, epochs=2, progress=False, record_every=1,
                  checkpoint_dir=tmp_path, resume=True)
    for key in ("activations", "grad_norms", "batch_metrics"):
        assert resumed[key] == whole[key], key


def test_plot_activation_stats_takes_a_recorder_and_checks_its_arguments(tmp_path):
    net, opt, loader = tiny_setup()
    with viz.ActivationRecorder(net, every=1) as recorder:
        for x, y in loader:
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            recorder.step(loss)
            opt.step()
    path = viz.plot_activation_stats(recorder, str(tmp_path / "a.png"), layers=["0", "1"], params=["0.bias"])
    assert_drawn(read_png(path))
    with pytest.raises(ValueError, match=r"no rows for the layers \['9'\]"):
        viz.plot_activation_stats(recorder, str(tmp_path / "b.png"), layers=["9"])
    with pytest.raises(ValueError, match="no activation rows"):
        viz.plot_activation_stats({"activations": []}, str(tmp_path / "b.png"))


# -- the im2col example --------------------------------------------------------------------------


def test_im2col_example_runs_its_checks_and_measures_a_speed_up(capsys):
    spec = importlib.util.spec_from_file_location("im2col_explained", ROOT / "examples" / "im2col_explained.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--batch", "2", "--naive-images", "1", "--repeats", "1"])
    out = capsys.readouterr().out
    assert result["speedup"] > 0 and result["naive_seconds"] > 0
    for text in ("col = im2col(x), rows (c, i, j), columns (n, oh, ow) (18, 4):", "(c=1, i=2, j=2)",
                 "W @ col + b, rows o, columns (n, oh, ow) (2, 4):", "equals conv2d_naive(x, w, b)",
                 "col2im is the adjoint of im2col", "scaled x2 to 2 images", "speed-up of im2col"):
        assert text in out, text
