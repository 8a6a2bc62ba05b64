"""What a quantized graph is worth: layers quantized per op, the accuracy cost against fp32 on held-out samples,
`describe`'s summary lines, and the checks of a quantized build or check (the TensorRT network against the
graph's fake-quantized reference, which shares its scales and roundings)."""
import numpy as np

from ..backend import is_rtx
from ..check.report import FP16_TOL, check_graph
from ..compare import compare
from ..graph import GraphError
from ..harness import run_module
from ..zoo import random_inputs
from .advise import MIN_AGREEMENT, MIN_SQNR, TARGET_SQNR, advise, pattern
from .calibration import sqnr
from .rewrite import quantize, requantize

QUANT_TOL = 1e-5   # the quantized network against its fake-quantized reference: both fp32, the same roundings


def for_model(graph, precision, spec=None, calib=None, method="auto", samples=512, cache=None, keep=(),
              progress=None):
    """`quantize` as build and check do it: calibration from `calib` (array, .npy/.npz, image folder, ModelOpt
    checkpoint) or else the model's registered `calibration`. INT4 weights go per output channel on TensorRT-RTX,
    whose 1.7 builder refuses block-wise INT4 for every GPU target."""
    block = None if precision == "int4-weights" and is_rtx() else 128
    if calib is None and precision in ("int8", "fp8"):
        if spec is None or spec.calibration is None:
            raise GraphError(f"'{graph.name}' has no data of its own to calibrate {precision} on; pass calib "
                             f"(--calib: a .npy/.npz file, an image folder or a ModelOpt checkpoint)")
        calib = spec.calibration()
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
    out = {"samples": len(f), "top1": float((q.reshape(len(q), -1).argmax(1) == f.reshape(len(f), -1).argmax(1)).mean()),
           "sqnr": sqnr(q, f)}
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
        chose = "" if "chosen" not in c else f" (chose {c['chosen']} by output SQNR: " + ", ".join(
            f"{m} {v:.1f} dB" for m, v in c["scores"].items()) + ")"
        lines.append(f"  calibration  {c['method']}{chose} on {c['samples']} samples in {c['seconds']:.1f} s"
                     + (f", written to {info['cache']}" if info.get("cache") else ""))
    for what, m in info.get("cost", {}).items():
        lines.append(f"  cost     {what} vs fp32 on {m['samples']} held-out samples: top-1 agreement "
                     f"{m['top1'] * 100:.1f}%, output SQNR {m['sqnr']:.1f} dB")
        if "accuracy" in m:
            lines.append(f"  accuracy fp32 {m['accuracy_fp32'] * 100:.2f}%, {p} {m['accuracy'] * 100:.2f}% "
                         f"({(m['accuracy'] - m['accuracy_fp32']) * 100:+.2f} points) on the held-out set")
    if info.get("over_bound"):
        lines.append(f"  bound    the quantization cost is over its bound: {info['over_bound']}")
    return lines + info.get("advice", [])


class QuantInfo(dict):
    """`describe`'s input, which a build or check report holds as its `quant`; `lines()` lets the report print
    it without importing trtnet.quantize."""

    def lines(self):
        return describe(self)


def report_info(graph, q, cache=None, keep=()):
    """What `describe` prints, before the cost is measured."""
    return QuantInfo(precision=q.quant["precision"], layers=layer_counts(graph, q), calibration=q.quant["calibration"],
                     cache=cache, keep=[keep] if isinstance(keep, str) else list(keep), cost={})


def held_out(spec, graph, samples=8, seed=1):
    """({input: array}, labels or None) to measure the cost on: the model's held-out set, else seeded inputs
    (a seed apart from any calibration's)."""
    if spec is not None and spec.dataset is not None:
        x, labels = spec.dataset()
        return {graph.inputs[0].name: x}, labels
    env = {k: (samples if k == "N" else r[1]) for k, r in graph.ranges.items()}
    return random_inputs(graph, env, np.random.default_rng(seed)), None


def _fp32_outputs(spec, module, graph, inputs):
    """What the quantized network is measured against: the fp32 `module`'s outputs, else the fp32 graph's
    reference executor's."""
    from ..reference import run_reference  # loads torch
    if module is not None:
        return run_module(module, graph, inputs, spec.output if spec else None)
    return run_reference(graph, inputs)


def bound(info, fp32, q, inputs, expected, labels, min_sqnr=None, min_agreement=None):
    """Mark `info` (a QuantInfo with its cost measured) over its bound where the last cost's output SQNR or
    top-1 agreement falls below `min_sqnr` (default MIN_SQNR of the precision) or `min_agreement` (default
    MIN_AGREEMENT), with the costliest layers and the --keep advise() finds. Returns whether it was within."""
    min_sqnr = MIN_SQNR[q.quant["precision"]] if min_sqnr is None else min_sqnr
    min_agreement = MIN_AGREEMENT if min_agreement is None else min_agreement
    c = list(info["cost"].values())[-1]
    over = [f"output SQNR {c['sqnr']:.1f} dB < {min_sqnr:g} dB (--min-sqnr)"] * (c["sqnr"] < min_sqnr) + \
        [f"top-1 agreement {c['top1'] * 100:.1f}% < {min_agreement * 100:g}% (--min-agreement)"] * \
        (c["top1"] < min_agreement)
    if over:
        info["over_bound"] = "; ".join(over)
        target = max(TARGET_SQNR[q.quant["precision"]], min_sqnr)   # --advise's default, or the bound if higher
        info["advice"] = advise(fp32, q, inputs, expected, labels, target,
                                min_agreement if c["top1"] < min_agreement else None).lines()
    return not over


