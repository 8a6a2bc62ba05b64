"""Calibration: the range (amax) of each activation the rewrite quantizes, from histograms of the graph's PyTorch
reference executor over calibration data (max, percentile, entropy or mse), kept in a JSON cache file; or from a
ModelOpt state dict's `*_quantizer._amax` entries. The default method, auto, measures: the histograms are
collected once, each candidate method's ranges quantize the graph, and the one whose output SQNR against fp32
on the calibration data is highest wins (per model)."""
import glob
import hashlib
import json
import os
import sys
import time

import numpy as np

from .. import backend
from ..files import write_atomic
from ..graph import GraphError
from ..ops.quant import QMAX

METHODS = ("auto", "entropy", "max", "percentile", "mse")
AUTO = ("max", "percentile", "mse")   # auto's candidates: entropy, 5-10x slower, was never the best by 1 dB
SCORE_SAMPLES = 64                    # calibration samples auto scores the candidates on
BINS = 2048


def sqnr(got, want):
    """Signal-to-quantization-noise ratio (dB) of `got` against `want`; inf where they are equal."""
    g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
    noise = float(np.sum((g - w) ** 2))
    return float(10 * np.log10(np.sum(w ** 2) / noise)) if noise else float("inf")


# --- calibration statistics --------------------------------------------------------------------------------
class Histogram:
    """|x| counted in bins of a width fixed by the first batch; more bins as larger values come, adjacent bins
    merged in pairs past 2 * BINS (so one pass over the data suffices)."""

    def __init__(self):
        self.width, self.counts, self.amax = None, np.zeros(0, np.int64), 0.0

    def add(self, x):
        a = np.abs(np.asarray(x, np.float32)).ravel()
        top = float(a.max()) if a.size else 0.0
        self.amax = max(self.amax, top)
        if self.width is None:
            if top == 0:
                return
            self.width = top / BINS
        while top >= self.width * 2 * BINS:
            c = self.counts
            c = np.pad(c, (0, len(c) % 2))
            self.counts, self.width = c[0::2] + c[1::2], self.width * 2
        idx = np.minimum((a / self.width).astype(np.int64), 2 * BINS - 1)
        c = np.bincount(idx, minlength=int(idx.max()) + 1 if idx.size else 0)
        if len(c) > len(self.counts):
            self.counts = np.pad(self.counts, (0, len(c) - len(self.counts)))
        self.counts[:len(c)] += c

    def to_dict(self):
        return {"width": self.width, "counts": self.counts.tolist(), "amax": self.amax}


def amax_of(h, method, percentile=99.99, kind="int8"):
    """The clipping range of a histogram by `method`."""
    if method == "max" or h.width is None or h.counts.sum() == 0:
        return h.amax
    c = h.counts[:np.nonzero(h.counts)[0][-1] + 1].astype(np.float64)
    edges = np.arange(1, len(c) + 1) * h.width
    if method == "percentile":
        return float(min(edges[np.searchsorted(np.cumsum(c) / c.sum(), percentile / 100.0)], h.amax))
    if method == "entropy":
        return float(min(_entropy(c, h.width), h.amax))
    if method == "mse":
        return float(min(_mse(c, h.width, kind), h.amax))
    raise ValueError(f"calibration method must be one of {', '.join(METHODS[1:])}, got {method!r}")


