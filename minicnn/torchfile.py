"""PyTorch's own file format, read and written without torch.

    minicnn.save(model.state_dict(), "model.pth")              # a .pth or .pt path: this format
    torch_model.load_state_dict(torch.load("model.pth", weights_only=True))
    model.load_state_dict(minicnn.load("torch_model.pth"))     # a file torch.save wrote

What torch.save writes (PyTorch >= 1.6) is a zip archive, its entries stored uncompressed, all
under one folder named after the file, each entry's data starting at a multiple of 64 bytes:

    model/data.pkl                 the object, pickled (protocol 2)
    model/.format_version          "1"
    model/.storage_alignment       "64"
    model/byteorder                "little"
    model/data/0, model/data/1 ... one storage each: its raw elements, little-endian
    model/version                  "3\\n"
    model/.data/serialization_id   40 digits

In data.pkl a tensor is the call torch._utils._rebuild_tensor_v2(storage, storage_offset,
size, stride, requires_grad, backward_hooks): it views storage (a persistent id
('storage', torch.FloatStorage, '0', 'cpu', numel) naming data/0) from storage_offset with
that size and stride, all counted in elements. So a transposed tensor, a slice and tied
weights are views of one storage. (uint16/32/64 use _rebuild_tensor_v3: an UntypedStorage
counted in bytes, and the dtype as one more argument.) A Parameter wraps its tensor in
torch._utils._rebuild_parameter(tensor, requires_grad, backward_hooks).

Before 1.6 (and with _use_new_zipfile_serialization=False) torch.save wrote one stream: five
pickles (a magic number, the protocol version 1001, system info, the object, the storage keys),
then each storage as an int64 element count and its bytes. load reads that too.

Unpickling can run any code, so the reader allows only the globals a file of tensors needs
(collections.OrderedDict, the rebuild functions, the storage classes, torch dtypes, torch.Size,
torch.device, and builtins for bytes, bytearray, complex and set), builds every tensor from
placeholders only after the whole pickle was read, and refuses anything else naming it.
"""

import hashlib
import io
import math
import os
import pickle
import struct
import sys
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from . import io as _io
from ._tensor import Size, Tensor, device
from .backend import get_array_module, is_cupy_array, to_numpy

__all__ = ["save", "load", "RefusedPickle"]

ALIGNMENT = 64  # torch.save starts every entry's data at a multiple of this
_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of the legacy stream
_LEGACY_PROTOCOL = 1001
_MAX_VERSION = 3  # the newest archive 'version' minicnn knows (what torch 2.x writes)

# dtype name (NumPy's and torch's) -> its typed storage class; None: an UntypedStorage + _rebuild_tensor_v3
_STORAGE_OF = {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
               "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage", "int8": "CharStorage",
               "uint8": "ByteStorage", "bool": "BoolStorage", "complex64": "ComplexFloatStorage",
               "complex128": "ComplexDoubleStorage", "uint16": None, "uint32": None, "uint64": None}
# what torch has and NumPy has not: readable as far as the pickle goes, refused once a tensor uses them
_FOREIGN_ITEMSIZE = {"bfloat16": 2, "complex32": 4, "qint8": 1, "quint8": 1, "qint32": 4, "quint4x2": 1,
                     "quint2x4": 1, "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e4m3fnuz": 1,
                     "float8_e5m2fnuz": 1, "float8_e8m0fnu": 1}
_FOREIGN_STORAGE = {"BFloat16Storage": "bfloat16", "ComplexHalfStorage": "complex32", "QInt8Storage": "qint8",
                    "QUInt8Storage": "quint8", "QInt32Storage": "qint32", "QUInt4x2Storage": "quint4x2",
                    "QUInt2x4Storage": "quint2x4"}


class RefusedPickle(_io.LoadError, pickle.UnpicklingError):
    """The pickle asks for something other than tensors and containers: minicnn will not run it."""


class _Bad(ValueError):
    """A damaged file, caught and reported by load with the file's name."""


# -- save --------------------------------------------------------------------------------------


def save(obj, f):
    """Write obj to f (a path or a writable binary file object) in torch.save's zip format.

    obj: dict, OrderedDict (with its _metadata), list and tuple, nested, holding Tensors and
    Parameters, int, float, complex, bool, str, bytes, bytearray, None, minicnn.Size, dtypes and
    devices: what torch.load(path, weights_only=True) reads. A NumPy array or scalar, a Module
    or any other object raises TypeError naming its place, before f is touched. Tensors that
    share memory (views, tied weights) are written as views of one storage, as torch does; so
    a view is saved with the whole array it views (save x[0].clone() to store one row alone).

    A path is written atomically (temporary file, fsync, rename), as minicnn.save writes.
    """
    pickler = _Pickler()
    pickled = pickler.dump(obj)
    name = "archive"
    if isinstance(f, (str, bytes, os.PathLike)):
        path = os.fsdecode(os.fspath(f))
        name = os.path.splitext(os.path.basename(path))[0] or name

    def write(fp):
        _write_archive(fp, name, pickled, pickler.storages)

    _io.write_to(f, write)


