"""Cases of convolution, pooling, padding and resizing: 1D to 3D, transposed convolution, dilated and adaptive
max pooling, F.pad's modes, pixel (un)shuffle and every interpolation mode."""
import numpy as np
import torch
import torch.nn.functional as F

import trtnet as tn
from op_cases import case

R = np.random.default_rng(2)
L2 = ({"N": 2, "L": 9}, {"N": 1, "L": 14})
HW = ({"N": 2, "H": 9, "W": 8}, {"N": 1, "H": 12, "W": 7})
DHW = ({"N": 1, "D": 4, "H": 5}, {"N": 2, "D": 6, "H": 3})


def _w(*shape):
    return R.standard_normal(shape).astype(np.float32)


W = {"t2.weight": _w(4, 6, 3, 3), "t2.bias": _w(6), "t1.weight": _w(3, 5, 4), "t1.bias": _w(5),
     "t3.weight": _w(4, 3, 2, 3, 2), "td.weight": _w(2, 3, 3, 2), "td.bias": _w(3), "c1.weight": _w(4, 3, 3),
     "c1.bias": _w(4), "cu.weight": _w(6, 2, 2, 4), "cu.bias": _w(6)}
T = {k: torch.from_numpy(v) for k, v in W.items()}


# --- 1D convolution and pooling ----------------------------------------------------------------
case("conv", "1d-stride-bias", {"x": (("N", 3, "L"), "float32")}, lambda w, x: tn.conv(x, w["c1"], stride=2, padding=1),
     lambda x: F.conv1d(x, T["c1.weight"], T["c1.bias"], 2, 1), L2, W)
case("max_pool", "1d-pad-ceil", {"x": (("N", 3, 11), "float32")}, lambda w, x: tn.max_pool(x, 3, 2, 1, ceil_mode=True),
     lambda x: F.max_pool1d(x, 3, 2, 1, ceil_mode=True))
case("avg_pool", "1d-dynamic", {"x": (("N", 3, "L"), "float32")}, lambda w, x: tn.avg_pool(x, 4, 2, 2),
     lambda x: F.avg_pool1d(x, 4, 2, 2), L2)

# --- transposed convolution ------------------------------------------------------------------------
case("conv_transpose", "2d-dynamic", {"x": (("N", 4, "H", "W"), "float32")},
     lambda w, x: tn.conv_transpose(x, w["t2"], stride=2, padding=1, output_padding=1),
     lambda x: F.conv_transpose2d(x, T["t2.weight"], T["t2.bias"], 2, 1, 1), HW, W)
case("conv_transpose", "1d-output-padding-past-padding", {"x": (("N", 3, "L"), "float32")},
     lambda w, x: tn.conv_transpose(x, w["t1"], stride=3, output_padding=2),
     lambda x: F.conv_transpose1d(x, T["t1.weight"], T["t1.bias"], 3, 0, 2), L2, W)
case("conv_transpose", "3d-groups-dilation", {"x": (("N", 4, "D", "H", 3), "float32")},
     lambda w, x: tn.conv_transpose(x, w["t3"], stride=3, output_padding=2, groups=2, dilation=2),
     lambda x: F.conv_transpose3d(x, T["t3.weight"], None, 3, 0, 2, 2, 2), DHW, W)
case("conv_transpose", "2d-dilation-output-padding", {"x": (("N", 2, "H", "W"), "float32")},
     lambda w, x: tn.conv_transpose(x, w["td"], stride=(1, 2), padding=(1, 0), output_padding=(1, 1), dilation=2),
     lambda x: F.conv_transpose2d(x, T["td.weight"], T["td.bias"], (1, 2), (1, 0), (1, 1), 1, 2), HW, W)

# --- dilated and adaptive pooling ------------------------------------------------------------------
case("max_pool", "2d-dilation-dynamic", {"x": (("N", 3, "H", "W"), "float32")},
     lambda w, x: tn.max_pool(x, 3, 2, 1, dilation=2), lambda x: F.max_pool2d(x, 3, 2, 1, dilation=2), HW)
