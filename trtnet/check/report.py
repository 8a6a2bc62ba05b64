"""Layer-by-layer comparison of what TensorRT holds (run by the interpreter) with a reference."""
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ..compare import DEFAULT_TOL, Gathered, Indices, Pick, Tied, compare, sorted_rows, unordered_rows
from .module import NONE, compare_row, counterparts, first_over, rounding_note, run_captured

FP16_TOL = 1e-2     # half precision keeps ~3 decimal digits per op; the zoo's deep networks reach a few 1e-3
BF16_TOL = 5e-2     # bfloat16 keeps 8 bits of mantissa, 8x fp16's rounding: resnet18 reaches 8e-3 (fp16 1e-3)


def half_tol(half):
    """The default tolerance of a network in `half` precision (None/False: fp32; True: fp16)."""
    return {True: FP16_TOL, "fp16": FP16_TOL, "bf16": BF16_TOL}.get(half, DEFAULT_TOL)


@dataclass
class Row:
    name: str
    kind: str
    shape: tuple
    rel: float = None     # None: no reference tensor of that name
    note: str = ""
    mod: float = None     # error against the module's submodule of the same path (see check.module)
    mod_note: str = ""    # why there is none, or what else differs
    fp32: float = None    # a quantized network's layer against the fp32 graph's same-named tensor (--plot)


@dataclass
class CheckReport:
    title: str
    rows: list
    final: dict                   # output name -> metrics against the independent reference
    tol: float
    first_bad: str = None         # first layer whose error exceeds tol
    values: dict = field(default_factory=dict, repr=False)   # every tensor the interpreter computed
    quant: dict = None            # a quantized graph: precision per layer count, calibration, accuracy cost
    first_bad_module: str = None  # first layer whose error against the module exceeds tol (None: none, or no module)
    added_up: bool = False        # outputs over tol while every layer is within it on its own inputs
    rounding: dict = None         # such outputs found within PyTorch's own fp32 rounding (module.rounding)

    @property
    def ok(self):
        return self.rounding is not None or self.first_bad is None and self.first_bad_module is None and \
            all(m["rel"] <= self.tol for m in self.final.values())

    def table(self, all_rows=False):
        marked = (self.first_bad, self.first_bad_module)
        rows = self.rows if all_rows else [r for r in self.rows if r.rel is not None or r.mod is not None
                                           or r.name in marked]
        width = max([len(r.name) for r in rows] + [5])
        lines = [f"{'layer':{width}s}  {'TensorRT type':16s}  {'output':22s}  vs graph  vs module"]
        for r in rows:
            err = "-" if r.rel is None else f"{r.rel:.2e}"
            mod = "-" if r.mod is None else f"{r.mod:.2e}"
            mark = "".join(f"  <-- first mismatch{what}" for name, what in zip(marked, ("", " against the module"))
                           if r.name == name)
            notes = [n for n in (r.note, r.mod_note not in ("", NONE) and f"module: {r.mod_note}") if n]
            note = f"  ({'; '.join(notes)})" if notes else ""
            lines.append(f"{r.name:{width}s}  {r.kind:16s}  {str(r.shape):22s}  {err:8s}  {mod:9s}{note}{mark}")
        if any(r.mod_note or r.mod is not None for r in self.rows):
            lines.append("vs module: against the output of the module's submodule of the same path ('-': no "
                         "counterpart)")
        return "\n".join(lines)

    def summary(self):
        lines = [self.title]
        for name, m in self.final.items():
            top1 = "" if m["top1"] is None else f", top-1 agreement {m['top1'] * 100:.1f}%"
            top1 += f" ({m['note']})" if m.get("note") else ""
            lines.append(f"  output {name}: max abs error {m['max_abs']:.3g}, relative error {m['rel']:.3g}{top1}")
        verdict = "PASS" if self.ok else "FAIL"
        where = f"; first layer over tolerance: '{self.first_bad}'" if self.first_bad else ""
        if self.first_bad_module:
            where += f"; first layer over tolerance against the module: '{self.first_bad_module}'"
        if self.rounding is not None:
            where = f"; {rounding_note(self.rounding)}"
        lines.append(f"  {verdict} (tolerance {self.tol:g} relative){where}")
        if self.quant:
            lines += self.quant.lines()
        return "\n".join(lines)


