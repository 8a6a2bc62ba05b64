"""YOLOv8 / YOLO11 against Ultralytics' own DetectionModel: the top-k network vs the wrapper (trtnet.check),
the decoded head before top-k vs DetectionModel's output, post-NMS detections vs Ultralytics' NMS on real
images, engine builds, and the checkpoint loader."""
import numpy as np
import pytest

pytest.importorskip("ultralytics")
torch = pytest.importorskip("torch")

from trtnet import check, harness, zoo  # noqa: E402
from trtnet.harness import torch_reference  # noqa: E402
from trtnet.weights import WeightMap  # noqa: E402

TOL = 1e-4
SIZES = ({"N": 1, "H": 160, "W": 160}, {"N": 1, "H": 224, "W": 192})


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(name):
        if name not in cache:
            w = WeightMap(harness.export_state(name))
            cache[name] = w, torch_reference(zoo.get(name), w)
        return cache[name]
    return get


def interpret(graph, inputs):
    from trtnet.check.interp import run_network
    from trtnet.engine import create_network
    emitted = create_network(graph)
    return run_network(emitted[1], inputs)


def tie_groups(scores, eps):
    """Runs of consecutive positions of one image's sorted scores whose neighbours differ by at most `eps`."""
    groups, start = [], 0
    for i in range(1, len(scores) + 1):
        if i == len(scores) or scores[i - 1] - scores[i] > eps:
            groups.append(range(start, i))
            start = i
    return groups


def assert_same_candidates(got, want):
    """Top-k outputs agree up to the order of tied scores. Scores compare position by position (sorting makes
    them order-free). Two anchors whose scores differ by less than the score tolerance may come out in either
    order, so boxes and classes compare as sets within each such run of ties; a run reaching the last position
    may hold different anchors (its ties continue past k), so there only its scores count."""
    s_tol = TOL * np.abs(want["scores"]).max()
    b_tol = TOL * np.abs(want["boxes"]).max()
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=0, atol=s_tol)
    for img in range(want["scores"].shape[0]):
        for run in tie_groups(want["scores"][img], s_tol):
            if run.stop == want["scores"].shape[1] and len(run) > 1:
                continue
            left = [(int(got["classes"][img, i]), got["boxes"][img, i]) for i in run]
            for i in run:
                c, box = int(want["classes"][img, i]), want["boxes"][img, i]
                match = [j for j, (cj, bj) in enumerate(left) if cj == c and np.abs(bj - box).max() <= b_tol]
                assert match, f"image {img}, candidate {i} (score {want['scores'][img, i]:.6g}, class {c}, box " \
                              f"{box}) is not among the network's candidates {run.start}..{run.stop - 1}"
                left.pop(match[0])


@pytest.mark.parametrize("name", ["yolov8n", pytest.param("yolo11n", marks=pytest.mark.slow)])
def test_topk_network_matches_the_wrapper(name, models):
    from trtnet.harness import run_module
    w, module = models(name)
    spec = zoo.get(name)
    graph = spec.graph(w)
    assert w.unused() == [], "every tensor of Ultralytics' state_dict is used"
    assert set(graph.dims) == {"N", "H", "W"}
    for env in SIZES:
        inputs = spec.make_inputs(graph, env)
        report = check(graph, inputs, reference=module, tol=TOL)
        assert report.first_bad in (None, "topk.1", "boxes", "gather_1"), report.summary()   # up to the top-k
        assert_same_candidates(report.values, run_module(module, graph, inputs))


def test_tied_candidates_may_swap_but_nothing_else():
    want = {"scores": np.array([[0.9, 0.5, 0.5 - 1e-9, 0.3, 0.1, 0.1]], np.float32),
            "boxes": np.arange(24, dtype=np.float32).reshape(1, 6, 4) * 10,
            "classes": np.array([[1, 2, 3, 4, 5, 6]], np.int32)}

    def changed(order=(0, 1, 2, 3, 4, 5), key=None, at=(0, 3), by=0):
        out = {k: v[:, list(order)].copy() for k, v in want.items()}
        if key:
            out[key][at] += by
        return out
    assert_same_candidates(changed((0, 2, 1, 3, 5, 4)), want)      # tied pairs swapped
    assert_same_candidates(changed(key="classes", at=(0, 5), by=1), want)   # the last run's ties continue past k
    for wrong in (changed((1, 0, 2, 3, 4, 5)), changed(key="classes", by=1), changed(key="boxes", by=1),
                  changed(key="scores", by=1e-3)):
        with pytest.raises(AssertionError):
            assert_same_candidates(wrong, want)