case("max_pool", "stride1-ceil-dynamic", {"x": (("N", 3, "H", "W"), "float32")},   # HGNet's stem
     lambda w, x: tn.max_pool(tn.pad(x, (0, 1, 0, 1)), 2, 1, ceil_mode=True),
     lambda x: F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2, 1, ceil_mode=True), HW)
case("max_pool", "1d-dilation-ceil", {"x": (("N", 2, 12), "float32")},
     lambda w, x: tn.max_pool(x, 2, 3, 1, dilation=3, ceil_mode=True),
     lambda x: F.max_pool1d(x, 2, 3, 1, dilation=3, ceil_mode=True))
case("adaptive_max_pool", "1d-uneven", {"x": (("N", 3, 10), "float32")}, lambda w, x: tn.adaptive_max_pool(x, 3),
     lambda x: F.adaptive_max_pool1d(x, 3))
case("adaptive_max_pool", "2d-global-dynamic", {"x": (("N", 3, "H", "W"), "float32")},
     lambda w, x: tn.adaptive_max_pool(x, 1), lambda x: F.adaptive_max_pool2d(x, 1), HW)
case("adaptive_max_pool", "2d-even", {"x": (("N", 3, 8, 6), "float32")}, lambda w, x: tn.adaptive_max_pool(x, (4, 3)),
     lambda x: F.adaptive_max_pool2d(x, (4, 3)))
case("adaptive_max_pool", "3d-mixed", {"x": (("N", 2, "D", 7, 5), "float32")},
     lambda w, x: tn.adaptive_max_pool(x, (1, 3, 5)), lambda x: F.adaptive_max_pool3d(x, (1, 3, 5)), DHW)
case("adaptive_avg_pool", "1d-uneven", {"x": (("N", 3, 11), "float32")}, lambda w, x: tn.adaptive_avg_pool(x, 4),
     lambda x: F.adaptive_avg_pool1d(x, 4))
case("adaptive_avg_pool", "1d-even", {"x": (("N", 3, 12), "float32")}, lambda w, x: tn.adaptive_avg_pool(x, 4),
     lambda x: F.adaptive_avg_pool1d(x, 4))
case("adaptive_avg_pool", "3d-uneven", {"x": (("N", 2, 5, 7, 6), "float32")},
     lambda w, x: tn.adaptive_avg_pool(x, (2, 3, 4)), lambda x: F.adaptive_avg_pool3d(x, (2, 3, 4)))
case("adaptive_avg_pool", "dynamic-to-1-with-uneven", {"x": (("N", 3, "H", 7), "float32")},
     lambda w, x: tn.adaptive_avg_pool(x, (1, 3)), lambda x: F.adaptive_avg_pool2d(x, (1, 3)), HW)

# --- padding ------------------------------------------------------------------------------------
case("pad", "constant-crop-dynamic", {"x": (("N", 3, "H", "W"), "float32")},
     lambda w, x: tn.pad(x, (1, -2, 0, 3), value=1.5), lambda x: F.pad(x, (1, -2, 0, 3), value=1.5), HW)
case("pad", "constant-batch-channel", {"x": (("N", 3, "L"), "float32")},
     lambda w, x: tn.pad(x, (0, 0, 2, 1, 1, 0)), lambda x: F.pad(x, (0, 0, 2, 1, 1, 0)), L2)
case("pad", "constant-int", {"x": (("N", 5), "int32")}, lambda w, x: tn.pad(x, (2, 1), value=7),
     lambda x: F.pad(x, (2, 1), value=7))
case("pad", "reflect-2d-dynamic", {"x": (("N", 3, "H", "W"), "float32")},
     lambda w, x: tn.pad(x, (2, 3, 1, 0), mode="reflect"), lambda x: F.pad(x, (2, 3, 1, 0), mode="reflect"), HW)
