"""Ultralytics models prepared for trtnet.port: eval mode, heads in export form (anchors from the run-time
feature sizes, decoding in the network, top-k for NMS-free heads) and outputs split into named tensors.

`trtnet.port.ultralytics:model{"cfg": "yolo26n-seg.yaml"}` builds a model from the package's yaml with seeded
weights (nothing downloads); `{"checkpoint": "yolo26n.pt"}` loads a trusted Ultralytics checkpoint. The wrapper's
state_dict keeps Ultralytics' names (`model.0.conv.weight`, ...), so checkpoints load into the ported file.
"""
import os

import torch

from ..zoo import randomize_trivial
from .ops import nms as nms_layer

OUTPUTS = {  # head task -> names of the per-candidate values after the boxes (and scores, classes)
    "detect": (), "segment": ("mask_coefficients",), "pose": ("keypoints",), "obb": ("angles",)}


class Ultralytics(torch.nn.Module):
    """An Ultralytics task model whose forward returns named, decoded outputs; equal to the model's own eval
    forward (its first output, split): boxes (xywh, or xyxy where the head says so), per-class scores and the
    task's values for every anchor; NMS-free heads (YOLOv10, YOLO26, RT-DETR) give their top-k detections with
    xyxy boxes (RT-DETR: xywh, normalized), scores and classes; classifiers give class probabilities.

    `nms` (True, or a dict of `conf`, `iou`, `max_det`: Ultralytics' defaults 0.25, 0.7, 300) adds TensorRT's NMS
    layer to a detect, segment or pose head's candidates, for a TensorRT that builds it (TensorRT for RTX does not):
    outputs `selected`, rows [image, class, anchor] of the kept candidates padded with -1, and their `count`."""

    seeded = True   # trtnet.port keeps the weights as they come (seeded by `calibrate`, or a checkpoint's)

    def __init__(self, task_model, end2end=True, nms=None):
        super().__init__()
        self.model = task_model.model                 # registered: keys stay `model.0.conv.weight`, ...
        self.task_model = [task_model]                # not a submodule: its parameters are `model`'s
        head = self.model[-1]
        self.kind = _kind(head)
        if getattr(head, "one2one_cv2", None) is not None:
            head.end2end = end2end                    # the one-to-one branch: NMS-free, top-k in the network
            head.agnostic_nms = True                  # one class per anchor: each top-k index names an anchor
        head.export = True                            # the decoded tensor alone (prototypes beside it for seg)
        if self.kind != "rtdetr":
            head.dynamic = True                       # anchors from the feature sizes at every call
        self.nms = _nms_settings(nms, self.kind, getattr(head, "end2end", False))
        self.eval()

    def train(self, mode=True):
        self.task_model[0].train(mode)
        return super().train(mode)

    def forward(self, images):
        head = self.model[-1]
        if not self.training and getattr(head, "end2end", False) and self.kind != "rtdetr":
            return self._top_k(self._head_inputs(images))
        if self.kind == "rtdetr":
            head.shapes = []                          # anchors anew: a capture's cached ones are no tensors
        out = self.task_model[0].predict(images)      # a method: fx traces through it
        if self.training:
            return out
        if self.kind == "classify":
            return {"probabilities": out}
        proto = None
        if isinstance(out, tuple):                    # Segment: (detections, prototypes)
            out, proto = out
        task = OUTPUTS.get(self.kind, ())
        if self.kind == "rtdetr":                     # (N, k, 6): xywh, score, class of the top-k
            boxes, scores, classes = out.split([4, 1, 1], -1)
            return {"boxes": boxes, "scores": scores[..., 0], "classes": classes[..., 0].int()}
        out = out.transpose(1, 2)                     # (N, anchors, 4 + classes + extra): candidates for NMS
        boxes, scores, *extra = out.split([4, head.nc, out.shape[-1] - 4 - head.nc][:2 + bool(task)], -1)
        y = {"boxes": boxes, "scores": scores, **dict(zip(task, extra))}
        if proto is not None:
            y["prototypes"] = proto
        if self.nms:
            y["selected"], y["count"] = self._selected(boxes, scores, head.xyxy)
        return y

    def _selected(self, boxes, scores, xyxy):
        """TensorRT's NMS as Ultralytics' non_max_suppression runs it (multi_label=False): each anchor's best class
        alone scores (its other classes 0), so per-class NMS is class-aware NMS over the best classes; at most
        max_det per class, the best max_det of all taken on the host. Its top-k limit is TensorRT's largest, 5000
        candidates (Ultralytics takes 30000)."""
        best = scores.max(-1, keepdim=True)[1]
        only = scores * (torch.arange(scores.shape[-1], device=scores.device) == best).float()
        s = self.nms
        return nms_layer(boxes, only, s["max_det"], s["iou"], s["conf"], "corners" if xyxy else "center", 5000)

    def _head_inputs(self, x):
        """The feature maps the head takes, as the task model's own forward computes them."""
        ys = []
        for m in self.model[:-1]:
            if m.f != -1:
                x = ys[m.f] if isinstance(m.f, int) else [x if j == -1 else ys[j] for j in m.f]
            x = m(x)
            ys.append(x)
        return [x if j == -1 else ys[j] for j in self.model[-1].f]

    def _top_k(self, feats):
        """The NMS-free head's postprocess with one class per anchor (Ultralytics' agnostic_nms=True form), written
        without its concatenation so that each output is a gather at the top-k's indices: boxes, scores, classes
        and the task's values each keep their candidate when tied scores come out in another order."""
        from ultralytics.nn.modules.head import Segment26
        head = self.model[-1]
        out = head._inference(head.forward_head(feats, **head.one2one)).transpose(1, 2)   # (N, anchors, 4 + ...)
        task = OUTPUTS[self.kind]
        boxes, scores, *extra = out.split([4, head.nc, out.shape[-1] - 4 - head.nc][:2 + bool(task)], -1)
        best, classes = scores.max(-1)
        top, index = best.topk(min(head.max_det, best.shape[1]), 1)
        y = {"boxes": _take(boxes, index), "scores": top, "classes": classes.gather(1, index).int()}
        y.update((k, _take(v, index)) for k, v in zip(task, extra))
        if self.kind == "segment":
            y["prototypes"] = head.proto(feats if isinstance(head, Segment26) else feats[0])
        return y


