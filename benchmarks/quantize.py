"""INT8 quantization cost of zoo classification models with seeded weights: calibrate on some inputs, measure
on others; prints output SQNR (dB) and top-1 agreement with fp32, and calibration seconds, per method.

    python benchmarks/quantize.py lenet resnet18 --samples 256 --shape 3,64,64"""
import argparse
import time

import numpy as np


def sqnr(got, want):
    return 10 * np.log10(np.sum(want.astype(np.float64) ** 2) / max(np.sum((got - want) ** 2.0), 1e-30))


def inputs(spec, shape, n, seed):
    from trtnet.zoo.lenet import _digits
    if spec.dataset is not None:   # the digits models: training split to calibrate, held-out split to measure
        return _digits()[0][0][:n] if seed == 0 else spec.dataset()[0][:n]
    return np.random.default_rng(seed).standard_normal((n, *shape), dtype=np.float32)


def main():
    import torch
    from trtnet import zoo
    from trtnet.quantize import METHODS, quantize
    from trtnet.reference import run_reference
    from trtnet.weights import WeightMap
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--shape", help="sample shape, e.g. 3,64,64 (default: the model's)")
    p.add_argument("--methods", default=",".join(METHODS))
    a = p.parse_args()
    torch.manual_seed(0)
    print(f"{'model':14s} {'method':10s} {'calib s':>8s} {'SQNR dB':>8s} {'top-1 agree':>11s}")
    for name in a.models:
        spec = zoo.get(name)
        shape = tuple(int(v) for v in a.shape.split(",")) if a.shape else spec.input_shape
        m = spec.torch_module().eval()
        g = spec.graph(WeightMap({k: v.numpy() for k, v in m.state_dict().items()}), shape)
        calib, test = inputs(spec, shape, a.samples, 0), inputs(spec, shape, a.samples, 1)
        out = g.outputs[0].name
        fp32 = run_reference(g, {g.inputs[0].name: test})[out]
        for method in a.methods.split(","):
            start = time.perf_counter()
            q = quantize(g, calib, "int8", method=method, progress=False)
            secs = time.perf_counter() - start
            got = run_reference(q, {g.inputs[0].name: test})[out]
            agree = (got.reshape(len(got), -1).argmax(1) == fp32.reshape(len(got), -1).argmax(1)).mean()
            print(f"{name:14s} {method:10s} {secs:8.1f} {sqnr(got, fp32):8.1f} {agree * 100:10.1f}%", flush=True)


if __name__ == "__main__":
    main()
