"""Detections from a detector's network outputs, on the host: what follows the network in Ultralytics' predictors
(TensorRT-RTX builds no NMS layer, and masks, keypoints and the way back to the original image are cheap there).

The steps are Ultralytics', in its order, so that detections equal its predictor's on the same network outputs:
letterbox (OpenCV's resize where installed, as Ultralytics resizes; else PIL's bilinear), each anchor's best class
over a confidence threshold, class-aware NMS (boxes offset by class x 7680, torchvision.ops.nms), rotated boxes
by fast NMS over probabilistic IoU, masks from prototypes (coefficients x prototypes, bilinear upsampling to the
network input, > 0, cropped to the box), keypoints, and boxes mapped back to the image. End-to-end heads (YOLOv10,
YOLO26: their top-k is in the network) are only thresholded.
"""
import functools
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

PAD_VALUE = 114      # Ultralytics' letterbox grey
MAX_WH = 7680        # class offset of class-aware NMS: boxes of different classes never overlap
MAX_NMS = 30000      # candidates kept for NMS, by score
TASKS = ("detect", "segment", "pose", "obb")


@dataclass
class Detections:
    """One image's detections, best first: `boxes` (M, 4) xyxy in the image's pixels, or for rotated boxes (M, 5)
    centre x, centre y, width, height, angle (radians); `masks` (M, h, w) bool in the network input's pixels
    (image_masks maps them onto the image); `keypoints` (M, K, 2 or 3): x, y in the image's pixels[, visibility]."""
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    masks: Optional[np.ndarray] = None
    keypoints: Optional[np.ndarray] = None

    def __len__(self):
        return len(self.scores)


def letterbox(image, size=640, stride=32, auto=False):
    """(1, 3, h, w) float32 RGB in [0, 1] for an (H, W, 3) uint8 RGB image: resized to fit `size` (or (h, w))
    keeping its aspect ratio and centred on grey; `auto` pads only up to a multiple of `stride` (Ultralytics'
    rectangular inference, for networks of dynamic size)."""
    h, w = image.shape[:2]
    sh, sw = (size, size) if isinstance(size, int) else size
    r = min(sh / h, sw / w)
    nw, nh = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = (sw - nw) % stride if auto else sw - nw, (sh - nh) % stride if auto else sh - nh
    if (nw, nh) != (w, h):
        image = _resize(image, nw, nh)
    top, left = round(dh / 2 - 0.1), round(dw / 2 - 0.1)
    canvas = np.full((nh + dh, nw + dw, 3), PAD_VALUE, np.uint8)
    canvas[top:top + nh, left:left + nw] = image
    return canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255


def _resize(image, w, h):
    try:
        import cv2
    except ImportError:
        from PIL import Image
        return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
    return cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=cv2.INTER_LINEAR)


def frame(input_hw, image_hw):
    """(gain y, gain x, left pad, top pad) of the letterbox that made an input of `input_hw` from an image of
    `image_hw`, recomputed from the two sizes as Ultralytics does."""
    gain = min(input_hw[0] / image_hw[0], input_hw[1] / image_hw[1])
    nh, nw = (max(round(s * gain), 1) for s in image_hw[:2])
    return nh / image_hw[0], nw / image_hw[1], round((input_hw[1] - nw) / 2 - 0.1), round((input_hw[0] - nh) / 2 - 0.1)


