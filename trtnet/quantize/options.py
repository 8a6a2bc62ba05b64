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
    g.add_argument("--calib-method", choices=METHODS, default="auto",
                   help="calibration method (default auto: of max, percentile and mse, the one whose output SQNR "
                        "on the calibration data is best)")
    g.add_argument("--calib-samples", default="512", metavar="N", help="calibration samples (default 512)")
    g.add_argument("--calib-cache", metavar="FILE", help="JSON of calibrated ranges: reused when data and method "
                                                         "match, else written")
    g.add_argument("--keep", action="append", default=[], metavar="PATTERN",
                   help="layers (fnmatch on names) left unquantized; repeatable")
    g.add_argument("--min-sqnr", metavar="DB", help="the bound: output SQNR against fp32 below it fails the build "
                                                    "(default int8 20, fp8 15, int8-weights 20, int4-weights 10)")
    g.add_argument("--min-agreement", metavar="FRACTION",
                   help="the bound: top-1 agreement with fp32 below it fails the build (default 0.75)")
    g.add_argument("--target-sqnr", metavar="DB", help="--advise's target output SQNR (default int8 40, fp8 32, "
                                                       "int8-weights 40, int4-weights 25)")
    g.add_argument("--target-agreement", metavar="FRACTION", help="--advise's target top-1 agreement with fp32")


def parse_arguments(args):
    """The options as build()'s keywords, checked before torch or TensorRT load."""
    given = [f for f, v in (("--calib", args.calib), ("--calib-cache", args.calib_cache), ("--keep", args.keep),
                            ("--calib-method", args.calib_method != "auto"), ("--min-sqnr", args.min_sqnr),
                            ("--min-agreement", args.min_agreement), ("--target-sqnr", args.target_sqnr),
                            ("--target-agreement", args.target_agreement),
                            ("--calib-samples", args.calib_samples != "512")) if v]
    if not args.quantize and given:
        raise cli.UsageError(f"{given[0]} needs a quantization mode: --int8, --fp8, --int8-weights or --int4-weights")
    if args.calib is not None and not os.path.exists(args.calib):
        raise cli.UsageError(f"--calib {args.calib!r}: no such file or folder")
    if args.calib_cache:
        cli.check_output(args.calib_cache, "--calib-cache")
    args.target_sqnr = _number(args.target_sqnr, "--target-sqnr", -100, 400)
    args.target_agreement = _number(args.target_agreement, "--target-agreement", 0, 1)
    return dict(quantize=args.quantize, calib=args.calib, calib_method=args.calib_method,
                calib_samples=cli.count(args.calib_samples, "--calib-samples"), calib_cache=args.calib_cache,
                keep=tuple(args.keep), min_sqnr=_number(args.min_sqnr, "--min-sqnr", -100, 400),
                min_agreement=_number(args.min_agreement, "--min-agreement", 0, 1))


def _number(text, flag, lo, hi):
    """None, or the option's value checked to lie in [lo, hi]."""
    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        raise cli.UsageError(f"{flag}: expected a number, got {text!r}") from None
    if not lo <= v <= hi:
        raise cli.UsageError(f"{flag}: {text!r} must lie between {lo:g} and {hi:g}")
    return v
