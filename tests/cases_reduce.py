"""Cases of reductions: over one, several or all axes (the batch included), keepdim, int and bool inputs with torch's
result types, arg/value extremes and top-k with int64 indices, cumsum, var/std, logsumexp; dynamic N and T."""
import numpy as np
import torch

import trtnet as tn
from op_cases import case

DYN = ({"N": 2, "T": 3}, {"N": 3, "T": 5})
X = {"x": (("N", 3, "T"), "float32")}
I = {"i": (("N", 3, "T"), "int32")}
B = {"b": (("N", 3, "T"), "bool")}
AXES = (None, 0, -1, (0, 2), (1,))


def distinct(name, shape, dtype, rng):
    """Values without ties, so the order of equal elements cannot matter."""
    v = rng.permutation(int(np.prod(shape))).reshape(shape) - 5
    return (v / 7 if dtype.startswith("float") else v).astype(dtype)


def near_one(name, shape, dtype, rng):
    return rng.uniform(0.5, 1.5, shape).astype(dtype)


for k in ("sum", "mean", "amax", "amin"):
    fn, tfn = getattr(tn, k), getattr(torch, k)
    for kd in (False, True):
        case(k, f"axes-keepdim{int(kd)}", X,
             lambda w, x, fn=fn, kd=kd: [fn(x, d, kd) for d in AXES],
             lambda x, tfn=tfn, kd=kd: [tfn(x, dim=d, keepdim=kd) if d is not None else
                                        (tfn(x, dim=tuple(range(3)), keepdim=True) if kd else tfn(x)) for d in AXES],
             DYN, tol=1e-5)
for k in ("sum", "amax", "amin"):
    fn, tfn = getattr(tn, k), getattr(torch, k)
    case(k, "int", I, lambda w, i, fn=fn: [fn(i, 1), fn(i), fn(i, (0, 2), True)],
         lambda i, tfn=tfn: [tfn(i, 1), tfn(i) if tfn is torch.sum else tfn(i, (0, 1, 2)), tfn(i, (0, 2), True)], DYN)
    case(k, "bool", B, lambda w, b, fn=fn: [fn(b, -1), fn(b, (0, 1))],
         lambda b, tfn=tfn: [tfn(b, -1), tfn(b, (0, 1))], DYN)
case("sum", "methods-dtype", X, lambda w, x: [x.sum(1), x.mean((0, 2), keepdim=True), tn.sum(x > 0, 0),
                                              tn.sum(tn.cast(x * 4, "int32"), -1, dtype="float32")],
     lambda x: [x.sum(1), x.mean((0, 2), keepdim=True), torch.sum(x > 0, 0),
                torch.sum((x * 4).int(), -1, dtype=torch.float32)], DYN)
case("mean", "dtype", I, lambda w, i: tn.mean(i, 2, dtype="float32"), lambda i: torch.mean(i, 2, dtype=torch.float32),
     DYN)
case("prod", "axes", X, lambda w, x: [tn.prod(x, 1), tn.prod(x, 0, True), tn.prod(x), tn.prod(x, -1)],
     lambda x: [torch.prod(x, 1), torch.prod(x, 0, True), torch.prod(x), torch.prod(x, -1)], DYN, make=near_one,
     tol=1e-5)
case("prod", "int-bool", {"i": (("N", 3, "T"), "int32"), "b": (("N", 3, "T"), "bool")},
     lambda w, i, b: [tn.prod(i, 1), tn.prod(b, 2)], lambda i, b: [torch.prod(i, 1), torch.prod(b, 2)], DYN,
     values={"i": (-3, 4)})

for k in ("all", "any"):
    fn, tfn = getattr(tn, k), getattr(torch, k)
    case(k, "bool", B, lambda w, b, fn=fn: [fn(b), fn(b, 1), fn(b, (0, 2), True), fn(b, 0)],
         lambda b, tfn=tfn: [tfn(b), tfn(b, 1), tfn(b, (0, 2), True), tfn(b, 0)], ({"N": 1, "T": 2}, {"N": 2, "T": 1}))
    case(k, "int-float", {"i": (("N", "T"), "int32"), "x": (("N", "T"), "float32")},
         lambda w, i, x, fn=fn: [fn(i, 1), fn(tn.round(x), 0)],
         lambda i, x, tfn=tfn: [tfn(i, 1), tfn(torch.round(x), 0)], DYN, values={"i": (0, 3)})

