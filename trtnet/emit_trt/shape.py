"""TensorRT emitters of shape ops: shuffles, slices, concatenation and expansion, sized at run time where needed."""
from ..shape import is_static, same
from .core import emitter


@emitter("reshape")
def _reshape(e, n, x):
    spec = list(n.attrs["shape"])
    dynamic = [i for i, d in enumerate(spec) if not is_static(d)]
    if len(dynamic) == 1 and -1 not in spec:   # TensorRT infers the one run-time size itself
        spec[dynamic[0]] = -1
    return e.reshape(x, spec, n.name)


@emitter("permute")
def _permute(e, n, x):
    layer = e.network.add_shuffle(x)
    layer.first_transpose = n.attrs["dims"]
    return e.named(layer, n.name)


@emitter("slice")
def _slice(e, n, x):
    starts, steps, sizes = n.attrs["starts"], n.attrs["steps"], n.shape
    static = [int(v) if is_static(v) else 0 for v in starts]
    layer = e.network.add_slice(x, static, [int(v) if is_static(v) else 0 for v in sizes], steps)
    if not all(is_static(v) for v in starts):
        layer.set_input(1, e.shape_tensor(starts, f"{n.name}/start"))
    if not all(is_static(v) for v in sizes):
        layer.set_input(2, e.shape_tensor(sizes, f"{n.name}/size"))
    return e.named(layer, n.name)


@emitter("concat")
def _concat(e, n, *xs):
    layer = e.network.add_concatenation(list(xs))
    layer.axis = n.attrs["axis"]
    return e.named(layer, n.name)


@emitter("expand")
def _expand(e, n, x):
    """A slice with stride 0 along stretched dims, sized at run time where the target size is symbolic."""
    src = n.inputs[0].shape
    strides = [0 if same(a, 1) and not same(b, 1) else 1 for a, b in zip(src, n.shape)]
    layer = e.network.add_slice(x, (0,) * len(src), [int(d) if is_static(d) else 1 for d in n.shape], strides)
    if not all(is_static(d) for d in n.shape):
        layer.set_input(2, e.shape_tensor(n.shape, n.name))
    return e.named(layer, n.name)
