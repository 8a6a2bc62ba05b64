"""Swin Transformer (Liu et al., 2021) as torchvision builds it: 4x4 patches, four stages of window attention
blocks whose windows shift by half a window every other block, patch merging between stages, a linear head.

Tensors stay (N, H, W, C). Windows fold into the batch: (N, H, W, C) -> (N * windows, 49, C). Sizes that are not
multiples of the window are padded as torchvision pads them, so small inputs work too.
"""
import numpy as np

from trtnet import (Graph, cast, cat, constant, conv, fc, gelu, index_select, layer_norm, mean, pad, permute,
                    reshape, roll, softmax, tensor, unbind, unsqueeze)
from trtnet.zoo import register
from zoo import blocks

WINDOW = 7


def relative_position_bias(x, w, heads):
    """(1, heads, 49, 49): the bias table's rows picked by the relative index buffer (constants TensorRT folds)."""
    table = constant(x, w, "relative_position_bias_table")
    index = cast(constant(x, w, "relative_position_index"), "int32")
    bias = reshape(index_select(table, 0, index), (WINDOW ** 2, WINDOW ** 2, heads))
    return unsqueeze(permute(bias, (2, 0, 1)), 0)


def shift_mask(x, ph, pw, shift):
    """(1, windows, 1, 49, 49) of 0 and -100: after the cyclic shift, keys from another image region are masked."""
    region = np.zeros((ph, pw), np.float32)
    rows, cols = (((0, -WINDOW), (-WINDOW, -s), (-s, None)) for s in shift)
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            region[h0:h1, w0:w1] = 3 * i + j
    windows = region.reshape(ph // WINDOW, WINDOW, pw // WINDOW, WINDOW).transpose(0, 2, 1, 3).reshape(-1, WINDOW ** 2)
    mask = np.where(windows[:, None, :] != windows[:, :, None], -100.0, 0.0).astype(np.float32)
    return tensor(mask[None, :, None], x)


def window_attention(x, w, heads, shift):
    """torchvision's shifted_window_attention: pad to whole windows, roll, attend within each window, undo."""
    n, h, wd, c = x.shape
    x = pad(x, (0, 0, 0, -wd % WINDOW, 0, -h % WINDOW))
    ph, pw = h + -h % WINDOW, wd + -wd % WINDOW
    shift = tuple(shift if WINDOW < size else 0 for size in (ph, pw))  # no shift where one window covers all
    if any(shift):
        x = roll(x, (-shift[0], -shift[1]), (1, 2))
    nh, nw = ph // WINDOW, pw // WINDOW
    x = reshape(permute(reshape(x, (n, nh, WINDOW, nw, WINDOW, c)), (0, 1, 3, 2, 4, 5)),
                (n * nh * nw, WINDOW ** 2, c))
    qkv = reshape(fc(x, w["qkv"], 3 * c), (n * nh * nw, WINDOW ** 2, 3, heads, c // heads))
    q, k, v = unbind(permute(qkv, (2, 0, 3, 1, 4)), 0)                  # each (N * windows, heads, 49, c / heads)
    attn = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1) + relative_position_bias(x, w, heads)
    if any(shift):
        attn = reshape(attn, (n, nh * nw, heads, WINDOW ** 2, WINDOW ** 2)) + shift_mask(x, ph, pw, shift)
        attn = reshape(attn, (n * nh * nw, heads, WINDOW ** 2, WINDOW ** 2))
    y = reshape((softmax(attn, -1) @ v).transpose(1, 2), (n * nh * nw, WINDOW ** 2, c))
    y = fc(y, w["proj"], c)
    y = reshape(permute(reshape(y, (n, nh, nw, WINDOW, WINDOW, c)), (0, 1, 3, 2, 4, 5)), (n, ph, pw, c))
    if any(shift):
        y = roll(y, shift, (1, 2))
    return y[:, :h, :wd, :]


def swin_block(x, w, heads, shift):
    c = x.shape[-1]
    x = x + window_attention(layer_norm(x, w["norm1"]), w["attn"], heads, shift)
    return x + fc(gelu(fc(layer_norm(x, w["norm2"]), w["mlp.0"], 4 * c)), w["mlp.3"], c)


def patch_merging(x, w):
    """2x2 neighbours side by side in channels (padded to even sizes), LayerNorm, a linear map to 2C."""
    h, wd, c = x.shape[1:]
    x = pad(x, (0, 0, 0, wd % 2, 0, h % 2))
    x = cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    return fc(layer_norm(x, w["norm"]), w["reduction"], 2 * c)


def swin(w, shape, name, dim, depths, heads):
    g = Graph(name)
    x = conv(g.input("data", shape), w["features.0.0"], dim, 4, 4)
    x = layer_norm(permute(x, (0, 2, 3, 1)), w["features.0.2"])          # (N, H/4, W/4, dim)
    for stage, (depth, h) in enumerate(zip(depths, heads)):
        blocks = w[f"features.{2 * stage + 1}"]
        for i in range(depth):
            x = swin_block(x, blocks[str(i)], h, WINDOW // 2 if i % 2 else 0)
        if stage < len(depths) - 1:
            x = patch_merging(x, w[f"features.{2 * stage + 2}"])
    x = mean(layer_norm(x, w["norm"]), dim=(1, 2))
    g.output(fc(x, w["head"], 1000), "logits")
    return g


def _swin_t(w, shape):
    return swin(w, shape, "swin_t", 96, (2, 2, 6, 2), (3, 6, 12, 24))


register("swin_t", (3, 224, 224), blocks.torchvision_model("swin_t"), doc="torchvision swin_t, 3x224x224",
         test_shape=(3, 64, 64), slow=True)(_swin_t)
