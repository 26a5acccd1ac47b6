"""Work cut over the batch and run on threads, for the fast paths only.

NumPy lets go of Python's lock (the GIL) inside copies and ufuncs, so the two halves of one
big copy, or of one np.tanh, run on two cores at once with plain threads and no new
dependency. The matrix products need none of this: NumPy's BLAS already uses every core.

    split(fn, n, like)   calls fn(start, stop) on the parts of range(n), the parts on threads

fn must write only its own part of the result (rows start:stop of some axis), so the parts never
touch the same memory; then the result does not depend on how many parts there were.

Small jobs are not cut (handing a part to a thread costs some tens of microseconds), nor
arrays on the GPU (CuPy runs them there, asynchronously), nor work inside a part (no nesting).
The number of threads is torch's: minicnn.set_num_threads(n) / minicnn.get_num_threads().
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

# A job smaller than this (in elements of its biggest array) runs on one thread. Copies are bound by
# memory, and two threads share its bandwidth: they gain only on big ones. Ufuncs that compute (tanh)
# gain from a smaller size on. Measured on 2 cores, float32 (benchmarks/layer_bench.py).
MIN_COPY = 1 << 20
MIN_COMPUTE = 1 << 16

# One thread (no cutting) unless asked: on the 2-core machine measured, a second thread lost time in
# every training and inference step (OpenBLAS's threads keep spinning on the other core after each
# product, so the two fight for it; see the README's "Threads"). Where it pays, set_num_threads(n).
_state = {"threads": 1, "pool": None, "pid": None}
_local = threading.local()  # .inside: this thread is running a part


def set_num_threads(n):
    """How many threads the fast paths may use (torch.set_num_threads). 1 turns the cutting off."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    _state["threads"] = n
    _shutdown()


def get_num_threads():
    """How many threads the fast paths may use (torch.get_num_threads)."""
    return _state["threads"]


def parts(n, size, like, min_size=None):
    """How many parts to cut a job of n rows into: size is its element count, like one of its arrays."""
    min_size = MIN_COMPUTE if min_size is None else min_size
    if _state["threads"] < 2 or n < 2 or size < min_size or getattr(_local, "inside", False):
        return 1
    if type(like).__module__.split(".")[0] != "numpy":
        return 1
    return min(_state["threads"], n)


def split(fn, n, like, size=None, min_size=None):
    """fn(start, stop) for the parts of range(n); this thread runs the first part, the pool the rest.

    size: the job's element count (default: like.size); min_size: the smallest job worth cutting
    (MIN_COPY, or MIN_COMPUTE when None). Every part has finished when split returns, and an error raised in
    any part is raised here.
    """
    k = parts(n, like.size if size is None else size, like, min_size)
    if k == 1:
        fn(0, n)
        return
    bounds = [n * p // k for p in range(k + 1)]
    futures = [_pool().submit(_part, fn, bounds[p], bounds[p + 1]) for p in range(1, k)]
    try:
        _part(fn, bounds[0], bounds[1])
    finally:
        for f in futures:  # wait for all before any error goes up: no part may outlive the call
            f.exception()
    for f in futures:
        f.result()


def _part(fn, start, stop):
    _local.inside = True
    try:
        fn(start, stop)
    finally:
        _local.inside = False


def _pool():
    # A forked child (a DataLoader worker) inherits the pool object but not its threads: make a new one.
    if _state["pool"] is None or _state["pid"] != os.getpid():
        _state["pool"] = ThreadPoolExecutor(_state["threads"] - 1, thread_name_prefix="minicnn")
        _state["pid"] = os.getpid()
    return _state["pool"]


def _shutdown():
    if _state["pool"] is not None and _state["pid"] == os.getpid():
        _state["pool"].shutdown(wait=True)
    _state["pool"] = None


def _flat(a):
    """A 1-D view of a's memory, walked in a's own axis order (largest stride first), or None when
    a does not fill one block of memory (a strided slice)."""
    order = sorted(range(a.ndim), key=lambda k: -abs(a.strides[k]))
    t = a.transpose(order)
    return t.reshape(-1) if t.flags.c_contiguous else None


def elementwise(fn, out, *inputs):
    """fn(out_part, *input_parts) on matching parts of arrays of one shape, on threads.

    The parts are runs of memory, so an array laid out as (C, N, H, W) behind an (N, C, H, W)
    view is cut as well as a plain one. When the arrays are not laid out alike (or are small, or on
    the GPU), fn runs once on the whole arrays.
    """
    if parts(out.size, out.size, out) > 1 and all(a.shape == out.shape for a in inputs):
        flats = [_flat(a) for a in (out,) + inputs]
        same_order = all(a.strides == out.strides for a in inputs)
        if same_order and all(f is not None for f in flats):
            split(lambda i, j: fn(*(f[i:j] for f in flats)), out.size, out)
            return out
    fn(out, *inputs)
    return out
