"""PyTorch meaning of indexing ops."""
import torch
import torch.nn.functional as F

from ..shape import evaluate
from .core import TORCH_TYPES, needs_sizes, ref, t

needs_sizes("arange")


@ref("gather")
def _gather(n, x, index):
    return torch.gather(x, n.attrs["dim"], index.long())


@ref("index_select")
def _index_select(n, x, index):
    return torch.index_select(x, n.attrs["dim"], index.long().reshape(-1))


@ref("embedding")
def _embedding(n, ids):
    return F.embedding(ids.long(), t(n.params["weight"]))


@ref("one_hot")
def _one_hot(n, ids):
    return F.one_hot(ids.long(), n.attrs["num_classes"])


@ref("grid_sample")
def _grid_sample(n, x, grid):
    a = n.attrs
    return F.grid_sample(x, grid, a["mode"], a["padding_mode"], a["align_corners"])


@ref("repeat")
def _repeat(n, x):
    return x.repeat(*n.attrs["repeats"])


@ref("flip")
def _flip(n, x):
    return torch.flip(x, n.attrs["dims"])


@ref("roll")
def _roll(n, x):
    return torch.roll(x, n.attrs["shifts"], n.attrs["dims"])


@ref("arange")
def _arange(n, env):
    a = n.attrs
    start, end = (v if isinstance(v, float) else evaluate(v, env) for v in (a["start"], a["end"]))
    return torch.arange(start, end, a["step"], dtype=TORCH_TYPES[n.dtype])
