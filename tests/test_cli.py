"""The `minicnn` command and the example programs, run end to end on tiny data sets written
into tmp_path (IDX files for MNIST and Fashion-MNIST, pickled batches for CIFAR-10)."""

import gzip
import importlib.util
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn import cli
from minicnn.data import CIFAR10, DownloadError
from minicnn.train import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def write_idx(folder, prefix, n, seed):
    """`prefix`-images-idx3-ubyte.gz and -labels-idx1-ubyte.gz: n 28x28 digits whose class is
    drawn as a bright bar in one of 10 places, so that a few steps of training learn something."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 + 2 * k:4 + 2 * k, 4:24] = 255
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels.tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder, "train", 120, seed=0)
    write_idx(folder, "t10k", 40, seed=1)
    return folder


@pytest.fixture
def tiny_cifar(tmp_path):
    """A CIFAR-10 "python version" folder with 8 images per training batch and 10 test images."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{k}", 8) for k in range(1, 6)] + [("test_batch", 10)]:
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, size=n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return tmp_path


@pytest.fixture
def no_pictures(monkeypatch):
    """Replace minicnn.viz's plot functions by stubs that only record their calls: drawing is slow,
    tests/test_viz.py checks it, and one example test below draws for real."""
    from minicnn import viz

    calls = []
    for name in ["plot_history", "plot_predictions", "plot_confusion_matrix", "plot_filters", "plot_feature_maps"]:
        monkeypatch.setattr(viz, name, lambda *args, _name=name, **kwargs: calls.append(_name))
    return calls


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- minicnn train / evaluate ------------------------------------------------------------------


