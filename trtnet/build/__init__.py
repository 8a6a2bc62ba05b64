"""`trtnet.build`: a zoo model (or a recorded Graph) -> serialized engine, then an honest comparison with PyTorch."""
import os
from dataclasses import dataclass, field

import numpy as np

from ..graph import Graph
from ..shape import fmt_shape
from ..harness import check_shapes, load_model, run_module, torch_reference

@dataclass
class BuildReport:
    model: str
    weights: str
    engine: object            # EngineInfo
    unused: list
    executed: bool
    reason: str               # why the engine itself was not executed ("" when it was)
    tol: float = 1e-4         # relative error allowed in each check
    checks: list = field(default_factory=list)   # (what was compared, metrics dict)
    accuracy: dict = field(default_factory=dict)
    quant: dict = None        # a quantized build: precision per layer count, calibration, accuracy cost

    @property
    def ok(self):
        return all(m["rel"] <= self.tol for _, m in self.checks)

    def summary(self):
        e = self.engine
        how = "served from the engine cache" if e.cached else "built"
        lines = [f"{how} {self.model} ({e.precision}) with {e.flavour}: {e.layers} TensorRT layers in {e.seconds:.1f} s",
                 f"  engine   {e.path} ({e.size / 2**20:.1f} MiB)",
                 f"  weights  {self.weights}" + (f" ({len(self.unused)} tensors unused: "
                                                 f"{', '.join(self.unused[:5])}{'...' if len(self.unused) > 5 else ''})"
                                                 if self.unused else "")]
        lines += [f"  input    {k} {fmt_shape(s)}" for k, s in e.inputs.items()]
        lines += [f"  output   {k} {fmt_shape(s)}" for k, s in e.outputs.items()]
        for i, p in enumerate(e.profiles):
            dims = ", ".join(f"{k} {lo}/{opt}/{hi}" for k, (lo, opt, hi) in p.items())
            lines.append(f"  profile  {i}: {dims or 'static shapes'} (min/opt/max)")
        if not self.executed and self.reason:
            lines.append(f"  NOTE: the engine itself was not executed: {self.reason}.")
        for what, m in self.checks:
            top1 = "" if m.get("top1") is None else f", top-1 agreement {m['top1'] * 100:.1f}%"
            bad = f"; first layer over tolerance: '{m['first_bad']}'" if m.get("first_bad") else ""
            lines.append(f"  check    {what}: max abs error {m['max_abs']:.3g}, relative error {m['rel']:.3g}{top1}{bad}")
        for what, acc in self.accuracy.items():
            lines.append(f"  accuracy {what}: {acc * 100:.2f}% on the held-out set")
        if self.quant:
            from ..quantize import describe
            lines += describe(self.quant)
        return "\n".join(lines)


