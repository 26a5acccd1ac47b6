"""torch.save and torch.load for minicnn.

    minicnn.save(model.state_dict(), "best.pth")
    model.load_state_dict(minicnn.load("best.pth"))
    minicnn.save({"epoch": 3, "model": model.state_dict(), "optim": optimizer.state_dict()}, "ckpt.pth")

Two formats. A path ending in .pth or .pt gets PyTorch's own (torch.load reads it; written and
read without torch, in torchfile.py). Any other path, and a file object, gets minicnn's own,
described below: it also keeps NumPy arrays and scalars. load finds the format from the
content, whatever the name: minicnn's, torch's zip, or torch's legacy stream.

minicnn's file (a zip, entries stored uncompressed, as np.savez writes them):

    minicnn.json    {"format": "minicnn.save", "version": 1, "written_by": "minicnn 0.2.0",
                     "arrays": [{"dtype": "<f4", "shape": [6, 1, 5, 5], "device": "cpu", "bytes": 728}, ...],
                     "object": <node>}                                   (always the first entry)
    arrays/0.npy    one entry per array, in the order of "arrays": NumPy's .npy format (header + raw
    arrays/1.npy    bytes, C order), so numpy.load(path)["arrays/0"] reads one by hand
    ...

A <node> describes one value of the saved object:

    null, true, false, 3, 0.5, "text"       None, bool, int, finite float, str (as JSON has them)
    {"$": "float", "value": "nan"}          nan, inf, -inf
    {"$": "complex", "real": 1.0, "imag": 2.0}
    {"$": "bytes", "base64": "..."}         bytes (and "bytearray")
    {"$": "list", "items": [<node>, ...]}   list (and "tuple", "Size" for minicnn.Size)
    {"$": "dict", "items": [[<key node>, <node>], ...]}   dict (and "OrderedDict"): keys keep their
                                            type (3 stays an int, "3" a str) and their order
    {"$": "Tensor", "array": 0, "requires_grad": false}   a Tensor (and "Parameter") on arrays/0.npy
    {"$": "ndarray", "array": 1}            a NumPy or CuPy array
    {"$": "numpy_scalar", "array": 2}       a NumPy scalar (np.float32(1.5)), as a 0-d array

An array reached twice (tied weights: two names, one array) is stored once, and loads as two
Tensors sharing one array, as torch keeps shared storage. A Tensor's .grad and its graph are
not saved. Anything else (a Module, a function, an instance of your own class) is refused at
save time with its place in the object, so a file never holds code.
"""

import base64
import io
import json
import math
import os
import secrets
import shutil
import stat
import struct
import tempfile
import zipfile
from collections import OrderedDict

import numpy as np
from numpy.lib import format as npy

from ._tensor import Size, Tensor, _device_of, _move, device
from .backend import is_cupy_array, to_numpy

__all__ = ["save", "load", "LoadError", "FORMAT", "VERSION"]

FORMAT = "minicnn.save"
VERSION = 1
STRUCTURE = "minicnn.json"
_CHUNK = 1 << 20  # bytes read at a time from an array entry
_ZIP64_LIMIT = (1 << 31) - 1  # beyond this, zip entries carry extra fields: sizes are then "at least"


class LoadError(ValueError):
    """The file cannot be loaded: not a minicnn save, truncated, damaged, or a format minicnn cannot read."""


def _array_member(i):
    return f"arrays/{i}.npy"


# -- save --------------------------------------------------------------------------------------


def save(obj, f):
    """Write obj to f (a path or a writable binary file object), as torch.save does: in PyTorch's
    format when f is a path ending in .pth or .pt (see minicnn.torchfile.save), else in minicnn's.

    obj: dict, OrderedDict, list and tuple, nested, holding Tensors (and Parameters), NumPy or
    CuPy arrays (written from host copies), NumPy scalars, int, float, complex, bool, str, bytes,
    None. Dict keys may be str, int, float, bool, None or tuples of them. Anything else raises
    TypeError naming where it is, e.g. obj['model']['fn'].

    A path is written atomically: to a temporary file in the same folder, flushed to disk, then
    renamed over f. If anything fails, f keeps its previous content and the temporary file is
    removed. The layout of the file is in the module docstring.
    """
    from . import __version__

    if isinstance(f, (str, bytes, os.PathLike)) and os.fsdecode(os.fspath(f)).lower().endswith((".pth", ".pt")):
        from . import torchfile

        return torchfile.save(obj, f)
    encoder = _Encoder()
    root = encoder.node(obj, "obj", set())  # refuses what cannot be saved before touching f
    info = {"format": FORMAT, "version": VERSION, "written_by": f"minicnn {__version__}",
            "arrays": encoder.entries, "object": root}
    structure = json.dumps(info, indent=1, allow_nan=False).encode("utf-8")

    def write(fp):
        _write_zip(fp, structure, encoder.arrays)

    write_to(f, write)


