"""PyTorch meaning of group, instance and RMS norm and F.normalize."""
import torch.nn.functional as F

from .core import ref, t


def _opt(n, key):
    return t(n.params[key]) if key in n.params else None


@ref("group_norm")
def _group_norm(n, x):
    return F.group_norm(x, n.attrs["num_groups"], _opt(n, "weight"), _opt(n, "bias"), n.attrs["eps"])


@ref("instance_norm")
def _instance_norm(n, x):
    return F.instance_norm(x, weight=_opt(n, "weight"), bias=_opt(n, "bias"), eps=n.attrs["eps"])


@ref("rms_norm")
def _rms_norm(n, x):
    k = len(n.attrs["axes"])
    return F.rms_norm(x, tuple(x.shape[-k:]), _opt(n, "weight"), n.attrs["eps"])


@ref("normalize")
def _normalize(n, x):
    return F.normalize(x, n.attrs["p"], n.attrs["dim"], n.attrs["eps"])


@ref("local_response_norm")
def _local_response_norm(n, x):
    a = n.attrs
    return F.local_response_norm(x, a["size"], a["alpha"], a["beta"], a["k"])
