"""torch.Tensor's wider surface: einsum and batched products, identity matrices and grids, masked fills, sorting,
scatters, nonzero with a static size, cumulative products and indexing with tensors (`x[idx]`, `x[:, idx]`)."""
import builtins
import re

import numpy as np

from ..graph import GraphError, Node, user_line
from ..shape import is_static, same
from .core import Layer, ValuesIndices, broadcast, const, fmt, op, public, result_type, scalar_dtype, static_int
from .elementwise import (cast, eq, floor_divide, logical_and, logical_not, logical_or, logical_xor, operands,
                          remainder, where)
from .index import INDEX_TYPES, _graph_node, arange
from .nn import matmul
from .reduce import cumsum, prod
from .reduce import sum as sum_
from .shape import cat, expand, getitem, movedim, reshape, squeeze, unsqueeze

_SUBSCRIPT = re.compile(r"^[a-zA-Z]*(\.\.\.)?[a-zA-Z]*$")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _einsum_terms(L, equation, xs):
    """The inputs' subscripts and the output's with `...` written out as letters of their own (right-aligned
    over the operands, as torch broadcasts them), every letter then renamed to a lowercase one, as TensorRT
    takes them. Implicit output: the ellipsis dims, then the letters seen once in (ASCII) order, as torch."""
    eq_ = equation.replace(" ", "")
    lhs, arrow, out = eq_.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(xs) or not all(_SUBSCRIPT.match(t) for t in terms + [out]):
        L.fail(f"equation {equation!r} must have {len(xs)} comma-separated terms of letters (and at most one "
               f"'...' each) for {len(xs)} operands")
    letters = "".join(terms).replace(".", "")
    spare = [c for c in _LETTERS + _LETTERS.upper() if c not in letters]
    spans = [x.rank - len(t) + 3 for t, x in zip(terms, xs) if "..." in t]   # the dims each '...' stands for
    if min(spans, default=0) < 0:
        L.fail(f"equation {equation!r}: '...' does not fit the operands' ranks")
    ell = "".join(spare[:max(spans, default=0)])
    terms = [t.replace("...", ell[len(ell) - (x.rank - len(t) + 3):]) for t, x in zip(terms, xs)]
    if not arrow:
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    out = out.replace("...", ell)
    if len(set(out)) != len(out) or not set(out) <= set("".join(terms)):
        L.fail(f"equation {equation!r}: output subscripts must be distinct letters of the inputs")
    used = sorted(set("".join(terms)))
    if len(used) > len(_LETTERS):
        L.fail(f"equation {equation!r} uses {len(used)} subscripts; TensorRT's einsum takes 26")
    lower = {c: _LETTERS[i] for i, c in enumerate(used)}
    return ["".join(lower[c] for c in t) for t in terms], "".join(lower[c] for c in out)


def _broadcast_operands(L, equation, xs, terms):
    """Operands with their size-1 dims expanded where another operand's same subscript is larger (torch
    broadcasts them; TensorRT's einsum needs equal sizes)."""
    sizes = {}
    for x, term in zip(xs, terms):
        for c, d in zip(term, x.shape):
            if c not in sizes or same(sizes[c], 1):
                sizes[c] = d
            elif not same(d, 1) and same(sizes[c], d) is False:
                L.fail(f"equation {equation!r}: a subscript has sizes {sizes[c]} and {d} in different operands")
    out = []
    for i, (x, term) in enumerate(zip(xs, terms)):
        shape = tuple(sizes[c] for c in term)
        out.append(x if all(same(a, b) for a, b in zip(shape, x.shape)) else expand(x, shape, f"{L.name}/operand{i}"))
    return out, sizes


@op("einsum", equation=str)
def einsum(equation, *operands, name=None):
    """torch.einsum through TensorRT's IEinsumLayer: subscripts of either case and `...` (written out as letters),
    size-1 dims broadcast by expanding them; no repeated letter within one operand (no diagonals), as TensorRT
    requires."""
    xs = list(operands[0]) if len(operands) == 1 and isinstance(operands[0], (list, tuple)) else list(operands)
    if not xs or not all(isinstance(x, Node) for x in xs):
        raise GraphError(f"{user_line()}: einsum takes tensors after the equation")
    L = Layer("einsum", xs[0], name)
    terms, out = _einsum_terms(L, equation, xs)
    for x, term in zip(xs, terms):
        if len(term) != x.rank:
            L.fail(f"equation {equation!r} has {len(term)} subscripts for '{x.name}' of shape {fmt(x.shape)}")
        if len(set(term)) != len(term):
            L.fail(f"equation {equation!r} repeats a subscript within an operand (a diagonal), which TensorRT's "
                   "einsum does not take")
        if x.dtype != xs[0].dtype or not x.is_float:
            L.fail(f"operands must share one floating-point dtype, got {', '.join(x.dtype for x in xs)}")
    xs, sizes = _broadcast_operands(L, equation, xs, terms)
    return L.emit(xs, tuple(sizes[c] for c in out), dict(equation=f"{','.join(terms)}->{out}"))


