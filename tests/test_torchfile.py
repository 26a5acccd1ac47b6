"""PyTorch's own file format without torch: what minicnn.save writes to a .pth path, the real
torch.load(weights_only=True) reads (every dtype, bit for bit, views as views); what the real
torch.save writes (zip or legacy), minicnn.load reads; a pickle that asks for anything but
tensors and containers is refused before it can run; cut or damaged files are refused with
their sizes; a failed save leaves the old file as it was."""

import io
import os
import pickle
import re
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minicnn
import minicnn.nn as nn
from minicnn import io as mio
from minicnn import torchfile
from minicnn.models import lenet5

DTYPES = ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool", "complex64",
          "complex128", "uint16", "uint32", "uint64"]


def bits(x):
    """dtype, shape and the exact bytes of the values of a minicnn Tensor, torch tensor or array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().contiguous().numpy()
    elif isinstance(x, minicnn.Tensor):
        x = x.array
    return np.dtype(x.dtype).name, tuple(x.shape), np.ascontiguousarray(x).tobytes()


def values(dtype, shape, seed=0):
    """A random array (never a NumPy scalar, even 0-d) of this dtype, spanning its range for integers."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return np.asarray(rng.random(shape) > 0.5)
    if dtype.startswith("complex"):
        return np.asarray(rng.standard_normal(shape) + 1j * rng.standard_normal(shape), dtype)
    if dtype.startswith("float"):
        return np.asarray(rng.standard_normal(shape), dtype)
    info = np.iinfo(dtype)
    return np.asarray(rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True))


def to_torch_bytes(obj):
    buffer = io.BytesIO()
    torchfile.save(obj, buffer)
    return buffer.getvalue()


def through_torch(obj):
    """obj written by minicnn, read by the real torch."""
    return torch.load(io.BytesIO(to_torch_bytes(obj)), weights_only=True)


def torch_bytes(obj, **kwargs):
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def from_torch(obj, **kwargs):
    """obj written by the real torch, read by minicnn."""
    return minicnn.load(io.BytesIO(torch_bytes(obj, **kwargs)))


