"""Load a PyTorch module from a spec and capture its forward pass as an fx graph with every node's value."""
import importlib
import json
import os
import re

import torch
import torch.fx as fx

from .modules import MODULES


class PortError(ValueError):
    """The module cannot be ported; the message lists every reason at once."""


# spec loading ------------------------------------------------------------------------------------
def load_spec(spec):
    """(module, description, factory source) for `package.module:factory[{json}]`, `torchvision:NAME`,
    `timm:NAME` or `transformers:CLASS{json config}`."""
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
                return getattr(mod, name)(**kwargs), (mod.__name__, name, kwargs)
        raise PortError(f"torchvision has no model {name!r}")
    if kind == "timm":
        import timm
        kwargs.setdefault("pretrained", False)
        return timm.create_model(name, **kwargs), ("timm", name, kwargs)
    if kind == "transformers":
        import transformers
        cls = getattr(transformers, name)
        config = getattr(transformers, name.replace("Model", "Config").replace("ForImageClassification", "Config"))
        return cls(config(**kwargs)), ("transformers", name, kwargs)
    factory = getattr(importlib.import_module(kind), name)
    return factory(**kwargs), (kind, name, kwargs)


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
    return out


# tracing -----------------------------------------------------------------------------------------
class _Tracer(fx.Tracer):
    """Keeps the modules trtnet has a layer for as call_module nodes; traces through everything else."""

    def __init__(self):
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, m, qualname):
        return type(m) in MODULES


def trace(module, examples):
    """(GraphModule, method): fx symbolic trace, else torch.export (non-strict) with a dynamic batch."""
    module.eval()
    names = list(examples)
    try:
        tracer = _Tracer()
        graph = tracer.trace(module, concrete_args=_concrete(module, names))
        return fx.GraphModule(tracer.root, graph), "fx"
    except Exception as fx_error:  # noqa: BLE001 (any tracing failure: try export)
        args = tuple(examples.values())
        kwargs_names = names
        try:
            ep = _export(module, examples)
        except Exception as e:  # noqa: BLE001
            raise PortError(f"cannot capture the module: fx: {_first(fx_error)}; torch.export: {_first(e)}") from e
        del args, kwargs_names
        return ep.module(), "export"


def _export(module, examples):
    batch = torch.export.Dim("N", min=1, max=64) if next(iter(examples.values())).shape[0] > 1 else None
    try:
        dyn = {k: {0: batch} for k in examples} if batch is not None else None
        return torch.export.export(module, (), dict(examples), dynamic_shapes=dyn, strict=False)
    except Exception:  # noqa: BLE001 (the batch got specialized: export at the example's size)
        return torch.export.export(module, (), dict(examples), strict=False)


def _concrete(module, names):
    """Arguments of forward beyond the inputs are left at their defaults (None masks, flags)."""
    import inspect
    params = list(inspect.signature(module.forward).parameters.values())
    return {p.name: p.default for p in params if p.name not in names and p.default is not inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)} or None


def _first(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


class _Recorder(fx.Interpreter):
    """Runs the graph and keeps each node's value (shapes, dtypes, constants to fold)."""

    def __init__(self, gm):
        super().__init__(gm)
        self.values = {}

    def run_node(self, n):
        v = super().run_node(n)
        self.values[n] = v
        return v


def record_values(gm, examples):
    rec = _Recorder(gm)
    with torch.no_grad():
        out = rec.run(*examples.values())
    return rec.values, out
