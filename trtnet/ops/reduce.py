"""Reductions with torch's names and arguments: sums, means, extremes and products over axes, arg and value-index
extremes and top-k (int64 indices, as torch), cumulative sums, variance, logsumexp, all/any."""
import builtins

import numpy as np

from ..graph import Node
from .core import Layer, ValuesIndices, fmt, op, public, static_int
from .elementwise import cast, maximum, minimum
from .shape import reshape


def _shape(x, axes, keepdim):
    return tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keepdim or i not in axes)


def _reduce(kind, input, dim, keepdim, name, dtype=None):
    """The layer, input, normalised axes (dim () means all, as in torch; a 0-D input has none to reduce) and
    output shape of a reduction."""
    L = Layer(kind, input, name)
    if dtype is not None:
        input = cast(input, dtype)
    axes = L.axes(input, None if isinstance(dim, (tuple, list)) and not dim else dim)
    axes = axes if input.rank else ()
    return L, input, axes, _shape(input, axes, keepdim)


def _vector(x, name):
    """A 0-D input as shape (1,): torch reduces, sorts and scans a 0-D tensor along dim 0 or -1, which TensorRT's
    layers need a real dim for."""
    return reshape(x, (1,), f"{name}/1d")


def _integral(x, dtype):
    """torch sums and multiplies integers and bools in int64."""
    if dtype is not None:
        return cast(x, dtype)
    return x if x.is_float or x.dtype == "int64" else cast(x, "int64")


AXES = dict(axes=tuple, keepdim=bool)   # the attributes of a reduction over axes


@op(**AXES)
def sum(input, dim=None, keepdim=False, dtype=None, name=None):
    """torch.sum over `dim` (None: every axis); integers and bools sum in int64."""
    L, x, axes, shape = _reduce("sum", _integral(input, dtype), dim, keepdim, name)
    return L.emit([x], shape, dict(axes=axes, keepdim=bool(keepdim)))


@op(**AXES)
def prod(input, dim=None, keepdim=False, dtype=None, name=None):
    """torch.prod over `dim` (torch takes one dim; several are allowed here); integers in int64."""
    L, x, axes, shape = _reduce("prod", _integral(input, dtype), dim, keepdim, name)
    return L.emit([x], shape, dict(axes=axes, keepdim=bool(keepdim)))


@op(**AXES)
def mean(input, dim=None, keepdim=False, dtype=None, name=None):
    """torch.mean over `dim`; a floating-point input (or dtype=)."""
    L, x, axes, shape = _reduce("mean", input, dim, keepdim, name, dtype)
    L.float_input(x)
    return L.emit([x], shape, dict(axes=axes, keepdim=bool(keepdim)))


@op(**AXES)
def amax(input, dim=None, keepdim=False, name=None):
    L, x, axes, shape = _reduce("amax", input, dim, keepdim, name)
    return L.emit([x], shape, dict(axes=axes, keepdim=bool(keepdim)))


@op(**AXES)
def amin(input, dim=None, keepdim=False, name=None):
    L, x, axes, shape = _reduce("amin", input, dim, keepdim, name)
    return L.emit([x], shape, dict(axes=axes, keepdim=bool(keepdim)))


@op("all", "any", **AXES)
def all(input, dim=None, keepdim=False, name=None, kind="all"):
    """torch.all: whether every element along `dim` is true (nonzero); a bool result."""
    L, x, axes, shape = _reduce(kind, input, dim, keepdim, name)
    x = x if x.dtype == "bool" else cast(x, "bool")
    return L.emit([x], shape, dict(axes=axes, keepdim=bool(keepdim)), dtype="bool")


@public
def any(input, dim=None, keepdim=False, name=None):
    """torch.any: whether some element along `dim` is true (nonzero)."""
    return all(input, dim, keepdim, name, kind="any")


def _one_axis(L, x, dim):
    if dim is not None and not isinstance(dim, (int, np.integer)):
        L.fail(f"takes one dim, got {dim!r}")
    if x.dtype == "bool":
        L.fail("has no TensorRT form for bool inputs (cast to an integer type first)")


@op("argmax", "argmin", axis=(int, None), keepdim=bool)
def argmax(input, dim=None, keepdim=False, name=None, kind="argmax"):
    """torch.argmax: int64 index of the first largest value along `dim` (None: of the flattened input)."""
    L = Layer(kind, input, name)
    _one_axis(L, input, dim)
    if dim is not None and not input.rank:
        L.axis(input, dim)
        return argmax(_vector(input, L.name), 0, False, name, kind)
    if dim is None:
        shape = (1,) * input.rank if keepdim else ()
        return L.emit([input], shape, dict(axis=None, keepdim=bool(keepdim)), dtype="int64")
    axis = L.axis(input, dim)
    return L.emit([input], _shape(input, (axis,), keepdim), dict(axis=axis, keepdim=bool(keepdim)), dtype="int64")


