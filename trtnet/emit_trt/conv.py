"""TensorRT emitters of convolution, pooling and resizing."""
import numpy as np

from ..shape import is_static
from .core import emitter


@emitter("conv")
def _conv(e, n, x):
    a, p = n.attrs, n.params
    bias = e.weights(p["bias"]) if "bias" in p else e.no_weights()
    layer = e.network.add_convolution_nd(x, a["out"], a["kernel"], e.weights(p["weight"]), bias)
    layer.stride_nd, layer.dilation_nd = a["stride"], a["dilation"]
    layer.pre_padding, layer.post_padding = a["padding"], a["post_padding"]
    layer.num_groups = a["groups"]
    return e.named(layer, n.name)


@emitter("max_pool", "avg_pool")
def _pool(e, n, x):
    a = n.attrs
    if any(d != 1 for d in a["dilation"]):
        raise NotImplementedError(f"layer '{n.name}': TensorRT's pooling layer has no dilation")
    kind = e.t.PoolingType.MAX if a["kind"] == "max" else e.t.PoolingType.AVERAGE
    layer = e.network.add_pooling_nd(x, kind, a["kernel"])
    layer.stride_nd = a["stride"]
    post = list(a["padding"])
    if a["ceil_mode"]:  # PyTorch's ceil_mode sizes, reached exactly with extra end padding under round-down
        post = [max(p, (o - 1) * s + k - i - p) for o, s, k, i, p in
                zip(n.shape[2:], a["stride"], a["kernel"], n.inputs[0].shape[2:], a["padding"])]
    if a["kind"] == "avg" and a["count_include_pad"] and any(q > p for q, p in zip(post, a["padding"])):
        raise NotImplementedError(f"layer '{n.name}': average pooling with ceil_mode and count_include_pad=True "
                                  "has windows past the padding, which TensorRT cannot divide as PyTorch does")
    layer.pre_padding, layer.post_padding = a["padding"], post
    layer.average_count_excludes_padding = not a["count_include_pad"]
    return e.named(layer, n.name)


@emitter("adaptive_avg_pool")
def _adaptive(e, n, x):
    spatial, size = n.inputs[0].shape[2:], n.attrs["size"]
    reduce = [i for i, (d, o) in enumerate(zip(spatial, size)) if o == 1 and not (is_static(d) and d == 1)]
    if all(o == 1 or (is_static(d) and d == o) for d, o in zip(spatial, size)):
        mask = sum(1 << (2 + i) for i in reduce)
        if not mask:
            return e.named(e.network.add_identity(x), n.name)
        return e.named(e.network.add_reduce(x, e.t.ReduceOperation.AVG, mask, True), n.name)
    if all(d % o == 0 for d, o in zip(spatial, size)):
        k = tuple(d // o for d, o in zip(spatial, size))
        layer = e.network.add_pooling_nd(x, e.t.PoolingType.AVERAGE, k)
        layer.stride_nd = k
        return e.named(layer, n.name)
    # Uneven windows: averaging is separable, one product with a constant matrix per spatial dim.
    M = e.t.MatrixOperation.NONE
    r = len(n.shape)
    y = x
    for i, (d, o) in enumerate(zip(spatial, size)):
        axis = 2 + i
        perm = list(range(r))
        perm[axis], perm[-1] = perm[-1], perm[axis]
        if axis != r - 1:
            y = _transpose(e, y, perm, f"{n.name}/move{i}")
        m = e.constant(_window_matrix(d, o).T.reshape((1,) * (r - 2) + (d, o)), f"{n.name}/window{i}")
        y = e.helper(e.network.add_matrix_multiply(y, M, m, M), f"{n.name}/pool{i}")
        if axis != r - 1:
            y = _transpose(e, y, perm, f"{n.name}/back{i}")
    return e.named(e.network.add_identity(y), n.name)


def _transpose(e, x, perm, name):
    layer = e.network.add_shuffle(x)
    layer.first_transpose = perm
    return e.helper(layer, name)


def _window_matrix(size, out):
    """Row i averages PyTorch's adaptive window [floor(i*size/out), ceil((i+1)*size/out))."""
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        lo, hi = i * size // out, -(-(i + 1) * size // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


@emitter("interpolate")
def _interpolate(e, n, x):
    a = n.attrs
    layer = e.network.add_resize(x)
    if a["scales"]:  # PyTorch maps coordinates by the given scale, not by the lengths' ratio
        layer.scales = [1.0, 1.0, *a["scales"]]
    else:  # an exact output size, as F.interpolate computes it: coordinates then scale by in/out
        layer.set_input(1, e.shape_tensor(n.shape, n.name))
    R = e.t.ResizeCoordinateTransformation
    if a["mode"] == "nearest":  # PyTorch 'nearest': src = floor(dst * in / out)
        layer.resize_mode = e.t.InterpolationMode.NEAREST
        layer.coordinate_transformation = R.ASYMMETRIC
        layer.nearest_rounding = e.t.ResizeRoundMode.FLOOR
    else:
        cubic = a["mode"] == "bicubic"
        layer.resize_mode = e.t.InterpolationMode.CUBIC if cubic else e.t.InterpolationMode.LINEAR
        layer.coordinate_transformation = R.ALIGN_CORNERS if a["align_corners"] else R.HALF_PIXEL
        if cubic:
            layer.cubic_coeff = -0.75
    return e.named(layer, n.name)
