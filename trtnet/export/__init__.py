"""Export for serving and tooling: a Triton model repository (`triton`) and a Polygraphy network script
(`polygraphy`). Everything that knows how a model is found, loaded and built is in the functions
below, so that changes to trtnet.build reach the exporters in one place."""
import os

from ..engine import build_engine
from ..harness import find_weights, load_model


def resolve_weights(model, weights=None):
    """An absolute weights path: `weights`, else where trtnet.build looks for a zoo model's (None for a model file,
    which trtnet.build resolves itself)."""
    if weights:
        return os.path.abspath(weights)
    if model.split(":", 1)[0].endswith(".py"):
        return None
    return os.path.abspath(find_weights(model))


def load_graph(model, weights=None):
    """(name, recorded Graph) for a zoo model name or a model file, as `python -m trtnet.build` resolves them."""
    graph = load_model(model, weights)[2]
    return (graph.name if model.split(":", 1)[0].endswith(".py") else model), graph


def build_plan(graph, profiles=None):
    """(plan bytes, (inputs, outputs) TensorSpecs of the built network, with the build's profiles)."""
    plan, info = build_engine(graph, profiles, progress=False)
    return plan, info.io
