"""RegNet (Radosavovic et al., 2020) as torchvision builds it: a 3x3 stem, four stages of residual bottleneck
blocks (1x1, grouped 3x3, squeeze-excitation for RegNetY, 1x1), a linear head.

The stage widths and depths follow from a few design-space parameters (w_0, w_a, w_m, depth); the table
below holds what they give (torchvision's `BlockParams.from_init_params`), so that recording needs no torchvision.
"""
import functools
from types import SimpleNamespace

from trtnet import Graph, fc, flatten, global_avg_pool, relu, sigmoid
from trtnet.zoo import register
from zoo import blocks

conv_bn_act = functools.partial(blocks.conv_bn_act, act=relu)
squeeze_excitation = functools.partial(blocks.squeeze_excitation, act=relu, scale_act=sigmoid)


def res_bottleneck(x, w, out, stride, group_width, bottleneck_multiplier, se_ratio):
    """relu(proj(x) + f(x)); f = a (1x1), b (grouped 3x3, strided), se, c (1x1, linear); proj where the shape changes."""
    cin = x.shape[1]
    mid = int(round(out * bottleneck_multiplier))
    y = conv_bn_act(x, w["f.a"], mid, 1)
    y = conv_bn_act(y, w["f.b"], mid, 3, stride, mid // group_width)
    if se_ratio:
        y = squeeze_excitation(y, w["f.se"], int(round(se_ratio * cin)))
    y = conv_bn_act(y, w["f.c"], out, 1, act=None)
    shortcut = conv_bn_act(x, w["proj"], out, 1, stride, act=None) if cin != out or stride != 1 else x
    return relu(shortcut + y, name=f"{w.prefix}.activation")


def regnet(w, shape, name, params, stem_width=32, num_classes=1000):
    g = Graph(name)
    x = conv_bn_act(g.input("data", shape), w["stem"], stem_width, 3, 2)
    stages = zip(params.widths, params.strides, params.depths, params.group_widths, params.bottleneck_multipliers)
    for s, (out, stride, depth, group_width, bottleneck_multiplier) in enumerate(stages, start=1):
        for i in range(depth):
            x = res_bottleneck(x, w[f"trunk_output.block{s}.block{s}-{i}"], out, stride if i == 0 else 1,
                               group_width, bottleneck_multiplier, params.se_ratio)
    x = flatten(global_avg_pool(x, name="avgpool"), 1)
    g.output(fc(x, w["fc"], num_classes), "logits")
    return g


# per model, the stages torchvision derives from its design-space parameters (regnet_y_400mf: depth=16, w_0=48,
# w_a=27.89, w_m=2.09, group_width=8, se_ratio=0.25); the zoo test compares the graph with torchvision's module
VARIANTS = {
    "regnet_y_400mf": dict(depths=(1, 3, 6, 6), widths=(48, 104, 208, 440), group_widths=(8, 8, 8, 8),
                           bottleneck_multipliers=(1.0, 1.0, 1.0, 1.0), strides=(2, 2, 2, 2), se_ratio=0.25),
}

for _name, _init in VARIANTS.items():
    register(_name, (3, 224, 224), blocks.torchvision_model(_name), doc=f"torchvision {_name}, 3x224x224",
             test_shape=(3, 64, 64))(
        functools.partial(regnet, name=_name, params=SimpleNamespace(**_init)))
