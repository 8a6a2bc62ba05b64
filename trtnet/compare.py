"""The one comparison of a computed tensor with its reference (trtnet.check's layer rows and outputs, trtnet.build's
engine check): the largest error relative to the reference's largest magnitude, with non-finite values, dtype
and shape differences named. Indices, and what they select, compare by the scores they choose between: a top-k
may take tied candidates in another order than PyTorch, which is no error. numpy only."""
from functools import cached_property

import numpy as np

DEFAULT_TOL = 1e-4  # relative to each tensor's largest magnitude: fp32 through ~50 layers stays well below it
_CHUNK = 1 << 22    # elements per block where every row of a score tensor is searched


def compare(actual, expected, tol=DEFAULT_TOL, selected=None):
    """{"max_abs", "rel", "top1", "note"}: max abs error, relative error (to the reference's largest magnitude),
    top-1 agreement for 2-D float outputs (None elsewhere) and what else differs ("" when nothing).

    `selected` (`Indices` or `Gathered`) says which top-k choice the tensor carries; differences there are
    accepted where the choice fell between tied scores. A relative error above `tol` means a mismatch."""
    a, e = np.asarray(actual), np.asarray(expected)
    notes = [] if _kind(a) == _kind(e) else [f"dtype {a.dtype}, reference {e.dtype}"]
    if a.shape != e.shape:
        return _metrics(float("inf"), 1.0, None, [f"shape {a.shape}, reference {e.shape}"] + notes)
    if selected is not None:
        return _metrics(*selected.errors(a, e, notes), None, notes)
    max_abs, scale = errors(a, e, notes)
    return _metrics(max_abs, scale, top1(a, e, tol * scale), notes)


def _metrics(max_abs, scale, top1, notes):
    return {"max_abs": max_abs, "rel": max_abs / scale if scale else max_abs, "top1": top1, "note": "; ".join(notes)}


def _kind(a):
    """ml_dtypes' bfloat16 and float8 types are floats too (numpy calls them kind "V")."""
    return "f" if a.dtype.kind in "fc" or a.dtype.name.startswith(("bfloat", "float")) else \
        "b" if a.dtype.kind == "b" else "i"


def _work(a, e):
    """Both as one float type: float32 where that holds them exactly (no float64 copies of big tensors)."""
    exact = all(x.dtype.itemsize == 1 or x.dtype.kind == "f" and x.dtype.itemsize <= 4 for x in (a, e))
    t = np.float32 if exact else np.float64
    return a.astype(t, copy=False), e.astype(t, copy=False)


def errors(actual, expected, notes):
    """(max abs error, reference's largest finite magnitude); NaN or inf where the other has none is named in
    `notes` and counts as an infinite error."""
    if not actual.size:
        return 0.0, 0.0
    a, e = (x.reshape(-1) for x in _work(actual, expected))   # 0-D too: diff below is an array to assign into
    with np.errstate(invalid="ignore"):   # inf - inf is NaN, sorted out below
        diff = np.abs(a - e)
    worst = float(diff.max())
    if np.isfinite(worst):
        return worst, float(np.abs(e).max())
    finite = np.isfinite(e)
    for name, test in (("NaN", np.isnan), ("inf", np.isinf)):
        got, want = int(test(a).sum()), int(test(e).sum())
        if got or want:
            notes.append(f"{name} at {got} positions, reference {want}")
    diff[(a == e) | (np.isnan(a) & np.isnan(e))] = 0   # the same inf, or NaN on both sides, agrees
    diff[np.isnan(diff)] = np.inf
    return float(diff.max()), float(np.abs(e[finite]).max()) if finite.any() else 0.0


def top1(a, e, eps):
    """Share of rows whose largest value sits where the reference's does, or on a score tied with it."""
    if a.ndim != 2 or _kind(a) != "f" or not a.size:
        return None
    picked = np.take_along_axis(e, a.argmax(-1)[:, None], -1)[:, 0]
    return float((picked >= e.max(-1) - eps).mean())