def postprocess(outputs, input_hw, image_hw, task="detect", conf=0.25, iou=0.7, max_det=300, kpt_shape=(17, 3),
                end2end=None, agnostic=False, selected=None):
    """[Detections] per image from an Ultralytics-style network's outputs: `outputs[0]` the decoded candidates
    (N, 4 + classes + extra, anchors): each anchor's xywh box and sigmoid class scores, or an end-to-end
    head's (N, k, 6 + extra) rows [x1, y1, x2, y2, score, class, extra] (`end2end` None: the shape tells);
    `outputs[1]` the prototypes (N, 32, h/4, w/4) of a segmentation model. Extra channels: mask coefficients,
    keypoints (`kpt_shape`) or the angle of rotated boxes, by `task`. `selected`: (rows [image, class, anchor],
    count) of TensorRT's NMS layer in the network (trtnet.port.ultralytics' `nms`), which replace the host's NMS."""
    import torch
    if task not in TASKS:
        raise ValueError(f"task {task!r}: expected one of {', '.join(TASKS)}")
    pred = torch.as_tensor(np.asarray(outputs[0], np.float32))
    protos = torch.as_tensor(np.asarray(outputs[1], np.float32)) if task == "segment" else None
    if end2end is None:
        end2end = pred.shape[-1] < pred.shape[-2]
    extra = {"detect": 0, "segment": 0 if protos is None else protos.shape[1], "pose": math.prod(kpt_shape),
             "obb": 1}[task]
    out = []
    for i, p in enumerate(pred):
        nc = p.shape[0] - 4 - extra
        if end2end:
            rows = p[p[:, 4] > conf][:max_det]
        elif selected is not None:        # the network's thresholds, then the host's conf if higher
            rows = kept(p, nc, *selected, i, max_det)
            rows = rows[rows[:, 4] > conf]
        else:
            rows = suppress(p, nc, conf, iou, max_det, task == "obb", agnostic)
        out.append(finish(rows, task, input_hw, image_hw, None if protos is None else protos[i], kpt_shape))
    return out


EXTRAS = {"mask_coefficients": "segment", "keypoints": "pose", "angles": "obb"}   # trtnet.port.ultralytics' names


def joined(named):
    """(Ultralytics' own output tensors, task) from the named outputs of a trtnet.port.ultralytics model file:
    [(N, 4 + classes + extra, anchors)] candidates, or an end-to-end head's [(N, k, 6 + extra)] rows, then a
    segmentation model's prototypes."""
    extra = [np.asarray(named[k], np.float32) for k in EXTRAS if k in named]
    task = next((EXTRAS[k] for k in EXTRAS if k in named), "detect")
    boxes, scores = np.asarray(named["boxes"], np.float32), np.asarray(named["scores"], np.float32)
    if scores.ndim == 2:
        classes = np.asarray(named["classes"], np.float32)
        pred = np.concatenate([boxes, scores[..., None], classes[..., None], *extra], -1)
    else:
        pred = np.concatenate([boxes, scores, *extra], -1).transpose(0, 2, 1)
    return [pred] + ([named["prototypes"]] if "prototypes" in named else []), task


def from_candidates(boxes, scores, classes, input_hw, image_hw, conf=0.25, iou=0.7, max_det=300, agnostic=False):
    """[Detections] per image from a network that keeps its best candidates: (N, k, 4) xyxy boxes, (N, k) scores
    and classes (trtnet's YOLO zoo networks); over `conf`, class-aware NMS, boxes mapped back."""
    import torch
    out = []
    for b, s, c in zip(*(torch.as_tensor(np.asarray(a, np.float32)) for a in (boxes, scores, classes))):
        x = torch.cat((b, s[:, None], c[:, None]), 1)[s > conf]
        keep = torchvision_nms(x[:, :4] + x[:, 5:6] * (0 if agnostic else MAX_WH), x[:, 4], iou)
        out.append(finish(x[keep[:max_det]], "detect", input_hw, image_hw))
    return out


def torchvision_nms(boxes, scores, iou):
    import torchvision
    return torchvision.ops.nms(boxes, scores, iou)


