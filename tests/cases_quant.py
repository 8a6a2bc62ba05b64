"""Cases of explicit quantization: fake quantization per tensor, per channel and in blocks (INT8, FP8, INT4),
and convolution / fc whose weight arrives as a fake-quantized tensor, against torch's own fake quantizers."""
import numpy as np
import torch
import torch.nn.functional as F

import trtnet as tn
from op_cases import case
from trtnet.ops.quant import _fake_quant, _qconv, _qfc

R = np.random.default_rng(5)
HW = ({"N": 2, "H": 9, "W": 8}, {"N": 1, "H": 12, "W": 7})
W = {"c.weight": R.standard_normal((6, 4, 3, 3)).astype(np.float32), "c.bias": R.standard_normal(6).astype(np.float32),
     "f.weight": R.standard_normal((5, 64)).astype(np.float32), "f.bias": R.standard_normal(5).astype(np.float32)}
T = {k: torch.from_numpy(v) for k, v in W.items()}
CH = np.abs(W["c.weight"]).reshape(6, -1).max(1)
ROWS = np.abs(W["f.weight"]).reshape(5, 2, 32).max(2)


def _tq(x, amax, lo, hi):
    return torch.fake_quantize_per_tensor_affine(x, amax / hi, 0, lo, hi)


def _cq(x, amax, axis, lo=-128, hi=127):
    return torch.fake_quantize_per_channel_affine(x, torch.from_numpy(amax / hi).float(),
                                                  torch.zeros(len(amax), dtype=torch.int32), axis, lo, hi)


def _fp8(x, amax):
    s = amax / 448.0
    return (x / s).clamp(-448, 448).to(torch.float8_e4m3fn).float() * s


def _blocks(x, amax, block):
    s = torch.from_numpy(amax / 7.0).float().repeat_interleave(block, 1)
    return torch.round(x / s).clamp(-8, 7) * s


case("fake_quant", "int8-tensor", {"x": (("N", 3, "H", "W"), "float32")}, lambda w, x: _fake_quant(x, 2.5),
     lambda x: _tq(x, 2.5, -128, 127), HW)
case("fake_quant", "int8-axis1", {"x": (("N", 3, "H"), "float32")},
     lambda w, x: _fake_quant(x, np.array([1.0, 2.0, 0.5]), axis=1),
     lambda x: _cq(x, np.array([1.0, 2.0, 0.5]), 1), ({"N": 2, "H": 5}, {"N": 3, "H": 7}))
case("fake_quant", "fp8-tensor", {"x": (("N", 16), "float32")}, lambda w, x: _fake_quant(x, 3.0, "fp8"),
     lambda x: _fp8(x, 3.0), ({"N": 2}, {"N": 5}))
case("fake_quant", "int4-blocks", {"x": ((5, 64), "float32")},
     lambda w, x: _fake_quant(x, ROWS, "int4", axis=1, block=32), lambda x: _blocks(x, ROWS, 32), ({},),
     engine=False)   # TensorRT-RTX 1.7 builds no block-wise INT4 (its compiler wants INT8 or FP8 there)
case("qconv", "int8-weights", {"x": (("N", 4, "H", "W"), "float32")},
     lambda w, x: _qconv(_fake_quant(x, 3.0), _fake_quant(tn.constant(x, w, "c.weight"), CH, axis=0),
                         tn.conv(x, w["c"], stride=2, padding=1)),
     lambda x: F.conv2d(_tq(x, 3.0, -128, 127), _cq(T["c.weight"], CH, 0), T["c.bias"], 2, 1), HW, W)
case("qfc", "int4-block-weights", {"x": (("N", 64), "float32")},
     lambda w, x: _qfc(x, _fake_quant(tn.constant(x, w, "f.weight"), ROWS, "int4", axis=1, block=32), tn.fc(x, w["f"])),
     lambda x: F.linear(x, _blocks(T["f.weight"], ROWS, 32), T["f.bias"]), ({"N": 2}, {"N": 3}), W, engine=False)
case("qfc", "int8-rank3", {"x": (("N", "L", 64), "float32")},
     lambda w, x: _qfc(_fake_quant(x, 3.0), _fake_quant(tn.constant(x, w, "f.weight"), ROWS.max(1), axis=0),
                       tn.fc(x, w["f"])),
     lambda x: F.linear(_tq(x, 3.0, -128, 127), _cq(T["f.weight"], ROWS.max(1), 0), T["f.bias"]),
     ({"N": 2, "L": 3}, {"N": 1, "L": 5}), W)
