"""Build time of zoo models: trtnet's path against the ONNX path, same TensorRT, same builder settings.

    python benchmarks/zoo_build.py [MODEL ...] [--small] [--check] [--smoke]

Without MODEL it builds the models of the README's build-time table (TABLE) and prints that table.
trtnet: trtnet.harness.load_model (load the .safetensors file, record), then trtnet.build (emit, TensorRT build),
        each step timed by the phase the library announces through trtnet.events.
ONNX:   torch.onnx.export (TorchScript exporter, opset 17) -> OnnxParser -> build.
Both networks are strongly typed, fp32, with the same dynamic-batch profile (PROFILE) and TF32 off. Seeded random
weights; nothing is downloaded. `--check` prints the README's zoo table instead: trtnet.check's largest relative
error against PyTorch at batch 2 of the model's test shape. `--smoke` builds squeezenet1_1 at its test shape: it
shows the script works, its figures mean little.
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

import trtnet  # noqa: E402
from trtnet import harness, zoo  # noqa: E402
from trtnet.backend import flavour, logger, trt  # noqa: E402
from trtnet.events import Events, Listener  # noqa: E402

PROFILE = (1, 1, 4)
TABLE = ("alexnet convnext_tiny deeplabv3_mobilenet_v3_large densenet121 efficientnet_b0 fcn_resnet50 googlenet "
         "inception_v3 lenet lraspp_mobilenet_v3_large mnasnet1_0 mobilenet_v2 mobilenet_v3_large mobilenet_v3_small "
         "regnet_y_400mf resnet101 resnet152 resnet18 resnet34 resnet50 resnext50_32x4d shufflenet_v2_x1_0 "
         "squeezenet1_1 vgg11 vgg11_bn vgg16 vgg16_bn vit_b_16 wide_resnet50_2").split()
BUILD_COLUMNS = ["model", "input", "trtnet load", "record", "emit", "build", "trtnet total", "ONNX export", "parse",
                 "build", "ONNX total", "engine MB (trtnet/ONNX)", "layers (trtnet/ONNX)"]
CHECK_COLUMNS = ["model", "parameters", "input", "checked at", "`trtnet.check` max relative error"]
PHASES = {"trtnet load": "load weights", "record": "record", "emit": "emit", "build": "TensorRT build"}


class PhaseTimes(Listener):
    """Seconds of each announced phase less those of the phases inside it, so nested phases count once."""

    def __init__(self):
        self.seconds, self.inner = {}, [0.0]

    def started(self, phase):
        self.inner.append(0.0)

    def finished(self, phase, seconds, error):
        own = seconds - self.inner.pop()
        self.inner[-1] += seconds
        self.seconds[phase] = self.seconds.get(phase, 0.0) + own

    def columns(self):
        missing = [p for p in PHASES.values() if p not in self.seconds]
        if missing:
            sys.exit(f"error: trtnet announced no phase {', '.join(map(repr, missing))} "
                     f"(it announced {', '.join(map(repr, self.seconds))})")
        return {col: self.seconds[p] for col, p in PHASES.items()}


class Clock:
    def __init__(self):
        self.marks, self.last = {}, time.perf_counter()

    def lap(self, name):
        now = time.perf_counter()
        self.marks[name], self.last = now - self.last, now


def trtnet_path(name, weights, shape, engine):
    """({column: seconds}, engine bytes, layers, module): the PyTorch module holds the weights the graph got."""
    times = PhaseTimes()
    events = Events(times)
    spec, w, graph = harness.load_model(name, weights, shape, events)
    report = trtnet.build(graph, output=engine, events=events, profiles=PROFILE, verify=False, progress=False)
    return times.columns(), report.engine.size, report.engine.layers, harness.torch_reference(spec, w)


def onnx_path(module, shape, tmp):
    """The same builder settings as trtnet.build's: strongly typed, TF32 off, the batch profile PROFILE."""
    t, c = trt(), Clock()
    path = os.path.join(tmp, "model.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.zeros(1, *shape), path, dynamo=False, input_names=["data"],
                          dynamic_axes={"data": {0: "n"}}, opset_version=17)
    c.lap("export")
    builder = t.Builder(logger())
    network = builder.create_network(1 << int(t.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = t.OnnxParser(network, logger())
    if not parser.parse_from_file(path):
        sys.exit("error: OnnxParser: " + "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
    c.lap("parse")
    config = builder.create_builder_config()
    config.clear_flag(t.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    profile.set_shape("data", *((n, *shape) for n in PROFILE))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        sys.exit("error: TensorRT could not build the ONNX network: " + "; ".join(logger().errors))
    c.lap("build")
    return c.marks, plan.nbytes, network.num_layers


class FirstOutput(torch.nn.Module):
    """torchvision's segmentation models return a dict; the ONNX path exports its 'out' entry."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)["out"]


def build_row(name, shape, weights, tmp):
    ours, our_size, our_layers, module = trtnet_path(name, weights, shape, os.path.join(tmp, "model.engine"))
    with torch.no_grad():
        if isinstance(module(torch.zeros(1, *(zoo.get(name).test_shape or shape))), dict):
            module = FirstOutput(module)
    theirs, their_size, their_layers = onnx_path(module, shape, tmp)
    return [name, "x".join(map(str, shape)), *(f"{v:.2f}" for v in ours.values()), f"**{sum(ours.values()):.2f}**",
            *(f"{v:.2f}" for v in theirs.values()), f"**{sum(theirs.values()):.2f}**",
            f"{our_size / 2**20:.0f} / {their_size / 2**20:.0f}", f"{our_layers} / {their_layers}"]


def check_row(name, state, weights):
    spec = zoo.get(name)
    shape = spec.test_shape or spec.input_shape
    _, w, graph = harness.load_model(name, weights, shape)
    x = np.random.default_rng(0).standard_normal((2, *shape), dtype=np.float32)
    report = trtnet.check(graph, {graph.inputs[0].name: x}, harness.torch_reference(spec, w))
    params = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    return [name, f"{params / 1e6:.1f} M", "x".join(map(str, spec.input_shape)), "x".join(map(str, (2, *shape))),
            f"{max(m['rel'] for m in report.final.values()):.1e}"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="zoo models (default: the README's, TABLE)")
    ap.add_argument("--small", action="store_true", help="build at each model's small test shape")
    ap.add_argument("--check", action="store_true", help="print trtnet.check's largest relative error instead")
    ap.add_argument("--smoke", action="store_true", help="squeezenet1_1 at its test shape: quick, figures mean little")
    args = ap.parse_args()
    names = ["squeezenet1_1"] if args.smoke else args.models or TABLE
    print(f"# {flavour()}, torch {torch.__version__}, {platform.machine()} {os.cpu_count()} cores, "
          f"{platform.python_version()}; profile batch {PROFILE}; seconds")
    cols = CHECK_COLUMNS if args.check else BUILD_COLUMNS
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    for name in names:
        spec = zoo.get(name)
        with tempfile.TemporaryDirectory() as tmp:
            state = harness.export_state(name)
            weights = os.path.join(tmp, "w.safetensors")
            trtnet.save_safetensors(state, weights)
            shape = tuple(spec.test_shape or spec.input_shape) if args.small or args.smoke else spec.input_shape
            row = check_row(name, state, weights) if args.check else build_row(name, shape, weights, tmp)
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
