"""minicnn.save / minicnn.load: what goes in comes back (types, keys, dtypes, bits), a path is
written atomically, and a file that is not a whole minicnn save is refused with a message that
names the file, what is wrong and what to do, never half-read and never unpickled."""

import io
import json
import math
import os
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minicnn
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn import io as mio
from minicnn.backend import to_device, to_numpy


def lenet5():
    try:
        from minicnn.models import lenet5 as build
    except ImportError:  # models.py mid-port: the same shape of network from nn directly
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5),
                             nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(400, 10))
    return build()


def round_trip(obj, **load_kwargs):
    buffer = io.BytesIO()
    mio.save(obj, buffer)
    return mio.load(io.BytesIO(buffer.getvalue()), **load_kwargs)


def saved_bytes(obj):
    buffer = io.BytesIO()
    mio.save(obj, buffer)
    return buffer.getvalue()


def bits(array):
    """The exact bytes of an array's values, with its dtype and shape (nan payloads and -0.0 count)."""
    array = to_numpy(array.array if isinstance(array, minicnn.Tensor) else array)
    return array.dtype.str, array.shape, np.ascontiguousarray(array).tobytes()


def craft(path, info, arrays=(), trailing=b""):
    """A zip laid out as minicnn.save lays it out, with whatever minicnn.json we like."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(mio.STRUCTURE, json.dumps(info))
        for i, a in enumerate(arrays):
            with zf.open(f"arrays/{i}.npy", "w") as member:
                np.lib.format.write_array(member, a)
                member.write(trailing)


# -- what goes in comes back -------------------------------------------------------------------


def test_lenet5_state_dict_round_trips_as_an_ordered_dict_of_bit_equal_tensors(tmp_path):
    sd = lenet5().state_dict()
    mio.save(sd, tmp_path / "best.ckpt")
    loaded = mio.load(tmp_path / "best.ckpt")
    assert type(loaded) is OrderedDict
    assert list(loaded) == list(sd)
    for name in sd:
        assert type(loaded[name]) is minicnn.Tensor
        assert bits(loaded[name]) == bits(sd[name]), name


def test_loaded_state_dict_goes_into_a_fresh_model_with_load_state_dict(tmp_path):
    trained, fresh = lenet5(), lenet5()
    mio.save(trained.state_dict(), tmp_path / "best.ckpt")
    result = fresh.load_state_dict(mio.load(str(tmp_path / "best.ckpt")))
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    for (name, a), (_, b) in zip(trained.state_dict().items(), fresh.state_dict().items()):
        assert bits(a) == bits(b), name


def test_checkpoint_dict_with_epoch_model_and_optimizer_round_trips(tmp_path):
    model = lenet5()
    ckpt = {"epoch": 3, "model": model.state_dict(), "optim": {"state": {}, "param_groups": [{"lr": 0.01}]}}
    mio.save(ckpt, tmp_path / "ckpt.ckpt")
    loaded = mio.load(tmp_path / "ckpt.ckpt")
    assert loaded["epoch"] == 3 and type(loaded["epoch"]) is int
    assert loaded["optim"] == ckpt["optim"]
    assert [bits(t) for t in loaded["model"].values()] == [bits(t) for t in ckpt["model"].values()]


def test_torch_optimizer_state_dict_keeps_int_keys_nested_lists_and_tuples():
    """The shape torch.optim gives (int keys under 'state', lists and tuples in 'param_groups'),
    taken from a real torch Adam after one step, with its tensors as NumPy arrays."""
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.99))
    net(torch.randn(4, 3)).sum().backward()
    opt.step()

    def to_arrays(obj):
        if isinstance(obj, torch.Tensor):
            return obj.numpy()
        if isinstance(obj, dict):
            return {k: to_arrays(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(to_arrays(v) for v in obj)
        return obj

    state = to_arrays(opt.state_dict())
    loaded = round_trip(state)
    assert list(loaded["state"]) == [0, 1] and all(type(k) is int for k in loaded["state"])
    assert loaded["param_groups"][0]["betas"] == (0.9, 0.99)
    assert type(loaded["param_groups"][0]["betas"]) is tuple
    assert loaded["param_groups"][0]["params"] == [0, 1]
    assert {k: v for k, v in loaded["param_groups"][0].items()} == state["param_groups"][0]
    for i in (0, 1):
        for name, value in state["state"][i].items():
            assert bits(loaded["state"][i][name]) == bits(value), (i, name)


def test_int_and_str_keys_stay_distinct_and_in_order():
    obj = {3: "int", "3": "str", 1.5: "float", True: "bool", None: "none", (1, "a"): "tuple"}
    loaded = round_trip(obj)
    assert list(loaded.items()) == list(obj.items())
    assert [type(k) for k in loaded] == [type(k) for k in obj]


def test_containers_keep_their_types():
    obj = [OrderedDict(b=1, a=2), {"b": 1, "a": 2}, (1, [2, (3,)]), [], (), {}, minicnn.Size([2, 3])]
    loaded = round_trip(obj)
    assert loaded == obj
    assert [type(v) for v in loaded] == [type(v) for v in obj]
    assert type(loaded[2][1][1]) is tuple
    assert list(loaded[0]) == ["b", "a"]


def test_python_scalars_keep_type_and_value():
    obj = [0, -7, 2**100, 0.1, -0.0, 1e308, 5e-324, float("inf"), float("-inf"), 1 + 2j, True, False, None,
           "", "ünïcödé \u2603 \ud800", b"\x00\xffbytes", bytearray(b"ab")]
    loaded = round_trip(obj)
    assert [type(v) for v in loaded] == [type(v) for v in obj]
    assert loaded == obj
    assert math.copysign(1.0, loaded[4]) == -1.0


def test_nan_comes_back_as_nan():
    loaded = round_trip({"loss": float("nan")})
    assert type(loaded["loss"]) is float and math.isnan(loaded["loss"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_, np.uint8, np.float16, np.int32,
                                   np.int8, np.complex64, ">f8"])
def test_tensor_and_array_dtype_is_preserved(dtype):
    values = (np.random.default_rng(0).standard_normal((3, 4)) * 10).astype(dtype)
    tensor, array = round_trip([minicnn.tensor(values), values])
    assert type(tensor) is minicnn.Tensor and tensor.dtype == np.dtype(dtype)
    assert type(array) is np.ndarray and array.dtype == np.dtype(dtype)
    assert bits(tensor) == bits(values) == bits(array)


@given(hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.uint8, np.int16]),
                  shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
def test_any_array_round_trips_bit_equal(values):
    """Any shape (0-d, empty), any value (nan, -0.0, extremes): the same bytes come back."""
    tensor, array = round_trip((minicnn.tensor(values), values))
    assert bits(tensor) == bits(values)
    assert bits(array) == bits(values)


def test_zero_d_tensors_round_trip():
    loaded = round_trip({"loss": minicnn.tensor(2.5), "step": minicnn.tensor(7)})
    assert loaded["loss"].shape == () and loaded["loss"].item() == 2.5 and loaded["loss"].dtype == np.float32
    assert loaded["step"].shape == () and loaded["step"].item() == 7 and loaded["step"].dtype == np.int64


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 2, 5), (2, 0, 0, 1)])
def test_empty_tensors_keep_their_shape_and_dtype(shape):
    loaded = round_trip([minicnn.zeros(*shape), minicnn.zeros(*shape, dtype=minicnn.int64)])
    assert [tuple(t.shape) for t in loaded] == [shape, shape]
    assert [t.dtype for t in loaded] == [np.float32, np.int64]


def test_numpy_scalars_come_back_as_numpy_scalars_of_their_dtype():
    obj = [np.float32(1.5), np.int64(-3), np.bool_(True), np.float64("nan")]
    loaded = round_trip(obj)
    assert [type(v) for v in loaded] == [type(v) for v in obj]
    assert loaded[:3] == obj[:3] and np.isnan(loaded[3])


def test_non_contiguous_views_are_saved_as_their_values():
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    views = [base.T, base[:, ::2], base[::-1], np.asfortranarray(base)]
    for view, loaded in zip(views, round_trip(views)):
        assert np.array_equal(loaded, view) and loaded.dtype == view.dtype


def test_loaded_arrays_are_writable_and_own_their_memory():
    tensor, array = round_trip([minicnn.ones(3), np.ones(3)])
    tensor.array[0] = 5
    array[0] = 5
    assert tensor.array[0] == 5 and array[0] == 5


def test_parameters_stay_parameters_and_requires_grad_is_kept():
    p = nn.Parameter(minicnn.randn(2, 3))
    frozen = nn.Parameter(minicnn.randn(2), requires_grad=False)
    leaf = minicnn.randn(3, requires_grad=True)
    loaded = round_trip([p, frozen, leaf, leaf.detach()])
    assert [type(t).__name__ for t in loaded] == ["Parameter", "Parameter", "Tensor", "Tensor"]
    assert [t.requires_grad for t in loaded] == [True, False, True, False]
    assert all(t.is_leaf and t.grad is None for t in loaded)
    assert bits(loaded[0]) == bits(p)


def test_an_array_reached_twice_is_stored_once_and_loads_shared():
    shared = minicnn.randn(50, 50)
    sd = OrderedDict([("encoder.weight", shared.detach()), ("decoder.weight", shared.detach())])
    data = saved_bytes(sd)
    assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 2  # minicnn.json and one array
    loaded = mio.load(io.BytesIO(data))
    assert loaded["encoder.weight"].array is loaded["decoder.weight"].array


def test_the_same_object_always_gives_the_same_bytes():
    sd = lenet5().state_dict()
    assert saved_bytes(sd) == saved_bytes(sd)


def test_numpy_reads_each_array_entry_as_the_docstring_says(tmp_path):
    values = np.arange(6, dtype=np.int64).reshape(2, 3)
    mio.save({"w": minicnn.tensor(values)}, tmp_path / "w.ckpt")
    with np.load(tmp_path / "w.ckpt", allow_pickle=False) as npz:
        assert np.array_equal(npz["arrays/0"], values)
    with zipfile.ZipFile(tmp_path / "w.ckpt") as zf:
        assert zf.namelist()[0] == mio.STRUCTURE
        info = json.loads(zf.read(mio.STRUCTURE))
    assert (info["format"], info["version"]) == (mio.FORMAT, mio.VERSION)
    assert info["arrays"][0]["dtype"] == "<i8" and info["arrays"][0]["shape"] == [2, 3]


# -- file objects, map_location, weights_only ---------------------------------------------------


def test_bytesio_and_open_files_work_as_paths_do(tmp_path):
    sd = lenet5().state_dict()
    with open(tmp_path / "a.ckpt", "wb") as f:
        mio.save(sd, f)
    mio.save(sd, tmp_path / "b.ckpt")
    assert (tmp_path / "a.ckpt").read_bytes() == (tmp_path / "b.ckpt").read_bytes() == saved_bytes(sd)
    with open(tmp_path / "a.ckpt", "rb") as f:
        loaded = mio.load(f)
    assert [bits(t) for t in loaded.values()] == [bits(t) for t in sd.values()]


def test_a_stream_that_cannot_seek_gets_the_same_bytes_as_a_file():
    class Pipe:
        def __init__(self):
            self.chunks = []

        def write(self, b):
            self.chunks.append(bytes(b))
            return len(b)

        def read(self):
            return b"".join(self.chunks)

    sd = lenet5().state_dict()
    pipe = Pipe()
    mio.save(sd, pipe)
    assert pipe.read() == saved_bytes(sd)
    assert list(mio.load(pipe)) == list(sd)


def test_map_location_cpu_forms_and_weights_only_are_accepted():
    sd = {"w": minicnn.randn(3)}
    for where in (None, "cpu", minicnn.device("cpu"), {"cuda:0": "cpu"}):
        for weights_only in (None, True, False):
            loaded = round_trip(sd, map_location=where, weights_only=weights_only)
            assert loaded["w"].device == minicnn.device("cpu") and bits(loaded["w"]) == bits(sd["w"])


def test_bad_map_location_and_weights_only_are_refused():
    data = saved_bytes({"w": minicnn.ones(2)})
    with pytest.raises(TypeError, match="map_location"):
        mio.load(io.BytesIO(data), map_location=lambda storage, loc: storage)
    with pytest.raises(ValueError, match="unknown device"):
        mio.load(io.BytesIO(data), map_location="tpu")
    with pytest.raises(TypeError, match="weights_only"):
        mio.load(io.BytesIO(data), weights_only="yes")


def test_arrays_of_either_backend_are_saved_from_host_and_load_where_map_location_says(backend):
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    obj = {"t": minicnn.Tensor(to_device(values)), "a": to_device(values)}
    data = saved_bytes(obj)
    on_cpu = mio.load(io.BytesIO(data))
    assert type(on_cpu["a"]) is np.ndarray and not on_cpu["t"].is_cuda
    assert bits(on_cpu["t"]) == bits(values) == bits(on_cpu["a"])
    if backend is not np:
        on_gpu = mio.load(io.BytesIO(data), map_location="cuda")
        assert on_gpu["t"].is_cuda and bits(on_gpu["t"]) == bits(values)
        kept = mio.load(io.BytesIO(data), map_location={"cpu": "cpu"})  # unlisted cuda:0 stays on the GPU
        assert kept["t"].is_cuda


# -- atomic writes --------------------------------------------------------------------------------


def fail_on_third_member(monkeypatch):
    original, calls = mio._write_member, []

    def failing(zf, name, parts):
        calls.append(name)
        if len(calls) == 3:
            with zf.open(zipfile.ZipInfo(name), "w") as member:
                member.write(b"half an array")
            raise OSError(28, "No space left on device")
        return original(zf, name, parts)

    monkeypatch.setattr(mio, "_write_member", failing)


def fail_at(name):
    def patch(monkeypatch):
        def failing(*args, **kwargs):
            raise OSError(5, f"Input/output error in {name}")
        monkeypatch.setattr(mio.os, name, failing)
    return patch


@pytest.mark.parametrize("failure", [fail_on_third_member, fail_at("fsync"), fail_at("replace")],
                         ids=["mid-write", "fsync", "rename"])
def test_a_failed_save_leaves_the_old_file_loadable_and_no_temporary_file(tmp_path, monkeypatch, failure):
    old = {"epoch": 1, "w": minicnn.randn(4, 4)}
    path = tmp_path / "ckpt.ckpt"
    mio.save(old, path)
    before = path.read_bytes()
    failure(monkeypatch)
    with pytest.raises(OSError):
        mio.save({"epoch": 2, "model": lenet5().state_dict()}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.ckpt"]
    assert path.read_bytes() == before
    assert mio.load(path)["epoch"] == 1


def test_a_failed_first_save_leaves_no_file_at_all(tmp_path, monkeypatch):
    fail_on_third_member(monkeypatch)
    with pytest.raises(OSError):
        mio.save(lenet5().state_dict(), tmp_path / "new.ckpt")
    assert os.listdir(tmp_path) == []


def test_an_interrupt_mid_write_also_cleans_up(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(mio, "_write_member", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mio.save({"w": minicnn.ones(2)}, tmp_path / "new.ckpt")
    assert os.listdir(tmp_path) == []


def test_a_refused_object_never_touches_the_file(tmp_path):
    path = tmp_path / "ckpt.ckpt"
    mio.save({"epoch": 1}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        mio.save({"epoch": 2, "fn": lambda x: x}, path)
    assert os.listdir(tmp_path) == ["ckpt.ckpt"] and path.read_bytes() == before


def test_saving_into_a_missing_folder_says_so_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mio.save({"a": 1}, tmp_path / "runs" / "best.ckpt")
    assert os.listdir(tmp_path) == []


def test_saving_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    target, link = tmp_path / "real.ckpt", tmp_path / "latest.ckpt"
    mio.save({"epoch": 1}, target)
    link.symlink_to(target)
    mio.save({"epoch": 2}, link)
    assert link.is_symlink() and mio.load(target)["epoch"] == 2


# -- what cannot be saved -------------------------------------------------------------------------


class Custom:
    pass


@pytest.mark.parametrize("obj, path, what", [
    ({"model": {"fn": lambda x: x}}, "obj['model']['fn']", "function"),
    ({"model": {"w": minicnn.ones(2)}, "extra": [1, Custom()]}, "obj['extra'][1]", "Custom"),
    ([np.array([None, 1])], "obj[0]", "dtype object"),
    ({"sched": {"keys": {frozenset([1]): 2}}}, "obj['sched']['keys'] (key frozenset({1}))", "dict key"),
    ({"counts": __import__("collections").Counter(a=1)}, "obj['counts']", "Counter"),
])
def test_what_cannot_be_saved_is_refused_naming_its_place(obj, path, what):
    with pytest.raises(TypeError) as info:
        mio.save(obj, io.BytesIO())
    assert f"cannot store {path}:" in str(info.value) and what in str(info.value)


def test_saving_a_whole_model_says_to_save_its_state_dict():
    with pytest.raises(TypeError, match=r"obj: .*Sequential.*model\.state_dict\(\)"):
        mio.save(lenet5(), io.BytesIO())


def test_a_container_holding_itself_is_refused():
    loop = [1]
    loop.append(loop)
    with pytest.raises(TypeError, match=r"obj\[1\]: it is a container that holds itself"):
        mio.save(loop, io.BytesIO())


# -- what cannot be loaded ------------------------------------------------------------------------


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        mio.load(tmp_path / "nope.ckpt")


def test_a_truncated_file_is_refused_with_its_size_and_the_size_expected(tmp_path):
    """Cut anywhere: refused, naming the file and the bytes present; once the table of arrays is
    whole, also exactly the bytes the archive should have had."""
    data = saved_bytes({"model": lenet5().state_dict(), "epoch": 3})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        table_end = zf.getinfo(mio.STRUCTURE).compress_size + 30 + len(mio.STRUCTURE)
    path = tmp_path / "best.ckpt"
    for cut in [1, 5, 29, 30, 100, table_end - 1, table_end, table_end + 1, len(data) // 3, len(data) // 2,
                len(data) - 1000, len(data) - 23, len(data) - 22, len(data) - 1]:
        path.write_bytes(data[:cut])
        with pytest.raises(mio.LoadError) as info:
            mio.load(path)
        message = str(info.value)
        assert str(path) in message and "truncated" in message and f"it has {cut:,} bytes" in message, cut
        if cut >= table_end:
            assert f"the archive expected {len(data):,} " in message, cut
        assert "Copy it again" in message


def test_the_empty_file_is_refused_as_empty(tmp_path):
    (tmp_path / "best.ckpt").write_bytes(b"")
    with pytest.raises(mio.LoadError, match=r"best\.ckpt' is empty \(0 bytes\)"):
        mio.load(tmp_path / "best.ckpt")


def data_regions(data):
    """(entry name, first byte, end) of each entry's stored bytes: JSON, .npy headers and values."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, i.header_offset + 30 + len(i.filename.encode()) + len(i.extra),
                 i.header_offset + 30 + len(i.filename.encode()) + len(i.extra) + i.compress_size)
                for i in zf.infolist()]


