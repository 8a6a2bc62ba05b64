"""TensorRT emitters of elementwise ops, activations and casts."""
import numpy as np

from ..shape import is_static
from .core import emitter

_BINARY = {"add": "SUM", "sub": "SUB", "mul": "PROD", "div": "DIV", "pow": "POW", "maximum": "MAX", "minimum": "MIN",
           "floor_divide": "FLOOR_DIV", "eq": "EQUAL", "lt": "LESS", "gt": "GREATER", "logical_and": "AND",
           "logical_or": "OR", "logical_xor": "XOR"}


def _elementwise(e, a, b, op, name, helper=False):
    layer = e.network.add_elementwise(a, b, getattr(e.t.ElementWiseOperation, op))
    return e.helper(layer, name) if helper else e.named(layer, name)


def _unary(e, x, op, name, helper=False):
    layer = e.network.add_unary(x, getattr(e.t.UnaryOperation, op))
    return e.helper(layer, name) if helper else e.named(layer, name)


_LOGICAL = ("eq", "ne", "logical_and", "logical_or", "logical_xor")


@emitter(*_BINARY, "ne", "le", "ge", "remainder")
def _binary(e, n, a, b):
    r, kind = len(n.shape), n.op
    a, b = (e.unsqueeze_to(v, node, r, f"{n.name}/{side}") for v, node, side in
            ((a, n.inputs[0], "lhs"), (b, n.inputs[1], "rhs")))
    if n.inputs[0].dtype != "bool" or kind in _LOGICAL:
        return _binary_op(e, kind, a, b, n.name)
    # TensorRT's arithmetic, MAX/MIN and ordering take no bool: compute on 0/1 integers
    a, b = (_to(e, v, "int32", f"{n.name}/{side}_int") for v, side in ((a, "lhs"), (b, "rhs")))
    if n.dtype != "bool":
        return _binary_op(e, kind, a, b, n.name)
    y = _binary_op(e, kind, a, b, f"{n.name}/int", helper=True)
    return e.named(e.network.add_cast(y, e.t.bool), n.name)


def _to(e, x, dtype, name):
    return e.helper(e.network.add_cast(x, e.dtype(dtype)), name)


def _binary_op(e, kind, a, b, name, helper=False):
    if kind in _BINARY:
        return _elementwise(e, a, b, _BINARY[kind], name, helper)
    if kind == "ne":
        return _unary(e, _elementwise(e, a, b, "EQUAL", f"{name}/eq", True), "NOT", name, helper)
    if kind in ("le", "ge"):   # (a < b) or (a == b): NaN compares false, as in torch
        eq = _elementwise(e, a, b, "EQUAL", f"{name}/eq", True)
        strict = _elementwise(e, a, b, "LESS" if kind == "le" else "GREATER", f"{name}/strict", True)
        return _elementwise(e, strict, eq, "OR", name, helper)
    # remainder takes the divisor's sign: a - floor(a / b) * b
    q = _elementwise(e, a, b, "FLOOR_DIV", f"{name}/floor_div", True)
    return _elementwise(e, a, _elementwise(e, q, b, "PROD", f"{name}/times", True), "SUB", name, helper)


_UNARY = {"exp": "EXP", "log": "LOG", "sqrt": "SQRT", "abs": "ABS", "neg": "NEG", "reciprocal": "RECIP", "sin": "SIN",
          "cos": "COS", "tan": "TAN", "asin": "ASIN", "acos": "ACOS", "atan": "ATAN", "sinh": "SINH", "cosh": "COSH",
          "erf": "ERF", "floor": "FLOOR", "ceil": "CEIL", "round": "ROUND", "sign": "SIGN", "logical_not": "NOT",
          "isnan": "ISNAN", "isinf": "ISINF"}


