"""python -m trtnet.port SPEC -o FILE.py: write a PyTorch module as a trtnet model file (and check it)."""
import argparse
import sys


def _inputs(values):
    out = {}
    for v in values or ():
        parts = v.split(":")
        if len(parts) < 2:
            raise SystemExit(f"--input {v!r}: expected name:1x3x224x224[:dtype]")
        out[parts[0]] = (tuple(int(d) for d in parts[1].split("x")), parts[2] if len(parts) > 2 else "float32")
    return out or None


def _dynamic(values):
    return {n: tuple(int(a) for a in axes.split(",")) for n, _, axes in (v.partition(":") for v in values or ())}


def main(argv=None):
    p = argparse.ArgumentParser("python -m trtnet.port", description=__doc__.split(":", 1)[1].strip())
    p.add_argument("spec", help="torchvision:NAME, timm:NAME, transformers:CLASS{json config}, package.module:factory"
                                "{json kwargs}")
    p.add_argument("-o", "--output", required=True, help="the model file to write (FILE.py)")
    p.add_argument("--input", action="append", metavar="NAME:1x3x224x224[:DTYPE]", help="an input and its example shape")
    p.add_argument("--dynamic", action="append", metavar="NAME:AXES", help="axes of an input made dynamic (0 = batch)")
    p.add_argument("--weights", help="weights file to write (default FILE.safetensors; .wts on request)")
    p.add_argument("--check", action="store_true", help="check the written model against the module (fp32, 1e-4)")
    args = p.parse_args(argv)
    from . import PortError, port_spec
    try:
        r = port_spec(args.spec, args.output, _inputs(args.input), _dynamic(args.dynamic), args.weights, args.check)
    except PortError as e:
        print(f"trtnet.port: {e}", file=sys.stderr)
        return 1
    print(f"wrote {r.path} ({r.lines} lines, captured with {r.method}, {r.seconds:.1f} s) and {r.weights}")
    if r.report is not None:
        print(r.report.summary())
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
