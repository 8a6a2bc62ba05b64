"""`trtnet.quantize`: a recorded graph -> a new graph with explicit Q/DQ (fake_quant) nodes, as TensorRT's
explicit quantization wants them: on the inputs of conv, fc and matmul (activation per tensor, weight per
output channel), on both inputs of a residual add that follows a convolution (so it fuses), BatchNorm folded
into the convolution before its weights are quantized. Activation ranges come from calibration on the graph's
PyTorch reference executor (max, percentile, entropy or mse over histograms), kept in a JSON cache; a
ModelOpt state dict's `*_quantizer._amax` entries may give them instead.

Weight-only precisions (int8-weights, int4-weights) quantize weights only, for an fp16 network."""
import fnmatch
import glob
import hashlib
import json
import os
import sys
import time

import numpy as np

from .graph import Graph, GraphError, Node
from .ops.quant import QMAX, scales

PRECISIONS = ("int8", "fp8", "int8-weights", "int4-weights")
METHODS = ("entropy", "max", "percentile", "mse")
BINS = 2048
QUANTIZED = ("conv", "fc", "matmul")


# --- the plan: which tensors are quantized where ---------------------------------------------------------
def _consumers(graph):
    out = {}
    for n in graph.nodes:
        for i in n.inputs:
            out.setdefault(i.name, []).append(n)
    return out


def _kept(name, keep):
    return any(fnmatch.fnmatchcase(name, p) for p in keep)


def _folds(graph, consumers):
    """{bn name: conv node} for each BatchNorm that is the only reader of a 2-D/3-D convolution."""
    out = {}
    for n in graph.nodes:
        if n.op == "bn" and n.inputs[0].op == "conv" and len(consumers.get(n.inputs[0].name, [])) == 1 \
                and n.inputs[0].name not in {o.name for o in graph.outputs}:
            out[n.name] = n.inputs[0]
    return out


def _after_conv(x, folds):
    return x.op == "conv" or (x.op == "bn" and x.name in folds)


def plan(graph, precision="int8", keep=()):
    """{node name: [input indices to quantize as activations]} and the weight-quantized layers, per TensorRT's
    placement rules; `keep` patterns (fnmatch on node names) stay in higher precision."""
    consumers = _consumers(graph)
    folds = _folds(graph, consumers)
    acts, weights = {}, []
    for n in graph.nodes:
        if _kept(n.name, keep) or (n.op in ("bn",) and n.name in folds and _kept(folds[n.name].name, keep)):
            continue
        if n.op == "conv" and len(n.attrs["kernel"]) in (2, 3) or n.op == "fc":
            weights.append(n.name)
            acts[n.name] = [0]
        elif n.op == "matmul" and all(i.is_float for i in n.inputs):
            acts[n.name] = [k for k, i in enumerate(n.inputs) if i.op != "const"]
            weights += [n.name] if any(i.op == "const" for i in n.inputs) else []
        elif n.op == "add" and any(_after_conv(i, folds) for i in n.inputs) and all(i.is_float for i in n.inputs):
            acts[n.name] = [0, 1]
    if precision in ("int8-weights", "int4-weights"):
        acts = {}
    return acts, weights, folds


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
    raise ValueError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")


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
    from .reference import run_reference
    hists = {t: Histogram() for t in tensors}
    n = len(next(iter(data.values())))
    steps = range(0, n, batch)
    if progress is None:
        progress = sys.stderr.isatty()
    if progress:
        from tqdm import tqdm
        steps = tqdm(steps, desc="calibrating", unit="batch")
    for s in steps:
        vals = run_reference(graph, {k: v[s:s + batch] for k, v in data.items()}, outputs="all")
        for t in tensors:
            hists[t].add(vals[t])
    return hists


# --- the transform -------------------------------------------------------------------------------------------
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


def _kind(precision):
    return {"int8": "int8", "fp8": "fp8", "int8-weights": "int8", "int4-weights": "int4"}[precision]