def float64_detection_model(module):
    import copy
    return copy.deepcopy(module.detection_model[0]).double()


def decoded(raw):
    """DetectionModel's (N, 4 + classes, A) output as (N, A, 4) xyxy boxes and (N, A, classes) scores."""
    raw = raw.transpose(1, 2).numpy()
    xy, wh = raw[..., :2], raw[..., 2:4]
    return np.concatenate([xy - wh / 2, xy + wh / 2], -1), raw[..., 4:]


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_decoded_head_matches_detection_model(name, models):
    """Every anchor's decoded box and scores, on photograph-like images (the inputs the BatchNorm statistics were
    measured on), against DetectionModel's fp32 output at 1e-4 of each tensor's largest magnitude."""
    from zoo.yolo import sample_images, yolo
    w, module = models(name)
    graph = yolo(w, (3, "H", "W"), name, raw=True)
    x = sample_images(graph, {"N": 2, "H": 128, "W": 160}, np.random.default_rng(1))["images"]
    out = interpret(graph, {"images": x})
    with torch.no_grad():
        boxes, scores = decoded(module.raw(torch.from_numpy(x)))
    assert out["all_boxes"].shape == (2, 420, 4)
    np.testing.assert_allclose(out["all_boxes"], boxes, rtol=0, atol=TOL * np.abs(boxes).max())
    np.testing.assert_allclose(out["all_scores"], scores, rtol=0, atol=TOL * scores.max())
    assert scores.std() > 1e-4 and (boxes[..., 2:] - boxes[..., :2]).std() > 1, "the head depends on its input"


def test_decoded_head_on_noise_rounds_as_ultralytics_does(models):
    """Uniform noise is far from the images the statistics were measured on: yolo11n's attention logits reach
    ~100 (~8 on photograph-like images), where a softmax turns fp32's relative rounding of its inputs into that
    much more absolute error, and the DFL softmax amplifies again. DetectionModel's own fp32 scores then lie ~1e-4
    from its float64 ones; the network must be no further from float64 than twice that (an emission mistake is
    orders of magnitude more)."""
    from zoo.yolo import yolo
    w, module = models("yolo11n")
    x = np.random.default_rng(1).random((2, 3, 128, 160), dtype=np.float32)
    out = interpret(yolo(w, (3, "H", "W"), "yolo11n", raw=True), {"images": x})
    with torch.no_grad():
        _, fp32 = decoded(module.raw(torch.from_numpy(x)))
        _, fp64 = decoded(float64_detection_model(module)(torch.from_numpy(x).double())[0])
    ultralytics_error = np.abs(fp32 - fp64).max()
    assert 2e-5 < ultralytics_error < 1e-3, "fp32 alone is off by ~1e-4 on this input"
    assert np.abs(out["all_scores"] - fp64).max() <= 2 * ultralytics_error


# (model, image, letterbox size, conf): conf is lowered where the random weights score everything low
DETECTIONS = [("yolov8n", "coffee", 320, 0.25), ("yolov8n", "chelsea", 320, 0.25),
              pytest.param("yolov8n", "chelsea", 640, 0.25, marks=pytest.mark.slow),
              ("yolo11n", "chelsea", 320, 0.002)]


