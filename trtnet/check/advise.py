"""Which layers an fp16 (or bf16) network should keep in fp32 for its outputs to pass: layers whose fp32 values
exceed the half type's range first, then, one at a time, the first layer over tolerance (or the one whose error
grows most over its inputs', or that underflows most), each step re-checked on the half network with the set so
far; the set is then pruned of layers it passes without. bfloat16 has float32's range, so its advice rests on
error growth alone."""
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np

from .report import FP16_TOL, check_graph

FINFO = {"fp16": ml_dtypes.finfo(np.float16), "bf16": ml_dtypes.finfo(ml_dtypes.bfloat16)}   # max, smallest_normal


@dataclass
class Advice:
    keep: list                                   # layer names to keep in fp32, in network order
    reports: list                                # the half network's CheckReports with `keep` in fp32
    steps: list = field(default_factory=list)    # (layer, "+" added or "-" dropped, why)
    half: str = "fp16"

    @property
    def ok(self):
        return all(r.ok for r in self.reports)

    @property
    def flag(self):
        return "--keep-fp32 " + ",".join(self.keep) if self.keep else ""

    def lines(self):
        out = [f"  {sign} {name}: {why}" for name, sign, why in self.steps]
        verdict = "passes" if self.ok else "still fails"
        if not self.keep:
            return out + [f"advice: the {self.half} network {verdict} with no layer kept in fp32"]
        return out + [f"advice: {self.flag}  (the {self.half} network {verdict} with these {len(self.keep)} layers "
                      "in fp32)"]


def advise(graph, cases, tol=FP16_TOL, progress=None, half="fp16"):
    """Advice for `graph` in `half` ("fp16" or "bf16") checked on `cases`, [(inputs, expected outputs)]."""
    from ..reference import run_reference
    refs = [run_reference(graph, x, outputs="all") for x, _ in cases]
    order = [n.name for n in graph.nodes if n.op != "input"]

    def check(keep):
        chosen = [n for n in order if n in keep]
        return [check_graph(graph, x, e, tol, half, r, progress, keep_fp32=chosen) for (x, e), r in zip(cases, refs)]

    keep, steps = set(), []
    for name, why in _overflowing(order, refs, half):
        keep.add(name)
        steps.append((name, "+", why))
    reports = check(keep)
    while not all(r.ok for r in reports):
        name, why = _next(graph, reports, refs, keep, half)
        if name is None:
            break
        keep.add(name)
        steps.append((name, "+", why))
        reports = check(keep)
    if all(r.ok for r in reports):
        for name in [n for n, sign, why in reversed(steps) if not why.startswith("overflow")]:
            trial = check(keep - {name})
            if all(r.ok for r in trial):
                keep.discard(name)
                reports = trial
                steps.append((name, "-", "passes without it"))
    return Advice([n for n in order if n in keep], reports, steps, half)


def _overflowing(order, refs, half):
    """Layers whose fp32 values exceed the half type's largest finite value: they cannot pass in it."""
    top_finite = float(FINFO[half].max)
    for name in order:
        top = max((float(np.abs(r[name]).max()) for r in refs
                   if name in r and np.asarray(r[name]).dtype.kind == "f" and np.size(r[name])), default=0.0)
        if top > top_finite:
            yield name, f"overflow: fp32 values reach {top:.3g} > {top_finite:g}"


def _node(nodes, tensor):
    """The graph layer a TensorRT tensor belongs to (helper tensors are named `layer/what`)."""
    while tensor not in nodes and "/" in tensor:
        tensor = tensor.rsplit("/", 1)[0]
    return tensor if tensor in nodes else None


def _next(graph, reports, refs, keep, half):
    """(layer, why) to keep next: the first layer over tolerance, else the worst error growth or underflow."""
    nodes = {n.name: n for n in graph.nodes}
    for r in reports:
        name = _node(nodes, r.first_bad) if r.first_bad else None
        if name and name not in keep and nodes[name].op != "input":
            row = next(x for x in r.rows if x.name == r.first_bad)
            return name, f"first layer over tolerance (relative error {row.rel:.3g})"
    best, why, score = None, None, 0.0
    for r, ref in zip(reports, refs):
        rel = {x.name: x.rel for x in r.rows if x.rel is not None}
        for n in graph.nodes:
            if n.op == "input" or n.name in keep or n.name not in rel:
                continue
            before = max([rel.get(i.name, 0.0) for i in n.inputs] + [1e-7])
            growth, under = rel[n.name] / before, _underflow(ref.get(n.name), half)
            s = max(growth, under * 1e3)
            if s > score:
                best, score = n.name, s
                why = (f"error grows {growth:.3g}x over its inputs'" if growth >= under * 1e3 else
                       f"underflow: {under:.1%} of its values below {half}'s smallest normal")
    return best, why


def _underflow(values, half):
    """The fraction of a layer's nonzero fp32 values under the half type's smallest normal magnitude."""
    if values is None or np.asarray(values).dtype.kind != "f" or not np.size(values):
        return 0.0
    v = np.abs(np.asarray(values, np.float32))
    return float(((v > 0) & (v < float(FINFO[half].smallest_normal))).mean())
