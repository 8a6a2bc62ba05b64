"""Attention through TensorRT's attention layer (IAttention, marked decomposable so that it builds where no
fused kernel fits), or as matmul/softmax where the value's head size differs from the query's; TensorRT's rotary
embedding and KV-cache layers."""
import numpy as np

from ..graph import GraphError
from .core import emitter


@emitter("scaled_dot_product_attention")
def _sdpa(e, n, q, k, v, mask=None):
    nq, nk, nv = n.inputs[:3]
    rank = nq.rank
    if rank == 3:   # (N, L, E) -> (N, 1, L, E): the layer takes heads
        q, k, v = (e.reshape(x, (m.shape[0], 1, *m.shape[1:]), f"{n.name}/{w}_4d", final=False)
                   for x, m, w in ((q, nq, "query"), (k, nk, "key"), (v, nv, "value")))
    if mask is not None:
        mask = _mask_4d(e, n, mask)
    q = _scaled(e, n, q)
    if nq.shape[-1] == nv.shape[-1]:
        out = _attention_layer(e, n, q, k, v, mask, final=rank == 4)
    else:
        out = _decomposed(e, n, q, k, v, mask, final=rank == 4)
    return out if rank == 4 else e.reshape(out, n.shape, n.name)


def _scaled(e, n, q):
    """The query times the scale: the attention layer does not scale Q K^T."""
    scale = e.constant(np.full((1, 1, 1, 1), n.attrs["scale"], np.float32), f"{n.name}/scale", e.np_type(n.dtype))
    return e.helper(e.network.add_elementwise(q, scale, e.t.ElementWiseOperation.PROD), f"{n.name}/scaled_query")


def _mask_4d(e, n, mask):
    """The mask right-aligned with the scores; (N, L, S) scores get their head axis after the batch."""
    m = n.inputs[3]
    if m.rank == 4:
        return mask
    shape = (1,) * (n.inputs[0].rank - m.rank) + tuple(m.shape)
    return e.reshape(mask, shape if len(shape) == 4 else (shape[0], 1, *shape[1:]), f"{n.name}/mask_4d", final=False)


def _attention_layer(e, n, q, k, v, mask, final):
    t = e.t
    causal = t.CausalMaskKind.UPPER_LEFT if n.attrs["is_causal"] else t.CausalMaskKind.NONE
    att = e.network.add_attention_v2(q, k, v, t.AttentionNormalizationOp.SOFTMAX, causal)
    att.decomposable = True
    if mask is not None:
        att.mask = mask
    return e.named(att, n.name) if final else e.helper(att, f"{n.name}/attention")


def _decomposed(e, n, q, k, v, mask, final):
    """softmax(q k^T + mask) v, a bool mask selecting -inf where it is False."""
    M, E = e.t.MatrixOperation, e.t.ElementWiseOperation
    net = e.network
    scores = e.helper(net.add_matrix_multiply(q, M.NONE, k, M.TRANSPOSE), f"{n.name}/scores")
    if mask is not None and n.inputs[3].dtype == "bool":
        ninf = e.constant(np.full((1, 1, 1, 1), -np.inf, np.float32), f"{n.name}/ninf", e.np_type(n.dtype))
        scores = e.helper(net.add_select(mask, scores, ninf), f"{n.name}/masked")
    elif mask is not None:
        scores = e.helper(net.add_elementwise(scores, mask, E.SUM), f"{n.name}/masked")
    soft = net.add_softmax(scores)
    soft.axes = 1 << 3
    probs = e.helper(soft, f"{n.name}/weights")
    mm = net.add_matrix_multiply(probs, M.NONE, v, M.NONE)
    return e.named(mm, n.name) if final else e.helper(mm, f"{n.name}/context")


@emitter("causal_attention")
def _causal_attention(e, n, q, k, v, mask=None):
    """LOWER_RIGHT causality in the layer where nothing else masks; TensorRT refuses a mask together with a causal
    kind, so a window or a mask makes one combined mask, computed from the run-time lengths, and causal NONE."""
    t = e.t
    plain = mask is None and n.attrs["window"] is None
    causal = t.CausalMaskKind.LOWER_RIGHT if plain else t.CausalMaskKind.NONE
    att = e.network.add_attention_v2(_scaled(e, n, q), k, v, t.AttentionNormalizationOp.SOFTMAX, causal)
    att.decomposable = True
    if not plain:
        att.mask = _causal_mask(e, n, q, k, mask)
    return e.named(att, n.name)


