"""minicnn.viz: every picture is a real PNG of the size asked for, with something drawn on it;
without matplotlib, importing works and drawing says what to install."""

import importlib
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import minicnn
import minicnn.nn as nn
from minicnn import viz
from minicnn.backend import default_rng

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

FIGSIZE, DPI = (4, 3), 50            # every picture below must be 200 x 150 pixels


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def digit():
    """A (1, 28, 28) '1'."""
    x = np.zeros((1, 28, 28), np.float32)
    x[0, 5:23, 12:16] = 1
    return x


def timing_rows():
    return [{"case": case, "method": method, "seconds": seconds * scale}
            for case, scale in (("LeNet conv1", 1), ("LeNet conv2", 2))
            for method, seconds in (("naive", 1.5), ("im2col", 0.012), ("torch", 0.002))]


HISTORY = {"epoch": [1, 2, 3], "train_loss": [2.3, 0.9, 0.4], "val_loss": [1.2, None, 0.5],
           "train_acc": [0.4, 0.8, 0.9], "val_acc": [0.6, None, 0.88], "lr": [0.1, 0.1, 0.01]}
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def labels_and_predictions(n=12):
    labels = np.arange(n) % 10
    preds = labels.copy()
    preds[[1, 4]] = (preds[[1, 4]] + 3) % 10
    return labels, preds


def small_resnet_loss():
    """A ResNet block (conv-bn-relu-conv-bn, identity shortcut, add, relu) under a loss."""
    from minicnn.models import BasicBlock
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), BasicBlock(4, 4), nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    x = minicnn.from_numpy(np.random.default_rng(0).standard_normal((2, 1, 5, 5)).astype(np.float32))
    return net, nn.CrossEntropyLoss()(net(x), minicnn.tensor([0, 2]))


def draw_graph(path, **kw):
    net, loss = small_resnet_loss()
    return viz.plot_graph(loss, path, model=net, engine="matplotlib", **kw)


def lenet_with_grads():
    net = lenet()
    nn.CrossEntropyLoss()(net(minicnn.from_numpy(digit()[None])), minicnn.tensor([1])).backward()
    return net


def activation_records(steps=6):
    """Rows as ActivationRecorder writes them: two layers, two weights, a loss, over a few steps."""
    rng = np.random.default_rng(0)
    return {"activations": [{"step": s, "layer": name, "type": kind, "mean": float(rng.random()),
                             "std": float(rng.random()), "saturated": float(rng.random()) if kind != "Conv2d" else None}
                            for s in range(steps) for name, kind in (("0", "Conv2d"), ("1", "Sigmoid"))],
            "grad_norms": [{"step": s, "param": p, "norm": float(10.0 ** -rng.integers(1, 5))}
                           for s in range(steps) for p in ("0.weight", "0.bias", "2.weight")],
            "batch_metrics": [{"step": s, "loss": 2.3 - 0.1 * s, "accuracy": 0.1 * s} for s in range(steps)]}


# name -> draw(path, **size); one per kind of picture (and per kind of input where it matters)
PICTURES = {
    "timings": lambda path, **kw: viz.plot_timings(timing_rows(), path, title="conv2d forward", **kw),
    "history": lambda path, **kw: viz.plot_history(HISTORY, path, **kw),
    "filters_of_a_model": lambda path, **kw: viz.plot_filters(lenet(), path, **kw),
    "filters_rgb_conv": lambda path, **kw: viz.plot_filters(nn.Conv2d(3, 12, 3), path, **kw),
    "filters_array": lambda path, **kw: viz.plot_filters(np.random.default_rng(0).random((8, 2, 3, 3)), path, **kw),
    "feature_maps_conv": lambda path, **kw: viz.plot_feature_maps(lenet(), digit(), 1, path, **kw),
    "feature_maps_linear": lambda path, **kw: viz.plot_feature_maps(lenet(), digit()[None], -1, path, **kw),
    "predictions_grey_uint8": lambda path, **kw: viz.plot_predictions(
        np.random.default_rng(0).integers(0, 256, (12, 1, 28, 28), dtype=np.uint8), *labels_and_predictions(),
        [str(k) for k in range(10)], path, **kw),
    "predictions_rgb_normalised": lambda path, **kw: viz.plot_predictions(
        np.random.default_rng(0).standard_normal((12, 3, 32, 32)), *labels_and_predictions(), CLASSES, path, **kw),
    "graph_of_a_resnet_block": lambda path, **kw: draw_graph(path, **kw),
    "grad_flow": lambda path, **kw: viz.plot_grad_flow(lenet_with_grads(), path, **kw),
    "activation_stats": lambda path, **kw: viz.plot_activation_stats(activation_records(), path, **kw),
    "confusion_matrix": lambda path, **kw: viz.plot_confusion_matrix(
        np.random.default_rng(0).integers(0, 9, (10, 10)) + 90 * np.eye(10, dtype=int), CLASSES, path, **kw),
}


def read_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("name", PICTURES)
def test_picture_is_a_png_of_figsize_times_dpi_with_something_drawn(name, tmp_path):
    path = tmp_path / f"{name}.png"
    assert PICTURES[name](str(path), figsize=FIGSIZE, dpi=DPI) == str(path)
    pixels = read_png(path)
    assert pixels.shape == (FIGSIZE[1] * DPI, FIGSIZE[0] * DPI, 3)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10, "the picture is (nearly) blank"


