"""trtnet.check: planted emission bugs must be caught at the right layer; real models and ONNX files pass."""
import os
import subprocess
import sys

import numpy as np
import torch

import trtnet as tn
from trtnet import harness, zoo
from trtnet.backend import trt
from trtnet.harness import run_torch, torch_reference
from trtnet.check.report import check_graph
from trtnet.emit_trt import EMIT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def zoo_check(name, shape, batch=2):
    spec = zoo.get(name)
    w = tn.WeightMap(harness.export_state(name))
    g = spec.graph(w, shape)
    x = np.random.default_rng(1).standard_normal((batch, *g.inputs[0].shape[1:]), dtype=np.float32)
    out = g.outputs[0].name
    return check_graph(g, {"data": x}, {out: run_torch(torch_reference(spec, w), x, out)})


def layer_named(network, name, cls):
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name == name:
            layer.__class__ = cls
            return layer
    raise KeyError(name)


def plant(monkeypatch, op, target, mutate):
    """Wrap the emitter of `op` so that the layer for node `target` gets `mutate(emission, node)` applied."""
    orig = EMIT[op]

    def buggy(e, n, *xs):
        out = orig(e, n, *xs)
        if n.name == target:
            mutate(e, n)
        return out
    monkeypatch.setitem(EMIT, op, buggy)


def test_lenet_and_resnet18_pass():
    for name, shape in (("lenet", None), ("resnet18", (3, 64, 64))):
        report = zoo_check(name, shape)
        assert report.ok, report.summary() + "\n" + report.table()
        rels = [r.rel for r in report.rows if r.rel is not None]
        assert len(rels) > 10 and max(rels) < 1e-5  # fp32, same order of operations per layer


def test_planted_asymmetric_conv_padding(monkeypatch):
    """Padding (2, 0) instead of (1, 1): same output shape, shifted image; caught at that conv."""
    def bug(e, n):
        conv = layer_named(e.network, n.name, trt().IConvolutionLayer)
        conv.pre_padding, conv.post_padding = (2, 2), (0, 0)
    plant(monkeypatch, "conv", "layer2.0.conv2", bug)
    report = zoo_check("resnet18", (3, 64, 64))
    assert not report.ok and report.first_bad == "layer2.0.conv2", report.table()


def test_planted_fc_weight_reinterpreted(monkeypatch):
    """The flat (out, in) weight read as (in, out) without the transpose: caught at the fc."""
    def bug(e, n):
        mm = layer_named(e.network, f"{n.name}/matmul", trt().IMatrixMultiplyLayer)
        W = n.params["weight"]
        mm.set_input(1, e.constant(W.ravel().reshape(W.shape[1], W.shape[0]), f"{n.name}/bad_weight"))
        mm.op1 = trt().MatrixOperation.NONE
    plant(monkeypatch, "fc", "fc2", bug)
    report = zoo_check("lenet", None)
    assert not report.ok and report.first_bad == "fc2", report.table()


def test_planted_softmax_axis(monkeypatch):
    """axes = 1 << 0 (over the batch) instead of 1 << 1: caught at the softmax."""
    plant(monkeypatch, "softmax", "prob", lambda e, n: setattr(layer_named(e.network, n.name, trt().ISoftMaxLayer), "axes", 1))
    report = zoo_check("lenet", None, batch=4)
    assert not report.ok and report.first_bad == "prob", report.table()


def test_planted_batchnorm_eps(monkeypatch):
    """BatchNorm folded with eps 1e-3 instead of 1e-5: a ~1e-3 relative error, caught at that bn."""
    def bug(e, n):
        scale = layer_named(e.network, n.name, trt().IScaleLayer)
        p = n.params
        s = p["weight"] / np.sqrt(p["running_var"] + 1e-3)
        scale.scale, scale.shift = e.weights(s), e.weights(p["bias"] - p["running_mean"] * s)
    plant(monkeypatch, "bn", "layer1.0.bn1", bug)
    report = zoo_check("resnet18", (3, 64, 64))
    assert not report.ok and report.first_bad == "layer1.0.bn1", report.table()


