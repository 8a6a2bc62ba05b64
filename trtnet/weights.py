"""PyTorch weights as numpy arrays: read `.wts`, `.pth`/`.pt` and `.safetensors`, write `.wts` and `.safetensors`.

Network builders index a `WeightMap` by state_dict name (`w["layer1.0.conv1"]["weight"]`); a missing
name fails with the closest real names, and `unused()` tells which tensors a builder never read.
"""
import difflib
import mmap
import os
import pickle
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

import numpy as np

SUFFIXES = (".wts", ".pth", ".pt", ".safetensors")
CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "net", "weights", "ema")
_CHUNK = 1 << 16  # values per block in the .wts fast path: keeps temporaries in L2 cache
_WS = b" \t\r\f\v"
_COUNT = re.compile(rb"\d{1,18}")
_HEAD = re.compile(rb"[ \t\r\f\v]*(\S+)(?:[ \t\r\f\v]+(\S+))?[ \t\r\f\v]*")
_BLANK = re.compile(rb"\s*")


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


class WeightFileError(ValueError):
    """A weight file that cannot be read; the message is one line naming the file (and line, tensor)."""


class MissingWeightError(KeyError):
    """A name that is neither a tensor nor a prefix of one."""

    def __str__(self):  # KeyError would show the message quoted
        return self.args[0]


def _to_numpy(value):
    """C-contiguous array; floating values become float32 (what TensorRT weights take), integers stay."""
    if hasattr(value, "detach"):  # a torch tensor: any device, bf16 included
        value = value.detach().cpu()
        value = (value.float() if value.is_floating_point() else value).numpy()
    a = np.asarray(value)
    return np.asarray(a, np.float32 if np.issubdtype(a.dtype, np.floating) else None, order="C")


class WeightMap(Mapping):
    """Tensors by state_dict name; a prefix such as "layer1.0" gives a view onto the names below it."""

    def __init__(self, tensors, source="<memory>"):
        self._tensors = {name: _to_numpy(a) for name, a in tensors.items()}
        self._prefixes = {name.rsplit(".", i)[0] for name in self._tensors for i in range(1, name.count(".") + 1)}
        self._used = set()
        self.source = str(source)
        self.prefix = ""

    def _view(self, prefix):
        view = object.__new__(WeightMap)
        view.__dict__.update(self.__dict__, prefix=prefix)
        return view

    def full(self, key):
        return f"{self.prefix}.{key}" if self.prefix else key

    def __getitem__(self, key):
        name = self.full(key)
        if name in self._tensors:
            self._used.add(name)
            return self._tensors[name]
        if name in self._prefixes:
            return self._view(name)
        close = difflib.get_close_matches(name, [*self._tensors, *self._prefixes], n=4)
        hint = f" (closest: {', '.join(close)})" if close else ""
        raise MissingWeightError(f"{self.source}: no tensor or prefix {name!r}{hint}")

    def get(self, key, default=None):
        """The tensor (or view), or `default` when absent: for optional entries such as a bias."""
        return self[key] if key in self else default

    def __contains__(self, key):
        """True for a tensor name or a prefix; does not count as reading the tensor."""
        name = self.full(key)
        return name in self._tensors or name in self._prefixes

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
    return WeightMap(read(path), source=str(path))


def _show(token, limit=40):
    text = token[:limit].decode("utf-8", "backslashreplace")
    return repr(text + ("..." if len(token) > limit else ""))


def _read_wts(path):
    """Parse tensorrtx text: line 1 the tensor count, then `name count hex hex ...` per tensor.

    The file is mapped rather than read: blocks are copied only as they are parsed.
    """
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise WeightFileError(f"{path}: empty file: expected the tensor count on line 1")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse_wts(data, path)