def write_to(f, write):
    """Call write(fp) on what f names: a path is written atomically (a temporary file in the same
    folder, fsync, rename); a seekable file object directly; a pipe or socket through a spooled
    copy, so that its bytes are those a file would get. Shared with torchfile.save."""
    if isinstance(f, (str, bytes, os.PathLike)):
        _write_atomically(os.fsdecode(os.fspath(f)), write)
    elif hasattr(f, "write"):
        if _seekable(f):
            write(f)
        else:
            with tempfile.TemporaryFile() as spool:
                write(spool)
                spool.seek(0)
                shutil.copyfileobj(spool, f)
        if hasattr(f, "flush"):
            f.flush()
    else:
        raise TypeError(f"minicnn.save: f must be a path or a writable binary file object, got {type(f).__name__}")


class _Encoder:
    """Turns the object into JSON nodes, collecting its arrays (host copies, C order) on the way."""

    def __init__(self):
        self.arrays, self.entries = [], []
        self._index = {}  # id(original array) -> its number, so a shared array is stored once
        self._originals = []  # keeps those arrays alive, so an id is never reused meanwhile

    def node(self, obj, path, active):
        from .nn.module import Parameter

        if obj is None or type(obj) in (bool, int, str):
            return obj
        if type(obj) is float:
            return obj if math.isfinite(obj) else {"$": "float", "value": repr(obj)}
        if type(obj) is complex:
            return {"$": "complex", "real": self.node(obj.real, path, active),
                    "imag": self.node(obj.imag, path, active)}
        if type(obj) in (bytes, bytearray):
            return {"$": type(obj).__name__, "base64": base64.b64encode(obj).decode("ascii")}
        if isinstance(obj, Tensor):
            if not (type(obj) is Tensor or isinstance(obj, Parameter)):
                _refuse(obj, path, "a Tensor subclass minicnn does not know")
            kind = "Parameter" if isinstance(obj, Parameter) else "Tensor"
            return {"$": kind, "array": self._array(obj.array, path), "requires_grad": bool(obj.requires_grad)}
        if type(obj) is np.ndarray or isinstance(obj, np.memmap) or _is_cupy_ndarray(obj):
            return {"$": "ndarray", "array": self._array(obj, path)}
        if isinstance(obj, np.generic):
            return {"$": "numpy_scalar", "array": self._array(np.asarray(obj), path)}
        if type(obj) in (list, tuple, Size, dict, OrderedDict):
            if id(obj) in active:
                _refuse(obj, path, "a container that holds itself")
            active.add(id(obj))
            if isinstance(obj, dict):
                items = [[self._key(k, f"{path} (key {k!r})"), self.node(v, f"{path}[{k!r}]", active)]
                         for k, v in obj.items()]
            else:
                items = [self.node(v, f"{path}[{i}]", active) for i, v in enumerate(obj)]
            active.discard(id(obj))
            return {"$": type(obj).__name__, "items": items}
        _refuse(obj, path)

    def _key(self, key, path):
        if key is None or type(key) in (bool, int, float, str, tuple):
            return self.node(key, path, set())
        _refuse(key, path, "a dict key of a type minicnn.save cannot store")

    def _array(self, array, path):
        if id(array) in self._index:
            return self._index[id(array)]
        host = to_numpy(array)
        if host.dtype.hasobject:
            _refuse(array, path, "an array of Python objects (dtype object), which only pickle could store")
        if not host.flags.c_contiguous:
            host = host.copy(order="C")
        self._index[id(array)] = len(self.arrays)
        self._originals.append(array)
        self.arrays.append(host)
        self.entries.append({"dtype": npy.dtype_to_descr(host.dtype), "shape": list(host.shape),
                             "device": str(_device_of(array)), "bytes": len(_npy_header(host)) + host.nbytes})
        return self._index[id(array)]


def _is_cupy_ndarray(obj):
    return is_cupy_array(obj) and hasattr(obj, "shape") and hasattr(obj, "dtype")


