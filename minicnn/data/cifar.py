"""Reader for the CIFAR-10 "python version" batches (cifar-10-batches-py/).

Each batch (data_batch_1..5, test_batch) is a pickled dict:

    'data'    uint8 (10000, 3072): per image, 1024 red, then green, then blue
              values, each a 32x32 image in row-major order
    'labels'  list of 10000 ints in 0..9

and `batches.meta` holds 'label_names', the ten class names.

The published files were pickled by Python 2, whose 8-bit strings Python 3 reads as bytes
(encoding='bytes': keys b'data', b'labels') or as str (encoding='latin1', torchvision's
choice: keys 'data', 'labels'). We read with 'latin1', which NumPy needs for arrays pickled by
Python 2, and accept both kinds of keys, so files re-pickled by Python 3 read too.

Unpickling an arbitrary file can run arbitrary code, so these files are read
with an unpickler that only builds NumPy arrays and plain Python containers.
"""

import pickle

import numpy as np

from .errors import CorruptDatasetError

# Everything a CIFAR batch (written by NumPy 1 or 2, any pickle protocol) needs.
_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how protocol 2 stores bytes
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load(path):
    """The pickled dict, its bytes keys decoded (b'data' -> 'data'); anything else is returned as it is."""
    try:
        with open(path, "rb") as f:
            content = _ArraysOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise CorruptDatasetError(f"{path}: not a CIFAR-10 pickle batch ({exc})") from exc
    if isinstance(content, dict):
        return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in content.items()}
    return content


def read_cifar_batch(path):
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) of one pickled batch."""
    batch = _load(path)
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise CorruptDatasetError(f"{path}: expected a dict with keys 'data' and 'labels'")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CorruptDatasetError(
            f"{path}: 'data' should be uint8 (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (len(data),):
        raise CorruptDatasetError(
            f"{path}: {len(data)} images but {labels.size} labels")
    # each row is channel-major already, so a reshape gives (N, C, H, W)
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar_meta(path):
    """The class names (list of str) stored in `batches.meta`."""
    meta = _load(path)
    if not isinstance(meta, dict) or "label_names" not in meta:
        raise CorruptDatasetError(f"{path}: expected a dict with key 'label_names'")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"]]


def read_cifar(batch_paths, meta_path):
    """Images uint8 (N, 3, 32, 32), labels int64 (N,) of the batches joined, and class names."""
    parts = [read_cifar_batch(p) for p in batch_paths]
    images = np.concatenate([im for im, _ in parts])
    labels = np.concatenate([lb for _, lb in parts])
    return images, labels, read_cifar_meta(meta_path)