def _parse_wts(data, path):
    if _BLANK.match(data).end() == len(data):
        raise WeightFileError(f"{path}: empty file: expected the tensor count on line 1")
    end = _eol(data, 0)
    head = data[:end].strip()
    if not _COUNT.fullmatch(head):
        raise WeightFileError(f"{path}: line 1: expected the tensor count, got {_show(head)}")
    count, pos = int(head), min(end + 1, len(data))
    room = (len(data) - pos + 1) // 4  # the shortest tensor line is "a 0\n"
    if count > room:
        raise WeightFileError(f"{path}: line 1: declares {count} tensors but the file has room for at most {room}")
    tensors, lines = {}, {}
    for lineno in range(2, count + 2):
        if pos >= len(data):
            raise WeightFileError(f"{path}: line {lineno}: file ends after {lineno - 2} "
                                  f"of the {count} tensors declared on line 1")
        end = _eol(data, pos)
        name, values = _read_wts_line(data, pos, end, f"{path}: line {lineno}")
        if name in tensors:
            raise WeightFileError(f"{path}: line {lineno}: tensor {name!r} again (first on line {lines[name]})")
        tensors[name], lines[name] = values, lineno
        pos = end + 1
    rest = _BLANK.match(data, min(pos, len(data))).end()
    if rest < len(data):
        lineno = count + 2 + data[pos:rest].count(b"\n")
        raise WeightFileError(f"{path}: line {lineno}: unexpected {_show(data[rest:_eol(data, rest)])} "
                              f"after the {count} tensors declared on line 1")
    return tensors


def _eol(data, pos):
    end = data.find(b"\n", pos)
    return len(data) if end < 0 else end


def _read_wts_line(data, start, end, where):
    m = _HEAD.match(data, start, end)
    if m is None or m[2] is None:
        raise WeightFileError(f"{where}: expected 'name count hex...', got {_show(data[start:end])}")
    name = m[1].decode("utf-8", "backslashreplace")
    where = f"{where}: tensor {name!r}"
    if not _COUNT.fullmatch(m[2]):
        raise WeightFileError(f"{where}: count {_show(m[2])} is not a non-negative integer")
    count, first = int(m[2]), m.end()
    while end > first and data[end - 1] in _WS:
        end -= 1
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
    """Any layout `>> std::hex` accepts (unpadded tokens, runs of blanks), and the exact error otherwise."""
    nib = np.frombuffer(data[start:end].translate(_NIBBLES), np.uint8)
    edges = np.flatnonzero(np.diff(nib != 16, prepend=False, append=False))
    starts, ends = edges[::2], edges[1::2]
    token = lambda i: _show(data[start + starts[i]:start + ends[i]])
    bad = np.flatnonzero(nib == 255)
    if bad.size:
        i = np.searchsorted(starts, bad[0], "right") - 1
        raise WeightFileError(f"{where}: value {i + 1} {token(i)} is not hexadecimal")
    if len(starts) != count:
        raise WeightFileError(f"{where}: has {len(starts)} values, expected {count} (its count)")
    lengths = ends - starts
    if count and lengths.max() > 8:
        i = int(lengths.argmax())
        raise WeightFileError(f"{where}: value {i + 1} {token(i)} has more than 8 hex digits")
    digits = np.flatnonzero(nib != 16)
    shifts = (4 * (np.repeat(ends, lengths) - 1 - digits)).astype(np.uint32)
    bits = nib[digits].astype(np.uint32) << shifts
    return np.add.reduceat(bits, np.cumsum(lengths) - lengths, dtype=np.uint32) if count else np.empty(0, np.uint32)


def _read_torch(path):
    """torch.load with weights_only=True: plain containers of tensors load, pickled objects never run."""
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
    state = _pick_state_dict(obj, path)
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightFileError(f"{path}: {name!r} holds a {type(value).__name__}, not a tensor")
        tensors[name] = _to_numpy(value)
    if tensors and all(n.startswith("module.") for n in tensors):  # saved from DataParallel
        tensors = {n[len("module."):]: a for n, a in tensors.items()}
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


def _read_safetensors(path):
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightFileError(f"{path}: not a readable safetensors file: {_first_line(e)}") from e
    return {name: _to_numpy(t) for name, t in tensors.items()}


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
    _atomic_write(path, write)


def save_safetensors(tensors, path):
    """Write `.safetensors` with float32 for floating tensors and integer types kept."""
    from safetensors.numpy import save
    arrays = {name: _to_numpy(value) for name, value in tensors.items()}
    _atomic_write(path, lambda f: f.write(save(arrays)))


def _atomic_write(path, write):
    """Readers never see a half-written file: write beside it, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
