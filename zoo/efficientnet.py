"""EfficientNet (Tan and Le, 2019) as torchvision builds it: a 3x3 stem, seven stages of MBConv blocks
(1x1 expand, depthwise kxk, squeeze-excitation, linear 1x1 project, identity shortcut where the shape is kept),
a last 1x1 conv and a linear head; SiLU throughout.

Stochastic depth only acts in training, so the shortcut is a plain addition here.
"""
import functools
import math

from trtnet import Graph, dropout, fc, flatten, global_avg_pool, sigmoid, silu
from trtnet.zoo import register
from zoo import blocks

conv_bn_act = functools.partial(blocks.conv_bn_act, act=silu)
squeeze_excitation = functools.partial(blocks.squeeze_excitation, act=silu, scale_act=sigmoid)


# expand ratio, kernel, stride of the first block, input channels, output channels, layers: torchvision's
# MBConvConfig list for efficientnet_b*, the paper's Table 1 (B0)
MBCONV = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
          (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]


def mbconv_config(width_mult=1.0, depth_mult=1.0):
    """MBCONV scaled as torchvision's MBConvConfig does: widths rounded to 8, depths rounded up."""
    return [(e, k, s, blocks.make_divisible(cin * width_mult, 8), blocks.make_divisible(cout * width_mult, 8),
             int(math.ceil(n * depth_mult))) for e, k, s, cin, cout, n in MBCONV]


def mbconv(x, w, expand_ratio, kernel, stride, out):
    """block.0 expands (unless the ratio is 1), then depthwise kxk, squeeze-excitation, linear 1x1 projection."""
    cin = x.shape[1]
    expanded = blocks.make_divisible(cin * expand_ratio, 8)
    y, i = x, 0
    if expanded != cin:
        y, i = conv_bn_act(y, w["block.0"], expanded, 1), 1
    y = conv_bn_act(y, w[f"block.{i}"], expanded, kernel, stride, expanded)
    y = squeeze_excitation(y, w[f"block.{i + 1}"], max(1, cin // 4))
    y = conv_bn_act(y, w[f"block.{i + 2}"], out, 1, act=None)
    return x + y if stride == 1 and cin == out else y


def efficientnet(w, shape, name, width_mult, depth_mult, num_classes=1000):
    g = Graph(name)
    f = w["features"]
    conf = mbconv_config(width_mult, depth_mult)
    x = conv_bn_act(g.input("data", shape), f["0"], conf[0][3], 3, 2)
    for stage, (e, k, s, _, out, layers) in enumerate(conf, start=1):
        for i in range(layers):
            x = mbconv(x, f[f"{stage}.{i}"], e, k, s if i == 0 else 1, out)
    x = conv_bn_act(x, f[str(len(conf) + 1)], 4 * conf[-1][4], 1)
    x = flatten(global_avg_pool(x, name="avgpool"), 1)
    x = dropout(x, name="classifier.0")
    g.output(fc(x, w["classifier.1"], num_classes), "logits")
    return g


register("efficientnet_b0", (3, 224, 224), blocks.torchvision_model("efficientnet_b0"),
         doc="torchvision efficientnet_b0, 3x224x224", test_shape=(3, 64, 64))(
    functools.partial(efficientnet, name="efficientnet_b0", width_mult=1.0, depth_mult=1.0))
