"""PyTorch meaning of reductions."""
import torch

from .core import ref

_SIMPLE = {"sum": torch.sum, "mean": torch.mean, "amax": torch.amax, "amin": torch.amin, "all": torch.all,
           "any": torch.any, "logsumexp": torch.logsumexp}


@ref(*_SIMPLE)
def _simple(n, x):
    axes = n.attrs["axes"]
    return _SIMPLE[n.op](x, axes, keepdim=n.attrs["keepdim"]) if axes else x


@ref("prod")
def _prod(n, x):
    for a in sorted(n.attrs["axes"], reverse=True):   # torch.prod takes one dim
        x = torch.prod(x, a, keepdim=n.attrs["keepdim"])
    return x


@ref("argmax", "argmin")
def _arg(n, x):
    fn = torch.argmax if n.op == "argmax" else torch.argmin
    axis = n.attrs["axis"]
    return fn(x, keepdim=n.attrs["keepdim"]) if axis is None else fn(x, axis, keepdim=n.attrs["keepdim"])


@ref("max", "min")
def _max(n, x):
    return tuple((torch.max if n.op == "max" else torch.min)(x, n.attrs["axis"], keepdim=n.attrs["keepdim"]))


@ref("topk")
def _topk(n, x):
    a = n.attrs
    return tuple(torch.topk(x, a["k"], a["axis"], largest=a["largest"], sorted=True))


@ref("cumsum")
def _cumsum(n, x):
    return torch.cumsum(x, n.attrs["axis"])


@ref("var", "std")
def _var(n, x):
    fn = torch.var if n.op == "var" else torch.std
    return fn(x, n.attrs["axes"], correction=n.attrs["correction"], keepdim=n.attrs["keepdim"])
