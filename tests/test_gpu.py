"""Engine execution on a GPU: runs where the installed TensorRT can execute an engine, skips elsewhere saying why."""
import numpy as np
import pytest
import torch

import trtnet as tn
from trtnet import harness, zoo
from trtnet.compare import compare
from trtnet.engine import build_engine
from trtnet.harness import torch_reference
from trtnet.runtime import execution_unavailable, run_engine

REASON = execution_unavailable(0)
needs_engine = pytest.mark.skipif(REASON is not None, reason=f"no TensorRT engine can execute here: {REASON}")


def test_unavailability_is_explained():
    if not torch.cuda.is_available():
        assert REASON == "no CUDA GPU is visible to PyTorch on this machine"
    else:
        assert REASON is None or "compute capability" in REASON


@needs_engine
@pytest.mark.gpu
@pytest.mark.parametrize("name,batch,fp16", [("lenet", 16, False), ("resnet18", 4, False), ("resnet18", 4, True)])
def test_engine_matches_pytorch(name, batch, fp16):
    """fp32 with TF32 off: the engine should agree with PyTorch to ~1e-5 of the output scale (deep nets: 1e-4);
    fp16 to 1e-2."""
    spec = zoo.get(name)
    w = tn.WeightMap(harness.export_state(name))
    graph = spec.graph(w)
    plan, _ = build_engine(graph, (1, batch, batch), progress=False, half=fp16)
    x = np.random.default_rng(0).standard_normal((batch, *spec.input_shape), dtype=np.float32)
    got = run_engine(plan, {graph.inputs[0].name: x}, 0)[graph.outputs[0].name]
    module = torch_reference(spec, w)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    m = compare(got, want)
    assert m["rel"] <= (1e-2 if fp16 else 1e-5 if name == "lenet" else 1e-4) and m["top1"] == 1.0, m


@needs_engine
@pytest.mark.gpu
def test_engine_runs_on_chosen_device():
    device = torch.cuda.device_count() - 1
    spec = zoo.get("lenet")
    graph = spec.graph(tn.WeightMap(harness.export_state("lenet")))
    plan, _ = build_engine(graph, (1, 2, 2), progress=False)
    x = np.random.default_rng(0).standard_normal((5, 1, 32, 32), dtype=np.float32)
    out = run_engine(plan, {"data": x}, device, max_batch=2)["prob"]  # chunks of 2, 2 and 1 in one context
    assert out.shape == (5, 10)
    np.testing.assert_allclose(out[3:], run_engine(plan, {"data": x[3:]}, device)["prob"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-5)
