"""Inception v3 (Szegedy et al., 2015) as torchvision builds it: a conv stem, Inception blocks A (35x35),
B (grid reduction), C (17x17, factorised 7x7), D (grid reduction) and E (8x8, expanded 3x3), and a linear head.

The auxiliary classifier only runs in training; the module is built without it (`aux_logits=False`), so its
state_dict holds exactly the tensors the graph reads; a full torchvision checkpoint still loads, its
`AuxLogits.*` tensors reported as unused.
"""
from trtnet import Graph, avg_pool, bn, concat, conv, dropout, fc, flatten, global_avg_pool, max_pool, relu
from trtnet.zoo import register
from zoo import blocks


def basic_conv(x, w, out, k, stride=1, padding=0):
    """torchvision's BasicConv2d: conv without bias, BatchNorm (eps 1e-3), ReLU."""
    return relu(bn(conv(x, w["conv"], out, k, stride, padding), w["bn"], eps=1e-3))


def pool_branch(x, w, out):
    """3x3/1 average pool (padding counted, as F.avg_pool2d does), then a 1x1 conv."""
    return basic_conv(avg_pool(x, 3, 1, 1, name=f"{w.prefix}.avg_pool"), w["branch_pool"], out, 1)


def inception_a(x, w, pool_features):
    b1 = basic_conv(x, w["branch1x1"], 64, 1)
    b5 = basic_conv(basic_conv(x, w["branch5x5_1"], 48, 1), w["branch5x5_2"], 64, 5, 1, 2)
    b3 = basic_conv(x, w["branch3x3dbl_1"], 64, 1)
    b3 = basic_conv(basic_conv(b3, w["branch3x3dbl_2"], 96, 3, 1, 1), w["branch3x3dbl_3"], 96, 3, 1, 1)
    return concat([b1, b5, b3, pool_branch(x, w, pool_features)], 1)


def inception_b(x, w):
    b3 = basic_conv(x, w["branch3x3"], 384, 3, 2)
    bd = basic_conv(x, w["branch3x3dbl_1"], 64, 1)
    bd = basic_conv(basic_conv(bd, w["branch3x3dbl_2"], 96, 3, 1, 1), w["branch3x3dbl_3"], 96, 3, 2)
    return concat([b3, bd, max_pool(x, 3, 2, name=f"{w.prefix}.max_pool")], 1)


def inception_c(x, w, c7):
    b1 = basic_conv(x, w["branch1x1"], 192, 1)
    b7 = basic_conv(x, w["branch7x7_1"], c7, 1)
    b7 = basic_conv(b7, w["branch7x7_2"], c7, (1, 7), 1, (0, 3))
    b7 = basic_conv(b7, w["branch7x7_3"], 192, (7, 1), 1, (3, 0))
    bd = basic_conv(x, w["branch7x7dbl_1"], c7, 1)
    bd = basic_conv(bd, w["branch7x7dbl_2"], c7, (7, 1), 1, (3, 0))
    bd = basic_conv(bd, w["branch7x7dbl_3"], c7, (1, 7), 1, (0, 3))
    bd = basic_conv(bd, w["branch7x7dbl_4"], c7, (7, 1), 1, (3, 0))
    bd = basic_conv(bd, w["branch7x7dbl_5"], 192, (1, 7), 1, (0, 3))
    return concat([b1, b7, bd, pool_branch(x, w, 192)], 1)


def inception_d(x, w):
    b3 = basic_conv(basic_conv(x, w["branch3x3_1"], 192, 1), w["branch3x3_2"], 320, 3, 2)
    b7 = basic_conv(x, w["branch7x7x3_1"], 192, 1)
    b7 = basic_conv(b7, w["branch7x7x3_2"], 192, (1, 7), 1, (0, 3))
    b7 = basic_conv(b7, w["branch7x7x3_3"], 192, (7, 1), 1, (3, 0))
    b7 = basic_conv(b7, w["branch7x7x3_4"], 192, 3, 2)
    return concat([b3, b7, max_pool(x, 3, 2, name=f"{w.prefix}.max_pool")], 1)


def split_3x3(x, w, a, b):
    """The expanded 3x3: parallel 1x3 and 3x1 convs, concatenated."""
    return concat([basic_conv(x, w[a], 384, (1, 3), 1, (0, 1)), basic_conv(x, w[b], 384, (3, 1), 1, (1, 0))], 1)


def inception_e(x, w):
    b1 = basic_conv(x, w["branch1x1"], 320, 1)
    b3 = split_3x3(basic_conv(x, w["branch3x3_1"], 384, 1), w, "branch3x3_2a", "branch3x3_2b")
    bd = basic_conv(basic_conv(x, w["branch3x3dbl_1"], 448, 1), w["branch3x3dbl_2"], 384, 3, 1, 1)
    bd = split_3x3(bd, w, "branch3x3dbl_3a", "branch3x3dbl_3b")
    return concat([b1, b3, bd, pool_branch(x, w, 192)], 1)


# name: (block, extra arguments), in torchvision's order
MIXED = (
    ("Mixed_5b", inception_a, (32,)),
    ("Mixed_5c", inception_a, (64,)),
    ("Mixed_5d", inception_a, (64,)),
    ("Mixed_6a", inception_b, ()),
    ("Mixed_6b", inception_c, (128,)),
    ("Mixed_6c", inception_c, (160,)),
    ("Mixed_6d", inception_c, (160,)),
    ("Mixed_6e", inception_c, (192,)),
    ("Mixed_7a", inception_d, ()),
    ("Mixed_7b", inception_e, ()),
    ("Mixed_7c", inception_e, ()),
)


@register("inception_v3", (3, 299, 299),
          blocks.torchvision_model("inception_v3", aux_logits=False, init_weights=True,
                            transform_input=False),
          doc="torchvision inception_v3 (no auxiliary head, transform_input=False), 3x299x299",
          test_shape=(3, 75, 75), slow=True)
def inception_v3(w, shape, num_classes=1000):
    g = Graph("inception_v3")
    x = basic_conv(g.input("data", shape), w["Conv2d_1a_3x3"], 32, 3, 2)
    x = basic_conv(x, w["Conv2d_2a_3x3"], 32, 3)
    x = basic_conv(x, w["Conv2d_2b_3x3"], 64, 3, 1, 1)
    x = max_pool(x, 3, 2, name="maxpool1")
    x = basic_conv(x, w["Conv2d_3b_1x1"], 80, 1)
    x = basic_conv(x, w["Conv2d_4a_3x3"], 192, 3)
    x = max_pool(x, 3, 2, name="maxpool2")
    for name, block, args in MIXED:
        x = block(x, w[name], *args)
    x = dropout(flatten(global_avg_pool(x, name="avgpool"), 1), name="dropout")
    g.output(fc(x, w["fc"], num_classes), "logits")
    return g
