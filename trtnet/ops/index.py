"""Indexing and index-built tensors: gather, index_select, embedding, one_hot, grid_sample, repeat/tile, flip,
roll, arange, filled tensors and triangular masks. Sizes may be symbolic; run-time sizes come from the graph's
inputs."""
import math

import numpy as np

from ..graph import GraphError, Node, user_line
from ..shape import Expr, is_static, same
from .core import Layer, broadcast, const, fmt, op, public
from .elementwise import where
from .shape import expand, reshape

INDEX_TYPES = ("int32", "int64")


def _index(L, index):
    if not isinstance(index, Node):
        L.fail(f"index must be a tensor, got {type(index).__name__}")
    if index.dtype not in INDEX_TYPES:
        L.fail(f"index '{index.name}' is {index.dtype}; expected int32 or int64")


@op("gather", dim=int)
def gather(input, dim, index, name=None):
    """torch.gather: out[i][j][k] = input[index[i][j][k]][j][k] (dim 0); the output has the index's shape."""
    L = Layer("gather", input, name)
    _index(L, index)
    d = L.axis(input, dim)
    if index.rank != input.rank:
        L.fail(f"index {fmt(index.shape)} must have the rank of the input {fmt(input.shape)}")
    for i, (a, b) in enumerate(zip(index.shape, input.shape)):
        if i != d and is_static(a) and is_static(b) and a > b:
            L.fail(f"index {fmt(index.shape)} is larger than the input {fmt(input.shape)} at dim {i}")
    return L.emit([input, index], index.shape, dict(dim=d), dtype=input.dtype)


@public
def take_along_dim(input, indices, dim=None, name=None):
    """torch.take_along_dim: gather with the input and the indices broadcast over every dim but `dim`; dim None
    reads the flattened input at the flattened indices."""
    name = name or "take_along_dim"
    if dim is None:
        return gather(reshape(input, (-1,), f"{name}/flat"), 0, reshape(indices, (-1,), f"{name}/flat_indices"), name)
    L = Layer("gather", input, name)
    _index(L, indices)
    d = L.axis(input, dim)
    if indices.rank != input.rank:
        L.fail(f"indices {fmt(indices.shape)} must have the rank of the input {fmt(input.shape)}")
    common = list(broadcast(L, *(tuple(1 if i == d else s for i, s in enumerate(x.shape)) for x in (input, indices))))

    def spread(v, what):   # v broadcast to the common shape, its own size along dim
        shape = tuple(v.shape[d] if k == d else c for k, c in enumerate(common))
        return v if all(same(a, b) for a, b in zip(v.shape, shape)) else expand(v, shape, f"{name}/{what}")
    return gather(spread(input, "input"), d, spread(indices, "indices"), name)


@op("index_select", dim=int)
def index_select(input, dim, index, name=None):
    """torch.index_select: the entries `index` (1-D) of `dim`."""
    L = Layer("index_select", input, name)
    _index(L, index)
    if index.rank > 1:
        L.fail(f"index must be 1-D, got {fmt(index.shape)}")
    d = L.axis(input, dim)
    shape = (*input.shape[:d], *(index.shape[:1] or (1,)), *input.shape[d + 1:])
    return L.emit([input, index], shape, dict(dim=d), dtype=input.dtype)


@op("embedding")
def embedding(ids, w, padding_idx=None, name=None):
    """nn.Embedding: rows of `weight` (num, dim) picked by integer ids of any shape; output ids.shape + (dim,).
    padding_idx only matters for training, as in torch; it is checked, not used."""
    L = Layer("embedding", ids, name or w.prefix)
    _index(L, ids)
    raw = w.get("weight")
    if raw is None or raw.ndim != 2:
        L.fail(f"'{w.full('weight')}' must be a (num_embeddings, embedding_dim) array")
    weight = L.param(w, "weight", raw.shape)
    if padding_idx is not None and not -weight.shape[0] <= padding_idx < weight.shape[0]:
        L.fail(f"padding_idx {padding_idx} is outside the {weight.shape[0]} embeddings")
    return L.emit([ids], (*ids.shape, weight.shape[1]), params={"weight": weight}, dtype="float32")


