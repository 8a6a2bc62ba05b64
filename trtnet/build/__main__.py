"""python -m trtnet.build MODEL: record, emit, build and serialize a TensorRT engine, then compare with PyTorch."""
import importlib
import os
import sys
import threading

from .. import cli, zoo
from ..engine import profiles_for
from ..events import Events, Listener
from ..harness import load_model_weights
from ..quantize import add_arguments as add_quant_arguments, parse_arguments as parse_quant_arguments
from . import BuildOptions, compile_graph, new_report, verify, write

EPILOG = """examples:
  python scripts/export_wts.py lenet && python -m trtnet.build lenet
  python -m trtnet.build resnet50 --weights my.pth --batch 1,4,16 -o resnet50.engine
  python -m trtnet.build mymodel.py:tiny --shapes images:1x3x32x32,4x3x64x64,8x3x128x128
  python -m trtnet.build lenet --int8 --calib-cache lenet.calib.json    # engines/lenet.int8.engine

Where an engine can execute (a GPU the installed TensorRT supports), it is run and compared with
PyTorch at each profile's minimum and maximum shapes; elsewhere the TensorRT network is run by
trtnet.check's interpreter instead and the report says why. Exit status 1 on a mismatch,
130/143 when stopped by SIGINT/SIGTERM (no engine or temporary file is left)."""


def arguments(argv):
    p = cli.parser("python -m trtnet.build", __doc__.split(":", 1)[1].strip(), EPILOG)
    p.add_argument("-o", "--output", metavar="ENGINE",
                   help="engine file (default engines/MODEL.engine; quantized: engines/MODEL.int8.engine, ...)")
    p.add_argument("--workspace", metavar="MB", help="builder workspace limit in MiB")
    p.add_argument("--fp16", action="store_true",
                   help="half-precision weights and math (inputs and outputs stay float32); checked at 1e-2")
    p.add_argument("--bf16", action="store_true", help="bfloat16 weights and math (float32's range, 8 bits of "
                   "mantissa; inputs and outputs stay float32); checked at 5e-2")
    p.add_argument("--keep-fp32", metavar="PATTERN[,PATTERN...]", help="with --fp16 or --bf16: keep the layers "
                   "whose names match (fnmatch) in fp32, with casts around them (trtnet.check --fp16 --advise suggests some)")
    p.add_argument("--debug-tensors", metavar="PATTERN[,PATTERN...]", help="mark the matching layers' outputs as "
                   "TensorRT debug tensors (trtnet.run --dump writes them without changing fusion)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 math in fp32 layers (faster on GPUs, ~1e-3 error)")
    p.add_argument("--no-verify", action="store_true", help="build only; skip the comparison with PyTorch")
    p.add_argument("--keep-failed", action="store_true",
                   help="keep an engine that fails the comparison, as ENGINE.failed.engine (default: none written)")
    p.add_argument("--verify-batch", metavar="N", default="2",
                   help="largest batch compared (default 2; the profile's minimum batch is compared too)")
    p.add_argument("--print-graph", action="store_true", help="print the recorded graph before building")
    p.add_argument("--engine-cache", metavar="DIR", default=os.path.join("engines", ".cache"),
                   help="reuse the plan of an identical network and settings from DIR (default engines/.cache)")
    p.add_argument("--no-engine-cache", action="store_true", help="always build; neither read nor fill the cache")
    p.add_argument("--timing-cache", metavar="FILE", help="TensorRT timing cache file, read and updated")
    p.add_argument("--refittable", action="store_true", help="build with the refit flag (weights updatable)")
    p.add_argument("--strip-weights", action="store_true",
                   help="leave the weights out of the plan (refit them from the weights file at load time)")
    add_quant_arguments(p)
    args = p.parse_args(argv)
    if not args.list and not args.model:
        p.error("a model name or file is required (or --list)")
    return args


