"""Execute a TensorRT ``INetworkDefinition`` on the CPU, layer by layer.

Each layer is read back through TensorRT's Python network API and computed with torch CPU
ops, following the semantics TensorRT documents for it (NvInfer.h and the TensorRT operator
reference) rather than any framework's conventions: pooling excludes padding from averages by
default, softmax/reduce/normalization axes are bit masks, scale is ``(x*scale + shift)^power``,
padding modes follow the PaddingMode formulas, and so on. The point is to catch mistakes in
emitted networks without a GPU, so anything that cannot be reproduced exactly raises
``UnsupportedLayerError`` instead of being approximated.

Precision: float16/bfloat16/FP8 tensors are computed in float32 and rounded to the tensor's type
at each layer output; every output takes the type TensorRT inferred for it (FP8 E4M3 values are
held as torch.float8_e4m3fn, INT4 ones as int8). Inputs and results of bfloat16, FP8 and INT4 are
ml_dtypes arrays (bfloat16, float8_e4m3fn, int4), converted by their bits or integer values. The output shapes
TensorRT inferred (where known at definition time) are checked against the computed ones.
"""
import heapq
import math
from collections import ChainMap
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ..backend import trt
from ..registry import Registry
from ..tensors import weights_array

__all__ = ["run_network", "UnsupportedLayerError"]


class UnsupportedLayerError(NotImplementedError):
    """A layer type, or an attribute value of a layer, that the interpreter does not implement."""


class _Unsupported(Exception):
    """Raised inside a layer function; run_network adds the layer's name and type."""


def _need(cond, what):
    if not cond:
        raise _Unsupported(what)


_LAYERS = Registry("interpreter kernel")   # LayerType name -> (fn, class name to read the layer back as)


def _layer(kind, cls):
    """Register `fn(layer, *inputs)` for the LayerType named `kind`, read back as class `cls`.

    Keyed by name so that importing this module does not choose the TensorRT flavour."""
    def register(fn):
        _LAYERS.add(kind, (fn, cls), fn)
        return fn
    return register


@lru_cache(maxsize=None)
def _torch_types(module):
    D = module.DataType
    # INT4 values live in int8 tensors (torch has no int4); FP8 is E4M3 without infinities.
    return {D.FLOAT: torch.float32, D.HALF: torch.float16, D.BF16: torch.bfloat16, D.INT8: torch.int8,
            D.INT32: torch.int32, D.INT64: torch.int64, D.BOOL: torch.bool, D.UINT8: torch.uint8,
            D.FP8: torch.float8_e4m3fn, D.INT4: torch.int8}


def _dtype(trt_type):
    types = _torch_types(trt())
    if trt_type not in types:
        raise _Unsupported(f"data type {trt_type}")
    return types[trt_type]


_LOW = (torch.float16, torch.bfloat16, torch.float8_e4m3fn)


def _ints(dims):
    return tuple(map(int, dims))


def _bits(mask, rank):
    """Axes named by a TensorRT bit mask (bit i = dimension i)."""
    return [i for i in range(rank) if mask >> i & 1]


def _w(array):
    """Layer weights (a numpy view of TensorRT's memory) as a torch tensor, float16 and bfloat16 widened."""
    x = _weights(array)
    return x.float() if x.dtype in _LOW else x


def _weights(w):
    """TensorRT weights as a torch view of TensorRT's memory (bfloat16 ones by their bits)."""
    try:
        a = weights_array(w)
    except ValueError as e:
        raise _Unsupported(str(e)) from None
    return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16) if a.dtype.name == "bfloat16" else \
        torch.from_numpy(a)


def _same_rank(*xs):
    ranks = {x.dim() for x in xs}
    if len(ranks) > 1:
        raise ValueError(f"inputs of ranks {sorted(ranks)}: TensorRT broadcasting needs equal ranks")


def _pad(x, pads, value=0.0):
    """Pad (or crop, where negative) the trailing dims by [(before, after), ...]."""
    flat = [p for pair in reversed(pads) for p in pair]
    return F.pad(x, flat, value=value) if any(flat) else x


# --- convolution, deconvolution, pooling -------------------------------------------------

