"""Doubles of TensorRT's runtime objects, made from the installed bindings, and a CPU stand-in for CUDA.

`spec_double(name)` is `unittest.mock.create_autospec` of a TensorRT-RTX runtime class (Runtime, ICudaEngine,
IExecutionContext, Refitter, IRuntimeConfig, IRuntimeCache) whose methods carry the signatures written in their
pybind11 docstrings (pybind11 gives Python none), so a wrong method name or argument count fails as it would
against TensorRT. The classes come from tests/data/trt_runtime_api_rtx17.json (scripts/trt_names.py
--runtime-api; tests/test_trt_names.py checks it against the installed bindings), so the doubles work where
TensorRT cannot be installed, such as a GPU machine without it. `StandInTrt` is a TensorRT module whose Runtime deserializes any plan into
an engine with the declared IO and profiles, and whose execution contexts compute `fn` (a torch function of
the inputs) from the tensor addresses they were given, on the stream they were given, asserting that the
engine's device is current: on a CUDA machine it exercises trtnet.runtime's real CUDA side (`_Cuda`), on the
CPU it runs with `CpuCuda`. Every call is recorded in `log` for order checks."""
import ctypes
import enum
import inspect
import json
import os
import re
import threading
from contextlib import contextmanager, nullcontext
from types import SimpleNamespace
from unittest import mock

import numpy as np
import torch

from trtnet import backend

_PARAM = re.compile(r"^\s*(\*{0,2}\w+)\s*(?::\s*(.*?))?\s*(=\s*.*)?$")


def _split(params):
    """Top-level comma split of a pybind11 parameter list (types and defaults hold brackets and commas)."""
    parts, depth, cur = [], 0, ""
    for ch in params:
        depth += ch in "([{<"
        depth -= ch in ")]}>"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p for p in parts + [cur] if p.strip()]


def signatures(name, doc):
    """inspect.Signatures of `name` from its pybind11 docstring (one per overload)."""
    sigs = []
    for line in (doc or "").splitlines():
        m = re.match(rf"^\s*(?:\d+\.\s+)?{re.escape(name)}\((.*)\)\s*->", line)
        if not m:
            continue
        params = []
        for part in _split(m.group(1)):
            p = re.match(r"^\s*(\*{0,2})(\w+)", part)
            stars, pname = p.group(1), p.group(2)
            default = " = " in part or re.search(r"=\s*\S", part.split(":", 1)[-1]) is not None
            kind = {"*": inspect.Parameter.VAR_POSITIONAL, "**": inspect.Parameter.VAR_KEYWORD}.get(
                stars, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            params.append(inspect.Parameter(pname, kind, default=None if default and not stars
                                            else inspect.Parameter.empty))
        if not any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params):
            sigs.append(inspect.Signature(params))
    return sigs


with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "trt_runtime_api_rtx17.json")) as _f:
    API = json.load(_f)
ENUMS = {name: enum.IntEnum(name, members) for name, members in API["enums"].items()}


def _spec_class(cname):
    """A plain Python class with the class's public members: methods with their documented signatures
    (overloads checked when called), properties as properties."""
    attrs = {}
    for name, lines in API["classes"][cname].items():
        if lines is None:
            attrs[name] = property(lambda self: None)
            continue
        sigs = signatures(name, "\n".join(lines))
        if not sigs:
            continue

        def method(*args, _sigs=sigs, _name=name, **kwargs):
            for s in _sigs:
                try:
                    s.bind(*args, **kwargs)
                    return None
                except TypeError:
                    pass
            raise TypeError(f"{cname}.{_name}: no overload takes {args[1:]}, {kwargs}")

        method.__signature__ = sigs[0] if len(sigs) == 1 else inspect.Signature(
            [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
             inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
             inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])
        method._overloads = sigs
        attrs[name] = method
    return type(cname, (), attrs)


_specs = {}


def spec_double(cname, instance=True):
    """create_autospec of TensorRT's runtime class `cname` with its documented signatures enforced."""
    if cname not in _specs:
        _specs[cname] = _spec_class(cname)
    spec = _specs[cname]
    double = mock.create_autospec(spec, instance=instance)
    target = double if instance else double.return_value
    for name, member in vars(spec).items():
        if len(getattr(member, "_overloads", ())) > 1:
            getattr(target, name).side_effect = _overload_check(member)
    return double


def _overload_check(method):
    def check(*args, **kwargs):
        method(None, *args, **kwargs)
        return mock.DEFAULT
    return check


