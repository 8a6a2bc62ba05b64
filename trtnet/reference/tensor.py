"""PyTorch meaning of einsum, sort, scatters and indexing with tensors."""
import torch

from .core import ref


@ref("einsum")
def _einsum(n, *xs):
    return torch.einsum(n.attrs["equation"], *xs)


@ref("sort")
def _sort(n, x):
    return tuple(torch.sort(x, dim=n.attrs["axis"], descending=n.attrs["descending"], stable=True))


@ref("scatter")
def _scatter(n, x, index, src):
    return torch.scatter(x, n.attrs["axis"], index.long(), src)


@ref("index_put")
def _index_put(n, x, index, values):
    return x.index_put(tuple(index.long().unbind(-1)), values)


@ref("index_tensor")
def _index_tensor(n, x, index):
    return x[(slice(None),) * n.attrs["axis"] + (index.long(),)]


@ref("index_nd")
def _index_nd(n, x, index):
    return x[tuple(index.long().unbind(-1))]
