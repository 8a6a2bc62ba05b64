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
    from ..build import find_weights
    return os.path.abspath(find_weights(model))


def load_graph(model, weights=None):
    """(name, recorded Graph) for a zoo model name or a model file, as `python -m trtnet.build` resolves them."""
    from ..build import load_model
    graph = load_model(model, weights)[2]
    return (graph.name if model.split(":", 1)[0].endswith(".py") else model), graph


def batch_profile(network, batch):
    """{input: (min, opt, max)} with the dynamic batch (axis 0) at `batch` = (min, opt, max), the profile that
    trtnet.engine.build_engine gives every input."""
    shapes = {}
    for i in range(network.num_inputs):
        x = network.get_input(i)
        rest = tuple(x.shape)[1:]
        shapes[x.name] = tuple((b, *rest) for b in batch)
    return shapes


def build_plan(graph, batch=(1, 8, 32)):
    """(plan bytes, (inputs, outputs) TensorSpecs read from the TensorRT network, with the build's profile)."""
    from ..engine import build_engine, create_network
    from ..runtime import network_io
    plan, _ = build_engine(graph, batch, progress=False)
    _, network, emission = create_network(graph)
    io = network_io(network, [batch_profile(network, batch)])
    del emission  # only the network's IO was read
    return plan, io
