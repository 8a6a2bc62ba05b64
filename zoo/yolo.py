"""YOLOv8 and YOLO11 detectors (Ultralytics) with box decoding in the network.

The backbone and neck follow Ultralytics' YAML layer lists (`from, repeats, module, args`) scaled by depth and
width as Ultralytics scales them, so weights keep Ultralytics' names (`model.0.conv.weight`, ...). The Detect head
decodes in the network: DFL (softmax over 16 bins, then its fixed 1x1 conv = the expected distance), anchors from
the run-time feature sizes, xyxy boxes in input pixels, sigmoid class scores; then each anchor's best class and a
top-k over anchors, so the engine returns at most `max_det` candidates per image. TensorRT-RTX builds no NMS layer:
NMS runs on the host (trtnet.detect).

Ultralytics (AGPL-3.0) is imported only by the PyTorch reference and the checkpoint loader, never by the network.
"""
import math
import os

from trtnet import (Graph, arange, bn, cast, cat, chunk, conv, expand, gather, interpolate, matmul, max_pool,
                    reshape, sigmoid, silu, softmax, split, topk, unsqueeze)
from trtnet import max as max_along
from trtnet.zoo import randomize_trivial, register

BN_EPS = 1e-3      # Ultralytics' BatchNorm eps
REG_MAX = 16       # DFL bins per box side
CLASSES = 80
STRIDES = (8, 16, 32)
MAX_DET = 300
SIZE_RANGE = (128, 640, 1280)   # H and W, multiples of 32; 128x128 still has more than 300 anchors

# [from, repeats, module, args] as in Ultralytics' yolov8.yaml and yolo11.yaml (Detect is the last layer)
YOLOV8 = [
    (-1, 1, "Conv", [64, 3, 2]), (-1, 1, "Conv", [128, 3, 2]), (-1, 3, "C2f", [128, True]),
    (-1, 1, "Conv", [256, 3, 2]), (-1, 6, "C2f", [256, True]), (-1, 1, "Conv", [512, 3, 2]),
    (-1, 6, "C2f", [512, True]), (-1, 1, "Conv", [1024, 3, 2]), (-1, 3, "C2f", [1024, True]),
    (-1, 1, "SPPF", [1024, 5]),
    (-1, 1, "Upsample", [None, 2, "nearest"]), ([-1, 6], 1, "Concat", [1]), (-1, 3, "C2f", [512]),
    (-1, 1, "Upsample", [None, 2, "nearest"]), ([-1, 4], 1, "Concat", [1]), (-1, 3, "C2f", [256]),
    (-1, 1, "Conv", [256, 3, 2]), ([-1, 12], 1, "Concat", [1]), (-1, 3, "C2f", [512]),
    (-1, 1, "Conv", [512, 3, 2]), ([-1, 9], 1, "Concat", [1]), (-1, 3, "C2f", [1024]),
    ([15, 18, 21], 1, "Detect", [CLASSES]),
]
YOLO11 = [
    (-1, 1, "Conv", [64, 3, 2]), (-1, 1, "Conv", [128, 3, 2]), (-1, 2, "C3k2", [256, False, 0.25]),
    (-1, 1, "Conv", [256, 3, 2]), (-1, 2, "C3k2", [512, False, 0.25]), (-1, 1, "Conv", [512, 3, 2]),
    (-1, 2, "C3k2", [512, True]), (-1, 1, "Conv", [1024, 3, 2]), (-1, 2, "C3k2", [1024, True]),
    (-1, 1, "SPPF", [1024, 5]), (-1, 2, "C2PSA", [1024]),
    (-1, 1, "Upsample", [None, 2, "nearest"]), ([-1, 6], 1, "Concat", [1]), (-1, 2, "C3k2", [512, False]),
    (-1, 1, "Upsample", [None, 2, "nearest"]), ([-1, 4], 1, "Concat", [1]), (-1, 2, "C3k2", [256, False]),
    (-1, 1, "Conv", [256, 3, 2]), ([-1, 13], 1, "Concat", [1]), (-1, 2, "C3k2", [512, False]),
    (-1, 1, "Conv", [512, 3, 2]), ([-1, 10], 1, "Concat", [1]), (-1, 2, "C3k2", [1024, True]),
    ([16, 19, 22], 1, "Detect", [CLASSES]),
]
# name: (layers, (depth, width, max_channels), legacy head: v8's cv3 is two 3x3 Convs, YOLO11's two DWConv+Conv)
VARIANTS = {
    "yolov8n": (YOLOV8, (0.33, 0.25, 1024), True), "yolov8s": (YOLOV8, (0.33, 0.50, 1024), True),
    "yolo11n": (YOLO11, (0.50, 0.25, 1024), False), "yolo11s": (YOLO11, (0.50, 0.50, 1024), False),
}


