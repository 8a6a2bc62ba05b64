"""Cases of elementwise ops: broadcasting, Python scalars on either side, torch's dtype promotion over int and bool
tensors, unary math on its domain, activations, clamp, where, casts and constants; dynamic N and T at two sizes."""
import numpy as np
import torch
import torch.nn.functional as F

import trtnet as tn
from op_cases import case

DYN = ({"N": 2, "T": 3}, {"N": 3, "T": 5})
X = {"a": (("N", 3, "T"), "float32")}
AB = {"a": (("N", 3, "T"), "float32"), "b": ((1, "T"), "float32")}
INTS = {"a": (("N", "T"), "int32"), "b": (("T",), "int64")}
BOOLS = {"a": (("N", "T"), "bool"), "b": ((1, "T"), "bool")}


def away_from_zero(name, shape, dtype, rng):
    """Operands that keep divisions finite: `b` never near zero; negative values on both sides."""
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        v = rng.integers(-7, 8, shape)
        if name == "b":
            v[v == 0] = 3
        return v.astype(dtype)
    v = rng.standard_normal(shape) * 3
    return (np.sign(v) * (0.5 + np.abs(v)) if name == "b" else v).astype(dtype)


def positive(name, shape, dtype, rng):
    return (rng.random(shape) * 3 + 0.1).astype(dtype)


# binary ops: tn function, torch function, operator (None: torch has no operator form)
OPERATORS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
             "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "floor_divide": lambda a, b: a // b,
             "remainder": lambda a, b: a % b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
             "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b,
             "ge": lambda a, b: a >= b}
BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "floor_divide", "remainder", "eq", "ne", "lt",
          "le", "gt", "ge", "logical_and", "logical_or", "logical_xor")

for k in BINARY:
    fn, tfn = getattr(tn, k), getattr(torch, k)
    make = positive if k == "pow" else away_from_zero
    case(k, "broadcast", AB, lambda w, a, b, fn=fn: fn(a, b), tfn, DYN, make=make)
    case(k, "int32-int64", INTS, lambda w, a, b, fn=fn: fn(a, tn.abs(b) if fn is tn.pow else b),
         lambda a, b, tfn=tfn: tfn(a, b.abs() if tfn is torch.pow else b), DYN, make=away_from_zero)
    case(k, "int-float-scalar", {"a": (("N", "T"), "int32")}, lambda w, a, fn=fn: fn(a, 2.5),
         lambda a, tfn=tfn: tfn(a, torch.tensor(2.5)), DYN, values={"a": (0 if k == "pow" else -9, 9)})
    case(k, "float-int-scalar", X, lambda w, a, fn=fn: fn(a, 2), lambda a, tfn=tfn: tfn(a, torch.tensor(2)), DYN,
         make=away_from_zero)
    if k in OPERATORS:
        o = OPERATORS[k]
        case(k, "scalar-left", {"b": (("N", 3, "T"), "float32")}, lambda w, b, fn=fn: fn(1.5, b),
             lambda b, o=o: o(1.5, b), DYN, make=make)
        case(k, "int-scalar-left", {"b": (("N", "T"), "int64")}, lambda w, b, fn=fn: fn(-3, tn.abs(b)),
             lambda b, o=o: o(-3, b.abs()), DYN, make=away_from_zero)
    if k not in ("sub", "div", "pow", "floor_divide", "remainder"):   # torch refuses these on bools
        case(k, "bools", BOOLS, lambda w, a, b, fn=fn: fn(a, b), tfn, DYN)

case("logical_and", "float-int", {"a": (("N", "T"), "float32"), "b": (("T",), "int32")},
     lambda w, a, b: tn.logical_and(tn.round(a), b), lambda a, b: torch.logical_and(a.round(), b), DYN,
     values={"b": (-1, 2)})