class Pick:
    """The indices a top-k (TensorRT's TOPK: topk, sort, argmax, argmin, max/min with indices) chose along `axis`
    of `scores` (the reference's where it has them), largest first unless not `largest`; `got`: the network's
    own choice, as the TOPK output it. Scores closer than `tol` times their largest magnitude are tied."""

    def __init__(self, scores, axis, largest, got, tol=DEFAULT_TOL):
        self.source, self.largest, self.got, self.tol = scores, largest, np.asarray(got).astype(np.int64), tol
        self.axis = axis % self.got.ndim

    @cached_property
    def scores(self):
        s = np.asarray(self.source)
        return s if self.largest else -s

    @cached_property
    def scale(self):
        finite = np.abs(self.scores[np.isfinite(self.scores)])
        return float(finite.max()) if finite.size else 0.0

    @property
    def eps(self):
        return self.tol * self.scale

    def at(self, index):
        """The scores at `index` (laid out as the TOPK's output); inf where an index is out of range."""
        n = self.scores.shape[self.axis]
        inside = (index >= 0) & (index < n)
        picked = np.take_along_axis(self.scores, np.where(inside, index, 0), self.axis).astype(np.float64)
        return np.where(inside, picked, np.inf)

    def anywhere(self, got, want):
        """Per position, the smallest difference between the scores at `got` and at `want` over every row (for
        tensors whose positions no longer line up with the TOPK's rows)."""
        rows = np.moveaxis(self.scores, self.axis, -1).reshape(-1, self.scores.shape[self.axis])
        n = rows.shape[1]
        pairs, where = np.unique(np.stack([got, want]), axis=1, return_inverse=True)
        best = np.full(pairs.shape[1], np.inf)
        inside = np.flatnonzero((pairs >= 0).all(0) & (pairs < n).all(0))
        step = max(1, _CHUNK // max(len(rows), 1))
        for i in range(0, len(inside), step):
            j = inside[i:i + step]
            gap = np.abs(rows[:, pairs[0, j]].astype(np.float64) - rows[:, pairs[1, j]])
            best[j] = gap.min(0)
        return best[where.reshape(-1)]

    @cached_property
    def ambiguous(self):
        """Index values the network chose among tied scores (see tied)."""
        return np.unique(self.got[self.tied])

    @cached_property
    def tied(self):
        """The positions of the network's choice that belong to the top k (within tolerance) and share their score
        with another candidate: a chosen neighbour in score order, or the best one left out."""
        s = self.at(self.got)
        order = np.argsort(-s, axis=self.axis, kind="stable")
        gap = np.abs(np.diff(np.take_along_axis(s, order, self.axis), axis=self.axis)) <= self.eps
        pad = [(0, 0)] * s.ndim
        near = np.pad(gap, pad[:self.axis] + [(1, 0)] + pad[self.axis + 1:]) | \
            np.pad(gap, pad[:self.axis] + [(0, 1)] + pad[self.axis + 1:])
        tied = np.empty_like(near)
        np.put_along_axis(tied, order, near, self.axis)
        n, k = self.scores.shape[self.axis], s.shape[self.axis]
        if k < n:
            ranked = np.partition(self.scores, [n - k - 1, n - k], axis=self.axis)
            left, kth = (np.take(ranked, [i], self.axis) for i in (n - k - 1, n - k))
            tied = (tied | (np.abs(s - left) <= self.eps)) & (s >= kth - self.eps)
        return tied


class Indices:
    """A tensor of indices a `Pick` chose: `rows` when laid out as the TOPK's output (cast or reshaped), else its
    positions no longer tell the rows and a pair of indices counts as tied when their scores are in some row."""

    def __init__(self, pick, rows):
        self.pick, self.rows = pick, rows

    def errors(self, a, e, notes):
        """Errors in score units: where the indices differ, between the scores at either."""
        pick = self.pick
        got, want = a.astype(np.int64).reshape(-1), e.astype(np.int64).reshape(-1)
        differ = np.flatnonzero(got != want)
        if not differ.size:
            return 0.0, 0.0
        if self.rows:
            shape = pick.got.shape
            gap = np.abs(pick.at(got.reshape(shape)) - pick.at(want.reshape(shape))).reshape(-1)[differ]
        else:
            gap = pick.anywhere(got[differ], want[differ])
        gap[np.isnan(gap)] = np.inf   # both indices out of range
        tied = int((gap <= pick.eps).sum())
        if tied:
            notes.append(f"{tied} positions differ between tied scores (accepted)")
        if tied < len(differ):
            notes.append(f"{len(differ) - tied} positions pick an index whose score differs")
        return float(gap.max(initial=0.0)), pick.scale


class Gathered:
    """Values a gather took at `index` (the network's) along `axis` of `data` (the reference's, None where it has
    none); `element`: GatherMode.ELEMENT (torch.gather), else DEFAULT (index_select). Where the index is one of
    tied candidates, the value compares with the reference's data at the network's index (no data: it passes);
    `inner` (Indices) where the data are themselves chosen indices; `mask`: the index's tied positions where the
    index was computed from the top-k's (see Tied), not taken from it."""

    def __init__(self, data, index, axis, element, pick, inner=None, mask=None):
        self.data, self.index, self.axis, self.element = data, np.asarray(index).astype(np.int64), axis, element
        self.pick, self.inner, self.mask = pick, inner, mask

    def ties(self):
        """Positions of the index that hold one of tied candidates."""
        return np.isin(self.index, self.pick.ambiguous) if self.mask is None else self.mask.reshape(self.index.shape)

    def taken(self):
        """The reference's data at the network's indices, and the positions whose index is one of tied candidates
        (both laid out as the gather's output)."""
        data = np.asarray(self.data)
        axis, tied = self.axis % data.ndim, self.ties()
        n = data.shape[axis]
        index = np.where(self.index < 0, self.index + n, self.index).clip(0, max(n - 1, 0))
        if self.element:
            data = data[tuple(slice(None) if i == axis else slice(0, s) for i, s in enumerate(index.shape))]
            return np.take_along_axis(data, index, axis), tied
        out = np.take(data, index, axis)
        tied = tied.reshape((1,) * axis + tied.shape + (1,) * (data.ndim - axis - 1))
        return out, np.broadcast_to(tied, out.shape)

    def errors(self, a, e, notes):
        if self.inner is None:
            max_abs, scale = errors(a, e, [])
            if max_abs <= self.pick.tol * scale:
                return max_abs, scale
        if self.data is not None:
            out, tied = self.taken()
            out, tied = out.reshape(e.shape).astype(e.dtype), tied.reshape(e.shape)
            swapped = int((tied & (out != e)).sum())
            e = np.where(tied, out, e)
        else:
            tied = self.ties().reshape(e.shape) if self.element else \
                np.zeros(e.shape, bool)
            swapped = int((tied & (a != e)).sum())
            e = np.where(tied, a, e)
        if swapped:
            notes.append(f"{swapped} positions hold other tied candidates (accepted" +
                         (", checked against the reference's data at those indices)" if self.data is not None
                          else ")"))
        return self.inner.errors(a, e, notes) if self.inner is not None else errors(a, e, notes)


class Tied:
    """A tensor computed from a top-k's indices by index arithmetic (floor division, remainder, products and sums
    with constants), casts, slices and concatenation: `mask` (laid out as the tensor) marks the positions whose
    value follows from an index the network chose among tied scores, where another value is no error."""

    def __init__(self, pick, mask):
        self.pick, self.mask = pick, mask

    def errors(self, a, e, notes):
        tied = self.mask.reshape(e.shape)
        swapped = int((tied & (a != e)).sum())
        if swapped:
            notes.append(f"{swapped} positions hold values of other tied candidates (accepted)")
        return errors(a, np.where(tied, a, e), notes)


def unordered_rows(graph):
    """Names of the graph's outputs whose rows come in no documented order (an NMS layer's selected rows: TensorRT
    documents none), compared as sets through `sorted_rows`."""
    return {o.name for o in graph.outputs if o.op == "nms"}


def sorted_rows(rows):
    """Rows in lexicographic order, -1 padding rows after the others: the same set of rows gives the same array."""
    rows = np.asarray(rows)
    pad = (rows < 0).all(axis=-1)
    key = np.lexsort(rows.T[::-1]) if rows.ndim == 2 and len(rows) else np.arange(len(rows))
    key = key[np.argsort(pad[key], kind="stable")]
    return rows[key]