@emitter(*_UNARY, "rsqrt", "trunc")
def _unary_op(e, n, x):
    kind, dtype = n.op, n.inputs[0].dtype
    if dtype not in ("float32", "float16", "bfloat16") and kind != "logical_not":   # TensorRT lacks these
        if kind in ("floor", "ceil", "round", "trunc") or dtype in ("bool", "uint8") and kind in ("abs", "sign"):
            if dtype != "uint8" or kind != "sign":   # the input itself (unsigned: its magnitude; bool: its sign)
                return e.named(e.network.add_identity(x), n.name)
            sign = _unary(e, _to(e, x, "int32", f"{n.name}/int32"), "SIGN", f"{n.name}/sign", True)
            return e.named(e.network.add_cast(sign, e.dtype("uint8")), n.name)
        if kind in ("isnan", "isinf"):   # never true of an integer or a bool
            same = _elementwise(e, x, x, "EQUAL" if dtype != "bool" else "XOR", f"{n.name}/same", True)
            return _unary(e, same, "NOT", n.name) if dtype != "bool" else e.named(e.network.add_identity(same),
                                                                                  n.name)
    if kind in _UNARY:
        return _unary(e, x, _UNARY[kind], n.name)
    if kind == "rsqrt":
        return _unary(e, _unary(e, x, "SQRT", f"{n.name}/sqrt", True), "RECIP", n.name)
    # trunc: sign(x) * floor(|x|)
    mag = _unary(e, _unary(e, x, "ABS", f"{n.name}/abs", True), "FLOOR", f"{n.name}/floor", True)
    return _elementwise(e, _unary(e, x, "SIGN", f"{n.name}/sign", True), mag, "PROD", n.name)


def _act(e, x, kind, name, alpha=None, beta=None, helper=False):
    layer = e.network.add_activation(x, getattr(e.t.ActivationType, kind))
    if alpha is not None:
        layer.alpha = alpha
    if beta is not None:
        layer.beta = beta
    return e.helper(layer, name) if helper else e.named(layer, name)


def _scalar(e, n, value, name):
    dtype = e.np_type(n.dtype)
    return e.constant(np.full((1,) * len(n.shape), value, dtype), name, dtype)


@emitter("relu", "sigmoid", "tanh", "leaky_relu", "gelu", "hardsigmoid", "hardtanh", "relu6", "elu", "selu",
         "softsign", "softplus")
def _activation(e, n, x):
    a, kind = n.attrs, n.op
    if kind == "gelu":
        return _act(e, x, "GELU_TANH" if a["approximate"] == "tanh" else "GELU_ERF", n.name)
    if kind == "hardsigmoid":
        return _act(e, x, "HARD_SIGMOID", n.name, 1 / 6, 0.5)
    if kind in ("hardtanh", "relu6"):
        lo, hi = (0.0, 6.0) if kind == "relu6" else (a["min_val"], a["max_val"])
        return _act(e, x, "CLIP", n.name, lo, hi)
    if kind == "leaky_relu":
        return _act(e, x, "LEAKY_RELU", n.name, a["negative_slope"])
    if kind == "elu":
        return _act(e, x, "ELU", n.name, a["alpha"])
    if kind == "selu":   # torch's constants
        return _act(e, x, "SELU", n.name, 1.6732632423543772, 1.0507009873554805)
    if kind == "softplus":   # TensorRT: alpha * log(exp(beta * x) + 1)
        if a["threshold"] >= 15:   # torch's linear branch equals the softplus there to float32 precision
            return _act(e, x, "SOFTPLUS", n.name, 1 / a["beta"], a["beta"])
        soft = _act(e, x, "SOFTPLUS", f"{n.name}/softplus", 1 / a["beta"], a["beta"], helper=True)
        bx = _elementwise(e, x, _scalar(e, n, a["beta"], f"{n.name}/beta"), "PROD", f"{n.name}/beta_x", True)
        linear = _elementwise(e, bx, _scalar(e, n, a["threshold"], f"{n.name}/threshold"), "GREATER",
                              f"{n.name}/linear", True)
        return e.named(e.network.add_select(linear, x, soft), n.name)
    return _act(e, x, kind.upper(), n.name)