def _causal_mask(e, n, q, k, mask):
    """d = Skv - Sq + i - j as one (1, 1, Sq, Skv) LINSPACE fill; keep d >= 0 (and d < window), joined with the
    given mask: AND for a bool one, -inf where not kept for a float one."""
    net, E = e.network, e.t.ElementWiseOperation

    def length(x, what):
        shape = e.helper(net.add_shape(x), f"{n.name}/{what}_shape")
        return e.helper(net.add_slice(shape, (2,), (1,), (1,)), f"{n.name}/{what}_length")

    def ints(values, what):
        return e.constant(np.array(values, np.int32).reshape(-1 if len(values) > 1 else (1, 1, 1, 1)),
                          f"{n.name}/{what}", np.int32, helper=True)

    sq, skv = length(q, "query"), length(k, "key")
    dims = e.helper(net.add_concatenation([e.ints([1, 1], f"{n.name}/unit_dims"), sq, skv]), f"{n.name}/mask_dims")
    offset = net.add_shuffle(e.helper(net.add_elementwise(skv, sq, E.SUB), f"{n.name}/offset"))
    offset.reshape_dims = ()
    offset = e.helper(net.add_cast(e.helper(offset, f"{n.name}/offset_0d"), e.t.int32), f"{n.name}/offset_int32")
    fill = net.add_fill((1, 1, 1, 1), e.t.FillOperation.LINSPACE, e.t.int32)
    fill.set_input(0, dims)
    fill.set_input(1, offset)
    fill.set_input(2, ints([0, 0, 1, -1], "steps"))
    d = e.helper(fill, f"{n.name}/distance")
    keep = e.helper(net.add_elementwise(d, ints([-1], "minus_one"), E.GREATER), f"{n.name}/causal")
    if n.attrs["window"] is not None:
        near = e.helper(net.add_elementwise(d, ints([n.attrs["window"]], "window"), E.LESS), f"{n.name}/in_window")
        keep = e.helper(net.add_elementwise(keep, near, E.AND), f"{n.name}/causal_window")
    if mask is None:
        return keep
    mask = _mask_4d(e, n, mask)
    if n.inputs[3].dtype == "bool":
        return e.helper(net.add_elementwise(keep, mask, E.AND), f"{n.name}/keep")
    ninf = e.constant(np.full((1, 1, 1, 1), -np.inf, np.float32), f"{n.name}/ninf", helper=True)
    return e.helper(net.add_select(keep, mask, ninf), f"{n.name}/additive")


@emitter("rotary_embedding")
def _rotary_embedding(e, n, x, cos, sin, position_ids=None):
    if not hasattr(e.network, "add_rotary_embedding"):
        raise GraphError(f"{n.where}: layer '{n.name}' (rotary_embedding) needs TensorRT-RTX or TensorRT 11")
    r = n.attrs["rotary_dim"]
    layer = e.network.add_rotary_embedding(x, cos, sin, n.attrs["interleaved"], 0 if r == n.shape[-1] else r)
    if position_ids is not None:
        layer.set_input(3, position_ids)
    return e.named(layer, n.name)


@emitter("kv_cache_update")
def _kv_cache_update(e, n, cache, update, write_indices):
    """TensorRT updates the cache in place: its input and the result must be the network's own tensors, which
    half-precision builds would replace by casts."""
    where = f"{n.where}: layer '{n.name}' (kv_cache_update)"
    if not hasattr(e.network, "add_kv_cache_update"):
        raise GraphError(f"{where} needs TensorRT-RTX or TensorRT 11")
    if not any(o is n for o in e.graph.outputs):
        raise GraphError(f"{where}: the updated cache must be a network output (TensorRT updates it in place): "
                         "pass it to g.output(...)")
    if e.float != np.float32:
        raise GraphError(f"{where}: fp16 and bf16 builds cast network inputs and outputs, which TensorRT's in-place "
                         f"cache cannot be: keep the layer in fp32 (keep_fp32=['{n.name}'], --keep-fp32 {n.name}) or "
                         "record a float16 cache and build in fp32")
    layer = e.network.add_kv_cache_update(cache, update, write_indices, e.t.KVCacheMode.LINEAR)
    return e.named(layer, n.name)
