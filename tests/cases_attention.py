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


def _decoder(q, k, v, mask=None, window=None, scale=None):
    """Softmax attention, written out, over the keys transformers' causal (or sliding-window) mask functions
    let a decoder query see; query i sits at position i + Skv - Sq."""
    from transformers.masking_utils import causal_mask_function, sliding_window_causal_mask_function
    sees = causal_mask_function if window is None else sliding_window_causal_mask_function(window)
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    sq, skv = q.shape[2], k.shape[2]
    allowed = sees(0, 0, torch.arange(sq).reshape(-1, 1) + skv - sq, torch.arange(skv).reshape(1, -1))
    scores = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if mask is not None and mask.dtype == torch.bool:
        allowed = allowed & mask
    elif mask is not None:
        scores = scores + mask
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1) @ v


PREFILL = ({"N": 2, "L": 3, "S": 6}, {"N": 1, "L": 4, "S": 9})   # queries continue a cache: L <= S
case("causal_attention", "gqa-self", qkv(4, "T", "T", hk=2),
     lambda w, q, k, v: tn.causal_attention(q, k, v), _decoder, SELF)
case("causal_attention", "gqa-decode", qkv(4, 1, "S", hk=2),
     lambda w, q, k, v: tn.causal_attention(q, k, v), _decoder, ({"N": 2, "S": 5}, {"N": 1, "S": 9}))
case("causal_attention", "mqa-prefill-cache", qkv(4, "L", "S", hk=1),
     lambda w, q, k, v: tn.causal_attention(q, k, v, scale=0.3), lambda q, k, v: _decoder(q, k, v, scale=0.3),
     PREFILL)
case("causal_attention", "sliding-window", qkv(4, "L", "S", hk=2),
     lambda w, q, k, v: tn.causal_attention(q, k, v, window=3), lambda q, k, v: _decoder(q, k, v, window=3), PREFILL)
case("causal_attention", "padding-bool-mask", {**qkv(2, "L", "S"), "m": (("N", 1, 1, "S"), "bool")},
     lambda w, q, k, v, m: tn.causal_attention(q, k, v, attn_mask=m), _decoder, PREFILL, make=_keep_first)
case("causal_attention", "window-float-mask", {**qkv(4, "L", "S", hk=2), "m": (("L", "S"), "float32")},
     lambda w, q, k, v, m: tn.causal_attention(q, k, v, window=2, attn_mask=m),
     lambda q, k, v, m: _decoder(q, k, v, m, window=2), PREFILL)


def _llama_rope(x, c, s, pos=None):
    """transformers' Llama rotary embedding; GPT-NeoX's for a partial one (cos/sin narrower than x)."""
    from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb as neox
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as llama
    if pos is not None:
        c, s = c[pos.long()], s[pos.long()]
    c, s = torch.cat((c, c), -1), torch.cat((s, s), -1)
    return (llama if c.shape[-1] == x.shape[-1] else neox)(x, x, c, s)[0]


def _gptj_rope(x, c, s, pos=None):
    """transformers' GPT-J rotary embedding (adjacent pairs) on its (B, S, H, D) layout, first 2 * c features."""
    from transformers.models.gptj.modeling_gptj import apply_rotary_pos_emb
    if pos is not None:
        c, s = c[pos.long()], s[pos.long()]
    r, x = 2 * c.shape[-1], x.transpose(1, 2)
    return torch.cat((apply_rotary_pos_emb(x[..., :r], s, c), x[..., r:]), -1).transpose(1, 2)


ROPE = ({"N": 2, "S": 5}, {"N": 1, "S": 9})
POS = {"values": {"p": (0, 16)}}


def _rope_inputs(d=8, r=8, pos=False):
    cache = ((16, r // 2), "float32") if pos else (("N", "S", r // 2), "float32")
    return {"x": (("N", 2, "S", d), "float32"), "c": cache, "s": cache, **({"p": (("N", "S"), "int32")} if pos else {})}


case("rotary_embedding", "llama-halves", _rope_inputs(), lambda w, x, c, s: tn.rotary_embedding(x, c, s),
     _llama_rope, ROPE)
case("rotary_embedding", "neox-partial", _rope_inputs(r=4),
     lambda w, x, c, s: tn.rotary_embedding(x, c, s, rotary_dim=4), _llama_rope, ROPE)
case("rotary_embedding", "llama-position-ids", _rope_inputs(pos=True),
     lambda w, x, c, s, p: tn.rotary_embedding(x, c, s, position_ids=p), _llama_rope, ROPE, **POS)
case("rotary_embedding", "gptj-interleaved", _rope_inputs(),
     lambda w, x, c, s: tn.rotary_embedding(x, c, s, interleaved=True), _gptj_rope, ROPE)
case("rotary_embedding", "gptj-partial-position-ids", _rope_inputs(r=4, pos=True),
     lambda w, x, c, s, p: tn.rotary_embedding(x, c, s, interleaved=True, rotary_dim=4, position_ids=p),
     _gptj_rope, ROPE, **POS)


def _scatter_rows(cache, update, starts):
    """The cache with update's rows scattered to starts[b] + 0 .. S - 1 along the sequence axis."""
    rows = starts.long().reshape(-1, 1, 1, 1) + torch.arange(update.shape[2]).reshape(1, 1, -1, 1)
    return cache.scatter(2, rows.expand(update.shape), update)


KV = {"values": {"w": (0, 12)}}   # start + S <= 16 for S <= 5
case("kv_cache_update", "prefill", {"cache": (("N", 2, 16, 4), "float32"), "u": (("N", 2, "S", 4), "float32"),
                                    "w": (("N",), "int32")},
     lambda w, cache, u, i: tn.kv_cache_update(cache, u, i), _scatter_rows, ({"N": 2, "S": 3}, {"N": 3, "S": 5}), **KV)
case("kv_cache_update", "decode-step", {"cache": (("N", 2, 16, 4), "float16"), "u": (("N", 2, 1, 4), "float16"),
                                        "w": (("N",), "int32")},
     lambda w, cache, u, i: tn.kv_cache_update(cache, u, i), _scatter_rows, ({"N": 2}, {"N": 4}),
     values={"w": (0, 16)})
