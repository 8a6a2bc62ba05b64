"""Debug tensors (build --debug-tensors) read back from TensorRT, the dump listener of `trtnet.run --dump` fed a
host buffer, and `trtnet.check --save-outputs` / `--compare-dumps` round trips. Running an engine needs a GPU
TensorRT-RTX supports, so the listener's device path is not exercised here."""
import ctypes
import os
import shutil

import numpy as np
import pytest
import torch

from trtnet import backend
from trtnet.check.__main__ import main as check_main
from trtnet.check.dumps import load_tensors, save_tensors
from trtnet.engine import build_engine, create_network
from trtnet.harness import load_model
from trtnet.run import dump_debug_tensors



@pytest.fixture(scope="module")
def model(overflow_model):
    return overflow_model


def test_debug_marking_read_back_and_built(model):
    _, _, graph = load_model(model[0])
    _, network, emission = create_network(graph, debug=["fc*", "norm"])
    marked = {network.get_layer(i).get_output(0).name for i in range(network.num_layers)
              if network.is_debug_tensor(network.get_layer(i).get_output(0))}
    assert marked == {"fc0", "fc1", "norm"}
    del emission
    plan, info = build_engine(graph, progress=False, debug=["fc*", "norm"])
    plain, _ = build_engine(graph, progress=False)
    assert plan and plan != plain


def test_debug_pattern_matching_nothing(model, tmp_path, capsys):
    from trtnet.build.__main__ import main as build_main
    assert build_main([model[0], "--debug-tensors", "conv*", "--no-verify", "-o", str(tmp_path / "e.engine")]) == 1
    assert "error: --debug-tensors 'conv*' matches no layer of 'overflow'" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "e.engine")


def test_save_outputs_and_compare_dumps(model, tmp_path, capsys):
    path, module = model
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert check_main([path, "--batch", "2", "--save-outputs", a, "-q"]) == 0
    saved = load_tensors(a)
    assert [n for n in saved if "/" not in n][:3] == ["x", "fc0", "relu"]   # the network's order
    with torch.no_grad():                                        # the output is PyTorch's, as checked
        want = module(torch.from_numpy(saved["x"])).numpy()
    np.testing.assert_allclose(saved["y"], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    capsys.readouterr()
    shutil.copytree(a, b)
    assert check_main(["--compare-dumps", b, a]) == 0
    assert "PASS" in capsys.readouterr().out
    planted = dict(saved, fc1=saved["fc1"] * 1.01)
    shutil.rmtree(b)
    save_tensors(b, planted)
    assert check_main(["--compare-dumps", b, a]) == 1
    out = capsys.readouterr().out
    assert "first layer over tolerance: 'fc1'" in out and "fc1" in out.split("<-- first mismatch")[0].splitlines()[-1]


def test_dump_listener_writes_host_tensors(tmp_path):
    t = backend.trt()

    class Context:   # stands in for IExecutionContext, which needs a GPU
        def set_debug_listener(self, listener):
            self.listener = listener
            return True

        def set_all_tensors_debug_state(self, flag):
            return flag

    context, value = Context(), np.arange(6, dtype=np.float32).reshape(2, 3)
    listener = dump_debug_tensors(context, str(tmp_path))
    assert context.listener is listener
    new = ctypes.pythonapi.PyCapsule_New
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    listener.process_debug_tensor(new(value.ctypes.data, None, None), t.TensorLocation.HOST, t.float32,
                                  t.Dims([2, 3]), "block/out", 0)
    np.testing.assert_array_equal(load_tensors(str(tmp_path))["block/out"], value)
