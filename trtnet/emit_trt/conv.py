"""TensorRT emitters of convolution, pooling and resizing."""
import itertools

import numpy as np

from ..shape import is_static
from .core import emitter


def _nd(e, n, x, add, shape=None, name=None):
    """The layer `add(x, widen)` over 2 or 3 spatial dims, as TensorRT requires: a 1D op runs as 2D on
    (N, C, L, 1) and is reshaped back; `widen(values, fill)` gives the attribute for the added dim. With
    `shape` and `name`, it is a helper layer of node n giving that shape."""
    final, shape, name = shape is None, shape or n.shape, name or n.name
    if len(shape) != 3:
        layer = add(x, lambda v, fill: tuple(v))
        return e.named(layer, name) if final else e.helper(layer, name)
    x = e.reshape(x, (*n.inputs[0].shape, 1), f"{name}/2d", final=False)
    y = e.helper(add(x, lambda v, fill: (*v, fill)), f"{name}/1d")
    return e.reshape(y, shape, name, final)


@emitter("conv")
def _conv(e, n, x):
    a, p = n.attrs, n.params
    bias = e.weights(p["bias"]) if "bias" in p else e.no_weights()

    def add(x, widen):
        layer = e.network.add_convolution_nd(x, a["out"], widen(a["kernel"], 1), e.weights(p["weight"]), bias)
        layer.stride_nd, layer.dilation_nd = widen(a["stride"], 1), widen(a["dilation"], 1)
        layer.pre_padding, layer.post_padding = widen(a["padding"], 0), widen(a["post_padding"], 0)
        layer.num_groups = a["groups"]
        return layer
    return _nd(e, n, x, add)


@emitter("conv_transpose")
def _conv_transpose(e, n, x):
    """TensorRT trims the full output (I - 1) * S + DK by pre/post padding, which cannot be negative: an
    output_padding beyond the padding is added as zeros before the bias, as PyTorch's output has there."""
    a, p = n.attrs, n.params
    extra = [max(o - q, 0) for o, q in zip(a["output_padding"], a["padding"])]
    inner = any(extra) and "bias" in p
    bias = e.weights(p["bias"]) if "bias" in p and not inner else e.no_weights()
    post = [q - o + x for q, o, x in zip(a["padding"], a["output_padding"], extra)]
    kernel = _dilate(p["weight"], a["dilation"])

    def add(x, widen):
        layer = e.network.add_deconvolution_nd(x, a["out"], widen(kernel.shape[2:], 1), e.weights(kernel), bias)
        layer.stride_nd = widen(a["stride"], 1)
        layer.pre_padding, layer.post_padding = widen(a["padding"], 0), widen(post, 0)
        layer.num_groups = a["groups"]
        return layer
    if not any(extra):
        return _nd(e, n, x, add)
    full = (*n.shape[:2], *(d - x for d, x in zip(n.shape[2:], extra)))
    y = _nd(e, n, x, add, full, f"{n.name}/deconv")
    if not inner:
        return _extend(e, n, y, n.name, True)
    y = _extend(e, n, y, f"{n.name}/output_padding", False)
    b = e.constant(p["bias"].reshape(1, -1, *(1,) * len(extra)), f"{n.name}/bias")
    return e.named(e.network.add_elementwise(y, b, e.t.ElementWiseOperation.SUM), n.name)


def _dilate(w, dilation):
    """The kernel with dilation - 1 zeros between taps: TensorRT builds no strided and dilated deconvolution."""
    out = np.zeros(w.shape[:2] + tuple(d * (k - 1) + 1 for k, d in zip(w.shape[2:], dilation)), w.dtype)
    out[(slice(None), slice(None), *(slice(None, None, d) for d in dilation))] = w
    return out


def _extend(e, n, y, name, final):
    """y with zeros after its end up to n's shape."""
    return _slice(e, y, [0] * len(n.shape), n.shape, name, e.t.SampleMode.FILL, 0.0, n.dtype, final=final)


def _slice(e, x, start, size, name, mode=None, fill=None, dtype=None, stride=None, final=False):
    """A slice of `size` (ints or symbolic) from `start` by `stride`; out-of-range reads per `mode`
    (FILL reads `fill`)."""
    stride = stride or [1] * len(size)
    static = all(is_static(d) for d in size)
    layer = e.network.add_slice(x, tuple(start), tuple(int(d) for d in size) if static else (0,) * len(size),
                                tuple(stride))
    if not static:
        layer.set_input(2, _shape_tensor(e, size, name))
    if mode is not None:
        layer.mode = mode
    if fill is not None:
        layer.set_input(4, e.constant(np.array(fill, e.np_type(dtype)), f"{name}/fill"))
    return e.named(layer, name) if final else e.helper(layer, name)