def _refuse(obj, path, what=None):
    from .nn.module import Module

    if what is None:
        kind = type(obj).__qualname__ if type(obj).__module__ == "builtins" else \
            f"{type(obj).__module__}.{type(obj).__qualname__}"
        what = ("an " if kind[0] in "aeiou" else "a ") + kind
    hint = ("minicnn.save stores Tensors, arrays, numbers, str, bytes, bool and None, in dict, OrderedDict, "
            "list and tuple; it never pickles code or objects")
    if isinstance(obj, Module):
        hint = ("save the weights instead: minicnn.save(model.state_dict(), path), then rebuild the model in code "
                "and call model.load_state_dict(minicnn.load(path))")
    elif hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"):  # an optimizer, a scheduler
        hint = (f"save its state instead: {type(obj).__name__}.state_dict(), and restore it with "
                "load_state_dict(minicnn.load(path))")
    elif callable(obj):
        hint = "leave functions out of the saved object and rebuild them in code; " + hint
    raise TypeError(f"minicnn.save cannot store {path}: it is {what} ({_short_repr(obj)}). "
                    f"{hint[0].upper()}{hint[1:]}.")


def _short_repr(obj):
    text = repr(obj).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _npy_header(array):
    """The .npy header NumPy writes for this C-ordered array (format 1.0, or 2.0 for a huge one)."""
    header = io.BytesIO()
    fields = npy.header_data_from_array_1_0(array)
    try:
        npy.write_array_header_1_0(header, fields)
    except ValueError:  # a header over 64 KiB (a dtype with thousands of fields)
        header = io.BytesIO()
        npy.write_array_header_2_0(header, fields)
    return header.getvalue()


def _write_zip(fp, structure, arrays):
    """minicnn.json first, then arrays/<i>.npy: uncompressed, with fixed times, so the same object
    always gives the same bytes."""
    with zipfile.ZipFile(fp, "w", zipfile.ZIP_STORED) as zf:
        _write_member(zf, STRUCTURE, [structure])
        for i, array in enumerate(arrays):
            data = memoryview(array.reshape(-1).view(np.uint8)) if array.nbytes else b""
            _write_member(zf, _array_member(i), [_npy_header(array), data])


def _write_member(zf, name, parts):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    info.file_size = sum(len(p) if isinstance(p, bytes) else p.nbytes for p in parts)
    with zf.open(info, "w") as member:
        for part in parts:
            member.write(part)


def _write_atomically(path, write):
    """write(file) into a temporary file beside path, fsync it, then rename it over path."""
    if os.path.islink(path):
        path = os.path.realpath(path)  # replace the file the link points to, not the link
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"minicnn.save: cannot write {path!r}: the folder {folder!r} does not exist "
                                "(create it first, e.g. os.makedirs(folder, exist_ok=True))")
    if os.path.isdir(path):
        raise IsADirectoryError(f"minicnn.save: {path!r} is a folder; give a file name inside it")
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fp:
            write(fp)
            fp.flush()
            os.fsync(fp.fileno())
        if os.path.exists(path):  # keep the permissions of the file being replaced
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _seekable(f):
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


# -- load --------------------------------------------------------------------------------------


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
    """The object saved in f (a path or a readable binary file object) by minicnn.save or by
    torch.save (its zip format, or the legacy one from before PyTorch 1.6), told apart by content.

    Tensors come back as Tensors (Parameters as Parameters), arrays as arrays, containers and
    dict keys as they were. map_location says where arrays go: None or 'cpu' (NumPy, the
    default, whatever device they were saved from), 'cuda' (CuPy), a minicnn.device, or a dict
    {'cuda:0': 'cpu'} from the saved device to the new one (an unlisted device is kept).
    weights_only is accepted for torch's sake: every load is weights-only (minicnn's format has
    no pickle; torch's pickle is read by an unpickler that allows only tensors and containers).

    Raises LoadError (a ValueError) naming the file and what is wrong when it is not a save of
    either kind, is truncated or damaged; torchfile.RefusedPickle (a LoadError) when a torch
    file's pickle asks for anything else. The whole file is read and checked before anything
    is returned.
    """
    if pickle_module is not None or mmap or pickle_load_args:
        given = "pickle_module" if pickle_module is not None else "mmap=True" if mmap else \
            ", ".join(pickle_load_args)
        raise TypeError(f"minicnn.load: {given} is not supported: minicnn reads files with its own unpickler, "
                        "which allows only tensors and containers; call minicnn.load(f, map_location)")
    if weights_only not in (None, True, False):
        raise TypeError(f"minicnn.load: weights_only must be None, True or False, got {weights_only!r}")
    where = _location_rule(map_location)
    if isinstance(f, (str, bytes, os.PathLike)):
        path = os.fsdecode(os.fspath(f))
        with open(path, "rb") as fp:
            return _load_from(fp, repr(path), where)
    if hasattr(f, "read"):
        label = f"the file object {f.name!r}" if isinstance(getattr(f, "name", None), str) else \
            f"the {type(f).__name__} given"
        if not _seekable(f):  # zip needs to seek: read a pipe into memory first
            f = io.BytesIO(f.read())
        return _load_from(f, label, where)
    raise TypeError(f"minicnn.load: f must be a path or a readable binary file object, got {type(f).__name__}")


