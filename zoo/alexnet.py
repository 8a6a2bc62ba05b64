"""AlexNet (Krizhevsky et al., 2012) as torchvision builds it (the one-GPU variant): five convolutions, three
max pools, a 6x6 adaptive average pool and three fully connected layers."""
from trtnet import Graph, adaptive_avg_pool, conv, dropout, fc, flatten, max_pool, relu
from trtnet.zoo import register
from zoo import blocks

# (index in `features`, out channels, kernel, stride, padding, max pool after it)
FEATURES = ((0, 64, 11, 4, 2, True), (3, 192, 5, 1, 2, True), (6, 384, 3, 1, 1, False),
            (8, 256, 3, 1, 1, False), (10, 256, 3, 1, 1, True))


@register("alexnet", (3, 224, 224), blocks.torchvision_model("alexnet"), doc="torchvision alexnet, 3x224x224",
          test_shape=(3, 64, 64))
def alexnet(w, shape, num_classes=1000):
    g = Graph("alexnet")
    x = g.input("data", shape)
    for i, out, k, s, p, pool in FEATURES:
        x = relu(conv(x, w[f"features.{i}"], out, k, s, p))
        if pool:
            x = max_pool(x, 3, 2)
    x = flatten(adaptive_avg_pool(x, 6, name="avgpool"), 1)
    x = relu(fc(dropout(x, name="classifier.0"), w["classifier.1"], 4096))
    x = relu(fc(dropout(x, name="classifier.3"), w["classifier.4"], 4096))
    g.output(fc(x, w["classifier.6"], num_classes), "logits")
    return g
