"""Cases of indexing ops and tensors built from indices: gather, index_select, embedding, one_hot, grid_sample,
repeat/tile, flip, roll, arange, filled tensors and triangular masks."""
import numpy as np
import torch
import torch.nn.functional as F

import trtnet as tn
from op_cases import case

R = np.random.default_rng(2)
W = {"emb.weight": R.standard_normal((10, 6)).astype(np.float32)}
EMB = torch.from_numpy(W["emb.weight"])
NT = ({"N": 2, "T": 3}, {"N": 3, "T": 5})


def _index_make(hi):
    """Random floats, and indices in [0, hi) for inputs named idx."""
    def make(name, shape, dtype, rng):
        if name == "idx":
            return rng.integers(0, hi, shape).astype(dtype)
        return rng.standard_normal(shape).astype(dtype)
    return make


case("gather", "dim1-int64", {"x": (("N", 5, 4), "float32"), "idx": (("N", "T", 4), "int64")},
     lambda w, x, idx: tn.gather(x, 1, idx), lambda x, idx: torch.gather(x, 1, idx), NT, make=_index_make(5))
case("gather", "last-int32-smaller", {"x": (("N", 3, 7), "float32"), "idx": (("N", 2, "T"), "int32")},
     lambda w, x, idx: tn.gather(x, -1, idx), lambda x, idx: torch.gather(x, -1, idx.long()), NT,
     make=_index_make(7))
case("index_select", "dim0-dynamic", {"x": (("N", 4), "float32"), "idx": (("T",), "int64")},
     lambda w, x, idx: tn.index_select(x, 0, idx), lambda x, idx: torch.index_select(x, 0, idx),
     ({"N": 3, "T": 2}, {"N": 5, "T": 6}), make=_index_make(3))
case("index_select", "dim2-int32", {"x": (("N", 3, 6), "float32"), "idx": ((4,), "int32")},
     lambda w, x, idx: tn.index_select(x, 2, idx), lambda x, idx: torch.index_select(x, 2, idx),
     ({"N": 2}, {"N": 3}), make=_index_make(6))
case("embedding", "tokens-int32", {"ids": (("N", "T"), "int32")}, lambda w, ids: tn.embedding(ids, w["emb"]),
     lambda ids: F.embedding(ids.long(), EMB), NT, W, values={"ids": (0, 10)})
case("embedding", "3d-int64-padding", {"ids": (("N", 2, "T"), "int64")},
     lambda w, ids: tn.embedding(ids, w["emb"], padding_idx=0), lambda ids: F.embedding(ids, EMB, padding_idx=0),
     NT, W, values={"ids": (0, 10)})
case("one_hot", "int64", {"ids": (("N", "T"), "int64")}, lambda w, ids: tn.one_hot(ids, 5),
     lambda ids: F.one_hot(ids, 5), NT, values={"ids": (0, 5)})
case("one_hot", "int32-1d", {"ids": (("T",), "int32")}, lambda w, ids: tn.one_hot(ids, 3),
     lambda ids: F.one_hot(ids.long(), 3), ({"T": 2}, {"T": 7}), values={"ids": (0, 3)})


def _grid_make(name, shape, dtype, rng):
    """Grid points a little beyond [-1, 1], so every padding mode is read."""
    return rng.uniform(-1.3, 1.3, shape).astype(dtype) if name == "grid" else rng.standard_normal(shape).astype(dtype)


PADDINGS = [(p, c) for p in ("zeros", "border", "reflection") for c in (False, True)]
GRID_SIZES = ({"N": 2, "H": 5, "W": 6, "P": 3, "Q": 4}, {"N": 1, "H": 7, "W": 4, "P": 6, "Q": 2})
for _mode in ("bilinear", "nearest", "bicubic"):
    case("grid_sample", f"{_mode}-paddings-corners-dynamic",
         {"x": (("N", 3, "H", "W"), "float32"), "grid": (("N", "P", "Q", 2), "float32")},
         lambda w, x, grid, m=_mode: [tn.grid_sample(x, grid, m, p, c) for p, c in PADDINGS],
         lambda x, grid, m=_mode: [F.grid_sample(x, grid, m, p, c) for p, c in PADDINGS], GRID_SIZES, make=_grid_make)
case("grid_sample", "5d-trilinear-nearest",
     {"x": (("N", 2, 3, 4, 5), "float32"), "grid": (("N", 2, 3, 4, 3), "float32")},
     lambda w, x, grid: [tn.grid_sample(x, grid), tn.grid_sample(x, grid, "nearest", "border", True),
                         tn.grid_sample(x, grid, padding_mode="reflection", align_corners=True)],
     lambda x, grid: [F.grid_sample(x, grid, align_corners=False), F.grid_sample(x, grid, "nearest", "border", True),
                      F.grid_sample(x, grid, padding_mode="reflection", align_corners=True)], make=_grid_make)


