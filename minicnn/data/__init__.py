"""Data sets, batching and augmentation: the one implementation behind minicnn.utils.data
(torch.utils.data's names) and minicnn.vision (torchvision's).

    dataset.py     Dataset, TensorDataset, Subset, ConcatDataset, random_split   (torch.utils.data)
    collate.py     default_collate: samples -> a batch of Tensors
    loader.py      DataLoader: reproducible mini-batches on the active backend
    datasets.py    ArrayDataset, MNIST, FashionMNIST, CIFAR10                    (torchvision.datasets)
    transforms.py  ToTensor, Normalize, Pad, Resize, RandomCrop, RandomHorizontalFlip, Compose, ...:
                   each per sample and on whole batches                          (torchvision.transforms)
    grid.py        make_grid, save_image                                        (torchvision.utils)
    image.py       one image as a PIL Image or an array; Pillow optional
    idx.py, cifar.py, mnist5k.py   readers of the file formats
    sources.py     where data is looked for;  download.py  verified, atomic downloads
    errors.py      DatasetNotFoundError, CorruptDatasetError, DownloadError
"""

from .collate import default_collate
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from .datasets import CIFAR10, MNIST, ArrayDataset, FashionMNIST, images_to_float
from .errors import CorruptDatasetError, DatasetNotFoundError, DownloadError
from .grid import make_grid, save_image
from .loader import DataLoader
from .transforms import (Compose, InterpolationMode, Lambda, Normalize, Pad, RandomCrop, RandomHorizontalFlip,
                         RandomVerticalFlip, Resize, ToPILImage, ToTensor)

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "default_collate", "DataLoader",
           "ArrayDataset", "MNIST", "FashionMNIST", "CIFAR10", "images_to_float",
           "Compose", "ToTensor", "Normalize", "Pad", "Resize", "InterpolationMode", "RandomCrop",
           "RandomHorizontalFlip", "RandomVerticalFlip", "Lambda", "ToPILImage", "make_grid", "save_image",
           "DatasetNotFoundError", "CorruptDatasetError", "DownloadError"]