case("pad", "reflect-crop", {"x": (("N", 2, "L"), "float32")},
     lambda w, x: tn.pad(x, (3, -2), mode="reflect"), lambda x: F.pad(x, (3, -2), mode="reflect"), L2)
case("pad", "replicate-3d", {"x": (("N", 2, "D", "H", 3), "float32")},
     lambda w, x: tn.pad(x, (1, 2, 0, 1, 2, 2), mode="replicate"),
     lambda x: F.pad(x, (1, 2, 0, 1, 2, 2), mode="replicate"), DHW)
case("pad", "circular-1d", {"x": (("N", 2, "L"), "float32")},
     lambda w, x: tn.pad(x, (4, 2), mode="circular"), lambda x: F.pad(x, (4, 2), mode="circular"), L2)
case("pad", "circular-2d-unbatched", {"x": ((2, "H", "W"), "float32")},
     lambda w, x: tn.pad(x, (1, 1, 2, 0), mode="circular"), lambda x: F.pad(x, (1, 1, 2, 0), mode="circular"),
     ({"H": 3, "W": 4}, {"H": 5, "W": 2}))

# --- pixel shuffle ---------------------------------------------------------------------------------
case("pixel_shuffle", "dynamic", {"x": (("N", 8, "H", "W"), "float32")}, lambda w, x: tn.pixel_shuffle(x, 2),
     lambda x: F.pixel_shuffle(x, 2), HW)
case("pixel_unshuffle", "dynamic-batch", {"x": (("N", 2, 6, 9), "float32")}, lambda w, x: tn.pixel_unshuffle(x, 3),
     lambda x: F.pixel_unshuffle(x, 3), ({"N": 2}, {"N": 3}))
# The test profile's H and W range over 1..16, sizes no reshape by 3 holds: checked by the interpreter only.
case("pixel_unshuffle", "dynamic", {"x": (("N", 2, "H", "W"), "float32")},
     lambda w, x: tn.pixel_unshuffle(x, 3), lambda x: F.pixel_unshuffle(x, 3),
     ({"N": 2, "H": 9, "W": 6}, {"N": 1, "H": 3, "W": 12}), engine=False)
case("pixel_shuffle", "extra-batch-dims", {"x": (("N", 2, 9, 2, 3), "float32")},
     lambda w, x: tn.pixel_unshuffle(tn.pixel_shuffle(x, 3), 3), lambda x: F.pixel_unshuffle(F.pixel_shuffle(x, 3), 3))

