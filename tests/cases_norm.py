"""Cases of normalization layers: group, instance and RMS norm, F.normalize, and batch/layer norm on more ranks."""
import numpy as np
import torch
import torch.nn.functional as F

import trtnet as tn
from op_cases import case

R = np.random.default_rng(3)


def _w(*shape):
    return R.standard_normal(shape).astype(np.float32)


W = {"gn.weight": _w(6), "gn.bias": _w(6), "in.weight": _w(4), "in.bias": _w(4), "rms.weight": _w(8),
     "rms2.weight": _w(3, 8), "bn.weight": _w(4), "bn.bias": _w(4), "bn.running_mean": _w(4),
     "bn.running_var": np.abs(_w(4)) + 0.5, "ln.weight": _w(5, 6), "ln.bias": _w(5, 6)}
T = {k: torch.from_numpy(v) for k, v in W.items()}
DYN = ({"N": 2, "H": 5, "W": 4}, {"N": 3, "H": 3, "W": 7})

case("group_norm", "affine-dynamic", {"x": (("N", 6, "H", "W"), "float32")},
     lambda w, x: tn.group_norm(x, 3, w["gn"], eps=1e-4),
     lambda x: F.group_norm(x, 3, T["gn.weight"], T["gn.bias"], 1e-4), DYN, W)
case("group_norm", "one-and-all-groups", {"x": (("N", 6, "L"), "float32")},
     lambda w, x: [tn.group_norm(x, 1, w["gn"]), tn.group_norm(x, 6)],
     lambda x: [F.group_norm(x, 1, T["gn.weight"], T["gn.bias"]), F.group_norm(x, 6)],
     ({"N": 2, "L": 5}, {"N": 1, "L": 9}), W)
case("group_norm", "2d-input", {"x": (("N", 6), "float32")}, lambda w, x: tn.group_norm(x, 2, w["gn"]),
     lambda x: F.group_norm(x, 2, T["gn.weight"], T["gn.bias"]), ({"N": 2}, {"N": 3}), W)
case("instance_norm", "affine-2d", {"x": (("N", 4, "H", "W"), "float32")},
     lambda w, x: tn.instance_norm(x, w["in"], eps=1e-3),
     lambda x: F.instance_norm(x, weight=T["in.weight"], bias=T["in.bias"], eps=1e-3), DYN, W)
case("instance_norm", "plain-1d-3d", {"x": (("N", 4, "L"), "float32"), "v": (("N", 2, 3, "L", 4), "float32")},
     lambda w, x, v: [tn.instance_norm(x), tn.instance_norm(v)],
     lambda x, v: [F.instance_norm(x), F.instance_norm(v)], ({"N": 2, "L": 5}, {"N": 1, "L": 3}))
case("rms_norm", "weight", {"x": (("N", "T", 8), "float32")}, lambda w, x: tn.rms_norm(x, w["rms"], eps=1e-6),
     lambda x: F.rms_norm(x, (8,), T["rms.weight"], 1e-6), ({"N": 2, "T": 3}, {"N": 1, "T": 6}), W)
case("rms_norm", "two-dims-default-eps", {"x": (("N", "T", 3, 8), "float32")},
     lambda w, x: [tn.rms_norm(x, w["rms2"]), tn.rms_norm(x, normalized_shape=8)],
     lambda x: [F.rms_norm(x, (3, 8), T["rms2.weight"]), F.rms_norm(x, (8,))],
     ({"N": 2, "T": 3}, {"N": 1, "T": 2}), W)
case("normalize", "l2-l1-p3", {"x": (("N", 5, "T"), "float32")},
     lambda w, x: [tn.normalize(x), tn.normalize(x, p=1, dim=-1), tn.normalize(x, p=3.0, dim=0, eps=1e-6)],
     lambda x: [F.normalize(x), F.normalize(x, p=1, dim=-1), F.normalize(x, p=3.0, dim=0, eps=1e-6)],
     ({"N": 2, "T": 3}, {"N": 3, "T": 4}), tol=1e-5)
case("normalize", "zero-rows", {"x": (("N", 4), "float32")}, lambda w, x: tn.normalize(x, dim=1),
     lambda x: F.normalize(x, dim=1), ({"N": 3},),
     make=lambda name, shape, dtype, rng: np.where(np.arange(shape[0])[:, None] == 1, 0,
                                                   rng.standard_normal(shape)).astype(dtype))
case("bn", "3d-sequence", {"x": (("N", 4, "L"), "float32")}, lambda w, x: tn.bn(x, w["bn"]),
     lambda x: F.batch_norm(x, T["bn.running_mean"], T["bn.running_var"], T["bn.weight"], T["bn.bias"]),
     ({"N": 2, "L": 5}, {"N": 3, "L": 1}), W)
