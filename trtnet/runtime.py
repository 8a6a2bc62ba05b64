"""Engine execution: deserialize a plan on a GPU, check inputs against its IO and profiles, run it, refit its
weights, keep TensorRT-RTX's runtime cache.

Every TensorRT call sits in `_Executor` and every CUDA call in `_Cuda`, so that what Python decides
(validation, buffer reuse, profile assignment, pool routing) is separate from what only a GPU can do; tests
replace the TensorRT module by doubles made from its bindings and `_Cuda` by a CPU one. Device buffers are
torch CUDA tensors; torch and TensorRT are imported only when an engine is loaded.
"""
import hashlib
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from . import backend
from .files import write_atomic
from .tensors import RuntimeInputError, TensorSpec, dtype_name, fmt_dims

log = logging.getLogger("trtnet")
OUTPUT_SIGNATURES = 8   # buffer sets kept per context (one per recent input-shape signature)
ALIGNMENT = 256         # bytes: TensorRT's alignment for tensor addresses
ENGINES_KEPT = 4        # deserialized engines run_engine keeps, by plan
RTX_CAPABILITIES = ((7, 5), (8, 0), (8, 6), (8, 9))   # and 12.x: TensorRT-RTX's support matrix
PACKED = ("int4", "fp4")                              # two elements per byte, the first in the low nibble
_NUMPY_ALIASES = {"float4_e2m1fn": "fp4", "float8_e8m0fnu": "e8m0"}   # ml_dtypes names -> TensorRT's
_TORCH_NAMES = {"e8m0": "float8_e8m0fnu"}
_ML_DTYPES = {"bfloat16": "bfloat16", "float8_e4m3fn": "float8_e4m3fn", "int4": "int4", "fp4": "float4_e2m1fn",
              "e8m0": "float8_e8m0fnu"}


class ExecutionError(RuntimeError):
    pass


class RefitError(RuntimeError):
    pass


def execution_unavailable(device=0):
    """Why no engine can execute here (None when one can), said plainly for reports."""
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed, and trtnet uses torch CUDA tensors as device buffers"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to PyTorch on this machine"
    if device >= torch.cuda.device_count():
        return f"GPU {device} does not exist (this machine has {torch.cuda.device_count()})"
    return unsupported_gpu(backend.is_rtx(), torch.cuda.get_device_capability(device),
                           torch.cuda.get_device_name(device))


def unsupported_gpu(rtx, capability, name):
    """Why the support matrix rules this GPU out (None when it does not)."""
    cc = tuple(capability)
    if rtx and cc not in RTX_CAPABILITIES and cc[0] != 12:
        return (f"TensorRT-RTX does not run on compute capability {cc[0]}.{cc[1]} ({name}); it runs on 7.5, 8.0, "
                "8.6, 8.9 and 12.x")
    if not rtx and cc < (7, 5):
        return f"TensorRT 10 needs compute capability 7.5 or newer; {name} has {cc[0]}.{cc[1]}"
    return None


def engine_invalid(t, runtime, plan):
    """Why `plan` cannot run on the current GPU, from Runtime.get_engine_validity where the bindings have it."""
    if not hasattr(runtime, "get_engine_validity"):
        return None
    validity, diagnostics = runtime.get_engine_validity(plan)
    if validity != t.EngineValidity.INVALID:
        return None
    why = [n.lower().replace("_", " ") for n, v in t.EngineInvalidityDiagnostics.__members__.items()
           if int(diagnostics) & int(v)]
    return "TensorRT says the engine cannot run on this GPU: " + (", ".join(why) or "no reason given")


def _read_plan(path_or_bytes):
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes)
    with open(os.fspath(path_or_bytes), "rb") as f:
        return f.read()


def _why(errors):
    return ": " + "; ".join(errors) if errors else ""