def suppress(pred, nc, conf, iou, max_det, rotated=False, agnostic=False):
    """(M, 6 + extra) rows [box, score, class, extra] kept from one image's (4 + nc + extra, anchors) candidates:
    best class over `conf`, then class-aware NMS (rotated: fast NMS over probabilistic IoU)."""
    import torch
    x = pred.T[pred[4:4 + nc].amax(0) > conf]
    box, cls, extra = x.split((4, nc, x.shape[1] - 4 - nc), 1)
    box = box if rotated else xyxy(box)
    score, label = cls.max(1, keepdim=True)
    x = torch.cat((box, score, label.float(), extra), 1)[score.view(-1) > conf]
    if len(x) > MAX_NMS:
        x = x[x[:, 4].argsort(descending=True)[:MAX_NMS]]
    offset = x[:, 5:6] * (0 if agnostic else MAX_WH)
    if rotated:
        keep = fast_nms(torch.cat((x[:, :2] + offset, x[:, 2:4], x[:, -1:]), 1), x[:, 4], iou)
    else:
        keep = torchvision_nms(x[:, :4] + offset, x[:, 4], iou)
    return x[keep[:max_det]]


def kept(pred, nc, selected, count, image, max_det):
    """suppress()'s rows from the NMS layer's choice for one image: its rows [image, class, anchor] (the first
    `count` of `selected`) give the candidates and classes, best score first, at most `max_det` (TensorRT keeps
    max_det per class and documents no order)."""
    import torch
    pairs = torch.as_tensor(np.asarray(selected)[:int(count)].astype(np.int64))
    pairs = pairs[pairs[:, 0] == image]
    x = pred.T[pairs[:, 2]]
    score = x[:, 4:4 + nc].gather(1, pairs[:, 1:2])
    x = torch.cat((xyxy(x[:, :4]), score, pairs[:, 1:2].float(), x[:, 4 + nc:]), 1)
    return x[x[:, 4].argsort(descending=True, stable=True)[:max_det]]


def xyxy(box):
    """Centre, width, height -> corners."""
    import torch
    half = box[:, 2:] / 2
    return torch.cat((box[:, :2] - half, box[:, :2] + half), 1)


def fast_nms(boxes, scores, iou):
    """Indices by decreasing score of the rotated boxes (x, y, w, h, angle) that no higher-scoring box overlaps by
    more than `iou` (a suppressed box still suppresses: Fast NMS, as Ultralytics runs it for rotated boxes)."""
    import torch
    order = torch.argsort(scores, descending=True)
    ious = probiou(boxes[order], boxes[order]).triu_(diagonal=1)
    return order[torch.nonzero((ious > iou).sum(0) <= 0).squeeze_(-1)]


def probiou(a, b, eps=1e-7):
    """(N, M) probabilistic IoU of rotated boxes: 1 - the Hellinger distance of their Gaussians (each box a
    uniform distribution's covariance), after Llerena et al. 2021."""
    def cov(r):
        var = r[:, 2:4].pow(2) / 12
        cos, sin = r[:, 4:5].cos(), r[:, 4:5].sin()
        return (var[:, :1] * cos.pow(2) + var[:, 1:] * sin.pow(2), var[:, :1] * sin.pow(2) + var[:, 1:] * cos.pow(2),
                (var[:, :1] - var[:, 1:]) * cos * sin)
    x1, y1 = a[:, 0:1], a[:, 1:2]
    x2, y2 = b[:, 0][None], b[:, 1][None]
    a1, b1, c1 = cov(a)
    a2, b2, c2 = (v.squeeze(-1)[None] for v in cov(b))
    det = (a1 + a2) * (b1 + b2) - (c1 + c2).pow(2)
    t1 = (((a1 + a2) * (y1 - y2).pow(2) + (b1 + b2) * (x1 - x2).pow(2)) / (det + eps)) * 0.25
    t2 = (((c1 + c2) * (x2 - x1) * (y1 - y2)) / (det + eps)) * 0.5
    own = ((a1 * b1 - c1.pow(2)).clamp_(0) * (a2 * b2 - c2.pow(2)).clamp_(0)).sqrt()
    t3 = (det / (4 * own + eps) + eps).log() * 0.5
    bd = (t1 + t2 + t3).clamp(eps, 100.0)
    return 1 - (1.0 - (-bd).exp() + eps).sqrt()


