"""Cases of attention: scaled_dot_product_attention and nn.MultiheadAttention."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import trtnet as tn
from op_cases import case

SDPA = F.scaled_dot_product_attention
SELF = ({"N": 2, "T": 5}, {"N": 1, "T": 9})
CROSS = ({"N": 2, "L": 3, "S": 6}, {"N": 1, "L": 7, "S": 4})


def _keep_first(name, shape, dtype, rng):
    """Bool masks keep key 0 so that no query has every key masked (torch gives NaN there)."""
    if dtype == "bool":
        m = rng.random(shape) < 0.6
        m[..., 0] = True
        return m
    return rng.standard_normal(shape).astype(dtype)


def qkv(h, lq, s, e=8, ev=8, hk=None):
    hk = h if hk is None else hk
    return {"q": (("N", h, lq, e), "float32"), "k": (("N", hk, s, e), "float32"), "v": (("N", hk, s, ev), "float32")}


case("scaled_dot_product_attention", "self-dynamic", qkv(2, "T", "T"),
     lambda w, q, k, v: tn.scaled_dot_product_attention(q, k, v), SDPA, SELF)
case("scaled_dot_product_attention", "cross-scale", qkv(2, "L", "S"),
     lambda w, q, k, v: tn.scaled_dot_product_attention(q, k, v, scale=0.3), lambda q, k, v: SDPA(q, k, v, scale=0.3),
     CROSS)
case("scaled_dot_product_attention", "causal-cross", qkv(2, "L", "S"),
     lambda w, q, k, v: tn.scaled_dot_product_attention(q, k, v, is_causal=True),
     lambda q, k, v: SDPA(q, k, v, is_causal=True), CROSS)
case("scaled_dot_product_attention", "bool-mask-broadcast", {**qkv(2, "L", "S"), "m": (("N", 1, 1, "S"), "bool")},
     lambda w, q, k, v, m: tn.scaled_dot_product_attention(q, k, v, attn_mask=m),
     lambda q, k, v, m: SDPA(q, k, v, attn_mask=m), CROSS, make=_keep_first)
case("scaled_dot_product_attention", "float-mask-2d", {**qkv(2, "L", "S"), "m": (("L", "S"), "float32")},
     lambda w, q, k, v, m: tn.scaled_dot_product_attention(q, k, v, attn_mask=m),
     lambda q, k, v, m: SDPA(q, k, v, attn_mask=m), CROSS)
case("scaled_dot_product_attention", "rank3-bool-mask", {"q": (("N", "L", 8), "float32"), "k": (("N", "S", 8), "float32"),
                                                          "v": (("N", "S", 8), "float32"), "m": (("N", "L", "S"), "bool")},
     lambda w, q, k, v, m: tn.scaled_dot_product_attention(q, k, v, attn_mask=m),
     lambda q, k, v, m: SDPA(q, k, v, attn_mask=m), CROSS, make=_keep_first)
case("scaled_dot_product_attention", "gqa-causal", qkv(4, "T", "T", hk=2),
     lambda w, q, k, v: tn.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True),
     lambda q, k, v: SDPA(q, k, v, is_causal=True, enable_gqa=True), SELF)
case("scaled_dot_product_attention", "value-size-differs-masked", {**qkv(2, "L", "S", ev=5),
                                                                   "m": ((1, 2, "L", "S"), "bool")},
     lambda w, q, k, v, m: tn.scaled_dot_product_attention(q, k, v, attn_mask=m),
     lambda q, k, v, m: SDPA(q, k, v, attn_mask=m), CROSS, make=_keep_first)


def _mha(e=8, heads=2, kdim=None, seed=0):
    torch.manual_seed(seed)
    m = nn.MultiheadAttention(e, heads, kdim=kdim, vdim=kdim, batch_first=True).eval()
    with torch.no_grad():
        m.out_proj.bias.normal_()
        if m.in_proj_bias is not None:
            m.in_proj_bias.normal_()
    return m, {f"attn.{k}": v.numpy().copy() for k, v in m.state_dict().items()}


MHA, MHA_W = _mha()
MHA_KV, MHA_KV_W = _mha(kdim=6, seed=1)


def _torch_mha(m, need_weights=False, seq_first=False):
    def fn(q, k, v, pad=None):
        if seq_first:
            q, k, v = (x.transpose(0, 1) for x in (q, k, v))
        out, weights = m(q, k, v, key_padding_mask=pad, need_weights=need_weights)
        if seq_first:
            out = out.transpose(0, 1)
        return (out, weights) if need_weights else out
    return fn


case("scaled_dot_product_attention", "mha-key-padding",
     {"q": (("N", "L", 8), "float32"), "k": (("N", "S", 8), "float32"), "v": (("N", "S", 8), "float32"),
      "pad": (("N", "S"), "bool")},
     lambda w, q, k, v, pad: tn.multi_head_attention(q, k, v, w["attn"], 2, key_padding_mask=pad),
     _torch_mha(MHA), CROSS, MHA_W, make=lambda *a: ~_keep_first(*a) if a[2] == "bool" else _keep_first(*a))
case("scaled_dot_product_attention", "mha-weights-kdim",
     {"q": (("N", "L", 8), "float32"), "k": (("N", "S", 6), "float32"), "v": (("N", "S", 6), "float32"),
      "pad": (("N", "S"), "bool")},
     lambda w, q, k, v, pad: tn.multi_head_attention(q, k, v, w["attn"], 2, key_padding_mask=pad, need_weights=True),
     _torch_mha(MHA_KV, need_weights=True), CROSS, MHA_KV_W,
     make=lambda *a: ~_keep_first(*a) if a[2] == "bool" else _keep_first(*a))
case("scaled_dot_product_attention", "mha-self-seq-first",
     {"x": (("T", "N", 8), "float32")},
     lambda w, x: tn.multi_head_attention(x, x, x, w["attn"], 2, batch_first=False),
     lambda x: _torch_mha(MHA, seq_first=True)(x, x, x), SELF, MHA_W)
case("scaled_dot_product_attention", "mha-bool-attn-mask",
     {"x": (("N", "T", 8), "float32"), "am": (("T", "T"), "bool"), "pad": (("N", "T"), "bool")},
     lambda w, x, am, pad: tn.multi_head_attention(x, x, x, w["attn"], 2, key_padding_mask=pad, attn_mask=am),
     lambda x, am, pad: MHA(x, x, x, key_padding_mask=pad, attn_mask=am, need_weights=False)[0], SELF, MHA_W,
     make=lambda *a: ~_keep_first(*a) if a[2] == "bool" else _keep_first(*a))
case("scaled_dot_product_attention", "mha-float-head-mask-weights",
     {"x": ((2, "T", 8), "float32"), "am": ((4, "T", "T"), "float32")},
     lambda w, x, am: tn.multi_head_attention(x, x, x, w["attn"], 2, attn_mask=am, need_weights=True),
     lambda x, am: MHA(x, x, x, attn_mask=am), ({"T": 5}, {"T": 9}), MHA_W)