@public
def bmm(input, mat2, name=None):
    """torch.bmm: (b, n, m) @ (b, m, p), both rank 3."""
    for x in (input, mat2):
        if x.rank != 3:
            Layer("matmul", input, name or "bmm").fail(f"bmm takes rank-3 operands, got {fmt(x.shape)}")
    return matmul(input, mat2, name or "bmm")


@public
def baddbmm(input, batch1, batch2, beta=1, alpha=1, name=None):
    """torch.baddbmm: beta * input + alpha * (batch1 @ batch2); beta 0 ignores input (NaN included), as torch."""
    name = name or "baddbmm"
    y = bmm(batch1, batch2, f"{name}/bmm")
    if alpha != 1:
        y = y * alpha
    if beta == 0:
        return expand(y, y.shape, name)
    return (input if beta == 1 else input * beta) + y


@public
def eye(n, m=None, dtype="float32", like=None, name=None):
    """torch.eye(n, m): ones on the diagonal; n and m may be run-time sizes (x.shape[1]); `like` is a tensor of
    the graph."""
    name = name or "eye"
    like = _graph_node(like, "eye")
    m = n if m is None else m
    rows = reshape(arange(n, like=like, name=f"{name}/rows"), (n, 1), f"{name}/rows")
    cols = reshape(arange(m, like=like, name=f"{name}/cols"), (1, m), f"{name}/cols")
    return cast(eq(rows, cols, f"{name}/diagonal"), dtype, name)


@public
def masked_fill(input, mask, value, name=None):
    """Tensor.masked_fill: `value` (a number or a 0-D tensor) where the bool `mask` (broadcast) is true; the
    input's dtype is kept."""
    if not isinstance(mask, Node) or mask.dtype != "bool":
        Layer("where", input, name or "masked_fill").fail("mask must be a bool tensor")
    if isinstance(value, Node):
        if value.rank:
            Layer("where", input, name or "masked_fill").fail(f"value must be 0-D, got {fmt(value.shape)}")
        value = cast(value, input.dtype)
    else:
        value = const(input.graph, value, input.dtype, f"{name or 'masked_fill'}/value")
    return where(mask, value, input, name or "masked_fill")


@op("sort", axis=int, descending=bool, outputs=int)
def sort(input, dim=-1, descending=False, stable=False, name=None):
    """torch.sort as (values, int64 indices): TensorRT's top-k with k the axis' length (at most 3840). Equal
    values keep their order, lowest index first (torch's stable=True), whatever `stable` says."""
    L = Layer("sort", input, name)
    if not isinstance(dim, (int, np.integer)):
        L.fail(f"takes one int dim, got {dim!r}")
    if input.dtype == "bool":   # TensorRT's top-k takes no bools: on 0/1 integers, and back
        values, indices = sort(cast(input, "int32"), dim, descending, stable, name)
        return ValuesIndices(cast(values, "bool", f"{L.name}/bool"), indices)
    axis = L.axis(input, dim)
    if not input.rank:
        values, indices = sort(reshape(input, (1,), f"{L.name}/1d"), 0, descending, stable, name)
        return ValuesIndices(reshape(values, (), f"{L.name}/values"), reshape(indices, (), f"{L.name}/indices"))
    size = input.shape[axis]
    if is_static(size) and not 1 <= size <= 3840:
        L.fail(f"dim {axis} has {size} elements; TensorRT's top-k sorts 1..3840")
    outs = [(input.shape, input.dtype), (input.shape, "int64")]
    return ValuesIndices(*L.emit_multi([input], outs, dict(axis=axis, descending=bool(descending))))


@public
def argsort(input, dim=-1, descending=False, stable=False, name=None):
    """torch.argsort: the indices of sort (ties lowest index first)."""
    return sort(input, dim, descending, stable, name or "argsort").indices


def _index_input(L, index, what="index"):
    if not isinstance(index, Node) or index.dtype not in INDEX_TYPES:
        L.fail(f"{what} must be an int32 or int64 tensor, got {getattr(index, 'dtype', type(index).__name__)}")


