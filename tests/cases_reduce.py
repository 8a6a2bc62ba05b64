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
