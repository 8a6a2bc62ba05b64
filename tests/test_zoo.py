"""Every zoo model: weights exported and reloaded, a real engine built, and trtnet.check against its PyTorch module,
at the ends of each dynamic dimension's range (a batch of 2 where only the batch is dynamic)."""
import numpy as np
import pytest

from trtnet import harness, zoo
from trtnet.harness import check_shapes, run_module, torch_reference
from trtnet.check.report import check_graph
from trtnet.engine import build_engine, profiles_for
from trtnet.weights import WeightMap, load_weights, save_safetensors

# fp32 through up to ~150 layers: per-layer and output errors stay near 1e-6 of each tensor's scale.
TOL = 1e-4
# Detectors select their top-k candidates in the network: equal scores make the order of their indices a matter
# of rounding, so tests/test_yolo.py compares them tie-aware at sizes of its own.
OWN_TESTS = {"yolov8n", "yolov8s", "yolo11n", "yolo11s"}


def record_shape(spec):
    """The registered shape where it names dynamic dims (checked at its range's ends), else the small test shape."""
    return spec.input_shape if any(isinstance(d, str) for d in spec.input_shape) else spec.test_shape


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if zoo.MODELS[n].slow else [])
                                  for n in zoo.names() if n not in OWN_TESTS])
def test_zoo_model(name, tmp_path):
    spec = zoo.get(name)
    path = tmp_path / f"{name}.safetensors"
    save_safetensors(harness.export_state(name), path)
    w = load_weights(path)
    graph = spec.graph(w, record_shape(spec))
    assert w.unused() == [], "every tensor of the PyTorch state_dict is used"

    profiles = profiles_for(graph, {"N": (1, 2, 2)} if "N" in graph.dims else None)
    plan, info = build_engine(graph, profiles, progress=False)
    params = sum(v.size for k, v in w.items() if v.dtype.kind == "f")
    assert info.size == len(plan) > 3.5 * params, "the engine holds the fp32 weights"

    module = torch_reference(spec, w)
    outputs = {o.name: o for o in graph.outputs}
    envs = check_shapes(graph, profiles, samples=2)
    if set(graph.dims) <= {"N"}:
        envs = envs[-1:]
    for env in envs:
        inputs = spec.make_inputs(graph, env)
        expected = run_module(module, graph, inputs, spec.output)
        for out, y in expected.items():
            assert y.shape == graph.concrete(outputs[out], env), f"output {out}'s recorded shape at {env}"
        assert any(y.size < 2 or np.std(y) > 1e-3 for y in expected.values()), "the reference depends on its input"
        report = check_graph(graph, inputs, expected, TOL)
        assert report.ok, f"at {env}: " + report.summary() + "\n" + report.table()


@pytest.mark.parametrize("env", [{"N": 1, "T": 4}, {"N": 4, "T": 64}, {"N": 3, "T": 1}])
def test_text_encoder_inputs_are_padded_at_row_ends(env):
    spec = zoo.get("text_encoder")
    graph = spec.graph(WeightMap(harness.export_state("text_encoder")))
    ids = spec.make_inputs(graph, env)["ids"]
    assert ids.shape == (env["N"], env["T"]) and ids.dtype == np.int32
    real = ids != 0
    assert real[:, 0].all(), "no row is all padding"
    assert (np.sort(real, axis=1)[:, ::-1] == real).all(), "padding only after the real tokens"
    if env["T"] > 1:
        assert not real[-1].all(), "the last row has padding"


def test_text_encoder_ignores_trailing_padding():
    """More pad ids after a sentence leave its logits unchanged: the mask reaches attention and pooling."""
    spec = zoo.get("text_encoder")
    w = WeightMap(harness.export_state("text_encoder"))
    module = torch_reference(spec, w)
    graph = spec.graph(w)
    ids = np.array([[5, 17, 3, 9, 0, 0, 0, 0], [5, 17, 3, 9, 0, 0, 0, 0]], np.int32)
    longer = np.concatenate([ids, np.zeros((2, 8), np.int32)], 1)
    short, long = (run_module(module, graph, {"ids": x})["logits"] for x in (ids, longer))
    np.testing.assert_allclose(short, long, rtol=1e-5, atol=1e-6)
    report = check_graph(graph, {"ids": longer}, {"logits": long}, TOL)
    assert report.ok, report.summary()
