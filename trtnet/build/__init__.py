"""`trtnet.build`: a zoo model (or a recorded Graph) -> serialized engine, then an honest comparison with PyTorch."""
import os
from dataclasses import dataclass, field

import numpy as np

from ..check.report import DEFAULT_TOL, FP16_TOL, check_graph
from ..engine import EngineInfo, build_engine, compare, execution_unavailable, run_engine, write_atomic
from ..graph import Graph, fmt_shape
from ..reference import run_reference
from ..weights import WeightFileError, load_weights

WEIGHT_SUFFIXES = (".wts", ".safetensors", ".pth", ".pt")


def find_weights(name, weights=None, directory="weights"):
    if weights:
        return weights
    tried = [os.path.join(directory, name + s) for s in WEIGHT_SUFFIXES]
    for p in tried:
        if os.path.exists(p):
            return p
    raise WeightFileError(f"no weights for '{name}': looked for {', '.join(tried)}; "
                          f"write them with `python scripts/export_wts.py {name}` or pass --weights PATH")


def load_model(name, weights=None, shape=None):
    """(zoo spec, WeightMap, recorded graph) for a zoo model name."""
    import zoo
    spec = zoo.get(name)
    w = load_weights(find_weights(name, weights))
    return spec, w, spec.graph(w, shape)


def load_state(module, w):
    """Copy WeightMap `w` into `module` (shapes from the module: .wts stores none)."""
    import torch
    state = module.state_dict()  # keeps `_metadata`, which some modules' loaders check (MNASNet)
    for k, v in state.items():
        arr = np.asarray(w[k])
        if arr.size != v.numel():
            raise WeightFileError(f"{w.source}: tensor '{k}' has {arr.size} values, the PyTorch model expects "
                                  f"{tuple(v.shape)} ({v.numel()} values)")
        state[k] = torch.from_numpy(arr.reshape(tuple(v.shape))).to(v.dtype)
    module.load_state_dict(state)
    return module


def torch_reference(spec, w):
    """The zoo's PyTorch module holding the same weights."""
    return load_state(spec.torch_module(), w).eval()


def run_torch(module, x, output=None):
    """The module's output as numpy; `output` picks an entry where it returns a dict (segmentation's 'out')."""
    import torch
    with torch.no_grad():
        y = module(torch.from_numpy(x))
    return (y[output] if isinstance(y, dict) else y).numpy()


@dataclass
class BuildReport:
    model: str
    weights: str
    engine: EngineInfo
    unused: list
    executed: bool
    reason: str               # why the engine itself was not executed ("" when it was)
    tol: float = 1e-4         # relative error allowed in each check
    checks: list = field(default_factory=list)   # (what was compared, metrics dict)
    accuracy: dict = field(default_factory=dict)

    @property
    def ok(self):
        return all(m["rel"] <= self.tol for _, m in self.checks)

    def summary(self):
        e = self.engine
        lines = [f"built {self.model} ({e.precision}) with {e.flavour}: {e.layers} TensorRT layers in {e.seconds:.1f} s",
                 f"  engine   {e.path} ({e.size / 2**20:.1f} MiB)",
                 f"  weights  {self.weights}" + (f" ({len(self.unused)} tensors unused: "
                                                 f"{', '.join(self.unused[:5])}{'...' if len(self.unused) > 5 else ''})"
                                                 if self.unused else "")]
        lines += [f"  input    {k} {fmt_shape(s)}" for k, s in e.inputs.items()]
        lines += [f"  output   {k} {fmt_shape(s)}" for k, s in e.outputs.items()]
        lines.append(f"  profile  batch min {e.profile[0]} / opt {e.profile[1]} / max {e.profile[2]}")
        if not self.executed and self.reason:
            lines.append(f"  NOTE: the engine itself was not executed: {self.reason}.")
        for what, m in self.checks:
            top1 = "" if m["top1"] is None else f", top-1 agreement {m['top1'] * 100:.1f}%"
            bad = f"; first layer over tolerance: '{m['first_bad']}'" if m.get("first_bad") else ""
            lines.append(f"  check    {what}: max abs error {m['max_abs']:.3g}, relative error {m['rel']:.3g}{top1}{bad}")
        for what, acc in self.accuracy.items():
            lines.append(f"  accuracy {what}: {acc * 100:.2f}% on the held-out set")
        return "\n".join(lines)


def build(model, weights=None, output=None, batch=(1, 8, 32), device=0, verify=True, progress=True,
          workspace_mb=None, samples=8, tf32=False, fp16=False, show_graph=False):
    """Build `model` (a zoo name, or a recorded Graph) into an engine file and compare it with PyTorch.

    A zoo model is compared with its PyTorch module; a Graph with its own PyTorch reference executor. Where
    the engine cannot execute, the TensorRT network is run by trtnet.check's interpreter instead."""
    if isinstance(model, Graph):
        spec, w, graph = None, None, model
    else:
        spec, w, graph = load_model(model, weights)
    if show_graph:
        print(graph)
    plan, info = build_engine(graph, batch, workspace_mb, progress, tf32, fp16)
    info.path = output or os.path.join("engines", f"{graph.name if spec is None else model}.engine")
    write_atomic(info.path, plan)
    report = BuildReport(graph.name, w.source if w else "(in the graph)", info, w.unused() if w else [], False, "",
                         FP16_TOL if fp16 else DEFAULT_TOL)
    if not verify:
        return report
    reason = execution_unavailable(device)
    report.executed, report.reason = reason is None, reason or ""
    labels = None
    if spec is None:
        x = np.random.default_rng(0).standard_normal((samples, *graph.inputs[0].shape[1:]), dtype=np.float32)
    elif spec.dataset is not None:
        x, labels = spec.dataset()
    else:
        x = spec.sample_inputs(samples)
    name, out = graph.inputs[0].name, graph.outputs[0].name
    recorded = run_reference(graph, {name: x})[out]
    against = "PyTorch reference executor" if spec is None else "PyTorch"
    expected = recorded if spec is None else run_torch(torch_reference(spec, w), x, out)
    if report.executed:
        got = run_engine(plan, {name: x}, device, max_batch=batch[2])[out]
        report.checks.append((f"TensorRT engine on GPU {device} vs {against}", compare(got, expected)))
    else:  # what TensorRT holds, run layer by layer on the CPU
        check = check_graph(graph, {name: x}, {out: expected}, report.tol, fp16)
        got = check.values[out]
        report.checks.append((f"TensorRT network (trtnet.check interpreter) vs {against}",
                              dict(check.final[out], first_bad=check.first_bad)))
    if spec is not None:
        report.checks.append(("recorded graph (PyTorch reference executor) vs PyTorch", compare(recorded, expected)))
    if labels is not None:
        report.accuracy["PyTorch"] = float((expected.argmax(1) == labels).mean())
        report.accuracy["engine" if report.executed else "TensorRT network"] = float((got.argmax(1) == labels).mean())
    return report
