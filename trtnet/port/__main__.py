"""python -m trtnet.port SPEC -o FILE.py: write a PyTorch module as a trtnet model file (and check it)."""
import argparse
import sys

from .. import cli
from ..events import Events


def _inputs(values):
    out = {}
    for v in values or ():
        parts = v.split(":")
        if len(parts) not in (2, 3) or not parts[0]:
            raise cli.UsageError(f"--input {v!r}: expected NAME:1x3x224x224[:DTYPE]")
        out[parts[0]] = (cli.parse_dims(parts[1], f"--input {v!r}"), parts[2] if len(parts) > 2 else "float32")
    return out or None


def _dynamic(values):
    out = {}
    for v in values or ():
        name, sep, axes = v.partition(":")
        if not sep or not name:
            raise cli.UsageError(f"--dynamic {v!r}: expected NAME:AXES such as images:0 or ids:0,1")
        out[name] = tuple(cli.count(a, f"--dynamic {v!r}", 0, 64) for a in axes.split(","))
    return out or None


def arguments(argv):
    p = argparse.ArgumentParser("python -m trtnet.port", description=__doc__.split(":", 1)[1].strip())
    p.add_argument("spec", help="torchvision:NAME, timm:NAME, transformers:CLASS{json config}, package.module:factory"
                                "{json kwargs}, ultralytics.nn.tasks:DetectionModel{\"cfg\": \"yolo11n.yaml\"} (any "
                                "task model) or an Ultralytics checkpoint FILE.pt with --trust-checkpoint")
    p.add_argument("-o", "--output", required=True, help="the model file to write (FILE.py)")
    p.add_argument("--input", action="append", metavar="NAME:1x3x224x224[:DTYPE]", help="an input and its example shape")
    p.add_argument("--dynamic", action="append", metavar="NAME:AXES",
                   help="axes of an input made dynamic (0 = batch; default: the batch, and the length of token ids)")
    p.add_argument("--weights", help="weights file to write (default FILE.safetensors; .wts on request)")
    p.add_argument("--trust-checkpoint", action="store_true", help="load a FILE.pt Ultralytics checkpoint (a pickle, "
                   "which can run code when loaded: only from a source you trust)")
    p.add_argument("--no-check", action="store_true", help="write without checking the model against the module "
                   "(by default it is checked at batch 2, fp32, tolerance 1e-4, before anything is written)")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    return p.parse_args(argv)


def port(args):
    inputs, dynamic = _inputs(args.input), _dynamic(args.dynamic)
    cli.check_output(args.output)
    if args.weights:
        cli.check_output(args.weights, "--weights")
    from .api import PortError, port_spec
    try:
        r = port_spec(args.spec, args.output, inputs, dynamic, args.weights, not args.no_check, args.trust_checkpoint)
    except PortError as e:  # one error line for each unsupported operation it lists, with its source line
        first, *rest = str(e).splitlines() or [""]
        if not rest:
            raise
        for line in rest[:-1]:
            print(f"error: {line.strip()} (nothing written)", file=sys.stderr)
        raise PortError(f"{rest[-1].strip()} (nothing written)") from e
    except Exception as e:  # noqa: BLE001  (the module's own code, timm, transformers, torch.export, fx)
        raise PortError(f"cannot port {args.spec}: {cli.message(e, where=False)}") from e
    if r.report is not None:
        print(r.report.summary())
    if not r.ok:
        verdict = r.report.summary().splitlines()[-1].strip()
        raise PortError(f"the ported model of {args.spec} does not check against the module, so nothing was "
                        f"written: {verdict}")
    print(f"wrote {r.path} ({r.lines} lines, captured with {r.method}, {r.seconds:.1f} s) and {r.weights}")
    return 0


def main(argv=None):
    args = arguments(argv)
    timeline = cli.Timeline(show=False)   # names what a signal stops

    def go():
        with Events(timeline).phase(f"porting {args.spec}"):
            return port(args)

    return cli.run_command(args, go, timeline)


if __name__ == "__main__":
    cli.exit_now(main())
