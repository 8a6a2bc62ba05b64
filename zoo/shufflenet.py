"""ShuffleNet V2 (Ma et al., 2018): split channels, transform one half, concatenate, shuffle."""
from trtnet import Graph, bn, chunk, concat, conv, fc, flatten, global_avg_pool, max_pool, permute, relu, reshape
from trtnet.zoo import register
from zoo import blocks


def conv_bn(x, w, conv_i, out, k, stride=1, groups=1):
    return bn(conv(x, w[str(conv_i)], out, k, stride, k // 2, groups=groups), w[str(conv_i + 1)])


def channel_shuffle(x, groups=2):
    """(N, g*c, H, W) -> (N, g, c, H, W) -> swap g and c -> (N, c*g, H, W)."""
    n, ch, h, wd = x.shape
    x = permute(reshape(x, (n, groups, ch // groups, h, wd)), (0, 2, 1, 3, 4))
    return reshape(x, (n, ch, h, wd))


def branch(x, w, out, stride):
    """1x1 conv, 3x3 depthwise conv (strided), 1x1 conv: the transformed half."""
    y = relu(conv_bn(x, w, 0, out, 1))
    y = conv_bn(y, w, 3, out, 3, stride, groups=out)
    return relu(conv_bn(y, w, 5, out, 1))


def shuffle_block(x, w, out, stride):
    half = out // 2
    if stride == 1:
        keep, x = chunk(x, 2, 1)
    else:  # both halves come from the full input: a depthwise-strided shortcut branch
        c = x.shape[1]
        keep = relu(conv_bn(conv_bn(x, w["branch1"], 0, c, 3, stride, groups=c), w["branch1"], 2, half, 1))
    return channel_shuffle(concat([keep, branch(x, w["branch2"], half, stride)], 1))


def shufflenet_v2(w, shape, stages=(4, 8, 4), channels=(24, 116, 232, 464, 1024)):
    g = Graph("shufflenet_v2_x1_0")
    x = g.input("data", shape)
    x = max_pool(relu(conv_bn(x, w["conv1"], 0, channels[0], 3, 2)), 3, 2, 1)
    for s, (repeats, out) in enumerate(zip(stages, channels[1:4]), start=2):
        for i in range(repeats):
            x = shuffle_block(x, w[f"stage{s}.{i}"], out, 2 if i == 0 else 1)
    x = relu(conv_bn(x, w["conv5"], 0, channels[4], 1))
    g.output(fc(flatten(global_avg_pool(x), 1), w["fc"], 1000), "logits")
    return g


register("shufflenet_v2_x1_0", (3, 224, 224), blocks.torchvision_model("shufflenet_v2_x1_0"),
         doc="torchvision shufflenet_v2_x1_0, 3x224x224", test_shape=(3, 64, 64))(shufflenet_v2)
