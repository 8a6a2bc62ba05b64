"""ConvNeXt (Liu et al., 2022): a patchify stem, then stages of depthwise 7x7 conv + inverted MLP blocks."""
from trtnet import Graph, constant, conv, fc, flatten, gelu, global_avg_pool, layer_norm, permute
from trtnet.zoo import register
from zoo import blocks

EPS = 1e-6


def cn_block(x, w, dim):
    """dwconv 7x7 -> (NHWC) LayerNorm -> Linear 4x -> GELU -> Linear -> (NCHW), scaled, plus the input."""
    y = conv(x, w["block.0"], dim, 7, padding=3, groups=dim)
    y = layer_norm(permute(y, (0, 2, 3, 1)), w["block.2"], EPS)
    y = fc(gelu(fc(y, w["block.3"], 4 * dim)), w["block.5"], dim)
    y = permute(y, (0, 3, 1, 2)) * constant(x, w, "layer_scale", (dim, 1, 1))
    return y + x  # stochastic depth is the identity at inference


def convnext(w, shape, name, dims, depths):
    g = Graph(name)
    x = g.input("data", shape)
    x = layer_norm(conv(x, w["features.0.0"], dims[0], 4, 4), w["features.0.1"], EPS, axis=1)
    for stage, (dim, depth) in enumerate(zip(dims, depths)):
        if stage > 0:  # downsample: LayerNorm2d then a 2x2 stride-2 conv
            ds = w[f"features.{2 * stage}"]
            x = conv(layer_norm(x, ds["0"], EPS, axis=1), ds["1"], dim, 2, 2)
        for i in range(depth):
            x = cn_block(x, w[f"features.{2 * stage + 1}.{i}"], dim)
    x = layer_norm(global_avg_pool(x), w["classifier.0"], EPS, axis=1)
    g.output(fc(flatten(x, 1), w["classifier.2"], 1000), "logits")
    return g


def _convnext_tiny(w, shape):
    return convnext(w, shape, "convnext_tiny", (96, 192, 384, 768), (3, 3, 9, 3))


register("convnext_tiny", (3, 224, 224), blocks.torchvision_model("convnext_tiny"),
         doc="torchvision convnext_tiny, 3x224x224", test_shape=(3, 64, 64))(_convnext_tiny)
