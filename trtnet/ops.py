"""The layer API: plain functions that take and return `Node`s, one per op, each holding its shape rule.

Weights come as `WeightMap` views (`w["layer1.0.conv1"]`); the view's prefix names the layer, so
TensorRT layer names match PyTorch's module names. Sizes that weights decide (output channels,
kernel size) are taken from the weight shapes, or given explicitly for shape-less `.wts` files.
"""
import math

import numpy as np

from .graph import GraphError, Node, user_line
from .weights import MissingWeightError

ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "silu", "gelu", "gelu_tanh", "hardswish",
               "hardsigmoid", "clip")


class _Layer:
    """One op being recorded: its error messages and its weights."""

    def __init__(self, op, x, name):
        self.op, self.graph = op, x.graph
        self.name = self.graph.unique(name or op)

    def fail(self, msg):
        raise GraphError(f"{user_line()}: layer '{self.name}' ({self.op}): {msg}")

    def param(self, w, key, shape, required=True):
        """The weight `key` of view `w`, checked against `shape` (flat .wts arrays are reshaped)."""
        try:
            arr = w[key] if required else w.get(key)
        except MissingWeightError as e:
            self.fail(str(e))
        if arr is None:
            return None
        shape = tuple(int(s) for s in shape)
        if arr.shape == shape:
            return arr
        if arr.ndim == 1 and arr.size == math.prod(shape):
            return arr.reshape(shape)
        self.fail(f"weight '{w.full(key)}' has shape {tuple(arr.shape)} ({arr.size} values), expected {shape} "
                  f"({math.prod(shape)} values)")

    def emit(self, inputs, shape, attrs=None, params=None, dtype=None):
        return self.graph.add(self.op, inputs, shape, attrs, params, self.name, dtype)


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(i) for i in v)


def _need_rank(L, x, rank):
    if x.rank != rank:
        L.fail(f"expects a rank-{rank} input, got '{x.name}' of shape {x.shape}")
    return x.shape


def _const(g, value, like):
    """A scalar or array operand as a graph constant (float32)."""
    arr = np.asarray(value, dtype=np.float32)
    return g.add("const", [], arr.shape, params={"value": arr}, name="const", dtype=like.dtype)