@op("one_hot", num_classes=int)
def one_hot(tensor, num_classes, name=None):
    """F.one_hot: int64 of shape tensor.shape + (num_classes,); num_classes must be given (no data here)."""
    L = Layer("one_hot", tensor, name)
    _index(L, tensor)
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        L.fail(f"num_classes must be a positive int, got {num_classes!r}")
    return L.emit([tensor], (*tensor.shape, int(num_classes)), dict(num_classes=int(num_classes)), dtype="int64")


GRID_MODES = {4: ("bilinear", "nearest", "bicubic"), 5: ("bilinear", "nearest")}   # as torch and TensorRT
GRID_PADDING = ("zeros", "border", "reflection")


@op("grid_sample", mode=str, padding_mode=str, align_corners=bool)
def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False, name=None):
    """F.grid_sample: input (N, C, H, W) read at grid (N, Ho, Wo, 2), (x, y) in [-1, 1] (corner pixels' centres
    with align_corners, else their outer edges); 5-D inputs take (N, Do, Ho, Wo, 3) grids of (x, y, z)."""
    L = Layer("grid_sample", input, name)
    L.rank(input, 4, 5)
    L.float_input(input)
    k = input.rank - 2
    if not isinstance(grid, Node) or grid.rank != input.rank or not same(grid.shape[-1], k):
        got = f"'{grid.name}' of shape {fmt(grid.shape)}" if isinstance(grid, Node) else type(grid).__name__
        L.fail(f"grid must be a tensor (N, {', '.join('out' for _ in range(k))}, {k}) for input {fmt(input.shape)}, "
               f"got {got}")
    if grid.dtype != input.dtype:
        L.fail(f"grid '{grid.name}' is {grid.dtype}; expected the input's {input.dtype}")
    if is_static(grid.shape[0]) and is_static(input.shape[0]) and grid.shape[0] != input.shape[0]:
        L.fail(f"grid batch {grid.shape[0]} differs from the input's {input.shape[0]}")
    if mode not in GRID_MODES[input.rank]:
        L.fail(f"mode must be one of {', '.join(map(repr, GRID_MODES[input.rank]))} for a {input.rank}-D input, "
               f"got {mode!r}")
    if padding_mode not in GRID_PADDING:
        L.fail(f"padding_mode must be one of {', '.join(map(repr, GRID_PADDING))}, got {padding_mode!r}")
    return L.emit([input, grid], (*input.shape[:2], *grid.shape[1:-1]),
                  dict(mode=mode, padding_mode=padding_mode, align_corners=bool(align_corners)))


def _ints(L, values, what):
    out = []
    for v in values:
        if not isinstance(v, (int, np.integer)):
            L.fail(f"{what} must be ints, got {v!r}")
        out.append(int(v))
    return out


def _lead(x, n, name):
    """x with unit dims in front up to rank n."""
    return x if x.rank >= n else reshape(x, (1,) * (n - x.rank) + tuple(x.shape), f"{name}/unsqueeze")


@op("repeat", repeats=tuple)
def repeat(input, *sizes, name=None):
    """Tensor.repeat: the whole tensor tiled sizes[i] times along dim i; extra sizes add leading dims."""
    sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
    L = Layer("repeat", input, name)
    reps = _ints(L, sizes, "repeat sizes")
    if len(reps) < input.rank or min(reps, default=1) < 0:
        L.fail(f"sizes {tuple(reps)} must be >= 0 and at least one per dim of {fmt(input.shape)}")
    x = _lead(input, len(reps), L.name)
    return L.emit([x], tuple(d * r for d, r in zip(x.shape, reps)), dict(repeats=tuple(reps)))


@public
def tile(input, dims, name=None):
    """torch.tile: like repeat, with ones in front when dims has fewer entries than the input's rank."""
    dims = (int(dims),) if isinstance(dims, (int, np.integer)) else tuple(dims)
    return repeat(input, (1,) * (input.rank - len(dims)) + dims, name=name or "tile")


@op("flip", dims=tuple)
def flip(input, dims, name=None):
    """torch.flip: the order of the listed dims reversed."""
    L = Layer("flip", input, name)
    return L.emit([input], input.shape, dict(dims=L.axes(input, dims)))