# --- interpolation ------------------------------------------------------------------------------
case("interpolate", "linear-1d-scale-dynamic", {"x": (("N", 3, "L"), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=2, mode="linear"),
     lambda x: F.interpolate(x, scale_factor=2, mode="linear"), L2)
case("interpolate", "linear-1d-size-corners", {"x": (("N", 3, "L"), "float32")},
     lambda w, x: tn.interpolate(x, size=13, mode="linear", align_corners=True),
     lambda x: F.interpolate(x, size=13, mode="linear", align_corners=True), L2)
case("interpolate", "linear-1d-fractional-scale", {"x": (("N", 3, 7), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=1.7, mode="linear"),
     lambda x: F.interpolate(x, scale_factor=1.7, mode="linear"))
case("interpolate", "trilinear-scale-dynamic", {"x": (("N", 2, "D", "H", 4), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=(2, 3, 1), mode="trilinear"),
     lambda x: F.interpolate(x, scale_factor=(2, 3, 1), mode="trilinear"), DHW)
case("interpolate", "trilinear-size-corners", {"x": (("N", 2, 3, 4, 5), "float32")},
     lambda w, x: tn.interpolate(x, size=(5, 1, 9), mode="trilinear", align_corners=True),
     lambda x: F.interpolate(x, size=(5, 1, 9), mode="trilinear", align_corners=True))
case("interpolate", "nearest-3d-size", {"x": (("N", 2, "D", "H", 4), "float32")},
     lambda w, x: tn.interpolate(x, size=(7, 2, 9)), lambda x: F.interpolate(x, size=(7, 2, 9)), DHW)
case("interpolate", "nearest-3d-fractional-scale", {"x": (("N", 2, 5, 4, 3), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=(0.6, 1.5, 2.5)),
     lambda x: F.interpolate(x, scale_factor=(0.6, 1.5, 2.5)))
case("interpolate", "bicubic-size-dynamic", {"x": (("N", 2, "H", "W"), "float32")},
     lambda w, x: tn.interpolate(x, size=(11, 5), mode="bicubic"),
     lambda x: F.interpolate(x, size=(11, 5), mode="bicubic"), HW)
case("interpolate", "bicubic-scale-dynamic", {"x": (("N", 2, "H", "W"), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=2, mode="bicubic"),
     lambda x: F.interpolate(x, scale_factor=2, mode="bicubic"), HW)
case("interpolate", "bicubic-corners-dynamic", {"x": (("N", 2, "H", "W"), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=3, mode="bicubic", align_corners=True),
     lambda x: F.interpolate(x, scale_factor=3, mode="bicubic", align_corners=True), HW)
case("interpolate", "bicubic-fractional-scale", {"x": (("N", 2, 5, 6), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=(1.5, 0.7), mode="bicubic"),
     lambda x: F.interpolate(x, scale_factor=(1.5, 0.7), mode="bicubic"))
case("interpolate", "bilinear-fractional-scale", {"x": (("N", 2, 5, 6), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=1.5, mode="bilinear"),
     lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear"))

case("slice", "unfold-dynamic", {"x": (("N", 3, "H", "W"), "float32")},
     lambda w, x: tn.unfold(x, (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)),
     lambda x: F.unfold(x, (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)),
     ({"N": 2, "H": 7, "W": 8}, {"N": 1, "H": 9, "W": 11}))
case("conv_transpose", "fold", {"x": (("N", 12, 24), "float32")},
     lambda w, x: tn.fold(x, (7, 8), (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)),
     lambda x: F.fold(x, (7, 8), (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)), ({"N": 2}, {"N": 1}))
case("conv_transpose", "fold-unbatched-overlapping", {"x": ((2 * 9, 49), "float32")},
     lambda w, x: tn.fold(x, 9, 3), lambda x: F.fold(x, 9, 3))

# --- interpolation: torch's other modes and arguments -------------------------------------------------
case("interpolate", "nearest-exact-size-dynamic", {"x": (("N", 2, "H", "W"), "float32")},
     lambda w, x: tn.interpolate(x, size=(13, 5), mode="nearest-exact"),
     lambda x: F.interpolate(x, size=(13, 5), mode="nearest-exact"), HW)
case("interpolate", "nearest-exact-3d-fractional-scale", {"x": (("N", 2, 5, 4, 6), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=(0.6, 1.5, 1.7), mode="nearest-exact"),
     lambda x: F.interpolate(x, scale_factor=(0.6, 1.5, 1.7), mode="nearest-exact"))
case("interpolate", "bilinear-recompute-scale", {"x": (("N", 2, 5, 6), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=1.7, mode="bilinear", recompute_scale_factor=True),
     lambda x: F.interpolate(x, scale_factor=1.7, mode="bilinear", recompute_scale_factor=True))
case("interpolate", "nearest-1d-recompute-scale", {"x": (("N", 2, 7), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=0.6, recompute_scale_factor=True),
     lambda x: F.interpolate(x, scale_factor=0.6, recompute_scale_factor=True))
case("interpolate", "area-3d", {"x": (("N", 2, 5, 7, 6), "float32")},
     lambda w, x: tn.interpolate(x, size=(2, 3, 4), mode="area"),
     lambda x: F.interpolate(x, size=(2, 3, 4), mode="area"))
case("interpolate", "area-scale", {"x": (("N", 2, 9, 8), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=0.45, mode="area"),
     lambda x: F.interpolate(x, scale_factor=0.45, mode="area"))
case("interpolate", "bilinear-antialias", {"x": (("N", 2, 9, 11), "float32")},
     lambda w, x: tn.interpolate(x, size=(4, 13), mode="bilinear", antialias=True),
     lambda x: F.interpolate(x, size=(4, 13), mode="bilinear", antialias=True))
case("interpolate", "bicubic-antialias-corners", {"x": (("N", 2, 9, 11), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=(0.3, 0.5), mode="bicubic", align_corners=True, antialias=True),
     lambda x: F.interpolate(x, scale_factor=(0.3, 0.5), mode="bicubic", align_corners=True, antialias=True))
# A scale that keeps a length: PyTorch copies that dim in linear modes and 2-D nearest, and scales it otherwise.
case("interpolate", "bilinear-scale-keeping-a-length", {"x": (("N", 2, 7, 3), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=(1.5, 1.3), mode="bilinear"),
     lambda x: F.interpolate(x, scale_factor=(1.5, 1.3), mode="bilinear"))
case("interpolate", "nearest-3d-scale-keeping-a-length", {"x": (("N", 2, 5, 7, 3), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=(2.5, 0.5, 1.3)),
     lambda x: F.interpolate(x, scale_factor=(2.5, 0.5, 1.3)))
case("interpolate", "fractional-static-and-integral-dynamic-scales", {"x": (("N", 2, "H", 5), "float32")},
     lambda w, x: tn.interpolate(x, scale_factor=(2, 1.5), mode="bicubic"),
     lambda x: F.interpolate(x, scale_factor=(2, 1.5), mode="bicubic"), HW[:1] + ({"N": 1, "H": 4},))
case("interpolate", "upsample-argument-order", {"x": (("N", 2, 5, 6), "float32")},
     lambda w, x: tn.upsample(x, None, 1.5, "bicubic", True), lambda x: F.interpolate(x, None, 1.5, "bicubic", True))

# --- pooling: unbatched inputs (torch's F.*_pool{n}d on (C, *spatial)), divisor_override -------------------
case("max_pool", "2d-unbatched-dynamic", {"x": ((3, "H", "W"), "float32")},
     lambda w, x: tn.max_pool(x, 3, 2, 1, dims=2), lambda x: F.max_pool2d(x, 3, 2, 1),
     ({"H": 9, "W": 8}, {"H": 12, "W": 7}))
case("max_pool", "3d-unbatched-dilation-ceil", {"x": ((2, 7, 6, 9), "float32")},
     lambda w, x: tn.max_pool(x, (2, 3, 2), 2, 1, dilation=(2, 1, 3), ceil_mode=True),
     lambda x: F.max_pool3d(x, (2, 3, 2), 2, 1, dilation=(2, 1, 3), ceil_mode=True))
case("avg_pool", "1d-unbatched-kernel-tuple", {"x": ((3, "L"), "float32")},
     lambda w, x: tn.avg_pool(x, (3,), 2, 1), lambda x: F.avg_pool1d(x, 3, 2, 1), ({"L": 9}, {"L": 14}))
case("avg_pool", "2d-divisor-override-ceil", {"x": (("N", 3, 7, 9), "float32")},
     lambda w, x: tn.avg_pool(x, 3, 2, 1, ceil_mode=True, divisor_override=5),
     lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, divisor_override=5))
case("avg_pool", "3d-divisor-override-unbatched", {"x": ((2, 5, "H", "W"), "float32")},
     lambda w, x: tn.avg_pool(x, 2, (1, 2, 2), count_include_pad=False, divisor_override=3, dims=3),
     lambda x: F.avg_pool3d(x, 2, (1, 2, 2), count_include_pad=False, divisor_override=3),
     ({"H": 9, "W": 8}, {"H": 12, "W": 7}))
case("adaptive_avg_pool", "2d-unbatched", {"x": ((3, 7, 6), "float32")},
     lambda w, x: tn.adaptive_avg_pool(x, 3, dims=2), lambda x: F.adaptive_avg_pool2d(x, 3))
case("adaptive_max_pool", "1d-unbatched", {"x": ((3, 11), "float32")},
     lambda w, x: tn.adaptive_max_pool(x, (4,)), lambda x: F.adaptive_max_pool1d(x, (4,)))

# --- unbatched convolution (weights of the input's rank + 1), F.pad's value=None -----------------------------
case("conv", "2d-unbatched-same-even-kernel-dilation", {"x": ((4, "H", "W"), "float32")},
     lambda w, x: tn.conv(x, w["cu"], padding="same", dilation=(1, 3), groups=2),
     lambda x: F.conv2d(x, T["cu.weight"], T["cu.bias"], 1, "same", (1, 3), 2), ({"H": 9, "W": 8}, {"H": 12, "W": 7}),
     {"cu.weight": W["cu.weight"], "cu.bias": W["cu.bias"]})
case("conv_transpose", "1d-unbatched", {"x": ((3, "L"), "float32")},
     lambda w, x: tn.conv_transpose(x, w["t1"], stride=2, padding=1, output_padding=1),
     lambda x: F.conv_transpose1d(x, T["t1.weight"], T["t1.bias"], 2, 1, 1), ({"L": 9}, {"L": 14}), W)
case("pad", "value-none", {"x": (("N", 3, 4), "float32")}, lambda w, x: tn.pad(x, (1, 2), value=None),
     lambda x: F.pad(x, (1, 2), value=None))
case("max_pool", "2d-return-indices-dilation-ceil", {"x": (("N", 3, 7, 6), "float32")},
     lambda w, x: list(tn.max_pool(x, 2, 3, 1, dilation=2, ceil_mode=True, return_indices=True)),
     lambda x: list(F.max_pool2d(x, 2, 3, 1, dilation=2, ceil_mode=True, return_indices=True)))
case("max_pool", "1d-return-indices-unbatched-ties", {"x": ((3, 11), "float32")},   # the first maximum of a window
     lambda w, x: list(tn.max_pool(x, 3, 2, 1, return_indices=True, dims=1)),
     lambda x: list(F.max_pool1d(x, 3, 2, 1, return_indices=True)),
     make=lambda name, shape, dtype, rng: rng.integers(-2, 3, shape).astype(dtype))
# ceil_mode on run-time sizes where no window can start in the padding (stride <= kernel extent - padding): TensorRT's
# round-up windows
case("max_pool", "2d-ceil-dynamic", {"x": (("N", 3, "H", "W"), "float32")},
     lambda w, x: tn.max_pool(x, 3, 2, 1, ceil_mode=True), lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), HW)
case("max_pool", "1d-ceil-dilation-dynamic", {"x": (("N", 3, "L"), "float32")},
     lambda w, x: tn.max_pool(x, 3, 2, 1, dilation=2, ceil_mode=True),
     lambda x: F.max_pool1d(x, 3, 2, 1, dilation=2, ceil_mode=True), L2)
case("avg_pool", "2d-ceil-dynamic", {"x": (("N", 3, "H", "W"), "float32")},
     lambda w, x: tn.avg_pool(x, 3, 2, ceil_mode=True), lambda x: F.avg_pool2d(x, 3, 2, ceil_mode=True), HW)
case("avg_pool", "3d-ceil-excluding-padding-dynamic", {"x": (("N", 2, "D", "H", 3), "float32")},
     lambda w, x: tn.avg_pool(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
     lambda x: F.avg_pool3d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), DHW)
