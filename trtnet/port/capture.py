"""Load a PyTorch module from a spec and capture its forward pass as an fx graph with every node's value."""
import contextlib
import functools
import importlib
import inspect
import json
import linecache
import operator
import os
import re
import sys

import torch
import torch.fx as fx

from . import ultralytics
from .modules import MODULES
from .ops import LEAVES
from ..cli import message


class PortError(ValueError):
    """The module cannot be ported; the message lists every reason at once."""


# no downloads ------------------------------------------------------------------------------------
_STATE = {"offline": 0, "hooked": False}
LOCAL = (None, "localhost", "127.0.0.1", "::1")


def _refuse_network(event, args):
    """An audit hook: while a port runs, a network request raises (torch.hub, Hugging Face's hub, any URL)."""
    if not _STATE["offline"] or event not in ("urllib.Request", "socket.getaddrinfo", "socket.connect"):
        return
    where = args[1] if event == "socket.connect" else args[0]
    if event == "socket.connect" and (not isinstance(where, tuple) or where[0] in LOCAL) or where in LOCAL:
        return
    raise PortError(f"the module would download ({where if isinstance(where, str) else where[0]}), and a port "
                    "never downloads: pass weights=None, pretrained=False or weights_backbone=None")


class offline:
    """No download while the module is built and captured: weights are random, hubs offline."""

    def __enter__(self):
        if not _STATE["hooked"]:
            sys.addaudithook(_refuse_network)
            _STATE["hooked"] = True
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        _STATE["offline"] += 1

    def __exit__(self, *exc):
        _STATE["offline"] -= 1


def _random_weights(builder, spec, kwargs):
    """A torchvision builder's keyword arguments with every pretrained-weights argument off (None); one given
    on is refused, as it would download."""
    for k, q in inspect.signature(builder).parameters.items():
        if not k.startswith(("weights", "pretrained")):
            continue
        if kwargs.get(k):
            raise PortError(f"{spec}: {k}={kwargs[k]!r} would download weights, and a port never downloads "
                            f"(it writes the module's random weights): leave {k} out or pass null")
        if q.default not in (None, False, q.empty):
            kwargs[k] = None
    return kwargs


# spec loading ------------------------------------------------------------------------------------
def load_spec(spec, trust_checkpoint=False):
    """(module, description, factory source) for `package.module:factory[{json}]`, `torchvision:NAME`,
    `timm:NAME`, `transformers:CLASS{json config}`, `ultralytics.nn.tasks:TASKModel{"cfg": NAME.yaml}` or an
    Ultralytics checkpoint `FILE.pt` (a pickle: loaded only when trusted)."""
    if spec.endswith(".pt") and os.path.isfile(spec):
        return _ultralytics({"checkpoint": spec, "trust_checkpoint": bool(trust_checkpoint)}, spec)
    kind, _, rest = spec.partition(":")
    if not rest:
        raise PortError(f"spec {spec!r}: expected SOURCE:NAME (torchvision:resnet18, timm:resnet26d, "
                        "transformers:BertModel{...}, package.module:factory)")
    name, kwargs = _split_kwargs(rest)
    if kind == "torchvision":
        import torchvision.models as tvm
        for where in ("", "video", "segmentation", "detection", "optical_flow", "quantization"):
            mod = getattr(tvm, where) if where else tvm
            if hasattr(mod, name):
                model = getattr(mod, name)(**_random_weights(getattr(mod, name), spec, kwargs))
                if where == "detection":
                    return detection_network(model), (mod.__name__, name, kwargs)
                return model, (mod.__name__, name, kwargs)
        raise PortError(f"torchvision has no model {name!r}")
    if kind == "timm":
        import timm
        if kwargs.get("pretrained"):
            raise PortError(f"{spec}: pretrained=true would download weights, and a port never downloads (it "
                            "writes the module's random weights): leave pretrained out")
        kwargs.setdefault("pretrained", False)
        return timm.create_model(name, **kwargs), ("timm", name, kwargs)
    if kind == "ultralytics.nn.tasks" and name.endswith("Model") and "cfg" in kwargs:
        return _ultralytics({k: v for k, v in kwargs.items() if k in ("cfg", "nc")}, spec)
    if kind == "transformers":
        cls = transformers_class(name)
        return cls(cls.config_class(**kwargs)), ("transformers", name, kwargs)
    module = getattr(importlib.import_module(kind), name)(**kwargs)
    if not isinstance(module, torch.nn.Module):
        raise PortError(f"{kind}:{name} returned {type(module).__name__}, expected a torch.nn.Module")
    return module, (kind, name, kwargs)


