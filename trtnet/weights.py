"""PyTorch weights as numpy arrays: read `.wts`, `.pth`/`.pt` and `.safetensors`; write `.wts`, `.safetensors`, `.pth`.

Network builders index a `WeightMap` by state_dict name (`w["layer1.0.conv1"]["weight"]`); a missing
name fails with the closest real names, and `unused()` tells which tensors a builder never read.

Files are untrusted: a reader either returns arrays it owns or raises a one-line WeightFileError, and sizes
every allocation from numbers already checked against the file's size.
"""
import bisect
import difflib
import json
import math
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import TrtnetError
from .files import write_atomic

SUFFIXES = (".wts", ".pth", ".pt", ".safetensors")
CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "net", "weights", "ema")
_CHUNK = 1 << 16  # values per block in the .wts fast path: keeps temporaries in L2 cache
_PIECE = 1 << 20  # line bytes per block in the general .wts path: bounds its temporaries
_BLOCK = 1 << 23  # bytes read at a time from a .wts file
_WS = b" \t\r\f\v"
_COUNT = re.compile(rb"\d{1,18}")
_HEAD = re.compile(rb"[ \t\r\f\v]*(\S+)(?:[ \t\r\f\v]+(\S+))?[ \t\r\f\v]*")
_BLANK = re.compile(rb"\s*")
_ONE_BLANK = re.compile(rb"[ \t\r\f\v]")
_MAX_HEADER = 4 << 20  # safetensors header bytes: ~60k tensors, 10x the largest real files; refused beyond
_MAX_DIMS = 64
_ADDRESSABLE = (1 << 63) - 1
_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "F8_E4M3": "u1", "F8_E5M2": "u1",
              "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
              "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "u1"}


def _nibble_table():
    """ASCII -> hex digit value; 16 for blanks between tokens; 255 for anything else."""
    table = bytearray(b"\xff" * 256)
    for i, c in enumerate(b"0123456789abcdef"):
        table[c] = table[ord(chr(c).upper())] = i
    for c in _WS:
        table[c] = 16
    return bytes(table)


_NIBBLES = _nibble_table()
_NOT_NIBBLES, _EVEN_NIBBLES, _EVEN_WORDS = (np.uint64(m) for m in (0xF0F0F0F0F0F0F0F0, 0x000F000F000F000F,
                                                                     0x0000FFFF0000FFFF))
_U4, _U8, _U16 = np.uint64(4), np.uint64(8), np.uint64(16)


class WeightFileError(TrtnetError, ValueError):
    """A weight file that cannot be read; the message is one line naming the file (and line, tensor)."""


class MissingWeightError(TrtnetError, KeyError):
    """A name that is neither a tensor nor a prefix of one."""

    def __str__(self):  # KeyError would show the message quoted
        return self.args[0]


def _to_numpy(value):
    """C-contiguous array; floating values become float32 (what TensorRT weights take), integers and bools stay.

    ValueError for values float32 cannot stand for: complex, finite beyond its range, not numbers at all.
    """
    if hasattr(value, "detach"):  # a torch tensor: any device, bf16 included
        value = _torch_values(value)
    a = np.asarray(value)
    if a.dtype.kind == "c":
        raise ValueError(f"holds complex values ({a.dtype}): weights are real")
    if a.dtype.kind not in "fiub":
        raise ValueError(f"holds {a.dtype} values, not numbers")
    if a.dtype.kind != "f" or a.dtype == np.float32:
        return np.asarray(a, order="C")
    with np.errstate(over="ignore"):  # overflow is reported below, by value
        out = a.astype(np.float32, order="C")
    if np.isinf(out).any():
        lost = np.isinf(out) & np.isfinite(a)
        if lost.any():
            raise ValueError(f"holds {a.reshape(-1)[np.argmax(lost)]!r}, beyond the float32 range")
    return out


def _torch_values(t):
    """A dense tensor's values (float8/16 as float32); ValueError for tensors that hold no plain values."""
    _check_plain(t)
    t = t.detach().cpu()
    return (t.float() if t.is_floating_point() and t.dtype.itemsize < 4 else t).numpy()