STATE = {"model": OrderedDict(w=minicnn.randn(8, 8), b=minicnn.zeros(8)), "epoch": 3}
STATE_BYTES = saved_bytes(STATE)


@given(st.data())
def test_a_flipped_byte_anywhere_in_the_stored_data_is_refused(data):
    name, start, end = data.draw(st.sampled_from(data_regions(STATE_BYTES)), label="entry")
    at = data.draw(st.integers(start, end - 1), label="offset")
    bit = data.draw(st.integers(0, 7), label="bit")
    damaged = bytearray(STATE_BYTES)
    damaged[at] ^= 1 << bit
    with pytest.raises(mio.LoadError, match="is damaged"):
        mio.load(io.BytesIO(bytes(damaged)))


def test_a_damaged_directory_is_refused(tmp_path):
    damaged = bytearray(STATE_BYTES)
    directory = STATE_BYTES.rindex(b"PK\x01\x02")  # the last central-directory record
    damaged[directory:directory + 4] = b"XXXX"
    with pytest.raises(mio.LoadError, match="damaged"):
        mio.load(io.BytesIO(bytes(damaged)))


@pytest.mark.parametrize("content, expected", [
    (b"\x00" * 100, "does not start like a zip archive"),
    (b"hello, this is text", "does not start like a zip archive"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "Git LFS pointer"),
    (b"<!DOCTYPE html><html><body>Not found</body></html>", "HTML page"),
])
def test_a_file_that_is_not_a_zip_is_refused(tmp_path, content, expected):
    (tmp_path / "x.ckpt").write_bytes(content)
    with pytest.raises(mio.LoadError, match=expected) as info:
        mio.load(tmp_path / "x.ckpt")
    assert "x.ckpt" in str(info.value)


