"""Export for serving and tooling: a Triton model repository (`triton`) and a Polygraphy network script
(`polygraphy`). Everything that knows how a model is found, loaded and built is in the functions
below, so that changes to trtnet.build reach the exporters in one place."""
import os


def resolve_weights(model, weights=None):
    """An absolute weights path: `weights`, else where trtnet.build looks for a zoo model's (None for a model file,
    which trtnet.build resolves itself)."""
    if weights:
        return os.path.abspath(weights)
    if model.split(":", 1)[0].endswith(".py"):
        return None
    from ..harness import find_weights
    return os.path.abspath(find_weights(model))


def load_graph(model, weights=None):
    """(name, recorded Graph) for a zoo model name or a model file, as `python -m trtnet.build` resolves them."""
    from ..harness import load_model
    graph = load_model(model, weights)[2]
    return (graph.name if model.split(":", 1)[0].endswith(".py") else model), graph


def input_profiles(graph, profiles=None):
    """[{input name: (min, opt, max) shapes}], one per optimization profile of the graph (its own ranges unless
    `profiles` says otherwise), as trtnet.engine.build_engine sets them."""
    from ..engine import profile_shapes, profiles_for
    out = []
    for p in profiles_for(graph, profiles):
        shapes = [profile_shapes(graph, p, i) for i in range(3)]
        out.append({n: tuple(s[n] for s in shapes) for n in shapes[0]})
    return out


def build_plan(graph, profiles=None):
    """(plan bytes, (inputs, outputs) TensorSpecs read from the TensorRT network, with the build's profiles)."""
    from ..engine import build_engine, create_network
    from ..runtime import network_io
    plan, info = build_engine(graph, profiles, progress=False)
    _, network, emission = create_network(graph)
    io = network_io(network, input_profiles(graph, info.profiles))
    del emission  # only the network's IO was read
    return plan, io