class LayerRows:
    """One row per TensorRT layer output, in network order, filled one tensor at a time (`add`, as the
    interpreter computes it) with its error against the same-named reference tensor (`chosen`: choices(), for
    tensors a top-k's indices chose) and against the module's submodule of the same path (`captured`:
    run_captured's values; with `consume`, each array is dropped from it once compared)."""

    def __init__(self, network, references, tol, chosen=None, captured=None, consume=False):
        self.rows, self.at = [], {}
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            kind = _type(layer)
            for j in range(layer.num_outputs):
                self.at[layer.get_output(j).name] = len(self.rows)
                self.rows.append(Row(layer.get_output(j).name, kind, None))
        self.references, self.tol, self.chosen = references, tol, chosen or {}
        self.first = references     # the references before any retie (retied)
        self.captured, self.consume = captured, consume
        self.added_up = False
        self.module = None if captured is None else counterparts([r.name for r in self.rows], captured)

    def add(self, name, got):
        if name not in self.at:
            return
        row = self.rows[self.at[name]]
        row.shape = tuple(got.shape)
        if name in self.references:
            m = compare(got, self.references[name], self.tol, self.chosen.get(name))
            row.rel, row.note = m["rel"], m["note"]
        if self.module is not None:
            want = self.module.pop(name, NONE)
            if not isinstance(want, str) and self.moved(name):
                want = "the module took the other tied top-k choice"
            compare_row(row, got, want, self.tol)
            if self.consume:
                self.captured.pop(name, None)

    def moved(self, name):
        """Whether the reference of `name` changed when retied (see retied): the module, which made the first
        choice, has no counterpart of it then."""
        first = self.first.get(name) if self.first is not self.references else None
        return first is not None and name in self.references and not np.array_equal(first, self.references[name])

    def finish(self, values=None, own=None, finals=()):
        """(rows, first mismatch, first mismatch against the module or None). The first mismatch is the first
        layer over `tol` whose own error is too: `own(name)` is the reference on the network's `values` of its
        inputs (None: unknown), so that an error a layer inherits and amplifies (a softmax of slightly-off
        logits) is not blamed on it; where none is and a final output (`finals`: metrics) is over `tol`, the
        first layer over it (small errors that add up)."""
        first_bad = None
        for row in self.rows:
            if row.rel is not None and row.rel > self.tol:
                first_bad = _blame(row, values.get(row.name) if own else None, own and own(row.name), self.tol,
                                   self.chosen.get(row.name))
                if first_bad is not None:
                    break
        self.added_up = first_bad is None and own is not None and any(m["rel"] > self.tol for m in finals)
        if first_bad is None and any(m["rel"] > self.tol for m in finals):
            first_bad = next((r.name for r in self.rows if r.rel is not None and r.rel > self.tol), None)
        if self.module is None:
            return self.rows, first_bad, None
        for name, want in self.module.items():   # the rows never computed
            self.rows[self.at[name]].mod_note = want if isinstance(want, str) else "not computed"
        return self.rows, first_bad, first_over(self.rows, self.tol, first_bad)


def _type(layer):
    """The layer's TensorRT type name, read through ILayer: the interpreter may have given the object a subclass
    whose `type` means something else (IActivationLayer.type is its ActivationType)."""
    layer.__class__ = backend.trt().ILayer
    return layer.type.name


def _blame(row, got, mine, tol, selected):
    """row.name when its layer's own error exceeds `tol` (or is unknown), else None, noting the own error."""
    if mine is None:
        return row.name
    m = compare(got, mine, tol, selected)
    if m["rel"] > tol:
        return row.name
    row.note = "; ".join(filter(None, [row.note, f"inherited: {m['rel']:.2e} on the network's own inputs"]))
    return None


