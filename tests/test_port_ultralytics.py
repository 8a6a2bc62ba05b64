"""Ultralytics models through trtnet.port: the prepared model's named outputs equal Ultralytics' own eval forward,
each task's port checks against the model, and the port of yolov8n computes what the hand-written zoo network
computes with the same weights."""
import numpy as np
import pytest

pytest.importorskip("ultralytics")
torch = pytest.importorskip("torch")

from trtnet.port.ultralytics import corpus, model  # noqa: E402

TOL = 1e-4


def own_forward(m, x):
    """Ultralytics' eval forward (not export form): its first output, as the package's predictor reads it."""
    head = m.model[-1]
    head.export = False
    try:
        with torch.no_grad():
            return m.task_model[0].predict(x)[0]
    finally:
        head.export = True


def joined(m, y):
    """The wrapper's named outputs laid out as Ultralytics' own first output."""
    if "probabilities" in y:
        return y["probabilities"]
    if "classes" in y:       # top-k: (N, k, 6 + extra)
        parts = [y["boxes"], y["scores"][..., None], y["classes"][..., None].float()]
    else:                    # every anchor: (N, 4 + classes + extra, anchors)
        parts = [y["boxes"], y["scores"]]
    parts += [y[k] for k in ("mask_coefficients", "keypoints", "angles") if k in y]
    out = torch.cat(parts, -1)
    return out if "classes" in y else out.transpose(1, 2)


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo26n.yaml",
                                 *(pytest.param(c, marks=pytest.mark.slow) for c in
                                   ("yolov8n-seg.yaml", "yolov8n-pose.yaml", "yolov8n-obb.yaml", "yolov8n-cls.yaml",
                                    "yolo26n-pose.yaml"))])
def test_named_outputs_equal_ultralytics_own_forward(cfg):
    m = model(cfg)
    x = torch.rand(2, 3, 128, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = m(x)
    want = own_forward(m, x)
    proto = None
    if isinstance(want, tuple):
        want, proto = want
    got = joined(m, y)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5 * float(want.abs().max()))
    if proto is not None:
        assert torch.equal(y["prototypes"], proto)
    if "classes" in y:
        assert y["boxes"].shape == (2, 300, 4) and y["classes"].dtype == torch.int32
        assert len(set(y["scores"][0].tolist())) > 250, "seeded weights give distinct scores, not ties"


def test_corpus_lists_every_family_and_task_from_the_package():
    rows = dict(corpus())
    assert rows["yolov8-seg"] == "yolov8n-seg.yaml" and rows["yolo26-pose"] == "yolo26n-pose.yaml"
    assert rows["yolov10-det"] == "yolov10n.yaml" and rows["yolov9-det"] == "yolov9t.yaml"
    assert rows["rtdetr-det"] == "rtdetr-l.yaml"
    assert {"yolov8-p2", "yolov8-ghost-det", "yoloe-11-seg"}.isdisjoint(rows)


def interpret(graph, inputs):
    from trtnet.check.interp import run_network
    from trtnet.engine import create_network
    return run_network(create_network(graph)[1], inputs)


def port(tmp_path, cfg, size=128):
    from trtnet.port import port_spec
    path = tmp_path / (cfg[:-5].replace("-", "_") + ".py")
    r = port_spec(f'trtnet.port.ultralytics:model{{"cfg": "{cfg}"}}', str(path),
                  {"images": ((1, 3, size, size), "float32")}, {"images": (0, 2, 3)}, check=True)
    assert r.ok, r.report.summary()
    return r


def test_port_of_yolov8n_equals_the_hand_written_network(tmp_path):
    """The same weights in the ported file and in zoo/yolo.py: every anchor's box (xywh there, xyxy here) and
    class scores agree at 1e-4 of their largest magnitude, at a size other than the one ported at."""
    from trtnet import zoo
    from trtnet.weights import load_weights
    from zoo.yolo import sample_images, yolo
    r = port(tmp_path, "yolov8n.yaml")
    w = load_weights(r.weights)
    ported = zoo.get(r.path).graph(w)
    hand = yolo(w, (3, "H", "W"), "yolov8n", raw=True)
    x = sample_images(hand, {"N": 2, "H": 160, "W": 192}, np.random.default_rng(0))["images"]
    got, want = interpret(ported, {"images": x}), interpret(hand, {"images": x})
    xy, wh = got["boxes"][..., :2], got["boxes"][..., 2:]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], -1)
    assert boxes.shape == want["all_boxes"].shape == (2, 630, 4)
    np.testing.assert_allclose(boxes, want["all_boxes"], rtol=0, atol=TOL * np.abs(want["all_boxes"]).max())
    np.testing.assert_allclose(got["scores"], want["all_scores"], rtol=0, atol=TOL * want["all_scores"].max())
    assert want["all_scores"].std() > 1e-4, "the scores depend on the image"


@pytest.mark.slow
@pytest.mark.parametrize("cfg", ["yolov8n-seg.yaml", "yolov8n-pose.yaml", "yolov8n-obb.yaml", "yolov8n-cls.yaml",
                                 "yolo26n.yaml"])
def test_port_checks_against_the_model(cfg, tmp_path):
    r = port(tmp_path, cfg)
    outputs = set(r.report.final)
    assert {"boxes", "scores"} <= outputs or outputs == {"probabilities"}


