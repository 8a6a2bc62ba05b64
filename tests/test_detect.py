"""trtnet.detect against the packages' own post-processing: Ultralytics' predictors (detect, segment, pose, obb,
and an end-to-end head) on the raw outputs of the same network, from the same letterboxed pixels, and
torchvision's eager detectors (one- and two-stage), on scikit-image's astronaut, coffee and chelsea."""
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
skimage_data = pytest.importorskip("skimage.data")

from trtnet import detect  # noqa: E402

IMAGES = ("astronaut", "coffee", "chelsea")


def image(name):
    return getattr(skimage_data, name)()


def seeded_yolo(cfg, seed=0):
    """Ultralytics' YOLO from its yaml with seeded weights whose scores spread: BatchNorm statistics measured on
    the three pictures (the default ones let the signal fade, leaving every score at the head's prior) and the
    class convolutions scaled down (their logits otherwise saturate the sigmoid)."""
    from ultralytics import YOLO
    torch.manual_seed(seed)
    y = YOLO(cfg)
    m = y.model
    norms = [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    for b in norms:
        b.reset_running_stats()
        b.momentum = None
    m.train()
    with torch.no_grad():
        for name in IMAGES:
            m(torch.from_numpy(detect.letterbox(image(name), 320, auto=True)))
        head = m.model[-1]
        for convs in (head.cv3, getattr(head, "one2one_cv3", None) or []):
            for c in convs:
                c[-1].weight *= 0.2
    m.eval()
    return y


def options(cfg, conf):
    """The predictor's settings: YOLO26's one-to-one head (end to end) where `nms=False` asks for it."""
    return {"imgsz": 320, "conf": conf, "verbose": False, **({"nms": False} if cfg.startswith("yolo26") else {})}


@pytest.fixture(scope="module")
def yolos():
    cache = {}

    def get(cfg):
        if cfg not in cache:
            cache[cfg] = seeded_yolo(cfg)
            cache[cfg].predict(image("coffee"), **options(cfg, 0.25))   # the predictor fuses conv and BatchNorm
        return cache[cfg]
    return get


def rows(d, task):
    """Detections as Ultralytics' Results rows: boxes (or rotated boxes), score, class."""
    return np.concatenate([d.boxes, d.scores[:, None], d.classes[:, None].astype(np.float32)], 1)


# (yaml, task): every task on one family, plus an end-to-end head (top-k in the network, no NMS)
MODELS = [("yolo11n.yaml", "detect"), ("yolo11n-seg.yaml", "segment"), ("yolo11n-pose.yaml", "pose"),
          ("yolo11n-obb.yaml", "obb"), ("yolo26n.yaml", "detect")]


@pytest.mark.parametrize("cfg,task", MODELS)
def test_detections_equal_ultralytics_predictor(cfg, task, yolos):
    """The predictor's letterbox gives the same pixels as ours, and its post-processing of the network's outputs
    (NMS, masks, keypoints, rotated boxes, scaling back) the same detections as trtnet.detect's, exactly: both
    run the same float32 operations on the same outputs. The threshold keeps about 150 candidates."""
    y = yolos(cfg)
    for name in IMAGES:
        img = image(name)
        x = detect.letterbox(img, 320, auto=True)
        with torch.no_grad():
            out = y.predictor.model(torch.from_numpy(x))     # the network the predictor runs
        out = out[0] if isinstance(out, (tuple, list)) else out      # (outputs, training's) for most heads
        outs = [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]
        scores = outs[0][0, :, 4] if y.predictor.model.end2end else outs[0][0, 4:84].max(0)
        conf = float(np.sort(scores)[-150])
        want = y.predict(img[..., ::-1].copy(), **options(cfg, conf))[0]   # Ultralytics reads BGR
        got = detect.postprocess(outs, x.shape[2:], img.shape[:2], task, conf=conf)[0]
        expected = (want.obb if task == "obb" else want.boxes).data.numpy()
        if task == "obb":    # Results.obb rows: x, y, w, h, angle, score, class
            expected = expected[:, [0, 1, 2, 3, 5, 6, 4]]
            got_rows = np.concatenate([rows(got, task)[:, [0, 1, 2, 3, 5, 6]], got.boxes[:, 4:]], 1)
        else:
            got_rows = rows(got, task)
        assert 5 < len(expected) < 150, (name, len(expected))
        np.testing.assert_array_equal(got_rows, expected)
        if task == "segment":
            np.testing.assert_array_equal(got.masks, want.masks.data.numpy().astype(bool))
        if task == "pose":
            np.testing.assert_array_equal(got.keypoints, want.keypoints.data.numpy())


def test_letterbox_matches_ultralytics():
    """Ultralytics' LetterBox (OpenCV resize, grey 114 padding, centred) gives the same pixels, square and
    rectangular (`auto`: padded to a multiple of 32)."""
    from ultralytics.data.augment import LetterBox
    img = image("coffee")
    for auto in (False, True):
        want = LetterBox((320, 320), auto=auto, stride=32)(image=img)
        np.testing.assert_array_equal(detect.letterbox(img, 320, auto=auto)[0],
                                      want.transpose(2, 0, 1).astype(np.float32) / 255)
    assert detect.letterbox(img, 320, auto=True).shape == (1, 3, 224, 320)


def test_picture_shows_masks_keypoints_and_rotated_boxes(tmp_path):
    """Each kind of result lands where its coordinates say: a mask given in the letterboxed input's pixels
    covers its place in the image, keypoints and a rotated box's corners are drawn, the rest is untouched."""
    from PIL import Image
    from trtnet.examples.detect import draw
    img = np.full((100, 200, 3), 40, np.uint8)
    input_hw = (160, 320)                         # 200x100 letterboxed to 320: gain 1.6, no padding
    mask = np.zeros((1, *input_hw), bool)
    mask[:, 16:48, 32:96] = True                  # image rows 10..30, columns 20..60
    dets = detect.Detections(np.array([[20, 10, 60, 30.]], np.float32), np.array([0.9], np.float32),
                             np.array([0]), masks=mask,
                             keypoints=np.array([[[150, 80, 1.0]] * 17], np.float32))
    path = tmp_path / "d.png"
    draw(img, dets, input_hw, {0: "person"}, str(path))
    out = np.asarray(Image.open(path)).astype(int)
    assert out.shape == img.shape
    assert (np.abs(out[15:25, 25:55] - 40).sum(-1) > 30).all(), "the mask is filled"
    assert (out[78:83, 148:153] != 40).any(), "the keypoint is drawn"
    assert (out[50:70, 20:60] == 40).all() and (out[:, 170:] == 40).all(), "nothing elsewhere"
    rotated = detect.Detections(np.array([[100, 50, 60, 20, np.pi / 2]], np.float32), np.array([0.5], np.float32),
                                np.array([3]))
    draw(img, rotated, input_hw, {}, str(path))
    out = np.asarray(Image.open(path)).astype(int)
    assert (out[20:80, 89:92] != 40).any() and (out[20:80, 108:111] != 40).any(), "the long sides stand upright"
    assert (out[45:55, 60:80] == 40).all(), "no horizontal 60 px side"


SCORE_THRESHOLD = {"retinanet": 0.3, "fcos": 0.4, "ssd": 0.1, "ssdlite": 0.1}


class TinySSDBackbone(torch.nn.Module):
    """Six feature maps of SSD300's sizes (38, 19, 10, 5, 3, 1 from 300 pixels) from a few convolutions: SSD300's
    default boxes without VGG-16's work."""

    def __init__(self):
        super().__init__()
        conv = torch.nn.Conv2d
        self.stem = torch.nn.Sequential(conv(3, 16, 3, 2, 1), torch.nn.ReLU(), conv(16, 16, 3, 2, 1), torch.nn.ReLU(),
                                        conv(16, 32, 3, 2, 1), torch.nn.ReLU())
        self.blocks = torch.nn.ModuleList([conv(32, 32, 3, 2, 1) for _ in range(4)] + [conv(32, 32, 3)])

    def forward(self, x):
        x = self.stem(x)
        out = [x]
        for block in self.blocks:
            out.append(torch.relu(block(out[-1])))
        return dict(zip("012345", out))


def small_detector(kind):
    """A torchvision one-stage detector built offline, seeded and small: RetinaNet or FCOS on a ResNet-18 FPN (the
    same classes as the ResNet-50 models, a quarter of the work), SSD300's default boxes and heads on
    TinySSDBackbone, or SSDlite320 as it is. The class convolutions are scaled so that their logits vary by ~2
    across the pictures' positions (seeded ones vary by ~0.05: near-equal scores would leave the order to
    rounding)."""
    from torchvision.models.detection import FCOS, RetinaNet, ssd300_vgg16, ssdlite320_mobilenet_v3_large
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7
    from trtnet.zoo import randomize_trivial
    torch.manual_seed(0)
    threshold = SCORE_THRESHOLD[kind]
    if kind in ("retinanet", "fcos"):
        backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5,
                                       returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
        model = {"retinanet": RetinaNet, "fcos": FCOS}[kind](backbone, num_classes=91, min_size=256, max_size=384,
                                                            score_thresh=threshold)
        last = [model.head.classification_head.cls_logits]
    elif kind == "ssd":
        boxes = ssd300_vgg16(weights=None, weights_backbone=None).anchor_generator
        model = SSD(TinySSDBackbone(), boxes, (300, 300), num_classes=91, score_thresh=threshold)
        last = list(model.head.classification_head.module_list)
    else:
        model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, score_thresh=threshold)
        last = [m[-1] for m in model.head.classification_head.module_list]
    model.eval()
    randomize_trivial(model, 0)
    if kind == "ssdlite":
        measure_norms(model)
    seen = []
    hooks = [c.register_forward_hook(lambda m, i, o: seen.append(o - m.bias[:, None, None])) for c in last]
    with torch.no_grad():
        model([torch.from_numpy(image("coffee")).permute(2, 0, 1).float() / 255])
        factor = 2 / torch.cat([o.flatten() for o in seen]).std()
        for conv in last:
            conv.weight.mul_(factor)
    for h in hooks:
        h.remove()
    return model


