"""The build as explicit steps: events heard by a listener, no engine from a failed verification (or one
named as failed), quantized engines under their own names, sizes for .wts weights from the PyTorch twin."""
import os
import subprocess
import sys

import numpy as np
import pytest

import trtnet as tn
from trtnet.events import Events, Listener

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

# A model file whose graph forgets the module's second ReLU: a mistake verification must catch.
MISTAKE = '''
import torch
from torch import nn
import trtnet as tn
from trtnet.zoo import register


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return torch.relu(self.head(x.mean((2, 3))))


@register("net", (3, 8, 8), Net)
def net(w, shape):
    g = tn.Graph("net")
    x = tn.relu(tn.conv(g.input("x", shape), w["conv"], padding=1))
    g.output(tn.fc(tn.mean(x, dim=(2, 3)), w["head"]), "y")
    return g
'''


def run(*args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture
def model_dir(tmp_path):
    (tmp_path / "net.py").write_text(MISTAKE)
    r = run(os.path.join(ROOT, "scripts", "export_wts.py"), "net.py", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "weights" / "net.wts").exists()   # the default format: conv and fc sizes from the twin
    return tmp_path


def test_failed_verification_writes_no_engine(model_dir):
    r = run("-m", "trtnet.build", "net.py", "-o", "out/net.engine", cwd=model_dir)
    assert r.returncode == 1, r.stdout + r.stderr
    assert not (model_dir / "out" / "net.engine").exists() and not (model_dir / "out").exists()
    assert "no engine written" in r.stderr and "not written" in r.stdout
    # the mismatch is localised: the recorded graph itself disagrees with PyTorch
    assert "recorded graph output y" in r.stdout, r.stdout


def test_keep_failed_names_the_engine_as_failed(model_dir):
    r = run("-m", "trtnet.build", "net.py", "-o", "net.engine", "--keep-failed", cwd=model_dir)
    assert r.returncode == 1
    assert not (model_dir / "net.engine").exists()
    assert (model_dir / "net.failed.engine").stat().st_size > 1000
    assert "net.failed.engine" in r.stderr


def test_unverified_build_of_the_same_file_writes_its_engine(model_dir):
    r = run("-m", "trtnet.build", "net.py", "--no-verify", cwd=model_dir)
    assert r.returncode == 0, r.stderr
    assert (model_dir / "engines" / "net.engine").stat().st_size > 1000


def test_quantized_build_has_its_own_default_name(model_dir):
    r = run("-m", "trtnet.build", "net.py", "--no-verify", "--int8-weights", cwd=model_dir)
    assert r.returncode == 0, r.stderr
    assert [f for f in os.listdir(model_dir / "engines") if not f.startswith(".")] == ["net.int8-weights.engine"]


class Recorder(Listener):
    def __init__(self):
        self.heard = []

    def started(self, phase):
        self.heard.append(("start", phase))

    def finished(self, phase, seconds, error):
        self.heard.append(("end", phase, error is None))


def test_api_build_announces_its_phases_and_refuses_a_wrong_reference(tmp_path):
    import torch
    rng = np.random.default_rng(0)
    w = tn.WeightMap({"weight": rng.standard_normal((3, 4), dtype=np.float32),
                      "bias": rng.standard_normal(3, dtype=np.float32)})
    g = tn.Graph("lin")
    g.output(tn.relu(tn.fc(g.input("x", (4,)), w)), "y")
    module = torch.nn.Linear(4, 3)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(w["weight"]))
        module.bias.copy_(torch.from_numpy(w["bias"]))
    rec = Recorder()
    out = tmp_path / "lin.engine"
    report = tn.build(g, output=str(out), reference=module.eval(), progress=False, events=Events(rec))
    assert not report.ok and report.engine.path is None and not out.exists()   # the module lacks the ReLU
    phases = [h[1] for h in rec.heard if h[0] == "start"]
    assert phases[:2] == ["emit", "TensorRT build"] and "TensorRT network (interpreter)" in phases
    assert "reference executor" in phases and "write" not in phases
    report = tn.build(g, output=str(out), reference=torch.nn.Sequential(module, torch.nn.ReLU()).eval(),
                      progress=False)
    assert report.ok and out.stat().st_size > 100


def test_wts_weights_take_their_shapes_from_the_pytorch_twin(tmp_path):
    from trtnet import harness, zoo
    spec = zoo.get("text_encoder")   # its embedding needs a 2-D table, which a .wts file cannot say
    state = harness.export_state("text_encoder")
    tn.save_wts(state, str(tmp_path / "t.wts"))
    w = harness.load_model_weights(spec, str(tmp_path / "t.wts"))
    assert {k: w[k].shape for k in state} == {k: v.shape for k, v in state.items()}
    spec.graph(w)   # records without asking for sizes
