"""The one seam between NumPy and CuPy.

Every other file gets its array module from the data it is handed
(``xp = get_array_module(x)``) or from the active backend (``get_xp()``), and
uses only functions that NumPy and CuPy both have. This is the only file that
imports CuPy.

    >>> import minicnn
    >>> minicnn.use("numpy")        # the default
    >>> minicnn.use("cupy")         # or MINICNN_BACKEND=cupy in the environment
"""

import os

import numpy as np

BACKENDS = ("numpy", "cupy")

_first_seed = int(np.random.SeedSequence().entropy % (2 ** 32))  # torch.initial_seed() before any seeding
_state = {"name": "numpy", "xp": np, "rng": np.random.default_rng(_first_seed), "seed": _first_seed}


class BackendError(RuntimeError):
    """The requested backend cannot be used on this machine."""


def _load_cupy():
    """Import CuPy and make sure a GPU answers, or say exactly what is missing."""
    try:
        import cupy
    except ImportError as exc:
        raise BackendError(
            "the 'cupy' backend needs CuPy, which is not installed. Install the wheel "
            "that matches your CUDA version, e.g. `pip install cupy-cuda12x` "
            "(or `pip install minicnn[gpu]`), or use the 'numpy' backend."
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken: CuPy raises its own types
        raise BackendError(
            f"CuPy is installed but no usable GPU was found ({type(exc).__name__}: {exc}). "
            "Check the NVIDIA driver with `nvidia-smi`, or use the 'numpy' backend."
        ) from exc
    if count == 0:
        raise BackendError(
            "CuPy is installed but reports 0 GPUs. Run on a machine with an NVIDIA GPU, "
            "or use the 'numpy' backend."
        )
    return cupy


def use(name):
    """Select the backend for new arrays: 'numpy' (default) or 'cupy'."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: expected one of {BACKENDS}")
    _state["xp"] = _load_cupy() if name == "cupy" else np
    _state["name"] = name


def backend_name():
    """The name of the active backend: 'numpy' or 'cupy'."""
    return _state["name"]


def get_xp():
    """The array module of the active backend (numpy or cupy)."""
    return _state["xp"]


def get_array_module(*arrays):
    """numpy or cupy, whichever the given arrays live in (numpy for plain Python data)."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            return _state["xp"] if _state["name"] == "cupy" else _load_cupy()
    return np


def is_cupy_array(x):
    return type(x).__module__.startswith("cupy")


def to_numpy(x):
    """A NumPy array with the data of x (copied back from the GPU if needed); x may be a Tensor."""
    x = getattr(x, "array", x)
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def to_device(x, dtype=None):
    """x as an array of the active backend (copied to the GPU if that is active); x may be a Tensor."""
    x = getattr(x, "array", x)
    xp = _state["xp"]
    if xp is np:
        return np.asarray(to_numpy(x), dtype=dtype)
    return xp.asarray(x, dtype=dtype)


def seed(s=None):
    """Seed minicnn's host generator (initial weights, dropout masks) and, on the
    GPU backend, CuPy's. With no seed, as torch.seed(): a fresh one from the OS, returned."""
    if s is None:
        s = int(np.random.SeedSequence().entropy % (2 ** 32))
    _state["rng"] = np.random.default_rng(s)
    _state["seed"] = s
    np.random.seed(s % 2 ** 32)  # the legacy global one takes 32 bits
    if _state["name"] == "cupy":
        _state["xp"].random.seed(s)
    return s


def initial_seed():
    """The seed the global generator was last seeded with (torch.initial_seed)."""
    return _state["seed"]


def default_rng(s=None):
    """A NumPy Generator: the global one seeded by seed() when s is None, else a new one.

    Initial weights and data order are drawn on the host, so the same seed gives
    the same model on either backend.
    """
    return _state["rng"] if s is None else np.random.default_rng(s)


def _from_environment():
    name = os.environ.get("MINICNN_BACKEND", "").strip().lower()
    if name:
        use(name)


_from_environment()
