"""Layer-by-layer comparison of what TensorRT holds (run by the interpreter) with a reference."""
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ..compare import DEFAULT_TOL, Gathered, Indices, Pick, compare

FP16_TOL = 1e-2     # half precision keeps ~3 decimal digits per op; the zoo's deep networks reach a few 1e-3


@dataclass
class Row:
    name: str
    kind: str
    shape: tuple
    rel: float = None     # None: no reference tensor of that name
    note: str = ""


@dataclass
class CheckReport:
    title: str
    rows: list
    final: dict                   # output name -> metrics against the independent reference
    tol: float
    first_bad: str = None         # first layer whose error exceeds tol
    values: dict = field(default_factory=dict, repr=False)   # every tensor the interpreter computed
    quant: dict = None            # a quantized graph: precision per layer count, calibration, accuracy cost

    @property
    def ok(self):
        return self.first_bad is None and all(m["rel"] <= self.tol for m in self.final.values())

    def table(self, all_rows=False):
        rows = self.rows if all_rows else [r for r in self.rows if r.rel is not None or r.name == self.first_bad]
        width = max([len(r.name) for r in rows] + [5])
        lines = [f"{'layer':{width}s}  {'TensorRT type':16s}  {'output':22s}  rel. error"]
        for r in rows:
            err = "-" if r.rel is None else f"{r.rel:.2e}"
            mark = "  <-- first mismatch" if r.name == self.first_bad else ""
            note = f"  ({r.note})" if r.note else ""
            lines.append(f"{r.name:{width}s}  {r.kind:16s}  {str(r.shape):22s}  {err}{note}{mark}")
        return "\n".join(lines)

    def summary(self):
        lines = [self.title]
        for name, m in self.final.items():
            top1 = "" if m["top1"] is None else f", top-1 agreement {m['top1'] * 100:.1f}%"
            note = f" ({m['note']})" if m.get("note") else ""
            lines.append(f"  output {name}: max abs error {m['max_abs']:.3g}, relative error {m['rel']:.3g}{top1}{note}")
        verdict = "PASS" if self.ok else "FAIL"
        where = f"; first layer over tolerance: '{self.first_bad}'" if self.first_bad else ""
        lines.append(f"  {verdict} (tolerance {self.tol:g} relative){where}")
        if self.quant:
            lines += self.quant.lines()
        return "\n".join(lines)