def calibrate(graph, calibration, precision="int8", method="entropy", percentile=99.99, keep=(), cache=None,
              samples=512, batch=32, progress=None, preprocess=None):
    """{tensor name: amax} for every activation `plan` quantizes: from the cache when its data fingerprint and
    method match, else from calibration (and written to the cache)."""
    acts, _, _ = plan(graph, precision, keep)
    names = {n.name: n for n in graph.nodes}
    tensors = sorted({names[k].inputs[i].name for k, idx in acts.items() for i in idx})
    if not tensors:
        return {}, {"method": method, "seconds": 0.0, "cached": False}
    data = load_calibration(calibration, graph, samples, preprocess)
    fp = fingerprint(data)
    key = {"graph": graph.name, "precision": precision, "method": method, "percentile": percentile,
           "fingerprint": fp, "samples": len(next(iter(data.values())))}
    if cache and os.path.exists(cache):
        with open(cache) as f:
            saved = json.load(f)
        if all(saved.get(k) == v for k, v in key.items()) and all(t in saved["amax"] for t in tensors):
            return {t: saved["amax"][t] for t in tensors}, dict(key, seconds=0.0, cached=True)
    start = time.perf_counter()
    hists = collect(graph, data, tensors, batch, progress)
    amax = {t: amax_of(h, method, percentile, _kind(precision)) for t, h in hists.items()}
    info = dict(key, seconds=time.perf_counter() - start, cached=False)
    if cache:
        from .engine import write_atomic
        write_atomic(cache, (json.dumps(dict(key, amax=amax), indent=1) + "\n").encode())
    return amax, info


def quantize(graph, calibration=None, precision="int8", method="entropy", percentile=99.99, keep=(),
             block_size=128, cache=None, samples=512, batch=32, progress=None, preprocess=None, amax=None):
    """A new graph with explicit quantization (see the module's docstring). `calibration`: data (array, dict,
    .npy/.npz, image folder) or a ModelOpt checkpoint (.pth/.pt, its `*_quantizer._amax` used as given);
    `amax` ({tensor name: amax}) skips calibration. The result's `.quant` says what was done."""
    if precision not in PRECISIONS:
        raise GraphError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if method not in METHODS:
        raise GraphError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    keep = [keep] if isinstance(keep, str) else list(keep)
    quantizers, info = {}, {"method": method, "seconds": 0.0, "cached": False}
    if isinstance(calibration, str) and calibration.endswith((".pth", ".pt")):
        quantizers, info = read_modelopt(calibration), {"method": "modelopt", "seconds": 0.0, "cached": False,
                                                        "source": calibration}
    elif amax is None and precision in ("int8", "fp8"):
        if calibration is None:
            raise GraphError(f"{precision} needs calibration data (or a ModelOpt checkpoint)")
        amax, info = calibrate(graph, calibration, precision, method, percentile, keep, cache, samples, batch,
                               progress, preprocess)
    q = _Rewrite(graph, precision, keep, amax or {}, quantizers, block_size).run()
    q.quant.update(calibration=info)
    return q


