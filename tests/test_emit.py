"""Emission checked against TensorRT itself: layers and weights read back from a real INetworkDefinition,
and real engines serialized by the TensorRT builder (TensorRT-RTX builds ahead of time on a CPU-only machine)."""
import numpy as np
import pytest
import torch

import trtnet as tn
from trtnet.backend import trt
from trtnet.engine import build_engine, create_network

from trtnet import zoo


def layers(network):
    """Every layer, downcast to its interface class so its attributes read back."""
    t = trt()
    out = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        cls = {t.LayerType.CONVOLUTION: t.IConvolutionLayer, t.LayerType.POOLING: t.IPoolingLayer,
               t.LayerType.SCALE: t.IScaleLayer, t.LayerType.SOFTMAX: t.ISoftMaxLayer,
               t.LayerType.CONSTANT: t.IConstantLayer, t.LayerType.ACTIVATION: t.IActivationLayer,
               t.LayerType.MATRIX_MULTIPLY: t.IMatrixMultiplyLayer, t.LayerType.SHUFFLE: t.IShuffleLayer,
               t.LayerType.RESIZE: t.IResizeLayer, t.LayerType.REDUCE: t.IReduceLayer,
               t.LayerType.ELEMENTWISE: t.IElementWiseLayer, t.LayerType.CONCATENATION: t.IConcatenationLayer}.get(layer.type)
        if cls is not None:
            layer.__class__ = cls
        out[layer.name] = layer
    return out


def small_net(rng):
    """conv+bn+relu, ceil-mode pool, count-include-pad avg pool, upsample, concat, fc, softmax."""
    p = {"c.weight": rng.standard_normal((4, 3, 3, 3), dtype=np.float32), "c.bias": rng.standard_normal(4, dtype=np.float32),
         "fc.weight": rng.standard_normal((5, 8 * 9), dtype=np.float32), "fc.bias": rng.standard_normal(5, dtype=np.float32)}
    p.update({f"b.{k}": rng.random(4, dtype=np.float32) + 0.5 for k in ("weight", "bias", "running_mean", "running_var")})
    w = tn.WeightMap(p)
    g = tn.Graph("small")
    x = g.input("data", (3, 11, 11))
    y = tn.relu(tn.bn(tn.conv(x, w["c"], stride=2, padding=1), w["b"], eps=1e-3))      # (N,4,6,6)
    y = tn.max_pool(y, 2, 2, 1, ceil_mode=True, name="pool1")                             # (N,4,4,4)
    z = tn.interpolate(tn.avg_pool(y, 3, 2, 1, name="pool2"), scale_factor=2, name="up")  # (N,4,4,4)
    y = tn.concat([y, z], 1, name="cat")                                                  # (N,8,4,4)
    y = tn.flatten(tn.max_pool(y, 2, 1, name="pool3"), 1)                                 # (N,72)
    g.output(tn.softmax(tn.fc(y, w["fc"]), dim=1), "prob")
    return g, p


def test_layers_names_shapes_and_weights_read_back(rng):
    t = trt()
    g, p = small_net(rng)
    _, network, keep = create_network(g)
    L = layers(network)
    for n in g.nodes[1:]:
        assert n.name in L, f"no TensorRT layer named {n.name}"
        assert tuple(L[n.name].get_output(0).shape) == tuple(d if isinstance(d, int) else -1 for d in n.shape), n.name
        assert L[n.name].get_output(0).name == n.name
    assert network.num_outputs == 1 and network.get_output(0).name == "prob"
    assert network.get_input(0).name == "data" and tuple(network.get_input(0).shape) == (-1, 3, 11, 11)

    conv = L["c"]
    assert conv.type == t.LayerType.CONVOLUTION and conv.num_output_maps == 4
    assert tuple(conv.kernel_size_nd) == (3, 3) and tuple(conv.stride_nd) == (2, 2) and tuple(conv.padding_nd) == (1, 1)
    np.testing.assert_array_equal(conv.kernel, p["c.weight"].ravel())
    np.testing.assert_array_equal(conv.bias, p["c.bias"])

    bn = L["b"]  # y = x * gamma / sqrt(var + eps) + (beta - mean * gamma / sqrt(var + eps))
    gamma, beta, mean, var = (p[f"b.{k}"].astype(np.float64) for k in ("weight", "bias", "running_mean", "running_var"))
    np.testing.assert_allclose(bn.scale, gamma / np.sqrt(var + 1e-3), rtol=1e-6)
    np.testing.assert_allclose(bn.shift, beta - mean * gamma / np.sqrt(var + 1e-3), rtol=1e-5, atol=1e-6)
    assert bn.mode == t.ScaleMode.CHANNEL

    pool1, pool2 = L["pool1"], L["pool2"]
    assert pool1.type == t.PoolingType.MAX  # IPoolingLayer.type is the pooling type
    assert tuple(pool1.pre_padding) == (1, 1) and tuple(pool1.post_padding) == (1, 1)  # 6 -> 4 as PyTorch's ceil_mode
    assert pool2.type == t.PoolingType.AVERAGE and pool2.average_count_excludes_padding is False
    assert L["prob"].axes == 1 << 1
    assert L["up"].resize_mode == t.InterpolationMode.NEAREST and tuple(L["up"].get_output(0).shape) == (-1, 4, 4, 4)
    fc_w = L["fc/weight"]
    np.testing.assert_array_equal(fc_w.weights, p["fc.weight"].ravel())
    assert L["fc/matmul"].op1 == t.MatrixOperation.TRANSPOSE and L["fc/matmul"].op0 == t.MatrixOperation.NONE