@emitter("silu", "hardswish", "mish", "celu", "logsigmoid")
def _composite(e, n, x):
    """Activations TensorRT has no single type for, from the ones it has."""
    kind = n.op
    if kind == "silu":
        return _elementwise(e, x, _act(e, x, "SIGMOID", f"{n.name}/gate", helper=True), "PROD", n.name)
    if kind == "hardswish":
        gate = _act(e, x, "HARD_SIGMOID", f"{n.name}/gate", 1 / 6, 0.5, helper=True)
        return _elementwise(e, x, gate, "PROD", n.name)
    if kind == "mish":
        sp = _act(e, x, "SOFTPLUS", f"{n.name}/softplus", 1.0, 1.0, helper=True)
        return _elementwise(e, x, _act(e, sp, "TANH", f"{n.name}/tanh", helper=True), "PROD", n.name)
    if kind == "logsigmoid":   # -softplus(-x)
        neg = _unary(e, x, "NEG", f"{n.name}/neg", True)
        return _unary(e, _act(e, neg, "SOFTPLUS", f"{n.name}/softplus", 1.0, 1.0, helper=True), "NEG", n.name)
    # celu: max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
    alpha = n.attrs["alpha"]
    scaled = _elementwise(e, x, _scalar(e, n, 1 / alpha, f"{n.name}/inv_alpha"), "PROD", f"{n.name}/scaled", True)
    elu = _act(e, scaled, "ELU", f"{n.name}/elu", 1.0, helper=True)
    return _elementwise(e, elu, _scalar(e, n, alpha, f"{n.name}/alpha"), "PROD", n.name)


@emitter("prelu")
def _prelu(e, n, x):
    w = n.params["weight"]
    shape = [1] * len(n.shape)
    if w.size > 1:
        shape[1] = w.size
    slope = e.constant(w.reshape(shape), f"{n.name}/weight")
    return e.named(e.network.add_parametric_relu(x, slope), n.name)


@emitter("glu")
def _glu(e, n, x):
    d, shape = n.attrs["dim"], n.shape
    halves = []
    for i, what in enumerate(("value", "gate")):
        start = [shape[d] if j == d and i else 0 for j in range(len(shape))]
        layer = e.network.add_slice(x, [int(v) if is_static(v) else 0 for v in start],
                                    [int(v) if is_static(v) else 0 for v in shape], [1] * len(shape))
        if not all(is_static(v) for v in start):
            layer.set_input(1, e.shape_tensor(start, f"{n.name}/{what}_start"))
        if not all(is_static(v) for v in shape):
            layer.set_input(2, e.shape_tensor(shape, f"{n.name}/size"))
        halves.append(e.helper(layer, f"{n.name}/{what}"))
    gate = _act(e, halves[1], "SIGMOID", f"{n.name}/sigmoid", helper=True)
    return _elementwise(e, halves[0], gate, "PROD", n.name)


@emitter("clamp")
def _clamp(e, n, x):
    steps = [(v, op) for v, op in ((n.attrs["min"], "MAX"), (n.attrs["max"], "MIN")) if v is not None]
    for i, (bound, op) in enumerate(steps):
        last = i == len(steps) - 1
        c = _scalar(e, n, bound, f"{n.name}/{op.lower()}_value")
        x = _elementwise(e, x, c, op, n.name if last else f"{n.name}/{op.lower()}", helper=not last)
    return x


@emitter("where")
def _where(e, n, cond, a, b):
    r = len(n.shape)
    cond, a, b = (e.unsqueeze_to(v, node, r, f"{n.name}/{i}") for i, (v, node) in enumerate(zip((cond, a, b), n.inputs)))
    return e.named(e.network.add_select(cond, a, b), n.name)


@emitter("cast")
def _cast(e, n, x):
    return e.named(e.network.add_cast(x, e.dtype(n.dtype)), n.name)


@emitter("size_tensor")
def _size_tensor(e, n):
    """The sizes read from the inputs' shapes (int64 shape arithmetic), shaped as the node and cast to its type."""
    layer = e.network.add_shuffle(e.shape_tensor(n.attrs["sizes"], n.name))
    layer.reshape_dims = tuple(n.shape)
    if n.dtype == "int64":
        return e.named(layer, n.name)
    return e.named(e.network.add_cast(e.helper(layer, f"{n.name}/int64"), e.dtype(n.dtype)), n.name)


@emitter("identity")
def _identity(e, n, x):
    return e.named(e.network.add_identity(x), n.name)


@emitter("const")
def _const(e, n):
    return e.constant(n.params["value"], n.name, e.np_type(n.dtype))
