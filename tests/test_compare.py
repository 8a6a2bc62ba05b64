"""trtnet.compare: indices compare by the scores they choose between (PyTorch's topk breaks ties in another order
than TensorRT's lowest-index-first), non-finite values and shape differences are named, and `python -m trtnet.check`
passes a detector whose top-k meets tied scores."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import trtnet as tn
from trtnet.check.report import check_graph
from trtnet.compare import DEFAULT_TOL, Gathered, Indices, Pick, Tied, compare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 12


@pytest.fixture
def tied():
    """Scores with many exact ties (two rows of 40 candidates), boxes to gather, and the top K as PyTorch's topk
    (the reference) and its stable sort (TensorRT's order: lowest index first among ties) choose them."""
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (2, 40), generator=g).float() / 4
    boxes = torch.randn(2, 40, 4, generator=g)
    want = torch.topk(scores, K, 1).indices
    got = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :K]
    assert (got != want).any(), "the two orders differ: the case has ties to accept"
    return scores.numpy(), boxes.numpy(), got.numpy(), want.numpy()


def gathered(boxes, index):
    return torch.gather(torch.from_numpy(boxes), 1, torch.from_numpy(index)[..., None].expand(-1, -1, 4)).numpy()


def test_tied_topk_indices_are_accepted_and_reported(tied):
    scores, _, got, want = tied
    m = compare(got, want, selected=Indices(Pick(scores, 1, True, got), rows=True))
    differ = int((got != want).sum())
    assert m["rel"] <= DEFAULT_TOL and m["max_abs"] == 0, m
    assert m["note"] == f"{differ} positions differ between tied scores (accepted)"
    plain = compare(got, want)
    assert plain["rel"] > DEFAULT_TOL, "compared as numbers, the same indices fail"


def test_index_of_another_score_fails(tied):
    scores, _, got, want = tied
    wrong = got.copy()
    wrong[0, -1] = next(i for i in range(40) if scores[0, i] < scores[0, got[0, -1]])   # a lower score
    for rows in (True, False):
        m = compare(wrong, want, selected=Indices(Pick(scores, 1, True, got), rows=rows))
        assert m["rel"] > DEFAULT_TOL and "1 positions pick an index whose score differs" in m["note"], m


def test_off_by_one_index_among_many_fails():
    """As numbers an index one off among 100,000 is a relative error of 1e-5; by the score it picks it is wrong."""
    scores = np.random.default_rng(0).standard_normal((1, 100_000)).astype(np.float32)
    want = torch.topk(torch.from_numpy(scores), 5, 1).indices.numpy()
    got = want.copy()
    got[0, 2] += 1
    assert compare(got, want)["rel"] < DEFAULT_TOL
    m = compare(got, want, selected=Indices(Pick(scores, 1, True, want), rows=True))
    assert m["rel"] > DEFAULT_TOL, m


def test_gather_fed_by_swapped_tied_indices_passes(tied):
    scores, boxes, got, want = tied
    index = np.broadcast_to(got[..., None], (2, K, 4))
    expected = gathered(boxes, want)
    assert np.abs(gathered(boxes, got) - expected).max() > 0.1, "other boxes at the swapped positions"
    for data in (boxes, None):   # the reference's boxes at the network's indices, or no data: ties pass
        m = compare(gathered(boxes, got), expected, selected=Gathered(data, index, 1, True, Pick(scores, 1, True, got)))
        assert m["rel"] <= DEFAULT_TOL and "positions hold other tied candidates (accepted" in m["note"], m


def test_gather_fed_by_wrong_indices_fails(tied):
    scores, boxes, got, want = tied
    wrong = got.copy()
    wrong[1, 0] = np.argmin(scores[1])   # the lowest score in place of the best
    index = np.broadcast_to(wrong[..., None], (2, K, 4))
    for data in (boxes, None):
        m = compare(gathered(boxes, wrong), gathered(boxes, want),
                    selected=Gathered(data, index, 1, True, Pick(scores, 1, True, wrong)))
        assert m["rel"] > DEFAULT_TOL, m


