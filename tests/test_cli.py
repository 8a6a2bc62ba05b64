"""The user's flow end to end in a temporary directory: export weights, then build, as subprocesses."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from trtnet.weights import load_weights, save_safetensors, save_wts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run(*args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def export(cwd, name="lenet", *extra):
    r = run(os.path.join(ROOT, "scripts", "export_wts.py"), name, *extra, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def lenet_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("lenet")
    export(d)
    return d


def metrics(text):
    m = re.search(r"max abs error ([^,\s]+), relative error ([^,\s]+)(?:, top-1 agreement ([^%]+)%)?", text)
    assert m, text
    return float(m.group(1)), float(m.group(2)), float(m.group(3)) if m.group(3) else None


def test_export_then_build_lenet(lenet_dir):
    assert os.path.exists(lenet_dir / "weights" / "lenet.wts")
    r = run("-m", "trtnet.build", "lenet", cwd=lenet_dir)
    assert r.returncode == 0, r.stderr
    engine = lenet_dir / "engines" / "lenet.engine"
    assert engine.stat().st_size > 4 * 61706, "the engine holds LeNet's fp32 weights"
    assert "build:" not in r.stderr, "no progress bars where stderr is not a terminal"
    assert re.search(r"time .*TensorRT build [0-9.]+ s.*verify [0-9.]+ s", r.stdout), r.stdout
    _, rel, top1 = metrics(r.stdout)
    assert rel <= 1e-5 and top1 == 100.0
    accs = [float(a) for a in re.findall(r"accuracy .*?: (\S+)% on the held-out set", r.stdout)]
    assert len(accs) == 2 and accs[0] == accs[1] and accs[0] > 90, r.stdout
    if "not executed" in r.stdout:
        assert re.search(r"NOTE: the engine itself was not executed: .+\.", r.stdout)


def test_build_options(lenet_dir):
    r = run("-m", "trtnet.build", "lenet", "-o", "out/x.engine", "--batch", "2,4,8", "--no-verify", "-q", cwd=lenet_dir)
    assert r.returncode == 0, r.stderr
    assert (lenet_dir / "out" / "x.engine").exists() and "N 2/4/8" in r.stdout


def test_list_and_help(tmp_path):
    r = run("-m", "trtnet.build", "--list", cwd=tmp_path)
    assert r.returncode == 0 and "lenet" in r.stdout and "resnet50" in r.stdout
    r = run("-m", "trtnet.build", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "--weights" in r.stdout and "--batch" in r.stdout and "--backend" in r.stdout


def one_line_error(r, *needles):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and lines[0] == r.stderr.strip().splitlines()[-1], r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_bad_inputs_fail_with_one_line(lenet_dir, tmp_path):
    good = load_weights(lenet_dir / "weights" / "lenet.wts")
    one_line_error(run("-m", "trtnet.build", "lenet", cwd=tmp_path), "weights/lenet.wts", "export_wts.py lenet")
    one_line_error(run("-m", "trtnet.build", "lenett", cwd=tmp_path), "lenett", "lenet")

    text = (lenet_dir / "weights" / "lenet.wts").read_text()
    (tmp_path / "cut.wts").write_text(text[: len(text) // 2])
    one_line_error(run("-m", "trtnet.build", "lenet", "--weights", "cut.wts", cwd=tmp_path), "cut.wts")

    state = {k: good[k] for k in good if k != "conv2.weight"}
    save_wts(state, tmp_path / "missing.wts")
    one_line_error(run("-m", "trtnet.build", "lenet", "--weights", "missing.wts", cwd=tmp_path), "conv2.weight", "conv2")

    state = dict({k: good[k] for k in good}, **{"conv2.weight": np.zeros((16, 3, 5, 5), np.float32)})
    save_safetensors(state, tmp_path / "shape.safetensors")
    one_line_error(run("-m", "trtnet.build", "lenet", "--weights", "shape.safetensors", cwd=tmp_path),
                   "conv2.weight", "(16, 3, 5, 5)", "(16, 6, 5, 5)")
    assert not (tmp_path / "engines").exists(), "no partial engine files after a failure"


@pytest.mark.slow
def test_export_then_build_resnet50(tmp_path):
    r = export(tmp_path, "resnet50", "--format", "safetensors")
    assert (tmp_path / "weights" / "resnet50.safetensors").exists(), r.stdout
    r = run("-m", "trtnet.build", "resnet50", "--batch", "1,2,4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    _, rel, top1 = metrics(r.stdout)
    assert rel <= 1e-5 and top1 == 100.0, r.stdout
    assert (tmp_path / "engines" / "resnet50.engine").stat().st_size > 4 * 25_000_000


def test_build_api_on_a_recorded_graph(tmp_path, rng):
    """trtnet.build also takes a Graph: engine written, network checked against the graph's PyTorch meaning."""
    import trtnet as tn
    w = tn.WeightMap({"c.weight": rng.standard_normal((4, 3, 3, 3), dtype=np.float32)})
    g = tn.Graph("mine")
    x = g.input("data", (3, 8, 8))
    g.output(tn.softmax(tn.flatten(tn.avg_pool(tn.relu(tn.conv(x, w["c"], padding=1)), 3, 2, 1), 1), dim=1), "prob")
    report = tn.build(g, output=str(tmp_path / "mine.engine"), profiles=(1, 2, 4), progress=False)
    assert (tmp_path / "mine.engine").stat().st_size == report.engine.size > 0
    assert report.ok and report.checks and report.checks[0][1]["rel"] <= 1e-5, report.summary()
    assert "mine.engine" in report.summary()


def test_export_from_checkpoint(tmp_path):
    """A torchvision-style checkpoint dict exports unchanged (bit-exact) to .wts; no random init involved."""
    import torch
    import torchvision
    torch.manual_seed(3)
    state = torchvision.models.resnet18().state_dict()
    torch.save({"epoch": 7, "state_dict": state}, tmp_path / "ck.pth")
    export(tmp_path, "resnet18", "--checkpoint", "ck.pth", "-o", "r18.wts")
    w = load_weights(tmp_path / "r18.wts")
    for k, v in state.items():
        np.testing.assert_array_equal(w[k], v.numpy().astype(np.float32).ravel(), err_msg=k)
    torch.save({"epoch": 7}, tmp_path / "empty.pth")
    r = run(os.path.join(ROOT, "scripts", "export_wts.py"), "resnet18", "--checkpoint", "empty.pth", cwd=tmp_path)
    one_line_error(r, "empty.pth")