def _windows(layer, sizes, extents, strides):
    """(B, A, O) per spatial dim from the PaddingMode formulas (DK = dilated kernel or window).

    EXPLICIT_ROUND_DOWN/UP: O = floor/ceil((I + B + A - DK) / S) + 1 with B, A = pre/post padding;
    SAME_UPPER/LOWER: O = ceil(I / S), P = floor((I - 1) / S) * S + DK - I split with the odd
    element after (UPPER) or before (LOWER); the mode takes precedence over pre/post padding.
    """
    PM = trt().PaddingMode
    mode = layer.padding_mode
    out = []
    if mode in (PM.SAME_UPPER, PM.SAME_LOWER):
        for i, k, s in zip(sizes, extents, strides):
            p = (i - 1) // s * s + k - i
            _need(p >= 0, f"padding_mode {mode} with stride {s} > window {k} (negative SAME padding)")
            b = p // 2 if mode == PM.SAME_UPPER else p - p // 2
            out.append((b, p - b, -(-i // s)))
        return out
    _need(mode in (PM.EXPLICIT_ROUND_DOWN, PM.EXPLICIT_ROUND_UP), f"padding_mode {mode}")
    for i, k, s, b, a in zip(sizes, extents, strides, _ints(layer.pre_padding), _ints(layer.post_padding)):
        span = i + b + a - k
        if span < 0:
            raise ValueError(f"window {k} larger than padded input {i + b + a}")
        out.append((b, a, (span // s if mode == PM.EXPLICIT_ROUND_DOWN else -(-span // s)) + 1))
    return out


def _extent_pads(sizes, extents, strides, windows):
    """Padding that makes every output window (including round-up ones) fall inside the input."""
    return [(b, (o - 1) * s + k - i - b) for i, k, s, (b, _, o) in zip(sizes, extents, strides, windows)]


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _spatial(x, window):
    n = len(window)
    _need(n in _CONV, f"{n}-D window")
    _need(x.dim() == n + 2, f"{n}-D window on a rank-{x.dim()} input (expects N, C + {n} spatial dims)")
    return n


def _kernel_bias(layer, w, b):
    """Kernel and bias from inputs 1/2 where given (e.g. by the ONNX parser), else from weights."""
    w = _memo(layer, "kernel", lambda: _w(layer.kernel)) if w is None else w
    b = _memo(layer, "bias", lambda: _w(layer.bias)) if b is None else b
    return w, (b.reshape(-1) if b.numel() else None)


def _conv_geometry(layer, x):
    """(spatial rank, kernel, stride, dilation, the padding torch's convolution takes (None: it needs a padded
    copy), the padding of that copy, output sizes) for input x's shape."""
    k = _ints(layer.kernel_size_nd)
    n = _spatial(x, k)
    s, d = _ints(layer.stride_nd), _ints(layer.dilation_nd)
    dk = [1 + di * (ki - 1) for ki, di in zip(k, d)]
    windows = _windows(layer, x.shape[2:], dk, s)
    pads = _extent_pads(x.shape[2:], dk, s, windows)
    same = [p for p, _ in pads] if all(p >= max(q, 0) for p, q in pads) else None   # symmetric: extra windows cut
    return n, k, s, d, same, pads, tuple(o for _, _, o in windows)


@_layer("CONVOLUTION", "IConvolutionLayer")
def _convolution(layer, x, w=None, b=None):
    """Grouped cross-correlation; kernel in GKCRS order (torch's layout), zero padding per PaddingMode."""
    n, k, s, d, same, pads, out = _memo(layer, x.shape, lambda: _conv_geometry(layer, x))
    w, b = _kernel_bias(layer, w, b)
    g = layer.num_groups
    w = w.reshape(layer.num_output_maps, x.shape[1] // g, *k)
    if same is None:
        return _CONV[n](_pad(x, pads), w, b, s, 0, d, g)
    if b is not None and math.prod(out) >= _GEMM_BIAS_AREA and k == s == d == (1,) * n and torch.get_num_threads() == 1:
        return _CONV[n](x, w, None, s, same, d, g).add_(b.reshape(-1, *(1,) * n))
    y = _CONV[n](x, w, b, s, same, d, g)
    return y if y.shape[2:] == out else y[(..., *(slice(0, o) for o in out))]


# On one thread torch computes a 1x1 convolution as a GEMM into an output first filled with the bias, a broadcast
# copy slower than adding the bias afterwards where the output is large (ResNet-50 at 224x224: 1% of a run).
_GEMM_BIAS_AREA = 56 * 56


@_layer("DECONVOLUTION", "IDeconvolutionLayer")
def _deconvolution(layer, x, w=None, b=None):
    """Transposed convolution; kernel in CKRS order. The full output (I - 1) * S + DK is trimmed
    by pre/post padding (EXPLICIT modes) or by P = max(DK - S, 0) split per SAME_UPPER/LOWER."""
    PM = trt().PaddingMode
    k = _ints(layer.kernel_size_nd)
    n = _spatial(x, k)
    w, b = _kernel_bias(layer, w, b)
    g, s, d = layer.num_groups, _ints(layer.stride_nd), _ints(layer.dilation_nd)
    w = w.reshape(x.shape[1], layer.num_output_maps // g, *k)
    y = _CONV_T[n](x, w, b, s, 0, 0, g, d)
    mode = layer.padding_mode
    if mode in (PM.SAME_UPPER, PM.SAME_LOWER):
        trims = []
        for ki, di, si in zip(k, d, s):
            p = max(1 + di * (ki - 1) - si, 0)
            trims.append((p // 2, p - p // 2) if mode == PM.SAME_UPPER else (p - p // 2, p // 2))
    else:
        _need(mode in (PM.EXPLICIT_ROUND_DOWN, PM.EXPLICIT_ROUND_UP), f"padding_mode {mode}")
        trims = list(zip(_ints(layer.pre_padding), _ints(layer.post_padding)))
    _need(all(p >= 0 and q >= 0 for p, q in trims), "negative deconvolution padding")
    return _pad(y, [(-p, -q) for p, q in trims])


def _window_counts(sizes, windows, extents, strides, include_padding):
    """Per output position, how many window elements overlap the unpadded input (or, with
    include_padding, the input padded by B and A), as a broadcastable tensor."""
    counts = None
    for i, (b, a, o), k, s in zip(sizes, windows, extents, strides):
        lo, hi = (-b, i + a) if include_padding else (0, i)
        start = torch.arange(o, dtype=torch.float32) * s - b
        c = (torch.clamp(start + k, max=hi) - torch.clamp(start, min=lo)).clamp(min=0)
        counts = c if counts is None else counts[..., None] * c
    return counts


_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@_layer("POOLING", "IPoolingLayer")
def _pooling(layer, x):
    """Pooling over the trailing window dims. Max pads with -inf; average divides the window sum
    by its overlap with the unpadded input (average_count_excludes_padding, default True) or
    with the padded input; MAX_AVERAGE_BLEND = (1 - blend) * max + blend * average."""
    PT = trt().PoolingType
    k, s = _ints(layer.window_size_nd), _ints(layer.stride_nd)
    n = len(k)
    _need(n in _MAX_POOL and x.dim() > n, f"{n}-D window on a rank-{x.dim()} input")
    kind = layer.type
    _need(kind in (PT.MAX, PT.AVERAGE, PT.MAX_AVERAGE_BLEND), f"pooling type {kind}")
    lead, sizes = x.shape[:-n], x.shape[-n:]
    windows = _windows(layer, sizes, k, s)
    pads = _extent_pads(sizes, k, s, windows)
    x = x.reshape(1, -1, *sizes)
    if kind == PT.MAX and all(k_ >= 2 * p >= 2 * q for (p, q), k_ in zip(pads, k)):   # no padded copy
        mx = _MAX_POOL[n](x, k, s, [p for p, _ in pads])[(..., *(slice(0, o) for _, _, o in windows))]
    elif kind != PT.AVERAGE:
        mx = _MAX_POOL[n](_pad(x, pads, -math.inf), k, s)
    if kind != PT.MAX:
        total = _AVG_POOL[n](_pad(x, pads), k, s) * math.prod(k)
        avg = total / _window_counts(sizes, windows, k, s, not layer.average_count_excludes_padding)
    y = mx if kind == PT.MAX else avg if kind == PT.AVERAGE else \
        (1 - layer.blend_factor) * mx + layer.blend_factor * avg
    return y.reshape(*lead, *y.shape[2:])


# --- pointwise ------------------------------------------------------------------------------

_ACTIVATIONS = {
    "RELU": lambda x, a, b: torch.relu(x),
    "SIGMOID": lambda x, a, b: torch.sigmoid(x),
    "TANH": lambda x, a, b: torch.tanh(x),
    "LEAKY_RELU": lambda x, a, b: torch.where(x >= 0, x, a * x),
    "ELU": lambda x, a, b: torch.where(x >= 0, x, a * torch.expm1(x)),
    "SELU": lambda x, a, b: torch.where(x > 0, b * x, b * (a * torch.exp(x) - a)),
    "SOFTSIGN": lambda x, a, b: x / (1 + x.abs()),
    "SOFTPLUS": lambda x, a, b: a * torch.logaddexp(b * x, torch.zeros_like(x)),
    "CLIP": lambda x, a, b: torch.clamp(torch.clamp(x, max=b), min=a),
    "HARD_SIGMOID": lambda x, a, b: torch.clamp(a * x + b, 0, 1),
    "SCALED_TANH": lambda x, a, b: a * torch.tanh(b * x),
    "THRESHOLDED_RELU": lambda x, a, b: torch.where(x > a, x, torch.zeros_like(x)),
    "GELU_ERF": lambda x, a, b: 0.5 * x * (1 + torch.erf(x * math.sqrt(0.5))),
    "GELU_TANH": lambda x, a, b: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (0.044715 * x ** 3 + x))),
}


@_layer("ACTIVATION", "IActivationLayer")
def _activation(layer, x):
    """ActivationType formulas as NvInfer.h states them, with the layer's alpha and beta."""
    kind = layer.type.name
    _need(kind in _ACTIVATIONS, f"activation {layer.type}")
    return _ACTIVATIONS[kind](x, layer.alpha, layer.beta)


_IN_PLACE = {}   # LayerType name -> fn(layer, *inputs) writing into input 0 where it can, else None


def _in_place(kind):
    """Register a variant of a kernel that computes into its first input, used where no later layer reads
    that input: the same values without a new buffer (as PyTorch's ReLU(inplace=True) and `out += x`)."""
    def register(fn):
        _IN_PLACE[kind] = fn
        return fn
    return register


@_in_place("ACTIVATION")
def _activation_into(layer, x):
    return torch.relu_(x) if layer.type.name == "RELU" else None


@_layer("PARAMETRIC_RELU", "IParametricReLULayer")
def _parametric_relu(layer, x, slope):
    """x >= 0 ? x : slope * x, slope broadcast to the input."""
    _same_rank(x, slope)
    return torch.where(x >= 0, x, slope * x)


@_layer("SCALE", "IScaleLayer")
def _scale(layer, x):
    """(x * scale + shift) ^ power; empty weights mean scale 1, shift 0, power 1. Coefficients are
    one value (UNIFORM), one per channel_axis index (CHANNEL), or per [channel_axis:] (ELEMENTWISE)."""
    SM = trt().ScaleMode
    axis = layer.channel_axis % x.dim()
    shape = {SM.UNIFORM: (), SM.CHANNEL: (x.shape[axis],) + (1,) * (x.dim() - axis - 1),
             SM.ELEMENTWISE: tuple(x.shape[axis:])}[layer.mode]
    scale, shift, power = (_w(c) for c in (layer.scale, layer.shift, layer.power))
    if scale.numel():
        x = x * scale.reshape(shape)
    if shift.numel():
        x = x + shift.reshape(shape)
    if power.numel():
        x = torch.pow(x, power.reshape(shape))
    return x


_BINARY = {
    "SUM": torch.add, "PROD": torch.mul, "MAX": torch.maximum, "MIN": torch.minimum, "SUB": torch.sub,
    "POW": torch.pow, "AND": torch.logical_and, "OR": torch.logical_or, "XOR": torch.logical_xor,
    "EQUAL": torch.eq, "GREATER": torch.gt, "LESS": torch.lt,
    "FLOOR_DIV": lambda a, b: torch.div(a, b, rounding_mode="floor"),
    # The operator reference gives DIV as input1 / input2; on integers it truncates like C (and
    # like ONNX Div, which the ONNX parser maps onto it).
    "DIV": lambda a, b: a / b if a.is_floating_point() else torch.div(a, b, rounding_mode="trunc"),
}


@_layer("ELEMENTWISE", "IElementWiseLayer")
def _elementwise(layer, a, b):
    """Binary op; equal ranks, a dimension of 1 broadcasts against the other input's."""
    _same_rank(a, b)
    op = layer.op.name
    _need(op in _BINARY, f"operation {layer.op}")
    return _BINARY[op](a, b)


@_in_place("ELEMENTWISE")
def _elementwise_into(layer, a, b):
    same = a.dtype == b.dtype and a.is_floating_point() and a.dim() == b.dim()
    if same and layer.op.name == "SUM" and all(m in (1, n) for n, m in zip(a.shape, b.shape)):   # b broadcasts
        return a.add_(b)
    return None


_UNARY = {
    "EXP": torch.exp, "LOG": torch.log, "SQRT": torch.sqrt, "RECIP": torch.reciprocal, "ABS": torch.abs,
    "NEG": torch.neg, "SIN": torch.sin, "COS": torch.cos, "TAN": torch.tan, "SINH": torch.sinh,
    "COSH": torch.cosh, "ASIN": torch.asin, "ACOS": torch.acos, "ATAN": torch.atan, "ASINH": torch.asinh,
    "ACOSH": torch.acosh, "ATANH": torch.atanh, "CEIL": torch.ceil, "FLOOR": torch.floor, "ERF": torch.erf,
    "NOT": torch.logical_not, "SIGN": torch.sign, "ROUND": torch.round, "ISINF": torch.isinf,
    "ISNAN": torch.isnan,
}


@_layer("UNARY", "IUnaryLayer")
def _unary(layer, x):
    """UnaryOperation; ROUND is round-half-to-even (torch.round)."""
    op = layer.op.name
    _need(op in _UNARY, f"operation {layer.op}")
    return _UNARY[op](x)


@_layer("CAST", "ICastLayer")
def _cast(layer, x):
    """Conversion to to_type; float to integer truncates (the operator reference's example)."""
    return x.to(_dtype(layer.to_type))


_QRANGE = {"INT8": 127, "INT4": 7, "FP8": 448}


def _qscale(layer, x, scale, zero_point):
    """The scale broadcast to x: a single value (shape (), (1,), ...: per tensor, whatever `axis` says, as
    TensorRT builds it), 1-D along `axis` (per axis), or of x's rank with x's dims divided into blocks
    (block_shape, -1 meaning the whole dim; inferred from the shapes where unset). The zero point must be all
    zeros (symmetric quantization only)."""
    _need(zero_point is None or not bool(zero_point.float().any()), "non-zero zero point")
    if scale.numel() == 1:
        return scale.reshape(())
    if scale.dim() == 1 and x.dim() != 1:
        axis = layer.axis % x.dim()
        if scale.numel() != x.shape[axis]:
            raise ValueError(f"{scale.numel()} scales for axis {axis} of length {x.shape[axis]}")
        return scale.reshape([-1 if d == axis else 1 for d in range(x.dim())])
    if scale.dim() != x.dim():
        raise ValueError(f"rank-{scale.dim()} scale for a rank-{x.dim()} input")
    try:
        blocks = [n if b == -1 else b for b, n in zip(_ints(layer.block_shape), x.shape)]
    except RuntimeError:  # no block shape set: TensorRT derives it from the two shapes
        blocks = [n // s if s and n % s == 0 else 0 for n, s in zip(x.shape, scale.shape)]
    if [b * s for b, s in zip(blocks, scale.shape)] != list(x.shape):
        raise ValueError(f"scale {tuple(scale.shape)} does not tile input {tuple(x.shape)} in blocks {blocks}")
    for d, b in enumerate(blocks):
        scale = scale.repeat_interleave(b, d)
    return scale


@_layer("QUANTIZE", "IQuantizeLayer")
def _quantize(layer, x, scale, zero_point=None):
    """clamp(round_half_to_even(x / scale)) into INT8 [-128, 127], INT4 [-8, 7] or FP8 E4M3
    (nearest-even on its grid, saturating at +-448); x / scale in float32."""
    kind = layer.to_type.name
    _need(kind in _QRANGE, f"quantization to {layer.to_type}")
    y = x.float() / _qscale(layer, x, scale.float(), zero_point)
    top = _QRANGE[kind]
    if kind == "FP8":
        return y.clamp(-top, top).to(torch.float8_e4m3fn)
    return torch.round(y).clamp(-top - 1, top)


@_layer("DEQUANTIZE", "IDequantizeLayer")
def _dequantize(layer, x, scale, zero_point=None):
    """x * scale (zero point 0), the product formed exactly (float64) and rounded once to the
    output type."""
    return x.double() * _qscale(layer, x, scale.double(), zero_point)


@_layer("IDENTITY", "IIdentityLayer")
def _identity(layer, x):
    """Copies the input; a type change (weakly typed networks) happens at the output."""
    return x


@_layer("SELECT", "ISelectLayer")
def _select(layer, cond, a, b):
    """numpy.where(cond, a, b) with multidirectional broadcasting over equal ranks."""
    _same_rank(cond, a, b)
    return torch.where(cond, a, b)


# --- tensors and shapes ---------------------------------------------------------------------

@_layer("CONSTANT", "IConstantLayer")
def _constant(layer):
    """The weights laid out in `shape`; the output type is the weights' type. A view of the network's weights,
    not a copy: no kernel writes into a constant (see _FRESH), and run_network hands out copies of them."""
    return _weights(layer.weights).reshape(_ints(layer.shape))


@_layer("SHAPE", "IShapeLayer")
def _shape(layer, x):
    """The input's dimensions as a 1-D Int64 tensor."""
    return torch.tensor(x.shape, dtype=torch.int64)


@_layer("SHUFFLE", "IShuffleLayer")
def _shuffle(layer, x, dims=None):
    """first_transpose, reshape, second_transpose. Permutations follow numpy.transpose (output
    dim i = input dim perm[i]). Reshape dims come from input 1 when present; 0 copies the
    transposed input's dimension at that index when zero_is_placeholder (default), -1 is inferred."""
    y = x.permute(_ints(layer.first_transpose)[:x.dim()])
    new = dims.tolist() if dims is not None else layer.reshape_dims
    if new is not None:
        new = [int(v) for v in new]
        if layer.zero_is_placeholder:
            new = [y.shape[i] if v == 0 else v for i, v in enumerate(new)]
        y = y.reshape(new)
    return y.permute(_ints(layer.second_transpose)[:y.dim()])


@_layer("CONCATENATION", "IConcatenationLayer")
def _concatenation(layer, *xs):
    """Concatenation along `axis`."""
    return torch.cat(xs, dim=layer.axis)


@_layer("SQUEEZE", "ISqueezeLayer")
def _squeeze(layer, x, axes=None):
    """Removes the unit dimensions at `axes` (input 1; negative counts from the back). Without
    axes, the dimensions that are 1 in the network definition go; dynamic ones stay, and must
    not be 1 at run time (the output rank is fixed when the network is defined)."""
    if axes is None:
        static = _ints(layer.get_input(0).shape)
        if any(d < 0 and n == 1 for d, n in zip(static, x.shape)):
            raise ValueError(f"a dynamic dimension of {static} is 1 at run time: squeezing it would change the rank")
        return x.reshape([n for d, n in zip(static, x.shape) if d != 1])
    drop = {a % x.dim() for a in axes.tolist()}
    if any(x.shape[a] != 1 for a in drop):
        raise ValueError(f"squeezing non-unit dimensions {sorted(drop)} of {tuple(x.shape)}")
    return x.reshape([d for i, d in enumerate(x.shape) if i not in drop])


@_layer("UNSQUEEZE", "IUnsqueezeLayer")
def _unsqueeze(layer, x, axes):
    """Inserts unit dimensions at `axes` (input 1), positions in the output's rank."""
    rank = x.dim() + axes.numel()
    add = {a % rank for a in axes.tolist()}
    dims = iter(x.shape)
    return x.reshape([1 if i in add else next(dims) for i in range(rank)])


def _sample_indices(mode, idx, size):
    """Map coordinates per SampleMode; returns (indices, in-bounds mask or None)."""
    SM = trt().SampleMode
    inside = (idx >= 0) & (idx < size)
    if mode == SM.STRICT_BOUNDS:
        if not bool(inside.all()):
            raise ValueError(f"slice coordinates {idx.tolist()} outside [0, {size}) in STRICT_BOUNDS mode")
        return idx, None
    if mode == SM.WRAP:
        return torch.remainder(idx, size), None
    if mode == SM.CLAMP:
        return idx.clamp(0, size - 1), None
    if mode == SM.FILL:
        return idx.clamp(0, size - 1), inside
    _need(mode == SM.REFLECT, f"slice mode {mode}")
    if size == 1:
        return torch.zeros_like(idx), None
    period = 2 * size - 2
    c = torch.remainder(idx.abs(), period)
    return torch.where(c >= size, period - c, c), None


@_layer("SLICE", "ISliceLayer")
def _slice(layer, x, start=None, size=None, stride=None, fill=None, axes=None):
    """output[y] = input[y * stride + start] per axis, out-of-bounds coordinates per SampleMode
    (STRICT_BOUNDS error, WRAP, CLAMP, FILL with input 4 or 0, REFLECT about the edge elements).
    start/size/stride/axes come from inputs 1/2/3/5 where given; unsliced axes are kept whole."""
    rank = x.dim()
    start = start.tolist() if start is not None else _ints(layer.start)
    size = size.tolist() if size is not None else _ints(layer.shape)
    stride = stride.tolist() if stride is not None else _ints(layer.stride)
    axes = axes.tolist() if axes is not None else layer.axes
    st, sz, sd = [0] * rank, list(x.shape), [1] * rank
    for j, a in enumerate(range(rank) if axes is None else axes):
        st[a % rank], sz[a % rank], sd[a % rank] = start[j], size[j], stride[j]
    mask = None
    for d in range(rank):
        idx = st[d] + sd[d] * torch.arange(sz[d])
        if sd[d] > 0 and (sz[d] == 0 or (st[d] >= 0 and int(idx[-1]) < x.shape[d])):
            x = x[(slice(None),) * d + (slice(st[d], st[d] + sd[d] * (sz[d] - 1) + 1, sd[d]),)]
            continue
        if x.shape[d] == 0:
            _need(layer.mode != trt().SampleMode.FILL, "FILL sampling of an empty dimension")
            raise ValueError(f"sampling {sz[d]} elements from an empty dimension")
        idx, inside = _sample_indices(layer.mode, idx, x.shape[d])
        x = x.index_select(d, idx)
        if inside is not None:
            inside = inside.reshape([-1 if i == d else 1 for i in range(rank)])
            mask = inside if mask is None else mask & inside
    if mask is None:
        return x
    value = fill.reshape(()).to(x.dtype) if fill is not None else torch.zeros((), dtype=x.dtype)
    return torch.where(mask, x, value)


@_layer("PADDING", "IPaddingLayer")
def _padding(layer, x):
    """Zero padding of the last two dims by pre/post_padding_nd; negative values crop."""
    pre, post = _ints(layer.pre_padding_nd), _ints(layer.post_padding_nd)
    _need(len(pre) == 2 and len(post) == 2 and x.dim() >= 2, f"padding of {len(pre)} dims")
    return _pad(x, list(zip(pre, post)))


@_layer("REVERSE_SEQUENCE", "IReverseSequenceLayer")
def _reverse_sequence(layer, x, lengths):
    """For each index b along batch_axis, the first lengths[b] elements along sequence_axis are
    reversed and the rest kept."""
    ba, sa = layer.batch_axis % x.dim(), layer.sequence_axis % x.dim()
    n = x.shape[sa]
    lengths = lengths.long()
    if bool(((lengths < 0) | (lengths > n)).any()):
        raise ValueError(f"sequence lengths {lengths.tolist()} outside [0, {n}]")
    pos = torch.arange(n).reshape(1, -1)
    src = torch.where(pos < lengths.reshape(-1, 1), lengths.reshape(-1, 1) - 1 - pos, pos)  # [batch, seq]
    shape = [1] * x.dim()
    shape[ba], shape[sa] = src.shape
    src = (src if ba < sa else src.T).reshape(shape).expand(x.shape)
    return torch.gather(x, sa, src)


@_layer("ONE_HOT", "IOneHotLayer")
def _one_hot(layer, idx, values, depth):
    """values[1] where the index along the new `axis` equals indices (negative ones count from
    depth, as ONNX OneHot), values[0] elsewhere; indices outside [-depth, depth) give all off."""
    d = int(depth)
    axis = layer.axis % (idx.dim() + 1)
    idx = idx.long()
    idx = torch.where(idx < 0, idx + d, idx)
    shape = [-1 if i == axis else 1 for i in range(idx.dim() + 1)]
    hot = idx.unsqueeze(axis) == torch.arange(d).reshape(shape)
    return torch.where(hot, values[1], values[0])


def _gather_index(idx, size):
    """Negative indices count from the back; out-of-bounds ones gather zero."""
    idx = idx.long()
    idx = torch.where(idx < 0, idx + size, idx)
    inside = (idx >= 0) & (idx < size)
    return idx.clamp(0, max(size - 1, 0)), inside


@_layer("GATHER", "IGatherLayer")
def _gather(layer, data, idx):
    """DEFAULT (ONNX Gather: data dims with `axis` replaced by the indices' dims), ELEMENT
    (ONNX GatherElements) and ND (ONNX GatherND); zero is stored for out-of-bounds indices.
    num_elementwise_dims e > 0 makes the leading e dims of data and indices shared batch dims,
    each batch element gathering from its own slice (DEFAULT: e = 1 with axis past it; ND: ONNX
    GatherND's batch_dims)."""
    GM = trt().GatherMode
    mode, e = layer.mode, layer.num_elementwise_dims
    if mode == GM.ELEMENT:
        axis = layer.axis % data.dim()
        i, inside = _gather_index(idx, data.shape[axis])
        return torch.where(inside, torch.gather(data, axis, i), torch.zeros((), dtype=data.dtype))
    _need(mode in (GM.DEFAULT, GM.ND), f"gather mode {mode}")
    if not e:
        return _gather_one(mode, data, idx, layer.axis % max(data.dim(), 1))
    _need(mode == GM.ND or (e == 1 and layer.axis >= 1), f"num_elementwise_dims {e} with axis {layer.axis}")
    if data.shape[:e] != idx.shape[:e]:
        raise ValueError(f"elementwise dims {tuple(data.shape[:e])} and {tuple(idx.shape[:e])} differ")
    axis = layer.axis - e if mode == GM.DEFAULT else 0
    parts = [_gather_one(mode, d, i, axis) for d, i in
             zip(data.reshape(-1, *data.shape[e:]), idx.reshape(-1, *idx.shape[e:]))]
    out = torch.stack(parts)
    return out.reshape(*data.shape[:e], *out.shape[1:])


def _gather_one(mode, data, idx, axis):
    """A DEFAULT or ND gather without shared leading dims."""
    if mode == trt().GatherMode.DEFAULT:
        i, inside = _gather_index(idx, data.shape[axis])
        out = data.index_select(axis, i.reshape(-1)).reshape(data.shape[:axis] + idx.shape + data.shape[axis + 1:])
        inside = inside.reshape((1,) * axis + idx.shape + (1,) * (data.dim() - axis - 1))
    else:
        parts = [_gather_index(idx[..., j], data.shape[j]) for j in range(idx.shape[-1])]
        out = data[tuple(p for p, _ in parts)]
        inside = torch.stack([m for _, m in parts]).all(0)
        inside = inside.reshape(inside.shape + (1,) * (out.dim() - inside.dim()))
    return torch.where(inside, out, torch.zeros((), dtype=out.dtype))


def _scatter_index(idx, size):
    """Indices within [0, size); IScatterLayer documents no meaning for others."""
    idx = idx.long()
    _need(bool((idx >= 0).all()), "negative scatter indices")
    if bool((idx >= size).any()):
        raise ValueError(f"scatter index {int(idx.max())} outside [0, {size})")
    return idx


@_layer("SCATTER", "IScatterLayer")
def _scatter(layer, data, idx, updates):
    """A copy of data with elements replaced by updates: ELEMENT (ONNX ScatterElements) writes
    updates[J] to J with J[axis] replaced by indices[J]; ND (ONNX ScatterND) writes the slices
    updates[i...] to data[indices[i...]]. Repeated targets are undefined in TensorRT: an error here."""
    SM = trt().ScatterMode
    out = data.clone()
    if layer.mode == SM.ELEMENT:
        axis = layer.axis % data.dim()
        idx = _scatter_index(idx, data.shape[axis])
        out.scatter_(axis, idx, updates)
        target = torch.zeros_like(out, dtype=torch.int64).scatter_add_(axis, idx, torch.ones_like(idx))
    else:
        _need(layer.mode == SM.ND, f"scatter mode {layer.mode}")
        where = tuple(_scatter_index(idx[..., j], data.shape[j]) for j in range(idx.shape[-1]))
        out[where] = updates
        target = torch.zeros(data.shape[:len(where)], dtype=torch.int64).index_put_(
            where, torch.ones(where[0].shape, dtype=torch.int64), accumulate=True)
    if bool((target > 1).any()):
        raise ValueError("scatter writes an element more than once (undefined in TensorRT)")
    return out


@_layer("FILL", "IFillLayer")
def _fill(layer, dims=None, alpha=None, beta=None):
    """LINSPACE: element [i, j, ...] = alpha + beta[0] * i + beta[1] * j + ...; a static beta b is
    the 1-D Beta = [b]. Dimensions/alpha/beta come from inputs 0/1/2 where given."""
    _need(layer.operation == trt().FillOperation.LINSPACE, f"fill operation {layer.operation} (random)")
    dims = dims.tolist() if dims is not None else list(_ints(layer.shape))
    if alpha is None:
        alpha, beta = torch.tensor(layer.alpha), torch.tensor([layer.beta])
    beta = beta.reshape(-1)
    if beta.numel() != len(dims):
        raise ValueError(f"beta has {beta.numel()} values for a rank-{len(dims)} output")
    acc = torch.float64 if _dtype(layer.get_output(0).dtype).is_floating_point else torch.int64
    out = alpha.to(acc).reshape(()).expand(dims)
    for d, b in enumerate(beta.to(acc)):
        out = out + b * torch.arange(dims[d], dtype=acc).reshape([-1 if i == d else 1 for i in range(len(dims))])
    return out


@_layer("NON_ZERO", "INonZeroLayer")
def _non_zero(layer, x):
    """[rank, count] matrix of the non-zero elements' coordinates, columns in lexical order."""
    return torch.nonzero(x).T


# --- contractions and reductions ------------------------------------------------------------

@_layer("MATRIX_MULTIPLY", "IMatrixMultiplyLayer")
def _matrix_multiply(layer, a, b):
    """op(A) * op(B) over the last two dims, leading dims broadcast where 1. VECTOR treats the last
    dim as a vector (A as a row [.., 1, K], B as a column [.., K, 1]) and drops it from the result."""
    MO = trt().MatrixOperation
    ops = (layer.op0, layer.op1)
    if ops[0] == MO.VECTOR:
        a = a.unsqueeze(-2)
    if ops[1] == MO.VECTOR:
        b = b.unsqueeze(-1)
    _same_rank(a, b)
    if ops[0] == MO.TRANSPOSE:
        a = a.transpose(-1, -2)
    if ops[1] == MO.TRANSPOSE:
        b = b.transpose(-1, -2)
    y = torch.matmul(a, b)
    if ops[1] == MO.VECTOR:
        y = y.squeeze(-1)
    if ops[0] == MO.VECTOR:
        y = y.squeeze(-1 if ops[1] == MO.VECTOR else -2)
    return y


@_layer("EINSUM", "IEinsumLayer")
def _einsum(layer, *xs):
    """Einstein summation over the inputs with `equation`."""
    return torch.einsum(layer.equation, *xs)


@_layer("SOFTMAX", "ISoftMaxLayer")
def _softmax(layer, x):
    """Softmax along the single axis whose bit is set in `axes`."""
    axes = _bits(layer.axes, x.dim())
    _need(len(axes) == 1, f"softmax axes mask {layer.axes:#b} (exactly one axis bit)")
    return torch.softmax(x, dim=axes[0])


def _attention(att, q, k, v, mask):
    """normalize(Q K^T + mask) V over the last two dims, with no scaling of Q K^T (the ONNX
    parser scales Q and K by sqrt(scale) before the layer). Key/value heads may be fewer than
    query heads (grouped queries: query head h reads key/value head h // (Hq / Hkv)). A bool mask
    keeps the True positions; a float mask is added. causal_kind keeps key j <= query i
    (UPPER_LEFT) or j <= i + Skv - Sq (LOWER_RIGHT). Normalization SOFTMAX over the keys, or NONE."""
    t = trt()
    _need(att.query_form == t.AttentionIOForm.PADDED_BHND and att.key_value_form == t.AttentionIOForm.PADDED_BHND,
          f"attention forms {att.query_form}/{att.key_value_form}")
    _need(att.key_value_lengths is None and att.query_lengths is None, "attention key/value lengths")
    _need(att.normalization_quantize_scale is None, "quantized attention normalization")
    _need(att.num_ranks == 1, f"attention over {att.num_ranks} ranks")
    _need(mask is None or att.causal_kind == t.CausalMaskKind.NONE,
          "a mask together with a causal kind (TensorRT documents them as exclusive; setMask refuses it)")
    hq, hkv = q.shape[1], k.shape[1]
    if hq % hkv:
        raise ValueError(f"{hq} query heads for {hkv} key/value heads")
    k, v = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1)
    scores = q @ k.transpose(-1, -2)
    sq, skv = scores.shape[-2:]
    keep = None
    if att.causal_kind != t.CausalMaskKind.NONE:
        shift = skv - sq if att.causal_kind == t.CausalMaskKind.LOWER_RIGHT else 0
        keep = torch.arange(skv).reshape(1, -1) <= torch.arange(sq).reshape(-1, 1) + shift
    elif mask is not None and mask.dtype == torch.bool:
        keep = mask
    elif mask is not None:
        scores = scores + mask
    if att.norm_op == t.AttentionNormalizationOp.NONE:
        _need(keep is None, "a causal or bool mask without softmax normalization")
        return scores @ v
    if keep is not None:
        keep = keep.expand(scores.shape)
        _need(bool(keep.any(-1).all()), "a query whose every key is masked")
        scores = scores.masked_fill(~keep, -math.inf)
    return torch.softmax(scores, -1) @ v


@_layer("ATTENTION_INPUT", "IAttentionInputLayer")
def _attention_input(layer, q, k, v, mask=None, *_):
    """The input boundary of an IAttention holds its inputs; the whole attention is computed here
    and the output boundary passes it on."""
    return _attention(layer.attention, q, k, v, mask)


@_layer("ATTENTION_OUTPUT", "IAttentionOutputLayer")
def _attention_output(layer, x):
    return x


@_layer("ROTARY_EMBEDDING", "IRotaryEmbeddingLayer")
def _rotary_embedding(layer, x, cos, sin, position_ids=None):
    """RoPE of x [b, d, s, h] on its first rotary_embedding_dim features r (0: all h), the rest copied. cos and
    sin are [b, s, r/2], or [maxPositionId + 1, r/2] rows picked by position_ids [b, s]. Each rotated 2-vector
    (x1, x2) becomes (x1 cos - x2 sin, x2 cos + x1 sin); it is two adjacent elements when interleaved, else
    elements k and k + r/2."""
    if not hasattr(layer, "rotary_embedding_dim"):
        raise _Unsupported("rotary embedding in this TensorRT")
    h = x.shape[-1]
    r = layer.rotary_embedding_dim or h
    if r % 2 or r > h:
        raise ValueError(f"rotary_embedding_dim {r} for a hidden size {h}")
    if position_ids is not None:
        if position_ids.numel() and not 0 <= int(position_ids.min()) <= int(position_ids.max()) < cos.shape[0]:
            raise ValueError(f"position ids outside the {cos.shape[0]} rows of the cos/sin caches")
        cos, sin = cos[position_ids.long()], sin[position_ids.long()]
    if tuple(cos.shape) != (x.shape[0], x.shape[2], r // 2) or sin.shape != cos.shape:
        raise ValueError(f"cos/sin {tuple(cos.shape)}/{tuple(sin.shape)} for input {tuple(x.shape)} and r={r}")
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)
    rot = x[..., :r]
    x1, x2 = (rot[..., 0::2], rot[..., 1::2]) if layer.interleaved else (rot[..., :r // 2], rot[..., r // 2:])
    y1, y2 = x1 * c - x2 * s, x2 * c + x1 * s
    out = torch.stack((y1, y2), -1).flatten(-2) if layer.interleaved else torch.cat((y1, y2), -1)
    return torch.cat((out, x[..., r:]), -1)


@_layer("KV_CACHE_UPDATE", "IKVCacheUpdateLayer")
def _kv_cache_update(layer, cache, update, write_indices, *_):
    """LINEAR: output[i, :, writeIndices[i] + s, :] = update[i, :, s, :] for s < S (the update's length);
    every other element is the cache's. Indices must keep writeIndices[i] + S <= s_max."""
    t = trt()
    if not hasattr(t, "KVCacheMode"):
        raise _Unsupported("KV-cache layers in this TensorRT")
    _need(layer.cache_mode == t.KVCacheMode.LINEAR, f"KV cache mode {layer.cache_mode}")
    _need(layer.update_form == t.AttentionIOForm.PADDED_BHND, f"KV cache update form {layer.update_form}")
    out, n = cache.clone(), update.shape[2]
    for i, w in enumerate(write_indices.tolist()):
        if not 0 <= w <= cache.shape[2] - n:
            raise ValueError(f"write index {w} of batch {i}: {n} rows do not fit a cache of {cache.shape[2]}")
        out[i, :, w:w + n] = update[i]
    return out


def _prod(x, axes, keep):
    for a in sorted(axes, reverse=True):
        x = x.prod(a, keepdim=keep)
    return x


_REDUCE = {
    "SUM": lambda x, axes, keep: x.sum(axes, keepdim=keep),
    "AVG": lambda x, axes, keep: x.mean(axes, keepdim=keep),
    "MAX": lambda x, axes, keep: x.amax(axes, keepdim=keep),
    "MIN": lambda x, axes, keep: x.amin(axes, keepdim=keep),
    "PROD": _prod,
}


@_layer("REDUCE", "IReduceLayer")
def _reduce(layer, x):
    """ReduceOperation over the axes in the `axes` bit mask, keeping them as 1s if keep_dims."""
    op = layer.op.name
    _need(op in _REDUCE, f"reduce operation {layer.op}")
    _need(op != "AVG" or x.is_floating_point(), f"AVG reduction of {x.dtype}")
    axes = _bits(layer.axes, x.dim())
    return _REDUCE[op](x, axes, layer.keep_dims) if axes else x


@_layer("TOPK", "ITopKLayer")
def _topk(layer, x, k=None):
    """The k largest (MAX) or smallest (MIN) values along the single axis in `axes`, sorted, and
    their indices, tied values lowest index first (as ONNX requires); k from input 1 when present."""
    axes = _bits(layer.axes, x.dim())
    _need(len(axes) == 1, f"topk axes mask {layer.axes:#b} (exactly one axis bit)")
    k = int(k) if k is not None else layer.k
    values, indices = torch.sort(x, dim=axes[0], descending=layer.op == trt().TopKOperation.MAX, stable=True)
    return values.narrow(axes[0], 0, k), indices.narrow(axes[0], 0, k)


@_layer("NMS", "INMSLayer")
def _nms(layer, boxes, scores, max_per_class, iou=None, score=None):
    """Per batch item, the (box, class) pairs over the score threshold (input 4, default 0) by decreasing score,
    the best topk_box_limit of them; a pair is kept unless a kept box of its class overlaps it by IoU over the
    threshold (input 3, default 0), at most max_per_class per class. Rows [batch, class, box] int32 in the order
    kept, and their count. CENTER_SIZES boxes are (cx, cy, w, h)."""
    iou = 0.0 if iou is None else float(iou)
    score = 0.0 if score is None else float(score)
    if layer.bounding_box_format == trt().BoundingBoxFormat.CENTER_SIZES:
        half = boxes[..., 2:] / 2
        boxes = torch.cat([boxes[..., :2] - half, boxes[..., :2] + half], -1)
    rows = []
    for i in range(boxes.shape[0]):
        flat = scores[i].flatten().tolist()          # box-major (box, class) pairs
        order = sorted(range(len(flat)), key=lambda k: -flat[k])[:layer.topk_box_limit]
        pairs = [(flat[k], k // scores.shape[2], k % scores.shape[2]) for k in order if flat[k] > score]
        kept = {}
        for s, b, c in pairs:
            same = kept.setdefault(c, [])
            if len(same) < int(max_per_class) and all(_iou(boxes[i, b], boxes[i, k]) <= iou for k in same):
                same.append(b)
                rows.append((i, c, b))
    return (torch.tensor(rows, dtype=torch.int32).reshape(-1, 3), torch.tensor(len(rows), dtype=torch.int32))


def _iou(a, b):
    inter = (torch.minimum(a[2:], b[2:]) - torch.maximum(a[:2], b[:2])).clamp(min=0).prod()
    union = (a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter
    return float(inter / union) if union > 0 else 0.0


@_layer("CUMULATIVE", "ICumulativeLayer")
def _cumulative(layer, x, axis):
    """Running SUM along `axis` (input 1); exclusive drops the current element, reverse runs
    from the end."""
    _need(layer.op == trt().CumulativeOperation.SUM, f"cumulative operation {layer.op}")
    a = int(axis) % x.dim()
    y = torch.cumsum(x.flip(a) if layer.reverse else x, a)
    if layer.exclusive:
        y = F.pad(y.movedim(a, -1), (1, -1)).movedim(-1, a)  # shift by one, zero first
    return y.flip(a) if layer.reverse else y


@_layer("NORMALIZATION", "INormalizationLayer")
def _normalization(layer, x, scale, bias):
    """(x - mean) / sqrt(var + epsilon) * scale + bias, mean and (population) variance over the
    `axes` bit mask. With num_groups G != 1 the channels (dim 1) split into G groups normalised
    over the group and all later dims; scale/bias are [1, G, 1...] for addNormalization and
    [1, C, 1...] for addNormalizationV2."""
    g, eps = layer.num_groups, layer.epsilon
    axes = _bits(layer.axes, x.dim())
    if g == 1:
        var, mean = torch.var_mean(x, axes, correction=0, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps) * scale + bias
    _need(axes == list(range(2, x.dim())), f"axes mask {layer.axes:#b} with num_groups {g}")
    n, c = x.shape[:2]
    grouped = x.reshape(n, g, c // g, *x.shape[2:])
    var, mean = torch.var_mean(grouped, list(range(2, grouped.dim())), correction=0, keepdim=True)
    y = (grouped - mean) / torch.sqrt(var + eps)
    if getattr(layer, "is_v2", False):
        return y.reshape(x.shape) * scale + bias
    if scale.numel() != g or bias.numel() != g:
        raise ValueError(f"addNormalization with num_groups {g} takes [1, {g}, 1...] scale and bias, got "
                         f"{tuple(scale.shape)}; per-channel ones need addNormalizationV2")
    per_group = (1, g) + (1,) * (x.dim() - 1)
    return (y * scale.reshape(per_group) + bias.reshape(per_group)).reshape(x.shape)


# --- resize ---------------------------------------------------------------------------------

def _resize_coords(layer, size, out):
    """Input coordinate (float32, as TensorRT computes) for each output index along one axis."""
    RC, RS = trt().ResizeCoordinateTransformation, trt().ResizeSelector
    o = torch.arange(out, dtype=torch.float32)
    if out == 1 and layer.selector_for_single_pixel == RS.UPPER:
        return torch.zeros(1)
    mode = layer.coordinate_transformation
    if mode == RC.ALIGN_CORNERS:
        _need(out > 1, "ALIGN_CORNERS resize to length 1 with selector FORMULA (the formula divides by 0)")
        return o * torch.tensor((size - 1) / (out - 1), dtype=torch.float32)
    ratio = torch.tensor(size / out, dtype=torch.float32)
    if mode == RC.ASYMMETRIC:
        return o * ratio
    _need(mode == RC.HALF_PIXEL, f"coordinate transformation {mode}")
    return (o + 0.5) * ratio - 0.5


def _cubic_weight(d, a):
    d = d.abs()
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return torch.where(d <= 1, near, torch.where(d < 2, far, torch.zeros_like(d)))


def _resize_taps(layer, size, out):
    """(indices, weights) lists whose weighted sum gives each output element along one axis."""
    IM, RR = trt().InterpolationMode, trt().ResizeRoundMode
    x = _resize_coords(layer, size, out)
    mode = layer.resize_mode
    if mode == IM.NEAREST:
        rounding = layer.nearest_rounding
        r = {RR.HALF_UP: lambda v: torch.floor(v + 0.5), RR.HALF_DOWN: lambda v: torch.ceil(v - 0.5),
             RR.FLOOR: torch.floor, RR.CEIL: torch.ceil}[rounding](x)
        return [r.long().clamp(0, size - 1)], [None]
    if mode == IM.LINEAR:
        x = x.clamp(0, size - 1)
        i0 = x.floor()
        w = x - i0
        i0 = i0.long()
        return [i0, (i0 + 1).clamp(max=size - 1)], [1 - w, w]
    _need(mode == IM.CUBIC, f"resize mode {mode}")
    i0 = x.floor()
    taps = [i0 + j for j in (-1, 0, 1, 2)]
    weights = [_cubic_weight(x - t, layer.cubic_coeff) for t in taps]
    if layer.exclude_outside:
        weights = [w * ((t >= 0) & (t < size)) for w, t in zip(weights, taps)]
        total = sum(weights)
        weights = [w / total for w in weights]
    return [t.long().clamp(0, size - 1) for t in taps], weights


@_layer("RESIZE", "IResizeLayer")
def _resize(layer, x, dims=None):
    """Separable resize of every dim whose length changes (NEAREST: innermost 8, LINEAR: 3,
    CUBIC: 2). Output dims from input 1, `shape`, or floor(input * scales); coordinates per
    ResizeCoordinateTransformation (lengths ratio, default ASYMMETRIC), single-pixel selector,
    nearest rounding (default FLOOR), cubic coefficient A; coordinates outside the input use
    the edge elements (linear and cubic), or are dropped and renormalised with exclude_outside."""
    if dims is not None:
        _need(not dims.is_floating_point(), "resize scales given as input 1")
        out = dims.tolist()
    else:
        out = layer.shape
        if out is None:
            scales = layer.scales
            out = [math.floor(i * s) for i, s in zip(x.shape, scales)]
            _need(all(o == i * s for o, i, s in zip(out, x.shape, scales)),
                  f"scales {scales} giving non-integral output lengths (scale and lengths ratio differ)")
    out = [int(o) for o in out]
    limit = {"NEAREST": 8, "LINEAR": 3, "CUBIC": 2}.get(layer.resize_mode.name, 0)
    axes = [a for a in range(x.dim()) if out[a] != x.shape[a]]
    _need(all(a >= x.dim() - limit for a in axes), f"{layer.resize_mode} resize of dims {axes} of rank {x.dim()}")
    for a in axes:
        indices, weights = _resize_taps(layer, x.shape[a], out[a])
        shape = [-1 if d == a else 1 for d in range(x.dim())]
        parts = [x.index_select(a, i) if w is None else x.index_select(a, i) * w.reshape(shape)
                 for i, w in zip(indices, weights)]
        x = sum(parts[1:], parts[0])
    return x


@_layer("GRID_SAMPLE", "IGridSampleLayer")
def _grid_sample(layer, x, grid):
    """ONNX GridSample: grid [N, H, W, 2] (or [N, D, H, W, 3]) of normalized (x, y[, z]) coordinates,
    -1 and 1 being the edge pixels' centres (align_corners) or outer edges; outside points per sample_mode
    FILL (zeros), CLAMP (edge) or REFLECT. NEAREST rounds half to even; CUBIC (4-D) has coefficient -0.75."""
    SM, IM = trt().SampleMode, trt().InterpolationMode
    mode = {IM.LINEAR: "bilinear", IM.NEAREST: "nearest", IM.CUBIC: "bicubic"}[layer.interpolation_mode]
    _need(mode != "bicubic" or x.dim() == 4, f"grid sample {layer.interpolation_mode} of a {x.dim()}-D input")
    pad = {SM.FILL: "zeros", SM.CLAMP: "border", SM.REFLECT: "reflection"}.get(layer.sample_mode)
    _need(pad is not None, f"grid sample mode {layer.sample_mode}")
    return F.grid_sample(x, grid.to(x.dtype), mode, pad, layer.align_corners)


@_layer("ASSERTION", "IAssertionLayer")
def _assertion(layer, cond):
    """Fails when any element of the boolean input is false."""
    if not bool(cond.all()):
        raise ValueError(f"assertion failed: {layer.message}")
    return ()


# --- driver ---------------------------------------------------------------------------------

def _conform(x, tensor):
    """Give a computed tensor TensorRT's inferred type; check its shape against the known dims."""
    return _conform_to(x, _dtype(tensor.dtype), _ints(tensor.shape), tensor.name)


def _conform_to(x, dtype, dims, name):
    if x.dtype != dtype:
        x = x.to(dtype)
    if x.shape != dims and (len(dims) != x.dim() or any(d >= 0 and d != n for d, n in zip(dims, x.shape))):
        raise ValueError(f"tensor {name!r} has shape {tuple(x.shape)}, TensorRT says {dims}")
    return x


_ML = {torch.bfloat16: ("bfloat16", torch.int16), torch.float8_e4m3fn: ("float8_e4m3fn", torch.uint8)}


def _ml_dtype(name):
    """ml_dtypes' numpy type `name`; None without the package (values then widen to float32, INT4 stays int8)."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(getattr(ml_dtypes, name))


def _numpy(x, int4=False):
    """bfloat16 and FP8 values as ml_dtypes arrays of the same bits; INT4 ones (held in int8) as ml_dtypes.int4."""
    kind = ("int4", None) if int4 else _ML.get(x.dtype)
    t = kind and _ml_dtype(kind[0])
    if t is None:
        return (x.float() if x.dtype in _ML else x).numpy()
    return x.numpy().astype(t) if int4 else x.view(kind[1]).numpy().view(t)


def _handed(x, held, int4=False):
    """A value as run_network returns it: a copy where it views the network's weights (`held`)."""
    a = _numpy(x, int4)
    return a.copy() if x.untyped_storage().data_ptr() in held else a


def _feed(tensor, value):
    try:
        dtype = _dtype(tensor.dtype)
    except _Unsupported as e:
        raise UnsupportedLayerError(f"network input {tensor.name!r}: {e} not supported") from None
    a = np.asarray(value)
    x = _torch_value(a, tensor.name)
    int4 = tensor.dtype == trt().DataType.INT4
    if int4 and (x.is_floating_point() or x.numel() and not -8 <= x.min() <= x.max() <= 7):
        got = f"{a.dtype} from {a.min()} to {a.max()}" if a.size else str(a.dtype)
        raise ValueError(f"network input {tensor.name!r} is INT4: expected integers in [-8, 7] (ml_dtypes.int4 or "
                         f"an integer array), got {got}")
    return _conform(x.to(dtype) if x.dtype != dtype else x, tensor)


def _torch_value(a, name):
    """An input array as torch: ml_dtypes bfloat16 and float8_e4m3fn by their bits, int4 as its integer values."""
    if a.dtype.name == "int4":
        return torch.from_numpy(a.astype(np.int8))
    held = {"bfloat16": (np.int16, torch.bfloat16), "float8_e4m3fn": (np.uint8, torch.float8_e4m3fn)}.get(a.dtype.name)
    if held:
        return torch.from_numpy(np.ascontiguousarray(a).view(held[0])).view(held[1])
    try:
        return torch.as_tensor(a)
    except TypeError:   # ml_dtypes' other types, objects
        raise ValueError(f"network input {name!r}: numpy arrays of type {a.dtype} are not supported "
                         "(ml_dtypes' bfloat16, float8_e4m3fn and int4 are)") from None


def _int4_names(network, every):
    """Names of the INT4 tensors among the outputs (`every`: among all inputs and layer outputs too)."""
    four = trt().DataType.INT4
    tensors = [network.get_output(i) for i in range(network.num_outputs)]
    if every:
        tensors += [network.get_input(i) for i in range(network.num_inputs)]
        tensors += [l.get_output(j) for l in map(network.get_layer, range(network.num_layers))
                    for j in range(l.num_outputs)]
    return {t.name for t in tensors if t.dtype == four}


_BOUNDARY = ("TRIP_LIMIT", "ITERATOR", "RECURRENCE", "LOOP_OUTPUT")


def _kind(layer):
    """The LayerType, read through ILayer: a layer object keeps the subclass given to it when it
    last ran, where `type` may mean something else (IActivationLayer.type is its ActivationType)."""
    layer.__class__ = trt().ILayer
    return layer.type


class _Loop:
    """A loop as one schedulable unit: its boundary layers and the units of its body."""

    def __init__(self, name):
        self.name, self.boundary, self.members, self.units = name, [], set(), []


def _find_loops(layers):
    """Loops by their boundary layers (ILoopBoundaryLayer.loop; the binding hands back one Python
    object per ILoop). A loop's members are its boundary layers plus every layer that depends on
    its recurrences or iterators without passing through its loop outputs (layers that depend on
    neither are loop-invariant and run once, outside); a nested loop belongs whole or not at all."""
    t, owners, loops = trt(), [], []
    for i, layer in enumerate(layers):
        if _kind(layer).name in _BOUNDARY:
            layer.__class__ = t.ILoopBoundaryLayer
            loop = layer.loop
            k = next((j for j, o in enumerate(owners) if o is loop), None)
            if k is None:
                owners.append(loop)
                loops.append(_Loop(loop.name))
                k = len(loops) - 1
            loops[k].boundary.append(i)
    users = {}
    for i, layer in enumerate(layers):
        for j in range(layer.num_inputs):
            x = layer.get_input(j)
            if x is not None:
                users.setdefault(x.name, []).append(i)
    of = {i: lp for lp in loops for i in lp.boundary}
    for lp in loops:
        own = set(lp.boundary)
        todo = [i for i in lp.boundary if _kind(layers[i]).name in ("ITERATOR", "RECURRENCE")]
        members = set(todo)
        while todo:
            i = todo.pop()
            nested = of[i].boundary if i in of and of[i] is not lp else []
            outs = [layers[i].get_output(k).name for k in range(layers[i].num_outputs)]
            for j in [u for name in outs for u in users.get(name, [])] + nested:
                if j not in members and not (j in own and _kind(layers[j]).name != "RECURRENCE"):
                    members.add(j)
                    todo.append(j)
        lp.members = members | own
    return loops


def _units(indices, loops):
    """The schedulable units among `indices`: the outermost loops whose members lie there, and the
    layers outside them. Loop bodies get their own units, recursively."""
    inside = [lp for lp in loops if lp.members <= indices]
    outer = [lp for lp in inside if not any(lp is not o and lp.members < o.members for o in inside)]
    taken = set().union(*(lp.members for lp in outer))
    for lp in outer:
        body = lp.members - set(lp.boundary)
        lp.units = _units(body, [o for o in inside if o.members < lp.members])
    return outer + sorted(indices - taken)


def _unit_layers(unit):
    return sorted(unit.members) if isinstance(unit, _Loop) else [unit]


def _order(units, layers, wanted, extra=()):
    """Units each after the units whose outputs it takes, otherwise in creation order. With
    `wanted` (tensor names) only the units they depend on run, plus output-less layers
    (assertions), as in an engine; with None, all of them. `extra`: further tensors needed."""
    produced, key = {}, []
    for u, unit in enumerate(units):
        members = _unit_layers(unit)
        key.append(members[0])
        outs = [i for i in members if not isinstance(unit, _Loop) or _kind(layers[i]).name == "LOOP_OUTPUT"]
        for i in outs:
            for j in range(layers[i].num_outputs):
                produced[layers[i].get_output(j).name] = u
    deps = []
    for unit in units:
        members = _unit_layers(unit)
        mine = {layers[i].get_output(j).name for i in members for j in range(layers[i].num_outputs)}
        names = {x.name for i in members for x in map(layers[i].get_input, range(layers[i].num_inputs))
                 if x is not None and x.name not in mine}
        deps.append({produced[n] for n in names if n in produced})
    keep = set(range(len(units)))
    if wanted is not None:
        keep = set()
        todo = [produced[n] for n in list(wanted) + list(extra) if n in produced]
        todo += [u for u, unit in enumerate(units) if not isinstance(unit, _Loop) and not layers[unit].num_outputs]
        while todo:
            u = todo.pop()
            if u not in keep:
                keep.add(u)
                todo.extend(deps[u])
    users, waiting = [[] for _ in units], [len(d) for d in deps]
    for u, d in enumerate(deps):
        for j in d:
            users[j].append(u)
    ready = [(key[u], u) for u in keep if waiting[u] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, u = heapq.heappop(ready)
        order.append(units[u])
        for v in users[u]:
            waiting[v] -= 1
            if waiting[v] == 0 and v in keep:
                heapq.heappush(ready, (key[v], v))
    if len(order) < len(keep):
        raise ValueError("the network's layers form a cycle")
    return order


class _Layers(list):
    """A network's layers, with each one's kernel, attributes, input names and output types once read back
    (`steps`), the tensors made by kernels that return new buffers (`fresh`: a later layer may write into them),
    and the storage of constants' values (`held`: the network's own weights, copied before they leave)."""
    steps = fresh = held = None


class _Read:
    """A layer as its kernel sees it: each attribute read from TensorRT once, at the first run, and kept, with
    dimensions as tuples. Reading through the bindings (a Dims costs microseconds to iterate) took longer than
    many layers take to compute, at every run."""

    def __init__(self, layer, cls):
        self._layer, self._cls, self.memo = layer, cls, {}

    def __getattr__(self, name):
        layer = self._layer
        layer.__class__ = self._cls   # other readers of the network may have given the object another class
        value = getattr(layer, name)
        if isinstance(value, (trt().Dims, trt().Permutation)):
            value = tuple(value)
        self.__dict__[name] = value
        return value


_FRESH = {"CONVOLUTION", "DECONVOLUTION", "ACTIVATION", "ELEMENTWISE", "SCALE", "NORMALIZATION", "MATRIX_MULTIPLY",
          "POOLING", "SOFTMAX", "UNARY"}


_PLANS = {}   # (id(network), layer count, wanted, every) -> (network, units, layers, frees): the last few run


def _schedule(network, wanted, every=False):
    """The layers (ints into `layers`) and loops to run in order (`every`: all of them, else those `wanted`
    needs), the network's layers, and per unit the values to drop after it (see _frees). Kept for the next run
    of the same network, with the layers' attributes once read (_Read): reading a network back through the
    bindings costs more than many of its layers take to run. So a layer changed after the network has run is
    not seen; adding a layer makes a new schedule."""
    key = (id(network), network.num_layers, None if wanted is None else tuple(wanted), every)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is network:
        return hit[1:]
    layers = _Layers(network.get_layer(i) for i in range(network.num_layers))
    layers.steps, layers.fresh, layers.held = {}, set(), set()
    loops = _find_loops(layers)
    units = _order(_units(set(range(len(layers))), loops), layers, None if every else wanted)
    for lp in loops:
        lp.units = _order(lp.units, layers, [], _loop_needs(lp, layers))
    frees = _frees(units, layers, wanted)
    if len(_PLANS) >= 4:
        del _PLANS[next(iter(_PLANS))]
    _PLANS[key] = (network, units, layers, frees)
    return units, layers, frees


def _loop_needs(lp, layers):
    """The body tensors a loop reads back: next values, trip conditions, loop output values."""
    needs = []
    for i in lp.boundary:
        kind = _kind(layers[i]).name
        if kind in ("RECURRENCE", "LOOP_OUTPUT", "TRIP_LIMIT"):
            x = layers[i].get_input(1 if kind == "RECURRENCE" else 0)
            if x is not None:
                needs.append(x.name)
    return needs


@contextmanager
def _naming(what):
    """Errors raised inside name the layer or loop (`what`)."""
    try:
        yield
    except (_Unsupported, ValueError, RuntimeError, IndexError) as e:
        _rename(e, what)


def _rename(e, what):
    """Raise `e` again naming `what`; UnsupportedLayerError already names its layer."""
    if isinstance(e, UnsupportedLayerError):
        raise e
    if isinstance(e, _Unsupported):
        raise UnsupportedLayerError(f"{what}: {e} not supported") from None
    raise type(e)(f"{what}: {e}") from e


def _step(layer):
    """(description, kernel, the layer as _Read, input names (None: absent), [(output name, torch type, dims)],
    kind)."""
    t = trt()
    kind = _kind(layer)
    what = f"layer {layer.name!r} ({kind})"
    if kind.name not in _LAYERS:
        raise UnsupportedLayerError(f"{what}: layer type not supported")
    fn, cls = _LAYERS[kind.name]
    cls = getattr(t, cls)
    layer.__class__ = cls
    inputs = [layer.get_input(j) for j in range(layer.num_inputs)]
    with _naming(what):
        outputs = [(x.name, _dtype(x.dtype), _ints(x.shape)) for x in map(layer.get_output, range(layer.num_outputs))]
    return what, fn, _Read(layer, cls), [None if x is None else x.name for x in inputs], outputs, kind.name


def _memo(layer, key, make):
    """make(), kept for the layer's later runs where the layer is read back once (_Read): the Python that turns
    attributes into a kernel's arguments took as long as many layers' kernels."""
    memo = getattr(layer, "memo", {})      # a layer read back once (_Read) keeps one; a bare TensorRT layer none
    value = memo.get(key)
    if value is None:
        value = memo[key] = make()
    return value


def _run_layer(layers, i, env, dying=()):
    """Run layer i; `dying`: the values no later layer reads, which an in-place kernel may overwrite."""
    step = layers.steps.get(i)
    if step is None:
        step = layers.steps[i] = _step(layers[i])
        if step[5] in _FRESH:
            layers.fresh.update(name for name, _, _ in step[4])
    what, fn, layer, inputs, outputs, kind = step
    args = [None if n is None else _wide(env[n]) for n in inputs]
    into = _IN_PLACE.get(kind) if inputs and inputs[0] in dying and inputs[0] in layers.fresh and _alone(args[0]) \
        else None
    try:   # not _naming: a context manager per layer costs as much as a small layer's kernel
        result = into and into(layer, *args)
        if result is None:
            result = fn(layer, *args)
        result = result if isinstance(result, tuple) else (result,)
        for value, (name, dtype, dims) in zip(result, outputs):
            if any(value is a for a in args):   # an input passed on: its own tensor object, so _alone sees two
                value = value.detach()
            env[name] = _conform_to(value, dtype, dims, name)
    except (_Unsupported, ValueError, RuntimeError, IndexError) as e:
        _rename(e, what)
    if kind == "CONSTANT":
        layers.held.add(env[outputs[0][0]].untyped_storage().data_ptr())


def _run(units, layers, env):
    for unit in units:
        if isinstance(unit, _Loop):
            _run_loop(unit, layers, env)
        else:
            _run_layer(layers, unit, env)


def _wide(x):
    """float16, bfloat16 and FP8 values as float32 for the kernels."""
    return x.float() if x is not None and x.dtype in _LOW else x


@lru_cache(maxsize=None)
def _refs_alone():
    """(the storage use count function where this torch exposes it, the count of a tensor that nothing else shares:
    its tensor and its Python storage); (None, None) otherwise, so nothing counts as alone and every kernel writes
    a fresh output. Looked up once: it is asked on every layer."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    return (count, count(torch.empty(1).untyped_storage()._cdata)) if count else (None, None)


def _alone(x):
    """Whether no other tensor (a view, or a value passed on under another name) shares x's memory, so that x may
    be overwritten once its last reader runs: every tensor object over a buffer counts towards the buffer's use
    count. Counting beats comparing x's address with every live value's, which took a millisecond per ResNet run."""
    count, alone = _refs_alone()
    return count is not None and count(x.untyped_storage()._cdata) == alone


def _run_top(units, layers, env, frees, progress, each=None):
    """The top-level units in order; after each, its outputs go to `each` and the values in its `frees` entry
    are dropped (their last reader has run), so a run's peak memory is its widest cut, not every layer's output."""
    sizes = [len(u.members) if isinstance(u, _Loop) else 1 for u in units]
    done, total = 0, sum(sizes)
    for u, (unit, size) in enumerate(zip(units, sizes)):
        if isinstance(unit, _Loop):
            _run_loop(unit, layers, env)
        else:
            _run_layer(layers, unit, env, frees[u])
        if each is not None:
            for name in _produced(unit, layers):
                each(name, env[name])
        for name in frees[u]:
            env.pop(name, None)
        done += size
        if progress is not None:
            progress(done, total)


def _produced(unit, layers):
    """The names of the values a unit adds to the top-level values: a layer's outputs, a loop's outputs."""
    if isinstance(unit, _Loop):
        return [layers[i].get_output(0).name for i in unit.boundary if _kind(layers[i]).name == "LOOP_OUTPUT"]
    return [name for name, _, _ in layers.steps[unit][4]]


def _frees(units, layers, wanted):
    """Per unit, the tensor names no later unit reads and that are not `wanted` (None: keep everything)."""
    frees = [[] for _ in units]
    if wanted is None:
        return frees
    last, keep = {}, set(wanted)
    for u, unit in enumerate(units):
        for i in _unit_layers(unit):
            layer = layers[i]
            for j in range(layer.num_inputs):
                x = layer.get_input(j)
                if x is not None:
                    last[x.name] = u
            for j in range(layer.num_outputs):
                last.setdefault(layer.get_output(j).name, u)
    for name, u in last.items():
        if name not in keep:
            frees[u].append(name)
    return frees


def _run_loop(lp, layers, env):
    """Runs the body once per iteration, as TensorRT's loop semantics describe: recurrences start
    at input 0 and take input 1's value of the previous iteration; iterators give slice i (or
    M-1-i with reverse, M the COUNT trip limit) along their axis; the loop stops after COUNT
    iterations or before one whose WHILE condition is false; LAST_VALUE gives a recurrence's final
    value, CONCATENATE/REVERSE stack each iteration's value (in reverse order) along `axis`."""
    t = trt()
    what = f"loop {lp.name!r}"
    parts = {k: [] for k in _BOUNDARY}
    for i in lp.boundary:
        layer = layers[i]
        kind = _kind(layer).name
        layer.__class__ = getattr(t, _LOOP_CLASSES[kind])
        parts[kind].append(layer)
    with _naming(what):
        count, cond = _trip_limits(parts["TRIP_LIMIT"], env)
        state = {r.get_output(0).name: _conform(env[r.get_input(0).name], r.get_output(0)) for r in parts["RECURRENCE"]}
        first = _order(lp.units, layers, [], [cond] if cond else [])
        rest = [u for u in lp.units if not any(u is f for f in first)]
        seen = {o.get_output(0).name: [] for o in parts["LOOP_OUTPUT"]}
        n = 0
        while count is None or n < count:
            scope = ChainMap(_iterate(parts["ITERATOR"], env, n, count), state, env)
            _run(first, layers, scope)
            if cond is not None and not bool(scope[cond]):
                break
            if len(scope.maps[0]) < len(parts["ITERATOR"]):
                raise ValueError(f"iteration {n} runs past an iterated tensor's extent")
            _run(rest, layers, scope)
            for o in parts["LOOP_OUTPUT"]:
                seen[o.get_output(0).name].append(scope[o.get_input(0).name])
            state = {r.get_output(0).name: _conform(scope[r.get_input(1).name], r.get_output(0))
                     for r in parts["RECURRENCE"]}
            n += 1
    for o in parts["LOOP_OUTPUT"]:
        with _naming(f"layer {o.name!r} (LayerType.LOOP_OUTPUT) of {what}"):
            env[o.get_output(0).name] = _conform(_loop_output(o, seen, state, env, n), o.get_output(0))


_LOOP_CLASSES = {"TRIP_LIMIT": "ITripLimitLayer", "ITERATOR": "IIteratorLayer", "RECURRENCE": "IRecurrenceLayer",
                 "LOOP_OUTPUT": "ILoopOutputLayer"}


def _trip_limits(limits, env):
    """(COUNT trip count or None, name of the WHILE condition tensor or None)."""
    count = cond = None
    for limit in limits:
        if limit.kind == trt().TripLimit.COUNT:
            count = int(env[limit.get_input(0).name])
        else:
            cond = limit.get_input(0).name
    if count is None and cond is None:
        raise ValueError("a loop without a trip limit")
    return count, cond


def _iterate(iterators, env, n, count):
    """Iterator outputs for iteration n (left out past the iterated tensor's extent)."""
    out = {}
    for it in iterators:
        x = env[it.get_input(0).name]
        axis = it.axis % x.dim()
        if it.reverse and count is None:
            raise ValueError("a reverse iterator in a loop without a COUNT trip limit")
        i = count - 1 - n if it.reverse else n
        if 0 <= i < x.shape[axis]:
            out[it.get_output(0).name] = _conform(x.select(axis, i), it.get_output(0))
    return out


def _loop_output(o, seen, state, env, n):
    """A loop output's value after n iterations."""
    LO = trt().LoopOutput
    name = o.get_input(0).name
    if o.kind == LO.LAST_VALUE:
        if name not in state:
            raise ValueError("LAST_VALUE of a tensor that is not a recurrence of this loop")
        return state[name]
    length = int(env[o.get_input(1).name])
    if length < n:
        raise ValueError(f"concatenation length {length} shorter than the {n} iterations")
    _need(length == n, f"concatenation length {length} past the {n} iterations (arbitrary values)")
    values = seen[o.get_output(0).name][::-1 if o.kind == LO.REVERSE else 1]
    if not values:
        dims = _ints(o.get_output(0).shape)
        _need(all(d >= 0 for d in dims), "an empty concatenation of dynamic shape")
        return torch.zeros(dims)
    return torch.stack(values, o.axis % (values[0].dim() + 1))


def run_network(network, inputs, outputs="marked", progress=None, each=None):
    """Run `network` (an INetworkDefinition) on the CPU and return numpy arrays by tensor name.

    inputs: {input tensor name: array}, with the actual sizes of dynamic (-1) dims; bfloat16, FP8 and INT4
    inputs take ml_dtypes arrays of those types exactly (other arrays are cast to the input's type).
    outputs: "marked" for the network's marked outputs (computing only the layers they need, as an
    engine would), "all" for every layer output and input (for per-layer comparisons). bfloat16, FP8 and
    INT4 tensors come back as ml_dtypes arrays (float32 and int8 where ml_dtypes is not installed).
    progress: called as progress(done, total) after each layer run (a loop's layers at once), for a count.
    each: called as each(name, array) with every layer output (a loop's outputs) as it is computed; then every
    layer runs, and with "marked" each value is still dropped after its last reader, so that per-layer
    comparisons need not hold every layer's output. The array is valid during the call only.
    Raises UnsupportedLayerError for layers or attribute values this interpreter does not cover.
    """
    if outputs not in ("marked", "all"):
        raise ValueError(f"outputs must be 'marked' or 'all', not {outputs!r}")
    env = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.name not in inputs:
            raise KeyError(f"no value for network input {tensor.name!r}")
        env[tensor.name] = _feed(tensor, inputs[tensor.name])
    wanted = None if outputs == "all" else [network.get_output(i).name for i in range(network.num_outputs)]
    int4 = _int4_names(network, wanted is None or each is not None)
    with torch.inference_mode():
        units, layers, frees = _schedule(network, wanted, each is not None)
        _run_top(units, layers, env, frees, progress, each and (lambda name, x: each(name, _numpy(x, name in int4))))
    return {name: _handed(env[name], layers.held, name in int4) for name in (env if wanted is None else wanted)}
