"""TensorRT emitters of reductions: IReduceLayer over an axes bit mask, ITopKLayer for arg/value extremes and top-k
(its int32 indices cast to torch's int64), ICumulativeLayer for cumsum, and variance and logsumexp from those."""
import math

import numpy as np

from ..shape import is_static
from .core import emitter

_OPS = {"sum": "SUM", "prod": "PROD", "mean": "AVG", "amax": "MAX", "amin": "MIN", "all": "MIN", "any": "MAX"}


def _reduce(e, x, op, axes, keep, name, helper=True):
    layer = e.network.add_reduce(x, getattr(e.t.ReduceOperation, op), sum(1 << a for a in axes), keep)
    return e.helper(layer, name) if helper else e.named(layer, name)


def _cast(e, x, dtype, name, helper=True):
    layer = e.network.add_cast(x, e.dtype(dtype))
    return e.helper(layer, name) if helper else e.named(layer, name)


@emitter(*_OPS)
def _reduction(e, n, x):
    axes, keep = n.attrs["axes"], n.attrs["keepdim"]
    if not axes:   # a rank-0 input
        return e.named(e.network.add_identity(x), n.name)
    if n.inputs[0].dtype != "bool":
        return _reduce(e, x, _OPS[n.op], axes, keep, n.name, helper=False)
    # TensorRT reduces no bools: on 0/1 integers, and back
    y = _reduce(e, _cast(e, x, "int32", f"{n.name}/int"), _OPS[n.op], axes, keep, f"{n.name}/reduce")
    return _cast(e, y, "bool", n.name, helper=False)


def item_name(e, n, index):
    """The graph name of output `index` of multi-output node `n` (its `item` node)."""
    return next(m.name for m in e.graph.nodes if m.op == "item" and m.inputs[0] is n and m.attrs["index"] == index)


def _topk(e, n, x, axis, k, largest, shape, names, keep=True):
    """Values and int64 indices named `names`, reshaped to `shape` unless `keep`."""
    if len(n.inputs[0].shape) == 1:   # TensorRT's top-k takes two dimensions or more
        x, axis, keep = e.reshape(x, (1, -1), f"{n.name}/rows", final=False), 1, False
    op = e.t.TopKOperation.MAX if largest else e.t.TopKOperation.MIN
    layer = e.network.add_topk(x, op, k, 1 << axis)
    if keep and names[0] is not None:
        values = e.named(layer, names[0])
    else:
        values = e.helper(layer, f"{n.name}/topk")
    indices = layer.get_output(1)
    indices.name = f"{values.name}/indices"
    if keep:
        return values, _cast(e, indices, "int64", names[1], helper=False)
    wide = _cast(e, indices, "int64", f"{n.name}/int64")
    out = [None if name is None else e.reshape(t, shape, name) for t, name in ((values, names[0]), (wide, names[1]))]
    return tuple(out)


@emitter("argmax", "argmin")
def _arg(e, n, x):
    axis, keep = n.attrs["axis"], n.attrs["keepdim"]
    largest = n.op == "argmax"
    if axis is None:
        flat = e.reshape(x, (1, -1), f"{n.name}/flat", final=False)
        return _topk(e, n, flat, 1, 1, largest, n.shape, (None, n.name), keep=False)[1]
    return _topk(e, n, x, axis, 1, largest, n.shape, (None, n.name), keep=keep)[1]


@emitter("max", "min")
def _max(e, n, x):
    names = (n.name, item_name(e, n, 1))
    return _topk(e, n, x, n.attrs["axis"], 1, n.op == "max", n.shape, names, keep=n.attrs["keepdim"])


@emitter("topk")
def _topk_op(e, n, x):
    a = n.attrs
    return _topk(e, n, x, a["axis"], a["k"], a["largest"], n.shape, (n.name, item_name(e, n, 1)))


@emitter("cumsum")
def _cumsum(e, n, x):
    axis = e.constant(np.array(n.attrs["axis"], np.int32), f"{n.name}/axis", np.int32)
    return e.named(e.network.add_cumulative(x, axis, e.t.CumulativeOperation.SUM, False, False), n.name)


def _scalar(e, n, value, name):
    """A constant of the output's rank and type."""
    return e.constant(np.full((1,) * len(n.shape), value, e.np_type(n.dtype)), name, e.np_type(n.dtype))


def _count(e, n, name):
    """The number of reduced elements less the correction, at least 0 (as torch: a correction past the count
    divides by zero), a float of the output's rank."""
    dims = [n.inputs[0].shape[a] for a in n.attrs["axes"]]
    count = math.prod(dims)
    r = len(n.shape)
    if is_static(count):
        return _scalar(e, n, max(count - n.attrs["correction"], 0), name)
    c = _cast(e, e.dim(count, f"{name}/count"), n.dtype, f"{name}/float")
    c = e.reshape(c, (1,) * r, f"{name}/shape", final=False)
    corr = _scalar(e, n, n.attrs["correction"], f"{name}/correction")
    return _binary(e, _binary(e, c, corr, "SUB", f"{name}/less"), _scalar(e, n, 0, f"{name}/zero"), "MAX", name)


def _binary(e, a, b, op, name, helper=True):
    layer = e.network.add_elementwise(a, b, getattr(e.t.ElementWiseOperation, op))
    return e.helper(layer, name) if helper else e.named(layer, name)


@emitter("var", "std")
def _var(e, n, x):
    axes, keep = n.attrs["axes"], n.attrs["keepdim"]
    d = _binary(e, x, _reduce(e, x, "AVG", axes, True, f"{n.name}/mean"), "SUB", f"{n.name}/dev")
    ss = _reduce(e, _binary(e, d, d, "PROD", f"{n.name}/sq"), "SUM", axes, keep, f"{n.name}/sum")
    var = _binary(e, ss, _count(e, n, f"{n.name}/count"), "DIV", n.name if n.op == "var" else f"{n.name}/var",
                  helper=n.op != "var")
    if n.op == "var":
        return var
    return e.named(e.network.add_unary(var, e.t.UnaryOperation.SQRT), n.name)


def _finite_max(e, n, x, axes, keep, name):
    """The maximum over `axes`, 0 where it is infinite (torch's logsumexp: a row of -inf gives -inf and one
    holding +inf gives +inf, not the NaN of inf - inf)."""
    top = _reduce(e, x, "MAX", axes, keep, name)
    inf = e.helper(e.network.add_unary(top, e.t.UnaryOperation.ISINF), f"{name}/isinf")
    zero = e.constant(np.zeros((1,) * len(top.shape)), f"{name}/zero", e.np_type(n.dtype))
    return e.helper(e.network.add_select(inf, zero, top), f"{name}/finite")


@emitter("logsumexp")
def _logsumexp(e, n, x):
    axes, keep = n.attrs["axes"], n.attrs["keepdim"]
    U = e.t.UnaryOperation
    shifted = _binary(e, x, _finite_max(e, n, x, axes, True, f"{n.name}/max_keep"), "SUB", f"{n.name}/shifted")
    total = _reduce(e, e.helper(e.network.add_unary(shifted, U.EXP), f"{n.name}/exp"), "SUM", axes, keep,
                    f"{n.name}/sum")
    log = e.helper(e.network.add_unary(total, U.LOG), f"{n.name}/log")
    return _binary(e, log, _finite_max(e, n, x, axes, keep, f"{n.name}/max"), "SUM", n.name, helper=False)