def _conv_out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv(x, w, out=None, kernel=None, stride=1, padding=0, dilation=1, groups=1, name=None):
    """2D convolution like nn.Conv2d; bias is used when the weights have one."""
    L = _Layer("conv", x, name or w.prefix)
    _, c, h, wd = _need_rank(L, x, 4)
    raw = w.get("weight")
    if raw is not None and raw.ndim == 4:
        out = raw.shape[0] if out is None else out
        kernel = raw.shape[2:] if kernel is None else kernel
    if out is None or kernel is None:
        L.fail(f"pass out= and kernel=: '{w.full('weight')}' has no 4D shape to take them from")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(_pair, (kernel, stride, padding, dilation))
    if c % groups or out % groups:
        L.fail(f"groups={groups} must divide input channels {c} and output channels {out}")
    weight = L.param(w, "weight", (out, c // groups, kh, kw))
    bias = L.param(w, "bias", (out,), required=False)
    if h + 2 * ph < dh * (kh - 1) + 1 or wd + 2 * pw < dw * (kw - 1) + 1:
        L.fail(f"kernel {kh}x{kw} (dilation {dh}x{dw}) is larger than the padded input {h + 2 * ph}x{wd + 2 * pw}")
    shape = (-1, out, _conv_out(h, kh, sh, ph, dh), _conv_out(wd, kw, sw, pw, dw))
    params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    return L.emit([x], shape, dict(kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                                   groups=groups, out=out), params)


def pool(x, kind, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True, name=None):
    """Max or average pooling with PyTorch's output sizes (ceil_mode) and padding counting."""
    L = _Layer(f"{kind}_pool" if kind in ("max", "avg") else "pool", x, name)
    if kind not in ("max", "avg"):
        L.fail(f"kind must be 'max' or 'avg', got {kind!r}")
    _, c, h, wd = _need_rank(L, x, 4)
    (kh, kw), (ph, pw) = _pair(kernel), _pair(padding)
    sh, sw = _pair(kernel if stride is None else stride)
    if ph > kh // 2 or pw > kw // 2:
        L.fail(f"padding {ph}x{pw} must be at most half the kernel {kh}x{kw}")
    if h + 2 * ph < kh or wd + 2 * pw < kw:
        L.fail(f"kernel {kh}x{kw} is larger than the padded input {h + 2 * ph}x{wd + 2 * pw}")

    def size(n, k, s, p):
        o = (n + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
        return o - 1 if ceil_mode and (o - 1) * s >= n + p else o  # PyTorch drops a window starting in the padding

    shape = (-1, c, size(h, kh, sh, ph), size(wd, kw, sw, pw))
    return L.emit([x], shape, dict(kind=kind, kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw),
                                   ceil_mode=ceil_mode, count_include_pad=count_include_pad))


def max_pool(x, kernel, stride=None, padding=0, ceil_mode=False, name=None):
    return pool(x, "max", kernel, stride, padding, ceil_mode, name=name)


def avg_pool(x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True, name=None):
    return pool(x, "avg", kernel, stride, padding, ceil_mode, count_include_pad, name=name)


def adaptive_avg_pool(x, size=1, name=None):
    """nn.AdaptiveAvgPool2d, any output size (uneven or overlapping windows included)."""
    L = _Layer("adaptive_avg_pool", x, name)
    _, c, h, wd = _need_rank(L, x, 4)
    oh, ow = _pair(size)
    if oh < 1 or ow < 1:
        L.fail(f"output size {oh}x{ow} is empty")
    return L.emit([x], (-1, c, oh, ow), dict(size=(oh, ow)))


def global_avg_pool(x, name=None):
    return adaptive_avg_pool(x, 1, name=name)


def activation(x, kind, alpha=None, beta=None, name=None):
    L = _Layer(kind, x, name)
    if kind not in ACTIVATIONS:
        L.fail(f"unknown activation; expected one of {', '.join(ACTIVATIONS)}")
    return L.emit([x], x.shape, dict(kind=kind, alpha=alpha, beta=beta))


def relu(x, name=None):
    return activation(x, "relu", name=name)


def sigmoid(x, name=None):
    return activation(x, "sigmoid", name=name)


def tanh(x, name=None):
    return activation(x, "tanh", name=name)


def leaky_relu(x, negative_slope=0.01, name=None):
    return activation(x, "leaky_relu", alpha=float(negative_slope), name=name)


def silu(x, name=None):
    return activation(x, "silu", name=name)


def gelu(x, approximate="none", name=None):
    return activation(x, "gelu_tanh" if approximate == "tanh" else "gelu", name=name)


def hardswish(x, name=None):
    return activation(x, "hardswish", name=name)


def hardsigmoid(x, name=None):
    return activation(x, "hardsigmoid", name=name)


def clip(x, lo, hi, name=None):
    return activation(x, "clip", alpha=float(lo), beta=float(hi), name=name)


def relu6(x, name=None):
    return clip(x, 0.0, 6.0, name=name or "relu6")


def fc(x, w, out=None, name=None, keys=("weight", "bias")):
    """nn.Linear over the last dimension: y = x @ weight.T + bias (`keys` for other names, e.g. in_proj_weight)."""
    L = _Layer("fc", x, name or w.prefix)
    if x.rank < 2:
        L.fail(f"expects at least a rank-2 input, got '{x.name}' of shape {x.shape}")
    k = x.shape[-1]
    raw = w.get(keys[0])
    if out is None:
        if raw is None or raw.ndim != 2:
            L.fail(f"pass out=: '{w.full(keys[0])}' has no 2D shape to take it from")
        out = raw.shape[0]
    weight = L.param(w, keys[0], (out, k))
    bias = L.param(w, keys[1], (out,), required=False)
    params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    return L.emit([x], (*x.shape[:-1], out), dict(out=out), params)


def softmax(x, axis=-1, name=None):
    L = _Layer("softmax", x, name)
    if not -x.rank <= axis < x.rank:
        L.fail(f"axis {axis} is out of range for shape {x.shape}")
    return L.emit([x], x.shape, dict(axis=axis % x.rank))


def bn(x, w, eps=1e-5, name=None):
    """BatchNorm2d in inference: running statistics, folded to a per-channel scale and shift when emitted."""
    L = _Layer("bn", x, name or w.prefix)
    if x.rank < 2:
        L.fail(f"expects an (N, C, ...) input, got shape {x.shape}")
    c = x.shape[1]
    params = {k: L.param(w, k, (c,)) for k in ("weight", "bias", "running_mean", "running_var")}
    return L.emit([x], x.shape, dict(eps=float(eps)), params)


def _broadcast(L, a, b):
    ra, rb = a[::-1], b[::-1]
    out = []
    for i in range(max(len(a), len(b))):
        da = ra[i] if i < len(ra) else 1
        db = rb[i] if i < len(rb) else 1
        if da != db and 1 not in (da, db):
            L.fail(f"shapes {a} and {b} do not broadcast (dimension {max(len(a), len(b)) - 1 - i}: {da} vs {db})")
        out.append(db if da == 1 else da)
    return tuple(out[::-1])


def _elementwise(kind, a, b, name):
    x = a if isinstance(a, Node) else b
    L = _Layer(kind, x, name)
    a, b = (v if isinstance(v, Node) else _const(x.graph, v, x) for v in (a, b))
    return L.emit([a, b], _broadcast(L, a.shape, b.shape), dict(kind=kind))


def add(a, b, name=None):
    return _elementwise("add", a, b, name)


def sub(a, b, name=None):
    return _elementwise("sub", a, b, name)


def mul(a, b, name=None):
    return _elementwise("mul", a, b, name)


def concat(xs, axis=1, name=None):
    L = _Layer("concat", xs[0], name)
    r = xs[0].rank
    axis = axis % r
    for x in xs[1:]:
        if x.rank != r or any(d != e for i, (d, e) in enumerate(zip(x.shape, xs[0].shape)) if i != axis):
            L.fail(f"'{x.name}' {x.shape} does not match '{xs[0].name}' {xs[0].shape} outside axis {axis}")
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return L.emit(list(xs), shape, dict(axis=axis))


def flatten(x, start=1, name=None):
    L = _Layer("flatten", x, name)
    if start < 1:
        L.fail("the batch dimension cannot be flattened; use start >= 1")
    return L.emit([x], (*x.shape[:start], math.prod(x.shape[start:])), dict(start=start))


def reshape(x, shape, name=None):
    """Reshape each sample: `shape` excludes the batch dimension; one entry may be -1."""
    L = _Layer("reshape", x, name)
    n = math.prod(x.shape[1:])
    shape = [int(s) for s in shape]
    if shape.count(-1) > 1:
        L.fail(f"at most one -1 in {tuple(shape)}")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if known == 0 or n % known:
            L.fail(f"cannot reshape {x.shape[1:]} ({n} values per sample) to {tuple(shape)}")
        shape[shape.index(-1)] = n // known
    if math.prod(shape) != n:
        L.fail(f"cannot reshape {x.shape[1:]} ({n} values per sample) to {tuple(shape)}")
    return L.emit([x], (-1, *shape), dict(shape=tuple(shape)))


def upsample(x, scale=None, size=None, mode="nearest", align_corners=False, name=None):
    """F.interpolate on (N, C, H, W): nearest or bilinear, by integer-or-float scale or output size."""
    L = _Layer("upsample", x, name)
    _, c, h, wd = _need_rank(L, x, 4)
    if mode not in ("nearest", "bilinear"):
        L.fail(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    if (scale is None) == (size is None):
        L.fail("give exactly one of scale= and size=")
    if mode == "nearest" and align_corners:
        L.fail("align_corners applies to bilinear mode only")
    if size is not None:
        oh, ow = _pair(size)
        scales = None
    else:
        scales = (float(scale), float(scale)) if np.isscalar(scale) else tuple(float(s) for s in scale)
        oh, ow = int(math.floor(h * scales[0])), int(math.floor(wd * scales[1]))
    if oh < 1 or ow < 1:
        L.fail(f"output size {oh}x{ow} is empty")
    return L.emit([x], (-1, c, oh, ow), dict(mode=mode, size=(oh, ow), scales=scales, align_corners=align_corners))


def permute(x, dims, name=None):
    """torch.permute; the batch dimension stays first."""
    L = _Layer("permute", x, name)
    dims = tuple(d % x.rank for d in dims)
    if sorted(dims) != list(range(x.rank)) or dims[0] != 0:
        L.fail(f"dims {dims} must be a permutation of 0..{x.rank - 1} that keeps the batch dimension 0 first")
    return L.emit([x], tuple(x.shape[d] for d in dims), dict(dims=dims))


def slice(x, axis, start, end, step=1, name=None):
    """x[..., start:end:step, ...] along one non-batch `axis` (Python slice bounds)."""
    L = _Layer("slice", x, name)
    axis = axis % x.rank
    if axis == 0:
        L.fail("the batch dimension cannot be sliced")
    idx = range(x.shape[axis])[start:end:step]
    if not idx:
        L.fail(f"slice {start}:{end}:{step} of axis {axis} (size {x.shape[axis]}) is empty")
    shape = list(x.shape)
    shape[axis] = len(idx)
    return L.emit([x], shape, dict(axis=axis, index=np.array(idx, np.int32)))


def select(x, axis, index, name=None):
    """x[..., index, ...]: one entry of a non-batch `axis`, which disappears (ViT's class token x[:, 0])."""
    L = _Layer("select", x, name)
    axis = axis % x.rank
    if axis == 0 or not -x.shape[axis] <= index < x.shape[axis]:
        L.fail(f"index {index} of axis {axis} is out of range for shape {x.shape}")
    return L.emit([x], x.shape[:axis] + x.shape[axis + 1:], dict(axis=axis, index=np.array(index % x.shape[axis], np.int32)))


def chunk(x, n, axis=1, name=None):
    """torch.chunk into `n` equal parts."""
    size = x.shape[axis]
    if size % n:
        _Layer("chunk", x, name).fail(f"axis {axis} of size {size} does not split into {n} equal chunks")
    step = size // n
    return [slice(x, axis, i * step, (i + 1) * step, name=f"{name or 'chunk'}.{i}") for i in range(n)]


def matmul(a, b, transpose_b=False, name=None):
    """torch.matmul on rank >= 2 operands, batch dimensions broadcast; `transpose_b` uses b's last two swapped."""
    L = _Layer("matmul", a, name)
    if a.rank < 2 or b.rank < 2:
        L.fail(f"operands must be at least rank 2, got {a.shape} and {b.shape}")
    bm, bn_ = (b.shape[-1], b.shape[-2]) if transpose_b else b.shape[-2:]
    if a.shape[-1] != bm:
        L.fail(f"inner dimensions differ: {a.shape} @ {b.shape}{'^T' if transpose_b else ''}")
    batch = _broadcast(L, a.shape[:-2], b.shape[:-2])
    return L.emit([a, b], (*batch, a.shape[-2], bn_), dict(transpose_b=transpose_b))


def layer_norm(x, w, eps=1e-5, axis=-1, name=None):
    """nn.LayerNorm over one axis (the last, or 1 for ConvNeXt's LayerNorm2d on NCHW)."""
    L = _Layer("layer_norm", x, name or w.prefix)
    axis = axis % x.rank
    if axis == 0:
        L.fail("cannot normalize over the batch dimension")
    c = x.shape[axis]
    params = {k: L.param(w, k, (c,)) for k in ("weight", "bias")}
    return L.emit([x], x.shape, dict(eps=float(eps), axis=axis), params)


def constant(x, w, key, shape=None, name=None):
    """A weight used as a tensor (a class token, a positional embedding, a layer scale) in `x`'s graph."""
    L = _Layer("const", x, name or w.full(key))
    raw = w.get(key)
    shape = shape or (None if raw is None else raw.shape)
    if shape is None:
        L.fail(f"pass shape=: '{w.full(key)}' has no shape to take it from")
    return L.emit([], shape, params={"value": L.param(w, key, shape)}, dtype=x.dtype)


def expand_batch(c, like, name=None):
    """Repeat a (1, ...) tensor along the batch of `like`, e.g. to concatenate a class token."""
    L = _Layer("expand_batch", c, name)
    if c.shape[0] != 1:
        L.fail(f"expects a leading dimension of 1, got {c.shape}")
    return L.emit([c, like], (-1, *c.shape[1:]))


def identity(x, name=None):
    """Dropout and other train-only layers: a named pass-through, so layer names still line up."""
    return _Layer("identity", x, name).emit([x], x.shape)


dropout = identity
