"""`minicnn convert` between .npz checkpoints, .pth state dicts and .onnx graphs, and the example
examples/to_torch_and_back.py, on tiny data written into tmp_path."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn import cli
from minicnn.models import get_model
from minicnn.train import load_checkpoint, load_model, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent

try:
    import onnx
except ImportError:
    onnx = None
try:
    import torch
except ImportError:
    torch = None
needs_onnx = pytest.mark.skipif(onnx is None, reason="onnx is not installed (pip install minicnn[onnx])")
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


from test_cli import write_idx  # noqa: E402  (MNIST's four-file layout, tiny)


@pytest.fixture
def tiny_mnist(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder, "train", 64, seed=0)
    write_idx(folder, "t10k", 20, seed=1)
    return folder


@pytest.fixture
def checkpoint(tmp_path):
    """A LeNet-5 checkpoint as `minicnn train` writes one (the model and its data set in meta)."""
    minicnn.manual_seed(0)
    path = tmp_path / "best.npz"
    save_checkpoint(path, get_model("lenet5"), epoch=3, meta={"model": "lenet5", "model_kwargs": {"num_classes": 10},
                                                               "dataset": "mnist", "classes": list("0123456789")})
    return path


def convert(*argv):
    return cli.main(["convert", *map(str, argv)])


def outputs(model, x):
    model.eval()
    with minicnn.no_grad():
        return model(minicnn.from_numpy(x)).numpy()


X = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)


@needs_torch
def test_npz_to_pth_is_read_by_torch(checkpoint, tmp_path, capsys):
    assert convert(checkpoint, tmp_path / "lenet5.pth") == 0
    assert "lenet5" in capsys.readouterr().out
    twin = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.Tanh(), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.Tanh(), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(16, 120, 5), torch.nn.Tanh(), torch.nn.Flatten(),
        torch.nn.Linear(120, 84), torch.nn.Tanh(), torch.nn.Linear(84, 10)).eval()
    twin.load_state_dict(torch.load(tmp_path / "lenet5.pth", weights_only=True))
    model, _ = load_model(checkpoint)
    with torch.no_grad():
        np.testing.assert_allclose(twin(torch.from_numpy(X)).numpy(), outputs(model, X), rtol=1e-5, atol=1e-6)


def test_pth_to_npz_needs_the_model_and_then_evaluates(tmp_path, tiny_mnist, capsys):
    minicnn.manual_seed(1)
    model = get_model("lenet5")
    minicnn.save(model.state_dict(), tmp_path / "w.pth")
    assert convert(tmp_path / "w.pth", tmp_path / "w.npz") == 1
    err = capsys.readouterr().err
    assert "--model NAME" in err and "fit lenet5" in err and not (tmp_path / "w.npz").exists()

    assert convert(tmp_path / "w.pth", tmp_path / "w.npz", "--model", "lenet5", "--dataset", "mnist") == 0
    state = load_checkpoint(tmp_path / "w.npz")
    assert state["meta"]["model"] == "lenet5" and state["meta"]["dataset"] == "mnist"
    for k, v in model.state_dict().items():
        assert np.array_equal(state["model_state"][k], v.numpy())
    assert cli.main(["evaluate", str(tmp_path / "w.npz"), "--data-dir", str(tiny_mnist)]) == 0
    assert "test accuracy" in capsys.readouterr().out


@needs_torch
def test_a_pth_written_by_torch_converts_to_npz(tmp_path):
    twin = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(8, 16, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(576, 128), torch.nn.ReLU(), torch.nn.Linear(128, 7))
    torch.save(twin.state_dict(), tmp_path / "t.pth")
    assert convert(tmp_path / "t.pth", tmp_path / "t.npz", "--model", "cifar_small_cnn") == 0
    model, state = load_model(tmp_path / "t.npz")
    assert state["meta"]["model_kwargs"] == {"num_classes": 7}  # read off the last Linear
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(outputs(model, x), twin(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-6)


@needs_onnx
def test_npz_to_onnx_checks_and_comes_back(checkpoint, tmp_path):
    import minicnn.onnx as mo

    assert convert(checkpoint, tmp_path / "m.onnx") == 0
    proto = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert {p.key: p.value for p in proto.metadata_props}["minicnn.model"] == "lenet5"
    model, _ = load_model(checkpoint)
    assert np.array_equal(outputs(mo.load(tmp_path / "m.onnx"), X), outputs(model, X))

    assert convert(tmp_path / "m.onnx", tmp_path / "back.npz") == 0  # the model's name rides in the metadata
    back, state = load_model(tmp_path / "back.npz")
    assert state["meta"]["model"] == "lenet5"
    assert np.array_equal(outputs(back, X), outputs(model, X))


@needs_onnx
def test_pth_to_onnx_with_an_input_shape_and_onnx_to_pth(tmp_path):
    minicnn.manual_seed(2)
    model = get_model("resnet20")
    minicnn.save(model.state_dict(), tmp_path / "r.pth")
    assert convert(tmp_path / "r.pth", tmp_path / "r.onnx", "--model", "resnet20", "--input-shape", "2,3,32,32") == 0
    assert convert(tmp_path / "r.onnx", tmp_path / "r2.pth") == 0
    again = minicnn.load(tmp_path / "r2.pth")
    for k, v in model.state_dict().items():
        assert np.array_equal(again[k].numpy(), v.numpy()), k


@needs_onnx
def test_an_onnx_from_elsewhere_keeps_its_initializer_names_or_needs_the_model(tmp_path, capsys):
    import minicnn.onnx as mo

    net = minicnn.nn.Sequential(minicnn.nn.Flatten(), minicnn.nn.Linear(784, 10))
    mo.export(net, minicnn.randn(2, 1, 28, 28), tmp_path / "other.onnx")
    assert convert(tmp_path / "other.onnx", tmp_path / "other.npz") == 1
    assert "--model NAME" in capsys.readouterr().err
    assert convert(tmp_path / "other.onnx", tmp_path / "other.pth") == 0
    assert sorted(minicnn.load(tmp_path / "other.pth")) == ["1.bias", "1.weight"]
    assert convert(tmp_path / "other.onnx", tmp_path / "other.npz", "--model", "lenet5") == 1
    assert "not the state dict of lenet5" in capsys.readouterr().err


def test_convert_refuses_unknown_combinations(checkpoint, tmp_path, capsys):
    assert convert(checkpoint, tmp_path / "x.txt") == 1
    assert "unknown kind of file '.txt'" in capsys.readouterr().err
    assert convert(checkpoint, tmp_path / "copy.npz") == 1
    assert "nothing to convert" in capsys.readouterr().err
    assert convert(tmp_path / "missing.npz", tmp_path / "x.pth") == 1
    assert "does not exist" in capsys.readouterr().err
    assert convert(checkpoint, tmp_path / "x.pth", "--model", "cifar_cnn") == 1
    assert "says it holds lenet5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convert(checkpoint, tmp_path / "x.onnx", "--input-shape", "1,a,28")


def test_python_dash_m_minicnn_convert(checkpoint, tmp_path):
    out = subprocess.run([sys.executable, "-m", "minicnn", "convert", str(checkpoint), str(tmp_path / "w.pt")],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert sorted(minicnn.load(tmp_path / "w.pt")) == sorted(get_model("lenet5").state_dict())


def test_to_torch_and_back_example_runs_on_tiny_data(tiny_mnist, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("to_torch_and_back", ROOT / "examples" / "to_torch_and_back.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(["--data-dir", str(tiny_mnist), "--steps", "3", "--onnx-images", "6",
                            "--out", str(tmp_path / "run")])
    printed = capsys.readouterr().out
    assert "runtime" in printed and (tmp_path / "run" / "lenet5.pth").is_file()
    assert len(results["minicnn"]) == 20
    expected = {"minicnn"} | ({"torch"} if torch is not None else set()) | ({"onnx (reference)"} if onnx else set())
    assert set(results) == expected
    for name, predicted in results.items():  # the same weights: the same digit, everywhere
        assert np.array_equal(predicted, results["minicnn"][:len(predicted)]), name
    if onnx is not None:
        assert len(results["onnx (reference)"]) == 6
