"""Every declared op, from its cases in tests/cases_*.py: the PyTorch reference executor against torch, the
TensorRT network (emitted, read back and run by trtnet.check's interpreter) against torch, the symbolic shape
rule against torch's shapes at two sizes of each dynamic dim, and a real engine built by TensorRT."""
import numpy as np
import pytest
import torch

from op_cases import CASES, all_cases, make_inputs, record
from trtnet.emit_trt import EMIT
from trtnet.engine import build_engine, create_network
from trtnet.ops import OPS, PUBLIC
from trtnet.reference import REF, run_reference
from trtnet.shape import evaluate

CASE_LIST = all_cases()
IDS = [c.id for c in CASE_LIST]


PIECES = (("TensorRT emitter", EMIT), ("PyTorch reference", REF), ("test case", CASES))
PLUMBING = {"input", "item"}   # graph nodes that are no op: a network input, output k of a multi-output op


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_has_its_pieces(op):
    missing = [what for what, table in PIECES if op not in table]
    assert not missing, f"op '{op}' lacks: {', '.join(missing)}"


@pytest.mark.parametrize("what,table", PIECES, ids=[w for w, _ in PIECES])
def test_every_piece_belongs_to_a_declared_op(what, table):
    known = set(OPS) | PLUMBING | (set(PUBLIC) if table is CASES else set())   # cases may test getitem, stack...
    undeclared = sorted(set(table) - known)
    assert not undeclared, f"{what} for ops without an @op declaration: {', '.join(undeclared)}"


def _torch(c, x):
    args = [torch.from_numpy(np.ascontiguousarray(x[k])) for k in c.inputs]
    with torch.no_grad():
        out = c.torch_fn(*args)
    return [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]


def _close(got, want, tol, what):
    assert got.shape == want.shape, f"{what}: shape {got.shape}, torch {want.shape}"
    if want.dtype == np.bool_ or np.issubdtype(want.dtype, np.integer):
        np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=what)
    else:
        scale = max(float(np.abs(want).max()) if want.size else 0.0, 1.0)
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.mark.parametrize("c", CASE_LIST, ids=IDS)
def test_reference_and_shape_rule(c):
    g, outs = record(c)
    for env in c.sizes:
        x = make_inputs(c, env)
        got = run_reference(g, x)
        for o, want in zip(outs, _torch(c, x)):
            assert g.concrete(o, env) == want.shape, f"shape rule {o.shape} at {env}: {g.concrete(o, env)}, torch {want.shape}"
            _close(got[o.name], want, c.tol, f"reference of {o.name} at {env}")


@pytest.mark.parametrize("c", CASE_LIST, ids=IDS)
def test_tensorrt_network(c):
    from trtnet.check import run_network
    g, outs = record(c)
    _, network, keep = create_network(g)
    for env in c.sizes:
        x = make_inputs(c, env)
        got = run_network(network, x)
        for o, want in zip(outs, _torch(c, x)):
            _close(got[o.name], want, c.tol, f"TensorRT network output {o.name} at {env}")
    del keep


@pytest.mark.slow
@pytest.mark.parametrize("c", [c for c in CASE_LIST if c.engine], ids=[c.id for c in CASE_LIST if c.engine])
def test_engine_builds(c):
    g, _ = record(c)
    plan, info = build_engine(g, progress=False)
    assert info.size == len(plan) > 0


def test_dynamic_dims_are_symbolic():
    for c in CASE_LIST:
        g, outs = record(c)
        for o in outs:
            for env in c.sizes:
                assert all(isinstance(evaluate(d, env), int) for d in o.shape)
