"""python -m trtnet.run ENGINE: run a serialized engine on a GPU, print its outputs and latency percentiles."""
import argparse
import os

from .. import cli
from ..backend import ENV, FLAVOURS
from ..events import Events

EPILOG = """examples:
  python -m trtnet.run engines/resnet18.engine
  python -m trtnet.run model.engine --input images:batch.npy --iterations 200 --device 1
  python -m trtnet.run model.engine --shapes images:8x3x224x224

Inputs not named with --input get random values in the --shapes shape, else the profile's optimal shape.
Latency is one synchronous call with device-resident inputs, as the GPU and host see it together."""


def parser():
    p = argparse.ArgumentParser(prog="python -m trtnet.run", description=__doc__.split(":", 1)[1].strip(),
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("engine", help="serialized engine (plan) file")
    p.add_argument("--input", action="append", metavar="NAME:FILE.npy|NAME:random", help="an input's values")
    p.add_argument("--shapes", action="append", metavar="NAME:DxD...", help="shape of a random input")
    p.add_argument("--iterations", type=int, default=100, metavar="N", help="timed runs (default 100)")
    p.add_argument("--warmup", type=int, default=10, metavar="N", help="untimed runs first (default 10)")
    p.add_argument("--device", type=int, default=0, metavar="N", help="GPU (default 0)")
    p.add_argument("--backend", choices=FLAVOURS, help=f"TensorRT flavour; default ${ENV}, else the first that imports")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="optimization profile (default 0)")
    p.add_argument("--runtime-cache", metavar="PATH", help="TensorRT-RTX's runtime cache (kernels compiled for this "
                   "GPU, reused by the next run; default ENGINE.runtime-cache; 'none': off)")
    p.add_argument("--dump", metavar="DIR", help="write the engine's debug tensors (trtnet.build --debug-tensors) "
                   "of the first run as DIR/NAME.npy; compare with trtnet.check --save-outputs by --compare-dumps")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    return p


def run(args):
    from . import dump_debug_tensors, latency, latency_summary, make_inputs, output_summary, parse_inputs, parse_shapes
    sources, shapes = parse_inputs(args.input), parse_shapes(args.shapes)
    if not os.path.isfile(args.engine):
        raise ValueError(f"no engine file {os.path.abspath(args.engine)}")
    from ..backend import select
    from ..runtime import Engine, ExecutionError, execution_unavailable
    select(args.backend)
    reason = execution_unavailable(args.device)
    if reason is not None:
        raise ExecutionError(f"cannot run {args.engine} here: {reason}")
    cache = None if args.runtime_cache is None else False if args.runtime_cache == "none" else args.runtime_cache
    engine = Engine(args.engine, args.device, cache)
    context = engine.context(profile=args.profile)
    arrays = make_inputs(engine.inputs, sources, shapes, args.profile)
    listener = args.dump and dump_debug_tensors(context.state.context, args.dump)
    for line in output_summary(context(**arrays)):
        print(line)
    if listener:
        context.state.context.set_all_tensors_debug_state(False)   # latency without the copies
        print(f"debug tensors written to {args.dump}")
    device = engine.to_device(arrays)
    print(latency_summary(latency(lambda: context(**device), args.iterations, args.warmup)))
    return 0


def main(argv=None):
    args = parser().parse_args(argv)
    timeline = cli.Timeline(show=False)   # names what a signal stops

    def go():
        with Events(timeline).phase(f"running {args.engine}"):
            return run(args)

    return cli.run_command(args, go, timeline)


if __name__ == "__main__":
    cli.exit_now(main())
