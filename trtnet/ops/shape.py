"""Shape ops on any axis, the batch included: reshape, permute, slicing and indexing, concatenation, expand.

Sizes may be symbolic; the emitter computes them at run time from the inputs' shapes where needed.
"""
import builtins
import functools
import math

import numpy as np

from ..graph import GraphError, Node, user_line
from ..shape import Expr, is_static, numel, same
from .core import Layer, alias, broadcast, const, fmt, op, promote, public
from .elementwise import cast


def _sizes(L, shape):
    out = []
    for d in shape:
        if isinstance(d, Node):
            L.fail(f"a size given as the tensor '{d.name}'; use the symbolic x.shape[i] instead")
        if not isinstance(d, (int, np.integer, Expr)):
            L.fail(f"size {d!r} is not an int")
        out.append(int(d) if isinstance(d, (int, np.integer)) else d)
    return out


@op("reshape", shape=tuple)
def reshape(input, shape, name=None):
    """torch.reshape: the full shape, batch included; one entry may be -1 (inferred), 0 means size 0.
    Sizes may be symbolic (`x.shape[0]`, `x.shape[2] * x.shape[3]`)."""
    L = Layer("reshape", input, name)
    spec = _sizes(L, (shape,) if isinstance(shape, (int, Expr)) else shape)
    if spec.count(-1) > 1:
        L.fail(f"at most one -1 in {tuple(spec)}")
    total = numel(input.shape)
    known = numel([d for d in spec if not (is_static(d) and d == -1)])
    out = list(spec)
    if -1 in spec:
        if is_static(known) and known == 0:
            L.fail(f"cannot infer -1 in {tuple(spec)} with a zero size")
        q = _quotient(total, known)
        if q is False:
            L.fail(f"cannot reshape {fmt(input.shape)} ({total} values) to {tuple(spec)}")
        out[spec.index(-1)] = total // known if q is None else q
    elif same(total, known) is False:
        L.fail(f"cannot reshape {fmt(input.shape)} ({total} values) to {tuple(spec)} ({known} values)")
    return L.emit([input], out, dict(shape=tuple(spec)))


alias(reshape, "view")


def _quotient(a, b):
    """a / b where it is a whole size (symbols cancelled), False where it cannot be, None where unknown."""
    if is_static(a) and is_static(b):
        return a // b if a % b == 0 else False
    if isinstance(a, Expr) and isinstance(b, Expr) and not a.const and not b.const:
        ta, tb = dict(a.terms), dict(b.terms)
        k0 = next(iter(ta))
        if ta.keys() == tb.keys() and all(ta[k] * tb[k0] == tb[k] * ta[k0] for k in ta):
            return ta[k0] // tb[k0] if ta[k0] % tb[k0] == 0 else False
    return None


@public
def flatten(input, start_dim=0, end_dim=-1, name=None):
    """torch.flatten: dims start_dim..end_dim become one (nn.Flatten is flatten(x, 1))."""
    L = Layer("reshape", input, name or "flatten")
    if input.rank == 0:
        return reshape(input, (1,), name)
    a, b = L.axis(input, start_dim), L.axis(input, end_dim)
    if a > b:
        L.fail(f"start_dim {start_dim} comes after end_dim {end_dim}")
    s = input.shape
    return reshape(input, (*s[:a], numel(s[a:b + 1]), *s[b + 1:]), name or "flatten")


@public
def unflatten(input, dim, sizes, name=None):
    L = Layer("reshape", input, name or "unflatten")
    d = L.axis(input, dim)
    return reshape(input, (*input.shape[:d], *sizes, *input.shape[d + 1:]), name or "unflatten")


@public
def squeeze(input, dim=None, name=None):
    """torch.squeeze: drop size-1 dims (all known ones, or those of `dim`); a dim not of size 1 stays."""
    L = Layer("reshape", input, name or "squeeze")
    dims = L.axes(input, dim)
    keep = [d for i, d in enumerate(input.shape) if not (i in dims and same(d, 1))]
    return reshape(input, keep, name or "squeeze")