def test_tied_gather_with_a_wrong_value_fails(tied):
    """A tied index does not excuse a wrong value: it is checked against the reference's data there."""
    scores, boxes, got, want = tied
    index = np.broadcast_to(got[..., None], (2, K, 4))
    bad = gathered(boxes, got)
    swapped = np.argwhere(got != want)[0]
    bad[tuple(swapped)] += 1
    m = compare(bad, gathered(boxes, want), selected=Gathered(boxes, index, 1, True, Pick(scores, 1, True, got)))
    assert m["rel"] > DEFAULT_TOL, m


def test_nan_is_named():
    want = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    got = want.copy()
    got[1, 2] = np.nan
    m = compare(got, want)
    assert m["rel"] == np.inf and m["note"] == "NaN at 1 positions, reference 0", m
    both = compare(got, got.copy())
    assert both["rel"] == 0 and "NaN at 1 positions, reference 1" in both["note"]


def test_shape_mismatch_is_named_not_raised():
    m = compare(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32))
    assert m["rel"] == np.inf and m["note"] == "shape (2, 3), reference (2, 4)"


def test_dtype_kind_is_named():
    m = compare(np.arange(4, dtype=np.float32), np.arange(4))
    assert m["rel"] == 0 and m["note"] == "dtype float32, reference int64"


def test_compare_needs_numpy_only():
    code = "import sys, trtnet.compare; print(sorted({'torch', 'tensorrt', 'tensorrt_rtx'} & set(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_check_accepts_tied_topk_in_a_network(tied):
    """The TensorRT network (interpreter: lowest index first) against PyTorch (topk's own order): the layers a
    top-k's indices feed are found on the network and pass, saying how many positions took tied candidates."""
    scores, boxes, _, _ = tied
    g = tn.Graph("select")
    s, b = g.input("scores", (40,)), g.input("boxes", (40, 4))
    top, index = tn.topk(s, K, dim=1)
    n = b.shape[0]
    g.output(top, "top")
    g.output(tn.gather(b, 1, tn.expand(tn.unsqueeze(index, -1), (n, K, 4))), "picked")
    g.output(tn.cast(index, "int32"), "index")
    report = check_graph(g, {"scores": scores, "boxes": boxes}, None)
    assert report.ok, report.table() + "\n" + report.summary()
    assert "differ between tied scores (accepted)" in report.final["index"]["note"]
    assert "hold other tied candidates (accepted" in report.final["picked"]["note"]
    assert "accepted" in report.summary()


def test_error_a_layer_inherits_is_not_blamed_on_it():
    """Logits near 500 that are 5e-5 of that off give a softmax ~1e-2 off: the error is its inputs', and the
    layer computes right on the network's own logits, so it is noted, no layer is blamed and the sum of the
    softmax (the output) passes (test_check's planted bugs are blamed on their layers)."""
    from trtnet.reference import run_reference
    g = tn.Graph("amplify")
    x = g.input("x", (16,))
    logits = x * 100.0
    g.output(tn.sum(tn.softmax(logits, dim=1, name="prob"), dim=1), "total")
    rng = np.random.default_rng(0)
    inputs = {"x": (5 + 0.02 * rng.standard_normal((2, 16))).astype(np.float32)}
    references = run_reference(g, inputs, outputs="all")
    off = references[logits.name] + np.float32(5e-5 * 500) * rng.choice([-1, 1], (2, 16)).astype(np.float32)
    references[logits.name], references["prob"] = off, torch.softmax(torch.from_numpy(off), 1).numpy()
    report = check_graph(g, inputs, None, references=references)
    row = next(r for r in report.rows if r.name == "prob")
    assert row.rel > DEFAULT_TOL and "inherited" in row.note, report.table()
    assert report.ok and report.first_bad is None, report.table()


