"""Detection pictures: `python -m trtnet.examples.detect IMAGE --model FILE.py [-o out.png] [--engine E]` runs a
detector's model file on an image and prints and draws its boxes, masks, keypoints or rotated boxes.

The model is a file written by `python -m trtnet.port 'trtnet.port.ultralytics:model{"cfg": "yolo11n-seg.yaml"}'`
(named outputs: boxes, scores, the task's mask coefficients, keypoints or angles, a segmentation model's
prototypes; or an end-to-end head's final rows), by `python -m trtnet.port torchvision:retinanet_resnet50_fpn`
(or FCOS, SSD, SSDlite: each anchor's decoded box and class scores) or a zoo YOLO (its best candidates); its
weights are the file's (FILE.safetensors beside it, or --weights), else seeded ones. The image is letterboxed as
Ultralytics' predictor does (a torchvision detector's: resized and normalized by its own transform), the network
runs as a TensorRT engine where one can execute (the --engine file, or one built here), else trtnet.check's CPU
interpreter runs its TensorRT network, and trtnet.detect post-processes as Ultralytics (or torchvision) does.
"""
import argparse
import os

import numpy as np

from .. import cli
from .. import detect as post
from ..files import write_atomic
from . import Runner

ULTRALYTICS = {"size": 640, "conf": 0.25, "iou": 0.7, "max_det": 300}    # its predictor's defaults

# COCO's 80 classes as Ultralytics numbers them
COCO = ("person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign "
        "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie "
        "suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard "
        "tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot "
        "hot_dog pizza donut cake chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
        "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier "
        "toothbrush").split()