@op("scatter", axis=int)
def scatter(input, dim, index, src=None, value=None, reduce=None, name=None):
    """torch.scatter through IScatterLayer (ELEMENT): out[..index[i][j]..] = src[i][j] along `dim`; `src` is a
    tensor (its leading index.shape block is used) or `value` a number. Repeated targets are undefined, in torch
    and TensorRT alike; reduce= has no TensorRT form."""
    L = Layer("scatter", input, name)
    _index_input(L, index)
    if reduce is not None:
        L.fail(f"reduce={reduce!r} has no TensorRT form (IScatterLayer replaces elements)")
    d = L.axis(input, dim)
    if index.rank != input.rank:
        L.fail(f"index {fmt(index.shape)} must have the rank of the input {fmt(input.shape)}")
    src = value if src is None else src
    if isinstance(src, Node):
        if src.rank != index.rank:
            L.fail(f"src {fmt(src.shape)} must have the rank of the index {fmt(index.shape)}")
        if not all(same(a, b) for a, b in zip(src.shape, index.shape)):
            src = getitem(src, tuple(builtins.slice(0, n) for n in index.shape), f"{L.name}/src")
        src = cast(src, input.dtype)
    else:
        src = expand(const(input.graph, np.full((1,) * index.rank, src), input.dtype, f"{L.name}/value"),
                     index.shape, f"{L.name}/src")
    return L.emit([input, index, src], input.shape, dict(axis=d))


@op("index_put")
def index_put(input, indices, values, accumulate=False, name=None):
    """torch.index_put through IScatterLayer (ND): input[indices] = values, `indices` a tuple of int tensors for
    the leading dims (broadcast together; negative ones count from the end). accumulate=True has no TensorRT
    form; repeated targets are undefined, as in torch."""
    L = Layer("index_put", input, name)
    indices = list(indices)
    if accumulate:
        L.fail("accumulate=True has no TensorRT form (IScatterLayer replaces elements)")
    if not 1 <= len(indices) <= input.rank:
        L.fail(f"{len(indices)} index tensors for shape {fmt(input.shape)}")
    for i in indices:
        _index_input(L, i, "each index")
    shape = ()
    for i in indices:
        shape = broadcast(L, shape, i.shape)
    parts = [unsqueeze(cast(expand(i, shape, f"{L.name}/index{k}") if i.shape != shape else i, "int64"), -1,
                       f"{L.name}/index{k}") for k, i in enumerate(indices)]
    where_ = parts[0] if len(parts) == 1 else cat(parts, -1, f"{L.name}/indices")
    target = (*shape, *input.shape[len(indices):])
    values = values if isinstance(values, Node) else const(input.graph, values, input.dtype, f"{L.name}/value")
    values = cast(values, input.dtype)
    if values.shape != target:
        values = expand(values, target, f"{L.name}/values")
    return L.emit([input, where_, values], input.shape)


@op("nms", max_per_class=int, iou_threshold=float, score_threshold=float, centers=bool, limit=int,
    outputs=int)
def nms(boxes, scores, max_per_class, iou_threshold=0.5, score_threshold=0.0, box_coding="corners",
        topk_box_limit=5000, name=None):
    """TensorRT's INMSLayer, for a TensorRT that builds it (TensorRT for RTX does not): (selected (S, 3) int32
    rows [batch, class, box], count int32) from `boxes` (N, B, 4) and `scores` (N, B, C). Per batch item the
    (box, class) pairs scoring over `score_threshold` are taken by decreasing score (the best `topk_box_limit`),
    a pair kept unless its IoU with a kept box of its class exceeds `iou_threshold`, at most `max_per_class` per
    class. Its row count depends on the data, so rows come in a fixed size S = N x C x max_per_class (a bound known
    before the run: N and B may be dynamic) as nonzero_static's do, in the order kept, rows past the count filled
    with -1. `box_coding`: "corners" (x1, y1, x2, y2) or "center" (cx, cy, w, h)."""
    L = Layer("nms", boxes, name)
    max_per_class, limit = static_int(L, max_per_class, "max_per_class"), static_int(L, topk_box_limit, "limit")
    if box_coding not in ("corners", "center"):
        L.fail(f"box_coding {box_coding!r}: expected 'corners' or 'center'")
    if boxes.rank != 3 or boxes.shape[2] != 4 or scores.rank != 3 or not same(boxes.shape[1], scores.shape[1]) or \
            not same(boxes.shape[0], scores.shape[0]):
        L.fail(f"expected boxes (N, B, 4) and scores (N, B, C), got {fmt(boxes.shape)} and {fmt(scores.shape)}")
    n, c = boxes.shape[0], scores.shape[2]
    if not is_static(c) or max_per_class < 1:
        L.fail(f"needs a static class count C (the rows' fixed count is N x C x max_per_class) and max_per_class "
               f">= 1, got {fmt(scores.shape)} and {max_per_class}")
    rows = n * c * max_per_class
    attrs = dict(max_per_class=max_per_class, iou_threshold=float(iou_threshold),
                 score_threshold=float(score_threshold), centers=box_coding == "center", limit=limit)
    return tuple(L.emit_multi([boxes, scores], [((rows, 3), "int32"), ((), "int32")], attrs))


