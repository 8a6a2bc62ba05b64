"""Attention computed by torch.nn.functional; rotary embedding as transformers writes it; KV-cache writes."""
import math

import torch
import torch.nn.functional as F

from .core import ref


@ref("scaled_dot_product_attention")
def _sdpa(n, q, k, v, mask=None):
    a = n.attrs
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=a["is_causal"], scale=a["scale"],
                                          enable_gqa=a["enable_gqa"])


@ref("causal_attention")
def _causal_attention(n, q, k, v, mask=None):
    sq, skv, window = q.shape[2], k.shape[2], n.attrs["window"]
    pos = torch.arange(sq).reshape(-1, 1) + (skv - sq)   # absolute position of each query
    keep = torch.arange(skv) <= pos
    if window is not None:
        keep &= pos - torch.arange(skv) < window
    if mask is not None:
        keep = keep & mask if mask.dtype == torch.bool else torch.where(keep, mask, -math.inf)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=n.attrs["scale"], enable_gqa=True)


def _rotate_half(x):
    return torch.cat((-x[..., x.shape[-1] // 2:], x[..., :x.shape[-1] // 2]), -1)


def _rotate_every_two(x):
    return torch.stack((-x[..., 1::2], x[..., ::2]), -1).flatten(-2)


@ref("rotary_embedding")
def _rotary_embedding(n, x, cos, sin, position_ids=None):
    """x * cos + rotate(x) * sin on the first rotary_dim features, cos/sin widened to them per pair."""
    r, interleaved = n.attrs["rotary_dim"], n.attrs["interleaved"]
    if position_ids is not None:
        cos, sin = cos[position_ids.long()], sin[position_ids.long()]
    widen = (lambda c: c.repeat_interleave(2, -1)) if interleaved else (lambda c: torch.cat((c, c), -1))
    cos, sin = widen(cos).unsqueeze(1), widen(sin).unsqueeze(1)
    rot, rest = x[..., :r], x[..., r:]
    rotated = (_rotate_every_two if interleaved else _rotate_half)(rot)
    return torch.cat((rot * cos + rotated * sin, rest), -1)


@ref("kv_cache_update")
def _kv_cache_update(n, cache, update, write_indices):
    out, s = cache.clone(), update.shape[2]
    for b, start in enumerate(write_indices.tolist()):
        if not 0 <= start <= cache.shape[2] - s:
            raise ValueError(f"layer '{n.name}': write index {start} of batch {b} puts {s} rows outside the cache's "
                             f"{cache.shape[2]}")
        out[b, :, start:start + s] = update[b]
    return out
