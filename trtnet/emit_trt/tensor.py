"""TensorRT emitters of einsum (IEinsumLayer), sort (ITopKLayer over the whole axis), scatters (IScatterLayer),
and indexing with tensors (IGatherLayer)."""
import numpy as np

from ..shape import is_static
from .core import emitter
from .reduce import item_name


@emitter("einsum")
def _einsum(e, n, *xs):
    return e.named(e.network.add_einsum(list(xs), n.attrs["equation"]), n.name)


@emitter("sort")
def _sort(e, n, x):
    """Top-k with k the axis' length, read at run time where it is dynamic; int32 indices cast to int64."""
    axis, size, rank = n.attrs["axis"], n.shape[n.attrs["axis"]], len(n.shape)
    if rank == 1:   # TensorRT's top-k takes two dimensions or more
        x, axis = e.reshape(x, (1, -1), f"{n.name}/rows", final=False), 1
    op = e.t.TopKOperation.MAX if n.attrs["descending"] else e.t.TopKOperation.MIN
    layer = e.network.add_topk(x, op, int(size) if is_static(size) else 1, 1 << axis)
    if not is_static(size):
        k = e.network.add_shuffle(e.dim(size, f"{n.name}/k"))
        k.reshape_dims = ()
        layer.set_input(1, e.helper(k, f"{n.name}/k"))
    names = (n.name, item_name(e, n, 1))
    values = e.named(layer, names[0]) if rank > 1 else e.helper(layer, f"{n.name}/topk")
    indices = layer.get_output(1)
    indices.name = f"{values.name}/indices"
    indices = e.network.add_cast(indices, e.t.int64)
    if rank > 1:
        return values, e.named(indices, names[1])
    wide = e.helper(indices, f"{n.name}/int64")
    return e.reshape(values, n.shape, names[0]), e.reshape(wide, n.shape, names[1])


@emitter("scatter")
def _scatter(e, n, x, index, src):
    layer = e.network.add_scatter(x, index, src, e.t.ScatterMode.ELEMENT)
    layer.axis = n.attrs["axis"]
    return e.named(layer, n.name)


@emitter("index_put")
def _index_put(e, n, x, index, values):
    """ND scatter; negative indices first moved into range (index + size where index < 0), since TensorRT's
    scatter gives them no meaning."""
    E = e.t.ElementWiseOperation
    k, rank = n.inputs[1].shape[-1], len(n.inputs[1].shape)
    sizes = e.shape_tensor(n.inputs[0].shape[:k], f"{n.name}/sizes")
    sizes = e.reshape(sizes, (1,) * (rank - 1) + (k,), f"{n.name}/sizes_row", final=False)
    zero = e.constant(np.zeros((1,) * rank, np.int64), f"{n.name}/zero", np.int64, helper=True)
    negative = e.helper(e.network.add_elementwise(index, zero, E.LESS), f"{n.name}/negative")
    wrapped = e.helper(e.network.add_elementwise(index, sizes, E.SUM), f"{n.name}/wrapped")
    index = e.helper(e.network.add_select(negative, wrapped, index), f"{n.name}/index")
    return e.named(e.network.add_scatter(x, index, values, e.t.ScatterMode.ND), n.name)


@emitter("index_tensor")
def _index_tensor(e, n, x, index):
    return e.named(e.network.add_gather(x, index, n.attrs["axis"]), n.name)


@emitter("index_nd")
def _index_nd(e, n, x, index):
    return e.named(e.network.add_gather_v2(x, index, e.t.GatherMode.ND), n.name)


@emitter("nms")
def _nms(e, n, boxes, scores):
    """INMSLayer with its thresholds as inputs 3 and 4; its data-dependent (K, 3) rows filled with -1 up to the
    node's fixed row count (a -1 row appended first, so that the slice never samples an empty tensor)."""
    from .conv import _slice
    a = n.attrs
    layer = e.network.add_nms(boxes, scores, e.constant(np.array(a["max_per_class"], np.int32),
                                                         f"{n.name}/max_per_class", np.int32, helper=True))
    layer.set_input(3, e.constant(np.array(a["iou_threshold"], np.float32), f"{n.name}/iou", np.float32, True))
    layer.set_input(4, e.constant(np.array(a["score_threshold"], np.float32), f"{n.name}/score", np.float32, True))
    layer.bounding_box_format = (e.t.BoundingBoxFormat.CENTER_SIZES if a["centers"] else
                                 e.t.BoundingBoxFormat.CORNER_PAIRS)
    layer.topk_box_limit = a["limit"]
    rows = e.helper(layer, f"{n.name}/selected")
    count = layer.get_output(1)
    count.name = item_name(e, n, 1)
    end = e.constant(np.full((1, 3), -1, np.int32), f"{n.name}/end", np.int32, helper=True)
    rows = e.helper(e.network.add_concatenation([rows, end]), f"{n.name}/ended")   # never empty: no boxes kept
    return _slice(e, rows, [0, 0], n.shape, n.name, e.t.SampleMode.FILL, -1, "int32", final=True), count
