"""trtnet.quantize: placement, calibration and its cache, ModelOpt ranges, exact checks of the quantized
TensorRT network against the fake-quantized reference (with planted emitter mistakes found at their layer),
the accuracy cost against fp32 on held-out digits, and real engine builds."""
import json
import sys

import numpy as np
import pytest
import torch

import trtnet.emit_trt.quant as eq
from trtnet import harness, zoo
from trtnet.check.report import check_graph
from trtnet.quantize import Histogram, amax_of, calibration, quantize
from trtnet.reference import run_reference
from trtnet.weights import WeightMap


def trained(name):
    spec = zoo.get(name)
    m = spec.torch_module()
    spec.train(m)
    return spec, spec.graph(WeightMap({k: v.numpy() for k, v in m.state_dict().items()}))


@pytest.fixture(scope="module")
def lenet():
    spec, g = trained("lenet")
    return g, spec.calibration()[:512], spec.dataset()   # build calibrates on 512 samples by default


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


def test_fp8_input_scale_keeps_grey_levels(lenet):
    """FP8's network input gets a power-of-two scale: the digits' levels k/16 round trip through E4M3 exactly
    (torch's float8_e4m3fn is the oracle); a quantizer inside the network keeps its calibrated amax / 448."""
    g, calib, _ = lenet
    q = quantize(g, calib, "fp8", method="max", progress=False)
    fq = {n.name: n.params["scale"] for n in q.nodes if n.op == "fake_quant"}
    scale = float(fq["conv1.input_quantizer"])
    assert np.log2(scale) == np.round(np.log2(scale)) and scale * 448 >= calib.max()
    x = torch.from_numpy(np.arange(17, dtype=np.float32) / 16)
    assert torch.equal((x / scale).to(torch.float8_e4m3fn).float() * scale, x)
    assert not torch.equal((x * 448).to(torch.float8_e4m3fn).float() / 448, x)   # amax 1 / 448 rounds them
    inner = next(n for n in g.nodes if n.name == "conv2").inputs[0].name
    assert float(fq["conv2.input_quantizer"]) * 448 == pytest.approx(q.quant["ranges"][0][inner])


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
    report = check_graph(q, inputs, run_reference(q, inputs), 1e-2 if fp16 else 1e-5, half=fp16)
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
    monkeypatch.setattr(calibration, "collect", lambda *a, **k: pytest.fail("calibrated again"))
    b = quantize(g, calib, "int8", method="percentile", cache=str(cache), progress=False)
    assert b.quant["calibration"]["cached"] and not a.quant["calibration"]["cached"]
    with pytest.raises(pytest.fail.Exception):   # other data: calibrated again
        quantize(g, calib[:100], "int8", method="percentile", cache=str(cache), progress=False)


def test_modelopt_ranges(lenet, tmp_path):
    """ModelOpt (nvidia-modelopt, which runs on the CPU here) calibrates the PyTorch module; its amax are used."""
    mtq = pytest.importorskip("modelopt.torch.quantization")
    g, calib, _ = lenet
    m = zoo.get("lenet").torch_module().eval()
    m.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in _state(g).items()}, strict=False)
    x = torch.from_numpy(calib[:64])
    m = mtq.quantize(m, mtq.INT8_DEFAULT_CFG, lambda mm: mm(x))
    path = tmp_path / "modelopt.pth"
    torch.save(m.state_dict(), path)
    q = quantize(g, str(path), "int8")
    fq = {n.name: n for n in q.nodes if n.op == "fake_quant"}
    want = float(m.state_dict()["fc2.input_quantizer._amax"]) / 127
    assert float(fq["fc2.input_quantizer"].params["scale"]) == pytest.approx(want, rel=1e-6)


