"""Convolution, pooling and resizing over 1, 2 or 3 spatial dimensions (N, C, *spatial)."""
from ..shape import is_static
from .core import Layer, ntuple, op, public, static_int
from .shape import permute, reshape, stack


def _conv_out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _spatial_rank(L, x):
    if x.rank not in (3, 4, 5):
        L.fail(f"expects (N, C, *spatial) with 1 to 3 spatial dims, got shape {x.shape}")
    return x.rank - 2


# conv's attributes, which qconv shares
CONV = dict(kernel=tuple, stride=tuple, padding=tuple, post_padding=tuple, dilation=tuple, groups=int, out=int)


@op("conv", **CONV)
def conv(x, w, out=None, kernel=None, stride=1, padding=0, dilation=1, groups=1, name=None):
    """nn.Conv1d/2d/3d by the input's rank; bias is used when the weights have one. `padding` may be "same"."""
    L = Layer("conv", x, name or w.prefix)
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
    """nn.ConvTranspose1d/2d/3d by the input's rank; weight (in, out / groups, *kernel), bias when present."""
    L = Layer("conv_transpose", x, name or w.prefix)
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
    count_include_pad=bool)
def pool(x, kind, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, count_include_pad=True,
         name=None):
    """Max or average pooling (1-3D by the input's rank) with PyTorch's output sizes (ceil_mode) and padding
    counting; dilation applies to max pooling."""
    L = Layer(f"{kind}_pool" if kind in ("max", "avg") else "max_pool", x, name)
    if kind not in ("max", "avg"):
        L.fail(f"kind must be 'max' or 'avg', got {kind!r}")
    n = _spatial_rank(L, x)
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
        if not is_static(i):
            L.fail("ceil_mode needs static spatial sizes (PyTorch drops a last window that starts in the padding)")
        o = (i + 2 * pi - ext + si - 1) // si + 1
        return o - 1 if (o - 1) * si >= i + pi else o  # PyTorch drops a window starting in the padding

    shape = (*x.shape[:2], *(size(*a) for a in zip(x.shape[2:], k, s, p, d)))
    return L.emit([x], shape, dict(kernel=k, stride=s, padding=p, dilation=d, ceil_mode=bool(ceil_mode),
                                   count_include_pad=bool(count_include_pad)))


@public
def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, name=None):
    """F.max_pool1d/2d/3d."""
    return pool(x, "max", kernel_size, stride, padding, dilation, ceil_mode, name=name)


@public
def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, name=None):
    """F.avg_pool1d/2d/3d."""
    return pool(x, "avg", kernel_size, stride, padding, 1, ceil_mode, count_include_pad, name=name)


@op("adaptive_avg_pool", size=tuple)
def adaptive_avg_pool(x, output_size=1, name=None):
    """nn.AdaptiveAvgPool1d/2d/3d, any output size (uneven or overlapping windows included)."""
    return _adaptive(Layer("adaptive_avg_pool", x, name), x, output_size)


@op("adaptive_max_pool", size=tuple)
def adaptive_max_pool(x, output_size=1, name=None):
    """nn.AdaptiveMaxPool1d/2d/3d (values only), PyTorch's windows [floor(i*I/O), ceil((i+1)*I/O))."""
    return _adaptive(Layer("adaptive_max_pool", x, name), x, output_size)


def _adaptive(L, x, output_size):
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


@op("interpolate", mode=str, size=tuple, scales=(tuple, None), align_corners=bool)
def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, name=None):
    """F.interpolate over the spatial dims: nearest or (bi/tri)linear, by output size or scale factor."""
    L = Layer("interpolate", x, name)
    n = _spatial_rank(L, x)
    modes = ("nearest", {1: "linear", 2: "bilinear", 3: "trilinear"}[n]) + (("bicubic",) if n == 2 else ())
    if mode not in modes:
        L.fail(f"mode must be one of {', '.join(map(repr, modes))} for {n} spatial dims, got {mode!r}")
    if (scale_factor is None) == (size is None):
        L.fail("give exactly one of size= and scale_factor=")
    if mode == "nearest" and align_corners:
        L.fail("align_corners applies to linear and cubic modes only")
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
    if any(is_static(o) and o < 1 for o in out):
        L.fail(f"output size {out} is empty")
    return L.emit([x], (*x.shape[:2], *out), dict(mode=mode, size=out, scales=scales,
                                                  align_corners=bool(align_corners)))


@public
def upsample(x, scale=None, size=None, mode="nearest", align_corners=False, name=None):
    """nn.Upsample's argument order: by scale or size."""
    return interpolate(x, size, scale, mode, align_corners or None, name=name)


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


@op("pad", before=tuple, after=tuple, dims=int, mode=str, value=float)
def pad(input, pad, mode="constant", value=0.0, name=None):
    """F.pad: `pad` holds (before, after) pairs from the last dim backwards; negative values crop. Modes
    other than constant pad the last 1 to 3 dims of a rank k+1 or k+2 input, as PyTorch requires."""
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
                                             value=float(value)))


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
