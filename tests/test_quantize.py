"""trtnet.quantize: placement, calibration and its cache, ModelOpt ranges, exact checks of the quantized
TensorRT network against the fake-quantized reference (with planted emitter mistakes found at their layer),
the accuracy cost against fp32 on held-out digits, and real engine builds."""
import json
import sys

import numpy as np
import pytest
import torch

import trtnet.emit_trt.quant as eq
from trtnet import zoo
from trtnet.check.report import check_graph
from trtnet.quantize import Histogram, amax_of, quantize
from trtnet.reference import run_reference
from trtnet.weights import WeightMap


def trained(name):
    spec = zoo.get(name)
    m = spec.torch_module()
    spec.train(m)
    return spec, spec.graph(WeightMap({k: v.numpy() for k, v in m.state_dict().items()}))


@pytest.fixture(scope="module")
def lenet():
    from trtnet.zoo.lenet import _digits
    spec, g = trained("lenet")
    return g, _digits()[0][0][:256], spec.dataset()


def sqnr(got, want):
    return 10 * np.log10(np.sum(want ** 2) / max(np.sum((got - want) ** 2), 1e-30))


def test_placement_lenet(lenet):
    q = quantize(lenet[0], lenet[1], "int8", method="max", progress=False)
    ops = {n.name: n.op for n in q.nodes}
    assert ops["conv1"] == "qconv" and ops["fc3"] == "qfc" and ops["conv1.input_quantizer"] == "fake_quant"
    fq = {n.name: n for n in q.nodes if n.op == "fake_quant"}
    assert fq["conv2.weight_quantizer"].attrs["axis"] == 0 and fq["conv2.weight_quantizer"].params["scale"].shape == (16,)
    assert fq["fc1.input_quantizer"].params["scale"].shape == ()
    assert not any(n.op == "fake_quant" and n.inputs[0].op in ("qconv", "qfc") for n in q.nodes)  # inputs only
    kept = quantize(lenet[0], lenet[1], "int8", method="max", keep=["fc3"], progress=False)
    assert {n.name: n.op for n in kept.nodes}["fc3"] == "fc" and "fc3" not in kept.quant["layers"]


def test_residual_adds_and_bn_folded():
    g = zoo.get("digits_resnet").graph(WeightMap({k: v.numpy() for k, v in zoo.get("digits_resnet").torch_module()
                                                  .state_dict().items()}))
    x = np.random.default_rng(0).random((8, 1, 32, 32), dtype=np.float32)
    q = quantize(g, x, "int8", method="max", progress=False)
    assert not any(n.op == "bn" for n in q.nodes)
    adds = [n for n in q.nodes if n.op == "add"]
    assert adds and all(i.op == "fake_quant" for n in adds for i in n.inputs)
    expected = run_reference(q, {"data": x[:2]})
    assert check_graph(q, {"data": x[:2]}, expected, 1e-5).ok


@pytest.mark.parametrize("precision", ["int8", "fp8", "int8-weights", "int4-weights"])
def test_exact_and_accuracy_cost(lenet, precision):
    g, calib, (x, labels) = lenet
    q = quantize(g, calib, precision, method="entropy", progress=False)
    fp16 = q.quant["fp16"]
    inputs = {"data": x[:16]}
    report = check_graph(q, inputs, run_reference(q, inputs), 1e-2 if fp16 else 1e-5, fp16=fp16)
    assert report.ok, report.summary()
    fp32, quant = run_reference(g, {"data": x})["prob"], run_reference(q, {"data": x})["prob"]
    assert (fp32.argmax(1) == quant.argmax(1)).mean() > 0.97
    assert sqnr(quant, fp32) > (8 if precision == "int4-weights" else 20)
    if precision in ("int8", "fp8"):
        assert (quant.argmax(1) == labels).mean() >= (fp32.argmax(1) == labels).mean() - 0.005


@pytest.fixture(scope="module")
def square():
    """conv 8 -> 8 channels then fc 8 -> 8: a wrong axis or a transposed scale still has the right length."""
    import trtnet as tn
    r = np.random.default_rng(1)
    w = WeightMap({"c.weight": r.standard_normal((8, 8, 3, 3)).astype(np.float32) * np.arange(1, 9)[:, None, None, None],
                   "c.bias": r.standard_normal(8).astype(np.float32),
                   "f.weight": r.standard_normal((8, 8)).astype(np.float32) * np.arange(1, 9)[:, None]})
    g = tn.Graph("square")
    y = tn.conv(g.input("x", (8, 6, 6)), w["c"], padding=1)
    g.output(tn.fc(tn.relu(y).mean((2, 3)), w["f"]))
    x = r.standard_normal((16, 8, 6, 6)).astype(np.float32)
    q = quantize(g, x, "int8", method="max", progress=False)
    return q, {"x": x[:2]}


def _check(q, inputs):
    return check_graph(q, inputs, run_reference(q, inputs), 1e-5)


