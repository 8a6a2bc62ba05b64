"""The rewrite: a recorded graph -> a new graph with explicit Q/DQ (fake_quant) nodes where TensorRT's explicit
quantization wants them (`plan`), BatchNorm folded into the convolution before its weights are quantized."""
import fnmatch

import numpy as np

from ..graph import Graph, GraphError
from ..ops.quant import QMAX, scales
from .calibration import METHODS, calibrate, read_modelopt, sqnr

PRECISIONS = ("int8", "fp8", "int8-weights", "int4-weights")


def _kind(precision):
    """The number format a precision quantizes to."""
    return {"int8": "int8", "fp8": "fp8", "int8-weights": "int8", "int4-weights": "int4"}[precision]


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
        if n.op in ("conv", "fc"):   # a 1-D convolution runs as 2-D in TensorRT
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


def activations(graph, precision="int8", keep=()):
    """The names of the tensors `plan` quantizes as activations: what calibration measures."""
    acts, _, _ = plan(graph, precision, keep)
    names = {n.name: n for n in graph.nodes}
    return sorted({names[k].inputs[i].name for k, idx in acts.items() for i in idx})


def quantize(graph, calibration=None, precision="int8", method="auto", percentile=99.99, keep=(),
             block_size=128, cache=None, samples=512, batch=32, progress=None, preprocess=None, amax=None):
    """A new graph with explicit quantization (see trtnet.quantize). `calibration`: data (array, dict,
    .npy/.npz, image folder) or a ModelOpt checkpoint (.pth/.pt, its `*_quantizer._amax` used as given);
    `amax` ({tensor name: amax}) skips calibration. Method auto picks, among calibration.AUTO, the ranges with
    the best output SQNR on the calibration data. The result's `.quant` says what was done."""
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
        # every layer's range, scored with nothing kept: the ranges do not depend on `keep`, so a --keep
        # that advise() measured is what a build with it gets
        amax, info = calibrate(graph, calibration, activations(graph, precision), precision, method,
                               percentile, cache, samples, batch, progress, preprocess,
                               _scorer(graph, precision, (), block_size))
    q = requantize(graph, precision, keep, (amax or {}, quantizers, block_size))
    q.quant.update(calibration=info)
    return q


def requantize(graph, precision, keep, ranges):
    """The graph quantized with ranges already known (`q.quant["ranges"]` of an earlier `quantize`) and other
    layers kept: what advice tries, with no calibration."""
    q = _Rewrite(graph, precision, keep, *ranges).run()
    q.quant.update(ranges=ranges, keep=list(keep))
    return q


def _scorer(graph, precision, keep, block_size):
    """score(amax, data): the output SQNR (dB, all outputs together) of the graph quantized with `amax`
    against fp32, both on the reference executor."""
    fp32 = {}

    def score(amax, data):
        from ..reference import run_reference  # loads torch
        key = id(next(iter(data.values())))
        want = fp32[key] = fp32[key] if key in fp32 else run_reference(graph, data)
        got = run_reference(requantize(graph, precision, keep, (amax, {}, block_size)), data)
        return sqnr(np.concatenate([np.ravel(got[o.name]) for o in graph.outputs]),
                    np.concatenate([np.ravel(want[o.name]) for o in graph.outputs]))
    return score


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
            fp8_input = self.kind == "fp8" and i.name in {t.name for t in self.g.inputs}
            amax = _binary(amax) if fp8_input else amax
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


def _binary(amax):
    """A network input's FP8 range widened to a power-of-two scale: input data of few significant bits stay exact
    (digits of 17 grey levels, k/16, scaled by 1/448 need 5 bits, scaled by 2^-8 they fit E4M3). Only inputs:
    inside the network the binade it gives away at the bottom of the range costs more (silero-vad)."""
    top = float(QMAX["fp8"])
    return top * 2.0 ** np.ceil(np.log2(max(amax, 1e-30) / top))


def _bias(params):
    return {"bias": params["bias"]} if "bias" in params else {}
