"""Every zoo model: weights exported and reloaded, a real engine built, and trtnet.check against PyTorch."""
import numpy as np
import pytest

from trtnet import zoo
from trtnet.build import run_module, torch_reference
from trtnet.check.report import check_graph
from trtnet.engine import build_engine
from trtnet.weights import load_weights, save_safetensors

# fp32 through up to ~150 layers: per-layer and output errors stay near 1e-6 of each tensor's scale.
TOL = 1e-4


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if zoo.MODELS[n].slow else [])
                                  for n in zoo.names()])
def test_zoo_model(name, tmp_path):
    spec = zoo.get(name)
    path = tmp_path / f"{name}.safetensors"
    save_safetensors(zoo.export_state(name), path)
    w = load_weights(path)
    graph = spec.graph(w, spec.test_shape)
    assert w.unused() == [], "every tensor of the torchvision state_dict is used"

    plan, info = build_engine(graph, {"N": (1, 2, 2)}, progress=False)
    params = sum(v.size for k, v in w.items() if v.dtype.kind == "f")
    assert info.size == len(plan) > 3.5 * params, "the engine holds the fp32 weights"

    env = {k: opt for k, (_, opt, _) in info.profiles[0].items()}
    x = spec.make_inputs(graph, env)
    expected = run_module(torch_reference(spec, w), graph, x, spec.output)
    out = graph.outputs[0].name
    assert np.std(expected[out]) > 1e-3, "the reference output depends on its input"
    report = check_graph(graph, x, expected, TOL)
    assert report.ok, report.summary() + "\n" + report.table()