for k in ("argmax", "argmin"):
    fn, tfn = getattr(tn, k), getattr(torch, k)
    case(k, "float", X, lambda w, x, fn=fn: [fn(x), fn(x, 1), fn(x, 0, True), fn(x, -1), fn(x, keepdim=True)],
         lambda x, tfn=tfn: [tfn(x), tfn(x, 1), tfn(x, 0, True), tfn(x, -1), tfn(x, keepdim=True)], DYN,
         make=distinct)
    case(k, "int-ties-first", I, lambda w, i, fn=fn: [fn(i, 2), fn(i)], lambda i, tfn=tfn: [tfn(i, 2), tfn(i)], DYN,
         values={"i": (0, 3)})

for k in ("max", "min"):
    fn, tfn = getattr(tn, k), getattr(torch, k)
    case(k, "dim", X, lambda w, x, fn=fn: [*fn(x, 1), *fn(x, 0, keepdim=True), fn(x)],
         lambda x, tfn=tfn: [*tfn(x, 1), *tfn(x, 0, keepdim=True), tfn(x)], DYN, make=distinct)
    case(k, "elementwise-int", {"i": (("N", 3, "T"), "int64"), "j": ((3, 1), "int64")},
         lambda w, i, j, fn=fn: [fn(i, j), *fn(i, -1)], lambda i, j, tfn=tfn: [tfn(i, j), *tfn(i, -1)], DYN,
         make=distinct)

case("topk", "largest", {"x": (("N", 3, 8), "float32")}, lambda w, x: [*tn.topk(x, 3), *tn.topk(x, 2, 1, False)],
     lambda x: [*torch.topk(x, 3), *torch.topk(x, 2, 1, False)], DYN, make=distinct)
case("topk", "batch-axis-int", {"i": (("N", 3, "T"), "int32")}, lambda w, i: list(tn.topk(i, 1, 0)),
     lambda i: list(torch.topk(i, 1, 0)), DYN, make=distinct)

case("cumsum", "axes", X, lambda w, x: [tn.cumsum(x, 0), tn.cumsum(x, -1), tn.cumsum(x, 1)],
     lambda x: [torch.cumsum(x, 0), torch.cumsum(x, -1), torch.cumsum(x, 1)], DYN)
case("cumsum", "int-bool", {"i": (("N", "T"), "int32"), "b": (("N", "T"), "bool")},
     lambda w, i, b: [tn.cumsum(i, 1), tn.cumsum(b, 0), tn.cumsum(i, 0, dtype="float32")],
     lambda i, b: [torch.cumsum(i, 1), torch.cumsum(b, 0), torch.cumsum(i, 0, dtype=torch.float32)], DYN)

for k in ("var", "std"):
    fn, tfn = getattr(tn, k), getattr(torch, k)
    case(k, "corrections", X, lambda w, x, fn=fn: [fn(x), fn(x, 1), fn(x, (0, 2), keepdim=True, correction=0),
                                                   fn(x, -1, unbiased=False), fn(x, 0, correction=2)],
         lambda x, tfn=tfn: [tfn(x), tfn(x, 1), tfn(x, (0, 2), keepdim=True, correction=0),
                             tfn(x, -1, unbiased=False), tfn(x, 0, correction=2)],
         ({"N": 3, "T": 4}, {"N": 4, "T": 6}), tol=1e-5)

case("logsumexp", "axes", X, lambda w, x: [tn.logsumexp(x, 1), tn.logsumexp(x * 50, (0, 2), True), tn.logsumexp(x, -1)],
     lambda x: [torch.logsumexp(x, 1), torch.logsumexp(x * 50, (0, 2), True), torch.logsumexp(x, -1)], DYN)
