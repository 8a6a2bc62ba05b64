"""MnasNet-B1 (Tan et al., 2018) as torchvision builds it: a 3x3 stem, a depthwise-separable conv, six stacks
of inverted residual blocks (without squeeze-excitation), a last 1x1 conv and a linear head.

torchvision keeps the whole body in one `layers` Sequential: indices 0-7 are the stem and the separable conv,
8-13 the stacks (`layers.<stack>.<block>.layers.<i>`), 14-16 the last conv, its BatchNorm and ReLU.
"""
import functools

from trtnet import Graph, bn, conv, dropout, fc, flatten, global_avg_pool, relu
from trtnet.zoo import register
from zoo import blocks

# output channels, kernel, stride of the first block, expansion, repeats: the paper's Figure 7 (B1)
STACKS = [(24, 3, 2, 3, 3), (40, 5, 2, 3, 3), (80, 5, 2, 6, 3), (96, 3, 1, 6, 2), (192, 5, 2, 6, 4),
          (320, 3, 1, 6, 1)]


def depths(alpha):
    """torchvision's `_get_depths`: the stem, separable-conv and stack widths scaled by `alpha`, rounded to 8."""
    def round8(v, bias=0.9):
        new = max(8, int(v + 4) // 8 * 8)
        return new if new >= bias * v else new + 8
    return [round8(d * alpha) for d in (32, 16, *(s[0] for s in STACKS))]


def conv_bn(x, w, i, out, k, stride=1, groups=1):
    """`layers.<i>` conv (no bias, 'same' padding) and `layers.<i+1>` BatchNorm, as indices of a Sequential."""
    return bn(conv(x, w[str(i)], out, k, stride, k // 2, groups=groups), w[str(i + 1)])


def inverted_residual(x, w, out, k, stride, expansion):
    """1x1 expand, depthwise kxk, linear 1x1 project; the input is added back where the shape is kept."""
    mid = x.shape[1] * expansion
    y = relu(conv_bn(x, w, 0, mid, 1), name=f"{w.prefix}.2")
    y = relu(conv_bn(y, w, 3, mid, k, stride, mid), name=f"{w.prefix}.5")
    y = conv_bn(y, w, 6, out, 1)
    return y + x if stride == 1 and x.shape[1] == out else y


def mnasnet(w, shape, alpha, name, num_classes=1000):
    g = Graph(name)
    d = depths(alpha)
    L = w["layers"]
    x = relu(conv_bn(g.input("data", shape), L, 0, d[0], 3, 2), name="layers.2")
    x = relu(conv_bn(x, L, 3, d[0], 3, groups=d[0]), name="layers.5")
    x = conv_bn(x, L, 6, d[1], 1)
    for s, ((_, k, stride, expansion, repeats), out) in enumerate(zip(STACKS, d[2:]), start=8):
        for i in range(repeats):
            x = inverted_residual(x, L[f"{s}.{i}.layers"], out, k, stride if i == 0 else 1, expansion)
    x = relu(conv_bn(x, L, 14, 1280, 1), name="layers.16")
    x = flatten(global_avg_pool(x, name="avgpool"), 1)
    x = dropout(x, name="classifier.0")
    g.output(fc(x, w["classifier.1"], num_classes), "logits")
    return g


register("mnasnet1_0", (3, 224, 224), blocks.torchvision_model("mnasnet1_0"), doc="torchvision mnasnet1_0, 3x224x224",
         test_shape=(3, 64, 64))(functools.partial(mnasnet, alpha=1.0, name="mnasnet1_0"))