def test_a_zip_that_is_not_a_minicnn_save_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "notes.zip", "w") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(mio.LoadError, match=r"zip archive but not a minicnn save file.*'notes\.txt'"):
        mio.load(tmp_path / "notes.zip")


def test_a_numpy_npz_is_refused_pointing_to_numpy_load(tmp_path):
    np.savez(tmp_path / "w.npz", w=np.ones(3))
    with pytest.raises(mio.LoadError, match=r"NumPy \.npz archive.*numpy\.load"):
        mio.load(tmp_path / "w.npz")


def test_a_training_checkpoint_npz_is_refused_pointing_to_load_checkpoint(tmp_path):
    np.savez(tmp_path / "last.npz", json=np.array("{}"), **{"model/w": np.ones(2)})
    with pytest.raises(mio.LoadError, match=r"load_checkpoint"):
        mio.load(tmp_path / "last.npz")


def test_a_file_from_a_newer_format_version_says_to_upgrade(tmp_path):
    craft(tmp_path / "new.ckpt", {"format": mio.FORMAT, "version": mio.VERSION + 1, "arrays": [], "object": 1,
                                 "written_by": "minicnn 9.0"})
    with pytest.raises(mio.LoadError, match=r"minicnn 9\.0 in format version 2.*Upgrade minicnn"):
        mio.load(tmp_path / "new.ckpt")


