"""Engine execution: deserialize a plan on a GPU, check inputs against its IO and profiles, run it, refit its
weights.

Every TensorRT and CUDA call sits in `_Executor`, so that what Python decides (validation, buffer reuse,
profile assignment, pool scheduling) is separate from what only a GPU can do. Device buffers are torch
CUDA tensors; torch and TensorRT are imported only when an engine is loaded.
"""
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from . import backend
from .tensors import RuntimeInputError, TensorSpec, dtype_name, fmt_dims

log = logging.getLogger("trtnet")
OUTPUT_SIGNATURES = 8   # output buffer sets kept per context (one per recent input-shape signature)


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
    cc = torch.cuda.get_device_capability(device)
    if backend.is_rtx() and cc == (9, 0):
        return f"TensorRT-RTX does not run on compute capability 9.0 ({torch.cuda.get_device_name(device)})"
    return None


def _read_plan(path_or_bytes):
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes)
    with open(os.fspath(path_or_bytes), "rb") as f:
        return f.read()


@dataclass
class _State:
    context: object     # IExecutionContext
    stream: object      # torch.cuda.Stream


class _Executor:
    """All TensorRT/CUDA work for one engine on one GPU."""

    def __init__(self, plan, device=0):
        import torch
        reason = execution_unavailable(device)
        if reason is not None:
            raise ExecutionError(f"cannot execute engines here: {reason}")
        self.t, self.device = backend.trt(), torch.device("cuda", device)
        errors = backend.logger().errors
        errors.clear()
        with torch.cuda.device(self.device):
            self.runtime = self.t.Runtime(backend.logger())
            self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise ExecutionError(f"TensorRT could not deserialize the engine on GPU {device}: "
                                 + ("; ".join(errors) or "no reason logged"))

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
        import torch
        with torch.cuda.device(self.device):
            stream = stream or torch.cuda.Stream(self.device)
            context = self.engine.create_execution_context()
            if context is None:
                raise ExecutionError(f"TensorRT could not create an execution context on {self.device}")
            if not context.set_optimization_profile_async(profile, stream.cuda_stream):
                raise ExecutionError(f"TensorRT could not select optimization profile {profile}")
        return _State(context, stream)

    def set_shapes(self, state, shapes):
        """Set the input shapes; returns the output shapes they give."""
        for name, shape in shapes.items():
            if not state.context.set_input_shape(name, shape):
                raise ExecutionError(f"TensorRT rejected shape {fmt_dims(shape)} for input '{name}'")
        e = self.engine
        return {n: tuple(state.context.get_tensor_shape(n)) for n in (e.get_tensor_name(i) for i in range(e.num_io_tensors))
                if e.get_tensor_mode(n) == self.t.TensorIOMode.OUTPUT}

    def execute(self, state, buffers):
        """Run once on the state's stream, after the work already queued on torch's current stream (which made
        the inputs), and wait for it."""
        import torch
        for name, buf in buffers.items():
            state.context.set_tensor_address(name, buf.data_ptr())
        state.stream.wait_stream(torch.cuda.current_stream(self.device))
        if not state.context.execute_async_v3(state.stream.cuda_stream):
            raise ExecutionError("TensorRT failed to execute the engine: " + "; ".join(backend.logger().errors))
        state.stream.synchronize()


def _kind(value):
    """(is numpy, dtype name) of an input value, or None for anything else."""
    if isinstance(value, np.ndarray):
        return True, value.dtype.name
    if type(value).__module__.startswith("torch") and hasattr(value, "data_ptr"):
        return False, str(value.dtype).rsplit(".", 1)[-1]
    return None