class _AlignedZipFile(zipfile.ZipFile):
    """A ZipFile that pads each local header (with an extra field 'FB', as torch does) so that the
    entry's data starts at a multiple of ALIGNMENT: torch can then map storages straight from disk."""

    def open(self, name, mode="r", pwd=None, *, force_zip64=False):
        if mode == "w" and isinstance(name, zipfile.ZipInfo):
            zip64 = force_zip64 or name.file_size * 1.05 > zipfile.ZIP64_LIMIT  # as ZipFile decides
            header = 30 + len(name.filename.encode("utf-8")) + 4 + (20 if zip64 else 0)
            pad = -(self.fp.tell() + header) % ALIGNMENT
            name.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        return super().open(name, mode, pwd, force_zip64=force_zip64)


def _write_archive(fp, name, pickled, storages):
    """The entries in torch's order; the serialization id is a digest of the content, so the
    same object always gives the same bytes."""
    digest = hashlib.sha1(pickled)
    for _, data in storages:
        digest.update(data)
    serialization_id = str(int(digest.hexdigest(), 16) % 10**40).zfill(40).encode()
    with _AlignedZipFile(fp, "w", zipfile.ZIP_STORED) as zf:
        write = _io._write_member  # looked up now, so a test can make it fail mid-write
        write(zf, f"{name}/data.pkl", [pickled])
        write(zf, f"{name}/.format_version", [b"1"])
        write(zf, f"{name}/.storage_alignment", [str(ALIGNMENT).encode()])
        write(zf, f"{name}/byteorder", [b"little"])
        for key, data in storages:
            write(zf, f"{name}/data/{key}", [data])
        write(zf, f"{name}/version", [b"3\n"])
        write(zf, f"{name}/.data/serialization_id", [serialization_id])


def _little_endian(dtype):
    return dtype.byteorder == "<" or dtype.byteorder == "|" or (dtype.byteorder == "=" and sys.byteorder == "little")


def _contiguous_strides(shape):
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


