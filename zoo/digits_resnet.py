"""A small ResNet on the digits enlarged to 1x32x32: a 3x3 stem and three stages of one basic block each
(BatchNorm, residual adds, 16/32/64 channels), global average pooling and a linear head. It trains in about
a minute on the CPU; its held-out split makes quantization's accuracy cost measurable on a residual network."""
import functools

from trtnet import Graph, fc, flatten, global_avg_pool, relu, softmax
from trtnet.zoo import register
from zoo import blocks
from zoo.lenet import test_set, train, train_inputs
from zoo.resnet import basic_block, conv_bn

WIDTHS = (16, 32, 64)


@register("digits_resnet", (1, 32, 32), blocks.deferred("zoo.torch_refs", "DigitsResNet"), dataset=test_set,
          train=functools.partial(train, epochs=3, lr=3e-3, one_cycle=True), calibration=train_inputs)
def digits_resnet(w, shape):
    """Three-stage ResNet for 1x32x32 digits, 10-way softmax."""
    g = Graph("digits_resnet")
    x = relu(conv_bn(g.input("data", shape), w, "conv1", "bn1", WIDTHS[0], 3))
    for i, width in enumerate(WIDTHS):
        x = basic_block(x, w[f"layer{i + 1}.0"], width, 1 if i == 0 else 2)
    x = fc(flatten(global_avg_pool(x), 1), w["fc"], 10)
    g.output(softmax(x, dim=1), "prob")
    return g
