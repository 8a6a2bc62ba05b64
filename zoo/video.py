"""R3D-18 (Tran et al., 2018): ResNet-18 with every convolution, norm and pool in 3D over (time, height, width).

Input (3, T, H, W) clips; the stem keeps the time resolution, stages 2-4 halve time and space alike.
"""
from trtnet import Graph, bn, conv, fc, flatten, global_avg_pool, relu
from trtnet.zoo import register
from zoo import blocks


def conv_bn(x, w, out, kernel, stride=1, padding=0):
    """torchvision's Sequential(Conv3d without bias, BatchNorm3d): weights at `.0` and `.1`."""
    return bn(conv(x, w["0"], out, kernel, stride, padding), w["1"])


def basic_block(x, w, planes, stride):
    y = relu(conv_bn(x, w["conv1"], planes, 3, stride, 1))
    y = conv_bn(y, w["conv2"], planes, 3, 1, 1)
    short = x if stride == 1 and x.shape[1] == planes else conv_bn(x, w["downsample"], planes, 1, stride)
    return relu(y + short)


@register("r3d_18", (3, 16, 112, 112), blocks.torchvision_model("r3d_18", "torchvision.models.video"),
          test_shape=(3, 4, 32, 32),
          doc="torchvision r3d_18 (video ResNet, 3D convolutions), 3x16x112x112 clips, 400 Kinetics classes")
def r3d_18(w, shape):
    g = Graph("r3d_18")
    x = relu(conv_bn(g.input("data", shape), w["stem"], 64, (3, 7, 7), (1, 2, 2), (1, 3, 3)))
    for stage, planes in enumerate((64, 128, 256, 512), start=1):
        for i in range(2):
            x = basic_block(x, w[f"layer{stage}.{i}"], planes, 2 if stage > 1 and i == 0 else 1)
    x = flatten(global_avg_pool(x, name="avgpool"), 1)
    g.output(fc(x, w["fc"], 400), "logits")
    return g
