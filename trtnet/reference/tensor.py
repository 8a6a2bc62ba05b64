"""PyTorch meaning of einsum, sort, scatters and indexing with tensors."""
import torch

from .core import ref


@ref("einsum")
def _einsum(n, *xs):
    return torch.einsum(n.attrs["equation"], *xs)


@ref("sort")
def _sort(n, x):
    return tuple(torch.sort(x, dim=n.attrs["axis"], descending=n.attrs["descending"], stable=True))


@ref("scatter")
def _scatter(n, x, index, src):
    return torch.scatter(x, n.attrs["axis"], index.long(), src)


@ref("index_put")
def _index_put(n, x, index, values):
    return x.index_put(tuple(index.long().unbind(-1)), values)


@ref("index_tensor")
def _index_tensor(n, x, index):
    return x[(slice(None),) * n.attrs["axis"] + (index.long(),)]


@ref("index_nd")
def _index_nd(n, x, index):
    return x[tuple(index.long().unbind(-1))]


@ref("nms")
def _nms(n, boxes, scores):
    a = n.attrs
    return nms_rows(boxes, scores, a["max_per_class"], a["iou_threshold"], a["score_threshold"], a["centers"],
                    a["limit"])


def nms_rows(boxes, scores, max_per_class, iou_threshold, score_threshold, centers, limit):
    """torchvision.ops.nms per batch item and class, the kept pairs of each item by decreasing score: (rows
    [batch, class, box] int32, N x C x max_per_class of them, -1 past the count; the count)."""
    from torchvision.ops import box_convert, nms
    found = []
    for i in range(boxes.shape[0]):
        corners = box_convert(boxes[i], "cxcywh", "xyxy") if centers else boxes[i]
        flat = scores[i].flatten()                                     # (B * C,): box-major pairs
        best = flat.argsort(descending=True, stable=True)[:limit]
        best = best[flat[best] > score_threshold]
        kept = []
        for c in range(scores.shape[2]):
            ids = best[best % scores.shape[2] == c] // scores.shape[2]
            keep = nms(corners[ids], scores[i, ids, c], iou_threshold)[:max_per_class]
            kept += [(float(scores[i, ids[k], c]), c, int(ids[k])) for k in keep]
        found += [(i, c, b) for _, c, b in sorted(kept, key=lambda t: -t[0])]
    rows = torch.full((scores.shape[0] * scores.shape[2] * max_per_class, 3), -1, dtype=torch.int32)
    if found:
        rows[:len(found)] = torch.tensor(found, dtype=torch.int32)
    return rows, torch.tensor(len(found), dtype=torch.int32)
