"""A Polygraphy network script: `polygraphy convert net.py --model-type=trt-network-script
--trt-config-script net.py -o model.engine` then builds the model that trtnet emits, with trtnet's profile."""
import os

from . import resolve_weights

TEMPLATE = '''"""Polygraphy network script for {model}, written by `python -m trtnet.export polygraphy`.

    polygraphy convert {file} --model-type=trt-network-script --trt-config-script {file} -o {stem}.engine

With TensorRT for RTX, set POLYGRAPHY_USE_TENSORRT_RTX=1 (trtnet then emits through tensorrt_rtx too).
"""
import os

from trtnet import backend
from trtnet.engine import create_network
from trtnet.export import batch_profile, load_graph

MODEL = {model!r}
WEIGHTS = {weights!r}
BATCH = {batch!r}  # min, opt, max of the dynamic batch in load_config's optimization profile
_keep = []  # each network's emission: TensorRT reads its weight arrays until the build ends

if os.environ.get("POLYGRAPHY_USE_TENSORRT_RTX") == "1" and not os.environ.get(backend.ENV):
    backend.select("tensorrt_rtx")  # the TensorRT module Polygraphy builds with


def load_network():
    builder, network, emission = create_network(load_graph(MODEL, WEIGHTS)[1])
    _keep.append(emission)
    return builder, network


def load_config(builder, network):
    """trtnet's build settings: TF32 off, one profile with the batch at BATCH."""
    t = backend.trt()
    config = builder.create_builder_config()
    config.clear_flag(t.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in batch_profile(network, BATCH).items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    return config
'''


def write_script(model, path, weights=None, batch=(1, 8, 32)):
    """Write the script for `model` (a zoo name or FILE.py); weights are resolved now, to absolute paths, so
    the script works from any directory."""
    if model.split(":", 1)[0].endswith(".py"):
        model = os.path.abspath(model)
    text = TEMPLATE.format(model=model, weights=resolve_weights(model, weights), batch=tuple(batch),
                           file=os.path.basename(path), stem=os.path.splitext(os.path.basename(path))[0])
    from ..engine import write_atomic
    write_atomic(path, text.encode())
    return path
