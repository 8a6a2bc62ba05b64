"""Attention computed by torch.nn.functional."""
import torch.nn.functional as F

from .core import ref


@ref("scaled_dot_product_attention")
def _sdpa(n, q, k, v, mask=None):
    a = n.attrs
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=a["is_causal"], scale=a["scale"],
                                          enable_gqa=a["enable_gqa"])
