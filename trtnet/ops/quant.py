"""Explicit quantization: fake quantization (a Q/DQ pair) and the layers whose weights arrive quantized.

`trtnet.quantize` inserts these; they are recordable by hand too. A `fake_quant` node holds its scale
(amax / 127 for INT8, / 448 for FP8 E4M3, / 7 for INT4): a scalar per tensor, one per index of `axis`, or
blocks of `block` elements along `axis` (INT4 weights)."""
import numpy as np

from .conv import CONV
from .core import Layer, fmt, op, static_int
from .nn import FC

QMAX = {"int8": 127.0, "fp8": 448.0, "int4": 7.0}


def scales(amax, kind):
    """amax -> scale, positive (an all-zero channel gets a tiny scale: TensorRT needs scale > 0)."""
    amax = np.asarray(amax, np.float32)
    return np.maximum(amax / np.float32(QMAX[kind]), np.float32(1e-12)).astype(np.float32)


@op("fake_quant", kind=str, axis=(int, None), block=(int, None))
def _fake_quant(x, amax, kind="int8", axis=None, block=None, dtype=None, name=None):
    """Quantize then dequantize `x` to `kind` with `amax` (scalar, per `axis`, or (rows, blocks) for
    `block`-sized blocks along `axis`); the dequantized output has `dtype` (default x's)."""
    L = Layer("fake_quant", x, name)
    L.float_input(x)
    if kind not in QMAX:
        L.fail(f"kind must be one of {', '.join(QMAX)}, got {kind!r}")
    scale = scales(amax, kind)
    if axis is not None:
        axis = L.axis(x, axis)
        n = static_int(L, x.shape[axis], "the quantized axis")
        if block is None and scale.shape != (n,):
            L.fail(f"{scale.size} scales for axis {axis} of {fmt(x.shape)}")
        if block is not None:
            if x.rank != 2 or n % block:
                L.fail(f"blocks of {block} along axis {axis} need a 2-D input whose axis divides, got {fmt(x.shape)}")
            want = (x.shape[0], n // block) if axis == 1 else (n // block, x.shape[1])
            if scale.shape != want:
                L.fail(f"block scales of shape {scale.shape}, expected {want}")
    elif scale.ndim:
        L.fail(f"a per-tensor scale must be a scalar, got shape {scale.shape}")
    block = None if block is None else int(block)
    return L.emit([x], x.shape, dict(kind=kind, axis=axis, block=block), {"scale": scale}, dtype or x.dtype)


@op("qconv", **CONV)
def _qconv(x, weight, like, name=None):
    """A convolution with attributes of recorded conv node `like` whose kernel is the tensor `weight`
    (a fake-quantized constant), bias from `like`."""
    L = Layer("qconv", x, name or like.name)
    params = {"bias": like.params["bias"]} if "bias" in like.params else {}
    return L.emit([x, weight], like.shape, dict(like.attrs), params, like.dtype)


@op("qfc", **FC)
def _qfc(x, weight, like, name=None):
    """fc of `like` (x @ weight.T + bias) with its (out, in) weight given as a tensor."""
    L = Layer("qfc", x, name or like.name)
    params = {"bias": like.params["bias"]} if "bias" in like.params else {}
    return L.emit([x, weight], like.shape, dict(like.attrs), params, like.dtype)
