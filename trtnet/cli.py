"""Pieces shared by the `python -m trtnet.build` and `python -m trtnet.check` command lines."""
import argparse
import logging
import sys

from . import backend
from .engine import BuildError
from .graph import GraphError
from .weights import MissingWeightError, WeightFileError

USER_ERRORS = (WeightFileError, MissingWeightError, GraphError, BuildError, LookupError, backend.BackendError,
               NotImplementedError, ValueError, OSError)


def parser(prog, description):
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="zoo model name (see --list)")
    p.add_argument("--weights", metavar="PATH",
                   help="weights file (.wts, .safetensors, .pth/.pt); default weights/MODEL.wts, "
                        "else the .safetensors or .pth beside it")
    p.add_argument("--backend", choices=backend.FLAVOURS,
                   help=f"TensorRT flavour; default ${backend.ENV}, else the first that imports")
    p.add_argument("--list", action="store_true", help="list the zoo's models and exit")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true", help="show TensorRT's info messages")
    g.add_argument("-q", "--quiet", action="store_true", help="only errors")
    return p


def setup(args):
    level = logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    backend.select(args.backend)


def list_models():
    from . import zoo
    for name in zoo.names():
        m = zoo.MODELS[name]
        print(f"{name:22s} {'x'.join(map(str, m.input_shape)):10s} {m.doc.splitlines()[0] if m.doc else ''}")


def main_guard(fn):
    """Run a command, turning expected failures into one `error:` line and exit status 1."""
    try:
        return fn()
    except USER_ERRORS as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
