"""MTCNN face detection end to end: `python -m trtnet.examples.mtcnn IMAGE [-o out.png]`.

The three zoo networks (mtcnn_pnet, mtcnn_rnet, mtcnn_onet, facenet-pytorch's weights) run through TensorRT;
the steps between them follow facenet-pytorch's `MTCNN.detect` (keep_all, largest face first) so that boxes,
probabilities and landmarks agree with it: an image pyramid, P-Net proposals with NMS per scale and over all
scales, box regression, squaring, R-Net on 24x24 crops, O-Net on 48x48 crops with landmarks, and a final NMS
that measures overlap against the smaller box.

`--int8` (or `--fp8`) quantizes the three networks, calibrated on scikit-image pictures other than the ones
shown (and its LFW faces for R-Net and O-Net); FP8 keeps each network's first convolution, whose input is the
8-bit image, in fp32. On astronaut and coffee both find fp32's faces within 2 px (INT8 0.81, FP8 1.69); on
`collage()` (four people's faces) they do not (INT8 10.9 px, FP8 a fifth face): a face's box is the best of
near-tied O-Net candidates up to 6.6 px apart, which fp32 itself reorders under 1 or 2 grey levels of noise in the
picture, and each quantized network errs as fp32 does with about 2; at larger sizes, or with other faces that
ship, they miss too (docs/quantization.md).
"""
import argparse
import os

import numpy as np

from .. import cli
from ..files import write_atomic
from . import Runner

MIN_FACE = 20
THRESHOLDS = (0.6, 0.7, 0.7)
FACTOR = 0.709


