"""PyTorch meaning of shape ops."""
import torch

from ..shape import evaluate
from .core import needs_sizes, ref

needs_sizes("reshape", "slice", "expand")


@ref("reshape")
def _reshape(n, x, env):
    return x.reshape(tuple(evaluate(d, env) for d in n.attrs["shape"]))


@ref("permute")
def _permute(n, x):
    return x.permute(*n.attrs["dims"])


@ref("slice")
def _slice(n, x, env):
    for axis, (start, size, step) in enumerate(zip(n.attrs["starts"], n.shape, n.attrs["steps"])):
        start, size = evaluate(start, env), evaluate(size, env)
        x = x.narrow(axis, start, (size - 1) * step + 1 if size else 0)[(slice(None),) * axis + (slice(None, None, step),)]
    return x


@ref("concat")
def _concat(n, *xs):
    return torch.cat(xs, dim=n.attrs["axis"])


@ref("expand")
def _expand(n, x, env):
    return x.expand(tuple(evaluate(d, env) for d in n.shape))
