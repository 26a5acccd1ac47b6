"""What the tests against torch share: the tolerances, the seed strategy, and one comparison of a
minicnn result (a Tensor or an array) with torch's (a torch Tensor): dtype, shape, then values."""

import numpy as np
from hypothesis import strategies as st

import minicnn as mc
from minicnn.backend import to_numpy

# float32: rtol 1e-5, and atol 1e-5 scaled by the largest expected magnitude (at least 1), since a
# float32 sum of tens of O(1) terms that cancels down to a small entry keeps its big terms' error.
TOL = {np.dtype("float64"): dict(rtol=1e-10, atol=1e-10), np.dtype("float32"): dict(rtol=1e-5, atol=1e-5)}
seeds = st.integers(0, 2**32 - 1)


def torch_dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def assert_close(actual, expected, rtol, atol):
    """Element-wise within rtol, and within atol scaled by the largest finite expected magnitude (at least 1)."""
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale)


def assert_same(ours, ref):
    """ours (a minicnn Tensor or an engine array) has the dtype, shape and values (NaN where NaN)
    of ref (a torch Tensor): floats within TOL, everything else exactly."""
    actual = to_numpy(ours.array if isinstance(ours, mc.Tensor) else ours)
    expected = ref.detach().numpy()
    assert str(actual.dtype) == torch_dtype_name(ref.dtype), f"dtype {actual.dtype}, torch gives {ref.dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape}, torch gives {expected.shape}"
    if actual.dtype.kind == "f":
        assert_close(actual, expected, **TOL[actual.dtype])
    else:
        np.testing.assert_array_equal(actual, expected)