def test_small_net_engine_builds(rng):
    g, _ = small_net(rng)
    plan, info = build_engine(g, (1, 2, 4), progress=False)
    assert len(plan) > 1000 and info.size == len(plan) and info.layers >= len(g.nodes) - 1


@pytest.mark.parametrize("name", ["lenet", "resnet50"])
def test_zoo_engine_builds(name):
    """A real serialized engine from the TensorRT builder, with the zoo's weights inside."""
    state = {k: v.numpy() for k, v in zoo.get(name).torch_module().state_dict().items()}
    g = zoo.get(name).graph(tn.WeightMap(state))
    plan, info = build_engine(g, (1, 2, 4), progress=False)
    n_weights = sum(v.size for k, v in state.items() if "num_batches" not in k)
    assert info.size > 4 * n_weights * 0.9, "fp32 weights are in the plan"
    assert info.outputs == {g.outputs[0].name: g.outputs[0].shape}
    t = trt()
    assert isinstance(info.flavour, str) and t.__version__ in info.flavour


def test_zoo_resnet50_emits_every_torchvision_layer():
    module = zoo.get("resnet50").torch_module()
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    w = tn.WeightMap(state)
    g = zoo.get("resnet50").graph(w)
    assert w.unused() == [], "every torchvision tensor is consumed"
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    _, network, keep = create_network(g)
    kinds = [network.get_layer(i).type for i in range(network.num_layers)]
    assert kinds.count(trt().LayerType.CONVOLUTION) == len(convs) == 53


def test_attention_ops_emit_and_build(rng):
    """permute, slicing, select, matmul, layer_norm, constants and expand: read back and built, with symbolic sizes."""
    t = trt()
    E = 8
    p = {"cls": rng.standard_normal((1, 1, E), dtype=np.float32), "ln.weight": rng.random(E, dtype=np.float32),
         "ln.bias": rng.random(E, dtype=np.float32)}
    w = tn.WeightMap(p)
    g = tn.Graph("attn")
    x = g.input("data", ("N", "T", E), ranges={"N": (1, 2, 4), "T": (1, 4, 8)})
    n = x.shape[0]
    x = tn.concat([tn.expand(tn.constant(x, w, "cls"), (n, 1, E), name="cls_n"), x], 1, name="tokens")  # (N,T+1,E)
    x = tn.layer_norm(x, w["ln"], eps=1e-6)
    q, k = x[:, :, :4], x[:, :, 4:]
    a = tn.softmax(tn.matmul(q, k.transpose(1, 2), name="scores") * 0.5, dim=-1)
    y = tn.permute(tn.matmul(a, k, name="mix"), (2, 0, 1), name="perm")                               # (4,N,T+1)
    g.output(tn.select(y, 2, 0, name="first"), "out")
    _, network, keep = create_network(g)
    L = layers(network)
    for node in g.nodes[1:]:
        if node.name in L:
            got = tuple(L[node.name].get_output(0).shape)
            assert got == tuple(d if isinstance(d, int) else -1 for d in node.shape), node.name
    assert L["perm"].type == t.LayerType.SHUFFLE and tuple(L["perm"].first_transpose)[:3] == (2, 0, 1)
    assert L["scores"].op1 == t.MatrixOperation.NONE and L["mix"].op1 == t.MatrixOperation.NONE
    ln = L["ln"]
    ln.__class__ = t.INormalizationLayer
    assert ln.axes == 1 << 2 and abs(ln.epsilon - 1e-6) < 1e-12
    plan, info = build_engine(g, progress=False)
    assert info.size == len(plan) > 0


def test_fp16_network_reads_back_half_weights_and_builds():
    """--fp16: weights stored as float16 in the layers, float32 inputs and outputs through cast layers."""
    t = trt()
    spec = zoo.get("lenet")
    state = {k: v.numpy() for k, v in spec.torch_module().state_dict().items()}
    g = spec.graph(tn.WeightMap(state))
    _, network, keep = create_network(g, half="fp16")
    L = layers(network)
    conv = L["conv1"]
    assert conv.kernel.dtype == np.float16
    np.testing.assert_array_equal(conv.kernel, state["conv1.weight"].astype(np.float16).ravel())
    assert network.get_input(0).dtype == t.float32 and network.get_output(0).dtype == t.float32
    assert network.get_output(0).name == "prob" and L["data/fp16"].get_output(0).dtype == t.float16
    assert L["conv1"].get_output(0).dtype == t.float16
    plan, info = build_engine(g, (1, 2, 4), progress=False, half="fp16")
    plan32, _ = build_engine(g, (1, 2, 4), progress=False)
    assert info.precision == "fp16" and len(plan) < len(plan32), "half-size weights in the plan"