class _Cuda:
    """The CUDA side, through torch: which GPU is current, streams, device and pinned host buffers."""

    def __init__(self, index):
        import torch
        self.torch, self.device = torch, torch.device("cuda", index)

    def current(self):
        return self.torch.cuda.device(self.device)

    def on(self, stream):
        return self.torch.cuda.stream(stream)

    def stream(self):
        return self.torch.cuda.Stream(self.device)

    def current_stream(self):
        return self.torch.cuda.current_stream(self.device)

    def empty(self, shape, dtype):
        return self.torch.empty(shape, dtype=dtype, device=self.device)

    def host(self, shape, dtype):
        return self.torch.empty(shape, dtype=dtype, pin_memory=True)


@dataclass
class _State:
    context: object     # IExecutionContext
    stream: object      # torch.cuda.Stream


class _Executor:
    """All TensorRT work for one engine on one GPU, each call with that GPU current."""

    def __init__(self, plan, device=0, runtime_cache=None, trt=None, cuda=None):
        if cuda is None:
            reason = execution_unavailable(device)
            if reason is not None:
                raise ExecutionError(f"cannot execute engines here: {reason}")
            cuda = _Cuda(device)
        self.t, self.cuda, self.device = trt or backend.trt(), cuda, cuda.device
        with cuda.current():
            errors = _errors(self.t)
            self.runtime = self.t.Runtime(backend.logger(self.t))
            reason = engine_invalid(self.t, self.runtime, plan)
            if reason is not None:
                raise ExecutionError(reason)
            self.engine = self.runtime.deserialize_cuda_engine(plan)
            if self.engine is None:
                raise ExecutionError(f"TensorRT could not deserialize the engine on GPU {device}"
                                     + (_why(errors) or ": no reason logged"))
            self.scratch = cuda.empty((ALIGNMENT,), cuda.torch.uint8)   # the address of zero-size tensors
            self.config, self.cache, self.cache_path = None, None, runtime_cache
            if runtime_cache:
                self._load_cache(runtime_cache)
        self.inputs, self.outputs, self.num_profiles = self.io()

    def _load_cache(self, path):
        """TensorRT-RTX's runtime cache (kernels it compiled for this GPU), before the first context."""
        if not hasattr(self.t, "IRuntimeCache"):   # full TensorRT has none
            return
        self.config = self.engine.create_runtime_config()
        self.cache = self.config.create_runtime_cache()
        if os.path.exists(path):
            with open(path, "rb") as f:
                if not self.cache.deserialize(f.read()):
                    log.warning("%s: runtime cache made for another GPU, driver or TensorRT-RTX; starting a new one",
                                path)
        if not self.config.set_runtime_cache(self.cache):
            raise ExecutionError(f"TensorRT-RTX rejected the runtime cache {path}")

    def save_cache(self):
        """Write the runtime cache (with what this process compiled) back atomically; the path or None."""
        if self.cache is None:
            return None
        with self.cuda.current():
            data = bytes(memoryview(self.cache.serialize()))
        try:
            return write_atomic(self.cache_path, data)
        except OSError as e:   # a read-only engine directory: the next process compiles again, nothing worse
            log.warning("runtime cache not saved: %s", e)
            return None

    def io(self):
        """(inputs, outputs, number of optimization profiles) as TensorSpecs."""
        e, inputs, outputs = self.engine, [], []
        for i in range(e.num_io_tensors):
            name = e.get_tensor_name(i)
            spec = TensorSpec(name, dtype_name(e.get_tensor_dtype(name)), tuple(e.get_tensor_shape(name)))
            if e.get_tensor_mode(name) == self.t.TensorIOMode.INPUT:
                spec.profiles = [tuple(tuple(s) for s in e.get_tensor_profile_shape(name, p))
                                 for p in range(e.num_optimization_profiles)]
                inputs.append(spec)
            else:
                outputs.append(spec)
        return inputs, outputs, e.num_optimization_profiles

    def new_state(self, stream, profile):
        with self.cuda.current():
            stream = stream or self.cuda.stream()
            context = (self.engine.create_execution_context(self.config) if self.config is not None
                       else self.engine.create_execution_context())
            if context is None:
                raise ExecutionError(f"TensorRT could not create an execution context on {self.device}")
            if not context.set_optimization_profile_async(profile, stream.cuda_stream):
                raise ExecutionError(f"TensorRT could not select optimization profile {profile}")
        return _State(context, stream)

    def set_shapes(self, state, shapes):
        """Set the input shapes; returns the output shapes they give."""
        given = ", ".join(f"{n} {fmt_dims(s)}" for n, s in shapes.items())
        with self.cuda.current():
            errors = _errors(self.t)
            for name, shape in shapes.items():
                if not state.context.set_input_shape(name, shape):
                    raise ExecutionError(f"TensorRT rejected shape {fmt_dims(shape)} for input '{name}'{_why(errors)}")
            try:
                unspecified = state.context.infer_shapes()
            except RuntimeError as e:
                raise ExecutionError(f"TensorRT found the input shapes inconsistent ({given}): "
                                     + ("; ".join(errors) or str(e))) from None
            if unspecified:
                raise ExecutionError(f"TensorRT needs input(s) {', '.join(unspecified)} specified further ({given})")
            out = {o.name: tuple(state.context.get_tensor_shape(o.name)) for o in self.outputs}
        for n, s in out.items():
            if -1 in s:
                raise ExecutionError(f"output '{n}' has a data-dependent shape, which trtnet.runtime does not support")
        return out

    def execute(self, state, buffers, uploads=(), downloads=()):
        """Copy `uploads` (device, pinned host) in, run once on the state's stream, copy `downloads` (pinned host,
        device) out, and wait. The stream first waits for torch's current stream, which made the inputs."""
        with self.cuda.current():
            state.stream.wait_stream(self.cuda.current_stream())
            with self.cuda.on(state.stream):
                for dev, host in uploads:
                    dev.copy_(host, non_blocking=True)
            for name, buf in buffers.items():
                address = buf.data_ptr() if buf.numel() else self.scratch.data_ptr()   # never null
                if not state.context.set_tensor_address(name, address):
                    raise ExecutionError(f"TensorRT rejected the address of tensor '{name}'")
            errors = _errors(self.t)
            if not state.context.execute_async_v3(state.stream.cuda_stream):
                raise ExecutionError("TensorRT failed to execute the engine" + (_why(errors) or ": no reason logged"))
            with self.cuda.on(state.stream):
                for host, dev in downloads:
                    host.copy_(dev, non_blocking=True)
            state.stream.synchronize()

    def refit(self, updates):
        with self.cuda.current():
            _apply(self.t, self.engine, updates)

    def refittable(self):
        """{(layer name, role name)} of the weights the engine can take."""
        with self.cuda.current():
            names, roles = self.t.Refitter(self.engine, backend.logger(self.t)).get_all()
        return {(n, r.name) for n, r in zip(names, roles)}


