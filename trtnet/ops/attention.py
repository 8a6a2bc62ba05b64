"""Attention: torch's scaled_dot_product_attention and nn.MultiheadAttention recorded from its state_dict; the
decoder layers TensorRT has for LLMs: causal attention with a cache, rotary embedding, KV-cache update."""
import math

import numpy as np

from ..graph import Node
from ..shape import is_static, same
from ..weights import WeightMap
from .core import Layer, broadcast, const, fmt, op, public, static_int
from .elementwise import cast, logical_and, logical_not, tensor, where
from .nn import fc, matmul, softmax
from .shape import permute, reshape, transpose


@op("scaled_dot_product_attention", scale=float, is_causal=bool, enable_gqa=bool)
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False, name=None):
    """F.scaled_dot_product_attention on (N, L, E) or (N, H, L, E) inputs: a bool mask keeps its True
    positions, a float mask is added; is_causal keeps key j <= query i (the top-left diagonal)."""
    L = Layer("scaled_dot_product_attention", query, name)
    q, k, v = query, key, value
    for x in (q, k, v):
        L.rank(x, 3, 4)
        L.float_input(x)
    if not (q.rank == k.rank == v.rank and q.dtype == k.dtype == v.dtype):
        L.fail(f"query, key and value differ in rank or dtype: {fmt(q.shape)} {q.dtype}, {fmt(k.shape)} {k.dtype}, "
               f"{fmt(v.shape)} {v.dtype}")
    e = static_int(L, q.shape[-1], "the query's last dimension")
    ev = static_int(L, v.shape[-1], "the value's last dimension")
    if same(k.shape[-1], e) is not True:
        L.fail(f"key {fmt(k.shape)} must have the query's last dimension {e}")
    if same(k.shape[-2], v.shape[-2]) is False or same(q.shape[0], k.shape[0]) is False:
        L.fail(f"key {fmt(k.shape)} and value {fmt(v.shape)} do not match the query {fmt(q.shape)}")
    _check_heads(L, q, k, v, enable_gqa)
    if dropout_p:
        L.fail(f"dropout_p={dropout_p} draws random numbers; inference takes dropout_p=0")
    if is_causal and attn_mask is not None:
        L.fail("give attn_mask or is_causal, not both")
    if ev != e and (is_causal or enable_gqa):
        L.fail(f"is_causal and enable_gqa need the value's last dimension {ev} equal to the query's {e}")
    inputs = [q, k, v]
    if attn_mask is not None:
        inputs.append(_mask(L, attn_mask, q, k))
    attrs = dict(scale=float(1 / math.sqrt(e) if scale is None else scale), is_causal=bool(is_causal),
                 enable_gqa=bool(enable_gqa))
    return L.emit(inputs, (*q.shape[:-1], ev), attrs)


def _check_heads(L, q, k, v, gqa):
    if q.rank == 3:
        return
    hq, hk = (static_int(L, x.shape[1], "the head count") for x in (q, k))
    if same(k.shape[1], v.shape[1]) is not True or (hq % hk if gqa else hq != hk):
        L.fail(f"{hq} query heads for key/value heads {k.shape[1]}/{v.shape[1]}"
               f"{' (enable_gqa needs a divisor)' if gqa else ' (pass enable_gqa=True for grouped heads)'}")


def _mask(L, m, q, k):
    """A mask broadcast over (..., L, S): bool as is, a float one in the query's type."""
    if not isinstance(m, Node):
        L.fail(f"attn_mask must be a tensor, got {m!r}")
    target = (*q.shape[:-1], k.shape[-2])
    if m.rank > q.rank or any(same(a, b) is False for a, b in zip(broadcast(L, m.shape, target), target)):
        L.fail(f"attn_mask {fmt(m.shape)} does not broadcast to {fmt(target)}")
    if m.dtype == "bool" or m.dtype == q.dtype:
        return m
    if not m.is_float:
        L.fail(f"attn_mask must be bool or floating-point, got {m.dtype}")
    return cast(m, q.dtype)