class _Pickler:
    """Writes the pickle opcodes by hand (protocol 2), as torch.save's pickler lays them out.
    Naming torch's globals ourselves (GLOBAL 'torch._utils _rebuild_tensor_v2') is what lets this
    run without torch: pickle.Pickler would import them to check them."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")  # PROTO 2
        self.storages = []  # [(key, 1-D uint8 array of the storage's bytes)]
        self._storage_keys = {}  # (id(root array), dtype) -> key, so views of one array share a storage
        self._memo = {}  # a global's name, or id(tensor) -> memo slot
        self._hosts = {}  # id(CuPy array) -> its host copy
        self._keep = []  # what the ids above refer to, kept alive meanwhile

    def dump(self, obj):
        self.node(obj, "obj", set())
        self.out += b"."  # STOP
        return bytes(self.out)

    # the opcodes
    def _put(self, key):
        slot = self._memo[key] = len(self._memo)
        self.out += b"q" + bytes([slot]) if slot < 256 else b"r" + struct.pack("<I", slot)  # BINPUT / LONG_BINPUT

    def _get(self, key):
        slot = self._memo[key]
        self.out += b"h" + bytes([slot]) if slot < 256 else b"j" + struct.pack("<I", slot)  # BINGET / LONG_BINGET

    def _global(self, module, name):
        key = f"{module} {name}"
        if key in self._memo:
            return self._get(key)
        self.out += b"c" + f"{module}\n{name}\n".encode("ascii")  # GLOBAL
        self._put(key)

    def _int(self, v):
        if 0 <= v < 256:
            self.out += b"K" + bytes([v])  # BININT1
        elif 0 <= v < 65536:
            self.out += b"M" + struct.pack("<H", v)  # BININT2
        elif -2**31 <= v < 2**31:
            self.out += b"J" + struct.pack("<i", v)  # BININT
        else:
            data = v.to_bytes((v.bit_length() >> 3) + 1, "little", signed=True)
            self.out += (b"\x8a" + bytes([len(data)]) if len(data) < 256 else b"\x8b" + struct.pack("<I", len(data)))
            self.out += data  # LONG1 / LONG4

    def _str(self, s):
        data = s.encode("utf-8", "surrogatepass")
        self.out += b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE

    def _tuple(self, items, path, active):
        if len(items) == 0:
            self.out += b")"  # EMPTY_TUPLE
            return
        if len(items) > 3:
            self.out += b"("  # MARK
        for i, item in enumerate(items):
            self.node(item, f"{path}[{i}]", active)
        self.out += {1: b"\x85", 2: b"\x86", 3: b"\x87"}.get(len(items), b"t")  # TUPLE1-3 / TUPLE

    def _call(self, module, name, args, path="", active=None):
        """module.name(*args), the REDUCE of a global."""
        self._global(module, name)
        self._tuple(args, path, set() if active is None else active)
        self.out += b"R"  # REDUCE

    def _bytes(self, data):
        # protocol 2 spells bytes as _codecs.encode(text, 'latin1'), as pickle itself does
        self._call("_codecs", "encode", (bytes(data).decode("latin1"), "latin1"))

    # the values
    def node(self, obj, path, active):
        from .nn.module import Parameter

        kind = type(obj)
        if obj is None:
            self.out += b"N"
        elif kind is bool:
            self.out += b"\x88" if obj else b"\x89"  # NEWTRUE / NEWFALSE
        elif kind is int:
            self._int(obj)
        elif kind is float:
            self.out += b"G" + struct.pack(">d", obj)  # BINFLOAT, big-endian as pickle has it
        elif kind is str:
            self._str(obj)
        elif kind is complex:
            self._call("__builtin__", "complex", (obj.real, obj.imag))
        elif kind is bytes:
            self._bytes(obj)
        elif kind is bytearray:
            self._global("__builtin__", "bytearray")
            self._bytes(obj)
            self.out += b"\x85R"  # TUPLE1, REDUCE
        elif isinstance(obj, Tensor):
            if not (kind is Tensor or isinstance(obj, Parameter)):
                _io._refuse(obj, path, "a Tensor subclass minicnn does not know")
            self._tensor(obj, path, isinstance(obj, Parameter))
        elif kind is Size:
            self._call("torch", "Size", (tuple(int(n) for n in obj),))
        elif isinstance(obj, np.dtype):
            if obj.name not in _STORAGE_OF:
                _io._refuse(obj, path, f"the dtype {obj}, which PyTorch does not have")
            self._global("torch", obj.name)
        elif kind is device:
            self._call("torch", "device", (str(obj),))
        elif kind in (list, tuple, dict, OrderedDict):
            if id(obj) in active:
                _io._refuse(obj, path, "a container that holds itself")
            active.add(id(obj))
            self._container(obj, path, active)
            active.discard(id(obj))
        elif isinstance(obj, (np.ndarray, np.generic)) or is_cupy_array(obj):
            what = "a NumPy scalar" if isinstance(obj, np.generic) else "an array"
            fix = "float(x) or int(x)" if isinstance(obj, np.generic) else "minicnn.tensor(x)"
            raise TypeError(f"minicnn.save cannot store {path} in PyTorch's format: it is {what} "
                            f"({_io._short_repr(obj)}), which torch.load(weights_only=True) refuses. Store {fix} "
                            "instead, or save to a path that does not end in .pth or .pt to use minicnn's own "
                            "format, which keeps arrays.")
        else:
            _io._refuse(obj, path)

    def _container(self, obj, path, active):
        if type(obj) is tuple:
            return self._tuple(obj, path, active)
        if type(obj) is list:
            self.out += b"]"  # EMPTY_LIST
            if obj:
                self.out += b"("
                for i, item in enumerate(obj):
                    self.node(item, f"{path}[{i}]", active)
                self.out += b"e"  # APPENDS
            return
        if type(obj) is OrderedDict:
            self._call("collections", "OrderedDict", ())
        else:
            self.out += b"}"  # EMPTY_DICT
        if obj:
            self.out += b"("
            for key, value in obj.items():
                if not (key is None or type(key) in (bool, int, float, str, tuple)):
                    _io._refuse(key, f"{path} (key {key!r})", "a dict key of a type minicnn.save cannot store")
                self.node(key, f"{path} (key {key!r})", active)
                self.node(value, f"{path}[{key!r}]", active)
            self.out += b"u"  # SETITEMS
        attributes = getattr(obj, "__dict__", None)  # a state_dict's _metadata, set by BUILD as pickle does
        if attributes:
            self.out += b"}("
            for name, value in attributes.items():
                self._str(name)
                self.node(value, f"{path}.{name}", active)
            self.out += b"ub"  # SETITEMS, BUILD

    def _tensor(self, t, path, is_parameter):
        if id(t) in self._memo:  # the same Tensor object twice: one object after loading, as pickle keeps it
            return self._get(id(t))
        key, numel, offset, stride, dtype, location = self._storage(t.array, path)
        if is_parameter:
            self._global("torch._utils", "_rebuild_parameter")
        typed = _STORAGE_OF[dtype.name]
        self._global("torch._utils", "_rebuild_tensor_v2" if typed else "_rebuild_tensor_v3")
        self.out += b"(("  # MARK for the arguments, MARK for the persistent id
        self._str("storage")
        self._global("torch", typed) if typed else self._global("torch.storage", "UntypedStorage")
        self._str(key)
        self._str(location)
        self._int(numel if typed else numel * dtype.itemsize)  # an UntypedStorage counts bytes
        self.out += b"tQ"  # TUPLE, BINPERSID
        self._int(offset)
        self._tuple(tuple(int(n) for n in t.array.shape), path, set())
        self._tuple(stride, path, set())
        self.out += b"\x88" if t.requires_grad and not is_parameter else b"\x89"
        self._call("collections", "OrderedDict", ())  # backward_hooks: never saved
        if not typed:
            self._global("torch", dtype.name)
        self.out += b"tR"  # TUPLE, REDUCE
        if is_parameter:
            self.out += b"\x88" if t.requires_grad else b"\x89"
            self._call("collections", "OrderedDict", ())
            self.out += b"\x87R"  # TUPLE3, REDUCE
        self._keep.append(t)
        self._put(id(t))

    def _storage(self, array, path):
        """(key, numel, offset, stride, dtype, location) of the storage that holds array: the whole
        array it views when that can be expressed (non-negative strides, whole elements), else a copy."""
        location = "cuda:0" if is_cupy_array(array) else "cpu"
        if location == "cpu":
            host = array
        else:  # one host copy per GPU array, so that tied weights still share it
            if id(array) not in self._hosts:
                self._keep.append(array)
                self._hosts[id(array)] = to_numpy(array)
            host = self._hosts[id(array)]
        if host.dtype.name not in _STORAGE_OF:
            _io._refuse(array, path, f"a {host.dtype} tensor, a dtype PyTorch does not have")
        if not _little_endian(host.dtype):
            host = host.astype(host.dtype.newbyteorder("<"))
        itemsize = host.dtype.itemsize
        root, start = self._root(host)
        if root is not None:
            spans = [s * (n - 1) for n, s in zip(host.shape, host.strides)]
            whole = (start >= 0 and start % itemsize == 0 and root.nbytes % itemsize == 0
                     and all(s >= 0 and s % itemsize == 0 for s in host.strides)
                     and start + sum(spans) + itemsize <= root.nbytes)
            if whole:
                key = self._storage_key(root, host.dtype)
                return (key, root.nbytes // itemsize, start // itemsize,
                        tuple(s // itemsize for s in host.strides), host.dtype, location)
        own = np.ascontiguousarray(host)  # a copy: its own storage
        key = self._storage_key(own, host.dtype)
        return key, own.size, 0, _contiguous_strides(own.shape), host.dtype, location

    @staticmethod
    def _root(array):
        """(the array whose memory array views, array's byte offset in it), or (None, 0) when that
        memory is not one contiguous block or array is empty."""
        root = array
        while isinstance(root.base, np.ndarray):
            root = root.base
        if array.size == 0 or not (root.flags.c_contiguous or root.flags.f_contiguous) or root.dtype.hasobject:
            return None, 0
        return root, array.__array_interface__["data"][0] - root.__array_interface__["data"][0]

    def _storage_key(self, root, dtype):
        if (id(root), dtype) not in self._storage_keys:
            key = str(len(self.storages))
            self._storage_keys[(id(root), dtype)] = key
            self._keep.append(root)
            self.storages.append((key, root.ravel(order="K").view(np.uint8)))
        return self._storage_keys[(id(root), dtype)]


# -- load --------------------------------------------------------------------------------------


def load(f, map_location=None, weights_only=None):
    """minicnn.load: the object in f, whichever format it is in (this one, the legacy one, or
    minicnn's own), found from its content."""
    return _io.load(f, map_location=map_location, weights_only=weights_only)


def archive_prefix(names):
    """The folder holding data.pkl in a zip that torch.save wrote, or None."""
    folders = [n[:-len("/data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    return folders[0] if len(folders) == 1 else None


def is_legacy(head):
    """Whether these first bytes start torch's legacy stream (its magic number, pickled), even cut short."""
    magic = b"\x8a\x0a" + _MAGIC.to_bytes(10, "little")
    pickled = b"\x80\x02" + magic + b"."  # protocol 2, torch.save's default
    return head[:1] == b"\x80" and (magic in head[:32] or (len(head) < len(pickled) and pickled.startswith(head)))


class _Ref:
    """Placeholders the unpickler builds instead of real objects; pickle's BUILD cannot touch them."""
    __slots__ = ()

    def __setstate__(self, state):
        raise RefusedPickle(f"refused to load: the pickle sets attributes on a {type(self).__name__[1:]}, "
                            "which torch.save never writes")


class _Callable(_Ref):
    """A global the pickle may call, and do nothing else with: an instance, so that pickle's BUILD
    (setattr) cannot reach the function or class behind it and change it for later loads."""
    __slots__ = ("function",)

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)


class _StorageType(_Ref):
    __slots__ = ("dtype",)  # a name in _STORAGE_OF or _FOREIGN_ITEMSIZE; None for an UntypedStorage

    def __init__(self, dtype):
        self.dtype = dtype


class _Storage(_Ref):
    __slots__ = ("key", "dtype", "nbytes", "location")

    def __init__(self, key, dtype, nbytes, location):
        self.key, self.dtype, self.nbytes, self.location = key, dtype, nbytes, location


class _TensorRef(_Ref):
    __slots__ = ("storage", "offset", "size", "stride", "requires_grad", "dtype")

    def __init__(self, storage, offset, size, stride, requires_grad, dtype):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.requires_grad, self.dtype = requires_grad, dtype


class _ParameterRef(_Ref):
    __slots__ = ("tensor", "requires_grad")

    def __init__(self, tensor, requires_grad):
        self.tensor, self.requires_grad = tensor, requires_grad


class _SizeRef(_Ref):
    __slots__ = ("dims",)

    def __init__(self, dims):
        self.dims = dims


class _DeviceRef(_Ref):
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class _DtypeRef(_Ref):
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class _PickledOrderedDict(OrderedDict):
    """collections.OrderedDict as the pickle builds it; BUILD's attributes (a state_dict's
    _metadata) wait in _state until they are checked."""

    def __setstate__(self, state):
        if not isinstance(state, dict) or not all(isinstance(k, str) and k.isidentifier() and not k.startswith("__")
                                                  for k in state):
            raise _Bad("an OrderedDict's pickled attributes are not a dict of plain names")
        self.__dict__.setdefault("_state", {}).update(state)


def _is_int(v, low=0):
    return type(v) is int and v >= low


def _int_tuple(v):
    return type(v) is tuple and all(_is_int(n) for n in v)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata, dtype):
    if not isinstance(storage, _Storage):
        raise _Bad(f"a tensor's storage is {type(storage).__name__}, not a storage")
    if not (_is_int(storage_offset) and _int_tuple(size) and _int_tuple(stride) and len(size) == len(stride)
            and type(requires_grad) is bool):
        raise _Bad(f"a tensor has an invalid offset, size or stride ({storage_offset!r}, {size!r}, {stride!r})")
    if not isinstance(backward_hooks, dict) or backward_hooks:
        raise _Bad("a tensor carries backward hooks, which torch.save never writes")
    if metadata:
        raise RefusedPickle(f"refused to load: a tensor carries metadata {sorted(metadata)!r} (a conjugate or "
                            "negative view, or a tensor subclass): call .resolve_conj() / .resolve_neg() / "
                            ".as_subclass(torch.Tensor) in PyTorch before saving")
    if storage.dtype is None:
        storage.dtype = dtype
    elif storage.dtype != dtype:
        raise _Bad(f"storage {storage.key} is read as {storage.dtype} and as {dtype}")
    return _TensorRef(storage, storage_offset, size, stride, requires_grad, dtype)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    if not isinstance(storage, _Storage) or storage.dtype is None:
        raise _Bad("_rebuild_tensor_v2 is given an UntypedStorage, which has no dtype")
    return _rebuild_tensor(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata,
                           storage.dtype)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype,
                       metadata=None):
    if not isinstance(dtype, (np.dtype, _DtypeRef)):
        raise _Bad(f"_rebuild_tensor_v3 is given {type(dtype).__name__} as its dtype")
    name = dtype.name
    if isinstance(storage, _Storage) and storage.nbytes % _itemsize(name):
        raise _Bad(f"storage {storage.key} holds {storage.nbytes} bytes, not a whole number of {name} elements")
    return _rebuild_tensor(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata, name)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    if not isinstance(data, _TensorRef) or type(requires_grad) is not bool:
        raise _Bad("_rebuild_parameter is given something other than a tensor and a bool")
    if not isinstance(backward_hooks, dict) or backward_hooks:
        raise _Bad("a parameter carries backward hooks, which torch.save never writes")
    return _ParameterRef(data, requires_grad)


def _itemsize(name):
    return np.dtype(name).itemsize if name in _STORAGE_OF else _FOREIGN_ITEMSIZE[name]


def _size(dims=()):
    if not _int_tuple(dims):
        raise _Bad(f"torch.Size is given {dims!r}")
    return _SizeRef(dims)


def _device(name, index=None):
    if type(name) is not str or not (index is None or _is_int(index)):
        raise _Bad(f"torch.device is given {name!r}, {index!r}")
    return _DeviceRef(name if index is None else f"{name}:{index}")


def _encode(text, encoding="latin1"):
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise RefusedPickle("refused to load: the pickle calls _codecs.encode otherwise than pickle spells bytes")
    return text.encode("latin1")


def _bytes(*args):
    if args:
        raise RefusedPickle("refused to load: the pickle calls bytes(...) with arguments; only bytes() is read")
    return b""


def _bytearray(data=b""):
    if type(data) is not bytes:
        raise RefusedPickle("refused to load: the pickle calls bytearray on something other than bytes")
    return bytearray(data)


def _complex(real=0.0, imag=0.0):
    if not all(type(v) in (int, float) for v in (real, imag)):
        raise RefusedPickle("refused to load: the pickle calls complex on something other than two numbers")
    return complex(real, imag)


def _set(items=()):
    if type(items) is not list:
        raise RefusedPickle("refused to load: the pickle calls set on something other than a list")
    return set(items)


_ALLOWED = {name: _Callable(function) if callable(function) else function for name, function in {
    "collections.OrderedDict": _PickledOrderedDict,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch.storage.UntypedStorage": _StorageType(None),
    "torch.Size": _size,
    "torch.device": _device,
    "_codecs.encode": _encode,
    "builtins.bytes": _bytes,
    "builtins.bytearray": _bytearray,
    "builtins.complex": _complex,
    "builtins.set": _set,
}.items()}


def _python3_name(module, name):
    """Protocol 2 spells some globals as Python 2 did (__builtin__.set): their Python 3 names."""
    if (module, name) in _compat_names:
        return _compat_names[(module, name)]
    return _compat_modules.get(module, module), name


def _allowed_global(module, name):
    """What the pickle gets for GLOBAL module.name (a Python 3 name), or None (then refused)."""
    found = _ALLOWED.get(f"{module}.{name}")
    if found is not None:
        return found
    if module in ("torch", "torch.cuda") and name.endswith("Storage"):  # torch.cuda.* in files from torch 1.x
        dtype = next((d for d, s in _STORAGE_OF.items() if s == name), None) or _FOREIGN_STORAGE.get(name)
        return _StorageType(dtype) if dtype else None
    if module == "torch" and name in _STORAGE_OF:
        return np.dtype(name)
    if module == "torch" and name in _FOREIGN_ITEMSIZE:
        return _DtypeRef(name)
    return None


def _load_compat():
    import _compat_pickle

    return _compat_pickle.NAME_MAPPING, _compat_pickle.IMPORT_MAPPING


_compat_names, _compat_modules = _load_compat()


def _refusal(label, module, name):
    full = f"{module}.{name}"
    hint = ""
    if module.split(".")[0] == "numpy":
        hint = (" (a NumPy array or scalar pickled into the file: in PyTorch, turn it into a tensor with "
                "torch.from_numpy(x) or a number with x.item() before torch.save)")
    elif module.startswith("torch.nn") or module.startswith("torch.optim") or module == "__main__":
        hint = (" (the file holds a pickled object, such as a whole model from torch.save(model): in PyTorch, "
                "save model.state_dict() instead, and load it into the same model built in code)")
    elif module.startswith("torch"):
        hint = " (a kind of tensor or object minicnn cannot read: sparse, quantized, a tensor subclass ...)"
    return RefusedPickle(f"refused to load {label}: the pickle asks for {full}, which could run code; only "
                         f"tensors and containers are read{hint}.")


class _Unpickler(pickle.Unpickler):
    """pickle's own unpickler, allowed only the globals above; storages come back as _Storage
    placeholders registered in self.storages (key -> _Storage)."""

    def __init__(self, file, label, storages):
        super().__init__(file, encoding="utf-8")
        self.label, self.storages = label, storages

    def find_class(self, module, name):
        module, name = _python3_name(module, name)
        found = _allowed_global(module, name)
        if found is None:
            raise _refusal(self.label, module, name)
        return found

    def persistent_load(self, pid):
        if not (type(pid) is tuple and len(pid) in (5, 6) and pid[0] == "storage"):
            raise RefusedPickle(f"refused to load {self.label}: the pickle refers to the outside object "
                                f"{_io._short_repr(pid)}; only storages are read")
        _, kind, key, location, numel = pid[:5]
        if not (isinstance(kind, _StorageType) and type(key) is str and type(location) is str and _is_int(numel)):
            raise _Bad(f"a storage's persistent id {_io._short_repr(pid)} is not (type, key, location, numel)")
        if len(pid) == 6 and pid[5] is not None:
            raise _io.LoadError(f"{self.label} holds storage views, from a PyTorch before 1.0: load it with "
                                "PyTorch and save it again with torch.save(obj, path).")
        nbytes = numel * _itemsize(kind.dtype) if kind.dtype else numel
        known = self.storages.setdefault(key, _Storage(key, kind.dtype, nbytes, location))
        if (known.nbytes, known.location) != (nbytes, location) or (kind.dtype and known.dtype != kind.dtype):
            raise _Bad(f"storage {key} is described twice, differently")
        return known


class _Builder:
    """Turns the unpickled placeholders into minicnn objects, once every storage is read:
    tensors as views of their storage's array (on the device map_location says)."""

    def __init__(self, arrays, where, label):
        self.arrays, self.where, self.label = arrays, where, label
        self.moved, self.done, self.active = {}, {}, set()

    def value(self, obj, path):
        kind = type(obj)
        if obj is None or kind in (bool, int, float, complex, str, bytes, bytearray) or isinstance(obj, np.dtype):
            return obj
        if id(obj) in self.done:
            return self.done[id(obj)]
        if kind is _TensorRef:
            out = self._tensor(obj, path)
        elif kind is _ParameterRef:
            from .nn.module import Parameter

            tensor = self._tensor(obj.tensor, path)
            if obj.requires_grad and tensor.dtype.kind not in "fc":
                raise _Bad(f"{path} is a {tensor.dtype} parameter marked requires_grad")
            out = Parameter(tensor.array, requires_grad=obj.requires_grad)
        elif kind is _SizeRef:
            out = Size(obj.dims)
        elif kind is _DeviceRef:
            out = self._device(obj.name, path)
        elif kind is _DtypeRef:
            raise _io.LoadError(f"{self.label}: {path} is torch.{obj.name}, a dtype NumPy (and so minicnn) does "
                                "not have.")
        elif kind in (list, tuple, dict, set, frozenset, _PickledOrderedDict):
            if id(obj) in self.active:
                raise _Bad(f"{path} is a container that holds itself")
            self.active.add(id(obj))
            out = self._container(obj, path)
            self.active.discard(id(obj))
        else:
            what = "a bare storage (torch.save of t.storage())" if kind is _Storage else \
                "a class or function where a value belongs"
            raise _io.LoadError(f"{self.label}: {path} is {what}; minicnn reads tensors and containers.")
        self.done[id(obj)] = out
        return out

    def _container(self, obj, path):
        if type(obj) in (list, tuple):
            return type(obj)(self.value(v, f"{path}[{i}]") for i, v in enumerate(obj))
        if type(obj) in (set, frozenset):
            return type(obj)(self.value(v, f"{path} (item)") for v in obj)
        out = OrderedDict() if type(obj) is _PickledOrderedDict else {}
        for key, value in obj.items():
            out[self.value(key, f"{path} (key {key!r})")] = self.value(value, f"{path}[{key!r}]")
        for name, value in obj.__dict__.get("_state", {}).items() if type(obj) is _PickledOrderedDict else ():
            setattr(out, name, self.value(value, f"{path}.{name}"))
        return out

    def _device(self, name, path):
        try:
            return device(name)
        except ValueError:
            raise _io.LoadError(f"{self.label}: {path} is torch.device({name!r}), a device minicnn does not have "
                                "(it has 'cpu' and 'cuda').") from None

    def _tensor(self, ref, path):
        if id(ref) in self.done:
            return self.done[id(ref)]
        if ref.dtype not in _STORAGE_OF:
            raise _io.LoadError(f"{self.label}: {path} is a torch.{ref.dtype} tensor, a dtype NumPy (and so "
                                f"minicnn) does not have. In PyTorch, convert it first, e.g. "
                                "{k: v.float() for k, v in state_dict.items()}, and save that.")
        storage = self._storage_on_device(ref.storage, path)
        numel = storage.shape[0]
        extent = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride)) + 1
        if math.prod(ref.size) == 0:
            array = get_array_module(storage).zeros(ref.size, storage.dtype)
        elif extent > numel:
            raise _Bad(f"{path} reads elements up to {extent - 1} of storage {ref.storage.key}, which has {numel}")
        elif isinstance(storage, np.ndarray):  # a view whose .base is the storage: saving it again shares it
            itemsize = storage.dtype.itemsize
            array = np.ndarray(ref.size, storage.dtype, buffer=storage, offset=ref.offset * itemsize,
                               strides=tuple(s * itemsize for s in ref.stride))
        else:
            xp = get_array_module(storage)
            array = xp.lib.stride_tricks.as_strided(storage[ref.offset:], ref.size,
                                                    tuple(s * storage.dtype.itemsize for s in ref.stride))
        if ref.requires_grad and array.dtype.kind not in "fc":
            raise _Bad(f"{path} is a {array.dtype} tensor marked requires_grad")
        out = Tensor._wrap(array).requires_grad_(ref.requires_grad)
        self.done[id(ref)] = out
        return out

    def _storage_on_device(self, storage, path):
        if storage.key not in self.moved:
            try:
                target = self.where(storage.location)
            except ValueError:
                raise _io.LoadError(f"{self.label}: {path} was saved on {storage.location!r}, a device minicnn "
                                    "does not have: pass map_location='cpu'.") from None
            self.moved[storage.key] = _io._move(self.arrays[storage.key], target)
        return self.moved[storage.key]


