"""Shared fixtures for the engine tests.

`backend` runs a test once per array backend: always on NumPy, and on CuPy when a GPU
answers. Without a GPU the CuPy variant is reported as skipped ('no GPU: ...'), never
silently dropped. Tests build their data with NumPy, move it with
minicnn.backend.to_device, and bring results back with minicnn.backend.to_numpy
before comparing with torch.
"""

import os

# The engine tests multiply tiny matrices: extra BLAS threads only fight each other for the
# cores (ten times slower on a busy 2-core machine). Set before NumPy and torch load.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

import minicnn  # noqa: E402
from minicnn import backend as B  # noqa: E402

# The `backend` fixture only switches minicnn's active backend, so sharing it across
# the examples of one hypothesis test is safe.
# CI draws the same examples on every run (derandomize), so a result can be reproduced and a
# clean run is not a matter of luck; MINICNN_HYPOTHESIS=random draws fresh ones, to look further.
_common = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("minicnn", derandomize=True, **_common)
settings.register_profile("random", **_common)
settings.load_profile("random" if os.environ.get("MINICNN_HYPOTHESIS") == "random" else "minicnn")


def _gpu_status():
    """(True, '') when CuPy imports and sees a GPU, else (False, why not)."""
    try:
        import cupy
    except Exception as exc:  # not installed, or a broken install
        return False, f"no GPU: CuPy cannot be imported ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing
        return False, f"no GPU: CuPy finds no CUDA device ({type(exc).__name__}: {exc})"
    if count == 0:
        return False, "no GPU: CuPy reports 0 devices"
    return True, ""


GPU_AVAILABLE, NO_GPU_REASON = _gpu_status()


@pytest.fixture(params=["numpy", "cupy"])
def backend(request):
    """The array module of the backend under test (numpy, or cupy when a GPU answers)."""
    if request.param == "cupy" and not GPU_AVAILABLE:
        pytest.skip(NO_GPU_REASON)
    minicnn.use(request.param)
    yield B.get_xp()
    minicnn.use("numpy")


@pytest.fixture(autouse=True)
def _thread_count_after_each_test():
    """A test that sets minicnn's thread count (or BLAS's, through it) never leaks it into the next."""
    before = minicnn.get_num_threads()
    yield
    minicnn.set_num_threads(before)  # always: it also puts NumPy's BLAS back as minicnn wants it


@pytest.fixture(autouse=True)
def _numpy_backend_after_each_test():
    """A test that switches backends (or fails half-way) never leaks its choice into the next."""
    yield
    if B.backend_name() != "numpy":
        minicnn.use("numpy")