def own_inputs(graph, values):
    """name -> the graph's PyTorch reference of node `name` evaluated on the network's values of its inputs, or
    None where the network has no such node or lacks one of its inputs."""
    import torch
    from ..reference.core import DYNAMIC, REF, TORCH_TYPES, size_env
    nodes = {n.name: n for n in graph.nodes}

    def own(name):
        n, index = nodes.get(name), 0
        if n is not None and n.op == "item":
            n, index = n.inputs[0], n.attrs["index"]
        if n is None or n.op in ("input", "const") or any(i.name not in values for i in n.inputs):
            return None
        args = [torch.as_tensor(_numeric(values[i.name])).to(TORCH_TYPES[i.dtype]) for i in n.inputs]
        env = {"env": size_env(graph, values)} if n.op in DYNAMIC else {}
        with torch.no_grad():
            out = REF[n.op](n, *args, **env)
        out = out[index] if isinstance(out, tuple) else out
        return (out.float() if out.dtype == torch.bfloat16 else out).numpy()
    return own


def _numeric(value):
    """A network value torch can take: ml_dtypes' bfloat16 (numpy kind "V") widened to float32, exactly."""
    value = np.asarray(value)
    return value.astype(np.float32) if value.dtype.kind == "V" else value


_SAME_ORDER = ("CAST", "IDENTITY")   # and SHUFFLEs without transposes: every element keeps its flat position


def choices(network, values, references, tol):
    """{tensor name: Indices, Gathered or Tied} for the tensors that carry a top-k's choice: a TOPK's indices, their
    casts, reshapes, slices and expansions, what gathers take at them, and index arithmetic on them (floor
    division, remainder, products with constants) and its concatenations. Found on the layers TensorRT holds,
    so ONNX-parsed networks get them too."""
    t = backend.trt()
    out, masks = {}, {}   # masks: the positions of each carried tensor that follow from a tied choice
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        layer.__class__ = t.ILayer
        kind = layer.type.name
        src = layer.get_input(0).name if layer.num_inputs and layer.get_input(0) is not None else None
        name = layer.get_output(0).name if layer.num_outputs else None
        if kind == "TOPK":
            layer.__class__ = t.ITopKLayer
            scores, index = src, layer.get_output(1).name
            if index in values and layer.axes & (layer.axes - 1) == 0:
                pick = Pick(references.get(scores, values.get(scores)), layer.axes.bit_length() - 1,
                            layer.op == t.TopKOperation.MAX, values[index], tol)
                out[index], masks[index] = Indices(pick, rows=True), pick.tied
        elif src in out and (kind in _SAME_ORDER or kind == "SHUFFLE" and _keeps_order(layer, t)):
            out[name] = out[src]
            if src in masks:
                masks[name] = masks[src].reshape(np.shape(values[name]))
        elif kind == "SLICE" and src in masks:
            masks[name] = _sliced(layer, masks[src], values, t)
            out[name] = Indices(out[src].pick, rows=False) if isinstance(out[src], Indices) else \
                Tied(out[src].pick, masks[name])
        elif kind in ("SHUFFLE", "SLICE") and isinstance(out.get(src), Indices):
            out[name] = Indices(out[src].pick, rows=False)
        elif kind == "GATHER" and (isinstance(out.get(layer.get_input(1).name), Indices)
                                   or layer.get_input(1).name in masks):
            layer.__class__ = t.IGatherLayer
            data, index = out.get(src), layer.get_input(1).name
            if layer.mode in (t.GatherMode.ELEMENT, t.GatherMode.DEFAULT) and not layer.num_elementwise_dims:
                inner = Indices(data.pick, rows=False) if isinstance(data, Indices) else None
                own = None if isinstance(out[index], Indices) else masks.get(index)
                g = Gathered(references.get(src), values[index], layer.axis, layer.mode == t.GatherMode.ELEMENT,
                             out[index].pick, inner, own)
                out[name], masks[name] = g, _gathered_mask(g, np.shape(values[name]))
        elif kind in ("ELEMENTWISE", "CONCATENATION") and name in values and \
                any(layer.get_input(j).name in masks for j in range(layer.num_inputs)):
            inputs = [layer.get_input(j).name for j in range(layer.num_inputs)]
            mask = _combined(layer, kind, inputs, masks, values, t)
            if mask is not None:
                pick = next(out[n].pick for n in inputs if n in masks)
                out[name], masks[name] = Tied(pick, mask), mask
        layer.__class__ = t.ILayer
    return out