@public
def nonzero(input, as_tuple=False, name=None):
    """torch.nonzero: refused, because its row count depends on the data and a graph's sizes come from its
    inputs' shapes; tn.nonzero_static gives the same rows in a fixed size."""
    Layer("index_tensor", input, name or "nonzero").fail(
        "the number of nonzero elements depends on the data, which a graph's shapes (sizes of its inputs) cannot "
        "express; use tn.nonzero_static(x, size=...) (torch.nonzero_static) or a mask with tn.where")


@public
def nonzero_static(input, size, fill_value=-1, name=None):
    """torch.nonzero_static: the (size, rank) int64 coordinates of the first `size` nonzero elements in row-major
    order, rows past their count filled with `fill_value`. Built from a running count rather than TensorRT's
    INonZeroLayer, for which TensorRT-RTX 1.7 finds no runner when building: row r holds the position where the count
    first exceeds r. Memory grows with size times the number of elements."""
    name = name or "nonzero_static"
    L = Layer("index_tensor", input, name)
    size = static_int(L, size, "size")
    if input.rank == 0 or size < 0:
        L.fail(f"needs an input of rank >= 1 and a size >= 0, got {fmt(input.shape)} and {size}")
    flat = reshape(input if input.dtype == "bool" else input != 0, (-1,), f"{name}/flat")
    count = cumsum(flat, 0, name=f"{name}/count")                                   # (M,)
    rows = unsqueeze(arange(size, like=input, name=f"{name}/rows"), 1, f"{name}/rows")   # (size, 1)
    found = rows < getitem(count, builtins.slice(-1, None), f"{name}/total")        # (size, 1)
    position = sum_(unsqueeze(count, 0, f"{name}/counts") <= rows, 1, name=f"{name}/position")
    position = where(squeeze(found, 1, f"{name}/found"), position, 0, name=f"{name}/in_range")
    coords = []
    for a, d in enumerate(input.shape):   # each axis' coordinate of every element, read at the positions
        ids = reshape(arange(d, like=input, name=f"{name}/axis{a}"),
                      tuple(-1 if i == a else 1 for i in range(input.rank)), f"{name}/axis{a}")
        table = reshape(expand(ids, input.shape, f"{name}/axis{a}"), (-1,), f"{name}/axis{a}")
        coords.append(unsqueeze(getitem(table, position, f"{name}/coord{a}"), 1, f"{name}/coord{a}"))
    coords = coords[0] if len(coords) == 1 else cat(coords, 1, f"{name}/coords")
    return where(found, coords, int(fill_value), name=name)


@public
def cumprod(input, dim, dtype=None, name=None):
    """torch.cumprod as exact products (TensorRT's cumulative layer only sums): row i of an (n, n) grid holds
    x[0..i] and ones after, reduced by PROD. Memory grows with the square of the axis' length."""
    name = name or "cumprod"
    L = Layer("prod", input, name)
    d = L.axis(input, dim)
    if not input.rank:
        return reshape(cumprod(reshape(input, (1,), f"{name}/1d"), 0, dtype), (), name)
    x = cast(input, dtype) if dtype else input if input.is_float or input.dtype == "int64" else cast(input, "int64")
    n = x.shape[d]
    row = unsqueeze(movedim(x, d, -1), -2, f"{name}/row")                    # (..., 1, n)
    grid = expand(row, (*row.shape[:-2], n, n), f"{name}/grid")              # (..., n, n): [i, j] = x[j]
    ids = arange(n, like=x, name=f"{name}/ids")
    keep = reshape(ids, (1, n), f"{name}/cols") <= reshape(ids, (n, 1), f"{name}/rows")
    products = prod(where(keep, grid, 1, name=f"{name}/masked"), -1, name=f"{name}/prod")
    return movedim(products, -1, d, name)