case("repeat", "lead-dims", {"x": (("N", 3), "float32")}, lambda w, x: [tn.repeat(x, 2, 1, 3), tn.repeat(x, (2, 2))],
     lambda x: [x.repeat(2, 1, 3), x.repeat(2, 2)], ({"N": 2}, {"N": 4}))
case("repeat", "tile", {"x": (("N", 2, "T"), "float32")}, lambda w, x: [tn.tile(x, (2,)), tn.tile(x, (2, 1, 1, 3))],
     lambda x: [torch.tile(x, (2,)), torch.tile(x, (2, 1, 1, 3))], NT)
case("flip", "dynamic", {"x": (("N", 3, "T"), "float32")}, lambda w, x: [tn.flip(x, (0, 2)), tn.flip(x, 1)],
     lambda x: [torch.flip(x, (0, 2)), torch.flip(x, (1,))], NT)
case("roll", "dims", {"x": (("N", 4, "T"), "float32")},
     lambda w, x: [tn.roll(x, (1, -3), (2, 1)), tn.roll(x, 7, 0), tn.roll(x, (1, 2), (2, 2))],
     lambda x: [torch.roll(x, (1, -3), (2, 1)), torch.roll(x, 7, 0), torch.roll(x, (1, 2), (2, 2))], NT)
case("roll", "flat", {"x": (("N", 3, 2), "float32")}, lambda w, x: tn.roll(x, -4),
     lambda x: torch.roll(x, -4), ({"N": 2}, {"N": 3}))
case("arange", "position-ids", {"x": (("N", "T", 4), "float32")},
     lambda w, x: [tn.arange(x.shape[1], like=x), tn.arange(2, x.shape[1] + 5, 3, like=x),
                   tn.arange(x.shape[1], 0, -2, like=x, dtype="int32"),
                   tn.arange(x.shape[1] - 1, x.shape[1] * 2, like=x, dtype="float32")],
     lambda x: [torch.arange(x.shape[1]), torch.arange(2, x.shape[1] + 5, 3),
                torch.arange(x.shape[1], 0, -2, dtype=torch.int32),
                torch.arange(x.shape[1] - 1, x.shape[1] * 2, dtype=torch.float32)], NT)
case("arange", "float-static", {"x": (("N", 4), "float32")},
     lambda w, x: [tn.arange(0.5, 3, 0.25, like=x), tn.arange(5, like=x, dtype="float32")],
     lambda x: [torch.arange(0.5, 3, 0.25), torch.arange(5, dtype=torch.float32)])
case("arange", "triu-tril", {"x": (("N", "T", "T"), "float32")},
     lambda w, x: [tn.triu(x), tn.triu(x, 1), tn.tril(x, -1)],
     lambda x: [torch.triu(x), torch.triu(x, 1), torch.tril(x, -1)], NT)
case("expand", "filled", {"x": (("N", 3, "T"), "float32"), "i": (("N",), "int32")},
     lambda w, x, i: [tn.zeros_like(x), tn.ones_like(i), tn.full_like(x, 2.5), tn.ones_like(x, dtype="int64"),
                      tn.zeros((x.shape[0], 2), like=x), tn.full((1, x.shape[2]), 7, like=x, dtype="int32")],
     lambda x, i: [torch.zeros_like(x), torch.ones_like(i), torch.full_like(x, 2.5),
                   torch.ones_like(x, dtype=torch.int64), torch.zeros(x.shape[0], 2),
                   torch.full((1, x.shape[2]), 7, dtype=torch.int32)], NT)
case("where", "triangles-keep-dtype", {"b": (("N", "T", "T"), "bool"), "i": (("T", 4), "int32")},
     lambda w, b, i: [tn.tril(b), tn.triu(b, 1), tn.triu(i, -1)],
     lambda b, i: [torch.tril(b), torch.triu(b, 1), torch.triu(i, -1)], NT)
case("gather", "take-along-dim", {"x": (("N", 5, 4), "float32"), "idx": (("N", "T", 1), "int64"),
                                  "flat": (("T",), "int32")},
     lambda w, x, idx, flat: [x.take_along_dim(idx, 1), tn.take_along_dim(x, idx.transpose(1, 2), -1),
                              tn.take_along_dim(x, tn.argmax(x, 1, True), 1), tn.take_along_dim(x, flat)],
     lambda x, idx, flat: [torch.take_along_dim(x, idx, 1), torch.take_along_dim(x, idx.transpose(1, 2), -1),
                           torch.take_along_dim(x, torch.argmax(x, 1, True), 1), torch.take_along_dim(x, flat.long())],
     NT, make=lambda n, s, d, r: (r.integers(0, 4, s) if d.startswith("int") else r.standard_normal(s)).astype(d))
