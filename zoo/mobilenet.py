"""MobileNetV2 (Sandler et al., 2018) and MobileNetV3 (Howard et al., 2019) as torchvision builds them.

Both are a strided 3x3 stem, a stack of inverted residual blocks (1x1 expand, depthwise kxk, optional
squeeze-excitation, linear 1x1 project, identity shortcut where the shape is kept), a last 1x1 conv and a
linear head. `mobilenet_v3_features` is the MobileNetV3 body alone, with torchvision's dilated variant,
for the segmentation models that use it as their backbone.
"""
import functools

from trtnet import (Graph, bn, conv, dropout, fc, flatten, global_avg_pool, hardsigmoid, hardswish, relu, 
                    relu6)
from trtnet.zoo import register
from zoo import blocks

conv_bn_act = blocks.conv_bn_act
squeeze_excitation = functools.partial(blocks.squeeze_excitation, act=relu, scale_act=hardsigmoid)


# ---------------------------------------------------------------------------------------------------- V2

# t (expansion), c (output channels), n (repeats), s (stride of the first block): the paper's Table 2
MOBILENET_V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]


def inverted_residual_v2(x, w, out, stride, t):
    """conv.0 expands (unless t == 1), then a depthwise 3x3, then a linear 1x1 projection with its BatchNorm."""
    hidden, i = int(round(x.shape[1] * t)), 0
    y = x
    if t != 1:
        y, i = conv_bn_act(y, w["conv.0"], hidden, 1, act=relu6), 1
    y = conv_bn_act(y, w[f"conv.{i}"], hidden, 3, stride, groups=hidden, act=relu6)
    y = bn(conv(y, w[f"conv.{i + 1}"], out, 1), w[f"conv.{i + 2}"])
    return x + y if stride == 1 and x.shape[1] == out else y


@register("mobilenet_v2", (3, 224, 224), blocks.torchvision_model("mobilenet_v2"),
          doc="torchvision mobilenet_v2, 3x224x224",
          test_shape=(3, 64, 64))
def mobilenet_v2(w, shape, num_classes=1000):
    g = Graph("mobilenet_v2")
    f = w["features"]
    x = conv_bn_act(g.input("data", shape), f["0"], 32, 3, 2, act=relu6)
    i = 1
    for t, c, n, s in MOBILENET_V2:
        for j in range(n):
            x = inverted_residual_v2(x, f[str(i)], c, s if j == 0 else 1, t)
            i += 1
    x = conv_bn_act(x, f[str(i)], 1280, 1, act=relu6)
    x = flatten(global_avg_pool(x, name="avgpool"), 1)
    x = dropout(x, name="classifier.0")
    g.output(fc(x, w["classifier.1"], num_classes), "logits")
    return g


# ---------------------------------------------------------------------------------------------------- V3

# kernel, expanded channels, output channels, squeeze-excitation, activation, stride: the paper's Tables 1 and 2.
# The rows marked C4 form the last stage, which the dilated variant runs at stride 1 with dilation 2.
MOBILENET_V3 = {
    "large": dict(stem=16, last=1280, blocks=[
        (3, 16, 16, False, "RE", 1),
        (3, 64, 24, False, "RE", 2),     # C1
        (3, 72, 24, False, "RE", 1),
        (5, 72, 40, True, "RE", 2),      # C2
        (5, 120, 40, True, "RE", 1),
        (5, 120, 40, True, "RE", 1),
        (3, 240, 80, False, "HS", 2),    # C3
        (3, 200, 80, False, "HS", 1),
        (3, 184, 80, False, "HS", 1),
        (3, 184, 80, False, "HS", 1),
        (3, 480, 112, True, "HS", 1),
        (3, 672, 112, True, "HS", 1),
        (5, 672, 160, True, "HS", 2),    # C4
        (5, 960, 160, True, "HS", 1),
        (5, 960, 160, True, "HS", 1),
    ]),
    "small": dict(stem=16, last=1024, blocks=[
        (3, 16, 16, True, "RE", 2),      # C1
        (3, 72, 24, False, "RE", 2),     # C2
        (3, 88, 24, False, "RE", 1),
        (5, 96, 40, True, "HS", 2),      # C3
        (5, 240, 40, True, "HS", 1),
        (5, 240, 40, True, "HS", 1),
        (5, 120, 48, True, "HS", 1),
        (5, 144, 48, True, "HS", 1),
        (5, 288, 96, True, "HS", 2),     # C4
        (5, 576, 96, True, "HS", 1),
        (5, 576, 96, True, "HS", 1),
    ]),
}
V3_EPS = 1e-3      # torchvision builds MobileNetV3's BatchNorm with eps=0.001