@public
def unsqueeze(input, dim, name=None):
    L = Layer("reshape", input, name or "unsqueeze")
    r = input.rank + 1
    if not -r <= dim < r:
        L.fail(f"dim {dim} is out of range for rank {r}")
    s = list(input.shape)
    s.insert(dim % r, 1)
    return reshape(input, s, name or "unsqueeze")


@op("permute", dims=tuple)
def permute(input, dims, name=None):
    """torch.permute over any dims, the batch included."""
    L = Layer("permute", input, name)
    dims = tuple(int(d) % builtins.max(input.rank, 1) for d in dims)
    if sorted(dims) != list(range(input.rank)):
        L.fail(f"dims {dims} must be a permutation of 0..{input.rank - 1}")
    return L.emit([input], tuple(input.shape[d] for d in dims), dict(dims=dims))


@public
def transpose(input, dim0, dim1, name=None):
    L = Layer("permute", input, name or "transpose")
    a, b = L.axis(input, dim0), L.axis(input, dim1)
    dims = list(range(input.rank))
    dims[a], dims[b] = b, a
    return permute(input, dims, name or "transpose")


alias(transpose, "swapaxes")


@public
def movedim(input, source, destination, name=None):
    """torch.movedim: dims `source` (an int or a sequence) moved to `destination`, the others keeping their
    order."""
    L = Layer("permute", input, name or "movedim")
    src, dst = ([L.axis(input, a) for a in ((v,) if isinstance(v, (int, np.integer)) else tuple(v))]
                for v in (source, destination))
    if len(src) != len(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
        L.fail(f"source {source} and destination {destination} must be as many distinct dims")
    dims = [None] * input.rank
    for a, b in zip(src, dst):
        dims[b] = a
    rest = iter(i for i in range(input.rank) if i not in src)
    return permute(input, [a if a is not None else next(rest) for a in dims], name or "movedim")


@op("slice", starts=tuple, steps=tuple)
def _slice(input, starts, sizes, steps, name=None):
    """Elements starts[i] + k * steps[i] for k < sizes[i] along every axis (sizes may be symbolic)."""
    L = Layer("slice", input, name)
    return L.emit([input], sizes, dict(starts=tuple(starts), steps=tuple(steps)))


def _bound(v, size, default):
    """A Python slice bound on a dim of `size`: negative counts from the end, clamped where size is known."""
    if v is None:
        return default
    if isinstance(v, Node):
        raise GraphError(f"{user_line()}: a slice bound given as the tensor '{v.name}' is not supported")
    if is_static(size) and isinstance(v, (int, np.integer)):
        v = int(v)
        return builtins.min(builtins.max(v + size if v < 0 else v, 0), size)
    return size + v if isinstance(v, (int, np.integer)) and v < 0 else v


@public
def getitem(input, key, name=None):
    """x[key] with ints, slices (positive steps, as torch), None and `...`; several ints or slices at once; one
    int tensor (or list) indexes its dim (`x[idx]`, `x[:, idx]`), a constant bool mask its dims (`x[mask]`)."""
    L = Layer("slice", input, name or "getitem")
    key = key if isinstance(key, tuple) else (key,)
    if any(_tensorish(k) for k in key):
        return _index_with_tensor(input, key, name)
    if builtins.sum(k is Ellipsis for k in key) > 1:
        L.fail("an index can have only one ellipsis")
    used = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if used > input.rank:
        L.fail(f"too many indices ({used}) for shape {fmt(input.shape)}")
    if Ellipsis in [k for k in key if not isinstance(k, Node)]:
        i = [j for j, k in enumerate(key) if k is Ellipsis][0]
        key = key[:i] + (builtins.slice(None),) * (input.rank - used) + key[i + 1:]
    key = key + (builtins.slice(None),) * (input.rank - builtins.sum(1 for k in key if k is not None))
    starts, sizes, steps, out = [], [], [], []
    axis = 0
    for k in key:
        if k is None:
            out.append(1)
            continue
        if axis >= input.rank:
            break
        size = input.shape[axis]
        if isinstance(k, (int, np.integer)):
            k = int(k)
            if is_static(size) and not -size <= k < size:
                L.fail(f"index {k} is out of range for dim {axis} of size {size}")
            starts.append(k + size if k < 0 else k)
            sizes.append(1)
            steps.append(1)
        elif isinstance(k, builtins.slice):
            step = 1 if k.step is None else int(k.step)
            if step <= 0:
                L.fail(f"slice step {step} must be positive, as in torch (use tn.flip)")
            a, b = _bound(k.start, size, 0), _bound(k.stop, size, size)
            n = (b - a + step - 1) // step
            if is_static(n):
                n = builtins.max(n, 0)
            starts.append(a)
            sizes.append(n)
            steps.append(step)
            out.append(n)
        else:
            L.fail(f"index {k!r} is not an int, slice, None or ...")
        axis += 1
    whole = all(is_static(a) and a == 0 and st == 1 and same(n, d) for a, n, st, d in
                zip(starts, sizes, steps, input.shape))
    y = input if whole else _slice(input, starts, sizes, steps, name=name or "getitem")
    return y if list(y.shape) == out else reshape(y, out, name or "getitem")


@public
def select(input, dim, index, name=None):
    """torch.select: one entry of `dim`, which disappears (ViT's class token x[:, 0])."""
    L = Layer("slice", input, name or "select")
    d = L.axis(input, dim)
    return getitem(input, (builtins.slice(None),) * d + (int(index),), name or "select")


@public
def narrow(input, dim, start, length, name=None):
    """torch.narrow: `length` entries of `dim` from `start` (negative counts from the end); the span must fit."""
    L = Layer("slice", input, name or "narrow")
    d = L.axis(input, dim)
    size = input.shape[d]
    if isinstance(start, (int, np.integer)) and start < 0:
        start = start + size
    if is_static(size) and is_static(start) and is_static(length) and not 0 <= start <= start + length <= size:
        L.fail(f"start {start} and length {length} do not fit dim {d} of size {size}")
    return getitem(input, (builtins.slice(None),) * d + (builtins.slice(start, start + length),), name or "narrow")


@op("concat", axis=int)
def cat(tensors, dim=0, name=None):
    """torch.cat along `dim`; other dims must match; mixed dtypes promote as in torch."""
    xs = list(tensors)
    if not xs:
        raise GraphError(f"{user_line()}: cat of no tensors")
    L = Layer("concat", xs[0], name or "cat")
    dtype = functools.reduce(promote, (x.dtype for x in xs))   # torch's result type of them all
    xs = [x if x.dtype == dtype else cast(x, dtype, f"{L.name}/{x.name}/{dtype}") for x in xs]
    r = xs[0].rank
    axis = L.axis(xs[0], dim)
    for x in xs[1:]:
        bad = x.rank != r or any(same(d, e) is False for i, (d, e) in enumerate(zip(x.shape, xs[0].shape))
                                 if i != axis)
        if bad:
            L.fail(f"'{x.name}' {fmt(x.shape)} does not match '{xs[0].name}' {fmt(xs[0].shape)} outside dim {axis}")
    shape = list(xs[0].shape)
    shape[axis] = builtins.sum((x.shape[axis] for x in xs[1:]), xs[0].shape[axis])
    return L.emit(xs, shape, dict(axis=axis))


concat = alias(cat, "concat")


@public
def stack(tensors, dim=0, name=None):
    xs = list(tensors)
    r = xs[0].rank + 1
    d = dim % r
    return cat([unsqueeze(x, d) for x in xs], d, name or "stack")


@public
def split(tensor, split_size_or_sections, dim=0, name=None):
    """torch.split: pieces of a size (the last may be smaller), or of the listed sizes."""
    L = Layer("slice", tensor, name or "split")
    d = L.axis(tensor, dim)
    size = tensor.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        step = int(split_size_or_sections)
        if not is_static(size):
            L.fail(f"splitting the run-time size '{size}' needs explicit section sizes")
        sections = [builtins.min(step, size - i) for i in range(0, size, step)]
    else:
        sections = list(split_size_or_sections)
        if same(builtins.sum(sections[1:], sections[0]), size) is False:
            L.fail(f"sections {sections} do not add up to dim {d}'s size {size}")
    out, start = [], 0
    for i, n in enumerate(sections):
        out.append(getitem(tensor, (builtins.slice(None),) * d + (builtins.slice(start, start + n),),
                           f"{name or 'split'}.{i}"))
        start = start + n
    return out


@public
def chunk(input, chunks, dim=0, name=None):
    """torch.chunk: pieces of ceil(size / chunks)."""
    L = Layer("slice", input, name or "chunk")
    size = input.shape[L.axis(input, dim)]
    if not is_static(size):
        L.fail(f"chunking the run-time size '{size}'")
    return split(input, -(-size // chunks), dim, name or "chunk")


@public
def unbind(input, dim=0, name=None):
    L = Layer("slice", input, name or "unbind")
    d = L.axis(input, dim)
    size = input.shape[d]
    if not is_static(size):
        L.fail(f"unbinding the run-time size '{size}'")
    return [select(input, d, i, f"{name or 'unbind'}.{i}") for i in range(size)]


@op("expand")
def expand(input, sizes, name=None):
    """Tensor.expand: size-1 dims stretched (-1 keeps a dim); new leading dims may be added."""
    L = Layer("expand", input, name)
    sizes = _sizes(L, sizes)
    if len(sizes) < input.rank:
        L.fail(f"expand to {tuple(sizes)} has fewer dims than {fmt(input.shape)}")
    lead = len(sizes) - input.rank
    out = []
    for i, s in enumerate(sizes):
        d = input.shape[i - lead] if i >= lead else None
        if is_static(s) and s == -1:
            if d is None:
                L.fail("-1 is not allowed for a new leading dim")
            out.append(d)
        elif d is not None and same(d, 1) is not True and same(d, s) is False:
            L.fail(f"dim {i - lead} of size {d} cannot expand to {s}")
        else:
            out.append(s)
    x = input if not lead else reshape(input, (1,) * lead + tuple(input.shape), f"{L.name}/unsqueeze")
    if all(same(a, b) for a, b in zip(x.shape, out)):
        return x
    return L.emit([x], out)


@public
def expand_as(input, other, name=None):
    return expand(input, other.shape, name)


@public
def size(input, dim=None):
    """x.shape (symbolic where dynamic): sizes to compute other sizes with, e.g. reshape(x, (size(x, 0), -1))."""
    return input.shape if dim is None else input.shape[dim]


@op("index_tensor", axis=int)
def _index_tensor(input, dim, index, name=None):
    """x[..., index, ...] along `dim` with an int tensor of any shape (TensorRT's gather, negative indices from
    the end): that dim becomes the index's dims."""
    L = Layer("index_tensor", input, name)
    if index.dtype not in ("int32", "int64"):
        L.fail(f"index '{index.name}' is {index.dtype}; expected int32, int64 or a constant bool mask")
    d = L.axis(input, dim)
    return L.emit([input, index], (*input.shape[:d], *index.shape, *input.shape[d + 1:]), dict(axis=d))


def _tensorish(k):
    return isinstance(k, (Node, list, np.ndarray))


def _index_with_tensor(input, key, name=None):
    """x[key] where entries of key are tensors (or lists of ints or bools): the rest is basic indexing, then the
    tensors index their dims, several int tensors together as torch does (broadcast; their dims go where the
    first was when they are adjacent, else in front); a bool mask must be a constant (its count is then known)."""
    L = Layer("index_tensor", input, name or "getitem")
    key = tuple(_as_index(input, k, f"{L.name}/index") if _tensorish(k) else k for k in key)
    places = [i for i, k in enumerate(key) if isinstance(k, Node)]
    spans = [key[p].rank if key[p].dtype == "bool" else 1 for p in places]
    if len(places) > 1 and any(key[p].dtype == "bool" for p in places):
        L.fail("a bool mask cannot be combined with other tensor indices")
    used = builtins.sum(1 for k in key if not isinstance(k, Node) and k is not None and k is not Ellipsis)
    extra = input.rank - used - builtins.sum(spans)
    axes, axis = [], 0
    for k in key:
        if isinstance(k, Node):
            axes.append(axis)
        if not isinstance(k, (int, np.integer)):
            axis += extra if k is Ellipsis else (k.rank if isinstance(k, Node) and k.dtype == "bool" else 1)
    basic = tuple((builtins.slice(None),) * (k.rank if k.dtype == "bool" else 1) if isinstance(k, Node) else (k,)
                  for k in key)
    y = getitem(input, builtins.sum(basic, ()), f"{L.name}/basic")
    if len(places) > 1:
        return _index_several(L, y, axes, [key[p] for p in places])
    k, before = key[places[0]], axes[0]
    if k.dtype != "bool":
        return _index_tensor(y, before, k, name=L.name)
    if k.op != "const":
        L.fail(f"x[mask] with the run-time mask '{k.name}' has a data-dependent size; use tn.where, "
               "tn.masked_fill or tn.nonzero_static")
    mask = k.params["value"].astype(bool)
    dims = y.shape[before:before + k.rank]
    if tuple(dims) != mask.shape:
        L.fail(f"mask {mask.shape} does not match the indexed dims {fmt(dims)}")
    flat = reshape(y, (*y.shape[:before], math.prod(mask.shape), *y.shape[before + k.rank:]), f"{L.name}/flat")
    ids = const(input.graph, np.flatnonzero(mask).astype(np.int64), "int64", f"{L.name}/ids")
    return _index_tensor(flat, before, ids, name=L.name)


def _as_index(input, k, name):
    if isinstance(k, Node):
        return k
    arr = np.asarray(k)
    return const(input.graph, arr, "bool" if arr.dtype == np.bool_ else "int64", name)


def _index_several(L, y, axes, indices):
    """y[..., i, ..., j, ...] with int tensors on `axes`: those axes moved in front, one ND gather."""
    for i in indices:
        if i.dtype not in ("int32", "int64"):
            L.fail(f"index '{i.name}' is {i.dtype}; expected int32 or int64")
    shape = ()
    for i in indices:
        shape = broadcast(L, shape, i.shape)
    parts = [reshape(cast(_expand_to(i, shape, f"{L.name}/index{n}"), "int64"), (*shape, 1), f"{L.name}/index{n}")
             for n, i in enumerate(indices)]
    rest = [a for a in range(y.rank) if a not in axes]
    front = permute(y, (*axes, *rest), f"{L.name}/front") if axes != list(range(len(axes))) else y
    in_front = axes[0] == 0 or axes != list(range(axes[0], axes[0] + len(axes)))
    out = _index_nd(front, cat(parts, -1, f"{L.name}/indices"), name=L.name if in_front else f"{L.name}/gather")
    if in_front:
        return out
    b = len(shape)   # adjacent indexed axes: their result dims go where the first one was
    order = (*range(b, b + axes[0]), *range(b), *range(b + axes[0], out.rank))
    return permute(out, order, L.name)


def _expand_to(x, shape, name):
    return x if tuple(x.shape) == tuple(shape) else expand(x, shape, name)


@op("index_nd")
def _index_nd(input, index, name=None):
    """input[index[..., 0], index[..., 1], ...] over the leading index.shape[-1] dims (TensorRT's ND gather,
    negative indices from the end): output index.shape[:-1] + input.shape[k:]."""
    L = Layer("index_nd", input, name)
    k = index.shape[-1]
    return L.emit([input, index], (*index.shape[:-1], *input.shape[k:]))