def test_planted_pool_count_include_pad(monkeypatch):
    """TensorRT's default (padding excluded) where PyTorch counts padding: caught at the pool."""
    g = tn.Graph("pool")
    x = g.input("data", (3, 8, 8))
    g.output(tn.avg_pool(tn.relu(x), 3, 1, 1, name="pool"), "out")
    plant(monkeypatch, "avg_pool", "out",
          lambda e, n: setattr(layer_named(e.network, n.name, trt().IPoolingLayer), "average_count_excludes_padding", True))
    xs = np.random.default_rng(0).standard_normal((2, 3, 8, 8), dtype=np.float32)
    want = torch.nn.functional.avg_pool2d(torch.relu(torch.from_numpy(xs)), 3, 1, 1).numpy()
    report = check_graph(g, {"data": xs}, {"out": want})
    assert not report.ok and report.first_bad == "out", report.table()


def test_check_onnx_file(tmp_path):
    from trtnet.check.onnx import check_onnx_file
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5)).eval()
    zoo.randomize_trivial(model)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, torch.zeros(1, 3, 16, 16), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}})
    report = check_onnx_file(path, batch=3)
    assert report.ok and set(report.final) == {"y"}, report.summary()
    assert sum(r.rel is not None for r in report.rows) >= 3, report.table(True)


def test_check_cli(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export_wts.py"), "lenet"], cwd=tmp_path,
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "trtnet.check", "lenet"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "CONVOLUTION" in r.stdout and "SOFTMAX" in r.stdout and "PASS" in r.stdout
    (tmp_path / "bad.onnx").write_bytes(b"not an onnx file")
    r = subprocess.run([sys.executable, "-m", "trtnet.check", "--onnx", "bad.onnx"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("error: ") and "bad.onnx" in r.stderr


def test_scalar_constants_line_up():
    g = tn.Graph("c")
    x = g.input("data", (4,))
    g.output(x * 0.5 + 1.0, "y")
    xs = np.random.default_rng(0).standard_normal((2, 4), dtype=np.float32)
    report = check_graph(g, {"data": xs}, {"y": xs * 0.5 + 1.0})
    assert report.ok and [r.rel for r in report.rows if r.name == "const"] == [0.0], report.table(True)


def test_fp16_network_checks_at_half_precision():
    """The fp16 network agrees with PyTorch to FP16_TOL, and really computes in half (errors above fp32's)."""
    from trtnet.check.report import FP16_TOL
    spec = zoo.get("resnet18")
    w = tn.WeightMap(harness.export_state("resnet18"))
    g = spec.graph(w, (3, 64, 64))
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64), dtype=np.float32)
    report = check_graph(g, {"data": x}, {"logits": run_torch(torch_reference(spec, w), x, "logits")}, FP16_TOL, half="fp16")
    assert report.ok, report.summary()
    assert 1e-5 < report.final["logits"]["rel"] <= FP16_TOL and report.final["logits"]["top1"] == 1.0


def test_default_batch_counts_every_dynamic_size_at_its_largest(monkeypatch, capsys):
    """The batch checked by default shrinks where the layers' tensors at the ranges' largest sizes (H and W too, not
    the batch alone) would not fit in memory: a large image range on a small machine checks at a smaller batch."""
    from trtnet import cli
    from trtnet.check.__main__ import CHECK_COPIES, default_batch
    g = tn.Graph("big")
    x = g.input("x", ("N", 3, "H", "W"), ranges={"H": (32, 64, 1024), "W": (32, 64, 1024)})
    g.output(tn.relu(tn.relu(x) * 2), "y")
    per_image = cli.memory_needed(g, [{**g.ranges, "N": (1, 1, 1)}])[0]
    assert per_image >= 4 * 3 * 1024 * 1024 * 4          # four (3, 1024, 1024) float32 tensors at least
    monkeypatch.setattr(cli, "available_memory", lambda: int(per_image * CHECK_COPIES * 2.5))
    assert default_batch(g) == (1, 2, 2)
    assert "checking at N=1..2, not 4" in capsys.readouterr().err