def _candidates(n, start=128, count=160):
    return range(min(start, n), n + 1, max(1, (n - start) // count)) if n > start else [n]


def _entropy(c, width, levels=128):
    """TensorRT's entropy calibration: the threshold whose 128-level quantized distribution is closest (KL
    divergence) to the clipped one, outliers folded into the last bin. The first bin (ReLU's zeros, exact at any
    threshold) is left out: spread over a wide quantization bin it would favour clipping far too low."""
    c = np.concatenate([[0.0], c[1:]])
    best, best_i = np.inf, len(c)
    for i in _candidates(len(c)):
        p = c[:i].copy()
        p[-1] += c[i:].sum()
        nz = c[:i] > 0
        chunks = np.array_split(np.arange(i), min(levels, i))
        q = np.zeros(i)
        for ch in chunks:
            k = nz[ch].sum()
            if k:
                q[ch] = np.where(nz[ch], c[ch].sum() / k, 0)
        if not q.sum():
            continue
        mask = p > 0
        pn, qn = p / p.sum(), q / q.sum()
        kl = np.inf if (qn[mask] == 0).any() else float(np.sum(pn[mask] * np.log(pn[mask] / qn[mask])))
        if kl < best:
            best, best_i = kl, i
    return best_i * width


def _mse(c, width, kind):
    """The threshold minimising the histogram's expected squared quantization error."""
    centers = (np.arange(len(c)) + 0.5) * width
    best, best_a = np.inf, len(c) * width
    for i in _candidates(len(c)):
        a = i * width
        s = a / QMAX[kind]
        y = centers / s
        if kind == "fp8":
            import torch
            q = torch.from_numpy(np.minimum(y, 448.0)).float().to(torch.float8_e4m3fn).double().numpy()
        else:
            q = np.minimum(np.round(y), QMAX[kind])
        err = float(np.sum(c * (centers - q * s) ** 2))
        if err < best:
            best, best_a = err, a
    return best_a


# --- calibration data --------------------------------------------------------------------------------------
def load_calibration(source, graph, samples=512, preprocess=None):
    """{input name: array} of up to `samples` samples from an array, a dict, a .npy/.npz file or a folder of
    images (`preprocess`: resize, crop, mean, std)."""
    names = [i.name for i in graph.inputs]
    if isinstance(source, dict):
        data = {k: np.asarray(v) for k, v in source.items()}
    elif isinstance(source, np.ndarray):
        data = {names[0]: source}
    elif isinstance(source, str) and os.path.isdir(source):
        data = {names[0]: _images(source, samples, preprocess or {}, graph.inputs[0])}
    elif isinstance(source, str) and source.endswith(".npz"):
        z = np.load(source)
        data = {k: z[k] for k in names} if all(k in z for k in names) else {names[0]: z[z.files[0]]}
    elif isinstance(source, str) and source.endswith(".npy"):
        data = {names[0]: np.load(source)}
    else:
        raise GraphError(f"calibration data must be an array, a dict, a .npy/.npz file or an image folder; "
                         f"got {source!r}")
    missing = [k for k in names if k not in data]
    if missing:
        raise GraphError(f"calibration data has no values for input(s) {', '.join(missing)}")
    return {k: np.ascontiguousarray(v[:samples]) for k, v in data.items() if k in names}


def _images(folder, samples, spec, node):
    """Images of a folder, resized (shorter side), centre-cropped, scaled to [0, 1], normalised, NCHW."""
    from PIL import Image
    files = sorted(f for e in ("png", "jpg", "jpeg", "bmp") for f in glob.glob(os.path.join(folder, f"*.{e}")))
    if not files:
        raise GraphError(f"no images (png, jpg, bmp) in {folder}")
    c = node.shape[1] if isinstance(node.shape[1], int) else 3
    crop = spec.get("crop") or tuple(d if isinstance(d, int) else 224 for d in node.shape[2:4])
    crop = (crop, crop) if isinstance(crop, int) else tuple(crop)
    mean = np.asarray(spec.get("mean", [0.0] * c), np.float32).reshape(-1, 1, 1)
    std = np.asarray(spec.get("std", [1.0] * c), np.float32).reshape(-1, 1, 1)
    out = []
    for f in files[:samples]:
        im = Image.open(f).convert("L" if c == 1 else "RGB")
        r = spec.get("resize", max(crop))
        s = r / min(im.size)
        im = im.resize((max(crop[1], round(im.size[0] * s)), max(crop[0], round(im.size[1] * s))), Image.BILINEAR)
        left, top = (im.size[0] - crop[1]) // 2, (im.size[1] - crop[0]) // 2
        a = np.asarray(im.crop((left, top, left + crop[1], top + crop[0])), np.float32) / 255.0
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        out.append((a - mean) / std)
    return np.stack(out).astype(np.float32)


def fingerprint(data):
    h = hashlib.sha256()
    for k in sorted(data):
        a = np.ascontiguousarray(data[k])
        h.update(k.encode() + str(a.shape).encode() + str(a.dtype).encode() + a.tobytes())
    return h.hexdigest()[:16]


def collect(graph, data, tensors, batch=32, progress=None):
    """A Histogram of each tensor in `tensors`, the reference executor run over `data` in batches."""
    from ..reference import run_reference  # loads torch
    hists = {t: Histogram() for t in tensors}
    n = len(next(iter(data.values())))
    steps = range(0, n, batch)
    if progress is not False and (sys.stderr.isatty() if backend.SHOW is None else backend.SHOW):  # terminals only
        from tqdm import tqdm
        steps = tqdm(steps, desc="calibrating", unit="batch")
    for s in steps:
        vals = run_reference(graph, {k: v[s:s + batch] for k, v in data.items()}, outputs="all")
        for t in tensors:
            hists[t].add(vals[t])
    return hists


# --- ranges given ----------------------------------------------------------------------------------------------
def read_modelopt(path):
    """{'layer.input_quantizer': amax, ...} from a ModelOpt state dict's `*_quantizer._amax` keys."""
    import torch
    state = torch.load(path, map_location="cpu", weights_only=False)
    state = state.get("model_state_dict", state.get("state_dict", state)) if isinstance(state, dict) else state
    out = {k[:-len("._amax")]: v.float().numpy() for k, v in state.items()
           if k.endswith("_quantizer._amax") and hasattr(v, "numpy")}
    if not out:
        raise GraphError(f"{path}: no '*_quantizer._amax' entries (a ModelOpt-quantized model's state dict)")
    return out


def calibrate(graph, calibration, tensors, precision="int8", method="auto", percentile=99.99, cache=None,
              samples=512, batch=32, progress=None, preprocess=None, score=None):
    """({tensor name: amax} of `tensors`, what was done): from the cache when its data fingerprint and method
    match, else from calibration (and written to the cache). `precision`, int8 or fp8, is the number format
    the ranges are for. Method auto needs `score(amax, data)`: the output SQNR (dB) of ranges on data."""
    if not tensors:
        return {}, {"method": method, "seconds": 0.0, "cached": False}
    data = load_calibration(calibration, graph, samples, preprocess)
    key = {"graph": graph.name, "precision": precision, "method": method, "percentile": percentile,
           "fingerprint": fingerprint(data), "samples": len(next(iter(data.values())))}
    if cache and os.path.exists(cache):
        with open(cache) as f:
            saved = json.load(f)
        if all(saved.get(k) == v for k, v in key.items()) and all(t in saved["amax"] for t in tensors):
            chosen = {k: saved[k] for k in ("chosen", "scores") if k in saved}
            return {t: saved["amax"][t] for t in tensors}, dict(key, seconds=0.0, cached=True, **chosen)
    start = time.perf_counter()
    hists = collect(graph, data, tensors, batch, progress)
    chosen = {}
    if method == "auto":
        part = {k: v[:SCORE_SAMPLES] for k, v in data.items()}
        ranges = {m: {t: amax_of(h, m, percentile, precision) for t, h in hists.items()} for m in AUTO}
        scores = {m: round(score(a, part), 2) for m, a in ranges.items()}
        best = max(AUTO, key=lambda m: scores[m])
        amax, chosen = ranges[best], {"chosen": best, "scores": scores}
    else:
        amax = {t: amax_of(h, method, percentile, precision) for t, h in hists.items()}
    info = dict(key, seconds=time.perf_counter() - start, cached=False, **chosen)
    if cache:
        write_atomic(cache, (json.dumps(dict(key, amax=amax, **chosen), indent=1) + "\n").encode())
    return amax, info