def _check_plain(t):
    import torch
    if t.is_quantized:
        raise ValueError(f"is quantized ({t.dtype}): save the float weights (model.dequantize())")
    if t.layout != torch.strided or t.is_nested:
        raise ValueError(f"is sparse or nested ({t.layout}): save it dense (tensor.to_dense())")
    if t.is_meta:
        raise ValueError("is on the meta device: it holds no values")
    if t.is_complex():
        raise ValueError(f"holds complex values ({t.dtype}): weights are real")


def _array(source, name, value):
    """`_to_numpy`, failing as a WeightFileError that names the source and the tensor."""
    try:
        return _to_numpy(value)
    except ValueError as e:
        raise WeightFileError(f"{source}: tensor {name!r} {e}") from None


class WeightMap(Mapping):
    """Tensors by state_dict name; a prefix such as "layer1.0" gives a view onto the names below it."""

    def __init__(self, tensors, source="<memory>"):
        self.source = str(source)
        self._tensors = {name: _array(self.source, name, a) for name, a in tensors.items()}
        self._sorted = sorted(self._tensors)  # prefixes are found by bisection: memory stays linear in the names
        self._used = set()
        self.prefix = ""

    def _view(self, prefix):
        view = object.__new__(WeightMap)
        view.__dict__.update(self.__dict__, prefix=prefix)
        return view

    def full(self, key):
        return f"{self.prefix}.{key}" if self.prefix else key

    def _is_prefix(self, name):
        head = name + "."
        i = bisect.bisect_left(self._sorted, head)
        return i < len(self._sorted) and self._sorted[i].startswith(head)

    def __getitem__(self, key):
        name = self.full(key)
        if name in self._tensors:
            self._used.add(name)
            return self._tensors[name]
        if self._is_prefix(name):
            return self._view(name)
        close = difflib.get_close_matches(name, self._candidates(name), n=4)
        hint = f" (closest: {', '.join(close)})" if close else ""
        raise MissingWeightError(f"{self.source}: no tensor or prefix {name!r}{hint}")

    def _candidates(self, name):
        """Names and their prefixes at `name`'s depth, of lengths difflib's 0.6 cutoff could still accept."""
        depth, low, high = name.count("."), 0.4 * len(name), 2.4 * len(name)
        cut = (n.split(".", depth + 1) for n in self._tensors)
        prefixes = {".".join(parts[:-1]) for parts in cut if len(parts) == depth + 2}
        return sorted(n for n in {*self._tensors, *prefixes} if low <= len(n) <= high)

    def get(self, key, default=None):
        """The tensor (or view), or `default` when absent: for optional entries such as a bias."""
        return self[key] if key in self else default

    def __contains__(self, key):
        """True for a tensor name or a prefix; does not count as reading the tensor."""
        name = self.full(key)
        return name in self._tensors or self._is_prefix(name)

    def _names(self):
        if not self.prefix:
            return list(self._tensors)
        head = self.prefix + "."
        return [n for n in self._tensors if n.startswith(head)]

    def __iter__(self):
        cut = len(self.prefix) + 1 if self.prefix else 0
        return (n[cut:] for n in self._names())

    def __len__(self):
        return len(self._names())

    def unused(self):
        """Full names under this view never read by any view of the same file (num_batches_tracked aside)."""
        return [n for n in self._names() if n not in self._used and not n.endswith("num_batches_tracked")]

    def nonfinite(self):
        """Full names under this view holding NaN or Inf: they load, so that reports can name them."""
        finite = lambda a: a.dtype.kind != "f" or np.isfinite(a).all()
        return [n for n in self._names() if not finite(self._tensors[n])]

    def shaped(self, shapes):
        """Give 1-D tensors (a `.wts` file stores no shapes) the shapes in `shapes` ({name: shape}) where the
        value counts agree; a count that disagrees is left for the layer reading it to name."""
        for name, shape in shapes.items():
            a = self._tensors.get(name)
            if a is not None and a.ndim <= 1 and len(shape) != 1 and a.size == math.prod(shape):
                self._tensors[name] = a.reshape(shape)
        return self

    def __repr__(self):
        return f"WeightMap({self.source!r}, {len(self)} tensors, prefix={self.prefix!r})"