def _location_rule(map_location):
    """A function saved device (str) -> target device, checked now."""
    if map_location is None:
        return lambda saved: device("cpu")
    if isinstance(map_location, (str, device)):
        target = device(map_location)
        return lambda saved: target
    if isinstance(map_location, dict):
        table = {str(device(k)): device(v) for k, v in map_location.items()}
        return lambda saved: table.get(saved, device(saved))
    raise TypeError(f"minicnn.load: map_location must be None, 'cpu', 'cuda', a minicnn.device or a dict "
                    f"{{saved device: new device}}, got {type(map_location).__name__} (a function, as torch "
                    "allows, is not supported)")


def _load_from(fp, label, where):
    """The object in fp, in whichever format its first bytes and entries say."""
    from . import torchfile

    start = fp.tell()
    size = fp.seek(0, os.SEEK_END) - start
    fp.seek(start)
    head = fp.read(64)
    fp.seek(start)
    if size == 0:
        raise LoadError(f"{label} is empty (0 bytes): whatever wrote it stopped before writing anything. "
                        "Save it again with minicnn.save, or use another copy.")
    if torchfile.is_legacy(head):
        return torchfile.read_legacy(fp, label, where)
    if not b"PK\x03\x04".startswith(head[:4]):  # a zip's first entry (or the start of one, cut short)
        raise LoadError(_not_a_zip(label, head))
    try:
        zf = zipfile.ZipFile(fp)
    except Exception as exc:  # BadZipFile, or struct/OSError from a damaged directory
        raise _broken(fp, start, size, label, exc, ends_early=True) from None
    with zf:
        names = zf.namelist()
        if STRUCTURE in names:
            host, entries, root = _read(zf, fp, start, size, label)
        elif torchfile.archive_prefix(names) is not None:
            return torchfile.read_zip(zf, torchfile.archive_prefix(names), label, where)
        else:
            raise LoadError(_foreign_zip(label, names))
    moved = [_move(a, where(e["device"])) for a, e in zip(host, entries)]
    return _Decoder(host, moved, label).node(root)


def _read(zf, fp, start, size, label):
    """(host arrays, their entries, the root node) of a minicnn save, after reading and checking every byte."""
    try:
        info = json.loads(zf.read(STRUCTURE).decode("utf-8"))
        _check_header(info, label)
        entries = info["arrays"]
        arrays = [_read_array(zf, i, entry) for i, entry in enumerate(entries)]
    except LoadError:
        raise
    except Exception as exc:  # a bad CRC, malformed JSON or .npy header: its end record is whole, so not cut
        raise _broken(fp, start, size, label, exc, ends_early=False) from None
    return arrays, entries, info["object"]


def _check_header(info, label):
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise LoadError(f"{label} has a '{STRUCTURE}' entry but it does not describe a minicnn save "
                        f"(format {info.get('format') if isinstance(info, dict) else None!r}). "
                        "minicnn.load reads files written by minicnn.save.")
    version = info.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise LoadError(f"{label} was written by {info.get('written_by', 'a newer minicnn')} in format version "
                        f"{version!r}; this minicnn reads version {VERSION}. Upgrade minicnn "
                        "(pip install -U minicnn) to read it.")
    if not isinstance(info.get("arrays"), list) or "object" not in info:
        raise ValueError(f"'{STRUCTURE}' lacks its 'arrays' or 'object'")


class _Damaged(ValueError):
    pass


