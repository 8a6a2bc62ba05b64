"""PyTorch meaning of elementwise ops, activations and casts."""
import torch
import torch.nn.functional as F

from ..shape import evaluate
from .core import TORCH_TYPES, needs_sizes, ref, t

needs_sizes("size_tensor")

_BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
           "maximum": torch.maximum, "minimum": torch.minimum, "floor_divide": torch.floor_divide,
           "remainder": torch.remainder, "eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le,
           "gt": torch.gt, "ge": torch.ge, "logical_and": torch.logical_and, "logical_or": torch.logical_or,
           "logical_xor": torch.logical_xor}
_UNARY = {k: getattr(torch, k) for k in ("exp", "log", "sqrt", "rsqrt", "abs", "neg", "reciprocal", "sin", "cos",
                                         "tan", "asin", "acos", "atan", "sinh", "cosh", "erf", "floor", "ceil", "round",
                                         "trunc", "sign", "logical_not", "isnan", "isinf")}
_ACT = {
    "relu": lambda x, a: F.relu(x),
    "sigmoid": lambda x, a: torch.sigmoid(x),
    "tanh": lambda x, a: torch.tanh(x),
    "leaky_relu": lambda x, a: F.leaky_relu(x, a["negative_slope"]),
    "silu": lambda x, a: F.silu(x),
    "gelu": lambda x, a: F.gelu(x, approximate=a["approximate"]),
    "hardswish": lambda x, a: F.hardswish(x),
    "hardsigmoid": lambda x, a: F.hardsigmoid(x),
    "hardtanh": lambda x, a: F.hardtanh(x, a["min_val"], a["max_val"]),
    "relu6": lambda x, a: F.relu6(x),
    "elu": lambda x, a: F.elu(x, a["alpha"]),
    "selu": lambda x, a: F.selu(x),
    "celu": lambda x, a: F.celu(x, a["alpha"]),
    "softplus": lambda x, a: F.softplus(x, a["beta"], a["threshold"]),
    "softsign": lambda x, a: F.softsign(x),
    "mish": lambda x, a: F.mish(x),
    "logsigmoid": lambda x, a: F.logsigmoid(x),
}


@ref(*_BINARY)
def _binary(n, a, b):
    return _BINARY[n.op](a, b)


@ref(*_UNARY)
def _unary(n, x):
    return _UNARY[n.op](x)


@ref(*_ACT)
def _activation(n, x):
    return _ACT[n.op](x, n.attrs)


@ref("prelu")
def _prelu(n, x):
    return F.prelu(x, t(n.params["weight"]))


@ref("glu")
def _glu(n, x):
    return F.glu(x, n.attrs["dim"])


@ref("clamp")
def _clamp(n, x):
    return torch.clamp(x, n.attrs["min"], n.attrs["max"])


@ref("where")
def _where(n, cond, a, b):
    return torch.where(cond, a, b)


@ref("cast")
def _cast(n, x):
    return x.to(TORCH_TYPES[n.dtype])


@ref("identity")
def _identity(n, x):
    return x


@ref("size_tensor")
def _size_tensor(n, env):
    values = [evaluate(d, env) for d in n.attrs["sizes"]]
    return torch.tensor(values, dtype=TORCH_TYPES[n.dtype]).reshape(n.shape)
