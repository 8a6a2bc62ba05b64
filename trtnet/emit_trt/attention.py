"""Attention through TensorRT's attention layer (IAttention, marked decomposable so that it builds where no
fused kernel fits), or as matmul/softmax where the value's head size differs from the query's."""
import numpy as np

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
    scale = e.constant(np.full((1, 1, 1, 1), n.attrs["scale"], np.float32), f"{n.name}/scale")
    q = e.helper(e.network.add_elementwise(q, scale, e.t.ElementWiseOperation.PROD), f"{n.name}/scaled_query")
    if nq.shape[-1] == nv.shape[-1]:
        out = _attention_layer(e, n, q, k, v, mask, final=rank == 4)
    else:
        out = _decomposed(e, n, q, k, v, mask, final=rank == 4)
    return out if rank == 4 else e.reshape(out, n.shape, n.name)


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
        ninf = e.constant(np.full((1, 1, 1, 1), -np.inf, np.float32), f"{n.name}/ninf")
        scores = e.helper(net.add_select(mask, scores, ninf), f"{n.name}/masked")
    elif mask is not None:
        scores = e.helper(net.add_elementwise(scores, mask, E.SUM), f"{n.name}/masked")
    soft = net.add_softmax(scores)
    soft.axes = 1 << 3
    probs = e.helper(soft, f"{n.name}/weights")
    mm = net.add_matrix_multiply(probs, M.NONE, v, M.NONE)
    return e.named(mm, n.name) if final else e.helper(mm, f"{n.name}/context")