def finish(rows, task, input_hw, image_hw, protos=None, kpt_shape=(17, 3)):
    """Detections in the image's pixels from kept rows in the network input's: masks (dropping detections whose
    mask is empty), keypoints, boxes mapped back."""
    import torch
    gy, gx, left, top = frame(input_hw, image_hw)
    h, w = image_hw[:2]
    masks = keypoints = None
    if task == "segment":
        masks = prototype_masks(protos, rows[:, 6:], rows[:, :4], input_hw)
        keep = masks.flatten(1).amax(1) > 0 if len(rows) else masks.new_zeros(0, dtype=bool)
        rows, masks = rows[keep], masks[keep].numpy().astype(bool)
    if task == "pose":
        k = rows[:, 6:].reshape(len(rows), *kpt_shape).clone()
        k[..., 0] = ((k[..., 0] - left) / gx).clamp(0, w)
        k[..., 1] = ((k[..., 1] - top) / gy).clamp(0, h)
        keypoints = k.numpy()
    b = rows[:, :4].clone()
    b[:, 0] -= left
    b[:, 1] -= top
    if task != "obb":      # xyxy; a rotated box's width and height only scale
        b[:, 2] -= left
        b[:, 3] -= top
    b[:, 0::2] /= gx
    b[:, 1::2] /= gy
    if task == "obb":
        b = torch.cat((b, rows[:, -1:]), 1)
    else:
        b[:, 0::2], b[:, 1::2] = b[:, 0::2].clamp(0, w), b[:, 1::2].clamp(0, h)
    return Detections(b.numpy(), rows[:, 4].numpy(), rows[:, 5].numpy().astype(np.int64), masks, keypoints)


def prototype_masks(protos, coefficients, boxes, input_hw):
    """(M, h, w) uint8 masks at the network input's size: each detection's coefficients times the prototypes,
    upsampled bilinearly, positive, and cut to its box (upsampling before cutting keeps the edge sharp)."""
    import torch
    import torch.nn.functional as F
    c, mh, mw = protos.shape
    if len(coefficients) == 0:
        return torch.zeros((0, *input_hw), dtype=torch.uint8)
    masks = F.interpolate((coefficients @ protos.view(c, -1)).view(1, -1, mh, mw), tuple(input_hw), mode="bilinear")[0]
    masks = masks.gt_(0.0).byte()
    x1, y1, x2, y2 = torch.chunk(boxes[:, :, None], 4, 1)
    cols = torch.arange(input_hw[1], dtype=x1.dtype)[None, None, :]
    rows = torch.arange(input_hw[0], dtype=x1.dtype)[None, :, None]
    return masks * ((cols >= x1) * (cols < x2)) * ((rows >= y1) * (rows < y2))


def image_masks(masks, input_hw, image_hw):
    """Masks in the network input's pixels mapped onto the image: the letterbox's padding cut, the rest resized
    (bilinear, > 0.5)."""
    import torch
    import torch.nn.functional as F
    if masks is None or len(masks) == 0:
        return np.zeros((0, *image_hw[:2]), bool)
    gy, gx, left, top = frame(input_hw, image_hw)
    nh, nw = round(image_hw[0] * gy), round(image_hw[1] * gx)
    inner = torch.as_tensor(masks[:, top:top + nh, left:left + nw], dtype=torch.float32)
    return (F.interpolate(inner[None], tuple(image_hw[:2]), mode="bilinear")[0] > 0.5).numpy()


# torchvision's single-stage detectors (RetinaNet, FCOS, SSD, SSDlite) ------------------------------------------------
def torchvision_detector(name, **kwargs):
    """A torchvision detector built offline: no weights and no backbone weights (nothing downloads)."""
    from torchvision.models import detection
    return getattr(detection, name)(weights=None, weights_backbone=None, **kwargs).eval()