def verify_build(report, spec, module, fp32, q, samples=8, run_engine=None, min_sqnr=None, min_agreement=None):
    """The checks of a quantized build: the TensorRT network (interpreter) against the quantized graph's
    fake-quantized reference, and the cost against the fp32 model (`module`, else fp32's reference executor)
    within its bound (`bound`: the report's quant says so where it is not)."""
    inputs, labels = held_out(spec, fp32, samples)
    check = check_graph(q, inputs, None, report.tol, q.quant["fp16"])
    for o in q.outputs:
        report.checks.append((f"quantized TensorRT network output {o.name} (trtnet.check interpreter) vs its "
                              f"fake-quantized PyTorch reference", dict(check.final[o.name], first_bad=check.first_bad)))
    expected = _fp32_outputs(spec, module, fp32, inputs)
    out = fp32.outputs[0].name
    report.quant["cost"]["TensorRT network"] = cost(check.values[out], expected[out], labels)
    if run_engine is not None:
        report.quant["cost"]["engine"] = cost(run_engine(inputs)[out], expected[out], labels)
    bound(report.quant, fp32, q, inputs, expected, labels, min_sqnr, min_agreement)
    return report


def check_quantized(graph, precision, spec=None, module=None, inputs=None, tol=None, fp16=False, samples=8,
                    calib=None, calib_method="auto", calib_samples=512, calib_cache=None, keep=(), min_sqnr=None,
                    min_agreement=None):
    """trtnet.check of the quantized graph: its TensorRT network (interpreter) against its fake-quantized
    reference on `inputs` (default: held-out samples), and the cost against the fp32 `module` (else the fp32
    graph's reference executor) within its bound."""
    q = for_model(graph, precision, spec, calib, calib_method, calib_samples, calib_cache, keep)
    labels = None
    if inputs is None:
        inputs, labels = held_out(spec, graph, samples)
    return _check(graph, q, spec, module, inputs, labels, tol, fp16, calib_cache, min_sqnr, min_agreement)


def _check(graph, q, spec, module, inputs, labels, tol, fp16, cache, min_sqnr, min_agreement, expected=None):
    fp16 = fp16 or q.quant["fp16"]
    report = check_graph(q, inputs, None, tol or (FP16_TOL if fp16 else QUANT_TOL), fp16)
    what = f" ({q.quant['precision']}) vs its fake-quantized PyTorch reference"
    report.title = report.title.replace(" vs PyTorch", what)
    expected = expected if expected is not None else _fp32_outputs(spec, module, graph, inputs)
    out = graph.outputs[0].name
    report.quant = report_info(graph, q, cache, q.quant["keep"])
    report.quant["cost"]["TensorRT network"] = cost(report.values[out], expected[out], labels)
    _fp32_errors(report, graph, inputs)
    bound(report.quant, graph, q, inputs, expected, labels, min_sqnr, min_agreement)
    return report


def _fp32_errors(report, graph, inputs):
    """Each row's error against the fp32 graph's tensor of the same name and shape (a folded BatchNorm's
    convolution is named after it): the quantization error along the depth."""
    from ..reference import run_reference
    ref = run_reference(graph, inputs, outputs="all")
    for row in report.rows:
        got, want = report.values.get(row.name), ref.get(row.name)
        if got is not None and want is not None and np.shape(got) == np.shape(want):
            row.fp32 = compare(got, want)["rel"]


def advise_quantized(graph, precision, spec=None, module=None, target_sqnr=None, target_agreement=None, tol=None,
                     fp16=False, samples=8, calib=None, calib_method="auto", calib_samples=512, calib_cache=None,
                     keep=(), min_sqnr=None, min_agreement=None):
    """trtnet.check --advise with a quantization mode: [the Advice (costliest layers, the --keep that meets the
    target), the check of the quantized graph with that --keep added], both on the held-out samples."""
    q = for_model(graph, precision, spec, calib, calib_method, calib_samples, calib_cache, keep)
    inputs, labels = held_out(spec, graph, samples)
    expected = _fp32_outputs(spec, module, graph, inputs)
    a = advise(graph, q, inputs, expected, labels, target_sqnr, target_agreement)
    kept = requantize(graph, precision, list(q.quant["keep"]) + [pattern(k) for k in a.keep], q.quant["ranges"])
    kept.quant["calibration"] = q.quant["calibration"]
    return [a, _check(graph, kept, spec, module, inputs, labels, tol, fp16, calib_cache, min_sqnr, min_agreement,
                      expected)]
