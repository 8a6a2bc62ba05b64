"""`trtnet.build`: zoo model + weights -> serialized engine, then an honest comparison with PyTorch."""
import os
from dataclasses import dataclass, field

import numpy as np

from ..engine import EngineInfo, build_engine, compare, execution_unavailable, run_engine, write_atomic
from ..graph import fmt_shape
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
    checks: list = field(default_factory=list)   # (what was compared, metrics dict)
    accuracy: dict = field(default_factory=dict)

    @property
    def ok(self):
        from ..check.report import DEFAULT_TOL
        return all(m["rel"] <= DEFAULT_TOL for _, m in self.checks)

    def summary(self):
        e = self.engine
        lines = [f"built {self.model} with {e.flavour}: {e.layers} TensorRT layers in {e.seconds:.1f} s",
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
          workspace_mb=None, samples=8, tf32=False):
    """Build zoo `model` into an engine file and compare it (or, without a GPU, its graph) with PyTorch."""
    spec, w, graph = load_model(model, weights)
    unused = w.unused()
    plan, info = build_engine(graph, batch, workspace_mb, progress, tf32)
    info.path = output or os.path.join("engines", f"{model}.engine")
    write_atomic(info.path, plan)
    reason = execution_unavailable(device)
    if not verify:
        return BuildReport(model, w.source, info, unused, False, "")
    report = BuildReport(model, w.source, info, unused, reason is None, reason or "")
    x = spec.sample_inputs(samples)
    if spec.dataset is not None:
        x, labels = spec.dataset()
    module = torch_reference(spec, w)
    out = graph.outputs[0].name
    expected = run_torch(module, x, out)
    if report.executed:
        got = np.concatenate([run_engine(plan, {graph.inputs[0].name: x[i:i + batch[2]]}, device)[out]
                              for i in range(0, len(x), batch[2])])
        what = f"TensorRT engine on GPU {device} vs PyTorch"
    else:  # what TensorRT holds, run layer by layer on the CPU; and the recorded graph itself
        from ..check.report import check_graph
        check = check_graph(graph, {graph.inputs[0].name: x}, {out: expected})
        report.checks.append(("TensorRT network (trtnet.check interpreter) vs PyTorch", check.final[out]))
        if check.first_bad:
            report.checks[-1][1]["first_bad"] = check.first_bad
        got = run_reference(graph, {graph.inputs[0].name: x})[out]
        what = "recorded graph (PyTorch reference executor) vs PyTorch"
    report.checks.append((what, compare(got, expected)))
    if spec.dataset is not None:
        report.accuracy["PyTorch"] = float((expected.argmax(1) == labels).mean())
        report.accuracy["engine" if report.executed else "reference executor"] = float((got.argmax(1) == labels).mean())
    return report