def load_weights(path):
    """Read a weight file, chosen by suffix; any problem is a WeightFileError before anything is returned."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise WeightFileError(f"{path}: unknown weight file type {suffix or '(none)'!r}: "
                              f"expected one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise WeightFileError(f"{path}: no such file")
    read = {".wts": _read_wts, ".safetensors": _read_safetensors}.get(suffix, _read_torch)
    try:
        return WeightMap(read(path), source=str(path))
    except MemoryError:
        raise WeightFileError(f"{path}: out of memory while loading it") from None


def _show(token, limit=40):
    text = token[:limit].decode("utf-8", "backslashreplace")
    return repr(text + ("..." if len(token) > limit else ""))


def _brief(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _read_wts(path):
    """Parse tensorrtx text: line 1 the tensor count, then `name count hex hex ...` per tensor.

    Read in blocks rather than mapped, so that the file shrinking underneath cannot fault the process.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            return _parse_wts(_wts_lines(f, min(size + 1, _BLOCK)), size, path)
    except OSError as e:
        raise WeightFileError(f"{path}: cannot read: {_first_line(e)}") from None


def _wts_lines(f, block):
    """(buffer, start, end) per line, newline excluded; the buffer is reused: a line lasts until the next.

    It grows only to hold the longest line, so a long file costs no more than its longest line.
    """
    buf, start, scanned, filled = bytearray(block), 0, 0, 0
    while True:
        nl = buf.find(b"\n", scanned, filled)
        if nl >= 0:
            yield buf, start, nl
            start = scanned = nl + 1
            continue
        buf[:filled - start] = buf[start:filled]
        start, scanned, filled = 0, filled - start, filled - start
        if filled == len(buf):
            buf.extend(bytes(len(buf)))
        n = f.readinto(memoryview(buf)[filled:])
        if not n:
            if filled:
                yield buf, 0, filled
            return
        filled += n


def _parse_wts(lines, size, path):
    data, start, end = next(lines, (b"", 0, 0))
    head = data[start:end].strip()
    if not head and all(_BLANK.fullmatch(*line) for line in lines):
        raise WeightFileError(f"{path}: empty file: expected the tensor count on line 1")
    if not _COUNT.fullmatch(head):
        raise WeightFileError(f"{path}: line 1: expected the tensor count, got {_show(head)}")
    count = int(head)
    room = (size - min(end - start + 1, size) + 1) // 4  # the shortest tensor line is "a 0\n"
    if count > room:
        raise WeightFileError(f"{path}: line 1: declares {count} tensors but the file has room for at most {room}")
    tensors, first_seen = {}, {}
    for lineno in range(2, count + 2):
        line = next(lines, None)
        if line is None:
            raise WeightFileError(f"{path}: line {lineno}: file ends after {lineno - 2} "
                                  f"of the {count} tensors declared on line 1")
        name, values = _read_wts_line(*line, f"{path}: line {lineno}")
        if name in tensors:
            raise WeightFileError(f"{path}: line {lineno}: tensor {name!r} again (first on line {first_seen[name]})")
        tensors[name], first_seen[name] = values, lineno
    for lineno, (data, start, end) in enumerate(lines, count + 2):
        rest = _BLANK.match(data, start, end).end()
        if rest < end:
            raise WeightFileError(f"{path}: line {lineno}: unexpected {_show(data[rest:end])} "
                                  f"after the {count} tensors declared on line 1")
    return tensors


def _read_wts_line(data, start, end, where):
    m = _HEAD.match(data, start, end)
    if m is None or m[2] is None:
        raise WeightFileError(f"{where}: expected 'name count hex...', got {_show(data[start:end])}")
    name = m[1].decode("utf-8", "backslashreplace")
    where = f"{where}: tensor {name!r}"
    if not _COUNT.fullmatch(m[2]):
        raise WeightFileError(f"{where}: count {_show(m[2])} is not a non-negative integer")
    count, first = int(m[2]), m.end()
    if end > first and data[end - 1] in _WS:
        end = first + len(data[first:end].rstrip(_WS))
    room = (end - first + 1) // 2  # each value needs a digit and a blank
    if count > room:
        raise WeightFileError(f"{where}: count {count} but the line holds at most {room} values")
    values = _hex8(data, first, end, count)
    if values is None:
        values = _hex_any(data, first, end, count, where)
    return name, values.view(np.float32)
