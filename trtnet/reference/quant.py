"""PyTorch meaning of explicit quantization: fake quantization as TensorRT defines Q/DQ (x / scale in float32,
round half to even, saturate; FP8 through torch.float8_e4m3fn), and layers whose weight is a tensor input."""
import torch
import torch.nn.functional as F

from .conv import convolution
from .core import TORCH_TYPES, ref, t


def broadcast_scale(scale, x, axis, block):
    """The scale laid out like x: per tensor, along `axis`, or repeated over blocks of `block`."""
    if axis is None:
        return scale
    if block is not None:
        return scale.repeat_interleave(block, axis)
    return scale.reshape([-1 if d == axis else 1 for d in range(x.dim())])


def fake_quant(x, scale, kind, axis=None, block=None):
    """dequantize(quantize(x)): torch.fake_quantize_per_*_affine where TensorRT's division and torch's
    multiply by 1/scale round alike is not guaranteed, so the division is written out."""
    s = broadcast_scale(scale.float(), x, axis, block)
    y = x.float() / s
    if kind == "fp8":
        q = y.clamp(-448.0, 448.0).to(torch.float8_e4m3fn).float()
    else:
        top = {"int8": 127.0, "int4": 7.0}[kind]
        q = torch.round(y).clamp(-top - 1, top)
    return (q.double() * s.double()).float()


@ref("fake_quant")
def _fake_quant(n, x):
    a = n.attrs
    y = fake_quant(x, t(n.params["scale"]), a["kind"], a["axis"], a["block"])
    return y.to(TORCH_TYPES[n.dtype])


@ref("qconv")
def _qconv(n, x, w):
    b = n.params.get("bias")
    return convolution(n.attrs, x, w.to(x.dtype), None if b is None else t(b).to(x.dtype))


@ref("qfc")
def _qfc(n, x, w):
    b = n.params.get("bias")
    return F.linear(x, w.to(x.dtype), None if b is None else t(b).to(x.dtype))
