"""Convolution, pooling and resizing over 1, 2 or 3 spatial dimensions (N, C, *spatial)."""
import numpy as np

from ..shape import is_static
from ..weights import WeightMap
from .core import Layer, ValuesIndices, ntuple, op, public, static_int
from .elementwise import eq, tensor, where
from .reduce import amin
from .shape import permute, reshape, squeeze, stack, unsqueeze


def _conv_out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _spatial_rank(L, x):
    if x.rank not in (3, 4, 5):
        L.fail(f"expects (N, C, *spatial) with 1 to 3 spatial dims, got shape {x.shape}")
    return x.rank - 2


def _weight_unbatched(x, w):
    """Whether x is an unbatched (C, *spatial) input to a convolution with weights `w` of rank x.rank + 1."""
    raw = w.get("weight")
    return x.rank in (2, 3, 4) and raw is not None and raw.ndim == x.rank + 1


# conv's attributes, which qconv shares
CONV = dict(kernel=tuple, stride=tuple, padding=tuple, post_padding=tuple, dilation=tuple, groups=int, out=int)


@op("conv", **CONV)
def conv(x, w, out=None, kernel=None, stride=1, padding=0, dilation=1, groups=1, name=None):
    """nn.Conv1d/2d/3d by the input's rank, or unbatched (C, *spatial) by a weight of rank + 1 as torch reads it;
    bias is used when the weights have one. `padding` may be "same"."""
    L = Layer("conv", x, name or w.prefix)
    if _weight_unbatched(x, w):
        y = conv(unsqueeze(x, 0, name=f"{L.name}/batch"), w, out, kernel, stride, padding, dilation, groups, L.name)
        return squeeze(y, 0, name=f"{L.name}/unbatched")
    n = _spatial_rank(L, x)
    c = static_int(L, x.shape[1], "the input's channel count")
    raw = w.get("weight")
    if raw is not None and raw.ndim == n + 2:
        out = raw.shape[0] if out is None else out
        kernel = raw.shape[2:] if kernel is None else kernel
    if out is None or kernel is None:
        L.fail(f"pass out= and kernel=: '{w.full('weight')}' has no {n + 2}D shape to take them from")
    k, s, d = ntuple(kernel, n), ntuple(stride, n), ntuple(dilation, n)
    if padding == "same":
        if any(v != 1 for v in s):
            L.fail("padding='same' needs stride 1, as in PyTorch")
        total = [di * (ki - 1) for ki, di in zip(k, d)]
        pre = tuple(t // 2 for t in total)
        post = tuple(t - t // 2 for t in total)
    elif padding == "valid":
        pre = post = (0,) * n
    else:
        pre = post = ntuple(padding, n)
    if c % groups or out % groups:
        L.fail(f"groups={groups} must divide input channels {c} and output channels {out}")
    weight = L.param(w, "weight", (out, c // groups, *k))
    bias = L.param(w, "bias", (out,), required=False)
    spatial = []
    for size, ki, si, a, b, di in zip(x.shape[2:], k, s, pre, post, d):
        if is_static(size) and size + a + b < di * (ki - 1) + 1:
            L.fail(f"kernel {k} (dilation {d}) is larger than the padded input {x.shape[2:]}")
        spatial.append((size + a + b - di * (ki - 1) - 1) // si + 1)
    params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    return L.emit([x], (x.shape[0], out, *spatial), dict(kernel=k, stride=s, padding=pre, post_padding=post,
                                                          dilation=d, groups=int(groups), out=int(out)), params)


@op("conv_transpose", kernel=tuple, stride=tuple, padding=tuple, output_padding=tuple, dilation=tuple, groups=int,
    out=int)
def conv_transpose(x, w, out=None, kernel=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                   name=None):
    """nn.ConvTranspose1d/2d/3d by the input's rank, or unbatched as conv; weight (in, out / groups, *kernel), bias
    when present."""
    L = Layer("conv_transpose", x, name or w.prefix)
    if _weight_unbatched(x, w):
        y = conv_transpose(unsqueeze(x, 0, name=f"{L.name}/batch"), w, out, kernel, stride, padding, output_padding,
                           groups, dilation, L.name)
        return squeeze(y, 0, name=f"{L.name}/unbatched")
    n = _spatial_rank(L, x)
    c = static_int(L, x.shape[1], "the input's channel count")
    raw = w.get("weight")
    if raw is not None and raw.ndim == n + 2:
        out = raw.shape[1] * groups if out is None else out
        kernel = raw.shape[2:] if kernel is None else kernel
    if out is None or kernel is None:
        L.fail(f"pass out= and kernel=: '{w.full('weight')}' has no {n + 2}D shape to take them from")
    k, s, p, d = ntuple(kernel, n), ntuple(stride, n), ntuple(padding, n), ntuple(dilation, n)
    op_ = ntuple(output_padding, n)
    if c % groups or out % groups:
        L.fail(f"groups={groups} must divide input channels {c} and output channels {out}")
    if any(o >= max(si, di) for o, si, di in zip(op_, s, d)):
        L.fail(f"output_padding {op_} must be smaller than the stride {s} or the dilation {d}")
    weight = L.param(w, "weight", (c, out // groups, *k))
    bias = L.param(w, "bias", (out,), required=False)
    spatial = [(i - 1) * si - 2 * pi + di * (ki - 1) + oi + 1
               for i, ki, si, pi, di, oi in zip(x.shape[2:], k, s, p, d, op_)]
    if any(is_static(v) and v < 1 for v in spatial):
        L.fail(f"output size {tuple(spatial)} is empty")
    params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    return L.emit([x], (x.shape[0], out, *spatial), dict(kernel=k, stride=s, padding=p, output_padding=op_,
                                                          dilation=d, groups=int(groups), out=int(out)), params)


@op("max_pool", "avg_pool", kernel=tuple, stride=tuple, padding=tuple, dilation=tuple, ceil_mode=bool,
    count_include_pad=bool, divisor=(int, None))
def pool(x, kind, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, count_include_pad=True,
         divisor_override=None, dims=None, name=None):
    """Max or average pooling with PyTorch's output sizes (ceil_mode), padding counting and divisor_override;
    dilation applies to max pooling. `dims` spatial dims (F.max_pool2d: 2) take a batched (N, C, *spatial) or an
    unbatched (C, *spatial) input, as torch does; by default, a kernel_size tuple's length or the input's rank - 2."""
    L = Layer(f"{kind}_pool" if kind in ("max", "avg") else "max_pool", x, name)
    if kind not in ("max", "avg"):
        L.fail(f"kind must be 'max' or 'avg', got {kind!r}")
    if _unbatched(L, x, kernel_size, dims):
        y = pool(unsqueeze(x, 0, name=f"{L.name}/batch"), kind, kernel_size, stride, padding, dilation, ceil_mode,
                 count_include_pad, divisor_override, name=L.name)
        return squeeze(y, 0, name=f"{L.name}/unbatched")
    n = _spatial_rank(L, x)
    if divisor_override is not None and (kind != "avg" or n == 1 or int(divisor_override) < 1):
        L.fail(f"divisor_override={divisor_override} must be a positive int of 2-D or 3-D average pooling, as in torch")
    k, p, d = ntuple(kernel_size, n), ntuple(padding, n), ntuple(dilation, n)
    s = ntuple(kernel_size if stride is None or stride == [] else stride, n)
    ceil_mode = bool(ceil_mode) and any(v != 1 for v in s)   # stride 1: both modes give the same windows
    if kind == "avg" and any(v != 1 for v in d):
        L.fail("average pooling has no dilation")
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        L.fail(f"padding {p} must be at most half the kernel {k}")

    def size(i, ki, si, pi, di):
        ext = di * (ki - 1) + 1
        if is_static(i) and i + 2 * pi < ext:
            L.fail(f"kernel {k} is larger than the padded input {x.shape[2:]}")
        if not ceil_mode:
            return (i + 2 * pi - ext) // si + 1
        o = (i + 2 * pi - ext + si - 1) // si + 1
        if is_static(i):
            return o - 1 if (o - 1) * si >= i + pi else o  # PyTorch drops a window starting in the padding
        # a run-time size: no window can start in the padding where the stride is at most ext - padding
        why = f"stride {si} > kernel extent {ext} - padding {pi}" if si > ext - pi else \
            "padding counted in averages" if kind == "avg" and count_include_pad and pi else \
            "divisor_override" if divisor_override is not None else None
        if why:
            L.fail(f"ceil_mode on the run-time size '{i}' with {why} needs a static size")
        return o

    shape = (*x.shape[:2], *(size(*a) for a in zip(x.shape[2:], k, s, p, d)))
    return L.emit([x], shape, dict(kernel=k, stride=s, padding=p, dilation=d, ceil_mode=bool(ceil_mode),
                                   count_include_pad=bool(count_include_pad),
                                   divisor=None if divisor_override is None else int(divisor_override)))


def _unbatched(L, x, kernel_size, dims):
    """Whether x is an unbatched (C, *spatial) input of pooling over `dims` spatial dims (torch's F.*_pool{dims}d),
    those given, a kernel_size tuple's length, or else x.rank - 2."""
    n = dims or (len(kernel_size) if isinstance(kernel_size, (tuple, list)) else None)
    if n is None:
        return False
    if n not in (1, 2, 3) or x.rank not in (n + 1, n + 2):
        L.fail(f"{n}-D pooling expects (N, C, *spatial) or (C, *spatial) with {n} spatial dims, got shape {x.shape}")
    return x.rank == n + 1


@public
def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, dims=None,
             name=None):
    """F.max_pool1d/2d/3d (`dims` spatial dims: see pool); return_indices gives (values, indices) as torch does."""
    values = pool(x, "max", kernel_size, stride, padding, dilation, ceil_mode, dims=dims, name=name)
    if not return_indices:
        return values
    n = dims or (len(kernel_size) if isinstance(kernel_size, (tuple, list)) else x.rank - 2)
    return ValuesIndices(values, _pool_indices(x, values, n, kernel_size, stride, padding, dilation))


def _pool_indices(x, values, n, kernel_size, stride, padding, dilation):
    """Each window's flat index (into the input's spatial dims) of its maximum, the first in scan order on ties as
    in torch: of one strided slice per kernel offset, the least constant index where the slice equals the window's
    maximum (padding reads -inf and never wins). Static spatial sizes."""
    L = Layer("max_pool", x, f"{values.name}/indices")
    spatial, out = x.shape[-n:], values.shape[-n:]
    if not all(map(is_static, (*spatial, *out))):
        L.fail(f"return_indices needs static spatial sizes, got {spatial}")
    k, p, d = ntuple(kernel_size, n), ntuple(padding, n), ntuple(dilation, n)
    s = ntuple(kernel_size if stride is None or stride == [] else stride, n)
    after = [max((o - 1) * si + di * (ki - 1) + 1 - i - pi, 0)
             for o, si, di, ki, i, pi in zip(out, s, d, k, spatial, p)]
    pads = [v for pi, a in zip(p[::-1], after[::-1]) for v in (pi, a)]
    xp = pad(x, pads, value=-np.inf, name=f"{L.name}/pad") if any(pads) else x
    lead = (slice(None),) * (x.rank - n)
    taps, table = [], []
    for offset in np.ndindex(*k):
        taps.append(xp[lead + tuple(slice(o * di, o * di + (m - 1) * si + 1, si)
                                    for o, di, m, si in zip(offset, d, out, s))])
        pos = np.meshgrid(*(np.arange(m) * si - pi + o * di for m, si, pi, o, di in zip(out, s, p, offset, d)),
                          indexing="ij")
        inside = np.all([(q >= 0) & (q < i) for q, i in zip(pos, spatial)], axis=0)
        table.append(np.where(inside, np.ravel_multi_index([np.clip(q, 0, i - 1) for q, i in zip(pos, spatial)],
                                                           spatial), np.iinfo(np.int64).max))
    a = x.rank - n
    hit = eq(stack(taps, a, name=f"{L.name}/taps"), unsqueeze(values, a, name=f"{L.name}/max"), name=f"{L.name}/hit")
    index = where(hit, tensor(np.stack(table), x, "int64", name=f"{L.name}/table"), np.iinfo(np.int64).max,
                  name=f"{L.name}/candidates")
    return amin(index, a, name=L.name)


@public
def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None,
             dims=None, name=None):
    """F.avg_pool1d/2d/3d (`dims` spatial dims: see pool)."""
    return pool(x, "avg", kernel_size, stride, padding, 1, ceil_mode, count_include_pad, divisor_override, dims,
                name=name)


@op("adaptive_avg_pool", size=tuple)
def adaptive_avg_pool(x, output_size=1, dims=None, name=None):
    """nn.AdaptiveAvgPool1d/2d/3d, any output size (uneven or overlapping windows included); `dims` spatial dims
    as pool takes them (unbatched inputs)."""
    return _adaptive(Layer("adaptive_avg_pool", x, name), x, output_size, dims, adaptive_avg_pool)


@op("adaptive_max_pool", size=tuple)
def adaptive_max_pool(x, output_size=1, dims=None, name=None):
    """nn.AdaptiveMaxPool1d/2d/3d (values only), PyTorch's windows [floor(i*I/O), ceil((i+1)*I/O))."""
    return _adaptive(Layer("adaptive_max_pool", x, name), x, output_size, dims, adaptive_max_pool)


def _adaptive(L, x, output_size, dims, fn):
    if _unbatched(L, x, output_size, dims):
        y = fn(unsqueeze(x, 0, name=f"{L.name}/batch"), output_size, name=L.name)
        return squeeze(y, 0, name=f"{L.name}/unbatched")
    n = _spatial_rank(L, x)
    size = tuple(x.shape[2 + i] if o is None else o for i, o in enumerate(
        (output_size,) * n if not isinstance(output_size, (tuple, list)) else output_size))
    if len(size) != n or any(is_static(o) and o < 1 for o in size):
        L.fail(f"output size {output_size} does not fit {n} spatial dims")
    for i, o in zip(x.shape[2:], size):
        if not is_static(i) and i != o and o != 1:
            L.fail(f"adaptive pooling of the run-time size '{i}' to {o} needs a static input size")
    return L.emit([x], (*x.shape[:2], *size), dict(size=size))


@public
def global_avg_pool(x, name=None):
    """Average over all spatial dims, keeping them as size 1 (nn.AdaptiveAvgPool2d(1))."""
    return adaptive_avg_pool(x, 1, name=name)


@op("interpolate", mode=str, size=tuple, scales=(tuple, None), align_corners=bool, antialias=bool)
def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False, name=None):
    """F.interpolate over the spatial dims: nearest, nearest-exact, (bi/tri)linear, bicubic or area (adaptive average
    pooling to the output size), by output size or scale factor. A scale maps coordinates by itself unless
    recompute_scale_factor, which maps them by the lengths' ratio as size= does."""
    L = Layer("interpolate", x, name)
    n = _spatial_rank(L, x)
    modes = ("nearest", "nearest-exact", {1: "linear", 2: "bilinear", 3: "trilinear"}[n]) + \
        (("bicubic",) if n == 2 else ()) + ("area",)
    if mode not in modes:
        L.fail(f"mode must be one of {', '.join(map(repr, modes))} for {n} spatial dims, got {mode!r}")
    if (scale_factor is None) == (size is None):
        L.fail("give exactly one of size= and scale_factor=")
    if mode in ("nearest", "nearest-exact", "area") and align_corners:
        L.fail("align_corners applies to linear and cubic modes only")
    if antialias and mode not in ("bilinear", "bicubic"):
        L.fail(f"antialias=True applies to modes 'bilinear' and 'bicubic' of (N, C, H, W) inputs, got {mode!r}")
    if recompute_scale_factor and size is not None:
        L.fail("recompute_scale_factor=True needs scale_factor=, not size=")
    if size is not None:
        out = ntuple(size, n) if not isinstance(size, (list, tuple)) or all(is_static(v) for v in size) else tuple(size)
        scales = None
    else:
        scales = tuple(float(v) for v in ((scale_factor,) * n if not isinstance(scale_factor, (tuple, list))
                                          else scale_factor))
        out = []
        for i, sc in zip(x.shape[2:], scales):
            if is_static(i):
                out.append(int(i * sc // 1))
            elif float(sc).is_integer():
                out.append(i * int(sc))
            else:
                L.fail(f"a fractional scale {sc} of the run-time size '{i}'")
        out = tuple(out)
        scales = None if recompute_scale_factor or mode == "area" else scales
    if any(is_static(o) and o < 1 for o in out):
        L.fail(f"output size {out} is empty")
    if mode == "area":
        return adaptive_avg_pool(x, out, name=L.name)
    if antialias and not all(map(is_static, (*x.shape[2:], *out))):
        L.fail(f"antialias=True needs static spatial sizes, got {x.shape[2:]} to {out}")
    return L.emit([x], (*x.shape[:2], *out), dict(mode=mode, size=out, scales=scales,
                                                  align_corners=bool(align_corners), antialias=bool(antialias)))


@public
def upsample(x, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
             name=None):
    """nn.Upsample's argument order."""
    return interpolate(x, size, scale_factor, mode, align_corners, recompute_scale_factor, name=name)


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


@op("pad", before=tuple, after=tuple, dims=int, mode=str, value=float)
def pad(input, pad, mode="constant", value=0.0, name=None):
    """F.pad: `pad` holds (before, after) pairs from the last dim backwards; negative values crop; value None is 0.
    Modes other than constant pad the last 1 to 3 dims of a rank k+1 or k+2 input, as PyTorch requires."""
    L = Layer("pad", input, name)
    pads = tuple(int(v) for v in pad)
    k = len(pads) // 2
    if len(pads) % 2 or k > input.rank:
        L.fail(f"pad {pads} must hold (before, after) pairs for at most {input.rank} dims")
    if mode not in _PAD_MODES:
        L.fail(f"mode must be one of {', '.join(_PAD_MODES)}, got {mode!r}")
    if mode != "constant" and k > 3:
        L.fail(f"{mode} padding pads at most 3 dims, got pads for {k}")
    if mode != "constant" and input.rank not in (k + 1, k + 2):
        L.fail(f"{mode} padding of {k} dims needs a rank-{k + 1} or rank-{k + 2} input, got {input.rank}")
    before = [0] * input.rank
    after = [0] * input.rank
    for j in range(k):
        before[-1 - j], after[-1 - j] = pads[2 * j], pads[2 * j + 1]
    shape = []
    for d, b, a in zip(input.shape, before, after):
        if is_static(d) and (d + b + a < 0 or (mode == "reflect" and max(b, a) >= d)
                             or (mode == "circular" and max(b, a) > d)):
            L.fail(f"{mode} padding ({b}, {a}) does not fit a dim of size {d}")
        shape.append(d + b + a)
    return L.emit([input], shape, dict(before=tuple(before), after=tuple(after), dims=k, mode=mode,
                                             value=float(value or 0)))


@public
def unfold(input, kernel_size, dilation=1, padding=0, stride=1, name=None):
    """F.unfold (im2col) on (N, C, H, W): each sliding window's values as a column, (N, C*kh*kw, windows), channel
    major as in PyTorch: one strided slice per kernel offset, stacked."""
    L = Layer("slice", input, name or "unfold")
    L.rank(input, 4)
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = (ntuple(v, 2) for v in (kernel_size, dilation, padding, stride))
    x = pad(input, (pw, pw, ph, ph)) if ph or pw else input
    n, c, h, w = x.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    if any(is_static(o) and o < 1 for o in (oh, ow)):
        L.fail(f"kernel {(kh, kw)} (dilation {(dh, dw)}) is larger than the padded input {(h, w)}")
    cols = [x[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
            for i in range(kh) for j in range(kw)]
    return reshape(stack(cols, 2, name=f"{L.name}/windows"), (n, c * kh * kw, oh * ow), L.name)


@public
def pixel_shuffle(input, upscale_factor, name=None):
    """F.pixel_shuffle: (*, C*r*r, H, W) -> (*, C, H*r, W*r)."""
    L = Layer("reshape", input, name or "pixel_shuffle")
    r = int(upscale_factor)
    if input.rank < 3:
        L.fail(f"expects (*, C*r*r, H, W), got shape {input.shape}")
    *lead, c, h, w = input.shape
    if is_static(c) and c % (r * r):
        L.fail(f"channels {c} are not divisible by upscale_factor**2 = {r * r}")
    b = len(lead)
    y = reshape(input, (*lead, c // (r * r), r, r, h, w), name=f"{L.name}/split")
    y = permute(y, (*range(b), b, b + 3, b + 1, b + 4, b + 2), name=f"{L.name}/permute")
    return reshape(y, (*lead, c // (r * r), h * r, w * r), name=L.name)


@public
def pixel_unshuffle(input, downscale_factor, name=None):
    """F.pixel_unshuffle: (*, C, H*r, W*r) -> (*, C*r*r, H, W)."""
    L = Layer("reshape", input, name or "pixel_unshuffle")
    r = int(downscale_factor)
    if input.rank < 3:
        L.fail(f"expects (*, C, H*r, W*r), got shape {input.shape}")
    *lead, c, h, w = input.shape
    if any(is_static(v) and v % r for v in (h, w)):
        L.fail(f"height {h} and width {w} must be divisible by downscale_factor {r}")
    b = len(lead)
    y = reshape(input, (*lead, c, h // r, r, w // r, r), name=f"{L.name}/split")
    y = permute(y, (*range(b), b, b + 2, b + 4, b + 1, b + 3), name=f"{L.name}/permute")
    return reshape(y, (*lead, c * r * r, h // r, w // r), name=L.name)


@public
def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1, name=None):
    """F.fold (col2im), unfold's adjoint: columns (N, C*kh*kw, L) or (C*kh*kw, L) summed back into (N, C, H, W) or
    (C, H, W). The columns as their (Lh, Lw) grid of windows go through a transposed convolution, grouped per
    channel, whose constant one-hot kernel puts column c*kh*kw + i*kw + j at kernel offset (i, j): stride, padding
    and dilation carry over as they are, and overlapping windows add up."""
    L = Layer("conv_transpose", input, name or "fold")
    if input.rank not in (2, 3):
        L.fail(f"expects (N, C*kh*kw, L) or (C*kh*kw, L), got shape {input.shape}")
    x = unsqueeze(input, 0, name=f"{L.name}/batch") if input.rank == 2 else input
    size = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    h, w = (static_int(L, v, "the output_size") for v in size)
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = (ntuple(v, 2) for v in (kernel_size, dilation, padding, stride))
    ck = static_int(L, x.shape[1], "the column size C*kh*kw")
    if ck % (kh * kw):
        L.fail(f"the column size {ck} is not divisible by the kernel's {kh}*{kw} offsets")
    lh, lw = (_conv_out(o, k, s, p, d) for o, k, s, p, d in ((h, kh, sh, ph, dh), (w, kw, sw, pw, dw)))
    if lh < 1 or lw < 1 or is_static(x.shape[2]) and x.shape[2] != lh * lw:
        L.fail(f"{x.shape[2]} columns, expected one per window of output_size {(h, w)}: {lh}*{lw}")
    kernel = np.zeros((ck, 1, kh, kw), np.float32)
    kernel.reshape(ck // (kh * kw), kh * kw, kh * kw)[:, range(kh * kw), range(kh * kw)] = 1
    grid = reshape(x, (x.shape[0], ck, lh, lw), name=f"{L.name}/windows")
    extra = (h - ((lh - 1) * sh - 2 * ph + dh * (kh - 1) + 1), w - ((lw - 1) * sw - 2 * pw + dw * (kw - 1) + 1))
    out = conv_transpose(grid, WeightMap({"weight": kernel}, source=L.name), stride=(sh, sw), padding=(ph, pw),
                         output_padding=extra, groups=ck // (kh * kw), dilation=(dh, dw), name=L.name)
    return out if input.rank == 3 else squeeze(out, 0, name=f"{L.name}/unbatched")
