"""`trtnet.build`: a zoo model, a model file or a recorded Graph -> serialized engine, compared with PyTorch.

The build is a composition of plain steps (load, quantize, compile, verify, write), each announcing its phases
through `trtnet.events`; `build()` runs them in order, and the command line composes the same steps."""
import os
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from .. import zoo
from ..check.report import half_tol, check_graph
from ..compare import compare, sorted_rows, unordered_rows
from ..engine import build_engine, create_network, profiles_for
from ..files import write_atomic
from ..runtime import Engine, execution_unavailable, refit_from_network, run_engine
from ..events import Events
from ..graph import Graph
from ..check.module import float64_outputs, rounding, rounding_note, run_captured
from ..harness import check_shapes, load_model, torch_reference
from ..shape import fmt_shape
from .. import quantize as quant_mod


@dataclass
class BuildOptions:
    """How to build and verify an engine (the command line's options, as values)."""
    output: Optional[str] = None        # engine file; default engines/MODEL.engine (MODEL.int8.engine, ... quantized)
    profiles: Optional[list] = None     # [{dim: (min, opt, max)}], or a batch range; default the graph's ranges
    device: int = 0
    verify: bool = True
    keep_failed: bool = False           # an engine that fails verification is kept as ENGINE.failed.engine
    progress: bool = True               # TensorRT's progress monitor
    workspace_mb: Optional[int] = None
    samples: int = 8                    # the largest batch verified
    tf32: bool = False
    fp16: bool = False
    bf16: bool = False                  # bfloat16 weights and math (fp32's range, 8 bits of mantissa)
    show_graph: bool = False
    engine_cache: Optional[str] = None  # a directory of plans of identical networks and settings
    timing_cache: Optional[str] = None
    refittable: bool = False
    strip_weights: bool = False
    quantize: Optional[str] = None      # "int8", "fp8", "int8-weights", "int4-weights"
    calib: object = None
    calib_method: str = "auto"
    calib_samples: int = 512
    calib_cache: Optional[str] = None
    keep: tuple = ()
    min_sqnr: Optional[float] = None       # a quantized build's bound on its cost (default per precision)
    min_agreement: Optional[float] = None
    keep_fp32: tuple = ()               # fnmatch patterns of layers an fp16 or bf16 build keeps in fp32
    debug_tensors: tuple = ()           # fnmatch patterns of layers whose outputs become TensorRT debug tensors

    @property
    def half(self):
        """The half precision asked for: "bf16", "fp16" or None."""
        return "bf16" if self.bf16 else "fp16" if self.fp16 else None

    def engine_path(self, name):
        if self.output:
            return self.output
        return os.path.join("engines", f"{name}.{self.quantize}.engine" if self.quantize else f"{name}.engine")