def inverted_residual_v3(x, w, kernel, expanded, out, use_se, act, stride, dilation=1):
    """block.0 expands (unless the width is kept), then depthwise kxk, squeeze-excitation, linear 1x1 projection.

    A dilated block keeps stride 1, as torchvision does; the shortcut still follows the configured stride."""
    act = hardswish if act == "HS" else relu
    y, i = x, 0
    if expanded != x.shape[1]:
        y, i = conv_bn_act(y, w["block.0"], expanded, 1, act=act, eps=V3_EPS), 1
    y = conv_bn_act(y, w[f"block.{i}"], expanded, kernel, 1 if dilation > 1 else stride, expanded, dilation, act,
                    V3_EPS)
    if use_se:
        i += 1
        y = squeeze_excitation(y, w[f"block.{i}"], blocks.make_divisible(expanded // 4, 8))
    y = conv_bn_act(y, w[f"block.{i + 1}"], out, 1, eps=V3_EPS)
    return x + y if stride == 1 and x.shape[1] == out else y


def mobilenet_v3_blocks(arch="large", dilated=False):
    """Per-block (kernel, expanded, out, use_se, activation, stride, dilation), as torchvision's
    `_mobilenet_v3_conf(arch, dilated=...)` gives them: dilation 2 in the C4 stage when `dilated`."""
    blocks = MOBILENET_V3[arch]["blocks"]
    c4 = max(i for i, b in enumerate(blocks) if b[5] == 2)
    return [(*b, 2 if dilated and i >= c4 else 1) for i, b in enumerate(blocks)]


def mobilenet_v3_features(x, w, arch="large", dilated=False, upto=None, taps=()):
    """MobileNetV3's `features`: stem (index 0), one index per inverted residual block, last 1x1 conv.

    `w` is the view of the features' weights: `w["features"]` in the classifiers, `w["backbone"]` in
    torchvision's segmentation models (whose keys are `backbone.<index>...`). `dilated=True` is
    torchvision's `mobilenet_v3_large(dilated=True)`: output stride 16 instead of 32. `upto` stops after
    that index (default: the last, 16 for "large", 12 for "small"). Returns `(y, outs)`: the output of
    the last index computed and `{index: output of features.<index>}` for each index in `taps`.
    """
    conf = MOBILENET_V3[arch]
    blocks = mobilenet_v3_blocks(arch, dilated)
    last = len(blocks) + 1
    upto = last if upto is None else upto
    outs = {}
    x = conv_bn_act(x, w["0"], conf["stem"], 3, 2, act=hardswish, eps=V3_EPS)
    if 0 in taps:
        outs[0] = x
    for i, b in enumerate(blocks, start=1):
        if i > upto:
            break
        x = inverted_residual_v3(x, w[str(i)], *b)
        if i in taps:
            outs[i] = x
    if upto >= last:
        x = conv_bn_act(x, w[str(last)], 6 * blocks[-1][2], 1, act=hardswish, eps=V3_EPS)
        if last in taps:
            outs[last] = x
    missing = set(taps) - set(outs)
    if missing:
        raise ValueError(f"taps {sorted(missing)} are not feature indices 0..{upto}")
    return x, outs


def mobilenet_v3(w, shape, arch, num_classes=1000):
    g = Graph(f"mobilenet_v3_{arch}")
    x, _ = mobilenet_v3_features(g.input("data", shape), w["features"], arch)
    x = flatten(global_avg_pool(x, name="avgpool"), 1)
    x = hardswish(fc(x, w["classifier.0"], MOBILENET_V3[arch]["last"]), name="classifier.1")
    x = dropout(x, name="classifier.2")
    g.output(fc(x, w["classifier.3"], num_classes), "logits")
    return g


for _arch in ("small", "large"):
    _name = f"mobilenet_v3_{_arch}"
    register(_name, (3, 224, 224), blocks.torchvision_model(_name), doc=f"torchvision {_name}, 3x224x224",
             test_shape=(3, 64, 64))(functools.partial(mobilenet_v3, arch=_arch))
