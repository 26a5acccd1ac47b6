"""Data sets, batching and augmentation.

    datasets.py    ArrayDataset, MNIST, FashionMNIST, CIFAR10
    loader.py      DataLoader: shuffled, reproducible mini-batches on the active backend
    transforms.py  Normalize, RandomHorizontalFlip, RandomCrop, Compose (whole batches)
    idx.py, cifar.py, mnist5k.py   readers of the file formats
    sources.py     where data is looked for;  download.py  verified, atomic downloads
    errors.py      DatasetNotFoundError, CorruptDatasetError, DownloadError
"""

from .datasets import CIFAR10, MNIST, ArrayDataset, FashionMNIST, images_to_float
from .errors import CorruptDatasetError, DatasetNotFoundError, DownloadError
from .loader import DataLoader
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip

__all__ = ["ArrayDataset", "MNIST", "FashionMNIST", "CIFAR10", "images_to_float", "DataLoader",
           "Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip",
           "DatasetNotFoundError", "CorruptDatasetError", "DownloadError"]