def measure_norms(model):
    """BatchNorm statistics of a detector's backbone and head measured on the three pictures (seeded ones let
    MobileNetV3's signal fade until every position scores alike)."""
    norms = [b for b in model.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    for b in norms:
        b.reset_running_stats()
        b.momentum = None
    with torch.no_grad():
        batch, _ = model.transform([torch.from_numpy(image(n)).permute(2, 0, 1).float() / 255 for n in IMAGES])
        model.train()
        model.head(list(model.backbone(batch.tensors).values()))
    model.eval()


PORT_SIZE = {"retinanet": (160, 160), "fcos": (160, 160), "ssd": (300, 300), "ssdlite": (320, 320)}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["retinanet", "fcos", "ssd", "ssdlite"])
def test_torchvision_detections_equal_eager(kind, tmp_path):
    """Backbone, heads, anchors and box decoding ported by trtnet.port and run by the interpreter on the TensorRT
    network, torchvision's candidate selection, clipping and NMS reproduced on the host: the detections of
    torchvision's eager model on the three pictures, boxes within 1e-3 px x the image size, scores within 1e-5
    (SSDlite's 1e-4: its pictures' BatchNorm statistics give logits of ~20, whose float32 rounding through
    MobileNetV3 moves a softmax by ~3e-5), the same classes."""
    from trtnet import harness, zoo
    from trtnet.examples import Runner
    from trtnet.port import port
    from trtnet.port.capture import DetectionHeads
    model = small_detector(kind)
    path = str(tmp_path / "net.py")
    port(DetectionHeads(model), {"x": torch.rand(1, 3, *PORT_SIZE[kind])}, path, dynamic={"x": (2, 3)})
    runner = Runner(path, weights=harness.load_model_weights(zoo.get(path)))
    images = [image(n) for n in IMAGES]
    got = detect.torchvision_detections(model, images, lambda inputs: runner(**inputs))
    with torch.no_grad():
        want = model([torch.from_numpy(i).permute(2, 0, 1).float() / 255 for i in images])
    for g, w, img in zip(got, want, images):
        assert 10 < len(w["scores"]) <= model.detections_per_img
        full = len(w["scores"]) == model.detections_per_img
        assert_same_detections(g, {k: v.numpy() for k, v in w.items()}, 1e-3 * max(img.shape),
                               1e-4 if kind == "ssdlite" else 1e-5, full=full)