def _ultralytics(kwargs, spec):
    """An Ultralytics task model in export form (decoded outputs, named): trtnet.port.ultralytics.model."""
    try:
        return ultralytics.model(**kwargs), ("trtnet.port.ultralytics", "model", kwargs)
    except PermissionError as e:
        raise PortError(f"{e} (--trust-checkpoint)") from None


def transformers_class(name):
    """A transformers model class by name, also from its modeling module (WhisperEncoder)."""
    import transformers
    if hasattr(transformers, name):
        return getattr(transformers, name)
    key = name.lower()    # the families whose names start the class's first, longest first: WhisperEncoder, whisper
    families = sorted(dir(transformers.models), key=lambda f: (not key.startswith(f.replace("_", "")), -len(f)))
    for family in families:
        try:
            mod = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
        except Exception:  # noqa: BLE001 (families without a torch modeling module)
            continue
        if hasattr(mod, name):
            return getattr(mod, name)
    raise PortError(f"transformers has no model class {name!r}")


def detection_network(detector):
    """What of a torchvision detector runs as one network: a one-stage detector's DetectionHeads, a two-stage
    one's RegionProposals (its second network, RoIAlign and the box, mask or keypoint heads, runs on the
    proposals the host picks: trtnet.detect.torchvision_two_stage_detections)."""
    return DetectionHeads(detector) if hasattr(detector, "head") else RegionProposals(detector)


class RegionProposals(torch.nn.Module):
    """A two-stage torchvision detector's first network (Faster, Mask, Keypoint R-CNN): backbone, FPN and RPN
    head with its anchors (from the features' run-time sizes) and box decoding, returning the pooled levels'
    features (`feature_0`...) and each level's objectness (N, A) and decoded proposals (N, A, 4), xyxy in the
    input's pixels (`objectness_0`, `proposals_0`...), anchors ordered as torchvision's RPN orders them."""

    def __init__(self, detector):
        super().__init__()
        self.backbone, self.head = detector.backbone, detector.rpn.head
        self.rpn = [detector.rpn]                      # not a submodule: its parameters are the head's
        self.levels = list(detector.roi_heads.box_roi_pool.featmap_names)
        self.eval()

    def forward(self, x):
        features = self.backbone(x)
        objectness, deltas = self.head(list(features.values()))
        rpn = self.rpn[0]
        out = {f"feature_{k}": v for k, v in features.items() if k in self.levels}
        for i, (o, d, f) in enumerate(zip(objectness, deltas, features.values())):
            n, k, h, w = o.shape                      # torchvision's permute_and_flatten: by position, then anchor
            out[f"objectness_{i}"] = o.permute(0, 2, 3, 1).reshape(n, -1)
            d = d.view(n, k, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4)
            anchors = DetectionHeads.anchors(rpn.anchor_generator, x, f, i)
            out[f"proposals_{i}"] = DetectionHeads.decode(d, anchors, rpn.box_coder.weights,
                                                          rpn.box_coder.bbox_xform_clip)
        return out