def _read_array(zf, i, entry):
    """arrays/<i>.npy as a fresh writable array, after checking it against its entry."""
    name = _array_member(i)
    device(entry["device"])  # a device minicnn knows, or damage
    try:
        stored = zf.getinfo(name).file_size
    except KeyError:
        raise _Damaged(f"it has no entry '{name}', which its table of arrays lists") from None
    if stored != entry["bytes"]:
        raise _Damaged(f"{name} holds {stored} bytes, the table says {entry['bytes']}")
    with zf.open(name) as member:
        version = npy.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise _Damaged(f"{name} is in .npy version {version}, which minicnn.save never writes")
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran_order, dtype = read_header(member)
        if fortran_order or dtype.hasobject:
            raise _Damaged(f"{name} is in Fortran order or holds Python objects: minicnn.save never writes that")
        if [list(shape), json.loads(json.dumps(npy.dtype_to_descr(dtype)))] != [entry["shape"], entry["dtype"]]:
            raise _Damaged(f"{name} holds {dtype} {shape}, the table says {entry['dtype']} {tuple(entry['shape'])}")
        array = np.empty(shape, dtype)
        view = memoryview(array.reshape(-1).view(np.uint8)) if array.nbytes else memoryview(b"")
        done = 0
        while done < array.nbytes:
            got = member.readinto(view[done:done + _CHUNK])
            if not got:
                raise _Damaged(f"{name} ends after {done} of its {array.nbytes} data bytes")
            done += got
        if member.read(1):  # reading to the end also makes zipfile check the entry's CRC-32
            raise _Damaged(f"{name} has bytes after its data")
    return array


class _Decoder:
    def __init__(self, host, moved, label):
        self.host, self.moved, self.label = host, moved, label

    def node(self, node):
        try:
            return self._node(node)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise LoadError(f"{self.label} is damaged: its '{STRUCTURE}' does not describe a valid object "
                            f"({type(exc).__name__}: {exc}). {_TODO}") from None

    def _node(self, node):
        from .nn.module import Parameter

        if node is None or type(node) in (bool, int, float, str):
            return node
        tag = node["$"]
        if tag == "float":
            return float(node["value"])
        if tag == "complex":
            return complex(self._node(node["real"]), self._node(node["imag"]))
        if tag in ("bytes", "bytearray"):
            data = base64.b64decode(node["base64"], validate=True)
            return data if tag == "bytes" else bytearray(data)
        if tag in ("list", "tuple", "Size"):
            items = [self._node(v) for v in node["items"]]
            return {"list": list, "tuple": tuple, "Size": Size}[tag](items)
        if tag in ("dict", "OrderedDict"):
            out = {} if tag == "dict" else OrderedDict()
            for key, value in node["items"]:
                out[self._node(key)] = self._node(value)
            return out
        if tag in ("Tensor", "Parameter"):
            array, requires_grad = self.moved[node["array"]], node["requires_grad"]
            if requires_grad and array.dtype.kind not in "fc":
                raise ValueError(f"a {array.dtype} tensor marked requires_grad")
            if tag == "Parameter":
                return Parameter(array, requires_grad=requires_grad)
            return Tensor._wrap(array).requires_grad_(requires_grad)
        if tag == "ndarray":
            return self.moved[node["array"]]
        if tag == "numpy_scalar":
            return self.host[node["array"]][()]
        raise ValueError(f"unknown node type {tag!r}")


# -- what a file that is not a (whole) minicnn save is -----------------------------------------

_TODO = "Copy it again from its source, or use another checkpoint."


def _not_a_zip(label, head):
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return (f"{label} is a Python pickle (from pickle.dump), neither a minicnn save nor a torch.save file: "
                "minicnn never unpickles arbitrary pickles, since unpickling can run any code. Open it in Python "
                "and save its tensors with minicnn.save(obj, 'new.pth') or torch.save(obj, 'new.pth').")
    if head.startswith(b"version https://git-lfs"):
        return f"{label} is a Git LFS pointer, not the file itself: run `git lfs pull` to fetch the real file."
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return f"{label} is an HTML page, not a saved file (a download that got a web page instead): download it again."
    return (f"{label} is not a minicnn save file: it does not start like a zip archive (its first bytes are "
            f"{head[:8]!r}). minicnn.load reads files written by minicnn.save; check the path.")