def layer_rows(network, values, references, tol, chosen=None):
    """One row per TensorRT layer output, with its error against the same-named reference tensor (`chosen`:
    choices(), for tensors a top-k's indices chose)."""
    rows, first_bad, chosen = [], None, chosen or {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            name = layer.get_output(j).name
            got = values.get(name)
            shape = None if got is None else tuple(got.shape)
            row = Row(name, str(layer.type).split(".")[-1], shape)
            if got is not None and name in references:
                m = compare(got, references[name], tol, chosen.get(name))
                row.rel, row.note = m["rel"], m["note"]
                if row.rel > tol and first_bad is None:
                    first_bad = name
            rows.append(row)
    return rows, first_bad


_SAME_ORDER = ("CAST", "IDENTITY")   # and SHUFFLEs without transposes: every element keeps its flat position


def choices(network, values, references, tol):
    """{tensor name: Indices or Gathered} for the tensors that carry a top-k's choice: a TOPK's indices, their
    casts, reshapes, slices and expansions, and what gathers take at them. Found on the layers TensorRT holds,
    so ONNX-parsed networks get them too."""
    t = backend.trt()
    out = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        layer.__class__ = t.ILayer
        kind = layer.type.name
        src = layer.get_input(0).name if layer.num_inputs and layer.get_input(0) is not None else None
        name = layer.get_output(0).name
        if kind == "TOPK":
            layer.__class__ = t.ITopKLayer
            scores, index = src, layer.get_output(1).name
            if index in values and layer.axes & (layer.axes - 1) == 0:
                pick = Pick(references.get(scores, values.get(scores)), layer.axes.bit_length() - 1,
                            layer.op == t.TopKOperation.MAX, values[index], tol)
                out[index] = Indices(pick, rows=True)
        elif src in out and (kind in _SAME_ORDER or kind == "SHUFFLE" and _keeps_order(layer, t)):
            out[name] = out[src]
        elif kind in ("SHUFFLE", "SLICE") and isinstance(out.get(src), Indices):
            out[name] = Indices(out[src].pick, rows=False)
        elif kind == "GATHER" and isinstance(out.get(layer.get_input(1).name), Indices):
            layer.__class__ = t.IGatherLayer
            data, index = out.get(src), layer.get_input(1).name
            if layer.mode in (t.GatherMode.ELEMENT, t.GatherMode.DEFAULT) and not layer.num_elementwise_dims:
                inner = Indices(data.pick, rows=False) if isinstance(data, Indices) else None
                out[name] = Gathered(references.get(src), values[index], layer.axis, layer.mode == t.GatherMode.ELEMENT,
                                     out[index].pick, inner)
        layer.__class__ = t.ILayer
    return out


def _keeps_order(layer, t):
    layer.__class__ = t.IShuffleLayer
    return all(tuple(perm) == tuple(range(len(perm))) for perm in (layer.first_transpose, layer.second_transpose))


def check_network(network, inputs, references, finals, tol=DEFAULT_TOL, title="check", progress=None):
    """Run `network` on `inputs`; compare every layer with `references` and the outputs with `finals`.
    `progress` is run_network's per-layer callback (None: a bar on a terminal, see layer_bar)."""
    from .interp import run_network
    with layer_bar("TensorRT network (interpreter)") if progress is None else _given(progress) as step:
        values = run_network(network, inputs, outputs="all", progress=step)
    chosen = choices(network, values, references, tol)
    rows, first_bad = layer_rows(network, values, references, tol, chosen)
    final = {k: compare(values[k], v, tol, chosen.get(k)) for k, v in finals.items()}
    return CheckReport(title, rows, final, tol, first_bad, values)


def check_graph(graph, inputs, expected, tol=DEFAULT_TOL, fp16=False, references=None, progress=None):
    """Emit `graph` into a TensorRT network and check it: layers against the graph's PyTorch reference
    executor (fp32), outputs against `expected` (the original PyTorch module's outputs; None: the reference
    executor's, as for a quantized graph whose meaning is its fake-quantized reference). `references`: the
    reference executor's values of every node on these inputs where the caller has them already."""
    from ..engine import create_network
    from ..reference import run_reference
    _, network, emission = create_network(graph, fp16)
    if references is None:
        references = run_reference(graph, inputs, outputs="all")
    expected = references if expected is None else expected
    finals = {o.name: np.asarray(expected[o.name]) for o in graph.outputs if o.name in expected}
    at = ", ".join(f"{k}={v}" for k, v in size_env(graph, inputs).items())
    report = check_network(network, inputs, references, finals, tol,
                           f"TensorRT {'fp16' if fp16 else 'fp32'} network of '{graph.name}' ({network.num_layers} layers, "
                           f"run by trtnet.check) vs PyTorch{' at ' + at if at else ''}", progress)
    del emission
    return report


@contextmanager
def layer_bar(desc, stream=None):
    """A run_network progress callback drawing a layer count on a terminal (as TensorRT's build bars: not
    with -q, not when stderr is redirected); None elsewhere."""
    from .. import backend
    stream = stream or sys.stderr
    if not (stream.isatty() if backend.SHOW is None else backend.SHOW):
        yield None
        return
    from tqdm import tqdm
    bar = tqdm(desc=desc, unit=" layers", leave=False, file=stream)

    def step(done, total):
        bar.total = total
        bar.update(done - bar.n)
        if done == total:
            bar.refresh()

    try:
        yield step
    finally:
        bar.close()


@contextmanager
def _given(progress):
    yield progress


def size_env(graph, inputs):
    """The named sizes the inputs have."""
    return {k: int(np.shape(inputs[inp])[axis]) for k, (inp, axis) in graph.dims.items() if inp in inputs}


def check_graph_at(graph, inputs=None, reference=None, tol=None, fp16=False, shapes=None, seed=0):
    """`trtnet.check(...)`: check_graph on the given inputs, or at each of `shapes` ({dim: size} dicts; default the
    minimum and maximum of the graph's ranges) on seeded inputs; `reference` an nn.Module or None."""
    from ..harness import check_shapes, run_module
    from ..engine import profiles_for
    from ..reference import run_reference
    from ..zoo import random_inputs
    tol = tol or (FP16_TOL if fp16 else DEFAULT_TOL)
    if inputs is not None:
        sets = [inputs]
    else:
        envs = shapes or check_shapes(graph, profiles_for(graph), 4)
        sets = [random_inputs(graph, env, np.random.default_rng(seed)) for env in envs]
    reports = []
    for x in sets:
        expected = run_module(reference, graph, x) if reference is not None else run_reference(graph, x)
        reports.append(check_graph(graph, x, expected, tol, fp16))
    return reports[0] if inputs is not None else reports