def _hex8(data, start, end, count):
    """The common layout, 8 digits and one space per value, in cache-sized blocks; None if it differs.

    A block is mapped to nibbles by the 256-byte table, then each value's 8 nibbles are read as one
    little-endian uint64 (stride 9) and folded into the float's 32 bits with shifts and masks.
    """
    if end - start != 9 * count - 1:
        return None
    out = np.empty(count, np.uint32)
    for i in range(0, count, _CHUNK):
        n = min(_CHUNK, count - i)
        nib = data[start + 9 * i:start + 9 * (i + n) - 1].translate(_NIBBLES)
        x = np.ndarray(n, "<u8", nib, 0, (9,))
        if nib[8::9].count(16) != n - 1 or (x & _NOT_NIBBLES).any():
            return None
        x = ((x & _EVEN_NIBBLES) << _U4) | ((x >> _U8) & _EVEN_NIBBLES)  # byte pairs: 16-bit lanes of one byte
        x = (x | (x >> _U8)) & _EVEN_WORDS  # 32-bit lanes of two bytes
        x |= x >> _U16
        out[i:i + n] = x.astype("<u4").view(">u4")  # low 32 bits hold the float's bytes in file order
    return out


def _hex_any(data, start, end, count, where):
    """Any layout `>> std::hex` accepts (unpadded tokens, runs of blanks), and the exact error otherwise.

    The line is parsed in blocks cut at blanks, so temporaries stay bounded however long it is.
    """
    out, seen = np.empty(count, np.uint32), 0
    while start < end:
        stop = min(start + _PIECE, end)
        blank = _ONE_BLANK.search(data, stop, min(stop + 16, end))  # a longer token is an error within the block
        stop = blank.start() if blank else min(stop + 16, end)
        values = _hex_block(data, start, stop, where, seen)
        if seen + len(values) <= count:
            out[seen:seen + len(values)] = values
        seen, start = seen + len(values), stop
    if seen != count:
        raise WeightFileError(f"{where}: has {seen} values, expected {count} (its count)")
    return out


def _hex_block(data, start, end, where, before):
    """The values of whole tokens in data[start:end], the first being value `before + 1` of the line."""
    nib = np.frombuffer(data[start:end].translate(_NIBBLES), np.uint8)
    edges = np.flatnonzero(np.diff(nib != 16, prepend=False, append=False))
    starts, ends = edges[::2], edges[1::2]
    token = lambda i: f"value {before + i + 1} {_show(data[start + starts[i]:start + ends[i]])}"
    bad = np.flatnonzero(nib == 255)
    if bad.size:
        i = np.searchsorted(starts, bad[0], "right") - 1
        raise WeightFileError(f"{where}: {token(i)} is not hexadecimal")
    if not len(starts):
        return np.empty(0, np.uint32)
    lengths = ends - starts
    if lengths.max() > 8:
        raise WeightFileError(f"{where}: {token(int(lengths.argmax()))} has more than 8 hex digits")
    digits = np.flatnonzero(nib != 16)
    shifts = (4 * (np.repeat(ends, lengths) - 1 - digits)).astype(np.uint32)
    bits = nib[digits].astype(np.uint32) << shifts
    return np.add.reduceat(bits, np.cumsum(lengths) - lengths, dtype=np.uint32)


def _justified(size):
    """Bytes that a file of `size` bytes may expand to once loaded: float16 doubles, tied weights repeat."""
    return 4 * size + (16 << 20)


def _read_torch(path):
    """torch.load with weights_only=True: plain containers of tensors load, pickled objects never run."""
    size = _check_zip(path)
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        cls = re.search(r"GLOBAL (\S+)", str(e))
        if cls is None:
            raise WeightFileError(f"{path}: cannot read as a PyTorch file: weights-only unpickling failed") from e
        raise WeightFileError(f"{path}: not a plain state_dict (it pickles {cls[1]}); "
                              "save model.state_dict() instead") from e
    except Exception as e:
        raise WeightFileError(f"{path}: cannot read as a PyTorch file: {_first_line(e)}") from e
    tensors = _torch_tensors(_pick_state_dict(obj, path), path, _justified(size))
    if tensors and all(n.startswith("module.") for n in tensors):  # saved from DataParallel
        tensors = {n[len("module."):]: a for n, a in tensors.items()}
    return tensors


