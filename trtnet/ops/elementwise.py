"""Elementwise ops: binary arithmetic and comparisons with broadcasting, unary math, activations, casts."""
import numpy as np

from ..graph import DTYPES, GraphError, Node, user_line
from ..shape import Expr, same
from .core import Layer, alias, broadcast, const, fmt, op, promote, public, result_type, scalar_dtype

# torch name -> result is bool
BINARY = {"add": False, "sub": False, "mul": False, "div": False, "pow": False, "maximum": False, "minimum": False,
          "floor_divide": False, "remainder": False, "eq": True, "ne": True, "lt": True, "le": True, "gt": True,
          "ge": True, "logical_and": True, "logical_or": True, "logical_xor": True}
UNARY = ("exp", "log", "sqrt", "rsqrt", "abs", "neg", "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan",
         "sinh", "cosh", "erf", "floor", "ceil", "round", "trunc", "sign", "logical_not", "isnan", "isinf")
FLOAT_UNARY = {"exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
               "cosh", "erf"}
ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "silu", "gelu", "hardswish", "hardsigmoid", "hardtanh",
               "elu", "selu", "celu", "softplus", "softsign", "mish", "relu6", "logsigmoid")


def _binary(kind, a, b, name=None):
    a, b, dtype = operands(a, b)
    L = Layer(kind, a, name)
    if kind == "div" and dtype not in ("float32", "float16", "bfloat16"):   # true division, as torch
        a, b = cast(a, "float32"), cast(b, "float32")
        dtype = "float32"
    if kind.startswith("logical_"):
        a, b = (cast(v, "bool") if v.dtype != "bool" else v for v in (a, b))
    out = "bool" if BINARY[kind] else dtype
    return L.emit([a, b], broadcast(L, a.shape, b.shape), dtype=out)


def operands(a, b):
    """Two elementwise operands as Nodes with a common dtype, scalars made constants (torch's promotion)."""
    x = a if isinstance(a, Node) else b
    if not isinstance(x, Node):
        raise GraphError(f"{user_line()}: expected a tensor operand, got {a!r} and {b!r}")
    if isinstance(a, Node) and isinstance(b, Node):
        if a.graph is not b.graph:
            raise GraphError(f"{user_line()}: '{a.name}' and '{b.name}' belong to different graphs")
        dtype = result_type(a, b)
    else:
        other = b if x is a else a
        dtype = scalar_dtype(other, x.dtype)
        if isinstance(other, Expr):      # a run-time size (x / w in an anchor grid): a 0-D tensor of it
            a, b = (_size_tensor(v, x, dtype) if v is other else v for v in (a, b))
    a, b = (cast(v, dtype) if isinstance(v, Node) and v.dtype != dtype else
            v if isinstance(v, Node) else const(x.graph, v, dtype) for v in (a, b))
    return a, b, dtype


def _make_binary(kind):
    def fn(input, other, name=None):
        return _binary(kind, input, other, name)
    fn.__name__ = fn.__qualname__ = kind
    fn.__doc__ = f"torch.{kind} with broadcasting; Python scalars become constants of the tensor's type."
    return op(kind)(fn)


def _make_unary(kind):
    def fn(input, name=None):
        L = Layer(kind, input, name)
        x = input
        if kind == "neg" and x.dtype == "uint8":
            L.fail(f"negating the uint8 tensor '{x.name}' wraps around in torch; TensorRT has no unsigned negation "
                   "(cast it to a signed type first)")
        if kind in FLOAT_UNARY and not x.is_float:
            x = cast(x, "float32")
        if kind == "logical_not" and x.dtype != "bool":
            x = cast(x, "bool")
        dtype = "bool" if kind in ("logical_not", "isnan", "isinf") else x.dtype
        return L.emit([x], x.shape, dtype=dtype)
    fn.__name__ = fn.__qualname__ = kind
    fn.__doc__ = f"torch.{kind}, elementwise."
    return op(kind)(fn)


for _k in BINARY:
    globals()[_k] = _make_binary(_k)
for _k in UNARY:
    globals()[_k] = _make_unary(_k)
_divide, _round = globals()["div"], globals()["round"]