def torchvision_detections(detector, images, run):
    """torchvision's detections ([{boxes, scores, labels}] in each (H, W, 3) uint8 RGB image's pixels) with the
    network (trtnet.port.capture.DetectionHeads: backbone, heads, anchors and box decoding) run by `run`
    ({"x": array} -> {"boxes", "scores"}). On the host, torchvision's transform before it and its
    postprocess_detections after the decoding: per level (RetinaNet, FCOS) or per class (SSD) the scores over the
    threshold, their topk_candidates best, boxes clipped to the image, class-wise NMS, detections_per_img, and
    the boxes scaled back to the images."""
    import torch
    from torchvision.ops import boxes as box_ops
    tensors = [torch.tensor(np.asarray(i)).permute(2, 0, 1).float() / 255 for i in images]
    with torch.no_grad():
        batch, _ = detector.transform(tensors)
        out = run({"x": batch.tensors.numpy()})
        boxes, scores = (torch.from_numpy(np.asarray(out[k], np.float32)) for k in ("boxes", "scores"))
        found = []
        for b, s, size in zip(boxes, scores, batch.image_sizes):
            parts = [_candidates(b[rows], s[rows, classes], detector, classes.start)
                     for rows, classes in _groups(detector, batch.tensors, s.shape[-1])]
            b, s, labels = (torch.cat(p) for p in zip(*parts))
            b = box_ops.clip_boxes_to_image(b, size)
            keep = box_ops.batched_nms(b, s, labels, detector.nms_thresh)[:detector.detections_per_img]
            found.append({"boxes": b[keep], "scores": s[keep], "labels": labels[keep]})
        found = detector.transform.postprocess(found, batch.image_sizes, [t.shape[-2:] for t in tensors])
    return [{k: v.numpy() for k, v in d.items()} for d in found]


def _groups(detector, x, classes):
    """[(anchor rows, class columns)] that torchvision selects candidates within: SSD each class but the
    background over all anchors; RetinaNet and FCOS each level's anchors (counted from the backbone's feature
    sizes, run on the meta device: shapes only) over all classes."""
    import copy
    from torchvision.models.detection.ssd import SSD
    if isinstance(detector, SSD):
        return [(slice(None), slice(c, c + 1)) for c in range(1, classes)]
    features = copy.deepcopy(detector.backbone).to("meta")(x.to("meta"))
    features = list(features.values()) if isinstance(features, dict) else [features]
    per = detector.anchor_generator.num_anchors_per_location()
    ends = np.cumsum([0] + [f.shape[-2] * f.shape[-1] * k for f, k in zip(features, per)])
    return [(slice(a, b), slice(0, classes)) for a, b in zip(ends[:-1], ends[1:])]


