"""Build caches: reuse TensorRT's timing measurements and whole engines across builds; the builder flags of
refittable and weight-stripped plans (trtnet.runtime.refit updates their weights)."""
import hashlib
import json
import os

import numpy as np

from . import backend
from .files import write_atomic
from .tensors import weights_array


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
        write_atomic(path, cache.serialize())
        return path

    return save


def _layer_classes(t):
    """LayerType name -> the ILayer subclass that reads its attributes (IElementWiseLayer for ELEMENTWISE, ...)."""
    classes = {n[1:-len("Layer")].upper(): getattr(t, n) for n in dir(t) if n.startswith("I") and n.endswith("Layer")}
    return {lt: classes.get(lt.replace("_", ""), t.ILayer) for lt in t.LayerType.__members__}


def _value(v, h):
    """A stable text for an attribute value; array contents go into `h` directly (no copy, no text)."""
    if isinstance(v, backend.trt().Weights):   # BF16 weights, of which the binding gives no array
        v = weights_array(v)
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
    with backend.muted():
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
        write_atomic(self.path(key), plan)
        return self.path(key)
