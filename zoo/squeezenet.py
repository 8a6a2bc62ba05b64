"""SqueezeNet 1.1 (Iandola et al., 2016) as torchvision builds it: Fire modules (a 1x1 squeeze, then 1x1 and 3x3
expands concatenated) between ceil-mode max pools, and a 1x1 convolution as the classifier."""
from trtnet import Graph, concat, conv, dropout, flatten, global_avg_pool, max_pool, relu
from trtnet.zoo import register
from zoo import blocks

# SqueezeNet 1.1's `features`: ("pool",) or ("fire", squeeze, expand1x1, expand3x3), by index after the stem
FEATURES = (("pool",), ("fire", 16, 64, 64), ("fire", 16, 64, 64), ("pool",), ("fire", 32, 128, 128),
            ("fire", 32, 128, 128), ("pool",), ("fire", 48, 192, 192), ("fire", 48, 192, 192),
            ("fire", 64, 256, 256), ("fire", 64, 256, 256))


def fire(x, w, squeeze, expand1x1, expand3x3):
    s = relu(conv(x, w["squeeze"], squeeze, 1))
    return concat([relu(conv(s, w["expand1x1"], expand1x1, 1)), relu(conv(s, w["expand3x3"], expand3x3, 3, 1, 1))], 1)


@register("squeezenet1_1", (3, 224, 224), blocks.torchvision_model("squeezenet1_1"),
          doc="torchvision squeezenet1_1, 3x224x224", test_shape=(3, 64, 64))
def squeezenet1_1(w, shape, num_classes=1000):
    g = Graph("squeezenet1_1")
    x = relu(conv(g.input("data", shape), w["features.0"], 64, 3, 2))
    for i, (kind, *sizes) in enumerate(FEATURES, start=2):
        if kind == "pool":
            x = max_pool(x, 3, 2, ceil_mode=True, name=f"features.{i}")
        else:
            x = fire(x, w[f"features.{i}"], *sizes)
    x = relu(conv(dropout(x, name="classifier.0"), w["classifier.1"], num_classes, 1))
    g.output(flatten(global_avg_pool(x, name="classifier.3"), 1), "logits")
    return g
