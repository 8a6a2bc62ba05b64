"""The example models beyond image classification (video, segmentation with dynamic sizes, audio, a recurrent
text recogniser): weights exported and reloaded, a real engine built, and trtnet.check against the PyTorch module
at two shapes (the profile's minimum and maximum where dimensions are dynamic)."""
import numpy as np
import pytest

from trtnet import zoo
from trtnet.build import check_shapes, run_module, torch_reference
from trtnet.check.report import check_graph
from trtnet.engine import build_engine, profiles_for
from trtnet.weights import load_weights, save_safetensors

TOL = 1e-4
# model: names of its dynamic dimensions besides the batch
EXAMPLES = {"r3d_18": set(), "unet": {"H", "W"}, "audio_cnn": {"L"}, "crnn": {"W"}}


def check_shape(spec):
    """The registered shape where it is dynamic (checked at its range's ends), else the small test shape."""
    return spec.input_shape if any(isinstance(d, str) for d in spec.input_shape) else spec.test_shape


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_model(name, tmp_path):
    spec = zoo.get(name)
    path = tmp_path / f"{name}.safetensors"
    save_safetensors(zoo.export_state(name), path)
    w = load_weights(path)
    graph = spec.graph(w, check_shape(spec))
    assert w.unused() == [], "every tensor of the PyTorch state_dict is used"
    assert set(graph.dims) == {"N"} | EXAMPLES[name]

    profiles = profiles_for(graph)
    plan, info = build_engine(graph, profiles, progress=False)
    params = sum(v.size for k, v in w.items() if not k.endswith("num_batches_tracked"))
    assert info.size == len(plan) > 3.5 * params, "the engine holds the fp32 weights"

    module = torch_reference(spec, w)
    outputs = {o.name: o for o in graph.outputs}
    envs = check_shapes(graph, profiles, samples=2)
    assert len(envs) == 2
    for env in envs:
        inputs = spec.make_inputs(graph, env)
        expected = run_module(module, graph, inputs, spec.output)
        for out, y in expected.items():
            assert y.shape == graph.concrete(outputs[out], env), f"output {out}'s recorded shape at {env}"
            assert np.std(y) > 1e-3, f"the reference output {out} depends on its input"
        report = check_graph(graph, inputs, expected, TOL)
        assert report.ok, f"at {env}: " + report.summary() + "\n" + report.table()