@pytest.mark.parametrize("info, arrays", [
    ({"format": mio.FORMAT, "version": 1, "arrays": [], "object": {"$": "pickle", "code": "os.system"}}, []),
    ({"format": mio.FORMAT, "version": 1, "arrays": [], "object": {"$": "Tensor", "array": 0,
                                                                    "requires_grad": False}}, []),
    ({"format": mio.FORMAT, "version": 1, "object": {"$": "ndarray", "array": 0},
      "arrays": [{"dtype": "<f4", "shape": [3], "device": "cpu", "bytes": 140}]}, [np.zeros(4, np.float32)]),
    ({"format": mio.FORMAT, "version": 1, "object": {"$": "ndarray", "array": 0},
      "arrays": [{"dtype": "<f4", "shape": [3], "device": "cpu", "bytes": 140}]}, []),
    ({"format": mio.FORMAT, "version": 1, "object": {"$": "Tensor", "array": 0, "requires_grad": True},
      "arrays": [{"dtype": "<i8", "shape": [1], "device": "cpu", "bytes": 136}]}, [np.zeros(1, np.int64)]),
    ({"format": mio.FORMAT, "version": 1, "object": {"$": "dict", "items": [[[1], 2]]}, "arrays": []}, []),
    ({"format": "something.else", "version": 1, "arrays": [], "object": None}, []),
], ids=["unknown-node", "missing-array", "shape-disagrees", "array-entry-missing", "int-requires-grad",
        "unhashable-key", "other-format"])