def _check_zip(path):
    """The file's size, once its zip directory shows records that inflate to no more than the file justifies.

    torch inflates each record whole into memory, so a record is judged by its declared size before it is
    read; files in the pre-zip format (torch < 1.6) size storages from the pickle and are refused.
    """
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as z:
            records = z.infolist()
    except zipfile.BadZipFile:
        raise WeightFileError(f"{path}: not a zip-format PyTorch file; older formats cannot be checked before "
                              "loading: re-save it with torch.save (torch >= 1.6)") from None
    except Exception as e:
        raise WeightFileError(f"{path}: cannot read its zip directory: {_first_line(e)}") from None
    total, limit = 0, _justified(size)
    for r in records:
        total += r.file_size
        if total > limit:
            raise WeightFileError(f"{path}: record {r.filename!r} declares {r.file_size} bytes inflated, "
                                  f"more than a {size}-byte file can hold")
        if r.compress_type == zipfile.ZIP_STORED and r.file_size != r.compress_size:
            raise WeightFileError(f"{path}: record {r.filename!r} is stored as {r.compress_size} bytes "
                                  f"but declares {r.file_size}")
    return size


def _torch_tensors(state, path, limit):
    """Arrays by string key; views that expand or share storage count in full against `limit` bytes."""
    import torch
    tensors, total = {}, 0
    for name, value in state.items():
        if not isinstance(name, str):
            raise WeightFileError(f"{path}: key {_brief(name)} ({type(name).__name__}) is not a string")
        if not isinstance(value, torch.Tensor):
            raise WeightFileError(f"{path}: {name!r} holds a {type(value).__name__}, not a tensor")
        try:
            _check_plain(value)
        except ValueError as e:
            raise WeightFileError(f"{path}: tensor {name!r} {e}") from None
        total += value.numel() * value.element_size()
        if total > limit:
            raise WeightFileError(f"{path}: tensor {name!r} brings the tensors to {total} bytes, more than a "
                                  f"file of {path.stat().st_size} bytes can hold (views expanding or sharing storage)")
        tensors[name] = _array(path, name, value)
    return tensors


def _pick_state_dict(obj, path):
    """The state_dict itself, or the first usual checkpoint entry that is a mapping of tensors."""
    import torch
    if not isinstance(obj, Mapping):
        raise WeightFileError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
    tensor_map = lambda m: isinstance(m, Mapping) and all(isinstance(v, torch.Tensor) for v in m.values())
    if tensor_map(obj):
        return obj
    nested = [obj[k] for k in CHECKPOINT_KEYS if isinstance(obj.get(k), Mapping)]
    return next((m for m in nested if tensor_map(m)), nested[0] if nested else obj)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs):
    keys = dict(pairs)
    if len(keys) != len(pairs):
        seen = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return keys


