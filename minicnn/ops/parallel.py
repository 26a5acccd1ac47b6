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

MIN_ELEMENTS = 1 << 15  # a job this small (in elements of its biggest array) runs on one thread

_state = {"threads": max(1, min(os.cpu_count() or 1, 8)), "pool": None, "pid": None}
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


def parts(n, size, like):
    """How many parts to cut a job of n rows into: size is its element count, like one of its arrays."""
    if _state["threads"] < 2 or n < 2 or size < MIN_ELEMENTS or getattr(_local, "inside", False):
        return 1
    if type(like).__module__.split(".")[0] != "numpy":
        return 1
    return min(_state["threads"], n)


def split(fn, n, like, size=None):
    """fn(start, stop) for the parts of range(n); this thread runs the first part, the pool the rest.

    size: the job's element count (default: like.size). Every part has finished when split returns,
    and an error raised in any part is raised here.
    """
    k = parts(n, like.size if size is None else size, like)
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