def _sliced(layer, mask, values, t):
    """The positions of `mask` a SLICE layer takes (start, size and stride static or from its shape inputs)."""
    layer.__class__ = t.ISliceLayer
    shape = np.shape(values[layer.get_output(0).name])
    given = [layer.get_input(j) if j < layer.num_inputs else None for j in (1, 3)]
    start, stride = (np.asarray(values[g.name]) if g is not None and g.name in values else np.asarray(v)
                     for g, v in zip(given, (layer.start, layer.stride)))
    at = [s + d * np.arange(n) for s, d, n in zip(start, stride, shape)]
    if layer.mode == t.SampleMode.WRAP:
        at = [a % n for a, n in zip(at, mask.shape)]
    elif layer.mode == t.SampleMode.CLAMP:
        at = [a.clip(0, n - 1) for a, n in zip(at, mask.shape)]
    return mask[np.ix_(*at)] if mask.ndim else mask


def _gathered_mask(g, shape):
    """The positions of a gather's output that took a tied candidate."""
    tied = g.ties()
    if not g.element:
        axis = g.axis % len(shape)
        tied = tied.reshape((1,) * axis + tied.shape + (1,) * (len(shape) - axis - tied.ndim))
    return np.broadcast_to(tied, shape)


def _combined(layer, kind, inputs, masks, values, t):
    """The tied positions of index arithmetic on integers (any input's, broadcast) or of a concatenation of
    carried tensors with others; None for other elementwise layers (a score times an index is no index)."""
    shape = np.shape(values[layer.get_output(0).name])
    if kind == "ELEMENTWISE":
        if np.asarray(values[layer.get_output(0).name]).dtype.kind not in "iu":
            return None
        return np.logical_or.reduce([np.broadcast_to(masks[n], shape) for n in inputs if n in masks])
    layer.__class__ = t.IConcatenationLayer
    return np.concatenate([masks[n] if n in masks else np.zeros(np.shape(values[n]), bool) for n in inputs],
                          layer.axis % len(shape))


def retied(graph, network, inputs, values, references, tol):
    """(references, choices(), given, the first choices()): where a top-k of the network took tied candidates in
    another order than the reference (and everything after it then follows that order: RT-DETR's queries), the
    graph's reference is evaluated again with the network's choice there (`given`: {indices tensor: the
    network's}), first to last. The first choices are against the reference as it was, which the module's
    outputs equal."""
    from ..reference import run_reference
    given, first = {}, None
    while True:
        chosen = choices(network, values, references, tol)
        first = chosen if first is None else first
        name = next((k for k, c in chosen.items() if graph is not None and isinstance(c, Indices) and c.rows
                     and k in references and k not in given and _reordered(values[k], references[k], tol, c)), None)
        if name is None:
            return references, chosen, given, first
        given[name] = values[name]
        references = run_reference(graph, inputs, "all", given)


def _reordered(got, want, tol, chosen):
    return bool((np.asarray(got) != np.asarray(want)).any()) and compare(got, want, tol, chosen)["rel"] <= tol


