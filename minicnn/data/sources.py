"""Where data sets are looked for, in order, and where downloads go.

For a data set whose folder names are e.g. ("mnist", "MNIST/raw"):

    1. the explicit `root` (the examples' --data-dir): the files directly in
       it, or in root/mnist, root/MNIST/raw, ...
    2. $MINICNN_DATA/mnist, $MINICNN_DATA/MNIST/raw, ...
    3. ./data/mnist, ./data/MNIST/raw, ...
    4. the cache: <cache>/mnist, ... where downloads without a root are written, with
       <cache> = $MINICNN_CACHE, or $XDG_CACHE_HOME/minicnn, or ~/.cache/minicnn
    5. folders a system package installs (Fashion-MNIST: /usr/share/datasets/fashion-mnist)

A download with a root goes where torchvision puts it: root/MNIST/raw, root/cifar-10-batches-py.

Only the explicit root may hold the files directly: the shared places (2-4)
keep one folder per data set, because MNIST and Fashion-MNIST files have the
same names and must not be mistaken for one another.
"""

import os
from pathlib import Path


def cache_dir(override=None):
    """The folder downloads are written to (see the module docstring)."""
    if override is not None:
        return Path(override)
    if os.environ.get("MINICNN_CACHE"):
        return Path(os.environ["MINICNN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minicnn"


def search_dirs(root, folders, cache, system_dirs=()):
    """Every folder to look in, in order (a list of absolute Paths, duplicates removed)."""
    dirs = []
    if root is not None:
        root = Path(root).expanduser()
        dirs += [root] + [root / f for f in folders]
    bases = [Path(os.environ["MINICNN_DATA"])] if os.environ.get("MINICNN_DATA") else []
    bases += [Path("data"), Path(cache)]
    dirs += [base.expanduser() / f for base in bases for f in folders]
    dirs += [Path(d) for d in system_dirs]
    return list(dict.fromkeys(d.absolute() for d in dirs))


def find_files(dirs, names, compressed_ok=True):
    """Paths of all `names` in the first folder of `dirs` that holds them all, or None.

    With `compressed_ok`, `name.gz` stands in for `name` (the raw file is
    preferred when both exist: it reads faster).
    """
    for d in dirs:
        found = []
        for name in names:
            options = [d / name, d / f"{name}.gz"] if compressed_ok else [d / name]
            found += [p for p in options if p.is_file()][:1]
        if len(found) == len(names):
            return found
    return None