@pytest.mark.slow
def test_check_command_passes_yolov8n_with_tied_scores(tmp_path):
    """At 640x640 sigmoid scores saturate at 1.0 on more anchors than the 300 kept: where PyTorch and the network
    keep different ones of them (it depends on the last bits of each side's arithmetic), the command still passes
    and says so; a pick between scores that differ would fail it."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    export = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export_wts.py"), "yolov8n", "--format",
                             "safetensors"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr
    r = subprocess.run([sys.executable, "-m", "trtnet.check", "yolov8n", "--shapes",
                        "images:1x3x128x128,1x3x640x640,1x3x640x640"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0 and "FAIL" not in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "pick an index whose score differs" not in r.stdout, r.stdout[-3000:]
    assert "max abs error" in r.stdout and "output classes:" in r.stdout, r.stdout[-3000:]


def test_zero_dim_non_finite_values():
    inf, nan = np.array(np.inf, np.float32), np.array(np.nan, np.float32)
    assert compare(inf, inf)["rel"] == 0 and compare(nan, nan)["rel"] == 0
    m = compare(nan, np.array(1.0, np.float32))
    assert m["rel"] == np.inf and "NaN at 1 positions, reference 0" in m["note"]


def test_check_accepts_tied_topk_through_index_arithmetic(tied):
    """RT-DETR's selection: a top-k over every query x class score, the query (index // classes) gathering boxes and
    the class (index % classes, index - query * classes), concatenated; tied picks pass, as tied candidates."""
    scores, boxes, _, _ = tied
    q, c = 10, 4
    g = tn.Graph("queries")
    s, b = g.input("scores", (q, c)), g.input("boxes", (q, 4))
    top, index = tn.topk(tn.flatten(s, 1), K, dim=1)
    query = index // c
    picked = tn.gather(b, 1, tn.expand(tn.unsqueeze(query, -1), (b.shape[0], K, 4)))
    g.output(tn.cat([picked, tn.unsqueeze(top, -1), tn.unsqueeze(tn.cast(index % c, "float32"), -1)], dim=-1),
             "detections")
    g.output(tn.cast(index - query * c, "int32"), "classes")
    inputs = {"scores": scores.reshape(2, q, c), "boxes": boxes[:, :q].copy()}
    report = check_graph(g, inputs, None)
    assert report.ok, report.table() + "\n" + report.summary()
    for name in ("detections", "classes"):
        assert "hold values of other tied candidates (accepted)" in report.final[name]["note"], report.summary()
    reference = tn.reference.run_reference(g, inputs)
    assert compare(report.values["classes"], reference["classes"])["rel"] > DEFAULT_TOL, "the picks differ"


def test_tied_arithmetic_accepts_only_tied_positions(tied):
    scores, _, got, want = tied
    pick = Pick(scores, 1, True, got)
    mask = got != want   # as though only these picks were tied
    m = compare(got % 4, want % 4, selected=Tied(pick, mask))
    assert m["rel"] == 0 and "hold values of other tied candidates" in m["note"], m
    wrong = got % 4
    wrong[~mask] += 1   # a value off where the pick was not tied
    assert compare(wrong, want % 4, selected=Tied(pick, mask))["rel"] > DEFAULT_TOL


def test_check_follows_tied_query_selection_through_later_layers(tied):
    """RT-DETR's two selections: a top-k of tied scores picks queries, layers after it compute on them in the
    network's order, and a second top-k over their query x class scores picks detections. The reference is
    evaluated again with the network's first choice, so every later layer compares; a wrong layer still fails."""
    scores, boxes, _, _ = tied
    c = 4

    def graph(scale):
        g = tn.Graph("queries")
        s, f = g.input("scores", (40,)), g.input("features", (40, c))
        n = f.shape[0]
        _, chosen = tn.topk(s, K, dim=1)
        queries = tn.gather(f, 1, tn.expand(tn.unsqueeze(chosen, -1), (n, K, c))) * scale
        top, index = tn.topk(tn.flatten(tn.sigmoid(queries), 1), 6, dim=1)
        query = index // c
        g.output(tn.gather(queries, 1, tn.expand(tn.unsqueeze(query, -1), (n, 6, c))), "boxes")
        g.output(top, "top")
        g.output(index % c, "classes")
        return g

    inputs = {"scores": scores, "features": boxes}
    report = check_graph(graph(1.0), inputs, None)
    assert report.ok, report.table() + "\n" + report.summary()
    assert all(r.rel == 0 for r in report.rows if r.rel is not None), report.table()
    reference = tn.reference.run_reference(graph(1.0), inputs, outputs="all")
    assert compare(report.values["sigmoid"], reference["sigmoid"])["rel"] > DEFAULT_TOL, "the queries differ"
    wrong = check_graph(graph(1.0), inputs, tn.reference.run_reference(graph(1.01), inputs))
    assert not wrong.ok, wrong.summary()