case("floor_divide", "float-negative-halves", {"a": (("N", "T"), "float32")},
     lambda w, a: [a // -0.5, a % -0.5, 3 // a, tn.remainder(-2.5, a)],
     lambda a: [a // -0.5, a % -0.5, 3 // a, -2.5 % a], DYN,
     make=lambda n, s, d, r: (r.choice([-1, 1], s) * r.integers(1, 9, s) / 4).astype(d))
case("pow", "float-exponents", X, lambda w, a: [a ** 2, a ** 3.0, abs(a) ** 0.5, a ** -1, 2 ** a, tn.pow(a, 2)],
     lambda a: [a ** 2, a ** 3.0, a.abs() ** 0.5, a ** -1, 2 ** a, torch.pow(a, 2)], DYN, make=away_from_zero, tol=1e-4)
case("pow", "tensor-exponent", {"a": (("N", 3, "T"), "float32"), "b": ((3, 1), "int32")},
     lambda w, a, b: tn.pow(a, b), torch.pow, DYN, make=positive, tol=1e-4)
case("add", "float16-float32", {"a": (("N", "T"), "float16"), "b": (("T",), "float32")},
     lambda w, a, b: a + b, torch.add, DYN)
case("mul", "bool-int-float", {"a": (("N", "T"), "bool"), "b": (("T",), "int32")},
     lambda w, a, b: [a * b, a * 2.5, a + 1], lambda a, b: [a * b, a * 2.5, a + 1], DYN)
case("eq", "rank0-const", X, lambda w, a: tn.round(a) == tn.tensor(1.0, a), lambda a: a.round() == 1.0, DYN)

# unary ops: the domain to draw inputs from
def _domain(lo, hi):
    return lambda name, shape, dtype, rng: rng.uniform(lo, hi, shape).astype(dtype)


def halves(name, shape, dtype, rng):
    """Ties for round's half-to-even, and negatives for floor/ceil/trunc."""
    return (rng.integers(-12, 13, shape) / 2 + rng.choice([0, 0.25, -0.25], shape)).astype(dtype)


def specials(name, shape, dtype, rng):
    v = rng.standard_normal(shape).astype(dtype).reshape(-1)
    v[::3], v[1::4], v[2::5] = np.nan, np.inf, -np.inf
    return v.reshape(shape)


UNARY = {"exp": _domain(-4, 4), "log": positive, "sqrt": positive, "rsqrt": positive, "abs": None, "neg": None,
         "reciprocal": away_from_zero, "sin": None, "cos": None, "tan": _domain(-1.4, 1.4), "asin": _domain(-1, 1),
         "acos": _domain(-1, 1), "atan": None, "sinh": _domain(-4, 4), "cosh": _domain(-4, 4), "erf": None,
         "floor": halves, "ceil": halves, "round": halves, "trunc": halves, "sign": halves,
         "logical_not": halves, "isnan": specials, "isinf": specials}
for k, make in UNARY.items():
    fn, tfn = getattr(tn, k), getattr(torch, k)
    case(k, "float", X, lambda w, a, fn=fn: fn(a), tfn, DYN, make=make, tol=1e-5 if k != "rsqrt" else 1e-4)
    if k in ("abs", "neg", "sign", "floor", "ceil", "round", "trunc", "isnan", "isinf", "logical_not", "exp", "sqrt",
             "reciprocal", "sin"):
        case(k, "int", {"a": (("N", "T"), "int32" if k != "sqrt" else "int64")}, lambda w, a, fn=fn: fn(a), tfn, DYN,
             values={"a": (1, 9) if k in ("sqrt", "reciprocal") else (-9, 9)}, tol=1e-5)
case("logical_not", "bool", {"a": (("N", "T"), "bool")}, lambda w, a: [~a, tn.logical_not(a)],
     lambda a: [~a, torch.logical_not(a)], DYN)
case("isnan", "bool-result-used", {"a": (("N", "T"), "float32")},
     lambda w, a: tn.where(tn.isnan(a) | tn.isinf(a), 0.0, a),
     lambda a: torch.where(torch.isnan(a) | torch.isinf(a), 0.0, a), DYN, make=specials)

# activations, with torch's defaults and with their arguments
WIDE = _domain(-6, 6)
ACT = {"relu": [(), F.relu], "sigmoid": [(), torch.sigmoid], "tanh": [(), torch.tanh],
       "leaky_relu": [(), F.leaky_relu, (0.2,), lambda x: F.leaky_relu(x, 0.2)], "silu": [(), F.silu],
       "gelu": [(), F.gelu, ("tanh",), lambda x: F.gelu(x, approximate="tanh")], "hardswish": [(), F.hardswish],
       "hardsigmoid": [(), F.hardsigmoid],
       "hardtanh": [(), F.hardtanh, (-2.0, 3.5), lambda x: F.hardtanh(x, -2.0, 3.5)],
       "relu6": [(), F.relu6], "elu": [(), F.elu, (0.5,), lambda x: F.elu(x, 0.5)], "selu": [(), F.selu],
       "celu": [(), F.celu, (2.0,), lambda x: F.celu(x, 2.0)],
       "softplus": [(), F.softplus, (2.0, 5.0), lambda x: F.softplus(x, 2.0, 5.0)], "softsign": [(), F.softsign],
       "mish": [(), F.mish], "logsigmoid": [(), F.logsigmoid]}
for k, spec in ACT.items():
    for i in range(0, len(spec), 2):
        args, tfn = spec[i], spec[i + 1]
        case(k, "args" if args else "default", X, lambda w, a, k=k, args=args: getattr(tn, k)(a, *args), tfn, DYN,
             make=WIDE, tol=1e-5)
case("relu", "via-node", X, lambda w, a: tn.relu(a.sigmoid() - 0.5), lambda a: F.relu(a.sigmoid() - 0.5), DYN)

R = np.random.default_rng(3)
PW = {"p.weight": R.uniform(0.1, 0.5, 3).astype(np.float32), "q.weight": np.float32([0.25])}
case("prelu", "per-channel", X, lambda w, a: tn.prelu(a, w["p"]),
     lambda a: F.prelu(a, torch.from_numpy(PW["p.weight"])),
     DYN, PW)
case("prelu", "single-4d", {"a": (("N", 2, "T", 4), "float32")}, lambda w, a: tn.prelu(a, w["q"]),
     lambda a: F.prelu(a, torch.from_numpy(PW["q.weight"])), DYN, PW)
case("glu", "last-static", {"a": (("N", "T", 6), "float32")}, lambda w, a: tn.glu(a), F.glu, DYN)
case("glu", "dynamic-dim", {"a": (("N", "T", 3), "float32")}, lambda w, a: tn.glu(a, 1), lambda a: F.glu(a, 1),
     ({"N": 2, "T": 4}, {"N": 1, "T": 8}))

case("clamp", "both", X, lambda w, a: [tn.clamp(a, -0.5, 0.7), tn.clip(a, max=0.2), tn.clamp(a, min=0)],
     lambda a: [torch.clamp(a, -0.5, 0.7), torch.clip(a, max=0.2), torch.clamp(a, min=0)], DYN)
case("clamp", "int", {"a": (("N", "T"), "int64")}, lambda w, a: [tn.clamp(a, -2, 3), tn.clamp(a, min=0.5)],
     lambda a: [torch.clamp(a, -2, 3), torch.clamp(a, min=0.5)], DYN)
case("clamp", "tensor-bounds", {"a": (("N", 3, "T"), "float32"), "lo": ((3, 1), "float32")},
     lambda w, a, lo: tn.clamp(a, lo, lo + 1), lambda a, lo: torch.clamp(a, lo, lo + 1), DYN)

WH = {"c": (("N", 1, "T"), "bool"), "a": (("N", 3, "T"), "float32"), "b": ((3, 1), "float32")}
case("where", "broadcast", WH, lambda w, c, a, b: tn.where(c, a, b), torch.where, DYN)
case("where", "scalars", WH, lambda w, c, a, b: [tn.where(c, 1.0, 0.0), tn.where(c, 1, 0), tn.where(c, a, 0),
                                                 tn.where(c, -1.5, b), tn.where(c, True, False)],
     lambda c, a, b: [torch.where(c, 1.0, 0.0), torch.where(c, 1, 0), torch.where(c, a, 0),
                      torch.where(c, -1.5, b), torch.where(c, True, False)], DYN)
case("where", "int-float", {"c": (("N", "T"), "bool"), "a": (("N", "T"), "int32")},
     lambda w, c, a: [tn.where(c, a, 0.5), tn.where(c, a, 7)],
     lambda c, a: [torch.where(c, a, 0.5), torch.where(c, a, 7)], DYN)

CASTS = ("int32", "int64", "bool", "float16", "uint8")
case("cast", "float-to", X, lambda w, a: [a.to(d) for d in CASTS[:4]] + [abs(a).to("uint8")],
     lambda a: [a.to(getattr(torch, d)) for d in CASTS[:4]] + [a.abs().to(torch.uint8)], DYN,
     make=lambda n, s, d, r: (r.integers(-3, 4, s) * r.choice([0.75, 1.0, 1.5], s)).astype(d), tol=1e-3)
case("cast", "int-bool-to", {"i": (("N", "T"), "int64"), "c": (("N", "T"), "bool")},
     lambda w, i, c: [i.float(), i.int(), i.bool(), c.float(), c.long(), c.to("torch.int32"), i.to(torch.float32)],
     lambda i, c: [i.float(), i.int(), i.bool(), c.float(), c.long(), c.int(), i.float()], DYN)

case("identity", "dropout", X, lambda w, a: [tn.identity(a), tn.dropout(a, 0.1)],
     lambda a: [a, F.dropout(a, 0.1, False)],
     DYN)
case("const", "tensor", X, lambda w, a: [a + tn.tensor([1.0, 2.0, 3.0], a).reshape(3, 1),
                                         tn.tensor([[1, -2, 3]], a), tn.tensor([True, False], a)],
     lambda a: [a + torch.tensor([1.0, 2.0, 3.0]).reshape(3, 1), torch.tensor([[1, -2, 3]]),
                torch.tensor([True, False])], DYN)
case("size_tensor", "run-time-sizes", X,
     lambda w, a: [tn.tensor(a.shape[2], a), tn.tensor((a.shape[0], 2 * a.shape[2] + 1, 3), a, "int32"),
                   tn.tensor([a.shape[2], a.shape[0]], a, dtype="float32"), (a + 0.5) / a.shape[2],
                   a.shape[0] * a.shape[2] - a, tn.arange(a.shape[2], like=a) * a.shape[0]],
     lambda a: [torch.tensor(a.shape[2]), torch.tensor((a.shape[0], 2 * a.shape[2] + 1, 3), dtype=torch.int32),
                torch.tensor([a.shape[2], a.shape[0]], dtype=torch.float32), (a + 0.5) / a.shape[2],
                a.shape[0] * a.shape[2] - a, torch.arange(a.shape[2]) * a.shape[0]], DYN)

INT_PAIR = {"a": (("N", "T"), "int32"), "b": (("T",), "int32")}
case("div", "rounding-modes", INT_PAIR,
     lambda w, a, b: [tn.div(a, b, rounding_mode="trunc"), tn.div(a, -2, rounding_mode="trunc"),
                      tn.div(a, 2.5, rounding_mode="trunc"), a.div(b, rounding_mode="floor"),
                      tn.div(tn.cast(a, "float32") / 4, b, rounding_mode="trunc"), tn.div(a, b, rounding_mode=None)],
     lambda a, b: [torch.div(a, b, rounding_mode="trunc"), torch.div(a, -2, rounding_mode="trunc"),
                   torch.div(a, 2.5, rounding_mode="trunc"), a.div(b, rounding_mode="floor"),
                   torch.div(a.float() / 4, b, rounding_mode="trunc"), torch.div(a, b)], DYN, make=away_from_zero)
case("fmod", "signs", {"a": (("N", "T"), "int32"), "b": (("T",), "int32"), "x": (("N", "T"), "float32")},
     lambda w, a, b, x: [a.fmod(b), tn.fmod(a, -3), tn.fmod(x, 1.5), tn.fmod(x * 4, b), tn.fmod(-7, b)],
     lambda a, b, x: [torch.fmod(a, b), torch.fmod(a, -3), torch.fmod(x, 1.5), torch.fmod(x * 4, b),
                      torch.fmod(torch.tensor(-7), b)], DYN,
     make=lambda n, s, d, r: halves(n, s, d, r) if d == "float32" else away_from_zero(n, s, d, r))
case("remainder", "operators-left-scalar-xor", {"a": (("N", "T"), "int32"), "b": (("T",), "int32"),
                                                "c": (("N", "T"), "bool")},
     lambda w, a, b, c: [-7 % b, 2.5 % b, 9 // b, c ^ (a > 0), True & c, False | c, True ^ c],
     lambda a, b, c: [-7 % b, 2.5 % b, 9 // b, c ^ (a > 0), True & c, False | c, True ^ c], DYN, make=away_from_zero)
case("round", "decimals", X, lambda w, a: [tn.round(a, decimals=2), tn.round(a * 100, decimals=-1), tn.round(a, 1)],
     lambda a: [torch.round(a, decimals=2), torch.round(a * 100, decimals=-1), torch.round(a, decimals=1)], DYN,
     make=lambda n, s, d, r: (r.integers(-400, 400, s) / 8 + r.choice([0, 0.001, 0.005], s)).astype(d))
case("relu", "int-and-bool-inputs", {"a": (("N", "T"), "int32"), "c": (("N", "T"), "bool")},
     lambda w, a, c: [tn.relu(a), tn.relu6(a * 2), tn.hardtanh(a, -2, 3), tn.hardtanh(a, -0.5, 2.5), tn.sigmoid(a),
                      tn.tanh(a), tn.softsign(a), tn.sigmoid(c), tn.tanh(c)],
     lambda a, c: [F.relu(a), F.relu6(a * 2), F.hardtanh(a, -2, 3), F.hardtanh(a, -0.5, 2.5), torch.sigmoid(a),
                   torch.tanh(a), F.softsign(a), torch.sigmoid(c), torch.tanh(c)], DYN)
case("mul", "float16-scalars", {"h": (("N", "T"), "float16"), "a": (("T",), "int32")},
     lambda w, h, a: [h * 2.5, a / h, tn.clamp(h, 0.1, 0.5), tn.where(h > 0, h, 0.25), h - 1],
     lambda h, a: [h * 2.5, a / h, torch.clamp(h, 0.1, 0.5), torch.where(h > 0, h, 0.25), h - 1], DYN,
     make=away_from_zero, tol=1e-3)
case("sign", "bool-uint8", {"c": (("N", "T"), "bool"), "u": (("N", "T"), "uint8")},
     lambda w, c, u: [tn.sign(c), tn.isnan(c), tn.isinf(c), tn.abs(u), tn.sign(u), tn.isinf(u), tn.floor(u)],
     lambda c, u: [torch.sign(c), torch.isnan(c), torch.isinf(c), torch.abs(u), torch.sign(u), torch.isinf(u),
                   torch.floor(u)], DYN, values={"u": (0, 3)})
case("add", "zero-dim-tensor-operands", {"h": (("N", "T"), "float16"), "i": (("T",), "int32"),
                                         "c": (("N", "T"), "bool")},
     lambda w, h, i, c: [h * tn.tensor(1.5, h), tn.maximum(h, tn.tensor(0.25, h)), i + tn.tensor(3, i),
                         tn.where(c, i, tn.tensor(-1, i)), c * tn.tensor(2, c), i * tn.tensor(0.5, i)],
     lambda h, i, c: [h * torch.tensor(1.5), torch.maximum(h, torch.tensor(0.25)), i + torch.tensor(3),
                      torch.where(c, i, torch.tensor(-1)), c * torch.tensor(2), i * torch.tensor(0.5)], DYN, tol=1e-3)
