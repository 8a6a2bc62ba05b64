"""Layer by layer against the user's own nn.Module, not only against the graph's reference executor (which
shares any mistake the graph makes, such as a wrong BatchNorm eps).

trtnet names a layer after the weights it holds (`layer1.0.bn1`), i.e. after the submodule that owns them, and
the TensorRT tensor a node outputs carries the node's name (its inner tensors are `name/...`). So the module
is asked, through forward hooks during the one PyTorch run, what each such submodule returned. The rule: the
TensorRT tensor named X is compared with the output of the module's submodule X when
- X is exactly a submodule path (no suffix is stripped or added; other tensors have no counterpart),
- X is not a name the graph made up from the op for a layer without weights (`relu`, `permute_2`: a
  coincidence with a submodule's path; name such a layer explicitly, `tn.relu(x, name="act")`, to compare it),
- no later TensorRT tensor is named under X (`X.act` after `X`: the submodule X ends after that layer),
- the submodule ran exactly once (one called twice has no single output), and
- its output, a tensor or a tuple's first tensor, has the tensor's shape.
A value a module's forward computes functionally (`out + identity`, `F.relu(out)`) is a counterpart where the
tensor is named after it: the submodule's path and the name torch.fx gives that node when it traces the
submodule's own forward with its children as leaves (`block.add`, `block.relu`; not at the top), under the
same rules. Its value is taken by running that trace again on a copy of the submodule's inputs, after the
submodule ran. A forward fx cannot trace has no such counterparts. Automatic names (`relu_3`) have none."""
from contextlib import contextmanager

import numpy as np

from ..compare import compare
from ..harness import run_module

NONE = "no counterpart"


def _named(graph):
    """The graph's node names that are not made up (`relu_3`, `getitem_2` for `x[0]`: Graph.automatic)."""
    return {n.name for n in graph.nodes if n.name not in graph.automatic}


def submodule_names(module, graph):
    """Paths that name both a submodule of `module` and a node of `graph` (not by the op's automatic name):
    the outputs worth capturing."""
    nodes = _named(graph)
    return [p for p, _ in module.named_modules() if p and p in nodes]


def functional_names(module, graph):
    """{submodule path: (its shallow fx trace, {fx node name: graph node name})} for the graph's nodes named
    `path.node` after a value the submodule's forward computes functionally (see the module docstring). The
    top level's own values are left out: fx names them as trtnet names unnamed layers (`getitem_3`)."""
    nodes, subs, out = _named(graph), dict(module.named_modules()), {}
    for path in sorted({n.rpartition(".")[0] for n in nodes if n not in subs} - {""}):
        gm = _shallow(subs[path]) if path in subs else None
        calls = [n.name for n in gm.graph.nodes if n.op in ("call_function", "call_method")] if gm else []
        hit = {v: (path + "." if path else "") + v for v in calls}
        hit = {v: q for v, q in hit.items() if q in nodes}
        if hit:
            out[path] = gm, hit
    return out


def _shallow(module):
    """`module`'s forward traced by torch.fx with its children as leaves, or None where fx cannot trace it."""
    import torch.fx as fx

    class Shallow(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return True

    try:
        return fx.GraphModule(module, Shallow().trace(module))
    except Exception:  # noqa: BLE001 (fx refuses data-dependent control flow and more: then no counterparts)
        return None


@contextmanager
def capture(module, names, functional=None):
    """Forward hooks on the submodules at `names`, and on those of `functional` (functional_names); yields
    {name: array, or a str saying why there is none}. Outputs are copied when produced: a later in-place op
    (ReLU(inplace=True)) must not change them."""
    import torch
    got, subs, replaying = {}, dict(module.named_modules()), [False]

    def hook(path):
        def keep(_, __, out):   # returns None: a forward hook's result would replace the module's output
            if replaying[0]:
                return
            if path in got:
                got[path] = "the submodule ran more than once"
                return
            first = out[0] if isinstance(out, (tuple, list)) and out else out
            got[path] = first.detach().clone() if isinstance(first, torch.Tensor) else \
                f"the submodule returns {type(out).__name__}"
        return keep

    hooks = [subs[p].register_forward_hook(hook(p)) for p in names if p in subs]
    for path, (gm, wanted) in (functional or {}).items():
        hooks += _replay_hooks(subs[path], gm, wanted, got, replaying)
    try:
        yield got
    finally:
        for h in hooks:
            h.remove()
        for p, v in got.items():
            if not isinstance(v, str):
                got[p] = (v.float() if v.is_floating_point() else v).cpu().numpy()


def _replay_hooks(sub, gm, wanted, got, replaying):
    """Hooks that copy `sub`'s inputs before it runs and, after, run its shallow trace `gm` on the copy, keeping
    the values of the `wanted` nodes ({fx node name: name in `got`}). While replaying (`replaying[0]`), the hooks
    on its children do nothing."""
    import torch
    import torch.fx as fx

    held = []

    class Keep(fx.Interpreter):
        def run_node(self, n):
            value = super().run_node(n)
            q = wanted.get(n.name)
            if q is not None:
                got[q] = "the submodule ran more than once" if q in got else \
                    value.detach().clone() if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"
            return value

    def before(_, args):
        if not replaying[0]:
            held.append(tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args))

    def after(*_):
        if replaying[0] or not held:
            return
        replaying[0] = True
        try:
            Keep(gm).run(*held.pop())
        finally:
            replaying[0] = False

    return [sub.register_forward_pre_hook(before), sub.register_forward_hook(after)]