def _foreign_zip(label, names):
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return (f"{label} looks like PyTorch's format (it has a 'data.pkl'), but not as torch.save lays it out "
                f"(one 'data.pkl' in one top folder; its entries: {names[:4]}{' ...' if len(names) > 4 else ''}). "
                f"{_TODO}")
    if "json.npy" in names:
        return (f"{label} is a minicnn training checkpoint (.npz from minicnn.train.save_checkpoint), not a "
                "minicnn.save file: read it with minicnn.train.load_checkpoint(path).")
    if names and all(n.endswith(".npy") for n in names):
        return f"{label} is a NumPy .npz archive, not a minicnn.save file: read it with numpy.load(path)."
    return (f"{label} is a zip archive but not a minicnn save file: it has no '{STRUCTURE}' entry (its entries: "
            f"{names[:4]}{' ...' if len(names) > 4 else ''}). minicnn.load reads files written by minicnn.save.")


_LOCAL = struct.Struct("<4s5H3L2H")  # a zip entry's local header: signature ... name length, extra length


def _entries_present(fp, start, size):
    """[(name, data start, data end, flags)] for each zip entry whose local header is in the file, in order
    from the start (offsets relative to it; the data itself may be cut off)."""
    found, offset = [], 0
    while offset + _LOCAL.size <= size:
        fp.seek(start + offset)
        fields = _LOCAL.unpack(fp.read(_LOCAL.size))
        if fields[0] != b"PK\x03\x04":
            break
        flags, csize, name_len, extra_len = fields[2], fields[7], fields[9], fields[10]
        name = fp.read(name_len).decode("utf-8", "replace")
        data_start = offset + _LOCAL.size + name_len + extra_len
        found.append((name, data_start, data_start + csize, flags))
        offset = data_start + csize
    return found


def _expected_size(fp, start, size):
    """(bytes the archive should have, exact?) from its local headers and minicnn.json, or None."""
    entries = _entries_present(fp, start, size)
    if not entries:
        return (_LOCAL.size, False) if size < _LOCAL.size else None  # cut inside the first header
    name, data_start, data_end, flags = entries[0]
    if flags & 0x08:  # sizes are in data descriptors after the data: not written by minicnn.save
        return None
    at_least = max(end for _, _, end, _ in entries)
    if name != STRUCTURE or data_end > size:
        return at_least, False
    fp.seek(start + data_start)
    try:
        table = json.loads(fp.read(data_end - data_start).decode("utf-8"))["arrays"]
        sizes = [(STRUCTURE, data_end - data_start)]
        sizes += [(_array_member(i), int(e["bytes"])) for i, e in enumerate(table)]
    except (ValueError, KeyError, TypeError):
        return at_least, False
    local = sum(_LOCAL.size + len(n.encode()) + s for n, s in sizes)
    central = sum(46 + len(n.encode()) for n, _ in sizes)
    total = local + central + 22  # 22: the end-of-directory record
    exact = total <= _ZIP64_LIMIT and all(s * 1.05 <= _ZIP64_LIMIT for _, s in sizes)
    return max(total, at_least), exact


def _has_end_record(fp, start, size):
    """Whether the last 64 KiB + 22 bytes hold a zip's end-of-directory record (its comment is at most 64 KiB)."""
    tail = min(size, 22 + 65535)
    fp.seek(start + size - tail)
    found = fp.read(tail).rfind(b"PK\x05\x06")
    return found >= 0 and tail - found >= 22


def _broken(fp, start, size, label, exc, ends_early):
    """The LoadError for a zip that cannot be read: truncated (with the sizes) or damaged (with why).
    ends_early: its end record is missing, so it may be cut short."""
    reason = str(exc) if isinstance(exc, _Damaged) else f"{type(exc).__name__}: {exc}"
    try:
        expected = _expected_size(fp, start, size) if ends_early else None
    except Exception:  # the headers themselves are garbage: the reason above says enough
        expected = None
    if expected is not None and size < expected[0]:
        needed = f"{expected[0]:,}" if expected[1] else f"at least {expected[0]:,}"
        return LoadError(f"{label} is truncated: it has {size:,} bytes, but the archive expected {needed} "
                         f"({reason}). The copy, download or write that made it stopped early (minicnn.save "
                         f"itself never leaves a partial file). {_TODO}")
    if ends_early and not _has_end_record(fp, start, size):
        return LoadError(f"{label} is truncated: it has {size:,} bytes, and the directory a zip archive ends with "
                         f"is missing ({reason}). The copy, download or write that made it stopped early "
                         f"(minicnn.save itself never leaves a partial file). {_TODO}")
    return LoadError(f"{label} is damaged ({reason}). {_TODO}")
