"""DenseNet-BC (Huang et al., 2016) as torchvision builds it: a 7x7 stem, four dense blocks whose layers each
add `growth_rate` channels to the running concatenation, 1x1-conv-and-pool transitions halving the width, and
a linear head."""
from trtnet import Graph, avg_pool, bn, concat, conv, fc, flatten, global_avg_pool, max_pool, relu
from trtnet.zoo import register
from zoo import blocks


def dense_layer(features, w, growth_rate, bn_size):
    """BN-ReLU-1x1 conv to `bn_size * growth_rate` channels, then BN-ReLU-3x3 conv to `growth_rate`."""
    x = concat(features, 1) if len(features) > 1 else features[0]
    x = conv(relu(bn(x, w["norm1"])), w["conv1"], bn_size * growth_rate, 1)
    return conv(relu(bn(x, w["norm2"])), w["conv2"], growth_rate, 3, 1, 1)


def dense_block(x, w, num_layers, growth_rate, bn_size):
    features = [x]
    for i in range(1, num_layers + 1):
        features.append(dense_layer(features, w[f"denselayer{i}"], growth_rate, bn_size))
    return concat(features, 1)


def transition(x, w, out):
    x = conv(relu(bn(x, w["norm"])), w["conv"], out, 1)
    return avg_pool(x, 2, 2, name=f"{w.prefix}.pool")


def densenet(w, shape, name, growth_rate, block_config, num_init_features, bn_size=4, num_classes=1000):
    g = Graph(name)
    f = w["features"]
    x = conv(g.input("data", shape), f["conv0"], num_init_features, 7, 2, 3)
    x = max_pool(relu(bn(x, f["norm0"])), 3, 2, 1, name="features.pool0")
    channels = num_init_features
    for i, num_layers in enumerate(block_config, start=1):
        x = dense_block(x, f[f"denseblock{i}"], num_layers, growth_rate, bn_size)
        channels += num_layers * growth_rate
        if i < len(block_config):
            channels //= 2
            x = transition(x, f[f"transition{i}"], channels)
    x = relu(bn(x, f["norm5"]))
    x = flatten(global_avg_pool(x, name="avgpool"), 1)
    g.output(fc(x, w["classifier"], num_classes), "logits")
    return g


@register("densenet121", (3, 224, 224), blocks.torchvision_model("densenet121"),
          doc="torchvision densenet121, 3x224x224",
          test_shape=(3, 64, 64), slow=True)
def densenet121(w, shape):
    return densenet(w, shape, "densenet121", 32, (6, 12, 24, 16), 64)