class DetectionHeads(torch.nn.Module):
    """A one-stage torchvision detector (RetinaNet, FCOS, SSD, SSDlite) up to what its postprocess_detections
    computes for every anchor: `boxes` (N, A, 4) decoded, xyxy in the input's pixels, and `scores` (N, A, classes).
    Anchors come from the features' run-time sizes, so batch, height and width stay free; thresholds, top-k,
    clipping and NMS are left to the host (trtnet.detect.torchvision_detections, which reads the detector kept
    here, unregistered)."""

    def __init__(self, detector):
        super().__init__()
        from torchvision.models.detection.ssd import SSD
        self.backbone, self.head = detector.backbone, detector.head
        self.detector = [detector]                    # not a submodule: its parameters are the two above
        self.softmax = isinstance(detector, SSD)      # SSD's classes compete (background first); others' do not
        self.eval()                                   # an inference wrapper: a builder's detector comes training

    def train(self, mode=True):
        self.detector[0].train(mode)                  # its transform and postprocess follow the mode too
        return super().train(mode)

    def forward(self, x):
        features = self.backbone(x)
        features = list(features.values()) if isinstance(features, dict) else [features]
        out = self.head(features)
        detector = self.detector[0]
        anchors = torch.cat([self.anchors(detector.anchor_generator, x, f, k) for k, f in enumerate(features)])
        regression, logits = out["bbox_regression"], out["cls_logits"]
        if "bbox_ctrness" in out:                     # FCOS: the linear coder, class scores with centre-ness
            return {"boxes": self.linear_decode(regression, anchors, detector.box_coder.normalize_by_size),
                    "scores": torch.sqrt(torch.sigmoid(logits) * torch.sigmoid(out["bbox_ctrness"]))}
        coder = detector.box_coder
        return {"boxes": self.decode(regression, anchors, coder.weights, coder.bbox_xform_clip),
                "scores": torch.softmax(logits, -1) if self.softmax else torch.sigmoid(logits)}

    @staticmethod
    def anchors(generator, x, feature, level):
        """(h x w x k, 4) anchors of one level, by grid position then cell anchor, as torchvision's generators
        make them from the grid's and the image's sizes: AnchorGenerator's rounded cell anchors at strides of
        image size // grid size; DefaultBoxGenerator's relative centres and box sizes times the image size."""
        h, w = feature.shape[-2:]
        image_h, image_w = x.shape[-2:]
        size = None
        if hasattr(generator, "cell_anchors"):
            cell = torch.tensor(generator.cell_anchors[level].tolist())
            ys, xs = torch.arange(h).float() * (image_h // h), torch.arange(w).float() * (image_w // w)
        else:
            pairs = generator._wh_pairs[level].clamp(min=0, max=1) if generator.clip else generator._wh_pairs[level]
            cell = torch.tensor(torch.cat([-0.5 * pairs, 0.5 * pairs], 1).tolist())
            step = generator.steps[level] if generator.steps else None
            ys = (torch.arange(h).float() + 0.5) / (image_h / step if step else h)
            xs = (torch.arange(w).float() + 0.5) / (image_w / step if step else w)
            size = torch.tensor([image_w, image_h, image_w, image_h]).float()
        grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)] * 2, -1).reshape(-1, 1, 4)
        boxes = (grid + cell[None]).reshape(-1, 4)
        return boxes if size is None else boxes * size

    @staticmethod
    def decode(rel, anchors, weights, clip):
        """torchvision's BoxCoder.decode_single of (N, A, 4) codes against (A, 4) anchors."""
        widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
        ctr_x, ctr_y = anchors[:, 0] + 0.5 * widths, anchors[:, 1] + 0.5 * heights
        wx, wy, ww, wh = weights
        x = rel[..., 0] / wx * widths + ctr_x
        y = rel[..., 1] / wy * heights + ctr_y
        half_w = 0.5 * (torch.exp(torch.clamp(rel[..., 2] / ww, max=clip)) * widths)
        half_h = 0.5 * (torch.exp(torch.clamp(rel[..., 3] / wh, max=clip)) * heights)
        return torch.stack([x - half_w, y - half_h, x + half_w, y + half_h], -1)

    @staticmethod
    def linear_decode(rel, anchors, normalize):
        """torchvision's BoxLinearCoder.decode (FCOS): distances from the anchor's centre to the box's sides."""
        ctr_x, ctr_y = 0.5 * (anchors[:, 0] + anchors[:, 2]), 0.5 * (anchors[:, 1] + anchors[:, 3])
        if normalize:
            w, h = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
            rel = rel * torch.stack([w, h, w, h], -1)
        return torch.stack([ctr_x - rel[..., 0], ctr_y - rel[..., 1], ctr_x + rel[..., 2], ctr_y + rel[..., 3]], -1)


def _split_kwargs(rest):
    m = re.match(r"^([\w.]+)\s*(.*)$", rest, re.S)
    if not m:
        raise PortError(f"cannot read the name in {rest!r}")
    name, tail = m.group(1), m.group(2).strip()
    if not tail:
        return name, {}
    if os.path.isfile(tail):
        with open(tail) as f:
            return name, json.load(f)
    try:
        return name, json.loads(tail)
    except json.JSONDecodeError as e:
        raise PortError(f"keyword arguments {tail!r} are not JSON: {e}") from e


