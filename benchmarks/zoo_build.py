"""Build time of every zoo model: trtnet's path against the ONNX path, same TensorRT, same builder settings.

    python benchmarks/zoo_build.py [MODEL ...] [--small] [--check]

trtnet: load weights (.safetensors) -> record -> emit -> build.
ONNX:   torch.onnx.export (TorchScript exporter) -> OnnxParser -> build.
Both networks are strongly typed, fp32, with the same dynamic-batch profile (PROFILE) and TF32 off. Seeded random weights; nothing is downloaded. Prints a Markdown table; `--check` adds trtnet.check's
largest relative error (at the model's test shape) for the README's zoo table.
"""
import argparse
import os
import platform
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import zoo  # noqa: E402
from trtnet import backend  # noqa: E402
from trtnet.harness import run_torch, torch_reference  # noqa: E402
from trtnet.check.report import check_graph  # noqa: E402
from trtnet.emit_trt import emit  # noqa: E402
from trtnet.weights import load_weights, save_safetensors  # noqa: E402

PROFILE = (1, 1, 4)


class Clock:
    def __init__(self):
        self.marks, self.last = {}, time.perf_counter()

    def lap(self, name):
        now = time.perf_counter()
        self.marks[name], self.last = now - self.last, now


def build_plan(network, inputs):
    """The same builder settings for both paths."""
    t = backend.trt()
    builder = t.Builder(backend.logger())
    config = builder.create_builder_config()
    config.clear_flag(t.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for name, shape in inputs.items():
        profile.set_shape(name, (PROFILE[0], *shape), (PROFILE[1], *shape), (PROFILE[2], *shape))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("build failed: " + "; ".join(backend.logger().errors))
    return plan.nbytes


def new_network():
    t = backend.trt()
    builder = t.Builder(backend.logger())
    return builder, builder.create_network(1 << int(t.NetworkDefinitionCreationFlag.STRONGLY_TYPED))


def trtnet_path(spec, path, shape):
    c = Clock()
    w = load_weights(path)
    c.lap("load")
    graph = spec.graph(w, shape)
    c.lap("record")
    _, network = new_network()
    emission = emit(graph, network)
    c.lap("emit")
    size = build_plan(network, {"data": shape})
    c.lap("build")
    del emission
    return c.marks, size, network.num_layers


def onnx_path(module, shape, tmp):
    c = Clock()
    path = os.path.join(tmp, "model.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.zeros(1, *shape), path, dynamo=False, input_names=["data"],
                          dynamic_axes={"data": {0: "n"}}, opset_version=17)
    c.lap("export")
    _, network = new_network()
    parser = backend.trt().OnnxParser(network, backend.logger())
    if not parser.parse_from_file(path):
        raise RuntimeError("OnnxParser: " + "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
    c.lap("parse")
    size = build_plan(network, {"data": shape})
    c.lap("build")
    return c.marks, size, network.num_layers


def check_error(spec, w):
    graph = spec.graph(w, spec.test_shape)
    x = np.random.default_rng(0).standard_normal((2, *graph.inputs[0].shape[1:]), dtype=np.float32)
    out = graph.outputs[0].name
    report = check_graph(graph, {"data": x}, {out: run_torch(torch_reference(spec, w), x, out)})
    return max(m["rel"] for m in report.final.values())


class SegmentationOut(torch.nn.Module):
    """torchvision's segmentation models return a dict; the ONNX path exports its 'out' entry."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)["out"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="zoo models (default: all)")
    ap.add_argument("--small", action="store_true", help="build at each model's small test shape")
    ap.add_argument("--check", action="store_true", help="also report trtnet.check's largest relative error")
    args = ap.parse_args()
    names = args.models or zoo.names()
    print(f"# {backend.flavour()}, torch {torch.__version__}, {platform.machine()} {os.cpu_count()} cores, "
          f"{platform.python_version()}; profile batch {PROFILE}; seconds")
    cols = ["model", "params", "input", "trtnet load", "record", "emit", "build", "trtnet total", "ONNX export",
            "parse", "build", "ONNX total", "engine MB (trtnet/ONNX)", "layers (trtnet/ONNX)"] + (["check rel. err"] if args.check else [])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for name in names:
        spec = zoo.get(name)
        shape = tuple(spec.test_shape or spec.input_shape) if args.small else spec.input_shape
        with tempfile.TemporaryDirectory() as tmp:
            state = zoo.export_state(name)
            path = os.path.join(tmp, "w.safetensors")
            save_safetensors(state, path)
            params = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
            ours, our_size, our_layers = trtnet_path(spec, path, shape)
            module = torch_reference(spec, load_weights(path))
            if isinstance(returns(module, spec.test_shape or shape), dict):
                module = SegmentationOut(module)
            theirs, their_size, their_layers = onnx_path(module, shape, tmp)
            row = [name, f"{params / 1e6:.1f} M", "x".join(map(str, shape)),
                   *(f"{ours[k]:.2f}" for k in ("load", "record", "emit", "build")), f"**{sum(ours.values()):.2f}**",
                   *(f"{theirs[k]:.2f}" for k in ("export", "parse", "build")), f"**{sum(theirs.values()):.2f}**",
                   f"{our_size / 2**20:.0f} / {their_size / 2**20:.0f}", f"{our_layers} / {their_layers}"]
            if args.check:
                row.append(f"{check_error(spec, load_weights(path)):.1e}")
            print("| " + " | ".join(row) + " |", flush=True)


def returns(module, shape):
    with torch.no_grad():
        return module(torch.zeros(1, *shape))


if __name__ == "__main__":
    main()
