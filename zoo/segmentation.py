"""Semantic segmentation as torchvision builds it: a dilated backbone, a dense head, a bilinear upsample.

- FCN (Long et al., 2015): ResNet-50 with stages 3-4 dilated (output stride 8), then a 3x3 conv head.
- DeepLabV3 (Chen et al., 2017): MobileNetV3-Large with its last stage dilated (output stride 16), then
  Atrous Spatial Pyramid Pooling: a 1x1 branch, three dilated 3x3 branches and an image-pooling branch.
- LR-ASPP (Howard et al., 2019): the same backbone's stride-16 features gated by their global average,
  upsampled to the stride-8 features and summed with a classifier of those.

Only the main output ("out", the class scores at the input resolution) is built; the auxiliary heads are off.
"""
import functools

from trtnet import Graph, bn, concat, conv, dropout, global_avg_pool, interpolate, relu, sigmoid
from trtnet.zoo import register
from zoo import blocks
from zoo.mobilenet import mobilenet_v3_blocks, mobilenet_v3_features
from zoo.resnet import backbone as resnet_backbone, bottleneck


def conv_bn_relu(x, w, out, k=1, dilation=1):
    """nn.Sequential(Conv2d(bias=False), BatchNorm2d, ReLU): modules "0" and "1"."""
    return relu(bn(conv(x, w["0"], out, k, 1, dilation * (k // 2), dilation), w["1"]))


def resize_to(x, size, name):
    """F.interpolate(x, size, mode="bilinear", align_corners=False), as every torchvision head does."""
    return interpolate(x, size=size, mode="bilinear", align_corners=False, name=name)


def fcn_head(x, w, num_classes):
    """FCNHead: 3x3 conv to a quarter of the channels, BN, ReLU, dropout, 1x1 classifier."""
    y = conv_bn_relu(x, w, x.shape[1] // 4, 3)
    y = dropout(y, name=w.full("3"))
    return conv(y, w["4"], num_classes, 1)


def aspp_pooling(x, w, out):
    """Image-level features: global average, 1x1 conv, BN, ReLU, spread back over the feature map."""
    y = global_avg_pool(x, name=w.full("0"))
    y = relu(bn(conv(y, w["1"], out, 1), w["2"]))
    return resize_to(y, x.shape[2:], w.full("interpolate"))


def aspp(x, w, rates=(12, 24, 36), out=256):
    """ASPP: parallel 1x1, dilated 3x3 and pooling branches, concatenated and projected by a 1x1 conv."""
    branches = [conv_bn_relu(x, w["convs.0"], out, 1)]
    branches += [conv_bn_relu(x, w[f"convs.{i}"], out, 3, rate) for i, rate in enumerate(rates, start=1)]
    branches.append(aspp_pooling(x, w[f"convs.{len(rates) + 1}"], out))
    y = conv_bn_relu(concat(branches, 1, name=w.full("cat")), w["project"], out, 1)
    return dropout(y, name=w.full("project.3"))


def deeplab_head(x, w, num_classes, out=256):
    """DeepLabHead: ASPP, a 3x3 conv, BN, ReLU and a 1x1 classifier."""
    y = aspp(x, w["0"], out=out)
    y = relu(bn(conv(y, w["1"], out, 3, padding=1), w["2"]))
    return conv(y, w["4"], num_classes, 1)


def lraspp_head(low, high, w, num_classes, inter=128):
    """LRASPPHead: 1x1 conv of the high features gated by their pooled sigmoid, upsampled, plus a low classifier."""
    x = relu(bn(conv(high, w["cbr.0"], inter, 1), w["cbr.1"]))
    s = sigmoid(conv(global_avg_pool(high, name=w.full("scale.0")), w["scale.1"], inter, 1))
    x = resize_to(x * s, low.shape[2:], w.full("interpolate"))
    return conv(low, w["low_classifier"], num_classes, 1) + conv(x, w["high_classifier"], num_classes, 1)


def mobilenet_v3_large_dilated(x, w):
    """torchvision's segmentation backbone: dilated MobileNetV3-Large `features` behind an IntermediateLayerGetter.

    Returns "low", the output of the block that brings the resolution down to stride 8 (C2, `features.4`), and
    "high", that of the last index (C5, output stride 16), found from the strided blocks as torchvision does."""
    blocks = mobilenet_v3_blocks("large", dilated=True)
    stage_indices = [0] + [i for i, b in enumerate(blocks, start=1) if b[5] > 1] + [len(blocks) + 1]
    low_pos = stage_indices[-4]
    high, taps = mobilenet_v3_features(x, w, "large", dilated=True, taps=(low_pos,))
    return taps[low_pos], high


def fcn_resnet50_scores(x, w, num_classes):
    x = resnet_backbone(x, w["backbone"], bottleneck, (3, 4, 6, 3), dilate=(False, True, True))
    return fcn_head(x, w["classifier"], num_classes)


def deeplabv3_mobilenet_v3_large_scores(x, w, num_classes):
    _, high = mobilenet_v3_large_dilated(x, w["backbone"])
    return deeplab_head(high, w["classifier"], num_classes)


def lraspp_mobilenet_v3_large_scores(x, w, num_classes):
    low, high = mobilenet_v3_large_dilated(x, w["backbone"])
    return lraspp_head(low, high, w["classifier"], num_classes)


def segmentation(w, shape, name, scores, num_classes=21):
    """`scores(input, weights, num_classes)` at the backbone's resolution, resized to the input's: output "out"."""
    g = Graph(name)
    x = g.input("data", shape)
    g.output(resize_to(scores(x, w, num_classes), shape[1:], "interpolate"), "out")
    return g


VARIANTS = {
    "fcn_resnet50": fcn_resnet50_scores,
    "deeplabv3_mobilenet_v3_large": deeplabv3_mobilenet_v3_large_scores,
    "lraspp_mobilenet_v3_large": lraspp_mobilenet_v3_large_scores,
}

for _name, _scores in VARIANTS.items():
    # 520 as torchvision's evaluation presets; resizes to exact sizes handle the uneven 33 -> 65 -> 520 steps.
    # The test shape keeps every feature map at least 4x4.
    register(_name, (3, 520, 520),
             blocks.torchvision_model(_name, "torchvision.models.segmentation", weights=None, weights_backbone=None,
                               aux_loss=False),
             doc=f"torchvision {_name} (21 classes, no aux head), 3x520x520", test_shape=(3, 64, 64))(
        functools.partial(segmentation, name=_name, scores=_scores))
