"""PyTorch meaning of convolution, pooling and resizing."""
import torch.nn.functional as F

from ..shape import evaluate
from .core import needs_sizes, ref, t

needs_sizes("interpolate")

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def convolution(a, x, weight, bias):
    """F.conv1d/2d/3d with a node's attributes; unequal leading and trailing padding through F.pad."""
    pad = [p for pair in zip(a["padding"][::-1], a["post_padding"][::-1]) for p in pair]
    if a["padding"] != a["post_padding"]:
        x, padding = F.pad(x, pad), 0
    else:
        padding = a["padding"]
    return _CONV[len(a["kernel"])](x, weight, bias, a["stride"], padding, a["dilation"], a["groups"])


@ref("conv")
def _conv(n, x):
    b = n.params.get("bias")
    return convolution(n.attrs, x, t(n.params["weight"]), None if b is None else t(b))


@ref("max_pool")
def _max_pool(n, x):
    a = n.attrs
    fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[len(a["kernel"])]
    return fn(x, a["kernel"], a["stride"], a["padding"], a["dilation"], ceil_mode=a["ceil_mode"])


@ref("avg_pool")
def _avg_pool(n, x):
    a = n.attrs
    fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(a["kernel"])]
    extra = {} if a["divisor"] is None else {"divisor_override": a["divisor"]}   # avg_pool1d has none
    return fn(x, a["kernel"], a["stride"], a["padding"], ceil_mode=a["ceil_mode"],
              count_include_pad=a["count_include_pad"], **extra)


@ref("adaptive_avg_pool")
def _adaptive(n, x):
    size = tuple(o if isinstance(o, int) else x.shape[2 + i] for i, o in enumerate(n.attrs["size"]))
    fn = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[len(size)]
    return fn(x, size)


@ref("interpolate")
def _interpolate(n, x, env):
    a = n.attrs
    if a["scales"]:
        kw = dict(scale_factor=a["scales"])
    else:
        kw = dict(size=tuple(evaluate(d, env) for d in a["size"]))
    corners = a["align_corners"] if not a["mode"].startswith("nearest") else None
    return F.interpolate(x, mode=a["mode"], align_corners=corners, antialias=a["antialias"], **kw)


@ref("conv_transpose")
def _conv_transpose(n, x):
    a = n.attrs
    b = n.params.get("bias")
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[len(a["kernel"])]
    return fn(x, t(n.params["weight"]), None if b is None else t(b), a["stride"], a["padding"], a["output_padding"],
              a["groups"], a["dilation"])


@ref("adaptive_max_pool")
def _adaptive_max(n, x):
    size = tuple(o if isinstance(o, int) else x.shape[2 + i] for i, o in enumerate(n.attrs["size"]))
    fn = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}[len(size)]
    return fn(x, size)


@ref("pad")
def _pad(n, x):
    a = n.attrs
    pads = [p for pair in zip(a["before"][::-1], a["after"][::-1]) for p in pair][:2 * a["dims"]]
    value = a["value"] if a["mode"] == "constant" else None
    return F.pad(x, pads, a["mode"], value)
