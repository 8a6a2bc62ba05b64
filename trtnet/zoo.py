"""Model registry: each file of the zoo (the `zoo` package) registers a network definition beside its PyTorch
reference. A model file of your own registers its models the same way
(`from trtnet.zoo import register`) and is named on the command line as `path/to/model.py` or
`path/to/model.py:name`.
"""
import functools
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

MODULES = ("lenet", "resnet", "alexnet", "vgg", "squeezenet", "densenet", "googlenet", "inception", "mobilenet",
           "mnasnet", "efficientnet", "regnet", "shufflenet", "convnext", "vit", "segmentation", "video", "unet",
           "audio", "text", "swin", "efficientvit", "yolo", "digits_resnet", "mtcnn", "vad")
MODELS = {}


@dataclass
class Model:
    name: str
    define: Callable          # WeightMap -> trtnet.Graph
    input_shape: tuple        # one sample, without the batch dimension (names for dynamic dims allowed)
    torch_module: Callable    # () -> nn.Module with the same state_dict names, freshly initialised
    doc: str = ""
    dataset: Optional[Callable] = None   # () -> (inputs, labels) held out for accuracy, when the model has data
    train: Optional[Callable] = None     # (nn.Module) -> None, for models that can learn on bundled data
    test_shape: Optional[tuple] = None   # a smaller sample shape that keeps CI quick, where the architecture allows
    slow: bool = False                   # skipped by `pytest -m "not slow"`
    inputs: Optional[Callable] = None    # (graph, {dim: size}, rng) -> {input name: array}, where noise won't do
    output: Optional[str] = None         # the entry of a dict the module returns (segmentation's "out")
    file: str = ""                       # the model file, for models outside the package
    state: Optional[Callable] = None     # () -> {state_dict name: array}: real weights a package ships
    calibration: Optional[Callable] = None   # () -> inputs to calibrate int8/fp8 on, apart from the held-out set

    def graph(self, w, shape=None):
        return self.define(w, tuple(shape or self.input_shape))

    def sample_inputs(self, batch, seed=0):
        """Held-out data where the model has some, else seeded normal noise."""
        if self.dataset is not None:
            return self.dataset()[0][:batch]
        return np.random.default_rng(seed).standard_normal((batch, *self.input_shape), dtype=np.float32)

    def make_inputs(self, graph, env, seed=0):
        """{input name: array} for the graph at named sizes `env`: the model's own maker, else seeded samples."""
        rng = np.random.default_rng(seed)
        if self.inputs is not None:
            return self.inputs(graph, env, rng)
        return random_inputs(graph, env, rng)


def random_inputs(graph, env, rng):
    """Seeded inputs: normal noise for floats, integers in the input's `values` range (default 0..9), random bools."""
    out = {}
    for n in graph.inputs:
        shape = graph.concrete(n, env)
        if n.is_float:
            out[n.name] = rng.standard_normal(shape, dtype=np.float32).astype(n.dtype if n.dtype != "bfloat16" else np.float32)
        elif n.dtype == "bool":
            out[n.name] = rng.random(shape) < 0.5
        else:
            lo, hi = n.attrs.get("values", (0, 10))
            out[n.name] = rng.integers(lo, hi, shape).astype(n.dtype)
    return out


_FILE = []   # while a model file is imported: [(its path, the models it registers)]


def register(name, input_shape, torch_module, **kw):
    """Register a model: in the zoo, or (while trtnet imports a model file) in that file's own models, so a file
    may reuse a zoo model's name without replacing it."""
    def wrap(fn):
        doc = kw.pop("doc", None) or fn.__doc__ or ""
        path, models = _FILE[-1] if _FILE else ("", MODELS)
        models[name] = Model(name, fn, tuple(input_shape), torch_module, doc=doc.strip(), file=path, **kw)
        return fn
    return wrap


def _load_all():
    for m in MODULES:
        importlib.import_module(f"zoo.{m}")


def load_file(path):
    """Import a model file outside the package (once while it is unchanged); returns {name: Model} of the models
    it registers."""
    if not os.path.isfile(path):
        raise LookupError(f"{path}: no such model file")
    return _import_file(path, os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _import_file(path, mtime):
    from trtnet.graph import GraphError
    mod_name = "trtnet_user_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    _FILE.append((path, {}))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise GraphError(f"{os.path.relpath(path)}:{e.lineno}: cannot import the model file: {e.msg}") from e
    except ImportError as e:
        raise GraphError(f"{path}: cannot import the model file: {e}") from e
    finally:
        models = _FILE.pop()[1]
    if not models:
        raise LookupError(f"{path}: the file registers no model (use `@register(name, shape, module)` from trtnet.zoo)")
    return models


def is_file_spec(name):
    return name.split(":", 1)[0].endswith(".py")


def get(name):
    """A zoo model by name, or a model file as `path.py` (its only model) or `path.py:name`."""
    if is_file_spec(name):
        path, _, pick = name.partition(":")
        found = load_file(os.path.abspath(path))
        if not pick and len(found) > 1:
            raise LookupError(f"{path} registers {len(found)} models ({', '.join(found)}); pick one as {path}:NAME")
        pick = pick or next(iter(found))
        if pick not in found:
            raise LookupError(f"{path} registers no model '{pick}' (it has {', '.join(found)})")
        return found[pick]
    _load_all()
    if name not in MODELS:
        import difflib
        close = difflib.get_close_matches(name, MODELS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise LookupError(f"unknown model '{name}'{hint} (`python -m trtnet.build --list` shows all)")
    return MODELS[name]


def names():
    _load_all()
    return sorted(MODELS)


def randomize_trivial(module, seed=0):
    """Seeded values for what a fresh init leaves trivial, so that every weight's path is really tested:
    BatchNorm statistics and affine terms, and constant tensors (zero biases and heads, unit norm scales,
    tiny layer scales)."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
        for p in module.parameters():
            flat = p.detach().flatten()
            if flat.numel() and bool((flat == flat[0]).all()):
                v = float(flat[0])
                p.add_(torch.randn(p.shape, generator=gen) * (0.1 * abs(v) if abs(v) >= 0.5 else 0.02))
