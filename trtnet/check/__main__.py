"""python -m trtnet.check MODEL: run the TensorRT network layer by layer on the CPU and compare it with PyTorch."""
import sys

import numpy as np

from ..cli import list_models, main_guard, parser, setup
from .report import DEFAULT_TOL, FP16_TOL

EPILOG = """examples:
  python -m trtnet.check lenet
  python -m trtnet.check resnet50 --batch 1 --all
  python -m trtnet.check --onnx model.onnx          # TensorRT's OnnxParser vs onnxruntime

The network is the one TensorRT holds: every layer's type, attributes and weights are read back from the
INetworkDefinition and executed with TensorRT's documented semantics, so no GPU is needed. Each layer's
output is compared with the same-named tensor of the reference; the first one over tolerance is marked.
Exit status 1 on a mismatch."""


def check_zoo(args):
    from ..build import load_model, run_torch, torch_reference
    from .report import check_graph
    shape = tuple(int(v) for v in args.shape.split(",")) if args.shape else None
    spec, w, graph = load_model(args.model, args.weights, shape)
    x = spec.sample_inputs(args.batch) if shape is None else \
        np.random.default_rng(0).standard_normal((args.batch, *shape), dtype=np.float32)
    out = graph.outputs[0].name
    expected = {out: run_torch(torch_reference(spec, w), x, out)}
    tol = args.tol or (FP16_TOL if args.fp16 else DEFAULT_TOL)
    return check_graph(graph, {graph.inputs[0].name: x}, expected, tol, args.fp16)


def check_onnx(args):
    from .onnx import check_onnx_file
    return check_onnx_file(args.onnx, args.batch, args.tol or DEFAULT_TOL)


def main(argv=None):
    p = parser("python -m trtnet.check", __doc__.split(":", 1)[1].strip())
    p.epilog = EPILOG
    p.add_argument("--onnx", metavar="FILE", help="check an ONNX file parsed by TensorRT's OnnxParser against onnxruntime")
    p.add_argument("--batch", type=int, default=2, help="batch of inputs to run (default 2)")
    p.add_argument("--shape", metavar="C,H,W", help="sample shape for zoo models (default: the model's own)")
    p.add_argument("--tol", type=float, help=f"relative error tolerance (default {DEFAULT_TOL:g}, {FP16_TOL:g} with --fp16)")
    p.add_argument("--fp16", action="store_true", help="check the half-precision network trtnet.build --fp16 emits")
    p.add_argument("--all", action="store_true", help="list every layer, also those without a reference tensor")
    args = p.parse_args(argv)
    if args.list:
        return list_models()
    if not args.model and not args.onnx:
        p.error("a model name or --onnx FILE is required")

    def run():
        setup(args)
        report = check_onnx(args) if args.onnx else check_zoo(args)
        print(report.table(args.all))
        print(report.summary())
        return 0 if report.ok else 1

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
