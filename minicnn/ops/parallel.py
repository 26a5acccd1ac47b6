"""Work cut over the batch and run on threads, for the fast paths only.

NumPy lets go of Python's lock (the GIL) inside copies, ufuncs and matrix products, so the two
halves of one convolution, one product or one np.tanh run on two cores at once with plain threads.

    split(fn, n, like)   calls fn(start, stop) on the parts of range(n), the parts on threads

fn must write only its own part of the result (rows start:stop of some axis), so the parts never
touch the same memory. A part that sums (a convolution's dW over its images) keeps its own sum, and
the caller adds the parts' sums in order: the numbers are the same in every run on a given number
of threads, and agree to float rounding with another number of threads.

What runs on the threads (the fast paths): conv2d's image blocks (forward and backward), Linear's
products, batch norm's channels (training mode), tanh and relu, pooling, and the optimizers'
updates of big parameters. Everything else runs on the calling thread.

BLAS: while minicnn uses more than one thread, NumPy's BLAS runs each product on one thread
(minicnn tells it so through threadpoolctl, an optional package: pip install minicnn[fast]). Each
core then runs one part. Left to itself, OpenBLAS would run every product on all cores and keep
its threads spinning for a while after each, fighting the other part for the cores (measured:
that made two threads slower than one). set_num_threads(1) gives BLAS back the threads it had.
Without threadpoolctl minicnn cannot do this, so it then uses one thread unless told otherwise.

Small jobs are not cut (handing a part to a thread costs about 25 microseconds here, and the parts'
Python code takes turns on the GIL), nor arrays on the GPU (CuPy runs them there, asynchronously),
nor work inside a part (no nesting), nor the work of a second program thread while one is cutting
(it runs whole on its own thread). The number of threads is torch's: minicnn.set_num_threads(n) /
minicnn.get_num_threads(); the default is one per core this process may run on.
"""

import os
import threading

# A job smaller than this runs on one thread: MIN_COPY and MIN_COMPUTE count elements of its biggest
# array (copies are bound by memory, which two threads share; ufuncs that compute, like tanh, gain
# sooner), MIN_PRODUCT multiply-adds. Chosen from whole steps on 2 cores, float32, in one process
# (benchmarks/threads_bench.py): with sizes 4-8x lower, LeNet-5 at batch 16 ran 10-40% slower on two
# threads than on one (a part handed to the other core costs 0.1-0.3 ms here, waking it included).
MIN_COPY = 1 << 18
MIN_COMPUTE = 1 << 17
MIN_PRODUCT = 1 << 22


def _blas():
    """threadpoolctl's controllers of NumPy's own BLAS (not torch's), or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    import numpy
    found = ThreadpoolController().select(user_api="blas").lib_controllers
    home = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))  # site-packages
    own = [c for c in found if os.path.abspath(c.filepath or "").startswith(os.path.join(home, "numpy"))]
    return own or found  # a NumPy built on the system's BLAS: that one


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_state = {"threads": None, "pool": None, "blas": None, "blas_threads": None}
_local = threading.local()  # .inside: this thread is running a part


def _blas_controllers():
    if _state["blas"] is None:
        _state["blas"] = _blas() or []
    return _state["blas"]


def set_num_threads(n):
    """How many threads the fast paths may use (torch.set_num_threads). 1 turns the cutting off and
    gives NumPy's BLAS back the threads it had."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    _shutdown()
    _use_threads(n)


def get_num_threads():
    """How many threads the fast paths may use (torch.get_num_threads). Default: one per core, or 1
    without threadpoolctl (see the module's docstring)."""
    if _state["threads"] is None:
        _use_threads(_cores() if _blas_controllers() else 1)
    return _state["threads"]


def _use_threads(n):
    """n threads for minicnn; NumPy's BLAS on one thread while n > 1 (minicnn cuts the products
    itself), and on the threads it had before when n = 1."""
    if _state["blas_threads"] is None:
        _state["blas_threads"] = [c.get_num_threads() for c in _blas_controllers()]
    for c, before in zip(_blas_controllers(), _state["blas_threads"]):
        c.set_num_threads(1 if n > 1 else before)
    _state["threads"] = n


def parts(n, size, like, min_size=None):
    """How many parts to cut a job of n rows into: size is its element count, like one of its arrays."""
    min_size = MIN_COMPUTE if min_size is None else min_size
    if n < 2 or size < min_size or getattr(_local, "inside", False):
        return 1
    if type(like).__module__.split(".")[0] != "numpy":
        return 1
    return min(get_num_threads(), n)


