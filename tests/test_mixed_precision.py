"""fp16 networks with layers kept in fp32 (--keep-fp32) and the advice that finds them (check --fp16 --advise), on a
model file whose activations overflow float16: checked against PyTorch and read back from TensorRT."""
import re

import numpy as np
import pytest
import torch

from trtnet import backend
from trtnet.check.__main__ import main as check_main
from trtnet.engine import builder_config, create_network
from trtnet.harness import load_model



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
