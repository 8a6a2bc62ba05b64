"""Emit a recorded graph into a TensorRT network and build it into a plan (works on any machine; running the
plan is trtnet.runtime's)."""
import time
from dataclasses import dataclass


from . import backend, cache
from .emit_trt import emit
from .emit_trt.core import half_precision
from .errors import TrtnetError
from .events import Events
from .tensors import network_io


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
    io: tuple = ()           # (inputs, outputs) TensorSpecs read from the TensorRT network, with the profiles
    keep_fp32: tuple = ()    # patterns of the layers a half-precision network keeps in fp32


def create_network(graph, half=None, keep_fp32=(), debug=()):
    """A strongly typed TensorRT network filled from `graph`: (builder, network, emission).

    `half`: None (fp32), "fp16" or "bf16" (True is fp16); `keep_fp32`: fnmatch patterns of layers kept in
    fp32 in a half-precision network; `debug`: patterns of layers whose
    outputs become debug tensors (see emit_trt.emit)."""
    t = backend.trt()
    builder = t.Builder(backend.logger())
    network = builder.create_network(1 << int(t.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    return builder, network, emit(graph, network, half, keep_fp32, debug)


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


def input_profiles(graph, profiles=None):
    """[{input name: (min, opt, max) shapes}], one per optimization profile of profiles_for(graph, profiles)."""
    out = []
    for p in profiles_for(graph, profiles):
        shapes = [profile_shapes(graph, p, i) for i in range(3)]
        out.append({n: tuple(s[n] for s in shapes) for n in shapes[0]})
    return out


def builder_config(builder, graph, profiles=None, workspace_mb=None, tf32=False):
    """A builder config with trtnet's settings and the graph's optimization profiles.

    TF32 is off unless asked for: TensorRT enables it by default, which would make an fp32 engine differ
    from PyTorch by ~1e-3 and hide real emission errors of that size."""
    t = backend.trt()
    config = builder.create_builder_config()
    if not tf32:
        config.clear_flag(t.BuilderFlag.TF32)
    if workspace_mb:
        config.set_memory_pool_limit(t.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    for shapes in input_profiles(graph, profiles):
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    return config


def build_engine(graph, profiles=None, workspace_mb=None, progress=True, tf32=False, half=None, refittable=False,
                 strip_weights=False, timing_cache_path=None, engine_cache=None, events=None, keep_fp32=(), debug=()):
    """Emit and build `graph`; returns (serialized plan bytes, EngineInfo).

    `engine_cache` (a cache.EngineCache) returns the plan of an identical network and settings without building.
    `events` (trtnet.events.Events) hears the phases "emit" and "TensorRT build" (not on a cache hit), the
    latter with the steps of TensorRT's top-level build phases as progress. `keep_fp32`, `debug`: as in
    create_network."""
    events, half = events or Events(), half_precision(half)
    profiles = profiles_for(graph, profiles)
    start = time.perf_counter()
    with events.phase("emit"):
        builder, network, emission = create_network(graph, half, keep_fp32, debug)
    config = cache.configure(builder_config(builder, graph, profiles, workspace_mb, tf32), refittable, strip_weights)
    key = plan = None
    if engine_cache is not None:
        key = cache.engine_key(network, {"profiles": profiles, "workspace_mb": workspace_mb, "tf32": tf32, "half": half,
                                         "refittable": refittable, "strip_weights": strip_weights,
                                         "keep_fp32": sorted(keep_fp32), "debug": sorted(debug)})
        plan = engine_cache.get(key)
    cached = plan is not None
    if plan is None:
        with events.phase("TensorRT build"):
            try:
                plan = _build(graph.name, builder, network, config, progress and events.step(), timing_cache_path)
            except BuildError as e:
                raise BuildError(str(e) + _unbuildable(graph)) from None
        if engine_cache is not None:
            engine_cache.put(key, plan)
    io = network_io(network, input_profiles(graph, profiles))
    del emission  # TensorRT has copied the weights into the plan
    info = EngineInfo(backend.flavour(), network.num_layers,
                      {n.name: n.shape for n in graph.inputs}, {o.name: o.shape for o in graph.outputs},
                      profiles, time.perf_counter() - start, half or "fp32", len(plan), cached=cached,
                      io=io, keep_fp32=tuple(keep_fp32) if half else ())
    return plan, info


def _unbuildable(graph):
    """Why a build failed where the network holds a layer this TensorRT has no runner for (TensorRT for RTX: NMS)."""
    nodes = [n for n in graph.nodes if n.op == "nms"] if backend.is_rtx() else []
    return "".join(f" (TensorRT for RTX builds no NMS layer: '{n.name}', tn.nms at {n.where}; keep NMS on the host, "
                   "as trtnet.detect does, or build with a full TensorRT)" for n in nodes[:1])


def _build(name, builder, network, config, step, timing_cache_path):
    """The plan bytes; `step` (done, total), when given, hears TensorRT's progress (shown as bars on a terminal)."""
    save_timing = cache.timing_cache(config, timing_cache_path) if timing_cache_path else None
    monitor = backend.progress_monitor(step=step) if step else None
    if monitor is not None:
        config.progress_monitor = monitor
    errors = backend.logger().errors
    errors.clear()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BuildError(f"TensorRT could not build '{name}': " + ("; ".join(errors) or "no reason logged"))
    if save_timing:
        save_timing()
    return bytes(plan)