@public
def multi_head_attention(query, key, value, w, num_heads, key_padding_mask=None, attn_mask=None, need_weights=False,
                         batch_first=True, name=None):
    """nn.MultiheadAttention (eval) from its state_dict view `w`: in_proj_weight/bias or q/k/v_proj_weight,
    out_proj. key_padding_mask (N, S) and attn_mask (L, S) or (N*num_heads, L, S): True or -inf blocks a key.
    Returns the output, and with need_weights also the attention weights averaged over the heads."""
    prefix = name or w.prefix or "attn"
    L = Layer("scaled_dot_product_attention", query, prefix)
    for k in ("bias_k", "bias_v"):
        if k in w:
            L.fail(f"'{w.full(k)}' (add_bias_kv) is not supported")
    if not batch_first:
        query, key, value = (transpose(x, 0, 1, name=f"{prefix}.{n}_batch_first")
                             for x, n in ((query, "query"), (key, "key"), (value, "value")))
    e = static_int(L, query.shape[-1], "the embedding size")
    if e % num_heads:
        L.fail(f"embedding size {e} is not divisible by num_heads={num_heads}")
    d = e // num_heads
    heads = []
    for i, (x, n) in enumerate(((query, "q"), (key, "k"), (value, "v"))):
        y = fc(x, _projection(L, w, i, e, x), out=e, name=f"{prefix}.{n}_proj")
        y = reshape(y, (y.shape[0], y.shape[1], num_heads, d), name=f"{prefix}.{n}_heads")
        heads.append(permute(y, (0, 2, 1, 3), name=f"{prefix}.{n}_bhld"))
    q, k, v = heads
    mask = _mha_mask(L, key_padding_mask, attn_mask, q, k, prefix)
    if need_weights:
        scores = matmul(q * (d ** -0.5), transpose(k, 2, 3, name=f"{prefix}.k_t"), name=f"{prefix}.scores")
        if mask is not None:
            scores = _apply_mask(scores, mask, prefix)
        attn = softmax(scores, -1, name=f"{prefix}.weights")
        out = matmul(attn, v, name=f"{prefix}.context")
    else:
        out = scaled_dot_product_attention(q, k, v, attn_mask=mask, name=f"{prefix}.sdpa")
    out = permute(out, (0, 2, 1, 3), name=f"{prefix}.heads_last")
    out = reshape(out, (out.shape[0], out.shape[1], e), name=f"{prefix}.merge_heads")
    out = fc(out, w["out_proj"], out=e, name=f"{prefix}.out_proj")
    if not batch_first:
        out = transpose(out, 0, 1, name=f"{prefix}.seq_first")
    if not need_weights:
        return out
    mean = tensor(np.full(num_heads, 1 / num_heads, np.float32), attn, name=f"{prefix}.head_mean")
    return out, matmul(permute(attn, (0, 2, 3, 1), name=f"{prefix}.heads_inner"), mean, name=f"{prefix}.avg_weights")


def _projection(L, w, i, e, x):
    """The i-th (q, k, v) input projection as a WeightMap of weight and bias."""
    if "in_proj_weight" in w:
        weight = L.param(w, "in_proj_weight", (3 * e, e))[i * e:(i + 1) * e]
    else:
        n = "qkv"[i]
        weight = L.param(w, f"{n}_proj_weight", (e, static_int(L, x.shape[-1], "the input size")))
    bias = L.param(w, "in_proj_bias", (3 * e,), required=False)
    arrays = {"weight": weight} if bias is None else {"weight": weight, "bias": bias[i * e:(i + 1) * e]}
    return WeightMap(arrays, source=w.source)


def _mha_mask(L, key_padding_mask, attn_mask, q, k, prefix):
    """Both masks as one: a keep mask when both are bool, else additive (True -> -inf)."""
    n, h, lq, s = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    parts = []
    if key_padding_mask is not None:
        if key_padding_mask.rank != 2:
            L.fail(f"key_padding_mask must be (N, S), got {fmt(key_padding_mask.shape)}")
        parts.append(reshape(key_padding_mask, (n, 1, 1, s), name=f"{prefix}.key_padding_mask"))
    if attn_mask is not None:
        if attn_mask.rank == 3:
            attn_mask = reshape(attn_mask, (n, h, lq, s), name=f"{prefix}.attn_mask_heads")
        elif attn_mask.rank != 2:
            L.fail(f"attn_mask must be (L, S) or (N*num_heads, L, S), got {fmt(attn_mask.shape)}")
        parts.append(attn_mask)
    if not parts:
        return None
    if all(m.dtype == "bool" for m in parts):
        keep = [logical_not(m, name=f"{m.name}/keep") for m in parts]
        return keep[0] if len(keep) == 1 else logical_and(*keep, name=f"{prefix}.keep")
    inf = const(q.graph, float("-inf"), q.dtype, name=f"{prefix}.inf")
    add = [where(m, inf, 0.0, name=f"{m.name}/additive") if m.dtype == "bool" else m for m in parts]
    return add[0] if len(add) == 1 else add[0] + add[1]


def _apply_mask(scores, mask, prefix):
    if mask.dtype == "bool":
        return where(mask, scores, float("-inf"), name=f"{prefix}.masked")
    return scores + mask


