"""A small text encoder: token and learned position embeddings, pre-norm Transformer encoder layers that ignore
padding, mean pooling over the real tokens and a linear head. Padding (id 0) only at the ends of rows; the
sequence length is dynamic."""
import numpy as np

from trtnet import (Graph, arange, cast, embedding, eq, fc, gelu, layer_norm, multi_head_attention, ne, sum,
                    unsqueeze)
from trtnet.zoo import register
from zoo import blocks

VOCAB, MAX_LEN, DIM, HEADS, FFN, LAYERS, CLASSES = 1000, 64, 64, 4, 128, 2, 10
PAD = 0


def encoder_layer(x, w, pad):
    """nn.TransformerEncoderLayer(norm_first=True, activation="gelu") with a key padding mask."""
    y = layer_norm(x, w["norm1"])
    x = x + multi_head_attention(y, y, y, w["self_attn"], HEADS, key_padding_mask=pad)
    y = fc(gelu(fc(layer_norm(x, w["norm2"]), w["linear1"], FFN)), w["linear2"], DIM)
    return x + y


def text_encoder(w, shape):
    g = Graph("text_encoder")
    ids = g.input("ids", shape, "int32", ranges={"T": (4, 16, MAX_LEN)}, values=(0, VOCAB))
    pad = eq(ids, PAD)                                                      # True: a key to ignore
    x = embedding(ids, w["embed"], padding_idx=PAD) + embedding(arange(ids.shape[1], like=ids), w["pos"])
    for i in range(LAYERS):
        x = encoder_layer(x, w[f"layers.{i}"], pad)
    keep = unsqueeze(cast(ne(ids, PAD), "float32"), -1)                     # (N, T, 1)
    pooled = sum(layer_norm(x, w["norm"]) * keep, 1) / sum(keep, 1)
    g.output(fc(pooled, w["head"], CLASSES), "logits")
    return g


def padded_ids(graph, env, rng):
    """Token ids 1..VOCAB-1 padded with 0 at the end of rows: every row keeps a real token, the last has padding
    and, given two rows or more, the first has none."""
    n, t = graph.concrete(graph.inputs[0], env)
    ids = rng.integers(1, VOCAB, (n, t))
    lengths = rng.integers(1, max(t, 2), n)
    if n > 1:
        lengths[0] = t
    ids[np.arange(t)[None, :] >= lengths[:, None]] = PAD
    return {graph.inputs[0].name: ids.astype(np.int32)}


register("text_encoder", ("N", "T"), blocks.deferred("zoo.torch_refs", "TextEncoder"), inputs=padded_ids,
         doc="token ids (N, T) -> 2 pre-norm Transformer encoder layers with a padding mask -> mean-pooled logits"
         )(text_encoder)
