"""`python -m trtnet.run`: run an engine on given or random inputs, summarize outputs and time it.

Kept free of torch and TensorRT imports at module level so that `--help` stays instant."""
import time

import numpy as np

from ..runtime import numpy_dtype


def parse_shapes(items):
    """["images:1x3x224x224", ...] -> {"images": (1, 3, 224, 224)}."""
    shapes = {}
    for item in items or ():
        name, sep, dims = item.rpartition(":")
        try:
            shapes[name] = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ValueError(f"--shapes takes NAME:DxDx..., got {item!r}")
    return shapes


def parse_inputs(items):
    """["images:path.npy", "mask:random"] -> {"images": "path.npy", "mask": "random"}."""
    sources = {}
    for item in items or ():
        name, sep, source = item.partition(":")
        if not sep or not name or not source:
            raise ValueError(f"--input takes NAME:FILE.npy or NAME:random, got {item!r}")
        sources[name] = source
    return sources


def make_inputs(specs, sources, shapes, profile=0, seed=0):
    """Arrays for every input: loaded from .npy, else random in the shape from --shapes, else the profile's
    optimal shape (trtexec's default)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in specs:
        source = sources.get(spec.name, "random")
        if source != "random":
            arrays[spec.name] = np.load(source)
            continue
        shape = shapes.get(spec.name) or (spec.profiles[profile][1] if spec.profiles else spec.shape)
        dtype = numpy_dtype(spec.dtype)   # ml_dtypes' for bfloat16, fp8, int4, fp4
        if spec.dtype == "bool":
            arrays[spec.name] = rng.random(shape) < 0.5
        elif spec.dtype.startswith(("int", "uint")):
            arrays[spec.name] = rng.integers(0, 8, shape).astype(dtype)
        else:
            arrays[spec.name] = rng.standard_normal(shape).astype(dtype)
    unknown = set(sources) - {s.name for s in specs}
    if unknown:
        raise ValueError(f"--input names unknown tensor(s) {', '.join(sorted(unknown))}; the engine's inputs are "
                         f"{', '.join(s.name for s in specs)}")
    return arrays


def latency(run, iterations, warmup):
    """Seconds per synchronous call of `run()`, after `warmup` untimed calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return np.array(times)


def latency_summary(times):
    ms = np.asarray(times) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return (f"latency over {len(ms)} runs: mean {ms.mean():.3f} ms, p50 {p50:.3f} ms, p90 {p90:.3f} ms, "
            f"p99 {p99:.3f} ms, min {ms.min():.3f} ms, max {ms.max():.3f} ms")


def output_summary(outputs):
    lines = []
    for name, y in outputs.items():
        y = np.asarray(y)
        v = y.astype(np.float64)   # also bfloat16, fp8, int4, fp4 (ml_dtypes), which format as text
        stats = f"min {v.min():.6g} max {v.max():.6g} mean {v.mean():.6g}" if y.size else "empty"
        lines.append(f"output {name}: shape {'x'.join(map(str, y.shape))} {y.dtype.name} {stats}")
    return lines


def dump_debug_tensors(context, directory):
    """Make `context` (an IExecutionContext) write every debug tensor of its next runs as DIR/NAME.npy (see
    trtnet.check.dumps), through TensorRT's IDebugListener; returns the listener, which must stay alive."""
    import ctypes

    import torch

    from ..backend import trt
    from ..check.dumps import save_tensor
    from ..tensors import dtype_name

    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    name_of = ctypes.pythonapi.PyCapsule_GetName
    name_of.restype, name_of.argtypes = ctypes.c_char_p, [ctypes.py_object]

    class Listener(trt().IDebugListener):
        """Copies each debug tensor to the host once its producing stream is done with it."""

        def process_debug_tensor(self, addr, location, dtype, shape, name, stream):
            ptr, dims = get(addr, name_of(addr)), tuple(int(d) for d in shape)
            typestr = np.dtype(dtype_name(dtype)).str
            if location == trt().TensorLocation.HOST:
                count = int(np.prod(dims)) * np.dtype(typestr).itemsize
                value = np.frombuffer(ctypes.string_at(ptr, count), typestr).reshape(dims)
            else:
                torch.cuda.ExternalStream(stream).synchronize()
                view = type("DeviceView", (), {"__cuda_array_interface__": {
                    "shape": dims, "typestr": typestr, "data": (ptr, True), "version": 3, "strides": None}})()
                value = torch.as_tensor(view, device="cuda").cpu().numpy()
            save_tensor(directory, name, value)
            return True

    listener = Listener()
    if not context.set_debug_listener(listener) or not context.set_all_tensors_debug_state(True):
        raise RuntimeError("TensorRT refused the debug listener")
    return listener