# COCO's 17 keypoints: the limbs drawn between them
SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
            (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
COLOURS = ((255, 56, 56), (255, 157, 151), (255, 112, 31), (255, 178, 29), (207, 210, 49), (72, 249, 10),
           (146, 204, 23), (61, 219, 134), (26, 147, 52), (0, 212, 187), (44, 153, 168), (0, 194, 255),
           (52, 69, 147), (100, 115, 255), (0, 24, 236), (132, 56, 255), (82, 0, 133), (203, 56, 255))


def describe(spec):
    """(keypoint shape, class names, end to end, torchvision detector or None) of a model file from its PyTorch
    reference: a trtnet.port.ultralytics model says; a torchvision one-stage detector's names are COCO's in
    torchvision's numbering; else (a zoo YOLO: candidates for NMS) COCO's classes."""
    module = spec.torch_module() if spec.torch_module is not None else None
    detector = getattr(module, "detector", [None])[0]          # trtnet.port.capture.DetectionHeads
    if detector is not None:
        from torchvision.models._meta import _COCO_CATEGORIES
        return (17, 3), dict(enumerate(_COCO_CATEGORIES)), False, detector
    task_model = getattr(module, "task_model", [None])[0]      # trtnet.port.ultralytics.Ultralytics
    if task_model is None:
        return (17, 3), dict(enumerate(COCO)), False, None
    if module.kind in ("rtdetr", "classify"):
        raise ValueError(f"{spec.file}: an Ultralytics {module.kind} model; this example draws YOLO detectors' "
                         "boxes, masks, keypoints and rotated boxes")
    head, names = task_model.model[-1], task_model.names
    if len(names) == len(COCO) and all(v == str(k) for k, v in names.items()):   # a yaml's placeholder names
        names = dict(enumerate(COCO))
    return tuple(getattr(head, "kpt_shape", (17, 3))), names, bool(getattr(head, "end2end", False)), None


def load(a):
    """(Runner, keypoint shape, names, end to end, torchvision detector or None, weights' origin)."""
    from .. import harness, zoo
    from ..weights import WeightFileError
    spec = zoo.get(a.model)
    try:
        weights, origin = harness.load_model_weights(spec, a.weights), None
    except WeightFileError:
        if a.weights:
            raise
        weights, origin = None, "seeded random weights (no weights file found): detections are meaningless"
    runner = Runner(a.model, weights=weights, engine=a.engine)
    return (runner, *describe(spec), origin or weights.source)


def detect(runner, image, a, kpt_shape, end2end, detector=None):
    """(Detections, task, network input size) for one image."""
    if detector is not None:
        return torchvision_detect(runner, image, a, detector)
    graph = runner.graph
    fixed = [d for d in graph.inputs[0].shape[2:] if isinstance(d, int)]
    size = tuple(fixed) if len(fixed) == 2 else a.size
    x = post.letterbox(image, size, auto=len(fixed) < 2)
    out = runner(**{graph.inputs[0].name: x})
    hw = x.shape[2:]
    if "classes" in out and not end2end:          # a zoo YOLO's best candidates
        return post.from_candidates(out["boxes"], out["scores"], out["classes"], hw, image.shape, a.conf,
                                    a.iou, a.max_det)[0], "detect", hw
    outputs, task = post.joined(out)
    selected = (out["selected"], out["count"]) if "selected" in out else None     # the network's NMS layer
    return post.postprocess(outputs, hw, image.shape, task, a.conf, a.iou, a.max_det, kpt_shape=kpt_shape,
                            end2end=end2end, selected=selected)[0], task, hw


def torchvision_detect(runner, image, a, detector):
    """detect() for a torchvision one-stage detector: its transform and thresholds, --size (the longer side),
    --conf, --iou and --max-det replacing them where given."""
    t = detector.transform
    t.min_size, t.max_size = ((a.size,), a.size) if a.size else (t.min_size, t.max_size)
    for key, value in (("score_thresh", a.conf), ("nms_thresh", a.iou), ("detections_per_img", a.max_det)):
        setattr(detector, key, getattr(detector, key) if value is None else value)
    a.conf, a.iou = detector.score_thresh, detector.nms_thresh     # as printed
    shapes = []

    def run(inputs):
        shapes.append(inputs["x"].shape[2:])
        return runner(**inputs)
    found = post.torchvision_detections(detector, [image], run)[0]
    return post.Detections(found["boxes"], found["scores"], found["labels"]), "detect", shapes[0]


def draw(image, dets, input_hw, names, path):
    """The image with each detection's mask (translucent), box or rotated box, label and keypoints."""
    from PIL import Image, ImageDraw
    canvas = image.astype(np.float32)
    colours = [COLOURS[int(c) % len(COLOURS)] for c in dets.classes]
    masks = post.image_masks(dets.masks, input_hw, image.shape) if dets.masks is not None else ()
    for m, colour in zip(masks, colours):
        canvas[m] = canvas[m] * 0.5 + np.float32(colour) * 0.5
    picture = Image.fromarray(canvas.round().astype(np.uint8))
    pen = ImageDraw.Draw(picture)
    for i, (box, score, c) in enumerate(zip(dets.boxes, dets.scores, dets.classes)):
        colour = colours[i]
        if len(box) == 5:
            corners = rotated_corners(box)
            pen.polygon([tuple(p) for p in corners], outline=colour, width=2)
            x1, y1 = corners.min(0)
        else:
            x1, y1, x2, y2 = box
            pen.rectangle((x1, y1, x2, y2), outline=colour, width=2)
        pen.text((x1 + 2, y1 + 1), f"{names.get(int(c), c)} {score:.2f}", fill=colour)
        if dets.keypoints is not None:
            k = dets.keypoints[i]
            seen = k[:, 2] > 0.5 if k.shape[1] == 3 else np.ones(len(k), bool)
            for p, q in SKELETON if len(k) == 17 else ():
                if seen[p] and seen[q]:
                    pen.line((*k[p, :2], *k[q, :2]), fill=colour, width=2)
            for x, y in k[seen, :2]:
                pen.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
    kind = Image.registered_extensions().get(os.path.splitext(path)[1].lower(), "PNG")
    write_atomic(path, lambda f: picture.save(f, format=kind))   # never half a picture


def rotated_corners(box):
    """(4, 2) corners of a rotated box (centre x, centre y, width, height, angle in radians)."""
    x, y, w, h, t = box
    cos, sin = np.cos(t), np.sin(t)
    dx, dy = np.array([w / 2 * cos, w / 2 * sin]), np.array([-h / 2 * sin, h / 2 * cos])
    c = np.array([x, y])
    return np.stack([c + dx + dy, c + dx - dy, c - dx - dy, c - dx + dy])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m trtnet.examples.detect", description=__doc__.split("\n")[0])
    p.add_argument("image", help="an image file (PNG, JPEG, ...)")
    p.add_argument("--model", required=True, help="a model file (FILE.py or FILE.py:NAME) or a zoo YOLO name")
    p.add_argument("--weights", help="its weights file (default: FILE.safetensors beside it, or weights/NAME.*)")
    p.add_argument("--engine", help="a TensorRT engine built from it, run where an engine can execute")
    p.add_argument("--size", type=int, help="letterbox size of a dynamic-size network, multiple of 32 (default "
                   "640; a torchvision detector's: its own)")
    p.add_argument("--conf", type=float, help="confidence threshold (default 0.25; a torchvision detector's: its own)")
    p.add_argument("--iou", type=float, help="NMS IoU threshold (default 0.7; a torchvision detector's: its own)")
    p.add_argument("--max-det", type=int, help="at most this many detections, best first (default 300; a "
                   "torchvision detector's: its own)")
    p.add_argument("-o", "--output", metavar="PNG", help="draw the detections into this file")
    p.add_argument("-v", "--verbose", action="store_true", help="a traceback with any error")
    a = p.parse_args(argv)
    if a.size is not None and (a.size % 32 or not 32 <= a.size <= 1280):
        p.error(f"--size must be a multiple of 32 in 32..1280, got {a.size}")
    return cli.run_command(a, lambda: run(a), cli.Timeline(show=False))


def run(a):
    from PIL import Image
    for path, what in ((a.image, "IMAGE"), (a.engine, "--engine"), (a.weights, "--weights")):
        cli.check_input_file(path, what)
    if a.output:
        cli.check_output(a.output)
    try:
        image = np.asarray(Image.open(a.image).convert("RGB"))
    except (OSError, ImportError) as e:    # ImportError: a decoder plugin another package registered is missing
        raise cli.UsageError(f"{a.image}: cannot read the image: {e}") from None
    runner, kpt_shape, names, end2end, detector, origin = load(a)
    if detector is None:
        for key, value in ULTRALYTICS.items():
            setattr(a, key, value if getattr(a, key) is None else getattr(a, key))
    print(f"network run by: {runner.backend}")
    print(f"weights: {origin}")
    dets, task, hw = detect(runner, image, a, kpt_shape, end2end, detector)
    print(f"{len(dets)} detection{'s' * (len(dets) != 1)} ({task}) in {a.image} ({image.shape[1]}x{image.shape[0]}, "
          f"network input {hw[1]}x{hw[0]}, conf {a.conf}, " +
          ("NMS in the network, with its own IoU)" if any(o.name == "selected" for o in runner.graph.outputs) else f"IoU {a.iou})"))
    for i, (box, score, c) in enumerate(zip(dets.boxes, dets.scores, dets.classes)):
        extra = f"  mask {int(dets.masks[i].sum())} px" if dets.masks is not None else ""
        print(f"  {str(names.get(int(c), c)):<14} {score:.4f}  [{', '.join(f'{v:.1f}' for v in box)}]{extra}")
    if a.output:
        draw(image, dets, hw, names, a.output)
        print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    cli.exit_now(main())