class TinyPyramid(torch.nn.Module):
    """Four levels of 32 channels (FCOS's head normalizes groups of them) at strides 8, 16, 32 and 64 (the last
    rounding up, as an FPN's P6 does)."""
    out_channels = 32

    def __init__(self):
        super().__init__()
        self.convs = torch.nn.ModuleList([torch.nn.Conv2d(3, 32, 3, 8, 1)] +
                                         [torch.nn.Conv2d(32, 32, 3, 2, 1) for _ in range(3)])

    def forward(self, x):
        out = []
        for conv in self.convs:
            x = conv(x)
            out.append(x)
        return dict(zip("0123", out))


def tiny_detector(kind):
    """A seeded one-stage detector of five classes on TinyPyramid (images resized to 256..384) or TinySSDBackbone,
    each kind of torchvision's anchors: AnchorGenerator with three aspect ratios (RetinaNet) or one (FCOS),
    DefaultBoxGenerator with SSD300's steps (SSD) or from the grid sizes (SSDlite's)."""
    from torchvision.models.detection import FCOS, RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD
    torch.manual_seed(0)
    sizes = ((16,), (32,), (64,), (128,))
    small = {"min_size": 256, "max_size": 384}
    if kind in ("retinanet", "fcos"):
        ratios = (0.5, 1.0, 2.0) if kind == "retinanet" else (1.0,)
        model = {"retinanet": RetinaNet, "fcos": FCOS}[kind](
            TinyPyramid(), 5, anchor_generator=AnchorGenerator(sizes, (ratios,) * 4), **small).eval()
        with torch.no_grad():       # scores spread (seeded ones sit within 1e-6 of the head's prior)
            model.head.classification_head.cls_logits.weight.mul_(100)
        return model
    steps = [8, 16, 32, 64, 100, 300] if kind == "ssd" else None
    boxes = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2, 3], [2], [2]], steps=steps)
    return SSD(TinySSDBackbone(), boxes, (300, 300), 5).eval()


