"""The API reference builds from the docstrings with the README's pdoc command, every module included."""
import subprocess
import sys

import pytest

pytest.importorskip("pdoc", reason="the API reference needs the docs extra: pip install -e '.[docs]' (pdoc)")
pytest.importorskip("onnx", reason="the API reference documents minicnn.onnx, which needs the onnx extra")


def test_pdoc_builds_the_reference_with_the_pairs_documented(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pdoc", "minicnn", "--docformat", "markdown", "-o", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Error importing" not in done.stderr, done.stderr[-2000:]
    conv = (tmp_path / "minicnn" / "ops" / "conv.html").read_text(encoding="utf-8")
    assert "im2col" in conv and "conv2d_backward" in conv
    for page in ["autograd.html", "gradcheck.html", "onnx.html", "nn.html", "optim.html"]:
        assert (tmp_path / "minicnn" / page).exists(), page


REFERENCE_MODULES = ["minicnn", "minicnn.nn", "minicnn.nn.functional", "minicnn.nn.init", "minicnn.nn.utils",
                     "minicnn.optim", "minicnn.optim.lr_scheduler", "minicnn.utils.data", "minicnn.vision",
                     "minicnn.vision.models", "minicnn.vision.transforms", "minicnn.vision.datasets",
                     "minicnn.vision.utils", "minicnn.onnx", "minicnn.backends.cudnn", "minicnn.autograd"]


def test_every_public_function_and_class_of_the_reference_has_a_docstring():
    """The reference is built from docstrings: a public name without one would be an empty entry."""
    import importlib
    import inspect
    missing = []
    for name in REFERENCE_MODULES:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]:
            obj = getattr(module, attr, None)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj):
                missing.append(f"{name}.{attr}")
    assert not missing, f"public names without a docstring: {missing}"
