"""An engine's inputs and outputs as TensorRT declares them (name, dtype, shape, each input's shapes per
optimization profile): what the build reports (EngineInfo.io), the runtime checks inputs against and the
exporters describe to a server."""
import ctypes
from dataclasses import dataclass, field

import numpy as np

_NUMPY_NAMES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
                "INT64": "int64", "BOOL": "bool", "UINT8": "uint8", "FP8": "float8_e4m3fn"}


class RuntimeInputError(ValueError):
    """Inputs that do not fit the engine; raised before anything reaches TensorRT."""


def dtype_name(trt_dtype):
    """The numpy-style name of a TensorRT data type (bfloat16 and fp8 by their usual names)."""
    return _NUMPY_NAMES.get(trt_dtype.name, trt_dtype.name.lower())


def weights_array(w):
    """TensorRT weights (or an attribute the binding already gives as an array) as a numpy view of TensorRT's
    memory. The binding has no view of BF16 weights (Weights.numpy() returns the Weights), so those are read
    from the nvinfer1::Weights it wraps ({type, values, count}, the pointer pybind11 holds after the object
    header), checked against the binding's own type and count: an ml_dtypes bfloat16 array."""
    a = w if isinstance(w, np.ndarray) else w.numpy()
    if isinstance(a, np.ndarray):
        return a
    if w.dtype.name != "BF16":
        raise ValueError(f"weights of type {w.dtype.name}: the TensorRT binding gives no array of them")
    import ml_dtypes
    struct = ctypes.c_void_p.from_address(id(w) + object.__basicsize__).value
    kind, values, count = (c.from_address(struct + at).value for c, at in
                           ((ctypes.c_int32, 0), (ctypes.c_void_p, 8), (ctypes.c_int64, 16)))
    if kind != int(w.dtype) or count != w.size:
        raise ValueError("BF16 weights whose memory the TensorRT binding does not expose")
    bits = np.ctypeslib.as_array((ctypes.c_uint16 * count).from_address(values)) if count else np.zeros(0, np.uint16)
    return bits.view(ml_dtypes.bfloat16)


def fmt_dims(shape):
    """1x3x?x? for (1, 3, -1, -1)."""
    return "x".join("?" if d == -1 else str(d) for d in shape) or "scalar"


@dataclass
class TensorSpec:
    name: str
    dtype: str                 # numpy dtype name ("float32", "int32", "bool", "bfloat16", ...)
    shape: tuple               # -1 where dynamic
    profiles: list = field(default_factory=list)   # inputs: one (min, opt, max) shape triple per profile

    def check(self, shape, dtype, profile=0):
        """Raise RuntimeInputError, naming this input, unless `shape`/`dtype` fit it under `profile`."""
        shape = tuple(shape)
        if dtype != self.dtype:
            raise RuntimeInputError(f"input '{self.name}': dtype {dtype}, expected {self.dtype}")
        if len(shape) != len(self.shape):
            raise RuntimeInputError(f"input '{self.name}': shape {fmt_dims(shape)} has rank {len(shape)}, expected "
                                    f"rank {len(self.shape)} ({fmt_dims(self.shape)})")
        lo, _, hi = self.profiles[profile] if self.profiles else (self.shape, None, self.shape)
        for i, d in enumerate(shape):
            if not (lo[i] == -1 or lo[i] <= d) or not (hi[i] == -1 or d <= hi[i]):
                allowed = str(lo[i]) if lo[i] == hi[i] else f"{lo[i]}..{hi[i]}"
                raise RuntimeInputError(f"input '{self.name}': shape {fmt_dims(shape)} has dim {i} = {d}, expected "
                                        f"{allowed} (profile {profile}: min {fmt_dims(lo)}, max {fmt_dims(hi)})")


def profile_shapes(profile, name):
    """(min, opt, max) of `name` from an IOptimizationProfile or a {name: (min, opt, max)} dict."""
    shapes = profile[name] if isinstance(profile, dict) else profile.get_shape(name)
    return tuple(tuple(int(d) for d in s) for s in shapes)


def network_io(network, profiles=()):
    """(inputs, outputs) TensorSpecs of an INetworkDefinition, inputs with their shapes in each profile."""
    inputs = []
    for i in range(network.num_inputs):
        x = network.get_input(i)
        inputs.append(TensorSpec(x.name, dtype_name(x.dtype), tuple(x.shape),
                                 [profile_shapes(p, x.name) for p in profiles]))
    outputs = [TensorSpec(y.name, dtype_name(y.dtype), tuple(y.shape))
               for y in (network.get_output(i) for i in range(network.num_outputs))]
    return inputs, outputs
