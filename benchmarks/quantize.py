"""Quantization cost of zoo classification models: calibrate on some inputs, measure on others; prints output
SQNR (dB) and top-1 agreement with fp32 and calibration seconds, per precision and method.

Weights are the zoo's exported ones (`trtnet.harness.export_state`): trained on the bundled digits where the
model can learn them, else seeded with non-trivial BatchNorm statistics. Inputs are seeded normal samples (the
model's registered calibration data and its held-out split for the digits models). Each method calibrates on
its own (`trtnet.quantize`); the quantized and the fp32 graphs run on PyTorch's reference executor. `--shape`
runs at a smaller input; a ViT's position embedding is then cut to the token count (a different seeded model,
same layers). `--smoke` measures squeezenet1_1 at 3x32x32 on 16 samples (max calibration) and builds it for one
GPU target: it shows the script works, its figures mean little.

    python benchmarks/quantize.py lenet resnet18 vit_b_16 --samples 256 --shape 3,64,64"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from trtnet import GraphError, WeightMap, harness, zoo  # noqa: E402
from trtnet.backend import trt  # noqa: E402
from trtnet.engine import create_network  # noqa: E402
from trtnet.quantize import METHODS, quantize  # noqa: E402
from trtnet.quantize.advise import advise  # noqa: E402
from trtnet.reference import run_reference  # noqa: E402

CALIBRATED = ("int8", "fp8")   # the weight-only precisions need no activation ranges


def sqnr(got, want):
    return 10 * np.log10(np.sum(want.astype(np.float64) ** 2) / max(np.sum((got - want) ** 2.0), 1e-30))


def inputs(spec, shape, n, seed):
    """Calibration (seed 0) or measurement samples: the digits models' own splits, else seeded noise."""
    if spec.dataset is not None and spec.calibration is not None:
        return spec.calibration()[:n] if seed == 0 else spec.dataset()[0][:n]
    return np.random.default_rng(seed).standard_normal((n, *shape), dtype=np.float32)


def fit_state(state, graph_fn, shape):
    """Cut position embeddings longer than the smaller input's token count."""
    try:
        return graph_fn(WeightMap(state), shape)
    except GraphError:
        key = next((k for k in state if k.endswith("pos_embedding")), None)
        if key is None:
            raise
        tokens = 1 + (shape[1] // 16) * (shape[2] // 16)
        return graph_fn(WeightMap(dict(state, **{key: state[key][:, :tokens]})), shape)


def measure(g, calib, test, precisions, methods):
    """Rows (precision, method, calibration seconds, SQNR, top-1 agreement)."""
    name, out = g.inputs[0].name, g.outputs[0].name
    fp32 = run_reference(g, {name: test})[out]
    rows = []
    for precision in precisions:
        for method in methods if precision in CALIBRATED else ["-"]:
            q = quantize(g, calib, precision, method if method != "-" else "max", samples=len(calib), progress=False)
            got = run_reference(q, {name: test})[out]
            agree = (got.reshape(len(got), -1).argmax(1) == fp32.reshape(len(got), -1).argmax(1)).mean()
            rows.append((precision, method, q.quant["calibration"]["seconds"], sqnr(got, fp32), agree))
    return rows


def advice(g, calib, test, how):
    """`how` PRECISION:DB: the default calibration, then advise()'s --keep for an output SQNR of DB on `test`."""
    precision, target = how.split(":")
    q = quantize(g, calib, precision, samples=len(calib), progress=False)
    a = advise(g, q, {g.inputs[0].name: test}, target_sqnr=float(target))
    print(f"{g.name} {precision}, calibration {q.quant['calibration'].get('chosen')}, {len(test)} samples:\n"
          + a.summary(), flush=True)


def builds(name, shape, targets):
    """A table of TensorRT builds of each mode for each GPU target (TensorRT-RTX's compute capabilities): what
    the builder accepts, measured, not what runs fastest; INT4 tried in blocks of 128 and per output channel."""
    t = trt()
    spec = zoo.get(name)
    g = spec.graph(WeightMap(harness.export_state(name)), shape)
    x = np.random.default_rng(0).standard_normal((2, *(shape or spec.input_shape)), dtype=np.float32)
    modes = [("fp32", None, None), ("fp16", None, None), ("int8", "int8", None), ("fp8", "fp8", None),
             ("int8-weights", "int8-weights", None), ("int4-weights, blocks of 128", "int4-weights", 128),
             ("int4-weights, per channel", "int4-weights", None)]
    print(f"| {name} | " + " | ".join(targets) + " |\n|---|" + "---|" * len(targets), flush=True)
    for label, precision, block in modes:
        q = g if precision is None else quantize(g, x, precision, method="max", block_size=block, progress=False)
        fp16 = label == "fp16" or bool(precision and q.quant["fp16"])
        cells = []
        for target in targets:
            builder, network, emission = create_network(q, fp16)
            config = builder.create_builder_config()
            config.num_compute_capabilities = 1
            config.set_compute_capability(getattr(t.ComputeCapability, target), 0)
            profile = builder.create_optimization_profile()
            for n in q.inputs:
                s = (1, *n.shape[1:])
                profile.set_shape(n.name, s, s, s)
            config.add_optimization_profile(profile)
            cells.append("builds" if builder.build_serialized_network(network, config) is not None else "fails")
            del emission
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*")
    p.add_argument("--samples", type=int, default=256, help="calibration samples, and as many to measure on")
    p.add_argument("--shape", help="sample shape, e.g. 3,64,64 (default: the model's)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--precisions", default="int8,fp8,int8-weights,int4-weights")
    p.add_argument("--advise", metavar="PRECISION:DB", help="instead: the layers to keep for an output SQNR of DB")
    p.add_argument("--builds", action="store_true", help="instead: which modes build for which GPU target")
    p.add_argument("--targets", default="SM75,SM80,SM86,SM89,SM120,SM121")
    p.add_argument("--smoke", action="store_true", help="squeezenet1_1 at 3x32x32, 16 samples, max calibration, "
                                                        "then its builds for SM80: quick, figures mean little")
    a = p.parse_args(sys.argv[1:] or ["--help"])
    if a.smoke:
        a.models, a.shape, a.samples, a.methods, a.targets = ["squeezenet1_1"], "3,32,32", 16, "max", "SM80"
        a.precisions = "int8,int8-weights"
    elif not a.models:
        p.error("name at least one model")
    if a.builds or a.smoke:
        for name in a.models:
            builds(name, tuple(int(v) for v in a.shape.split(",")) if a.shape else None, a.targets.split(","))
        if not a.smoke:
            return
    if not a.advise:
        print("| model | input | precision | method | calib s | SQNR dB | top-1 agree |\n|---|---|---|---|---|---|---|",
              flush=True)
    for name in a.models:
        spec = zoo.get(name)
        shape = spec.input_shape if spec.dataset is not None or not a.shape else \
            tuple(int(v) for v in a.shape.split(","))
        g = fit_state(harness.export_state(name), spec.graph, shape)
        calib, test = inputs(spec, shape, a.samples, 0), inputs(spec, shape, a.samples, 1)
        if a.advise:
            advice(g, calib, test, a.advise)
            continue
        for precision, method, secs, db, agree in measure(g, calib, test, a.precisions.split(","),
                                                          a.methods.split(",")):
            print(f"| {name} | {'x'.join(map(str, shape))} | {precision} | {method} | {secs:.1f} | {db:.1f} | "
                  f"{agree * 100:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
