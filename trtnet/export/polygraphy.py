"""A Polygraphy network script: `polygraphy convert net.py --model-type=trt-network-script
--trt-config-script net.py -o model.engine` then builds the model that trtnet emits, with trtnet's profile."""
import os
import sys

from .. import backend
from ..engine import profiles_for
from ..files import write_atomic
from . import load_graph, resolve_weights

TEMPLATE = '''"""Polygraphy network script for {model}, written by `python -m trtnet.export polygraphy`.

    polygraphy convert {file} --model-type=trt-network-script --trt-config-script {file} -o {stem}.engine

With TensorRT for RTX, set POLYGRAPHY_USE_TENSORRT_RTX=1 (trtnet then emits through tensorrt_rtx too).
"""
import os

from trtnet import backend
from trtnet.engine import builder_config, create_network
from trtnet.export import load_graph

MODEL = {model!r}
WEIGHTS = {weights!r}
PROFILES = {profiles!r}  # per dynamic dimension: (min, opt, max), one dict per optimization profile
_keep = []  # each network's graph and emission: TensorRT reads the weight arrays until the build ends

if os.environ.get("POLYGRAPHY_USE_TENSORRT_RTX") == "1" and not os.environ.get(backend.ENV):
    backend.select("tensorrt_rtx")  # the TensorRT module Polygraphy builds with


def load_network():
    graph = load_graph(MODEL, WEIGHTS)[1]
    builder, network, emission = create_network(graph)
    _keep.append((graph, emission))
    return builder, network


def load_config(builder, network):
    """trtnet's build settings: TF32 off, the optimization profiles of PROFILES."""
    graph = _keep[-1][0] if _keep else load_graph(MODEL, WEIGHTS)[1]  # Polygraphy may import this file twice
    return builder_config(builder, graph, PROFILES)
'''


def write_script(model, path, weights=None, profiles=None, graph=None):
    """Write the script for `model` (a zoo name or FILE.py) with `profiles` ([{dim: (min, opt, max)}], default
    the graph's own ranges); weights are resolved now, to absolute paths, so the script works from any
    directory."""
    if model.split(":", 1)[0].endswith(".py"):
        model = os.path.abspath(model)
    profiles = profiles_for(graph or load_graph(model, weights)[1], profiles)
    text = TEMPLATE.format(model=model, weights=resolve_weights(model, weights), profiles=profiles,
                           file=os.path.basename(path), stem=os.path.splitext(os.path.basename(path))[0])
    write_atomic(path, text.encode())
    return path


def run_tool(argv):
    """Polygraphy's own command line (`inspect model net.py ...`) with `tensorrt` resolved to the TensorRT trtnet
    selected: Polygraphy's `inspect` imports `tensorrt` by name, which TensorRT for RTX does not provide."""
    t = backend.trt()
    if t.__name__ != "tensorrt":
        sys.modules.setdefault("tensorrt", t)
    from polygraphy.tools._main import main
    sys.argv = ["polygraphy", *argv]
    return main()
