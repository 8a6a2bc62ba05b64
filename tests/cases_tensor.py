"""Cases of torch.Tensor's wider surface: einsum, bmm/baddbmm, eye, masked_fill, sort/argsort, scatter/index_put,
nonzero_static, cumprod, meshgrid and indexing with tensors; dynamic N and T where the op allows."""
import numpy as np
import torch

import trtnet as tn
from op_cases import case

NT = ({"N": 2, "T": 3}, {"N": 3, "T": 5})


def distinct(name, shape, dtype, rng):
    """Values without ties, so the order of equal elements cannot matter."""
    v = rng.permutation(int(np.prod(shape))).reshape(shape) - 5
    return (v / 7 if dtype.startswith("float") else v).astype(dtype)


def ties(name, shape, dtype, rng):
    """Small integers with many ties: sorting must keep equal values lowest index first."""
    return rng.integers(-2, 3, shape).astype(dtype)


def indices(hi, **named):
    """Random floats, and indices in [0, hi) (or named ranges) for int inputs."""
    def make(name, shape, dtype, rng):
        if dtype.startswith("int"):
            return rng.integers(*named.get(name, (0, hi)), shape).astype(dtype)
        if dtype == "bool":
            return rng.random(shape) < 0.5
        return rng.standard_normal(shape).astype(dtype)
    return make


def permutations(name, shape, dtype, rng):
    """Each row along the last dim a permutation: scatter targets that never repeat."""
    if dtype.startswith("int"):
        return np.argsort(rng.random(shape), -1).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


case("einsum", "attention-scores", {"q": (("N", 2, "T", 4), "float32"), "k": (("N", 2, "T", 4), "float32")},
     lambda w, q, k: [tn.einsum("bhqd,bhkd->bhqk", q, k), tn.einsum("bhqd, bhkd", [q, k]),
                      tn.einsum("bhtd->bdt", q)],
     lambda q, k: [torch.einsum("bhqd,bhkd->bhqk", q, k), torch.einsum("bhqd, bhkd", [q, k]),
                   torch.einsum("bhtd->bdt", q)], NT)
case("einsum", "three-operands", {"a": (("N", 3), "float32"), "b": ((3, 4), "float32"), "c": ((4,), "float32")},
     lambda w, a, b, c: tn.einsum("nk,km,m->n", a, b, c), lambda a, b, c: torch.einsum("nk,km,m->n", a, b, c),
     ({"N": 2}, {"N": 5}))
case("bmm", "batched", {"a": (("N", "T", 3), "float32"), "b": (("N", 3, 4), "float32"),
                        "c": (("N", "T", 4), "float32")},
     lambda w, a, b, c: [tn.bmm(a, b), a.bmm(b), tn.baddbmm(c, a, b), tn.baddbmm(c, a, b, beta=0.5, alpha=2),
                         c.baddbmm(a, b, beta=0)],
     lambda a, b, c: [torch.bmm(a, b), a.bmm(b), torch.baddbmm(c, a, b), torch.baddbmm(c, a, b, beta=0.5, alpha=2),
                      c.baddbmm(a, b, beta=0)], NT)
case("eye", "sizes", {"x": (("N", "T"), "float32")},
     lambda w, x: [tn.eye(3, like=x), tn.eye(x.shape[1], like=x), tn.eye(x.shape[0], x.shape[1], "int64", x),
                   tn.eye(2, 4, "bool", x)],
     lambda x: [torch.eye(3), torch.eye(x.shape[1]), torch.eye(x.shape[0], x.shape[1], dtype=torch.int64),
                torch.eye(2, 4, dtype=torch.bool)], NT)
case("masked_fill", "broadcast", {"x": (("N", 3, "T"), "float32"), "m": ((1, 1, "T"), "bool"),
                                  "i": (("N", 3, "T"), "int64")},
     lambda w, x, m, i: [tn.masked_fill(x, m, -100.0), x.masked_fill(x > 0, 2), i.masked_fill(m, -7),
                         x.masked_fill(m, tn.amax(x))],
     lambda x, m, i: [x.masked_fill(m, -100.0), x.masked_fill(x > 0, 2), i.masked_fill(m, -7),
                      x.masked_fill(m, x.amax())], NT)
case("sort", "distinct", {"x": (("N", 3, "T"), "float32")},
     lambda w, x: [*tn.sort(x), *x.sort(1, descending=True), tn.argsort(x, 0), x.argsort(descending=True)],
     lambda x: [*torch.sort(x), *x.sort(1, descending=True), torch.argsort(x, 0), x.argsort(descending=True)],
     NT, make=distinct)
case("sort", "ties-stable", {"i": (("N", 6), "int32"), "v": (("T",), "float32")},
     lambda w, i, v: [*tn.sort(i), *tn.sort(i, 0, descending=True), tn.sort(v).values, v.sort().indices],
     lambda i, v: [*torch.sort(i, stable=True), *torch.sort(i, dim=0, descending=True, stable=True),
                   torch.sort(v, stable=True).values, v.sort(stable=True).indices], NT, make=ties)