def _typed(buffer, storage, big_endian):
    """The storage's bytes as a 1-D array of its dtype (native byte order)."""
    if storage.dtype not in _STORAGE_OF:  # bfloat16 and co: refused if a tensor uses it
        return buffer
    dtype = np.dtype(storage.dtype)
    array = buffer.view(dtype)
    if big_endian:
        array.byteswap(inplace=True)
    return array


def _unpickle(fp, label, storages):
    try:
        return _Unpickler(fp, label, storages).load()
    except RefusedPickle as exc:  # raised where the file's name is not known: add it
        if str(exc).startswith("refused to load:"):
            raise RefusedPickle(str(exc).replace("refused to load:", f"refused to load {label}:", 1)) from None
        raise
    except (_io.LoadError, _Bad):
        raise
    except RecursionError:
        raise _Bad("its pickle is nested too deeply") from None
    except Exception as exc:  # UnpicklingError, EOFError, a TypeError from a call given the wrong arguments
        raise _Bad(f"its pickle cannot be read ({type(exc).__name__}: {exc})") from None


def read_zip(zf, prefix, label, where):
    """The object in an open zip that torch.save wrote, every byte read and checked first."""
    try:
        names = set(zf.namelist())
        version = zf.read(f"{prefix}/version").decode("ascii").strip() if f"{prefix}/version" in names else "1"
        if not version.isdigit() or int(version) > _MAX_VERSION:
            raise _io.LoadError(f"{label} is in PyTorch's archive version {version!r}; minicnn reads versions up to "
                                f"{_MAX_VERSION}. Save it with torch.save from PyTorch 2.x.")
        order = zf.read(f"{prefix}/byteorder").decode("ascii") if f"{prefix}/byteorder" in names else "little"
        if order not in ("little", "big"):
            raise _Bad(f"its byteorder entry says {order!r}")
        storages = {}
        obj = _unpickle(io.BytesIO(_stored(zf, f"{prefix}/data.pkl")), label, storages)
        arrays = {key: _typed(_read_storage(zf, f"{prefix}/data/{key}", s), s, order == "big")
                  for key, s in storages.items()}
        return _build(obj, arrays, where, label)
    except _Bad as exc:
        raise _io.LoadError(f"{label} is damaged: {exc}. {_io._TODO}") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:  # a bad CRC, a cut entry
        raise _io.LoadError(f"{label} is damaged ({type(exc).__name__}: {exc}). {_io._TODO}") from None