@pytest.mark.slow
def test_rtdetr_port_checks_against_the_model(tmp_path):
    """RT-DETR: deformable attention through grid samples, a query selection whose near-tied encoder scores the
    network orders otherwise (the check follows its choice through the decoder), and a top-k over query x class."""
    from trtnet.port import port_spec
    r = port_spec('trtnet.port.ultralytics:model{"cfg": "rtdetr-l.yaml"}', str(tmp_path / "rtdetr.py"),
                  {"images": ((1, 3, 128, 128), "float32")}, {"images": (0, 2, 3)}, check=True)
    assert r.ok, r.report.summary()
    assert set(r.report.final) == {"boxes", "scores", "classes"}
    assert sum(row.kind == "GRID_SAMPLE" for row in r.report.rows) == 18   # 6 decoder layers x 3 levels


TINY_RTDETR = """nc: 4
backbone:
  - [-1, 1, Conv, [16, 3, 2]]
  - [-1, 1, Conv, [16, 3, 2]]
  - [-1, 1, Conv, [32, 3, 2]]
  - [-1, 1, Conv, [32, 3, 2]]
  - [-1, 1, Conv, [32, 3, 2]]
head:
  - [-1, 1, AIFI, [64, 2]]
  - [[2, 3, 5], 1, RTDETRDecoder, [nc, 32, 20, 4, 2, 2, 64]]
"""


def test_rtdetr_with_a_dynamic_image_size_checks_at_other_sizes(tmp_path, capsys):
    """RT-DETR's anchors and AIFI's positional table come from the feature maps' run-time sizes (grid / w,
    arange(h)): one port at 64x64 checks against the model at another batch and a non-square size. A small
    RT-DETR of the package's own modules (AIFI, RTDETRDecoder with 2 decoder layers) keeps it quick."""
    from trtnet.check.__main__ import main as check
    from trtnet.port.__main__ import main
    cfg = tmp_path / "rtdetr-tiny.yaml"
    cfg.write_text(TINY_RTDETR)
    out = str(tmp_path / "rtdetr_tiny.py")
    spec = f'trtnet.port.ultralytics:model{{"cfg": "{cfg}"}}'
    assert main([spec, "-o", out, "--input", "images:1x3x64x64", "--dynamic", "images:0,2,3"]) == 0
    assert "ranges={'H': (32, 64, 128), 'W': (32, 64, 128)}" in open(out).read()
    capsys.readouterr()
    for shape in ("2x3x64x64", "1x3x96x128"):
        assert check([out, "--shapes", f"images:{shape}", "-q"]) == 0
        text = capsys.readouterr().out
        n, _, h, w = shape.split("x")
        assert f"N={n}, H={h}, W={w}" in text and "PASS" in text, text


def test_checkpoint_loads_only_when_trusted(tmp_path):
    """An Ultralytics checkpoint is a pickle: refused unless trusted; trusted, it gives the saved model's outputs."""
    saved = model("yolov8n-cls.yaml")
    path = tmp_path / "cls.pt"
    torch.save({"model": saved.task_model[0]}, path)
    with pytest.raises(PermissionError, match="trust_checkpoint"):
        model(checkpoint=str(path))
    loaded = model(checkpoint=str(path), trust_checkpoint=True)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x)["probabilities"], saved(x)["probabilities"])


def test_task_model_specs_and_checkpoints_reach_the_export_form(tmp_path, capsys):
    """`ultralytics.nn.tasks:<Task>Model{"cfg": ...}` ports the model in export form (named, decoded outputs); a
    FILE.pt checkpoint is refused on one line without --trust-checkpoint and ported with it."""
    from trtnet.port.__main__ import main
    from trtnet.port.capture import load_spec
    module, (src, name, kwargs) = load_spec('ultralytics.nn.tasks:ClassificationModel{"cfg": "yolov8n-cls.yaml", '
                                            '"verbose": false}')
    assert (src, name, kwargs) == ("trtnet.port.ultralytics", "model", {"cfg": "yolov8n-cls.yaml"})
    assert set(module(torch.zeros(1, 3, 64, 64))) == {"probabilities"}
    path = tmp_path / "cls.pt"
    torch.save({"model": module.task_model[0]}, path)
    out = tmp_path / "cls.py"
    argv = [str(path), "-o", str(out), "--input", "images:1x3x64x64"]
    assert main(argv) == 1 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--trust-checkpoint" in err[0], err
    assert main([*argv, "--trust-checkpoint"]) == 0 and out.exists()


def test_nms_option_is_refused_where_no_nms_follows():
    """NMS-free heads, classifiers and rotated boxes (probabilistic IoU) take no NMS layer; settings are checked."""
    for cfg, words in (("yolo26n.yaml", "NMS-free"), ("yolov8n-cls.yaml", "classifies"),
                       ("yolov8n-obb.yaml", "probabilistic IoU")):
        with pytest.raises(ValueError, match=words):
            model(cfg, nms=True)
    with pytest.raises(ValueError, match="unknown setting.*conf_thres"):
        model("yolov8n.yaml", nms={"conf_thres": 0.3})
    assert model("yolo26n.yaml", end2end=False, nms={"iou": 0.5}).nms == {"conf": 0.25, "iou": 0.5, "max_det": 300}


def test_spec_with_nms_ports_to_the_nms_layer(tmp_path):
    """The command line's spec form: the model file calls tn.nms on the decoded candidates, batch and image size
    dynamic, and checks against the model (rows and count equal)."""
    from trtnet.port import port_spec
    r = port_spec('trtnet.port.ultralytics:model{"cfg": "yolov8n.yaml", "nms": {"conf": 0.05}}',
                  str(tmp_path / "y.py"), {"images": ((1, 3, 128, 160), "float32")}, {"images": (0, 2, 3)}, check=True)
    assert r.ok, r.report.summary()
    code = (tmp_path / "y.py").read_text()
    assert "nms(" in code and "300, 0.7, 0.05, 'center', 5000)" in code
    assert {"selected", "count"} <= set(r.report.final)