@pytest.mark.parametrize("kind", ["retinanet", "fcos", "ssd", "ssdlite"])
def test_anchors_and_decoding_are_in_the_network(kind, tmp_path):
    """The ported network, run by the interpreter at two other image sizes and batches, gives the boxes of
    torchvision's own anchor generator and box coder over the head's outputs within 1e-4 px, and the scores its
    postprocess_detections computes within 1e-5: the anchors follow the features' run-time sizes (at 224 x 288
    TinyPyramid's coarsest stride is 224 // 4 = 56 by 288 // 5 = 57, where the example's, 256 and twice it, had
    64; SSD300's default boxes scale with the image size, which torchvision's transform fixes but the network
    leaves free)."""
    from torchvision.models.detection.image_list import ImageList
    from trtnet import harness, zoo
    from trtnet.examples import Runner
    from trtnet.port import port
    from trtnet.port.capture import DetectionHeads
    model = tiny_detector(kind)
    path = str(tmp_path / "net.py")
    example = (256, 256) if kind in ("retinanet", "fcos") else (300, 300)   # strides at 256 and 512 alike
    port(DetectionHeads(model), {"x": torch.rand(1, 3, *example)}, path, dynamic={"x": (0, 2, 3)})
    runner = Runner(path, weights=harness.load_model_weights(zoo.get(path)))
    sizes = ((224, 288), (320, 384)) if kind in ("retinanet", "fcos") else ((320, 384), (384, 320))
    for shape in ((2, 3, *sizes[0]), (1, 3, *sizes[1])):
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        got = runner(x=x.numpy())
        with torch.no_grad():
            features = list(model.backbone(x).values())
            head = model.head(features)
            anchors = model.anchor_generator(ImageList(x, [shape[2:]] * shape[0]), features)
        logits, regression = head["cls_logits"], head["bbox_regression"]
        if kind == "fcos":
            boxes = model.box_coder.decode(regression, torch.stack(anchors))
            scores = torch.sqrt(torch.sigmoid(logits) * torch.sigmoid(head["bbox_ctrness"]))
        else:
            boxes = torch.stack([model.box_coder.decode_single(r, a) for r, a in zip(regression, anchors)])
            scores = torch.softmax(logits, -1) if kind.startswith("ssd") else torch.sigmoid(logits)
        np.testing.assert_allclose(got["boxes"], boxes.numpy(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(got["scores"], scores.numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["retinanet", "fcos", "ssd", "ssdlite"])
def test_host_selection_is_torchvisions(kind):
    """torchvision_detections on DetectionHeads run eagerly gives torchvision's eager detections: the network's
    boxes and scores are its float32 operations on the same values (to the last bit but where a vectorized exp
    rounds otherwise), and the host's thresholds and top-k per level (RetinaNet, FCOS) or per class (SSD),
    clipping, class-wise NMS, cut and scaling back are its postprocessing's. A top-k of 20 makes the groups
    count."""
    from trtnet.port.capture import DetectionHeads
    model = tiny_detector(kind)
    model.score_thresh, model.topk_candidates = 0.0, 20      # every anchor a candidate: the top-k decides
    heads = DetectionHeads(model)
    images = [image(n) for n in IMAGES]
    got = detect.torchvision_detections(model, images, lambda x: heads(torch.from_numpy(x["x"])))
    with torch.no_grad():
        want = model([torch.from_numpy(i).permute(2, 0, 1).float() / 255 for i in images])
    for g, w in zip(got, want):
        assert len(w["scores"]) > 10
        assert_same_detections(g, {k: v.numpy() for k, v in w.items()}, 1e-4, 1e-7,
                               full=len(w["scores"]) == model.detections_per_img)


def assert_same_detections(got, want, box_tol, score_tol=1e-5, full=False):
    """The same detections, order-free among near-equal scores: each expected one matches a distinct found one
    of its class, score within `score_tol`, box within `box_tol`. A detection tied within `score_tol` with another
    of its class may be replaced (which of two tied boxes suppresses the other is up to rounding), and where the
    list is `full` (cut at the maximum count) so may those tied with the last kept score."""
    assert len(got["scores"]) == len(want["scores"])
    free = np.ones(len(got["scores"]), bool)
    last = want["scores"].min() + score_tol if full else -np.inf
    for box, score, label in zip(want["boxes"], want["scores"], want["labels"]):
        same = want["labels"] == label
        if score <= last or (np.abs(want["scores"][same] - score) <= score_tol).sum() > 1:
            continue
        match = free & (got["labels"] == label) & (np.abs(got["scores"] - score) <= score_tol) & \
            (np.abs(got["boxes"] - box).max(1) <= box_tol)
        assert match.any(), f"no detection of class {label}, score {score:.6g}, box {box} found"
        free[np.argmax(match)] = False


def test_same_detections_allows_reordered_ties_only():
    want = {"boxes": np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 4, 4]], np.float32),
            "scores": np.array([0.9, 0.5, 0.5], np.float32), "labels": np.array([1, 2, 3])}
    swapped = {k: v[[0, 2, 1]] for k, v in want.items()}
    assert_same_detections(swapped, want, 1e-3)
    tied = {k: np.concatenate([v, v[1:2]]) for k, v in want.items()}
    tied["labels"][1:] = 2
    other = {k: v.copy() for k, v in tied.items()}
    other["boxes"][1] += 5
    assert_same_detections(other, tied, 1e-3)          # one of two tied boxes of a class replaced by another
    for key, change in (("labels", 1), ("scores", 1e-3), ("boxes", 0.01)):
        wrong = {k: v.copy() for k, v in want.items()}
        wrong[key][1] += change
        with pytest.raises(AssertionError):
            assert_same_detections(wrong, want, 1e-3)


