"""Model registry: each zoo module registers a network definition beside its PyTorch reference."""
import importlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

MODULES = ("lenet", "resnet", "alexnet", "vgg", "squeezenet", "densenet", "googlenet", "inception", "mobilenet",
           "mnasnet", "efficientnet", "regnet", "shufflenet", "convnext", "vit", "segmentation")
MODELS = {}


@dataclass
class Model:
    name: str
    define: Callable          # WeightMap -> trtnet.Graph
    input_shape: tuple        # one sample, without the batch dimension
    torch_module: Callable    # () -> nn.Module with the same state_dict names, freshly initialised
    doc: str = ""
    dataset: Optional[Callable] = None   # () -> (inputs, labels) held out for accuracy, when the model has data
    train: Optional[Callable] = None     # (nn.Module) -> None, for models that can learn on bundled data
    test_shape: Optional[tuple] = None   # a smaller sample shape that keeps CI quick, where the architecture allows
    slow: bool = False                   # skipped by `pytest -m "not slow"`

    def graph(self, w, shape=None):
        return self.define(w, tuple(shape or self.input_shape))

    def sample_inputs(self, batch, seed=0):
        """Held-out data where the model has some, else seeded normal noise."""
        if self.dataset is not None:
            return self.dataset()[0][:batch]
        return np.random.default_rng(seed).standard_normal((batch, *self.input_shape), dtype=np.float32)


def register(name, input_shape, torch_module, **kw):
    def wrap(fn):
        doc = kw.pop("doc", None) or fn.__doc__ or ""
        MODELS[name] = Model(name, fn, tuple(input_shape), torch_module, doc=doc.strip(), **kw)
        return fn
    return wrap


def _load_all():
    for m in MODULES:
        importlib.import_module(f"zoo.{m}")


def get(name):
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


def export_state(name, checkpoint=None, seed=0):
    """{state_dict name: float32 array} for a zoo model: from `checkpoint`, by training on bundled data, or seeded."""
    import torch
    from trtnet.build import load_state
    from trtnet.weights import load_weights
    spec = get(name)
    torch.manual_seed(seed)
    module = spec.torch_module()
    if checkpoint:
        load_state(module, load_weights(checkpoint))
    elif spec.train is not None:
        spec.train(module)
    else:
        randomize_trivial(module, seed)
    return {k: v.detach().float().numpy() for k, v in module.state_dict().items()}
