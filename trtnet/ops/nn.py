"""Layers with weights (fc, batch and layer norm, constants) and the matrix ops around them."""
from ..shape import is_static
from .core import Layer, alias, broadcast, fmt, op, public, static_int
from .elementwise import cast

FC = dict(out=int)   # fc's attributes, which qfc shares


@op("fc", **FC)
def fc(x, w, out=None, name=None, keys=("weight", "bias")):
    """nn.Linear over the last dimension: y = x @ weight.T + bias (`keys` for other names, e.g. in_proj_weight)."""
    L = Layer("fc", x, name or w.prefix)
    if x.rank < 1:
        L.fail(f"expects at least a rank-1 input, got '{x.name}' of shape {fmt(x.shape)}")
    k = static_int(L, x.shape[-1], "the input's last dimension")
    raw = w.get(keys[0])
    if out is None:
        if raw is None or raw.ndim != 2:
            L.fail(f"pass out=: '{w.full(keys[0])}' has no 2D shape to take it from")
        out = raw.shape[0]
    weight = L.param(w, keys[0], (out, k))
    bias = L.param(w, keys[1], (out,), required=False)
    params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    return L.emit([x], (*x.shape[:-1], out), dict(out=int(out)), params)


linear = alias(fc, "linear")


@op("softmax", "log_softmax", dim=int)
def softmax(input, dim=None, name=None, log=False, dtype=None):
    """F.softmax (or F.log_softmax with log=True) over one dim; `dtype` casts the input first, as torch. dim None
    is torch's implicit choice: dim 0 of a rank 0, 1 or 3 input, else dim 1."""
    L = Layer("log_softmax" if log else "softmax", input, name)
    x = input if dtype is None else cast(input, dtype, f"{L.name}/{dtype}")
    L.float_input(x)
    dim = (0 if x.rank in (0, 1, 3) else 1) if dim is None else dim
    return L.emit([x], x.shape, dict(dim=L.axis(x, dim)))


@public
def log_softmax(input, dim=None, name=None, dtype=None):
    return softmax(input, dim, name, log=True, dtype=dtype)


@op("bn", eps=float)
def bn(x, w, eps=1e-5, name=None):
    """BatchNorm1d/2d/3d in inference: running statistics, folded to a per-channel scale and shift when emitted."""
    L = Layer("bn", x, name or w.prefix)
    if x.rank < 2:
        L.fail(f"expects an (N, C, ...) input, got shape {fmt(x.shape)}")
    c = static_int(L, x.shape[1], "the channel count")
    params = {k: L.param(w, k, (c,)) for k in ("running_mean", "running_var")}
    for k, default in (("weight", 1.0), ("bias", 0.0)):
        p = L.param(w, k, (c,), required=False)
        params[k] = p if p is not None else params["running_mean"] * 0 + default
    return L.emit([x], x.shape, dict(eps=float(eps)), params)


batch_norm = alias(bn, "batch_norm")


@op("layer_norm", eps=float, axes=tuple)
def layer_norm(x, w=None, eps=1e-5, axis=-1, normalized_shape=None, name=None):
    """nn.LayerNorm over the last len(normalized_shape) dims, or over one `axis` (ConvNeXt's LayerNorm2d on
    NCHW uses axis=1). `w` None: no affine weights."""
    L = Layer("layer_norm", x, name or (w.prefix if w is not None else None))
    if normalized_shape is not None:
        k = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
        axes = tuple(range(x.rank - k, x.rank))
    else:
        axes = (L.axis(x, axis),)
    shape = tuple(static_int(L, x.shape[a], "a normalized dimension") for a in axes)
    params = {}
    if w is not None:
        params = {k: L.param(w, k, shape, required=k == "weight") for k in ("weight", "bias")}
        params = {k: v for k, v in params.items() if v is not None}
    return L.emit([x], x.shape, dict(eps=float(eps), axes=axes), params)


@op("matmul")
def matmul(input, other, name=None):
    """torch.matmul: batch dims broadcast; 1-D operands are treated as a row or column vector and dropped."""
    L = Layer("matmul", input, name)
    a, b = input, other
    if a.rank < 1 or b.rank < 1:
        L.fail(f"operands must be at least rank 1, got {fmt(a.shape)} and {fmt(b.shape)}")
    if a.dtype != b.dtype:
        L.fail(f"operands have dtypes {a.dtype} and {b.dtype}")
    if not a.is_float:
        L.fail(f"operands are {a.dtype}; TensorRT multiplies floating-point matrices only (cast them with .float())")
    am, ak = (1, a.shape[0]) if a.rank == 1 else a.shape[-2:]
    bk, bn_ = (b.shape[0], 1) if b.rank == 1 else b.shape[-2:]
    if is_static(ak) and is_static(bk) and ak != bk:
        L.fail(f"inner dimensions differ: {fmt(a.shape)} @ {fmt(b.shape)}")
    batch = broadcast(L, a.shape[:-2], b.shape[:-2])
    shape = (*batch, *([am] if a.rank > 1 else []), *([bn_] if b.rank > 1 else []))
    return L.emit([a, b], shape)


@op("const")
def constant(x, w, key, shape=None, name=None):
    """A weight used as a tensor (a class token, a positional embedding, a layer scale) in `x`'s graph."""
    L = Layer("const", x, name or w.full(key))
    raw = w.get(key)
    shape = shape or (None if raw is None else raw.shape)
    if shape is None:
        L.fail(f"pass shape=: '{w.full(key)}' has no shape to take it from")
    value = L.param(w, key, shape)
    return L.emit([], shape, params={"value": value}, dtype="float32")