def _shape_tensor(e, dims, name):
    """Like e.shape_tensor, each size's helper layers named apart (their constants would share a name)."""
    parts = [e.dim(d, f"{name}/dim{i}") for i, d in enumerate(dims)]
    return e.helper(e.network.add_concatenation(parts), f"{name}/dims")


@emitter("max_pool", "avg_pool")
def _pool(e, n, x):
    a = n.attrs
    if any(d != 1 for d in a["dilation"]):
        return _dilated_max_pool(e, n, x)
    kind = e.t.PoolingType.MAX if n.op == "max_pool" else e.t.PoolingType.AVERAGE
    post = list(a["padding"])
    round_up = a["ceil_mode"] and not all(map(is_static, n.shape[2:]))   # where no window starts in the padding
    if a["ceil_mode"] and not round_up:  # PyTorch's ceil_mode sizes, reached exactly with extra end padding
        post = [max(p, (o - 1) * s + k - i - p) for o, s, k, i, p in
                zip(n.shape[2:], a["stride"], a["kernel"], n.inputs[0].shape[2:], a["padding"])]

    def add(x, widen):
        layer = e.network.add_pooling_nd(x, kind, widen(a["kernel"], 1))
        if round_up:
            layer.padding_mode = e.t.PaddingMode.EXPLICIT_ROUND_UP
        layer.stride_nd = widen(a["stride"], 1)
        layer.pre_padding, layer.post_padding = widen(a["padding"], 0), widen(post, 0)
        # unpadded round-up windows: PyTorch divides by their elements inside the input
        excludes = not a["count_include_pad"] or round_up and not any(a["padding"])
        layer.average_count_excludes_padding = excludes and not a["divisor"]
        return layer
    if a["divisor"]:  # the windows' sums: TensorRT's averages counting all padding, by the kernel's size
        ratio = np.full((1,) * len(a["kernel"]), np.prod(a["kernel"]) / a["divisor"])
    elif n.op == "avg_pool" and a["count_include_pad"] and any(q > p for q, p in zip(post, a["padding"])):
        # windows reaching past the padding: TensorRT counts the extra end padding in the divisor, PyTorch does not
        ratio = _divisor_ratio(n, post)
    else:
        return _nd(e, n, x, add)
    y = _nd(e, n, x, add, n.shape, f"{n.name}/pool")
    c = e.constant(ratio.reshape(1, 1, *ratio.shape), f"{n.name}/divisor_ratio", e.np_type(n.dtype))
    return e.named(e.network.add_elementwise(y, c, e.t.ElementWiseOperation.PROD), n.name)


def _divisor_ratio(n, post):
    """Per output position, TensorRT's divisor (the window's overlap with the input padded by `padding` before and
    `post` after) over PyTorch's (padded by `padding` on both sides), for ceil_mode with count_include_pad."""
    a = n.attrs
    ratio = np.ones(())
    for i, o, k, s, p, q in zip(n.inputs[0].shape[2:], n.shape[2:], a["kernel"], a["stride"], a["padding"], post):
        start = np.arange(o) * s - p
        tensorrt, pytorch = np.minimum(start + k, i + q) - start, np.minimum(start + k, i + p) - start
        ratio = np.multiply.outer(ratio, tensorrt / pytorch)
    return ratio.astype(np.float32)


def _dilated_max_pool(e, n, x):
    """TensorRT's pooling has no dilation: the maximum of one strided slice per kernel offset, reads
    outside the input giving -inf (every PyTorch window holds at least one input element)."""
    a = n.attrs
    y = None
    for j, offset in enumerate(itertools.product(*(range(k) for k in a["kernel"]))):
        start = [0, 0, *(o * d - p for o, d, p in zip(offset, a["dilation"], a["padding"]))]
        t = _slice(e, x, start, n.shape, f"{n.name}/tap{j}", e.t.SampleMode.FILL, -np.inf, n.dtype,
                   [1, 1, *a["stride"]])
        y = t if y is None else e.helper(e.network.add_elementwise(y, t, e.t.ElementWiseOperation.MAX),
                                         f"{n.name}/max{j}")
    return e.named(e.network.add_identity(y), n.name)