def validate(args):
    """Every argument checked before torch or TensorRT load."""
    args.batch_range = None if args.batch is None else cli.parse_batch(args.batch)
    args.shape_specs = cli.parse_shapes(args.shapes, args.profile)
    args.workspace_mb = cli.parse_workspace(args.workspace)
    args.verify_samples = cli.count(args.verify_batch, "--verify-batch")
    args.device_id = cli.parse_device(args.device)
    cli.check_input_file(args.weights, "--weights")
    if args.output:
        cli.check_output(args.output)
    args.quant = parse_quant_arguments(args)
    args.keep_fp32, args.debug_tensors = (tuple(k for k in (v or "").split(",") if k)
                                          for v in (args.keep_fp32, args.debug_tensors))
    cli.check_half(args)


class TorchPreload(Listener):
    """Imports torch and the model's PyTorch package (torchvision...) in a thread once the weights are loaded:
    most of it hides behind TensorRT's build, which leaves the interpreter free. Verification
    waits for the rest as its own phase, "import torch"."""

    def __init__(self, events):
        self.events, self.thread = events, None

    def start(self, spec):
        names = ("torch", "trtnet.reference", "trtnet.check.interp", getattr(spec.torch_module, "module", None))
        self.thread = threading.Thread(target=_import_quietly, args=(names,), daemon=True)
        self.thread.start()

    def started(self, phase):
        if phase == "verify" and self.thread is not None:
            thread, self.thread = self.thread, None
            with self.events.phase("import torch"):
                thread.join()
            cli.share_cores()


def _import_quietly(names):
    for name in names:
        try:
            if name:
                importlib.import_module(name)
        except Exception:  # noqa: BLE001  (the main thread meets the error where it needs the module)
            return


def options(args, profiles):
    return BuildOptions(output=args.output, profiles=profiles, device=args.device_id, verify=not args.no_verify,
                        keep_failed=args.keep_failed, workspace_mb=args.workspace_mb, samples=args.verify_samples,
                        tf32=args.tf32, fp16=args.fp16, bf16=args.bf16, show_graph=args.print_graph,
                        engine_cache=None if args.no_engine_cache else args.engine_cache,
                        timing_cache=args.timing_cache, refittable=args.refittable,
                        strip_weights=args.strip_weights, keep_fp32=args.keep_fp32,
                        debug_tensors=args.debug_tensors, **args.quant)


def run(args, timeline):
    """The library's steps, in order, with the command's own: --shapes into profiles and the memory check once
    the graph is recorded."""
    events = Events(timeline)
    preload = TorchPreload(events)
    if not args.no_verify:
        events.listeners.append(preload)
    with events.phase("import TensorRT"):
        cli.setup(args)
    if not args.quiet:
        print(f"building {args.model} ...", file=sys.stderr)
    with events.phase("import model"):
        spec = zoo.get(args.model)
    w = load_model_weights(spec, args.weights, events)
    if not args.no_verify:   # after the weights: an import beside the .wts parser slowed it several times
        preload.start(spec)
    with events.phase("record"):
        graph = spec.graph(w)
    profiles = cli.to_profiles(graph, args.shape_specs, args.batch_range)
    cli.guard_memory(graph, profiles_for(graph, profiles), refuse=False)
    o = options(args, profiles)
    built = compile_graph(graph, spec, o, events)
    report = new_report(built, spec, w, o)
    if o.verify:
        with events.phase("verify"):
            verify(report, built, spec, w, None, o, events)
    write(report, built, o, events)
    print(report.summary())
    print(timeline.summary())
    if not report.ok:
        kept = f"; kept as {report.engine.path}" if report.engine.path else "; no engine written"
        what = "the quantization cost" if (report.quant or {}).get("over_bound") else "the comparison with PyTorch"
        print(f"error: {args.model}: {what} is over tolerance (see the checks above){kept}",
              file=sys.stderr)
    return 0 if report.ok else 1


def main(argv=None):
    return cli.command(argv, arguments, validate, run)


if __name__ == "__main__":
    cli.exit_now(main())
