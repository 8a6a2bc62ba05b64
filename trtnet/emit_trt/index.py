"""TensorRT emitters of indexing ops: gather layers, one-hot, grid sampling, wrapping and reversed slices,
LINSPACE fills."""
import numpy as np

from ..shape import is_static
from .core import emitter


@emitter("gather")
def _gather(e, n, x, index):
    layer = e.network.add_gather_v2(x, index, e.t.GatherMode.ELEMENT)
    layer.axis = n.attrs["dim"]
    return e.named(layer, n.name)


@emitter("index_select")
def _index_select(e, n, x, index):
    if n.inputs[1].rank == 0:   # a 0-D index drops the axis in TensorRT; torch keeps it as size 1
        index = e.reshape(index, (1,), f"{n.name}/index", final=False)
    return e.named(e.network.add_gather(x, index, n.attrs["dim"]), n.name)


@emitter("embedding")
def _embedding(e, n, ids):
    table = e.constant(n.params["weight"], f"{n.name}/weight")
    return e.named(e.network.add_gather(table, ids, 0), n.name)


@emitter("one_hot")
def _one_hot(e, n, ids):
    values = e.constant(np.array([0, 1], np.int64), f"{n.name}/values", np.int64)
    depth = e.constant(np.array(n.attrs["num_classes"], np.int32), f"{n.name}/depth", np.int32)
    return e.named(e.network.add_one_hot(ids, values, depth, -1), n.name)


@emitter("grid_sample")
def _grid_sample(e, n, x, grid):
    """torch's modes and padding as TensorRT's interpolation and sample modes."""
    a, I, S = n.attrs, e.t.InterpolationMode, e.t.SampleMode
    layer = e.network.add_grid_sample(x, grid)
    layer.interpolation_mode = {"bilinear": I.LINEAR, "nearest": I.NEAREST, "bicubic": I.CUBIC}[a["mode"]]
    layer.sample_mode = {"zeros": S.FILL, "border": S.CLAMP, "reflection": S.REFLECT}[a["padding_mode"]]
    layer.align_corners = a["align_corners"]
    return e.named(layer, n.name)


def _sampled_slice(e, n, x, starts, strides, mode):
    """A slice of the output's shape; start and size come from shape tensors where they are run-time values."""
    dims = n.shape
    layer = e.network.add_slice(x, [int(s) if is_static(s) else 0 for s in starts],
                                [int(d) if is_static(d) else 1 for d in dims], strides)
    if not all(is_static(s) for s in starts):
        layer.set_input(1, e.shape_tensor(starts, f"{n.name}/start"))
    if not all(is_static(d) for d in dims):
        layer.set_input(2, e.shape_tensor(dims, f"{n.name}/size"))
    if mode is not None:
        layer.mode = mode
    return e.named(layer, n.name)


@emitter("repeat")
def _repeat(e, n, x):
    """Reading past the end wraps around: a WRAP slice of the repeated size tiles the input."""
    return _sampled_slice(e, n, x, (0,) * len(n.shape), (1,) * len(n.shape), e.t.SampleMode.WRAP)


@emitter("flip")
def _flip(e, n, x):
    dims = n.attrs["dims"]
    starts = [d - 1 if i in dims else 0 for i, d in enumerate(n.shape)]
    return _sampled_slice(e, n, x, starts, [-1 if i in dims else 1 for i in range(len(n.shape))], None)


@emitter("roll")
def _roll(e, n, x):
    """out[i] = x[(i - shift) mod size]: a WRAP slice starting at -shift."""
    shift = dict(zip(n.attrs["dims"], n.attrs["shifts"]))
    starts = [(-shift[i] % d if is_static(d) else -shift[i]) if i in shift else 0 for i, d in enumerate(n.shape)]
    return _sampled_slice(e, n, x, starts, (1,) * len(n.shape), e.t.SampleMode.WRAP)


def _alpha(e, n, start, dtype):
    """The first value as a 0-D tensor of the output type, read from the inputs' shapes when symbolic."""
    if is_static(start):
        return e.constant(np.array(start, dtype), f"{n.name}/start", dtype)
    layer = e.network.add_shuffle(e.dim(start, f"{n.name}/start"))
    layer.reshape_dims = ()
    alpha = e.helper(layer, f"{n.name}/start")
    if dtype == np.int64:
        return alpha
    to = e.t.int32 if dtype == np.int32 else e.t.float32
    return e.helper(e.network.add_cast(alpha, to), f"{n.name}/start_cast")


@emitter("arange")
def _arange(e, n):
    """A LINSPACE fill: start + step * i, with alpha and beta as tensors of its type. LINSPACE makes int32,
    int64 or float32 only: other float types are cast from float32."""
    size, a = n.shape[0], n.attrs
    out = e.dtype(n.dtype)
    direct = out in (e.t.int32, e.t.int64, e.t.float32)
    dtype = e.np_type(n.dtype) if direct else np.float32
    layer = e.network.add_fill((int(size) if is_static(size) else 1,), e.t.FillOperation.LINSPACE,
                               out if direct else e.t.float32)
    if not is_static(size):
        layer.set_input(0, e.shape_tensor((size,), f"{n.name}/size"))
    layer.set_input(1, _alpha(e, n, a["start"], dtype))
    layer.set_input(2, e.constant(np.array([a["step"]], dtype), f"{n.name}/step", dtype))
    if direct:
        return e.named(layer, n.name)
    return e.named(e.network.add_cast(e.helper(layer, f"{n.name}/float32"), out), n.name)
