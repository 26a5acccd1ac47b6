"""DataLoader: a data set cut into shuffled mini-batches, on the active backend.

The order is reproducible: the permutation of epoch e is a pure function of
(seed, e), drawn from np.random.default_rng([seed, e]). A run resumed at
epoch k (`loader.set_epoch(k)`, or `load_state_dict`) therefore sees exactly
the batches an uninterrupted run would have seen, and so do the random
transforms, whose generator is default_rng([seed, e, batch_index]).

    >>> loader = DataLoader(MNIST(), batch_size=64, shuffle=True, seed=0)
    >>> for x, y in loader:      # x float32 (B, 1, 28, 28) in [0, 1], y int64 (B,)
    ...     ...
"""

import math

import numpy as np

from ..backend import to_device
from .datasets import ArrayDataset, images_to_float


class DataLoader:
    """Iterate over (x float32 (B, C, H, W), y int64 (B,)) batches of a data set.

    dataset    an ArrayDataset (MNIST, CIFAR10, ...) or a pair (images, labels)
    shuffle    a new permutation each epoch; otherwise the stored order
    drop_last  leave out the last, smaller batch (every batch then has B samples)
    seed       int >= 0; None draws one at random (kept in .seed and state_dict())
    transform  callable t(x, rng) applied to each float batch, e.g. transforms.Compose
    """

    def __init__(self, dataset, batch_size=64, shuffle=False, drop_last=False, seed=None,
                 transform=None):
        if isinstance(dataset, (tuple, list)):
            dataset = ArrayDataset(*dataset)
        if not (hasattr(dataset, "images") and hasattr(dataset, "labels")):
            raise TypeError(f"DataLoader: expected a dataset with .images (N, C, H, W) and "
                            f".labels (N,), such as ArrayDataset(images, labels); "
                            f"got {type(dataset).__name__}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if seed is None:
            seed = np.random.SeedSequence().entropy  # random, but fixed for this loader
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative int or None, got {seed!r}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed, self.transform = int(seed), transform
        self.epoch = 0  # the epoch the next iteration serves

    def __len__(self):
        """The number of batches in one epoch."""
        n = len(self.dataset.labels)
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
        n = len(self.dataset.labels)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1  # counted at the start, so a loop left early still moves on
        order, b = self.order(epoch), self.batch_size
        images, labels = self.dataset.images, self.dataset.labels
        for k in range(len(self)):
            idx = order[k * b:(k + 1) * b]
            # gather uint8 on the host, move it (4x fewer bytes than float32), convert there
            x = images_to_float(to_device(images[idx]))
            if self.transform is not None:
                x = self.transform(x, np.random.default_rng([self.seed, epoch, k]))
            yield x, to_device(labels[idx])
