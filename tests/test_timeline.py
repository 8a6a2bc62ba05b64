"""What `python -m trtnet.build` loads and shows: no torch without verification, a layer count while the
interpreter runs, the verification parts in the time summary."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest

from trtnet import Graph, conv, fc, flatten, relu, zoo
from trtnet.check import report
from trtnet.check.interp import run_network
from trtnet.engine import create_network
from trtnet.weights import WeightMap, save_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
TORCH_LOADED = "import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))"


def small_network():
    rng = np.random.default_rng(0)
    w = WeightMap({"c.weight": rng.standard_normal((4, 3, 3, 3), dtype=np.float32),
                   "c.bias": rng.standard_normal(4, dtype=np.float32),
                   "f.weight": rng.standard_normal((5, 64), dtype=np.float32),
                   "f.bias": rng.standard_normal(5, dtype=np.float32)})
    g = Graph("small")
    x = g.input("x", (3, 4, 4))
    g.output(fc(flatten(relu(conv(x, w["c"], 4, 3, padding=1)), 1), w["f"], 5), "y")
    _, network, emission = create_network(g)
    return network, emission, {"x": rng.standard_normal((2, 3, 4, 4), dtype=np.float32)}


def test_run_network_counts_every_layer_and_computes_the_same():
    network, _emission, inputs = small_network()
    calls = []
    got = run_network(network, inputs, "all", progress=lambda done, total: calls.append((done, total)))
    assert [d for d, _ in calls] == list(range(1, network.num_layers + 1))
    assert {t for _, t in calls} == {network.num_layers}
    plain = run_network(network, inputs, "all")
    assert got.keys() == plain.keys() and all(np.array_equal(got[k], plain[k]) for k in got)


def test_marked_outputs_count_only_the_layers_they_need():
    network, _emission, inputs = small_network()
    calls = []
    run_network(network, inputs, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1] <= network.num_layers


def test_each_layer_value_is_handed_over_as_computed_and_released():
    network, _emission, inputs = small_network()
    every = run_network(network, inputs, "all")
    seen = {}
    got = run_network(network, inputs, each=lambda name, value: seen.setdefault(name, value.copy()))
    layers = {network.get_layer(i).get_output(j).name for i in range(network.num_layers)
              for j in range(network.get_layer(i).num_outputs)}
    assert seen.keys() == layers and all(np.array_equal(seen[k], every[k]) for k in seen)
    assert list(got) == ["y"] and np.array_equal(got["y"], every["y"])


def test_streamed_check_gives_the_same_table_and_consumes_the_module_values():
    """The build's check compares each layer as it is computed (stream=True); the table, the verdicts and the
    module column are those of the check that keeps every value, the planted bias mistake named in both."""
    import torch
    from trtnet.check.module import run_captured
    module = torch.nn.Sequential()
    module.add_module("c", torch.nn.Conv2d(3, 4, 3, padding=1))
    module.add_module("act", torch.nn.ReLU())
    module.add_module("flat", torch.nn.Flatten())
    module.add_module("f", torch.nn.Linear(64, 5))
    module.add_module("out", torch.nn.ReLU())
    rng = np.random.default_rng(0)
    w = {"c.weight": rng.standard_normal((4, 3, 3, 3), dtype=np.float32),
         "c.bias": rng.standard_normal(4, dtype=np.float32),
         "f.weight": rng.standard_normal((5, 64), dtype=np.float32),
         "f.bias": rng.standard_normal(5, dtype=np.float32)}
    module.load_state_dict({k: torch.as_tensor(v) for k, v in w.items()})
    with torch.no_grad():
        module.f.bias[1] += 1.0   # the module differs from the graph at layer 'f'
    wm = WeightMap(w)
    g = Graph("small")
    x = g.input("x", (3, 4, 4))
    g.output(relu(fc(flatten(relu(conv(x, wm["c"], 4, 3, padding=1)), 1), wm["f"], 5)), "y")
    inputs, reports = {"x": rng.standard_normal((2, 3, 4, 4), dtype=np.float32)}, []
    for stream in (False, True):
        expected, captured = run_captured(module, g, inputs)
        assert "c" in captured and "f" in captured
        reports.append(report.check_graph(g, inputs, expected, module_values=captured, stream=stream))
        assert bool(captured) != stream   # consumed by the streamed check only
    kept, streamed = reports
    assert streamed.rows == kept.rows and streamed.final == kept.final
    assert streamed.first_bad_module == kept.first_bad_module == "f" and not streamed.ok
    assert set(streamed.values) == {"y"} and len(kept.values) > 1


def test_layer_bar_only_on_a_terminal(monkeypatch):
    from trtnet import backend
    out = io.StringIO()
    monkeypatch.setattr(backend, "SHOW", False)
    with report.layer_bar("interpreter", out) as step:
        assert step is None
    monkeypatch.setattr(backend, "SHOW", True)
    with report.layer_bar("interpreter", out) as step:
        step(3, 7)
        step(7, 7)
    assert "interpreter" in out.getvalue() and "7/7" in out.getvalue()


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory):
    """resnet18's state as a .safetensors file (torchvision's shapes, seeded values)."""
    import torch
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("w") / "resnet18.safetensors")
    save_safetensors({k: v.numpy() for k, v in zoo.get("resnet18").torch_module().state_dict().items()}, path)
    return path


def build_command(weights, out, *extra):
    """`python -m trtnet.build resnet18 ...` in a fresh process that then prints the torch modules it loaded."""
    argv = ["resnet18", "--weights", weights, "--batch", "1,2,4", "-o", out, "--no-engine-cache", *extra]
    return ["-c", f"from trtnet.build.__main__ import main; rc = main({argv!r}); {TORCH_LOADED}; raise SystemExit(rc)"]


def run(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def test_build_without_verification_loads_no_torch(resnet18_weights, tmp_path):
    r = run(build_command(resnet18_weights, str(tmp_path / "r.engine"), "--no-verify", "-q"), tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout
    assert os.path.getsize(tmp_path / "r.engine") > 40 << 20


def test_zoo_modules_import_without_torch():
    r = run(["-c", f"from trtnet import zoo; zoo.names(); {TORCH_LOADED}"], ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout


@pytest.mark.slow
def test_verified_build_times_each_part(resnet18_weights, tmp_path):
    r = run(build_command(resnet18_weights, str(tmp_path / "r.engine"), "-q"), tmp_path)
    assert r.returncode == 0, r.stderr
    summary = next(line for line in r.stdout.splitlines() if line.strip().startswith("time"))
    for part in ("import TensorRT", "TensorRT build", "PyTorch module", "PyTorch run",
                 "TensorRT network (interpreter)"):
        assert f"{part} " in summary, (part, summary)
    assert "reference executor" not in summary   # only a mismatch needs localising
    assert "at N=1 " in r.stdout and "at N=2 " in r.stdout and "at N=4" not in r.stdout, r.stdout


def test_pytorch_run_progress_counts_leaf_modules_and_leaves_the_outputs_alone():
    import torch
    from trtnet.harness import run_module
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).eval()
    g = Graph("seq")
    g.output(relu(g.input("x", (3,))), "y")
    x = np.random.default_rng(0).standard_normal((2, 3), dtype=np.float32)
    calls = []
    got = run_module(module, g, {"x": x}, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_array_equal(got["y"], module(torch.from_numpy(x)).detach().numpy())
    assert not any(m._forward_hooks for m in module.modules())


def test_timeline_hears_phases_with_self_time():
    from trtnet.cli import Timeline
    from trtnet.events import Events
    t = Timeline(show=False)
    events = Events(t)
    with events.phase("outer"):
        with events.phase("inner"):
            pass
    with pytest.raises(ValueError):
        with events.phase("broken"):
            raise ValueError
    assert t.finished_parts == ["inner", "outer", "broken"] and t.current == "broken"
    assert t.seconds["outer"] >= 0 and "inner " in t.summary()
