"""fp32 rounding against mistakes: an output over tolerance while every layer is within it on its own inputs is
accepted only where the network is as near the module run in float64 as PyTorch's own fp32 run is; an NMS
layer's rows, which TensorRT gives in no documented order, compare as sets."""
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trtnet.check.module import ROUNDING_CAP, ROUNDING_FACTOR, float64_outputs, rounding  # noqa: E402
from trtnet.compare import sorted_rows  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4


def drifted(scale, seed=0):
    """(float64 'truth', an fp32 run off it by 3e-4 relative, a network off it by `scale` times that)."""
    exact = np.random.default_rng(seed).standard_normal(1000)
    off = np.zeros_like(exact)
    off[7] = 3e-4 * np.abs(exact).max()
    return {"y": exact}, {"y": (exact + off).astype(np.float32)}, {"y": (exact - scale * off).astype(np.float32)}


def test_accepts_a_network_as_near_float64_as_pytorch():
    exact, fp32, net = drifted(1.5)
    drift = rounding(exact, fp32, net, TOL, ["y"])
    assert drift is not None and drift["y"][0] == pytest.approx(4.5e-4, rel=1e-3)
    assert drift["y"][1] == pytest.approx(3e-4, rel=1e-3)


def test_only_outputs_over_tolerance_need_the_floor():
    """Outputs within tolerance against the module (top-k classes compared tie-aware there) are not asked again."""
    exact, fp32, net = drifted(1.5)
    for d, v in ((exact, np.arange(4)), (fp32, np.arange(4)), (net, np.arange(4)[::-1].copy())):
        d["classes"] = v
    assert set(rounding(exact, fp32, net, TOL, ["y"])) == {"y"}
    assert rounding(exact, fp32, net, TOL, ["y", "classes"]) is None


@pytest.mark.parametrize("scale", [ROUNDING_FACTOR * 1.2, 10.0])
def test_refuses_a_network_further_from_float64(scale):
    assert rounding(*drifted(scale), TOL, ["y"]) is None


def test_refuses_where_pytorch_itself_is_far_from_float64_or_outputs_are_not_floats():
    exact, fp32, net = drifted(0.5)
    fp32["y"][3] += ROUNDING_CAP * TOL * 2 * np.abs(exact["y"]).max()       # PyTorch's own run off by 2e-2
    assert rounding(exact, fp32, net, TOL, ["y"]) is None
    ints = {"i": np.arange(4)}
    assert rounding(ints, ints, ints, TOL, ["i"]) is None
    assert rounding(None, fp32, net, TOL, ["y"]) is None and rounding(exact, fp32, net, TOL, []) is None


def test_float64_run_leaves_the_module_in_float32():
    from trtnet import Graph
    g = Graph("m")
    g.output(g.input("x", (4,)) * 2, "y")
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    got = float64_outputs(m, g, {"x": x})
    assert got["y"].dtype == np.float64
    np.testing.assert_allclose(got["y"], m.double()(torch.from_numpy(x).double()).detach().numpy(), rtol=1e-15)
    m.float()
    assert all(torch.equal(before[k], v) and v.dtype == before[k].dtype for k, v in m.state_dict().items())


def test_rows_compare_as_sets():
    a = np.array([[0, 2, 1], [0, 1, 5], [1, 0, 3], [-1, -1, -1]])
    np.testing.assert_array_equal(sorted_rows(a[[2, 0, 1, 3]]), sorted_rows(a))
    np.testing.assert_array_equal(sorted_rows(a)[-1], [-1, -1, -1])
    assert not np.array_equal(sorted_rows(a), sorted_rows(np.array([[0, 2, 1], [0, 1, 4], [1, 0, 3], [-1] * 3])))


@pytest.mark.slow
def test_check_of_a_ported_yolo_at_its_largest_size_passes_on_rounding(tmp_path):
    """`python -m trtnet.check` on a ported yolo11n (seeded weights) at the default 640x640: the scores differ from
    the module's by more than 1e-4 while every layer is exact on its own inputs, and the module's own fp32 run is
    as far from float64; the verdict says so, and `trtnet.build` writes the engine (TensorRT logging no errors).
    The same file with one BatchNorm's eps changed fails."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def run(*args):
        return subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
    r = run("trtnet.port", 'trtnet.port.ultralytics:model{"cfg": "yolo11n.yaml"}', "-o", "y.py", "--input",
            "images:1x3x320x320", "--dynamic", "images:0,2,3")
    assert r.returncode == 0, r.stderr
    r = run("trtnet.check", "y.py", "--batch", "1,1,2")
    assert r.returncode == 0 and "within PyTorch's own fp32 rounding" in r.stdout, r.stdout[-2000:]
    r = run("trtnet.build", "y.py", "--batch", "1,1,2", "-o", "y.engine")
    assert r.returncode == 0 and (tmp_path / "y.engine").exists(), r.stdout[-2000:] + r.stderr[-2000:]
    assert "within PyTorch's own fp32 rounding" in r.stdout and "ERROR" not in r.stderr, r.stdout[-2000:]
    code = (tmp_path / "y.py").read_text()
    assert "eps=0.001)" in code
    (tmp_path / "y.py").write_text(code.replace("eps=0.001)", "eps=0.1)", 1))
    r = run("trtnet.check", "y.py", "--batch", "1,1,2")
    assert r.returncode == 1 and "FAIL" in r.stdout and "rounding" not in r.stdout, r.stdout[-2000:]