def _candidates(boxes, scores, detector, first_label):
    """(boxes, scores, labels) of torchvision's candidates among (A, 4) boxes and their (A, C) scores: those over
    score_thresh, the topk_candidates best of them (flattened anchor by anchor, as torchvision's)."""
    import torch
    flat = scores.flatten()
    index = torch.where(flat > detector.score_thresh)[0]
    top, order = flat[index].topk(min(detector.topk_candidates, len(index)))
    index = index[order]
    return boxes[index // scores.shape[1]], top, index % scores.shape[1] + first_label


# torchvision's two-stage detectors (Faster R-CNN, Mask R-CNN, Keypoint R-CNN) -----------------------------------------
def pooled_levels(detector):
    return detector.roi_heads.box_roi_pool.featmap_names


def roi_align(feature, boxes, weight, scale, size, sampling_ratio):
    """torchvision's roi_align (aligned=False) of one level before its average: (1, C, R*S, S) samples, S = size x
    sampling_ratio, each roi's S x S points read bilinearly by grid_sample with coordinates clamped to the border,
    times `weight` (R,) and zero where roi_align zeroes a point (more than a pixel outside the map). `boxes` (R, 4)
    xyxy in the image's pixels, `scale` the level's size over the image's."""
    import trtnet as tn
    _, _, h, w = feature.shape
    steps = size * sampling_ratio
    start = tn.unsqueeze(tn.narrow(boxes, 1, 0, 2) * scale, 2)                        # (R, 2, 1): x, y
    extent = tn.clamp(tn.unsqueeze(tn.narrow(boxes, 1, 2, 2) * scale, 2) - start, min=1.0)
    points = start + extent * tn.tensor(((np.arange(steps) + 0.5) / steps)[None, None], like=boxes)  # (R, 2, S)
    xs, ys = tn.select(points, 1, 0), tn.select(points, 1, 1)
    inside = tn.unsqueeze((ys >= -1.0) & (ys <= float(h)), 2) & tn.unsqueeze((xs >= -1.0) & (xs <= float(w)), 1)
    mask = tn.cast(inside, "float32") * tn.unsqueeze(tn.unsqueeze(weight, 1), 2)       # (R, S, S)
    gx = tn.expand(tn.unsqueeze(xs * (2.0 / max(w - 1, 1)) - 1.0, 1), (-1, steps, steps))
    gy = tn.expand(tn.unsqueeze(ys * (2.0 / max(h - 1, 1)) - 1.0, 2), (-1, steps, steps))
    grid = tn.reshape(tn.stack([gx, gy], -1), (1, -1, steps, 2))
    samples = tn.grid_sample(feature, grid, "bilinear", "border", align_corners=True)
    return samples * tn.reshape(mask, (1, 1, -1, steps))


def multiscale_roi_align(features, boxes, levels, scales, pool):
    """torchvision's MultiScaleRoIAlign as network layers: (R, C, size, size) from the levels' features, each roi
    read on the level whose column of the one-hot `levels` (R, L) is 1 (torchvision's LevelMapper, on the host)."""
    import trtnet as tn
    size, ratio = pool.output_size[0], pool.sampling_ratio
    total = None
    for i, (feature, scale) in enumerate(zip(features, scales)):
        part = roi_align(feature, boxes, tn.select(levels, 1, i), scale, size, ratio)
        total = part if total is None else total + part
    pooled = tn.avg_pool(total, ratio)                                                # (1, C, R*size, size)
    c = features[0].shape[1]
    return tn.permute(tn.reshape(pooled, (c, -1, size, size)), (1, 0, 2, 3))


def roi_network(detector, branch, feature_shapes, scales):
    """The second network of a two-stage detector (`branch` "box", "mask" or "keypoint"): inputs the pooled
    levels' features (1, C, h, w) of one image, `boxes` (R, 4) and `levels` (R, L); RoIAlign, then the branch's
    head and predictor with the detector's weights. Outputs each class's `class_scores` (softmax) and `class_boxes`
    (R, C, 4) decoded against the input boxes, or mask_logits, or keypoint_logits."""
    import trtnet as tn
    heads = detector.roi_heads
    w = tn.WeightMap({k: v.detach().numpy() for k, v in heads.state_dict().items()})
    g = tn.Graph(f"{type(detector).__name__.lower()}_{branch}")
    features = [g.input(f"feature_{k}", s, batch=False) for k, s in zip(pooled_levels(detector), feature_shapes)]
    boxes = g.input("boxes", ("R", 4), batch=False, ranges={"R": (1, 100, 1000)})
    levels = g.input("levels", ("R", len(features)), batch=False)
    x = multiscale_roi_align(features, boxes, levels, scales, getattr(heads, f"{branch}_roi_pool"))
    if branch == "box":
        x = tn.relu(tn.linear(tn.relu(tn.linear(tn.flatten(x, 1), w["box_head.fc6"])), w["box_head.fc7"]))
        g.output(tn.softmax(tn.linear(x, w["box_predictor.cls_score"]), -1), "class_scores")
        classes = heads.box_predictor.cls_score.out_features
        codes = tn.reshape(tn.linear(x, w["box_predictor.bbox_pred"]), (-1, classes, 4))
        g.output(decode(codes, boxes, heads.box_coder.weights, heads.box_coder.bbox_xform_clip), "class_boxes")
        return g
    x = _convs(x, getattr(heads, f"{branch}_head"), w[f"{branch}_head"])
    if branch == "mask":
        x = tn.relu(tn.conv_transpose(x, w["mask_predictor.conv5_mask"], stride=2))
        g.output(tn.conv(x, w["mask_predictor.mask_fcn_logits"]), "mask_logits")
        return g
    p = heads.keypoint_predictor
    x = tn.conv_transpose(x, w["keypoint_predictor.kps_score_lowres"], stride=2, padding=p.kps_score_lowres.padding)
    g.output(tn.interpolate(x, scale_factor=float(p.up_scale), mode="bilinear", align_corners=False),
             "keypoint_logits")
    return g


def decode(codes, boxes, weights, clip):
    """torchvision's BoxCoder.decode as network layers: (R, C, 4) xyxy boxes from (R, C, 4) codes, each class's
    against its row's box of `boxes` (R, 4), with the coder's `weights` and `clip` of the log sizes."""
    import trtnet as tn
    corner = tn.narrow(boxes, 1, 0, 2)
    size = tn.narrow(boxes, 1, 2, 2) - corner                                           # (R, 2): w, h
    centre, size = tn.unsqueeze(corner + size * 0.5, 1), tn.unsqueeze(size, 1)
    centre = tn.narrow(codes, 2, 0, 2) / tn.tensor(weights[:2], codes) * size + centre
    half = tn.exp(tn.clamp(tn.narrow(codes, 2, 2, 2) / tn.tensor(weights[2:], codes), max=clip)) * size * 0.5
    return tn.cat([centre - half, centre + half], 2)


def _convs(x, head, w):
    """The mask and keypoint heads: each 3x3 convolution followed by a ReLU."""
    import torch
    import trtnet as tn
    for name, m in head.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            x = tn.relu(tn.conv(x, w[name], padding=m.padding))
    return x


def graph_runner(graph):
    """{input: array} -> {output: array} for an in-memory graph: its TensorRT engine where one can run, else the
    interpreter on its TensorRT network (as trtnet.examples.Runner)."""
    from .check.interp import run_network
    from .engine import build_engine, create_network
    from .runtime import Engine, execution_unavailable
    if execution_unavailable() is None:
        engine = Engine(build_engine(graph, None, progress=False)[0])
        return lambda inputs: engine(**inputs)
    emitted = create_network(graph)
    return lambda inputs: run_network(emitted[1], inputs)


def torchvision_two_stage_detections(detector, images, run):
    """A Faster, Mask or Keypoint R-CNN's detections ([{boxes, scores, labels[, masks][, keypoints,
    keypoints_scores]}] in each (H, W, 3) uint8 RGB image's pixels) with its networks run by trtnet: `run`
    ({"x": array} -> outputs of trtnet.port.capture.RegionProposals) for the first, roi_network's graphs (run by graph_runner)
    for the second. Between and after them torchvision's own code on the host: transform, anchors, proposal
    decoding and NMS, level assignment, box decoding and NMS, mask pasting and keypoint heatmaps."""
    import torch
    tensors = [torch.from_numpy(np.ascontiguousarray(i)).permute(2, 0, 1).float() / 255 for i in images]
    with torch.no_grad():
        batch, _ = detector.transform(tensors)
        out = {k: torch.from_numpy(np.asarray(v)) for k, v in run({"x": batch.tensors.numpy()}).items()}
        pooled = second_stage(detector, batch, out)
        found = [_image_detections(detector.roi_heads, functools.partial(pooled, image=i), p, batch.image_sizes[i])
                 for i, p in enumerate(_proposals(detector, batch, out))]
        found = detector.transform.postprocess(found, batch.image_sizes, [t.shape[-2:] for t in tensors])
    return [{k: v.numpy() for k, v in d.items()} for d in found]


def second_stage(detector, batch, out):
    """(branch, boxes (R, 4), image) -> {output: tensor} of roi_network's graph for the branch, on the first
    network's features of the batch's image, each box's level picked by torchvision's LevelMapper."""
    import torch
    from torchvision.ops.poolers import _setup_scales
    features = [out[f"feature_{k}"] for k in pooled_levels(detector)]
    pool = detector.roi_heads.box_roi_pool
    scales, mapper = _setup_scales(features, batch.image_sizes, pool.canonical_scale, pool.canonical_level)
    shapes = [(1, *f.shape[1:]) for f in features]
    runners = {b: graph_runner(roi_network(detector, b, shapes, scales)) for b in _branches(detector)}

    def pooled(branch, boxes, image):       # no boxes: one stands in, its outputs dropped
        some = boxes if len(boxes) else boxes.new_tensor([[0, 0, 1, 1]])
        inputs = {f"feature_{k}": f[image:image + 1].numpy() for k, f in zip(pooled_levels(detector), features)}
        levels = torch.nn.functional.one_hot(mapper([some]), len(features)).float()
        got = runners[branch]({**inputs, "boxes": some.numpy(), "levels": levels.numpy()})
        return {k: torch.from_numpy(np.asarray(v))[:len(boxes)] for k, v in got.items()}
    return pooled


def _image_detections(heads, pooled, proposals, image_size):
    """One image's detections in the network input's pixels: torchvision's box decoding, score threshold and
    class-wise NMS on the box branch's outputs, then its masks and keypoints from their branches' outputs."""
    from torchvision.models.detection.roi_heads import keypointrcnn_inference, maskrcnn_inference
    o = pooled("box", proposals)
    b, s, l = _selected(heads, o["class_boxes"], o["class_scores"], image_size)
    d = {"boxes": b, "scores": s, "labels": l}
    if heads.has_mask():
        d["masks"] = maskrcnn_inference(pooled("mask", b)["mask_logits"], [l])[0]
    if heads.has_keypoint():
        k, ks = keypointrcnn_inference(pooled("keypoint", b)["keypoint_logits"], [b])
        d["keypoints"], d["keypoints_scores"] = k[0], ks[0]
    return d


def _selected(heads, boxes, scores, image_size):
    """(boxes, scores, labels): torchvision's RoIHeads.postprocess_detections after the network's decoding and
    softmax: boxes clipped, background dropped, scores over the threshold, small boxes removed, class-wise NMS,
    the best detections_per_img."""
    import torch
    from torchvision.ops import boxes as ops
    labels = torch.arange(scores.shape[1]).view(1, -1).expand_as(scores)[:, 1:].reshape(-1)
    boxes = ops.clip_boxes_to_image(boxes, image_size)[:, 1:].reshape(-1, 4)
    scores = scores[:, 1:].reshape(-1)
    keep = torch.where(scores > heads.score_thresh)[0]
    keep = keep[ops.remove_small_boxes(boxes[keep], min_size=1e-2)]
    keep = keep[ops.batched_nms(boxes[keep], scores[keep], labels[keep], heads.nms_thresh)[:heads.detections_per_img]]
    return boxes[keep], scores[keep], labels[keep]


def _branches(detector):
    heads = detector.roi_heads
    return ["box"] + ["mask"] * heads.has_mask() + ["keypoint"] * heads.has_keypoint()


def _proposals(detector, batch, out):
    """torchvision's RPN after the network's anchors and decoding: per-level top-k, clipping and NMS."""
    import torch
    n = len([k for k in out if k.startswith("objectness_")])
    objectness = [out[f"objectness_{i}"] for i in range(n)]
    proposals = torch.cat([out[f"proposals_{i}"] for i in range(n)], 1)
    return detector.rpn.filter_proposals(proposals, torch.cat(objectness, 1), batch.image_sizes,
                                         [o.shape[1] for o in objectness])[0]