# calibration images: scikit-image's own, none of them the ones detection is shown or tested on
CALIBRATION = ("camera.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "horse.png", "ihc.png")
NETS = ("pnet", "rnet", "onet")
# layers left unquantized, per precision: FP8's 3 mantissa bits cannot hold the 256 grey levels of the image the
# first convolution reads: quantized alone it costs the most of any layer in each network (output SQNR 25.9, 23.4,
# 29.6 dB), and keeping it takes P-Net from 24.9 to 32.6 dB, R-Net's probability from 22.2 to 29.2, O-Net from
# 29.2 to 39.5 (`advise` on crops of the calibration pictures)
KEEP = {"fp8": ("conv1",)}


class Nets:
    """The three networks; `precision` (int8, fp8, ...) quantizes each, calibrated on the inputs it receives
    when the fp32 pipeline runs over `calibration` (RGB images)."""

    def __init__(self, precision=None, calibration=None):
        ranges = calibrated(precision, calibration or skimage_images(CALIBRATION)) if precision else {}
        self.pnet, self.rnet, self.onet = (Runner(f"mtcnn_{k}", transform=ranges.get(k)) for k in NETS)
        self.backend = self.pnet.backend

    def quantized(self):
        """'pnet 5 of 5, ...': each network's weighted layers (conv, fc) that run quantized."""
        return ", ".join(f"{k} {sum(n.op in ('qconv', 'qfc') for n in g.nodes)} of "
                         f"{sum(n.op in ('conv', 'fc', 'qconv', 'qfc') for n in g.nodes)}"
                         for k, g in ((k, getattr(self, k).graph) for k in NETS))


def skimage_images(names):
    import skimage
    from PIL import Image
    return [Image.open(os.path.join(os.path.dirname(skimage.__file__), "data", n)).convert("RGB") for n in names]


# the collage's faces: (package, file in it, the face's box as fp32 finds it on the whole picture)
FACES = (("skimage", "data/astronaut.png", (181, 62, 268, 172)),
         ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", (174, 120, 356, 341)),
         ("ultralytics", "assets/zidane.jpg", (559, 262, 670, 430)),
         ("ultralytics", "assets/zidane.jpg", (909, 97, 1048, 285)))


def collage(width=75, tile=256):
    """A (2 tile)^2 picture of four different people's faces, each scaled to `width` pixels across in its own
    tile: pictures that ship with scikit-image, matplotlib and Ultralytics (ImportError names a missing one)."""
    import importlib.util
    from PIL import Image
    out = Image.new("RGB", (2 * tile, 2 * tile))
    for k, (package, name, (x1, y1, x2, y2)) in enumerate(FACES):
        spec = importlib.util.find_spec(package)
        if spec is None:
            raise ImportError(f"the collage needs a picture from {package}, which is not installed")
        image = Image.open(os.path.join(spec.submodule_search_locations[0], name)).convert("RGB")
        side, cx, cy = tile * (x2 - x1) / width, (x1 + x2) / 2, (y1 + y2) / 2
        crop = image.crop(tuple(round(v) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)))
        out.paste(crop.resize((tile, tile), Image.BILINEAR), (tile * (k % 2), tile * (k // 2)))
    return out


class _Recorder:
    """A network's fp32 reference executor that keeps its inputs: each net's calibration data."""

    def __init__(self, name):
        from .. import harness, zoo
        from ..weights import WeightMap
        self.graph, self.seen = zoo.get(name).graph(WeightMap(harness.export_state(name))), []

    def __call__(self, **inputs):
        from ..reference import run_reference
        self.seen.append(inputs["images"])
        return run_reference(self.graph, inputs)


def lfw_faces(size):
    """scikit-image's 200 LFW faces (25x25 grey) as the network's normalised (200, 3, size, size) input."""
    import skimage
    import torch
    import torch.nn.functional as F
    x = np.load(os.path.join(os.path.dirname(skimage.__file__), "data", "lfw_subset.npy"))
    x = torch.from_numpy(x).float()[:, None].repeat(1, 3, 1, 1) * 255
    return normalized(F.interpolate(x, size=(size, size), mode="area"))


def calibration_data(images):
    """{net: its calibration inputs}: the fp32 pipeline run over `images`; P-Net's are 48x48 tiles of the pyramid
    levels it saw, R-Net's and O-Net's the crops they were given and scikit-image's LFW faces (the pictures hold
    few faces, and a face's crop is what their regression must get right)."""
    import types
    rec = types.SimpleNamespace(**{k: _Recorder(f"mtcnn_{k}") for k in NETS})
    for image in images:
        detect(rec, image)
    tiles = [x[:, :, i:i + 48, j:j + 48] for x in rec.pnet.seen for i in range(0, x.shape[2] - 47, 48)
             for j in range(0, x.shape[3] - 47, 48)]
    return {"pnet": np.concatenate(tiles)[::max(1, len(tiles) // 512)],
            "rnet": np.concatenate(rec.rnet.seen + [lfw_faces(24)])[::2],
            "onet": np.concatenate(rec.onet.seen + [lfw_faces(48)])}


def calibrated(precision, images):
    """{net: graph -> quantized graph}, calibrated on calibration_data(images)."""
    from ..quantize import quantize
    data = calibration_data(images)
    return {k: (lambda g, x=data[k]: quantize(g, x, precision, keep=KEEP.get(precision, ()), samples=len(x),
                                              progress=False)) for k in NETS}


def pyramid(h, w, min_face=MIN_FACE, factor=FACTOR):
    """Scales that bring faces of min_face pixels and up to P-Net's 12-pixel window."""
    scale = 12.0 / min_face
    side, scales = min(h, w) * scale, []
    while side >= 12:
        scales.append(scale)
        scale, side = scale * factor, side * factor
    return scales


def normalized(x):
    return ((x - 127.5) * 0.0078125).numpy()


def nms(boxes, iou):
    """Indices kept by greedy IoU suppression of (K, 5+) boxes by their column-4 scores, best first."""
    import torch
    from torchvision.ops import batched_nms
    return batched_nms(boxes[:, :4], boxes[:, 4], torch.zeros(len(boxes), dtype=torch.int64), iou)


def cells(reg, prob, scale, threshold):
    """(K, 9) candidates [x1 y1 x2 y2 score dx1 dy1 dx2 dy2] from P-Net's grid: each cell a 12x12 window at
    stride 2 in the scaled image, mapped back to image pixels."""
    import torch
    face = prob[:, 1]
    mask = face >= threshold
    where = mask.nonzero()
    offsets = reg.permute(1, 0, 2, 3)[:, mask].permute(1, 0)
    xy = where[:, 1:].to(reg.dtype).flip(1)
    return torch.cat([((2 * xy + 1) / scale).floor(), ((2 * xy + 12) / scale).floor(), face[mask][:, None],
                      offsets], 1)


def propose(nets, img):
    import torch
    import torch.nn.functional as F
    h, w = img.shape[2:]
    found = []
    for scale in pyramid(h, w):
        data = F.interpolate(img, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
        out = nets.pnet(images=normalized(data))
        boxes = cells(torch.from_numpy(out["reg"]), torch.from_numpy(out["prob"]), scale, THRESHOLDS[0])
        found.append(boxes[nms(boxes, 0.5)])
    boxes = torch.cat(found)
    boxes = boxes[nms(boxes, 0.7)]
    sides = (boxes[:, 2:4] - boxes[:, 0:2]).repeat(1, 2)
    return square(torch.cat([boxes[:, :4] + boxes[:, 5:9] * sides, boxes[:, 4:5]], 1))


def square(boxes):
    """Each box grown to a square on the longer side, about its centre."""
    import torch
    wh = boxes[:, 2:4] - boxes[:, 0:2]
    side = torch.max(wh[:, 0], wh[:, 1])[:, None]
    start = boxes[:, 0:2] + wh * 0.5 - side * 0.5
    return torch.cat([start, start + side, boxes[:, 4:]], 1)


def regress(boxes, reg):
    """Corners moved by the regression output in units of the box's inclusive width and height."""
    import torch
    size = (boxes[:, 2:4] - boxes[:, 0:2] + 1).repeat(1, 2)
    return torch.cat([boxes[:, :4] + reg * size, boxes[:, 4:]], 1)


def crops(img, boxes, size):
    """(K, 3, size, size) area-resampled crops: corners truncated to pixels and clipped to the image (1-based)."""
    import torch
    import torch.nn.functional as F
    h, w = img.shape[2:]
    b = boxes[:, :4].trunc().int().numpy()
    x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    ex, ey = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    return torch.cat([F.interpolate(img[:, :, y[k] - 1:ey[k], x[k] - 1:ex[k]], size=(size, size), mode="area")
                      for k in range(len(b))])


def valid(boxes, img):
    """Boxes whose clipped crop is not empty."""
    h, w = img.shape[2:]
    b = boxes[:, :4].trunc().int()
    return (b[:, 2].clamp(max=w) > b[:, 0].clamp(min=1) - 1) & (b[:, 3].clamp(max=h) > b[:, 1].clamp(min=1) - 1)


def scored(net, img, boxes, size, threshold):
    """Boxes (with the net's face probability as score) over threshold and the net's outputs for them."""
    import torch
    boxes = boxes[valid(boxes, img)]
    out = {k: torch.from_numpy(v) for k, v in net(images=normalized(crops(img, boxes, size))).items()}
    score = out["prob"][:, 1]
    keep = score > threshold
    return torch.cat([boxes[keep, :4], score[keep, None]], 1), {k: v[keep] for k, v in out.items()}


def nms_min(boxes, threshold):
    """Greedy suppression where overlap is the intersection over the smaller box's area (inclusive pixels)."""
    x1, y1, x2, y2, s = (boxes[:, i] for i in range(5))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = np.argsort(s), []
    while order.size:
        i, rest = order[-1], order[:-1]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        order = rest[iw * ih / np.minimum(area[i], area[rest]) <= threshold]
    return np.array(keep, np.int64)


def detect(nets, image):
    """(boxes (K, 4), probabilities (K,), landmarks (K, 5, 2)) in pixels, the largest box first, for an RGB
    uint8 image (H, W, 3)."""
    import torch
    img = torch.from_numpy(np.array(image, np.uint8)).permute(2, 0, 1)[None].float()
    boxes = propose(nets, img)
    if len(boxes):
        boxes, out = scored(nets.rnet, img, boxes, 24, THRESHOLDS[1])
        pick = nms(boxes, 0.7)
        boxes = square(regress(boxes[pick], out["reg"][pick]))
    points = np.zeros((0, 5, 2), np.float32)
    if len(boxes):
        boxes, out = scored(nets.onet, img, boxes, 48, THRESHOLDS[2])
        size = boxes[:, 2:4] - boxes[:, 0:2] + 1
        lm = out["landmarks"]
        points = torch.stack([size[:, :1] * lm[:, :5] + boxes[:, 0:1] - 1,
                              size[:, 1:] * lm[:, 5:] + boxes[:, 1:2] - 1], 2).numpy()
        boxes = regress(boxes, out["reg"]).numpy()
        pick = nms_min(boxes, 0.7)
        boxes, points = boxes[pick], points[pick]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 5)
    order = np.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[::-1]
    return boxes[order, :4], boxes[order, 4], points[order]


def draw(image, boxes, points, path):
    from PIL import Image, ImageDraw
    out = image.copy()
    pen = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 160))
    for box, pts in zip(boxes, points):
        pen.rectangle(box.tolist(), outline=(255, 40, 40), width=width)
        for x, y in pts:
            r = 1.5 * width
            pen.ellipse((x - r, y - r, x + r, y + r), fill=(40, 255, 40))
    kind = Image.registered_extensions().get(os.path.splitext(path)[1].lower(), "PNG")
    write_atomic(path, lambda f: out.save(f, format=kind))   # never half a picture


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m trtnet.examples.mtcnn", description=__doc__.split("\n")[0])
    p.add_argument("image", help="an image file (converted to RGB)")
    p.add_argument("-o", "--output", help="write the image with boxes and landmarks drawn (PNG)")
    modes = p.add_mutually_exclusive_group()
    for mode in ("int8", "fp8"):
        modes.add_argument(f"--{mode}", dest="precision", action="store_const", const=mode,
                           help=f"{mode.upper()} networks, calibrated on other scikit-image pictures")
    p.add_argument("-v", "--verbose", action="store_true", help="a traceback with any error")
    a = p.parse_args(argv)
    return cli.run_command(a, lambda: run(a), cli.Timeline(show=False))


def run(a):
    """Detect and print (an engine's profile-range error becomes the command's one error line)."""
    from PIL import Image
    try:
        image = Image.open(a.image).convert("RGB")
    except OSError as e:
        raise cli.UsageError(f"{a.image}: cannot read the image: {e}") from None
    nets = Nets(a.precision)
    print(f"networks run by: {nets.backend}" + (f", {a.precision}" if a.precision else ""))
    if a.precision:
        kept = ", ".join(KEEP.get(a.precision, ()))
        why = f"; {kept} kept in fp32 (its input, the 8-bit image, needs more than E4M3's 3 mantissa bits)"
        print(f"quantized layers: {nets.quantized()}" + (why if kept else ""))
    boxes, probs, points = detect(nets, image)
    print(f"{len(boxes)} face{'s' * (len(boxes) != 1)} in {a.image} ({image.width}x{image.height})")
    for i, (box, prob, pts) in enumerate(zip(boxes, probs, points)):
        marks = " ".join(f"({x:.1f}, {y:.1f})" for x, y in pts)
        print(f"  face {i}: box [{', '.join(f'{v:.1f}' for v in box)}] probability {prob:.6f} landmarks {marks}")
    if a.output:
        draw(image, boxes, points, a.output)
        print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    cli.exit_now(main())