def _final(got, expected, tol, first=None, chosen=None, reference=None, retied_reference=None, given=None):
    """An output against the module's (tied choices as against the first reference); where top-k choices were
    retied (see retied) and the reference was equal to the module, against the reference with the network's
    choices instead, saying so."""
    m = compare(got, expected, tol, first)
    if not given or m["rel"] <= tol or reference is None or retied_reference is None:
        return m
    faithful = compare(reference, expected, tol, chosen)
    if faithful["rel"] > tol:
        return m
    m = compare(got, retied_reference, tol, chosen)
    m["note"] = "; ".join(filter(None, [m["note"], f"against the graph's reference with the network's tied choices "
                                        f"at {', '.join(map(repr, given))} (the reference against the module: "
                                        f"{faithful['rel']:.2e})"]))
    return m


def _keeps_order(layer, t):
    layer.__class__ = t.IShuffleLayer
    return all(tuple(perm) == tuple(range(len(perm))) for perm in (layer.first_transpose, layer.second_transpose))


def check_network(network, inputs, references, finals, tol=DEFAULT_TOL, title="check", progress=None, graph=None,
                  module_values=None, stream=False):
    """Run `network` on `inputs`; compare every layer with `references` and the outputs with `finals`.
    `progress` is run_network's per-layer callback (None: a bar on a terminal, see layer_bar); `graph`, the
    recorded graph the network was emitted from, tells each layer's own error (see LayerRows.finish);
    `module_values`: run_captured's submodule outputs, for the column against the module. `stream`: each layer
    is compared as the interpreter computes it and then dropped, as is each of `module_values`' arrays (the dict
    is consumed), so that the check holds a few layers' values, not all; the report's values are the network's
    outputs then. A network with a top-k, or a graph to blame a layer by its own error, keeps every value."""
    from .interp import run_network
    own = graph is not None and bool(references)
    keep = not stream or own or any(_type(network.get_layer(i)) == "TOPK" for i in range(network.num_layers))
    rows = LayerRows(network, references, tol, None, module_values, consume=stream)
    with layer_bar("TensorRT network (interpreter)") if progress is None else _given(progress) as step:
        values = run_network(network, inputs, outputs="all" if keep else "marked", progress=step,
                             each=None if keep else rows.add)
    first, given, first_chosen = references, {}, {}
    if keep:
        rows.references, rows.chosen, given, first_chosen = retied(graph, network, inputs, values, references, tol)
        for name, got in values.items():
            rows.add(name, got)
    unordered = unordered_rows(graph) if graph is not None else ()
    final = {k: _final(sorted_rows(values[k]), sorted_rows(v), tol) if k in unordered else
             _final(values[k], v, tol, first_chosen.get(k), rows.chosen.get(k), first.get(k), rows.references.get(k),
                    given)
             for k, v in finals.items()}
    layers = rows
    rows, first_bad, first_bad_module = rows.finish(values, own_inputs(graph, values) if own else None,
                                                    final.values())
    if stream:
        values = {o.name: values[o.name] for o in map(network.get_output, range(network.num_outputs))}
    return CheckReport(title, rows, final, tol, first_bad, values, first_bad_module=first_bad_module,
                       added_up=layers.added_up)


def check_graph(graph, inputs, expected, tol=DEFAULT_TOL, half=None, references=None, progress=None, keep_fp32=(),
                module_values=None, stream=False):
    """Emit `graph` into a TensorRT network and check it: layers against the graph's PyTorch reference
    executor (fp32), outputs against `expected` (the original PyTorch module's outputs; None: the reference
    executor's, as for a quantized graph whose meaning is its fake-quantized reference). `references`: the
    reference executor's values of every node on these inputs where the caller has them already. `keep_fp32`:
    patterns of layers a half-precision (`half`: "fp16", "bf16") network keeps in fp32. `module_values`: the module's submodule outputs
    (run_captured), each compared with the layer of the same name. `stream`: see check_network."""
    from ..engine import create_network
    from ..reference import run_reference
    _, network, emission = create_network(graph, half, keep_fp32)
    if references is None:
        references = run_reference(graph, inputs, outputs="all")
    expected = references if expected is None else expected
    finals = {o.name: np.asarray(expected[o.name]) for o in graph.outputs if o.name in expected}
    at = ", ".join(f"{k}={v}" for k, v in size_env(graph, inputs).items())
    report = check_network(network, inputs, references, finals, tol,
                           f"TensorRT {emission.half or 'fp32'} network of '{graph.name}' ({network.num_layers} layers, "
                           f"run by trtnet.check) vs PyTorch{' at ' + at if at else ''}", progress, graph,
                           module_values, stream)
    del emission
    return report