def _read_safetensors(path):
    """Parse the header ourselves and read each tensor into memory it owns (never a map of the file)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        header = _st_header(f, size, path)
        base = f.tell()
        entries = _st_entries(header, size - base, path)
        return {e[0]: _st_tensor(f, base, *e, path) for e in entries}


def _st_header(f, size, path):
    """The header as a dict, its length checked against the file and a fixed bound before it is read."""
    head = f.read(8)
    if len(head) < 8:
        raise WeightFileError(f"{path}: not a safetensors file: {size} bytes, too short for the header length")
    n = int.from_bytes(head, "little")
    if n > size - 8 or n > _MAX_HEADER:
        raise WeightFileError(f"{path}: not a readable safetensors file: header length {n} is over "
                              f"{'the file size ' + str(size) if n > size - 8 else f'the {_MAX_HEADER}-byte limit'}")
    raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as e:
        raise WeightFileError(f"{path}: safetensors header is not UTF-8 (byte {e.start + 8})") from None
    except _DuplicateKey as e:
        raise WeightFileError(f"{path}: safetensors header names {e.args[0]!r} twice") from None
    except (ValueError, RecursionError) as e:
        raise WeightFileError(f"{path}: safetensors header is not JSON: {_first_line(e)}") from None
    if not isinstance(header, dict):
        raise WeightFileError(f"{path}: safetensors header is a JSON {type(header).__name__}, not a JSON object")
    return header


def _st_entries(header, data_size, path):
    """(name, dtype, shape, begin, end) per tensor, in header order, tiling the data exactly."""
    if not isinstance(header.pop("__metadata__", {}), dict):
        raise WeightFileError(f"{path}: safetensors __metadata__ is not a JSON object")
    entries = [_st_entry(name, e, f"{path}: tensor {name!r}") for name, e in header.items()]
    end, last = 0, None
    for name, _, _, begin, stop in sorted(entries, key=lambda e: e[3:]):
        where = f"{path}: tensor {name!r}"
        if stop > data_size:
            raise WeightFileError(f"{where}: data ends at byte {stop}, past the {data_size} bytes of data")
        if begin < end:
            raise WeightFileError(f"{where}: data at bytes {begin}..{stop} overlaps {last!r}")
        if begin > end:
            raise WeightFileError(f"{where}: data starts at byte {begin}, leaving a gap after byte {end}")
        end, last = stop, name
    if end < data_size:
        extra = data_size - end
        raise WeightFileError(f"{path}: {extra} byte{'s' * (extra != 1)} of data after the last tensor")
    return entries


def _st_entry(name, e, where):
    if not isinstance(e, dict):
        raise WeightFileError(f"{where}: entry is {_brief(e)}, not a JSON object")
    dtype, shape, offsets = e.get("dtype"), e.get("shape"), e.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _ST_DTYPES:
        raise WeightFileError(f"{where}: dtype {_brief(dtype)} is not supported "
                              f"(expected one of {', '.join(_ST_DTYPES)})")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise WeightFileError(f"{where}: shape {_brief(shape)} is not a list of non-negative integers")
    if len(shape) > _MAX_DIMS:
        raise WeightFileError(f"{where}: shape has {len(shape)} dimensions, more than {_MAX_DIMS}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int and o >= 0 for o in offsets)):
        raise WeightFileError(f"{where}: data_offsets {_brief(offsets)} are not two non-negative integers")
    begin, end = offsets
    if begin > end:
        raise WeightFileError(f"{where}: data_offsets {offsets} are reversed")
    itemsize = np.dtype(_ST_DTYPES[dtype]).itemsize
    if math.prod(d for d in shape if d) * itemsize > _ADDRESSABLE:
        raise WeightFileError(f"{where}: shape {_brief(shape)} is too large to address")
    nbytes = math.prod(shape) * itemsize
    if nbytes != end - begin:
        raise WeightFileError(f"{where}: shape {_brief(shape)} of {dtype} takes {nbytes} bytes "
                              f"but data_offsets span {end - begin}")
    return name, dtype, shape, begin, end


def _st_tensor(f, base, name, dtype, shape, begin, end, path):
    """One tensor read into a fresh array (its size already checked against the file), as `_array` gives it."""
    raw = np.empty((end - begin) // np.dtype(_ST_DTYPES[dtype]).itemsize, _ST_DTYPES[dtype])
    f.seek(base + begin)
    if raw.size and f.readinto(memoryview(raw).cast("B")) != end - begin:
        raise WeightFileError(f"{path}: tensor {name!r}: file ends inside its data (did it change while read?)")
    return _array(path, name, _st_values(dtype, raw).reshape(shape))


def _st_values(dtype, raw):
    if dtype == "BF16":
        return (raw.astype(np.uint32) << np.uint32(16)).view(np.float32)
    if dtype == "BOOL":
        return raw != 0
    if dtype.startswith("F8"):
        import torch
        fp8 = torch.float8_e4m3fn if dtype == "F8_E4M3" else torch.float8_e5m2
        return torch.from_numpy(raw).view(fp8).float().numpy()
    return raw


def _first_line(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
def save_wts(tensors, path):
    """Write tensorrtx `.wts` (every value as 8-digit big-endian float32 hex, integers included)."""
    def write(f):
        f.write(b"%d\n" % len(tensors))
        for name, value in tensors.items():
            if not name or name.split() != [name]:
                raise ValueError(f"tensor name {name!r} cannot be written to .wts (empty or has blanks)")
            flat = _to_numpy(value).astype(">f4").reshape(-1)
            f.write(b"%s %d%s" % (name.encode(), flat.size, b" " if flat.size else b""))
            f.write(flat.tobytes().hex(" ", 4).encode())
            f.write(b"\n")
    write_atomic(path, write)


def save_safetensors(tensors, path):
    """Write `.safetensors` with float32 for floating tensors and integer types kept."""
    from safetensors.numpy import save
    arrays = {name: _to_numpy(value) for name, value in tensors.items()}
    write_atomic(path, save(arrays))


def save_pth(tensors, path):
    """Write a plain state_dict of tensors with torch.save: what `torch.load(..., weights_only=True)` reads."""
    import torch
    state = {name: torch.from_numpy(_to_numpy(value)) for name, value in tensors.items()}
    write_atomic(path, lambda f: torch.save(state, f))
