"""DataLoader: a data set cut into mini-batches of Tensors on the active backend, as torch's.

The order is reproducible: the permutation of epoch e is a pure function of (seed, e), drawn
from np.random.default_rng([seed, e]); so are the random transforms of batch k, which draw
from default_rng([seed, e, k]). A run resumed at epoch k (`loader.set_epoch(k)`, or
`load_state_dict`) therefore sees exactly the batches an uninterrupted run would have seen,
and so does a loader with another num_workers.

Two ways to build a batch, with the same result:
  - the array data sets (ArrayDataset, MNIST, CIFAR10, TensorDataset, and Subsets of them, so
    random_split too) gather the whole batch by index, uint8 on the host, then move it and
    apply their transform's batch form to it at once (see transforms.py);
  - any other map-style data set (an object with __getitem__ and __len__), or one whose
    transform works only per sample, is read sample by sample, ds[i] (or ds.__getitems__),
    and the samples are stacked by collate_fn (default: default_collate).

    >>> loader = DataLoader(MNIST("data", transform=ToTensor()), batch_size=64, shuffle=True, seed=0)
    >>> for x, y in loader:      # x float32 Tensor (B, 1, 28, 28) in [0, 1], y int64 Tensor (B,)
    ...     ...
"""

import collections
import concurrent.futures
import itertools
import math
import numbers

import numpy as np

from .._tensor import Tensor
from .collate import default_collate
from .dataset import generator_rng
from .datasets import ArrayDataset
from .transforms import drawing_from


