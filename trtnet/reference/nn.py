"""PyTorch meaning of layers with weights and matrix ops."""
import torch
import torch.nn.functional as F

from .core import ref, t


@ref("fc")
def _fc(n, x):
    b = n.params.get("bias")
    return F.linear(x, t(n.params["weight"]), None if b is None else t(b))


@ref("softmax")
def _softmax(n, x):
    return F.softmax(x, dim=n.attrs["dim"])


@ref("log_softmax")
def _log_softmax(n, x):
    return F.log_softmax(x, dim=n.attrs["dim"])


@ref("bn")
def _bn(n, x):
    p = {k: t(v) for k, v in n.params.items()}
    return F.batch_norm(x, p["running_mean"], p["running_var"], p["weight"], p["bias"], False, 0.0, n.attrs["eps"])


@ref("layer_norm")
def _layer_norm(n, x):
    axes = n.attrs["axes"]
    last = tuple(range(x.dim() - len(axes), x.dim()))
    y = x.movedim(axes, last)
    w, b = (t(n.params[k]) if k in n.params else None for k in ("weight", "bias"))
    y = F.layer_norm(y, tuple(y.shape[-len(axes):]), w, b, n.attrs["eps"])
    return y.movedim(last, axes)


@ref("matmul")
def _matmul(n, a, b):
    return torch.matmul(a, b)
