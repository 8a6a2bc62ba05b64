"""python -m trtnet.export {triton,polygraphy}: a Triton model repository, or a Polygraphy network script."""
import argparse
import sys

from .. import cli
from ..backend import ENV, FLAVOURS
from ..events import Events

EPILOG = """examples:
  python -m trtnet.export triton resnet18 --repo models --instances-per-gpu 2 --max-queue-delay-us 100
  python -m trtnet.export polygraphy resnet18 -o resnet18_net.py
  python -m trtnet.export polygraphy-tool inspect model resnet18_net.py --model-type=trt-network-script --show layers

MODEL is a zoo name (weights from --weights, else weights/MODEL.*) or a model file, resolved as
`python -m trtnet.build` resolves it."""


def parser():
    p = argparse.ArgumentParser(prog="python -m trtnet.export", description=__doc__.split(":", 1)[1].strip(),
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="format", required=True)
    tri = sub.add_parser("triton", help="build the engine and write REPO/NAME/{config.pbtxt,1/model.plan}")
    poly = sub.add_parser("polygraphy", help="write a network script for `polygraphy convert/run`")
    sub.add_parser("polygraphy-tool", help="run Polygraphy's own command line (arguments follow) on trtnet's TensorRT")
    for s in (tri, poly):
        s.add_argument("model", help="zoo model name or FILE.py")
        s.add_argument("--weights", metavar="PATH", help="weights file for a zoo model")
        s.add_argument("--batch", metavar="MIN,OPT,MAX", help="profile of the batch dimension N")
        s.add_argument("--shapes", action="append", default=[], metavar="NAME:MIN,OPT,MAX",
                       help="an input's min,opt,max shapes (as `python -m trtnet.build --shapes`)")
        s.add_argument("--profile", action="append", default=[], metavar="SHAPES",
                       help="one more optimization profile, in --shapes' form")
        s.add_argument("--backend", choices=FLAVOURS, help=f"TensorRT flavour; default ${ENV}, else the first that imports")
        g = s.add_mutually_exclusive_group()
        g.add_argument("-v", "--verbose", action="store_true", help="TensorRT's info messages; tracebacks on errors")
        g.add_argument("-q", "--quiet", action="store_true", help="no progress bars; only results and errors")
    tri.add_argument("--repo", required=True, metavar="DIR", help="Triton model repository")
    tri.add_argument("--name", help="model name in the repository (default: MODEL)")
    tri.add_argument("--instances-per-gpu", type=int, default=1, metavar="N", help="instance_group count (default 1)")
    tri.add_argument("--max-queue-delay-us", type=int, metavar="US", help="dynamic batcher's queue delay")
    tri.add_argument("--gpus", type=lambda s: [int(g) for g in s.split(",")], metavar="0,1", help="GPUs to serve on")
    poly.add_argument("-o", "--output", required=True, metavar="FILE.py", help="script to write")
    return p


def profiles(args, graph):
    batch = None if args.batch is None else cli.parse_batch(args.batch)
    return cli.to_profiles(graph, cli.parse_shapes(args.shapes, args.profile), batch)


def triton(args):
    from . import build_plan, load_graph
    from .triton import write_repository
    name, graph = load_graph(args.model, args.weights)
    plan, io = build_plan(graph, profiles(args, graph))
    path = write_repository(io, plan, args.repo, args.name or name, None, args.instances_per_gpu,
                            args.max_queue_delay_us, args.gpus)
    print(f"wrote {path} (config.pbtxt, 1/model.plan: {len(plan) / 2**20:.1f} MiB)")


def polygraphy(args):
    from . import load_graph
    from .polygraphy import write_script
    graph = load_graph(args.model, args.weights)[1]
    path = write_script(args.model, args.output, args.weights, profiles(args, graph), graph)
    print(f"wrote {path}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["polygraphy-tool"]:   # Polygraphy's command line, on the TensorRT trtnet uses
        from .polygraphy import run_tool
        return run_tool(argv[1:])
    args = parser().parse_args(argv)
    timeline = cli.Timeline(show=False)   # names what a signal stops

    def go():
        if args.format == "polygraphy":
            cli.check_output(args.output)
        with Events(timeline).phase(f"exporting {args.model}"):
            cli.setup(args)
            (triton if args.format == "triton" else polygraphy)(args)
        return 0

    return cli.run_command(args, go, timeline)


if __name__ == "__main__":
    cli.exit_now(main())
