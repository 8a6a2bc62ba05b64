"""python -m trtnet.build MODEL: record, emit, build and serialize a TensorRT engine, then compare with PyTorch."""
import sys

from ..cli import list_models, main_guard, parser, setup
from . import build

EPILOG = """examples:
  python scripts/export_wts.py lenet && python -m trtnet.build lenet
  python -m trtnet.build resnet50 --weights my.pth --batch 1,4,16 -o resnet50.engine

Where an engine can execute (a GPU the installed TensorRT supports), it is run and compared with
PyTorch; elsewhere the recorded graph is compared instead and the report says why."""


def batch_profile(text):
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) == 1:
        vals = (1, vals[0], vals[0])
    if len(vals) != 3:
        raise SystemExit(f"error: --batch takes MIN,OPT,MAX or MAX, got {text!r}")
    return vals


def main(argv=None):
    p = parser("python -m trtnet.build", __doc__.split(":", 1)[1].strip())
    p.epilog = EPILOG
    p.add_argument("-o", "--output", metavar="ENGINE", help="engine file (default engines/MODEL.engine)")
    p.add_argument("--batch", default="1,8,32", metavar="MIN,OPT,MAX",
                   help="dynamic batch optimization profile (default 1,8,32)")
    p.add_argument("--device", type=int, default=0, metavar="N", help="GPU that runs the engine (default 0)")
    p.add_argument("--workspace", type=int, metavar="MB", help="builder workspace limit in MiB")
    p.add_argument("--fp16", action="store_true",
                   help="half-precision weights and math (inputs and outputs stay float32); checked at 1e-2")
    p.add_argument("--tf32", action="store_true", help="allow TF32 math in fp32 layers (faster on GPUs, ~1e-3 error)")
    p.add_argument("--no-verify", action="store_true", help="build only; skip the comparison with PyTorch")
    p.add_argument("--print-graph", action="store_true", help="print the recorded graph before building")
    args = p.parse_args(argv)
    if args.list:
        return list_models()
    if not args.model:
        p.error("a model name is required (or --list)")
    profile = batch_profile(args.batch)

    def run():
        setup(args)
        if not args.quiet:
            print(f"building {args.model} ...", file=sys.stderr)
        report = build(args.model, args.weights, args.output, profile, args.device, not args.no_verify,
                       not args.quiet, args.workspace, tf32=args.tf32, fp16=args.fp16, show_graph=args.print_graph)
        print(report.summary())
        if not report.ok:
            print(f"error: {args.model}: the comparison with PyTorch is over tolerance (see the checks above)",
                  file=sys.stderr)
        return 0 if report.ok else 1

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