@pytest.mark.parametrize("name,image,size,conf", DETECTIONS)
def test_detections_equal_ultralytics(name, image, size, conf, models):
    """The host's NMS on the network's 300 candidates gives Ultralytics' detections (its NMS on all anchors)
    where no more than 300 anchors pass `conf`."""
    skimage_data = pytest.importorskip("skimage.data")
    from ultralytics.utils.nms import non_max_suppression
    from trtnet.detect import from_candidates, letterbox
    w, module = models(name)
    x = letterbox(getattr(skimage_data, image)(), size)
    with torch.no_grad():
        raw = module.raw(torch.from_numpy(x))
    assert 0 < int((raw[0, 4:].amax(0) > conf).sum()) <= 300
    expected = non_max_suppression(raw, conf, 0.7, max_det=300)[0].numpy()
    out = interpret(zoo.get(name).graph(w), {"images": x})
    found = from_candidates(out["boxes"], out["scores"], out["classes"], (size, size), (size, size), conf, 0.7)[0]
    ours = np.concatenate([found.boxes, found.scores[:, None], found.classes[:, None]], 1)
    expected[:, :4] = expected[:, :4].clip(0, size)         # boxes kept to the image, as the predictor keeps them
    assert len(expected) > 0 and ours.shape == expected.shape
    np.testing.assert_array_equal(ours[:, 5], expected[:, 5])
    # A coordinate is an anchor plus or minus a DFL distance of up to 15 strides (hundreds of px either way), so
    # its rounding scales with the image, not with the coordinate: DetectionModel's own fp32 boxes lie up to
    # 0.014 px (4.5e-5 x 320) from its float64 boxes on coffee at 320, the per-layer errors growing smoothly from
    # 1e-7 to 5e-5 (at the DFL softmax).
    np.testing.assert_allclose(ours[:, :4], expected[:, :4], rtol=0, atol=TOL * size)
    np.testing.assert_allclose(ours[:, 4], expected[:, 4], rtol=0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["yolov8n", "yolo11n", "yolov8s", "yolo11s"])
def test_engine_builds(name, models):
    from trtnet.engine import build_engine, profiles_for
    w, _ = models(name)
    graph = zoo.get(name).graph(w)
    profiles = profiles_for(graph)
    assert profiles[0]["H"] == profiles[0]["W"] == (128, 640, 1280)
    plan, info = build_engine(graph, profiles, progress=False)
    params = sum(v.size for k, v in w.items() if not k.endswith("num_batches_tracked"))
    assert info.size == len(plan) > 3.5 * params, "the engine holds the fp32 weights"


def test_checkpoint_needs_trust(tmp_path):
    from zoo.yolo import ultralytics_state
    path = tmp_path / "yolov8n.pt"
    path.write_bytes(b"not opened")
    with pytest.raises(PermissionError, match="trust"):
        ultralytics_state(str(path))


def test_checkpoint_loads_as_ultralytics_saves_it(tmp_path, models):
    """A checkpoint as Ultralytics writes one (the whole model, in half precision) gives the state_dict the zoo
    network reads."""
    from zoo.yolo import detection_model, ultralytics_state
    model = detection_model("yolov8n")
    zoo.randomize_trivial(model, 3)
    path = tmp_path / "yolov8n.pt"
    torch.save({"model": model.half(), "ema": None, "epoch": -1}, path)
    state = ultralytics_state(str(path), trust=True)
    expected = {k: v.float().numpy() for k, v in model.state_dict().items()}
    assert state.keys() == expected.keys()
    for k in expected:
        np.testing.assert_array_equal(state[k], expected[k])
    zoo.get("yolov8n").graph(WeightMap(state))


def export_wts_script():
    import importlib.util
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "scripts" / "export_wts.py"
    spec = importlib.util.spec_from_file_location("export_wts", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_wts_writes_seeded_weights(tmp_path):
    from trtnet.weights import load_weights
    out = tmp_path / "yolov8n.safetensors"
    assert export_wts_script().main(["yolov8n", "--format", "safetensors", "-o", str(out)]) == 0
    w = load_weights(str(out))
    zoo.get("yolov8n").graph(w)
    assert w.unused() == []


def test_export_wts_unpickles_an_ultralytics_checkpoint_only_when_trusted(tmp_path, capsys):
    from trtnet.weights import load_weights
    from zoo.yolo import detection_model
    model = detection_model("yolov8n")
    zoo.randomize_trivial(model, 5)
    path, out = tmp_path / "yolov8n.pt", tmp_path / "yolov8n.safetensors"
    torch.save({"model": model.half(), "ema": None}, path)
    script = export_wts_script()
    assert script.main(["yolov8n", "--checkpoint", str(path), "--format", "safetensors", "-o", str(out)]) == 1
    assert "--trust-checkpoint" in capsys.readouterr().err and not out.exists()
    assert script.main(["yolov8n", "--checkpoint", str(path), "--trust-checkpoint", "--format", "safetensors",
                        "-o", str(out)]) == 0
    w = load_weights(str(out))
    zoo.get("yolov8n").graph(w)
    assert w.unused() == []
    written = dict(w.items())
    assert written.keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(written[k], v.float().numpy())