@op("causal_attention", scale=float, window=(int, None))
def causal_attention(query, key, value, scale=None, window=None, attn_mask=None, name=None):
    """Decoder attention: query (B, Hq, Sq, D) at absolute positions Skv - Sq .. Skv - 1 over key/value
    (B, Hkv, Skv, D), Hkv dividing Hq (grouped or multi-query heads). Query i sees key j when
    j <= i + Skv - Sq (causality aligned bottom-right, as when decoding with a cache) and, with `window` W,
    i + Skv - Sq - j < W (Mistral's sliding window). attn_mask (bool keep / float added, broadcast to
    (B, Hq, Sq, Skv)) applies on top of causality, e.g. for padding."""
    L = Layer("causal_attention", query, name)
    q, k, v = query, key, value
    for x in (q, k, v):
        L.rank(x, 4)
        L.float_input(x)
    if not q.dtype == k.dtype == v.dtype:
        L.fail(f"query, key and value differ in dtype: {q.dtype}, {k.dtype}, {v.dtype}")
    d = static_int(L, q.shape[-1], "the head size")
    if not all(same(x.shape[-1], d) is True for x in (k, v)) or same(k.shape[-2], v.shape[-2]) is False \
            or any(same(q.shape[0], x.shape[0]) is False for x in (k, v)):
        L.fail(f"key {fmt(k.shape)} and value {fmt(v.shape)} do not match the query {fmt(q.shape)}")
    _check_heads(L, q, k, v, True)
    if window is not None and (not isinstance(window, (int, np.integer)) or window < 1):
        L.fail(f"window must be a positive int, got {window!r}")
    inputs = [q, k, v] if attn_mask is None else [q, k, v, _mask(L, attn_mask, q, k)]
    attrs = dict(scale=float(1 / math.sqrt(d) if scale is None else scale),
                 window=None if window is None else int(window))
    return L.emit(inputs, q.shape, attrs)


@op("rotary_embedding", interleaved=bool, rotary_dim=int)
def rotary_embedding(x, cos, sin, interleaved=False, rotary_dim=None, position_ids=None, name=None):
    """Rotary position embedding of x (B, H, S, D) on its first `rotary_dim` features (default all; the rest
    pass through), as transformers' apply_rotary_pos_emb: halves rotated (rotate_half; GPT-NeoX, Llama) or,
    `interleaved`, adjacent pairs (GPT-J). cos/sin hold one value per rotated pair: (B, S, rotary_dim/2), or
    (Smax, rotary_dim/2) rows picked by int32/int64 position_ids (B, S)."""
    L = Layer("rotary_embedding", x, name)
    L.rank(x, 4)
    L.float_input(x)
    d = static_int(L, x.shape[-1], "the head size")
    r = d if rotary_dim is None else rotary_dim
    if not isinstance(r, (int, np.integer)) or not 0 < r <= d or r % 2:
        L.fail(f"rotary_dim must be even and in 1..{d}, got {rotary_dim!r}")
    b, s = x.shape[0], x.shape[2]
    want = (b, s, r // 2) if position_ids is None else ("Smax", r // 2)
    for c in (cos, sin):
        _expect(L, c, lambda c: c.dtype == x.dtype and c.rank == len(want) and same(c.shape[-1], r // 2) is True and
                (position_ids is not None or same(c.shape[0], b) is not False and same(c.shape[1], s) is not False),
                f"cos and sin must be {x.dtype} tensors of shape {fmt(want)}")
    inputs = [x, cos, sin]
    if position_ids is not None:
        p = position_ids
        _expect(L, p, lambda p: p.dtype in ("int32", "int64") and p.rank == 2 and same(p.shape[0], b) is not False
                and same(p.shape[1], s) is not False, f"position_ids must be an int32 or int64 tensor of shape "
                f"{fmt((b, s))}")
        inputs.append(p)
    return L.emit(inputs, x.shape, dict(interleaved=bool(interleaved), rotary_dim=int(r)))


@op("kv_cache_update")
def kv_cache_update(cache, update, write_indices, name=None):
    """The cache (B, H, Smax, D) with update (B, H, S, D) written at rows write_indices[b] .. + S - 1 of batch b
    (int32 (B,)). TensorRT updates the cache in place: it must be a network input with a fixed Smax, and the
    result a network output."""
    L = Layer("kv_cache_update", cache, name)
    for x in (cache, update):
        L.rank(x, 4)
        L.float_input(x)
    if cache.op != "input":
        L.fail(f"the cache must be a network input (TensorRT updates it in place), got '{cache.name}' ({cache.op})")
    smax = static_int(L, cache.shape[2], "the cache's length (dimension 2)")
    if update.dtype != cache.dtype or any(same(update.shape[i], cache.shape[i]) is False for i in (0, 1, 3)) \
            or is_static(update.shape[2]) and update.shape[2] > smax:
        L.fail(f"update {fmt(update.shape)} {update.dtype} does not match the cache {fmt(cache.shape)} {cache.dtype}")
    w = write_indices
    _expect(L, w, lambda w: w.dtype == "int32" and w.rank == 1 and same(w.shape[0], cache.shape[0]) is not False,
            f"write_indices must be an int32 tensor of shape {fmt(cache.shape[:1])} (TensorRT builds no other type)")
    return L.emit([cache, update, write_indices], cache.shape)


def _expect(L, x, ok, what):
    """Fail with `what` and what `x` is unless it is a Node for which `ok(x)` holds."""
    if not isinstance(x, Node) or not ok(x):
        L.fail(f"{what}, got {fmt(x.shape) + ' ' + x.dtype if isinstance(x, Node) else repr(x)}")