case("scatter", "permuted", {"x": (("N", 4), "float32"), "idx": (("N", 4), "int64"), "s": (("N", 5), "float32")},
     lambda w, x, idx, s: [tn.scatter(x, 1, idx, s), x.scatter(1, idx[:, :2], 1.5), tn.scatter(x, -1, idx, value=0)],
     lambda x, idx, s: [torch.scatter(x, 1, idx, s), x.scatter(1, idx[:, :2], 1.5), torch.scatter(x, -1, idx, 0)],
     ({"N": 2}, {"N": 3}), make=permutations, engine=True)
case("scatter", "dim0-int32", {"x": ((3, "T"), "float32"), "idx": ((3, "T"), "int32")},
     lambda w, x, idx: tn.scatter(x, 0, idx, x * 10), lambda x, idx: torch.scatter(x, 0, idx.long(), x * 10),
     ({"T": 2}, {"T": 4}), make=lambda n, s, d, r: np.argsort(r.random(s), 0).astype(d) if d == "int32"
     else r.standard_normal(s).astype(d))
case("index_put", "rows-and-points", {"x": ((5, "T"), "float32"), "r": ((2,), "int64"), "c": ((2,), "int32"),
                                      "v": ((2, "T"), "float32")},
     lambda w, x, r, c, v: [tn.index_put(x, (r,), v), x.index_put((r, c), 9.0), tn.index_put(x, [r, c], v[:, 0])],
     lambda x, r, c, v: [x.index_put((r,), v), x.index_put((r, c.long()), torch.tensor(9.0)),
                         x.index_put([r, c.long()], v[:, 0])], ({"T": 2}, {"T": 4}),
     make=lambda n, s, d, rng: np.array([-1, 1], d) if n == "r" else np.array([0, -2], d) if n == "c"
     else rng.standard_normal(s).astype(d))
case("nonzero_static", "padded-and-cut", {"b": (("N", "T"), "bool"), "i": (("N", 3), "int32")},
     lambda w, b, i: [tn.nonzero_static(b, 20), tn.nonzero_static(i, size=2, fill_value=7), tn.nonzero_static(b, 0)],
     lambda b, i: [torch.nonzero_static(b, size=20), torch.nonzero_static(i, size=2, fill_value=7),
                   torch.nonzero_static(b, size=0)], NT, make=indices(3, i=(0, 2)))
case("cumprod", "signs-and-zeros", {"x": (("N", "T", 3), "float32"), "i": (("N", 4), "int32")},
     lambda w, x, i: [tn.cumprod(x, 1), x.cumprod(-1), tn.cumprod(i, 1), tn.cumprod(x, 0, dtype="float32")],
     lambda x, i: [torch.cumprod(x, 1), x.cumprod(-1), torch.cumprod(i, 1), torch.cumprod(x, 0)], NT,
     make=lambda n, s, d, rng: rng.integers(-3, 4, s).astype(d) if d == "int32"
     else (rng.standard_normal(s) * (rng.random(s) > 0.1)).astype(d))
case("meshgrid", "ij-xy", {"a": (("N",), "float32"), "b": (("T",), "float32"), "c": ((2,), "float32")},
     lambda w, a, b, c: [*tn.meshgrid(a, b), *tn.meshgrid([a, c, b], indexing="xy")],
     lambda a, b, c: [*torch.meshgrid(a, b, indexing="ij"), *torch.meshgrid([a, c, b], indexing="xy")], NT)
case("index_tensor", "int-tensors", {"x": (("N", 5, 4), "float32"), "idx": (("T",), "int64"),
                                     "j": ((2, 3), "int32")},
     lambda w, x, idx, j: [x[idx], x[:, idx], x[..., j], x[:, idx, 1:3], x[None, :, j, 0], x[:, [0, -1, 2]],
                           x[:, :, 0][:, idx]],
     lambda x, idx, j: [x[idx], x[:, idx], x[..., j], x[:, idx, 1:3], x[None, :, j, 0], x[:, [0, -1, 2]],
                        x[:, :, 0][:, idx]], ({"N": 5, "T": 3}, {"N": 6, "T": 7}), make=indices(4, idx=(-5, 5)))
MASK = np.array([[True, False, True, True], [False, False, True, False]])
case("index_tensor", "constant-mask", {"x": (("N", 2, 4), "float32")},
     lambda w, x: [x[:, tn.tensor(MASK, x)], x[..., np.array([True, False, False, True])]],
     lambda x: [x[:, torch.from_numpy(MASK)], x[..., torch.tensor([True, False, False, True])]],
     ({"N": 1}, {"N": 3}))