def failed_path(path):
    """Where --keep-failed puts an engine that failed verification: a name that says so."""
    stem, ext = os.path.splitext(path)
    return f"{stem}.failed{ext or '.engine'}"


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
        return all(m["rel"] <= self.tol and not m.get("first_bad_module") or "rounding" in m for _, m in self.checks) \
            and not (self.quant or {}).get("over_bound")

    def summary(self):
        """What was built, where it went, and each check."""
        e = self.engine
        how = "served from the engine cache" if e.cached else "built"
        lines = [f"{how} {self.model} ({e.precision}) with {e.flavour}: {e.layers} TensorRT layers in {e.seconds:.1f} s",
                 f"  engine   {e.path} ({e.size / 2**20:.1f} MiB)" if e.path else
                 f"  engine   not written: the comparison with PyTorch failed (--keep-failed keeps it)",
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
            if m.get("first_bad_module"):
                bad += f"; first layer over tolerance against the module: '{m['first_bad_module']}'"
            if m.get("rounding") and (bad or m["rel"] > self.tol):
                bad = f" ({m['rounding']})"
            lines.append(f"  check    {what}: max abs error {m['max_abs']:.3g}, relative error {m['rel']:.3g}{top1}{bad}")
        for what, acc in self.accuracy.items():
            lines.append(f"  accuracy {what}: {acc * 100:.2f}% on the held-out set")
        if self.quant:
            lines += self.quant.lines()
        return "\n".join(lines)


@dataclass
class Built:
    """A compiled engine and what it was compiled from."""
    graph: Graph              # the graph built (quantized where asked)
    fp32_graph: Graph         # the graph as recorded
    plan: bytes
    info: object              # engine.EngineInfo: IO, profiles, layers, seconds
    quant: Optional[dict] = None
    half: Optional[str] = None   # "fp16" or "bf16": asked for, or what the quantization mode computes in


def load(model, weights=None, events=None):
    """(Model or None, WeightMap or None, Graph): a zoo name or model file loaded and recorded, or a Graph."""
    if isinstance(model, Graph):
        return None, None, model
    return load_model(model, weights, events=events)


def compile_graph(graph, spec=None, options=None, events=None):
    """Quantize (where asked) and build `graph` into a plan; nothing is written."""
    o, events = options or BuildOptions(), events or Events()
    fp32_graph, quant, half = graph, None, o.half
    if o.quantize:
        with events.phase("quantize"):
            graph = quant_mod.for_model(graph, o.quantize, spec, o.calib, o.calib_method, o.calib_samples,
                                        o.calib_cache, o.keep, o.progress)
        quant = quant_mod.report_info(fp32_graph, graph, o.calib_cache, o.keep)
        half = half or ("fp16" if graph.quant["fp16"] else None)
    if o.show_graph:
        print(graph)
    from ..cache import EngineCache
    plan, info = build_engine(graph, profiles_for(graph, o.profiles), o.workspace_mb, o.progress, o.tf32, half,
                              o.refittable, o.strip_weights, o.timing_cache,
                              EngineCache(o.engine_cache) if o.engine_cache else None, events=events,
                              keep_fp32=o.keep_fp32 if half else (), debug=o.debug_tensors)
    if quant:
        info.precision = o.quantize + (f", {half}" if half else "")
    return Built(graph, fp32_graph, plan, info, quant, half)


def new_report(built, spec=None, w=None, options=None):
    o = options or BuildOptions()
    tol = half_tol(built.half) if built.half or not built.quant else quant_mod.QUANT_TOL
    name = built.graph.name if spec is None else spec.name
    built.info.path = o.engine_path(name)
    return BuildReport(built.fp32_graph.name, w.source if w else "(in the graph)", built.info,
                       w.unused() if w else [], False, "", tol, quant=built.quant)


def verify(report, built, spec=None, w=None, reference=None, options=None, events=None):
    """Compare the engine (where it can execute, else the TensorRT network run by the interpreter) with PyTorch
    at each profile's minimum and maximum shapes, or on the model's held-out data; fills `report.checks`."""
    o, events = options or BuildOptions(), events or Events()
    reason = execution_unavailable(o.device)
    report.executed, report.reason = reason is None, reason or ""
    engine = Engine(built.plan, o.device) if report.executed else None
    if engine is not None and o.strip_weights:   # no weights in the plan until refitted from its network
        made = create_network(built.graph, built.half)
        refit_from_network(engine, made[1])       # (builder, network, emission): the weights stay alive
    run = (lambda x: run_engine(engine, x)) if engine is not None else None
    with events.phase("PyTorch module"):
        module = reference if spec is None else torch_reference(spec, w)
    if built.quant:
        return quant_mod.verify_build(report, spec, module, built.fp32_graph, built.graph, o.samples, run,
                                      o.min_sqnr, o.min_agreement)
    data = spec is not None and spec.dataset is not None
    envs = [None] if data else check_shapes(built.graph, built.info.profiles, o.samples)
    for env in envs:
        _verify_at(report, built.graph, spec, module, env, run, o, events)
    return report


def _verify_at(report, graph, spec, module, env, run, o, events):
    """One shape's checks. The reference executor runs only where it is the reference (no module) or where a
    mismatch needs localising: it doubles the time and the memory of a passing verification."""
    if env is None:
        x, labels = spec.dataset()
        inputs, at = {graph.inputs[0].name: x}, ""
    else:
        inputs = spec.make_inputs(graph, env) if spec is not None else zoo.random_inputs(graph, env, np.random.default_rng(0))
        labels, at = None, " at " + ", ".join(f"{k}={v}" for k, v in env.items())
    against = "PyTorch" if module is not None else "PyTorch reference executor"
    captured = None   # the module's submodule outputs, compared with the interpreter's layers of the same name
    if module is None:
        with events.phase("reference executor"):
            expected = recorded = _reference(graph, inputs, run)
    else:
        with events.phase("PyTorch run"):
            expected, captured = run_captured(module, graph, inputs, spec.output if spec else None,
                                              events.step(), capture_layers=run is None)
        recorded = None
    if run is not None:
        got = run(inputs)
        rows = unordered_rows(graph)   # an NMS layer's rows: TensorRT documents no order, compared as sets
        checks = [(f"engine output {out.name}{at} on GPU {o.device} vs {against}",
                   compare(*(sorted_rows(v[out.name]) if out.name in rows else v[out.name] for v in (got, expected))))
                  for out in graph.outputs]
    else:
        got, checks = _interpret(report, graph, inputs, expected, recorded, at, against, events, captured, o.half)
    if recorded is None and not all(m["rel"] <= report.tol for _, m in checks):
        with events.phase("reference executor"):   # where the mistake is: the graph or its emission
            recorded = _reference(graph, inputs, None)
        if run is None:
            if captured is not None:   # the first comparison consumed them
                with events.phase("PyTorch run"):
                    expected, captured = run_captured(module, graph, inputs, spec.output if spec else None,
                                                      events.step())
            got, checks = _interpret(report, graph, inputs, expected, recorded, at, against, events, captured, o.half)
        checks += [(f"recorded graph output {out.name}{at} (PyTorch reference executor) vs PyTorch",
                    compare(recorded[out.name], expected[out.name])) for out in graph.outputs]
        if module is not None and not o.half and report.quant is None and \
                all(m.get("added_up", True) for _, m in checks if m["rel"] > report.tol):
            _within_rounding(checks, graph, module, inputs, expected, (got, recorded), spec, report.tol, events)
    report.checks += checks
    if labels is not None:
        out = graph.outputs[0].name
        report.accuracy["PyTorch"] = float((expected[out].argmax(1) == labels).mean())
        report.accuracy["engine" if report.executed else "TensorRT network"] = float((got[out].argmax(1) == labels).mean())


def _within_rounding(checks, graph, module, inputs, expected, sources, spec, tol, events):
    """Marks the checks over `tol` whose outputs (`sources`: the engine's or network's, then the recorded graph's,
    each checked per graph output in order) are within PyTorch's own fp32 rounding of the module run in float64
    (module.rounding): for the interpreter's network, where every layer is within `tol` on its own inputs; an
    executed engine, whose layers are not seen, is held to the same floor without that guard."""
    with events.phase("PyTorch run in float64"):   # is the error fp32 rounding PyTorch makes too?
        exact = float64_outputs(module, graph, inputs, spec.output if spec else None)
    n = len(graph.outputs)
    for i, values in enumerate(sources):
        mine = list(zip(graph.outputs, (m for _, m in checks[i * n:(i + 1) * n])))
        drift = rounding(exact, expected, values, tol, [out.name for out, m in mine if m["rel"] > tol])
        for out, m in mine if drift else ():
            m["rounding"] = rounding_note({out.name: drift[out.name]}) if out.name in drift else ""


def _reference(graph, inputs, run):
    from ..reference import run_reference  # loads torch: only verification needs it
    return run_reference(graph, inputs, outputs="marked" if run is not None else "all")


def _interpret(report, graph, inputs, expected, recorded, at, against, events, captured, half):
    """The TensorRT network as TensorRT holds it, run layer by layer on the CPU; layers compared with the
    reference executor's values where given, and with `captured` (consumed) as they are computed."""
    with events.phase("TensorRT network (interpreter)"):
        check = check_graph(graph, inputs, expected, report.tol, half,
                            references=recorded if recorded is not None else {}, progress=events.step(),
                            module_values=captured, keep_fp32=report.engine.keep_fp32, stream=True)
    got = {o.name: check.values[o.name] for o in graph.outputs}
    return got, [(f"TensorRT network output {o.name}{at} (trtnet.check interpreter) vs {against}",
                  dict(check.final[o.name], first_bad=check.first_bad, first_bad_module=check.first_bad_module,
                       added_up=check.added_up))
                 for o in graph.outputs]


def write(report, built, options=None, events=None):
    """Write the engine where verification passed (or was skipped); a failed one only with keep_failed, under
    a name that says so. Returns the path written, or None."""
    o, events = options or BuildOptions(), events or Events()
    path = report.engine.path
    if not report.ok:
        if not o.keep_failed:
            report.engine.path = None
            return None
        path = report.engine.path = failed_path(path)
    with events.phase("write"):
        write_atomic(path, built.plan)
    return path


def build(model, weights=None, output=None, *, options=None, events=None, reference=None, **kw):
    """Build `model` (a zoo name, a model file `path.py[:name]`, or a recorded Graph) into an engine file,
    verified against PyTorch at the profile's minimum and maximum shapes; returns a BuildReport.

    Options are a BuildOptions or its fields as keywords (`profiles=`, `fp16=`, `quantize="int8"`, ...). A zoo
    model or model file is compared with its registered PyTorch module, a Graph with `reference` (an nn.Module
    taking the graph's inputs in order) or else its own PyTorch reference executor. Where the engine cannot
    execute, the TensorRT network is run by trtnet.check's interpreter instead. An engine that fails
    verification is not written (see BuildOptions.keep_failed)."""
    o = replace(options or BuildOptions(), **kw, **({"output": output} if output else {}))
    spec, w, graph = load(model, weights, events)
    built = compile_graph(graph, spec, o, events)
    report = new_report(built, spec, w, o)
    if o.verify:
        verify(report, built, spec, w, reference, o, events)
    write(report, built, o, events)
    return report