def _build(obj, arrays, where, label):
    try:
        return _Builder(arrays, where, label).value(obj, "obj")
    except RecursionError:
        raise _Bad("its object is nested too deeply") from None


def _stored(zf, name):
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        raise _Bad(f"its entry {name} is compressed (method {info.compress_type}); torch.save stores entries as "
                   "they are")
    return zf.read(name)  # reading it whole makes zipfile check its CRC-32


def _read_storage(zf, name, storage):
    """data/<key> as a fresh writable uint8 array, after checking its size against the pickle."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise _Bad(f"it has no entry {name}, which its pickle refers to") from None
    if info.file_size != storage.nbytes:
        raise _Bad(f"{name} holds {info.file_size:,} bytes, but the pickle says storage {storage.key} has "
                   f"{storage.nbytes:,} bytes ({storage.nbytes // _itemsize(storage.dtype or 'uint8'):,} "
                   f"{storage.dtype or 'byte'} elements)")
    if info.compress_type != zipfile.ZIP_STORED:
        raise _Bad(f"its entry {name} is compressed (method {info.compress_type}); torch.save stores entries "
                   "as they are")
    buffer = np.empty(storage.nbytes, np.uint8)
    with zf.open(name) as member:
        _read_into(member, buffer, name)
        if member.read(1):  # reading to the end also makes zipfile check the CRC-32
            raise _Bad(f"{name} has bytes after its data")
    return buffer


def _read_into(fp, buffer, name):
    view, done = memoryview(buffer), 0
    while done < buffer.nbytes:
        got = fp.readinto(view[done:done + _io._CHUNK])
        if not got:
            raise _Bad(f"{name} ends after {done:,} of its {buffer.nbytes:,} bytes")
        done += got


def read_legacy(fp, label, where):
    """The object in torch's legacy stream (before PyTorch 1.6), every byte read and checked first."""
    start = fp.tell()
    size = fp.seek(0, os.SEEK_END) - start
    fp.seek(start)

    try:
        magic, protocol, info = (_unpickle(fp, label, {}) for _ in range(3))
        if magic != _MAGIC or protocol != _LEGACY_PROTOCOL or not isinstance(info, dict):
            raise _Bad(f"its header is {magic!r}, {protocol!r}, not PyTorch's magic number and protocol 1001")
        storages = {}
        obj = _unpickle(fp, label, storages)
        keys = _unpickle(fp, label, {})
        if (type(keys) is not list or not all(type(k) is str for k in keys) or len(keys) != len(storages)
                or set(keys) != set(storages)):
            raise _Bad("its list of storage keys does not match the storages its pickle refers to")
        data_start = fp.tell() - start
        expected = data_start + sum(8 + storages[k].nbytes for k in keys)
        if size < expected:
            raise _io.LoadError(f"{label} is truncated: it has {size:,} bytes, but its storages need {expected:,}. "
                                f"The copy, download or write that made it stopped early. {_io._TODO}")
        arrays = {}
        for key in keys:
            storage = storages[key]
            (count,) = struct.unpack("<q", fp.read(8))
            if count * _itemsize(storage.dtype or "uint8") != storage.nbytes:
                raise _Bad(f"storage {key} says it has {count} elements, its pickle says "
                           f"{storage.nbytes // _itemsize(storage.dtype or 'uint8')}")
            buffer = np.empty(storage.nbytes, np.uint8)
            _read_into(fp, buffer, f"storage {key}")
            arrays[key] = _typed(buffer, storage, big_endian=not info.get("little_endian", True))
        return _build(obj, arrays, where, label)
    except _Bad as exc:
        if fp.tell() - start >= size:  # the pickle machinery ran out of bytes
            raise _io.LoadError(f"{label} is truncated: it has {size:,} bytes and ends inside its pickled header or "
                                "object, before its storages. The copy, download or write that made it stopped "
                                f"early. {_io._TODO}") from None
        raise _io.LoadError(f"{label} is damaged: {exc}. {_io._TODO}") from None