def _nms_settings(nms, kind, end2end):
    """Ultralytics' NMS defaults updated by `nms` (True or a dict), or None; refused where no NMS follows."""
    if not nms:
        return None
    why = ("its head is NMS-free (top-k in the network)" if end2end or kind == "rtdetr" else
           "it classifies images" if kind == "classify" else
           "rotated boxes need probabilistic IoU, which TensorRT's NMS layer does not compute" if kind == "obb" else "")
    if why:
        raise ValueError(f"nms: a {kind} model takes no NMS layer: {why}")
    settings = {"conf": 0.25, "iou": 0.7, "max_det": 300}
    unknown = set(nms if isinstance(nms, dict) else ()) - set(settings)
    if unknown:
        raise ValueError(f"nms: unknown setting(s) {', '.join(sorted(unknown))}; expected conf, iou, max_det")
    return {**settings, **(nms if isinstance(nms, dict) else {})}


def _take(x, index):
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


def _kind(head):
    name = type(head).__name__
    for kind, prefix in (("rtdetr", "RTDETR"), ("classify", "Classify"), ("segment", "Segment"),
                         ("pose", "Pose"), ("obb", "OBB"), ("detect", "Detect"), ("detect", "v10Detect")):
        if name.startswith(prefix):
            return kind
    raise ValueError(f"Ultralytics head {name} is not one trtnet.port knows (Detect, Segment, Pose, OBB, "
                     "Classify, RTDETRDecoder)")


def model(cfg=None, checkpoint=None, trust_checkpoint=False, nc=None, end2end=True, nms=None):
    """The wrapped task model from a yaml name (`yolo11n-pose.yaml`, scale letter in the name) or a checkpoint;
    `end2end=False` keeps an NMS-free model's one-to-many head (candidates for NMS) instead; `nms` adds TensorRT's
    NMS layer (see Ultralytics)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")       # Ultralytics resolves DNS names at import otherwise
    from ultralytics.nn import tasks
    if checkpoint:
        if not trust_checkpoint:
            raise PermissionError(f"{checkpoint}: an Ultralytics checkpoint is a pickle that can run code when "
                                  "loaded; pass trust_checkpoint=true if you trust its source")
        ckpt, _ = tasks.torch_safe_load(checkpoint)
        return Ultralytics((ckpt.get("ema") or ckpt["model"]).float(), end2end, nms)
    task = "rtdetr" if "rtdetr" in cfg else tasks.guess_model_task(tasks.yaml_model_load(cfg))
    cls = {"detect": tasks.DetectionModel, "segment": tasks.SegmentationModel, "pose": tasks.PoseModel,
           "obb": tasks.OBBModel, "classify": tasks.ClassificationModel, "rtdetr": tasks.RTDETRDetectionModel}[task]
    kwargs = {} if nc is None else {"nc": nc}
    task_model = cls(cfg, verbose=False, **kwargs)
    calibrate(task_model)
    return Ultralytics(task_model, end2end, nms)


def calibrate(task_model, seed=0):
    """Seeded weights that carry the signal through the depth: randomize_trivial's values, then BatchNorm
    statistics measured on seeded noise images (one pass in training mode). With statistics that do not match the
    activations, the signal fades until most anchors' scores tie, which leaves the top-k order to rounding."""
    randomize_trivial(task_model, seed)
    norms = [m for m in task_model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None                             # a plain average over the pass
    task_model.train()
    with torch.no_grad():
        task_model.predict(torch.randn(4, 3, 256, 256, generator=torch.Generator().manual_seed(seed)))
    for m in norms:
        m.momentum = 0.03
    task_model.eval()


TASKS = ("", "-seg", "-pose", "-obb", "-cls")
SIZES = "ntsmcblx"      # smallest first


def corpus():
    """[(row name, yaml name)]: each family x task whose yaml the installed Ultralytics ships, at its smallest
    size (scaled yaml files at scale n; YOLOv9 and YOLOv10 ship one file per size), plus RT-DETR's smallest."""
    import glob
    import re
    import ultralytics
    root = os.path.join(os.path.dirname(ultralytics.__file__), "cfg", "models")
    found = {}
    for path in sorted(glob.glob(os.path.join(root, "*", "*.yaml"))):
        stem = os.path.basename(path)[:-5]
        m = re.fullmatch(r"(yolov?\d+)([ntsmcblx]?)((?:-seg|-pose|-obb|-cls)?)", stem)
        if m is None:
            if stem.startswith("rtdetr-") and stem[7:] in SIZES:
                found.setdefault(("rtdetr", ""), []).append((SIZES.index(stem[7:]), stem + ".yaml"))
            continue
        family, size, task = m.groups()
        with open(path) as f:
            scaled = "scales:" in f.read()
        name = f"{family}{size or 'n'}{task}.yaml" if scaled else stem + ".yaml"
        found.setdefault((family, task), []).append((SIZES.index(size or "n"), name))
    return [(f"{family}{task or '-det'}", min(files)[1]) for (family, task), files in sorted(found.items())]