case("index_nd", "several-tensors", {"x": (("N", 5, 4, 3), "float32"), "i": (("T",), "int64"),
                                     "j": ((1, "T"), "int32")},
     lambda w, x, i, j: [x[:, i, j], x[i, :, j], x[i, j], x[..., i, 0, j], x[:, [0, -1], 1:, [1, 2]]],
     lambda x, i, j: [x[:, i, j], x[i, :, j], x[i, j], x[..., i, 0, j], x[:, [0, -1], 1:, [1, 2]]],
     ({"N": 3, "T": 2}, {"N": 4, "T": 5}), make=indices(3, i=(-3, 3), j=(-3, 3)))


def detections(name, shape, dtype, rng):
    """Boxes (x1, y1, x2, y2) crowded enough to overlap, and distinct scores in (0, 1)."""
    if name == "boxes":
        corner = rng.uniform(0, 6, shape[:-1] + (2,))
        return np.concatenate([corner, corner + rng.uniform(6, 12, shape[:-1] + (2,))], -1).astype(dtype)
    return ((rng.permutation(int(np.prod(shape))).reshape(shape) + 0.5) / np.prod(shape)).astype(dtype)


def torchvision_nms(boxes, scores, max_per_class, iou, threshold):
    """Rows [batch, class, box] of torchvision's batched_nms per batch item, by decreasing score, -1 after."""
    from torchvision.ops import batched_nms
    n, b, c = scores.shape
    rows = torch.full((n * c * max_per_class, 3), -1, dtype=torch.int32)
    found = []
    for i in range(n):
        flat, labels = scores[i].flatten(), torch.arange(b * c) % c
        over = torch.nonzero(flat > threshold).flatten()
        keep = over[batched_nms(boxes[i][over // c], flat[over], labels[over], iou)]
        keep = torch.cat([keep[labels[keep] == k][:max_per_class] for k in range(c)])
        keep = keep[flat[keep].argsort(descending=True)]
        found += [(i, int(k % c), int(k // c)) for k in keep]
    rows[:len(found)] = torch.tensor(found, dtype=torch.int32).reshape(-1, 3)
    return [rows, torch.tensor(len(found), dtype=torch.int32)]


case("nms", "per-class", {"boxes": ((2, 12, 4), "float32"), "scores": ((2, 12, 3), "float32")},
     lambda w, boxes, scores: [*tn.nms(boxes, scores, 3, 0.3, 0.2), *tn.nms(boxes, scores, 20, 0.6)],
     lambda boxes, scores: [*torchvision_nms(boxes, scores, 3, 0.3, 0.2), *torchvision_nms(boxes, scores, 20, 0.6, 0.0)],
     make=detections, engine=False)
case("einsum", "ellipsis-capitals-broadcast", {"q": (("N", 2, "T", 4), "float32"), "k": (("N", 2, 3, 4), "float32"),
                                               "v": ((4,), "float32"), "w": ((1, "T", 4, 5), "float32")},
     lambda w, q, k, v, u: [tn.einsum("...qd,...kd->...qk", q, k), tn.einsum("...d,d", q, v),
                            tn.einsum("BHqd->qdBH", q), tn.einsum("b...d,...de->b...e", q, u),
                            tn.einsum("bhqd,bhkd", q, k), tn.einsum("...ij->...ji", k)],
     lambda q, k, v, u: [torch.einsum("...qd,...kd->...qk", q, k), torch.einsum("...d,d", q, v),
                         torch.einsum("BHqd->qdBH", q), torch.einsum("b...d,...de->b...e", q, u),
                         torch.einsum("bhqd,bhkd", q, k), torch.einsum("...ij->...ji", k)], NT)


def integers(name, shape, dtype, rng):
    """Integers over the dtype's whole range, its extremes, zero and -1 included."""
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, shape, endpoint=True, dtype=np.int64).astype(dtype)
    x.flat[:4] = [info.min, info.max, 0, -1 if info.min < 0 else 1][:x.size]
    return x


for _dtype in ("int32", "int64", "int8", "uint8"):
    case("bitwise_and", f"{_dtype}-every-bit", {"a": (("N", 6), _dtype), "b": ((6,), _dtype)},
         lambda w, a, b: [a & b, a | b, a ^ b, ~a, tn.bitwise_and(a, 6), 5 | b, tn.bitwise_xor(a, b)],
         lambda a, b: [a & b, a | b, a ^ b, ~a, torch.bitwise_and(a, 6), 5 | b, torch.bitwise_xor(a, b)],
         ({"N": 2}, {"N": 3}), make=integers)
case("bitwise_or", "bool-is-logical", {"a": (("N", 6), "bool"), "b": ((6,), "bool")},
     lambda w, a, b: [tn.bitwise_or(a, b), tn.bitwise_not(a), a & True, ~b],
     lambda a, b: [torch.bitwise_or(a, b), torch.bitwise_not(a), a & True, ~b])
