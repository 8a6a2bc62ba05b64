"""Cases of the ops every model uses: conv, pooling, resize, fc, norms, softmax, matmul, shape ops."""
import numpy as np
import torch
import torch.nn.functional as F

import trtnet as tn
from op_cases import case

R = np.random.default_rng(1)
DYN = ({"N": 2, "H": 9, "W": 8}, {"N": 3, "H": 12, "W": 7})


def _w(*shape):
    return R.standard_normal(shape).astype(np.float32)


W = {"c.weight": _w(6, 4, 3, 3), "c.bias": _w(6), "c1.weight": _w(5, 3, 4), "c3.weight": _w(4, 2, 2, 3, 3),
     "fc.weight": _w(7, 8), "fc.bias": _w(7), "bn.weight": _w(4), "bn.bias": _w(4), "bn.running_mean": _w(4),
     "bn.running_var": np.abs(_w(4)) + 0.5, "ln.weight": _w(8), "ln.bias": _w(8), "k": _w(1, 3, 8)}
T = {k: torch.from_numpy(v) for k, v in W.items()}

case("conv", "2d-dynamic-hw", {"x": (("N", 4, "H", "W"), "float32")},
     lambda w, x: tn.conv(x, w["c"], stride=2, padding=1), lambda x: F.conv2d(x, T["c.weight"], T["c.bias"], 2, 1),
     DYN, W)
case("conv", "1d", {"x": (("N", 3, "L"), "float32")}, lambda w, x: tn.conv(x, w["c1"], dilation=2, padding=2),
     lambda x: F.conv1d(x, T["c1.weight"], None, 1, 2, 2), ({"N": 2, "L": 11}, {"N": 1, "L": 16}), W)
case("conv", "3d-groups", {"x": (("N", 4, 5, "H", 6), "float32")}, lambda w, x: tn.conv(x, w["c3"], groups=2),
     lambda x: F.conv3d(x, T["c3.weight"], None, groups=2), ({"N": 2, "H": 5}, {"N": 1, "H": 7}), W)
case("conv", "same", {"x": (("N", 4, "H", "W"), "float32")}, lambda w, x: tn.conv(x, w["c"], padding="same"),
     lambda x: F.conv2d(x, T["c.weight"], T["c.bias"], padding="same"), DYN, W)
case("max_pool", "ceil", {"x": (("N", 3, 9, 10), "float32")}, lambda w, x: tn.max_pool(x, 3, 2, 1, ceil_mode=True),
     lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True))
case("max_pool", "1d-dynamic", {"x": (("N", 3, "L"), "float32")}, lambda w, x: tn.max_pool(x, 3, 2),
     lambda x: F.max_pool1d(x, 3, 2), ({"N": 2, "L": 9}, {"N": 3, "L": 14}))
case("avg_pool", "pad", {"x": (("N", 3, "H", "W"), "float32")}, lambda w, x: tn.avg_pool(x, 3, 2, 1),
     lambda x: F.avg_pool2d(x, 3, 2, 1), DYN)
case("avg_pool", "3d", {"x": (("N", 2, 4, 6, 6), "float32")}, lambda w, x: tn.avg_pool(x, 2),
     lambda x: F.avg_pool3d(x, 2))
case("adaptive_avg_pool", "uneven", {"x": (("N", 3, 10, 7), "float32")}, lambda w, x: tn.adaptive_avg_pool(x, (3, 4)),
     lambda x: F.adaptive_avg_pool2d(x, (3, 4)))
case("adaptive_avg_pool", "global-dynamic", {"x": (("N", 3, "H", "W"), "float32")},
     lambda w, x: tn.global_avg_pool(x), lambda x: F.adaptive_avg_pool2d(x, 1), DYN)
case("interpolate", "bilinear-size", {"x": (("N", 3, 5, 6), "float32")},
     lambda w, x: tn.interpolate(x, size=(9, 4), mode="bilinear"), lambda x: F.interpolate(x, (9, 4), mode="bilinear"))
