"""Time the CPU interpreter on a torchvision model (ONNX -> OnnxParser) against PyTorch CPU inference.

    python benchmarks/interp_speed.py [--model resnet50] [--repeat 5] [--batch 1] [--size 224] [--threads N] [--smoke]

Random weights (no download); after one untimed run of each (the interpreter reads the network back, torch sets
up its kernels), prints the best of `--repeat` runs for each, their ratio, and the median of
the ratios of runs timed back to back (the two are timed alternately so that load from other processes affects
both alike; on a shared machine the median of those pairs is the steadier figure), and the same median in
process CPU time (steadier still where other processes compete for the cores). `--smoke` runs resnet18 once at
64x64: it shows the script works, its figures mean little. `--threads 1` gives steadier figures on a loaded
machine (both sides use torch's CPU kernels with torch's thread count).
"""
import argparse
import math
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from trtnet.backend import logger, trt  # noqa: E402
from trtnet.check import run_network  # noqa: E402


def timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - cpu, result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50", help="a torchvision classification model")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, help="torch CPU threads for both (default: torch's own)")
    ap.add_argument("--smoke", action="store_true", help="resnet18, one run at 64x64: quick, figures mean little")
    args = ap.parse_args()
    if args.smoke:
        args.model, args.repeat, args.size = "resnet18", 1, 64

    if args.threads:
        torch.set_num_threads(args.threads)
    t = trt()
    torch.manual_seed(0)
    model = getattr(torchvision.models, args.model)(weights=None).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, x, path, dynamo=False, opset_version=17, input_names=["x"])
        builder = t.Builder(logger())
        network = builder.create_network(1 << int(t.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = t.OnnxParser(network, logger())
        if not parser.parse_from_file(path):
            sys.exit("OnnxParser failed: " + "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors)))

    feeds = {"x": x.numpy()}
    interp_s = torch_s = math.inf
    pairs, cpu_pairs = [], []
    with torch.no_grad():
        run_network(network, feeds)
        model(x)
        for _ in range(args.repeat):
            mine, mine_cpu, got = timed(lambda: run_network(network, feeds))
            theirs, theirs_cpu, want = timed(lambda: model(x))
            interp_s, torch_s = min(interp_s, mine), min(torch_s, theirs)
            pairs.append(mine / theirs)
            cpu_pairs.append(mine_cpu / theirs_cpu)
    got, want = next(iter(got.values())), want.numpy()
    err = float(np.abs(got - want).max() / np.abs(want).max())

    print(f"{args.model} batch {args.batch} {args.size}x{args.size}, {network.num_layers} layers, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {t.__name__} {t.__version__}")
    print(f"interpreter:   {interp_s:.3f} s (best of {args.repeat})")
    print(f"pytorch (cpu): {torch_s:.3f} s (best of {args.repeat})")
    print(f"ratio:         {interp_s / torch_s:.2f}x (best to best); median of {len(pairs)} back-to-back pairs "
          f"{float(np.median(pairs)):.2f}x; in CPU time {float(np.median(cpu_pairs)):.2f}x")
    print(f"max |diff| / max |output|: {err:.2e}")


if __name__ == "__main__":
    main()
