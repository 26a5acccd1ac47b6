"""Reader for the IDX files of MNIST and Fashion-MNIST (LeCun's format).

An IDX file is a big-endian header followed by raw bytes:

    bytes 0-3   magic number 0x00000803 (images: unsigned bytes, 3 dims)
                          or 0x00000801 (labels: unsigned bytes, 1 dim)
    then one 4-byte unsigned int per dimension: N (images: N, H, W)
    then N*H*W (or N) unsigned bytes, row-major.

Files may be stored raw or gzip-compressed (`.gz`); both read the same.
Every size is checked against the header, so a truncated download is refused
instead of being silently reshaped into garbage.
"""

import gzip
import struct
import zlib

import numpy as np

from .errors import CorruptDatasetError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def read_bytes(path):
    """The whole content of `path`, decompressed if its name ends in `.gz`."""
    path = str(path)
    if not path.endswith(".gz"):
        with open(path, "rb") as f:
            return f.read()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise CorruptDatasetError(f"{path}: not a readable gzip file ({exc}); "
                                  "delete it and download it again") from exc


def _header(data, path, magic, ndim):
    """The dimensions in the header of an IDX file, after checking its magic number."""
    if len(data) < 4 + 4 * ndim:
        raise CorruptDatasetError(f"{path}: only {len(data)} bytes, too short for an IDX header")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise CorruptDatasetError(
            f"{path}: bad magic number 0x{found:08x}, expected 0x{magic:08x} "
            f"(an IDX file of unsigned bytes with {ndim} dimension(s)); "
            "is it the right file, or an HTML error page saved under its name?")
    return struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])


def read_idx_images(path):
    """Images of an IDX file (magic 0x00000803) as uint8 (N, 1, H, W)."""
    data = read_bytes(path)
    n, h, w = _header(data, path, IMAGES_MAGIC, 3)
    expected = 16 + n * h * w
    if len(data) != expected:
        raise CorruptDatasetError(
            f"{path}: header says {n} images of {h}x{w} = {expected} bytes, "
            f"file has {len(data)}; the file is truncated or damaged")
    # copy: frombuffer over `bytes` is read-only, and users may edit their images
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, 1, h, w).copy()


def read_idx_labels(path):
    """Labels of an IDX file (magic 0x00000801) as int64 (N,)."""
    data = read_bytes(path)
    (n,) = _header(data, path, LABELS_MAGIC, 1)
    if len(data) != 8 + n:
        raise CorruptDatasetError(
            f"{path}: header says {n} labels = {8 + n} bytes, file has {len(data)}; "
            "the file is truncated or damaged")
    return np.frombuffer(data, np.uint8, offset=8).astype(np.int64)


def read_idx_pair(images_path, labels_path):
    """Images (N, 1, H, W) uint8 and labels (N,) int64, checked to have the same N."""
    images, labels = read_idx_images(images_path), read_idx_labels(labels_path)
    if len(images) != len(labels):
        raise CorruptDatasetError(
            f"{images_path} has {len(images)} images but {labels_path} has "
            f"{len(labels)} labels; the two files do not belong together")
    return images, labels
