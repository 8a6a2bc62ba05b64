"""Quantization that does not lose accuracy silently: per-layer sensitivity (checked against PyTorch's own fake
quantization), the advised --keep, the auto calibration never the worst method, a build over its cost bound
leaving no engine (MTCNN's real weights quantized: tests/test_mtcnn.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trtnet as tn
from trtnet.quantize import quantize
from trtnet.quantize.advise import advise
from trtnet.quantize.calibration import AUTO
from trtnet.reference import run_reference
from trtnet.weights import WeightMap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R = np.random.default_rng(3)
# c1's first output channel is 200x the others and c2 ignores it: c2's input range, per tensor, is set by a
# channel that does not matter, and INT8 rounds the ones that do to a few levels
W = {f"c{i}.weight": (R.standard_normal((8, 8, 3, 3)) * 0.3).astype(np.float32) for i in (1, 2, 3)}
W["c1.weight"][0] *= 200
W["c2.weight"][:, 0] = 0
W.update({"f.weight": (R.standard_normal((4, 8)) * 0.3).astype(np.float32), "f.bias": np.zeros(4, np.float32)})


def graph():
    w = WeightMap(W)
    g = tn.Graph("chain")
    x = g.input("x", (8, 6, 6))
    for i in (1, 2, 3):
        x = tn.relu(tn.conv(x, w[f"c{i}"], padding=1))
    g.output(tn.fc(x.mean((2, 3)), w["f"]))
    return g


def torch_chain(x, only=None, amax=None):
    """The chain in PyTorch; `only`: that layer's input (per tensor, max range) and weight (per output channel)
    INT8 fake-quantized with PyTorch's own fake-quantize ops."""
    def fq_act(t, name):
        return torch.fake_quantize_per_tensor_affine(t, amax[name] / 127, 0, -128, 127) if only == name else t

    def fq_w(w, name):
        s = w.abs().amax(dim=tuple(range(1, w.dim()))) / 127
        return torch.fake_quantize_per_channel_affine(w, s, torch.zeros(len(s), dtype=torch.int32), 0, -128, 127) \
            if only == name else w
    ins = {}
    for i in (1, 2, 3):
        ins[f"c{i}"] = x
        x = F.relu(F.conv2d(fq_act(x, f"c{i}"), fq_w(torch.from_numpy(W[f"c{i}.weight"]), f"c{i}"), padding=1))
    x = x.mean((2, 3))
    ins["f"] = x
    return F.linear(fq_act(x, "f"), fq_w(torch.from_numpy(W["f.weight"]), "f"), torch.from_numpy(W["f.bias"])), ins


def db(got, want):
    return float(10 * np.log10(np.sum(want.astype(np.float64) ** 2) / np.sum((got - want).astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def data():
    return (R.standard_normal((32, 8, 6, 6)).astype(np.float32), R.standard_normal((16, 8, 6, 6)).astype(np.float32))


def test_sensitivity_matches_pytorch_and_the_advice_meets_its_target(data):
    calib, test = data
    g = graph()
    q = quantize(g, calib, "int8", method="max", progress=False)
    a = advise(g, q, {"x": test}, target_sqnr=40.0)
    with torch.no_grad():
        amax = {k: float(v.abs().max()) for k, v in torch_chain(torch.from_numpy(calib))[1].items()}
        want = torch_chain(torch.from_numpy(test))[0].numpy()
        alone = {k: db(torch_chain(torch.from_numpy(test), k, amax)[0].numpy(), want) for k in amax}
    assert set(a.alone) == set(alone)
    for k, v in alone.items():   # each layer's cost alone, against PyTorch's fake quantization
        assert a.alone[k] == pytest.approx(v, abs=0.05), (k, a.alone, alone)
    assert a.costliest(1) == ["c2"] and a.before["sqnr"] < 40.0, a.summary()
    assert a.keep == ["c2"] and a.ok and a.flag == "--keep c2", a.summary()
    kept = quantize(g, calib, "int8", method="max", keep=a.keep, progress=False)   # the flag as a build uses it
    assert db(run_reference(kept, {"x": test})[g.outputs[0].name], want) == pytest.approx(a.after["sqnr"], abs=0.01)
    assert "costliest layers (output SQNR with that layer alone quantized): c2" in a.summary()
    assert a.depth["c2"] < a.depth["c1"] - 20 and "the largest fall at c2" in a.summary(), a.summary()


def test_auto_is_never_the_worst(data):
    """Auto's choice is the best candidate on the calibration data; on other data it is never the worst."""
    calib, test = data
    calib = np.concatenate([calib, 40 * calib[:1]])   # an outlier sample: max and the clipping methods disagree
    g = graph()
    out = g.outputs[0].name
    want = run_reference(g, {"x": test})[out]
    q = quantize(g, calib, "int8", progress=False)
    info = q.quant["calibration"]
    assert info["method"] == "auto" and info["chosen"] == max(AUTO, key=info["scores"].get), info
    got = {m: db(run_reference(quantize(g, calib, "int8", method=m, progress=False), {"x": test})[out], want)
           for m in AUTO}
    assert db(run_reference(q, {"x": test})[out], want) == pytest.approx(got[info["chosen"]], abs=1e-6)
    assert got[info["chosen"]] > min(got.values()) or len(set(got.values())) == 1, (info, got)


MODEL = '''
import numpy as np
import torch
from torch import nn
import trtnet as tn
from trtnet.zoo import register


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


@register("net", (3, 8, 8), Net,
          calibration=lambda: np.random.default_rng(0).standard_normal((16, 3, 8, 8), dtype=np.float32))
def net(w, shape):
    g = tn.Graph("net")
    x = tn.relu(tn.conv(g.input("x", shape), w["conv"], padding=1))
    g.output(tn.fc(tn.mean(x, dim=(2, 3)), w["head"]), "y")
    return g
'''


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("net")
    (d / "net.py").write_text(MODEL)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export_wts.py"), "net.py"], cwd=d,
                       env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return d


def test_check_advise_prints_the_keep_and_checks_it(model_dir):
    r = subprocess.run([sys.executable, "-m", "trtnet.check", "net.py", "--int8", "--advise", "--target-sqnr", "300"],
                       cwd=model_dir, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "target output SQNR >= 300.0 dB: keep 2 of 2 layers: --keep y --keep conv" in r.stdout, r.stdout
    assert "0 of 2 layers quantized" in r.stdout and "output SQNR inf dB" in r.stdout, r.stdout


def test_build_over_its_bound_leaves_no_engine(model_dir):
    tmp_path, env = model_dir, dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "trtnet.build", "net.py", "--int8", "--no-engine-cache", "-o", "net.engine"]
    r = subprocess.run(cmd + ["--min-sqnr", "200"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and not (tmp_path / "net.engine").exists(), r.stdout + r.stderr
    assert "output SQNR" in r.stdout and "< 200 dB (--min-sqnr)" in r.stdout, r.stdout
    assert "costliest layers" in r.stdout and "--keep " in r.stdout, r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("error: net.py: the quantization cost"), r.stderr
    r = subprocess.run(cmd + ["--min-sqnr", "10"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and (tmp_path / "net.engine").exists(), r.stdout + r.stderr


def test_bound_options_are_checked(tmp_path):
    r = subprocess.run([sys.executable, "-m", "trtnet.build", "lenet", "--int8", "--min-agreement", "2"],
                       cwd=tmp_path, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True)
    assert r.returncode != 0 and "--min-agreement: '2' must lie between 0 and 1" in r.stderr, r.stderr