def test_modelopt_checkpoint_keys(lenet, tmp_path):
    """A state dict laid out as ModelOpt saves one (`<layer>.input_quantizer._amax` beside the weights): its ranges
    are used as given, for the layers it names."""
    g, _, _ = lenet
    state = {k: torch.from_numpy(np.asarray(v)) for k, v in _state(g).items()}
    amax = {"conv1": 1.5, "conv2": 3.25, "fc1": 7.0, "fc2": 5.5, "fc3": 9.0}
    state.update({f"{k}.input_quantizer._amax": torch.tensor(v) for k, v in amax.items()})
    path = tmp_path / "modelopt.pth"
    torch.save(state, path)
    fq = {n.name: n for n in quantize(g, str(path), "int8").nodes if n.op == "fake_quant"}
    for layer, v in amax.items():
        assert float(fq[f"{layer}.input_quantizer"].params["scale"]) == pytest.approx(v / 127, rel=1e-6), layer


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
    plan, info = build_engine(q, half=q.quant["fp16"], progress=False)
    assert len(plan) > 0


@pytest.fixture(scope="module")
def resnet50():
    spec = zoo.get("resnet50")
    g = spec.graph(WeightMap(harness.export_state("resnet50")))
    return g, np.random.default_rng(0).standard_normal((4, 3, 224, 224), dtype=np.float32)


def build_result(g, x, precision, block_size):
    """'built (n MiB)' or the first line of why the build failed."""
    from trtnet.engine import build_engine
    q = quantize(g, x, precision, method="max", progress=False, block_size=block_size)
    try:
        plan, _ = build_engine(q, half=q.quant["fp16"], progress=False)
    except Exception as e:   # noqa: BLE001  (the table records TensorRT's refusal)
        return f"fails: {str(e).splitlines()[0][:120]}"
    return f"built ({len(plan) / 2**20:.0f} MiB)"


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "fp8", "int8-weights", "int4-weights"])
def test_resnet50_engine_builds(resnet50, precision):
    """Every mode builds; INT4 with the fc's weight in blocks of 128 is refused by TensorRT-RTX 1.7, per output
    channel it builds (the fallback `block_size=None` picks)."""
    got = build_result(*resnet50, precision, 128)
    print(f"| resnet50 | {precision} | blocks of 128 (fc) | {got} |")
    if precision == "int4-weights":
        assert got.startswith("fails"), "blockwise INT4 builds now: make blocks the default again"
        got = build_result(*resnet50, precision, None)
        print(f"| resnet50 | {precision} | per output channel | {got} |")
    assert got.startswith("built"), got


@pytest.fixture(scope="module")
def seeded():
    """{name: (spec, fp32 graph)} of the digit models trained as `export_state` trains them (seed 0)."""
    return {k: (zoo.get(k), zoo.get(k).graph(WeightMap(harness.export_state(k)))) for k in ("lenet", "digits_resnet")}


@pytest.mark.slow
@pytest.mark.parametrize("name,precision", [("lenet", "int8"), ("lenet", "fp8"), ("digits_resnet", "int8"),
                                            ("digits_resnet", "fp8")])
def test_default_calibration_accuracy(seeded, name, precision):
    """The default (auto) calibration on 512 calibration digits against fp32 on the 360 held-out ones: within
    0.5 points. FP8 gives the network input a power-of-two scale, so that the digits' 17 grey levels stay exact
    (by amax / 448 they did not, and digits_resnet lost 0.56 points)."""
    spec, g = seeded[name]
    x, labels = spec.dataset()
    q = quantize(g, spec.calibration()[:512], precision, progress=False)
    assert q.quant["calibration"]["method"] == "auto"
    fp32, quant = ((run_reference(m, {"data": x})["prob"].argmax(1) == labels).mean() * 100 for m in (g, q))
    print(f"{name} {precision} ({q.quant['calibration']['chosen']}): fp32 {fp32:.2f}%, quantized {quant:.2f}%")
    assert fp32 > 95 and quant >= fp32 - 0.5