def test_a_structure_that_does_not_describe_a_valid_object_is_refused(tmp_path, info, arrays):
    craft(tmp_path / "odd.ckpt", info, arrays)
    with pytest.raises(mio.LoadError, match=r"odd\.ckpt"):
        mio.load(tmp_path / "odd.ckpt")


def test_an_array_entry_with_bytes_after_its_values_is_refused(tmp_path):
    info = {"format": mio.FORMAT, "version": 1, "object": {"$": "ndarray", "array": 0},
            "arrays": [{"dtype": "<f4", "shape": [3], "device": "cpu", "bytes": 128 + 12 + 4}]}
    craft(tmp_path / "odd.ckpt", info, [np.zeros(3, np.float32)], trailing=b"junk")
    with pytest.raises(mio.LoadError, match="bytes after its data"):
        mio.load(tmp_path / "odd.ckpt")


# -- the whole story -----------------------------------------------------------------------------


def test_minicnn_save_and_load_are_torch_save_and_torch_load():
    import minicnn as torch_like

    assert torch_like.save is mio.save and torch_like.load is mio.load


def test_a_model_trained_a_step_then_saved_and_loaded_gives_bit_identical_outputs(tmp_path):
    minicnn.manual_seed(0)
    model = lenet5()
    x = minicnn.randn(4, 1, 28, 28)
    y = minicnn.tensor([1, 2, 3, 4])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    with minicnn.no_grad():
        for p in model.parameters():
            p.array -= 0.1 * p.grad.array
    minicnn.save({"model": model.state_dict(), "epoch": 1}, tmp_path / "best.ckpt")

    fresh = lenet5()
    fresh.load_state_dict(minicnn.load(tmp_path / "best.ckpt")["model"])
    model.eval()
    fresh.eval()
    with minicnn.no_grad():
        assert bits(fresh(x)) == bits(model(x))
