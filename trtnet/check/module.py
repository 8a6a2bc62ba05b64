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
Anything else is marked with the reason, never guessed. Functional values (`relu_3`) have no counterpart."""
import re
from contextlib import contextmanager

import numpy as np

from ..compare import compare
from ..harness import run_module

NONE = "no counterpart"


def submodule_names(module, graph):
    """Paths that name both a submodule of `module` and a node of `graph` (not by the op's automatic name):
    the outputs worth capturing."""
    nodes = {n.name for n in graph.nodes if n.params or not re.fullmatch(re.escape(n.op) + r"(_\d+)?", n.name)}
    return [p for p, _ in module.named_modules() if p and p in nodes]


@contextmanager
def capture(module, names):
    """Forward hooks on the submodules at `names`; yields {path: array, or a str saying why there is none}.
    Outputs are copied when produced: a later in-place op (ReLU(inplace=True)) must not change them."""
    import torch
    got, subs = {}, dict(module.named_modules())

    def hook(path):
        def keep(_, __, out):   # returns None: a forward hook's result would replace the module's output
            if path in got:
                got[path] = "the submodule ran more than once"
                return
            first = out[0] if isinstance(out, (tuple, list)) and out else out
            got[path] = first.detach().clone() if isinstance(first, torch.Tensor) else \
                f"the submodule returns {type(out).__name__}"
        return keep

    hooks = [subs[p].register_forward_hook(hook(p)) for p in names if p in subs]
    try:
        yield got
    finally:
        for h in hooks:
            h.remove()
        for p, v in got.items():
            if not isinstance(v, str):
                got[p] = (v.float() if v.is_floating_point() else v).cpu().numpy()


def run_captured(module, graph, inputs, output=None, progress=None, capture_layers=True):
    """run_module's outputs, and {path: submodule output} for the graph's layers named after submodules
    (empty unless `capture_layers`): one PyTorch run for both."""
    with capture(module, submodule_names(module, graph) if capture_layers else ()) as got:
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
