"""VGG (Simonyan & Zisserman, 2014) as torchvision builds it: stacks of 3x3 convolutions (optionally with
BatchNorm) separated by 2x2 max pools, a 7x7 adaptive average pool and three fully connected layers.

The configurations are torchvision's tables: a number is a 3x3 convolution's width, "M" a max pool.
"""
import functools

from trtnet import Graph, adaptive_avg_pool, bn, conv, dropout, fc, flatten, max_pool, relu
from trtnet.zoo import register
from zoo import blocks

CFGS = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}


def features(x, w, cfg, batch_norm):
    """torchvision's make_layers: `features.i` counts every module, so each conv takes 2 or 3 indices."""
    i = 0
    for v in cfg:
        if v == "M":
            x, i = max_pool(x, 2, 2, name=f"features.{i}"), i + 1
            continue
        x = conv(x, w[f"features.{i}"], v, 3, 1, 1)
        if batch_norm:
            x, i = bn(x, w[f"features.{i + 1}"]), i + 1
        x, i = relu(x), i + 2
    return x


def vgg(w, shape, cfg, batch_norm, name, num_classes=1000):
    g = Graph(name)
    x = features(g.input("data", shape), w, CFGS[cfg], batch_norm)
    x = flatten(adaptive_avg_pool(x, 7, name="avgpool"), 1)
    x = dropout(relu(fc(x, w["classifier.0"], 4096)), name="classifier.2")
    x = dropout(relu(fc(x, w["classifier.3"], 4096)), name="classifier.5")
    g.output(fc(x, w["classifier.6"], num_classes), "logits")
    return g


VARIANTS = {"vgg11": ("A", False), "vgg11_bn": ("A", True), "vgg16": ("D", False), "vgg16_bn": ("D", True)}

for _name, (_cfg, _bn) in VARIANTS.items():
    register(_name, (3, 224, 224), blocks.torchvision_model(_name), doc=f"torchvision {_name}, 3x224x224",
             test_shape=(3, 32, 32))(functools.partial(vgg, cfg=_cfg, batch_norm=_bn, name=_name))
