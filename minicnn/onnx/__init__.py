"""ONNX for minicnn: export a model's forward as an ONNX graph, and load an ONNX graph as a Module.

    import minicnn.onnx
    minicnn.onnx.export(model, minicnn.randn(1, 1, 28, 28), "lenet5.onnx")   # as torch.onnx.export
    net = minicnn.onnx.load("lenet5.onnx")      # a runnable minicnn Module (also for torch's exports)
    logits = net(x)

Needs the `onnx` package (pip install minicnn[onnx]); `import minicnn` alone never imports it.
export.py says how the tape's ops become ONNX nodes, load.py which ONNX operators run.
"""

try:
    import onnx as _onnx  # noqa: F401  (the real package: this import is absolute)
except ImportError as exc:
    raise ImportError(
        f"minicnn.onnx needs the onnx package, which cannot be imported ({exc}): "
        "pip install minicnn[onnx]  (or: pip install onnx)"
    ) from None

from .export import ExportError, export  # noqa: E402
from .load import LoadError, OnnxModule, load  # noqa: E402

__all__ = ["export", "load", "OnnxModule", "ExportError", "LoadError"]
