"""Matrix products cut into pieces small enough for OpenBLAS's small-matrix kernel.

OpenBLAS 0.3 with its SkylakeX kernels (what NumPy's wheels pick on AVX-512 CPUs, Intel's and
AMD's alike) runs a product of fewer than 100**3 multiply-adds by a kernel that works on the
operands where they lie, without packing them first. On the skinny products of a convolution that
kernel is much the faster one. Measured on one thread (AMD EPYC with AVX-512, float32), GFLOP/s
just under and just over the line:

    W (16, 144) @ col (144, m)    107 -> 81      W (6, 25) @ col (25, m)    100 -> 45
    W (32, 96) @ col (96, m)      107 -> 86      W (64, 64) @ col (64, m)   106 -> 89

So a product with many output columns and two small sizes (a convolution's W (OC, K) @ col (K, m))
runs faster as pieces of its columns, each under the line:

    matmul(a, b, out)      out = a @ b, in pieces of b's and out's columns

and one summed over a long inner axis (dW = col (K, L) @ dout (L, OC)) as pieces of that axis:

    matmul_sum(a, b)       a @ b, the pieces of the inner axis summed in order (a new array)

In place, 2 threads, this made the im2col forward of LeNet-5's two convolutions and of the CIFAR
CNN's first 1.1-1.4x faster, and LeNet-5's dW too (benchmarks/PERFORMANCE.md); ResNet-20's
products are mostly too wide to cut. A piece is at least MIN_PIECE columns: under that the calls'
own cost takes back what the kernel gains, and the product runs whole. So it does on CuPy, and where
NumPy's BLAS is not OpenBLAS with one of SMALL_KERNELS (or threadpoolctl, which tells, is missing).
"""

from .. import backend

SMALL = 100 ** 3  # multiply-adds: OpenBLAS's small-matrix kernel takes products under this
MIN_PIECE = 256  # columns (or inner values) a piece has at least
SMALL_KERNELS = ("skylakex", "cooperlake", "sapphirerapids")  # OpenBLAS cores that have that kernel

_state = {"small": None}


def _has_small_kernel():
    """Whether NumPy's BLAS is an OpenBLAS running one of SMALL_KERNELS (asked once)."""
    if _state["small"] is None:
        from . import parallel
        _state["small"] = any(getattr(c, "internal_api", "") == "openblas"
                              and str(getattr(c, "architecture", "")).lower() in SMALL_KERNELS
                              for c in parallel._blas_controllers())
    return _state["small"]


def _piece(a, other):
    """Columns per piece for a product whose two other sizes multiply to `other`, or 0 (run whole)."""
    if backend.get_array_module(a).__name__ != "numpy" or not _has_small_kernel():
        return 0
    per = -(-SMALL // other) - 1  # the most columns that keep a piece under SMALL
    return per if per >= MIN_PIECE else 0


def matmul(a, b, out):
    """out (..., M, N) := a (..., M, K) @ b (..., K, N), in pieces of N under the small kernel's line;
    returns out."""
    M, K = a.shape[-2:]
    N = b.shape[-1]
    per = _piece(a, M * K)
    xp = backend.get_array_module(a)
    if not per or N <= per:
        return xp.matmul(a, b, out=out)
    count = -(-N // per)
    for i in range(count):  # pieces of about equal size
        s, e = N * i // count, N * (i + 1) // count
        xp.matmul(a, b[..., s:e], out=out[..., s:e])
    return out


def matmul_sum(a, b):
    """a (..., M, L) @ b (..., L, N) as a new array, in pieces of L under the small kernel's line,
    their products summed in order."""
    xp = backend.get_array_module(a)
    M, L = a.shape[-2:]
    N = b.shape[-1]
    per = _piece(a, M * N)
    if not per or L <= per:
        return a @ b
    count = -(-L // per)
    total, part = None, None
    for i in range(count):
        s, e = L * i // count, L * (i + 1) // count
        if total is None:
            total = a[..., s:e] @ b[..., s:e, :]
            part = xp.empty_like(total)
        else:
            xp.matmul(a[..., s:e], b[..., s:e, :], out=part)
            total += part
    return total