case("interpolate", "nearest-scale-dynamic", {"x": (("N", 3, "H", "W"), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=2), lambda x: F.interpolate(x, scale_factor=2), DYN)
case("interpolate", "bicubic-corners", {"x": (("N", 2, 5, 6), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=1.5, mode="bicubic", align_corners=True),
     lambda x: F.interpolate(x, scale_factor=1.5, mode="bicubic", align_corners=True))
case("fc", "3d-dynamic", {"x": (("N", "T", 8), "float32")}, lambda w, x: tn.fc(x, w["fc"]),
     lambda x: F.linear(x, T["fc.weight"], T["fc.bias"]), ({"N": 2, "T": 3}, {"N": 1, "T": 5}), W)
case("bn", "2d", {"x": (("N", 4, "H", "W"), "float32")}, lambda w, x: tn.bn(x, w["bn"], eps=1e-3),
     lambda x: F.batch_norm(x, T["bn.running_mean"], T["bn.running_var"], T["bn.weight"], T["bn.bias"], eps=1e-3),
     DYN, W)
case("bn", "1d-flat", {"x": (("N", 4), "float32")}, lambda w, x: tn.bn(x, w["bn"]),
     lambda x: F.batch_norm(x, T["bn.running_mean"], T["bn.running_var"], T["bn.weight"], T["bn.bias"]), weights=W)
case("layer_norm", "last", {"x": (("N", "T", 8), "float32")}, lambda w, x: tn.layer_norm(x, w["ln"], 1e-6),
     lambda x: F.layer_norm(x, (8,), T["ln.weight"], T["ln.bias"], 1e-6), ({"N": 2, "T": 3}, {"N": 1, "T": 6}), W)
case("layer_norm", "last-two-no-affine", {"x": (("N", 3, 4, 5), "float32")},
     lambda w, x: tn.layer_norm(x, None, normalized_shape=(4, 5)), lambda x: F.layer_norm(x, (4, 5)))
case("softmax", "dim1", {"x": (("N", 5, "T"), "float32")}, lambda w, x: tn.softmax(x, 1),
     lambda x: F.softmax(x, 1), ({"N": 2, "T": 3}, {"N": 3, "T": 1}))
case("log_softmax", "last", {"x": (("N", 5), "float32")}, lambda w, x: tn.log_softmax(x, -1),
     lambda x: F.log_softmax(x, -1))
case("matmul", "batched-broadcast", {"a": (("N", 1, "T", 8), "float32"), "b": ((3, 8, 4), "float32")},
     lambda w, a, b: a @ b, torch.matmul, ({"N": 2, "T": 3}, {"N": 1, "T": 5}))
case("matmul", "vector", {"a": (("N", "T", 8), "float32"), "b": ((8,), "float32")},
     lambda w, a, b: tn.matmul(a, b), torch.matmul, ({"N": 2, "T": 3}, {"N": 1, "T": 5}))
case("const", "weight", {"x": (("N", 3, 8), "float32")}, lambda w, x: x + tn.constant(x, w, "k"),
     lambda x: x + T["k"], weights=W)
case("reshape", "fold-batch", {"x": (("N", 4, "H", 6), "float32")},
     lambda w, x: x.reshape(-1, 2, x.shape[2], 3), lambda x: x.reshape(-1, 2, x.shape[2], 3),
     ({"N": 2, "H": 3}, {"N": 3, "H": 5}))
case("reshape", "flatten-batch", {"x": (("N", "T", 4), "float32")}, lambda w, x: tn.flatten(x, 0, 1),
     lambda x: torch.flatten(x, 0, 1), ({"N": 2, "T": 3}, {"N": 3, "T": 1}))
case("reshape", "squeeze-unsqueeze", {"x": (("N", 1, 5), "float32")},
     lambda w, x: tn.unsqueeze(tn.squeeze(x, 1), -1), lambda x: x.squeeze(1).unsqueeze(-1))
case("permute", "batch-moves", {"x": (("N", 3, 2, "T", 4), "float32")},
     lambda w, x: tn.permute(x, (2, 0, 3, 1, 4)), lambda x: x.permute(2, 0, 3, 1, 4),
     ({"N": 2, "T": 3}, {"N": 3, "T": 1}))
case("slice", "getitem", {"x": (("N", 6, "T", 5), "float32")}, lambda w, x: x[:, 1:5:2, -2:, None, ..., 3],
     lambda x: x[:, 1:5:2, -2:, None, ..., 3], ({"N": 2, "T": 3}, {"N": 3, "T": 4}))
case("getitem", "batch-index", {"x": (("N", 3, 4), "float32")}, lambda w, x: tn.unbind(x[1:], 1),
     lambda x: x[1:].unbind(1), ({"N": 2}, {"N": 4}))
case("concat", "dynamic", {"a": (("N", 2, "T"), "float32"), "b": (("N", 3, "T"), "float32")},
     lambda w, a, b: [tn.cat([a, b], 1), tn.stack([a, a], 0)], lambda a, b: [torch.cat([a, b], 1), torch.stack([a, a])],
     ({"N": 2, "T": 3}, {"N": 1, "T": 5}))
case("expand", "batch", {"x": (("N", 1, 4), "float32"), "c": ((1, 1, 4), "float32")},
     lambda w, x, c: [x.expand(-1, 3, 4), tn.expand(c, (x.shape[0], 2, 4))],
     lambda x, c: [x.expand(-1, 3, 4), c.expand(x.shape[0], 2, 4)], ({"N": 2}, {"N": 3}))
case("softmax", "rank1-rank0-dtype", {"v": (("T",), "float32"), "h": (("T", 3), "float16")},
     lambda w, v, h: [tn.softmax(v, 0), tn.log_softmax(v, -1), tn.softmax(v[0], 0), tn.log_softmax(v[1], -1),
                      tn.softmax(h, -1, dtype="float32"), tn.log_softmax(h, 0, dtype="float32"), tn.softmax(h, None),
                      tn.log_softmax(v, None)],
     lambda v, h: [F.softmax(v, 0), F.log_softmax(v, -1), F.softmax(v[0], 0), F.log_softmax(v[1], -1),
                   F.softmax(h, -1, dtype=torch.float32), F.log_softmax(h, 0, dtype=torch.float32),
                   F.softmax(h.float(), None).half(), F.log_softmax(v, None)],
     ({"T": 2}, {"T": 5}))
case("log_softmax", "large-values", {"x": (("N", 5), "float32")}, lambda w, x: tn.log_softmax(x * 1000, -1),
     lambda x: F.log_softmax(x * 1000, -1))   # exp underflows: log of softmax would give -inf
case("concat", "promotes-dtypes", {"a": (("N", 2), "float32"), "i": (("N", 1), "int32"), "b": (("N", 3), "bool")},
     lambda w, a, i, b: [tn.cat([a, i], 1), tn.cat([i, b], -1), tn.stack([i, tn.cast(i, "int64")])],
     lambda a, i, b: [torch.cat([a, i], 1), torch.cat([i, b], -1), torch.stack([i, i.long()])], ({"N": 2}, {"N": 3}))
case("slice", "narrow-negative-start", {"x": (("N", 5, 4), "float32")},
     lambda w, x: [tn.narrow(x, 1, -2, 2), tn.narrow(x, -1, -4, 3), x.narrow(0, 0, 1), tn.narrow(x, 0, -2, 2)],
     lambda x: [torch.narrow(x, 1, -2, 2), torch.narrow(x, -1, -4, 3), x.narrow(0, 0, 1), torch.narrow(x, 0, -2, 2)],
     ({"N": 2}, {"N": 3}))
case("permute", "movedim-several", {"x": (("N", 3, 2, 4), "float32")},
     lambda w, x: [tn.movedim(x, (0, 1), (2, 0)), tn.movedim(x, [-1], [0]), x.movedim((3, 0), (0, 3))],
     lambda x: [torch.movedim(x, (0, 1), (2, 0)), torch.movedim(x, [-1], [0]), x.movedim((3, 0), (0, 3))],
     ({"N": 2}, {"N": 1}))
case("avg_pool", "ceil-mode-counting-padding", {"x": (("N", 3, 7, 8), "float32"), "v": (("N", 2, 7), "float32"),
                                                "u": (("N", 1, 5, 6, 7), "float32")},
     lambda w, x, v, u: [tn.avg_pool(x, 3, 2, 1, ceil_mode=True), tn.avg_pool(x, (3, 2), (3, 2), (1, 0), True),
                         tn.avg_pool(v, 2, 2, 1, True), tn.avg_pool(u, 3, 2, 1, True)],
     lambda x, v, u: [F.avg_pool2d(x, 3, 2, 1, ceil_mode=True), F.avg_pool2d(x, (3, 2), (3, 2), (1, 0), True),
                      F.avg_pool1d(v, 2, 2, 1, True), F.avg_pool3d(u, 3, 2, 1, True)], ({"N": 2}, {"N": 1}))