@op("roll", shifts=tuple, dims=tuple)
def roll(input, shifts, dims=None, name=None):
    """torch.roll: elements shifted along dims, wrapping around; dims None rolls the flattened tensor."""
    L = Layer("roll", input, name)
    shifts = _ints(L, (shifts,) if isinstance(shifts, (int, np.integer)) else shifts, "shifts")
    if dims is None:
        if len(shifts) != 1:
            L.fail(f"one shift without dims, got {tuple(shifts)}")
        flat = reshape(input, (-1,), f"{L.name}/flatten")
        return reshape(roll(flat, shifts, 0, name=L.name), input.shape, f"{L.name}/unflatten")
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    if len(dims) != len(shifts):
        L.fail(f"{len(shifts)} shifts for {len(dims)} dims")
    total = {}
    for d, s in zip(dims, shifts):
        a = L.axis(input, d)
        total[a] = total.get(a, 0) + s
    return L.emit([input], input.shape, dict(shifts=tuple(total.values()), dims=tuple(total)))


def _graph_node(like, what):
    if not isinstance(like, Node):
        raise GraphError(f"{user_line()}: {what}: pass like= (a tensor of the graph it belongs to)")
    return like


@op("arange", start=(int, float, Expr), end=(int, float, Expr), step=(int, float))
def arange(start=0, end=None, step=1, dtype=None, like=None, name=None):
    """torch.arange; start and end may be run-time sizes such as x.shape[1] (then all must be ints).
    `like` is any tensor of the graph. dtype defaults as torch's: int64 for ints, float32 otherwise."""
    L = Layer("arange", _graph_node(like, "arange"), name)
    if end is None:
        start, end = 0, start
    values = start, end, step = tuple(v.item() if isinstance(v, np.generic) else v for v in (start, end, step))
    if any(isinstance(v, Node) for v in values):
        L.fail("start, end and step must be numbers or symbolic sizes, not tensors")
    ints = all(isinstance(v, (int, np.integer, Expr)) for v in values)
    dtype = dtype or ("int64" if ints else "float32")
    if isinstance(step, Expr) or step == 0:
        L.fail(f"step must be a non-zero number, got {step!r}")
    if isinstance(end, Expr) or isinstance(start, Expr):
        if not ints:
            L.fail("a run-time start or end needs int start, end and step")
        size = (end - start + step - 1) // step if step > 0 else (start - end - step - 1) // -step
    else:
        size = max(math.ceil((end - start) / step), 0)
    return L.emit([], (size,), dict(start=start, end=end, step=step), dtype=dtype)


@public
def full(size, fill_value, like=None, dtype=None, name=None):
    """torch.full of `size` (symbolic sizes allowed); `like` is a tensor of the graph (its dtype is the default)."""
    like = _graph_node(like, "full")
    dtype = dtype or like.dtype
    shape = tuple(size)
    c = const(like.graph, np.full((1,) * len(shape), fill_value), dtype, name=f"{name or 'full'}/value")
    return expand(c, shape, name=name or "full") if not all(same(d, 1) for d in shape) else c


@public
def zeros(size, like=None, dtype=None, name=None):
    return full(size, 0, like, dtype, name or "zeros")


@public
def ones(size, like=None, dtype=None, name=None):
    return full(size, 1, like, dtype, name or "ones")


@public
def full_like(input, fill_value, dtype=None, name=None):
    """torch.full_like: input's (run-time) shape, filled."""
    return full(input.shape, fill_value, input, dtype, name or "full_like")


@public
def zeros_like(input, dtype=None, name=None):
    return full(input.shape, 0, input, dtype, name or "zeros_like")


@public
def ones_like(input, dtype=None, name=None):
    return full(input.shape, 1, input, dtype, name or "ones_like")


def _triangle(input, diagonal, upper, name):
    if input.rank < 2:
        Layer("where", input, name).fail(f"expects at least 2 dims, got {fmt(input.shape)}")
    h, w = input.shape[-2:]
    rows = reshape(arange(h, like=input, name=f"{name}/rows"), (h, 1), f"{name}/rows")
    cols = reshape(arange(w, like=input, name=f"{name}/cols"), (1, w), f"{name}/cols")
    offset = cols - rows
    keep = offset >= diagonal if upper else offset <= diagonal
    return where(keep, input, False if input.dtype == "bool" else 0, name=name)   # the input's dtype, as torch


@public
def triu(input, diagonal=0, name=None):
    """torch.triu: elements on and above the `diagonal`-th diagonal of the last two dims (causal masks)."""
    return _triangle(input, int(diagonal), True, name or "triu")


@public
def tril(input, diagonal=0, name=None):
    """torch.tril: elements on and below the `diagonal`-th diagonal of the last two dims."""
    return _triangle(input, int(diagonal), False, name or "tril")
