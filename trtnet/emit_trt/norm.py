"""TensorRT emitters of group, instance and RMS norm and F.normalize."""
import numpy as np

from .core import emitter


def _channel(e, n, key, default, name):
    """The per-channel parameter `key` as a [1, C, 1...] constant (default where the layer has none)."""
    c, r = n.shape[1], len(n.shape)
    value = n.params.get(key, np.full(c, default, np.float32))
    return e.constant(value.reshape((1, c) + (1,) * (r - 2)), name, e.np_type(n.dtype))


@emitter("group_norm")
def _group_norm(e, n, x):
    """addNormalizationV2 with num_groups takes per-channel scale and bias; one group is a plain
    normalization over the channels too."""
    g, r = n.attrs["num_groups"], len(n.shape)
    scale, bias = (_channel(e, n, k, d, f"{n.name}/{k}") for k, d in (("weight", 1.0), ("bias", 0.0)))
    if g == 1:
        layer = e.network.add_normalization(x, scale, bias, sum(1 << a for a in range(1, r)))
    else:
        layer = e.network.add_normalization_v2(x, scale, bias, sum(1 << a for a in range(2, r)))
        layer.num_groups = g
    layer.epsilon = n.attrs["eps"]
    return e.named(layer, n.name)


@emitter("instance_norm")
def _instance_norm(e, n, x):
    r = len(n.shape)
    scale, bias = (_channel(e, n, k, d, f"{n.name}/{k}") for k, d in (("weight", 1.0), ("bias", 0.0)))
    layer = e.network.add_normalization(x, scale, bias, sum(1 << a for a in range(2, r)))
    layer.epsilon = n.attrs["eps"]
    return e.named(layer, n.name)


def _ew(e, a, b, op, name, final=False):
    layer = e.network.add_elementwise(a, b, getattr(e.t.ElementWiseOperation, op))
    return e.named(layer, name) if final else e.helper(layer, name)


def _reduce(e, x, op, axes, name):
    return e.helper(e.network.add_reduce(x, getattr(e.t.ReduceOperation, op), sum(1 << a for a in axes), True), name)


def _unary(e, x, op, name):
    return e.helper(e.network.add_unary(x, getattr(e.t.UnaryOperation, op)), name)


def _scalar(e, n, value, name):
    return e.constant(np.full((1,) * len(n.shape), value, np.float32), name, e.np_type(n.dtype))


@emitter("rms_norm")
def _rms_norm(e, n, x):
    """x / sqrt(mean(x * x) + eps) [* weight]."""
    axes = n.attrs["axes"]
    mean = _reduce(e, _ew(e, x, x, "PROD", f"{n.name}/square"), "AVG", axes, f"{n.name}/mean")
    rms = _unary(e, _ew(e, mean, _scalar(e, n, n.attrs["eps"], f"{n.name}/eps"), "SUM", f"{n.name}/plus_eps"),
                 "SQRT", f"{n.name}/rms")
    if "weight" not in n.params:
        return _ew(e, x, rms, "DIV", n.name, final=True)
    y = _ew(e, x, rms, "DIV", f"{n.name}/normed")
    w = n.params["weight"]
    weight = e.constant(w.reshape((1,) * (len(n.shape) - w.ndim) + w.shape), f"{n.name}/weight")
    return _ew(e, y, weight, "PROD", n.name, final=True)


@emitter("normalize")
def _normalize(e, n, x):
    """x / max(norm, eps), the p-norm over `dim`: sqrt(sum(x * x)), sum(|x|), max(|x|) (p inf), min(|x|) (p -inf),
    the count of nonzeros (p 0) or sum(|x|^p)^(1/p)."""
    p, dim, name = n.attrs["p"], n.attrs["dim"], n.name
    if p == 0:
        zero = _ew(e, x, _scalar(e, n, 0, f"{name}/zero"), "EQUAL", f"{name}/is_zero")
        nonzero = e.helper(e.network.add_cast(_unary(e, zero, "NOT", f"{name}/nonzero"), e.dtype(n.dtype)),
                           f"{name}/count")
        norm = _reduce(e, nonzero, "SUM", (dim,), f"{name}/norm")
    elif abs(p) == float("inf"):
        norm = _reduce(e, _unary(e, x, "ABS", f"{name}/abs"), "MAX" if p > 0 else "MIN", (dim,), f"{name}/norm")
    elif p == 2:
        norm = _unary(e, _reduce(e, _ew(e, x, x, "PROD", f"{name}/square"), "SUM", (dim,), f"{name}/sum"), "SQRT",
                      f"{name}/norm")
    elif p == 1:
        norm = _reduce(e, _unary(e, x, "ABS", f"{name}/abs"), "SUM", (dim,), f"{name}/norm")
    else:
        powered = _ew(e, _unary(e, x, "ABS", f"{name}/abs"), _scalar(e, n, p, f"{name}/p"), "POW", f"{name}/pow")
        norm = _ew(e, _reduce(e, powered, "SUM", (dim,), f"{name}/sum"), _scalar(e, n, 1 / p, f"{name}/inv_p"), "POW",
                   f"{name}/norm")
    eps = max(n.attrs["eps"], 2.0 ** -24) if e.float == np.float16 else n.attrs["eps"]   # 1e-12 is 0 in fp16
    denom = _ew(e, norm, _scalar(e, n, eps, f"{name}/eps"), "MAX", f"{name}/clamped")
    return _ew(e, x, denom, "DIV", name, final=True)


@emitter("local_response_norm")
def _local_response_norm(e, n, x):
    """The channel window mean of x^2 as an average pooling of (size, 1) over (N, 1, C, rest), padding counted."""
    a, name = n.attrs, n.name
    size, (batch, c) = a["size"], n.shape[:2]
    sq = e.reshape(_ew(e, x, x, "PROD", f"{name}/square"), (batch, 1, c, -1), f"{name}/channels_last", final=False)
    pool = e.network.add_pooling_nd(sq, e.t.PoolingType.AVERAGE, (size, 1))
    pool.pre_padding = (size // 2, 0)
    pool.post_padding = ((size - 1) // 2, 0)
    pool.average_count_excludes_padding = False
    mean = e.reshape(e.helper(pool, f"{name}/window_mean"), n.shape, f"{name}/mean", final=False)
    base = _ew(e, _ew(e, mean, _scalar(e, n, a["alpha"], f"{name}/alpha"), "PROD", f"{name}/scaled"),
               _scalar(e, n, a["k"], f"{name}/k"), "SUM", f"{name}/plus_k")
    div = _ew(e, base, _scalar(e, n, a["beta"], f"{name}/beta"), "POW", f"{name}/div")
    return _ew(e, x, div, "DIV", name, final=True)