@pytest.mark.slow
def test_command_draws_a_zoo_yolo_as_ultralytics_detects(tmp_path, capsys):
    """`python -m trtnet.examples.detect` on coffee with the zoo's yolov8n (seeded weights): says what ran the
    network, prints Ultralytics' detections (its NMS and scaling on the PyTorch model's output for the same
    pixels) and writes a picture of the image's size."""
    from PIL import Image
    from ultralytics.utils import nms, ops
    from trtnet import harness, zoo
    from trtnet.examples.detect import main
    from trtnet.harness import torch_reference
    from trtnet.weights import WeightMap
    img = image("coffee")
    src, out = tmp_path / "coffee.png", tmp_path / "out.png"
    Image.fromarray(img).save(src)
    assert main([str(src), "--model", "yolov8n", "--size", "320", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "network run by: trtnet.check's CPU interpreter" in text or "network run by: TensorRT engine" in text
    rows = [line.split() for line in text.splitlines() if line.startswith("  ")]
    got = np.array([[float(v) for v in " ".join(r[2:]).strip("[]").split(", ")] + [float(r[1])] for r in rows])
    x = detect.letterbox(img, 320, auto=True)
    module = torch_reference(zoo.get("yolov8n"), WeightMap(harness.export_state("yolov8n")))
    with torch.no_grad():
        want = nms.non_max_suppression(module.raw(torch.from_numpy(x)), 0.25, 0.7)[0]
    want[:, :4] = ops.scale_boxes(x.shape[2:], want[:, :4], img.shape)
    assert len(want) > 0 and got.shape == (len(want), 5)
    np.testing.assert_allclose(got[:, :4], want[:, :4].numpy(), rtol=0, atol=0.06)   # printed to 0.1 px
    np.testing.assert_allclose(got[:, 4], want[:, 4].numpy(), rtol=0, atol=1.5e-4)   # 1e-4 x the head, printed to 1e-4
    assert np.asarray(Image.open(out)).shape == img.shape


@pytest.mark.slow
def test_command_draws_a_torchvision_detector_as_torchvision_detects(tmp_path, capsys):
    """`python -m trtnet.examples.detect` on coffee with a ported SSDlite (seeded weights in the model file's
    safetensors): prints the detections of torchvision's eager model with those weights, at the given --conf,
    and writes a picture of the image's size."""
    from PIL import Image
    from torchvision.models._meta import _COCO_CATEGORIES
    from trtnet.examples.detect import main
    from trtnet.port import port
    from trtnet.port.capture import DetectionHeads
    model = small_detector("ssdlite")
    path, src, out = str(tmp_path / "ssdlite.py"), tmp_path / "coffee.png", tmp_path / "out.png"
    port(DetectionHeads(model), {"x": torch.rand(1, 3, 320, 320)}, path, dynamic={"x": (2, 3)},
         factory="lambda: trtnet.port.capture.DetectionHeads(trtnet.detect.torchvision_detector("
                 "'ssdlite320_mobilenet_v3_large'))", imports=["import trtnet.detect", "import trtnet.port.capture"])
    img = image("coffee")
    Image.fromarray(img).save(src)
    assert main([str(src), "--model", path, "--conf", "0.5", "-o", str(out)]) == 0
    rows = re.findall(r"^  (.+?) +([\d.]+)  \[(.*)\]$", capsys.readouterr().out, re.M)     # name, score, box
    model.score_thresh = 0.5
    with torch.no_grad():
        want = model([torch.from_numpy(img).permute(2, 0, 1).float() / 255])[0]
    assert 5 < len(want["scores"]) == len(rows)
    got = np.array([[float(v) for v in box.split(", ")] + [float(score)] for _, score, box in rows])
    np.testing.assert_allclose(got[:, :4], want["boxes"].numpy(), rtol=0, atol=0.06)   # printed to 0.1 px
    np.testing.assert_allclose(got[:, 4], want["scores"].numpy(), rtol=0, atol=1.5e-4)  # 1e-4 x the head, printed
    assert [r[0] for r in rows] == [_COCO_CATEGORIES[i] for i in want["labels"]]
    assert np.asarray(Image.open(out)).shape == img.shape


def test_command_errors_are_one_line(tmp_path, capsys):
    from trtnet.examples.detect import main
    bad = tmp_path / "not.png"
    bad.write_text("not an image")
    out = tmp_path / "out.png"
    for argv, words in (([str(tmp_path / "missing.png")], "does not exist"), ([str(bad)], "cannot read the image")):
        assert main([*argv, "--model", "yolov8n", "-o", str(out)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("cfg", ["yolo11n-seg.yaml", "yolo26n-pose.yaml"])
def test_ported_outputs_join_into_ultralytics_own(cfg):
    """A trtnet.port.ultralytics model's named outputs, joined, are the tensors its Ultralytics model returns (the
    candidates and prototypes, or an end-to-end head's rows), the task read from their names."""
    from trtnet.port.ultralytics import model
    wrapped = model(cfg)
    head = wrapped.model[-1]
    x = torch.from_numpy(detect.letterbox(image("chelsea"), 320, auto=True))
    with torch.no_grad():
        named = {k: v.numpy() for k, v in wrapped(x).items()}
        head.export = False
        own = wrapped.task_model[0](x)[0]
    outputs, task = detect.joined(named)
    own = own if isinstance(own, tuple) else (own,)
    assert task == cfg.split("-")[1].split(".")[0].replace("seg", "segment")
    assert len(outputs) == len(own)
    for got, want in zip(outputs, own):
        np.testing.assert_array_equal(got, want.numpy())


def two_stage_detectors():
    """torchvision's Faster, Mask and Keypoint R-CNN on one seeded ResNet-18 FPN and RPN (one first-stage network
    serves the three), built offline: small images, 200 proposals and 100 detections (masks, keypoints: 10) per
    image, and the class logits scaled so that scores spread below 1 (seeded ones stay near 1/classes, under the
    score threshold)."""
    from torchvision.models.detection import FasterRCNN, KeypointRCNN, MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from trtnet.zoo import randomize_trivial
    models = {}
    for kind, cls in (("faster", FasterRCNN), ("mask", MaskRCNN), ("keypoint", KeypointRCNN)):
        torch.manual_seed(0)
        backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
        model = cls(backbone, num_classes=2 if kind == "keypoint" else 91, min_size=256, max_size=384,
                    rpn_post_nms_top_n_test=200, box_detections_per_img=100 if kind == "faster" else 10).eval()
        randomize_trivial(model, 0)
        if models:
            model.backbone, model.rpn = models["faster"].backbone, models["faster"].rpn
        with torch.no_grad():
            model.roi_heads.box_predictor.cls_score.weight.mul_(8)
        models[kind] = model
    return models


@pytest.fixture(scope="module")
def two_stage(tmp_path_factory):
    """(detectors, first-stage run): the backbone, FPN and RPN head ported once and run by the interpreter on its
    TensorRT network (or an engine), its outputs kept per input (the three detectors see the same pixels)."""
    from trtnet import harness, zoo
    from trtnet.examples import Runner
    from trtnet.port import port
    from trtnet.port.capture import RegionProposals
    models = two_stage_detectors()
    path = str(tmp_path_factory.mktemp("rcnn") / "rpn.py")
    port(RegionProposals(models["faster"]), {"x": torch.rand(1, 3, 128, 128)}, path, dynamic={"x": (2, 3)})
    runner = Runner(path, weights=harness.load_model_weights(zoo.get(path)))
    seen = {}

    def run(inputs):
        key = (inputs["x"].shape, inputs["x"].tobytes())
        if key not in seen:
            seen[key] = runner(**inputs)
        return seen[key]
    return models, run


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["faster", "mask", "keypoint"])
def test_two_stage_detections_equal_eager(kind, two_stage):
    """Backbone, FPN and RPN head ported; RoIAlign (grid_sample with torchvision's border and outside rules),
    box, mask and keypoint heads as a second trtnet network; torchvision's proposals, decoding, NMS, mask pasting
    and keypoint heatmaps on the host: the detections of torchvision's eager model on the three pictures, boxes
    within 1e-3 px x the image size, scores within 1e-5, the same classes, masks (probabilities) within 1e-4,
    keypoints within 1e-3 px x the image size (a heatmap's argmax could move a whole heatmap cell: none does)."""
    models, run = two_stage
    model = models[kind]
    images = [image(n) for n in IMAGES]
    got = detect.torchvision_two_stage_detections(model, images, run)
    with torch.no_grad():
        want = model([torch.from_numpy(i).permute(2, 0, 1).float() / 255 for i in images])
    for g, w, img in zip(got, want, images):
        w = {k: v.numpy() for k, v in w.items()}
        assert len(w["scores"]) >= min(10, model.roi_heads.detections_per_img) and w["scores"].max() < 0.999
        full = len(w["scores"]) == model.roi_heads.detections_per_img
        assert_same_detections(g, w, 1e-3 * max(img.shape), full=full)
        assert sorted(set(w) - {"boxes", "scores", "labels"}) == sorted(set(g) - {"boxes", "scores", "labels"})
        order = paired(g, w)
        if "masks" in w:
            np.testing.assert_allclose(g["masks"][order], w["masks"], rtol=0, atol=1e-4)
        if "keypoints" in w:
            np.testing.assert_allclose(g["keypoints"][order], w["keypoints"], rtol=0, atol=1e-3 * max(img.shape))
            np.testing.assert_allclose(g["keypoints_scores"][order], w["keypoints_scores"], rtol=1e-4, atol=1e-4)


def paired(got, want):
    """For each expected detection the index of the found one of its class nearest in score and box (detections
    of different classes with near-equal scores may come in either order)."""
    far = np.abs(got["scores"][:, None] - want["scores"][None]) + \
        np.abs(got["boxes"][:, None] - want["boxes"][None]).max(-1) + 1e9 * (got["labels"][:, None] != want["labels"])
    return far.argmin(0)


def test_roi_align_equals_torchvision():
    """detect.multiscale_roi_align as a trtnet network (grid_sample, border clamping, the validity mask, 2x2
    points averaged per bin) equals torchvision's MultiScaleRoIAlign on three levels within 1e-5, boxes reaching
    far outside the map (zeroed points), thinner than a pixel (widened to one) and on every level."""
    import trtnet as tn
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.poolers import _setup_scales
    rng = np.random.default_rng(0)
    image_hw = (96, 128)
    features = [torch.from_numpy(rng.standard_normal((1, 8, 96 // s, 128 // s), dtype=np.float32)) for s in (4, 8, 16)]
    corner, extent = rng.uniform(-60, 150, (60, 2)), rng.uniform(0.2, 300, (60, 2))
    corner[:8], extent[:8] = rng.uniform(0, 90, (8, 2)), rng.uniform(0.2, 3, (8, 2))
    boxes = torch.from_numpy(np.concatenate([corner, corner + extent], 1).astype(np.float32))
    pool = MultiScaleRoIAlign(["0", "1", "2"], 7, 2)
    want = pool(dict(zip("012", features)), [boxes], [image_hw]).numpy()
    scales, mapper = _setup_scales(features, [image_hw], 224, 4)
    levels = torch.nn.functional.one_hot(mapper([boxes]), 3).float().numpy()
    assert (levels.sum(0) > 5).all(), levels.sum(0)
    g = tn.Graph("roi_align")
    maps = [g.input(f"f{i}", tuple(f.shape), batch=False) for i, f in enumerate(features)]
    b, lv = g.input("boxes", ("R", 4), batch=False), g.input("levels", ("R", 3), batch=False)
    g.output(detect.multiscale_roi_align(maps, b, lv, scales, pool), "pooled")
    got = detect.graph_runner(g)({**{f"f{i}": f.numpy() for i, f in enumerate(features)}, "boxes": boxes.numpy(),
                                  "levels": levels})["pooled"]
    assert (want == 0).any(), "some bins lie wholly outside"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg", ["yolo11n.yaml", pytest.param("yolo11n-seg.yaml", marks=pytest.mark.slow)])
def test_nms_layer_keeps_what_ultralytics_nms_keeps(cfg, tmp_path):
    """`nms` in a trtnet.port.ultralytics model ends the network in TensorRT's NMS layer (read back: centre-size
    boxes, TensorRT's largest top-k). Its rows, run by the interpreter on a picture, select what
    Ultralytics' own non_max_suppression selects from the same network's candidates, and trtnet.detect turns
    them into the detections (and masks) its host NMS gives."""
    from ultralytics.utils.nms import non_max_suppression
    from trtnet.check.interp import run_network
    from trtnet.engine import create_network
    from trtnet import zoo
    from trtnet.port import port
    from trtnet.port.ultralytics import Ultralytics
    from trtnet.weights import load_weights
    img = image("chelsea")
    x = detect.letterbox(img, 320, auto=True)
    wrapped = Ultralytics(seeded_yolo(cfg).model)
    with torch.no_grad():
        best = wrapped(torch.from_numpy(x))["scores"][0].amax(-1)
    conf = float(best.sort(descending=True)[0][100])        # about 100 candidates over the threshold
    wrapped.nms = {"conf": conf, "iou": 0.6, "max_det": 300}
    r = port(wrapped, {"images": torch.from_numpy(x)}, str(tmp_path / "y.py"), dynamic={"images": (2, 3)})
    graph = zoo.get(r.path).graph(load_weights(r.weights))
    _, network, _ = create_network(graph)
    layer = next(network.get_layer(i) for i in range(network.num_layers) if "NMS" in str(network.get_layer(i).type))
    trt = __import__(type(layer).__module__.split("_bindings")[0].split(".")[0])
    layer.__class__ = trt.INMSLayer
    assert layer.bounding_box_format == trt.BoundingBoxFormat.CENTER_SIZES and layer.topk_box_limit == 5000
    out = run_network(network, {"images": x})
    named = {k: out[k] for k in out}
    outputs, task = detect.joined(named)
    count = int(named["count"])
    assert named["selected"].shape == (80 * 300, 3) and (named["selected"][count:] == -1).all()
    want = non_max_suppression(torch.from_numpy(outputs[0]), conf, 0.6, nc=80)[0]   # xyxy, score, class, extra
    got = detect.kept(torch.from_numpy(outputs[0][0]), 80, named["selected"], count, 0, 300)
    assert 5 < len(want) == count < 100
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    args = (outputs, x.shape[2:], img.shape[:2], task)
    on_host = detect.postprocess(*args, conf=conf, iou=0.6)[0]
    in_network = detect.postprocess(*args, conf=conf, iou=0.6, selected=(named["selected"], count))[0]
    np.testing.assert_array_equal(rows(in_network, task), rows(on_host, task))
    if task == "segment":
        assert in_network.masks.any() and np.array_equal(in_network.masks, on_host.masks)