@contextmanager
def layer_bar(desc, stream=None):
    """A run_network progress callback drawing a layer count on a terminal (as TensorRT's build bars: not
    with -q, not when stderr is redirected); None elsewhere."""
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


def check_graph_at(graph, inputs=None, reference=None, tol=None, half=None, shapes=None, seed=0):
    """`trtnet.check(...)`: check_graph on the given inputs, or at each of `shapes` ({dim: size} dicts; default the
    minimum and maximum of the graph's ranges) on seeded inputs; `reference` an nn.Module or None."""
    from ..harness import check_shapes
    from ..engine import profiles_for
    from ..reference import run_reference
    from ..zoo import random_inputs
    tol = tol or half_tol(half)
    if inputs is not None:
        sets = [inputs]
    else:
        envs = shapes or check_shapes(graph, profiles_for(graph), 4)
        sets = [random_inputs(graph, env, np.random.default_rng(seed)) for env in envs]
    reports = []
    for x in sets:
        expected, got = run_captured(reference, graph, x) if reference is not None else (run_reference(graph, x), None)
        reports.append(check_graph(graph, x, expected, tol, half, module_values=got))
    return reports[0] if inputs is not None else reports


PLOT_FORMATS = ("png", "svg", "pdf")


def plot_errors(reports, path):
    """Draw each layer's relative error along the network's depth (log scale), against the graph's reference and
    against the module (a quantized network's: also against the fp32 graph, the quantization error), one panel per checked shape and precision, with the tolerance and the first failing
    layers marked; written atomically to `path` (its extension the format). matplotlib loads here only."""
    import io
    import os
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from ..files import write_atomic
    reports = [r for r in reports if isinstance(r, CheckReport)]   # --advise's advice has no layer rows
    fig, axes = plt.subplots(len(reports), 1, figsize=(11, 3.2 * len(reports)), squeeze=False, sharex=True)
    for ax, r in zip(axes[:, 0], reports):
        _plot_report(ax, r)
    axes[-1, 0].set_xlabel("layer (TensorRT network order)")
    fig.tight_layout()
    data = io.BytesIO()
    fig.savefig(data, format=os.path.splitext(path)[1][1:].lower() or "png", dpi=110)
    plt.close(fig)
    write_atomic(path, data.getvalue())


def _plot_report(ax, r):
    floor = 1e-9   # an exact match still shows, at the bottom
    for attr, label, style in (("rel", "vs graph reference", "o-"), ("mod", "vs module", "s-"),
                               ("fp32", "quantized vs fp32", "^-")):
        pts = [(i, max(getattr(row, attr), floor)) for i, row in enumerate(r.rows) if getattr(row, attr) is not None]
        if pts:
            ax.plot(*zip(*pts), style, ms=3, lw=1, label=label)
    ax.axhline(r.tol, color="red", ls="--", lw=1, label=f"tolerance {r.tol:g}")
    names = [row.name for row in r.rows]
    for bad, what in ((r.first_bad, "first mismatch"), (r.first_bad_module, "first mismatch vs module")):
        if bad in names:
            ax.axvline(names.index(bad), color="black", ls=":", lw=1)
            ax.annotate(f"{what}: {bad}", (names.index(bad), r.tol), xytext=(4, 6), textcoords="offset points",
                        fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("relative error")
    ax.set_title(r.title, fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
