"""EfficientViT (Cai et al., 2023) as timm builds `efficientvit_b0`: a conv stem, two stages of MBConv blocks,
then two stages that alternate lite multi-scale linear attention (global context at linear cost) with MBConv
(local detail), and a wide classifier head. Hardswish throughout."""
from trtnet import Graph, bn, cat, chunk, conv, fc, hardswish, layer_norm, mean, pad, relu, reshape
from trtnet.zoo import register

EPS = 1e-5   # LiteMLA's guard on the linear attention's normaliser


def conv_norm_act(x, w, out, k, stride=1, groups=1, act=None):
    """timm's ConvNormAct: conv (bias when the weights have one), BatchNorm where the block has one, activation."""
    x = conv(x, w["conv"], out, k, stride, k // 2, groups=groups)
    if "norm.weight" in w:
        x = bn(x, w["norm"])
    return act(x) if act else x


def ds_conv(x, w, out):
    """Depthwise 3x3, pointwise 1x1."""
    x = conv_norm_act(x, w["depth_conv"], x.shape[1], 3, groups=x.shape[1], act=hardswish)
    return conv_norm_act(x, w["point_conv"], out, 1)


def mb_conv(x, w, out, stride=1, expand=4):
    """Inverted bottleneck: 1x1 expand, depthwise 3x3 (the block's stride), 1x1 project."""
    mid = round(x.shape[1] * expand)
    x = conv_norm_act(x, w["inverted_conv"], mid, 1, act=hardswish)
    x = conv_norm_act(x, w["depth_conv"], mid, 3, stride, groups=mid, act=hardswish)
    return conv_norm_act(x, w["point_conv"], out, 1)


def lite_mla(x, w, dim):
    """Multi-scale ReLU linear attention: q/k/v from a 1x1 conv and a 5x5 aggregated copy, attention as
    relu(q) @ (relu(k)^T @ [v, 1]) normalised by its last column."""
    n, c, h, wd = x.shape
    heads = c // dim
    qkv = conv_norm_act(x, w["qkv"], 3 * c, 1)
    agg = conv(conv(qkv, w["aggreg.0.0"], 3 * c, 5, 1, 2, groups=3 * c), w["aggreg.0.1"], 3 * c, 1, groups=3 * heads)
    tokens = reshape(cat([qkv, agg], 1), (n, 2 * heads, 3 * dim, h * wd)).transpose(-1, -2)
    q, k, v = chunk(tokens, 3, -1)                                       # each (N, 2 heads, HW, dim)
    v = pad(v, (0, 1), value=1.0)
    out = relu(q) @ (relu(k).transpose(-1, -2) @ v)
    out = out[..., :-1] / (out[..., -1:] + EPS)
    out = reshape(out.transpose(-1, -2), (n, 2 * c, h, wd))
    return conv_norm_act(out, w["proj"], c, 1)


def vit_block(x, w, head_dim):
    x = x + lite_mla(x, w["context_module.main"], head_dim)
    return x + mb_conv(x, w["local_module.main"], x.shape[1])


def stage(x, w, out, depth, vit, head_dim):
    """A strided MBConv, then residual MBConvs (stages 1-2) or attention blocks (stages 3-4)."""
    x = mb_conv(x, w["blocks.0.main"], out, 2)
    for i in range(1, depth + 1 if vit else depth):
        block = w[f"blocks.{i}"]
        x = vit_block(x, block, head_dim) if vit else x + mb_conv(x, block["main"], out)
    return x


def efficientvit(w, shape, name, widths, depths, head_dim, head_widths):
    g = Graph(name)
    x = conv_norm_act(g.input("data", shape), w["stem.in_conv"], widths[0], 3, 2, act=hardswish)
    for i in range(depths[0]):
        x = x + ds_conv(x, w[f"stem.res{i}.main"], widths[0])
    for i, (width, depth) in enumerate(zip(widths[1:], depths[1:])):
        x = stage(x, w[f"stages.{i}"], width, depth, i >= 2, head_dim)
    x = conv_norm_act(x, w["head.in_conv"], head_widths[0], 1, act=hardswish)
    x = mean(x, dim=(2, 3))
    x = hardswish(layer_norm(fc(x, w["head.classifier.0"], head_widths[1]), w["head.classifier.1"]))
    g.output(fc(x, w["head.classifier.4"], 1000), "logits")
    return g


def _efficientvit_b0(w, shape):
    return efficientvit(w, shape, "efficientvit_b0", (8, 16, 32, 64, 128), (1, 2, 2, 2, 2), 16, (1024, 1280))


def _timm_b0():
    """timm is imported here: the zoo loads without it (it is a test dependency)."""
    import timm
    return timm.create_model("efficientvit_b0", pretrained=False)


register("efficientvit_b0", (3, 224, 224), _timm_b0, doc="timm efficientvit_b0, 3x224x224",
         test_shape=(3, 64, 64))(_efficientvit_b0)