def default_inputs(module, source):
    """{name: (shape, dtype)}: timm's default input size, token ids for text transformers, else 1x3x224x224."""
    cfg = getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None) or {}
    size = getattr(getattr(module, "patch_embed", None), "img_size", None)
    if "input_size" in cfg:
        shape = cfg["input_size"] if size is None else (cfg["input_size"][0], *size)
        return {"x": ((1, *shape), "float32")}
    config = getattr(module, "config", None)
    if config is not None and hasattr(config, "vocab_size"):
        return {"input_ids": ((1, 16), "int64")}
    if config is not None and hasattr(config, "image_size"):
        size = config.image_size
        return {"pixel_values": ((1, getattr(config, "num_channels", 3), size, size), "float32")}
    return {"x": ((1, 3, 224, 224), "float32")}


def example_tensors(inputs, module=None):
    gen = torch.Generator().manual_seed(0)
    out = {}
    for name, (shape, dtype) in inputs.items():
        if dtype.startswith("int"):
            high = min(getattr(getattr(module, "config", None), "vocab_size", 10), 10)
            out[name] = torch.randint(0, high, shape, generator=gen, dtype=getattr(torch, dtype))
        else:
            out[name] = torch.randn(shape, generator=gen, dtype=getattr(torch, dtype))
    return _forward_name(out, module)


def _forward_name(examples, module):
    """One input named other than the one input of the module's forward (torchvision's `input`) takes its name:
    the module is called by these names."""
    import inspect
    if module is None or len(examples) != 1:
        return examples
    params = list(inspect.signature(type(module).forward).parameters.values())[1:]
    required = [q.name for q in params
                if q.default is q.empty and q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)]
    if len(required) != 1 or any(q.name in examples or q.kind == q.VAR_KEYWORD for q in params):
        return examples
    return {required[0]: next(iter(examples.values()))}


