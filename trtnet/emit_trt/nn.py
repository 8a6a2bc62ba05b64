"""TensorRT emitters of layers with weights and the matrix ops around them."""
import numpy as np

from .core import emitter


@emitter("fc")
def _fc(e, n, x):
    r, p = len(n.shape), n.params
    M = e.t.MatrixOperation
    if r == 1:
        w = e.constant(p["weight"], f"{n.name}/weight")
        mm = e.network.add_matrix_multiply(w, M.NONE, x, M.VECTOR)
    else:
        w = e.constant(p["weight"].reshape((1,) * (r - 2) + p["weight"].shape), f"{n.name}/weight")
        mm = e.network.add_matrix_multiply(x, M.NONE, w, M.TRANSPOSE)
    if "bias" not in p:
        return e.named(mm, n.name)
    y = e.helper(mm, f"{n.name}/matmul")
    b = e.constant(p["bias"].reshape((1,) * (r - 1) + p["bias"].shape), f"{n.name}/bias")
    return e.named(e.network.add_elementwise(y, b, e.t.ElementWiseOperation.SUM), n.name)


@emitter("softmax", "log_softmax")
def _softmax(e, n, x):
    """ISoftMaxLayer on inputs of rank 2 or more (lower ranks as one row); log_softmax as torch computes it,
    x - max - log(sum(exp(x - max))), which stays finite where the softmax underflows to 0."""
    dim, r = n.attrs["dim"], len(n.shape)
    if r < 2:
        x, dim = e.reshape(x, (1, -1), f"{n.name}/row", final=False), 1
    if n.op == "softmax":
        layer = e.network.add_softmax(x)
        layer.axes = 1 << dim
        if r >= 2:
            return e.named(layer, n.name)
        return e.reshape(e.helper(layer, f"{n.name}/softmax"), n.shape, n.name)
    E, U, R = e.t.ElementWiseOperation, e.t.UnaryOperation, e.t.ReduceOperation
    top = e.helper(e.network.add_reduce(x, R.MAX, 1 << dim, True), f"{n.name}/max")
    shifted = e.helper(e.network.add_elementwise(x, top, E.SUB), f"{n.name}/shifted")
    total = e.helper(e.network.add_reduce(e.helper(e.network.add_unary(shifted, U.EXP), f"{n.name}/exp"), R.SUM,
                                          1 << dim, True), f"{n.name}/sum")
    log = e.helper(e.network.add_unary(total, U.LOG), f"{n.name}/log")
    layer = e.network.add_elementwise(shifted, log, E.SUB)
    return e.named(layer, n.name) if r >= 2 else e.reshape(e.helper(layer, f"{n.name}/out"), n.shape, n.name)


@emitter("bn")
def _bn(e, n, x):
    p = n.params
    scale = p["weight"] / np.sqrt(p["running_var"] + n.attrs["eps"])
    shift = p["bias"] - p["running_mean"] * scale
    if len(n.shape) in (3, 4, 5):
        layer = e.network.add_scale_nd(x, e.t.ScaleMode.CHANNEL, e.weights(shift), e.weights(scale),
                                       e.no_weights(), 1)
        return e.named(layer, n.name)
    shape = [1] * len(n.shape)
    shape[1] = -1
    E = e.t.ElementWiseOperation
    y = e.helper(e.network.add_elementwise(x, e.constant(scale.reshape(shape), f"{n.name}/scale"), E.PROD),
                 f"{n.name}/scaled")
    return e.named(e.network.add_elementwise(y, e.constant(shift.reshape(shape), f"{n.name}/shift"), E.SUM), n.name)


@emitter("layer_norm")
def _layer_norm(e, n, x):
    axes, r = n.attrs["axes"], len(n.shape)
    shape = [n.shape[a] if a in axes else 1 for a in range(r)]
    size = int(np.prod([n.shape[a] for a in axes]))
    weight = n.params.get("weight", np.ones(size, np.float32))
    bias = n.params.get("bias", np.zeros(size, np.float32))
    scale = e.constant(weight.reshape(shape), f"{n.name}/weight", e.np_type(n.dtype))   # the input's type
    shift = e.constant(bias.reshape(shape), f"{n.name}/bias", e.np_type(n.dtype))
    layer = e.network.add_normalization(x, scale, shift, sum(1 << a for a in axes))
    layer.epsilon = n.attrs["eps"]
    return e.named(layer, n.name)


@emitter("matmul")
def _matmul(e, n, a, b):
    """Batch dims broadcast after unit dims are prepended; 1-D operands as a row (left) or column (right)."""
    M = e.t.MatrixOperation
    na, nb = n.inputs
    sa = (1, *na.shape) if na.rank == 1 else na.shape
    sb = (*nb.shape, 1) if nb.rank == 1 else nb.shape
    r = max(len(sa), len(sb))
    sa, sb = (1,) * (r - len(sa)) + tuple(sa), (1,) * (r - len(sb)) + tuple(sb)
    if tuple(sa) != tuple(na.shape):
        a = e.reshape(a, sa, f"{n.name}/lhs", final=False)
    if tuple(sb) != tuple(nb.shape):
        b = e.reshape(b, sb, f"{n.name}/rhs", final=False)
    layer = e.network.add_matrix_multiply(a, M.NONE, b, M.NONE)
    if na.rank > 1 and nb.rank > 1:
        return e.named(layer, n.name)
    return e.reshape(e.helper(layer, f"{n.name}/matmul"), n.shape, n.name)