class DataLoader:
    """Iterate over the batches of a data set: for (x, y) samples, [x (B, ...), y (B,)] Tensors.

    torch's arguments, in torch's order:
    dataset         a map-style data set (anything with __getitem__ and __len__), or a pair
                    (images, labels) of arrays, taken as ArrayDataset(images, labels)
    batch_size      samples per batch (default 1, as torch)
    shuffle         a new permutation each epoch, from (seed, epoch); otherwise the stored order
    sampler         an iterable of indices giving the order instead (then shuffle must be False)
    batch_sampler   an iterable of lists of indices, one per batch (then no batch_size, shuffle,
                    sampler or drop_last)
    num_workers     0: batches are built in this thread. n > 0: n threads build whole batches
                    ahead (up to prefetch_factor * n of them; default 2 * n), served in order and
                    identical to those of num_workers=0. Threads, not processes: they help when
                    loading waits for disk or for code that releases the GIL (NumPy on big arrays,
                    Pillow), not for small per-sample Python transforms.
    collate_fn      list of samples -> batch (default: default_collate); giving one turns off the
                    whole-batch path of the array data sets
    pin_memory      accepted and ignored: batches go straight to the active backend
    drop_last       leave out the last, smaller batch
    timeout         with num_workers > 0: seconds to wait for a batch before a RuntimeError (0: forever)
    worker_init_fn  with num_workers > 0: called as worker_init_fn(worker_id) in each thread first
    generator       where seed=None draws the loader's seed from (None: minicnn's global generator,
                    seeded by minicnn.manual_seed; also an int, a NumPy Generator, or an object with
                    initial_seed())
    multiprocessing_context, persistent_workers, pin_memory_device, in_order: accepted; they do not
                    change anything here (threads are made each epoch; batches are always in order)

    minicnn's own, keyword-only:
    seed            int >= 0 for the order and the augmentations; None draws one from `generator`
                    (kept in .seed and in state_dict())
    transform       a batch transform applied to x of every batch after the data set's own: a
                    transform with a batch form (transforms.Normalize, Compose, ...) or a function
                    f(x, rng) of the float32 array batch (B, C, H, W) and a NumPy Generator
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True, seed=None, transform=None):
        if isinstance(dataset, (tuple, list)):
            dataset = ArrayDataset(*dataset)
        if not callable(getattr(dataset, "__getitem__", None)):
            raise TypeError(f"DataLoader: expected a map-style data set (with __getitem__ and __len__), such as "
                            f"ArrayDataset(images, labels) or TensorDataset(x, y); got {type(dataset).__name__}")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size = None
        elif not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}"
                             + ("; batch_size=None (no batching) is not supported" if batch_size is None else ""))
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if sampler is None and batch_sampler is None and not hasattr(dataset, "__len__"):
            raise TypeError(f"DataLoader: the data set {type(dataset).__name__} has no __len__; give it one, "
                            "or pass a sampler")
        if not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to load in this thread.")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified with num_workers > 0, "
                             "otherwise set prefetch_factor to None.")
        if num_workers == 0 and persistent_workers:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if seed is None:
            seed = int(generator_rng(generator, "DataLoader").integers(2 ** 63))
        if not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative int or None, got {seed!r}")
        self.dataset, self.drop_last = dataset, drop_last
        self.batch_size = None if batch_size is None else int(batch_size)
        self.shuffle, self.sampler, self.batch_sampler = bool(shuffle), sampler, batch_sampler
        self.num_workers, self.prefetch_factor = int(num_workers), prefetch_factor or 2
        self.collate_fn, self.timeout, self.worker_init_fn = collate_fn, timeout, worker_init_fn
        self.pin_memory, self.generator = pin_memory, generator
        self.seed, self.transform = int(seed), transform
        self.epoch = 0  # the epoch the next iteration serves

    def __len__(self):
        """The number of batches in one epoch."""
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch):
        """Make the next iteration serve epoch `epoch` (its order and its augmentations)."""
        self.epoch = int(epoch)

    def state_dict(self):
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def order(self, epoch):
        """The sample indices of epoch `epoch`, in the order they are served (N,) int64."""
        if self.sampler is not None:
            return np.fromiter((int(i) for i in self.sampler), dtype=np.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def index_batches(self, epoch):
        """The indices of each batch of epoch `epoch`: a list of int64 arrays."""
        if self.batch_sampler is not None:
            return [np.asarray([int(i) for i in b], dtype=np.int64) for b in self.batch_sampler]
        order, b = self.order(epoch), self.batch_size
        count = len(order) // b if self.drop_last else math.ceil(len(order) / b)
        return [order[k * b:(k + 1) * b] for k in range(count)]

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1  # counted at the start, so a loop left early still moves on
        batches = self.index_batches(epoch)

        def make(k):
            return self._batch(batches[k], np.random.default_rng([self.seed, epoch, k]))

        if self.num_workers == 0:
            return (make(k) for k in range(len(batches)))
        return self._in_threads(make, len(batches))

    def _batch(self, indices, rng):
        """One batch: gathered whole by the array data sets when they can, else sample by sample."""
        gather = getattr(self.dataset, "_gather", None) if self.collate_fn is None else None
        batch = gather(indices, rng) if gather is not None else None
        if batch is None:
            with drawing_from(rng):  # per-sample random transforms draw from this batch's generator
                many = getattr(self.dataset, "__getitems__", None)
                samples = many(indices.tolist()) if callable(many) else [self.dataset[int(i)] for i in indices]
            batch = (self.collate_fn or default_collate)(samples)
        if self.transform is not None:
            batch = self._loader_transform(batch, rng)
        return batch

    def _loader_transform(self, batch, rng):
        """The `transform=` argument applied to x, the first element of the batch."""
        if not isinstance(batch, (list, tuple)) or not isinstance(batch[0], Tensor):
            raise TypeError("DataLoader: transform= applies to x of (x, ...) batches, but this batch is a "
                            f"{type(batch).__name__}; put the transform in the data set instead")
        x = batch[0]
        if callable(getattr(self.transform, "batch", None)):
            x = self.transform.batch(x, rng)
        else:
            x = self.transform(x.array, rng)
        x = x if isinstance(x, Tensor) else Tensor._wrap(x)
        return type(batch)([x, *batch[1:]]) if isinstance(batch, list) else (x, *batch[1:])

    def _in_threads(self, make, n):
        """make(0), ..., make(n - 1), built by num_workers threads at most prefetch ahead, yielded in order."""
        ids = itertools.count()

        def init():
            if self.worker_init_fn is not None:
                self.worker_init_fn(next(ids))

        ahead = self.num_workers * self.prefetch_factor
        with concurrent.futures.ThreadPoolExecutor(self.num_workers, initializer=init) as pool:
            pending, k = collections.deque(), 0
            try:
                while k < n or pending:
                    while k < n and len(pending) < ahead:
                        pending.append(pool.submit(make, k))
                        k += 1
                    try:
                        yield pending.popleft().result(timeout=self.timeout or None)
                    except concurrent.futures.TimeoutError:
                        raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds") from None
            finally:  # also when the loop over the loader stops early
                for future in pending:
                    future.cancel()

    def __repr__(self):
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"seed={self.seed})")