# tracing -----------------------------------------------------------------------------------------
class _Proxy(fx.Proxy):
    """A proxy that knows its value at the example input: Python control flow on sizes (if, len, range,
    iteration) follows the example, as it would in eager mode."""

    def __len__(self):
        return len(self.tracer.value(self))

    def __index__(self):
        return int(self.tracer.value(self))

    def __int__(self):
        return int(self.tracer.value(self))

    def __float__(self):
        return float(self.tracer.value(self))

    def __getattr__(self, k):
        if k in ("device", "dtype", "is_cuda", "requires_grad", "layout", "is_sparse", "is_quantized"):
            v = self.tracer.values.get(self.node, _UNKNOWN)
            if v is not _UNKNOWN:
                return getattr(v, k)
        return super().__getattr__(k)

    def unfold(self, dimension, size, step):
        """Tensor.unfold, sliding windows along one axis (not F.unfold's im2col, whose name trtnet's op has): the
        windows' positions picked by one index_select, then split into (window, offset), the offset last."""
        example = self.tracer.values.get(self.node, _UNKNOWN)
        if not isinstance(example, torch.Tensor) or not all(type(a) is int for a in (dimension, size, step)):
            return self.tracer.create_proxy("call_method", "unfold", (self, dimension, size, step), {})
        d = dimension % max(example.dim(), 1)
        starts = torch.arange((self.shape[d] - size) // step + 1) * step
        picks = self.index_select(d, (starts.unsqueeze(1) + torch.arange(size)).flatten())
        return picks.unflatten(d, (-1, size)).movedim(d + 1, -1)

    def __setitem__(self, index, value):
        """`t[index] = value` makes a new value of t that later reads of t get (a table filled by assignments):
        a torch.where over the positions that integers along some axes pick, else a copy assigned (folded
        where static, refused where it is not)."""
        new = _where_assigned(self, index, value)
        if new is None:
            new = self.tracer.create_proxy("call_function", assigned, (self, index, value), {})
        self.node = new.node


def assigned(tensor, index, value):
    """A copy of `tensor` with `tensor[index] = value`: an index assignment as a value of the graph."""
    tensor = tensor.clone()
    tensor[index] = value
    return tensor


def _where_assigned(t, index, value):
    """`t[index] = value` as torch.where(mask, value, t) for an index of integers and slices (an Ellipsis too): the
    mask from aranges of t's sizes so that it follows them, a slice's values spread to the positions it picks by an
    index_select of (position - start) // step; None for other indexes."""
    values = t.tracer.values
    example = values.get(t.node, _UNKNOWN)
    index = list(index) if isinstance(index, tuple) else [index]
    ellipsis = [k for k, i in enumerate(index) if i is Ellipsis]
    if not isinstance(example, torch.Tensor) or len(ellipsis) > 1:
        return None
    if ellipsis:
        index[ellipsis[0]:ellipsis[0] + 1] = [slice(None)] * (example.dim() - len(index) + 1)
    v = values.get(value.node, _UNKNOWN) if isinstance(value, fx.Proxy) else value
    if len(index) > example.dim() or not isinstance(v, (torch.Tensor, int, float, bool)) or not all(
            type(i) is int or isinstance(i, slice) and type(i.step) in (int, type(None)) and (i.step or 1) > 0
            for i in index):
        return None
    index += [slice(None)] * (example.dim() - len(index))
    picks = [d for d, i in enumerate(index) if type(i) is int]
    parts = [d for d, i in enumerate(index) if isinstance(i, slice) and not (   # x[:, off:] with off 0 is whole
        _zero(i.start) and i.stop is None and (i.step or 1) == 1)]
    if not picks and not parts:     # the whole tensor replaced by a value of its shape
        return value.to(example.dtype) if isinstance(v, torch.Tensor) and v.shape == example.shape else None
    if isinstance(v, torch.Tensor):     # of the rank of t[index] (broadcast from the left), then of t's
        value = value if v.dtype == example.dtype else value.to(example.dtype)
        if v.dim() + len(picks) < example.dim():
            value = value[(None,) * (example.dim() - len(picks) - v.dim())]
        for d in picks:
            value = value.unsqueeze(d)
    mask = None
    for d in picks + parts:
        at, spread = _positions(t, d, index[d])
        if spread is not None and isinstance(v, torch.Tensor) and values[value.node].shape[d] != 1:
            value = value.index_select(d, spread)
        at = at.reshape([-1 if a == d else 1 for a in range(example.dim())])
        mask = at if mask is None else mask & at
    return torch.where(mask, value, t)


def _positions(t, d, pick):
    """(mask of the positions along axis d that an integer or a slice picks, None or for a slice the index of the
    value's entry at each position), from an arange of t's size there: run-time sizes and offsets are followed."""
    size = t.shape[d]
    at = torch.arange(size)
    if type(pick) is int:
        return at == (pick if pick >= 0 else size + pick), None
    start, stop, step = (_offset(size, pick.start, 0), _offset(size, pick.stop, None), pick.step or 1)
    first = at if _zero(start) else at - start
    mask = [] if _zero(start) else [at >= start]
    mask += [] if stop is None else [at < stop]
    mask += [] if step == 1 else [first % step == 0]
    mask = functools.reduce(operator.and_, mask)
    return mask, torch.where(mask, first if step == 1 else first // step, 0)


def _offset(size, i, default):
    """A slice bound as a position: negative ones from the end (static ones clamped at 0, as Python does)."""
    if i is None:
        return default
    if type(i) is int:
        return i if i >= 0 else size + i if isinstance(size, fx.Proxy) else max(size + i, 0)
    return size + i if int(i) < 0 else i


def _zero(i):
    return i is None or type(i) is int and i == 0


_UNKNOWN = object()


class _Tracer(fx.Tracer):
    """Keeps the modules trtnet has a layer for as call_module nodes; traces through everything else, running
    each call on the example inputs alongside so that control flow on shapes can be decided."""

    def __init__(self, examples):
        super().__init__(autowrap_functions=LEAVES)
        self.record_stack_traces = True
        self.proxy_buffer_attributes = True     # buffers sliced by a size (position ids) follow the input
        self.examples, self.values = examples, {}

    def is_leaf_module(self, m, qualname):
        return type(m) in MODULES

    def proxy(self, node):
        return _Proxy(node, self)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        """fx keeps one read per buffer name: a buffer the forward reassigned is read anew."""
        if isinstance(attr_val, torch.Tensor) and self.proxy_buffer_attributes:
            name = next((k for k, b in self.root.named_buffers() if b is attr_val), None)
            read = parameter_proxy_cache.get(name)
            if read is not None and read.node.op == "get_attr" and self.values.get(read.node) is not attr_val:
                del parameter_proxy_cache[name]
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        from torch.fx._symbolic_trace import _maybe_revert_all_patches
        if kind == "call_function" and target in (torch.zeros, torch.ones, torch.empty) and len(args) > 1:
            args = (tuple(args),)       # torch.zeros(1, n, 3): one size, as a factory's first argument
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        try:   # modules run unpatched (fx patches their calls and attributes); functions need not (it is slow)
            with _maybe_revert_all_patches() if kind in ("call_module", "get_attr") else contextlib.nullcontext():
                self.values[node] = self._run(kind, target, args, kwargs)
        except Exception:  # noqa: BLE001 (a value that cannot be computed is left unknown)
            self.values[node] = _UNKNOWN
        return node

    def _run(self, kind, target, args, kwargs):
        args, kwargs = fx.node.map_aggregate((args, kwargs), self._concrete)
        if kind == "placeholder":
            return self.examples[target] if target in self.examples else args[0] if args else _UNKNOWN
        if kind == "get_attr":
            return _attribute(self.root, target)
        if kind == "call_module":
            return self.root.get_submodule(target)(*args, **kwargs)
        if kind == "call_method":
            return getattr(args[0], target)(*args[1:], **kwargs)
        if kind == "call_function":
            return target(*args, **kwargs)
        return _UNKNOWN

    def _concrete(self, a):
        if isinstance(a, fx.Node):
            v = self.values.get(a, _UNKNOWN)
            if v is _UNKNOWN:
                raise ValueError("unknown value")
            return v
        return a

    def value(self, proxy):
        v = self.values.get(proxy.node, _UNKNOWN)
        if v is _UNKNOWN:
            raise fx.proxy.TraceError(f"the value of {proxy.node.name} at the example input is unknown")
        return v

    def to_bool(self, obj):
        return bool(self.value(obj))

    def iter(self, obj):
        return iter([obj[i] for i in range(len(self.value(obj)))])

    def keys(self, obj):
        return self.value(obj).keys()


def trace(module, examples):
    """(GraphModule, method): fx symbolic trace (through torch.fx.wrap'ed helpers too), else torch.export
    (non-strict) with a dynamic batch. The module's attributes are left as they were (see `kept`)."""
    module.eval()
    names = list(examples)
    try:
        tracer = _Tracer(examples)
        with kept(module) as state, torch.no_grad(), _unwrapped(), _plain_forward(module, names) as concrete:
            graph = tracer.trace(module, concrete_args=concrete)
            state.restore()
            gm = _graph_module(tracer, graph)
        _inplace_as_values(gm.graph, tracer.values)
        for n in gm.graph.nodes:   # torch.tensor, wrapped only while tracing (_unwrapped): its code registers nothing
            n.meta.pop("is_wrapped", None)
        return gm, "fx"
    except Exception as fx_error:  # noqa: BLE001 (any tracing failure: try export)
        try:
            with kept(module):
                ep = _export(module, examples)
        except Exception as e:  # noqa: BLE001
            fx_line, export_line = _first(fx_error), _first(e)
            raise PortError(f"cannot capture the module: {fx_line}" if fx_line == export_line else
                            f"cannot capture the module: fx: {fx_line}; torch.export: {export_line}") from e
        return ep.module(), "export"


class kept:
    """The module's attributes and the contents of its dicts (buffers, caches) as they were on entry, back on exit
    and on restore(): a forward that caches what it computes (a table of the input's size as a buffer, attention
    biases by device) would otherwise keep what the capture gave it, proxies included."""

    def __init__(self, module):
        self.saved = [(m, dict(vars(m)), {k: dict(v) for k, v in vars(m).items() if isinstance(v, dict)})
                      for m in module.modules()]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore()

    def restore(self):
        for m, attrs, dicts in self.saved:
            vars(m).clear()
            vars(m).update(attrs)
            for k, v in dicts.items():
                attrs[k].clear()
                attrs[k].update(v)


def _graph_module(tracer, graph):
    """The GraphModule of a trace, from the module as it was before: a get_attr that read what the forward had
    assigned (a cached table, a constant fx stored on the module) reads that value as a constant of its own,
    attached only while the GraphModule copies it."""
    root = tracer.root
    for n in graph.nodes:
        v = tracer.values.get(n, _UNKNOWN)
        if n.op == "get_attr" and v is not _UNKNOWN and v is not _attribute(root, n.target):
            n.target = tracer.get_fresh_qualname("_tensor_constant")
            setattr(root, n.target, v)
    return fx.GraphModule(root, graph)


def _attribute(root, target):
    """The attribute a qualified name reaches, or _UNKNOWN."""
    for part in target.split("."):
        root = getattr(root, part, _UNKNOWN)
    return root


def _inplace_as_values(graph, values):
    """`out.mul_(gain)` changes `out` for every later use, which fx still points at `out`: those uses read the
    in-place call instead, so that writing each call as a new value keeps the module's meaning."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    for n in list(graph.nodes):
        name = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", "")
        named = name.endswith("_") and not name.startswith("_") and name not in ("and_", "or_")
        inplace = n.op == "call_method" and named or n.op == "call_function" and (
            named or n.kwargs.get("inplace") is True)
        first = n.args[0] if n.args else None
        if inplace and isinstance(first, fx.Node) and isinstance(values.get(first), torch.Tensor):
            first.replace_all_uses_with(n, delete_user_cb=lambda u, n=n: order[u] > order[n])


class _plain_forward:
    """A forward taking exactly the inputs, for modules whose forward is wrapped or takes **kwargs (fx patches
    the root function's code, which such wrappers do not allow); other arguments keep their defaults."""

    def __init__(self, module, names):
        self.module, self.names = module, names

    def __enter__(self):
        import inspect
        fwd = type(self.module).forward
        params = inspect.signature(fwd).parameters.values()
        if not hasattr(fwd, "__wrapped__") and all(q.kind != q.VAR_KEYWORD for q in params):
            self.cls = None
            return _concrete(self.module, self.names)
        self.cls = type(self.module)
        args = ", ".join(self.names)
        scope = {"base": fwd}
        exec(f"def forward(self, {args}):\n    return base(self, {', '.join(f'{k}={k}' for k in self.names)})",
             scope)
        self.module.__class__ = type(self.cls.__name__, (self.cls,), {"forward": scope["forward"],
                                                                      "__module__": self.cls.__module__})
        return None

    def __exit__(self, *exc):
        if self.cls is not None:
            self.module.__class__ = self.cls


class _unwrapped:
    """Functions a library marked with torch.fx.wrap are traced through: trtnet writes what is inside. torch.tensor
    is wrapped instead: of traced sizes (torch.tensor([w, h])) it is a call of the graph, not an error."""

    def __enter__(self):
        from torch.fx import _symbolic_trace as st
        self.saved = dict(st._wrapped_fns_to_patch)
        st._wrapped_fns_to_patch.clear()
        st._wrapped_fns_to_patch[(id(vars(torch)), "tensor")] = vars(torch)

    def __exit__(self, *exc):
        from torch.fx import _symbolic_trace as st
        st._wrapped_fns_to_patch.clear()
        st._wrapped_fns_to_patch.update(self.saved)


def _export(module, examples):
    """Exported at batch 2 (a batch of 1 would be specialized), the batch dynamic."""
    batch = torch.export.Dim("N", min=1, max=64)
    try:
        dyn = {k: {0: batch} for k in examples}
        two = {k: torch.cat([v, v.flip(0)]) if v.shape[0] == 1 else v for k, v in examples.items()}
        return torch.export.export(module, (), two, dynamic_shapes=dyn, strict=False)
    except Exception:  # noqa: BLE001 (the batch got specialized: export at the example's size)
        return torch.export.export(module, (), dict(examples), strict=False)


def _concrete(module, names):
    """Arguments of forward beyond the inputs are left at their defaults (None masks, flags)."""
    import inspect
    params = list(inspect.signature(module.forward).parameters.values())
    return {p.name: p.default for p in params if p.name not in names and p.default is not inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)} or None


def _first(e):
    """One line for a capture's failure, after the source line of the user's code that raised it."""
    text = message(e)
    place = re.match(r"(\S+?\.py):(\d+): ", text)
    code = place and linecache.getline(place.group(1), int(place.group(2))).strip()
    return (f"{place.group(0)}`{code}`: {text[place.end():]}" if code else text)[:300]


class _Recorder(fx.Interpreter):
    """Runs the graph and keeps each node's value (shapes, dtypes, constants to fold)."""

    def __init__(self, gm):
        super().__init__(gm)
        self.values = {}

    def run_node(self, n):
        self.current = n
        v = super().run_node(n)
        self.values[n] = v
        return v


def record_values(gm, examples):
    rec = _Recorder(gm)
    with torch.no_grad():
        out = rec.run(*examples.values())
    return rec.values, out