@public
def meshgrid(*tensors, indexing="ij", name=None):
    """torch.meshgrid of 1-D tensors: each expanded over the others' sizes ('ij'; 'xy' swaps the first two)."""
    xs = list(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else list(tensors)
    name = name or "meshgrid"
    if indexing not in ("ij", "xy") or not xs:
        raise GraphError(f"{user_line()}: meshgrid takes tensors and indexing 'ij' or 'xy', got {indexing!r}")
    if len({x.dtype for x in xs}) > 1:
        raise GraphError(f"{user_line()}: meshgrid takes tensors of one dtype, got {', '.join(x.dtype for x in xs)}")
    xs = [reshape(x, (-1,), f"{name}.{i}/flat") if x.rank != 1 else x for i, x in enumerate(xs)]
    order = list(range(len(xs)))
    if indexing == "xy" and len(xs) > 1:
        order[0], order[1] = 1, 0
    sizes = [xs[i].shape[0] for i in order]   # output dim p holds tensor order[p]
    out = []
    for i, x in enumerate(xs):
        p = order.index(i)
        col = reshape(x, tuple(-1 if q == p else 1 for q in range(len(xs))), f"{name}.{i}/shape")
        out.append(expand(col, sizes, f"{name}.{i}"))
    return out


BITS = {"uint8": 8, "int8": 8, "int32": 32, "int64": 64}


def _bitwise(kind, input, other, name):
    """torch.bitwise_and/or/xor: logical on bools; on integers exact in two's complement, since TensorRT has no
    bitwise layer: each operand's bits along a new last axis (floor divisions by powers of two, the sign bit from
    x < 0), combined as 0/1 integers and summed back with weights 2^k (the sign bit's -2^(n-1))."""
    x = input if isinstance(input, Node) else other
    dtype = result_type(input, other) if isinstance(input, Node) and isinstance(other, Node) else \
        scalar_dtype(other if x is input else input, x.dtype)
    if dtype == "bool":
        return {"and": logical_and, "or": logical_or, "xor": logical_xor}[kind](input, other, name=name)
    L = Layer("sum", x, name or f"bitwise_{kind}")
    if dtype not in BITS:
        L.fail(f"bitwise ops take integer or bool tensors, got {dtype}")
    n, wide = BITS[dtype], "int64" if BITS[dtype] == 64 else "int32"
    a, b, _ = operands(*(cast(v, wide, f"{L.name}/wide") if isinstance(v, Node) else v for v in (input, other)))
    powers = const(a.graph, [1 << k for k in range(n - 1)], wide, f"{L.name}/powers")
    weights = const(a.graph, [1 << k for k in range(n - 1)] + [-(1 << (n - 1)) if dtype != "uint8" else 1 << 7],
                    wide, f"{L.name}/weights")

    def bits(x, tag):
        x = unsqueeze(x, -1, f"{L.name}/{tag}")
        low = remainder(floor_divide(x, powers, f"{L.name}/{tag}_shifted"), 2, f"{L.name}/{tag}_bits")
        top = cast(x < 0, wide, f"{L.name}/{tag}_sign") if dtype != "uint8" else \
            remainder(floor_divide(x, 1 << 7, f"{L.name}/{tag}_top"), 2, f"{L.name}/{tag}_sign")
        return cat([low, top], -1, f"{L.name}/{tag}_all")
    x, y = bits(a, "a"), bits(b, "b")
    both = x * y
    picked = {"and": both, "or": x + y - both, "xor": x + y - both * 2}[kind]
    return cast(sum_(picked * weights, -1, name=f"{L.name}/sum"), dtype, L.name)


@public
def bitwise_and(input, other, name=None):
    """torch.bitwise_and (`&`): logical on bools, bit by bit on integers."""
    return _bitwise("and", input, other, name)


@public
def bitwise_or(input, other, name=None):
    """torch.bitwise_or (`|`): logical on bools, bit by bit on integers."""
    return _bitwise("or", input, other, name)


@public
def bitwise_xor(input, other, name=None):
    """torch.bitwise_xor (`^`): logical on bools, bit by bit on integers."""
    return _bitwise("xor", input, other, name)


@public
def bitwise_not(input, name=None):
    """torch.bitwise_not (`~`): logical on bools; on integers -x - 1 in two's complement (255 - x for uint8)."""
    if input.dtype == "bool":
        return logical_not(input, name=name)
    L = Layer("neg", input, name or "bitwise_not")
    if input.dtype not in BITS:
        L.fail(f"bitwise_not takes an integer or bool tensor, got {input.dtype}")
    wide = cast(input, "int64" if input.dtype == "int64" else "int32", f"{L.name}/wide")
    flipped = (255 - wide) if input.dtype == "uint8" else (-wide - 1)
    return cast(flipped, input.dtype, L.name)