@public
def div(input, other, rounding_mode=None, name=None):
    """torch.div: true division (rounding_mode None), rounded toward zero ("trunc") or down ("floor", which is
    floor_divide); integers rounded stay integers, exactly (sign(a * b) * (|a| // |b|))."""
    if rounding_mode is None:
        return _divide(input, other, name)
    if rounding_mode == "floor":
        return floor_divide(input, other, name)
    a, b, _ = operands(input, other)
    L = Layer("div", a, name)
    if rounding_mode != "trunc":
        L.fail(f"rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    if a.is_float:
        return trunc(_divide(a, b, f"{L.name}/true"), name=name)
    sign_ = mul(sign(a, f"{L.name}/sign_a"), sign(b, f"{L.name}/sign_b"), f"{L.name}/sign")
    return mul(sign_, floor_divide(abs(a, f"{L.name}/abs_a"), abs(b, f"{L.name}/abs_b"), f"{L.name}/floor"), name)


@public
def fmod(input, other, name=None):
    """torch.fmod: the remainder of division rounded toward zero, with the dividend's sign (remainder takes the
    divisor's): a - trunc(a / b) * b, exact on integers."""
    a, b, _ = operands(input, other)
    L = Layer("sub", a, name or "fmod")
    return sub(a, mul(div(a, b, "trunc", f"{L.name}/trunc"), b, f"{L.name}/times"), L.name)


@public
def round(input, decimals=0, name=None):
    """torch.round, half to even; with `decimals` as torch computes it in the input's type: round(x * 10^d) / 10^d,
    or round(x / 10^-d) * 10^-d for negative d."""
    if not decimals:
        return _round(input, name)
    L = Layer("round", input, name)
    if not input.is_float:
        L.fail(f"decimals={decimals} needs a floating-point input, got '{input.name}' of dtype {input.dtype}")
    scale = 10.0 ** (decimals if decimals > 0 else -decimals)   # (this module's abs is the op)
    if decimals > 0:
        return _divide(_round(mul(input, scale, f"{L.name}/scaled"), f"{L.name}/round"), scale, name)
    return mul(_round(_divide(input, scale, f"{L.name}/scaled"), f"{L.name}/round"), scale, name)


INT_CLAMPS = {"relu": (0, None), "relu6": (0, 6)}   # activations torch computes on integers, as clamps
FLOAT_OF_INT = ("sigmoid", "tanh", "softsign")     # activations torch computes on integers and bools in float32


def activation(x, kind, name=None, **attrs):
    """One activation op, `attrs` being its torch keyword arguments; integer inputs as torch takes them."""
    L = Layer(kind, x, name)
    if not x.is_float and kind in FLOAT_OF_INT:
        x = cast(x, "float32", f"{L.name}/float")
    elif not x.is_float and x.dtype != "bool" and (kind in INT_CLAMPS or kind == "hardtanh"):
        lo, hi = INT_CLAMPS.get(kind) or (int(attrs["min_val"]), int(attrs["max_val"]))   # torch truncates them
        return clamp(x, lo, hi, name)
    L.float_input(x)
    return L.emit([x], x.shape, attrs)


@op()
def relu(input, name=None):
    return activation(input, "relu", name)


@op()
def sigmoid(input, name=None):
    return activation(input, "sigmoid", name)


@op()
def tanh(input, name=None):
    return activation(input, "tanh", name)


@op(negative_slope=float)
def leaky_relu(input, negative_slope=0.01, name=None):
    return activation(input, "leaky_relu", name, negative_slope=float(negative_slope))


@op()
def silu(input, name=None):
    return activation(input, "silu", name)


@op(approximate=str)
def gelu(input, approximate="none", name=None):
    """F.gelu: exact (erf) or approximate='tanh'."""
    if approximate not in ("none", "tanh"):
        Layer("gelu", input, name).fail(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return activation(input, "gelu", name, approximate=approximate)


@op()
def hardswish(input, name=None):
    return activation(input, "hardswish", name)


@op()
def hardsigmoid(input, name=None):
    return activation(input, "hardsigmoid", name)


@op(min_val=float, max_val=float)
def hardtanh(input, min_val=-1.0, max_val=1.0, name=None):
    return activation(input, "hardtanh", name, min_val=float(min_val), max_val=float(max_val))


@op()
def relu6(input, name=None):
    return activation(input, "relu6", name)


@op(alpha=float)
def elu(input, alpha=1.0, name=None):
    return activation(input, "elu", name, alpha=float(alpha))


@op()
def selu(input, name=None):
    return activation(input, "selu", name)


@op(alpha=float)
def celu(input, alpha=1.0, name=None):
    return activation(input, "celu", name, alpha=float(alpha))


@op(beta=float, threshold=float)
def softplus(input, beta=1.0, threshold=20.0, name=None):
    return activation(input, "softplus", name, beta=float(beta), threshold=float(threshold))


@op()
def softsign(input, name=None):
    return activation(input, "softsign", name)


@op()
def mish(input, name=None):
    return activation(input, "mish", name)


@op()
def logsigmoid(input, name=None):
    return activation(input, "logsigmoid", name)


@op("prelu")
def prelu(x, w, name=None):
    """nn.PReLU: x where x >= 0, else weight * x; `weight` holds one slope or one per channel (dim 1)."""
    L = Layer("prelu", x, name or w.prefix)
    L.float_input(x)
    raw = w.get("weight")
    count = 1 if raw is None or raw.size == 1 else raw.size
    if count > 1 and (x.rank < 2 or same(x.shape[1], count) is False):
        L.fail(f"'{w.full('weight')}' has {count} slopes, the input {fmt(x.shape)} needs one or one per channel")
    return L.emit([x], x.shape, params={"weight": L.param(w, "weight", (count,))})


@op("glu", dim=int)
def glu(input, dim=-1, name=None):
    """F.glu: the first half of `dim` gated by the sigmoid of the second half."""
    L = Layer("glu", input, name)
    L.float_input(input)
    d = L.axis(input, dim)
    size = input.shape[d]
    if same(size % 2, 0) is False:
        L.fail(f"dim {dim} of shape {fmt(input.shape)} has an odd size")
    shape = tuple(s // 2 if i == d else s for i, s in enumerate(input.shape))
    return L.emit([input], shape, dict(dim=d))


@op("clamp", min=(float, int, None), max=(float, int, None))
def clamp(input, min=None, max=None, name=None):
    """torch.clamp: scalar bounds (either may be None) promote as torch does (an int tensor with a float bound
    gives float32); tensor bounds broadcast, as maximum/minimum."""
    L = Layer("clamp", input, name)
    if min is None and max is None:
        L.fail("give min=, max= or both")
    if isinstance(min, Node) or isinstance(max, Node):
        y = input if min is None else maximum(input, min, name=None if max is not None else name)
        return y if max is None else minimum(y, max, name=name)
    dtype = input.dtype
    for v in (min, max):
        dtype = dtype if v is None else promote(dtype, scalar_dtype(v, input.dtype))
    x = input if dtype == input.dtype else cast(input, dtype)
    typed = float if x.is_float else int
    return L.emit([x], x.shape, dict(min=None if min is None else typed(min),
                                     max=None if max is None else typed(max)))


clip = alias(clamp, "clip")


@op("where")
def where(condition, input, other, name=None):
    """torch.where(condition, input, other), all three broadcast; scalars become constants (two scalars: the
    dtype torch gives them, int64 or float32)."""
    L = Layer("where", condition if isinstance(condition, Node) else input, name)
    if not isinstance(condition, Node):
        L.fail("condition must be a tensor")
    if condition.dtype != "bool":
        condition = cast(condition, "bool")
    if not isinstance(input, Node) and not isinstance(other, Node):
        dtype = promote(scalar_dtype(input, "bool"), scalar_dtype(other, "bool"))
        input = const(condition.graph, input, dtype)
    a, b, dtype = operands(input, other)
    shape = broadcast(L, broadcast(L, condition.shape, a.shape), b.shape)
    return L.emit([condition, a, b], shape, dtype=dtype)


@op("cast", dtype=str)
def cast(input, dtype, name=None):
    """x.to(dtype): float32, float16, bfloat16, int8, int32, int64, bool, uint8."""
    L = Layer("cast", input, name)
    dtype = {"float": "float32", "half": "float16", "int": "int32", "long": "int64"}.get(str(dtype), str(dtype))
    dtype = dtype.replace("torch.", "")
    if dtype not in DTYPES:
        L.fail(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype == input.dtype:
        return input
    return L.emit([input], input.shape, dict(dtype=dtype), dtype=dtype)


@op("identity")
def identity(input, name=None):
    """Dropout and other train-only layers: a named pass-through, so layer names still line up."""
    return Layer("identity", input, name).emit([input], input.shape)


@public
def dropout(input, p=0.5, training=False, inplace=False, name=None):
    """F.dropout at inference: a named pass-through."""
    return identity(input, name)


@op("size_tensor", sizes=tuple)
def _size_tensor(sizes, like, dtype="int64", name=None):
    """Sizes as tensor values, read from the inputs' shapes at run time: one size (an int or a run-time size such
    as x.shape[2]) as a 0-D tensor, a tuple or list of them as a 1-D one. Recorded by tensor() of run-time sizes
    (torch.tensor([w, h])) and by arithmetic of a tensor with one (grid / w)."""
    L = Layer("size_tensor", like, name)
    one = not isinstance(sizes, (tuple, list))
    values = tuple(v.item() if isinstance(v, np.generic) else v for v in ((sizes,) if one else sizes))
    if not all(isinstance(v, (int, Expr)) and not isinstance(v, bool) for v in values):
        L.fail(f"expected ints or run-time sizes, got {sizes!r}")
    if dtype not in DTYPES or dtype == "bool":
        L.fail(f"dtype {dtype!r} is not a number type of {', '.join(DTYPES)}")
    return L.emit([], () if one else (len(values),), dict(sizes=values), dtype=dtype)


@public
def tensor(data, like, dtype=None, name=None):
    """A constant array in `like`'s graph (torch.tensor); dtype defaults to the array's (floats: float32). Data
    holding run-time sizes (torch.tensor([w, h]) of x.shape) records their values at run time."""
    if any(isinstance(v, Expr) for v in (data if isinstance(data, (tuple, list)) else (data,))):
        return _size_tensor(data, like, dtype or "int64", name)
    arr = np.asarray(data)
    if dtype is None:
        dtype = "float32" if arr.dtype.kind == "f" else "bool" if arr.dtype.kind == "b" else "int64"
    return const(like.graph, arr, dtype, name)