case("topk", "rank1", {"v": (("T",), "float32")}, lambda w, v: [*tn.topk(v, 2), *tn.max(v, 0), tn.argmin(v, 0, True)],
     lambda v: [*torch.topk(v, 2), *torch.max(v, 0), torch.argmin(v, 0, True)], DYN, make=distinct)


def _0d(x):
    """A 0-D tensor taken from x (both sides compute it alike)."""
    return x[0, 1, 0]


case("sum", "rank0-dims-and-empty-dims", X,
     lambda w, x: [tn.sum(_0d(x), 0), tn.amax(_0d(x), -1, True), tn.mean(x, ()), tn.amin(x, [], True),
                   tn.prod(_0d(x), 0), tn.any(_0d(x) > 0, 0), tn.sum(tn.cast(x, "int32"), ())],
     lambda x: [torch.sum(_0d(x), 0), torch.amax(_0d(x), -1, True), torch.mean(x, ()), torch.amin(x, [], True),
                torch.prod(_0d(x), 0), torch.any(_0d(x) > 0, 0), torch.sum(x.int(), ())], DYN)
case("max", "rank0", X,
     lambda w, x: [*tn.max(_0d(x), 0), *tn.min(_0d(x), -1, True), tn.argmax(_0d(x), 0), *tn.topk(_0d(x), 1),
                   *tn.sort(_0d(x)), tn.cumsum(_0d(x), 0), tn.cumprod(_0d(x), -1), tn.var(_0d(x), 0, correction=0),
                   tn.logsumexp(_0d(x), 0)],
     lambda x: [*torch.max(_0d(x), 0), *torch.min(_0d(x), -1, True), torch.argmax(_0d(x), 0), *torch.topk(_0d(x), 1),
                *torch.sort(_0d(x)), torch.cumsum(_0d(x), 0), torch.cumprod(_0d(x), -1),
                torch.var(_0d(x), 0, correction=0), torch.logsumexp(_0d(x), 0)], DYN)
case("max", "bool", B,
     lambda w, b: [*tn.max(b, 1), *tn.min(b, -1, True), *tn.sort(b, 0), tn.argsort(b, descending=True)],
     lambda b: [*torch.max(b, 1), *torch.min(b, -1, True), *torch.sort(b, dim=0, stable=True),
                torch.argsort(b, descending=True, stable=True)], DYN)
for k in ("var", "std"):
    fn, tfn = getattr(tn, k), getattr(torch, k)
    case(k, "unbiased-positional", X, lambda w, x, fn=fn: [fn(x, False), fn(x, True), fn(x, 1, False, True)],
         lambda x, tfn=tfn: [tfn(x, False), tfn(x, True), tfn(x, 1, False, True)], DYN)
    case(k, "correction-past-count", {"x": (("N", 2), "float32")},   # torch divides by max(0, count - 3): inf
         lambda w, x, fn=fn: [fn(x, 1, correction=3), fn(x, 0, correction=3)],
         lambda x, tfn=tfn: [tfn(x, 1, correction=3), tfn(x, 0, correction=3)], ({"N": 2}, {"N": 3}))


def infinite_rows(name, shape, dtype, rng):
    """Rows of -inf and rows holding +inf (logsumexp's max is then infinite), among finite ones."""
    v = rng.standard_normal(shape).astype(dtype)
    v[0, 0] = -np.inf
    v[-1, 1, :1] = np.inf
    return v


case("logsumexp", "infinite-rows", X,
     lambda w, x: [y := tn.logsumexp(x, -1), tn.where(tn.isinf(y), 0.0, y), tn.logsumexp(x, (0, 2), True)],
     lambda x: [y := torch.logsumexp(x, -1), torch.where(torch.isinf(y), 0.0, y), torch.logsumexp(x, (0, 2), True)],
     DYN, make=infinite_rows)
case("logsumexp", "int", I, lambda w, i: [tn.logsumexp(i, 1), tn.logsumexp(i > 0, (0, 2))],
     lambda i: [torch.logsumexp(i, 1), torch.logsumexp(i > 0, (0, 2))], DYN)