def split(fn, n, like, size=None, min_size=None, k=None):
    """fn(start, stop) for the parts of range(n); this thread runs the first part, the pool the rest.

    size: the job's element count (default: like.size); min_size: the smallest job worth cutting
    (MIN_COMPUTE when None); k: the number of parts, when the caller has asked parts() already.
    Every part has finished when split returns, and an error raised in any part is raised here.
    """
    if k is None:
        k = parts(n, like.size if size is None else size, like, min_size)
    if k == 1:
        fn(0, n)
        return
    if not _busy.acquire(blocking=False):  # another thread of the program is splitting: run inline
        fn(0, n)
        return
    try:
        _run_parts(fn, [n * p // k for p in range(k + 1)])
    finally:
        _busy.release()


def _run_parts(fn, bounds):
    workers = _workers(len(bounds) - 2)
    for p, worker in enumerate(workers, start=1):
        worker.start(fn, bounds[p], bounds[p + 1])
    errors = []
    try:
        _part(fn, bounds[0], bounds[1])
    except BaseException as e:
        errors.append(e)
    try:
        errors += [e for e in (w.wait() for w in workers) if e is not None]  # no part outlives the call
    except BaseException:  # interrupted while waiting (Ctrl-C): a worker may still be running its part
        _abandon(workers)
        raise
    if errors:
        raise errors[0]


def _abandon(workers):
    """Take workers out of the pool and tell each to stop after its part: a worker whose end nobody
    waited for must never serve a later split (its 'done' would be read as the end of a new part)."""
    _state["pool"] = [w for w in _state["pool"] if w not in workers]
    for w in workers:
        w.job = None
        try:
            w.go.release()
        except RuntimeError:  # it has not taken its turn yet: it will, find no job, and stop
            pass


def _part(fn, start, stop):
    _local.inside = True
    try:
        fn(start, stop)
    finally:
        _local.inside = False


class _Worker:
    """A thread that runs one part at a time: start() hands it a part, wait() waits for its end and
    returns its error (or None). Two locks pass the turn (go, done): a lighter hand-off than a thread
    pool's queue and futures (25 against 62 microseconds a round trip, measured here)."""

    def __init__(self):
        self.go, self.done = threading.Lock(), threading.Lock()
        self.go.acquire()
        self.done.acquire()
        self.job = self.error = None
        self.thread = threading.Thread(target=self._loop, name="minicnn", daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            self.go.acquire()
            job, self.job = self.job, None
            if job is None:  # stop()
                return
            try:
                _part(*job)
            except BaseException as e:
                self.error = e
            self.done.release()

    def start(self, fn, start, stop):
        self.error, self.job = None, (fn, start, stop)
        self.go.release()

    def wait(self):
        self.done.acquire()
        error, self.error = self.error, None
        return error

    def stop(self):
        self.job = None
        self.go.release()
        self.thread.join()


_busy = threading.Lock()  # held while a split hands parts to the workers


def _after_fork_in_child():
    """A forked child (a DataLoader worker) has none of the parent's threads: new lock, no workers."""
    global _busy
    _busy = threading.Lock()
    _state["pool"] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _workers(count):
    """count workers of this process, made when first asked for."""
    if _state["pool"] is None:
        _state["pool"] = []
    pool = _state["pool"]
    while len(pool) < count:
        pool.append(_Worker())
    return pool[:count]


def _shutdown():
    with _busy:  # not while a split runs
        for worker in _state["pool"] or ():
            worker.stop()
        _state["pool"] = None


def _flat(a):
    """A 1-D view of a's memory, walked in a's own axis order (largest stride first), or None when
    a does not fill one block of memory (a strided slice)."""
    order = sorted(range(a.ndim), key=lambda k: -abs(a.strides[k]))
    t = a.transpose(order)
    return t.reshape(-1) if t.flags.c_contiguous else None


def elementwise(fn, out, *inputs):
    """fn(out_part, *input_parts) on matching parts of arrays of one shape, on threads. fn may write
into any of them (an optimizer updates its state in place; a work array can be one of the inputs).

    The parts are runs of memory, so an array laid out as (C, N, H, W) behind an (N, C, H, W)
    view is cut as well as a plain one. When the arrays are not laid out alike (or are small, or on
    the GPU), fn runs once on the whole arrays.
    """
    if parts(out.size, out.size, out) > 1:
        flats = [_flat(a) for a in (out,) + inputs]
        same_order = _alike(out, inputs)  # strides in proportion to the item sizes (a bool mask beside float32)
        if same_order and all(f is not None for f in flats):
            split(lambda i, j: fn(*(f[i:j] for f in flats)), out.size, out)
            return out
    fn(out, *inputs)
    return out


def _alike(out, inputs):
    """Arrays of one shape, laid out alike: strides in proportion to the item sizes."""
    return all(a.shape == out.shape and all(sa * out.itemsize == so * a.itemsize for sa, so in zip(a.strides, out.strides))
               for a in inputs)