@public
def argmin(input, dim=None, keepdim=False, name=None):
    """torch.argmin: int64 index of the first smallest value along `dim` (None: of the flattened input)."""
    return argmax(input, dim, keepdim, name, kind="argmin")


@op("max", "min", axis=int, keepdim=bool, outputs=int)
def max(input, dim=None, keepdim=False, name=None, kind="max"):
    """torch.max: over everything (amax), as (values, int64 indices) along one dim, or elementwise against a
    tensor (maximum)."""
    if isinstance(dim, Node):
        return (maximum if kind == "max" else minimum)(input, dim, name)
    if dim is None:
        return (amax if kind == "max" else amin)(input, None, keepdim, name)
    L = Layer(kind, input, name)
    if input.dtype == "bool":   # TensorRT's top-k takes no bools: on 0/1 integers, and back
        values, indices = max(cast(input, "int32"), dim, keepdim, name, kind)
        return ValuesIndices(cast(values, "bool", f"{L.name}/bool"), indices)
    _one_axis(L, input, dim)
    axis = L.axis(input, dim)
    if not input.rank:
        return max(_vector(input, L.name), 0, False, name, kind)
    shape = _shape(input, (axis,), keepdim)
    outs = [(shape, input.dtype), (shape, "int64")]
    return ValuesIndices(*L.emit_multi([input], outs, dict(axis=axis, keepdim=bool(keepdim))))


@public
def min(input, dim=None, keepdim=False, name=None):
    """torch.min: over everything (amin), as (values, int64 indices) along one dim, or elementwise (minimum)."""
    return max(input, dim, keepdim, name, kind="min")


@op(axis=int, k=int, largest=bool, outputs=int)
def topk(input, k, dim=-1, largest=True, sorted=True, name=None):
    """torch.topk: (values, int64 indices) of the k largest (smallest) along `dim`, always sorted, ties lowest
    index first."""
    L = Layer("topk", input, name)
    _one_axis(L, input, dim)
    axis = L.axis(input, dim)
    if not input.rank:
        values, indices = topk(_vector(input, L.name), k, 0, largest, sorted, name)
        return ValuesIndices(reshape(values, (), f"{L.name}/values"), reshape(indices, (), f"{L.name}/indices"))
    k = static_int(L, k, "k")
    size = input.shape[axis]
    if not 1 <= k <= 3840 or (isinstance(size, int) and k > size):
        L.fail(f"k={k} must be in 1..{builtins.min(3840, size) if isinstance(size, int) else 3840} for shape "
               f"{fmt(input.shape)} along dim {axis}")
    shape = tuple(k if i == axis else d for i, d in enumerate(input.shape))
    return ValuesIndices(*L.emit_multi([input], [(shape, input.dtype), (shape, "int64")], dict(axis=axis, k=k,
                                                                                  largest=bool(largest))))


@op(axis=int)
def cumsum(input, dim, dtype=None, name=None):
    """torch.cumsum along `dim`; integers and bools accumulate in int64."""
    L = Layer("cumsum", input, name)
    x = _integral(input, dtype)
    axis = L.axis(x, dim)
    if not x.rank:
        return reshape(cumsum(_vector(x, L.name), 0, name=name), (), f"{L.name}/0d")
    return L.emit([x], x.shape, dict(axis=axis))


@op("var", "std", **AXES, correction=float)
def var(input, dim=None, unbiased=None, keepdim=False, correction=None, name=None, kind="var"):
    """torch.var: mean squared deviation over `dim`, divided by (count - correction); correction 1 by default
    (unbiased=False means 0). var(x, False) is torch's var(input, unbiased) form."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    L, x, axes, shape = _reduce(kind, input, dim, keepdim, name)
    L.float_input(x)
    if correction is None:
        correction = 0 if unbiased is False else 1
    if not x.rank:
        return var(_vector(x, L.name), 0, None, False, correction, name, kind)
    return L.emit([x], shape, dict(axes=axes, keepdim=bool(keepdim), correction=float(correction)))


@public
def std(input, dim=None, unbiased=None, keepdim=False, correction=None, name=None):
    """torch.std: the square root of var."""
    return var(input, dim, unbiased, keepdim, correction, name, kind="std")


@op(**AXES)
def logsumexp(input, dim, keepdim=False, name=None):
    """torch.logsumexp: log(sum(exp(x))) over `dim`, shifted by the maximum so large values do not overflow;
    integers and bools as float32, as torch."""
    L, x, axes, shape = _reduce("logsumexp", input, dim, keepdim, name)
    if not x.is_float:
        return logsumexp(cast(x, "float32"), dim, keepdim, name)
    if not x.rank:
        return logsumexp(_vector(x, L.name), 0, False, name)
    return L.emit([x], shape, dict(axes=axes, keepdim=bool(keepdim)))