def test_planted_mistakes_name_the_layer(square, monkeypatch):
    q, inputs = square
    assert _check(q, inputs).ok
    place, scale, emit = eq._place, eq._scale, eq._fake_quant
    from trtnet.emit_trt.core import EMIT
    with monkeypatch.context() as m:   # the kernel quantized along its input-channel axis
        m.setattr(eq, "_place", lambda layer, n: place(layer, n) if n.attrs["axis"] != 0 else setattr(layer, "axis", 1))
        assert _check(q, inputs).first_bad == "c.weight_quantizer"
    with monkeypatch.context() as m:   # the scales in reverse order
        m.setattr(eq, "_scale", lambda e, n, x: e.constant(n.params["scale"][::-1].copy(), f"{n.name}/s", helper=True)
                  if n.name == "f.weight_quantizer" else scale(e, n, x))
        assert _check(q, inputs).first_bad == "f.weight_quantizer"
    with monkeypatch.context() as m:   # per tensor instead of per channel
        m.setattr(eq, "_scale", lambda e, n, x: e.constant(n.params["scale"].max(), f"{n.name}/s", helper=True)
                  if n.name == "c.weight_quantizer" else scale(e, n, x))
        m.setattr(eq, "_place", lambda layer, n: None if n.name.startswith("c.weight") else place(layer, n))
        assert _check(q, inputs).first_bad == "c.weight_quantizer"
    with monkeypatch.context() as m:   # Q/DQ on the convolution's output instead of its input
        inner = EMIT["qconv"]

        def late(e, n, x, w):
            y = e.helper(e.network.add_identity(inner(e, n, x, w)), "c/early")
            sq = e.constant(next(k for k in q.nodes if k.name == "c.input_quantizer").params["scale"], "c/s", helper=True)
            qq = e.network.add_quantize(y, sq, e.t.int8)
            return e.named(e.network.add_dequantize(e.helper(qq, "c/q"), sq, e.t.float32), n.name)
        m.setitem(EMIT, "qconv", late)
        m.setitem(EMIT, "fake_quant", lambda e, n, x: e.named(e.network.add_identity(x), n.name)
                  if n.name == "c.input_quantizer" else emit(e, n, x))
        assert _check(q, inputs).first_bad == "c.input_quantizer"


def test_methods_order():
    h = Histogram()
    rng = np.random.default_rng(0)
    h.add(np.concatenate([rng.standard_normal(100000), [40.0]]))
    got = {m: amax_of(h, m) for m in ("max", "percentile", "entropy", "mse")}
    assert got["max"] == pytest.approx(40.0)
    assert all(2.0 < got[m] < 10.0 for m in ("percentile", "entropy")), got
    assert got["percentile"] < got["mse"] < 40.0   # one outlier's squared clipping error outweighs rounding


def test_cache_skips_calibration(lenet, tmp_path, monkeypatch):
    g, calib, _ = lenet
    cache = tmp_path / "calib.json"
    a = quantize(g, calib, "int8", method="percentile", cache=str(cache), progress=False)
    saved = json.loads(cache.read_text())
    assert saved["method"] == "percentile" and "conv1.input_quantizer" not in saved["amax"] and "data" in saved["amax"]
    tq = sys.modules["trtnet.quantize"]   # the package's `quantize` attribute is the function
    monkeypatch.setattr(tq, "collect", lambda *a, **k: pytest.fail("calibrated again"))
    b = quantize(g, calib, "int8", method="percentile", cache=str(cache), progress=False)
    assert b.quant["calibration"]["cached"] and not a.quant["calibration"]["cached"]
    with pytest.raises(pytest.fail.Exception):   # other data: calibrated again
        quantize(g, calib[:100], "int8", method="percentile", cache=str(cache), progress=False)


def test_modelopt_ranges(lenet, tmp_path):
    """ModelOpt (nvidia-modelopt, which runs on the CPU here) calibrates the PyTorch module; its amax are used."""
    mtq = pytest.importorskip("modelopt.torch.quantization")
    from trtnet.zoo.lenet import LeNet
    g, calib, _ = lenet
    m = LeNet().eval()
    m.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in _state(g).items()}, strict=False)
    x = torch.from_numpy(calib[:64])
    m = mtq.quantize(m, mtq.INT8_DEFAULT_CFG, lambda mm: mm(x))
    path = tmp_path / "modelopt.pth"
    torch.save(m.state_dict(), path)
    q = quantize(g, str(path), "int8")
    fq = {n.name: n for n in q.nodes if n.op == "fake_quant"}
    want = float(m.state_dict()["fc2.input_quantizer._amax"]) / 127
    assert float(fq["fc2.input_quantizer"].params["scale"]) == pytest.approx(want, rel=1e-6)


def _state(g):
    out = {}
    for n in g.nodes:
        for k, v in n.params.items():
            out[f"{n.name}.{k}"] = v
    return out


@pytest.mark.parametrize("precision", ["int8", "fp8", "int8-weights", "int4-weights"])
def test_lenet_engine_builds(lenet, precision, tmp_path):
    from trtnet.engine import build_engine
    q = quantize(lenet[0], lenet[1][:64], precision, method="max", progress=False)
    plan, info = build_engine(q, fp16=q.quant["fp16"], progress=False)
    assert len(plan) > 0


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "fp8", "int8-weights", "int4-weights"])
def test_resnet50_engine_builds(precision):
    from trtnet.engine import build_engine
    spec = zoo.get("resnet50")
    m = spec.torch_module().eval()
    g = spec.graph(WeightMap({k: v.numpy() for k, v in m.state_dict().items()}))
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224), dtype=np.float32)
    q = quantize(g, x, precision, method="max", progress=False, block_size=None)
    plan, _ = build_engine(q, fp16=q.quant["fp16"], progress=False)
    assert len(plan) > 0


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_digits_resnet_accuracy(precision):
    from trtnet.zoo.lenet import _digits
    spec, g = trained("digits_resnet")
    x, labels = spec.dataset()
    q = quantize(g, _digits()[0][0][:512], precision, method="entropy", progress=False)
    fp32, quant = run_reference(g, {"data": x})["prob"], run_reference(q, {"data": x})["prob"]
    assert (quant.argmax(1) == labels).mean() >= (fp32.argmax(1) == labels).mean() - 0.005
