"""A small U-Net (Ronneberger et al., 2015) for dense prediction at any size that is a multiple of 8.

Encoder: double 3x3 conv blocks (GroupNorm, SiLU) with 2x2 max pooling between them. Decoder: each level upsamples
2x (a learned 2x2 transposed convolution, or bilinear interpolation where `UP` says so), concatenates the encoder's
skip tensor at that size, and applies a double conv block (GroupNorm, ReLU). A 1x1 convolution gives class scores.
"""
from trtnet import Graph, cat, conv, conv_transpose, group_norm, interpolate, max_pool, relu, silu
from trtnet.zoo import register
from zoo import blocks

WIDTHS = (16, 32, 64, 128)          # channels of each encoder level; the last is the bottleneck
UP = ("transpose", "bilinear", "transpose")   # how decoder levels 2, 1, 0 upsample (bottom first)
GROUPS = 8
CLASSES = 4
SIZE = (32, 64, 256)                # H and W (each a multiple of 8): min, opt, max of the profile


def double_conv(x, w, out, act):
    x = act(group_norm(conv(x, w["conv1"], out, 3, padding=1), GROUPS, w["norm1"]))
    return act(group_norm(conv(x, w["conv2"], out, 3, padding=1), GROUPS, w["norm2"]))


@register("unet", (3, "H", "W"), blocks.deferred("zoo.torch_refs", "UNet"), test_shape=(3, 32, 32),
          doc=f"U-Net with GroupNorm, transposed-conv and bilinear upsampling; 3xHxW, H and W multiples of 8 "
              f"in {SIZE[0]}..{SIZE[2]}; {CLASSES} classes per pixel")
def unet(w, shape):
    g = Graph("unet")
    x = g.input("images", ("N", *shape), ranges={d: SIZE for d in shape if isinstance(d, str)})
    skips = []
    for i, out in enumerate(WIDTHS):
        x = double_conv(x if i == 0 else max_pool(x, 2), w[f"down.{i}"], out, silu)
        skips.append(x)
    skips.pop()
    for i, mode in enumerate(UP):
        out = x.shape[1] // 2
        if mode == "bilinear":
            x = interpolate(x, scale_factor=2, mode="bilinear", align_corners=False, name=f"upsample.{i}")
        else:
            x = conv_transpose(x, w[f"upsample.{i}"], out, 2, 2)
        x = double_conv(cat([x, skips.pop()], 1), w[f"up.{i}"], out, relu)
    g.output(conv(x, w["head"], CLASSES, 1), "logits")
    return g
