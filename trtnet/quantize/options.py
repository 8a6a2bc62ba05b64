"""Command-line options for quantization: added to a parser, then checked into build()'s keywords before torch or
TensorRT load."""
import os

from .. import cli
from .calibration import METHODS


def add_arguments(p):
    """The quantization options `python -m trtnet.build` and `python -m trtnet.check` share."""
    g = p.add_argument_group("quantization (explicit Q/DQ, see trtnet.quantize)")
    modes = g.add_mutually_exclusive_group()
    for mode, what in (("int8", "INT8 activations and weights"), ("fp8", "FP8 E4M3 activations and weights"),
                       ("int8-weights", "INT8 weights, fp16 math"), ("int4-weights", "INT4 weights, fp16 math")):
        modes.add_argument(f"--{mode}", dest="quantize", action="store_const", const=mode, help=what)
    g.add_argument("--calib", metavar="PATH", help="calibration data: .npy/.npz, an image folder, or a ModelOpt "
                                                   "checkpoint (*_quantizer._amax); default the model's own data")
    g.add_argument("--calib-method", choices=METHODS, default="entropy", help="calibration method (default entropy)")
    g.add_argument("--calib-samples", default="512", metavar="N", help="calibration samples (default 512)")
    g.add_argument("--calib-cache", metavar="FILE", help="JSON of calibrated ranges: reused when data and method "
                                                         "match, else written")
    g.add_argument("--keep", action="append", default=[], metavar="PATTERN",
                   help="layers (fnmatch on names) left unquantized; repeatable")


def parse_arguments(args):
    """The options as build()'s keywords, checked before torch or TensorRT load."""
    given = [f for f, v in (("--calib", args.calib), ("--calib-cache", args.calib_cache), ("--keep", args.keep),
                            ("--calib-method", args.calib_method != "entropy"),
                            ("--calib-samples", args.calib_samples != "512")) if v]
    if not args.quantize and given:
        raise cli.UsageError(f"{given[0]} needs a quantization mode: --int8, --fp8, --int8-weights or --int4-weights")
    if args.calib is not None and not os.path.exists(args.calib):
        raise cli.UsageError(f"--calib {args.calib!r}: no such file or folder")
    if args.calib_cache:
        cli.check_output(args.calib_cache, "--calib-cache")
    return dict(quantize=args.quantize, calib=args.calib, calib_method=args.calib_method,
                calib_samples=cli.count(args.calib_samples, "--calib-samples"), calib_cache=args.calib_cache,
                keep=tuple(args.keep))