def test_train_then_evaluate_round_trip_rebuilds_the_model_from_the_checkpoint(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    status = cli.main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--epochs", "2",
                       "--batch-size", "16", "--optimizer", "adam", "--lr", "0.003", "--out", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert (out / "best.npz").is_file() and (out / "last.npz").is_file()
    meta = load_checkpoint(out / "best.npz")["meta"]
    assert meta["model"] == "lenet5" and meta["dataset"] == "mnist" and meta["normalize"]["std"] == [0.3081]
    trained = float(printed.split("test accuracy (best epoch): ")[1].split()[0])

    assert cli.main(["evaluate", str(out / "best.npz"), "--data-dir", str(tiny_mnist)]) == 0
    printed = capsys.readouterr().out
    assert f"test accuracy {trained:.4f}" in printed
    assert "40 images" in printed


def test_train_can_resume_from_its_last_checkpoint(tiny_mnist, tmp_path, capsys):
    args = ["train", "--data-dir", str(tiny_mnist), "--batch-size", "32", "--out", str(tmp_path / "run")]
    assert cli.main(args + ["--epochs", "1"]) == 0
    assert cli.main(args + ["--epochs", "2", "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "run" / "last.npz")["history"]["epoch"] == [1, 2]


def test_train_on_cifar10_defaults_to_the_small_cnn_with_augmentation(tiny_cifar, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", "cifar10", "--data-dir", str(tiny_cifar), "--epochs", "1",
                     "--limit", "16", "--batch-size", "8", "--out", str(out)]) == 0
    meta = load_checkpoint(out / "best.npz")["meta"]
    assert meta["model"] == "cifar_small_cnn" and meta["classes"][-1] == "truck"
    assert "cifar_small_cnn: 76,922 parameters" in capsys.readouterr().out


def test_evaluate_a_damaged_checkpoint_exits_with_the_reason(tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    assert cli.main(["evaluate", str(tmp_path / "bad.npz")]) == 1
    assert "not a readable minicnn checkpoint" in capsys.readouterr().err


def test_an_unknown_dataset_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--dataset", "imagenet"])
    assert "unknown dataset 'imagenet'" in capsys.readouterr().err


def test_python_dash_m_minicnn_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "minicnn", "evaluate", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "checkpoint" in done.stdout


# -- the examples ------------------------------------------------------------------------------


def test_lenet_mnist_example_trains_and_saves_the_model_and_its_pictures(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "out"
    result = load_example("lenet_mnist").main(["--data-dir", str(tiny_mnist), "--epochs", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "test accuracy of the best model" in printed and f"saved in {out.resolve()}" in printed
    assert result["n"] == 40
    expected = {"best.npz", "last.npz", "history.png", "predictions.png", "confusion_matrix.png",
                "filters.png", "feature_maps.png"}
    if importlib.util.find_spec("matplotlib") is None:
        expected -= {n for n in expected if n.endswith(".png")}
    assert expected <= {p.name for p in out.iterdir()}


def test_lenet_mnist_example_skips_pictures_without_matplotlib(tiny_mnist, tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib...` now fails
    load_example("lenet_mnist").main(["--data-dir", str(tiny_mnist), "--epochs", "1", "--out", str(tmp_path)])
    assert "pictures skipped: " in capsys.readouterr().out
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("recipe", ["d2l", "better"])
def test_lenet_fashion_mnist_example_runs_both_recipes(tiny_mnist, tmp_path, capsys, no_pictures, recipe):
    out = tmp_path / "out"
    load_example("lenet_fashion_mnist").main(["--recipe", recipe, "--data-dir", str(tiny_mnist), "--epochs", "1",
                                              "--out", str(out)])
    printed = capsys.readouterr().out
    assert f"recipe {recipe}: " in printed and "Ankle boot" in printed
    assert load_checkpoint(out / "best.npz")["meta"]["model"] == ("lenet5_sigmoid" if recipe == "d2l" else "lenet5")
    assert no_pictures == ["plot_history", "plot_predictions", "plot_confusion_matrix"]


@pytest.mark.parametrize("model", ["cifar_small_cnn", "cifar_cnn"])
def test_cifar10_example_runs_on_a_tiny_fake_cifar(tiny_cifar, tmp_path, capsys, no_pictures, model):
    out = tmp_path / "out"
    result = load_example("cifar10_cnn").main(["--data-dir", str(tiny_cifar), "--model", model, "--epochs", "1",
                                               "--batch-size", "16", "--limit", "32", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "train: ArrayDataset(32 images" in printed and "truck" in printed
    assert result["n"] == 10 and result["confusion_matrix"].shape == (10, 10)
    assert (out / "best.npz").is_file()
    assert "plot_filters" in no_pictures


def test_torch_tutorial_example_trains_saves_and_reloads_the_best_model(tiny_mnist, tmp_path, capsys):
    root = tmp_path / "data"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in tiny_mnist.iterdir():     # torchvision's layout: ROOT/MNIST/raw/
        (raw / f.name).write_bytes(f.read_bytes())
    save = tmp_path / "mnist_cnn.pt"
    accuracy = load_example("torch_tutorial").main(["--data-root", str(root), "--epochs", "1", "--batch-size", "16",
                                                    "--log-interval", "4", "--save", str(save)])
    printed = capsys.readouterr().out
    assert "[1,     4] loss: " in printed and "epoch 1: test accuracy" in printed
    assert f"best model, reloaded from {save}: test accuracy {100 * accuracy:.2f} %" in printed
    state = minicnn.load(save)                           # the best model's state_dict, as torch.save wrote it
    assert list(state) == [f"{layer}.{kind}" for layer in ("conv1", "conv2", "fc1", "fc2", "fc3")
                           for kind in ("weight", "bias")]
    assert tuple(state["conv1.weight"].shape) == (6, 1, 5, 5)


def test_backprop_by_hand_example_agrees_with_autograd_and_trains(tiny_mnist, capsys):
    accuracy = load_example("backprop_by_hand").main(["--data-dir", str(tiny_mnist), "--steps", "3",
                                                      "--batch-size", "16"])
    printed = capsys.readouterr().out
    assert "largest difference, by hand vs loss.backward()" in printed
    assert "test accuracy after 3 steps by hand" in printed and 0 <= accuracy <= 1


def test_cifar10_example_without_data_stops_with_the_not_found_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))

    def offline(self, folder, names):
        raise DownloadError("offline (test)")

    monkeypatch.setattr(CIFAR10, "download", offline)
    with pytest.raises(SystemExit, match=r"(?s)CIFAR10 \(train split\) not found.*cifar-10-python\.tar\.gz"):
        load_example("cifar10_cnn").main(["--data-dir", str(tmp_path / "empty")])