class _Rewrite:
    """Copies the graph node by node, folding BatchNorm and inserting fake_quant nodes."""

    def __init__(self, graph, precision, keep, amax, quantizers, block_size):
        self.g, self.precision, self.kind = graph, precision, _kind(precision)
        self.acts, self.weights, self.folds = plan(graph, precision, keep)
        self.amax, self.quantizers, self.block = amax, quantizers, block_size
        self.new = Graph(graph.name)
        self.new.dims, self.new.ranges = dict(graph.dims), dict(graph.ranges)
        self.map, self.count = {}, 0

    def run(self):
        folded = {c.name for c in self.folds.values()}
        for n in self.g.nodes:
            if n.name in folded:
                continue
            if n.name in self.folds:
                conv = self.folds[n.name]
                self.map[n.name] = self._conv(conv, n, [self._act(conv, 0, conv.inputs[0])])
                continue
            ins = [self._act(n, k, i) for k, i in enumerate(n.inputs)]
            if n.name in self.weights:
                self.map[n.name] = self._weighted(n, ins)
            else:
                self.map[n.name] = self._copy(n, ins)
        self.new.outputs = [self.map[o.name] for o in self.g.outputs]
        fq = [n for n in self.new.nodes if n.op == "fake_quant"]
        self.new.quant = {"precision": self.precision, "fp16": self.precision.endswith("-weights"),
                          "layers": [n.name for n in self.new.nodes if n.op in ("qconv", "qfc") or
                                     n.op in ("matmul", "add") and any(i.op == "fake_quant" for i in n.inputs)],
                          "quantizers": len(fq)}
        return self.new

    def _add(self, op, inputs, shape, attrs, params, name, dtype, where=None):
        node = self.new.add(op, inputs, shape, attrs, params, name, dtype)
        node.where = where or node.where
        return node

    def _copy(self, n, ins, name=None):
        return self._add(n.op, ins, n.shape, dict(n.attrs), dict(n.params), name or n.name, n.dtype, n.where)

    def _act(self, n, k, i):
        x = self.map[i.name]
        if k not in self.acts.get(n.name, []):
            return x
        key = f"{n.name}.input_quantizer" if k == 0 else f"{n.name}.input{k}_quantizer"
        if key in self.quantizers:
            amax = float(np.max(self.quantizers[key]))
        elif i.name in self.amax:
            amax = float(self.amax[i.name])
        else:
            raise GraphError(f"layer '{n.name}': no calibrated range for its input '{i.name}'")
        return self._fq(x, amax, None, None, key)

    def _fq(self, x, amax, axis, block, name, dtype=None):
        scale = scales(amax, self.kind)
        if self.precision.endswith("-weights"):   # the fp16 network holds the scale in half precision
            scale = np.maximum(scale.astype(np.float16), np.float16(6e-8)).astype(np.float32)
        return self._add("fake_quant", [x], x.shape, dict(kind=self.kind, axis=axis, block=block), {"scale": scale},
                         self.new.unique(name), dtype or x.dtype)

    def _weight(self, layer, w, axis, block_axis=None, given=True):
        """The fake-quantized constant weight of `layer`: per `axis`, or INT4 blocks along `block_axis`."""
        if self.precision.endswith("-weights"):   # as the fp16 network holds it
            w = w.astype(np.float16).astype(np.float32)
        c = self._add("const", [], w.shape, {}, {"value": w}, self.new.unique(f"{layer}.weight"), "float32")
        key = f"{layer}.weight_quantizer"
        reduce = tuple(d for d in range(w.ndim) if d != axis)
        if self.kind == "int4" and block_axis is not None and self.block and w.shape[block_axis] % self.block == 0:
            shape = list(w.shape)
            shape[block_axis:block_axis + 1] = [w.shape[block_axis] // self.block, self.block]
            amax = np.abs(w).reshape(shape).max(block_axis + 1)
            return self._fq(c, amax, block_axis, self.block, key)
        amax = self.quantizers.get(key) if given else None   # a ModelOpt range of unfolded weights
        amax = np.abs(w).max(reduce) if amax is None or np.size(amax) != w.shape[axis] else np.ravel(amax)
        return self._fq(c, amax, axis, None, key)

    def _weighted(self, n, ins):
        if n.op == "conv":
            return self._conv(n, None, ins)
        if n.op == "fc":
            w = self._weight(n.name, n.params["weight"], 0, 1)
            return self._add("qfc", [ins[0], w], n.shape, dict(n.attrs), _bias(n.params), n.name, n.dtype, n.where)
        k = next(k for k, i in enumerate(n.inputs) if i.op == "const")   # matmul by a constant (K, N) matrix
        value = n.inputs[k].params["value"].astype(np.float32)
        ins[k] = self._weight(n.name, value, value.ndim - 1 if k == 1 else value.ndim - 2)
        return self._copy(n, ins)

    def _conv(self, conv, bn, ins):
        """The convolution (BatchNorm folded in) with its kernel fake-quantized per output channel."""
        w, b = conv.params["weight"], conv.params.get("bias")
        if bn is not None:
            p = bn.params
            s = p["weight"] / np.sqrt(p["running_var"] + bn.attrs["eps"])
            w = w * s.reshape(-1, *(1,) * (w.ndim - 1))
            b = (0 if b is None else b) * s + p["bias"] - p["running_mean"] * s
        w = w.astype(np.float32)
        params = {} if b is None else {"bias": np.asarray(b, np.float32)}
        name = conv.name if bn is None else bn.name
        if conv.name not in self.weights:
            return self._add("conv", ins[:1], conv.shape, dict(conv.attrs), dict(params, weight=w), name,
                             conv.dtype, conv.where)
        wq = self._weight(conv.name, w, 0, given=bn is None)
        return self._add("qconv", [ins[0], wq], conv.shape, dict(conv.attrs), params, name, conv.dtype, conv.where)


def _bias(params):
    return {"bias": params["bias"]} if "bias" in params else {}


# --- build and check: calibration data, layer counts, the accuracy cost ------------------------------------
def own_data(spec):
    """The zoo model's own calibration data (the digits models' training split), else None."""
    if spec is None or spec.dataset is None:
        return None
    from zoo.lenet import _digits, test_set
    return _digits()[0][0] if spec.dataset is test_set else None


def for_model(graph, precision, spec=None, calib=None, method="entropy", samples=512, cache=None, keep=(),
              progress=None):
    """`quantize` as build and check do it: calibration from `calib` (array, .npy/.npz, image folder, ModelOpt
    checkpoint) or else the zoo model's own data. INT4 weights go per output channel on TensorRT-RTX, whose
    1.7 builder refuses block-wise INT4 for every GPU target."""
    from .backend import is_rtx
    block = None if precision == "int4-weights" and is_rtx() else 128
    if calib is None and precision in ("int8", "fp8"):
        calib = own_data(spec)
        if calib is None:
            raise GraphError(f"'{graph.name}' has no data of its own to calibrate {precision} on; pass calib "
                             f"(--calib: a .npy/.npz file, an image folder or a ModelOpt checkpoint)")
    return quantize(graph, calib, precision, method, keep=keep, block_size=block, cache=cache, samples=samples,
                    progress=progress)


def layer_counts(graph, q):
    """{op: (quantized, total)} over the layers explicit quantization can cover."""
    done = set(q.quant["layers"])
    out = {}
    for n in graph.nodes:
        if n.op in ("conv", "fc", "matmul") or n.op == "add" and n.name in done:
            k = "conv" if n.op == "conv" else n.op
            hit = n.name in done or n.op == "conv" and any(b.inputs[0] is n and b.name in done for b in graph.nodes
                                                            if b.op == "bn")
            out[k] = (out.get(k, (0, 0))[0] + hit, out.get(k, (0, 0))[1] + 1)
    return out


def cost(quant, fp32, labels=None):
    """What quantization costs on held-out samples: top-1 agreement with fp32, output SQNR (dB), accuracies."""
    q, f = np.asarray(quant, np.float64), np.asarray(fp32, np.float64)
    noise = float(np.sum((q - f) ** 2))
    out = {"samples": len(f), "top1": float((q.reshape(len(q), -1).argmax(1) == f.reshape(len(f), -1).argmax(1)).mean()),
           "sqnr": float(10 * np.log10(np.sum(f ** 2) / noise)) if noise else float("inf")}
    if labels is not None:
        out["accuracy_fp32"] = float((f.argmax(1) == labels).mean())
        out["accuracy"] = float((q.argmax(1) == labels).mean())
    return out


def describe(info):
    """Summary lines of a quantized build or check: precision per layer count, calibration, accuracy cost."""
    p, c = info["precision"], info["calibration"]
    math = "fp16 math, weights " + p.split("-")[0].upper() if p.endswith("-weights") else p.upper()
    counts = ", ".join(f"{k} {a}/{b}" for k, (a, b) in info["layers"].items())
    done = sum(a for a, _ in info["layers"].values())
    lines = [f"  quantize {p} ({math}): {done} of {sum(b for _, b in info['layers'].values())} layers quantized "
             f"({counts}){'; kept: ' + ', '.join(info['keep']) if info.get('keep') else ''}"]
    if c.get("cached"):
        lines.append(f"  calibration  reused the calibration cache {info['cache']} ({c['method']}, {c['samples']} "
                     f"samples; no calibration run)")
    elif c["method"] == "modelopt":
        lines.append(f"  calibration  ModelOpt ranges from {c['source']}")
    elif "samples" in c:
        lines.append(f"  calibration  {c['method']} on {c['samples']} samples in {c['seconds']:.1f} s"
                     + (f", written to {info['cache']}" if info.get("cache") else ""))
    for what, m in info.get("cost", {}).items():
        lines.append(f"  cost     {what} vs fp32 on {m['samples']} held-out samples: top-1 agreement "
                     f"{m['top1'] * 100:.1f}%, output SQNR {m['sqnr']:.1f} dB")
        if "accuracy" in m:
            lines.append(f"  accuracy fp32 {m['accuracy_fp32'] * 100:.2f}%, {p} {m['accuracy'] * 100:.2f}% "
                         f"({(m['accuracy'] - m['accuracy_fp32']) * 100:+.2f} points) on the held-out set")
    return lines


def report_info(graph, q, cache=None, keep=()):
    """What `describe` prints, before the cost is measured."""
    return {"precision": q.quant["precision"], "layers": layer_counts(graph, q), "calibration": q.quant["calibration"],
            "cache": cache, "keep": [keep] if isinstance(keep, str) else list(keep), "cost": {}}


def held_out(spec, graph, samples=8, seed=1):
    """({input: array}, labels or None) to measure the cost on: the model's held-out set, else seeded inputs
    (a seed apart from any calibration's)."""
    if spec is not None and spec.dataset is not None:
        x, labels = spec.dataset()
        return {graph.inputs[0].name: x}, labels
    from .zoo import random_inputs
    env = {k: (samples if k == "N" else r[1]) for k, r in graph.ranges.items()}
    return random_inputs(graph, env, np.random.default_rng(seed)), None


QUANT_TOL = 1e-5   # the quantized network against its fake-quantized reference: both fp32, the same roundings


def verify_build(report, spec, module, fp32, q, samples=8, run_engine=None):
    """The two checks of a quantized build: the TensorRT network (interpreter) against the quantized graph's
    fake-quantized reference, and the cost against the fp32 model (`module`, else fp32's reference executor)."""
    from .harness import run_module
    from .check.report import check_graph
    from .reference import run_reference
    inputs, labels = held_out(spec, fp32, samples)
    check = check_graph(q, inputs, None, report.tol, q.quant["fp16"])
    for o in q.outputs:
        report.checks.append((f"quantized TensorRT network output {o.name} (trtnet.check interpreter) vs its "
                              f"fake-quantized PyTorch reference", dict(check.final[o.name], first_bad=check.first_bad)))
    expected = run_module(module, fp32, inputs, spec.output if spec else None) if module is not None \
        else run_reference(fp32, inputs)
    out = fp32.outputs[0].name
    report.quant["cost"]["TensorRT network"] = cost(check.values[out], expected[out], labels)
    if run_engine is not None:
        report.quant["cost"]["engine"] = cost(run_engine(inputs)[out], expected[out], labels)
    return report


# --- command lines ---------------------------------------------------------------------------------------------
def add_arguments(p):
    """The quantization options `python -m trtnet.build` and `python -m trtnet.check` share."""
    g = p.add_argument_group("quantization (explicit Q/DQ, see trtnet.quantize)")
    modes = g.add_mutually_exclusive_group()
    for mode, what in (("int8", "INT8 activations and weights"), ("fp8", "FP8 E4M3 activations and weights"),
                       ("int8-weights", "INT8 weights, fp16 math"), ("int4-weights", "INT4 weights, fp16 math")):
        modes.add_argument(f"--{mode}", dest="quantize", action="store_const", const=mode, help=what)
    g.add_argument("--calib", metavar="PATH", help="calibration data: .npy/.npz, an image folder, or a ModelOpt "
                                                   "checkpoint (*_quantizer._amax); default the model's own data")
    g.add_argument("--calib-method", choices=METHODS, default="entropy", help="calibration method (default entropy)")
    g.add_argument("--calib-samples", default="512", metavar="N", help="calibration samples (default 512)")
    g.add_argument("--calib-cache", metavar="FILE", help="JSON of calibrated ranges: reused when data and method "
                                                         "match, else written")
    g.add_argument("--keep", action="append", default=[], metavar="PATTERN",
                   help="layers (fnmatch on names) left unquantized; repeatable")


def parse_arguments(args):
    """The options as build()'s keywords, checked before torch or TensorRT load."""
    from . import cli
    given = [f for f, v in (("--calib", args.calib), ("--calib-cache", args.calib_cache), ("--keep", args.keep),
                            ("--calib-method", args.calib_method != "entropy"),
                            ("--calib-samples", args.calib_samples != "512")) if v]
    if not args.quantize and given:
        raise cli.UsageError(f"{given[0]} needs a quantization mode: --int8, --fp8, --int8-weights or --int4-weights")
    if args.calib is not None and not os.path.exists(args.calib):
        raise cli.UsageError(f"--calib {args.calib!r}: no such file or folder")
    if args.calib_cache:
        cli.check_output(args.calib_cache, "--calib-cache")
    return dict(quantize=args.quantize, calib=args.calib, calib_method=args.calib_method,
                calib_samples=cli.count(args.calib_samples, "--calib-samples"), calib_cache=args.calib_cache,
                keep=tuple(args.keep))


def check_quantized(graph, precision, spec=None, module=None, inputs=None, tol=None, fp16=False, samples=8,
                    calib=None, calib_method="entropy", calib_samples=512, calib_cache=None, keep=()):
    """trtnet.check of the quantized graph: its TensorRT network (interpreter) against its fake-quantized
    reference on `inputs` (default: held-out samples), and the cost against the fp32 `module` (else the fp32
    graph's reference executor)."""
    from .harness import run_module
    from .check.report import FP16_TOL, check_graph
    from .reference import run_reference
    q = for_model(graph, precision, spec, calib, calib_method, calib_samples, calib_cache, keep)
    fp16 = fp16 or q.quant["fp16"]
    labels = None
    if inputs is None:
        inputs, labels = held_out(spec, graph, samples)
    report = check_graph(q, inputs, None, tol or (FP16_TOL if fp16 else QUANT_TOL), fp16)
    report.title = report.title.replace(" vs PyTorch", f" ({precision}) vs its fake-quantized PyTorch reference")
    expected = run_module(module, graph, inputs, spec.output if spec else None) if module is not None \
        else run_reference(graph, inputs)
    out = graph.outputs[0].name
    report.quant = report_info(graph, q, calib_cache, keep)
    report.quant["cost"]["TensorRT network"] = cost(report.values[out], expected[out], labels)
    return report