def test_error_along_the_depth_is_drawn(lenet, tmp_path):
    """A quantized check's rows carry each layer's error against the fp32 graph (what --plot draws as
    "quantized vs fp32"), growing from the first quantized layer to the last, at the output the error of the
    quantized network's output against the fp32 graph's."""
    matplotlib = pytest.importorskip("matplotlib")
    from trtnet.check.report import plot_errors
    from trtnet.quantize import check_quantized
    g, calib, (x, _) = lenet
    report = check_quantized(g, "int8", inputs={"data": x[:8]}, calib=calib)
    errors = {r.name: r.fp32 for r in report.rows if r.fp32 is not None}
    want = run_reference(g, {"data": x[:8]})["prob"]
    got = report.values["prob"]
    assert list(errors)[0] == "conv1" and 1e-4 < errors["conv1"] < errors["fc3"] < 0.1
    assert errors["prob"] == pytest.approx(np.abs(got - want).max() / np.abs(want).max(), rel=1e-3)
    with matplotlib.rc_context({"svg.fonttype": "none"}):   # the legend as text
        plot_errors([report], str(tmp_path / "e.svg"))
    assert "quantized vs fp32" in (tmp_path / "e.svg").read_text()


def _cli(tmp, tool, *args):
    import os
    import subprocess
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-m", tool, "lenet", *args], cwd=tmp, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _accuracy(out, precision):
    import re
    m = re.search(rf"accuracy fp32 ([\d.]+)%, {precision} ([\d.]+)% \(([+-][\d.]+) points\) on the held-out set", out)
    assert m, out
    return float(m[1]), float(m[2])


@pytest.fixture(scope="module")
def lenet_dir(tmp_path_factory):
    """A directory with weights/lenet.wts: LeNet trained on the digits' training split, seeded as the export
    script seeds it (an unseeded start gave held-out accuracies from 98.3% to 99.2% between runs)."""
    from trtnet import save_wts
    d = tmp_path_factory.mktemp("lenet")
    (d / "weights").mkdir()
    save_wts(harness.export_state("lenet"), str(d / "weights" / "lenet.wts"))
    return d


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_cli_build_then_check(lenet_dir, precision):
    """Both commands end to end: the network exact against its fake-quantized reference, the held-out accuracy
    within 0.5 points of fp32, and a second build served by the calibration cache."""
    cache = f"{precision}.calib.json"
    out = _cli(lenet_dir, "trtnet.build", f"--{precision}", "--calib-cache", cache, "-o", f"{precision}.engine",
               "--no-engine-cache")
    fp32, quant = _accuracy(out, precision)
    assert quant >= fp32 - 0.5 and "5 of 5 layers quantized (conv 2/2, fc 3/3)" in out, out
    assert "relative error 0," in out and f"written to {cache}" in out, out
    again = _cli(lenet_dir, "trtnet.build", f"--{precision}", "--calib-cache", cache, "-o", f"{precision}.engine",
                 "--no-engine-cache")
    assert f"reused the calibration cache {cache}" in again and _accuracy(again, precision) == (fp32, quant), again
    checked = _cli(lenet_dir, "trtnet.check", f"--{precision}", "--calib-cache", cache, "--keep", "fc3",
                   "--plot", f"{precision}.png")
    assert "PASS (tolerance 1e-05 relative)" in checked and "4 of 5 layers quantized" in checked, checked
    assert f"layer errors drawn in {precision}.png" in checked
    assert (lenet_dir / f"{precision}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _accuracy(checked, precision)[1] >= fp32 - 0.5


def test_cli_refuses_calibration_options_alone(lenet_dir):
    import subprocess
    r = subprocess.run([sys.executable, "-m", "trtnet.build", "lenet", "--calib", "x.npy"], cwd=lenet_dir,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--calib needs a quantization mode" in r.stderr, r.stderr


def test_build_weight_only_modes(lenet_dir, tmp_path):
    """The weight-only modes build fp16 networks, checked at 1e-2 against their reference."""
    import trtnet
    r = trtnet.build("lenet", str(lenet_dir / "weights" / "lenet.wts"), str(tmp_path / "w4.engine"),
                     quantize="int4-weights", progress=False)
    assert r.ok and r.tol == 1e-2 and r.engine.precision == "int4-weights, fp16", r.summary()
    assert "int4-weights (fp16 math, weights INT4): 5 of 5 layers quantized" in r.summary()
    assert r.quant["cost"]["TensorRT network"]["top1"] > 0.95