class Engine:
    """A deserialized engine on one GPU. `engine(**arrays)` runs synchronously in a default context: numpy in,
    numpy out; torch CUDA tensors in, torch tensors out (the context's output buffers, overwritten by its next
    run with the same shapes: clone what you keep)."""

    def __init__(self, path_or_bytes, device=0, executor=None):
        self.device = device
        self.executor = (executor or _Executor)(_read_plan(path_or_bytes), device)
        self.inputs, self.outputs, self.num_profiles = self.executor.io()
        self._default, self._lock = None, threading.Lock()

    def context(self, stream=None, profile=0):
        """An execution context on `stream` (a torch CUDA stream; a new one if None) using `profile`."""
        return Context(self, stream, profile)

    def __call__(self, **arrays):
        with self._lock:
            if self._default is None:
                self._default = self.context()
        return self._default(**arrays)

    def validate(self, arrays, profile=0):
        """Check names, ranks, dims (against `profile`), dtypes and devices; True when all inputs are numpy."""
        specs = {s.name: s for s in self.inputs}
        expected = ", ".join(specs)
        for name in arrays:
            if name not in specs:
                raise RuntimeInputError(f"unknown input '{name}': the engine's inputs are {expected}")
        numpy_in = []
        for name, spec in specs.items():
            if name not in arrays:
                raise RuntimeInputError(f"missing input '{name}' ({spec.dtype} {fmt_dims(spec.shape)})")
            kind = _kind(arrays[name])
            if kind is None:
                raise RuntimeInputError(f"input '{name}': got {type(arrays[name]).__name__}, expected a numpy array "
                                        f"or a torch tensor")
            if not kind[0] and arrays[name].device != self.executor.device:
                raise RuntimeInputError(f"input '{name}': tensor on {arrays[name].device}, expected on "
                                        f"{self.executor.device}")
            spec.check(arrays[name].shape, kind[1], profile)
            numpy_in.append(kind[0])
        return all(numpy_in)


class Context:
    """One execution context on one stream and profile. Output buffers are allocated once per input-shape
    signature and reused, so a steady stream of same-shaped batches allocates nothing."""

    def __init__(self, engine, stream=None, profile=0):
        if not 0 <= profile < engine.num_profiles:
            raise ValueError(f"optimization profile {profile} does not exist (the engine has {engine.num_profiles})")
        self.engine, self.profile = engine, profile
        self.state = engine.executor.new_state(stream, profile)
        self.allocations = 0
        self._buffers, self._shapes, self._lock = OrderedDict(), None, threading.Lock()

    def __call__(self, **arrays):
        import torch
        numpy_in = self.engine.validate(arrays, self.profile)
        device = self.engine.executor.device
        with self._lock:
            inputs = {s.name: (torch.from_numpy(np.ascontiguousarray(arrays[s.name])).to(device) if numpy_in
                               else arrays[s.name].contiguous()) for s in self.engine.inputs}
            outputs = self._outputs(tuple((n, tuple(x.shape)) for n, x in inputs.items()))
            self.engine.executor.execute(self.state, {**inputs, **outputs})
            if numpy_in:  # copied out before another thread's run can overwrite the buffers
                return {n: (y.float() if y.dtype == torch.bfloat16 else y).to("cpu", copy=True).numpy()
                        for n, y in outputs.items()}
            return dict(outputs)

    def _outputs(self, signature):
        """The output buffers for these input shapes; sets the shapes on the context when they change."""
        import torch
        if signature != self._shapes:
            shapes = self.engine.executor.set_shapes(self.state, dict(signature))
            self._shapes = signature
            if signature not in self._buffers:
                for n, s in shapes.items():
                    if -1 in s:
                        raise ExecutionError(f"output '{n}' has a data-dependent shape, which trtnet.runtime "
                                             "does not support")
                self._buffers[signature] = {o.name: torch.empty(shapes[o.name], dtype=getattr(torch, o.dtype),
                                                                device=self.engine.executor.device)
                                            for o in self.engine.outputs}
                self.allocations += 1
        self._buffers.move_to_end(signature)
        while len(self._buffers) > OUTPUT_SIGNATURES:
            self._buffers.popitem(last=False)
        return self._buffers[signature]


