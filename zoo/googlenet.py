"""GoogLeNet (Inception v1, Szegedy et al., 2014) as torchvision builds it: a conv stem, nine Inception blocks
(1x1, 1x1-3x3, 1x1-3x3 and pool-1x1 branches, concatenated) between ceil-mode max pools, and a linear head.

torchvision's "5x5" branch uses a 3x3 kernel, and so does this graph, so its checkpoint loads unchanged. The
auxiliary classifiers only run in training; the module is built without them (`aux_logits=False`), so its
state_dict holds exactly the tensors the graph reads; a full torchvision checkpoint still loads, its
`aux1.*`/`aux2.*` tensors reported as unused.
"""
from trtnet import Graph, bn, concat, conv, dropout, fc, flatten, global_avg_pool, max_pool, relu
from trtnet.zoo import register
from zoo import blocks

# name: (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj), in order; "maxpoolN" is a 3x3/2 max pool (2x2/2
# for maxpool4), all in ceil mode
STAGES = (
    ("inception3a", (64, 96, 128, 16, 32, 32)),
    ("inception3b", (128, 128, 192, 32, 96, 64)),
    ("maxpool3", 3),
    ("inception4a", (192, 96, 208, 16, 48, 64)),
    ("inception4b", (160, 112, 224, 24, 64, 64)),
    ("inception4c", (128, 128, 256, 24, 64, 64)),
    ("inception4d", (112, 144, 288, 32, 64, 64)),
    ("inception4e", (256, 160, 320, 32, 128, 128)),
    ("maxpool4", 2),
    ("inception5a", (256, 160, 320, 32, 128, 128)),
    ("inception5b", (384, 192, 384, 48, 128, 128)),
)


def basic_conv(x, w, out, k, stride=1, padding=0):
    """torchvision's BasicConv2d: conv without bias, BatchNorm (eps 1e-3), ReLU."""
    return relu(bn(conv(x, w["conv"], out, k, stride, padding), w["bn"], eps=1e-3))


def inception(x, w, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
    b1 = basic_conv(x, w["branch1"], ch1x1, 1)
    b2 = basic_conv(basic_conv(x, w["branch2.0"], ch3x3red, 1), w["branch2.1"], ch3x3, 3, 1, 1)
    b3 = basic_conv(basic_conv(x, w["branch3.0"], ch5x5red, 1), w["branch3.1"], ch5x5, 3, 1, 1)
    b4 = max_pool(x, 3, 1, 1, ceil_mode=True, name=f"{w.prefix}.branch4.0")
    b4 = basic_conv(b4, w["branch4.1"], pool_proj, 1)
    return concat([b1, b2, b3, b4], 1)


@register("googlenet", (3, 224, 224),
          blocks.torchvision_model("googlenet", aux_logits=False, init_weights=True, transform_input=False),
          doc="torchvision googlenet (no auxiliary heads, transform_input=False), 3x224x224", test_shape=(3, 64, 64))
def googlenet(w, shape, num_classes=1000):
    g = Graph("googlenet")
    x = basic_conv(g.input("data", shape), w["conv1"], 64, 7, 2, 3)
    x = max_pool(x, 3, 2, ceil_mode=True, name="maxpool1")
    x = basic_conv(x, w["conv2"], 64, 1)
    x = basic_conv(x, w["conv3"], 192, 3, 1, 1)
    x = max_pool(x, 3, 2, ceil_mode=True, name="maxpool2")
    for name, cfg in STAGES:
        if name.startswith("maxpool"):
            x = max_pool(x, cfg, 2, ceil_mode=True, name=name)
        else:
            x = inception(x, w[name], *cfg)
    x = dropout(flatten(global_avg_pool(x, name="avgpool"), 1), name="dropout")
    g.output(fc(x, w["fc"], num_classes), "logits")
    return g