def run_captured(module, graph, inputs, output=None, progress=None, capture_layers=True):
    """run_module's outputs, and {name: submodule output or functional value} for the graph's layers named after
    submodules and functional values (empty unless `capture_layers`): one PyTorch run for both."""
    names, functional = (submodule_names(module, graph), functional_names(module, graph)) if capture_layers \
        else ((), None)
    with capture(module, names, functional) as got:
        expected = run_module(module, graph, inputs, output, progress)
    return expected, got


def counterparts(names, captured):
    """{tensor name: the module's array, or a str saying why it has none} for the TensorRT tensor `names` in
    network order, by the rule above."""
    last_under = {}   # path -> index of the last tensor named under it
    for i, name in enumerate(names):
        parts = name.split(".")
        for k in range(1, len(parts)):
            last_under[".".join(parts[:k])] = i
    out = {}
    for i, name in enumerate(names):
        v = captured.get(name, NONE)
        out[name] = f"the submodule '{name}' ends at a later layer" \
            if not isinstance(v, str) and last_under.get(name, -1) > i else v
    return out


def compare_row(row, got, want, tol):
    """Fill a layer row's error against the module (row.mod), or row.mod_note saying why there is none; `want`:
    the module's array, or a str saying why there is none (counterparts)."""
    if isinstance(want, str):
        row.mod_note = want
    elif np.shape(got) != np.shape(want):
        row.mod_note = f"shape {tuple(np.shape(got))}, module {tuple(np.shape(want))}"
    else:
        m = compare(got, want, tol)
        row.mod, row.mod_note = m["rel"], m["note"]


def first_over(rows, tol, first_bad=None):
    """The first row's name over `tol` against the module. A row over `tol` against the graph's reference too is
    the network's own error (precision, or a mistake in its emission), not the graph's: it is named only where
    the graph's column names it (`first_bad`), so an fp16 error that a layer inherits is not blamed on it twice."""
    return next((r.name for r in rows if r.mod is not None and r.mod > tol
                 and (r.rel is None or r.rel <= tol or r.name == first_bad)), None)


ROUNDING_FACTOR = 4      # the network may be this many times (2 bits) as far from float64 as PyTorch's own fp32 run
ROUNDING_CAP = 100       # ... where that run is within this many tolerances of float64


def float64_outputs(module, graph, inputs, output=None):
    """The module's outputs from the same inputs computed in float64 (its float32 parameters and buffers widened in
    place, narrowed back after: float32 -> float64 -> float32 is exact), or None where it holds other floating
    types or cannot run so."""
    import torch
    tensors = list(module.parameters()) + list(module.buffers())
    if not tensors or any(t.is_floating_point() and t.dtype != torch.float32 for t in tensors):
        return None
    wide = {k: v.astype(np.float64) if np.asarray(v).dtype == np.float32 else v for k, v in inputs.items()}
    try:
        module.double()
        return run_module(module, graph, wide, output)
    except Exception:  # noqa: BLE001 (a module that cannot run in float64 gives no floor)
        return None
    finally:
        module.float()


def rounding(exact, expected, got, tol, over):
    """{output: (network's error, PyTorch fp32's error) against the float64 outputs `exact`} when each output in
    `over` (those over `tol` against the module) of the network (`got`) is at most ROUNDING_FACTOR times as far
    from them as the module's own fp32 run (`expected`), that run within ROUNDING_CAP tolerances: the end-to-end
    error is fp32 rounding both make (deep networks with large activations), not a mistake. None otherwise."""
    if exact is None or not over:
        return None
    out = {}
    for name in over:
        want = exact.get(name)
        if want is None or name not in got or name not in expected or np.asarray(want).dtype.kind != "f":
            return None
        net, own = compare(got[name], want, tol)["rel"], compare(expected[name], want, tol)["rel"]
        if own > ROUNDING_CAP * tol or net > max(tol, ROUNDING_FACTOR * own):
            return None
        out[name] = (net, own)
    return out


def rounding_note(drift):
    return "within PyTorch's own fp32 rounding, against the module in float64: " + ", ".join(
        f"{k} {net:.2e} (PyTorch fp32 {own:.2e})" for k, (net, own) in drift.items())