class CpuCuda:
    """trtnet.runtime._Cuda on the CPU: 'GPU n' is a label made current per thread; buffers are CPU tensors
    aligned to 256 bytes like CUDA allocations; streams record their waits."""
    torch = torch
    _current = threading.local()

    def __init__(self, index=0):
        self.index, self.device = index, torch.device("cpu")

    @classmethod
    def current_index(cls):
        return getattr(cls._current, "index", None)

    @contextmanager
    def current(self):
        before = self.current_index()
        self._current.index = self.index
        try:
            yield
        finally:
            self._current.index = before

    def on(self, stream):
        return nullcontext()

    def stream(self):
        return SimpleNamespace(cuda_stream=id(object()) & 0xFFFFFF | 0x1000, wait_stream=lambda s: None,
                               synchronize=lambda: None)

    def current_stream(self):
        return SimpleNamespace(cuda_stream=0)

    def empty(self, shape, dtype):
        n = int(np.prod(shape, dtype=np.int64))
        size = torch.empty((), dtype=dtype).element_size()
        raw = torch.empty(n * size + 256, dtype=torch.uint8)
        skip = -raw.data_ptr() % 256
        return raw[skip:skip + n * size].view(dtype).view(shape)

    host = empty


DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "FP8": torch.float8_e4m3fn,
          "INT8": torch.int8, "INT32": torch.int32, "INT64": torch.int64, "UINT8": torch.uint8, "BOOL": torch.bool,
          "INT4": None, "FP4": None}   # None: packed two to a byte


