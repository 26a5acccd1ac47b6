"""torch.utils.data's map-style data sets: Dataset, TensorDataset, Subset, ConcatDataset, random_split.

A map-style data set is any object with `__getitem__(i)` and `__len__()`; the DataLoader builds
its batches by calling `ds[i]` for each index and stacking the samples (collate.py).

The array data sets (ArrayDataset, MNIST, CIFAR10, ...) and TensorDataset also know how to gather
a whole batch at once: `ds._gather(indices, rng)` returns the collated batch, or None when it
cannot (a transform without a batch form, a subclass with its own __getitem__). A Subset (and so
random_split) passes that on to the data set below it, so splitting a data set keeps the fast path.
"""

import bisect
import itertools
import math
import numbers
import warnings

import numpy as np

from .._tensor import Tensor
from ..backend import default_rng, get_array_module, to_device


class Dataset:
    """The base of map-style data sets: subclasses define __getitem__(index) and __len__().

    `a + b` is ConcatDataset([a, b]), as in torch.
    """

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


def _rows(t):
    return t.shape[0] if getattr(t, "ndim", 0) else None


class TensorDataset(Dataset):
    """Samples are the rows of tensors that share their first dimension: ds[i] = (t[i] for t in tensors).

        >>> ds = TensorDataset(x, y)        # x (N, ...), y (N,): ds[i] == (x[i], y[i])

    Tensors, or NumPy arrays (their rows are then arrays, as torch's would be tensors).
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        sizes = [_rows(t) for t in tensors]
        if None in sizes or any(s != sizes[0] for s in sizes):
            raise AssertionError(f"Size mismatch between tensors: their first dimensions are {sizes}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]

    def _gather(self, indices, rng):
        """[t[indices] for each tensor], on the active backend: what collating the rows would give."""
        if type(self).__getitem__ is not TensorDataset.__getitem__:
            return None  # a subclass changed what a sample is
        arrays = [t.array if isinstance(t, Tensor) else t for t in self.tensors]
        return [Tensor._wrap(to_device(a[get_array_module(a).asarray(indices)])) for a in arrays]


class Subset(Dataset):
    """The samples of `dataset` at `indices`: subset[k] = dataset[indices[k]]."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        inner = getattr(self.dataset, "__getitems__", None)
        if callable(inner):
            return inner([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self):
        return len(self.indices)

    def _gather(self, indices, rng):
        inner = getattr(self.dataset, "_gather", None)
        if inner is None or type(self).__getitem__ is not Subset.__getitem__:
            return None
        return inner(np.asarray([self.indices[int(i)] for i in indices], dtype=np.int64), rng)


class ConcatDataset(Dataset):
    """Data sets one after the other: len is the sum of their lengths."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise AssertionError("datasets should not be an empty iterable")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx += len(self)
        k = bisect.bisect_right(self.cumulative_sizes, idx)
        return self.datasets[k][idx - (self.cumulative_sizes[k - 1] if k else 0)]


def generator_rng(generator, who):
    """A NumPy Generator for torch's `generator=` argument.

    None: minicnn's global generator (seeded by minicnn.manual_seed); a minicnn.Generator: its
    stream; an int: a new generator seeded with it; a NumPy Generator: itself; another object with
    initial_seed() (a torch.Generator): a new generator seeded with that.
    """
    from .._random import Generator
    if generator is None:
        return default_rng()
    if isinstance(generator, Generator):  # its own stream: each use advances it, as torch's
        return generator._rng
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, numbers.Integral):
        return np.random.default_rng(int(generator))
    if callable(getattr(generator, "initial_seed", None)):
        return np.random.default_rng(int(generator.initial_seed()))
    raise TypeError(f"{who}: generator must be None, an int seed, a numpy.random.Generator or an object "
                    f"with initial_seed(); got {type(generator).__name__}")


def random_split(dataset, lengths, generator=None):
    """Split `dataset` at random into non-overlapping Subsets of the given lengths, as torch does.

    lengths: ints summing to len(dataset), or fractions summing to 1: each split then gets
    floor(fraction * len(dataset)) samples, and what is left over is dealt out one by one to the
    splits in turn. generator: see generator_rng (None: minicnn's global generator). The
    permutation is NumPy's, so the same seed does not pick the same samples as torch.
    """
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            sizes.append(math.floor(n * frac))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        lengths = sizes
        for i, length in enumerate(lengths):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.",
                              stacklevel=2)
    if sum(lengths) != n:
        raise ValueError(f"Sum of input lengths does not equal the length of the input dataset! "
                         f"(lengths {list(lengths)} sum to {sum(lengths)}, the data set has {n} samples)")
    indices = generator_rng(generator, "random_split").permutation(n).tolist()
    ends = list(itertools.accumulate(lengths))
    return [Subset(dataset, indices[end - length:end]) for end, length in zip(ends, lengths)]
