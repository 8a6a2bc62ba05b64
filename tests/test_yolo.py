"""YOLOv8 / YOLO11 against Ultralytics' own DetectionModel: the top-k network vs the wrapper (trtnet.check),
the decoded head before top-k vs DetectionModel's output, post-NMS detections vs Ultralytics' NMS on real
images, engine builds, and the checkpoint loader."""
import numpy as np
import pytest

pytest.importorskip("ultralytics")
torch = pytest.importorskip("torch")

from trtnet import check, zoo  # noqa: E402
from trtnet.build import torch_reference  # noqa: E402
from trtnet.weights import WeightMap  # noqa: E402

TOL = 1e-4
SIZES = ({"N": 1, "H": 160, "W": 160}, {"N": 1, "H": 224, "W": 192})


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(name):
        if name not in cache:
            w = WeightMap(zoo.export_state(name))
            cache[name] = w, torch_reference(zoo.get(name), w)
        return cache[name]
    return get


def interpret(graph, inputs):
    from trtnet.check.interp import run_network
    from trtnet.engine import create_network
    emitted = create_network(graph)
    return run_network(emitted[1], inputs)


def near_tie_swaps_only(report, expected):
    """Where the network's top-k picks differ from the wrapper's, the two scores tie within the tolerance (1e-4
    relative to a neighbour's): the order among equal scores is not defined. Elsewhere boxes and classes agree."""
    scores = expected["scores"]
    differ = (report.values["classes"] != expected["classes"]) | \
        (np.abs(report.values["boxes"] - expected["boxes"]) > TOL * (1 + np.abs(expected["boxes"]))).any(-1)
    gaps = np.abs(np.diff(scores, axis=1)) <= TOL * np.abs(scores[:, 1:])
    near = np.zeros_like(differ)
    near[:, 1:] |= gaps
    near[:, :-1] |= gaps
    return report.final["scores"]["rel"] <= TOL and bool((near | ~differ).all()) and differ.mean() < 0.05


@pytest.mark.parametrize("name", ["yolov8n", pytest.param("yolo11n", marks=pytest.mark.slow)])
def test_topk_network_matches_the_wrapper(name, models):
    from trtnet.build import run_module
    w, module = models(name)
    spec = zoo.get(name)
    graph = spec.graph(w)
    assert w.unused() == [], "every tensor of Ultralytics' state_dict is used"
    assert set(graph.dims) == {"N", "H", "W"}
    for env in SIZES:
        inputs = spec.make_inputs(graph, env)
        report = check(graph, inputs, reference=module, tol=TOL)
        assert report.ok or near_tie_swaps_only(report, run_module(module, graph, inputs)), report.summary()


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_decoded_head_matches_detection_model(name, models):
    from trtnet.zoo.yolo import yolo
    w, module = models(name)
    x = np.random.default_rng(1).random((2, 3, 128, 160), dtype=np.float32)
    out = interpret(yolo(w, (3, "H", "W"), name, raw=True), {"images": x})
    with torch.no_grad():
        raw = module.raw(torch.from_numpy(x)).transpose(1, 2).numpy()
    xy, wh = raw[..., :2], raw[..., 2:4]
    assert out["all_boxes"].shape == (2, 420, 4)
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], -1)
    np.testing.assert_allclose(out["all_boxes"], boxes, rtol=0, atol=TOL * np.abs(boxes).max())
    np.testing.assert_allclose(out["all_scores"], raw[..., 4:], rtol=0, atol=TOL * raw[..., 4:].max())
    assert raw[..., 4:].std() > 1e-4 and wh.std() > 1, "the head's output depends on its input"


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
    from trtnet.examples.yolo import letterbox, nms
    w, module = models(name)
    x, _ = letterbox(getattr(skimage_data, image)(), size)
    with torch.no_grad():
        raw = module.raw(torch.from_numpy(x))
    assert 0 < int((raw[0, 4:].amax(0) > conf).sum()) <= 300
    expected = non_max_suppression(raw, conf, 0.7, max_det=300)[0].numpy()
    out = interpret(zoo.get(name).graph(w), {"images": x})
    ours = nms(out["boxes"][0], out["scores"][0], out["classes"][0], conf, 0.7)
    assert len(expected) > 0 and ours.shape == expected.shape
    np.testing.assert_array_equal(ours[:, 5], expected[:, 5])
    np.testing.assert_allclose(ours[:, :4], expected[:, :4], rtol=0, atol=1e-5 * size)   # coordinates cancel 100s of px
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
    from trtnet.zoo.yolo import ultralytics_state
    path = tmp_path / "yolov8n.pt"
    path.write_bytes(b"not opened")
    with pytest.raises(PermissionError, match="trust"):
        ultralytics_state(str(path))


def test_checkpoint_loads_as_ultralytics_saves_it(tmp_path, models):
    """A checkpoint as Ultralytics writes one (the whole model, in half precision) gives the state_dict the zoo
    network reads."""
    from trtnet.zoo.yolo import detection_model, ultralytics_state
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


def test_export_wts_writes_seeded_weights(tmp_path):
    import importlib.util
    from pathlib import Path
    from trtnet.weights import load_weights
    script = Path(__file__).resolve().parent.parent / "scripts" / "export_wts.py"
    spec = importlib.util.spec_from_file_location("export_wts", script)
    export_wts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export_wts)
    out = tmp_path / "yolov8n.safetensors"
    assert export_wts.main(["yolov8n", "--format", "safetensors", "-o", str(out)]) == 0
    w = load_weights(str(out))
    zoo.get("yolov8n").graph(w)
    assert w.unused() == []
