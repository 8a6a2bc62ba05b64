"""Build caches and refit: reuse TensorRT's timing measurements and whole engines across builds, and update
the weights of a refittable engine without rebuilding it."""
import hashlib
import json
import os

import numpy as np

from . import backend
from .engine import execution_unavailable, write_atomic


class RefitError(RuntimeError):
    pass


def configure(config, refittable=False, strip_weights=False):
    """Builder flags for weight updates: REFIT keeps every weight refittable; a stripped plan leaves the
    weights out (refit them before use), with REFIT_IDENTICAL when the same weights will come back."""
    t = backend.trt()
    if refittable:
        config.set_flag(t.BuilderFlag.REFIT)
    if strip_weights:
        config.set_flag(t.BuilderFlag.STRIP_PLAN)
        if not refittable:
            config.set_flag(t.BuilderFlag.REFIT_IDENTICAL)
    return config


def timing_cache(config, path):
    """Attach the timing cache stored at `path` (a new one if absent) to `config`; returns `save()`, which
    writes the cache, updated by the build, back atomically."""
    data = b""
    if os.path.exists(path):
        with open(path, "rb") as f:
            data = f.read()
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise ValueError(f"{os.path.abspath(path)}: TensorRT rejected the timing cache (made by another version "
                         "or device?); delete it to start a new one")

    def save():
        write_atomic(path, bytes(cache.serialize()))
        return path

    return save


def _layer_classes(t):
    """LayerType name -> the ILayer subclass that reads its attributes (IElementWiseLayer for ELEMENTWISE, ...)."""
    classes = {n[1:-len("Layer")].upper(): getattr(t, n) for n in dir(t) if n.startswith("I") and n.endswith("Layer")}
    return {lt: classes.get(lt.replace("_", ""), t.ILayer) for lt in t.LayerType.__members__}


def _value(v, h):
    """A stable text for an attribute value; array contents go into `h` directly (no copy, no text)."""
    if isinstance(v, np.ndarray):
        h.update(np.ascontiguousarray(v).view(np.uint8).data)
        return f"array{v.dtype}{v.shape}"
    text = repr(v)
    if " at 0x" in text:  # objects without a value repr: use their contents, never their address
        try:
            return repr(tuple(v))
        except TypeError:
            return type(v).__name__
    return text


def _tensor(x):
    return "-" if x is None else f"{x.name}:{x.dtype}:{tuple(x.shape)}"


def _hash_layer(layer, cls, base, h):
    h.update(f"layer {layer.name} {layer.type} in {[_tensor(layer.get_input(i)) for i in range(layer.num_inputs)]} "
             f"out {[_tensor(layer.get_output(i)) for i in range(layer.num_outputs)]}\n".encode())
    layer.__class__ = cls  # TensorRT's Python API reads subclass attributes only through the subclass
    for name in dir(cls):
        if name.startswith("_") or getattr(cls, name) is getattr(base, name, None):
            continue
        try:
            v = getattr(layer, name)
        except Exception as e:  # an attribute that does not apply to this layer's configuration
            v = type(e).__name__
        if not callable(v):
            h.update(f" {name}={_value(v, h)}\n".encode())


def engine_key(network, config_settings, flavour_version=None):
    """A hex digest naming the engine that `network` built with `config_settings` gives: the structure read back
    from the INetworkDefinition (IO, every layer's type, name, tensors, attributes and weight bytes), the builder
    settings and the TensorRT version, so that a change in any of them misses the cache."""
    t = backend.trt()
    h = hashlib.sha256()
    h.update(f"{flavour_version or backend.flavour()}\n{json.dumps(config_settings, sort_keys=True, default=str)}\n"
             .encode())
    for i in range(network.num_inputs):
        h.update(f"input {_tensor(network.get_input(i))}\n".encode())
    for i in range(network.num_outputs):
        h.update(f"output {_tensor(network.get_output(i))}\n".encode())
    classes = _layer_classes(t)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        _hash_layer(layer, classes[layer.type.name], t.ILayer, h)
    return h.hexdigest()


class EngineCache:
    """Serialized plans by engine_key in a directory; writes are atomic, so concurrent builders never read
    half a plan."""

    def __init__(self, directory):
        self.directory = directory

    def path(self, key):
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"engine cache key must be a hex digest, got {key!r}")
        return os.path.join(self.directory, key + ".engine")

    def get(self, key):
        try:
            with open(self.path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def put(self, key, plan):
        write_atomic(self.path(key), bytes(plan))
        return self.path(key)


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
    """Replace weights in a refittable engine (a trtnet.runtime.Engine, an ICudaEngine or plan bytes/path) and
    return the engine. `weights` maps a weights name (set_named_weights) or (layer name, role such as "kernel"
    or "bias") (set_weights) to an array. Needs a GPU that runs the engine: TensorRT refits device memory."""
    from .runtime import Engine, ExecutionError
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