def conv_bn(x, w, out, k=1, s=1, groups=1, act=True):
    """Ultralytics' Conv: conv (no bias), BatchNorm, SiLU."""
    x = bn(conv(x, w["conv"], out, k, s, k // 2, groups=groups), w["bn"], eps=BN_EPS)
    return silu(x) if act else x


def bottleneck(x, w, shortcut, k=3, e=0.5):
    c = x.shape[1]
    y = conv_bn(conv_bn(x, w["cv1"], int(c * e), k), w["cv2"], c, k)
    return x + y if shortcut else y


def c2f(x, w, n, out, shortcut=False):
    """CSP with 2 convs: split cv1's output in halves, chain n bottlenecks on the second, concat every stage."""
    c = int(out * 0.5)
    ys = list(chunk(conv_bn(x, w["cv1"], 2 * c), 2, 1))
    for i in range(n):
        ys.append(bottleneck(ys[-1], w[f"m.{i}"], shortcut, e=1.0))
    return conv_bn(cat(ys, 1), w["cv2"], out)


def c3k(x, w, out, n=2, shortcut=True):
    """CSP with 3 convs: bottlenecks on one half, a plain 1x1 on the other, fused by cv3."""
    c = int(out * 0.5)
    y = conv_bn(x, w["cv1"], c)
    for i in range(n):
        y = bottleneck(y, w[f"m.{i}"], shortcut, e=1.0)
    return conv_bn(cat([y, conv_bn(x, w["cv2"], c)], 1), w["cv3"], out)


def c3k2(x, w, n, out, use_c3k=False, e=0.5):
    """C2f whose inner blocks are C3k (deeper stages) or bottlenecks of half width."""
    c = int(out * e)
    ys = list(chunk(conv_bn(x, w["cv1"], 2 * c), 2, 1))
    for i in range(n):
        ys.append(c3k(ys[-1], w[f"m.{i}"], c) if use_c3k else bottleneck(ys[-1], w[f"m.{i}"], True))
    return conv_bn(cat(ys, 1), w["cv2"], out)


def sppf(x, w, n, out, k):
    """Spatial pyramid pooling, fast: three chained k x k max pools (= pools of 5, 9, 13), concatenated."""
    ys = [conv_bn(x, w["cv1"], x.shape[1] // 2)]
    for _ in range(3):
        ys.append(max_pool(ys[-1], k, 1, k // 2))
    return conv_bn(cat(ys, 1), w["cv2"], out)


def attention(x, w, heads):
    """Multi-head self-attention over all positions (key dim half the head dim), plus a depthwise 3x3
    positional encoding of the values."""
    n, c, h, wd = x.shape
    head_dim = c // heads
    key_dim = head_dim // 2
    qkv = conv_bn(x, w["qkv"], c + 2 * key_dim * heads, act=False)
    q, k, v = split(reshape(qkv, (n, heads, 2 * key_dim + head_dim, h * wd)), [key_dim, key_dim, head_dim], 2)
    attn = softmax(matmul((q * key_dim ** -0.5).transpose(-2, -1), k), -1)
    v = reshape(v, (n, c, h, wd))
    y = reshape(matmul(reshape(v, (n, heads, head_dim, h * wd)), attn.transpose(-2, -1)), (n, c, h, wd))
    return conv_bn(y + conv_bn(v, w["pe"], c, 3, groups=c, act=False), w["proj"], c, act=False)


def psa_block(x, w, heads):
    x = x + attention(x, w["attn"], heads)
    return x + conv_bn(conv_bn(x, w["ffn.0"], 2 * x.shape[1]), w["ffn.1"], x.shape[1], act=False)


def c2psa(x, w, n, out):
    """CSP around n attention blocks on one half of the channels."""
    c = out // 2
    a, b = chunk(conv_bn(x, w["cv1"], 2 * c), 2, 1)
    for i in range(n):
        b = psa_block(b, w[f"m.{i}"], max(c // 64, 1))
    return conv_bn(cat([a, b], 1), w["cv2"], out)


def upsample(x, w, n, size, scale, mode):
    return interpolate(x, scale_factor=scale, mode=mode)


def concat(xs, w, n, dim):
    return cat(xs, dim)


BLOCKS = {"Conv": lambda x, w, n, out, k, s: conv_bn(x, w, out, k, s), "C2f": c2f, "C3k2": c3k2, "SPPF": sppf,
          "C2PSA": c2psa, "Upsample": upsample, "Concat": concat}
WIDE = ("Conv", "C2f", "C3k2", "SPPF", "C2PSA")   # modules whose first argument is a width to scale


def scaled(kind, n, args, scale):
    """Repeats and widths as Ultralytics' parse_model scales them."""
    depth, width, max_channels = scale
    n = max(round(n * depth), 1) if n > 1 else n
    if kind in WIDE:
        args = [math.ceil(min(args[0], max_channels) * width / 8) * 8, *args[1:]]
    return n, args


def level_anchors(f):
    """(1, 2, h*w) cell centres (x, y) of feature map `f` in grid units, from its run-time size."""
    h, wd = f.shape[2:]
    xs = expand(reshape(arange(wd, dtype="float32", like=f) + 0.5, (1, wd)), (h, wd))
    ys = expand(reshape(arange(h, dtype="float32", like=f) + 0.5, (h, 1)), (h, wd))
    return reshape(cat([reshape(xs, (1, 1, h * wd)), reshape(ys, (1, 1, h * wd))], 1), (1, 2, h * wd))


def dfl(x, w):
    """(N, 64, h, w) bin logits -> (N, 4, h*w) distances: softmax over each side's 16 bins, then the fixed 1x1
    conv whose weights are 0..15 (the expectation)."""
    n, _, h, wd = x.shape
    x = softmax(reshape(x, (n, 4, REG_MAX, h * wd)).transpose(1, 2), 1)
    return reshape(conv(x, w, 1, 1), (n, 4, h * wd))


def detect(feats, w, legacy):
    """Decoded (N, A, 4) xyxy pixel boxes and (N, A, classes) sigmoid scores over all levels' anchors."""
    c_box = max(16, feats[0].shape[1] // 4, REG_MAX * 4)
    c_cls = max(feats[0].shape[1], min(CLASSES, 100))
    boxes, scores = [], []
    for i, (f, stride) in enumerate(zip(feats, STRIDES)):
        b = conv_bn(conv_bn(f, w[f"cv2.{i}.0"], c_box, 3), w[f"cv2.{i}.1"], c_box, 3)
        b = conv(b, w[f"cv2.{i}.2"], 4 * REG_MAX, 1)
        if legacy:
            s = conv_bn(conv_bn(f, w[f"cv3.{i}.0"], c_cls, 3), w[f"cv3.{i}.1"], c_cls, 3)
        else:
            c = f.shape[1]
            s = conv_bn(conv_bn(f, w[f"cv3.{i}.0.0"], c, 3, groups=c), w[f"cv3.{i}.0.1"], c_cls)
            s = conv_bn(conv_bn(s, w[f"cv3.{i}.1.0"], c_cls, 3, groups=c_cls), w[f"cv3.{i}.1.1"], c_cls)
        s = conv(s, w[f"cv3.{i}.2"], CLASSES, 1)
        n, _, h, wd = s.shape
        lt, rb = chunk(dfl(b, w["dfl.conv"]), 2, 1)
        anchors = level_anchors(f)
        boxes.append(cat([(anchors - lt) * stride, (anchors + rb) * stride], 1))
        scores.append(reshape(s, (n, CLASSES, h * wd)))
    return cat(boxes, 2).transpose(1, 2), sigmoid(cat(scores, 2)).transpose(1, 2)


def select(boxes, scores, k):
    """Each anchor's best class, then the k best anchors: boxes (N, k, 4), scores (N, k), int32 classes (N, k)."""
    best, classes = max_along(scores, dim=-1)
    top, index = topk(best, k, dim=1)
    n = boxes.shape[0]
    picked = gather(boxes, 1, expand(unsqueeze(index, -1), (n, k, 4)))
    return picked, top, cast(gather(classes, 1, index), "int32")


def yolo(w, shape, name, raw=False, max_det=MAX_DET):
    """The network on (N, 3, H, W) RGB images in [0, 1]; `raw` outputs every anchor's decoded boxes and scores
    instead of the top-k candidates."""
    layers, scale, legacy = VARIANTS[name]
    g = Graph(name)
    ranges = {d: SIZE_RANGE for d in shape[1:] if isinstance(d, str)}
    x = g.input("images", ("N", *shape), ranges=ranges)
    ys = []
    for i, (src, n, kind, args) in enumerate(layers):
        inp = [ys[j] for j in src] if isinstance(src, list) else ys[src] if ys else x
        if kind == "Detect":
            boxes, scores = detect(inp, w[f"model.{i}"], legacy)
            break
        n, args = scaled(kind, n, args, scale)
        ys.append(BLOCKS[kind](inp, w[f"model.{i}"] if kind in WIDE else None, n, *args))
    if raw:
        g.output(boxes, "all_boxes")
        g.output(scores, "all_scores")
        return g
    for out, label in zip(select(boxes, scores, max_det), ("boxes", "scores", "classes")):
        g.output(out, label)
    return g


def detection_model(name):
    """Ultralytics' own DetectionModel built from its YAML (no download)."""
    from ultralytics.nn.tasks import DetectionModel
    cfg = f"{name}.yaml"
    return DetectionModel(cfg, verbose=False)


def xyxy_candidates(raw, max_det=MAX_DET):
    """The network's selection applied to DetectionModel's raw (N, 4 + classes, A) xywh output."""
    import torch
    pred = raw.transpose(1, 2)
    xy, wh = pred[..., :2], pred[..., 2:4]
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], -1)
    best, classes = pred[..., 4:].max(-1)
    index = best.argsort(dim=1, descending=True, stable=True)[:, :max_det]   # ties: lowest anchor first, as TopK
    top = best.gather(1, index)
    picked = boxes.gather(1, index[..., None].expand(-1, -1, 4))
    return picked, top, classes.gather(1, index).int()


def reference(name, max_det=MAX_DET):
    """A thin wrapper around DetectionModel whose state_dict keeps its names and whose output is the network's
    top-k selection of the decoded boxes."""
    import torch

    class TopK(torch.nn.Module):
        def __init__(self):
            super().__init__()
            det = detection_model(name)
            self.model = det.model          # registered: keys stay `model.0.conv.weight`, ...
            self.detection_model = [det]    # not a submodule: its parameters are `model`'s

        def train(self, mode=True):
            self.detection_model[0].train(mode)
            return super().train(mode)

        def raw(self, x):
            """DetectionModel's own inference output: (N, 4 + classes, A), xywh boxes and sigmoid scores."""
            return self.detection_model[0](x)[0]

        def forward(self, x):
            return xyxy_candidates(self.raw(x), max_det)

    return TopK()


def ultralytics_state(path, trust=False):
    """{state_dict name: array} from an Ultralytics .pt checkpoint (a pickle of whole model objects)."""
    if not trust:
        raise PermissionError(f"{path}: an Ultralytics checkpoint is a pickle that can run code when loaded; "
                              "pass --trust-checkpoint if you trust its source")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint")
    from ultralytics.nn.tasks import torch_safe_load
    ckpt, _ = torch_safe_load(path)
    model = ckpt.get("ema") or ckpt.get("model")
    if model is None or not hasattr(model, "state_dict"):
        raise ValueError(f"{path}: no 'model' or 'ema' module in the checkpoint")
    return {k: v.detach().float().numpy() for k, v in model.float().state_dict().items()}


def smooth_images(n, h, w, generator=None):
    """Seeded (n, 3, h, w) images in [0, 1] whose detail spans all scales, as in photographs: noise upsampled
    from 1/64, 1/16, 1/4 and full size, summed and brought to a photograph's mean and contrast."""
    import torch
    import torch.nn.functional as F
    layers = [F.interpolate(torch.rand(n, 3, max(h // f, 1), max(w // f, 1), generator=generator), size=(h, w),
                            mode="bilinear") for f in (64, 16, 4, 1)]
    x = sum(layers)
    x = (x - x.mean()) / x.std()
    return (x * 0.28 + 0.45).clamp(0, 1)


def sample_images(graph, env, rng):
    """Photograph-like inputs for checks: the network's scores stay in range (noise of unit variance saturates
    them, which leaves the top-k order to rounding)."""
    import torch
    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
    n, _, h, w = graph.concrete(graph.inputs[0], env)   # named sizes, or those of a graph recorded at one shape
    return {"images": smooth_images(n, h, w, gen).numpy()}


def calibrate(module):
    """Seeded init as a trained model holds it: randomize_trivial's BatchNorm affine terms and perturbed constants,
    then running statistics measured on seeded smooth images (one pass in training mode). With statistics that do not
    match the activations, the signal fades through the depth and most anchors' scores tie, which leaves the
    top-k order to rounding."""
    import torch
    randomize_trivial(module, int(torch.randint(2 ** 31, ())))
    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None                    # a plain average over the pass
    module.train()
    with torch.no_grad():
        module.detection_model[0](smooth_images(4, 256, 256))
    for m in norms:
        m.momentum = 0.03
    module.eval()


def _register(name):
    layers, (depth, width, _), _ = VARIANTS[name]
    doc = (f"Ultralytics {name} detector (depth {depth}, width {width}), 3xHxW in [0, 1] with H, W multiples of 32; "
           f"outputs the {MAX_DET} best boxes (xyxy pixels), scores and int32 classes before NMS")
    register(name, (3, "H", "W"), lambda: reference(name), doc=doc, test_shape=(3, 160, 160), train=calibrate,
             inputs=sample_images,
             slow=name.endswith("s"))(lambda w, shape: yolo(w, shape, name))


for _name in VARIANTS:
    _register(_name)