def build(model, weights=None, output=None, profiles=None, device=0, verify=True, progress=True,
          workspace_mb=None, samples=8, tf32=False, fp16=False, show_graph=False, reference=None, engine_cache=None,
          timing_cache=None, refittable=False, strip_weights=False, quantize=None, calib=None, calib_method="entropy",
          calib_samples=512, calib_cache=None, keep=()):
    """Build `model` (a zoo name, a model file `path.py[:name]`, or a recorded Graph) into an engine file and
    compare it with PyTorch at the profile's minimum and maximum shapes.

    A zoo model or model file is compared with its registered PyTorch module, a Graph with `reference` (an
    nn.Module taking the graph's inputs in order) or else its own PyTorch reference executor. Where the engine
    cannot execute, the TensorRT network is run by trtnet.check's interpreter instead. `engine_cache` (a directory)
    serves an unchanged build from a plan built before; `timing_cache` is TensorRT's timing cache file.

    `quantize` ("int8", "fp8", "int8-weights", "int4-weights") builds the network trtnet.quantize makes,
    calibrated (`calib_method` on `calib_samples`) on `calib` or the model's own data, ranges kept in
    `calib_cache`, layers matching `keep` left unquantized; it is verified against its fake-quantized PyTorch
    reference (1e-5, fp16 modes 1e-2) and its cost measured against the fp32 model on held-out samples."""
    from ..check.report import DEFAULT_TOL, FP16_TOL, check_graph
    from ..engine import build_engine, compare, execution_unavailable, profiles_for, run_engine, write_atomic
    if isinstance(model, Graph):
        spec, w, graph = None, None, model
    else:
        spec, w, graph = load_model(model, weights)
    fp32_graph, quant = graph, None
    if quantize:
        from ..quantize import QUANT_TOL, for_model, report_info
        graph = for_model(graph, quantize, spec, calib, calib_method, calib_samples, calib_cache, keep, progress)
        quant, fp16 = report_info(fp32_graph, graph, calib_cache, keep), fp16 or graph.quant["fp16"]
    if show_graph:
        print(graph)
    profiles = profiles_for(graph, profiles)
    from ..cache import EngineCache
    plan, info = build_engine(graph, profiles, workspace_mb, progress, tf32, fp16, refittable, strip_weights,
                              timing_cache, EngineCache(engine_cache) if engine_cache else None)
    info.path = output or os.path.join("engines", f"{graph.name if spec is None else spec.name}.engine")
    write_atomic(info.path, plan)
    report = BuildReport(graph.name, w.source if w else "(in the graph)", info, w.unused() if w else [], False, "",
                         FP16_TOL if fp16 else QUANT_TOL if quant else DEFAULT_TOL, quant=quant)
    if quant:
        info.precision = quantize + (", fp16" if fp16 else "")
    if not verify:
        return report
    from ..reference import run_reference  # loads torch: only verification needs it
    reason = execution_unavailable(device)
    report.executed, report.reason = reason is None, reason or ""
    plan = plan if report.executed else None  # written: only running it needs it here
    module = reference if spec is None else torch_reference(spec, w)
    if quant:
        from ..quantize import verify_build
        return verify_build(report, spec, module, fp32_graph, graph, samples,
                            (lambda x: run_engine(plan, x, device)) if report.executed else None)
    against = "PyTorch" if module is not None else "PyTorch reference executor"
    data = spec is not None and spec.dataset is not None
    for env in ([None] if data else check_shapes(graph, profiles, samples)):
        if env is None:
            x, labels = spec.dataset()
            inputs = {graph.inputs[0].name: x}
        else:
            labels = None
            inputs = spec.make_inputs(graph, env) if spec is not None else _random_inputs(graph, env)
        at = "" if env is None else " at " + ", ".join(f"{k}={v}" for k, v in env.items())
        # every node's value where the interpreter's per-layer comparison reuses them
        recorded = run_reference(graph, inputs, outputs="marked" if report.executed else "all")
        expected = recorded if module is None else run_module(module, graph, inputs, spec.output if spec else None)
        if report.executed:
            got = run_engine(plan, inputs, device)
            for o in graph.outputs:
                report.checks.append((f"engine output {o.name}{at} on GPU {device} vs {against}",
                                      compare(got[o.name], expected[o.name])))
        else:  # what TensorRT holds, run layer by layer on the CPU
            check = check_graph(graph, inputs, expected, report.tol, fp16, references=recorded)
            got = {o.name: check.values[o.name] for o in graph.outputs}
            for o in graph.outputs:
                report.checks.append((f"TensorRT network output {o.name}{at} (trtnet.check interpreter) vs {against}",
                                      dict(check.final[o.name], first_bad=check.first_bad)))
        if module is not None:
            for o in graph.outputs:
                report.checks.append((f"recorded graph output {o.name}{at} (PyTorch reference executor) vs PyTorch",
                                      compare(recorded[o.name], expected[o.name])))
        if labels is not None:
            out = graph.outputs[0].name
            report.accuracy["PyTorch"] = float((expected[out].argmax(1) == labels).mean())
            report.accuracy["engine" if report.executed else "TensorRT network"] = float(
                (got[out].argmax(1) == labels).mean())
        recorded = expected = check = got = None  # every tensor of this shape goes before the next shape's come
    return report


def _random_inputs(graph, env):
    from ..zoo import random_inputs
    return random_inputs(graph, env, np.random.default_rng(0))
