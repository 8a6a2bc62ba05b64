"""ResNet (He et al., 2015) as torchvision builds it: a 7x7 stem, four stages of residual blocks, a linear head.

Also ResNeXt and Wide ResNet, which only change the bottleneck's width and groups.
"""
import functools

from trtnet import Graph, bn, conv, fc, global_avg_pool, max_pool, relu, flatten
from trtnet.zoo import register
from zoo import blocks


def conv_bn(x, w, conv_name, bn_name, out, k, stride=1, groups=1, dilation=1):
    y = conv(x, w[conv_name], out, k, stride, dilation * (k // 2), dilation, groups)
    return bn(y, w[bn_name])


def shortcut(x, w, out, stride):
    """Identity, or a strided 1x1 projection where the block changes shape."""
    if stride == 1 and x.shape[1] == out:
        return x
    return conv_bn(x, w, "downsample.0", "downsample.1", out, 1, stride)


def basic_block(x, w, planes, stride, **_):
    y = relu(conv_bn(x, w, "conv1", "bn1", planes, 3, stride))
    y = conv_bn(y, w, "conv2", "bn2", planes, 3)
    return relu(y + shortcut(x, w, planes, stride))


def bottleneck(x, w, planes, stride, groups=1, width_per_group=64, dilation=1):
    width = planes * width_per_group // 64 * groups
    y = relu(conv_bn(x, w, "conv1", "bn1", width, 1))
    y = relu(conv_bn(y, w, "conv2", "bn2", width, 3, stride, groups, dilation))
    y = conv_bn(y, w, "conv3", "bn3", planes * 4, 1)
    return relu(y + shortcut(x, w, planes * 4, stride))


def backbone(x, w, block, depths, dilate=(False, False, False), **block_kw):
    """Stem and four stages; `dilate` trades stages 2-4's stride for dilation, as segmentation backbones do."""
    x = max_pool(relu(conv_bn(x, w, "conv1", "bn1", 64, 7, 2)), 3, 2, 1)
    dilation = 1
    for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths), start=1):
        stride = 1 if stage == 1 else 2
        first_dilation = dilation
        if stage > 1 and dilate[stage - 2]:
            dilation, stride = dilation * stride, 1
        for i in range(depth):
            extra = dict(dilation=first_dilation if i == 0 else dilation) if block is bottleneck else {}
            x = block(x, w[f"layer{stage}.{i}"], planes, stride if i == 0 else 1, **block_kw, **extra)
    return x


def resnet(w, shape, block, depths, name, num_classes=1000, **block_kw):
    g = Graph(name)
    x = backbone(g.input("data", shape), w, block, depths, **block_kw)
    x = flatten(global_avg_pool(x, name="avgpool"), 1)
    g.output(fc(x, w["fc"], num_classes), "logits")
    return g


VARIANTS = {
    "resnet18": (basic_block, (2, 2, 2, 2), {}),
    "resnet34": (basic_block, (3, 4, 6, 3), {}),
    "resnet50": (bottleneck, (3, 4, 6, 3), {}),
    "resnet101": (bottleneck, (3, 4, 23, 3), {}),
    "resnet152": (bottleneck, (3, 8, 36, 3), {}),
    "resnext50_32x4d": (bottleneck, (3, 4, 6, 3), dict(groups=32, width_per_group=4)),
    "wide_resnet50_2": (bottleneck, (3, 4, 6, 3), dict(width_per_group=128)),
}

for _name, (_block, _depths, _kw) in VARIANTS.items():
    register(_name, (3, 224, 224), blocks.torchvision_model(_name), doc=f"torchvision {_name}, 3x224x224",
             test_shape=(3, 64, 64))(
        functools.partial(resnet, block=_block, depths=_depths, name=_name, **_kw))