def tensor_at(address, shape, trt_type, device):
    """The tensor of `shape` at a raw address (packed types: the flat bytes): how the stand-in reads what
    trtnet handed TensorRT."""
    n, dtype = int(np.prod(shape, dtype=np.int64)), DTYPES[trt_type]
    nbytes = -(-n // 2) if dtype is None else n * torch.empty((), dtype=dtype).element_size()
    iface = {"shape": (nbytes,), "typestr": "|u1", "data": (address, False), "strides": None, "version": 3}
    if device.type == "cuda":
        raw = torch.as_tensor(SimpleNamespace(__cuda_array_interface__=iface), device=device)
    elif nbytes == 0:
        raw = torch.empty(0, dtype=torch.uint8)
    else:
        raw = torch.frombuffer((ctypes.c_char * nbytes).from_address(address), dtype=torch.uint8)
    return raw if dtype is None else raw.view(dtype).view(shape)


class StandInTrt:
    """A TensorRT module stand-in (see the module docstring). `inputs`/`outputs`: {name: (TensorRT DataType name,
    shape with -1)}; `profiles`: [{input: (min, opt, max)}]; `fn(**inputs) -> {output: tensor}` computes the
    outputs; `current()` says which GPU index is current (CpuCuda.current_index on the CPU)."""

    def __init__(self, inputs, outputs, profiles, fn, current=CpuCuda.current_index):
        self.fn, self.current = fn, current
        self.on_cuda = current != CpuCuda.current_index   # buffers on a GPU, else CpuCuda's on the CPU
        self.io, self.profiles, self.log, self.devices = {**inputs, **outputs}, profiles, [], {}
        self.input_names = list(inputs)
        self.cache_blob = None          # what the runtime cache holds; deserialize/serialize go through it
        self.validity = (ENUMS["EngineValidity"].VALID, 0)
        self.Runtime = spec_double("Runtime", instance=False)
        self.Runtime.side_effect = self._runtime
        self.Refitter = spec_double("Refitter", instance=False)
        self.Refitter.side_effect = self._refitter
        self.refitted, self.refittable = [], ([], [])
        self.rejected = set()             # input shapes set_input_shape refuses
        self.consistent = lambda shapes: True   # False: infer_shapes raises, as TensorRT does
        self.data_dependent, self.fail = False, False
        self.hidden = set()               # names this TensorRT lacks (IRuntimeCache: full TensorRT)

    __name__, __version__ = "tensorrt_rtx", API["version"]
    IRuntimeCache = object           # present: TensorRT-RTX

    class ILogger:
        Severity = enum.IntEnum("Severity", "INTERNAL_ERROR ERROR WARNING INFO VERBOSE", start=0)

        def __init__(self):
            pass

    class Weights:
        def __init__(self, array):
            self.array = array

        def numpy(self):
            return self.array

    def __getattribute__(self, name):
        if name in object.__getattribute__(self, "__dict__").get("hidden", ()):
            raise AttributeError(name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name):   # the enums; layer classes from the installed TensorRT, where there is one
        if name in ENUMS:
            return ENUMS[name]
        if name.startswith("__") or name == "hidden" or name in self.hidden:
            raise AttributeError(name)
        return getattr(backend.trt(), name)

    def _record(self, event, *detail):
        self.log.append((event, self.current(), *detail))

    def _runtime(self, logger):
        runtime = spec_double("Runtime")
        runtime.get_engine_validity.side_effect = lambda plan: self.validity
        runtime.deserialize_cuda_engine.side_effect = lambda plan: self._engine(plan)
        self._record("runtime")
        return runtime

    def _engine(self, plan):
        self._record("deserialize")
        e, names = spec_double("ICudaEngine"), list(self.io)
        e.num_io_tensors, e.num_optimization_profiles = len(names), len(self.profiles)
        e.get_tensor_name.side_effect = lambda i: names[i]
        e.get_tensor_dtype.side_effect = lambda n: getattr(ENUMS["DataType"], self.io[n][0])
        e.get_tensor_shape.side_effect = lambda n: self.io[n][1]
        mode = ENUMS["TensorIOMode"]
        e.get_tensor_mode.side_effect = lambda n: mode.INPUT if n in self.input_names else mode.OUTPUT
        e.get_tensor_profile_shape.side_effect = lambda n, p: self.profiles[p][n]
        e.create_execution_context.side_effect = lambda *a: self._context(e, *a)
        e.create_runtime_config.side_effect = self._config
        self.devices[id(e)] = self.current()
        return e

    def _config(self):
        config, cache = spec_double("IRuntimeConfig"), spec_double("IRuntimeCache")
        cache.deserialize.side_effect = self._cache_load
        cache.serialize.side_effect = lambda: self._record("cache save") or (self.cache_blob or b"") + b"k"
        config.create_runtime_cache.return_value = cache
        config.set_runtime_cache.side_effect = lambda c: self._record("cache set") or True
        self._record("runtime config")
        return config

    def _cache_load(self, blob):
        self._record("cache load", bytes(blob))
        self.cache_blob = bytes(blob)
        return True

    def _context(self, engine, *args):
        ctx, state = spec_double("IExecutionContext"), {"shapes": {}, "addresses": {}, "profile": None}
        device = self.devices[id(engine)]
        self._record("context", args)

        def here(event):
            assert self.current() == device, f"{event} with GPU {self.current()} current, engine on GPU {device}"

        def profile(p, stream):
            here("set_optimization_profile_async")
            state["profile"], state["stream"] = p, stream
            return True

        def set_shape(name, shape):
            here("set_input_shape")
            lo, _, hi = self.profiles[state["profile"]][name]
            ok = (len(shape) == len(lo) and all(a <= d <= b for a, d, b in zip(lo, shape, hi))
                  and tuple(shape) not in self.rejected)
            self._record("shape", name, tuple(shape), ok)
            if ok:
                state["shapes"][name] = tuple(shape)
            return ok

        def infer():
            if not self.consistent(state["shapes"]):
                raise RuntimeError("shape inference failed")
            return [n for n in self.input_names if n not in state["shapes"]]

        def out_shape(name):
            if self.data_dependent:
                return (-1,) * len(self.io[name][1])
            return tuple(self.fn(**{n: torch.empty(s, device="meta") for n, s in state["shapes"].items()})[name].shape)

        def address(name, ptr):
            here("set_tensor_address")
            assert ptr != 0 and ptr % 256 == 0, f"address {ptr:#x} of '{name}' is null or off 256-byte alignment"
            state["addresses"][name] = ptr
            return True

        def execute(stream):
            here("execute_async_v3")
            assert stream == state["stream"], "executed on a stream other than the context's"
            self._record("execute", state["profile"], dict(state["shapes"]), threading.get_ident(), stream)
            if self.fail:
                return False
            dev = torch.device("cuda", device) if self.on_cuda else torch.device("cpu")
            xs = {n: tensor_at(state["addresses"][n], s, self.io[n][0], dev) for n, s in state["shapes"].items()}
            stream_ctx = (torch.cuda.stream(torch.cuda.ExternalStream(stream, device=dev)) if dev.type == "cuda"
                          else nullcontext())
            with stream_ctx:
                if dev.type == "cuda":
                    assert torch.cuda.current_stream(dev).cuda_stream == stream
                for n, y in self.fn(**xs).items():
                    tensor_at(state["addresses"][n], out_shape(n), self.io[n][0], dev).copy_(y)
            return True

        ctx.set_optimization_profile_async.side_effect = profile
        ctx.set_input_shape.side_effect = set_shape
        ctx.infer_shapes.side_effect = infer
        ctx.get_tensor_shape.side_effect = out_shape
        ctx.set_tensor_address.side_effect = address
        ctx.execute_async_v3.side_effect = execute
        ctx.state = state
        return ctx

    def _refitter(self, engine, logger):
        refitter = spec_double("Refitter")
        device = self.devices[id(engine)]

        def refit():
            assert self.current() == device, f"refit with GPU {self.current()} current, engine on GPU {device}"
            self._record("refit")
            return True

        refitter.set_weights.side_effect = lambda layer, role, w: self.refitted.append((layer, role.name, w)) or True
        refitter.get_missing_weights.return_value = []
        refitter.get_all.side_effect = lambda: self.refittable
        refitter.refit_cuda_engine.side_effect = refit
        return refitter