def test_wrong_predictions_are_marked_red(tmp_path):
    labels, preds = labels_and_predictions()
    images = np.zeros((12, 1, 28, 28), np.uint8)
    red = lambda px: np.sum((px[..., 0] > 150) & (px[..., 1] < 80) & (px[..., 2] < 80))
    all_right = read_png(viz.plot_predictions(images, labels, labels, None, str(tmp_path / "right.png")))
    two_wrong = read_png(viz.plot_predictions(images, labels, preds, None, str(tmp_path / "wrong.png")))
    assert red(all_right) == 0 and red(two_wrong) > 100


def test_feature_maps_between_a_forward_and_its_backward_change_nothing(tmp_path):
    x = minicnn.from_numpy(np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32))
    minicnn.seed(0)
    net = lenet()
    minicnn.seed(0)
    reference = lenet()
    for model, draw in ((reference, False), (net, True)):
        out = model(x)
        if draw:
            rng_state = default_rng().bit_generator.state
            viz.plot_feature_maps(model, x[0], 0, str(tmp_path / "maps0.png"), figsize=FIGSIZE, dpi=DPI)
            viz.plot_feature_maps(model, digit(), 3, str(tmp_path / "maps3.png"), figsize=FIGSIZE, dpi=DPI)
        out.sum().backward()
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        assert np.array_equal(p.grad.numpy(), q.grad.numpy()), name
    assert all(m.training for m in net.modules())
    assert default_rng().bit_generator.state == rng_state


def test_pictures_accept_tensors(tmp_path):
    """What a torch-style program has at hand: Tensors from the loader, the model and argmax."""
    net = lenet()
    images = minicnn.from_numpy(np.random.default_rng(0).random((12, 1, 28, 28)).astype(np.float32))
    labels, preds = (minicnn.from_numpy(a) for a in labels_and_predictions())
    paths = [viz.plot_feature_maps(net, images[0], 1, str(tmp_path / "m.png"), figsize=FIGSIZE, dpi=DPI),
             viz.plot_feature_maps(net, images[:1], -1, str(tmp_path / "l.png"), figsize=FIGSIZE, dpi=DPI),
             viz.plot_filters(net[0].weight, str(tmp_path / "f.png"), figsize=FIGSIZE, dpi=DPI),
             viz.plot_predictions(images, labels, preds, None, str(tmp_path / "p.png"), figsize=FIGSIZE, dpi=DPI)]
    for path in paths:
        assert len(np.unique(read_png(path).reshape(-1, 3), axis=0)) > 10, path


@pytest.mark.parametrize("call, message", [
    (lambda p: viz.plot_timings([{"case": "a", "seconds": 1.0}], p), "method"),
    (lambda p: viz.plot_history({"epoch": [1, 2]}, p), "nothing to plot"),
    (lambda p: viz.plot_filters(np.zeros((3, 3)), p), "(OC, C, KH, KW)"),
    (lambda p: viz.plot_filters(nn.Sequential(nn.Flatten()), p), "no Conv2d"),
    (lambda p: viz.plot_confusion_matrix(np.zeros((3, 3), int), ["a", "b"], p), "2 class names"),
    (lambda p: viz.plot_predictions(np.zeros((2, 1, 4, 4)), [0, 1], [0], None, p), "as many"),
])
def test_bad_arguments_raise_a_value_error_that_says_what_was_expected(call, message, tmp_path):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(str(tmp_path / "x.png"))


def test_history_tolerates_missing_keys_and_a_missing_epoch_list(tmp_path):
    path = viz.plot_history({"train_loss": [1.0, 0.5, None, 0.2]}, str(tmp_path / "h.png"), figsize=FIGSIZE, dpi=DPI)
    assert read_png(path).shape == (150, 200, 3)


def test_pictures_accept_arrays_of_every_backend(backend, tmp_path):
    net = lenet()
    x = backend.asarray(digit())
    labels, preds = labels_and_predictions()
    images = backend.asarray(np.random.default_rng(0).random((12, 1, 28, 28)))
    for path in (viz.plot_feature_maps(net, x, 2, str(tmp_path / "m.png")),
                 viz.plot_predictions(images, backend.asarray(labels), backend.asarray(preds), None,
                                      str(tmp_path / "p.png"), figsize=FIGSIZE, dpi=DPI)):
        assert len(np.unique(read_png(path).reshape(-1, 3), axis=0)) > 10


# -- without matplotlib ---------------------------------------------------------------------


@pytest.mark.parametrize("name", PICTURES)
def test_without_matplotlib_drawing_raises_import_error_saying_what_to_install(name, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # `import matplotlib` now fails
    with pytest.raises(ImportError, match=r'pip install matplotlib.*pip install "minicnn\[viz\]"'):
        PICTURES[name](str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_importing_minicnn_and_viz_works_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "minicnn.viz")
    assert hasattr(importlib.import_module("minicnn.viz"), "plot_history")


def test_importing_minicnn_does_not_load_matplotlib():
    code = "import sys, minicnn, minicnn.viz, minicnn.summary; print('matplotlib' in sys.modules)"
    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip() == "False"
