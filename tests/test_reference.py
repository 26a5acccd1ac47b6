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