@emitter("adaptive_avg_pool", "adaptive_max_pool")
def _adaptive(e, n, x):
    """Even windows pool; otherwise dims pooled to 1 reduce (any size, run-time ones too) and each
    other resized dim is pooled separably: a product with a window matrix (average) or one reduced
    slice per window (max)."""
    spatial, size, avg = n.inputs[0].shape[2:], n.attrs["size"], n.op == "adaptive_avg_pool"
    if all(is_static(d) and d % o == 0 for d, o in zip(spatial, size)) and any(d != o for d, o in zip(spatial, size)):
        k = tuple(d // o for d, o in zip(spatial, size))
        kind = e.t.PoolingType.AVERAGE if avg else e.t.PoolingType.MAX

        def add(x, widen):
            layer = e.network.add_pooling_nd(x, kind, widen(k, 1))
            layer.stride_nd = widen(k, 1)
            return layer
        return _nd(e, n, x, add)
    shape = list(n.inputs[0].shape)
    mask = sum(1 << (2 + i) for i, (d, o) in enumerate(zip(spatial, size)) if o == 1 and d != 1)
    y = x
    if mask:
        op = e.t.ReduceOperation.AVG if avg else e.t.ReduceOperation.MAX
        y = e.helper(e.network.add_reduce(x, op, mask, True), f"{n.name}/reduce")
        shape = [1 if mask >> a & 1 else d for a, d in enumerate(shape)]
    for i, (d, o) in enumerate(zip(spatial, size)):
        if d == o or o == 1:
            continue
        if avg:
            y = _along(e, y, 2 + i, _window_matrix(d, o), f"{n.name}/pool{i}", e.np_type(n.dtype))
        else:
            y = _window_max(e, y, shape, 2 + i, o, f"{n.name}/pool{i}")
        shape[2 + i] = o
    return e.named(e.network.add_identity(y), n.name)


def _along(e, y, axis, m, name, dtype):
    """y with its dim `axis` mapped through the matrix m (out, in), a constant of y's numpy `dtype`: a product
    along the last dim."""
    M = e.t.MatrixOperation.NONE
    r = len(y.shape)
    perm = list(range(r))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    if axis != r - 1:
        y = _transpose(e, y, perm, f"{name}/move")
    c = e.constant(np.ascontiguousarray(m.T).reshape((1,) * (r - 2) + m.T.shape), f"{name}/matrix", dtype)
    y = e.helper(e.network.add_matrix_multiply(y, M, c, M), name)
    return _transpose(e, y, perm, f"{name}/back") if axis != r - 1 else y


def _window_max(e, y, shape, axis, out, name):
    """Maxima of PyTorch's adaptive windows along `axis` (static size), concatenated."""
    d = shape[axis]
    parts = []
    for i in range(out):
        lo, hi = i * d // out, -(-(i + 1) * d // out)
        start = [0] * len(shape)
        start[axis] = lo
        part = _slice(e, y, start, [hi - lo if a == axis else s for a, s in enumerate(shape)], f"{name}/window{i}")
        parts.append(e.helper(e.network.add_reduce(part, e.t.ReduceOperation.MAX, 1 << axis, True), f"{name}/max{i}"))
    cat = e.network.add_concatenation(parts)
    cat.axis = axis
    return e.helper(cat, name)


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


@emitter("pad")
def _pad(e, n, x):
    """F.pad as one slice from -before: FILL (constant), REFLECT, CLAMP (replicate), WRAP (circular). Circular
    padding wraps around what negative pads leave, as torch: those crop first."""
    a, S = n.attrs, e.t.SampleMode
    mode = {"constant": S.FILL, "reflect": S.REFLECT, "replicate": S.CLAMP, "circular": S.WRAP}[a["mode"]]
    fill = a["value"] if a["mode"] == "constant" else None
    before = a["before"]
    if a["mode"] == "circular" and min(before + a["after"]) < 0:
        size = [d + min(p, 0) + min(q, 0) for d, p, q in zip(n.inputs[0].shape, before, a["after"])]
        x = _slice(e, x, [max(-p, 0) for p in before], size, f"{n.name}/crop")
        before = [max(p, 0) for p in before]
    return _slice(e, x, [-b for b in before], n.shape, n.name, mode, fill, n.dtype, final=True)


@emitter("interpolate")
def _interpolate(e, n, x):
    """Output sizes as PyTorch computes them. TensorRT maps coordinates by the lengths' ratio, which is
    PyTorch's mapping for size=, align_corners=True or an integral in * scale; a scale giving fractional
    lengths maps by the scale itself, and antialiasing widens the filter when downsampling: both are emitted as
    constant interpolation matrices (static sizes; a resize layer then scales the run-time ones). PyTorch (on the
    CPU) copies a dim whose length stays, whatever the scale, in linear modes and 2-D nearest."""
    a, spatial = n.attrs, n.inputs[0].shape[2:]
    copy = a["mode"].endswith("linear") or a["mode"] == "nearest" and len(spatial) == 2
    scales = a["scales"] or [None] * len(spatial)
    if a["antialias"] or a["scales"] and not a["align_corners"] and any(
            is_static(i) and i * s != o for i, s, o in zip(spatial, scales, n.shape[2:])):
        y = x
        for i, (d, o, sc) in enumerate(zip(spatial, n.shape[2:], scales)):
            if is_static(d) and (d != o or not copy and sc not in (None, 1)):
                inv = (d - 1) / (o - 1) if a["align_corners"] and o > 1 else 0.0 if a["align_corners"] else \
                    d / o if sc is None else 1.0 / sc
                m = _aa_matrix(a["mode"], d, o, inv) if a["antialias"] else _resize_matrix(a["mode"], d, o, inv)
                y = _along(e, y, 2 + i, m, f"{n.name}/resize{i}", e.np_type(n.dtype))
        if all(map(is_static, spatial)):
            return e.named(e.network.add_identity(y), n.name)
        x = y
    layer = e.network.add_resize(x)
    layer.set_input(1, _shape_tensor(e, n.shape, n.name) if not all(map(is_static, n.shape)) else
                    e.shape_tensor(n.shape, n.name))
    R = e.t.ResizeCoordinateTransformation
    if a["mode"] == "nearest":  # PyTorch 'nearest': src = floor(dst * in / out)
        layer.resize_mode = e.t.InterpolationMode.NEAREST
        layer.coordinate_transformation = R.ASYMMETRIC
        layer.nearest_rounding = e.t.ResizeRoundMode.FLOOR
    elif a["mode"] == "nearest-exact":  # src = floor((dst + 0.5) * in / out): half-pixel, rounded half up
        layer.resize_mode = e.t.InterpolationMode.NEAREST
        layer.coordinate_transformation = R.HALF_PIXEL
        layer.nearest_rounding = e.t.ResizeRoundMode.HALF_UP
    else:
        cubic = a["mode"] == "bicubic"
        layer.resize_mode = e.t.InterpolationMode.CUBIC if cubic else e.t.InterpolationMode.LINEAR
        layer.coordinate_transformation = R.ALIGN_CORNERS if a["align_corners"] else R.HALF_PIXEL
        if a["align_corners"]:  # PyTorch reads element 0 for a length-1 output; the formula divides by 0
            layer.selector_for_single_pixel = e.t.ResizeSelector.UPPER
        if cubic:
            layer.cubic_coeff = -0.75
    return e.named(layer, n.name)


def _resize_matrix(mode, size, out, inv):
    """Rows of PyTorch's interpolation weights (align_corners=False) with coordinates mapped by `inv`
    (input length per output element), in float32 as PyTorch computes them; taps past the edges read the edge
    element."""
    inv = np.float32(inv)
    dst = np.arange(out, dtype=np.float32)
    m = np.zeros((out, size), np.float32)
    rows = np.arange(out)
    if mode.startswith("nearest"):
        src = dst * inv if mode == "nearest" else (dst + np.float32(0.5)) * inv
        m[rows, np.minimum(np.floor(src).astype(int), size - 1)] = 1.0
        return m
    src = (dst + np.float32(0.5)) * inv - np.float32(0.5)
    if mode != "bicubic":
        src = np.maximum(src, np.float32(0))
        i0 = np.floor(src).astype(int)
        w = src - i0
        np.add.at(m, (rows, np.minimum(i0, size - 1)), 1 - w)
        np.add.at(m, (rows, np.minimum(i0 + 1, size - 1)), w)
        return m
    i0 = np.floor(src).astype(int)
    t = src - i0
    for j in (-1, 0, 1, 2):
        np.add.at(m, (rows, np.clip(i0 + j, 0, size - 1)), _cubic(np.abs(t - j)))
    return m


def _aa_matrix(mode, size, out, inv):
    """PyTorch's antialiased weights: downsampling by `inv` widens the linear (A = -0.5 cubic) filter by `inv`; each
    row holds the input elements within its support, weights normalised to sum 1."""
    support = (2.0 if mode == "bilinear" else 4.0) * 0.5 * max(inv, 1.0)
    m = np.zeros((out, size))
    for i in range(out):
        center = inv * (i + 0.5)
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), size)
        d = np.abs(np.arange(lo, hi) - center + 0.5) / max(inv, 1.0)
        w = np.maximum(1 - d, 0) if mode == "bilinear" else _cubic(d, -0.5)
        m[i, lo:hi] = w / w.sum() if w.sum() else w
    return m.astype(np.float32)


def _cubic(d, a=np.float32(-0.75)):
    """Keys' cubic convolution weight at distance d, A = -0.75 as PyTorch uses (-0.5 when antialiasing)."""
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0)).astype(np.float32)