def entries(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def rezip(data, change=None, drop=(), compression=zipfile.ZIP_STORED):
    """A copy of a torch zip with some entries changed ({name ending: new bytes or a function of the old})."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, content in entries(data).items():
            for ending, new in (change or {}).items():
                if name.endswith(ending):
                    content = new(content) if callable(new) else new
            if not any(name.endswith(d) for d in drop):
                zf.writestr(name, content)
    return out.getvalue()


def with_pickle(data_pkl):
    """A zip laid out as torch.save lays it out, holding this data.pkl."""
    return rezip(torch_bytes({"w": torch.ones(2)}), {"/data.pkl": data_pkl})


# -- what minicnn writes, torch reads ------------------------------------------------------------


def test_the_archive_has_the_entries_torch_save_writes_stored_and_64_byte_aligned(tmp_path):
    sd = lenet5().state_dict()
    minicnn.save(sd, tmp_path / "ours.pth")
    torch.save({k: torch.from_numpy(v.array) for k, v in sd.items()}, tmp_path / "theirs.pth")
    ours, theirs = entries((tmp_path / "ours.pth").read_bytes()), entries((tmp_path / "theirs.pth").read_bytes())
    assert list(ours) == [n.replace("theirs/", "ours/") for n in theirs]
    for name in (".format_version", ".storage_alignment", "byteorder", "version"):
        assert ours[f"ours/{name}"] == theirs[f"theirs/{name}"], name
    assert re.fullmatch(rb"\d{40}", ours["ours/.data/serialization_id"])
    raw = (tmp_path / "ours.pth").read_bytes()
    with zipfile.ZipFile(tmp_path / "ours.pth") as zf:
        for info in zf.infolist():
            name_len, extra_len = struct.unpack("<2H", raw[info.header_offset + 26:info.header_offset + 30])
            assert info.compress_type == zipfile.ZIP_STORED
            assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (2, 3), (2, 1, 4)], ids=str)
def test_torch_load_reads_every_dtype_and_shape_bit_equal(dtype, shape):
    array = values(dtype, shape)
    loaded = through_torch({"t": minicnn.tensor(array)})["t"]
    assert type(loaded) is torch.Tensor and loaded.dtype == getattr(torch, dtype)
    assert bits(loaded) == bits(array)


@settings(max_examples=60)
@given(hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.int8, np.uint8, np.bool_,
                                         np.uint16]),
                  shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)))
def test_any_tensor_goes_minicnn_torch_minicnn_bit_equal(array):
    """Any value (nan payloads, -0.0, extremes), any shape: torch reads it, writes it back, minicnn reads that."""
    in_torch = through_torch([minicnn.tensor(array)])[0]
    assert bits(in_torch) == bits(array)
    back = from_torch([in_torch])[0]
    assert type(back) is minicnn.Tensor and bits(back) == bits(array)


def test_a_big_endian_array_is_written_as_its_values_in_little_endian():
    array = np.arange(6, dtype=">f8").reshape(2, 3)
    loaded = through_torch([minicnn.tensor(array)])[0]
    assert loaded.dtype == torch.float64 and np.array_equal(loaded.numpy(), array)


def test_state_dict_entries_are_plain_tensors_and_parameters_stay_parameters():
    model = lenet5()
    loaded = through_torch({"sd": model.state_dict(), "params": list(model.parameters())})
    assert type(loaded["sd"]) is OrderedDict and list(loaded["sd"]) == list(model.state_dict())
    assert all(type(v) is torch.Tensor and not v.requires_grad for v in loaded["sd"].values())
    assert all(type(p) is torch.nn.Parameter and p.requires_grad for p in loaded["params"])
    assert [bits(p) for p in loaded["params"]] == [bits(p) for p in model.parameters()]


def test_requires_grad_of_a_plain_tensor_is_kept():
    loaded = through_torch([minicnn.randn(3, requires_grad=True), minicnn.randn(3)])
    assert [t.requires_grad for t in loaded] == [True, False]


def test_views_and_tied_weights_are_saved_as_views_of_one_storage():
    base = minicnn.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    obj = OrderedDict(w=base, t=base.t(), s=base[1:, ::2], tied=base.detach())
    data = to_torch_bytes(obj)
    assert [n for n in entries(data) if "/data/" in n] == ["archive/data/0"]
    loaded = torch.load(io.BytesIO(data), weights_only=True)
    pointers = {t.untyped_storage().data_ptr() for t in loaded.values()}
    assert len(pointers) == 1
    assert loaded["t"].stride() == (1, 4) and loaded["s"].storage_offset() == 4
    for name, tensor in obj.items():
        assert np.array_equal(loaded[name].numpy(), tensor.array), name
    loaded["w"][0, 0] = 100.0  # one storage: a write shows through every view, as in torch
    assert loaded["t"][0, 0] == 100.0 and loaded["tied"][0, 0] == 100.0


def test_a_view_that_torch_cannot_express_is_saved_as_a_copy():
    base = np.arange(12, dtype=np.float32)
    flipped, odd = base[::-1], base.view(np.uint8)[1:5].view(np.float32)  # negative stride; half an element in
    loaded = through_torch([minicnn.tensor(flipped), minicnn.Tensor(odd)])
    assert np.array_equal(loaded[0].numpy(), flipped) and bits(loaded[1]) == bits(odd)


def test_containers_and_python_values_come_through_torch():
    obj = {"epoch": 3, "neg": -70000, "big": 2**100, "small": -(2**70), "lr": 0.1, "nan": float("nan"),
           "name": "ünï \u2603", "flag": True, "none": None, "c": 1 - 2j, "b": b"\x00\xff", "empty": b"",
           "ba": bytearray(b"ab"), "betas": (0.9, 0.99), "list": [1, [2, (3, 4, 5, 6)]], "od": OrderedDict(b=1, a=2),
           3: "int key", (1, "a"): "tuple key", "size": minicnn.Size([2, 3]), "dtype": minicnn.float16,
           "device": minicnn.device("cpu")}
    loaded = through_torch(obj)
    assert list(loaded) == list(obj)
    for key in obj:
        if key not in ("nan", "size", "dtype", "device"):
            assert loaded[key] == obj[key] and type(loaded[key]) is type(obj[key]), key
    assert loaded["nan"] != loaded["nan"]
    assert loaded["size"] == torch.Size([2, 3]) and loaded["dtype"] is torch.float16
    assert loaded["device"] == torch.device("cpu")
    assert type(loaded["betas"]) is tuple and list(loaded["od"]) == ["b", "a"]


def test_the_same_object_always_gives_the_same_bytes():
    sd = lenet5().state_dict()
    assert to_torch_bytes(sd) == to_torch_bytes(sd)


def test_a_pth_or_pt_path_gets_torchs_format_and_any_other_name_or_file_object_minicnns(tmp_path):
    obj = {"w": minicnn.ones(2)}
    for name in ("a.pth", "b.pt", "C.PTH"):
        minicnn.save(obj, tmp_path / name)
        assert zipfile.ZipFile(tmp_path / name).namelist()[0] == f"{name.rsplit('.', 1)[0]}/data.pkl", name
        assert torch.equal(torch.load(tmp_path / name, weights_only=True)["w"], torch.ones(2))
    minicnn.save(obj, tmp_path / "c.ckpt")
    buffer = io.BytesIO()
    minicnn.save(obj, buffer)
    for data in ((tmp_path / "c.ckpt").read_bytes(), buffer.getvalue()):
        assert zipfile.ZipFile(io.BytesIO(data)).namelist()[0] == mio.STRUCTURE


@pytest.mark.parametrize("obj, path, what", [
    ({"w": np.ones(3)}, "obj['w']", "minicnn.tensor(x)"),
    ({"acc": np.float64(0.5)}, "obj['acc']", "float(x)"),
    ({"fn": len}, "obj['fn']", "function"),
    ({"k": {frozenset([1]): 2}}, "obj['k'] (key frozenset({1}))", "dict key"),
    ([minicnn.tensor(np.array(["a"]))], "obj[0]", "dtype PyTorch does not have"),
])
def test_what_torch_load_would_refuse_is_refused_at_save_naming_its_place(tmp_path, obj, path, what):
    with pytest.raises(TypeError) as info:
        minicnn.save(obj, tmp_path / "x.pth")
    assert f"cannot store {path}" in str(info.value) and what in str(info.value)
    assert os.listdir(tmp_path) == []


def test_saving_a_whole_model_to_pth_says_to_save_its_state_dict(tmp_path):
    with pytest.raises(TypeError, match=r"model\.state_dict\(\)"):
        minicnn.save(lenet5(), tmp_path / "model.pth")


# -- what torch writes, minicnn reads ------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_from_torch_comes_back_bit_equal_and_goes_back_to_torch(dtype):
    tensors = [torch.from_numpy(values(dtype, shape, seed=i)) for i, shape in enumerate([(), (0, 3), (4, 5)])]
    loaded = from_torch(tensors)
    assert all(type(t) is minicnn.Tensor for t in loaded)
    assert [bits(t) for t in loaded] == [bits(t) for t in tensors]
    again = through_torch(loaded)
    assert [bits(t) for t in again] == [bits(t) for t in tensors]


def test_a_torch_state_dict_of_conv_and_linear_loads_into_the_same_minicnn_model(tmp_path):
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 5))
    ours = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 5))
    torch.save(theirs.state_dict(), tmp_path / "torch_model.pth")
    sd = minicnn.load(tmp_path / "torch_model.pth")
    assert type(sd) is OrderedDict and list(sd) == list(theirs.state_dict())
    assert sd._metadata == theirs.state_dict()._metadata  # torch's per-module versions come along
    result = ours.load_state_dict(sd)
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(minicnn.tensor(x)).array, expected, rtol=1e-5, atol=1e-6)


def test_metadata_survives_torch_minicnn_torch():
    sd = torch.nn.Linear(3, 2).state_dict()
    again = through_torch(from_torch(sd))
    assert again._metadata == sd._metadata and [bits(v) for v in again.values()] == [bits(v) for v in sd.values()]


def test_nested_containers_and_python_values_from_torch_keep_their_types():
    obj = {"epoch": 7, "cfg": {"betas": (0.9, 0.99), "name": "run", None: True, 2: [1.5, -3, 2**70]},
           "history": [[0.1, 0.2], (3, 4, 5, 6)], "b": b"\x00\x01", "empty": b"", "ba": bytearray(b"z"), "c": 2j,
           "set": {1, 2}, "size": torch.Size([3, 4]), "dtype": torch.int8, "dev": torch.device("cpu"),
           "od": OrderedDict(z=1, a=2)}
    loaded = from_torch(obj)
    assert loaded["cfg"] == obj["cfg"] and type(loaded["cfg"]["betas"]) is tuple
    assert loaded["history"] == obj["history"] and type(loaded["history"][1]) is tuple
    for key in ("epoch", "b", "empty", "ba", "c", "set"):
        assert loaded[key] == obj[key] and type(loaded[key]) is type(obj[key]), key
    assert type(loaded["size"]) is minicnn.Size and loaded["size"] == (3, 4)
    assert loaded["dtype"] == minicnn.int8 and loaded["dev"] == minicnn.device("cpu")
    assert type(loaded["od"]) is OrderedDict and list(loaded["od"]) == ["z", "a"]


def test_a_transposed_a_sliced_and_an_expanded_tensor_come_back_as_views_with_the_right_values():
    base = torch.arange(24.0).reshape(4, 6)
    obj = {"base": base, "t": base.t(), "slice": base[1:3, ::2], "col": base[:, 5], "expand": base[0, :1].expand(3, 5)}
    loaded = from_torch(obj)
    for name, tensor in obj.items():
        assert np.array_equal(loaded[name].array, tensor.numpy()), name
    assert all(np.shares_memory(loaded[name].array, loaded["base"].array) for name in obj)
    assert loaded["t"].array.strides == (4, 24)


def test_tied_weights_from_torch_share_one_array_and_stay_tied_when_saved_again():
    encoder = torch.nn.Linear(4, 4, bias=False)
    decoder = torch.nn.Linear(4, 4, bias=False)
    decoder.weight = encoder.weight
    sd = torch.nn.Sequential(encoder, decoder).state_dict()
    loaded = from_torch(sd)
    assert np.shares_memory(loaded["0.weight"].array, loaded["1.weight"].array)
    again = through_torch(loaded)
    assert again["0.weight"].untyped_storage().data_ptr() == again["1.weight"].untyped_storage().data_ptr()
    assert bits(again["1.weight"]) == bits(sd["1.weight"])


def test_parameters_saved_by_torch_load_as_parameters():
    params = [torch.nn.Parameter(torch.randn(2, 3)), torch.nn.Parameter(torch.ones(2), requires_grad=False)]
    loaded = from_torch(params)
    assert [type(p).__name__ for p in loaded] == ["Parameter", "Parameter"]
    assert [p.requires_grad for p in loaded] == [True, False]
    assert [bits(p) for p in loaded] == [bits(p) for p in params]


def test_a_torch_adam_state_dict_loads_into_minicnn_adam_and_the_next_step_matches(tmp_path):
    torch.manual_seed(0)
    theirs = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(theirs.parameters(), lr=0.01, betas=(0.8, 0.9))
    x, y = torch.randn(5, 3), torch.randn(5, 2)
    for _ in range(2):
        opt.zero_grad()
        ((theirs(x) - y) ** 2).mean().backward()
        opt.step()
    torch.save({"model": theirs.state_dict(), "optim": opt.state_dict()}, tmp_path / "ckpt.pth")

    ckpt = minicnn.load(tmp_path / "ckpt.pth")
    assert list(ckpt["optim"]["state"]) == [0, 1]
    step = ckpt["optim"]["state"][0]["step"]
    assert type(step) is minicnn.Tensor and step.shape == () and step.item() == 2.0
    assert ckpt["optim"]["param_groups"][0]["params"] == [0, 1]
    ours = nn.Linear(3, 2)
    ours.load_state_dict(ckpt["model"])
    ours_opt = minicnn.optim.Adam(ours.parameters(), lr=0.01, betas=(0.8, 0.9))
    ours_opt.load_state_dict(ckpt["optim"])
    for model, optimizer, inputs, target in ((theirs, opt, x, y), (ours, ours_opt, minicnn.tensor(x.numpy()),
                                                                   minicnn.tensor(y.numpy()))):
        optimizer.zero_grad()
        ((model(inputs) - target) ** 2).mean().backward()
        optimizer.step()
    np.testing.assert_allclose(ours.weight.array, theirs.weight.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_torchs_legacy_format_is_read_with_views_and_parameters(tmp_path):
    base = torch.arange(6.0).reshape(2, 3)
    obj = {"w": base, "t": base.t(), "i": torch.tensor([-1, 2], dtype=torch.int16),
           "p": torch.nn.Parameter(torch.ones(2)), "epoch": 4}
    torch.save(obj, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    loaded = minicnn.load(tmp_path / "legacy.pth")
    for name in ("w", "t", "i", "p"):
        assert bits(loaded[name]) == bits(obj[name]), name
    assert np.shares_memory(loaded["w"].array, loaded["t"].array)
    assert type(loaded["p"]).__name__ == "Parameter" and loaded["epoch"] == 4


def test_the_format_is_found_from_the_content_whatever_the_name(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "weights.bin")
    torch.save({"w": torch.ones(2)}, tmp_path / "old.ckpt", _use_new_zipfile_serialization=False)
    minicnn.save({"w": minicnn.ones(2)}, tmp_path / "ours.pth")
    os.rename(tmp_path / "ours.pth", tmp_path / "ours.dat")
    for name in ("weights.bin", "old.ckpt", "ours.dat"):
        assert np.array_equal(minicnn.load(tmp_path / name)["w"].array, np.ones(2, np.float32)), name


def test_a_big_endian_archive_is_read_as_its_values():
    data = torch_bytes({"w": torch.arange(4.0), "i": torch.tensor([1, -2])})
    swapped = rezip(data, {"/byteorder": b"big", "/data/0": lambda b: np.frombuffer(b, "<f4").astype(">f4").tobytes(),
                           "/data/1": lambda b: np.frombuffer(b, "<i8").astype(">i8").tobytes()})
    loaded = minicnn.load(io.BytesIO(swapped))
    assert loaded["w"].array.tolist() == [0, 1, 2, 3] and loaded["i"].array.tolist() == [1, -2]


def test_map_location_forms_and_a_saved_cuda_location_load_on_the_cpu():
    data = to_torch_bytes({"w": minicnn.ones(2)})
    on_cuda = rezip(data, {"/data.pkl": lambda b: b.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")})
    assert b"cuda:0" in entries(on_cuda)["archive/data.pkl"]
    for where in (None, "cpu", minicnn.device("cpu"), {"cuda:0": "cpu"}):
        loaded = minicnn.load(io.BytesIO(on_cuda), map_location=where)
        assert loaded["w"].device == minicnn.device("cpu") and loaded["w"].array.tolist() == [1, 1]
    on_mps = rezip(data, {"/data.pkl": lambda b: b.replace(b"X\x03\x00\x00\x00cpu", b"X\x03\x00\x00\x00mps")})
    with pytest.raises(mio.LoadError, match=r"saved on 'mps'.*map_location='cpu'"):
        minicnn.load(io.BytesIO(on_mps), map_location={"cuda:0": "cpu"})
    with pytest.raises(TypeError, match="map_location"):
        minicnn.load(io.BytesIO(data), map_location=lambda storage, loc: storage)


def test_a_bfloat16_tensor_is_refused_naming_it_and_saying_what_to_do():
    with pytest.raises(mio.LoadError, match=r"obj\['model'\]\['w'\] is a torch\.bfloat16 tensor.*v\.float\(\)"):
        from_torch({"model": {"w": torch.ones(2, dtype=torch.bfloat16)}})


def test_a_future_archive_version_is_refused():
    data = rezip(torch_bytes({"w": torch.ones(2)}), {"/version": b"9\n"})
    with pytest.raises(mio.LoadError, match="archive version '9'"):
        minicnn.load(io.BytesIO(data))


# -- the whole story: LeNet-5 across the two engines ----------------------------------------------


def torch_lenet5():
    t = torch.nn
    return t.Sequential(t.Conv2d(1, 6, 5, padding=2), t.Tanh(), t.AvgPool2d(2), t.Conv2d(6, 16, 5), t.Tanh(),
                        t.AvgPool2d(2), t.Conv2d(16, 120, 5), t.Tanh(), t.Flatten(), t.Linear(120, 84), t.Tanh(),
                        t.Linear(84, 10))


def digits():
    return np.random.default_rng(1).standard_normal((4, 1, 28, 28)).astype(np.float32)


def test_a_minicnn_lenet5_saved_as_pth_gives_the_same_logits_in_torch(tmp_path):
    minicnn.manual_seed(3)
    ours = lenet5()
    minicnn.save(ours.state_dict(), tmp_path / "minicnn_model.pth")
    theirs = torch_lenet5()
    theirs.load_state_dict(torch.load(tmp_path / "minicnn_model.pth", weights_only=True))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(digits())).numpy()
    with minicnn.no_grad():
        np.testing.assert_allclose(ours(minicnn.tensor(digits())).array, expected, rtol=1e-4, atol=1e-5)


def test_a_torch_lenet5_loaded_into_minicnn_gives_the_same_logits(tmp_path):
    torch.manual_seed(3)
    theirs = torch_lenet5()
    torch.save(theirs.state_dict(), tmp_path / "torch_model.pth")
    ours = lenet5()
    ours.load_state_dict(minicnn.load(tmp_path / "torch_model.pth"))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(digits())).numpy()
    with minicnn.no_grad():
        np.testing.assert_allclose(ours(minicnn.tensor(digits())).array, expected, rtol=1e-4, atol=1e-5)


# -- pickles that ask for more than tensors ------------------------------------------------------


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_reduce_that_calls_os_system_is_refused_before_it_runs(tmp_path, protocol, legacy):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "x": RunsCode(marker)}, path, pickle_protocol=protocol,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(torchfile.RefusedPickle) as info:
        minicnn.load(path)
    assert f"refused to load {str(path)!r}: the pickle asks for {os.system.__module__}.system, which could run " \
           "code; only tensors and containers are read" in str(info.value)
    assert isinstance(info.value, pickle.UnpicklingError) and isinstance(info.value, mio.LoadError)
    assert not marker.exists()


@pytest.mark.parametrize("obj, refused, hint", [
    (__import__("collections").Counter(a=1), "collections.Counter", ""),
    (np.ones(2), "numpy", "torch.from_numpy"),
    (torch.nn.Linear(2, 2), "torch.nn.modules.linear.Linear", "state_dict()"),
    (getattr, "builtins.getattr", ""),
], ids=["Counter", "numpy", "whole-model", "getattr"])
def test_a_global_outside_the_allowed_set_is_refused_naming_it(obj, refused, hint):
    with pytest.raises(torchfile.RefusedPickle, match=re.escape(f"asks for {refused}")) as info:
        from_torch({"w": torch.ones(2), "x": obj})
    assert hint in str(info.value)


def test_a_pickle_that_sets_attributes_on_a_tensor_is_refused():
    pkl = entries(torch_bytes(torch.ones(2)))["archive/data.pkl"]
    build = b"}" + b"X\x05\x00\x00\x00array" + b"K\x01" + b"s" + b"b"  # {'array': 1}, BUILD on the tensor
    with pytest.raises(torchfile.RefusedPickle, match="sets attributes"):
        minicnn.load(io.BytesIO(with_pickle(pkl[:-1] + build + b".")))


@pytest.mark.parametrize("module, name", [("torch", "Size"), ("collections", "OrderedDict")])
def test_a_pickle_that_sets_attributes_on_an_allowed_global_is_refused_and_changes_nothing(module, name):
    """BUILD with slot state would setattr on the global itself (its __defaults__, its __init__), for every
    later load: refused, and the next file reads as before."""
    state = b"N}" + b"X\x0c\x00\x00\x00__defaults__" + b"K\x05\x85\x85" + b"s\x86"  # (None, {'__defaults__': ((5,),)})
    pkl = b"\x80\x02c" + f"{module}\n{name}\n".encode() + state + b"b."
    with pytest.raises(torchfile.RefusedPickle, match="sets attributes"):
        minicnn.load(io.BytesIO(with_pickle(pkl)))
    assert from_torch({"size": torch.Size(), "od": OrderedDict()}) == {"size": (), "od": OrderedDict()}


def test_a_persistent_id_that_is_not_a_storage_is_refused():
    class OutsideRef(pickle.Pickler):
        def persistent_id(self, obj):
            return ("module", "os") if obj == "here" else None

    buffer = io.BytesIO()
    OutsideRef(buffer, protocol=2).dump(["here"])
    with pytest.raises(torchfile.RefusedPickle, match="outside object"):
        minicnn.load(io.BytesIO(with_pickle(buffer.getvalue())))


def test_a_plain_pickle_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "x.pkl").write_bytes(pickle.dumps(RunsCode(marker), protocol=2))
    with pytest.raises(mio.LoadError, match="never unpickles arbitrary pickles"):
        minicnn.load(tmp_path / "x.pkl")
    assert not marker.exists()


# -- cut and damaged files -----------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["torch", "minicnn", "legacy"])
def test_a_truncated_file_is_refused_with_its_size(tmp_path, writer):
    sd = OrderedDict(w=torch.randn(8, 8), b=torch.zeros(8))
    if writer == "minicnn":
        data = to_torch_bytes(from_torch(sd))
    else:
        data = torch_bytes(sd, _use_new_zipfile_serialization=writer != "legacy")
    path = tmp_path / "cut.pth"
    for cut in sorted({1, 10, 29, 30, 64, 200, len(data) // 3, len(data) // 2, len(data) - 300, len(data) - 23,
                       len(data) - 22, len(data) - 1}):
        path.write_bytes(data[:cut])
        with pytest.raises(mio.LoadError) as info:
            minicnn.load(path)
        message = str(info.value)
        assert str(path) in message and "truncated" in message and f"it has {cut:,} bytes" in message, (cut, message)


def test_a_legacy_file_cut_in_its_storages_says_how_many_bytes_it_needs(tmp_path):
    data = torch_bytes({"w": torch.randn(100)}, _use_new_zipfile_serialization=False)
    (tmp_path / "cut.pth").write_bytes(data[:-10])
    with pytest.raises(mio.LoadError, match=f"it has {len(data) - 10:,} bytes, but its storages need {len(data):,}"):
        minicnn.load(tmp_path / "cut.pth")


def data_regions(data):
    """(first byte, end) of each entry's stored bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        out = []
        for info in zf.infolist():
            name_len, extra_len = struct.unpack("<2H", data[info.header_offset + 26:info.header_offset + 30])
            start = info.header_offset + 30 + name_len + extra_len
            out.append((info.filename, start, start + info.compress_size))
        return out


TORCH_FILE = torch_bytes(OrderedDict(w=torch.randn(6, 6), b=torch.arange(6)))


@settings(max_examples=40)
@given(st.data())
def test_a_flipped_bit_in_the_pickle_or_a_storage_is_refused(data):
    regions = [r for r in data_regions(TORCH_FILE) if r[0].endswith(("data.pkl", "/data/0", "/data/1"))]
    name, start, end = data.draw(st.sampled_from(regions), label="entry")
    at = data.draw(st.integers(start, end - 1), label="offset")
    damaged = bytearray(TORCH_FILE)
    damaged[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    with pytest.raises(mio.LoadError, match="is damaged"):
        minicnn.load(io.BytesIO(bytes(damaged)))


def test_a_storage_of_the_wrong_size_is_refused_with_both_byte_counts():
    data = rezip(TORCH_FILE, {"/data/0": lambda b: b[:-4]})
    with pytest.raises(mio.LoadError, match=r"data/0 holds 140 bytes, but the pickle says storage 0 has 144 bytes "
                                            r"\(36 float32 elements\)"):
        minicnn.load(io.BytesIO(data))


def test_a_missing_storage_is_refused():
    with pytest.raises(mio.LoadError, match="no entry archive/data/1, which its pickle refers to"):
        minicnn.load(io.BytesIO(rezip(TORCH_FILE, drop=["/data/1"])))


def test_a_tensor_reaching_past_its_storage_is_refused():
    data = torch_bytes([torch.arange(4.0)])
    shrunk = rezip(data, {"/data.pkl": lambda b: re.sub(rb"(cpuq.)K\x04t", lambda m: m[1] + b"K\x02t", b),
                          "/data/0": lambda b: b[:8]})
    with pytest.raises(mio.LoadError, match=r"obj\[0\] reads elements up to 3 of storage 0, which has 2"):
        minicnn.load(io.BytesIO(shrunk))


def test_a_compressed_archive_is_refused_as_torch_never_writes_one():
    with pytest.raises(mio.LoadError, match="compressed"):
        minicnn.load(io.BytesIO(rezip(TORCH_FILE, compression=zipfile.ZIP_DEFLATED)))


# -- never half-written --------------------------------------------------------------------------


def fail_on_first_storage(monkeypatch):
    original = mio._write_member

    def failing(zf, name, parts):
        if name.endswith("/data/0"):
            with zf.open(zipfile.ZipInfo(name), "w") as member:
                member.write(b"half a storage")
            raise OSError(28, "No space left on device")
        return original(zf, name, parts)

    monkeypatch.setattr(mio, "_write_member", failing)


def fail_at(name):
    def patch(monkeypatch):
        def failing(*args, **kwargs):
            raise OSError(5, f"Input/output error in {name}")
        monkeypatch.setattr(mio.os, name, failing)
    return patch


@pytest.mark.parametrize("failure", [fail_on_first_storage, fail_at("fsync"), fail_at("replace")],
                         ids=["mid-write", "fsync", "rename"])
def test_a_failed_save_leaves_the_old_file_for_torch_and_no_temporary_file(tmp_path, monkeypatch, failure):
    path = tmp_path / "model.pth"
    minicnn.save({"epoch": 1, "w": minicnn.ones(3)}, path)
    before = path.read_bytes()
    failure(monkeypatch)
    with pytest.raises(OSError):
        minicnn.save({"epoch": 2, "model": lenet5().state_dict()}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.pth"] and path.read_bytes() == before
    assert torch.load(path, weights_only=True)["epoch"] == 1


def test_a_refused_object_never_touches_the_file(tmp_path):
    path = tmp_path / "model.pth"
    minicnn.save({"epoch": 1}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        minicnn.save({"epoch": 2, "w": np.ones(2)}, path)
    assert os.listdir(tmp_path) == ["model.pth"] and path.read_bytes() == before