case("bn", "5d-volume", {"x": (("N", 4, "D", 3, "W"), "float32")}, lambda w, x: tn.bn(x, w["bn"], eps=1e-3),
     lambda x: F.batch_norm(x, T["bn.running_mean"], T["bn.running_var"], T["bn.weight"], T["bn.bias"], eps=1e-3),
     ({"N": 2, "D": 2, "W": 4}, {"N": 1, "D": 3, "W": 2}), W)
case("layer_norm", "last-two-affine", {"x": (("N", "T", 5, 6), "float32")},
     lambda w, x: tn.layer_norm(x, w["ln"], normalized_shape=(5, 6)),
     lambda x: F.layer_norm(x, (5, 6), T["ln.weight"], T["ln.bias"]), ({"N": 2, "T": 3}, {"N": 1, "T": 2}), W)
case("layer_norm", "last-three", {"x": (("N", 2, 5, 6), "float32")},
     lambda w, x: tn.layer_norm(x, None, 1e-3, normalized_shape=(2, 5, 6)),
     lambda x: F.layer_norm(x, (2, 5, 6), eps=1e-3), ({"N": 2}, {"N": 3}))
case("local_response_norm", "alexnet", {"x": (("N", 7, "H", "W"), "float32")},
     lambda w, x: tn.local_response_norm(x, 5, alpha=1e-2, beta=0.75, k=2.0),
     lambda x: F.local_response_norm(x, 5, alpha=1e-2, beta=0.75, k=2.0), DYN)
case("local_response_norm", "even-size-3d-5d", {"x": (("N", 6, "L"), "float32"), "v": (("N", 4, 2, "L", 3), "float32")},
     lambda w, x, v: [tn.local_response_norm(x, 4, alpha=0.5), tn.local_response_norm(v, 2, beta=0.5)],
     lambda x, v: [F.local_response_norm(x, 4, alpha=0.5), F.local_response_norm(v, 2, beta=0.5)],
     ({"N": 2, "L": 5}, {"N": 1, "L": 3}))
case("normalize", "every-p", {"x": (("N", 5, "T"), "float32")},
     lambda w, x: [tn.normalize(x, float("inf"), -1), tn.normalize(x, p=float("-inf"), dim=0),
                   tn.normalize(x, 0, 1), tn.normalize(x - 3, -1.5, -2), tn.normalize(x, 0.5, 1)],
     lambda x: [F.normalize(x, float("inf"), -1), F.normalize(x, p=float("-inf"), dim=0), F.normalize(x, 0, 1),
                F.normalize(x - 3, -1.5, -2), F.normalize(x, 0.5, 1)],
     ({"N": 2, "T": 3}, {"N": 3, "T": 1}),   # some zeros, which p 0 counts (none in x - 3, for negative p)
     make=lambda n, s, d, r: (r.standard_normal(s) * (r.random(s) > 0.2)).astype(d))


def _half(fn):
    """torch's float32 result rounded to float16: the network computes the float16 tensor in float16."""
    return lambda *xs: [y.half() for y in fn(*(x.float() for x in xs))]


case("layer_norm", "float16-tensors-in-float32-network",
     {"x": (("N", 6, 5, 6), "float16"), "k": ((2, 3, 4), "float16")},
     lambda w, x, k: [tn.layer_norm(x, w["ln"], normalized_shape=(5, 6)), tn.group_norm(x, 3, w["gn"]),
                      tn.instance_norm(x), tn.normalize(x, 3.0, 1), tn.normalize(x, dim=-1), tn.rms_norm(x, None, 6),
                      tn.var(x, (2, 3)), tn.logsumexp(x, 1), tn.interpolate(x, scale_factor=1.5, mode="bilinear"),
                      tn.adaptive_avg_pool(x, (3, 2)), tn.scaled_dot_product_attention(k, k, k)],
     _half(lambda x, k: [F.layer_norm(x, (5, 6), T["ln.weight"], T["ln.bias"]),
                         F.group_norm(x, 3, T["gn.weight"], T["gn.bias"]), F.instance_norm(x), F.normalize(x, 3.0, 1),
                         F.normalize(x, dim=-1), F.rms_norm(x, (6,), eps=torch.finfo(torch.float16).eps),
                         torch.var(x, (2, 3)), torch.logsumexp(x, 1),
                         F.interpolate(x, scale_factor=1.5, mode="bilinear"), F.adaptive_avg_pool2d(x, (3, 2)),
                         F.scaled_dot_product_attention(k, k, k)]),
     ({"N": 2}, {"N": 1}), W, tol=1e-2)
