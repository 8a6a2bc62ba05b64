"""Normalization layers beyond batch and layer norm: group, instance and RMS norm, and F.normalize."""
import numpy as np

from .core import Layer, fmt, op, static_int
from .shape import reshape

MACHINE_EPS = {"float32": 2.0 ** -23, "float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}   # torch.finfo(dtype).eps


def _affine(L, w, c, shape=None):
    """The optional per-channel weight and bias of view `w` (None: no affine weights)."""
    if w is None:
        return {}
    shape = shape or (c,)
    params = {k: L.param(w, k, shape, required=k == "weight") for k in ("weight", "bias")}
    return {k: v for k, v in params.items() if v is not None}


@op("group_norm", num_groups=int, eps=float)
def group_norm(x, num_groups, w=None, eps=1e-5, name=None):
    """nn.GroupNorm on (N, C, ...): channels split into num_groups groups, each normalised over its channels
    and all later dims; `w` holds the per-channel "weight" and "bias" (C,), or None."""
    L = Layer("group_norm", x, name or (w.prefix if w is not None else None))
    L.float_input(x)
    if x.rank < 2:
        L.fail(f"expects an (N, C, ...) input, got shape {fmt(x.shape)}")
    c = static_int(L, x.shape[1], "the channel count")
    if not isinstance(num_groups, (int, np.integer)) or num_groups < 1 or c % num_groups:
        L.fail(f"num_groups {num_groups!r} must divide the {c} channels")
    params = _affine(L, w, c)
    y = x if x.rank > 2 else reshape(x, (*x.shape, 1), f"{L.name}/unsqueeze")
    out = L.emit([y], y.shape, dict(num_groups=int(num_groups), eps=float(eps)), params)
    return out if x.rank > 2 else reshape(out, x.shape, f"{L.name}/squeeze")


@op("instance_norm", eps=float)
def instance_norm(x, w=None, eps=1e-5, name=None):
    """nn.InstanceNorm1d/2d/3d in inference without running statistics: each (sample, channel) normalised
    over the spatial dims; `w` None or the affine "weight" and "bias" (C,)."""
    L = Layer("instance_norm", x, name or (w.prefix if w is not None else None))
    L.float_input(x)
    if x.rank < 3:
        L.fail(f"expects an (N, C, L...) input, got shape {fmt(x.shape)}")
    c = static_int(L, x.shape[1], "the channel count")
    return L.emit([x], x.shape, dict(eps=float(eps)), _affine(L, w, c))


@op("rms_norm", eps=float, axes=tuple)
def rms_norm(x, w=None, normalized_shape=None, eps=None, name=None):
    """F.rms_norm over the last len(normalized_shape) dims (default: the weight's shape, else the last dim):
    x / sqrt(mean(x^2) + eps) * weight; eps None is the dtype's machine epsilon, as in torch."""
    L = Layer("rms_norm", x, name or (w.prefix if w is not None else None))
    L.float_input(x)
    raw = w.get("weight") if w is not None else None
    if normalized_shape is None:
        normalized_shape = raw.shape if raw is not None and raw.ndim else (x.shape[-1],)
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if not 0 < len(shape) <= x.rank:
        L.fail(f"normalized_shape {shape} does not fit the input {fmt(x.shape)}")
    shape = tuple(static_int(L, d, "a normalized dimension") for d in shape)
    last = tuple(static_int(L, d, "a normalized dimension") for d in x.shape[x.rank - len(shape):])
    if last != shape:
        L.fail(f"normalized_shape {shape} does not match the input's last dims {fmt(x.shape)}")
    eps = MACHINE_EPS[x.dtype] if eps is None else float(eps)
    params = {} if w is None else {"weight": L.param(w, "weight", shape)}
    return L.emit([x], x.shape, dict(eps=eps, axes=tuple(range(x.rank - len(shape), x.rank))), params)


@op("normalize", p=float, dim=int, eps=float)
def normalize(input, p=2.0, dim=1, eps=1e-12, name=None):
    """F.normalize: input / max(||input||_p over dim, eps), torch's vector norms: p 0 counts the nonzero elements,
    +-inf takes the largest (smallest) magnitude, other p sum(|x|^p)^(1/p) (2 and 1 without powers)."""
    L = Layer("normalize", input, name)
    L.float_input(input)
    return L.emit([input], input.shape, dict(p=float(p), dim=L.axis(input, dim), eps=float(eps)))


@op("local_response_norm", size=int, alpha=float, beta=float, k=float)
def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0, name=None):
    """F.local_response_norm (AlexNet): x / (k + alpha * mean of x^2 over `size` neighbouring channels)^beta,
    the window zero-padded at the channel ends and always divided by `size`."""
    L = Layer("local_response_norm", input, name)
    L.float_input(input)
    if input.rank < 3:
        L.fail(f"expects an (N, C, L...) input, got shape {fmt(input.shape)}")
    if not isinstance(size, (int, np.integer)) or size < 1:
        L.fail(f"size must be a positive int, got {size!r}")
    return L.emit([input], input.shape, dict(size=int(size), alpha=float(alpha), beta=float(beta), k=float(k)))
