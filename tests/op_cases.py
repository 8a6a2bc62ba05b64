"""Test cases keyed by declared op: each op of `trtnet.ops.OPS` needs at least one case here (test_ops.py fails
otherwise). A case records a small graph through the public API and says what torch computes for it.

Families add their cases in `tests/cases_<family>.py` with `case(...)`; those files are imported below.
"""
import glob
import importlib
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

CASES = {}   # op name -> [Case]


@dataclass
class Case:
    op: str
    id: str
    inputs: dict                 # name -> (shape with names for dynamic dims, dtype)
    build: Callable              # (w, *input nodes) -> node or list of nodes
    torch_fn: Callable           # (*input torch tensors) -> tensor or list of tensors
    sizes: list                  # [{dim name: size}] to run at (two sizes where a dim is dynamic)
    weights: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)   # input name -> (lo, hi) for integer inputs
    make: Callable = None        # (name, shape, dtype, rng) -> array, to override random inputs
    tol: float = 1e-5
    engine: bool = True          # also build a real engine from it


def case(op, id, inputs, build, torch_fn, sizes=({"N": 2},), weights=None, **kw):
    CASES.setdefault(op, []).append(Case(op, f"{op}-{id}", dict(inputs), build, torch_fn, list(sizes),
                                         weights or {}, **kw))


def all_cases():
    return [c for cs in CASES.values() for c in cs]


def make_inputs(c, env, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name, (shape, dtype) in c.inputs.items():
        shape = tuple(env[d] if isinstance(d, str) else d for d in shape)
        if c.make is not None:
            out[name] = c.make(name, shape, dtype, rng)
        elif dtype == "bool":
            out[name] = rng.random(shape) < 0.5
        elif dtype.startswith("int"):
            lo, hi = c.values.get(name, (-5, 6))
            out[name] = rng.integers(lo, hi, shape).astype(dtype)
        else:
            out[name] = rng.standard_normal(shape).astype(dtype)
    return out


def record(c):
    """(graph, [output nodes]) for case `c`, inputs with their symbolic dims."""
    import trtnet as tn
    g = tn.Graph(c.id.replace("-", "_"))
    nodes = [g.input(name, shape, dtype, ranges={d: (1, 4, 16) for d in shape if isinstance(d, str)}, batch=False)
             for name, (shape, dtype) in c.inputs.items()]
    out = c.build(tn.WeightMap(c.weights), *nodes)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    for o in outs:
        g.output(o)
    return g, outs


for _path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "cases_*.py"))):
    importlib.import_module(os.path.splitext(os.path.basename(_path))[0])
