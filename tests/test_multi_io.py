"""Several inputs of different types and several outputs: recorded, emitted, built and verified output by output."""
import numpy as np
import pytest
import torch
from torch import nn

import trtnet as tn
from trtnet.engine import profiles_for


class Tagger(nn.Module):
    """Token ids and per-token features in; per-token logits and a pooled sentence vector out."""

    def __init__(self):
        super().__init__()
        self.emb, self.proj, self.head = nn.Embedding(20, 8), nn.Linear(3, 8), nn.Linear(8, 5)

    def forward(self, ids, feats):
        x = torch.tanh(self.emb(ids) + self.proj(feats))
        return self.head(x), x.mean(1)


def tagger_graph(w):
    g = tn.Graph("tagger")
    ids = g.input("ids", ("N", "T"), "int32", ranges={"T": (1, 6, 12)}, values=(0, 20))
    feats = g.input("feats", ("N", "T", 3))
    x = tn.tanh(tn.embedding(ids, w["emb"]) + tn.fc(feats, w["proj"]))
    g.output(tn.fc(x, w["head"]), "logits")
    g.output(tn.mean(x, 1), "pooled")
    return g


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    module = Tagger().eval()
    return module, tagger_graph(tn.WeightMap({k: v.numpy() for k, v in module.state_dict().items()}))


def test_symbolic_shapes_and_profile(model):
    _, g = model
    assert [str(o.shape) for o in g.outputs] == ["(N, T, 5)", "(N, 8)"]
    assert "(N, T) int32" in str(g)
    assert profiles_for(g) == [{"N": (1, 8, 32), "T": (1, 6, 12)}]


def test_check_compares_every_output_at_min_and_max(model):
    module, g = model
    reports = tn.check(g, reference=module)
    assert len(reports) == 2
    for r in reports:
        assert r.ok, r.summary()
        assert set(r.final) == {"logits", "pooled"}


def test_build_verifies_each_output(model, tmp_path):
    module, g = model
    report = tn.build(g, output=str(tmp_path / "tagger.engine"), progress=False, reference=module, samples=3)
    assert report.ok, report.summary()
    names = [what for what, _ in report.checks]
    for out in ("logits", "pooled"):
        assert sum(f"output {out} " in n for n in names) == 2   # the interpreter at two shapes
    assert not any("recorded graph" in n for n in names)   # the reference executor only localises a mismatch
    assert (tmp_path / "tagger.engine").stat().st_size > 0


def test_a_wrong_module_is_caught_on_the_right_output(model):
    module, g = model
    other = Tagger().eval()
    other.load_state_dict(module.state_dict())
    with torch.no_grad():
        other.head.bias += 0.5    # logits change, pooled does not
    r = tn.check(g, reference=other)[0]
    assert not r.ok and r.final["logits"]["rel"] > 1e-2 and r.final["pooled"]["rel"] < 1e-5