def _errors(t):
    """TensorRT's error log, emptied: what the next call logs, and nothing older."""
    errors = backend.logger(t).errors
    errors.clear()
    return errors


def numpy_dtype(name):
    """The numpy dtype of an engine tensor type (ml_dtypes' for bfloat16, fp8, int4, fp4, e8m0)."""
    return _ml_dtypes(name) if name in _ML_DTYPES else np.dtype(name)


def _ml_dtypes(name):
    try:
        import ml_dtypes
    except ImportError:
        raise RuntimeInputError(f"{name} tensors as numpy arrays need the ml_dtypes package (pip install "
                                "ml_dtypes); or pass torch tensors") from None
    return np.dtype(getattr(ml_dtypes, _ML_DTYPES[name]))


def _torch_dtype(torch, name):
    return torch.uint8 if name in PACKED else getattr(torch, _TORCH_NAMES.get(name, name))


def _buffer_shape(name, shape):
    """Packed types live in a flat byte buffer."""
    return (-(-int(np.prod(shape, dtype=np.int64)) // 2),) if name in PACKED else tuple(shape)


def _host_tensor(torch, array, name):
    """A numpy array as a torch CPU tensor of the engine's layout (bfloat16/fp8 by their bits, int4/fp4 packed)."""
    if name in PACKED:
        codes = (array.astype(np.int8) if name == "int4" else array.view(np.uint8)).ravel().view(np.uint8) & 0xF
        codes = np.append(codes, np.zeros(len(codes) % 2, np.uint8))
        return torch.from_numpy(codes[0::2] | (codes[1::2] << 4))
    if name in _ML_DTYPES:
        return torch.from_numpy(array.view(f"u{array.itemsize}" if array.itemsize == 1 else f"i{array.itemsize}")
                                ).view(_torch_dtype(torch, name))
    return torch.from_numpy(array)


def _numpy(torch, tensor, name, shape):
    """A host tensor in the engine's layout as a new numpy array of `shape` (ml_dtypes for bfloat16, fp8, int4, fp4)."""
    if name in PACKED:
        packed = tensor.numpy()
        codes = np.stack([packed & 0xF, packed >> 4], 1).ravel()[:int(np.prod(shape, dtype=np.int64))]
        if name == "int4":
            return ((codes.astype(np.int8) ^ 8) - 8).astype(_ml_dtypes(name)).reshape(shape)
        return codes.view(_ml_dtypes(name)).reshape(shape).copy()
    if name in _ML_DTYPES:
        bits = torch.int8 if tensor.element_size() == 1 else getattr(torch, f"int{8 * tensor.element_size()}")
        return tensor.view(bits).numpy().view(_ml_dtypes(name)).copy()
    return tensor.numpy().copy()


def _kind(value):
    """(is numpy, dtype name as TensorRT's names go) of an input value, or None for anything else."""
    if isinstance(value, np.ndarray):
        return True, _NUMPY_ALIASES.get(value.dtype.name, value.dtype.name)
    if type(value).__module__.startswith("torch") and hasattr(value, "data_ptr"):
        return False, str(value.dtype).rsplit(".", 1)[-1]
    return None


class Engine:
    """A deserialized engine on one GPU. `engine(**arrays)` runs synchronously in a default context: numpy in,
    numpy out; torch CUDA tensors in, torch tensors out (the context's output buffers, overwritten by its next
    run with the same shapes: clone what you keep); numpy and torch mixed, numpy out.

    `runtime_cache`: TensorRT-RTX's runtime cache file, by default ENGINE.runtime-cache beside an engine file
    (False: none); `trt` and `cuda` replace the TensorRT module and the CUDA layer (tests)."""

    def __init__(self, path_or_bytes, device=0, runtime_cache=None, trt=None, cuda=None):
        if runtime_cache is None and not isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            runtime_cache = os.fspath(path_or_bytes) + ".runtime-cache"
        self.device = device
        self.executor = _Executor(_read_plan(path_or_bytes), device, runtime_cache or None, trt, cuda)
        self.inputs, self.outputs, self.num_profiles = self.executor.inputs, self.executor.outputs, \
            self.executor.num_profiles
        self.dynamic = any(-1 in s.shape for s in self.inputs)
        self._default, self._default_lock, self._lock, self._claimed = None, threading.Lock(), threading.Lock(), {}

    def context(self, stream=None, profile=None):
        """An execution context on `stream` (a torch CUDA stream; a new one if None) using `profile` (the first
        one no other context uses if None: TensorRT needs a distinct profile per context of a dynamic engine)."""
        return Context(self, stream, profile)

    def _claim(self, profile, context):
        with self._lock:
            live = {p for p, ref in self._claimed.items() if ref() is not None} if self.dynamic else set()
            if profile is None:
                profile = min(set(range(self.num_profiles)) - live, default=None)
                if profile is None:
                    raise ValueError(f"all {self.num_profiles} optimization profile(s) are in use by other contexts; "
                                     "a dynamic-shape engine needs a distinct profile per context")
            if not 0 <= profile < self.num_profiles:
                raise ValueError(f"optimization profile {profile} does not exist (the engine has {self.num_profiles})")
            if profile in live:
                raise ValueError(f"optimization profile {profile} is in use by another context; a dynamic-shape "
                                 "engine needs a distinct profile per context")
            self._claimed[profile] = weakref.ref(context)
            return profile

    def __call__(self, **arrays):
        with self._default_lock:
            if self._default is None:
                self._default = self.context()
        return self._default(**arrays)

    def save_runtime_cache(self):
        """Write TensorRT-RTX's runtime cache, as this process extended it; the path, or None without one."""
        with self._lock:
            return self.executor.save_cache()

    def to_device(self, arrays):
        """numpy inputs as torch tensors on the engine's GPU in its layout (int4/fp4, which torch cannot hold
        unpacked, stay numpy)."""
        torch, specs = self.executor.cuda.torch, {s.name: s for s in self.inputs}
        return {n: a if specs[n].dtype in PACKED else _host_tensor(torch, np.ascontiguousarray(a), specs[n].dtype)
                .to(self.executor.device) for n, a in arrays.items()}

    def validate(self, arrays, profile=0):
        """Check names, ranks, dims (against `profile`), dtypes and devices; True when any input is numpy (the
        outputs come back as numpy then)."""
        specs = {s.name: s for s in self.inputs}
        for name in arrays:
            if name not in specs:
                raise RuntimeInputError(f"unknown input '{name}': the engine's inputs are {', '.join(specs)}")
        numpy_in = []
        for name, spec in specs.items():
            if name not in arrays:
                raise RuntimeInputError(f"missing input '{name}' ({spec.dtype} {fmt_dims(spec.shape)})")
            kind = _kind(arrays[name])
            if kind is None:
                raise RuntimeInputError(f"input '{name}': got {type(arrays[name]).__name__}, expected a numpy array "
                                        f"or a torch tensor")
            if not kind[0] and spec.dtype in PACKED:
                raise RuntimeInputError(f"input '{name}': {spec.dtype} goes in as a numpy array of ml_dtypes' "
                                        f"{_ML_DTYPES[spec.dtype]} (torch has no packed {spec.dtype} type)")
            if not kind[0] and arrays[name].device != self.executor.device:
                raise RuntimeInputError(f"input '{name}': tensor on {arrays[name].device}, expected on "
                                        f"{self.executor.device}")
            spec.check(arrays[name].shape, kind[1], profile)
            numpy_in.append(kind[0])
        return any(numpy_in)


@dataclass
class _Buffers:
    outputs: dict                                   # name -> device tensor
    shapes: dict                                    # output name -> shape (packed types: not the buffer's)
    staged: dict = field(default_factory=dict)      # input name -> (device tensor, pinned host tensor)
    host: dict = field(default_factory=dict)        # output name -> pinned host tensor


class Context:
    """One execution context on one stream and profile. Buffers (device outputs, pinned host copies of numpy
    inputs and outputs) are allocated once per input-shape signature and reused, so a steady stream of
    same-shaped batches allocates nothing."""

    def __init__(self, engine, stream=None, profile=None):
        self.engine = engine
        self.profile = engine._claim(profile, self)
        self.state = engine.executor.new_state(stream, self.profile)
        self.allocations = 0
        self._buffers, self._shapes, self._lock = OrderedDict(), None, threading.Lock()

    def __call__(self, **arrays):
        numpy_out = self.engine.validate(arrays, self.profile)
        ex, specs = self.engine.executor, {s.name: s for s in self.engine.inputs}
        torch = ex.cuda.torch
        with self._lock:
            signature = tuple((n, tuple(int(d) for d in arrays[n].shape)) for n in specs)
            new = signature not in self._buffers
            bufs = self._buffers_for(signature)
            inputs, uploads = {}, []
            for name, value in arrays.items():
                if isinstance(value, np.ndarray) or value.data_ptr() % ALIGNMENT:
                    dev, host = self._staged(bufs, name, specs[name].dtype, value.shape)
                    if isinstance(value, np.ndarray):
                        host.copy_(_host_tensor(torch, np.ascontiguousarray(value), specs[name].dtype))
                        uploads.append((dev, host))
                    else:   # a slice off TensorRT's alignment: copied to an aligned buffer
                        dev.copy_(value)
                    inputs[name] = dev
                else:
                    inputs[name] = value.contiguous()
            downloads = [(self._host(bufs, o), bufs.outputs[o.name]) for o in self.engine.outputs] if numpy_out else []
            ex.execute(self.state, {**inputs, **bufs.outputs}, uploads, downloads)
            result = ({o.name: _numpy(torch, h, o.dtype, bufs.shapes[o.name])
                       for o, (h, _) in zip(self.engine.outputs, downloads)} if numpy_out else dict(bufs.outputs))
        if new:   # the runtime may have compiled kernels for these shapes
            self.engine.save_runtime_cache()
        return result

    def _buffers_for(self, signature):
        """The buffers for these input shapes; sets the shapes on the context when they change (and forgets
        them when TensorRT refuses, so that no later call runs with buffers sized for other shapes)."""
        ex = self.engine.executor
        if signature != self._shapes:
            self._shapes = None
            shapes = ex.set_shapes(self.state, dict(signature))
            if signature not in self._buffers:
                outputs = {o.name: ex.cuda.empty(_buffer_shape(o.dtype, shapes[o.name]),
                                                 _torch_dtype(ex.cuda.torch, o.dtype)) for o in self.engine.outputs}
                self._buffers[signature] = _Buffers(outputs, shapes)
                self.allocations += 1
            self._shapes = signature
        self._buffers.move_to_end(signature)
        while len(self._buffers) > OUTPUT_SIGNATURES:
            self._buffers.popitem(last=False)
        return self._buffers[signature]

    def _staged(self, bufs, name, dtype, shape):
        ex = self.engine.executor
        if name not in bufs.staged:
            shape, dt = _buffer_shape(dtype, shape), _torch_dtype(ex.cuda.torch, dtype)
            bufs.staged[name] = (ex.cuda.empty(shape, dt), ex.cuda.host(shape, dt))
        return bufs.staged[name]

    def _host(self, bufs, spec):
        if spec.name not in bufs.host:
            dev = bufs.outputs[spec.name]
            bufs.host[spec.name] = self.engine.executor.cuda.host(tuple(dev.shape), dev.dtype)
        return bufs.host[spec.name]


_engines, _engines_lock = OrderedDict(), threading.Lock()


def run_engine(plan, inputs, device=0, max_batch=None, trt=None, cuda=None):
    """Run `plan` (an Engine, or plan bytes/path: deserialized once and kept for the next call) on GPU `device`
    on `inputs` ({name: array}), in chunks of `max_batch` samples along the batch through one context."""
    engine = plan if isinstance(plan, Engine) else _engine_for(plan, device, trt, cuda)
    n = len(next(iter(inputs.values())))
    step = max_batch or n
    chunks = [engine(**{k: v[i:i + step] for k, v in inputs.items()}) for i in range(0, n, step)]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _engine_for(plan, device, trt, cuda):
    data = _read_plan(plan)
    key = (hashlib.sha256(data).digest(), device, id(trt), id(cuda))   # trt, cuda: kept alive by the engine
    with _engines_lock:
        if key in _engines:
            _engines.move_to_end(key)
            return _engines[key]
    engine = Engine(data if isinstance(plan, (bytes, bytearray, memoryview)) else plan, device, trt=trt, cuda=cuda)
    with _engines_lock:
        _engines[key] = engine
        while len(_engines) > ENGINES_KEPT:
            _engines.popitem(last=False)
    return engine


@dataclass
class PoolStats:
    batches: int = 0
    samples: int = 0
    seconds: float = 0.0

    @property
    def samples_per_s(self):
        return self.samples / self.seconds if self.seconds else 0.0

    def __str__(self):
        return (f"{self.batches} batches, {self.samples} samples in {self.seconds:.3f} s: "
                f"{self.samples_per_s:.1f} samples/s")


class EnginePool:
    """One Engine per GPU and several contexts per engine, fed from Python threads (TensorRT and torch release
    the GIL while the GPU works). With dynamic shapes each context has its own optimization profile, so an
    engine with fewer profiles than `contexts_per_device` gets fewer contexts (see `note`), and each batch goes
    only to a context whose profile admits its shapes."""

    def __init__(self, path, devices=(0, 1), contexts_per_device=2, runtime_cache=None, trt=None, cuda=None):
        plan = _read_plan(path)
        if runtime_cache is None and not isinstance(path, (bytes, bytearray, memoryview)):
            runtime_cache = os.fspath(path) + ".runtime-cache"
        self.engines = [Engine(plan, d, runtime_cache or False, trt, cuda(d) if callable(cuda) else cuda)
                        for d in devices]
        first = self.engines[0]
        per_device = min(contexts_per_device, first.num_profiles) if first.dynamic else contexts_per_device
        self.note = ""
        if per_device < contexts_per_device:
            self.note = (f"{per_device} context(s) per device instead of {contexts_per_device}: the engine has "
                         f"{first.num_profiles} optimization profile(s), and each context in concurrent use with "
                         "dynamic shapes needs its own")
            log.warning(self.note)
        self.contexts = [e.context(profile=p if first.dynamic else 0) for e in self.engines for p in range(per_device)]
        self.stats = PoolStats()

    def run(self, batches):
        """Run every batch ({name: array}) on a free context whose profile fits it; results in submission order."""
        batches = list(batches)
        for i, batch in enumerate(batches):
            self._route_check(i, batch)
        pending, lock, results, errors = list(enumerate(batches)), threading.Lock(), [None] * len(batches), []
        threads = [threading.Thread(target=self._worker, args=(c, pending, lock, results, errors), daemon=True)
                   for c in self.contexts]
        start = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        seconds = time.perf_counter() - start
        if errors:
            raise min(errors, key=lambda e: e[0])[1]
        for e in self.engines:
            e.save_runtime_cache()
        self.stats.batches += len(batches)
        self.stats.samples += sum(int(next(iter(b.values())).shape[0]) for b in batches if b)
        self.stats.seconds += seconds
        return results

    def _route_check(self, index, batch):
        """Raise, naming the batch, unless some context's profile admits it."""
        first_error = None
        for c in self.contexts:
            try:
                c.engine.validate(batch, c.profile)
                return
            except RuntimeInputError as e:
                first_error = first_error or e
        profiles = sorted({c.profile for c in self.contexts})
        raise RuntimeInputError(f"batch {index}: {first_error}" + (
            f"; nor does any other context's profile ({', '.join(map(str, profiles[1:]))})" if len(profiles) > 1 else ""))

    @staticmethod
    def _take(context, pending, lock):
        with lock:
            for i, (index, batch) in enumerate(pending):
                try:
                    context.engine.validate(batch, context.profile)
                except RuntimeInputError:
                    continue
                return pending.pop(i)
        return None

    @classmethod
    def _worker(cls, context, pending, lock, results, errors):
        ex = context.engine.executor
        with ex.cuda.current():   # the engine's GPU for this thread's torch work too
            while not errors:
                item = cls._take(context, pending, lock)
                if item is None:
                    return
                index, batch = item
                try:
                    moved = {n: v if isinstance(v, np.ndarray) else v.to(ex.device) for n, v in batch.items()}
                    out = context(**moved)
                    results[index] = {n: y if isinstance(y, np.ndarray) else y.clone() for n, y in out.items()}
                except Exception as e:  # handed to the caller of run(), with the index of the failing batch
                    errors.append((index, e))


def _weight_updates(t, weights):
    """(layer, role) or named-weight keys -> validated contiguous arrays, checked before any TensorRT call."""
    roles = {r.lower(): getattr(t.WeightsRole, r) for r in t.WeightsRole.__members__}
    updates = []
    for key, arr in weights.items():
        arr = np.ascontiguousarray(arr)
        if isinstance(key, tuple):
            layer, role = key
            if str(role).lower() not in roles:
                raise ValueError(f"refit: weights {key!r}: unknown role {role!r}; expected one of {', '.join(roles)}")
            updates.append((layer, roles[str(role).lower()], arr))
        elif isinstance(key, str):
            updates.append((key, None, arr))
        else:
            raise ValueError(f"refit: weights key {key!r} must be a weights name or a (layer name, role) pair")
    return updates


def refit(engine_or_plan, weights, device=None):
    """Replace weights in a refittable engine (an Engine, on its own GPU; or plan bytes/path, on `device`,
    default 0) and return the Engine. `weights` maps a weights name (set_named_weights) or (layer name, role
    such as "kernel" or "bias") (set_weights) to an array. Needs a GPU that runs the engine: TensorRT refits
    device memory."""
    updates = _weight_updates(engine_or_plan.executor.t if isinstance(engine_or_plan, Engine) else backend.trt(),
                              weights)
    if not isinstance(engine_or_plan, Engine):
        reason = execution_unavailable(device or 0)
        if reason is not None:
            raise ExecutionError(f"cannot refit here: {reason}")
        engine_or_plan = Engine(engine_or_plan, device or 0)
    engine_or_plan.executor.refit(updates)
    return engine_or_plan


_REFIT_LAYERS = {"CONVOLUTION": ("IConvolutionLayer", {"KERNEL": "kernel", "BIAS": "bias"}),
                 "DECONVOLUTION": ("IDeconvolutionLayer", {"KERNEL": "kernel", "BIAS": "bias"}),
                 "SCALE": ("IScaleLayer", {"SHIFT": "shift", "SCALE": "scale"}),
                 "CONSTANT": ("IConstantLayer", {"CONSTANT": "weights"})}


def network_weights(t, network):
    """{(layer name, role name): array} of every refittable weight `network` holds: what a weight-stripped plan
    built from it needs back."""
    weights = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type.name not in _REFIT_LAYERS:
            continue
        cls, roles = _REFIT_LAYERS[layer.type.name]
        layer.__class__ = getattr(t, cls)   # TensorRT's Python API reads weights only through the subclass
        for role, attr in roles.items():
            value = getattr(layer, attr)
            if value is not None and np.asarray(value).size:
                weights[(layer.name, role)] = np.asarray(value)
    return weights


def refit_from_network(engine, network):
    """Refit `engine` (an Engine of a weight-stripped plan) with the weights of the network it was built from."""
    wanted = engine.executor.refittable()
    return refit(engine, {k: v for k, v in network_weights(engine.executor.t, network).items() if k in wanted})


def _apply(t, cuda_engine, updates):
    logger = backend.logger(t)
    errors = _errors(t)
    refitter = t.Refitter(cuda_engine, logger)
    for name, role, arr in updates:  # arrays stay referenced by `updates` until the refit returns
        ok = (refitter.set_named_weights(name, t.Weights(arr)) if role is None
              else refitter.set_weights(name, role, t.Weights(arr)))
        if not ok:
            raise RefitError(f"refit: TensorRT rejected weights for {name!r}{_why(errors)}")
    missing = refitter.get_missing_weights()
    if missing:
        raise RefitError(f"refit: weights still missing for {', '.join(missing[:5])}"
                         + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    if not refitter.refit_cuda_engine():
        raise RefitError("refit: TensorRT could not refit the engine" + (_why(errors) or ": no reason logged"))
