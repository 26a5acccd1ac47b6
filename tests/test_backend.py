"""minicnn.backend: NumPy by default, CuPy on request with errors that say what is
missing, MINICNN_BACKEND honoured, and every array-module function the engine calls
exists in CuPy too."""

import ast
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from minicnn import backend

ENGINE = pathlib.Path(minicnn.__file__).parent


def _gpu_answers():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # not installed, or no CUDA driver
        return False


GPU_AVAILABLE = _gpu_answers()


def run_python(code, **env):
    """Run code in a fresh interpreter with the given environment variables (None removes one)."""
    environ = dict(os.environ)
    for key, value in env.items():
        environ.pop(key, None) if value is None else environ.__setitem__(key, value)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ,
                          cwd=ENGINE.parent, timeout=120)


def test_numpy_is_the_default_backend():
    result = run_python("import minicnn, numpy; print(minicnn.backend_name(), minicnn.get_xp() is numpy)",
                        MINICNN_BACKEND=None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["numpy", "True"]


def test_use_numpy_selects_numpy():
    minicnn.use("numpy")
    assert backend.backend_name() == "numpy" and backend.get_xp() is np


def test_an_unknown_backend_name_is_a_value_error_listing_the_choices():
    with pytest.raises(ValueError, match=r"unknown backend 'tpu': expected one of \('numpy', 'cupy'\)"):
        minicnn.use("tpu")
    assert backend.backend_name() == "numpy"


@pytest.mark.skipif(GPU_AVAILABLE, reason="a GPU answers here: use('cupy') succeeds")
def test_use_cupy_without_a_gpu_says_no_usable_gpu():
    pytest.importorskip("cupy", reason="CuPy is not installed: the 'not installed' message is tested below")
    with pytest.raises(backend.BackendError, match=r"CuPy is installed but (no usable GPU was found|reports 0 GPUs)"):
        minicnn.use("cupy")
    assert backend.backend_name() == "numpy" and backend.get_xp() is np  # a failed switch changes nothing


@pytest.mark.skipif(not GPU_AVAILABLE, reason="no GPU: CuPy is missing or finds no CUDA device")
def test_use_cupy_with_a_gpu_makes_cupy_the_array_module():
    import cupy
    minicnn.use("cupy")
    assert backend.get_xp() is cupy
    x = backend.to_device(np.arange(3.0, dtype=np.float32))
    assert isinstance(x, cupy.ndarray) and x.dtype == np.float32
    assert backend.get_array_module(x) is cupy
    np.testing.assert_array_equal(backend.to_numpy(x), [0.0, 1.0, 2.0])


def test_use_cupy_when_cupy_is_missing_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(backend.BackendError, match=r"CuPy, which is not installed.*pip install cupy-cuda12x"):
        minicnn.use("cupy")
    assert backend.backend_name() == "numpy"


def test_backend_error_is_a_runtime_error():
    assert issubclass(backend.BackendError, RuntimeError)


def test_minicnn_backend_environment_variable_is_honoured():
    result = run_python("import minicnn; print(minicnn.backend_name())", MINICNN_BACKEND="numpy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"
    result = run_python("import minicnn", MINICNN_BACKEND="tpu")
    assert result.returncode != 0 and "unknown backend 'tpu'" in result.stderr


@pytest.mark.skipif(GPU_AVAILABLE, reason="a GPU answers here: MINICNN_BACKEND=cupy succeeds")
def test_minicnn_backend_cupy_without_a_gpu_fails_at_import_with_the_reason():
    result = run_python("import minicnn", MINICNN_BACKEND="cupy")
    assert result.returncode != 0
    assert "BackendError" in result.stderr and ("GPU" in result.stderr or "not installed" in result.stderr)


def test_to_numpy_and_to_device_keep_the_dtype():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert backend.to_device(x).dtype == np.float32
    assert backend.to_device(x, dtype=np.float64).dtype == np.float64
    assert backend.to_numpy(backend.to_device(x)).dtype == np.float32
    assert backend.get_array_module(x, 1.0) is np


def test_seed_makes_default_rng_reproducible():
    minicnn.seed(5)
    a = backend.default_rng().random(4)
    minicnn.seed(5)
    np.testing.assert_array_equal(a, backend.default_rng().random(4))


def test_manual_seed_is_torchs_name_for_seed_and_covers_weights_dropout_and_randn():
    def draw():
        return (minicnn.nn.Linear(3, 2).weight.detach().numpy().copy(), minicnn.randn(4).numpy(),
                minicnn.nn.Dropout(0.5)(np.ones((4, 4), np.float32)).numpy())
    minicnn.manual_seed(7)
    first = draw()
    minicnn.seed(7)
    for a, b in zip(first, draw()):
        np.testing.assert_array_equal(a, b)


def test_to_numpy_and_to_device_accept_tensors_and_keep_their_dtype():
    t = minicnn.tensor(np.arange(3, dtype=np.float32), requires_grad=True)
    out = backend.to_numpy(t)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, [0.0, 1.0, 2.0])
    assert backend.to_device(t).dtype == np.float32
    assert backend.get_array_module(t.array) is np


# -- the NumPy/CuPy seam ---------------------------------------------------------------------

ARRAY_MODULE_SOURCES = ("get_xp", "get_array_module")


def _dotted(node):
    """'random.seed' for xp.random.seed: the attribute chain after the array module, or None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    is_module = (isinstance(node, ast.Name) and node.id == "xp") or (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ARRAY_MODULE_SOURCES)
    return ".".join(reversed(parts)) if is_module and parts else None


def engine_sources():
    """The engine's modules that run on either backend (the data loaders read files with NumPy on the host)."""
    return [p for p in sorted(ENGINE.rglob("*.py")) if "data" not in p.relative_to(ENGINE).parts[:1]]


def array_module_calls():
    """{'zeros', 'random.seed', ...}: every name the engine looks up on an array module."""
    names = {}
    for path in engine_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and not isinstance(getattr(node, "ctx", None), ast.Store):
                name = _dotted(node)
                if name:
                    # keep the longest chain only: 'random.seed' covers 'random'
                    names.setdefault(name, str(path.relative_to(ENGINE.parent)))
    return {n: where for n, where in names.items() if not any(o.startswith(n + ".") for o in names)}


def array_method_names():
    """Attribute names used anywhere in the engine that are also ndarray attributes (x.reshape, x.T, ...)."""
    ndarray_attrs = set(dir(np.ndarray))
    found = {}
    for path in engine_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ndarray_attrs and not node.attr.startswith("_"):
                found.setdefault(node.attr, str(path.relative_to(ENGINE.parent)))
    return found


def test_the_scan_finds_the_array_module_calls_it_should():
    names = array_module_calls()
    assert {"zeros", "exp", "pad", "where"} <= set(names)  # a scan that found nothing would prove nothing


def test_every_array_module_function_the_engine_calls_exists_in_cupy():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    missing = []
    for name, where in sorted(array_module_calls().items()):
        obj = cupy
        for part in name.split("."):
            if not hasattr(obj, part):
                missing.append(f"xp.{name} ({where})")
                break
            obj = getattr(obj, part)
    assert not missing, f"not in CuPy: {missing}"


def test_every_array_method_the_engine_uses_exists_on_cupy_arrays():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    methods = array_method_names()
    assert {"reshape", "transpose", "sum"} <= set(methods)
    missing = [f"{name} ({where})" for name, where in sorted(methods.items()) if not hasattr(cupy.ndarray, name)]
    assert not missing, f"not on cupy.ndarray: {missing}"


def test_only_backend_py_imports_cupy():
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        if path.name == "backend.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "cupy" for a in node.names):
                offenders.append(str(path))
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "cupy":
                offenders.append(str(path))
    assert not offenders


def test_the_engine_never_uses_add_at():
    uses = [str(p) for p in engine_sources() if ".add.at(" in p.read_text()]
    assert not uses
