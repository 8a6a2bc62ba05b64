"""Object detection end to end: `python -m trtnet.examples.yolo IMAGE --model yolov8n [-o out.png]` prints and
draws detections.

The image is letterboxed to a square (640 by default: resized to fit, padded with grey 114 as Ultralytics pads),
the zoo network decodes boxes and keeps its 300 best candidates, and the host runs the rest of Ultralytics'
post-processing: a confidence threshold (0.25), class-wise NMS (IoU 0.7, torchvision.ops.batched_nms), and
boxes mapped back to the original image. The zoo's weights are seeded random ones unless a weights file is given
(`scripts/export_wts.py yolov8n --checkpoint yolov8n.pt --trust-checkpoint`): detections of random weights are
meaningless but follow the same rules.
"""
import argparse
import os

import numpy as np

from .. import cli
from ..files import write_atomic
from . import Runner

PAD_VALUE = 114
COCO = ("person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign "
        "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie "
        "suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard "
        "tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot "
        "hot_dog pizza donut cake chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
        "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier "
        "toothbrush").split()


def letterbox(image, size=640):
    """(1, 3, size, size) float32 RGB in [0, 1] and (scale, left pad, top pad): the image resized to fit, keeping
    its aspect ratio, and centred on grey."""
    from PIL import Image
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    if (nw, nh) != (w, h):
        image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    left, top = round((size - nw) / 2 - 0.1), round((size - nh) / 2 - 0.1)
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    canvas[top:top + nh, left:left + nw] = image
    return canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255, (r, left, top)


def nms(boxes, scores, classes, conf=0.25, iou=0.7, max_det=300):
    """One image's candidates -> (M, 6) rows [x1, y1, x2, y2, score, class] by decreasing score: scores over
    `conf`, then class-wise NMS."""
    import torch
    from torchvision.ops import batched_nms
    boxes, scores, classes = (torch.as_tensor(np.asarray(a)) for a in (boxes, scores, classes))
    keep = scores > conf
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    kept = batched_nms(boxes, scores, classes, iou)[:max_det]
    return torch.cat([boxes[kept], scores[kept, None], classes[kept, None].float()], 1).numpy()


def unletterbox(dets, shape, frame):
    """Boxes of the letterboxed input mapped back to the original image and clipped to it."""
    r, left, top = frame
    out = dets.copy()
    out[:, [0, 2]] = ((out[:, [0, 2]] - left) / r).clip(0, shape[1])
    out[:, [1, 3]] = ((out[:, [1, 3]] - top) / r).clip(0, shape[0])
    return out


def detect(runner, image, size=640, conf=0.25, iou=0.7):
    """Detections (M, 6) in the image's pixels."""
    x, frame = letterbox(image, size)
    out = runner(images=x)
    return unletterbox(nms(out["boxes"][0], out["scores"][0], out["classes"][0], conf, iou), image.shape, frame)


def draw(image, dets, path):
    from PIL import Image, ImageDraw
    canvas = Image.fromarray(image)
    pen = ImageDraw.Draw(canvas)
    for x1, y1, x2, y2, score, c in dets:
        pen.rectangle((x1, y1, x2, y2), outline=(255, 64, 0), width=2)
        pen.text((x1 + 2, y1 + 1), f"{COCO[int(c)]} {score:.2f}", fill=(255, 64, 0))
    kind = Image.registered_extensions().get(os.path.splitext(path)[1].lower(), "PNG")
    write_atomic(path, lambda f: canvas.save(f, format=kind))   # never half a picture


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m trtnet.examples.yolo", description=__doc__.split("\n")[0])
    p.add_argument("image", help="an image file (PNG, JPEG, ...)")
    p.add_argument("--model", default="yolov8n", choices=("yolov8n", "yolov8s", "yolo11n", "yolo11s"))
    p.add_argument("--size", type=int, default=640, help="letterbox size, a multiple of 32 in 128..1280")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold")
    p.add_argument("-o", "--output", metavar="PNG", help="draw the detections into this file")
    p.add_argument("-v", "--verbose", action="store_true", help="a traceback with any error")
    a = p.parse_args(argv)
    if a.size % 32 or not 128 <= a.size <= 1280:
        p.error(f"--size must be a multiple of 32 in 128..1280, got {a.size}")
    return cli.run_command(a, lambda: run(a), cli.Timeline(show=False))


def run(a):
    """Detect and print (a profile-range or engine error becomes the command's one error line)."""
    from PIL import Image
    try:
        image = np.asarray(Image.open(a.image).convert("RGB"))
    except OSError as e:
        raise cli.UsageError(f"{a.image}: cannot read the image: {e}") from None
    runner = Runner(a.model)
    print(f"network run by: {runner.backend}")
    dets = detect(runner, image, a.size, a.conf, a.iou)
    print(f"{len(dets)} detection{'s' * (len(dets) != 1)} in {a.image} ({image.shape[1]}x{image.shape[0]}, "
          f"{a.model} at {a.size}x{a.size}, conf {a.conf}, IoU {a.iou})")
    for x1, y1, x2, y2, score, c in dets:
        print(f"  {COCO[int(c)]:<14} {score:.4f}  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]")
    if a.output:
        draw(image, dets, a.output)
        print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    cli.exit_now(main())
