"""Engine build (works on any machine) and execution (needs a GPU the installed TensorRT supports)."""
import logging
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from . import backend
from .emit_trt import emit
from .errors import TrtnetError

log = logging.getLogger("trtnet")


class BuildError(TrtnetError, RuntimeError):
    pass


@dataclass
class EngineInfo:
    flavour: str
    layers: int
    inputs: dict             # name -> symbolic shape
    outputs: dict
    profiles: list           # [{dimension name: (min, opt, max)}], one per optimization profile
    seconds: float
    precision: str = "fp32"
    size: int = 0
    path: str = ""
    cached: bool = False     # served from the engine cache instead of built


def create_network(graph, fp16=False):
    """A strongly typed TensorRT network filled from `graph`: (builder, network, emission)."""
    t = backend.trt()
    builder = t.Builder(backend.logger())
    network = builder.create_network(1 << int(t.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    return builder, network, emit(graph, network, fp16)


def profiles_for(graph, profiles=None):
    """Optimization profiles as [{dimension name: (min, opt, max)}], every dynamic dimension covered.

    `profiles` may be None (the graph's own ranges), one dict or a list of them (completed from the graph's
    ranges), or a (min, opt, max) tuple for the batch "N" alone."""
    if profiles is None:
        profiles = [{}]
    elif isinstance(profiles, dict):
        profiles = [profiles]
    elif len(profiles) == 3 and all(isinstance(v, int) for v in profiles):
        profiles = [{"N": tuple(profiles)}]
    out = []
    for p in profiles:
        full = dict(graph.ranges)
        full.update({k: tuple(int(v) for v in r) for k, r in p.items()})
        for k in full:
            if k not in graph.dims:
                raise BuildError(f"profile names the dimension '{k}', which no input of '{graph.name}' has "
                                 f"(dimensions: {', '.join(graph.dims) or 'none'})")
        for k, (inp, axis) in graph.dims.items():
            if k not in full:
                raise BuildError(f"dimension '{k}' (input '{inp}', axis {axis}) is dynamic but has no range: give "
                                 f"it with --shapes or Graph.input(..., ranges={{'{k}': (min, opt, max)}})")
            lo, opt, hi = full[k]
            if not 0 <= lo <= opt <= hi:
                raise BuildError(f"dimension '{k}': the profile must satisfy 0 <= min <= opt <= max, got "
                                 f"{lo},{opt},{hi}")
        out.append(full)
    return out


def profile_shapes(graph, profile, which):
    """{input name: concrete shape} at the profile's min (0), opt (1) or max (2)."""
    env = {k: v[which] for k, v in profile.items()}
    return {n.name: graph.concrete(n, env) for n in graph.inputs}


def build_engine(graph, profiles=None, workspace_mb=None, progress=True, tf32=False, fp16=False, refittable=False,
                 strip_weights=False, timing_cache_path=None, engine_cache=None):
    """Emit and build `graph`; returns (serialized plan bytes, EngineInfo).

    TF32 is off unless asked for: TensorRT enables it by default, which would make an fp32 engine differ
    from PyTorch by ~1e-3 and hide real emission errors of that size. `engine_cache` (a cache.EngineCache)
    returns the plan of an identical network and settings without building."""
    from . import cache
    profiles = profiles_for(graph, profiles)
    t = backend.trt()
    start = time.perf_counter()
    builder, network, emission = create_network(graph, fp16)
    config = builder.create_builder_config()
    if not tf32:
        config.clear_flag(t.BuilderFlag.TF32)
    if workspace_mb:
        config.set_memory_pool_limit(t.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    for prof in profiles:
        profile = builder.create_optimization_profile()
        shapes = [profile_shapes(graph, prof, i) for i in range(3)]
        for n in graph.inputs:
            profile.set_shape(n.name, *(s[n.name] for s in shapes))
        config.add_optimization_profile(profile)
    cache.configure(config, refittable, strip_weights)
    save_timing = cache.timing_cache(config, timing_cache_path) if timing_cache_path else None
    key = plan = None
    if engine_cache is not None:
        key = cache.engine_key(network, {"profiles": profiles, "workspace_mb": workspace_mb, "tf32": tf32, "fp16": fp16,
                                         "refittable": refittable, "strip_weights": strip_weights})
        plan = engine_cache.get(key)
    cached = plan is not None
    if plan is None:
        monitor = backend.progress_monitor() if progress else None
        if monitor is not None:
            config.progress_monitor = monitor
        errors = backend.logger().errors
        errors.clear()
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BuildError(f"TensorRT could not build '{graph.name}': " + ("; ".join(errors) or "no reason logged"))
        plan = bytes(plan)
        if save_timing:
            save_timing()
        if engine_cache is not None:
            engine_cache.put(key, plan)
    del emission  # TensorRT has copied the weights into the plan
    info = EngineInfo(backend.flavour(), network.num_layers,
                      {n.name: n.shape for n in graph.inputs}, {o.name: o.shape for o in graph.outputs},
                      profiles, time.perf_counter() - start, "fp16" if fp16 else "fp32", len(plan), cached=cached)
    return plan, info


def write_atomic(path, data):
    """Write to a short-named temporary file beside `path`, then rename: readers never see half a file, a
    replaced file keeps its mode, a symlink keeps pointing at the (new) target, and only a regular file or a
    new name is ever replaced (never a device such as /dev/null). On failure, or a signal, nothing is left:
    neither the temporary file nor the directories made for it."""
    from .errors import PENDING, TrtnetError
    target = os.path.realpath(path)  # through symlinks: the link stays, its target gets the data
    if os.path.lexists(target) and not os.path.isfile(target):
        raise TrtnetError(f"{path}: {'a directory' if os.path.isdir(target) else 'not a regular file'}; "
                          "refusing to replace it")
    d = os.path.dirname(target)
    made = []
    p = d
    while not os.path.exists(p):
        made.append(p)
        p = os.path.dirname(p)
    if not os.path.isdir(p):
        raise TrtnetError(f"{path}: {p} is a file, not a directory")
    tmp = None
    PENDING.update(made)
    try:
        for m in reversed(made):
            os.mkdir(m)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".trtnet-")
        PENDING.add(tmp)
        if os.path.isfile(target):
            mode = os.stat(target).st_mode & 0o7777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # what a plain open() would give, not mkstemp's 0600
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
        tmp = None
    except BaseException:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
        for m in made:
            if os.path.isdir(m) and not os.listdir(m):
                os.rmdir(m)
        raise
    finally:
        PENDING.difference_update(made)
        PENDING.discard(tmp)


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


def run_engine(plan, inputs, device=0, max_batch=None):
    """Run `plan` on GPU `device` (trtnet.runtime.Engine) on `inputs` ({name: array}), in chunks of `max_batch`
    samples along the batch (the profile's maximum) through one execution context."""
    from .runtime import Engine
    engine = Engine(plan, device)
    n = len(next(iter(inputs.values())))
    step = max_batch or n
    chunks = [engine(**{k: v[i:i + step] for k, v in inputs.items()}) for i in range(0, n, step)]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def compare(actual, expected):
    """Max abs error, relative error (to the reference's largest magnitude) and top-1 agreement."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if a.shape != e.shape:
        raise ValueError(f"shape {a.shape} does not match the reference's {e.shape}")
    diff = np.abs(a - e).max() if a.size else 0.0
    scale = np.abs(e).max() if e.size else 0.0
    top1 = float((a.argmax(-1) == e.argmax(-1)).mean()) if a.ndim == 2 else None
    return {"max_abs": float(diff), "rel": float(diff / scale) if scale else float(diff), "top1": top1}
