"""python -m trtnet.build MODEL: record, emit, build and serialize a TensorRT engine, then compare with PyTorch."""
import importlib
import os
import sys
import threading

from .. import cli
from ..quantize import add_arguments as add_quant_arguments, parse_arguments as parse_quant_arguments

EPILOG = """examples:
  python scripts/export_wts.py lenet && python -m trtnet.build lenet
  python -m trtnet.build resnet50 --weights my.pth --batch 1,4,16 -o resnet50.engine
  python -m trtnet.build mymodel.py:tiny --shapes images:1x3x32x32,4x3x64x64,8x3x128x128
  python -m trtnet.build lenet --int8 --calib-cache lenet.calib.json    # calibrated on LeNet's own digits

Where an engine can execute (a GPU the installed TensorRT supports), it is run and compared with
PyTorch at each profile's minimum and maximum shapes; elsewhere the TensorRT network is run by
trtnet.check's interpreter instead and the report says why. Exit status 1 on a mismatch,
130/143 when stopped by SIGINT/SIGTERM (no engine or temporary file is left)."""


def arguments(argv):
    p = cli.parser("python -m trtnet.build", __doc__.split(":", 1)[1].strip(), EPILOG)
    p.add_argument("-o", "--output", metavar="ENGINE", help="engine file (default engines/MODEL.engine)")
    p.add_argument("--workspace", metavar="MB", help="builder workspace limit in MiB")
    p.add_argument("--fp16", action="store_true",
                   help="half-precision weights and math (inputs and outputs stay float32); checked at 1e-2")
    p.add_argument("--tf32", action="store_true", help="allow TF32 math in fp32 layers (faster on GPUs, ~1e-3 error)")
    p.add_argument("--no-verify", action="store_true", help="build only; skip the comparison with PyTorch")
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


def instrument(args, timeline, build_module):
    """Time the parts of trtnet.build.build; turn --shapes into profiles once the graph is recorded, and
    check the profile's memory before TensorRT builds."""
    from .. import engine, zoo
    undo = [timeline.wrap(zoo, "get", "import model"),
            timeline.wrap(build_module, "load_weights", "load weights"),
            timeline.wrap(zoo.Model, "graph", "record"),
            timeline.wrap(engine, "create_network", "emit", only_inside="TensorRT build"),
            timeline.wrap(engine, "build_engine", "TensorRT build"),
            timeline.wrap(engine, "write_atomic", "write")]
    if not args.no_verify:
        undo += [timeline.wrap(build_module, "torch_reference", "PyTorch module"),
                 counted(build_module, timeline.show),
                 timeline.wrap(build_module, "run_module", "PyTorch run"),
                 preload_torch(timeline, zoo, engine)]
    profiles_for = engine.profiles_for

    def checked(graph, profiles=None):
        if profiles is None and args.shape_specs:
            profiles = cli.to_profiles(graph, args.shape_specs, args.batch_range)
        out = profiles_for(graph, profiles)
        cli.guard_memory(graph, out, refuse=False)
        return out

    engine.profiles_for = checked
    undo.append(lambda: setattr(engine, "profiles_for", profiles_for))
    return undo


def counted(build_module, show):
    """On a terminal, a count of the PyTorch module's leaf modules as they run; returns the undo function."""
    run_module = build_module.run_module

    def run(module, *a, **kw):
        if not show or module is None:
            return run_module(module, *a, **kw)
        from tqdm import tqdm
        bar = tqdm(desc="PyTorch run", unit=" modules", leave=False, file=sys.stderr)

        def step(*_):  # returns None: a forward hook's result would replace the module's output
            bar.update()

        hooks = [m.register_forward_hook(step) for m in module.modules() if not any(m.children())]
        try:
            return run_module(module, *a, **kw)
        finally:
            for h in hooks:
                h.remove()
            bar.close()

    build_module.run_module = run
    return lambda: setattr(build_module, "run_module", run_module)


def preload_torch(timeline, zoo, engine):
    """Import torch and the model's PyTorch package (torchvision...) in a thread from the model's lookup on:
    most of it hides behind loading the weights and TensorRT's build, which leave the interpreter free; once
    the engine is written, verification waits for the rest (the "import torch" part) and its parts are timed.
    Returns the undo function."""
    get, write, started, undo = zoo.get, engine.write_atomic, [], []

    def load(spec):
        for name in ("torch", "trtnet.reference", "trtnet.check.interp", getattr(spec.torch_module, "module", None)):
            try:
                if name:
                    importlib.import_module(name)
            except Exception:  # noqa: BLE001  (the main thread meets the error where it needs the module)
                return

    def looked_up(*a, **kw):
        spec = get(*a, **kw)
        if not started:
            started.append(threading.Thread(target=load, args=(spec,), daemon=True))
            started[0].start()
        return spec

    def written(*a, **kw):
        out = write(*a, **kw)
        with timeline.part("import torch"):
            if started:
                started[0].join()
            from .. import reference
            from ..check import report
        cli.share_cores()
        undo.extend([timeline.wrap(reference, "run_reference", "reference executor"),
                     timeline.wrap(report, "check_network", "TensorRT network (interpreter)")])
        return out

    def restore():
        for u in reversed(undo):
            u()
        zoo.get, engine.write_atomic = get, write

    zoo.get, engine.write_atomic = looked_up, written
    return restore


def run(args, timeline):
    build_module = importlib.import_module("trtnet.build")
    with timeline.part("import TensorRT"):
        cli.setup(args)
    if not args.quiet:
        print(f"building {args.model} ...", file=sys.stderr)
    profiles = None if args.shape_specs or args.batch_range is None else [{"N": args.batch_range}]
    undo = instrument(args, timeline, build_module)
    try:
        with timeline.part("verify" if not args.no_verify else "other"):
            report = build_module.build(args.model, args.weights, args.output, profiles, args.device_id,
                                        not args.no_verify, True, args.workspace_mb, args.verify_samples,
                                        tf32=args.tf32,
                                        fp16=args.fp16, show_graph=args.print_graph,
                                        engine_cache=None if args.no_engine_cache else args.engine_cache,
                                        timing_cache=args.timing_cache, refittable=args.refittable,
                                        strip_weights=args.strip_weights, **args.quant)
    finally:
        for u in reversed(undo):
            u()
    print(report.summary())
    print(timeline.summary())
    if not report.ok:
        print(f"error: {args.model}: the comparison with PyTorch is over tolerance (see the checks above)",
              file=sys.stderr)
    return 0 if report.ok else 1


def main(argv=None):
    return cli.command(argv, arguments, validate, run)


if __name__ == "__main__":
    cli.exit_now(main())
