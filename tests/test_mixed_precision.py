"""fp16 and bf16 networks with layers kept in fp32 (--keep-fp32) and the advice that finds them (check --fp16
--advise), on a model file whose activations overflow float16 (not bfloat16): checked against PyTorch and read
back from TensorRT."""
import re

import ml_dtypes
import numpy as np
import pytest
import torch

import trtnet as tn
from trtnet import backend, harness, zoo
from trtnet.build.__main__ import main as build_main
from trtnet.cache import engine_key
from trtnet.check.__main__ import main as check_main
from trtnet.check.report import BF16_TOL, check_graph
from trtnet.engine import builder_config, create_network
from trtnet.harness import load_model, torch_reference
from trtnet.tensors import weights_array



@pytest.fixture(scope="module")
def model(overflow_model):
    """The overflow model's file: `big` outputs exceed 65504, LayerNorm brings them back."""
    path, module = overflow_model
    with torch.no_grad():
        peak = float(module.big(torch.relu(module.fc0(torch.randn(4, 16)))).abs().max())
    assert peak > 65504, peak   # the premise: PyTorch's own values leave float16's range
    return path


def test_fp16_fails_without_keep_fp32(model, capsys):
    assert check_main([model, "--fp16", "-q"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "first layer over tolerance: 'big'" in out


def test_advise_prints_a_flag_that_passes(model, capsys):
    assert check_main([model, "--fp16", "--advise", "-q"]) == 0
    out = capsys.readouterr().out
    flag = re.search(r"advice: --keep-fp32 (\S+)", out).group(1)
    kept = flag.split(",")
    assert "big" in kept and "norm" in kept and len(kept) <= 3, out   # overflowing fc and the norm reading it
    assert "PASS" in out and "FAIL" not in out
    assert check_main([model, "--fp16", "--keep-fp32", flag, "-q"]) == 0
    assert "FAIL" not in capsys.readouterr().out
    assert check_main([model, "--fp16", "--keep-fp32", "big", "-q"]) == 1   # cast back to fp16 at once: inf again


def test_kept_layers_are_float32_in_tensorrt(model):
    t = backend.trt()
    _, _, graph = load_model(model)
    builder, network, emission = create_network(graph, True, ["big", "no*"])
    types, weights = {}, {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        types[layer.name] = layer.get_output(0).dtype
        if layer.type == t.LayerType.CONSTANT:
            layer.__class__ = t.IConstantLayer
            weights[layer.name] = layer.weights.dtype
    for name in ("big", "big/matmul", "norm"):
        assert types[name] == t.float32, (name, types[name])
    for name in ("fc0", "relu", "fc1"):
        assert types[name] == t.float16, (name, types[name])
    assert weights["big/weight"] == weights["norm/weight"] == weights["big/bias"] == np.float32
    assert weights["fc0/weight"] == weights["fc1/weight"] == np.float16
    # fp16 -> fp32 before `big`, fp32 -> fp16 after `norm`, and nothing between the two kept layers
    casts = {n: ty for n, ty in types.items() if n.endswith(("/to_fp32", "/to_fp16"))}
    assert casts == {"relu/to_fp32": t.float32, "norm/to_fp16": t.float16}
    assert builder.build_serialized_network(network, builder_config(builder, graph)) is not None
    del emission


def test_keep_fp32_errors(model, capsys):
    assert check_main([model, "--fp16", "--keep-fp32", "nope*"]) == 1
    assert "error: --keep-fp32 'nope*' matches no layer of 'overflow'" in capsys.readouterr().err
    assert check_main([model, "--keep-fp32", "big"]) != 0
    assert "add --fp16" in capsys.readouterr().err


def _read_back(network):
    """{layer name: (output type, weights or None)} as TensorRT holds them."""
    t, out = backend.trt(), {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == t.LayerType.CONSTANT:
            layer.__class__ = t.IConstantLayer
        out[layer.name] = (layer.get_output(0).dtype, layer.weights if layer.type == t.LayerType.CONSTANT else None)
    return out


def test_bf16_network_in_tensorrt(model):
    """--bf16: BF16 weights holding torch's bfloat16 rounding of the module's, BF16 tensors between the float32
    input and output casts, `--keep-fp32` layers in float32; TensorRT builds it."""
    t = backend.trt()
    path, module = model, torch.load(model.replace(".py", ".pth"))
    _, _, graph = load_model(path)
    builder, network, emission = create_network(graph, "bf16", ["big", "no*"])
    layers = _read_back(network)
    assert network.get_input(0).dtype == network.get_output(0).dtype == t.float32
    assert layers["x/bf16"][0] == layers["y"][0] == t.bfloat16 and layers["y/fp32"][0] == t.float32
    assert network.get_layer(network.num_layers - 1).get_input(0).name == "y/bf16"
    for name in ("fc0", "relu", "fc1"):
        assert layers[name][0] == t.bfloat16, name
    for name in ("big", "norm"):
        assert layers[name][0] == t.float32, name
    assert layers["relu/to_fp32"][0] == t.float32 and layers["norm/to_bf16"][0] == t.bfloat16
    w = layers["fc0/weight"][1]
    assert w.dtype == t.bfloat16 and layers["big/weight"][1].dtype == np.float32   # float32 ones come as arrays
    got = weights_array(w).astype(np.float32).reshape(-1)
    want = module["fc0.weight"].to(torch.bfloat16).float().numpy()
    assert got.tobytes() in (want.reshape(-1).tobytes(), want.T.reshape(-1).tobytes())   # as stored, any layout
    assert builder.build_serialized_network(network, builder_config(builder, graph)) is not None
    del emission


def test_bf16_engine_cache_key(model):
    """The engine cache tells fp16, bf16 and bf16 networks of other weights apart (BF16 weights have no numpy
    view in TensorRT's binding, yet their bytes are hashed)."""
    spec, _, graph = load_model(model)
    state = torch.load(model.replace(".py", ".pth"))
    other = spec.graph(tn.WeightMap({k: v.numpy() * 2 for k, v in state.items()}), None)
    keys = [engine_key(create_network(g, half)[1], {"half": half})
            for g, half in ((graph, "fp16"), (graph, "bf16"), (graph, "bf16"), (other, "bf16"))]
    assert keys[1] == keys[2] and len({keys[0], keys[1], keys[3]}) == 3, keys


def test_bf16_check_of_zoo_model():
    """A zoo network in bf16 passes BF16_TOL against PyTorch, and really computes in bfloat16: its error is above
    what fp16's 3 more bits of mantissa would give (resnet18: fp16 1.1e-3, bf16 8.2e-3)."""
    spec = zoo.get("resnet18")
    w = tn.WeightMap(harness.export_state("resnet18"))
    g = spec.graph(w, (3, 64, 64))
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        expected = torch_reference(spec, w)(torch.from_numpy(x)).numpy()
    report = check_graph(g, {"data": x}, {"logits": expected}, BF16_TOL, half="bf16")
    assert report.ok and report.title.startswith("TensorRT bf16 network"), report.summary()
    assert 3e-3 < report.final["logits"]["rel"] <= BF16_TOL and report.final["logits"]["top1"] == 1.0


def test_bf16_advise(model, capsys):
    """bfloat16 has float32's range: the model that overflows float16 passes in bf16 with nothing kept, and
    --advise says so; at a tolerance below bf16's rounding it finds layers to keep, and its flag passes."""
    assert 65504 < float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)
    assert check_main([model, "--bf16", "--advise", "-q"]) == 0
    out = capsys.readouterr().out
    assert "advice: the bf16 network passes with no layer kept in fp32" in out and "FAIL" not in out
    assert check_main([model, "--bf16", "--tol", "4e-3", "-q"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert check_main([model, "--bf16", "--advise", "--tol", "4e-3", "-q"]) == 0
    out = capsys.readouterr().out
    flag = re.search(r"advice: --keep-fp32 (\S+)  \(the bf16 network passes", out).group(1)
    assert check_main([model, "--bf16", "--keep-fp32", flag, "--tol", "4e-3", "-q"]) == 0
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--fp16", "--bf16"], "--fp16 and --bf16: choose one half precision"),
    (["--bf16", "--int8"], "--bf16 with --int8: quantized networks compute in fp32 or fp16"),
    (["--advise"], "--advise applies to a half-precision network: add --fp16 or --bf16"),
])
def test_bf16_usage_errors(model, capsys, argv, message):
    assert check_main([model, *argv]) == 1
    assert f"error: {message}" in capsys.readouterr().err
    if argv[0] != "--advise":
        assert build_main([model, *argv, "--no-verify"]) == 1
        assert f"error: {message}" in capsys.readouterr().err
