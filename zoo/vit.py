"""Vision Transformer (Dosovitskiy et al., 2021): 16x16 patches as tokens, a class token, pre-norm encoder blocks."""
import math

from trtnet import Graph, concat, constant, conv, expand, fc, gelu, layer_norm, permute, reshape, select, softmax
from trtnet.zoo import register
from zoo import blocks

EPS = 1e-6


def attention(x, w, heads):
    """nn.MultiheadAttention(batch_first=True) on self: packed q/k/v projection, scaled dot product, out_proj."""
    n, tokens, dim = x.shape
    qkv = fc(x, w, 3 * dim, name=f"{w.prefix}.in_proj", keys=("in_proj_weight", "in_proj_bias"))
    # (N, T, 3 * dim) -> (3, N, heads, T, dim / heads): q, k and v
    q, k, v = permute(reshape(qkv, (n, tokens, 3, heads, dim // heads)), (2, 0, 3, 1, 4))
    scores = softmax((q @ k.transpose(-2, -1)) * (1 / math.sqrt(dim // heads)), dim=-1)
    y = reshape(permute(scores @ v, (0, 2, 1, 3)), (n, tokens, dim))
    return fc(y, w["out_proj"], dim)


def encoder_block(x, w, heads, mlp_dim):
    dim = x.shape[-1]
    x = x + attention(layer_norm(x, w["ln_1"], EPS), w["self_attention"], heads)
    y = fc(gelu(fc(layer_norm(x, w["ln_2"], EPS), w["mlp.0"], mlp_dim)), w["mlp.3"], dim)
    return x + y


def vit(w, shape, name, patch, layers, heads, dim, mlp_dim):
    g = Graph(name)
    x = g.input("data", shape)
    x = conv(x, w["conv_proj"], dim, patch, patch)                       # (N, dim, H/p, W/p)
    n, tokens = x.shape[0], x.shape[2] * x.shape[3]
    x = permute(reshape(x, (n, dim, tokens)), (0, 2, 1))                # (N, tokens, dim)
    x = concat([expand(constant(x, w, "class_token", (1, 1, dim)), (n, 1, dim)), x], 1)
    x = x + constant(x, w, "encoder.pos_embedding", (1, tokens + 1, dim))
    for i in range(layers):
        x = encoder_block(x, w[f"encoder.layers.encoder_layer_{i}"], heads, mlp_dim)
    x = select(layer_norm(x, w["encoder.ln"], EPS), 1, 0)                # the class token
    g.output(fc(x, w["heads.head"], 1000), "logits")
    return g


def _vit_b_16(w, shape):
    return vit(w, shape, "vit_b_16", 16, 12, 12, 768, 3072)


register("vit_b_16", (3, 224, 224), blocks.torchvision_model("vit_b_16"), doc="torchvision vit_b_16, 3x224x224",
         slow=True)(_vit_b_16)
