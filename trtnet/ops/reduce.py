"""Reductions with torch's names and arguments: sums, means, extremes and products over axes, arg and value-index
extremes and top-k (int64 indices, as torch), cumulative sums, variance, logsumexp, all/any."""
import builtins

import numpy as np

from ..graph import Node
from .core import Layer, ValuesIndices, fmt, op, public, static_int
from .elementwise import cast, maximum, minimum


def _shape(x, axes, keepdim):
    return tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keepdim or i not in axes)


def _reduce(kind, input, dim, keepdim, name, dtype=None):
    L = Layer(kind, input, name)
    if dtype is not None:
        input = cast(input, dtype)
    axes = L.axes(input, dim)
    return L, input, axes, _shape(input, axes, keepdim)


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
    _one_axis(L, input, dim)
    axis = L.axis(input, dim)
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
    return L.emit([x], x.shape, dict(axis=L.axis(x, dim)))


@op("var", "std", **AXES, correction=float)
def var(input, dim=None, unbiased=None, keepdim=False, correction=None, name=None, kind="var"):
    """torch.var: mean squared deviation over `dim`, divided by (count - correction); correction 1 by default
    (unbiased=False means 0)."""
    L, x, axes, shape = _reduce(kind, input, dim, keepdim, name)
    L.float_input(x)
    if correction is None:
        correction = 0 if unbiased is False else 1
    return L.emit([x], shape, dict(axes=axes, keepdim=bool(keepdim), correction=float(correction)))


@public
def std(input, dim=None, unbiased=None, keepdim=False, correction=None, name=None):
    """torch.std: the square root of var."""
    return var(input, dim, unbiased, keepdim, correction, name, kind="std")


@op(**AXES)
def logsumexp(input, dim, keepdim=False, name=None):
    """torch.logsumexp: log(sum(exp(x))) over `dim`, shifted by the maximum so large values do not overflow."""
    L, x, axes, shape = _reduce("logsumexp", input, dim, keepdim, name)
    L.float_input(x)
    return L.emit([x], shape, dict(axes=axes, keepdim=bool(keepdim)))