def run_engine(plan, inputs, device=0, max_batch=None):
    """Run `plan` on GPU `device` on `inputs` ({name: array}), in chunks of `max_batch` samples along the batch
    (the profile's maximum) through one execution context."""
    engine = Engine(plan, device)
    n = len(next(iter(inputs.values())))
    step = max_batch or n
    chunks = [engine(**{k: v[i:i + step] for k, v in inputs.items()}) for i in range(0, n, step)]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


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
    the GIL while the GPU works). With dynamic shapes each concurrently used context needs its own optimization
    profile, so an engine with fewer profiles than `contexts_per_device` gets fewer contexts (see `note`)."""

    def __init__(self, path, devices=(0, 1), contexts_per_device=2, executor=None):
        plan = _read_plan(path)
        self.engines = [Engine(plan, d, executor) for d in devices]
        first = self.engines[0]
        dynamic = any(-1 in s.shape for s in first.inputs)
        per_device = min(contexts_per_device, first.num_profiles) if dynamic else contexts_per_device
        self.note = ""
        if per_device < contexts_per_device:
            self.note = (f"{per_device} context(s) per device instead of {contexts_per_device}: the engine has "
                         f"{first.num_profiles} optimization profile(s), and each context in concurrent use with "
                         "dynamic shapes needs its own")
            log.warning(self.note)
        self.contexts = [e.context(profile=p if dynamic else 0) for e in self.engines for p in range(per_device)]
        self.stats = PoolStats()

    def run(self, batches):
        """Run every batch ({name: array}) on whichever context is free; results in submission order."""
        batches = list(batches)
        work, results, errors = queue.SimpleQueue(), [None] * len(batches), []
        for item in enumerate(batches):
            work.put(item)
        threads = [threading.Thread(target=self._worker, args=(c, work, results, errors), daemon=True)
                   for c in self.contexts]
        start = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        seconds = time.perf_counter() - start
        if errors:
            index, error = min(errors, key=lambda e: e[0])
            raise error
        self.stats.batches += len(batches)
        self.stats.samples += sum(int(next(iter(b.values())).shape[0]) for b in batches if b)
        self.stats.seconds += seconds
        return results

    @staticmethod
    def _worker(context, work, results, errors):
        device = context.engine.executor.device
        while not errors:
            try:
                index, batch = work.get_nowait()
            except queue.Empty:
                return
            try:
                moved = {n: v if isinstance(v, np.ndarray) else v.to(device) for n, v in batch.items()}
                out = context(**moved)
                results[index] = {n: y if isinstance(y, np.ndarray) else y.clone() for n, y in out.items()}
            except Exception as e:  # handed to the caller of run(), with the index of the failing batch
                errors.append((index, e))


def _weight_updates(weights):
    """(layer, role) or named-weight keys -> validated contiguous arrays, checked before any TensorRT call."""
    t = backend.trt()
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


def refit(engine_or_plan, weights, device=0):
    """Replace weights in a refittable engine (an Engine, an ICudaEngine or plan bytes/path) and
    return the engine. `weights` maps a weights name (set_named_weights) or (layer name, role such as "kernel"
    or "bias") (set_weights) to an array. Needs a GPU that runs the engine: TensorRT refits device memory."""
    updates = _weight_updates(weights)
    reason = execution_unavailable(device)
    if reason is not None:
        raise ExecutionError(f"cannot refit here: {reason}")
    engine = engine_or_plan if isinstance(engine_or_plan, Engine) else None
    if engine is None and not hasattr(engine_or_plan, "create_execution_context"):
        engine = Engine(engine_or_plan, device)
    cuda_engine = engine.executor.engine if engine is not None else engine_or_plan
    import torch
    with torch.cuda.device(device):
        _apply(cuda_engine, updates)
    return engine if engine is not None else cuda_engine


def _apply(cuda_engine, updates):
    t = backend.trt()
    logger = backend.logger()
    logger.errors.clear()
    refitter = t.Refitter(cuda_engine, logger)
    for name, role, arr in updates:  # arrays stay referenced by `updates` until the refit returns
        ok = (refitter.set_named_weights(name, t.Weights(arr)) if role is None
              else refitter.set_weights(name, role, t.Weights(arr)))
        if not ok:
            raise RefitError(f"refit: TensorRT rejected weights for {name!r}: " + "; ".join(logger.errors))
    missing = refitter.get_missing_weights()
    if missing:
        raise RefitError(f"refit: weights still missing for {', '.join(missing[:5])}"
                         + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    if not refitter.refit_cuda_engine():
        raise RefitError("refit: TensorRT could not refit the engine: " + "; ".join(logger.errors))
